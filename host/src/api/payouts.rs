//! Payouts to a payee's wallet: `POST /v1/payouts`, `GET
//! /v1/payouts/{payout_no}`.

use super::idempotency::{self, Answer};
use super::payments::{ADAPTER_DIGEST_HEADER, GetParams, minor_units, valid_number};
use super::problem::ApiError;
use super::{AppState, AuthMerchant, Merchant, parse_json};
use crate::flows;
use crate::limits::Op;
use crate::resources::Payout;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

/// The body of `POST /v1/payouts`. Its texts are not blank and carry no
/// control characters (the document says so: `openapi::payout_texts`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "payout_no": "PO20261203001",
    "amount": 888,
    "currency": "CNY",
    "payee": { "app_id": "wx2421b1c4370ec43b", "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" },
    "remark": "Referral reward",
    "metadata": { "campaign": "dec" }
})))]
pub struct CreatePayout {
    /// Your payout number: 1 to 32 of `A-Z a-z 0-9 _ - | *`, unique per
    /// merchant. Retrying with it never pays twice.
    pub payout_no: String,
    /// Minor units of `currency` (fen): 888 is 8.88.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "minor_units")]
    pub amount: i64,
    /// The merchant's payout currency (`[merchants.payouts] currency`, CNY).
    pub currency: String,
    pub payee: PayeeInput,
    /// What the payee sees with the money; not blank.
    #[schema(min_length = 1, max_length = 32)]
    pub remark: String,
    /// The provider's scene code (WeChat `transfer_scene_id`); else the
    /// adapter's configured one.
    #[schema(min_length = 1, max_length = 16)]
    pub scene: Option<String>,
    /// Your own data, stored and returned as given.
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
// No Debug: it holds the real name until it is wrapped.
pub struct PayeeInput {
    /// The app (mini-program) the openid belongs to.
    #[schema(min_length = 1, max_length = 64)]
    pub app_id: String,
    /// The payee's openid under `app_id`.
    #[schema(min_length = 1, max_length = 128)]
    pub openid: String,
    /// The payee's real name, for the provider to check against their
    /// verified identity (WeChat requires it from 2,000.00 CNY). Sent to the
    /// provider only; never stored, logged or returned.
    #[schema(min_length = 1, max_length = 64)]
    pub real_name: Option<String>,
}

/// `POST /v1/payouts`
#[utoipa::path(post, path = "/v1/payouts", request_body = CreatePayout,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = Payout), (status = 200, description = "The payout already existed with these values", body = Payout),
              (status = 422, description = "Over a payout limit (`payout_limit_exceeded`, naming `limit` and `max`), or payouts unsupported", body = super::problem::Problem),
              (status = "4XX", body = super::problem::Problem), (status = "5XX", body = super::problem::Problem)),
    security(("merchant_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Payouts move money out, as refunds do: they share the refund rate.
    state.take_rate(&merchant, Op::Refund).await?;
    idempotency::run(
        &state,
        &merchant,
        &headers,
        "POST /v1/payouts",
        &body,
        |_| create_payout(&state, &merchant, &body),
    )
    .await
}

async fn create_payout(
    state: &AppState,
    merchant: &Merchant,
    body: &[u8],
) -> Result<Answer, ApiError> {
    let req: CreatePayout = parse_json(body)?;
    valid_number(&req.payout_no, "payout_no", 32)?;
    let text = super::validate::not_blank;
    text("payee.app_id", &req.payee.app_id, 64)?;
    text("payee.openid", &req.payee.openid, 128)?;
    text("remark", &req.remark, 32)?;
    if let Some(scene) = &req.scene {
        text("scene", scene, 16)?;
    }
    // Wrapped at once, so no debug print or error carries it.
    let real_name = req.payee.real_name.map(SecretString::from);
    if let Some(name) = &real_name {
        use secrecy::ExposeSecret;
        // Checked without echoing it: the name is personal data.
        let n = name.expose_secret();
        if n.trim().is_empty() || n.chars().count() > 64 || n.chars().any(char::is_control) {
            return Err(ApiError::validation(
                "`payee.real_name` must be 1 to 64 characters without control characters",
            ));
        }
    }
    let new = flows::NewPayout {
        payout_no: req.payout_no,
        amount: req.amount,
        currency: req.currency,
        payee_app_id: req.payee.app_id,
        payee_openid: req.payee.openid,
        real_name,
        remark: req.remark,
        scene: req.scene,
        metadata: super::metadata_value(req.metadata),
    };
    let out = flows::create_payout(state, merchant, new).await?;
    let code = if out.is_new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Answer::json(code, &Payout::from(&out.payout)))
}

/// `GET /v1/payouts/{payout_no}`
#[utoipa::path(get, path = "/v1/payouts/{payout_no}", params(("payout_no" = String, Path), GetParams),
    responses((status = 200, body = Payout, headers(("payhost-adapter-digest" = String, description = "With `refresh`: the adapter version that asked the provider"))),
              (status = "4XX", body = super::problem::Problem), (status = "5XX", body = super::problem::Problem)),
    security(("merchant_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    Path(payout_no): Path<String>,
    super::ApiQuery(params): super::ApiQuery<GetParams>,
) -> Result<Response, ApiError> {
    let payout = flows::load_payout(&state, &merchant.id, &payout_no).await?;
    if !params.refresh {
        return Ok(Json(Payout::from(&payout)).into_response());
    }
    state.take_rate(&merchant, Op::Query).await?;
    let (payout, _, digest) = flows::refresh_payout(&state, &merchant, &payout).await?;
    Ok((
        [(ADAPTER_DIGEST_HEADER, digest)],
        Json(Payout::from(&payout)),
    )
        .into_response())
}
