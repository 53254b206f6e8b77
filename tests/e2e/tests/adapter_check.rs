//! `payhost adapter check` (`payhost::conformance`) on real components:
//! every adapter under `adapters/` passes, and a guest built to trust
//! garbage fails on exactly what it does wrong.

use payhost::conformance::{self, Report};
use payhost::runtime::{Runtime, RuntimeConfig};

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        max_instances: 4,
        // A JavaScript component (SpiderMonkey inside) takes tens of
        // seconds to compile in a debug build; the e2e tests share this cache.
        cache_dir: Some(payhost_e2e::workspace().join("target/payhost-cache")),
        ..RuntimeConfig::default()
    })
    .unwrap()
}

async fn check(name: &str) -> Report {
    check_with(name, &[]).await
}

/// With `secrets` added to the schema's configuration, as `--config`
/// would add them.
async fn check_with(name: &str, secrets: &[&str]) -> Report {
    let rt = runtime();
    let adapter = rt.load(&payhost_e2e::component(name)).unwrap();
    let mut config = conformance::synthetic_config(&adapter.info);
    for field in secrets {
        config = config.secret(field, conformance::CANARY);
    }
    conformance::check(&rt, &adapter, &config).await
}

fn line<'a>(report: &'a Report, name: &str) -> &'a conformance::Check {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no `{name}` in\n{}", report.table()))
}

#[tokio::test]
async fn every_adapter_passes_the_conformance_check() {
    let adapters = std::fs::read_dir(payhost_e2e::workspace().join("adapters")).unwrap();
    let mut checked = 0;
    for dir in adapters {
        let dir = dir.unwrap().path();
        // A JavaScript adapter's slot is its package name.
        if let Ok(package) = std::fs::read_to_string(dir.join("package.json")) {
            let package: serde_json::Value = serde_json::from_str(&package).unwrap();
            let report = check(package["name"].as_str().unwrap()).await;
            assert!(report.passed(), "{}", report.table());
            checked += 1;
            continue;
        }
        let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        // The component is named by the slot, as the builder names it.
        let slot = text
            .lines()
            .find_map(|l| l.strip_prefix("slot = "))
            .or_else(|| text.lines().find_map(|l| l.strip_prefix("name = ")))
            .unwrap()
            .trim_matches('"')
            .to_string();
        let report = check(&slot).await;
        assert!(report.passed(), "{}", report.table());
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} adapters found");
}

#[tokio::test]
async fn wechat_v2_is_checked_through_every_garbage_answer() {
    // Refunds need the (optional) mutual-TLS certificate.
    let report = check_with("wechat-v2", &["client_cert"]).await;
    for op in [
        "unified-order[wechat_mini_program]",
        "unified-order[wechat_native]",
        "query",
        "close",
        "refund",
        "refund-query",
    ] {
        assert_eq!(line(&report, &format!("{op}/first-step")).result, "pass");
        assert_eq!(line(&report, &format!("{op}/garbage")).result, "pass");
    }
    assert_eq!(line(&report, "parse-notify/forged").result, "pass");
    assert_eq!(line(&report, "canary").result, "pass");
    assert!(report.table().ends_with("conformance: passed\n"));
}

#[tokio::test]
async fn an_adapter_that_trusts_garbage_fails_naming_what_it_did() {
    let report = check("garbage-trusting").await;
    assert!(!report.passed());
    let garbage = line(&report, "unified-order[qr]/garbage");
    assert_eq!(garbage.result, "fail");
    // A garbage answer taken for a created order, and a trap on an empty one.
    assert!(
        garbage.detail.contains("random bytes: succeeds on it"),
        "{}",
        garbage.detail
    );
    assert!(
        garbage.detail.contains("an empty 200: adapter trapped"),
        "{}",
        garbage.detail
    );
    // What it does honestly passes.
    assert_eq!(line(&report, "describe").result, "pass");
    assert_eq!(line(&report, "query/first-step").result, "pass");
    assert_eq!(
        report.checks.iter().filter(|c| c.result == "fail").count(),
        1,
        "{}",
        report.table()
    );
}

#[tokio::test]
async fn a_describe_without_hosts_or_semver_fails() {
    // The benchmark guest declares no provider host.
    let report = check("rsa-sign").await;
    let describe = line(&report, "describe");
    assert_eq!(describe.result, "fail");
    assert!(
        describe.detail.contains("no egress hosts"),
        "{}",
        describe.detail
    );
}
