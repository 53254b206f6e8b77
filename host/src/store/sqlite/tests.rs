//! What only the SQLite store has, against a real file: group commit,
//! durability across reopening, its schema check. The behaviour every
//! store shares is in `store/suite.rs`.

use super::schema::MIGRATIONS;
use super::*;
use crate::store::suite::{ev, notification, order, refund};
use crate::store::test_db::sqlite_path;
use std::sync::atomic::Ordering;

async fn all_events(s: &SqliteStore) -> Vec<OutboxEvent> {
    s.list_events("m1", 10_000, None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_of_concurrent_writes_is_durable() {
    let path = sqlite_path("group");
    {
        let s = Arc::new(SqliteStore::open(&path).unwrap());
        let base = s.insert_order(&order("base")).await.unwrap().into_inner();
        let mut tasks = Vec::new();
        for i in 0..500 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.insert_order(&order(&format!("o{i}")))
                    .await
                    .map(|r| r.is_new())
            }));
        }
        // Failing writes mixed into the same batches fail alone.
        let mut stale = Vec::new();
        for _ in 0..50 {
            let (s, mut b) = (s.clone(), base.clone());
            b.version = 99;
            stale.push(tokio::spawn(
                async move { s.update_order(&b, &[ev("x")]).await },
            ));
        }
        for t in tasks {
            assert!(t.await.unwrap().unwrap());
        }
        for t in stale {
            assert!(matches!(t.await.unwrap(), Err(StoreError::Conflict)));
        }
        let st = s.stats();
        assert!(st.max_batch.load(Ordering::Relaxed) <= MAX_BATCH as u64);
        assert_eq!(st.writes.load(Ordering::Relaxed), 551);
    }
    let s = SqliteStore::open(&path).unwrap();
    let counts = s.count_orders_by_state().await.unwrap();
    assert_eq!(counts, vec![(OrderState::Created, 501)]);
    for i in 0..500 {
        let o = s.get_order("m1", &format!("o{i}")).await.unwrap();
        assert_eq!(o, Some(order(&format!("o{i}"))));
    }
    assert!(all_events(&s).await.is_empty());
}

#[tokio::test]
async fn restart_loses_nothing() {
    let path = sqlite_path("restart");
    let note = notification("rejected", "bad signature");
    let (paid, note_id) = {
        let s = SqliteStore::open(&path).unwrap();
        let o = s.insert_order(&order("o1")).await.unwrap().into_inner();
        let mut p = o.clone();
        p.state = OrderState::Paid;
        let paid = s.update_order(&p, &[ev("payment.paid")]).await.unwrap();
        s.insert_refund(&refund("r1", 100), &paid, &[])
            .await
            .unwrap();
        s.idempotency_begin("m1", "k", "h", 1).await.unwrap();
        s.idempotency_complete("m1", "k", 200, b"x").await.unwrap();
        let id = s.record_notification(&note).await.unwrap();
        assert!(id > 0);
        (s.get_order("m1", "o1").await.unwrap().unwrap(), id)
    };
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.get_order("m1", "o1").await.unwrap(), Some(paid));
    assert_eq!(s.list_refunds("m1", "o1").await.unwrap().len(), 1);
    assert_eq!(all_events(&s).await.len(), 1);
    assert_eq!(
        s.idempotency_begin("m1", "k", "h", 2).await.unwrap(),
        IdempotencyBegin::Completed {
            status: 200,
            body: b"x".to_vec()
        }
    );
    let id2 = s.record_notification(&note).await.unwrap();
    assert!(id2 > note_id);
    // The raw bytes are kept exactly.
    let body: Vec<u8> = s
        .read(move |c| {
            c.query_row(
                "SELECT body FROM notifications WHERE id = ?1",
                [note_id],
                |r| r.get(0),
            )
            .map_err(sql_err)
        })
        .await
        .unwrap();
    assert_eq!(body, note.body);
    // Migrations are recorded once, not re-run.
    let n: i64 = s
        .read(|c| {
            c.query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
                .map_err(sql_err)
        })
        .await
        .unwrap();
    assert_eq!(n, MIGRATIONS.len() as i64);
    s.ping().await.unwrap();
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let path = sqlite_path("newer");
    drop(SqliteStore::open(&path).unwrap());
    let c = Connection::open(&path).unwrap();
    c.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)",
        [],
    )
    .unwrap();
    drop(c);
    assert!(matches!(SqliteStore::open(&path), Err(StoreError::Corrupt(m)) if m.contains("999")));
}
