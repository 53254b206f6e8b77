//! What the sandbox costs per adapter call, read as ratios side by side in
//! one run (absolute times drift on a shared machine; ratios do not).
//!
//! - `wechat_v2_unified_order`: the wechat-v2 component through `Runtime::call`
//!   against the WeChat v2 simulator over loopback HTTP, the same adapter
//!   natively through `testing::Harness` with a canned simulator answer, and
//!   the bare HTTP round trip to the simulator.
//! - `wechat_v2_parse_notify`: no I/O, runtime versus native on one signed
//!   notification: the pure wasm/native ratio.
//! - `wechat_v2_refused_order`: an order refused before any I/O (unknown
//!   method): one step with almost no guest work, i.e. the fixed price of a
//!   step (fresh store, instantiate, marshalling, blocking-pool hop).
//! - `wechat_unified_order_by_api` and `wechat_parse_notify_by_api`: the
//!   same unified order and the same kind of payment notification through
//!   wechat-v2 (MD5 signatures) and wechat-v3 (RSA signing and verification
//!   through the host, AES-256-GCM decryption), each against its simulator.
//! - `rsa_sha256`: the rsa-sign guest signing through the host's secret
//!   operation versus with the `rsa` crate inside the sandbox, and the
//!   host's operation called natively.
//!
//! Run: `cargo bench -p payhost-e2e --bench adapter_call`; see docs/benchmarks.md.

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use payhost::contract as c;
use payhost::{LoadedAdapter, MerchantConfig, Operation, Output, Runtime};
use payhost_e2e::{component, test_config};
use payhost_sdk::native::SecretTable;
use payhost_sdk::testing::Harness;
use payhost_sdk::types as s;
use payhost_simulators::wechat_v2::{SimConfig, Simulator};
use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wechat_v2::WechatV2;

const APPID: &str = "wx2421b1c4370ec43b";
const MCH_ID: &str = "10000100";
const KEY: &str = "192006250b4c09247ec02edce69f6a2d";
const TIMESTAMP: i64 = 1_700_000_000;
const SEED: u64 = 7;
const NOTIFY_URL: &str = "http://127.0.0.1:9/v1/notify/wechat-v2/shop-1";
const NOTIFY_PATH: &str = "/v1/notify/wechat-v2/shop-1";
const OPENID: &str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";
const CLIENT_IP: &str = "203.0.113.7";
const DESCRIPTION: &str = "Tea, 250 g";

// The host and the SDK each generate the contract's types from the same WIT,
// so the same request is written once per side.

fn host_ctx() -> c::CallContext {
    c::CallContext {
        request_id: "bench".into(),
        timestamp: TIMESTAMP,
        seed: SEED,
        notify_url: NOTIFY_URL.into(),
    }
}

fn host_order(no: &str, method: &str) -> c::OrderRequest {
    c::OrderRequest {
        merchant_order_no: no.into(),
        amount: c::Money {
            minor: 1999,
            currency: "CNY".into(),
        },
        description: DESCRIPTION.into(),
        method: method.into(),
        payer: c::Payer {
            app_id: Some(APPID.into()),
            openid: Some(OPENID.into()),
            client_ip: Some(CLIENT_IP.into()),
        },
        expires_at: Some(TIMESTAMP + 1800),
        attach: None,
    }
}

fn sdk_order(no: &str, method: &str) -> s::OrderRequest {
    s::OrderRequest {
        merchant_order_no: no.into(),
        amount: s::Money {
            minor: 1999,
            currency: "CNY".into(),
        },
        description: DESCRIPTION.into(),
        method: method.into(),
        payer: s::Payer {
            app_id: Some(APPID.into()),
            openid: Some(OPENID.into()),
            client_ip: Some(CLIENT_IP.into()),
        },
        expires_at: Some(TIMESTAMP + 1800),
        attach: None,
    }
}

fn host_inbound(body: &str) -> c::InboundHttp {
    c::InboundHttp {
        method: c::HttpMethod::Post,
        path: NOTIFY_PATH.into(),
        query: String::new(),
        headers: vec![("content-type".into(), "text/xml".into())],
        body: body.as_bytes().to_vec(),
    }
}

fn sdk_inbound(body: &str) -> s::InboundHttp {
    s::InboundHttp {
        method: s::HttpMethod::Post,
        path: NOTIFY_PATH.into(),
        query: String::new(),
        headers: vec![("content-type".into(), "text/xml".into())],
        body: body.as_bytes().to_vec(),
    }
}

/// The native harness configured like the runtime's merchant, with the
/// same call context, so both sides run the same adapter code path.
fn harness(base_url: &str) -> Harness<WechatV2> {
    Harness::<WechatV2>::new()
        .text("appid", APPID)
        .text("mch_id", MCH_ID)
        .secret("api_key", KEY)
        .text("base_url", base_url)
        .timestamp(TIMESTAMP)
        .seed(SEED)
        .notify_url(NOTIFY_URL)
        .with_schema_defaults()
}

/// A multi-threaded tokio runtime, like the server's; the simulator's
/// tasks run on its workers.
fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `iters` awaited calls in one `block_on`, so entering the tokio
/// runtime is not counted per call.
fn time_async<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, mut f: F) -> Duration
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            f(i).await;
        }
        start.elapsed()
    })
}

struct WechatSetup {
    rt: tokio::runtime::Runtime,
    sim: Simulator,
    runtime: Runtime,
    adapter: Arc<LoadedAdapter>,
    merchant: MerchantConfig,
}

impl WechatSetup {
    fn new() -> Self {
        let rt = tokio_rt();
        let sim = rt.block_on(Simulator::start(SimConfig::new(APPID, MCH_ID, KEY)));
        let runtime = Runtime::new(test_config()).expect("payhost runtime");
        let adapter = runtime
            .load(&component("wechat-v2"))
            .expect("loading wechat-v2");
        let merchant = MerchantConfig::new("shop-1")
            .text("appid", APPID)
            .text("mch_id", MCH_ID)
            .secret("api_key", KEY)
            .text("base_url", sim.base_url());
        WechatSetup {
            rt,
            sim,
            runtime,
            adapter,
            merchant,
        }
    }

    async fn call(&self, op: Operation) -> Result<Output, payhost::CallError> {
        self.runtime
            .call(&self.adapter, &self.merchant, host_ctx(), op)
            .await
    }
}

/// The request the native adapter sends and the simulator's real answer to
/// it: the adapter runs once with a responder that records the request,
/// which is then posted to the simulator. The answer is signed with the
/// merchant key and names this appid/mch_id, so the adapter accepts it.
fn capture_exchange(w: &WechatSetup) -> (s::HttpRequest, s::HttpResponse) {
    let seen: Rc<RefCell<Option<s::HttpRequest>>> = Rc::default();
    let record = seen.clone();
    let mut h = harness(&w.sim.base_url()).respond(move |req| {
        *record.borrow_mut() = Some(req.clone());
        // Ends the operation; only the request is wanted here.
        payhost_sdk::http::response(503, "text/plain", "capturing")
    });
    let _ = h.unified_order(&sdk_order("BENCH-NATIVE-0001", "wechat_mini_program"));
    let request = seen
        .borrow_mut()
        .take()
        .expect("the adapter sent a request");
    let response = w.rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(&request.url)
            .header("content-type", "text/xml")
            .body(request.body.clone())
            .send()
            .await
            .expect("posting to the simulator");
        let status = resp.status().as_u16();
        let body = resp.bytes().await.expect("simulator answer").to_vec();
        payhost_sdk::http::response(status, "text/xml", body)
    });
    (request, response)
}

fn wechat_v2(crit: &mut Criterion) {
    let w = WechatSetup::new();
    let (captured_req, captured_resp) = capture_exchange(&w);

    // Sanity: each side really completes the operation before it is timed.
    let out =
        w.rt.block_on(w.call(Operation::UnifiedOrder(host_order(
            "BENCH-CHECK-0001",
            "wechat_mini_program",
        ))))
        .expect("runtime unified order");
    assert!(matches!(out, Output::OrderCreated(_)), "{out:?}");
    let resp = captured_resp.clone();
    harness(&w.sim.base_url())
        .respond(move |_| resp.clone())
        .unified_order(&sdk_order("BENCH-CHECK-0002", "wechat_mini_program"))
        .expect("native unified order");

    {
        let mut g = crit.benchmark_group("wechat_v2_unified_order");
        g.sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        g.bench_function("runtime_over_http", |b| {
            // A fresh order number per call: the simulator refuses a
            // re-submitted number whose other fields differ, and a fresh
            // one makes it do the full work of creating an order.
            let mut n = 0u64;
            b.iter_custom(|iters| {
                time_async(&w.rt, iters, |_| {
                    n += 1;
                    let op = Operation::UnifiedOrder(host_order(
                        &format!("BENCH{n:012}"),
                        "wechat_mini_program",
                    ));
                    let call = w.call(op);
                    async move {
                        black_box(call.await.expect("unified order"));
                    }
                })
            })
        });
        g.bench_function("native_harness", |b| {
            let order = sdk_order("BENCH-NATIVE-0002", "wechat_mini_program");
            b.iter_batched(
                // A new harness per call: it records every request sent.
                || {
                    let resp = captured_resp.clone();
                    harness(&w.sim.base_url()).respond(move |_| resp.clone())
                },
                |mut h| black_box(h.unified_order(&order).expect("unified order")),
                criterion::BatchSize::SmallInput,
            )
        });
        g.bench_function("bare_http_round_trip", |b| {
            // The adapter's signed request, re-posted unchanged: the
            // simulator verifies it and answers the existing order. A pooled
            // keep-alive client, as the runtime's egress uses.
            let client = reqwest::Client::new();
            let body = captured_req.body.clone();
            b.iter_custom(|iters| {
                time_async(&w.rt, iters, |_| {
                    let send = client
                        .post(&captured_req.url)
                        .header("content-type", "text/xml")
                        .body(body.clone())
                        .send();
                    async move {
                        let resp = send.await.expect("simulator");
                        assert_eq!(resp.status().as_u16(), 200);
                        black_box(resp.bytes().await.expect("body"));
                    }
                })
            })
        });
        g.finish();
    }

    // One paid order and its signed payment notification, from the simulator.
    w.rt.block_on(w.call(Operation::UnifiedOrder(host_order(
        "BENCH-NOTIFY-0001",
        "wechat_mini_program",
    ))))
    .expect("order to notify about");
    let notification = w.sim.pay("BENCH-NOTIFY-0001").expect("simulator pays");
    let host_note = host_inbound(&notification);
    let sdk_note = sdk_inbound(&notification);
    let out =
        w.rt.block_on(w.call(Operation::ParseNotify(host_note.clone())))
            .expect("runtime parse_notify");
    assert!(
        matches!(out, Output::Notify(ref o) if o.events.len() == 1),
        "{out:?}"
    );
    let native = harness(&w.sim.base_url())
        .parse_notify(&sdk_note)
        .expect("native parse_notify");
    assert_eq!(native.events.len(), 1);

    {
        let mut g = crit.benchmark_group("wechat_v2_parse_notify");
        g.sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        g.bench_function("runtime", |b| {
            b.iter_custom(|iters| {
                time_async(&w.rt, iters, |_| {
                    let call = w.call(Operation::ParseNotify(host_note.clone()));
                    async move {
                        black_box(call.await.expect("parse_notify"));
                    }
                })
            })
        });
        g.bench_function("native_harness", |b| {
            b.iter_batched(
                || harness(&w.sim.base_url()),
                |mut h| black_box(h.parse_notify(&sdk_note).expect("parse_notify")),
                criterion::BatchSize::SmallInput,
            )
        });
        g.finish();
    }

    {
        // Refused at input validation: the step's fixed cost, for reading
        // how much of the runs above is per-step overhead.
        let mut g = crit.benchmark_group("wechat_v2_refused_order");
        g.sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        g.bench_function("runtime", |b| {
            b.iter_custom(|iters| {
                time_async(&w.rt, iters, |_| {
                    let call = w.call(Operation::UnifiedOrder(host_order(
                        "BENCH-REFUSED-1",
                        "cash",
                    )));
                    async move {
                        black_box(call.await.expect_err("unsupported method"));
                    }
                })
            })
        });
        g.bench_function("native_harness", |b| {
            let order = sdk_order("BENCH-REFUSED-1", "cash");
            b.iter_batched(
                || harness(&w.sim.base_url()),
                |mut h| black_box(h.unified_order(&order).expect_err("unsupported method")),
                criterion::BatchSize::SmallInput,
            )
        });
        g.finish();
    }

    if bench_mode() {
        step_cpu(&w, &host_note, &sdk_note);
    }
}

/// Whether criterion runs as a benchmark (`cargo bench`), not as the
/// single-pass check of `cargo test --benches`.
fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// CPU time of this whole process (every thread: tokio workers, the blocking
/// pool, the epoch ticker), summed from each thread's schedstat in ns. Other
/// sessions' load stretches wall time, much less the CPU a call uses.
fn process_cpu_ns() -> u64 {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Wall and CPU time per call of `calls` sequential calls, in µs.
fn per_call(calls: u32, run: impl FnOnce()) -> (f64, f64) {
    let (cpu, start) = (process_cpu_ns(), Instant::now());
    run();
    let wall = start.elapsed().as_nanos() as f64;
    let cpu = process_cpu_ns().saturating_sub(cpu) as f64;
    let n = f64::from(calls) * 1000.0;
    (wall / n, cpu / n)
}

/// The step floor and the pure wasm/native ratio once more, as CPU per call
/// (a table on stdout): on a machine shared with compiles the CPU a call
/// costs is steadier than criterion's wall-clock medians.
fn step_cpu(w: &WechatSetup, host_note: &c::InboundHttp, sdk_note: &s::InboundHttp) {
    const CALLS: u32 = 20_000;
    let refused = || Operation::UnifiedOrder(host_order("BENCH-REFUSED-1", "cash"));
    let runtime = |op: &dyn Fn() -> Operation| {
        per_call(CALLS, || {
            time_async(&w.rt, u64::from(CALLS), |_| {
                let call = w.call(op());
                async move {
                    black_box(call.await.ok());
                }
            });
        })
    };
    let native = |run: &dyn Fn(&mut Harness<WechatV2>)| {
        // Harnesses are built before timing, as in the criterion groups.
        let mut hs: Vec<_> = (0..CALLS).map(|_| harness(&w.sim.base_url())).collect();
        per_call(CALLS, || hs.iter_mut().for_each(run))
    };
    let order = sdk_order("BENCH-REFUSED-1", "cash");
    let rows = [
        (
            "refused_order",
            runtime(&refused),
            native(&|h| {
                black_box(h.unified_order(&order).expect_err("unsupported method"));
            }),
        ),
        (
            "parse_notify",
            runtime(&|| Operation::ParseNotify(host_note.clone())),
            native(&|h| {
                black_box(h.parse_notify(sdk_note).expect("parse_notify"));
            }),
        ),
    ];
    println!("\n| {CALLS} calls each | runtime wall / CPU µs | native wall / CPU µs | CPU ratio |");
    println!("|---|---|---|---|");
    for (name, (rw, rc), (nw, nc)) in rows {
        println!(
            "| {name} | {rw:.1} / {rc:.1} | {nw:.2} / {nc:.2} | {:.1}x |",
            rc / nc
        );
    }
}

/// One signing call of the rsa-sign guest (a named fn: the future borrows
/// the merchant, which a closure's signature cannot say).
fn rsa_call<'a>(
    runtime: &'a Runtime,
    adapter: &'a LoadedAdapter,
    merchant: &'a MerchantConfig,
) -> impl Future<Output = Result<Output, payhost::CallError>> + 'a {
    runtime.call(
        adapter,
        merchant,
        host_ctx(),
        Operation::UnifiedOrder(host_order("BENCH-RSA-1", "benchmark")),
    )
}

fn rsa_sha256(crit: &mut Criterion) {
    let pem = std::fs::read_to_string(
        payhost_e2e::workspace().join("tests/fixtures/test-rsa-2048.key.pem"),
    )
    .expect("test key");
    let rt = tokio_rt();
    let runtime = Runtime::new(test_config()).expect("payhost runtime");
    let adapter = runtime
        .load(&component("rsa-sign"))
        .expect("loading rsa-sign");
    let in_host = MerchantConfig::new("bench").secret("private_key", pem.clone());
    let in_guest = MerchantConfig::new("bench").text("private_key_pem", pem.clone());
    let sign = |merchant| rsa_call(&runtime, &adapter, merchant);
    let mut table = SecretTable::new();
    let key = table.insert(pem.into_bytes());

    // PKCS#1 v1.5 is deterministic: all three must produce the same bytes,
    // which shows they do the same work.
    let redirect = |out: Output| match out {
        Output::OrderCreated(c::OrderCreated {
            action: c::PayAction::Redirect(sig),
            ..
        }) => sig,
        other => panic!("{other:?}"),
    };
    let by_host = redirect(rt.block_on(sign(&in_host)).expect("host signing"));
    let by_guest = redirect(rt.block_on(sign(&in_guest)).expect("guest signing"));
    let native = table
        .rsa_sha256_sign(key, DESCRIPTION.as_bytes())
        .expect("native signing");
    assert_eq!(by_host, by_guest);
    assert_eq!(by_host, payhost_sdk::encoding::base64_encode(&native));

    let mut g = crit.benchmark_group("rsa_sha256");
    // In-guest RSA takes milliseconds: few flat samples keep the run short.
    g.sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("runtime_host_secret_op", |b| {
        b.iter_custom(|iters| {
            time_async(&rt, iters, |_| {
                let call = sign(&in_host);
                async move {
                    black_box(call.await.expect("sign"));
                }
            })
        })
    });
    g.bench_function("runtime_in_guest", |b| {
        b.iter_custom(|iters| {
            time_async(&rt, iters, |_| {
                let call = sign(&in_guest);
                async move {
                    black_box(call.await.expect("sign"));
                }
            })
        })
    });
    g.bench_function("native_secret_table", |b| {
        b.iter(|| black_box(table.rsa_sha256_sign(key, DESCRIPTION.as_bytes()).unwrap()))
    });
    g.finish();
}

/// A call context at the real time: the v3 simulator checks request
/// timestamps against its clock, and the adapter WeChat Pay's against this.
fn ctx_now() -> c::CallContext {
    c::CallContext {
        timestamp: payhost::api::now_ms() / 1000,
        ..host_ctx()
    }
}

fn v3_fixture(name: &str) -> String {
    std::fs::read_to_string(
        payhost_e2e::workspace()
            .join("tests/fixtures/wechatpay-v3")
            .join(name),
    )
    .expect("fixture")
}

const V3_API_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
const V3_SERIAL: &str = "PUB_KEY_ID_0112345678902025010100000000000001";

/// A v3 payment notification as WeChat Pay sends it, signed now.
fn v3_notification(no: &str) -> c::InboundHttp {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let plain = format!(
        r#"{{"mchid":"1900000001","out_trade_no":"{no}","transaction_id":"4200000000000000000000000009","trade_state":"SUCCESS","success_time":"2026-12-01T10:00:00+08:00","amount":{{"total":2499,"currency":"CNY"}},"payer":{{"openid":"{OPENID}"}}}}"#
    );
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(V3_API_KEY.as_bytes()).expect("key");
    let ct = cipher
        .encrypt(
            aes_gcm::Nonce::from_slice(b"0123456789ab"),
            Payload {
                msg: plain.as_bytes(),
                aad: b"transaction",
            },
        )
        .expect("encrypt");
    let body = serde_json::json!({
        "id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource_type": "encrypt-resource",
        "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": payhost_sdk::encoding::base64_encode(&ct),
                     "associated_data": "transaction", "nonce": "0123456789ab"},
    })
    .to_string();
    let at = payhost::api::now_ms() / 1000;
    let mut keys = SecretTable::new();
    let k = keys.insert(v3_fixture("sdk-test.key.pem").into_bytes());
    let sig = keys
        .rsa_sha256_sign(k, format!("{at}\nn1\n{body}\n").as_bytes())
        .expect("sign");
    c::InboundHttp {
        method: c::HttpMethod::Post,
        path: "/v1/notify/wechat-v3/shop-v3".into(),
        query: String::new(),
        headers: vec![
            ("Wechatpay-Timestamp".into(), at.to_string()),
            ("Wechatpay-Nonce".into(), "n1".into()),
            (
                "Wechatpay-Signature".into(),
                payhost_sdk::encoding::base64_encode(&sig),
            ),
            ("Wechatpay-Serial".into(), V3_SERIAL.into()),
        ],
        body: body.into_bytes(),
    }
}

fn wechat_by_api(crit: &mut Criterion) {
    use payhost_simulators::wechat_v3;
    let v2 = WechatSetup::new();
    let rt = &v2.rt;
    let sim3 = rt.block_on(wechat_v3::Simulator::start(wechat_v3::SimConfig {
        mchid: "1900000001".into(),
        appid: APPID.into(),
        sub_mchid: None,
        merchant_public_key: v3_fixture("sdk-test.pub.pem"),
        platform_private_key: v3_fixture("sdk-test.key.pem"),
        platform_serial: V3_SERIAL.into(),
        api_v3_key: V3_API_KEY.into(),
    }));
    let v3 = v2
        .runtime
        .load(&component("wechat-v3"))
        .expect("loading wechat-v3");
    let merchant3 = MerchantConfig::new("shop-v3")
        .text("mchid", "1900000001")
        .text("appid", APPID)
        .text(
            "merchant_serial_no",
            "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        )
        .secret("private_key", v3_fixture("sdk-test.key.pem"))
        .secret("api_v3_key", V3_API_KEY)
        .text("wechatpay_public_key_id", V3_SERIAL)
        .text("wechatpay_public_key", v3_fixture("sdk-test.pub.pem"))
        .text("base_url", sim3.base_url());
    let call3 = |op| v2.runtime.call(&v3, &merchant3, ctx_now(), op);
    // host_order's expiry is relative to the fixed bench timestamp.
    let order3 = |no: &str| c::OrderRequest {
        expires_at: None,
        ..host_order(no, "wechat_mini_program")
    };

    // Sanity: both complete the operation before they are timed.
    let out = rt
        .block_on(call3(Operation::UnifiedOrder(order3("BENCHV3CHECK"))))
        .expect("v3 unified order");
    assert!(matches!(out, Output::OrderCreated(_)), "{out:?}");
    let note3 = v3_notification("BENCHV3CHECK");
    let out = rt
        .block_on(call3(Operation::ParseNotify(note3.clone())))
        .expect("v3 parse_notify");
    assert!(
        matches!(out, Output::Notify(ref o) if o.events.len() == 1),
        "{out:?}"
    );
    rt.block_on(v2.call(Operation::UnifiedOrder(host_order(
        "BENCHV2NOTE",
        "wechat_mini_program",
    ))))
    .expect("v2 order to notify about");
    let note2 = host_inbound(&v2.sim.pay("BENCHV2NOTE").expect("simulator pays"));

    {
        let mut g = crit.benchmark_group("wechat_unified_order_by_api");
        g.sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        let mut n = 0u64;
        g.bench_function("v2_md5", |b| {
            b.iter_custom(|iters| {
                time_async(rt, iters, |_| {
                    n += 1;
                    let call = v2.call(Operation::UnifiedOrder(host_order(
                        &format!("BV2{n:012}"),
                        "wechat_mini_program",
                    )));
                    async move {
                        black_box(call.await.expect("v2 unified order"));
                    }
                })
            })
        });
        g.bench_function("v3_rsa", |b| {
            b.iter_custom(|iters| {
                time_async(rt, iters, |_| {
                    n += 1;
                    let call = call3(Operation::UnifiedOrder(order3(&format!("BV3{n:012}"))));
                    async move {
                        black_box(call.await.expect("v3 unified order"));
                    }
                })
            })
        });
        g.finish();
    }
    {
        let mut g = crit.benchmark_group("wechat_parse_notify_by_api");
        g.sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        g.bench_function("v2_md5", |b| {
            b.iter_custom(|iters| {
                time_async(rt, iters, |_| {
                    let call = v2.call(Operation::ParseNotify(note2.clone()));
                    async move {
                        black_box(call.await.expect("v2 parse_notify"));
                    }
                })
            })
        });
        g.bench_function("v3_rsa_aes_gcm", |b| {
            b.iter_custom(|iters| {
                time_async(rt, iters, |_| {
                    let call = call3(Operation::ParseNotify(note3.clone()));
                    async move {
                        black_box(call.await.expect("v3 parse_notify"));
                    }
                })
            })
        });
        g.finish();
    }
}

criterion_group!(benches, wechat_v2, wechat_by_api, rsa_sha256);
criterion_main!(benches);
