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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::clock::now_ms;
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, params};

use super::limit_minor;
use super::payouts::{
    CAS_PAYOUT, INSERT_PAYOUT, PAYOUT_TOTALS, PAYOUTS_TO_POLL, SELECT_PAYOUT, payout_binds,
    payout_from,
};
use super::rows::Bind;
use super::sql::{
    DELETE_UNSENT_ORDER, DUE_EVENTS, INSERT_ORDER, INSERT_REFUND, LIST_EVENTS, LIST_REFUNDS,
    MARK_DELIVERED, MARK_FAILED, ORDERS_TO_POLL, RECORD_MISMATCH, REFUNDS_TO_POLL,
};
use super::{
    Claimed, Contract, DailyCap, Deduction, DeductionCaps, DeductionHistory, IdempotencyBegin,
    Inserted, KeyClaim, KeyCompletion, NewEvent, NotificationRecord, Order, OrderState,
    OutboxEvent, Payout, PayoutCaps, PayoutTotals, PrunePolicy, PruneReport, Refund, Store,
    StoreError,
};

/// Contracts and deductions (migration 9).
mod contracts;
/// Notification records, delivery scheduling and retention (migration 3).
mod housekeeping;
/// Orders by state, kept by triggers (migration 4).
mod order_counts;
mod rows;
pub(in crate::store) mod schema;
#[cfg(test)]
mod tests;
mod updates;
mod writer;

use rows::*;
use schema::migrate;
use updates::*;
pub use writer::WriterStats;
use writer::{WriteJob, configure_writer, writer_loop};

/// Most writes committed in one transaction. Larger batches gain little
/// (the fsync dominates) and make a failed COMMIT fail more callers.
pub const MAX_BATCH: usize = 64;

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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
        let (job, rx) = writer::job(f);
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

/// Inserts `order` (at version 1) unless its number exists, under `cap`.
fn insert_capped(
    conn: &Connection,
    order: &Order,
    cap: Option<&DailyCap>,
) -> Result<Inserted<Order>, StoreError> {
    if let Some(cap) = cap
        && select_order(conn, &order.merchant_id, &order.merchant_order_no)?.is_none()
    {
        // On the single writer, this sum and the insert below are
        // one atomic step.
        let counted = payer_total_since(conn, &order.merchant_id, &cap.payer_openid, cap.since)?;
        if counted.saturating_add(cap.counts_minor) > cap.max_minor {
            return Err(StoreError::CapExceeded {
                counted_minor: counted,
            });
        }
    }
    let inserted = conn
        .prepare_cached(&INSERT_ORDER)
        .and_then(|mut s| {
            let mut values = order_values(order);
            values.push(Box::new(order.created_at));
            values.push(Box::new(order.updated_at));
            values.push(Box::new(order.version));
            values.push(Box::new(limit_minor(order, cap)));
            s.execute(rusqlite::params_from_iter(values))
        })
        .map_err(sql_err)?;
    if inserted == 1 {
        return Ok(Inserted::New(order.clone()));
    }
    select_order(conn, &order.merchant_id, &order.merchant_order_no)?
        .map(Inserted::Existing)
        .ok_or_else(|| StoreError::Corrupt("order vanished during insert".into()))
}

fn bound(binds: Vec<Bind>) -> rusqlite::ParamsFromIter<Vec<Box<dyn rusqlite::ToSql>>> {
    rusqlite::params_from_iter(
        binds
            .into_iter()
            .map(|b| -> Box<dyn rusqlite::ToSql> {
                match b {
                    Bind::Text(t) => Box::new(t),
                    Bind::Int(i) => Box::new(i),
                }
            })
            .collect::<Vec<_>>(),
    )
}

fn select_payout(
    conn: &Connection,
    merchant: &str,
    no: &str,
) -> Result<Option<Payout>, StoreError> {
    query_opt(conn, &SELECT_PAYOUT, params![merchant, no], |r| {
        payout_from(r)
    })
}

/// Inserts `payout` unless its number exists, under `caps`; on the single
/// writer the day's sum and the insert are one atomic step.
fn insert_payout_capped(
    conn: &Connection,
    payout: &Payout,
    caps: &PayoutCaps,
) -> Result<Inserted<Payout>, StoreError> {
    if let Some(existing) = select_payout(conn, &payout.merchant_id, &payout.payout_no)? {
        return Ok(Inserted::Existing(existing));
    }
    let totals = conn
        .prepare_cached(PAYOUT_TOTALS)
        .and_then(|mut s| {
            s.query_row(
                params![
                    payout.merchant_id,
                    payout.payee_openid,
                    caps.since,
                    payout.currency
                ],
                |r| {
                    Ok(PayoutTotals {
                        payee_minor: r.get(0)?,
                        payee_count: r.get(1)?,
                        merchant_minor: r.get(2)?,
                    })
                },
            )
        })
        .map_err(sql_err)?;
    caps.check(payout, totals)?;
    conn.prepare_cached(&INSERT_PAYOUT)
        .and_then(|mut s| s.execute(bound(payout_binds(payout, payout.updated_at, 1))))
        .map_err(sql_err)?;
    Ok(Inserted::New(Payout {
        version: 1,
        ..payout.clone()
    }))
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_payout(
        &self,
        payout: &Payout,
        caps: &PayoutCaps,
    ) -> Result<Inserted<Payout>, StoreError> {
        let (payout, caps) = (payout.clone(), caps.clone());
        self.write(move |conn| insert_payout_capped(conn, &payout, &caps))
            .await
    }

    async fn get_payout(
        &self,
        merchant_id: &str,
        payout_no: &str,
    ) -> Result<Option<Payout>, StoreError> {
        let (m, p) = (merchant_id.to_owned(), payout_no.to_owned());
        self.read(move |conn| select_payout(conn, &m, &p)).await
    }

    async fn update_payout(
        &self,
        payout: &Payout,
        events: &[NewEvent],
    ) -> Result<Payout, StoreError> {
        let (payout, events) = (payout.clone(), events.to_vec());
        self.write(move |conn| {
            let now = now_ms();
            let changed = conn
                .prepare_cached(CAS_PAYOUT)
                .and_then(|mut s| s.execute(bound(payout_binds(&payout, now, payout.version))))
                .map_err(sql_err)?;
            if changed == 0 {
                return Err(StoreError::Conflict);
            }
            append_events(conn, &payout.merchant_id, &events, now)?;
            Ok(super::payouts::stored(&payout, now))
        })
        .await
    }

    async fn insert_contract(&self, contract: &Contract) -> Result<Inserted<Contract>, StoreError> {
        let c = contract.clone();
        self.write(move |conn| contracts::insert_contract(conn, &c))
            .await
    }

    async fn get_contract(
        &self,
        merchant_id: &str,
        contract_no: &str,
    ) -> Result<Option<Contract>, StoreError> {
        let (m, c) = (merchant_id.to_owned(), contract_no.to_owned());
        self.read(move |conn| contracts::select_contract(conn, &m, &c))
            .await
    }

    async fn update_contract(
        &self,
        contract: &Contract,
        events: &[NewEvent],
    ) -> Result<Contract, StoreError> {
        let (c, events) = (contract.clone(), events.to_vec());
        self.write(move |conn| contracts::update_contract(conn, &c, &events))
            .await
    }

    async fn contracts_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Contract>, StoreError> {
        self.read(move |conn| contracts::contracts_to_poll(conn, now, limit))
            .await
    }

    async fn insert_deduction(
        &self,
        deduction: &Deduction,
        caps: &DeductionCaps,
    ) -> Result<Inserted<Deduction>, StoreError> {
        let (d, caps) = (deduction.clone(), caps.clone());
        self.write(move |conn| contracts::insert_deduction(conn, &d, &caps))
            .await
    }

    async fn get_deduction(
        &self,
        merchant_id: &str,
        deduction_no: &str,
    ) -> Result<Option<Deduction>, StoreError> {
        let (m, d) = (merchant_id.to_owned(), deduction_no.to_owned());
        self.read(move |conn| contracts::select_deduction(conn, &m, &d))
            .await
    }

    async fn update_deduction(
        &self,
        deduction: &Deduction,
        events: &[NewEvent],
    ) -> Result<Deduction, StoreError> {
        let (d, events) = (deduction.clone(), events.to_vec());
        self.write(move |conn| contracts::update_deduction(conn, &d, &events))
            .await
    }

    async fn delete_unsent_deduction(&self, deduction: &Deduction) -> Result<bool, StoreError> {
        let (m, d, v) = (
            deduction.merchant_id.clone(),
            deduction.deduction_no.clone(),
            deduction.version,
        );
        self.write(move |conn| {
            conn.prepare_cached(crate::store::contracts::DELETE_UNSENT_DEDUCTION)
                .and_then(|mut s| s.execute(params![m, d, v]))
                .map(|n| n == 1)
                .map_err(sql_err)
        })
        .await
    }

    async fn deduction_history(
        &self,
        merchant_id: &str,
        contract_no: &str,
        since: i64,
        failures_from: i64,
    ) -> Result<DeductionHistory, StoreError> {
        let (m, c) = (merchant_id.to_owned(), contract_no.to_owned());
        self.read(move |conn| contracts::history(conn, &m, &c, since, failures_from))
            .await
    }

    async fn deductions_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Deduction>, StoreError> {
        self.read(move |conn| contracts::deductions_to_poll(conn, now, limit))
            .await
    }

    async fn payouts_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Payout>, StoreError> {
        self.read(move |conn| {
            query_all(conn, &PAYOUTS_TO_POLL, params![now, limit], |r| {
                payout_from(r)
            })
        })
        .await
    }

    async fn insert_order_capped(
        &self,
        order: &Order,
        cap: Option<&DailyCap>,
    ) -> Result<Inserted<Order>, StoreError> {
        let mut order = order.clone();
        // A fresh row always starts at version 1, whatever the caller built.
        order.version = 1;
        let cap = cap.cloned();
        self.write(move |conn| insert_capped(conn, &order, cap.as_ref()))
            .await
    }

    async fn insert_order_claiming(
        &self,
        order: &Order,
        cap: Option<&DailyCap>,
        claim: Option<&KeyClaim>,
    ) -> Result<Claimed<Inserted<Order>>, StoreError> {
        let mut order = order.clone();
        order.version = 1;
        let (cap, claim) = (cap.cloned(), claim.cloned());
        // One transaction: the claim commits with the order or not at all.
        self.write(move |conn| {
            if let Some(c) = &claim {
                let begin = claim_key(conn, c)?;
                if begin != IdempotencyBegin::Started {
                    return Ok(Claimed::Held(begin));
                }
            }
            insert_capped(conn, &order, cap.as_ref()).map(Claimed::Ran)
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

    async fn delete_unsent_order(&self, order: &Order) -> Result<bool, StoreError> {
        let (m, o, v) = (
            order.merchant_id.clone(),
            order.merchant_order_no.clone(),
            order.version,
        );
        self.write(move |conn| {
            conn.prepare_cached(DELETE_UNSENT_ORDER)
                .and_then(|mut s| s.execute(params![m, o, v]))
                .map(|n| n == 1)
                .map_err(sql_err)
        })
        .await
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
                .prepare_cached(RECORD_MISMATCH)
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
                .prepare_cached(&INSERT_REFUND)
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
        self.read(move |conn| query_all(conn, &LIST_REFUNDS, params![m, o], refund_from_row))
            .await
    }

    async fn record_notification(&self, record: &NotificationRecord) -> Result<i64, StoreError> {
        let rec = record.clone();
        self.write(move |conn| insert_notification(conn, &rec))
            .await
    }

    async fn update_order_noting(
        &self,
        order: &Order,
        events: &[NewEvent],
        note: &NotificationRecord,
    ) -> Result<Order, StoreError> {
        let (order, events, note) = (order.clone(), events.to_vec(), note.clone());
        // One transaction: the change and the notification that caused it
        // are both stored or neither.
        self.write(move |conn| {
            let now = now_ms();
            let stored = cas_order(conn, &order, now)?;
            append_events(conn, &order.merchant_id, &events, now)?;
            insert_notification(conn, &note)?;
            Ok(stored)
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
        let claim = KeyClaim {
            merchant_id: merchant_id.to_owned(),
            key: key.to_owned(),
            request_hash: request_hash.to_owned(),
            now,
        };
        self.write(move |conn| claim_key(conn, &claim)).await
    }

    async fn idempotency_settle(
        &self,
        claim: &KeyClaim,
        answer: Option<(u16, &[u8])>,
    ) -> Result<IdempotencyBegin, StoreError> {
        let claim = claim.clone();
        let answer = answer.map(|(status, body)| (status, body.to_vec()));
        self.write(move |conn| {
            let begin = claim_key(conn, &claim)?;
            if begin == IdempotencyBegin::Started {
                match &answer {
                    Some((status, body)) => complete_key(
                        conn,
                        &claim.merchant_id,
                        &claim.key,
                        *status,
                        body,
                        claim.now,
                    )?,
                    None => release_key(conn, &claim.merchant_id, &claim.key)?,
                }
            }
            Ok(begin)
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
        self.write(move |conn| release_key(conn, &m, &k)).await
    }

    fn commit_waits(&self) -> Option<u64> {
        Some(self.stats.writes.load(std::sync::atomic::Ordering::Relaxed))
    }

    async fn due_events(&self, now: i64, limit: i64) -> Result<Vec<OutboxEvent>, StoreError> {
        self.read(move |conn| query_all(conn, &DUE_EVENTS, params![now, limit], event_from_row))
            .await
    }

    async fn mark_delivered(&self, id: i64, at: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.prepare_cached(MARK_DELIVERED)
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
            conn.prepare_cached(MARK_FAILED)
                .and_then(|mut s| {
                    s.execute(params![id, error, next_attempt_at, i64::from(give_up)])
                })
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
                &LIST_EVENTS,
                params![m, after_id.unwrap_or(0), limit],
                event_from_row,
            )
        })
        .await
    }

    async fn orders_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Order>, StoreError> {
        self.read(move |conn| query_all(conn, &ORDERS_TO_POLL, params![now, limit], order_from_row))
            .await
    }

    async fn refunds_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Refund>, StoreError> {
        self.read(move |conn| {
            query_all(conn, &REFUNDS_TO_POLL, params![now, limit], refund_from_row)
        })
        .await
    }

    async fn count_orders_by_state(&self) -> Result<Vec<(OrderState, i64)>, StoreError> {
        self.read(|conn| {
            query_all(conn, order_counts::COUNT_QUERY, [], |r| {
                let state: String = r.get(0).map_err(sql_err)?;
                let n: i64 = r.get(1).map_err(sql_err)?;
                let state = OrderState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown order state {state:?}")))?;
                Ok((state, n))
            })
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
        _lease_ms: i64,
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
