use super::*;
use crate::contract::{ContractRef, Money};

fn contract(state: ContractState) -> Contract {
    Contract {
        merchant_id: "m".into(),
        contract_no: "C1".into(),
        adapter: "wechat-v2".into(),
        adapter_digest: "d".into(),
        plan_id: "12535".into(),
        payer_app_id: "wx1".into(),
        payer_openid: None,
        display_name: "Membership".into(),
        state,
        provider_contract_id: None,
        signing: Value::Null,
        provider_state: None,
        termination_reason: None,
        pause_reason: None,
        failures_counted_from: 0,
        signed_at: None,
        metadata: Value::Null,
        next_poll_at: Some(1),
        poll_attempts: 0,
        created_at: 0,
        updated_at: 0,
        version: 1,
    }
}

fn status(state: ReportedContract) -> ContractStatus {
    ContractStatus {
        contract: ContractRef {
            merchant_contract_no: "C1".into(),
            provider_contract_id: Some("PC1".into()),
        },
        plan_id: Some("12535".into()),
        state,
        provider_state: "0".into(),
        payer_id: Some("o-payer".into()),
        changed_at: Some(1_700_000_000),
    }
}

fn kinds(events: &[NewEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

#[test]
fn a_signature_activates_the_contract_once_and_learns_its_ids() {
    let c = contract(ContractState::PendingSignature);
    let Decision::Apply { next, events } =
        apply_contract_status(&c, &status(ReportedContract::Active))
    else {
        panic!("not applied");
    };
    assert_eq!(next.state, ContractState::Active);
    assert_eq!(next.provider_contract_id.as_deref(), Some("PC1"));
    assert_eq!(next.payer_openid.as_deref(), Some("o-payer"));
    assert_eq!(next.signed_at, Some(1_700_000_000_000));
    assert_eq!(next.next_poll_at, None);
    assert_eq!(kinds(&events), [CONTRACT_SIGNED]);
    // The same statement again: nothing new.
    assert_eq!(
        apply_contract_status(&next, &status(ReportedContract::Active)),
        Decision::Unchanged
    );
    // A stale "not signed yet" after the signature changes nothing.
    assert_eq!(
        apply_contract_status(&next, &status(ReportedContract::PendingSignature)),
        Decision::Unchanged
    );
}

#[test]
fn a_terminated_contract_never_comes_back() {
    let mut c = contract(ContractState::Active);
    c.provider_contract_id = Some("PC1".into());
    let Decision::Apply { next, events } =
        apply_contract_status(&c, &status(ReportedContract::Terminated("payer".into())))
    else {
        panic!("not applied");
    };
    assert_eq!(next.state, ContractState::Terminated);
    assert_eq!(next.termination_reason.as_deref(), Some("payer"));
    assert_eq!(kinds(&events), [CONTRACT_TERMINATED]);
    assert!(matches!(
        apply_contract_status(&next, &status(ReportedContract::Active)),
        Decision::Reject(r) if r.contains("terminated")
    ));
    assert_eq!(
        apply_contract_status(&next, &status(ReportedContract::Terminated("x".into()))),
        Decision::Unchanged
    );
    // A paused contract ends as well.
    let paused = contract(ContractState::Paused);
    assert!(matches!(
        apply_contract_status(&paused, &status(ReportedContract::Terminated("m".into()))),
        Decision::Apply { .. }
    ));
}

#[test]
fn another_contract_plan_payer_or_id_is_a_contradiction() {
    let mut c = contract(ContractState::Active);
    c.provider_contract_id = Some("PC1".into());
    c.payer_openid = Some("o-payer".into());
    let mut other_no = status(ReportedContract::Active);
    other_no.contract.merchant_contract_no = "C2".into();
    let mut other_plan = status(ReportedContract::Active);
    other_plan.plan_id = Some("999".into());
    let mut other_payer = status(ReportedContract::Active);
    other_payer.payer_id = Some("o-else".into());
    let mut other_id = status(ReportedContract::Active);
    other_id.contract.provider_contract_id = Some("PC2".into());
    for s in [other_no, other_plan, other_payer, other_id] {
        assert!(
            matches!(apply_contract_status(&c, &s), Decision::Reject(_)),
            "{s:?}"
        );
    }
}

#[test]
fn pause_and_resume_are_payhosts_own_and_only_from_their_states() {
    let active = contract(ContractState::Active);
    let Decision::Apply { next, events } = pause(&active, 3) else {
        panic!("not paused");
    };
    assert_eq!(next.state, ContractState::Paused);
    assert_eq!(kinds(&events), [CONTRACT_PAUSED]);
    // The provider's "active" while paused: still paused.
    assert_eq!(
        apply_contract_status(&next, &status(ReportedContract::Active)).clone(),
        apply(
            Contract {
                provider_contract_id: Some("PC1".into()),
                payer_openid: Some("o-payer".into()),
                ..(*next).clone()
            },
            Vec::new()
        )
    );
    let Decision::Apply { next: resumed, .. } = resume(&next, 5_000) else {
        panic!("not resumed");
    };
    assert_eq!(resumed.state, ContractState::Active);
    assert_eq!(resumed.failures_counted_from, 5_000);
    assert_eq!(resumed.pause_reason, None);
    for s in [ContractState::PendingSignature, ContractState::Terminated] {
        assert_eq!(pause(&contract(s), 3), Decision::Unchanged);
        assert_eq!(resume(&contract(s), 1), Decision::Unchanged);
    }
}

fn deduction(state: DeductionState) -> Deduction {
    Deduction {
        merchant_id: "m".into(),
        deduction_no: "D1".into(),
        contract_no: "C1".into(),
        adapter: "wechat-v2".into(),
        adapter_digest: "d".into(),
        amount_minor: 1500,
        currency: "CNY".into(),
        description: "December".into(),
        state,
        provider_deduction_id: None,
        provider_state: None,
        failure_reason: None,
        paid_at: None,
        metadata: Value::Null,
        next_poll_at: Some(1),
        poll_attempts: 0,
        created_at: 0,
        updated_at: 0,
        version: 1,
    }
}

fn charged(state: ReportedDeduction, minor: Option<u64>) -> DeductionStatus {
    DeductionStatus {
        contract: ContractRef {
            merchant_contract_no: String::new(),
            provider_contract_id: Some("PC1".into()),
        },
        merchant_deduction_no: "D1".into(),
        provider_deduction_id: Some("T1".into()),
        state,
        provider_state: "SUCCESS".into(),
        amount: minor.map(|minor| Money {
            minor,
            currency: "CNY".into(),
        }),
        paid_at: Some(1_700_000_000),
    }
}

fn signed() -> Contract {
    Contract {
        provider_contract_id: Some("PC1".into()),
        ..contract(ContractState::Active)
    }
}

#[test]
fn a_charge_with_the_right_amount_succeeds_once() {
    let d = deduction(DeductionState::Pending);
    let s = charged(ReportedDeduction::Succeeded, Some(1500));
    let Decision::Apply { next, events } = apply_deduction_status(&d, &signed(), &s) else {
        panic!("not applied");
    };
    assert_eq!(next.state, DeductionState::Succeeded);
    assert_eq!(next.provider_deduction_id.as_deref(), Some("T1"));
    assert_eq!(next.paid_at, Some(1_700_000_000_000));
    assert_eq!(kinds(&events), [DEDUCTION_SUCCEEDED]);
    assert_eq!(
        apply_deduction_status(&next, &signed(), &s),
        Decision::Unchanged
    );
    // A late "pending" after success changes nothing.
    assert_eq!(
        apply_deduction_status(&next, &signed(), &charged(ReportedDeduction::Pending, None)),
        Decision::Unchanged
    );
}

#[test]
fn a_wrong_amount_contract_or_missing_amount_never_marks_it_charged() {
    let d = deduction(DeductionState::Pending);
    for s in [
        charged(ReportedDeduction::Succeeded, Some(1501)),
        charged(ReportedDeduction::Succeeded, None),
        DeductionStatus {
            contract: ContractRef {
                merchant_contract_no: "C9".into(),
                provider_contract_id: None,
            },
            ..charged(ReportedDeduction::Succeeded, Some(1500))
        },
        DeductionStatus {
            contract: ContractRef {
                merchant_contract_no: String::new(),
                provider_contract_id: Some("PC9".into()),
            },
            ..charged(ReportedDeduction::Succeeded, Some(1500))
        },
    ] {
        assert!(
            matches!(
                apply_deduction_status(&d, &signed(), &s),
                Decision::Reject(_)
            ),
            "{s:?}"
        );
    }
}

#[test]
fn the_providers_charge_wins_over_a_recorded_failure_but_not_the_reverse() {
    let failed = deduction(DeductionState::Failed);
    let Decision::Apply { next, events } = apply_deduction_status(
        &failed,
        &signed(),
        &charged(ReportedDeduction::Succeeded, Some(1500)),
    ) else {
        panic!("not applied");
    };
    assert_eq!(next.state, DeductionState::Succeeded);
    assert_eq!(events[0].payload["previous_state"], "failed");
    assert!(matches!(
        apply_deduction_status(
            &next,
            &signed(),
            &charged(ReportedDeduction::Failed("NOTENOUGH".into()), None)
        ),
        Decision::Reject(_)
    ));
    // A failure of a pending one: failed with the reason.
    let Decision::Apply { next, events } = apply_deduction_status(
        &deduction(DeductionState::Pending),
        &signed(),
        &charged(ReportedDeduction::Failed("NOTENOUGH".into()), None),
    ) else {
        panic!("not applied");
    };
    assert_eq!(next.failure_reason.as_deref(), Some("NOTENOUGH"));
    assert_eq!(kinds(&events), [DEDUCTION_FAILED]);
}

#[test]
fn only_a_deduction_nobody_answered_fails_on_a_refusal() {
    let Decision::Apply { next, events } =
        refused(&deduction(DeductionState::Created), "RULELIMIT")
    else {
        panic!("not failed");
    };
    assert_eq!(next.state, DeductionState::Failed);
    assert_eq!(kinds(&events), [DEDUCTION_FAILED]);
    for s in [
        DeductionState::Pending,
        DeductionState::Succeeded,
        DeductionState::Failed,
    ] {
        assert_eq!(refused(&deduction(s), "x"), Decision::Unchanged);
    }
}
