//! Liveness, readiness and metrics.

use super::AppState;
use super::problem::ApiError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the store answers and adapters are loaded.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "ready"), (status = 503, body = super::problem::Problem)))]
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(not_ready(vec![
            "shutting down: finishing the requests in flight".into(),
        ]));
    }
    state.store.ping().await?;
    if state.registry.names().is_empty() {
        return Err(not_ready(vec!["no adapter is loaded".into()]));
    }
    // Nor is it ready while a merchant's provider endpoint is one the egress
    // policy refuses: every create would fail with `egress_denied`. Each
    // problem names the merchant, the field and the setting to change.
    let mut problems = Vec::new();
    let mut merchants: Vec<_> = state.merchants.values().collect();
    merchants.sort_by(|a, b| a.id.cmp(&b.id));
    for m in merchants {
        match state.adapter_for(m) {
            Ok(adapter) => problems.extend(crate::config::denied_endpoints(
                state.runtime.egress(),
                &adapter.info,
                &m.adapter_config,
            )),
            Err(e) => problems.push(format!("merchant `{}`: {}", m.id, e.detail)),
        }
    }
    if problems.is_empty() {
        Ok("ready")
    } else {
        Err(not_ready(problems))
    }
}

fn not_ready(problems: Vec<String>) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        "Not ready",
        problems.join("; "),
    )
    .with("problems", problems)
}

/// `GET /metrics`: Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    // The store omits states with no orders; each state is set, to zero if
    // absent, so a gauge never keeps a count from an earlier scrape.
    let counts = state.store.count_orders_by_state().await?;
    let by_state: Vec<(String, i64)> = crate::store::OrderState::ALL
        .iter()
        .map(|s| {
            let n = counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
            (s.as_str().to_string(), n)
        })
        .collect();
    let mut resp = state.metrics.render(&by_state).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(resp)
}

/// Counts every request by route template and status, and every problem by
/// its code.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    state.metrics.request(&route, resp.status().as_u16());
    if let Some(code) = resp.extensions().get::<super::problem::ProblemCode>() {
        state.metrics.error(code.0);
    }
    resp
}
