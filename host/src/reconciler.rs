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
//! - Contracts waiting for their signature are asked with `contract-query`
//!   (a signature whose notification was lost), deductions not final with
//!   `deduction-query`.
//!
//! Everything is retried with exponential back-off; a row that cannot be
//! handled now (its merchant is no longer configured, the provider is down)
//! is rescheduled, never picked up again at once.

use crate::api::problem::ApiError;
use crate::api::{AppState, now_ms};
use crate::flows;
use crate::flows::retry::until_not_lost;
use crate::store::{
    Contract, ContractState, Deduction, Order, OrderState, Payout, Refund, RefundState, Store,
    StoreError,
};
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
    let contracts = state.store.contracts_to_poll(now, BATCH).await?;
    let deductions = state.store.deductions_to_poll(now, BATCH).await?;
    let n = orders.len() + refunds.len() + payouts.len() + contracts.len() + deductions.len();
    for order in orders {
        if let Err(e) = reconcile_order(state, &order).await {
            tracing::info!(order = %order.merchant_order_no, error = %e.detail, code = e.code, "polling an order failed; will retry");
        }
        reschedule_row(state, &order).await?;
    }
    for refund in refunds {
        if let Err(e) = settle(state, &refund).await {
            tracing::info!(refund = %refund.refund_no, error = %e.detail, code = e.code, "settling a refund failed; will retry");
        }
        reschedule_row(state, &refund).await?;
    }
    for payout in payouts {
        if let Err(e) = settle_payout(state, &payout).await {
            tracing::info!(payout = %payout.payout_no, error = %e.detail, code = e.code, "settling a payout failed; will retry");
        }
        reschedule_row(state, &payout).await?;
    }
    for contract in contracts {
        if let Err(e) = settle_contract(state, &contract).await {
            tracing::info!(contract = %contract.contract_no, error = %e.detail, code = e.code, "asking about a contract failed; will retry");
        }
        reschedule_row(state, &contract).await?;
    }
    for deduction in deductions {
        if let Err(e) = settle_deduction(state, &deduction).await {
            tracing::info!(deduction = %deduction.deduction_no, error = %e.detail, code = e.code, "settling a deduction failed; will retry");
        }
        reschedule_row(state, &deduction).await?;
    }
    Ok(n)
}

async fn settle_contract(state: &AppState, contract: &Contract) -> Result<(), ApiError> {
    let merchant = merchant_of(state, &contract.merchant_id)?;
    flows::refresh_contract(state, &merchant, contract).await?;
    Ok(())
}

async fn settle_deduction(state: &AppState, deduction: &Deduction) -> Result<(), ApiError> {
    let merchant = merchant_of(state, &deduction.merchant_id)?;
    flows::refresh_deduction(state, &merchant, deduction).await?;
    Ok(())
}

async fn settle_payout(state: &AppState, payout: &Payout) -> Result<(), ApiError> {
    let merchant = merchant_of(state, &payout.merchant_id)?;
    flows::refresh_payout(state, &merchant, payout).await?;
    Ok(())
}

/// A row the reconciler polls: read again, still open or not, its
/// schedule, and written back (a compare-and-set).
#[async_trait::async_trait]
trait Polled: Sized + Send + Sync {
    async fn reread(&self, store: &dyn Store) -> Result<Option<Self>, StoreError>;
    fn open(&self) -> bool;
    fn schedule(&mut self) -> (&mut Option<i64>, &mut i64);
    async fn write(&self, store: &dyn Store) -> Result<(), StoreError>;
}

#[async_trait::async_trait]
impl Polled for Order {
    async fn reread(&self, store: &dyn Store) -> Result<Option<Self>, StoreError> {
        store
            .get_order(&self.merchant_id, &self.merchant_order_no)
            .await
    }
    fn open(&self) -> bool {
        matches!(self.state, OrderState::Created | OrderState::Pending)
    }
    fn schedule(&mut self) -> (&mut Option<i64>, &mut i64) {
        (&mut self.next_poll_at, &mut self.poll_attempts)
    }
    async fn write(&self, store: &dyn Store) -> Result<(), StoreError> {
        store.update_order(self, &[]).await.map(drop)
    }
}

#[async_trait::async_trait]
impl Polled for Refund {
    async fn reread(&self, store: &dyn Store) -> Result<Option<Self>, StoreError> {
        store
            .get_refund(&self.merchant_id, &self.merchant_order_no, &self.refund_no)
            .await
    }
    fn open(&self) -> bool {
        self.state == RefundState::Pending
    }
    fn schedule(&mut self) -> (&mut Option<i64>, &mut i64) {
        (&mut self.next_poll_at, &mut self.poll_attempts)
    }
    async fn write(&self, store: &dyn Store) -> Result<(), StoreError> {
        store.update_refund(self, None, &[]).await.map(drop)
    }
}

#[async_trait::async_trait]
impl Polled for Payout {
    async fn reread(&self, store: &dyn Store) -> Result<Option<Self>, StoreError> {
        store.get_payout(&self.merchant_id, &self.payout_no).await
    }
    fn open(&self) -> bool {
        !self.state.is_final()
    }
    fn schedule(&mut self) -> (&mut Option<i64>, &mut i64) {
        (&mut self.next_poll_at, &mut self.poll_attempts)
    }
    async fn write(&self, store: &dyn Store) -> Result<(), StoreError> {
        store.update_payout(self, &[]).await.map(drop)
    }
}

/// How long a contract is asked about while unsigned: a payer who has not
/// signed in a day has most likely left the page. Its notification is
/// still taken whenever it comes.
const SIGNING_POLL_WINDOW_MS: i64 = 24 * 3_600_000;

#[async_trait::async_trait]
impl Polled for Contract {
    async fn reread(&self, store: &dyn Store) -> Result<Option<Self>, StoreError> {
        store
            .get_contract(&self.merchant_id, &self.contract_no)
            .await
    }
    fn open(&self) -> bool {
        self.state == ContractState::PendingSignature
            && now_ms() < self.created_at.saturating_add(SIGNING_POLL_WINDOW_MS)
    }
    fn schedule(&mut self) -> (&mut Option<i64>, &mut i64) {
        (&mut self.next_poll_at, &mut self.poll_attempts)
    }
    async fn write(&self, store: &dyn Store) -> Result<(), StoreError> {
        store.update_contract(self, &[]).await.map(drop)
    }
}

#[async_trait::async_trait]
impl Polled for Deduction {
    async fn reread(&self, store: &dyn Store) -> Result<Option<Self>, StoreError> {
        store
            .get_deduction(&self.merchant_id, &self.deduction_no)
            .await
    }
    fn open(&self) -> bool {
        !self.state.is_final()
    }
    fn schedule(&mut self) -> (&mut Option<i64>, &mut i64) {
        (&mut self.next_poll_at, &mut self.poll_attempts)
    }
    async fn write(&self, store: &dyn Store) -> Result<(), StoreError> {
        store.update_deduction(self, &[]).await.map(drop)
    }
}

/// Schedules a polled row's next poll, on the row as it is now (the poll
/// itself may have changed it).
async fn reschedule_row<T: Polled>(state: &AppState, polled: &T) -> Result<(), ApiError> {
    until_not_lost(move |_| async move {
        let Some(mut next) = polled.reread(&*state.store).await? else {
            return Ok(());
        };
        let open = next.open();
        let (at, attempts) = next.schedule();
        if !reschedule(state, open, at, attempts) {
            return Ok(());
        }
        next.write(&*state.store).await?;
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
