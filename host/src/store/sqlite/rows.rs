//! Rows to types and back: the column lists, row mapping, query helpers.

use crate::store::{Order, OrderState, OutboxEvent, Refund, RefundState, StoreError};
use rusqlite::{Connection, ErrorCode, Row, params};

pub(super) const ORDER_COLUMNS: &str = "merchant_id, merchant_order_no, adapter, adapter_digest, method, \
     description, amount_minor, currency, state, provider_trade_no, channel_transaction_id, \
     payer_app_id, payer_openid, client_ip, pay_action, refunded_minor, expires_at, paid_at, \
     attach, metadata, next_poll_at, poll_attempts, created_at, updated_at, version";

pub(super) const REFUND_COLUMNS: &str = "merchant_id, merchant_order_no, refund_no, amount_minor, currency, \
     state, provider_refund_id, reason, created_at, updated_at, version, next_poll_at, \
     poll_attempts";

pub(super) const OUTBOX_COLUMNS: &str = "id, event_id, merchant_id, event_type, payload, created_at, \
     attempts, next_attempt_at, delivered_at, last_error, gave_up, undeliverable";

pub(super) fn sql_err(e: rusqlite::Error) -> StoreError {
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

pub(super) fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

pub(super) fn parse_json(column: &str, text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(super) fn order_from_row(r: &Row<'_>) -> Result<Order, StoreError> {
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

pub(super) fn refund_from_row(r: &Row<'_>) -> Result<Refund, StoreError> {
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

pub(super) fn event_from_row(r: &Row<'_>) -> Result<OutboxEvent, StoreError> {
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
pub(super) fn query_all<T>(
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

pub(super) fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    Ok(query_all(conn, sql, params, map)?.into_iter().next())
}

pub(super) fn select_order(
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

pub(super) fn select_refund(
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
pub(super) fn order_values(order: &Order) -> Vec<Box<dyn rusqlite::ToSql>> {
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
