//! Auto-debit contracts: `POST /v1/contracts`, `GET` and `DELETE
//! /v1/contracts/{contract_no}`, `POST .../resume`, and their deductions,
//! `POST /v1/contracts/{contract_no}/deductions` and `GET
//! .../deductions/{deduction_no}`.

use super::idempotency::{self, Answer};
use super::payments::{ADAPTER_DIGEST_HEADER, GetParams, minor_units, valid_number};
use super::problem::ApiError;
use super::validate::{ip_address, not_blank};
use super::{AppState, AuthMerchant, Merchant, metadata_value, parse_json};
use crate::flows;
use crate::limits::Op;
use crate::resources::{Contract, Deduction};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

/// The body of `POST /v1/contracts`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "contract_no": "C20261204001",
    "plan_id": "12535",
    "payer": { "app_id": "wx2421b1c4370ec43b" },
    "display_name": "Monthly membership",
    "metadata": { "member": "42" }
})))]
pub struct CreateContract {
    /// Your contract number: 1 to 32 of `A-Z a-z 0-9 _ - | *`, unique per
    /// merchant and never reused for another signing.
    pub contract_no: String,
    /// The provider's contract template (WeChat `plan_id`).
    #[schema(min_length = 1, max_length = 32)]
    pub plan_id: String,
    pub payer: ContractPayerInput,
    /// The account name the payer sees on the signing page.
    #[schema(min_length = 1, max_length = 32)]
    pub display_name: String,
    /// Where the provider's signing page returns the payer, where it has one.
    #[schema(min_length = 1, max_length = 256)]
    pub return_url: Option<String>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractPayerInput {
    /// The app (mini-program) the payer signs in.
    #[schema(min_length = 1, max_length = 64)]
    pub app_id: String,
    /// The payer's openid under `app_id`, where the provider needs it.
    #[schema(min_length = 1, max_length = 128)]
    pub openid: Option<String>,
    /// The payer's IP address, where the provider needs it.
    #[schema(min_length = 1, max_length = 64)]
    pub client_ip: Option<String>,
}

/// The body of `DELETE /v1/contracts/{contract_no}` (optional).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminateContract {
    /// Why (WeChat `contract_termination_remark`).
    #[schema(min_length = 1, max_length = 64)]
    pub reason: String,
}

/// The body of `POST /v1/contracts/{contract_no}/deductions`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "deduction_no": "D20261204001",
    "amount": 1500,
    "currency": "CNY",
    "description": "Membership, December"
})))]
pub struct CreateDeduction {
    /// Your deduction number: 1 to 32 of `A-Z a-z 0-9 _ - | *`, unique per
    /// merchant. Retrying with it never charges twice.
    pub deduction_no: String,
    /// Minor units of `currency` (fen).
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "minor_units")]
    pub amount: i64,
    /// The merchant's deduction currency (`[merchants.contracts] currency`).
    pub currency: String,
    /// What the payer sees.
    #[schema(min_length = 1, max_length = 64)]
    pub description: String,
    /// The payer's or the merchant server's IP, where the provider wants one.
    #[schema(min_length = 1, max_length = 64)]
    pub client_ip: Option<String>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
}

/// `POST /v1/contracts`
#[utoipa::path(post, path = "/v1/contracts", request_body = CreateContract,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, description = "Stored `pending_signature`; `signing` says what the payer's app does", body = Contract),
              (status = 200, description = "The contract already existed with these values", body = Contract),
              (status = 422, description = "Contracts unsupported by the merchant's adapter", body = super::problem::Problem),
              (status = "4XX", body = super::problem::Problem), (status = "5XX", body = super::problem::Problem)),
    security(("merchant_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.take_rate(&merchant, Op::Create).await?;
    idempotency::run(
        &state,
        &merchant,
        &headers,
        "POST /v1/contracts",
        &body,
        |_| create_contract(&state, &merchant, &body),
    )
    .await
}

async fn create_contract(
    state: &AppState,
    merchant: &Merchant,
    body: &[u8],
) -> Result<Answer, ApiError> {
    let req: CreateContract = parse_json(body)?;
    valid_number(&req.contract_no, "contract_no", 32)?;
    not_blank("plan_id", &req.plan_id, 32)?;
    not_blank("payer.app_id", &req.payer.app_id, 64)?;
    if let Some(openid) = &req.payer.openid {
        not_blank("payer.openid", openid, 128)?;
    }
    ip_address("payer.client_ip", req.payer.client_ip.as_deref())?;
    not_blank("display_name", &req.display_name, 32)?;
    if let Some(url) = &req.return_url {
        not_blank("return_url", url, 256)?;
    }
    let new = flows::NewContract {
        contract_no: req.contract_no,
        plan_id: req.plan_id,
        payer_app_id: req.payer.app_id,
        payer_openid: req.payer.openid,
        client_ip: req.payer.client_ip,
        display_name: req.display_name,
        return_url: req.return_url,
        metadata: metadata_value(req.metadata),
    };
    let out = flows::create_contract(state, merchant, new).await?;
    let code = if out.is_new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Answer::json(code, &Contract::from(&out.value)))
}

/// `GET /v1/contracts/{contract_no}`
#[utoipa::path(get, path = "/v1/contracts/{contract_no}", params(("contract_no" = String, Path), GetParams),
    responses((status = 200, body = Contract, headers(("payhost-adapter-digest" = String, description = "With `refresh`: the adapter version that asked the provider"))),
              (status = "4XX", body = super::problem::Problem), (status = "5XX", body = super::problem::Problem)),
    security(("merchant_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    Path(contract_no): Path<String>,
    super::ApiQuery(params): super::ApiQuery<GetParams>,
) -> Result<Response, ApiError> {
    let c = flows::load_contract(&state, &merchant.id, &contract_no).await?;
    if !params.refresh {
        return Ok(Json(Contract::from(&c)).into_response());
    }
    state.take_rate(&merchant, Op::Query).await?;
    let (c, _, digest) = flows::refresh_contract(&state, &merchant, &c).await?;
    Ok(([(ADAPTER_DIGEST_HEADER, digest)], Json(Contract::from(&c))).into_response())
}

/// `DELETE /v1/contracts/{contract_no}`: ends a signed contract at the
/// provider. Ending one already ended answers it as it is.
#[utoipa::path(delete, path = "/v1/contracts/{contract_no}", params(("contract_no" = String, Path)),
    request_body(content = Option<TerminateContract>, description = "Why; optional"),
    responses((status = 200, description = "The contract, `terminated`", body = Contract),
              (status = 409, description = "Not signed (`contract_not_active`)", body = super::problem::Problem),
              (status = "4XX", body = super::problem::Problem), (status = "5XX", body = super::problem::Problem)),
    security(("merchant_key" = [])))]
pub async fn terminate(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    Path(contract_no): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.take_rate(&merchant, Op::Refund).await?;
    // No body, or JSON `null`: the default reason.
    let given: Option<TerminateContract> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        parse_json(&body)?
    };
    let reason = match given {
        Some(req) => {
            not_blank("reason", &req.reason, 64)?;
            req.reason
        }
        None => "terminated by the merchant".to_owned(),
    };
    let c = flows::terminate_contract(&state, &merchant, &contract_no, &reason).await?;
    Ok(Json(Contract::from(&c)).into_response())
}

/// `POST /v1/contracts/{contract_no}/resume`: lets a contract paused after
/// failed deductions be charged again.
#[utoipa::path(post, path = "/v1/contracts/{contract_no}/resume", params(("contract_no" = String, Path)),
    responses((status = 200, description = "The contract, `active`", body = Contract),
              (status = 409, description = "Not paused or active (`contract_not_active`)", body = super::problem::Problem),
              (status = "4XX", body = super::problem::Problem), (status = "5XX", body = super::problem::Problem)),
    security(("merchant_key" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    Path(contract_no): Path<String>,
) -> Result<Response, ApiError> {
    let c = flows::resume_contract(&state, &merchant, &contract_no).await?;
    Ok(Json(Contract::from(&c)).into_response())
}

/// `POST /v1/contracts/{contract_no}/deductions`
#[utoipa::path(post, path = "/v1/contracts/{contract_no}/deductions", request_body = CreateDeduction,
    params(("contract_no" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = Deduction), (status = 200, description = "The deduction already existed with these values", body = Deduction),
              (status = 409, description = "The contract is not active (`contract_not_active`, naming `contract_state`)", body = super::problem::Problem),
              (status = 422, description = "Over a deduction limit (`deduction_limit_exceeded`, naming `limit` and `max`), or contracts unsupported", body = super::problem::Problem),
              (status = "4XX", body = super::problem::Problem), (status = "5XX", body = super::problem::Problem)),
    security(("merchant_key" = [])))]
pub async fn create_deduction(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    Path(contract_no): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Deductions charge a payer without them present: they share the
    // create rate with payments.
    state.take_rate(&merchant, Op::Create).await?;
    let route = "POST /v1/contracts/{contract_no}/deductions";
    idempotency::run(&state, &merchant, &headers, route, &body, |_| {
        deduct(&state, &merchant, &contract_no, &body)
    })
    .await
}

async fn deduct(
    state: &AppState,
    merchant: &Merchant,
    contract_no: &str,
    body: &[u8],
) -> Result<Answer, ApiError> {
    let req: CreateDeduction = parse_json(body)?;
    valid_number(&req.deduction_no, "deduction_no", 32)?;
    not_blank("description", &req.description, 64)?;
    ip_address("client_ip", req.client_ip.as_deref())?;
    let new = flows::NewDeduction {
        deduction_no: req.deduction_no,
        amount: req.amount,
        currency: req.currency,
        description: req.description,
        client_ip: req.client_ip,
        metadata: metadata_value(req.metadata),
    };
    let out = flows::create_deduction(state, merchant, contract_no, new).await?;
    let code = if out.is_new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Answer::json(code, &Deduction::from(&out.value)))
}

/// `GET /v1/contracts/{contract_no}/deductions/{deduction_no}`
#[utoipa::path(get, path = "/v1/contracts/{contract_no}/deductions/{deduction_no}",
    params(("contract_no" = String, Path), ("deduction_no" = String, Path), GetParams),
    responses((status = 200, body = Deduction, headers(("payhost-adapter-digest" = String, description = "With `refresh`: the adapter version that asked the provider"))),
              (status = "4XX", body = super::problem::Problem), (status = "5XX", body = super::problem::Problem)),
    security(("merchant_key" = [])))]
pub async fn get_deduction(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    Path((contract_no, deduction_no)): Path<(String, String)>,
    super::ApiQuery(params): super::ApiQuery<GetParams>,
) -> Result<Response, ApiError> {
    let d = flows::load_deduction(&state, &merchant.id, &deduction_no).await?;
    if d.contract_no != contract_no {
        return Err(ApiError::not_found(format!(
            "no deduction `{deduction_no}` of contract `{contract_no}`"
        )));
    }
    if !params.refresh {
        return Ok(Json(Deduction::from(&d)).into_response());
    }
    state.take_rate(&merchant, Op::Query).await?;
    let (d, _, digest) = flows::refresh_deduction(&state, &merchant, &d).await?;
    Ok(([(ADAPTER_DIGEST_HEADER, digest)], Json(Deduction::from(&d))).into_response())
}
