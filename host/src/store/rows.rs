//! Rows to types, once for both databases: each store reads its driver's
//! row through [`Columns`], in the column order of [`super::sql`]'s lists.

use super::{NotificationRecord, Order, OrderState, OutboxEvent, Refund, RefundState, StoreError};

/// One result row, read by column index; a driver's type or conversion
/// error comes back as [`StoreError::Corrupt`].
pub(in crate::store) trait Columns {
    fn text(&self, i: usize) -> Result<String, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError>;
    /// A 0/1 integer column.
    fn flag(&self, i: usize) -> Result<bool, StoreError>;
}

/// JSON is stored as text in both databases.
pub(in crate::store) fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

pub(in crate::store) fn parse_json(
    column: &str,
    text: &str,
) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// A row of [`super::sql::ORDER_COLUMNS`].
pub(in crate::store) fn order_from(r: &impl Columns) -> Result<Order, StoreError> {
    let state = r.text(8)?;
    Ok(Order {
        merchant_id: r.text(0)?,
        merchant_order_no: r.text(1)?,
        adapter: r.text(2)?,
        adapter_digest: r.text(3)?,
        method: r.text(4)?,
        description: r.text(5)?,
        amount_minor: r.int(6)?,
        currency: r.text(7)?,
        state: OrderState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown order state {state:?}")))?,
        provider_trade_no: r.opt_text(9)?,
        channel_transaction_id: r.opt_text(10)?,
        payer_app_id: r.opt_text(11)?,
        payer_openid: r.opt_text(12)?,
        client_ip: r.opt_text(13)?,
        pay_action: r
            .opt_text(14)?
            .map(|t| parse_json("pay_action", &t))
            .transpose()?,
        refunded_minor: r.int(15)?,
        expires_at: r.opt_int(16)?,
        paid_at: r.opt_int(17)?,
        attach: r.opt_text(18)?,
        metadata: parse_json("metadata", &r.text(19)?)?,
        next_poll_at: r.opt_int(20)?,
        poll_attempts: r.int(21)?,
        created_at: r.int(22)?,
        updated_at: r.int(23)?,
        version: r.int(24)?,
    })
}

/// A row of [`super::sql::REFUND_COLUMNS`].
pub(in crate::store) fn refund_from(r: &impl Columns) -> Result<Refund, StoreError> {
    let state = r.text(5)?;
    Ok(Refund {
        merchant_id: r.text(0)?,
        merchant_order_no: r.text(1)?,
        refund_no: r.text(2)?,
        amount_minor: r.int(3)?,
        currency: r.text(4)?,
        state: RefundState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown refund state {state:?}")))?,
        provider_refund_id: r.opt_text(6)?,
        reason: r.opt_text(7)?,
        created_at: r.int(8)?,
        updated_at: r.int(9)?,
        version: r.int(10)?,
        next_poll_at: r.opt_int(11)?,
        poll_attempts: r.int(12)?,
    })
}

/// A row of [`super::sql::OUTBOX_COLUMNS`].
pub(in crate::store) fn event_from(r: &impl Columns) -> Result<OutboxEvent, StoreError> {
    Ok(OutboxEvent {
        id: r.int(0)?,
        event_id: r.text(1)?,
        merchant_id: r.text(2)?,
        event_type: r.text(3)?,
        payload: parse_json("payload", &r.text(4)?)?,
        created_at: r.int(5)?,
        attempts: r.int(6)?,
        next_attempt_at: r.int(7)?,
        delivered_at: r.opt_int(8)?,
        last_error: r.opt_text(9)?,
        gave_up: r.flag(10)?,
        undeliverable: r.opt_text(11)?,
    })
}

/// A row of [`super::sql::NOTIFICATION_COLUMNS`].
pub(in crate::store) fn notification_from(
    r: &impl Columns,
) -> Result<NotificationRecord, StoreError> {
    let body = r.bytes(8)?;
    Ok(NotificationRecord {
        id: r.int(0)?,
        merchant_id: r.text(1)?,
        adapter: r.text(2)?,
        received_at: r.int(3)?,
        method: r.text(4)?,
        path: r.text(5)?,
        query: r.text(6)?,
        headers: parse_json("headers", &r.text(7)?)?,
        // Rows from before migration 3 were always stored whole.
        received_bytes: r.opt_int(12)?.unwrap_or(body.len() as i64),
        body,
        verdict: r.text(9)?,
        detail: r.opt_text(10)?,
        merchant_order_no: r.opt_text(11)?,
    })
}

/// One bound value of a row the store writes through a value list (payouts,
/// contracts, deductions), for either driver.
pub(in crate::store) enum Bind {
    Text(Option<String>),
    Int(Option<i64>),
}
