//! The PostgreSQL store against a throwaway cluster (tests/pgtest); each
//! test skips only where PostgreSQL cannot be installed outside CI.

use super::PgStore;
use super::schema::MIGRATIONS;
use crate::store::StoreError;
use crate::store::sqlite::schema::MIGRATIONS as SQLITE_MIGRATIONS;
use payhost_pgtest::PgCluster;

/// Concurrent opens of one fresh database: as many as replicas starting
/// together.
const REPLICAS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_opening_a_fresh_database_together_all_succeed_and_migrate_once() {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    let url = cluster.create_database("fresh").unwrap();
    let opens = (0..REPLICAS).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PgStore::open(&url).await })
    });
    for open in futures_util::future::join_all(opens).await {
        let store = open.unwrap().expect("every replica opens the store");
        assert_eq!(store.schema_version().await.unwrap(), 5);
    }
    let applied = cluster
        .psql(
            "fresh",
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations",
        )
        .unwrap();
    assert_eq!(applied, "1,2,3,4,5", "each migration recorded once");
    // No one left holding the migration lock.
    let held = cluster
        .psql(
            "fresh",
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
        )
        .unwrap();
    assert_eq!(held, "0");
}

#[tokio::test]
async fn the_schema_has_sqlite_columns_table_by_table() {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    let url = cluster.create_database("columns").unwrap();
    PgStore::open(&url).await.unwrap();

    let sqlite = rusqlite::Connection::open_in_memory().unwrap();
    for (_, sql) in SQLITE_MIGRATIONS {
        sqlite.execute_batch(sql).unwrap();
    }
    let mut tables = sqlite
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'order_counts' ORDER BY name",
        )
        .unwrap();
    let tables: Vec<String> = tables
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(tables.len() >= 6, "{tables:?}");
    for table in tables {
        let mut columns = sqlite
            .prepare(&format!(
                "SELECT name, \"notnull\" OR pk FROM pragma_table_info('{table}') ORDER BY cid"
            ))
            .unwrap();
        let sqlite_columns: Vec<String> = columns
            .query_map([], |r| {
                Ok(format!(
                    "{}:{}",
                    r.get::<_, String>(0)?,
                    r.get::<_, bool>(1)?
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let pg_columns = cluster
            .psql(
                "columns",
                &format!(
                    "SELECT string_agg(column_name || ':' || (is_nullable = 'NO')::text, ',' ORDER BY ordinal_position) \
                     FROM information_schema.columns WHERE table_name = '{table}'"
                ),
            )
            .unwrap();
        assert_eq!(pg_columns, sqlite_columns.join(","), "table {table}");
    }
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    let url = cluster.create_database("newer").unwrap();
    PgStore::open(&url).await.unwrap();
    let next = MIGRATIONS.last().unwrap().0 + 1;
    cluster
        .psql(
            "newer",
            &format!("INSERT INTO schema_migrations VALUES ({next}, 0)"),
        )
        .unwrap();
    let err = PgStore::open(&url).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("newer than this build")),
        "{err}"
    );
}

#[tokio::test]
async fn the_password_in_the_url_never_reaches_an_error() {
    for url in [
        "postgres://payhost:s3cret-pw@127.0.0.1:1/payhost",
        "postgres://payhost:s3cret-pw@[::1/payhost",
        "postgres://payhost:s3cret-pw@127.0.0.1:1/payhost?sslmode=bogus",
    ] {
        let err = PgStore::open(url).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(!err.to_string().contains("s3cret-pw"), "{err}");
        assert!(!format!("{err:?}").contains("s3cret-pw"), "{err:?}");
    }
}
