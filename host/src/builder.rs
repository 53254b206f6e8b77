//! `payhost adapter build`: compiles adapter crates to WebAssembly
//! components.
//!
//! One cargo invocation builds every crate for `wasm32-unknown-unknown`
//! with the workspace's `adapter` profile into `<workspace>/target/wasm`
//! (a target dir of its own, so it can run inside `cargo test` without
//! waiting on the outer build's lock); each core module is then wrapped
//! into a component with `wit-component` and written atomically to the
//! output directory. Cargo makes the compile incremental; the wrap is
//! skipped when the component is newer than its module.
//!
//! A directory with a `package.json` declaring `"payhost": {"lang": "js"}`
//! is a JavaScript adapter instead, built with componentize-js ([`js`]).

mod js;

pub use js::ensure_node;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TARGET: &str = "wasm32-unknown-unknown";
const DEBIAN_PACKAGES: &str =
    "apt-get update && apt-get install -y rustc-web cargo-web rust-web-src lld-19";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_WASM_LD: &str = "/usr/lib/llvm-19/bin/wasm-ld";

/// Variables cargo sets for the process that runs cargo again (a build
/// script or test): they describe that build, not the inner one.
pub const OUTER_CARGO_VARS: [&str; 5] = [
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_MAKEFLAGS",
];

/// What to build and where.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The cargo workspace holding the adapter crates.
    pub workspace: PathBuf,
    /// Directories (relative to `workspace` unless absolute) whose
    /// subdirectories with a `Cargo.toml` are adapter crates.
    pub dirs: Vec<PathBuf>,
    /// Where `<slot>.wasm` components are written.
    pub out_dir: PathBuf,
    /// Where cargo compiles (default: `<workspace>/target/wasm` of each
    /// crate's workspace). Workspaces may share one, so that dependencies
    /// they have in common compile once.
    pub target_dir: Option<PathBuf>,
    /// Where JavaScript toolchains and kept builds go (default:
    /// `<workspace>/target/js`). Shared, a toolchain installs once.
    pub js_dir: Option<PathBuf>,
}

/// One component produced by [`build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The adapter's slot: `[package.metadata.payhost] slot`, else the
    /// package name (also the file stem).
    pub name: String,
    pub path: PathBuf,
    /// Size of the component in bytes.
    pub bytes: u64,
}

/// Whether `dir` is a JavaScript adapter (a package.json declaring one).
/// Standing alone, outside any cargo workspace, it is its own root: its
/// components go to its `target/`.
pub fn is_js_adapter(dir: &Path) -> bool {
    js::discover(dir).is_ok_and(|a| a.is_some())
}

/// The workspace root above `start`: the nearest `Cargo.toml` with a
/// `[workspace]` table.
pub fn find_workspace(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|d| {
        let text = std::fs::read_to_string(d.join("Cargo.toml")).ok()?;
        text.lines()
            .any(|l| l.trim() == "[workspace]")
            .then(|| d.to_path_buf())
    })
}

/// Builds every adapter crate found under `opts.dirs`: a crate outside
/// `opts.workspace` (one with a `[workspace]` of its own, as `adapter new`
/// writes outside a checkout) is built in its own workspace.
pub fn build(opts: &BuildOptions) -> Result<Vec<Built>> {
    let (crates, scripts) = discover(opts)?;
    if crates.is_empty() && scripts.is_empty() {
        bail!(
            "no adapters (a directory with a Cargo.toml or a package.json with `payhost.lang`, or subdirectories with one) in {:?}",
            opts.dirs
        );
    }
    let mut workspaces: Vec<(PathBuf, Vec<AdapterCrate>)> = Vec::new();
    for c in crates {
        let ws = find_workspace(&c.dir).unwrap_or_else(|| opts.workspace.clone());
        match workspaces.iter_mut().find(|(w, _)| *w == ws) {
            Some((_, list)) => list.push(c),
            None => workspaces.push((ws, vec![c])),
        }
    }
    let mut built = Vec::new();
    for (workspace, crates) in &workspaces {
        built.extend(build_in(opts, workspace, crates)?);
    }
    built.extend(js::build(
        &opts.workspace,
        &scripts,
        &opts.out_dir,
        opts.js_dir.as_deref(),
    )?);
    Ok(built)
}

/// One cargo invocation for the crates of one workspace, then the wrap.
fn build_in(opts: &BuildOptions, workspace: &Path, crates: &[AdapterCrate]) -> Result<Vec<Built>> {
    let target_dir = opts
        .target_dir
        .clone()
        .unwrap_or_else(|| workspace.join("target").join("wasm"));
    // Several builds at once (parallel tests) must not run rustup or apt
    // side by side: concurrent `rustup target add` calls fail each other.
    std::fs::create_dir_all(&target_dir)?;
    let lock = std::fs::File::create(target_dir.join(".toolchain.lock"))?;
    lock.lock().context("locking the toolchain check")?;
    let toolchain = ensure_toolchain()?;
    drop(lock);
    let mut cmd = match &toolchain {
        Toolchain::Rustup => {
            Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        }
        Toolchain::Debian => {
            let mut c = Command::new(DEBIAN_CARGO);
            c.env("RUSTC", DEBIAN_RUSTC)
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", DEBIAN_WASM_LD);
            c
        }
    };
    cmd.current_dir(workspace)
        .args([
            "build",
            "--profile",
            "adapter",
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(&target_dir);
    if toolchain == Toolchain::Debian {
        cmd.arg("-Zbuild-std=std,panic_abort");
    }
    for c in crates {
        cmd.args(["-p", &c.package]);
    }
    for var in OUTER_CARGO_VARS {
        cmd.env_remove(var);
    }
    let status = cmd.status().context("running cargo to build adapters")?;
    if !status.success() {
        bail!("cargo build of adapters failed ({status})");
    }

    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("creating {}", opts.out_dir.display()))?;
    let mut built = Vec::new();
    for AdapterCrate {
        package,
        slot: name,
        ..
    } in crates
    {
        let module = target_dir
            .join(TARGET)
            .join("adapter")
            .join(format!("{}.wasm", package.replace('-', "_")));
        let out = opts.out_dir.join(format!("{name}.wasm"));
        if !is_newer(&out, &module) {
            let core = std::fs::read(&module)
                .with_context(|| format!("reading core module {}", module.display()))?;
            let component = wit_component::ComponentEncoder::default()
                .validate(true)
                .module(&core)
                .and_then(|e| e.encode())
                .with_context(|| format!("encoding {name} as a component"))?;
            crate::runtime::write_atomic(&out, &component)
                .with_context(|| format!("writing {}", out.display()))?;
        }
        let bytes = std::fs::metadata(&out)?.len();
        println!("{name}: {bytes} bytes -> {}", out.display());
        built.push(Built {
            name: name.clone(),
            path: out,
            bytes,
        });
    }
    Ok(built)
}

/// An adapter crate found by [`discover`].
struct AdapterCrate {
    dir: PathBuf,
    package: String,
    slot: String,
}

/// Each dir that is an adapter itself, and every adapter directly under
/// the other dirs: Rust crates and JavaScript packages.
fn discover(opts: &BuildOptions) -> Result<(Vec<AdapterCrate>, Vec<js::JsAdapter>)> {
    let mut crates = Vec::new();
    let mut scripts: Vec<js::JsAdapter> = Vec::new();
    // (what builds it, slot), to refuse two adapters for one slot.
    let mut seen: Vec<(String, String)> = Vec::new();
    for dir in &opts.dirs {
        let dir = if dir.is_absolute() {
            dir.clone()
        } else {
            opts.workspace.join(dir)
        };
        let is_adapter = std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|m| names(&m).is_some())
            || js::discover(&dir)?.is_some();
        let mut entries: Vec<_> = if is_adapter {
            vec![dir.clone()]
        } else {
            std::fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        };
        entries.sort();
        for path in entries {
            let (label, slot) = if path.join("Cargo.toml").is_file() {
                let manifest = std::fs::read_to_string(path.join("Cargo.toml"))?;
                let (package, slot) = names(&manifest).with_context(|| {
                    format!("no [package] name in {}", path.join("Cargo.toml").display())
                })?;
                crates.push(AdapterCrate {
                    dir: path.clone(),
                    package: package.clone(),
                    slot: slot.clone(),
                });
                (format!("crate `{package}`"), slot)
            } else if let Some(script) = js::discover(&path)? {
                let slot = script.slot.clone();
                scripts.push(script);
                (format!("package {}", path.display()), slot)
            } else {
                continue;
            };
            if let Some(other) = seen.iter().find(|(_, s)| *s == slot) {
                bail!(
                    "{} and {label} both build the adapter slot `{slot}`",
                    other.0
                );
            }
            seen.push((label, slot));
        }
    }
    Ok((crates, scripts))
}

/// The manifest's package name and the adapter's slot. Cargo forbids a
/// package name such as `2paynow`, so a crate may name its slot in
/// `[package.metadata.payhost] slot`.
fn names(manifest: &str) -> Option<(String, String)> {
    let doc: toml::Table = toml::from_str(manifest).ok()?;
    let package = doc.get("package")?;
    let name = package.get("name")?.as_str()?.to_string();
    let slot = package
        .get("metadata")
        .and_then(|m| m.get("payhost"))
        .and_then(|p| p.get("slot"))
        .and_then(|s| s.as_str())
        .map_or_else(|| name.clone(), String::from);
    Some((name, slot))
}

fn is_newer(out: &Path, input: &Path) -> bool {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((mtime(out), mtime(input)), (Some(o), Some(i)) if o > i)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Toolchain {
    Rustup,
    Debian,
}

/// Makes sure a toolchain that can build `wasm32-unknown-unknown` exists:
/// rustup's target if possible, otherwise Debian's rustc-web packages.
fn ensure_toolchain() -> Result<Toolchain> {
    let forced = std::env::var("PAYHOST_WASM_TOOLCHAIN").is_ok_and(|v| v == "debian");
    if !forced {
        match ensure_rustup_target() {
            Ok(true) => return Ok(Toolchain::Rustup),
            Ok(false) => {}
            Err(e) => eprintln!(
                "payhost: rustup could not add {TARGET} ({e:#}); trying Debian's toolchain"
            ),
        }
    }
    ensure_debian_toolchain()?;
    Ok(Toolchain::Debian)
}

/// `Ok(false)`: no rustup here. `Ok(true)`: the target is installed.
fn ensure_rustup_target() -> Result<bool> {
    let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(false);
    };
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(true);
    }
    let mut last = None;
    for _attempt in 0..2 {
        let mut cmd = Command::new("rustup");
        cmd.args(["target", "add", TARGET]);
        match run_with_timeout(cmd, Duration::from_secs(120)) {
            Ok(()) => return Ok(true),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("rustup target add failed")))
}

fn ensure_debian_toolchain() -> Result<()> {
    let present = || {
        Path::new(DEBIAN_RUSTC).exists()
            && Path::new(DEBIAN_WASM_LD).exists()
            && Path::new("/usr/lib/rustlib/src/rust/library").exists()
    };
    if present() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let is_debian = Path::new("/etc/debian_version").exists();
    if !(is_root && is_debian) {
        bail!(
            "no toolchain for {TARGET}: install rustup's target (`rustup target add {TARGET}`) or, on Debian, run as root: {DEBIAN_PACKAGES}"
        );
    }
    let mut update = Command::new("apt-get");
    update.arg("update");
    run_with_timeout(update, Duration::from_secs(600))?;
    let mut install = Command::new("apt-get");
    install
        .args([
            "install",
            "-y",
            "rustc-web",
            "cargo-web",
            "rust-web-src",
            "lld-19",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive");
    run_with_timeout(install, Duration::from_secs(1200)).with_context(|| {
        format!("installing Debian's toolchain failed; run it by hand: {DEBIAN_PACKAGES}")
    })?;
    if !present() {
        bail!(
            "Debian's toolchain is still incomplete after installation; check: {DEBIAN_PACKAGES}"
        );
    }
    Ok(())
}

pub(crate) fn run_with_timeout(mut cmd: Command, limit: Duration) -> Result<()> {
    let mut child = cmd
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return if status.success() {
                Ok(())
            } else {
                Err(anyhow::anyhow!("{cmd:?} failed ({status})"))
            };
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_package_name_and_slot() {
        let m = "[package]\nname = \"wechat-v2\"\nversion = \"1\"\n[dependencies]\nname = \"x\"\n";
        let both = |n: &str| Some((n.to_string(), n.to_string()));
        assert_eq!(names(m), both("wechat-v2"));
        assert_eq!(names("[lib]\nname = \"x\"\n"), None);
        let m = "[package]\nname = \"twopaynow\"\n[package.metadata.payhost]\nslot = \"2paynow\"\n";
        assert_eq!(names(m), Some(("twopaynow".into(), "2paynow".into())));
    }
}
