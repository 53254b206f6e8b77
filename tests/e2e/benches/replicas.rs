//! Scale-out benchmark: keyed `POST /v1/payments` against the WeChat Pay v2
//! simulator through one payhost on SQLite, one on PostgreSQL and three on
//! one PostgreSQL database, in one process and one run, so the setups read
//! as ratios of each other.
//!
//! Each setup gets fresh payhosts ([`Front::replica`], sharing one
//! simulator) and, for each concurrency level C, a closed loop: C workers,
//! each sending its next request when the previous answer is read, over
//! keep-alive connections, spread round robin over the replicas by the
//! client (no balancer in between, so its cost is not measured). Every
//! request has a fresh order number, `Idempotency-Key` and payer, so it
//! creates a real order and takes no lock another request holds.
//!
//! Run: `cargo bench -p payhost-e2e --bench replicas`; see
//! docs/benchmarks.md. Knobs: `REPLICAS_CONCURRENCY` (default `16,64`),
//! `REPLICAS_WARMUP_SECS` (2), `REPLICAS_SECS` (10). Without `--bench` (as
//! `cargo test --benches` runs it) it only says how to run it.

use hdrhistogram::Histogram;
use payhost_e2e::front::{Front, MERCHANT_KEY, Options, order_body, sim_config};
use payhost_pgtest::PgCluster;
use payhost_simulators::wechat_v2::Simulator;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Outcome {
    ok: u64,
    failed: u64,
    histogram: Histogram<u64>,
    window: Duration,
}

/// C workers against `urls` for `warmup`, then for `measure`, counted.
async fn closed_loop(
    urls: Arc<Vec<String>>,
    c: usize,
    warmup: Duration,
    measure: Duration,
) -> Outcome {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(c)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicU64::new(0));
    let run = format!("{:x}", payhost::clock::now_ms());
    let workers: Vec<_> = (0..c)
        .map(|w| {
            let (client, urls, counting, stop, seq, run) = (
                client.clone(),
                urls.clone(),
                counting.clone(),
                stop.clone(),
                seq.clone(),
                run.clone(),
            );
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let (mut ok, mut failed) = (0u64, 0u64);
                let mut n = w;
                while !stop.load(Ordering::Relaxed) {
                    let id = seq.fetch_add(1, Ordering::Relaxed);
                    let no = format!("B{run}-{id}");
                    let mut body = order_body(&no, 100);
                    body["payer"]["openid"] = format!("o-bench-{run}-{id}").into();
                    let url = &urls[n % urls.len()];
                    n += 1;
                    let start = Instant::now();
                    let status = client
                        .post(format!("{url}/v1/payments"))
                        .bearer_auth(MERCHANT_KEY)
                        .header("idempotency-key", &no)
                        .header("content-type", "application/json")
                        .body(serde_json::to_vec(&body).unwrap())
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    if counting.load(Ordering::Relaxed) {
                        if status == 201 {
                            ok += 1;
                            let _ = h.record(start.elapsed().as_micros().max(1) as u64);
                        } else {
                            failed += 1;
                        }
                    }
                }
                (ok, failed, h)
            })
        })
        .collect();
    tokio::time::sleep(warmup).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measure).await;
    counting.store(false, Ordering::Relaxed);
    let window = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut out = Outcome {
        ok: 0,
        failed: 0,
        histogram: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
        window,
    };
    for w in workers {
        let (ok, failed, h) = w.await.unwrap();
        out.ok += ok;
        out.failed += failed;
        out.histogram.add(h).unwrap();
    }
    out
}

fn options(store_url: Option<String>) -> Options {
    Options {
        store_url,
        // Nothing the bench sends should be refused by a limit.
        limits: "create_per_min = 100000000\nper_payer_day_minor = 1000000000000".into(),
        ..Options::default()
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("scale-out benchmark: run it with `cargo bench -p payhost-e2e --bench replicas`");
        return;
    }
    let levels: Vec<usize> = std::env::var("REPLICAS_CONCURRENCY")
        .unwrap_or_else(|_| "16,64".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let warmup = Duration::from_secs(env_or("REPLICAS_WARMUP_SECS", 2));
    let measure = Duration::from_secs(env_or("REPLICAS_SECS", 10));
    let cluster = PgCluster::start_or_skip().expect("PostgreSQL is needed for this benchmark");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| setup | C | creates/s | p50 ms | p99 ms | failed | throughput vs 1 x SQLite |");
    println!("|---|---|---|---|---|---|---|");
    let mut baseline = std::collections::HashMap::new();
    for (setup, replicas, postgres) in [
        ("1 x SQLite", 1, false),
        ("1 x PostgreSQL", 1, true),
        ("3 x PostgreSQL", 3, true),
    ] {
        for &c in &levels {
            let outcome = rt.block_on(async {
                let sim = Arc::new(Simulator::start(sim_config()).await);
                let url = postgres.then(|| {
                    cluster
                        .create_database(&format!(
                            "bench_{replicas}_{c}_{}",
                            payhost::clock::now_ms()
                        ))
                        .unwrap()
                });
                let mut fronts = Vec::new();
                for i in 0..replicas {
                    fronts.push(
                        Front::replica(
                            &format!("bench-{setup}-{c}-{i}"),
                            options(url.clone()),
                            sim.clone(),
                        )
                        .await,
                    );
                }
                let urls = Arc::new(fronts.iter().map(|f| f.base.clone()).collect::<Vec<_>>());
                closed_loop(urls, c, warmup, measure).await
            });
            let rate = outcome.ok as f64 / outcome.window.as_secs_f64();
            let base = *baseline.entry(c).or_insert(rate);
            let h = &outcome.histogram;
            println!(
                "| {setup} | {c} | {rate:.0} | {:.1} | {:.1} | {} | {:.2}x |",
                h.value_at_quantile(0.5) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
                outcome.failed,
                rate / base
            );
        }
    }
}
