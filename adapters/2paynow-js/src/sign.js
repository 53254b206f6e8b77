// 2paynow's signature (providers.md §6.3): the lower-case hex of
// MD5(function + mid + timestamp + key), plain concatenation. Only these
// four values are covered -- never the amount, the order or the status --
// so notifications are confirmed by a query (adapter.js).
//
// The key is a Secret: the host appends its bytes and computes the digest.

import { badSignature, encoding, secrets } from '../../../sdk-js/src/index.js';

/** The `sign` of a request, answer or notification. */
export function sign(ctx, fn, mid, timestamp, key) {
  const digest = ctx.digest(secrets.md5, [secrets.text(`${fn}${mid}${timestamp}`), secrets.secret(key)]);
  return encoding.hexLower(digest);
}

/** Checks a received `sign` (either case) against the one computed, in constant time. */
export function verify(ctx, fn, mid, timestamp, key, received, what) {
  const expected = sign(ctx, fn, mid, timestamp, key);
  if (!encoding.constantTimeEqual(received.toLowerCase(), expected)) {
    throw badSignature(`${what}: \`sign\` does not match function, mid and timestamp with the configured key`);
  }
}

/** How `timestamp` counts (§6.6: milliseconds in the only public driver). */
export const TIMESTAMP_UNITS = ['milliseconds', 'seconds'];

/** The operation's time (Unix seconds) in `unit`. */
export const stamp = (unit, unixSeconds) =>
  unit === 'milliseconds' ? (BigInt(unixSeconds) * 1000n).toString() : BigInt(unixSeconds).toString();
