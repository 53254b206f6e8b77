//! `payhost adapter new`: writes a compiling adapter crate for Acme Pay, a
//! fictitious signed-JSON provider, as the starting point of a real one.
//!
//! The templates are files under `host/templates/<lang>/`, embedded at
//! compile time; another language is one more directory and match arm.
//!
//! Two layouts, chosen by where the crate goes:
//! - in a payhost checkout's `adapters/`, the crate joins the workspace
//!   (`adapters/*`) and takes the SDK from it (`payhost-sdk.workspace`);
//! - anywhere else it depends on nothing of the repository: the SDK this
//!   binary was built with, and the contract, are written next to it
//!   (`vendor/payhost-sdk`, `vendor/wit`) and named published-style,
//!   `payhost-sdk = { version = "=X", path = "vendor/payhost-sdk" }`; the
//!   crate is a workspace of its own with the `adapter` profile, and its
//!   `Cargo.lock` pins the versions this payhost was tested with.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The language of the adapter to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Js,
}

/// Where the crate's dependencies come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A member of the payhost workspace.
    Workspace,
    /// Its own workspace, with the SDK and the contract vendored.
    Standalone,
}

/// What [`create`] wrote.
#[derive(Debug, Clone)]
pub struct Created {
    pub path: PathBuf,
    pub layout: Layout,
    pub files: Vec<PathBuf>,
}

/// The Rust template: path in the crate, contents.
const RUST_FILES: &[(&str, &str)] = &[
    ("README.md", include_str!("../templates/rust/README.md")),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    ("src/wire.rs", include_str!("../templates/rust/src/wire.rs")),
    ("src/sign.rs", include_str!("../templates/rust/src/sign.rs")),
    (
        "src/tests.rs",
        include_str!("../templates/rust/src/tests.rs"),
    ),
];
const RUST_MANIFEST_WORKSPACE: &str = include_str!("../templates/rust/Cargo.toml.workspace");
const RUST_MANIFEST_STANDALONE: &str = include_str!("../templates/rust/Cargo.toml.standalone");

/// The SDK's sources as this binary was built with them (a test keeps
/// the list equal to `sdk/src`).
const SDK_SOURCES: &[(&str, &str)] = &[
    ("bindings.rs", include_str!("../../sdk/src/bindings.rs")),
    ("canonical.rs", include_str!("../../sdk/src/canonical.rs")),
    ("config.rs", include_str!("../../sdk/src/config.rs")),
    ("ctx.rs", include_str!("../../sdk/src/ctx.rs")),
    ("encoding.rs", include_str!("../../sdk/src/encoding.rs")),
    ("error.rs", include_str!("../../sdk/src/error.rs")),
    ("field.rs", include_str!("../../sdk/src/field.rs")),
    ("form.rs", include_str!("../../sdk/src/form.rs")),
    ("glue.rs", include_str!("../../sdk/src/glue.rs")),
    ("host.rs", include_str!("../../sdk/src/host.rs")),
    ("http.rs", include_str!("../../sdk/src/http.rs")),
    ("json.rs", include_str!("../../sdk/src/json.rs")),
    ("lib.rs", include_str!("../../sdk/src/lib.rs")),
    ("money.rs", include_str!("../../sdk/src/money.rs")),
    ("native.rs", include_str!("../../sdk/src/native.rs")),
    ("testing.rs", include_str!("../../sdk/src/testing.rs")),
    ("time.rs", include_str!("../../sdk/src/time.rs")),
    ("xml.rs", include_str!("../../sdk/src/xml.rs")),
];
const SDK_MANIFEST: &str = include_str!("../../sdk/Cargo.toml");
const WORKSPACE_MANIFEST: &str = include_str!("../../Cargo.toml");
const WORKSPACE_LOCK: &str = include_str!("../../Cargo.lock");
const CONTRACT: &str = include_str!("../../wit/adapter.wit");

/// Names cargo or the compiler refuse for a package, or that would shadow
/// a crate every adapter uses.
const RESERVED: &[&str] = &[
    "test",
    "std",
    "core",
    "alloc",
    "proc_macro",
    "proc-macro",
    "self",
    "super",
    "crate",
    "payhost",
    "payhost-sdk",
    "payhost_sdk",
];

/// Checks that `name` can be both the crate's name and the adapter's slot
/// (the file stem `payhost` serves it under): a lower-case letter, then
/// lower-case letters, digits, `-` or `_`, at most 64 characters.
pub fn validate_name(name: &str) -> Result<()> {
    let shape = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !shape {
        bail!(
            "`{name}` is not a valid adapter name: it names both the crate and the slot, so it \
             must start with a lower-case letter and hold only lower-case letters, digits, `-` \
             and `_` (at most 64), e.g. `acme-pay`"
        );
    }
    if RESERVED.contains(&name) || is_keyword(name) {
        bail!("`{name}` is not a valid adapter name: cargo or Rust reserves it");
    }
    Ok(())
}

fn is_keyword(name: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern",
        "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move",
        "mut", "pub", "ref", "return", "static", "struct", "trait", "true", "type", "unsafe",
        "use", "where", "while", "abstract", "become", "box", "do", "final", "macro", "override",
        "priv", "try", "typeof", "unsized", "virtual", "yield",
    ];
    KEYWORDS.contains(&name)
}

/// The directory `adapter new` writes into when `--dir` is not given:
/// the checkout's `adapters/` when `cwd` is inside a payhost checkout,
/// else `cwd`.
pub fn default_dir(cwd: &Path) -> PathBuf {
    match payhost_checkout(cwd) {
        Some(root) => root.join("adapters"),
        None => cwd.to_path_buf(),
    }
}

/// The root of the payhost checkout `dir` is in: a cargo workspace
/// with the SDK and `adapters/`.
fn payhost_checkout(dir: &Path) -> Option<PathBuf> {
    let root = crate::builder::find_workspace(dir)?;
    let sdk = std::fs::read_to_string(root.join("sdk").join("Cargo.toml")).ok()?;
    (sdk.contains("name = \"payhost-sdk\"") && root.join("adapters").is_dir()).then_some(root)
}

/// The layout for a crate written under `dir`: the workspace's when `dir`
/// is a payhost checkout's `adapters/`.
pub fn layout_for(dir: &Path) -> Layout {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    match payhost_checkout(&dir) {
        Some(root) if root.join("adapters") == dir => Layout::Workspace,
        _ => Layout::Standalone,
    }
}

/// Writes the adapter `name` in `lang` to `dir/name`. Refuses an invalid
/// name and a target directory that exists and is not empty.
pub fn create(name: &str, lang: Lang, dir: &Path) -> Result<Created> {
    validate_name(name)?;
    let (files, workspace_manifest, standalone_manifest) = match lang {
        Lang::Rust => (
            RUST_FILES,
            RUST_MANIFEST_WORKSPACE,
            RUST_MANIFEST_STANDALONE,
        ),
        Lang::Js => bail!(
            "`--lang js` is not available yet: JavaScript adapters are coming; use `--lang rust`"
        ),
    };
    let path = dir.join(name);
    if let Ok(mut entries) = std::fs::read_dir(&path) {
        if entries.next().is_some() {
            bail!(
                "{} already exists and is not empty; choose another name or --dir",
                path.display()
            );
        }
    } else if path.exists() {
        bail!("{} already exists and is not a directory", path.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let layout = layout_for(dir);
    let component = match layout {
        Layout::Workspace => format!("target/components/{name}.wasm"),
        Layout::Standalone => format!("{name}/target/components/{name}.wasm"),
    };
    let build_dir = match layout {
        Layout::Workspace => "adapters".to_string(),
        Layout::Standalone => name.to_string(),
    };
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{component}}", &component)
            .replace("{{build_dir}}", &build_dir)
            .replace("{{payhost_version}}", env!("CARGO_PKG_VERSION"))
            .replace("{{sdk_version}}", &sdk_version())
    };
    let mut out: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(file, text)| (PathBuf::from(file), fill(text)))
        .collect();
    match layout {
        Layout::Workspace => out.push(("Cargo.toml".into(), fill(workspace_manifest))),
        Layout::Standalone => {
            let manifest = format!("{}\n{}", fill(standalone_manifest), adapter_profiles()?);
            out.push(("Cargo.toml".into(), manifest));
            out.push(("Cargo.lock".into(), WORKSPACE_LOCK.to_string()));
            out.push((
                "vendor/payhost-sdk/Cargo.toml".into(),
                standalone_sdk_manifest()?,
            ));
            for (file, text) in SDK_SOURCES {
                out.push((
                    Path::new("vendor/payhost-sdk/src").join(file),
                    text.to_string(),
                ));
            }
            out.push(("vendor/wit/adapter.wit".into(), CONTRACT.to_string()));
            out.push((".gitignore".into(), "/target\n".into()));
        }
    }
    let mut written = Vec::new();
    for (file, text) in out {
        let target = path.join(&file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
        written.push(file);
    }
    Ok(Created {
        path,
        layout,
        files: written,
    })
}

impl Created {
    /// What was written and the commands that come next.
    pub fn summary(&self, name: &str) -> String {
        let path = self.path.display();
        let (how, build, component) = match self.layout {
            Layout::Workspace => (
                "a member of the payhost workspace (adapters/*)".to_string(),
                "payhost adapter build".to_string(),
                format!("target/components/{name}.wasm"),
            ),
            Layout::Standalone => (
                "standalone: the SDK and the contract are in vendor/".to_string(),
                format!("payhost adapter build {path}"),
                format!("{path}/target/components/{name}.wasm"),
            ),
        };
        let mut out = format!("created {path} ({how}), {} files\n", self.files.len());
        out.push_str("next:\n");
        out.push_str(&format!("    (cd {path} && cargo test)\n"));
        out.push_str(&format!("    {build}\n"));
        out.push_str(&format!("    payhost adapter check {component}\n"));
        out
    }
}

fn workspace_table() -> Result<toml::Table> {
    toml::from_str(WORKSPACE_MANIFEST).context("the embedded workspace manifest")
}

/// The SDK's version, as the workspace declares it.
fn sdk_version() -> String {
    workspace_table()
        .ok()
        .and_then(|t| {
            t.get("workspace")?
                .get("package")?
                .get("version")?
                .as_str()
                .map(String::from)
        })
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
}

/// The workspace's `[profile.adapter]` and `[profile.dev]` (without the
/// per-package overrides of the host's compiler), so a standalone crate
/// builds its component exactly as the workspace's adapters are built.
fn adapter_profiles() -> Result<String> {
    let ws = workspace_table()?;
    let profiles = ws
        .get("profile")
        .and_then(|p| p.as_table())
        .context("the workspace manifest has no [profile] tables")?;
    let mut kept = toml::Table::new();
    for name in ["adapter", "dev"] {
        if let Some(toml::Value::Table(p)) = profiles.get(name) {
            let mut p = p.clone();
            p.remove("package");
            kept.insert(name.into(), toml::Value::Table(p));
        }
    }
    let mut root = toml::Table::new();
    root.insert("profile".into(), toml::Value::Table(kept));
    Ok(format!(
        "# The payhost workspace's profiles: `payhost adapter build` uses `adapter`.\n{}",
        toml::to_string(&root)?
    ))
}

/// The SDK's manifest with everything it inherits from the workspace
/// written out, as `cargo package` would publish it.
fn standalone_sdk_manifest() -> Result<String> {
    let ws = workspace_table()?;
    let ws = ws
        .get("workspace")
        .and_then(|w| w.as_table())
        .context("no [workspace]")?;
    let mut sdk: toml::Table = toml::from_str(SDK_MANIFEST).context("the SDK's manifest")?;
    if let (Some(toml::Value::Table(package)), Some(toml::Value::Table(inherited))) =
        (sdk.get_mut("package"), ws.get("package"))
    {
        for (key, value) in package.iter_mut() {
            if is_inherited(value) {
                *value = inherited
                    .get(key)
                    .with_context(|| format!("the workspace has no package.{key}"))?
                    .clone();
            }
        }
    }
    let ws_deps = ws
        .get("dependencies")
        .and_then(|d| d.as_table())
        .context("no [workspace.dependencies]")?;
    for section in ["dependencies", "dev-dependencies"] {
        let Some(toml::Value::Table(deps)) = sdk.get_mut(section) else {
            continue;
        };
        for (name, dep) in deps.iter_mut() {
            if !is_inherited(dep) {
                continue;
            }
            let mut resolved = match ws_deps.get(name) {
                Some(toml::Value::String(v)) => {
                    let mut t = toml::Table::new();
                    t.insert("version".into(), toml::Value::String(v.clone()));
                    t
                }
                Some(toml::Value::Table(t)) => t.clone(),
                _ => bail!("the workspace does not declare the dependency `{name}`"),
            };
            let local = dep.as_table().cloned().unwrap_or_default();
            for (key, value) in local {
                match key.as_str() {
                    "workspace" => {}
                    // Features add to the workspace's.
                    "features" => {
                        let mut all = resolved
                            .get("features")
                            .and_then(|f| f.as_array())
                            .cloned()
                            .unwrap_or_default();
                        for f in value.as_array().into_iter().flatten() {
                            if !all.contains(f) {
                                all.push(f.clone());
                            }
                        }
                        resolved.insert("features".into(), toml::Value::Array(all));
                    }
                    _ => {
                        resolved.insert(key, value);
                    }
                }
            }
            *dep = toml::Value::Table(resolved);
        }
    }
    Ok(format!(
        "# payhost-sdk as published with payhost {}: written by `payhost adapter new`.\n{}",
        env!("CARGO_PKG_VERSION"),
        toml::to_string(&sdk)?
    ))
}

/// `key.workspace = true`.
fn is_inherited(value: &toml::Value) -> bool {
    value
        .get("workspace")
        .and_then(|w| w.as_bool())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("payhost-scaffold-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn names_that_cannot_be_a_crate_and_a_slot_are_refused() {
        for good in ["acme-pay", "acme_pay", "a", "pay2go", &"a".repeat(64)] {
            validate_name(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "2paynow",
            "Acme",
            "acme pay",
            "acme.pay",
            "../acme",
            "-acme",
            "acmé",
            &"a".repeat(65),
            "test",
            "fn",
            "payhost-sdk",
        ] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{bad}: {e}");
        }
        let dir = temp("badname");
        assert!(create("Acme", Lang::Rust, &dir).is_err());
        assert!(!dir.join("Acme").exists(), "nothing is written");
    }

    #[test]
    fn an_existing_non_empty_directory_is_refused_and_left_alone() {
        let dir = temp("exists");
        std::fs::create_dir_all(dir.join("acme-pay")).unwrap();
        std::fs::write(dir.join("acme-pay/notes.txt"), "mine").unwrap();
        let e = create("acme-pay", Lang::Rust, &dir)
            .unwrap_err()
            .to_string();
        assert!(e.contains("already exists and is not empty"), "{e}");
        assert_eq!(
            std::fs::read_dir(dir.join("acme-pay")).unwrap().count(),
            1,
            "nothing added"
        );
        // An empty directory is fine (e.g. a fresh `mkdir`).
        std::fs::create_dir_all(dir.join("empty")).unwrap();
        create("empty", Lang::Rust, &dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn javascript_is_not_offered_yet() {
        let dir = temp("js");
        let e = create("acme-js", Lang::Js, &dir).unwrap_err().to_string();
        assert!(
            e.contains("--lang js") && e.contains("not available yet"),
            "{e}"
        );
        assert!(!dir.join("acme-js").exists());
    }

    #[test]
    fn outside_the_checkout_the_crate_vendors_the_sdk_and_the_contract() {
        let dir = temp("standalone");
        let c = create("acme-pay", Lang::Rust, &dir).unwrap();
        assert_eq!(c.layout, Layout::Standalone);
        let read = |f: &str| std::fs::read_to_string(c.path.join(f)).unwrap();
        let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some("acme-pay"));
        assert!(manifest.contains_key("workspace"), "a workspace of its own");
        assert_eq!(
            manifest["profile"]["adapter"]["panic"].as_str(),
            Some("abort")
        );
        let sdk = &manifest["dependencies"]["payhost-sdk"];
        assert_eq!(sdk["path"].as_str(), Some("vendor/payhost-sdk"));
        assert_eq!(
            sdk["version"].as_str(),
            Some(format!("={}", sdk_version()).as_str())
        );
        // Nothing refers to the repository.
        assert!(!read("Cargo.toml").contains("workspace = true"));
        let sdk_manifest = read("vendor/payhost-sdk/Cargo.toml");
        assert!(!sdk_manifest.contains("workspace"), "{sdk_manifest}");
        let sdk_manifest: toml::Table = toml::from_str(&sdk_manifest).unwrap();
        assert_eq!(
            sdk_manifest["package"]["name"].as_str(),
            Some("payhost-sdk")
        );
        assert!(sdk_manifest["dependencies"]["wit-bindgen"]["version"].is_str());
        assert_eq!(
            sdk_manifest["dependencies"]["sha2"]["optional"].as_bool(),
            Some(true)
        );
        assert_eq!(read("vendor/wit/adapter.wit"), CONTRACT);
        assert!(read("vendor/payhost-sdk/src/bindings.rs").contains("path: \"../wit\""));
        assert!(read("Cargo.lock").contains("name = \"wit-bindgen\""));
        assert!(read("README.md").contains("payhost adapter build acme-pay"));
        assert!(read("src/lib.rs").contains("export_adapter!(AcmePay)"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn in_the_checkouts_adapters_directory_the_crate_joins_the_workspace() {
        // A checkout-shaped tree: the real one must not be written to.
        let root = temp("checkout");
        std::fs::create_dir_all(root.join("sdk")).unwrap();
        std::fs::create_dir_all(root.join("adapters")).unwrap();
        std::fs::write(
            root.join("Cargo.toml"),
            "[workspace]\nmembers = [\"sdk\", \"adapters/*\"]\n",
        )
        .unwrap();
        std::fs::write(
            root.join("sdk/Cargo.toml"),
            "[package]\nname = \"payhost-sdk\"\n",
        )
        .unwrap();
        assert_eq!(default_dir(&root.join("sdk")), root.join("adapters"));
        let elsewhere = temp("not-a-checkout");
        std::fs::create_dir_all(&elsewhere).unwrap();
        assert_eq!(default_dir(&elsewhere), elsewhere);

        let c = create("acme-pay", Lang::Rust, &root.join("adapters")).unwrap();
        assert_eq!(c.layout, Layout::Workspace);
        let manifest = std::fs::read_to_string(c.path.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("payhost-sdk.workspace = true"),
            "{manifest}"
        );
        assert!(!c.path.join("vendor").exists());
        assert!(!c.path.join("Cargo.lock").exists());
        // Elsewhere in the checkout is not the workspace's adapters/.
        let c = create("acme-pay", Lang::Rust, &root.join("sdk")).unwrap();
        assert_eq!(c.layout, Layout::Standalone);
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&elsewhere).unwrap();
    }

    #[test]
    fn the_embedded_sdk_is_every_source_file_of_the_sdk() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = SDK_SOURCES.iter().map(|(f, _)| f.to_string()).collect();
        assert_eq!(embedded, on_disk, "update SDK_SOURCES");
    }
}
