//! Retention (`[retention]`): a background task that deletes what the
//! store no longer needs, so it does not grow without bound:
//!
//! - idempotency records older than their TTL (a retry after that is a new
//!   request; a create is still deduplicated by its merchant order no);
//! - notifications that did not verify, after their retention (verified
//!   ones are the provider's word and are kept whole);
//! - outbox events delivered longer ago than their retention (undelivered,
//!   given-up and undeliverable events stay).
//!
//! Orders, refunds and verified notifications are never deleted.

use crate::api::{AppState, now_ms};
use crate::store::{PrunePolicy, PruneReport};
use serde::Deserialize;
use std::time::Duration;

/// `[retention]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// How often the pruning runs.
    pub interval_ms: u64,
    pub idempotency_secs: u64,
    pub unverified_notifications_secs: u64,
    pub delivered_events_secs: u64,
    /// Rows of each kind deleted per transaction.
    pub batch_rows: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            interval_ms: 3_600_000,
            idempotency_secs: 24 * 3600,
            unverified_notifications_secs: 7 * 24 * 3600,
            delivered_events_secs: 30 * 24 * 3600,
            batch_rows: 1000,
        }
    }
}

impl RetentionSettings {
    /// The first setting that cannot be used, as (field, problem).
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.interval_ms == 0 {
            return Err(("retention.interval_ms", "must be greater than zero"));
        }
        if self.batch_rows == 0 {
            return Err(("retention.batch_rows", "must be greater than zero"));
        }
        Ok(())
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// The cutoffs as of `now` (unix ms).
    pub fn policy(&self, now: i64) -> PrunePolicy {
        let before = |secs: u64| {
            now.saturating_sub(
                i64::try_from(secs)
                    .unwrap_or(i64::MAX / 1000)
                    .saturating_mul(1000),
            )
        };
        PrunePolicy {
            idempotency_before: before(self.idempotency_secs),
            unverified_before: before(self.unverified_notifications_secs),
            delivered_before: before(self.delivered_events_secs),
            batch: i64::from(self.batch_rows),
        }
    }
}

/// Runs until the process ends: prunes, then waits `interval`.
pub async fn run(state: AppState, settings: RetentionSettings) {
    loop {
        match prune_now(&state, &settings).await {
            Ok(r) if r != PruneReport::default() => {
                tracing::info!(
                    idempotency = r.idempotency,
                    notifications = r.notifications,
                    outbox = r.outbox,
                    "pruned expired rows"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning failed; retrying next interval"),
        }
        tokio::time::sleep(settings.interval()).await;
    }
}

/// Deletes everything past its retention, one batch per transaction with a
/// pause between, so a large backlog never holds the writer for long.
pub async fn prune_now(
    state: &AppState,
    settings: &RetentionSettings,
) -> Result<PruneReport, crate::store::StoreError> {
    let mut total = PruneReport::default();
    let policy = settings.policy(now_ms());
    loop {
        let r = state.store.prune(&policy).await?;
        state.metrics.pruned("idempotency", r.idempotency);
        state.metrics.pruned("notifications", r.notifications);
        state.metrics.pruned("outbox", r.outbox);
        total.idempotency += r.idempotency;
        total.notifications += r.notifications;
        total.outbox += r.outbox;
        if !r.full(policy.batch) {
            return Ok(total);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
