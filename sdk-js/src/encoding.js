// Bytes and text as providers spell them: UTF-8, hex, base64.

import { FormatError } from './error.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
const lossy = new TextDecoder('utf-8');

/** UTF-8 bytes of `text`. */
export const utf8 = (text) => encoder.encode(text);

/** `bytes` as UTF-8 text; invalid UTF-8 is a FormatError. */
export function fromUtf8(bytes, what = 'text') {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new FormatError(`${what} is not valid UTF-8`);
  }
}

/** `bytes` as UTF-8 text, invalid sequences replaced (U+FFFD). */
export const fromUtf8Lossy = (bytes) => lossy.decode(bytes);

const HEX = '0123456789abcdef';

export function hexLower(bytes) {
  let out = '';
  for (const b of bytes) out += HEX[b >> 4] + HEX[b & 15];
  return out;
}

/** Upper-case hex (WeChat Pay v2 signatures). */
export const hexUpper = (bytes) => hexLower(bytes).toUpperCase();

export function hexDecode(text) {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw new FormatError('invalid hex: odd length or a character outside 0-9a-f');
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard base64 with padding. */
export function base64Encode(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.length ? B64[n & 63] : '=';
  }
  return out;
}

/** Standard base64 (padding required, surrounding whitespace ignored). */
export function base64Decode(text) {
  const t = text.trim();
  if (t.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(t)) {
    throw new FormatError('invalid base64');
  }
  const pad = t.endsWith('==') ? 2 : t.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((t.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < t.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) n = (n << 6) | (t[i + j] === '=' ? 0 : B64.indexOf(t[i + j]));
    for (const shift of [16, 8, 0]) if (o < out.length) out[o++] = (n >> shift) & 255;
  }
  return out;
}

/** Whether two strings are equal, in time that depends on their length only. */
export function constantTimeEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
