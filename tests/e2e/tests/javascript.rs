//! JavaScript adapters: the SDK's and every JS adapter's own unit tests under
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
    // Every JavaScript adapter of the checkout, as `adapter new --lang js` adds them.
    let mut packages: Vec<PathBuf> = std::fs::read_dir(ws.join("adapters"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| payhost::builder::is_js_adapter(d))
        .collect();
    packages.sort();
    assert!(
        packages.iter().any(|p| p.ends_with("2paynow-js")),
        "{packages:?}"
    );
    for package in &packages {
        files.extend(test_files(package));
    }
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

/// Copies the files of `from` into `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let path = e.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn a_javascript_scaffold_inside_a_checkout_passes_its_node_tests_against_sdk_js() {
    payhost::builder::ensure_node().expect("node and npm");
    // A checkout-shaped copy (the real checkout must not be written to):
    // the workspace manifest, the SDK crate's manifest and sdk-js.
    let ws = payhost_e2e::workspace();
    let root = payhost_e2e::temp_dir("js-in-checkout");
    std::fs::create_dir_all(root.join("sdk")).unwrap();
    std::fs::create_dir_all(root.join("adapters")).unwrap();
    std::fs::copy(ws.join("Cargo.toml"), root.join("Cargo.toml")).unwrap();
    std::fs::copy(ws.join("sdk/Cargo.toml"), root.join("sdk/Cargo.toml")).unwrap();
    copy_tree(&ws.join("sdk-js"), &root.join("sdk-js"));
    let created = payhost::scaffold::create(
        "acme-in-checkout-js",
        payhost::scaffold::Lang::Js,
        &root.join("adapters"),
    )
    .unwrap();
    assert_eq!(created.layout, payhost::scaffold::Layout::Workspace);
    let out = Command::new("node")
        .args(["--test", "test/"])
        .current_dir(&created.path)
        .output()
        .expect("running node --test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("\n# fail 0"),
        "node --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("\"adapters/2paynow-js\", \"adapters/acme-in-checkout-js\"]"),
        "{manifest}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}
