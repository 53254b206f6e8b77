//! JavaScript adapters: the SDK's and the adapters' own unit tests under
//! `node --test`, so they are part of `cargo test --workspace`. (The built
//! 2paynow-js component goes through `adapter check` in adapter_check.rs
//! and through the 2paynow end-to-end scenarios in twopaynow.rs.)

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every `*.test.js` file under `dir`'s `test/` directory.
fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("test"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.js"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_js_sdk_and_js_adapters_pass_their_node_tests() {
    payhost::builder::ensure_node().expect("node and npm");
    let ws = payhost_e2e::workspace();
    let mut files = test_files(&ws.join("sdk-js"));
    let sdk_files = files.len();
    files.extend(test_files(&ws.join("adapters/2paynow-js")));
    assert!(sdk_files >= 5 && files.len() > sdk_files, "{files:?}");
    let out = Command::new("node")
        .arg("--test")
        .args(&files)
        .current_dir(&ws)
        .output()
        .expect("running node --test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // TAP's summary: something ran, nothing failed.
    let count = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# {key} ")))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no `# {key}` in\n{stdout}"))
    };
    assert!(count("pass") >= 30, "{stdout}");
    assert_eq!(count("fail"), 0, "{stdout}");
}
