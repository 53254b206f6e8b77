// JSON bodies. Numbers past 2^53 lose digits in JavaScript, so a number is
// read as text only while it is exact (`numberText`).

import { FormatError } from './error.js';
import { fromUtf8, utf8 } from './encoding.js';

/** A body parsed as JSON; anything else (or nesting the engine refuses) is a FormatError. */
export function fromBody(body) {
  const text = typeof body === 'string' ? body : fromUtf8(body, 'JSON');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(`invalid JSON: ${e && e.message}`);
  }
}

export const toBody = (value) => utf8(JSON.stringify(value));

/** Whether `v` is a JSON object (not an array, not null). */
export const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The decimal text of a JSON number, as the provider wrote it as long as
 * the value is exactly representable; FormatError beyond 2^53, where the
 * parsed value may differ from the text.
 */
export function numberText(n) {
  if (!Number.isFinite(n) || Math.abs(n) > Number.MAX_SAFE_INTEGER) {
    throw new FormatError(`the number ${n} is too large to read exactly`);
  }
  return String(n);
}
