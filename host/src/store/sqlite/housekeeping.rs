//! The queries that keep the store bounded: reading notification records,
//! scheduling deliveries per merchant, marking undeliverable events and
//! deleting what is past its retention.

use super::{OUTBOX_COLUMNS, SqliteStore, event_from_row, parse_json, query_all, sql_err};
use crate::store::{
    NotificationRecord, OutboxEvent, PrunePolicy, PruneReport, StoreError, UNVERIFIED_VERDICTS,
};
use rusqlite::{Row, params};

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

const NOTIFICATION_COLUMNS: &str = "id, merchant_id, adapter, received_at, method, path, query, \
     headers, body, verdict, detail, merchant_order_no, received_bytes";

fn notification_from_row(r: &Row<'_>) -> Result<NotificationRecord, StoreError> {
    let headers: String = r.get(7).map_err(sql_err)?;
    let body: Vec<u8> = r.get(8).map_err(sql_err)?;
    // Rows from before migration 3 were always stored whole.
    let received: Option<i64> = r.get(12).map_err(sql_err)?;
    Ok(NotificationRecord {
        id: r.get(0).map_err(sql_err)?,
        merchant_id: r.get(1).map_err(sql_err)?,
        adapter: r.get(2).map_err(sql_err)?,
        received_at: r.get(3).map_err(sql_err)?,
        method: r.get(4).map_err(sql_err)?,
        path: r.get(5).map_err(sql_err)?,
        query: r.get(6).map_err(sql_err)?,
        headers: parse_json("headers", &headers)?,
        received_bytes: received.unwrap_or(body.len() as i64),
        body,
        verdict: r.get(9).map_err(sql_err)?,
        detail: r.get(10).map_err(sql_err)?,
        merchant_order_no: r.get(11).map_err(sql_err)?,
    })
}

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
                &format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM notifications
                     WHERE merchant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                ),
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
            // The same condition as `outbox_due`, so that index serves it.
            query_all(
                conn,
                "SELECT merchant_id FROM outbox
                 WHERE delivered_at IS NULL AND gave_up = 0 AND next_attempt_at <= ?1
                 GROUP BY merchant_id ORDER BY MIN(id) LIMIT ?2",
                params![now, limit],
                |r| r.get(0).map_err(sql_err),
            )
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
            query_all(
                conn,
                &format!(
                    "SELECT {OUTBOX_COLUMNS} FROM outbox
                     WHERE merchant_id = ?1 AND delivered_at IS NULL AND gave_up = 0
                       AND next_attempt_at <= ?2
                     ORDER BY id LIMIT ?3"
                ),
                params![m, now, limit],
                event_from_row,
            )
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
            conn.prepare_cached(
                "UPDATE outbox SET gave_up = 1, undeliverable = ?2, last_error = ?3
                 WHERE merchant_id = ?1 AND delivered_at IS NULL AND gave_up = 0",
            )
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
            conn.prepare_cached(
                "UPDATE outbox SET gave_up = 0, undeliverable = NULL, next_attempt_at = ?3
                 WHERE merchant_id = ?1 AND undeliverable = ?2 AND delivered_at IS NULL",
            )
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
            // Each delete picks its rows through the index on its cutoff
            // column and stops at `batch`.
            let delete = |sql: &str, cutoff: i64| {
                conn.prepare_cached(sql)
                    .and_then(|mut s| s.execute(params![cutoff, policy.batch]))
                    .map(|n| n as u64)
                    .map_err(sql_err)
            };
            let idempotency = delete(
                "DELETE FROM idempotency WHERE rowid IN (
                     SELECT rowid FROM idempotency WHERE created_at < ?1 LIMIT ?2)",
                policy.idempotency_before,
            )?;
            let notifications = delete(
                &format!(
                    "DELETE FROM notifications WHERE id IN (
                         SELECT id FROM notifications
                         WHERE verdict IN ('{}', '{}') AND received_at < ?1 LIMIT ?2)",
                    UNVERIFIED_VERDICTS[0], UNVERIFIED_VERDICTS[1]
                ),
                policy.unverified_before,
            )?;
            let outbox = delete(
                "DELETE FROM outbox WHERE id IN (
                     SELECT id FROM outbox
                     WHERE delivered_at IS NOT NULL AND delivered_at < ?1 LIMIT ?2)",
                policy.delivered_before,
            )?;
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
    use crate::store::sqlite::SqliteStore;
    use crate::store::sqlite::schema::MIGRATION_1;
    use crate::store::{
        IdempotencyBegin, NewEvent, NotificationRecord, Order, OrderState, PrunePolicy,
        PruneReport, Store,
    };
    use serde_json::json;
    use std::path::{Path, PathBuf};

    fn db_path(name: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/tmp/store-tests")
            .join(format!("housekeeping-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("payhost.sqlite")
    }

    fn order(merchant: &str, no: &str) -> Order {
        Order {
            merchant_id: merchant.into(),
            merchant_order_no: no.into(),
            adapter: "wechat-v2".into(),
            adapter_digest: "sha256:abc".into(),
            method: "wechat_mini_program".into(),
            description: "tea".into(),
            amount_minor: 100,
            currency: "CNY".into(),
            state: OrderState::Pending,
            provider_trade_no: None,
            channel_transaction_id: None,
            payer_app_id: None,
            payer_openid: None,
            client_ip: None,
            pay_action: None,
            refunded_minor: 0,
            expires_at: None,
            paid_at: None,
            attach: None,
            metadata: json!(null),
            next_poll_at: None,
            poll_attempts: 0,
            created_at: 1,
            updated_at: 1,
            version: 1,
        }
    }

    /// An order of `merchant` with `n` events; returns the events' ids.
    async fn events(s: &SqliteStore, merchant: &str, no: &str, n: usize) -> Vec<i64> {
        let o = s
            .insert_order(&order(merchant, no))
            .await
            .unwrap()
            .into_inner();
        let evs: Vec<NewEvent> = (0..n)
            .map(|i| NewEvent {
                event_type: format!("payment.e{i}"),
                payload: json!({"no": no}),
            })
            .collect();
        s.update_order(&o, &evs).await.unwrap();
        let all = s.list_events(merchant, 1000, None).await.unwrap();
        all.iter().rev().take(n).rev().map(|e| e.id).collect()
    }

    fn notification(verdict: &str, received_at: i64) -> NotificationRecord {
        NotificationRecord {
            id: 0,
            merchant_id: "m1".into(),
            adapter: "wechat-v2".into(),
            received_at,
            method: "POST".into(),
            path: "/v1/notify/wechat-v2/m1".into(),
            query: String::new(),
            headers: json!([]),
            body: b"<xml/>".to_vec(),
            verdict: verdict.into(),
            detail: None,
            merchant_order_no: None,
            received_bytes: 6,
        }
    }

    #[tokio::test]
    async fn prune_deletes_only_what_is_past_its_retention() {
        let s = SqliteStore::open(db_path("prune")).unwrap();
        for (key, at) in [("old", 1000), ("new", 5000)] {
            assert_eq!(
                s.idempotency_begin("m1", key, "h", at).await.unwrap(),
                IdempotencyBegin::Started
            );
            s.idempotency_complete("m1", key, 201, b"{}").await.unwrap();
        }
        for (verdict, at) in [
            ("unverified", 1000),
            ("too_large", 1000),
            ("unverified", 5000),
            ("applied", 1000),
            ("rejected", 1000),
            ("duplicate", 1000),
        ] {
            s.record_notification(&notification(verdict, at))
                .await
                .unwrap();
        }
        let ids = events(&s, "m1", "o1", 5).await;
        s.mark_delivered(ids[0], 1000).await.unwrap();
        s.mark_delivered(ids[1], 5000).await.unwrap();
        s.mark_failed(ids[2], "gone", 0, true).await.unwrap();
        // ids[3] and ids[4] stay to deliver; another merchant's event is
        // undeliverable.
        events(&s, "m2", "o2", 1).await;
        s.mark_undeliverable("m2", "merchant_not_configured", "gone")
            .await
            .unwrap();

        let policy = PrunePolicy {
            idempotency_before: 3000,
            unverified_before: 3000,
            delivered_before: 3000,
            batch: 100,
        };
        let r = s.prune(&policy).await.unwrap();
        assert_eq!(
            r,
            PruneReport {
                idempotency: 1,
                notifications: 2,
                outbox: 1
            }
        );
        assert!(!r.full(policy.batch));
        // Only the expired rows went.
        assert_eq!(
            s.idempotency_begin("m1", "old", "h", 6000).await.unwrap(),
            IdempotencyBegin::Started
        );
        assert!(matches!(
            s.idempotency_begin("m1", "new", "h", 6000).await.unwrap(),
            IdempotencyBegin::Completed { status: 201, .. }
        ));
        let left: Vec<(String, i64)> = s
            .list_notifications("m1", 100, None)
            .await
            .unwrap()
            .into_iter()
            .map(|n| (n.verdict, n.received_at))
            .collect();
        assert_eq!(
            left,
            [
                ("unverified".to_string(), 5000),
                ("applied".into(), 1000),
                ("rejected".into(), 1000),
                ("duplicate".into(), 1000)
            ]
        );
        let m1: Vec<i64> = s
            .list_events("m1", 100, None)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(m1, ids[1..]);
        assert_eq!(s.list_events("m2", 100, None).await.unwrap().len(), 1);
        assert!(s.get_order("m1", "o1").await.unwrap().is_some());
        // Nothing more to do: a second pass deletes nothing.
        assert_eq!(s.prune(&policy).await.unwrap(), PruneReport::default());
    }

    #[tokio::test]
    async fn prune_stops_at_the_batch_size() {
        let s = SqliteStore::open(db_path("batch")).unwrap();
        for _ in 0..3 {
            s.record_notification(&notification("unverified", 10))
                .await
                .unwrap();
        }
        let policy = PrunePolicy {
            idempotency_before: 0,
            unverified_before: 100,
            delivered_before: 0,
            batch: 2,
        };
        let first = s.prune(&policy).await.unwrap();
        assert_eq!(first.notifications, 2);
        assert!(first.full(policy.batch));
        assert_eq!(s.prune(&policy).await.unwrap().notifications, 1);
    }

    #[tokio::test]
    async fn due_merchants_undeliverable_and_revived() {
        let s = SqliteStore::open(db_path("due")).unwrap();
        events(&s, "m1", "o1", 2).await;
        events(&s, "m2", "o2", 1).await;
        let now = i64::MAX;
        assert_eq!(s.due_merchants(now, 10).await.unwrap(), ["m1", "m2"]);
        assert_eq!(s.due_events_of("m2", now, 10).await.unwrap().len(), 1);

        assert_eq!(
            s.mark_undeliverable("m1", "no_callback_url", "no URL")
                .await
                .unwrap(),
            2
        );
        assert_eq!(s.due_merchants(now, 10).await.unwrap(), ["m2"]);
        assert!(s.due_events_of("m1", now, 10).await.unwrap().is_empty());
        let marked = s.list_events("m1", 10, None).await.unwrap();
        assert!(marked.iter().all(|e| e.gave_up
            && e.undeliverable.as_deref() == Some("no_callback_url")
            && e.last_error.as_deref() == Some("no URL")));

        // Only events marked for that reason come back.
        assert_eq!(
            s.revive_undeliverable("m1", "merchant_not_configured", 5)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            s.revive_undeliverable("m1", "no_callback_url", 5)
                .await
                .unwrap(),
            2
        );
        let revived = s.due_events_of("m1", 5, 10).await.unwrap();
        assert_eq!(revived.len(), 2);
        assert!(
            revived
                .iter()
                .all(|e| !e.gave_up && e.undeliverable.is_none())
        );
    }

    #[tokio::test]
    async fn migrations_upgrade_a_version_1_file() {
        let path = db_path("upgrade");
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
        let mut r = notification("unverified", 8);
        r.received_bytes = 70_000;
        s.record_notification(&r).await.unwrap();
        let n = s.list_notifications("m1", 10, Some(n[0].id)).await.unwrap();
        assert_eq!(n[0].received_bytes, 70_000);
    }
}
