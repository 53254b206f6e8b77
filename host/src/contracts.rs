//! The contract and deduction state machines, as pure functions over store
//! and contract types (issue 15; the shape of [`crate::payouts`]).
//!
//! ```text
//! contract:  pending_signature ──> active <──> paused
//!                   │                 │          │
//!                   └─────────────────┴──────────┴──> terminated (final)
//!
//! deduction: created ──> pending ──> succeeded
//!               │           │           ^
//!               └───────────┴──> failed ┘
//! ```
//!
//! A contract moves on the provider's word (signed, terminated) and on
//! payhost's own policy (paused after consecutive failed deductions,
//! resumed by the merchant). Nothing brings a terminated contract back: a
//! provider that reports it active again contradicts payhost's record, and
//! that is recorded for the merchant, not applied.
//!
//! A deduction follows the money-safety rules of payments: the provider's
//! verified word that it charged wins over payhost's record of a failure
//! (the payer paid; `deduction.succeeded` names the state it came from),
//! and a failure after success, another amount or another contract is a
//! contradiction, recorded once as `deduction.provider_mismatch`.

use crate::contract::{
    ContractState as ReportedContract, ContractStatus, DeductionState as ReportedDeduction,
    DeductionStatus,
};
use crate::resources::{ContractEventData, DeductionEventData};
use crate::store::{Contract, ContractState, Deduction, DeductionState, NewEvent};
use serde_json::Value;

pub const CONTRACT_SIGNED: &str = "contract.signed";
pub const CONTRACT_TERMINATED: &str = "contract.terminated";
pub const CONTRACT_PAUSED: &str = "contract.paused";
pub const CONTRACT_MISMATCH: &str = "contract.provider_mismatch";
pub const DEDUCTION_SUCCEEDED: &str = "deduction.succeeded";
pub const DEDUCTION_FAILED: &str = "deduction.failed";
pub const DEDUCTION_MISMATCH: &str = "deduction.provider_mismatch";

/// What to do with a provider's report (or a merchant's decision).
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<T> {
    /// Store this changed copy with these events.
    Apply { next: Box<T>, events: Vec<NewEvent> },
    /// Nothing new.
    Unchanged,
    /// The report contradicts what payhost has; record it, change nothing.
    Reject(String),
}

pub fn contract_event(event_type: &str, c: &Contract) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        payload: ContractEventData::of(c).to_json(),
    }
}

pub fn contract_mismatch_event(c: &Contract, reason: &str, reported: Value) -> NewEvent {
    NewEvent {
        event_type: CONTRACT_MISMATCH.into(),
        payload: ContractEventData {
            reason: Some(reason.into()),
            reported: Some(reported),
            ..ContractEventData::of(c)
        }
        .to_json(),
    }
}

pub fn deduction_event(
    event_type: &str,
    d: &Deduction,
    previous: Option<DeductionState>,
) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        payload: DeductionEventData {
            previous_state: previous,
            ..DeductionEventData::of(d)
        }
        .to_json(),
    }
}

pub fn deduction_mismatch_event(d: &Deduction, reason: &str, reported: Value) -> NewEvent {
    NewEvent {
        event_type: DEDUCTION_MISMATCH.into(),
        payload: DeductionEventData {
            reason: Some(reason.into()),
            reported: Some(crate::resources::reported(reported)),
            ..DeductionEventData::of(d)
        }
        .to_json(),
    }
}

fn apply<T>(next: T, events: Vec<NewEvent>) -> Decision<T> {
    Decision::Apply {
        next: Box::new(next),
        events,
    }
}

/// Applies what a provider reports about a contract (the `contract-query`
/// or `contract-terminate` answer, a notification).
pub fn apply_contract_status(c: &Contract, status: &ContractStatus) -> Decision<Contract> {
    if status.contract.merchant_contract_no != c.contract_no {
        return Decision::Reject(format!(
            "status is for contract {}, not {}",
            status.contract.merchant_contract_no, c.contract_no
        ));
    }
    if let Some(plan) = &status.plan_id
        && plan != &c.plan_id
    {
        return Decision::Reject(format!(
            "plan mismatch: provider reports {plan}, expected {}",
            c.plan_id
        ));
    }
    if let (Some(reported), Some(expected)) = (&status.payer_id, &c.payer_openid)
        && reported != expected
    {
        return Decision::Reject(format!(
            "payer mismatch: provider reports {reported}, expected {expected}"
        ));
    }
    let mut next = c.clone();
    match (
        &c.provider_contract_id,
        &status.contract.provider_contract_id,
    ) {
        (Some(old), Some(new)) if old != new => {
            return Decision::Reject(format!(
                "provider contract id mismatch: stored {old}, provider reports {new}"
            ));
        }
        (None, Some(new)) => next.provider_contract_id = Some(new.clone()),
        _ => {}
    }
    if next.payer_openid.is_none() {
        next.payer_openid.clone_from(&status.payer_id);
    }
    let learned = next != *c;
    let quiet = |next: Contract| {
        if learned {
            apply(next, Vec::new())
        } else {
            Decision::Unchanged
        }
    };
    match (&status.state, c.state) {
        (ReportedContract::PendingSignature, ContractState::PendingSignature) => quiet(next),
        (ReportedContract::PendingSignature, _) => {
            // A stale answer about a contract signed since: nothing to do.
            quiet(next)
        }
        (ReportedContract::Active, ContractState::PendingSignature) => {
            next.state = ContractState::Active;
            next.provider_state = Some(status.provider_state.clone());
            next.signed_at = status.changed_at.map(|s| s.saturating_mul(1000));
            next.next_poll_at = None;
            let ev = contract_event(CONTRACT_SIGNED, &next);
            apply(next, vec![ev])
        }
        // Paused is payhost's policy; the provider's `active` agrees.
        (ReportedContract::Active, ContractState::Active | ContractState::Paused) => quiet(next),
        (ReportedContract::Active, ContractState::Terminated) => Decision::Reject(format!(
            "provider reports the contract active ({}) but it was terminated",
            status.provider_state
        )),
        (ReportedContract::Terminated(_), ContractState::Terminated) => quiet(next),
        (ReportedContract::Terminated(reason), _) => {
            next.state = ContractState::Terminated;
            next.provider_state = Some(status.provider_state.clone());
            next.termination_reason = Some(reason.clone());
            next.next_poll_at = None;
            let ev = contract_event(CONTRACT_TERMINATED, &next);
            apply(next, vec![ev])
        }
    }
}

/// Pauses an active contract after `failures` consecutive failed
/// deductions (payhost's policy, seed 003).
pub fn pause(c: &Contract, failures: i64) -> Decision<Contract> {
    if c.state != ContractState::Active {
        return Decision::Unchanged;
    }
    let mut next = c.clone();
    next.state = ContractState::Paused;
    next.pause_reason = Some(format!("{failures} consecutive failed deductions"));
    let ev = contract_event(CONTRACT_PAUSED, &next);
    apply(next, vec![ev])
}

/// The merchant resumes a paused contract at `now`: the failures before
/// it no longer count.
pub fn resume(c: &Contract, now: i64) -> Decision<Contract> {
    if c.state != ContractState::Paused {
        return Decision::Unchanged;
    }
    let mut next = c.clone();
    next.state = ContractState::Active;
    next.pause_reason = None;
    next.failures_counted_from = now;
    apply(next, Vec::new())
}

fn reported_deduction(state: &ReportedDeduction) -> (DeductionState, Option<String>) {
    match state {
        ReportedDeduction::Pending => (DeductionState::Pending, None),
        ReportedDeduction::Succeeded => (DeductionState::Succeeded, None),
        ReportedDeduction::Failed(reason) => (DeductionState::Failed, Some(reason.clone())),
    }
}

/// Applies what a provider reports about a deduction (the `deduct` or
/// `deduction-query` answer, a notification).
pub fn apply_deduction_status(
    d: &Deduction,
    contract: &Contract,
    status: &DeductionStatus,
) -> Decision<Deduction> {
    if status.merchant_deduction_no != d.deduction_no {
        return Decision::Reject(format!(
            "status is for deduction {}, not {}",
            status.merchant_deduction_no, d.deduction_no
        ));
    }
    // A notification may name the contract by one number only (WeChat v2
    // names it by `contract_id`); each one it names must agree.
    let named = &status.contract;
    if !named.merchant_contract_no.is_empty() && named.merchant_contract_no != d.contract_no {
        return Decision::Reject(format!(
            "contract mismatch: provider reports {}, expected {}",
            named.merchant_contract_no, d.contract_no
        ));
    }
    if let (Some(reported), Some(expected)) =
        (&named.provider_contract_id, &contract.provider_contract_id)
        && reported != expected
    {
        return Decision::Reject(format!(
            "provider contract id mismatch: stored {expected}, provider reports {reported}"
        ));
    }
    if let Some(m) = &status.amount {
        if !m.currency.eq_ignore_ascii_case(&d.currency) {
            return Decision::Reject(format!(
                "deduction currency mismatch: provider reports {}, expected {}",
                m.currency, d.currency
            ));
        }
        if i64::try_from(m.minor).ok() != Some(d.amount_minor) {
            return Decision::Reject(format!(
                "deduction amount mismatch: provider reports {} minor units, expected {}",
                m.minor, d.amount_minor
            ));
        }
    }
    let mut next = d.clone();
    match (&d.provider_deduction_id, &status.provider_deduction_id) {
        (Some(old), Some(new)) if old != new => {
            return Decision::Reject(format!(
                "provider deduction id mismatch: stored {old}, provider reports {new}"
            ));
        }
        (None, Some(new)) => next.provider_deduction_id = Some(new.clone()),
        _ => {}
    }
    let (to, reason) = reported_deduction(&status.state);
    let from = d.state;
    let learned = next != *d;
    let quiet = |next: Deduction| {
        if learned {
            apply(next, Vec::new())
        } else {
            Decision::Unchanged
        }
    };
    if to == DeductionState::Succeeded && status.amount.is_none() {
        // Never charged unchecked: the host asks by query for the amount.
        return Decision::Reject(
            "the provider reports the deduction charged without its amount".into(),
        );
    }
    match (from, to) {
        (a, b) if a == b => quiet(next),
        (DeductionState::Succeeded, DeductionState::Failed) => Decision::Reject(format!(
            "provider reports the deduction failed ({}) but it succeeded",
            status.provider_state
        )),
        (DeductionState::Succeeded | DeductionState::Failed, DeductionState::Pending) => {
            quiet(next)
        }
        (_, DeductionState::Created) => quiet(next),
        (_, to) => {
            next.state = to;
            next.provider_state = Some(status.provider_state.clone());
            let mut events = Vec::new();
            if to.is_final() {
                next.next_poll_at = None;
                if to == DeductionState::Succeeded {
                    next.paid_at = status.paid_at.map(|s| s.saturating_mul(1000));
                    next.failure_reason = None;
                    let previous = (from == DeductionState::Failed).then_some(from);
                    events.push(deduction_event(DEDUCTION_SUCCEEDED, &next, previous));
                } else {
                    next.failure_reason = reason;
                    events.push(deduction_event(DEDUCTION_FAILED, &next, None));
                }
            }
            apply(next, events)
        }
    }
}

/// Fails a deduction the provider refused outright, or that never left
/// payhost.
pub fn refused(d: &Deduction, reason: &str) -> Decision<Deduction> {
    if d.state != DeductionState::Created {
        return Decision::Unchanged;
    }
    let mut next = d.clone();
    next.state = DeductionState::Failed;
    next.failure_reason = Some(reason.into());
    next.next_poll_at = None;
    let ev = deduction_event(DEDUCTION_FAILED, &next, None);
    apply(next, vec![ev])
}

#[cfg(test)]
mod tests;
