//! The statements both stores run, written once in SQL both databases
//! accept, with numbered `?N` parameters: SQLite binds them as they are,
//! the PostgreSQL store rewrites them to `$N` (`postgres::rows::pg_sql`).
//! Only what differs stays with a store: SQLite's `rowid` delete, its
//! trigger-kept order counts, PostgreSQL's advisory lock.

use std::sync::LazyLock;

pub(in crate::store) const ORDER_COLUMNS: &str = "merchant_id, merchant_order_no, adapter, adapter_digest, method, \
     description, amount_minor, currency, state, provider_trade_no, channel_transaction_id, \
     payer_app_id, payer_openid, client_ip, pay_action, refunded_minor, expires_at, paid_at, \
     attach, metadata, next_poll_at, poll_attempts, created_at, updated_at, version";

pub(in crate::store) const REFUND_COLUMNS: &str = "merchant_id, merchant_order_no, refund_no, amount_minor, currency, \
     state, provider_refund_id, reason, created_at, updated_at, version, next_poll_at, \
     poll_attempts";

pub(in crate::store) const OUTBOX_COLUMNS: &str = "id, event_id, merchant_id, event_type, payload, created_at, \
     attempts, next_attempt_at, delivered_at, last_error, gave_up, undeliverable";

pub(in crate::store) const NOTIFICATION_COLUMNS: &str = "id, merchant_id, adapter, received_at, method, path, query, \
     headers, body, verdict, detail, merchant_order_no, received_bytes";

/// A statement built from the column lists once, on first use.
type Built = LazyLock<String>;

pub(in crate::store) static SELECT_ORDER: Built = LazyLock::new(|| {
    format!("SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = ?1 AND merchant_order_no = ?2")
});

/// The order's columns, then `limit_minor` (what it counts against a cap
/// when that is not its amount).
pub(in crate::store) static INSERT_ORDER: Built = LazyLock::new(|| {
    format!(
        "INSERT INTO orders ({ORDER_COLUMNS}, limit_minor) VALUES
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
          ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)
         ON CONFLICT (merchant_id, merchant_order_no) DO NOTHING"
    )
});

/// Compare-and-set of every mutable column: the first 22 order columns,
/// then `updated_at` (?23) and the expected version (?24).
pub(in crate::store) const CAS_ORDER: &str = "UPDATE orders SET
     adapter = ?3, adapter_digest = ?4, method = ?5, description = ?6,
     amount_minor = ?7, currency = ?8, state = ?9, provider_trade_no = ?10,
     channel_transaction_id = ?11, payer_app_id = ?12, payer_openid = ?13,
     client_ip = ?14, pay_action = ?15, refunded_minor = ?16, expires_at = ?17,
     paid_at = ?18, attach = ?19, metadata = ?20, next_poll_at = ?21,
     poll_attempts = ?22, updated_at = ?23, version = version + 1
 WHERE merchant_id = ?1 AND merchant_order_no = ?2 AND version = ?24";

pub(in crate::store) const DELETE_UNSENT_ORDER: &str = "DELETE FROM orders
 WHERE merchant_id = ?1 AND merchant_order_no = ?2
   AND version = ?3 AND state = 'created' AND pay_action IS NULL
   AND provider_trade_no IS NULL";

/// What a payer's orders of the day add up to, for caps: everything not
/// closed or failed, orders still being created included.
/// (PostgreSQL sums BIGINTs as NUMERIC, hence the cast.)
pub(in crate::store) const PAYER_TOTAL_SINCE: &str =
    "SELECT CAST(COALESCE(SUM(COALESCE(limit_minor, amount_minor)), 0) AS BIGINT) FROM orders
     WHERE merchant_id = ?1 AND payer_openid = ?2 AND created_at >= ?3
       AND state NOT IN ('closed', 'failed')";

pub(in crate::store) static ORDERS_TO_POLL: Built = LazyLock::new(|| {
    format!(
        "SELECT {ORDER_COLUMNS} FROM orders
         WHERE state IN ('created', 'pending') AND next_poll_at <= ?1
         ORDER BY next_poll_at LIMIT ?2"
    )
});

pub(in crate::store) static INSERT_REFUND: Built = LazyLock::new(|| {
    format!(
        "INSERT INTO refunds ({REFUND_COLUMNS}) VALUES
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (merchant_id, merchant_order_no, refund_no) DO NOTHING"
    )
});

pub(in crate::store) static SELECT_REFUND: Built = LazyLock::new(|| {
    format!(
        "SELECT {REFUND_COLUMNS} FROM refunds
         WHERE merchant_id = ?1 AND merchant_order_no = ?2 AND refund_no = ?3"
    )
});

pub(in crate::store) static LIST_REFUNDS: Built = LazyLock::new(|| {
    format!(
        "SELECT {REFUND_COLUMNS} FROM refunds
         WHERE merchant_id = ?1 AND merchant_order_no = ?2
         ORDER BY created_at, refund_no"
    )
});

/// Compare-and-set of a refund, bound as [`REFUND_COLUMNS`] but with
/// `updated_at` the new time (?9) and `version` the expected one (?10).
pub(in crate::store) const CAS_REFUND: &str = "UPDATE refunds SET
     amount_minor = ?4, currency = ?5, state = ?6, provider_refund_id = ?7,
     reason = ?8, updated_at = ?9, version = version + 1, next_poll_at = ?11,
     poll_attempts = ?12
 WHERE merchant_id = ?1 AND merchant_order_no = ?2 AND refund_no = ?3
   AND version = ?10";

pub(in crate::store) static REFUNDS_TO_POLL: Built = LazyLock::new(|| {
    format!(
        "SELECT {REFUND_COLUMNS} FROM refunds
         WHERE state = 'pending' AND next_poll_at <= ?1
         ORDER BY next_poll_at LIMIT ?2"
    )
});

pub(in crate::store) const APPEND_EVENT: &str =
    "INSERT INTO outbox (event_id, merchant_id, event_type, payload, created_at,
                         attempts, next_attempt_at, delivered_at, last_error, gave_up)
     VALUES (?1, ?2, ?3, ?4, ?5, 0, ?5, NULL, NULL, 0)";

/// The first sighting of a contradiction answers `seen = 1`.
pub(in crate::store) const RECORD_MISMATCH: &str =
    "INSERT INTO mismatches (merchant_id, merchant_order_no, fingerprint,
         first_seen_at, last_seen_at, seen)
     VALUES (?1, ?2, ?3, ?4, ?4, 1)
     ON CONFLICT (merchant_id, merchant_order_no, fingerprint)
     DO UPDATE SET last_seen_at = excluded.last_seen_at, seen = mismatches.seen + 1
     RETURNING seen";

pub(in crate::store) const INSERT_NOTIFICATION: &str =
    "INSERT INTO notifications (merchant_id, adapter, received_at, method, path,
         query, headers, body, verdict, detail, merchant_order_no, received_bytes)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
     RETURNING id";

pub(in crate::store) static NOTIFICATIONS_OF: Built = LazyLock::new(|| {
    format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications
         WHERE merchant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
    )
});

/// The key's unique primary key decides a race: of concurrent inserts
/// one row is written, and the others (also on other connections, on
/// PostgreSQL) wait for it and do nothing.
pub(in crate::store) const CLAIM_KEY: &str =
    "INSERT INTO idempotency (merchant_id, idem_key, request_hash, status,
         response_body, created_at, completed_at)
     VALUES (?1, ?2, ?3, NULL, NULL, ?4, NULL)
     ON CONFLICT (merchant_id, idem_key) DO NOTHING";

pub(in crate::store) const SELECT_KEY: &str =
    "SELECT request_hash, status, response_body, created_at FROM idempotency
     WHERE merchant_id = ?1 AND idem_key = ?2";

/// Takes over a claim whose lease ended: only the claim read (?4), so of
/// two requests taking it over at once one changes the row.
pub(in crate::store) const TAKE_OVER_KEY: &str = "UPDATE idempotency SET created_at = ?3
     WHERE merchant_id = ?1 AND idem_key = ?2 AND status IS NULL AND created_at = ?4";

pub(in crate::store) const COMPLETE_KEY: &str =
    "UPDATE idempotency SET status = ?3, response_body = ?4, completed_at = ?5
     WHERE merchant_id = ?1 AND idem_key = ?2";

/// A completed key is never forgotten: its answer must replay.
pub(in crate::store) const RELEASE_KEY: &str = "DELETE FROM idempotency
     WHERE merchant_id = ?1 AND idem_key = ?2 AND status IS NULL";

pub(in crate::store) static DUE_EVENTS: Built = LazyLock::new(|| {
    format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox
         WHERE delivered_at IS NULL AND gave_up = 0 AND next_attempt_at <= ?1
         ORDER BY id LIMIT ?2"
    )
});

/// A merchant's (?1) events to deliver at ?2 that no replica holds.
pub(in crate::store) const DUE_OF_MERCHANT: &str =
    "merchant_id = ?1 AND delivered_at IS NULL AND gave_up = 0 AND next_attempt_at <= ?2
     AND (lease_until IS NULL OR lease_until <= ?2)";

pub(in crate::store) static DUE_EVENTS_OF: Built = LazyLock::new(|| {
    format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE {DUE_OF_MERCHANT} ORDER BY id LIMIT ?3")
});

/// The same condition as the `outbox_due` index, so it serves this scan;
/// events a replica holds do not make their merchant due.
pub(in crate::store) const DUE_MERCHANTS: &str = "SELECT merchant_id FROM outbox
     WHERE delivered_at IS NULL AND gave_up = 0 AND next_attempt_at <= ?1
       AND (lease_until IS NULL OR lease_until <= ?1)
     GROUP BY merchant_id ORDER BY MIN(id) LIMIT ?2";

pub(in crate::store) static LIST_EVENTS: Built = LazyLock::new(|| {
    format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox
         WHERE merchant_id = ?1 AND id > ?2
         ORDER BY id LIMIT ?3"
    )
});

pub(in crate::store) const MARK_DELIVERED: &str =
    "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL,
         lease_until = NULL
     WHERE id = ?1";

pub(in crate::store) const MARK_FAILED: &str =
    "UPDATE outbox SET attempts = attempts + 1, last_error = ?2,
         next_attempt_at = ?3, gave_up = ?4, lease_until = NULL
     WHERE id = ?1";

pub(in crate::store) const MARK_UNDELIVERABLE: &str =
    "UPDATE outbox SET gave_up = 1, undeliverable = ?2, last_error = ?3
     WHERE merchant_id = ?1 AND delivered_at IS NULL AND gave_up = 0";

pub(in crate::store) const REVIVE_UNDELIVERABLE: &str =
    "UPDATE outbox SET gave_up = 0, undeliverable = NULL, next_attempt_at = ?3
     WHERE merchant_id = ?1 AND undeliverable = ?2 AND delivered_at IS NULL";

/// Retention deletes: each picks its rows through the index on its cutoff
/// column (?1) and stops at the batch size (?2).
pub(in crate::store) static PRUNE_NOTIFICATIONS: Built = LazyLock::new(|| {
    let [a, b] = super::UNVERIFIED_VERDICTS;
    format!(
        "DELETE FROM notifications WHERE id IN (
             SELECT id FROM notifications
             WHERE verdict IN ('{a}', '{b}') AND received_at < ?1 LIMIT ?2)"
    )
});

pub(in crate::store) const PRUNE_OUTBOX: &str = "DELETE FROM outbox WHERE id IN (
     SELECT id FROM outbox
     WHERE delivered_at IS NOT NULL AND delivered_at < ?1 LIMIT ?2)";

/// By primary key rather than SQLite's `rowid`, which PostgreSQL lacks.
pub(in crate::store) const PRUNE_IDEMPOTENCY: &str =
    "DELETE FROM idempotency WHERE (merchant_id, idem_key) IN (
     SELECT merchant_id, idem_key FROM idempotency WHERE created_at < ?1 LIMIT ?2)";
