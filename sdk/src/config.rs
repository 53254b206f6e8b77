//! The merchant configuration as an adapter reads it.

use crate::error::{Error, Result};
use crate::types::{ConfigEntry, ConfigValue, Secret};

/// The merchant's configuration for this adapter, already validated by the
/// host against the adapter's schema (required fields present, defaults
/// filled in). Accessors still fail cleanly, naming the field, so that a
/// schema mistake shows up as `invalid-config` rather than a panic.
#[derive(Debug, Clone, Copy)]
pub struct Config<'a> {
    entries: &'a [ConfigEntry],
}

impl<'a> Config<'a> {
    pub fn new(entries: &'a [ConfigEntry]) -> Self {
        Self { entries }
    }

    fn find(&self, name: &str) -> Option<&'a ConfigValue> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| &e.value)
    }

    /// A required plain (or URL) field.
    pub fn text(&self, name: &str) -> Result<&'a str> {
        self.text_opt(name)?
            .ok_or_else(|| Error::invalid_config(format!("missing field `{name}`")))
    }

    /// An optional plain field; empty text counts as absent.
    pub fn text_opt(&self, name: &str) -> Result<Option<&'a str>> {
        match self.find(name) {
            None => Ok(None),
            Some(ConfigValue::Text(t)) if t.is_empty() => Ok(None),
            Some(ConfigValue::Text(t)) => Ok(Some(t.as_str())),
            Some(ConfigValue::Secret(_)) => Err(Error::invalid_config(format!(
                "field `{name}` is a secret where plain text was expected"
            ))),
        }
    }

    /// A required secret field, as a handle for the secret operations.
    pub fn secret(&self, name: &str) -> Result<Secret> {
        self.secret_opt(name)?
            .ok_or_else(|| Error::invalid_config(format!("missing secret field `{name}`")))
    }

    /// An optional secret field.
    pub fn secret_opt(&self, name: &str) -> Result<Option<Secret>> {
        match self.find(name) {
            None => Ok(None),
            Some(ConfigValue::Secret(h)) => Ok(Some(*h)),
            Some(ConfigValue::Text(_)) => Err(Error::invalid_config(format!(
                "field `{name}` must be configured as a secret"
            ))),
        }
    }

    /// A required field that must be one of `allowed`.
    pub fn one_of(&self, name: &str, allowed: &[&str]) -> Result<&'a str> {
        let v = self.text(name)?;
        if allowed.contains(&v) {
            Ok(v)
        } else {
            Err(Error::invalid_config(format!(
                "field `{name}` is `{v}`, expected one of {allowed:?}"
            )))
        }
    }
}
