//! `payhost adapter check` as an author runs it: the exit status a build
//! script can rely on, the table, `--json`, and a component that does not
//! even load.

use std::path::PathBuf;
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn payhost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_payhost"))
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("running payhost")
}

/// Builds `dir`'s crates into `target/<out>` and answers that directory.
fn build(dir: &str, out: &str) -> PathBuf {
    let out_dir = workspace().join("target").join(out);
    let o = payhost(&["adapter", "build", dir, "--out", out_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out_dir
}

#[test]
fn a_conforming_adapter_exits_0_and_a_broken_one_1() {
    let adapters = build("adapters", "components");
    let guests = build("tests/guests", "test-components");
    let path = |dir: &PathBuf, name: &str| dir.join(format!("{name}.wasm")).display().to_string();

    let ok = payhost(&["adapter", "check", &path(&adapters, "wechat-v2")]);
    let table = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{table}");
    assert!(table.starts_with("adapter wechat-v2 "), "{table}");
    assert!(
        table.contains("query/garbage") && table.ends_with("conformance: passed\n"),
        "{table}"
    );

    let json = payhost(&[
        "adapter",
        "check",
        "--json",
        &path(&guests, "garbage-trusting"),
    ]);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["unified-order[qr]/garbage"]);

    let foreign = payhost(&["adapter", "check", &path(&guests, "foreign-import")]);
    assert_eq!(foreign.status.code(), Some(1));
    let out = String::from_utf8_lossy(&foreign.stdout);
    assert!(
        out.starts_with("load  fail") && out.contains("evil:exfil/net"),
        "{out}"
    );

    // WASI sockets are not linked: refused at load, naming the import.
    let sockets = payhost(&["adapter", "check", &path(&guests, "wasi-sockets")]);
    assert_eq!(sockets.status.code(), Some(1));
    let out = String::from_utf8_lossy(&sockets.stdout);
    assert!(
        out.starts_with("load  fail") && out.contains("wasi:sockets/network"),
        "{out}"
    );

    // A wechat-v2 whose API key is declared text: describe names it.
    let plain = payhost(&["adapter", "check", &path(&guests, "wechat-v2-plainkey")]);
    assert_eq!(plain.status.code(), Some(1));
    let out = String::from_utf8_lossy(&plain.stdout);
    assert!(
        out.lines().any(|l| l.starts_with("describe ")
            && l.contains("fail")
            && l.contains("field `api_key` looks like a secret but is declared text")),
        "{out}"
    );
}
