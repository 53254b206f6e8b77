//! What `payhost config check` verifies beyond the file itself: each
//! merchant's configuration against its adapter's schema, each adapter's
//! declared egress hosts against the operator's list, and each merchant's
//! provider endpoint against the egress policy (also what `/readyz` asks),
//! each merchant's configuration as the adapter itself judges it (offline),
//! and, as warnings, the optional fields a merchant omits that some
//! operation will need.

use super::Config;
use crate::CallError;
use crate::contract::{AdapterInfo, FieldKind};
use crate::egress::{Egress, normalize_host};
use crate::merchant::{FieldValue, MerchantConfig};
use crate::runtime::{Runtime, RuntimeConfig};

/// What the check found: one line per adapter (what it declares and may
/// reach), every problem, each naming what to change, and warnings about
/// what works today but will fail later (a refund without its field).
#[derive(Debug, Default)]
pub struct CheckReport {
    pub adapters: Vec<String>,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

/// Loads each merchant's adapter once, validates the merchant's
/// configuration against the adapter's schema and its endpoints against
/// the egress policy; reports every problem found.
pub fn check_adapters(cfg: &Config) -> anyhow::Result<CheckReport> {
    let mut report = CheckReport::default();
    if cfg.merchants.is_empty() {
        return Ok(report);
    }
    // Checking needs one instance at a time, not the server's pool.
    let rt = Runtime::new(RuntimeConfig {
        max_instances: 2,
        ..cfg.runtime_config()
    })?;
    let mut loaded = std::collections::BTreeMap::new();
    for m in &cfg.merchants {
        let failures = &mut report.problems;
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
            Ok(adapter) => match m.adapter_config(&adapter.info) {
                Err(e) => failures.push(e.to_string()),
                Ok(config) => {
                    report
                        .warnings
                        .extend(missing_refund_fields(&adapter.info, &config));
                    if let Some(rule) = &m.failover {
                        report
                            .warnings
                            .extend(unused_failover(&adapter.info, &config, rule));
                    }
                    failures.extend(denied_endpoints(rt.egress(), &adapter.info, &config));
                    failures.extend(refused_by_adapter(&rt, adapter, &config));
                }
            },
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
        report.adapters.push(format!(
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
        ));
        if let Some(host) = policy.host_outside_list(slot, &info.egress_hosts) {
            report.problems.push(format!(
                "adapter `{slot}`: declares egress host `{host}`, which `[adapters.{slot}] egress` does not list; payhost would refuse this file"
            ));
        }
    }
    Ok(report)
}

/// The adapter's own verdict on the merchant's configuration, beyond its
/// schema (a `mode` it does not know, a key it cannot use): the first step
/// of a query, run offline, answers `invalid-config` for such a
/// configuration before any request. Said at check, not at the first
/// payment.
pub fn refused_by_adapter(
    rt: &Runtime,
    adapter: &crate::runtime::LoadedAdapter,
    merchant: &MerchantConfig,
) -> Option<String> {
    use crate::contract::{AdapterError, CallContext, OrderRef, QueryRequest};
    use crate::runtime::{OfflineStep, Operation};
    let query = Operation::Query(QueryRequest {
        order: OrderRef {
            merchant_order_no: "CONFIGCHECK0001".into(),
            provider_trade_no: Some("CONFIGCHECK0001".into()),
            channel_transaction_id: None,
        },
    });
    let call = CallContext {
        request_id: "config-check".into(),
        timestamp: crate::clock::now_ms() / 1000,
        seed: 1,
        notify_url: String::new(),
    };
    // A runtime of its own, on a thread of its own: the check is also
    // called from inside tokio (tests, `/readyz`), where blocking on
    // another runtime would panic.
    let step = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let tokio = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                Some(tokio.block_on(rt.step_offline(adapter, merchant, call, query, &[])))
            })
            .join()
            .ok()
            .flatten()
    })?;
    match step {
        Ok(OfflineStep::Done(Err(AdapterError::InvalidConfig(m)))) => Some(format!(
            "merchant `{}` (adapter `{}`): the adapter refuses its configuration: {m}",
            merchant.id, adapter.info.name
        )),
        _ => None,
    }
}

/// The merchant's provider endpoints (its url fields, configured or the
/// adapter's defaults) that the egress policy would refuse, each naming the
/// merchant, the field and the setting to change. Checked as the request
/// itself would be, before any request; a name is not resolved here, except
/// `localhost`, which always means loopback.
pub fn denied_endpoints(
    egress: &Egress,
    info: &AdapterInfo,
    merchant: &MerchantConfig,
) -> Vec<String> {
    // A configuration its schema refuses is reported as such elsewhere.
    let Ok(resolved) = merchant.validate(info) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for spec in info
        .config_schema
        .iter()
        .filter(|f| f.kind == FieldKind::Url)
    {
        let (url, source) = match merchant.fields.get(&spec.name) {
            Some(FieldValue::Text(t)) => (t.as_str(), "configured"),
            Some(FieldValue::Secret(_)) => continue,
            None => match &spec.default {
                Some(d) => (d.as_str(), "the adapter's default"),
                None => continue,
            },
        };
        let refusal = match egress.check(url, info, resolved.url_hosts(), &merchant.id) {
            Err(CallError::EgressDenied { reason, .. }) => Some(reason),
            Err(e) => Some(e.to_string()),
            Ok(parsed) => {
                let host = parsed.host_str().map(normalize_host).unwrap_or_default();
                let local = host == "localhost" || host.ends_with(".localhost");
                (local && !egress.policy().allow_private).then(|| {
                    format!(
                        "`{host}` is loopback; payhost reaches such addresses only for a local \
                         provider (a simulator), when `[egress] allow_private = true`"
                    )
                })
            }
        };
        if let Some(reason) = refusal {
            problems.push(format!(
                "merchant `{}`, `config.{}` = {url} ({source}): every call to the provider would fail \
                 with egress_denied: {reason}",
                merchant.id, spec.name
            ));
        }
    }
    problems
}

/// A warning when the merchant's failover `primary` is the origin of none
/// of its provider URLs (configured or the adapter's defaults): no request
/// would ever count towards it, so it would never switch.
pub fn unused_failover(
    info: &AdapterInfo,
    merchant: &MerchantConfig,
    rule: &crate::provider_health::FailoverRule,
) -> Option<String> {
    let origins: Vec<String> = info
        .config_schema
        .iter()
        .filter(|f| f.kind == FieldKind::Url)
        .filter_map(|f| match merchant.fields.get(&f.name) {
            Some(FieldValue::Text(t)) => Some(t.clone()),
            Some(FieldValue::Secret(_)) => None,
            None => f.default.clone(),
        })
        .filter_map(|u| reqwest::Url::parse(&u).ok())
        .map(|u| u.origin().ascii_serialization())
        .collect();
    (!origins.contains(&rule.primary)).then(|| {
        format!(
            "merchant `{}`: `failover.primary` = {} is the origin of none of its provider URLs ({});              no request counts towards it, so it never switches to `{}`",
            merchant.id,
            rule.primary,
            if origins.is_empty() {
                "the adapter has no url field".to_string()
            } else {
                origins.join(", ")
            },
            rule.backup
        )
    })
}

/// The optional secret fields the merchant omits whose schema description
/// says refunds use them (wechat-v2's `client_cert`, the mutual-TLS
/// certificate), one warning each: payments work without them, and the
/// first refund would fail. Read from the adapter's schema rather than
/// known by adapter name, since the contract has no marker for it.
pub fn missing_refund_fields(info: &AdapterInfo, merchant: &MerchantConfig) -> Vec<String> {
    info.config_schema
        .iter()
        .filter(|f| {
            f.kind == FieldKind::Secret
                && !f.required
                && f.description.to_ascii_lowercase().contains("refund")
                && !merchant.fields.contains_key(&f.name)
        })
        .map(|f| {
            format!(
                "merchant `{}` (adapter `{}`): refunds need `config.{}` ({}), which is not set; \
                 payments work, refunds will fail until it is",
                merchant.id, info.name, f.name, f.description
            )
        })
        .collect()
}
