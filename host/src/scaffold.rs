//! `payhost adapter new`: writes a compiling adapter for Acme Pay, a
//! fictitious signed-JSON provider, as the starting point of a real one,
//! in Rust (a crate) or JavaScript (a package built with componentize-js).
//!
//! The templates are files under `host/templates/<lang>/`, embedded at
//! compile time; another language is one more directory and match arm.
//!
//! Two layouts, chosen by where the adapter goes:
//! - in a payhost checkout's `adapters/`, it uses the checkout's SDK: a
//!   Rust crate joins the workspace (`adapters/*`, `payhost-sdk.workspace`);
//!   a JavaScript package imports `../../sdk-js` and is added to the
//!   workspace's `exclude` (cargo would otherwise take it for a member
//!   without a `Cargo.toml` and refuse the whole workspace);
//! - anywhere else it depends on nothing of the repository: the SDK this
//!   binary was built with, and the contract, are written next to it
//!   (`vendor/payhost-sdk`, `vendor/payhost-sdk-js`, `vendor/wit`). A Rust
//!   crate names its SDK published-style,
//!   `payhost-sdk = { version = "=X", path = "vendor/payhost-sdk" }`, is a
//!   workspace of its own with the `adapter` profile, and its `Cargo.lock`
//!   pins the versions this payhost was tested with; a JavaScript
//!   package's `package-lock.json` pins the componentize-js of the
//!   checkout's own JavaScript adapter.

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
    pub lang: Lang,
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

/// The JavaScript template's package.json; its devDependencies are the lock's.
const JS_PACKAGE: &str = include_str!("../templates/js/package.json");
/// The JavaScript template: path in the package, contents.
const JS_FILES: &[(&str, &str)] = &[
    ("README.md", include_str!("../templates/js/README.md")),
    ("package.json", JS_PACKAGE),
    (
        "src/adapter.js",
        include_str!("../templates/js/src/adapter.js"),
    ),
    ("src/wire.js", include_str!("../templates/js/src/wire.js")),
    ("src/sign.js", include_str!("../templates/js/src/sign.js")),
    (
        "src/component.js",
        include_str!("../templates/js/src/component.js"),
    ),
    (
        "test/adapter.test.js",
        include_str!("../templates/js/test/adapter.test.js"),
    ),
];
/// The lock of the checkout's JavaScript adapter: the componentize-js this
/// payhost builds and tests with (its root entry is rewritten per package).
const JS_LOCK: &str = include_str!("../../adapters/2paynow-js/package-lock.json");

/// The JavaScript SDK as this binary was built with it (a test keeps the
/// list equal to `sdk-js/src` and `sdk-js/testing`).
const SDK_JS_SOURCES: &[(&str, &str)] = &[
    ("package.json", include_str!("../../sdk-js/package.json")),
    ("README.md", include_str!("../../sdk-js/README.md")),
    (
        "src/canonical.js",
        include_str!("../../sdk-js/src/canonical.js"),
    ),
    (
        "src/component.js",
        include_str!("../../sdk-js/src/component.js"),
    ),
    ("src/ctx.js", include_str!("../../sdk-js/src/ctx.js")),
    (
        "src/encoding.js",
        include_str!("../../sdk-js/src/encoding.js"),
    ),
    ("src/error.js", include_str!("../../sdk-js/src/error.js")),
    (
        "src/exports.js",
        include_str!("../../sdk-js/src/exports.js"),
    ),
    ("src/field.js", include_str!("../../sdk-js/src/field.js")),
    ("src/form.js", include_str!("../../sdk-js/src/form.js")),
    ("src/glue.js", include_str!("../../sdk-js/src/glue.js")),
    ("src/http.js", include_str!("../../sdk-js/src/http.js")),
    ("src/index.js", include_str!("../../sdk-js/src/index.js")),
    ("src/json.js", include_str!("../../sdk-js/src/json.js")),
    ("src/money.js", include_str!("../../sdk-js/src/money.js")),
    (
        "src/secrets.js",
        include_str!("../../sdk-js/src/secrets.js"),
    ),
    ("src/xml.js", include_str!("../../sdk-js/src/xml.js")),
    (
        "testing/harness.js",
        include_str!("../../sdk-js/testing/harness.js"),
    ),
    (
        "testing/native-host.js",
        include_str!("../../sdk-js/testing/native-host.js"),
    ),
];

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
    "node_modules",
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
    let build_dir = match (layout, lang) {
        (Layout::Workspace, Lang::Rust) => "adapters".to_string(),
        // Only this package: `adapters` would build every adapter.
        (Layout::Workspace, Lang::Js) => format!("adapters/{name}"),
        (Layout::Standalone, _) => name.to_string(),
    };
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{component}}", &component)
            .replace("{{build_dir}}", &build_dir)
            .replace("{{payhost_version}}", env!("CARGO_PKG_VERSION"))
            .replace("{{sdk_version}}", &sdk_version())
    };
    let (out, workspace_edit) = match lang {
        Lang::Rust => (rust_files(layout, &fill)?, None),
        Lang::Js => {
            // Computed before anything is written: a manifest it cannot
            // edit leaves no half-made adapter behind.
            let edit = match layout {
                Layout::Workspace => {
                    let root = dir
                        .canonicalize()?
                        .parent()
                        .context("adapters/ has a parent")?
                        .to_path_buf();
                    let manifest = root.join("Cargo.toml");
                    let text = std::fs::read_to_string(&manifest)
                        .with_context(|| format!("reading {}", manifest.display()))?;
                    exclude_member(&text, &format!("adapters/{name}"))
                        .with_context(|| {
                            format!("adding {name} to the exclude of {}", manifest.display())
                        })?
                        .map(|text| (manifest, text))
                }
                Layout::Standalone => None,
            };
            (js_files(name, layout, &fill)?, edit)
        }
    };
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
    if let Some((manifest, text)) = workspace_edit {
        crate::runtime::write_atomic(&manifest, text.as_bytes())
            .with_context(|| format!("writing {}", manifest.display()))?;
    }
    Ok(Created {
        path,
        layout,
        lang,
        files: written,
    })
}

/// The Rust crate's files for `layout`.
fn rust_files(layout: Layout, fill: &dyn Fn(&str) -> String) -> Result<Vec<(PathBuf, String)>> {
    let mut out: Vec<(PathBuf, String)> = RUST_FILES
        .iter()
        .map(|(file, text)| (PathBuf::from(file), fill(text)))
        .collect();
    match layout {
        Layout::Workspace => out.push(("Cargo.toml".into(), fill(RUST_MANIFEST_WORKSPACE))),
        Layout::Standalone => {
            let manifest = format!(
                "{}\n{}",
                fill(RUST_MANIFEST_STANDALONE),
                adapter_profiles()?
            );
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
    Ok(out)
}

/// The JavaScript package's files for `layout`. Its modules import the
/// SDK by relative path (componentize-js resolves nothing else), from
/// `src/` and `test/` alike.
fn js_files(
    name: &str,
    layout: Layout,
    fill: &dyn Fn(&str) -> String,
) -> Result<Vec<(PathBuf, String)>> {
    let (sdk, wit, sdk_path, sdk_note) = match layout {
        Layout::Workspace => (
            "../../../sdk-js",
            "../../wit/adapter.wit",
            "../../sdk-js",
            ", the checkout's",
        ),
        Layout::Standalone => (
            "../vendor/payhost-sdk-js",
            "vendor/wit/adapter.wit",
            "vendor/payhost-sdk-js",
            concat!(
                ", as published with payhost ",
                env!("CARGO_PKG_VERSION"),
                " (written by `payhost adapter new` with the contract, `vendor/wit`)"
            ),
        ),
    };
    let fill = |text: &str| {
        fill(text)
            .replace("{{sdk}}", sdk)
            .replace("{{wit}}", wit)
            .replace("{{sdk_path}}", sdk_path)
            .replace("{{sdk_note}}", sdk_note)
    };
    let mut out: Vec<(PathBuf, String)> = JS_FILES
        .iter()
        .map(|(file, text)| (PathBuf::from(file), fill(text)))
        .collect();
    out.push(("package-lock.json".into(), js_lock(name)?));
    out.push((".gitignore".into(), "/target\n/node_modules\n".into()));
    if layout == Layout::Standalone {
        for (file, text) in SDK_JS_SOURCES {
            out.push((
                Path::new("vendor/payhost-sdk-js").join(file),
                text.to_string(),
            ));
        }
        out.push(("vendor/wit/adapter.wit".into(), CONTRACT.to_string()));
    }
    Ok(out)
}

/// The package lock for a package `name` with the template's
/// devDependencies: the checkout's lock with its root entry rewritten, so
/// `npm ci` installs exactly what payhost builds with.
fn js_lock(name: &str) -> Result<String> {
    let template: serde_json::Value =
        serde_json::from_str(JS_PACKAGE).context("the embedded JavaScript package.json")?;
    let mut lock: serde_json::Value =
        serde_json::from_str(JS_LOCK).context("the embedded package-lock.json")?;
    let version = template["version"].clone();
    lock["name"] = name.into();
    lock["version"] = version.clone();
    let root = lock
        .get_mut("packages")
        .and_then(|p| p.get_mut(""))
        .and_then(|r| r.as_object_mut())
        .context("the embedded package-lock.json has no root package")?;
    if root.get("devDependencies") != template.get("devDependencies") {
        bail!("the JavaScript template's devDependencies differ from the lock it is given");
    }
    root.insert("name".into(), name.into());
    root.insert("version".into(), version);
    root.remove("license");
    Ok(serde_json::to_string_pretty(&lock)? + "\n")
}

/// `manifest` (a workspace's Cargo.toml) with `member` in
/// `[workspace] exclude`, or `None` when it is there already. A textual
/// edit, so the file's comments and layout stay; the result is parsed
/// back and must differ from the original in that one entry only.
fn exclude_member(manifest: &str, member: &str) -> Result<Option<String>> {
    let before: toml::Table = toml::from_str(manifest).context("parsing the manifest")?;
    let excluded = |t: &toml::Table| -> Vec<String> {
        t.get("workspace")
            .and_then(|w| w.get("exclude"))
            .and_then(|e| e.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    if excluded(&before).iter().any(|e| e == member) {
        return Ok(None);
    }
    let entry = toml::Value::String(member.into()).to_string();
    let lines: Vec<&str> = manifest.split_inclusive('\n').collect();
    let header = lines
        .iter()
        .position(|l| l.trim() == "[workspace]")
        .context("no [workspace] table")?;
    let end = lines[header + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |i| header + 1 + i);
    let offset = |line: usize| lines[..line].iter().map(|l| l.len()).sum::<usize>();
    let key = (header + 1..end).find(|&i| {
        let l = lines[i].trim_start();
        l.strip_prefix("exclude")
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    });
    let text = match key {
        Some(line) => {
            let start = offset(line);
            let open = start
                + manifest[start..]
                    .find('[')
                    .context("exclude is not an array")?;
            let close = open
                + manifest[open..]
                    .find(']')
                    .context("exclude's array is not closed")?;
            let inside = manifest[open + 1..close].trim_end();
            let sep = if inside.trim().is_empty() {
                ""
            } else if inside.ends_with(',') {
                " "
            } else {
                ", "
            };
            let at = open + 1 + inside.len();
            format!("{}{sep}{entry}{}", &manifest[..at], &manifest[at..])
        }
        None => {
            let at = offset(header + 1);
            format!(
                "{}exclude = [{entry}]\n{}",
                &manifest[..at],
                &manifest[at..]
            )
        }
    };
    let mut after: toml::Table = toml::from_str(&text).context("the edited manifest")?;
    let mut wanted = excluded(&before);
    wanted.push(member.into());
    if excluded(&after) != wanted {
        bail!("could not add `{member}` to [workspace] exclude");
    }
    let mut before = before;
    for t in [&mut before, &mut after] {
        if let Some(toml::Value::Table(w)) = t.get_mut("workspace") {
            w.remove("exclude");
        }
    }
    if before != after {
        bail!("adding `{member}` to [workspace] exclude would change more than that");
    }
    Ok(Some(text))
}

impl Created {
    /// What was written and the commands that come next.
    pub fn summary(&self, name: &str) -> String {
        let path = self.path.display();
        let (how, build, component) = match (self.layout, self.lang) {
            (Layout::Workspace, Lang::Rust) => (
                "a member of the payhost workspace (adapters/*)".to_string(),
                "payhost adapter build".to_string(),
                format!("target/components/{name}.wasm"),
            ),
            (Layout::Workspace, Lang::Js) => (
                "in the payhost checkout, using sdk-js; added to the workspace's exclude"
                    .to_string(),
                format!("payhost adapter build adapters/{name}"),
                format!("target/components/{name}.wasm"),
            ),
            (Layout::Standalone, _) => (
                "standalone: the SDK and the contract are in vendor/".to_string(),
                format!("payhost adapter build {path}"),
                format!("{path}/target/components/{name}.wasm"),
            ),
        };
        let test = match self.lang {
            Lang::Rust => "cargo test",
            Lang::Js => "node --test test/",
        };
        let mut out = format!("created {path} ({how}), {} files\n", self.files.len());
        out.push_str("next:\n");
        out.push_str(&format!("    (cd {path} && {test})\n"));
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
    fn a_javascript_adapter_outside_the_checkout_vendors_the_js_sdk_and_the_contract() {
        let dir = temp("js-standalone");
        let c = create("acme-js", Lang::Js, &dir).unwrap();
        assert_eq!((c.layout, c.lang), (Layout::Standalone, Lang::Js));
        let read = |f: &str| std::fs::read_to_string(c.path.join(f)).unwrap();
        let package: serde_json::Value = serde_json::from_str(&read("package.json")).unwrap();
        assert_eq!(package["name"], "acme-js");
        assert_eq!(package["payhost"]["lang"], "js");
        assert_eq!(package["payhost"]["wit"], "vendor/wit/adapter.wit");
        assert_eq!(read("vendor/wit/adapter.wit"), CONTRACT);
        let lock: serde_json::Value = serde_json::from_str(&read("package-lock.json")).unwrap();
        assert_eq!(lock["name"], "acme-js");
        assert_eq!(lock["packages"][""]["name"], "acme-js");
        assert_eq!(
            lock["packages"][""]["devDependencies"],
            package["devDependencies"]
        );
        assert!(lock["packages"]["node_modules/@bytecodealliance/componentize-js"].is_object());
        // Every module imports the vendored SDK, nothing of the repository.
        for module in [
            "src/adapter.js",
            "src/wire.js",
            "src/sign.js",
            "src/component.js",
        ] {
            let text = read(module);
            assert!(!text.contains("{{"), "{module} has an unfilled placeholder");
            assert!(text.contains("'../vendor/payhost-sdk-js/src/"), "{module}");
            assert!(!text.contains("sdk-js/src") || text.contains("vendor/payhost-sdk-js/src"));
        }
        assert!(read("src/adapter.js").contains("export const NAME = 'acme-js';"));
        assert!(
            read("test/adapter.test.js").contains("'../vendor/payhost-sdk-js/testing/harness.js'")
        );
        assert!(
            read("src/component.js")
                .contains("export * from '../vendor/payhost-sdk-js/src/exports.js'")
        );
        for (file, text) in SDK_JS_SOURCES {
            assert_eq!(&read(&format!("vendor/payhost-sdk-js/{file}")), text);
        }
        assert!(read("README.md").contains("payhost adapter build acme-js"));
        assert!(c.summary("acme-js").contains("node --test test/"));
        assert!(!c.path.join("Cargo.toml").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn javascript_refuses_what_rust_refuses() {
        let dir = temp("js-refusals");
        assert!(create("Acme", Lang::Js, &dir).is_err());
        assert!(create("node_modules", Lang::Js, &dir).is_err());
        std::fs::create_dir_all(dir.join("acme-js")).unwrap();
        std::fs::write(dir.join("acme-js/notes.txt"), "mine").unwrap();
        let e = create("acme-js", Lang::Js, &dir).unwrap_err().to_string();
        assert!(e.contains("already exists and is not empty"), "{e}");
        assert_eq!(std::fs::read_dir(dir.join("acme-js")).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A checkout-shaped tree whose workspace globs `adapters/*` and
    /// already excludes one JavaScript adapter, as the real one does.
    fn checkout(name: &str, manifest: &str) -> PathBuf {
        let root = temp(name);
        for d in ["sdk/src", "adapters/rusty/src", "adapters/old-js"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("Cargo.toml"), manifest).unwrap();
        let package = |n: &str| {
            format!("[package]\nname = \"{n}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n")
        };
        std::fs::write(root.join("sdk/Cargo.toml"), package("payhost-sdk")).unwrap();
        std::fs::write(root.join("sdk/src/lib.rs"), "").unwrap();
        std::fs::write(root.join("adapters/rusty/Cargo.toml"), package("rusty")).unwrap();
        std::fs::write(root.join("adapters/rusty/src/lib.rs"), "").unwrap();
        std::fs::write(root.join("adapters/old-js/package.json"), "{}").unwrap();
        root
    }

    /// Whether cargo accepts the workspace at `root` (no dependencies: offline).
    fn cargo_loads(root: &Path) -> bool {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        std::process::Command::new(cargo)
            .args([
                "metadata",
                "--offline",
                "--no-deps",
                "--format-version",
                "1",
            ])
            .current_dir(root)
            .output()
            .unwrap()
            .status
            .success()
    }

    #[test]
    fn a_javascript_adapter_in_the_checkout_uses_sdk_js_and_keeps_the_workspace_loading() {
        let manifest = "[workspace]\nresolver = \"2\"\nmembers = [\"sdk\", \"adapters/*\"]\n# JavaScript adapters.\nexclude = [\"adapters/old-js\"]\n\n[workspace.package]\nversion = \"0.1.0\"\n";
        let root = checkout("js-checkout", manifest);
        assert!(cargo_loads(&root), "the fixture itself loads");
        let c = create("acme-js", Lang::Js, &root.join("adapters")).unwrap();
        assert_eq!(c.layout, Layout::Workspace);
        let read = |f: &str| std::fs::read_to_string(c.path.join(f)).unwrap();
        assert!(read("src/adapter.js").contains("from '../../../sdk-js/src/index.js'"));
        let package: serde_json::Value = serde_json::from_str(&read("package.json")).unwrap();
        assert_eq!(package["payhost"]["wit"], "../../wit/adapter.wit");
        assert!(!c.path.join("vendor").exists());
        assert!(read("README.md").contains("payhost adapter build adapters/acme-js"));
        // The workspace still loads: the package was added to its exclude,
        // comments and the rest of the file untouched.
        let edited = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert_eq!(
            edited,
            manifest.replace(
                "\"adapters/old-js\"]",
                "\"adapters/old-js\", \"adapters/acme-js\"]"
            )
        );
        assert!(cargo_loads(&root));
        // Without the entry cargo refuses the workspace: what the edit prevents.
        std::fs::write(root.join("Cargo.toml"), manifest).unwrap();
        assert!(!cargo_loads(&root));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_exclude_entry_is_added_whatever_shape_the_array_has() {
        let add = |m: &str| exclude_member(m, "adapters/a-js").unwrap();
        assert_eq!(
            add("[workspace]\nmembers = [\"x\"]\n").unwrap(),
            "[workspace]\nexclude = [\"adapters/a-js\"]\nmembers = [\"x\"]\n"
        );
        assert_eq!(
            add("[workspace]\nexclude = []\n").unwrap(),
            "[workspace]\nexclude = [\"adapters/a-js\"]\n"
        );
        assert_eq!(
            add("[workspace]\nexclude = [\n    \"b\",\n]\n").unwrap(),
            "[workspace]\nexclude = [\n    \"b\", \"adapters/a-js\"\n]\n"
        );
        // Only the [workspace] table's exclude.
        assert_eq!(
            add("[package]\nexclude = [\"x\"]\n[workspace]\n").unwrap(),
            "[package]\nexclude = [\"x\"]\n[workspace]\nexclude = [\"adapters/a-js\"]\n"
        );
        assert_eq!(add("[workspace]\nexclude = [\"adapters/a-js\"]\n"), None);
        assert!(exclude_member("[package]\nname = \"x\"\n", "adapters/a-js").is_err());
    }

    #[test]
    fn every_javascript_adapter_of_the_checkout_is_excluded_from_the_workspace() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for entry in std::fs::read_dir(root.join("adapters")).unwrap() {
            let dir = entry.unwrap().path();
            if dir.join("package.json").is_file() && !dir.join("Cargo.toml").is_file() {
                let member = format!("adapters/{}", dir.file_name().unwrap().to_string_lossy());
                assert_eq!(
                    exclude_member(WORKSPACE_MANIFEST, &member).unwrap(),
                    None,
                    "{member} is not in the workspace's exclude"
                );
            }
        }
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

    #[test]
    fn the_embedded_js_sdk_is_every_file_a_js_adapter_needs() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk-js");
        let mut on_disk = vec!["README.md".to_string(), "package.json".to_string()];
        for sub in ["src", "testing"] {
            for e in std::fs::read_dir(root.join(sub)).unwrap() {
                on_disk.push(format!(
                    "{sub}/{}",
                    e.unwrap().file_name().to_string_lossy()
                ));
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = SDK_JS_SOURCES.iter().map(|(f, _)| f.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "update SDK_JS_SOURCES");
    }
}
