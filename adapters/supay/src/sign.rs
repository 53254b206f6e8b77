//! Supay Gate signatures (providers.md §7.4): every field except `sign`
//! and `sign_type`, sorted by name, joined `k=v&...`, then `&key=KEY`;
//! upper-case hex MD5. The key is a host-held secret.
//!
//! Signers disagree on empty values (the PHP SDK signs them as `k=`,
//! others skip them), so requests never carry one and verification tries
//! the configured rule ([`EmptyValues`]).

use payhost_sdk::prelude::*;

/// The fields a signature never covers.
const UNSIGNED: [&str; 2] = ["sign", "sign_type"];

/// How empty values count when checking a received signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyValues {
    /// `k=` first (the SDK's way), then skipped (shopxo's way).
    KeepThenSkip,
    Keep,
    Skip,
}

impl EmptyValues {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "keep_then_skip" => Some(Self::KeepThenSkip),
            "keep" => Some(Self::Keep),
            "skip" => Some(Self::Skip),
            _ => None,
        }
    }
}

/// The signature of `fields` (empty values skipped; requests carry none).
pub fn sign<'a, K, V>(
    ctx: &Ctx,
    key: Secret,
    fields: impl IntoIterator<Item = (&'a K, &'a V)>,
) -> Result<String>
where
    K: AsRef<str> + ?Sized + 'a,
    V: AsRef<str> + ?Sized + 'a,
{
    canonical::md5_with_key(ctx, &canonical::sorted_pairs(fields, &UNSIGNED), key)
}

/// Checks the `sign` among `fields`.
pub fn verify(
    ctx: &Ctx,
    key: Secret,
    fields: &[(String, String)],
    empty: EmptyValues,
    what: &str,
) -> Result<()> {
    let received = fields
        .iter()
        .find(|(k, _)| k == "sign")
        .map(|(_, v)| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad_signature(format!("{what} carries no `sign`")))?;
    let pairs = || fields.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let keep = || canonical::sorted_pairs_keep_empty(pairs(), &UNSIGNED);
    let skip = || canonical::sorted_pairs(pairs(), &UNSIGNED);
    let mut candidates = Vec::new();
    match empty {
        EmptyValues::Keep => candidates.push(keep()),
        EmptyValues::Skip => candidates.push(skip()),
        EmptyValues::KeepThenSkip => {
            candidates.push(keep());
            // Without empty values both strings are the same: one digest.
            let skipped = skip();
            if skipped != candidates[0] {
                candidates.push(skipped);
            }
        }
    }
    for string_a in candidates {
        if canonical::hex_signature_matches(
            received,
            &canonical::md5_with_key(ctx, &string_a, key)?,
        ) {
            return Ok(());
        }
    }
    Err(Error::bad_signature(format!(
        "{what}: `sign` does not verify with the configured api_key"
    )))
}
