//! The canonical strings of providers.md §5.9, every operation against
//! scripted Yaband answers, the state tables of §5.5/§5.6 and the refusals.
//! The test side computes HMACs with `payhost_sdk::native` directly, so a
//! signature the adapter sends is checked against the published string,
//! not against the adapter's own code.

use super::*;
use payhost_sdk::native::{self, SecretTable};
use payhost_sdk::testing::{
    Harness, assert_known_currency, fuzz_same_meaning, fuzz_signed_notify, fuzz_well_formed,
    with_body,
};
use serde_json::{Value, json};

const USER: &str = "016683";
/// Yaband never publishes a key (§5.9), so any key will do for the tests.
const KEY: &str = "f4f70db6107aaaaaaab75efa1f1490b4";
const NOW: i64 = 1_546_588_959;
const NOTIFY_URL: &str = "https://payhost.test/v1/notify/yaband/m1";
const TRADE_ID: &str = "a8d9be05-8b39-a766-dad0-553b0640d06a";

fn hmac_hex(key: &str, text: &str) -> String {
    let mut t = SecretTable::new();
    let k = t.insert(key.as_bytes().to_vec());
    let mac = t
        .hmac(
            native::DigestAlgorithm::Sha256,
            k,
            native::KeyEncoding::Raw,
            &[native::Part::Text(text)],
        )
        .unwrap();
    encoding::hex_lower(&mac)
}

fn harness() -> Harness<Yaband> {
    Harness::<Yaband>::new()
        .text("user", USER)
        .secret("secret_key", KEY)
        .text("redirect_url", "https://shop.example/return")
        .with_schema_defaults()
        .timestamp(NOW)
        .notify_url(NOTIFY_URL)
}

fn obj(v: Value) -> Object {
    v.as_object().unwrap().clone()
}

/// An answer as Yaband writes it, `sign` over `data` with `key`.
fn answer_with(key: &str, data: Value) -> HttpResponse {
    let sign = hmac_hex(
        key,
        &sign::data_string(&obj(data.clone()), Rules::default()),
    );
    let body = json!({"status": true, "code": "200", "data": data, "message": "", "sign": sign});
    http::response(200, "application/json", body.to_string())
}

fn answer(data: Value) -> HttpResponse {
    answer_with(KEY, data)
}

fn body(req: &HttpRequest) -> Value {
    serde_json::from_slice(&req.body).unwrap()
}

fn order(method: &str, minor: u64, currency: &str) -> OrderRequest {
    OrderRequest {
        merchant_order_no: "ORDER-1".into(),
        amount: Money {
            minor,
            currency: currency.into(),
        },
        description: "YabandPay test".into(),
        method: method.into(),
        payer: Payer {
            app_id: Some("wx7a5355d3d2a904a4".into()),
            openid: Some("opilP5dyazU7pTpyps8TDc53OGyU".into()),
            client_ip: None,
        },
        expires_at: None,
        attach: None,
    }
}

fn order_ref(trade_id: Option<&str>) -> OrderRef {
    OrderRef {
        merchant_order_no: "ORDER-1".into(),
        provider_trade_no: trade_id.map(String::from),
        channel_transaction_id: None,
    }
}

fn created_answer(url: Option<&str>) -> Value {
    let mut data =
        json!({"order_id": "ORDER-1", "trade_id": TRADE_ID, "amount": "24.99", "currency": "EUR"});
    match url {
        Some(u) => data["url"] = u.into(),
        None => {
            data["parameters"] = json!({
                "appId": "wx7a5355d3d2a904a4", "timeStamp": "1546588959", "nonceStr": "n0nce",
                "package": "prepay_id=wx201410272009395522657a690389285100", "signType": "MD5",
                "paySign": "C380BEC2BFD727A4B6845133519F3AD6",
            })
        }
    }
    data
}

// ------------------------------------------------------------ §5.9 canonical strings

const MINI_STRING_A: &str = "amount=1.23&currency=EUR&description=test&method=v3.CreatePaymentsWechatMiniPay&notify_url=https://imenuapi.yabandpay.com/api/Notify/yabandpay&order_id=202413271095510835&pay_method=online&sub_app_id=wx7a5355d3d2a904a4&sub_open_id=opilP5dyazU7pTpyps8TDc53OGyU&sub_pay_method=WeChat Pay&time=1732672545&timeout=300&user=011844";
const QUERY_STRING_A: &str = "method=v3.QueryOrder&time=1546588959&trade_id=a8d9be05-8b39-a766-dad0-553b0640d06a&user=016683";
const REFUND_STRING_A: &str = "m_refund_id=20240304094405131317&method=v3.CreateRefund&notify_url=https://www.yabandpay.com&refund_amount=0.1&refund_currency=EUR&refund_description=test&time=1546588959&trade_id=5feb401d-d9a4-776f-211f-882b60f14d9d&user=016683";

#[test]
fn the_mini_program_string_of_the_chinese_page() {
    let data = obj(json!({
        "pay_method": "online", "sub_pay_method": "WeChat Pay", "order_id": "202413271095510835",
        "amount": "1.23", "currency": "EUR", "description": "test", "timeout": "300",
        "notify_url": "https://imenuapi.yabandpay.com/api/Notify/yabandpay",
        "sub_app_id": "wx7a5355d3d2a904a4", "sub_open_id": "opilP5dyazU7pTpyps8TDc53OGyU",
    }));
    let text = sign::request_string(
        "011844",
        method::MINI_PAY,
        1732672545,
        &data,
        Rules::default(),
    );
    assert_eq!(text, MINI_STRING_A);
}

#[test]
fn the_query_string() {
    let data = obj(json!({"trade_id": TRADE_ID}));
    assert_eq!(
        sign::request_string(USER, method::QUERY_ORDER, NOW, &data, Rules::default()),
        QUERY_STRING_A
    );
}

#[test]
fn the_refund_string() {
    let data = obj(json!({
        "trade_id": "5feb401d-d9a4-776f-211f-882b60f14d9d", "m_refund_id": "20240304094405131317",
        "refund_amount": "0.1", "refund_currency": "EUR", "refund_description": "test",
        "notify_url": "https://www.yabandpay.com",
    }));
    assert_eq!(
        sign::request_string(USER, method::CREATE_REFUND, NOW, &data, Rules::default()),
        REFUND_STRING_A
    );
}

/// The adapter's own mini-program order for the vector's inputs is signed
/// over exactly the published string.
#[test]
fn a_mini_program_order_signs_the_published_string() {
    let mut h = Harness::<Yaband>::new()
        .text("user", "011844")
        .secret("secret_key", KEY)
        .with_schema_defaults()
        .timestamp(1732672545)
        .notify_url("https://imenuapi.yabandpay.com/api/Notify/yabandpay")
        .respond(|_| answer(created_answer(None)));
    let mut o = order(MINI_PROGRAM, 123, "EUR");
    o.merchant_order_no = "202413271095510835".into();
    o.description = "test".into();
    o.expires_at = Some(1732672545 + 300 * 60);
    // The answer is for another order: refused, but the request was sent.
    let err = h.unified_order(&o).unwrap_err();
    assert!(matches!(err, AdapterError::MalformedResponse(_)), "{err:?}");
    let sent = body(&h.sent()[0]);
    assert_eq!(sent["method"], method::MINI_PAY);
    assert_eq!(sent["time"], 1732672545);
    assert_eq!(sent["sign"], hmac_hex(KEY, MINI_STRING_A));
}

#[test]
fn a_query_signs_the_published_string() {
    let mut h = harness().respond(|_| {
        answer(json!({"transaction_info": {"trade_id": TRADE_ID, "order_id": "ORDER-1", "state": "pending",
                                            "amount": "24.99", "currency": "EUR"}}))
    });
    h.query(&QueryRequest {
        order: order_ref(Some(TRADE_ID)),
    })
    .unwrap();
    let sent = body(&h.sent()[0]);
    assert_eq!(sent["data"], json!({"trade_id": TRADE_ID}));
    assert_eq!(sent["sign"], hmac_hex(KEY, QUERY_STRING_A));
}

#[test]
fn empty_values_are_skipped_or_kept_as_configured() {
    let data = obj(json!({"redirect_url": "", "amount": "1.00"}));
    let skip = Rules::default();
    let keep = Rules {
        skip_empty: false,
        ..skip
    };
    assert_eq!(sign::data_string(&data, skip), "amount=1.00");
    assert_eq!(sign::data_string(&data, keep), "amount=1.00&redirect_url=");
    // Through the adapter: a notification signed with its empty `demo`
    // verifies only when empties are kept.
    let mut data = paid_data("paid");
    data["demo"] = "".into();
    let text = sign::data_string(&obj(data.clone()), keep);
    assert!(text.contains("&demo=&"), "{text}");
    let n = InboundHttp {
        body: json!({"sign": hmac_hex(KEY, &text), "data": data})
            .to_string()
            .into_bytes(),
        ..notice(json!({}), KEY)
    };
    assert!(
        harness()
            .text("skip_empty_values", "false")
            .parse_notify(&n)
            .is_ok()
    );
    let e = harness().parse_notify(&n).unwrap_err();
    assert!(matches!(e.error, AdapterError::BadSignature(_)), "{e:?}");
}

#[test]
fn nested_objects_are_flattened_kept_as_json_or_skipped() {
    let data = obj(json!({"state": "paid", "3ds": {"eci": "05", "version": "2.1"}}));
    let rules = |nested| Rules {
        skip_empty: true,
        nested,
    };
    assert_eq!(
        sign::data_string(&data, rules(Nested::Flatten)),
        "eci=05&state=paid&version=2.1"
    );
    assert_eq!(
        sign::data_string(&data, rules(Nested::Json)),
        r#"3ds={"eci":"05","version":"2.1"}&state=paid"#
    );
    assert_eq!(sign::data_string(&data, rules(Nested::Skip)), "state=paid");
    // Numbers and booleans as their JSON text.
    let data = obj(json!({"time": 5, "demo": false}));
    assert_eq!(
        sign::data_string(&data, Rules::default()),
        "demo=false&time=5"
    );
}

// ------------------------------------------------------------ unified order, per method

#[test]
fn a_mini_program_order_answers_the_wx_request_payment_parameters() {
    let mut h = harness().respond(|_| answer(created_answer(None)));
    let created = h.unified_order(&order(MINI_PROGRAM, 2499, "EUR")).unwrap();
    assert_eq!(created.order.provider_trade_no.as_deref(), Some(TRADE_ID));
    assert_eq!(created.order.merchant_order_no, "ORDER-1");
    let PayAction::MiniProgram(p) = created.action else {
        panic!("{:?}", created.action)
    };
    assert_eq!(p.package, "prepay_id=wx201410272009395522657a690389285100");
    assert_eq!(p.sign_type, "MD5");
    let sent = &h.sent()[0];
    assert_eq!(sent.url, "https://mapi.yabandpay.com/Payments");
    let b = body(sent);
    assert_eq!(b["user"], USER);
    let d = &b["data"];
    assert_eq!(d["amount"], "24.99");
    assert_eq!(d["sub_pay_method"], "WeChat Pay");
    assert_eq!(d["sub_app_id"], "wx7a5355d3d2a904a4");
    assert_eq!(d["sub_open_id"], "opilP5dyazU7pTpyps8TDc53OGyU");
    assert_eq!(d["notify_url"], NOTIFY_URL);
    assert_eq!(d["timeout"], "0");
}

#[test]
fn a_mini_program_order_needs_the_app_and_the_openid() {
    let mut h = harness();
    let mut o = order(MINI_PROGRAM, 2499, "EUR");
    o.payer.openid = None;
    assert!(
        matches!(h.unified_order(&o), Err(AdapterError::InvalidRequest(m)) if m.contains("openid"))
    );
    o.payer.app_id = None;
    assert!(
        matches!(h.unified_order(&o), Err(AdapterError::InvalidRequest(m)) if m.contains("app_id"))
    );
    // A configured sub_app_id must be the payer's mini-program.
    let mut h = harness().text("sub_app_id", "wxOTHER");
    let o = order(MINI_PROGRAM, 2499, "EUR");
    assert!(
        matches!(h.unified_order(&o), Err(AdapterError::InvalidRequest(m)) if m.contains("wxOTHER"))
    );
    assert!(h.sent().is_empty());
}

#[test]
fn url_methods_send_their_sub_pay_method_and_answer_a_redirect() {
    for (m, word) in [
        (PAYPAL, "PAYPAL/RECURRING"),
        (PAYCONIQ, "Payconiq"),
        (UNIONPAY_WAP, "UnionPayWap"),
        (WECHAT_JSAPI, "WeChat Pay"),
    ] {
        let mut h = harness()
            .text("paypal_sub_pay_method", "PAYPAL/RECURRING")
            .respond(|_| answer(created_answer(Some("https://pay.yabandpay.com/p/1"))));
        let created = h.unified_order(&order(m, 2499, "EUR")).unwrap();
        assert_eq!(
            created.action,
            PayAction::Redirect("https://pay.yabandpay.com/p/1".into()),
            "{m}"
        );
        let b = body(&h.sent()[0]);
        assert_eq!(b["method"], method::CREATE_PAYMENTS, "{m}");
        assert_eq!(b["data"]["sub_pay_method"], word, "{m}");
        assert_eq!(b["data"]["pay_method"], "online", "{m}");
        assert_eq!(
            b["data"]["redirect_url"], "https://shop.example/return",
            "{m}"
        );
        assert!(b["data"].get("sub_open_id").is_none(), "{m}");
    }
}

#[test]
fn url_methods_need_a_redirect_url() {
    let mut h = Harness::<Yaband>::new()
        .text("user", USER)
        .secret("secret_key", KEY)
        .with_schema_defaults();
    for m in [PAYPAL, CARD] {
        let err = h.unified_order(&order(m, 2499, "EUR")).unwrap_err();
        assert!(
            matches!(&err, AdapterError::InvalidConfig(m) if m.contains("redirect_url")),
            "{err:?}"
        );
    }
    assert!(h.sent().is_empty());
}

#[test]
fn native_answers_a_qr_code_with_the_configured_url_type() {
    let mut h = harness()
        .text("native_url_type", "02")
        .respond(|_| answer(created_answer(Some("weixin://wxpay/bizpayurl?pr=abc"))));
    let created = h.unified_order(&order(WECHAT_NATIVE, 2499, "EUR")).unwrap();
    assert_eq!(
        created.action,
        PayAction::QrCode("weixin://wxpay/bizpayurl?pr=abc".into())
    );
    let b = body(&h.sent()[0]);
    assert_eq!(b["method"], method::NATIVE_PAY);
    assert_eq!(b["data"]["url_type"], "02");
    let mut h = harness().respond(|_| answer(created_answer(Some("https://h/1"))));
    h.unified_order(&order(WECHAT_NATIVE, 2499, "EUR")).unwrap();
    assert_eq!(body(&h.sent()[0])["data"]["url_type"], "01");
}

#[test]
fn card_derives_its_request_id_from_the_order() {
    let run = |no: &str| {
        let mut h = harness().respond(|_| {
            let mut a = created_answer(Some("https://card.yabandpay.com/1"));
            a["order_id"] = Value::Null;
            answer(a)
        });
        let mut o = order(CARD, 2499, "EUR");
        o.merchant_order_no = no.into();
        let created = h.unified_order(&o).unwrap();
        assert_eq!(
            created.action,
            PayAction::Redirect("https://card.yabandpay.com/1".into())
        );
        body(&h.sent()[0])
    };
    let a = run("ORDER-1");
    assert_eq!(a["method"], method::CARD_PAYMENTS);
    assert_eq!(a["data"]["operate"], "1");
    assert_eq!(a["data"]["3ds_initiate"], "01");
    let id = a["data"]["request_id"].as_str().unwrap();
    assert!(
        id.len() >= 24 && id.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{id}"
    );
    assert_eq!(
        run("ORDER-1")["data"]["request_id"],
        id,
        "the same on a retry"
    );
    assert_ne!(
        run("ORDER-2")["data"]["request_id"],
        id,
        "another per order"
    );
}

#[test]
fn an_expiry_becomes_timeout_minutes_rounded_down() {
    for (secs, want) in [(30 * 60 + 59, "30"), (20, "1"), (5 * 24 * 3600, "1440")] {
        let mut h = harness().respond(|_| answer(created_answer(None)));
        let mut o = order(MINI_PROGRAM, 2499, "EUR");
        o.expires_at = Some(NOW + secs);
        h.unified_order(&o).unwrap();
        assert_eq!(body(&h.sent()[0])["data"]["timeout"], want, "{secs}");
    }
    let mut h = harness();
    let mut o = order(MINI_PROGRAM, 2499, "EUR");
    o.expires_at = Some(NOW);
    assert!(matches!(
        h.unified_order(&o),
        Err(AdapterError::InvalidRequest(_))
    ));
}

#[test]
fn amounts_are_major_unit_strings_by_currency_exponent() {
    let mut h = harness().respond(|_| {
        answer(json!({"order_id": "ORDER-1", "trade_id": TRADE_ID, "amount": "80000.00", "currency": "CNY",
                       "url": "https://h/1"}))
    });
    h.unified_order(&order(PAYPAL, 8_000_000, "CNY")).unwrap();
    assert_eq!(body(&h.sent()[0])["data"]["amount"], "80000.00");
    // An answer for another amount is not taken.
    let mut h = harness().respond(|_| answer(created_answer(Some("https://h/1"))));
    let err = h.unified_order(&order(PAYPAL, 2500, "EUR")).unwrap_err();
    assert!(
        matches!(&err, AdapterError::MalformedResponse(m) if m.contains("24.99")),
        "{err:?}"
    );
}

#[test]
fn currencies_methods_and_minimums_are_checked_before_sending() {
    let mut h = harness();
    let e = h.unified_order(&order(PAYPAL, 2499, "USD")).unwrap_err();
    assert!(
        matches!(&e, AdapterError::InvalidRequest(m) if m.contains("EUR, CNY")),
        "{e:?}"
    );
    let e = h.unified_order(&order("alipay", 2499, "EUR")).unwrap_err();
    assert!(
        matches!(&e, AdapterError::Unsupported(m) if m.contains("wechat_native")),
        "{e:?}"
    );
    for (m, minor, cur) in [
        (CARD, 99, "EUR"),
        (UNIONPAY_WAP, 99, "EUR"),
        (PAYPAL, 9, "EUR"),
        (MINI_PROGRAM, 99, "CNY"),
    ] {
        let e = h.unified_order(&order(m, minor, cur)).unwrap_err();
        assert!(
            matches!(&e, AdapterError::InvalidRequest(x) if x.contains("at least")),
            "{m}: {e:?}"
        );
    }
    let mut o = order(PAYPAL, 2499, "EUR");
    o.merchant_order_no = "bad no".into();
    assert!(matches!(
        h.unified_order(&o),
        Err(AdapterError::InvalidRequest(_))
    ));
    assert!(h.sent().is_empty());
}

#[test]
fn describe_lists_methods_currencies_and_capabilities() {
    let info = Yaband::describe();
    assert_eq!(info.name, "yaband");
    // The order number's limit is declared, so the host checks it first.
    let no = info
        .field_rules
        .iter()
        .find(|r| r.field == "merchant_order_no")
        .expect("merchant_order_no rule");
    assert_eq!((no.min_length, no.max_length), (1, 64));
    for m in METHODS {
        assert!(info.methods.iter().any(|x| x == m), "{m}");
    }
    assert!(!info.capabilities.query_by_merchant_order_no);
    assert!(!info.capabilities.close);
    assert!(info.capabilities.refund_query && info.capabilities.payment_notifications);
    assert_eq!(info.egress_hosts, vec!["mapi.yabandpay.com".to_string()]);
    assert_eq!(info.currencies, ["EUR", "CNY", "GBP", "CHF", "DKK", "SEK"]);
    let secret = info
        .config_schema
        .iter()
        .find(|f| f.name == "secret_key")
        .unwrap();
    assert_eq!(secret.kind, FieldKind::Secret);
    assert!(secret.default.is_none());
}

// ------------------------------------------------------------ answers

#[test]
fn refusals_5xx_and_forged_answers_are_errors() {
    let mut h = harness().respond(|_| {
        http::response(
            200,
            "application/json",
            r#"{"status":false,"code":"400","data":{},"message":"sign error"}"#,
        )
    });
    let e = h.unified_order(&order(PAYPAL, 2499, "EUR")).unwrap_err();
    assert!(
        matches!(&e, AdapterError::ProviderRejected(r) if r.code == "400" && !r.retryable && r.message.contains("sign error")),
        "{e:?}"
    );
    let mut h = harness().respond(|_| http::response(503, "text/html", "<html>busy</html>"));
    let e = h.unified_order(&order(PAYPAL, 2499, "EUR")).unwrap_err();
    assert!(
        matches!(&e, AdapterError::ProviderRejected(r) if r.code == "HTTP_503" && r.retryable),
        "{e:?}"
    );
    let mut h =
        harness().respond(|_| answer_with("another-key", created_answer(Some("https://h/1"))));
    let e = h.unified_order(&order(PAYPAL, 2499, "EUR")).unwrap_err();
    assert!(matches!(&e, AdapterError::BadSignature(_)), "{e:?}");
    let unsigned = || {
        let body =
            json!({"status": true, "code": "200", "data": created_answer(Some("https://h/1"))});
        http::response(200, "application/json", body.to_string())
    };
    let mut h = harness().respond(move |_| unsigned());
    assert!(h.unified_order(&order(PAYPAL, 2499, "EUR")).is_ok());
    let mut h = harness()
        .text("answer_signature", "required")
        .respond(move |_| unsigned());
    let e = h.unified_order(&order(PAYPAL, 2499, "EUR")).unwrap_err();
    assert!(
        matches!(&e, AdapterError::BadSignature(m) if m.contains("no `sign`")),
        "{e:?}"
    );
    let mut h = harness().respond(|_| http::response(200, "application/json", "not json"));
    assert!(matches!(
        h.unified_order(&order(PAYPAL, 2499, "EUR")),
        Err(AdapterError::MalformedResponse(_))
    ));
}

#[test]
fn bad_configuration_is_named() {
    for (name, value) in [
        ("nested_objects", "deep"),
        ("skip_empty_values", "yes"),
        ("answer_signature", "sometimes"),
        ("refund_currency", "euro"),
        ("timeout_minutes", "2000"),
    ] {
        let mut h = harness().text(name, value);
        let e = h.unified_order(&order(PAYPAL, 2499, "EUR")).unwrap_err();
        assert!(
            matches!(&e, AdapterError::InvalidConfig(m) if m.contains(name)),
            "{name}: {e:?}"
        );
    }
}

// ------------------------------------------------------------ query

#[test]
fn query_needs_yabands_trade_id_and_never_sends_the_order_no() {
    let mut h = harness();
    let e = h
        .query(&QueryRequest {
            order: order_ref(None),
        })
        .unwrap_err();
    assert!(
        matches!(&e, AdapterError::InvalidRequest(m) if m.contains("provider_trade_no")),
        "{e:?}"
    );
    assert!(h.sent().is_empty());
}

#[test]
fn a_paid_query_gives_the_three_numbers_and_the_amount() {
    let mut h = harness().respond(|_| {
        answer(json!({"transaction_info": {
            "trade_id": TRADE_ID, "order_id": "ORDER-1", "state": "paid", "amount": "24.99",
            "currency": "EUR", "transaction_id": "4200000000000000000000000001", "paid_time": "1546588000",
        }}))
    });
    let st = h
        .query(&QueryRequest {
            order: order_ref(Some(TRADE_ID)),
        })
        .unwrap();
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.provider_state, "paid");
    assert_eq!(st.order.provider_trade_no.as_deref(), Some(TRADE_ID));
    assert_eq!(
        st.order.channel_transaction_id.as_deref(),
        Some("4200000000000000000000000001")
    );
    assert_eq!(
        st.amount,
        Some(Money {
            minor: 2499,
            currency: "EUR".into()
        })
    );
    assert_eq!(st.paid_at, Some(1546588000));
    assert_eq!(body(&h.sent()[0])["method"], method::QUERY_ORDER);
}

#[test]
fn a_query_answer_for_another_order_is_refused() {
    let mut h = harness().respond(|_| {
        answer(json!({"transaction_info": {"trade_id": TRADE_ID, "order_id": "ORDER-2", "state": "paid",
                                            "amount": "24.99", "currency": "EUR"}}))
    });
    let e = h
        .query(&QueryRequest {
            order: order_ref(Some(TRADE_ID)),
        })
        .unwrap_err();
    assert!(
        matches!(&e, AdapterError::MalformedResponse(m) if m.contains("ORDER-2")),
        "{e:?}"
    );
}

#[test]
fn close_is_unsupported() {
    let mut h = harness();
    let e = h
        .close(&CloseRequest {
            order: order_ref(Some(TRADE_ID)),
        })
        .unwrap_err();
    assert!(
        matches!(&e, AdapterError::Unsupported(m) if m.contains("yaband")),
        "{e:?}"
    );
}

// ------------------------------------------------------------ §5.5 / §5.6 state tables

macro_rules! payment_state {
    ($($test:ident: $code:literal $word:literal => $state:expr;)*) => {$(
        #[test]
        fn $test() {
            for form in [$code.to_string(), $word.to_string(), format!("{} {}", $code, $word), $word.to_uppercase()] {
                assert_eq!(wire::trade_state(&form), $state, "{form}");
            }
        }
    )*};
}

payment_state! {
    state_00_paid_is_paid: "00" "paid" => TradeState::Paid;
    state_01_authorized_is_pending: "01" "authorized" => TradeState::Pending;
    state_02_pending_is_pending: "02" "pending" => TradeState::Pending;
    state_03_processing_is_pending: "03" "processing" => TradeState::Pending;
    state_04_verify_is_not_paid: "04" "verify" => TradeState::Pending;
    state_05_declined_is_failed: "05" "declined" => TradeState::Failed;
    state_06_failed_is_failed: "06" "failed" => TradeState::Failed;
    state_07_expired_is_closed: "07" "expired" => TradeState::Closed;
    state_08_cancelled_is_closed: "08" "cancelled" => TradeState::Closed;
}

#[test]
fn an_unknown_payment_state_is_pending() {
    for s in ["", "09", "settled?", "paid later"] {
        assert_eq!(wire::trade_state(s), TradeState::Pending, "{s}");
    }
}

macro_rules! refund_state {
    ($($test:ident: $code:literal $word:literal => $state:expr;)*) => {$(
        #[test]
        fn $test() {
            for form in [$code.to_string(), $word.to_string(), format!("{} {}", $code, $word)] {
                assert_eq!(wire::refund_state(&form), $state, "{form}");
            }
        }
    )*};
}

refund_state! {
    refund_20_to_be_approval_is_pending: "20" "to-be-approval" => RefundState::Pending;
    refund_21_refund_pending_is_pending: "21" "refund pending" => RefundState::Pending;
    refund_22_refund_processing_is_pending: "22" "refund processing" => RefundState::Pending;
    refund_23_refunded_succeeded: "23" "refunded" => RefundState::Succeeded;
}

#[test]
fn an_unknown_refund_state_is_pending() {
    for s in ["", "24", "queued"] {
        assert_eq!(wire::refund_state(s), RefundState::Pending, "{s}");
    }
}

// ------------------------------------------------------------ refund and refund query

fn refund_request(no: &str, minor: u64) -> RefundRequest {
    RefundRequest {
        order: order_ref(Some(TRADE_ID)),
        refund_no: no.into(),
        amount: Money {
            minor,
            currency: "EUR".into(),
        },
        order_amount: Money {
            minor: 2499,
            currency: "EUR".into(),
        },
        reason: Some("damaged".into()),
    }
}

#[test]
fn a_refund_is_by_trade_id_in_the_order_currency() {
    let mut h = harness().respond(|_| {
        answer(
            json!({"refund_id": "RID-1", "m_refund_id": "RF-1", "trade_id": TRADE_ID,
                       "refund_amount": "10.00", "refund_currency": "EUR", "state": "22"}),
        )
    });
    let r = h.refund(&refund_request("RF-1", 1000)).unwrap();
    assert_eq!(r.state, RefundState::Pending);
    assert_eq!(r.provider_refund_id.as_deref(), Some("RID-1"));
    assert_eq!(
        r.amount,
        Some(Money {
            minor: 1000,
            currency: "EUR".into()
        })
    );
    let b = body(&h.sent()[0]);
    assert_eq!(b["method"], method::CREATE_REFUND);
    assert_eq!(
        b["data"],
        json!({"trade_id": TRADE_ID, "m_refund_id": "RF-1", "refund_amount": "10.00", "refund_currency": "EUR",
               "refund_description": "damaged", "notify_url": NOTIFY_URL})
    );
}

#[test]
fn refunds_without_trade_id_over_the_total_or_in_another_currency_are_refused() {
    let mut h = harness();
    let mut r = refund_request("RF-1", 1000);
    r.order.provider_trade_no = None;
    assert!(matches!(h.refund(&r), Err(AdapterError::InvalidRequest(m)) if m.contains("trade_id")));
    assert!(matches!(
        h.refund(&refund_request("RF-1", 2500)),
        Err(AdapterError::InvalidRequest(_))
    ));
    let mut h = harness().text("refund_currency", "CHF");
    let e = h.refund(&refund_request("RF-1", 1000)).unwrap_err();
    assert!(
        matches!(&e, AdapterError::InvalidRequest(m) if m.contains("refund_currency")),
        "{e:?}"
    );
    assert!(h.sent().is_empty());
    // An answer about another refund is not taken.
    let mut h = harness()
        .respond(|_| answer(json!({"refund_id": "RID-9", "m_refund_id": "RF-9", "state": "23"})));
    assert!(matches!(
        h.refund(&refund_request("RF-1", 1000)),
        Err(AdapterError::MalformedResponse(_))
    ));
}

#[test]
fn refund_query_is_by_yabands_refund_id_only() {
    let mut h = harness();
    let mut q = RefundQueryRequest {
        order: order_ref(Some(TRADE_ID)),
        refund_no: "RF-1".into(),
        provider_refund_id: None,
    };
    let e = h.refund_query(&q).unwrap_err();
    assert!(
        matches!(&e, AdapterError::InvalidRequest(m) if m.contains("refund_id")),
        "{e:?}"
    );
    assert!(h.sent().is_empty());
    q.provider_refund_id = Some("RID-1".into());
    let mut h = harness().respond(|_| {
        answer(
            json!({"refund_id": "RID-1", "m_refund_id": "RF-1", "refund_amount": "10.00",
                       "refund_currency": "EUR", "state": "refunded"}),
        )
    });
    let r = h.refund_query(&q).unwrap();
    assert_eq!(r.state, RefundState::Succeeded);
    assert_eq!(r.refund_no, "RF-1");
    let b = body(&h.sent()[0]);
    assert_eq!(b["method"], method::QUERY_REFUND);
    assert_eq!(b["data"], json!({"refund_id": "RID-1"}));
}

// ------------------------------------------------------------ notifications

fn notice(data: Value, key: &str) -> InboundHttp {
    let sign = hmac_hex(
        key,
        &sign::data_string(&obj(data.clone()), Rules::default()),
    );
    InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/yaband/m1".into(),
        query: String::new(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: json!({"sign": sign, "data": data}).to_string().into_bytes(),
    }
}

fn paid_data(state: &str) -> Value {
    json!({
        "type": "payment", "user": USER, "order_id": "ORDER-1", "trade_id": TRADE_ID,
        "transaction_id": "4200000000000000000000000001", "amount": "24.99", "currency": "EUR",
        "state": state, "sub_pay_method": "WeChat Pay", "pay_method": "online", "paid_time": "1546588000",
    })
}

#[test]
fn a_paid_notification_is_verified_and_acknowledged_ok() {
    let mut h = harness();
    let out = h.parse_notify(&notice(paid_data("paid"), KEY)).unwrap();
    assert_eq!(out.ack.status, 200);
    assert_eq!(out.ack.body, b"ok");
    let [NotifyEvent::Payment(st)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.order.merchant_order_no, "ORDER-1");
    assert_eq!(st.order.provider_trade_no.as_deref(), Some(TRADE_ID));
    assert_eq!(
        st.order.channel_transaction_id.as_deref(),
        Some("4200000000000000000000000001")
    );
    assert_eq!(
        st.amount,
        Some(Money {
            minor: 2499,
            currency: "EUR".into()
        })
    );
    assert!(h.sent().is_empty());
}

#[test]
fn the_notification_string_is_the_sorted_data_fields() {
    let data = obj(json!({"state": "paid", "amount": "24.99", "order_id": "O1", "empty": ""}));
    assert_eq!(
        sign::data_string(&data, Rules::default()),
        "amount=24.99&order_id=O1&state=paid"
    );
}

#[test]
fn a_verify_notification_is_not_paid() {
    let mut h = harness();
    let out = h.parse_notify(&notice(paid_data("04"), KEY)).unwrap();
    let [NotifyEvent::Payment(st)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(st.state, TradeState::Pending);
    assert_eq!(st.provider_state, "04");
}

#[test]
fn forged_tampered_and_foreign_notifications_are_refused_with_bad() {
    let mut h = harness();
    let mut tampered = notice(paid_data("paid"), KEY);
    tampered.body = String::from_utf8(tampered.body)
        .unwrap()
        .replace("24.99", "0.01")
        .into_bytes();
    let mut unsigned = notice(paid_data("paid"), KEY);
    unsigned.body = json!({"data": paid_data("paid")}).to_string().into_bytes();
    for (name, n) in [
        ("tampered", tampered),
        ("another key", notice(paid_data("paid"), "another-key")),
        ("unsigned", unsigned),
    ] {
        let e = h.parse_notify(&n).unwrap_err();
        assert!(
            matches!(e.error, AdapterError::BadSignature(_)),
            "{name}: {e:?}"
        );
        let ack = e.ack.expect("an answer for Yaband");
        assert_eq!(
            (ack.status, ack.body.as_slice()),
            (400, b"bad".as_slice()),
            "{name}"
        );
    }
    let mut other_user = paid_data("paid");
    other_user["user"] = "099999".into();
    let e = h.parse_notify(&notice(other_user, KEY)).unwrap_err();
    assert!(
        matches!(&e.error, AdapterError::InvalidRequest(m) if m.contains("099999")),
        "{e:?}"
    );
    let mut get = notice(paid_data("paid"), KEY);
    get.method = HttpMethod::Get;
    assert!(matches!(
        h.parse_notify(&get).unwrap_err().error,
        AdapterError::InvalidRequest(_)
    ));
    let mut no_order = paid_data("paid");
    no_order.as_object_mut().unwrap().remove("order_id");
    assert!(matches!(
        h.parse_notify(&notice(no_order, KEY)).unwrap_err().error,
        AdapterError::InvalidRequest(_)
    ));
}

#[test]
fn the_form_field_result_data_is_taken_too() {
    let n = notice(paid_data("paid"), KEY);
    let form_body = form::encode([(
        "resultData",
        String::from_utf8(n.body.clone()).unwrap().as_str(),
    )]);
    let mut h = harness();
    let out = h
        .parse_notify(&InboundHttp {
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: form_body.into_bytes(),
            ..n
        })
        .unwrap();
    assert_eq!(out.events.len(), 1);
}

#[test]
fn a_refund_notification_names_the_merchants_refund() {
    let data = json!({"type": "refund", "user": USER, "order_id": "ORDER-1", "trade_id": TRADE_ID,
                      "m_refund_id": "RF-1", "refund_id": "RID-1", "refund_amount": "10.00",
                      "refund_currency": "EUR", "amount": "24.99", "currency": "EUR", "state": "refunded"});
    let mut h = harness();
    let out = h.parse_notify(&notice(data.clone(), KEY)).unwrap();
    let [NotifyEvent::Refund(r)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(r.refund_no, "RF-1");
    assert_eq!(r.state, RefundState::Succeeded);
    assert_eq!(r.provider_refund_id.as_deref(), Some("RID-1"));
    assert_eq!(
        r.amount,
        Some(Money {
            minor: 1000,
            currency: "EUR".into()
        })
    );
    assert_eq!(r.order.merchant_order_no, "ORDER-1");
    let mut no_refund_no = data;
    no_refund_no.as_object_mut().unwrap().remove("m_refund_id");
    let e = h.parse_notify(&notice(no_refund_no, KEY)).unwrap_err();
    assert!(
        matches!(&e.error, AdapterError::InvalidRequest(m) if m.contains("m_refund_id")),
        "{e:?}"
    );
}

#[test]
fn a_verified_notification_of_another_kind_is_taken_and_ignored() {
    let mut data = paid_data("paid");
    data["type"] = "payout".into();
    let out = harness().parse_notify(&notice(data, KEY)).unwrap();
    assert!(out.events.is_empty());
    assert_eq!(out.ack.body, b"ok");
}

/// `parse_notify` on arbitrary bytes and headers never panics and answers
/// the contract's error with Yaband's refusal; signed arbitrary `data`
/// never panics either.
#[test]
fn parse_notify_on_arbitrary_input_never_panics() {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0011);
    let mut h = harness();
    let pieces = [
        "{",
        "}",
        "\"sign\"",
        ":",
        "\"data\"",
        "[",
        "]",
        ",",
        "resultData=",
        "%7B",
        "null",
        "1.5",
        "\"x\"",
    ];
    for i in 0..3000 {
        let body: Vec<u8> = if i % 2 == 0 {
            (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect()
        } else {
            (0..rng.usize(0..30))
                .map(|_| pieces[rng.usize(..pieces.len())])
                .collect::<String>()
                .into_bytes()
        };
        let headers = (0..rng.usize(0..4))
            .map(|_| {
                (
                    format!("h{}", rng.u8(..)),
                    (0..rng.usize(0..10)).map(|_| rng.alphanumeric()).collect(),
                )
            })
            .collect();
        let req = InboundHttp {
            method: if rng.bool() {
                HttpMethod::Post
            } else {
                HttpMethod::Get
            },
            path: "/v1/notify/yaband/m1".into(),
            query: String::new(),
            headers,
            body,
        };
        let e = h.parse_notify(&req).unwrap_err();
        assert!(
            matches!(
                e.error,
                AdapterError::InvalidRequest(_) | AdapterError::BadSignature(_)
            ),
            "{e:?}"
        );
        assert_eq!(e.ack.map(|a| a.body), Some(b"bad".to_vec()));
    }
    let values = [
        json!(""),
        json!("paid"),
        json!("refund"),
        json!("payment"),
        json!(1),
        json!(null),
        json!({"a": "b"}),
        json!([1]),
        json!("24.99"),
        json!("-1"),
        json!("EUR"),
        json!("xx"),
        json!(true),
        json!(USER),
    ];
    let names = [
        "type",
        "user",
        "order_id",
        "trade_id",
        "amount",
        "currency",
        "state",
        "m_refund_id",
        "refund_amount",
        "refund_currency",
        "paid_time",
        "transaction_id",
    ];
    for _ in 0..2000 {
        let mut data = serde_json::Map::new();
        for _ in 0..rng.usize(0..8) {
            data.insert(
                names[rng.usize(..names.len())].into(),
                values[rng.usize(..values.len())].clone(),
            );
        }
        match h.parse_notify(&notice(Value::Object(data), KEY)) {
            Ok(out) => assert_eq!(out.ack.body, b"ok"),
            Err(e) => assert!(matches!(e.error, AdapterError::InvalidRequest(_)), "{e:?}"),
        }
    }
}

// ------------------------------------------------------------ fuzzing

/// A harness answering every request with `sample`'s status and headers
/// around `body`.
fn answering(h: Harness<Yaband>, sample: &HttpResponse, body: &[u8]) -> Harness<Yaband> {
    let answer = with_body(sample, body);
    h.respond(move |_| answer.clone())
}

/// A merchant that refuses unsigned answers (`answer_signature`).
fn signed_only() -> Harness<Yaband> {
    harness().text("answer_signature", "required")
}

/// Mutations of a signed paid notification: `sign` covers every `data`
/// field, so a change is taken only where JSON ignores it.
#[test]
fn fuzz_parse_notify_never_panics_nor_trusts_a_changed_notification() {
    let sample = notice(paid_data("paid"), KEY);
    fuzz_signed_notify("yaband parse_notify", &sample, 0x00f0_4401, 300, |req| {
        harness().parse_notify(req)
    });
}

/// Yaband signs `data` of every answer (§5.9): with `answer_signature =
/// "required"` a mutated answer is taken only with the signed meaning.
#[test]
fn fuzz_signed_answers_are_taken_only_as_signed() {
    let created = answer(created_answer(None));
    fuzz_same_meaning(
        "yaband unified_order",
        &created.body,
        0x00f0_4402,
        300,
        |b| {
            answering(signed_only(), &created, b)
                .unified_order(&order(MINI_PROGRAM, 2499, "EUR"))
                .ok()
        },
    );
    let paid = answer(json!({"transaction_info": {
        "trade_id": TRADE_ID, "order_id": "ORDER-1", "state": "paid", "amount": "24.99",
        "currency": "EUR", "transaction_id": "4200000000000000000000000001", "paid_time": "1546588000",
    }}));
    let query = QueryRequest {
        order: order_ref(Some(TRADE_ID)),
    };
    fuzz_same_meaning("yaband query", &paid.body, 0x00f0_4403, 300, |b| {
        answering(signed_only(), &paid, b).query(&query).ok()
    });
    let refunding = answer(
        json!({"refund_id": "RID-1", "m_refund_id": "RF-1", "trade_id": TRADE_ID,
               "refund_amount": "10.00", "refund_currency": "EUR", "state": "22"}),
    );
    fuzz_same_meaning("yaband refund", &refunding.body, 0x00f0_4404, 300, |b| {
        answering(signed_only(), &refunding, b)
            .refund(&refund_request("RF-1", 1000))
            .ok()
    });
    let refunded = answer(
        json!({"refund_id": "RID-1", "m_refund_id": "RF-1", "refund_amount": "10.00",
               "refund_currency": "EUR", "state": "refunded"}),
    );
    let refund_query = RefundQueryRequest {
        order: order_ref(Some(TRADE_ID)),
        refund_no: "RF-1".into(),
        provider_refund_id: Some("RID-1".into()),
    };
    fuzz_same_meaning(
        "yaband refund_query",
        &refunded.body,
        0x00f0_4405,
        300,
        |b| {
            answering(signed_only(), &refunded, b)
                .refund_query(&refund_query)
                .ok()
        },
    );
}

/// By default (`if_present`) an answer without `sign` is taken: whatever
/// is taken still names the trade asked about, in a real currency.
#[test]
fn fuzz_answers_signed_if_present_are_taken_well_formed() {
    let paid = answer(json!({"transaction_info": {
        "trade_id": TRADE_ID, "order_id": "ORDER-1", "state": "paid", "amount": "24.99",
        "currency": "EUR", "transaction_id": "4200000000000000000000000001", "paid_time": "1546588000",
    }}));
    let query = QueryRequest {
        order: order_ref(Some(TRADE_ID)),
    };
    fuzz_well_formed(
        "yaband query (if_present)",
        &paid.body,
        0x00f0_4406,
        300,
        |b| answering(harness(), &paid, b).query(&query).ok(),
        |st| {
            assert_eq!(
                (
                    st.order.merchant_order_no.as_str(),
                    st.order.provider_trade_no.as_deref()
                ),
                ("ORDER-1", Some(TRADE_ID))
            );
            assert_known_currency(st.amount.as_ref());
        },
    );
}

/// Found by `fuzz_signed_answers_are_taken_only_as_signed`: flattened,
/// `sign` does not cover the name `transaction_info`, so an answer with it
/// renamed verified and was read as a pending status of no trade.
#[test]
fn a_signed_query_answer_with_its_transaction_info_renamed_is_refused() {
    let mut h = harness().respond(|_| {
        answer(json!({"transa#tion_info": {
            "trade_id": TRADE_ID, "order_id": "ORDER-1", "state": "paid", "amount": "24.99",
            "currency": "EUR",
        }}))
    });
    let e = h
        .query(&QueryRequest {
            order: order_ref(Some(TRADE_ID)),
        })
        .unwrap_err();
    assert!(
        matches!(&e, AdapterError::MalformedResponse(m) if m.contains("`state`")),
        "{e:?}"
    );
}
