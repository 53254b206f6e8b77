//! Load benchmark: `POST /v1/payments` through payhost against the WeChat
//! Pay v2 simulator, and the equivalent signed `/pay/unifiedorder` straight
//! at the same simulator, in one process and one run, so the host's added
//! cost reads as a ratio.
//!
//! For each concurrency level C a fresh payhost ([`Front`], with its own
//! SQLite file and simulator) is started, then:
//!
//! 1. `direct`: C workers POST signed unified-order XML to the simulator.
//! 2. `payhost`: C workers POST `/v1/payments` to payhost, which calls the
//!    same simulator through the wechat-v2 adapter.
//!
//! Each phase is a closed loop (every worker sends its next request when
//! the previous answer has been read) over its own keep-alive connection,
//! with a warm-up, then a fixed measuring window. Every request carries a
//! fresh `merchant_order_no` / `out_trade_no` and a fresh payer `openid`,
//! so every request creates a real order on both sides. Only 127.0.0.1 is
//! ever addressed, and the run stops by itself.
//!
//! Run: `cargo bench -p payhost-e2e --bench load`; see docs/benchmarks.md.
//! Environment knobs (all optional):
//! - `LOAD_CONCURRENCY` (default `16,64`), `LOAD_WARMUP_SECS` (2),
//!   `LOAD_SECS` (10);
//! - `LOAD_DATA_DIR`: parent directory of payhost's SQLite data (default
//!   `target/e2e-tmp`); e.g. `/dev/shm/payhost-load` puts the store on tmpfs.

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use payhost_e2e::front::{self, Front, MERCHANT_KEY, Options, WECHAT_KEY};
use payhost_sdk::canonical;
use payhost_sdk::encoding;
use payhost_sdk::native::{DigestAlgorithm, KeyEncoding, Part, SecretTable};
use payhost_sdk::xml::{self, Fields};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Largest latency the histograms hold (the client's timeout is below it).
const MAX_LATENCY_US: u64 = 60_000_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const AMOUNT: i64 = 1999;

struct Settings {
    concurrency: Vec<usize>,
    warmup: Duration,
    measure: Duration,
    data_dir: Option<PathBuf>,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let secs = |name: &str, default: f64| -> anyhow::Result<Duration> {
            let v = match var(name) {
                Some(v) => v.trim().parse::<f64>().with_context(|| name.to_string())?,
                None => default,
            };
            if !(0.0..=300.0).contains(&v) {
                bail!("{name} must be between 0 and 300 seconds");
            }
            Ok(Duration::from_secs_f64(v))
        };
        let concurrency = match var("LOAD_CONCURRENCY") {
            Some(v) => v
                .split(',')
                .map(|c| c.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .context("LOAD_CONCURRENCY: comma-separated worker counts")?,
            None => vec![16, 64],
        };
        if concurrency.is_empty() || concurrency.iter().any(|&c| c == 0 || c > 1024) {
            bail!("LOAD_CONCURRENCY: each level must be 1..=1024");
        }
        let measure = secs("LOAD_SECS", 10.0)?;
        if measure.is_zero() {
            bail!("LOAD_SECS must be above 0");
        }
        Ok(Settings {
            concurrency,
            warmup: secs("LOAD_WARMUP_SECS", 2.0)?,
            measure,
            data_dir: var("LOAD_DATA_DIR").map(PathBuf::from),
        })
    }
}

/// What one phase measured.
struct PhaseResult {
    /// Requests started inside the window and answered successfully.
    ok: u64,
    /// Requests started inside the window that failed, by kind.
    errors: BTreeMap<String, u64>,
    /// Failures during the warm-up (not in the figures, but reported).
    warmup_errors: u64,
    /// Latency of the successful requests, µs.
    latency: Histogram<u64>,
    window: Duration,
    /// CPU time of the whole process (client, payhost, simulator) per
    /// request in the window, µs.
    cpu_us_per_req: f64,
}

impl PhaseResult {
    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
    fn throughput(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }
    fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

/// How to build and judge one request of a phase.
#[derive(Clone)]
enum Target {
    /// `POST /v1/payments` on payhost.
    Payhost { url: String },
    /// `POST /pay/unifiedorder` on the simulator, signed like the adapter.
    Direct { url: String, signer: Arc<Signer> },
}

/// Re-signs the unified-order request the adapter sent, with a new order
/// number, payer and nonce, the way the adapter signs it.
struct Signer {
    template: Fields,
    keys: SecretTable,
    key: u32,
    hmac: bool,
}

impl Signer {
    fn new(template: Fields) -> anyhow::Result<Signer> {
        let hmac = match template.get("sign_type").map(String::as_str) {
            None | Some("MD5") => false,
            Some("HMAC-SHA256") => true,
            Some(other) => bail!("unexpected sign_type `{other}` in the captured request"),
        };
        let mut keys = SecretTable::new();
        let key = keys.insert(WECHAT_KEY.as_bytes().to_vec());
        Ok(Signer {
            template,
            keys,
            key,
            hmac,
        })
    }

    fn body(&self, order_no: &str, openid: &str, n: u64) -> String {
        let mut f = self.template.clone();
        f.insert("out_trade_no".into(), order_no.into());
        f.insert("openid".into(), openid.into());
        let nonce = encoding::hex_lower(&payhost_sdk::native::digest(
            DigestAlgorithm::Md5,
            format!("load-nonce-{n}").as_bytes(),
        ));
        f.insert("nonce_str".into(), nonce);
        let temp = format!("{}&key=", canonical::sorted_pairs(&f, &["sign"]));
        let parts = [Part::Text(&temp), Part::Secret(self.key)];
        let digest = if self.hmac {
            self.keys
                .hmac(DigestAlgorithm::Sha256, self.key, KeyEncoding::Raw, &parts)
        } else {
            self.keys.digest(DigestAlgorithm::Md5, &parts)
        }
        .expect("the bench's own key handle");
        f.insert("sign".into(), encoding::hex_upper(&digest));
        xml::encode("xml", &f)
    }

    /// Checks that the template (as captured) verifies under the key: then
    /// what [`Signer::body`] produces is what the adapter would send.
    fn check_template(&self) -> anyhow::Result<()> {
        let temp = format!(
            "{}&key=",
            canonical::sorted_pairs(&self.template, &["sign"])
        );
        let parts = [Part::Text(&temp), Part::Secret(self.key)];
        let digest = if self.hmac {
            self.keys
                .hmac(DigestAlgorithm::Sha256, self.key, KeyEncoding::Raw, &parts)
        } else {
            self.keys.digest(DigestAlgorithm::Md5, &parts)
        }
        .expect("the bench's own key handle");
        if self.template.get("sign") != Some(&encoding::hex_upper(&digest)) {
            bail!("the captured request's signature is not reproduced by the bench's signer");
        }
        Ok(())
    }
}

/// Process CPU time (user + system), from /proc/self/stat in clock ticks
/// (USER_HZ, 100 on Linux).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("histogram bounds")
}

/// One request; `Ok(())` when it succeeded as the target defines success.
async fn one_request(
    client: &reqwest::Client,
    target: &Target,
    order_no: &str,
    openid: &str,
    n: u64,
) -> Result<(), String> {
    match target {
        Target::Payhost { url } => {
            let mut body = front::order_body(order_no, AMOUNT);
            body["payer"]["openid"] = openid.into();
            let bytes = serde_json::to_vec(&body).expect("JSON body");
            let resp = client
                .post(url)
                .bearer_auth(MERCHANT_KEY)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes)
                .send()
                .await
                .map_err(|e| transport_error(&e))?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| transport_error(&e))?;
            if status != reqwest::StatusCode::CREATED {
                let code = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["code"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                return Err(format!("HTTP {} {code}", status.as_u16()));
            }
            Ok(())
        }
        Target::Direct { url, signer } => {
            let resp = client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "text/xml")
                .body(signer.body(order_no, openid, n))
                .send()
                .await
                .map_err(|e| transport_error(&e))?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| transport_error(&e))?;
            if !status.is_success() {
                return Err(format!("HTTP {}", status.as_u16()));
            }
            // WeChat answers 200 even when it refuses: read the codes.
            let (_, f) = xml::decode(&body).map_err(|_| "unparsable XML answer".to_string())?;
            let code = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
            if code("return_code") != "SUCCESS" || code("result_code") != "SUCCESS" {
                return Err(format!(
                    "refused: {} {}",
                    code("return_msg"),
                    code("err_code")
                ));
            }
            Ok(())
        }
    }
}

fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect error".into()
    } else {
        "transport error".into()
    }
}

/// Runs `concurrency` closed-loop workers for warm-up + window and gathers
/// what they measured. `tag` keeps order numbers unique across phases.
async fn run_phase(
    target: Target,
    tag: &str,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
) -> PhaseResult {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("reqwest client");
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let measure_until = measure_from + window;
    let cpu_at = |t: Instant| async move {
        tokio::time::sleep_until(t.into()).await;
        process_cpu()
    };
    let cpu_probe = tokio::spawn(async move {
        let a = cpu_at(measure_from).await;
        let b = cpu_at(measure_until).await;
        a.zip(b).map(|(a, b)| b.saturating_sub(a))
    });

    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, target, counter) = (client.clone(), target.clone(), counter.clone());
        let tag = tag.to_string();
        workers.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut warmup_errors = 0u64;
            loop {
                let sent = Instant::now();
                if sent >= measure_until {
                    break;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                // 6-32 of [A-Za-z0-9_-]: valid for payhost and for WeChat.
                let order_no = format!("{tag}N{n:010}");
                let openid = format!("oLoad{tag}{n:010}");
                let result = one_request(&client, &target, &order_no, &openid, n).await;
                let took = sent.elapsed();
                let measured = sent >= measure_from;
                match result {
                    Ok(()) if measured => {
                        let us = (took.as_micros() as u64).clamp(1, MAX_LATENCY_US);
                        hist.record(us).expect("latency within bounds");
                    }
                    Ok(()) => {}
                    Err(kind) if measured => *errors.entry(kind).or_default() += 1,
                    Err(_) => warmup_errors += 1,
                }
            }
            (hist, errors, warmup_errors)
        }));
    }

    let mut latency = new_histogram();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut warmup_errors = 0;
    for w in workers {
        let (h, e, we) = w.await.expect("load worker");
        latency.add(&h).expect("same histogram bounds");
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
        warmup_errors += we;
    }
    let cpu = cpu_probe.await.ok().flatten();
    let ok = latency.len();
    let requests = ok + errors.values().sum::<u64>();
    PhaseResult {
        ok,
        errors,
        warmup_errors,
        latency,
        window,
        cpu_us_per_req: cpu
            .map(|c| c.as_secs_f64() * 1e6 / requests.max(1) as f64)
            .unwrap_or(f64::NAN),
    }
}

/// One order through payhost, then the unified-order request the adapter
/// sent for it, as the simulator recorded it.
async fn capture_template(f: &Front) -> anyhow::Result<Fields> {
    let r = f.create("LOADPROBE0001", AMOUNT).await;
    let status = r.status();
    if status != reqwest::StatusCode::CREATED {
        bail!(
            "probe create answered {status}: {}",
            r.text().await.unwrap_or_default()
        );
    }
    let req = f
        .sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/pay/unifiedorder" && r.outcome == "SUCCESS")
        .context("the simulator saw no successful unified order")?;
    req.fields.context("the recorded request has no fields")
}

/// `payhost_adapter_call_seconds` sum and count from `/metrics`.
async fn adapter_call_totals(f: &Front) -> Option<(f64, f64)> {
    let text = f
        .client
        .get(f.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let mut sum = None;
    let mut count = None;
    for line in text.lines() {
        if !line.contains("adapter_call_seconds") || !line.contains("unified_order") {
            continue;
        }
        let value = line.rsplit(' ').next()?.parse::<f64>().ok();
        if line.contains("_sum{") {
            sum = value;
        } else if line.contains("_count{") {
            count = value;
        }
    }
    sum.zip(count)
}

struct Level {
    concurrency: usize,
    direct: PhaseResult,
    payhost: PhaseResult,
    /// Mean time of the adapter call (both steps and the HTTP exchange with
    /// the simulator) inside payhost's creates during the payhost phase, µs.
    adapter_call_us: Option<f64>,
}

fn run_level(
    servers: &tokio::runtime::Runtime,
    load: &tokio::runtime::Runtime,
    settings: &Settings,
    concurrency: usize,
) -> anyhow::Result<Level> {
    let name = format!("load-c{concurrency}");
    let data_dir = settings.data_dir.as_ref().map(|parent| {
        let dir = parent.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating LOAD_DATA_DIR");
        dir
    });
    let options = Options {
        limits: "create_per_min = 1000000".into(),
        data_dir: data_dir.clone(),
        ..Options::default()
    };
    let f = servers.block_on(Front::start(&name, options));
    let template = servers.block_on(capture_template(&f))?;
    let signer = Arc::new(Signer::new(template)?);
    signer.check_template()?;

    let direct = Target::Direct {
        url: format!("{}/pay/unifiedorder", f.sim.base_url()),
        signer,
    };
    let via = Target::Payhost {
        url: f.url("/v1/payments"),
    };
    let (w, m) = (settings.warmup, settings.measure);
    eprintln!("c={concurrency}: direct to the simulator...");
    let direct = load.block_on(run_phase(
        direct,
        &format!("D{concurrency}"),
        concurrency,
        w,
        m,
    ));
    let before = servers.block_on(adapter_call_totals(&f));
    eprintln!("c={concurrency}: through payhost...");
    let payhost = load.block_on(run_phase(
        via,
        &format!("P{concurrency}"),
        concurrency,
        w,
        m,
    ));
    let after = servers.block_on(adapter_call_totals(&f));
    let adapter_call_us = match (before, after) {
        (Some((s0, c0)), Some((s1, c1))) if c1 > c0 => Some((s1 - s0) / (c1 - c0) * 1e6),
        _ => None,
    };
    let data = f.data_dir.clone();
    servers.block_on(async move { drop(f) });
    if let Some(dir) = data_dir {
        let _ = std::fs::remove_dir_all(dir);
    } else {
        let _ = std::fs::remove_dir_all(data);
    }
    Ok(Level {
        concurrency,
        direct,
        payhost,
        adapter_call_us,
    })
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("{cpus} CPUs, {model}")
}

/// Prints the tables; returns whether the run had no error at all.
fn print_report(settings: &Settings, levels: &[Level]) -> bool {
    println!();
    println!(
        "load: POST /v1/payments through payhost vs /pay/unifiedorder direct to the simulator"
    );
    println!(
        "machine: {}; warm-up {:.1} s, window {:.1} s per phase; store: {}",
        machine(),
        settings.warmup.as_secs_f64(),
        settings.measure.as_secs_f64(),
        settings
            .data_dir
            .as_ref()
            .map_or("target/e2e-tmp".into(), |d| d.display().to_string())
    );
    println!();
    println!(
        "| C | target | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | CPU µs/req |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for l in levels {
        for (name, r) in [("direct", &l.direct), ("payhost", &l.payhost)] {
            println!(
                "| {} | {name} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
                l.concurrency,
                r.ok + r.error_count(),
                r.error_count(),
                r.throughput(),
                r.ms(0.50),
                r.ms(0.90),
                r.ms(0.99),
                r.latency.max() as f64 / 1000.0,
                r.cpu_us_per_req,
            );
        }
    }
    println!();
    println!(
        "| C | throughput direct/payhost | p50 payhost/direct | p99 payhost/direct | CPU/req payhost/direct | adapter call in payhost, mean µs |"
    );
    println!("|---|---|---|---|---|---|");
    for l in levels {
        let (d, p) = (&l.direct, &l.payhost);
        println!(
            "| {} | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {} |",
            l.concurrency,
            d.throughput() / p.throughput(),
            p.ms(0.50) / d.ms(0.50),
            p.ms(0.99) / d.ms(0.99),
            p.cpu_us_per_req / d.cpu_us_per_req,
            l.adapter_call_us
                .map_or("n/a".to_string(), |us| format!("{us:.0}")),
        );
    }
    println!();
    let mut clean = true;
    for l in levels {
        for (name, r) in [("direct", &l.direct), ("payhost", &l.payhost)] {
            if r.error_count() > 0 {
                clean = false;
                println!(
                    "ERRORS at C={} {name}: {} of {} requests failed: {:?}",
                    l.concurrency,
                    r.error_count(),
                    r.ok + r.error_count(),
                    r.errors
                );
            }
            if r.warmup_errors > 0 {
                clean = false;
                println!(
                    "ERRORS at C={} {name} during the warm-up: {}",
                    l.concurrency, r.warmup_errors
                );
            }
        }
    }
    if clean {
        println!("errors: none (every request in every phase answered 201 / SUCCESS)");
    } else {
        println!("THIS RUN HAD ERRORS: the figures above cover successful requests only");
    }
    clean
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; a plain run of the target (as `cargo
    // test --benches` does) only says how to run it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("load: run with `cargo bench -p payhost-e2e --bench load`");
        return Ok(());
    }
    let settings = Settings::from_env()?;
    // The servers (payhost, simulator, merchant receiver) and the load
    // generator each get their own runtime, as separate processes would.
    let servers = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("servers")
        .build()?;
    let load = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("load")
        .build()?;
    let mut levels = Vec::new();
    for &c in &settings.concurrency {
        levels.push(run_level(&servers, &load, &settings, c)?);
    }
    if !print_report(&settings, &levels) {
        std::process::exit(1);
    }
    Ok(())
}
