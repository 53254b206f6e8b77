//! payhost on the PostgreSQL store end to end: the same payment as on
//! SQLite (create, paid by notification, partly refunded, read back), with
//! every row in a database of a throwaway cluster (tests/pgtest). Skips
//! only where PostgreSQL cannot be installed outside CI.

use payhost_e2e::front::{Front, Options};
use payhost_pgtest::PgCluster;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_payment_on_postgresql_is_created_paid_refunded_and_read_back() {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    let url = cluster.create_database("payhost").unwrap();
    let f = Front::start(
        "postgres-store",
        Options {
            store_url: Some(url),
            ..Options::default()
        },
    )
    .await;

    let r = f.create("PG-0001", 1999).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let answers = f.sim.notify("PG-0001", Default::default()).await.unwrap();
    assert!(answers[0].acknowledged(), "{answers:?}");
    assert_eq!(f.get_json("/v1/payments/PG-0001").await["state"], "paid");

    let r = f
        .as_merchant(Method::POST, "/v1/payments/PG-0001/refunds")
        .json(&json!({ "refund_no": "PG-0001-R1", "amount": 500 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let answers = f
        .sim
        .notify_refund("PG-0001-R1", Default::default())
        .await
        .unwrap();
    assert!(answers[0].acknowledged(), "{answers:?}");

    let p = f.get_json("/v1/payments/PG-0001").await;
    assert_eq!(
        (p["state"].as_str(), p["refunded_amount"].as_i64()),
        (Some("partially_refunded"), Some(500))
    );
    let refund = f.get_json("/v1/payments/PG-0001/refunds/PG-0001-R1").await;
    assert_eq!(refund["state"], "succeeded");

    // The state is PostgreSQL's, not a SQLite file's.
    assert!(!f.data_dir.join("payhost.db").exists());
    let stored = cluster
        .psql(
            "payhost",
            "SELECT o.state || ' ' || o.refunded_minor || ' ' || r.state
             FROM orders o JOIN refunds r USING (merchant_id, merchant_order_no)
             WHERE o.merchant_order_no = 'PG-0001'",
        )
        .unwrap();
    assert_eq!(stored, "partially_refunded 500 succeeded");
    let notes = cluster
        .psql(
            "payhost",
            "SELECT count(*) FROM notifications WHERE verdict = 'applied'",
        )
        .unwrap();
    assert_eq!(notes, "2", "the payment's and the refund's notification");
}
