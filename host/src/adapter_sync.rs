//! Keeps the adapters of replicas on one shared store (PostgreSQL) the
//! same (issue 14).
//!
//! Every change a replica makes to a slot (upload, rollback, a file its
//! watcher saw) is published to the store: the bytes of each kept version
//! by digest and the slot's versions, active first, under a generation
//! that grows at each publication. The store announces it (`NOTIFY`), and
//! every other replica applies it with [`Registry::adopt`], through the
//! same checks as any change, compiling only versions it has not compiled
//! before (its disk cache stays its own). A periodic check covers a missed
//! announcement. When two replicas change one slot at once, the last
//! publication wins on every replica.
//!
//! At start a replica first loads its directory, then joins: a slot whose
//! active file the store has never seen is a new deployment and is
//! published; otherwise the store's active version is adopted, so a
//! replica that was down during a swap comes back with the cluster's.

use crate::registry::Registry;
use crate::store::{SharedSlot, SharedVersion, Store};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// How often a replica checks the store for changes it was not told of.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);

/// The generation of each slot as this replica last applied or published.
type Seen = HashMap<String, i64>;

/// Joins the replicas' shared adapters at start (see the module docs);
/// returns the generations it saw.
pub async fn join(registry: &Arc<Registry>, store: &Arc<dyn Store>) -> anyhow::Result<Seen> {
    let mut seen = Seen::new();
    let shared = store.adapter_slots().await?;
    for name in registry.names() {
        let Some(active) = registry.active(&name) else {
            continue;
        };
        match shared.iter().find(|s| s.slot == name) {
            Some(s) if s.versions.iter().any(|v| v.digest == active.digest) => {}
            known => {
                let history = known.map(|s| s.versions.as_slice()).unwrap_or_default();
                if let Some(generation) = publish(registry, store.as_ref(), &name, history).await {
                    seen.insert(name, generation);
                }
            }
        }
    }
    for s in &shared {
        if !seen.contains_key(&s.slot) {
            apply(registry, store.as_ref(), s).await;
            seen.insert(s.slot.clone(), s.generation);
        }
    }
    Ok(seen)
}

/// Publishes changes of this replica and applies those of the others until
/// aborted. `seen` comes from [`join`].
pub async fn run(
    registry: Arc<Registry>,
    store: Arc<dyn Store>,
    mut seen: Seen,
    mut changes: mpsc::UnboundedReceiver<String>,
    every: Duration,
) {
    let wake = Arc::new(Notify::new());
    // Aborted with this task.
    let _listener = Abort(store.watch_adapters(wake.clone()));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Slots whose publication failed: tried again at the next check.
    let mut unpublished = HashSet::new();
    loop {
        tokio::select! {
            changed = changes.recv() => {
                let Some(slot) = changed else { return };
                unpublished.insert(slot);
            }
            _ = wake.notified() => {}
            _ = tick.tick() => {}
        }
        // Announcements that came together are published once each.
        while let Ok(slot) = changes.try_recv() {
            unpublished.insert(slot);
        }
        for slot in std::mem::take(&mut unpublished) {
            match publish(&registry, store.as_ref(), &slot, &[]).await {
                Some(generation) => {
                    seen.insert(slot, generation);
                }
                None => {
                    unpublished.insert(slot);
                }
            }
        }
        match store.adapter_slots().await {
            Ok(shared) => {
                for s in shared {
                    if seen.get(&s.slot) != Some(&s.generation) && !unpublished.contains(&s.slot) {
                        apply(&registry, store.as_ref(), &s).await;
                        seen.insert(s.slot.clone(), s.generation);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the shared adapters; checking again later")
            }
        }
    }
}

/// Keeps version `digest` of `slot`, fetched from the shared store, when
/// this replica does not keep it yet: for a merchant pinned to it, or a
/// rollback that names it (another replica kept it). Nothing on a store of
/// one process, or when the store does not have it either (a rollback then
/// says `unknown_version`).
pub async fn fetch_kept(registry: &Arc<Registry>, store: &dyn Store, slot: &str, digest: &str) {
    if !store.shared() || registry.keeps(slot, digest) {
        return;
    }
    let bytes = match store.adapter_blob(digest).await {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(adapter = slot, %digest, error = %e,
                "cannot read a shared adapter version to keep");
            return;
        }
    };
    let (registry, slot_name) = (registry.clone(), slot.to_string());
    match tokio::task::spawn_blocking(move || registry.keep_shared(&slot_name, &bytes)).await {
        Ok(Ok(true)) => {
            tracing::info!(adapter = slot, %digest, "adapter version kept from another replica")
        }
        Ok(Ok(false)) => {}
        Ok(Err(r)) => {
            tracing::warn!(adapter = slot, %digest, reason = r.code(), error = %r,
                "another replica's adapter version is refused here")
        }
        Err(e) => tracing::warn!(adapter = slot, error = %e, "keeping a shared version failed"),
    }
}

struct Abort(Option<tokio::task::JoinHandle<()>>);

impl Drop for Abort {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

/// Publishes what `slot` keeps here, then the versions of `history` it does
/// not keep (within the registry's bound), so the cluster's rollback
/// targets survive a replica's new deployment.
async fn publish(
    registry: &Registry,
    store: &dyn Store,
    slot: &str,
    history: &[SharedVersion],
) -> Option<i64> {
    let mut state = registry.shared_state(slot)?;
    for v in history {
        if state.versions.len() > registry.keep() {
            break;
        }
        if !state.versions.iter().any(|k| k.digest == v.digest) {
            state.versions.push(v.clone());
        }
    }
    let active = state.versions.first()?.digest.clone();
    match store
        .publish_adapter_slot(slot, &state.versions, &state.blobs)
        .await
    {
        Ok(generation) => {
            tracing::info!(adapter = slot, digest = %active, generation,
                "adapter version published to the other replicas");
            Some(generation)
        }
        Err(e) => {
            tracing::warn!(adapter = slot, digest = %active, error = %e,
                "could not publish the adapter change to the other replicas; trying again at the next check");
            None
        }
    }
}

/// Makes the shared active version of `s` active here, and keeps the
/// shared versions this replica's merchants are pinned to.
async fn apply(registry: &Arc<Registry>, store: &dyn Store, s: &SharedSlot) {
    activate(registry, store, s).await;
    for (_, pin) in registry.pins(&s.slot) {
        if s.versions.iter().any(|v| v.digest == pin) {
            fetch_kept(registry, store, &s.slot, &pin).await;
        }
    }
}

async fn activate(registry: &Arc<Registry>, store: &dyn Store, s: &SharedSlot) {
    let Some(target) = s.versions.first() else {
        return;
    };
    if registry
        .active(&s.slot)
        .is_some_and(|a| a.digest == target.digest)
    {
        return;
    }
    let bytes = if registry.keeps(&s.slot, &target.digest) {
        None
    } else {
        match store.adapter_blob(&target.digest).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(adapter = %s.slot, digest = %target.digest, error = %e,
                    "cannot read a shared adapter version; checking again later");
                return;
            }
        }
    };
    let registry = registry.clone();
    let (slot, digest) = (s.slot.clone(), target.digest.clone());
    let adopted =
        tokio::task::spawn_blocking(move || registry.adopt(&slot, &digest, bytes.as_deref())).await;
    match adopted {
        Ok(Ok(Some(outcome))) => {
            tracing::info!(adapter = %s.slot, digest = %outcome.digest, generation = s.generation,
                previous_digest = outcome.previous_digest.as_deref().unwrap_or("-"),
                "adapter version adopted from another replica")
        }
        Ok(Ok(None)) => {}
        Ok(Err(r)) => {
            tracing::warn!(adapter = %s.slot, digest = %target.digest, reason = r.code(), error = %r,
                "another replica's adapter version is refused here; this replica keeps its own until the next change")
        }
        Err(e) => {
            tracing::warn!(adapter = %s.slot, error = %e, "adopting an adapter version failed")
        }
    }
}
