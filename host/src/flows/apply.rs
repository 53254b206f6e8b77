//! Applying a provider's statement (a notification, a query or close
//! answer, a refund answer) to the stored order or refund.

use super::retry::until_not_lost;
use super::{call, order_ref, unexpected};
use crate::api::problem::ApiError;
use crate::api::{AppState, Merchant};
use crate::contract::{self, QueryRequest};
use crate::orders::{self, Decision, RefundDecision};
use crate::runtime::{LoadedAdapter, Operation, Output};
use crate::store::{NotificationRecord, Order, Refund};
use serde_json::json;
use sha2::Digest as _;

/// What became of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It changed the order or refund.
    Applied,
    /// Nothing new: a duplicate, or older than what is stored.
    Duplicate,
    /// It contradicts what is stored; nothing changed, the merchant was
    /// told (once per distinct contradiction).
    Mismatch(String),
    /// It says paid without an amount, and the provider could not be asked
    /// for one now; nothing changed, the reconciler asks again later.
    Unconfirmed,
}

impl Verdict {
    /// The word recorded with a notification and counted in metrics.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Applied => "applied",
            Verdict::Duplicate => "duplicate",
            Verdict::Mismatch(_) => "rejected",
            Verdict::Unconfirmed => "unconfirmed",
        }
    }

    /// The verdict with its reason, for the notification record.
    pub fn detail(&self) -> String {
        match self {
            Verdict::Mismatch(reason) => format!("rejected: {reason}"),
            other => other.word().to_string(),
        }
    }
}

/// Applies a provider's statement about a payment. A paid statement without
/// an amount is completed by asking the provider (`query`) first, when
/// `may_query`; a contradiction is recorded and sent to the merchant.
pub async fn apply_trade_status(
    state: &AppState,
    merchant: &Merchant,
    order_no: &str,
    status: &contract::TradeStatus,
    may_query: bool,
) -> Result<(Order, Verdict), ApiError> {
    apply_noted_trade_status(state, merchant, order_no, status, may_query, None).await
}

/// [`apply_trade_status`] of a notification's statement: `note`, the
/// notification, is recorded in the transaction of the change when the
/// verdict is [`Verdict::Applied`] (one commit instead of two); with any
/// other verdict nothing of it is written and the caller records it.
pub async fn apply_noted_trade_status(
    state: &AppState,
    merchant: &Merchant,
    order_no: &str,
    status: &contract::TradeStatus,
    may_query: bool,
    note: Option<&NotificationRecord>,
) -> Result<(Order, Verdict), ApiError> {
    let decided = until_not_lost(move |_| async move {
        let order = load_order(state, merchant, order_no).await?;
        Ok(match orders::apply_trade_status(&order, status) {
            Decision::Apply {
                order: next,
                events,
            } => {
                let saved = match note {
                    Some(note) => state.store.update_order_noting(&next, &events, note).await?,
                    None => state.store.update_order(&next, &events).await?,
                };
                if order.state.is_given_up() && saved.state == crate::store::OrderState::Paid {
                    // The payer's money arrived after payhost gave up.
                    tracing::warn!(
                        merchant = %merchant.id, order = %order_no, previous = %order.state,
                        "payment arrived after the order was {}; the merchant must fulfil or refund it",
                        order.state
                    );
                    state.metrics.money_event(&merchant.id, "paid_after_close");
                }
                (saved, Verdict::Applied)
            }
            Decision::Unchanged => (order, Verdict::Duplicate),
            Decision::Reject(reason) => {
                let reported = serde_json::to_value(status).unwrap_or_default();
                mismatch(state, merchant, &order, None, &reason, reported).await?;
                (order, Verdict::Mismatch(reason))
            }
            // Asked below, outside the compare-and-set: a provider call is
            // not something to repeat on a lost race.
            Decision::NeedsAmount => (order, Verdict::Unconfirmed),
        })
    })
    .await?;
    match decided {
        (order, Verdict::Unconfirmed) if may_query => {
            let queried = match state.adapter_for(merchant) {
                Ok(adapter) => query(state, merchant, &adapter, &order).await,
                Err(e) => Err(e),
            };
            match queried {
                Ok(q) => {
                    Box::pin(apply_noted_trade_status(
                        state, merchant, order_no, &q, false, note,
                    ))
                    .await
                }
                Err(e) => {
                    tracing::info!(
                        merchant = %merchant.id, order = %order_no, error = %e.detail,
                        "a paid statement without amount could not be confirmed by query"
                    );
                    Ok((order, Verdict::Unconfirmed))
                }
            }
        }
        decided => Ok(decided),
    }
}

/// Applies a provider's statement about a refund (and its order).
pub async fn apply_refund_status(
    state: &AppState,
    merchant: &Merchant,
    order_no: &str,
    refund_no: &str,
    status: &contract::RefundStatus,
) -> Result<(Refund, Verdict), ApiError> {
    until_not_lost(move |_| async move {
        let order = load_order(state, merchant, order_no).await?;
        let refund = state
            .store
            .get_refund(&merchant.id, order_no, refund_no)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!("no refund `{refund_no}` on payment `{order_no}`"))
            })?;
        Ok(match orders::apply_refund_status(&order, &refund, status) {
            RefundDecision::Apply {
                refund: mut next,
                order: next_order,
                events,
            } => {
                if next.state != crate::store::RefundState::Pending {
                    next.next_poll_at = None;
                }
                let saved = state
                    .store
                    .update_refund(&next, next_order.as_ref(), &events)
                    .await?;
                (saved, Verdict::Applied)
            }
            RefundDecision::Unchanged => (refund, Verdict::Duplicate),
            RefundDecision::Reject(reason) => {
                let reported = serde_json::to_value(status).unwrap_or_default();
                mismatch(state, merchant, &order, Some(&refund), &reason, reported).await?;
                (refund, Verdict::Mismatch(reason))
            }
        })
    })
    .await
}

/// Records a contradiction once and tells the merchant; a repeat (the
/// provider retrying, the reconciler asking again) is only counted.
async fn mismatch(
    state: &AppState,
    merchant: &Merchant,
    order: &Order,
    refund: Option<&Refund>,
    reason: &str,
    reported: serde_json::Value,
) -> Result<(), ApiError> {
    let kind = if refund.is_some() {
        "refund_mismatch"
    } else {
        "payment_mismatch"
    };
    let event = orders::mismatch_event(order, refund, reason, reported);
    let key = json!([kind, refund.map(|r| &r.refund_no), reason]);
    let subject = &order.merchant_order_no;
    tell_contradiction(state, merchant, subject, kind, reason, key, &event).await
}

/// A verified provider statement that contradicts what payhost stored
/// about `subject` (an order number, a payout's subject): recorded once per
/// distinct `key` (which names the `reason`), and only the first time
/// `event` goes to the merchant, a warning to the log and `kind` to the
/// money metric.
pub(super) async fn tell_contradiction(
    state: &AppState,
    merchant: &Merchant,
    subject: &str,
    kind: &'static str,
    reason: &str,
    key: serde_json::Value,
    event: &crate::store::NewEvent,
) -> Result<(), ApiError> {
    let fingerprint = hex::encode(sha2::Sha256::digest(key.to_string()));
    let first = state
        .store
        .record_mismatch(&merchant.id, subject, &fingerprint, event)
        .await?;
    if first {
        tracing::warn!(
            merchant = %merchant.id, %subject, %kind, %reason,
            "the provider contradicts what payhost stored; nothing changed, the merchant is told"
        );
        state.metrics.money_event(&merchant.id, kind);
    }
    Ok(())
}

/// [`tell_contradiction`] keyed by its kind and reason: what payouts,
/// contracts and deductions record once.
pub(super) async fn tell_contradiction_once(
    state: &AppState,
    merchant: &Merchant,
    subject: &str,
    kind: &'static str,
    reason: &str,
    event: &crate::store::NewEvent,
) -> Result<(), ApiError> {
    let key = serde_json::json!([kind, reason]);
    tell_contradiction(state, merchant, subject, kind, reason, key, event).await
}

/// The provider's current status of an order (`query`).
/// `adapter` is the merchant's current (or pinned) version, not the one the
/// order was created with: versions of a slot speak the same contract.
pub(super) async fn query(
    state: &AppState,
    merchant: &Merchant,
    adapter: &LoadedAdapter,
    order: &Order,
) -> Result<contract::TradeStatus, ApiError> {
    let op = Operation::Query(QueryRequest {
        order: order_ref(order),
    });
    match call(state, merchant, adapter, op).await? {
        Output::TradeStatus(s) => Ok(s),
        other => Err(unexpected("query", &other)),
    }
}

/// The merchant's order, or 404 naming it.
pub async fn load_order(
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
