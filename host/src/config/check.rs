//! What `payhost config check` verifies beyond the file itself: each
//! merchant's configuration against its adapter's schema, and each
//! adapter's declared egress hosts against the operator's list.

use super::Config;
use crate::runtime::{Runtime, RuntimeConfig};

/// Loads each merchant's adapter once and validates its configuration
/// against the adapter's schema; returns every problem found.
pub fn check_adapters(cfg: &Config) -> anyhow::Result<Vec<String>> {
    if cfg.merchants.is_empty() {
        return Ok(Vec::new());
    }
    // Checking needs one instance at a time, not the server's pool.
    let rt = Runtime::new(RuntimeConfig {
        max_instances: 2,
        ..cfg.runtime_config()
    })?;
    let mut loaded = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for m in &cfg.merchants {
        if !loaded.contains_key(&m.adapter) {
            let path = cfg.adapter_path(&m.adapter);
            let adapter = std::fs::read(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|bytes| {
                    rt.load(&bytes)
                        .map_err(|e| format!("{} is not a usable adapter: {e}", path.display()))
                });
            loaded.insert(m.adapter.clone(), adapter);
        }
        match &loaded[&m.adapter] {
            Err(e) => failures.push(format!("merchant `{}`, adapter `{}`: {e}", m.id, m.adapter)),
            Ok(adapter) => {
                if let Err(e) = m.adapter_config(&adapter.info) {
                    failures.push(e.to_string());
                }
            }
        }
    }
    let policy = &rt.config().egress;
    for (slot, adapter) in &loaded {
        let Ok(adapter) = adapter else { continue };
        let info = &adapter.info;
        let effective: Vec<String> = policy
            .effective_hosts(slot, &info.egress_hosts)
            .iter()
            .map(ToString::to_string)
            .collect();
        println!(
            "adapter {slot} {} (digest {}): declares [{}], may reach [{}] (plus merchants' url fields{})",
            info.version,
            &adapter.digest[..16],
            info.egress_hosts.join(", "),
            effective.join(", "),
            if policy.extra_allowed_hosts.is_empty() {
                String::new()
            } else {
                format!(" and {}", policy.extra_allowed_hosts.join(", "))
            }
        );
        if let Some(host) = policy.host_outside_list(slot, &info.egress_hosts) {
            failures.push(format!(
                "adapter `{slot}`: declares egress host `{host}`, which `[adapters.{slot}] egress` does not list; payhost would refuse this file"
            ));
        }
    }
    Ok(failures)
}
