//! Rows to types and back on PostgreSQL: the shared statements in `$N`
//! form, [`Columns`] over tokio-postgres rows, and the parameters an order
//! or a refund binds (with PostgreSQL's exact types: `INTEGER` columns take
//! `i32`, `BIGINT` ones `i64`).

use crate::store::rows::{Columns, json_text};
use crate::store::{Order, Refund, StoreError};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// A shared statement with its `?N` parameters as PostgreSQL's `$N`.
pub(super) fn pg_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn column_err(e: tokio_postgres::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl Columns for Row {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.try_get(i).map_err(column_err)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.try_get(i).map_err(column_err)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.try_get(i).map_err(column_err)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.try_get(i).map_err(column_err)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        self.try_get(i).map_err(column_err)
    }
    fn flag(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.try_get::<_, i32>(i).map_err(column_err)? != 0)
    }
}

/// An order's values as bound: the first 22 of `ORDER_COLUMNS` (all but
/// the timestamps and the version), in that order, as insert and
/// compare-and-set bind them.
pub(super) struct OrderValues<'a> {
    order: &'a Order,
    state: &'static str,
    pay_action: Option<String>,
    metadata: String,
}

impl<'a> OrderValues<'a> {
    pub(super) fn new(order: &'a Order) -> OrderValues<'a> {
        OrderValues {
            order,
            state: order.state.as_str(),
            pay_action: order.pay_action.as_ref().map(json_text),
            metadata: json_text(&order.metadata),
        }
    }

    pub(super) fn mutable(&self) -> Vec<&(dyn ToSql + Sync)> {
        let o = self.order;
        vec![
            &o.merchant_id,
            &o.merchant_order_no,
            &o.adapter,
            &o.adapter_digest,
            &o.method,
            &o.description,
            &o.amount_minor,
            &o.currency,
            &self.state,
            &o.provider_trade_no,
            &o.channel_transaction_id,
            &o.payer_app_id,
            &o.payer_openid,
            &o.client_ip,
            &self.pay_action,
            &o.refunded_minor,
            &o.expires_at,
            &o.paid_at,
            &o.attach,
            &self.metadata,
            &o.next_poll_at,
            &o.poll_attempts,
        ]
    }
}

/// [`crate::store::sql::INSERT_ORDER`]'s 26 values.
pub(super) fn insert_values<'a>(
    values: &'a OrderValues<'a>,
    limit: &'a Option<i64>,
) -> Vec<&'a (dyn ToSql + Sync)> {
    let o = values.order;
    let mut all = values.mutable();
    all.extend([
        &o.created_at as &(dyn ToSql + Sync),
        &o.updated_at,
        &o.version,
        limit,
    ]);
    all
}

/// A refund's values as bound by [`crate::store::sql::INSERT_REFUND`].
pub(super) struct RefundValues<'a> {
    refund: &'a Refund,
    state: &'static str,
}

impl<'a> RefundValues<'a> {
    pub(super) fn new(refund: &'a Refund) -> RefundValues<'a> {
        RefundValues {
            refund,
            state: refund.state.as_str(),
        }
    }

    /// `INSERT_REFUND`'s values, in `REFUND_COLUMNS` order.
    pub(super) fn insert(&self) -> Vec<&(dyn ToSql + Sync)> {
        let r = self.refund;
        let mut all = self.identity_and_terms();
        all.extend([
            &r.created_at as &(dyn ToSql + Sync),
            &r.updated_at,
            &r.version,
            &r.next_poll_at,
            &r.poll_attempts,
        ]);
        all
    }

    /// `CAS_REFUND`'s values: `now` and the expected version where the
    /// insert has its timestamps and version.
    pub(super) fn compare_and_set(&'a self, now: &'a i64) -> Vec<&'a (dyn ToSql + Sync)> {
        let r = self.refund;
        let mut all = self.identity_and_terms();
        all.extend([
            now as &(dyn ToSql + Sync),
            &r.version,
            &r.next_poll_at,
            &r.poll_attempts,
        ]);
        all
    }

    /// The first eight of `REFUND_COLUMNS`, which both statements bind alike.
    fn identity_and_terms(&self) -> Vec<&(dyn ToSql + Sync)> {
        let r = self.refund;
        vec![
            &r.merchant_id,
            &r.merchant_order_no,
            &r.refund_no,
            &r.amount_minor,
            &r.currency,
            &self.state,
            &r.provider_refund_id,
            &r.reason,
        ]
    }
}
