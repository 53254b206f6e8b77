//! The simulator over real HTTP: hand-signed calls (the MAC computed with
//! `payhost_sdk::native`), then the vr-payment adapter driven natively
//! against it.

use super::*;
use payhost_sdk::testing::Harness;
use payhost_sdk::types::{
    HttpMethod, HttpResponse, OrderRequest, PayAction, Payer, QueryRequest, RefundQueryRequest,
    RefundRequest, RefundState, TradeState,
};
use vr_payment::VrPayment;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SPACE: i64 = 12345;
const USER: &str = "512";

async fn sim() -> Simulator {
    Simulator::start(SimConfig::new(SPACE, USER, KEY)).await
}

fn mac(method: &str, path: &str, ts: i64, key: &str) -> String {
    let mut t = SecretTable::new();
    let k = t.insert(key.as_bytes().to_vec());
    let data = format!("1|{USER}|{ts}|{method}|{path}");
    let v = t
        .hmac(
            DigestAlgorithm::Sha512,
            k,
            KeyEncoding::Base64,
            &[Part::Text(&data)],
        )
        .unwrap();
    encoding::base64_encode(&v)
}

/// One call at `/api{path}`, signed now with `key`; status and JSON.
async fn call_with(
    sim: &Simulator,
    method: &str,
    path: &str,
    body: Option<Value>,
    ts: i64,
    key: &str,
) -> (u16, Value) {
    let full = format!("/api{path}");
    let client = reqwest::Client::new();
    let url = format!("http://{}{full}", sim.addr);
    let mut req = if method == "GET" {
        client.get(url)
    } else {
        client
            .post(url)
            .header("content-type", "application/json")
            .body(body.unwrap_or(Value::Null).to_string())
    };
    req = req
        .header("x-mac-version", "1")
        .header("x-mac-userid", USER)
        .header("x-mac-timestamp", ts.to_string())
        .header("x-mac-value", mac(method, &full, ts, key));
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn call(sim: &Simulator, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    call_with(sim, method, path, body, now(), KEY).await
}

fn create_body(reference: &str, amount: f64) -> Value {
    json!({
        "currency": "EUR", "merchantReference": reference,
        "lineItems": [{"name": "Tea", "uniqueId": reference, "type": "PRODUCT",
                       "quantity": 1, "amountIncludingTax": amount}],
    })
}

async fn created(sim: &Simulator, reference: &str, amount: f64) -> i64 {
    let (status, t) = call(
        sim,
        "POST",
        &format!("/transaction/create?spaceId={SPACE}"),
        Some(create_body(reference, amount)),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    t["id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_transaction_is_created_paged_read_and_paid_by_id_only() {
    let sim = sim().await;
    let id = created(&sim, "SIM-1", 24.99).await;
    let (status, url) = call(
        &sim,
        "GET",
        &format!("/transaction-payment-page/payment-page-url?spaceId={SPACE}&id={id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        url.as_str().unwrap().contains(&format!("/pay/{id}")),
        "{url}"
    );
    let read = format!("/transaction/read?spaceId={SPACE}&id={id}");
    let (_, t) = call(&sim, "GET", &read, None).await;
    assert_eq!(
        (t["state"].as_str(), t["authorizationAmount"].as_f64()),
        (Some("PENDING"), Some(24.99))
    );
    assert_eq!(t["merchantReference"], "SIM-1");
    // The merchant reference is not an id.
    let (status, e) = call(
        &sim,
        "GET",
        &format!("/transaction/read?spaceId={SPACE}&id=SIM-1"),
        None,
    )
    .await;
    assert_eq!((status, e["type"].as_str()), (442, Some("DEVELOPER_ERROR")));
    sim.pay("SIM-1").unwrap();
    let (_, t) = call(&sim, "GET", &read, None).await;
    assert_eq!(t["state"], "FULFILL");
    assert!(t["completedOn"].is_string());
    assert!(sim.pay("SIM-1").is_err(), "paid once only");
    // Past the payment page, and an unknown id.
    let (status, _) = call(
        &sim,
        "GET",
        &format!("/transaction-payment-page/payment-page-url?spaceId={SPACE}&id={id}"),
        None,
    )
    .await;
    assert_eq!(status, 442);
    let (status, _) = call(
        &sim,
        "GET",
        &format!("/transaction/read?spaceId={SPACE}&id=1"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(sim.count("GET transaction/read"), 4);
}

#[tokio::test]
async fn the_mac_user_timestamp_space_and_field_names_are_checked() {
    let sim = sim().await;
    let path = format!("/transaction/create?spaceId={SPACE}");
    let other_key = "AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let (status, e) = call_with(
        &sim,
        "POST",
        &path,
        Some(create_body("S", 1.0)),
        now(),
        other_key,
    )
    .await;
    assert_eq!(status, 401, "{e}");
    let (status, _) = call_with(
        &sim,
        "POST",
        &path,
        Some(create_body("S", 1.0)),
        now() - 3600,
        KEY,
    )
    .await;
    assert_eq!(status, 401);
    // Signed for another path (the query string is covered).
    let full = format!("/api{path}");
    let resp = reqwest::Client::new()
        .post(format!(
            "http://{}/api/transaction/create?spaceId=1",
            sim.addr
        ))
        .body(create_body("S", 1.0).to_string())
        .header("x-mac-version", "1")
        .header("x-mac-userid", USER)
        .header("x-mac-timestamp", now().to_string())
        .header("x-mac-value", mac("POST", &full, now(), KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let (status, _) = call(
        &sim,
        "POST",
        "/transaction/create?spaceId=999",
        Some(create_body("S", 1.0)),
    )
    .await;
    assert_eq!(status, 403);
    let mut b = create_body("S", 1.0);
    b["amount"] = 1.into();
    let (status, e) = call(&sim, "POST", &path, Some(b)).await;
    assert_eq!(status, 442);
    assert!(e["message"].as_str().unwrap().contains("`amount`"), "{e}");
    let mut b = create_body("S", 1.0);
    b["lineItems"][0]["price"] = 1.into();
    assert_eq!(call(&sim, "POST", &path, Some(b)).await.0, 442);
    assert_eq!(
        call(&sim, "POST", &path, Some(create_body("S", 1.001)))
            .await
            .0,
        442
    );
    assert_eq!(sim.count("POST transaction/create"), 7);
    assert!(sim.state("S").is_none(), "nothing refused was created");
}

#[tokio::test]
async fn refunds_are_idempotent_by_external_id_and_bounded() {
    let sim = sim().await;
    let id = created(&sim, "SIM-R", 10.0).await;
    let path = format!("/refund/refund?spaceId={SPACE}");
    let refund = |amount: f64, external: &str| {
        json!({"transaction": id, "amount": amount, "externalId": external,
               "merchantReference": "SIM-R", "type": "MERCHANT_INITIATED_ONLINE"})
    };
    let (status, _) = call(&sim, "POST", &path, Some(refund(4.0, "R1"))).await;
    assert_eq!(status, 442, "not paid yet");
    sim.pay("SIM-R").unwrap();
    let (status, a) = call(&sim, "POST", &path, Some(refund(4.0, "R1"))).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(
        (a["state"].as_str(), a["transaction"]["id"].as_i64()),
        (Some("PENDING"), Some(id))
    );
    let (_, again) = call(&sim, "POST", &path, Some(refund(4.0, "R1"))).await;
    assert_eq!(again["id"], a["id"], "the same externalId refunds once");
    assert_eq!(
        call(&sim, "POST", &path, Some(refund(5.0, "R1"))).await.0,
        409
    );
    assert_eq!(
        call(&sim, "POST", &path, Some(refund(6.01, "R2"))).await.0,
        442
    );
    let mut wrong = refund(1.0, "R3");
    wrong["currency"] = "EUR".into();
    assert_eq!(call(&sim, "POST", &path, Some(wrong)).await.0, 442);
    sim.settle_refund("R1", "SUCCESSFUL").unwrap();
    let (_, r) = call(
        &sim,
        "GET",
        &format!("/refund/read?spaceId={SPACE}&id={}", a["id"]),
        None,
    )
    .await;
    assert_eq!(r["state"], "SUCCESSFUL");
    let filter = json!({"filter": {"type": "LEAF", "fieldName": "externalId", "operator": "EQUALS", "value": "R1"}});
    let (_, found) = call(
        &sim,
        "POST",
        &format!("/refund/search?spaceId={SPACE}"),
        Some(filter),
    )
    .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    assert_eq!(found[0]["id"], a["id"]);
}

#[tokio::test]
async fn webhooks_are_signed_with_the_served_key_and_forgeries_are_not() {
    let sim = sim().await;
    created(&sim, "SIM-W", 1.0).await;
    let (status, key) = call(
        &sim,
        "GET",
        &format!("/webhook-encryption/read?id={WEBHOOK_KEY_ID}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let public = key["publicKey"].as_str().unwrap().to_string();
    let id = sim.transaction_id("SIM-W").unwrap();
    let verify = |forgery| {
        let (body, header) = sim.webhook("Transaction", id, "PENDING", forgery);
        let header = header?;
        let sig = vr_payment::sign::WebhookSignature::parse(&header).ok()?;
        Some((
            sig.key_id.clone(),
            vr_payment::sign::verify_webhook(&public, body.as_bytes(), &sig).is_ok(),
            body,
        ))
    };
    let (key_id, ok, body) = verify(NotifyForgery::None).unwrap();
    assert!(ok && key_id == WEBHOOK_KEY_ID);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["entityId"].as_i64(), v["spaceId"].as_i64()),
        (Some(id), Some(SPACE))
    );
    assert_eq!(v["listenerEntityTechnicalName"], "Transaction");
    assert!(!verify(NotifyForgery::Tampered).unwrap().1);
    assert_ne!(verify(NotifyForgery::UnknownKey).unwrap().0, WEBHOOK_KEY_ID);
    assert!(verify(NotifyForgery::Unsigned).is_none());
    let (status, _) = call(
        &sim,
        "GET",
        "/webhook-encryption/read?id=00000000-0000-0000-0000-000000000000",
        None,
    )
    .await;
    assert_eq!(status, 404);
    // Without a webhook URL nothing can be sent.
    assert!(
        sim.notify_payment("SIM-W", NotifyForgery::None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn faults_answer_5xx_and_hang() {
    let mut config = SimConfig::new(SPACE, USER, KEY);
    config.faults = FaultConfig {
        seed: 3,
        api_5xx: 1.0,
        max_faults: 1,
        ..FaultConfig::none()
    };
    let sim = Simulator::start(config).await;
    let path = format!("/transaction/create?spaceId={SPACE}");
    assert_eq!(
        call(&sim, "POST", &path, Some(create_body("F", 1.0)))
            .await
            .0,
        503
    );
    assert_eq!(
        call(&sim, "POST", &path, Some(create_body("F", 1.0)))
            .await
            .0,
        200,
        "budget spent"
    );
    assert_eq!(sim.fault_counts().http_5xx, 1);
    let mut config = SimConfig::new(SPACE, USER, KEY);
    config.faults = FaultConfig {
        seed: 1,
        api_timeout: 1.0,
        hang: std::time::Duration::from_millis(50),
        max_faults: 4,
        ..FaultConfig::none()
    };
    let sim = Simulator::start(config).await;
    for i in 0..4 {
        let (status, _) = call(
            &sim,
            "POST",
            &path,
            Some(create_body(&format!("T{i}"), 1.0)),
        )
        .await;
        assert_eq!(status, 504);
    }
    let c = sim.fault_counts();
    let applied = (0..4)
        .filter(|i| sim.state(&format!("T{i}")).is_some())
        .count() as u64;
    assert_eq!(applied, c.timeouts_applied);
    assert_eq!(c.timeouts_applied + c.timeouts_unapplied, 4);
}

// ------------------------------------------------------------ the adapter against it

/// A harness whose provider is the simulator, over real HTTP.
fn adapter(sim: &Simulator) -> Harness<VrPayment> {
    let handle = tokio::runtime::Handle::current();
    Harness::<VrPayment>::new()
        .text("space_id", &SPACE.to_string())
        .text("user_id", USER)
        .secret("authentication_key", KEY)
        .text("base_url", &sim.base_url())
        .timestamp(now())
        .with_schema_defaults()
        .respond(move |req| {
            tokio::task::block_in_place(|| {
                handle.block_on(async {
                    let client = reqwest::Client::new();
                    let method = match req.method {
                        HttpMethod::Get => reqwest::Method::GET,
                        _ => reqwest::Method::POST,
                    };
                    let mut r = client.request(method, &req.url).body(req.body.clone());
                    for (k, v) in &req.headers {
                        r = r.header(k, v);
                    }
                    let resp = r.send().await.unwrap();
                    HttpResponse {
                        status: resp.status().as_u16(),
                        headers: vec![],
                        body: resp.bytes().await.unwrap().to_vec(),
                    }
                })
            })
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapter_creates_polls_refunds_and_reads_refunds_against_the_simulator() {
    let sim = sim().await;
    let mut h = adapter(&sim);
    let order = OrderRequest {
        merchant_order_no: "LOOP-1".into(),
        amount: Money {
            minor: 2499,
            currency: "EUR".into(),
        },
        description: "Tea".into(),
        method: "wechat_pay".into(),
        payer: Payer {
            app_id: None,
            openid: None,
            client_ip: None,
        },
        expires_at: None,
        attach: None,
    };
    let created = h.unified_order(&order).unwrap();
    let id = sim.transaction_id("LOOP-1").unwrap().to_string();
    assert_eq!(
        created.order.provider_trade_no.as_deref(),
        Some(id.as_str())
    );
    assert!(matches!(&created.action, PayAction::Redirect(u) if u.contains(&id)));
    let q = QueryRequest {
        order: created.order.clone(),
    };
    assert_eq!(h.query(&q).unwrap().state, TradeState::Pending);
    sim.set_state("LOOP-1", "AUTHORIZED").unwrap();
    assert_eq!(
        h.query(&q).unwrap().state,
        TradeState::Pending,
        "authorized is not paid"
    );
    sim.set_state("LOOP-1", "COMPLETED").unwrap();
    assert_eq!(
        h.query(&q).unwrap().state,
        TradeState::Pending,
        "completed may still be declined"
    );
    sim.set_state("LOOP-1", "FULFILL").unwrap();
    let paid = h.query(&q).unwrap();
    assert_eq!(
        (paid.state, paid.amount.as_ref().map(|m| m.minor)),
        (TradeState::Paid, Some(2499))
    );
    let refund = RefundRequest {
        order: created.order.clone(),
        refund_no: "LOOP-R1".into(),
        amount: Money {
            minor: 999,
            currency: "EUR".into(),
        },
        order_amount: order.amount.clone(),
        reason: None,
    };
    let r = h.refund(&refund).unwrap();
    assert_eq!(r.state, RefundState::Pending);
    assert_eq!(
        h.refund(&refund).unwrap().provider_refund_id,
        r.provider_refund_id,
        "idempotent"
    );
    sim.settle_refund("LOOP-R1", "SUCCESSFUL").unwrap();
    let by_search = RefundQueryRequest {
        order: created.order.clone(),
        refund_no: "LOOP-R1".into(),
        provider_refund_id: None,
    };
    let s = h.refund_query(&by_search).unwrap();
    assert_eq!(
        (s.state, s.amount.map(|m| m.minor)),
        (RefundState::Succeeded, Some(999))
    );
    let by_id = RefundQueryRequest {
        provider_refund_id: r.provider_refund_id.clone(),
        ..by_search
    };
    assert_eq!(
        h.refund_query(&by_id).unwrap().state,
        RefundState::Succeeded
    );
    assert_eq!(sim.count("POST refund/search"), 1);
    assert_eq!(sim.count("GET refund/read"), 1);
}
