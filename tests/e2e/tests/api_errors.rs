//! Every error status of the payment front, over real HTTP on loopback
//! (the 503 of a store that is down: in process, through the same router),
//! with the one problem shape (RFC 9457): 400, 401, 404, 405, 409, 422,
//! 429, 502, 503; idempotency under concurrency; `/openapi.json`,
//! `/metrics`, `/healthz` and `/readyz`.

use payhost::api::AppState;
use payhost::store::{
    Claimed, Contract, DailyCap, Deduction, IdempotencyBegin, Inserted, KeyClaim, KeyCompletion,
    NewEvent, NotificationRecord, Order, OrderState, OutboxEvent, PrunePolicy, PruneReport, Refund,
    Store, StoreError,
};
use payhost_e2e::front::{Front, MERCHANT_KEY, Options, order_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const UNIFIED_ORDER: &str = "/pay/unifiedorder";
const REFUND: &str = "/secapi/pay/refund";

/// Checks a problem response: status, content type, every member of the
/// problem document, and `request_id` equal to the `x-request-id` header.
/// Returns the document.
async fn problem(resp: reqwest::Response, status: StatusCode, code: &str) -> Value {
    let got = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "expected {status} `{code}`, got: {text}");
    assert_eq!(
        headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/problem+json"),
        "{text}"
    );
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    check_problem(&doc, status.as_u16(), code);
    let request_id = headers
        .get("x-request-id")
        .expect("an x-request-id header")
        .to_str()
        .unwrap();
    assert_eq!(doc["request_id"], request_id, "{doc}");
    doc
}

fn check_problem(doc: &Value, status: u16, code: &str) {
    assert_eq!(doc["code"], code, "{doc}");
    assert_eq!(doc["status"], status, "{doc}");
    assert_eq!(doc["type"], format!("urn:payhost:problem:{code}"), "{doc}");
    for member in ["title", "detail", "request_id"] {
        assert!(
            doc[member].as_str().is_some_and(|s| !s.is_empty()),
            "`{member}` missing or empty in {doc}"
        );
    }
}

/// How many requests to `path` reached the simulator.
fn sim_calls(f: &Front, path: &str) -> usize {
    f.sim.requests().iter().filter(|r| r.path == path).count()
}

/// `POST /v1/payments` with a raw body.
async fn post_raw(f: &Front, body: &str) -> reqwest::Response {
    f.as_merchant(Method::POST, "/v1/payments")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn post_json(f: &Front, path: &str, body: &Value) -> reqwest::Response {
    f.as_merchant(Method::POST, path)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn paid_order(f: &Front, no: &str, amount: i64) {
    assert_eq!(f.create(no, amount).await.status(), StatusCode::CREATED);
    let answers = f.sim.notify(no, Default::default()).await.unwrap();
    assert!(answers[0].acknowledged(), "{answers:?}");
    assert_eq!(
        f.get_json(&format!("/v1/payments/{no}")).await["state"],
        "paid"
    );
}

#[tokio::test]
async fn invalid_creates_are_400_and_reach_no_provider() {
    let f = Front::start("err-400", Options::default()).await;

    // Malformed JSON: the parser's own words, with where.
    let doc = problem(
        post_raw(&f, r#"{"merchant_order_no": "BAD-0001", "amount": "#).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    let detail = doc["detail"].as_str().unwrap();
    assert!(
        detail.contains("invalid JSON") && detail.contains("line 1"),
        "{doc}"
    );
    let doc = problem(
        post_raw(&f, "").await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert!(doc["detail"].as_str().unwrap().contains("empty"), "{doc}");

    // An unknown field, top level and nested, is named.
    let mut body = order_body("BAD-0002", 100);
    body["amout"] = json!(100);
    let doc = problem(
        post_json(&f, "/v1/payments", &body).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `amout`"),
        "{doc}"
    );
    let mut body = order_body("BAD-0003", 100);
    body["payer"]["open_id"] = json!("x");
    let doc = problem(
        post_json(&f, "/v1/payments", &body).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `open_id`"),
        "{doc}"
    );

    // A missing field is named.
    let mut body = order_body("BAD-0004", 100);
    body.as_object_mut().unwrap().remove("currency");
    let doc = problem(
        post_json(&f, "/v1/payments", &body).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("missing field `currency`"),
        "{doc}"
    );

    // Values the API refuses itself, each naming the field.
    let cases: Vec<(Value, &str)> = vec![
        (order_body("BAD-0005", 0), "`amount`"),
        (order_body("BAD-0006", -100), "`amount`"),
        (
            {
                let mut b = order_body("BAD-0007", 100);
                b["currency"] = json!("USD");
                b
            },
            "`USD`",
        ),
        (
            {
                let mut b = order_body("BAD-0008", 100);
                b["method"] = json!("alipay_app");
                b
            },
            "`alipay_app`",
        ),
        (order_body("bad order no!", 100), "merchant_order_no"),
        (order_body("", 100), "merchant_order_no"),
        (order_body(&"X".repeat(33), 100), "merchant_order_no"),
        (
            {
                let mut b = order_body("BAD-0009", 100);
                b["description"] = json!("   ");
                b
            },
            "`description`",
        ),
    ];
    for (body, named) in cases {
        let doc = problem(
            post_json(&f, "/v1/payments", &body).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert!(
            doc["detail"].as_str().unwrap().contains(named),
            "{named} not named in {doc} (body {body})"
        );
    }

    // A request id the client sends is the one the problem carries.
    let resp = f
        .as_merchant(Method::POST, "/v1/payments")
        .header("x-request-id", "trace-4711")
        .json(&order_body("BAD-0010", 0))
        .send()
        .await
        .unwrap();
    let doc = problem(resp, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(doc["request_id"], "trace-4711");

    // What the adapter declares a method needs (contract 0.4): refused by
    // the host, naming field and method.
    let mut body = order_body("BAD-0011", 100);
    body["payer"].as_object_mut().unwrap().remove("openid");
    let doc = problem(
        post_json(&f, "/v1/payments", &body).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert_eq!(
        (&doc["field"], &doc["reason"], &doc["method"]),
        (
            &json!("payer.openid"),
            &json!("required"),
            &json!("wechat_mini_program")
        ),
        "{doc}"
    );
    body["payer"]["openid"] = json!("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
    body["payer"]["client_ip"] = json!("not-an-ip");
    let doc = problem(
        post_json(&f, "/v1/payments", &body).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert_eq!(doc["reason"], "not_an_ip_address", "{doc}");
    // The adapter's own refusal, which no rule can declare: an openid of
    // another mini-program than the merchant's.
    body["payer"]["client_ip"] = json!("203.0.113.7");
    body["payer"]["app_id"] = json!("wx0000000000000000");
    let doc = problem(
        post_json(&f, "/v1/payments", &body).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert!(doc["detail"].as_str().unwrap().contains("app_id"), "{doc}");
    // The provider never saw it, so nothing of it is kept and the corrected
    // order may use the number.
    let r = f
        .as_merchant(Method::GET, "/v1/payments/BAD-0011")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND, "not_found").await;

    // Nothing of the above reached WeChat, and none of the API's own
    // refusals left an order behind.
    assert!(f.sim.requests().is_empty(), "{:?}", f.sim.requests());
    let r = f
        .as_merchant(Method::GET, "/v1/payments/BAD-0005")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND, "not_found").await;

    let corrected = post_json(&f, "/v1/payments", &order_body("BAD-0011", 100)).await;
    assert_eq!(corrected.status(), StatusCode::CREATED);
    let p: serde_json::Value = corrected.json().await.unwrap();
    assert_eq!(p["state"], "pending");
    assert_eq!(f.sim.requests().len(), 1);
}

/// The adapter's field rules (contract 0.3: WeChat Pay's `out_trade_no` is
/// 6 to 32 letters, digits and `_-|*`) are checked by the host before any
/// provider call, named in the problem, and declared in the OpenAPI
/// document.
#[tokio::test]
async fn an_adapters_field_rules_are_400_before_the_provider_and_in_the_document() {
    let f = Front::start("err-rules", Options::default()).await;
    for (no, reason) in [("ORD1", "too_short"), ("O", "too_short")] {
        let doc = problem(
            post_json(&f, "/v1/payments", &order_body(no, 100)).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert_eq!(doc["field"], "merchant_order_no", "{doc}");
        assert_eq!(doc["reason"], reason, "{doc}");
        assert!(doc["detail"].as_str().unwrap().contains("6 to 32"), "{doc}");
    }
    let mut body = order_body("RULES-0001", 100);
    body["description"] = json!("茶".repeat(128));
    let doc = problem(
        post_json(&f, "/v1/payments", &body).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert_eq!(
        (doc["field"].as_str(), doc["reason"].as_str()),
        (Some("description"), Some("too_long"))
    );
    assert!(f.sim.requests().is_empty(), "{:?}", f.sim.requests());

    let openapi: Value = f
        .client
        .get(f.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let create = &openapi["components"]["schemas"]["CreatePayment"]["properties"];
    assert_eq!(create["merchant_order_no"]["minLength"], 6, "{create}");
    assert_eq!(create["merchant_order_no"]["maxLength"], 32);
    assert_eq!(create["description"]["maxLength"], 127);
    let refund = &openapi["components"]["schemas"]["CreateRefund"]["properties"];
    assert_eq!(refund["refund_no"]["maxLength"], 64, "{refund}");
}

/// A merchant configured in a currency its provider does not take (the
/// adapter's `describe` lists its currencies) gets a 400 naming the ones
/// offered, before anything reaches the provider.
#[tokio::test]
async fn a_currency_the_provider_does_not_offer_is_400_naming_the_offered_ones() {
    let key = "pk_test_czk_1";
    let extra = format!(
        r#"
[[merchants]]
id = "shop-czk"
api_keys = ["{hash}"]
adapter = "wechat-v2"
currency = "CZK"
industry = "physical"

[merchants.limits]
cny_rate = "3.2"

[merchants.config]
appid = "wx2421b1c4370ec43b"
mch_id = "10000100"
api_key = "file:$DATA_DIR/wechat.key"
base_url = "$SIM_URL"
"#,
        hash = payhost::config::api_key_hash(key),
    );
    let f = Front::start(
        "err-currency",
        Options {
            extra_toml: extra,
            ..Options::default()
        },
    )
    .await;
    let mut body = order_body("CZK-0001", 100);
    body["currency"] = json!("CZK");
    let r = f
        .client
        .post(f.url("/v1/payments"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let doc = problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    let detail = doc["detail"].as_str().unwrap();
    assert!(
        detail.contains("`CZK`") && detail.contains("\"CNY\"") && detail.contains("\"HKD\""),
        "{doc}"
    );
    assert!(f.sim.requests().is_empty());
    let r = f
        .client
        .get(f.url("/v1/payments/CZK-0001"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND, "not_found").await;
}

/// The admin API answers credentials as the merchant API does: none, a
/// malformed or an unknown one is 401 naming the scheme; one payhost knows
/// but that grants no admin rights is 403.
#[tokio::test]
async fn admin_credentials_are_401_or_403() {
    for admin_token in [Some("adm_test_7Hq2"), None] {
        let name = format!("err-admin-auth-{}", admin_token.is_some());
        let f = Front::start(
            &name,
            Options {
                admin_token: admin_token.map(String::from),
                ..Options::default()
            },
        )
        .await;
        let get = |auth: Option<&str>| {
            let mut req = f.client.get(f.url("/admin/adapters"));
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            req.send()
        };
        for auth in [None, Some("Basic YWRtaW46YWRtaW4="), Some("Bearer ")] {
            let r = get(auth).await.unwrap();
            assert_eq!(
                r.headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap()),
                Some("Bearer realm=\"payhost\""),
                "{auth:?}"
            );
            problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
        let merchant = format!("Bearer {MERCHANT_KEY}");
        let r = get(Some(&merchant)).await.unwrap();
        assert!(r.headers().get("www-authenticate").is_none());
        let code = if admin_token.is_some() {
            "forbidden"
        } else {
            "admin_disabled"
        };
        problem(r, StatusCode::FORBIDDEN, code).await;
        let r = get(Some("Bearer adm_not_the_token")).await.unwrap();
        match admin_token {
            Some(_) => problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await,
            None => problem(r, StatusCode::FORBIDDEN, "admin_disabled").await,
        };
        if let Some(token) = admin_token {
            let r = get(Some(&format!("Bearer {token}"))).await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            // A JSON null body means "the previous version", like no body.
            for body in ["", "null"] {
                let r = f
                    .client
                    .post(f.url("/admin/adapters/wechat-v2/rollback"))
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                problem(r, StatusCode::CONFLICT, "nothing_to_roll_back").await;
            }
        }
    }
}

#[tokio::test]
async fn bad_credentials_are_401() {
    let f = Front::start("err-401", Options::default()).await;
    let body = order_body("AUTH-0001", 100);
    let attempts = [
        ("no Authorization", None),
        ("a wrong key", Some("Bearer pk_test_not_a_key".to_string())),
        ("another scheme", Some(format!("Basic {MERCHANT_KEY}"))),
        ("no key", Some("Bearer ".to_string())),
        ("no scheme", Some(MERCHANT_KEY.to_string())),
    ];
    for (what, auth) in attempts {
        let mut req = f.client.post(f.url("/v1/payments")).json(&body);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"payhost\"");
        let doc = problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
        assert!(!doc["detail"].as_str().unwrap().is_empty(), "{what}");
    }
    // Reads need the key too.
    for path in ["/v1/payments/AUTH-0001", "/v1/events"] {
        let r = f.client.get(f.url(path)).send().await.unwrap();
        problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    assert!(f.sim.requests().is_empty());
    // The authentication scheme is case-insensitive (RFC 9110 §11.1).
    let r = f
        .client
        .post(f.url("/v1/payments"))
        .header("authorization", format!("bearer {MERCHANT_KEY}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn unknown_resources_are_404_and_other_misuse_one_problem_shape() {
    let f = Front::start("err-404", Options::default()).await;
    assert_eq!(
        f.create("FOUND-0001", 100).await.status(),
        StatusCode::CREATED
    );

    for path in [
        "/v1/payments/NOPE-0001",
        "/v1/payments/NOPE-0001/refunds",
        "/v1/payments/NOPE-0001/refunds/R-1",
        "/v1/payments/FOUND-0001/refunds/R-404",
        "/v1/nothing-here",
        "/",
    ] {
        let r = f.as_merchant(Method::GET, path).send().await.unwrap();
        let doc = problem(r, StatusCode::NOT_FOUND, "not_found").await;
        assert!(!doc["detail"].as_str().unwrap().is_empty(), "{path}");
    }
    // A refund of an unknown payment.
    let r = post_json(
        &f,
        "/v1/payments/NOPE-0001/refunds",
        &json!({ "refund_no": "R-1", "amount": 1 }),
    )
    .await;
    problem(r, StatusCode::NOT_FOUND, "not_found").await;

    // Notifications for a merchant or an adapter that does not exist (no
    // credentials: providers do not have any).
    for path in [
        "/v1/notify/wechat-v2/shop-9",
        "/v1/notify/alipay/shop-1",
        "/v1/notify/alipay/shop-9",
    ] {
        let r = f
            .client
            .post(f.url(path))
            .body("<xml></xml>")
            .send()
            .await
            .unwrap();
        let doc = problem(r, StatusCode::NOT_FOUND, "not_found").await;
        let detail = doc["detail"].as_str().unwrap();
        assert!(
            detail.contains("shop-") && detail.contains("adapter"),
            "{doc}"
        );
    }

    // A known path with a method it does not have.
    for (method, path) in [
        (Method::DELETE, "/v1/payments"),
        (Method::PUT, "/v1/payments/FOUND-0001"),
        (Method::POST, "/healthz"),
    ] {
        let r = f.as_merchant(method, path).send().await.unwrap();
        problem(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    }
    // A query string that does not parse, or a page size out of 1..=500
    // (refused, not silently clamped, as the document declares).
    for path in [
        "/v1/payments/FOUND-0001?refresh=maybe",
        "/v1/events?limit=many",
        "/v1/events?colour=blue",
        "/v1/events?limit=0",
        "/v1/events?limit=501",
    ] {
        let r = f.as_merchant(Method::GET, path).send().await.unwrap();
        problem(r, StatusCode::BAD_REQUEST, "validation_failed").await;
    }
    for path in ["/v1/events?limit=1", "/v1/events?limit=500&after=0"] {
        f.get_json(path).await;
    }
    // Only the one create reached WeChat.
    assert_eq!(f.sim.requests().len(), 1);
}

#[tokio::test]
async fn conflicts_are_409() {
    let f = Front::start("err-409", Options::default()).await;

    // The same Idempotency-Key with another body.
    let r = f
        .as_merchant(Method::POST, "/v1/payments")
        .header("idempotency-key", "key-409-a")
        .json(&order_body("CONF-0001", 100))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = f
        .as_merchant(Method::POST, "/v1/payments")
        .header("idempotency-key", "key-409-a")
        .json(&order_body("CONF-0001", 101))
        .send()
        .await
        .unwrap();
    let doc = problem(r, StatusCode::CONFLICT, "idempotency_key_reused").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("key-409-a"),
        "{doc}"
    );
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), 1);

    // The same merchant order no with other values, without a key.
    let r = f.create("CONF-0001", 999).await;
    let doc = problem(r, StatusCode::CONFLICT, "order_exists").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("CONF-0001"),
        "{doc}"
    );
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), 1);
    assert_eq!(f.get_json("/v1/payments/CONF-0001").await["amount"], 100);

    // A refund of an order that is not paid.
    let r = post_json(
        &f,
        "/v1/payments/CONF-0001/refunds",
        &json!({ "refund_no": "CONF-0001-R1", "amount": 50 }),
    )
    .await;
    let doc = problem(r, StatusCode::CONFLICT, "refund_not_allowed").await;
    assert!(doc["detail"].as_str().unwrap().contains("pending"), "{doc}");

    // A refund of more than was paid, at once or in total.
    paid_order(&f, "CONF-0002", 1000).await;
    let r = post_json(
        &f,
        "/v1/payments/CONF-0002/refunds",
        &json!({ "refund_no": "CONF-0002-R1", "amount": 1001 }),
    )
    .await;
    let doc = problem(r, StatusCode::CONFLICT, "refund_not_allowed").await;
    assert!(doc["detail"].as_str().unwrap().contains("1001"), "{doc}");
    let r = post_json(
        &f,
        "/v1/payments/CONF-0002/refunds",
        &json!({ "refund_no": "CONF-0002-R2", "amount": 600 }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = post_json(
        &f,
        "/v1/payments/CONF-0002/refunds",
        &json!({ "refund_no": "CONF-0002-R3", "amount": 401 }),
    )
    .await;
    problem(r, StatusCode::CONFLICT, "refund_not_allowed").await;
    // The same refund number for another amount.
    let r = post_json(
        &f,
        "/v1/payments/CONF-0002/refunds",
        &json!({ "refund_no": "CONF-0002-R2", "amount": 300 }),
    )
    .await;
    problem(r, StatusCode::CONFLICT, "refund_exists").await;
    // Only the one allowed refund reached WeChat.
    assert_eq!(sim_calls(&f, REFUND), 1);
    let refunds = f.get_json("/v1/payments/CONF-0002/refunds").await;
    assert_eq!(refunds.as_array().unwrap().len(), 1, "{refunds}");
}

#[tokio::test]
async fn a_repeated_idempotency_key_replays_the_first_answer() {
    let f = Front::start("idem-replay", Options::default()).await;
    let send = |key: &'static str, body: Value| {
        f.as_merchant(Method::POST, "/v1/payments")
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send("key-replay-1", order_body("IDEM-0001", 1999))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.bytes().await.unwrap();

    let again = send("key-replay-1", order_body("IDEM-0001", 1999))
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["content-type"], "application/json");
    assert_eq!(again.bytes().await.unwrap(), first_body);
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), 1);

    // A refusal is an answer too, replayed as it was.
    let refused = send("key-replay-2", order_body("IDEM-0002", 0))
        .await
        .unwrap();
    let first_doc = problem(refused, StatusCode::BAD_REQUEST, "validation_failed").await;
    let again = send("key-replay-2", order_body("IDEM-0002", 0))
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["content-type"], "application/problem+json");
    let doc: Value = again.json().await.unwrap();
    assert_eq!(doc, first_doc);
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), 1);
}

#[tokio::test]
async fn concurrent_posts_with_one_key_create_one_order() {
    let f = Arc::new(Front::start("idem-race", Options::default()).await);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let r = f
                .as_merchant(Method::POST, "/v1/payments")
                .header("idempotency-key", "key-race-1")
                .json(&order_body("RACE-0001", 500))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
            let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
            (status, request_id, content_type, r.bytes().await.unwrap())
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        let (status, request_id, content_type, body) = t.await.unwrap();
        match status {
            StatusCode::CREATED => created.push(body),
            StatusCode::CONFLICT => {
                assert_eq!(content_type, "application/problem+json");
                let doc: Value = serde_json::from_slice(&body).unwrap();
                check_problem(&doc, 409, "idempotency_in_progress");
                assert_eq!(doc["request_id"], request_id.as_str());
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    assert!(!created.is_empty());
    assert!(
        created.windows(2).all(|w| w[0] == w[1]),
        "every 201 is the same answer"
    );
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), 1, "{:?}", f.sim.requests());
    assert_eq!(
        f.get_json("/v1/payments/RACE-0001").await["state"],
        "pending"
    );
}

#[tokio::test]
async fn concurrent_creates_of_one_order_number_never_charge_twice() {
    let f = Arc::new(Front::start("order-race", Options::default()).await);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let r = f.create("RACE-0002", 700).await;
            let status = r.status();
            let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
            (status, request_id, r.json::<Value>().await.unwrap())
        }));
    }
    let mut orders = Vec::new();
    for t in tasks {
        let (status, request_id, body) = t.await.unwrap();
        match status {
            StatusCode::CREATED | StatusCode::OK => orders.push((status, body)),
            StatusCode::CONFLICT => {
                check_problem(&body, 409, "order_in_progress");
                assert_eq!(body["request_id"], request_id.as_str());
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        orders.iter().any(|(s, _)| *s == StatusCode::CREATED),
        "{orders:?}"
    );
    // Every order answered is the one order, with one prepay id.
    let stored = f.get_json("/v1/payments/RACE-0002").await;
    assert_eq!(stored["state"], "pending");
    for (_, o) in &orders {
        assert_eq!(o["merchant_order_no"], "RACE-0002");
        assert_eq!(o["amount"], 700);
        assert_eq!(
            o["pay_action"]["params"]["package"], stored["pay_action"]["params"]["package"],
            "{o}"
        );
    }
    // WeChat saw one unified order, and holds one unpaid order.
    let calls: Vec<_> = f
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path == UNIFIED_ORDER)
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].outcome, "SUCCESS");
    assert_eq!(f.sim.trade_state("RACE-0002").as_deref(), Some("NOTPAY"));
    // Once the race is over, a retry gets the order back without a call.
    let r = f.create("RACE-0002", 700).await;
    assert_eq!(r.status(), StatusCode::OK);
    let again: Value = r.json().await.unwrap();
    assert_eq!(
        again["pay_action"]["params"]["package"],
        stored["pay_action"]["params"]["package"]
    );
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), 1);

    // Paid once; a later create of the same order is the paid order, and
    // reaches no provider.
    f.sim.notify("RACE-0002", Default::default()).await.unwrap();
    let before = sim_calls(&f, UNIFIED_ORDER);
    let r = f.create("RACE-0002", 700).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "paid");
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), before);
}

#[tokio::test]
async fn a_retried_refund_never_refunds_twice() {
    let f = Front::start("refund-retry", Options::default()).await;
    paid_order(&f, "REF-0001", 1000).await;
    let refund = json!({ "refund_no": "REF-0001-R1", "amount": 400, "reason": "broken" });
    let r = post_json(&f, "/v1/payments/REF-0001/refunds", &refund).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let first: Value = r.json().await.unwrap();
    assert!(first["provider_refund_id"].as_str().is_some(), "{first}");

    // The retry (no Idempotency-Key) answers the same refund, unchanged.
    let r = post_json(&f, "/v1/payments/REF-0001/refunds", &refund).await;
    assert_eq!(r.status(), StatusCode::OK);
    let again: Value = r.json().await.unwrap();
    for k in [
        "refund_no",
        "amount",
        "provider_refund_id",
        "state",
        "created_at",
    ] {
        assert_eq!(again[k], first[k], "{k}");
    }
    assert_eq!(sim_calls(&f, REFUND), 1);

    // With an Idempotency-Key the retry is a replay.
    let send = || {
        f.as_merchant(Method::POST, "/v1/payments/REF-0001/refunds")
            .header("idempotency-key", "key-refund-2")
            .json(&json!({ "refund_no": "REF-0001-R2", "amount": 100 }))
            .send()
    };
    let r = send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(sim_calls(&f, REFUND), 2);

    // After WeChat settles them, 500 of 1000 is refunded: once each.
    for no in ["REF-0001-R1", "REF-0001-R2"] {
        let answers = f.sim.notify_refund(no, Default::default()).await.unwrap();
        assert!(answers[0].acknowledged(), "{answers:?}");
    }
    let p = f.get_json("/v1/payments/REF-0001").await;
    assert_eq!(
        (p["state"].as_str(), p["refunded_amount"].as_i64()),
        (Some("partially_refunded"), Some(500))
    );
    // Repeating the first refund now still changes nothing.
    let r = post_json(&f, "/v1/payments/REF-0001/refunds", &refund).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "succeeded");
    assert_eq!(sim_calls(&f, REFUND), 2);
    assert_eq!(
        f.get_json("/v1/payments/REF-0001").await["refunded_amount"],
        500
    );
}

/// A merchant in EUR that also takes CNY (`currencies`): a CNY order counts
/// against its EUR limits converted at `limits.cny_rate`, and the day cap
/// sums both currencies in EUR. WeChat Pay takes EUR only on its
/// cross-border API, so the merchant and the simulator are overseas ones.
#[tokio::test]
async fn cny_orders_of_a_eur_merchant_count_against_its_limits_converted() {
    let key = "pk_test_eur_1";
    let extra = format!(
        r#"
[[merchants]]
id = "shop-eur"
api_keys = ["{hash}"]
adapter = "wechat-v2"
currency = "EUR"
currencies = ["EUR", "CNY"]
industry = "physical"

[merchants.limits]
cny_rate = "0.128"
per_payment_minor = 1000
per_payer_day_minor = 1000

[merchants.config]
appid = "wx2421b1c4370ec43b"
mch_id = "10000100"
api_key = "file:$DATA_DIR/wechat.key"
base_url = "$SIM_URL"
region = "overseas"
"#,
        hash = payhost::config::api_key_hash(key),
    );
    let sim =
        payhost_simulators::wechat_v2::Simulator::start(payhost_simulators::wechat_v2::SimConfig {
            overseas: Some(Default::default()),
            ..payhost_e2e::front::sim_config()
        })
        .await;
    let f = Front::start_with_simulator(
        "err-eur-cny",
        Options {
            extra_toml: extra,
            ..Options::default()
        },
        sim,
    )
    .await;
    let create = |no: &str, amount: i64, currency: &str| {
        let mut body = order_body(no, amount);
        body["currency"] = json!(currency);
        f.client
            .post(f.url("/v1/payments"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    // 50.00 CNY is 6.40 EUR: under the 10.00 EUR cap, stored in CNY.
    let r = create("EURCNY-1", 5000, "CNY").await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let p: Value = r.json().await.unwrap();
    assert_eq!(
        (p["amount"].as_i64(), p["currency"].as_str()),
        (Some(5000), Some("CNY"))
    );
    // 80.00 CNY alone is 10.24 EUR: over the per-payment cap.
    let doc = problem(
        create("EURCNY-2", 8000, "CNY").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
    )
    .await;
    assert_eq!(doc["limit"], "per_payment");
    // 3.00 EUR more makes 9.40 EUR today: allowed; 50.00 CNY more is not.
    assert_eq!(
        create("EURCNY-3", 300, "EUR").await.unwrap().status(),
        StatusCode::CREATED
    );
    let doc = problem(
        create("EURCNY-4", 5000, "CNY").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
    )
    .await;
    assert_eq!(doc["limit"], "per_payer_day");
    // A currency neither listed nor the merchant's names both.
    let doc = problem(
        create("EURCNY-5", 100, "USD").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    let detail = doc["detail"].as_str().unwrap();
    assert!(detail.contains("`EUR` or `CNY`"), "{doc}");
}

#[tokio::test]
async fn amount_caps_are_422_before_the_provider() {
    let f = Front::start(
        "err-422",
        Options {
            limits: "per_payment_minor = 1000\nper_payer_day_minor = 2500".into(),
            ..Default::default()
        },
    )
    .await;
    let doc = problem(
        f.create("CAP-0001", 1001).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
    )
    .await;
    assert_eq!(doc["limit"], "per_payment");
    assert_eq!(doc["max_minor"], 1000);
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), 0);
    // The cap itself is allowed.
    assert_eq!(
        f.create("CAP-0002", 1000).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        f.create("CAP-0003", 1000).await.status(),
        StatusCode::CREATED
    );
    // 2000 of 2500 used today by this payer: 501 more is too much.
    let doc = problem(
        f.create("CAP-0004", 501).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
    )
    .await;
    assert_eq!(doc["limit"], "per_payer_day");
    assert_eq!(doc["max_minor"], 2500);
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), 2);
    // Exactly up to the day's cap is fine; another payer has its own.
    assert_eq!(
        f.create("CAP-0005", 500).await.status(),
        StatusCode::CREATED
    );
    let mut other = order_body("CAP-0006", 1000);
    other["payer"]["openid"] = json!("oUpF8uOtherPayer00000000000");
    assert_eq!(
        post_json(&f, "/v1/payments", &other).await.status(),
        StatusCode::CREATED
    );
    problem(
        f.create("CAP-0007", 1).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
    )
    .await;
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), 4);
}

#[tokio::test]
async fn the_create_rate_is_429_with_retry_after() {
    let f = Front::start(
        "err-429",
        Options {
            limits: "create_per_min = 2".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        f.create("RATE-0001", 100).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        f.create("RATE-0002", 100).await.status(),
        StatusCode::CREATED
    );
    let r = f.create("RATE-0003", 100).await;
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let doc = problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(doc["limit"], "create_per_min");
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), 2);
    // Reads have their own budget.
    assert_eq!(
        f.get_json("/v1/payments/RATE-0001").await["state"],
        "pending"
    );
    problem(
        f.as_merchant(Method::GET, "/v1/payments/RATE-0003")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn provider_failures_are_502_and_retryable_ones_can_be_retried() {
    let f = Front::start("err-502", Options::default()).await;

    // WeChat refuses for good.
    f.sim.fail_next("NOAUTH");
    let doc = problem(
        f.create("PROV-0001", 100).await,
        StatusCode::BAD_GATEWAY,
        "provider_rejected",
    )
    .await;
    assert_eq!(doc["provider_code"], "NOAUTH");
    assert_eq!(doc["retryable"], false);
    assert_eq!(
        f.get_json("/v1/payments/PROV-0001").await["state"],
        "failed"
    );

    // WeChat answers 503: unreachable, and nothing is decided.
    f.sim.answer_5xx_next();
    let r = f.create("PROV-0002", 100).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let code = r.headers().clone();
    let doc: Value = r.json().await.unwrap();
    check_problem(&doc, 502, doc["code"].as_str().unwrap_or("-"));
    assert_eq!(doc["request_id"], code["x-request-id"].to_str().unwrap());
    assert!(
        doc["code"]
            .as_str()
            .is_some_and(|c| c.starts_with("provider_")),
        "{doc}"
    );
    let r = f.create("PROV-0002", 100).await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // A retryable refusal (SYSTEMERROR); the same create then succeeds.
    f.sim.fail_next("SYSTEMERROR");
    let doc = problem(
        f.create("PROV-0003", 100).await,
        StatusCode::BAD_GATEWAY,
        "provider_rejected",
    )
    .await;
    assert_eq!(doc["provider_code"], "SYSTEMERROR");
    assert_eq!(doc["retryable"], true);
    assert_eq!(
        f.get_json("/v1/payments/PROV-0003").await["state"],
        "created"
    );
    let r = f.create("PROV-0003", 100).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "pending");

    // With an Idempotency-Key, a retryable failure is not replayed: the
    // retry with the same key runs again.
    f.sim.fail_next("SYSTEMERROR");
    let send = || {
        f.as_merchant(Method::POST, "/v1/payments")
            .header("idempotency-key", "key-502")
            .json(&order_body("PROV-0004", 100))
            .send()
    };
    problem(
        send().await.unwrap(),
        StatusCode::BAD_GATEWAY,
        "provider_rejected",
    )
    .await;
    let r = send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().get("idempotent-replayed").is_none());
}

/// A store that can be switched off: every call then fails as a store
/// whose database is gone does. With `hang_updates`, an order update never
/// returns, as when the process dies while it is being committed.
struct SwitchableStore {
    inner: Arc<dyn Store>,
    down: AtomicBool,
    hang_updates: AtomicBool,
}

impl SwitchableStore {
    fn up(&self) -> Result<&dyn Store, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("disk I/O error (test)".into()))
        } else {
            Ok(&*self.inner)
        }
    }
}

#[async_trait::async_trait]
impl Store for SwitchableStore {
    async fn insert_order_capped(
        &self,
        order: &Order,
        cap: Option<&DailyCap>,
    ) -> Result<Inserted<Order>, StoreError> {
        self.up()?.insert_order_capped(order, cap).await
    }
    async fn insert_order_claiming(
        &self,
        order: &Order,
        cap: Option<&DailyCap>,
        claim: Option<&KeyClaim>,
    ) -> Result<Claimed<Inserted<Order>>, StoreError> {
        self.up()?.insert_order_claiming(order, cap, claim).await
    }
    async fn idempotency_settle(
        &self,
        claim: &KeyClaim,
        answer: Option<(u16, &[u8])>,
    ) -> Result<IdempotencyBegin, StoreError> {
        self.up()?.idempotency_settle(claim, answer).await
    }
    async fn get_order(&self, m: &str, no: &str) -> Result<Option<Order>, StoreError> {
        self.up()?.get_order(m, no).await
    }
    async fn insert_payout(
        &self,
        p: &payhost::store::Payout,
        caps: &payhost::store::PayoutCaps,
    ) -> Result<Inserted<payhost::store::Payout>, StoreError> {
        self.up()?.insert_payout(p, caps).await
    }
    async fn get_payout(
        &self,
        m: &str,
        no: &str,
    ) -> Result<Option<payhost::store::Payout>, StoreError> {
        self.up()?.get_payout(m, no).await
    }
    async fn update_payout(
        &self,
        p: &payhost::store::Payout,
        events: &[NewEvent],
    ) -> Result<payhost::store::Payout, StoreError> {
        self.up()?.update_payout(p, events).await
    }
    async fn payouts_to_poll(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<payhost::store::Payout>, StoreError> {
        self.up()?.payouts_to_poll(now, limit).await
    }
    async fn delete_unsent_order(&self, order: &Order) -> Result<bool, StoreError> {
        self.up()?.delete_unsent_order(order).await
    }
    async fn insert_contract(&self, c: &Contract) -> Result<Inserted<Contract>, StoreError> {
        self.up()?.insert_contract(c).await
    }
    async fn get_contract(&self, m: &str, no: &str) -> Result<Option<Contract>, StoreError> {
        self.up()?.get_contract(m, no).await
    }
    async fn update_contract(
        &self,
        c: &Contract,
        events: &[NewEvent],
    ) -> Result<Contract, StoreError> {
        self.up()?.update_contract(c, events).await
    }
    async fn contracts_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Contract>, StoreError> {
        self.up()?.contracts_to_poll(now, limit).await
    }
    async fn insert_deduction(
        &self,
        d: &Deduction,
        caps: &payhost::store::DeductionCaps,
    ) -> Result<Inserted<Deduction>, StoreError> {
        self.up()?.insert_deduction(d, caps).await
    }
    async fn get_deduction(&self, m: &str, no: &str) -> Result<Option<Deduction>, StoreError> {
        self.up()?.get_deduction(m, no).await
    }
    async fn update_deduction(
        &self,
        d: &Deduction,
        events: &[NewEvent],
    ) -> Result<Deduction, StoreError> {
        self.up()?.update_deduction(d, events).await
    }
    async fn delete_unsent_deduction(&self, d: &Deduction) -> Result<bool, StoreError> {
        self.up()?.delete_unsent_deduction(d).await
    }
    async fn deduction_history(
        &self,
        m: &str,
        contract_no: &str,
        since: i64,
        failures_from: i64,
    ) -> Result<payhost::store::DeductionHistory, StoreError> {
        self.up()?
            .deduction_history(m, contract_no, since, failures_from)
            .await
    }
    async fn deductions_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Deduction>, StoreError> {
        self.up()?.deductions_to_poll(now, limit).await
    }
    async fn update_order_completing(
        &self,
        order: &Order,
        events: &[NewEvent],
        completion: Option<KeyCompletion>,
    ) -> Result<Order, StoreError> {
        if self.hang_updates.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.up()?
            .update_order_completing(order, events, completion)
            .await
    }
    async fn record_mismatch(
        &self,
        m: &str,
        no: &str,
        fingerprint: &str,
        event: &NewEvent,
    ) -> Result<bool, StoreError> {
        self.up()?.record_mismatch(m, no, fingerprint, event).await
    }
    async fn refunds_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Refund>, StoreError> {
        self.up()?.refunds_to_poll(now, limit).await
    }
    async fn insert_refund(
        &self,
        refund: &Refund,
        order: &Order,
        events: &[NewEvent],
    ) -> Result<Inserted<Refund>, StoreError> {
        self.up()?.insert_refund(refund, order, events).await
    }
    async fn update_refund(
        &self,
        refund: &Refund,
        order: Option<&Order>,
        events: &[NewEvent],
    ) -> Result<Refund, StoreError> {
        self.up()?.update_refund(refund, order, events).await
    }
    async fn get_refund(&self, m: &str, no: &str, r: &str) -> Result<Option<Refund>, StoreError> {
        self.up()?.get_refund(m, no, r).await
    }
    async fn list_refunds(&self, m: &str, no: &str) -> Result<Vec<Refund>, StoreError> {
        self.up()?.list_refunds(m, no).await
    }
    async fn record_notification(&self, record: &NotificationRecord) -> Result<i64, StoreError> {
        self.up()?.record_notification(record).await
    }
    async fn idempotency_begin(
        &self,
        m: &str,
        key: &str,
        hash: &str,
        now: i64,
    ) -> Result<IdempotencyBegin, StoreError> {
        self.up()?.idempotency_begin(m, key, hash, now).await
    }
    async fn idempotency_complete(
        &self,
        m: &str,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), StoreError> {
        self.up()?.idempotency_complete(m, key, status, body).await
    }
    async fn idempotency_release(&self, m: &str, key: &str) -> Result<(), StoreError> {
        self.up()?.idempotency_release(m, key).await
    }
    async fn due_events(&self, now: i64, limit: i64) -> Result<Vec<OutboxEvent>, StoreError> {
        self.up()?.due_events(now, limit).await
    }
    async fn mark_delivered(&self, id: i64, at: i64) -> Result<(), StoreError> {
        self.up()?.mark_delivered(id, at).await
    }
    async fn mark_failed(
        &self,
        id: i64,
        error: &str,
        next: i64,
        give_up: bool,
    ) -> Result<(), StoreError> {
        self.up()?.mark_failed(id, error, next, give_up).await
    }
    async fn list_events(
        &self,
        m: &str,
        limit: i64,
        after: Option<i64>,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        self.up()?.list_events(m, limit, after).await
    }
    async fn orders_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Order>, StoreError> {
        self.up()?.orders_to_poll(now, limit).await
    }
    async fn count_orders_by_state(&self) -> Result<Vec<(OrderState, i64)>, StoreError> {
        self.up()?.count_orders_by_state().await
    }
    async fn paid_total_since(&self, m: &str, openid: &str, since: i64) -> Result<i64, StoreError> {
        self.up()?.paid_total_since(m, openid, since).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.up()?.ping().await
    }
    async fn list_notifications(
        &self,
        m: &str,
        limit: i64,
        after: Option<i64>,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        self.up()?.list_notifications(m, limit, after).await
    }
    async fn due_merchants(&self, now: i64, limit: i64) -> Result<Vec<String>, StoreError> {
        self.up()?.due_merchants(now, limit).await
    }
    async fn due_events_of(
        &self,
        m: &str,
        now: i64,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        self.up()?.due_events_of(m, now, limit, lease_ms).await
    }
    async fn mark_undeliverable(&self, m: &str, reason: &str, d: &str) -> Result<u64, StoreError> {
        self.up()?.mark_undeliverable(m, reason, d).await
    }
    async fn revive_undeliverable(
        &self,
        m: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.up()?.revive_undeliverable(m, reason, now).await
    }
    async fn prune(&self, policy: &PrunePolicy) -> Result<PruneReport, StoreError> {
        self.up()?.prune(policy).await
    }
}

/// One request through the router in process: status, headers, body.
async fn call(
    state: &AppState,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    call_keyed(state, method, path, body, None).await
}

/// [`call`] with an `Idempotency-Key`.
async fn call_keyed(
    state: &AppState,
    method: &str,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    use tower::ServiceExt;
    let mut req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {MERCHANT_KEY}"));
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(axum::body::Body::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        ))
        .unwrap();
    let resp = payhost::api::router(state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap()
        .to_vec();
    (status, headers, body)
}

fn in_process_problem(
    (status, headers, body): (StatusCode, axum::http::HeaderMap, Vec<u8>),
    want: StatusCode,
    code: &str,
) -> Value {
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, want, "{text}");
    assert_eq!(headers["content-type"], "application/problem+json");
    let doc: Value = serde_json::from_slice(&body).unwrap();
    check_problem(&doc, want.as_u16(), code);
    assert_eq!(doc["request_id"], headers["x-request-id"].to_str().unwrap());
    doc
}

#[tokio::test]
async fn an_unavailable_store_is_503() {
    let f = Front::start("err-503", Options::default()).await;
    let store = Arc::new(SwitchableStore {
        inner: f.running.state.store.clone(),
        down: AtomicBool::new(false),
        hang_updates: AtomicBool::new(false),
    });
    let mut state = f.running.state.clone();
    state.store = store.clone();

    let (status, _, body) = call(&state, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = call(
        &state,
        "POST",
        "/v1/payments",
        Some(order_body("DOWN-0001", 100)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let calls_before = f.sim.requests().len();

    store.down.store(true, Ordering::SeqCst);
    let (status, headers, body) = call(
        &state,
        "POST",
        "/v1/payments",
        Some(order_body("DOWN-0002", 100)),
    )
    .await;
    assert_eq!(headers["retry-after"], "1");
    let doc = in_process_problem(
        (status, headers, body),
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
    );
    assert!(doc["detail"].as_str().unwrap().contains("disk"), "{doc}");
    for (method, path) in [
        ("GET", "/v1/payments/DOWN-0001"),
        ("GET", "/v1/events"),
        ("GET", "/readyz"),
    ] {
        in_process_problem(
            call(&state, method, path, None).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
        );
    }
    // Nothing went to WeChat while the store was down.
    assert_eq!(f.sim.requests().len(), calls_before);
    // Liveness does not depend on the store.
    assert_eq!(
        call(&state, "GET", "/healthz", None).await.0,
        StatusCode::OK
    );

    store.down.store(false, Ordering::SeqCst);
    assert_eq!(call(&state, "GET", "/readyz", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn openapi_describes_every_route_and_the_problem() {
    let f = Front::start("openapi", Options::default()).await;
    let r = f.client.get(f.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/v1/payments", &["post"][..]),
        ("/v1/payments/{merchant_order_no}", &["get"]),
        ("/v1/payments/{merchant_order_no}/refunds", &["get", "post"]),
        (
            "/v1/payments/{merchant_order_no}/refunds/{refund_no}",
            &["get"],
        ),
        ("/v1/notify/{adapter}/{merchant}", &["post", "get"]),
        ("/v1/events", &["get"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from {:?}", paths.keys()));
        for m in methods {
            assert!(item.get(*m).is_some(), "{m} {path}");
        }
    }
    let problem = &doc["components"]["schemas"]["Problem"];
    let props = problem["properties"].as_object().expect("Problem schema");
    for member in ["type", "title", "status", "detail", "code", "request_id"] {
        assert!(props.contains_key(member), "Problem.{member}");
    }
    // Errors of the create refer to it, as the media type it is sent as.
    let create = &doc["paths"]["/v1/payments"]["post"]["responses"];
    assert_eq!(
        create["4XX"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem",
        "{create}"
    );
    // Narrowed to this server: shop-1 takes CNY through wechat-v2.
    let fields = &doc["components"]["schemas"]["CreatePayment"]["properties"];
    assert_eq!(fields["currency"]["enum"], json!(["CNY"]));
    let methods = fields["method"]["enum"].as_array().expect("method enum");
    assert!(
        methods.contains(&json!("wechat_mini_program")),
        "{methods:?}"
    );
    assert!(doc["webhooks"]["payment.paid"]["post"].is_object());
}

#[tokio::test]
async fn metrics_health_and_readiness() {
    let f = Front::start("metrics", Options::default()).await;
    let r = f.client.get(f.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = f.client.get(f.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    assert_eq!(
        f.create("MET-0001", 100).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        f.create("MET-0002", 100).await.status(),
        StatusCode::CREATED
    );
    problem(
        f.create("MET-0003", 0).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    let scrape = || async {
        let r = f.client.get(f.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap()
    };
    let text = scrape().await;
    let sample = |text: &str, prefix: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    for needed in [
        "payhost_http_requests_total{",
        "payhost_adapter_calls_total{",
        "payhost_adapter_call_seconds_bucket{",
    ] {
        assert!(text.contains(needed), "{needed} missing:\n{text}");
    }
    assert_eq!(
        sample(&text, "payhost_orders{state=\"pending\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "payhost_errors_total{code=\"validation_failed\"}"),
        Some(1.0),
        "{text}"
    );
    let created = text
        .lines()
        .find(|l| {
            l.starts_with("payhost_http_requests_total{")
                && l.contains("/v1/payments\"")
                && l.contains("201")
        })
        .unwrap_or_else(|| panic!("no 201 sample for /v1/payments:\n{text}"));
    assert!(created.ends_with(" 2"), "{created}");

    // Orders leave `pending`: the gauge follows, down to zero.
    for no in ["MET-0001", "MET-0002"] {
        f.sim.notify(no, Default::default()).await.unwrap();
    }
    let text = scrape().await;
    assert_eq!(
        sample(&text, "payhost_orders{state=\"paid\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "payhost_orders{state=\"pending\"}"),
        Some(0.0),
        "{text}"
    );
}

/// Commits the request made by `send(i)` waited for: the least of three
/// tries (`i` = 0, 1, 2), as a background write (retention, the
/// reconciler) can only add to one.
async fn commit_waits<F, Fut>(f: &Front, send: F) -> u64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let store = &f.running.state.store;
    let mut least = u64::MAX;
    for i in 0..3 {
        let before = store.commit_waits().expect("the SQLite store counts");
        send(i).await;
        least = least.min(store.commit_waits().unwrap() - before);
    }
    least
}

#[tokio::test]
async fn a_create_with_an_idempotency_key_waits_for_two_commits() {
    let front = Front::start("idem-commits", Options::default()).await;
    let f = &front;
    let keyed = |key: String, body: Value| {
        f.as_merchant(Method::POST, "/v1/payments")
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    // The claim shares the insert's commit, the answer the update's.
    let waits = commit_waits(f, |i| {
        let r = keyed(
            format!("key-c-{i}"),
            order_body(&format!("COMMIT-{i}"), 100),
        );
        async move { assert_eq!(r.await.unwrap().status(), StatusCode::CREATED) }
    })
    .await;
    assert_eq!(waits, 2);
    // As many as without a key.
    let waits = commit_waits(f, |i| async move {
        let no = format!("COMMIT-NK-{i}");
        assert_eq!(f.create(&no, 100).await.status(), StatusCode::CREATED)
    })
    .await;
    assert_eq!(waits, 2);
    // A replay writes nothing; it looks the key up in one transaction.
    let waits = commit_waits(f, |_| {
        let r = keyed("key-c-0".into(), order_body("COMMIT-0", 100));
        async move {
            let r = r.await.unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            assert_eq!(r.headers()["idempotent-replayed"], "true");
        }
    })
    .await;
    assert_eq!(waits, 1);
    // A refusal before the insert is kept under its key in one commit.
    let waits = commit_waits(f, |i| {
        let r = keyed(format!("key-bad-{i}"), order_body(&format!("BAD-{i}"), 0));
        async move { assert_eq!(r.await.unwrap().status(), StatusCode::BAD_REQUEST) }
    })
    .await;
    assert_eq!(waits, 1);
    assert_eq!(sim_calls(f, UNIFIED_ORDER), 6);
}

#[tokio::test]
async fn a_crash_between_the_two_commits_loses_no_order_and_keeps_the_key_in_progress() {
    let f = Front::start("idem-crash", Options::fast_reconciler()).await;
    let store = Arc::new(SwitchableStore {
        inner: f.running.state.store.clone(),
        down: AtomicBool::new(false),
        hang_updates: AtomicBool::new(true),
    });
    let mut state = f.running.state.clone();
    state.store = store.clone();
    // The process dies while the provider's acceptance is being committed:
    // the client never gets an answer.
    let body = order_body("CRASH-0001", 100);
    let create = call_keyed(
        &state,
        "POST",
        "/v1/payments",
        Some(body.clone()),
        Some("key-crash"),
    );
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), create)
            .await
            .is_err()
    );
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), 1);
    drop((state, store));
    let f = f.restart().await;
    // The claim committed with the order: a retry with the key is told to
    // wait (until the key's lease ends), as when the claim came first.
    let r = f
        .as_merchant(Method::POST, "/v1/payments")
        .header("idempotency-key", "key-crash")
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::CONFLICT, "idempotency_in_progress").await;
    // The order is there, and the reconciler asks the provider about it.
    f.wait_for_as(MERCHANT_KEY, "/v1/payments/CRASH-0001", "state", "pending")
        .await;
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), 1);
}

#[tokio::test]
async fn an_applied_payment_notification_waits_for_one_commit() {
    let f = Front::start("notify-commits", Options::default()).await;
    let store = f.running.state.store.clone();
    let mut least = u64::MAX;
    for i in 0..3 {
        let no = format!("NOTE-{i}");
        assert_eq!(f.create(&no, 100).await.status(), StatusCode::CREATED);
        let body = f.sim.pay(&no).unwrap();
        let before = store.commit_waits().unwrap();
        let r = f
            .client
            .post(f.url("/v1/notify/wechat-v2/shop-1"))
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains("SUCCESS"));
        // The `payment.paid` webhook it caused is delivered and marked so
        // (one more commit) before counting.
        let mut delivered = false;
        for _ in 0..500 {
            if store.due_events(i64::MAX, 10).await.unwrap().is_empty() {
                delivered = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(delivered, "the payment.paid webhook was not delivered");
        least = least.min(store.commit_waits().unwrap() - before - 1);
        assert_eq!(
            f.get_json(&format!("/v1/payments/{no}")).await["state"],
            "paid"
        );
    }
    // The state change, its event and the notification's record: one.
    assert_eq!(least, 1);
    let notes = store.list_notifications("shop-1", 10, None).await.unwrap();
    assert_eq!(notes.len(), 3);
    assert!(notes.iter().all(|n| {
        n.verdict == "applied"
            && n.detail.as_deref() == Some("applied")
            && n.merchant_order_no
                .as_deref()
                .is_some_and(|no| no.starts_with("NOTE-"))
    }));
}
