// Turns an adapter's straight-line operations into the contract's step
// functions. The component (component.js) and the native test harness
// (testing/harness.js) both go through `steps`, so tests run the very code
// path the host drives, replays included.

import { AdapterError, Suspend } from './error.js';
import { Ctx } from './ctx.js';

/**
 * The contract's operations, by their names in the component bindings. An
 * adapter may leave out any of them: it then answers `unsupported`
 * (payouts, contract 0.5, and auto-debit contracts, 0.6, are the usual ones
 * to leave out).
 */
export const OPERATIONS = [
  'unifiedOrder', 'query', 'close', 'refund', 'refundQuery', 'payout', 'payoutQuery',
  'contractSign', 'contractQuery', 'contractTerminate', 'deduct', 'deductionQuery', 'parseNotify',
];

/** Capability flags later contracts added, off unless the adapter sets them. */
const CAPABILITY_DEFAULTS = {
  payouts: false,
  payoutNotifications: false,
  contracts: false,
  contractNotifications: false,
  deductionNotifications: false,
};

function described(adapter) {
  const info = adapter.describe();
  if (!info || typeof info !== 'object' || !info.capabilities) return info;
  return { ...info, capabilities: { ...CAPABILITY_DEFAULTS, ...info.capabilities } };
}

/**
 * Runs one step. Answers `{ send: request }` or `{ done: value }` /
 * `{ error: AdapterError }`. Anything thrown that is not an AdapterError is
 * a bug: it is logged and rethrown, which traps the instance as a Rust
 * panic does (the host answers that call with an error).
 */
function run(host, adapter, op, call, config, request, exchanges) {
  const ctx = new Ctx(host, call, config, exchanges);
  let value;
  try {
    if (typeof adapter[op] !== 'function') {
      throw new AdapterError('unsupported', `this adapter does not implement ${op}`);
    }
    value = { done: adapter[op](ctx, request) };
  } catch (e) {
    if (e instanceof Suspend) return { send: e.request };
    if (!(e instanceof AdapterError)) {
      host.log('error', `adapter threw: ${e && e.stack ? e.stack : e}`);
      throw e;
    }
    value = { error: e };
  }
  if (value.error && value.error.kind === 'nondeterministic') return value;
  // Finishing without asking for every recorded request means the adapter
  // took another path than in the step that recorded them.
  if (ctx.unreplayed > 0) {
    return {
      error: new AdapterError(
        'nondeterministic',
        `the operation finished with ${ctx.unreplayed} recorded exchange(s) never requested again`,
      ),
    };
  }
  return value;
}

function step(outcome, notify) {
  if (outcome.send) return { tag: 'send', val: outcome.send };
  if (outcome.error) {
    const error = outcome.error.toContract();
    return { tag: 'done', val: { tag: 'err', val: notify ? { error, ack: outcome.error.ack } : error } };
  }
  return { tag: 'done', val: { tag: 'ok', val: outcome.done } };
}

/** The contract's exports for `adapter`, over `host` (component imports or native). */
export function steps(adapter, host) {
  const exports = { describe: () => described(adapter) };
  for (const op of OPERATIONS) {
    exports[op] = (call, config, request, exchanges) =>
      step(run(host, adapter, op, call, config, request, exchanges), op === 'parseNotify');
  }
  return exports;
}
