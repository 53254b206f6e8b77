//! `payhost demo`: one payment walked from creation to refund on this
//! machine, through the real payment front, with nothing to configure.
//!
//! It builds the adapters (cached), starts the simulator of the chosen
//! provider (WeChat Pay v2 or v3) on loopback, starts payhost (HTTP API, SQLite store, webhook worker,
//! reconciler) in front of it and a small merchant callback receiver, then
//! plays the merchant's backend: create the order, hand over the
//! `wx.requestPayment` parameters, learn that it was paid, refund part of it.

use crate::builder::{self, BuildOptions};
use crate::config::{Config, api_key_hash};
use crate::server;
use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use payhost_simulators::wechat_v2::{self, NotifyOptions};
use payhost_simulators::wechat_v3::{self, NotifyForgery};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

const APPID: &str = "wxd678efh567hg6787";
const MCH_ID: &str = "1230000109";
/// Demo credentials, known to the simulator and the demo only.
const WECHAT_KEY: &str = "demo0000000000000000000000000key";
const MERCHANT_KEY: &str = "pk_demo_shop";
const WEBHOOK_SECRET: &str = "whsec_ZGVtby13ZWJob29rLXNlY3JldC0wMDAwMDA=";
/// WeChat Pay v3 demo keys: the official SDK's published test key serves
/// as both the merchant's key and the "platform's" (tests/fixtures).
const V3_KEY_FIXTURE: &str = "tests/fixtures/wechatpay-v3/sdk-test.key.pem";
const V3_PUBLIC_FIXTURE: &str = "tests/fixtures/wechatpay-v3/sdk-test.pub.pem";
const V3_API_KEY: &str = "demo0000000000000000000000v3key0";
const V3_MCHID: &str = "1900000001";
const V3_SERIAL: &str = "PUB_KEY_ID_0119000000012026120100000000000001";

/// The provider the demo walks a payment through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Provider {
    /// WeChat Pay API v2: XML, MD5 signatures.
    #[value(name = "wechat-v2")]
    WechatV2,
    /// WeChat Pay API v3: JSON, RSA signatures, encrypted notifications.
    #[value(name = "wechat-v3")]
    WechatV3,
}

/// What payhost answered a provider's notification, and whether that
/// provider counts it as acknowledged.
struct Answer {
    status: u16,
    body: String,
    acknowledged: bool,
}

impl Answer {
    fn v2(a: wechat_v2::NotifyResponse) -> Answer {
        Answer {
            acknowledged: a.acknowledged(),
            status: a.status,
            body: a.body,
        }
    }

    /// v3 counts any 2xx (§3.7).
    fn v3((status, body): (u16, String)) -> Answer {
        Answer {
            acknowledged: (200..300).contains(&status),
            status,
            body,
        }
    }
}

/// The simulated provider, and what the demo asks of it.
enum Sim {
    V2(wechat_v2::Simulator),
    V3(wechat_v3::Simulator),
}

impl Sim {
    async fn start(provider: Provider, ws: &Path) -> Result<Sim> {
        Ok(match provider {
            Provider::WechatV2 => Sim::V2(
                wechat_v2::Simulator::start(wechat_v2::SimConfig::new(APPID, MCH_ID, WECHAT_KEY))
                    .await,
            ),
            Provider::WechatV3 => Sim::V3(
                wechat_v3::Simulator::start(wechat_v3::SimConfig {
                    mchid: V3_MCHID.into(),
                    appid: APPID.into(),
                    sub_mchid: None,
                    merchant_public_key: std::fs::read_to_string(ws.join(V3_PUBLIC_FIXTURE))?,
                    platform_private_key: std::fs::read_to_string(ws.join(V3_KEY_FIXTURE))?,
                    platform_serial: V3_SERIAL.into(),
                    api_v3_key: V3_API_KEY.into(),
                })
                .await,
            ),
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Sim::V2(_) => "WeChat Pay v2",
            Sim::V3(_) => "WeChat Pay v3",
        }
    }

    /// The payer pays; the provider notifies twice, as it may. Answers what
    /// payhost answered each time.
    async fn pay_and_notify(&self, order_no: &str) -> Result<Vec<Answer>> {
        match self {
            Sim::V2(s) => {
                let options = NotifyOptions {
                    times: 2,
                    ..Default::default()
                };
                Ok(s.notify(order_no, options)
                    .await?
                    .into_iter()
                    .map(Answer::v2)
                    .collect())
            }
            Sim::V3(s) => {
                s.pay(order_no)?;
                let mut answers = Vec::new();
                for _ in 0..2 {
                    answers.push(Answer::v3(
                        s.notify_payment(order_no, NotifyForgery::None).await?,
                    ));
                }
                Ok(answers)
            }
        }
    }

    /// The provider settles the refund and notifies.
    async fn settle_and_notify_refund(&self, refund_no: &str) -> Result<Vec<Answer>> {
        match self {
            Sim::V2(s) => {
                let answers = s.notify_refund(refund_no, NotifyOptions::default()).await?;
                Ok(answers.into_iter().map(Answer::v2).collect())
            }
            Sim::V3(s) => {
                s.settle_refund(refund_no, "SUCCESS")?;
                Ok(vec![Answer::v3(
                    s.notify_refund(refund_no, NotifyForgery::None).await?,
                )])
            }
        }
    }

    /// The merchant's configuration for this provider (secrets as `file:`).
    fn merchant_config(&self, ws: &Path, dir: &Path) -> Result<(String, &'static str)> {
        Ok(match self {
            Sim::V2(s) => {
                std::fs::write(dir.join("wechat.key"), WECHAT_KEY)?;
                (
                    format!(
                        "appid = \"{APPID}\"\nmch_id = \"{MCH_ID}\"\napi_key = \"file:{}/wechat.key\"\nbase_url = \"{}\"\n",
                        dir.display(),
                        s.base_url()
                    ),
                    "wechat-v2",
                )
            }
            Sim::V3(s) => {
                std::fs::write(dir.join("v3.apikey"), V3_API_KEY)?;
                let public = std::fs::read_to_string(ws.join(V3_PUBLIC_FIXTURE))?;
                (
                    format!(
                        "mode = \"direct\"\nmchid = \"{V3_MCHID}\"\nappid = \"{APPID}\"\nmerchant_serial_no = \"5157F09EFDC096DE15EBE81A47057A7232F1B8E1\"\nprivate_key = \"file:{key}\"\napi_v3_key = \"file:{dir}/v3.apikey\"\nwechatpay_public_key_id = \"{V3_SERIAL}\"\nwechatpay_public_key = \"\"\"{public}\"\"\"\nbase_url = \"{base}\"\n",
                        key = ws.join(V3_KEY_FIXTURE).display(),
                        dir = dir.display(),
                        base = s.base_url()
                    ),
                    "wechat-v3",
                )
            }
        })
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
pub async fn run(provider: Provider) -> Result<()> {
    let ws = workspace()?;
    println!("1. Building the adapters into components (cached after the first run)");
    let adapters_dir = ws.join("target").join("components");
    let built = tokio::task::spawn_blocking({
        let (ws, out_dir) = (ws.clone(), adapters_dir.clone());
        move || {
            builder::build(&BuildOptions {
                dirs: vec![ws.join("adapters")],
                workspace: ws,
                out_dir,
            })
        }
    })
    .await??;
    for b in &built {
        println!("   {:<12} {:>8} bytes", b.name, b.bytes);
    }

    let sim = Sim::start(provider, &ws).await?;
    println!(
        "2. Starting a {} simulator, a merchant callback receiver and payhost",
        sim.name()
    );
    let (hooks_tx, mut hooks) = mpsc::unbounded_channel::<Value>();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let callback_url = format!("http://{}/payhost-events", receiver.local_addr()?);
    let receiver_app = axum::Router::new()
        .route("/payhost-events", post(receive_webhook))
        .with_state(hooks_tx);
    let receiver_task = tokio::spawn(async move { axum::serve(receiver, receiver_app).await });

    let data = ws
        .join("target")
        .join("demo")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&data)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = Config::from_toml_str(&demo_config(
        &data,
        &adapters_dir,
        &ws,
        addr,
        &callback_url,
        &sim,
    )?)?;
    let running = server::start(&config, listener).await?;
    println!(
        "   payhost on http://{addr}, store {}",
        data.join("payhost.db").display()
    );
    let backend = Backend {
        http: reqwest::Client::new(),
        base: format!("http://{addr}"),
    };

    let result = walk(&backend, &sim, &mut hooks).await;
    running.stop();
    receiver_task.abort();
    let _ = std::fs::remove_dir_all(&data);
    result?;
    println!(
        "Done: created -> paid -> partially refunded; every message signed and verified, every change durable before it was acknowledged."
    );
    Ok(())
}

async fn walk(
    backend: &Backend,
    sim: &Sim,
    hooks: &mut mpsc::UnboundedReceiver<Value>,
) -> Result<()> {
    use reqwest::Method;
    let order_no = format!("DEMO{}", std::process::id());

    println!("3. The mini-program backend creates order {order_no} for 19.99 CNY");
    let body = json!({
        "merchant_order_no": order_no,
        "amount": 1999,
        "currency": "CNY",
        "description": "payhost demo: green tea 250 g",
        "method": "wechat_mini_program",
        "payer": { "app_id": APPID, "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "client_ip": "203.0.113.7" },
    });
    let payment = backend
        .expect(Method::POST, "/v1/payments", Some(body), 201)
        .await?;
    println!("   POST /v1/payments -> 201, state {}", payment["state"]);
    println!("   wx.requestPayment({})", payment["pay_action"]["params"]);

    println!("4. The payer pays; WeChat notifies payhost (twice, as it may)");
    for answer in sim.pay_and_notify(&order_no).await? {
        println!(
            "   payhost answered HTTP {}: {}",
            answer.status, answer.body
        );
        if !answer.acknowledged {
            bail!("the notification was not acknowledged");
        }
    }
    let payment = backend
        .expect(Method::GET, &format!("/v1/payments/{order_no}"), None, 200)
        .await?;
    println!(
        "   GET /v1/payments/{order_no} -> state {}, WeChat transaction {}",
        payment["state"], payment["channel_transaction_id"]
    );
    if payment["state"] != "paid" {
        bail!("the order is not paid");
    }

    println!("5. The merchant's callback receives a signed webhook");
    let event = next_hook(hooks).await?;
    println!(
        "   {} for {} (Standard Webhooks signature verified)",
        event["type"], event["data"]["payment"]["merchant_order_no"]
    );

    println!("6. The backend refunds 5.00 CNY; WeChat settles it and notifies");
    let refund_no = format!("{order_no}R1");
    let refund = backend
        .expect(
            Method::POST,
            &format!("/v1/payments/{order_no}/refunds"),
            Some(json!({ "refund_no": refund_no, "amount": 500, "reason": "one item returned" })),
            201,
        )
        .await?;
    println!("   POST .../refunds -> 201, state {}", refund["state"]);
    for answer in sim.settle_and_notify_refund(&refund_no).await? {
        if !answer.acknowledged {
            bail!("the refund notification was not acknowledged");
        }
    }
    let refund = backend
        .expect(
            Method::GET,
            &format!("/v1/payments/{order_no}/refunds/{refund_no}"),
            None,
            200,
        )
        .await?;
    let payment = backend
        .expect(Method::GET, &format!("/v1/payments/{order_no}"), None, 200)
        .await?;
    println!(
        "   refund {}, payment {} ({} of {} refunded)",
        refund["state"], payment["state"], payment["refunded_amount"], payment["amount"]
    );
    let event = next_hook(hooks).await?;
    println!("   webhook {} delivered", event["type"]);

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
    Ok(())
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
    sim: &Sim,
) -> Result<String> {
    std::fs::write(data.join("webhook.secret"), WEBHOOK_SECRET)?;
    let (merchant_config, adapter) = sim.merchant_config(ws, data)?;
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

[[merchants]]
id = "demo-shop"
api_keys = ["{key}"]
adapter = "{adapter}"
currency = "CNY"
industry = "physical"
callback_url = "{callback}"
webhook_secret = "file:{dir}/webhook.secret"

[merchants.config]
{merchant_config}"#,
        db = data.join("payhost.db").display(),
        adapters = adapters.display(),
        cache = ws.join("target").join("payhost-cache").display(),
        key = api_key_hash(MERCHANT_KEY),
        dir = data.display(),
    ))
}
