//! What an attacker or a bad merchant cannot do, over real HTTP: the notify
//! endpoint's size, rate and concurrency bounds and truncated records; a
//! webhook worker that neither spins on events it cannot deliver nor lets
//! one merchant's hanging endpoint hold up another's; retention that
//! deletes what has expired and nothing else.

use payhost::store::{NewEvent, Order, OrderState, SqliteStore, Store};
use payhost_e2e::front::{Front, Options, order_body};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const NOTIFY: &str = "/v1/notify/wechat-v2/shop-1";
const SHOP2_KEY: &str = "pk_test_shop2_77e1b0";

/// A `[[merchants]]` table for `id` on the simulator's account, with a
/// callback when given.
fn merchant_toml(id: &str, api_key: &str, callback: Option<&str>) -> String {
    let callback = callback
        .map(|url| {
            format!("callback_url = \"{url}\"\nwebhook_secret = \"file:$DATA_DIR/webhook.secret\"")
        })
        .unwrap_or_default();
    format!(
        r#"
[[merchants]]
id = "{id}"
api_keys = ["{hash}"]
adapter = "wechat-v2"
currency = "CNY"
industry = "physical"
{callback}

[merchants.config]
appid = "{appid}"
mch_id = "{mch}"
api_key = "file:$DATA_DIR/wechat.key"
base_url = "$SIM_URL"
"#,
        hash = payhost::config::api_key_hash(api_key),
        appid = payhost_e2e::front::APPID,
        mch = payhost_e2e::front::MCH_ID,
    )
}

/// A forged WeChat notification of `len` bytes (it never verifies).
fn forged(len: usize) -> String {
    let mut body = String::from("<xml><return_code>SUCCESS</return_code><sign>0</sign><pad>");
    body.push_str(&"x".repeat(len.saturating_sub(body.len() + 12)));
    body.push_str("</pad></xml>");
    body
}

async fn post_notify(f: &Front, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    f.client
        .post(f.url(path))
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn problem(resp: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(
        resp.headers()["content-type"],
        "application/problem+json",
        "{resp:?}"
    );
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["code"], code, "{doc}");
    doc
}

/// The value of one sample in the `/metrics` text (0 when absent).
async fn metric(f: &Front, name: &str, label: &str) -> u64 {
    f.metrics()
        .await
        .lines()
        .find(|l| l.starts_with(name) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}

/// Polls `check` every 20 ms for at most `bound`.
async fn within<F, Fut>(bound: Duration, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + bound;
    while tokio::time::Instant::now() < end {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within {bound:?}: {what}");
}

async fn notifications(f: &Front, merchant: &str) -> Vec<payhost::store::NotificationRecord> {
    f.running
        .state
        .store
        .list_notifications(merchant, 1000, None)
        .await
        .unwrap()
}

async fn pay(f: &Front, no: &str) {
    assert_eq!(f.create(no, 100).await.status(), StatusCode::CREATED);
    let answers = f.sim.notify(no, Default::default()).await.unwrap();
    assert!(answers[0].acknowledged(), "{answers:?}");
}

#[tokio::test]
async fn an_oversized_notification_is_413_and_what_did_not_verify_is_kept_truncated() {
    let f = Front::start("notify-size", Options::default()).await;

    // Declared too large: refused before a byte of the body is read.
    let r = post_notify(&f, NOTIFY, forged(100 * 1024)).await;
    let doc = problem(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(doc["limit"], "notify.max_body_bytes");
    // Too large without a length (chunked): read up to the limit only.
    let big = forged(200 * 1024).into_bytes();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(8192).map(|c| Ok(c.to_vec())).collect();
    let r = post_notify(
        &f,
        NOTIFY,
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
    )
    .await;
    problem(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // Within the limit but forged: the adapter's FAIL answer.
    let r = post_notify(&f, NOTIFY, forged(10_000)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("FAIL"));
    // A genuine one is kept whole.
    pay(&f, "SIZE-0001").await;
    // An unknown merchant or adapter: 404, nothing stored.
    for path in ["/v1/notify/wechat-v2/shop-9", "/v1/notify/alipay/shop-1"] {
        let r = post_notify(&f, path, forged(60_000)).await;
        problem(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert!(notifications(&f, "shop-9").await.is_empty());

    let records = notifications(&f, "shop-1").await;
    let summary: Vec<(&str, usize, i64)> = records
        .iter()
        .map(|n| (n.verdict.as_str(), n.body.len(), n.received_bytes))
        .collect();
    assert_eq!(
        summary[..3],
        [
            ("too_large", 0, 100 * 1024),
            ("too_large", 2048, 64 * 1024 + 1),
            ("unverified", 2048, 10_000),
        ]
    );
    assert_eq!(records[1].body, big[..2048]);
    assert_eq!(records[3].verdict, "applied");
    assert_eq!(records[3].body.len() as i64, records[3].received_bytes);
    for n in &records[..3] {
        let kept = n.headers.to_string().len() + n.query.len();
        assert!(kept <= 1024 + 64, "headers kept: {kept} bytes");
    }
    assert_eq!(
        metric(&f, "payhost_notify_refused_total", "reason=\"too_large\"").await,
        2
    );
}

#[tokio::test]
async fn the_notify_rate_is_per_merchant_429_with_retry_after() {
    let f = Front::start(
        "notify-rate",
        Options {
            extra_toml: format!(
                "[notify]\nper_merchant_per_min = 3\n{}",
                merchant_toml("shop-2", SHOP2_KEY, None)
            ),
            ..Default::default()
        },
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            post_notify(&f, NOTIFY, forged(500)).await.status(),
            StatusCode::OK
        );
    }
    let r = post_notify(&f, NOTIFY, forged(500)).await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "Retry-After: {retry}");
    let doc = problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(doc["limit"], "notify.per_merchant_per_min");
    // Refused requests are not stored; the other merchant is unaffected.
    assert_eq!(notifications(&f, "shop-1").await.len(), 3);
    let r = post_notify(&f, "/v1/notify/wechat-v2/shop-2", forged(500)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        metric(
            &f,
            "payhost_notify_refused_total",
            "reason=\"rate_limited\""
        )
        .await,
        1
    );
}

#[tokio::test]
async fn forgeries_past_their_budget_close_that_merchant_only() {
    let f = Front::start(
        "notify-forged",
        Options {
            extra_toml: format!(
                "[notify]\nunverified_burst = 2\n{}",
                merchant_toml("shop-2", SHOP2_KEY, None)
            ),
            ..Default::default()
        },
    )
    .await;
    // The third forgery overdraws the budget; the fourth is not parsed.
    for _ in 0..3 {
        let r = post_notify(&f, NOTIFY, forged(500)).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = post_notify(&f, NOTIFY, forged(500)).await;
    assert!(r.headers().contains_key("retry-after"));
    let doc = problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(doc["limit"], "notify.unverified_per_min");
    assert_eq!(notifications(&f, "shop-1").await.len(), 3);
    let r = post_notify(&f, "/v1/notify/wechat-v2/shop-2", forged(500)).await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// Once a merchant is closed, a forgery on a new connection is answered at
/// the connection, its body unread: the same 429, then the connection
/// ends. Other routes and merchants on new connections are served as usual.
#[tokio::test]
async fn a_closed_merchant_is_answered_at_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = Front::start(
        "notify-closed-early",
        Options {
            extra_toml: format!(
                "[notify]\nunverified_burst = 1\nunverified_per_min = 1\n{}",
                merchant_toml("shop-2", SHOP2_KEY, None)
            ),
            ..Default::default()
        },
    )
    .await;
    for _ in 0..2 {
        post_notify(&f, NOTIFY, forged(500)).await;
    }
    let raw = |path: &str, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: text/xml\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let exchange = |request: String| async move {
        let mut c = tokio::net::TcpStream::connect(f.running.addr)
            .await
            .unwrap();
        c.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        // Read until the server ends the connection.
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    let body = forged(16_000);
    let served = "payhost_http_request_duration_seconds_count";
    let before = metric(&f, served, "notify").await;
    let answer = exchange(raw(NOTIFY, &body)).await;
    // Not served by the router: no request id, no request counted.
    assert_eq!(metric(&f, served, "notify").await, before);
    assert!(
        !answer.to_ascii_lowercase().contains("x-request-id"),
        "{answer}"
    );
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(lower.contains("\r\nretry-after: "), "{answer}");
    let doc: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(doc["code"], "rate_limited");
    assert_eq!(doc["limit"], "notify.unverified_per_min");
    // Nothing recorded, counted as refused, the other merchant served.
    assert_eq!(notifications(&f, "shop-1").await.len(), 2);
    assert!(
        metric(
            &f,
            "payhost_notify_refused_total",
            "reason=\"unverified_budget\""
        )
        .await
            >= 1
    );
    let other = exchange(raw("/v1/notify/wechat-v2/shop-2", &forged(200))).await;
    assert!(other.starts_with("HTTP/1.1 200 "), "{other}");
    // A request line that is not whole yet is left to the endpoint, which
    // refuses it the same way once it has arrived.
    let mut c = tokio::net::TcpStream::connect(f.running.addr)
        .await
        .unwrap();
    let request = raw(NOTIFY, &body);
    c.write_all(&request.as_bytes()[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.write_all(&request.as_bytes()[10..]).await.unwrap();
    let mut head = [0u8; 12];
    c.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 429");
}

#[tokio::test]
async fn notify_concurrency_is_per_merchant_503_beyond() {
    let f = Front::start(
        "notify-busy",
        Options {
            extra_toml: format!(
                "[notify]\nper_merchant_concurrent = 1\nbody_timeout_ms = 60000\n{}",
                merchant_toml("shop-2", SHOP2_KEY, None)
            ),
            ..Default::default()
        },
    )
    .await;
    // One notification whose body keeps coming holds shop-1's only slot.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tx.send(Ok(b"<xml>".to_vec())).await.unwrap();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let held = tokio::spawn({
        let req = f
            .client
            .post(f.url(NOTIFY))
            .body(reqwest::Body::wrap_stream(stream));
        async move { req.send().await.unwrap().status() }
    });
    let busy = Arc::new(AtomicUsize::new(0));
    within(Duration::from_secs(10), "a second request is 503", || {
        let (f, busy) = (&f, busy.clone());
        async move {
            let r = post_notify(f, NOTIFY, forged(200)).await;
            if r.status() != StatusCode::SERVICE_UNAVAILABLE {
                return false;
            }
            assert_eq!(r.headers()["retry-after"], "1");
            let doc = problem(r, StatusCode::SERVICE_UNAVAILABLE, "notify_busy").await;
            assert_eq!(doc["limit"], "notify.per_merchant_concurrent");
            busy.fetch_add(1, Ordering::SeqCst);
            true
        }
    })
    .await;
    // Meanwhile the other merchant is served.
    let r = post_notify(&f, "/v1/notify/wechat-v2/shop-2", forged(200)).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The held request completes once its body ends, and frees the slot.
    tx.send(Ok(b"</xml>".to_vec())).await.unwrap();
    drop(tx);
    assert_eq!(held.await.unwrap(), StatusCode::OK);
    assert_eq!(
        post_notify(&f, NOTIFY, forged(200)).await.status(),
        StatusCode::OK
    );
    assert_eq!(busy.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unverified_notifications_are_pruned_after_retention_and_verified_ones_kept() {
    let f = Front::start(
        "notify-retention",
        Options {
            extra_toml: "[retention]\ninterval_ms = 100\nunverified_notifications_secs = 1\n"
                .into(),
            ..Default::default()
        },
    )
    .await;
    // The verified one is the older: age alone does not remove it.
    pay(&f, "KEEP-0001").await;
    post_notify(&f, NOTIFY, forged(300)).await;
    let kinds = |records: Vec<payhost::store::NotificationRecord>| {
        records.into_iter().map(|n| n.verdict).collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(notifications(&f, "shop-1").await),
        ["applied", "unverified"]
    );
    within(
        Duration::from_secs(10),
        "the unverified one pruned",
        || async { kinds(notifications(&f, "shop-1").await) == ["applied"] },
    )
    .await;
    assert!(metric(&f, "payhost_pruned_rows_total", "kind=\"notifications\"").await >= 1);
}

#[tokio::test]
async fn pruning_removes_old_idempotency_records_and_delivered_events_and_nothing_else() {
    let f = Front::start(
        "retention",
        Options {
            extra_toml: format!(
                "[retention]\ninterval_ms = 100\nidempotency_secs = 1\ndelivered_events_secs = 1\n{}",
                merchant_toml("shop-2", SHOP2_KEY, None)
            ),
            ..Default::default()
        },
    )
    .await;
    let create = || {
        f.as_merchant(reqwest::Method::POST, "/v1/payments")
            .header("idempotency-key", "cart-1")
            .json(&order_body("PRUNE-0001", 100))
    };
    assert_eq!(create().send().await.unwrap().status(), StatusCode::CREATED);
    f.sim
        .notify("PRUNE-0001", Default::default())
        .await
        .unwrap();
    f.eventually("the event delivered", || f.receiver.accepted().len() == 1)
        .await;
    post_notify(&f, NOTIFY, forged(300)).await;
    // shop-2 has no callback: its event is undeliverable, not delivered.
    let r = f
        .client
        .post(f.url("/v1/payments"))
        .bearer_auth(SHOP2_KEY)
        .json(&order_body("PRUNE-0002", 100))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    f.sim
        .notify("PRUNE-0002", Default::default())
        .await
        .unwrap();

    within(Duration::from_secs(10), "both kinds pruned", || async {
        metric(&f, "payhost_pruned_rows_total", "kind=\"idempotency\"").await >= 1
            && metric(&f, "payhost_pruned_rows_total", "kind=\"outbox\"").await >= 1
    })
    .await;
    // The key is forgotten: the same request is not a replay any more (and
    // still charges nothing twice: the order number is known).
    let r = create().send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert!(r.headers().get("idempotent-replayed").is_none());
    // The delivered event is gone; everything else is still there.
    assert_eq!(f.get_json("/v1/events").await["events"], json!([]));
    let shop2: Value = f
        .client
        .get(f.url("/v1/events"))
        .bearer_auth(SHOP2_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let delivery = &shop2["events"][0]["delivery"];
    assert_eq!(delivery["status"], "undeliverable", "{shop2}");
    assert_eq!(delivery["reason"], "no_callback_url", "{shop2}");
    assert_eq!(f.get_json("/v1/payments/PRUNE-0001").await["state"], "paid");
    let verdicts: Vec<String> = notifications(&f, "shop-1")
        .await
        .into_iter()
        .map(|n| n.verdict)
        .collect();
    assert_eq!(verdicts, ["applied", "unverified"]);
    assert_eq!(
        metric(&f, "payhost_pruned_rows_total", "kind=\"notifications\"").await,
        0
    );
}

#[tokio::test]
async fn events_of_a_merchant_no_longer_configured_are_marked_and_the_worker_does_not_spin() {
    // A store with two events of merchant `gone`, as a configuration that
    // removed it leaves behind.
    let dir = payhost_e2e::temp_dir("undeliverable");
    {
        let store = SqliteStore::open(dir.join("payhost.db")).unwrap();
        let mut order: Order = serde_json::from_value(json!({
            "merchant_id": "gone", "merchant_order_no": "GONE-0001", "adapter": "wechat-v2",
            "adapter_digest": "sha256:0", "method": "wechat_mini_program", "description": "tea",
            "amount_minor": 100, "currency": "CNY", "state": "pending",
            "provider_trade_no": null, "channel_transaction_id": null, "payer_app_id": null,
            "payer_openid": null, "client_ip": null, "pay_action": null, "refunded_minor": 0,
            "expires_at": null, "paid_at": null, "attach": null, "metadata": null,
            "next_poll_at": null, "poll_attempts": 0, "created_at": 1, "updated_at": 1,
            "version": 1
        }))
        .unwrap();
        order = store.insert_order(&order).await.unwrap().into_inner();
        order.state = OrderState::Paid;
        let ev = |t: &str| NewEvent {
            event_type: t.into(),
            payload: json!({"merchant_order_no": "GONE-0001"}),
        };
        store
            .update_order(&order, &[ev("payment.paid"), ev("refund.succeeded")])
            .await
            .unwrap();
    }
    let mut f = Front::start(
        "undeliverable",
        Options {
            data_dir: Some(dir.clone()),
            ..Default::default()
        },
    )
    .await;
    let store = f.running.state.store.clone();
    within(Duration::from_secs(10), "both events marked", || async {
        let events = store.list_events("gone", 10, None).await.unwrap();
        events.len() == 2
            && events
                .iter()
                .all(|e| e.gave_up && e.undeliverable.as_deref() == Some("merchant_not_configured"))
    })
    .await;
    assert_eq!(
        metric(
            &f,
            "payhost_webhook_undeliverable_total",
            "reason=\"merchant_not_configured\""
        )
        .await,
        2
    );
    // One outbox read per 200 ms tick, not a busy loop.
    let before = metric(&f, "payhost_webhook_delivery_passes_total", "").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let passes = metric(&f, "payhost_webhook_delivery_passes_total", "").await - before;
    assert!(passes <= 10, "{passes} outbox reads in one second");

    // Configured again, with a callback: the next start delivers them.
    let hooks = payhost_e2e::front::Receiver::default();
    let callback = payhost_e2e::Responder::start(
        axum::Router::new()
            .route("/gone", axum::routing::post(accept))
            .with_state(hooks.clone()),
    )
    .await;
    f.options.extra_toml = merchant_toml("gone", "pk_test_gone_1", Some(&callback.url("/gone")));
    let f = f.restart().await;
    // The receiver sees a delivery before the worker records it, so wait
    // on the store, which is what the merchant's guarantee is about.
    let store = f.running.state.store.clone();
    within(
        Duration::from_secs(10),
        "both revived events recorded delivered",
        || async {
            let events = store.list_events("gone", 10, None).await.unwrap();
            events.len() == 2 && events.iter().all(|e| e.delivered_at.is_some())
        },
    )
    .await;
    assert_eq!(hooks.deliveries.lock().unwrap().len(), 2);
}

async fn accept(
    axum::extract::State(r): axum::extract::State<payhost_e2e::front::Receiver>,
    body: axum::body::Bytes,
) -> StatusCode {
    r.deliveries
        .lock()
        .unwrap()
        .push(payhost_e2e::front::Delivery {
            headers: Default::default(),
            body: body.to_vec(),
            accepted: true,
        });
    StatusCode::NO_CONTENT
}

#[tokio::test]
async fn a_merchant_whose_endpoint_hangs_does_not_delay_another() {
    // Accepts connections and never answers.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_url = format!("http://{}/hooks", hang.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    tokio::spawn({
        let connections = connections.clone();
        async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = hang.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        }
    });
    let f = Front::start(
        "hang",
        Options {
            // Far longer than the test: shop-2's attempt is still waiting
            // when shop-1's event must already be delivered.
            webhook_timeout_ms: 60_000,
            extra_toml: merchant_toml("shop-2", SHOP2_KEY, Some(&hang_url)),
            ..Default::default()
        },
    )
    .await;
    let r = f
        .client
        .post(f.url("/v1/payments"))
        .bearer_auth(SHOP2_KEY)
        .json(&order_body("HANG-0001", 100))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    f.sim.notify("HANG-0001", Default::default()).await.unwrap();
    f.eventually("shop-2's delivery is hanging", || {
        connections.load(Ordering::SeqCst) >= 1
    })
    .await;

    pay(&f, "FREE-0001").await;
    f.eventually("shop-1's event delivered", || {
        f.receiver.accepted().len() == 1
    })
    .await;
    // shop-2's first attempt has not even failed yet.
    let stuck = f
        .running
        .state
        .store
        .list_events("shop-2", 10, None)
        .await
        .unwrap();
    assert_eq!(stuck.len(), 1);
    assert_eq!(stuck[0].attempts, 0, "{stuck:?}");
    assert!(stuck[0].delivered_at.is_none());
}
