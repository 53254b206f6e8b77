//! Refunds: never more than was paid, pending refunds included; each one
//! settled by the provider's answer, notification or `refund-query`.

use super::apply::load_order;
use super::{Verdict, apply_refund_status, call, final_refusal, money, order_ref, unexpected};
use crate::api::now_ms;
use crate::api::problem::ApiError;
use crate::api::{AppState, Merchant};
use crate::contract;
use crate::orders;
use crate::runtime::{Operation, Output};
use crate::store::{Inserted, Refund, RefundState, StoreError};
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
                return Ok(RefundOutcome {
                    refund: existing,
                    is_new: false,
                });
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
            // Should the answer or the notification be lost, the
            // reconciler asks the provider (after the notification delay).
            next_poll_at: Some(now + state.notify_overdue_ms),
            poll_attempts: 0,
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

    let adapter = state.adapter_for(merchant)?;
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
            if final_refusal(&err) {
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
