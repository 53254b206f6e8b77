//! The statements several writes share: compare-and-set of an order or a
//! refund, claiming, completing and releasing an idempotency key, a payer's total
//! of the day, appending outbox events.

use super::IDEMPOTENCY_LEASE_MS;
use super::rows::*;
use crate::store::{
    IdempotencyBegin, KeyClaim, NewEvent, NotificationRecord, Order, Refund, StoreError,
};
use rusqlite::{Connection, params};

/// Compare-and-set of every mutable column; returns the order as stored.
pub(super) fn cas_order(conn: &Connection, order: &Order, now: i64) -> Result<Order, StoreError> {
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

pub(super) fn cas_refund(
    conn: &Connection,
    refund: &Refund,
    now: i64,
) -> Result<Refund, StoreError> {
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

pub(super) fn complete_key(
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
pub(super) fn payer_total_since(
    conn: &Connection,
    merchant_id: &str,
    payer_openid: &str,
    since: i64,
) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(COALESCE(limit_minor, amount_minor)), 0) FROM orders
         WHERE merchant_id = ?1 AND payer_openid = ?2 AND created_at >= ?3
           AND state NOT IN ('closed', 'failed')",
    )
    .and_then(|mut s| s.query_row(params![merchant_id, payer_openid, since], |r| r.get(0)))
    .map_err(sql_err)
}

pub(super) fn append_events(
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

/// Claims an `Idempotency-Key`. On the single writer the check and the
/// claim are one atomic step; on PostgreSQL the INSERT ... ON CONFLICT
/// alone decides the race.
pub(super) fn claim_key(
    conn: &Connection,
    claim: &KeyClaim,
) -> Result<IdempotencyBegin, StoreError> {
    let (m, k, h, now) = (
        &claim.merchant_id,
        &claim.key,
        &claim.request_hash,
        claim.now,
    );
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
    let (stored_hash, status, body, created_at): (String, Option<i64>, Option<Vec<u8>>, i64) = conn
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
    if stored_hash != *h {
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
}

/// Forgets a key still in progress; a completed key is never forgotten:
/// its answer must replay.
pub(super) fn release_key(
    conn: &Connection,
    merchant_id: &str,
    key: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM idempotency
         WHERE merchant_id = ?1 AND idem_key = ?2 AND status IS NULL",
    )
    .and_then(|mut s| s.execute(params![merchant_id, key]))
    .map_err(sql_err)?;
    Ok(())
}

/// Records a provider notification as received; returns its id.
pub(super) fn insert_notification(
    conn: &Connection,
    rec: &NotificationRecord,
) -> Result<i64, StoreError> {
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
}
