//! Acme Pay's signature: every field except `sign`, sorted by name,
//! joined `k=v&...` (empty values skipped), HMAC-SHA256 keyed with the
//! API key, lower-case hex. The key is a host-held secret: the adapter
//! holds a handle and the host computes the HMAC.

use crate::wire::Fields;
use payhost_sdk::prelude::*;

/// The fields a signature never covers.
const UNSIGNED: [&str; 1] = ["sign"];

/// The signature of `fields`.
pub fn sign(ctx: &Ctx, key: Secret, fields: &Fields) -> Result<String> {
    let string_to_sign = canonical::sorted_pairs(fields, &UNSIGNED);
    let mac = ctx.hmac(
        DigestAlgorithm::Sha256,
        key,
        KeyEncoding::Raw,
        &[Part::Text(string_to_sign)],
    )?;
    Ok(encoding::hex_lower(&mac))
}

/// Checks the `sign` among `fields`; either hex case is taken.
pub fn verify(ctx: &Ctx, key: Secret, fields: &Fields, what: &str) -> Result<()> {
    let received = fields
        .get("sign")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad_signature(format!("{what} carries no `sign`")))?;
    let expected = sign(ctx, key, fields)?.to_ascii_uppercase();
    if canonical::hex_signature_matches(received, &expected) {
        Ok(())
    } else {
        Err(Error::bad_signature(format!(
            "{what}: `sign` does not verify with the configured api_key"
        )))
    }
}
