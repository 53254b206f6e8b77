//! `Idempotency-Key` on mutating calls (IETF httpapi-idempotency-key draft):
//! the first request with a key runs and its answer is stored; a repeat with
//! the same body gets that answer again; a repeat with another body, or
//! while the first is still running, is refused.

use super::problem::ApiError;
use super::{AppState, Merchant};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// An answer as stored and replayed.
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// The operation already stored this answer under the key, in the
    /// transaction of its own write.
    pub stored: bool,
    /// The answer says "try again" (a conflict in progress, a concurrent
    /// update): it is not the key's final answer.
    pub retry: bool,
}

/// The key a request runs under, for an operation that completes it in its
/// own transaction ([`crate::store::KeyCompletion`]).
#[derive(Debug, Clone)]
pub struct Key {
    pub merchant_id: String,
    pub key: String,
}

impl Answer {
    pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Self {
        Answer {
            status,
            body: serde_json::to_vec(value).unwrap_or_default(),
            stored: false,
            retry: false,
        }
    }

    fn into_response(self, replayed: bool) -> Response {
        let content_type = if self.status.is_success() {
            "application/json"
        } else {
            "application/problem+json"
        };
        let mut resp = (self.status, self.body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if replayed {
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        resp
    }
}

/// Conflicts that say "retry": the same request may succeed later.
const RETRY_CODES: [&str; 3] = [
    "order_in_progress",
    "concurrent_update",
    "idempotency_in_progress",
];

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Self {
        Answer {
            status: e.status,
            body: e.body(),
            stored: false,
            retry: e.status.is_server_error()
                || e.status == StatusCode::TOO_MANY_REQUESTS
                || RETRY_CODES.contains(&e.code),
        }
    }
}

/// Runs `op` under the request's `Idempotency-Key`, if it has one.
///
/// Answers that say "retry" (5xx, 429, a conflict in progress) release the
/// key so that the client's retry with the same key runs again; every
/// other answer is kept and replayed. `op` gets the key, to complete it in
/// its own transaction where it writes (then `Answer::stored`).
pub async fn run<F, Fut>(
    state: &AppState,
    merchant: &Merchant,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
    op: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Option<Key>) -> Fut,
    Fut: Future<Output = Result<Answer, ApiError>>,
{
    let Some(key) = headers.get("idempotency-key") else {
        return Ok(match op(None).await {
            Ok(answer) => answer.into_response(false),
            Err(e) => e.into_response(),
        });
    };
    let key = key
        .to_str()
        .ok()
        .map(|k| k.trim().trim_matches('"'))
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::validation("`Idempotency-Key` must be 1 to 255 visible ASCII characters")
        })?;
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    let fingerprint = hex::encode(hasher.finalize());

    match state
        .store
        .idempotency_begin(&merchant.id, key, &fingerprint, super::now_ms())
        .await?
    {
        crate::store::IdempotencyBegin::Started => {}
        crate::store::IdempotencyBegin::Completed { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let answer = Answer {
                status,
                body,
                stored: true,
                retry: false,
            };
            return Ok(answer.into_response(true));
        }
        crate::store::IdempotencyBegin::InProgress => {
            return Err(ApiError::conflict(
                "idempotency_in_progress",
                format!(
                    "a request with Idempotency-Key `{key}` is still being processed; retry later"
                ),
            ));
        }
        crate::store::IdempotencyBegin::Mismatch => {
            return Err(ApiError::conflict(
                "idempotency_key_reused",
                format!("Idempotency-Key `{key}` was used with a different request"),
            ));
        }
    }
    let claim = Key {
        merchant_id: merchant.id.clone(),
        key: key.to_string(),
    };
    let answer = match op(Some(claim)).await {
        Ok(a) => a,
        Err(e) => Answer::from(e),
    };
    if answer.stored {
        // Completed with the operation's own write.
    } else if answer.retry {
        state.store.idempotency_release(&merchant.id, key).await?;
    } else {
        state
            .store
            .idempotency_complete(&merchant.id, key, answer.status.as_u16(), &answer.body)
            .await?;
    }
    Ok(answer.into_response(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only final answers are kept under a key; "try again" answers are not.
    #[test]
    fn answers_that_say_retry_are_not_final() {
        let retry = |e: ApiError| Answer::from(e).retry;
        for code in RETRY_CODES {
            assert!(retry(ApiError::conflict(code, "later")), "{code}");
        }
        assert!(retry(ApiError::internal("boom")));
        assert!(retry(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "slow down",
            "x"
        )));
        // Final: the same request would get the same answer again.
        assert!(!retry(ApiError::conflict("order_exists", "other values")));
        assert!(!retry(ApiError::validation("bad amount")));
        assert!(!Answer::json(StatusCode::CREATED, &1).retry);
    }
}
