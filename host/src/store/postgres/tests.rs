//! The PostgreSQL store's own tests against a throwaway cluster
//! (tests/pgtest, shared by the tests of this binary): migrations, several
//! replicas on one database, retried transactions. The behaviour it shares
//! with SQLite is in `store/suite.rs`. Each test skips only where
//! PostgreSQL cannot be installed outside CI.

use super::schema::MIGRATIONS;
use super::{MAX_ATTEMPTS, PgStore};
use crate::store::sqlite::schema::MIGRATIONS as SQLITE_MIGRATIONS;
use crate::store::suite::{
    capped_creates, claims_of_one_key_insert_one_order, concurrent_deductions, concurrent_payouts,
    ev, order, refund,
};
use crate::store::test_db::PgDatabase;
use crate::store::{DailyCap, Inserted, Store, StoreError};
use std::sync::Arc;

/// Concurrent opens of one fresh database: as many as replicas starting
/// together.
const REPLICAS: usize = 8;

/// How long the outbox tests lease events.
const LEASE_MS: i64 = 60_000;

/// Concurrent requests in the replica races, spread over two replicas.
const RACERS: usize = 20;

/// The schema version this build migrates to.
fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

/// Two replicas of payhost: two stores (two pools) on one database.
async fn two_replicas(test: &str) -> Option<(PgDatabase, [Arc<dyn Store>; 2])> {
    let db = PgDatabase::create(test)?;
    let a: Arc<dyn Store> = Arc::new(db.open().await);
    let b: Arc<dyn Store> = Arc::new(db.open().await);
    Some((db, [a, b]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_opening_a_fresh_database_together_all_succeed_and_migrate_once() {
    let Some(db) = PgDatabase::create("fresh") else {
        return;
    };
    let opens = (0..REPLICAS).map(|_| {
        let url = db.url.clone();
        tokio::spawn(async move { PgStore::open(&url).await })
    });
    for open in futures_util::future::join_all(opens).await {
        let store = open.unwrap().expect("every replica opens the store");
        assert_eq!(store.schema_version().await.unwrap(), latest());
    }
    let applied = db
        .cluster
        .psql(
            &db.name,
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations",
        )
        .unwrap();
    let every: Vec<String> = MIGRATIONS.iter().map(|m| m.0.to_string()).collect();
    assert_eq!(applied, every.join(","), "each migration recorded once");
    // No one left holding an advisory lock on this database (the other
    // tests' databases on the cluster have their own).
    let held = db
        .cluster
        .psql(
            &db.name,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .unwrap();
    assert_eq!(held, "0");
}

#[tokio::test]
async fn the_schema_has_sqlite_columns_table_by_table() {
    let Some(db) = PgDatabase::create("columns") else {
        return;
    };
    db.open().await;

    let sqlite = rusqlite::Connection::open_in_memory().unwrap();
    for (_, sql) in SQLITE_MIGRATIONS {
        sqlite.execute_batch(sql).unwrap();
    }
    let mut tables = sqlite
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'order_counts' ORDER BY name",
        )
        .unwrap();
    let tables: Vec<String> = tables
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(tables.len() >= 6, "{tables:?}");
    for table in tables {
        let mut columns = sqlite
            .prepare(&format!(
                "SELECT name, \"notnull\" OR pk FROM pragma_table_info('{table}') ORDER BY cid"
            ))
            .unwrap();
        let sqlite_columns: Vec<String> = columns
            .query_map([], |r| {
                Ok(format!(
                    "{}:{}",
                    r.get::<_, String>(0)?,
                    r.get::<_, bool>(1)?
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let pg_columns = db
            .cluster
            .psql(
                &db.name,
                &format!(
                    "SELECT string_agg(column_name || ':' || (is_nullable = 'NO')::text, ',' ORDER BY ordinal_position) \
                     FROM information_schema.columns WHERE table_name = '{table}'"
                ),
            )
            .unwrap();
        assert_eq!(pg_columns, sqlite_columns.join(","), "table {table}");
    }
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let Some(db) = PgDatabase::create("newer") else {
        return;
    };
    db.open().await;
    let next = MIGRATIONS.last().unwrap().0 + 1;
    db.cluster
        .psql(
            &db.name,
            &format!("INSERT INTO schema_migrations VALUES ({next}, 0)"),
        )
        .unwrap();
    let err = PgStore::open(&db.url).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("newer than this build")),
        "{err}"
    );
}

#[tokio::test]
async fn the_password_in_the_url_never_reaches_an_error() {
    for url in [
        "postgres://payhost:s3cret-pw@127.0.0.1:1/payhost",
        "postgres://payhost:s3cret-pw@[::1/payhost",
        "postgres://payhost:s3cret-pw@127.0.0.1:1/payhost?sslmode=bogus",
    ] {
        let err = PgStore::open(url).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(!err.to_string().contains("s3cret-pw"), "{err}");
        assert!(!format!("{err:?}").contains("s3cret-pw"), "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_on_one_idempotency_key_run_it_once() {
    let Some((_db, replicas)) = two_replicas("race_key").await else {
        return;
    };
    claims_of_one_key_insert_one_order(&replicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_on_one_merchant_order_number_insert_it_once() {
    let Some((_db, replicas)) = two_replicas("race_order").await else {
        return;
    };
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let s = replicas[i % 2].clone();
            let mut o = order("o1");
            o.amount_minor = 100 + i as i64;
            tokio::spawn(async move { s.insert_order(&o).await.unwrap() })
        })
        .collect();
    let mut new = Vec::new();
    let mut existing = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Inserted::New(o) => new.push(o),
            Inserted::Existing(o) => existing.push(o),
        }
    }
    assert_eq!(new.len(), 1);
    // Every other request got the one stored order back, unchanged.
    assert!(existing.iter().all(|o| *o == new[0]));
    assert_eq!(
        replicas[1].get_order("m1", "o1").await.unwrap().as_ref(),
        Some(&new[0])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payer_cap_holds_across_replicas() {
    let Some((_db, replicas)) = two_replicas("race_cap").await else {
        return;
    };
    let cap = DailyCap {
        payer_openid: "openid-1".into(),
        since: 0,
        max_minor: 1_000,
        counts_minor: 300,
    };
    // 10 concurrent creates of 300 for one payer under a cap of 1,000.
    assert_eq!(capped_creates(&replicas, &cap, 10).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payout_limits_hold_across_replicas() {
    let Some((_db, replicas)) = two_replicas("race_payouts").await else {
        return;
    };
    // 24 concurrent payouts to one payee from two replicas, 10 a day.
    assert_eq!(concurrent_payouts(&replicas, 10, 24).await, 10);
}

#[tokio::test]
async fn a_contracts_daily_count_holds_across_replicas() {
    let Some((_db, replicas)) = two_replicas("race_deductions").await else {
        return;
    };
    // 24 concurrent deductions of one contract from two replicas, 10 a day.
    assert_eq!(concurrent_deductions(&replicas, 10, 24).await, 10);
}

/// Makes the first `failures` inserts into `mismatches` fail as a
/// serialization failure would. A sequence counts them: its increments
/// survive the rollbacks they cause.
fn inject_serialization_failures(db: &PgDatabase, failures: u32) {
    db.cluster
        .psql(
            &db.name,
            &format!(
                "CREATE SEQUENCE injected;
                 CREATE FUNCTION fail_first() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     IF nextval('injected') <= {failures} THEN
                         RAISE EXCEPTION 'injected' USING ERRCODE = 'serialization_failure';
                     END IF;
                     RETURN NEW;
                 END $$;
                 CREATE TRIGGER fail_first BEFORE INSERT ON mismatches
                     FOR EACH ROW EXECUTE FUNCTION fail_first();"
            ),
        )
        .unwrap();
}

#[tokio::test]
async fn a_serialization_failure_runs_the_transaction_again_from_the_start() {
    let Some(db) = PgDatabase::create("retried") else {
        return;
    };
    let s = db.open().await;
    s.insert_order(&order("o1")).await.unwrap();
    inject_serialization_failures(&db, MAX_ATTEMPTS - 1);
    let e = ev("payment.provider_mismatch");
    assert!(s.record_mismatch("m1", "o1", "fp-1", &e).await.unwrap());
    // The runs that failed left nothing: one event, counted once.
    assert_eq!(s.list_events("m1", 10, None).await.unwrap().len(), 1);
    assert!(!s.record_mismatch("m1", "o1", "fp-1", &e).await.unwrap());
}

#[tokio::test]
async fn serialization_failures_past_the_attempts_are_unavailable_and_write_nothing() {
    let Some(db) = PgDatabase::create("given_up") else {
        return;
    };
    let s = db.open().await;
    s.insert_order(&order("o1")).await.unwrap();
    inject_serialization_failures(&db, MAX_ATTEMPTS);
    let e = ev("payment.provider_mismatch");
    let err = s.record_mismatch("m1", "o1", "fp-1", &e).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains(&format!("after {MAX_ATTEMPTS} attempts"))),
        "{err}"
    );
    assert!(s.list_events("m1", 10, None).await.unwrap().is_empty());
    // The next call is a first run again.
    assert!(s.record_mismatch("m1", "o1", "fp-1", &e).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_draining_one_outbox_never_get_one_event_both() {
    let Some((_db, replicas)) = two_replicas("drain").await else {
        return;
    };
    const EVENTS: usize = 120;
    let o = replicas[0].insert_order(&order("o1")).await.unwrap();
    let evs: Vec<_> = (0..EVENTS).map(|i| ev(&format!("e{i}"))).collect();
    replicas[0]
        .update_order(&o.into_inner(), &evs)
        .await
        .unwrap();
    let now = i64::MAX / 2;
    // Each replica drains as its delivery worker does: take a batch,
    // mark each delivered, until nothing is due.
    let drains = replicas.iter().map(|s| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let due = s.due_events_of("m1", now, 7, LEASE_MS).await.unwrap();
                if due.is_empty() {
                    return got;
                }
                for e in due {
                    s.mark_delivered(e.id, now).await.unwrap();
                    got.push(e.id);
                }
            }
        })
    });
    let got: Vec<Vec<i64>> = futures_util::future::join_all(drains)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut all: Vec<i64> = got.concat();
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "an event was handed to both replicas");
    assert_eq!(all.len(), EVENTS, "every event delivered");
    assert!(
        got.iter().all(|g| g.windows(2).all(|w| w[0] < w[1])),
        "each replica's batches come oldest first"
    );
}

#[tokio::test]
async fn a_leased_event_is_due_again_when_its_lease_ends_unless_marked() {
    let Some(db) = PgDatabase::create("lease_ends") else {
        return;
    };
    let (a, b) = (db.open().await, db.open().await);
    let o = a.insert_order(&order("o1")).await.unwrap().into_inner();
    a.update_order(&o, &[ev("a"), ev("b")]).await.unwrap();
    let now = crate::clock::now_ms() + 1;
    let leased = a.due_events_of("m1", now, 10, LEASE_MS).await.unwrap();
    assert_eq!(leased.len(), 2);
    // Held by replica a: not due for b, nor is its merchant.
    assert!(
        b.due_events_of("m1", now, 10, LEASE_MS)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(b.due_merchants(now, 10).await.unwrap().is_empty());
    // A read still lists them as undelivered.
    assert_eq!(b.due_events(now, 10).await.unwrap().len(), 2);
    // a delivers one and dies holding the other: once the lease ends,
    // b gets that one, and only that one.
    a.mark_delivered(leased[0].id, now).await.unwrap();
    let later = now + LEASE_MS;
    let retaken = b.due_events_of("m1", later, 10, LEASE_MS).await.unwrap();
    assert_eq!(
        retaken.iter().map(|e| e.id).collect::<Vec<_>>(),
        [leased[1].id]
    );
    // A failed attempt gives the lease up: due again at its next attempt.
    b.mark_failed(leased[1].id, "HTTP 500", later, false)
        .await
        .unwrap();
    assert_eq!(
        a.due_events_of("m1", later, 10, LEASE_MS)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_polling_together_never_get_one_order_or_refund_both() {
    let Some((_db, replicas)) = two_replicas("poll").await else {
        return;
    };
    const ORDERS: usize = 60;
    for i in 0..ORDERS {
        replicas[0]
            .insert_order(&order(&format!("o{i}")))
            .await
            .unwrap();
    }
    for i in 0..ORDERS {
        // Each refund moves the order's version.
        let o1 = replicas[0].get_order("m1", "o1").await.unwrap().unwrap();
        let mut r = refund(&format!("r{i}"), 1);
        r.next_poll_at = Some(100);
        replicas[0].insert_refund(&r, &o1, &[]).await.unwrap();
    }
    let now = 1_000;
    let polls = replicas.iter().map(|s| {
        let s = s.clone();
        tokio::spawn(async move {
            let (mut orders, mut refunds) = (Vec::new(), Vec::new());
            // Without leases the same rows come back for ever: bounded.
            for _ in 0..2 * ORDERS {
                let o = s.orders_to_poll(now, 7).await.unwrap();
                let r = s.refunds_to_poll(now, 7).await.unwrap();
                if o.is_empty() && r.is_empty() {
                    return (orders, refunds);
                }
                orders.extend(o.into_iter().map(|o| o.merchant_order_no));
                refunds.extend(r.into_iter().map(|r| r.refund_no));
            }
            (orders, refunds)
        })
    });
    let got: Vec<(Vec<String>, Vec<String>)> = futures_util::future::join_all(polls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (what, all) in [
        (
            "order",
            got.iter().flat_map(|g| g.0.clone()).collect::<Vec<_>>(),
        ),
        ("refund", got.iter().flat_map(|g| g.1.clone()).collect()),
    ] {
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            all.len(),
            "an {what} was handed to both replicas"
        );
        assert_eq!(all.len(), ORDERS, "every {what} polled");
    }
    // Leased, not done: due again for anyone once the lease ends.
    let later = now + super::POLL_LEASE_MS + 1;
    assert_eq!(
        replicas[1].orders_to_poll(later, 100).await.unwrap().len(),
        ORDERS
    );
    assert_eq!(
        replicas[0].refunds_to_poll(later, 100).await.unwrap().len(),
        ORDERS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchants_rate_is_counted_once_for_all_replicas() {
    let Some((_db, [a, b])) = two_replicas("rates").await else {
        return;
    };
    const MINUTE: i64 = 60_000_000;
    // 3 a minute: one every 20 s, a burst of 3.
    let interval = MINUTE / 3;
    let now = 1_000_000_000;
    let take = |s: &Arc<dyn Store>, op: &'static str, at: i64| {
        let s = s.clone();
        async move {
            s.take_rate("m1", op, at, interval, MINUTE)
                .await
                .unwrap()
                .expect("a shared store counts rates")
        }
    };
    // The burst, taken on both replicas alternately, is spent once.
    assert_eq!(take(&a, "create", now).await, Ok(()));
    assert_eq!(take(&b, "create", now).await, Ok(()));
    assert_eq!(take(&a, "create", now).await, Ok(()));
    let wait = take(&b, "create", now).await.unwrap_err();
    assert_eq!(wait, interval, "the next call is one interval away");
    // A refused call takes nothing: still refused a moment before.
    assert!(take(&a, "create", now + interval - 1).await.is_err());
    assert_eq!(take(&a, "create", now + interval).await, Ok(()));
    // Another operation and another merchant have budgets of their own.
    assert_eq!(take(&b, "query", now).await, Ok(()));
    assert_eq!(
        b.take_rate("m2", "create", now, interval, MINUTE)
            .await
            .unwrap(),
        Some(Ok(()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_two_replicas_take_exactly_the_burst() {
    let Some((_db, replicas)) = two_replicas("rate_race").await else {
        return;
    };
    const MINUTE: i64 = 60_000_000;
    let now = crate::clock::now_us();
    let calls = (0..RACERS).map(|i| {
        let s = replicas[i % 2].clone();
        tokio::spawn(async move { s.take_rate("m1", "create", now, MINUTE / 7, MINUTE).await })
    });
    let admitted = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(Ok(Some(Ok(()))))))
        .count();
    assert_eq!(admitted, 7, "a burst of 7 among {RACERS} racing calls");
}

fn shared_version(digest: &str, version: &str) -> crate::store::SharedVersion {
    crate::store::SharedVersion {
        digest: digest.into(),
        version: version.into(),
        loaded_at: 1,
        source: "admin".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_adapter_slot_reaches_every_replica_and_keeps_only_its_versions() {
    let Some((_db, [a, b])) = two_replicas("adapters").await else {
        return;
    };
    let wake = Arc::new(tokio::sync::Notify::new());
    let listener = b
        .watch_adapters(wake.clone())
        .expect("a shared store is watched");
    // Woken once when listening starts (for what it may have missed).
    tokio::time::timeout(std::time::Duration::from_secs(10), wake.notified())
        .await
        .expect("the listener connects");
    let v1: Arc<[u8]> = Arc::from(&b"component one"[..]);
    let v2: Arc<[u8]> = Arc::from(&b"component two"[..]);
    let g1 = a
        .publish_adapter_slot(
            "acme",
            &[shared_version("d1", "1.0.0")],
            &[("d1".into(), v1.clone())],
        )
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(2), wake.notified())
        .await
        .expect("the other replica is told within 2 s");
    let slots = b.adapter_slots().await.unwrap();
    assert_eq!(slots.len(), 1);
    assert_eq!((slots[0].slot.as_str(), slots[0].generation), ("acme", g1));
    assert_eq!(
        b.adapter_blob("d1").await.unwrap().as_deref(),
        Some(&v1[..])
    );

    // v2 active, v1 kept; then v1 dropped: its bytes go with it.
    let both = [shared_version("d2", "2.0.0"), shared_version("d1", "1.0.0")];
    let g2 = b
        .publish_adapter_slot("acme", &both, &[("d2".into(), v2.clone())])
        .await
        .unwrap();
    assert_eq!(g2, g1 + 1);
    assert_eq!(a.adapter_slots().await.unwrap()[0].versions, both);
    let g3 = a
        .publish_adapter_slot("acme", &both[..1], &[("d2".into(), v2.clone())])
        .await
        .unwrap();
    assert_eq!(g3, g2 + 1);
    assert_eq!(a.adapter_blob("d1").await.unwrap(), None);
    assert_eq!(
        a.adapter_blob("d2").await.unwrap().as_deref(),
        Some(&v2[..])
    );
    listener.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_a_connection_is_answered_unavailable_instead_of_hanging() {
    let Some(db) = PgDatabase::create("pool_wait") else {
        return;
    };
    let store = db.open().await;
    // Every connection held, as by calls stuck on a database that stopped
    // answering.
    let mut held = Vec::new();
    for _ in 0..super::POOL_SIZE {
        held.push(store.client().await.unwrap());
    }
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(super::POOL_WAIT * 3, store.ping())
        .await
        .expect("the call returns instead of waiting for ever");
    match answer {
        Err(StoreError::Unavailable(why)) => assert!(why.contains("pool"), "{why}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(started.elapsed() >= super::POOL_WAIT);
    // A connection given back serves the next call at once.
    held.pop();
    store.ping().await.unwrap();
}
