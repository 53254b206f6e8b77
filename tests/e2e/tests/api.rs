//! The payment front end to end over real HTTP on loopback: payhost with
//! its SQLite store and workers, the WeChat Pay v2 simulator behind it, and a
//! merchant callback receiver in front of it.

use payhost_e2e::front::{Front, Options, WEBHOOK_SECRET};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn verify_webhook(d: &payhost_e2e::front::Delivery) -> Value {
    let secret = secrecy::SecretString::from(WEBHOOK_SECRET.to_string());
    payhost::webhooks::verify(&secret, &d.headers, &d.body)
        .expect("a Standard Webhooks signature that verifies");
    serde_json::from_slice(&d.body).unwrap()
}

/// `/v1/events` once every listed event is marked delivered: the worker
/// records the delivery just after the receiver has answered.
async fn all_delivered(f: &Front) -> Value {
    for _ in 0..250 {
        let events = f.get_json("/v1/events").await;
        let list = events["events"].as_array().unwrap();
        if !list.is_empty() && list.iter().all(|e| e["delivery"]["status"] == "delivered") {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("events were not all marked delivered");
}

#[tokio::test]
async fn a_payment_from_creation_to_partial_refund() {
    let f = Front::start("flow", Options::default()).await;

    // Create: 201 with the wx.requestPayment parameters.
    let r = f.create("FLOW-0001", 1999).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["state"], "pending");
    assert_eq!(p["amount"], 1999);
    assert_eq!(p["pay_action"]["type"], "mini_program");
    let params = &p["pay_action"]["params"];
    for k in [
        "appId",
        "timeStamp",
        "nonceStr",
        "package",
        "signType",
        "paySign",
    ] {
        assert!(
            params[k].as_str().is_some_and(|v| !v.is_empty()),
            "{k} missing in {params}"
        );
    }
    assert_eq!(p["metadata"]["cart"], "c-17");

    // The payer pays; WeChat notifies payhost, which acknowledges exactly.
    let answers = f.sim.notify("FLOW-0001", Default::default()).await.unwrap();
    assert!(answers[0].acknowledged(), "{answers:?}");
    let p = f.get_json("/v1/payments/FLOW-0001").await;
    assert_eq!(p["state"], "paid");
    assert!(p["channel_transaction_id"].as_str().is_some());

    // The merchant hears about it through a signed webhook.
    f.eventually("payment.paid webhook", || !f.receiver.accepted().is_empty())
        .await;
    let event = verify_webhook(&f.receiver.accepted()[0]);
    assert_eq!(event["type"], "payment.paid");

    // Partial refund: accepted, then settled by the refund notification.
    let r = f
        .as_merchant(Method::POST, "/v1/payments/FLOW-0001/refunds")
        .json(&json!({ "refund_no": "FLOW-0001-R1", "amount": 500, "reason": "one item returned" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let refund: Value = r.json().await.unwrap();
    assert_eq!(refund["state"], "pending");
    let answers = f
        .sim
        .notify_refund("FLOW-0001-R1", Default::default())
        .await
        .unwrap();
    assert!(answers[0].acknowledged(), "{answers:?}");
    let refund = f
        .get_json("/v1/payments/FLOW-0001/refunds/FLOW-0001-R1")
        .await;
    assert_eq!(refund["state"], "succeeded");
    let p = f.get_json("/v1/payments/FLOW-0001").await;
    assert_eq!(
        (p["state"].as_str(), p["refunded_amount"].as_i64()),
        (Some("partially_refunded"), Some(500))
    );

    // More than what is left is refused before the provider is asked.
    let before = f.sim.requests().len();
    let r = f
        .as_merchant(Method::POST, "/v1/payments/FLOW-0001/refunds")
        .json(&json!({ "refund_no": "FLOW-0001-R2", "amount": 1500 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "refund_not_allowed");
    assert_eq!(f.sim.requests().len(), before);

    // Both events were delivered and are listed with their delivery.
    f.eventually("refund.succeeded webhook", || {
        f.receiver.accepted().len() >= 2
    })
    .await;
    let kinds: Vec<String> = f
        .receiver
        .accepted()
        .iter()
        .map(|d| verify_webhook(d)["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["payment.paid", "refund.succeeded"]);
    let events = all_delivered(&f).await;
    let listed: Vec<(&str, &str)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["delivery"]["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("payment.paid", "delivered"),
            ("refund.succeeded", "delivered")
        ]
    );
}

#[tokio::test]
async fn duplicate_and_forged_notifications_change_nothing_twice() {
    let f = Front::start("notify", Options::default()).await;
    assert_eq!(
        f.create("DUP-0001", 100).await.status(),
        StatusCode::CREATED
    );

    // A forged notification (bad signature) gets WeChat's FAIL answer and
    // leaves the order pending.
    let answers = f
        .sim
        .notify(
            "DUP-0001",
            payhost_simulators::wechat_v2::NotifyOptions {
                bad_signature: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!answers[0].acknowledged());
    assert!(answers[0].body.contains("FAIL"), "{answers:?}");
    assert_eq!(
        f.get_json("/v1/payments/DUP-0001").await["state"],
        "pending"
    );

    // The genuine one, delivered three times, is applied once.
    let answers = f
        .sim
        .notify(
            "DUP-0001",
            payhost_simulators::wechat_v2::NotifyOptions {
                times: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(answers.iter().all(|a| a.acknowledged()), "{answers:?}");
    assert_eq!(f.get_json("/v1/payments/DUP-0001").await["state"], "paid");
    // Events are written with the state change, so the count is final here.
    let events = f.get_json("/v1/events").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
}

#[tokio::test]
async fn a_failing_merchant_endpoint_is_retried_until_it_accepts() {
    let f = Front::start("retry", Options::default()).await;
    f.receiver
        .fail_first
        .store(2, std::sync::atomic::Ordering::SeqCst);
    f.create("RETRY-0001", 100).await;
    f.sim
        .notify("RETRY-0001", Default::default())
        .await
        .unwrap();
    f.eventually("delivery after two failures", || {
        !f.receiver.accepted().is_empty()
    })
    .await;
    let all = f.receiver.deliveries.lock().unwrap().clone();
    assert_eq!(all.len(), 3);
    // Every attempt carries the same webhook-id, so the merchant can de-duplicate.
    let ids: Vec<_> = all
        .iter()
        .map(|d| d.headers["webhook-id"].clone())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let events = all_delivered(&f).await;
    assert_eq!(events["events"][0]["delivery"]["attempts"], 3);
    assert_eq!(events["events"][0]["delivery"]["status"], "delivered");
}

#[tokio::test]
async fn the_reconciler_settles_an_order_whose_notification_never_came() {
    let f = Front::start(
        "reconcile",
        Options {
            notify_overdue_secs: 0,
            ..Default::default()
        },
    )
    .await;
    f.create("RECON-0001", 100).await;
    // Paid at WeChat, but the notification is lost.
    f.sim.pay("RECON-0001").unwrap();
    for _ in 0..250 {
        if f.get_json("/v1/payments/RECON-0001").await["state"] == "paid" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the reconciler did not learn that RECON-0001 was paid");
}

#[tokio::test]
async fn a_restart_loses_nothing() {
    let f = Front::start("restart", Options::default()).await;
    f.create("KEEP-0001", 100).await;
    f.create("KEEP-0002", 200).await;
    f.sim.notify("KEEP-0001", Default::default()).await.unwrap();
    let before = (
        f.get_json("/v1/payments/KEEP-0001").await,
        f.get_json("/v1/payments/KEEP-0002").await,
    );
    let f = f.restart().await;
    let after = (
        f.get_json("/v1/payments/KEEP-0001").await,
        f.get_json("/v1/payments/KEEP-0002").await,
    );
    assert_eq!(before, after);
    assert_eq!(after.0["state"], "paid");
    // The restarted host keeps serving the same orders.
    f.sim.notify("KEEP-0002", Default::default()).await.unwrap();
    assert_eq!(f.get_json("/v1/payments/KEEP-0002").await["state"], "paid");
}
