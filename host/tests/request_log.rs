//! `payhost serve --log-format json` as an operator runs it: one JSON line
//! per request with its id, merchant, route template, status and latency,
//! and no credential anywhere in the output.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn payhost() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payhost"));
    cmd.current_dir(workspace()).env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("PAYHOST_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Kills the server when the test ends, however it ends.
struct Server(std::process::Child);
impl Server {
    /// Stops the server and returns everything it wrote to standard error.
    fn stop(&mut self) -> String {
        let _ = self.0.kill();
        let mut logs = String::new();
        if let Some(mut err) = self.0.stderr.take() {
            err.read_to_string(&mut logs).unwrap();
        }
        let _ = self.0.wait();
        logs
    }
}
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn json_logs_one_line_per_request_without_credentials() {
    let build = payhost()
        .args(["adapter", "build", "adapters"])
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let dir = workspace()
        .join("target")
        .join("host-tests")
        .join(format!("request-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("payhost.toml");
    // Port 0: the server prints the address it got.
    let init = payhost()
        .args([
            "config",
            "init",
            config.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let printed = String::from_utf8_lossy(&init.stdout).into_owned();
    let key = {
        let mut lines = printed.lines();
        lines.find(|l| l.contains("API key")).unwrap();
        lines.next().unwrap().trim().to_string()
    };
    let token = std::fs::read_to_string(dir.join("payhost-secrets/admin_token")).unwrap();

    let mut server = Server(
        payhost()
            .args([
                "serve",
                "--config",
                config.to_str().unwrap(),
                "--log-format",
                "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(server.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();

    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for (path, bearer, status) in [
        ("/v1/payments/NO-SUCH-ORDER", key.as_str(), 404),
        ("/v1/payments/NO-SUCH-ORDER", "sk_wrong_key_do_not_log", 401),
        ("/admin/adapters", token.as_str(), 200),
    ] {
        let resp = http
            .get(format!("{base}{path}"))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
        ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    // The line is written before the answer leaves, so it is there once
    // the answer arrived; stopping the server closes its standard error.
    drop(stdout);
    let logs = server.stop();

    for secret in [key.as_str(), "sk_wrong_key_do_not_log", token.as_str()] {
        assert!(!logs.contains(secret), "a credential was logged:\n{logs}");
    }
    let requests: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v: &serde_json::Value| v["target"] == "payhost::request")
        .collect();
    assert_eq!(requests.len(), 3, "{logs}");
    let expected = [
        ("shop-1", "/v1/payments/{merchant_order_no}", 404),
        ("-", "/v1/payments/{merchant_order_no}", 401),
        ("-", "/admin/adapters", 200),
    ];
    for ((line, id), (merchant, route, status)) in requests.iter().zip(&ids).zip(expected) {
        assert_eq!(line["request_id"], id.as_str(), "{line}");
        assert_eq!(line["merchant"], merchant, "{line}");
        assert_eq!(line["route"], route, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["method"], "GET", "{line}");
        assert!(
            line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{line}"
        );
    }
}
