//! Learning the provider's truth: refresh an order, close an expired one,
//! settle a pending refund.

use super::apply::{load_order, query};
use super::retry::until_not_lost;
use super::{
    Verdict, apply_refund_status, apply_trade_status, call, final_refusal, order_ref, unexpected,
};
use crate::api::problem::ApiError;
use crate::api::{AppState, Merchant};
use crate::contract::{CloseRequest, RefundQueryRequest, TradeState};
use crate::orders::{self, Decision};
use crate::runtime::{Operation, Output};
use crate::store::{Order, OrderState, Refund};
use axum::http::StatusCode;

/// Asks the provider for the order's state and applies the answer. Returns
/// the order, the verdict and the digest of the adapter version asked.
pub async fn refresh(
    state: &AppState,
    merchant: &Merchant,
    order: &Order,
) -> Result<(Order, Verdict, String), ApiError> {
    // One version answers the query and is named in the answer.
    let adapter = state.adapter_for(merchant)?;
    let status = query(state, merchant, &adapter, order).await?;
    let (order, verdict) =
        apply_trade_status(state, merchant, &order.merchant_order_no, &status, false).await?;
    Ok((order, verdict, adapter.digest.clone()))
}

/// Closes an unpaid order past its expiry, never on a guess: where the
/// provider can close, it closes the order there first (so the payer can no
/// longer pay); otherwise the provider must confirm it unpaid. Whatever
/// the provider says instead (paid, failed) is applied. Any failure to learn
/// the provider's truth is returned and the order stays open, for the
/// reconciler to try again.
pub async fn close_expired(
    state: &AppState,
    merchant: &Merchant,
    order: &Order,
) -> Result<Order, ApiError> {
    let adapter = state.adapter_for(merchant)?;
    let mut order = order.clone();
    if order.state == OrderState::Created {
        // The provider may never have accepted it (payhost died, or the
        // call failed, before it heard back): ask first.
        match query(state, merchant, &adapter, &order).await {
            Ok(status) => {
                order =
                    apply_trade_status(state, merchant, &order.merchant_order_no, &status, false)
                        .await?
                        .0;
                if order.state != OrderState::Pending && order.state != OrderState::Created {
                    return Ok(order);
                }
            }
            // The provider does not know the order: nobody can pay it.
            Err(e) if final_refusal(&e) => {
                return store_decision(state, &order, orders::creation_failed).await;
            }
            Err(e) => return Err(e),
        }
    }
    let status = if adapter.info.capabilities.close {
        let op = Operation::Close(CloseRequest {
            order: order_ref(&order),
        });
        match call(state, merchant, &adapter, op).await? {
            Output::TradeStatus(s) => s,
            other => return Err(unexpected("close", &other)),
        }
    } else {
        query(state, merchant, &adapter, &order).await?
    };
    match status.state {
        TradeState::Pending if adapter.info.capabilities.close => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_malformed",
            "The provider did not close the order",
            format!(
                "close of `{}` answered `{}` (pending)",
                order.merchant_order_no, status.provider_state
            ),
        )),
        // Confirmed unpaid by a provider that cannot close: payhost closes
        // it; should it be paid after all, that payment is still applied.
        TradeState::Pending => {
            let now = crate::api::now_ms();
            store_decision(state, &order, |o| orders::close_expired(o, now)).await
        }
        _ => Ok(
            apply_trade_status(state, merchant, &order.merchant_order_no, &status, true)
                .await?
                .0,
        ),
    }
}

/// Stores a host-side decision about an order, deciding again on a
/// concurrent update.
async fn store_decision(
    state: &AppState,
    order: &Order,
    decide: impl Fn(&Order) -> Decision,
) -> Result<Order, ApiError> {
    let decide = &decide;
    until_not_lost(move |round| async move {
        // The caller's copy first; after a lost race, the row as it is now.
        let now = match round {
            0 => order.clone(),
            _ => state
                .store
                .get_order(&order.merchant_id, &order.merchant_order_no)
                .await?
                .ok_or_else(|| ApiError::not_found("the order vanished"))?,
        };
        match decide(&now) {
            Decision::Apply {
                order: next,
                events,
            } => Ok(state.store.update_order(&next, &events).await?),
            _ => Ok(now),
        }
    })
    .await
}

/// Asks the provider for a pending refund's state (`refund-query`) and
/// applies the answer.
pub async fn settle_refund(
    state: &AppState,
    merchant: &Merchant,
    refund: &Refund,
) -> Result<(Refund, Verdict), ApiError> {
    let adapter = state.adapter_for(merchant)?;
    if !adapter.info.capabilities.refund_query {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported",
            "The provider cannot be asked about refunds",
            format!(
                "adapter `{}` has no refund-query; refund `{}` settles by notification only",
                merchant.adapter, refund.refund_no
            ),
        ));
    }
    let order = load_order(state, merchant, &refund.merchant_order_no).await?;
    let op = Operation::RefundQuery(RefundQueryRequest {
        order: order_ref(&order),
        refund_no: refund.refund_no.clone(),
        provider_refund_id: refund.provider_refund_id.clone(),
    });
    let status = match call(state, merchant, &adapter, op).await? {
        Output::RefundStatus(s) => s,
        other => return Err(unexpected("refund-query", &other)),
    };
    apply_refund_status(
        state,
        merchant,
        &refund.merchant_order_no,
        &refund.refund_no,
        &status,
    )
    .await
}
