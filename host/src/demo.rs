//! `payhost demo`: one payment walked from creation to refund on this
//! machine, against the WeChat Pay v2 simulator, with nothing to configure.
//!
//! It builds the adapters (cached), starts the simulator on loopback, loads
//! the `wechat-v2` component into the sandboxed runtime and receives the
//! simulator's notifications on a loopback endpoint, printing every step.

use crate::builder::{self, BuildOptions};
use crate::contract::{
    CallContext, HttpMethod, InboundHttp, Money, NotifyEvent, OrderRef, OrderRequest, PayAction,
    Payer, QueryRequest, RefundRequest,
};
use crate::egress::EgressPolicy;
use crate::merchant::MerchantConfig;
use crate::runtime::{LoadedAdapter, Operation, Output, Runtime, RuntimeConfig};
use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use payhost_simulators::wechat_v2::{NotifyOptions, SimConfig, Simulator};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

const APPID: &str = "wxd678efh567hg6787";
const MCH_ID: &str = "1230000109";
/// The simulated merchant's API key: a demo value, known to the simulator.
const DEMO_KEY: &str = "demo0000000000000000000000000key";

/// Where the demo runs from: the checkout it was built in.
fn workspace() -> Result<PathBuf> {
    let here = std::env::current_dir()?;
    builder::find_workspace(&here)
        .or_else(|| builder::find_workspace(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))))
        .context("payhost demo runs inside the payhost checkout (it builds the adapters)")
}

struct Demo {
    runtime: Runtime,
    adapter: Arc<LoadedAdapter>,
    merchant: MerchantConfig,
    notify_url: String,
    seed: std::sync::atomic::AtomicU64,
}

impl Demo {
    async fn call(&self, op: Operation) -> Result<Output> {
        let seed = self.seed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ctx = CallContext {
            request_id: format!("demo-{seed}"),
            timestamp: now(),
            seed,
            notify_url: self.notify_url.clone(),
        };
        Ok(self
            .runtime
            .call(&self.adapter, &self.merchant, ctx, op)
            .await?)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Runs the walkthrough; fails on the first step that does not behave.
pub async fn run() -> Result<()> {
    let ws = workspace()?;
    println!("1. Building the adapters into components (cached after the first run)");
    let built = tokio::task::spawn_blocking({
        let ws = ws.clone();
        move || {
            builder::build(&BuildOptions {
                workspace: ws.clone(),
                dirs: vec![ws.join("adapters")],
                out_dir: ws.join("target").join("components"),
            })
        }
    })
    .await??;
    for b in &built {
        println!(
            "   {:<12} {:>8} bytes  {}",
            b.name,
            b.bytes,
            b.path.display()
        );
    }
    let wasm = built
        .iter()
        .find(|b| b.name == "wechat-v2")
        .context("the wechat-v2 adapter was not built")?;

    println!("2. Starting the WeChat Pay v2 simulator and loading the adapter into the sandbox");
    let sim = Simulator::start(SimConfig::new(APPID, MCH_ID, DEMO_KEY)).await;
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(ws.join("target").join("payhost-cache")),
        // The simulator listens on loopback; production keeps this off.
        egress: EgressPolicy {
            allow_private: true,
            ..Default::default()
        },
        ..Default::default()
    })?;
    let adapter = runtime.load(&std::fs::read(&wasm.path)?)?;
    println!(
        "   {} {} (contract {}), digest {}…",
        adapter.info.name,
        adapter.info.version,
        adapter.info.contract_version,
        &adapter.digest[..16]
    );

    // The notification endpoint: hands WeChat's POST to the adapter and
    // answers with exactly the acknowledgement it returns.
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<NotifyEvent>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let notify_url = format!(
        "http://{}/v1/notify/wechat-v2/demo-shop",
        listener.local_addr()?
    );
    let demo = Arc::new(Demo {
        runtime,
        adapter,
        merchant: MerchantConfig::new("demo-shop")
            .text("appid", APPID)
            .text("mch_id", MCH_ID)
            .secret("api_key", DEMO_KEY)
            .text("base_url", sim.base_url()),
        notify_url,
        seed: 1.into(),
    });
    let app = axum::Router::new()
        .route("/v1/notify/wechat-v2/demo-shop", post(notify))
        .with_state((demo.clone(), events_tx));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let order_no = format!("DEMO{}", now());
    println!("3. Creating order {order_no} for 19.99 CNY (unified order)");
    let created = demo
        .call(Operation::UnifiedOrder(OrderRequest {
            merchant_order_no: order_no.clone(),
            amount: Money {
                minor: 1999,
                currency: "CNY".into(),
            },
            description: "payhost demo: green tea 250 g".into(),
            method: "wechat_mini_program".into(),
            payer: Payer {
                app_id: Some(APPID.into()),
                openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
                client_ip: Some("203.0.113.7".into()),
            },
            expires_at: Some(now() + 1800),
            attach: None,
        }))
        .await?;
    let Output::OrderCreated(created) = created else {
        bail!("unexpected answer to unified order")
    };
    let PayAction::MiniProgram(p) = &created.action else {
        bail!("expected wx.requestPayment parameters")
    };
    println!(
        "   wx.requestPayment({{ appId: {:?}, timeStamp: {:?}, nonceStr: {:?},",
        p.app_id, p.time_stamp, p.nonce_str
    );
    println!(
        "                        package: {:?}, signType: {:?}, paySign: {:?} }})",
        p.package, p.sign_type, p.pay_sign
    );

    println!("4. The payer pays; the simulator notifies payhost (twice, as WeChat may)");
    let answers = sim
        .notify(
            &order_no,
            NotifyOptions {
                times: 2,
                ..Default::default()
            },
        )
        .await?;
    for a in &answers {
        println!("   payhost answered HTTP {}: {}", a.status, a.body);
        if !a.acknowledged() {
            bail!("the notification was not acknowledged");
        }
    }
    // Both deliveries verify; each handler sent its events before answering.
    let mut deliveries = Vec::new();
    while let Ok(e) = events_rx.try_recv() {
        deliveries.push(e);
    }
    println!(
        "   {} verified deliveries of the same payment (the order store applies it once)",
        deliveries.len()
    );
    let Some(NotifyEvent::Payment(paid)) = deliveries.into_iter().next() else {
        bail!("expected a payment event")
    };
    let amount = paid
        .amount
        .as_ref()
        .context("the payment event carries no amount")?;
    println!(
        "   verified event: {:?}, {} {}, transaction {}",
        paid.state,
        payhost_sdk::money::to_decimal(&payhost_sdk::types::Money {
            minor: amount.minor,
            currency: amount.currency.clone()
        })?,
        amount.currency,
        paid.order.channel_transaction_id.as_deref().unwrap_or("?")
    );

    println!("5. Querying the order at the provider");
    let Output::TradeStatus(status) = demo
        .call(Operation::Query(QueryRequest {
            order: OrderRef {
                merchant_order_no: order_no.clone(),
                provider_trade_no: None,
                channel_transaction_id: None,
            },
        }))
        .await?
    else {
        bail!("unexpected answer to query")
    };
    println!(
        "   state {:?} (provider says {})",
        status.state, status.provider_state
    );

    println!("6. Refunding 5.00 CNY of it");
    let refund_no = format!("{order_no}R1");
    let Output::RefundStatus(refund) = demo
        .call(Operation::Refund(RefundRequest {
            order: status.order.clone(),
            refund_no: refund_no.clone(),
            amount: Money {
                minor: 500,
                currency: "CNY".into(),
            },
            order_amount: Money {
                minor: 1999,
                currency: "CNY".into(),
            },
            reason: Some("one item returned".into()),
        }))
        .await?
    else {
        bail!("unexpected answer to refund")
    };
    println!(
        "   accepted: {:?}, refund id {}",
        refund.state,
        refund.provider_refund_id.as_deref().unwrap_or("?")
    );
    let answers = sim
        .notify_refund(&refund_no, NotifyOptions::default())
        .await?;
    if !answers.iter().all(|a| a.acknowledged()) {
        bail!("the refund notification was not acknowledged");
    }
    let NotifyEvent::Refund(settled) = events_rx.recv().await.context("no refund event")? else {
        bail!("expected a refund event")
    };
    println!(
        "   refund notification (AES-256-ECB, decrypted by the host's key): {:?}",
        settled.state
    );

    server.abort();
    println!(
        "Done: created -> paid -> refunded, every message signed and verified, no key ever inside the sandbox."
    );
    Ok(())
}

type NotifyState = (Arc<Demo>, mpsc::UnboundedSender<NotifyEvent>);

async fn notify(
    State((demo, events)): State<NotifyState>,
    body: Bytes,
) -> (axum::http::StatusCode, Vec<u8>) {
    let inbound = InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/wechat-v2/demo-shop".into(),
        query: String::new(),
        headers: vec![("content-type".into(), "text/xml".into())],
        body: body.to_vec(),
    };
    match demo.call(Operation::ParseNotify(inbound)).await {
        Ok(Output::Notify(outcome)) => {
            for e in outcome.events {
                let _ = events.send(e);
            }
            let status = axum::http::StatusCode::from_u16(outcome.ack.status)
                .unwrap_or(axum::http::StatusCode::OK);
            (status, outcome.ack.body)
        }
        Ok(_) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            b"unexpected".to_vec(),
        ),
        Err(e) => {
            eprintln!("   notification refused: {e}");
            (axum::http::StatusCode::BAD_REQUEST, b"refused".to_vec())
        }
    }
}
