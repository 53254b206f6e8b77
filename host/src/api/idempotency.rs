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
}

impl Answer {
    pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Self {
        Answer {
            status,
            body: serde_json::to_vec(value).unwrap_or_default(),
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

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Self {
        Answer {
            status: e.status,
            body: e.body(),
        }
    }
}

/// Runs `op` under the request's `Idempotency-Key`, if it has one.
///
/// Failures that changed nothing and may succeed later (5xx, 429) release
/// the key so that the client's retry with the same key runs again; every
/// other answer is kept and replayed.
pub async fn run<F>(
    state: &AppState,
    merchant: &Merchant,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
    op: F,
) -> Result<Response, ApiError>
where
    F: Future<Output = Result<Answer, ApiError>>,
{
    let Some(key) = headers.get("idempotency-key") else {
        return Ok(match op.await {
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
            return Ok(Answer { status, body }.into_response(true));
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
    let answer = match op.await {
        Ok(a) => a,
        Err(e) => Answer::from(e),
    };
    if answer.status.is_server_error() || answer.status == StatusCode::TOO_MANY_REQUESTS {
        state.store.idempotency_release(&merchant.id, key).await?;
    } else {
        state
            .store
            .idempotency_complete(&merchant.id, key, answer.status.as_u16(), &answer.body)
            .await?;
    }
    Ok(answer.into_response(false))
}
