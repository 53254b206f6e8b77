//! The payment flows: create, refresh, apply a provider's statement,
//! close, refund and settle a refund; pay out and settle a payout; sign,
//! charge and end auto-debit contracts.
//!
//! Whoever starts a flow -- an HTTP handler, the notify endpoint, the
//! reconciler -- calls it here; none of them decides an order's state
//! itself. The state machine ([`crate::orders`]) decides, the flows ask
//! the provider through the adapter, store the decision (retrying on a
//! concurrent update), and tell the merchant what a human must look at.
//!
//! Money rules the flows keep:
//! - an order is closed only once the provider confirmed it unpaid (and,
//!   where it can, closed it itself first);
//! - the provider's verified word that the payer paid wins, even after
//!   payhost closed the order; the merchant hears `paid_after_close`;
//! - a statement that contradicts an order (amount, currency, ids, a
//!   settled state) changes nothing, is recorded once and sent to the
//!   merchant as `payment.provider_mismatch` / `refund.provider_mismatch`;
//! - paid is never applied without an amount checked against the order.

mod apply;
mod auto_debit;
mod create;
pub(crate) mod in_flight;
mod payout;
mod refund;
pub(crate) mod retry;
mod settle;

pub use apply::{
    Verdict, apply_noted_trade_status, apply_refund_status, apply_trade_status, load_order,
};
pub use auto_debit::{
    NewContract, NewDeduction, Outcome, apply_contract_status, apply_deduction_status,
    create_contract, create_deduction, load_contract, load_deduction, refresh_contract,
    refresh_deduction, resume_contract, terminate_contract,
};
pub(crate) use create::store_id;
pub use create::{
    Created, Creation, KeyState, KeyedCreate, NewPayment, create_payment, reached_provider,
};
pub use payout::{
    NewPayout, PayoutOutcome, apply_payout_status, create_payout, load_payout, refresh_payout,
};
pub use refund::{NewRefund, RefundOutcome, refund_payment};
pub use settle::{close_expired, refresh, settle_refund};

use crate::api::problem::ApiError;
use crate::api::{AppState, Merchant};
use crate::contract::{self, OrderRef};
use crate::runtime::{LoadedAdapter, Operation, Output};
use crate::store::Order;

/// The contract's reference to a stored order.
pub fn order_ref(o: &Order) -> OrderRef {
    OrderRef {
        merchant_order_no: o.merchant_order_no.clone(),
        provider_trade_no: o.provider_trade_no.clone(),
        channel_transaction_id: o.channel_transaction_id.clone(),
    }
}

fn money(minor: i64, currency: &str) -> contract::Money {
    contract::Money {
        minor: u64::try_from(minor).unwrap_or(0),
        currency: currency.into(),
    }
}

/// Runs one adapter operation for a merchant, timed and counted.
async fn call(
    state: &AppState,
    merchant: &Merchant,
    adapter: &LoadedAdapter,
    op: Operation,
) -> Result<Output, ApiError> {
    call_counted(state, merchant, adapter, op).await.0
}

/// [`call`], and how many requests reached out to the provider: with none,
/// the provider never saw the operation, whatever the adapter answered.
async fn call_counted(
    state: &AppState,
    merchant: &Merchant,
    adapter: &LoadedAdapter,
    op: Operation,
) -> (Result<Output, ApiError>, usize) {
    let ctx = state.call_context(merchant);
    // Metric labels use snake case (`unified_order`), the contract kebab.
    let name = op.name().replace('-', "_");
    let mut sent = 0;
    let result = state
        .metrics
        .time_call(&merchant.adapter, &name, async {
            let (result, n) = state
                .runtime
                .call_counted(adapter, &merchant.adapter_config, ctx, op)
                .await;
            sent = n;
            result
        })
        .await
        .map_err(ApiError::from);
    (result, sent)
}

/// An answer of the wrong kind is the adapter's bug.
fn unexpected(op: &str, out: &Output) -> ApiError {
    ApiError::internal(format!("adapter answered {op} with {out:?}"))
}

/// Whether an error is the provider's final refusal (not worth retrying).
fn final_refusal(e: &ApiError) -> bool {
    e.code == "provider_rejected"
        && e.extra.get("retryable") == Some(&serde_json::Value::Bool(false))
}
