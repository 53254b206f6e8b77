//! Learns the outcome of what nobody told us about, and never guesses.
//!
//! - Orders still `created` (payhost died, or the call failed, before the
//!   provider's answer was stored) and `pending` orders whose notification
//!   is late, or whose provider sends none, are polled with `query`.
//! - An order past its expiry is closed through [`flows::close_expired`]:
//!   at the provider first where it can close, else only once the provider
//!   confirmed it unpaid. A failed query or close leaves it open.
//! - Pending refunds are settled with `refund-query`.
//! - Payouts not final are settled with `payout-query`.
//!
//! Everything is retried with exponential back-off; a row that cannot be
//! handled now (its merchant is no longer configured, the provider is down)
//! is rescheduled, never picked up again at once.

use crate::api::problem::ApiError;
use crate::api::{AppState, now_ms};
use crate::flows;
use crate::flows::retry::until_not_lost;
use crate::store::{Order, OrderState, Payout, Refund, RefundState};
use std::time::Duration;

/// Rows taken per pass, of orders and of refunds each.
const BATCH: i64 = 64;

/// The wait before poll number `attempts + 1`: `base` doubled per attempt,
/// at most `max`.
fn backoff((base, max): (i64, i64), attempts: i64) -> i64 {
    base.saturating_mul(1 << attempts.clamp(0, 20)).min(max)
}

/// Runs until the process ends.
pub async fn run(state: AppState, tick: Duration) {
    loop {
        if let Err(e) = reconcile_due(&state).await {
            tracing::warn!(error = %e.detail, "reconciler pass failed");
        }
        tokio::time::sleep(tick).await;
    }
}

/// One pass; returns how many orders, refunds and payouts were looked at.
pub async fn reconcile_due(state: &AppState) -> Result<usize, ApiError> {
    let now = now_ms();
    let orders = state.store.orders_to_poll(now, BATCH).await?;
    let refunds = state.store.refunds_to_poll(now, BATCH).await?;
    let payouts = state.store.payouts_to_poll(now, BATCH).await?;
    let n = orders.len() + refunds.len() + payouts.len();
    for order in orders {
        if let Err(e) = reconcile_order(state, &order).await {
            tracing::info!(order = %order.merchant_order_no, error = %e.detail, code = e.code, "polling an order failed; will retry");
        }
        reschedule_order(state, &order).await?;
    }
    for refund in refunds {
        if let Err(e) = settle(state, &refund).await {
            tracing::info!(refund = %refund.refund_no, error = %e.detail, code = e.code, "settling a refund failed; will retry");
        }
        reschedule_refund(state, &refund).await?;
    }
    for payout in payouts {
        if let Err(e) = settle_payout(state, &payout).await {
            tracing::info!(payout = %payout.payout_no, error = %e.detail, code = e.code, "settling a payout failed; will retry");
        }
        reschedule_payout(state, &payout).await?;
    }
    Ok(n)
}

async fn settle_payout(state: &AppState, payout: &Payout) -> Result<(), ApiError> {
    let merchant = merchant_of(state, &payout.merchant_id)?;
    flows::refresh_payout(state, &merchant, payout).await?;
    Ok(())
}

/// Schedules the next `payout-query` of a payout not final.
async fn reschedule_payout(state: &AppState, polled: &Payout) -> Result<(), ApiError> {
    until_not_lost(move |_| async move {
        let Some(mut next) = state
            .store
            .get_payout(&polled.merchant_id, &polled.payout_no)
            .await?
        else {
            return Ok(());
        };
        let open = !next.state.is_final();
        if !reschedule(state, open, &mut next.next_poll_at, &mut next.poll_attempts) {
            return Ok(());
        }
        state.store.update_payout(&next, &[]).await?;
        Ok(())
    })
    .await
}

/// The next poll of a row after one was made: a back-off later while it is
/// still `open`, none once it is settled. Returns whether the row changed
/// (a settled row without a schedule needs no write).
fn reschedule(
    state: &AppState,
    open: bool,
    next_poll_at: &mut Option<i64>,
    attempts: &mut i64,
) -> bool {
    if !open {
        return next_poll_at.take().is_some();
    }
    *attempts += 1;
    *next_poll_at = Some(now_ms() + backoff(state.poll_backoff_ms, *attempts));
    true
}

/// The merchant of a row to poll, while it is still configured.
fn merchant_of(
    state: &AppState,
    id: &str,
) -> Result<std::sync::Arc<crate::api::Merchant>, ApiError> {
    state
        .merchants
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("merchant `{id}` is no longer configured")))
}

async fn reconcile_order(state: &AppState, order: &Order) -> Result<(), ApiError> {
    let merchant = merchant_of(state, &order.merchant_id)?;
    let expired = order.expires_at.is_some_and(|at| at <= now_ms());
    if expired {
        flows::close_expired(state, &merchant, order).await?;
    } else {
        flows::refresh(state, &merchant, order).await?;
    }
    Ok(())
}

async fn settle(state: &AppState, refund: &Refund) -> Result<(), ApiError> {
    let merchant = merchant_of(state, &refund.merchant_id)?;
    flows::settle_refund(state, &merchant, refund).await?;
    Ok(())
}

/// Schedules the next query of an order still open (or clears the
/// schedule of one that is not), on the row as it is now.
async fn reschedule_order(state: &AppState, polled: &Order) -> Result<(), ApiError> {
    until_not_lost(move |_| async move {
        let Some(mut next) = state
            .store
            .get_order(&polled.merchant_id, &polled.merchant_order_no)
            .await?
        else {
            return Ok(());
        };
        let open = matches!(next.state, OrderState::Created | OrderState::Pending);
        if !reschedule(state, open, &mut next.next_poll_at, &mut next.poll_attempts) {
            return Ok(());
        }
        state.store.update_order(&next, &[]).await?;
        Ok(())
    })
    .await
}

/// Schedules the next `refund-query` of a refund still pending.
async fn reschedule_refund(state: &AppState, polled: &Refund) -> Result<(), ApiError> {
    until_not_lost(move |_| async move {
        let Some(mut next) = state
            .store
            .get_refund(
                &polled.merchant_id,
                &polled.merchant_order_no,
                &polled.refund_no,
            )
            .await?
        else {
            return Ok(());
        };
        let open = next.state == RefundState::Pending;
        if !reschedule(state, open, &mut next.next_poll_at, &mut next.poll_attempts) {
            return Ok(());
        }
        state.store.update_refund(&next, None, &[]).await?;
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = |n| backoff((5_000, 600_000), n);
        assert_eq!(b(0), 5_000);
        assert_eq!(b(1), 10_000);
        assert_eq!(b(3), 40_000);
        assert_eq!(b(7), 600_000);
        assert_eq!(b(1_000), 600_000);
        assert_eq!(b(-5), 5_000);
    }
}
