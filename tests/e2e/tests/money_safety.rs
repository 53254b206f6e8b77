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

fn money_events(metrics: &str, kind: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("payhost_money_events_total") && l.contains(&format!("kind=\"{kind}\"")))
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
    assert_eq!(events[0]["data"]["order"]["merchant_order_no"], "MIS-0001");
    assert!(events[0]["data"]["reason"].as_str().unwrap().contains("amount"));
    assert_eq!(events[0]["data"]["reported"]["amount"]["minor"], 1);
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
    assert_eq!(f.get_json("/v1/payments/LATE-0001").await["state"], "failed");
    // ...yet a correctly signed payment for it arrives.
    let answers = f.sim.notify("LATE-0001", Default::default()).await;
    let body = match answers {
        // The simulator knows no such order: sign one ourselves.
        Err(_) => {
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
                ("transaction_id", "4200000000000000000000000777"),
                ("out_trade_no", "LATE-0001"),
                ("time_end", "20261201120000"),
            ] {
                fields.insert(k.into(), v.into());
            }
            signed(fields)
        }
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
