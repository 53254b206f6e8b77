// The component side: the host's imports as the SDK's host, and the
// contract's exports for an adapter. Only a component's entry module
// imports this (node cannot resolve `payhost:adapter/*`):
//
//   import { serve } from '<sdk-js>/src/component.js';
//   import { MyProvider } from './adapter.js';
//   serve(MyProvider);
//   export * from '<sdk-js>/src/exports.js';
//
// The export list then lives here, in the SDK: an operation a newer
// contract adds gets its default (glue.js answers `unsupported` for an
// operation the adapter lacks) without touching any adapter.

import {
  digest,
  hmac,
  rsaSha256Sign,
  rsaSha256Verify,
  aes256GcmDecrypt,
  aes256EcbDecryptMd5Key,
  rsaOaepSha1Encrypt,
} from 'payhost:adapter/secrets@0.6.0';
import { log } from 'payhost:adapter/log@0.6.0';
import { OPERATIONS, steps } from './glue.js';

const host = { digest, hmac, rsaSha256Sign, rsaSha256Verify, aes256GcmDecrypt, aes256EcbDecryptMd5Key, rsaOaepSha1Encrypt, log };

export const exportAdapter = (adapter) => steps(adapter, host);

let served;

/** Makes `adapter` the one the contract's exports (exports.js) run. */
export function serve(adapter) {
  served = exportAdapter(adapter);
}

/** The contract's exports, each calling the served adapter's. */
export const contractExports = Object.freeze(
  Object.fromEntries(
    ['describe', ...OPERATIONS].map((name) => [
      name,
      (...args) => {
        if (served === undefined) throw new Error('the entry module never called serve(adapter)');
        return served[name](...args);
      },
    ]),
  ),
);
