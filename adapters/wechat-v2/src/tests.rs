//! Every operation end to end against scripted WeChat answers. The test
//! side signs and verifies with `payhost_sdk::native` directly, not with
//! the adapter's `sign` module, so the two check each other.

use super::*;
use payhost_sdk::native::{self, SecretTable};
use payhost_sdk::testing::{Harness, fuzz_same_meaning, fuzz_signed_notify, with_body};
use std::cell::RefCell;
use std::rc::Rc;

const APPID: &str = "wxd930ea5d5a258f4f";
const MCH_ID: &str = "10000100";
const KEY: &str = "192006250b4c09247ec02edce69f6a2d";
const NOTIFY_URL: &str = "https://payhost.test/v1/notify/test/m1";
/// 2023-11-15 06:13:20 in China: the harness's default timestamp.
const NOW: i64 = 1_700_000_000;

pub(crate) fn mini_program_order() -> OrderRequest {
    OrderRequest {
        merchant_order_no: "ORDER_20231115_0001".into(),
        amount: Money {
            minor: 2499,
            currency: "CNY".into(),
        },
        description: "Tea - 250g".into(),
        method: "wechat_mini_program".into(),
        payer: Payer {
            app_id: Some(APPID.into()),
            openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
            client_ip: Some("203.0.113.7".into()),
        },
        expires_at: Some(NOW + 1800),
        attach: Some("shop=1".into()),
    }
}

/// WeChat's signature, computed test-side with the native primitives.
fn wx_sign(fields: &Fields, sign_type: &str, key: &str) -> String {
    let temp = format!("{}&key={key}", canonical::sorted_pairs(fields, &["sign"]));
    let bytes = match sign_type {
        "MD5" => native::digest(native::DigestAlgorithm::Md5, temp.as_bytes()),
        "HMAC-SHA256" => {
            let mut t = SecretTable::new();
            let h = t.insert(key.as_bytes().to_vec());
            t.hmac(
                native::DigestAlgorithm::Sha256,
                h,
                native::KeyEncoding::Raw,
                &[native::Part::Text(&temp)],
            )
            .unwrap()
        }
        other => panic!("{other}"),
    };
    encoding::hex_upper(&bytes)
}

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A signed, successful WeChat answer carrying `extra`.
fn reply_with(extra: &[(&str, &str)], sign_type: &str, key: &str) -> HttpResponse {
    let mut f = fields(&[
        ("return_code", "SUCCESS"),
        ("return_msg", "OK"),
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("nonce_str", "IITRi8Iabbblz1Jc"),
        ("result_code", "SUCCESS"),
    ]);
    f.extend(fields(extra));
    let sig = wx_sign(&f, sign_type, key);
    f.insert("sign".into(), sig);
    http::response(200, "text/xml", xml::encode("xml", &f))
}

fn reply(extra: &[(&str, &str)]) -> HttpResponse {
    reply_with(extra, "MD5", KEY)
}

/// Decodes a request the adapter sent and checks its signature.
fn sent_fields(req: &HttpRequest) -> Fields {
    assert_eq!(req.method, HttpMethod::Post);
    assert_eq!(http::header(&req.headers, "content-type"), Some("text/xml"));
    let body = String::from_utf8(req.body.clone()).unwrap();
    assert!(!body.contains(KEY), "the API key left the host: {body}");
    let (root, f) = xml::decode(&req.body).unwrap();
    assert_eq!(root, "xml");
    assert_eq!(
        f["sign"],
        wx_sign(&f, &f["sign_type"], KEY),
        "request signature does not verify"
    );
    assert_eq!(f["nonce_str"].len(), 32);
    f
}

fn merchant() -> Harness<WechatV2> {
    Harness::<WechatV2>::new()
        .text("appid", APPID)
        .text("mch_id", MCH_ID)
        .secret("api_key", KEY)
        .with_schema_defaults()
}

/// A harness answering every request with `response`, and the requests it got.
fn scripted(
    h: Harness<WechatV2>,
    response: HttpResponse,
) -> (Harness<WechatV2>, Rc<RefCell<Vec<HttpRequest>>>) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    (
        h.respond(move |req| {
            s.borrow_mut().push(req.clone());
            response.clone()
        }),
        seen,
    )
}

// ---------------------------------------------------------------- describe

#[test]
fn describe_declares_methods_hosts_and_schema() {
    let info = WechatV2::describe();
    assert_eq!(info.name, "wechat-v2");
    assert_eq!(info.contract_version, CONTRACT_VERSION);
    assert_eq!(info.methods, ["wechat_mini_program", "wechat_native"]);
    // What the host refuses without (contract 0.4): the payer's openid for
    // a mini-program payment, the payer's IP for every payment.
    let required: Vec<(&str, &[String])> = info
        .field_rules
        .iter()
        .filter(|r| !r.required_for.is_empty())
        .map(|r| (r.field.as_str(), r.required_for.as_slice()))
        .collect();
    assert_eq!(
        required,
        [
            ("payer.openid", &["wechat_mini_program".to_string()][..]),
            ("payer.client_ip", &["*".to_string()][..]),
        ]
    );
    assert!(info.capabilities.refund_notifications && info.capabilities.partial_refunds);
    assert!(info.capabilities.close && info.capabilities.refund_query);
    assert!(
        info.egress_hosts
            .contains(&"apihk.mch.weixin.qq.com".to_string())
    );
    let field = |n: &str| {
        info.config_schema
            .iter()
            .find(|f| f.name == n)
            .unwrap()
            .clone()
    };
    assert_eq!(field("api_key").kind, FieldKind::Secret);
    assert_eq!(field("client_cert").kind, FieldKind::Secret);
    assert_eq!(field("base_url").kind, FieldKind::Url);
    assert_eq!(
        field("base_url").default.as_deref(),
        Some("https://api.mch.weixin.qq.com")
    );
    assert_eq!(field("sign_type").default.as_deref(), Some("MD5"));
    assert!(
        info.config_schema
            .iter()
            .filter(|f| f.kind == FieldKind::Secret)
            .all(|f| f.default.is_none())
    );
}

// ---------------------------------------------------------------- unified order

#[test]
fn mini_program_order_end_to_end() {
    let (mut h, seen) = scripted(
        merchant(),
        reply(&[
            ("trade_type", "JSAPI"),
            ("prepay_id", "wx201411101639507cbf6ffd8b0779950874"),
        ]),
    );
    let created = h.unified_order(&mini_program_order()).unwrap();

    let sent = seen.borrow();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].url,
        "https://api.mch.weixin.qq.com/pay/unifiedorder"
    );
    assert_eq!(sent[0].client_identity, None);
    let f = sent_fields(&sent[0]);
    for (k, v) in [
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("sign_type", "MD5"),
        ("body", "Tea - 250g"),
        ("attach", "shop=1"),
        ("out_trade_no", "ORDER_20231115_0001"),
        ("fee_type", "CNY"),
        ("total_fee", "2499"),
        ("spbill_create_ip", "203.0.113.7"),
        ("time_expire", "20231115064320"),
        ("notify_url", NOTIFY_URL),
        ("trade_type", "JSAPI"),
        ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
    ] {
        assert_eq!(f.get(k).map(String::as_str), Some(v), "field {k}");
    }
    assert!(!f.contains_key("product_id") && !f.contains_key("sub_openid"));

    assert_eq!(created.order.merchant_order_no, "ORDER_20231115_0001");
    let PayAction::MiniProgram(p) = created.action else {
        panic!("{:?}", created.action)
    };
    assert_eq!(p.app_id, APPID);
    assert_eq!(p.time_stamp, NOW.to_string());
    assert_eq!(p.package, "prepay_id=wx201411101639507cbf6ffd8b0779950874");
    assert_eq!(p.sign_type, "MD5");
    assert_eq!(p.nonce_str.len(), 32);
    assert_ne!(p.nonce_str, f["nonce_str"], "paySign needs its own nonce");
    let pay = fields(&[
        ("appId", &p.app_id),
        ("timeStamp", &p.time_stamp),
        ("nonceStr", &p.nonce_str),
        ("package", &p.package),
        ("signType", &p.sign_type),
    ]);
    assert_eq!(p.pay_sign, wx_sign(&pay, "MD5", KEY));
}

#[test]
fn hmac_sha256_merchant_signs_requests_and_pay_sign_with_hmac() {
    let h = merchant().text("sign_type", "HMAC-SHA256");
    let (mut h, seen) = scripted(h, reply_with(&[("prepay_id", "wx1")], "HMAC-SHA256", KEY));
    let created = h.unified_order(&mini_program_order()).unwrap();
    let f = sent_fields(&seen.borrow()[0]);
    assert_eq!(f["sign_type"], "HMAC-SHA256");
    assert_eq!(f["sign"].len(), 64);
    let PayAction::MiniProgram(p) = created.action else {
        panic!()
    };
    assert_eq!(p.sign_type, "HMAC-SHA256");
    let pay = fields(&[
        ("appId", APPID),
        ("timeStamp", &p.time_stamp),
        ("nonceStr", &p.nonce_str),
        ("package", "prepay_id=wx1"),
        ("signType", "HMAC-SHA256"),
    ]);
    assert_eq!(p.pay_sign, wx_sign(&pay, "HMAC-SHA256", KEY));
}

#[test]
fn native_order_returns_the_code_url_as_qr_code() {
    let (mut h, seen) = scripted(
        merchant(),
        reply(&[
            ("trade_type", "NATIVE"),
            ("prepay_id", "wx2"),
            ("code_url", "weixin://wxpay/bizpayurl?pr=abc123"),
        ]),
    );
    let mut order = mini_program_order();
    order.method = "wechat_native".into();
    order.payer.openid = None;
    order.expires_at = None;
    let created = h.unified_order(&order).unwrap();
    assert_eq!(
        created.action,
        PayAction::QrCode("weixin://wxpay/bizpayurl?pr=abc123".into())
    );
    let f = sent_fields(&seen.borrow()[0]);
    assert_eq!(f["trade_type"], "NATIVE");
    assert_eq!(f["product_id"], "ORDER_20231115_0001");
    assert!(!f.contains_key("openid") && !f.contains_key("time_expire"));
}

#[test]
fn partner_mode_sends_sub_ids_and_signs_pay_sign_for_the_sub_app() {
    let h = merchant()
        .text("sub_appid", "wxsubapp000000001")
        .text("sub_mch_id", "1900000109")
        .text("base_url", "https://apihk.mch.weixin.qq.com/");
    let (mut h, seen) = scripted(
        h,
        reply(&[
            ("sub_appid", "wxsubapp000000001"),
            ("sub_mch_id", "1900000109"),
            ("prepay_id", "wx3"),
        ]),
    );
    let mut order = mini_program_order();
    order.payer.app_id = Some("wxsubapp000000001".into());
    let created = h.unified_order(&order).unwrap();
    let sent = seen.borrow();
    assert_eq!(
        sent[0].url,
        "https://apihk.mch.weixin.qq.com/pay/unifiedorder"
    );
    let f = sent_fields(&sent[0]);
    assert_eq!(f["sub_appid"], "wxsubapp000000001");
    assert_eq!(f["sub_mch_id"], "1900000109");
    assert_eq!(f["sub_openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
    assert!(!f.contains_key("openid"));
    let PayAction::MiniProgram(p) = created.action else {
        panic!()
    };
    assert_eq!(p.app_id, "wxsubapp000000001");
    let pay = fields(&[
        ("appId", "wxsubapp000000001"),
        ("timeStamp", &p.time_stamp),
        ("nonceStr", &p.nonce_str),
        ("package", "prepay_id=wx3"),
        ("signType", "MD5"),
    ]);
    assert_eq!(p.pay_sign, wx_sign(&pay, "MD5", KEY));
}

#[test]
fn response_with_a_bad_signature_is_rejected() {
    for resp in [
        reply_with(
            &[("prepay_id", "wx1")],
            "MD5",
            "ffffffffffffffffffffffffffffffff",
        ),
        // Right key, but a field changed after signing.
        {
            let mut r = reply(&[("prepay_id", "wx1")]);
            r.body = String::from_utf8(r.body)
                .unwrap()
                .replace("wx1", "wx9")
                .into_bytes();
            r
        },
    ] {
        let (mut h, _) = scripted(merchant(), resp);
        let err = h.unified_order(&mini_program_order()).unwrap_err();
        assert!(matches!(err, AdapterError::BadSignature(_)), "{err:?}");
    }
}

#[test]
fn response_for_another_merchant_is_rejected() {
    let mut f = fields(&[
        ("return_code", "SUCCESS"),
        ("appid", APPID),
        ("mch_id", "99999999"),
        ("nonce_str", "n"),
        ("result_code", "SUCCESS"),
        ("prepay_id", "wx1"),
    ]);
    let sig = wx_sign(&f, "MD5", KEY);
    f.insert("sign".into(), sig);
    let (mut h, _) = scripted(
        merchant(),
        http::response(200, "text/xml", xml::encode("xml", &f)),
    );
    let err = h.unified_order(&mini_program_order()).unwrap_err();
    assert!(
        matches!(&err, AdapterError::MalformedResponse(m) if m.contains("mch_id")),
        "{err:?}"
    );
}

#[test]
fn provider_errors_map_to_rejections() {
    let fail = http::response(
        200,
        "text/xml",
        "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[签名错误]]></return_msg></xml>",
    );
    let cases = [
        (fail, "FAIL", false),
        (
            reply(&[
                ("result_code", "FAIL"),
                ("err_code", "SYSTEMERROR"),
                ("err_code_des", "系统错误"),
            ]),
            "SYSTEMERROR",
            true,
        ),
        (
            reply(&[
                ("result_code", "FAIL"),
                ("err_code", "ORDERPAID"),
                ("err_code_des", "该订单已支付"),
            ]),
            "ORDERPAID",
            false,
        ),
        (http::response(503, "text/html", "busy"), "HTTP_503", true),
    ];
    for (resp, code, retry) in cases {
        let (mut h, _) = scripted(merchant(), resp);
        match h.unified_order(&mini_program_order()).unwrap_err() {
            AdapterError::ProviderRejected(r) => {
                assert_eq!((r.code.as_str(), r.retryable), (code, retry), "{r:?}");
                assert!(!r.message.contains(KEY));
            }
            other => panic!("{other:?}"),
        }
    }
    let (mut h, _) = scripted(merchant(), http::response(200, "text/xml", "<html>"));
    assert!(matches!(
        h.unified_order(&mini_program_order()).unwrap_err(),
        AdapterError::MalformedResponse(_)
    ));
}

#[test]
fn invalid_orders_are_refused_naming_the_field_before_anything_is_sent() {
    type Mutation = fn(&mut OrderRequest);
    let cases: &[(Mutation, &str)] = &[
        (|o| o.merchant_order_no = "A1".into(), "merchant_order_no"),
        (
            |o| o.merchant_order_no = "X".repeat(33),
            "merchant_order_no",
        ),
        (
            |o| o.merchant_order_no = "ORDER#000001".into(),
            "merchant_order_no",
        ),
        (|o| o.description = String::new(), "description"),
        (|o| o.description = "茶".repeat(128), "description"),
        (|o| o.attach = Some("a".repeat(128)), "attach"),
        (|o| o.amount.minor = 0, "amount.minor"),
        (|o| o.amount.currency = "cny".into(), "amount.currency"),
        (|o| o.payer.openid = None, "payer.openid"),
        (|o| o.payer.client_ip = None, "payer.client_ip"),
        (
            |o| o.payer.client_ip = Some("localhost".into()),
            "payer.client_ip",
        ),
        (
            |o| o.payer.app_id = Some("wxotherapp".into()),
            "payer.app_id",
        ),
        (|o| o.expires_at = Some(NOW - 1), "expires_at"),
    ];
    for (mutate, field) in cases {
        let mut order = mini_program_order();
        mutate(&mut order);
        let mut h = merchant(); // its responder panics on any request
        match h.unified_order(&order).unwrap_err() {
            AdapterError::InvalidRequest(m) => assert!(m.contains(field), "{field}: {m}"),
            other => panic!("{field}: {other:?}"),
        }
    }
    // 127 Chinese characters are fine: the limit counts characters.
    let mut order = mini_program_order();
    order.description = "茶".repeat(127);
    let (mut h, _) = scripted(merchant(), reply(&[("prepay_id", "wx1")]));
    assert!(h.unified_order(&order).is_ok());

    let mut order = mini_program_order();
    order.method = "alipay".into();
    assert!(matches!(
        merchant().unified_order(&order).unwrap_err(),
        AdapterError::Unsupported(_)
    ));
}

#[test]
fn bad_configuration_is_named() {
    let mut h = merchant().text("sign_type", "SHA1");
    assert!(
        matches!(h.unified_order(&mini_program_order()).unwrap_err(), AdapterError::InvalidConfig(m) if m.contains("sign_type"))
    );
    let mut h = merchant().text("api_key", KEY);
    assert!(
        matches!(h.unified_order(&mini_program_order()).unwrap_err(), AdapterError::InvalidConfig(m) if m.contains("api_key"))
    );
    let mut h = merchant().notify_url("https://payhost.test/notify?m=1");
    assert!(
        matches!(h.unified_order(&mini_program_order()).unwrap_err(), AdapterError::InvalidConfig(m) if m.contains("query string"))
    );
}

// ---------------------------------------------------------------- query

fn query_of(merchant_order_no: &str, tx: Option<&str>) -> QueryRequest {
    QueryRequest {
        order: OrderRef {
            merchant_order_no: merchant_order_no.into(),
            provider_trade_no: None,
            channel_transaction_id: tx.map(String::from),
        },
    }
}

#[test]
fn query_by_out_trade_no_maps_a_paid_order() {
    let (mut h, seen) = scripted(
        merchant(),
        reply(&[
            ("trade_state", "SUCCESS"),
            ("out_trade_no", "ORDER_20231115_0001"),
            ("transaction_id", "4200001234202311150000000001"),
            ("total_fee", "2499"),
            ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
            ("time_end", "20231115061320"),
            ("some_field_added_later", "x"),
        ]),
    );
    let st = h.query(&query_of("ORDER_20231115_0001", None)).unwrap();
    let sent = seen.borrow();
    assert_eq!(sent[0].url, "https://api.mch.weixin.qq.com/pay/orderquery");
    let f = sent_fields(&sent[0]);
    assert_eq!(f["out_trade_no"], "ORDER_20231115_0001");
    assert!(!f.contains_key("transaction_id"));
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.provider_state, "SUCCESS");
    assert_eq!(
        st.amount,
        Some(Money {
            minor: 2499,
            currency: "CNY".into()
        })
    );
    assert_eq!(st.paid_at, Some(NOW));
    assert_eq!(st.payer_id.as_deref(), Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"));
    assert_eq!(
        st.order.channel_transaction_id.as_deref(),
        Some("4200001234202311150000000001")
    );
}

#[test]
fn query_prefers_the_transaction_id_and_reads_other_states() {
    let (mut h, seen) = scripted(
        merchant(),
        reply(&[
            ("trade_state", "NOTPAY"),
            ("out_trade_no", "ORDER_20231115_0001"),
        ]),
    );
    let st = h
        .query(&query_of("ORDER_20231115_0001", Some("4200001234")))
        .unwrap();
    let f = sent_fields(&seen.borrow()[0]);
    assert_eq!(f["transaction_id"], "4200001234");
    assert!(!f.contains_key("out_trade_no"));
    assert_eq!(
        (st.state, st.amount, st.paid_at),
        (TradeState::Pending, None, None)
    );

    for (word, state) in [
        ("REFUND", TradeState::Refunded),
        ("USERPAYING", TradeState::Pending),
        ("ACCEPT", TradeState::Pending),
        ("CLOSED", TradeState::Closed),
        ("REVOKED", TradeState::Closed),
        ("PAYERROR", TradeState::Failed),
    ] {
        let (mut h, _) = scripted(
            merchant(),
            reply(&[
                ("trade_state", word),
                ("total_fee", "100"),
                ("fee_type", "USD"),
            ]),
        );
        let st = h.query(&query_of("ORDER_20231115_0001", None)).unwrap();
        assert_eq!((st.state, st.provider_state.as_str()), (state, word));
        assert_eq!(
            st.amount,
            Some(Money {
                minor: 100,
                currency: "USD".into()
            })
        );
    }
    let (mut h, _) = scripted(merchant(), reply(&[("trade_state", "WHATEVER")]));
    assert!(
        matches!(h.query(&query_of("ORDER_20231115_0001", None)).unwrap_err(), AdapterError::MalformedResponse(m) if m.contains("WHATEVER"))
    );
    let (mut h, _) = scripted(
        merchant(),
        reply(&[
            ("trade_state", "SUCCESS"),
            ("out_trade_no", "SOMEONE_ELSES"),
        ]),
    );
    assert!(matches!(
        h.query(&query_of("ORDER_20231115_0001", None)).unwrap_err(),
        AdapterError::MalformedResponse(_)
    ));
}

// ---------------------------------------------------------------- refund

fn refund_of(amount: u64) -> RefundRequest {
    RefundRequest {
        order: OrderRef {
            merchant_order_no: "ORDER_20231115_0001".into(),
            provider_trade_no: None,
            channel_transaction_id: Some("4200001234".into()),
        },
        refund_no: "REFUND_0001".into(),
        amount: Money {
            minor: amount,
            currency: "CNY".into(),
        },
        order_amount: Money {
            minor: 2499,
            currency: "CNY".into(),
        },
        reason: Some("damaged".into()),
    }
}

/// WeChat's answer accepting `refund_of(1000)`.
const REFUND_ACCEPTED: [(&str, &str); 5] = [
    ("transaction_id", "4200001234"),
    ("out_trade_no", "ORDER_20231115_0001"),
    ("out_refund_no", "REFUND_0001"),
    ("refund_id", "50000000382019052709732678859"),
    ("refund_fee", "1000"),
];

#[test]
fn refund_is_sent_with_the_client_certificate_and_is_pending() {
    let h = merchant().secret("client_cert", "-----BEGIN CERTIFICATE-----\n...");
    let cert = h.secret_handle("client_cert");
    let (mut h, seen) = scripted(h, reply(&REFUND_ACCEPTED));
    let st = h.refund(&refund_of(1000)).unwrap();
    let sent = seen.borrow();
    assert_eq!(
        sent[0].url,
        "https://api.mch.weixin.qq.com/secapi/pay/refund"
    );
    assert!(cert.is_some());
    assert_eq!(sent[0].client_identity, cert);
    let f = sent_fields(&sent[0]);
    for (k, v) in [
        ("transaction_id", "4200001234"),
        ("out_refund_no", "REFUND_0001"),
        ("total_fee", "2499"),
        ("refund_fee", "1000"),
        ("refund_fee_type", "CNY"),
        ("refund_desc", "damaged"),
        ("notify_url", NOTIFY_URL),
    ] {
        assert_eq!(f.get(k).map(String::as_str), Some(v), "field {k}");
    }
    assert!(!f.contains_key("out_trade_no"));
    assert_eq!(st.state, RefundState::Pending);
    assert_eq!(
        st.provider_refund_id.as_deref(),
        Some("50000000382019052709732678859")
    );
    assert_eq!(st.refund_no, "REFUND_0001");
    assert_eq!(
        st.amount,
        Some(Money {
            minor: 1000,
            currency: "CNY".into()
        })
    );
}

fn with_cert() -> Harness<WechatV2> {
    merchant().secret("client_cert", "-----BEGIN CERTIFICATE-----\n...")
}

#[test]
fn refund_without_client_cert_over_https_is_a_configuration_error_and_sends_nothing() {
    let (mut h, seen) = scripted(merchant(), reply(&[("refund_id", "5000")]));
    match h.refund(&refund_of(1000)).unwrap_err() {
        AdapterError::InvalidConfig(m) => assert!(m.contains("`client_cert`"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(seen.borrow().is_empty());
    // Plain HTTP (a local simulator): no TLS, so none is needed or sent.
    let (mut h, seen) = scripted(
        merchant().text("base_url", "http://127.0.0.1:9100"),
        reply(&[("refund_id", "5000")]),
    );
    h.refund(&refund_of(1000)).unwrap();
    assert_eq!(seen.borrow()[0].client_identity, None);
}

#[test]
fn refund_by_out_trade_no_and_invalid_refunds() {
    let (mut h, seen) = scripted(with_cert(), reply(&[("refund_id", "5000")]));
    let mut r = refund_of(2499);
    r.order.channel_transaction_id = None;
    h.refund(&r).unwrap();
    let f = sent_fields(&seen.borrow()[0]);
    assert_eq!(f["out_trade_no"], "ORDER_20231115_0001");

    type Mutation = fn(&mut RefundRequest);
    let cases: &[(Mutation, &str)] = &[
        (|r| r.amount.minor = 2500, "amount.minor"),
        (|r| r.amount.minor = 0, "amount.minor"),
        (|r| r.amount.currency = "USD".into(), "currency"),
        (|r| r.refund_no = "R 1".into(), "refund_no"),
        (|r| r.refund_no = "R".repeat(65), "refund_no"),
    ];
    for (mutate, field) in cases {
        let mut r = refund_of(100);
        mutate(&mut r);
        match merchant().refund(&r).unwrap_err() {
            AdapterError::InvalidRequest(m) => assert!(m.contains(field), "{field}: {m}"),
            other => panic!("{field}: {other:?}"),
        }
    }
    let (mut h, _) = scripted(
        with_cert(),
        reply(&[
            ("result_code", "FAIL"),
            ("err_code", "BIZERR_NEED_RETRY"),
            ("err_code_des", "退款业务流程错误"),
        ]),
    );
    assert!(
        matches!(h.refund(&refund_of(100)).unwrap_err(), AdapterError::ProviderRejected(r) if r.retryable)
    );
}

// ---------------------------------------------------------------- notifications

fn inbound(body: impl Into<Vec<u8>>) -> InboundHttp {
    InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/wechat-v2/m1".into(),
        query: String::new(),
        headers: vec![("content-type".into(), "text/xml".into())],
        body: body.into(),
    }
}

fn payment_notification(sign_type: Option<&str>, key: &str, mch_id: &str) -> Vec<u8> {
    let mut f = fields(&[
        ("return_code", "SUCCESS"),
        ("appid", APPID),
        ("mch_id", mch_id),
        ("nonce_str", "5d2b6c2a8db53831f7eda20af46e531c"),
        ("result_code", "SUCCESS"),
        ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
        ("is_subscribe", "N"),
        ("trade_type", "JSAPI"),
        ("bank_type", "CMC"),
        ("total_fee", "2499"),
        ("fee_type", "CNY"),
        ("cash_fee", "2499"),
        ("transaction_id", "4200001234202311150000000001"),
        ("out_trade_no", "ORDER_20231115_0001"),
        ("attach", "shop=1"),
        ("time_end", "20231115061320"),
    ]);
    if let Some(t) = sign_type {
        f.insert("sign_type".into(), t.into());
    }
    let sig = wx_sign(&f, sign_type.unwrap_or("MD5"), key);
    f.insert("sign".into(), sig);
    xml::encode("xml", &f).into_bytes()
}

fn assert_fail_ack(failure: &NotifyFailure) {
    let ack = failure.ack.as_ref().expect("WeChat needs an answer");
    assert_eq!(ack.status, 200);
    let body = String::from_utf8(ack.body.clone()).unwrap();
    assert!(
        body.starts_with("<xml><return_code><![CDATA[FAIL]]></return_code>"),
        "{body}"
    );
}

#[test]
fn payment_notification_becomes_a_paid_event_and_is_acked() {
    let out = merchant()
        .parse_notify(&inbound(payment_notification(None, KEY, MCH_ID)))
        .unwrap();
    assert_eq!(out.ack.status, 200);
    assert_eq!(
        http::header(&out.ack.headers, "content-type"),
        Some("text/xml")
    );
    assert_eq!(out.ack.body, b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>");
    let [NotifyEvent::Payment(st)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.order.merchant_order_no, "ORDER_20231115_0001");
    assert_eq!(
        st.order.channel_transaction_id.as_deref(),
        Some("4200001234202311150000000001")
    );
    assert_eq!(
        st.amount,
        Some(Money {
            minor: 2499,
            currency: "CNY".into()
        })
    );
    assert_eq!(st.paid_at, Some(NOW));
    assert_eq!(st.payer_id.as_deref(), Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"));

    // The notification's own sign_type wins over the configured one.
    let out = merchant()
        .parse_notify(&inbound(payment_notification(
            Some("HMAC-SHA256"),
            KEY,
            MCH_ID,
        )))
        .unwrap();
    assert_eq!(out.events.len(), 1);
}

#[test]
fn notification_with_a_bad_signature_is_refused_with_a_fail_ack() {
    for body in [
        payment_notification(None, "ffffffffffffffffffffffffffffffff", MCH_ID),
        payment_notification(Some("MD5"), KEY, MCH_ID).pipe_replace("2499", "1"),
        payment_notification(Some("MD5"), KEY, MCH_ID)
            .pipe_replace("<sign_type>MD5<", "<sign_type>RSA<"),
    ] {
        let failure = merchant().parse_notify(&inbound(body)).unwrap_err();
        assert!(
            matches!(failure.error, AdapterError::BadSignature(_)),
            "{:?}",
            failure.error
        );
        assert_fail_ack(&failure);
    }
}

#[test]
fn notification_for_another_merchant_or_malformed_is_refused_with_a_fail_ack() {
    let cases = [
        inbound(payment_notification(None, KEY, "99999999")),
        inbound("<xml><return_code>SUCCESS"),
        inbound("not xml at all"),
        InboundHttp {
            method: HttpMethod::Get,
            ..inbound(payment_notification(None, KEY, MCH_ID))
        },
    ];
    for req in cases {
        let failure = merchant().parse_notify(&req).unwrap_err();
        assert!(
            matches!(failure.error, AdapterError::InvalidRequest(_)),
            "{:?}",
            failure.error
        );
        assert_fail_ack(&failure);
    }
}

fn refund_notification(status: &str, key: &str) -> Vec<u8> {
    let inner = xml::encode(
        "root",
        &fields(&[
            ("out_refund_no", "REFUND_0001"),
            ("out_trade_no", "ORDER_20231115_0001"),
            ("refund_account", "REFUND_SOURCE_RECHARGE_FUNDS"),
            ("refund_fee", "1000"),
            ("refund_id", "50000000382019052709732678859"),
            ("refund_recv_accout", "支付用户零钱"),
            ("refund_request_source", "API"),
            ("refund_status", status),
            ("settlement_refund_fee", "1000"),
            ("settlement_total_fee", "2499"),
            ("success_time", "2023-11-15 06:20:00"),
            ("total_fee", "2499"),
            ("transaction_id", "4200001234202311150000000001"),
        ]),
    );
    let aes_key = encoding::hex_lower(&native::digest(
        native::DigestAlgorithm::Md5,
        key.as_bytes(),
    ));
    let req_info = encoding::base64_encode(
        &native::aes_256_ecb_encrypt(aes_key.as_bytes(), inner.as_bytes()).unwrap(),
    );
    xml::encode(
        "xml",
        &fields(&[
            ("return_code", "SUCCESS"),
            ("appid", APPID),
            ("mch_id", MCH_ID),
            ("nonce_str", "TeqClE3i0mvn3DrK"),
            ("req_info", &req_info),
        ]),
    )
    .into_bytes()
}

#[test]
fn refund_notification_is_decrypted_into_a_refund_event() {
    let out = merchant()
        .parse_notify(&inbound(refund_notification("SUCCESS", KEY)))
        .unwrap();
    assert_eq!(out.ack.body, wire::ACK_SUCCESS.as_bytes());
    let [NotifyEvent::Refund(r)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(r.state, RefundState::Succeeded);
    assert_eq!(r.refund_no, "REFUND_0001");
    assert_eq!(
        r.provider_refund_id.as_deref(),
        Some("50000000382019052709732678859")
    );
    assert_eq!(r.order.merchant_order_no, "ORDER_20231115_0001");
    assert_eq!(
        r.order.channel_transaction_id.as_deref(),
        Some("4200001234202311150000000001")
    );

    for (word, state) in [
        ("CHANGE", RefundState::Pending),
        ("REFUNDCLOSE", RefundState::Failed),
    ] {
        let out = merchant()
            .parse_notify(&inbound(refund_notification(word, KEY)))
            .unwrap();
        let [NotifyEvent::Refund(r)] = out.events.as_slice() else {
            panic!()
        };
        assert_eq!((r.state, r.provider_state.as_str()), (state, word));
    }
}

#[test]
fn refund_notification_under_another_key_is_refused() {
    let error = refused_with_fail_ack(
        merchant(),
        refund_notification("SUCCESS", "ffffffffffffffffffffffffffffffff"),
    );
    assert!(matches!(error, AdapterError::BadSignature(_)), "{error:?}");
}

/// The error of a notification `h` refuses, after checking that WeChat is
/// answered with its `FAIL` acknowledgement (so it sends it again).
fn refused_with_fail_ack(mut h: Harness<WechatV2>, body: Vec<u8>) -> AdapterError {
    let failure = h.parse_notify(&inbound(body)).unwrap_err();
    assert_fail_ack(&failure);
    failure.error
}

/// Small helper so a tampered body reads as one expression above.
trait PipeReplace {
    fn pipe_replace(self, from: &str, to: &str) -> Vec<u8>;
}
impl PipeReplace for Vec<u8> {
    fn pipe_replace(self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(self)
            .unwrap()
            .replace(from, to)
            .into_bytes()
    }
}

// ---------------------------------------------------------------- close

fn close_of(merchant_order_no: &str) -> CloseRequest {
    CloseRequest {
        order: query_of(merchant_order_no, None).order,
    }
}

#[test]
fn close_sends_a_signed_closeorder_and_answers_closed() {
    let (mut h, seen) = scripted(merchant(), reply(&[]));
    let st = h.close(&close_of("ORDER_20231115_0001")).unwrap();
    let sent = seen.borrow();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].url, "https://api.mch.weixin.qq.com/pay/closeorder");
    let f = sent_fields(&sent[0]);
    assert_eq!(f["out_trade_no"], "ORDER_20231115_0001");
    assert_eq!((f["appid"].as_str(), f["mch_id"].as_str()), (APPID, MCH_ID));
    assert_eq!(st.state, TradeState::Closed);
    assert_eq!(st.order.merchant_order_no, "ORDER_20231115_0001");
    assert_eq!(st.amount, None);
}

#[test]
fn close_of_an_order_closed_already_is_closed() {
    let (mut h, _) = scripted(
        merchant(),
        reply(&[("result_code", "FAIL"), ("err_code", "ORDERCLOSED")]),
    );
    assert_eq!(
        h.close(&close_of("ORDER_1")).unwrap().state,
        TradeState::Closed
    );
}

/// The payer paid before the close reached WeChat: the adapter queries and
/// answers the paid status with its amount, never "closed".
#[test]
fn close_of_a_paid_order_answers_the_queried_paid_status() {
    let h = merchant().respond(|req| {
        if req.url.ends_with("/pay/closeorder") {
            reply(&[
                ("result_code", "FAIL"),
                ("err_code", "ORDERPAID"),
                ("err_code_des", "该订单已支付"),
            ])
        } else {
            reply(&[
                ("trade_state", "SUCCESS"),
                ("out_trade_no", "ORDER_1"),
                ("transaction_id", "4200009"),
                ("total_fee", "2499"),
                ("time_end", "20231115061320"),
            ])
        }
    });
    let mut h = h;
    let st = h.close(&close_of("ORDER_1")).unwrap();
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.amount.map(|m| m.minor), Some(2499));
    assert_eq!(st.order.channel_transaction_id.as_deref(), Some("4200009"));
    let urls: Vec<_> = h.sent().iter().map(|r| r.url.clone()).collect();
    assert_eq!(
        urls,
        [
            "https://api.mch.weixin.qq.com/pay/closeorder",
            "https://api.mch.weixin.qq.com/pay/orderquery"
        ]
    );
}

#[test]
fn close_failures_are_rejections_and_bad_signatures_refused() {
    let (mut h, _) = scripted(
        merchant(),
        reply(&[("result_code", "FAIL"), ("err_code", "SYSTEMERROR")]),
    );
    match h.close(&close_of("ORDER_1")).unwrap_err() {
        AdapterError::ProviderRejected(r) => assert!(r.code == "SYSTEMERROR" && r.retryable),
        other => panic!("{other:?}"),
    }
    let (mut h, _) = scripted(merchant(), reply_with(&[], "MD5", "another-key"));
    assert!(matches!(
        h.close(&close_of("ORDER_1")).unwrap_err(),
        AdapterError::BadSignature(_)
    ));
    let (mut h, seen) = scripted(merchant(), reply(&[]));
    assert!(matches!(
        h.close(&close_of("ORDER 1")).unwrap_err(),
        AdapterError::InvalidRequest(m) if m.contains("merchant_order_no")
    ));
    assert!(seen.borrow().is_empty());
}

// ---------------------------------------------------------------- refund query

fn refund_query_of(refund_id: Option<&str>) -> RefundQueryRequest {
    RefundQueryRequest {
        order: query_of("ORDER_20231115_0001", None).order,
        refund_no: "REFUND_0002".into(),
        provider_refund_id: refund_id.map(String::from),
    }
}

/// An order with two refunds; the one asked for is the second.
fn refund_query_reply(status: &str) -> HttpResponse {
    reply(&[
        ("out_trade_no", "ORDER_20231115_0001"),
        ("transaction_id", "4200001234"),
        ("total_fee", "2499"),
        ("refund_count", "2"),
        ("out_refund_no_0", "REFUND_0001"),
        ("refund_id_0", "5001"),
        ("refund_fee_0", "1000"),
        ("refund_status_0", "SUCCESS"),
        ("out_refund_no_1", "REFUND_0002"),
        ("refund_id_1", "5002"),
        ("refund_fee_1", "499"),
        ("refund_status_1", status),
    ])
}

#[test]
fn refund_query_finds_the_refund_among_the_orders_refunds() {
    for (word, state) in [
        ("SUCCESS", RefundState::Succeeded),
        ("PROCESSING", RefundState::Pending),
        ("REFUNDCLOSE", RefundState::Failed),
        ("CHANGE", RefundState::Pending),
    ] {
        let (mut h, seen) = scripted(merchant(), refund_query_reply(word));
        let st = h.refund_query(&refund_query_of(None)).unwrap();
        let sent = seen.borrow();
        assert_eq!(sent[0].url, "https://api.mch.weixin.qq.com/pay/refundquery");
        let f = sent_fields(&sent[0]);
        assert_eq!(f["out_refund_no"], "REFUND_0002");
        assert!(!f.contains_key("refund_id"));
        assert_eq!((st.state, st.provider_state.as_str()), (state, word));
        assert_eq!(st.refund_no, "REFUND_0002");
        assert_eq!(st.provider_refund_id.as_deref(), Some("5002"));
        assert_eq!(
            st.amount,
            Some(Money {
                minor: 499,
                currency: "CNY".into()
            })
        );
        assert_eq!(
            st.order.channel_transaction_id.as_deref(),
            Some("4200001234")
        );
    }
}

#[test]
fn refund_query_prefers_the_refund_id_and_reads_refundnotexist_as_failed() {
    let (mut h, seen) = scripted(merchant(), refund_query_reply("SUCCESS"));
    h.refund_query(&refund_query_of(Some("5002"))).unwrap();
    let f = sent_fields(&seen.borrow()[0]);
    assert_eq!(f["refund_id"], "5002");
    assert!(!f.contains_key("out_refund_no"));

    let (mut h, _) = scripted(
        merchant(),
        reply(&[("result_code", "FAIL"), ("err_code", "REFUNDNOTEXIST")]),
    );
    let st = h.refund_query(&refund_query_of(None)).unwrap();
    assert_eq!(
        (st.state, st.provider_state.as_str()),
        (RefundState::Failed, "REFUNDNOTEXIST")
    );
}

#[test]
fn refund_query_answers_that_do_not_fit_are_malformed() {
    // Another order's refunds.
    let mut other = refund_query_reply("SUCCESS");
    let (_, mut f) = xml::decode(&other.body).unwrap();
    f.insert("out_trade_no".into(), "SOMEONE_ELSE".into());
    f.insert("sign".into(), wx_sign(&f, "MD5", KEY));
    other.body = xml::encode("xml", &f).into_bytes();
    // The refund asked for is not listed; the count is absurd.
    let missing = reply(&[
        ("refund_count", "1"),
        ("out_refund_no_0", "REFUND_0001"),
        ("refund_fee_0", "1"),
        ("refund_status_0", "SUCCESS"),
    ]);
    let absurd = reply(&[("refund_count", "100000")]);
    for resp in [other, missing, absurd] {
        let (mut h, _) = scripted(merchant(), resp);
        assert!(matches!(
            h.refund_query(&refund_query_of(None)).unwrap_err(),
            AdapterError::MalformedResponse(_)
        ));
    }
}

// ---------------------------------------------------------------- overseas (§1.11)

const APIHK: &str = "https://apihk.mch.weixin.qq.com";

/// A cross-border merchant: region from its apihk base_url.
fn overseas() -> Harness<WechatV2> {
    merchant().text("base_url", APIHK)
}

fn in_currency(mut order: OrderRequest, currency: &str) -> OrderRequest {
    order.amount.currency = currency.into();
    order
}

#[test]
fn describe_offers_every_wechat_currency_and_the_region_fields() {
    let info = WechatV2::describe();
    // Static for every merchant: the union; a domestic merchant's CNY-only
    // rule is the adapter's (tested below), since describe sees no config.
    assert_eq!(info.currencies, money::WECHAT_PAY_CURRENCIES);
    for name in ["region", "version"] {
        assert!(info.config_schema.iter().any(|f| f.name == name), "{name}");
    }
}

#[test]
fn an_overseas_order_is_sent_to_apihk_with_fee_type_in_its_currency() {
    for h in [
        overseas(),
        // An explicit region on a host that is no WeChat Pay host (a simulator).
        merchant()
            .text("region", "overseas")
            .text("base_url", "http://127.0.0.1:9100"),
    ] {
        let (mut h, seen) = scripted(h, reply(&[("prepay_id", "wx1")]));
        h.unified_order(&in_currency(mini_program_order(), "EUR"))
            .unwrap();
        let sent = seen.borrow();
        assert!(sent[0].url.ends_with("/pay/unifiedorder"));
        let f = sent_fields(&sent[0]);
        assert_eq!(f["fee_type"], "EUR");
        assert_eq!(f["total_fee"], "2499");
        assert!(!f.contains_key("version"));
    }
    // JPY has no minor unit: total_fee is whole yen.
    let (mut h, seen) = scripted(overseas(), reply(&[("prepay_id", "wx1")]));
    let mut order = in_currency(mini_program_order(), "JPY");
    order.amount.minor = 500;
    h.unified_order(&order).unwrap();
    let f = sent_fields(&seen.borrow()[0]);
    assert_eq!(
        (f["fee_type"].as_str(), f["total_fee"].as_str()),
        ("JPY", "500")
    );
}

#[test]
fn a_domestic_merchant_takes_cny_only_and_an_overseas_one_wechats_currencies() {
    for (h, currency, named) in [
        (merchant(), "EUR", "CNY only"),
        (merchant().text("region", "domestic"), "USD", "CNY only"),
        (overseas(), "BRL", "cross-border"),
    ] {
        let mut h = h; // its responder panics on any request
        match h
            .unified_order(&in_currency(mini_program_order(), currency))
            .unwrap_err()
        {
            AdapterError::InvalidRequest(m) => {
                assert!(m.contains("amount.currency") && m.contains(named), "{m}")
            }
            other => panic!("{currency}: {other:?}"),
        }
    }
    // CNY on the cross-border API (merchants priced in CNY).
    let (mut h, seen) = scripted(overseas(), reply(&[("prepay_id", "wx1")]));
    h.unified_order(&mini_program_order()).unwrap();
    assert_eq!(sent_fields(&seen.borrow()[0])["fee_type"], "CNY");
}

#[test]
fn a_region_that_contradicts_a_wechat_host_or_an_unknown_one_is_a_configuration_error() {
    for (h, named) in [
        (
            merchant()
                .text("region", "domestic")
                .text("base_url", APIHK),
            "base_url",
        ),
        (
            merchant()
                .text("region", "overseas")
                .text("base_url", "https://api2.mch.weixin.qq.com"),
            "base_url",
        ),
        (merchant().text("region", "hk"), "region"),
    ] {
        let mut h = h;
        match h.unified_order(&mini_program_order()).unwrap_err() {
            AdapterError::InvalidConfig(m) => assert!(m.contains(named), "{m}"),
            other => panic!("{named}: {other:?}"),
        }
    }
    assert_eq!(
        wire::Region::of_base_url("https://apius.mch.weixin.qq.com/"),
        Some(Region::Overseas)
    );
    assert_eq!(
        wire::Region::of_base_url("https://api.mch.weixin.qq.com:443"),
        Some(Region::Domestic)
    );
    assert_eq!(wire::Region::of_base_url("http://127.0.0.1:1"), None);
}

#[test]
fn a_configured_version_is_signed_into_every_request() {
    let (mut h, seen) = scripted(
        overseas().text("version", "1.0"),
        reply(&[("prepay_id", "wx1")]),
    );
    h.unified_order(&in_currency(mini_program_order(), "HKD"))
        .unwrap();
    assert_eq!(sent_fields(&seen.borrow()[0])["version"], "1.0");
}

/// An overseas query answer for a paid USD 24.99 order with the payer's
/// side as given.
fn paid_usd(extra: &[(&str, &str)]) -> HttpResponse {
    let mut f = vec![
        ("trade_state", "SUCCESS"),
        ("out_trade_no", "ORDER_20231115_0001"),
        ("transaction_id", "4200001234202311150000000001"),
        ("total_fee", "2499"),
        ("time_end", "20231115061320"),
    ];
    f.extend_from_slice(extra);
    reply(&f)
}

#[test]
fn an_overseas_answer_states_its_currency_and_a_well_formed_payer_side() {
    let query = || query_of("ORDER_20231115_0001", None);
    // 24.99 USD at 7.1234 CNY is 178.01 CNY.
    let paid = [
        ("fee_type", "USD"),
        ("cash_fee_type", "CNY"),
        ("cash_fee", "17801"),
        ("rate", "712340000"),
    ];
    let (mut h, _) = scripted(overseas(), paid_usd(&paid));
    let st = h.query(&query()).unwrap();
    assert_eq!(
        st.amount,
        Some(Money {
            minor: 2499,
            currency: "USD".into()
        })
    );
    // No fee_type; a rate, a cash_fee_type, a cash_fee that are no such thing.
    for extra in [
        &paid[1..],
        &[("fee_type", "USD"), ("rate", "7.1234")][..],
        &[("fee_type", "USD"), ("rate", "0")][..],
        &[("fee_type", "USD"), ("cash_fee_type", "XXX")][..],
        &[("fee_type", "USD"), ("cash_fee", "17.80")][..],
    ] {
        let (mut h, _) = scripted(overseas(), paid_usd(extra));
        assert!(
            matches!(
                h.query(&query()).unwrap_err(),
                AdapterError::MalformedResponse(_)
            ),
            "{extra:?}"
        );
    }
    // Domestic answers may leave fee_type out: CNY.
    let (mut h, _) = scripted(merchant(), paid_usd(&[("cash_fee", "2499")]));
    assert_eq!(h.query(&query()).unwrap().amount.unwrap().currency, "CNY");
}

/// A signed overseas payment notification of 24.99 EUR with `extra`.
fn overseas_notification(extra: &[(&str, &str)]) -> Vec<u8> {
    let mut f = fields(&[
        ("return_code", "SUCCESS"),
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("nonce_str", "5d2b6c2a8db53831f7eda20af46e531c"),
        ("result_code", "SUCCESS"),
        ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
        ("trade_type", "JSAPI"),
        ("total_fee", "2499"),
        ("transaction_id", "4200001234202311150000000001"),
        ("out_trade_no", "ORDER_20231115_0001"),
        ("time_end", "20231115061320"),
    ]);
    f.extend(fields(extra));
    let sig = wx_sign(&f, "MD5", KEY);
    f.insert("sign".into(), sig);
    xml::encode("xml", &f).into_bytes()
}

#[test]
fn an_overseas_notification_is_read_in_its_currency_and_its_cash_side_checked() {
    // 24.99 EUR at 7.8 CNY: 194.92 CNY.
    let out = overseas()
        .parse_notify(&inbound(overseas_notification(&[
            ("fee_type", "EUR"),
            ("cash_fee_type", "CNY"),
            ("cash_fee", "19492"),
            ("rate", "780000000"),
        ])))
        .unwrap();
    let [NotifyEvent::Payment(st)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(
        st.amount,
        Some(Money {
            minor: 2499,
            currency: "EUR".into()
        })
    );
    for extra in [
        // Without fee_type an overseas amount has no currency.
        &[("cash_fee", "19492")][..],
        &[("fee_type", "EUR"), ("cash_fee", "19492"), ("rate", "-1")][..],
    ] {
        let error = refused_with_fail_ack(overseas(), overseas_notification(extra));
        assert!(
            matches!(error, AdapterError::InvalidRequest(_)),
            "{extra:?}: {error:?}"
        );
    }
    // A payer's side that does not fit the total is read all the same: the
    // host compares total_fee with the order and reports a contradiction
    // to the merchant, which refusing here would hide.
    let out = overseas()
        .parse_notify(&inbound(overseas_notification(&[
            ("fee_type", "EUR"),
            ("total_fee", "1"),
            ("cash_fee", "19492"),
            ("rate", "780000000"),
        ])))
        .unwrap();
    let [NotifyEvent::Payment(st)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(st.amount.as_ref().map(|m| m.minor), Some(1));
}

fn overseas_refund(currency: &str) -> RefundRequest {
    let mut r = refund_of(1000);
    r.amount.currency = currency.into();
    r.order_amount.currency = currency.into();
    r
}

#[test]
fn an_overseas_refund_is_in_the_orders_currency_and_its_answer_must_agree() {
    let answer = |refund_fee_type: &str| {
        let mut f = REFUND_ACCEPTED.to_vec();
        f.extend([
            ("refund_fee_type", refund_fee_type),
            ("cash_refund_fee", "7800"),
            ("cash_refund_fee_type", "CNY"),
            ("rate", "780000000"),
        ]);
        reply(&f)
    };
    let cert = |h: Harness<WechatV2>| h.secret("client_cert", "-----BEGIN CERTIFICATE-----\n...");
    let (mut h, seen) = scripted(cert(overseas()), answer("EUR"));
    let st = h.refund(&overseas_refund("EUR")).unwrap();
    assert_eq!(
        st.amount,
        Some(Money {
            minor: 1000,
            currency: "EUR".into()
        })
    );
    let f = sent_fields(&seen.borrow()[0]);
    assert_eq!(f["refund_fee_type"], "EUR");
    assert!(seen.borrow()[0].url.starts_with(APIHK));

    let (mut h, _) = scripted(cert(overseas()), answer("CNY"));
    assert!(matches!(
        h.refund(&overseas_refund("EUR")).unwrap_err(),
        AdapterError::MalformedResponse(m) if m.contains("refund_fee_type")
    ));
    // A domestic merchant's refund in another currency is refused unsent.
    assert!(matches!(
        cert(merchant()).refund(&overseas_refund("EUR")).unwrap_err(),
        AdapterError::InvalidRequest(m) if m.contains("CNY only")
    ));
}

#[test]
fn an_overseas_refund_query_needs_fee_type() {
    let reply_of = |fee_type: Option<&str>| {
        let mut f = vec![
            ("out_trade_no", "ORDER_20231115_0001"),
            ("refund_count", "1"),
            ("out_refund_no_0", "REFUND_0002"),
            ("refund_id_0", "5030"),
            ("refund_fee_0", "1000"),
            ("refund_status_0", "SUCCESS"),
        ];
        if let Some(t) = fee_type {
            f.push(("fee_type", t));
        }
        reply(&f)
    };
    let (mut h, _) = scripted(overseas(), reply_of(Some("GBP")));
    let st = h.refund_query(&refund_query_of(None)).unwrap();
    assert_eq!(st.amount.unwrap().currency, "GBP");
    let (mut h, _) = scripted(overseas(), reply_of(None));
    assert!(matches!(
        h.refund_query(&refund_query_of(None)).unwrap_err(),
        AdapterError::MalformedResponse(m) if m.contains("fee_type")
    ));
    let (mut h, _) = scripted(merchant(), reply_of(None));
    assert_eq!(
        h.refund_query(&refund_query_of(None))
            .unwrap()
            .amount
            .unwrap()
            .currency,
        "CNY"
    );
}

// ---------------------------------------------------------------- fuzzing

#[test]
fn fuzz_parse_notify_never_panics_nor_trusts_a_changed_notification() {
    let sample = payment_notification(None, KEY, MCH_ID);
    // WeChat signs every field: a flip XML ignores (whitespace) may be
    // taken, any other change must be refused.
    fuzz_signed_notify(
        "wechat-v2 parse_notify",
        &inbound(sample),
        0x00f0_2202,
        400,
        |req| merchant().parse_notify(req),
    );
}

/// A harness answering every request with `sample`'s status and headers
/// around `body`.
fn answering(h: Harness<WechatV2>, sample: &HttpResponse, body: &[u8]) -> Harness<WechatV2> {
    let answer = with_body(sample, body);
    h.respond(move |_| answer.clone())
}

#[test]
fn fuzz_signed_answers_are_taken_only_as_signed() {
    let created = reply(&[
        ("trade_type", "JSAPI"),
        ("prepay_id", "wx201411101639507cbf6ffd8b0779950874"),
    ]);
    fuzz_same_meaning(
        "wechat-v2 unified_order",
        &created.body,
        0x00f0_2203,
        300,
        |b| {
            answering(merchant(), &created, b)
                .unified_order(&mini_program_order())
                .ok()
        },
    );
    let paid = reply(&[
        ("trade_state", "SUCCESS"),
        ("out_trade_no", "ORDER_20231115_0001"),
        ("transaction_id", "4200001234202311150000000001"),
        ("total_fee", "2499"),
        ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
        ("time_end", "20231115061320"),
    ]);
    let query = query_of("ORDER_20231115_0001", None);
    fuzz_same_meaning("wechat-v2 query", &paid.body, 0x00f0_2204, 300, |b| {
        answering(merchant(), &paid, b).query(&query).ok()
    });
    let refunded = reply(&REFUND_ACCEPTED);
    fuzz_same_meaning("wechat-v2 refund", &refunded.body, 0x00f0_2205, 300, |b| {
        answering(with_cert(), &refunded, b)
            .refund(&refund_of(1000))
            .ok()
    });
    let refunds = refund_query_reply("SUCCESS");
    let refund_query = refund_query_of(None);
    fuzz_same_meaning(
        "wechat-v2 refund_query",
        &refunds.body,
        0x00f0_2206,
        300,
        |b| {
            answering(merchant(), &refunds, b)
                .refund_query(&refund_query)
                .ok()
        },
    );
    let closed = reply(&[]);
    let close = close_of("ORDER_20231115_0001");
    fuzz_same_meaning("wechat-v2 close", &closed.body, 0x00f0_2207, 300, |b| {
        answering(merchant(), &closed, b).close(&close).ok()
    });
}

mod papay;
