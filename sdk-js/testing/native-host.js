// What the host computes with secrets, natively (node:crypto), for tests.
// Errors are thrown as `{ payload: secret-error }`, as the component
// bindings throw them, so the SDK's handling is tested too.

import { createHash, createHmac, createDecipheriv, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';

const fail = (tag, val) => {
  const e = new Error(`secret operation failed: ${tag}`);
  e.payload = { tag, val };
  return e;
};

/** Secret bytes by handle, as the host keeps them for one step. */
export class SecretTable {
  constructor() {
    this.values = new Map();
  }

  insert(value) {
    const handle = this.values.size + 1;
    this.values.set(handle, Buffer.from(value));
    return handle;
  }

  get(handle) {
    const v = this.values.get(handle);
    if (v === undefined) throw fail('unknown-handle', handle);
    return v;
  }

  concat(parts) {
    return Buffer.concat(
      parts.map((p) => (p.tag === 'text' ? Buffer.from(p.val, 'utf8') : p.tag === 'bytes' ? Buffer.from(p.val) : this.get(p.val))),
    );
  }
}

const out = (buf) => new Uint8Array(buf);

/** A host over `table`; `logs` collects `[level, message]`. */
export function nativeHost(table, logs) {
  return {
    digest: (alg, parts) => out(createHash(alg).update(table.concat(parts)).digest()),
    hmac(alg, key, encoding, message) {
      const raw = table.get(key).toString('utf8');
      const keyBytes = encoding === 'raw' ? table.get(key) : Buffer.from(raw, encoding === 'hex' ? 'hex' : 'base64');
      return out(createHmac(alg, keyBytes).update(table.concat(message)).digest());
    },
    rsaSha256Sign(key, message) {
      let k;
      try {
        k = createPrivateKey(table.get(key));
      } catch {
        throw fail('unusable-key', 'the secret is not a PEM private key');
      }
      return out(sign('sha256', Buffer.from(message), k));
    },
    rsaSha256Verify(pem, message, signature) {
      let k;
      try {
        k = createPublicKey(pem);
      } catch {
        throw fail('invalid-input', 'not a PEM public key');
      }
      return verify('sha256', Buffer.from(message), k, Buffer.from(signature));
    },
    aes256GcmDecrypt(key, nonce, aad, ciphertext) {
      const k = table.get(key);
      if (k.length !== 32) throw fail('unusable-key', 'AES-256 needs a 32-byte key');
      const ct = Buffer.from(ciphertext);
      if (ct.length < 16) throw fail('invalid-input', 'ciphertext shorter than its tag');
      try {
        const d = createDecipheriv('aes-256-gcm', k, Buffer.from(nonce));
        d.setAAD(Buffer.from(aad));
        d.setAuthTag(ct.subarray(ct.length - 16));
        return out(Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]));
      } catch {
        throw fail('invalid-input', 'decryption failed');
      }
    },
    aes256EcbDecryptMd5Key(key, ciphertext) {
      const k = Buffer.from(createHash('md5').update(table.get(key)).digest('hex'), 'ascii');
      try {
        const d = createDecipheriv('aes-256-ecb', k, null);
        return out(Buffer.concat([d.update(Buffer.from(ciphertext)), d.final()]));
      } catch {
        throw fail('invalid-input', 'decryption failed');
      }
    },
    log: (level, message) => logs.push([level, message]),
  };
}
