//! Prometheus metrics: requests and their latency, adapter calls and their
//! latency, errors by code, notifications by verdict, orders by state.
//!
//! Names follow Prometheus conventions: the `payhost_` prefix, `_total` on
//! every counter (added by the encoder), durations as `_seconds`
//! histograms in base units. A scrape stays cheap: everything is kept in
//! memory as it happens, except orders by state, which the store keeps
//! counted as orders change (a few rows read per scrape, right across
//! restarts and replicas). README "Metrics" lists them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    adapter: String,
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    adapter: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    adapter: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MoneyLabels {
    merchant: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuditLabels {
    action: String,
    outcome: String,
}

/// The host's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    request_latency: Family<RouteLabels, Histogram>,
    adapter_calls: Family<CallLabels, Counter>,
    adapter_latency: Family<OpLabels, Histogram>,
    errors: Family<CodeLabels, Counter>,
    notifications: Family<VerdictLabels, Counter>,
    orders: Family<StateLabels, Gauge>,
    adapter_events: Family<AuditLabels, Counter>,
    money_events: Family<MoneyLabels, Counter>,
    bounds: BoundMetrics,
}

/// Metrics of the notify endpoint's bounds, the delivery worker and
/// retention.
#[derive(Default)]
struct BoundMetrics {
    notify_refused: Family<ReasonLabels, Counter>,
    delivery_passes: Counter,
    undeliverable: Family<ReasonLabels, Counter>,
    pruned: Family<KindLabels, Counter>,
}

impl BoundMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "notify_refused",
            "Notifications refused before the adapter saw them, by reason",
            self.notify_refused.clone(),
        );
        registry.register(
            "webhook_delivery_passes",
            "Reads of the outbox by the webhook delivery worker",
            self.delivery_passes.clone(),
        );
        registry.register(
            "webhook_undeliverable",
            "Webhook events marked undeliverable, by reason",
            self.undeliverable.clone(),
        );
        registry.register(
            "pruned_rows",
            "Rows deleted by retention, by kind",
            self.pruned.clone(),
        );
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Adds provider health's families (failures, failovers, on-backup).
    pub fn register_provider_health(&self, health: &crate::provider_health::ProviderHealth) {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        health.register(&mut registry);
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("payhost");
        let requests = Family::<RequestLabels, Counter>::default();
        let adapter_calls = Family::<CallLabels, Counter>::default();
        let adapter_latency = Family::<OpLabels, Histogram>::new_with_constructor(|| {
            // 100 µs .. ~13 s: adapter steps are µs, providers are 100s of ms.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0001, 2.5, 14,
            ))
        });
        let request_latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 0.5 ms .. ~16 s: most answers are ms, creates wait on providers.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0005, 2.0, 16,
            ))
        });
        let errors = Family::<CodeLabels, Counter>::default();
        let notifications = Family::<VerdictLabels, Counter>::default();
        let orders = Family::<StateLabels, Gauge>::default();
        let adapter_events = Family::<AuditLabels, Counter>::default();
        let money_events = Family::<MoneyLabels, Counter>::default();
        registry.register(
            "money_events",
            "Events a human should look at: paid_after_close, payment_mismatch, refund_mismatch, payout_mismatch, payout_succeeded_after_failure",
            money_events.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route, from routing to the answer's head",
            request_latency.clone(),
        );
        registry.register(
            "adapter_calls",
            "Adapter operations by outcome",
            adapter_calls.clone(),
        );
        registry.register(
            "adapter_call_seconds",
            "Adapter operation latency, provider time included",
            adapter_latency.clone(),
        );
        registry.register("errors", "API errors by problem code", errors.clone());
        registry.register(
            "notifications",
            "Provider notifications by verdict",
            notifications.clone(),
        );
        registry.register("orders", "Orders by state", orders.clone());
        registry.register(
            "adapter_registry_events",
            "Adapter loads, refusals, swaps and rollbacks",
            adapter_events.clone(),
        );
        let bounds = BoundMetrics::default();
        bounds.register(&mut registry);
        Metrics {
            registry: Mutex::new(registry),
            requests,
            request_latency,
            adapter_calls,
            adapter_latency,
            errors,
            notifications,
            orders,
            adapter_events,
            money_events,
            bounds,
        }
    }

    /// Counts a money event (`paid_after_close`, `payment_mismatch`,
    /// `refund_mismatch`) of a merchant.
    pub fn money_event(&self, merchant: &str, kind: &str) {
        self.money_events
            .get_or_create(&MoneyLabels {
                merchant: merchant.into(),
                kind: kind.into(),
            })
            .inc();
    }

    /// A notification refused before parsing (`too_large`, `rate_limited`,
    /// `unverified_budget`, `busy`, `body_timeout`, `unknown_merchant`).
    pub fn notify_refused(&self, reason: &str) {
        self.bounds
            .notify_refused
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn delivery_pass(&self) {
        self.bounds.delivery_passes.inc();
    }

    pub fn undeliverable(&self, reason: &str, events: u64) {
        self.bounds
            .undeliverable
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc_by(events);
    }

    pub fn pruned(&self, kind: &str, rows: u64) {
        self.bounds
            .pruned
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc_by(rows);
    }

    pub fn request(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.into(),
                status,
            })
            .inc();
    }

    /// One request's latency, under its route template.
    pub fn request_duration(&self, route: &str, seconds: f64) {
        self.request_latency
            .get_or_create(&RouteLabels {
                route: route.into(),
            })
            .observe(seconds);
    }

    pub fn error(&self, code: &str) {
        self.errors
            .get_or_create(&CodeLabels { code: code.into() })
            .inc();
    }

    pub fn notification(&self, adapter: &str, verdict: &str) {
        self.notifications
            .get_or_create(&VerdictLabels {
                adapter: adapter.into(),
                verdict: verdict.into(),
            })
            .inc();
    }

    pub fn registry_event(&self, action: &str, outcome: &str) {
        self.adapter_events
            .get_or_create(&AuditLabels {
                action: action.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Times an adapter operation and counts its outcome.
    pub async fn time_call<T, E: std::fmt::Display>(
        &self,
        adapter: &str,
        operation: &str,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let start = Instant::now();
        let result = fut.await;
        let labels = OpLabels {
            adapter: adapter.into(),
            operation: operation.into(),
        };
        self.adapter_latency
            .get_or_create(&labels)
            .observe(start.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.adapter_calls
            .get_or_create(&CallLabels {
                adapter: adapter.into(),
                operation: operation.into(),
                outcome: outcome.into(),
            })
            .inc();
        result
    }

    /// The exposition text, with `orders` set from `by_state` first.
    pub fn render(&self, by_state: &[(String, i64)]) -> String {
        for (state, n) in by_state {
            self.orders
                .get_or_create(&StateLabels {
                    state: state.clone(),
                })
                .set(*n);
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}
