//! Money safety at the HTTP boundary: a payer's money is never silently
//! dropped, a contradiction reaches the merchant, caps hold under
//! concurrency. payhost, its store and workers, the WeChat Pay v2
//! simulator and a merchant receiver, all on loopback.

use payhost_e2e::front::{Front, Options, WEBHOOK_SECRET, WECHAT_KEY, order_body};
use reqwest::{Method, StatusCode};
use serde_json::Value;

fn webhook(d: &payhost_e2e::front::Delivery) -> Value {
    let secret = secrecy::SecretString::from(WEBHOOK_SECRET.to_string());
    payhost::webhooks::verify(&secret, &d.headers, &d.body)
        .expect("a Standard Webhooks signature that verifies");
    serde_json::from_slice(&d.body).unwrap()
}

fn webhooks_of(f: &Front, kind: &str) -> Vec<Value> {
    f.receiver
        .accepted()
        .iter()
        .map(webhook)
        .filter(|e| e["type"] == kind)
        .collect()
}

/// Re-signs a v2 message with the merchant's key, as a provider (or
/// someone holding the key) would.
fn signed(mut fields: payhost_sdk::xml::Fields) -> String {
    use payhost_sdk::native::{DigestAlgorithm, Part, SecretTable};
    fields.remove("sign");
    let text = payhost_sdk::canonical::sorted_pairs(&fields, &["sign"]);
    let mut keys = SecretTable::new();
    let k = keys.insert(WECHAT_KEY.as_bytes().to_vec());
    let sign = keys
        .digest(
            DigestAlgorithm::Md5,
            &[Part::Text(&format!("{text}&key=")), Part::Secret(k)],
        )
        .unwrap();
    fields.insert("sign".into(), hex::encode_upper(sign));
    payhost_sdk::xml::encode("xml", &fields)
}

/// A payment notification for `order_no` (19.99 CNY), signed with the
/// merchant's key: what WeChat would send, for an order it does not know.
fn paid_notification(order_no: &str, transaction_id: &str) -> String {
    let mut fields = payhost_sdk::xml::Fields::new();
    for (k, v) in [
        ("return_code", "SUCCESS"),
        ("result_code", "SUCCESS"),
        ("appid", payhost_e2e::front::APPID),
        ("mch_id", payhost_e2e::front::MCH_ID),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
        ("trade_type", "JSAPI"),
        ("total_fee", "1999"),
        ("fee_type", "CNY"),
        ("transaction_id", transaction_id),
        ("out_trade_no", order_no),
        ("time_end", "20261201120000"),
    ] {
        fields.insert(k.into(), v.into());
    }
    signed(fields)
}

fn money_events(metrics: &str, kind: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("payhost_money_events_total") && l.contains(&format!("kind=\"{kind}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A correctly signed notification for 0.01 instead of 19.99: nothing
/// changes, WeChat is not told SUCCESS (so it repeats), and the merchant
/// hears of it once, however often WeChat repeats it.
#[tokio::test]
async fn a_signed_notification_for_the_wrong_amount_reaches_the_merchant_not_the_order() {
    let f = Front::start("mismatch", Options::default()).await;
    assert_eq!(
        f.create("MIS-0001", 1999).await.status(),
        StatusCode::CREATED
    );
    let genuine = f.sim.pay("MIS-0001").unwrap();
    let (_, mut fields) = payhost_sdk::xml::decode(genuine.as_bytes()).unwrap();
    fields.insert("total_fee".into(), "1".into());
    let forged_amount = signed(fields);
    for _ in 0..3 {
        let r = f
            .client
            .post(f.url("/v1/notify/wechat-v2/shop-1"))
            .body(forged_amount.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let text = r.text().await.unwrap();
        assert!(!text.contains("SUCCESS"), "{text}");
        assert!(text.contains("amount"), "{text}");
    }
    let p = f.get_json("/v1/payments/MIS-0001").await;
    assert_eq!(p["state"], "pending");
    f.eventually("the mismatch webhook", || {
        !webhooks_of(&f, "payment.provider_mismatch").is_empty()
    })
    .await;
    let events = webhooks_of(&f, "payment.provider_mismatch");
    assert_eq!(events.len(), 1, "told once: {events:?}");
    assert_eq!(
        events[0]["data"]["payment"]["merchant_order_no"],
        "MIS-0001"
    );
    assert!(
        events[0]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("amount")
    );
    assert_eq!(events[0]["data"]["reported"]["amount"], 1);
    assert_eq!(money_events(&f.metrics().await, "payment_mismatch"), 1);

    // The genuine notification still settles it.
    let answers = f.sim.notify("MIS-0001", Default::default()).await.unwrap();
    assert!(answers[0].acknowledged(), "{answers:?}");
    assert_eq!(f.get_json("/v1/payments/MIS-0001").await["state"], "paid");
}

/// Paid after payhost gave up: a verified payment for a failed order is a
/// fact. The order becomes paid and the merchant's `payment.paid` says so.
#[tokio::test]
async fn a_payment_after_payhost_gave_up_is_paid_and_marked() {
    let f = Front::start("after-close", Options::default()).await;
    // The provider refuses the create for good: the order fails.
    f.sim.fail_next("NOAUTH");
    let r = f.create("LATE-0001", 1999).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        f.get_json("/v1/payments/LATE-0001").await["state"],
        "failed"
    );
    // ...yet a correctly signed payment for it arrives.
    let answers = f.sim.notify("LATE-0001", Default::default()).await;
    let body = match answers {
        // The simulator knows no such order: sign one ourselves.
        Err(_) => paid_notification("LATE-0001", "4200000000000000000000000777"),
        Ok(_) => panic!("the simulator accepted a payment of an order it refused"),
    };
    let r = f
        .client
        .post(f.url("/v1/notify/wechat-v2/shop-1"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("SUCCESS"));
    let p = f.get_json("/v1/payments/LATE-0001").await;
    assert_eq!(p["state"], "paid");
    f.eventually("payment.paid webhook", || {
        !webhooks_of(&f, "payment.paid").is_empty()
    })
    .await;
    let paid = webhooks_of(&f, "payment.paid");
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0]["data"]["paid_after_close"], true);
    assert_eq!(paid[0]["data"]["previous_state"], "failed");
    assert_eq!(money_events(&f.metrics().await, "paid_after_close"), 1);
}

/// 100 concurrent creates for one payer under a daily cap of 10 orders'
/// worth: exactly 10 are admitted, the others are refused naming the cap.
#[tokio::test]
async fn concurrent_creates_for_one_payer_admit_exactly_what_the_daily_cap_allows() {
    let f = Front::start(
        "cap-race",
        Options {
            limits: "per_payer_day_minor = 10000\ncreate_per_min = 100000".into(),
            ..Options::default()
        },
    )
    .await;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let req = f
                .as_merchant(Method::POST, "/v1/payments")
                .json(&order_body(&format!("CAP-{i:04}"), 1000));
            tokio::spawn(async move {
                let r = req.send().await.unwrap();
                let status = r.status();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let (mut admitted, mut capped) = (0, 0);
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::CREATED => admitted += 1,
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(body["code"], "limit_exceeded");
                assert_eq!(body["limit"], "per_payer_day");
                capped += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((admitted, capped), (10, 90));
}

/// Knobs for the reconciler tests: it looks every 50 ms, asks about an
/// order after a second, and retries 100 ms later.
fn fast_reconciler() -> Options {
    Options {
        reconciler_interval_ms: 50,
        notify_overdue_secs: 1,
        poll_backoff_ms: 100,
        egress_timeout_ms: 300,
        ..Options::default()
    }
}

async fn create_expiring(f: &Front, no: &str, secs: i64) {
    let mut body = order_body(no, 1999);
    body["expires_at"] = payhost::resources::Timestamp(payhost::api::now_ms() + secs * 1000)
        .to_string()
        .into();
    let r = f
        .as_merchant(Method::POST, "/v1/payments")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
}

async fn state_of(f: &Front, no: &str) -> String {
    f.get_json(&format!("/v1/payments/{no}")).await["state"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn eventually_state(f: &Front, no: &str, want: &str) {
    for _ in 0..300 {
        if state_of(f, no).await == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{no} never became {want}: {}", state_of(f, no).await);
}

/// The order expires while every call to the provider times out: it is not
/// closed. The payer had paid (the notification was lost); once the
/// provider answers again, close finds it paid, and the merchant hears
/// `payment.paid` exactly once.
#[tokio::test]
async fn an_order_is_not_closed_while_the_provider_times_out_and_its_late_payment_is_delivered() {
    use payhost_simulators::faults::FaultConfig;
    let f = Front::start("expiry-timeout", fast_reconciler()).await;
    create_expiring(&f, "EXP-0001", 1).await;
    f.sim.set_faults(FaultConfig {
        seed: 1,
        api_timeout: 1.0,
        hang: std::time::Duration::from_millis(800),
        max_faults: 10_000,
        ..FaultConfig::none()
    });
    // The payer pays; WeChat's notification never arrives.
    f.sim.pay("EXP-0001").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert!(
        f.sim.fault_counts().total() > 0,
        "the reconciler asked the provider"
    );
    assert_eq!(state_of(&f, "EXP-0001").await, "pending");
    assert!(webhooks_of(&f, "payment.closed").is_empty());

    f.sim.set_faults(FaultConfig::none());
    eventually_state(&f, "EXP-0001", "paid").await;
    f.eventually("payment.paid webhook", || {
        !webhooks_of(&f, "payment.paid").is_empty()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let paid = webhooks_of(&f, "payment.paid");
    assert_eq!(paid.len(), 1, "{paid:?}");
    assert_eq!(paid[0]["data"]["paid_after_close"], false);
    assert!(webhooks_of(&f, "payment.closed").is_empty());
}

/// Expired and unpaid: payhost closes it at the provider first, then
/// locally. A correctly signed payment arriving afterwards is a fact.
#[tokio::test]
async fn an_expired_order_is_closed_at_the_provider_and_a_payment_after_that_is_marked() {
    let f = Front::start("expiry-close", fast_reconciler()).await;
    create_expiring(&f, "EXP-0002", 1).await;
    eventually_state(&f, "EXP-0002", "closed").await;
    assert_eq!(f.sim.trade_state("EXP-0002").as_deref(), Some("CLOSED"));
    assert!(
        f.sim.requests().iter().any(|r| r.path == "/pay/closeorder"),
        "closed at the provider"
    );
    f.eventually("payment.closed webhook", || {
        !webhooks_of(&f, "payment.closed").is_empty()
    })
    .await;

    let r = f
        .client
        .post(f.url("/v1/notify/wechat-v2/shop-1"))
        .body(paid_notification(
            "EXP-0002",
            "4200000000000000000000000888",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(state_of(&f, "EXP-0002").await, "paid");
    f.eventually("payment.paid webhook", || {
        !webhooks_of(&f, "payment.paid").is_empty()
    })
    .await;
    let paid = webhooks_of(&f, "payment.paid");
    assert_eq!(paid[0]["data"]["paid_after_close"], true);
    assert_eq!(paid[0]["data"]["previous_state"], "closed");
}

/// The provider settles a refund but its notification is lost: the
/// reconciler's `refund-query` settles it, and the merchant hears of it once.
#[tokio::test]
async fn a_refund_whose_notification_is_lost_settles_through_refund_query() {
    use payhost_simulators::faults::FaultConfig;
    use payhost_simulators::wechat_v2::RefundStatus;
    let f = Front::start("refund-query", fast_reconciler()).await;
    assert_eq!(
        f.create("RQ-0001", 1999).await.status(),
        StatusCode::CREATED
    );
    let answers = f.sim.notify("RQ-0001", Default::default()).await.unwrap();
    assert!(answers[0].acknowledged());
    let r = f
        .as_merchant(Method::POST, "/v1/payments/RQ-0001/refunds")
        .json(&serde_json::json!({ "refund_no": "RQ-0001-R1", "amount": 999 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    f.sim.set_faults(FaultConfig {
        seed: 2,
        notify_drop: 1.0,
        max_faults: 100,
        ..FaultConfig::none()
    });
    f.sim
        .settle_refund("RQ-0001-R1", RefundStatus::Success)
        .unwrap();
    let path = "/v1/payments/RQ-0001/refunds/RQ-0001-R1";
    for _ in 0..300 {
        if f.get_json(path).await["state"] == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(f.get_json(path).await["state"], "succeeded");
    assert!(
        f.sim
            .requests()
            .iter()
            .any(|r| r.path == "/pay/refundquery")
    );
    let p = f.get_json("/v1/payments/RQ-0001").await;
    assert_eq!(
        (p["state"].as_str(), p["refunded_amount"].as_i64()),
        (Some("partially_refunded"), Some(999))
    );
    f.eventually("refund.succeeded webhook", || {
        !webhooks_of(&f, "refund.succeeded").is_empty()
    })
    .await;
    assert_eq!(webhooks_of(&f, "refund.succeeded").len(), 1);
}
