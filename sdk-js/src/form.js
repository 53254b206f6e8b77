// `application/x-www-form-urlencoded` bodies and query strings, byte for
// byte as the WHATWG URL standard (and Rust's form_urlencoded) writes them.

import { utf8, fromUtf8Lossy } from './encoding.js';

const UNRESERVED = /[A-Za-z0-9*\-._]/;

function encodeComponent(text) {
  let out = '';
  for (const b of utf8(text)) {
    const c = String.fromCharCode(b);
    if (b < 128 && UNRESERVED.test(c)) out += c;
    else if (c === ' ') out += '+';
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Pairs `[name, value]`, in the given order. */
export const encode = (pairs) => pairs.map(([k, v]) => `${encodeComponent(k)}=${encodeComponent(v)}`).join('&');

function decodeComponent(text) {
  const bytes = [];
  const raw = utf8(text.replace(/\+/g, ' '));
  for (let i = 0; i < raw.length; i++) {
    const hex = String.fromCharCode(raw[i + 1] ?? 0, raw[i + 2] ?? 0);
    if (raw[i] === 37 && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(raw[i]);
    }
  }
  return fromUtf8Lossy(new Uint8Array(bytes));
}

/** A body (bytes) or query string (text) as `[name, value]` pairs, in order. */
export function decode(input) {
  const text = typeof input === 'string' ? input : fromUtf8Lossy(input);
  return text
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const eq = p.indexOf('=');
      return eq < 0 ? [decodeComponent(p), ''] : [decodeComponent(p.slice(0, eq)), decodeComponent(p.slice(eq + 1))];
    });
}
