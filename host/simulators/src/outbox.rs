//! The notifications a simulator sends on its own, as a provider does after
//! a payment or a refund: queued, sent in the background, retried a few
//! times until acknowledged, and subject to the notification faults of
//! [`crate::faults`] (dropped, duplicated, delayed, reordered).
//!
//! Bounded: at most [`MAX_QUEUED`] notifications wait at once, each is sent
//! at most `max_attempts` times, every POST has a time-out, and the
//! dispatcher stops when its simulator is dropped.

use crate::faults::Faults;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Notifications waiting to be sent, at most.
pub const MAX_QUEUED: usize = 100_000;
/// POSTs in flight at once.
const CONCURRENCY: usize = 16;
/// How often the dispatcher looks for due notifications.
const TICK: Duration = Duration::from_millis(10);

/// Whether a receiver's answer `(status, body)` acknowledges the message.
pub type AckCheck = fn(u16, &str) -> bool;

/// What the outbox has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Notifications accepted for sending (dropped ones included).
    pub queued: u64,
    /// POSTs made (first sends, copies and retries).
    pub posts: u64,
    /// POSTs the receiver acknowledged.
    pub acknowledged: u64,
    /// Notifications given up after `max_attempts` unacknowledged sends.
    pub gave_up: u64,
}

struct Queued {
    due: Instant,
    url: String,
    body: String,
    attempts: u32,
}

pub struct Outbox {
    queue: Mutex<Vec<Queued>>,
    faults: Arc<Mutex<Faults>>,
    client: reqwest::Client,
    ack: AckCheck,
    max_attempts: u32,
    retry_after: Duration,
    in_flight: AtomicU64,
    stats: Mutex<OutboxStats>,
}

impl Outbox {
    pub fn new(faults: Arc<Mutex<Faults>>, ack: AckCheck) -> Arc<Outbox> {
        Arc::new(Outbox {
            queue: Mutex::new(Vec::new()),
            faults,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client"),
            ack,
            max_attempts: 4,
            retry_after: Duration::from_millis(300),
            in_flight: AtomicU64::new(0),
            stats: Mutex::new(OutboxStats::default()),
        })
    }

    fn queue(&self) -> MutexGuard<'_, Vec<Queued>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stats_mut(&self) -> MutexGuard<'_, OutboxStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stats(&self) -> OutboxStats {
        self.stats_mut().clone()
    }

    /// Queues `body` for `url`, after deciding its faults. Refused when
    /// [`MAX_QUEUED`] are already waiting.
    pub fn enqueue(&self, url: String, body: String) -> anyhow::Result<()> {
        let fault = self
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .notification();
        let mut queue = self.queue();
        if queue.len() >= MAX_QUEUED {
            anyhow::bail!("the simulator's outbox is full ({MAX_QUEUED} notifications)");
        }
        self.stats_mut().queued += 1;
        if fault.drop {
            return Ok(());
        }
        let now = Instant::now();
        if let Some(after) = fault.duplicate_after {
            queue.push(Queued {
                due: now + after,
                url: url.clone(),
                body: body.clone(),
                attempts: 0,
            });
        }
        queue.push(Queued {
            due: now + fault.delay,
            url,
            body,
            attempts: 0,
        });
        Ok(())
    }

    /// Nothing waits and nothing is being sent.
    pub fn idle(&self) -> bool {
        self.queue().is_empty() && self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// Starts the dispatcher; abort the handle to stop it.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let outbox = self.clone();
        tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
            loop {
                tokio::time::sleep(TICK).await;
                let mut due = outbox.take_due();
                outbox
                    .faults
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .maybe_reorder(&mut due);
                for item in due {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let outbox = outbox.clone();
                    tokio::spawn(async move {
                        outbox.send(item).await;
                        outbox.in_flight.fetch_sub(1, Ordering::SeqCst);
                        drop(permit);
                    });
                }
            }
        })
    }

    /// Removes the due notifications, oldest first, counting them in flight.
    fn take_due(&self) -> Vec<Queued> {
        let now = Instant::now();
        let mut queue = self.queue();
        let (mut due, rest): (Vec<_>, Vec<_>) = queue.drain(..).partition(|q| q.due <= now);
        *queue = rest;
        due.sort_by_key(|q| q.due);
        self.in_flight.fetch_add(due.len() as u64, Ordering::SeqCst);
        due
    }

    async fn send(&self, mut item: Queued) {
        item.attempts += 1;
        self.stats_mut().posts += 1;
        let answer = self
            .client
            .post(&item.url)
            .header("content-type", "text/xml")
            .body(item.body.clone())
            .send()
            .await;
        let acked = match answer {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                (self.ack)(status, &text)
            }
            Err(_) => false,
        };
        if acked {
            self.stats_mut().acknowledged += 1;
        } else if item.attempts >= self.max_attempts {
            self.stats_mut().gave_up += 1;
        } else {
            item.due = Instant::now() + self.retry_after * item.attempts;
            self.queue().push(item);
        }
    }
}
