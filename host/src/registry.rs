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
//!
//! Every way in (upload, watched directory, start) runs the same checks:
//! the operator's egress list for the slot, every merchant's secrets
//! staying secret (pinned merchants too), and the full schema check of the
//! merchants that follow the active version.
//!
//! With [`Registry::persist_to`], what a slot keeps is also on disk:
//! `<dir>/<slot>.wasm` is the active version and
//! `<dir>/versions/<slot>/<digest>.wasm` every kept one, with
//! `index.json` giving their order, so rollback and pins survive a
//! restart. A refused file of the directory is moved to `<dir>/refused/`
//! with a `.reason` file, so it is not loaded again.

use crate::contract::AdapterInfo;
use crate::contract::FieldKind;
use crate::error::LoadError;
use crate::merchant::{ConfigError, FieldValue, MerchantConfig};
use crate::metrics::Metrics;
use crate::runtime::{LoadedAdapter, Runtime};
use crate::store::SharedVersion;
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
    /// Published by another replica through the shared store.
    Shared,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Directory(p) => write!(f, "directory:{}", p.display()),
            Source::Admin => f.write_str("admin"),
            Source::Shared => f.write_str("shared"),
        }
    }
}

impl Source {
    /// The inverse of `Display`, for the history index.
    fn parse(text: &str) -> Self {
        match text.strip_prefix("directory:") {
            Some(p) => Source::Directory(p.into()),
            None if text == "shared" => Source::Shared,
            None => Source::Admin,
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

    /// How the version is listed on disk (`index.json`) and in the shared
    /// store.
    fn entry(&self) -> SharedVersion {
        SharedVersion {
            digest: self.digest.clone(),
            version: self.version.clone(),
            loaded_at: self.loaded_at,
            source: self.source.to_string(),
        }
    }
}

/// A merchant as the registry sees it: which slot it uses, its pin, and
/// the configuration every candidate version must accept (its secret
/// fields must stay secret in every version; an unpinned merchant's whole
/// configuration must fit the active one).
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
    /// A declared egress host is not in the operator's list for the slot.
    #[error(
        "the component declares egress host `{host}`, which the operator does not allow for adapter `{slot}`; \
         if it should be reachable, add `{host}:<port>` to `[adapters.{slot}] egress` and restart"
    )]
    EgressHost { slot: String, host: String },
    /// The schema no longer marks a field secret that a merchant
    /// configures as a secret: the version would receive it as plain text.
    #[error(
        "the component's schema does not mark field `{field}` secret, but merchant `{merchant}` configures it as a secret \
         (pinned or not); payhost never hands a secret to an adapter as plain text, so adapter `{slot}` keeps its current version"
    )]
    SecretAsText {
        slot: String,
        merchant: String,
        field: String,
    },
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
            Refusal::EgressHost { .. } => "egress_host_not_allowed",
            Refusal::SecretAsText { .. } => "secret_field_not_secret",
        }
    }

    /// Bytes refused as not a component may be a write still in progress:
    /// such a file stays where it is, since the writer's next event makes
    /// payhost read it again.
    fn may_be_partial(&self) -> bool {
        matches!(
            self,
            Refusal::Load(LoadError::Compile(_) | LoadError::Cache(_))
        )
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

/// What a slot keeps, as it is published to the other replicas.
#[derive(Debug, Clone)]
pub struct SharedState {
    /// Active first, then the previous versions, newest first.
    pub versions: Vec<SharedVersion>,
    /// The bytes of each, by digest.
    pub blobs: Vec<(String, Arc<[u8]>)>,
}

/// One row of [`Registry::versions`].
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct VersionView {
    pub digest: String,
    pub version: String,
    pub loaded_at: crate::resources::Timestamp,
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

impl Slot {
    /// Drops the oldest previous versions beyond `keep`, except those a
    /// merchant is pinned to; returns the digests dropped.
    fn retain(&mut self, pinned: &[String], keep: usize) -> Vec<String> {
        let mut dropped = Vec::new();
        let mut unpinned = 0;
        self.previous.retain(|v| {
            if pinned.contains(&v.digest) {
                return true;
            }
            unpinned += 1;
            let kept = unpinned <= keep;
            if !kept {
                dropped.push(v.digest.clone());
            }
            kept
        });
        dropped
    }

    fn all(&self) -> impl Iterator<Item = &Arc<AdapterVersion>> {
        std::iter::once(&self.active).chain(self.previous.iter())
    }
}

/// `versions/<slot>/index.json`: the active version first, then the
/// previous ones, newest first (the order rollback follows).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Index {
    versions: Vec<SharedVersion>,
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
    /// Why the last directory file of a slot was refused, for the start's
    /// error when the slot ends up with no version.
    refused: Mutex<HashMap<String, String>>,
    /// Serializes changes; never taken by readers.
    changing: Mutex<()>,
    /// Where each slot's change is announced, to be published to the other
    /// replicas (`adapter_sync`). A change whose source is
    /// [`Source::Shared`] came from them and is not announced back.
    publisher: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<String>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("adapters", &self.names())
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

use crate::clock::now_ms;

impl Registry {
    /// `keep`: how many previous versions per slot stay loaded (and, with
    /// [`Registry::persist_to`], on disk).
    pub fn new(runtime: Arc<Runtime>, metrics: Arc<Metrics>, keep: usize) -> Self {
        Self {
            runtime,
            metrics,
            keep,
            dir: None,
            slots: RwLock::default(),
            users: RwLock::default(),
            refused: Mutex::default(),
            changing: Mutex::new(()),
            publisher: std::sync::OnceLock::new(),
        }
    }

    /// Writes every successful install and rollback to `<dir>/<slot>.wasm`
    /// and keeps every kept version in `<dir>/versions/<slot>/`, which
    /// [`Registry::load_dir`] restores.
    pub fn persist_to(mut self, dir: PathBuf) -> Self {
        self.dir = Some(dir);
        self
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Declares the merchants and their pins; later installs (and, when
    /// called before [`Registry::load_dir`], the start's) must accept their
    /// configurations.
    pub fn set_users(&self, users: Vec<SlotUser>) {
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = users;
    }

    /// Logs every merchant pinned to a version that is not loaded.
    pub fn warn_missing_pins(&self) {
        let users = self.users.read().unwrap_or_else(|p| p.into_inner()).clone();
        for u in &users {
            if let Some(pin) = &u.pin
                && self.get_for(&u.slot, Some(pin)).is_err()
            {
                tracing::warn!(merchant = %u.merchant, adapter = %u.slot, pin = %pin,
                    "merchant is pinned to an adapter version that is not loaded; its payments fail until it is uploaded or the pin changes");
            }
        }
    }

    /// Why the directory's file for `slot` was last refused, if it was.
    pub fn last_refusal(&self, slot: &str) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(slot)
            .cloned()
    }

    /// The hosts the active version of `slot` may reach among those it
    /// declares, as the operator allows them (`host:port`).
    pub fn effective_hosts(&self, slot: &str) -> Vec<String> {
        let Some(active) = self.active(slot) else {
            return Vec::new();
        };
        self.runtime
            .config()
            .egress
            .effective_hosts(slot, &active.info().egress_hosts)
            .iter()
            .map(ToString::to_string)
            .collect()
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
                    loaded_at: crate::resources::Timestamp(v.loaded_at),
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
        let version = self
            .candidate(slot, bytes, digest.clone(), source.clone(), true)
            .map_err(refuse)?;
        let outcome = self.swap(slot, version, &source, "install");
        Ok(outcome)
    }

    /// `bytes` compiled and described as a version of `slot`, through the
    /// checks every version must pass ([`Registry::check`]; with `active`,
    /// those of an active one too).
    fn candidate(
        &self,
        slot: &str,
        bytes: &[u8],
        digest: String,
        source: Source,
        active: bool,
    ) -> Result<Arc<AdapterVersion>, Refusal> {
        let adapter = self.runtime.load(bytes)?;
        if adapter.info.name != slot {
            return Err(Refusal::WrongName {
                slot: slot.into(),
                found: adapter.info.name.clone(),
            });
        }
        self.check(slot, &adapter.info, active)?;
        Ok(Arc::new(AdapterVersion {
            digest,
            version: adapter.info.version.clone(),
            loaded_at: now_ms(),
            source,
            adapter,
            bytes: bytes.into(),
        }))
    }

    /// What every version of `slot` must satisfy: its declared hosts stay
    /// within the operator's list, and no merchant's secret (pinned or
    /// not) would reach it as plain text. With `active`, also: every
    /// unpinned merchant's configuration fits its schema.
    fn check(&self, slot: &str, info: &AdapterInfo, active: bool) -> Result<(), Refusal> {
        let egress = &self.runtime.config().egress;
        if let Some(host) = egress.host_outside_list(slot, &info.egress_hosts) {
            return Err(Refusal::EgressHost {
                slot: slot.into(),
                host,
            });
        }
        if !egress.has_list(slot) && !info.egress_hosts.is_empty() {
            tracing::warn!(adapter = slot, declared = ?info.egress_hosts,
                "the adapter declares egress hosts, but the operator lists none for its slot ([adapters.{slot}] egress): they are unreachable");
        }
        let users = self.users.read().unwrap_or_else(|p| p.into_inner());
        for u in users.iter().filter(|u| u.slot == slot) {
            let exposed = u.config.fields.iter().find(|(name, value)| {
                matches!(value, FieldValue::Secret(_))
                    && info
                        .config_schema
                        .iter()
                        .any(|f| &f.name == *name && f.kind != FieldKind::Secret)
            });
            if let Some((field, _)) = exposed {
                return Err(Refusal::SecretAsText {
                    slot: slot.into(),
                    merchant: u.merchant.clone(),
                    field: field.clone(),
                });
            }
        }
        if active {
            for u in users.iter().filter(|u| u.slot == slot && u.pin.is_none()) {
                u.config.validate(info).map_err(Refusal::Schema)?;
            }
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
        let dropped;
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
                    dropped = Vec::new();
                    None
                }
                Some(s) => {
                    let old = std::mem::replace(&mut s.active, next.clone());
                    s.previous
                        .retain(|v| v.digest != next.digest && v.digest != old.digest);
                    s.previous.push_front(old.clone());
                    // Oldest unpinned versions go first; a pinned one stays
                    // while its merchant needs it.
                    dropped = s.retain(&pinned, self.keep);
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
        self.persist_history(slot);
        if *source != Source::Shared
            && let Some(publisher) = self.publisher.get()
        {
            let _ = publisher.send(slot.to_string());
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
        self.rollback_locked(slot, to, &Source::Admin)
    }

    fn rollback_locked(
        &self,
        slot: &str,
        to: Option<&str>,
        source: &Source,
    ) -> Result<SwapOutcome, Refusal> {
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
        self.check(slot, target.info(), true).map_err(refuse)?;
        Ok(self.swap(slot, target, source, "rollback"))
    }

    /// Announces every later change of a slot made on this replica (not
    /// those [`Registry::adopt`] applies) on `publisher`. Set once.
    pub fn publish_changes_to(&self, publisher: tokio::sync::mpsc::UnboundedSender<String>) {
        let _ = self.publisher.set(publisher);
    }

    /// How many previous versions a slot keeps.
    pub fn keep(&self) -> usize {
        self.keep
    }

    /// Whether `slot` keeps the version `digest` (active or previous).
    pub fn keeps(&self, slot: &str, digest: &str) -> bool {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots
            .get(slot)
            .is_some_and(|s| s.all().any(|v| v.digest == digest))
    }

    /// What `slot` keeps, active first, with the bytes of each version:
    /// what [`crate::store::Store::publish_adapter_slot`] takes.
    pub fn shared_state(&self, slot: &str) -> Option<SharedState> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        let s = slots.get(slot)?;
        Some(SharedState {
            versions: s.all().map(|v| v.entry()).collect(),
            blobs: s
                .all()
                .map(|v| (v.digest.clone(), v.bytes.clone()))
                .collect(),
        })
    }

    /// Makes `digest` the active version of `slot` as another replica
    /// published it, through the same checks as any change, without
    /// announcing it back. A version this replica keeps is swapped to
    /// (compiled already); any other needs its `bytes`. `Ok(None)`: it was
    /// active already.
    pub fn adopt(
        &self,
        slot: &str,
        digest: &str,
        bytes: Option<&[u8]>,
    ) -> Result<Option<SwapOutcome>, Refusal> {
        let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        if self.active(slot).is_some_and(|a| a.digest == digest) {
            return Ok(None);
        }
        if self.keeps(slot, digest) {
            return self
                .rollback_locked(slot, Some(digest), &Source::Shared)
                .map(Some);
        }
        let Some(bytes) = bytes else {
            return Err(Refusal::UnknownVersion {
                slot: slot.into(),
                digest: digest.into(),
            });
        };
        if hex::encode(sha2::Sha256::digest(bytes)) != digest {
            return Err(Refusal::Load(LoadError::Compile(format!(
                "the shared store's bytes for version {digest} do not have that digest"
            ))));
        }
        self.install_locked(slot, bytes, Source::Shared).map(Some)
    }

    /// Keeps `bytes`, a version another replica published, as a previous
    /// version of `slot` without making it active: for a merchant pinned to
    /// it here. Checked as a kept version is (its name, egress hosts and the
    /// merchants' secrets); `Ok(false)`: kept already.
    pub fn keep_shared(&self, slot: &str, bytes: &[u8]) -> Result<bool, Refusal> {
        let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let digest = hex::encode(sha2::Sha256::digest(bytes));
        if self.keeps(slot, &digest) {
            return Ok(false);
        }
        if self.active(slot).is_none() {
            return Err(Refusal::UnknownSlot(slot.into()));
        }
        let version = self.candidate(slot, bytes, digest, Source::Shared, false)?;
        if let Some(s) = self
            .slots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(slot)
        {
            s.previous.push_back(version);
        }
        self.persist_history(slot);
        Ok(true)
    }

    /// Installs `path` (named `<slot>.wasm`) through the same checks as an
    /// upload. Skips the file when it already is the active version. A
    /// refused file is moved aside (see [`Registry::set_aside`]).
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
        match self.install_locked(&slot, &bytes, Source::Directory(path.to_path_buf())) {
            Ok(o) => {
                self.refused
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&slot);
                Ok((!o.unchanged).then_some(o))
            }
            Err(r) => {
                self.refused
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(slot.clone(), format!("{}: {r}", r.code()));
                if !r.may_be_partial() && self.active(&slot).is_some() {
                    self.set_aside(&slot, path, &bytes, &r);
                }
                Err(r)
            }
        }
    }

    /// Moves a refused file of the directory to `<dir>/refused/` with a
    /// `.reason` file, so neither the watcher nor the next start loads it
    /// again, then writes the active version back in its place. Only when
    /// the slot has an active version: a slot's only file stays, and the
    /// start's error names the refusal.
    fn set_aside(&self, slot: &str, path: &Path, bytes: &[u8], r: &Refusal) {
        let Some(dir) = path.parent() else { return };
        let digest = hex::encode(sha2::Sha256::digest(bytes));
        // A writer may have replaced the file since it was read; its new
        // bytes get their own event and check.
        let unchanged = std::fs::read(path)
            .map(|now| sha2::Sha256::digest(&now)[..] == sha2::Sha256::digest(bytes)[..])
            .unwrap_or(false);
        if !unchanged {
            return;
        }
        let refused = dir.join("refused");
        let name = format!("{slot}-{}-{}.wasm", &digest[..16], now_ms());
        let target = refused.join(&name);
        let moved = std::fs::create_dir_all(&refused)
            .and_then(|_| std::fs::rename(path, &target))
            .and_then(|_| {
                std::fs::write(
                    refused.join(format!("{name}.reason")),
                    format!(
                        "adapter `{slot}`, digest {digest}, refused at {} (Unix ms)\n{}: {r}\n",
                        now_ms(),
                        r.code()
                    ),
                )
            });
        match moved {
            Ok(()) => {
                tracing::warn!(adapter = slot, %digest, from = %path.display(), to = %target.display(),
                    reason = r.code(), "refused adapter file moved aside; it will not be loaded again");
                // The directory shows what serves again.
                if let Some(active) = self.active(slot)
                    && self.dir.as_deref() == Some(dir)
                {
                    self.persist(slot, &active);
                }
            }
            Err(e) => {
                tracing::warn!(adapter = slot, %digest, path = %path.display(), error = %e,
                    "could not move the refused adapter file aside; it is refused again whenever it is read");
            }
        }
    }

    /// Where the kept versions of `slot` are written.
    fn versions_dir(&self, slot: &str) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join("versions").join(slot))
    }

    /// Writes every kept version of `slot` (bytes by digest, and their
    /// order) and removes the versions no longer kept. Called under the
    /// change lock. Failures are logged: serving goes on from memory.
    fn persist_history(&self, slot: &str) {
        let Some(vdir) = self.versions_dir(slot) else {
            return;
        };
        let kept: Vec<Arc<AdapterVersion>> = {
            let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
            match slots.get(slot) {
                Some(s) => s.all().cloned().collect(),
                None => return,
            }
        };
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&vdir)?;
            for v in &kept {
                let path = vdir.join(format!("{}.wasm", v.digest));
                if !path.is_file() {
                    crate::runtime::write_atomic(&path, &v.bytes)?;
                }
            }
            let index = Index {
                versions: kept.iter().map(|v| v.entry()).collect(),
            };
            let json = serde_json::to_vec_pretty(&index).map_err(std::io::Error::other)?;
            crate::runtime::write_atomic(&vdir.join("index.json"), &json)?;
            for entry in std::fs::read_dir(&vdir)? {
                let path = entry?.path();
                let stale = path.extension().is_some_and(|e| e == "wasm")
                    && path
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .is_some_and(|d| !kept.iter().any(|v| v.digest == d));
                if stale {
                    std::fs::remove_file(&path)?;
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(adapter = slot, dir = %vdir.display(), error = %e,
                "could not write the kept adapter versions; after a restart rollback and pins to them would not work");
        }
    }

    /// Loads the kept versions of `slot` written by an earlier run, through
    /// the checks every version must pass; the first one loaded is active.
    /// A version that no longer loads or passes is logged and left out.
    fn restore(&self, slot: &str) {
        let Some(vdir) = self.versions_dir(slot) else {
            return;
        };
        let index: Index = match std::fs::read(vdir.join("index.json")) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(adapter = slot, dir = %vdir.display(), error = %e,
                        "unreadable index of kept adapter versions; starting from the directory's file only");
                    return;
                }
            },
            Err(_) => return,
        };
        let mut restored = Vec::new();
        for e in index.versions {
            let path = vdir.join(format!("{}.wasm", e.digest));
            let loaded = std::fs::read(&path)
                .map_err(|err| format!("cannot read {}: {err}", path.display()))
                .and_then(|bytes| {
                    if hex::encode(sha2::Sha256::digest(&bytes)) != e.digest {
                        return Err(format!("{} does not have its digest", path.display()));
                    }
                    let adapter = self.runtime.load(&bytes).map_err(|err| err.to_string())?;
                    if adapter.info.name != slot {
                        return Err(format!("it describes itself as `{}`", adapter.info.name));
                    }
                    self.check(slot, &adapter.info, false)
                        .map_err(|r| format!("{}: {r}", r.code()))?;
                    Ok(Arc::new(AdapterVersion {
                        digest: e.digest.clone(),
                        version: adapter.info.version.clone(),
                        loaded_at: e.loaded_at,
                        source: Source::parse(&e.source),
                        adapter,
                        bytes: bytes.into(),
                    }))
                });
            match loaded {
                Ok(v) => restored.push(v),
                Err(why) => {
                    tracing::warn!(adapter = slot, digest = %e.digest, error = %why,
                        "kept adapter version not restored");
                    self.metrics.registry_event("load", "refused");
                }
            }
        }
        if restored.is_empty() {
            return;
        }
        let pinned: Vec<String> = self.pins(slot).into_iter().map(|(_, d)| d).collect();
        let active = restored.remove(0);
        let mut s = Slot {
            active: active.clone(),
            previous: restored.into(),
        };
        for digest in s.retain(&pinned, self.keep) {
            self.runtime.forget(&digest);
        }
        let kept = s.previous.len();
        self.slots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(slot.to_string(), s);
        tracing::info!(adapter = slot, digest = %active.digest, version = %active.version,
            previous_kept = kept, action = "load", outcome = "loaded",
            "adapter versions restored from the kept versions");
        self.metrics.registry_event("load", "loaded");
    }

    /// Loads every slot at start: first the versions an earlier run kept
    /// (`versions/<slot>/`), then every `<slot>.wasm` in `dir`, through the
    /// same checks as an upload (so declare the merchants with
    /// [`Registry::set_users`] first). A file that is refused is logged and
    /// skipped, and moved aside when the slot has a kept version to serve
    /// instead: one broken file must not take the others down (a merchant
    /// whose adapter is missing is refused at start instead).
    pub fn load_dir(&self, dir: &Path) -> Result<Vec<Arc<LoadedAdapter>>> {
        let mut slots: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("reading adapters directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| slot_of(&p))
            .collect();
        if let Some(vroot) = self.dir.as_ref().map(|d| d.join("versions"))
            && let Ok(entries) = std::fs::read_dir(&vroot)
        {
            slots.extend(
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().join("index.json").is_file())
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|s| slot_of(Path::new(&format!("{s}.wasm"))).is_some()),
            );
        }
        slots.sort();
        slots.dedup();
        let mut loaded = Vec::new();
        for slot in slots {
            if self.active(&slot).is_none() {
                let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
                self.restore(&slot);
            }
            let file = dir.join(format!("{slot}.wasm"));
            if file.is_file() {
                // Refusals are logged, counted and remembered by install_file.
                let _ = self.install_file(&file);
            }
            let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(active) = self.active(&slot) {
                // After a restore from the kept versions the directory may
                // lack the active file.
                if self.dir.as_deref() == Some(dir) && !file.is_file() {
                    self.persist(&slot, &active);
                }
                self.persist_history(&slot);
                loaded.push(active.adapter.clone());
            }
        }
        self.warn_missing_pins();
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
    fn sources_round_trip_through_the_history_index() {
        for s in [
            Source::Admin,
            Source::Directory("/srv/a/wechat-v2.wasm".into()),
        ] {
            assert_eq!(Source::parse(&s.to_string()), s);
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
        let r = Refusal::EgressHost {
            slot: "wechat-v2".into(),
            host: "collect.example.net".into(),
        };
        assert_eq!(r.code(), "egress_host_not_allowed");
        assert!(
            r.to_string().contains("`collect.example.net`")
                && r.to_string().contains("[adapters.wechat-v2] egress"),
            "{r}"
        );
        let r = Refusal::SecretAsText {
            slot: "wechat-v2".into(),
            merchant: "shop-1".into(),
            field: "api_key".into(),
        };
        assert_eq!(r.code(), "secret_field_not_secret");
        let text = r.to_string();
        assert!(
            text.contains("`api_key`") && text.contains("`shop-1`"),
            "{text}"
        );
        // Never the advice that would hand the plaintext to this version.
        for advice in ["directly", "literal", "plain value"] {
            assert!(!text.contains(advice), "{text}");
        }
        assert!(!r.may_be_partial());
        assert!(Refusal::Load(LoadError::Compile("eof".into())).may_be_partial());
        let u = Unavailable::PinnedMissing {
            slot: "wechat-v2".into(),
            digest: "ab".repeat(32),
        };
        assert!(u.to_string().contains(&"ab".repeat(32)));
    }
}
