//! The fault run: thousands of orders through payhost's HTTP API while the
//! WeChat Pay v2 simulator hangs, answers 5xx or `SYSTEMERROR`, and drops,
//! duplicates, delays and reorders its notifications (seeded, bounded,
//! loopback). Payers pay a random subset, the rest expire unpaid, some paid
//! orders are refunded in part or whole and the simulator settles those
//! refunds. Once payhost has settled everything, the one invariant that
//! matters is checked against the simulator's own record of what happened:
//!
//! - every order's state in payhost is the provider's;
//! - every paid order has exactly one `payment.paid` delivered to the
//!   merchant (and an unpaid one none);
//! - no refund is pending, and each refund's state is the provider's;
//! - no order was charged twice.
//!
//! Only the HTTP API, the webhooks and the simulator's truth are observed.
//! `PAYHOST_FAULT_ORDERS` and `PAYHOST_FAULT_SEED` change the size and the
//! seed (a failing seed replays the same faults).

use payhost_e2e::front::{APPID, Front, Options, sim_config};
use payhost_simulators::faults::FaultConfig;
use payhost_simulators::wechat_v2::{RefundStatus, Simulator, Truth};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the test decided for one order before the run.
#[derive(Debug, Clone)]
struct Plan {
    no: String,
    amount: i64,
    /// The payer pays after this long, if at all.
    pay_after: Option<Duration>,
    /// Refund this much once payhost shows the order paid.
    refund: Option<i64>,
    /// The merchant retries a create that failed retryably; one in ten
    /// gives up, leaving whatever the first attempt left behind.
    retries: bool,
}

/// What the merchant saw while driving one order.
#[derive(Debug, Default)]
struct Driven {
    created: bool,
    paid_by_payer: bool,
    refund_requested: bool,
}

fn plans(n: u64, rng: &mut fastrand::Rng) -> Vec<Plan> {
    (0..n)
        .map(|i| {
            let amount = rng.i64(1..=50_000);
            let pay_after = (rng.f64() < 0.6).then(|| Duration::from_millis(rng.u64(0..1_500)));
            let refund = (pay_after.is_some() && rng.f64() < 0.3).then(|| {
                if rng.bool() {
                    amount
                } else {
                    rng.i64(1..=amount)
                }
            });
            Plan {
                no: format!("FR{i:06}"),
                amount,
                pay_after,
                refund,
                retries: rng.f64() >= 0.1,
            }
        })
        .collect()
}

/// An answer that tells the client to try again (or one that never came).
fn retryable(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(s) => s == 409 || s == 429 || s >= 500,
    }
}

/// POSTs `body` until payhost answers something final (bounded), as a
/// careful merchant does; returns the last status.
async fn post_until_final(f: &Front, path: &str, body: &Value, attempts: u32) -> Option<u16> {
    let mut status = None;
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(150 * u64::from(attempt))).await;
        }
        status = f
            .as_merchant(reqwest::Method::POST, path)
            .timeout(Duration::from_secs(15))
            .json(body)
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16());
        if !retryable(status) {
            break;
        }
    }
    status
}

async fn get_state(f: &Front, no: &str) -> Option<Value> {
    let r = f
        .as_merchant(reqwest::Method::GET, &format!("/v1/payments/{no}"))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

async fn drive(f: Arc<Front>, plan: Plan, expires_at: i64) -> Driven {
    let mut driven = Driven::default();
    let body = json!({
        "merchant_order_no": plan.no,
        "amount": plan.amount,
        "currency": "CNY",
        "description": "Fault run",
        "method": "wechat_mini_program",
        // One payer per order: the per-payer daily cap is not under test.
        "payer": { "app_id": APPID, "openid": format!("o{}", plan.no), "client_ip": "203.0.113.7" },
        "expires_at": payhost::resources::Timestamp(expires_at * 1000).to_string(),
    });
    let attempts = if plan.retries { 6 } else { 1 };
    let created = post_until_final(&f, "/v1/payments", &body, attempts).await;
    driven.created = matches!(created, Some(200 | 201));
    let Some(after) = plan.pay_after.filter(|_| driven.created) else {
        return driven;
    };
    tokio::time::sleep(after).await;
    // The payer has the pay parameters only from a successful create.
    driven.paid_by_payer = f.sim.pay_and_notify(&plan.no).is_ok();
    let Some(amount) = plan.refund.filter(|_| driven.paid_by_payer) else {
        return driven;
    };
    // The merchant refunds only what it knows is paid (bounded wait).
    let start = Instant::now();
    loop {
        let state = get_state(&f, &plan.no).await;
        if state.as_ref().is_some_and(|s| s["state"] == "paid") {
            break;
        }
        if start.elapsed() > Duration::from_secs(3) {
            return driven;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refund = json!({ "refund_no": format!("R{}", plan.no), "amount": amount });
    post_until_final(&f, &format!("/v1/payments/{}/refunds", plan.no), &refund, 6).await;
    driven.refund_requested = true;
    driven
}

/// The provider settles every refund still processing: most succeed, some
/// are closed (the money stays with the merchant).
fn settle_refunds(sim: &Simulator, rng: &mut fastrand::Rng) -> usize {
    let mut settled = 0;
    for (no, r) in sim.truth().refunds {
        if r.status == RefundStatus::Processing {
            let outcome = if rng.f64() < 0.9 {
                RefundStatus::Success
            } else {
                RefundStatus::RefundClose
            };
            sim.settle_refund(&no, outcome).expect("settle a refund");
            settled += 1;
        }
    }
    settled
}

/// The mismatches of one comparison, by kind, with a few examples each.
#[derive(Default)]
struct Mismatches {
    by_kind: BTreeMap<String, Vec<String>>,
}

impl Mismatches {
    fn add(&mut self, kind: impl Into<String>, order: &str) {
        self.by_kind
            .entry(kind.into())
            .or_default()
            .push(order.to_string());
    }

    fn total(&self) -> usize {
        self.by_kind.values().map(Vec::len).sum()
    }

    fn report(&self) -> String {
        let mut out = String::new();
        for (kind, orders) in &self.by_kind {
            let shown: Vec<_> = orders.iter().take(3).map(String::as_str).collect();
            out.push_str(&format!(
                "  {kind}: {} (e.g. {})\n",
                orders.len(),
                shown.join(", ")
            ));
        }
        out
    }
}

/// The payhost state the provider's record calls for.
fn expected_state(truth: &Truth, no: &str) -> &'static str {
    let Some(o) = truth.orders.get(no) else {
        return "not at the provider";
    };
    match o.state.as_str() {
        "NOTPAY" => "unpaid at the provider",
        "CLOSED" => "closed",
        _ if o.refunded == 0 => "paid",
        _ if o.refunded == o.total_fee => "refunded",
        _ => "partially_refunded",
    }
}

/// `payment.paid` events delivered (accepted) per order, by distinct event id.
fn paid_events(f: &Front) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_order: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in f.receiver.accepted() {
        let Ok(v) = serde_json::from_slice::<Value>(&d.body) else {
            continue;
        };
        if v["type"] == "payment.paid" {
            let no = v["data"]["payment"]["merchant_order_no"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            by_order
                .entry(no)
                .or_default()
                .insert(v["id"].as_str().unwrap_or_default().to_string());
        }
    }
    by_order
}

async fn compare(f: &Arc<Front>, plans: &[Plan]) -> Mismatches {
    let truth = f.sim.truth();
    let events = paid_events(f);
    let mut m = Mismatches::default();
    // Read payhost's view with a few requests in flight.
    let mut views = Vec::with_capacity(plans.len());
    for chunk in plans.chunks(16) {
        let reads = chunk.iter().map(|p| {
            let f = f.clone();
            let no = p.no.clone();
            let refunds = p.refund.is_some();
            async move {
                let order = get_state(&f, &no).await;
                let refunds = if refunds {
                    let r = f
                        .as_merchant(reqwest::Method::GET, &format!("/v1/payments/{no}/refunds"))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => r.json::<Vec<Value>>().await.ok(),
                        _ => None,
                    }
                    .unwrap_or_default()
                } else {
                    Vec::new()
                };
                (order, refunds)
            }
        });
        views.extend(futures_join(reads).await);
    }
    for (plan, (order, refunds)) in plans.iter().zip(views) {
        let no = plan.no.as_str();
        let want = expected_state(&truth, no);
        let have = order
            .as_ref()
            .and_then(|o| o["state"].as_str())
            .unwrap_or("absent")
            .to_string();
        let fine = match want {
            "not at the provider" => matches!(have.as_str(), "absent" | "failed" | "closed"),
            "closed" => matches!(have.as_str(), "closed" | "failed"),
            "unpaid at the provider" => false,
            w => have == w,
        };
        if !fine {
            m.add(format!("state: payhost {have}, provider {want}"), no);
        }
        if let (Some(o), Some(t)) = (&order, truth.orders.get(no))
            && o["refunded_amount"].as_u64() != Some(t.refunded)
        {
            m.add("refunded amount differs from the provider's", no);
        }
        let charged = truth.orders.get(no).map_or(0, |t| t.paid_count);
        if charged > 1 {
            m.add("charged more than once", no);
        }
        let delivered = events.get(no).map_or(0, BTreeSet::len);
        match (charged > 0, delivered) {
            (true, 1) | (false, 0) => {}
            (true, 0) => m.add("paid, but no payment.paid delivered", no),
            (true, _) => m.add("paid, payment.paid delivered more than once", no),
            (false, _) => m.add("unpaid, yet payment.paid delivered", no),
        }
        for r in &refunds {
            let state = r["state"].as_str().unwrap_or_default();
            let refund_no = r["refund_no"].as_str().unwrap_or_default();
            let want = match truth.refunds.get(refund_no).map(|t| t.status) {
                Some(RefundStatus::Success) => "succeeded",
                Some(RefundStatus::RefundClose) => "failed",
                Some(RefundStatus::Processing) => "pending",
                // Money that left the merchant but did not reach the payer
                // waits for an operator: payhost keeps it pending.
                Some(RefundStatus::Change) => "pending",
                None => "failed",
            };
            if state == "pending" {
                m.add("refund pending", no);
            } else if state != want {
                m.add(format!("refund: payhost {state}, provider {want}"), no);
            }
        }
    }
    m
}

/// Runs the futures with all of them in flight and returns their outputs in order.
async fn futures_join<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("a read task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_run_every_order_settles_as_the_provider_says() {
    let started = Instant::now();
    let n = env_or("PAYHOST_FAULT_ORDERS", 1_000);
    let seed = env_or("PAYHOST_FAULT_SEED", 20_261_201);
    let mut rng = fastrand::Rng::with_seed(seed);

    let mut config = sim_config();
    config.enforce_time_expire = true;
    config.faults = FaultConfig {
        seed,
        api_timeout: 0.03,
        api_5xx: 0.03,
        api_system_error: 0.03,
        // Past payhost's egress time-out below.
        hang: Duration::from_millis(1_500),
        notify_drop: 0.1,
        notify_duplicate: 0.1,
        notify_delay: 0.2,
        notify_reorder: 0.3,
        max_notify_delay: Duration::from_secs(2),
        max_faults: n * 2,
    };
    let sim = Simulator::start(config).await;
    let options = Options {
        limits: "per_payment_minor = 100000\nper_payer_day_minor = 100000\n\
                 create_per_min = 1000000\nquery_per_min = 1000000\nrefund_per_min = 1000000"
            .into(),
        notify_overdue_secs: 1,
        reconciler_interval_ms: 100,
        poll_backoff_ms: 200,
        egress_timeout_ms: 1_000,
        ..Options::default()
    };
    let f = Arc::new(Front::start_with_simulator("fault-run", options, sim).await);

    // Drive every order, a bounded number at a time.
    let plans = plans(n, &mut rng);
    let slots = Arc::new(tokio::sync::Semaphore::new(24));
    let mut tasks = Vec::with_capacity(plans.len());
    for plan in plans.clone() {
        let permit = slots.clone().acquire_owned().await.unwrap();
        let f = f.clone();
        // Long enough to create (with retries) and pay; short enough that
        // the unpaid ones expire during the run.
        let expires_at = now_secs() + 8;
        tasks.push(tokio::spawn(async move {
            let d = drive(f, plan, expires_at).await;
            drop(permit);
            d
        }));
    }
    let mut driven = Vec::with_capacity(tasks.len());
    for t in tasks {
        driven.push(t.await.expect("an order task"));
    }
    let drive_time = started.elapsed();

    // Let payhost settle, the provider settling refunds as they arrive;
    // bounded, checked every few seconds, done at the first clean check.
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut settled = 0;
    let mismatches = loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        settled += settle_refunds(&f.sim, &mut rng);
        if !f.sim.outbox_idle() && Instant::now() < deadline {
            continue;
        }
        let m = compare(&f, &plans).await;
        if m.total() == 0 || Instant::now() >= deadline {
            break m;
        }
    };

    let truth = f.sim.truth();
    let count = |p: &dyn Fn(&Driven) -> bool| driven.iter().filter(|d| p(d)).count();
    let paid_at_provider = truth.orders.values().filter(|o| o.paid_count > 0).count();
    let faults = f.sim.fault_counts();
    let outbox = f.sim.outbox_stats();
    println!(
        "fault run (seed {seed}): {n} orders, {} created, {} paid by payers ({paid_at_provider} paid at the provider), \
         {} refunds requested ({} at the provider, {settled} settled by it); driven in {:.1}s, total {:.1}s\n\
         faults injected: {} in all — {faults}\n\
         notifications: {} queued, {} POSTs, {} acknowledged, {} given up\n\
         mismatches: {}\n{}",
        count(&|d| d.created),
        count(&|d| d.paid_by_payer),
        count(&|d| d.refund_requested),
        truth.refunds.len(),
        drive_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        faults.total(),
        outbox.queued,
        outbox.posts,
        outbox.acknowledged,
        outbox.gave_up,
        mismatches.total(),
        mismatches.report(),
    );
    assert!(faults.total() > 0, "the run injected no faults");
    assert_eq!(
        mismatches.total(),
        0,
        "payhost disagrees with the provider:\n{}",
        mismatches.report()
    );
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}
