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
//! 3. `payhost+key`: the same, with a fresh `Idempotency-Key` on every
//!    request (what a careful merchant sends).
//! 4. `notify`: C workers POST the simulator's signed payment notification
//!    of each order phases 2 and 3 created (distinct orders) to payhost's
//!    notify endpoint; each is verified, applied and committed.
//!
//! Then, on a fresh payhost, `half load`: an open loop at half the best
//! `payhost+key` throughput, direct and through payhost, for the p99 a
//! create has when the host is not saturated (host-added = payhost p99
//! minus direct p99). Its latency runs from each request's scheduled start,
//! so a stall is counted, not hidden.
//!
//! Each closed-loop phase is a closed loop (every worker sends its next request when
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
//! - `LOAD_HALF=0` skips the half-load phases;
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
    /// Run the open-loop phases at half the saturating load.
    half_load: bool,
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
            half_load: var("LOAD_HALF").is_none_or(|v| v.trim() != "0"),
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
    /// Order numbers the phase created (warm-up included), for the
    /// notifications that follow.
    created: Vec<String>,
    /// Requests sent, warm-up included.
    sent: u64,
    /// Store commits payhost's requests waited for, per request of the
    /// phase (warm-up included); `None` where not counted (direct).
    commits_per_req: Option<f64>,
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
    /// `POST /v1/payments` on payhost, with a fresh `Idempotency-Key` on
    /// every request when `keyed`.
    Payhost { url: String, keyed: bool },
    /// `POST /pay/unifiedorder` on the simulator, signed like the adapter.
    Direct { url: String, signer: Arc<Signer> },
    /// The n-th signed payment notification, POSTed to payhost's notify
    /// endpoint; the phase ends when they are used up.
    Notify {
        url: String,
        bodies: Arc<Vec<String>>,
    },
}

impl Target {
    /// Whether request `n` exists (notifications run out).
    fn has(&self, n: u64) -> bool {
        match self {
            Target::Notify { bodies, .. } => (n as usize) < bodies.len(),
            _ => true,
        }
    }
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
        Target::Payhost { url, keyed } => {
            let mut body = front::order_body(order_no, AMOUNT);
            body["payer"]["openid"] = openid.into();
            let bytes = serde_json::to_vec(&body).expect("JSON body");
            let mut req = client
                .post(url)
                .bearer_auth(MERCHANT_KEY)
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            if *keyed {
                req = req.header("idempotency-key", format!("load-{order_no}"));
            }
            let resp = req
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
        Target::Notify { url, bodies } => {
            let resp = client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "text/xml")
                .body(bodies[n as usize].clone())
                .send()
                .await
                .map_err(|e| transport_error(&e))?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| transport_error(&e))?;
            // Acknowledged only once verified, applied and committed.
            let (_, f) = xml::decode(&body).map_err(|_| format!("HTTP {status}, not an ack"))?;
            if !status.is_success() || f.get("return_code").map(String::as_str) != Some("SUCCESS") {
                return Err(format!("HTTP {} not acknowledged", status.as_u16()));
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
/// what they measured. `tag` keeps order numbers unique across phases. A
/// phase whose requests run out (notifications) ends early; its window is
/// then up to its last answer.
async fn run_phase(
    target: Target,
    tag: &str,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
) -> PhaseResult {
    let client = client(concurrency);
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let measure_until = measure_from + window;
    let cpu_probe = cpu_probe(measure_from, measure_until);

    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, target, counter) = (client.clone(), target.clone(), counter.clone());
        let tag = tag.to_string();
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut created = Vec::new();
            let mut last = start;
            loop {
                let sent = Instant::now();
                if sent >= measure_until {
                    break;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if !target.has(n) {
                    break;
                }
                // 6-32 of [A-Za-z0-9_-]: valid for payhost and for WeChat.
                let order_no = format!("{tag}N{n:010}");
                let openid = format!("oLoad{tag}{n:010}");
                let result = one_request(&client, &target, &order_no, &openid, n).await;
                last = Instant::now();
                if result.is_ok() && matches!(target, Target::Payhost { .. }) {
                    created.push(order_no);
                }
                tally.count(result, sent >= measure_from, last - sent);
            }
            (tally, created, last)
        }));
    }

    let mut tally = Tally::default();
    let mut created = Vec::new();
    let mut last = start;
    for w in workers {
        let (t, c, l) = w.await.expect("load worker");
        tally.add(t);
        created.extend(c);
        last = last.max(l);
    }
    let window = last
        .min(measure_until)
        .saturating_duration_since(measure_from);
    tally.result(
        window.max(Duration::from_millis(1)),
        cpu_probe.await.ok().flatten(),
        created,
    )
}

/// Latencies and failures of a phase, merged from its workers.
struct Tally {
    latency: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    warmup_errors: u64,
    sent: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            latency: new_histogram(),
            errors: BTreeMap::new(),
            warmup_errors: 0,
            sent: 0,
        }
    }
}

impl Tally {
    fn count(&mut self, result: Result<(), String>, measured: bool, took: Duration) {
        self.sent += 1;
        match result {
            Ok(()) if measured => {
                let us = (took.as_micros() as u64).clamp(1, MAX_LATENCY_US);
                self.latency.record(us).expect("latency within bounds");
            }
            Ok(()) => {}
            Err(kind) if measured => *self.errors.entry(kind).or_default() += 1,
            Err(_) => self.warmup_errors += 1,
        }
    }

    fn add(&mut self, other: Tally) {
        self.latency
            .add(&other.latency)
            .expect("same histogram bounds");
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.warmup_errors += other.warmup_errors;
        self.sent += other.sent;
    }

    fn result(self, window: Duration, cpu: Option<Duration>, created: Vec<String>) -> PhaseResult {
        let ok = self.latency.len();
        let requests = ok + self.errors.values().sum::<u64>();
        PhaseResult {
            ok,
            errors: self.errors,
            warmup_errors: self.warmup_errors,
            latency: self.latency,
            window,
            cpu_us_per_req: cpu
                .map(|c| c.as_secs_f64() * 1e6 / requests.max(1) as f64)
                .unwrap_or(f64::NAN),
            created,
            sent: self.sent,
            commits_per_req: None,
        }
    }
}

fn client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("reqwest client")
}

/// The process's CPU time between two instants.
fn cpu_probe(from: Instant, until: Instant) -> tokio::task::JoinHandle<Option<Duration>> {
    let cpu_at = |t: Instant| async move {
        tokio::time::sleep_until(t.into()).await;
        process_cpu()
    };
    tokio::spawn(async move {
        let a = cpu_at(from).await;
        let b = cpu_at(until).await;
        a.zip(b).map(|(a, b)| b.saturating_sub(a))
    })
}

/// Sends `rate` requests a second on a fixed schedule, whatever the answers
/// do (an open loop), for warm-up + window. Latency runs from each
/// request's scheduled start, so time a request waited behind a slow one is
/// counted.
async fn run_open(
    target: Target,
    tag: &str,
    rate: f64,
    warmup: Duration,
    window: Duration,
) -> PhaseResult {
    let client = client(1024);
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + warmup;
    let measure_until = measure_from + window;
    let cpu_probe = cpu_probe(measure_from, measure_until);
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0u64.. {
        let due = start + interval.mul_f64(n as f64);
        if due >= measure_until {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let (client, target) = (client.clone(), target.clone());
        let order_no = format!("{tag}N{n:010}");
        let openid = format!("oLoad{tag}{n:010}");
        tasks.spawn(async move {
            let result = one_request(&client, &target, &order_no, &openid, n).await;
            (result, due >= measure_from, due.elapsed())
        });
    }
    let mut tally = Tally::default();
    while let Some(done) = tasks.join_next().await {
        let (result, measured, took) = done.expect("open-loop request");
        tally.count(result, measured, took);
    }
    tally.result(window, cpu_probe.await.ok().flatten(), Vec::new())
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
    /// Creates with an `Idempotency-Key` on every request.
    keyed: PhaseResult,
    /// Verified payment notifications of distinct orders, applied.
    notify: PhaseResult,
    /// Mean time of the adapter call (both steps and the HTTP exchange with
    /// the simulator) inside payhost's creates during the keyed phase, µs.
    adapter_call_us: Option<f64>,
}

impl Level {
    fn phases(&self) -> [(&'static str, &PhaseResult); 4] {
        [
            ("direct", &self.direct),
            ("payhost", &self.payhost),
            ("payhost+key", &self.keyed),
            ("notify", &self.notify),
        ]
    }
}

/// A fresh payhost in front of a fresh simulator, with its store under
/// `LOAD_DATA_DIR` when set, and what it takes to remove it again.
struct Server {
    front: Front,
    own_dir: Option<PathBuf>,
}

impl Server {
    fn start(servers: &tokio::runtime::Runtime, settings: &Settings, name: &str) -> Server {
        let own_dir = settings.data_dir.as_ref().map(|parent| {
            let dir = parent.join(format!("{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("creating LOAD_DATA_DIR");
            dir
        });
        let options = Options {
            limits: "create_per_min = 1000000".into(),
            data_dir: own_dir.clone(),
            // The notify guard's per-merchant rate and concurrency are
            // lifted: the bench measures what the host can apply.
            extra_toml: "[notify]\nper_merchant_per_min = 100000000\n\
                         per_merchant_concurrent = 100000\n"
                .into(),
            ..Options::default()
        };
        let front = servers.block_on(Front::start(name, options));
        Server { front, own_dir }
    }

    /// The direct target, signed as the adapter signs (checked on a probe).
    fn direct(&self, servers: &tokio::runtime::Runtime) -> anyhow::Result<Target> {
        let template = servers.block_on(capture_template(&self.front))?;
        let signer = Arc::new(Signer::new(template)?);
        signer.check_template()?;
        Ok(Target::Direct {
            url: format!("{}/pay/unifiedorder", self.front.sim.base_url()),
            signer,
        })
    }

    fn payhost(&self, keyed: bool) -> Target {
        Target::Payhost {
            url: self.front.url("/v1/payments"),
            keyed,
        }
    }

    fn stop(self, servers: &tokio::runtime::Runtime) {
        let data = self.front.data_dir.clone();
        let f = self.front;
        servers.block_on(async move { drop(f) });
        let _ = std::fs::remove_dir_all(self.own_dir.unwrap_or(data));
    }
}

fn run_level(
    servers: &tokio::runtime::Runtime,
    load: &tokio::runtime::Runtime,
    settings: &Settings,
    concurrency: usize,
) -> anyhow::Result<Level> {
    let server = Server::start(servers, settings, &format!("load-c{concurrency}"));
    let direct = server.direct(servers)?;
    let (w, m) = (settings.warmup, settings.measure);
    let store = server.front.running.state.store.clone();
    let phase = |what: &str, target: Target, tag: &str| {
        eprintln!("c={concurrency}: {what}...");
        let before = store.commit_waits();
        let mut r = load.block_on(run_phase(
            target,
            &format!("{tag}{concurrency}"),
            concurrency,
            w,
            m,
        ));
        let requests = r.sent.max(1) as f64;
        r.commits_per_req = before
            .zip(store.commit_waits())
            .map(|(a, b)| (b - a) as f64 / requests);
        r
    };
    let mut direct = phase("direct to the simulator", direct, "D");
    direct.commits_per_req = None;
    let payhost = phase("through payhost", server.payhost(false), "P");
    let before = servers.block_on(adapter_call_totals(&server.front));
    let keyed = phase(
        "through payhost, with Idempotency-Key",
        server.payhost(true),
        "K",
    );
    let after = servers.block_on(adapter_call_totals(&server.front));
    let adapter_call_us = match (before, after) {
        (Some((s0, c0)), Some((s1, c1))) if c1 > c0 => Some((s1 - s0) / (c1 - c0) * 1e6),
        _ => None,
    };
    // Each order the two payhost phases created, paid at the simulator:
    // its signed notification, ready before the phase starts.
    let bodies = payhost
        .created
        .iter()
        .chain(&keyed.created)
        .map(|no| server.front.sim.pay(no))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let notify = Target::Notify {
        url: server.front.url("/v1/notify/wechat-v2/shop-1"),
        bodies: Arc::new(bodies),
    };
    let notify = phase("payment notifications to payhost", notify, "N");
    server.stop(servers);
    Ok(Level {
        concurrency,
        direct,
        payhost,
        keyed,
        notify,
        adapter_call_us,
    })
}

/// The open-loop phases at one rate, on a fresh payhost.
struct HalfLoad {
    rate: f64,
    direct: PhaseResult,
    keyed: PhaseResult,
}

fn run_half_load(
    servers: &tokio::runtime::Runtime,
    load: &tokio::runtime::Runtime,
    settings: &Settings,
    rate: f64,
) -> anyhow::Result<HalfLoad> {
    let server = Server::start(servers, settings, "load-half");
    let direct = server.direct(servers)?;
    let (w, m) = (settings.warmup, settings.measure);
    eprintln!("half load ({rate:.0}/s): direct to the simulator...");
    let direct = load.block_on(run_open(direct, "HD", rate, w, m));
    eprintln!("half load ({rate:.0}/s): through payhost, with Idempotency-Key...");
    let keyed = load.block_on(run_open(server.payhost(true), "HK", rate, w, m));
    server.stop(servers);
    Ok(HalfLoad {
        rate,
        direct,
        keyed,
    })
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
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
fn print_report(
    settings: &Settings,
    levels: &[Level],
    half: Option<&HalfLoad>,
    load_before: &str,
) -> bool {
    println!();
    println!(
        "load: POST /v1/payments through payhost vs /pay/unifiedorder direct to the simulator"
    );
    println!(
        "machine: {}; load average (1, 5, 15 min) {load_before} before, {} after; \
         warm-up {:.1} s, window {:.1} s per phase; store: {}",
        machine(),
        load_average(),
        settings.warmup.as_secs_f64(),
        settings.measure.as_secs_f64(),
        settings
            .data_dir
            .as_ref()
            .map_or("target/e2e-tmp".into(), |d| d.display().to_string())
    );
    println!();
    println!(
        "| C | target | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | CPU µs/req | store commits waited per request |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let row = |c: &str, name: &str, r: &PhaseResult| {
        println!(
            "| {c} | {name} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} |",
            r.ok + r.error_count(),
            r.error_count(),
            r.throughput(),
            r.ms(0.50),
            r.ms(0.90),
            r.ms(0.99),
            r.latency.max() as f64 / 1000.0,
            r.cpu_us_per_req,
            r.commits_per_req
                .map_or("n/a".to_string(), |c| format!("{c:.2}")),
        );
    };
    for l in levels {
        for (name, r) in l.phases() {
            row(&l.concurrency.to_string(), name, r);
        }
    }
    println!();
    println!(
        "| C | throughput direct/payhost+key | direct/payhost | notify/payhost+key | p50 payhost+key/direct | p99 payhost+key/direct | host CPU µs per create (payhost+key − direct) | adapter call in payhost+key, mean µs |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for l in levels {
        let (d, p, k, n) = (&l.direct, &l.payhost, &l.keyed, &l.notify);
        println!(
            "| {} | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.0} | {} |",
            l.concurrency,
            d.throughput() / k.throughput(),
            d.throughput() / p.throughput(),
            n.throughput() / k.throughput(),
            k.ms(0.50) / d.ms(0.50),
            k.ms(0.99) / d.ms(0.99),
            k.cpu_us_per_req - d.cpu_us_per_req,
            l.adapter_call_us
                .map_or("n/a".to_string(), |us| format!("{us:.0}")),
        );
    }
    if let Some(h) = half {
        println!();
        println!(
            "half load: open loop at {:.0} req/s (half the best payhost+key throughput above)",
            h.rate
        );
        println!();
        println!(
            "| C | target | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | CPU µs/req | store commits waited per request |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        row("open", "direct", &h.direct);
        row("open", "payhost+key", &h.keyed);
        println!();
        println!(
            "host-added p99 at half load (payhost+key p99 − direct p99): {:.2} ms",
            h.keyed.ms(0.99) - h.direct.ms(0.99)
        );
    }
    println!();
    let mut clean = true;
    let mut all: Vec<(String, &PhaseResult)> = Vec::new();
    for l in levels {
        for (name, r) in l.phases() {
            all.push((format!("C={} {name}", l.concurrency), r));
        }
    }
    if let Some(h) = half {
        all.push(("half load direct".into(), &h.direct));
        all.push(("half load payhost+key".into(), &h.keyed));
    }
    for (name, r) in all {
        if r.error_count() > 0 {
            clean = false;
            println!(
                "ERRORS at {name}: {} of {} requests failed: {:?}",
                r.error_count(),
                r.ok + r.error_count(),
                r.errors
            );
        }
        if r.warmup_errors > 0 {
            clean = false;
            println!("ERRORS at {name} during the warm-up: {}", r.warmup_errors);
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
    let load_before = load_average();
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
    let best = levels
        .iter()
        .map(|l| l.keyed.throughput())
        .fold(0.0, f64::max);
    let half = if settings.half_load && best >= 2.0 {
        Some(run_half_load(&servers, &load, &settings, best / 2.0)?)
    } else {
        None
    };
    if !print_report(&settings, &levels, half.as_ref(), &load_before) {
        std::process::exit(1);
    }
    Ok(())
}
