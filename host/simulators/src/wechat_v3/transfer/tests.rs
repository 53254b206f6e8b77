//! The merchant transfer over real HTTP, requests signed test-side with
//! the official SDK's published test key (the simulator's platform key
//! too, so test-side encryption of `user_name` uses its public half).

use super::super::tests::{call_with, config, fixture};
use super::*;
use crate::wechat_v3::NotifyForgery;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use payhost_sdk::native;

const SERIAL: &str = "PUB_KEY_ID_0112345678902025010100000000000001";

fn bill(no: &str, amount: u64) -> Value {
    json!({
        "appid": "wx8888888888888888", "out_bill_no": no, "transfer_scene_id": "1000",
        "openid": "o-payee", "transfer_amount": amount, "transfer_remark": "新会员开通有礼",
        "notify_url": "https://payhost.test/v1/notify/wechat-v3/m",
        "transfer_scene_report_infos": [
            {"info_type": "活动名称", "info_content": "新会员有礼"},
            {"info_type": "奖励说明", "info_content": "注册会员抽奖一等奖"},
        ],
    })
}

async fn create(sim: &Simulator, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
    call_with(sim, "POST", PATH, Some(body), headers).await
}

async fn query(sim: &Simulator, no: &str) -> (u16, Value) {
    call_with(sim, "GET", &format!("{PATH}/out-bill-no/{no}"), None, &[]).await
}

#[tokio::test]
async fn a_bill_waits_for_the_payee_and_the_same_number_is_the_same_bill() {
    let sim = Simulator::start(config(None)).await;
    let (status, a) = create(&sim, bill("PB1", 200), &[]).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["state"], "WAIT_USER_CONFIRM");
    assert!(a["package_info"].as_str().is_some_and(|p| !p.is_empty()));
    let (_, q) = query(&sim, "PB1").await;
    assert_eq!(q["state"], "WAIT_USER_CONFIRM");
    assert_eq!(
        (q["mch_id"].as_str(), q["transfer_amount"].as_u64()),
        (Some("1900000001"), Some(200))
    );

    sim.confirm_transfer("PB1").unwrap();
    assert_eq!(query(&sim, "PB1").await.1["state"], "SUCCESS");
    assert!(sim.confirm_transfer("PB1").is_err(), "confirmed once");
    // Retried with the same number: the same bill, paid once.
    let (_, again) = create(&sim, bill("PB1", 200), &[]).await;
    assert_eq!(again["transfer_bill_no"], a["transfer_bill_no"]);
    assert_eq!(again["state"], "SUCCESS");
    let (status, other) = create(&sim, bill("PB1", 300), &[]).await;
    assert_eq!(
        (status, other["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );

    // A second bill fails, as a 24-hour expiry does.
    assert_eq!(create(&sim, bill("PB2", 100), &[]).await.0, 200);
    sim.fail_transfer("PB2", "PAYEE_ACCOUNT_ABNORMAL").unwrap();
    let (_, q) = query(&sim, "PB2").await;
    assert_eq!(
        (q["state"].as_str(), q["fail_reason"].as_str()),
        (Some("FAIL"), Some("PAYEE_ACCOUNT_ABNORMAL"))
    );
    assert_eq!(query(&sim, "NONE").await.0, 404);
    assert_eq!(sim.count("POST transfer-bills"), 4);
}

#[tokio::test]
async fn the_limits_wechat_enforces_hold_at_their_edges() {
    let sim = Simulator::start(config(None)).await;
    let code = |r: (u16, Value)| (r.0, r.1["code"].as_str().unwrap_or_default().to_string());
    let param = (400, "PARAM_ERROR".to_string());
    // 0.1 CNY is the least.
    assert_eq!(
        code(create(&sim, bill("L1", MIN_FEN - 1), &[]).await),
        param
    );
    assert_eq!(create(&sim, bill("L2", MIN_FEN), &[]).await.0, 200);
    // From 2,000 CNY the payee's name is required.
    assert_eq!(
        create(&sim, bill("L3", NAME_REQUIRED_FROM_FEN - 1), &[])
            .await
            .0,
        200
    );
    assert_eq!(
        code(create(&sim, bill("L4", NAME_REQUIRED_FROM_FEN), &[]).await),
        param
    );
    let name = "王小王";
    let cipher =
        native::rsa_oaep_sha1_encrypt(&fixture("sdk-test.pub.pem"), name.as_bytes(), 1).unwrap();
    let mut named = bill("L5", NAME_REQUIRED_FROM_FEN);
    named["user_name"] = encoding::base64_encode(&cipher).into();
    assert_eq!(
        create(&sim, named.clone(), &[("wechatpay-serial", SERIAL)])
            .await
            .0,
        200
    );
    assert_eq!(sim.transfer_user_name("L5").as_deref(), Some(name));
    // The name is decrypted with the key the serial names, or refused.
    named["out_bill_no"] = "L6".into();
    assert_eq!(code(create(&sim, named.clone(), &[]).await), param);
    assert_eq!(
        code(
            create(
                &sim,
                named.clone(),
                &[("wechatpay-serial", "PUB_KEY_ID_OTHER")]
            )
            .await
        ),
        param
    );
    named["user_name"] = encoding::base64_encode(b"not a ciphertext").into();
    assert_eq!(
        code(create(&sim, named, &[("wechatpay-serial", SERIAL)]).await),
        param
    );
    // Fields WeChat checks.
    for (field, value) in [
        ("appid", json!("wx0000000000000000")),
        ("out_bill_no", json!("L-7")),
        ("out_bill_no", json!("L".repeat(33))),
        ("transfer_remark", json!("字".repeat(33))),
        ("transfer_scene_report_infos", json!([])),
        ("transfer_amount", json!(1.5)),
    ] {
        let mut b = bill("L7", 100);
        b[field] = value;
        assert_eq!(code(create(&sim, b, &[]).await), param, "{field}");
    }
    assert_eq!(sim.transfer_state("L7"), None);
}

#[tokio::test]
async fn a_request_not_signed_by_the_merchant_is_refused() {
    let sim = Simulator::start(config(None)).await;
    let resp = reqwest::Client::new()
        .post(format!("{}{PATH}", sim.base_url()))
        .header("content-type", "application/json")
        .body(bill("U1", 100).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(sim.transfer_state("U1"), None);
    // Partner merchants have other paths.
    let partner = Simulator::start(config(Some("1900000109"))).await;
    assert_eq!(create(&partner, bill("U2", 100), &[]).await.0, 404);
}

/// A receiver of notifications: what each POST carried.
async fn receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(HeaderMap, Vec<u8>)>>>,
) {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
        let sink = sink.clone();
        async move {
            sink.lock().unwrap().push((headers, body.to_vec()));
            (StatusCode::OK, "")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, got)
}

#[tokio::test]
async fn the_finished_notification_is_signed_and_encrypted_and_can_be_tampered_with() {
    let sim = Simulator::start(config(None)).await;
    let (url, got) = receiver().await;
    let mut b = bill("N1", 500);
    b["notify_url"] = url.into();
    assert_eq!(create(&sim, b, &[]).await.0, 200);
    sim.confirm_transfer("N1").unwrap();
    assert_eq!(
        sim.notify_transfer("N1", NotifyForgery::None)
            .await
            .unwrap()
            .0,
        200
    );
    sim.notify_transfer("N1", NotifyForgery::Tampered)
        .await
        .unwrap();

    let got = got.lock().unwrap().clone();
    let verifies = |(headers, body): &(HeaderMap, Vec<u8>)| {
        let h = |n: &str| headers[n].to_str().unwrap().to_string();
        let mut message =
            format!("{}\n{}\n", h("wechatpay-timestamp"), h("wechatpay-nonce")).into_bytes();
        message.extend_from_slice(body);
        message.push(b'\n');
        let sig = encoding::base64_decode(&h("wechatpay-signature")).unwrap();
        native::rsa_sha256_verify(&fixture("sdk-test.pub.pem"), &message, &sig).unwrap()
    };
    assert!(verifies(&got[0]) && !verifies(&got[1]));
    let n: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(n["event_type"], "MCHTRANSFER.BILL.FINISHED");
    let r = &n["resource"];
    assert_eq!(r["associated_data"], "mch_payment");
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb").unwrap();
    let plain = cipher
        .decrypt(
            aes_gcm::Nonce::from_slice(r["nonce"].as_str().unwrap().as_bytes()),
            Payload {
                msg: &encoding::base64_decode(r["ciphertext"].as_str().unwrap()).unwrap(),
                aad: b"mch_payment",
            },
        )
        .unwrap();
    let bill: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(
        (bill["out_bill_no"].as_str(), bill["state"].as_str()),
        (Some("N1"), Some("SUCCESS"))
    );
    assert_eq!(bill["transfer_amount"], 500);
}
