//! `payhost demo`: one payment walked from creation to refund on this
//! machine, through the real payment front, with nothing to configure.
//!
//! It builds the adapters (cached), starts the simulator of the chosen
//! provider on loopback, starts payhost (HTTP API, SQLite store, webhook
//! worker, reconciler) in front of it and a small merchant callback
//! receiver, then plays the merchant's backend: create the order, hand over
//! what the payer needs (the `wx.requestPayment` parameters, a payment URL
//! or a QR text), learn that it was paid (by notification, or by payhost's
//! own polling for providers that send none), refund part of it.
//!
//! Each provider's scenario (its simulator, merchant configuration, method
//! and currency) is a module of its own; this one walks any of them.

mod regional;
mod wechat;

use crate::builder::{self, BuildOptions};
use crate::config::{Config, api_key_hash};
use crate::server;
use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

const MERCHANT_KEY: &str = "pk_demo_shop";
const WEBHOOK_SECRET: &str = "whsec_ZGVtby13ZWJob29rLXNlY3JldC0wMDAwMDA=";

/// The provider the demo walks a payment through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Provider {
    /// WeChat Pay API v2: XML, MD5 signatures.
    #[value(name = "wechat-v2")]
    WechatV2,
    /// WeChat Pay API v3: JSON, RSA signatures, encrypted notifications.
    #[value(name = "wechat-v3")]
    WechatV3,
    /// Yaband (Europe): JSON, HMAC-SHA256; a mini-program payment in EUR.
    Yaband,
    /// 2paynow (Europe): MD5; a WeChat QR payment in EUR, no refund API.
    #[value(name = "2paynow")]
    TwoPayNow,
    /// Supay (Australia): form, MD5; a mini-program payment in AUD.
    Supay,
    /// VR Payment (wallee gateway): a card payment in EUR, learnt by polling.
    #[value(name = "vr-payment")]
    VrPayment,
    /// WeChat cloud payment, for payhost inside WeChat Cloud Hosting.
    #[value(name = "wechat-cloudpay")]
    WechatCloudpay,
}

impl Provider {
    async fn scenario(self, ws: &Path, dir: &Path) -> Result<Scenario> {
        match self {
            Provider::WechatV2 => wechat::v2(dir).await,
            Provider::WechatV3 => wechat::v3(ws, dir).await,
            Provider::Yaband => regional::yaband(dir).await,
            Provider::TwoPayNow => regional::twopaynow(dir).await,
            Provider::Supay => regional::supay(dir).await,
            Provider::VrPayment => regional::vr_payment(dir).await,
            Provider::WechatCloudpay => regional::wechat_cloudpay(dir).await,
        }
    }
}

/// What the demo walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flow {
    /// A payment: created, paid, notified, partly refunded.
    Payment,
    /// A payout to a payee's wallet (WeChat Pay v3's merchant transfer):
    /// created under the merchant's limits, confirmed by the payee,
    /// notified; one over a limit refused.
    Payout,
    /// An auto-debit contract (WeChat Pay v2's papay): signed in WeChat's
    /// signing mini-program, charged twice, the contract's daily limit
    /// hit, terminated.
    Contract,
}

/// One provider's walk: its simulator and what the merchant configures.
struct Scenario {
    /// The provider's name for people.
    title: &'static str,
    /// The adapter slot the merchant uses.
    adapter: &'static str,
    currency: &'static str,
    method: &'static str,
    payer: Value,
    /// Lines of `[merchants.limits]` (a local currency needs `cny_rate`).
    limits: String,
    /// The `[merchants.config]` table (secrets as `file:` references).
    merchant_config: String,
    /// Whether the provider has a refund the demo can walk.
    refunds: bool,
    /// Whether the provider makes payouts the demo can walk.
    payouts: bool,
    /// Lines of `[merchants.contracts]`.
    contracts: String,
    sim: Box<dyn ProviderSim>,
}

/// What the demo asks of a provider's simulator.
#[async_trait::async_trait]
trait ProviderSim: Send + Sync {
    /// payhost listens at `base_url` (for providers that must be told).
    fn payhost_started(&self, _base_url: &str) {}
    /// The payer pays. Answers what payhost answered each notification the
    /// provider sent (none: payhost learns it by polling).
    async fn pay(&self, order_no: &str) -> Result<Vec<Answer>>;
    /// The provider settles the refund; answers as for [`Self::pay`].
    async fn settle_refund(&self, refund_no: &str) -> Result<Vec<Answer>>;
    /// The payee confirms the payout and the provider notifies its result;
    /// answers as for [`Self::pay`].
    async fn confirm_payout(&self, _payout_no: &str) -> Result<Vec<Answer>> {
        bail!("this provider makes no payouts")
    }
    /// The payer signs in the provider's signing page with what payhost
    /// handed out; the provider notifies payhost (on its own time).
    fn sign_contract(&self, _signing: &Value, _openid: &str) -> Result<()> {
        bail!("this provider has no auto-debit contracts")
    }
    /// The provider charges an accepted deduction and notifies payhost.
    fn charge_deduction(&self, _deduction_no: &str) -> Result<()> {
        bail!("this provider has no auto-debit contracts")
    }
}

/// What payhost answered a provider's notification, and whether that
/// provider counts it as acknowledged.
struct Answer {
    status: u16,
    body: String,
    acknowledged: bool,
}

impl Answer {
    /// For providers that count any 2xx as acknowledged (WeChat Pay v3, §3.7).
    fn any_2xx((status, body): (u16, String)) -> Answer {
        Answer {
            acknowledged: (200..300).contains(&status),
            status,
            body,
        }
    }
}

/// Where the demo runs from: the checkout it was built in.
fn workspace() -> Result<PathBuf> {
    let here = std::env::current_dir()?;
    builder::find_workspace(&here)
        .or_else(|| builder::find_workspace(Path::new(env!("CARGO_MANIFEST_DIR"))))
        .context("payhost demo runs inside the payhost checkout (it builds the adapters)")
}

/// The merchant backend's side: a thin JSON client of the payhost API.
struct Backend {
    http: reqwest::Client,
    base: String,
}

impl Backend {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(MERCHANT_KEY);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body)?);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let value = serde_json::from_slice(&resp.bytes().await?).unwrap_or(Value::Null);
        Ok((status, value))
    }

    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Result<Value> {
        let (got, value) = self.send(method, path, body).await?;
        if got != status {
            bail!("{path} answered {got}, expected {status}: {value}");
        }
        Ok(value)
    }
}

/// Runs the walkthrough; fails on the first step that does not behave.
pub async fn run(provider: Provider, flow: Flow) -> Result<()> {
    let ws = workspace()?;
    if flow == Flow::Payout && provider != Provider::WechatV3 {
        bail!("the payout flow runs on `--provider wechat-v3`, whose adapter makes payouts");
    }
    if flow == Flow::Contract && provider != Provider::WechatV2 {
        bail!(
            "the contract flow runs on `--provider wechat-v2`, whose simulator signs papay contracts"
        );
    }
    println!("1. Building the adapters into components (cached after the first run)");
    let adapters_dir = ws.join("target").join("components");
    let built = tokio::task::spawn_blocking({
        let (ws, out_dir) = (ws.clone(), adapters_dir.clone());
        move || {
            builder::build(&BuildOptions {
                dirs: vec![ws.join("adapters")],
                workspace: ws,
                out_dir,
                target_dir: None,
                js_dir: None,
            })
        }
    })
    .await??;
    for b in &built {
        println!("   {:<12} {:>8} bytes", b.name, b.bytes);
    }

    let data = ws
        .join("target")
        .join("demo")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&data)?;
    let scenario = provider.scenario(&ws, &data).await?;
    println!(
        "2. Starting a {} simulator, a merchant callback receiver and payhost",
        scenario.title
    );
    let (hooks_tx, mut hooks) = mpsc::unbounded_channel::<Value>();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let callback_url = format!("http://{}/payhost-events", receiver.local_addr()?);
    let receiver_app = axum::Router::new()
        .route("/payhost-events", post(receive_webhook))
        .with_state(hooks_tx);
    let receiver_task = tokio::spawn(async move { axum::serve(receiver, receiver_app).await });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = Config::from_toml_str(&demo_config(
        &data,
        &adapters_dir,
        &ws,
        addr,
        &callback_url,
        &scenario,
    )?)?;
    let running = server::start(&config, listener).await?;
    scenario.sim.payhost_started(&format!("http://{addr}"));
    println!(
        "   payhost on http://{addr}, store {}",
        data.join("payhost.db").display()
    );
    let backend = Backend {
        http: reqwest::Client::new(),
        base: format!("http://{addr}"),
    };

    let result = match flow {
        Flow::Payment => walk(&backend, &scenario, &mut hooks).await.map(|refunded| {
            if refunded {
                "created -> paid -> partially refunded"
            } else {
                "created -> paid"
            }
        }),
        Flow::Payout => walk_payout(&backend, &scenario, &mut hooks)
            .await
            .map(|()| "payout created -> waiting for the payee -> succeeded"),
        Flow::Contract => walk_contract(&backend, &scenario, &mut hooks)
            .await
            .map(|()| "contract signed -> charged twice -> limited -> terminated"),
    };
    running.stop();
    receiver_task.abort();
    let _ = std::fs::remove_dir_all(&data);
    println!(
        "Done: {}; every message signed and verified, every change durable before it was acknowledged.",
        result?
    );
    Ok(())
}

/// The merchant backend pays a reward into a payee's wallet, then tries
/// one over the merchant's limit.
async fn walk_payout(
    backend: &Backend,
    scenario: &Scenario,
    hooks: &mut mpsc::UnboundedReceiver<Value>,
) -> Result<()> {
    use reqwest::Method;
    if !scenario.payouts {
        bail!("{} makes no payouts", scenario.title);
    }
    let payout_no = format!("DEMOPAY{}", std::process::id());
    // From 2,000.00 CNY WeChat checks the payee's real name.
    let payee = json!({ "app_id": scenario.payer["app_id"], "openid": scenario.payer["openid"], "real_name": "王小王" });
    let amount = 200_000;
    println!(
        "3. The backend pays {} to a payee's wallet (payout {payout_no}); from 2,000.00 CNY WeChat checks the payee's real name",
        show(amount, "CNY")
    );
    let body = json!({
        "payout_no": payout_no,
        "amount": amount,
        "currency": "CNY",
        "payee": payee,
        "remark": "payhost demo reward",
    });
    let payout = backend
        .expect(Method::POST, "/v1/payouts", Some(body), 201)
        .await?;
    println!("   POST /v1/payouts -> 201, state {}", payout["state"]);
    println!(
        "   wx.requestMerchantTransfer({}) in the payee's mini-program",
        payout["confirmation"]
    );

    println!(
        "4. The payee confirms; {} pays and notifies payhost",
        scenario.title
    );
    acknowledged(
        &scenario.sim.confirm_payout(&payout_no).await?,
        "payout notification",
    )?;
    let path = format!("/v1/payouts/{payout_no}");
    let payout = until(backend, &path, "state", "succeeded").await?;
    println!(
        "   GET {path} -> state {}, WeChat bill {}",
        payout["state"], payout["provider_payout_id"]
    );
    println!("5. The merchant's callback receives a signed webhook");
    let event = next_hook(hooks).await?;
    println!(
        "   {} for {} (Standard Webhooks signature verified)",
        event["type"], event["data"]["payout"]["payout_no"]
    );

    let over = 500_001;
    println!(
        "6. A payout of {} passes seed 002's 5,000.00 CNY per payout: refused before WeChat is asked",
        show(over, "CNY")
    );
    let (status, refused) = backend
        .send(
            Method::POST,
            "/v1/payouts",
            Some(json!({
                "payout_no": format!("{payout_no}X"), "amount": over, "currency": "CNY",
                "payee": payee,
                "remark": "too much",
            })),
        )
        .await?;
    if status != 422 || refused["limit"] != "per_payout" {
        bail!("the payout over the limit answered {status}: {refused}");
    }
    println!(
        "   POST /v1/payouts -> 422 {} (limit {}, max {})",
        refused["code"], refused["limit"], refused["max"]
    );
    Ok(())
}

/// The merchant backend starts a contract, the payer signs, two
/// deductions are charged, a third passes the contract's daily count, and
/// the contract is terminated.
async fn walk_contract(
    backend: &Backend,
    scenario: &Scenario,
    hooks: &mut mpsc::UnboundedReceiver<Value>,
) -> Result<()> {
    use reqwest::Method;
    let no = format!("DEMOC{}", std::process::id());
    println!("3. The backend starts contract {no} on WeChat's papay template 12535");
    let body = json!({
        "contract_no": no, "plan_id": "12535", "display_name": "payhost demo membership",
        "payer": { "app_id": scenario.payer["app_id"] },
    });
    let created = backend
        .expect(Method::POST, "/v1/contracts", Some(body), 201)
        .await?;
    let signing = &created["signing"];
    println!(
        "   POST /v1/contracts -> 201, state {}; wx.navigateToMiniProgram({{appId: {}, path: {}, extraData: {} signed fields}})",
        created["state"],
        signing["app_id"],
        signing["path"],
        signing["extra_data"].as_object().map_or(0, |m| m.len())
    );
    println!("4. The payer signs in WeChat's signing mini-program; WeChat notifies payhost");
    let openid = scenario.payer["openid"].as_str().unwrap_or("o-demo");
    scenario.sim.sign_contract(signing, openid)?;
    let path = format!("/v1/contracts/{no}");
    let active = until(backend, &path, "state", "active").await?;
    println!(
        "   GET {path} -> state {}, WeChat contract {}",
        active["state"], active["provider_contract_id"]
    );
    let event = next_hook(hooks).await?;
    println!(
        "   {} (Standard Webhooks signature verified)",
        event["type"]
    );

    for (i, amount) in [(1, 1500u64), (2, 2500)] {
        let dno = format!("{no}D{i}");
        println!(
            "{}. The backend charges {} (deduction {dno}); WeChat accepts, charges and notifies",
            4 + i,
            show(amount, "CNY")
        );
        let d = backend
            .expect(
                Method::POST,
                &format!("{path}/deductions"),
                Some(
                    json!({"deduction_no": dno, "amount": amount, "currency": "CNY",
                            "description": "payhost demo membership",
                            "client_ip": scenario.payer["client_ip"]}),
                ),
                201,
            )
            .await?;
        println!("   POST {path}/deductions -> 201, state {}", d["state"]);
        scenario.sim.charge_deduction(&dno)?;
        let paid = until(
            backend,
            &format!("{path}/deductions/{dno}"),
            "state",
            "succeeded",
        )
        .await?;
        println!(
            "   -> state {}, WeChat transaction {}",
            paid["state"], paid["provider_deduction_id"]
        );
        let event = next_hook(hooks).await?;
        println!(
            "   {} for {} (signed webhook)",
            event["type"], event["data"]["deduction"]["deduction_no"]
        );
    }
    println!(
        "7. A third deduction today passes the contract's daily count (2 in this demo): refused before WeChat is asked"
    );
    let (status, refused) = backend
        .send(
            Method::POST,
            &format!("{path}/deductions"),
            Some(
                json!({"deduction_no": format!("{no}D3"), "amount": 100, "currency": "CNY",
                        "description": "payhost demo membership",
                        "client_ip": scenario.payer["client_ip"]}),
            ),
        )
        .await?;
    if status != 422 || refused["limit"] != "per_contract_day_count" {
        bail!("the third deduction answered {status}: {refused}");
    }
    println!(
        "   POST {path}/deductions -> 422 {} (limit {}, max {})",
        refused["code"], refused["limit"], refused["max"]
    );
    println!("8. The backend terminates the contract at WeChat");
    let ended = backend
        .expect(
            Method::DELETE,
            &path,
            Some(json!({"reason": "demo over"})),
            200,
        )
        .await?;
    println!("   DELETE {path} -> 200, state {}", ended["state"]);
    let event = next_hook(hooks).await?;
    println!("   {} (signed webhook)", event["type"]);
    Ok(())
}

/// `minor` units of `currency` as people write them ("19.99 EUR").
fn show(minor: u64, currency: &str) -> String {
    let money = payhost_sdk::types::Money {
        minor,
        currency: currency.into(),
    };
    let text = payhost_sdk::money::to_decimal(&money).unwrap_or_else(|_| minor.to_string());
    format!("{text} {currency}")
}

/// What the payer is handed, in a line.
fn describe_action(action: &Value) -> String {
    match action["type"].as_str() {
        Some("mini_program") => format!("wx.requestPayment({})", action["params"]),
        Some("redirect") => format!("open {}", action["url"]),
        Some("qr_code") => format!("show the QR code of {}", action["text"]),
        _ => format!("pay action {action}"),
    }
}

/// Reads `path` until `field` is `want`: payhost settles orders of
/// providers that send no notification by polling them.
async fn until(backend: &Backend, path: &str, field: &str, want: &str) -> Result<Value> {
    let mut value = Value::Null;
    for _ in 0..300 {
        value = backend
            .expect(reqwest::Method::GET, path, None, 200)
            .await?;
        if value[field] == want {
            return Ok(value);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{path}: `{field}` is still {} after 30 s", value[field])
}

fn acknowledged(answers: &[Answer], what: &str) -> Result<()> {
    for answer in answers {
        println!(
            "   payhost answered HTTP {}: {}",
            answer.status, answer.body
        );
        if !answer.acknowledged {
            bail!("the {what} was not acknowledged");
        }
    }
    Ok(())
}

/// The merchant backend's walk; answers whether it refunded.
async fn walk(
    backend: &Backend,
    scenario: &Scenario,
    hooks: &mut mpsc::UnboundedReceiver<Value>,
) -> Result<bool> {
    use reqwest::Method;
    let order_no = format!("DEMO{}", std::process::id());
    let currency = scenario.currency;

    println!(
        "3. The backend creates order {order_no} for {} ({})",
        show(1999, currency),
        scenario.method
    );
    let body = json!({
        "merchant_order_no": order_no,
        "amount": 1999,
        "currency": currency,
        "description": "payhost demo: green tea 250 g",
        "method": scenario.method,
        "payer": scenario.payer,
    });
    let payment = backend
        .expect(Method::POST, "/v1/payments", Some(body), 201)
        .await?;
    println!("   POST /v1/payments -> 201, state {}", payment["state"]);
    println!("   {}", describe_action(&payment["pay_action"]));

    let answers = scenario.sim.pay(&order_no).await?;
    let path = format!("/v1/payments/{order_no}");
    if answers.is_empty() {
        println!(
            "4. The payer pays; {} sends no notification, so payhost polls it",
            scenario.title
        );
    } else {
        println!("4. The payer pays; {} notifies payhost", scenario.title);
    }
    acknowledged(&answers, "notification")?;
    let payment = until(backend, &path, "state", "paid").await?;
    println!(
        "   GET {path} -> state {}, provider trade {}, WeChat transaction {}",
        payment["state"], payment["provider_trade_no"], payment["channel_transaction_id"]
    );

    println!("5. The merchant's callback receives a signed webhook");
    let event = next_hook(hooks).await?;
    println!(
        "   {} for {} (Standard Webhooks signature verified)",
        event["type"], event["data"]["payment"]["merchant_order_no"]
    );

    if scenario.refunds {
        println!(
            "6. The backend refunds {}; {} settles it",
            show(500, currency),
            scenario.title
        );
        let refund_no = format!("{order_no}R1");
        let refund = backend
            .expect(
                Method::POST,
                &format!("{path}/refunds"),
                Some(
                    json!({ "refund_no": refund_no, "amount": 500, "reason": "one item returned" }),
                ),
                201,
            )
            .await?;
        println!("   POST .../refunds -> 201, state {}", refund["state"]);
        acknowledged(
            &scenario.sim.settle_refund(&refund_no).await?,
            "refund notification",
        )?;
        let refund = until(
            backend,
            &format!("{path}/refunds/{refund_no}"),
            "state",
            "succeeded",
        )
        .await?;
        let payment = backend.expect(Method::GET, &path, None, 200).await?;
        println!(
            "   refund {}, payment {} ({} of {} refunded)",
            refund["state"], payment["state"], payment["refunded_amount"], payment["amount"]
        );
        let event = next_hook(hooks).await?;
        println!("   webhook {} delivered", event["type"]);
    } else {
        println!(
            "6. {} offers no refund through its API; payhost says so when asked",
            scenario.title
        );
    }

    println!("7. What the merchant can audit: GET /v1/events");
    // The worker records a delivery just after the receiver answered it.
    let mut events = Value::Null;
    for _ in 0..100 {
        events = backend.expect(Method::GET, "/v1/events", None, 200).await?;
        let list = events["events"].as_array().cloned().unwrap_or_default();
        if list.iter().all(|e| e["delivery"]["status"] == "delivered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for e in events["events"].as_array().into_iter().flatten() {
        println!(
            "   {:<18} delivery {} after {} attempt(s)",
            e["type"].as_str().unwrap_or("?"),
            e["delivery"]["status"],
            e["delivery"]["attempts"]
        );
    }
    Ok(scenario.refunds)
}

async fn next_hook(hooks: &mut mpsc::UnboundedReceiver<Value>) -> Result<Value> {
    tokio::time::timeout(Duration::from_secs(10), hooks.recv())
        .await
        .context("no webhook within 10 s")?
        .context("the callback receiver stopped")
}

/// The merchant's endpoint: verifies the signature as a merchant would
/// (any Standard Webhooks library does the same) and passes the event on.
async fn receive_webhook(
    State(tx): State<mpsc::UnboundedSender<Value>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let secret = SecretString::from(WEBHOOK_SECRET.to_string());
    if crate::webhooks::verify(&secret, &headers, &body).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    match serde_json::from_slice(&body) {
        Ok(event) => {
            let _ = tx.send(event);
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// The configuration a real deployment would write as a file; secrets are
/// `file:` references, as they must be.
fn demo_config(
    data: &Path,
    adapters: &Path,
    ws: &Path,
    addr: std::net::SocketAddr,
    callback: &str,
    scenario: &Scenario,
) -> Result<String> {
    std::fs::write(data.join("webhook.secret"), WEBHOOK_SECRET)?;
    Ok(format!(
        r#"
[server]
bind = "{addr}"
public_base_url = "http://{addr}"

[store]
sqlite_path = "{db}"

[runtime]
adapters_dir = "{adapters}"
cache_dir = "{cache}"

# The simulator listens on loopback; production keeps this off.
[egress]
allow_private = true

[webhooks]
initial_backoff_ms = 200

# Polled often, so that providers without notifications settle quickly.
[reconciler]
interval_ms = 200
backoff_ms = 300
max_backoff_ms = 1000

[[merchants]]
id = "demo-shop"
api_keys = ["{key}"]
adapter = "{adapter}"
currency = "{currency}"
industry = "physical"
callback_url = "{callback}"
webhook_secret = "file:{dir}/webhook.secret"

[merchants.limits]
{limits}
[merchants.contracts]
{contracts}
[merchants.config]
{merchant_config}"#,
        limits = scenario.limits,
        contracts = scenario.contracts,
        adapter = scenario.adapter,
        currency = scenario.currency,
        merchant_config = scenario.merchant_config,
        db = data.join("payhost.db").display(),
        adapters = adapters.display(),
        cache = ws.join("target").join("payhost-cache").display(),
        key = api_key_hash(MERCHANT_KEY),
        dir = data.display(),
    ))
}
