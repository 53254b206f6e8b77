// The contract's exports for a component whose entry module called
// `serve(adapter)` (component.js) and re-exports this module:
//
//   export * from '<sdk-js>/src/exports.js';
//
// One line per export of the `adapter` world; a new optional operation is
// added here (and in glue.js's OPERATIONS), not in every adapter.

import { contractExports as e } from './component.js';

export const describe = e.describe;
export const unifiedOrder = e.unifiedOrder;
export const query = e.query;
export const close = e.close;
export const refund = e.refund;
export const refundQuery = e.refundQuery;
export const payout = e.payout;
export const payoutQuery = e.payoutQuery;
export const contractSign = e.contractSign;
export const contractQuery = e.contractQuery;
export const contractTerminate = e.contractTerminate;
export const deduct = e.deduct;
export const deductionQuery = e.deductionQuery;
export const parseNotify = e.parseNotify;
