//! Hot-swap timings, printed as a table (a plain timed run, not criterion:
//! each figure is a handful of events, not a hot loop).
//!
//! - upload to active: `Registry::install` of a version never seen by this
//!   process (compile + instantiate + describe + merchant check + swap),
//!   of one already compiled (the disk cache or memory hit), and the same
//!   through `PUT /admin/adapters/{name}` over loopback HTTP;
//! - restart: loading the adapters directory with an empty compile cache
//!   (cold) versus with the cache a previous process left (warm);
//! - request latency during swaps versus without, in one run: clients
//!   creating payments while an admin alternates two builds every 50 ms.
//!
//! Run: `cargo bench -p payhost-e2e --bench swap`.

use payhost::metrics::Metrics;
use payhost::registry::{Registry, Source};
use payhost::{Runtime, RuntimeConfig};
use payhost_e2e::front::{Front, MERCHANT_KEY, Options};
use payhost_e2e::{component, components_dir, temp_dir, test_config};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "adm_bench_0c1e";
const ROUNDS: usize = 5;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn runtime(cache: Option<std::path::PathBuf>) -> Arc<Runtime> {
    Arc::new(
        Runtime::new(RuntimeConfig {
            cache_dir: cache,
            ..test_config()
        })
        .unwrap(),
    )
}

fn registry(rt: Arc<Runtime>) -> Registry {
    Registry::new(rt, Arc::new(Metrics::new()), 5)
}

fn main() {
    let _ = components_dir();
    let v1 = component("wechat-v2");
    let v2 = component("wechat-v2-next");
    println!("| measurement | median of {ROUNDS} |");
    println!("| --- | --- |");

    // Upload to active, in process, uncached: a fresh runtime every round.
    let mut cold = Vec::new();
    let mut hot = Vec::new();
    for _ in 0..ROUNDS {
        let reg = registry(runtime(None));
        reg.install("wechat-v2", &v1, Source::Admin).unwrap();
        let t = Instant::now();
        reg.install("wechat-v2", &v2, Source::Admin).unwrap();
        cold.push(t.elapsed());
        // Back to a version this runtime compiled already.
        let t = Instant::now();
        reg.install("wechat-v2", &v1, Source::Admin).unwrap();
        hot.push(t.elapsed());
    }
    println!(
        "| install, new version (compile + validate + swap) | {} |",
        ms(median(cold))
    );
    println!(
        "| install, version compiled earlier (validate + swap) | {} |",
        ms(median(hot))
    );

    // Restart: load the directory with an empty cache, then as the next
    // process would, with the cache the first one wrote.
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let cache = temp_dir(&format!("bench-swap-cache-{i}"));
        let dir = temp_dir(&format!("bench-swap-dir-{i}"));
        std::fs::write(dir.join("wechat-v2.wasm"), &v1).unwrap();
        let t = Instant::now();
        registry(runtime(Some(cache.clone())))
            .load_dir(&dir)
            .unwrap();
        cold.push(t.elapsed());
        let t = Instant::now();
        let rt = runtime(Some(cache.clone()));
        registry(rt.clone()).load_dir(&dir).unwrap();
        warm.push(t.elapsed());
        assert_eq!(rt.compiled_count(), 0, "warm start compiled");
        let _ = std::fs::remove_dir_all(&cache);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "| restart: runtime + adapters directory, cold cache | {} |",
        ms(median(cold))
    );
    println!(
        "| restart: runtime + adapters directory, warm cache | {} |",
        ms(median(warm))
    );

    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(over_http(v1, v2));
}

async fn over_http(v1: Vec<u8>, v2: Vec<u8>) {
    let dir = temp_dir("bench-swap-http-adapters");
    std::fs::write(dir.join("wechat-v2.wasm"), &v1).unwrap();
    let f = Front::start(
        "bench-swap-http",
        Options {
            admin_token: Some(ADMIN_TOKEN.into()),
            adapters_dir: Some(dir),
            limits: "create_per_min = 1000000\nquery_per_min = 1000000".into(),
            ..Default::default()
        },
    )
    .await;
    let put = |bytes: Vec<u8>| {
        f.client
            .put(f.url("/admin/adapters/wechat-v2"))
            .bearer_auth(ADMIN_TOKEN)
            .body(bytes)
            .send()
    };
    // The first upload of v2 compiles it (or reads the shared disk cache).
    let mut times = Vec::new();
    for i in 0..ROUNDS * 2 {
        let bytes = if i % 2 == 0 { v2.clone() } else { v1.clone() };
        let t = Instant::now();
        let r = put(bytes).await.unwrap();
        assert_eq!(r.status(), 201);
        times.push(t.elapsed());
    }
    println!(
        "| PUT /admin/adapters/wechat-v2, compiled earlier (HTTP, 255 KB) | {} |",
        ms(median(times))
    );

    // Latency: the same clients for the same time, without then with swaps.
    let quiet = load(&f, "Q", None).await;
    let swapping = load(&f, "S", Some((v1.clone(), v2.clone()))).await;
    for (label, mut lat) in [("without swaps", quiet.0), ("during swaps", swapping.0)] {
        lat.sort();
        let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
        println!(
            "| POST /v1/payments {label}: p50 / p99 / max ({} requests) | {} / {} / {} |",
            lat.len(),
            ms(p(0.5)),
            ms(p(0.99)),
            ms(*lat.last().unwrap())
        );
    }
    println!("| swaps during the second run | {} |", swapping.1);
}

/// Four clients creating payments for two seconds; optionally an admin
/// swapping between two builds every 50 ms meanwhile.
async fn load(f: &Front, tag: &str, swaps: Option<(Vec<u8>, Vec<u8>)>) -> (Vec<Duration>, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..4 {
        let (base, stop, tag) = (f.base.clone(), stop.clone(), format!("{tag}{c}"));
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut lat = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let t = Instant::now();
                let r = http
                    .post(format!("{base}/v1/payments"))
                    .bearer_auth(MERCHANT_KEY)
                    .json(&payhost_e2e::front::order_body(
                        &format!("{tag}N{n:06}"),
                        100,
                    ))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let end = Instant::now() + Duration::from_secs(2);
    let mut swaps_done = 0;
    if let Some((v1, v2)) = swaps {
        while Instant::now() < end {
            let bytes = if swaps_done % 2 == 0 {
                v2.clone()
            } else {
                v1.clone()
            };
            let r = f
                .client
                .put(f.url("/admin/adapters/wechat-v2"))
                .bearer_auth(ADMIN_TOKEN)
                .body(bytes)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            swaps_done += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    } else {
        tokio::time::sleep_until(end.into()).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, swaps_done)
}
