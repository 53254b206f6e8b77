//! Secrets in the configuration: `env:NAME` / `file:PATH` references and
//! their resolution, API key hashes, the webhook secret's form, and which
//! values of a merchant's adapter configuration are secrets.

use super::{ConfigError, MerchantSettings};
use crate::contract::{AdapterInfo, FieldKind};
use crate::merchant::{FieldValue, MerchantConfig};
use secrecy::{ExposeSecret, SecretString};
use sha2::Digest as _;
use std::fmt;
use std::path::PathBuf;

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

/// `whsec_` and the base64 of a key of at least 24 bytes (the Standard
/// Webhooks recommendation).
pub(super) fn check_webhook_secret(secret: &SecretString) -> Result<(), String> {
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

impl MerchantSettings {
    pub(super) fn err(&self, field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
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
