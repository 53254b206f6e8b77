//! The embedded [`Store`]: one SQLite file, WAL, `synchronous=FULL`.
//!
//! # Writes: one thread, group commit
//!
//! With `synchronous=FULL` every COMMIT costs an fsync, which caps one
//! transaction per request near 4–5k requests/s on our machines
//! (docs/limits.md). So one dedicated thread owns the only write
//! connection and drains whatever writes are queued (up to
//! [`MAX_BATCH`]) into a single transaction. Each write runs inside its own
//! SAVEPOINT, so a write that fails (a lost compare-and-set, a constraint)
//! is rolled back alone and fails only its own caller. Callers are answered
//! after COMMIT returns: nothing is acknowledged before it is durable. If the
//! COMMIT itself fails, every caller of that batch gets
//! [`StoreError::Unavailable`].
//!
//! Because all writes go through that one thread, read-then-write logic
//! inside a write (idempotency claims, insert-or-return-existing) is atomic
//! without further locking.
//!
//! # Reads
//!
//! Reads run on `spawn_blocking` with connections from a small pool; WAL
//! lets them proceed while the writer commits, and each read starts a fresh
//! snapshot, so a caller always sees its own committed writes.
//!
//! # Portability
//!
//! Statements use plain SQL (`ON CONFLICT ... DO NOTHING`, `RETURNING`,
//! numbered `?N` parameters that map one to one onto PostgreSQL's `$N`),
//! JSON as text and booleans as 0/1 integers, so a PostgreSQL store can run
//! the same queries. Only the pragmas and the `INTEGER PRIMARY KEY` id
//! columns of the schema are SQLite-specific.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, Row, params};
use tokio::sync::oneshot;

use super::{
    DailyCap, IdempotencyBegin, Inserted, KeyCompletion, NewEvent, NotificationRecord, Order,
    OrderState, OutboxEvent, PrunePolicy, PruneReport, Refund, RefundState, Store, StoreError,
};

/// Notification records, delivery scheduling and retention (migration 3).
mod housekeeping;

/// Most writes committed in one transaction. Larger batches gain little
/// (the fsync dominates) and make a failed COMMIT fail more callers.
pub const MAX_BATCH: usize = 64;

/// How long an `Idempotency-Key` may stay in progress before a new request
/// may take it over. Far above any request's own time-out; it only frees
/// keys whose request died with the process.
const IDEMPOTENCY_LEASE_MS: i64 = 5 * 60 * 1000;

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations, applied in order and recorded in `schema_migrations`.
/// Never edit a released entry; append a new one.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, MIGRATION_1),
    (2, MIGRATION_2),
    (3, housekeeping::MIGRATION),
];

/// Contract 0.2's money safety: pending refunds are polled (`refund-query`)
/// until they settle, and contradicting provider statements are recorded
/// once each (the merchant is told once, not at every provider retry).
const MIGRATION_2: &str = r#"
ALTER TABLE refunds ADD COLUMN next_poll_at BIGINT;
ALTER TABLE refunds ADD COLUMN poll_attempts BIGINT NOT NULL DEFAULT 0;
UPDATE refunds SET next_poll_at = updated_at WHERE state = 'pending';
CREATE INDEX refunds_poll ON refunds (next_poll_at) WHERE state = 'pending';

CREATE TABLE mismatches (
    merchant_id       TEXT   NOT NULL,
    merchant_order_no TEXT   NOT NULL,
    fingerprint       TEXT   NOT NULL,
    first_seen_at     BIGINT NOT NULL,
    last_seen_at      BIGINT NOT NULL,
    seen              BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, merchant_order_no, fingerprint)
);
"#;

const MIGRATION_1: &str = r#"
CREATE TABLE orders (
    merchant_id            TEXT    NOT NULL,
    merchant_order_no      TEXT    NOT NULL,
    adapter                TEXT    NOT NULL,
    adapter_digest         TEXT    NOT NULL,
    method                 TEXT    NOT NULL,
    description            TEXT    NOT NULL,
    amount_minor           BIGINT  NOT NULL,
    currency               TEXT    NOT NULL,
    state                  TEXT    NOT NULL,
    provider_trade_no      TEXT,
    channel_transaction_id TEXT,
    payer_app_id           TEXT,
    payer_openid           TEXT,
    client_ip              TEXT,
    pay_action             TEXT,
    refunded_minor         BIGINT  NOT NULL,
    expires_at             BIGINT,
    paid_at                BIGINT,
    attach                 TEXT,
    metadata               TEXT    NOT NULL,
    next_poll_at           BIGINT,
    poll_attempts          BIGINT  NOT NULL,
    created_at             BIGINT  NOT NULL,
    updated_at             BIGINT  NOT NULL,
    version                BIGINT  NOT NULL,
    PRIMARY KEY (merchant_id, merchant_order_no)
);
-- The reconciler's scan touches only orders that can still settle.
CREATE INDEX orders_poll ON orders (next_poll_at) WHERE state IN ('created', 'pending');
-- Per-payer daily caps.
CREATE INDEX orders_payer ON orders (merchant_id, payer_openid, created_at);
CREATE INDEX orders_state ON orders (state);

CREATE TABLE refunds (
    merchant_id        TEXT   NOT NULL,
    merchant_order_no  TEXT   NOT NULL,
    refund_no          TEXT   NOT NULL,
    amount_minor       BIGINT NOT NULL,
    currency           TEXT   NOT NULL,
    state              TEXT   NOT NULL,
    provider_refund_id TEXT,
    reason             TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    version            BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, merchant_order_no, refund_no),
    FOREIGN KEY (merchant_id, merchant_order_no)
        REFERENCES orders (merchant_id, merchant_order_no)
);

CREATE TABLE notifications (
    id                INTEGER PRIMARY KEY,
    merchant_id       TEXT    NOT NULL,
    adapter           TEXT    NOT NULL,
    received_at       BIGINT  NOT NULL,
    method            TEXT    NOT NULL,
    path              TEXT    NOT NULL,
    query             TEXT    NOT NULL,
    headers           TEXT    NOT NULL,
    body              BLOB    NOT NULL,
    verdict           TEXT    NOT NULL,
    detail            TEXT,
    merchant_order_no TEXT
);
CREATE INDEX notifications_order ON notifications (merchant_id, merchant_order_no);

CREATE TABLE idempotency (
    merchant_id   TEXT    NOT NULL,
    idem_key      TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    status        INTEGER,
    response_body BLOB,
    created_at    BIGINT  NOT NULL,
    completed_at  BIGINT,
    PRIMARY KEY (merchant_id, idem_key)
);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL UNIQUE,
    merchant_id     TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    attempts        BIGINT  NOT NULL,
    next_attempt_at BIGINT  NOT NULL,
    delivered_at    BIGINT,
    last_error      TEXT,
    gave_up         INTEGER NOT NULL
);
-- The delivery worker's scan touches only events still to deliver.
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND gave_up = 0;
CREATE INDEX outbox_merchant ON outbox (merchant_id, id);
"#;

const ORDER_COLUMNS: &str = "merchant_id, merchant_order_no, adapter, adapter_digest, method, \
     description, amount_minor, currency, state, provider_trade_no, channel_transaction_id, \
     payer_app_id, payer_openid, client_ip, pay_action, refunded_minor, expires_at, paid_at, \
     attach, metadata, next_poll_at, poll_attempts, created_at, updated_at, version";

const REFUND_COLUMNS: &str = "merchant_id, merchant_order_no, refund_no, amount_minor, currency, \
     state, provider_refund_id, reason, created_at, updated_at, version, next_poll_at, \
     poll_attempts";

const OUTBOX_COLUMNS: &str = "id, event_id, merchant_id, event_type, payload, created_at, \
     attempts, next_attempt_at, delivered_at, last_error, gave_up, undeliverable";

/// Counters of the writer, for tests and metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Writes executed (successful or not).
    pub writes: AtomicU64,
    /// Largest number of writes seen in one transaction.
    pub max_batch: AtomicU64,
}

/// The SQLite store. Cheap to share as `Arc<dyn Store>`; dropping it stops
/// the writer thread after the writes already queued.
pub struct SqliteStore {
    path: PathBuf,
    writer: Option<mpsc::Sender<Box<dyn WriteJob>>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    stats: Arc<WriterStats>,
}

impl SqliteStore {
    /// Opens (creating on first start) the database at `path`, applies any
    /// pending migrations and starts the writer thread.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let mut conn = Connection::open(&path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        configure_writer(&conn).map_err(sql_err)?;
        migrate(&mut conn)?;

        let stats = Arc::new(WriterStats::default());
        let (tx, rx) = mpsc::channel::<Box<dyn WriteJob>>();
        let thread_stats = stats.clone();
        let writer_thread = std::thread::Builder::new()
            .name("payhost-store-writer".into())
            .spawn(move || writer_loop(conn, rx, &thread_stats))
            .map_err(|e| StoreError::Unavailable(format!("cannot start writer thread: {e}")))?;

        Ok(SqliteStore {
            path,
            writer: Some(tx),
            writer_thread: Some(writer_thread),
            readers: Arc::new(Mutex::new(Vec::new())),
            stats,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Runs `f` on the writer thread inside its own savepoint of the current
    /// batch and returns its result once the batch is committed.
    async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Box<dyn WriteJob> = Box::new(TypedJob {
            f: Some(f),
            result: None,
            reply: tx,
        });
        self.writer
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("store is closed".into()))?
            .send(job)
            .map_err(|_| StoreError::Unavailable("store writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("store writer dropped the request".into()))?
    }

    /// Runs `f` with a pooled read connection on a blocking thread.
    async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_reader(&path)?,
            };
            let result = f(&conn);
            let mut pool = readers.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("store read task failed: {e}")))?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish queued writes and exit;
        // joining makes "drop, then reopen the same file" deterministic.
        self.writer.take();
        if let Some(t) = self.writer_thread.take() {
            let _ = t.join();
        }
    }
}

fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // journal_mode answers with a row, so it is read rather than executed.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode is {mode}, WAL required"
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
    // Read connections must never write: all writes go through the writer.
    conn.execute_batch("PRAGMA query_only = ON;")
        .map_err(sql_err)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at BIGINT NOT NULL
         );",
    )
    .map_err(sql_err)?;
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(sql_err)?;
    let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > latest {
        return Err(StoreError::Corrupt(format!(
            "database schema version {current} is newer than this build knows ({latest})"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = conn.transaction().map_err(sql_err)?;
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Corrupt(format!("migration {version} failed: {e}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, now_ms()],
        )
        .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- writer

/// A queued write with its reply channel, type-erased so one queue carries
/// writes of every result type.
trait WriteJob: Send {
    /// Runs the write; true when it succeeded (its savepoint is kept).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), &str>);
}

struct TypedJob<R, F> {
    f: Option<F>,
    result: Option<Result<R, StoreError>>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<R, F> WriteJob for TypedJob<R, F>
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        // A panicking write must not take the writer thread (and with it
        // every later write) down.
        let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(StoreError::Unavailable("store write panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), &str>) {
        let answer = match (self.result, commit) {
            // The write's own failure stands whatever happened to the batch.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(r)), Ok(())) => Ok(r),
            (_, Err(msg)) => Err(StoreError::Unavailable(msg.to_string())),
            (None, Ok(())) => Err(StoreError::Unavailable("write was not run".into())),
        };
        let _ = self.reply.send(answer);
    }
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Box<dyn WriteJob>>, stats: &WriterStats) {
    // Blocks for the first write, then takes whatever else queued up while
    // the previous COMMIT was syncing: that is the group commit.
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, batch, stats);
    }
}

fn run_batch(conn: &Connection, mut batch: Vec<Box<dyn WriteJob>>, stats: &WriterStats) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let msg = format!("cannot begin a transaction: {e}");
        for job in batch {
            job.finish(Err(&msg));
        }
        return;
    }
    for job in batch.iter_mut() {
        stats.writes.fetch_add(1, Ordering::Relaxed);
        if conn.execute_batch("SAVEPOINT w").is_err() {
            continue; // the job was not run; it is answered with the batch
        }
        let ok = job.run(conn);
        let closed = if ok {
            conn.execute_batch("RELEASE w")
        } else {
            conn.execute_batch("ROLLBACK TO w; RELEASE w")
        };
        if let Err(e) = closed {
            // The transaction is in an unknown state: give up the batch.
            tracing::error!(error = %e, "store savepoint failed; rolling back the batch");
            let _ = conn.execute_batch("ROLLBACK");
            let msg = format!("store transaction failed: {e}");
            for job in batch {
                job.finish(Err(&msg));
            }
            return;
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats
                .max_batch
                .fetch_max(batch.len() as u64, Ordering::Relaxed);
            for job in batch {
                job.finish(Ok(()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "store commit failed");
            let _ = conn.execute_batch("ROLLBACK");
            let msg = format!("store commit failed: {e}");
            for job in batch {
                job.finish(Err(&msg));
            }
        }
    }
}

// ---------------------------------------------------------------- helpers

use crate::clock::now_ms;

fn sql_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    match &e {
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..)
        | E::Utf8Error(..) => StoreError::Corrupt(e.to_string()),
        E::SqliteFailure(f, _) if f.code == ErrorCode::DatabaseCorrupt => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

fn parse_json(column: &str, text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn order_from_row(r: &Row<'_>) -> Result<Order, StoreError> {
    let state: String = r.get(8).map_err(sql_err)?;
    let pay_action: Option<String> = r.get(14).map_err(sql_err)?;
    let metadata: String = r.get(19).map_err(sql_err)?;
    Ok(Order {
        merchant_id: r.get(0).map_err(sql_err)?,
        merchant_order_no: r.get(1).map_err(sql_err)?,
        adapter: r.get(2).map_err(sql_err)?,
        adapter_digest: r.get(3).map_err(sql_err)?,
        method: r.get(4).map_err(sql_err)?,
        description: r.get(5).map_err(sql_err)?,
        amount_minor: r.get(6).map_err(sql_err)?,
        currency: r.get(7).map_err(sql_err)?,
        state: OrderState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown order state {state:?}")))?,
        provider_trade_no: r.get(9).map_err(sql_err)?,
        channel_transaction_id: r.get(10).map_err(sql_err)?,
        payer_app_id: r.get(11).map_err(sql_err)?,
        payer_openid: r.get(12).map_err(sql_err)?,
        client_ip: r.get(13).map_err(sql_err)?,
        pay_action: pay_action
            .map(|t| parse_json("pay_action", &t))
            .transpose()?,
        refunded_minor: r.get(15).map_err(sql_err)?,
        expires_at: r.get(16).map_err(sql_err)?,
        paid_at: r.get(17).map_err(sql_err)?,
        attach: r.get(18).map_err(sql_err)?,
        metadata: parse_json("metadata", &metadata)?,
        next_poll_at: r.get(20).map_err(sql_err)?,
        poll_attempts: r.get(21).map_err(sql_err)?,
        created_at: r.get(22).map_err(sql_err)?,
        updated_at: r.get(23).map_err(sql_err)?,
        version: r.get(24).map_err(sql_err)?,
    })
}

fn refund_from_row(r: &Row<'_>) -> Result<Refund, StoreError> {
    let state: String = r.get(5).map_err(sql_err)?;
    Ok(Refund {
        merchant_id: r.get(0).map_err(sql_err)?,
        merchant_order_no: r.get(1).map_err(sql_err)?,
        refund_no: r.get(2).map_err(sql_err)?,
        amount_minor: r.get(3).map_err(sql_err)?,
        currency: r.get(4).map_err(sql_err)?,
        state: RefundState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown refund state {state:?}")))?,
        provider_refund_id: r.get(6).map_err(sql_err)?,
        reason: r.get(7).map_err(sql_err)?,
        created_at: r.get(8).map_err(sql_err)?,
        updated_at: r.get(9).map_err(sql_err)?,
        version: r.get(10).map_err(sql_err)?,
        next_poll_at: r.get(11).map_err(sql_err)?,
        poll_attempts: r.get(12).map_err(sql_err)?,
    })
}

fn event_from_row(r: &Row<'_>) -> Result<OutboxEvent, StoreError> {
    let payload: String = r.get(4).map_err(sql_err)?;
    let gave_up: i64 = r.get(10).map_err(sql_err)?;
    Ok(OutboxEvent {
        id: r.get(0).map_err(sql_err)?,
        event_id: r.get(1).map_err(sql_err)?,
        merchant_id: r.get(2).map_err(sql_err)?,
        event_type: r.get(3).map_err(sql_err)?,
        payload: parse_json("payload", &payload)?,
        created_at: r.get(5).map_err(sql_err)?,
        attempts: r.get(6).map_err(sql_err)?,
        next_attempt_at: r.get(7).map_err(sql_err)?,
        delivered_at: r.get(8).map_err(sql_err)?,
        last_error: r.get(9).map_err(sql_err)?,
        gave_up: gave_up != 0,
        undeliverable: r.get(11).map_err(sql_err)?,
    })
}

/// Runs a query and maps every row with `map`.
fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    let mut rows = stmt.query(params).map_err(sql_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_err)? {
        out.push(map(row)?);
    }
    Ok(out)
}

fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    Ok(query_all(conn, sql, params, map)?.into_iter().next())
}

fn select_order(
    conn: &Connection,
    merchant: &str,
    order_no: &str,
) -> Result<Option<Order>, StoreError> {
    query_opt(
        conn,
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = ?1 AND merchant_order_no = ?2"
        ),
        params![merchant, order_no],
        order_from_row,
    )
}

fn select_refund(
    conn: &Connection,
    merchant: &str,
    order_no: &str,
    refund_no: &str,
) -> Result<Option<Refund>, StoreError> {
    query_opt(
        conn,
        &format!(
            "SELECT {REFUND_COLUMNS} FROM refunds \
             WHERE merchant_id = ?1 AND merchant_order_no = ?2 AND refund_no = ?3"
        ),
        params![merchant, order_no, refund_no],
        refund_from_row,
    )
}

/// The first 22 columns of [`ORDER_COLUMNS`] (all but the timestamps and
/// version), in that order; insert and update bind them the same way.
fn order_values(order: &Order) -> Vec<Box<dyn rusqlite::ToSql>> {
    vec![
        Box::new(order.merchant_id.clone()),
        Box::new(order.merchant_order_no.clone()),
        Box::new(order.adapter.clone()),
        Box::new(order.adapter_digest.clone()),
        Box::new(order.method.clone()),
        Box::new(order.description.clone()),
        Box::new(order.amount_minor),
        Box::new(order.currency.clone()),
        Box::new(order.state.as_str()),
        Box::new(order.provider_trade_no.clone()),
        Box::new(order.channel_transaction_id.clone()),
        Box::new(order.payer_app_id.clone()),
        Box::new(order.payer_openid.clone()),
        Box::new(order.client_ip.clone()),
        Box::new(order.pay_action.as_ref().map(json_text)),
        Box::new(order.refunded_minor),
        Box::new(order.expires_at),
        Box::new(order.paid_at),
        Box::new(order.attach.clone()),
        Box::new(json_text(&order.metadata)),
        Box::new(order.next_poll_at),
        Box::new(order.poll_attempts),
    ]
}

/// Compare-and-set of every mutable column; returns the order as stored.
fn cas_order(conn: &Connection, order: &Order, now: i64) -> Result<Order, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE orders SET
                 adapter = ?3, adapter_digest = ?4, method = ?5, description = ?6,
                 amount_minor = ?7, currency = ?8, state = ?9, provider_trade_no = ?10,
                 channel_transaction_id = ?11, payer_app_id = ?12, payer_openid = ?13,
                 client_ip = ?14, pay_action = ?15, refunded_minor = ?16, expires_at = ?17,
                 paid_at = ?18, attach = ?19, metadata = ?20, next_poll_at = ?21,
                 poll_attempts = ?22, updated_at = ?23, version = version + 1
             WHERE merchant_id = ?1 AND merchant_order_no = ?2 AND version = ?24",
        )
        .and_then(|mut s| {
            let mut values = order_values(order);
            values.push(Box::new(now));
            values.push(Box::new(order.version));
            s.execute(rusqlite::params_from_iter(values))
        })
        .map_err(sql_err)?;
    if changed == 0 {
        return Err(StoreError::Conflict);
    }
    let mut stored = order.clone();
    stored.version += 1;
    stored.updated_at = now;
    Ok(stored)
}

fn cas_refund(conn: &Connection, refund: &Refund, now: i64) -> Result<Refund, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE refunds SET
                 amount_minor = ?4, currency = ?5, state = ?6, provider_refund_id = ?7,
                 reason = ?8, updated_at = ?9, version = version + 1, next_poll_at = ?11,
                 poll_attempts = ?12
             WHERE merchant_id = ?1 AND merchant_order_no = ?2 AND refund_no = ?3
               AND version = ?10",
        )
        .and_then(|mut s| {
            s.execute(params![
                refund.merchant_id,
                refund.merchant_order_no,
                refund.refund_no,
                refund.amount_minor,
                refund.currency,
                refund.state.as_str(),
                refund.provider_refund_id,
                refund.reason,
                now,
                refund.version,
                refund.next_poll_at,
                refund.poll_attempts,
            ])
        })
        .map_err(sql_err)?;
    if changed == 0 {
        return Err(StoreError::Conflict);
    }
    let mut stored = refund.clone();
    stored.version += 1;
    stored.updated_at = now;
    Ok(stored)
}

fn complete_key(
    conn: &Connection,
    merchant_id: &str,
    key: &str,
    status: u16,
    body: &[u8],
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE idempotency SET status = ?3, response_body = ?4, completed_at = ?5
         WHERE merchant_id = ?1 AND idem_key = ?2",
    )
    .and_then(|mut s| s.execute(params![merchant_id, key, i64::from(status), body, now]))
    .map_err(sql_err)?;
    Ok(())
}

/// What a payer's orders of the day add up to, for caps: everything not
/// closed or failed, orders still being created included.
fn payer_total_since(
    conn: &Connection,
    merchant_id: &str,
    payer_openid: &str,
    since: i64,
) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(amount_minor), 0) FROM orders
         WHERE merchant_id = ?1 AND payer_openid = ?2 AND created_at >= ?3
           AND state NOT IN ('closed', 'failed')",
    )
    .and_then(|mut s| s.query_row(params![merchant_id, payer_openid, since], |r| r.get(0)))
    .map_err(sql_err)
}

fn append_events(
    conn: &Connection,
    merchant: &str,
    events: &[NewEvent],
    now: i64,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO outbox (event_id, merchant_id, event_type, payload, created_at,
                                 attempts, next_attempt_at, delivered_at, last_error, gave_up)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?5, NULL, NULL, 0)",
        )
        .map_err(sql_err)?;
    for ev in events {
        let event_id = format!("evt_{}", ulid::Ulid::new());
        stmt.execute(params![
            event_id,
            merchant,
            ev.event_type,
            json_text(&ev.payload),
            now
        ])
        .map_err(sql_err)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- the trait

#[async_trait]
impl Store for SqliteStore {
    async fn insert_order_capped(
        &self,
        order: &Order,
        cap: Option<&DailyCap>,
    ) -> Result<Inserted<Order>, StoreError> {
        let mut order = order.clone();
        // A fresh row always starts at version 1, whatever the caller built.
        order.version = 1;
        let cap = cap.cloned();
        self.write(move |conn| {
            if let Some(cap) = &cap
                && select_order(conn, &order.merchant_id, &order.merchant_order_no)?.is_none()
            {
                // On the single writer, this sum and the insert below are
                // one atomic step.
                let counted =
                    payer_total_since(conn, &order.merchant_id, &cap.payer_openid, cap.since)?;
                if counted.saturating_add(order.amount_minor) > cap.max_minor {
                    return Err(StoreError::CapExceeded {
                        counted_minor: counted,
                    });
                }
            }
            let inserted = conn
                .prepare_cached(&format!(
                    "INSERT INTO orders ({ORDER_COLUMNS}) VALUES
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                      ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)
                     ON CONFLICT (merchant_id, merchant_order_no) DO NOTHING"
                ))
                .and_then(|mut s| {
                    let mut values = order_values(&order);
                    values.push(Box::new(order.created_at));
                    values.push(Box::new(order.updated_at));
                    values.push(Box::new(order.version));
                    s.execute(rusqlite::params_from_iter(values))
                })
                .map_err(sql_err)?;
            if inserted == 1 {
                return Ok(Inserted::New(order));
            }
            select_order(conn, &order.merchant_id, &order.merchant_order_no)?
                .map(Inserted::Existing)
                .ok_or_else(|| StoreError::Corrupt("order vanished during insert".into()))
        })
        .await
    }

    async fn get_order(
        &self,
        merchant_id: &str,
        merchant_order_no: &str,
    ) -> Result<Option<Order>, StoreError> {
        let (m, o) = (merchant_id.to_owned(), merchant_order_no.to_owned());
        self.read(move |conn| select_order(conn, &m, &o)).await
    }

    async fn update_order_completing(
        &self,
        order: &Order,
        events: &[NewEvent],
        completion: Option<KeyCompletion>,
    ) -> Result<Order, StoreError> {
        let order = order.clone();
        let events = events.to_vec();
        self.write(move |conn| {
            let now = now_ms();
            let stored = cas_order(conn, &order, now)?;
            append_events(conn, &order.merchant_id, &events, now)?;
            if let Some(c) = completion {
                let body = (c.render)(&stored);
                complete_key(conn, &c.merchant_id, &c.key, c.status, &body, now)?;
            }
            Ok(stored)
        })
        .await
    }

    async fn record_mismatch(
        &self,
        merchant_id: &str,
        merchant_order_no: &str,
        fingerprint: &str,
        event: &NewEvent,
    ) -> Result<bool, StoreError> {
        let (m, o, f) = (
            merchant_id.to_owned(),
            merchant_order_no.to_owned(),
            fingerprint.to_owned(),
        );
        let event = event.clone();
        self.write(move |conn| {
            let now = now_ms();
            let first = conn
                .prepare_cached(
                    "INSERT INTO mismatches (merchant_id, merchant_order_no, fingerprint,
                         first_seen_at, last_seen_at, seen)
                     VALUES (?1, ?2, ?3, ?4, ?4, 1)
                     ON CONFLICT (merchant_id, merchant_order_no, fingerprint)
                     DO UPDATE SET last_seen_at = excluded.last_seen_at, seen = seen + 1
                     RETURNING seen",
                )
                .and_then(|mut s| s.query_row(params![m, o, f, now], |r| r.get::<_, i64>(0)))
                .map_err(sql_err)?
                == 1;
            if first {
                append_events(conn, &m, std::slice::from_ref(&event), now)?;
            }
            Ok(first)
        })
        .await
    }

    async fn insert_refund(
        &self,
        refund: &Refund,
        order: &Order,
        events: &[NewEvent],
    ) -> Result<Inserted<Refund>, StoreError> {
        let mut refund = refund.clone();
        refund.version = 1;
        let order = order.clone();
        let events = events.to_vec();
        if refund.merchant_id != order.merchant_id
            || refund.merchant_order_no != order.merchant_order_no
        {
            return Err(StoreError::Corrupt(
                "refund and order name different orders".into(),
            ));
        }
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached(&format!(
                    "INSERT INTO refunds ({REFUND_COLUMNS}) VALUES
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                     ON CONFLICT (merchant_id, merchant_order_no, refund_no) DO NOTHING"
                ))
                .and_then(|mut s| {
                    s.execute(params![
                        refund.merchant_id,
                        refund.merchant_order_no,
                        refund.refund_no,
                        refund.amount_minor,
                        refund.currency,
                        refund.state.as_str(),
                        refund.provider_refund_id,
                        refund.reason,
                        refund.created_at,
                        refund.updated_at,
                        refund.version,
                        refund.next_poll_at,
                        refund.poll_attempts,
                    ])
                })
                .map_err(sql_err)?;
            if inserted == 0 {
                // Same refund number again: a retry, not a second refund.
                return select_refund(
                    conn,
                    &refund.merchant_id,
                    &refund.merchant_order_no,
                    &refund.refund_no,
                )?
                .map(Inserted::Existing)
                .ok_or_else(|| StoreError::Corrupt("refund vanished during insert".into()));
            }
            let now = now_ms();
            // Bumping the order's version serializes refunds of one order:
            // of two concurrent refunds checked against the same order,
            // the second loses the compare-and-set.
            cas_order(conn, &order, now)?;
            append_events(conn, &order.merchant_id, &events, now)?;
            Ok(Inserted::New(refund))
        })
        .await
    }

    async fn update_refund(
        &self,
        refund: &Refund,
        order: Option<&Order>,
        events: &[NewEvent],
    ) -> Result<Refund, StoreError> {
        let refund = refund.clone();
        let order = order.cloned();
        let events = events.to_vec();
        self.write(move |conn| {
            let now = now_ms();
            let stored = cas_refund(conn, &refund, now)?;
            if let Some(order) = &order {
                cas_order(conn, order, now)?;
            }
            append_events(conn, &refund.merchant_id, &events, now)?;
            Ok(stored)
        })
        .await
    }

    async fn get_refund(
        &self,
        merchant_id: &str,
        merchant_order_no: &str,
        refund_no: &str,
    ) -> Result<Option<Refund>, StoreError> {
        let (m, o, r) = (
            merchant_id.to_owned(),
            merchant_order_no.to_owned(),
            refund_no.to_owned(),
        );
        self.read(move |conn| select_refund(conn, &m, &o, &r)).await
    }

    async fn list_refunds(
        &self,
        merchant_id: &str,
        merchant_order_no: &str,
    ) -> Result<Vec<Refund>, StoreError> {
        let (m, o) = (merchant_id.to_owned(), merchant_order_no.to_owned());
        self.read(move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {REFUND_COLUMNS} FROM refunds
                     WHERE merchant_id = ?1 AND merchant_order_no = ?2
                     ORDER BY created_at, refund_no"
                ),
                params![m, o],
                refund_from_row,
            )
        })
        .await
    }

    async fn record_notification(&self, record: &NotificationRecord) -> Result<i64, StoreError> {
        let rec = record.clone();
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO notifications (merchant_id, adapter, received_at, method, path,
                     query, headers, body, verdict, detail, merchant_order_no, received_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        rec.merchant_id,
                        rec.adapter,
                        rec.received_at,
                        rec.method,
                        rec.path,
                        rec.query,
                        json_text(&rec.headers),
                        rec.body,
                        rec.verdict,
                        rec.detail,
                        rec.merchant_order_no,
                        rec.received_bytes,
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(sql_err)
        })
        .await
    }

    async fn idempotency_begin(
        &self,
        merchant_id: &str,
        key: &str,
        request_hash: &str,
        now: i64,
    ) -> Result<IdempotencyBegin, StoreError> {
        let (m, k, h) = (
            merchant_id.to_owned(),
            key.to_owned(),
            request_hash.to_owned(),
        );
        // Runs on the single writer, so the check and the claim below are
        // one atomic step; on PostgreSQL the INSERT ... ON CONFLICT alone
        // decides the race.
        self.write(move |conn| {
            let claimed = conn
                .prepare_cached(
                    "INSERT INTO idempotency (merchant_id, idem_key, request_hash, status,
                         response_body, created_at, completed_at)
                     VALUES (?1, ?2, ?3, NULL, NULL, ?4, NULL)
                     ON CONFLICT (merchant_id, idem_key) DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![m, k, h, now]))
                .map_err(sql_err)?;
            if claimed == 1 {
                return Ok(IdempotencyBegin::Started);
            }
            let (stored_hash, status, body, created_at): (
                String,
                Option<i64>,
                Option<Vec<u8>>,
                i64,
            ) = conn
                .prepare_cached(
                    "SELECT request_hash, status, response_body, created_at FROM idempotency
                     WHERE merchant_id = ?1 AND idem_key = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![m, k], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                })
                .map_err(sql_err)?;
            if stored_hash != h {
                return Ok(IdempotencyBegin::Mismatch);
            }
            match status {
                Some(status) => Ok(IdempotencyBegin::Completed {
                    status: u16::try_from(status)
                        .map_err(|_| StoreError::Corrupt(format!("idempotency status {status}")))?,
                    body: body.unwrap_or_default(),
                }),
                None if now - created_at > IDEMPOTENCY_LEASE_MS => {
                    // The first request died with its process; let this one
                    // take the key over (a create is still deduplicated by
                    // its merchant order no).
                    conn.prepare_cached(
                        "UPDATE idempotency SET created_at = ?3
                         WHERE merchant_id = ?1 AND idem_key = ?2",
                    )
                    .and_then(|mut s| s.execute(params![m, k, now]))
                    .map_err(sql_err)?;
                    Ok(IdempotencyBegin::Started)
                }
                None => Ok(IdempotencyBegin::InProgress),
            }
        })
        .await
    }

    async fn idempotency_complete(
        &self,
        merchant_id: &str,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), StoreError> {
        let (m, k, b) = (merchant_id.to_owned(), key.to_owned(), body.to_vec());
        self.write(move |conn| complete_key(conn, &m, &k, status, &b, now_ms()))
            .await
    }

    async fn idempotency_release(&self, merchant_id: &str, key: &str) -> Result<(), StoreError> {
        let (m, k) = (merchant_id.to_owned(), key.to_owned());
        self.write(move |conn| {
            // A completed key is never forgotten: its answer must replay.
            conn.prepare_cached(
                "DELETE FROM idempotency
                 WHERE merchant_id = ?1 AND idem_key = ?2 AND status IS NULL",
            )
            .and_then(|mut s| s.execute(params![m, k]))
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn due_events(&self, now: i64, limit: i64) -> Result<Vec<OutboxEvent>, StoreError> {
        self.read(move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {OUTBOX_COLUMNS} FROM outbox
                     WHERE delivered_at IS NULL AND gave_up = 0 AND next_attempt_at <= ?1
                     ORDER BY id LIMIT ?2"
                ),
                params![now, limit],
                event_from_row,
            )
        })
        .await
    }

    async fn mark_delivered(&self, id: i64, at: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL
                 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, at]))
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn mark_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: i64,
        give_up: bool,
    ) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2,
                     next_attempt_at = ?3, gave_up = ?4
                 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, error, next_attempt_at, i64::from(give_up)]))
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn list_events(
        &self,
        merchant_id: &str,
        limit: i64,
        after_id: Option<i64>,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let m = merchant_id.to_owned();
        self.read(move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {OUTBOX_COLUMNS} FROM outbox
                     WHERE merchant_id = ?1 AND id > ?2
                     ORDER BY id LIMIT ?3"
                ),
                params![m, after_id.unwrap_or(0), limit],
                event_from_row,
            )
        })
        .await
    }

    async fn orders_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Order>, StoreError> {
        self.read(move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {ORDER_COLUMNS} FROM orders
                     WHERE state IN ('created', 'pending') AND next_poll_at <= ?1
                     ORDER BY next_poll_at LIMIT ?2"
                ),
                params![now, limit],
                order_from_row,
            )
        })
        .await
    }

    async fn refunds_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Refund>, StoreError> {
        self.read(move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {REFUND_COLUMNS} FROM refunds
                     WHERE state = 'pending' AND next_poll_at <= ?1
                     ORDER BY next_poll_at LIMIT ?2"
                ),
                params![now, limit],
                refund_from_row,
            )
        })
        .await
    }

    async fn count_orders_by_state(&self) -> Result<Vec<(OrderState, i64)>, StoreError> {
        self.read(|conn| {
            query_all(
                conn,
                "SELECT state, COUNT(*) FROM orders GROUP BY state ORDER BY state",
                [],
                |r| {
                    let state: String = r.get(0).map_err(sql_err)?;
                    let n: i64 = r.get(1).map_err(sql_err)?;
                    let state = OrderState::parse(&state).ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown order state {state:?}"))
                    })?;
                    Ok((state, n))
                },
            )
        })
        .await
    }

    async fn paid_total_since(
        &self,
        merchant_id: &str,
        payer_openid: &str,
        since: i64,
    ) -> Result<i64, StoreError> {
        let (m, p) = (merchant_id.to_owned(), payer_openid.to_owned());
        self.read(move |conn| payer_total_since(conn, &m, &p, since))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Through the writer: readiness means writes can be committed. A
        // transaction that changes nothing costs no fsync.
        self.write(|conn| {
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn list_notifications(
        &self,
        merchant_id: &str,
        limit: i64,
        after_id: Option<i64>,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        self.notifications_of(merchant_id, limit, after_id).await
    }

    async fn due_merchants(&self, now: i64, limit: i64) -> Result<Vec<String>, StoreError> {
        self.merchants_due(now, limit).await
    }

    async fn due_events_of(
        &self,
        merchant_id: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        self.events_due_of(merchant_id, now, limit).await
    }

    async fn mark_undeliverable(
        &self,
        merchant_id: &str,
        reason: &str,
        detail: &str,
    ) -> Result<u64, StoreError> {
        self.set_undeliverable(merchant_id, reason, detail).await
    }

    async fn revive_undeliverable(
        &self,
        merchant_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.unset_undeliverable(merchant_id, reason, now).await
    }

    async fn prune(&self, policy: &PrunePolicy) -> Result<PruneReport, StoreError> {
        self.delete_expired(*policy).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::AtomicUsize;

    /// A fresh database path under target/tmp (never the system temp dir:
    /// the test data stays with the build and is easy to inspect).
    fn db_path(name: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
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

    fn order(no: &str) -> Order {
        Order {
            merchant_id: "m1".into(),
            merchant_order_no: no.into(),
            adapter: "wechat-v2".into(),
            adapter_digest: "sha256:abc".into(),
            method: "wechat_mini_program".into(),
            description: "green tea".into(),
            amount_minor: 1000,
            currency: "CNY".into(),
            state: OrderState::Created,
            provider_trade_no: None,
            channel_transaction_id: None,
            payer_app_id: Some("wxapp".into()),
            payer_openid: Some("openid-1".into()),
            client_ip: Some("127.0.0.1".into()),
            pay_action: Some(json!({"mini_program": {"package": "prepay_id=1"}})),
            refunded_minor: 0,
            expires_at: Some(10_000),
            paid_at: None,
            attach: Some("a".into()),
            metadata: json!({"k": [1, 2]}),
            next_poll_at: Some(100),
            poll_attempts: 0,
            created_at: 50,
            updated_at: 50,
            version: 1,
        }
    }

    fn refund(no: &str, amount: i64) -> Refund {
        Refund {
            merchant_id: "m1".into(),
            merchant_order_no: "o1".into(),
            refund_no: no.into(),
            amount_minor: amount,
            currency: "CNY".into(),
            state: RefundState::Pending,
            provider_refund_id: None,
            reason: Some("broken cup".into()),
            next_poll_at: None,
            poll_attempts: 0,
            created_at: 60,
            updated_at: 60,
            version: 1,
        }
    }

    fn ev(t: &str) -> NewEvent {
        NewEvent {
            event_type: t.into(),
            payload: json!({"t": t}),
        }
    }

    async fn all_events(s: &SqliteStore) -> Vec<OutboxEvent> {
        s.list_events("m1", 10_000, None).await.unwrap()
    }

    #[tokio::test]
    async fn order_round_trip_and_duplicate_insert() {
        let s = SqliteStore::open(db_path("roundtrip")).unwrap();
        let o = order("o1");
        let Inserted::New(stored) = s.insert_order(&o).await.unwrap() else {
            panic!("first insert must be new")
        };
        assert_eq!(stored, o);
        assert_eq!(s.get_order("m1", "o1").await.unwrap(), Some(o.clone()));
        assert_eq!(s.get_order("m1", "nope").await.unwrap(), None);
        assert_eq!(s.get_order("m2", "o1").await.unwrap(), None);

        let mut other = order("o1");
        other.amount_minor = 5;
        assert_eq!(
            s.insert_order(&other).await.unwrap(),
            Inserted::Existing(o.clone())
        );
        // Options that are None and JSON null survive too.
        let mut bare = order("o2");
        bare.pay_action = None;
        bare.payer_openid = None;
        bare.metadata = serde_json::Value::Null;
        s.insert_order(&bare).await.unwrap();
        assert_eq!(s.get_order("m1", "o2").await.unwrap(), Some(bare));
    }

    #[tokio::test]
    async fn update_is_compare_and_set_with_atomic_events() {
        let s = SqliteStore::open(db_path("cas")).unwrap();
        let o = s.insert_order(&order("o1")).await.unwrap().into_inner();
        let mut paid = o.clone();
        paid.state = OrderState::Paid;
        paid.channel_transaction_id = Some("wx1".into());
        let stored = s.update_order(&paid, &[ev("payment.paid")]).await.unwrap();
        assert_eq!(stored.version, 2);
        assert!(stored.updated_at >= o.updated_at);
        assert_eq!(s.get_order("m1", "o1").await.unwrap(), Some(stored.clone()));

        // The stale copy loses, and its events are not appended.
        let mut stale = o.clone();
        stale.state = OrderState::Closed;
        assert!(matches!(
            s.update_order(&stale, &[ev("payment.closed")]).await,
            Err(StoreError::Conflict)
        ));
        let events = all_events(&s).await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, "payment.paid");
        assert!(events[0].event_id.starts_with("evt_"));
        assert_eq!(events[0].payload, json!({"t": "payment.paid"}));
        assert_eq!(
            s.get_order("m1", "o1").await.unwrap().unwrap().state,
            OrderState::Paid
        );
        // Unknown order: nothing to compare with.
        assert!(matches!(
            s.update_order(&order("ghost"), &[ev("x")]).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(all_events(&s).await.len(), 1);
    }

    #[tokio::test]
    async fn refunds_insert_update_list() {
        let s = SqliteStore::open(db_path("refunds")).unwrap();
        let o = s.insert_order(&order("o1")).await.unwrap().into_inner();

        let r1 = s.insert_refund(&refund("r1", 300), &o, &[]).await.unwrap();
        assert!(r1.is_new());
        // The order's version moved, so a refund decided on the old copy
        // loses and leaves no row behind.
        assert!(matches!(
            s.insert_refund(&refund("r2", 300), &o, &[ev("x")]).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(s.get_refund("m1", "o1", "r2").await.unwrap(), None);
        assert!(all_events(&s).await.is_empty());

        // Same refund number again: Existing, nothing written.
        let o2 = s.get_order("m1", "o1").await.unwrap().unwrap();
        assert_eq!(o2.version, 2);
        let again = s
            .insert_refund(&refund("r1", 999), &o2, &[ev("x")])
            .await
            .unwrap();
        assert_eq!(again, Inserted::Existing(r1.clone().into_inner()));
        assert_eq!(s.get_order("m1", "o1").await.unwrap().unwrap().version, 2);

        let mut done = r1.into_inner();
        done.state = RefundState::Succeeded;
        done.provider_refund_id = Some("wxr".into());
        let mut o3 = o2.clone();
        o3.refunded_minor = 300;
        o3.state = OrderState::PartiallyRefunded;
        let stored = s
            .update_refund(&done, Some(&o3), &[ev("refund.succeeded")])
            .await
            .unwrap();
        assert_eq!(stored.version, 2);
        assert_eq!(s.get_refund("m1", "o1", "r1").await.unwrap(), Some(stored));
        let o4 = s.get_order("m1", "o1").await.unwrap().unwrap();
        assert_eq!((o4.refunded_minor, o4.version), (300, 3));
        // A stale refund update (same version) conflicts and rolls back the
        // order change with it.
        let mut o5 = o4.clone();
        o5.refunded_minor = 600;
        assert!(matches!(
            s.update_refund(&done, Some(&o5), &[ev("refund.succeeded")])
                .await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(s.get_order("m1", "o1").await.unwrap().unwrap(), o4);
        assert_eq!(all_events(&s).await.len(), 1);

        let r2 = s
            .insert_refund(&refund("r2", 100), &o4, &[])
            .await
            .unwrap()
            .into_inner();
        let list = s.list_refunds("m1", "o1").await.unwrap();
        assert_eq!(
            list.iter()
                .map(|r| r.refund_no.as_str())
                .collect::<Vec<_>>(),
            ["r1", "r2"]
        );
        assert_eq!(list[1], r2);
        assert!(s.list_refunds("m1", "o9").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn concurrent_idempotency_begin_has_one_winner() {
        let s = Arc::new(SqliteStore::open(db_path("idem")).unwrap());
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.idempotency_begin("m1", "k", "h", 1_000).await })
            })
            .collect();
        let mut started = 0;
        for t in tasks {
            match t.await.unwrap().unwrap() {
                IdempotencyBegin::Started => started += 1,
                IdempotencyBegin::InProgress => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(started, 1);

        assert_eq!(
            s.idempotency_begin("m1", "k", "other", 1_001)
                .await
                .unwrap(),
            IdempotencyBegin::Mismatch
        );
        // Another merchant's key space is separate.
        assert_eq!(
            s.idempotency_begin("m2", "k", "h", 1_001).await.unwrap(),
            IdempotencyBegin::Started
        );
        s.idempotency_complete("m1", "k", 201, b"{\"ok\":1}")
            .await
            .unwrap();
        // Release never forgets a completed answer.
        s.idempotency_release("m1", "k").await.unwrap();
        assert_eq!(
            s.idempotency_begin("m1", "k", "h", 1_002).await.unwrap(),
            IdempotencyBegin::Completed {
                status: 201,
                body: b"{\"ok\":1}".to_vec()
            }
        );
        // Released in-progress keys can be claimed again.
        s.idempotency_release("m2", "k").await.unwrap();
        assert_eq!(
            s.idempotency_begin("m2", "k", "h2", 1_003).await.unwrap(),
            IdempotencyBegin::Started
        );
        // An abandoned claim is taken over after the lease.
        assert_eq!(
            s.idempotency_begin("m2", "k", "h2", 1_004).await.unwrap(),
            IdempotencyBegin::InProgress
        );
        assert_eq!(
            s.idempotency_begin("m2", "k", "h2", 1_003 + IDEMPOTENCY_LEASE_MS + 1)
                .await
                .unwrap(),
            IdempotencyBegin::Started
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn group_commit_of_concurrent_writes_is_durable() {
        let path = db_path("group");
        {
            let s = Arc::new(SqliteStore::open(&path).unwrap());
            let base = s.insert_order(&order("base")).await.unwrap().into_inner();
            let mut tasks = Vec::new();
            for i in 0..500 {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    s.insert_order(&order(&format!("o{i}")))
                        .await
                        .map(|r| r.is_new())
                }));
            }
            // Failing writes mixed into the same batches fail alone.
            let mut stale = Vec::new();
            for _ in 0..50 {
                let (s, mut b) = (s.clone(), base.clone());
                b.version = 99;
                stale.push(tokio::spawn(
                    async move { s.update_order(&b, &[ev("x")]).await },
                ));
            }
            for t in tasks {
                assert!(t.await.unwrap().unwrap());
            }
            for t in stale {
                assert!(matches!(t.await.unwrap(), Err(StoreError::Conflict)));
            }
            let st = s.stats();
            assert!(st.max_batch.load(Ordering::Relaxed) <= MAX_BATCH as u64);
            assert_eq!(st.writes.load(Ordering::Relaxed), 551);
        }
        let s = SqliteStore::open(&path).unwrap();
        let counts = s.count_orders_by_state().await.unwrap();
        assert_eq!(counts, vec![(OrderState::Created, 501)]);
        for i in 0..500 {
            let o = s.get_order("m1", &format!("o{i}")).await.unwrap();
            assert_eq!(o, Some(order(&format!("o{i}"))));
        }
        assert!(all_events(&s).await.is_empty());
    }

    #[tokio::test]
    async fn restart_loses_nothing() {
        let path = db_path("restart");
        let note = NotificationRecord {
            id: 0,
            merchant_id: "m1".into(),
            adapter: "wechat-v2".into(),
            received_at: 70,
            method: "POST".into(),
            path: "/v1/notify/wechat-v2/m1".into(),
            query: String::new(),
            headers: json!([["content-type", "text/xml"]]),
            body: b"<xml>\x00\xff</xml>".to_vec(),
            verdict: "rejected".into(),
            detail: Some("bad signature".into()),
            merchant_order_no: Some("o1".into()),
            received_bytes: 13,
        };
        let (paid, note_id) = {
            let s = SqliteStore::open(&path).unwrap();
            let o = s.insert_order(&order("o1")).await.unwrap().into_inner();
            let mut p = o.clone();
            p.state = OrderState::Paid;
            let paid = s.update_order(&p, &[ev("payment.paid")]).await.unwrap();
            s.insert_refund(&refund("r1", 100), &paid, &[])
                .await
                .unwrap();
            s.idempotency_begin("m1", "k", "h", 1).await.unwrap();
            s.idempotency_complete("m1", "k", 200, b"x").await.unwrap();
            let id = s.record_notification(&note).await.unwrap();
            assert!(id > 0);
            (s.get_order("m1", "o1").await.unwrap().unwrap(), id)
        };
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.get_order("m1", "o1").await.unwrap(), Some(paid));
        assert_eq!(s.list_refunds("m1", "o1").await.unwrap().len(), 1);
        assert_eq!(all_events(&s).await.len(), 1);
        assert_eq!(
            s.idempotency_begin("m1", "k", "h", 2).await.unwrap(),
            IdempotencyBegin::Completed {
                status: 200,
                body: b"x".to_vec()
            }
        );
        let id2 = s.record_notification(&note).await.unwrap();
        assert!(id2 > note_id);
        // The raw bytes are kept exactly.
        let body: Vec<u8> = s
            .read(move |c| {
                c.query_row(
                    "SELECT body FROM notifications WHERE id = ?1",
                    [note_id],
                    |r| r.get(0),
                )
                .map_err(sql_err)
            })
            .await
            .unwrap();
        assert_eq!(body, note.body);
        // Migrations are recorded once, not re-run.
        let n: i64 = s
            .read(|c| {
                c.query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
                    .map_err(sql_err)
            })
            .await
            .unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
        s.ping().await.unwrap();
    }

    #[tokio::test]
    async fn outbox_due_failed_give_up_delivered() {
        let s = SqliteStore::open(db_path("outbox")).unwrap();
        let o = s.insert_order(&order("o1")).await.unwrap().into_inner();
        let o = s
            .update_order(&o, &[ev("a"), ev("b"), ev("c")])
            .await
            .unwrap();
        let now = now_ms() + 1;
        let due = s.due_events(now, 10).await.unwrap();
        assert_eq!(
            due.iter()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(s.due_events(now, 2).await.unwrap().len(), 2);
        let (a, b, c) = (due[0].id, due[1].id, due[2].id);

        s.mark_failed(a, "HTTP 500", now + 1_000, false)
            .await
            .unwrap();
        s.mark_failed(b, "refused", now, true).await.unwrap();
        s.mark_delivered(c, now).await.unwrap();
        assert!(s.due_events(now, 10).await.unwrap().is_empty());
        let later = s.due_events(now + 1_000, 10).await.unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].id, a);
        assert_eq!(later[0].attempts, 1);
        assert_eq!(later[0].last_error.as_deref(), Some("HTTP 500"));

        let all = all_events(&s).await;
        assert!(all[1].gave_up && all[1].delivered_at.is_none());
        assert_eq!(all[2].delivered_at, Some(now));
        // Paging by id and by merchant.
        let page = s.list_events("m1", 10, Some(a)).await.unwrap();
        assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [b, c]);
        assert!(s.list_events("m2", 10, None).await.unwrap().is_empty());
        let _ = o;
    }

    #[tokio::test]
    async fn poll_scan_counts_and_payer_totals() {
        let s = SqliteStore::open(db_path("scans")).unwrap();
        let mut ids = Vec::new();
        for (no, state, poll) in [
            ("a", OrderState::Created, Some(100)),
            ("b", OrderState::Pending, Some(50)),
            ("c", OrderState::Pending, Some(500)),
            ("d", OrderState::Pending, None),
            ("e", OrderState::Paid, Some(10)),
            ("f", OrderState::Closed, Some(10)),
        ] {
            let mut o = order(no);
            o.next_poll_at = poll;
            let mut stored = s.insert_order(&o).await.unwrap().into_inner();
            if state != OrderState::Created {
                stored.state = state;
                s.update_order(&stored, &[]).await.unwrap();
            }
            ids.push(no);
        }
        let due = s.orders_to_poll(100, 10).await.unwrap();
        assert_eq!(
            due.iter()
                .map(|o| o.merchant_order_no.as_str())
                .collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(s.orders_to_poll(100, 1).await.unwrap().len(), 1);

        let mut counts = s.count_orders_by_state().await.unwrap();
        counts.sort_by_key(|c| c.0.as_str());
        assert_eq!(
            counts,
            vec![
                (OrderState::Closed, 1),
                (OrderState::Created, 1),
                (OrderState::Paid, 1),
                (OrderState::Pending, 3),
            ]
        );
        // Created (a: it may still be accepted), pending (b, c, d) and paid
        // (e) count; closed does not.
        assert_eq!(
            s.paid_total_since("m1", "openid-1", 0).await.unwrap(),
            5_000
        );
        assert_eq!(s.paid_total_since("m1", "openid-1", 51).await.unwrap(), 0);
        assert_eq!(s.paid_total_since("m1", "someone", 0).await.unwrap(), 0);
        assert_eq!(ids.len(), 6);
    }

    #[tokio::test]
    async fn a_capped_insert_counts_and_inserts_in_one_step() {
        let s = Arc::new(SqliteStore::open(db_path("capped")).unwrap());
        let cap = DailyCap {
            payer_openid: "openid-1".into(),
            since: 0,
            max_minor: 3_500,
        };
        // 10 concurrent orders of 1,000 for one payer under a 3,500 cap.
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let (s, cap) = (s.clone(), cap.clone());
                tokio::spawn(async move {
                    s.insert_order_capped(&order(&format!("o{i}")), Some(&cap))
                        .await
                })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(Inserted::New(_)) => admitted += 1,
                Err(StoreError::CapExceeded { counted_minor }) => assert_eq!(counted_minor, 3_000),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(admitted, 3);
        // Retrying an existing order is not a new amount.
        assert!(matches!(
            s.insert_order_capped(&order("o0"), Some(&cap)).await,
            Ok(Inserted::Existing(_)) | Err(StoreError::CapExceeded { .. })
        ));
        // A closed order frees its share of the day.
        let mut o = s
            .get_order("m1", "o0")
            .await
            .unwrap()
            .or(s.get_order("m1", "o1").await.unwrap())
            .unwrap();
        o.state = OrderState::Closed;
        s.update_order(&o, &[]).await.unwrap();
        assert!(
            s.insert_order_capped(&order("late"), Some(&cap))
                .await
                .unwrap()
                .is_new()
        );
    }

    #[tokio::test]
    async fn a_key_completes_with_the_order_write_or_not_at_all() {
        let s = SqliteStore::open(db_path("key-with-order")).unwrap();
        let o = s.insert_order(&order("o1")).await.unwrap().into_inner();
        assert_eq!(
            s.idempotency_begin("m1", "k1", "h", 1).await.unwrap(),
            IdempotencyBegin::Started
        );
        let completion = |status| KeyCompletion {
            merchant_id: "m1".into(),
            key: "k1".into(),
            status,
            render: Box::new(|o: &Order| format!("v{}", o.version).into_bytes()),
        };
        // A lost compare-and-set writes neither the order nor the key.
        let mut stale = o.clone();
        stale.version = 99;
        assert!(matches!(
            s.update_order_completing(&stale, &[], Some(completion(201)))
                .await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(
            s.idempotency_begin("m1", "k1", "h", 2).await.unwrap(),
            IdempotencyBegin::InProgress
        );
        let saved = s
            .update_order_completing(&o, &[], Some(completion(201)))
            .await
            .unwrap();
        assert_eq!(
            s.idempotency_begin("m1", "k1", "h", 3).await.unwrap(),
            IdempotencyBegin::Completed {
                status: 201,
                body: format!("v{}", saved.version).into_bytes()
            }
        );
    }

    #[tokio::test]
    async fn a_mismatch_is_told_once_and_counted_after() {
        let s = SqliteStore::open(db_path("mismatch")).unwrap();
        s.insert_order(&order("o1")).await.unwrap();
        let e = ev("payment.provider_mismatch");
        assert!(s.record_mismatch("m1", "o1", "fp-1", &e).await.unwrap());
        assert!(!s.record_mismatch("m1", "o1", "fp-1", &e).await.unwrap());
        assert!(s.record_mismatch("m1", "o1", "fp-2", &e).await.unwrap());
        let events = s.list_events("m1", 10, None).await.unwrap();
        assert_eq!(events.len(), 2);
        assert!(
            events
                .iter()
                .all(|x| x.event_type == "payment.provider_mismatch")
        );
    }

    #[tokio::test]
    async fn pending_refunds_come_up_for_polling_when_due() {
        let s = SqliteStore::open(db_path("refund-poll")).unwrap();
        let o = s.insert_order(&order("o1")).await.unwrap().into_inner();
        let mut r = refund("r1", 100);
        r.next_poll_at = Some(500);
        s.insert_refund(&r, &o, &[]).await.unwrap();
        assert!(s.refunds_to_poll(499, 10).await.unwrap().is_empty());
        let due = s.refunds_to_poll(500, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].next_poll_at, due[0].poll_attempts), (Some(500), 0));
        let mut done = due[0].clone();
        done.state = RefundState::Succeeded;
        done.poll_attempts = 2;
        let saved = s.update_refund(&done, None, &[]).await.unwrap();
        assert_eq!(saved.poll_attempts, 2);
        assert!(s.refunds_to_poll(10_000, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn newer_schema_is_refused() {
        let path = db_path("newer");
        drop(SqliteStore::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)",
            [],
        )
        .unwrap();
        drop(c);
        assert!(
            matches!(SqliteStore::open(&path), Err(StoreError::Corrupt(m)) if m.contains("999"))
        );
    }
}
