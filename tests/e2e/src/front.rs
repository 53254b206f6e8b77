//! A whole payhost (API, store, workers) on loopback, in front of the
//! WeChat Pay v2 simulator, with a merchant callback receiver: what the
//! API tests drive over real HTTP.

use crate::{components_dir, temp_dir};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use payhost::config::{Config, api_key_hash};
use payhost::server::{self, Running};
use payhost_simulators::wechat_v2::{SimConfig, Simulator};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub const APPID: &str = "wx2421b1c4370ec43b";
pub const MCH_ID: &str = "10000100";
pub const WECHAT_KEY: &str = "192006250b4c09247ec02edce69f6a2d";
pub const MERCHANT_KEY: &str = "pk_test_shop1_3f9c2a";
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One webhook delivery as the merchant received it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Whether the receiver accepted it (2xx).
    pub accepted: bool,
}

/// The merchant's callback endpoint: records every delivery and refuses the
/// first `fail_first` of them with 500; answers each after `delay_ms`.
#[derive(Clone, Default)]
pub struct Receiver {
    pub deliveries: Arc<Mutex<Vec<Delivery>>>,
    pub fail_first: Arc<AtomicUsize>,
    pub delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl Receiver {
    pub fn accepted(&self) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.accepted)
            .cloned()
            .collect()
    }
}

/// Knobs for one test's payhost.
#[derive(Clone)]
pub struct Options {
    /// Extra TOML for `[merchants.limits]` of shop-1.
    pub limits: String,
    pub notify_overdue_secs: u64,
    pub reconciler_interval_ms: u64,
    pub initial_backoff_ms: u64,
    pub max_attempts: u32,
    /// Reuse this data directory (for restart tests).
    pub data_dir: Option<PathBuf>,
    /// `server.admin_token` (written to a file, referenced as `file:`).
    pub admin_token: Option<String>,
    /// Serve adapters from this directory instead of the shared build
    /// output (needed by anything that uploads or writes adapter files).
    pub adapters_dir: Option<PathBuf>,
    /// `[runtime] watch`.
    pub watch: bool,
    /// `[runtime] keep_versions`.
    pub keep_versions: usize,
    /// More merchants on the same simulator account, after shop-1.
    pub extra_merchants: Vec<ExtraMerchant>,
    /// `[reconciler] backoff_ms` (and `max_backoff_ms`, 20 times it).
    pub poll_backoff_ms: u64,
    /// `[egress] timeout_ms`: how long payhost waits for the provider.
    pub egress_timeout_ms: u64,
    /// `[webhooks] timeout_ms`.
    pub webhook_timeout_ms: u64,
    /// shop-1's `pin`: an adapter digest.
    pub pin: Option<String>,
    /// TOML appended to the configuration: more sections (`[notify]`,
    /// `[retention]`, `[adapters.<slot>]`) or `[[merchants]]`. `$SIM_URL`,
    /// `$CALLBACK_URL` and `$DATA_DIR` in it are replaced by the
    /// simulator's base URL, the webhook receiver's URL and the data
    /// directory (which holds `wechat.key` and `webhook.secret`).
    pub extra_toml: String,
    /// TOML inside `[server]` (e.g. `limits.max_connections = 8`).
    pub server_toml: String,
    /// TOML inside `[runtime]` (e.g. `shared_check_ms = 200`).
    pub runtime_toml: String,
    /// TOML inside `[egress]` (e.g. `extra_root_certificates = [...]`).
    pub egress_toml: String,
    /// TOML inside shop-1's `[merchants.config]` (e.g. `client_cert`).
    pub merchant_config_toml: String,
    /// `[store] url` (e.g. a PostgreSQL database); `None`: a SQLite file
    /// in the data directory.
    pub store_url: Option<String>,
}

/// Another merchant like shop-1 (same provider account, same limits).
#[derive(Clone, Debug)]
pub struct ExtraMerchant {
    pub id: String,
    pub api_key: String,
    /// `pin`: an adapter digest.
    pub pin: Option<String>,
}

impl Options {
    /// The reconciler looks every 50 ms and asks about anything a second
    /// late: what tests of polling and lost notifications want.
    pub fn fast_reconciler() -> Options {
        Options {
            reconciler_interval_ms: 50,
            notify_overdue_secs: 1,
            poll_backoff_ms: 100,
            ..Options::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: String::new(),
            notify_overdue_secs: 3600,
            reconciler_interval_ms: 100,
            initial_backoff_ms: 50,
            max_attempts: 12,
            data_dir: None,
            admin_token: None,
            adapters_dir: None,
            // Tests share the build output directory: no watching unless asked.
            watch: false,
            keep_versions: 5,
            extra_merchants: Vec::new(),
            poll_backoff_ms: 5_000,
            egress_timeout_ms: 10_000,
            webhook_timeout_ms: 2000,
            pin: None,
            extra_toml: String::new(),
            server_toml: String::new(),
            runtime_toml: String::new(),
            egress_toml: String::new(),
            merchant_config_toml: String::new(),
            store_url: None,
        }
    }
}

pub struct Front {
    /// Shared by the replicas of one provider account ([`Front::replica`]).
    pub sim: Arc<Simulator>,
    pub receiver: Receiver,
    pub running: Running,
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    pub options: Options,
}

impl Front {
    pub async fn start(name: &str, options: Options) -> Front {
        let sim = Simulator::start(sim_config()).await;
        Self::start_with(name, options, Arc::new(sim), "127.0.0.1:0").await
    }

    /// Another payhost (a replica: give each the same
    /// [`Options::store_url`]) in front of the same simulator, with its own
    /// data directory and webhook receiver.
    pub async fn replica(name: &str, options: Options, sim: Arc<Simulator>) -> Front {
        Self::start_with(name, options, sim, "127.0.0.1:0").await
    }

    /// Like [`start`](Self::start), in front of a simulator the test
    /// configured (faults, refund settlement) from [`sim_config`].
    pub async fn start_with_simulator(name: &str, options: Options, sim: Simulator) -> Front {
        Self::start_with(name, options, Arc::new(sim), "127.0.0.1:0").await
    }

    async fn start_with(name: &str, options: Options, sim: Arc<Simulator>, bind: &str) -> Front {
        let data_dir = options.data_dir.clone().unwrap_or_else(|| temp_dir(name));
        let adapters = match options.adapters_dir.clone() {
            Some(dir) => dir,
            None => own_adapters_dir(&data_dir, &options.extra_toml),
        };
        std::fs::write(data_dir.join("wechat.key"), WECHAT_KEY).unwrap();
        std::fs::write(data_dir.join("webhook.secret"), WEBHOOK_SECRET).unwrap();

        let receiver = Receiver::default();
        let callback = crate::Responder::start(
            Router::new()
                .route("/hooks", post(receive))
                .with_state(receiver.clone()),
        )
        .await;

        // After a restart the old listener may take a moment to close.
        let mut listener = None;
        for _ in 0..100 {
            match tokio::net::TcpListener::bind(bind).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        let listener = listener.unwrap_or_else(|| panic!("cannot bind {bind}"));
        let addr = listener.local_addr().unwrap();
        let admin = match &options.admin_token {
            Some(t) => {
                std::fs::write(data_dir.join("admin.token"), t).unwrap();
                format!("admin_token = \"file:{}/admin.token\"", data_dir.display())
            }
            None => String::new(),
        };
        let mut extra = String::new();
        for m in &options.extra_merchants {
            extra.push_str(&format!(
                r#"
[[merchants]]
id = "{id}"
api_keys = ["{key_hash}"]
adapter = "wechat-v2"
currency = "CNY"
industry = "physical"
{pin}

[merchants.limits]
{limits}

[merchants.config]
appid = "{APPID}"
mch_id = "{MCH_ID}"
api_key = "file:{dir}/wechat.key"
base_url = "{sim}"
"#,
                id = m.id,
                key_hash = api_key_hash(&m.api_key),
                pin = m
                    .pin
                    .as_ref()
                    .map(|p| format!("pin = \"{p}\""))
                    .unwrap_or_default(),
                limits = options.limits,
                dir = data_dir.display(),
                sim = sim.base_url(),
            ));
        }
        let toml = format!(
            r#"
[server]
bind = "{addr}"
public_base_url = "http://{addr}"
{admin}
{server_toml}

[store]
{store}

[runtime]
adapters_dir = "{adapters}"
cache_dir = "{cache}"
watch = {watch}
keep_versions = {keep}
{runtime_toml}

[egress]
allow_private = true
timeout_ms = {egress_timeout}
{egress_toml}

[webhooks]
initial_backoff_ms = {backoff}
max_backoff_ms = 1000
max_attempts = {attempts}
timeout_ms = {webhook_timeout}

[reconciler]
interval_ms = {interval}
notify_overdue_secs = {overdue}
backoff_ms = {poll_backoff}
max_backoff_ms = {max_poll_backoff}

[[merchants]]
id = "shop-1"
api_keys = ["{key_hash}"]
adapter = "wechat-v2"
currency = "CNY"
industry = "physical"
callback_url = "{callback}"
webhook_secret = "file:{dir}/webhook.secret"
{pin}

[merchants.limits]
{limits}

[merchants.config]
appid = "{APPID}"
mch_id = "{MCH_ID}"
api_key = "file:{dir}/wechat.key"
base_url = "{sim}"
{merchant_config_toml}
{extra}
{extra_toml}
"#,
            webhook_timeout = options.webhook_timeout_ms,
            server_toml = options.server_toml,
            runtime_toml = options.runtime_toml,
            egress_toml = options.egress_toml,
            merchant_config_toml = options.merchant_config_toml,
            extra_toml = options
                .extra_toml
                .replace("$SIM_URL", &sim.base_url())
                .replace("$CALLBACK_URL", &callback.url("/hooks"))
                .replace("$DATA_DIR", &data_dir.display().to_string()),
            watch = options.watch,
            keep = options.keep_versions,
            store = match &options.store_url {
                Some(url) => format!("url = \"{url}\""),
                None => format!(
                    "sqlite_path = \"{}\"",
                    data_dir.join("payhost.db").display()
                ),
            },
            adapters = adapters.display(),
            cache = components_dir()
                .parent()
                .unwrap()
                .join("payhost-cache")
                .display(),
            backoff = options.initial_backoff_ms,
            attempts = options.max_attempts,
            interval = options.reconciler_interval_ms,
            overdue = options.notify_overdue_secs,
            poll_backoff = options.poll_backoff_ms,
            max_poll_backoff = options.poll_backoff_ms * 20,
            egress_timeout = options.egress_timeout_ms,
            key_hash = api_key_hash(MERCHANT_KEY),
            callback = callback.url("/hooks"),
            dir = data_dir.display(),
            limits = options.limits,
            sim = sim.base_url(),
            pin = options
                .pin
                .as_ref()
                .map(|p| format!("pin = \"{p}\""))
                .unwrap_or_default(),
        );
        let config =
            Config::from_toml_str(&toml).unwrap_or_else(|e| panic!("test config: {e}\n{toml}"));
        let running = server::start(&config, listener)
            .await
            .expect("payhost starts");
        Front {
            sim,
            receiver,
            running,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            data_dir,
            options,
        }
    }

    /// Stops this payhost and starts a new one on the same address, data
    /// directory and simulator (a restart).
    pub async fn restart(self) -> Front {
        self.restart_after(|_| {}).await
    }

    /// [`Front::restart`], running `between` while payhost is down.
    pub async fn restart_after(self, between: impl FnOnce(&Options)) -> Front {
        let (addr, sim, options) = self.stop_keeping(false).await;
        between(&options);
        Self::start_with("restart", options, sim, &addr).await
    }

    /// [`Front::restart`] after a graceful stop ([`Running::shutdown`],
    /// what SIGTERM does): requests in flight finish first.
    pub async fn restart_gracefully(self) -> Front {
        let (addr, sim, options) = self.stop_keeping(true).await;
        Self::start_with("restart", options, sim, &addr).await
    }

    /// Stops this payhost, at once or gracefully; returns what a restart
    /// needs: its address, its simulator, its options with its data dir.
    async fn stop_keeping(self, graceful: bool) -> (String, Arc<Simulator>, Options) {
        let Front {
            sim,
            running,
            data_dir,
            mut options,
            ..
        } = self;
        let addr = running.addr.to_string();
        if graceful {
            assert!(
                running.shutdown().await,
                "requests finished within the grace"
            );
        } else {
            running.stop();
            // Let the aborted server task drop its listener.
            tokio::task::yield_now().await;
        }
        options.data_dir = Some(data_dir);
        (addr, sim, options)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An authenticated request as shop-1.
    pub fn as_merchant(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(MERCHANT_KEY)
    }

    /// A request with the admin token of [`Options::admin_token`].
    pub fn as_admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let token = self.options.admin_token.as_deref().expect("no admin token");
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// `POST /v1/payments` with a typical mini-program order body.
    pub async fn create(&self, order_no: &str, amount: i64) -> reqwest::Response {
        self.as_merchant(reqwest::Method::POST, "/v1/payments")
            .json(&order_body(order_no, amount))
            .send()
            .await
            .unwrap()
    }

    /// A JSON request as the merchant whose API key is `key`: the status
    /// and the JSON answer (`null` when there is none).
    pub async fn call_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.client.request(method, self.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// GETs `path` as `key` until its `field` is `want` (about 6 s at
    /// most), answering the document; panics naming the last one.
    pub async fn wait_for_as(
        &self,
        key: &str,
        path: &str,
        field: &str,
        want: &str,
    ) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        for _ in 0..300 {
            let (_, v) = self.call_as(key, reqwest::Method::GET, path, None).await;
            if v[field] == want {
                return v;
            }
            last = v;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("{path}: `{field}` never became {want}: {last}");
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self
            .as_merchant(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// The `/metrics` exposition text.
    pub async fn metrics(&self) -> String {
        let r = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert!(r.status().is_success(), "GET /metrics: {}", r.status());
        r.text().await.unwrap()
    }

    /// `n` copies of one POST at once as the merchant whose API key is
    /// `key`, every other one with the `Idempotency-Key` `idem`: retries
    /// racing each other. Asserts each answer is the created object (201,
    /// exactly once), the same object again (200) or the key's first use
    /// still in flight (409); answers the 2xx bodies.
    pub async fn post_concurrently(
        &self,
        key: &str,
        path: &str,
        body: &serde_json::Value,
        idem: &str,
        n: usize,
    ) -> Vec<serde_json::Value> {
        let mut tasks = Vec::new();
        for i in 0..n {
            let mut req = self.client.post(self.url(path)).bearer_auth(key).json(body);
            if i % 2 == 0 {
                req = req.header("Idempotency-Key", idem);
            }
            tasks.push(tokio::spawn(async move {
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                (
                    status,
                    r.json::<serde_json::Value>().await.unwrap_or_default(),
                )
            }));
        }
        let (mut created, mut answers) = (0, Vec::new());
        for t in tasks {
            let (status, body) = t.await.unwrap();
            match status {
                201 => created += 1,
                200 => {}
                409 => assert_eq!(body["code"], "idempotency_in_progress", "{body}"),
                other => panic!("{other}: {body}"),
            }
            if status < 300 {
                answers.push(body);
            }
        }
        assert_eq!(created, 1, "{answers:?}");
        answers
    }

    /// Waits (bounded) until `check` holds, polling every 20 ms.
    pub async fn eventually<F: Fn() -> bool>(&self, what: &str, check: F) {
        for _ in 0..500 {
            if check() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for: {what}");
    }
}

/// A `[[merchants]]` entry on the WeChat v2 simulator account, for
/// [`Options::extra_toml`]: merchant `id` with API key `api_key`, CNY,
/// its provider at `base_url` (`$SIM_URL` for the front's simulator). It
/// ends inside `[merchants.config]`, so lines added after it are config
/// fields until the next table.
pub fn wechat_v2_merchant(id: &str, api_key: &str, base_url: &str) -> String {
    format!(
        r#"
[[merchants]]
id = "{id}"
api_keys = ["{hash}"]
adapter = "wechat-v2"
currency = "CNY"
industry = "physical"

[merchants.config]
appid = "{APPID}"
mch_id = "{MCH_ID}"
api_key = "file:$DATA_DIR/wechat.key"
base_url = "{base_url}"
"#,
        hash = api_key_hash(api_key),
    )
}

/// The simulator account every merchant of a [`Front`] uses.
pub fn sim_config() -> SimConfig {
    SimConfig::new(APPID, MCH_ID, WECHAT_KEY)
}

pub fn order_body(order_no: &str, amount: i64) -> serde_json::Value {
    serde_json::json!({
        "merchant_order_no": order_no,
        "amount": amount,
        "currency": "CNY",
        "description": "Tea, 250 g",
        "method": "wechat_mini_program",
        "payer": { "app_id": APPID, "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "client_ip": "203.0.113.7" },
        "metadata": { "cart": "c-17" }
    })
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let delay = r.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let fail = r
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    r.deliveries.lock().unwrap().push(Delivery {
        headers,
        body: body.to_vec(),
        accepted: !fail,
    });
    if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

/// The built adapters, copied into a directory of this front's own: its
/// version history (kept on disk beside them) then holds only what this
/// test did, not every build the shared directory ever saw. A restart keeps
/// what the test left there.
/// A copy of the built components for one test. A JavaScript component
/// (tens of MiB compiled, about 2.5 s to load from the disk cache in a
/// debug build) is copied only when `config` names its slot as a
/// merchant's adapter, so the tests of other adapters do not pay for it.
fn own_adapters_dir(data_dir: &std::path::Path, config: &str) -> PathBuf {
    let dir = data_dir.join("adapters");
    std::fs::create_dir_all(&dir).unwrap();
    let javascript = crate::javascript_slots();
    for entry in std::fs::read_dir(components_dir()).unwrap() {
        let path = entry.unwrap().path();
        let target = dir.join(path.file_name().unwrap());
        let slot = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let wanted = !javascript.iter().any(|j| j == slot)
            || config.contains(&format!("adapter = \"{slot}\""));
        if wanted && path.extension().is_some_and(|e| e == "wasm") && !target.exists() {
            std::fs::copy(&path, &target).unwrap();
        }
    }
    dir
}
