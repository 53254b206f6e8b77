//! The vr-payment component through payhost's HTTP API against the VR
//! Payment gateway simulator: payment-page orders settled by the
//! reconciler alone (the provider sends nothing the host relies on),
//! refunds by externalId and refund query, and webhooks taken as hints
//! only when signed, known and consistent.

use payhost_e2e::front::{Front, Options};
use payhost_sdk::types::Money;
use payhost_simulators::vr_payment::{NotifyForgery, SimConfig, Simulator};
use reqwest::Method;
use serde_json::{Value, json};

const VR_KEY: &str = "pk_test_shop_vr_51c9";
const AUTH_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SPACE: i64 = 40213;
const NOTIFY: &str = "/v1/notify/vr-payment/shop-vr";

/// payhost with a `vr-payment` merchant `shop-vr` (EUR) in front of the
/// gateway simulator, whose webhooks go to payhost.
async fn vr_front(name: &str, options: Options) -> (Front, Simulator) {
    let sim = Simulator::start(SimConfig::new(SPACE, "512", AUTH_KEY)).await;
    let dir = payhost_e2e::temp_dir(name);
    std::fs::write(dir.join("vr.key"), AUTH_KEY).unwrap();
    let extra = format!(
        r#"
[[merchants]]
id = "shop-vr"
api_keys = ["{hash}"]
adapter = "vr-payment"
currency = "EUR"
industry = "physical"

[merchants.limits]
cny_rate = "0.1385"

[merchants.config]
space_id = "{SPACE}"
user_id = "512"
authentication_key = "file:{dir}/vr.key"
base_url = "{base}"
method_configurations = "wechat_pay=7001,alipay=7002"
success_url = "https://shop.example/paid"
"#,
        hash = payhost::config::api_key_hash(VR_KEY),
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
    sim.set_webhook_url(&f.url(NOTIFY));
    (f, sim)
}

/// No polling during the test: what changes, a webhook changed.
fn idle_reconciler() -> Options {
    Options {
        reconciler_interval_ms: 60_000,
        poll_backoff_ms: 60_000,
        ..Options::default()
    }
}

async fn vr(f: &Front, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    f.call_as(VR_KEY, method, path, body).await
}

fn vr_order(no: &str, amount: i64, method: &str) -> Value {
    json!({
        "merchant_order_no": no, "amount": amount, "currency": "EUR",
        "description": "Tea, 250 g", "method": method,
    })
}

async fn create(f: &Front, no: &str, amount: i64, method: &str) -> Value {
    let (status, created) = vr(
        f,
        Method::POST,
        "/v1/payments",
        Some(vr_order(no, amount, method)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created
}

async fn wait_for(f: &Front, path: &str, field: &str, want: &str) -> Value {
    f.wait_for_as(VR_KEY, path, field, want).await
}

#[tokio::test]
async fn a_vr_order_becomes_paid_with_no_notification_at_all() {
    let (f, sim) = vr_front("vr-poll", Options::fast_reconciler()).await;
    let created = create(&f, "VRPOLL001", 2499, "card").await;
    let id = sim.transaction_id("VRPOLL001").unwrap().to_string();
    assert_eq!(created["pay_action"]["type"], "redirect", "{created}");
    let url = created["pay_action"]["url"].as_str().unwrap();
    assert!(url.contains(&format!("/pay/{id}")), "{url}");
    assert_eq!(created["provider_trade_no"], id.as_str(), "{created}");
    // Unpaid, the reconciler's polls answer pending and change nothing.
    f.eventually("a poll of the unpaid order", || {
        sim.count("GET transaction/read") >= 1
    })
    .await;
    let (_, p) = vr(&f, Method::GET, "/v1/payments/VRPOLL001", None).await;
    assert_eq!(p["state"], "pending", "{p}");
    // Authorized money is not paid yet.
    sim.set_state("VRPOLL001", "AUTHORIZED").unwrap();
    let polls = sim.count("GET transaction/read");
    f.eventually("another poll", || sim.count("GET transaction/read") > polls)
        .await;
    let (_, p) = vr(&f, Method::GET, "/v1/payments/VRPOLL001", None).await;
    assert_eq!(p["state"], "pending", "{p}");
    // The payer completes; nobody tells payhost; the reconciler finds out.
    sim.pay("VRPOLL001").unwrap();
    let p = wait_for(&f, "/v1/payments/VRPOLL001", "state", "paid").await;
    assert_eq!(p["amount"], 2499);
    assert_eq!(p["currency"], "EUR");
    assert_eq!(p["merchant_order_no"], "VRPOLL001");
    assert_eq!(p["provider_trade_no"], id.as_str());
    assert!(p["channel_transaction_id"].is_null(), "{p}");
    assert_eq!(
        sim.count("GET webhook-encryption/read"),
        0,
        "no webhook was involved"
    );
    // Paid orders are not polled any more.
    let polls = sim.count("GET transaction/read");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(sim.count("GET transaction/read"), polls);
}

#[tokio::test]
async fn a_vr_payment_is_queried_refunded_in_parts_and_its_refunds_settle_by_refund_query() {
    let (f, sim) = vr_front("vr-flow", Options::fast_reconciler()).await;
    create(&f, "VRFLOW001", 3000, "wechat_pay").await;
    let (_, p) = vr(&f, Method::GET, "/v1/payments/VRFLOW001?refresh=true", None).await;
    assert_eq!(p["state"], "pending", "{p}");
    sim.pay("VRFLOW001").unwrap();
    let (_, p) = vr(&f, Method::GET, "/v1/payments/VRFLOW001?refresh=true", None).await;
    assert_eq!(p["state"], "paid", "{p}");
    let id = sim.transaction_id("VRFLOW001").unwrap().to_string();
    assert_eq!(p["provider_trade_no"], id.as_str());

    // A partial refund: pending at the gateway until it settles.
    let (status, r) = vr(
        &f,
        Method::POST,
        "/v1/payments/VRFLOW001/refunds",
        Some(json!({"refund_no": "VRR1", "amount": 1000})),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["state"], "pending", "{r}");
    assert_eq!(sim.refund_state("VRR1"), Some("PENDING"));
    sim.settle_refund("VRR1", "SUCCESSFUL").unwrap();
    wait_for(
        &f,
        "/v1/payments/VRFLOW001/refunds/VRR1",
        "state",
        "succeeded",
    )
    .await;
    assert!(sim.count("GET refund/read") >= 1, "settled by refund query");
    let (_, p) = vr(&f, Method::GET, "/v1/payments/VRFLOW001", None).await;
    assert_eq!(p["refunded_amount"], 1000, "{p}");

    // The rest: the order is refunded in full.
    let (status, r) = vr(
        &f,
        Method::POST,
        "/v1/payments/VRFLOW001/refunds",
        Some(json!({"refund_no": "VRR2", "amount": 2000})),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    sim.settle_refund("VRR2", "SUCCESSFUL").unwrap();
    wait_for(
        &f,
        "/v1/payments/VRFLOW001/refunds/VRR2",
        "state",
        "succeeded",
    )
    .await;
    let p = wait_for(&f, "/v1/payments/VRFLOW001", "state", "refunded").await;
    assert_eq!(p["refunded_amount"], 3000, "{p}");
    // Nothing is left to refund, and the gateway agrees.
    let (status, r) = vr(
        &f,
        Method::POST,
        "/v1/payments/VRFLOW001/refunds",
        Some(json!({"refund_no": "VRR3", "amount": 1})),
    )
    .await;
    assert!(status >= 400, "{status} {r}");
    assert_eq!(sim.refund_state("VRR3"), None);
    assert_eq!(sim.count("POST refund/refund"), 2);
}

#[tokio::test]
async fn methods_and_currencies_the_gateway_does_not_offer_are_refused() {
    let (f, sim) = vr_front("vr-refuse", idle_reconciler()).await;
    let (status, e) = vr(
        &f,
        Method::POST,
        "/v1/payments",
        Some(json!({
            "merchant_order_no": "VRMINI001", "amount": 100, "currency": "EUR",
            "description": "Tea", "method": "wechat_mini_program",
            "payer": {"app_id": "wx8888888888888888", "openid": "o-1"},
        })),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e.to_string().contains("wechat_pay"),
        "names the offered methods: {e}"
    );
    let mut cny = vr_order("VRCNY0001", 100, "card");
    cny["currency"] = "CNY".into();
    let (status, e) = vr(&f, Method::POST, "/v1/payments", Some(cny)).await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(sim.count("POST transaction/create"), 0);
}

#[tokio::test]
async fn an_expired_vr_order_is_closed_once_the_gateway_says_it_is_unpaid() {
    let (f, sim) = vr_front("vr-close", Options::fast_reconciler()).await;
    let mut order = vr_order("VRCLOSE01", 100, "alipay");
    order["expires_at"] = payhost::resources::Timestamp(payhost::api::now_ms() + 1500)
        .to_string()
        .into();
    let (status, created) = vr(&f, Method::POST, "/v1/payments", Some(order)).await;
    assert_eq!(status, 201, "{created}");
    let p = wait_for(&f, "/v1/payments/VRCLOSE01", "state", "closed").await;
    assert_eq!(p["provider_trade_no"], created["provider_trade_no"]);
    // The gateway has no cancel: it still holds the transaction, unpaid.
    assert_eq!(sim.state("VRCLOSE01"), Some("PENDING"));
}

#[tokio::test]
async fn webhooks_are_hints_forged_unknown_and_contradicting_ones_change_nothing() {
    let (f, sim) = vr_front("vr-hooks", idle_reconciler()).await;
    create(&f, "VRHOOK001", 1500, "wechat_pay").await;
    sim.pay("VRHOOK001").unwrap();
    let pending = |p: &Value| p["state"] == "pending";

    for forgery in [
        NotifyForgery::Tampered,
        NotifyForgery::UnknownKey,
        NotifyForgery::UnknownEntity,
    ] {
        let (status, body) = sim.notify_payment("VRHOOK001", forgery).await.unwrap();
        assert!(status >= 400, "{forgery:?} answered {status} {body}");
        let (_, p) = vr(&f, Method::GET, "/v1/payments/VRHOOK001", None).await;
        assert!(pending(&p), "{forgery:?}: {p}");
    }
    // A transaction payhost never made: a verified hint about an unknown order.
    sim.create_transaction(
        "NOT-OURS-1",
        Money {
            minor: 1500,
            currency: "EUR".into(),
        },
    );
    sim.pay("NOT-OURS-1").unwrap();
    let (status, _) = sim
        .notify_payment("NOT-OURS-1", NotifyForgery::None)
        .await
        .unwrap();
    assert!(status >= 400, "unknown order answered {status}");
    let (status, _) = vr(&f, Method::GET, "/v1/payments/NOT-OURS-1", None).await;
    assert_eq!(status, 404);
    // The gateway reports another amount, then another currency: refused.
    for reported in [
        Money {
            minor: 1,
            currency: "EUR".into(),
        },
        Money {
            minor: 1500,
            currency: "CHF".into(),
        },
    ] {
        sim.misreport_amount("VRHOOK001", Some(reported.clone()))
            .unwrap();
        let (status, _) = sim
            .notify_payment("VRHOOK001", NotifyForgery::None)
            .await
            .unwrap();
        assert!(status >= 400, "{reported:?} answered {status}");
        let (_, p) = vr(&f, Method::GET, "/v1/payments/VRHOOK001", None).await;
        assert!(pending(&p), "{reported:?}: {p}");
    }
    sim.misreport_amount("VRHOOK001", None).unwrap();

    // The genuine one: read, applied, acknowledged with HTTP 200.
    let (status, _) = sim
        .notify_payment("VRHOOK001", NotifyForgery::None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (_, p) = vr(&f, Method::GET, "/v1/payments/VRHOOK001", None).await;
    assert_eq!(p["state"], "paid", "{p}");
    assert_eq!(p["amount"], 1500);
    // Again, as gateways repeat: acknowledged, nothing changes.
    let (status, _) = sim
        .notify_payment("VRHOOK001", NotifyForgery::None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (_, again) = vr(&f, Method::GET, "/v1/payments/VRHOOK001", None).await;
    assert_eq!(
        (again["state"].clone(), again["updated_at"].clone()),
        (p["state"].clone(), p["updated_at"].clone())
    );

    // An unsigned hint is read too (signatures are `optional` by default);
    // a refund's hint settles the refund.
    let (status, r) = vr(
        &f,
        Method::POST,
        "/v1/payments/VRHOOK001/refunds",
        Some(json!({"refund_no": "VRHR1", "amount": 500})),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    sim.settle_refund("VRHR1", "SUCCESSFUL").unwrap();
    let (status, _) = sim
        .notify_refund("VRHR1", NotifyForgery::Tampered)
        .await
        .unwrap();
    assert!(status >= 400);
    let (_, r) = vr(
        &f,
        Method::GET,
        "/v1/payments/VRHOOK001/refunds/VRHR1",
        None,
    )
    .await;
    assert_eq!(r["state"], "pending", "{r}");
    let (status, _) = sim
        .notify_refund("VRHR1", NotifyForgery::Unsigned)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (_, r) = vr(
        &f,
        Method::GET,
        "/v1/payments/VRHOOK001/refunds/VRHR1",
        None,
    )
    .await;
    assert_eq!(r["state"], "succeeded", "{r}");
    assert_eq!(
        sim.count("GET refund/read"),
        1,
        "the refund webhook's one read"
    );
}
