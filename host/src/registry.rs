//! The adapters the host serves, by slot name.
//!
//! A slot holds the active version behind a lock that is held only to clone
//! an `Arc`, so a call in flight keeps the version it started with however
//! the slot changes.

use crate::runtime::{LoadedAdapter, Runtime};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

#[derive(Debug, Default)]
pub struct Registry {
    active: RwLock<HashMap<String, Arc<LoadedAdapter>>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The active version of a slot.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedAdapter>> {
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Makes `adapter` the active version of its slot (its describe name).
    pub fn activate(&self, adapter: Arc<LoadedAdapter>) -> Option<Arc<LoadedAdapter>> {
        self.active
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(adapter.info.name.clone(), adapter)
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<_> = self
            .active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Loads every `*.wasm` in `dir`. A file that fails to load is logged
    /// and skipped: one broken adapter must not take the others down (a
    /// merchant whose adapter is missing is refused at start instead).
    pub fn load_dir(&self, runtime: &Runtime, dir: &Path) -> Result<Vec<Arc<LoadedAdapter>>> {
        let mut loaded = Vec::new();
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading adapters directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        paths.sort();
        for path in paths {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let adapter = match runtime.load(&bytes) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(source = %path.display(), error = %e, "adapter refused");
                    continue;
                }
            };
            tracing::info!(adapter = %adapter.info.name, version = %adapter.info.version, digest = %adapter.digest, source = %path.display(), "adapter loaded");
            self.activate(adapter.clone());
            loaded.push(adapter);
        }
        Ok(loaded)
    }
}
