//! Throwaway databases for the store tests: a SQLite file under
//! target/tmp, or a fresh PostgreSQL database on a cluster the tests of
//! one test binary share.

use super::PgStore;
use payhost_pgtest::PgCluster;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

static N: AtomicUsize = AtomicUsize::new(0);

/// A fresh database path under target/tmp (never the system temp dir:
/// the test data stays with the build and is easy to inspect).
pub(crate) fn sqlite_path(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/tmp/store-tests")
        .join(format!(
            "{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("payhost.sqlite")
}

/// The cluster while any test holds it: starting one per test would cost
/// an `initdb` each, and a static one would never be stopped (statics are
/// not dropped at exit). The last test holding it stops it.
static CLUSTER: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());

/// The shared cluster, started if no test holds it; `None` where tests
/// skip PostgreSQL (see `PgCluster::start_or_skip`).
pub(crate) fn cluster() -> Option<Arc<PgCluster>> {
    let mut held = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(cluster) = held.upgrade() {
        return Some(cluster);
    }
    let cluster = Arc::new(PgCluster::start_or_skip()?);
    *held = Arc::downgrade(&cluster);
    Some(cluster)
}

/// A database of its own for one test, on the shared cluster.
pub(crate) struct PgDatabase {
    pub cluster: Arc<PgCluster>,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    /// A fresh, empty database named after the test (`None`: skip).
    pub(crate) fn create(test: &str) -> Option<PgDatabase> {
        let cluster = cluster()?;
        // PostgreSQL names stop at 63 bytes.
        let stem: String = test.chars().take(40).collect();
        let name = format!("{stem}_{}", N.fetch_add(1, Ordering::Relaxed));
        let url = cluster
            .create_database(&name)
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        Some(PgDatabase { cluster, name, url })
    }

    /// A store on it: each call is one more replica.
    pub(crate) async fn open(&self) -> PgStore {
        PgStore::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.name))
    }
}
