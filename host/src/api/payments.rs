//! Payments and their refunds: `POST /v1/payments`, `GET
//! /v1/payments/{no}`, `POST|GET /v1/payments/{no}/refunds[/{refund_no}]`.

use super::idempotency::{self, Answer};
use super::problem::ApiError;
use super::{AppState, AuthMerchant, Merchant, now_ms, parse_json};
use crate::contract::{self, OrderRef, PayAction};
use crate::limits::Op;
use crate::orders::{self, Decision};
use crate::runtime::{Operation, Output};
use crate::store::{Inserted, NewEvent, Order, OrderState, Refund, RefundState, StoreError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The body of `POST /v1/payments`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    /// Your order number: 1 to 32 of `A-Z a-z 0-9 _ - | *`, unique per merchant.
    pub merchant_order_no: String,
    /// Amount in minor units of `currency` (fen, cents): 1999 is 19.99.
    pub amount: i64,
    /// ISO 4217; must be the merchant's configured currency.
    pub currency: String,
    /// Shown to the payer.
    pub description: String,
    /// One of the adapter's methods, e.g. `wechat_mini_program`.
    pub method: String,
    #[serde(default)]
    pub payer: PayerInput,
    /// Unix seconds after which the order can no longer be paid.
    pub expires_at: Option<i64>,
    /// Echoed back by providers that support it.
    pub attach: Option<String>,
    /// Your own data, stored and returned as given.
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
}

#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayerInput {
    /// Mini-program AppID the payer pays in.
    pub app_id: Option<String>,
    /// The payer's openid under `app_id` (required for `wechat_mini_program`).
    pub openid: Option<String>,
    /// The payer's IP address.
    pub client_ip: Option<String>,
}

/// A payment as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Payment {
    pub merchant_order_no: String,
    /// created, pending, paid, partially_refunded, refunded, closed or failed.
    pub state: String,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    /// Minor units refunded so far.
    pub refunded_amount: i64,
    pub method: String,
    pub description: String,
    pub adapter: String,
    /// The adapter version (hex sha256 of its component) that created it.
    pub adapter_digest: String,
    /// The provider's trade number, when it has one.
    pub provider_trade_no: Option<String>,
    /// WeChat Pay's transaction id, once known.
    pub channel_transaction_id: Option<String>,
    /// What the payer must do: `{"type":"mini_program","params":{appId,
    /// timeStamp, nonceStr, package, signType, paySign}}` (hand `params` to
    /// `wx.requestPayment`), `{"type":"redirect","url"}` or
    /// `{"type":"qr_code","text"}`.
    pub pay_action: Option<Value>,
    pub payer_openid: Option<String>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub paid_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub metadata: Value,
}

impl From<&Order> for Payment {
    fn from(o: &Order) -> Self {
        Payment {
            merchant_order_no: o.merchant_order_no.clone(),
            state: o.state.as_str().into(),
            amount: o.amount_minor,
            currency: o.currency.clone(),
            refunded_amount: o.refunded_minor,
            method: o.method.clone(),
            description: o.description.clone(),
            adapter: o.adapter.clone(),
            adapter_digest: o.adapter_digest.clone(),
            provider_trade_no: o.provider_trade_no.clone(),
            channel_transaction_id: o.channel_transaction_id.clone(),
            pay_action: o.pay_action.clone(),
            payer_openid: o.payer_openid.clone(),
            expires_at: o.expires_at.map(|ms| ms / 1000),
            paid_at: o.paid_at.map(|ms| ms / 1000),
            created_at: o.created_at / 1000,
            updated_at: o.updated_at / 1000,
            metadata: o.metadata.clone(),
        }
    }
}

/// The body of `POST /v1/payments/{no}/refunds`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// Your refund number, unique per payment; retrying with the same
    /// number never refunds twice.
    pub refund_no: String,
    /// Minor units of the payment's currency.
    pub amount: i64,
    pub reason: Option<String>,
}

/// A refund as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefundView {
    pub merchant_order_no: String,
    pub refund_no: String,
    /// pending, succeeded or failed.
    pub state: String,
    pub amount: i64,
    pub currency: String,
    pub provider_refund_id: Option<String>,
    pub reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&Refund> for RefundView {
    fn from(r: &Refund) -> Self {
        RefundView {
            merchant_order_no: r.merchant_order_no.clone(),
            refund_no: r.refund_no.clone(),
            state: r.state.as_str().into(),
            amount: r.amount_minor,
            currency: r.currency.clone(),
            provider_refund_id: r.provider_refund_id.clone(),
            reason: r.reason.clone(),
            created_at: r.created_at / 1000,
            updated_at: r.updated_at / 1000,
        }
    }
}

/// The contract's pay action as stored and shown.
pub fn pay_action_json(action: &PayAction) -> Value {
    match action {
        PayAction::MiniProgram(p) => json!({
            "type": "mini_program",
            "params": {
                "appId": p.app_id, "timeStamp": p.time_stamp, "nonceStr": p.nonce_str,
                "package": p.package, "signType": p.sign_type, "paySign": p.pay_sign,
            }
        }),
        PayAction::Redirect(url) => json!({ "type": "redirect", "url": url }),
        PayAction::QrCode(text) => json!({ "type": "qr_code", "text": text }),
    }
}

fn valid_number(no: &str, what: &str, max: usize) -> Result<(), ApiError> {
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

pub fn order_ref(o: &Order) -> OrderRef {
    OrderRef {
        merchant_order_no: o.merchant_order_no.clone(),
        provider_trade_no: o.provider_trade_no.clone(),
        channel_transaction_id: o.channel_transaction_id.clone(),
    }
}

fn money(minor: i64, currency: &str) -> contract::Money {
    contract::Money {
        minor: minor.max(0) as u64,
        currency: currency.into(),
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
    state.rate_limiter.check(&merchant.id, Op::Create)?;
    idempotency::run(
        &state,
        &merchant,
        &headers,
        "POST /v1/payments",
        &body,
        create_payment(&state, &merchant, &body),
    )
    .await
}

async fn create_payment(
    state: &AppState,
    merchant: &Merchant,
    body: &[u8],
) -> Result<Answer, ApiError> {
    let req: CreatePayment = parse_json(body)?;
    valid_number(&req.merchant_order_no, "merchant_order_no", 32)?;
    if req.amount <= 0 {
        return Err(ApiError::validation(
            "`amount` must be a positive integer of minor units",
        ));
    }
    if req.currency != merchant.currency {
        return Err(ApiError::validation(format!(
            "`currency` is `{}`, but merchant `{}` takes `{}`",
            req.currency, merchant.id, merchant.currency
        )));
    }
    if req.description.trim().is_empty() {
        return Err(ApiError::validation("`description` must not be empty"));
    }
    let adapter = state.adapter_for(merchant)?;
    if !adapter.info.methods.contains(&req.method) {
        return Err(ApiError::validation(format!(
            "`method` is `{}`; this merchant's provider offers {:?}",
            req.method, adapter.info.methods
        )));
    }

    // Limits are checked before the provider is called.
    let paid_today = match &req.payer.openid {
        Some(openid) => {
            let day_start = now_ms() - now_ms().rem_euclid(86_400_000);
            state
                .store
                .paid_total_since(&merchant.id, openid, day_start)
                .await?
        }
        None => 0,
    };
    merchant.limits.check_amount(req.amount, paid_today)?;

    let now = now_ms();
    let candidate = Order {
        merchant_id: merchant.id.clone(),
        merchant_order_no: req.merchant_order_no.clone(),
        adapter: merchant.adapter.clone(),
        adapter_digest: adapter.digest.clone(),
        method: req.method.clone(),
        description: req.description.clone(),
        amount_minor: req.amount,
        currency: req.currency.clone(),
        state: OrderState::Created,
        provider_trade_no: None,
        channel_transaction_id: None,
        payer_app_id: req.payer.app_id.clone(),
        payer_openid: req.payer.openid.clone(),
        client_ip: req.payer.client_ip.clone(),
        pay_action: None,
        refunded_minor: 0,
        expires_at: req.expires_at.map(|secs| secs.saturating_mul(1000)),
        paid_at: None,
        attach: req.attach.clone(),
        metadata: Value::Object(req.metadata.clone()),
        next_poll_at: None,
        poll_attempts: 0,
        created_at: now,
        updated_at: now,
        version: 0,
    };
    // One create of an order number at a time reaches the provider; the
    // others are told to retry rather than send the same order again.
    let _in_flight =
        InFlight::claim(state, &merchant.id, &req.merchant_order_no).ok_or_else(|| {
            let mut e = ApiError::conflict(
                "order_in_progress",
                format!(
                    "order `{}` is being created by another request; retry",
                    req.merchant_order_no
                ),
            );
            e.retry_after = Some(1);
            e
        })?;
    let order = match state.store.insert_order(&candidate).await? {
        Inserted::New(o) => o,
        Inserted::Existing(o) => {
            let same = o.amount_minor == candidate.amount_minor
                && o.currency == candidate.currency
                && o.method == candidate.method
                && o.description == candidate.description
                && o.payer_openid == candidate.payer_openid;
            if !same && o.state == OrderState::Created && o.pay_action.is_none() {
                // The provider never accepted it (the adapter refused the
                // input, or the call failed): the corrected order replaces it.
                let mut corrected = candidate.clone();
                corrected.version = o.version;
                corrected.created_at = o.created_at;
                state.store.update_order(&corrected, &[]).await?
            } else if !same {
                return Err(ApiError::conflict(
                    "order_exists",
                    format!(
                        "order `{}` already exists with other values",
                        o.merchant_order_no
                    ),
                ));
            } else if o.state != OrderState::Created {
                // Never charge twice: the order as it stands.
                return Ok(Answer::json(StatusCode::OK, &Payment::from(&o)));
            } else {
                // An earlier attempt never reached the provider's acceptance;
                // providers accept the identical order again.
                o
            }
        }
    };

    let op = Operation::UnifiedOrder(contract::OrderRequest {
        merchant_order_no: order.merchant_order_no.clone(),
        amount: money(order.amount_minor, &order.currency),
        description: order.description.clone(),
        method: order.method.clone(),
        payer: contract::Payer {
            app_id: order.payer_app_id.clone(),
            openid: order.payer_openid.clone(),
            client_ip: order.client_ip.clone(),
        },
        expires_at: order.expires_at.map(|ms| ms / 1000),
        attach: order.attach.clone(),
    });
    let ctx = state.call_context(merchant);
    let result = state
        .metrics
        .time_call(
            &merchant.adapter,
            "unified_order",
            state
                .runtime
                .call(&adapter, &merchant.adapter_config, ctx, op),
        )
        .await;
    match result {
        Ok(Output::OrderCreated(created)) => {
            let saved = match orders::order_created(
                &order,
                &created.order,
                Some(pay_action_json(&created.action)),
            ) {
                Decision::Apply {
                    order: mut next,
                    events,
                } => {
                    next.next_poll_at = Some(
                        now_ms()
                            + state.first_poll_delay_ms(
                                adapter.info.capabilities.payment_notifications,
                            ),
                    );
                    state.store.update_order(&next, &events).await?
                }
                Decision::Unchanged => order,
                Decision::Reject(reason) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "provider_malformed",
                        "The provider's answer contradicts the order",
                        reason,
                    ));
                }
            };
            Ok(Answer::json(StatusCode::CREATED, &Payment::from(&saved)))
        }
        Ok(other) => Err(ApiError::internal(format!(
            "adapter answered unified order with {other:?}"
        ))),
        Err(e) => {
            let err = ApiError::from(e);
            // Only the provider's final refusal fails the order. Anything
            // else (the adapter refused the input, a retryable or transport
            // failure) leaves it `created`: the same or a corrected request
            // may be sent again under the same order number.
            let final_refusal = err.code == "provider_rejected"
                && err.extra.get("retryable") == Some(&Value::Bool(false));
            if final_refusal
                && let Decision::Apply {
                    order: failed,
                    events,
                } = orders::creation_failed(&order)
            {
                state.store.update_order(&failed, &events).await?;
            }
            Err(err)
        }
    }
}

/// Creates in flight in this process, by (store, merchant, order no).
/// Replicas sharing a store can still race each other; providers take an
/// identical order number with identical values as the same order.
static IN_FLIGHT: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashSet<(usize, String, String)>>,
> = std::sync::LazyLock::new(Default::default);

/// A claim on one order number's creation, released when dropped (also
/// when the request is cancelled).
struct InFlight((usize, String, String));

impl InFlight {
    fn claim(state: &AppState, merchant_id: &str, order_no: &str) -> Option<InFlight> {
        let store = std::sync::Arc::as_ptr(&state.store) as *const () as usize;
        let key = (store, merchant_id.to_string(), order_no.to_string());
        let claimed = IN_FLIGHT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
        // Built only once the lock is released: a dropped claim locks it.
        if claimed { Some(InFlight(key)) } else { None }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
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
    let order = load_order(&state, &merchant, &order_no).await?;
    if !params.refresh || order.state == OrderState::Created {
        return Ok(Json(Payment::from(&order)).into_response());
    }
    state.rate_limiter.check(&merchant.id, Op::Query)?;
    let (order, digest) = refresh_via(&state, &merchant, order).await?;
    Ok((
        [(ADAPTER_DIGEST_HEADER, digest)],
        Json(Payment::from(&order)),
    )
        .into_response())
}

/// Names the adapter version that served a call to the provider.
pub const ADAPTER_DIGEST_HEADER: &str = "payhost-adapter-digest";

async fn load_order(
    state: &AppState,
    merchant: &Merchant,
    order_no: &str,
) -> Result<Order, ApiError> {
    state
        .store
        .get_order(&merchant.id, order_no)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no payment `{order_no}` for merchant `{}`",
                merchant.id
            ))
        })
}

/// Asks the provider for the order's state and applies the answer.
pub async fn refresh(
    state: &AppState,
    merchant: &Merchant,
    order: Order,
) -> Result<Order, ApiError> {
    refresh_via(state, merchant, order).await.map(|(o, _)| o)
}

/// [`refresh`], also returning the digest of the adapter version used.
pub async fn refresh_via(
    state: &AppState,
    merchant: &Merchant,
    order: Order,
) -> Result<(Order, String), ApiError> {
    // The merchant's current (or pinned) version, not the one the order
    // was created with: versions of a slot speak the same contract.
    let adapter = state.adapter_for(merchant)?;
    let ctx = state.call_context(merchant);
    let op = Operation::Query(contract::QueryRequest {
        order: order_ref(&order),
    });
    let status = match state
        .metrics
        .time_call(
            &order.adapter,
            "query",
            state
                .runtime
                .call(&adapter, &merchant.adapter_config, ctx, op),
        )
        .await?
    {
        Output::TradeStatus(s) => s,
        other => {
            return Err(ApiError::internal(format!(
                "adapter answered query with {other:?}"
            )));
        }
    };
    apply_trade_status(state, &merchant.id, &order.merchant_order_no, &status)
        .await
        .map(|(o, _)| (o, adapter.digest.clone()))
}

/// Applies a provider's statement about an order, retrying on concurrent
/// updates. Returns the order and what happened ("applied", "duplicate" or
/// "rejected: ...").
pub async fn apply_trade_status(
    state: &AppState,
    merchant_id: &str,
    order_no: &str,
    status: &contract::TradeStatus,
) -> Result<(Order, String), ApiError> {
    for _ in 0..5 {
        let order = state
            .store
            .get_order(merchant_id, order_no)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no payment `{order_no}` for merchant `{merchant_id}`"
                ))
            })?;
        match orders::apply_trade_status(&order, status) {
            Decision::Apply {
                order: next,
                events,
            } => match state.store.update_order(&next, &events).await {
                Ok(saved) => return Ok((saved, "applied".into())),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            },
            Decision::Unchanged => return Ok((order, "duplicate".into())),
            Decision::Reject(reason) => return Ok((order, format!("rejected: {reason}"))),
        }
    }
    Err(StoreError::Conflict.into())
}

/// `POST /v1/payments/{merchant_order_no}/refunds`
#[utoipa::path(post, path = "/v1/payments/{merchant_order_no}/refunds", request_body = CreateRefund,
    params(("merchant_order_no" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = RefundView), (status = 200, description = "The refund already existed", body = RefundView),
              (status = "4XX", body = super::problem::Problem), (status = "5XX", body = super::problem::Problem)),
    security(("merchant_key" = [])))]
pub async fn create_refund(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    Path(order_no): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.rate_limiter.check(&merchant.id, Op::Refund)?;
    let route = format!("POST /v1/payments/{order_no}/refunds");
    idempotency::run(
        &state,
        &merchant,
        &headers,
        &route,
        &body,
        refund_payment(&state, &merchant, &order_no, &body),
    )
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
    if req.amount <= 0 {
        return Err(ApiError::validation(
            "`amount` must be a positive integer of minor units",
        ));
    }
    // Insert the refund as pending under a compare-and-set of the order, so
    // two concurrent refunds can never together exceed what was paid.
    let (order, refund, is_new) = loop {
        let order = load_order(state, merchant, order_no).await?;
        if let Some(existing) = state
            .store
            .get_refund(&merchant.id, order_no, &req.refund_no)
            .await?
        {
            if existing.amount_minor != req.amount {
                return Err(ApiError::conflict(
                    "refund_exists",
                    format!(
                        "refund `{}` already exists for another amount",
                        req.refund_no
                    ),
                ));
            }
            if existing.state != RefundState::Pending || existing.provider_refund_id.is_some() {
                return Ok(Answer::json(StatusCode::OK, &RefundView::from(&existing)));
            }
            break (order, existing, false);
        }
        let refunds = state.store.list_refunds(&merchant.id, order_no).await?;
        orders::can_refund_with(&order, &refunds, req.amount)
            .map_err(|m| ApiError::conflict("refund_not_allowed", m))?;
        let now = now_ms();
        let refund = Refund {
            merchant_id: merchant.id.clone(),
            merchant_order_no: order_no.into(),
            refund_no: req.refund_no.clone(),
            amount_minor: req.amount,
            currency: order.currency.clone(),
            state: RefundState::Pending,
            provider_refund_id: None,
            reason: req.reason.clone(),
            created_at: now,
            updated_at: now,
            version: 0,
        };
        match state.store.insert_refund(&refund, &order, &[]).await {
            Ok(Inserted::New(r)) => break (order, r, true),
            Ok(Inserted::Existing(_)) | Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    };

    // The merchant's current (or pinned) version, not the one the order
    // was created with: versions of a slot speak the same contract.
    let adapter = state.adapter_for(merchant)?;
    let ctx = state.call_context(merchant);
    let op = Operation::Refund(contract::RefundRequest {
        order: order_ref(&order),
        refund_no: refund.refund_no.clone(),
        amount: money(refund.amount_minor, &refund.currency),
        order_amount: money(order.amount_minor, &order.currency),
        reason: refund.reason.clone(),
    });
    let status = match state
        .metrics
        .time_call(
            &order.adapter,
            "refund",
            state
                .runtime
                .call(&adapter, &merchant.adapter_config, ctx, op),
        )
        .await
    {
        Ok(Output::RefundStatus(s)) => s,
        Ok(other) => {
            return Err(ApiError::internal(format!(
                "adapter answered refund with {other:?}"
            )));
        }
        Err(e) => {
            let err = ApiError::from(e);
            if err.code == "provider_rejected"
                && err.extra.get("retryable") == Some(&Value::Bool(false))
            {
                let mut failed = refund.clone();
                failed.state = RefundState::Failed;
                state
                    .store
                    .update_refund(
                        &failed,
                        None,
                        &[refund_event(orders::REFUND_FAILED, &failed, &order)],
                    )
                    .await?;
            }
            return Err(err);
        }
    };
    let refund = apply_refund_status(state, merchant, order_no, &refund.refund_no, &status)
        .await?
        .0;
    let code = if is_new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Answer::json(code, &RefundView::from(&refund)))
}

/// Same shape as the state machine's refund events.
fn refund_event(kind: &str, r: &Refund, order: &Order) -> NewEvent {
    NewEvent {
        event_type: kind.into(),
        payload: json!({ "refund": orders::refund_json(r), "order": orders::order_json(order) }),
    }
}

/// Applies a provider's statement about a refund (and its order).
pub async fn apply_refund_status(
    state: &AppState,
    merchant: &Merchant,
    order_no: &str,
    refund_no: &str,
    status: &contract::RefundStatus,
) -> Result<(Refund, String), ApiError> {
    for _ in 0..5 {
        let order = load_order(state, merchant, order_no).await?;
        let refund = state
            .store
            .get_refund(&merchant.id, order_no, refund_no)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!("no refund `{refund_no}` on payment `{order_no}`"))
            })?;
        match orders::apply_refund_status(&order, &refund, status) {
            orders::RefundDecision::Apply {
                refund: next,
                order: next_order,
                events,
            } => {
                match state
                    .store
                    .update_refund(&next, next_order.as_ref(), &events)
                    .await
                {
                    Ok(saved) => return Ok((saved, "applied".into())),
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            orders::RefundDecision::Unchanged => return Ok((refund, "duplicate".into())),
            orders::RefundDecision::Reject(reason) => {
                return Ok((refund, format!("rejected: {reason}")));
            }
        }
    }
    Err(StoreError::Conflict.into())
}

/// `GET /v1/payments/{merchant_order_no}/refunds`
#[utoipa::path(get, path = "/v1/payments/{merchant_order_no}/refunds", params(("merchant_order_no" = String, Path)),
    responses((status = 200, body = [RefundView]), (status = "4XX", body = super::problem::Problem)), security(("merchant_key" = [])))]
pub async fn list_refunds(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    Path(order_no): Path<String>,
) -> Result<Json<Vec<RefundView>>, ApiError> {
    load_order(&state, &merchant, &order_no).await?;
    let refunds = state.store.list_refunds(&merchant.id, &order_no).await?;
    Ok(Json(refunds.iter().map(RefundView::from).collect()))
}

/// `GET /v1/payments/{merchant_order_no}/refunds/{refund_no}`
#[utoipa::path(get, path = "/v1/payments/{merchant_order_no}/refunds/{refund_no}",
    params(("merchant_order_no" = String, Path), ("refund_no" = String, Path)),
    responses((status = 200, body = RefundView), (status = "4XX", body = super::problem::Problem)), security(("merchant_key" = [])))]
pub async fn get_refund(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    Path((order_no, refund_no)): Path<(String, String)>,
) -> Result<Json<RefundView>, ApiError> {
    let refund = state
        .store
        .get_refund(&merchant.id, &order_no, &refund_no)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("no refund `{refund_no}` on payment `{order_no}`"))
        })?;
    Ok(Json(RefundView::from(&refund)))
}

impl IntoResponse for Payment {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}
