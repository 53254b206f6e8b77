//! The OpenAPI document tells the truth: schemathesis (from PyPI, pinned)
//! fuzzes every documented operation of a running payhost -- merchant key,
//! the WeChat Pay v2 simulator behind it -- with `--checks all`, and finds
//! nothing. The test installs schemathesis itself, into a virtual
//! environment under `target/`; an install that fails twice fails the test.
//!
//! Also here: a webhook's `data` is the same `Payment` the API answers.

use payhost::resources::{EventData, Payment, Refund};
use payhost::webhooks::WebhookEvent;
use payhost_e2e::front::{Front, MERCHANT_KEY, Options, WEBHOOK_SECRET};
use payhost_e2e::workspace;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The schemathesis release the test runs; bump it deliberately.
const SCHEMATHESIS: &str = "4.32.5";
/// How long one install attempt may take (a cold pip download).
const INSTALL_LIMIT: Duration = Duration::from_secs(300);
/// The admin token of the fuzzed server (`PAYHOST_FUZZ_ADMIN_TOKEN` in
/// tests/e2e/schemathesis.toml).
const ADMIN_TOKEN: &str = "adm_fuzz_4bT9qz";
/// How long the fuzz run may take before it counts as hung.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// Runs `cmd` with its output in `log`, killing it after `limit`.
fn run_logged(cmd: &mut Command, log: &Path, limit: Duration) -> Result<(), String> {
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return if status.success() {
                Ok(())
            } else {
                Err(format!("{cmd:?} exited with {status}"))
            };
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd:?} did not finish within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// The schemathesis executable, installed on first use.
fn schemathesis() -> PathBuf {
    let venv = workspace()
        .join("target")
        .join(format!("schemathesis-{SCHEMATHESIS}"));
    let bin = venv.join("bin").join("schemathesis");
    let installed = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(SCHEMATHESIS));
    if installed {
        return bin;
    }
    let log = workspace().join("target").join("schemathesis-install.log");
    let mut failures = Vec::new();
    for attempt in 1..=2 {
        let _ = std::fs::remove_dir_all(&venv);
        let result = run_logged(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            &log,
            INSTALL_LIMIT,
        )
        .and_then(|()| {
            run_logged(
                Command::new(venv.join("bin").join("pip"))
                    .args(["install", "--disable-pip-version-check", "--quiet"])
                    .arg(format!("schemathesis=={SCHEMATHESIS}")),
                &log,
                INSTALL_LIMIT,
            )
        });
        match result {
            Ok(()) => return bin,
            Err(e) => failures.push(format!("attempt {attempt}: {e}\n{}", tail(&log))),
        }
    }
    panic!(
        "cannot install schemathesis {SCHEMATHESIS} from PyPI into {} (python3 -m venv, then pip); \
         this test needs python3 with venv and access to PyPI:\n{}",
        venv.display(),
        failures.join("\n")
    );
}

/// A private adapters directory holding the built wechat-v2.
fn adapters_copy() -> PathBuf {
    let dir = payhost_e2e::temp_dir("openapi-fuzz-adapters");
    let built = payhost_e2e::components_dir().join("wechat-v2.wasm");
    std::fs::copy(&built, dir.join("wechat-v2.wasm")).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing() {
    let bin = tokio::task::spawn_blocking(schemathesis).await.unwrap();
    let f = Front::start(
        "openapi-fuzz",
        Options {
            // The fuzzer creates many orders; rates are not under test here.
            limits: "create_per_min = 100000\nquery_per_min = 100000\nrefund_per_min = 100000"
                .into(),
            admin_token: Some(ADMIN_TOKEN.into()),
            // Uploads the fuzzer makes must not touch the shared build output.
            adapters_dir: Some(adapters_copy()),
            ..Options::default()
        },
    )
    .await;
    let out = workspace().join("target").join("schemathesis-run");
    std::fs::create_dir_all(&out).unwrap();
    let log = out.join("output.txt");
    let junit = out.join("junit.xml");
    let _ = std::fs::remove_file(&junit);
    let mut cmd = Command::new(&bin);
    // Its working files (a `.schemathesis` cache) go under target/.
    cmd.current_dir(&out)
        .env("PAYHOST_FUZZ_ADMIN_TOKEN", ADMIN_TOKEN)
        .arg("--config-file")
        .arg(workspace().join("tests/e2e/schemathesis.toml"))
        .arg("--no-color")
        .arg("run")
        .arg(f.url("/openapi.json"))
        .args(["--checks", "all"])
        .args(["--header", &format!("Authorization: Bearer {MERCHANT_KEY}")])
        // Bounded and reproducible: a fixed seed (PAYHOST_FUZZ_SEED tries
        // another), 100 examples per operation, one worker (two cores are
        // shared with payhost): about 35 s.
        .args(["--max-examples", "100", "--workers", "1"])
        .args([
            "--seed",
            &std::env::var("PAYHOST_FUZZ_SEED").unwrap_or("9".into()),
        ])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "20"])
        .args(["--report", "junit"])
        .arg("--report-junit-path")
        .arg(&junit);
    let result = tokio::task::spawn_blocking({
        let log = log.clone();
        move || run_logged(&mut cmd, &log, RUN_LIMIT)
    })
    .await
    .unwrap();
    let report = std::fs::read_to_string(&junit).unwrap_or_default();
    assert!(
        result.is_ok(),
        "schemathesis found failures ({}):\n{}\n(full output: {})",
        result.unwrap_err(),
        tail(&log),
        log.display()
    );
    // It did test the operations: the report lists one case per operation.
    let tests: usize = report
        .split("tests=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(tests >= 15, "only {tests} operations tested:\n{report}");
    // And payhost served them: creates reached the simulator.
    assert!(
        !f.sim.requests().is_empty(),
        "no fuzzed create reached the provider"
    );
}

/// `value` has every required member of components.schemas.`name` and no
/// member it does not declare.
fn conforms(doc: &serde_json::Value, name: &str, value: &serde_json::Value) {
    let schema = &doc["components"]["schemas"][name];
    let declared = schema["properties"].as_object().expect(name);
    let members = value
        .as_object()
        .unwrap_or_else(|| panic!("{name}: {value}"));
    for required in schema["required"].as_array().into_iter().flatten() {
        let required = required.as_str().unwrap();
        assert!(
            members.contains_key(required),
            "{name}.{required} missing: {value}"
        );
    }
    for member in members.keys() {
        assert!(declared.contains_key(member), "{name}.{member} undeclared");
    }
}

#[tokio::test]
async fn a_webhook_carries_the_payment_the_api_answers() {
    let f = Front::start("openapi-shape", Options::default()).await;
    assert_eq!(
        f.create("SHAPE-0001", 1999).await.status(),
        reqwest::StatusCode::CREATED
    );
    let answers = f
        .sim
        .notify("SHAPE-0001", Default::default())
        .await
        .unwrap();
    assert!(answers[0].acknowledged(), "{answers:?}");
    f.eventually("the payment.paid webhook", || {
        !f.receiver.accepted().is_empty()
    })
    .await;
    let delivery = f.receiver.accepted()[0].clone();
    let secret = secrecy::SecretString::from(WEBHOOK_SECRET.to_string());
    payhost::webhooks::verify(&secret, &delivery.headers, &delivery.body).unwrap();

    // One type parses all three: the webhook, the API answer, /v1/events.
    let event: WebhookEvent = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(event.kind, "payment.paid");
    let data: EventData = serde_json::from_value(event.data.clone()).unwrap();
    let answered: Payment =
        serde_json::from_value(f.get_json("/v1/payments/SHAPE-0001").await).unwrap();
    assert_eq!(data.payment, answered, "field for field");
    assert_eq!(data.payment.amount, 1999);
    assert!(data.payment.paid_at.is_some());
    assert_eq!(data.paid_after_close, Some(false));

    let listed = f.get_json("/v1/events").await;
    let item = &listed["events"][0];
    assert_eq!(item["event_id"], event.id.as_str());
    assert_eq!(item["data"], event.data);
    // The envelope's time, in the same format, in both places.
    assert_eq!(
        item["created_at"],
        serde_json::to_value(event.created_at).unwrap()
    );
    assert!(item["created_at"].as_str().unwrap().ends_with('Z'));
    // As the document says (the fuzzer never pays, so it sees no events).
    let doc = f.get_json("/openapi.json").await;
    let delivered: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
    for (schema, value) in [
        ("EventView", item),
        ("Delivery", &item["delivery"]),
        ("WebhookEvent", &delivered),
        ("EventData", &delivered["data"]),
        ("Payment", &delivered["data"]["payment"]),
    ] {
        conforms(&doc, schema, value);
    }

    // A refund: the webhook's `refund` is the refund the API answers, its
    // `payment` the payment.
    let r = f
        .as_merchant(reqwest::Method::POST, "/v1/payments/SHAPE-0001/refunds")
        .json(&serde_json::json!({ "refund_no": "SHAPE-0001-R1", "amount": 500 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let answers = f
        .sim
        .notify_refund("SHAPE-0001-R1", Default::default())
        .await
        .unwrap();
    assert!(answers[0].acknowledged(), "{answers:?}");
    f.eventually("the refund.succeeded webhook", || {
        f.receiver.accepted().len() >= 2
    })
    .await;
    let event: WebhookEvent = serde_json::from_slice(&f.receiver.accepted()[1].body).unwrap();
    assert_eq!(event.kind, "refund.succeeded");
    let data: EventData = serde_json::from_value(event.data).unwrap();
    let refund: Refund = serde_json::from_value(
        f.get_json("/v1/payments/SHAPE-0001/refunds/SHAPE-0001-R1")
            .await,
    )
    .unwrap();
    assert_eq!(data.refund.as_ref(), Some(&refund));
    assert_eq!(refund.amount, 500);
    let answered: Payment =
        serde_json::from_value(f.get_json("/v1/payments/SHAPE-0001").await).unwrap();
    assert_eq!(data.payment, answered);
    assert_eq!(answered.refunded_amount, 500);
}
