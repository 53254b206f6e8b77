//! Watches the adapters directory: a new or changed `<name>.wasm` is
//! installed through the same checks as an upload, without a restart.
//!
//! Events are debounced per file (the install runs once the file has been
//! quiet for [`DEBOUNCE`]), so a writer's burst of events costs one load.
//! Writers should copy to a temporary name and rename over the file; a
//! direct overwrite is still safe: bytes read mid-write fail to compile and
//! are refused (nothing changes), and the writer's next event re-checks the
//! file. Removing a file unloads nothing.

use crate::registry::{Registry, slot_of};
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher as _};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a file must be quiet before it is loaded.
pub const DEBOUNCE: Duration = Duration::from_millis(400);

/// Starts watching `dir`; the returned task owns the watcher, so aborting
/// it stops watching.
pub fn start(
    registry: Arc<Registry>,
    dir: PathBuf,
    debounce: Duration,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) if relevant(&event.kind) => {
                for path in event.paths {
                    if slot_of(&path).is_some() {
                        let _ = tx.send(path);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "adapters directory watch error"),
        })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| anyhow::anyhow!("watching adapters directory {}: {e}", dir.display()))?;
    tracing::info!(dir = %dir.display(), debounce_ms = debounce.as_millis() as u64, "watching adapters directory");
    Ok(tokio::spawn(async move {
        let _watcher = watcher;
        let mut due: HashMap<PathBuf, Instant> = HashMap::new();
        loop {
            let next = due.values().min().copied();
            tokio::select! {
                event = rx.recv() => match event {
                    Some(path) => {
                        due.insert(path, Instant::now() + debounce);
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    let now = Instant::now();
                    let ready: Vec<PathBuf> = due
                        .iter()
                        .filter(|(_, at)| **at <= now)
                        .map(|(p, _)| p.clone())
                        .collect();
                    for path in ready {
                        due.remove(&path);
                        let registry = registry.clone();
                        // Refusals are logged and counted by the registry.
                        let _ = tokio::task::spawn_blocking(move || registry.install_file(&path)).await;
                    }
                }
            }
        }
    }))
}

/// Creations, writes, renames onto a name and closes after writing.
fn relevant(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}
