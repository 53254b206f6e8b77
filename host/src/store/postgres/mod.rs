//! The PostgreSQL store, for several payhost replicas on one database
//! (issue 14). Built in steps; this one opens a connection pool and brings
//! the schema up to date. It does not implement [`Store`](super::Store) yet,
//! so the server cannot select it.
//!
//! Driver: tokio-postgres with a deadpool-postgres pool; why is in
//! docs/benchmarks.md ("PostgreSQL driver").
//!
//! - `schema`: the migrations (SQLite's, translated) and applying them
//!   under an advisory lock.

mod schema;
#[cfg(test)]
mod tests;

use super::StoreError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// Connections per store; a create holds one for its transaction.
const POOL_SIZE: usize = 16;

/// A PostgreSQL-backed store; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl std::fmt::Debug for PgStore {
    // The pool's configuration holds the password: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("connections", &self.pool.status().size)
            .finish_non_exhaustive()
    }
}

pub(super) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(describe(&e))
}

/// The server's message when there is one (tokio-postgres's own text is
/// only "db error"); neither ever holds the connection's password.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("PostgreSQL connection pool: {e}"))
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`, libpq's
    /// key=value form also works) and applies pending migrations; replicas
    /// opening one database at once take turns on an advisory lock.
    /// Errors never contain the URL (it may hold the password).
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config = url.parse().map_err(|_| {
            StoreError::Unavailable(
                "the PostgreSQL store URL cannot be parsed (postgres://user:password@host:port/db)"
                    .into(),
            )
        })?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("PostgreSQL connection pool: {e}")))?;
        let store = PgStore { pool };
        let mut client = store.pool.get().await.map_err(pool_err)?;
        schema::migrate(&mut client).await?;
        Ok(store)
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.get(0))
    }
}
