// Acme Pay's signature: every field except `sign`, sorted by name, joined
// `k=v&...` (empty values skipped), HMAC-SHA256 keyed with the API key,
// lower-case hex. The key is a host-held secret: the adapter holds a
// handle and the host computes the HMAC.

import { badSignature, canonical, encoding, secrets } from '{{sdk}}/src/index.js';

/** The fields a signature never covers. */
const UNSIGNED = ['sign'];

/** The signature of `fields` (a Map). */
export function sign(ctx, key, fields) {
  const stringToSign = canonical.sortedPairs([...fields], UNSIGNED);
  const mac = ctx.hmac(secrets.sha256, key, secrets.RAW, [secrets.text(stringToSign)]);
  return encoding.hexLower(mac);
}

/** Checks the `sign` among `fields`; either hex case is taken. */
export function verify(ctx, key, fields, what) {
  const received = fields.get('sign');
  if (!received) throw badSignature(`${what} carries no \`sign\``);
  const expected = sign(ctx, key, fields).toUpperCase();
  if (!canonical.hexSignatureMatches(received, expected)) {
    throw badSignature(`${what}: \`sign\` does not verify with the configured api_key`);
  }
}
