//! One log line per HTTP request (target `payhost::request`): its id, the
//! merchant, the method, the route template (never the raw path, which
//! carries order numbers), the status and the latency; the latency also
//! feeds `payhost_http_request_duration_seconds`.
//!
//! Nothing of the request's headers or body is logged: the merchant is
//! named by the id its API key maps to, never by the key.

use crate::api::AppState;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// The route a request without a matching route is logged under.
const UNMATCHED: &str = "unmatched";

/// Logs the request once its answer is ready. Installed with
/// `Router::layer`, so it runs after routing and knows the matched route.
pub async fn log_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let (merchant, req) = merchant_of(&state, req, route.as_deref()).await;
    let method = req.method().clone();
    let resp = next.run(req).await;
    let latency = started.elapsed();
    let route = route.as_deref().unwrap_or(UNMATCHED);
    state.metrics.request_duration(route, latency.as_secs_f64());
    let request_id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info!(
        target: "payhost::request",
        request_id,
        merchant = merchant.as_deref().unwrap_or("-"),
        method = %method,
        route,
        status = resp.status().as_u16(),
        latency_ms = latency.as_micros() as f64 / 1000.0,
        "request"
    );
    resp
}

/// The merchant a request is for: the one its bearer key belongs to, or on
/// the notify route the configured merchant its path names.
async fn merchant_of(
    state: &AppState,
    req: Request,
    route: Option<&str>,
) -> (Option<String>, Request) {
    if let Some(key) = crate::api::bearer(req.headers())
        && let Some(id) = state.api_keys.get(&crate::config::api_key_hash(key))
    {
        return (Some(id.clone()), req);
    }
    if route != Some("/v1/notify/{adapter}/{merchant}") {
        return (None, req);
    }
    let (mut parts, body) = req.into_parts();
    let merchant = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok()
        .and_then(|params| {
            params
                .iter()
                .find(|(name, _)| *name == "merchant")
                .map(|(_, v)| v.to_owned())
        })
        .filter(|id| state.merchants.contains_key(id));
    (merchant, Request::from_parts(parts, body))
}
