//! The runtime against hostile adapters: every misbehaviour ends that call
//! with its specific error, and the next call on the same runtime works.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use payhost::contract::{AdapterError, CallContext, Money, OrderRequest, PayAction, Payer};
use payhost::egress::EgressPolicy;
use payhost::{CallError, LoadError, MerchantConfig, Operation, Output, Runtime};
use payhost_e2e::{Responder, capture_logs, component, logs, temp_dir, test_config};
use payhost_sdk::native::{DigestAlgorithm, KeyEncoding, Part, SecretTable};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SECRET: &str = "sk_test_9f8e7d6c5b4a-never-log-me";

#[derive(Clone, Default)]
struct Hits(Arc<AtomicUsize>);

impl Hits {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// `/pay` checks the adapter's HMAC (made with the merchant's secret by the
/// host) and answers a trade number; `/big` sends 5 MiB; `/echo` echoes the
/// secret back as a careless provider might; anything else counts and 200s.
async fn responder() -> (Responder, Hits) {
    let hits = Hits::default();
    let router = Router::new()
        .route(
            "/pay",
            post(|headers: HeaderMap, body: Bytes| async move {
                let mut t = SecretTable::new();
                let k = t.insert(SECRET.as_bytes().to_vec());
                let sig = t
                    .hmac(
                        DigestAlgorithm::Sha256,
                        k,
                        KeyEncoding::Raw,
                        &[Part::Bytes(&body)],
                    )
                    .unwrap();
                if headers.get("x-signature").and_then(|v| v.to_str().ok())
                    == Some(hex::encode(sig).as_str())
                {
                    (StatusCode::OK, "T-0001")
                } else {
                    (StatusCode::UNAUTHORIZED, "bad signature")
                }
            }),
        )
        .route("/big", get(|| async { vec![b'x'; 5 * 1024 * 1024] }))
        .route("/echo", get(|| async { format!("invalid key {SECRET}") }))
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .fallback(|State(h): State<Hits>| async move {
            h.0.fetch_add(1, Ordering::SeqCst);
            "ok"
        })
        .with_state(hits.clone());
    (Responder::start(router).await, hits)
}

fn merchant() -> MerchantConfig {
    MerchantConfig::new("shop-1").secret("api_key", SECRET)
}

fn ctx() -> CallContext {
    ctx_with("req-1", 7)
}

fn ctx_with(request_id: &str, seed: u64) -> CallContext {
    CallContext {
        request_id: request_id.into(),
        timestamp: 1_700_000_000,
        seed,
        notify_url: "https://payhost.test/v1/notify/hostile/shop-1".into(),
    }
}

fn order(behaviour: &str, attach: Option<String>) -> Operation {
    Operation::UnifiedOrder(OrderRequest {
        merchant_order_no: "M-1".into(),
        amount: Money {
            minor: 1234,
            currency: "EUR".into(),
        },
        description: behaviour.into(),
        method: "test".into(),
        payer: Payer {
            app_id: None,
            openid: None,
            client_ip: None,
        },
        expires_at: None,
        attach,
    })
}

async fn call(
    rt: &Runtime,
    a: &payhost::LoadedAdapter,
    behaviour: &str,
    attach: Option<String>,
) -> Result<Output, CallError> {
    rt.call(a, &merchant(), ctx(), order(behaviour, attach))
        .await
}

/// A well-behaved call that must succeed after any misbehaviour.
async fn assert_healthy(rt: &Runtime, a: &payhost::LoadedAdapter, r: &Responder) {
    match call(rt, a, "pay", Some(r.url("/pay"))).await {
        Ok(Output::OrderCreated(c)) => {
            assert_eq!(c.order.provider_trade_no.as_deref(), Some("T-0001"));
            assert_eq!(
                c.action,
                PayAction::Redirect("https://pay.example/checkout".into())
            );
        }
        other => panic!("well-behaved call failed: {other:?}"),
    }
}

fn setup() -> (Runtime, Arc<payhost::LoadedAdapter>) {
    capture_logs();
    let rt = Runtime::new(test_config()).unwrap();
    let a = rt.load(&component("hostile")).unwrap();
    (rt, a)
}

/// [`setup`] with a 2 s step deadline.
fn setup_with_long_steps() -> (Runtime, Arc<payhost::LoadedAdapter>) {
    capture_logs();
    let rt = Runtime::new(payhost::RuntimeConfig {
        step_deadline: Duration::from_secs(2),
        ..test_config()
    })
    .unwrap();
    let a = rt.load(&component("hostile")).unwrap();
    (rt, a)
}

#[tokio::test]
async fn endless_loop_hits_the_deadline() {
    let (rt, a) = setup();
    let (r, _) = responder().await;
    assert!(matches!(
        call(&rt, &a, "loop", None).await,
        Err(CallError::Deadline)
    ));
    assert_healthy(&rt, &a, &r).await;
}

/// A step starts on the calling task but may hold it only briefly: one
/// that runs long goes on on the blocking pool, and the task's other work
/// (here a 1 ms ticker on the same single-threaded runtime) goes on too.
#[tokio::test]
async fn a_long_step_does_not_hold_the_async_task() {
    let (rt, a) = setup_with_long_steps();
    let (r, _) = responder().await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = tokio::spawn({
        let done = done.clone();
        async move {
            let mut longest = Duration::ZERO;
            let mut last = Instant::now();
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(1)).await;
                longest = longest.max(last.elapsed());
                last = Instant::now();
            }
            longest
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    let out = call(&rt, &a, "loop", None).await;
    assert!(matches!(out, Err(CallError::Deadline)), "{out:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the whole deadline ran"
    );
    done.store(true, Ordering::Relaxed);
    let longest = ticker.await.unwrap();
    assert!(
        longest < Duration::from_millis(500),
        "the runtime's task was held for {longest:?} by a 2 s step"
    );
    assert_healthy(&rt, &a, &r).await;
}

#[tokio::test]
async fn allocation_spree_hits_the_memory_limit() {
    let (rt, a) = setup();
    let (r, _) = responder().await;
    let err = call(&rt, &a, "oom", None).await.unwrap_err();
    assert!(matches!(err, CallError::MemoryLimit), "{err:?}");
    assert_healthy(&rt, &a, &r).await;
}

#[tokio::test]
async fn panic_is_a_trap_with_the_panic_message() {
    let (rt, a) = setup();
    let (r, _) = responder().await;
    match call(&rt, &a, "panic", None).await {
        Err(CallError::Trap { message }) => {
            assert!(message.contains("adapter panicked"), "{message}");
            assert!(
                message.contains("panics on purpose (order M-1)"),
                "{message}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_healthy(&rt, &a, &r).await;
}

#[tokio::test]
async fn undeclared_host_is_denied() {
    let (rt, a) = setup();
    let (r, _) = responder().await;
    match call(&rt, &a, "egress", None).await {
        Err(CallError::EgressDenied { host, reason }) => {
            assert_eq!(host, "evil.example");
            assert!(reason.contains("extra_allowed_hosts"), "{reason}");
        }
        other => panic!("expected an egress denial, got {other:?}"),
    }
    assert_healthy(&rt, &a, &r).await;
}

#[tokio::test]
async fn declared_loopback_host_still_needs_allow_private() {
    capture_logs();
    let (r, hits) = responder().await;
    let mut cfg = test_config();
    cfg.egress = EgressPolicy {
        allow_private: false,
        ..cfg.egress
    };
    let rt = Runtime::new(cfg).unwrap();
    let a = rt.load(&component("hostile")).unwrap();
    match call(&rt, &a, "any", Some(r.url("/anything"))).await {
        Err(CallError::EgressDenied { host, reason }) => {
            assert_eq!(host, "127.0.0.1");
            assert!(reason.contains("allow_private"), "{reason}");
        }
        other => panic!("expected an egress denial, got {other:?}"),
    }
    // `localhost` is declared too, but resolves to loopback: denied by the resolver.
    let port = r.addr.port();
    match call(
        &rt,
        &a,
        "any",
        Some(format!("http://localhost:{port}/anything")),
    )
    .await
    {
        Err(CallError::EgressDenied { host, .. }) => assert_eq!(host, "localhost"),
        other => panic!("expected an egress denial, got {other:?}"),
    }
    assert_eq!(hits.get(), 0, "nothing may reach the responder");
}

#[tokio::test]
async fn oversized_response_is_refused() {
    let (rt, a) = setup();
    let (r, _) = responder().await;
    match call(&rt, &a, "big", Some(r.url("/big"))).await {
        Err(CallError::ResponseTooLarge { limit }) => assert_eq!(limit, 1024 * 1024),
        other => panic!("expected ResponseTooLarge, got {other:?}"),
    }
    assert_healthy(&rt, &a, &r).await;
}

#[tokio::test]
async fn endless_requests_hit_the_step_limit() {
    let (rt, a) = setup();
    let (r, hits) = responder().await;
    match call(&rt, &a, "steps", Some(r.url("/step"))).await {
        Err(CallError::StepLimit(n)) => assert_eq!(n, 8),
        other => panic!("expected StepLimit, got {other:?}"),
    }
    assert_eq!(hits.get(), 8, "exactly max_steps requests are performed");
    assert_healthy(&rt, &a, &r).await;
}

#[tokio::test]
async fn nondeterministic_replay_is_caught() {
    let (rt, a) = setup();
    let (r, hits) = responder().await;
    match call(&rt, &a, "nondeterministic", Some(r.url("/nd"))).await {
        Err(CallError::Nondeterministic(m)) => {
            assert!(m.contains("differs from the recorded one"), "{m}")
        }
        other => panic!("expected Nondeterministic, got {other:?}"),
    }
    assert_eq!(
        hits.get(),
        1,
        "the first request is performed, the replay is caught"
    );
    assert_healthy(&rt, &a, &r).await;
}

#[test]
fn foreign_import_is_refused_at_load() {
    capture_logs();
    let rt = Runtime::new(test_config()).unwrap();
    match rt.load(&component("foreign-import")) {
        Err(LoadError::ForeignImport(name)) => assert_eq!(name, "evil:exfil/net"),
        other => panic!("expected ForeignImport, got {other:?}"),
    }
}

#[test]
fn loading_the_same_bytes_twice_compiles_once() {
    capture_logs();
    let rt = Runtime::new(test_config()).unwrap();
    let bytes = component("hostile");
    let a = rt.load(&bytes).unwrap();
    let b = rt.load(&bytes).unwrap();
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.info.name, "hostile");
    assert_eq!(rt.compiled_count(), 1);
}

#[test]
fn disk_cache_survives_restarts_and_rejects_corruption() {
    capture_logs();
    let dir = temp_dir("disk-cache");
    let bytes = component("hostile");
    let cfg = || payhost::RuntimeConfig {
        cache_dir: Some(dir.clone()),
        ..test_config()
    };

    let first = Runtime::new(cfg()).unwrap();
    let digest = first.load(&bytes).unwrap().digest.clone();
    assert_eq!((first.compiled_count(), first.disk_cache_hits()), (1, 0));
    let path = first.cache_path(&digest).unwrap();
    assert!(path.is_file());
    drop(first);

    // A restart with the same adapter must not recompile.
    let restarted = Runtime::new(cfg()).unwrap();
    restarted.load(&bytes).unwrap();
    assert_eq!(
        (restarted.compiled_count(), restarted.disk_cache_hits()),
        (0, 1)
    );
    drop(restarted);

    // Flip bytes in the middle of the compiled code: detected, discarded, recompiled.
    let mut cwasm = std::fs::read(&path).unwrap();
    let mid = cwasm.len() / 2;
    for b in &mut cwasm[mid..mid + 64] {
        *b ^= 0xff;
    }
    std::fs::write(&path, &cwasm).unwrap();
    let after_corruption = Runtime::new(cfg()).unwrap();
    let a = after_corruption.load(&bytes).unwrap();
    assert_eq!(a.info.name, "hostile");
    assert_eq!(
        (
            after_corruption.compiled_count(),
            after_corruption.disk_cache_hits(),
            after_corruption.disk_cache_rejected()
        ),
        (1, 0, 1)
    );
    drop(after_corruption);

    // The recompiled entry was written back and is good again.
    let healed = Runtime::new(cfg()).unwrap();
    healed.load(&bytes).unwrap();
    assert_eq!((healed.compiled_count(), healed.disk_cache_hits()), (0, 1));
}

#[tokio::test]
async fn secrets_never_reach_errors_or_logs() {
    let (rt, a) = setup();
    let (r, _) = responder().await;
    // The host signs with the secret on the adapter's behalf (the responder checks it).
    assert_healthy(&rt, &a, &r).await;

    // A provider echoing the key: the adapter logs it and fails with it.
    let err = call(&rt, &a, "echo", Some(r.url("/echo")))
        .await
        .unwrap_err();
    match &err {
        CallError::Adapter {
            error: AdapterError::ProviderRejected(rej),
            ..
        } => {
            assert_eq!(rej.message, "invalid key [redacted]");
        }
        other => panic!("expected a provider rejection, got {other:?}"),
    }
    let panic = call(&rt, &a, "panic", None).await.unwrap_err();
    let denied = call(&rt, &a, "egress", None).await.unwrap_err();
    for e in [&err, &panic, &denied] {
        assert!(!e.to_string().contains(SECRET), "{e}");
        assert!(!format!("{e:?}").contains(SECRET), "{e:?}");
    }
    assert!(!format!("{:?}", merchant()).contains(SECRET));

    let logs = logs();
    assert!(
        logs.contains("provider said: invalid key [redacted]"),
        "the adapter's log line is recorded, masked"
    );
    assert!(logs.contains("adapter exchange"), "exchanges are logged");
    assert!(!logs.contains(SECRET), "a secret reached the logs");
}

#[tokio::test]
async fn invalid_merchant_config_is_refused_before_any_call() {
    let (rt, a) = setup();
    let (r, hits) = responder().await;
    let plain = MerchantConfig::new("shop-2").text("api_key", "plain-text-key");
    match rt
        .call(&a, &plain, ctx(), order("pay", Some(r.url("/x"))))
        .await
    {
        Err(CallError::InvalidConfig(e)) => {
            assert_eq!(
                (e.merchant.as_str(), e.field.as_str()),
                ("shop-2", "api_key")
            );
            assert!(!e.to_string().contains("plain-text-key"));
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    assert_eq!(hits.get(), 0);
}

// ---------------------------------------------------------------- the sandbox's limits

/// The step deadline of `test_config` plus the runtime's grace: no call
/// that ends by a step deadline may take longer (scheduling on a loaded
/// test machine gets the rest of a generous margin).
const STEP_BOUND: Duration = Duration::from_millis(200 + 100 + 700);

fn probe() -> (Runtime, Arc<payhost::LoadedAdapter>) {
    capture_logs();
    let rt = Runtime::new(test_config()).unwrap();
    let a = rt.load(&component("wasi-probe")).unwrap();
    (rt, a)
}

/// What the probe saw, from its `provider_trade_no`.
async fn probe_sees(
    rt: &Runtime,
    a: &payhost::LoadedAdapter,
    behaviour: &str,
    ctx: CallContext,
) -> Result<String, CallError> {
    match rt
        .call(
            a,
            &MerchantConfig::new("shop-1"),
            ctx,
            order(behaviour, None),
        )
        .await?
    {
        Output::OrderCreated(c) => Ok(c.order.provider_trade_no.unwrap()),
        other => panic!("unexpected output {other:?}"),
    }
}

#[tokio::test]
async fn waiting_on_a_wasi_clock_ends_at_the_deadline_within_the_bound() {
    let (rt, a) = probe();
    for behaviour in ["sleep", "poll"] {
        let started = Instant::now();
        let result = probe_sees(&rt, &a, behaviour, ctx()).await;
        assert!(
            matches!(result, Err(CallError::Deadline)),
            "{behaviour}: {result:?}"
        );
        assert!(
            started.elapsed() < STEP_BOUND,
            "{behaviour}: {:?}",
            started.elapsed()
        );
    }
    // The same runtime and adapter serve the next call.
    assert!(probe_sees(&rt, &a, "env", ctx()).await.is_ok());
}

#[tokio::test]
async fn wasi_clocks_tell_the_call_context_time_and_move_only_virtually() {
    let (rt, a) = probe();
    let seen = probe_sees(&rt, &a, "clock", ctx()).await.unwrap();
    // The timestamp of the call context, then 10 ms later by the virtual
    // clock that the wait moved: no real time is read.
    assert_eq!(
        seen,
        "wall=1700000000.000000000 mono=0 then wall=1700000000.010000000 mono=10000000"
    );
}

#[tokio::test]
async fn wasi_randomness_derives_from_the_call_context_seed() {
    let (rt, a) = probe();
    let first = probe_sees(&rt, &a, "random", ctx_with("r-1", 7))
        .await
        .unwrap();
    let again = probe_sees(&rt, &a, "random", ctx_with("r-2", 7))
        .await
        .unwrap();
    let other = probe_sees(&rt, &a, "random", ctx_with("r-3", 8))
        .await
        .unwrap();
    assert_eq!(first, again, "the same seed gives the same bytes");
    assert_ne!(first, other, "another seed gives other bytes");
    assert!(!first.contains(&"00".repeat(16)), "{first}");
    // The three interfaces are distinct streams.
    let field = |name: &str| {
        first
            .split(' ')
            .find_map(|f| f.strip_prefix(name))
            .unwrap()
            .to_string()
    };
    assert_ne!(field("random="), field("insecure="));
}

#[tokio::test]
async fn wasi_grants_no_environment_arguments_or_directories() {
    let (rt, a) = probe();
    assert_eq!(
        probe_sees(&rt, &a, "env", ctx()).await.unwrap(),
        "env=0 args=0 cwd=None preopens=0"
    );
}

#[test]
fn wasi_sockets_import_is_refused_at_load_naming_it() {
    capture_logs();
    let rt = Runtime::new(test_config()).unwrap();
    match rt.load(&component("wasi-sockets")) {
        Err(e @ LoadError::ForeignImport(_)) => {
            let LoadError::ForeignImport(name) = &e else {
                unreachable!()
            };
            assert!(name.starts_with("wasi:sockets/"), "{name}");
            assert!(e.to_string().contains(name.as_str()), "{e}");
        }
        other => panic!("expected ForeignImport, got {other:?}"),
    }
}

/// Log lines of one request id that contain `needle`.
fn logged(request_id: &str, needle: &str) -> usize {
    logs()
        .lines()
        .filter(|l| l.contains(&format!("request_id={request_id}")) && l.contains(needle))
        .count()
}

#[tokio::test]
async fn wasi_stdout_flood_is_capped() {
    let (rt, a) = probe();
    let printed = probe_sees(&rt, &a, "print", ctx_with("req-print", 7))
        .await
        .unwrap();
    assert!(printed.starts_with("printed "), "{printed}");
    let kept = logged("req-print", "stdout line");
    assert!(kept > 0 && kept <= 200, "{kept} stdout lines logged");
    assert_eq!(logged("req-print", "adapter log over its limits"), 1);
    assert!(rt.dropped_log_lines() > 0);
}

#[tokio::test]
async fn log_flood_is_capped_and_the_next_call_succeeds() {
    // 20,000 calls of the log import take a while in a test build.
    let (rt, a) = setup_with_long_steps();
    let (r, _) = responder().await;
    let out = rt
        .call(
            &a,
            &merchant(),
            ctx_with("req-flood", 7),
            order("log-flood", None),
        )
        .await;
    assert!(matches!(out, Ok(Output::OrderCreated(_))), "{out:?}");
    assert_eq!(
        logged("req-flood", "flood line"),
        200,
        "the step's line budget"
    );
    assert_eq!(
        logged("req-flood", "dropped_lines=19800"),
        1,
        "one summary line"
    );
    assert_eq!(rt.dropped_log_lines(), 19_800);
    assert_healthy(&rt, &a, &r).await;
}

#[tokio::test]
async fn oversized_url_is_refused_naming_the_field_and_the_next_call_succeeds() {
    let (rt, a) = setup();
    let (r, _) = responder().await;
    match call(&rt, &a, "big-url", None).await {
        Err(CallError::TooLarge { field, limit, unit }) => {
            assert_eq!(field, "order_created.action.redirect");
            assert_eq!((limit, unit), (8192, "bytes"));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_healthy(&rt, &a, &r).await;
}

/// `(VmRSS, VmHWM)` of this process in MiB.
fn memory_mib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    (kib("VmRSS:") / 1024, kib("VmHWM:") / 1024)
}

#[tokio::test]
async fn oversized_secret_message_is_refused_fast_and_without_memory_growth() {
    capture_logs();
    // Room for the guest's 500,000-part list, and time for the guest to
    // build it and for an unoptimised test build of wasmtime to copy it
    // into the host: the limit itself is checked before any hashing.
    let step_deadline = Duration::from_secs(5);
    let rt = Runtime::new(payhost::RuntimeConfig {
        memory_limit: 64 * 1024 * 1024,
        step_deadline,
        ..test_config()
    })
    .unwrap();
    let a = rt.load(&component("hostile")).unwrap();
    let key = "k".repeat(4096);
    let big = MerchantConfig::new("shop-1").secret("api_key", &key);
    let (rss_before, peak_before) = memory_mib();
    let started = Instant::now();
    let result = rt.call(&a, &big, ctx(), order("secret-flood", None)).await;
    let elapsed = started.elapsed();
    let (rss_after, peak_after) = memory_mib();
    println!(
        "secret flood: {elapsed:?}; RSS {rss_before} -> {rss_after} MiB, peak {peak_before} -> {peak_after} MiB"
    );
    match result {
        Err(CallError::Adapter {
            error: AdapterError::MalformedResponse(m),
            ..
        }) => {
            assert!(m.contains("more than the limit of 64"), "{m}");
            assert!(!m.contains("4096") && !m.contains(&key), "{m}");
        }
        other => panic!("expected the parts limit, got {other:?}"),
    }
    assert!(
        elapsed < Duration::from_secs(1) + Duration::from_millis(100),
        "{elapsed:?}"
    );
    // Unbounded, this digest drove the host from 48 MiB to 2 GiB.
    assert!(
        peak_after - peak_before < 256,
        "peak grew by {} MiB",
        peak_after - peak_before
    );
}

#[tokio::test]
async fn digest_of_the_secret_alone_is_refused() {
    let (rt, a) = setup();
    match call(&rt, &a, "secret-alone", None).await {
        Err(CallError::Adapter {
            error: AdapterError::MalformedResponse(m),
            ..
        }) => {
            assert_eq!(m.matches("of secrets alone is refused").count(), 2, "{m}");
            assert!(!m.contains(SECRET), "{m}");
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn secret_operations_in_a_loop_end_at_the_step_deadline() {
    let (rt, a) = setup();
    let (r, _) = responder().await;
    let started = Instant::now();
    let result = call(&rt, &a, "secret-loop", None).await;
    assert!(matches!(result, Err(CallError::Deadline)), "{result:?}");
    assert!(started.elapsed() < STEP_BOUND, "{:?}", started.elapsed());
    assert_healthy(&rt, &a, &r).await;
}

#[tokio::test]
async fn a_whole_operation_ends_at_its_deadline_while_a_request_hangs() {
    capture_logs();
    let (r, _) = responder().await;
    let limit = Duration::from_millis(300);
    let rt = Runtime::new(payhost::RuntimeConfig {
        operation_deadline: limit,
        ..test_config()
    })
    .unwrap();
    let a = rt.load(&component("hostile")).unwrap();
    let started = Instant::now();
    // The responder answers after 3 s, the egress timeout is 5 s.
    match call(&rt, &a, "pay", Some(r.url("/slow"))).await {
        Err(CallError::OperationDeadline { limit: l }) => assert_eq!(l, limit),
        other => panic!("expected OperationDeadline, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// `Runtime::step_linear_memory`: the bytes one instance was granted, the
/// same every time for the same component and input, whole wasm pages,
/// never above the cap; a step that runs into the cap is that error.
#[test]
fn the_linear_memory_of_a_step_is_exact_and_within_the_cap() {
    let rt = Runtime::new(test_config()).unwrap();
    let a = rt.load(&component("hostile")).unwrap();
    let measure = |behaviour: &str| {
        rt.step_linear_memory(
            &a,
            &merchant(),
            ctx(),
            order(behaviour, Some("http://127.0.0.1:9/pay".into())),
        )
    };
    let bytes = measure("pay").unwrap();
    assert_eq!(bytes, measure("pay").unwrap(), "deterministic");
    assert!(bytes >= 65_536 && bytes % 65_536 == 0, "{bytes}");
    assert!(bytes <= test_config().memory_limit as u64, "{bytes}");
    assert!(matches!(measure("oom"), Err(CallError::MemoryLimit)));
}
