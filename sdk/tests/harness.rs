//! The SDK's step/replay machinery, driven through the native harness with
//! small adapters written for the purpose.

use payhost_sdk::prelude::*;
use payhost_sdk::testing::Harness;
use std::sync::atomic::{AtomicU64, Ordering};

fn order(description: &str) -> OrderRequest {
    OrderRequest {
        merchant_order_no: "T1".into(),
        amount: Money {
            minor: 100,
            currency: "CNY".into(),
        },
        description: description.into(),
        method: "test".into(),
        payer: Payer {
            app_id: None,
            openid: None,
            client_ip: None,
        },
        expires_at: None,
        attach: None,
    }
}

fn info() -> AdapterInfo {
    AdapterInfo {
        name: "test".into(),
        version: "0.0.0".into(),
        contract_version: CONTRACT_VERSION.into(),
        methods: vec!["test".into()],
        currencies: vec!["CNY".into()],
        capabilities: Capabilities {
            payment_notifications: false,
            refund_notifications: false,
            partial_refunds: false,
            query_by_merchant_order_no: true,
            close: false,
            refund_query: false,
            payouts: false,
            payout_notifications: false,
            contracts: false,
            contract_notifications: false,
            deduction_notifications: false,
        },
        egress_hosts: vec!["provider.test".into()],
        field_rules: vec![],
        config_schema: vec![ConfigField {
            name: "base_url".into(),
            description: "endpoint".into(),
            kind: FieldKind::Url,
            required: false,
            default: Some("https://provider.test".into()),
        }],
    }
}

/// Sends two requests in sequence, the second built from the first answer,
/// each carrying a nonce; signs with the configured secret.
struct TwoCalls;

impl Adapter for TwoCalls {
    fn describe() -> AdapterInfo {
        info()
    }
    fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
        let base = ctx.config().text("base_url")?;
        let key = ctx.config().secret("key")?;
        let nonce = ctx.nonce(16);
        let sig = ctx.hmac(
            DigestAlgorithm::Sha256,
            key,
            KeyEncoding::Raw,
            &[Part::Text(nonce.clone())],
        )?;
        let first = ctx.send(http::post(
            http::join(base, "/a"),
            "text/plain",
            format!("{nonce}:{}", encoding::hex_lower(&sig)),
        ))?;
        let token = String::from_utf8(first.body).map_err(|_| Error::malformed("not utf-8"))?;
        let second = ctx.send(http::post(http::join(base, "/b"), "text/plain", token))?;
        if second.status != 200 {
            return Err(Error::rejected(
                "HTTP",
                format!("status {}", second.status),
                second.status >= 500,
            ));
        }
        Ok(OrderCreated {
            order: OrderRef {
                merchant_order_no: req.merchant_order_no.clone(),
                provider_trade_no: Some(String::from_utf8_lossy(&second.body).into()),
                channel_transaction_id: None,
            },
            action: PayAction::Redirect("https://pay.test/x".into()),
        })
    }
    fn query(_: &mut Ctx, _: &QueryRequest) -> Result<TradeStatus> {
        Err(Error::unsupported("query"))
    }
    fn refund(_: &mut Ctx, _: &RefundRequest) -> Result<RefundStatus> {
        Err(Error::unsupported("refund"))
    }
    fn parse_notify(_: &mut Ctx, _: &InboundHttp) -> Result<NotifyOutcome> {
        Err(Error::bad_signature("never valid").with_ack(http::response(400, "text/plain", "FAIL")))
    }
}

#[test]
fn straight_line_code_runs_as_replayed_steps() {
    let mut h = Harness::<TwoCalls>::new()
        .with_schema_defaults()
        .secret("key", "k3y")
        .respond(|req| {
            if req.url.ends_with("/a") {
                http::response(200, "text/plain", "tok-1")
            } else {
                assert_eq!(
                    req.body, b"tok-1",
                    "second request is built from the first answer"
                );
                http::response(200, "text/plain", "trade-9")
            }
        });
    let created = h.unified_order(&order("x")).unwrap();
    assert_eq!(created.order.provider_trade_no.as_deref(), Some("trade-9"));
    // Each request was performed exactly once although the operation ran
    // three steps (two suspensions and the final one).
    let urls: Vec<_> = h.sent().iter().map(|r| r.url.as_str()).collect();
    assert_eq!(urls, ["https://provider.test/a", "https://provider.test/b"]);
    // The signature in the first request is HMAC-SHA256(k3y, nonce).
    let body = String::from_utf8(h.sent()[0].body.clone()).unwrap();
    let (nonce, sig) = body.split_once(':').unwrap();
    assert_eq!(nonce.len(), 16);
    let expect = h
        .secrets()
        .hmac(
            payhost_sdk::native::DigestAlgorithm::Sha256,
            0,
            payhost_sdk::native::KeyEncoding::Raw,
            &[payhost_sdk::native::Part::Text(nonce)],
        )
        .unwrap();
    assert_eq!(sig, encoding::hex_lower(&expect));
}

#[test]
fn same_seed_same_nonces_other_seed_other_nonces() {
    let run = |seed| {
        let mut h = Harness::<TwoCalls>::new()
            .with_schema_defaults()
            .secret("key", "k")
            .seed(seed)
            .respond(|_| http::response(200, "text/plain", "t"));
        h.unified_order(&order("x")).unwrap();
        h.sent()[0].body.clone()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn missing_config_is_named() {
    let mut h = Harness::<TwoCalls>::new().with_schema_defaults();
    let err = h.unified_order(&order("x")).unwrap_err();
    assert_eq!(
        err,
        AdapterError::InvalidConfig("missing secret field `key`".into())
    );
}

#[test]
fn provider_error_passes_through_and_ack_is_kept_on_notify_failure() {
    let mut h = Harness::<TwoCalls>::new()
        .with_schema_defaults()
        .secret("key", "k")
        .respond(|req| {
            if req.url.ends_with("/a") {
                http::response(200, "text/plain", "t")
            } else {
                http::response(503, "text/plain", "")
            }
        });
    match h.unified_order(&order("x")).unwrap_err() {
        AdapterError::ProviderRejected(r) => assert!(r.retryable && r.message == "status 503"),
        other => panic!("{other:?}"),
    }
    let inbound = InboundHttp {
        method: HttpMethod::Post,
        path: "/".into(),
        query: String::new(),
        headers: vec![],
        body: vec![],
    };
    let failure = h.parse_notify(&inbound).unwrap_err();
    assert_eq!(
        failure.error,
        AdapterError::BadSignature("never valid".into())
    );
    assert_eq!(failure.ack.unwrap().status, 400);
}

/// Builds its request from a counter that survives between steps -- the
/// classic bug (a wall clock or a global counter in the request).
struct Drifting;
static ORDER_COUNTER: AtomicU64 = AtomicU64::new(0);
static QUERY_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Adapter for Drifting {
    fn describe() -> AdapterInfo {
        info()
    }
    fn unified_order(ctx: &mut Ctx, _: &OrderRequest) -> Result<OrderCreated> {
        let n = ORDER_COUNTER.fetch_add(1, Ordering::SeqCst);
        ctx.send(http::post(
            "https://provider.test/a",
            "text/plain",
            n.to_string(),
        ))?;
        ctx.send(http::post("https://provider.test/b", "text/plain", ""))?;
        Err(Error::unsupported("unreachable"))
    }
    fn query(ctx: &mut Ctx, req: &QueryRequest) -> Result<TradeStatus> {
        // Takes another path once it has seen an answer: asks for nothing
        // in the replaying step although one exchange was recorded.
        if QUERY_COUNTER
            .fetch_add(1, Ordering::SeqCst)
            .is_multiple_of(2)
        {
            ctx.send(http::get("https://provider.test/q"))?;
        }
        Ok(TradeStatus {
            order: req.order.clone(),
            state: TradeState::Pending,
            provider_state: "X".into(),
            amount: None,
            paid_at: None,
            payer_id: None,
        })
    }
    fn refund(_: &mut Ctx, _: &RefundRequest) -> Result<RefundStatus> {
        Err(Error::unsupported("refund"))
    }
    fn parse_notify(_: &mut Ctx, _: &InboundHttp) -> Result<NotifyOutcome> {
        Err(Error::unsupported("notify"))
    }
}

#[test]
fn a_replay_that_asks_for_another_request_is_nondeterministic() {
    let mut h = Harness::<Drifting>::new().respond(|_| http::response(200, "text/plain", ""));
    match h.unified_order(&order("x")).unwrap_err() {
        AdapterError::Nondeterministic(m) => assert!(m.contains("request #1 differs"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The request was performed once; the drift was caught before a second.
    assert_eq!(h.sent().len(), 1);
}

#[test]
fn a_replay_that_skips_recorded_requests_is_nondeterministic() {
    let mut h = Harness::<Drifting>::new().respond(|_| http::response(200, "text/plain", ""));
    let q = QueryRequest {
        order: OrderRef {
            merchant_order_no: "T1".into(),
            provider_trade_no: None,
            channel_transaction_id: None,
        },
    };
    match h.query(&q).unwrap_err() {
        AdapterError::Nondeterministic(m) => assert!(m.contains("never requested again"), "{m}"),
        other => panic!("{other:?}"),
    }
}
