//! The PostgreSQL store, for several payhost replicas on one database
//! (issue 14). Select it with `[store] url = "postgres://user@host:port/db"`
//! (README, "Store").
//!
//! Driver: tokio-postgres with a deadpool-postgres pool; why is in
//! docs/benchmarks.md ("PostgreSQL driver").
//!
//! # What replicas share, and how
//!
//! Every method is one transaction (READ COMMITTED) on a pooled connection,
//! committed before it returns, running the statements the SQLite store
//! runs (`store/sql.rs`). Where SQLite relies on its single writer, the
//! database itself decides between replicas:
//!
//! - *Merchant order numbers and `Idempotency-Key`s*: primary keys and
//!   `INSERT ... ON CONFLICT DO NOTHING`, then a read. A concurrent insert of
//!   the same key waits for the first transaction and then does nothing, so
//!   of any number of replicas racing on one key one gets `Started` (one
//!   `Inserted::New`), and a claim made with a failed insert rolls back with
//!   it.
//! - *The payer's daily cap*: a transaction-scoped advisory lock per
//!   (merchant, payer) around the sum and the insert (`updates.rs` says
//!   why), so the cap holds exactly across replicas: no tolerance beyond
//!   what SQLite has.
//! - *Compare-and-set*: `UPDATE ... WHERE version = $n`; the row lock makes a
//!   concurrent writer wait and then find the version moved (`Conflict`).
//! - *Order counts* for `/metrics` are read from the `orders_state` index
//!   (no counter row every insert of every replica would queue behind).
//!
//! A deadlock or serialization failure rolls the transaction back; it is
//! run again from the start, at most [`MAX_ATTEMPTS`] times, then answered
//! as [`StoreError::Unavailable`]. A failed commit whose outcome is unknown
//! (the connection dropped) is never retried: it is `Unavailable`.
//!
//! - *The webhook outbox*: [`Store::due_events_of`] leases the events it
//!   returns (`lease_until`, taken with `FOR UPDATE SKIP LOCKED`), so two
//!   replicas' delivery workers never get one event both; events of a
//!   replica that died are delivered by another once the lease ends (a
//!   whole batch's delivery time-outs: `delivery.rs`). One merchant's events may then go out of order across replicas.
//!
//! - *The reconciler*: [`Store::orders_to_poll`] and
//!   [`Store::refunds_to_poll`] lease what they return by moving its
//!   `next_poll_at` [`POLL_LEASE_MS`] ahead (`FOR UPDATE SKIP LOCKED`), so
//!   each order is polled by one replica at a time. The poll's reschedule
//!   replaces the lease; an order of a replica that died mid-poll is due
//!   again once the lease ends.
//!
//! - *Request rates*: one GCRA row per (merchant, operation) that every
//!   replica's call moves (`shared.rs`), so a merchant's rate holds for
//!   the whole cluster, as exactly as replicas' clocks agree.
//! - *Adapters*: components by digest and each slot's versions, with
//!   `NOTIFY` at each publication (`shared.rs`, `adapter_sync.rs`).
//!
//! - `schema`: the migrations (SQLite's, translated) and applying them
//!   under an advisory lock.
//! - `rows`: rows to types, the values orders and refunds bind.
//! - `updates`: the steps several writes share.

mod contracts;
mod rows;
mod schema;
#[cfg(test)]
pub(crate) use schema::MIGRATION_LOCK;
#[cfg(test)]
mod tests;
mod updates;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::payouts::{CAS_PAYOUT, SELECT_PAYOUT, payout_binds, payout_from};
use super::rows::{Columns, event_from, notification_from, order_from, refund_from};
use super::sql::{
    DELETE_UNSENT_ORDER, DUE_EVENTS, DUE_MERCHANTS, DUE_OF_MERCHANT, LIST_EVENTS, LIST_REFUNDS,
    MARK_DELIVERED, MARK_FAILED, MARK_UNDELIVERABLE, NOTIFICATIONS_OF, ORDER_COLUMNS,
    OUTBOX_COLUMNS, PAYER_TOTAL_SINCE, PRUNE_IDEMPOTENCY, PRUNE_NOTIFICATIONS, PRUNE_OUTBOX,
    RECORD_MISMATCH, REFUND_COLUMNS, REVIVE_UNDELIVERABLE, SELECT_REFUND,
};
use super::{
    Claimed, Contract, DailyCap, Deduction, DeductionCaps, DeductionHistory, IdempotencyBegin,
    Inserted, KeyClaim, KeyCompletion, NewEvent, NotificationRecord, Order, OrderState,
    OutboxEvent, Payout, PayoutCaps, PrunePolicy, PruneReport, Refund, SharedSlot, SharedVersion,
    Store, StoreError,
};
use crate::clock::now_ms;
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use updates::*;

/// Connections per store; a create holds one for its transaction.
const POOL_SIZE: usize = 16;

/// Longest a store call waits for a free pooled connection, or for a new
/// connection to open: past it the call is answered `Unavailable` (503)
/// instead of hanging while the database is unreachable or every
/// connection is stuck.
pub const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs of one transaction before a deadlock or serialization failure is
/// answered as unavailable. Such failures need two transactions crossing
/// each other; a few runs settle them.
pub const MAX_ATTEMPTS: u32 = 5;

/// Leases a merchant's due events (?4: until when). Rows another
/// replica's lease is being taken on are skipped, not waited for; once
/// that commits, the lease keeps them out of this scan.
static LEASE_DUE_EVENTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE outbox SET lease_until = ?4 WHERE id IN (
             SELECT id FROM outbox WHERE {DUE_OF_MERCHANT}
             ORDER BY id LIMIT ?3 FOR UPDATE SKIP LOCKED)
         RETURNING {OUTBOX_COLUMNS}"
    )
});

/// How long a replica's reconciler holds the orders and refunds it polls:
/// above one poll (a provider operation within its 30 s deadline) and its
/// reschedule, which sets the real next poll time.
pub const POLL_LEASE_MS: i64 = 2 * 60 * 1000;

/// Leases due orders (?3: until when), skipping rows another replica is
/// leasing at this moment, and answers them as they were before the lease
/// (every part of one statement reads the same snapshot), earliest first.
static LEASE_ORDERS_TO_POLL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH due AS (
             SELECT merchant_id, merchant_order_no FROM orders
             WHERE state IN ('created', 'pending') AND next_poll_at <= ?1
             ORDER BY next_poll_at LIMIT ?2 FOR UPDATE SKIP LOCKED),
         leased AS (
             UPDATE orders SET next_poll_at = ?3
             WHERE (merchant_id, merchant_order_no) IN (SELECT * FROM due))
         SELECT {ORDER_COLUMNS} FROM orders
         WHERE (merchant_id, merchant_order_no) IN (SELECT * FROM due)
         ORDER BY next_poll_at"
    )
});

/// [`LEASE_ORDERS_TO_POLL`] for pending refunds.
static LEASE_REFUNDS_TO_POLL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH due AS (
             SELECT merchant_id, merchant_order_no, refund_no FROM refunds
             WHERE state = 'pending' AND next_poll_at <= ?1
             ORDER BY next_poll_at LIMIT ?2 FOR UPDATE SKIP LOCKED),
         leased AS (
             UPDATE refunds SET next_poll_at = ?3
             WHERE (merchant_id, merchant_order_no, refund_no) IN (SELECT * FROM due))
         SELECT {REFUND_COLUMNS} FROM refunds
         WHERE (merchant_id, merchant_order_no, refund_no) IN (SELECT * FROM due)
         ORDER BY next_poll_at"
    )
});

/// [`LEASE_ORDERS_TO_POLL`] for payouts not final.
static LEASE_PAYOUTS_TO_POLL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use super::payouts::{OPEN_PAYOUT, PAYOUT_COLUMNS};
    format!(
        "WITH due AS (
             SELECT merchant_id, payout_no FROM payouts
             WHERE {OPEN_PAYOUT} AND next_poll_at <= ?1
             ORDER BY next_poll_at LIMIT ?2 FOR UPDATE SKIP LOCKED),
         leased AS (
             UPDATE payouts SET next_poll_at = ?3
             WHERE (merchant_id, payout_no) IN (SELECT * FROM due))
         SELECT {PAYOUT_COLUMNS} FROM payouts
         WHERE (merchant_id, payout_no) IN (SELECT * FROM due)
         ORDER BY next_poll_at"
    )
});

/// A PostgreSQL-backed store; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// For the connection that listens for adapter publications.
    config: Arc<tokio_postgres::Config>,
    /// Write transactions callers waited for ([`Store::commit_waits`]).
    writes: Arc<AtomicU64>,
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

/// What a transaction's body fails with: the store's own answer, or the
/// database's error, kept whole so [`transaction!`] can tell a deadlock
/// (run again) from the rest.
#[derive(Debug)]
pub(super) enum TxError {
    Store(StoreError),
    Pg(tokio_postgres::Error),
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

impl From<tokio_postgres::Error> for TxError {
    fn from(e: tokio_postgres::Error) -> Self {
        TxError::Pg(e)
    }
}

impl TxError {
    /// The database rolled the transaction back to break a cycle or keep
    /// serializability: running it again may succeed.
    fn retryable(&self) -> bool {
        matches!(self, TxError::Pg(e) if e.code().is_some_and(|c| {
            *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        }))
    }

    fn into_store(self, attempts: u32) -> StoreError {
        match self {
            TxError::Store(e) => e,
            TxError::Pg(e) if attempts > 1 => {
                StoreError::Unavailable(format!("{} (after {attempts} attempts)", describe(&e)))
            }
            TxError::Pg(e) => pg_err(e),
        }
    }
}

/// Runs `$body`, an expression over the transaction `$tx` whose `?` takes
/// [`StoreError`]s and database errors, in one transaction, committed when
/// it is `Ok` (rolled back when it is not: dropping the transaction rolls
/// it back). A deadlock or serialization failure, in the body or at
/// COMMIT, runs it again from the start, up to [`MAX_ATTEMPTS`] runs.
macro_rules! transaction {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let store: &PgStore = $store;
        store.writes.fetch_add(1, Ordering::Relaxed);
        let mut attempt = 1;
        loop {
            let mut client = store.client().await?;
            let $tx = client.transaction().await.map_err(pg_err)?;
            let result: Result<_, TxError> = async { $body }.await;
            let outcome = match result {
                Ok(value) => $tx.commit().await.map(|()| value).map_err(TxError::Pg),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(value) => break Ok(value),
                Err(e) if e.retryable() && attempt < MAX_ATTEMPTS => attempt += 1,
                Err(e) => break Err(e.into_store(attempt)),
            }
        }
    }};
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`, libpq's
    /// key=value form also works) and applies pending migrations; replicas
    /// opening one database at once take turns on an advisory lock.
    /// Errors never contain the URL (it may hold the password).
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
            StoreError::Unavailable(
                "the PostgreSQL store URL cannot be parsed (postgres://user:password@host:port/db)"
                    .into(),
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(POOL_WAIT);
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("PostgreSQL connection pool: {e}")))?;
        let store = PgStore {
            pool,
            config: Arc::new(config),
            writes: Arc::default(),
        };
        let mut client = store.client().await?;
        schema::migrate(&mut client).await?;
        Ok(store)
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.get(0))
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_err)
    }

    /// A read: one statement, its own snapshot, rows mapped with `map`.
    async fn read<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        map: impl Fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let client = self.client().await?;
        let rows = query(&client, sql, params)
            .await
            .map_err(|e| e.into_store(1))?;
        rows.iter().map(map).collect()
    }

    /// A write of one statement; returns the rows it changed.
    async fn write_one(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        transaction!(self, |tx| execute(&tx, sql, params).await)
    }
}

/// A fresh row always starts at version 1, whatever the caller built.
fn first_version(order: &Order) -> Order {
    Order {
        version: 1,
        ..order.clone()
    }
}

#[async_trait]
impl Store for PgStore {
    async fn insert_payout(
        &self,
        payout: &Payout,
        caps: &PayoutCaps,
    ) -> Result<Inserted<Payout>, StoreError> {
        transaction!(self, |tx| insert_payout_capped(&tx, payout, caps).await)
    }

    async fn get_payout(
        &self,
        merchant_id: &str,
        payout_no: &str,
    ) -> Result<Option<Payout>, StoreError> {
        let rows = self
            .read(&SELECT_PAYOUT, &[&merchant_id, &payout_no], |r| {
                payout_from(r)
            })
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn update_payout(
        &self,
        payout: &Payout,
        events: &[NewEvent],
    ) -> Result<Payout, StoreError> {
        transaction!(self, |tx| {
            let now = now_ms();
            let binds = payout_binds(payout, now, payout.version);
            if execute(&tx, CAS_PAYOUT, &pg_binds(&binds)).await? == 0 {
                return Err(StoreError::Conflict.into());
            }
            append_events(&tx, &payout.merchant_id, events, now).await?;
            Ok(super::payouts::stored(payout, now))
        })
    }

    async fn insert_contract(&self, contract: &Contract) -> Result<Inserted<Contract>, StoreError> {
        transaction!(self, |tx| contracts::insert_contract(&tx, contract).await)
    }

    async fn get_contract(
        &self,
        merchant_id: &str,
        contract_no: &str,
    ) -> Result<Option<Contract>, StoreError> {
        let rows = self
            .read(
                &super::contracts::SELECT_CONTRACT,
                &[&merchant_id, &contract_no],
                super::contracts::contract_from,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn update_contract(
        &self,
        contract: &Contract,
        events: &[NewEvent],
    ) -> Result<Contract, StoreError> {
        transaction!(self, |tx| {
            contracts::update_contract(&tx, contract, events, now_ms()).await
        })
    }

    async fn contracts_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Contract>, StoreError> {
        let until = now.saturating_add(POLL_LEASE_MS);
        transaction!(self, |tx| {
            let rows = query(
                &tx,
                &contracts::LEASE_CONTRACTS_TO_POLL,
                &[&now, &limit, &until],
            )
            .await?;
            Ok(rows
                .iter()
                .map(super::contracts::contract_from)
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn insert_deduction(
        &self,
        deduction: &Deduction,
        caps: &DeductionCaps,
    ) -> Result<Inserted<Deduction>, StoreError> {
        transaction!(self, |tx| contracts::insert_deduction(&tx, deduction, caps)
            .await)
    }

    async fn get_deduction(
        &self,
        merchant_id: &str,
        deduction_no: &str,
    ) -> Result<Option<Deduction>, StoreError> {
        let rows = self
            .read(
                &super::contracts::SELECT_DEDUCTION,
                &[&merchant_id, &deduction_no],
                super::contracts::deduction_from,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn update_deduction(
        &self,
        deduction: &Deduction,
        events: &[NewEvent],
    ) -> Result<Deduction, StoreError> {
        transaction!(self, |tx| {
            contracts::update_deduction(&tx, deduction, events, now_ms()).await
        })
    }

    async fn delete_unsent_deduction(&self, deduction: &Deduction) -> Result<bool, StoreError> {
        let deleted = self
            .write_one(
                super::contracts::DELETE_UNSENT_DEDUCTION,
                &[
                    &deduction.merchant_id,
                    &deduction.deduction_no,
                    &deduction.version,
                ],
            )
            .await?;
        Ok(deleted == 1)
    }

    async fn deduction_history(
        &self,
        merchant_id: &str,
        contract_no: &str,
        since: i64,
        failures_from: i64,
    ) -> Result<DeductionHistory, StoreError> {
        let client = self.client().await?;
        contracts::history(&client, merchant_id, contract_no, since, failures_from)
            .await
            .map_err(|e| e.into_store(1))
    }

    async fn deductions_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Deduction>, StoreError> {
        let until = now.saturating_add(POLL_LEASE_MS);
        transaction!(self, |tx| {
            let rows = query(
                &tx,
                &contracts::LEASE_DEDUCTIONS_TO_POLL,
                &[&now, &limit, &until],
            )
            .await?;
            Ok(rows
                .iter()
                .map(super::contracts::deduction_from)
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn payouts_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Payout>, StoreError> {
        let until = now.saturating_add(POLL_LEASE_MS);
        transaction!(self, |tx| {
            let rows = query(&tx, &LEASE_PAYOUTS_TO_POLL, &[&now, &limit, &until]).await?;
            Ok(rows
                .iter()
                .map(payout_from)
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn insert_order_capped(
        &self,
        order: &Order,
        cap: Option<&DailyCap>,
    ) -> Result<Inserted<Order>, StoreError> {
        let order = first_version(order);
        transaction!(self, |tx| insert_capped(&tx, &order, cap).await)
    }

    async fn insert_order_claiming(
        &self,
        order: &Order,
        cap: Option<&DailyCap>,
        claim: Option<&KeyClaim>,
    ) -> Result<Claimed<Inserted<Order>>, StoreError> {
        let order = first_version(order);
        // One transaction: the claim commits with the order or not at all.
        transaction!(self, |tx| {
            if let Some(c) = claim {
                let begin = claim_key(&tx, c).await?;
                if begin != IdempotencyBegin::Started {
                    return Ok(Claimed::Held(begin));
                }
            }
            insert_capped(&tx, &order, cap).await.map(Claimed::Ran)
        })
    }

    async fn get_order(
        &self,
        merchant_id: &str,
        merchant_order_no: &str,
    ) -> Result<Option<Order>, StoreError> {
        let client = self.client().await?;
        select_order(&client, merchant_id, merchant_order_no)
            .await
            .map_err(|e| e.into_store(1))
    }

    async fn delete_unsent_order(&self, order: &Order) -> Result<bool, StoreError> {
        let deleted = self
            .write_one(
                DELETE_UNSENT_ORDER,
                &[&order.merchant_id, &order.merchant_order_no, &order.version],
            )
            .await?;
        Ok(deleted == 1)
    }

    async fn update_order_completing(
        &self,
        order: &Order,
        events: &[NewEvent],
        completion: Option<KeyCompletion>,
    ) -> Result<Order, StoreError> {
        // Rendered once, from the order as the transaction will store it,
        // so a run again after a deadlock stores the same answer.
        let now = now_ms();
        let answer = completion.map(|c| {
            let body = (c.render)(&stored(order, now));
            (c.merchant_id, c.key, c.status, body)
        });
        transaction!(self, |tx| {
            let saved = cas_order(&tx, order, now).await?;
            append_events(&tx, &order.merchant_id, events, now).await?;
            if let Some((merchant, key, status, body)) = &answer {
                complete_key(&tx, merchant, key, *status, body, now).await?;
            }
            Ok(saved)
        })
    }

    async fn record_mismatch(
        &self,
        merchant_id: &str,
        merchant_order_no: &str,
        fingerprint: &str,
        event: &NewEvent,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        transaction!(self, |tx| {
            let seen = query_one(
                &tx,
                RECORD_MISMATCH,
                &[&merchant_id, &merchant_order_no, &fingerprint, &now],
            )
            .await?
            .int(0)?;
            let first = seen == 1;
            if first {
                append_events(&tx, merchant_id, std::slice::from_ref(event), now).await?;
            }
            Ok(first)
        })
    }

    async fn insert_refund(
        &self,
        refund: &Refund,
        order: &Order,
        events: &[NewEvent],
    ) -> Result<Inserted<Refund>, StoreError> {
        let mut refund = refund.clone();
        refund.version = 1;
        if refund.merchant_id != order.merchant_id
            || refund.merchant_order_no != order.merchant_order_no
        {
            return Err(StoreError::Corrupt(
                "refund and order name different orders".into(),
            ));
        }
        transaction!(self, |tx| {
            if !insert_refund_row(&tx, &refund).await? {
                // Same refund number again: a retry, not a second refund.
                let existing = query_opt(
                    &tx,
                    &SELECT_REFUND,
                    &[
                        &refund.merchant_id,
                        &refund.merchant_order_no,
                        &refund.refund_no,
                    ],
                )
                .await?
                .ok_or_else(|| StoreError::Corrupt("refund vanished during insert".into()))?;
                return Ok(Inserted::Existing(refund_from(&existing)?));
            }
            let now = now_ms();
            // Bumping the order's version serializes refunds of one order:
            // of two concurrent refunds checked against the same order,
            // the second loses the compare-and-set.
            cas_order(&tx, order, now).await?;
            append_events(&tx, &order.merchant_id, events, now).await?;
            Ok(Inserted::New(refund.clone()))
        })
    }

    async fn update_refund(
        &self,
        refund: &Refund,
        order: Option<&Order>,
        events: &[NewEvent],
    ) -> Result<Refund, StoreError> {
        transaction!(self, |tx| {
            let now = now_ms();
            let saved = cas_refund(&tx, refund, now).await?;
            if let Some(order) = order {
                cas_order(&tx, order, now).await?;
            }
            append_events(&tx, &refund.merchant_id, events, now).await?;
            Ok(saved)
        })
    }

    async fn get_refund(
        &self,
        merchant_id: &str,
        merchant_order_no: &str,
        refund_no: &str,
    ) -> Result<Option<Refund>, StoreError> {
        let rows = self
            .read(
                &SELECT_REFUND,
                &[&merchant_id, &merchant_order_no, &refund_no],
                refund_from,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn list_refunds(
        &self,
        merchant_id: &str,
        merchant_order_no: &str,
    ) -> Result<Vec<Refund>, StoreError> {
        self.read(
            &LIST_REFUNDS,
            &[&merchant_id, &merchant_order_no],
            refund_from,
        )
        .await
    }

    async fn record_notification(&self, record: &NotificationRecord) -> Result<i64, StoreError> {
        transaction!(self, |tx| insert_notification(&tx, record).await)
    }

    async fn update_order_noting(
        &self,
        order: &Order,
        events: &[NewEvent],
        note: &NotificationRecord,
    ) -> Result<Order, StoreError> {
        // One transaction: the change and the notification that caused it
        // are both stored or neither.
        transaction!(self, |tx| {
            let now = now_ms();
            let saved = cas_order(&tx, order, now).await?;
            append_events(&tx, &order.merchant_id, events, now).await?;
            insert_notification(&tx, note).await?;
            Ok(saved)
        })
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
        transaction!(self, |tx| claim_key(&tx, &claim).await)
    }

    async fn idempotency_settle(
        &self,
        claim: &KeyClaim,
        answer: Option<(u16, &[u8])>,
    ) -> Result<IdempotencyBegin, StoreError> {
        transaction!(self, |tx| {
            let begin = claim_key(&tx, claim).await?;
            if begin == IdempotencyBegin::Started {
                match answer {
                    Some((status, body)) => {
                        complete_key(&tx, &claim.merchant_id, &claim.key, status, body, claim.now)
                            .await?
                    }
                    None => release_key(&tx, &claim.merchant_id, &claim.key).await?,
                }
            }
            Ok(begin)
        })
    }

    async fn idempotency_complete(
        &self,
        merchant_id: &str,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        transaction!(self, |tx| complete_key(
            &tx,
            merchant_id,
            key,
            status,
            body,
            now
        )
        .await)
    }

    async fn idempotency_release(&self, merchant_id: &str, key: &str) -> Result<(), StoreError> {
        transaction!(self, |tx| release_key(&tx, merchant_id, key).await)
    }

    fn commit_waits(&self) -> Option<u64> {
        Some(self.writes.load(Ordering::Relaxed))
    }

    async fn due_events(&self, now: i64, limit: i64) -> Result<Vec<OutboxEvent>, StoreError> {
        self.read(&DUE_EVENTS, &[&now, &limit], event_from).await
    }

    async fn mark_delivered(&self, id: i64, at: i64) -> Result<(), StoreError> {
        self.write_one(MARK_DELIVERED, &[&id, &at]).await?;
        Ok(())
    }

    async fn mark_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: i64,
        give_up: bool,
    ) -> Result<(), StoreError> {
        let gave_up = i32::from(give_up);
        self.write_one(MARK_FAILED, &[&id, &error, &next_attempt_at, &gave_up])
            .await?;
        Ok(())
    }

    async fn list_events(
        &self,
        merchant_id: &str,
        limit: i64,
        after_id: Option<i64>,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let after = after_id.unwrap_or(0);
        self.read(&LIST_EVENTS, &[&merchant_id, &after, &limit], event_from)
            .await
    }

    async fn orders_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Order>, StoreError> {
        let until = now.saturating_add(POLL_LEASE_MS);
        transaction!(self, |tx| {
            let rows = query(&tx, &LEASE_ORDERS_TO_POLL, &[&now, &limit, &until]).await?;
            Ok(rows.iter().map(order_from).collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn refunds_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Refund>, StoreError> {
        let until = now.saturating_add(POLL_LEASE_MS);
        transaction!(self, |tx| {
            let rows = query(&tx, &LEASE_REFUNDS_TO_POLL, &[&now, &limit, &until]).await?;
            Ok(rows
                .iter()
                .map(refund_from)
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn count_orders_by_state(&self) -> Result<Vec<(OrderState, i64)>, StoreError> {
        // Served by the `orders_state` index; see the module docs.
        self.read(
            "SELECT state, COUNT(*) FROM orders GROUP BY state ORDER BY state",
            &[],
            |r| {
                let state = r.text(0)?;
                let state = OrderState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown order state {state:?}")))?;
                Ok((state, r.int(1)?))
            },
        )
        .await
    }

    async fn paid_total_since(
        &self,
        merchant_id: &str,
        payer_openid: &str,
        since: i64,
    ) -> Result<i64, StoreError> {
        let totals = self
            .read(
                PAYER_TOTAL_SINCE,
                &[&merchant_id, &payer_openid, &since],
                |r| r.int(0),
            )
            .await?;
        Ok(totals.into_iter().next().unwrap_or(0))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read("SELECT 1", &[], |_| Ok(())).await?;
        Ok(())
    }

    async fn list_notifications(
        &self,
        merchant_id: &str,
        limit: i64,
        after_id: Option<i64>,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let after = after_id.unwrap_or(0);
        self.read(
            &NOTIFICATIONS_OF,
            &[&merchant_id, &after, &limit],
            notification_from,
        )
        .await
    }

    async fn due_merchants(&self, now: i64, limit: i64) -> Result<Vec<String>, StoreError> {
        self.read(DUE_MERCHANTS, &[&now, &limit], |r| r.text(0))
            .await
    }

    async fn due_events_of(
        &self,
        merchant_id: &str,
        now: i64,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let until = now.saturating_add(lease_ms.max(1));
        let mut leased = transaction!(self, |tx| {
            let rows = query(
                &tx,
                &LEASE_DUE_EVENTS,
                &[&merchant_id, &now, &limit, &until],
            )
            .await?;
            Ok(rows.iter().map(event_from).collect::<Result<Vec<_>, _>>()?)
        })?;
        // RETURNING keeps no order.
        leased.sort_by_key(|e| e.id);
        Ok(leased)
    }

    async fn mark_undeliverable(
        &self,
        merchant_id: &str,
        reason: &str,
        detail: &str,
    ) -> Result<u64, StoreError> {
        self.write_one(MARK_UNDELIVERABLE, &[&merchant_id, &reason, &detail])
            .await
    }

    async fn revive_undeliverable(
        &self,
        merchant_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.write_one(REVIVE_UNDELIVERABLE, &[&merchant_id, &reason, &now])
            .await
    }

    fn shared(&self) -> bool {
        true
    }

    async fn take_rate(
        &self,
        merchant_id: &str,
        op: &str,
        now_us: i64,
        interval_us: i64,
        period_us: i64,
    ) -> Result<Option<Result<(), i64>>, StoreError> {
        shared::take_rate(self, merchant_id, op, now_us, interval_us, period_us)
            .await
            .map(Some)
    }

    async fn adapter_slots(&self) -> Result<Vec<SharedSlot>, StoreError> {
        shared::adapter_slots(self).await
    }

    async fn adapter_blob(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        shared::adapter_blob(self, digest).await
    }

    async fn publish_adapter_slot(
        &self,
        slot: &str,
        versions: &[SharedVersion],
        blobs: &[(String, Arc<[u8]>)],
    ) -> Result<i64, StoreError> {
        shared::publish_adapter_slot(self, slot, versions, blobs).await
    }

    fn watch_adapters(
        &self,
        wake: Arc<tokio::sync::Notify>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        Some(tokio::spawn(shared::listen_for_adapters(
            self.config.clone(),
            wake,
        )))
    }

    async fn prune(&self, policy: &PrunePolicy) -> Result<PruneReport, StoreError> {
        let batch = policy.batch;
        transaction!(self, |tx| {
            Ok(PruneReport {
                idempotency: execute(
                    &tx,
                    PRUNE_IDEMPOTENCY,
                    &[&policy.idempotency_before, &batch],
                )
                .await?,
                notifications: execute(
                    &tx,
                    &PRUNE_NOTIFICATIONS,
                    &[&policy.unverified_before, &batch],
                )
                .await?,
                outbox: execute(&tx, PRUNE_OUTBOX, &[&policy.delivered_before, &batch]).await?,
            })
        })
    }
}

// After `transaction!`, which it uses.
mod shared;
