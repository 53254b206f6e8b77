//! The queries that keep the store bounded: reading notification records,
//! scheduling deliveries per merchant, marking undeliverable events and
//! deleting what is past its retention.

use super::{SqliteStore, event_from_row, notification_from_row, query_all, sql_err};
use crate::store::sql::{
    DUE_EVENTS_OF, DUE_MERCHANTS, MARK_UNDELIVERABLE, NOTIFICATIONS_OF, PRUNE_IDEMPOTENCY,
    PRUNE_NOTIFICATIONS, PRUNE_OUTBOX, REVIVE_UNDELIVERABLE,
};
use crate::store::{NotificationRecord, OutboxEvent, PrunePolicy, PruneReport, StoreError};
use rusqlite::params;

/// Migration 3: the size a notification had before truncation, the reason
/// an event cannot be delivered, and indexes for the retention deletes.
pub(super) const MIGRATION: &str = r#"
ALTER TABLE notifications ADD COLUMN received_bytes BIGINT;
CREATE INDEX notifications_unverified ON notifications (received_at)
    WHERE verdict IN ('unverified', 'too_large');
ALTER TABLE outbox ADD COLUMN undeliverable TEXT;
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX idempotency_created ON idempotency (created_at);
"#;

impl SqliteStore {
    pub(super) async fn notifications_of(
        &self,
        merchant_id: &str,
        limit: i64,
        after_id: Option<i64>,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let m = merchant_id.to_owned();
        self.read(move |conn| {
            query_all(
                conn,
                &NOTIFICATIONS_OF,
                params![m, after_id.unwrap_or(0), limit],
                notification_from_row,
            )
        })
        .await
    }

    pub(super) async fn merchants_due(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.read(move |conn| {
            query_all(conn, DUE_MERCHANTS, params![now, limit], |r| {
                r.get(0).map_err(sql_err)
            })
        })
        .await
    }

    pub(super) async fn events_due_of(
        &self,
        merchant_id: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let m = merchant_id.to_owned();
        self.read(move |conn| {
            query_all(conn, &DUE_EVENTS_OF, params![m, now, limit], event_from_row)
        })
        .await
    }

    pub(super) async fn set_undeliverable(
        &self,
        merchant_id: &str,
        reason: &str,
        detail: &str,
    ) -> Result<u64, StoreError> {
        let (m, r, d) = (merchant_id.to_owned(), reason.to_owned(), detail.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(MARK_UNDELIVERABLE)
                .and_then(|mut s| s.execute(params![m, r, d]))
                .map(|n| n as u64)
                .map_err(sql_err)
        })
        .await
    }

    pub(super) async fn unset_undeliverable(
        &self,
        merchant_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let (m, r) = (merchant_id.to_owned(), reason.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(REVIVE_UNDELIVERABLE)
                .and_then(|mut s| s.execute(params![m, r, now]))
                .map(|n| n as u64)
                .map_err(sql_err)
        })
        .await
    }

    pub(super) async fn delete_expired(
        &self,
        policy: PrunePolicy,
    ) -> Result<PruneReport, StoreError> {
        self.write(move |conn| {
            let delete = |sql: &str, cutoff: i64| {
                conn.prepare_cached(sql)
                    .and_then(|mut s| s.execute(params![cutoff, policy.batch]))
                    .map(|n| n as u64)
                    .map_err(sql_err)
            };
            let idempotency = delete(PRUNE_IDEMPOTENCY, policy.idempotency_before)?;
            let notifications = delete(&PRUNE_NOTIFICATIONS, policy.unverified_before)?;
            let outbox = delete(PRUNE_OUTBOX, policy.delivered_before)?;
            Ok(PruneReport {
                idempotency,
                notifications,
                outbox,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;
    use crate::store::sqlite::SqliteStore;
    use crate::store::sqlite::schema::MIGRATION_1;
    use crate::store::suite::received;
    use crate::store::test_db::sqlite_path;

    #[tokio::test]
    async fn migrations_upgrade_a_version_1_file() {
        let path = sqlite_path("upgrade");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 0);",
            )
            .unwrap();
            conn.execute_batch(MIGRATION_1).unwrap();
            conn.execute_batch(
                "INSERT INTO notifications (merchant_id, adapter, received_at, method, path,
                     query, headers, body, verdict, detail, merchant_order_no)
                 VALUES ('m1', 'wechat-v2', 7, 'POST', '/n', '', '[]', x'3c786d6c2f3e',
                         'applied', NULL, 'o1');
                 INSERT INTO outbox (event_id, merchant_id, event_type, payload, created_at,
                     attempts, next_attempt_at, delivered_at, last_error, gave_up)
                 VALUES ('evt_1', 'm1', 'payment.paid', '{}', 7, 0, 7, NULL, NULL, 0);",
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let n = s.list_notifications("m1", 10, None).await.unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].body, b"<xml/>");
        assert_eq!(n[0].received_bytes, 6);
        let e = s.list_events("m1", 10, None).await.unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].undeliverable, None);
        assert_eq!(s.due_merchants(100, 10).await.unwrap(), ["m1"]);
        // The new columns are written from now on.
        let mut r = received("unverified", 8);
        r.received_bytes = 70_000;
        s.record_notification(&r).await.unwrap();
        let n = s.list_notifications("m1", 10, Some(n[0].id)).await.unwrap();
        assert_eq!(n[0].received_bytes, 70_000);
    }
}
