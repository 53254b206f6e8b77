//! `payhost serve`: the payment front as one process -- the API, the
//! webhook delivery worker, the reconciler and retention -- built from a
//! [`Config`].
//!
//! The server accepts connections itself rather than through
//! `axum::serve`, to bound what a client that never finishes can hold
//! (`[server.limits]`, [`HttpLimits`]): a connection whose request headers
//! have not all arrived within `header_read_timeout_ms` is closed (idle
//! keep-alive connections included); a body not received within
//! `body_timeout_ms` is answered 408; and no more than `max_connections`
//! are served at once. Connections beyond the cap are not refused: they
//! wait in the listen backlog until one ends, which the header time-out
//! guarantees happens soon. Refusing them instead would hand the server to
//! whoever opened the most connections, because honest clients would be
//! refused as often as the slow ones.

use crate::api::{self, AppState, Merchant};
use crate::config::Config;
use crate::config::StoreSettings;
use crate::limits::RateLimiter;
use crate::metrics::Metrics;
use crate::registry::{Registry, SlotUser};
use crate::runtime::Runtime;
use crate::store::{PgStore, SqliteStore, Store};
use anyhow::{Context, Result, bail};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// `[server.limits]`: what one client may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// A connection whose request headers are not complete this long
    /// after it opened (or after its previous answer) is closed.
    pub header_read_timeout_ms: u64,
    /// A request body not received this long after its headers is
    /// answered 408 `body_timeout`.
    pub body_timeout_ms: u64,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Largest body of an API request (JSON); larger is 413
    /// `payload_too_large`. Notifications have `notify.max_body_bytes`,
    /// adapter uploads their own limit.
    pub max_body_bytes: usize,
    /// How long requests in flight when the server is told to stop
    /// (SIGTERM, Ctrl-C) may take to finish; then they are cut off.
    pub shutdown_grace_ms: u64,
    /// How long, when told to stop, the server goes on serving with
    /// `/readyz` answering 503 before it closes its listener: time for a
    /// load balancer's health check to send new requests elsewhere.
    /// 0 (the default) closes at once.
    pub shutdown_delay_ms: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            // Well under the usual 1024 open files, which the store, the
            // adapters directory and outgoing requests share.
            max_connections: 512,
            max_body_bytes: 64 * 1024,
            // Above the longest create (a provider call within its
            // operation deadline is the slow part) that a restart should
            // let finish.
            shutdown_grace_ms: 30_000,
            shutdown_delay_ms: 0,
        }
    }
}

impl HttpLimits {
    /// The first setting that cannot be used, as (field, problem).
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        let positive = [
            (
                "server.limits.header_read_timeout_ms",
                self.header_read_timeout_ms,
            ),
            ("server.limits.body_timeout_ms", self.body_timeout_ms),
            ("server.limits.max_connections", self.max_connections as u64),
            ("server.limits.max_body_bytes", self.max_body_bytes as u64),
            ("server.limits.shutdown_grace_ms", self.shutdown_grace_ms),
        ];
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((field, _)) => Err((field, "must be greater than 0")),
            None => Ok(()),
        }
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }
}

/// The store `[store]` names. Errors name the file, or the database as the
/// summary does: never the URL, which may hold the password.
async fn open_store(settings: &StoreSettings) -> Result<Arc<dyn Store>> {
    Ok(match settings {
        StoreSettings::Sqlite { path } => Arc::new(
            SqliteStore::open(path)
                .with_context(|| format!("opening the store {}", path.display()))?,
        ),
        StoreSettings::Postgres { url } => Arc::new(
            PgStore::open(url.expose_secret())
                .await
                .with_context(|| format!("opening the store ({settings})"))?,
        ),
    })
}

/// With a shared store, what the adapter sync starts from
/// ([`crate::adapter_sync::run`]).
struct AdapterSync {
    seen: HashMap<String, i64>,
    changes: tokio::sync::mpsc::UnboundedReceiver<String>,
}

/// Opens the store, loads the adapters and resolves every merchant against
/// its adapter's schema. Anything wrong is an error naming what to fix.
async fn build_state(config: &Config) -> Result<(AppState, Option<AdapterSync>)> {
    let runtime = Arc::new(Runtime::new(config.runtime_config())?);
    let metrics = Arc::new(Metrics::new());
    metrics.register_provider_health(runtime.egress().health());
    let dir = config.runtime.adapters_dir.clone();
    let registry = Arc::new(
        Registry::new(
            runtime.clone(),
            metrics.clone(),
            config.runtime.keep_versions,
        )
        .persist_to(dir.clone()),
    );
    // The merchants are declared first, so the versions loaded at start
    // pass the same checks as an upload (secrets stay secret, pins kept).
    let mut users = Vec::new();
    for m in &config.merchants {
        users.push(SlotUser {
            merchant: m.id.clone(),
            slot: m.adapter.clone(),
            pin: m.pin.clone(),
            config: m.merchant_config()?,
        });
    }
    registry.set_users(users);
    tokio::task::spawn_blocking({
        let registry = registry.clone();
        move || registry.load_dir(&dir)
    })
    .await??;
    let store = open_store(&config.store).await?;
    // Replicas on one store serve the same adapters: joined before the
    // merchants are checked against them.
    let sync = if store.shared() {
        let seen = crate::adapter_sync::join(&registry, &store)
            .await
            .context("joining the adapters the replicas share")?;
        let (publisher, changes) = tokio::sync::mpsc::unbounded_channel();
        registry.publish_changes_to(publisher);
        Some(AdapterSync { seen, changes })
    } else {
        None
    };

    let mut merchants = HashMap::new();
    let mut api_keys = HashMap::new();
    for m in &config.merchants {
        let Some(active) = registry.get(&m.adapter) else {
            bail!(
                "merchant `{}` uses adapter `{}`, but no such adapter was loaded from {}{}",
                m.id,
                m.adapter,
                config.runtime.adapters_dir.display(),
                registry
                    .last_refusal(&m.adapter)
                    .map(|r| format!(" (its file was refused: {r})"))
                    .unwrap_or_default()
            );
        };
        // A pinned merchant is checked against its own version, when loaded.
        let adapter = registry
            .get_for(&m.adapter, m.pin.as_deref())
            .unwrap_or(active);
        let adapter_config = m.adapter_config(&adapter.info)?;
        // Said at start, not at the first refund (as `config check` does).
        for w in crate::config::missing_refund_fields(&adapter.info, &adapter_config) {
            tracing::warn!("{w}");
        }
        if let Some(w) = m
            .failover
            .as_ref()
            .and_then(|rule| crate::config::unused_failover(&adapter.info, &adapter_config, rule))
        {
            tracing::warn!("{w}");
        }
        for key in &m.api_keys {
            api_keys.insert(key.to_string(), m.id.clone());
        }
        merchants.insert(
            m.id.clone(),
            Arc::new(Merchant {
                id: m.id.clone(),
                adapter: m.adapter.clone(),
                adapter_config,
                currency: m.currency.clone(),
                currencies: m.currencies.clone(),
                cny_rate: m.cny_rate.clone(),
                limits: m.limits,
                payouts: m.payouts.clone(),
                contracts: m.contracts.clone(),
                timezone: m.timezone.clone(),
                callback_url: m.callback_url.clone(),
                webhook_secret: m.webhook_secret.clone(),
            }),
        );
    }
    let rate_limiter = RateLimiter::new(
        config
            .merchants
            .iter()
            .map(|m| (m.id.as_str(), &m.limits.rates)),
    );
    let state = AppState {
        runtime,
        registry,
        store,
        merchants: Arc::new(merchants),
        api_keys: Arc::new(api_keys),
        public_base_url: config.server.public_base_url.clone(),
        rate_limiter: Arc::new(rate_limiter),
        metrics,
        admin_token: config.server.admin_token.clone().map(Arc::new),
        poll_without_notifications_ms: config.reconciler.interval().as_millis() as i64,
        notify_overdue_ms: config.reconciler.notify_overdue().as_millis() as i64,
        poll_backoff_ms: (
            config.reconciler.backoff_ms.max(1) as i64,
            config.reconciler.max_backoff_ms.max(1) as i64,
        ),
        notify_guard: Arc::new(crate::notify_guard::NotifyGuard::new(
            config.notify.clone(),
            config.merchants.iter().map(|m| m.id.as_str()),
        )),
        http_limits: config.server.limits,
        draining: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    Ok((state, sync))
}

/// A running server; stops its tasks when dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    /// The accept loop; it ends once stopped and its connections are done.
    server: Option<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
    grace: Duration,
    delay: Duration,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Running {
    /// Stops accepting requests and the workers at once, cutting off any
    /// request in flight.
    pub fn stop(self) {
        drop(self)
    }

    /// Stops gracefully: `/readyz` answers 503 from now on, and after
    /// `[server.limits] shutdown_delay_ms` the listener is closed (new
    /// connections are refused), idle connections close, and requests in
    /// flight finish, each answered with `connection: close`, within
    /// `shutdown_grace_ms`. Then the workers stop. Returns whether every
    /// request finished in time.
    ///
    /// Nothing a worker was doing is lost by stopping it: every state
    /// change is committed before it is acknowledged, a webhook is
    /// marked delivered only after the merchant's answer, and orders are
    /// polled again from the store by whichever replica runs next.
    pub async fn shutdown(mut self) -> bool {
        self.state
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let _ = self.stop.send(true);
        let finished = match self.server.as_mut() {
            Some(server) => tokio::time::timeout(self.grace, server).await.is_ok(),
            None => true,
        };
        if !finished {
            tracing::warn!(
                grace_ms = self.grace.as_millis() as u64,
                "requests still in flight when the shutdown grace ran out were cut off"
            );
        }
        finished
    }
}

/// Starts the API on `listener` and the background workers. While the
/// store opens (and migrates) and the adapters load, `listener` is already
/// answered: `/healthz` 200 "starting", anything else (`/readyz` included)
/// 503 `starting`, so a load balancer sees a replica that is not ready
/// rather than one that does not answer.
pub async fn start(config: &Config, listener: tokio::net::TcpListener) -> Result<Running> {
    let (started, starting) = tokio::sync::oneshot::channel();
    let answering = tokio::spawn(answer_while_starting(listener, starting));
    let built = build_state(config).await;
    let _ = started.send(());
    let listener = answering
        .await
        .map_err(|e| anyhow::anyhow!("the start-up responder failed: {e}"))?;
    let (state, sync) = built?;
    let addr = listener.local_addr()?;
    let app = api::router(state.clone()).layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::request_log::log_request,
    ));
    let closed = ClosedNotify {
        guard: state.notify_guard.clone(),
        metrics: state.metrics.clone(),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = Some(tokio::spawn(accept_loop(
        listener,
        app,
        config.server.limits,
        closed,
        stopped,
    )));
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(crate::delivery::run(
        state.clone(),
        config.webhooks.delivery(),
    )));
    tasks.push(tokio::spawn(crate::retention::run(
        state.clone(),
        config.retention.clone(),
    )));
    tasks.push(tokio::spawn(crate::reconciler::run(
        state.clone(),
        config.reconciler.interval(),
    )));
    if let Some(tick) = state.runtime.egress().health().tick() {
        let runtime = state.runtime.clone();
        tasks.push(tokio::spawn(async move {
            // Probes are due at their own intervals; looking once per the
            // shortest one (a second at most) finds each in time.
            let mut every = tokio::time::interval(tick.min(Duration::from_secs(1)));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                runtime.egress().probe_failed_primaries().await;
            }
        }));
    }
    if let Some(sync) = sync {
        tasks.push(tokio::spawn(crate::adapter_sync::run(
            state.registry.clone(),
            state.store.clone(),
            sync.seen,
            sync.changes,
            Duration::from_millis(config.runtime.shared_check_ms.max(10)),
        )));
    }
    if config.runtime.watch {
        // Dropping the handle stops the watcher with the server.
        let watcher = crate::watch::start(
            state.registry.clone(),
            config.runtime.adapters_dir.clone(),
            crate::watch::DEBOUNCE,
        )?;
        tasks.push(watcher);
    }
    tracing::info!(%addr, adapters = ?state.registry.names(), merchants = state.merchants.len(), "payhost serving");
    Ok(Running {
        addr,
        state,
        server,
        stop,
        grace: Duration::from_millis(config.server.limits.shutdown_grace_ms),
        delay: Duration::from_millis(config.server.limits.shutdown_delay_ms),
        tasks,
    })
}

/// Serves HTTP/1.1 on `listener` within `limits` until aborted, or until
/// `stop` turns true: then it closes the listener, lets each connection
/// finish the request it is serving (idle ones close at once) and returns
/// when all have ended. Aborting it ends every connection it serves.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    closed: ClosedNotify,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout());
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if *stop.borrow_and_update() {
            break;
        }
        // Waiting here leaves further connections in the listen backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
            _ = stop.changed() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, usually: give connections time
                // to end instead of spinning on the error.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let http = http.clone();
        let closed = closed.clone();
        let header_timeout = limits.header_read_timeout();
        let mut stop = stop.clone();
        connections.spawn(async move {
            let mut stream = stream;
            if closed.refuse(&mut stream, header_timeout).await {
                return drop(slot);
            }
            let service = hyper_util::service::TowerToHyperService::new(app);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = stopping(&mut stop) => {
                    // The request being served finishes; no next one.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            // A client that went away or timed out is no server error.
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(slot);
        });
    }
    // New connections are refused from here; those open finish.
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Answers every connection on `listener` as a server that is starting
/// ([`start`]) until `started` fires; then hands the listener back.
/// Connections queued meanwhile stay queued for the real server.
async fn answer_while_starting(
    listener: tokio::net::TcpListener,
    mut started: tokio::sync::oneshot::Receiver<()>,
) -> tokio::net::TcpListener {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "starting" }))
        .fallback(|| async {
            let e = crate::api::problem::ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "starting",
                "Starting",
                "payhost is starting: opening the store and loading adapters",
            );
            let mut answer = axum::response::IntoResponse::into_response(e);
            // Clients reconnect, to the real server once it serves.
            answer.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            answer.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            answer
        });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(2))
        .keep_alive(false);
    loop {
        let stream = tokio::select! {
            biased;
            _ = &mut started => return listener,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let http = http.clone();
        tokio::spawn(async move {
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Returns once `stop` is true (never, if its sender is gone first).
async fn stopping(stop: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Answers, at the connection, notifications for a merchant that its
/// forgery budget has closed (`[notify] unverified_per_min`): the same 429
/// that the notify endpoint gives, without HTTP parsing or routing, so a
/// flood that keeps coming costs little more than its connections.
#[derive(Clone)]
struct ClosedNotify {
    guard: Arc<crate::notify_guard::NotifyGuard>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl ClosedNotify {
    /// Whether the connection was answered and closed here. Looks at its
    /// first bytes only while some merchant is closed.
    async fn refuse(&self, stream: &mut tokio::net::TcpStream, wait: Duration) -> bool {
        use tokio::io::AsyncWriteExt;
        if !self.guard.any_closed() {
            return false;
        }
        let mut head = [0u8; 512];
        let Ok(Ok(n)) = tokio::time::timeout(wait, stream.peek(&mut head)).await else {
            return false;
        };
        let Some(left) = self.guard.closed_for_request(&head[..n]) else {
            return false;
        };
        self.metrics.notify_refused("unverified_budget");
        let refusal = crate::notify_guard::Refused::Unverified {
            per_min: self.guard.settings.unverified_per_min,
            retry_after: left,
        };
        let e = crate::api::notify::closed_by_forgeries(&refusal, left);
        let body = e.body();
        let head = format!(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/problem+json\r\n\
             retry-after: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            e.retry_after.unwrap_or(1),
            body.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&body).await;
        let _ = stream.shutdown().await;
        // Closing with the request unread would reset the connection and
        // could lose the answer; a bounded read lets the client see it.
        let mut rest = self.guard.settings.max_body_bytes + head.len() + 8192;
        let mut sink = [0u8; 8192];
        let drain = async {
            use tokio::io::AsyncReadExt;
            while rest > 0 {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => rest = rest.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(200), drain).await;
        true
    }
}

/// `payhost serve`: runs until interrupted.
pub async fn serve(config: Config) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(config.server.bind)
        .await
        .with_context(|| format!("binding {}", config.server.bind))?;
    let running = start(&config, listener).await?;
    println!(
        "payhost listening on http://{} ({} merchants, adapters {:?})",
        running.addr,
        running.state.merchants.len(),
        running.state.registry.names()
    );
    let signal = stop_signal().await?;
    tracing::info!(
        signal,
        "stopping: no new connections, finishing requests in flight"
    );
    let finished = running.shutdown().await;
    tracing::info!(finished, "stopped");
    Ok(())
}

/// Waits for SIGTERM (what process managers and orchestrators send) or
/// SIGINT (Ctrl-C); returns which.
async fn stop_signal() -> Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        })
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("Ctrl-C")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn while_the_store_migrates_the_listener_answers_starting() {
        let Some(cluster) = payhost_pgtest::PgCluster::start_or_skip() else {
            return;
        };
        let url = cluster.create_database("starting").unwrap();
        // Another replica is migrating: this one waits for the lock.
        let (holder, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let lock = crate::store::postgres::MIGRATION_LOCK;
        holder
            .execute("SELECT pg_advisory_lock($1)", &[&lock])
            .await
            .unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/tmp/starting")
            .join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let config = Config::from_toml_str(&format!(
            "[store]\nurl = \"{url}\"\n[runtime]\nadapters_dir = \"{}\"\nwatch = false\n",
            dir.display()
        ))
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let starting = tokio::spawn(async move { start(&config, listener).await });

        // Bounded: a listener that is bound but not answered would hang.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 503);
        assert_eq!(ready.headers()["connection"], "close");
        let problem: serde_json::Value =
            serde_json::from_slice(&ready.bytes().await.unwrap()).unwrap();
        assert_eq!(problem["code"], "starting", "{problem}");
        let alive = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(alive.text().await.unwrap(), "starting");
        let create = client
            .post(format!("{base}/v1/payments"))
            .send()
            .await
            .unwrap();
        assert_eq!(create.status(), 503);
        assert!(
            !starting.is_finished(),
            "start waits for the migration lock"
        );

        holder
            .execute("SELECT pg_advisory_unlock($1)", &[&lock])
            .await
            .unwrap();
        let running = starting.await.unwrap().expect("payhost starts");
        let alive = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(alive.text().await.unwrap(), "ok");
        running.stop();
    }

    #[test]
    fn server_limits_default_and_configured() {
        let c = Config::from_toml_str("").unwrap();
        assert_eq!(c.server.limits, HttpLimits::default());
        let c = Config::from_toml_str(
            "[server.limits]\nmax_connections = 8\nheader_read_timeout_ms = 500",
        )
        .unwrap();
        assert_eq!(c.server.limits.max_connections, 8);
        assert_eq!(
            c.server.limits.header_read_timeout(),
            Duration::from_millis(500)
        );
        assert_eq!(c.server.limits.max_body_bytes, 64 * 1024);
    }

    #[test]
    fn a_zero_limit_is_refused_naming_the_setting() {
        for field in [
            "header_read_timeout_ms",
            "body_timeout_ms",
            "max_connections",
            "max_body_bytes",
        ] {
            let e = Config::from_toml_str(&format!("[server.limits]\n{field} = 0")).unwrap_err();
            assert!(
                e.to_string().contains(&format!("server.limits.{field}")),
                "{field}: {e}"
            );
        }
        let e = Config::from_toml_str("[server.limits]\nmax_conections = 8").unwrap_err();
        assert!(e.to_string().contains("max_conections"), "{e}");
    }
}
