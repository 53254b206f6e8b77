//! Unified order: create a payment at the provider, exactly once per
//! merchant order number.
//!
//! An order number is used up only once a provider may have seen it.
//! Everything payhost can refuse itself is checked before the order row
//! is written; a row written for a create that the adapter then refused
//! before sending anything (`invalid_request`, `unsupported`) is deleted
//! again, so the merchant can send the corrected order under that number.

use super::in_flight::InFlight;
use super::{call_counted, final_refusal, money, unexpected};
use crate::api::now_ms;
use crate::api::problem::ApiError;
use crate::api::{AppState, Merchant};
use crate::contract::{self, PayAction};
use crate::limits::LimitExceeded;
use crate::orders::{self, Decision};
use crate::runtime::{Operation, Output};
use crate::store::{
    Claimed, DailyCap, IdempotencyBegin, Inserted, KeyClaim, KeyCompletion, Order, OrderState,
    StoreError,
};
use axum::http::StatusCode;
use serde_json::{Value, json};

/// A payment to create, as the merchant asked for it (already checked for
/// shape by the API).
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub merchant_order_no: String,
    pub amount: i64,
    pub currency: String,
    pub description: String,
    pub method: String,
    pub payer_app_id: Option<String>,
    pub payer_openid: Option<String>,
    pub client_ip: Option<String>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub attach: Option<String>,
    pub metadata: serde_json::Map<String, Value>,
}

/// The outcome of [`create_payment`].
#[derive(Debug)]
pub enum Creation {
    /// The order, as created or as it already stood.
    Order(Box<Created>),
    /// The request's `Idempotency-Key` belongs to an earlier request (in
    /// progress, completed, or used with another body); nothing was done.
    KeyHeld(IdempotencyBegin),
}

#[derive(Debug)]
pub struct Created {
    pub order: Order,
    /// 201 for a new order, 200 for one that already stood.
    pub status: StatusCode,
}

/// A create's `Idempotency-Key`: claimed in the transaction that inserts
/// the order, completed in the one that stores the provider's acceptance,
/// so a create with a key waits for the same two commits as one without.
#[derive(Debug)]
pub struct KeyedCreate {
    pub claim: KeyClaim,
    /// The answer to store with the accepted order.
    pub completion: Option<KeyCompletion>,
    /// What the create did with the key; read it when the create is done.
    pub state: KeyState,
}

/// What became of a create's `Idempotency-Key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Not claimed: the create ended before (or with the failure of) the
    /// insert that claims it, so nothing of it is stored.
    Unclaimed,
    /// Claimed with the order's insert; no answer is stored under it yet.
    Claimed,
    /// Completed with the order's accepted state.
    Completed,
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

/// Creates the order and asks the provider for it, under the request's
/// `Idempotency-Key` when it has one ([`KeyedCreate`]).
pub async fn create_payment(
    state: &AppState,
    merchant: &Merchant,
    req: NewPayment,
    mut key: Option<&mut KeyedCreate>,
) -> Result<Creation, ApiError> {
    crate::api::validate::payment(&req)?;
    if !merchant.currencies.contains(&req.currency) {
        return Err(ApiError::validation(format!(
            "`currency` is `{}`, but merchant `{}` takes {}",
            req.currency,
            merchant.id,
            merchant
                .currencies
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    }
    let adapter = state.adapter_for(merchant)?;
    crate::api::validate::field_rules(
        &adapter.info.field_rules,
        Some(&req.method),
        &crate::api::validate::payment_fields(&req),
    )?;
    // Contract 0.3 adapters list their currencies; older ones list none and
    // the merchant's configuration is taken on trust.
    let offered = &adapter.info.currencies;
    if !offered.is_empty() && !offered.contains(&req.currency) {
        return Err(ApiError::validation(format!(
            "`currency` is `{}`; this merchant's provider offers {:?}",
            req.currency, offered
        )));
    }
    if !adapter.info.methods.contains(&req.method) {
        return Err(ApiError::validation(format!(
            "`method` is `{}`; this merchant's provider offers {:?}",
            req.method, adapter.info.methods
        )));
    }
    // Limits are checked before the provider is called; the per-payer day
    // is counted again inside the insert, so concurrent creates cannot
    // pass it together.
    // Limits are in the merchant's own currency; a CNY order of a merchant
    // in another one counts converted.
    let counts_minor = merchant
        .limit_minor(req.amount, &req.currency)
        .map_err(ApiError::validation)?;
    merchant.limits.check_amount(counts_minor, 0)?;
    let now = now_ms();
    let day_cap = req.payer_openid.as_ref().map(|openid| DailyCap {
        payer_openid: openid.clone(),
        since: merchant.day_start_ms(now),
        max_minor: i64::try_from(merchant.limits.amounts.per_payer_day_minor).unwrap_or(i64::MAX),
        counts_minor,
    });

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
        payer_app_id: req.payer_app_id.clone(),
        payer_openid: req.payer_openid.clone(),
        client_ip: req.client_ip.clone(),
        pay_action: None,
        refunded_minor: 0,
        expires_at: req.expires_at.map(|secs| secs.saturating_mul(1000)),
        paid_at: None,
        attach: req.attach.clone(),
        metadata: Value::Object(req.metadata.clone()),
        // Should payhost die before it stores the provider's answer, the
        // reconciler finds the order here and asks the provider (after the
        // notification delay, far above any create's own time-out).
        next_poll_at: Some(now + state.notify_overdue_ms),
        poll_attempts: 0,
        created_at: now,
        updated_at: now,
        version: 0,
    };
    // One create of an order number at a time reaches the provider; the
    // others are told to retry rather than send the same order again.
    let _in_flight = CREATES
        .claim(
            (
                store_id(state),
                merchant.id.clone(),
                req.merchant_order_no.clone(),
            ),
            (),
        )
        .map_err(|()| {
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
    let claim = key.as_ref().map(|k| &k.claim);
    let inserted = match state
        .store
        .insert_order_claiming(&candidate, day_cap.as_ref(), claim)
        .await
    {
        Ok(Claimed::Ran(i)) => i,
        Ok(Claimed::Held(begin)) => return Ok(Creation::KeyHeld(begin)),
        Err(StoreError::CapExceeded { .. }) => {
            return Err(LimitExceeded {
                limit: "per_payer_day",
                max_minor: merchant.limits.amounts.per_payer_day_minor,
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(k) = key.as_mut() {
        k.state = KeyState::Claimed;
    }
    let inserted_now = inserted.is_new();
    let order = match inserted {
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
                return Ok(Creation::Order(Box::new(Created {
                    order: o,
                    status: StatusCode::OK,
                })));
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
    let (result, requests_sent) = call_counted(state, merchant, &adapter, op).await;
    match result {
        Ok(Output::OrderCreated(created)) => {
            let decision = orders::order_created(
                &order,
                &created.order,
                Some(pay_action_json(&created.action)),
            );
            match decision {
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
                    let completion = key.as_mut().and_then(|k| k.completion.take());
                    let completing = completion.is_some();
                    let saved = state
                        .store
                        .update_order_completing(&next, &events, completion)
                        .await?;
                    if let Some(k) = key.as_mut().filter(|_| completing) {
                        k.state = KeyState::Completed;
                    }
                    Ok(Creation::Order(Box::new(Created {
                        order: saved,
                        status: StatusCode::CREATED,
                    })))
                }
                Decision::Unchanged | Decision::NeedsAmount => {
                    Ok(Creation::Order(Box::new(Created {
                        order,
                        status: StatusCode::CREATED,
                    })))
                }
                Decision::Reject(reason) => Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_malformed",
                    "The provider's answer contradicts the order",
                    reason,
                )),
            }
        }
        Ok(other) => Err(unexpected("unified order", &other)),
        Err(err) => {
            // Nothing was sent (the adapter refused the input, the egress
            // policy refused the host, the adapter trapped first): the row
            // this request wrote goes, so the number is not used up. The
            // host counts the requests, not the adapter, so a hostile one
            // cannot free a number its provider saw. A row an earlier
            // attempt wrote stays: that attempt may have reached the provider.
            if inserted_now && requests_sent == 0 {
                state.store.delete_unsent_order(&order).await?;
                return Err(err);
            }
            // Only the provider's final refusal fails the order. Anything
            // else (a retryable or transport failure) leaves it `created`:
            // the same or a corrected request may be sent again under the
            // same order number, and the reconciler asks the provider about
            // it meanwhile.
            if final_refusal(&err)
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

/// Whether any provider accepted the order: only then can asking it about
/// the order (`?refresh=true`) tell anything the store does not. An order
/// still `created` or failed at creation was never accepted.
pub fn reached_provider(order: &Order) -> bool {
    order.pay_action.is_some() || order.provider_trade_no.is_some()
}

/// Creates in flight in this process, by (store, merchant, order no).
/// Replicas sharing a store can still race each other; providers take an
/// identical order number with identical values as the same order.
static CREATES: InFlight<(usize, String, String), ()> = InFlight::new();

/// Tells apart the stores of several payhosts in one process (tests).
pub(crate) fn store_id(state: &AppState) -> usize {
    std::sync::Arc::as_ptr(&state.store) as *const () as usize
}
