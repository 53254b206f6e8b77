//! Delivers the outbox of merchant webhooks: every order or refund change
//! committed with an event is POSTed to the merchant's callback URL,
//! signed as Standard Webhooks specifies, and retried with back-off until a
//! 2xx or the configured give-up. The outbox lives in the store, so
//! deliveries survive restarts.
//!
//! Merchants are delivered to concurrently (at most
//! `webhooks.max_concurrent` at once), each merchant's events in order by
//! one task, so a merchant whose endpoint hangs holds only its own task.
//! Replicas sharing a PostgreSQL store each run this worker; the store
//! leases the events it hands one of them (`Store::due_events_of`).
//! Events that can never be delivered -- their merchant is no longer
//! configured, or has no callback URL -- are marked `undeliverable` with
//! the reason instead of being read again and again; when the merchant is
//! configured again (with a callback URL), the next start revives them.

use crate::api::{AppState, Merchant, now_ms};
use crate::store::StoreError;
use crate::webhooks::{self, Backoff};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How often the outbox is read when nothing finished meanwhile.
pub const TICK: Duration = Duration::from_millis(200);

/// Events one merchant task reads at a time.
const BATCH: i64 = 16;

/// How long a replica holds a batch it took from a shared outbox: every
/// attempt of the batch at its time-out, and one more for the writes
/// around them. A replica still delivering keeps its events; those of a
/// replica that died are delivered by another once this has passed.
fn lease_ms(timeout: Duration) -> i64 {
    (timeout.as_millis() as i64).saturating_mul(BATCH + 1)
}

/// Why an event cannot be delivered (the `undeliverable` word).
pub const NOT_CONFIGURED: &str = "merchant_not_configured";
pub const NO_CALLBACK: &str = "no_callback_url";

/// How the worker delivers.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub backoff: Backoff,
    /// Per attempt.
    pub timeout: Duration,
    /// Merchants delivered to at the same time.
    pub max_concurrent: usize,
    pub tick: Duration,
}

/// Runs until the process ends.
pub async fn run(state: AppState, settings: Settings) {
    let client = match webhooks::client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery cannot start");
            return;
        }
    };
    revive(&state).await;
    let mut busy = Busy::default();
    let mut tasks: JoinSet<usize> = JoinSet::new();
    loop {
        if let Err(e) = dispatch(&state, &client, &settings, &mut busy, &mut tasks).await {
            tracing::warn!(error = %e, "webhook delivery pass failed");
        }
        // Wait for the tick, or for a merchant task that delivered
        // something (its merchant may have more due): never a busy loop.
        let sleep = tokio::time::sleep(settings.tick);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    if busy.finish(done) {
                        break;
                    }
                }
            }
        }
        while let Some(done) = tasks.try_join_next_with_id() {
            busy.finish(done);
        }
    }
}

/// The merchants that have a delivery task running, by task.
#[derive(Default)]
struct Busy(HashMap<tokio::task::Id, String>);

impl Busy {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn contains(&self, merchant: &str) -> bool {
        self.0.values().any(|m| m == merchant)
    }

    /// Frees a finished task's merchant; true if it attempted any event.
    fn finish(&mut self, done: Result<(tokio::task::Id, usize), tokio::task::JoinError>) -> bool {
        match done {
            Ok((id, attempted)) => {
                self.0.remove(&id);
                attempted > 0
            }
            Err(e) => {
                let merchant = self.0.remove(&e.id());
                tracing::error!(error = %e, ?merchant, "a webhook delivery task failed");
                false
            }
        }
    }
}

/// Makes events deliverable again whose cause went away since they were
/// marked: the merchant is configured again, with a callback URL.
async fn revive(state: &AppState) {
    for merchant in state.merchants.values() {
        let mut reasons = vec![NOT_CONFIGURED];
        if merchant.callback_url.is_some() && merchant.webhook_secret.is_some() {
            reasons.push(NO_CALLBACK);
        }
        for reason in reasons {
            match state
                .store
                .revive_undeliverable(&merchant.id, reason, now_ms())
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(merchant = %merchant.id, reason, events = n, "undeliverable webhook events revived")
                }
                Err(e) => {
                    tracing::warn!(merchant = %merchant.id, error = %e, "cannot revive undeliverable webhook events")
                }
            }
        }
    }
}

/// One look at the outbox: starts a task for every merchant with due
/// events that has none running, up to the cap, and marks the events of
/// merchants that cannot be delivered to.
async fn dispatch(
    state: &AppState,
    client: &reqwest::Client,
    settings: &Settings,
    busy: &mut Busy,
    tasks: &mut JoinSet<usize>,
) -> Result<(), StoreError> {
    state.metrics.delivery_pass();
    if busy.len() >= settings.max_concurrent {
        return Ok(());
    }
    // Busy merchants are among the answers, so ask for more than the free
    // slots.
    let limit = (settings.max_concurrent + busy.len() + 16) as i64;
    for merchant_id in state.store.due_merchants(now_ms(), limit).await? {
        if busy.contains(&merchant_id) {
            continue;
        }
        let Some(merchant) = state.merchants.get(&merchant_id) else {
            undeliverable(
                state,
                &merchant_id,
                NOT_CONFIGURED,
                &format!("merchant `{merchant_id}` is not in the configuration"),
            )
            .await?;
            continue;
        };
        if merchant.callback_url.is_none() || merchant.webhook_secret.is_none() {
            undeliverable(
                state,
                &merchant_id,
                NO_CALLBACK,
                "the merchant has no callback_url (and webhook_secret)",
            )
            .await?;
            continue;
        }
        if busy.len() >= settings.max_concurrent {
            break;
        }
        let (state, client, merchant, settings) =
            (state.clone(), client.clone(), merchant.clone(), *settings);
        let task = tasks.spawn(async move {
            match deliver_merchant(&state, &client, &merchant, &settings).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(merchant = %merchant.id, error = %e, "webhook delivery failed in the store");
                    0
                }
            }
        });
        busy.0.insert(task.id(), merchant_id);
    }
    Ok(())
}

async fn undeliverable(
    state: &AppState,
    merchant: &str,
    reason: &str,
    detail: &str,
) -> Result<(), StoreError> {
    let n = state
        .store
        .mark_undeliverable(merchant, reason, detail)
        .await?;
    state.metrics.undeliverable(reason, n);
    tracing::warn!(
        merchant,
        reason,
        events = n,
        "webhook events marked undeliverable"
    );
    Ok(())
}

/// Delivers one merchant's due events in order until none is due; returns
/// how many were attempted.
async fn deliver_merchant(
    state: &AppState,
    client: &reqwest::Client,
    merchant: &Arc<Merchant>,
    settings: &Settings,
) -> Result<usize, StoreError> {
    let (Some(url), Some(secret)) = (&merchant.callback_url, &merchant.webhook_secret) else {
        return Ok(0);
    };
    let mut attempted = 0;
    loop {
        let due = state
            .store
            .due_events_of(&merchant.id, now_ms(), BATCH, lease_ms(settings.timeout))
            .await?;
        if due.is_empty() {
            return Ok(attempted);
        }
        for event in due {
            attempted += 1;
            let body = webhooks::Event {
                id: &event.event_id,
                event_type: &event.event_type,
                payload: &event.payload,
            };
            let result = webhooks::deliver_within(
                settings.timeout,
                client,
                url,
                &body,
                secret,
                now_ms() / 1000,
            )
            .await;
            match result {
                Ok(status) => {
                    tracing::info!(event = %event.event_id, merchant = %event.merchant_id, status, "webhook delivered");
                    state.store.mark_delivered(event.id, now_ms()).await?;
                }
                Err(e) => {
                    let attempts = event.attempts + 1;
                    let give_up = settings.backoff.gives_up(attempts as u32);
                    let delay = settings.backoff.delay(attempts as u32, &mut rand::rng());
                    tracing::warn!(event = %event.event_id, merchant = %event.merchant_id, attempts, give_up, error = %e, "webhook delivery failed");
                    state
                        .store
                        .mark_failed(
                            event.id,
                            &e.to_string(),
                            now_ms() + delay.as_millis() as i64,
                            give_up,
                        )
                        .await?;
                }
            }
        }
    }
}
