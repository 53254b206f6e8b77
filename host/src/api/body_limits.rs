//! Request bodies bounded per route, in size and in time, refused with a
//! problem document that names the setting.
//!
//! A route that reads a body is wrapped in [`bound`]: a body
//! declared larger than the route's limit is 413 before a byte of it is
//! read; one that turns out larger, or that has not arrived within the
//! time-out, makes the read fail (so the handler does nothing with it) and
//! the answer is 413 `payload_too_large` or 408 `body_timeout`. The
//! notify endpoint bounds its body itself (`[notify]`), because it records
//! what it refused.

use super::problem::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

/// One route's body bounds and the settings that set them.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub max_bytes: usize,
    pub size_setting: &'static str,
    pub timeout: Duration,
    pub timeout_setting: &'static str,
}

impl BodyLimit {
    /// The API's JSON bodies (`server.limits`).
    pub fn api(limits: &crate::server::HttpLimits) -> Self {
        BodyLimit {
            max_bytes: limits.max_body_bytes,
            size_setting: "server.limits.max_body_bytes",
            timeout: limits.body_timeout(),
            timeout_setting: "server.limits.body_timeout_ms",
        }
    }

    /// An adapter component uploaded by the operator (a fixed size limit).
    pub fn upload(limits: &crate::server::HttpLimits) -> Self {
        BodyLimit {
            max_bytes: super::admin::MAX_COMPONENT_BYTES,
            size_setting: "adapter_component_bytes",
            ..Self::api(limits)
        }
    }
}

/// Which bound a body crossed while it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crossed {
    Size,
    Time,
}

impl BodyLimit {
    fn too_large(&self) -> Response {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body is too large",
            format!(
                "this endpoint takes bodies of at most {} bytes (`{}`)",
                self.max_bytes, self.size_setting
            ),
        )
        .with("limit", self.size_setting)
        .with("max_bytes", self.max_bytes)
        .into_response()
    }

    fn timed_out(&self) -> Response {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "The request body did not arrive in time",
            format!(
                "the body was not received within {} ms (`{}`)",
                self.timeout.as_millis(),
                self.timeout_setting
            ),
        )
        .with("limit", self.timeout_setting)
        .into_response()
    }
}

/// The middleware (`from_fn_with_state(limit, bound)`) that holds a
/// route's bodies to `limit`.
pub async fn bound(State(limit): State<BodyLimit>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.max_bytes as u64) {
        return limit.too_large();
    }
    let crossed = Arc::new(OnceLock::new());
    let req = req.map(|inner| {
        Body::new(Bounded {
            inner,
            remaining: limit.max_bytes,
            deadline: Box::pin(tokio::time::sleep(limit.timeout)),
            crossed: crossed.clone(),
        })
    });
    let resp = next.run(req).await;
    // The handler saw its body fail and answered as it does for a broken
    // body; the answer names the bound instead.
    match crossed.get() {
        Some(Crossed::Size) => limit.too_large(),
        Some(Crossed::Time) => limit.timed_out(),
        None => resp,
    }
}

/// A body that fails once it is over `remaining` bytes or past `deadline`,
/// noting which in `crossed`.
struct Bounded {
    inner: Body,
    remaining: usize,
    deadline: Pin<Box<tokio::time::Sleep>>,
    crossed: Arc<OnceLock<Crossed>>,
}

impl Bounded {
    fn fail(&self, why: Crossed) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let _ = self.crossed.set(why);
        let message = match why {
            Crossed::Size => "request body over its size limit",
            Crossed::Time => "request body not received in time",
        };
        Poll::Ready(Some(Err(axum::Error::new(message))))
    }
}

impl http_body::Body for Bounded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.crossed.get().is_some() {
            return Poll::Ready(None);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return this.fail(Crossed::Time);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, Bytes::len);
                if len > this.remaining {
                    return this.fail(Crossed::Size);
                }
                this.remaining -= len;
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt;

    fn app(max_bytes: usize, timeout: Duration) -> Router {
        let limit = BodyLimit {
            max_bytes,
            size_setting: "test.max",
            timeout,
            timeout_setting: "test.timeout",
        };
        Router::new().route(
            "/",
            post(|body: Bytes| async move { body.len().to_string() })
                .layer(axum::middleware::from_fn_with_state(limit, bound)),
        )
    }

    async fn send(app: Router, body: Body) -> (StatusCode, String) {
        let req = axum::http::Request::post("/").body(body).unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn chunks(parts: Vec<&'static [u8]>) -> Body {
        let stream = futures_util::stream::iter(
            parts
                .into_iter()
                .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p))),
        );
        Body::from_stream(stream)
    }

    #[tokio::test]
    async fn a_body_at_the_limit_passes_one_over_it_is_413_naming_the_setting() {
        let (status, text) = send(
            app(8, Duration::from_secs(60)),
            chunks(vec![b"1234", b"5678"]),
        )
        .await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, "8"));
        // Streamed (no Content-Length): found while reading.
        let (status, text) = send(
            app(8, Duration::from_secs(60)),
            chunks(vec![b"1234", b"56789"]),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["code"], "payload_too_large");
        assert_eq!(doc["limit"], "test.max");
        // Declared: refused before reading.
        let (status, _) = send(app(8, Duration::from_secs(60)), Body::from("123456789")).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn a_body_that_stalls_is_408_naming_the_setting() {
        let stalled =
            Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>());
        let (status, text) = send(app(8, Duration::from_millis(50)), stalled).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{text}");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["code"], "body_timeout");
        assert_eq!(doc["limit"], "test.timeout");
    }
}
