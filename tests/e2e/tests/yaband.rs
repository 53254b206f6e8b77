//! The yaband component through payhost's HTTP API against the Yaband
//! simulator: mini-program, URL and QR orders, payment by notification and
//! by the reconciler, query, expiry without a close call, full and partial
//! refunds and refund query -- all by Yaband's own trade_id / refund_id,
//! which the simulator insists on -- and the notifications payhost must not
//! take.

use payhost_e2e::front::{Front, Options};
use payhost_simulators::yaband::{NotifyForgery, NotifyOptions, SimConfig, Simulator};
use reqwest::Method;
use serde_json::{Value, json};

const YB_KEY: &str = "pk_test_shop_yb_51c0";
const USER: &str = "016683";
const SECRET: &str = "f4f70db6107aaaaaaab75efa1f1490b4";

/// payhost with a `yaband` merchant `shop-yb` (EUR) in front of a Yaband
/// simulator that knows the same account.
async fn yb_front(name: &str, options: Options) -> (Front, Simulator) {
    let sim = Simulator::start(SimConfig::new(USER, SECRET)).await;
    let dir = payhost_e2e::temp_dir(name);
    std::fs::write(dir.join("yaband.key"), SECRET).unwrap();
    let extra = format!(
        r#"
[[merchants]]
id = "shop-yb"
api_keys = ["{hash}"]
adapter = "yaband"
currency = "EUR"
industry = "physical"

[merchants.limits]
cny_rate = "0.1300"

[merchants.config]
user = "{USER}"
secret_key = "file:{dir}/yaband.key"
base_url = "{base}"
redirect_url = "https://shop.example/return"
"#,
        hash = payhost::config::api_key_hash(YB_KEY),
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

async fn yb(f: &Front, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    f.call_as(YB_KEY, method, path, body).await
}

fn yb_order(no: &str, amount: i64, method: &str) -> Value {
    json!({
        "merchant_order_no": no, "amount": amount, "currency": "EUR",
        "description": "Tea, 250 g", "method": method,
        "payer": {"app_id": "wx7a5355d3d2a904a4", "openid": "opilP5dyazU7pTpyps8TDc53OGyU", "client_ip": "203.0.113.7"},
    })
}

async fn payment(f: &Front, no: &str) -> Value {
    yb(f, Method::GET, &format!("/v1/payments/{no}"), None)
        .await
        .1
}

async fn wait_for(f: &Front, path: &str, field: &str, want: &str) -> Value {
    f.wait_for_as(YB_KEY, path, field, want).await
}

#[tokio::test]
async fn a_mini_program_payment_is_created_notified_queried_and_refunded_by_yabands_ids() {
    let (f, sim) = yb_front("yb-flow", Options::default()).await;
    let (status, created) = yb(
        &f,
        Method::POST,
        "/v1/payments",
        Some(yb_order("YBFLOW0001", 2499, "wechat_mini_program")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["pay_action"]["type"], "mini_program", "{created}");
    let params = &created["pay_action"]["params"];
    assert!(
        params["package"]
            .as_str()
            .unwrap()
            .starts_with("prepay_id=")
    );
    assert_eq!(params["appId"], "wx7a5355d3d2a904a4");
    let trade_id = sim.trade_id("YBFLOW0001").expect("created at Yaband");
    assert_eq!(created["provider_trade_no"], trade_id.as_str());
    assert_eq!(sim.count("v3.CreatePaymentsWechatMiniPay"), 1);

    sim.pay("YBFLOW0001").unwrap();
    // Forged ones are refused with Yaband's `bad`; signed ones that
    // contradict the order, or name an order payhost never had, are
    // refused by payhost. Nothing changes.
    for forgery in [NotifyForgery::Tampered, NotifyForgery::WrongKey] {
        let (status, body) = sim.notify_payment("YBFLOW0001", forgery).await.unwrap();
        assert_eq!((status, body.as_str()), (400, "bad"), "{forgery:?}");
    }
    for forgery in [
        NotifyForgery::WrongAmount,
        NotifyForgery::WrongCurrency,
        NotifyForgery::UnknownOrder,
    ] {
        let (status, body) = sim.notify_payment("YBFLOW0001", forgery).await.unwrap();
        assert!(
            status >= 400 && body != "ok",
            "{forgery:?}: {status} {body}"
        );
    }
    // Held for risk review: acknowledged, not paid.
    let verify = NotifyOptions {
        state: Some("verify".into()),
        ..NotifyOptions::default()
    };
    let answers = sim.notify_payment_with("YBFLOW0001", verify).await.unwrap();
    assert_eq!(answers, vec![(200, "ok".to_string())]);
    let p = payment(&f, "YBFLOW0001").await;
    assert_eq!(p["state"], "pending", "{p}");

    // The real one, twice (duplicates are harmless), then a late `pending`.
    let twice = NotifyOptions {
        copies: 2,
        ..NotifyOptions::default()
    };
    let answers = sim.notify_payment_with("YBFLOW0001", twice).await.unwrap();
    assert_eq!(answers, vec![(200, "ok".to_string()); 2]);
    let late = NotifyOptions {
        state: Some("pending".into()),
        ..NotifyOptions::default()
    };
    let answers = sim.notify_payment_with("YBFLOW0001", late).await.unwrap();
    assert_eq!(answers, vec![(200, "ok".to_string())]);
    let p = payment(&f, "YBFLOW0001").await;
    assert_eq!(p["state"], "paid", "{p}");
    assert_eq!(p["merchant_order_no"], "YBFLOW0001");
    assert_eq!(p["provider_trade_no"], trade_id.as_str());
    assert!(
        p["channel_transaction_id"]
            .as_str()
            .is_some_and(|t| t.starts_with("4200")),
        "{p}"
    );

    // Query with refresh: by trade_id, which the simulator takes.
    let (status, p) = yb(
        &f,
        Method::GET,
        "/v1/payments/YBFLOW0001?refresh=true",
        None,
    )
    .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["state"], "paid", "{p}");
    assert_eq!(sim.count("v3.QueryOrder"), 1);

    // A partial refund, settled by its notification.
    let (status, r) = yb(
        &f,
        Method::POST,
        "/v1/payments/YBFLOW0001/refunds",
        Some(json!({"refund_no": "YBR1", "amount": 1000})),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["state"], "pending", "{r}");
    sim.settle_refund("YBR1", "refunded").unwrap();
    let (status, body) = sim
        .notify_refund("YBR1", NotifyForgery::Tampered)
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (400, "bad"));
    let (_, r) = yb(
        &f,
        Method::GET,
        "/v1/payments/YBFLOW0001/refunds/YBR1",
        None,
    )
    .await;
    assert_eq!(r["state"], "pending", "{r}");
    let (status, body) = sim
        .notify_refund("YBR1", NotifyForgery::None)
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (_, r) = yb(
        &f,
        Method::GET,
        "/v1/payments/YBFLOW0001/refunds/YBR1",
        None,
    )
    .await;
    assert_eq!(r["state"], "succeeded", "{r}");
    let p = payment(&f, "YBFLOW0001").await;
    assert_eq!(p["refunded_amount"], 1000, "{p}");
    // Never once was the merchant order no offered where a trade_id belongs.
    assert!(sim.refusals().is_empty(), "{:?}", sim.refusals());
}

#[tokio::test]
async fn url_and_qr_methods_answer_a_redirect_or_a_qr_code() {
    let (f, sim) = yb_front("yb-methods", Options::default()).await;
    for (no, method, kind, yaband_method) in [
        ("YBPAYPAL01", "paypal", "redirect", "v3.CreatePayments"),
        ("YBPAYCQ001", "payconiq", "redirect", "v3.CreatePayments"),
        (
            "YBUPWAP001",
            "unionpay_wap",
            "redirect",
            "v3.CreatePayments",
        ),
        (
            "YBJSAPI001",
            "wechat_jsapi",
            "redirect",
            "v3.CreatePayments",
        ),
        ("YBCARD0001", "card", "redirect", "v3.CreateCardPayments"),
        (
            "YBNATIVE01",
            "wechat_native",
            "qr_code",
            "v3.CreateWechatNativePay",
        ),
    ] {
        let before = sim.count(yaband_method);
        let (status, created) = yb(
            &f,
            Method::POST,
            "/v1/payments",
            Some(yb_order(no, 2499, method)),
        )
        .await;
        assert_eq!(status, 201, "{method}: {created}");
        let action = &created["pay_action"];
        assert_eq!(action["type"], kind, "{method}: {created}");
        let target = if kind == "qr_code" {
            &action["text"]
        } else {
            &action["url"]
        };
        let trade_id = sim.trade_id(no).unwrap();
        assert!(
            target.as_str().is_some_and(|t| t.contains(&trade_id)),
            "{method}: {created}"
        );
        assert_eq!(sim.count(yaband_method), before + 1, "{method}");
        assert_eq!(created["provider_trade_no"], trade_id.as_str());
    }
    // An order in another currency than the merchant's is refused before
    // anything is sent.
    let mut usd = yb_order("YBUSD00001", 2499, "paypal");
    usd["currency"] = "USD".into();
    let (status, body) = yb(&f, Method::POST, "/v1/payments", Some(usd)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(sim.trade_id("YBUSD00001"), None);
}

#[tokio::test]
async fn an_unnotified_payment_settles_by_query_and_a_lost_refund_notice_by_refund_query() {
    let (f, sim) = yb_front("yb-reconcile", Options::fast_reconciler()).await;
    let (status, created) = yb(
        &f,
        Method::POST,
        "/v1/payments",
        Some(yb_order("YBRECON001", 1500, "paypal")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    // Paid at Yaband; its notification never comes.
    sim.pay("YBRECON001").unwrap();
    wait_for(&f, "/v1/payments/YBRECON001", "state", "paid").await;
    assert!(sim.count("v3.QueryOrder") >= 1);
    // A full refund whose notification is lost.
    let (status, r) = yb(
        &f,
        Method::POST,
        "/v1/payments/YBRECON001/refunds",
        Some(json!({"refund_no": "YBRR1", "amount": 1500})),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    sim.settle_refund("YBRR1", "refunded").unwrap();
    wait_for(
        &f,
        "/v1/payments/YBRECON001/refunds/YBRR1",
        "state",
        "succeeded",
    )
    .await;
    assert!(sim.count("v3.QueryRefundOrder") >= 1);
    let p = payment(&f, "YBRECON001").await;
    assert_eq!(p["state"], "refunded", "{p}");
    assert_eq!(p["refunded_amount"], 1500, "{p}");
    assert!(sim.refusals().is_empty(), "{:?}", sim.refusals());
}

#[tokio::test]
async fn an_expired_order_is_closed_on_yabands_word_without_a_close_call() {
    let (f, sim) = yb_front("yb-expiry", Options::fast_reconciler()).await;
    let mut order = yb_order("YBEXPIRE01", 500, "wechat_native");
    order["expires_at"] = payhost::resources::Timestamp(payhost::api::now_ms() + 1500)
        .to_string()
        .into();
    let (status, created) = yb(&f, Method::POST, "/v1/payments", Some(order)).await;
    assert_eq!(status, 201, "{created}");
    // Yaband lets the unpaid order lapse.
    sim.set_state("YBEXPIRE01", "expired").unwrap();
    wait_for(&f, "/v1/payments/YBEXPIRE01", "state", "closed").await;
    assert!(sim.count("v3.QueryOrder") >= 1);
    assert!(sim.refusals().is_empty(), "{:?}", sim.refusals());
}
