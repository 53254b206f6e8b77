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

/// Every regional provider of the source article's switch walks its own
/// flow: its currency, its pay action, paid by notification or (VR
/// Payment) by payhost's polling, refunded where the provider can.
#[test]
fn demo_walks_each_regional_provider() {
    for (provider, lines) in [
        (
            "yaband",
            &[
                "for 19.99 EUR (wechat_mini_program)",
                "wx.requestPayment(",
                "answered HTTP 200: ok",
                "refund \"succeeded\"",
            ][..],
        ),
        (
            "2paynow",
            &[
                "for 19.99 EUR (wechat_native)",
                "show the QR code of",
                "answered HTTP 200: success",
                "offers no refund",
            ][..],
        ),
        (
            "supay",
            &[
                "for 19.99 AUD (wechat_mini_program)",
                "wx.requestPayment(",
                "answered HTTP 200: success",
                "refund \"succeeded\"",
            ][..],
        ),
        (
            "vr-payment",
            &[
                "for 19.99 EUR (card)",
                "open \"http",
                "sends no notification, so payhost polls it",
                "refund \"succeeded\"",
            ][..],
        ),
        (
            "wechat-cloudpay",
            &[
                "for 19.99 CNY (wechat_mini_program)",
                "{\"errcode\":0",
                "refund \"succeeded\"",
            ][..],
        ),
    ] {
        let out = payhost(&["demo", "--provider", provider]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        // The demo's merchants use loopback simulators: no egress noise.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("declares egress hosts"),
            "{provider}: {stderr}"
        );
        for expected in
            lines
                .iter()
                .chain(&["state \"paid\"", "\"payment.paid\" for \"DEMO", "Done:"])
        {
            assert!(
                stdout.contains(expected),
                "{provider}: missing {expected:?} in:\n{stdout}"
            );
        }
    }
}

#[test]
fn demo_walks_the_same_payment_through_wechat_pay_v3() {
    let out = payhost(&["demo", "--provider", "wechat-v3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "Starting a WeChat Pay v3 simulator",
        "POST /v1/payments -> 201",
        "\"signType\":\"RSA\"",
        "payhost answered HTTP 200: {\"code\":\"SUCCESS\"",
        "state \"paid\"",
        "refund \"succeeded\", payment \"partially_refunded\" (500 of 1999 refunded)",
        "Done:",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // One paid event although WeChat Pay notified twice.
    assert_eq!(
        stdout.matches("\"payment.paid\" for").count(),
        1,
        "{stdout}"
    );
}

/// `payhost demo --flow payout`: a reward paid into a payee's wallet,
/// confirmed, notified and told to the merchant; one over seed 002's
/// per-payout limit refused.
#[test]
fn demo_walks_a_payout_through_wechat_pay_v3() {
    let out = payhost(&["demo", "--provider", "wechat-v3", "--flow", "payout"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "POST /v1/payouts -> 201, state \"pending_user_confirmation\"",
        "wx.requestMerchantTransfer({\"appId\"",
        "payhost answered HTTP 200",
        "state \"succeeded\"",
        "\"payout.succeeded\" for \"DEMOPAY",
        "-> 422 \"payout_limit_exceeded\" (limit \"per_payout\", max 500000)",
        "Done: payout created",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // The payee's name went to WeChat only.
    assert!(!stdout.contains("王小王"), "{stdout}");
}

/// `payhost demo --flow contract`: a papay contract signed in WeChat's
/// signing mini-program, charged twice, its daily count hit, terminated.
#[test]
fn demo_walks_a_contract_through_wechat_pay_v2() {
    let out = payhost(&["demo", "--provider", "wechat-v2", "--flow", "contract"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "POST /v1/contracts -> 201, state \"pending_signature\"",
        "wx.navigateToMiniProgram({appId: \"wxbd687630cd02ce1d\"",
        "state \"active\"",
        "\"contract.signed\"",
        "\"deduction.succeeded\" for \"DEMOC",
        "-> 422 \"deduction_limit_exceeded\" (limit \"per_contract_day_count\", max 2)",
        "-> 200, state \"terminated\"",
        "\"contract.terminated\"",
        "Done: contract signed",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert_eq!(
        stdout.matches("\"deduction.succeeded\" for").count(),
        2,
        "{stdout}"
    );
}

#[test]
fn a_contract_demo_on_a_provider_without_the_simulator_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_payhost"))
        .args(["demo", "--provider", "yaband", "--flow", "contract"])
        .current_dir(workspace())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--provider wechat-v2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_payout_demo_on_a_provider_without_payouts_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_payhost"))
        .args(["demo", "--provider", "yaband", "--flow", "payout"])
        .current_dir(workspace())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--provider wechat-v3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn inspect_prints_the_adapter_description_as_json() {
    payhost(&["adapter", "build", "adapters"]);
    let out = payhost(&["adapter", "inspect", "target/components/wechat-v2.wasm"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
    assert_eq!(info["name"], "wechat-v2");
    assert_eq!(
        info["contract_version"],
        payhost::contract::CONTRACT_VERSION
    );
    let currencies = info["currencies"].as_array().expect("currencies listed");
    assert!(currencies.iter().any(|c| c == "CNY") && currencies.iter().any(|c| c == "EUR"));
    assert_eq!(info["capabilities"]["close"], true);
    assert_eq!(info["capabilities"]["refund_query"], true);
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

/// The hostile and benchmark guests, into `target/test-components`.
fn build_test_guests() {
    payhost(&[
        "adapter",
        "build",
        "tests/guests",
        "--out",
        "target/test-components",
    ]);
}

#[test]
fn inspect_refuses_a_component_with_foreign_imports() {
    build_test_guests();
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

/// Kills the server when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `payhost serve` on a fresh directory `target/<name>/<pid>` holding the
/// built wechat-v2 component, with an admin token and no merchants;
/// returns the server, its base URL, the directory and its standard
/// error (read on a thread, so logging never blocks it), whole once it
/// exits.
fn serve(name: &str) -> (Child, String, PathBuf, std::thread::JoinHandle<String>) {
    use std::io::BufRead;
    payhost(&["adapter", "build", "adapters"]);
    let dir = workspace()
        .join("target")
        .join(name)
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("adapters")).unwrap();
    std::fs::copy(
        workspace().join("target/components/wechat-v2.wasm"),
        dir.join("adapters/wechat-v2.wasm"),
    )
    .unwrap();
    let config = dir.join("payhost.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\nadmin_token = \"env:PAYHOST_ADMIN_TOKEN\"\n\n[store]\nsqlite_path = \"{}\"\n\n[runtime]\nadapters_dir = \"{}\"\nwatch = false\n",
            dir.join("payhost.db").display(),
            dir.join("adapters").display()
        ),
    )
    .unwrap();
    let mut server = Child(
        Command::new(env!("CARGO_BIN_EXE_payhost"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("PAYHOST_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let mut stderr = server.0.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut logs = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut logs);
        logs
    });
    (server, url, dir, logs)
}

const ADMIN_TOKEN: &str = "adm_cli_test_71c2";

#[test]
fn push_uploads_a_new_version_to_a_running_server() {
    build_test_guests();
    let (_server, url, dir, _logs) = serve("cli-push");

    let push = |token: &str| {
        Command::new(env!("CARGO_BIN_EXE_payhost"))
            .args([
                "adapter",
                "push",
                "target/test-components/wechat-v2-next.wasm",
                "--name",
                "wechat-v2",
                "--to",
                &url,
            ])
            .env("PAYHOST_ADMIN_TOKEN", token)
            .current_dir(workspace())
            .output()
            .unwrap()
    };
    let refused = push("wrong-token");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let out = push(ADMIN_TOKEN);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("0.2.0-next") && text.contains("0.1.0"),
        "{text}"
    );
    // The accepted version is also what the adapters directory now holds.
    assert_eq!(
        std::fs::read(dir.join("adapters/wechat-v2.wasm")).unwrap(),
        std::fs::read(workspace().join("target/test-components/wechat-v2-next.wasm")).unwrap()
    );
}

#[test]
fn adapter_call_names_its_own_flag_when_egress_refuses_a_local_provider() {
    payhost(&["adapter", "build", "adapters"]);
    let dir = workspace()
        .join("target")
        .join("host-tests")
        .join(format!("call-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.json");
    let input = dir.join("input.json");
    // Nothing listens on the discard port: the refusal comes first.
    std::fs::write(
        &config,
        r#"{"appid":"wxd678efh567hg6787","mch_id":"1230000109","api_key":"0123456789abcdef0123456789abcdef","base_url":"http://127.0.0.1:9"}"#,
    )
    .unwrap();
    std::fs::write(
        &input,
        r#"{"merchant_order_no":"CALL000001","amount":{"minor":100,"currency":"CNY"},"description":"Tea",
            "method":"wechat_mini_program","payer":{"app_id":"wxd678efh567hg6787","openid":"o-1","client_ip":"203.0.113.7"},
            "expires_at":null,"attach":null}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_payhost"))
        .args([
            "adapter",
            "call",
            "target/components/wechat-v2.wasm",
            "unified-order",
        ])
        .args(["--config", config.to_str().unwrap(), "--secret", "api_key"])
        .args(["--input", input.to_str().unwrap()])
        .current_dir(workspace())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    // The runtime names the configuration's setting, the command its flag.
    assert!(
        stderr.contains("`[egress] allow_private = true`"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-private"), "{stderr}");
    assert!(
        !stderr.contains("0123456789abcdef0123456789abcdef"),
        "{stderr}"
    );
}

#[test]
fn sigterm_answers_the_request_in_flight_then_exits_cleanly() {
    use std::io::{Read, Write};
    let (mut server, url, dir, logs) = serve("cli-sigterm");
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    // An upload whose body is half sent when the signal comes.
    let body = std::fs::read(dir.join("adapters/wechat-v2.wasm")).unwrap();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "PUT /admin/adapters/wechat-v2 HTTP/1.1\r\nhost: payhost\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         content-type: application/wasm\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.write_all(&body[..body.len() / 2]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "payhost exited with a request in flight"
    );
    conn.write_all(&body[body.len() / 2..]).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 "), "{answer:?}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "payhost did not exit");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let logs = logs.join().unwrap();
    assert!(status.success(), "{status:?}\n{logs}");
    assert!(logs.contains("SIGTERM"), "{logs}");
}
