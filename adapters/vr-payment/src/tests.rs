//! The vectors of providers.md §8.7 and every operation against scripted
//! gateway answers. The MAC is recomputed with `payhost_sdk::native`, not
//! with the adapter's `sign` module, so the two check each other.

use super::*;
use payhost_sdk::native::{self, SecretTable};
use payhost_sdk::testing::{
    Harness, assert_known_currency, fuzz, fuzz_signed_notify, fuzz_well_formed, with_body,
};
use proptest::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

/// §8.7: bytes 0x00..0x1f, Base64.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const NOW: i64 = 1_700_000_000;

/// §8.7, published in the official SDKs' tests.
const HOOK_BODY: &str = r#"{"entityId":11,"eventId":35,"listenerEntityId":1472041829003,"listenerEntityTechnicalName":"Transaction","spaceId":1,"state":"PROCESSING","timestamp":"2023-12-19T13:43:35+0000","webhookListenerId":2}"#;
const HOOK_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEdWq7ZBGsjUzhBO3e6mzUBLpjpV3TQw1bL1rk3ocjn5C5qne7TY0OBBhiWgaPtWlvUcqASz903vtfeSTQma+SBA==";
const HOOK_KEY_ID: &str = "ab3b774e-770e-4644-9b51-885d71f973e5";
const HOOK_SIGNATURE: &str = "algorithm=SHA256withECDSA, keyId=ab3b774e-770e-4644-9b51-885d71f973e5, signature=MEYCIQCTzbMrMsOAC6T57T9kQTb1iGZVg2R7n6pY9A4ML4P31gIhAIOoav8cG8x0jpRWQztqSJIC8gXWKq+4DuENEySvmMYf";

fn native_mac(data: &str) -> String {
    let mut t = SecretTable::new();
    let k = t.insert(KEY.as_bytes().to_vec());
    let mac = t
        .hmac(
            native::DigestAlgorithm::Sha512,
            k,
            native::KeyEncoding::Base64,
            &[native::Part::Text(data)],
        )
        .unwrap();
    encoding::base64_encode(&mac)
}

fn harness(space: &str) -> Harness<VrPayment> {
    Harness::<VrPayment>::new()
        .text("space_id", space)
        .text("user_id", "512")
        .secret("authentication_key", KEY)
        .timestamp(NOW)
        .with_schema_defaults()
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    http::header(&req.headers, name).unwrap_or_else(|| panic!("no {name} on {}", req.url))
}

fn ok(body: json::Value) -> HttpResponse {
    http::response(200, "application/json", json::to_body(&body))
}

fn transaction(id: i64, state: &str, reference: &str) -> json::Value {
    json::json!({
        "id": id, "state": state, "currency": "EUR", "authorizationAmount": 24.99,
        "merchantReference": reference, "linkedSpaceId": 12345,
        "completedOn": "2023-12-19T13:43:35.123Z",
    })
}

fn refund_json(id: i64, state: &str, external_id: &str) -> json::Value {
    json::json!({
        "id": id, "state": state, "amount": 10.5, "externalId": external_id,
        "merchantReference": "VR-0001", "linkedSpaceId": 12345,
        "transaction": {"id": 77, "currency": "EUR", "merchantReference": "VR-0001"},
    })
}

fn order(method: &str, currency: &str) -> OrderRequest {
    OrderRequest {
        merchant_order_no: "VR-0001".into(),
        amount: Money {
            minor: 2499,
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
        attach: Some("cart 9".into()),
    }
}

fn order_ref(trade_no: Option<&str>) -> OrderRef {
    OrderRef {
        merchant_order_no: "VR-0001".into(),
        provider_trade_no: trade_no.map(String::from),
        channel_transaction_id: None,
    }
}

fn body_of(req: &HttpRequest) -> json::Value {
    json::from_body(&req.body).unwrap()
}

// ------------------------------------------------------------ §8.7 vectors

#[test]
fn mac_of_the_derived_vector() {
    let data = sign::mac_data("512", NOW, "POST", "/api/transaction/create?spaceId=12345");
    assert_eq!(
        data,
        "1|512|1700000000|POST|/api/transaction/create?spaceId=12345"
    );
    assert_eq!(
        native_mac(&data),
        "xPc3YhYE/s5JIGnjndl4exNTjXe2pXfy31bxjZi4gJVJLYhJ75hn18CJ6p8xG14s8ylXy9a6gXpoQpVNjTJXQA=="
    );
}

#[test]
fn the_create_request_carries_the_vector_mac_computed_by_the_host() {
    let mut h = harness("12345").respond(|req| {
        if req.url.contains("/transaction/create") {
            ok(transaction(77, "PENDING", "VR-0001"))
        } else {
            ok(json::json!(
                "https://gateway.vr-payment.de/s/12345/payment/transaction/pay/77"
            ))
        }
    });
    h.unified_order(&order("card", "EUR")).unwrap();
    let create = &h.sent()[0];
    assert_eq!(
        create.url,
        "https://gateway.vr-payment.de/api/transaction/create?spaceId=12345"
    );
    assert_eq!(header(create, "x-mac-version"), "1");
    assert_eq!(header(create, "x-mac-userid"), "512");
    assert_eq!(header(create, "x-mac-timestamp"), "1700000000");
    assert_eq!(
        header(create, "x-mac-value"),
        "xPc3YhYE/s5JIGnjndl4exNTjXe2pXfy31bxjZi4gJVJLYhJ75hn18CJ6p8xG14s8ylXy9a6gXpoQpVNjTJXQA=="
    );
    // The GET is signed over its own path and query.
    let page = &h.sent()[1];
    assert_eq!(
        header(page, "x-mac-value"),
        native_mac(
            "1|512|1700000000|GET|/api/transaction-payment-page/payment-page-url?spaceId=12345&id=77"
        )
    );
}

#[test]
fn the_published_webhook_signature_verifies_and_any_change_breaks_it() {
    let sig = WebhookSignature::parse(HOOK_SIGNATURE).unwrap();
    assert_eq!(sig.algorithm, "SHA256withECDSA");
    assert_eq!(sig.key_id, HOOK_KEY_ID);
    sign::verify_webhook(HOOK_KEY, HOOK_BODY.as_bytes(), &sig).unwrap();
    let changed = HOOK_BODY.replace("\"entityId\":11", "\"entityId\":12");
    let e = sign::verify_webhook(HOOK_KEY, changed.as_bytes(), &sig).unwrap_err();
    assert!(
        matches!(e.adapter_error(), Some(AdapterError::BadSignature(_))),
        "{e}"
    );
    let mut trailing = HOOK_BODY.as_bytes().to_vec();
    trailing.push(b'\n');
    assert!(sign::verify_webhook(HOOK_KEY, &trailing, &sig).is_err());
    let other_alg = WebhookSignature {
        algorithm: "SHA512withECDSA".into(),
        ..sig
    };
    assert!(sign::verify_webhook(HOOK_KEY, HOOK_BODY.as_bytes(), &other_alg).is_err());
}

#[test]
fn x_signature_follows_the_sdk_grammar() {
    for bad in [
        "",
        "algorithm=SHA256withECDSA,keyId=ab3b, signature=AAAA",
        "algorithm=SHA256withECDSA, keyId=AB3B, signature=AAAA",
        "algorithm=SHA256-ECDSA, keyId=ab3b, signature=AAAA",
        "algorithm=SHA256withECDSA, keyId=ab3b, signature=AA AA",
        "algorithm=SHA256withECDSA, keyId=ab3b,  signature=AAAA",
        "keyId=ab3b, algorithm=SHA256withECDSA, signature=AAAA",
    ] {
        let e = WebhookSignature::parse(bad).unwrap_err();
        assert!(
            matches!(e.adapter_error(), Some(AdapterError::BadSignature(_))),
            "{bad}"
        );
    }
}

#[test]
fn signed_paths_keep_the_api_prefix_and_query() {
    assert_eq!(
        sign::signed_path("https://gateway.vr-payment.de/api/refund/read?spaceId=1&id=2"),
        "/api/refund/read?spaceId=1&id=2"
    );
    assert_eq!(sign::signed_path("http://127.0.0.1:9/api/x"), "/api/x");
    assert_eq!(sign::signed_path("http://127.0.0.1:9"), "/");
}

// ------------------------------------------------------------ unified order

#[test]
fn an_order_is_a_transaction_and_its_payment_page() {
    let mut h = harness("12345")
        .text("method_configurations", "wechat_pay=4711, alipay=4712")
        .text("success_url", "https://shop.example/ok")
        .respond(|req| {
            if req.url.contains("/transaction/create") {
                ok(transaction(77, "PENDING", "VR-0001"))
            } else {
                ok(json::json!("https://gateway.vr-payment.de/s/12345/pay/77"))
            }
        });
    let created = h.unified_order(&order("wechat_pay", "EUR")).unwrap();
    assert_eq!(
        created.action,
        PayAction::Redirect("https://gateway.vr-payment.de/s/12345/pay/77".into())
    );
    assert_eq!(created.order, order_ref(Some("77")));
    let body = body_of(&h.sent()[0]);
    assert_eq!(body["currency"], "EUR");
    assert_eq!(body["merchantReference"], "VR-0001");
    let item = &body["lineItems"][0];
    assert_eq!(item["amountIncludingTax"], json::json!(24.99));
    assert_eq!(item["name"], "Tea, 250 g");
    assert_eq!(item["type"], "PRODUCT");
    assert_eq!(item["quantity"], 1);
    assert_eq!(
        body["allowedPaymentMethodConfigurations"],
        json::json!([4711])
    );
    assert_eq!(body["successUrl"], "https://shop.example/ok");
    assert_eq!(body["metaData"]["attach"], "cart 9");
    assert!(body.get("failedUrl").is_none());
    assert_eq!(
        h.sent()[0].headers[0],
        ("content-type".into(), "application/json".into())
    );
    assert_eq!(
        h.sent()[1].url,
        "https://gateway.vr-payment.de/api/transaction-payment-page/payment-page-url?spaceId=12345&id=77"
    );
    // A method without a configured id: the page offers the space's all.
    let mut h = harness("12345").respond(|req| {
        if req.url.contains("/transaction/create") {
            ok(transaction(78, "PENDING", "VR-0001"))
        } else {
            ok(json::json!("https://gateway.vr-payment.de/s/12345/pay/78"))
        }
    });
    h.unified_order(&order("card", "CHF")).unwrap();
    assert!(
        body_of(&h.sent()[0])
            .get("allowedPaymentMethodConfigurations")
            .is_none()
    );
}

#[test]
fn mini_program_and_unoffered_currencies_are_refused_before_any_call() {
    let mut h = harness("12345");
    let e = h
        .unified_order(&order("wechat_mini_program", "EUR"))
        .unwrap_err();
    assert!(
        matches!(&e, AdapterError::Unsupported(m) if m.contains("card, alipay, wechat_pay")),
        "{e:?}"
    );
    let e = h.unified_order(&order("card", "CNY")).unwrap_err();
    assert!(
        matches!(&e, AdapterError::InvalidRequest(m) if m.contains("EUR, CHF")),
        "{e:?}"
    );
    assert!(h.sent().is_empty());
}

#[test]
fn a_created_transaction_of_another_order_or_space_is_not_taken() {
    for answer in [
        transaction(77, "PENDING", "VR-0002"),
        json::json!({"id": 77, "state": "PENDING", "merchantReference": "VR-0001", "linkedSpaceId": 9}),
    ] {
        let mut h = harness("12345").respond(move |_| ok(answer.clone()));
        let e = h.unified_order(&order("card", "EUR")).unwrap_err();
        assert!(matches!(e, AdapterError::MalformedResponse(_)), "{e:?}");
        assert_eq!(h.sent().len(), 1);
    }
}

#[test]
fn gateway_errors_are_rejections_named_by_their_type() {
    let mut h = harness("12345").respond(|_| {
        http::response(
            442,
            "application/json",
            r#"{"id":"e1","message":"Currency not allowed","type":"CONFIGURATION_ERROR"}"#,
        )
    });
    let e = h.unified_order(&order("card", "EUR")).unwrap_err();
    let AdapterError::ProviderRejected(r) = e else {
        panic!("{e:?}")
    };
    assert_eq!(r.code, "CONFIGURATION_ERROR");
    assert!(
        r.message.contains("Currency not allowed") && !r.retryable,
        "{r:?}"
    );
    let mut h = harness("12345").respond(|_| http::response(503, "text/plain", "busy"));
    let e = h
        .query(&QueryRequest {
            order: order_ref(Some("77")),
        })
        .unwrap_err();
    assert!(
        matches!(&e, AdapterError::ProviderRejected(r) if r.code == "HTTP_503" && r.retryable),
        "{e:?}"
    );
}

#[test]
fn configuration_is_checked_by_field() {
    for (field, value) in [
        ("space_id", "12a"),
        ("user_id", ""),
        ("paid_states", "AUTHORIZED"),
        ("paid_states", "FULFILL,CONFIRMED"),
        ("method_configurations", "paypal=1"),
        ("method_configurations", "card=x"),
        ("webhook_signature", "sometimes"),
    ] {
        let mut h = harness("12345").text(field, value);
        let e = h
            .query(&QueryRequest {
                order: order_ref(Some("77")),
            })
            .unwrap_err();
        assert!(
            matches!(&e, AdapterError::InvalidConfig(m) if m.contains(field)),
            "{field}={value}: {e:?}"
        );
    }
}

// ------------------------------------------------------------ query

#[test]
fn states_map_conservatively() {
    let cases = [
        ("CREATE", TradeState::Pending),
        ("PENDING", TradeState::Pending),
        ("CONFIRMED", TradeState::Pending),
        ("PROCESSING", TradeState::Pending),
        ("AUTHORIZED", TradeState::Pending),
        ("COMPLETED", TradeState::Pending),
        ("FULFILL", TradeState::Paid),
        ("FAILED", TradeState::Failed),
        ("DECLINE", TradeState::Failed),
        ("VOIDED", TradeState::Closed),
        ("SOMETHING_NEW", TradeState::Pending),
    ];
    for (word, want) in cases {
        let mut h = harness("12345").respond(move |_| ok(transaction(77, word, "VR-0001")));
        let st = h
            .query(&QueryRequest {
                order: order_ref(Some("77")),
            })
            .unwrap();
        assert_eq!(st.state, want, "{word}");
        assert_eq!(st.provider_state, word);
        assert_eq!(
            st.amount,
            Some(Money {
                minor: 2499,
                currency: "EUR".into()
            })
        );
        assert_eq!(st.order, order_ref(Some("77")));
        assert_eq!(st.paid_at.is_some(), want == TradeState::Paid, "{word}");
    }
    // A space without a post-completion check may count COMPLETED as paid.
    let mut h = harness("12345")
        .text("paid_states", "FULFILL,COMPLETED")
        .respond(|_| ok(transaction(77, "COMPLETED", "VR-0001")));
    let st = h
        .query(&QueryRequest {
            order: order_ref(Some("77")),
        })
        .unwrap();
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(
        h.sent()[0].url,
        "https://gateway.vr-payment.de/api/transaction/read?spaceId=12345&id=77"
    );
    assert_eq!(h.sent()[0].method, HttpMethod::Get);
}

#[test]
fn query_needs_the_transaction_id_and_checks_the_answer() {
    let mut h = harness("12345");
    for no in [None, Some(""), Some("VR-0001"), Some("-4")] {
        let e = h
            .query(&QueryRequest {
                order: order_ref(no),
            })
            .unwrap_err();
        assert!(
            matches!(&e, AdapterError::InvalidRequest(m) if m.contains("provider_trade_no")),
            "{e:?}"
        );
    }
    assert!(h.sent().is_empty());
    for answer in [
        transaction(78, "FULFILL", "VR-0001"),
        transaction(77, "FULFILL", "VR-0009"),
        json::json!({"id": 77, "state": "FULFILL", "currency": "EUR", "authorizationAmount": 24.999, "merchantReference": "VR-0001"}),
        json::json!({"id": 77, "state": "FULFILL", "currency": "EUR", "authorizationAmount": "24.99", "merchantReference": "VR-0001"}),
    ] {
        let mut h = harness("12345").respond(move |_| ok(answer.clone()));
        let e = h
            .query(&QueryRequest {
                order: order_ref(Some("77")),
            })
            .unwrap_err();
        assert!(matches!(e, AdapterError::MalformedResponse(_)), "{e:?}");
    }
}

#[test]
fn close_is_unsupported_as_the_gateway_documents_no_cancel() {
    assert!(!VrPayment::describe().capabilities.close);
    let mut h = harness("12345");
    let e = h
        .close(&CloseRequest {
            order: order_ref(Some("77")),
        })
        .unwrap_err();
    assert!(matches!(e, AdapterError::Unsupported(_)), "{e:?}");
}

#[test]
fn describe_declares_poll_only_settlement() {
    let info = VrPayment::describe();
    assert_eq!(info.name, "vr-payment");
    // The order number's limit is declared, so the host checks it first.
    let no = info
        .field_rules
        .iter()
        .find(|r| r.field == "merchant_order_no")
        .expect("merchant_order_no rule");
    assert_eq!((no.min_length, no.max_length), (1, 100));
    assert_eq!(info.methods, ["card", "alipay", "wechat_pay"]);
    assert_eq!(info.currencies, ["EUR", "CHF"]);
    let c = info.capabilities;
    assert!(!c.payment_notifications && !c.refund_notifications);
    assert!(!c.query_by_merchant_order_no && c.partial_refunds && c.refund_query);
    assert!(
        info.config_schema
            .iter()
            .any(|f| f.name == "authentication_key"
                && f.kind == FieldKind::Secret
                && f.default.is_none())
    );
}

// ------------------------------------------------------------ refunds

fn refund_request(amount: u64, currency: &str) -> RefundRequest {
    RefundRequest {
        order: order_ref(Some("77")),
        refund_no: "VR-R1".into(),
        amount: Money {
            minor: amount,
            currency: currency.into(),
        },
        order_amount: Money {
            minor: 2499,
            currency: "EUR".into(),
        },
        reason: None,
    }
}

#[test]
fn a_refund_names_its_external_id_and_maps_its_state() {
    for (word, want) in [
        ("CREATE", RefundState::Pending),
        ("SCHEDULED", RefundState::Pending),
        ("PENDING", RefundState::Pending),
        ("MANUAL_CHECK", RefundState::Pending),
        ("SUCCESSFUL", RefundState::Succeeded),
        ("FAILED", RefundState::Failed),
    ] {
        let mut h = harness("12345").respond(move |_| ok(refund_json(901, word, "VR-R1")));
        let r = h.refund(&refund_request(1050, "EUR")).unwrap();
        assert_eq!(r.state, want, "{word}");
        assert_eq!(r.provider_refund_id.as_deref(), Some("901"));
        assert_eq!(r.refund_no, "VR-R1");
        assert_eq!(r.order, order_ref(Some("77")));
        assert_eq!(
            r.amount,
            Some(Money {
                minor: 1050,
                currency: "EUR".into()
            })
        );
        let sent = &h.sent()[0];
        assert_eq!(
            sent.url,
            "https://gateway.vr-payment.de/api/refund/refund?spaceId=12345"
        );
        let body = body_of(sent);
        assert_eq!(body["transaction"], 77);
        assert_eq!(body["externalId"], "VR-R1");
        assert_eq!(body["amount"], json::json!(10.5));
        assert_eq!(body["type"], "MERCHANT_INITIATED_ONLINE");
        assert_eq!(body["merchantReference"], "VR-0001");
    }
}

#[test]
fn refunds_in_another_currency_or_above_the_order_are_refused() {
    let mut h = harness("12345");
    assert!(matches!(
        h.refund(&refund_request(100, "CHF")).unwrap_err(),
        AdapterError::InvalidRequest(_)
    ));
    assert!(matches!(
        h.refund(&refund_request(2500, "EUR")).unwrap_err(),
        AdapterError::InvalidRequest(_)
    ));
    let mut no_tx = refund_request(100, "EUR");
    no_tx.order.provider_trade_no = None;
    assert!(matches!(
        h.refund(&no_tx).unwrap_err(),
        AdapterError::InvalidRequest(_)
    ));
    assert!(h.sent().is_empty());
    // An answer for another refund, or of another transaction, is not taken.
    for answer in [refund_json(901, "PENDING", "VR-R2"), {
        let mut r = refund_json(901, "PENDING", "VR-R1");
        r["transaction"]["id"] = 78.into();
        r
    }] {
        let mut h = harness("12345").respond(move |_| ok(answer.clone()));
        let e = h.refund(&refund_request(1050, "EUR")).unwrap_err();
        assert!(matches!(e, AdapterError::MalformedResponse(_)), "{e:?}");
    }
}

#[test]
fn refund_query_reads_by_id_or_searches_the_external_id() {
    let by_id = RefundQueryRequest {
        order: order_ref(Some("77")),
        refund_no: "VR-R1".into(),
        provider_refund_id: Some("901".into()),
    };
    let mut h = harness("12345").respond(|_| ok(refund_json(901, "SUCCESSFUL", "VR-R1")));
    let r = h.refund_query(&by_id).unwrap();
    assert_eq!(r.state, RefundState::Succeeded);
    assert_eq!(
        h.sent()[0].url,
        "https://gateway.vr-payment.de/api/refund/read?spaceId=12345&id=901"
    );
    let by_external = RefundQueryRequest {
        provider_refund_id: None,
        ..by_id.clone()
    };
    let mut h = harness("12345").respond(|_| {
        ok(json::json!([
            refund_json(900, "FAILED", "OTHER"),
            refund_json(901, "PENDING", "VR-R1")
        ]))
    });
    let r = h.refund_query(&by_external).unwrap();
    assert_eq!(
        (r.state, r.provider_refund_id.as_deref()),
        (RefundState::Pending, Some("901"))
    );
    let search = &h.sent()[0];
    assert_eq!(
        search.url,
        "https://gateway.vr-payment.de/api/refund/search?spaceId=12345"
    );
    assert_eq!(search.method, HttpMethod::Post);
    let filter = &body_of(search)["filter"];
    assert_eq!(
        (&filter["fieldName"], &filter["operator"], &filter["value"]),
        (
            &json::json!("externalId"),
            &json::json!("EQUALS"),
            &json::json!("VR-R1")
        )
    );
    // Never taken by the gateway: nothing was refunded.
    let mut h = harness("12345").respond(|_| ok(json::json!([])));
    let r = h.refund_query(&by_external).unwrap();
    assert_eq!(
        (r.state, r.provider_state.as_str()),
        (RefundState::Failed, "NOT_FOUND")
    );
}

// ------------------------------------------------------------ webhooks

fn hook(body: &str, signature: Option<&str>) -> InboundHttp {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(s) = signature {
        headers.push(("X-Signature".into(), s.into()));
    }
    InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/vr-payment/shop-vr".into(),
        query: String::new(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

/// The gateway of space 1 behind the published webhook: its key, and
/// transaction 11 (in FULFILL) or refund 11.
fn space_one() -> (Harness<VrPayment>, Rc<RefCell<Vec<String>>>) {
    let urls = Rc::new(RefCell::new(Vec::new()));
    let seen = urls.clone();
    let h = harness("1").respond(move |req| {
        seen.borrow_mut().push(req.url.clone());
        let path = sign::signed_path(&req.url);
        if path == format!("/api/webhook-encryption/read?id={HOOK_KEY_ID}") {
            ok(json::json!({"id": HOOK_KEY_ID, "publicKey": HOOK_KEY, "state": "ACTIVE"}))
        } else if path == "/api/transaction/read?spaceId=1&id=11" {
            let mut t = transaction(11, "FULFILL", "VR-0011");
            t["linkedSpaceId"] = 1.into();
            ok(t)
        } else if path == "/api/refund/read?spaceId=1&id=11" {
            let mut r = refund_json(11, "SUCCESSFUL", "VR-R11");
            r["linkedSpaceId"] = 1.into();
            r["transaction"]["merchantReference"] = "VR-0011".into();
            ok(r)
        } else {
            http::response(404, "application/json", r#"{"message":"not found"}"#)
        }
    });
    (h, urls)
}

#[test]
fn the_published_webhook_is_verified_and_its_transaction_read() {
    let (mut h, urls) = space_one();
    let out = h
        .parse_notify(&hook(HOOK_BODY, Some(HOOK_SIGNATURE)))
        .unwrap();
    assert_eq!(out.ack.status, 200);
    let [NotifyEvent::Payment(st)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    // The payload said PROCESSING; the read says FULFILL, and wins.
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.order.merchant_order_no, "VR-0011");
    assert_eq!(st.order.provider_trade_no.as_deref(), Some("11"));
    assert_eq!(st.amount.as_ref().map(|m| m.minor), Some(2499));
    assert_eq!(urls.borrow().len(), 2);
    assert!(urls.borrow()[0].contains("webhook-encryption/read"));
}

#[test]
fn a_tampered_or_unknown_key_webhook_is_refused_before_anything_is_read() {
    let (mut h, urls) = space_one();
    let tampered = HOOK_BODY.replace("\"spaceId\":1", "\"spaceId\":1 ");
    let f = h
        .parse_notify(&hook(&tampered, Some(HOOK_SIGNATURE)))
        .unwrap_err();
    assert!(matches!(f.error, AdapterError::BadSignature(_)), "{f:?}");
    assert_eq!(urls.borrow().len(), 1, "only the key was read");
    let other_key = HOOK_SIGNATURE.replace(HOOK_KEY_ID, "00000000-0000-0000-0000-000000000000");
    let f = h
        .parse_notify(&hook(HOOK_BODY, Some(&other_key)))
        .unwrap_err();
    assert!(
        matches!(&f.error, AdapterError::BadSignature(m) if m.contains("does not know")),
        "{f:?}"
    );
    assert!(
        urls.borrow()
            .iter()
            .all(|u| !u.contains("transaction/read"))
    );
}

#[test]
fn an_unsigned_webhook_is_a_hint_unless_signatures_are_required() {
    let (mut h, _) = space_one();
    let out = h.parse_notify(&hook(HOOK_BODY, None)).unwrap();
    assert_eq!(out.events.len(), 1);
    let (h, urls) = space_one();
    let mut h = h.text("webhook_signature", "required");
    let f = h.parse_notify(&hook(HOOK_BODY, None)).unwrap_err();
    assert!(matches!(f.error, AdapterError::BadSignature(_)), "{f:?}");
    assert!(urls.borrow().is_empty());
}

#[test]
fn webhooks_of_another_space_unknown_entities_and_other_kinds() {
    let (mut h, _) = space_one();
    let other_space = HOOK_BODY.replace("\"spaceId\":1", "\"spaceId\":2");
    let f = h.parse_notify(&hook(&other_space, None)).unwrap_err();
    assert!(
        matches!(&f.error, AdapterError::InvalidRequest(m) if m.contains("space 2")),
        "{f:?}"
    );
    let unknown = HOOK_BODY.replace("\"entityId\":11", "\"entityId\":12");
    let f = h.parse_notify(&hook(&unknown, None)).unwrap_err();
    assert!(
        matches!(&f.error, AdapterError::InvalidRequest(m) if m.contains("does not know")),
        "{f:?}"
    );
    let refund = HOOK_BODY.replace("\"Transaction\"", "\"Refund\"");
    let out = h.parse_notify(&hook(&refund, None)).unwrap();
    let [NotifyEvent::Refund(r)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(
        (r.refund_no.as_str(), r.state),
        ("VR-R11", RefundState::Succeeded)
    );
    assert_eq!(r.order.merchant_order_no, "VR-0011");
    assert_eq!(r.amount.as_ref().map(|m| m.minor), Some(1050));
    let invoice = HOOK_BODY.replace("\"Transaction\"", "\"TransactionInvoice\"");
    let out = h.parse_notify(&hook(&invoice, None)).unwrap();
    assert!(out.events.is_empty());
    assert_eq!(out.ack.status, 200);
    let mut get = hook(HOOK_BODY, None);
    get.method = HttpMethod::Get;
    assert!(h.parse_notify(&get).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever arrives, parse-notify answers the contract's error and never panics.
    #[test]
    fn parse_notify_on_arbitrary_input_is_an_error(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        signature in proptest::option::of("[ -~]{0,160}"),
        names in proptest::collection::vec(("[a-zA-Z-]{1,16}", "[ -~]{0,64}"), 0..4),
        get in any::<bool>(),
    ) {
        let mut h = harness("12345").respond(|_| http::response(404, "text/plain", "no"));
        let mut req = hook("", signature.as_deref());
        req.body = body;
        req.headers.extend(names);
        if get {
            req.method = HttpMethod::Get;
        }
        prop_assert!(h.parse_notify(&req).is_err());
    }

    /// Webhook-shaped bodies with arbitrary fields, signed with garbage.
    #[test]
    fn webhook_shaped_bodies_with_a_bad_signature_are_refused(
        entity in any::<i64>(), space in any::<i64>(), name in "[A-Za-z]{0,20}",
        sig in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let body = format!(r#"{{"entityId":{entity},"listenerEntityTechnicalName":"{name}","spaceId":{space}}}"#);
        let header = format!("algorithm=SHA256withECDSA, keyId={HOOK_KEY_ID}, signature={}", encoding::base64_encode(&sig));
        let (mut h, _) = space_one();
        let f = h.parse_notify(&hook(&body, Some(&header))).unwrap_err();
        prop_assert!(matches!(f.error, AdapterError::BadSignature(_)), "{:?}", f);
    }
}

#[test]
fn amounts_are_exact_in_both_directions() {
    let m = |minor, c: &str| Money {
        minor,
        currency: c.into(),
    };
    assert_eq!(wire::amount(&m(2499, "EUR")).unwrap(), json::json!(24.99));
    assert_eq!(wire::amount(&m(1, "EUR")).unwrap(), json::json!(0.01));
    assert_eq!(
        wire::amount(&m(100_000, "CHF")).unwrap(),
        json::json!(1000.0)
    );
    assert!(wire::amount(&m(u64::MAX, "EUR")).is_err());
    for (v, minor) in [
        (json::json!(24.99), 2499),
        (json::json!(1000), 100_000),
        (json::json!(0.1), 10),
    ] {
        assert_eq!(wire::money_of(&v, "EUR", "t").unwrap(), m(minor, "EUR"));
    }
    for bad in [
        json::json!(24.999),
        json::json!(-1),
        json::json!("1"),
        json::json!(1e300),
    ] {
        assert!(wire::money_of(&bad, "EUR", "t").is_err(), "{bad}");
    }
    // Every cent survives the double the gateway keeps.
    for minor in (0..100_000u64).step_by(7) {
        let v = wire::amount(&m(minor, "EUR")).unwrap();
        assert_eq!(wire::money_of(&v, "EUR", "t").unwrap().minor, minor);
    }
}

// ------------------------------------------------------------ fuzzing

/// What space one's gateway reads for the published webhook: the only
/// events a webhook may yield, whatever its payload claimed.
fn space_one_events() -> Vec<Vec<NotifyEvent>> {
    let payment = space_one().0.parse_notify(&hook(HOOK_BODY, None)).unwrap();
    let refund_hook = HOOK_BODY.replace("\"Transaction\"", "\"Refund\"");
    let refund = space_one()
        .0
        .parse_notify(&hook(&refund_hook, None))
        .unwrap();
    vec![payment.events, refund.events]
}

/// `req` parsed by space one's gateway; any event must come from a read
/// and be one of `confirmed`.
fn parsed_by_space_one(
    req: &InboundHttp,
    confirmed: &[Vec<NotifyEvent>],
) -> Result<NotifyOutcome, NotifyFailure> {
    let (mut h, urls) = space_one();
    let out = h.parse_notify(req);
    if let Ok(out) = &out
        && !out.events.is_empty()
    {
        assert!(
            urls.borrow().iter().any(|u| u.contains("/read?spaceId=")),
            "an event without a read"
        );
        assert!(confirmed.contains(&out.events), "{:?}", out.events);
    }
    out
}

/// Mutations of the published, signed webhook: the ECDSA signature covers
/// the body byte for byte, so only the sample is taken, and only with what
/// the gateway's read said.
#[test]
fn fuzz_parse_notify_never_panics_nor_trusts_a_changed_signed_webhook() {
    let sample = hook(HOOK_BODY, Some(HOOK_SIGNATURE));
    let confirmed = space_one_events();
    fuzz_signed_notify(
        "vr-payment parse_notify (signed)",
        &sample,
        0x00f0_7701,
        300,
        |req| parsed_by_space_one(req, &confirmed),
    );
}

/// An unsigned webhook is only a hint: a mutated one may name another
/// entity, but an event comes only from the gateway's read of it.
#[test]
fn fuzz_parse_notify_takes_an_unsigned_webhook_only_as_a_hint() {
    let confirmed = space_one_events();
    fuzz(
        "vr-payment parse_notify (unsigned)",
        HOOK_BODY.as_bytes(),
        0x00f0_7702,
        300,
        |body| {
            let mut req = hook("", None);
            req.body = body.to_vec();
            parsed_by_space_one(&req, &confirmed).is_ok_and(|out| !out.events.is_empty())
        },
    );
}

/// A harness answering `mutated_path` requests with `sample`'s status and
/// headers around `body`, and every other request as `others` does.
fn answering(
    mutated_path: &'static str,
    sample: &HttpResponse,
    body: &[u8],
    others: fn(&HttpRequest) -> HttpResponse,
) -> Harness<VrPayment> {
    let answer = with_body(sample, body);
    harness("12345").respond(move |req| {
        if req.url.contains(mutated_path) {
            answer.clone()
        } else {
            others(req)
        }
    })
}

fn page_url(_: &HttpRequest) -> HttpResponse {
    ok(json::json!("https://gateway.vr-payment.de/s/12345/pay/77"))
}

fn created_transaction(_: &HttpRequest) -> HttpResponse {
    ok(transaction(77, "PENDING", "VR-0001"))
}

/// The gateway's answers are unsigned (TLS only): whatever is taken still
/// names the order, transaction and refund asked about, in a real currency.
#[test]
fn fuzz_unsigned_answers_are_taken_well_formed() {
    let created = created_transaction(&http::get(""));
    // The gateway numbers a new transaction as it likes; the adapter
    // checks the reference and space it names.
    let ordered = |c: &OrderCreated| {
        assert_eq!(c.order.merchant_order_no, "VR-0001");
        assert!(
            c.order
                .provider_trade_no
                .as_deref()
                .is_some_and(|t| t.parse::<u64>().is_ok()),
            "{c:?}"
        );
        assert!(
            matches!(&c.action, PayAction::Redirect(u) if u.starts_with("http")),
            "{c:?}"
        );
    };
    fuzz_well_formed(
        "vr-payment unified_order (transaction/create)",
        &created.body,
        0x00f0_7703,
        300,
        |b| {
            answering("/transaction/create", &created, b, page_url)
                .unified_order(&order("card", "EUR"))
                .ok()
        },
        ordered,
    );
    let page = page_url(&http::get(""));
    fuzz_well_formed(
        "vr-payment unified_order (payment-page-url)",
        &page.body,
        0x00f0_7704,
        300,
        |b| {
            answering("/payment-page-url", &page, b, created_transaction)
                .unified_order(&order("card", "EUR"))
                .ok()
        },
        ordered,
    );
    let paid = ok(transaction(77, "FULFILL", "VR-0001"));
    let query = QueryRequest {
        order: order_ref(Some("77")),
    };
    fuzz_well_formed(
        "vr-payment query",
        &paid.body,
        0x00f0_7705,
        300,
        |b| {
            answering("/transaction/read", &paid, b, page_url)
                .query(&query)
                .ok()
        },
        |st| {
            assert_eq!(st.order, order_ref(Some("77")));
            assert_known_currency(st.amount.as_ref());
        },
    );
    let refunded = |r: &RefundStatus| {
        assert_eq!(
            (r.refund_no.as_str(), &r.order),
            ("VR-R1", &order_ref(Some("77")))
        );
        assert_known_currency(r.amount.as_ref());
    };
    let refunding = ok(refund_json(901, "PENDING", "VR-R1"));
    fuzz_well_formed(
        "vr-payment refund",
        &refunding.body,
        0x00f0_7706,
        300,
        |b| {
            answering("/refund/refund", &refunding, b, page_url)
                .refund(&refund_request(1050, "EUR"))
                .ok()
        },
        refunded,
    );
    let found = ok(json::json!([
        refund_json(900, "FAILED", "OTHER"),
        refund_json(901, "SUCCESSFUL", "VR-R1")
    ]));
    let by_external = RefundQueryRequest {
        order: order_ref(Some("77")),
        refund_no: "VR-R1".into(),
        provider_refund_id: None,
    };
    fuzz_well_formed(
        "vr-payment refund_query",
        &found.body,
        0x00f0_7707,
        300,
        |b| {
            answering("/refund/search", &found, b, page_url)
                .refund_query(&by_external)
                .ok()
        },
        refunded,
    );
}
