//! From `payhost adapter new` to a served payment, with no host change, in
//! Rust and in JavaScript: the adapter is scaffolded in a temporary
//! directory outside the repository, its own unit tests run there (`cargo
//! test`, `node --test`), `payhost adapter build` and `payhost adapter
//! check` run on it as an author runs them, and the component is uploaded
//! to a running payhost through the admin API. A merchant configured for the new slot then creates orders
//! against a scripted Acme Pay on loopback, which checks every signature:
//! paid by notification and by query, refunded and settled by the refund
//! notification; a forged notification changes nothing.

use payhost::cli::Cli;
use payhost_e2e::front::{Front, Options};
use payhost_simulators::acme_pay::{SimConfig, Simulator, send_notification};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const SLOT: &str = "acme-pay";
const JS_SLOT: &str = "acme-pay-js";
const MERCHANT_ID: &str = "M-ACME-1";
const ACME_KEY: &str = "acme-test-key-5f0c2b9e";
const API_KEY: &str = "pk_test_shop_acme_81d2";
const ADMIN_TOKEN: &str = "admin-token-scaffold-test";

/// Runs one `payhost` command line in process, as the binary would.
fn payhost(args: &[&str]) -> ExitCode {
    use clap::Parser;
    let cli = Cli::try_parse_from(std::iter::once("payhost").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("payhost {args:?}: {e}"));
    payhost::cli::run(cli).unwrap_or_else(|e| panic!("payhost {args:?}: {e:#}"))
}

/// A directory outside the repository, fresh for this process and test.
fn outside_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("payhost-scaffold-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(
        !dir.starts_with(payhost_e2e::workspace()),
        "{} is inside the repository",
        dir.display()
    );
    dir
}

/// `cargo test` in the scaffolded crate, unchanged. It compiles in the
/// workspace's wasm target dir (not the outer `cargo test`'s, whose lock
/// is held while tests run), so reruns are incremental.
fn cargo_test(crate_dir: &Path, target_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(crate_dir)
        .args(["test", "--quiet", "--target-dir"])
        .arg(target_dir);
    for var in payhost::builder::OUTER_CARGO_VARS {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("running cargo test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo test of the scaffold failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test result: ok"), "{stdout}");
}

async fn notify(url: &str, body: String) -> (u16, String) {
    send_notification(url, body).await.unwrap()
}

async fn api(f: &Front, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    f.call_as(API_KEY, method, path, body).await
}

fn order(no: &str) -> Value {
    json!({"merchant_order_no": no, "amount": 1999, "currency": "EUR",
           "description": "Two coffees", "method": "wechat_native",
           "payer": {"client_ip": "203.0.113.7"}})
}

#[test]
fn a_scaffolded_adapter_is_built_checked_uploaded_and_serves_payments() {
    let ws = payhost_e2e::workspace();
    // The shared components first (shop-1's wechat-v2), then the same
    // wasm target dir for the scaffold: common dependencies compile once.
    let components = payhost_e2e::components_dir();
    let wasm_target = ws.join("target").join("wasm");
    let dir = outside_dir("rust");
    let dir_arg = dir.to_str().unwrap();
    assert_eq!(
        payhost(&["adapter", "new", SLOT, "--dir", dir_arg]),
        ExitCode::SUCCESS
    );
    let crate_dir = dir.join(SLOT);
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(
        !manifest.contains(ws.to_str().unwrap()),
        "the scaffold must not name the repository"
    );
    // A second `new` at the same place is refused, and changes nothing.
    assert!(
        payhost::scaffold::create(SLOT, payhost::scaffold::Lang::Rust, &dir).is_err(),
        "an existing crate is never overwritten"
    );

    cargo_test(&crate_dir, &wasm_target);
    let crate_arg = crate_dir.to_str().unwrap();
    let target_arg = wasm_target.to_str().unwrap();
    assert_eq!(
        payhost(&["adapter", "build", crate_arg, "--target-dir", target_arg]),
        ExitCode::SUCCESS
    );
    let component = crate_dir
        .join("target")
        .join("components")
        .join(format!("{SLOT}.wasm"));
    assert_eq!(
        payhost(&["adapter", "check", component.to_str().unwrap()]),
        ExitCode::SUCCESS,
        "adapter check must pass on a fresh scaffold"
    );
    let bytes = std::fs::read(&component).unwrap();

    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(serve(&components, SLOT, bytes));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `node --test` in the scaffolded package, unchanged.
fn node_test(package: &Path) {
    payhost::builder::ensure_node().expect("node and npm");
    let out = std::process::Command::new("node")
        .args(["--test", "test/"])
        .current_dir(package)
        .output()
        .expect("running node --test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test of the scaffold failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\n# fail 0"), "{stdout}");
    assert!(!stdout.contains("\n# pass 0"), "{stdout}");
}

#[test]
fn a_scaffolded_javascript_adapter_is_built_checked_uploaded_and_serves_payments() {
    let ws = payhost_e2e::workspace();
    let components = payhost_e2e::components_dir();
    let dir = outside_dir("js");
    let dir_arg = dir.to_str().unwrap();
    assert_eq!(
        payhost(&["adapter", "new", JS_SLOT, "--lang", "js", "--dir", dir_arg]),
        ExitCode::SUCCESS
    );
    let package = dir.join(JS_SLOT);
    for file in ["package.json", "src/adapter.js", "test/adapter.test.js"] {
        let text = std::fs::read_to_string(package.join(file)).unwrap();
        assert!(
            !text.contains(ws.to_str().unwrap()) && !text.contains("../sdk-js"),
            "{file} must not name the repository"
        );
    }
    assert!(
        payhost::scaffold::create(JS_SLOT, payhost::scaffold::Lang::Js, &dir).is_err(),
        "an existing package is never overwritten"
    );

    node_test(&package);
    // The checkout's componentize-js install (and build cache) is shared:
    // what would be `npm ci` and a compile on a first build only.
    let js_dir = ws.join("target").join("js");
    assert_eq!(
        payhost(&[
            "adapter",
            "build",
            package.to_str().unwrap(),
            "--js-dir",
            js_dir.to_str().unwrap()
        ]),
        ExitCode::SUCCESS
    );
    let component = package
        .join("target")
        .join("components")
        .join(format!("{JS_SLOT}.wasm"));
    // The compiled-component cache the fronts use: the same sources give
    // the same component, so a rerun skips the ~80 s debug-build compile.
    let cache = ws.join("target").join("payhost-cache");
    assert_eq!(
        payhost(&[
            "adapter",
            "check",
            component.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap()
        ]),
        ExitCode::SUCCESS,
        "adapter check must pass on a fresh JavaScript scaffold"
    );
    let bytes = std::fs::read(&component).unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(serve(&components, JS_SLOT, bytes));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Uploads `component` as `slot` to a running payhost and walks Acme Pay
/// orders through it.
async fn serve(components: &Path, slot: &str, component: Vec<u8>) {
    // Acme Pay checks every signature; the test says when payers pay.
    let acme = Simulator::start(SimConfig {
        merchant_id: MERCHANT_ID.into(),
        key: ACME_KEY.into(),
        pay_after: None,
    })
    .await;

    // A running payhost that has never heard of Acme Pay.
    let data = payhost_e2e::temp_dir(&format!("scaffold-{slot}"));
    let adapters = data.join("adapters");
    std::fs::create_dir_all(&adapters).unwrap();
    std::fs::copy(
        components.join("wechat-v2.wasm"),
        adapters.join("wechat-v2.wasm"),
    )
    .unwrap();
    std::fs::write(data.join("acme.key"), ACME_KEY).unwrap();
    let mut f = Front::start(
        &format!("scaffold-{slot}"),
        Options {
            admin_token: Some(ADMIN_TOKEN.into()),
            adapters_dir: Some(adapters),
            data_dir: Some(data.clone()),
            ..Default::default()
        },
    )
    .await;
    let r = f
        .as_admin(Method::PUT, &format!("/admin/adapters/{slot}"))
        .header("content-type", "application/wasm")
        .body(component)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let uploaded: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "upload refused: {uploaded}");
    assert_eq!(uploaded["version"], "0.1.0", "{uploaded}");

    // Merchants are read at start: the operator adds one for the new slot
    // and restarts; the uploaded version is what it loads.
    f.options.extra_toml = format!(
        r#"
[[merchants]]
id = "acme-shop"
api_keys = ["{hash}"]
adapter = "{slot}"
currency = "EUR"
industry = "physical"

[merchants.limits]
cny_rate = "7.8000"

[merchants.config]
merchant_id = "{MERCHANT_ID}"
api_key = "file:{dir}/acme.key"
base_url = "{base}"
"#,
        hash = payhost::config::api_key_hash(API_KEY),
        dir = data.display(),
        base = acme.base_url(),
    );
    let f = f.restart().await;
    let (_, adapters) = {
        let r = f
            .as_admin(Method::GET, "/admin/adapters")
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert!(adapters.to_string().contains(slot), "{adapters}");

    // Paid by notification.
    let (status, p) = api(&f, Method::POST, "/v1/payments", Some(order("ACME1"))).await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["pay_action"]["type"], "qr_code", "{p}");
    assert_eq!(
        p["pay_action"]["text"],
        "https://qr.acme-pay.example/T-ACME1"
    );
    let (notify_url, body) = acme.pay("ACME1").unwrap();
    assert_eq!(notify_url, f.url(&format!("/v1/notify/{slot}/acme-shop")));
    let forged = body.replace("amount=19.99", "amount=0.01");
    assert_eq!(notify(&notify_url, forged).await, (400, "FAIL".into()));
    let (_, p) = api(&f, Method::GET, "/v1/payments/ACME1", None).await;
    assert_eq!(
        p["state"], "pending",
        "a forged notification changes nothing: {p}"
    );
    assert_eq!(notify(&notify_url, body).await, (200, "OK".into()));
    let (_, p) = api(&f, Method::GET, "/v1/payments/ACME1", None).await;
    assert_eq!(p["state"], "paid", "{p}");

    // Paid, found by query.
    let (status, _) = api(&f, Method::POST, "/v1/payments", Some(order("ACME2"))).await;
    assert_eq!(status, 201);
    acme.pay("ACME2").unwrap();
    let (_, p) = api(&f, Method::GET, "/v1/payments/ACME2?refresh=true", None).await;
    assert_eq!(p["state"], "paid", "{p}");

    // Refunded in part, settled by the refund notification.
    let (status, r) = api(
        &f,
        Method::POST,
        "/v1/payments/ACME1/refunds",
        Some(json!({"refund_no": "ACME1R1", "amount": 500})),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["state"], "pending", "{r}");
    let (url, body) = acme.settle_refund("ACME1R1").unwrap();
    assert_eq!(notify(&url, body).await, (200, "OK".into()));
    let (_, r) = api(&f, Method::GET, "/v1/payments/ACME1/refunds/ACME1R1", None).await;
    assert_eq!(r["state"], "succeeded", "{r}");
    let (_, p) = api(&f, Method::GET, "/v1/payments/ACME1", None).await;
    assert_eq!(p["refunded_amount"], 500, "{p}");

    assert_eq!(
        acme.calls(),
        [
            "/v1/orders",
            "/v1/orders",
            "/v1/orders/query",
            "/v1/refunds"
        ],
        "every call reached Acme Pay signed"
    );
}
