//! The published API v3 vectors (providers.md §3.10) and every operation
//! against scripted WeChat Pay answers. The test side signs, verifies and
//! encrypts with `payhost_sdk::native` and `aes-gcm` directly, not with the
//! adapter's `sign` module, so the two check each other.

use super::*;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use payhost_sdk::native::{self, SecretTable};
use payhost_sdk::testing::{Harness, fuzz_same_meaning, fuzz_signed_notify, with_body};
use std::cell::RefCell;
use std::rc::Rc;

/// The official Go SDK's test key (PKCS#8) and its public half.
const KEY_PEM: &str = include_str!("../../../tests/fixtures/wechatpay-v3/sdk-test.key.pem");
const PUBLIC_PEM: &str = include_str!("../../../tests/fixtures/wechatpay-v3/sdk-test.pub.pem");
/// A self-signed "platform certificate" of the same key, serial D7CE59D1F522D701.
const PLATFORM_CERT: &str =
    include_str!("../../../tests/fixtures/wechatpay-v3/platform-D7CE59D1F522D701.cert.pem");
const NOTIFY_BODY: &str =
    include_str!("../../../tests/fixtures/wechatpay-v3/notification.body.json");
const NOTIFY_HEADERS: &str =
    include_str!("../../../tests/fixtures/wechatpay-v3/notification.headers.json");

const MCHID: &str = "1900000001";
const APPID: &str = "wx8888888888888888";
const SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0119000000012025010100000000000001";
/// The Java SDK's 32-byte APIv3 test key.
const API_V3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
const NOW: i64 = 1_700_000_000;

fn native_sign(message: &[u8]) -> String {
    let mut t = SecretTable::new();
    let k = t.insert(KEY_PEM.as_bytes().to_vec());
    encoding::base64_encode(&t.rsa_sha256_sign(k, message).unwrap())
}

fn native_verify(message: &[u8], signature_b64: &str) -> bool {
    let sig = encoding::base64_decode(signature_b64).unwrap();
    native::rsa_sha256_verify(PUBLIC_PEM, message, &sig).unwrap()
}

// ------------------------------------------------------------ §3.10 vectors

#[test]
fn sha256_with_rsa_of_the_go_sdk_vector() {
    assert_eq!(
        native_sign(b"source"),
        "BKyAfU4iMCuvXMXS0Wzam3V/cnxZ+JaqigPM5OhljS2iOT95OO6Fsuml2JkFANJU9K6q9bLlDhPXuoVz+pp4hAm6pHU4ld815U4jsKu1RkyaII+1CYBUYC8TK0XtJ8FwUXXz8vZHh58rrAVN1XwNyvD1vfpxrMT4SL536GLwvpUHlCqIMzoZUguLli/K8V29QiOhuH6IEqLNJn8e9b3nwNcQ7be3CzYGpDAKBfDGPCqCv8Rw5zndhlffk2FEA70G4hvMwe51qMN/RAJbknXG23bSlObuTCN7Ndj1aJGH6/L+hdwfLpUtJm4QYVazzW7DFD27EpSQEqA8bX9+8m1rLg=="
    );
}

#[test]
fn authorization_message_and_header_of_the_go_sdk_vector() {
    let message =
        sign::request_message("GET", "/v3/certificates", 1624523846, "A1B2C3D4E5F6G7", b"");
    assert_eq!(
        message,
        b"GET\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\n\n"
    );
    let signature = native_sign(&message);
    // Derived from the published key and message (not published by WeChat).
    assert_eq!(
        signature,
        "mG2drrUCDR7EVrJmQVI6eW5VlDB0zzpcYLC83UiNxe1aNAomazwWci4q/HPA7MmlbGAswwSE7iPiLy3vflXohf42WXNA031htDbpBCVt1ti2teKFPh531KK07unc+CrCiepz6veTgsylXYO4iBI+DYQ4UDj+r8A/lhqj7yHmtLjvcJ45Og6Wdecd/T7jGgMwcEe1mR7HLzC7R6snnLOaRwnPCe6WyiWGDHHuQzvNFeaztpM3noedCPEwGculoy2MPVvNER6TpM8CUijpKChWM7Q5vIwg8QYv9bH7IuZitLMAgx0+cgaNzFbzZuXxwGB6wIAmv70dWcQx8F2erR/Nzw=="
    );
    assert_eq!(
        sign::authorization(
            "1234567890",
            "0123456789ABC",
            "A1B2C3D4E5F6G7",
            1624523846,
            "SIG"
        ),
        "WECHATPAY2-SHA256-RSA2048 mchid=\"1234567890\",nonce_str=\"A1B2C3D4E5F6G7\",timestamp=\"1624523846\",serial_no=\"0123456789ABC\",signature=\"SIG\""
    );
}

#[test]
fn pay_sign_of_the_official_example() {
    let message = sign::pay_sign_message(
        "wx8888888888888888",
        "1414561699",
        "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        "prepay_id=wx201410272009395522657a690389285100",
    );
    assert_eq!(
        native_sign(&message),
        "UV+EKQ3OdnOkUbbKaVi53s/67T59JbHx9gc9MaWoQEOaiZH+uYMByfW2MWXTZW1gnOXl1CqwzHtx7QUxfatSdSxgBhbNhJx1QaxkP0zSXAgXIoWPAktOlj9n/phfOH95rNl8bHzRDUoNAMQmfQy8SHGooKtEU6/87nWXHhcYarv/nmtgAJcwsV+lGJQ4jLZhGl5BaAvpLW1Xg8yYg1DXNjik2SPK8d+4FRSkW671wIvxXQCYqG3mi3FvxP5XJ3OBVbPk4GRf/8wi2r2eiqXYd5e4mRMIAOGxqape9Cm46kxrjlHF0uM+wSir4Nychn2H5geUh2YvE8vJJMAqmkN2gg=="
    );
}

#[test]
fn a_platform_certificate_gives_its_serial_and_public_key() {
    let keys = sign::platform_keys(PLATFORM_CERT).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].serial, "D7CE59D1F522D701");
    assert_eq!(keys[0].public_key_pem.trim(), PUBLIC_PEM.trim());
    // 2021-04-27 .. 2031-04-25, as the certificate says.
    assert_eq!(keys[0].valid, Some((1619513723, 1934873723)));
    let two = sign::platform_keys(&format!("{PLATFORM_CERT}\n{PLATFORM_CERT}")).unwrap();
    assert_eq!(two.len(), 2);
    assert!(
        sign::platform_keys("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
            .is_err()
    );
}

/// The Go SDK's full notification, checked by `parse_notify` as WeChat Pay
/// sends it. Its APIv3 key is 16 bytes (AES-128), which the host's
/// AES-256-GCM refuses: the signature passes, the key is named as the fault.
#[test]
fn the_go_sdk_notification_verifies_and_its_short_key_is_named() {
    let headers: std::collections::BTreeMap<String, String> =
        serde_json::from_str(NOTIFY_HEADERS).unwrap();
    let inbound = |body: &str, headers: &std::collections::BTreeMap<String, String>| InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/wechat-v3/m1".into(),
        query: String::new(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        body: body.as_bytes().to_vec(),
    };
    let mut h = harness()
        .text("platform_certificates", PLATFORM_CERT)
        .timestamp(1624523846);
    h = h.secret("api_v3_key", "testMchAPIv3Key0");
    let err = h.parse_notify(&inbound(NOTIFY_BODY, &headers)).unwrap_err();
    assert!(
        matches!(&err.error, AdapterError::InvalidConfig(m) if m.contains("32-byte")),
        "{err:?}"
    );

    // One byte of the body changed: the signature no longer holds.
    let tampered = NOTIFY_BODY.replace("签约成功", "签约失败");
    let err = h.parse_notify(&inbound(&tampered, &headers)).unwrap_err();
    assert!(
        matches!(&err.error, AdapterError::BadSignature(_)),
        "{err:?}"
    );
    assert_eq!(err.ack.as_ref().map(|a| a.status), Some(400));

    // Five minutes later it is stale.
    let mut late = harness()
        .text("platform_certificates", PLATFORM_CERT)
        .secret("api_v3_key", "testMchAPIv3Key0")
        .timestamp(1624523846 + 300);
    let err = late
        .parse_notify(&inbound(NOTIFY_BODY, &headers))
        .unwrap_err();
    assert!(
        matches!(&err.error, AdapterError::BadSignature(m) if m.contains("window")),
        "{err:?}"
    );

    // A serial nobody configured is an error, never a pass.
    let mut other = headers.clone();
    other.insert("Wechatpay-Serial".into(), "0000000000000001".into());
    let err = h.parse_notify(&inbound(NOTIFY_BODY, &other)).unwrap_err();
    assert!(
        matches!(&err.error, AdapterError::BadSignature(m) if m.contains("not a configured key")),
        "{err:?}"
    );
}

// ------------------------------------------------------------ scripted WeChat Pay

/// A harness for a direct merchant, verifying with the public key.
fn harness() -> Harness<WechatV3> {
    Harness::<WechatV3>::new()
        .text("mchid", MCHID)
        .text("appid", APPID)
        .text("merchant_serial_no", SERIAL)
        .secret("private_key", KEY_PEM)
        .secret("api_v3_key", API_V3_KEY)
        .text("wechatpay_public_key_id", PUBLIC_KEY_ID)
        .text("wechatpay_public_key", PUBLIC_PEM)
        .timestamp(NOW)
}

/// An answer as WeChat Pay signs it (§3.6), with the public key's id.
fn signed(status: u16, body: &str, at: i64) -> HttpResponse {
    let nonce = "n0nce";
    let sig = native_sign(&sign::answer_message(
        &at.to_string(),
        nonce,
        body.as_bytes(),
    ));
    HttpResponse {
        status,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("Wechatpay-Timestamp".into(), at.to_string()),
            ("Wechatpay-Nonce".into(), nonce.into()),
            ("Wechatpay-Signature".into(), sig),
            ("Wechatpay-Serial".into(), PUBLIC_KEY_ID.into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

/// What WeChat Pay checks of a request: the Authorization header's
/// signature over the five lines, with the merchant's public key.
fn check_authorization(req: &HttpRequest) {
    let header = http::header(&req.headers, "authorization").expect("authorization header");
    let rest = header
        .strip_prefix("WECHATPAY2-SHA256-RSA2048 ")
        .expect("scheme");
    let attr = |name: &str| {
        rest.split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| panic!("attribute {name} in {header}"))
            .to_string()
    };
    assert_eq!(attr("mchid"), MCHID);
    assert_eq!(attr("serial_no"), SERIAL);
    let url = req
        .url
        .strip_prefix("https://api.mch.weixin.qq.com")
        .or_else(|| req.url.strip_prefix("https://apihk.mch.weixin.qq.com"))
        .expect("WeChat host");
    let method = if req.method == HttpMethod::Get {
        "GET"
    } else {
        "POST"
    };
    let message = sign::request_message(
        method,
        url,
        attr("timestamp").parse().unwrap(),
        &attr("nonce_str"),
        &req.body,
    );
    assert!(
        native_verify(&message, &attr("signature")),
        "request signature"
    );
}

fn body_of(req: &HttpRequest) -> serde_json::Value {
    serde_json::from_slice(&req.body).unwrap()
}

fn order(method: &str) -> OrderRequest {
    OrderRequest {
        merchant_order_no: "ORDER_20231115_0001".into(),
        amount: Money {
            minor: 2499,
            currency: "CNY".into(),
        },
        description: "Tea - 250g".into(),
        method: method.into(),
        payer: Payer {
            app_id: Some(APPID.into()),
            openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
            client_ip: Some("203.0.113.7".into()),
        },
        expires_at: Some(NOW + 1800),
        attach: Some("shop=1".into()),
    }
}

#[test]
fn a_mini_program_order_is_signed_and_answers_rsa_signed_payment_parameters() {
    let mut h = harness().respond(|req| {
        check_authorization(req);
        assert_eq!(
            req.url,
            "https://api.mch.weixin.qq.com/v3/pay/transactions/jsapi"
        );
        let b = body_of(req);
        assert_eq!(b["mchid"], MCHID);
        assert_eq!(b["appid"], APPID);
        assert_eq!(b["amount"]["total"], 2499);
        assert_eq!(b["payer"]["openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
        assert_eq!(b["time_expire"], "2023-11-15T06:43:20+08:00");
        assert_eq!(b["notify_url"], "https://payhost.test/v1/notify/test/m1");
        signed(
            200,
            r#"{"prepay_id":"wx201410272009395522657a690389285100"}"#,
            NOW,
        )
    });
    let created = h.unified_order(&order(MINI_PROGRAM)).unwrap();
    let PayAction::MiniProgram(p) = created.action else {
        panic!("{:?}", created.action)
    };
    assert_eq!(p.app_id, APPID);
    assert_eq!(p.sign_type, "RSA");
    assert_eq!(p.package, "prepay_id=wx201410272009395522657a690389285100");
    let message = sign::pay_sign_message(&p.app_id, &p.time_stamp, &p.nonce_str, &p.package);
    assert!(native_verify(&message, &p.pay_sign));
}

#[test]
fn a_native_order_answers_the_code_url() {
    let mut h = harness().respond(|req| {
        assert!(req.url.ends_with("/v3/pay/transactions/native"));
        assert!(body_of(req).get("payer").is_none());
        signed(
            200,
            r#"{"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}"#,
            NOW,
        )
    });
    let created = h.unified_order(&order(NATIVE)).unwrap();
    assert_eq!(
        created.action,
        PayAction::QrCode("weixin://wxpay/bizpayurl?pr=p4lpSuKzz".into())
    );
}

#[test]
fn an_answer_that_is_unsigned_stale_or_forged_is_refused() {
    for (what, answer) in [
        ("unsigned", {
            let mut r = signed(200, r#"{"prepay_id":"x"}"#, NOW);
            r.headers.retain(|(k, _)| k != "Wechatpay-Signature");
            r
        }),
        ("stale", signed(200, r#"{"prepay_id":"x"}"#, NOW - 301)),
        ("forged", {
            let mut r = signed(200, r#"{"prepay_id":"x"}"#, NOW);
            r.body = br#"{"prepay_id":"y"}"#.to_vec();
            r
        }),
    ] {
        let answer = RefCell::new(Some(answer));
        let mut h = harness().respond(move |_| answer.borrow_mut().take().unwrap());
        let err = h.unified_order(&order(MINI_PROGRAM)).unwrap_err();
        assert!(
            matches!(err, AdapterError::BadSignature(_)),
            "{what}: {err:?}"
        );
    }
}

#[test]
fn error_answers_map_to_rejections_retryable_as_wechat_says() {
    for (status, code, retryable) in [
        (400, "PARAM_ERROR", false),
        (403, "OUT_TRADE_NO_USED", false),
        (500, "SYSTEM_ERROR", true),
        (429, "FREQUENCY_LIMITED", true),
        (403, "RATE_LIMITED", true),
    ] {
        let body = format!(r#"{{"code":"{code}","message":"m"}}"#);
        let mut h = harness().respond(move |_| signed(status, &body, NOW));
        match h.unified_order(&order(MINI_PROGRAM)).unwrap_err() {
            AdapterError::ProviderRejected(r) => {
                assert_eq!(r.code, code);
                assert_eq!(r.retryable, retryable, "{code}");
            }
            other => panic!("{code}: {other:?}"),
        }
    }
}

#[test]
fn partner_mode_uses_the_partner_paths_and_signs_pay_sign_for_the_sub_app() {
    let mut h = harness()
        .text("mode", "partner")
        .text("sub_mchid", "1900000109")
        .text("sub_appid", "wxsub0000000000001")
        .respond(|req| {
            check_authorization(req);
            assert!(req.url.ends_with("/v3/pay/partner/transactions/jsapi"));
            let b = body_of(req);
            assert_eq!(b["sp_mchid"], MCHID);
            assert_eq!(b["sp_appid"], APPID);
            assert_eq!(b["sub_mchid"], "1900000109");
            assert_eq!(b["sub_appid"], "wxsub0000000000001");
            assert_eq!(b["payer"]["sub_openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
            signed(200, r#"{"prepay_id":"wx2"}"#, NOW)
        });
    let mut o = order(MINI_PROGRAM);
    o.payer.app_id = Some("wxsub0000000000001".into());
    let PayAction::MiniProgram(p) = h.unified_order(&o).unwrap().action else {
        panic!()
    };
    assert_eq!(p.app_id, "wxsub0000000000001");
    assert!(native_verify(
        &sign::pay_sign_message(&p.app_id, &p.time_stamp, &p.nonce_str, &p.package),
        &p.pay_sign
    ));

    let mut q = harness()
        .text("mode", "partner")
        .text("sub_mchid", "1900000109")
        .respond(|req| {
            assert_eq!(req.url, "https://api.mch.weixin.qq.com/v3/pay/partner/transactions/out-trade-no/ORDER_20231115_0001?sp_mchid=1900000001&sub_mchid=1900000109");
            signed(200, r#"{"sp_mchid":"1900000001","sub_mchid":"1900000109","out_trade_no":"ORDER_20231115_0001","trade_state":"NOTPAY"}"#, NOW)
        });
    let st = q
        .query(&QueryRequest {
            order: created_ref(),
        })
        .unwrap();
    assert_eq!(st.state, TradeState::Pending);
}

#[test]
fn global_mode_takes_other_currencies_on_the_global_paths() {
    let mut h = harness().text("mode", "global").respond(|req| {
        check_authorization(req);
        assert_eq!(
            req.url,
            "https://apihk.mch.weixin.qq.com/v3/global/transactions/jsapi"
        );
        assert_eq!(body_of(req)["amount"]["currency"], "HKD");
        signed(200, r#"{"prepay_id":"wx3"}"#, NOW)
    });
    let mut o = order(MINI_PROGRAM);
    o.amount.currency = "HKD".into();
    assert!(h.unified_order(&o).is_ok());
    // The domestic API refuses them before any request.
    let mut d = harness();
    assert!(
        matches!(d.unified_order(&o), Err(AdapterError::InvalidRequest(m)) if m.contains("CNY"))
    );
    assert!(d.sent().is_empty());
}

/// WeChat Pay Global in institution mode (§4.2): the institution's ids
/// with `sp_` names, the sub-merchant's, on `/v3/global/...`.
fn institution() -> Harness<WechatV3> {
    harness()
        .text("mode", "global")
        .text("sub_mchid", "1900000109")
        .text("sub_appid", "wxsub0000000000001")
}

#[test]
fn global_institution_mode_names_the_institution_and_sub_merchant_on_every_call() {
    let mut h = institution().respond(|req| {
        check_authorization(req);
        assert_eq!(
            req.url,
            "https://apihk.mch.weixin.qq.com/v3/global/transactions/jsapi"
        );
        let b = body_of(req);
        for (k, v) in [
            ("sp_mchid", MCHID),
            ("sp_appid", APPID),
            ("sub_mchid", "1900000109"),
            ("sub_appid", "wxsub0000000000001"),
            ("trade_type", "JSAPI"),
        ] {
            assert_eq!(b[k], v, "{k}");
        }
        assert!(b.get("mchid").is_none() && b.get("appid").is_none());
        assert_eq!(
            b["amount"],
            serde_json::json!({"total": 2499, "currency": "EUR"})
        );
        assert_eq!(b["payer"]["sub_openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
        signed(200, r#"{"prepay_id":"wx9"}"#, NOW)
    });
    let mut o = order(MINI_PROGRAM);
    o.amount.currency = "EUR".into();
    o.payer.app_id = Some("wxsub0000000000001".into());
    let PayAction::MiniProgram(p) = h.unified_order(&o).unwrap().action else {
        panic!()
    };
    assert_eq!(p.app_id, "wxsub0000000000001");

    let mut h = institution().respond(|req| {
        check_authorization(req);
        assert!(req.url.ends_with("/v3/global/refunds"), "{}", req.url);
        let b = body_of(req);
        for (k, v) in [
            ("sp_mchid", MCHID),
            ("sp_appid", APPID),
            ("sub_mchid", "1900000109"),
        ] {
            assert_eq!(b[k], v, "{k}");
        }
        assert_eq!(b["amount"]["currency"], "EUR");
        signed(200, r#"{"refund_id":"50","out_refund_no":"R1","out_trade_no":"ORDER_20231115_0001","status":"PROCESSING","sp_mchid":"1900000001","sub_mchid":"1900000109","amount":{"refund":1000,"total":2499,"currency":"EUR"}}"#, NOW)
    });
    let mut r = refund_request(1000);
    r.amount.currency = "EUR".into();
    r.order_amount.currency = "EUR".into();
    assert_eq!(h.refund(&r).unwrap().amount.unwrap().currency, "EUR");

    let mut h = institution().respond(|req| {
        assert_eq!(req.url, "https://apihk.mch.weixin.qq.com/v3/global/refunds/out-refund-no/R1?sp_mchid=1900000001&sub_mchid=1900000109");
        // Another sub-merchant's refund is not this merchant's.
        signed(200, r#"{"refund_id":"50","out_refund_no":"R1","status":"SUCCESS","sp_mchid":"1900000001","sub_mchid":"1900000999","amount":{"refund":1000,"currency":"EUR"}}"#, NOW)
    });
    let query = RefundQueryRequest {
        order: created_ref(),
        refund_no: "R1".into(),
        provider_refund_id: None,
    };
    assert!(matches!(
        h.refund_query(&query),
        Err(AdapterError::MalformedResponse(m)) if m.contains("sub-merchant")
    ));
}

fn created_ref() -> OrderRef {
    OrderRef {
        merchant_order_no: "ORDER_20231115_0001".into(),
        provider_trade_no: None,
        channel_transaction_id: None,
    }
}

const PAID: &str = r#"{"mchid":"1900000001","appid":"wx8888888888888888","out_trade_no":"ORDER_20231115_0001","transaction_id":"4200000000000000000000000001","trade_state":"SUCCESS","success_time":"2023-11-15T06:20:00+08:00","amount":{"total":2499,"payer_total":2499,"currency":"CNY","payer_currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}"#;

#[test]
fn query_reads_the_transaction_and_checks_whose_it_is() {
    let mut h = harness().respond(|req| {
        check_authorization(req);
        assert_eq!(req.method, HttpMethod::Get);
        assert!(req.body.is_empty());
        assert_eq!(req.url, "https://api.mch.weixin.qq.com/v3/pay/transactions/out-trade-no/ORDER_20231115_0001?mchid=1900000001");
        signed(200, PAID, NOW)
    });
    let st = h
        .query(&QueryRequest {
            order: created_ref(),
        })
        .unwrap();
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(
        st.amount,
        Some(Money {
            minor: 2499,
            currency: "CNY".into()
        })
    );
    assert_eq!(st.paid_at, Some(1_700_000_400));
    assert_eq!(
        st.order.channel_transaction_id.as_deref(),
        Some("4200000000000000000000000001")
    );

    let other = PAID.replace("1900000001", "1900000002");
    let mut h = harness().respond(move |_| signed(200, &other, NOW));
    assert!(matches!(
        h.query(&QueryRequest {
            order: created_ref()
        }),
        Err(AdapterError::MalformedResponse(_))
    ));
}

#[test]
fn close_answers_204_and_a_paid_order_is_queried_instead() {
    let mut h = harness().respond(|req| {
        check_authorization(req);
        assert!(
            req.url
                .ends_with("/v3/pay/transactions/out-trade-no/ORDER_20231115_0001/close")
        );
        assert_eq!(body_of(req), serde_json::json!({"mchid": MCHID}));
        signed(204, "", NOW)
    });
    assert_eq!(
        h.close(&CloseRequest {
            order: created_ref()
        })
        .unwrap()
        .state,
        TradeState::Closed
    );

    let calls = Rc::new(RefCell::new(0));
    let seen = calls.clone();
    let mut h = harness().respond(move |req| {
        *seen.borrow_mut() += 1;
        if req.url.ends_with("/close") {
            signed(400, r#"{"code":"ORDERPAID","message":"paid"}"#, NOW)
        } else {
            signed(200, PAID, NOW)
        }
    });
    let st = h
        .close(&CloseRequest {
            order: created_ref(),
        })
        .unwrap();
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(*calls.borrow(), 2);
}

fn refund_request(minor: u64) -> RefundRequest {
    RefundRequest {
        order: OrderRef {
            channel_transaction_id: Some("4200000000000000000000000001".into()),
            ..created_ref()
        },
        refund_no: "R1".into(),
        amount: Money {
            minor,
            currency: "CNY".into(),
        },
        order_amount: Money {
            minor: 2499,
            currency: "CNY".into(),
        },
        reason: Some("out of stock".into()),
    }
}

#[test]
fn refund_and_refund_query() {
    let mut h = harness().respond(|req| {
        check_authorization(req);
        assert!(req.url.ends_with("/v3/refund/domestic/refunds"));
        let b = body_of(req);
        assert_eq!(b["transaction_id"], "4200000000000000000000000001");
        assert_eq!(b["amount"], serde_json::json!({"refund": 1000, "total": 2499, "currency": "CNY"}));
        signed(200, r#"{"refund_id":"50000000382019052709732678859","out_refund_no":"R1","transaction_id":"4200000000000000000000000001","out_trade_no":"ORDER_20231115_0001","status":"PROCESSING","amount":{"refund":1000,"total":2499,"currency":"CNY"}}"#, NOW)
    });
    let st = h.refund(&refund_request(1000)).unwrap();
    assert_eq!(st.state, RefundState::Pending);
    assert_eq!(
        st.provider_refund_id.as_deref(),
        Some("50000000382019052709732678859")
    );
    assert_eq!(
        st.amount,
        Some(Money {
            minor: 1000,
            currency: "CNY".into()
        })
    );

    let mut h = harness().respond(|req| {
        assert_eq!(req.url, "https://api.mch.weixin.qq.com/v3/refund/domestic/refunds/R1");
        signed(200, r#"{"refund_id":"5","out_refund_no":"R1","out_trade_no":"ORDER_20231115_0001","status":"SUCCESS","amount":{"refund":1000,"currency":"CNY"}}"#, NOW)
    });
    let query = RefundQueryRequest {
        order: created_ref(),
        refund_no: "R1".into(),
        provider_refund_id: None,
    };
    assert_eq!(
        h.refund_query(&query).unwrap().state,
        RefundState::Succeeded
    );

    let mut h =
        harness().respond(|_| signed(404, r#"{"code":"RESOURCE_NOT_EXISTS","message":"no"}"#, NOW));
    assert_eq!(h.refund_query(&query).unwrap().state, RefundState::Failed);
}

/// A notification as WeChat Pay sends it: `plain` encrypted with the APIv3
/// key, the envelope signed.
fn notification(event_type: &str, plain: &str, at: i64) -> InboundHttp {
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(API_V3_KEY.as_bytes()).unwrap();
    let nonce = b"uluk4a9R25RW";
    let ct = cipher
        .encrypt(
            aes_gcm::Nonce::from_slice(nonce),
            Payload {
                msg: plain.as_bytes(),
                aad: b"transaction",
            },
        )
        .unwrap();
    let body = serde_json::json!({
        "id": "EV-2018022511", "create_time": "2023-11-15T06:20:00+08:00",
        "event_type": event_type, "resource_type": "encrypt-resource", "summary": "s",
        "resource": {
            "algorithm": "AEAD_AES_256_GCM", "ciphertext": encoding::base64_encode(&ct),
            "associated_data": "transaction", "nonce": "uluk4a9R25RW", "original_type": "transaction",
        },
    })
    .to_string();
    signed_notification(&body, at)
}

/// A notification envelope `body` as WeChat Pay signs and posts it.
fn signed_notification(body: &str, at: i64) -> InboundHttp {
    let answer = signed(200, body, at);
    InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/wechat-v3/m1".into(),
        query: String::new(),
        headers: answer.headers,
        body: answer.body,
    }
}

#[test]
fn a_payment_notification_is_verified_decrypted_and_acknowledged() {
    let mut h = harness();
    let out = h
        .parse_notify(&notification("TRANSACTION.SUCCESS", PAID, NOW))
        .unwrap();
    assert_eq!(out.ack.status, 200);
    let [NotifyEvent::Payment(st)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.amount.as_ref().map(|m| m.minor), Some(2499));
    assert_eq!(st.payer_id.as_deref(), Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"));

    // Encrypted with another key: refused, WeChat Pay asked to retry.
    let mut wrong = harness().secret("api_v3_key", "00000000000000000000000000000000");
    let err = wrong
        .parse_notify(&notification("TRANSACTION.SUCCESS", PAID, NOW))
        .unwrap_err();
    assert!(
        matches!(err.error, AdapterError::BadSignature(_)),
        "{err:?}"
    );
    assert_eq!(err.ack.map(|a| a.status), Some(400));

    // Someone else's order, although correctly signed and encrypted.
    let other = PAID.replace("1900000001", "1900000002");
    let err = h
        .parse_notify(&notification("TRANSACTION.SUCCESS", &other, NOW))
        .unwrap_err();
    assert!(
        matches!(err.error, AdapterError::InvalidRequest(_)),
        "{err:?}"
    );
}

#[test]
fn a_refund_notification_settles_the_refund() {
    let plain = r#"{"mchid":"1900000001","out_trade_no":"ORDER_20231115_0001","transaction_id":"4200000000000000000000000001","out_refund_no":"R1","refund_id":"5","refund_status":"SUCCESS","amount":{"total":2499,"refund":1000,"payer_total":2499,"payer_refund":1000}}"#;
    let out = harness()
        .parse_notify(&notification("REFUND.SUCCESS", plain, NOW))
        .unwrap();
    let [NotifyEvent::Refund(r)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(r.state, RefundState::Succeeded);
    assert_eq!(r.refund_no, "R1");
    assert_eq!(r.order.merchant_order_no, "ORDER_20231115_0001");
}

#[test]
fn a_configuration_without_any_wechat_pay_key_is_refused() {
    let mut h = Harness::<WechatV3>::new()
        .text("mchid", MCHID)
        .text("appid", APPID)
        .text("merchant_serial_no", SERIAL)
        .secret("private_key", KEY_PEM)
        .secret("api_v3_key", API_V3_KEY);
    assert!(
        matches!(h.unified_order(&order(MINI_PROGRAM)), Err(AdapterError::InvalidConfig(m)) if m.contains("platform_certificates"))
    );
    let mut bad = harness().text("wechatpay_public_key_id", "D7CE59D1F522D701");
    assert!(
        matches!(bad.unified_order(&order(MINI_PROGRAM)), Err(AdapterError::InvalidConfig(m)) if m.contains("PUB_KEY_ID_"))
    );
}

// ---------------------------------------------------------------- fuzzing

#[test]
fn fuzz_parse_notify_never_panics_nor_trusts_a_changed_notification() {
    let plain = serde_json::json!({
        "mchid": MCHID, "appid": APPID,
        "out_trade_no": "ORDER-1", "transaction_id": "4200000001",
        "trade_state": "SUCCESS", "amount": { "total": 100, "currency": "CNY" },
    })
    .to_string();
    let sample = notification("TRANSACTION.SUCCESS", &plain, NOW);
    // The signature covers the body byte for byte: only the sample itself
    // may be taken.
    fuzz_signed_notify("wechat-v3 parse_notify", &sample, 0x00f0_3303, 400, |req| {
        harness().parse_notify(req)
    });
}

/// A harness answering every request with `sample`'s status and headers
/// (its signature among them) around `body`.
fn answering(sample: &HttpResponse, body: &[u8]) -> Harness<WechatV3> {
    let answer = with_body(sample, body);
    harness().respond(move |_| answer.clone())
}

/// 100 cases each by default: every case signs a request with RSA, slow
/// in a debug build.
#[test]
fn fuzz_signed_answers_are_taken_only_as_signed() {
    let created = signed(
        200,
        r#"{"prepay_id":"wx201410272009395522657a690389285100"}"#,
        NOW,
    );
    fuzz_same_meaning(
        "wechat-v3 unified_order",
        &created.body,
        0x00f0_3304,
        100,
        |b| {
            answering(&created, b)
                .unified_order(&order(MINI_PROGRAM))
                .ok()
        },
    );
    let paid = signed(200, PAID, NOW);
    let query = QueryRequest {
        order: created_ref(),
    };
    fuzz_same_meaning("wechat-v3 query", &paid.body, 0x00f0_3305, 100, |b| {
        answering(&paid, b).query(&query).ok()
    });
    let refunding = signed(
        200,
        r#"{"refund_id":"50000000382019052709732678859","out_refund_no":"R1","transaction_id":"4200000000000000000000000001","out_trade_no":"ORDER_20231115_0001","status":"PROCESSING","amount":{"refund":1000,"total":2499,"currency":"CNY"}}"#,
        NOW,
    );
    fuzz_same_meaning("wechat-v3 refund", &refunding.body, 0x00f0_3306, 100, |b| {
        answering(&refunding, b).refund(&refund_request(1000)).ok()
    });
    let refunded = signed(
        200,
        r#"{"refund_id":"5","out_refund_no":"R1","out_trade_no":"ORDER_20231115_0001","status":"SUCCESS","amount":{"refund":1000,"currency":"CNY"}}"#,
        NOW,
    );
    let refund_query = RefundQueryRequest {
        order: created_ref(),
        refund_no: "R1".into(),
        provider_refund_id: None,
    };
    fuzz_same_meaning(
        "wechat-v3 refund_query",
        &refunded.body,
        0x00f0_3307,
        100,
        |b| answering(&refunded, b).refund_query(&refund_query).ok(),
    );
    // A close answers 204 with no body; what a body says cannot change it.
    let closed = signed(204, "", NOW);
    let close = CloseRequest {
        order: created_ref(),
    };
    fuzz_same_meaning("wechat-v3 close", &closed.body, 0x00f0_3308, 100, |b| {
        answering(&closed, b).close(&close).ok()
    });
}

mod papay;
mod payouts;
