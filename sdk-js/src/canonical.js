// Canonical `k=v&k=v` strings, the base of most provider signatures:
// fields sorted by name (code unit order, which is byte order for ASCII
// names), `name=value` joined with `&`, values raw, empty values skipped.

import { md5, text, secret } from './secrets.js';
import { hexUpper, constantTimeEqual } from './encoding.js';

function joinSorted(pairs, exclude, keepEmpty) {
  return pairs
    .filter(([k, v]) => (keepEmpty || v !== '') && !exclude.includes(k))
    .map((p, i) => [p, i])
    // Stable by name: duplicate names keep their given order.
    .sort(([[a], i], [[b], j]) => (a < b ? -1 : a > b ? 1 : i - j))
    .map(([[k, v]]) => `${k}=${v}`)
    .join('&');
}

/** `pairs` sorted by name, skipping empty values and names in `exclude` (typically `sign`). */
export const sortedPairs = (pairs, exclude = []) => joinSorted(pairs, exclude, false);

/** Like `sortedPairs`, with empty values kept (`k=`). */
export const sortedPairsKeepEmpty = (pairs, exclude = []) => joinSorted(pairs, exclude, true);

/** `stringA&key=` + the secret (`key=` + it when `stringA` is empty), as message parts. */
export const withKey = (stringA, key) => [text(stringA === '' ? 'key=' : `${stringA}&key=`), secret(key)];

/** Upper-case hex `MD5(stringA&key=KEY)`, computed by the host with the key it holds. */
export const md5WithKey = (ctx, stringA, key) => hexUpper(ctx.digest(md5, withKey(stringA, key)));

/** Whether a received hex signature equals the expected upper-case one, in any letter case. */
export const hexSignatureMatches = (received, expectedUpper) =>
  constantTimeEqual(received.toUpperCase(), expectedUpper);
