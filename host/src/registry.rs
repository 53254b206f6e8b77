//! The adapters the host serves, by slot name, with their versions.
//!
//! A slot holds its active version and the previous ones (for rollback and
//! for merchants pinned to a digest). Readers take the slot map's lock only
//! to clone an `Arc`, so a call in flight keeps the version it started with
//! however the slot changes, and a swap is one pointer replacement.
//!
//! Changing a slot ([`Registry::install`], [`Registry::rollback`]) is
//! serialized by a second lock that readers never touch: a candidate is
//! compiled, described and checked against every merchant that would use
//! it *before* the swap, so a refused version changes nothing.

use crate::contract::AdapterInfo;
use crate::error::LoadError;
use crate::merchant::{ConfigError, MerchantConfig};
use crate::metrics::Metrics;
use crate::runtime::{LoadedAdapter, Runtime};
use anyhow::{Context, Result};
use sha2::Digest as _;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// How a version came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file of the adapters directory (at start or seen by the watcher).
    Directory(PathBuf),
    /// `PUT /admin/adapters/{name}`.
    Admin,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Directory(p) => write!(f, "directory:{}", p.display()),
            Source::Admin => f.write_str("admin"),
        }
    }
}

/// One loaded version of an adapter.
#[derive(Debug)]
pub struct AdapterVersion {
    /// Hex sha256 of the component's bytes.
    pub digest: String,
    /// The version `describe` reported.
    pub version: String,
    /// Unix milliseconds.
    pub loaded_at: i64,
    pub source: Source,
    pub adapter: Arc<LoadedAdapter>,
    /// The component, so a rollback can be written back to the adapters
    /// directory and survive a restart.
    bytes: Arc<[u8]>,
}

impl AdapterVersion {
    pub fn info(&self) -> &AdapterInfo {
        &self.adapter.info
    }
}

/// A merchant as the registry sees it: which slot it uses, its pin, and
/// the configuration every candidate version must accept.
#[derive(Debug, Clone)]
pub struct SlotUser {
    pub merchant: String,
    pub slot: String,
    /// Hex digest; `None` follows the active version.
    pub pin: Option<String>,
    pub config: MerchantConfig,
}

/// What an install or rollback did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SwapOutcome {
    pub adapter: String,
    pub digest: String,
    pub version: String,
    pub previous_digest: Option<String>,
    pub previous_version: Option<String>,
    /// The bytes were already the active version: nothing changed.
    pub unchanged: bool,
}

/// Why a version was not made active. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Compile, link, import check, contract version or describe failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(
        "the component describes itself as `{found}`, but it was offered for slot `{slot}`; upload it to /admin/adapters/{found} or name the file {found}.wasm"
    )]
    WrongName { slot: String, found: String },
    /// The new configuration schema does not accept a merchant's settings.
    #[error("the new version's configuration schema refuses a merchant using it: {0}")]
    Schema(ConfigError),
    #[error("no adapter `{0}` is loaded")]
    UnknownSlot(String),
    #[error("adapter `{slot}` keeps no version with digest `{digest}`")]
    UnknownVersion { slot: String, digest: String },
    #[error("adapter `{0}` has no previous version to roll back to")]
    NothingToRollBack(String),
}

impl Refusal {
    /// A stable machine-readable reason.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Load(LoadError::Compile(_)) => "not_a_component",
            Refusal::Load(LoadError::ForeignImport(_)) => "foreign_import",
            Refusal::Load(LoadError::NotAnAdapter(_)) => "not_an_adapter",
            Refusal::Load(LoadError::IncompatibleContract { .. }) => "incompatible_contract",
            Refusal::Load(LoadError::Describe(_)) => "describe_failed",
            Refusal::Load(LoadError::Cache(_)) => "cache_failed",
            Refusal::WrongName { .. } => "wrong_name",
            Refusal::Schema(_) => "incompatible_schema",
            Refusal::UnknownSlot(_) => "unknown_adapter",
            Refusal::UnknownVersion { .. } => "unknown_version",
            Refusal::NothingToRollBack(_) => "nothing_to_roll_back",
        }
    }
}

/// Why no version could be handed out for a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("adapter `{0}` is not loaded")]
    NotLoaded(String),
    #[error(
        "this merchant is pinned to version {digest} of adapter `{slot}`, which is not loaded; upload that version or change the pin"
    )]
    PinnedMissing { slot: String, digest: String },
}

/// One row of [`Registry::versions`].
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct VersionView {
    pub digest: String,
    pub version: String,
    /// Unix milliseconds.
    pub loaded_at: i64,
    /// `admin` or `directory:<path>`.
    pub source: String,
    pub active: bool,
    /// Merchants pinned to this digest.
    pub pinned_by: Vec<String>,
}

struct Slot {
    active: Arc<AdapterVersion>,
    /// Newest first.
    previous: VecDeque<Arc<AdapterVersion>>,
}

pub struct Registry {
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
    keep: usize,
    /// Where installs are written back (`<dir>/<slot>.wasm`), so what is
    /// active is also what a restart loads.
    dir: Option<PathBuf>,
    slots: RwLock<HashMap<String, Slot>>,
    users: RwLock<Vec<SlotUser>>,
    /// Serializes changes; never taken by readers.
    changing: Mutex<()>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("adapters", &self.names())
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Registry {
    /// `keep`: how many previous versions per slot stay loaded.
    pub fn new(runtime: Arc<Runtime>, metrics: Arc<Metrics>, keep: usize) -> Self {
        Self {
            runtime,
            metrics,
            keep,
            dir: None,
            slots: RwLock::default(),
            users: RwLock::default(),
            changing: Mutex::new(()),
        }
    }

    /// Writes every successful install and rollback to `<dir>/<slot>.wasm`.
    pub fn persist_to(mut self, dir: PathBuf) -> Self {
        self.dir = Some(dir);
        self
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Declares the merchants and their pins; later installs must accept
    /// their configurations.
    pub fn set_users(&self, users: Vec<SlotUser>) {
        for u in &users {
            if let Some(pin) = &u.pin
                && self.get_for(&u.slot, Some(pin)).is_err()
            {
                tracing::warn!(merchant = %u.merchant, adapter = %u.slot, pin = %pin,
                    "merchant is pinned to an adapter version that is not loaded; its payments fail until it is uploaded or the pin changes");
            }
        }
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = users;
    }

    /// The merchant's pin, if it has one.
    pub fn pin_of(&self, merchant: &str) -> Option<String> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|u| u.merchant == merchant)
            .and_then(|u| u.pin.clone())
    }

    /// `(merchant, digest)` of every merchant pinned within `slot`.
    pub fn pins(&self, slot: &str) -> Vec<(String, String)> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|u| u.slot == slot)
            .filter_map(|u| Some((u.merchant.clone(), u.pin.clone()?)))
            .collect()
    }

    /// The active version of a slot.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedAdapter>> {
        self.active(name).map(|v| v.adapter.clone())
    }

    /// The active version of a slot, with its metadata.
    pub fn active(&self, name: &str) -> Option<Arc<AdapterVersion>> {
        self.slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .map(|s| s.active.clone())
    }

    /// The version a merchant's call uses: its pinned digest while that is
    /// loaded, else (unpinned) the active one.
    pub fn get_for(
        &self,
        name: &str,
        pin: Option<&str>,
    ) -> Result<Arc<LoadedAdapter>, Unavailable> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        let slot = slots
            .get(name)
            .ok_or_else(|| Unavailable::NotLoaded(name.into()))?;
        match pin {
            None => Ok(slot.active.adapter.clone()),
            Some(pin) => std::iter::once(&slot.active)
                .chain(slot.previous.iter())
                .find(|v| v.digest == pin)
                .map(|v| v.adapter.clone())
                .ok_or_else(|| Unavailable::PinnedMissing {
                    slot: name.into(),
                    digest: pin.into(),
                }),
        }
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<_> = self
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// The active version first, then the previous ones, newest first.
    pub fn versions(&self, name: &str) -> Option<Vec<VersionView>> {
        let pins = self.pins(name);
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        let slot = slots.get(name)?;
        Some(
            std::iter::once(&slot.active)
                .chain(slot.previous.iter())
                .map(|v| VersionView {
                    digest: v.digest.clone(),
                    version: v.version.clone(),
                    loaded_at: v.loaded_at,
                    source: v.source.to_string(),
                    active: Arc::ptr_eq(v, &slot.active),
                    pinned_by: pins
                        .iter()
                        .filter(|(_, d)| *d == v.digest)
                        .map(|(m, _)| m.clone())
                        .collect(),
                })
                .collect(),
        )
    }

    /// Validates `bytes` as the next version of `slot` and, only if every
    /// check passes, makes it active. Blocking: it may compile.
    pub fn install(
        &self,
        slot: &str,
        bytes: &[u8],
        source: Source,
    ) -> Result<SwapOutcome, Refusal> {
        let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        self.install_locked(slot, bytes, source)
    }

    fn install_locked(
        &self,
        slot: &str,
        bytes: &[u8],
        source: Source,
    ) -> Result<SwapOutcome, Refusal> {
        let digest = hex::encode(sha2::Sha256::digest(bytes));
        let previous = self.active(slot);
        if let Some(p) = previous.as_ref().filter(|p| p.digest == digest) {
            tracing::debug!(adapter = slot, %digest, %source, "adapter unchanged");
            return Ok(SwapOutcome {
                adapter: slot.into(),
                digest: digest.clone(),
                version: p.version.clone(),
                previous_digest: Some(digest),
                previous_version: Some(p.version.clone()),
                unchanged: true,
            });
        }
        let prev_digest = previous.as_ref().map(|p| p.digest.as_str()).unwrap_or("-");
        let refuse = |r: Refusal| {
            tracing::warn!(adapter = slot, %digest, previous_digest = prev_digest, %source,
                outcome = "refused", reason = r.code(), error = %r, "adapter version refused");
            self.metrics.registry_event("install", "refused");
            r
        };
        let adapter = self.runtime.load(bytes).map_err(|e| refuse(e.into()))?;
        if adapter.info.name != slot {
            return Err(refuse(Refusal::WrongName {
                slot: slot.into(),
                found: adapter.info.name.clone(),
            }));
        }
        self.check_users(slot, &adapter.info).map_err(refuse)?;
        let version = Arc::new(AdapterVersion {
            digest: digest.clone(),
            version: adapter.info.version.clone(),
            loaded_at: now_ms(),
            source: source.clone(),
            adapter,
            bytes: bytes.into(),
        });
        let outcome = self.swap(slot, version, &source, "install");
        Ok(outcome)
    }

    /// Every unpinned merchant of `slot` must be served by `info`.
    fn check_users(&self, slot: &str, info: &AdapterInfo) -> Result<(), Refusal> {
        let users = self.users.read().unwrap_or_else(|p| p.into_inner());
        for u in users.iter().filter(|u| u.slot == slot && u.pin.is_none()) {
            u.config.validate(info).map_err(Refusal::Schema)?;
        }
        Ok(())
    }

    /// Makes `next` active: one replacement under the write lock. Returns
    /// what it replaced.
    fn swap(
        &self,
        slot: &str,
        next: Arc<AdapterVersion>,
        source: &Source,
        action: &'static str,
    ) -> SwapOutcome {
        let pinned: Vec<String> = self.pins(slot).into_iter().map(|(_, d)| d).collect();
        let mut dropped = Vec::new();
        let previous: Option<Arc<AdapterVersion>> = {
            let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
            match slots.get_mut(slot) {
                None => {
                    slots.insert(
                        slot.to_string(),
                        Slot {
                            active: next.clone(),
                            previous: VecDeque::new(),
                        },
                    );
                    None
                }
                Some(s) => {
                    let old = std::mem::replace(&mut s.active, next.clone());
                    s.previous
                        .retain(|v| v.digest != next.digest && v.digest != old.digest);
                    s.previous.push_front(old.clone());
                    // Oldest unpinned versions go first; a pinned one stays
                    // while its merchant needs it.
                    let mut unpinned = 0;
                    s.previous.retain(|v| {
                        if pinned.contains(&v.digest) {
                            return true;
                        }
                        unpinned += 1;
                        let keep = unpinned <= self.keep;
                        if !keep {
                            dropped.push(v.digest.clone());
                        }
                        keep
                    });
                    Some(old)
                }
            }
        };
        // Versions no longer kept need not keep their compiled code in
        // memory (calls in flight hold their own reference to it).
        for digest in dropped {
            self.runtime.forget(&digest);
        }
        // The first version of a slot is a load, not a swap.
        let action = if previous.is_none() { "load" } else { action };
        tracing::info!(
            adapter = slot,
            digest = %next.digest,
            version = %next.version,
            previous_digest = previous.as_ref().map(|p| p.digest.as_str()).unwrap_or("-"),
            previous_version = previous.as_ref().map(|p| p.version.as_str()).unwrap_or("-"),
            %source,
            action,
            outcome = if action == "load" { "loaded" } else { "swapped" },
            "adapter version active"
        );
        self.metrics.registry_event(
            action,
            if action == "load" {
                "loaded"
            } else {
                "swapped"
            },
        );
        // A file just installed from its own place needs no write-back.
        let from_there = matches!((&next.source, &self.dir), (Source::Directory(p), Some(d)) if action != "rollback" && *p == d.join(format!("{slot}.wasm")));
        if !from_there {
            self.persist(slot, &next);
        }
        SwapOutcome {
            adapter: slot.into(),
            digest: next.digest.clone(),
            version: next.version.clone(),
            previous_digest: previous.as_ref().map(|p| p.digest.clone()),
            previous_version: previous.as_ref().map(|p| p.version.clone()),
            unchanged: false,
        }
    }

    /// Writes the active version to `<dir>/<slot>.wasm` (atomically), so a
    /// restart starts from it.
    fn persist(&self, slot: &str, v: &AdapterVersion) {
        let Some(dir) = &self.dir else { return };
        let path = dir.join(format!("{slot}.wasm"));
        if let Err(e) = crate::runtime::write_atomic(&path, &v.bytes) {
            // Serving goes on from memory; only a restart would go back.
            tracing::warn!(adapter = slot, digest = %v.digest, path = %path.display(), error = %e,
                "could not write the active adapter version to the adapters directory; a restart would load the file there");
        }
    }

    /// Makes a kept version active again: `to` names its digest, `None`
    /// means the one active before the current one.
    pub fn rollback(&self, slot: &str, to: Option<&str>) -> Result<SwapOutcome, Refusal> {
        let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let refuse = |r: Refusal| {
            tracing::warn!(adapter = slot, to = to.unwrap_or("previous"), outcome = "refused",
                reason = r.code(), error = %r, "adapter rollback refused");
            self.metrics.registry_event("rollback", "refused");
            r
        };
        let (current, target) = {
            let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
            let s = slots
                .get(slot)
                .ok_or_else(|| refuse(Refusal::UnknownSlot(slot.into())))?;
            let target = match to {
                None => s
                    .previous
                    .front()
                    .cloned()
                    .ok_or_else(|| refuse(Refusal::NothingToRollBack(slot.into())))?,
                Some(d) if d == s.active.digest => s.active.clone(),
                Some(d) => s
                    .previous
                    .iter()
                    .find(|v| v.digest == d)
                    .cloned()
                    .ok_or_else(|| {
                        refuse(Refusal::UnknownVersion {
                            slot: slot.into(),
                            digest: d.into(),
                        })
                    })?,
            };
            (s.active.clone(), target)
        };
        if Arc::ptr_eq(&current, &target) {
            return Ok(SwapOutcome {
                adapter: slot.into(),
                digest: current.digest.clone(),
                version: current.version.clone(),
                previous_digest: Some(current.digest.clone()),
                previous_version: Some(current.version.clone()),
                unchanged: true,
            });
        }
        // Merchants' settings do not change at run time, but a version kept
        // for a pinned merchant was never checked against the others.
        self.check_users(slot, target.info()).map_err(refuse)?;
        Ok(self.swap(slot, target, &Source::Admin, "rollback"))
    }

    /// Installs `path` (named `<slot>.wasm`) through the same checks as an
    /// upload. Skips the file when it already is the active version.
    pub fn install_file(&self, path: &Path) -> Result<Option<SwapOutcome>, Refusal> {
        let Some(slot) = slot_of(path) else {
            return Ok(None);
        };
        // Read under the change lock: an install that writes this file
        // while we wait must not be undone by bytes read before it.
        let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read adapter file");
                return Ok(None);
            }
        };
        self.install_locked(&slot, &bytes, Source::Directory(path.to_path_buf()))
            .map(|o| (!o.unchanged).then_some(o))
    }

    /// Loads every `<slot>.wasm` in `dir` at start. A file that fails to
    /// load is logged and skipped: one broken adapter must not take the
    /// others down (a merchant whose adapter is missing is refused at
    /// start instead).
    pub fn load_dir(&self, dir: &Path) -> Result<Vec<Arc<LoadedAdapter>>> {
        let mut loaded = Vec::new();
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading adapters directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| slot_of(p).is_some())
            .collect();
        paths.sort();
        for path in paths {
            if let Ok(Some(_)) = self.install_file(&path)
                && let Some(a) = slot_of(&path).and_then(|s| self.get(&s))
            {
                loaded.push(a);
            }
        }
        Ok(loaded)
    }
}

/// The slot a directory entry stands for: `<slot>.wasm`, with a name that
/// could be a slot (temporary files of copy-then-rename writers are not).
pub fn slot_of(path: &Path) -> Option<String> {
    if path.extension()? != "wasm" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let ok = !stem.is_empty()
        && stem.len() <= 64
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| stem.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_come_from_wasm_file_names() {
        assert_eq!(
            slot_of(Path::new("/a/wechat-v2.wasm")).as_deref(),
            Some("wechat-v2")
        );
        // Temporary files of copy-then-rename writers and other files are
        // not slots.
        for p in [
            "/a/wechat-v2.wasm.tmp-1-2",
            "/a/.wechat-v2.wasm.swp",
            "/a/wechat v2.wasm",
            "/a/README.md",
            "/a/.wasm",
        ] {
            assert_eq!(slot_of(Path::new(p)), None, "{p}");
        }
    }

    #[test]
    fn refusals_have_stable_codes_and_say_what_to_do() {
        let r = Refusal::WrongName {
            slot: "wechat-v2".into(),
            found: "rsa-sign".into(),
        };
        assert_eq!(r.code(), "wrong_name");
        assert!(r.to_string().contains("/admin/adapters/rsa-sign"), "{r}");
        let u = Unavailable::PinnedMissing {
            slot: "wechat-v2".into(),
            digest: "ab".repeat(32),
        };
        assert!(u.to_string().contains(&"ab".repeat(32)));
    }
}
