// The component's entry module: the contract's exports for the adapter.
// Only this file imports the host (payhost:adapter/*), so the tests load
// adapter.js in node with the SDK's native harness instead. The exports
// themselves come from the SDK (`exports.js`), so an operation a newer
// contract adds answers the SDK's default until this adapter has it.

import { serve } from '../../../sdk-js/src/component.js';
import { TwoPayNow } from './adapter.js';

serve(TwoPayNow);
export * from '../../../sdk-js/src/exports.js';
