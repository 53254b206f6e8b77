//! The wechat-v3 component in the sandbox: WeChat Pay's signature checked
//! through the host's RSA operation, the platform certificate parsed inside
//! the component, the notification decrypted by the host's AES-256-GCM; the
//! merchant's keys never enter the component.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use payhost::contract::{
    AdapterError, CallContext, HttpMethod, InboundHttp, NotifyEvent, TradeState,
};
use payhost::{CallError, MerchantConfig, Operation, Output, Runtime};
use payhost_e2e::{component, test_config, workspace};
use payhost_sdk::native::SecretTable;
use std::collections::BTreeMap;

const API_V3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(workspace().join("tests/fixtures/wechatpay-v3").join(name)).unwrap()
}

fn merchant(api_v3_key: &str) -> MerchantConfig {
    MerchantConfig::new("shop-v3")
        .text("mchid", "1234567890")
        .text("appid", "wx8888888888888888")
        .text(
            "merchant_serial_no",
            "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        )
        .secret("private_key", fixture("sdk-test.key.pem"))
        .secret("api_v3_key", api_v3_key)
        .text(
            "platform_certificates",
            fixture("platform-D7CE59D1F522D701.cert.pem"),
        )
}

fn ctx(timestamp: i64) -> CallContext {
    CallContext {
        request_id: "req-v3".into(),
        timestamp,
        seed: 7,
        notify_url: "https://payhost.test/v1/notify/wechat-v3/shop-v3".into(),
    }
}

fn inbound(headers: Vec<(String, String)>, body: Vec<u8>) -> Operation {
    Operation::ParseNotify(InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/wechat-v3/shop-v3".into(),
        query: String::new(),
        headers,
        body,
    })
}

#[tokio::test]
async fn the_published_notification_verifies_in_the_sandbox_and_its_short_key_is_named() {
    let rt = Runtime::new(test_config()).unwrap();
    let a = rt.load(&component("wechat-v3")).unwrap();
    assert_eq!(a.info.name, "wechat-v3");
    assert!(a.info.capabilities.close && a.info.capabilities.refund_query);
    let headers: BTreeMap<String, String> =
        serde_json::from_str(&fixture("notification.headers.json")).unwrap();
    let headers: Vec<_> = headers.into_iter().collect();
    let body = fixture("notification.body.json").into_bytes();
    // The Go SDK's APIv3 key is 16 bytes: the signature passes, the key is refused.
    let err = rt
        .call(
            &a,
            &merchant("testMchAPIv3Key0"),
            ctx(1624523846),
            inbound(headers.clone(), body.clone()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Adapter { error: AdapterError::InvalidConfig(m), .. } if m.contains("32-byte")),
        "{err:?}"
    );
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let err = rt
        .call(
            &a,
            &merchant("testMchAPIv3Key0"),
            ctx(1624523846),
            inbound(headers, tampered),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            CallError::Adapter {
                error: AdapterError::BadSignature(_),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_signed_encrypted_payment_notification_is_applied_in_the_sandbox() {
    let rt = Runtime::new(test_config()).unwrap();
    let a = rt.load(&component("wechat-v3")).unwrap();
    let plain = r#"{"mchid":"1234567890","out_trade_no":"V3-0001","transaction_id":"4200000000000000000000000009","trade_state":"SUCCESS","success_time":"2021-06-24T16:37:00+08:00","amount":{"total":100,"currency":"CNY"},"payer":{"openid":"o1"}}"#;
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(API_V3_KEY.as_bytes()).unwrap();
    let ct = cipher
        .encrypt(
            aes_gcm::Nonce::from_slice(b"0123456789ab"),
            Payload {
                msg: plain.as_bytes(),
                aad: b"transaction",
            },
        )
        .unwrap();
    let body = serde_json::json!({
        "id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource_type": "encrypt-resource",
        "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": payhost_sdk::encoding::base64_encode(&ct),
                     "associated_data": "transaction", "nonce": "0123456789ab"},
    })
    .to_string();
    // Signed by the "platform" (the same test key as its certificate).
    let mut keys = SecretTable::new();
    let k = keys.insert(fixture("sdk-test.key.pem").into_bytes());
    let message = format!("1624523846\nnonce-1\n{body}\n");
    let sig =
        payhost_sdk::encoding::base64_encode(&keys.rsa_sha256_sign(k, message.as_bytes()).unwrap());
    let headers = vec![
        ("Wechatpay-Timestamp".to_string(), "1624523846".to_string()),
        ("Wechatpay-Nonce".into(), "nonce-1".into()),
        ("Wechatpay-Signature".into(), sig),
        ("Wechatpay-Serial".into(), "D7CE59D1F522D701".into()),
    ];
    let out = rt
        .call(
            &a,
            &merchant(API_V3_KEY),
            ctx(1624523846 + 10),
            inbound(headers, body.into_bytes()),
        )
        .await
        .unwrap();
    let Output::Notify(n) = out else {
        panic!("{out:?}")
    };
    assert_eq!(n.ack.status, 200);
    let [NotifyEvent::Payment(st)] = n.events.as_slice() else {
        panic!("{:?}", n.events)
    };
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.order.merchant_order_no, "V3-0001");
    assert_eq!(st.amount.as_ref().map(|m| m.minor), Some(100));
}
