//! The 2paynow adapter in Rust and its JavaScript twin (componentize-js),
//! side by side in one run: component size, compile time, the cost of one
//! step of a unified order and of a notification parse, and the memory one
//! instance takes: the linear memory it was granted over instantiation and
//! one unified-order step (exact, the same on every machine), and the RSS
//! growth of a first step (noisy). Read the ratios (docs/benchmarks.md).
//!
//! Run: `cargo bench -p payhost-e2e --bench js_adapter`.

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use payhost::contract as c;
use payhost::runtime::OfflineStep;
use payhost::{LoadedAdapter, MerchantConfig, Operation, Runtime, RuntimeConfig};
use payhost_sdk::native;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MID: &str = "4002563369";
const KEY: &str = "zG93Cv85BCCp2h";
const TIMESTAMP: i64 = 1_700_000_000;
const SLOTS: [(&str, &str); 2] = [("rust", "2paynow"), ("js", "2paynow-js")];

fn ctx() -> c::CallContext {
    c::CallContext {
        request_id: "bench".into(),
        timestamp: TIMESTAMP,
        seed: 7,
        notify_url: "http://127.0.0.1:9/v1/notify/2paynow/shop-1".into(),
    }
}

fn order() -> Operation {
    Operation::UnifiedOrder(c::OrderRequest {
        merchant_order_no: "BENCH-1".into(),
        amount: c::Money {
            minor: 899,
            currency: "EUR".into(),
        },
        description: "Tea, 250 g".into(),
        method: "wechat_native".into(),
        payer: c::Payer {
            app_id: None,
            openid: None,
            client_ip: Some("203.0.113.7".into()),
        },
        expires_at: None,
        attach: None,
    })
}

/// A signed 2paynow notification: its one step verifies `sign` and asks
/// for the confirming query.
fn notification() -> Operation {
    let ts = "1700000100000";
    let sign = payhost_sdk::encoding::hex_lower(&native::digest(
        native::DigestAlgorithm::Md5,
        format!("precreate{MID}{ts}{KEY}").as_bytes(),
    ));
    let query = payhost_sdk::form::encode([
        ("amount", "8.99"),
        ("currency", "EUR"),
        ("function", "precreate"),
        ("mid", MID),
        ("passback_parameters", r#"{"merchant_order_no":"BENCH-1"}"#),
        ("timestamp", ts),
        ("trade_no", "A20"),
        ("trade_status", "TRADE_SUCCESS"),
        ("sign", sign.as_str()),
    ]);
    Operation::ParseNotify(c::InboundHttp {
        method: c::HttpMethod::Get,
        path: "/v1/notify/2paynow/shop-1".into(),
        query,
        headers: vec![],
        body: vec![],
    })
}

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        max_instances: 16,
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

struct Side {
    name: &'static str,
    bytes: usize,
    compile: Duration,
    /// RSS growth over the first step of a fresh runtime: the memory one
    /// instance touches (its linear memory as initialised, its stack).
    first_step_rss: u64,
    /// Linear memory granted to one fresh instance over instantiation and
    /// one unified-order step, over all its memories.
    linear_memory: u64,
    rt: Runtime,
    adapter: Arc<LoadedAdapter>,
    merchant: MerchantConfig,
}

impl Side {
    async fn step(&self, op: Operation) -> OfflineStep {
        self.rt
            .step_offline(&self.adapter, &self.merchant, ctx(), op, &[])
            .await
            .expect("step")
    }
}

fn setup(tokio: &tokio::runtime::Runtime) -> Vec<Side> {
    SLOTS
        .iter()
        .map(|(name, slot)| {
            let bytes = payhost_e2e::component(slot);
            // Compile time: a fresh runtime without a disk cache, median of 3.
            let mut compiles: Vec<Duration> = (0..3)
                .map(|_| {
                    let rt = runtime();
                    let start = Instant::now();
                    black_box(rt.load(&bytes).expect("load"));
                    start.elapsed()
                })
                .collect();
            compiles.sort();
            let rt = runtime();
            let adapter = rt.load(&bytes).expect("load");
            let merchant = MerchantConfig::new("shop-1")
                .text("mid", MID)
                .secret("key", KEY);
            let mut side = Side {
                name,
                bytes: bytes.len(),
                compile: compiles[1],
                first_step_rss: 0,
                linear_memory: 0,
                rt,
                adapter,
                merchant,
            };
            let before = rss_bytes();
            black_box(tokio.block_on(side.step(order())));
            side.first_step_rss = rss_bytes().saturating_sub(before);
            side.linear_memory = side
                .rt
                .step_linear_memory(&side.adapter, &side.merchant, ctx(), order())
                .expect("linear memory of a step");
            // Both sides must do the work they claim: ask for the precreate
            // and, for the notification, for the confirming query.
            for (op, function) in [
                (order(), "function=precreate"),
                (notification(), "function=query"),
            ] {
                match tokio.block_on(side.step(op)) {
                    OfflineStep::Send(req) => assert!(req.url.contains(function), "{}", req.url),
                    OfflineStep::Done(r) => panic!("{name}: {r:?}"),
                }
            }
            side
        })
        .collect()
}

fn twopaynow(crit: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sides = setup(&tokio);
    for (op, name) in [
        (order as fn() -> Operation, "unified_order_step"),
        (notification, "parse_notify_step"),
    ] {
        let mut g = crit.benchmark_group(format!("twopaynow_{name}"));
        g.sampling_mode(SamplingMode::Flat)
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        for side in &sides {
            g.bench_function(side.name, |b| {
                // All iterations in one block_on: entering tokio is not counted.
                b.iter_custom(|iters| {
                    tokio.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            black_box(side.step(op()).await);
                        }
                        start.elapsed()
                    })
                })
            });
        }
        g.finish();
    }
    let (r, j) = (&sides[0], &sides[1]);
    println!("\n| 2paynow | rust | js | js / rust |");
    println!("|---|---|---|---|");
    println!(
        "| component bytes | {} | {} | {:.1}x |",
        r.bytes,
        j.bytes,
        j.bytes as f64 / r.bytes as f64
    );
    println!(
        "| compile (no cache), ms | {:.0} | {:.0} | {:.1}x |",
        r.compile.as_secs_f64() * 1e3,
        j.compile.as_secs_f64() * 1e3,
        j.compile.as_secs_f64() / r.compile.as_secs_f64()
    );
    println!(
        "| linear memory of one instance after a unified-order step, KiB | {} | {} | {:.1}x |",
        r.linear_memory / 1024,
        j.linear_memory / 1024,
        j.linear_memory as f64 / r.linear_memory as f64
    );
    println!(
        "| RSS growth of a first step, KiB | {} | {} | {:.1}x |",
        r.first_step_rss / 1024,
        j.first_step_rss / 1024,
        j.first_step_rss as f64 / r.first_step_rss.max(1) as f64
    );
}

criterion_group!(benches, twopaynow);
criterion_main!(benches);
