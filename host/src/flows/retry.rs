//! Compare-and-set with retry: every stored decision about an order or a
//! refund is made on the row as read and written only if nobody changed
//! it meanwhile; on a lost race the row is read and decided again.

use crate::api::problem::ApiError;
use crate::store::StoreError;

/// How often a lost compare-and-set is read and decided again. Races are
/// between a notification, the reconciler and an API call about the same
/// order, so a handful of rounds settles any real contention.
pub(crate) const CAS_ATTEMPTS: usize = 5;

/// Why one round of a compare-and-set ended without a result.
#[derive(Debug)]
pub(crate) enum Round {
    /// Somebody else wrote the row first: read it again and decide again.
    Lost,
    /// A real failure: give up at once.
    Failed(ApiError),
}

impl From<StoreError> for Round {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Round::Lost,
            other => Round::Failed(other.into()),
        }
    }
}

impl From<ApiError> for Round {
    fn from(e: ApiError) -> Self {
        Round::Failed(e)
    }
}

/// Runs `round` (read, decide, write; given its number, from 0) until it is
/// not lost to a concurrent update, at most [`CAS_ATTEMPTS`] times; then
/// answers the store's `concurrent_update` problem, which a caller may
/// retry. (A plain closure returning a future, not an async closure: the
/// futures of async closures are not yet provably `Send`.)
pub(crate) async fn until_not_lost<T, F, Fut>(mut round: F) -> Result<T, ApiError>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T, Round>>,
{
    for n in 0..CAS_ATTEMPTS {
        match round(n).await {
            Ok(v) => return Ok(v),
            Err(Round::Lost) => continue,
            Err(Round::Failed(e)) => return Err(e),
        }
    }
    Err(StoreError::Conflict.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[tokio::test]
    async fn a_lost_round_is_tried_again_and_a_won_one_returns() {
        let got = until_not_lost(|n| async move {
            if n < 2 {
                Err(StoreError::Conflict.into())
            } else {
                Ok(n)
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 2);
    }

    #[tokio::test]
    async fn rounds_are_bounded_and_end_in_a_retryable_conflict() {
        let mut rounds = 0;
        let err = until_not_lost(|_| {
            rounds += 1;
            async { Err::<(), Round>(StoreError::Conflict.into()) }
        })
        .await
        .unwrap_err();
        assert_eq!(rounds, CAS_ATTEMPTS);
        assert_eq!(err.status, StatusCode::CONFLICT);
        assert_eq!(err.code, "concurrent_update");
    }

    #[tokio::test]
    async fn a_real_failure_stops_at_once() {
        let mut rounds = 0;
        let err = until_not_lost(|_| {
            rounds += 1;
            async { Err::<(), Round>(StoreError::Unavailable("disk".into()).into()) }
        })
        .await
        .unwrap_err();
        assert_eq!(rounds, 1);
        assert_eq!(err.code, "store_unavailable");
    }
}
