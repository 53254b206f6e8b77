//! Forged-notification flood: 10,000 forged WeChat notifications posted in
//! one burst at `/v1/notify/wechat-v2/shop-1` while the same merchant keeps
//! creating payments, against an unloaded baseline taken just before in
//! the same process, so the effect reads as a ratio.
//!
//! Two configurations, one after the other in one run, each on a fresh
//! payhost (its own SQLite file and simulator):
//!
//! - `defaults`: the `[notify]` defaults (1200 a minute and 4 at once per
//!   merchant, 60 forgeries a minute after a burst of 10, 2 KiB of body
//!   and 1 KiB of headers kept when unverified);
//! - `no forgery budget`: the rates lifted, so every forged request that
//!   gets one of the 4 slots reaches the adapter and is stored (truncated):
//!   the worst case for the store's growth, and what the budget saves.
//!
//! The servers, the flood and the merchant's client run on three tokio
//! runtimes, as three processes would. A third configuration repeats
//! `defaults` with the flood's threads at nice 19: a real flood's client
//! runs on the attacker's machine, so what the creates should pay for is
//! payhost's work on it, not the work of making it; on one machine the
//! nearest to that is giving the flood's client only the CPU the server
//! leaves.
//!
//! Reported per configuration: create latency (p50, p95) unloaded and
//! during the flood and their ratio, the flood's answers by status, and the
//! store's growth (database and WAL files) per forged request, next to the
//! configured truncated size. Only 127.0.0.1 is addressed.
//!
//! Run: `cargo bench -p payhost-e2e --bench notify_flood`; see
//! docs/benchmarks.md. Knobs: `FLOOD_REQUESTS` (10000), `FLOOD_BODY_BYTES`
//! (16384), `FLOOD_CONNECTIONS` (32), `FLOOD_BASELINE` (200 creates).

use payhost_e2e::front::{Front, MERCHANT_KEY, Options, order_body};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What `[notify]` keeps of an unverified request (the defaults).
const KEPT_BYTES: u64 = 2048 + 1024;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn forged(len: usize, n: usize) -> String {
    let head = format!(
        "<xml><return_code>SUCCESS</return_code><out_trade_no>F{n}</out_trade_no><sign>0</sign><pad>"
    );
    let pad = len.saturating_sub(head.len() + 12);
    format!("{head}{}</pad></xml>", "x".repeat(pad))
}

fn store_bytes(f: &Front) -> u64 {
    ["payhost.db", "payhost.db-wal"]
        .iter()
        .filter_map(|name| std::fs::metadata(f.data_dir.join(name)).ok())
        .map(|m| m.len())
        .sum()
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

struct Run {
    name: &'static str,
    unloaded: Vec<Duration>,
    loaded: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
    flood_secs: f64,
    growth: u64,
    stored_rows: usize,
    stored_bytes: usize,
    requests: usize,
}

/// One `POST /v1/payments` from the merchant's own client.
async fn create(client: &reqwest::Client, url: &str, n: &AtomicU64) -> Duration {
    let no = format!("FLOOD-{:07}", n.fetch_add(1, Ordering::SeqCst));
    let start = Instant::now();
    let r = client
        .post(url)
        .bearer_auth(MERCHANT_KEY)
        .json(&order_body(&no, 1))
        .send()
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED, "create {no}");
    took
}

/// The servers (payhost, simulator, merchant receiver), the flood and the
/// merchant's client each on their own runtime, as separate processes
/// would be.
struct Runtimes {
    servers: tokio::runtime::Runtime,
    flood: tokio::runtime::Runtime,
    /// The same as `flood`, its threads at nice 19.
    flood_niced: tokio::runtime::Runtime,
    client: tokio::runtime::Runtime,
}

fn run(rt: &Runtimes, name: &'static str, notify_toml: &str, niced: bool) -> Run {
    let flood_rt = if niced { &rt.flood_niced } else { &rt.flood };
    let requests = env("FLOOD_REQUESTS", 10_000);
    let body_bytes = env("FLOOD_BODY_BYTES", 16 * 1024);
    let connections = env("FLOOD_CONNECTIONS", 32);
    let baseline = env("FLOOD_BASELINE", 200);
    let f = rt.servers.block_on(Front::start(
        &format!("bench-flood-{}", name.replace(' ', "-")),
        Options {
            limits: "create_per_min = 100000000".into(),
            extra_toml: notify_toml.into(),
            ..Default::default()
        },
    ));
    let store = f.running.state.store.clone();
    let records = |rt: &Runtimes| {
        rt.servers
            .block_on(store.list_notifications("shop-1", i64::MAX, None))
            .unwrap()
    };
    let client = reqwest::Client::new();
    let create_url = f.url("/v1/payments");
    let n = Arc::new(AtomicU64::new(0));
    let unloaded = rt.client.block_on(async {
        for _ in 0..20 {
            create(&client, &create_url, &n).await;
        }
        let mut unloaded = Vec::new();
        for _ in 0..baseline {
            unloaded.push(create(&client, &create_url, &n).await);
        }
        unloaded
    });

    let before = store_bytes(&f);
    let rows_before = records(rt).len();
    let flooding = Arc::new(AtomicBool::new(true));
    let next = Arc::new(AtomicU64::new(0));
    let url = f.url("/v1/notify/wechat-v2/shop-1");
    let start = Instant::now();
    let flood = flood_rt.spawn(async move {
        let flood_client = reqwest::Client::new();
        let workers: Vec<_> = (0..connections)
            .map(|_| {
                let (client, url, next) = (flood_client.clone(), url.clone(), next.clone());
                tokio::spawn(async move {
                    let mut statuses = BTreeMap::<u16, u64>::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                        if i >= requests {
                            return statuses;
                        }
                        let sent = client.post(&url).body(forged(body_bytes, i)).send().await;
                        let status = sent.map(|r| r.status().as_u16()).unwrap_or(0);
                        *statuses.entry(status).or_default() += 1;
                    }
                })
            })
            .collect();
        let mut statuses = BTreeMap::new();
        for w in workers {
            for (s, c) in w.await.unwrap() {
                *statuses.entry(s).or_default() += c;
            }
        }
        statuses
    });
    let creator = rt.client.spawn({
        let (flooding, n) = (flooding.clone(), n.clone());
        async move {
            let mut loaded = Vec::new();
            while flooding.load(Ordering::SeqCst) {
                loaded.push(create(&client, &create_url, &n).await);
            }
            loaded
        }
    });
    let statuses = flood_rt.block_on(flood).unwrap();
    let flood_secs = start.elapsed().as_secs_f64();
    flooding.store(false, Ordering::SeqCst);
    let loaded = rt.client.block_on(creator).unwrap();
    let growth = store_bytes(&f).saturating_sub(before);
    let all = records(rt);
    let stored = &all[rows_before..];
    let stored_bytes = stored
        .iter()
        .map(|r| {
            r.body.len()
                + r.headers.to_string().len()
                + r.query.len()
                + r.detail.as_ref().map_or(0, String::len)
        })
        .sum();
    drop(f);
    Run {
        name,
        unloaded,
        loaded,
        statuses,
        flood_secs,
        growth,
        stored_rows: stored.len(),
        stored_bytes,
        requests,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // `cargo bench` passes `--bench`; a plain run of the target (as `cargo
    // test --benches` does) only says how to run it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("notify_flood: run with `cargo bench -p payhost-e2e --bench notify_flood`");
        return;
    }
    let runtime = |name: &str, nice: i32| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name(name)
            .on_thread_start(move || {
                // Linux: the nice value is per thread, and 0 names this one.
                // SAFETY: setpriority only reads its integer arguments.
                if nice != 0 && unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
                    eprintln!("setpriority({nice}) failed");
                }
            })
            .build()
            .expect("tokio runtime")
    };
    let rt = Runtimes {
        servers: runtime("servers", 0),
        flood: runtime("flood", 0),
        flood_niced: runtime("flood-niced", 19),
        client: runtime("client", 0),
    };
    let runs = vec![
        run(&rt, "defaults", "", false),
        run(&rt, "defaults, flood at nice 19", "", true),
        run(
            &rt,
            "no forgery budget",
            "[notify]\nper_merchant_per_min = 100000000\nunverified_per_min = 100000000\n\
             unverified_burst = 100000000\n",
            false,
        ),
    ];
    println!(
        "\n| configuration | create p50 unloaded | p50 in flood | ratio | p95 unloaded | p95 in flood | ratio | creates in flood | flood answers | flood time | store growth per forged request | stored rows (data bytes each) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for mut r in runs {
        r.unloaded.sort();
        r.loaded.sort();
        let (u50, l50) = (quantile(&r.unloaded, 0.5), quantile(&r.loaded, 0.5));
        let (u95, l95) = (quantile(&r.unloaded, 0.95), quantile(&r.loaded, 0.95));
        let answers: Vec<String> = r.statuses.iter().map(|(s, c)| format!("{c}x{s}")).collect();
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.2} | {:.2} ms | {:.2} ms | {:.2} | {} | {} | {:.1} s | {:.0} B (kept at most {KEPT_BYTES} B) | {} ({:.0} B) |",
            r.name,
            ms(u50),
            ms(l50),
            ms(l50) / ms(u50),
            ms(u95),
            ms(l95),
            ms(l95) / ms(u95),
            r.loaded.len(),
            answers.join(", "),
            r.flood_secs,
            r.growth as f64 / r.requests as f64,
            r.stored_rows,
            r.stored_bytes as f64 / r.stored_rows.max(1) as f64,
        );
    }
}
