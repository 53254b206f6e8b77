//! 2paynow's signature (providers.md §6.3): the lower-case hex of
//! `MD5(function + mid + timestamp + key)`, plain concatenation. Only these
//! four values are covered -- never the amount, the order or the status --
//! so a signed message proves little more than "someone once had a valid
//! signature"; notifications are confirmed by a query for that reason.
//!
//! The key is a handle: the host appends its bytes and computes the digest.

use payhost_sdk::prelude::*;
use subtle::ConstantTimeEq;

/// The `sign` of a request, answer or notification.
pub fn sign(ctx: &Ctx, function: &str, mid: &str, timestamp: &str, key: Secret) -> Result<String> {
    let digest = ctx.digest(
        DigestAlgorithm::Md5,
        &[
            Part::Text(format!("{function}{mid}{timestamp}")),
            Part::Secret(key),
        ],
    )?;
    Ok(encoding::hex_lower(&digest))
}

/// Checks a received `sign` (either case) against the one computed.
pub fn verify(
    ctx: &Ctx,
    function: &str,
    mid: &str,
    timestamp: &str,
    key: Secret,
    received: &str,
    what: &str,
) -> Result<()> {
    let expected = sign(ctx, function, mid, timestamp, key)?;
    let received = received.to_ascii_lowercase();
    if bool::from(received.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(Error::bad_signature(format!(
            "{what}: `sign` does not match function, mid and timestamp with the configured key"
        )))
    }
}

/// How the `timestamp` parameter counts (§6.6: milliseconds in the only
/// public driver; configurable because the PDF may say otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUnit {
    Milliseconds,
    Seconds,
}

impl TimestampUnit {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "milliseconds" => Some(TimestampUnit::Milliseconds),
            "seconds" => Some(TimestampUnit::Seconds),
            _ => None,
        }
    }

    /// The operation's time (Unix seconds) in this unit.
    pub fn stamp(self, unix_seconds: i64) -> String {
        match self {
            TimestampUnit::Milliseconds => (unix_seconds * 1000).to_string(),
            TimestampUnit::Seconds => unix_seconds.to_string(),
        }
    }
}
