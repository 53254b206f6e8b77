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
use std::time::{Duration, Instant};

const REPLICAS: usize = 3;
const ORDERS: usize = 8;
/// Copies of each request sent at once, each through the balancer.
const COPIES: usize = 3;

async fn replicas(cluster: &PgCluster, test: &str) -> (Arc<Simulator>, Vec<Front>, Balancer) {
    let url = cluster.create_database(test).unwrap();
    let sim = Arc::new(Simulator::start(sim_config()).await);
    let mut fronts = Vec::new();
    for i in 0..REPLICAS {
        let options = Options {
            store_url: Some(url.clone()),
            ..Options::fast_reconciler()
        };
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
