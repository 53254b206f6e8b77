//! The wechat-cloudpay component in the sandbox, through payhost's HTTP API,
//! against the cloudPay simulator: payhost stands as the Cloud Hosting
//! service `payhost`, the simulator as the open interface and the platform
//! that calls back. No callback is believed before a query confirmed it.

use payhost_e2e::front::{Front, Options};
use payhost_simulators::wechat_cloudpay::{NotifyForgery, SimConfig, Simulator, acknowledged};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const CP_KEY: &str = "pk_test_shop_cp_41ac";
const ENV: &str = "prod-66733tes755tabc";
const SUB_MCH: &str = "1712734762";
const APPID: &str = "wxd2565e6a04246fd1";

/// payhost with a `wechat-cloudpay` merchant `shop-cp` in front of a
/// simulator that routes the service `payhost` back to it.
async fn cp_front(name: &str, options: Options, sim: SimConfig) -> (Front, Simulator) {
    let sim = Simulator::start(sim).await;
    let extra = format!(
        r#"
[[merchants]]
id = "shop-cp"
api_keys = ["{hash}"]
adapter = "wechat-cloudpay"
currency = "CNY"
industry = "physical"

[merchants.config]
env_id = "{ENV}"
sub_mch_id = "{SUB_MCH}"
appid = "{APPID}"
container_service = "payhost"
base_url = "{base}"
"#,
        hash = payhost::config::api_key_hash(CP_KEY),
        base = sim.base_url(),
    );
    let f = Front::start(
        name,
        Options {
            extra_toml: extra,
            ..options
        },
    )
    .await;
    sim.route_service("payhost", &f.base);
    (f, sim)
}

fn sim_config() -> SimConfig {
    SimConfig {
        // payhost closes at expiry, seconds after creation in these tests.
        close_min_age: Duration::ZERO,
        ..SimConfig::new(ENV, SUB_MCH, APPID)
    }
}

async fn cp(f: &Front, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    f.call_as(CP_KEY, method, path, body).await
}

fn cp_order(no: &str, amount: i64) -> Value {
    json!({
        "merchant_order_no": no, "amount": amount, "currency": "CNY",
        "description": "Tea, 250 g", "method": "wechat_mini_program",
        "payer": {"app_id": APPID, "openid": "o-cloudpay-payer", "client_ip": "203.0.113.7"},
    })
}

async fn wait_for(f: &Front, path: &str, field: &str, want: &str) -> Value {
    f.wait_for_as(CP_KEY, path, field, want).await
}

#[tokio::test]
async fn a_cloudpay_payment_is_created_confirmed_paid_refunded_and_settled() {
    let (f, sim) = cp_front("cp-flow", Options::default(), sim_config()).await;

    // The URL/QR methods are not cloudPay's: refused before anything is sent.
    let mut qr = cp_order("CPQR0001", 100);
    qr["method"] = "wechat_native".into();
    let (status, problem) = cp(&f, Method::POST, "/v1/payments", Some(qr)).await;
    assert!((400..500).contains(&status), "{status} {problem}");
    // Another currency: a 400 naming the one the adapter takes.
    let mut usd = cp_order("CPUSD0001", 100);
    usd["currency"] = "USD".into();
    let (status, problem) = cp(&f, Method::POST, "/v1/payments", Some(usd)).await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem.to_string().contains("CNY"), "{problem}");
    assert_eq!(sim.count("unifiedOrder"), 0);

    let (status, created) = cp(
        &f,
        Method::POST,
        "/v1/payments",
        Some(cp_order("CPFLOW0001", 100)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(sim.count("unifiedOrder"), 1);
    assert_eq!(created["pay_action"]["type"], "mini_program");
    let params = &created["pay_action"]["params"];
    assert_eq!(params["appId"], APPID);
    assert_eq!(params["signType"], "MD5");
    assert!(
        params["package"]
            .as_str()
            .unwrap()
            .starts_with("prepay_id=wx"),
        "{params}"
    );

    // A "paid" callback before anyone paid: the query says NOTPAY.
    let (status, body) = sim
        .notify_payment("CPFLOW0001", NotifyForgery::Unpaid)
        .await
        .unwrap();
    assert!(!acknowledged(status, &body), "{status} {body}");
    assert_eq!(sim.count("queryorder"), 1);

    let tx = sim.pay("CPFLOW0001").unwrap();
    // Tampered amount, another currency, another merchant, an unknown order:
    // refused with a non-zero errcode, and nothing changes.
    for forgery in [
        NotifyForgery::Tampered,
        NotifyForgery::WrongCurrency,
        NotifyForgery::OtherMerchant,
        NotifyForgery::UnknownOrder,
    ] {
        let (status, body) = sim.notify_payment("CPFLOW0001", forgery).await.unwrap();
        assert!(!acknowledged(status, &body), "{forgery:?}: {status} {body}");
        let (_, p) = cp(&f, Method::GET, "/v1/payments/CPFLOW0001", None).await;
        assert_eq!(p["state"], "pending", "{forgery:?}");
        assert_eq!(p["channel_transaction_id"], Value::Null, "{forgery:?}");
    }
    // The genuine one, twice (the platform repeats): confirmed each time,
    // applied once, acknowledged with errcode 0 both times.
    let before = sim.count("queryorder");
    let answers = sim
        .notify_payment_repeatedly("CPFLOW0001", NotifyForgery::None, 2, Duration::ZERO)
        .await
        .unwrap();
    for (status, body) in &answers {
        assert!(acknowledged(*status, body), "{status} {body}");
        let ack: Value = serde_json::from_str(body).unwrap();
        assert_eq!(ack["errcode"], 0);
    }
    assert_eq!(sim.count("queryorder"), before + 2);
    let (_, p) = cp(&f, Method::GET, "/v1/payments/CPFLOW0001", None).await;
    assert_eq!(p["state"], "paid", "{p}");
    // The three numbers: the merchant's, none of the provider's own (WeChat
    // is the provider), WeChat's transaction id.
    assert_eq!(p["merchant_order_no"], "CPFLOW0001");
    assert_eq!(p["provider_trade_no"], Value::Null);
    assert_eq!(p["channel_transaction_id"], tx.as_str());
    assert_eq!(p["adapter"], "wechat-cloudpay");
    let (_, p) = cp(
        &f,
        Method::GET,
        "/v1/payments/CPFLOW0001?refresh=true",
        None,
    )
    .await;
    assert_eq!(p["state"], "paid", "{p}");

    // A partial refund settled by its callback (confirmed by refund query).
    let (status, r) = cp(
        &f,
        Method::POST,
        "/v1/payments/CPFLOW0001/refunds",
        Some(json!({"refund_no": "CPR1", "amount": 40})),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["state"], "pending");
    assert_eq!(sim.refund_status("CPR1"), Some("PROCESSING"));
    sim.settle_refund("CPR1", "SUCCESS").unwrap();
    let (status, body) = sim
        .notify_refund("CPR1", NotifyForgery::None)
        .await
        .unwrap();
    assert!(acknowledged(status, &body), "{status} {body}");
    assert!(sim.count("queryrefund") >= 1);
    let (_, r) = cp(
        &f,
        Method::GET,
        "/v1/payments/CPFLOW0001/refunds/CPR1",
        None,
    )
    .await;
    assert_eq!(r["state"], "succeeded", "{r}");
    let (_, p) = cp(&f, Method::GET, "/v1/payments/CPFLOW0001", None).await;
    assert_eq!(p["refunded_amount"], 40, "{p}");
    // A callback for a refund the platform never saw is refused.
    let (status, body) = sim
        .notify_refund("CPR1", NotifyForgery::UnknownOrder)
        .await
        .unwrap();
    assert!(!acknowledged(status, &body), "{status} {body}");
}

#[tokio::test]
async fn the_rest_is_refunded_and_settled_by_refund_query_without_a_callback() {
    let (f, sim) = cp_front("cp-refund-query", Options::fast_reconciler(), sim_config()).await;
    let (status, created) = cp(
        &f,
        Method::POST,
        "/v1/payments",
        Some(cp_order("CPRQ0001", 100)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    sim.pay("CPRQ0001").unwrap();
    let (status, body) = sim
        .notify_payment("CPRQ0001", NotifyForgery::SnakeCase)
        .await
        .unwrap();
    assert!(acknowledged(status, &body), "snake_case keys: {body}");
    wait_for(&f, "/v1/payments/CPRQ0001", "state", "paid").await;
    for (no, amount) in [("CPRQR1", 30), ("CPRQR2", 70)] {
        let (status, r) = cp(
            &f,
            Method::POST,
            "/v1/payments/CPRQ0001/refunds",
            Some(json!({"refund_no": no, "amount": amount})),
        )
        .await;
        assert_eq!(status, 201, "{r}");
        // The platform refunds; its callback never arrives.
        sim.settle_refund(no, "SUCCESS").unwrap();
    }
    for no in ["CPRQR1", "CPRQR2"] {
        wait_for(
            &f,
            &format!("/v1/payments/CPRQ0001/refunds/{no}"),
            "state",
            "succeeded",
        )
        .await;
    }
    let p = wait_for(&f, "/v1/payments/CPRQ0001", "state", "refunded").await;
    assert_eq!(p["refunded_amount"], 100, "{p}");
    assert!(sim.count("queryrefund") >= 2);
    // More than was paid is refused by payhost before the platform is asked.
    let refunds = sim.count("refund");
    let (status, _) = cp(
        &f,
        Method::POST,
        "/v1/payments/CPRQ0001/refunds",
        Some(json!({"refund_no": "CPRQR3", "amount": 1})),
    )
    .await;
    assert!((400..500).contains(&status));
    assert_eq!(sim.count("refund"), refunds);
}

#[tokio::test]
async fn an_expired_cloudpay_order_is_closed_at_the_platform() {
    let (f, sim) = cp_front("cp-close", Options::fast_reconciler(), sim_config()).await;
    let mut order = cp_order("CPCLOSE001", 100);
    order["expires_at"] = payhost::resources::Timestamp(payhost::api::now_ms() + 1500)
        .to_string()
        .into();
    let (status, created) = cp(&f, Method::POST, "/v1/payments", Some(order)).await;
    assert_eq!(status, 201, "{created}");
    wait_for(&f, "/v1/payments/CPCLOSE001", "state", "closed").await;
    assert_eq!(sim.count("closeorder"), 1);
    assert_eq!(sim.trade_state("CPCLOSE001"), Some("CLOSED"));
}

#[tokio::test]
async fn a_lost_callback_is_made_good_by_the_reconciler_and_a_decline_is_an_error() {
    let (f, sim) = cp_front("cp-lost", Options::fast_reconciler(), sim_config()).await;
    sim.fail_next("PARAM_ERROR");
    let (status, problem) = cp(
        &f,
        Method::POST,
        "/v1/payments",
        Some(cp_order("CPLOST001", 100)),
    )
    .await;
    assert!(status >= 400, "{status} {problem}");
    let (status, created) = cp(
        &f,
        Method::POST,
        "/v1/payments",
        Some(cp_order("CPLOST002", 100)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let tx = sim.pay("CPLOST002").unwrap();
    // No callback at all: the reconciler's query finds the payment.
    let p = wait_for(&f, "/v1/payments/CPLOST002", "state", "paid").await;
    assert_eq!(p["channel_transaction_id"], tx.as_str());
}

#[tokio::test]
async fn the_component_describes_its_method_currency_and_capabilities() {
    let rt = payhost::Runtime::new(payhost_e2e::test_config()).unwrap();
    let a = rt.load(&payhost_e2e::component("wechat-cloudpay")).unwrap();
    assert_eq!(a.info.name, "wechat-cloudpay");
    assert_eq!(a.info.methods, vec!["wechat_mini_program".to_string()]);
    assert_eq!(a.info.currencies, vec!["CNY".to_string()]);
    assert_eq!(a.info.egress_hosts, vec!["api.weixin.qq.com".to_string()]);
    let c = &a.info.capabilities;
    assert!(c.close && c.refund_query && c.payment_notifications && c.query_by_merchant_order_no);
}
