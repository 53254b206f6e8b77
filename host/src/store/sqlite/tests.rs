//! The SQLite store's own tests: durability, group commit, compare-and-set
//! and every query, against a real file.

use super::schema::MIGRATIONS;
use super::*;
use crate::store::RefundState;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh database path under target/tmp (never the system temp dir:
/// the test data stays with the build and is easy to inspect).
fn db_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/tmp/store-tests")
        .join(format!(
            "{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("payhost.sqlite")
}

fn order(no: &str) -> Order {
    Order {
        merchant_id: "m1".into(),
        merchant_order_no: no.into(),
        adapter: "wechat-v2".into(),
        adapter_digest: "sha256:abc".into(),
        method: "wechat_mini_program".into(),
        description: "green tea".into(),
        amount_minor: 1000,
        currency: "CNY".into(),
        state: OrderState::Created,
        provider_trade_no: None,
        channel_transaction_id: None,
        payer_app_id: Some("wxapp".into()),
        payer_openid: Some("openid-1".into()),
        client_ip: Some("127.0.0.1".into()),
        pay_action: Some(json!({"mini_program": {"package": "prepay_id=1"}})),
        refunded_minor: 0,
        expires_at: Some(10_000),
        paid_at: None,
        attach: Some("a".into()),
        metadata: json!({"k": [1, 2]}),
        next_poll_at: Some(100),
        poll_attempts: 0,
        created_at: 50,
        updated_at: 50,
        version: 1,
    }
}

/// A notification about order `o1` of merchant `m1`.
fn notification(verdict: &str, detail: &str) -> NotificationRecord {
    NotificationRecord {
        id: 0,
        merchant_id: "m1".into(),
        adapter: "wechat-v2".into(),
        received_at: 70,
        method: "POST".into(),
        path: "/v1/notify/wechat-v2/m1".into(),
        query: String::new(),
        headers: json!([["content-type", "text/xml"]]),
        body: b"<xml>\x00\xff</xml>".to_vec(),
        verdict: verdict.into(),
        detail: Some(detail.into()),
        merchant_order_no: Some("o1".into()),
        received_bytes: 13,
    }
}

fn refund(no: &str, amount: i64) -> Refund {
    Refund {
        merchant_id: "m1".into(),
        merchant_order_no: "o1".into(),
        refund_no: no.into(),
        amount_minor: amount,
        currency: "CNY".into(),
        state: RefundState::Pending,
        provider_refund_id: None,
        reason: Some("broken cup".into()),
        next_poll_at: None,
        poll_attempts: 0,
        created_at: 60,
        updated_at: 60,
        version: 1,
    }
}

fn ev(t: &str) -> NewEvent {
    NewEvent {
        event_type: t.into(),
        payload: json!({"t": t}),
    }
}

async fn all_events(s: &SqliteStore) -> Vec<OutboxEvent> {
    s.list_events("m1", 10_000, None).await.unwrap()
}

#[tokio::test]
async fn order_round_trip_and_duplicate_insert() {
    let s = SqliteStore::open(db_path("roundtrip")).unwrap();
    let o = order("o1");
    let Inserted::New(stored) = s.insert_order(&o).await.unwrap() else {
        panic!("first insert must be new")
    };
    assert_eq!(stored, o);
    assert_eq!(s.get_order("m1", "o1").await.unwrap(), Some(o.clone()));
    assert_eq!(s.get_order("m1", "nope").await.unwrap(), None);
    assert_eq!(s.get_order("m2", "o1").await.unwrap(), None);

    let mut other = order("o1");
    other.amount_minor = 5;
    assert_eq!(
        s.insert_order(&other).await.unwrap(),
        Inserted::Existing(o.clone())
    );
    // Options that are None and JSON null survive too.
    let mut bare = order("o2");
    bare.pay_action = None;
    bare.payer_openid = None;
    bare.metadata = serde_json::Value::Null;
    s.insert_order(&bare).await.unwrap();
    assert_eq!(s.get_order("m1", "o2").await.unwrap(), Some(bare));
}

#[tokio::test]
async fn update_is_compare_and_set_with_atomic_events() {
    let s = SqliteStore::open(db_path("cas")).unwrap();
    let o = s.insert_order(&order("o1")).await.unwrap().into_inner();
    let mut paid = o.clone();
    paid.state = OrderState::Paid;
    paid.channel_transaction_id = Some("wx1".into());
    let stored = s.update_order(&paid, &[ev("payment.paid")]).await.unwrap();
    assert_eq!(stored.version, 2);
    assert!(stored.updated_at >= o.updated_at);
    assert_eq!(s.get_order("m1", "o1").await.unwrap(), Some(stored.clone()));

    // The stale copy loses, and its events are not appended.
    let mut stale = o.clone();
    stale.state = OrderState::Closed;
    assert!(matches!(
        s.update_order(&stale, &[ev("payment.closed")]).await,
        Err(StoreError::Conflict)
    ));
    let events = all_events(&s).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "payment.paid");
    assert!(events[0].event_id.starts_with("evt_"));
    assert_eq!(events[0].payload, json!({"t": "payment.paid"}));
    assert_eq!(
        s.get_order("m1", "o1").await.unwrap().unwrap().state,
        OrderState::Paid
    );
    // Unknown order: nothing to compare with.
    assert!(matches!(
        s.update_order(&order("ghost"), &[ev("x")]).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(all_events(&s).await.len(), 1);
}

#[tokio::test]
async fn refunds_insert_update_list() {
    let s = SqliteStore::open(db_path("refunds")).unwrap();
    let o = s.insert_order(&order("o1")).await.unwrap().into_inner();

    let r1 = s.insert_refund(&refund("r1", 300), &o, &[]).await.unwrap();
    assert!(r1.is_new());
    // The order's version moved, so a refund decided on the old copy
    // loses and leaves no row behind.
    assert!(matches!(
        s.insert_refund(&refund("r2", 300), &o, &[ev("x")]).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.get_refund("m1", "o1", "r2").await.unwrap(), None);
    assert!(all_events(&s).await.is_empty());

    // Same refund number again: Existing, nothing written.
    let o2 = s.get_order("m1", "o1").await.unwrap().unwrap();
    assert_eq!(o2.version, 2);
    let again = s
        .insert_refund(&refund("r1", 999), &o2, &[ev("x")])
        .await
        .unwrap();
    assert_eq!(again, Inserted::Existing(r1.clone().into_inner()));
    assert_eq!(s.get_order("m1", "o1").await.unwrap().unwrap().version, 2);

    let mut done = r1.into_inner();
    done.state = RefundState::Succeeded;
    done.provider_refund_id = Some("wxr".into());
    let mut o3 = o2.clone();
    o3.refunded_minor = 300;
    o3.state = OrderState::PartiallyRefunded;
    let stored = s
        .update_refund(&done, Some(&o3), &[ev("refund.succeeded")])
        .await
        .unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(s.get_refund("m1", "o1", "r1").await.unwrap(), Some(stored));
    let o4 = s.get_order("m1", "o1").await.unwrap().unwrap();
    assert_eq!((o4.refunded_minor, o4.version), (300, 3));
    // A stale refund update (same version) conflicts and rolls back the
    // order change with it.
    let mut o5 = o4.clone();
    o5.refunded_minor = 600;
    assert!(matches!(
        s.update_refund(&done, Some(&o5), &[ev("refund.succeeded")])
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.get_order("m1", "o1").await.unwrap().unwrap(), o4);
    assert_eq!(all_events(&s).await.len(), 1);

    let r2 = s
        .insert_refund(&refund("r2", 100), &o4, &[])
        .await
        .unwrap()
        .into_inner();
    let list = s.list_refunds("m1", "o1").await.unwrap();
    assert_eq!(
        list.iter()
            .map(|r| r.refund_no.as_str())
            .collect::<Vec<_>>(),
        ["r1", "r2"]
    );
    assert_eq!(list[1], r2);
    assert!(s.list_refunds("m1", "o9").await.unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_idempotency_begin_has_one_winner() {
    let s = Arc::new(SqliteStore::open(db_path("idem")).unwrap());
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.idempotency_begin("m1", "k", "h", 1_000).await })
        })
        .collect();
    let mut started = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            IdempotencyBegin::Started => started += 1,
            IdempotencyBegin::InProgress => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(started, 1);

    assert_eq!(
        s.idempotency_begin("m1", "k", "other", 1_001)
            .await
            .unwrap(),
        IdempotencyBegin::Mismatch
    );
    // Another merchant's key space is separate.
    assert_eq!(
        s.idempotency_begin("m2", "k", "h", 1_001).await.unwrap(),
        IdempotencyBegin::Started
    );
    s.idempotency_complete("m1", "k", 201, b"{\"ok\":1}")
        .await
        .unwrap();
    // Release never forgets a completed answer.
    s.idempotency_release("m1", "k").await.unwrap();
    assert_eq!(
        s.idempotency_begin("m1", "k", "h", 1_002).await.unwrap(),
        IdempotencyBegin::Completed {
            status: 201,
            body: b"{\"ok\":1}".to_vec()
        }
    );
    // Released in-progress keys can be claimed again.
    s.idempotency_release("m2", "k").await.unwrap();
    assert_eq!(
        s.idempotency_begin("m2", "k", "h2", 1_003).await.unwrap(),
        IdempotencyBegin::Started
    );
    // An abandoned claim is taken over after the lease.
    assert_eq!(
        s.idempotency_begin("m2", "k", "h2", 1_004).await.unwrap(),
        IdempotencyBegin::InProgress
    );
    assert_eq!(
        s.idempotency_begin("m2", "k", "h2", 1_003 + IDEMPOTENCY_LEASE_MS + 1)
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_of_concurrent_writes_is_durable() {
    let path = db_path("group");
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
    let path = db_path("restart");
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
async fn outbox_due_failed_give_up_delivered() {
    let s = SqliteStore::open(db_path("outbox")).unwrap();
    let o = s.insert_order(&order("o1")).await.unwrap().into_inner();
    let o = s
        .update_order(&o, &[ev("a"), ev("b"), ev("c")])
        .await
        .unwrap();
    let now = now_ms() + 1;
    let due = s.due_events(now, 10).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(s.due_events(now, 2).await.unwrap().len(), 2);
    let (a, b, c) = (due[0].id, due[1].id, due[2].id);

    s.mark_failed(a, "HTTP 500", now + 1_000, false)
        .await
        .unwrap();
    s.mark_failed(b, "refused", now, true).await.unwrap();
    s.mark_delivered(c, now).await.unwrap();
    assert!(s.due_events(now, 10).await.unwrap().is_empty());
    let later = s.due_events(now + 1_000, 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].id, a);
    assert_eq!(later[0].attempts, 1);
    assert_eq!(later[0].last_error.as_deref(), Some("HTTP 500"));

    let all = all_events(&s).await;
    assert!(all[1].gave_up && all[1].delivered_at.is_none());
    assert_eq!(all[2].delivered_at, Some(now));
    // Paging by id and by merchant.
    let page = s.list_events("m1", 10, Some(a)).await.unwrap();
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [b, c]);
    assert!(s.list_events("m2", 10, None).await.unwrap().is_empty());
    let _ = o;
}

#[tokio::test]
async fn poll_scan_counts_and_payer_totals() {
    let s = SqliteStore::open(db_path("scans")).unwrap();
    let mut ids = Vec::new();
    for (no, state, poll) in [
        ("a", OrderState::Created, Some(100)),
        ("b", OrderState::Pending, Some(50)),
        ("c", OrderState::Pending, Some(500)),
        ("d", OrderState::Pending, None),
        ("e", OrderState::Paid, Some(10)),
        ("f", OrderState::Closed, Some(10)),
    ] {
        let mut o = order(no);
        o.next_poll_at = poll;
        let mut stored = s.insert_order(&o).await.unwrap().into_inner();
        if state != OrderState::Created {
            stored.state = state;
            s.update_order(&stored, &[]).await.unwrap();
        }
        ids.push(no);
    }
    let due = s.orders_to_poll(100, 10).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|o| o.merchant_order_no.as_str())
            .collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert_eq!(s.orders_to_poll(100, 1).await.unwrap().len(), 1);

    let mut counts = s.count_orders_by_state().await.unwrap();
    counts.sort_by_key(|c| c.0.as_str());
    assert_eq!(
        counts,
        vec![
            (OrderState::Closed, 1),
            (OrderState::Created, 1),
            (OrderState::Paid, 1),
            (OrderState::Pending, 3),
        ]
    );
    // Created (a: it may still be accepted), pending (b, c, d) and paid
    // (e) count; closed does not.
    assert_eq!(
        s.paid_total_since("m1", "openid-1", 0).await.unwrap(),
        5_000
    );
    assert_eq!(s.paid_total_since("m1", "openid-1", 51).await.unwrap(), 0);
    assert_eq!(s.paid_total_since("m1", "someone", 0).await.unwrap(), 0);
    assert_eq!(ids.len(), 6);
}

#[tokio::test]
async fn a_capped_insert_counts_and_inserts_in_one_step() {
    let s = Arc::new(SqliteStore::open(db_path("capped")).unwrap());
    let cap = DailyCap {
        payer_openid: "openid-1".into(),
        since: 0,
        max_minor: 3_500,
        counts_minor: 1_000,
    };
    // 10 concurrent orders of 1,000 for one payer under a 3,500 cap.
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (s, cap) = (s.clone(), cap.clone());
            tokio::spawn(async move {
                s.insert_order_capped(&order(&format!("o{i}")), Some(&cap))
                    .await
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Inserted::New(_)) => admitted += 1,
            Err(StoreError::CapExceeded { counted_minor }) => assert_eq!(counted_minor, 3_000),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(admitted, 3);
    // Retrying an existing order is not a new amount.
    assert!(matches!(
        s.insert_order_capped(&order("o0"), Some(&cap)).await,
        Ok(Inserted::Existing(_)) | Err(StoreError::CapExceeded { .. })
    ));
    // A closed order frees its share of the day.
    let mut o = s
        .get_order("m1", "o0")
        .await
        .unwrap()
        .or(s.get_order("m1", "o1").await.unwrap())
        .unwrap();
    o.state = OrderState::Closed;
    s.update_order(&o, &[]).await.unwrap();
    assert!(
        s.insert_order_capped(&order("late"), Some(&cap))
            .await
            .unwrap()
            .is_new()
    );
}

#[tokio::test]
async fn a_key_completes_with_the_order_write_or_not_at_all() {
    let s = SqliteStore::open(db_path("key-with-order")).unwrap();
    let o = s.insert_order(&order("o1")).await.unwrap().into_inner();
    assert_eq!(
        s.idempotency_begin("m1", "k1", "h", 1).await.unwrap(),
        IdempotencyBegin::Started
    );
    let completion = |status| KeyCompletion {
        merchant_id: "m1".into(),
        key: "k1".into(),
        status,
        render: Box::new(|o: &Order| format!("v{}", o.version).into_bytes()),
    };
    // A lost compare-and-set writes neither the order nor the key.
    let mut stale = o.clone();
    stale.version = 99;
    assert!(matches!(
        s.update_order_completing(&stale, &[], Some(completion(201)))
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        s.idempotency_begin("m1", "k1", "h", 2).await.unwrap(),
        IdempotencyBegin::InProgress
    );
    let saved = s
        .update_order_completing(&o, &[], Some(completion(201)))
        .await
        .unwrap();
    assert_eq!(
        s.idempotency_begin("m1", "k1", "h", 3).await.unwrap(),
        IdempotencyBegin::Completed {
            status: 201,
            body: format!("v{}", saved.version).into_bytes()
        }
    );
}

#[tokio::test]
async fn a_mismatch_is_told_once_and_counted_after() {
    let s = SqliteStore::open(db_path("mismatch")).unwrap();
    s.insert_order(&order("o1")).await.unwrap();
    let e = ev("payment.provider_mismatch");
    assert!(s.record_mismatch("m1", "o1", "fp-1", &e).await.unwrap());
    assert!(!s.record_mismatch("m1", "o1", "fp-1", &e).await.unwrap());
    assert!(s.record_mismatch("m1", "o1", "fp-2", &e).await.unwrap());
    let events = s.list_events("m1", 10, None).await.unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|x| x.event_type == "payment.provider_mismatch")
    );
}

#[tokio::test]
async fn pending_refunds_come_up_for_polling_when_due() {
    let s = SqliteStore::open(db_path("refund-poll")).unwrap();
    let o = s.insert_order(&order("o1")).await.unwrap().into_inner();
    let mut r = refund("r1", 100);
    r.next_poll_at = Some(500);
    s.insert_refund(&r, &o, &[]).await.unwrap();
    assert!(s.refunds_to_poll(499, 10).await.unwrap().is_empty());
    let due = s.refunds_to_poll(500, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].next_poll_at, due[0].poll_attempts), (Some(500), 0));
    let mut done = due[0].clone();
    done.state = RefundState::Succeeded;
    done.poll_attempts = 2;
    let saved = s.update_refund(&done, None, &[]).await.unwrap();
    assert_eq!(saved.poll_attempts, 2);
    assert!(s.refunds_to_poll(10_000, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let path = db_path("newer");
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

fn claim(key: &str, hash: &str, now: i64) -> KeyClaim {
    KeyClaim {
        merchant_id: "m1".into(),
        key: key.into(),
        request_hash: hash.into(),
        now,
    }
}

#[tokio::test]
async fn a_key_is_claimed_with_the_order_in_one_commit_or_not_at_all() {
    let s = SqliteStore::open(db_path("claim-with-order")).unwrap();
    let waits = || s.commit_waits().unwrap();
    let before = waits();
    let first = s
        .insert_order_claiming(&order("o1"), None, Some(&claim("k1", "h", 1)))
        .await
        .unwrap();
    assert!(matches!(first, Claimed::Ran(Inserted::New(_))), "{first:?}");
    assert_eq!(waits() - before, 1, "the claim shares the insert's commit");
    // The key is taken: a second request with it writes nothing, whatever
    // order it names.
    assert_eq!(
        s.insert_order_claiming(&order("o2"), None, Some(&claim("k1", "h", 2)))
            .await
            .unwrap(),
        Claimed::Held(IdempotencyBegin::InProgress)
    );
    assert_eq!(
        s.insert_order_claiming(&order("o2"), None, Some(&claim("k1", "other", 2)))
            .await
            .unwrap(),
        Claimed::Held(IdempotencyBegin::Mismatch)
    );
    assert_eq!(s.get_order("m1", "o2").await.unwrap(), None);
    // Completed with the order's update, the key replays.
    let o = first.clone();
    let Claimed::Ran(Inserted::New(o)) = o else {
        unreachable!()
    };
    let completion = KeyCompletion {
        merchant_id: "m1".into(),
        key: "k1".into(),
        status: 201,
        render: Box::new(|o: &Order| format!("v{}", o.version).into_bytes()),
    };
    s.update_order_completing(&o, &[], Some(completion))
        .await
        .unwrap();
    assert_eq!(
        s.insert_order_claiming(&order("o1"), None, Some(&claim("k1", "h", 3)))
            .await
            .unwrap(),
        Claimed::Held(IdempotencyBegin::Completed {
            status: 201,
            body: b"v2".to_vec()
        })
    );
    // A refused insert (the payer's cap) leaves the key unclaimed.
    let cap = DailyCap {
        payer_openid: "openid-1".into(),
        since: 0,
        max_minor: 1_500,
        counts_minor: 1_000,
    };
    assert!(matches!(
        s.insert_order_claiming(&order("o3"), Some(&cap), Some(&claim("k3", "h", 4)))
            .await,
        Err(StoreError::CapExceeded { .. })
    ));
    assert_eq!(
        s.idempotency_begin("m1", "k3", "h", 5).await.unwrap(),
        IdempotencyBegin::Started
    );
}

#[tokio::test]
async fn concurrent_claims_of_one_key_insert_one_order() {
    let s = Arc::new(SqliteStore::open(db_path("claim-race")).unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.insert_order_claiming(&order(&format!("o{i}")), None, Some(&claim("k", "h", 1)))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ran = 0;
    for t in tasks {
        match t.await.unwrap() {
            Claimed::Ran(Inserted::New(_)) => ran += 1,
            Claimed::Held(IdempotencyBegin::InProgress) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ran, 1);
    assert_eq!(
        s.count_orders_by_state().await.unwrap(),
        vec![(OrderState::Created, 1)]
    );
}

#[tokio::test]
async fn settling_a_key_keeps_a_final_answer_and_never_overwrites_one() {
    let s = SqliteStore::open(db_path("settle")).unwrap();
    let before = s.commit_waits().unwrap();
    // Free key, final answer: claimed and completed in one commit.
    assert_eq!(
        s.idempotency_settle(&claim("k1", "h", 1), Some((400, b"bad")))
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(s.commit_waits().unwrap() - before, 1);
    let replay = IdempotencyBegin::Completed {
        status: 400,
        body: b"bad".to_vec(),
    };
    assert_eq!(
        s.idempotency_begin("m1", "k1", "h", 2).await.unwrap(),
        replay
    );
    // A later answer under the same key is not stored: the first replays.
    assert_eq!(
        s.idempotency_settle(&claim("k1", "h", 3), Some((201, b"ok")))
            .await
            .unwrap(),
        replay
    );
    assert_eq!(
        s.idempotency_settle(&claim("k1", "other", 3), Some((201, b"ok")))
            .await
            .unwrap(),
        IdempotencyBegin::Mismatch
    );
    // A "try again" answer leaves a free key free...
    assert_eq!(
        s.idempotency_settle(&claim("k2", "h", 4), None)
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        s.idempotency_begin("m1", "k2", "h", 5).await.unwrap(),
        IdempotencyBegin::Started
    );
    // ...and a key in progress in progress.
    assert_eq!(
        s.idempotency_settle(&claim("k2", "h", 6), None)
            .await
            .unwrap(),
        IdempotencyBegin::InProgress
    );
    assert_eq!(
        s.idempotency_begin("m1", "k2", "h", 7).await.unwrap(),
        IdempotencyBegin::InProgress
    );
}

#[tokio::test]
async fn a_change_and_its_notification_commit_together_or_not_at_all() {
    let s = SqliteStore::open(db_path("noting")).unwrap();
    let o = s.insert_order(&order("o1")).await.unwrap().into_inner();
    let note = |detail: &str| notification("applied", detail);
    // A lost compare-and-set writes neither.
    let mut stale = o.clone();
    stale.version = 99;
    assert!(matches!(
        s.update_order_noting(&stale, &[ev("payment.paid")], &note("lost"))
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(
        s.list_notifications("m1", 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(all_events(&s).await.is_empty());
    let before = s.commit_waits().unwrap();
    let mut paid = o.clone();
    paid.state = OrderState::Paid;
    let saved = s
        .update_order_noting(&paid, &[ev("payment.paid")], &note("won"))
        .await
        .unwrap();
    assert_eq!(s.commit_waits().unwrap() - before, 1);
    assert_eq!(saved.version, o.version + 1);
    let notes = s.list_notifications("m1", 10, None).await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].detail.as_deref(), Some("won"));
    assert_eq!(all_events(&s).await.len(), 1);
}
