//! `Idempotency-Key` on mutating calls (IETF httpapi-idempotency-key draft):
//! the first request with a key runs and its answer is stored; a repeat with
//! the same body gets that answer again; a repeat with another body, or
//! while the first is still running, is refused.

use super::problem::ApiError;
use super::{AppState, Merchant};
use crate::flows::in_flight::InFlight;
use crate::store::{IdempotencyBegin, KeyClaim};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// An answer as stored and replayed.
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// What the operation did with the key.
    pub key: KeyUse,
    /// The answer says "try again" (a conflict in progress, a concurrent
    /// update): it is not the key's final answer.
    pub retry: bool,
}

/// What an operation did with the request's key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyUse {
    /// Nothing: the wrapper claimed it ([`run`]), or nobody did
    /// ([`run_claiming`]: the operation failed before its claiming write).
    Untouched,
    /// Claimed in the operation's own write; no answer stored yet.
    Claimed,
    /// This answer is stored under the key, in the transaction of the
    /// operation's own write.
    Stored,
    /// The key belongs to an earlier request; the operation did nothing.
    Held(IdempotencyBegin),
}

/// The key a request runs under, for an operation that claims or
/// completes it in its own transaction ([`crate::store::KeyClaim`],
/// [`crate::store::KeyCompletion`]).
#[derive(Debug, Clone)]
pub struct Key {
    pub merchant_id: String,
    pub key: String,
    /// Hash of the route and body: the same key with another body is refused.
    pub request_hash: String,
    /// When the request arrived (Unix ms).
    pub now: i64,
}

impl Key {
    pub fn claim(&self) -> KeyClaim {
        KeyClaim {
            merchant_id: self.merchant_id.clone(),
            key: self.key.clone(),
            request_hash: self.request_hash.clone(),
            now: self.now,
        }
    }
}

impl Answer {
    pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Self {
        Answer {
            status,
            body: serde_json::to_vec(value).unwrap_or_default(),
            key: KeyUse::Untouched,
            retry: false,
        }
    }

    /// The operation found the key held by an earlier request and did
    /// nothing; the wrapper answers for the key.
    pub fn held(begin: IdempotencyBegin) -> Self {
        Answer {
            status: StatusCode::CONFLICT,
            body: Vec::new(),
            key: KeyUse::Held(begin),
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
            key: KeyUse::Untouched,
            retry: e.status.is_server_error()
                || e.status == StatusCode::TOO_MANY_REQUESTS
                || RETRY_CODES.contains(&e.code),
        }
    }
}

/// The request's key and the hash of what it asks, if it has one.
fn key_of(
    merchant: &Merchant,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
) -> Result<Option<Key>, ApiError> {
    let Some(key) = headers.get("idempotency-key") else {
        return Ok(None);
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
    Ok(Some(Key {
        merchant_id: merchant.id.clone(),
        key: key.to_string(),
        request_hash: hex::encode(hasher.finalize()),
        now: super::now_ms(),
    }))
}

/// The answer for a key an earlier request holds.
fn held(begin: IdempotencyBegin, key: &str) -> Result<Response, ApiError> {
    match begin {
        IdempotencyBegin::Completed { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let answer = Answer {
                status,
                body,
                key: KeyUse::Stored,
                retry: false,
            };
            Ok(answer.into_response(true))
        }
        IdempotencyBegin::InProgress => Err(in_progress(key)),
        IdempotencyBegin::Mismatch => Err(reused(key)),
        IdempotencyBegin::Started => Err(ApiError::internal(format!(
            "Idempotency-Key `{key}` was claimed but reported as held"
        ))),
    }
}

fn in_progress(key: &str) -> ApiError {
    ApiError::conflict(
        "idempotency_in_progress",
        format!("a request with Idempotency-Key `{key}` is still being processed; retry later"),
    )
}

fn reused(key: &str) -> ApiError {
    ApiError::conflict(
        "idempotency_key_reused",
        format!("Idempotency-Key `{key}` was used with a different request"),
    )
}

/// Keeps the answer of a request that holds its key: "try again" answers
/// free the key so that the client's retry runs again; every other answer
/// is stored for replay.
async fn finish(state: &AppState, key: &Key, answer: Answer) -> Result<Response, ApiError> {
    if answer.key == KeyUse::Stored {
        // Completed with the operation's own write.
    } else if answer.retry {
        state
            .store
            .idempotency_release(&key.merchant_id, &key.key)
            .await?;
    } else {
        state
            .store
            .idempotency_complete(
                &key.merchant_id,
                &key.key,
                answer.status.as_u16(),
                &answer.body,
            )
            .await?;
    }
    Ok(answer.into_response(false))
}

/// Runs `op` under the request's `Idempotency-Key`, if it has one, claiming
/// the key in a commit of its own first (for operations that do not claim
/// it themselves).
///
/// Answers that say "retry" (5xx, 429, a conflict in progress) release the
/// key so that the client's retry with the same key runs again; every
/// other answer is kept and replayed. `op` gets the key, to complete it in
/// its own transaction where it writes (then [`KeyUse::Stored`]).
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
    let Some(key) = key_of(merchant, headers, route, body)? else {
        return Ok(without_key(op(None).await));
    };
    let begin = state
        .store
        .idempotency_begin(&key.merchant_id, &key.key, &key.request_hash, key.now)
        .await?;
    if begin != IdempotencyBegin::Started {
        return held(begin, &key.key);
    }
    let answer = op(Some(key.clone())).await.unwrap_or_else(Answer::from);
    finish(state, &key, answer).await
}

/// [`run`] for an operation that claims the key in its own first write
/// ([`crate::store::Store::insert_order_claiming`]) and completes it in its
/// last: a request with a key then waits for no commit of its own.
///
/// The guarantees are [`run`]'s: one request of a key runs at a time
/// (others are told `idempotency_in_progress`), a key used with another
/// body is refused, a final answer is replayed. An operation that fails
/// before its claiming write settles the key here in one commit: its
/// answer is kept (or, if an earlier request holds the key, that one's
/// answer given) exactly as if the key had been claimed first. `op`
/// answers `Err` only when it wrote nothing under the key; once it has
/// claimed it, it answers with [`KeyUse::Claimed`] or [`KeyUse::Stored`].
pub async fn run_claiming<F, Fut>(
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
    let Some(key) = key_of(merchant, headers, route, body)? else {
        return Ok(without_key(op(None).await));
    };
    // In this process a concurrent request with the key is turned away
    // here, as the claim first would; across replicas the claim in the
    // operation's write decides.
    let in_flight = (
        crate::flows::store_id(state),
        key.merchant_id.clone(),
        key.key.clone(),
    );
    let _running = KEYS
        .claim(in_flight, key.request_hash.clone())
        .map_err(|hash| {
            if hash == key.request_hash {
                in_progress(&key.key)
            } else {
                reused(&key.key)
            }
        })?;
    let answer = match op(Some(key.clone())).await {
        Ok(answer) => answer,
        Err(e) => {
            // Failed before its claiming write: settle the key here, and
            // answer with the error as it is (its headers) if this request
            // got the key.
            let answer = Answer::from(e.clone());
            return match settle(state, &key, &answer).await? {
                IdempotencyBegin::Started => Err(e),
                begin => held(begin, &key.key),
            };
        }
    };
    match answer.key {
        KeyUse::Held(begin) => held(begin, &key.key),
        KeyUse::Claimed | KeyUse::Stored => finish(state, &key, answer).await,
        KeyUse::Untouched => match settle(state, &key, &answer).await? {
            IdempotencyBegin::Started => Ok(answer.into_response(false)),
            begin => held(begin, &key.key),
        },
    }
}

/// Claims the key of a request that answered without claiming it, keeping
/// its answer unless that says "try again".
async fn settle(
    state: &AppState,
    key: &Key,
    answer: &Answer,
) -> Result<IdempotencyBegin, ApiError> {
    let keep = (!answer.retry).then_some((answer.status.as_u16(), &answer.body[..]));
    Ok(state.store.idempotency_settle(&key.claim(), keep).await?)
}

fn without_key(result: Result<Answer, ApiError>) -> Response {
    match result {
        Ok(answer) => answer.into_response(false),
        Err(e) => e.into_response(),
    }
}

/// Keys of [`run_claiming`] requests running in this process, with their
/// request hashes.
static KEYS: InFlight<(usize, String, String), String> = InFlight::new();

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
