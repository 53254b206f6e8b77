//! Every operation against scripted Acme Pay answers. The test side signs
//! and checks with `payhost_sdk::native` directly, not with the adapter's
//! `sign` module, so the two check each other.

use super::*;
use payhost_sdk::native;
use payhost_sdk::testing::Harness;

const MERCHANT_ID: &str = "M100";
const KEY: &str = "test-api-key-0123456789";

/// Lower-case hex HMAC-SHA256 of `fields` (all but `sign`) with [`KEY`].
fn hmac_hex(fields: &Fields) -> String {
    native::hmac_sha256_hex(KEY.as_bytes(), &canonical::sorted_pairs(fields, &["sign"]))
}

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A signed answer of this merchant with `pairs`.
fn answer(pairs: &[(&str, &str)]) -> HttpResponse {
    let mut f = fields(pairs);
    f.insert("merchant_id".into(), MERCHANT_ID.into());
    f.insert("sign".into(), hmac_hex(&f));
    http::response(200, "application/json", json::to_body(&f))
}

/// The fields of a request, after checking its signature.
fn signed_request(req: &HttpRequest) -> Fields {
    let f: Fields = json::from_body(&req.body).unwrap();
    assert_eq!(f["sign"], hmac_hex(&f), "request signature");
    assert_eq!(f["merchant_id"], MERCHANT_ID);
    f
}

fn harness() -> Harness<AcmePay> {
    Harness::<AcmePay>::new()
        .with_schema_defaults()
        .text("merchant_id", MERCHANT_ID)
        .secret("api_key", KEY)
}

fn eur(minor: u64) -> Money {
    Money {
        minor,
        currency: "EUR".into(),
    }
}

fn order() -> OrderRequest {
    OrderRequest {
        merchant_order_no: "ORDER-1".into(),
        amount: eur(1999),
        description: "Two coffees".into(),
        method: wire::QR_CODE.into(),
        payer: Payer {
            app_id: None,
            openid: None,
            client_ip: None,
        },
        expires_at: None,
        attach: None,
    }
}

fn order_ref() -> OrderRef {
    OrderRef {
        merchant_order_no: "ORDER-1".into(),
        provider_trade_no: Some("T1".into()),
        channel_transaction_id: None,
    }
}

fn notify(body: String) -> InboundHttp {
    InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/acme/m1".into(),
        query: String::new(),
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: body.into_bytes(),
    }
}

fn signed_form(pairs: &[(&str, &str)]) -> String {
    let mut f = fields(pairs);
    f.insert("sign".into(), hmac_hex(&f));
    form::encode(&f)
}

/// A signed notification that order ORDER-1 is paid, 19.99 EUR.
fn payment_notification() -> String {
    signed_form(&[
        ("event", "payment"),
        ("merchant_id", MERCHANT_ID),
        ("out_trade_no", "ORDER-1"),
        ("trade_no", "T1"),
        ("status", "PAID"),
        ("amount", "19.99"),
        ("currency", "EUR"),
    ])
}

#[test]
fn describe_marks_the_api_key_secret() {
    let info = AcmePay::describe();
    let key = info
        .config_schema
        .iter()
        .find(|f| f.name == "api_key")
        .unwrap();
    assert_eq!(key.kind, FieldKind::Secret);
    assert_eq!(key.default, None);
    assert_eq!(info.contract_version, CONTRACT_VERSION);
}

#[test]
fn unified_order_sends_a_signed_order_in_decimal_and_answers_its_qr_code() {
    let mut h = harness().respond(|req| {
        let f = signed_request(req);
        assert_eq!(f["amount"], "19.99");
        answer(&[
            ("result", "OK"),
            ("out_trade_no", &f["out_trade_no"]),
            ("trade_no", "T1"),
            ("qr_code", "https://qr.acme-pay.example/T1"),
        ])
    });
    let created = h.unified_order(&order()).unwrap();
    assert_eq!(
        created.action,
        PayAction::QrCode("https://qr.acme-pay.example/T1".into())
    );
    assert_eq!(created.order.provider_trade_no.as_deref(), Some("T1"));
    let sent = &h.sent()[0];
    assert_eq!(sent.url, "https://api.acme-pay.example/v1/orders");
    let f = signed_request(sent);
    assert_eq!(f["currency"], "EUR");
    assert_eq!(f["out_trade_no"], "ORDER-1");
    assert!(!String::from_utf8_lossy(&sent.body).contains(KEY));
}

#[test]
fn an_answer_with_a_wrong_signature_is_refused() {
    let mut h = harness().respond(|_| {
        let mut f = fields(&[
            ("result", "OK"),
            ("merchant_id", MERCHANT_ID),
            ("out_trade_no", "ORDER-1"),
            ("qr_code", "https://qr.acme-pay.example/T1"),
        ]);
        f.insert("sign".into(), "00".repeat(32));
        http::response(200, "application/json", json::to_body(&f))
    });
    let e = h.unified_order(&order()).unwrap_err();
    assert!(matches!(e, AdapterError::BadSignature(_)), "{e:?}");
}

#[test]
fn a_refusal_keeps_the_providers_code_and_says_whether_to_retry() {
    let mut h = harness().respond(|_| {
        answer(&[
            ("result", "ERROR"),
            ("error_code", "SYSTEM_BUSY"),
            ("error_message", "try again"),
        ])
    });
    match h.unified_order(&order()).unwrap_err() {
        AdapterError::ProviderRejected(r) => {
            assert_eq!(r.code, "SYSTEM_BUSY");
            assert!(r.retryable);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn an_unknown_method_or_currency_is_refused_before_any_request() {
    let mut h = harness();
    let mut o = order();
    o.method = "wechat_mini_program".into();
    assert!(matches!(
        h.unified_order(&o),
        Err(AdapterError::Unsupported(_))
    ));
    let mut o = order();
    o.amount.currency = "JPY".into();
    assert!(matches!(
        h.unified_order(&o),
        Err(AdapterError::InvalidRequest(_))
    ));
    assert!(h.sent().is_empty());
}

#[test]
fn query_reads_a_paid_order_in_minor_units() {
    let mut h = harness().respond(|req| {
        assert!(req.url.ends_with(wire::QUERY_ORDER));
        signed_request(req);
        answer(&[
            ("result", "OK"),
            ("out_trade_no", "ORDER-1"),
            ("trade_no", "T1"),
            ("status", "PAID"),
            ("amount", "19.99"),
            ("currency", "EUR"),
            ("paid_at", "1700000100"),
        ])
    });
    let status = h.query(&QueryRequest { order: order_ref() }).unwrap();
    assert_eq!(status.state, TradeState::Paid);
    assert_eq!(status.amount, Some(eur(1999)));
    assert_eq!(status.paid_at, Some(1_700_000_100));
}

#[test]
fn an_answer_about_another_order_is_refused() {
    let mut h = harness().respond(|_| {
        answer(&[
            ("result", "OK"),
            ("out_trade_no", "ORDER-2"),
            ("status", "PAID"),
            ("amount", "19.99"),
            ("currency", "EUR"),
        ])
    });
    let e = h.query(&QueryRequest { order: order_ref() }).unwrap_err();
    assert!(matches!(e, AdapterError::MalformedResponse(_)), "{e:?}");
}

#[test]
fn close_answers_the_closed_order() {
    let mut h = harness().respond(|req| {
        assert!(req.url.ends_with(wire::CLOSE_ORDER));
        answer(&[
            ("result", "OK"),
            ("out_trade_no", "ORDER-1"),
            ("status", "CLOSED"),
            ("amount", "19.99"),
            ("currency", "EUR"),
        ])
    });
    let status = h.close(&CloseRequest { order: order_ref() }).unwrap();
    assert_eq!(status.state, TradeState::Closed);
}

#[test]
fn refund_and_refund_query_follow_the_refund() {
    let mut statuses = vec!["SUCCESS", "PROCESSING"].into_iter();
    let mut h = harness().respond(move |req| {
        let f = signed_request(req);
        assert_eq!(f["out_refund_no"], "R1");
        answer(&[
            ("result", "OK"),
            ("out_trade_no", "ORDER-1"),
            ("out_refund_no", "R1"),
            ("refund_id", "RF1"),
            ("refund_status", statuses.next_back().unwrap()),
            ("refund_amount", "5.00"),
            ("currency", "EUR"),
        ])
    });
    let refund = h
        .refund(&RefundRequest {
            order: order_ref(),
            refund_no: "R1".into(),
            amount: eur(500),
            order_amount: eur(1999),
            reason: None,
        })
        .unwrap();
    assert_eq!(refund.state, RefundState::Pending);
    assert_eq!(refund.amount, Some(eur(500)));
    assert_eq!(signed_request(&h.sent()[0])["refund_amount"], "5.00");
    let queried = h
        .refund_query(&RefundQueryRequest {
            order: order_ref(),
            refund_no: "R1".into(),
            provider_refund_id: Some("RF1".into()),
        })
        .unwrap();
    assert_eq!(queried.state, RefundState::Succeeded);
    assert!(h.sent()[1].url.ends_with(wire::QUERY_REFUND));
}

#[test]
fn a_refund_above_the_order_amount_is_refused_before_any_request() {
    let mut h = harness();
    let e = h
        .refund(&RefundRequest {
            order: order_ref(),
            refund_no: "R1".into(),
            amount: eur(2000),
            order_amount: eur(1999),
            reason: None,
        })
        .unwrap_err();
    assert!(matches!(e, AdapterError::InvalidRequest(_)), "{e:?}");
    assert!(h.sent().is_empty());
}

#[test]
fn a_signed_payment_notification_becomes_an_event_and_is_acknowledged() {
    let mut h = harness();
    let body = payment_notification();
    let outcome = h.parse_notify(&notify(body)).unwrap();
    assert_eq!(outcome.ack.status, 200);
    assert_eq!(outcome.ack.body, b"OK");
    match &outcome.events[..] {
        [NotifyEvent::Payment(p)] => {
            assert_eq!(p.state, TradeState::Paid);
            assert_eq!(p.amount, Some(eur(1999)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_signed_refund_notification_becomes_a_refund_event() {
    let mut h = harness();
    let body = signed_form(&[
        ("event", "refund"),
        ("merchant_id", MERCHANT_ID),
        ("out_trade_no", "ORDER-1"),
        ("out_refund_no", "R1"),
        ("refund_status", "SUCCESS"),
        ("refund_amount", "5.00"),
        ("currency", "EUR"),
    ]);
    let outcome = h.parse_notify(&notify(body)).unwrap();
    match &outcome.events[..] {
        [NotifyEvent::Refund(r)] => {
            assert_eq!(r.state, RefundState::Succeeded);
            assert_eq!(r.refund_no, "R1");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_forged_notification_is_refused_with_the_fail_answer() {
    let mut h = harness();
    let body = payment_notification().replace("19.99", "0.01");
    let failure = h.parse_notify(&notify(body)).unwrap_err();
    assert!(
        matches!(failure.error, AdapterError::BadSignature(_)),
        "{:?}",
        failure.error
    );
    assert_eq!(failure.ack.unwrap().status, 400);
}

#[test]
fn parse_notify_never_panics_on_mutated_notifications() {
    let sample = payment_notification();
    let cases = payhost_sdk::testing::fuzz_cases(200);
    for input in payhost_sdk::testing::fuzz_inputs(sample.as_bytes(), 7, cases) {
        let mut h = harness();
        let mut req = notify(String::new());
        req.body = input;
        // Only the signed fields themselves (however encoded, and with the
        // signature in either hex case) are an event.
        if let Ok(outcome) = h.parse_notify(&req) {
            let signed = |body: &[u8]| {
                let mut f = wire::notification_fields(body).unwrap();
                f.remove("sign");
                f
            };
            assert_eq!(
                signed(&req.body),
                signed(sample.as_bytes()),
                "accepted a changed message"
            );
            assert_eq!(outcome.events.len(), 1);
        }
    }
}
