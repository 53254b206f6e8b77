//! The statements several writes share: compare-and-set of an order or a
//! refund, claiming, completing and releasing an idempotency key, a payer's total
//! of the day, appending outbox events.

use super::rows::*;
use crate::store::keys::{self, HeldKey, Verdict};
use crate::store::sql::{
    APPEND_EVENT, CAS_ORDER, CAS_REFUND, CLAIM_KEY, COMPLETE_KEY, INSERT_NOTIFICATION,
    PAYER_TOTAL_SINCE, RELEASE_KEY, SELECT_KEY, TAKE_OVER_KEY,
};
use crate::store::{
    IdempotencyBegin, KeyClaim, NewEvent, NotificationRecord, Order, Refund, StoreError,
};
use rusqlite::{Connection, params};

/// Compare-and-set of every mutable column; returns the order as stored.
pub(super) fn cas_order(conn: &Connection, order: &Order, now: i64) -> Result<Order, StoreError> {
    let changed = conn
        .prepare_cached(CAS_ORDER)
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

pub(super) fn cas_refund(
    conn: &Connection,
    refund: &Refund,
    now: i64,
) -> Result<Refund, StoreError> {
    let changed = conn
        .prepare_cached(CAS_REFUND)
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

pub(super) fn complete_key(
    conn: &Connection,
    merchant_id: &str,
    key: &str,
    status: u16,
    body: &[u8],
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(COMPLETE_KEY)
        .and_then(|mut s| s.execute(params![merchant_id, key, i64::from(status), body, now]))
        .map_err(sql_err)?;
    Ok(())
}

/// [`PAYER_TOTAL_SINCE`].
pub(super) fn payer_total_since(
    conn: &Connection,
    merchant_id: &str,
    payer_openid: &str,
    since: i64,
) -> Result<i64, StoreError> {
    conn.prepare_cached(PAYER_TOTAL_SINCE)
        .and_then(|mut s| s.query_row(params![merchant_id, payer_openid, since], |r| r.get(0)))
        .map_err(sql_err)
}

pub(super) fn append_events(
    conn: &Connection,
    merchant: &str,
    events: &[NewEvent],
    now: i64,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(APPEND_EVENT).map_err(sql_err)?;
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

/// Claims an `Idempotency-Key`: on the single writer the claim and the
/// read of a held key are one atomic step.
pub(super) fn claim_key(
    conn: &Connection,
    claim: &KeyClaim,
) -> Result<IdempotencyBegin, StoreError> {
    let (m, k) = (&claim.merchant_id, &claim.key);
    let claimed = conn
        .prepare_cached(CLAIM_KEY)
        .and_then(|mut s| s.execute(params![m, k, claim.request_hash, claim.now]))
        .map_err(sql_err)?;
    if claimed == 1 {
        return Ok(IdempotencyBegin::Started);
    }
    let held = conn
        .prepare_cached(SELECT_KEY)
        .and_then(|mut s| {
            s.query_row(params![m, k], |r| {
                Ok(HeldKey {
                    request_hash: r.get(0)?,
                    status: r.get(1)?,
                    body: r.get(2)?,
                    created_at: r.get(3)?,
                })
            })
        })
        .map_err(sql_err)?;
    match keys::judge(held, claim)? {
        Verdict::Answer(begin) => Ok(begin),
        Verdict::TakeOver { claimed_at } => conn
            .prepare_cached(TAKE_OVER_KEY)
            .and_then(|mut s| s.execute(params![m, k, claim.now, claimed_at]))
            .map(|n| keys::taken_over(n as u64))
            .map_err(sql_err),
    }
}

/// Forgets a key still in progress ([`RELEASE_KEY`]).
pub(super) fn release_key(
    conn: &Connection,
    merchant_id: &str,
    key: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(RELEASE_KEY)
        .and_then(|mut s| s.execute(params![merchant_id, key]))
        .map_err(sql_err)?;
    Ok(())
}

/// Records a provider notification as received; returns its id.
pub(super) fn insert_notification(
    conn: &Connection,
    rec: &NotificationRecord,
) -> Result<i64, StoreError> {
    conn.prepare_cached(INSERT_NOTIFICATION)
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
}
