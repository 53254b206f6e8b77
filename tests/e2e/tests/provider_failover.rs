//! Provider health through the whole payhost: a merchant whose provider
//! endpoint keeps failing is switched to its configured backup with an
//! alarm (metric, warn log, admin event), and back after a probe finds the
//! primary answering. The primary is an [`Outage`] front for the WeChat v2
//! simulator, the backup the simulator itself, so both reach the same
//! orders, as WeChat's `api` and `api2` do.

use payhost_e2e::front::{self, Front, Options};
use payhost_simulators::outage::Outage;
use payhost_simulators::wechat_v2::Simulator;
use reqwest::Method;
use serde_json::Value;

const KEY: &str = "pk_test_failover_shop";
const ADMIN: &str = "admin-token-failover-test";

fn unified_orders(sim: &Simulator) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path == "/pay/unifiedorder")
        .count()
}

async fn events(f: &Front) -> Vec<Value> {
    let r = f
        .as_admin(Method::GET, "/admin/events")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["events"].as_array().unwrap().clone()
}

fn metric(text: &str, name: &str, merchant: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{merchant=\"{merchant}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .map(String::from)
}

#[tokio::test]
async fn a_failing_endpoint_is_replaced_by_the_backup_and_restored_after_a_probe() {
    payhost_e2e::capture_logs();
    let sim = Simulator::start(front::sim_config()).await;
    let primary = Outage::start(&sim.base_url()).await.unwrap();
    let options = Options {
        admin_token: Some(ADMIN.into()),
        extra_toml: format!(
            "{}\n[merchants.failover]\nprimary = \"{primary}\"\nbackup = \"$SIM_URL\"\n\
             after_failures = 3\nprobe_interval_ms = 100\n",
            front::wechat_v2_merchant("shop-f", KEY, primary.base_url()),
            primary = primary.base_url(),
        ),
        ..Default::default()
    };
    let f = Front::start_with_simulator("provider-failover", options, sim).await;
    let create = |no: &str| {
        f.call_as(
            KEY,
            Method::POST,
            "/v1/payments",
            Some(front::order_body(no, 100)),
        )
    };

    // Healthy: through the primary.
    let (status, p) = create("FO-0001").await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(primary.forwarded(), 1);

    // Down: three failures in a row, each a clear answer, then the switch.
    primary.fail();
    for no in ["FO-0002", "FO-0003", "FO-0004"] {
        let (status, p) = create(no).await;
        assert_eq!(status, 502, "{p}");
        assert_eq!(p["retryable"], true, "{p}");
    }
    let refused_at_switch = primary.refused();
    assert!(refused_at_switch >= 3, "{refused_at_switch}");
    let on_backup = events(&f).await;
    assert_eq!(on_backup.len(), 1, "{on_backup:?}");
    let e = &on_backup[0];
    assert_eq!(e["kind"], "provider_failover");
    assert_eq!(e["merchant"], "shop-f");
    assert_eq!(e["from"], primary.base_url());
    assert_eq!(e["to"], f.sim.base_url());
    assert!(e["reason"].as_str().unwrap().contains("HTTP 503"), "{e}");
    let metrics = f.metrics().await;
    assert_eq!(
        metric(&metrics, "payhost_provider_on_backup", "shop-f").as_deref(),
        Some("1")
    );
    assert_eq!(
        metric(&metrics, "payhost_provider_failovers_total", "shop-f").as_deref(),
        Some("1")
    );
    assert!(payhost_e2e::logs().contains("requests switched to the backup"));

    // On the backup: orders go straight to the simulator, and the whole
    // flow works (pay, notify, query with refresh).
    let before = unified_orders(&f.sim);
    let (status, p) = create("FO-0005").await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(unified_orders(&f.sim), before + 1);
    assert!(f.sim.pay_and_notify("FO-0005").unwrap());
    f.wait_for_as(KEY, "/v1/payments/FO-0005", "state", "paid")
        .await;
    let (status, p) = f
        .call_as(KEY, Method::GET, "/v1/payments/FO-0005?refresh=true", None)
        .await;
    assert_eq!((status, p["state"].as_str()), (200, Some("paid")), "{p}");
    // shop-1, with no failover rule and the simulator as its endpoint, is
    // untouched.
    assert_eq!(f.create("FO-S1-0001", 100).await.status(), 201);
    assert_eq!(
        metric(&metrics, "payhost_provider_on_backup", "shop-1"),
        None
    );

    // Probes keep asking the primary, which still fails: no switch back.
    f.eventually("a probe of the failing primary", || {
        primary.refused() > refused_at_switch
    })
    .await;
    assert_eq!(events(&f).await.len(), 1);

    // The primary recovers: the next probe switches back.
    primary.recover();
    let mut recovered = Vec::new();
    for _ in 0..250 {
        recovered = events(&f).await;
        if recovered.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(recovered.len(), 2, "{recovered:?}");
    assert_eq!(recovered[1]["kind"], "provider_recovered");
    assert_eq!(recovered[1]["to"], primary.base_url());
    assert!(recovered[1]["id"].as_u64() > recovered[0]["id"].as_u64());
    let metrics = f.metrics().await;
    assert_eq!(
        metric(&metrics, "payhost_provider_on_backup", "shop-f").as_deref(),
        Some("0")
    );
    let forwarded = primary.forwarded();
    let (status, p) = create("FO-0006").await;
    assert_eq!(status, 201, "{p}");
    assert!(primary.forwarded() > forwarded, "back on the primary");

    // The operator's events are the operator's: a merchant key is refused.
    let r = f
        .as_merchant(Method::GET, "/admin/events")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
