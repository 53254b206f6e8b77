// Test an adapter natively, without wasm or network: the same step code
// path the host drives (`steps`), replays included, with the secrets held
// by a native table as the host holds them.
//
//   const h = new Harness(MyProvider).text('merchant_id', 'm-1').secret('api_key', 'k')
//     .withSchemaDefaults().respond((req) => http.response(200, 'application/json', '{}'));
//   const created = h.unifiedOrder(order);

import { AdapterError } from '../src/error.js';
import { steps } from '../src/glue.js';
import { Secret } from '../src/secrets.js';
import { SecretTable, nativeHost } from './native-host.js';

export { SecretTable, nativeHost };

/** The contract error `err` (with the failure's ack, for notifications) as an AdapterError. */
function fromContract(err, ack) {
  if (err.tag === 'provider-rejected') {
    return new AdapterError(err.tag, err.val.message, { code: err.val.code, retryable: err.val.retryable, ack });
  }
  return new AdapterError(err.tag, err.val, { ack });
}

export class Harness {
  constructor(adapter) {
    this.adapter = adapter;
    this.table = new SecretTable();
    this.logs = [];
    this.config = [];
    this.call = { requestId: 'test-request', timestamp: 1_700_000_000n, seed: 42n, notifyUrl: 'https://payhost.test/v1/notify/test/m1' };
    this.responder = (req) => {
      throw new Error(`unexpected request to ${req.url}`);
    };
    this.sent = [];
    this.maxSteps = 16;
    /** The native host the steps call (secret operations, log). */
    this.host = nativeHost(this.table, this.logs);
    this.exports = steps(adapter, this.host);
  }

  #set(name, value) {
    this.config = this.config.filter((e) => e.name !== name);
    this.config.push({ name, value });
    return this;
  }

  text(name, value) {
    return this.#set(name, { tag: 'text', val: value });
  }

  secret(name, value) {
    return this.#set(name, { tag: 'secret', val: this.table.insert(value) });
  }

  /** Every schema default the configuration lacks, as the host fills them in. */
  withSchemaDefaults() {
    for (const f of this.adapter.describe().configSchema) {
      if (f.default !== undefined && !this.config.some((e) => e.name === f.name)) this.text(f.name, f.default);
    }
    return this;
  }

  /** The handle of a secret field, as a `Secret`. */
  secretOf(name) {
    const e = this.config.find((x) => x.name === name && x.value.tag === 'secret');
    return e && new Secret(e.value.val);
  }

  timestamp(unix) {
    this.call.timestamp = BigInt(unix);
    return this;
  }

  seed(seed) {
    this.call.seed = BigInt(seed);
    return this;
  }

  notifyUrl(url) {
    this.call.notifyUrl = url;
    return this;
  }

  /** The provider: called once for every request the adapter sends. */
  respond(f) {
    this.responder = f;
    return this;
  }

  #drive(op, request) {
    const exchanges = [];
    for (let i = 0; i < this.maxSteps; i++) {
      const out = this.exports[op]({ ...this.call }, this.config.map((e) => ({ ...e })), request, [...exchanges]);
      if (out.tag === 'done') {
        const r = out.val;
        if (r.tag === 'ok') return r.val;
        throw op === 'parseNotify' ? fromContract(r.val.error, r.val.ack) : fromContract(r.val);
      }
      const response = this.responder(out.val);
      this.sent.push(out.val);
      exchanges.push({ request: out.val, response });
    }
    throw new Error(`the adapter did not finish within ${this.maxSteps} steps`);
  }

  unifiedOrder(r) {
    return this.#drive('unifiedOrder', r);
  }

  query(r) {
    return this.#drive('query', r);
  }

  close(r) {
    return this.#drive('close', r);
  }

  refund(r) {
    return this.#drive('refund', r);
  }

  refundQuery(r) {
    return this.#drive('refundQuery', r);
  }

  payout(r) {
    return this.#drive('payout', r);
  }

  payoutQuery(r) {
    return this.#drive('payoutQuery', r);
  }

  contractSign(r) {
    return this.#drive('contractSign', r);
  }

  contractQuery(r) {
    return this.#drive('contractQuery', r);
  }

  contractTerminate(r) {
    return this.#drive('contractTerminate', r);
  }

  deduct(r) {
    return this.#drive('deduct', r);
  }

  deductionQuery(r) {
    return this.#drive('deductionQuery', r);
  }

  parseNotify(r) {
    return this.#drive('parseNotify', r);
  }

  /** One step of `op` with these exchanges, as the host would call it. */
  step(op, request, exchanges = []) {
    return this.exports[op]({ ...this.call }, this.config, request, exchanges);
  }
}
