//! The PostgreSQL schema as a list of migrations, applied at start under an
//! advisory lock so replicas starting together apply each migration once.
//!
//! The migrations are the SQLite store's (`store/sqlite/schema.rs`), with the
//! same version numbers, translated by [`to_postgres`]: ids become identity
//! columns (SQLite's rowid) and blobs `BYTEA`. One is left out: migration 4's
//! trigger-maintained `order_counts` table, because on PostgreSQL every insert
//! from every replica would update the same counter row and queue behind it;
//! counts are read from the `orders_state` index instead.

use super::{describe, pg_err};
use crate::clock::now_ms;
use crate::store::StoreError;
use crate::store::sqlite::schema as sqlite;
use tokio_postgres::Client;

/// Schema migrations, applied in order and recorded in `schema_migrations`.
/// Never edit a released entry; append a new one (in step with SQLite's).
pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, sqlite::MIGRATION_1),
    (2, sqlite::MIGRATION_2),
    (3, sqlite::MIGRATION_3),
    // SQLite's order_counts triggers: see the module docs.
    (4, ""),
    (5, sqlite::MIGRATION_5),
    (6, sqlite::MIGRATION_6),
    (7, sqlite::MIGRATION_7),
    (8, sqlite::MIGRATION_8),
    (9, sqlite::MIGRATION_9),
];

/// The advisory lock key migrations hold: any constant only payhost uses
/// ("payhost" in ASCII).
pub(crate) const MIGRATION_LOCK: i64 = 0x70_61_79_68_6f_73_74;

/// SQLite's DDL in PostgreSQL's words; the rest of it is standard SQL both
/// accept.
pub(super) fn to_postgres(sqlite_ddl: &str) -> String {
    sqlite_ddl
        .replace(
            "INTEGER PRIMARY KEY",
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        )
        .replace(" BLOB", " BYTEA")
}

/// Applies the pending migrations. A session-level advisory lock makes
/// concurrent starts take turns: the first applies, the others then find
/// nothing pending. Each migration commits with its `schema_migrations` row.
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_err)?;
    let applied = apply_pending(client).await;
    // Unlocked also after a failure: the connection goes back to a pool.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_err);
    applied.and(unlocked.map(|_| ()))
}

async fn apply_pending(client: &mut Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    BIGINT PRIMARY KEY,
                 applied_at BIGINT NOT NULL
             )",
        )
        .await
        .map_err(pg_err)?;
    let current: i64 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg_err)?
        .get(0);
    let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > latest {
        return Err(StoreError::Corrupt(format!(
            "database schema version {current} is newer than this build knows ({latest})"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.batch_execute(&to_postgres(sql)).await.map_err(|e| {
            StoreError::Corrupt(format!("migration {version} failed: {}", describe(&e)))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[version, &now_ms()],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
    }
    Ok(())
}
