//! `payhost simulator`: the WeChat Pay v2 simulator (`host/simulators`)
//! standing in for the provider of one configured merchant, so a new
//! configuration reaches its first payment without a provider account.
//!
//! It takes everything from the merchant's own configuration — `appid`,
//! `mch_id`, the `api_key` reference and the loopback address of its
//! `base_url` — so payhost and the simulator agree by construction. Its
//! payers pay every order they see, `pay_after` after first seeing it, and
//! the simulator notifies payhost as WeChat would.

use crate::config::{Config, MerchantSettings, SecretRef};
use anyhow::{Context, Result, bail};
use payhost_simulators::wechat_v2::{SignType, SimConfig, Simulator};
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the payers look for new orders.
const PAYER_TICK: Duration = Duration::from_millis(100);

/// A running simulator with its payers; both stop when dropped.
pub struct LocalProvider {
    pub sim: Arc<Simulator>,
    pub merchant: String,
    payers: tokio::task::JoinHandle<()>,
}

impl Drop for LocalProvider {
    fn drop(&mut self) {
        self.payers.abort();
    }
}

impl LocalProvider {
    pub fn base_url(&self) -> String {
        self.sim.base_url()
    }
}

/// The merchant to simulate: the one named, else the only `wechat-v2` one.
pub fn pick_merchant<'a>(cfg: &'a Config, id: Option<&str>) -> Result<&'a MerchantSettings> {
    if let Some(id) = id {
        return cfg
            .merchant(id)
            .with_context(|| format!("the configuration has no merchant `{id}`"));
    }
    let mut wechat = cfg.merchants.iter().filter(|m| m.adapter == "wechat-v2");
    match (wechat.next(), wechat.next()) {
        (Some(m), None) => Ok(m),
        (None, _) => bail!("no merchant uses adapter `wechat-v2`, the one the simulator speaks"),
        (Some(_), Some(_)) => bail!("several merchants use `wechat-v2`; name one with --merchant"),
    }
}

/// Where the simulator must listen: the loopback address of the merchant's
/// `base_url`. Any other host is the real provider, not ours to stand in for.
pub fn listen_addr(merchant: &MerchantSettings) -> Result<SocketAddr> {
    let field = format!("merchant `{}`, `config.base_url`", merchant.id);
    let text = merchant.config.get("base_url").with_context(|| {
        format!("{field} is not set: point it at the simulator, e.g. \"http://127.0.0.1:9100\"")
    })?;
    let url = reqwest::Url::parse(text).with_context(|| format!("{field} is not a URL"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let host = crate::egress::normalize_host(url.host_str().unwrap_or_default());
    let ip = if host == "localhost" {
        Some(std::net::Ipv4Addr::LOCALHOST.into())
    } else {
        host.parse::<std::net::IpAddr>().ok()
    };
    let Some(ip) = ip.filter(|ip| ip.is_loopback()) else {
        bail!(
            "{field} = {text} is not a loopback address; the simulator only stands in for a local provider"
        );
    };
    let addr = SocketAddr::new(ip, port);
    Ok(addr)
}

/// The simulator's account: the merchant's own credentials.
pub fn sim_config(merchant: &MerchantSettings) -> Result<SimConfig> {
    let text = |name: &str| config_text(merchant, name);
    let key = api_key(merchant)?;
    let mut sim = SimConfig::new(&text("appid")?, &text("mch_id")?, key.expose_secret());
    if let Some(t) = merchant.config.get("sign_type") {
        sim.sign_type = SignType::parse(t)
            .with_context(|| format!("merchant `{}`, `config.sign_type` = {t}", merchant.id))?;
    }
    // The API the merchant's adapter speaks: a local base_url says nothing,
    // so `region` decides, as it does for wechat-v2.
    if merchant.config.get("region").map(String::as_str) == Some("overseas") {
        sim.overseas = Some(Default::default());
    }
    sim.sub_mch_id = merchant.config.get("sub_mch_id").cloned();
    Ok(sim)
}

/// A text field of the merchant's adapter configuration.
fn config_text(merchant: &MerchantSettings, name: &str) -> Result<String> {
    merchant
        .config
        .get(name)
        .cloned()
        .with_context(|| format!("merchant `{}` has no `config.{name}`", merchant.id))
}

/// The merchant's `config.api_key`, resolved: the simulator signs with it.
fn api_key(merchant: &MerchantSettings) -> Result<secrecy::SecretString> {
    SecretRef::parse(&config_text(merchant, "api_key")?)
        .and_then(|r| r.resolve())
        .map_err(|p| anyhow::anyhow!("merchant `{}`, `config.api_key`: {p}", merchant.id))
}

/// The merchant Acme Pay stands in for (`--provider acme-pay`): the one
/// named, else the only one on the slot `acme-pay`.
pub fn pick_acme_merchant<'a>(cfg: &'a Config, id: Option<&str>) -> Result<&'a MerchantSettings> {
    if id.is_some() {
        return pick_merchant(cfg, id);
    }
    let mut acme = cfg.merchants.iter().filter(|m| m.adapter == "acme-pay");
    match (acme.next(), acme.next()) {
        (Some(m), None) => Ok(m),
        _ => bail!("name the merchant whose adapter speaks Acme Pay with --merchant"),
    }
}

/// Acme Pay (the provider of `payhost adapter new`'s template) on
/// `listener` for `merchant`, with its `merchant_id` and `api_key`; each
/// order is paid and notified `pay_after` after it is created.
pub fn start_acme_pay(
    merchant: &MerchantSettings,
    listener: tokio::net::TcpListener,
    pay_after: Duration,
) -> Result<payhost_simulators::acme_pay::Simulator> {
    let text = |name: &str| config_text(merchant, name);
    let key = api_key(merchant)?;
    let config = payhost_simulators::acme_pay::SimConfig {
        merchant_id: text("merchant_id")?,
        key: key.expose_secret().to_string(),
        pay_after: Some(pay_after),
    };
    Ok(payhost_simulators::acme_pay::Simulator::start_on(
        config, listener,
    ))
}

/// Starts the simulator on `listener` for `merchant`, with payers who pay
/// each order `pay_after` after they first see it. `on_paid` hears of each
/// payment (the command prints it).
pub async fn start(
    merchant: &MerchantSettings,
    listener: tokio::net::TcpListener,
    pay_after: Duration,
    on_paid: impl Fn(&str, u64) + Send + 'static,
) -> Result<LocalProvider> {
    let sim = Arc::new(Simulator::start_on(sim_config(merchant)?, listener).await?);
    let payers = tokio::spawn({
        let sim = sim.clone();
        async move {
            let mut seen: HashMap<String, Instant> = HashMap::new();
            loop {
                for (no, order) in sim.truth().orders {
                    if order.state != "NOTPAY" {
                        continue;
                    }
                    let first = *seen.entry(no.clone()).or_insert_with(Instant::now);
                    // A refused payment (closed meanwhile) is the payer's bad luck.
                    if first.elapsed() >= pay_after && sim.pay_and_notify(&no).unwrap_or(false) {
                        on_paid(&no, order.total_fee);
                    }
                }
                tokio::time::sleep(PAYER_TICK).await;
            }
        }
    });
    Ok(LocalProvider {
        sim,
        merchant: merchant.id.clone(),
        payers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base_urls: &[&str]) -> Config {
        let mut text = String::new();
        for (i, url) in base_urls.iter().enumerate() {
            text.push_str(&format!(
                "[[merchants]]\nid = \"m{i}\"\napi_keys = [\"{}\"]\nadapter = \"wechat-v2\"\n\
                 currency = \"CNY\"\nindustry = \"physical\"\n[merchants.config]\n\
                 appid = \"wx1\"\nmch_id = \"10\"\napi_key = \"env:CARGO_PKG_NAME\"\nbase_url = \"{url}\"\n",
                crate::config::api_key_hash(&format!("key-{i}"))
            ));
        }
        Config::from_toml_str(&text).unwrap()
    }

    #[test]
    fn listens_on_the_loopback_address_of_the_merchants_base_url() {
        let c = config(&[
            "http://127.0.0.1:9100",
            "http://localhost:9200/",
            "http://[::1]:9300",
        ]);
        let addrs: Vec<String> = c
            .merchants
            .iter()
            .map(|m| listen_addr(m).unwrap().to_string())
            .collect();
        assert_eq!(addrs, ["127.0.0.1:9100", "127.0.0.1:9200", "[::1]:9300"]);
        // The real provider is not ours to stand in for.
        let c = config(&["https://api.mch.weixin.qq.com", "http://10.0.0.8:9100"]);
        for m in &c.merchants {
            let e = listen_addr(m).unwrap_err().to_string();
            assert!(
                e.contains("not a loopback address") && e.contains(&m.id),
                "{e}"
            );
        }
    }

    #[test]
    fn takes_the_merchants_own_credentials() {
        let c = config(&["http://127.0.0.1:9100"]);
        let m = pick_merchant(&c, None).unwrap();
        let sim = sim_config(m).unwrap();
        // Cargo sets CARGO_PKG_NAME for tests: the reference is resolved.
        assert_eq!(
            (
                sim.appid.as_str(),
                sim.mch_id.as_str(),
                sim.api_key.as_str()
            ),
            ("wx1", "10", "payhost")
        );
        let two = config(&["http://127.0.0.1:1", "http://127.0.0.1:2"]);
        assert!(
            pick_merchant(&two, None)
                .unwrap_err()
                .to_string()
                .contains("--merchant")
        );
        assert_eq!(pick_merchant(&two, Some("m1")).unwrap().id, "m1");
        assert!(pick_merchant(&two, Some("m9")).is_err());
        assert!(sim.overseas.is_none() && sim.sub_mch_id.is_none());
    }

    #[test]
    fn acts_as_the_cross_border_or_partner_api_the_merchant_is_configured_for() {
        let mut c = config(&["http://127.0.0.1:9100"]);
        let m = &mut c.merchants[0];
        m.config.insert("region".into(), "overseas".into());
        m.config.insert("sub_mch_id".into(), "1900000109".into());
        let sim = sim_config(m).unwrap();
        assert!(sim.overseas.is_some());
        assert_eq!(sim.sub_mch_id.as_deref(), Some("1900000109"));
    }
}
