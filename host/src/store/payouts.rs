//! Payouts to a payee's wallet (issue 15): the row, its states, the
//! merchant's daily limits the insert checks, and the statements and row
//! mapping both stores share.

use super::StoreError;
use super::rows::{Bind, Columns, json_text, parse_json};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// State of a payout; see [`crate::payouts`] for the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutState {
    /// Stored; the provider has not answered yet (or its answer was lost).
    Created,
    /// The provider took it; the outcome is not known yet.
    Accepted,
    /// Waits for the payee to confirm in their app.
    PendingUserConfirmation,
    /// The provider is moving the money (or cancelling).
    Processing,
    Succeeded,
    Failed,
    Cancelled,
}

impl PayoutState {
    pub const ALL: [PayoutState; 7] = [
        PayoutState::Created,
        PayoutState::Accepted,
        PayoutState::PendingUserConfirmation,
        PayoutState::Processing,
        PayoutState::Succeeded,
        PayoutState::Failed,
        PayoutState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PayoutState::Created => "created",
            PayoutState::Accepted => "accepted",
            PayoutState::PendingUserConfirmation => "pending_user_confirmation",
            PayoutState::Processing => "processing",
            PayoutState::Succeeded => "succeeded",
            PayoutState::Failed => "failed",
            PayoutState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<PayoutState> {
        PayoutState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The provider's last word: the money moved, or never will.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PayoutState::Succeeded | PayoutState::Failed | PayoutState::Cancelled
        )
    }
}

impl std::fmt::Display for PayoutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One payout, keyed by (merchant, merchant payout no). The payee's real
/// name is never stored: only whether one was sent for the provider to
/// check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payout {
    pub merchant_id: String,
    pub payout_no: String,
    pub adapter: String,
    pub adapter_digest: String,
    pub amount_minor: i64,
    pub currency: String,
    pub payee_app_id: String,
    pub payee_openid: String,
    pub real_name_checked: bool,
    pub remark: String,
    pub scene: Option<String>,
    pub state: PayoutState,
    pub provider_payout_id: Option<String>,
    /// What the payee's app needs to confirm (`wx.requestMerchantTransfer`
    /// parameters), as JSON, once the provider gave it.
    pub confirmation: Option<serde_json::Value>,
    pub failure_reason: Option<String>,
    /// The provider's own state word, for operators.
    pub provider_state: Option<String>,
    pub metadata: serde_json::Value,
    /// When the reconciler next asks the provider (None: never).
    pub next_poll_at: Option<i64>,
    pub poll_attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

/// A merchant's payout limits of one day, checked inside the insert's
/// transaction so concurrent payouts cannot together pass them. Counted:
/// every payout of the day in `currency` not failed or cancelled, those
/// still waiting for the provider included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutCaps {
    /// Start of the merchant's day (Unix ms).
    pub since: i64,
    pub per_payee_day_minor: i64,
    pub per_payee_day_count: i64,
    pub per_merchant_day_minor: i64,
}

/// What a merchant's day holds when a payout is inserted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PayoutTotals {
    pub payee_minor: i64,
    pub payee_count: i64,
    pub merchant_minor: i64,
}

impl PayoutCaps {
    /// The first limit `payout` would pass, given the day's `totals`.
    pub fn check(&self, payout: &Payout, totals: PayoutTotals) -> Result<(), StoreError> {
        let over = |limit, max: i64, counted: i64| StoreError::PayoutLimit {
            limit,
            max,
            counted,
        };
        let amount = payout.amount_minor;
        if totals.payee_count >= self.per_payee_day_count {
            return Err(over(
                "per_payee_day_count",
                self.per_payee_day_count,
                totals.payee_count,
            ));
        }
        if totals.payee_minor.saturating_add(amount) > self.per_payee_day_minor {
            return Err(over(
                "per_payee_day",
                self.per_payee_day_minor,
                totals.payee_minor,
            ));
        }
        if totals.merchant_minor.saturating_add(amount) > self.per_merchant_day_minor {
            return Err(over(
                "per_merchant_day",
                self.per_merchant_day_minor,
                totals.merchant_minor,
            ));
        }
        Ok(())
    }
}

/// The payouts table (migration 8, both stores).
pub(in crate::store) const MIGRATION: &str = r#"
CREATE TABLE payouts (
    merchant_id        TEXT   NOT NULL,
    payout_no          TEXT   NOT NULL,
    adapter            TEXT   NOT NULL,
    adapter_digest     TEXT   NOT NULL,
    amount_minor       BIGINT NOT NULL,
    currency           TEXT   NOT NULL,
    payee_app_id       TEXT   NOT NULL,
    payee_openid       TEXT   NOT NULL,
    real_name_checked  BIGINT NOT NULL,
    remark             TEXT   NOT NULL,
    scene              TEXT,
    state              TEXT   NOT NULL,
    provider_payout_id TEXT,
    confirmation       TEXT,
    failure_reason     TEXT,
    provider_state     TEXT,
    metadata           TEXT   NOT NULL,
    next_poll_at       BIGINT,
    poll_attempts      BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    version            BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, payout_no)
);
-- The day's totals per merchant and per payee.
CREATE INDEX payouts_day ON payouts (merchant_id, created_at);
CREATE INDEX payouts_payee ON payouts (merchant_id, payee_openid, created_at);
CREATE INDEX payouts_poll ON payouts (next_poll_at)
    WHERE state IN ('created', 'accepted', 'pending_user_confirmation', 'processing');
"#;

pub(in crate::store) const PAYOUT_COLUMNS: &str = "merchant_id, payout_no, adapter, adapter_digest, amount_minor, \
     currency, payee_app_id, payee_openid, real_name_checked, remark, scene, state, \
     provider_payout_id, confirmation, failure_reason, provider_state, metadata, next_poll_at, \
     poll_attempts, created_at, updated_at, version";

pub(in crate::store) static INSERT_PAYOUT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO payouts ({PAYOUT_COLUMNS}) VALUES
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
          ?19, ?20, ?21, ?22)
         ON CONFLICT (merchant_id, payout_no) DO NOTHING"
    )
});

pub(in crate::store) static SELECT_PAYOUT: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {PAYOUT_COLUMNS} FROM payouts WHERE merchant_id = ?1 AND payout_no = ?2")
});

/// Compare-and-set, bound as [`PAYOUT_COLUMNS`] with `updated_at` the new
/// time (?21) and `version` the expected one (?22). Who is paid how much
/// never changes: a write that would change it matches no row. (Every
/// parameter appears, so PostgreSQL knows each one's type.)
pub(in crate::store) const CAS_PAYOUT: &str = "UPDATE payouts SET
     adapter = ?3, adapter_digest = ?4, state = ?12, provider_payout_id = ?13,
     confirmation = ?14, failure_reason = ?15, provider_state = ?16, metadata = ?17,
     next_poll_at = ?18, poll_attempts = ?19, updated_at = ?21, version = version + 1
 WHERE merchant_id = ?1 AND payout_no = ?2 AND version = ?22
   AND amount_minor = ?5 AND currency = ?6 AND payee_app_id = ?7 AND payee_openid = ?8
   AND real_name_checked = ?9 AND remark = ?10 AND created_at = ?20
   AND scene IS NOT DISTINCT FROM ?11";

/// The day's totals (?1 merchant, ?2 payee, ?3 since, ?4 currency).
pub(in crate::store) const PAYOUT_TOTALS: &str = "SELECT
     CAST(COALESCE(SUM(CASE WHEN payee_openid = ?2 THEN amount_minor ELSE 0 END), 0) AS BIGINT),
     CAST(COUNT(CASE WHEN payee_openid = ?2 THEN 1 END) AS BIGINT),
     CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT)
 FROM payouts
 WHERE merchant_id = ?1 AND created_at >= ?3 AND currency = ?4
   AND state NOT IN ('failed', 'cancelled')";

pub(in crate::store) const OPEN_PAYOUT: &str =
    "state IN ('created', 'accepted', 'pending_user_confirmation', 'processing')";

pub(in crate::store) static PAYOUTS_TO_POLL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {PAYOUT_COLUMNS} FROM payouts
         WHERE {OPEN_PAYOUT} AND next_poll_at <= ?1
         ORDER BY next_poll_at LIMIT ?2"
    )
});

/// The values of [`PAYOUT_COLUMNS`], in that order, with `updated_at` and
/// `version` as given (the new time and expected version for
/// [`CAS_PAYOUT`]).
pub(in crate::store) fn payout_binds(p: &Payout, updated_at: i64, version: i64) -> Vec<Bind> {
    use Bind::{Int, Text};
    let t = |s: &str| Text(Some(s.to_owned()));
    vec![
        t(&p.merchant_id),
        t(&p.payout_no),
        t(&p.adapter),
        t(&p.adapter_digest),
        Int(Some(p.amount_minor)),
        t(&p.currency),
        t(&p.payee_app_id),
        t(&p.payee_openid),
        Int(Some(i64::from(p.real_name_checked))),
        t(&p.remark),
        Text(p.scene.clone()),
        t(p.state.as_str()),
        Text(p.provider_payout_id.clone()),
        Text(p.confirmation.as_ref().map(json_text)),
        Text(p.failure_reason.clone()),
        Text(p.provider_state.clone()),
        Text(Some(json_text(&p.metadata))),
        Int(p.next_poll_at),
        Int(Some(p.poll_attempts)),
        Int(Some(p.created_at)),
        Int(Some(updated_at)),
        Int(Some(version)),
    ]
}

/// A row of [`PAYOUT_COLUMNS`].
pub(in crate::store) fn payout_from(r: &impl Columns) -> Result<Payout, StoreError> {
    let state = r.text(11)?;
    Ok(Payout {
        merchant_id: r.text(0)?,
        payout_no: r.text(1)?,
        adapter: r.text(2)?,
        adapter_digest: r.text(3)?,
        amount_minor: r.int(4)?,
        currency: r.text(5)?,
        payee_app_id: r.text(6)?,
        payee_openid: r.text(7)?,
        real_name_checked: r.int(8)? != 0,
        remark: r.text(9)?,
        scene: r.opt_text(10)?,
        state: PayoutState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown payout state {state:?}")))?,
        provider_payout_id: r.opt_text(12)?,
        confirmation: r
            .opt_text(13)?
            .map(|t| parse_json("confirmation", &t))
            .transpose()?,
        failure_reason: r.opt_text(14)?,
        provider_state: r.opt_text(15)?,
        metadata: parse_json("metadata", &r.text(16)?)?,
        next_poll_at: r.opt_int(17)?,
        poll_attempts: r.int(18)?,
        created_at: r.int(19)?,
        updated_at: r.int(20)?,
        version: r.int(21)?,
    })
}

/// The payout as a compare-and-set leaves it.
pub(in crate::store) fn stored(p: &Payout, now: i64) -> Payout {
    Payout {
        version: p.version + 1,
        updated_at: now,
        ..p.clone()
    }
}

/// The subject under which a contradiction about a payout is recorded
/// once (the mismatches table keys by order number).
pub fn mismatch_subject(payout_no: &str) -> String {
    format!("payout:{payout_no}")
}
