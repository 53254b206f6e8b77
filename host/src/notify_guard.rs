//! Bounds of the unauthenticated notify endpoint (`[notify]`): a body
//! limit, a per-merchant rate and concurrency, and how much of a
//! notification that did not verify is kept.
//!
//! Anyone can post to `/v1/notify/{adapter}/{merchant}`; only the adapter
//! can tell a provider's notification from a forgery, and it needs the
//! whole body to do so. So what a request may cost is bounded before the
//! adapter runs (size, rate, concurrency), and what a forgery leaves behind
//! afterwards (a truncated record, pruned after
//! `retention.unverified_notifications_secs`). Forgeries also have a budget
//! of their own (`unverified_per_min`): a merchant whose notifications
//! keep failing verification is refused outright until the budget refills,
//! so a flood costs at most that many adapter runs however fast it comes,
//! while genuine notifications never count against it. While a merchant
//! is closed, the accept loop answers its notifications on new connections
//! from their request line ([`NotifyGuard::closed_for_request`]), so the
//! rest of a flood costs little more than its connections. Refusing a genuine
//! notification in a flood loses nothing: providers retry until they are
//! acknowledged, and the reconciler queries orders whose notification is
//! overdue.

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter as Gcra};
use serde::Deserialize;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `[notify]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    /// Larger bodies are answered 413 (and recorded truncated).
    pub max_body_bytes: usize,
    /// A body not received within this is answered 408.
    pub body_timeout_ms: u64,
    /// Requests per minute per merchant (burst of the same size); 429 beyond.
    pub per_merchant_per_min: u32,
    /// Requests of one merchant in progress at once; 503 beyond.
    pub per_merchant_concurrent: u32,
    /// Notifications per minute per merchant that may fail verification;
    /// beyond it (after a burst of `unverified_burst`) every notification
    /// of that merchant is 429 until the budget refills.
    pub unverified_per_min: u32,
    pub unverified_burst: u32,
    /// Body bytes kept of a notification that did not verify.
    pub unverified_body_bytes: usize,
    /// Header (names and values), query string and detail bytes kept of a
    /// notification that did not verify.
    pub unverified_headers_bytes: usize,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            body_timeout_ms: 5_000,
            per_merchant_per_min: 1200,
            per_merchant_concurrent: 4,
            unverified_per_min: 60,
            unverified_burst: 10,
            unverified_body_bytes: 2048,
            unverified_headers_bytes: 1024,
        }
    }
}

impl NotifySettings {
    /// The first setting that cannot be used, as (field, problem).
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        let positive = [
            ("notify.max_body_bytes", self.max_body_bytes as u64),
            ("notify.body_timeout_ms", self.body_timeout_ms),
            (
                "notify.per_merchant_per_min",
                u64::from(self.per_merchant_per_min),
            ),
            (
                "notify.per_merchant_concurrent",
                u64::from(self.per_merchant_concurrent),
            ),
            (
                "notify.unverified_per_min",
                u64::from(self.unverified_per_min),
            ),
            ("notify.unverified_burst", u64::from(self.unverified_burst)),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err((field, "must be greater than zero"));
        }
        if self.unverified_body_bytes > self.max_body_bytes {
            return Err((
                "notify.unverified_body_bytes",
                "must not be more than max_body_bytes",
            ));
        }
        Ok(())
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }
}

/// Why a notification was refused before the adapter saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("more than {per_min} notifications a minute for this merchant")]
    Rate { per_min: u32, retry_after: Duration },
    #[error("{concurrent} notifications for this merchant are already in progress")]
    Busy { concurrent: u32 },
    #[error("more than {per_min} notifications a minute for this merchant failed verification")]
    Unverified { per_min: u32, retry_after: Duration },
}

type Limiter = Gcra<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    DefaultClock,
    governor::middleware::NoOpMiddleware<<DefaultClock as Clock>::Instant>,
>;

struct Gate {
    rate: Limiter,
    slots: Arc<Semaphore>,
    unverified: Limiter,
    /// Set when `unverified` ran out: refuse everything until then.
    closed_until: Mutex<Option<Instant>>,
}

impl Gate {
    /// How long the forgery budget keeps this merchant closed from now.
    fn closed_for(&self) -> Option<Duration> {
        let closed = *self.closed_until.lock().unwrap_or_else(|p| p.into_inner());
        closed.and_then(|until| until.checked_duration_since(Instant::now()))
    }
}

/// One rate budget and one set of concurrency slots per configured
/// merchant, fixed at start (so lookups need no lock).
pub struct NotifyGuard {
    pub settings: NotifySettings,
    gates: HashMap<String, Gate>,
    /// The latest `closed_until` of any gate, in ms after `started`: lets
    /// the accept loop skip looking at a connection's first bytes while no
    /// merchant is closed (the usual case).
    closed_until_ms: AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for NotifyGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyGuard")
            .field("settings", &self.settings)
            .field("merchants", &self.gates.len())
            .finish()
    }
}

impl NotifyGuard {
    pub fn new<'a>(settings: NotifySettings, merchants: impl IntoIterator<Item = &'a str>) -> Self {
        let nonzero = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        let per_min = nonzero(settings.per_merchant_per_min);
        let unverified = Quota::per_minute(nonzero(settings.unverified_per_min))
            .allow_burst(nonzero(settings.unverified_burst));
        let gates = merchants
            .into_iter()
            .map(|id| {
                let gate = Gate {
                    rate: Gcra::direct(Quota::per_minute(per_min)),
                    slots: Arc::new(Semaphore::new(settings.per_merchant_concurrent as usize)),
                    unverified: Gcra::direct(unverified),
                    closed_until: Mutex::new(None),
                };
                (id.to_string(), gate)
            })
            .collect();
        Self {
            settings,
            gates,
            closed_until_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Whether some merchant's endpoint is closed for forgeries now.
    pub fn any_closed(&self) -> bool {
        let now = self.started.elapsed().as_millis() as u64;
        self.closed_until_ms.load(Ordering::Relaxed) > now
    }

    /// How long the merchant a request is for stays closed, read from the
    /// first bytes of its connection (`POST /v1/notify/{adapter}/{merchant}
    /// ...`). `None` for anything else, a request line not yet complete in
    /// `head` included: such a connection is served as usual, and answered
    /// by [`NotifyGuard::admit`] there.
    ///
    /// A flood of forgeries keeps coming after the budget closes the
    /// merchant; answering it here, before HTTP is parsed, a route matched
    /// or a problem document built, leaves the cores to the merchant's
    /// payments.
    pub fn closed_for_request(&self, head: &[u8]) -> Option<Duration> {
        let line = head
            .split(|b| *b == b'\n')
            .next()
            .filter(|_| head.contains(&b'\n'))?;
        let line = std::str::from_utf8(line).ok()?;
        let mut parts = line.split(' ');
        let (_method, target) = (parts.next()?, parts.next()?);
        let path = target.split('?').next()?;
        let mut segments = path.strip_prefix("/v1/notify/")?.split('/');
        let (_adapter, merchant) = (segments.next()?, segments.next()?);
        self.gates.get(merchant)?.closed_for()
    }

    /// Takes one request from `merchant`'s budget and one of its slots,
    /// held until the permit is dropped. A merchant that is not configured
    /// is answered 404 before this.
    pub fn admit(&self, merchant: &str) -> Result<Option<OwnedSemaphorePermit>, Refused> {
        let Some(gate) = self.gates.get(merchant) else {
            return Ok(None);
        };
        if let Some(left) = gate.closed_for() {
            return Err(Refused::Unverified {
                per_min: self.settings.unverified_per_min,
                retry_after: left,
            });
        }
        // The slot first: a request refused as busy keeps its rate budget.
        let permit = gate
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Busy {
                concurrent: self.settings.per_merchant_concurrent,
            })?;
        gate.rate.check().map_err(|not_until| Refused::Rate {
            per_min: self.settings.per_merchant_per_min,
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        })?;
        Ok(Some(permit))
    }

    /// Counts a notification of `merchant` that failed verification; past
    /// the budget, closes the merchant's endpoint until it refills.
    pub fn unverified(&self, merchant: &str) {
        let Some(gate) = self.gates.get(merchant) else {
            return;
        };
        if let Err(not_until) = gate.unverified.check() {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let until = Instant::now() + wait;
            let mut closed = gate.closed_until.lock().unwrap_or_else(|p| p.into_inner());
            if closed.is_none_or(|c| c < until) {
                *closed = Some(until);
            }
            let ms = until.duration_since(self.started).as_millis() as u64;
            self.closed_until_ms.fetch_max(ms, Ordering::Relaxed);
        }
    }

    /// Cuts a record of a notification that did not verify down to the
    /// configured sizes: a body prefix, headers in order while they fit
    /// (each value cut to fit), the query string and the detail text.
    pub fn truncate(&self, record: &mut crate::store::NotificationRecord) {
        let s = &self.settings;
        record.body.truncate(s.unverified_body_bytes);
        let mut budget = s.unverified_headers_bytes;
        record.query = cut(&record.query, &mut budget);
        record.detail = record.detail.as_deref().map(|d| cut(d, &mut budget));
        if let serde_json::Value::Array(headers) = &mut record.headers {
            let mut kept = Vec::new();
            for pair in headers.iter() {
                let Some([name, value]) = pair.as_array().and_then(|a| a.get(0..2)) else {
                    continue;
                };
                let (Some(name), Some(value)) = (name.as_str(), value.as_str()) else {
                    continue;
                };
                if name.len() >= budget {
                    break;
                }
                budget -= name.len();
                let value = cut(value, &mut budget);
                kept.push(serde_json::json!([name, value]));
            }
            *headers = kept;
        }
    }
}

/// The longest prefix of `text` within `budget` bytes (on a character
/// boundary); the budget is reduced by what was kept.
fn cut(text: &str, budget: &mut usize) -> String {
    let mut end = text.len().min(*budget);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    *budget -= end;
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NotificationRecord;

    fn record(body: usize, headers: &[(&str, String)], detail: &str) -> NotificationRecord {
        NotificationRecord {
            id: 0,
            merchant_id: "m".into(),
            adapter: "a".into(),
            received_at: 0,
            method: "POST".into(),
            path: "/v1/notify/a/m".into(),
            query: "q=1".into(),
            headers: serde_json::to_value(headers).unwrap(),
            body: vec![b'x'; body],
            verdict: "unverified".into(),
            detail: Some(detail.into()),
            merchant_order_no: None,
            received_bytes: body as i64,
        }
    }

    #[test]
    fn truncation_keeps_prefixes_within_the_sizes() {
        let guard = NotifyGuard::new(
            NotifySettings {
                unverified_body_bytes: 100,
                unverified_headers_bytes: 64,
                ..Default::default()
            },
            ["m"],
        );
        let mut r = record(
            5000,
            &[
                ("content-type", "text/xml".into()),
                ("x-long", "é".repeat(100)),
                ("x-dropped", "v".into()),
            ],
            "signature mismatch",
        );
        guard.truncate(&mut r);
        assert_eq!(r.body.len(), 100);
        assert_eq!(r.received_bytes, 5000);
        assert_eq!(r.query, "q=1");
        assert_eq!(r.detail.as_deref(), Some("signature mismatch"));
        let headers = r.headers.as_array().unwrap();
        assert_eq!(headers[0], serde_json::json!(["content-type", "text/xml"]));
        // 64 - 3 - 18 - 12 - 8 = 23 left for `x-long`: 6 + 17 bytes of
        // value, cut back to a character boundary (8 two-byte characters).
        assert_eq!(headers[1][1].as_str().unwrap(), "é".repeat(8));
        assert_eq!(headers.len(), 2, "{headers:?}");
    }

    #[test]
    fn rate_and_slots_per_merchant() {
        let guard = NotifyGuard::new(
            NotifySettings {
                per_merchant_per_min: 3,
                per_merchant_concurrent: 2,
                ..Default::default()
            },
            ["a", "b"],
        );
        let first = guard.admit("a").unwrap();
        let second = guard.admit("a").unwrap();
        assert_eq!(
            guard.admit("a").unwrap_err(),
            Refused::Busy { concurrent: 2 }
        );
        // Another merchant has its own slots and budget.
        assert!(guard.admit("b").unwrap().is_some());
        drop((first, second));
        assert!(guard.admit("a").is_ok());
        match guard.admit("a").unwrap_err() {
            Refused::Rate {
                per_min,
                retry_after,
            } => {
                assert_eq!(per_min, 3);
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(20));
            }
            other => panic!("{other:?}"),
        }
        assert!(guard.admit("b").is_ok());
    }

    #[test]
    fn forgeries_past_their_budget_close_the_merchant() {
        let guard = NotifyGuard::new(
            NotifySettings {
                unverified_per_min: 6,
                unverified_burst: 2,
                ..Default::default()
            },
            ["a", "b"],
        );
        for _ in 0..2 {
            assert!(guard.admit("a").is_ok());
            guard.unverified("a");
        }
        // The burst is spent but not exceeded: still open.
        assert!(guard.admit("a").is_ok());
        guard.unverified("a");
        match guard.admit("a").unwrap_err() {
            Refused::Unverified {
                per_min,
                retry_after,
            } => {
                assert_eq!(per_min, 6);
                // One more forgery is allowed every 10 s.
                assert!(retry_after <= Duration::from_secs(10), "{retry_after:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(guard.admit("b").is_ok());
    }

    #[test]
    fn a_closed_merchant_is_recognised_from_the_request_line() {
        let guard = NotifyGuard::new(
            NotifySettings {
                unverified_per_min: 6,
                unverified_burst: 1,
                ..Default::default()
            },
            ["a", "b"],
        );
        let head = b"POST /v1/notify/wechat-v2/a?x=1 HTTP/1.1\r\nhost: h\r\n";
        assert!(!guard.any_closed());
        assert_eq!(guard.closed_for_request(head), None);
        guard.unverified("a");
        guard.unverified("a");
        assert!(guard.any_closed());
        let left = guard.closed_for_request(head).expect("closed");
        assert!(left > Duration::ZERO && left <= Duration::from_secs(10));
        // Another merchant, another route, or a line not yet complete.
        for other in [
            &b"POST /v1/notify/wechat-v2/b HTTP/1.1\r\n"[..],
            b"POST /v1/payments HTTP/1.1\r\n",
            b"GET /v1/notify/wechat-v2/zz HTTP/1.1\r\n",
            b"POST /v1/notify/wechat-v2/a",
            b"\xff\xfe\n",
        ] {
            assert_eq!(guard.closed_for_request(other), None, "{other:?}");
        }
    }
}
