//! Learns the outcome of orders nobody told us about: pending orders whose
//! adapter sends no notifications, and orders whose notification is late,
//! are polled with `query` with back-off until they settle; an order past
//! its expiry that the provider still reports unpaid is closed.

use crate::api::{AppState, now_ms, payments};
use crate::orders::{self, Decision};
use crate::store::{Order, StoreError};
use std::time::Duration;

/// Longest wait between two polls of one order.
const MAX_POLL_INTERVAL_MS: i64 = 10 * 60 * 1000;

/// Runs until the process ends.
pub async fn run(state: AppState, tick: Duration) {
    loop {
        if let Err(e) = reconcile_due(&state).await {
            tracing::warn!(error = %e.detail, "reconciler pass failed");
        }
        tokio::time::sleep(tick).await;
    }
}

/// One pass; returns how many orders were polled.
pub async fn reconcile_due(state: &AppState) -> Result<usize, crate::api::problem::ApiError> {
    let due = state.store.orders_to_poll(now_ms(), 64).await?;
    let n = due.len();
    for order in due {
        if let Err(e) = reconcile(state, order).await {
            tracing::warn!(error = %e.detail, code = e.code, "polling an order failed");
        }
    }
    Ok(n)
}

async fn reconcile(state: &AppState, order: Order) -> Result<(), crate::api::problem::ApiError> {
    let Some(merchant) = state.merchants.get(&order.merchant_id).cloned() else {
        return Ok(());
    };
    let polled = payments::refresh(state, &merchant, order.clone()).await;
    let mut current = match polled {
        Ok(o) => o,
        // A failed poll is retried later with back-off.
        Err(e) => {
            tracing::info!(order = %order.merchant_order_no, error = %e.detail, "poll failed; will retry");
            order
        }
    };
    // The provider still says unpaid after expiry: nothing can pay it now.
    if let Decision::Apply {
        order: closed,
        events,
    } = orders::close_expired(&current, now_ms())
    {
        match state.store.update_order(&closed, &events).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Schedule the next poll, or none once settled.
    for _ in 0..3 {
        let mut next = current.clone();
        if matches!(
            next.state,
            crate::store::OrderState::Created | crate::store::OrderState::Pending
        ) {
            next.poll_attempts += 1;
            let interval = (5_000i64 << next.poll_attempts.min(10)).min(MAX_POLL_INTERVAL_MS);
            next.next_poll_at = Some(now_ms() + interval);
        } else {
            next.next_poll_at = None;
        }
        match state.store.update_order(&next, &[]).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict) => {
                current = match state
                    .store
                    .get_order(&current.merchant_id, &current.merchant_order_no)
                    .await?
                {
                    Some(o) => o,
                    None => return Ok(()),
                };
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
