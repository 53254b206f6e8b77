//! Every operation against scripted Supay answers. The test side signs and
//! checks with `payhost_sdk::native` directly, not with the adapter's
//! `sign` module, so the two check each other.

use super::*;
use payhost_sdk::json::json;
use payhost_sdk::native;
use payhost_sdk::testing::{
    Harness, assert_known_currency, fuzz_same_meaning, fuzz_signed_notify, fuzz_well_formed,
    with_body,
};

const MCH_ID: &str = "100001";
const KEY: &str = "TESTKEY0123456789abcdef";
const NOTIFY_URL: &str = "https://example.com/notify";
const NOW: i64 = 1_700_000_000;

fn md5_sign(pairs: &[(String, String)], keep_empty: bool) -> String {
    let it = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let a = if keep_empty {
        canonical::sorted_pairs_keep_empty(it, &["sign", "sign_type"])
    } else {
        canonical::sorted_pairs(it, &["sign", "sign_type"])
    };
    let temp = if a.is_empty() {
        format!("key={KEY}")
    } else {
        format!("{a}&key={KEY}")
    };
    encoding::hex_upper(&native::digest(
        native::DigestAlgorithm::Md5,
        temp.as_bytes(),
    ))
}

/// The operation was refused as the caller's error.
fn assert_invalid<T: std::fmt::Debug>(r: std::result::Result<T, AdapterError>) {
    assert!(matches!(r, Err(AdapterError::InvalidRequest(_))), "{r:?}");
}

fn aud(minor: u64) -> Option<Money> {
    Some(Money {
        minor,
        currency: "AUD".into(),
    })
}

fn harness() -> Harness<Supay> {
    Harness::<Supay>::new()
        .text("mch_id", MCH_ID)
        .text("store_name", "Demo")
        .secret("api_key", KEY)
        .notify_url(NOTIFY_URL)
        .with_schema_defaults()
}

fn order(method: &str) -> OrderRequest {
    OrderRequest {
        merchant_order_no: "ORDER0001".into(),
        amount: Money {
            minor: 100,
            currency: "AUD".into(),
        },
        description: "goods".into(),
        method: method.into(),
        payer: Payer {
            app_id: None,
            openid: Some("oTEST".into()),
            client_ip: None,
        },
        expires_at: None,
        attach: None,
    }
}

fn order_ref(no: &str) -> OrderRef {
    OrderRef {
        merchant_order_no: no.into(),
        provider_trade_no: None,
        channel_transaction_id: None,
    }
}

/// A request's JSON fields.
fn sent_fields(req: &HttpRequest) -> Fields {
    json::from_body(&req.body).unwrap()
}

/// A signed `status=T` answer with `data`.
fn ok(mut data: Value) -> HttpResponse {
    let pairs = wire::signed_fields(&data);
    data["sign"] = md5_sign(&pairs, false).into();
    http::response(
        200,
        "application/json",
        json::to_body(&json!({"status": "T", "message": "ok", "data": data})),
    )
}

fn jsapi_pay_info() -> Value {
    json!({"appId": "wx0000000000000001", "timeStamp": "1700000000", "nonceStr": "n1",
           "package": "prepay_id=wx1", "signType": "MD5", "paySign": "ABC"})
}

// ------------------------------------------------------------ published vectors (§7.8)

#[test]
fn gate_vector_empty_field_not_sent_is_the_request_signature() {
    let mut h = harness().respond(|_| {
        ok(json!({"result": true, "inner_trade_no": "IN1",
                  "pay_info": jsapi_pay_info().to_string()}))
    });
    h.unified_order(&order(wire::MINI_PROGRAM)).unwrap();
    let req = &h.sent()[0];
    assert_eq!(
        req.url,
        "https://gate.supaytechnology.com/api/gateway/merchant/order"
    );
    assert_eq!(
        http::header(&req.headers, "content-type"),
        Some("application/json")
    );
    let f = sent_fields(req);
    // Exactly the vector's fields, plus the signature.
    let names: Vec<&str> = f.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "call_back_url",
            "charset",
            "currency",
            "goods_name",
            "goods_price",
            "mch_id",
            "mch_order_no",
            "pay_amount",
            "pay_channel",
            "pay_way",
            "quantity",
            "recevice_id",
            "service",
            "sign",
            "sign_type",
            "store_name",
            "subOpenId",
            "timeout_express",
            "version",
        ]
    );
    assert_eq!(f["sign"], "21E08E681525D8BF9F112DE1DABFAC5D");
    assert_eq!(f["sign_type"], "MD5");
    assert!(f.values().all(|v| !v.is_empty()));
}

/// `sign::verify` run inside an operation: the order's `attach` holds the
/// fields as a query string, its description the empty-value rule.
struct Probe;
impl Adapter for Probe {
    fn describe() -> AdapterInfo {
        Supay::describe()
    }
    fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
        let key = ctx.config().secret("api_key")?;
        let fields = form::decode(req.attach.as_deref().unwrap().as_bytes());
        let rule = EmptyValues::parse(&req.description).unwrap();
        sign::verify(ctx, key, &fields, rule, "probe")?;
        Ok(OrderCreated {
            order: order_ref(""),
            action: PayAction::QrCode("verified".into()),
        })
    }
    fn query(_: &mut Ctx, _: &QueryRequest) -> Result<TradeStatus> {
        unreachable!()
    }
    fn refund(_: &mut Ctx, _: &RefundRequest) -> Result<RefundStatus> {
        unreachable!()
    }
    fn parse_notify(_: &mut Ctx, _: &InboundHttp) -> Result<NotifyOutcome> {
        unreachable!()
    }
}

const VECTOR_FIELDS: &str = "call_back_url=https://example.com/notify&charset=UTF-8&currency=AUD&goods_name=goods&goods_price=1.00&mch_id=100001&mch_order_no=ORDER0001&pay_amount=1.00&pay_channel=WXPAY&pay_way=JSAPI&quantity=1&recevice_id=100001&service=create_instant_trade&store_name=Demo&subOpenId=oTEST&timeout_express=30m&version=1.0";

fn probe(rule: &str, extra: &str) -> std::result::Result<(), AdapterError> {
    let mut o = order(wire::MINI_PROGRAM);
    o.description = rule.into();
    // Values go through form encoding: escape what needs it.
    let fields: Vec<(String, String)> = form::decode(VECTOR_FIELDS.replace(':', "%3A").as_bytes())
        .into_iter()
        .chain(form::decode(extra.as_bytes()))
        .collect();
    o.attach = Some(form::encode(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ));
    Harness::<Probe>::new()
        .secret("api_key", KEY)
        .unified_order(&o)
        .map(|_| ())
}

#[test]
fn gate_vector_with_memo_kept_verifies_under_the_keep_rules_only() {
    let kept = "memo=&sign=1A4D95B7E085B62D365F73EF8C6088CE";
    probe("keep_then_skip", kept).unwrap();
    probe("keep", kept).unwrap();
    assert!(matches!(
        probe("skip", kept),
        Err(AdapterError::BadSignature(_))
    ));
    // The same empty field signed the skipping way.
    let skipped = "memo=&sign=21E08E681525D8BF9F112DE1DABFAC5D";
    probe("keep_then_skip", skipped).unwrap();
    probe("skip", skipped).unwrap();
    assert!(matches!(
        probe("keep", skipped),
        Err(AdapterError::BadSignature(_))
    ));
    // Lower case is the same signature; sign_type is not signed.
    probe(
        "skip",
        "sign=21e08e681525d8bf9f112de1dabfac5d&sign_type=MD5",
    )
    .unwrap();
    for bad in [
        "sign=21E08E681525D8BF9F112DE1DABFAC5E",
        "sign=",
        "",
        "sign=21E08E681525D8BF9F112DE1DABFAC5D&extra=1",
    ] {
        assert!(
            matches!(
                probe("keep_then_skip", bad),
                Err(AdapterError::BadSignature(_))
            ),
            "{bad}"
        );
    }
}

// ------------------------------------------------------------ create

#[test]
fn mini_program_payment_passes_pay_info_through_with_the_provider_trade_no() {
    let mut h = harness().text("appid", "wx0000000000000001").respond(|_| {
        ok(
            json!({"result": true, "inner_trade_no": "IN1", "transaction_id": "4200001",
                      "pay_info": jsapi_pay_info().to_string()}),
        )
    });
    let mut o = order(wire::MINI_PROGRAM);
    o.payer.app_id = Some("wx0000000000000001".into());
    o.payer.client_ip = Some("203.0.113.7".into());
    o.attach = Some("cart-17".into());
    o.expires_at = Some(NOW + 600);
    let created = h.unified_order(&o).unwrap();
    assert_eq!(created.order.merchant_order_no, "ORDER0001");
    assert_eq!(created.order.provider_trade_no.as_deref(), Some("IN1"));
    assert_eq!(
        created.order.channel_transaction_id.as_deref(),
        Some("4200001")
    );
    let PayAction::MiniProgram(p) = created.action else {
        panic!("{:?}", created.action)
    };
    assert_eq!(p.package, "prepay_id=wx1");
    assert_eq!(p.pay_sign, "ABC");
    let f = sent_fields(&h.sent()[0]);
    assert_eq!(f["timeout_express"], "10m");
    assert_eq!(f["client_ip"], "203.0.113.7");
    assert_eq!(f["memo"], "cart-17");
}

#[test]
fn pay_info_as_an_object_works_and_a_foreign_or_incomplete_one_is_refused() {
    let answer =
        |info: Value| move |_: &HttpRequest| ok(json!({"result": true, "pay_info": info.clone()}));
    let mut h = harness().respond(answer(jsapi_pay_info()));
    assert!(matches!(
        h.unified_order(&order(wire::MINI_PROGRAM)).unwrap().action,
        PayAction::MiniProgram(_)
    ));
    let mut h = harness()
        .text("appid", "wx0000000000000002")
        .respond(answer(jsapi_pay_info()));
    let e = h.unified_order(&order(wire::MINI_PROGRAM)).unwrap_err();
    assert!(
        matches!(&e, AdapterError::MalformedResponse(m) if m.contains("appId")),
        "{e:?}"
    );
    let mut prepay_only = jsapi_pay_info();
    prepay_only.as_object_mut().unwrap().remove("paySign");
    let mut h = harness().respond(answer(prepay_only));
    let e = h.unified_order(&order(wire::MINI_PROGRAM)).unwrap_err();
    assert!(
        matches!(&e, AdapterError::MalformedResponse(m) if m.contains("paySign")),
        "{e:?}"
    );
}

#[test]
fn native_h5_and_cashier_methods_become_qr_and_redirect_actions() {
    for (method, pay_way, channel, info, want_qr) in [
        (
            wire::NATIVE,
            "NATIVE",
            Some("WXPAY"),
            "weixin://wxpay/bizpayurl?pr=X",
            true,
        ),
        (
            wire::H5,
            "MWEB",
            Some("WXPAY"),
            "https://wx.tenpay.com/mweb?x=1",
            false,
        ),
        (
            wire::CASHIER_H5,
            "H5",
            None,
            "https://gate.example/cashier/1",
            false,
        ),
        (
            wire::CASHIER_PC,
            "PC",
            None,
            "https://gate.example/cashier/2",
            false,
        ),
    ] {
        let mut h = harness().respond(move |_| ok(json!({"result": true, "pay_info": info})));
        let created = h.unified_order(&order(method)).unwrap();
        match (&created.action, want_qr) {
            (PayAction::QrCode(t), true) | (PayAction::Redirect(t), false) => assert_eq!(t, info),
            other => panic!("{method}: {other:?}"),
        }
        let f = sent_fields(&h.sent()[0]);
        assert_eq!(f["pay_way"], pay_way);
        assert_eq!(f.get("pay_channel").map(String::as_str), channel);
        assert!(!f.contains_key("subOpenId"), "{method}");
    }
    // A redirect must be a URL.
    let mut h = harness().respond(|_| ok(json!({"result": true, "pay_info": "not a url"})));
    assert!(matches!(
        h.unified_order(&order(wire::H5)),
        Err(AdapterError::MalformedResponse(_))
    ));
}

#[test]
fn bad_orders_are_refused_before_anything_is_sent() {
    let mut h = harness();
    let e = h.unified_order(&order("alipay")).unwrap_err();
    assert!(
        matches!(&e, AdapterError::Unsupported(m) if m.contains("wechat_mini_program")),
        "{e:?}"
    );
    let mut eur = order(wire::NATIVE);
    eur.amount.currency = "EUR".into();
    let e = h.unified_order(&eur).unwrap_err();
    assert!(
        matches!(&e, AdapterError::InvalidRequest(m) if m.contains("AUD, CNY")),
        "{e:?}"
    );
    let mut no_openid = order(wire::MINI_PROGRAM);
    no_openid.payer.openid = None;
    assert_invalid(h.unified_order(&no_openid));
    let mut zero = order(wire::NATIVE);
    zero.amount.minor = 0;
    assert_invalid(h.unified_order(&zero));
    let mut expired = order(wire::NATIVE);
    expired.expires_at = Some(NOW);
    assert_invalid(h.unified_order(&expired));
    let mut other_app = order(wire::MINI_PROGRAM);
    other_app.payer.app_id = Some("wxOTHER".into());
    let mut h = harness().text("appid", "wx0000000000000001");
    assert_invalid(h.unified_order(&other_app));
    assert!(h.sent().is_empty());
}

#[test]
fn gateway_failures_are_typed() {
    let run = |resp: HttpResponse, cfg: Option<(&str, &str)>| {
        let mut h = harness();
        if let Some((k, v)) = cfg {
            h = h.text(k, v);
        }
        h.respond(move |_| resp.clone())
            .unified_order(&order(wire::NATIVE))
            .unwrap_err()
    };
    let declined = http::response(
        200,
        "application/json",
        json::to_body(
            &json!({"status": "F", "message": "order exists", "data": {"error_code": "ORDER_EXISTS"}}),
        ),
    );
    let e = run(declined, None);
    assert!(
        matches!(&e, AdapterError::ProviderRejected(r) if r.code == "ORDER_EXISTS" && !r.retryable),
        "{e:?}"
    );
    let busy = http::response(
        200,
        "application/json",
        json::to_body(
            &json!({"status": "F", "message": "busy", "data": {"error_code": "SYSTEM_ERROR"}}),
        ),
    );
    assert!(matches!(run(busy, None), AdapterError::ProviderRejected(r) if r.retryable));
    let e = run(http::response(503, "text/plain", "down"), None);
    assert!(
        matches!(&e, AdapterError::ProviderRejected(r) if r.code == "HTTP_503" && r.retryable),
        "{e:?}"
    );
    // A signed answer whose data was changed.
    let mut forged = ok(json!({"result": true, "pay_info": "weixin://x"}));
    forged.body = String::from_utf8(forged.body)
        .unwrap()
        .replace("weixin://x", "weixin://y")
        .into_bytes();
    assert!(matches!(run(forged, None), AdapterError::BadSignature(_)));
    // Unsigned answers pass only when the configuration allows them.
    let unsigned = http::response(
        200,
        "application/json",
        json::to_body(&json!({"status": "T", "data": {"result": true, "pay_info": "weixin://x"}})),
    );
    assert!(matches!(
        run(unsigned, Some(("response_signature", "required"))),
        AdapterError::BadSignature(_)
    ));
    // Another merchant's answer, signed.
    let other = ok(json!({"mch_id": "999", "result": true, "pay_info": "weixin://x"}));
    assert!(matches!(
        run(other, None),
        AdapterError::MalformedResponse(_)
    ));
    assert!(matches!(
        run(http::response(200, "application/json", "<html>"), None),
        AdapterError::MalformedResponse(_)
    ));
}

// ------------------------------------------------------------ query, refund, refund query

#[test]
fn query_by_merchant_order_no_maps_states_and_returns_the_three_numbers() {
    for (word, state) in [
        ("TRADE_SUCCESS", TradeState::Paid),
        ("WAIT_BUYER_PAY", TradeState::Pending),
        ("SOMETHING_NEW", TradeState::Pending),
        ("TRADE_CLOSED", TradeState::Closed),
    ] {
        let mut h = harness().respond(move |_| {
            ok(
                json!({"mch_order_no": "ORDER0001", "inner_trade_no": "IN1", "trade_status": word,
                      "trade_amount": "24.99", "currency": "AUD", "transaction_id": "4200001"}),
            )
        });
        let st = h
            .query(&QueryRequest {
                order: order_ref("ORDER0001"),
            })
            .unwrap();
        assert_eq!(st.state, state, "{word}");
        assert_eq!(st.provider_state, word);
        assert_eq!(st.order.provider_trade_no.as_deref(), Some("IN1"));
        assert_eq!(st.order.channel_transaction_id.as_deref(), Some("4200001"));
        assert_eq!(st.amount, aud(2499));
        let f = sent_fields(&h.sent()[0]);
        assert_eq!(f["service"], "query_trade");
        assert_eq!(f["mch_order_no"], "ORDER0001");
        assert_eq!(f["trade_type"], "PAY");
    }
    // No currency stated: `amount_currency`.
    let mut h = harness()
        .text("amount_currency", "CNY")
        .respond(|_| ok(json!({"trade_status": "TRADE_SUCCESS", "trade_amount": "1.00"})));
    let st = h
        .query(&QueryRequest {
            order: order_ref("ORDER0001"),
        })
        .unwrap();
    assert_eq!(
        st.amount,
        Some(Money {
            minor: 100,
            currency: "CNY".into()
        })
    );
    // An answer about another order.
    let mut h = harness()
        .respond(|_| ok(json!({"mch_order_no": "OTHER", "trade_status": "TRADE_SUCCESS"})));
    assert!(matches!(
        h.query(&QueryRequest {
            order: order_ref("ORDER0001")
        }),
        Err(AdapterError::MalformedResponse(_))
    ));
}

fn refund_request(no: &str, minor: u64) -> RefundRequest {
    RefundRequest {
        order: order_ref("ORDER0001"),
        refund_no: no.into(),
        amount: Money {
            minor,
            currency: "AUD".into(),
        },
        order_amount: Money {
            minor: 2499,
            currency: "AUD".into(),
        },
        reason: None,
    }
}

#[test]
fn refunds_carry_their_own_number_and_the_original_order() {
    let mut h = harness().respond(|_| ok(json!({"result": true, "inner_trade_no": "RIN1"})));
    let r = h.refund(&refund_request("REFUND0001", 50)).unwrap();
    assert_eq!(r.state, RefundState::Pending);
    assert_eq!(r.provider_refund_id.as_deref(), Some("RIN1"));
    let f = sent_fields(&h.sent()[0]);
    assert_eq!(f["service"], "create_refund");
    assert_eq!(f["mch_order_no"], "REFUND0001");
    assert_eq!(f["orig_mch_order_no"], "ORDER0001");
    assert_eq!(f["refund_amount"], "0.50");
    assert_eq!(f["call_back_url"], NOTIFY_URL);
    let mut h = harness();
    for bad in [
        refund_request("ORDER0001", 50),
        refund_request("R2", 2500),
        refund_request("R3", 0),
    ] {
        assert_invalid(h.refund(&bad));
    }
    let mut cny = refund_request("R4", 10);
    cny.amount.currency = "CNY".into();
    assert_invalid(h.refund(&cny));
    assert!(h.sent().is_empty());
}

#[test]
fn refund_query_asks_for_the_refund_document() {
    let mut h = harness().respond(|_| {
        ok(json!({"mch_order_no": "REFUND0001", "orig_mch_order_no": "ORDER0001",
                  "inner_trade_no": "RIN1", "refund_status": "REFUND_SUCCESS", "refund_amount": "0.50"}))
    });
    let req = RefundQueryRequest {
        order: order_ref("ORDER0001"),
        refund_no: "REFUND0001".into(),
        provider_refund_id: None,
    };
    let r = h.refund_query(&req).unwrap();
    assert_eq!(r.state, RefundState::Succeeded);
    assert_eq!(r.amount, aud(50));
    assert_eq!(r.provider_refund_id.as_deref(), Some("RIN1"));
    let f = sent_fields(&h.sent()[0]);
    assert_eq!(
        (f["mch_order_no"].as_str(), f["trade_type"].as_str()),
        ("REFUND0001", "REFUND")
    );
    // Of another order: refused.
    let mut h = harness()
        .respond(|_| ok(json!({"orig_mch_order_no": "OTHER", "refund_status": "REFUND_SUCCESS"})));
    assert!(matches!(
        h.refund_query(&req),
        Err(AdapterError::MalformedResponse(_))
    ));
}

#[test]
fn close_is_unsupported() {
    assert!(!Supay::describe().capabilities.close);
    let e = harness()
        .close(&CloseRequest {
            order: order_ref("ORDER0001"),
        })
        .unwrap_err();
    assert!(matches!(e, AdapterError::Unsupported(_)));
}

// ------------------------------------------------------------ notifications

fn notification(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sig = md5_sign(&f, false);
    f.push(("sign".into(), sig));
    f.push(("sign_type".into(), "MD5".into()));
    f
}

fn paid_notification() -> Vec<(String, String)> {
    notification(&[
        ("notify_type", "trade_status_sync"),
        ("trade_status", "TRADE_SUCCESS"),
        ("outer_trade_no", "ORDER0001"),
        ("inner_trade_no", "IN1"),
        ("trade_amount", "24.99"),
        ("currency", "AUD"),
        ("transaction_id", "4200001"),
    ])
}

fn inbound(fields: &[(String, String)]) -> InboundHttp {
    InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/supay/m1".into(),
        query: String::new(),
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: form::encode(fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))).into_bytes(),
    }
}

#[test]
fn a_signed_payment_notification_is_paid_with_amount_and_acknowledged() {
    let out = harness()
        .parse_notify(&inbound(&paid_notification()))
        .unwrap();
    assert_eq!(out.ack.status, 200);
    assert_eq!(out.ack.body, b"success");
    let [NotifyEvent::Payment(st)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.order.merchant_order_no, "ORDER0001");
    assert_eq!(st.order.provider_trade_no.as_deref(), Some("IN1"));
    assert_eq!(st.order.channel_transaction_id.as_deref(), Some("4200001"));
    assert_eq!(st.amount, aud(2499));
    // The acknowledgement is configurable.
    let out = harness()
        .text("notify_ack", "SUCCESS")
        .parse_notify(&inbound(&paid_notification()))
        .unwrap();
    assert_eq!(out.ack.body, b"SUCCESS");
    // A status that is not clearly paid stays pending.
    let waiting = notification(&[
        ("notify_type", "trade_status_sync"),
        ("trade_status", "WAIT_BUYER_PAY"),
        ("outer_trade_no", "ORDER0001"),
        ("trade_amount", "24.99"),
    ]);
    let out = harness().parse_notify(&inbound(&waiting)).unwrap();
    let [NotifyEvent::Payment(st)] = out.events.as_slice() else {
        panic!()
    };
    assert_eq!(st.state, TradeState::Pending);
}

#[test]
fn a_signed_refund_notification_names_refund_and_order() {
    let f = notification(&[
        ("notify_type", "refund_status_sync"),
        ("refund_status", "REFUND_SUCCESS"),
        ("outer_trade_no", "REFUND0001"),
        ("orig_outer_trade_no", "ORDER0001"),
        ("inner_trade_no", "RIN1"),
        ("refund_amount", "0.50"),
    ]);
    let out = harness().parse_notify(&inbound(&f)).unwrap();
    let [NotifyEvent::Refund(r)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(r.state, RefundState::Succeeded);
    assert_eq!(r.refund_no, "REFUND0001");
    assert_eq!(r.order.merchant_order_no, "ORDER0001");
    assert_eq!(r.amount, aud(50));
}

#[test]
fn forged_or_malformed_notifications_are_refused_with_fail() {
    let refuse = |req: InboundHttp| {
        let e = harness().parse_notify(&req).unwrap_err();
        assert_eq!(
            e.ack.as_ref().map(|a| a.body.as_slice()),
            Some(&b"fail"[..])
        );
        e.error
    };
    let mut tampered = paid_notification();
    tampered[4].1 = "0.01".into();
    assert!(matches!(
        refuse(inbound(&tampered)),
        AdapterError::BadSignature(_)
    ));
    let mut unsigned = paid_notification();
    unsigned.retain(|(k, _)| k != "sign");
    assert!(matches!(
        refuse(inbound(&unsigned)),
        AdapterError::BadSignature(_)
    ));
    // Signed with another key.
    let mut other_key = paid_notification();
    other_key.retain(|(k, _)| k != "sign");
    let a = canonical::sorted_pairs(
        other_key.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &["sign_type"],
    );
    let sig = encoding::hex_upper(&native::digest(
        native::DigestAlgorithm::Md5,
        format!("{a}&key=another").as_bytes(),
    ));
    other_key.push(("sign".into(), sig));
    assert!(matches!(
        refuse(inbound(&other_key)),
        AdapterError::BadSignature(_)
    ));
    // A second value under a signed name.
    let mut twice = paid_notification();
    twice.push(("trade_amount".into(), "0.01".into()));
    assert!(matches!(
        refuse(inbound(&twice)),
        AdapterError::InvalidRequest(_)
    ));
    let mut get = inbound(&paid_notification());
    get.method = HttpMethod::Get;
    assert!(matches!(refuse(get), AdapterError::InvalidRequest(_)));
    for pairs in [
        vec![
            ("notify_type", "something_else"),
            ("outer_trade_no", "ORDER0001"),
        ],
        vec![
            ("notify_type", "trade_status_sync"),
            ("trade_status", "TRADE_SUCCESS"),
            ("outer_trade_no", "O1"),
        ],
        vec![
            ("notify_type", "trade_status_sync"),
            ("trade_status", "TRADE_SUCCESS"),
            ("outer_trade_no", "O1"),
            ("trade_amount", "1.001"),
        ],
        vec![
            ("notify_type", "trade_status_sync"),
            ("trade_status", "TRADE_SUCCESS"),
            ("outer_trade_no", "O1"),
            ("trade_amount", "1.00"),
            ("mch_id", "999"),
        ],
        vec![
            ("notify_type", "refund_status_sync"),
            ("refund_status", "REFUND_SUCCESS"),
            ("outer_trade_no", "R1"),
            ("refund_amount", "1.00"),
        ],
    ] {
        assert!(
            matches!(
                refuse(inbound(&notification(&pairs))),
                AdapterError::InvalidRequest(_)
            ),
            "{pairs:?}"
        );
    }
}

/// Arbitrary bodies, headers and methods never panic, and every refusal is
/// a contract error with Supay's `fail` answer.
#[test]
fn parse_notify_on_random_input_returns_a_contract_error() {
    let mut rng = fastrand::Rng::with_seed(11);
    let words: [&[u8]; 8] = [
        b"notify_type=trade_status_sync",
        b"&sign=",
        b"&trade_amount=1.00",
        b"&outer_trade_no=",
        b"%",
        b"=",
        b"&&",
        b"\xff\xfe",
    ];
    for i in 0..3000 {
        let mut body = Vec::new();
        for _ in 0..rng.usize(0..12) {
            if rng.bool() {
                body.extend_from_slice(words[rng.usize(..words.len())]);
            } else {
                body.extend((0..rng.usize(0..16)).map(|_| rng.u8(..)));
            }
        }
        let headers = (0..rng.usize(0..3))
            .map(|_| {
                let name: String = (0..rng.usize(1..8)).map(|_| rng.alphanumeric()).collect();
                (
                    name,
                    String::from_utf8_lossy(&[rng.u8(..), rng.u8(..)]).into_owned(),
                )
            })
            .collect();
        let req = InboundHttp {
            method: if i % 7 == 0 {
                HttpMethod::Get
            } else {
                HttpMethod::Post
            },
            path: "/v1/notify/supay/m1".into(),
            query: String::from_utf8_lossy(&body[..body.len().min(8)]).into_owned(),
            headers,
            body,
        };
        let e = harness().parse_notify(&req).unwrap_err();
        assert!(
            matches!(
                e.error,
                AdapterError::BadSignature(_) | AdapterError::InvalidRequest(_)
            ),
            "{e:?}"
        );
        assert_eq!(e.ack.map(|a| a.body), Some(b"fail".to_vec()));
    }
}

#[test]
fn describe_lists_methods_currencies_and_config() {
    let info = Supay::describe();
    assert_eq!(info.name, "supay");
    // The order number's limit is declared, so the host checks it first.
    let no = info
        .field_rules
        .iter()
        .find(|r| r.field == "merchant_order_no")
        .expect("merchant_order_no rule");
    assert_eq!((no.min_length, no.max_length), (1, 32));
    assert_eq!(info.methods, wire::METHODS);
    assert!(info.capabilities.refund_query && info.capabilities.query_by_merchant_order_no);
    assert_eq!(CURRENCIES, ["AUD", "CNY"]);
    for f in &info.config_schema {
        assert!(
            f.kind != FieldKind::Secret || f.default.is_none(),
            "{}",
            f.name
        );
    }
    let api_key = info
        .config_schema
        .iter()
        .find(|f| f.name == "api_key")
        .unwrap();
    assert_eq!(api_key.kind, FieldKind::Secret);
    // A bad switch is a configuration error naming the field.
    let e = harness()
        .text("verify_empty_values", "sometimes")
        .query(&QueryRequest {
            order: order_ref("ORDER0001"),
        })
        .unwrap_err();
    assert!(
        matches!(&e, AdapterError::InvalidConfig(m) if m.contains("verify_empty_values")),
        "{e:?}"
    );
}

// ------------------------------------------------------------ fuzzing

/// A harness from `h` answering every request with `sample`'s status and
/// headers around `body`.
fn answering(h: Harness<Supay>, sample: &HttpResponse, body: &[u8]) -> Harness<Supay> {
    let answer = with_body(sample, body);
    h.respond(move |_| answer.clone())
}

/// Mutations of a signed payment notification: `sign` covers every field,
/// so a change is taken only where the form encoding ignores it.
#[test]
fn fuzz_parse_notify_never_panics_nor_trusts_a_changed_notification() {
    let sample = inbound(&paid_notification());
    fuzz_signed_notify("supay parse_notify", &sample, 0x00f0_5501, 300, |req| {
        harness().parse_notify(req)
    });
}

/// The four answers the adapter reads, each with the request it answers.
fn supay_answers() -> (HttpResponse, HttpResponse, HttpResponse, HttpResponse) {
    (
        ok(
            json!({"result": true, "inner_trade_no": "IN1", "transaction_id": "4200001",
                  "pay_info": jsapi_pay_info().to_string()}),
        ),
        ok(
            json!({"mch_order_no": "ORDER0001", "inner_trade_no": "IN1", "trade_status": "TRADE_SUCCESS",
                  "trade_amount": "24.99", "currency": "AUD", "transaction_id": "4200001"}),
        ),
        ok(json!({"result": true, "inner_trade_no": "RIN1"})),
        ok(
            json!({"mch_order_no": "REFUND0001", "orig_mch_order_no": "ORDER0001",
                  "inner_trade_no": "RIN1", "refund_status": "REFUND_SUCCESS", "refund_amount": "0.50"}),
        ),
    )
}

fn refund_query_request() -> RefundQueryRequest {
    RefundQueryRequest {
        order: order_ref("ORDER0001"),
        refund_no: "REFUND0001".into(),
        provider_refund_id: None,
    }
}

/// With `response_signature = "required"` every answer is signed: a
/// mutated one is taken only with the signed meaning.
#[test]
fn fuzz_required_signed_answers_are_taken_only_as_signed() {
    let signed = || harness().text("response_signature", "required");
    let (created, paid, refunding, refunded) = supay_answers();
    fuzz_same_meaning(
        "supay unified_order",
        &created.body,
        0x00f0_5502,
        300,
        |b| {
            answering(signed(), &created, b)
                .unified_order(&order(wire::MINI_PROGRAM))
                .ok()
        },
    );
    let query = QueryRequest {
        order: order_ref("ORDER0001"),
    };
    fuzz_same_meaning("supay query", &paid.body, 0x00f0_5503, 300, |b| {
        answering(signed(), &paid, b).query(&query).ok()
    });
    fuzz_same_meaning("supay refund", &refunding.body, 0x00f0_5504, 300, |b| {
        answering(signed(), &refunding, b)
            .refund(&refund_request("REFUND0001", 50))
            .ok()
    });
    let refund_query = refund_query_request();
    fuzz_same_meaning(
        "supay refund_query",
        &refunded.body,
        0x00f0_5505,
        300,
        |b| {
            answering(signed(), &refunded, b)
                .refund_query(&refund_query)
                .ok()
        },
    );
}

/// By default (`if_present`) an answer without `sign` is taken: whatever
/// is taken still names the order or refund asked about, in minor units of
/// a real currency.
#[test]
fn fuzz_answers_signed_if_present_are_taken_well_formed() {
    let (_, paid, refunding, refunded) = supay_answers();
    let of_the_refund = |r: &RefundStatus| {
        assert_eq!(
            (r.refund_no.as_str(), r.order.merchant_order_no.as_str()),
            ("REFUND0001", "ORDER0001")
        );
        assert_known_currency(r.amount.as_ref());
    };
    let query = QueryRequest {
        order: order_ref("ORDER0001"),
    };
    fuzz_well_formed(
        "supay query (if_present)",
        &paid.body,
        0x00f0_5506,
        300,
        |b| answering(harness(), &paid, b).query(&query).ok(),
        |st| {
            assert_eq!(st.order.merchant_order_no, "ORDER0001");
            assert_known_currency(st.amount.as_ref());
        },
    );
    fuzz_well_formed(
        "supay refund (if_present)",
        &refunding.body,
        0x00f0_5507,
        300,
        |b| {
            answering(harness(), &refunding, b)
                .refund(&refund_request("REFUND0001", 50))
                .ok()
        },
        of_the_refund,
    );
    let refund_query = refund_query_request();
    fuzz_well_formed(
        "supay refund_query (if_present)",
        &refunded.body,
        0x00f0_5508,
        300,
        |b| {
            answering(harness(), &refunded, b)
                .refund_query(&refund_query)
                .ok()
        },
        of_the_refund,
    );
}
