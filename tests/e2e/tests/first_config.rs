//! The first configuration works: what `payhost config init` writes passes
//! `config check` and, served in front of `payhost simulator`, takes a
//! first payment; a merchant whose endpoint the egress policy refuses is
//! caught by `config check` and `/readyz`, naming the setting to change.

use payhost::config::{Config, StarterOptions, write_starter};
use payhost_e2e::{components_dir, temp_dir};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// Writes a starter configuration bound to `bind`, its simulator at `sim`.
fn init(
    dir: &Path,
    bind: std::net::SocketAddr,
    sim: std::net::SocketAddr,
) -> payhost::config::Starter {
    write_starter(
        &dir.join("payhost.toml"),
        &StarterOptions {
            bind,
            simulator_url: format!("http://{sim}"),
            adapters_dir: components_dir(),
        },
    )
    .expect("config init")
}

fn create_body(no: &str) -> Value {
    json!({
        "merchant_order_no": no,
        "amount": 100,
        "currency": "CNY",
        "description": "First payment",
        "method": "wechat_mini_program",
        "payer": { "app_id": "wxd678efh567hg6787", "openid": "o-first-payer", "client_ip": "203.0.113.7" },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_check_serve_and_simulator_reach_a_first_payment() {
    use secrecy::ExposeSecret;
    let dir = temp_dir("first-config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let starter = init(
        &dir,
        listener.local_addr().unwrap(),
        sim_listener.local_addr().unwrap(),
    );

    let cfg = Config::load(Some(&starter.config)).expect("the starter configuration loads");
    let report = payhost::config::check_adapters(&cfg).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // The starter has no client certificate: named now, not at the first
    // refund, from the built adapter's own schema.
    assert!(
        matches!(report.warnings.as_slice(), [w] if w.contains("merchant `shop-1`")
            && w.contains("refunds need `config.client_cert`")),
        "{:?}",
        report.warnings
    );

    let merchant = payhost::simulator::pick_merchant(&cfg, None).unwrap();
    let provider = payhost::simulator::start(merchant, sim_listener, Duration::ZERO, |_, _| {})
        .await
        .unwrap();
    let running = payhost::server::start(&cfg, listener).await.unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let key = starter.api_key.expose_secret().to_string();

    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());

    let resp = http
        .post(format!("{base}/v1/payments"))
        .bearer_auth(&key)
        .json(&create_body("FIRST1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());

    // The simulator's payer pays; its notification makes the order paid.
    let mut state = Value::Null;
    for _ in 0..200 {
        let payment: Value = http
            .get(format!("{base}/v1/payments/FIRST1"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        state = payment["state"].clone();
        if state == "paid" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, "paid");
    assert_eq!(provider.sim.truth().orders["FIRST1"].paid_count, 1);

    // What an operator scrapes: orders counted as they changed, request
    // latency by route template in seconds.
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "payhost_orders{state=\"paid\"} 1",
        "payhost_orders{state=\"pending\"} 0",
        "payhost_http_request_duration_seconds_count{route=\"/v1/payments\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    assert!(!metrics.contains("_ms"), "{metrics}");
    running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_readyz_catch_an_endpoint_the_egress_policy_refuses() {
    let dir = temp_dir("first-config-egress");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let starter = init(&dir, addr, "127.0.0.1:9".parse().unwrap());
    // What the issue found: a loopback base_url with private addresses refused.
    let text = std::fs::read_to_string(&starter.config)
        .unwrap()
        .replace("allow_private = true", "allow_private = false");
    let cfg = Config::from_toml_str(&text).unwrap();

    let report = payhost::config::check_adapters(&cfg).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = &report.problems[0];
    for part in [
        "shop-1",
        "config.base_url",
        "127.0.0.1",
        "[egress] allow_private",
    ] {
        assert!(problem.contains(part), "{part} missing: {problem}");
    }
    assert!(!problem.contains("--allow-private"), "{problem}");

    let running = payhost::server::start(&cfg, listener).await.unwrap();
    let resp = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "not_ready");
    assert_eq!(body["problems"], json!([problem]));
    running.stop();

    // A default endpoint whose host the slot's list leaves out is refused too.
    let text = std::fs::read_to_string(&starter.config).unwrap();
    let no_base_url: String = text
        .lines()
        .filter(|l| !l.starts_with("base_url"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\"api.mch.weixin.qq.com:443\",", "");
    let cfg = Config::from_toml_str(&no_base_url).unwrap();
    let report = payhost::config::check_adapters(&cfg).unwrap();
    assert!(
        report.problems.iter().any(|p| p.contains("config.base_url")
            && p.contains("the adapter's default")
            && p.contains("api.mch.weixin.qq.com")
            && p.contains("[adapters.wechat-v2] egress")),
        "{:?}",
        report.problems
    );
}
