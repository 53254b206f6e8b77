//! How a claim of an `Idempotency-Key` someone already holds is answered,
//! once for both stores (the claim itself is [`super::sql::CLAIM_KEY`]).

use super::{IdempotencyBegin, KeyClaim, StoreError};

/// How long an `Idempotency-Key` may stay in progress before a new request
/// may take it over. Far above any request's own time-out; it only frees
/// keys whose request died with its process.
pub(in crate::store) const IDEMPOTENCY_LEASE_MS: i64 = 5 * 60 * 1000;

/// The stored row of a key ([`super::sql::SELECT_KEY`]).
pub(in crate::store) struct HeldKey {
    pub request_hash: String,
    pub status: Option<i64>,
    pub body: Option<Vec<u8>>,
    pub created_at: i64,
}

/// What to answer a claim that found the key already stored.
pub(in crate::store) enum Verdict {
    Answer(IdempotencyBegin),
    /// The first request died with its process (its lease ended): the
    /// claimant may take the key over with [`super::sql::TAKE_OVER_KEY`]
    /// (a create is still deduplicated by its merchant order no).
    TakeOver {
        claimed_at: i64,
    },
}

pub(in crate::store) fn judge(held: HeldKey, claim: &KeyClaim) -> Result<Verdict, StoreError> {
    if held.request_hash != claim.request_hash {
        return Ok(Verdict::Answer(IdempotencyBegin::Mismatch));
    }
    match held.status {
        Some(status) => Ok(Verdict::Answer(IdempotencyBegin::Completed {
            status: u16::try_from(status)
                .map_err(|_| StoreError::Corrupt(format!("idempotency status {status}")))?,
            body: held.body.unwrap_or_default(),
        })),
        None if claim.now - held.created_at > IDEMPOTENCY_LEASE_MS => Ok(Verdict::TakeOver {
            claimed_at: held.created_at,
        }),
        None => Ok(Verdict::Answer(IdempotencyBegin::InProgress)),
    }
}

/// The answer once a take-over ran: it changed the row, or another
/// request took the key over first.
pub(in crate::store) fn taken_over(rows_changed: u64) -> IdempotencyBegin {
    if rows_changed == 1 {
        IdempotencyBegin::Started
    } else {
        IdempotencyBegin::InProgress
    }
}
