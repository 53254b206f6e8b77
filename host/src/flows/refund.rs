//! Refunds: never more than was paid, pending refunds included; each one
//! settled by the provider's answer, notification or `refund-query`.

use super::apply::load_order;
use super::retry::{Round, until_not_lost};
use super::{Verdict, apply_refund_status, call, final_refusal, money, order_ref, unexpected};
use crate::api::now_ms;
use crate::api::problem::ApiError;
use crate::api::{AppState, Merchant};
use crate::contract;
use crate::orders;
use crate::runtime::{Operation, Output};
use crate::store::{Inserted, Order, Refund, RefundState};
use axum::http::StatusCode;

/// A refund to make, as the merchant asked for it.
#[derive(Debug, Clone)]
pub struct NewRefund {
    pub refund_no: String,
    pub amount: i64,
    pub reason: Option<String>,
}

/// The outcome of [`refund_payment`].
#[derive(Debug)]
pub struct RefundOutcome {
    pub refund: Refund,
    /// The refund was created by this call (not a retry of an earlier one).
    pub is_new: bool,
}

/// Where the first, stored step of a refund ended.
enum Begun {
    /// A retry of a refund the provider already answered.
    Settled(Refund),
    /// The provider is to be asked: the order, the stored refund, and
    /// whether this call created it.
    Ask(Box<Order>, Refund, bool),
}

/// Refunds (part of) a paid order. The refund is stored `pending` before
/// the provider is asked, under a compare-and-set of the order so two
/// concurrent refunds can never together exceed what was paid. A provider's
/// refusal is an error (the refund is then `failed`), never `pending`.
pub async fn refund_payment(
    state: &AppState,
    merchant: &Merchant,
    order_no: &str,
    req: NewRefund,
) -> Result<RefundOutcome, ApiError> {
    if req.amount <= 0 {
        return Err(ApiError::validation(
            "`amount` must be a positive integer of minor units",
        ));
    }
    let req = &req;
    let adapter = state.adapter_for(merchant)?;
    crate::api::validate::field_rules(
        &adapter.info.field_rules,
        None,
        &[
            ("refund_no", Some(&req.refund_no)),
            ("reason", req.reason.as_deref()),
        ],
    )?;
    // Without refund notifications the reconciler asks soon; with them,
    // only once the notification is overdue.
    let first_poll_ms = state.first_poll_delay_ms(adapter.info.capabilities.refund_notifications);
    let begun = until_not_lost(move |_| async move {
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
                )
                .into());
            }
            if existing.state != RefundState::Pending || existing.provider_refund_id.is_some() {
                return Ok(Begun::Settled(existing));
            }
            return Ok(Begun::Ask(Box::new(order), existing, false));
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
            // Should the answer or the notification be lost, the
            // reconciler asks the provider.
            next_poll_at: Some(now + first_poll_ms),
            poll_attempts: 0,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        match state.store.insert_refund(&refund, &order, &[]).await? {
            Inserted::New(r) => Ok(Begun::Ask(Box::new(order), r, true)),
            // A concurrent request with the same refund no won: decide again.
            Inserted::Existing(_) => Err(Round::Lost),
        }
    })
    .await?;
    let (order, refund, is_new) = match begun {
        Begun::Settled(refund) => {
            return Ok(RefundOutcome {
                refund,
                is_new: false,
            });
        }
        Begun::Ask(order, refund, is_new) => (*order, refund, is_new),
    };

    let op = Operation::Refund(contract::RefundRequest {
        order: order_ref(&order),
        refund_no: refund.refund_no.clone(),
        amount: money(refund.amount_minor, &refund.currency),
        order_amount: money(order.amount_minor, &order.currency),
        reason: refund.reason.clone(),
    });
    let status = match call(state, merchant, &adapter, op).await {
        Ok(Output::RefundStatus(s)) => s,
        Ok(other) => return Err(unexpected("refund", &other)),
        Err(err) => {
            // A provider without refunds (2paynow) never will refund it.
            if final_refusal(&err) || err.code == "unsupported" {
                let mut failed = refund.clone();
                failed.state = RefundState::Failed;
                failed.next_poll_at = None;
                state
                    .store
                    .update_refund(
                        &failed,
                        None,
                        &[orders::refund_event(orders::REFUND_FAILED, &failed, &order)],
                    )
                    .await?;
            }
            // Otherwise the refund stays pending and is settled by
            // notification or `refund-query`.
            return Err(err);
        }
    };
    let (refund, verdict) =
        apply_refund_status(state, merchant, order_no, &refund.refund_no, &status).await?;
    match verdict {
        Verdict::Mismatch(reason) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_malformed",
            "The provider's answer contradicts the refund",
            format!("{reason}; the refund stays pending and is checked with the provider"),
        )),
        _ if refund.state == RefundState::Failed => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_rejected",
            "The provider refused the refund",
            format!(
                "refund `{}` answered `{}`",
                refund.refund_no, status.provider_state
            ),
        )
        .with("provider_code", status.provider_state.clone())
        .with("retryable", false)),
        _ => Ok(RefundOutcome { refund, is_new }),
    }
}
