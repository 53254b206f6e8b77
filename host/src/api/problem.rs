//! One error shape for every failure: RFC 9457 problem details
//! (`application/problem+json`) with a stable `code` and the request id.

use crate::CallError;
use crate::contract::AdapterError;
use crate::store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

tokio::task_local! {
    /// The id of the request being served; set by [`super::request_id`].
    pub static REQUEST_ID: String;
}

/// The current request's id, or `-` outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "-".into())
}

/// Attached to every problem response so metrics can count by code.
#[derive(Debug, Clone, Copy)]
pub struct ProblemCode(pub &'static str);

/// Marks an answer that must leave exactly as built, whatever its status:
/// the acknowledgement an adapter wrote for its provider.
#[derive(Debug, Clone, Copy)]
pub struct Verbatim;

/// An API failure: HTTP status, stable code, human title and detail.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Extra members (e.g. which limit was hit, the provider's code).
    pub extra: serde_json::Map<String, serde_json::Value>,
    pub retry_after: Option<u64>,
}

/// The problem document as sent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:payhost:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code; see the README's error table.
    pub code: String,
    pub request_id: String,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code,
            title,
            detail: detail.into(),
            extra: Default::default(),
            retry_after: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "The request is not valid",
            detail,
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or unknown credentials",
            detail,
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "These credentials may not do this",
            detail,
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "No such resource",
            detail,
        )
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            code,
            "The request conflicts with the current state",
            detail,
        )
    }

    pub fn limit_exceeded(limit: &str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
            "A payment limit would be exceeded",
            detail,
        )
        .with("limit", limit)
    }

    pub fn rate_limited(limit: &str, retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests",
            format!("the `{limit}` rate limit is exhausted; retry in {retry_after_secs} s"),
        )
        .with("limit", limit);
        e.retry_after = Some(retry_after_secs);
        e
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "payhost failed",
            detail,
        )
    }
}

impl From<crate::limits::RateLimited> for ApiError {
    fn from(e: crate::limits::RateLimited) -> Self {
        Self::rate_limited(e.limit, e.retry_after.as_secs().max(1))
    }
}

impl From<crate::limits::LimitExceeded> for ApiError {
    fn from(e: crate::limits::LimitExceeded) -> Self {
        Self::limit_exceeded(
            e.limit,
            format!(
                "the `{}` limit is {} minor units and this payment would exceed it",
                e.limit, e.max_minor
            ),
        )
        .with("max_minor", e.max_minor)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "The order store is unavailable",
                m,
            )
            .retry(1),
            StoreError::Conflict => {
                Self::conflict("concurrent_update", "the order changed concurrently; retry")
            }
            StoreError::Corrupt(m) => Self::internal(format!("store data: {m}")),
            // Callers that insert under a cap turn this into the limit's own
            // problem; reaching here is a bug.
            StoreError::CapExceeded { .. }
            | StoreError::PayoutLimit { .. }
            | StoreError::Deduction(_) => Self::internal(e.to_string()),
        }
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        let detail = e.to_string();
        match e {
            CallError::Adapter { error, .. } => match error {
                AdapterError::InvalidRequest(m) => Self::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "The provider adapter refused the request",
                    m,
                ),
                AdapterError::Unsupported(m) => Self::new(
                    StatusCode::BAD_REQUEST,
                    "unsupported",
                    "Not supported by this provider",
                    m,
                ),
                AdapterError::InvalidConfig(m) => Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "merchant_misconfigured",
                    "The merchant's provider configuration is wrong",
                    m,
                ),
                AdapterError::ProviderRejected(r) => Self::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_rejected",
                    "The payment provider refused",
                    r.message.clone(),
                )
                .with("provider_code", r.code)
                .with("retryable", r.retryable),
                AdapterError::MalformedResponse(m) => Self::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_malformed",
                    "The provider's answer was not understood",
                    m,
                ),
                AdapterError::BadSignature(m) => Self::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_bad_signature",
                    "The provider's answer did not verify",
                    m,
                ),
                AdapterError::Nondeterministic(m) => Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "adapter_failed",
                    "The provider adapter failed",
                    m,
                ),
            },
            CallError::Transport(_) | CallError::ResponseTooLarge { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                "provider_unreachable",
                "The payment provider could not be reached",
                detail,
            )
            .with("retryable", true),
            CallError::EgressDenied { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                "egress_denied",
                "The provider's host is not allowed",
                detail,
            ),
            CallError::InvalidConfig(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "merchant_misconfigured",
                "The merchant's provider configuration is wrong",
                detail,
            ),
            CallError::Trap { .. }
            | CallError::Deadline
            | CallError::OperationDeadline { .. }
            | CallError::TooLarge { .. }
            | CallError::MemoryLimit
            | CallError::StepLimit(_)
            | CallError::Nondeterministic(_)
            | CallError::Host(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "adapter_failed",
                "The provider adapter failed",
                detail,
            ),
        }
    }
}

impl ApiError {
    fn retry(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The problem document, as JSON bytes.
    pub fn body(&self) -> Vec<u8> {
        let mut doc = serde_json::Map::new();
        doc.insert(
            "type".into(),
            format!("urn:payhost:problem:{}", self.code).into(),
        );
        doc.insert("title".into(), self.title.into());
        doc.insert("status".into(), self.status.as_u16().into());
        doc.insert("detail".into(), self.detail.clone().into());
        doc.insert("code".into(), self.code.into());
        doc.insert("request_id".into(), current_request_id().into());
        for (k, v) in &self.extra {
            doc.insert(k.clone(), v.clone());
        }
        serde_json::to_vec(&doc).unwrap_or_default()
    }
}

impl ApiError {
    /// The problem for an error answer the framework (axum's extractors and
    /// router, hyper) produced, by its status; `detail` is its text.
    pub fn from_framework(status: StatusCode, detail: String) -> Self {
        let (code, title) = match status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                ("validation_failed", "The request is not valid")
            }
            StatusCode::NOT_FOUND => ("not_found", "No such resource"),
            StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "Method not allowed"),
            StatusCode::REQUEST_TIMEOUT => ("body_timeout", "The request did not arrive in time"),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "The request body is too large"),
            StatusCode::URI_TOO_LONG => ("uri_too_long", "The request URI is too long"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "The request body's media type is not taken",
            ),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                ("headers_too_large", "The request headers are too large")
            }
            s if s.is_server_error() => ("internal", "payhost failed"),
            _ => ("bad_request", "The request cannot be served"),
        };
        let detail = if detail.trim().is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            detail
        };
        Self::new(status, code, title, detail)
    }
}

/// Longest framework error text kept as a problem's `detail`.
const FRAMEWORK_DETAIL_BYTES: usize = 1024;

/// Turns every error answer that is not yet a problem document (axum's
/// plain-text rejections: a path that does not decode, a body that could
/// not be read, ...) into one, so a client parses one shape for every
/// failure. Answers marked [`Verbatim`] pass unchanged.
pub async fn framework_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let ext = resp.extensions();
    // A stored problem replayed under an Idempotency-Key has no
    // `ProblemCode`, but says what it is.
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    if !(status.is_client_error() || status.is_server_error())
        || is_problem
        || ext.get::<ProblemCode>().is_some()
        || ext.get::<Verbatim>().is_some()
    {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // These texts are axum's own, a line or two; longer is cut.
    let text = axum::body::to_bytes(body, FRAMEWORK_DETAIL_BYTES * 4)
        .await
        .map(|b| {
            let cut = b.len().min(FRAMEWORK_DETAIL_BYTES);
            String::from_utf8_lossy(&b[..cut]).into_owned()
        })
        .unwrap_or_default();
    let mut problem = ApiError::from_framework(status, text);
    if let Some(s) = parts
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
    {
        problem.retry_after = Some(s);
    }
    problem.into_response()
}

/// The answer of a handler that panicked (a bug): 500 `internal`, without
/// the panic's message, which may hold anything the handler had.
pub fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!(request_id = %current_request_id(), "a request handler panicked");
    ApiError::internal("payhost failed while serving this request; it is logged").into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, self.body()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        resp.extensions_mut().insert(ProblemCode(self.code));
        // RFC 9110 section 11.6.1: a 401 names the scheme to use.
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"payhost\""),
            );
        }
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn answer(app: Router, path: &str) -> (StatusCode, Option<String>, Vec<u8>) {
        let req = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string());
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, ct, body.to_vec())
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/plain",
                get(|| async { (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Expected JSON") }),
            )
            .route(
                "/ack",
                get(|| async {
                    let mut r = (StatusCode::BAD_REQUEST, "<xml>FAIL</xml>").into_response();
                    r.extensions_mut().insert(Verbatim);
                    r
                }),
            )
            .route("/problem", get(|| async { ApiError::not_found("gone") }))
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("secret-ish state");
                    }
                }),
            )
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
            .layer(axum::middleware::from_fn(framework_errors))
    }

    #[tokio::test]
    async fn framework_errors_become_problems_and_verbatim_answers_do_not() {
        let (status, ct, body) = answer(app(), "/plain").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["code"], "unsupported_media_type");
        assert_eq!(doc["detail"], "Expected JSON");

        let (status, ct, body) = answer(app(), "/ack").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_ne!(ct.as_deref(), Some("application/problem+json"));
        assert_eq!(body, b"<xml>FAIL</xml>");

        // A handler that panics: a 500 problem that does not repeat the panic.
        let (status, ct, body) = answer(app(), "/panic").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("\"code\":\"internal\""), "{text}");
        assert!(!text.contains("secret-ish"), "{text}");

        // A problem already is one, untouched.
        let (_, _, body) = answer(app(), "/problem").await;
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (doc["code"].as_str(), doc["detail"].as_str()),
            (Some("not_found"), Some("gone"))
        );
    }
}
