//! What a hostile or careless HTTP client meets, on a real socket: every
//! refusal the framework makes is a problem document with a stable code;
//! bodies are bounded in size and time per route; connections that never
//! finish their headers are closed and cannot lock out other clients; text
//! a provider cannot carry is refused before any provider call; a refused
//! create leaves nothing behind; and a refresh of an order no provider
//! accepted asks no provider.

use payhost_e2e::front::{Front, MERCHANT_KEY, Options, order_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const UNIFIED_ORDER: &str = "/pay/unifiedorder";
const ORDER_QUERY: &str = "/pay/orderquery";

/// Bounds every wait on the server, so a regression fails instead of hanging.
const GUARD: Duration = Duration::from_secs(20);

/// An answer read off the wire.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Writes `request` on a fresh connection and reads one answer.
async fn raw(addr: SocketAddr, request: &[u8]) -> Raw {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_answer(&mut s).await
}

/// Reads one HTTP/1.1 answer with a `Content-Length` body.
async fn read_answer(s: &mut TcpStream) -> Raw {
    let mut buf = Vec::new();
    let read = async {
        loop {
            if let Some(answer) = parse(&buf) {
                return answer;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.expect("reading the answer");
            assert!(
                n > 0,
                "closed before a whole answer: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(GUARD, read).await.expect("an answer")
}

fn parse(buf: &[u8]) -> Option<Raw> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let body = buf.get(end + 4..end + 4 + len)?.to_vec();
    Some(Raw {
        status,
        headers,
        body,
    })
}

/// Checks a raw answer is the problem `code` with `status`, carrying the
/// request id of its header; returns the document.
fn problem(r: &Raw, status: u16, code: &str) -> Value {
    let text = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, status, "expected {status} `{code}`: {text}");
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{text}"
    );
    let doc: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(doc["code"], code, "{doc}");
    assert_eq!(doc["status"], status, "{doc}");
    assert_eq!(doc["type"], format!("urn:payhost:problem:{code}"), "{doc}");
    assert!(
        doc["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{doc}"
    );
    assert_eq!(
        Some(doc["request_id"].as_str().unwrap()),
        r.header("x-request-id"),
        "{doc}"
    );
    doc
}

/// The same check for a reqwest answer.
async fn problem_of(resp: reqwest::Response, status: u16, code: &str) -> Value {
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let status_got = resp.status().as_u16();
    let body = resp.bytes().await.unwrap().to_vec();
    problem(
        &Raw {
            status: status_got,
            headers,
            body,
        },
        status,
        code,
    )
}

fn head(method: &str, path: &str, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: payhost\r\nAuthorization: Bearer {MERCHANT_KEY}\r\n\
         Connection: close\r\n{extra}\r\n"
    )
}

fn sim_calls(f: &Front, path: &str) -> usize {
    f.sim.requests().iter().filter(|r| r.path == path).count()
}

#[tokio::test]
async fn framework_refusals_are_problem_documents() {
    let f = Front::start(
        "hostile-framework",
        Options {
            server_toml: "limits.body_timeout_ms = 300".into(),
            admin_token: Some("adm_hostile_9f2c".into()),
            ..Options::default()
        },
    )
    .await;
    let addr = f.running.addr;

    // A 10 MB body is refused from its Content-Length, before it is sent.
    let r = raw(
        addr,
        head(
            "POST",
            "/v1/payments",
            "Content-Type: application/json\r\nContent-Length: 10485760\r\n",
        )
        .as_bytes(),
    )
    .await;
    let doc = problem(&r, 413, "payload_too_large");
    assert_eq!(doc["limit"], "server.limits.max_body_bytes");
    assert_eq!(doc["max_bytes"], 64 * 1024);

    // An adapter upload has its own, larger limit.
    let r = raw(
        addr,
        head(
            "PUT",
            "/admin/adapters/wechat-v2",
            "Content-Type: application/wasm\r\nContent-Length: 41943040\r\n",
        )
        .as_bytes(),
    )
    .await;
    let doc = problem(&r, 413, "payload_too_large");
    assert_eq!(doc["limit"], "adapter_component_bytes");
    assert_eq!(doc["max_bytes"], 32 * 1024 * 1024);

    // A chunked body without a length is refused once it crosses the limit.
    let mut req = head(
        "POST",
        "/v1/payments",
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
    )
    .into_bytes();
    for _ in 0..8 {
        req.extend_from_slice(format!("2000\r\n{}\r\n", " ".repeat(0x2000)).as_bytes());
    }
    req.extend_from_slice(b"1\r\n \r\n");
    let r = raw(addr, &req).await;
    problem(&r, 413, "payload_too_large");

    // A body that stops arriving is 408 once `body_timeout_ms` has passed.
    let r = raw(
        addr,
        format!(
            "{}{{\"merchant_",
            head(
                "POST",
                "/v1/payments",
                "Content-Type: application/json\r\nContent-Length: 200\r\n"
            )
        )
        .as_bytes(),
    )
    .await;
    let doc = problem(&r, 408, "body_timeout");
    assert_eq!(doc["limit"], "server.limits.body_timeout_ms");

    // No route, and a route without this method.
    problem(
        &raw(addr, head("GET", "/v2/payments", "").as_bytes()).await,
        404,
        "not_found",
    );
    let doc = problem(
        &raw(addr, head("DELETE", "/v1/payments", "").as_bytes()).await,
        405,
        "method_not_allowed",
    );
    assert!(doc["detail"].as_str().unwrap().contains("DELETE"), "{doc}");

    // Path segments that do not decode: axum's own rejection, as a problem,
    // on the API and on the notify endpoint.
    problem(
        &raw(addr, head("GET", "/v1/payments/%FF%FE", "").as_bytes()).await,
        400,
        "validation_failed",
    );
    problem(
        &raw(
            addr,
            head("POST", "/v1/notify/wechat-v2/%FF", "Content-Length: 0\r\n").as_bytes(),
        )
        .await,
        400,
        "validation_failed",
    );

    // A query that does not parse.
    problem(
        &raw(
            addr,
            head("GET", "/v1/payments/NO-1?refresh=perhaps", "").as_bytes(),
        )
        .await,
        400,
        "validation_failed",
    );

    // After all of that the server still serves, and none of it was sent on.
    assert_eq!(
        f.create("FRAME-0001", 100).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), 1);
}

#[tokio::test]
async fn connections_that_never_finish_their_headers_cannot_hold_the_server() {
    // The issue's 250 slow connections, against a cap of 100.
    const SLOW: usize = 250;
    const CAP: usize = 100;
    let f = Front::start(
        "hostile-slowloris",
        Options {
            server_toml: format!(
                "limits.max_connections = {CAP}\nlimits.header_read_timeout_ms = 500"
            ),
            ..Options::default()
        },
    )
    .await;
    let addr = f.running.addr;

    // Half send nothing, half a request line and one header, and never
    // the rest.
    let mut idle = Vec::new();
    for i in 0..SLOW {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 1 {
            s.write_all(b"POST /v1/payments HTTP/1.1\r\nHost: payhost\r\n")
                .await
                .unwrap();
        }
        idle.push(s);
    }

    // A normal client is served all the same.
    // No pooled connections: each request shows a fresh one gets in.
    let client = reqwest::Client::builder()
        .timeout(GUARD)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = client.get(f.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client
        .post(f.url("/v1/payments"))
        .bearer_auth(MERCHANT_KEY)
        .json(&order_body("SLOW-0001", 100))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // Every slow connection, also those that waited beyond the cap, is
    // closed by the server: the socket reads end of stream.
    for (i, s) in idle.iter_mut().enumerate() {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(GUARD, s.read(&mut byte))
            .await
            .unwrap_or_else(|_| panic!("connection {i} is still open"))
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert_eq!(n, 0, "connection {i} got an answer instead of being closed");
    }

    // The server serves on after the flood.
    let r = client.get(f.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn text_a_provider_cannot_carry_is_refused_before_any_provider_call() {
    let f = Front::start("hostile-text", Options::default()).await;
    let cases: Vec<(&str, &str, Value)> = vec![
        ("TEXT-0001", "description", json!("Tea\u{0}")),
        ("TEXT-0002", "attach", json!("a\u{1}b")),
        ("TEXT-0003", "payer.openid", json!("oUpF8uMu\nAJO")),
        ("TEXT-0004", "payer.app_id", json!("wx\u{7f}")),
        ("TEXT-0005", "payer.client_ip", json!("203.0.113.7\r")),
        ("TEXT-0006", "description", json!("x".repeat(513))),
    ];
    for (no, field, value) in &cases {
        let mut body = order_body(no, 100);
        match field.split_once('.') {
            Some((outer, inner)) => body[outer][inner] = value.clone(),
            None => body[*field] = value.clone(),
        }
        let r = f
            .as_merchant(Method::POST, "/v1/payments")
            .json(&body)
            .send()
            .await
            .unwrap();
        let doc = problem_of(r, 400, "validation_failed").await;
        assert_eq!(doc["field"], *field, "{doc}");
        assert!(doc["detail"].as_str().unwrap().contains(field), "{doc}");
        // Nothing was kept of it.
        let r = f
            .as_merchant(Method::GET, &format!("/v1/payments/{no}"))
            .send()
            .await
            .unwrap();
        problem_of(r, 404, "not_found").await;
    }
    // A refund reason too.
    let r = f
        .as_merchant(Method::POST, "/v1/payments/TEXT-0001/refunds")
        .json(&json!({"refund_no": "R-1", "amount": 1, "reason": "oops\u{0}"}))
        .send()
        .await
        .unwrap();
    let doc = problem_of(r, 400, "validation_failed").await;
    assert_eq!(doc["field"], "reason", "{doc}");
    assert!(f.sim.requests().is_empty(), "{:?}", f.sim.requests());

    // The same numbers with clean text are new orders.
    for (no, _, _) in &cases {
        assert_eq!(
            f.create(no, 100).await.status(),
            StatusCode::CREATED,
            "{no}"
        );
    }
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), cases.len());
}

#[tokio::test]
async fn a_create_the_adapter_refused_leaves_nothing_and_its_key_replays_the_refusal() {
    let f = Front::start("hostile-refused", Options::default()).await;
    // A mini-program payment for another app than the merchant's: the
    // adapter refuses it before asking WeChat anything.
    let mut refused = order_body("GONE-0001", 100);
    refused["payer"]["app_id"] = serde_json::json!("wx0000000000000000");
    let send = |key: &'static str, body: &Value| {
        f.as_merchant(Method::POST, "/v1/payments")
            .header("idempotency-key", key)
            .json(body)
            .send()
    };
    let doc = problem_of(
        send("key-1", &refused).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(doc["detail"].as_str().unwrap().contains("openid"), "{doc}");
    let gone = || async {
        let r = f
            .as_merchant(Method::GET, "/v1/payments/GONE-0001")
            .send()
            .await
            .unwrap();
        problem_of(r, 404, "not_found").await;
    };
    gone().await;

    // The key keeps its answer: the refused request again is the same
    // refusal, replayed (the first request's id and all), and still leaves
    // nothing.
    let r = send("key-1", &refused).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_eq!(r.json::<Value>().await.unwrap(), doc);
    gone().await;
    // That key belongs to the refused request; the corrected one needs its own.
    problem_of(
        send("key-1", &order_body("GONE-0001", 100)).await.unwrap(),
        409,
        "idempotency_key_reused",
    )
    .await;
    assert!(f.sim.requests().is_empty(), "{:?}", f.sim.requests());

    // The number was never used up: the valid order takes it.
    let r = send("key-2", &order_body("GONE-0001", 100)).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "pending");
    assert_eq!(sim_calls(&f, UNIFIED_ORDER), 1);
}

#[tokio::test]
async fn refresh_of_an_order_no_provider_accepted_answers_from_the_store() {
    let f = Front::start("hostile-refresh", Options::default()).await;
    // WeChat refuses for good: the order is `failed` at creation.
    f.sim.fail_next("NOAUTH");
    problem_of(f.create("NEVER-0001", 100).await, 502, "provider_rejected").await;

    let r = f
        .as_merchant(Method::GET, "/v1/payments/NEVER-0001?refresh=true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("payhost-adapter-digest").is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "failed");
    assert_eq!(sim_calls(&f, ORDER_QUERY), 0);

    // An order WeChat accepted is asked about.
    assert_eq!(
        f.create("ASKED-0001", 100).await.status(),
        StatusCode::CREATED
    );
    let r = f
        .as_merchant(Method::GET, "/v1/payments/ASKED-0001?refresh=true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("payhost-adapter-digest").is_some());
    assert_eq!(sim_calls(&f, ORDER_QUERY), 1);
}

/// The host counts what it sent, so whatever an adapter answers, a create
/// that never reached a provider leaves nothing, and one that did keeps its
/// number.
#[tokio::test]
async fn a_create_that_never_reached_a_provider_leaves_nothing_and_one_that_did_stays() {
    let dir = payhost_e2e::temp_dir("hostile-unsent");
    let adapters = dir.join("adapters");
    std::fs::create_dir_all(&adapters).unwrap();
    for name in ["wechat-v2", "hostile"] {
        std::fs::write(
            adapters.join(format!("{name}.wasm")),
            payhost_e2e::component(name),
        )
        .unwrap();
    }
    // A provider that answers 5 MiB: the request reached it, the answer is refused.
    let big = payhost_e2e::Responder::start(axum::Router::new().route(
        "/big",
        axum::routing::get(|| async { vec![b'x'; 5 * 1024 * 1024] }),
    ))
    .await;
    let extra = format!(
        r#"
[[merchants]]
id = "shop-h"
api_keys = ["{hash}"]
adapter = "hostile"
currency = "EUR"
industry = "physical"

[merchants.limits]
cny_rate = "0.13"

[merchants.config]
api_key = "file:$DATA_DIR/wechat.key"

# The slot may reach the 5 MiB provider (a declared host needs the operator's list too).
[adapters.hostile]
egress = ["{big_host}", "localhost:{big_port}"]
"#,
        hash = payhost::config::api_key_hash("pk_test_hostile_77"),
        big_host = big.url("").trim_start_matches("http://"),
        big_port = big.url("").rsplit(':').next().unwrap(),
    );
    let f = Front::start(
        "hostile-unsent",
        Options {
            data_dir: Some(dir.clone()),
            adapters_dir: Some(adapters),
            extra_toml: extra,
            ..Options::default()
        },
    )
    .await;
    let create = |no: &str, description: &str, attach: Option<String>| {
        f.client
            .post(f.url("/v1/payments"))
            .bearer_auth("pk_test_hostile_77")
            .json(&json!({
                "merchant_order_no": no, "amount": 100, "currency": "EUR",
                "description": description, "method": "test", "attach": attach,
            }))
            .send()
    };
    let status_of = |no: &'static str| {
        let req = f
            .client
            .get(f.url(&format!("/v1/payments/{no}")))
            .bearer_auth("pk_test_hostile_77")
            .send();
        async move { req.await.unwrap().status().as_u16() }
    };
    // Refused by the egress policy before it was sent: 502, nothing left.
    let r = create("UNSENT-0001", "egress", None).await.unwrap();
    problem_of(r, 502, "egress_denied").await;
    assert_eq!(status_of("UNSENT-0001").await, 404);
    // A trap before any request: nothing left either.
    let r = create("UNSENT-0002", "panic", None).await.unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());
    assert_eq!(status_of("UNSENT-0002").await, 404);
    // Sent, then its answer refused: the provider saw the number, it stays.
    let r = create("SENT-0001", "big", Some(big.url("/big")))
        .await
        .unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());
    assert_eq!(status_of("SENT-0001").await, 200);
}
