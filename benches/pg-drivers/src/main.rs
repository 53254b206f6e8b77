//! Side-by-side throughput of a create-like transaction on sqlx and on
//! tokio-postgres + deadpool-postgres, against one throwaway cluster, in one
//! run. The transaction is what `insert_order_capped` does: lock the payer's
//! day row, sum, insert the order and its outbox event, commit.
//!
//! `cargo run --release -- [transactions per round] [concurrency]`

use futures_util::future::join_all;
use payhost_pgtest::PgCluster;
use std::time::Instant;

const SCHEMA: &str = "
CREATE TABLE payer_days (payer TEXT NOT NULL, day BIGINT NOT NULL, total BIGINT NOT NULL, PRIMARY KEY (payer, day));
CREATE TABLE orders (merchant_id TEXT NOT NULL, order_no TEXT NOT NULL, payer TEXT NOT NULL, amount_minor BIGINT NOT NULL, state TEXT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (merchant_id, order_no));
CREATE TABLE outbox (id BIGSERIAL PRIMARY KEY, merchant_id TEXT NOT NULL, payload TEXT NOT NULL, due_at BIGINT NOT NULL);
";
const UPSERT_DAY: &str =
    "INSERT INTO payer_days (payer, day, total) VALUES ($1, 1, 0) ON CONFLICT DO NOTHING";
const LOCK_DAY: &str = "SELECT total FROM payer_days WHERE payer = $1 AND day = 1 FOR UPDATE";
const INSERT_ORDER: &str = "INSERT INTO orders (merchant_id, order_no, payer, amount_minor, state, created_at) VALUES ('m1', $1, $2, $3, 'created', 0)";
const ADD_DAY: &str = "UPDATE payer_days SET total = total + $2 WHERE payer = $1 AND day = 1";
const INSERT_EVENT: &str = "INSERT INTO outbox (merchant_id, payload, due_at) VALUES ('m1', $1, 0)";

async fn sqlx_round(pool: &sqlx::PgPool, round: usize, n: usize, conc: usize) -> f64 {
    let start = Instant::now();
    join_all((0..conc).map(|w| async move {
        for i in (w..n).step_by(conc) {
            let no = format!("r{round}-{i}");
            let payer = format!("p{}", i % 64);
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(UPSERT_DAY)
                .bind(&payer)
                .execute(&mut *tx)
                .await
                .unwrap();
            let _: (i64,) = sqlx::query_as(LOCK_DAY)
                .bind(&payer)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            sqlx::query(INSERT_ORDER)
                .bind(&no)
                .bind(&payer)
                .bind(100i64)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(ADD_DAY)
                .bind(&payer)
                .bind(100i64)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(INSERT_EVENT)
                .bind(&no)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }))
    .await;
    n as f64 / start.elapsed().as_secs_f64()
}

async fn tokio_pg_round(
    pool: &deadpool_postgres::Pool,
    round: usize,
    n: usize,
    conc: usize,
) -> f64 {
    let start = Instant::now();
    join_all((0..conc).map(|w| async move {
        for i in (w..n).step_by(conc) {
            let no = format!("r{round}-{i}");
            let payer = format!("p{}", i % 64);
            let mut client = pool.get().await.unwrap();
            let tx = client.transaction().await.unwrap();
            tx.execute(&tx.prepare_cached(UPSERT_DAY).await.unwrap(), &[&payer])
                .await
                .unwrap();
            let row = tx
                .query_one(&tx.prepare_cached(LOCK_DAY).await.unwrap(), &[&payer])
                .await
                .unwrap();
            let _: i64 = row.get(0);
            tx.execute(
                &tx.prepare_cached(INSERT_ORDER).await.unwrap(),
                &[&no, &payer, &100i64],
            )
            .await
            .unwrap();
            tx.execute(
                &tx.prepare_cached(ADD_DAY).await.unwrap(),
                &[&payer, &100i64],
            )
            .await
            .unwrap();
            tx.execute(&tx.prepare_cached(INSERT_EVENT).await.unwrap(), &[&no])
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }))
    .await;
    n as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(2000, |a| a.parse().unwrap());
    let conc: usize = args.next().map_or(8, |a| a.parse().unwrap());
    let cluster = PgCluster::start_or_skip().expect("PostgreSQL is needed");
    let sqlx_url = cluster.create_database("bench_sqlx").unwrap();
    let tpg_url = cluster.create_database("bench_tokio_postgres").unwrap();
    cluster.psql("bench_sqlx", SCHEMA).unwrap();
    cluster.psql("bench_tokio_postgres", SCHEMA).unwrap();

    let sqlx_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(conc as u32)
        .connect(&sqlx_url)
        .await
        .unwrap();
    let cfg: tokio_postgres::Config = tpg_url.parse().unwrap();
    let manager = deadpool_postgres::Manager::new(cfg, tokio_postgres::NoTls);
    let tpg_pool = deadpool_postgres::Pool::builder(manager)
        .max_size(conc)
        .build()
        .unwrap();

    // Alternate the drivers, and which goes first, so machine noise and
    // table growth fall on both alike.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..6 {
        if round % 2 == 0 {
            a.push(sqlx_round(&sqlx_pool, round, n, conc).await);
            b.push(tokio_pg_round(&tpg_pool, round, n, conc).await);
        } else {
            b.push(tokio_pg_round(&tpg_pool, round, n, conc).await);
            a.push(sqlx_round(&sqlx_pool, round, n, conc).await);
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|x, y| x.partial_cmp(y).unwrap());
        v[v.len() / 2]
    };
    let (sa, sb) = (med(&mut a), med(&mut b));
    println!("transactions/s per round, sorted  sqlx: {a:.0?}  tokio-postgres: {b:.0?}");
    println!(
        "median  sqlx: {sa:.0}/s  tokio-postgres+deadpool: {sb:.0}/s  ratio tokio-postgres/sqlx: {:.2}",
        sb / sa
    );
}
