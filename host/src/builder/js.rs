//! JavaScript adapters: a directory with a `package.json` whose `payhost`
//! table says `"lang": "js"` is built with componentize-js.
//!
//! The toolchain installs itself: node and npm (Debian's `nodejs` and `npm`
//! when missing, as root), then the adapter's `package-lock.json` with `npm
//! ci` into `target/js/toolchain-<digest>/`, so the source tree gets no
//! `node_modules`. The digest is of the locked dependencies only (not the
//! package's own name and version), so adapters pinning the same versions
//! share one install, wherever they are.
//!
//! The contract is `payhost.wit` of the package.json (relative to it), else
//! the workspace's `wit/adapter.wit`. A component is compiled only when no
//! build of the same sources is kept in `target/js/built/`: the digest
//! covers the entry module and every module it imports by relative path
//! (by their paths relative to each other, so a copy elsewhere hits), the
//! lock, the contract and the build script. One build per slot is kept.

use super::{Built, run_with_timeout};
use anyhow::{Context, Result, bail};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BUILD_SCRIPT: &str = include_str!("componentize.mjs");
/// componentize-js 0.23 runs on node 18.19 (Debian 12) and later.
const MIN_NODE_MAJOR: u32 = 18;
const DEBIAN_NODE: &str = "apt-get update && apt-get install -y nodejs npm";
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(600);
const COMPONENTIZE_TIMEOUT: Duration = Duration::from_secs(600);
/// Most modules one adapter's import graph may hold: the walk reads files
/// named by source text, so it is bounded.
const MAX_MODULES: usize = 500;

/// A JavaScript adapter found by [`discover`].
#[derive(Debug, Clone)]
pub(super) struct JsAdapter {
    pub dir: PathBuf,
    /// `payhost.slot`, else the package name.
    pub slot: String,
    /// The component's entry module (`payhost.component`).
    pub entry: PathBuf,
    /// The contract (`payhost.wit`), when the package names its own.
    pub wit: Option<PathBuf>,
}

/// The JavaScript adapter in `dir`, if its `package.json` declares one.
pub(super) fn discover(dir: &Path) -> Result<Option<JsAdapter>> {
    let manifest = dir.join("package.json");
    let Ok(text) = std::fs::read_to_string(&manifest) else {
        return Ok(None);
    };
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let Some(payhost) = doc.get("payhost") else {
        return Ok(None);
    };
    if payhost.get("lang").and_then(|l| l.as_str()) != Some("js") {
        bail!(
            "{}: `payhost.lang` must be \"js\" for a package.json adapter",
            manifest.display()
        );
    }
    let slot = payhost
        .get("slot")
        .or_else(|| doc.get("name"))
        .and_then(|s| s.as_str())
        .with_context(|| format!("{}: no `name`", manifest.display()))?
        .to_string();
    let entry = payhost
        .get("component")
        .and_then(|c| c.as_str())
        .with_context(|| {
            format!(
                "{}: `payhost.component` must name the entry module",
                manifest.display()
            )
        })?;
    let wit =
        match payhost.get("wit") {
            None => None,
            Some(w) => Some(dir.join(w.as_str().with_context(|| {
                format!("{}: `payhost.wit` must be a path", manifest.display())
            })?)),
        };
    Ok(Some(JsAdapter {
        dir: dir.to_path_buf(),
        slot,
        entry: dir.join(entry),
        wit,
    }))
}

/// Builds each adapter into `out_dir/<slot>.wasm`; toolchains and kept
/// builds go to `work` (by default `<workspace>/target/js`).
pub(super) fn build(
    workspace: &Path,
    adapters: &[JsAdapter],
    out_dir: &Path,
    work: Option<&Path>,
) -> Result<Vec<Built>> {
    let work = work.map_or_else(|| workspace.join("target").join("js"), Path::to_path_buf);
    let kept = work.join("built");
    std::fs::create_dir_all(&kept)?;
    std::fs::create_dir_all(out_dir)?;
    let mut built = Vec::new();
    for a in adapters {
        let wit = a
            .wit
            .clone()
            .unwrap_or_else(|| workspace.join("wit").join("adapter.wit"));
        let lock = std::fs::read(a.dir.join("package-lock.json")).with_context(|| {
            format!(
                "{}: a JavaScript adapter needs its package-lock.json (run `npm install` there once)",
                a.dir.display()
            )
        })?;
        let out = out_dir.join(format!("{}.wasm", a.slot));
        // One build of a slot at a time (parallel test processes).
        let guard = std::fs::File::create(work.join(format!("{}.lock", a.slot)))?;
        guard.lock().context("locking the JavaScript build")?;
        let modules = module_graph(&a.entry)?;
        let digest = sources_digest(&modules, &lock, &wit)?;
        let keep = kept.join(format!("{}-{}.wasm", a.slot, &digest[..32]));
        if !keep.is_file() {
            // Adapters of other slots may share the toolchain: one install at a time.
            let install = std::fs::File::create(work.join("toolchain.lock"))?;
            install.lock().context("locking the JavaScript toolchain")?;
            let toolchain = ensure_toolchain(a, &lock, &work)?;
            drop(install);
            let script = toolchain.join("componentize.mjs");
            if std::fs::read_to_string(&script).ok().as_deref() != Some(BUILD_SCRIPT) {
                std::fs::write(&script, BUILD_SCRIPT)?;
            }
            let tmp = kept.join(format!(".{}.wasm.tmp-{}", a.slot, std::process::id()));
            // componentize-js resolves imports inside its working directory
            // only: the deepest directory holding every module.
            let mut node = Command::new("node");
            node.current_dir(common_ancestor(&modules))
                .arg(&script)
                .arg(&a.entry)
                .arg(&wit)
                .arg("adapter")
                .arg(&tmp);
            run_with_timeout(node, COMPONENTIZE_TIMEOUT)
                .with_context(|| format!("componentize-js could not build `{}`", a.slot))?;
            std::fs::rename(&tmp, &keep).inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })?;
            forget_other_builds(&kept, &a.slot, &keep)?;
        }
        if !same_file_contents(&keep, &out)? {
            crate::runtime::write_atomic(&out, &std::fs::read(&keep)?)
                .with_context(|| format!("writing {}", out.display()))?;
        }
        drop(guard);
        let bytes = std::fs::metadata(&out)?.len();
        println!("{}: {bytes} bytes -> {}", a.slot, out.display());
        built.push(Built {
            name: a.slot.clone(),
            path: out,
            bytes,
        });
    }
    Ok(built)
}

/// Removes the kept builds of `slot` other than `keep`: an author editing
/// an adapter keeps one build of it, not one per edit.
fn forget_other_builds(kept: &Path, slot: &str, keep: &Path) -> Result<()> {
    let prefix = format!("{slot}-");
    for entry in std::fs::read_dir(kept)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        // `<slot>-<32 hex>.wasm` exactly: another slot may start with this one's name.
        let is_build_of_slot = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".wasm"))
            .is_some_and(|d| d.len() == 32 && d.bytes().all(|b| b.is_ascii_hexdigit()));
        if is_build_of_slot && path != keep {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Whether `b` exists with the same bytes as `a`.
fn same_file_contents(a: &Path, b: &Path) -> Result<bool> {
    let same_len = std::fs::metadata(b)
        .is_ok_and(|m| Some(m.len()) == std::fs::metadata(a).ok().map(|m| m.len()));
    Ok(same_len && std::fs::read(a)? == std::fs::read(b)?)
}

/// The digest of everything the component is made of: the entry module and
/// the modules it imports by relative path (named relative to their common
/// directory), the lock file, the contract and the build script.
fn sources_digest(modules: &BTreeSet<PathBuf>, lock: &[u8], wit: &Path) -> Result<String> {
    let mut h = Sha256::new();
    for part in [lock, BUILD_SCRIPT.as_bytes(), &std::fs::read(wit)?] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let root = common_ancestor(modules);
    for module in modules {
        let text = std::fs::read(module)?;
        let name = module
            .strip_prefix(&root)
            .unwrap_or(module)
            .to_string_lossy();
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((text.len() as u64).to_le_bytes());
        h.update(&text);
    }
    Ok(hex::encode(h.finalize()))
}

/// `entry` and every module reachable from it by relative imports, sorted.
fn module_graph(entry: &Path) -> Result<BTreeSet<PathBuf>> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![
        entry
            .canonicalize()
            .with_context(|| format!("entry module {}", entry.display()))?,
    ];
    while let Some(module) = todo.pop() {
        if !seen.insert(module.clone()) {
            continue;
        }
        if seen.len() > MAX_MODULES {
            bail!(
                "{} imports more than {MAX_MODULES} modules",
                entry.display()
            );
        }
        let text = std::fs::read_to_string(&module)
            .with_context(|| format!("reading {}", module.display()))?;
        let dir = module.parent().unwrap_or(Path::new("."));
        for spec in relative_imports(&text) {
            // A specifier naming no file (one in a comment, say) adds
            // nothing; componentize-js reports a real missing module.
            if let Ok(path) = dir.join(spec).canonicalize() {
                todo.push(path);
            }
        }
    }
    Ok(seen)
}

/// The deepest directory that holds every one of `modules`.
fn common_ancestor(modules: &BTreeSet<PathBuf>) -> PathBuf {
    let mut paths = modules.iter();
    let mut common = paths
        .next()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for p in paths {
        while !p.starts_with(&common) {
            if !common.pop() {
                break;
            }
        }
    }
    common
}

/// The relative specifiers (`./x.js`, `../y.js`) after `from` or a bare
/// `import` in `source`: what the module graph walk follows.
fn relative_imports(source: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for keyword in ["from", "import"] {
        let mut rest = source;
        while let Some(at) = rest.find(keyword) {
            rest = &rest[at + keyword.len()..];
            let trimmed = rest.trim_start();
            let Some(quote) = trimmed.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                continue;
            };
            let body = &trimmed[1..];
            if let Some(end) = body.find(quote) {
                let spec = &body[..end];
                if spec.starts_with("./") || spec.starts_with("../") {
                    found.push(spec);
                }
            }
        }
    }
    found
}

/// node and npm present (installed from Debian when missing), and the
/// adapter's lock installed with `npm ci` into a directory of its own.
fn ensure_toolchain(a: &JsAdapter, lock: &[u8], work: &Path) -> Result<PathBuf> {
    ensure_node()?;
    let dir = work.join(format!(
        "toolchain-{}",
        &locked_dependencies_digest(lock)?[..16]
    ));
    let done = dir.join(".installed");
    if done.is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(a.dir.join("package.json"), dir.join("package.json"))?;
    std::fs::write(dir.join("package-lock.json"), lock)?;
    let mut last = None;
    for _attempt in 0..2 {
        let mut npm = Command::new("npm");
        npm.current_dir(&dir)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
        match run_with_timeout(npm, NPM_CI_TIMEOUT) {
            Ok(()) => {
                std::fs::write(&done, b"")?;
                return Ok(dir);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("npm ci failed"))).with_context(|| {
        format!(
            "installing componentize-js for `{}` (npm ci in {}) failed twice",
            a.slot,
            dir.display()
        )
    })
}

/// The digest of what a lock installs: its `packages` without the root
/// entry (the package's own name, version and license), so packages that
/// pin the same dependencies share one toolchain.
fn locked_dependencies_digest(lock: &[u8]) -> Result<String> {
    let mut doc: serde_json::Value =
        serde_json::from_slice(lock).context("package-lock.json is not JSON")?;
    let packages = doc
        .get_mut("packages")
        .and_then(|p| p.as_object_mut())
        .context("package-lock.json has no `packages` (lockfileVersion 2 or 3 is needed)")?;
    let dependencies = packages
        .get("")
        .and_then(|root| root.get("devDependencies").cloned());
    packages.remove("");
    let installed = serde_json::json!({ "root": dependencies, "packages": packages });
    Ok(hex::encode(Sha256::digest(serde_json::to_vec(&installed)?)))
}

/// The major version `node --version` reports, if node runs.
fn node_major() -> Option<u32> {
    let out = Command::new("node").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

fn npm_runs() -> bool {
    Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// node (>= 18) and npm on the PATH, installed from Debian (as root) when
/// missing; what the JavaScript build and its tests run on.
pub fn ensure_node() -> Result<()> {
    if node_major().is_some_and(|v| v >= MIN_NODE_MAJOR) && npm_runs() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !(is_root && Path::new("/etc/debian_version").exists()) {
        bail!(
            "JavaScript adapters need node >= {MIN_NODE_MAJOR} and npm; install them (on Debian, as root: {DEBIAN_NODE})"
        );
    }
    let mut update = Command::new("apt-get");
    update.arg("update");
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "nodejs", "npm"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    run_with_timeout(update, Duration::from_secs(600))
        .and_then(|()| run_with_timeout(install, Duration::from_secs(1200)))
        .with_context(|| {
            format!("installing node and npm from Debian failed; run it by hand: {DEBIAN_NODE}")
        })?;
    match node_major() {
        Some(v) if v >= MIN_NODE_MAJOR && npm_runs() => Ok(()),
        found => bail!(
            "after `{DEBIAN_NODE}`, node is {found:?} and npm {}; componentize-js needs node >= {MIN_NODE_MAJOR}",
            if npm_runs() { "runs" } else { "is missing" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_relative_imports_only() {
        let src = "import { a } from './a.js';\nimport * as b from \"../b/c.js\";\nimport 'side.js';\nimport './side-effect.js';\nexport { d } from './d.js';\nimport { log } from 'payhost:adapter/log@0.4.0';\n// the word from in a comment\n";
        assert_eq!(
            relative_imports(src),
            vec!["./a.js", "../b/c.js", "./d.js", "./side-effect.js"]
        );
    }

    #[test]
    fn a_package_json_is_an_adapter_only_when_it_says_so() {
        let dir = std::env::temp_dir().join(format!("payhost-js-discover-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |text: &str| std::fs::write(dir.join("package.json"), text).unwrap();
        write(r#"{"name": "tool"}"#);
        assert!(discover(&dir).unwrap().is_none());
        write(r#"{"name": "p-js", "payhost": {"lang": "js", "component": "src/c.js"}}"#);
        let a = discover(&dir).unwrap().unwrap();
        assert_eq!(
            (a.slot.as_str(), a.entry.ends_with("src/c.js")),
            ("p-js", true)
        );
        write(r#"{"name": "p", "payhost": {"lang": "js", "slot": "other", "component": "c.js"}}"#);
        assert_eq!(discover(&dir).unwrap().unwrap().slot, "other");
        write(r#"{"name": "p", "payhost": {"lang": "rust"}}"#);
        assert!(discover(&dir).is_err());
        write(r#"{"name": "p", "payhost": {"lang": "js"}}"#);
        assert!(discover(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_module_graph_is_every_relatively_imported_file() {
        let dir = std::env::temp_dir().join(format!("payhost-js-graph-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(
            dir.join("src/main.js"),
            "import { x } from '../lib/x.js';\nimport './y.js';\n",
        )
        .unwrap();
        std::fs::write(dir.join("src/y.js"), "import { x } from '../lib/x.js';\n").unwrap();
        std::fs::write(dir.join("lib/x.js"), "export const x = 1;\n").unwrap();
        std::fs::write(dir.join("src/unused.js"), "").unwrap();
        let graph = module_graph(&dir.join("src/main.js")).unwrap();
        let names: Vec<_> = graph
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(common_ancestor(&graph), dir.canonicalize().unwrap());
        assert!(!names.contains(&"unused.js"));
        std::fs::write(dir.join("src/y.js"), "// import './missing.js';\n").unwrap();
        // A specifier naming no file (here in a comment) adds nothing.
        assert_eq!(module_graph(&dir.join("src/main.js")).unwrap(), graph);
        assert!(module_graph(&dir.join("src/none.js")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn packages_pinning_the_same_dependencies_share_a_toolchain() {
        let lock = |name: &str, shim: &str| {
            format!(
                r#"{{"name": "{name}", "lockfileVersion": 3, "packages": {{
                    "": {{"name": "{name}", "version": "0.1.0", "devDependencies": {{"shim": "{shim}"}}}},
                    "node_modules/shim": {{"version": "{shim}"}}}}}}"#
            )
        };
        let digest = |l: String| locked_dependencies_digest(l.as_bytes()).unwrap();
        assert_eq!(digest(lock("a-js", "1.0.0")), digest(lock("b-js", "1.0.0")));
        assert_ne!(digest(lock("a-js", "1.0.0")), digest(lock("a-js", "1.0.1")));
        assert!(locked_dependencies_digest(br#"{"lockfileVersion": 1}"#).is_err());
    }

    #[test]
    fn the_same_sources_elsewhere_are_the_same_build_and_one_build_per_slot_is_kept() {
        let base = std::env::temp_dir().join(format!("payhost-js-digest-{}", std::process::id()));
        let write = |dir: &Path, body: &str| {
            std::fs::create_dir_all(dir.join("src")).unwrap();
            std::fs::write(dir.join("src/main.js"), "import './x.js';\n").unwrap();
            std::fs::write(dir.join("src/x.js"), body).unwrap();
            std::fs::write(dir.join("adapter.wit"), "package a:b;").unwrap();
            module_graph(&dir.join("src/main.js")).unwrap()
        };
        let digest =
            |dir: &Path, graph| sources_digest(&graph, b"{}", &dir.join("adapter.wit")).unwrap();
        let (one, two) = (base.join("one"), base.join("two"));
        let first = digest(&one, write(&one, "export const x = 1;"));
        assert_eq!(first, digest(&two, write(&two, "export const x = 1;")));
        assert_ne!(first, digest(&two, write(&two, "export const x = 2;")));

        let kept = base.join("built");
        std::fs::create_dir_all(&kept).unwrap();
        let names = ["acme-js-", "acme-js-", "acme-js-pro-"];
        let files: Vec<PathBuf> = names
            .iter()
            .enumerate()
            .map(|(i, n)| kept.join(format!("{n}{}.wasm", i.to_string().repeat(32))))
            .collect();
        for f in &files {
            std::fs::write(f, b"").unwrap();
        }
        forget_other_builds(&kept, "acme-js", &files[1]).unwrap();
        let left: Vec<bool> = files.iter().map(|f| f.exists()).collect();
        assert_eq!(left, [false, true, true], "another slot's build stays");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
