//! The behaviour every [`Store`] must have, one test suite run against
//! each store: SQLite on a fresh file, PostgreSQL on a fresh database of a
//! cluster the suite shares (`test_db`). Each `async fn` here is one test;
//! [`both_stores!`] instantiates it as `on_sqlite::NAME` and
//! `on_postgres::NAME` (which skips only where PostgreSQL cannot be
//! installed outside CI). What only one store has (group commit, file
//! durability, several replicas on one database) is tested beside it.

use super::keys::IDEMPOTENCY_LEASE_MS;
use super::*;
use crate::clock::now_ms;
use serde_json::json;
use std::sync::Arc;

pub(in crate::store) fn order(no: &str) -> Order {
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
pub(in crate::store) fn notification(verdict: &str, detail: &str) -> NotificationRecord {
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

/// A notification of merchant `m1` about no order, received at `received_at`.
pub(in crate::store) fn received(verdict: &str, received_at: i64) -> NotificationRecord {
    NotificationRecord {
        received_at,
        headers: json!([]),
        body: b"<xml/>".to_vec(),
        detail: None,
        merchant_order_no: None,
        received_bytes: 6,
        ..notification(verdict, "")
    }
}

pub(in crate::store) fn refund(no: &str, amount: i64) -> Refund {
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

pub(in crate::store) fn ev(t: &str) -> NewEvent {
    NewEvent {
        event_type: t.into(),
        payload: json!({"t": t}),
    }
}

pub(in crate::store) fn claim(key: &str, hash: &str, now: i64) -> KeyClaim {
    KeyClaim {
        merchant_id: "m1".into(),
        key: key.into(),
        request_hash: hash.into(),
        now,
    }
}

async fn all_events(s: &dyn Store) -> Vec<OutboxEvent> {
    s.list_events("m1", 10_000, None).await.unwrap()
}

/// An order of `merchant` with `n` events; returns the events' ids.
async fn events(s: &dyn Store, merchant: &str, no: &str, n: usize) -> Vec<i64> {
    let mut o = order(no);
    o.merchant_id = merchant.into();
    let o = s.insert_order(&o).await.unwrap().into_inner();
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

/// Each test once per store, named after it: `on_sqlite::NAME` and
/// `on_postgres::NAME`.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let path = crate::store::test_db::sqlite_path(stringify!($name));
                    let store = crate::store::SqliteStore::open(path).unwrap();
                    super::$name(std::sync::Arc::new(store)).await
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = crate::store::test_db::PgDatabase::create(stringify!($name))
                    else {
                        return;
                    };
                    super::$name(std::sync::Arc::new(db.open().await)).await
                }
            )*
        }
    };
}

both_stores!(
    order_round_trip_and_duplicate_insert,
    update_is_compare_and_set_with_atomic_events,
    refunds_insert_update_list,
    concurrent_idempotency_begin_has_one_winner,
    outbox_due_failed_give_up_delivered,
    poll_scan_counts_and_payer_totals,
    a_capped_insert_counts_and_inserts_in_one_step,
    a_key_completes_with_the_order_write_or_not_at_all,
    a_mismatch_is_told_once_and_counted_after,
    pending_refunds_come_up_for_polling_when_due,
    a_key_is_claimed_with_the_order_in_one_commit_or_not_at_all,
    concurrent_claims_of_one_key_insert_one_order,
    settling_a_key_keeps_a_final_answer_and_never_overwrites_one,
    a_change_and_its_notification_commit_together_or_not_at_all,
    prune_deletes_only_what_is_past_its_retention,
    prune_stops_at_the_batch_size,
    due_merchants_undeliverable_and_revived,
    an_unsent_order_is_deleted_only_while_untouched,
    notifications_keep_their_bytes_and_ids_increase,
    payouts_insert_once_update_by_compare_and_set_and_come_up_for_polling,
    payout_limits_count_the_merchants_day_in_the_insert,
    concurrent_payouts_never_pass_the_payees_daily_count,
    contracts_and_deductions_insert_once_and_update_by_compare_and_set,
    deduction_rules_are_checked_in_the_insert,
    concurrent_deductions_never_pass_the_contracts_daily_count,
);

pub(in crate::store) fn payout(no: &str, payee: &str, amount: i64) -> Payout {
    Payout {
        merchant_id: "m1".into(),
        payout_no: no.into(),
        adapter: "wechat-v3".into(),
        adapter_digest: "abc".into(),
        amount_minor: amount,
        currency: "CNY".into(),
        payee_app_id: "wxapp".into(),
        payee_openid: payee.into(),
        real_name_checked: true,
        remark: "prize".into(),
        scene: Some("1000".into()),
        state: PayoutState::Created,
        provider_payout_id: None,
        confirmation: None,
        failure_reason: None,
        provider_state: None,
        metadata: json!({"k": "v"}),
        next_poll_at: Some(100),
        poll_attempts: 0,
        created_at: 50,
        updated_at: 50,
        version: 0,
    }
}

/// Caps loose enough to pass everything.
pub(in crate::store) fn open_caps() -> PayoutCaps {
    PayoutCaps {
        since: 0,
        per_payee_day_minor: i64::MAX,
        per_payee_day_count: i64::MAX,
        per_merchant_day_minor: i64::MAX,
    }
}

async fn payouts_insert_once_update_by_compare_and_set_and_come_up_for_polling(s: Arc<dyn Store>) {
    let p = payout("P1", "o-a", 1000);
    let Inserted::New(stored) = s.insert_payout(&p, &open_caps()).await.unwrap() else {
        panic!("not new")
    };
    assert_eq!(stored.version, 1);
    assert_eq!(
        s.get_payout("m1", "P1").await.unwrap().as_ref(),
        Some(&stored)
    );
    assert_eq!(s.get_payout("m2", "P1").await.unwrap(), None);
    // The same number again is the stored payout, whatever the new one says.
    let mut again = p.clone();
    again.amount_minor = 9;
    assert_eq!(
        s.insert_payout(&again, &open_caps()).await.unwrap(),
        Inserted::Existing(stored.clone())
    );

    let mut next = stored.clone();
    next.state = PayoutState::PendingUserConfirmation;
    next.provider_payout_id = Some("T1".into());
    next.confirmation = Some(json!({"package": "pkg"}));
    let saved = s.update_payout(&next, &[ev("payout.test")]).await.unwrap();
    assert_eq!(saved.version, 2);
    let read = s.get_payout("m1", "P1").await.unwrap().unwrap();
    assert_eq!(read, saved);
    assert_eq!(read.confirmation.unwrap()["package"], "pkg");
    let events = s.list_events("m1", 10, None).await.unwrap();
    assert_eq!(events.last().unwrap().event_type, "payout.test");
    // A stale version, or a write that would change who is paid how much,
    // changes nothing and appends nothing.
    assert!(matches!(
        s.update_payout(&next, &[ev("payout.lost")]).await,
        Err(StoreError::Conflict)
    ));
    let mut other_payee = saved.clone();
    other_payee.payee_openid = "o-b".into();
    assert!(matches!(
        s.update_payout(&other_payee, &[]).await,
        Err(StoreError::Conflict)
    ));
    let mut more = saved.clone();
    more.amount_minor += 1;
    assert!(matches!(
        s.update_payout(&more, &[]).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        s.list_events("m1", 10, None).await.unwrap().len(),
        events.len()
    );

    // Due and not final: polled; final or not yet due: not.
    let mut due = payout("P2", "o-a", 10);
    due.next_poll_at = Some(200);
    s.insert_payout(&due, &open_caps()).await.unwrap();
    let mut done = payout("P3", "o-a", 10);
    done.state = PayoutState::Succeeded;
    s.insert_payout(&done, &open_caps()).await.unwrap();
    let polled: Vec<_> = s
        .payouts_to_poll(150, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.payout_no)
        .collect();
    assert_eq!(polled, ["P1"]);
}

async fn payout_limits_count_the_merchants_day_in_the_insert(s: Arc<dyn Store>) {
    let caps = PayoutCaps {
        since: 1_000,
        per_payee_day_minor: 1_000,
        per_payee_day_count: 2,
        per_merchant_day_minor: 1_500,
    };
    let at = |mut p: Payout, t: i64| {
        p.created_at = t;
        p.updated_at = t;
        p
    };
    let limit = |r: Result<Inserted<Payout>, StoreError>| match r {
        Err(StoreError::PayoutLimit { limit, counted, .. }) => (limit, counted),
        other => panic!("{other:?}"),
    };
    // Yesterday's payout counts for nothing today.
    s.insert_payout(&at(payout("OLD", "o-a", 1_000), 999), &caps)
        .await
        .unwrap();
    s.insert_payout(&at(payout("A1", "o-a", 500), 1_000), &caps)
        .await
        .unwrap();
    // Over the payee's amount; nothing written.
    assert_eq!(
        limit(
            s.insert_payout(&at(payout("A2", "o-a", 501), 1_001), &caps)
                .await
        ),
        ("per_payee_day", 500)
    );
    assert_eq!(s.get_payout("m1", "A2").await.unwrap(), None);
    let a2 = s
        .insert_payout(&at(payout("A2", "o-a", 400), 1_001), &caps)
        .await
        .unwrap()
        .into_inner();
    // A third for the payee passes the count.
    assert_eq!(
        limit(
            s.insert_payout(&at(payout("A3", "o-a", 1), 1_002), &caps)
                .await
        ),
        ("per_payee_day_count", 2)
    );
    // Another payee is held by the merchant's total.
    assert_eq!(
        limit(
            s.insert_payout(&at(payout("B1", "o-b", 601), 1_003), &caps)
                .await
        ),
        ("per_merchant_day", 900)
    );
    // Another currency is another count.
    let mut usd = at(payout("U1", "o-b", 1_000), 1_003);
    usd.currency = "USD".into();
    assert!(s.insert_payout(&usd, &caps).await.unwrap().is_new());
    // A failed payout moved no money: it no longer counts.
    let mut failed = a2.clone();
    failed.state = PayoutState::Failed;
    s.update_payout(&failed, &[]).await.unwrap();
    assert!(
        s.insert_payout(&at(payout("A3", "o-a", 1), 1_004), &caps)
            .await
            .unwrap()
            .is_new()
    );
    assert!(
        s.insert_payout(&at(payout("B1", "o-b", 600), 1_005), &caps)
            .await
            .unwrap()
            .is_new()
    );
}

/// `n` concurrent payouts of 1 to one payee, spread over `stores`, under a
/// daily count of `count`; returns how many were admitted.
pub(in crate::store) async fn concurrent_payouts(
    stores: &[Arc<dyn Store>],
    count: i64,
    n: usize,
) -> usize {
    let caps = PayoutCaps {
        per_payee_day_count: count,
        ..open_caps()
    };
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (s, caps) = (stores[i % stores.len()].clone(), caps.clone());
            let p = payout(&format!("C{i}"), "o-race", 1);
            tokio::spawn(async move { s.insert_payout(&p, &caps).await })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Inserted::New(_)) => admitted += 1,
            Err(StoreError::PayoutLimit { limit, .. }) => {
                assert_eq!(limit, "per_payee_day_count")
            }
            other => panic!("{other:?}"),
        }
    }
    admitted
}

async fn concurrent_payouts_never_pass_the_payees_daily_count(s: Arc<dyn Store>) {
    assert_eq!(concurrent_payouts(&[s], 10, 24).await, 10);
}

async fn an_unsent_order_is_deleted_only_while_untouched(s: Arc<dyn Store>) {
    let mut unsent = order("o1");
    unsent.pay_action = None;
    let o = s.insert_order(&unsent).await.unwrap().into_inner();
    // Another version (someone changed it meanwhile) stays.
    let mut stale = o.clone();
    stale.version = 2;
    assert!(!s.delete_unsent_order(&stale).await.unwrap());
    assert!(s.delete_unsent_order(&o).await.unwrap());
    assert_eq!(s.get_order("m1", "o1").await.unwrap(), None);
    // Its number is free again.
    assert!(s.insert_order(&unsent).await.unwrap().is_new());
    // An order the provider was asked about stays, whatever its version.
    let sent = s.insert_order(&order("o2")).await.unwrap().into_inner();
    assert!(!s.delete_unsent_order(&sent).await.unwrap());
    let mut pending = s.get_order("m1", "o1").await.unwrap().unwrap();
    pending.state = OrderState::Pending;
    let pending = s.update_order(&pending, &[]).await.unwrap();
    assert!(!s.delete_unsent_order(&pending).await.unwrap());
    assert!(s.get_order("m1", "o2").await.unwrap().is_some());
}

async fn notifications_keep_their_bytes_and_ids_increase(s: Arc<dyn Store>) {
    let note = notification("rejected", "bad signature");
    let first = s.record_notification(&note).await.unwrap();
    let second = s.record_notification(&note).await.unwrap();
    assert!(first > 0 && second > first, "{first} {second}");
    let stored = s.list_notifications("m1", 10, None).await.unwrap();
    assert_eq!(stored.len(), 2);
    // The raw bytes are kept exactly (a NUL and a byte no UTF-8 has).
    assert_eq!(
        stored[0],
        NotificationRecord {
            id: first,
            ..note.clone()
        }
    );
    assert_eq!(
        s.list_notifications("m1", 10, Some(first)).await.unwrap()[0].id,
        second
    );
    assert!(
        s.list_notifications("m2", 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    s.ping().await.unwrap();
}

async fn order_round_trip_and_duplicate_insert(s: Arc<dyn Store>) {
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

async fn update_is_compare_and_set_with_atomic_events(s: Arc<dyn Store>) {
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
    let events = all_events(&*s).await;
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
    assert_eq!(all_events(&*s).await.len(), 1);
}

async fn refunds_insert_update_list(s: Arc<dyn Store>) {
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
    assert!(all_events(&*s).await.is_empty());

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
    assert_eq!(all_events(&*s).await.len(), 1);

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

async fn concurrent_idempotency_begin_has_one_winner(s: Arc<dyn Store>) {
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

async fn outbox_due_failed_give_up_delivered(s: Arc<dyn Store>) {
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

    let all = all_events(&*s).await;
    assert!(all[1].gave_up && all[1].delivered_at.is_none());
    assert_eq!(all[2].delivered_at, Some(now));
    // Paging by id and by merchant.
    let page = s.list_events("m1", 10, Some(a)).await.unwrap();
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [b, c]);
    assert!(s.list_events("m2", 10, None).await.unwrap().is_empty());
    let _ = o;
}

async fn poll_scan_counts_and_payer_totals(s: Arc<dyn Store>) {
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
    // A store shared by replicas leased them; past the lease they are due
    // again, and the limit holds.
    let after_lease = 100 + crate::store::postgres::POLL_LEASE_MS;
    assert_eq!(s.orders_to_poll(after_lease, 1).await.unwrap().len(), 1);

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

/// `n` concurrent creates for `cap`'s payer, each of `cap.counts_minor`,
/// spread over `stores`; returns how many were admitted, checking that
/// each refusal counted exactly what the admitted ones add up to.
pub(in crate::store) async fn capped_creates(
    stores: &[Arc<dyn Store>],
    cap: &DailyCap,
    n: usize,
) -> i64 {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (s, cap) = (stores[i % stores.len()].clone(), cap.clone());
            let mut o = order(&format!("o{i}"));
            o.amount_minor = cap.counts_minor;
            tokio::spawn(async move { s.insert_order_capped(&o, Some(&cap)).await })
        })
        .collect();
    let mut admitted = 0;
    let mut refusals = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(Inserted::New(_)) => admitted += 1,
            Err(StoreError::CapExceeded { counted_minor }) => refusals.push(counted_minor),
            other => panic!("{other:?}"),
        }
    }
    let admitted_minor = admitted * cap.counts_minor;
    assert!(
        refusals.iter().all(|&c| c == admitted_minor),
        "{refusals:?}"
    );
    for s in stores {
        let total = s.paid_total_since("m1", &cap.payer_openid, cap.since);
        assert_eq!(total.await.unwrap(), admitted_minor);
    }
    admitted
}

async fn a_capped_insert_counts_and_inserts_in_one_step(s: Arc<dyn Store>) {
    let cap = DailyCap {
        payer_openid: "openid-1".into(),
        since: 0,
        max_minor: 3_500,
        counts_minor: 1_000,
    };
    // 10 concurrent orders of 1,000 for one payer under a 3,500 cap.
    assert_eq!(capped_creates(std::slice::from_ref(&s), &cap, 10).await, 3);
    // Which three were admitted is the store's race to decide.
    let mut admitted = None;
    for i in 0..10 {
        admitted = admitted.or(s.get_order("m1", &format!("o{i}")).await.unwrap());
    }
    let mut o = admitted.unwrap();
    // Retrying an admitted order is not a new amount, even at the cap.
    assert!(matches!(
        s.insert_order_capped(&order(&o.merchant_order_no), Some(&cap))
            .await,
        Ok(Inserted::Existing(_))
    ));
    // A closed order frees its share of the day.
    o.state = OrderState::Closed;
    s.update_order(&o, &[]).await.unwrap();
    assert!(
        s.insert_order_capped(&order("late"), Some(&cap))
            .await
            .unwrap()
            .is_new()
    );
}

async fn a_key_completes_with_the_order_write_or_not_at_all(s: Arc<dyn Store>) {
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

async fn a_mismatch_is_told_once_and_counted_after(s: Arc<dyn Store>) {
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

async fn pending_refunds_come_up_for_polling_when_due(s: Arc<dyn Store>) {
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

async fn a_key_is_claimed_with_the_order_in_one_commit_or_not_at_all(s: Arc<dyn Store>) {
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

async fn concurrent_claims_of_one_key_insert_one_order(s: Arc<dyn Store>) {
    claims_of_one_key_insert_one_order(&[s]).await
}

/// Concurrent creates spread over `stores` (one store, or replicas of one
/// database) sharing one key, each naming its own order: exactly one runs,
/// and every store then counts one order.
pub(in crate::store) async fn claims_of_one_key_insert_one_order(stores: &[Arc<dyn Store>]) {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = stores[i % stores.len()].clone();
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
    for s in stores {
        assert_eq!(
            s.count_orders_by_state().await.unwrap(),
            vec![(OrderState::Created, 1)]
        );
    }
}

async fn settling_a_key_keeps_a_final_answer_and_never_overwrites_one(s: Arc<dyn Store>) {
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

async fn a_change_and_its_notification_commit_together_or_not_at_all(s: Arc<dyn Store>) {
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
    assert!(all_events(&*s).await.is_empty());
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
    assert_eq!(all_events(&*s).await.len(), 1);
}

async fn prune_deletes_only_what_is_past_its_retention(s: Arc<dyn Store>) {
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
        s.record_notification(&received(verdict, at)).await.unwrap();
    }
    let ids = events(&*s, "m1", "o1", 5).await;
    s.mark_delivered(ids[0], 1000).await.unwrap();
    s.mark_delivered(ids[1], 5000).await.unwrap();
    s.mark_failed(ids[2], "gone", 0, true).await.unwrap();
    // ids[3] and ids[4] stay to deliver; another merchant's event is
    // undeliverable.
    events(&*s, "m2", "o2", 1).await;
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

async fn prune_stops_at_the_batch_size(s: Arc<dyn Store>) {
    for _ in 0..3 {
        s.record_notification(&received("unverified", 10))
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

async fn due_merchants_undeliverable_and_revived(s: Arc<dyn Store>) {
    events(&*s, "m1", "o1", 2).await;
    events(&*s, "m2", "o2", 1).await;
    let now = i64::MAX;
    assert_eq!(s.due_merchants(now, 10).await.unwrap(), ["m1", "m2"]);
    assert_eq!(
        s.due_events_of("m2", now, 10, 60_000).await.unwrap().len(),
        1
    );

    assert_eq!(
        s.mark_undeliverable("m1", "no_callback_url", "no URL")
            .await
            .unwrap(),
        2
    );
    assert_eq!(s.due_merchants(now, 10).await.unwrap(), ["m2"]);
    assert!(
        s.due_events_of("m1", now, 10, 60_000)
            .await
            .unwrap()
            .is_empty()
    );
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
    let revived = s.due_events_of("m1", 5, 10, 60_000).await.unwrap();
    assert_eq!(revived.len(), 2);
    assert!(
        revived
            .iter()
            .all(|e| !e.gave_up && e.undeliverable.is_none())
    );
}

pub(in crate::store) fn contract(no: &str, state: ContractState) -> Contract {
    Contract {
        merchant_id: "m1".into(),
        contract_no: no.into(),
        adapter: "wechat-v2".into(),
        adapter_digest: "abc".into(),
        plan_id: "12535".into(),
        payer_app_id: "wxapp".into(),
        payer_openid: None,
        display_name: "Membership".into(),
        state,
        provider_contract_id: None,
        signing: json!({"type": "redirect", "url": "https://example.com/sign"}),
        provider_state: None,
        termination_reason: None,
        pause_reason: None,
        failures_counted_from: 0,
        signed_at: None,
        metadata: json!({"k": "v"}),
        next_poll_at: Some(100),
        poll_attempts: 0,
        created_at: 50,
        updated_at: 50,
        version: 0,
    }
}

pub(in crate::store) fn deduction(no: &str, contract_no: &str, at: i64) -> Deduction {
    Deduction {
        merchant_id: "m1".into(),
        deduction_no: no.into(),
        contract_no: contract_no.into(),
        adapter: "wechat-v2".into(),
        adapter_digest: "abc".into(),
        amount_minor: 1500,
        currency: "CNY".into(),
        description: "December".into(),
        state: DeductionState::Created,
        provider_deduction_id: None,
        provider_state: None,
        failure_reason: None,
        paid_at: None,
        metadata: serde_json::Value::Null,
        next_poll_at: Some(at + 100),
        poll_attempts: 0,
        created_at: at,
        updated_at: at,
        version: 0,
    }
}

pub(in crate::store) fn deduction_caps(count: i64) -> DeductionCaps {
    DeductionCaps {
        since: 0,
        per_contract_day_count: count,
        pause_after_failures: 3,
        retry_interval_ms: 1_000,
    }
}

async fn contracts_and_deductions_insert_once_and_update_by_compare_and_set(s: Arc<dyn Store>) {
    let c = contract("C1", ContractState::PendingSignature);
    let stored = s.insert_contract(&c).await.unwrap().into_inner();
    assert_eq!(stored.version, 1);
    assert_eq!(
        s.get_contract("m1", "C1").await.unwrap().as_ref(),
        Some(&stored)
    );
    assert_eq!(s.get_contract("m2", "C1").await.unwrap(), None);
    // The same number again is the stored contract.
    let mut again = c.clone();
    again.plan_id = "other".into();
    assert!(!s.insert_contract(&again).await.unwrap().is_new());
    // Due and unsigned: polled.
    let polled: Vec<_> = s.contracts_to_poll(150, 10).await.unwrap();
    assert_eq!(polled.len(), 1);
    assert_eq!(polled[0].contract_no, "C1");

    let mut signed = s.get_contract("m1", "C1").await.unwrap().unwrap();
    signed.state = ContractState::Active;
    signed.provider_contract_id = Some("PC1".into());
    signed.next_poll_at = None;
    let saved = s
        .update_contract(&signed, &[ev("contract.signed")])
        .await
        .unwrap();
    assert_eq!(saved.version, signed.version + 1);
    let read = s.get_contract("m1", "C1").await.unwrap().unwrap();
    assert_eq!(read.state, ContractState::Active);
    assert_eq!(read.provider_contract_id.as_deref(), Some("PC1"));
    assert_eq!(read.signing, c.signing);
    assert_eq!(
        s.list_events("m1", 10, None)
            .await
            .unwrap()
            .last()
            .unwrap()
            .event_type,
        "contract.signed"
    );
    // A stale version, or another template: no row matches.
    assert!(matches!(
        s.update_contract(&signed, &[]).await,
        Err(StoreError::Conflict)
    ));
    let mut replanned = read.clone();
    replanned.plan_id = "other".into();
    assert!(matches!(
        s.update_contract(&replanned, &[]).await,
        Err(StoreError::Conflict)
    ));
    assert!(s.contracts_to_poll(i64::MAX, 10).await.unwrap().is_empty());

    let d = deduction("D1", "C1", 60);
    let stored = s
        .insert_deduction(&d, &deduction_caps(10))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.version, 1);
    assert!(
        !s.insert_deduction(&d, &deduction_caps(10))
            .await
            .unwrap()
            .is_new()
    );
    assert_eq!(
        s.deductions_to_poll(160, 10).await.unwrap()[0].deduction_no,
        "D1"
    );
    let mut paid = stored.clone();
    paid.state = DeductionState::Succeeded;
    paid.provider_deduction_id = Some("T1".into());
    paid.next_poll_at = None;
    s.update_deduction(&paid, &[ev("deduction.succeeded")])
        .await
        .unwrap();
    let read = s.get_deduction("m1", "D1").await.unwrap().unwrap();
    assert_eq!(read.state, DeductionState::Succeeded);
    assert_eq!(read.provider_deduction_id.as_deref(), Some("T1"));
    // Another amount under the number: no row matches.
    let mut more = read.clone();
    more.amount_minor += 1;
    assert!(matches!(
        s.update_deduction(&more, &[]).await,
        Err(StoreError::Conflict)
    ));
    assert!(s.deductions_to_poll(i64::MAX, 10).await.unwrap().is_empty());

    // An unsent deduction goes, only at its version and while `created`.
    let unsent = s
        .insert_deduction(&deduction("D2", "C1", 70), &deduction_caps(10))
        .await
        .unwrap()
        .into_inner();
    let stale = Deduction {
        version: unsent.version + 1,
        ..unsent.clone()
    };
    assert!(!s.delete_unsent_deduction(&stale).await.unwrap());
    assert!(s.delete_unsent_deduction(&unsent).await.unwrap());
    assert_eq!(s.get_deduction("m1", "D2").await.unwrap(), None);
    assert!(!s.delete_unsent_deduction(&read).await.unwrap());
    assert!(s.get_deduction("m1", "D1").await.unwrap().is_some());
}

async fn deduction_rules_are_checked_in_the_insert(s: Arc<dyn Store>) {
    let refused = |r: Result<Inserted<Deduction>, StoreError>| match r {
        Err(StoreError::Deduction(why)) => why,
        other => panic!("{other:?}"),
    };
    s.insert_contract(&contract("UNSIGNED", ContractState::PendingSignature))
        .await
        .unwrap();
    assert_eq!(
        refused(
            s.insert_deduction(&deduction("U1", "UNSIGNED", 10), &deduction_caps(10))
                .await
        ),
        DeductionRefusal::NotActive(ContractState::PendingSignature)
    );
    assert_eq!(s.get_deduction("m1", "U1").await.unwrap(), None);

    s.insert_contract(&contract("C1", ContractState::Active))
        .await
        .unwrap();
    // Failure times are the store's clock (the update's time): the
    // deductions here are made at real times too.
    let t0 = now_ms();
    let caps = DeductionCaps {
        since: t0,
        ..deduction_caps(2)
    };
    // Yesterday's deduction does not count today; two today do.
    s.insert_deduction(&deduction("OLD", "C1", t0 - 1), &caps)
        .await
        .unwrap();
    s.insert_deduction(&deduction("A1", "C1", t0), &caps)
        .await
        .unwrap();
    s.insert_deduction(&deduction("A2", "C1", t0 + 1), &caps)
        .await
        .unwrap();
    assert_eq!(
        refused(
            s.insert_deduction(&deduction("A3", "C1", t0 + 2), &caps)
                .await
        ),
        DeductionRefusal::Limit {
            limit: "per_contract_day_count",
            max: 2,
            counted: 2
        }
    );
    // A failed one does not count against the day, but starts a run.
    let mut a2 = s.get_deduction("m1", "A2").await.unwrap().unwrap();
    a2.state = DeductionState::Failed;
    let a2 = s.update_deduction(&a2, &[]).await.unwrap();
    let h = s.deduction_history("m1", "C1", t0, 0).await.unwrap();
    assert_eq!(
        (h.day_count, h.consecutive_failures, h.last_failure_at),
        (1, 1, Some(a2.updated_at))
    );
    // One millisecond too soon after the failure; then on time.
    assert!(matches!(
        refused(
            s.insert_deduction(&deduction("A3", "C1", a2.updated_at + 999), &caps)
                .await
        ),
        DeductionRefusal::TooSoon { retry_after } if retry_after == a2.updated_at + 1_000
    ));
    let on_time = deduction("A3", "C1", a2.updated_at + 1_000);
    assert!(s.insert_deduction(&on_time, &caps).await.unwrap().is_new());
    let mut a3 = s.get_deduction("m1", "A3").await.unwrap().unwrap();
    a3.state = DeductionState::Failed;
    s.update_deduction(&a3, &[]).await.unwrap();
    let caps = DeductionCaps {
        since: t0,
        retry_interval_ms: 0,
        ..deduction_caps(10)
    };
    let f1 = deduction("F1", "C1", now_ms() + 2_000);
    s.insert_deduction(&f1, &caps).await.unwrap();
    let mut failed = s.get_deduction("m1", "F1").await.unwrap().unwrap();
    failed.state = DeductionState::Failed;
    s.update_deduction(&failed, &[]).await.unwrap();
    // Three in a row (A2, A3, F1) after the last success: paused.
    assert!(matches!(
        refused(
            s.insert_deduction(&deduction("F2", "C1", now_ms() + 3_000), &caps)
                .await
        ),
        DeductionRefusal::Limit {
            limit: "pause_after_failures",
            counted: 3,
            ..
        }
    ));
    // Failures before a resume no longer count; a success ends a run.
    let mut c = s.get_contract("m1", "C1").await.unwrap().unwrap();
    c.failures_counted_from = f1.created_at;
    s.update_contract(&c, &[]).await.unwrap();
    let h = s
        .deduction_history("m1", "C1", t0, f1.created_at)
        .await
        .unwrap();
    assert_eq!(h.consecutive_failures, 1);
    let ok = s
        .insert_deduction(&deduction("R1", "C1", now_ms() + 4_000), &caps)
        .await
        .unwrap();
    assert!(ok.is_new());
    let mut paid = ok.into_inner();
    paid.state = DeductionState::Succeeded;
    s.update_deduction(&paid, &[]).await.unwrap();
    let h = s.deduction_history("m1", "C1", t0, 0).await.unwrap();
    assert_eq!(h.consecutive_failures, 0);
}

/// Concurrent deductions of one contract under a daily count of `max`:
/// how many were inserted.
pub(in crate::store) async fn concurrent_deductions(
    stores: &[Arc<dyn Store>],
    max: i64,
    tries: usize,
) -> usize {
    stores[0]
        .insert_contract(&contract("RACE", ContractState::Active))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..tries {
        let s = stores[i % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let d = deduction(&format!("R{i:03}"), "RACE", 10);
            matches!(
                s.insert_deduction(&d, &deduction_caps(max)).await,
                Ok(Inserted::New(_))
            )
        }));
    }
    let mut inserted = 0;
    for t in tasks {
        if t.await.unwrap() {
            inserted += 1;
        }
    }
    inserted
}

async fn concurrent_deductions_never_pass_the_contracts_daily_count(s: Arc<dyn Store>) {
    assert_eq!(concurrent_deductions(&[s], 10, 24).await, 10);
}
