//! The TOML sections as serde structs with their defaults, and the
//! settings they resolve to (see `validation`).

use crate::egress::{EgressPolicy, HostPort};
use crate::limits::{Industry, LimitSettings, MerchantLimits};
use crate::notify_guard::NotifySettings;
use crate::retention::RetentionSettings;
use crate::runtime::RuntimeConfig;
use crate::webhooks::Backoff;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::ApiKeyHash;
use super::store_url::RawStore;

/// Used when no file is given: a local host with no merchants. It names
/// no store, so `PAYHOST_STORE__URL` alone selects one (SQLite in
/// `payhost.db` otherwise).
pub const EMBEDDED_DEFAULT: &str = r#"
[server]
bind = "127.0.0.1:8080"

[runtime]
adapters_dir = "target/components"
"#;

// ---------------------------------------------------------------------------
// Sections without secrets: deserialized as they are.

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeSettings {
    /// Where `<adapter>.wasm` components are found.
    pub adapters_dir: PathBuf,
    pub cache_dir: Option<PathBuf>,
    pub memory_limit_mib: u64,
    pub step_deadline_ms: u64,
    /// Wall-clock bound of one whole adapter operation (all its steps and
    /// requests).
    pub operation_deadline_ms: u64,
    pub max_steps: usize,
    pub max_instances: u32,
    /// How many previous versions of each adapter stay loaded for rollback
    /// (versions a merchant is pinned to are kept in addition).
    pub keep_versions: usize,
    /// Install new or changed `<adapters_dir>/<name>.wasm` files while
    /// running.
    pub watch: bool,
    /// With a store replicas share (PostgreSQL), how often a replica checks
    /// it for adapter changes another replica published, in case an
    /// announcement was missed (they normally arrive at once).
    pub shared_check_ms: u64,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        // The runtime's own defaults, so the two cannot drift apart.
        let d = RuntimeConfig::default();
        Self {
            adapters_dir: "target/components".into(),
            cache_dir: None,
            memory_limit_mib: (d.memory_limit / (1024 * 1024)) as u64,
            step_deadline_ms: d.step_deadline.as_millis() as u64,
            operation_deadline_ms: d.operation_deadline.as_millis() as u64,
            max_steps: d.max_steps,
            max_instances: d.max_instances,
            keep_versions: 5,
            watch: true,
            shared_check_ms: crate::adapter_sync::CHECK_EVERY.as_millis() as u64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressSettings {
    pub allow_private: bool,
    pub extra_allowed_hosts: Vec<String>,
    pub timeout_ms: u64,
    pub max_response_kib: u64,
    /// PEM files of roots trusted for provider TLS besides the web roots.
    pub extra_root_certificates: Vec<PathBuf>,
}

impl Default for EgressSettings {
    fn default() -> Self {
        let d = EgressPolicy::default();
        Self {
            allow_private: d.allow_private,
            extra_allowed_hosts: d.extra_allowed_hosts,
            timeout_ms: d.timeout.as_millis() as u64,
            max_response_kib: (d.max_response_bytes / 1024) as u64,
            extra_root_certificates: d.extra_root_certificates,
        }
    }
}

/// `[adapters.<slot>]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawAdapterSlot {
    pub(super) egress: Vec<String>,
}

/// The operator's settings for one adapter slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdapterSlotSettings {
    /// The hosts and ports this slot's adapter may reach among those it
    /// declares; a version declaring a host outside this list is refused.
    pub egress: Vec<HostPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Attempts before an event is given up.
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Per delivery attempt.
    pub timeout_ms: u64,
    /// Merchants delivered to at the same time (each in order by one task).
    pub max_concurrent: u32,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            initial_backoff_ms: 1000,
            max_backoff_ms: 3_600_000,
            timeout_ms: 10_000,
            max_concurrent: 16,
        }
    }
}

impl WebhookSettings {
    pub fn backoff(&self) -> Backoff {
        Backoff {
            initial: Duration::from_millis(self.initial_backoff_ms),
            max: Duration::from_millis(self.max_backoff_ms),
            max_attempts: self.max_attempts,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// How the delivery worker runs.
    pub fn delivery(&self) -> crate::delivery::Settings {
        crate::delivery::Settings {
            backoff: self.backoff(),
            timeout: self.timeout(),
            max_concurrent: self.max_concurrent as usize,
            tick: crate::delivery::TICK,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcilerSettings {
    pub interval_ms: u64,
    /// How long after creation a notification counts as overdue; also how
    /// long an order still `created`, or a refund the provider accepted,
    /// waits before the provider is asked about it.
    pub notify_overdue_secs: u64,
    /// First wait between two polls of one order or refund; doubles up to
    /// `max_backoff_ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for ReconcilerSettings {
    fn default() -> Self {
        Self {
            interval_ms: 5000,
            notify_overdue_secs: 120,
            backoff_ms: 5_000,
            max_backoff_ms: 600_000,
        }
    }
}

impl ReconcilerSettings {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }
    pub fn notify_overdue(&self) -> Duration {
        Duration::from_secs(self.notify_overdue_secs)
    }
}

/// `[log]`: how `payhost serve` writes its logs (`--log-format` wins).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json` (one JSON object per line).
    pub format: crate::logging::LogFormat,
}

// ---------------------------------------------------------------------------
// Sections with secrets: read raw, then resolved.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) runtime: RuntimeSettings,
    #[serde(default)]
    pub(super) egress: EgressSettings,
    #[serde(default)]
    pub(super) adapters: BTreeMap<String, RawAdapterSlot>,
    #[serde(default)]
    pub(super) webhooks: WebhookSettings,
    #[serde(default)]
    pub(super) reconciler: ReconcilerSettings,
    #[serde(default)]
    pub(super) notify: NotifySettings,
    #[serde(default)]
    pub(super) retention: RetentionSettings,
    #[serde(default)]
    pub(super) log: LogSettings,
    #[serde(default)]
    pub(super) merchants: Vec<RawMerchant>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) bind: SocketAddr,
    pub(super) public_base_url: Option<String>,
    pub(super) admin_token: Option<String>,
    pub(super) limits: crate::server::HttpLimits,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_base_url: None,
            admin_token: None,
            limits: Default::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMerchant {
    pub(super) id: String,
    #[serde(default)]
    pub(super) api_keys: Vec<String>,
    pub(super) adapter: String,
    pub(super) currency: String,
    /// Currencies orders may be in; `currency` plus, at most, CNY.
    #[serde(default)]
    pub(super) currencies: Option<Vec<String>>,
    pub(super) industry: Industry,
    #[serde(default)]
    pub(super) callback_url: Option<String>,
    #[serde(default)]
    pub(super) webhook_secret: Option<String>,
    #[serde(default)]
    pub(super) refund_currency: Option<String>,
    #[serde(default)]
    pub(super) limits: LimitSettings,
    /// `[merchants.payouts]`: the merchant's payout limits.
    #[serde(default)]
    pub(super) payouts: crate::limits::PayoutSettings,
    /// `[merchants.contracts]`: the merchant's deduction policy.
    #[serde(default)]
    pub(super) contracts: crate::limits::ContractSettings,
    #[serde(default)]
    pub(super) config: BTreeMap<String, ConfigText>,
    #[serde(default)]
    pub(super) pin: Option<String>,
    /// IANA time zone of the merchant's day (per-payer daily caps).
    #[serde(default)]
    pub(super) timezone: Option<String>,
    /// The backup endpoint that replaces a failing primary.
    #[serde(default)]
    pub(super) failover: Option<RawFailover>,
}

/// `[merchants.failover]`: see [`crate::provider_health`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFailover {
    pub(super) primary: String,
    pub(super) backup: String,
    #[serde(default = "default_after_failures")]
    pub(super) after_failures: u32,
    #[serde(default = "default_probe_interval_ms")]
    pub(super) probe_interval_ms: u64,
    #[serde(default = "default_probe_path")]
    pub(super) probe_path: String,
}

fn default_after_failures() -> u32 {
    crate::provider_health::DEFAULT_AFTER_FAILURES
}

fn default_probe_interval_ms() -> u64 {
    crate::provider_health::DEFAULT_PROBE_INTERVAL.as_millis() as u64
}

fn default_probe_path() -> String {
    "/".into()
}

/// An adapter-config value: text, or a number or boolean written without
/// quotes (environment overrides arrive parsed), kept as its text.
#[derive(Debug)]
pub(super) struct ConfigText(pub(super) String);

impl<'de> Deserialize<'de> for ConfigText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Text(String),
            Int(i64),
            Uint(u64),
            Float(f64),
            Bool(bool),
        }
        Ok(ConfigText(match Scalar::deserialize(d)? {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Uint(u) => u.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }))
    }
}

// ---------------------------------------------------------------------------
// The resolved configuration.

#[derive(Clone)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// Without a trailing slash.
    pub public_base_url: String,
    pub admin_token: Option<SecretString>,
    /// `[server.limits]`: header and body time-outs, connections, body size.
    pub limits: crate::server::HttpLimits,
}

impl fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSettings")
            .field("bind", &self.bind)
            .field("public_base_url", &self.public_base_url)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[redacted]"),
            )
            .field("limits", &self.limits)
            .finish()
    }
}

impl ServerSettings {
    /// Where a provider sends notifications for one merchant.
    pub fn notify_url(&self, adapter: &str, merchant: &str) -> String {
        format!("{}/v1/notify/{adapter}/{merchant}", self.public_base_url)
    }
}

/// One merchant, validated, its secrets resolved.
#[derive(Clone)]
pub struct MerchantSettings {
    pub id: String,
    pub api_keys: Vec<ApiKeyHash>,
    /// Adapter slot: `<adapters_dir>/<adapter>.wasm`.
    pub adapter: String,
    /// The merchant's own currency: limits are stated and counted in it.
    pub currency: String,
    /// The currencies orders may be in: `currency`, and CNY where the
    /// provider takes both (overseas providers often do).
    pub currencies: Vec<String>,
    /// `limits.cny_rate`: units of `currency` per 1 CNY, for counting CNY
    /// orders of a merchant in another currency against its limits.
    pub cny_rate: Option<String>,
    pub industry: Industry,
    pub callback_url: Option<String>,
    /// `whsec_<base64>`, for Standard Webhooks signatures.
    pub webhook_secret: Option<SecretString>,
    pub refund_currency: String,
    pub limits: MerchantLimits,
    /// `[merchants.payouts]`, defaults applied.
    pub payouts: crate::limits::PayoutPolicy,
    /// `[merchants.contracts]`, defaults applied.
    pub contracts: crate::limits::ContractPolicy,
    /// The adapter's configuration as written; secret-kind values are still
    /// references here.
    pub config: BTreeMap<String, String>,
    /// The adapter version (hex sha256 of its component) this merchant
    /// stays on whatever the active version of its slot is.
    pub pin: Option<String>,
    /// Where the merchant's day starts and ends (per-payer daily caps):
    /// the configured IANA zone, else Asia/Shanghai for CNY and UTC for
    /// other currencies.
    pub timezone: jiff::tz::TimeZone,
    /// `[merchants.failover]`, checked.
    pub failover: Option<crate::provider_health::FailoverRule>,
}

impl fmt::Debug for MerchantSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Config values are left out: one may be a literal secret the schema
        // check has not rejected yet.
        f.debug_struct("MerchantSettings")
            .field("id", &self.id)
            .field("api_keys", &self.api_keys)
            .field("adapter", &self.adapter)
            .field("currency", &self.currency)
            .field("currencies", &self.currencies)
            .field("industry", &self.industry)
            .field("callback_url", &self.callback_url)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("refund_currency", &self.refund_currency)
            .field("limits", &self.limits)
            .field("payouts", &self.payouts)
            .field("contracts", &self.contracts)
            .field("config", &self.config.keys().collect::<Vec<_>>())
            .field("pin", &self.pin)
            .field("timezone", &self.timezone.iana_name())
            .field("failover", &self.failover)
            .finish()
    }
}
