//! The schema as a list of migrations, and applying the pending ones.

use super::rows::sql_err;
use super::{housekeeping, order_counts};
use crate::clock::now_ms;
use crate::store::StoreError;
use rusqlite::{Connection, params};

/// Schema migrations, applied in order and recorded in `schema_migrations`.
/// Never edit a released entry; append a new one.
pub(in crate::store) const MIGRATIONS: &[(i64, &str)] = &[
    (1, MIGRATION_1),
    (2, MIGRATION_2),
    (3, MIGRATION_3),
    (4, order_counts::MIGRATION),
    (5, MIGRATION_5),
    (6, MIGRATION_6),
    (7, MIGRATION_7),
    (8, MIGRATION_8),
    (9, MIGRATION_9),
];

/// Payouts to a payee's wallet (issue 15).
pub(in crate::store) const MIGRATION_8: &str = crate::store::payouts::MIGRATION;
/// Auto-debit contracts and their deductions (issue 15).
pub(in crate::store) const MIGRATION_9: &str = crate::store::contracts::MIGRATION;

/// Housekeeping: bounded notification bodies, undeliverable events, pruning.
pub(in crate::store) const MIGRATION_3: &str = housekeeping::MIGRATION;

/// Orders in a currency other than the merchant's count against its
/// per-payer daily cap converted (NULL: the amount as it is).
pub(in crate::store) const MIGRATION_5: &str = "ALTER TABLE orders ADD COLUMN limit_minor BIGINT;";

/// Until when a replica delivering an event holds it (NULL: no one). Only
/// a store several replicas share takes leases; SQLite's one process has
/// one delivery worker and keeps the column in step with PostgreSQL's.
pub(in crate::store) const MIGRATION_6: &str = "ALTER TABLE outbox ADD COLUMN lease_until BIGINT;";

/// What replicas on one database share beyond orders (issue 14): adapter
/// components by digest and each slot's versions (active first), and each
/// merchant's request rate as GCRA's theoretical arrival time. Only a
/// store several replicas share uses them; SQLite keeps them in step.
pub(in crate::store) const MIGRATION_7: &str = r#"
CREATE TABLE adapter_blobs (
    digest TEXT PRIMARY KEY,
    slot   TEXT NOT NULL,
    bytes  BLOB NOT NULL
);
CREATE TABLE adapter_slots (
    slot       TEXT   PRIMARY KEY,
    generation BIGINT NOT NULL,
    versions   TEXT   NOT NULL,
    changed_at BIGINT NOT NULL
);
CREATE TABLE rate_limits (
    merchant_id TEXT   NOT NULL,
    op          TEXT   NOT NULL,
    tat_us      BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, op)
);
"#;

/// Contract 0.2's money safety: pending refunds are polled (`refund-query`)
/// until they settle, and contradicting provider statements are recorded
/// once each (the merchant is told once, not at every provider retry).
pub(in crate::store) const MIGRATION_2: &str = r#"
ALTER TABLE refunds ADD COLUMN next_poll_at BIGINT;
ALTER TABLE refunds ADD COLUMN poll_attempts BIGINT NOT NULL DEFAULT 0;
UPDATE refunds SET next_poll_at = updated_at WHERE state = 'pending';
CREATE INDEX refunds_poll ON refunds (next_poll_at) WHERE state = 'pending';

CREATE TABLE mismatches (
    merchant_id       TEXT   NOT NULL,
    merchant_order_no TEXT   NOT NULL,
    fingerprint       TEXT   NOT NULL,
    first_seen_at     BIGINT NOT NULL,
    last_seen_at      BIGINT NOT NULL,
    seen              BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, merchant_order_no, fingerprint)
);
"#;

pub(in crate::store) const MIGRATION_1: &str = r#"
CREATE TABLE orders (
    merchant_id            TEXT    NOT NULL,
    merchant_order_no      TEXT    NOT NULL,
    adapter                TEXT    NOT NULL,
    adapter_digest         TEXT    NOT NULL,
    method                 TEXT    NOT NULL,
    description            TEXT    NOT NULL,
    amount_minor           BIGINT  NOT NULL,
    currency               TEXT    NOT NULL,
    state                  TEXT    NOT NULL,
    provider_trade_no      TEXT,
    channel_transaction_id TEXT,
    payer_app_id           TEXT,
    payer_openid           TEXT,
    client_ip              TEXT,
    pay_action             TEXT,
    refunded_minor         BIGINT  NOT NULL,
    expires_at             BIGINT,
    paid_at                BIGINT,
    attach                 TEXT,
    metadata               TEXT    NOT NULL,
    next_poll_at           BIGINT,
    poll_attempts          BIGINT  NOT NULL,
    created_at             BIGINT  NOT NULL,
    updated_at             BIGINT  NOT NULL,
    version                BIGINT  NOT NULL,
    PRIMARY KEY (merchant_id, merchant_order_no)
);
-- The reconciler's scan touches only orders that can still settle.
CREATE INDEX orders_poll ON orders (next_poll_at) WHERE state IN ('created', 'pending');
-- Per-payer daily caps.
CREATE INDEX orders_payer ON orders (merchant_id, payer_openid, created_at);
CREATE INDEX orders_state ON orders (state);

CREATE TABLE refunds (
    merchant_id        TEXT   NOT NULL,
    merchant_order_no  TEXT   NOT NULL,
    refund_no          TEXT   NOT NULL,
    amount_minor       BIGINT NOT NULL,
    currency           TEXT   NOT NULL,
    state              TEXT   NOT NULL,
    provider_refund_id TEXT,
    reason             TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    version            BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, merchant_order_no, refund_no),
    FOREIGN KEY (merchant_id, merchant_order_no)
        REFERENCES orders (merchant_id, merchant_order_no)
);

CREATE TABLE notifications (
    id                INTEGER PRIMARY KEY,
    merchant_id       TEXT    NOT NULL,
    adapter           TEXT    NOT NULL,
    received_at       BIGINT  NOT NULL,
    method            TEXT    NOT NULL,
    path              TEXT    NOT NULL,
    query             TEXT    NOT NULL,
    headers           TEXT    NOT NULL,
    body              BLOB    NOT NULL,
    verdict           TEXT    NOT NULL,
    detail            TEXT,
    merchant_order_no TEXT
);
CREATE INDEX notifications_order ON notifications (merchant_id, merchant_order_no);

CREATE TABLE idempotency (
    merchant_id   TEXT    NOT NULL,
    idem_key      TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    status        INTEGER,
    response_body BLOB,
    created_at    BIGINT  NOT NULL,
    completed_at  BIGINT,
    PRIMARY KEY (merchant_id, idem_key)
);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL UNIQUE,
    merchant_id     TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    attempts        BIGINT  NOT NULL,
    next_attempt_at BIGINT  NOT NULL,
    delivered_at    BIGINT,
    last_error      TEXT,
    gave_up         INTEGER NOT NULL
);
-- The delivery worker's scan touches only events still to deliver.
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND gave_up = 0;
CREATE INDEX outbox_merchant ON outbox (merchant_id, id);
"#;

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at BIGINT NOT NULL
         );",
    )
    .map_err(sql_err)?;
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(sql_err)?;
    let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > latest {
        return Err(StoreError::Corrupt(format!(
            "database schema version {current} is newer than this build knows ({latest})"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = conn.transaction().map_err(sql_err)?;
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Corrupt(format!("migration {version} failed: {e}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, now_ms()],
        )
        .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
    }
    Ok(())
}
