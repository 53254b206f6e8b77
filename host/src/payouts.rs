//! The payout state machine, as pure functions over store and contract
//! types (issue 15; the shape of [`crate::orders`]).
//!
//! ```text
//! created ──> accepted ──> pending_user_confirmation ──> processing ──> succeeded
//!    │            │                 │                        │             ^
//!    └────────────┴─────────────────┴────────────────────────┴──> failed ──┤
//!                                                                 cancelled┘
//! ```
//!
//! Every state before a final one accepts any report (providers repeat and
//! reorder them, and `created` is only payhost's row before the provider's
//! answer). `succeeded`, `failed` and `cancelled` are final, except that
//! the provider's verified word that the payee was paid wins over
//! payhost's record of a failure: the money left the merchant, so the
//! payout becomes `succeeded` and its `payout.succeeded` names the state
//! it came from. A failure reported after success, another amount or
//! another payee changes nothing and is recorded once, for the merchant,
//! as `payout.provider_mismatch`.

use crate::contract::{PayoutState as Reported, PayoutStatus};
use crate::resources::PayoutEventData;
use crate::store::{NewEvent, Payout, PayoutState};
use serde_json::Value;

pub const PAYOUT_SUCCEEDED: &str = "payout.succeeded";
/// Failed or cancelled: no money moved; `data.payout.state` says which.
pub const PAYOUT_FAILED: &str = "payout.failed";
pub const PAYOUT_MISMATCH: &str = "payout.provider_mismatch";

/// What to do with a provider's report about a payout.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Store this changed copy with these events.
    Apply {
        payout: Box<Payout>,
        events: Vec<NewEvent>,
    },
    /// Nothing new.
    Unchanged,
    /// The report contradicts the payout; record it, change nothing.
    Reject(String),
}

pub fn event(event_type: &str, payout: &Payout, previous: Option<PayoutState>) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        payload: PayoutEventData {
            previous_state: previous,
            ..PayoutEventData::of(payout)
        }
        .to_json(),
    }
}

pub fn mismatch_event(payout: &Payout, reason: &str, reported: Value) -> NewEvent {
    NewEvent {
        event_type: PAYOUT_MISMATCH.into(),
        payload: PayoutEventData {
            reason: Some(reason.into()),
            reported: Some(crate::resources::reported(reported)),
            ..PayoutEventData::of(payout)
        }
        .to_json(),
    }
}

/// The state a report names, with what it carries.
fn reported_state(state: &Reported) -> (PayoutState, Option<Value>, Option<String>) {
    match state {
        Reported::Accepted => (PayoutState::Accepted, None, None),
        Reported::PendingUserConfirmation(c) => (
            PayoutState::PendingUserConfirmation,
            c.as_ref().map(
                |c| serde_json::json!({"mchId": c.mch_id, "appId": c.app_id, "package": c.package}),
            ),
            None,
        ),
        Reported::Processing => (PayoutState::Processing, None, None),
        Reported::Succeeded => (PayoutState::Succeeded, None, None),
        Reported::Failed(reason) => (PayoutState::Failed, None, Some(reason.clone())),
        Reported::Cancelled => (PayoutState::Cancelled, None, None),
    }
}

/// Order of the states before a final one: a report older than what is
/// stored (accepted after pending, say) changes nothing.
fn rank(s: PayoutState) -> u8 {
    match s {
        PayoutState::Created => 0,
        PayoutState::Accepted => 1,
        PayoutState::PendingUserConfirmation => 2,
        PayoutState::Processing => 3,
        _ => 4,
    }
}

/// Applies what a provider reports about a payout (the `payout` answer, a
/// `payout-query`, a notification) to the stored payout.
pub fn apply_payout_status(payout: &Payout, status: &PayoutStatus) -> Decision {
    if status.payout.merchant_payout_no != payout.payout_no {
        return Decision::Reject(format!(
            "status is for payout {}, not {}",
            status.payout.merchant_payout_no, payout.payout_no
        ));
    }
    if let Some(m) = &status.amount {
        if !m.currency.eq_ignore_ascii_case(&payout.currency) {
            return Decision::Reject(format!(
                "payout currency mismatch: provider reports {}, expected {}",
                m.currency, payout.currency
            ));
        }
        if i64::try_from(m.minor).ok() != Some(payout.amount_minor) {
            return Decision::Reject(format!(
                "payout amount mismatch: provider reports {} minor units, expected {}",
                m.minor, payout.amount_minor
            ));
        }
    }
    if let Some(payee) = &status.payee_id
        && payee != &payout.payee_openid
    {
        return Decision::Reject(format!(
            "payee mismatch: provider reports {payee}, expected {}",
            payout.payee_openid
        ));
    }
    let mut next = payout.clone();
    match (&next.provider_payout_id, &status.payout.provider_payout_id) {
        (Some(old), Some(new)) if old != new => {
            return Decision::Reject(format!(
                "provider payout id mismatch: stored {old}, provider reports {new}"
            ));
        }
        (None, Some(new)) => next.provider_payout_id = Some(new.clone()),
        _ => {}
    }
    let id_learned = next.provider_payout_id != payout.provider_payout_id;
    let (to, confirmation, reason) = reported_state(&status.state);
    let from = payout.state;
    let unchanged_but_ids = |next: Payout| {
        if id_learned {
            Decision::Apply {
                payout: Box::new(next),
                events: Vec::new(),
            }
        } else {
            Decision::Unchanged
        }
    };
    if from.is_final() {
        return match (from, to) {
            (a, b) if a == b => unchanged_but_ids(next),
            (PayoutState::Failed | PayoutState::Cancelled, PayoutState::Succeeded) => {
                next.state = to;
                next.provider_state = Some(status.provider_state.clone());
                next.next_poll_at = None;
                let ev = event(PAYOUT_SUCCEEDED, &next, Some(from));
                Decision::Apply {
                    payout: Box::new(next),
                    events: vec![ev],
                }
            }
            (PayoutState::Succeeded, PayoutState::Failed | PayoutState::Cancelled) => {
                Decision::Reject(format!(
                    "provider reports the payout {to} ({}) but it succeeded",
                    status.provider_state
                ))
            }
            // Not final after final (a stale answer), or failed and
            // cancelled after each other: both say no money moved.
            _ => unchanged_but_ids(next),
        };
    }
    if !to.is_final() && rank(to) < rank(from) {
        return unchanged_but_ids(next);
    }
    let confirmation_learned = confirmation.is_some() && confirmation != payout.confirmation;
    if to == from && !confirmation_learned {
        return unchanged_but_ids(next);
    }
    next.state = to;
    next.provider_state = Some(status.provider_state.clone());
    if confirmation_learned {
        next.confirmation = confirmation;
    }
    let mut events = Vec::new();
    if to.is_final() {
        next.next_poll_at = None;
        next.failure_reason =
            reason.or_else(|| (to == PayoutState::Cancelled).then(|| "cancelled".into()));
        let kind = if to == PayoutState::Succeeded {
            PAYOUT_SUCCEEDED
        } else {
            PAYOUT_FAILED
        };
        events.push(event(kind, &next, None));
    }
    Decision::Apply {
        payout: Box::new(next),
        events,
    }
}

/// The payout failed at the provider's final refusal of the request (no
/// money moved), with the refusal as its reason.
pub fn refused(payout: &Payout, reason: &str) -> Decision {
    if payout.state != PayoutState::Created {
        return Decision::Unchanged;
    }
    let mut next = payout.clone();
    next.state = PayoutState::Failed;
    next.failure_reason = Some(reason.into());
    next.next_poll_at = None;
    let ev = event(PAYOUT_FAILED, &next, None);
    Decision::Apply {
        payout: Box::new(next),
        events: vec![ev],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Money, PayeeConfirmation, PayoutRef};

    fn payout(state: PayoutState) -> Payout {
        Payout {
            merchant_id: "m1".into(),
            payout_no: "P1".into(),
            adapter: "wechat-v3".into(),
            adapter_digest: "d".into(),
            amount_minor: 2000,
            currency: "CNY".into(),
            payee_app_id: "wxapp".into(),
            payee_openid: "o-1".into(),
            real_name_checked: false,
            remark: "prize".into(),
            scene: None,
            state,
            provider_payout_id: None,
            confirmation: None,
            failure_reason: None,
            provider_state: None,
            metadata: Value::Null,
            next_poll_at: Some(10),
            poll_attempts: 0,
            created_at: 1,
            updated_at: 1,
            version: 1,
        }
    }

    fn status(state: Reported) -> PayoutStatus {
        PayoutStatus {
            payout: PayoutRef {
                merchant_payout_no: "P1".into(),
                provider_payout_id: Some("T1".into()),
            },
            state,
            provider_state: "WORD".into(),
            amount: Some(Money {
                minor: 2000,
                currency: "CNY".into(),
            }),
            payee_id: Some("o-1".into()),
            updated_at: None,
        }
    }

    fn applied(d: Decision) -> (Payout, Vec<String>) {
        match d {
            Decision::Apply { payout, events } => {
                (*payout, events.into_iter().map(|e| e.event_type).collect())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn waiting_then_success_keeps_the_confirmation_and_tells_once() {
        let confirm = PayeeConfirmation {
            mch_id: "190".into(),
            app_id: "wxapp".into(),
            package: "pkg".into(),
        };
        let (waiting, events) = applied(apply_payout_status(
            &payout(PayoutState::Created),
            &status(Reported::PendingUserConfirmation(Some(confirm))),
        ));
        assert!(events.is_empty());
        assert_eq!(waiting.state, PayoutState::PendingUserConfirmation);
        assert_eq!(waiting.provider_payout_id.as_deref(), Some("T1"));
        assert_eq!(waiting.confirmation.as_ref().unwrap()["package"], "pkg");
        // A query answers the same state without the package: kept.
        assert_eq!(
            apply_payout_status(&waiting, &status(Reported::PendingUserConfirmation(None))),
            Decision::Unchanged
        );
        // An older state after a newer one changes nothing.
        assert_eq!(
            apply_payout_status(&waiting, &status(Reported::Accepted)),
            Decision::Unchanged
        );
        let (done, events) = applied(apply_payout_status(&waiting, &status(Reported::Succeeded)));
        assert_eq!(events, [PAYOUT_SUCCEEDED]);
        assert_eq!(done.state, PayoutState::Succeeded);
        assert_eq!(done.next_poll_at, None);
        assert_eq!(done.confirmation, waiting.confirmation);
        assert_eq!(
            apply_payout_status(&done, &status(Reported::Succeeded)),
            Decision::Unchanged
        );
    }

    #[test]
    fn failures_carry_their_reason_and_cancelled_is_a_failure_event() {
        let (failed, events) = applied(apply_payout_status(
            &payout(PayoutState::Accepted),
            &status(Reported::Failed("NAME_NOT_CORRECT".into())),
        ));
        assert_eq!(events, [PAYOUT_FAILED]);
        assert_eq!(failed.failure_reason.as_deref(), Some("NAME_NOT_CORRECT"));
        let (cancelled, events) = applied(apply_payout_status(
            &payout(PayoutState::PendingUserConfirmation),
            &status(Reported::Cancelled),
        ));
        assert_eq!(events, [PAYOUT_FAILED]);
        assert_eq!(cancelled.state, PayoutState::Cancelled);
        // Cancelled after failed: both say no money moved.
        assert_eq!(
            apply_payout_status(&failed, &status(Reported::Cancelled)),
            Decision::Unchanged
        );
    }

    #[test]
    fn the_providers_success_wins_over_a_recorded_failure_but_not_the_reverse() {
        let mut failed = payout(PayoutState::Failed);
        failed.provider_payout_id = Some("T1".into());
        let (paid, events) = applied(apply_payout_status(&failed, &status(Reported::Succeeded)));
        assert_eq!(paid.state, PayoutState::Succeeded);
        assert_eq!(events, [PAYOUT_SUCCEEDED]);
        let Decision::Apply { events, .. } =
            apply_payout_status(&failed, &status(Reported::Succeeded))
        else {
            unreachable!()
        };
        assert_eq!(events[0].payload["previous_state"], "failed");
        assert!(matches!(
            apply_payout_status(&paid, &status(Reported::Failed("x".into()))),
            Decision::Reject(r) if r.contains("succeeded")
        ));
    }

    #[test]
    fn another_amount_payee_number_or_id_is_a_contradiction() {
        let p = payout(PayoutState::Accepted);
        let mut s = status(Reported::Succeeded);
        s.amount = Some(Money {
            minor: 2001,
            currency: "CNY".into(),
        });
        assert!(matches!(apply_payout_status(&p, &s), Decision::Reject(r) if r.contains("amount")));
        let mut s = status(Reported::Succeeded);
        s.amount.as_mut().unwrap().currency = "USD".into();
        assert!(
            matches!(apply_payout_status(&p, &s), Decision::Reject(r) if r.contains("currency"))
        );
        let mut s = status(Reported::Succeeded);
        s.payee_id = Some("o-2".into());
        assert!(matches!(apply_payout_status(&p, &s), Decision::Reject(r) if r.contains("payee")));
        let mut s = status(Reported::Succeeded);
        s.payout.merchant_payout_no = "P2".into();
        assert!(matches!(apply_payout_status(&p, &s), Decision::Reject(_)));
        let mut known = p.clone();
        known.provider_payout_id = Some("T0".into());
        assert!(matches!(
            apply_payout_status(&known, &status(Reported::Succeeded)),
            Decision::Reject(r) if r.contains("payout id")
        ));
    }

    #[test]
    fn a_refused_request_fails_only_a_payout_the_provider_never_answered() {
        let (failed, events) = applied(refused(&payout(PayoutState::Created), "NO_AUTH"));
        assert_eq!(failed.state, PayoutState::Failed);
        assert_eq!(events, [PAYOUT_FAILED]);
        assert_eq!(
            refused(&payout(PayoutState::Accepted), "NO_AUTH"),
            Decision::Unchanged
        );
    }
}
