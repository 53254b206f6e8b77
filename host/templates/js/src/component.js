// The component's entry module. The contract's exports come from the SDK
// (`exports.js`), so an operation a newer contract adds gets the SDK's
// default until this adapter implements it. Only this file reaches the
// host's imports; the tests load adapter.js in node instead.

import { serve } from '{{sdk}}/src/component.js';
import { AcmePay } from './adapter.js';

serve(AcmePay);
export * from '{{sdk}}/src/exports.js';
