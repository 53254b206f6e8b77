//! Seeded, bounded fault injection shared by the simulators: what a
//! provider does to its callers on a bad day (API calls that hang, answer
//! 5xx or a "system error") and what it does to the notifications it sends
//! (lost, repeated, late, out of order).
//!
//! Every decision comes from one `fastrand` generator seeded by
//! [`FaultConfig::seed`], so a run can be repeated; the number of faults and
//! every wait are capped, so a faulty simulator still ends.

use std::time::Duration;

/// The longest a hang may last, whatever the configuration says: a
/// simulator must never hold a test (or a demo) for long.
pub const MAX_HANG: Duration = Duration::from_secs(30);
/// The longest a notification may be held back.
pub const MAX_NOTIFY_DELAY: Duration = Duration::from_secs(30);

/// Probabilities (0.0 to 1.0) of each fault, per API call or per
/// notification, and the bounds that keep a run finite.
#[derive(Debug, Clone)]
pub struct FaultConfig {
    pub seed: u64,
    /// The call hangs for [`hang`](Self::hang) before it is answered. Half
    /// of the hung calls were carried out (the answer is what is lost),
    /// half never were: a client cannot tell the two apart.
    pub api_timeout: f64,
    /// The call is answered HTTP 503 and not carried out.
    pub api_5xx: f64,
    /// The call is answered, signed, `result_code=FAIL` `SYSTEMERROR` and
    /// not carried out.
    pub api_system_error: f64,
    /// How long a hung call hangs: longer than the client's time-out.
    /// Capped at [`MAX_HANG`].
    pub hang: Duration,
    /// The notification is never sent (nor retried).
    pub notify_drop: f64,
    /// The notification is sent twice (the copy after a random delay).
    pub notify_duplicate: f64,
    /// The notification waits a random time up to
    /// [`max_notify_delay`](Self::max_notify_delay) before it is sent.
    pub notify_delay: f64,
    /// The notifications due at one moment are sent in shuffled order.
    pub notify_reorder: f64,
    /// Capped at [`MAX_NOTIFY_DELAY`].
    pub max_notify_delay: Duration,
    /// No more faults of any kind once this many were injected.
    pub max_faults: u64,
}

impl FaultConfig {
    /// No faults: what a simulator does unless told otherwise.
    pub fn none() -> Self {
        FaultConfig {
            seed: 0,
            api_timeout: 0.0,
            api_5xx: 0.0,
            api_system_error: 0.0,
            hang: Duration::from_secs(2),
            notify_drop: 0.0,
            notify_duplicate: 0.0,
            notify_delay: 0.0,
            notify_reorder: 0.0,
            max_notify_delay: Duration::from_secs(1),
            max_faults: 0,
        }
    }
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self::none()
    }
}

/// How many faults of each kind were injected so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Hung calls that had been carried out.
    pub timeouts_applied: u64,
    /// Hung calls that had not.
    pub timeouts_unapplied: u64,
    pub http_5xx: u64,
    pub system_errors: u64,
    pub notify_dropped: u64,
    pub notify_duplicated: u64,
    pub notify_delayed: u64,
    /// Batches of due notifications sent in shuffled order.
    pub notify_reordered: u64,
}

impl FaultCounts {
    pub fn total(&self) -> u64 {
        self.timeouts_applied
            + self.timeouts_unapplied
            + self.http_5xx
            + self.system_errors
            + self.notify_dropped
            + self.notify_duplicated
            + self.notify_delayed
            + self.notify_reordered
    }
}

impl std::fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "timeouts {} (applied {}, not applied {}), 5xx {}, SYSTEMERROR {}, \
             notifications dropped {}, duplicated {}, delayed {}, reordered batches {}",
            self.timeouts_applied + self.timeouts_unapplied,
            self.timeouts_applied,
            self.timeouts_unapplied,
            self.http_5xx,
            self.system_errors,
            self.notify_dropped,
            self.notify_duplicated,
            self.notify_delayed,
            self.notify_reordered
        )
    }
}

/// What happens to one API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFault {
    None,
    /// Hang, then answer; `applied` says whether the call was carried out.
    Timeout {
        applied: bool,
    },
    Http5xx,
    SystemError,
}

/// What happens to one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyFault {
    pub drop: bool,
    /// Wait before the first send.
    pub delay: Duration,
    /// Send a copy after this wait too.
    pub duplicate_after: Option<Duration>,
}

/// The seeded decisions and their tally.
pub struct Faults {
    config: FaultConfig,
    rng: fastrand::Rng,
    counts: FaultCounts,
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        Faults {
            rng: fastrand::Rng::with_seed(config.seed),
            config,
            counts: FaultCounts::default(),
        }
    }

    pub fn counts(&self) -> FaultCounts {
        self.counts.clone()
    }

    pub fn hang(&self) -> Duration {
        self.config.hang.min(MAX_HANG)
    }

    fn budget_left(&self) -> bool {
        self.counts.total() < self.config.max_faults
    }

    fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.budget_left() && self.rng.f64() < p
    }

    /// Decides the fate of one API call.
    pub fn api_call(&mut self) -> ApiFault {
        if self.roll(self.config.api_timeout) {
            let applied = self.rng.bool();
            if applied {
                self.counts.timeouts_applied += 1;
            } else {
                self.counts.timeouts_unapplied += 1;
            }
            ApiFault::Timeout { applied }
        } else if self.roll(self.config.api_5xx) {
            self.counts.http_5xx += 1;
            ApiFault::Http5xx
        } else if self.roll(self.config.api_system_error) {
            self.counts.system_errors += 1;
            ApiFault::SystemError
        } else {
            ApiFault::None
        }
    }

    fn random_delay(&mut self) -> Duration {
        let max = self.config.max_notify_delay.min(MAX_NOTIFY_DELAY);
        let ms = max.as_millis().max(1) as u64;
        Duration::from_millis(self.rng.u64(1..=ms))
    }

    /// Decides the fate of one notification.
    pub fn notification(&mut self) -> NotifyFault {
        if self.roll(self.config.notify_drop) {
            self.counts.notify_dropped += 1;
            return NotifyFault {
                drop: true,
                delay: Duration::ZERO,
                duplicate_after: None,
            };
        }
        let delay = if self.roll(self.config.notify_delay) {
            self.counts.notify_delayed += 1;
            self.random_delay()
        } else {
            Duration::ZERO
        };
        let duplicate_after = if self.roll(self.config.notify_duplicate) {
            self.counts.notify_duplicated += 1;
            Some(delay + self.random_delay())
        } else {
            None
        };
        NotifyFault {
            drop: false,
            delay,
            duplicate_after,
        }
    }

    /// Shuffles a batch of due notifications, sometimes.
    pub fn maybe_reorder<T>(&mut self, batch: &mut [T]) {
        if batch.len() > 1 && self.roll(self.config.notify_reorder) {
            self.counts.notify_reordered += 1;
            self.rng.shuffle(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(seed: u64) -> FaultConfig {
        FaultConfig {
            seed,
            api_timeout: 0.1,
            api_5xx: 0.1,
            api_system_error: 0.1,
            notify_drop: 0.1,
            notify_duplicate: 0.1,
            notify_delay: 0.2,
            notify_reorder: 0.5,
            max_faults: 1_000_000,
            ..FaultConfig::none()
        }
    }

    fn run(config: FaultConfig) -> (Vec<ApiFault>, Vec<NotifyFault>, FaultCounts) {
        let mut f = Faults::new(config);
        let api = (0..1000).map(|_| f.api_call()).collect();
        let notes = (0..1000).map(|_| f.notification()).collect();
        (api, notes, f.counts())
    }

    #[test]
    fn the_same_seed_gives_the_same_faults_and_another_seed_others() {
        let a = run(busy(7));
        assert_eq!(a, run(busy(7)));
        assert_ne!(a.0, run(busy(8)).0);
        let c = &a.2;
        // Each kind fires near its probability (0.1 of 1000, after the
        // kinds checked before it).
        for n in [c.http_5xx, c.system_errors, c.notify_dropped] {
            assert!((40..=160).contains(&n), "{c:?}");
        }
        assert!((50..=150).contains(&(c.timeouts_applied + c.timeouts_unapplied)));
        assert!(c.timeouts_applied > 0 && c.timeouts_unapplied > 0, "{c:?}");
    }

    #[test]
    fn faults_stop_at_the_budget_and_waits_are_capped() {
        let mut config = busy(1);
        config.max_faults = 25;
        config.hang = Duration::from_secs(3600);
        config.max_notify_delay = Duration::from_secs(3600);
        let (api, notes, counts) = run(config.clone());
        assert_eq!(counts.total(), 25);
        assert!(api[500..].iter().all(|f| *f == ApiFault::None));
        assert!(notes.iter().all(|n| n.delay <= MAX_NOTIFY_DELAY
            && n.duplicate_after.is_none_or(|d| d <= 2 * MAX_NOTIFY_DELAY)));
        assert_eq!(Faults::new(config).hang(), MAX_HANG);
        let (api, notes, counts) = run(FaultConfig::none());
        assert_eq!(counts.total(), 0);
        assert!(api.iter().all(|f| *f == ApiFault::None));
        assert!(notes.iter().all(|n| !n.drop && n.delay.is_zero()));
    }
}
