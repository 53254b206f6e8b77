//! Merchant configuration and its validation against an adapter's schema.

use crate::contract::{AdapterInfo, ConfigEntry, ConfigValue, FieldKind};
use crate::egress::HostPort;
use payhost_sdk::native::SecretTable;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;

/// One configured value. Secrets stay wrapped until the host performs a
/// secret operation with them; `Debug` shows `[redacted]`.
#[derive(Clone)]
pub enum FieldValue {
    Text(String),
    Secret(SecretString),
}

impl FieldValue {
    pub fn text(s: impl Into<String>) -> Self {
        FieldValue::Text(s.into())
    }
    pub fn secret(s: impl Into<String>) -> Self {
        FieldValue::Secret(SecretString::from(s.into()))
    }
}

impl std::fmt::Debug for FieldValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldValue::Text(t) => f.debug_tuple("Text").field(t).finish(),
            FieldValue::Secret(_) => f.write_str("Secret([redacted])"),
        }
    }
}

/// A merchant's settings for one adapter.
#[derive(Debug, Clone)]
pub struct MerchantConfig {
    pub id: String,
    pub fields: BTreeMap<String, FieldValue>,
}

impl MerchantConfig {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            fields: BTreeMap::new(),
        }
    }

    /// Builder-style: adds a plain field.
    pub fn text(mut self, name: &str, value: impl Into<String>) -> Self {
        self.fields.insert(name.into(), FieldValue::text(value));
        self
    }

    /// Builder-style: adds a secret field.
    pub fn secret(mut self, name: &str, value: impl Into<String>) -> Self {
        self.fields.insert(name.into(), FieldValue::secret(value));
        self
    }

    /// Checks the configuration against the adapter's schema: required
    /// fields present, secret fields configured as secrets, no unknown
    /// fields, URLs parseable; fills in defaults.
    pub fn validate(&self, info: &AdapterInfo) -> Result<ResolvedConfig, ConfigError> {
        let err = |field: &str, problem: Problem| ConfigError {
            merchant: self.id.clone(),
            adapter: info.name.clone(),
            field: field.to_string(),
            problem,
        };
        if let Some(unknown) = self
            .fields
            .keys()
            .find(|k| !info.config_schema.iter().any(|f| &f.name == *k))
        {
            return Err(err(unknown, Problem::Unknown));
        }
        let mut fields = Vec::new();
        let mut url_hosts = Vec::new();
        for spec in &info.config_schema {
            // Only a URL the operator wrote opens egress to its host: a
            // schema default is the adapter's choice.
            let configured = self.fields.contains_key(&spec.name);
            let value = match (self.fields.get(&spec.name), spec.kind) {
                (None, _) => match &spec.default {
                    Some(d) if spec.kind != FieldKind::Secret => FieldValue::Text(d.clone()),
                    _ if spec.required => return Err(err(&spec.name, Problem::Missing)),
                    _ => continue,
                },
                (Some(FieldValue::Secret(_)), FieldKind::Secret) => self.fields[&spec.name].clone(),
                (Some(FieldValue::Text(_)), FieldKind::Secret) => {
                    return Err(err(&spec.name, Problem::MustBeSecret));
                }
                (Some(FieldValue::Secret(_)), _) => {
                    return Err(err(&spec.name, Problem::MustNotBeSecret));
                }
                (Some(FieldValue::Text(t)), _) => FieldValue::Text(t.clone()),
            };
            if spec.kind == FieldKind::Url
                && let FieldValue::Text(t) = &value
            {
                let url = reqwest::Url::parse(t)
                    .map_err(|e| err(&spec.name, Problem::BadUrl(e.to_string())))?;
                match url.host_str() {
                    Some(h) if matches!(url.scheme(), "http" | "https") => {
                        if configured {
                            url_hosts.push(HostPort::new(h, url.port_or_known_default()));
                        }
                    }
                    _ => {
                        return Err(err(
                            &spec.name,
                            Problem::BadUrl("expected an absolute http(s) URL".into()),
                        ));
                    }
                }
            }
            fields.push((spec.name.clone(), value));
        }
        Ok(ResolvedConfig {
            merchant: self.id.clone(),
            fields,
            url_hosts,
        })
    }
}

/// A configuration that passed [`MerchantConfig::validate`], in schema order.
#[derive(Debug, Clone)]
pub struct ResolvedConfig {
    pub merchant: String,
    fields: Vec<(String, FieldValue)>,
    url_hosts: Vec<HostPort>,
}

impl ResolvedConfig {
    /// Hosts and ports of the `url` fields configured for the merchant
    /// (they join the egress allow-list; schema defaults do not).
    pub fn url_hosts(&self) -> &[HostPort] {
        &self.url_hosts
    }

    /// The entries an adapter sees for one step, with the step's fresh
    /// secret table. Handles follow schema order, so every step of an
    /// operation gets the same handles.
    pub fn entries(&self) -> (Vec<ConfigEntry>, SecretTable) {
        let mut table = SecretTable::new();
        let entries = self
            .fields
            .iter()
            .map(|(name, v)| ConfigEntry {
                name: name.clone(),
                value: match v {
                    FieldValue::Text(t) => ConfigValue::Text(t.clone()),
                    FieldValue::Secret(s) => {
                        ConfigValue::Secret(table.insert(s.expose_secret().as_bytes().to_vec()))
                    }
                },
            })
            .collect();
        (entries, table)
    }

    /// The secret a handle of [`ResolvedConfig::entries`] stands for.
    pub fn secret_by_handle(&self, handle: u32) -> Option<&SecretString> {
        self.fields
            .iter()
            .filter_map(|(_, v)| match v {
                FieldValue::Secret(s) => Some(s),
                FieldValue::Text(_) => None,
            })
            .nth(handle as usize)
    }

    /// Every secret value, for masking text that leaves the sandbox.
    pub fn masker(&self) -> Masker {
        Masker::new(self.fields.iter().filter_map(|(_, v)| match v {
            FieldValue::Secret(s) => Some(s.clone()),
            FieldValue::Text(_) => None,
        }))
    }
}

/// Replaces a merchant's secret values in text with `[redacted]`.
#[derive(Clone, Default)]
pub struct Masker {
    secrets: Vec<SecretString>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker({} secrets)", self.secrets.len())
    }
}

impl Masker {
    pub fn new(secrets: impl IntoIterator<Item = SecretString>) -> Self {
        // Empty secrets would match everywhere; very short ones are still
        // masked because a leaked short key is still a leaked key.
        let mut secrets: Vec<_> = secrets
            .into_iter()
            .filter(|s| !s.expose_secret().is_empty())
            .collect();
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
        Self { secrets }
    }

    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.expose_secret()) {
                out = out.replace(s.expose_secret(), "[redacted]");
            }
        }
        out
    }
}

/// A merchant configuration that does not fit the adapter's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("merchant `{merchant}`, adapter `{adapter}`, field `{field}`: {problem}")]
pub struct ConfigError {
    pub merchant: String,
    pub adapter: String,
    pub field: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("required by the adapter's schema but not configured")]
    Missing,
    #[error("not in the adapter's configuration schema")]
    Unknown,
    #[error("the schema marks it secret; configure it as a secret")]
    MustBeSecret,
    #[error(
        "configured as a secret, but the schema does not mark it secret; payhost never hands a secret to an adapter as plain text"
    )]
    MustNotBeSecret,
    #[error("not a usable URL: {0}")]
    BadUrl(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Capabilities, ConfigField};

    fn info() -> AdapterInfo {
        let field = |name: &str, kind, required, default: Option<&str>| ConfigField {
            name: name.into(),
            description: String::new(),
            kind,
            required,
            default: default.map(Into::into),
        };
        AdapterInfo {
            name: "t".into(),
            version: "1.0.0".into(),
            contract_version: "0.1.0".into(),
            methods: vec![],
            currencies: vec![],
            capabilities: Capabilities {
                payment_notifications: true,
                refund_notifications: false,
                partial_refunds: true,
                query_by_merchant_order_no: true,
                close: false,
                refund_query: false,
                payouts: false,
                payout_notifications: false,
                contracts: false,
                contract_notifications: false,
                deduction_notifications: false,
            },
            egress_hosts: vec![],
            field_rules: vec![],
            config_schema: vec![
                field("mch_id", FieldKind::Text, true, None),
                field("api_key", FieldKind::Secret, true, None),
                field(
                    "base_url",
                    FieldKind::Url,
                    false,
                    Some("https://API.example.com/v2"),
                ),
                field("sign_type", FieldKind::Text, false, Some("MD5")),
            ],
        }
    }

    #[test]
    fn fills_defaults_and_hands_out_handles() {
        let m = MerchantConfig::new("m1")
            .text("mch_id", "1")
            .secret("api_key", "k-123");
        let r = m.validate(&info()).unwrap();
        // The default base_url is the adapter's choice: it opens no egress.
        assert!(r.url_hosts().is_empty());
        let r = m
            .clone()
            .text("base_url", "http://Sim.Example:8080/v2")
            .validate(&info())
            .unwrap();
        assert_eq!(r.url_hosts(), [HostPort::new("sim.example", Some(8080))]);
        let r = m
            .clone()
            .text("base_url", "https://api.example.com/v2")
            .validate(&info())
            .unwrap();
        assert_eq!(r.url_hosts(), [HostPort::new("api.example.com", Some(443))]);
        let (entries, table) = r.entries();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[1].value, ConfigValue::Secret(0));
        assert_eq!(table.len(), 1);
        assert_eq!(r.masker().mask("x k-123 y"), "x [redacted] y");
    }

    #[test]
    fn rejects_and_names_merchant_and_field() {
        let missing = MerchantConfig::new("m1")
            .text("mch_id", "1")
            .validate(&info())
            .unwrap_err();
        assert_eq!(
            (missing.field.as_str(), &missing.problem),
            ("api_key", &Problem::Missing)
        );
        assert!(missing.to_string().contains("m1"));
        let plain = MerchantConfig::new("m1")
            .text("mch_id", "1")
            .text("api_key", "sk-plain");
        let e = plain.validate(&info()).unwrap_err();
        assert_eq!(e.problem, Problem::MustBeSecret);
        assert!(!e.to_string().contains("sk-plain"));
        let unknown = MerchantConfig::new("m1")
            .text("mch_id", "1")
            .secret("api_key", "k")
            .text("x", "1");
        assert_eq!(
            unknown.validate(&info()).unwrap_err().problem,
            Problem::Unknown
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let m = MerchantConfig::new("m1").secret("api_key", "very-secret-value");
        assert!(!format!("{m:?}").contains("very-secret-value"));
    }
}
