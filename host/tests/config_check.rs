//! `payhost config check` and `payhost config hash-key` as an operator runs
//! them: real environment variables, the real adapter component.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WECHAT_KEY: &str = "a-32-character-wechat-v2-api-key";

/// `payhost args` in the workspace with the example file's secrets set and
/// `env` on top; no other PAYHOST_* variable leaks in from the caller.
fn payhost(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payhost"));
    cmd.args(args).current_dir(workspace());
    for (k, _) in std::env::vars() {
        if k.starts_with("PAYHOST_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("PAYHOST_ADMIN_TOKEN", "admin-token-value")
        .env("SHOP1_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("SHOP1_WECHAT_API_KEY", WECHAT_KEY)
        .env("HK_WECHAT_API_KEY", WECHAT_KEY)
        // The example reads this one from a file that exists only in production.
        .env(
            "PAYHOST_MERCHANTS__SHOP_HK__CONFIG__API_KEY",
            "env:HK_WECHAT_API_KEY",
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running payhost")
}

fn build_adapters() {
    let out = payhost(&["adapter", "build", "adapters"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_example_with_overrides_and_prints_no_secret() {
    build_adapters();
    let out = payhost(
        &["config", "check", "docs/payhost.example.toml"],
        &[
            ("PAYHOST_SERVER__BIND", "0.0.0.0:9090"),
            ("PAYHOST_MERCHANTS__SHOP_HK__LIMITS__CNY_RATE", "1.09"),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("bind 0.0.0.0:9090"), "{stdout}");
    // 80,000.00 CNY at 1.09 HKD per CNY.
    assert!(stdout.contains("8720000 per payment"), "{stdout}");
    assert!(
        stdout.contains("https://pay.example.com/v1/notify/wechat-v2/shop-1"),
        "{stdout}"
    );
    assert!(stdout.contains("configuration OK"), "{stdout}");
    for secret in [
        WEBHOOK_SECRET,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        WECHAT_KEY,
        "admin-token-value",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked"
        );
    }
}

#[test]
fn inspect_and_check_show_the_effective_egress_hosts() {
    build_adapters();
    let hosts =
        "api.mch.weixin.qq.com:443, api2.mch.weixin.qq.com:443, apihk.mch.weixin.qq.com:443";
    let out = payhost(&["config", "check", "docs/payhost.example.toml"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains(&format!("may reach [{hosts}]")), "{stdout}");

    let out = payhost(
        &[
            "adapter",
            "inspect",
            "target/components/wechat-v2.wasm",
            "--config",
            "docs/payhost.example.toml",
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        info["effective_egress_hosts"],
        serde_json::json!(hosts.split(", ").collect::<Vec<_>>())
    );

    // Without the operator's list, nothing the adapter declares is reachable,
    // and a list that leaves a declared host out fails the check, naming it.
    let out = payhost(
        &["config", "check", "docs/payhost.example.toml"],
        &[(
            "PAYHOST_ADAPTERS__WECHAT-V2__EGRESS",
            "[\"api.mch.weixin.qq.com:443\"]",
        )],
    );
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains("api2.mch.weixin.qq.com") && stderr.contains("[adapters.wechat-v2] egress"),
        "{stderr}"
    );
}

#[test]
fn check_fails_naming_merchant_and_field() {
    build_adapters();
    // Not in the wechat-v2 schema: found only by checking against the adapter.
    let out = payhost(
        &["config", "check", "docs/payhost.example.toml"],
        &[("PAYHOST_MERCHANTS__SHOP_1__CONFIG__COLOUR", "red")],
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("shop-1") && stderr.contains("colour"),
        "{stderr}"
    );

    // A literal where the schema wants a secret.
    let out = payhost(
        &["config", "check", "docs/payhost.example.toml"],
        &[(
            "PAYHOST_MERCHANTS__SHOP_1__CONFIG__API_KEY",
            "literal-secret-value",
        )],
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("shop-1") && stderr.contains("config.api_key"),
        "{stderr}"
    );
    assert!(!stderr.contains("literal-secret-value"), "{stderr}");

    // An adapter slot with no component.
    let out = payhost(
        &["config", "check", "docs/payhost.example.toml"],
        &[("PAYHOST_MERCHANTS__SHOP_HK__ADAPTER", "no-such-adapter")],
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("shop-hk") && stderr.contains("no-such-adapter.wasm"),
        "{stderr}"
    );

    // An unknown key in the environment is a typo, not ignored.
    let out = payhost(
        &["config", "check", "docs/payhost.example.toml"],
        &[("PAYHOST_SERVER__BINDD", "0.0.0.0:1")],
    );
    assert!(!out.status.success());
    assert!(text(&out).1.contains("bindd"));
}

#[test]
fn check_fails_when_a_secret_reference_does_not_resolve() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payhost"));
    let out = cmd
        .args(["config", "check", "docs/payhost.example.toml"])
        .current_dir(workspace())
        .env_remove("PAYHOST_ADMIN_TOKEN")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("PAYHOST_ADMIN_TOKEN"), "{stderr}");
}

#[test]
fn hash_key_reads_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_payhost"))
        .args(["config", "hash-key", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"abc\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
