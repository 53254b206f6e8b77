//! The supay component through payhost's HTTP API, in front of the Supay
//! Gate simulator: mini-program, QR, H5 and cashier orders, payment by
//! notification or by query, close at expiry after Supay confirms the order
//! unpaid, full and partial refunds settled by notification or by refund
//! query, forged and contradicting notifications refused with nothing
//! changed, and Supay's three numbers stored and returned.

use payhost_e2e::front::{Front, Options};
use payhost_simulators::supay::{NotifyForgery, SimConfig, Simulator};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const MCH_ID: &str = "100001";
const SUPAY_KEY: &str = "TESTKEY0123456789abcdef";
const API_KEY: &str = "pk_test_shop_supay_5c1e";
const APPID: &str = "wx5a1e7f1b2c3d4e5f";

/// payhost with a `supay` merchant `shop-supay` (AUD) in front of a Supay
/// simulator that knows the same key.
async fn supay_front(name: &str, options: Options) -> (Front, Simulator) {
    let sim = Simulator::start(SimConfig::new(MCH_ID, SUPAY_KEY)).await;
    let dir = payhost_e2e::temp_dir(name);
    std::fs::write(dir.join("supay.key"), SUPAY_KEY).unwrap();
    let extra = format!(
        r#"
[[merchants]]
id = "shop-supay"
api_keys = ["{hash}"]
adapter = "supay"
currency = "AUD"
industry = "physical"

[merchants.limits]
cny_rate = "0.2100"

[merchants.config]
mch_id = "{MCH_ID}"
api_key = "file:{dir}/supay.key"
store_name = "Tea House Sydney"
appid = "{APPID}"
base_url = "{base}"
"#,
        hash = payhost::config::api_key_hash(API_KEY),
        dir = dir.display(),
        base = sim.base_url(),
    );
    let f = Front::start(
        name,
        Options {
            data_dir: Some(dir),
            extra_toml: extra,
            ..options
        },
    )
    .await;
    (f, sim)
}

async fn api(f: &Front, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    f.call_as(API_KEY, method, path, body).await
}

async fn payment(f: &Front, no: &str) -> Value {
    api(f, Method::GET, &format!("/v1/payments/{no}"), None)
        .await
        .1
}

fn order(no: &str, amount: i64, method: &str) -> Value {
    json!({
        "merchant_order_no": no, "amount": amount, "currency": "AUD",
        "description": "Oolong, 100 g", "method": method,
        "payer": {"app_id": APPID, "openid": "o-supay-payer", "client_ip": "203.0.113.7"},
    })
}

async fn wait_for(f: &Front, path: &str, field: &str, want: &str) -> Value {
    f.wait_for_as(API_KEY, path, field, want).await
}

#[tokio::test]
async fn a_mini_program_payment_is_notified_refused_when_forged_refunded_and_settled() {
    let (f, sim) = supay_front("supay-flow", Options::fast_reconciler()).await;
    let (status, created) = api(
        &f,
        Method::POST,
        "/v1/payments",
        Some(order("SPFLOW0001", 2499, "wechat_mini_program")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let params = &created["pay_action"]["params"];
    assert_eq!(created["pay_action"]["type"], "mini_program", "{created}");
    assert_eq!(params["appId"], APPID);
    assert!(params["paySign"].as_str().is_some_and(|s| !s.is_empty()));
    let inner = sim.inner_trade_no("SPFLOW0001").unwrap();
    assert_eq!(created["provider_trade_no"], inner.as_str());
    assert_eq!(sim.count("create_instant_trade"), 1);

    sim.pay("SPFLOW0001").unwrap();
    // Forged, for another order, or contradicting the order: each refused,
    // none acknowledged with Supay's `success`, nothing changed.
    for forgery in [
        NotifyForgery::Tampered,
        NotifyForgery::WrongKey,
        NotifyForgery::WrongAmount,
        NotifyForgery::WrongCurrency,
        NotifyForgery::UnknownOrder,
    ] {
        let (status, body) = sim.notify_payment("SPFLOW0001", forgery).await.unwrap();
        assert_ne!(body, "success", "{forgery:?} answered {status} {body}");
        let p = payment(&f, "SPFLOW0001").await;
        assert_eq!(p["state"], "pending", "{forgery:?}: {p}");
    }
    // The genuine one, twice: applied once, both acknowledged.
    for _ in 0..2 {
        let (status, body) = sim
            .notify_payment("SPFLOW0001", NotifyForgery::None)
            .await
            .unwrap();
        assert_eq!((status, body.as_str()), (200, "success"));
    }
    let p = payment(&f, "SPFLOW0001").await;
    assert_eq!(p["state"], "paid", "{p}");
    // The three numbers, stored and returned.
    assert_eq!(p["merchant_order_no"], "SPFLOW0001");
    assert_eq!(p["provider_trade_no"], inner.as_str());
    assert_eq!(
        p["channel_transaction_id"],
        sim.transaction_id("SPFLOW0001").unwrap().as_str()
    );
    let paid_at = p["paid_at"].clone();
    let (_, p) = api(
        &f,
        Method::GET,
        "/v1/payments/SPFLOW0001?refresh=true",
        None,
    )
    .await;
    assert_eq!(
        (p["state"].as_str(), &p["paid_at"]),
        (Some("paid"), &paid_at)
    );
    assert!(sim.count("query_trade") >= 1);

    // A partial refund settled by Supay's refund notification...
    let (status, r) = api(
        &f,
        Method::POST,
        "/v1/payments/SPFLOW0001/refunds",
        Some(json!({"refund_no": "SPR1", "amount": 1000})),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["state"], "pending");
    sim.settle_refund("SPR1", true).unwrap();
    let (status, body) = sim
        .notify_refund("SPR1", NotifyForgery::Tampered)
        .await
        .unwrap();
    assert_ne!(body, "success", "{status}");
    let (status, body) = sim
        .notify_refund("SPR1", NotifyForgery::None)
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "success"));
    let (_, r) = api(
        &f,
        Method::GET,
        "/v1/payments/SPFLOW0001/refunds/SPR1",
        None,
    )
    .await;
    assert_eq!(r["state"], "succeeded", "{r}");
    // ... and the rest, whose notification never comes: the refund query settles it.
    let (status, r) = api(
        &f,
        Method::POST,
        "/v1/payments/SPFLOW0001/refunds",
        Some(json!({"refund_no": "SPR2", "amount": 1499})),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    sim.settle_refund("SPR2", true).unwrap();
    wait_for(
        &f,
        "/v1/payments/SPFLOW0001/refunds/SPR2",
        "state",
        "succeeded",
    )
    .await;
    let p = payment(&f, "SPFLOW0001").await;
    assert_eq!(
        (p["state"].as_str(), p["refunded_amount"].as_i64()),
        (Some("refunded"), Some(2499)),
        "{p}"
    );
    assert_eq!(sim.count("create_refund"), 2);
}

#[tokio::test]
async fn qr_h5_and_cashier_orders_pay_by_late_notification_or_by_query() {
    let (f, sim) = supay_front("supay-url", Options::default()).await;
    let mut created = Vec::new();
    for (no, method) in [
        ("SPQR0001", "wechat_native"),
        ("SPH50001", "wechat_h5"),
        ("SPCASH001", "cashier_h5"),
        ("SPCASH002", "cashier_pc"),
    ] {
        let (status, c) = api(
            &f,
            Method::POST,
            "/v1/payments",
            Some(order(no, 500, method)),
        )
        .await;
        assert_eq!(status, 201, "{method}: {c}");
        created.push(c);
    }
    assert_eq!(created[0]["pay_action"]["type"], "qr_code");
    assert!(
        created[0]["pay_action"]["text"]
            .as_str()
            .unwrap()
            .starts_with("weixin://")
    );
    for c in &created[1..] {
        assert_eq!(c["pay_action"]["type"], "redirect", "{c}");
    }
    assert!(
        created[2]["pay_action"]["url"]
            .as_str()
            .unwrap()
            .contains("/cashier/")
    );
    // A method or currency Supay does not offer never reaches it.
    let (status, _) = api(
        &f,
        Method::POST,
        "/v1/payments",
        Some(order("SPBAD0001", 500, "alipay")),
    )
    .await;
    assert!(status >= 400);
    assert_eq!(sim.count("create_instant_trade"), 4);

    // The QR order: paid, its notification arrives late.
    sim.pay("SPQR0001").unwrap();
    let late = sim
        .notify_payment_later("SPQR0001", NotifyForgery::None, Duration::from_millis(100))
        .unwrap();
    assert_eq!(late.await.unwrap().unwrap(), (200, "success".to_string()));
    assert_eq!(payment(&f, "SPQR0001").await["state"], "paid");
    // The cashier order: paid, no notification; a refreshing query finds it.
    sim.pay("SPCASH001").unwrap();
    let (_, p) = api(&f, Method::GET, "/v1/payments/SPCASH001?refresh=true", None).await;
    assert_eq!(p["state"], "paid", "{p}");
    assert_eq!(
        p["provider_trade_no"],
        sim.inner_trade_no("SPCASH001").unwrap().as_str()
    );
    // The H5 order expired at Supay: a query says closed.
    sim.expire("SPH50001").unwrap();
    let (_, p) = api(&f, Method::GET, "/v1/payments/SPH50001?refresh=true", None).await;
    assert_eq!(p["state"], "closed", "{p}");
}

#[tokio::test]
async fn an_expired_order_is_closed_once_supay_confirms_it_unpaid() {
    let (f, sim) = supay_front("supay-close", Options::fast_reconciler()).await;
    let mut o = order("SPCLOSE01", 300, "wechat_native");
    o["expires_at"] = payhost::resources::Timestamp(payhost::api::now_ms() + 1500)
        .to_string()
        .into();
    let (status, created) = api(&f, Method::POST, "/v1/payments", Some(o)).await;
    assert_eq!(status, 201, "{created}");
    wait_for(&f, "/v1/payments/SPCLOSE01", "state", "closed").await;
    // Supay has no close call: payhost asked, and Supay still waits.
    assert!(sim.count("query_trade") >= 1);
    assert_eq!(sim.trade_status("SPCLOSE01"), Some("WAIT_BUYER_PAY"));
}
