//! The order state machine, as pure functions over store and contract types.
//!
//! ```text
//! created ──> pending ──> paid ──> partially_refunded ──> refunded
//!    │           │        ^ ^ └──────────────────────────────^
//!    │           ├──> closed ┘ │   (paid after close)
//!    │           └──> failed ──┘
//!    └──> (paid | closed | failed, same as pending)
//! ```
//!
//! `created` is the row written before the provider is called; a provider
//! may report on it before the host has recorded `pending` (a fast payer, a
//! slow disk), so `created` accepts what `pending` accepts. Refunded is
//! terminal. Closed and failed are terminal for everything but the
//! provider's verified word that the payer paid after all (a payment that
//! raced the close, a provider that closed late): the payer's money is a
//! fact, so the order becomes paid and its `payment.paid` says
//! `paid_after_close`, for the merchant to fulfil or refund.
//!
//! The functions here decide; they never write. The caller stores a
//! [`Decision::Apply`] with [`Store::update_order`](crate::store::Store::update_order)
//! (or `update_refund`), which appends the events in the same transaction,
//! and re-reads and decides again on a `Conflict`. Providers repeat and
//! reorder notifications, so anything already known or older than what is
//! stored is [`Decision::Unchanged`]; only a contradiction of a settled fact
//! or a mismatched amount is [`Decision::Reject`]ed, to be recorded.

use serde_json::Value;

use crate::contract::{self, Money, OrderRef, TradeState, TradeStatus};
use crate::resources::{self, EventData};
use crate::store::{NewEvent, Order, OrderState, Refund, RefundState};

pub const PAYMENT_PAID: &str = "payment.paid";
pub const PAYMENT_CLOSED: &str = "payment.closed";
pub const PAYMENT_FAILED: &str = "payment.failed";
pub const REFUND_SUCCEEDED: &str = "refund.succeeded";
pub const REFUND_FAILED: &str = "refund.failed";
pub const PAYMENT_MISMATCH: &str = "payment.provider_mismatch";
pub const REFUND_MISMATCH: &str = "refund.provider_mismatch";

/// What to do with a provider's report about an order.
// One short-lived value per report; boxing the order would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Store this changed copy of the order with these events.
    Apply { order: Order, events: Vec<NewEvent> },
    /// Nothing new (a duplicate, or older than what is stored): harmless.
    Unchanged,
    /// The report contradicts the order (amount, currency, ids, or a
    /// settled state); record it and change nothing.
    Reject(String),
    /// The report says paid but carries no amount: the caller must learn
    /// the amount (query the provider) before anything is applied.
    NeedsAmount,
}

/// What to do with a provider's report about a refund.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RefundDecision {
    /// Store the refund, and the order when it changed, with these events.
    Apply {
        refund: Refund,
        order: Option<Order>,
        events: Vec<NewEvent>,
    },
    Unchanged,
    Reject(String),
}

/// Whether the state machine allows `from -> to` (a state to itself is not
/// a transition, except partially refunded again by a further refund).
pub fn can_transition(from: OrderState, to: OrderState) -> bool {
    use OrderState::*;
    matches!(
        (from, to),
        (Created, Pending | Paid | Closed | Failed)
            | (Pending, Paid | Closed | Failed)
            | (Closed | Failed, Paid)
            | (Paid, PartiallyRefunded | Refunded)
            | (PartiallyRefunded, PartiallyRefunded | Refunded)
    )
}

fn payment_event(event_type: &str, order: &Order) -> NewEvent {
    NewEvent {
        event_type: event_type.to_string(),
        payload: EventData::of(order).to_json(),
    }
}

/// `payment.paid`; `after` is the state payhost had given up in (closed or
/// failed) when the payment arrives after all.
fn paid_event(order: &Order, after: Option<OrderState>) -> NewEvent {
    NewEvent {
        event_type: PAYMENT_PAID.to_string(),
        payload: EventData {
            paid_after_close: Some(after.is_some()),
            previous_state: after,
            ..EventData::of(order)
        }
        .to_json(),
    }
}

/// A verified provider statement that contradicts the order, for the
/// merchant: `payment.provider_mismatch` or `refund.provider_mismatch`.
pub fn mismatch_event(
    order: &Order,
    refund: Option<&Refund>,
    reason: &str,
    reported: Value,
) -> NewEvent {
    let event_type = if refund.is_some() {
        REFUND_MISMATCH
    } else {
        PAYMENT_MISMATCH
    };
    NewEvent {
        event_type: event_type.into(),
        payload: EventData {
            refund: refund.map(resources::Refund::from),
            reason: Some(reason.into()),
            reported: Some(resources::reported(reported)),
            ..EventData::of(order)
        }
        .to_json(),
    }
}

pub fn refund_event(event_type: &str, refund: &Refund, order: &Order) -> NewEvent {
    NewEvent {
        event_type: event_type.to_string(),
        payload: EventData {
            refund: Some(resources::Refund::from(refund)),
            ..EventData::of(order)
        }
        .to_json(),
    }
}

/// Checks a reported amount against the expected one.
fn check_amount(
    what: &str,
    reported: Option<&Money>,
    minor: i64,
    currency: &str,
) -> Result<(), String> {
    let Some(m) = reported else {
        return Ok(());
    };
    if !m.currency.eq_ignore_ascii_case(currency) {
        return Err(format!(
            "{what} currency mismatch: provider reports {}, expected {currency}",
            m.currency
        ));
    }
    if i64::try_from(m.minor).ok() != Some(minor) {
        return Err(format!(
            "{what} amount mismatch: provider reports {} minor units, expected {minor}",
            m.minor
        ));
    }
    Ok(())
}

/// Copies an id the provider reports into `slot` when it is new; an id
/// that differs from the one already stored is a contradiction.
fn learn(slot: &mut Option<String>, reported: Option<&String>, what: &str) -> Result<bool, String> {
    match (slot.as_ref(), reported) {
        (_, None) => Ok(false),
        (None, Some(new)) => {
            *slot = Some(new.clone());
            Ok(true)
        }
        (Some(old), Some(new)) if old == new => Ok(false),
        (Some(old), Some(new)) => Err(format!(
            "{what} mismatch: stored {old}, provider reports {new}"
        )),
    }
}

/// Learns the provider's ids for the order; true when something was new.
fn learn_ids(order: &mut Order, r: &OrderRef) -> Result<bool, String> {
    let a = learn(
        &mut order.provider_trade_no,
        r.provider_trade_no.as_ref(),
        "provider trade no",
    )?;
    let b = learn(
        &mut order.channel_transaction_id,
        r.channel_transaction_id.as_ref(),
        "channel transaction id",
    )?;
    Ok(a || b)
}

/// Applies what a provider reports about a payment (a notification or a
/// `query` answer) to the stored order.
pub fn apply_trade_status(order: &Order, status: &TradeStatus) -> Decision {
    if status.order.merchant_order_no != order.merchant_order_no {
        return Decision::Reject(format!(
            "status is for order {}, not {}",
            status.order.merchant_order_no, order.merchant_order_no
        ));
    }
    if let Err(e) = check_amount(
        "payment",
        status.amount.as_ref(),
        order.amount_minor,
        &order.currency,
    ) {
        return Decision::Reject(e);
    }
    let mut next = order.clone();
    let ids_learned = match learn_ids(&mut next, &status.order) {
        Ok(b) => b,
        Err(e) => return Decision::Reject(e),
    };
    // Ids learned on a report that changes no state are still worth keeping
    // (some providers accept only their own trade no for refunds).
    let keep_ids = |next: Order| {
        if ids_learned {
            Decision::Apply {
                order: next,
                events: Vec::new(),
            }
        } else {
            Decision::Unchanged
        }
    };

    use OrderState as S;
    let open = matches!(order.state, S::Created | S::Pending);
    let paid = matches!(order.state, S::Paid | S::PartiallyRefunded | S::Refunded);
    match status.state {
        TradeState::Pending => {
            if order.state == S::Created {
                next.state = S::Pending;
                Decision::Apply {
                    order: next,
                    events: Vec::new(),
                }
            } else if paid || open {
                keep_ids(next)
            } else {
                // Pending after closed or failed: a stale answer.
                Decision::Unchanged
            }
        }
        // "Refunded" implies it was paid first; the refunds themselves
        // arrive as refund statuses with their amounts.
        TradeState::Paid | TradeState::Refunded => {
            if !paid && status.amount.is_none() {
                // Never mark paid on an unchecked amount.
                return Decision::NeedsAmount;
            }
            if !paid {
                let after = (!open).then_some(order.state);
                next.state = S::Paid;
                if next.paid_at.is_none() {
                    next.paid_at = status.paid_at.map(|s| s.saturating_mul(1000));
                }
                next.next_poll_at = None;
                let ev = paid_event(&next, after);
                Decision::Apply {
                    order: next,
                    events: vec![ev],
                }
            } else {
                if next.paid_at.is_none() && status.paid_at.is_some() {
                    next.paid_at = status.paid_at.map(|s| s.saturating_mul(1000));
                    return Decision::Apply {
                        order: next,
                        events: Vec::new(),
                    };
                }
                keep_ids(next)
            }
        }
        TradeState::Closed | TradeState::Failed => {
            let (to, event) = if status.state == TradeState::Closed {
                (S::Closed, PAYMENT_CLOSED)
            } else {
                (S::Failed, PAYMENT_FAILED)
            };
            if open {
                next.state = to;
                next.next_poll_at = None;
                let ev = payment_event(event, &next);
                Decision::Apply {
                    order: next,
                    events: vec![ev],
                }
            } else if paid {
                Decision::Reject(format!(
                    "provider reports the payment {} ({}) but the order is {}",
                    to, status.provider_state, order.state
                ))
            } else {
                // Closed or failed again, or one after the other: both
                // mean "not paid", which is already settled.
                Decision::Unchanged
            }
        }
    }
}

/// Applies what a provider reports about a refund (the `refund` answer, a
/// `query`, a notification).
///
/// Refund amounts are counted in the order's minor units: `refunded_minor`
/// adds the refund's `amount_minor`, capped by the order's amount.
pub fn apply_refund_status(
    order: &Order,
    refund: &Refund,
    status: &contract::RefundStatus,
) -> RefundDecision {
    if refund.merchant_id != order.merchant_id
        || refund.merchant_order_no != order.merchant_order_no
    {
        return RefundDecision::Reject("refund belongs to another order".into());
    }
    if status.refund_no != refund.refund_no {
        return RefundDecision::Reject(format!(
            "status is for refund {}, not {}",
            status.refund_no, refund.refund_no
        ));
    }
    if status.order.merchant_order_no != order.merchant_order_no {
        return RefundDecision::Reject(format!(
            "status is for order {}, not {}",
            status.order.merchant_order_no, order.merchant_order_no
        ));
    }
    if let Err(e) = check_amount(
        "refund",
        status.amount.as_ref(),
        refund.amount_minor,
        &refund.currency,
    ) {
        return RefundDecision::Reject(e);
    }
    let mut next = refund.clone();
    let id_learned = match learn(
        &mut next.provider_refund_id,
        status.provider_refund_id.as_ref(),
        "provider refund id",
    ) {
        Ok(b) => b,
        Err(e) => return RefundDecision::Reject(e),
    };

    use contract::RefundState as Reported;
    match (refund.state, status.state) {
        (RefundState::Pending, Reported::Succeeded) => {
            if !matches!(
                order.state,
                OrderState::Paid | OrderState::PartiallyRefunded
            ) {
                return RefundDecision::Reject(format!(
                    "refund succeeded but the order is {}",
                    order.state
                ));
            }
            let total = order.refunded_minor.saturating_add(refund.amount_minor);
            if total > order.amount_minor {
                return RefundDecision::Reject(format!(
                    "refunds would total {total}, more than the order's {}",
                    order.amount_minor
                ));
            }
            let mut o = order.clone();
            o.refunded_minor = total;
            o.state = if total == o.amount_minor {
                OrderState::Refunded
            } else {
                OrderState::PartiallyRefunded
            };
            next.state = RefundState::Succeeded;
            let ev = refund_event(REFUND_SUCCEEDED, &next, &o);
            RefundDecision::Apply {
                refund: next,
                order: Some(o),
                events: vec![ev],
            }
        }
        (RefundState::Pending, Reported::Failed) => {
            next.state = RefundState::Failed;
            let ev = refund_event(REFUND_FAILED, &next, order);
            RefundDecision::Apply {
                refund: next,
                order: None,
                events: vec![ev],
            }
        }
        (RefundState::Succeeded, Reported::Failed) | (RefundState::Failed, Reported::Succeeded) => {
            RefundDecision::Reject(format!(
                "provider reports the refund {} ({}) but it is {}",
                format!("{:?}", status.state).to_lowercase(),
                status.provider_state,
                refund.state
            ))
        }
        // Same state again, or pending after settling: nothing new but
        // perhaps the provider's refund id.
        _ if id_learned => RefundDecision::Apply {
            refund: next,
            order: None,
            events: Vec::new(),
        },
        _ => RefundDecision::Unchanged,
    }
}

/// Whether `amount` may be refunded now, counting only succeeded refunds
/// (`refunded_minor`). Use [`can_refund_with`] when refunds are in flight.
pub fn can_refund(order: &Order, amount: i64) -> Result<(), String> {
    can_refund_with(order, &[], amount)
}

/// Like [`can_refund`], also counting the order's pending refunds, so two
/// refunds in flight can never together exceed what was paid.
pub fn can_refund_with(order: &Order, refunds: &[Refund], amount: i64) -> Result<(), String> {
    if amount <= 0 {
        return Err(format!("refund amount must be positive, got {amount}"));
    }
    if !matches!(
        order.state,
        OrderState::Paid | OrderState::PartiallyRefunded
    ) {
        return Err(format!(
            "order {} is {}, only paid orders can be refunded",
            order.merchant_order_no, order.state
        ));
    }
    let pending: i64 = refunds
        .iter()
        .filter(|r| {
            r.state == RefundState::Pending && r.merchant_order_no == order.merchant_order_no
        })
        .map(|r| r.amount_minor)
        .sum();
    let committed = order.refunded_minor.saturating_add(pending);
    let left = order.amount_minor - committed;
    if amount > left {
        return Err(format!(
            "refund of {amount} exceeds the {left} left to refund of {} paid ({} refunded, {pending} pending)",
            order.amount_minor, order.refunded_minor
        ));
    }
    Ok(())
}

/// The provider accepted the unified order: created becomes pending, with
/// the provider's ids and what the payer needs.
pub fn order_created(order: &Order, created: &OrderRef, pay_action: Option<Value>) -> Decision {
    // A poll may have moved it to pending before the answer was stored;
    // the payer still needs the pay action.
    let awaited = order.state == OrderState::Created
        || (order.state == OrderState::Pending && order.pay_action.is_none());
    if !awaited {
        return Decision::Unchanged;
    }
    let mut next = order.clone();
    if let Err(e) = learn_ids(&mut next, created) {
        return Decision::Reject(e);
    }
    next.state = OrderState::Pending;
    next.pay_action = pay_action;
    Decision::Apply {
        order: next,
        events: Vec::new(),
    }
}

/// The provider refused the unified order: created becomes failed.
pub fn creation_failed(order: &Order) -> Decision {
    if order.state != OrderState::Created {
        return Decision::Unchanged;
    }
    let mut next = order.clone();
    next.state = OrderState::Failed;
    next.next_poll_at = None;
    let ev = payment_event(PAYMENT_FAILED, &next);
    Decision::Apply {
        order: next,
        events: vec![ev],
    }
}

/// An unpaid order past its expiry becomes closed (the reconciler calls
/// this after a last `query` found it still unpaid).
pub fn close_expired(order: &Order, now: i64) -> Decision {
    let expired = order.expires_at.is_some_and(|at| at <= now);
    if !expired || !matches!(order.state, OrderState::Created | OrderState::Pending) {
        return Decision::Unchanged;
    }
    let mut next = order.clone();
    next.state = OrderState::Closed;
    next.next_poll_at = None;
    let ev = payment_event(PAYMENT_CLOSED, &next);
    Decision::Apply {
        order: next,
        events: vec![ev],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::RefundState as Reported;
    use serde_json::json;

    fn order(state: OrderState) -> Order {
        Order {
            merchant_id: "m1".into(),
            merchant_order_no: "o1".into(),
            adapter: "wechat-v2".into(),
            adapter_digest: "d".into(),
            method: "wechat_mini_program".into(),
            description: "tea".into(),
            amount_minor: 1000,
            currency: "CNY".into(),
            state,
            provider_trade_no: None,
            channel_transaction_id: None,
            payer_app_id: Some("wxapp".into()),
            payer_openid: Some("openid".into()),
            client_ip: None,
            pay_action: None,
            refunded_minor: 0,
            expires_at: Some(5_000),
            paid_at: None,
            attach: None,
            metadata: Value::Null,
            next_poll_at: Some(1),
            poll_attempts: 0,
            created_at: 1,
            updated_at: 1,
            version: 1,
        }
    }

    fn status(state: TradeState, amount: Option<(u64, &str)>) -> TradeStatus {
        TradeStatus {
            order: OrderRef {
                merchant_order_no: "o1".into(),
                provider_trade_no: None,
                channel_transaction_id: Some("wx-tx-1".into()),
            },
            state,
            provider_state: format!("{state:?}"),
            amount: amount.map(|(minor, c)| Money {
                minor,
                currency: c.into(),
            }),
            paid_at: Some(1_700_000_000),
            payer_id: None,
        }
    }

    fn refund(state: RefundState, amount: i64) -> Refund {
        Refund {
            merchant_id: "m1".into(),
            merchant_order_no: "o1".into(),
            refund_no: "r1".into(),
            amount_minor: amount,
            currency: "CNY".into(),
            state,
            provider_refund_id: None,
            reason: None,
            next_poll_at: None,
            poll_attempts: 0,
            created_at: 1,
            updated_at: 1,
            version: 1,
        }
    }

    fn rstatus(state: Reported, amount: Option<u64>) -> contract::RefundStatus {
        contract::RefundStatus {
            order: OrderRef {
                merchant_order_no: "o1".into(),
                provider_trade_no: None,
                channel_transaction_id: None,
            },
            refund_no: "r1".into(),
            provider_refund_id: Some("wx-r-1".into()),
            state,
            provider_state: format!("{state:?}"),
            amount: amount.map(|minor| Money {
                minor,
                currency: "CNY".into(),
            }),
        }
    }

    const TRADE_STATES: [TradeState; 5] = [
        TradeState::Pending,
        TradeState::Paid,
        TradeState::Refunded,
        TradeState::Closed,
        TradeState::Failed,
    ];

    #[test]
    fn transition_table_is_exactly_the_design() {
        use OrderState::*;
        let legal = [
            (Created, Pending),
            (Created, Paid),
            (Created, Closed),
            (Created, Failed),
            (Pending, Paid),
            (Pending, Closed),
            (Pending, Failed),
            (Closed, Paid),
            (Failed, Paid),
            (Paid, PartiallyRefunded),
            (Paid, Refunded),
            (PartiallyRefunded, PartiallyRefunded),
            (PartiallyRefunded, Refunded),
        ];
        for from in OrderState::ALL {
            for to in OrderState::ALL {
                assert_eq!(
                    can_transition(from, to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
            if from.is_terminal() {
                assert!(OrderState::ALL.iter().all(|&to| !can_transition(from, to)));
            }
        }
    }

    /// Every (stored state, reported state) pair: the decision is one the
    /// table allows, and terminal states never move.
    #[test]
    fn every_trade_status_on_every_state() {
        use OrderState::*;
        for from in OrderState::ALL {
            for reported in TRADE_STATES {
                let d = apply_trade_status(&order(from), &status(reported, Some((1000, "CNY"))));
                let expected_to = match (from, reported) {
                    (Created, TradeState::Pending) => Some(Pending),
                    (
                        Created | Pending | Closed | Failed,
                        TradeState::Paid | TradeState::Refunded,
                    ) => Some(Paid),
                    (Created | Pending, TradeState::Closed) => Some(Closed),
                    (Created | Pending, TradeState::Failed) => Some(Failed),
                    _ => None,
                };
                let contradiction = matches!(
                    (from, reported),
                    (
                        Paid | PartiallyRefunded | Refunded,
                        TradeState::Closed | TradeState::Failed
                    )
                );
                match (&d, expected_to) {
                    (Decision::Apply { order: o, .. }, Some(to)) => {
                        assert_eq!(o.state, to, "{from} + {reported:?}");
                        assert!(can_transition(from, to));
                    }
                    (Decision::Reject(_), None) => {
                        assert!(contradiction, "{from} + {reported:?}: {d:?}")
                    }
                    // A non-moving Apply only learns ids (the status carries
                    // a channel transaction id the order lacks).
                    (Decision::Apply { order: o, events }, None) => {
                        assert_eq!(o.state, from, "{from} + {reported:?}");
                        assert!(events.is_empty());
                        assert!(!contradiction);
                    }
                    (Decision::Unchanged, None) => assert!(!contradiction, "{from} + {reported:?}"),
                    _ => panic!("{from} + {reported:?}: unexpected {d:?}"),
                }
            }
        }
    }

    #[test]
    fn paid_copies_ids_and_time_and_emits_one_event() {
        let d = apply_trade_status(
            &order(OrderState::Pending),
            &status(TradeState::Paid, Some((1000, "CNY"))),
        );
        let Decision::Apply { order: o, events } = d else {
            panic!("{d:?}")
        };
        assert_eq!(o.state, OrderState::Paid);
        assert_eq!(o.channel_transaction_id.as_deref(), Some("wx-tx-1"));
        assert_eq!(o.paid_at, Some(1_700_000_000_000));
        assert_eq!(o.next_poll_at, None);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, PAYMENT_PAID);
        assert_eq!(events[0].payload["payment"]["state"], "paid");
        assert_eq!(events[0].payload["payment"]["amount"], 1000);
    }

    #[test]
    fn duplicate_paid_is_unchanged() {
        let first = apply_trade_status(
            &order(OrderState::Pending),
            &status(TradeState::Paid, Some((1000, "CNY"))),
        );
        let Decision::Apply { order: paid, .. } = first else {
            panic!()
        };
        let again = apply_trade_status(&paid, &status(TradeState::Paid, Some((1000, "CNY"))));
        assert_eq!(again, Decision::Unchanged);
        // A late "pending" after paid changes nothing either.
        assert_eq!(
            apply_trade_status(&paid, &status(TradeState::Pending, None)),
            Decision::Unchanged
        );
    }

    #[test]
    fn amount_or_currency_mismatch_is_rejected() {
        let o = order(OrderState::Pending);
        assert!(
            matches!(apply_trade_status(&o, &status(TradeState::Paid, Some((1, "CNY")))), Decision::Reject(m) if m.contains("amount"))
        );
        assert!(
            matches!(apply_trade_status(&o, &status(TradeState::Paid, Some((1000, "USD")))), Decision::Reject(m) if m.contains("currency"))
        );
        // Even on a status that would change nothing.
        assert!(matches!(
            apply_trade_status(&o, &status(TradeState::Pending, Some((999, "CNY")))),
            Decision::Reject(_)
        ));
    }

    #[test]
    fn other_order_or_conflicting_ids_are_rejected() {
        let mut s = status(TradeState::Paid, None);
        s.order.merchant_order_no = "o2".into();
        assert!(matches!(
            apply_trade_status(&order(OrderState::Pending), &s),
            Decision::Reject(_)
        ));
        let mut o = order(OrderState::Pending);
        o.channel_transaction_id = Some("wx-tx-other".into());
        assert!(
            matches!(apply_trade_status(&o, &status(TradeState::Paid, None)), Decision::Reject(m) if m.contains("channel"))
        );
    }

    #[test]
    fn paid_after_close_is_applied_with_its_marker_and_closed_after_paid_rejected() {
        for given_up in [OrderState::Closed, OrderState::Failed] {
            let d = apply_trade_status(
                &order(given_up),
                &status(TradeState::Paid, Some((1000, "CNY"))),
            );
            let Decision::Apply { order: o, events } = d else {
                panic!("{given_up}: {d:?}")
            };
            assert_eq!(o.state, OrderState::Paid);
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].event_type, PAYMENT_PAID);
            assert_eq!(events[0].payload["paid_after_close"], true);
            assert_eq!(events[0].payload["previous_state"], given_up.as_str());
            // The amount is checked there too.
            assert!(matches!(
                apply_trade_status(&order(given_up), &status(TradeState::Paid, Some((999, "CNY")))),
                Decision::Reject(m) if m.contains("amount")
            ));
        }
        // An ordinary payment says it was not after a close.
        let Decision::Apply { events, .. } = apply_trade_status(
            &order(OrderState::Pending),
            &status(TradeState::Paid, Some((1000, "CNY"))),
        ) else {
            panic!()
        };
        assert_eq!(events[0].payload["paid_after_close"], false);
        assert!(matches!(
            apply_trade_status(&order(OrderState::Paid), &status(TradeState::Closed, None)),
            Decision::Reject(_)
        ));
        // Closed after failed is settled already.
        assert_eq!(
            apply_trade_status(
                &order(OrderState::Failed),
                &status(TradeState::Closed, None)
            ),
            Decision::Unchanged
        );
    }

    #[test]
    fn paid_without_an_amount_is_never_applied_unchecked() {
        for from in [
            OrderState::Created,
            OrderState::Pending,
            OrderState::Closed,
            OrderState::Failed,
        ] {
            assert_eq!(
                apply_trade_status(&order(from), &status(TradeState::Paid, None)),
                Decision::NeedsAmount,
                "{from}"
            );
        }
        // Already paid: nothing to check, nothing changes state.
        assert!(!matches!(
            apply_trade_status(&order(OrderState::Paid), &status(TradeState::Paid, None)),
            Decision::NeedsAmount | Decision::Reject(_)
        ));
    }

    #[test]
    fn host_side_transitions() {
        let created = order(OrderState::Created);
        let r = OrderRef {
            merchant_order_no: "o1".into(),
            provider_trade_no: Some("p1".into()),
            channel_transaction_id: None,
        };
        let Decision::Apply { order: o, events } =
            order_created(&created, &r, Some(json!({"url": "x"})))
        else {
            panic!()
        };
        assert_eq!(
            (o.state, o.provider_trade_no.as_deref()),
            (OrderState::Pending, Some("p1"))
        );
        assert!(events.is_empty());
        assert_eq!(order_created(&o, &r, None), Decision::Unchanged);

        let Decision::Apply { order: f, events } = creation_failed(&created) else {
            panic!()
        };
        assert_eq!(f.state, OrderState::Failed);
        assert_eq!(events[0].event_type, PAYMENT_FAILED);

        assert_eq!(close_expired(&o, 4_999), Decision::Unchanged);
        let Decision::Apply { order: c, events } = close_expired(&o, 5_000) else {
            panic!()
        };
        assert_eq!(c.state, OrderState::Closed);
        assert_eq!(events[0].event_type, PAYMENT_CLOSED);
        assert_eq!(
            close_expired(&order(OrderState::Paid), 9_999),
            Decision::Unchanged
        );
    }

    #[test]
    fn partial_then_full_refund() {
        let paid = order(OrderState::Paid);
        assert!(can_refund(&paid, 300).is_ok());
        let r1 = refund(RefundState::Pending, 300);
        let RefundDecision::Apply {
            refund: r1s,
            order: Some(o1),
            events,
        } = apply_refund_status(&paid, &r1, &rstatus(Reported::Succeeded, Some(300)))
        else {
            panic!()
        };
        assert_eq!(r1s.state, RefundState::Succeeded);
        assert_eq!(r1s.provider_refund_id.as_deref(), Some("wx-r-1"));
        assert_eq!(
            (o1.state, o1.refunded_minor),
            (OrderState::PartiallyRefunded, 300)
        );
        assert_eq!(events[0].event_type, REFUND_SUCCEEDED);
        assert_eq!(events[0].payload["payment"]["refunded_amount"], 300);

        // Duplicate success notification: nothing.
        assert_eq!(
            apply_refund_status(&o1, &r1s, &rstatus(Reported::Succeeded, Some(300))),
            RefundDecision::Unchanged
        );

        assert!(can_refund(&o1, 701).is_err());
        assert!(can_refund(&o1, 700).is_ok());
        let mut r2 = refund(RefundState::Pending, 700);
        r2.refund_no = "r2".into();
        let mut s2 = rstatus(Reported::Succeeded, Some(700));
        s2.refund_no = "r2".into();
        s2.provider_refund_id = Some("wx-r-2".into());
        let RefundDecision::Apply {
            order: Some(o2), ..
        } = apply_refund_status(&o1, &r2, &s2)
        else {
            panic!()
        };
        assert_eq!((o2.state, o2.refunded_minor), (OrderState::Refunded, 1000));
        assert!(can_refund(&o2, 1).is_err());

        // A third refund "succeeding" past the total is rejected.
        let mut r3 = refund(RefundState::Pending, 1);
        r3.refund_no = "r3".into();
        let mut s3 = rstatus(Reported::Succeeded, None);
        s3.refund_no = "r3".into();
        assert!(matches!(
            apply_refund_status(&o2, &r3, &s3),
            RefundDecision::Reject(_)
        ));
    }

    #[test]
    fn refund_failure_contradiction_and_mismatch() {
        let paid = order(OrderState::Paid);
        let r = refund(RefundState::Pending, 300);
        let RefundDecision::Apply {
            refund: failed,
            order: None,
            events,
        } = apply_refund_status(&paid, &r, &rstatus(Reported::Failed, None))
        else {
            panic!()
        };
        assert_eq!(failed.state, RefundState::Failed);
        assert_eq!(events[0].event_type, REFUND_FAILED);
        assert!(matches!(
            apply_refund_status(&paid, &failed, &rstatus(Reported::Succeeded, None)),
            RefundDecision::Reject(_)
        ));
        assert_eq!(
            apply_refund_status(&paid, &failed, &rstatus(Reported::Failed, None)),
            RefundDecision::Unchanged
        );
        assert!(matches!(
            apply_refund_status(&paid, &r, &rstatus(Reported::Succeeded, Some(301))),
            RefundDecision::Reject(m) if m.contains("amount")
        ));
        // Still pending: only the provider refund id is learned.
        let RefundDecision::Apply {
            refund: p,
            order: None,
            events,
        } = apply_refund_status(&paid, &r, &rstatus(Reported::Pending, None))
        else {
            panic!()
        };
        assert_eq!(
            (p.state, p.provider_refund_id.as_deref()),
            (RefundState::Pending, Some("wx-r-1"))
        );
        assert!(events.is_empty());
        assert_eq!(
            apply_refund_status(&paid, &p, &rstatus(Reported::Pending, None)),
            RefundDecision::Unchanged
        );
    }

    #[test]
    fn can_refund_rules() {
        for s in OrderState::ALL {
            let ok = can_refund(&order(s), 1).is_ok();
            assert_eq!(
                ok,
                matches!(s, OrderState::Paid | OrderState::PartiallyRefunded),
                "{s}"
            );
        }
        let paid = order(OrderState::Paid);
        assert!(can_refund(&paid, 0).is_err());
        assert!(can_refund(&paid, 1001).is_err());
        assert!(can_refund(&paid, 1000).is_ok());
        let in_flight = [
            refund(RefundState::Pending, 600),
            refund(RefundState::Failed, 900),
        ];
        assert!(can_refund_with(&paid, &in_flight, 400).is_ok());
        assert!(can_refund_with(&paid, &in_flight, 401).is_err());
    }
}
