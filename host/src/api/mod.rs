//! The HTTP API (axum): one resource per file.
//!
//! - [`payments`]: `POST /v1/payments`, `GET /v1/payments/{no}`, and the
//!   refunds under a payment;
//! - [`notify`]: `/v1/notify/{adapter}/{merchant}`, where providers post
//!   their asynchronous notifications;
//! - [`events`]: `GET /v1/events`, the merchant's webhook deliveries;
//! - [`admin`]: `/admin/adapters`, adapter versions: upload, rollback,
//!   listing (the operator's credential, never a merchant key);
//! - [`health`]: `/healthz`, `/readyz`, `/metrics`;
//! - [`openapi`]: `/openapi.json`, the document of all of the above;
//! - [`problem`]: the one error shape (RFC 9457 problem details), also for
//!   the framework's own refusals;
//! - [`body_limits`]: each route's body bounds (size, time);
//! - [`validate`]: what a provider cannot carry, refused before it is sent.
//!
//! Every state change is committed to the store before the answer leaves.

pub mod admin;
pub mod body_limits;
pub mod contracts;
pub mod events;
pub mod health;
pub mod idempotency;
pub mod notify;
pub mod openapi;
pub mod payments;
pub mod payouts;
pub mod problem;
pub mod validate;

use crate::contract::CallContext;
use crate::limits::RateLimiter;
use crate::merchant::MerchantConfig;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::store::Store;
use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use problem::ApiError;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::Arc;

/// One merchant as the API serves it.
#[derive(Debug)]
pub struct Merchant {
    pub id: String,
    /// The adapter slot its payments go through.
    pub adapter: String,
    /// The adapter configuration, secrets resolved, validated at start.
    pub adapter_config: MerchantConfig,
    /// The merchant's own currency; its limits are counted in it.
    pub currency: String,
    /// The currencies orders may be in (`currency`, maybe CNY as well);
    /// refunds are paid in the order's.
    pub currencies: Vec<String>,
    /// Units of `currency` per 1 CNY, for CNY orders of a merchant in
    /// another currency.
    pub cny_rate: Option<String>,
    pub limits: crate::limits::MerchantLimits,
    /// The payout limits payhost keeps before asking the provider.
    pub payouts: crate::limits::PayoutPolicy,
    /// The deduction policy payhost keeps before asking the provider.
    pub contracts: crate::limits::ContractPolicy,
    /// Where the merchant's day starts (per-payer daily caps).
    pub timezone: jiff::tz::TimeZone,
    pub callback_url: Option<String>,
    pub webhook_secret: Option<SecretString>,
}

impl Merchant {
    /// `amount_minor` of `currency` in the merchant's own currency, as its
    /// limits count it (rounded down, as [`crate::limits::convert_cny_minor`]).
    pub fn limit_minor(&self, amount_minor: i64, currency: &str) -> Result<i64, String> {
        if currency == self.currency {
            return Ok(amount_minor);
        }
        let rate = self
            .cny_rate
            .as_deref()
            .filter(|_| currency == "CNY")
            .ok_or_else(|| format!("no rate converts {currency} into {}", self.currency))?;
        let minor = u64::try_from(amount_minor).unwrap_or(0);
        let converted = crate::limits::convert_cny_minor(minor, rate, &self.currency)?;
        Ok(i64::try_from(converted).unwrap_or(i64::MAX))
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Arc<Runtime>,
    pub registry: Arc<Registry>,
    pub store: Arc<dyn Store>,
    pub merchants: Arc<HashMap<String, Arc<Merchant>>>,
    /// `sha256:<hex>` of an API key -> merchant id.
    pub api_keys: Arc<HashMap<String, String>>,
    pub public_base_url: String,
    pub rate_limiter: Arc<RateLimiter>,
    pub metrics: Arc<Metrics>,
    /// First poll of an order whose adapter sends no notifications.
    pub poll_without_notifications_ms: i64,
    /// First poll of an order whose notification has not come (and of an
    /// order still `created`, or a refund the provider accepted).
    pub notify_overdue_ms: i64,
    /// The reconciler's back-off: first wait and longest wait (ms).
    pub poll_backoff_ms: (i64, i64),
    /// The bearer token of `/admin/*`; none disables that API.
    pub admin_token: Option<Arc<SecretString>>,
    /// Size, rate and concurrency bounds of `/v1/notify`.
    pub notify_guard: Arc<crate::notify_guard::NotifyGuard>,
    /// `[server.limits]`: the API's body bounds come from here.
    pub http_limits: crate::server::HttpLimits,
    /// Set when the server is stopping: `/readyz` turns 503 so a load
    /// balancer sends new requests elsewhere.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    /// Takes one call of `op` from the merchant's rate
    /// ([`RateLimiter::take`]).
    pub async fn take_rate(
        &self,
        merchant: &Merchant,
        op: crate::limits::Op,
    ) -> Result<(), crate::limits::RateLimited> {
        self.rate_limiter
            .take(
                self.store.as_ref(),
                &merchant.id,
                &merchant.limits.rates,
                op,
            )
            .await
    }

    /// The URL providers post this merchant's notifications to.
    pub fn notify_url(&self, merchant: &Merchant) -> String {
        format!(
            "{}/v1/notify/{}/{}",
            self.public_base_url.trim_end_matches('/'),
            merchant.adapter,
            merchant.id
        )
    }

    /// When the reconciler first looks at a new pending order.
    pub fn first_poll_delay_ms(&self, sends_notifications: bool) -> i64 {
        if sends_notifications {
            self.notify_overdue_ms
        } else {
            self.poll_without_notifications_ms
        }
    }

    /// The adapter version a merchant's call goes through: its pinned
    /// digest, else its slot's active version. The caller keeps the `Arc`
    /// for the whole operation, so a swap meanwhile does not affect it.
    pub fn adapter_for(
        &self,
        merchant: &Merchant,
    ) -> Result<Arc<crate::runtime::LoadedAdapter>, ApiError> {
        let pin = self.registry.pin_of(&merchant.id);
        self.registry
            .get_for(&merchant.adapter, pin.as_deref())
            .map_err(|e| {
                let mut err = ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "adapter_unavailable",
                    "The provider adapter is not loaded",
                    e.to_string(),
                );
                if let Some(pin) = pin {
                    err = err.with("pinned_digest", pin);
                }
                err
            })
    }

    /// A fresh call context: one timestamp and one seed per operation.
    pub fn call_context(&self, merchant: &Merchant) -> CallContext {
        CallContext {
            request_id: problem::current_request_id(),
            timestamp: now_ms() / 1000,
            seed: rand::random(),
            notify_url: self.notify_url(merchant),
        }
    }
}

impl Merchant {
    /// Start of the merchant's calendar day containing `at_ms` (Unix ms).
    pub fn day_start_ms(&self, at_ms: i64) -> i64 {
        crate::limits::day_start_ms(&self.timezone, at_ms)
    }
}

pub use crate::clock::now_ms;

/// The token of an `Authorization: Bearer <token>` header; the scheme is
/// case-insensitive (RFC 9110 section 11.1).
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
}

/// The merchant whose bearer API key authenticated the request.
pub struct AuthMerchant(pub Arc<Merchant>);

impl FromRequestParts<AppState> for AuthMerchant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(ApiError::unauthorized(
                "send `Authorization: Bearer <merchant API key>`",
            ));
        }
        let key = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <merchant API key>`")
        })?;
        // Looking up a hash, not the key, keeps the comparison independent
        // of how much of a guessed key is right.
        let merchant = state
            .api_keys
            .get(&crate::config::api_key_hash(key))
            .and_then(|id| state.merchants.get(id))
            .ok_or_else(|| ApiError::unauthorized("unknown API key"))?;
        Ok(AuthMerchant(merchant.clone()))
    }
}

/// A request's `metadata` as stored: `null` when none was given.
pub(crate) fn metadata_value(m: serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    if m.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::Object(m)
    }
}

/// Parses a JSON body strictly (unknown fields are errors) with a message
/// that names the problem and where it is.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::validation(
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::validation(format!("invalid JSON body: {e}")))
}

/// A query string parsed like axum's `Query`, refused with a problem
/// document (not axum's plain-text rejection).
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::validation(e.body_text()))
    }
}

/// Gives every request an id (`x-request-id`, echoed back) that problem
/// documents and logs carry.
pub async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(String::from)
        .unwrap_or_else(|| format!("req_{}", ulid::Ulid::new()));
    let mut resp = problem::REQUEST_ID.scope(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The whole API.
///
/// Every route that reads a body has its own bounds ([`body_limits`]);
/// the notify endpoint bounds its body itself (`[notify]`). Every error
/// answer, the framework's included, is a problem document.
pub fn router(state: AppState) -> Router {
    use axum::middleware::{from_fn, from_fn_with_state};
    use axum::routing::{delete, get, post, put};
    use body_limits::{BodyLimit, bound};
    let api_body = from_fn_with_state(BodyLimit::api(&state.http_limits), bound);
    let upload_body = from_fn_with_state(BodyLimit::upload(&state.http_limits), bound);
    Router::new()
        .route(
            "/v1/payments",
            post(payments::create).layer(api_body.clone()),
        )
        .route("/v1/payments/{merchant_order_no}", get(payments::get))
        .route(
            "/v1/payments/{merchant_order_no}/refunds",
            post(payments::create_refund)
                .layer(api_body.clone())
                .get(payments::list_refunds),
        )
        .route(
            "/v1/payments/{merchant_order_no}/refunds/{refund_no}",
            get(payments::get_refund),
        )
        .route("/v1/payouts", post(payouts::create).layer(api_body.clone()))
        .route("/v1/payouts/{payout_no}", get(payouts::get))
        .route(
            "/v1/contracts",
            post(contracts::create).layer(api_body.clone()),
        )
        .route(
            "/v1/contracts/{contract_no}",
            get(contracts::get).merge(delete(contracts::terminate).layer(api_body.clone())),
        )
        .route(
            "/v1/contracts/{contract_no}/resume",
            post(contracts::resume),
        )
        .route(
            "/v1/contracts/{contract_no}/deductions",
            post(contracts::create_deduction).layer(api_body.clone()),
        )
        .route(
            "/v1/contracts/{contract_no}/deductions/{deduction_no}",
            get(contracts::get_deduction),
        )
        .route(
            "/v1/notify/{adapter}/{merchant}",
            post(notify::receive).get(notify::receive),
        )
        .route("/v1/events", get(events::list))
        .route("/admin/adapters", get(admin::list))
        .route("/admin/events", get(admin::events))
        .route(
            "/admin/adapters/{name}",
            put(admin::upload)
                .layer::<_, std::convert::Infallible>(upload_body)
                .layer(axum::extract::DefaultBodyLimit::max(
                    admin::MAX_COMPONENT_BYTES,
                ))
                .get(admin::show),
        )
        .route(
            "/admin/adapters/{name}/rollback",
            post(admin::rollback).layer(api_body),
        )
        .route("/admin/adapters/{name}/versions", get(admin::versions))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::serve))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                format!("this endpoint does not take {method}"),
            )
        })
        // What the bounds above do not cover reads no body; this keeps
        // axum's own limit at the API's for any that would.
        .layer(axum::extract::DefaultBodyLimit::max(
            state.http_limits.max_body_bytes,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            problem::panicked,
        ))
        .layer(from_fn(problem::framework_errors))
        .layer(from_fn_with_state(state.clone(), health::track))
        .layer(from_fn(request_id))
        .with_state(state)
}
