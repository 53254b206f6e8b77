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
            StoreError::CapExceeded { .. } => Self::internal(e.to_string()),
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, self.body()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        resp.extensions_mut().insert(ProblemCode(self.code));
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}
