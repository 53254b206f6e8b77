// The component's entry module: the contract's exports for the adapter.
// Only this file imports the host (payhost:adapter/*), so the tests load
// adapter.js in node with the SDK's native harness instead.

import { exportAdapter } from '../../../sdk-js/src/component.js';
import { TwoPayNow } from './adapter.js';

const adapter = exportAdapter(TwoPayNow);
export const { describe, unifiedOrder, query, close, refund, refundQuery, payout, payoutQuery, parseNotify } = adapter;
