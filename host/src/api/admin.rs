//! `/admin/adapters`: the operator's view of adapter versions -- list,
//! upload (validated, then swapped in atomically), roll back.
//!
//! Authenticated by `server.admin_token` as a bearer token, which is never
//! a merchant's key. No bearer credential, or one that is neither the
//! token nor a merchant key, is 401 with `WWW-Authenticate`; a merchant
//! key is 403 `forbidden`. Without a configured token every credential
//! answers 403 `admin_disabled`.

use super::problem::ApiError;
use super::{AppState, parse_json};
use crate::config::ApiKeyHash;
use crate::contract::Capabilities;
use crate::registry::{Refusal, Source, SwapOutcome, VersionView};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

/// The largest component an upload may carry.
pub const MAX_COMPONENT_BYTES: usize = 32 * 1024 * 1024;

/// A request that presented the admin token.
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // No usable credential is 401 whether or not the API is enabled, as
        // on the merchant API: the client learns the scheme first.
        let presented = super::bearer(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <admin token>`"))?;
        let Some(expected) = &state.admin_token else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_disabled",
                "The admin API is disabled",
                "no admin token is configured; set `server.admin_token` to a secret \
                 reference (`env:NAME` or `file:PATH`) to enable /admin",
            ));
        };
        // Compare hashes in constant time: timing must not tell how much of
        // a guessed token was right.
        let hash = ApiKeyHash::of_key(presented);
        if hash.ct_eq(&ApiKeyHash::of_key(expected.expose_secret())) {
            return Ok(AdminAuth);
        }
        // A credential payhost knows but that grants no admin rights is 403;
        // one it does not know is 401 (RFC 6750 `invalid_token`), as an
        // unknown merchant key is.
        if state.api_keys.contains_key(&hash.to_string()) {
            return Err(ApiError::forbidden(
                "a merchant API key cannot use the admin API; use the admin token",
            ));
        }
        Err(ApiError::unauthorized("unknown admin token"))
    }
}

/// One merchant pinned to a version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Pin {
    pub merchant: String,
    pub digest: String,
    /// Whether that version is loaded (if not, the merchant's calls fail
    /// with 503 `adapter_unavailable`).
    pub loaded: bool,
}

/// An adapter slot and its active version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdapterView {
    pub name: String,
    pub digest: String,
    pub version: String,
    pub contract_version: String,
    pub methods: Vec<String>,
    /// ISO 4217 codes it takes orders in; empty for a component built
    /// against contract 0.2 or older (which cannot say).
    pub currencies: Vec<String>,
    #[schema(value_type = Object)]
    pub capabilities: Capabilities,
    pub loaded_at: crate::resources::Timestamp,
    /// `admin` or `directory:<path>`.
    pub source: String,
    /// The hosts the active version declares in `describe`.
    pub declared_egress_hosts: Vec<String>,
    /// What it may reach of them: `host:port` as the operator's
    /// `[adapters.<name>] egress` allows (the hosts of a merchant's
    /// configured url fields and `egress.extra_allowed_hosts` come on top).
    pub egress_hosts: Vec<String>,
    /// Versions loaded for this slot, the active one included.
    pub versions_kept: usize,
    pub pins: Vec<Pin>,
}

/// `GET /admin/adapters`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdapterList {
    pub adapters: Vec<AdapterView>,
}

/// `GET /admin/adapters/{name}/versions`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionList {
    pub adapter: String,
    /// The active version first, then the previous ones, newest first.
    pub versions: Vec<VersionView>,
}

/// The body of `POST /admin/adapters/{name}/rollback` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// A kept version's digest; without it, the version active before the
    /// current one.
    #[schema(pattern = "^(sha256:)?[0-9A-Fa-f]{64}$")]
    pub digest: Option<String>,
}

fn view(state: &AppState, name: &str) -> Option<AdapterView> {
    let active = state.registry.active(name)?;
    let versions = state.registry.versions(name).unwrap_or_default();
    let info = active.info();
    Some(AdapterView {
        name: name.into(),
        digest: active.digest.clone(),
        version: active.version.clone(),
        contract_version: info.contract_version.clone(),
        methods: info.methods.clone(),
        currencies: info.currencies.clone(),
        capabilities: info.capabilities,
        loaded_at: crate::resources::Timestamp(active.loaded_at),
        source: active.source.to_string(),
        declared_egress_hosts: info.egress_hosts.clone(),
        egress_hosts: state.registry.effective_hosts(name),
        versions_kept: versions.len(),
        pins: state
            .registry
            .pins(name)
            .into_iter()
            .map(|(merchant, digest)| Pin {
                loaded: versions.iter().any(|v| v.digest == digest),
                merchant,
                digest,
            })
            .collect(),
    })
}

fn unknown(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_adapter",
        "No such adapter",
        format!("no adapter `{name}` is loaded"),
    )
}

/// The operator events this process kept, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OperatorEventList {
    pub events: Vec<crate::provider_health::OperatorEvent>,
}

/// `GET /admin/events`: provider failovers and recoveries (the newest
/// [`crate::provider_health::MAX_EVENTS`], in memory, per replica).
#[utoipa::path(get, path = "/admin/events",
    responses((status = 200, body = OperatorEventList), (status = "4XX", body = super::problem::Problem)),
    security(("admin_token" = [])))]
pub async fn events(State(state): State<AppState>, _: AdminAuth) -> Json<OperatorEventList> {
    Json(OperatorEventList {
        events: state.runtime.egress().health().events(),
    })
}

/// `GET /admin/adapters`
#[utoipa::path(get, path = "/admin/adapters",
    responses((status = 200, body = AdapterList), (status = "4XX", body = super::problem::Problem)),
    security(("admin_token" = [])))]
pub async fn list(State(state): State<AppState>, _: AdminAuth) -> Json<AdapterList> {
    let adapters = state
        .registry
        .names()
        .iter()
        .filter_map(|n| view(&state, n))
        .collect();
    Json(AdapterList { adapters })
}

/// `GET /admin/adapters/{name}`
#[utoipa::path(get, path = "/admin/adapters/{name}", params(("name" = String, Path)),
    responses((status = 200, body = AdapterView), (status = "4XX", body = super::problem::Problem)),
    security(("admin_token" = [])))]
pub async fn show(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
) -> Result<Json<AdapterView>, ApiError> {
    view(&state, &name).map(Json).ok_or_else(|| unknown(&name))
}

/// `GET /admin/adapters/{name}/versions`
#[utoipa::path(get, path = "/admin/adapters/{name}/versions", params(("name" = String, Path)),
    responses((status = 200, body = VersionList), (status = "4XX", body = super::problem::Problem)),
    security(("admin_token" = [])))]
pub async fn versions(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    let versions = state
        .registry
        .versions(&name)
        .ok_or_else(|| unknown(&name))?;
    Ok(Json(VersionList {
        adapter: name,
        versions,
    }))
}

/// `PUT /admin/adapters/{name}`: the body is the component's bytes.
#[utoipa::path(put, path = "/admin/adapters/{name}", params(("name" = String, Path)),
    request_body(content = Vec<u8>, description = "The adapter component (.wasm)", content_type = "application/wasm"),
    responses((status = 201, description = "Validated and now active", body = Object),
              (status = 200, description = "Already the active version", body = Object),
              (status = 400, description = "Not a usable component, a foreign import, an incompatible contract or another adapter's name", body = super::problem::Problem),
              (status = 422, description = "The new configuration schema refuses a merchant's settings, would receive a merchant's secret as plain text, or declares an egress host the operator does not allow", body = super::problem::Problem)),
    security(("admin_token" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if crate::registry::slot_of(std::path::Path::new(&format!("{name}.wasm"))).is_none() {
        return Err(ApiError::validation(format!(
            "`{name}` is not an adapter name: 1 to 64 letters, digits, `-` or `_`"
        )));
    }
    if body.is_empty() {
        return Err(ApiError::validation(
            "the body is empty; send the component's bytes (`content-type: application/wasm`)",
        ));
    }
    let registry = state.registry.clone();
    let outcome =
        tokio::task::spawn_blocking(move || registry.install(&name, &body, Source::Admin))
            .await
            .map_err(|e| ApiError::internal(format!("install task failed: {e}")))?
            .map_err(refusal)?;
    Ok(swap_answer(outcome))
}

/// `POST /admin/adapters/{name}/rollback`
#[utoipa::path(post, path = "/admin/adapters/{name}/rollback", params(("name" = String, Path)),
    request_body(content = Option<RollbackRequest>, content_type = "application/json"),
    responses((status = 200, description = "Now active", body = Object),
              (status = 400, description = "Not a rollback request, or `digest` is not a sha256 digest", body = super::problem::Problem),
              (status = 404, description = "No such adapter or kept version", body = super::problem::Problem),
              (status = 409, description = "No previous version", body = super::problem::Problem)),
    security(("admin_token" = [])))]
pub async fn rollback(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // No body and a JSON `null` both mean "the previous version".
    let req: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        parse_json::<Option<RollbackRequest>>(&body)?.unwrap_or_default()
    };
    let to = match req.digest {
        None => None,
        Some(d) => Some(
            crate::config::parse_digest(&d)
                .map_err(|p| ApiError::validation(format!("`digest` {p}")))?,
        ),
    };
    if let Some(digest) = &to {
        crate::adapter_sync::fetch_kept(&state.registry, state.store.as_ref(), &name, digest).await;
    }
    let outcome = state
        .registry
        .rollback(&name, to.as_deref())
        .map_err(refusal)?;
    Ok((StatusCode::OK, Json(outcome)).into_response())
}

fn swap_answer(outcome: SwapOutcome) -> Response {
    let status = if outcome.unchanged {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (status, Json(outcome)).into_response()
}

/// A refusal as a problem naming its reason (`code`) and, for a schema
/// refusal, the merchant and field.
fn refusal(r: Refusal) -> ApiError {
    let (status, title) = match &r {
        Refusal::Schema(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "The new version does not accept a merchant's configuration",
        ),
        Refusal::SecretAsText { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "The new version would receive a merchant's secret as plain text",
        ),
        Refusal::EgressHost { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "The new version declares a host the operator does not allow",
        ),
        Refusal::UnknownSlot(_) | Refusal::UnknownVersion { .. } => {
            (StatusCode::NOT_FOUND, "No such adapter version")
        }
        Refusal::NothingToRollBack(_) => (StatusCode::CONFLICT, "Nothing to roll back to"),
        _ => (StatusCode::BAD_REQUEST, "The component was refused"),
    };
    let mut err = ApiError::new(status, r.code(), title, r.to_string());
    match &r {
        Refusal::Schema(e) => {
            err = err
                .with("merchant", e.merchant.clone())
                .with("field", e.field.clone());
        }
        Refusal::SecretAsText {
            merchant, field, ..
        } => {
            err = err
                .with("merchant", merchant.clone())
                .with("field", field.clone());
        }
        Refusal::EgressHost { host, .. } => err = err.with("host", host.clone()),
        _ => {}
    }
    err
}
