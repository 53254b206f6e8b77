//! `payhost config check` and `payhost config hash-key` as an operator runs
//! them: real environment variables, the real adapter component.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `payhost config check` on the shipped example with its shipped env file,
/// exactly as the example's first line says.
const CHECK_EXAMPLE: [&str; 5] = [
    "config",
    "check",
    "--env-file",
    "docs/payhost.example.env",
    "docs/payhost.example.toml",
];

/// The variables of the example's env file, as the test reads them.
fn example_env() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(workspace().join("docs/payhost.example.env")).unwrap();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `payhost args` in the workspace with `env`; no PAYHOST_* variable and
/// none of the example's secrets leak in from the caller.
fn payhost(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payhost"));
    cmd.args(args).current_dir(workspace());
    for (k, _) in std::env::vars() {
        if k.starts_with("PAYHOST_") {
            cmd.env_remove(k);
        }
    }
    for (k, _) in example_env() {
        cmd.env_remove(k);
    }
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
fn the_shipped_example_passes_check_as_its_first_line_says() {
    build_adapters();
    let out = payhost(&CHECK_EXAMPLE, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("configuration OK"), "{stdout}");
    assert!(stdout.contains("merchants:  2"), "{stdout}");
    let first = std::fs::read_to_string(workspace().join("docs/payhost.example.toml")).unwrap();
    assert!(first.contains(&format!("payhost {}", CHECK_EXAMPLE.join(" "))));
    // Variables already set win over the file.
    let out = payhost(&CHECK_EXAMPLE, &[("SHOP1_WEBHOOK_SECRET", "not-a-whsec")]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("webhook_secret"), "{}", text(&out).1);
}

#[test]
fn check_accepts_the_example_with_overrides_and_prints_no_secret() {
    build_adapters();
    let out = payhost(
        &CHECK_EXAMPLE,
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
    let secrets = example_env();
    assert_eq!(secrets.len(), 4, "{secrets:?}");
    for (_, secret) in &secrets {
        assert!(
            !stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()),
            "{secret} leaked"
        );
    }
}

#[test]
fn inspect_and_check_show_the_effective_egress_hosts() {
    build_adapters();
    let hosts =
        "api.mch.weixin.qq.com:443, api2.mch.weixin.qq.com:443, apihk.mch.weixin.qq.com:443";
    let out = payhost(&CHECK_EXAMPLE, &[]);
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
            "--env-file",
            "docs/payhost.example.env",
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
        &CHECK_EXAMPLE,
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
        &CHECK_EXAMPLE,
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
        &CHECK_EXAMPLE,
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
        &CHECK_EXAMPLE,
        &[("PAYHOST_MERCHANTS__SHOP_HK__ADAPTER", "no-such-adapter")],
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("shop-hk") && stderr.contains("no-such-adapter.wasm"),
        "{stderr}"
    );

    // In the schema, but a value the adapter itself refuses: found by the
    // adapter, offline, at check.
    let out = payhost(
        &CHECK_EXAMPLE,
        &[("PAYHOST_MERCHANTS__SHOP_1__CONFIG__SIGN_TYPE", "SHA1")],
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("shop-1")
            && stderr.contains("the adapter refuses its configuration")
            && stderr.contains("sign_type"),
        "{stderr}"
    );

    // An unknown key in the environment is a typo, not ignored.
    let out = payhost(&CHECK_EXAMPLE, &[("PAYHOST_SERVER__BINDD", "0.0.0.0:1")]);
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

/// A fresh directory under the workspace's target dir.
fn scratch(name: &str) -> PathBuf {
    let dir = workspace()
        .join("target")
        .join("host-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The references config init writes are canonical paths.
    dir.canonicalize().unwrap()
}

/// The line after `heading` in `config init`'s output, trimmed.
fn printed_after<'a>(stdout: &'a str, heading: &str) -> &'a str {
    let mut lines = stdout.lines();
    lines.find(|l| l.contains(heading)).expect(heading);
    lines.next().expect("a value line").trim()
}

#[test]
fn config_init_writes_a_starter_that_checks_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt as _;
    build_adapters();
    let dir = scratch("init");
    let path = dir.join("payhost.toml");
    let out = payhost(&["config", "init", path.to_str().unwrap()], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let key = printed_after(&stdout, "API key");
    let token = printed_after(&stdout, "admin token");
    let whsec = printed_after(&stdout, "webhook secret");
    assert!(key.starts_with("pk_") && key.len() > 40, "{key}");
    assert!(token.starts_with("adm_") && token.len() > 60, "{token}");
    assert!(whsec.starts_with("whsec_"), "{whsec}");

    // The key only as its hash; the others only as file references.
    let toml = std::fs::read_to_string(&path).unwrap();
    let hash = out_of(&payhost(&["config", "hash-key", key], &[]));
    assert!(toml.contains(hash.trim()), "{toml}");
    for secret in [key, token, whsec] {
        assert!(!toml.contains(secret), "{secret} in the file");
    }
    let secrets = dir.join("payhost-secrets");
    assert_eq!(
        std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for (name, value) in [("admin_token", token), ("webhook_secret", whsec)] {
        let p = secrets.join(name);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), value);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            toml.contains(&format!("\"file:{}\"", p.display())),
            "{toml}"
        );
    }

    let out = payhost(&["config", "check", path.to_str().unwrap()], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("configuration OK"), "{stdout}");

    // A second init refuses and changes nothing.
    let out = payhost(&["config", "init", path.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("already exists"), "{}", text(&out).1);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), toml);
    assert_eq!(
        std::fs::read_to_string(secrets.join("admin_token")).unwrap(),
        token
    );
}

fn out_of(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out).1);
    text(out).0
}
