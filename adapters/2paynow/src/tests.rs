//! Every operation against a scripted 2paynow. The test side computes
//! signatures with `payhost_sdk::native` directly, not with [`sign`], so the
//! two check each other.

use super::*;
use payhost_sdk::json::{Value, json};
use payhost_sdk::native;
use payhost_sdk::testing::{Harness, assert_known_currency, fuzz, fuzz_well_formed, with_body};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

const MID: &str = "4002563369";
const KEY: &str = "zG93Cv85BCCp2h";
/// The harness's default operation time.
const NOW: i64 = 1_700_000_000;

fn md5_sign(function: &str, mid: &str, timestamp: &str, key: &str) -> String {
    let text = format!("{function}{mid}{timestamp}{key}");
    encoding::hex_lower(&native::digest(
        native::DigestAlgorithm::Md5,
        text.as_bytes(),
    ))
}

fn harness() -> Harness<TwoPayNow> {
    Harness::new()
        .text("mid", MID)
        .secret("key", KEY)
        .text("return_url", "https://shop.example/paid")
        .with_schema_defaults()
}

fn order(method: &str, no: &str, minor: u64, currency: &str) -> OrderRequest {
    OrderRequest {
        merchant_order_no: no.into(),
        amount: Money {
            minor,
            currency: currency.into(),
        },
        description: "Tea, 250 g".into(),
        method: method.into(),
        payer: Payer {
            app_id: None,
            openid: None,
            client_ip: None,
        },
        expires_at: None,
        attach: None,
    }
}

/// The query parameters of a URL, by name.
fn params_of(url: &str) -> BTreeMap<String, String> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    form::decode(query.as_bytes()).into_iter().collect()
}

fn answer(body: Value) -> HttpResponse {
    http::response(200, "application/json", body.to_string())
}

/// The parameters of every request a scripted 2paynow received.
type Seen = Rc<RefCell<Vec<BTreeMap<String, String>>>>;

/// A 2paynow answering each `function` from `answers`, recording calls.
fn provider(
    answers: Vec<(&'static str, Value)>,
) -> (impl FnMut(&HttpRequest) -> HttpResponse + 'static, Seen) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    let f = move |req: &HttpRequest| {
        assert_eq!(req.method, HttpMethod::Get);
        assert!(req.body.is_empty());
        assert!(
            req.url.starts_with("https://www.2paynow.com/zhifu/mc_itf?"),
            "{}",
            req.url
        );
        let p = params_of(&req.url);
        let function = p["function"].clone();
        log.borrow_mut().push(p);
        answers
            .iter()
            .find(|(f, _)| *f == function)
            .map(|(_, body)| answer(body.clone()))
            .unwrap_or_else(|| panic!("unexpected function {function}"))
    };
    (f, seen)
}

fn query_answer(trade_no: &str, trans_status: &str, amount: &str, currency: &str) -> Value {
    json!({
        "status": 200, "function": "query", "timestamp": "1700000000000",
        "sign": md5_sign("query", MID, "1700000000000", KEY),
        "trade_no": trade_no, "trans_status": trans_status, "trans_time": "2023-11-14 23:13:20",
        "forex_rate": "7.8", "amount": amount, "currency": currency, "refund_amount": "0.00",
    })
}

fn err_kind(e: &AdapterError) -> &'static str {
    match e {
        AdapterError::InvalidConfig(_) => "invalid-config",
        AdapterError::InvalidRequest(_) => "invalid-request",
        AdapterError::Unsupported(_) => "unsupported",
        AdapterError::ProviderRejected(_) => "provider-rejected",
        AdapterError::MalformedResponse(_) => "malformed-response",
        AdapterError::BadSignature(_) => "bad-signature",
        AdapterError::Nondeterministic(_) => "nondeterministic",
    }
}

// ---------------------------------------------------------------- vectors

#[test]
fn the_published_vector_is_what_the_test_side_computes() {
    // providers.md §6.5 (omnipay-2paynow `completeProvider`).
    assert_eq!(
        md5_sign("precreate", MID, "1571034662245", KEY),
        "4f83e30f527ff4ed0fc9c03185f43f97"
    );
}

#[test]
fn the_published_vector_signs_a_precreate_at_that_timestamp() {
    // In seconds mode the operation's time is sent as it is, so the
    // vector's timestamp can be the operation's.
    let (respond, seen) = provider(vec![(
        "precreate",
        json!({"status": 200, "trade_no": "A1", "qr_code": "weixin://wxpay/bizpayurl?pr=x"}),
    )]);
    let mut h = harness()
        .text("timestamp_unit", "seconds")
        .timestamp(1571034662245)
        .respond(respond);
    h.unified_order(&order(WECHAT_NATIVE, "ORDER-1", 899, "EUR"))
        .unwrap();
    let p = &seen.borrow()[0];
    assert_eq!(p["timestamp"], "1571034662245");
    assert_eq!(p["sign"], "4f83e30f527ff4ed0fc9c03185f43f97");
}

#[test]
fn the_published_notification_verifies_and_names_no_order() {
    // §6.5's notification: empty merchant_trade_no and a passback without
    // payhost's order key. It verifies; there is nothing to apply.
    let query = form::encode([
        ("amount", "0.01"),
        ("amount_cny", "0.08"),
        ("currency", "EUR"),
        ("function", "precreate"),
        ("merchant_trade_no", ""),
        ("mid", MID),
        (
            "passback_parameters",
            r#"{"serial_number":"16223658963","vip_id":904425,"is_wap":0}"#,
        ),
        ("sign", "4f83e30f527ff4ed0fc9c03185f43f97"),
        ("timestamp", "1571034662245"),
        ("trade_no", "A19101413542297869"),
        ("trade_status", "TRADE_SUCCESS"),
    ]);
    let mut h = harness();
    let out = h
        .parse_notify(&inbound(HttpMethod::Get, &query, b""))
        .unwrap();
    assert!(out.events.is_empty());
    assert_eq!(out.ack.body, b"success");
    assert_eq!(out.ack.status, 200);
    let forged = query.replace("4f83e30f", "4f83e30e");
    let e = h
        .parse_notify(&inbound(HttpMethod::Get, &forged, b""))
        .unwrap_err();
    assert_eq!(err_kind(&e.error), "bad-signature", "{e:?}");
    assert!(h.sent().is_empty());
}

// ---------------------------------------------------------------- describe

#[test]
fn describe_offers_no_mini_program_and_no_refunds() {
    let info = TwoPayNow::describe();
    assert_eq!(info.name, "2paynow");
    assert_eq!(
        info.methods,
        ["wechat_native", "alipay_native", "wechat_wap", "alipay_wap"]
    );
    assert!(!info.methods.iter().any(|m| m == "wechat_mini_program"));
    let c = &info.capabilities;
    assert!(c.payment_notifications && c.close);
    assert!(!c.refund_notifications && !c.partial_refunds && !c.refund_query);
    assert!(!c.query_by_merchant_order_no);
    assert_eq!(info.egress_hosts, ["www.2paynow.com"]);
    let default = |name: &str| {
        info.config_schema
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.default.clone())
    };
    assert_eq!(default("timestamp_unit").as_deref(), Some("milliseconds"));
    assert_eq!(default("wechat_type").as_deref(), Some("1"));
    assert_eq!(default("alipay_type").as_deref(), Some("0"));
    assert_eq!(default("verify_answer_sign").as_deref(), Some("false"));
    assert!(
        info.config_schema
            .iter()
            .any(|f| f.name == "key" && f.kind == FieldKind::Secret && f.default.is_none())
    );
    assert_eq!(info.currencies, ["EUR", "CNY"]);
}

// ---------------------------------------------------------------- create

#[test]
fn a_native_order_is_precreated_with_a_millisecond_signature_and_answers_its_qr_code() {
    let (respond, seen) = provider(vec![(
        "precreate",
        json!({"status": 200, "function": "precreate", "trade_no": "A2023111500001",
               "qr_code": "weixin://wxpay/bizpayurl?pr=abc", "pic_url": "https://www.2paynow.com/qr.png"}),
    )]);
    let mut h = harness().respond(respond);
    let mut o = order(WECHAT_NATIVE, "ORDER-2", 899, "EUR");
    o.expires_at = Some(NOW + 601);
    let created = h.unified_order(&o).unwrap();
    assert_eq!(
        created.action,
        PayAction::QrCode("weixin://wxpay/bizpayurl?pr=abc".into())
    );
    assert_eq!(created.order.merchant_order_no, "ORDER-2");
    assert_eq!(
        created.order.provider_trade_no.as_deref(),
        Some("A2023111500001")
    );
    let p = &seen.borrow()[0];
    assert_eq!(p["function"], "precreate");
    assert_eq!(p["mid"], MID);
    assert_eq!(p["timestamp"], "1700000000000");
    assert_eq!(p["sign"], md5_sign("precreate", MID, "1700000000000", KEY));
    assert_eq!(p["type"], "1");
    assert_eq!(p["amount"], "8.99");
    assert_eq!(p["currency"], "EUR");
    assert_eq!(p["subject"], "Tea, 250 g");
    assert_eq!(p["notify_url"], "https://payhost.test/v1/notify/test/m1");
    // 601 s, rounded up to whole minutes.
    assert_eq!(p["it_b_pay"], "11m");
    let passback: Value = serde_json_value(&p["passback_parameters"]);
    assert_eq!(passback["merchant_order_no"], "ORDER-2");
    assert!(!p.contains_key("merchant_trade_no"));
}

fn serde_json_value(text: &str) -> Value {
    json::from_body(text.as_bytes()).unwrap()
}

#[test]
fn alipay_uses_its_configured_type_and_the_default_time_out() {
    let (respond, seen) = provider(vec![(
        "precreate",
        json!({"status": "200", "trade_no": "A3", "qr_code": "https://qr.alipay.com/x"}),
    )]);
    let mut h = harness().text("alipay_type", "7").respond(respond);
    let created = h
        .unified_order(&order(ALIPAY_NATIVE, "ORDER-3", 100, "CNY"))
        .unwrap();
    assert_eq!(
        created.action,
        PayAction::QrCode("https://qr.alipay.com/x".into())
    );
    let p = &seen.borrow()[0];
    assert_eq!(p["type"], "7");
    assert_eq!(p["it_b_pay"], "30m");
    assert_eq!(p["amount"], "1.00");
}

#[test]
fn a_wap_order_is_a_signed_redirect_and_sends_nothing() {
    let mut h = harness();
    let created = h
        .unified_order(&order(WECHAT_WAP, "ORDER-4", 2499, "EUR"))
        .unwrap();
    let PayAction::Redirect(url) = &created.action else {
        panic!("{:?}", created.action)
    };
    assert!(
        url.starts_with("http://www.2paynow.com/wap/WxpayAPI/jsapi.php?"),
        "{url}"
    );
    assert!(h.sent().is_empty());
    assert_eq!(created.order.provider_trade_no, None);
    let p = params_of(url);
    assert_eq!(p["function"], "wap_precreate");
    assert_eq!(
        p["sign"],
        md5_sign("wap_precreate", MID, "1700000000000", KEY)
    );
    assert_eq!(p["merchant_trade_no"], "ORDER-4");
    assert_eq!(p["return_url"], "https://shop.example/paid");
    assert_eq!(p["amount"], "24.99");
    // §6.2: no time-out for WAP WeChat; Alipay's page gets one.
    assert!(!p.contains_key("it_b_pay"));
    let created = h
        .unified_order(&order(ALIPAY_WAP, "ORDER-5", 2499, "EUR"))
        .unwrap();
    let PayAction::Redirect(url) = &created.action else {
        panic!()
    };
    assert!(url.starts_with("http://2paynow.com/wap/wappay/pay.html?"));
    assert_eq!(params_of(url)["it_b_pay"], "30m");
    assert_eq!(params_of(url)["type"], "0");
}

#[test]
fn a_wap_order_needs_a_return_url() {
    let mut h = Harness::<TwoPayNow>::new()
        .text("mid", MID)
        .secret("key", KEY)
        .with_schema_defaults();
    let e = h
        .unified_order(&order(ALIPAY_WAP, "ORDER-6", 100, "EUR"))
        .unwrap_err();
    assert!(
        matches!(&e, AdapterError::InvalidConfig(m) if m.contains("return_url")),
        "{e:?}"
    );
}

#[test]
fn what_2paynow_cannot_take_is_refused_before_sending() {
    let mut h = harness();
    for (o, kind, word) in [
        (
            order("wechat_mini_program", "ORDER-7", 100, "EUR"),
            "unsupported",
            "2paynow offers",
        ),
        (
            order(WECHAT_NATIVE, "ORDER-7", 100, "USD"),
            "invalid-request",
            "EUR, CNY",
        ),
        (
            order(WECHAT_NATIVE, "ORDER 7", 100, "EUR"),
            "invalid-request",
            "merchant_order_no",
        ),
        (
            order(WECHAT_NATIVE, "ORDER-7", 0, "EUR"),
            "invalid-request",
            "amount.minor",
        ),
    ] {
        let e = h.unified_order(&o).unwrap_err();
        assert_eq!(err_kind(&e), kind, "{e:?}");
        assert!(format!("{e:?}").contains(word), "{e:?}");
    }
    let mut o = order(WECHAT_NATIVE, "ORDER-7", 100, "EUR");
    o.expires_at = Some(NOW);
    assert_eq!(
        err_kind(&h.unified_order(&o).unwrap_err()),
        "invalid-request"
    );
    assert!(h.sent().is_empty());
}

#[test]
fn bad_configuration_names_the_field() {
    for (field, value) in [
        ("mid", "M-1"),
        ("timestamp_unit", "minutes"),
        ("verify_answer_sign", "yes"),
    ] {
        let mut h = harness().text(field, value);
        let e = h
            .unified_order(&order(WECHAT_NATIVE, "ORDER-8", 100, "EUR"))
            .unwrap_err();
        assert!(
            matches!(&e, AdapterError::InvalidConfig(m) if m.contains(field)),
            "{e:?}"
        );
    }
}

#[test]
fn refusals_and_outages_keep_their_retryability() {
    for (response, code, retryable) in [
        (
            answer(json!({"status": 403, "error_info": "mid not exist"})),
            "STATUS_403",
            false,
        ),
        (http::response(503, "text/html", "busy"), "HTTP_503", true),
        (answer(json!({"status": 500})), "STATUS_500", true),
    ] {
        let mut h = harness().respond(move |_| response.clone());
        let e = h
            .unified_order(&order(WECHAT_NATIVE, "ORDER-9", 100, "EUR"))
            .unwrap_err();
        let AdapterError::ProviderRejected(r) = &e else {
            panic!("{e:?}")
        };
        assert_eq!((r.code.as_str(), r.retryable), (code, retryable), "{r:?}");
        assert!(!r.message.contains(KEY));
    }
    let mut h = harness().respond(|_| http::response(200, "text/html", "<html>"));
    let e = h
        .unified_order(&order(WECHAT_NATIVE, "ORDER-9", 100, "EUR"))
        .unwrap_err();
    assert_eq!(err_kind(&e), "malformed-response");
    let mut h = harness().respond(|_| answer(json!({"status": 200, "trade_no": "A"})));
    let e = h
        .unified_order(&order(WECHAT_NATIVE, "ORDER-9", 100, "EUR"))
        .unwrap_err();
    assert!(format!("{e:?}").contains("qr_code"), "{e:?}");
}

#[test]
fn answers_are_verified_when_configured() {
    let good = query_answer("A10", "TRADE_SUCCESS", "1.00", "EUR");
    let mut bad = good.clone();
    bad["sign"] = "0".repeat(32).into();
    let q = QueryRequest {
        order: OrderRef {
            merchant_order_no: "ORDER-10".into(),
            provider_trade_no: Some("A10".into()),
            channel_transaction_id: None,
        },
    };
    let mut h = harness()
        .text("verify_answer_sign", "true")
        .respond(move |_| answer(good.clone()));
    assert_eq!(h.query(&q).unwrap().state, TradeState::Paid);
    let mut h = harness()
        .text("verify_answer_sign", "true")
        .respond(move |_| answer(bad.clone()));
    assert_eq!(err_kind(&h.query(&q).unwrap_err()), "bad-signature");
    // Off by default: the driver never checks them (§6.3).
    let mut bad = query_answer("A10", "TRADE_SUCCESS", "1.00", "EUR");
    bad["sign"] = "x".into();
    let mut h = harness().respond(move |_| answer(bad.clone()));
    assert_eq!(h.query(&q).unwrap().state, TradeState::Paid);
}

// ---------------------------------------------------------------- query

fn query_req(no: &str, trade_no: Option<&str>) -> QueryRequest {
    QueryRequest {
        order: OrderRef {
            merchant_order_no: no.into(),
            provider_trade_no: trade_no.map(String::from),
            channel_transaction_id: None,
        },
    }
}

#[test]
fn trans_status_maps_conservatively() {
    for (word, state) in [
        ("TRADE_SUCCESS", TradeState::Paid),
        ("TRADE_CLOSED", TradeState::Closed),
        ("TRADE_FAILED", TradeState::Failed),
        ("UNKNOWN", TradeState::Pending),
        ("WAIT_BUYER_PAY", TradeState::Pending),
        ("trade_success", TradeState::Pending),
    ] {
        let (respond, seen) = provider(vec![("query", query_answer("A11", word, "8.99", "EUR"))]);
        let mut h = harness().respond(respond);
        let st = h.query(&query_req("ORDER-11", Some("A11"))).unwrap();
        assert_eq!(st.state, state, "{word}");
        assert_eq!(st.provider_state, word);
        assert_eq!(
            st.amount,
            Some(Money {
                minor: 899,
                currency: "EUR".into()
            })
        );
        assert_eq!(st.order.merchant_order_no, "ORDER-11");
        assert_eq!(st.order.provider_trade_no.as_deref(), Some("A11"));
        assert_eq!(seen.borrow()[0]["trade_no"], "A11");
    }
}

#[test]
fn a_query_is_by_trade_no_and_falls_back_to_wap_query_by_merchant_number() {
    // Without a trade_no (a WAP order before its notification): wap_query.
    let mut wap = query_answer("A12", "TRADE_SUCCESS", "24.99", "EUR");
    wap["function"] = "wap_query".into();
    wap["original_trade_no"] = "4200000012".into();
    let (respond, seen) = provider(vec![("wap_query", wap.clone())]);
    let mut h = harness().respond(respond);
    let st = h.query(&query_req("ORDER-12", None)).unwrap();
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.order.provider_trade_no.as_deref(), Some("A12"));
    assert_eq!(
        st.order.channel_transaction_id.as_deref(),
        Some("4200000012")
    );
    assert_eq!(seen.borrow()[0]["merchant_trade_no"], "ORDER-12");
    assert!(!seen.borrow()[0].contains_key("trade_no"));

    // `query` does not know a WAP order's trade_no: wap_query answers.
    let (respond, seen) = provider(vec![
        (
            "query",
            json!({"status": 404, "error_info": "trade not exist"}),
        ),
        ("wap_query", wap),
    ]);
    let mut h = harness().respond(respond);
    let st = h.query(&query_req("ORDER-12", Some("A12"))).unwrap();
    assert_eq!(st.state, TradeState::Paid);
    let functions: Vec<_> = seen
        .borrow()
        .iter()
        .map(|p| p["function"].clone())
        .collect();
    assert_eq!(functions, ["query", "wap_query"]);

    // A retryable failure is not hidden behind a second question.
    let (respond, seen) = provider(vec![("query", json!({"status": 503}))]);
    let mut h = harness().respond(respond);
    let e = h.query(&query_req("ORDER-12", Some("A12"))).unwrap_err();
    assert!(
        matches!(&e, AdapterError::ProviderRejected(r) if r.retryable),
        "{e:?}"
    );
    assert_eq!(seen.borrow().len(), 1);
}

#[test]
fn an_answer_about_another_trade_is_refused() {
    let (respond, _) = provider(vec![(
        "query",
        query_answer("A99", "TRADE_SUCCESS", "1.00", "EUR"),
    )]);
    let mut h = harness().respond(respond);
    let e = h.query(&query_req("ORDER-13", Some("A13"))).unwrap_err();
    assert_eq!(err_kind(&e), "malformed-response", "{e:?}");
    let (respond, _) = provider(vec![(
        "query",
        query_answer("A13", "TRADE_SUCCESS", "1.001", "EUR"),
    )]);
    let mut h = harness().respond(respond);
    let e = h.query(&query_req("ORDER-13", Some("A13"))).unwrap_err();
    assert_eq!(err_kind(&e), "malformed-response", "{e:?}");
}

// ---------------------------------------------------------------- close

fn close_req(no: &str, trade_no: Option<&str>) -> CloseRequest {
    CloseRequest {
        order: query_req(no, trade_no).order,
    }
}

#[test]
fn close_cancels_by_trade_no() {
    let (respond, seen) = provider(vec![("cancel", json!({"status": 200, "trade_no": "A14"}))]);
    let mut h = harness().respond(respond);
    let st = h.close(&close_req("ORDER-14", Some("A14"))).unwrap();
    assert_eq!(st.state, TradeState::Closed);
    assert_eq!(seen.borrow()[0]["function"], "cancel");
    assert_eq!(seen.borrow()[0]["trade_no"], "A14");
    assert_eq!(
        seen.borrow()[0]["sign"],
        md5_sign("cancel", MID, "1700000000000", KEY)
    );
}

#[test]
fn close_of_a_wap_order_finds_its_trade_no_first() {
    let mut wap = query_answer("A15", "UNKNOWN", "1.00", "EUR");
    wap["function"] = "wap_query".into();
    let (respond, seen) = provider(vec![("wap_query", wap), ("cancel", json!({"status": 200}))]);
    let mut h = harness().respond(respond);
    let st = h.close(&close_req("ORDER-15", None)).unwrap();
    assert_eq!(st.state, TradeState::Closed);
    assert_eq!(st.order.provider_trade_no.as_deref(), Some("A15"));
    assert_eq!(seen.borrow()[1]["trade_no"], "A15");
}

#[test]
fn a_refused_cancel_answers_what_the_query_says_or_the_refusal() {
    let refused = json!({"status": 400, "error_info": "trade cannot be cancelled"});
    let (respond, _) = provider(vec![
        ("cancel", refused.clone()),
        ("query", query_answer("A16", "TRADE_SUCCESS", "5.00", "EUR")),
    ]);
    let mut h = harness().respond(respond);
    let st = h.close(&close_req("ORDER-16", Some("A16"))).unwrap();
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.amount.unwrap().minor, 500);

    let (respond, _) = provider(vec![
        ("cancel", refused),
        ("query", query_answer("A16", "UNKNOWN", "5.00", "EUR")),
    ]);
    let mut h = harness().respond(respond);
    let e = h.close(&close_req("ORDER-16", Some("A16"))).unwrap_err();
    assert!(
        matches!(&e, AdapterError::ProviderRejected(r) if r.code == "STATUS_400"),
        "{e:?}"
    );
}

// ---------------------------------------------------------------- refunds

#[test]
fn refunds_are_unsupported_and_say_why() {
    let order = query_req("ORDER-17", Some("A17")).order;
    let m = |minor| Money {
        minor,
        currency: "EUR".into(),
    };
    let mut h = harness();
    let e = h
        .refund(&RefundRequest {
            order: order.clone(),
            refund_no: "R1".into(),
            amount: m(100),
            order_amount: m(100),
            reason: None,
        })
        .unwrap_err();
    assert!(
        matches!(&e, AdapterError::Unsupported(m) if m.contains("2paynow") && m.contains("no publicly documented refund")),
        "{e:?}"
    );
    let e = h
        .refund_query(&RefundQueryRequest {
            order,
            refund_no: "R1".into(),
            provider_refund_id: None,
        })
        .unwrap_err();
    assert!(
        matches!(&e, AdapterError::Unsupported(m) if m.contains("2paynow")),
        "{e:?}"
    );
    assert!(h.sent().is_empty());
}

// ---------------------------------------------------------------- notifications

fn inbound(method: HttpMethod, query: &str, body: &[u8]) -> InboundHttp {
    InboundHttp {
        method,
        path: "/v1/notify/2paynow/m1".into(),
        query: query.into(),
        headers: vec![],
        body: body.to_vec(),
    }
}

/// A notification as 2paynow sends it, signed at `timestamp`, with
/// `changes` applied after signing (`""` removes a parameter).
fn notification(wap: bool, changes: &[(&str, &str)]) -> String {
    let timestamp = "1700000100000";
    let function = if wap { "wap_precreate" } else { "precreate" };
    let mut p: Vec<(String, String)> = [
        ("amount", "8.99"),
        ("amount_cny", "70.10"),
        ("currency", "EUR"),
        ("function", function),
        ("merchant_trade_no", if wap { "ORDER-20" } else { "" }),
        ("mid", MID),
        ("passback_parameters", r#"{"merchant_order_no":"ORDER-20"}"#),
        ("timestamp", timestamp),
        ("trade_no", "A20"),
        ("trade_status", "TRADE_SUCCESS"),
        ("original_trade_no", "4200000020"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    p.push(("sign".into(), md5_sign(function, MID, timestamp, KEY)));
    for (k, v) in changes {
        p.retain(|(name, _)| name != k);
        if !v.is_empty() {
            p.push((k.to_string(), v.to_string()));
        }
    }
    form::encode(p.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

#[test]
fn a_notification_is_confirmed_by_query_and_reports_the_query() {
    for (method, as_body) in [
        (HttpMethod::Get, false),
        (HttpMethod::Post, false),
        (HttpMethod::Post, true),
    ] {
        let (respond, seen) = provider(vec![(
            "query",
            query_answer("A20", "TRADE_SUCCESS", "8.99", "EUR"),
        )]);
        let mut h = harness().respond(respond);
        let n = notification(false, &[]);
        let req = if as_body {
            inbound(method, "", n.as_bytes())
        } else {
            inbound(method, &n, b"")
        };
        let out = h.parse_notify(&req).unwrap();
        assert_eq!(out.ack.status, 200);
        assert_eq!(out.ack.body, b"success");
        let [NotifyEvent::Payment(st)] = out.events.as_slice() else {
            panic!("{:?}", out.events)
        };
        assert_eq!(st.state, TradeState::Paid);
        assert_eq!(st.order.merchant_order_no, "ORDER-20");
        assert_eq!(st.order.provider_trade_no.as_deref(), Some("A20"));
        assert_eq!(
            st.order.channel_transaction_id.as_deref(),
            Some("4200000020")
        );
        assert_eq!(st.amount.as_ref().unwrap().minor, 899);
        let seen = seen.borrow();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0]["function"], "query");
        assert_eq!(seen[0]["trade_no"], "A20");
    }
}

#[test]
fn a_wap_notification_is_confirmed_by_wap_query_with_payhosts_number() {
    let mut wap = query_answer("A20", "TRADE_SUCCESS", "8.99", "EUR");
    wap["function"] = "wap_query".into();
    let (respond, seen) = provider(vec![("wap_query", wap)]);
    let mut h = harness().respond(respond);
    let out = h
        .parse_notify(&inbound(HttpMethod::Get, &notification(true, &[]), b""))
        .unwrap();
    let [NotifyEvent::Payment(st)] = out.events.as_slice() else {
        panic!()
    };
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.order.provider_trade_no.as_deref(), Some("A20"));
    assert_eq!(seen.borrow()[0]["merchant_trade_no"], "ORDER-20");
}

#[test]
fn a_success_notification_for_an_unpaid_order_reports_pending() {
    let (respond, _) = provider(vec![(
        "query",
        query_answer("A20", "UNKNOWN", "8.99", "EUR"),
    )]);
    let mut h = harness().respond(respond);
    let out = h
        .parse_notify(&inbound(HttpMethod::Get, &notification(false, &[]), b""))
        .unwrap();
    let [NotifyEvent::Payment(st)] = out.events.as_slice() else {
        panic!()
    };
    assert_eq!(st.state, TradeState::Pending);
    assert_eq!(st.provider_state, "UNKNOWN");
    // Unsigned and unconfirmed: the third number is not taken.
    assert_eq!(st.order.channel_transaction_id, None);
}

#[test]
fn forged_and_contradicting_notifications_are_refused() {
    // (changes, error kind, whether the query was asked)
    type Case = (Vec<(&'static str, &'static str)>, &'static str, bool);
    let cases: Vec<Case> = vec![
        (
            vec![("sign", "00000000000000000000000000000000")],
            "bad-signature",
            false,
        ),
        (vec![("sign", "")], "bad-signature", false),
        (vec![("timestamp", "1700000100001")], "bad-signature", false),
        (vec![("mid", "4002563370")], "bad-signature", false),
        (vec![("amount", "0.01")], "invalid-request", true),
        (vec![("currency", "CNY")], "invalid-request", true),
        (vec![("amount", "abc")], "invalid-request", true),
        // 2paynow answering about another trade than the one asked.
        (vec![("trade_no", "A21")], "malformed-response", true),
        (vec![("trade_no", "")], "invalid-request", false),
        (
            vec![("passback_parameters", r#"{"merchant_order_no":"ORDER 20"}"#)],
            "invalid-request",
            false,
        ),
    ];
    for (changes, kind, asked) in cases {
        let (respond, seen) = provider(vec![
            ("query", query_answer("A20", "TRADE_SUCCESS", "8.99", "EUR")),
            ("wap_query", json!({"status": 404})),
        ]);
        let mut h = harness().respond(respond);
        let e = h
            .parse_notify(&inbound(
                HttpMethod::Get,
                &notification(false, &changes),
                b"",
            ))
            .unwrap_err();
        assert_eq!(err_kind(&e.error), kind, "{changes:?}: {e:?}");
        assert_eq!(e.ack, None, "{changes:?}");
        assert_eq!(!seen.borrow().is_empty(), asked, "{changes:?}");
    }
    // A WAP notification naming another trade_no than 2paynow has.
    let mut wap = query_answer("A20", "TRADE_SUCCESS", "8.99", "EUR");
    wap["function"] = "wap_query".into();
    let (respond, _) = provider(vec![("wap_query", wap)]);
    let e = harness()
        .respond(respond)
        .parse_notify(&inbound(
            HttpMethod::Get,
            &notification(true, &[("trade_no", "A21")]),
            b"",
        ))
        .unwrap_err();
    assert!(
        matches!(&e.error, AdapterError::InvalidRequest(m) if m.contains("A21")),
        "{e:?}"
    );
    // A parameter twice: which copy counts would be a guess.
    let twice = format!("{}&amount=0.01", notification(false, &[]));
    let e = harness()
        .parse_notify(&inbound(HttpMethod::Get, &twice, b""))
        .unwrap_err();
    assert_eq!(err_kind(&e.error), "invalid-request");
    let e = harness()
        .parse_notify(&inbound(HttpMethod::Put, &notification(false, &[]), b""))
        .unwrap_err();
    assert_eq!(err_kind(&e.error), "invalid-request");
}

#[test]
fn a_notification_2paynow_does_not_know_is_an_error() {
    let (respond, _) = provider(vec![
        (
            "query",
            json!({"status": 404, "error_info": "trade not exist"}),
        ),
        (
            "wap_query",
            json!({"status": 404, "error_info": "trade not exist"}),
        ),
    ]);
    let mut h = harness().respond(respond);
    let e = h
        .parse_notify(&inbound(HttpMethod::Get, &notification(false, &[]), b""))
        .unwrap_err();
    assert!(
        matches!(&e.error, AdapterError::ProviderRejected(r) if r.code == "STATUS_404"),
        "{e:?}"
    );
}

#[test]
fn parse_notify_never_panics_on_arbitrary_input() {
    // A seeded loop: random bytes, random printable query strings, and
    // signed notifications with random values; a 2paynow answering garbage.
    let mut rng = fastrand::Rng::with_seed(20261202);
    let names = [
        "function",
        "mid",
        "timestamp",
        "sign",
        "trade_no",
        "merchant_trade_no",
        "passback_parameters",
        "amount",
        "currency",
        "trade_status",
    ];
    for i in 0..600 {
        let garbage: Vec<u8> = (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect();
        let query = match i % 3 {
            0 => String::from_utf8_lossy(&garbage).into_owned(),
            1 => (0..rng.usize(0..8))
                .map(|_| {
                    let v: String = (0..rng.usize(0..12)).map(|_| rng.char(' '..='~')).collect();
                    format!("{}={}", names[rng.usize(..names.len())], v)
                })
                .collect::<Vec<_>>()
                .join("&"),
            _ => {
                let value: String = (0..rng.usize(0..16)).map(|_| rng.char(' '..='~')).collect();
                notification(i % 2 == 0, &[(names[rng.usize(4..names.len())], &value)])
            }
        };
        let reply = garbage.clone();
        let status = [200u16, 404, 500][rng.usize(..3)];
        let mut h =
            harness().respond(move |_| http::response(status, "application/json", reply.clone()));
        let method = [HttpMethod::Get, HttpMethod::Post, HttpMethod::Delete][rng.usize(..3)];
        let result = h.parse_notify(&inbound(method, &query, &garbage));
        if let Ok(out) = result {
            // Only a verified notification naming no order passes without
            // 2paynow's confirmation.
            assert!(out.events.is_empty() || !h.sent().is_empty(), "{query}");
        }
    }
}

// ---------------------------------------------------------------- fuzzing

/// 2paynow's signature covers `function`, `mid` and `timestamp` only, so
/// the adapter confirms a notification by a query: an event comes only
/// after one was sent, and carries what the query (here always `A20`,
/// paid, 8.99 EUR) says, whatever the mutated notification claimed.
#[test]
fn fuzz_parse_notify_never_panics_and_reports_only_the_confirmed_payment() {
    let sample = notification(false, &[]);
    fuzz(
        "2paynow parse_notify",
        sample.as_bytes(),
        0x00f0_6601,
        300,
        |body| {
            let mut h = harness().respond(|req| {
                let mut confirmed = query_answer("A20", "TRADE_SUCCESS", "8.99", "EUR");
                confirmed["function"] = params_of(&req.url)["function"].clone().into();
                answer(confirmed)
            });
            let Ok(out) = h.parse_notify(&inbound(HttpMethod::Post, "", body)) else {
                return false;
            };
            for event in &out.events {
                assert!(!h.sent().is_empty(), "an event without a query");
                let NotifyEvent::Payment(st) = event else {
                    panic!("{event:?}")
                };
                assert_eq!(
                    (st.state, st.order.provider_trade_no.as_deref()),
                    (TradeState::Paid, Some("A20"))
                );
                assert_eq!(
                    st.amount,
                    Some(Money {
                        minor: 899,
                        currency: "EUR".into()
                    })
                );
            }
            !out.events.is_empty()
        },
    );
}

/// A harness answering every request with `sample`'s status and headers
/// around `body`.
fn answering(sample: &HttpResponse, body: &[u8]) -> Harness<TwoPayNow> {
    let answer = with_body(sample, body);
    harness().respond(move |_| answer.clone())
}

/// 2paynow's answers are unsigned where it matters (the optional `sign`
/// covers no value): whatever is taken still names the order and trade
/// asked about, in a real currency.
#[test]
fn fuzz_unsigned_answers_are_taken_well_formed() {
    let created = answer(
        json!({"status": 200, "function": "precreate", "trade_no": "A2023111500001",
               "qr_code": "weixin://wxpay/bizpayurl?pr=abc"}),
    );
    let o = order(WECHAT_NATIVE, "ORDER-2", 899, "EUR");
    fuzz_well_formed(
        "2paynow unified_order",
        &created.body,
        0x00f0_6602,
        300,
        |b| answering(&created, b).unified_order(&o).ok(),
        |c| {
            assert_eq!(c.order.merchant_order_no, "ORDER-2");
            assert!(
                matches!(&c.action, PayAction::QrCode(code) if !code.is_empty()),
                "{c:?}"
            );
        },
    );
    let paid = answer(query_answer("A11", "TRADE_SUCCESS", "8.99", "EUR"));
    let query = query_req("ORDER-11", Some("A11"));
    fuzz_well_formed(
        "2paynow query",
        &paid.body,
        0x00f0_6603,
        300,
        |b| answering(&paid, b).query(&query).ok(),
        |st| {
            assert_eq!(st.order.merchant_order_no, "ORDER-11");
            assert_eq!(st.order.provider_trade_no.as_deref(), Some("A11"));
            assert_known_currency(st.amount.as_ref());
        },
    );
    let cancelled = answer(json!({"status": 200, "trade_no": "A14"}));
    let close = close_req("ORDER-14", Some("A14"));
    fuzz_well_formed(
        "2paynow close",
        &cancelled.body,
        0x00f0_6604,
        300,
        |b| answering(&cancelled, b).close(&close).ok(),
        |st| {
            assert_eq!(st.order.merchant_order_no, "ORDER-14");
            assert_eq!(st.order.provider_trade_no.as_deref(), Some("A14"));
            assert_known_currency(st.amount.as_ref());
        },
    );
}
