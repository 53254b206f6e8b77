//! Rows to types and back on SQLite: [`Columns`] over rusqlite rows, the
//! values an order binds, query helpers.

pub(super) use crate::store::rows::json_text;
use crate::store::rows::{Columns, event_from, notification_from, order_from, refund_from};
use crate::store::sql::{SELECT_ORDER, SELECT_REFUND};
use crate::store::{NotificationRecord, Order, OutboxEvent, Refund, StoreError};
use rusqlite::{Connection, ErrorCode, Row, params};

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

impl Columns for Row<'_> {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.get(i).map_err(sql_err)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.get(i).map_err(sql_err)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.get(i).map_err(sql_err)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.get(i).map_err(sql_err)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        self.get(i).map_err(sql_err)
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.get::<_, i64>(i).map_err(sql_err)? != 0)
    }
}

pub(super) fn order_from_row(r: &Row<'_>) -> Result<Order, StoreError> {
    order_from(r)
}

pub(super) fn refund_from_row(r: &Row<'_>) -> Result<Refund, StoreError> {
    refund_from(r)
}

pub(super) fn event_from_row(r: &Row<'_>) -> Result<OutboxEvent, StoreError> {
    event_from(r)
}

pub(super) fn notification_from_row(r: &Row<'_>) -> Result<NotificationRecord, StoreError> {
    notification_from(r)
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
        &SELECT_ORDER,
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
        &SELECT_REFUND,
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
