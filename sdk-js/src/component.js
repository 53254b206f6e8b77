// The component side: the host's imports as the SDK's host, and the
// contract's exports for an adapter. Only a component's entry module
// imports this (node cannot resolve `payhost:adapter/*`):
//
//   import { exportAdapter } from '<sdk-js>/src/component.js';
//   import { MyProvider } from './adapter.js';
//   const a = exportAdapter(MyProvider);
//   export const { describe, unifiedOrder, query, close, refund, refundQuery, parseNotify } = a;

import {
  digest,
  hmac,
  rsaSha256Sign,
  rsaSha256Verify,
  aes256GcmDecrypt,
  aes256EcbDecryptMd5Key,
} from 'payhost:adapter/secrets@0.4.0';
import { log } from 'payhost:adapter/log@0.4.0';
import { steps } from './glue.js';

const host = { digest, hmac, rsaSha256Sign, rsaSha256Verify, aes256GcmDecrypt, aes256EcbDecryptMd5Key, log };

export const exportAdapter = (adapter) => steps(adapter, host);
