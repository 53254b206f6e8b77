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

/// An edit of a broken copy: in `file`, `from` (found exactly `count`
/// times, so a changed adapter breaks the test loudly) becomes `to`.
struct Edit {
    file: &'static str,
    from: &'static str,
    to: &'static str,
    count: usize,
}

const fn edit(file: &'static str, from: &'static str, to: &'static str) -> Edit {
    Edit {
        file,
        from,
        to,
        count: 1,
    }
}

/// The real 2paynow adapter copied to `target/broken-adapters/<variant>`
/// as a crate of its own, `edits` applied, built as `adapter build` builds
/// it; returns the component.
fn broken_copy(variant: &str, edits: &[Edit]) -> Vec<u8> {
    let ws = payhost_e2e::workspace();
    let root = ws.join("target").join("broken-adapters");
    let dir = root.join(variant);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let original = ws.join("adapters").join("2paynow");
    for entry in std::fs::read_dir(original.join("src")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join("src").join(path.file_name().unwrap())).unwrap();
    }
    // The workspace's inherited keys made explicit; no dev-dependencies
    // (the component needs none); its own workspace, the adapter profile.
    let manifest = std::fs::read_to_string(original.join("Cargo.toml")).unwrap();
    // A package name of its own: it shares the adapters' target dir, where
    // the real 2paynow's artifact has the real name.
    let manifest = manifest
        .split("[dev-dependencies]")
        .next()
        .unwrap()
        .replace(
            "name = \"twopaynow\"",
            &format!("name = \"twopaynow-broken-{variant}\""),
        )
        .replace(
            "version.workspace = true\nedition.workspace = true\nlicense.workspace = true",
            "version = \"0.1.0\"\nedition = \"2024\"\nlicense = \"Apache-2.0\"",
        )
        .replace(
            "payhost-sdk.workspace = true",
            &format!("payhost-sdk = {{ path = {:?} }}", ws.join("sdk")),
        );
    let root_manifest = std::fs::read_to_string(ws.join("Cargo.toml")).unwrap();
    let profile = root_manifest
        .split("\n[")
        .find(|s| s.starts_with("profile.adapter]"))
        .expect("the workspace's adapter profile");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("{manifest}\n[{profile}\n[workspace]\n"),
    )
    .unwrap();
    // Locked to the workspace's versions: nothing new to download.
    std::fs::copy(ws.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    for e in edits {
        let path = dir.join("src").join(e.file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.matches(e.from).count(),
            e.count,
            "{}: `{}` is not there {} time(s); update this broken copy",
            e.file,
            e.from,
            e.count
        );
        std::fs::write(&path, text.replace(e.from, e.to)).unwrap();
    }
    let out_dir = root.join(format!("{variant}-out"));
    let built = payhost::builder::build(&payhost::builder::BuildOptions {
        workspace: ws.clone(),
        dirs: vec![dir],
        out_dir,
        // The main adapters' target dir: the SDK's dependencies are built.
        target_dir: Some(ws.join("target").join("wasm")),
        js_dir: None,
    })
    .expect("building the broken copy");
    std::fs::read(&built[0].path).unwrap()
}

async fn check_bytes(bytes: &[u8]) -> Report {
    let rt = runtime();
    let adapter = rt.load(bytes).unwrap();
    let config = conformance::synthetic_config(&adapter.info);
    conformance::check(&rt, &adapter, &config).await
}

#[tokio::test]
async fn a_copy_of_2paynow_with_a_bad_describe_fails_describe_only() {
    let report = check_bytes(&broken_copy(
        "bad-describe",
        &[
            edit(
                "lib.rs",
                "version: env!(\"CARGO_PKG_VERSION\").into(),",
                "version: \"latest\".into(),",
            ),
            edit(
                "lib.rs",
                "egress_hosts: vec![\"www.2paynow.com\".into()],",
                "egress_hosts: vec![],",
            ),
        ],
    ))
    .await;
    let describe = line(&report, "describe");
    assert_eq!(describe.result, "fail");
    for reason in ["version `latest` is not semver", "no egress hosts"] {
        assert!(describe.detail.contains(reason), "{}", describe.detail);
    }
    let failed: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.result == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{}", report.table());
}

#[tokio::test]
async fn a_copy_of_2paynow_that_traps_on_garbage_fails_every_operation_reading_answers() {
    let report = check_bytes(&broken_copy(
        "trap-on-garbage",
        // `expect` where the adapter answered the contract's error.
        &[edit(
            "wire.rs",
            ".map_err(|e| Error::malformed(format!(\"{function} answer: {e}\")))?;",
            ".expect(\"2paynow answers JSON\");",
        )],
    ))
    .await;
    assert!(!report.passed());
    assert_eq!(line(&report, "describe").result, "pass");
    let mut trapped = 0;
    for c in report
        .checks
        .iter()
        .filter(|c| c.name.ends_with("/garbage"))
    {
        if c.name == "parse-notify/forged" {
            continue;
        }
        assert_eq!(c.result, "fail", "{}", report.table());
        assert!(
            c.detail.contains("random bytes: adapter trapped"),
            "{}",
            c.detail
        );
        trapped += 1;
    }
    assert!(trapped >= 2, "{}", report.table());
}

#[tokio::test]
async fn a_copy_of_2paynow_that_declares_its_key_as_text_and_sends_it_fails_describe_and_canary() {
    let report = check_bytes(&broken_copy(
        "leaked-key",
        &[
            edit(
                "lib.rs",
                "\"The key 2paynow issued with the merchant id\",\n                    FieldKind::Secret,",
                "\"The key 2paynow issued with the merchant id\",\n                    FieldKind::Text,",
            ),
            edit("lib.rs", "    key: Secret,\n", "    key: &'a str,\n"),
            edit("lib.rs", "key: c.secret(\"key\")?,", "key: c.text(\"key\")?,"),
            // An older 2paynow API took the key as a parameter: sent in the clear.
            edit(
                "lib.rs",
                "(\"sign\", sign),",
                "(\"sign\", sign),\n            (\"key\", self.key.to_string()),",
            ),
            Edit {
                file: "sign.rs",
                from: "key: Secret",
                to: "key: &str",
                count: 2,
            },
            edit("sign.rs", "Part::Secret(key),", "Part::Text(key.to_string()),"),
        ],
    ))
    .await;
    let describe = line(&report, "describe");
    assert_eq!(describe.result, "fail");
    assert!(
        describe
            .detail
            .contains("field `key` looks like a secret but is declared text"),
        "{}",
        describe.detail
    );
    let canary = line(&report, "canary");
    assert_eq!(canary.result, "fail", "{}", report.table());
    assert!(
        canary.detail.contains("a secret's bytes appear"),
        "{}",
        canary.detail
    );
    // The report itself never prints the value.
    assert!(
        !report.table().contains(conformance::CANARY),
        "{}",
        report.table()
    );
}

#[tokio::test]
async fn wechat_v2_fails_the_determinism_check_when_its_second_run_sees_another_seed() {
    // A guest has no clock or randomness but the call context's; a host
    // that leaked either would look like this.
    let rt = runtime();
    let adapter = rt.load(&payhost_e2e::component("wechat-v2")).unwrap();
    let config = conformance::synthetic_config(&adapter.info);
    let mut second = conformance::call_context();
    second.seed += 1;
    let report = conformance::check_with_second_context(&rt, &adapter, &config, second).await;
    let first = line(&report, "unified-order[wechat_mini_program]/first-step");
    assert_eq!(first.result, "fail", "{}", report.table());
    assert!(
        first.detail.starts_with("not deterministic"),
        "{}",
        first.detail
    );
    // The same adapter with the same context twice passes.
    let honest = conformance::check(&rt, &adapter, &config).await;
    assert_eq!(
        line(&honest, "unified-order[wechat_mini_program]/first-step").result,
        "pass"
    );
}

/// wechat-v3 has payouts: with a configuration that can sign and verify
/// (the public key, a scene and its report items), `payout` and
/// `payout-query` are driven through every garbage answer too.
#[tokio::test]
async fn wechat_v3_payouts_are_checked_through_every_garbage_answer() {
    let rt = runtime();
    let adapter = rt.load(&payhost_e2e::component("wechat-v3")).unwrap();
    assert!(adapter.info.capabilities.payouts);
    let fixture = |name: &str| {
        std::fs::read_to_string(
            payhost_e2e::workspace()
                .join("tests/fixtures/wechatpay-v3")
                .join(name),
        )
        .unwrap()
    };
    let config = conformance::synthetic_config(&adapter.info)
        .secret("private_key", fixture("sdk-test.key.pem"))
        .text(
            "wechatpay_public_key_id",
            "PUB_KEY_ID_0112345678902025010100000000000001",
        )
        .text("wechatpay_public_key", fixture("sdk-test.pub.pem"))
        .text("transfer_scene_id", "1000")
        .text(
            "transfer_scene_report_infos",
            r#"[{"info_type":"活动名称","info_content":"conformance"}]"#,
        );
    let report = conformance::check(&rt, &adapter, &config).await;
    for name in [
        "payout/first-step",
        "payout/garbage",
        "payout-query/first-step",
        "payout-query/garbage",
    ] {
        assert_eq!(line(&report, name).result, "pass", "{}", report.table());
    }
    assert!(report.passed(), "{}", report.table());
}
