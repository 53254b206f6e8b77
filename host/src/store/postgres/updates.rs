//! The steps several writes share, each inside the caller's transaction:
//! compare-and-set of an order or a refund, the capped insert, claiming,
//! completing and releasing an idempotency key, appending outbox events and
//! recording a notification.

use super::TxError;
use super::rows::{OrderValues, RefundValues, insert_values, pg_sql};
use crate::store::keys::{self, HeldKey, Verdict};
use crate::store::payouts::{
    INSERT_PAYOUT, PAYOUT_TOTALS, SELECT_PAYOUT, payout_binds, payout_from,
};
use crate::store::rows::{Bind, Columns, json_text, order_from};
use crate::store::sql::{
    APPEND_EVENT, CAS_ORDER, CAS_REFUND, CLAIM_KEY, COMPLETE_KEY, INSERT_NOTIFICATION,
    INSERT_ORDER, INSERT_REFUND, PAYER_TOTAL_SINCE, RELEASE_KEY, SELECT_KEY, SELECT_ORDER,
    TAKE_OVER_KEY,
};
use crate::store::{
    DailyCap, IdempotencyBegin, Inserted, KeyClaim, NewEvent, NotificationRecord, Order, Refund,
    StoreError, limit_minor,
};
use crate::store::{Payout, PayoutCaps, PayoutTotals};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Runs a shared statement (prepared once per connection).
pub(super) async fn execute(
    c: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64, TxError> {
    let stmt = c.prepare_cached(&pg_sql(sql)).await?;
    Ok(c.execute(&stmt, params).await?)
}

pub(super) async fn query(
    c: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>, TxError> {
    let stmt = c.prepare_cached(&pg_sql(sql)).await?;
    Ok(c.query(&stmt, params).await?)
}

pub(super) async fn query_opt(
    c: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<Row>, TxError> {
    Ok(query(c, sql, params).await?.into_iter().next())
}

pub(super) async fn query_one(
    c: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Row, TxError> {
    query_opt(c, sql, params).await?.ok_or_else(|| {
        StoreError::Corrupt("a statement that returns a row returned none".into()).into()
    })
}

pub(super) async fn select_order(
    c: &impl GenericClient,
    merchant: &str,
    order_no: &str,
) -> Result<Option<Order>, TxError> {
    match query_opt(c, &SELECT_ORDER, &[&merchant, &order_no]).await? {
        Some(row) => Ok(Some(order_from(&row)?)),
        None => Ok(None),
    }
}

pub(super) async fn cas_order(
    tx: &Transaction<'_>,
    order: &Order,
    now: i64,
) -> Result<Order, TxError> {
    let values = OrderValues::new(order);
    let mut params = values.mutable();
    params.extend([&now as &(dyn ToSql + Sync), &order.version]);
    if execute(tx, CAS_ORDER, &params).await? == 0 {
        return Err(StoreError::Conflict.into());
    }
    Ok(stored(order, now))
}

/// The order as [`cas_order`] leaves it: computed, so an answer can be
/// rendered from it before the transaction (which may be retried) runs.
pub(super) fn stored(order: &Order, now: i64) -> Order {
    let mut stored = order.clone();
    stored.version += 1;
    stored.updated_at = now;
    stored
}

pub(super) async fn cas_refund(
    tx: &Transaction<'_>,
    refund: &Refund,
    now: i64,
) -> Result<Refund, TxError> {
    let values = RefundValues::new(refund);
    if execute(tx, CAS_REFUND, &values.compare_and_set(&now)).await? == 0 {
        return Err(StoreError::Conflict.into());
    }
    let mut stored = refund.clone();
    stored.version += 1;
    stored.updated_at = now;
    Ok(stored)
}

/// A lock on a key (text), held until the transaction ends: a capped
/// insert takes one per (merchant, payer) before it sums the payer's day,
/// a payout insert one per merchant.
///
/// Why a lock: under READ COMMITTED two transactions on different
/// connections (or replicas) would each sum without the other's
/// uncommitted insert and could together pass the cap. There is no row to
/// lock (payers have no table, and `SELECT ... FOR UPDATE` cannot lock
/// rows not yet inserted), and SERIALIZABLE would turn every such race
/// into a retry. The advisory lock serializes only one payer's creates;
/// the next holder's sum is a fresh READ COMMITTED snapshot that sees the
/// previous holder's committed order, so the cap holds exactly. Two payers
/// whose keys hash alike merely take turns.
pub(super) const ADVISORY_XACT_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

/// Inserts `order` (at version 1) unless its number exists, under `cap`.
pub(super) async fn insert_capped(
    tx: &Transaction<'_>,
    order: &Order,
    cap: Option<&DailyCap>,
) -> Result<Inserted<Order>, TxError> {
    if let Some(cap) = cap {
        let payer = format!(
            "payer-cap\u{1f}{}\u{1f}{}",
            order.merchant_id, cap.payer_openid
        );
        tx.execute(ADVISORY_XACT_LOCK, &[&payer]).await?;
        if select_order(tx, &order.merchant_id, &order.merchant_order_no)
            .await?
            .is_none()
        {
            let counted = query_one(
                tx,
                PAYER_TOTAL_SINCE,
                &[&order.merchant_id, &cap.payer_openid, &cap.since],
            )
            .await?
            .int(0)?;
            if counted.saturating_add(cap.counts_minor) > cap.max_minor {
                return Err(StoreError::CapExceeded {
                    counted_minor: counted,
                }
                .into());
            }
        }
    }
    let values = OrderValues::new(order);
    let limit = limit_minor(order, cap);
    // On a conflicting insert not yet committed, READ COMMITTED waits for
    // it, then does nothing; the select below then sees that row.
    if execute(tx, &INSERT_ORDER, &insert_values(&values, &limit)).await? == 1 {
        return Ok(Inserted::New(order.clone()));
    }
    select_order(tx, &order.merchant_id, &order.merchant_order_no)
        .await?
        .map(Inserted::Existing)
        .ok_or_else(|| StoreError::Corrupt("order vanished during insert".into()).into())
}

pub(super) async fn insert_refund_row(
    tx: &Transaction<'_>,
    refund: &Refund,
) -> Result<bool, TxError> {
    let values = RefundValues::new(refund);
    Ok(execute(tx, &INSERT_REFUND, &values.insert()).await? == 1)
}

pub(super) async fn append_events(
    tx: &Transaction<'_>,
    merchant: &str,
    events: &[NewEvent],
    now: i64,
) -> Result<(), TxError> {
    for ev in events {
        let event_id = format!("evt_{}", ulid::Ulid::new());
        let payload = json_text(&ev.payload);
        execute(
            tx,
            APPEND_EVENT,
            &[&event_id, &merchant, &ev.event_type, &payload, &now],
        )
        .await?;
    }
    Ok(())
}

/// Claims an `Idempotency-Key`. The primary key decides a race between
/// connections: a concurrent claim waits for this one's transaction and
/// then finds the key held (or free again, if this one rolled back).
pub(super) async fn claim_key(
    tx: &Transaction<'_>,
    claim: &KeyClaim,
) -> Result<IdempotencyBegin, TxError> {
    let (m, k) = (&claim.merchant_id, &claim.key);
    if execute(tx, CLAIM_KEY, &[m, k, &claim.request_hash, &claim.now]).await? == 1 {
        return Ok(IdempotencyBegin::Started);
    }
    let row = query_one(tx, SELECT_KEY, &[m, k]).await?;
    let held = HeldKey {
        request_hash: row.text(0)?,
        status: row
            .try_get::<_, Option<i32>>(1)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .map(i64::from),
        body: row
            .try_get(2)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: row.int(3)?,
    };
    match keys::judge(held, claim)? {
        Verdict::Answer(begin) => Ok(begin),
        Verdict::TakeOver { claimed_at } => {
            let changed = execute(tx, TAKE_OVER_KEY, &[m, k, &claim.now, &claimed_at]).await?;
            Ok(keys::taken_over(changed))
        }
    }
}

pub(super) async fn complete_key(
    tx: &Transaction<'_>,
    merchant_id: &str,
    key: &str,
    status: u16,
    body: &[u8],
    now: i64,
) -> Result<(), TxError> {
    let status = i32::from(status);
    execute(
        tx,
        COMPLETE_KEY,
        &[&merchant_id, &key, &status, &body, &now],
    )
    .await?;
    Ok(())
}

pub(super) async fn release_key(
    tx: &Transaction<'_>,
    merchant_id: &str,
    key: &str,
) -> Result<(), TxError> {
    execute(tx, RELEASE_KEY, &[&merchant_id, &key]).await?;
    Ok(())
}

/// Records a provider notification as received; returns its id.
pub(super) async fn insert_notification(
    tx: &Transaction<'_>,
    rec: &NotificationRecord,
) -> Result<i64, TxError> {
    let headers = json_text(&rec.headers);
    let row = query_one(
        tx,
        INSERT_NOTIFICATION,
        &[
            &rec.merchant_id,
            &rec.adapter,
            &rec.received_at,
            &rec.method,
            &rec.path,
            &rec.query,
            &headers,
            &rec.body,
            &rec.verdict,
            &rec.detail,
            &rec.merchant_order_no,
            &rec.received_bytes,
        ],
    )
    .await?;
    Ok(row.int(0)?)
}

/// A payout's values as PostgreSQL binds them.
pub(super) fn pg_binds(binds: &[Bind]) -> Vec<&(dyn ToSql + Sync)> {
    binds
        .iter()
        .map(|b| match b {
            Bind::Text(t) => t as &(dyn ToSql + Sync),
            Bind::Int(i) => i as &(dyn ToSql + Sync),
        })
        .collect()
}

/// Inserts `payout` (at version 1) unless its number exists, under `caps`.
/// [`ADVISORY_XACT_LOCK`] on the merchant serializes the day's sum and the
/// insert across connections and replicas, as it does for a payer's cap:
/// the merchant's daily total spans all its payees, so the lock must too.
pub(super) async fn insert_payout_capped(
    tx: &Transaction<'_>,
    payout: &Payout,
    caps: &PayoutCaps,
) -> Result<Inserted<Payout>, TxError> {
    let lock = format!("payout-day\u{1f}{}", payout.merchant_id);
    tx.execute(ADVISORY_XACT_LOCK, &[&lock]).await?;
    let existing = query_opt(
        tx,
        &SELECT_PAYOUT,
        &[&payout.merchant_id, &payout.payout_no],
    )
    .await?;
    if let Some(row) = existing {
        return Ok(Inserted::Existing(payout_from(&row)?));
    }
    let row = query_one(
        tx,
        PAYOUT_TOTALS,
        &[
            &payout.merchant_id,
            &payout.payee_openid,
            &caps.since,
            &payout.currency,
        ],
    )
    .await?;
    let totals = PayoutTotals {
        payee_minor: row.int(0)?,
        payee_count: row.int(1)?,
        merchant_minor: row.int(2)?,
    };
    caps.check(payout, totals)?;
    let binds = payout_binds(payout, payout.updated_at, 1);
    execute(tx, &INSERT_PAYOUT, &pg_binds(&binds)).await?;
    Ok(Inserted::New(Payout {
        version: 1,
        ..payout.clone()
    }))
}
