//! Payments and their refunds: `POST /v1/payments`, `GET
//! /v1/payments/{no}`, `POST|GET /v1/payments/{no}/refunds[/{refund_no}]`.

use super::idempotency::{self, Answer, KeyUse};
use super::problem::ApiError;
use super::{AppState, AuthMerchant, Merchant, parse_json};
use crate::flows;
use crate::limits::Op;
use crate::resources::{Payment, Refund, Timestamp};
use crate::store::{KeyCompletion, Order};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

/// The body of `POST /v1/payments`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
// A realistic mini-program payer (WeChat's documentation appid): what an
// integrator copies, and what the fuzzer starts from.
#[schema(examples(json!({
    "merchant_order_no": "A20261123001",
    "amount": 1999,
    "currency": "CNY",
    "description": "Tea, 250 g",
    "method": "wechat_mini_program",
    "payer": {
        "app_id": "wx2421b1c4370ec43b",
        "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "client_ip": "203.0.113.7"
    },
    "metadata": { "cart": "c-17" }
})))]
pub struct CreatePayment {
    /// Your order number: 1 to 32 of `A-Z a-z 0-9 _ - | *`, unique per merchant.
    pub merchant_order_no: String,
    /// Amount in minor units of `currency` (fen, cents): 1999 is 19.99.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "minor_units")]
    pub amount: i64,
    /// ISO 4217; must be the merchant's configured currency.
    pub currency: String,
    /// Shown to the payer; not blank.
    #[schema(
        min_length = 1,
        max_length = 512,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\uFFFE\uFFFF]*[^\s\x00-\x1F\x7F-\x9F\uFFFE\uFFFF][^\x00-\x1F\x7F-\x9F\uFFFE\uFFFF]*$"
    )]
    pub description: String,
    /// One of the adapter's methods, e.g. `wechat_mini_program`.
    pub method: String,
    #[serde(default)]
    pub payer: PayerInput,
    /// After this the order can no longer be paid.
    pub expires_at: Option<Timestamp>,
    /// Echoed back by providers that support it.
    #[schema(max_length = 512, pattern = r"^[^\x00-\x1F\x7F-\x9F\uFFFE\uFFFF]*$")]
    pub attach: Option<String>,
    /// Your own data, stored and returned as given.
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
}

#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayerInput {
    /// Mini-program AppID the payer pays in.
    #[schema(max_length = 64, pattern = r"^[^\x00-\x1F\x7F-\x9F\uFFFE\uFFFF]*$")]
    pub app_id: Option<String>,
    /// The payer's openid under `app_id` (required for `wechat_mini_program`).
    #[schema(max_length = 128, pattern = r"^[^\x00-\x1F\x7F-\x9F\uFFFE\uFFFF]*$")]
    pub openid: Option<String>,
    /// The payer's IP address.
    #[schema(max_length = 64, pattern = r"^[^\x00-\x1F\x7F-\x9F\uFFFE\uFFFF]*$")]
    pub client_ip: Option<String>,
}

/// The body of `POST /v1/payments/{no}/refunds`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "refund_no": "A20261123001-R1",
    "amount": 500,
    "reason": "one item returned"
})))]
pub struct CreateRefund {
    /// Your refund number, unique per payment; retrying with the same
    /// number never refunds twice.
    pub refund_no: String,
    /// Minor units of the payment's currency.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "minor_units")]
    pub amount: i64,
    /// Why; sent on to the provider where it takes one.
    #[schema(max_length = 512, pattern = r"^[^\x00-\x1F\x7F-\x9F\uFFFE\uFFFF]*$")]
    pub reason: Option<String>,
}

/// An amount of minor units: a JSON integer. `1999.0` is the same number
/// (JSON Schema counts it as an integer, and some encoders write integers
/// so); a fraction or a value past 2^53, where a float is no longer exact,
/// is refused.
pub(super) fn minor_units<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match serde_json::Number::deserialize(d)? {
        n if n.is_i64() => Ok(n.as_i64().unwrap_or_default()),
        n => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() <= EXACT => Ok(f as i64),
            _ => Err(D::Error::custom(format!(
                "`{n}` is not an integer of minor units"
            ))),
        },
    }
}

pub(super) fn valid_number(no: &str, what: &str, max: usize) -> Result<(), ApiError> {
    let ok = !no.is_empty()
        && no.len() <= max
        && no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "`{what}` must be 1 to {max} characters of A-Z a-z 0-9 _ - | *"
        )))
    }
}

/// `POST /v1/payments`
#[utoipa::path(post, path = "/v1/payments", request_body = CreatePayment,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = Payment), (status = 200, description = "The order already existed with these values", body = Payment),
              (status = "4XX", body = super::problem::Problem), (status = "5XX", body = super::problem::Problem)),
    security(("merchant_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.take_rate(&merchant, Op::Create).await?;
    idempotency::run_claiming(
        &state,
        &merchant,
        &headers,
        "POST /v1/payments",
        &body,
        |key| create_payment(&state, &merchant, &body, key),
    )
    .await
}

async fn create_payment(
    state: &AppState,
    merchant: &Merchant,
    body: &[u8],
    key: Option<idempotency::Key>,
) -> Result<Answer, ApiError> {
    let req: CreatePayment = parse_json(body)?;
    valid_number(&req.merchant_order_no, "merchant_order_no", 32)?;
    if req.amount <= 0 {
        return Err(ApiError::validation(
            "`amount` must be a positive integer of minor units",
        ));
    }
    if req.description.trim().is_empty() {
        return Err(ApiError::validation("`description` must not be empty"));
    }
    // Claimed with the order's insert; the answer to replay is the payment
    // as committed with the provider's acceptance.
    let mut key = key.map(|k| flows::KeyedCreate {
        claim: k.claim(),
        completion: Some(KeyCompletion {
            merchant_id: k.merchant_id,
            key: k.key,
            status: StatusCode::CREATED.as_u16(),
            render: Box::new(|o: &Order| serde_json::to_vec(&Payment::from(o)).unwrap_or_default()),
        }),
        state: flows::KeyState::Unclaimed,
    });
    let new = flows::NewPayment {
        merchant_order_no: req.merchant_order_no,
        amount: req.amount,
        currency: req.currency,
        description: req.description,
        method: req.method,
        payer_app_id: req.payer.app_id,
        payer_openid: req.payer.openid,
        client_ip: req.payer.client_ip,
        expires_at: req.expires_at.map(Timestamp::as_secs),
        attach: req.attach,
        metadata: req.metadata,
    };
    let created = flows::create_payment(state, merchant, new, key.as_mut()).await;
    let used = match key.map(|k| k.state) {
        None | Some(flows::KeyState::Unclaimed) => KeyUse::Untouched,
        Some(flows::KeyState::Claimed) => KeyUse::Claimed,
        Some(flows::KeyState::Completed) => KeyUse::Stored,
    };
    let mut answer = match created {
        Ok(flows::Creation::Order(c)) => Answer::json(c.status, &Payment::from(&c.order)),
        Ok(flows::Creation::KeyHeld(begin)) => return Ok(Answer::held(begin)),
        // Nothing stored under the key: the error as it is (its headers).
        Err(e) if used == KeyUse::Untouched => return Err(e),
        Err(e) => Answer::from(e),
    };
    answer.key = used;
    Ok(answer)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// Ask the provider (`query`) and apply its answer before answering.
    #[serde(default)]
    pub refresh: bool,
}

/// `GET /v1/payments/{merchant_order_no}`
#[utoipa::path(get, path = "/v1/payments/{merchant_order_no}", params(("merchant_order_no" = String, Path), GetParams),
    responses((status = 200, body = Payment, headers(("payhost-adapter-digest" = String, description = "With `refresh`: the adapter version that asked the provider"))),
              (status = "4XX", body = super::problem::Problem), (status = "5XX", body = super::problem::Problem)),
    security(("merchant_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    Path(order_no): Path<String>,
    super::ApiQuery(params): super::ApiQuery<GetParams>,
) -> Result<Response, ApiError> {
    let order = flows::load_order(&state, &merchant, &order_no).await?;
    // An order no provider accepted is only what the store says.
    if !params.refresh || !flows::reached_provider(&order) {
        return Ok(Json(Payment::from(&order)).into_response());
    }
    state.take_rate(&merchant, Op::Query).await?;
    let (order, _, digest) = flows::refresh(&state, &merchant, &order).await?;
    Ok((
        [(ADAPTER_DIGEST_HEADER, digest)],
        Json(Payment::from(&order)),
    )
        .into_response())
}

/// Names the adapter version that served a call to the provider.
pub const ADAPTER_DIGEST_HEADER: &str = "payhost-adapter-digest";

/// `POST /v1/payments/{merchant_order_no}/refunds`
#[utoipa::path(post, path = "/v1/payments/{merchant_order_no}/refunds", request_body = CreateRefund,
    params(("merchant_order_no" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = Refund), (status = 200, description = "The refund already existed", body = Refund),
              (status = "4XX", body = super::problem::Problem), (status = "5XX", body = super::problem::Problem)),
    security(("merchant_key" = [])))]
pub async fn create_refund(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    Path(order_no): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.take_rate(&merchant, Op::Refund).await?;
    let route = format!("POST /v1/payments/{order_no}/refunds");
    idempotency::run(&state, &merchant, &headers, &route, &body, |_| {
        refund_payment(&state, &merchant, &order_no, &body)
    })
    .await
}

async fn refund_payment(
    state: &AppState,
    merchant: &Merchant,
    order_no: &str,
    body: &[u8],
) -> Result<Answer, ApiError> {
    let req: CreateRefund = parse_json(body)?;
    valid_number(&req.refund_no, "refund_no", 64)?;
    super::validate::provider_text("reason", req.reason.as_deref())?;
    let new = flows::NewRefund {
        refund_no: req.refund_no,
        amount: req.amount,
        reason: req.reason,
    };
    let out = flows::refund_payment(state, merchant, order_no, new).await?;
    let code = if out.is_new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Answer::json(code, &Refund::from(&out.refund)))
}

/// `GET /v1/payments/{merchant_order_no}/refunds`
#[utoipa::path(get, path = "/v1/payments/{merchant_order_no}/refunds", params(("merchant_order_no" = String, Path)),
    responses((status = 200, body = [Refund]), (status = "4XX", body = super::problem::Problem)), security(("merchant_key" = [])))]
pub async fn list_refunds(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    Path(order_no): Path<String>,
) -> Result<Json<Vec<Refund>>, ApiError> {
    flows::load_order(&state, &merchant, &order_no).await?;
    let refunds = state.store.list_refunds(&merchant.id, &order_no).await?;
    Ok(Json(refunds.iter().map(Refund::from).collect()))
}

/// `GET /v1/payments/{merchant_order_no}/refunds/{refund_no}`
#[utoipa::path(get, path = "/v1/payments/{merchant_order_no}/refunds/{refund_no}",
    params(("merchant_order_no" = String, Path), ("refund_no" = String, Path)),
    responses((status = 200, body = Refund), (status = "4XX", body = super::problem::Problem)), security(("merchant_key" = [])))]
pub async fn get_refund(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    Path((order_no, refund_no)): Path<(String, String)>,
) -> Result<Json<Refund>, ApiError> {
    let refund = state
        .store
        .get_refund(&merchant.id, &order_no, &refund_no)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("no refund `{refund_no}` on payment `{order_no}`"))
        })?;
    Ok(Json(Refund::from(&refund)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_integers_however_written() {
        let amount = |json: &str| {
            serde_json::from_str::<CreateRefund>(&format!(
                r#"{{"refund_no":"R1","amount":{json}}}"#
            ))
            .map(|r| r.amount)
        };
        assert_eq!(amount("1249").unwrap(), 1249);
        assert_eq!(amount("1249.0").unwrap(), 1249);
        assert_eq!(amount("-3").unwrap(), -3);
        assert_eq!(amount("9007199254740992.0").unwrap(), 1 << 53);
        for bad in ["12.5", "1e300", "18446744073709551615", "\"12\"", "null"] {
            assert!(amount(bad).is_err(), "{bad}");
        }
    }
}
