//! From the raw sections to a [`Config`]: every value checked, every
//! secret reference resolved, every error naming the field to fix.

use super::schema::{
    AdapterSlotSettings, MerchantSettings, RawConfig, RawMerchant, ServerSettings,
};
use super::secret_refs::check_webhook_secret;
use super::{ApiKeyHash, Config, ConfigError, SecretRef, setting};
use crate::egress::HostPort;
use std::collections::{BTreeMap, HashSet};

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
    pub(super) fn resolve(self) -> Result<Config, ConfigError> {
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
            store: self.store.resolve()?,
            runtime: self.runtime,
            egress: self.egress,
            adapters,
            webhooks: self.webhooks,
            reconciler: self.reconciler,
            notify: self.notify,
            retention: self.retention,
            log: self.log,
            merchants,
        })
    }
}

impl RawMerchant {
    /// `currencies` checked: every code valid, `currency` among them, and
    /// any other one CNY with a rate to count it against the limits.
    fn order_currencies(&self) -> Result<Vec<String>, String> {
        let Some(list) = &self.currencies else {
            return Ok(vec![self.currency.clone()]);
        };
        let mut out: Vec<String> = Vec::new();
        for code in list {
            check_currency(code).map_err(|p| format!("`{code}`: {p}"))?;
            if out.contains(code) {
                return Err(format!("`{code}` is listed twice"));
            }
            if *code != self.currency && code != "CNY" {
                return Err(format!(
                    "`{code}`: besides the merchant's currency `{}`, only CNY may be added \
                     (limits are counted in `{}`, converted from CNY with `limits.cny_rate`)",
                    self.currency, self.currency
                ));
            }
            out.push(code.clone());
        }
        if !out.contains(&self.currency) {
            return Err(format!(
                "must include the merchant's currency `{}`",
                self.currency
            ));
        }
        if self.currency != "CNY"
            && out.iter().any(|c| c == "CNY")
            && self.limits.cny_rate.is_none()
        {
            return Err(format!(
                "CNY orders are counted against limits in {}: set `limits.cny_rate` (units of {} per 1 CNY)",
                self.currency, self.currency
            ));
        }
        Ok(out)
    }

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
        let currencies = self.order_currencies().map_err(|p| err("currencies", p))?;
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
        let payouts = self
            .payouts
            .resolve()
            .map_err(|e| err(&format!("payouts.{}", e.field), e.problem))?;
        let contracts = self
            .contracts
            .resolve()
            .map_err(|e| err(&format!("contracts.{}", e.field), e.problem))?;
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
        let failover = match &self.failover {
            None => None,
            Some(f) => Some(
                crate::provider_health::FailoverRule::new(
                    &f.primary,
                    &f.backup,
                    f.after_failures,
                    std::time::Duration::from_millis(f.probe_interval_ms),
                    &f.probe_path,
                )
                .map_err(|(field, problem)| err(field, problem))?,
            ),
        };
        Ok(MerchantSettings {
            pin,
            timezone,
            failover,
            api_keys,
            adapter: self.adapter.clone(),
            currency: self.currency.clone(),
            currencies,
            cny_rate: self.limits.cny_rate.clone(),
            industry: self.industry,
            callback_url,
            webhook_secret,
            refund_currency,
            limits,
            payouts,
            contracts,
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
