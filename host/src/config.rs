//! The host's configuration: one TOML file, overridable by environment
//! variables, with secrets given as references.
//!
//! Layers, last wins: the file (from `--config` or `PAYHOST_CONFIG`; the
//! embedded default when there is none), then `PAYHOST_<SECTION>__<KEY>`
//! environment variables (`PAYHOST_SERVER__BIND=0.0.0.0:8080`). Merchants
//! are an array, which environment keys cannot index, so a merchant is
//! addressed by its id or its position:
//! `PAYHOST_MERCHANTS__SHOP_1__CALLBACK_URL=...` (case-insensitive, `-` may
//! be written `_`). Other `PAYHOST_*` variables (`PAYHOST_CONFIG`,
//! `PAYHOST_CACHE_DIR`) are not configuration keys and are left alone.
//!
//! Secrets are `env:NAME` or `file:PATH` (relative paths from the working
//! directory; one trailing newline is dropped), resolved at load into
//! [`SecretString`]s. A literal where a secret belongs is refused, so a
//! configuration file never holds one. Fields of `[merchants.config]` are
//! secret when the adapter's `describe` schema says so, which is only known
//! once the adapter is loaded: [`MerchantSettings::adapter_config`].
//!
//! See `docs/payhost.example.toml` for a commented file.

use crate::contract::{AdapterInfo, FieldKind};
use crate::egress::{EgressPolicy, HostPort};
use crate::limits::{Industry, LimitSettings, MerchantLimits};
use crate::merchant::{FieldValue, MerchantConfig};
use crate::notify_guard::NotifySettings;
use crate::retention::RetentionSettings;
use crate::runtime::RuntimeConfig;
use crate::webhooks::Backoff;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use sha2::Digest as _;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Used when no file is given: a local host with no merchants.
pub const EMBEDDED_DEFAULT: &str = r#"
[server]
bind = "127.0.0.1:8080"

[store]
sqlite_path = "payhost.db"

[runtime]
adapters_dir = "target/components"
"#;

/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "PAYHOST_CONFIG";
const ENV_PREFIX: &str = "PAYHOST_";
const SECTIONS: [&str; 10] = [
    "server",
    "store",
    "runtime",
    "egress",
    "adapters",
    "webhooks",
    "reconciler",
    "notify",
    "retention",
    "merchants",
];

/// Why a configuration cannot be used. Messages name the merchant and the
/// field, and never contain a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Load(String),
    #[error("`{field}`: {problem}")]
    Setting { field: String, problem: String },
    #[error("merchant `{merchant}`, field `{field}`: {problem}")]
    Merchant {
        merchant: String,
        field: String,
        problem: String,
    },
    #[error(transparent)]
    Adapter(#[from] crate::merchant::ConfigError),
}

fn setting(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Setting {
        field: field.into(),
        problem: problem.into(),
    }
}

fn figment_error(e: figment::Error) -> ConfigError {
    // figment reports every problem it found; show them all.
    ConfigError::Load(
        e.into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// A secret's reference: where its value is, not the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

impl SecretRef {
    /// Parses `env:NAME` or `file:PATH`. The error never repeats the input:
    /// it may be a secret pasted by mistake.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(name) = text.strip_prefix("env:") {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err("`env:` must be followed by an environment variable name".into());
            }
            Ok(SecretRef::Env(name.into()))
        } else if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                return Err("`file:` must be followed by a path".into());
            }
            Ok(SecretRef::File(path.into()))
        } else {
            Err(
                "secrets are not accepted literally; give a reference `env:NAME` or `file:PATH`"
                    .into(),
            )
        }
    }

    /// Reads the value. Empty values are refused: an unset secret that
    /// reads as "" would otherwise sign with an empty key.
    pub fn resolve(&self) -> Result<SecretString, String> {
        let value = match self {
            SecretRef::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable `{name}` is not set (or not UTF-8)"))?,
            SecretRef::File(path) => {
                let mut text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
                // Secret files written by editors and orchestrators end in a newline.
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            }
        };
        if value.is_empty() {
            return Err(format!("{self} is empty"));
        }
        Ok(SecretString::from(value))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// The sha256 of a bearer API key; the configuration holds only these.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiKeyHash([u8; 32]);

impl ApiKeyHash {
    pub fn of_key(key: &str) -> Self {
        Self(sha2::Sha256::digest(key.as_bytes()).into())
    }

    /// Parses `sha256:<64 hex digits>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = text
            .strip_prefix("sha256:")
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        // The input is not echoed: a plain key pasted here is a secret.
        bytes.map(Self).ok_or_else(|| {
            "must be `sha256:` and 64 hex digits, the hash of the key \
             (`payhost config hash-key KEY` prints it), never the key itself"
                .into()
        })
    }

    /// Constant-time comparison, so response timing does not reveal how
    /// much of a guessed key's hash matched.
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Display for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}…", hex::encode(&self.0[..4]))
    }
}

/// `sha256:<hex>` of a bearer key, the form `api_keys` takes.
pub fn api_key_hash(key: &str) -> String {
    ApiKeyHash::of_key(key).to_string()
}

// ---------------------------------------------------------------------------
// Sections without secrets: deserialized as they are.

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    pub sqlite_path: PathBuf,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            sqlite_path: "payhost.db".into(),
        }
    }
}

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
}

impl Default for EgressSettings {
    fn default() -> Self {
        let d = EgressPolicy::default();
        Self {
            allow_private: d.allow_private,
            extra_allowed_hosts: d.extra_allowed_hosts,
            timeout_ms: d.timeout.as_millis() as u64,
            max_response_kib: (d.max_response_bytes / 1024) as u64,
        }
    }
}

/// `[adapters.<slot>]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawAdapterSlot {
    egress: Vec<String>,
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

// ---------------------------------------------------------------------------
// Sections with secrets: read raw, then resolved.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    store: StoreSettings,
    #[serde(default)]
    runtime: RuntimeSettings,
    #[serde(default)]
    egress: EgressSettings,
    #[serde(default)]
    adapters: BTreeMap<String, RawAdapterSlot>,
    #[serde(default)]
    webhooks: WebhookSettings,
    #[serde(default)]
    reconciler: ReconcilerSettings,
    #[serde(default)]
    notify: NotifySettings,
    #[serde(default)]
    retention: RetentionSettings,
    #[serde(default)]
    merchants: Vec<RawMerchant>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawServer {
    bind: SocketAddr,
    public_base_url: Option<String>,
    admin_token: Option<String>,
    limits: crate::server::HttpLimits,
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
struct RawMerchant {
    id: String,
    #[serde(default)]
    api_keys: Vec<String>,
    adapter: String,
    currency: String,
    industry: Industry,
    #[serde(default)]
    callback_url: Option<String>,
    #[serde(default)]
    webhook_secret: Option<String>,
    #[serde(default)]
    refund_currency: Option<String>,
    #[serde(default)]
    limits: LimitSettings,
    #[serde(default)]
    config: BTreeMap<String, ConfigText>,
    #[serde(default)]
    pin: Option<String>,
    /// IANA time zone of the merchant's day (per-payer daily caps).
    #[serde(default)]
    timezone: Option<String>,
}

/// An adapter-config value: text, or a number or boolean written without
/// quotes (environment overrides arrive parsed), kept as its text.
#[derive(Debug)]
struct ConfigText(String);

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
    pub currency: String,
    pub industry: Industry,
    pub callback_url: Option<String>,
    /// `whsec_<base64>`, for Standard Webhooks signatures.
    pub webhook_secret: Option<SecretString>,
    pub refund_currency: String,
    pub limits: MerchantLimits,
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
            .field("industry", &self.industry)
            .field("callback_url", &self.callback_url)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("refund_currency", &self.refund_currency)
            .field("limits", &self.limits)
            .field("config", &self.config.keys().collect::<Vec<_>>())
            .field("pin", &self.pin)
            .field("timezone", &self.timezone.iana_name())
            .finish()
    }
}

impl MerchantSettings {
    fn err(&self, field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError::Merchant {
            merchant: self.id.clone(),
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The adapter configuration before any schema is known: every value
    /// written as a secret reference is resolved as a secret (a reference
    /// where the schema expects plain text is refused anyway), the rest is
    /// text. What the registry checks each candidate version against.
    pub fn merchant_config(&self) -> Result<MerchantConfig, ConfigError> {
        let mut config = MerchantConfig::new(&self.id);
        for (name, value) in &self.config {
            let value = match SecretRef::parse(value) {
                Ok(r) => FieldValue::Secret(
                    r.resolve()
                        .map_err(|p| self.err(format!("config.{name}"), p))?,
                ),
                Err(_) => FieldValue::Text(value.clone()),
            };
            config.fields.insert(name.clone(), value);
        }
        Ok(config)
    }

    /// The adapter configuration for `info`'s schema: secret-kind fields
    /// must be references and are resolved; then the schema check of
    /// [`MerchantConfig::validate`] runs.
    pub fn adapter_config(&self, info: &AdapterInfo) -> Result<MerchantConfig, ConfigError> {
        let mut config = MerchantConfig::new(&self.id);
        for (name, value) in &self.config {
            let field = format!("config.{name}");
            let secret = info
                .config_schema
                .iter()
                .any(|f| &f.name == name && f.kind == FieldKind::Secret);
            let value = if secret {
                let r = SecretRef::parse(value).map_err(|p| self.err(&field, p))?;
                FieldValue::Secret(r.resolve().map_err(|p| self.err(&field, p))?)
            } else if SecretRef::parse(value).is_ok() {
                // Passing `env:X` on as text would hand the adapter the
                // reference itself, and resolving it would hand it the
                // secret as plain text.
                return Err(self.err(
                    &field,
                    format!(
                        "is a secret reference, but adapter `{}` {} does not mark this field secret, \
                         so payhost will not pass it; use an adapter version whose schema marks it secret",
                        info.name, info.version
                    ),
                ));
            } else {
                FieldValue::Text(value.clone())
            };
            config.fields.insert(name.clone(), value);
        }
        config.validate(info)?;
        Ok(config)
    }
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub runtime: RuntimeSettings,
    pub egress: EgressSettings,
    /// `[adapters.<slot>]`, by slot.
    pub adapters: BTreeMap<String, AdapterSlotSettings>,
    pub webhooks: WebhookSettings,
    pub reconciler: ReconcilerSettings,
    pub notify: NotifySettings,
    pub retention: RetentionSettings,
    pub merchants: Vec<MerchantSettings>,
}

impl Config {
    /// The built-in configuration (no environment overrides).
    pub fn embedded_default() -> Self {
        Self::from_toml_str(EMBEDDED_DEFAULT).expect("the embedded default configuration is valid")
    }

    /// Loads `path`, else the file named by `PAYHOST_CONFIG`, else the
    /// embedded default; then applies `PAYHOST_*` environment overrides and
    /// resolves secrets.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from));
        let base = match &path {
            Some(p) => {
                if !p.is_file() {
                    return Err(ConfigError::Load(format!(
                        "configuration file `{}` does not exist or is not a file",
                        p.display()
                    )));
                }
                Figment::from(Toml::file_exact(p))
            }
            None => Figment::from(Toml::string(EMBEDDED_DEFAULT)),
        };
        let env = Env::prefixed(ENV_PREFIX).split("__").filter(|k| {
            // Keys keep their case here; figment lowercases them later.
            let section = k.as_str().split('.').next().unwrap_or_default();
            SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(section))
        });
        Self::build(base, env)
    }

    /// Parses TOML text without environment overrides (tests, tools).
    pub fn from_toml_str(toml: &str) -> Result<Self, ConfigError> {
        Self::build(Figment::from(Toml::string(toml)), Overrides::default())
    }

    /// `base` with `overrides` (keys as `PAYHOST_*` variables give them:
    /// lower case, merchants addressed by id or position) on top.
    fn build(base: Figment, overrides: impl Provider) -> Result<Self, ConfigError> {
        let mut dict = Dict::new();
        for (_, d) in overrides.data().map_err(figment_error)? {
            dict.extend(d);
        }
        let merchant_patches = dict.remove("merchants");
        let mut figment = base.merge(Overrides::new(dict));
        if let Some(patches) = merchant_patches {
            let list = patch_merchants(&figment, patches)?;
            let mut d = Dict::new();
            d.insert("merchants".into(), Value::from(list));
            figment = figment.merge(Overrides::new(d));
        }
        let raw: RawConfig = figment.extract().map_err(figment_error)?;
        raw.resolve()
    }

    /// The settings of the merchant whose API key is `bearer`. Every stored
    /// hash is compared, in constant time, whatever matches.
    pub fn merchant_by_api_key(&self, bearer: &str) -> Option<&MerchantSettings> {
        let hash = ApiKeyHash::of_key(bearer);
        let mut found = None;
        for m in &self.merchants {
            for k in &m.api_keys {
                if k.ct_eq(&hash) && found.is_none() {
                    found = Some(m);
                }
            }
        }
        found
    }

    pub fn merchant(&self, id: &str) -> Option<&MerchantSettings> {
        self.merchants.iter().find(|m| m.id == id)
    }

    /// The runtime's configuration, egress policy included.
    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig {
            memory_limit: (self.runtime.memory_limit_mib as usize).saturating_mul(1024 * 1024),
            step_deadline: Duration::from_millis(self.runtime.step_deadline_ms),
            operation_deadline: Duration::from_millis(self.runtime.operation_deadline_ms),
            max_steps: self.runtime.max_steps,
            max_instances: self.runtime.max_instances,
            cache_dir: self.runtime.cache_dir.clone(),
            egress: EgressPolicy {
                extra_allowed_hosts: self.egress.extra_allowed_hosts.clone(),
                slots: self
                    .adapters
                    .iter()
                    .map(|(slot, a)| (slot.clone(), a.egress.clone()))
                    .collect(),
                allow_private: self.egress.allow_private,
                timeout: Duration::from_millis(self.egress.timeout_ms),
                max_response_bytes: (self.egress.max_response_kib as usize).saturating_mul(1024),
            },
        }
    }

    /// Where the component of adapter slot `adapter` is.
    pub fn adapter_path(&self, adapter: &str) -> PathBuf {
        self.runtime.adapters_dir.join(format!("{adapter}.wasm"))
    }
}

/// Applies environment patches to the merchants array of `figment`.
fn patch_merchants(figment: &Figment, patches: Value) -> Result<Vec<Value>, ConfigError> {
    let Value::Dict(_, patches) = patches else {
        return Err(setting(
            "merchants",
            "environment overrides must name a merchant: PAYHOST_MERCHANTS__<ID>__<FIELD>",
        ));
    };
    let mut list = match figment.find_value("merchants") {
        Ok(Value::Array(_, list)) => list,
        Ok(_) => {
            return Err(setting(
                "merchants",
                "must be an array of tables ([[merchants]])",
            ));
        }
        Err(_) => Vec::new(),
    };
    for (selector, patch) in patches {
        let sel = selector.to_ascii_lowercase();
        let index = list.iter().position(|m| {
            let id = m
                .find_ref("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase();
            id == sel || id.replace('-', "_") == sel
        });
        let index = index
            .or_else(|| sel.parse::<usize>().ok().filter(|i| *i < list.len()))
            .ok_or_else(|| {
                setting(
                    format!("merchants.{selector}"),
                    format!(
                        "an environment override names merchant `{selector}`, \
                         but no merchant has that id or position"
                    ),
                )
            })?;
        merge_value(&mut list[index], patch);
    }
    Ok(list)
}

/// Recursive merge: tables merge key by key, anything else is replaced.
fn merge_value(into: &mut Value, patch: Value) {
    match (into, patch) {
        (Value::Dict(_, a), Value::Dict(_, b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(slot) => merge_value(slot, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// A figment provider of already-split override keys, so errors say where
/// the value came from.
#[derive(Debug, Default)]
struct Overrides(Dict);

impl Overrides {
    fn new(dict: Dict) -> Self {
        Self(dict)
    }
}

impl Provider for Overrides {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variables PAYHOST_*")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Map::from([(Profile::Default, self.0.clone())]))
    }
}

/// Ids and adapter slots end up in URL paths and file names.
fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_currency(code: &str) -> Result<(), String> {
    payhost_sdk::money::exponent(code)
        .map(|_| ())
        .map_err(|e| format!("{e} (use an upper-case ISO 4217 code such as \"CNY\")"))
}

fn check_http_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an absolute http(s) URL".into());
    }
    Ok(text.trim_end_matches('/').to_string())
}

impl RawConfig {
    fn resolve(self) -> Result<Config, ConfigError> {
        let positive = |field: &str, v: u64| {
            if v == 0 {
                Err(setting(field, "must be greater than zero"))
            } else {
                Ok(())
            }
        };
        positive("runtime.memory_limit_mib", self.runtime.memory_limit_mib)?;
        positive("runtime.step_deadline_ms", self.runtime.step_deadline_ms)?;
        positive(
            "runtime.operation_deadline_ms",
            self.runtime.operation_deadline_ms,
        )?;
        positive("runtime.max_steps", self.runtime.max_steps as u64)?;
        positive(
            "runtime.max_instances",
            u64::from(self.runtime.max_instances),
        )?;
        positive("runtime.keep_versions", self.runtime.keep_versions as u64)?;
        positive("egress.timeout_ms", self.egress.timeout_ms)?;
        positive("egress.max_response_kib", self.egress.max_response_kib)?;
        positive(
            "webhooks.max_attempts",
            u64::from(self.webhooks.max_attempts),
        )?;
        positive(
            "webhooks.initial_backoff_ms",
            self.webhooks.initial_backoff_ms,
        )?;
        positive("webhooks.timeout_ms", self.webhooks.timeout_ms)?;
        positive("reconciler.interval_ms", self.reconciler.interval_ms)?;
        positive(
            "webhooks.max_concurrent",
            u64::from(self.webhooks.max_concurrent),
        )?;
        self.notify.check().map_err(|(f, p)| setting(f, p))?;
        self.server.limits.check().map_err(|(f, p)| setting(f, p))?;
        self.retention.check().map_err(|(f, p)| setting(f, p))?;
        if self.webhooks.max_backoff_ms < self.webhooks.initial_backoff_ms {
            return Err(setting(
                "webhooks.max_backoff_ms",
                "must not be less than initial_backoff_ms",
            ));
        }

        let public_base_url = match &self.server.public_base_url {
            Some(u) => check_http_url(u).map_err(|p| setting("server.public_base_url", p))?,
            None => format!("http://{}", self.server.bind),
        };
        let admin_token = match &self.server.admin_token {
            None => None,
            Some(text) => Some(
                SecretRef::parse(text)
                    .and_then(|r| r.resolve())
                    .map_err(|p| setting("server.admin_token", p))?,
            ),
        };

        let mut adapters = BTreeMap::new();
        for (slot, raw) in self.adapters {
            if !is_slug(&slot) {
                return Err(setting(
                    format!("adapters.{slot}"),
                    "must be an adapter slot name: letters, digits, `-` or `_`",
                ));
            }
            let egress = raw
                .egress
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    e.parse::<HostPort>()
                        .map_err(|p| setting(format!("adapters.{slot}.egress[{i}]"), p))
                })
                .collect::<Result<Vec<_>, _>>()?;
            adapters.insert(slot, AdapterSlotSettings { egress });
        }

        let mut ids = HashSet::new();
        let mut keys = HashSet::new();
        let mut merchants = Vec::with_capacity(self.merchants.len());
        for raw in self.merchants {
            let m = raw.resolve()?;
            if !ids.insert(m.id.clone()) {
                return Err(m.err("id", "another merchant has the same id"));
            }
            for k in &m.api_keys {
                if !keys.insert(*k) {
                    return Err(m.err(
                        "api_keys",
                        "a key is listed twice or also belongs to another merchant; \
                         every key must identify one merchant",
                    ));
                }
            }
            merchants.push(m);
        }

        Ok(Config {
            server: ServerSettings {
                bind: self.server.bind,
                public_base_url,
                admin_token,
                limits: self.server.limits,
            },
            store: self.store,
            runtime: self.runtime,
            egress: self.egress,
            adapters,
            webhooks: self.webhooks,
            reconciler: self.reconciler,
            notify: self.notify,
            retention: self.retention,
            merchants,
        })
    }
}

impl RawMerchant {
    fn resolve(self) -> Result<MerchantSettings, ConfigError> {
        let err = |field: &str, problem: String| ConfigError::Merchant {
            merchant: self.id.clone(),
            field: field.into(),
            problem,
        };
        if !is_slug(&self.id) {
            return Err(err(
                "id",
                "must be 1 to 64 letters, digits, `-` or `_` (it is part of URLs)".into(),
            ));
        }
        if !is_slug(&self.adapter) {
            return Err(err(
                "adapter",
                "must be an adapter slot name: letters, digits, `-` or `_`".into(),
            ));
        }
        if self.api_keys.is_empty() {
            return Err(err("api_keys", "at least one key hash is required".into()));
        }
        let api_keys = self
            .api_keys
            .iter()
            .enumerate()
            .map(|(i, k)| ApiKeyHash::parse(k).map_err(|p| err(&format!("api_keys[{i}]"), p)))
            .collect::<Result<Vec<_>, _>>()?;
        check_currency(&self.currency).map_err(|p| err("currency", p))?;
        let refund_currency = self
            .refund_currency
            .clone()
            .unwrap_or_else(|| self.currency.clone());
        check_currency(&refund_currency).map_err(|p| err("refund_currency", p))?;
        let callback_url = match &self.callback_url {
            None => None,
            Some(u) => Some(check_http_url(u).map_err(|p| err("callback_url", p))?),
        };
        let webhook_secret = match &self.webhook_secret {
            None if callback_url.is_some() => {
                return Err(err(
                    "webhook_secret",
                    "required when callback_url is set (webhooks are always signed)".into(),
                ));
            }
            None => None,
            Some(text) => {
                let secret = SecretRef::parse(text)
                    .and_then(|r| r.resolve())
                    .map_err(|p| err("webhook_secret", p))?;
                check_webhook_secret(&secret).map_err(|p| err("webhook_secret", p))?;
                Some(secret)
            }
        };
        let limits = self
            .limits
            .resolve(&self.currency, self.industry)
            .map_err(|e| err(&format!("limits.{}", e.field), e.problem))?;
        let pin = match &self.pin {
            None => None,
            Some(p) => Some(parse_digest(p).map_err(|p| err("pin", p))?),
        };
        let zone = match (&self.timezone, self.currency.as_str()) {
            (Some(name), _) => name.as_str(),
            (None, "CNY") => "Asia/Shanghai",
            (None, _) => "UTC",
        };
        let timezone = jiff::tz::TimeZone::get(zone).map_err(|_| {
            err(
                "timezone",
                format!(
                    "`{zone}` is not an IANA time zone (e.g. `Asia/Shanghai`, `Europe/Amsterdam`)"
                ),
            )
        })?;
        Ok(MerchantSettings {
            pin,
            timezone,
            api_keys,
            adapter: self.adapter.clone(),
            currency: self.currency.clone(),
            industry: self.industry,
            callback_url,
            webhook_secret,
            refund_currency,
            limits,
            config: self.config.into_iter().map(|(k, v)| (k, v.0)).collect(),
            id: self.id,
        })
    }
}

/// An adapter digest as written in a pin: 64 hex digits, optionally
/// prefixed `sha256:`; returned as lower-case hex (what the registry uses).
pub fn parse_digest(text: &str) -> Result<String, String> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(
            "must be an adapter digest: 64 hex digits (optionally `sha256:` first), \
             as `GET /admin/adapters` lists them"
                .into(),
        )
    }
}

/// `whsec_` and the base64 of a key of at least 24 bytes (the Standard
/// Webhooks recommendation).
fn check_webhook_secret(secret: &SecretString) -> Result<(), String> {
    use base64::Engine as _;
    let usage = "must be `whsec_` followed by base64 of 24 to 64 random bytes, \
                 e.g. `whsec_$(openssl rand -base64 32)`";
    let key = secret
        .expose_secret()
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .ok_or(usage)?;
    if !(24..=64).contains(&key.len()) {
        return Err(usage.into());
    }
    Ok(())
}

impl fmt::Display for Config {
    /// A summary for operators; secrets appear only as "set".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |b: bool| if b { "set" } else { "not set" };
        writeln!(
            f,
            "server:     bind {}, public base URL {}, admin token {}",
            self.server.bind,
            self.server.public_base_url,
            set(self.server.admin_token.is_some())
        )?;
        writeln!(f, "store:      SQLite {}", self.store.sqlite_path.display())?;
        writeln!(
            f,
            "runtime:    adapters in {} ({}watched, {} previous versions kept), {} MiB, {} ms per step, {} steps, {} instances",
            self.runtime.adapters_dir.display(),
            if self.runtime.watch { "" } else { "not " },
            self.runtime.keep_versions,
            self.runtime.memory_limit_mib,
            self.runtime.step_deadline_ms,
            self.runtime.max_steps,
            self.runtime.max_instances
        )?;
        writeln!(
            f,
            "egress:     private addresses {}, extra hosts [{}], {} ms, {} KiB",
            if self.egress.allow_private {
                "allowed"
            } else {
                "refused"
            },
            self.egress.extra_allowed_hosts.join(", "),
            self.egress.timeout_ms,
            self.egress.max_response_kib
        )?;
        for (slot, a) in &self.adapters {
            writeln!(
                f,
                "adapter {slot}: egress allowed to [{}]",
                a.egress
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        writeln!(
            f,
            "webhooks:   {} attempts, back-off {} ms to {} ms, {} ms time-out, {} merchants at once",
            self.webhooks.max_attempts,
            self.webhooks.initial_backoff_ms,
            self.webhooks.max_backoff_ms,
            self.webhooks.timeout_ms,
            self.webhooks.max_concurrent
        )?;
        let n = &self.notify;
        writeln!(
            f,
            "notify:     bodies up to {} bytes within {} ms, {}/min and {} at once per merchant; \
             unverified kept as {} body + {} header bytes",
            n.max_body_bytes,
            n.body_timeout_ms,
            n.per_merchant_per_min,
            n.per_merchant_concurrent,
            n.unverified_body_bytes,
            n.unverified_headers_bytes
        )?;
        let r = &self.retention;
        writeln!(
            f,
            "retention:  every {} ms: idempotency {} s, unverified notifications {} s, \
             delivered events {} s",
            r.interval_ms,
            r.idempotency_secs,
            r.unverified_notifications_secs,
            r.delivered_events_secs
        )?;
        writeln!(
            f,
            "reconciler: every {} ms, notifications overdue after {} s",
            self.reconciler.interval_ms, self.reconciler.notify_overdue_secs
        )?;
        writeln!(f, "merchants:  {}", self.merchants.len())?;
        for m in &self.merchants {
            let a = &m.limits.amounts;
            let r = &m.limits.rates;
            writeln!(
                f,
                "  {}: adapter {}, {} ({}), refunds in {}, {} API key(s)",
                m.id,
                m.adapter,
                m.currency,
                m.industry,
                m.refund_currency,
                m.api_keys.len()
            )?;
            writeln!(
                f,
                "    limits: {} per payment, {} per payer per day (minor units); \
                 {}/{}/{} create/query/refund per minute",
                a.per_payment_minor,
                a.per_payer_day_minor,
                r.create_per_min,
                r.query_per_min,
                r.refund_per_min
            )?;
            writeln!(
                f,
                "    webhooks: {} (secret {}); notify URL {}",
                m.callback_url.as_deref().unwrap_or("none"),
                set(m.webhook_secret.is_some()),
                self.server.notify_url(&m.adapter, &m.id)
            )?;
            writeln!(
                f,
                "    adapter config: {}",
                m.config.keys().cloned().collect::<Vec<_>>().join(", ")
            )?;
            if let Some(pin) = &m.pin {
                writeln!(f, "    pinned to adapter version {pin}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Capabilities, ConfigField};

    const SECRET_B64: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// A scratch directory under the target dir, removed on drop.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "payhost-config-{name}-{}-{}",
                std::process::id(),
                ulid::Ulid::new()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
        fn file(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn merchant_toml(scratch: &Scratch, extra: &str) -> String {
        let secret = scratch.file("whsec", &format!("whsec_{SECRET_B64}\n"));
        format!(
            r#"
[server]
bind = "0.0.0.0:9000"
public_base_url = "https://pay.example.com/"

[[merchants]]
id = "shop-1"
api_keys = ["{key}"]
adapter = "wechat-v2"
currency = "CNY"
industry = "virtual"
callback_url = "https://shop.example.com/hooks"
webhook_secret = "file:{secret}"
{extra}
[merchants.config]
mch_id = 1900000109
api_key = "file:{secret}"
"#,
            key = api_key_hash("key-1"),
            secret = secret.display(),
        )
    }

    fn info() -> AdapterInfo {
        let field = |name: &str, kind| ConfigField {
            name: name.into(),
            description: String::new(),
            kind,
            required: true,
            default: None,
        };
        AdapterInfo {
            name: "wechat-v2".into(),
            version: "1.0.0".into(),
            contract_version: "0.1.0".into(),
            methods: vec![],
            capabilities: Capabilities {
                payment_notifications: true,
                refund_notifications: false,
                partial_refunds: true,
                query_by_merchant_order_no: true,
                close: false,
                refund_query: false,
            },
            egress_hosts: vec![],
            config_schema: vec![
                field("mch_id", FieldKind::Text),
                field("api_key", FieldKind::Secret),
            ],
        }
    }

    #[test]
    fn pins_are_digests() {
        let hex = "AB".repeat(32);
        assert_eq!(parse_digest(&hex).unwrap(), "ab".repeat(32));
        assert_eq!(
            parse_digest(&format!("sha256:{hex}")).unwrap(),
            "ab".repeat(32)
        );
        for bad in ["", "ab", "sha256:", &"zz".repeat(32)] {
            assert!(parse_digest(bad).is_err(), "{bad}");
        }
        let s = Scratch::new("pin");
        let c =
            Config::from_toml_str(&merchant_toml(&s, &format!("pin = \"sha256:{hex}\""))).unwrap();
        assert_eq!(
            c.merchants[0].pin.as_deref(),
            Some("ab".repeat(32).as_str())
        );
        let e = Config::from_toml_str(&merchant_toml(&s, "pin = \"latest\"")).unwrap_err();
        assert!(
            matches!(e, ConfigError::Merchant { ref field, .. } if field == "pin"),
            "{e}"
        );
        assert_eq!(c.runtime.keep_versions, 5);
        assert!(c.runtime.watch);
    }

    #[test]
    fn embedded_default() {
        let c = Config::embedded_default();
        assert_eq!(c.server.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.server.public_base_url, "http://127.0.0.1:8080");
        assert_eq!(c.store.sqlite_path, Path::new("payhost.db"));
        assert_eq!(c.runtime.adapters_dir, Path::new("target/components"));
        assert!(c.merchants.is_empty());
        assert_eq!(c.webhooks.max_attempts, 12);
        assert_eq!(c.webhooks.initial_backoff_ms, 1000);
        assert_eq!(c.webhooks.max_backoff_ms, 3_600_000);
        assert_eq!(c.reconciler.interval_ms, 5000);
        assert_eq!(c.reconciler.notify_overdue_secs, 120);
        let rt = c.runtime_config();
        assert_eq!(rt.memory_limit, RuntimeConfig::default().memory_limit);
        assert_eq!(rt.egress.timeout, EgressPolicy::default().timeout);
    }

    #[test]
    fn loads_a_merchant_and_resolves_secrets() {
        let s = Scratch::new("load");
        let c = Config::from_toml_str(&merchant_toml(&s, "")).unwrap();
        let m = &c.merchants[0];
        assert_eq!(m.id, "shop-1");
        assert_eq!(m.refund_currency, "CNY");
        assert_eq!(m.limits.amounts.per_payment_minor, 600_000);
        assert_eq!(m.config["mch_id"], "1900000109");
        assert_eq!(
            m.webhook_secret.as_ref().unwrap().expose_secret(),
            format!("whsec_{SECRET_B64}")
        );
        assert_eq!(
            c.server.notify_url("wechat-v2", "shop-1"),
            "https://pay.example.com/v1/notify/wechat-v2/shop-1"
        );
        let cfg = m.adapter_config(&info()).unwrap();
        assert!(matches!(cfg.fields["api_key"], FieldValue::Secret(_)));
        assert!(matches!(&cfg.fields["mch_id"], FieldValue::Text(t) if t == "1900000109"));
        // Nothing secret in Debug or the summary.
        for text in [format!("{c:?}"), c.to_string(), format!("{cfg:?}")] {
            assert!(!text.contains(SECRET_B64), "{text}");
        }
        assert!(c.to_string().contains("shop-1"));
    }

    #[test]
    fn api_keys_by_hash() {
        let s = Scratch::new("keys");
        let c = Config::from_toml_str(&merchant_toml(&s, "")).unwrap();
        assert_eq!(
            c.merchant_by_api_key("key-1").map(|m| m.id.as_str()),
            Some("shop-1")
        );
        assert!(c.merchant_by_api_key("key-2").is_none());
        assert!(c.merchant_by_api_key(&api_key_hash("key-1")).is_none());
        assert_eq!(
            api_key_hash("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // A plain key where a hash belongs is refused without being echoed.
        let plain = merchant_toml(&s, "").replace(&api_key_hash("key-1"), "sk_live_plain");
        let e = Config::from_toml_str(&plain).unwrap_err().to_string();
        assert!(e.contains("shop-1") && e.contains("api_keys[0]"), "{e}");
        assert!(!e.contains("sk_live_plain"), "{e}");
    }

    #[test]
    fn literal_secrets_are_refused() {
        let s = Scratch::new("literal");
        let text = merchant_toml(&s, "").replace(
            &format!("webhook_secret = \"file:{}\"", s.0.join("whsec").display()),
            &format!("webhook_secret = \"whsec_{SECRET_B64}\""),
        );
        let e = Config::from_toml_str(&text).unwrap_err().to_string();
        assert!(e.contains("shop-1") && e.contains("webhook_secret"), "{e}");
        assert!(e.contains("env:") && e.contains("file:"), "{e}");
        assert!(!e.contains(SECRET_B64), "{e}");

        // In the adapter config, the schema decides what must be a reference.
        let text = merchant_toml(&s, "").replace(
            &format!("api_key = \"file:{}\"", s.0.join("whsec").display()),
            "api_key = \"very-secret-literal\"",
        );
        let c = Config::from_toml_str(&text).unwrap();
        let e = c.merchants[0]
            .adapter_config(&info())
            .unwrap_err()
            .to_string();
        assert!(e.contains("shop-1") && e.contains("config.api_key"), "{e}");
        assert!(!e.contains("very-secret-literal"), "{e}");
        assert!(!format!("{c:?}").contains("very-secret-literal"));
    }

    #[test]
    fn secret_references() {
        let s = Scratch::new("refs");
        let p = s.file("crlf", "abc\r\n");
        assert_eq!(
            SecretRef::parse(&format!("file:{}", p.display()))
                .unwrap()
                .resolve()
                .unwrap()
                .expose_secret(),
            "abc"
        );
        // Cargo sets this variable for test processes.
        let env = SecretRef::parse("env:CARGO_PKG_NAME").unwrap();
        assert_eq!(env.resolve().unwrap().expose_secret(), "payhost");
        assert!(
            SecretRef::parse("env:PAYHOST_SURELY_UNSET_9")
                .unwrap()
                .resolve()
                .is_err()
        );
        assert!(
            SecretRef::parse("file:/nonexistent/x")
                .unwrap()
                .resolve()
                .is_err()
        );
        assert!(
            SecretRef::parse(&format!("file:{}", s.file("empty", "\n").display()))
                .unwrap()
                .resolve()
                .is_err()
        );
        for bad in ["plain", "env:", "env:A-B", "file:", "ENV:X"] {
            assert!(SecretRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validation_names_merchant_and_field() {
        let s = Scratch::new("validate");
        let cases = [
            ("currency = \"CNY\"", "currency = \"cny\"", "currency"),
            (
                "industry = \"virtual\"",
                "industry = \"virtual\"\nrefund_currency = \"XYZ\"",
                "refund_currency",
            ),
            (
                "currency = \"CNY\"",
                "currency = \"USD\"",
                "limits.per_payment_minor",
            ),
            (
                "callback_url = \"https://shop.example.com/hooks\"",
                "callback_url = \"ftp://x\"",
                "callback_url",
            ),
            (
                "adapter = \"wechat-v2\"",
                "adapter = \"../evil\"",
                "adapter",
            ),
        ];
        for (from, to, field) in cases {
            let text = merchant_toml(&s, "").replace(from, to);
            match Config::from_toml_str(&text) {
                Err(ConfigError::Merchant {
                    merchant, field: f, ..
                }) => {
                    assert_eq!((merchant.as_str(), f.as_str()), ("shop-1", field), "{to}");
                }
                other => panic!("{to}: {other:?}"),
            }
        }
        // A callback needs a secret.
        let no_secret: String = merchant_toml(&s, "")
            .lines()
            .filter(|l| !l.starts_with("webhook_secret"))
            .collect::<Vec<_>>()
            .join("\n");
        let e = Config::from_toml_str(&no_secret).unwrap_err();
        assert!(matches!(e, ConfigError::Merchant { ref field, .. } if field == "webhook_secret"));
        // A secret not in whsec_ form.
        let bad = s.file("bad", "not-a-whsec");
        let text = merchant_toml(&s, "").replace(
            &format!("webhook_secret = \"file:{}\"", s.0.join("whsec").display()),
            &format!("webhook_secret = \"file:{}\"", bad.display()),
        );
        assert!(
            Config::from_toml_str(&text)
                .unwrap_err()
                .to_string()
                .contains("whsec_")
        );
        // Unknown keys are typos, not silently ignored.
        let e = Config::from_toml_str(&merchant_toml(&s, "colour = \"red\"")).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        // Converted limits for another currency.
        let text = merchant_toml(&s, "[merchants.limits]\ncny_rate = 0.1385\n")
            .replace("currency = \"CNY\"", "currency = \"USD\"");
        let c = Config::from_toml_str(&text).unwrap();
        assert_eq!(c.merchants[0].limits.amounts.per_payment_minor, 83_100);
        // Two merchants sharing an id or a key.
        let one = merchant_toml(&s, "");
        let second = one[one.find("[[merchants]]").unwrap()..].to_string();
        let e = Config::from_toml_str(&format!("{one}\n{second}")).unwrap_err();
        assert!(
            matches!(e, ConfigError::Merchant { ref field, .. } if field == "id"),
            "{e}"
        );
        let e = Config::from_toml_str(&format!(
            "{one}\n{}",
            second.replace("id = \"shop-1\"", "id = \"shop-2\"")
        ))
        .unwrap_err();
        assert!(
            matches!(e, ConfigError::Merchant { ref field, .. } if field == "api_keys"),
            "{e}"
        );
    }

    #[test]
    fn adapter_config_checks_the_schema() {
        let s = Scratch::new("schema");
        // A reference on a field the schema does not mark secret.
        let text = merchant_toml(&s, "").replace("mch_id = 1900000109", "mch_id = \"env:MCH\"");
        let c = Config::from_toml_str(&text).unwrap();
        let e = c.merchants[0].adapter_config(&info()).unwrap_err();
        assert!(
            matches!(e, ConfigError::Merchant { ref field, .. } if field == "config.mch_id"),
            "{e}"
        );
        // Missing and unknown fields come from MerchantConfig::validate.
        let text = merchant_toml(&s, "").replace("mch_id = 1900000109", "mch_idd = \"1\"");
        let c = Config::from_toml_str(&text).unwrap();
        match c.merchants[0].adapter_config(&info()).unwrap_err() {
            ConfigError::Adapter(e) => assert_eq!(
                (e.merchant.as_str(), e.field.as_str()),
                ("shop-1", "mch_idd")
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn adapter_slots_take_an_egress_list_of_hosts_and_ports() {
        let s = Scratch::new("slots");
        let text = format!(
            "{}\n[adapters.wechat-v2]\negress = [\"API.mch.weixin.qq.com:443\", \"127.0.0.1:*\"]\n",
            merchant_toml(&s, "")
        );
        let c = Config::from_toml_str(&text).unwrap();
        let policy = c.runtime_config().egress;
        assert_eq!(
            policy.slots["wechat-v2"],
            [
                HostPort::new("api.mch.weixin.qq.com", Some(443)),
                HostPort::new("127.0.0.1", None)
            ]
        );
        assert!(
            c.to_string().contains(
                "adapter wechat-v2: egress allowed to [api.mch.weixin.qq.com:443, 127.0.0.1:*]"
            ),
            "{c}"
        );
        // A host without a port, and an unknown key, are refused by name.
        let bad = format!(
            "{}\n[adapters.wechat-v2]\negress = [\"api.mch.weixin.qq.com:443\", \"api2.mch.weixin.qq.com\"]\n",
            merchant_toml(&s, "")
        );
        let e = Config::from_toml_str(&bad).unwrap_err().to_string();
        assert!(
            e.contains("adapters.wechat-v2.egress[1]") && e.contains("host:port"),
            "{e}"
        );
        let bad = format!(
            "{}\n[adapters.wechat-v2]\nhosts = []\n",
            merchant_toml(&s, "")
        );
        assert!(Config::from_toml_str(&bad).is_err());
    }

    #[test]
    fn secret_references_are_secrets_before_any_schema_is_known() {
        let s = Scratch::new("preload");
        let c = Config::from_toml_str(&merchant_toml(&s, "")).unwrap();
        let cfg = c.merchants[0].merchant_config().unwrap();
        assert!(matches!(cfg.fields["api_key"], FieldValue::Secret(_)));
        assert!(matches!(&cfg.fields["mch_id"], FieldValue::Text(t) if t == "1900000109"));
        // Against a schema that no longer marks it secret: refused, and
        // the error never advises writing the value in the file.
        let mut info = info();
        for f in &mut info.config_schema {
            if f.name == "api_key" {
                f.kind = FieldKind::Text;
            }
        }
        let e = c.merchants[0]
            .adapter_config(&info)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("config.api_key") && e.contains("marks it secret"),
            "{e}"
        );
        for advice in ["directly", "literal", "plain value"] {
            assert!(!e.contains(advice), "{e}");
        }
        let e = cfg.validate(&info).unwrap_err().to_string();
        assert!(
            e.contains("api_key") && e.contains("never hands a secret"),
            "{e}"
        );
    }

    #[test]
    fn environment_overrides() {
        let s = Scratch::new("env");
        let base = Figment::from(Toml::string(&merchant_toml(&s, "")));
        // What Env::prefixed("PAYHOST_").split("__") yields for
        // PAYHOST_SERVER__BIND, PAYHOST_WEBHOOKS__MAX_ATTEMPTS,
        // PAYHOST_MERCHANTS__SHOP_1__CURRENCY/..., PAYHOST_MERCHANTS__0__CONFIG__MCH_ID.
        let env = Toml::string(
            r#"
server.bind = "0.0.0.0:8081"
webhooks.max_attempts = 3
merchants.shop_1.currency = "USD"
merchants.shop_1.limits.cny_rate = 0.5
merchants.0.config.mch_id = 42
"#,
        );
        let c = Config::build(base, env).unwrap();
        assert_eq!(c.server.bind.port(), 8081);
        assert_eq!(c.webhooks.max_attempts, 3);
        let m = &c.merchants[0];
        assert_eq!(m.currency, "USD");
        assert_eq!(m.limits.amounts.per_payment_minor, 300_000);
        assert_eq!(m.config["mch_id"], "42");
        // The rest of the merchant is kept.
        assert_eq!(m.industry, Industry::Virtual);
        assert!(m.webhook_secret.is_some());

        let base = Figment::from(Toml::string(&merchant_toml(&s, "")));
        let e =
            Config::build(base, Toml::string("merchants.nobody.currency = \"USD\"")).unwrap_err();
        assert!(e.to_string().contains("nobody"), "{e}");
        let base = Figment::from(Toml::string(&merchant_toml(&s, "")));
        let e = Config::build(base, Toml::string("server.bindd = \"x\"")).unwrap_err();
        assert!(e.to_string().contains("bindd"), "{e}");
    }

    #[test]
    fn load_reads_a_file_or_fails_clearly() {
        let s = Scratch::new("file");
        let p = s.file("payhost.toml", &merchant_toml(&s, ""));
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.merchants.len(), 1);
        let e = Config::load(Some(&s.0.join("missing.toml"))).unwrap_err();
        assert!(e.to_string().contains("missing.toml"), "{e}");
        let bad = s.file("bad.toml", "[server\nbind = 1");
        assert!(matches!(
            Config::load(Some(&bad)),
            Err(ConfigError::Load(_))
        ));
    }
}
