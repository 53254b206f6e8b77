//! The 2paynow component through payhost's HTTP API, in front of the
//! strict 2paynow simulator: QR and WAP orders, notifications confirmed by
//! query (forged, contradicting, unknown and repeated ones changing
//! nothing), close at expiry by `cancel`, and refunds refused as
//! unsupported because 2paynow documents none publicly.
//!
//! Every scenario runs twice, against the Rust adapter (slot `2paynow`) and
//! its JavaScript twin (`2paynow-js`, componentize-js) with the same
//! merchant configuration: [`both_slots!`] at the end.

use payhost_e2e::front::{Front, Options};
use payhost_simulators::faults::FaultConfig;
use payhost_simulators::twopaynow::{NotifyForgery, NotifyMethod, SimConfig, Simulator};
use reqwest::Method;
use serde_json::{Value, json};

const MID: &str = "4002563369";
const KEY: &str = "zG93Cv85BCCp2h";
const API_KEY: &str = "pk_test_shop_2pn_5c1e";
const MERCHANT: &str = "shop-2pn";

/// payhost with merchant `shop-2pn` on adapter `slot`, in EUR, in front
/// of a 2paynow simulator that knows the same mid and key.
async fn front(
    slot: &str,
    name: &str,
    sim_config: SimConfig,
    options: Options,
) -> (Front, Simulator) {
    let sim = Simulator::start(sim_config).await;
    let name = format!("{name}-{slot}");
    let name = name.as_str();
    let dir = payhost_e2e::temp_dir(name);
    std::fs::write(dir.join("2paynow.key"), KEY).unwrap();
    let extra = format!(
        r#"
[[merchants]]
id = "{MERCHANT}"
api_keys = ["{hash}"]
adapter = "{slot}"
currency = "EUR"
industry = "physical"

[merchants.limits]
cny_rate = "0.1280"

[merchants.config]
mid = "{MID}"
key = "file:{dir}/2paynow.key"
base_url = "{base}"
wap_wechat_url = "{wechat}"
wap_alipay_url = "{alipay}"
return_url = "https://shop.example/back"
verify_answer_sign = "true"
"#,
        hash = payhost::config::api_key_hash(API_KEY),
        dir = dir.display(),
        base = sim.base_url(),
        wechat = sim.wap_wechat_url(),
        alipay = sim.wap_alipay_url(),
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
    let (status, p) = api(f, Method::GET, &format!("/v1/payments/{no}"), None).await;
    assert_eq!(status, 200, "{p}");
    p
}

fn order(no: &str, amount: i64, method: &str) -> Value {
    json!({
        "merchant_order_no": no, "amount": amount, "currency": "EUR",
        "description": "Tea, 250 g", "method": method,
        "payer": {"client_ip": "203.0.113.7"},
    })
}

async fn a_qr_order_is_paid_only_by_what_2paynow_confirms_and_refunds_are_refused(slot: &str) {
    let (f, sim) = front(slot, "2pn-qr", SimConfig::new(MID, KEY), Options::default()).await;
    let (status, created) = api(
        &f,
        Method::POST,
        "/v1/payments",
        Some(order("2PNQR0001", 899, "wechat_native")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let trade_no = sim.trade_no("2PNQR0001").unwrap();
    assert_eq!(created["pay_action"]["type"], "qr_code");
    assert_eq!(
        created["pay_action"]["text"],
        format!("weixin://wxpay/bizpayurl?pr={trade_no}")
    );
    assert_eq!(created["provider_trade_no"], trade_no.as_str());
    assert_eq!(sim.count("precreate"), 1);

    // Unpaid: a notification claiming success is asked about and stays pending.
    let (status, ack) = sim
        .notify_payment("2PNQR0001", NotifyForgery::ClaimsPaid)
        .await
        .unwrap();
    assert_eq!((status, ack.as_str()), (200, "success"));
    assert_eq!(payment(&f, "2PNQR0001").await["state"], "pending");
    assert_eq!(sim.count("query"), 1);

    // Paid at 2paynow; forged and contradicting notifications change nothing.
    sim.pay("2PNQR0001").unwrap();
    for forgery in [
        NotifyForgery::Tampered,
        NotifyForgery::WrongAmount,
        NotifyForgery::WrongCurrency,
        NotifyForgery::UnknownOrder,
    ] {
        let (status, ack) = sim.notify_payment("2PNQR0001", forgery).await.unwrap();
        assert!(status >= 400, "{forgery:?} answered {status}");
        assert_ne!(ack, "success", "{forgery:?}");
        let p = payment(&f, "2PNQR0001").await;
        assert_eq!(p["state"], "pending", "{forgery:?}: {p}");
        assert_eq!(p["channel_transaction_id"], Value::Null, "{forgery:?}");
    }
    // The tampered one was refused before asking 2paynow.
    assert_eq!(sim.count("query"), 4);

    // The real one, by GET, then its repetition by POST.
    let (status, ack) = sim
        .notify_payment("2PNQR0001", NotifyForgery::None)
        .await
        .unwrap();
    assert_eq!((status, ack.as_str()), (200, "success"));
    let paid = payment(&f, "2PNQR0001").await;
    assert_eq!(paid["state"], "paid", "{paid}");
    assert_eq!(paid["merchant_order_no"], "2PNQR0001");
    assert_eq!(paid["provider_trade_no"], trade_no.as_str());
    assert_eq!(
        paid["channel_transaction_id"],
        sim.original_trade_no("2PNQR0001").unwrap().as_str()
    );
    let (status, ack) = sim
        .notify_payment_via("2PNQR0001", NotifyForgery::None, NotifyMethod::Post)
        .await
        .unwrap();
    assert_eq!((status, ack.as_str()), (200, "success"));
    assert_eq!(payment(&f, "2PNQR0001").await, paid);

    // A query with refresh asks 2paynow by trade_no and agrees.
    let before = sim.count("query");
    let (_, p) = api(&f, Method::GET, "/v1/payments/2PNQR0001?refresh=true", None).await;
    assert_eq!(p["state"], "paid", "{p}");
    assert_eq!(sim.count("query"), before + 1);

    // No public refund call: a clear error, nothing changed.
    let (status, problem) = api(
        &f,
        Method::POST,
        "/v1/payments/2PNQR0001/refunds",
        Some(json!({"refund_no": "2PNR1", "amount": 899})),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["code"], "unsupported", "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("2paynow") && detail.contains("refund"),
        "{problem}"
    );
    let p = payment(&f, "2PNQR0001").await;
    assert_eq!(
        (p["state"].clone(), p["refunded_amount"].clone()),
        (json!("paid"), json!(0))
    );
    // No money moved, and the refund recorded before asking is failed at
    // once: a provider without refunds will never settle it.
    let (_, refunds) = api(&f, Method::GET, "/v1/payments/2PNQR0001/refunds", None).await;
    let refunds = refunds.as_array().cloned().unwrap_or_default();
    assert!(
        refunds.len() == 1 && refunds[0]["state"] == "failed",
        "{refunds:?}"
    );
}

async fn wap_orders_are_signed_redirects_settled_through_wap_query(slot: &str) {
    let (f, sim) = front(
        slot,
        "2pn-wap",
        SimConfig::new(MID, KEY),
        Options::default(),
    )
    .await;
    for (no, method, page) in [
        ("2PNWAP0001", "alipay_wap", sim.wap_alipay_url()),
        ("2PNWAP0002", "wechat_wap", sim.wap_wechat_url()),
    ] {
        let (status, created) = api(
            &f,
            Method::POST,
            "/v1/payments",
            Some(order(no, 2499, method)),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["pay_action"]["type"], "redirect");
        let url = created["pay_action"]["url"].as_str().unwrap().to_string();
        assert!(url.starts_with(&format!("{page}?")), "{url}");
        // Nothing reaches 2paynow until the payer opens the page.
        assert_eq!(created["provider_trade_no"], Value::Null);
        assert_eq!(sim.trade_no(no), None);
        let opened = reqwest::get(&url).await.unwrap();
        assert_eq!(opened.status(), 200, "{}", opened.text().await.unwrap());
        let trade_no = sim.trade_no(no).unwrap();

        // Before payment, a refresh asks wap_query by the merchant number.
        let (_, p) = api(
            &f,
            Method::GET,
            &format!("/v1/payments/{no}?refresh=true"),
            None,
        )
        .await;
        assert_eq!(p["state"], "pending", "{p}");
        assert_eq!(p["provider_trade_no"], trade_no.as_str(), "{p}");

        sim.pay(no).unwrap();
        let (status, ack) = sim.notify_payment(no, NotifyForgery::None).await.unwrap();
        assert_eq!((status, ack.as_str()), (200, "success"));
        let p = payment(&f, no).await;
        assert_eq!(p["state"], "paid", "{p}");
        assert_eq!(p["provider_trade_no"], trade_no.as_str());
        assert_eq!(
            p["channel_transaction_id"],
            sim.original_trade_no(no).unwrap().as_str()
        );
    }
    // The notification of a WAP order names it in merchant_trade_no; a
    // forged one naming another order is refused.
    let (status, _) = sim
        .notify_payment("2PNWAP0001", NotifyForgery::UnknownOrder)
        .await
        .unwrap();
    assert!(status >= 400, "{status}");
    assert_eq!(sim.count("wap_page"), 2);
    assert!(sim.count("wap_query") >= 4);
    assert_eq!(sim.count("query"), 0);
    // No mini-program method: refused with a 400.
    let (status, problem) = api(
        &f,
        Method::POST,
        "/v1/payments",
        Some(order("2PNMINI001", 100, "wechat_mini_program")),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
}

async fn wait_for_state(f: &Front, no: &str, want: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let p = payment(f, no).await;
        if p["state"] == want {
            return p;
        }
        last = p;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{no} never became {want}: {last}");
}

async fn an_expired_order_is_cancelled_at_2paynow(slot: &str) {
    let (f, sim) = front(
        slot,
        "2pn-close",
        SimConfig::new(MID, KEY),
        Options::fast_reconciler(),
    )
    .await;
    let mut o = order("2PNCLOSE01", 100, "alipay_native");
    o["expires_at"] = payhost::resources::Timestamp(payhost::api::now_ms() + 1500)
        .to_string()
        .into();
    let (status, created) = api(&f, Method::POST, "/v1/payments", Some(o)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["pay_action"]["type"], "qr_code");
    wait_for_state(&f, "2PNCLOSE01", "closed").await;
    assert_eq!(sim.count("cancel"), 1);
    assert_eq!(sim.trans_status("2PNCLOSE01"), Some("TRADE_CLOSED"));
    assert!(sim.pay("2PNCLOSE01").is_err());
}

async fn repeated_queued_notifications_and_an_outage_leave_one_paid_order(slot: &str) {
    let mut config = SimConfig::new(MID, KEY);
    config.faults = FaultConfig {
        seed: 11,
        notify_duplicate: 1.0,
        max_faults: 1,
        max_notify_delay: std::time::Duration::from_millis(50),
        ..FaultConfig::none()
    };
    let (f, sim) = front(slot, "2pn-dup", config, Options::default()).await;
    let (status, created) = api(
        &f,
        Method::POST,
        "/v1/payments",
        Some(order("2PNDUP0001", 1250, "wechat_native")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    // 2paynow is down while the notification arrives: payhost cannot
    // confirm it, does not answer `success`, and the sender repeats.
    sim.set_faults(FaultConfig {
        api_5xx: 1.0,
        notify_duplicate: 1.0,
        // One copy of the notification, one 503 for the first query.
        max_faults: 2,
        ..FaultConfig::none()
    });
    assert!(sim.pay_and_notify("2PNDUP0001").unwrap());
    f.eventually("the notification acknowledged", || {
        sim.outbox_stats().acknowledged >= 1 && sim.outbox_idle()
    })
    .await;
    let stats = sim.outbox_stats();
    assert!(stats.posts >= 2, "{stats:?}");
    let p = payment(&f, "2PNDUP0001").await;
    assert_eq!(p["state"], "paid", "{p}");
    assert_eq!(p["amount"], 1250);
    assert_eq!(sim.fault_counts().http_5xx, 1);
}

async fn without_a_notification_the_reconciler_settles_paid_and_declined_orders(slot: &str) {
    let (f, sim) = front(
        slot,
        "2pn-poll",
        SimConfig::new(MID, KEY),
        Options::fast_reconciler(),
    )
    .await;
    for no in ["2PNPOLL001", "2PNPOLL002"] {
        let (status, created) = api(
            &f,
            Method::POST,
            "/v1/payments",
            Some(order(no, 500, "wechat_native")),
        )
        .await;
        assert_eq!(status, 201, "{created}");
    }
    // The payer pays one, the other is declined; 2paynow notifies neither.
    sim.pay("2PNPOLL001").unwrap();
    sim.decline("2PNPOLL002").unwrap();
    let p = wait_for_state(&f, "2PNPOLL001", "paid").await;
    assert_eq!(
        p["provider_trade_no"],
        sim.trade_no("2PNPOLL001").unwrap().as_str()
    );
    wait_for_state(&f, "2PNPOLL002", "failed").await;
    assert!(sim.count("query") >= 2);
    assert_eq!(sim.count("wap_query"), 0);
}

/// Each scenario as a test against each adapter: module `rust` for the
/// slot `2paynow`, module `javascript` for `2paynow-js`.
macro_rules! both_slots {
    ($($scenario:ident),* $(,)?) => {
        mod rust {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario("2paynow").await
            })*
        }
        mod javascript {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario("2paynow-js").await
            })*
        }
    };
}

both_slots!(
    a_qr_order_is_paid_only_by_what_2paynow_confirms_and_refunds_are_refused,
    wap_orders_are_signed_redirects_settled_through_wap_query,
    an_expired_order_is_cancelled_at_2paynow,
    repeated_queued_notifications_and_an_outage_leave_one_paid_order,
    without_a_notification_the_reconciler_settles_paid_and_declined_orders,
);
