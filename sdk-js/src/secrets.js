// Typed secret operations over the host's `secrets` interface. A secret
// reaches the adapter as an opaque `Secret` (a handle, never the bytes);
// only the host computes with it.

import { invalidConfig, malformed } from './error.js';
import { utf8 } from './encoding.js';

const HANDLE = Symbol('payhost secret handle');

/** A secret configuration value: usable in secret operations, printable as a mask only. */
export class Secret {
  constructor(handle) {
    if (!Number.isInteger(handle) || handle < 0 || handle > 0xffffffff) throw new TypeError('a secret handle is a u32');
    this[HANDLE] = handle;
    Object.freeze(this);
  }

  toString() {
    return 'Secret(***)';
  }

  toJSON() {
    return 'Secret(***)';
  }
}

/** The handle of `s`, which must be a Secret (a typo'd text field is caught here). */
export function handleOf(s) {
  if (!(s instanceof Secret)) throw new TypeError('expected a Secret (read it with config.secret)');
  return s[HANDLE];
}

export const md5 = 'md5';
export const sha1 = 'sha1';
export const sha256 = 'sha256';
export const sha512 = 'sha512';
const ALGORITHMS = [md5, sha1, sha256, sha512];

/** Key encodings for `hmac`. */
export const RAW = 'raw';
export const HEX = 'hex';
export const BASE64 = 'base64';

/** Message parts: text, bytes, or a secret spliced in by the host. */
export const text = (t) => ({ tag: 'text', val: String(t) });
export const bytes = (b) => ({ tag: 'bytes', val: b });
export const secret = (s) => ({ tag: 'secret', val: handleOf(s) });

const asBytes = (m) => (typeof m === 'string' ? utf8(m) : m);

function algorithm(a) {
  if (!ALGORITHMS.includes(a)) throw new TypeError(`unknown digest algorithm \`${a}\``);
  return a;
}

function checkParts(parts) {
  for (const p of parts) {
    if (!p || !['text', 'bytes', 'secret'].includes(p.tag)) throw new TypeError('message parts come from text(), bytes() or secret()');
  }
  return parts;
}

/**
 * A failed secret operation is a configuration problem (the key is not
 * what the provider needs) unless the input was at fault. The component
 * bindings throw `{ payload: secret-error }`; so does the native host.
 */
function secretError(e) {
  const p = e && e.payload;
  if (!p || typeof p.tag !== 'string') throw e;
  switch (p.tag) {
    case 'unknown-handle':
      return invalidConfig(`secret handle ${p.val} is not valid in this call`);
    case 'unusable-key':
      return invalidConfig(p.val);
    default:
      return malformed(p.val);
  }
}

function call(f) {
  try {
    return f();
  } catch (e) {
    throw secretError(e);
  }
}

/** The secret operations of one step, over a host (component imports or native). */
export class SecretOps {
  constructor(host) {
    this.host = host;
  }

  digest(alg, parts) {
    return call(() => this.host.digest(algorithm(alg), checkParts(parts)));
  }

  hmac(alg, key, encoding, message) {
    return call(() => this.host.hmac(algorithm(alg), handleOf(key), encoding, checkParts(message)));
  }

  rsaSha256Sign(key, message) {
    return call(() => this.host.rsaSha256Sign(handleOf(key), asBytes(message)));
  }

  rsaSha256Verify(publicKeyPem, message, signature) {
    return call(() => this.host.rsaSha256Verify(publicKeyPem, asBytes(message), signature));
  }

  aes256GcmDecrypt(key, nonce, associatedData, ciphertext) {
    return call(() => this.host.aes256GcmDecrypt(handleOf(key), asBytes(nonce), asBytes(associatedData), ciphertext));
  }

  aes256EcbDecryptMd5Key(key, ciphertext) {
    return call(() => this.host.aes256EcbDecryptMd5Key(handleOf(key), ciphertext));
  }
}
