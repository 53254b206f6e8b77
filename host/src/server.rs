//! `payhost serve`: the payment front as one process -- the API, the
//! webhook delivery worker, the reconciler and retention -- built from a
//! [`Config`].

use crate::api::{self, AppState, Merchant};
use crate::config::Config;
use crate::limits::RateLimiter;
use crate::metrics::Metrics;
use crate::registry::{Registry, SlotUser};
use crate::runtime::Runtime;
use crate::store::SqliteStore;
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Opens the store, loads the adapters and resolves every merchant against
/// its adapter's schema. Anything wrong is an error naming what to fix.
pub async fn build_state(config: &Config) -> Result<AppState> {
    let runtime = Arc::new(Runtime::new(config.runtime_config())?);
    let metrics = Arc::new(Metrics::new());
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
    let store = SqliteStore::open(&config.store.sqlite_path)
        .with_context(|| format!("opening the store {}", config.store.sqlite_path.display()))?;

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
                limits: m.limits,
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
    Ok(AppState {
        runtime,
        registry,
        store: Arc::new(store),
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
    })
}

/// A running server; stops its tasks when dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Running {
    /// Stops accepting requests and the workers.
    pub fn stop(self) {
        drop(self)
    }
}

/// Starts the API on `listener` and the background workers.
pub async fn start(config: &Config, listener: tokio::net::TcpListener) -> Result<Running> {
    let state = build_state(config).await?;
    let addr = listener.local_addr()?;
    let app = api::router(state.clone());
    let mut tasks = vec![tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    })];
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
    Ok(Running { addr, state, tasks })
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
    tokio::signal::ctrl_c().await?;
    Ok(())
}
