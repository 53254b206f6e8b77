//! Liveness, readiness, metrics and the OpenAPI document.

use super::AppState;
use super::problem::ApiError;
use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the store answers and adapters are loaded.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "ready"), (status = 503, body = super::problem::Problem)))]
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.store.ping().await?;
    if state.registry.names().is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "Not ready",
            "no adapter is loaded",
        ));
    }
    Ok("ready")
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

#[derive(OpenApi)]
#[openapi(
    info(title = "payhost", description = "A payment front over sandboxed provider adapters. Amounts are integers of minor units. Every error is an RFC 9457 problem document (application/problem+json) with a stable `code` and the `request_id`."),
    paths(
        super::payments::create, super::payments::get, super::payments::create_refund,
        super::payments::list_refunds, super::payments::get_refund,
        super::notify::receive, super::events::list,
        healthz, readyz, metrics,
        super::admin::list, super::admin::show, super::admin::versions,
        super::admin::upload, super::admin::rollback,
    ),
    components(schemas(
        super::payments::CreatePayment, super::payments::PayerInput, crate::resources::Payment,
        super::payments::CreateRefund, crate::resources::Refund,
        super::events::EventList, super::events::EventView, super::events::Delivery,
        super::problem::Problem,
        super::admin::AdapterList, super::admin::AdapterView, super::admin::Pin,
        super::admin::VersionList, super::admin::RollbackRequest, crate::registry::VersionView,
    )),
    modifiers(&Security),
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "merchant_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A merchant API key"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The operator's admin token (`server.admin_token`)"))
                    .build(),
            ),
        );
    }
}

/// `GET /openapi.json`: generated from the handlers and types above.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
