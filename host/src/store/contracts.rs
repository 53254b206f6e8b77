//! Auto-debit contracts and their deductions (issue 15): the rows, their
//! states, the policy the deduction insert checks, and the statements and
//! row mapping both stores share.
//!
//! Each row keeps the columns the store selects, counts or guards on, and
//! the rest of the object as one JSON document: nothing queries inside it,
//! and the compare-and-set guards the columns that must never change.

use super::StoreError;
use super::rows::{Bind, Columns, json_text, parse_json};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// State of a contract; see [`crate::contracts`] for the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractState {
    /// The payer has not signed (yet).
    PendingSignature,
    /// Signed: deductions may be made.
    Active,
    /// payhost's policy stopped deductions (consecutive failures); the
    /// contract stands at the provider.
    Paused,
    /// Ended by the payer, the merchant or the provider. Final.
    Terminated,
}

impl ContractState {
    pub const ALL: [ContractState; 4] = [
        ContractState::PendingSignature,
        ContractState::Active,
        ContractState::Paused,
        ContractState::Terminated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ContractState::PendingSignature => "pending_signature",
            ContractState::Active => "active",
            ContractState::Paused => "paused",
            ContractState::Terminated => "terminated",
        }
    }

    pub fn parse(s: &str) -> Option<ContractState> {
        ContractState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for ContractState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// State of a deduction; see [`crate::contracts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeductionState {
    /// Stored; the provider has not answered yet (or its answer was lost).
    Created,
    /// The provider accepted it; the charge has not happened yet.
    Pending,
    Succeeded,
    Failed,
}

impl DeductionState {
    pub const ALL: [DeductionState; 4] = [
        DeductionState::Created,
        DeductionState::Pending,
        DeductionState::Succeeded,
        DeductionState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeductionState::Created => "created",
            DeductionState::Pending => "pending",
            DeductionState::Succeeded => "succeeded",
            DeductionState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeductionState> {
        DeductionState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(self, DeductionState::Succeeded | DeductionState::Failed)
    }
}

impl std::fmt::Display for DeductionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One contract, keyed by (merchant, merchant contract no).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contract {
    pub merchant_id: String,
    pub contract_no: String,
    pub adapter: String,
    pub adapter_digest: String,
    pub plan_id: String,
    pub payer_app_id: String,
    pub payer_openid: Option<String>,
    pub display_name: String,
    pub state: ContractState,
    pub provider_contract_id: Option<String>,
    /// What the payer must do to sign (the contract's `sign-action`), as
    /// JSON: handed out again on a retry of the create.
    pub signing: serde_json::Value,
    pub provider_state: Option<String>,
    /// `terminated`: the provider's reason (or the merchant's).
    pub termination_reason: Option<String>,
    /// `paused`: why payhost stopped deducting.
    pub pause_reason: Option<String>,
    /// Failed deductions made before this time (Unix ms) no longer count
    /// towards the pause (set when a paused contract is resumed).
    pub failures_counted_from: i64,
    pub signed_at: Option<i64>,
    pub metadata: serde_json::Value,
    pub next_poll_at: Option<i64>,
    pub poll_attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

/// One deduction from a contract, keyed by (merchant, merchant deduction
/// no), which is the provider's order number too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deduction {
    pub merchant_id: String,
    pub deduction_no: String,
    pub contract_no: String,
    pub adapter: String,
    pub adapter_digest: String,
    pub amount_minor: i64,
    pub currency: String,
    pub description: String,
    pub state: DeductionState,
    pub provider_deduction_id: Option<String>,
    pub provider_state: Option<String>,
    pub failure_reason: Option<String>,
    pub paid_at: Option<i64>,
    pub metadata: serde_json::Value,
    pub next_poll_at: Option<i64>,
    pub poll_attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

/// The parts of a deduction that live in its JSON document.
#[derive(Serialize, Deserialize)]
struct DeductionDoc {
    adapter: String,
    adapter_digest: String,
    description: String,
    provider_deduction_id: Option<String>,
    provider_state: Option<String>,
    failure_reason: Option<String>,
    paid_at: Option<i64>,
    metadata: serde_json::Value,
}

/// The parts of a contract that live in its JSON document.
#[derive(Serialize, Deserialize)]
struct ContractDoc {
    adapter: String,
    adapter_digest: String,
    payer_app_id: String,
    payer_openid: Option<String>,
    display_name: String,
    signing: serde_json::Value,
    provider_state: Option<String>,
    termination_reason: Option<String>,
    pause_reason: Option<String>,
    failures_counted_from: i64,
    signed_at: Option<i64>,
    metadata: serde_json::Value,
}

/// The merchant's deduction policy for one insert, checked inside its
/// transaction so concurrent deductions cannot together pass it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeductionCaps {
    /// Start of the merchant's day (Unix ms).
    pub since: i64,
    pub per_contract_day_count: i64,
    /// Consecutive failed deductions that pause the contract.
    pub pause_after_failures: i64,
    /// The least time (ms) between a failed deduction and the next one.
    pub retry_interval_ms: i64,
}

/// What a contract's deductions hold when another is inserted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeductionHistory {
    /// Deductions of the day not failed (pending ones count: they charge).
    pub day_count: i64,
    /// Failed deductions since the last success (and since the contract
    /// was last resumed).
    pub consecutive_failures: i64,
    /// When the latest of those failed (Unix ms).
    pub last_failure_at: Option<i64>,
}

/// Why the store refused a deduction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeductionRefusal {
    /// The contract is not active (its state is named).
    NotActive(ContractState),
    /// A policy limit: which, its value, and what was counted.
    Limit {
        limit: &'static str,
        max: i64,
        counted: i64,
    },
    /// Too soon after a failure: when the next may be made (Unix ms).
    TooSoon { retry_after: i64 },
}

impl DeductionCaps {
    /// The first rule a new deduction at `now` breaks, given the contract
    /// and its `history`.
    pub fn check(
        &self,
        contract: &Contract,
        history: DeductionHistory,
        now: i64,
    ) -> Result<(), DeductionRefusal> {
        if contract.state != ContractState::Active {
            return Err(DeductionRefusal::NotActive(contract.state));
        }
        if history.consecutive_failures >= self.pause_after_failures {
            return Err(DeductionRefusal::Limit {
                limit: "pause_after_failures",
                max: self.pause_after_failures,
                counted: history.consecutive_failures,
            });
        }
        if history.day_count >= self.per_contract_day_count {
            return Err(DeductionRefusal::Limit {
                limit: "per_contract_day_count",
                max: self.per_contract_day_count,
                counted: history.day_count,
            });
        }
        if let Some(at) = history.last_failure_at
            && now < at.saturating_add(self.retry_interval_ms)
        {
            return Err(DeductionRefusal::TooSoon {
                retry_after: at.saturating_add(self.retry_interval_ms),
            });
        }
        Ok(())
    }
}

/// The contracts and deductions tables (migration 9, both stores).
pub(in crate::store) const MIGRATION: &str = r#"
CREATE TABLE contracts (
    merchant_id          TEXT   NOT NULL,
    contract_no          TEXT   NOT NULL,
    plan_id              TEXT   NOT NULL,
    state                TEXT   NOT NULL,
    provider_contract_id TEXT,
    doc                  TEXT   NOT NULL,
    next_poll_at         BIGINT,
    poll_attempts        BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    version              BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, contract_no)
);
CREATE INDEX contracts_poll ON contracts (next_poll_at)
    WHERE state = 'pending_signature';
CREATE TABLE deductions (
    merchant_id   TEXT   NOT NULL,
    deduction_no  TEXT   NOT NULL,
    contract_no   TEXT   NOT NULL,
    amount_minor  BIGINT NOT NULL,
    currency      TEXT   NOT NULL,
    state         TEXT   NOT NULL,
    doc           TEXT   NOT NULL,
    next_poll_at  BIGINT,
    poll_attempts BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    version       BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, deduction_no)
);
-- A contract's day and its run of failures.
CREATE INDEX deductions_contract ON deductions (merchant_id, contract_no, created_at);
CREATE INDEX deductions_poll ON deductions (next_poll_at)
    WHERE state IN ('created', 'pending');
"#;

pub(in crate::store) const CONTRACT_COLUMNS: &str = "merchant_id, contract_no, plan_id, state, \
     provider_contract_id, doc, next_poll_at, poll_attempts, created_at, updated_at, version";

pub(in crate::store) const DEDUCTION_COLUMNS: &str = "merchant_id, deduction_no, contract_no, \
     amount_minor, currency, state, doc, next_poll_at, poll_attempts, created_at, updated_at, \
     version";

pub(in crate::store) static INSERT_CONTRACT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO contracts ({CONTRACT_COLUMNS}) VALUES
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (merchant_id, contract_no) DO NOTHING"
    )
});

pub(in crate::store) static SELECT_CONTRACT: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {CONTRACT_COLUMNS} FROM contracts WHERE merchant_id = ?1 AND contract_no = ?2")
});

/// Compare-and-set, bound as [`CONTRACT_COLUMNS`] with `updated_at` the new
/// time (?10) and `version` the expected one (?11). The template and the
/// creation time never change.
pub(in crate::store) const CAS_CONTRACT: &str = "UPDATE contracts SET
     state = ?4, provider_contract_id = ?5, doc = ?6, next_poll_at = ?7, poll_attempts = ?8,
     updated_at = ?10, version = version + 1
 WHERE merchant_id = ?1 AND contract_no = ?2 AND version = ?11
   AND plan_id = ?3 AND created_at = ?9";

pub(in crate::store) static INSERT_DEDUCTION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO deductions ({DEDUCTION_COLUMNS}) VALUES
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (merchant_id, deduction_no) DO NOTHING"
    )
});

pub(in crate::store) static SELECT_DEDUCTION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {DEDUCTION_COLUMNS} FROM deductions WHERE merchant_id = ?1 AND deduction_no = ?2"
    )
});

/// Compare-and-set, bound as [`DEDUCTION_COLUMNS`] with `updated_at` the
/// new time (?11) and `version` the expected one (?12). Which contract is
/// charged how much never changes.
pub(in crate::store) const CAS_DEDUCTION: &str = "UPDATE deductions SET
     state = ?6, doc = ?7, next_poll_at = ?8, poll_attempts = ?9,
     updated_at = ?11, version = version + 1
 WHERE merchant_id = ?1 AND deduction_no = ?2 AND version = ?12
   AND contract_no = ?3 AND amount_minor = ?4 AND currency = ?5 AND created_at = ?10";

/// ?1 merchant, ?2 deduction no, ?3 the version read.
pub(in crate::store) const DELETE_UNSENT_DEDUCTION: &str = "DELETE FROM deductions
 WHERE merchant_id = ?1 AND deduction_no = ?2 AND version = ?3 AND state = 'created'";

/// A contract's deductions of the day not failed (?1 merchant, ?2
/// contract, ?3 since).
pub(in crate::store) const DEDUCTIONS_OF_DAY: &str = "SELECT CAST(COUNT(*) AS BIGINT)
 FROM deductions
 WHERE merchant_id = ?1 AND contract_no = ?2 AND created_at >= ?3 AND state <> 'failed'";

/// A contract's failed deductions after its last success and after ?3
/// (the contract's `failures_counted_from`): how many, and the latest
/// failure's time.
pub(in crate::store) const FAILURE_RUN: &str = "SELECT CAST(COUNT(*) AS BIGINT),
     CAST(MAX(updated_at) AS BIGINT)
 FROM deductions
 WHERE merchant_id = ?1 AND contract_no = ?2 AND state = 'failed' AND created_at >= ?3
   AND created_at > COALESCE((SELECT MAX(created_at) FROM deductions
       WHERE merchant_id = ?1 AND contract_no = ?2 AND state = 'succeeded'), -1)";

pub(in crate::store) const OPEN_CONTRACT: &str = "state = 'pending_signature'";
pub(in crate::store) const OPEN_DEDUCTION: &str = "state IN ('created', 'pending')";

pub(in crate::store) static CONTRACTS_TO_POLL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {CONTRACT_COLUMNS} FROM contracts
         WHERE {OPEN_CONTRACT} AND next_poll_at <= ?1
         ORDER BY next_poll_at LIMIT ?2"
    )
});

pub(in crate::store) static DEDUCTIONS_TO_POLL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {DEDUCTION_COLUMNS} FROM deductions
         WHERE {OPEN_DEDUCTION} AND next_poll_at <= ?1
         ORDER BY next_poll_at LIMIT ?2"
    )
});

/// The values of [`CONTRACT_COLUMNS`], in that order.
pub(in crate::store) fn contract_binds(c: &Contract, updated_at: i64, version: i64) -> Vec<Bind> {
    use Bind::{Int, Text};
    let t = |s: &str| Text(Some(s.to_owned()));
    let doc = ContractDoc {
        adapter: c.adapter.clone(),
        adapter_digest: c.adapter_digest.clone(),
        payer_app_id: c.payer_app_id.clone(),
        payer_openid: c.payer_openid.clone(),
        display_name: c.display_name.clone(),
        signing: c.signing.clone(),
        provider_state: c.provider_state.clone(),
        termination_reason: c.termination_reason.clone(),
        pause_reason: c.pause_reason.clone(),
        failures_counted_from: c.failures_counted_from,
        signed_at: c.signed_at,
        metadata: c.metadata.clone(),
    };
    vec![
        t(&c.merchant_id),
        t(&c.contract_no),
        t(&c.plan_id),
        t(c.state.as_str()),
        Text(c.provider_contract_id.clone()),
        Text(Some(json_text(
            &serde_json::to_value(doc).expect("a contract serializes"),
        ))),
        Int(c.next_poll_at),
        Int(Some(c.poll_attempts)),
        Int(Some(c.created_at)),
        Int(Some(updated_at)),
        Int(Some(version)),
    ]
}

/// A row of [`CONTRACT_COLUMNS`].
pub(in crate::store) fn contract_from(r: &impl Columns) -> Result<Contract, StoreError> {
    let state = r.text(3)?;
    let doc: ContractDoc = serde_json::from_value(parse_json("doc", &r.text(5)?)?)
        .map_err(|e| StoreError::Corrupt(format!("contract document: {e}")))?;
    Ok(Contract {
        merchant_id: r.text(0)?,
        contract_no: r.text(1)?,
        plan_id: r.text(2)?,
        state: ContractState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown contract state {state:?}")))?,
        provider_contract_id: r.opt_text(4)?,
        adapter: doc.adapter,
        adapter_digest: doc.adapter_digest,
        payer_app_id: doc.payer_app_id,
        payer_openid: doc.payer_openid,
        display_name: doc.display_name,
        signing: doc.signing,
        provider_state: doc.provider_state,
        termination_reason: doc.termination_reason,
        pause_reason: doc.pause_reason,
        failures_counted_from: doc.failures_counted_from,
        signed_at: doc.signed_at,
        metadata: doc.metadata,
        next_poll_at: r.opt_int(6)?,
        poll_attempts: r.int(7)?,
        created_at: r.int(8)?,
        updated_at: r.int(9)?,
        version: r.int(10)?,
    })
}

/// The values of [`DEDUCTION_COLUMNS`], in that order.
pub(in crate::store) fn deduction_binds(d: &Deduction, updated_at: i64, version: i64) -> Vec<Bind> {
    use Bind::{Int, Text};
    let t = |s: &str| Text(Some(s.to_owned()));
    let doc = DeductionDoc {
        adapter: d.adapter.clone(),
        adapter_digest: d.adapter_digest.clone(),
        description: d.description.clone(),
        provider_deduction_id: d.provider_deduction_id.clone(),
        provider_state: d.provider_state.clone(),
        failure_reason: d.failure_reason.clone(),
        paid_at: d.paid_at,
        metadata: d.metadata.clone(),
    };
    vec![
        t(&d.merchant_id),
        t(&d.deduction_no),
        t(&d.contract_no),
        Int(Some(d.amount_minor)),
        t(&d.currency),
        t(d.state.as_str()),
        Text(Some(json_text(
            &serde_json::to_value(doc).expect("a deduction serializes"),
        ))),
        Int(d.next_poll_at),
        Int(Some(d.poll_attempts)),
        Int(Some(d.created_at)),
        Int(Some(updated_at)),
        Int(Some(version)),
    ]
}

/// A row of [`DEDUCTION_COLUMNS`].
pub(in crate::store) fn deduction_from(r: &impl Columns) -> Result<Deduction, StoreError> {
    let state = r.text(5)?;
    let doc: DeductionDoc = serde_json::from_value(parse_json("doc", &r.text(6)?)?)
        .map_err(|e| StoreError::Corrupt(format!("deduction document: {e}")))?;
    Ok(Deduction {
        merchant_id: r.text(0)?,
        deduction_no: r.text(1)?,
        contract_no: r.text(2)?,
        amount_minor: r.int(3)?,
        currency: r.text(4)?,
        state: DeductionState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown deduction state {state:?}")))?,
        adapter: doc.adapter,
        adapter_digest: doc.adapter_digest,
        description: doc.description,
        provider_deduction_id: doc.provider_deduction_id,
        provider_state: doc.provider_state,
        failure_reason: doc.failure_reason,
        paid_at: doc.paid_at,
        metadata: doc.metadata,
        next_poll_at: r.opt_int(7)?,
        poll_attempts: r.int(8)?,
        created_at: r.int(9)?,
        updated_at: r.int(10)?,
        version: r.int(11)?,
    })
}

/// The subjects under which contradictions are recorded once (the
/// mismatches table keys by order number).
pub fn contract_subject(contract_no: &str) -> String {
    format!("contract:{contract_no}")
}

pub fn deduction_subject(deduction_no: &str) -> String {
    format!("deduction:{deduction_no}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(state: ContractState) -> Contract {
        Contract {
            merchant_id: "m".into(),
            contract_no: "C1".into(),
            adapter: "a".into(),
            adapter_digest: "d".into(),
            plan_id: "P".into(),
            payer_app_id: "wx1".into(),
            payer_openid: None,
            display_name: "n".into(),
            state,
            provider_contract_id: Some("pc".into()),
            signing: serde_json::Value::Null,
            provider_state: None,
            termination_reason: None,
            pause_reason: None,
            failures_counted_from: 0,
            signed_at: None,
            metadata: serde_json::Value::Null,
            next_poll_at: None,
            poll_attempts: 0,
            created_at: 0,
            updated_at: 0,
            version: 1,
        }
    }

    const CAPS: DeductionCaps = DeductionCaps {
        since: 0,
        per_contract_day_count: 10,
        pause_after_failures: 3,
        retry_interval_ms: 6 * 3_600_000,
    };

    #[test]
    fn each_deduction_rule_holds_at_its_boundary() {
        let active = contract(ContractState::Active);
        let h = |day_count, consecutive_failures, last_failure_at| DeductionHistory {
            day_count,
            consecutive_failures,
            last_failure_at,
        };
        assert_eq!(CAPS.check(&active, h(9, 0, None), 0), Ok(()));
        assert_eq!(
            CAPS.check(&active, h(10, 0, None), 0),
            Err(DeductionRefusal::Limit {
                limit: "per_contract_day_count",
                max: 10,
                counted: 10
            })
        );
        let six_h = CAPS.retry_interval_ms;
        assert_eq!(
            CAPS.check(&active, h(0, 2, Some(1_000)), 1_000 + six_h),
            Ok(())
        );
        assert_eq!(
            CAPS.check(&active, h(0, 2, Some(1_000)), 999 + six_h),
            Err(DeductionRefusal::TooSoon {
                retry_after: 1_000 + six_h
            })
        );
        assert!(matches!(
            CAPS.check(&active, h(0, 3, Some(0)), i64::MAX),
            Err(DeductionRefusal::Limit {
                limit: "pause_after_failures",
                ..
            })
        ));
        for state in [
            ContractState::PendingSignature,
            ContractState::Paused,
            ContractState::Terminated,
        ] {
            assert_eq!(
                CAPS.check(&contract(state), h(0, 0, None), 0),
                Err(DeductionRefusal::NotActive(state))
            );
        }
    }
}
