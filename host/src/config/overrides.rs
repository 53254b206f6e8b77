//! `PAYHOST_<SECTION>__<KEY>` environment variables layered on the file;
//! merchants addressed by id or position.

use super::{ConfigError, setting};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

pub(super) const ENV_PREFIX: &str = "PAYHOST_";
pub(super) const SECTIONS: [&str; 11] = [
    "server",
    "store",
    "runtime",
    "egress",
    "adapters",
    "webhooks",
    "reconciler",
    "notify",
    "retention",
    "log",
    "merchants",
];

/// Applies environment patches to the merchants array of `figment`.
pub(super) fn patch_merchants(
    figment: &Figment,
    patches: Value,
) -> Result<Vec<Value>, ConfigError> {
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
pub(super) struct Overrides(Dict);

impl Overrides {
    pub(super) fn new(dict: Dict) -> Self {
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
