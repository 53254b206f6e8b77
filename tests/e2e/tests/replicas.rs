//! Three payhost replicas on one PostgreSQL database behind a round-robin
//! balancer, in front of one provider: the same request sent to several
//! replicas at once creates one order and reaches the provider once, and
//! each webhook event reaches the merchant once, whichever replica's
//! worker takes it. Skips only where PostgreSQL cannot be installed
//! outside CI.

use payhost_e2e::balancer::Balancer;
use payhost_e2e::front::{Front, MERCHANT_KEY, Options, order_body, sim_config};
use payhost_pgtest::PgCluster;
use payhost_simulators::wechat_v2::Simulator;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const REPLICAS: usize = 3;
const ORDERS: usize = 8;
/// Copies of each request sent at once, each through the balancer.
const COPIES: usize = 3;

async fn replicas(cluster: &PgCluster, test: &str) -> (Arc<Simulator>, Vec<Front>, Balancer) {
    replicas_with(cluster, test, |_| {}).await
}

/// [`replicas`] with each replica's options changed by `change`.
async fn replicas_with(
    cluster: &PgCluster,
    test: &str,
    change: impl Fn(&mut Options),
) -> (Arc<Simulator>, Vec<Front>, Balancer) {
    let url = cluster.create_database(test).unwrap();
    let sim = Arc::new(Simulator::start(sim_config()).await);
    let mut fronts = Vec::new();
    for i in 0..REPLICAS {
        let mut options = Options {
            store_url: Some(url.clone()),
            // The load tests' clients create as fast as they can; the
            // merchant's rate (counted for all replicas) would refuse them.
            limits: "create_per_min = 1000000\nper_payer_day_minor = 1000000000".into(),
            ..Options::fast_reconciler()
        };
        change(&mut options);
        fronts.push(Front::replica(&format!("{test}-{i}"), options, sim.clone()).await);
    }
    let lb = Balancer::start(fronts.iter().map(|f| f.base.clone()).collect()).await;
    (sim, fronts, lb)
}

/// Sends `body` with `key` until the answer is final (not "in progress").
async fn create(
    client: &reqwest::Client,
    lb: &str,
    key: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client
            .post(format!("{lb}/v1/payments"))
            .bearer_auth(MERCHANT_KEY)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let answer: serde_json::Value = r.json().await.unwrap();
        if status != 409 || answer["code"] != "idempotency_in_progress" {
            return (status, answer);
        }
        assert!(Instant::now() < deadline, "key {key} stayed in progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyed_creates_run_once_and_each_webhook_arrives_once_across_three_replicas() {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    let (sim, fronts, lb) = replicas(&cluster, "replicas").await;
    let client = reqwest::Client::new();

    // Every order's request, sent COPIES times at once.
    let mut sends = Vec::new();
    for n in 0..ORDERS {
        let no = format!("REPL-{n:03}");
        let body = order_body(&no, 100 + n as i64);
        for _ in 0..COPIES {
            let (client, lb, key, body) =
                (client.clone(), lb.url(), format!("key-{no}"), body.clone());
            sends.push(tokio::spawn(async move {
                (key.clone(), create(&client, &lb, &key, &body).await)
            }));
        }
    }
    let mut answers: HashMap<String, Vec<(u16, serde_json::Value)>> = HashMap::new();
    for s in sends {
        let (key, answer) = s.await.unwrap();
        answers.entry(key).or_default().push(answer);
    }
    for (key, got) in &answers {
        assert_eq!(got.len(), COPIES);
        for (status, body) in got {
            assert_eq!(*status, 201, "{key}: {body}");
            assert_eq!(body, &got[0].1, "{key}: every copy gets the one answer");
        }
    }
    let served = lb.served();
    assert!(
        served.iter().all(|&n| n > 0),
        "the balancer spread the requests: {served:?}"
    );
    let unified: usize = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/pay/unifiedorder")
        .count();
    assert_eq!(unified, ORDERS, "one provider call per order");

    // Paid: each order's notification reaches the replica that created it;
    // its payment.paid event goes out from whichever replica takes it.
    for n in 0..ORDERS {
        let answers = sim
            .notify(&format!("REPL-{n:03}"), Default::default())
            .await
            .unwrap();
        assert!(answers[0].acknowledged(), "{answers:?}");
    }
    let deliveries = || {
        fronts
            .iter()
            .flat_map(|f| f.receiver.accepted())
            .filter_map(|d| {
                let id = d.headers.get("webhook-id")?.to_str().ok()?.to_string();
                let event: serde_json::Value = serde_json::from_slice(&d.body).ok()?;
                Some((id, event["type"].as_str().unwrap_or_default().to_string()))
            })
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while deliveries()
        .iter()
        .filter(|(_, t)| t == "payment.paid")
        .count()
        < ORDERS
    {
        assert!(
            Instant::now() < deadline,
            "webhooks missing: {:?}",
            deliveries()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Time for a second copy to arrive, if a replica were to send one.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = deliveries();
    let mut ids: Vec<&String> = got.iter().map(|(id, _)| id).collect();
    ids.sort();
    let all = ids.len();
    ids.dedup();
    assert_eq!(
        ids.len(),
        all,
        "an event reached the merchant twice: {got:?}"
    );
    assert_eq!(
        got.iter().filter(|(_, t)| t == "payment.paid").count(),
        ORDERS
    );
    // Every replica reads the same orders.
    for f in &fronts {
        let p = f.get_json("/v1/payments/REPL-000").await;
        assert_eq!(p["state"], "paid", "{p}");
    }
}

/// Clients creating orders through the balancer, one request at a time
/// each, until `stop`; each returns (order no, status) of every create.
fn load(
    lb: String,
    stop: Arc<AtomicBool>,
    prefix: &'static str,
) -> Vec<tokio::task::JoinHandle<Vec<(String, u16)>>> {
    (0..4)
        .map(|worker| {
            let (lb, stop) = (lb.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut done = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let no = format!("{prefix}-{worker}-{:05}", done.len());
                    let status = match client
                        .post(format!("{lb}/v1/payments"))
                        .bearer_auth(MERCHANT_KEY)
                        .json(&order_body(&no, 100))
                        .send()
                        .await
                    {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                    done.push((no, status));
                }
                done
            })
        })
        .collect()
}

async fn finish(load: Vec<tokio::task::JoinHandle<Vec<(String, u16)>>>) -> Vec<(String, u16)> {
    let mut all = Vec::new();
    for l in load {
        all.extend(l.await.unwrap());
    }
    all
}

/// Every create answered 201 is stored, with its amount.
async fn acknowledged_orders_exist(front: &Front, results: &[(String, u16)]) {
    for (no, _) in results.iter().filter(|(_, s)| *s == 201) {
        let order = front
            .running
            .state
            .store
            .get_order("shop-1", no)
            .await
            .unwrap();
        let order = order.unwrap_or_else(|| panic!("{no} was acknowledged and is gone"));
        assert_eq!(order.amount_minor, 100);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_under_load_fails_no_request() {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    // A stopping replica says so on /readyz for longer than the balancer
    // takes to notice, before it closes its listener: connections already
    // queued there would be reset.
    let (_sim, fronts, lb) = replicas_with(&cluster, "rolling", |o| {
        o.server_toml = "limits.shutdown_delay_ms = 1000\n".into()
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(lb.url(), stop.clone(), "ROLL");
    let mut fronts: Vec<Option<Front>> = fronts.into_iter().map(Some).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One at a time, as an orchestrator rolls a deployment: SIGTERM's
    // graceful stop, then the new process on the same address.
    for slot in fronts.iter_mut() {
        let f = slot.take().unwrap();
        *slot = Some(f.restart_gracefully().await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let results = finish(running).await;
    let failed: Vec<_> = results.iter().filter(|(_, s)| *s != 201).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the rolling restart, first: {:?}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        results.len() >= 20,
        "too little load to prove anything: {}",
        results.len()
    );
    acknowledged_orders_exist(fronts[0].as_ref().unwrap(), &results).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_under_load_loses_no_acknowledged_order() {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    let (_sim, mut fronts, lb) = replicas(&cluster, "killed").await;
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(lb.url(), stop.clone(), "KILL");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Killed: every task of the process aborted at once, in-flight
    // requests and transactions included; then started again.
    let killed = fronts.remove(1);
    let restarted = killed.restart().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let results = finish(running).await;
    // Only what the killed replica had in flight may fail: one request per
    // client at most.
    let failed: Vec<_> = results.iter().filter(|(_, s)| *s != 201).collect();
    assert!(
        failed.len() <= 4,
        "{} of {} requests failed, first: {:?}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(results.len() >= 20, "too little load: {}", results.len());
    acknowledged_orders_exist(&restarted, &results).await;
    acknowledged_orders_exist(&fronts[0], &results).await;
}

const ADMIN_TOKEN: &str = "admin-token-for-the-replica-tests";

/// The active digest of wechat-v2 as replica `f` reports it.
async fn active_digest(f: &Front) -> String {
    let r = f
        .as_admin(reqwest::Method::GET, "/admin/adapters")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: serde_json::Value = r.json().await.unwrap();
    list["adapters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "wechat-v2")
        .map(|a| a["digest"].as_str().unwrap().to_string())
        .expect("wechat-v2 is listed")
}

/// How long until every replica of `fronts` has `digest` active; panics
/// past `within`.
async fn converged(fronts: &[&Front], digest: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let mut all = true;
        for f in fronts {
            all &= active_digest(f).await == digest;
        }
        if all {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "replicas did not all make {digest} active within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_swap_or_rollback_on_one_replica_is_active_on_every_replica_within_two_seconds() {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    let (v1, v2) = (
        payhost_e2e::component("wechat-v2"),
        payhost_e2e::component("wechat-v2-next"),
    );
    let (d1, d2) = (sha256(&v1), sha256(&v2));
    let (_sim, fronts, lb) = replicas_with(&cluster, "swaps", |o| {
        o.admin_token = Some(ADMIN_TOKEN.into())
    })
    .await;
    let all: Vec<&Front> = fronts.iter().collect();
    converged(&all, &d1, Duration::from_secs(2)).await;

    // An upload to replica 0 reaches 1 and 2 by the store's announcement.
    upload(&fronts[0], &v2).await;
    let took = converged(&all, &d2, Duration::from_secs(2)).await;
    println!("upload on one replica active on all three after {took:?}");
    // And it serves there: a payment through every replica.
    let client = reqwest::Client::new();
    for n in 0..REPLICAS {
        let (status, body) = create(
            &client,
            &lb.url(),
            &format!("swap-{n}"),
            &order_body(&format!("SWAP-{n}"), 100),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }

    // A rollback on replica 2 reaches 0 and 1; 1 and 2 compiled v1 before
    // and swap back to it without a new upload.
    let r = fronts[2]
        .as_admin(reqwest::Method::POST, "/admin/adapters/wechat-v2/rollback")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    converged(&all, &d1, Duration::from_secs(2)).await;

    // A replica that was down during a swap comes back with the cluster's
    // version, although its directory still holds the one replaced.
    let mut fronts = fronts;
    let down = fronts.remove(1);
    upload(&fronts[0], &v2).await;
    let back = down
        .restart_after(|o| {
            // What it had before it went down: v1, a version the cluster
            // has seen, so not a new deployment.
            let dir = o.data_dir.clone().unwrap().join("adapters");
            std::fs::write(dir.join("wechat-v2.wasm"), &v1).unwrap();
        })
        .await;
    assert_eq!(active_digest(&back).await, d2);
    converged(
        &[&fronts[0], &fronts[1], &back],
        &d2,
        Duration::from_secs(2),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missed_announcement_is_caught_by_the_periodic_check() {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    let v2 = payhost_e2e::component("wechat-v2-next");
    let d1 = sha256(&payhost_e2e::component("wechat-v2"));
    let (_sim, fronts, _lb) = replicas_with(&cluster, "missed", |o| {
        o.admin_token = Some(ADMIN_TOKEN.into());
        o.runtime_toml = "shared_check_ms = 200".into();
    })
    .await;
    upload(&fronts[0], &v2).await;
    let all: Vec<&Front> = fronts.iter().collect();
    converged(
        &all,
        &sha256(&payhost_e2e::component("wechat-v2-next")),
        Duration::from_secs(2),
    )
    .await;
    // A change written without NOTIFY (as if every announcement were
    // lost): the previous version made active again in the store itself.
    cluster
        .psql(
            "missed",
            "UPDATE adapter_slots SET generation = generation + 1,
                 versions = jsonb_build_array(versions::jsonb->1, versions::jsonb->0)::text
             WHERE slot = 'wechat-v2'",
        )
        .unwrap();
    converged(&all, &d1, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merchants_rate_holds_for_all_replicas_together() {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    const PER_MIN: usize = 6;
    let (_sim, _fronts, lb) = replicas_with(&cluster, "rate", |o| {
        o.limits = format!("create_per_min = {PER_MIN}");
    })
    .await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    // Twice the rate, spread round robin over the three replicas: each
    // alone would admit all of its share.
    for n in 0..2 * PER_MIN {
        let r = client
            .post(format!("{}/v1/payments", lb.url()))
            .bearer_auth(MERCHANT_KEY)
            .json(&order_body(&format!("RATE-{n}"), 100))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        PER_MIN,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        PER_MIN,
        "{statuses:?}"
    );
    assert!(lb.served().iter().all(|&n| n > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_a_killed_replica_was_delivering_reach_the_merchant_once_its_lease_ends() {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    const PAID: usize = 24;
    // A batch's lease is 17 attempts at the time-out: 5.1 s here.
    let (sim, mut fronts, lb) =
        replicas_with(&cluster, "lease", |o| o.webhook_timeout_ms = 300).await;
    for f in &fronts {
        // Slow merchants: a replica holds its batch for seconds.
        f.receiver.delay_ms.store(150, Ordering::SeqCst);
    }
    let client = reqwest::Client::new();
    for n in 0..PAID {
        let no = format!("LEASE-{n:03}");
        let (status, body) = create(&client, &lb.url(), &no, &order_body(&no, 100)).await;
        assert_eq!(status, 201, "{body}");
        // Paid before the reconciler asks, so each order has one payment.paid.
        assert!(sim.notify(&no, Default::default()).await.unwrap()[0].acknowledged());
    }
    // Killed while it delivers: its first webhook has arrived, the rest of
    // its batch is leased to it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while fronts[1].receiver.accepted().is_empty() {
        assert!(Instant::now() < deadline, "replica 1 delivered nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed = fronts.remove(1);
    let before_kill = killed.receiver.clone();
    let restarted = killed.restart().await;
    restarted.receiver.delay_ms.store(150, Ordering::SeqCst);
    fronts.push(restarted);

    let paid_ids = || {
        let mut ids: Vec<String> = fronts
            .iter()
            .map(|f| &f.receiver)
            .chain([&before_kill])
            .flat_map(|r| r.accepted())
            .filter(|d| {
                serde_json::from_slice::<serde_json::Value>(&d.body)
                    .is_ok_and(|e| e["type"] == "payment.paid")
            })
            .map(|d| d.headers["webhook-id"].to_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let mut ids = paid_ids();
        ids.dedup();
        if ids.len() == PAID {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {PAID} payment.paid events delivered after the kill",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // At least once: only an event in flight at the kill (delivered, not
    // yet marked) may arrive twice.
    let ids = paid_ids();
    assert!(
        ids.len() <= PAID + 1,
        "{} deliveries of {PAID} events",
        ids.len()
    );
}

/// Three replicas on v1 of wechat-v2, then v2 uploaded to replica 0 and
/// active on all three.
struct Upgraded {
    sim: Arc<Simulator>,
    fronts: Vec<Front>,
    d1: String,
    d2: String,
    v2: Vec<u8>,
}

async fn upload(f: &Front, bytes: &[u8]) {
    let r = f
        .as_admin(reqwest::Method::PUT, "/admin/adapters/wechat-v2")
        .header("content-type", "application/wasm")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn upgraded(cluster: &PgCluster, test: &str) -> Upgraded {
    let (v1, v2) = (
        payhost_e2e::component("wechat-v2"),
        payhost_e2e::component("wechat-v2-next"),
    );
    let (sim, fronts, _lb) =
        replicas_with(cluster, test, |o| o.admin_token = Some(ADMIN_TOKEN.into())).await;
    upload(&fronts[0], &v2).await;
    let d2 = sha256(&v2);
    converged(
        &fronts.iter().collect::<Vec<_>>(),
        &d2,
        Duration::from_secs(2),
    )
    .await;
    Upgraded {
        sim,
        fronts,
        d1: sha256(&v1),
        d2,
        v2,
    }
}

/// A replica added to `up` later: its directory has only v2.
async fn added_replica(up: &Upgraded, name: &str, pin: Option<String>) -> Front {
    let dir = payhost_e2e::temp_dir(&format!("{name}-adapters"));
    std::fs::write(dir.join("wechat-v2.wasm"), &up.v2).unwrap();
    let options = Options {
        store_url: up.fronts[0].options.store_url.clone(),
        admin_token: Some(ADMIN_TOKEN.into()),
        adapters_dir: Some(dir),
        pin,
        ..Options::fast_reconciler()
    };
    Front::replica(name, options, up.sim.clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_merchant_is_pinned_to_a_version_it_never_loaded_gets_it_from_the_store() {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    let up = upgraded(&cluster, "pins").await;
    // shop-1 pinned to v1, which this replica never had.
    let pinned = added_replica(&up, "pins-new", Some(up.d1.clone())).await;
    let r = pinned
        .as_admin(reqwest::Method::GET, "/admin/adapters/wechat-v2/versions")
        .send()
        .await
        .unwrap();
    let list: serde_json::Value = r.json().await.unwrap();
    let versions = list["versions"].as_array().unwrap();
    assert_eq!(versions[0]["digest"], up.d2.as_str(), "{list}");
    let kept = versions
        .iter()
        .find(|v| v["digest"] == up.d1.as_str())
        .unwrap_or_else(|| panic!("the pinned version was not fetched: {list}"));
    assert_eq!(kept["source"], "shared");
    assert_eq!(kept["pinned_by"], serde_json::json!(["shop-1"]));
    // And it serves the pinned merchant.
    let client = reqwest::Client::new();
    let (status, body) = create(
        &client,
        &pinned.base,
        "pinned-1",
        &order_body("PINNED-1", 100),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollback_on_a_replica_that_never_had_the_version_takes_it_from_the_store() {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    let up = upgraded(&cluster, "rollback_new").await;
    let added = added_replica(&up, "rollback-new", None).await;
    let r = added
        .as_admin(reqwest::Method::POST, "/admin/adapters/wechat-v2/rollback")
        .json(&serde_json::json!({ "digest": up.d1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let mut all: Vec<&Front> = up.fronts.iter().collect();
    all.push(&added);
    converged(&all, &up.d1, Duration::from_secs(2)).await;
}
