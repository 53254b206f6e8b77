//! The `payhost` binary as a user runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn payhost(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_payhost"))
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("running payhost");
    if !out.status.success() {
        panic!(
            "payhost {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

#[test]
fn demo_walks_a_payment_from_creation_to_refund() {
    let out = payhost(&["demo"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "POST /v1/payments -> 201",
        "wx.requestPayment({\"appId\"",
        "<return_code><![CDATA[SUCCESS]]></return_code>",
        "state \"paid\"",
        "\"payment.paid\" for \"DEMO",
        "refund \"succeeded\", payment \"partially_refunded\" (500 of 1999 refunded)",
        "webhook \"refund.succeeded\" delivered",
        "refund.succeeded   delivery \"delivered\"",
        "Done:",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn inspect_prints_the_adapter_description_as_json() {
    payhost(&["adapter", "build", "adapters"]);
    let out = payhost(&["adapter", "inspect", "target/components/wechat-v2.wasm"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
    assert_eq!(info["name"], "wechat-v2");
    assert_eq!(info["contract_version"], "0.1.0");
    assert!(info["version"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(
        info["methods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "wechat_mini_program")
    );
    assert_eq!(info["capabilities"]["payment_notifications"], true);
    assert!(
        info["egress_hosts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "api.mch.weixin.qq.com")
    );
    let schema = info["config_schema"].as_array().unwrap();
    let api_key = schema
        .iter()
        .find(|f| f["name"] == "api_key")
        .expect("api_key in schema");
    assert_eq!(api_key["kind"], "Secret");
}

#[test]
fn inspect_refuses_a_component_with_foreign_imports() {
    payhost(&[
        "adapter",
        "build",
        "tests/guests",
        "--out",
        "target/test-components",
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_payhost"))
        .args([
            "adapter",
            "inspect",
            "target/test-components/foreign-import.wasm",
        ])
        .current_dir(workspace())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("evil:exfil/net"), "{stderr}");
}
