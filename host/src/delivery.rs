//! Delivers the outbox of merchant webhooks: every order or refund change
//! committed with an event is POSTed to the merchant's callback URL,
//! signed as Standard Webhooks specifies, and retried with back-off until a
//! 2xx or the configured give-up. The outbox lives in the store, so
//! deliveries survive restarts.

use crate::api::{AppState, now_ms};
use crate::webhooks::{self, Backoff};
use std::time::Duration;

/// Runs until the process ends: delivers what is due, then waits `tick`.
pub async fn run(state: AppState, backoff: Backoff, timeout: Duration, tick: Duration) {
    let client = match webhooks::client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery cannot start");
            return;
        }
    };
    loop {
        match deliver_due(&state, &client, &backoff, timeout).await {
            Ok(0) => tokio::time::sleep(tick).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "webhook delivery pass failed");
                tokio::time::sleep(tick).await;
            }
        }
    }
}

/// One pass over due events; returns how many were attempted.
pub async fn deliver_due(
    state: &AppState,
    client: &reqwest::Client,
    backoff: &Backoff,
    timeout: Duration,
) -> Result<usize, crate::store::StoreError> {
    let due = state.store.due_events(now_ms(), 32).await?;
    let n = due.len();
    for event in due {
        let Some(merchant) = state.merchants.get(&event.merchant_id) else {
            continue;
        };
        let (Some(url), Some(secret)) = (&merchant.callback_url, &merchant.webhook_secret) else {
            // Nowhere to deliver: keep the event visible in /v1/events.
            state
                .store
                .mark_failed(event.id, "the merchant has no callback_url", i64::MAX, true)
                .await?;
            continue;
        };
        let body = webhooks::Event {
            id: &event.event_id,
            event_type: &event.event_type,
            payload: &event.payload,
        };
        let result =
            webhooks::deliver_within(timeout, client, url, &body, secret, now_ms() / 1000).await;
        match result {
            Ok(status) => {
                tracing::info!(event = %event.event_id, merchant = %event.merchant_id, status, "webhook delivered");
                state.store.mark_delivered(event.id, now_ms()).await?;
            }
            Err(e) => {
                let attempts = event.attempts + 1;
                let give_up = backoff.gives_up(attempts as u32);
                let delay = backoff.delay(attempts as u32, &mut rand::rng());
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
    Ok(n)
}
