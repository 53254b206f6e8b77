// payhost-sdk for JavaScript: helpers for adapters of payhost:adapter@0.6.0,
// mirroring the Rust SDK (`sdk/`). An adapter is an object with
// `describe()` and the operations `unifiedOrder(ctx, request)`, `query`,
// `close`, `refund`, `refundQuery`, `parseNotify` and, where the provider
// has them, `payout` and `payoutQuery` and the auto-debit `contractSign`,
// `contractQuery`, `contractTerminate`, `deduct` and `deductionQuery` (any
// it leaves out answers `unsupported`), each written as
// straight-line code: `ctx.send(request)` reads like a blocking call and
// the SDK turns it into the contract's steps. Contract values are the
// component bindings' own: records in camelCase, variants as
// `{ tag, val }`, u64/s64 as BigInt, bytes as Uint8Array.

export * as canonical from './canonical.js';
export * as encoding from './encoding.js';
export * as field from './field.js';
export * as form from './form.js';
export * as http from './http.js';
export * as json from './json.js';
export * as money from './money.js';
export * as secrets from './secrets.js';
export * as xml from './xml.js';
export * from './error.js';
export { Ctx, Config } from './ctx.js';
export { Secret } from './secrets.js';
export { steps } from './glue.js';

/** The contract version this SDK speaks. */
export const CONTRACT_VERSION = '0.6.0';
