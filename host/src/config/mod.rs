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
//! [`secrecy::SecretString`]s. A literal where a secret belongs is refused, so a
//! configuration file never holds one. Fields of `[merchants.config]` are
//! secret when the adapter's `describe` schema says so, which is only known
//! once the adapter is loaded: [`MerchantSettings::adapter_config`].
//!
//! See `docs/payhost.example.toml` for a commented file.
//!
//! The module is split by job:
//! - `schema`: the TOML sections as serde structs, their defaults, and the
//!   resolved settings;
//! - `secret_refs`: `env:`/`file:` references, API key hashes, webhook
//!   secrets, and which adapter-config values are secrets;
//! - `store_url`: `[store]`, SQLite or PostgreSQL, by `url` or `sqlite_path`;
//! - `overrides`: `PAYHOST_*` environment variables layered on the file;
//! - `validation`: raw sections to [`Config`], every error naming the field
//!   (amount limits themselves are resolved by [`crate::limits`]);
//! - `summary`: the operator's summary `payhost config check` prints;
//! - `check`: what `config check` verifies beyond the file, against the
//!   adapters themselves and the egress policy;
//! - `starter`: the starter configuration `config init` writes.

mod check;
mod overrides;
mod schema;
mod secret_refs;
mod starter;
mod store_url;
mod summary;
mod validation;

pub use check::{
    CheckReport, check_adapters, denied_endpoints, missing_refund_fields, unused_failover,
};
pub use schema::{
    AdapterSlotSettings, EMBEDDED_DEFAULT, EgressSettings, LogSettings, MerchantSettings,
    ReconcilerSettings, RuntimeSettings, ServerSettings, WebhookSettings,
};
pub use secret_refs::{ApiKeyHash, SecretRef, api_key_hash};
pub use starter::{STARTER_MERCHANT, Starter, StarterOptions, write_starter};
pub use store_url::StoreSettings;
pub use validation::parse_digest;

use crate::egress::EgressPolicy;
use crate::notify_guard::NotifySettings;
use crate::retention::RetentionSettings;
use crate::runtime::RuntimeConfig;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Provider};
use overrides::{ENV_PREFIX, Overrides, SECTIONS, patch_merchants};
use schema::RawConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "PAYHOST_CONFIG";

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

pub(crate) fn setting(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Setting {
        field: field.into(),
        problem: problem.into(),
    }
}

pub(crate) fn figment_error(e: figment::Error) -> ConfigError {
    // figment reports every problem it found; show them all.
    ConfigError::Load(
        e.into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; "),
    )
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
    pub log: LogSettings,
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
                extra_root_certificates: self.egress.extra_root_certificates.clone(),
                failover: self
                    .merchants
                    .iter()
                    .filter_map(|m| Some((m.id.clone(), m.failover.clone()?)))
                    .collect(),
            },
        }
    }

    /// Where the component of adapter slot `adapter` is.
    pub fn adapter_path(&self, adapter: &str) -> PathBuf {
        self.runtime.adapters_dir.join(format!("{adapter}.wasm"))
    }
}

#[cfg(test)]
mod tests;
