//! Provider health: a merchant's provider endpoint that keeps failing is
//! replaced by the backup the operator configured (WeChat Pay's `api2`
//! for `api`), with an alarm, until a probe finds the primary answering
//! again.
//!
//! It lives in the host, under every adapter: the adapter builds its URLs
//! from the primary as always, and the host changes only the origin
//! (scheme, host, port) of a request bound for a failed primary. Path,
//! query, headers and body stay as the adapter signed them, which is why
//! both ends must be bare origins: WeChat Pay v3 signs the path.
//!
//! A failure is a request that got no HTTP answer (refused, reset,
//! timed out, TLS failed) or a 5xx answer; any other answer, a
//! business refusal included, shows the provider up and resets the count.
//! Each replica keeps its own view, in memory: after a restart it starts
//! on the primary and switches again after as many failures.

use crate::egress::HostPort;
use crate::resources::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// Failures in a row that switch a merchant to its backup, by default.
pub const DEFAULT_AFTER_FAILURES: u32 = 5;
/// How often a failed primary is probed, by default.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(30);
/// Operator events kept for `GET /admin/events`; older ones are dropped.
pub const MAX_EVENTS: usize = 1000;

/// `[merchants.failover]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverRule {
    /// `https://api.mch.weixin.qq.com`: no path, no trailing slash.
    pub primary: String,
    pub backup: String,
    pub after_failures: u32,
    pub probe_interval: Duration,
    /// Where on the primary the probe asks (`GET`); any answer below 500
    /// counts as up.
    pub probe_path: String,
}

impl FailoverRule {
    /// Checks one rule; an error names the field and the fix.
    pub fn new(
        primary: &str,
        backup: &str,
        after_failures: u32,
        probe_interval: Duration,
        probe_path: &str,
    ) -> Result<Self, (&'static str, String)> {
        let primary = origin(primary).map_err(|p| ("failover.primary", p))?;
        let backup = origin(backup).map_err(|p| ("failover.backup", p))?;
        if primary == backup {
            return Err((
                "failover.backup",
                "is the same origin as `primary`; name the provider's other endpoint".into(),
            ));
        }
        if !(1..=1000).contains(&after_failures) {
            return Err(("failover.after_failures", "must be 1 to 1000".into()));
        }
        if probe_interval < Duration::from_millis(50) || probe_interval > Duration::from_secs(3600)
        {
            return Err((
                "failover.probe_interval_ms",
                "must be 50 to 3600000 (50 ms to an hour)".into(),
            ));
        }
        if !probe_path.starts_with('/') || probe_path.len() > 256 || probe_path.contains('#') {
            return Err((
                "failover.probe_path",
                "must be a path starting with `/` (at most 256 characters, no fragment)".into(),
            ));
        }
        Ok(Self {
            primary,
            backup,
            after_failures,
            probe_interval,
            probe_path: probe_path.into(),
        })
    }

    /// The hosts the operator named, which egress allows for this merchant
    /// as it allows the hosts of the merchant's configured URLs.
    fn hosts(&self) -> Vec<HostPort> {
        [&self.primary, &self.backup]
            .into_iter()
            .filter_map(|o| reqwest::Url::parse(o).ok())
            .filter_map(|u| Some(HostPort::new(u.host_str()?, u.port_or_known_default())))
            .collect()
    }
}

/// `text` as a bare http(s) origin (`scheme://host[:port]`).
fn origin(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{text}` must be an http(s) URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{text}` must not carry `user:password@`"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}` must be an origin only (`https://host[:port]`): payhost swaps the origin \
             and keeps the adapter's path, which providers such as WeChat Pay v3 sign"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

fn origin_of(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}

/// Something the operator should see, kept for `GET /admin/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OperatorEvent {
    /// Increases by one per event of this process.
    pub id: u64,
    pub at: Timestamp,
    /// `provider_failover`: the merchant's requests now go to `to`;
    /// `provider_recovered`: a probe found the primary up, requests go
    /// back to it.
    pub kind: String,
    pub merchant: String,
    pub from: String,
    pub to: String,
    /// Why, in words (the last failure, masked as logs are).
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MerchantLabels {
    merchant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    merchant: String,
    /// `primary` or `backup`.
    endpoint: String,
}

#[derive(Default)]
struct HealthMetrics {
    failures: Family<EndpointLabels, Counter>,
    failovers: Family<MerchantLabels, Counter>,
    on_backup: Family<MerchantLabels, Gauge>,
}

#[derive(Default)]
struct MerchantHealth {
    /// Failures of the primary in a row.
    consecutive: u32,
    /// Set while requests go to the backup: when to probe next.
    next_probe: Option<Instant>,
}

/// What one exchange with a provider came to, as health counts it.
pub enum Outcome<'a> {
    /// An HTTP answer with this status.
    Answered(u16),
    /// No answer; the error as the caller will see it.
    Failed(&'a str),
}

/// Every merchant's failover rule and where its requests go now.
pub struct ProviderHealth {
    rules: BTreeMap<String, FailoverRule>,
    hosts: HashMap<String, Vec<HostPort>>,
    state: Mutex<HashMap<String, MerchantHealth>>,
    events: Mutex<(u64, VecDeque<OperatorEvent>)>,
    metrics: HealthMetrics,
}

impl std::fmt::Debug for ProviderHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderHealth")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl ProviderHealth {
    pub fn new(rules: BTreeMap<String, FailoverRule>) -> Self {
        let hosts = rules.iter().map(|(m, r)| (m.clone(), r.hosts())).collect();
        Self {
            rules,
            hosts,
            state: Mutex::new(HashMap::new()),
            events: Mutex::new((0, VecDeque::new())),
            metrics: HealthMetrics::default(),
        }
    }

    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The shortest probe interval: how often the probe task looks.
    pub fn tick(&self) -> Option<Duration> {
        self.rules.values().map(|r| r.probe_interval).min()
    }

    /// The primary and backup hosts of `merchant`'s rule.
    pub fn allowed_hosts(&self, merchant: &str) -> &[HostPort] {
        self.hosts.get(merchant).map(Vec::as_slice).unwrap_or(&[])
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HashMap<String, MerchantHealth>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `merchant`'s requests go to its backup now.
    pub fn on_backup(&self, merchant: &str) -> bool {
        self.state()
            .get(merchant)
            .is_some_and(|s| s.next_probe.is_some())
    }

    /// Where a request of `merchant` for `url` goes: to the backup's
    /// origin while the primary is failed, else where the adapter said.
    pub fn route(&self, merchant: &str, mut url: reqwest::Url) -> reqwest::Url {
        let Some(rule) = self.rules.get(merchant) else {
            return url;
        };
        if origin_of(&url) != rule.primary || !self.on_backup(merchant) {
            return url;
        }
        if let Ok(backup) = reqwest::Url::parse(&rule.backup) {
            // Both are checked origins of http(s) URLs: these cannot fail.
            let _ = url.set_scheme(backup.scheme());
            let _ = url.set_host(backup.host_str());
            let _ = url.set_port(backup.port());
        }
        url
    }

    /// Counts one exchange of `merchant` with `url` (after [`route`]).
    ///
    /// [`route`]: Self::route
    pub fn record(&self, merchant: &str, url: &reqwest::Url, outcome: Outcome<'_>) {
        let Some(rule) = self.rules.get(merchant) else {
            return;
        };
        let origin = origin_of(url);
        let endpoint = if origin == rule.primary {
            "primary"
        } else if origin == rule.backup {
            "backup"
        } else {
            return;
        };
        let failure = match outcome {
            Outcome::Answered(status) if status >= 500 => Some(format!("HTTP {status}")),
            Outcome::Answered(_) => None,
            Outcome::Failed(e) => Some(e.to_string()),
        };
        let Some(failure) = failure else {
            if endpoint == "primary"
                && let Some(s) = self.state().get_mut(merchant)
            {
                s.consecutive = 0;
            }
            return;
        };
        self.metrics
            .failures
            .get_or_create(&EndpointLabels {
                merchant: merchant.into(),
                endpoint: endpoint.into(),
            })
            .inc();
        if endpoint == "backup" {
            tracing::warn!(merchant, backup = %rule.backup, error = %failure,
                "the backup provider endpoint failed too");
            return;
        }
        let switched = {
            let mut state = self.state();
            let s = state.entry(merchant.to_string()).or_default();
            if s.next_probe.is_some() {
                false
            } else {
                s.consecutive += 1;
                if s.consecutive >= rule.after_failures {
                    s.next_probe = Some(Instant::now() + rule.probe_interval);
                    true
                } else {
                    false
                }
            }
        };
        if switched {
            let reason = format!(
                "{} failures in a row; the last: {failure}",
                rule.after_failures
            );
            tracing::warn!(merchant, primary = %rule.primary, backup = %rule.backup, %reason,
                "provider endpoint failing: requests switched to the backup");
            self.metrics
                .failovers
                .get_or_create(&MerchantLabels {
                    merchant: merchant.into(),
                })
                .inc();
            self.set_gauge(merchant, 1);
            self.push_event(
                "provider_failover",
                merchant,
                &rule.primary,
                &rule.backup,
                reason,
            );
        }
    }

    fn set_gauge(&self, merchant: &str, value: i64) {
        self.metrics
            .on_backup
            .get_or_create(&MerchantLabels {
                merchant: merchant.into(),
            })
            .set(value);
    }

    fn push_event(&self, kind: &str, merchant: &str, from: &str, to: &str, reason: String) {
        let mut guard = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let (next_id, events) = &mut *guard;
        *next_id += 1;
        if events.len() == MAX_EVENTS {
            events.pop_front();
        }
        events.push_back(OperatorEvent {
            id: *next_id,
            at: Timestamp(crate::clock::now_ms()),
            kind: kind.into(),
            merchant: merchant.into(),
            from: from.into(),
            to: to.into(),
            reason,
        });
    }

    /// The operator events kept, oldest first.
    pub fn events(&self) -> Vec<OperatorEvent> {
        let guard = self.events.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.iter().cloned().collect()
    }

    /// The probes due now: each failed primary whose interval has passed,
    /// with the URL to ask. Each is scheduled again at once, so a slow
    /// probe is never doubled.
    pub fn due_probes(&self) -> Vec<(String, reqwest::Url)> {
        let now = Instant::now();
        let mut state = self.state();
        let mut due = Vec::new();
        for (merchant, s) in state.iter_mut() {
            let Some(rule) = self.rules.get(merchant) else {
                continue;
            };
            if s.next_probe.is_some_and(|t| t <= now) {
                s.next_probe = Some(now + rule.probe_interval);
                if let Ok(url) =
                    reqwest::Url::parse(&format!("{}{}", rule.primary, rule.probe_path))
                {
                    due.push((merchant.clone(), url));
                }
            }
        }
        due
    }

    /// A probe's result: an answer below 500 switches `merchant` back.
    pub fn probed(&self, merchant: &str, outcome: Outcome<'_>) {
        let Some(rule) = self.rules.get(merchant) else {
            return;
        };
        let status = match outcome {
            Outcome::Answered(status) if status < 500 => status,
            Outcome::Answered(status) => {
                tracing::info!(merchant, primary = %rule.primary, status, "provider probe: still failing");
                return;
            }
            Outcome::Failed(e) => {
                tracing::info!(merchant, primary = %rule.primary, error = %e, "provider probe: still failing");
                return;
            }
        };
        let recovered = {
            let mut state = self.state();
            let s = state.entry(merchant.to_string()).or_default();
            let was = s.next_probe.take().is_some();
            s.consecutive = 0;
            was
        };
        if recovered {
            tracing::warn!(merchant, primary = %rule.primary, status,
                "provider endpoint answering again: requests switched back to the primary");
            self.set_gauge(merchant, 0);
            self.push_event(
                "provider_recovered",
                merchant,
                &rule.backup,
                &rule.primary,
                format!(
                    "a probe of {}{} was answered HTTP {status}",
                    rule.primary, rule.probe_path
                ),
            );
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "provider_failures",
            "Provider exchanges without an answer or with a 5xx, by merchant and endpoint (merchants with a failover rule)",
            self.metrics.failures.clone(),
        );
        registry.register(
            "provider_failovers",
            "Switches of a merchant's requests to its backup endpoint",
            self.metrics.failovers.clone(),
        );
        registry.register(
            "provider_on_backup",
            "1 while a merchant's requests go to its backup endpoint",
            self.metrics.on_backup.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(after: u32) -> FailoverRule {
        FailoverRule::new(
            "https://api.mch.weixin.qq.com",
            "https://api2.mch.weixin.qq.com",
            after,
            Duration::from_millis(50),
            "/",
        )
        .unwrap()
    }

    fn health(after: u32) -> ProviderHealth {
        ProviderHealth::new(BTreeMap::from([("shop".to_string(), rule(after))]))
    }

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    const ORDER: &str = "https://api.mch.weixin.qq.com/pay/unifiedorder?x=1";

    #[test]
    fn rules_take_bare_origins_only() {
        let bad = |p: &str, b: &str| {
            FailoverRule::new(p, b, 5, DEFAULT_PROBE_INTERVAL, "/")
                .unwrap_err()
                .0
        };
        assert_eq!(
            bad("https://a.example/v3", "https://b.example"),
            "failover.primary"
        );
        assert_eq!(
            bad("https://a.example", "https://b.example?x"),
            "failover.backup"
        );
        assert_eq!(
            bad("ftp://a.example", "https://b.example"),
            "failover.primary"
        );
        assert_eq!(
            bad("https://u:p@a.example", "https://b.example"),
            "failover.primary"
        );
        assert_eq!(
            bad("https://a.example", "https://a.example/"),
            "failover.backup"
        );
        let e = FailoverRule::new(
            "https://a.example",
            "https://b.example",
            0,
            DEFAULT_PROBE_INTERVAL,
            "/",
        );
        assert_eq!(e.unwrap_err().0, "failover.after_failures");
        let e = FailoverRule::new(
            "https://a.example",
            "https://b.example",
            5,
            Duration::from_millis(1),
            "/",
        );
        assert_eq!(e.unwrap_err().0, "failover.probe_interval_ms");
        let e = FailoverRule::new(
            "https://a.example",
            "https://b.example",
            5,
            DEFAULT_PROBE_INTERVAL,
            "ping",
        );
        assert_eq!(e.unwrap_err().0, "failover.probe_path");
        // A trailing slash and default port are the same origin.
        let r = FailoverRule::new(
            "https://a.example:443/",
            "http://127.0.0.1:8080",
            5,
            DEFAULT_PROBE_INTERVAL,
            "/",
        )
        .unwrap();
        assert_eq!(r.primary, "https://a.example");
        assert_eq!(r.backup, "http://127.0.0.1:8080");
    }

    #[test]
    fn the_nth_failure_in_a_row_switches_to_the_backup_keeping_path_and_query() {
        let h = health(3);
        for _ in 0..2 {
            h.record("shop", &url(ORDER), Outcome::Failed("timed out"));
        }
        assert_eq!(h.route("shop", url(ORDER)).as_str(), ORDER);
        h.record("shop", &url(ORDER), Outcome::Answered(503));
        assert!(h.on_backup("shop"));
        assert_eq!(
            h.route("shop", url(ORDER)).as_str(),
            "https://api2.mch.weixin.qq.com/pay/unifiedorder?x=1"
        );
        // Other origins and other merchants are left alone.
        let other = "https://example.com/pay";
        assert_eq!(h.route("shop", url(other)).as_str(), other);
        assert_eq!(h.route("other", url(ORDER)).as_str(), ORDER);
        let events = h.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "provider_failover");
        assert_eq!(events[0].to, "https://api2.mch.weixin.qq.com");
        assert!(
            events[0].reason.contains("HTTP 503"),
            "{}",
            events[0].reason
        );
    }

    #[test]
    fn an_answer_resets_the_count_and_a_business_refusal_is_an_answer() {
        let h = health(2);
        h.record("shop", &url(ORDER), Outcome::Failed("refused"));
        h.record("shop", &url(ORDER), Outcome::Answered(400));
        h.record("shop", &url(ORDER), Outcome::Failed("refused"));
        assert!(!h.on_backup("shop"));
        h.record("shop", &url(ORDER), Outcome::Failed("refused"));
        assert!(h.on_backup("shop"));
    }

    #[test]
    fn failures_of_the_backup_never_switch_again_and_only_a_probe_switches_back() {
        let h = health(1);
        h.record("shop", &url(ORDER), Outcome::Failed("refused"));
        let backup = h.route("shop", url(ORDER));
        for _ in 0..5 {
            h.record("shop", &backup, Outcome::Failed("refused"));
        }
        // A late success of a request still bound for the primary does not
        // switch back either: only a probe does.
        h.record("shop", &url(ORDER), Outcome::Answered(200));
        assert!(h.on_backup("shop"));
        assert_eq!(h.events().len(), 1);
        assert!(h.due_probes().is_empty(), "not due before the interval");
        std::thread::sleep(Duration::from_millis(60));
        let due = h.due_probes();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.as_str(), "https://api.mch.weixin.qq.com/");
        assert!(h.due_probes().is_empty(), "rescheduled at once");
        h.probed("shop", Outcome::Answered(503));
        assert!(h.on_backup("shop"));
        h.probed("shop", Outcome::Answered(404));
        assert!(!h.on_backup("shop"));
        assert_eq!(h.route("shop", url(ORDER)).as_str(), ORDER);
        let kinds: Vec<_> = h.events().into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["provider_failover", "provider_recovered"]);
    }

    #[test]
    fn the_event_list_is_bounded() {
        let h = health(1);
        for _ in 0..MAX_EVENTS + 10 {
            h.record("shop", &url(ORDER), Outcome::Failed("x"));
            h.probed("shop", Outcome::Answered(200));
        }
        let events = h.events();
        assert_eq!(events.len(), MAX_EVENTS);
        assert_eq!(events.last().unwrap().id, 2 * (MAX_EVENTS as u64 + 10));
    }
}
