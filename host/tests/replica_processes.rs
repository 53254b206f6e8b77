//! Three `payhost serve` processes on one PostgreSQL database, under load,
//! one of them killed with SIGKILL and started again: no request to the
//! other two fails, every order acknowledged to a client exists afterwards,
//! and the restarted process serves again. Skips only where PostgreSQL
//! cannot be installed outside CI.

use payhost_pgtest::PgCluster;
use payhost_simulators::wechat_v2::{SimConfig, Simulator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const APPID: &str = "wx2421b1c4370ec43b";
const MCH_ID: &str = "10000100";
const WECHAT_KEY: &str = "192006250b4c09247ec02edce69f6a2d";
const MERCHANT_KEY: &str = "pk_test_replicas_0c41";
const REPLICAS: usize = 3;
const KILLED: usize = 1;
const CLIENTS: usize = 4;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A replica process, killed when dropped.
struct Replica {
    child: Child,
    config: PathBuf,
    url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn start(config: &Path, url: &str) -> Replica {
        let child = Command::new(env!("CARGO_BIN_EXE_payhost"))
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Replica {
            child,
            config: config.to_path_buf(),
            url: url.to_string(),
        }
    }

    /// SIGKILL: no handler runs, nothing is flushed or closed in order.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Waits until `/readyz` answers 200.
async fn ready(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{url}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, port: u16, store_url: &str, sim: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("adapters")).unwrap();
    std::fs::copy(
        workspace().join("target/components/wechat-v2.wasm"),
        dir.join("adapters/wechat-v2.wasm"),
    )
    .unwrap();
    std::fs::write(dir.join("wechat.key"), WECHAT_KEY).unwrap();
    let config = dir.join("payhost.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
bind = "127.0.0.1:{port}"
public_base_url = "http://127.0.0.1:{port}"

[store]
url = "{store_url}"

[runtime]
adapters_dir = "{adapters}"
watch = false

[egress]
allow_private = true

[[merchants]]
id = "shop-1"
api_keys = ["{key}"]
adapter = "wechat-v2"
currency = "CNY"
industry = "physical"

[merchants.limits]
create_per_min = 1000000
per_payer_day_minor = 1000000000

[merchants.config]
appid = "{APPID}"
mch_id = "{MCH_ID}"
api_key = "file:{dir}/wechat.key"
base_url = "{sim}"
"#,
            adapters = dir.join("adapters").display(),
            key = payhost::config::api_key_hash(MERCHANT_KEY),
            dir = dir.display(),
        ),
    )
    .unwrap();
    config
}

/// One create: its order number, the replica it was sent to, its status
/// (0: no HTTP answer).
type Sent = (String, usize, u16);

/// Clients creating orders one at a time each, round robin over `urls`,
/// until `stop`.
fn load(urls: Arc<Vec<String>>, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Vec<Sent>>> {
    (0..CLIENTS)
        .map(|c| {
            let (urls, stop) = (urls.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .unwrap();
                let mut sent = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = sent.len();
                    let target = (c + n) % urls.len();
                    let no = format!("PROC-{c}-{n:05}");
                    let status = client
                        .post(format!("{}/v1/payments", urls[target]))
                        .bearer_auth(MERCHANT_KEY)
                        .header("content-type", "application/json")
                        .body(serde_json::to_vec(&serde_json::json!({
                            "merchant_order_no": no,
                            "amount": 100,
                            "currency": "CNY",
                            "description": "Tea, 250 g",
                            "method": "wechat_mini_program",
                            "payer": { "app_id": APPID, "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
                                       "client_ip": "203.0.113.7" }
                        })).unwrap())
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    if status == 0 {
                        // A balancer would not send here again at once.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    sent.push((no, target, status));
                }
                sent
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_process_killed_with_sigkill_loses_no_acknowledged_order_and_fails_no_other_request()
 {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    let built = Command::new(env!("CARGO_BIN_EXE_payhost"))
        .args(["adapter", "build", "adapters"])
        .current_dir(workspace())
        .status()
        .unwrap();
    assert!(built.success());
    let store_url = cluster.create_database("processes").unwrap();
    let sim = Simulator::start(SimConfig::new(APPID, MCH_ID, WECHAT_KEY)).await;
    let root = workspace()
        .join("target/replica-processes")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&root);
    let mut replicas = Vec::new();
    for i in 0..REPLICAS {
        let port = free_port();
        let config = write_config(&root.join(i.to_string()), port, &store_url, &sim.base_url());
        replicas.push(Replica::start(&config, &format!("http://127.0.0.1:{port}")));
    }
    let client = reqwest::Client::new();
    for r in &replicas {
        ready(&client, &r.url).await;
    }
    let urls = Arc::new(replicas.iter().map(|r| r.url.clone()).collect::<Vec<_>>());
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(urls.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(1000)).await;

    replicas[KILLED].kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (config, url) = (
        replicas[KILLED].config.clone(),
        replicas[KILLED].url.clone(),
    );
    replicas[KILLED] = Replica::start(&config, &url);
    ready(&client, &url).await;
    let back_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);

    let mut sent = Vec::new();
    for l in running {
        sent.extend(l.await.unwrap());
    }
    let failed_elsewhere: Vec<&Sent> = sent
        .iter()
        .filter(|(_, target, status)| *target != KILLED && *status != 201)
        .collect();
    assert!(
        failed_elsewhere.is_empty(),
        "{} requests to the surviving replicas failed, first: {:?}",
        failed_elsewhere.len(),
        &failed_elsewhere[..failed_elsewhere.len().min(5)]
    );
    let refused = sent
        .iter()
        .filter(|(_, t, s)| *t == KILLED && *s == 0)
        .count();
    assert!(refused > 0, "the kill was never seen by a client");
    assert!(
        sent.iter()
            .filter(|(_, t, s)| *t == KILLED && *s == 201)
            .count()
            > 0,
        "the restarted replica served nothing in {:?}",
        back_at.elapsed()
    );
    // Every acknowledged order is in the database, whichever replica took it.
    let stored = cluster
        .psql(
            "processes",
            "SELECT string_agg(merchant_order_no, ',') FROM orders WHERE merchant_id = 'shop-1'",
        )
        .unwrap();
    let stored: std::collections::HashSet<&str> = stored.split(',').collect();
    let acknowledged: Vec<&str> = sent
        .iter()
        .filter(|(_, _, s)| *s == 201)
        .map(|(no, _, _)| no.as_str())
        .collect();
    assert!(acknowledged.len() >= 20, "too little load: {}", sent.len());
    let lost: Vec<&&str> = acknowledged
        .iter()
        .filter(|no| !stored.contains(**no))
        .collect();
    assert!(lost.is_empty(), "acknowledged and gone: {lost:?}");
    println!(
        "{} creates, {} acknowledged, {} refused while replica {KILLED} was down",
        sent.len(),
        acknowledged.len(),
        refused
    );
}
