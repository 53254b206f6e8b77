//! The harness against a real PostgreSQL: it starts, serves SQL over the
//! socket and loopback TCP, keeps production durability, and leaves nothing
//! behind when dropped (also on panic).

use payhost_pgtest::PgCluster;
use std::net::TcpStream;

#[test]
fn a_cluster_serves_sql_with_production_durability_and_is_gone_after_drop() {
    let Some(cluster) = PgCluster::start_or_skip() else {
        return;
    };
    assert_eq!(cluster.psql("postgres", "SELECT 1 + 1").unwrap(), "2");
    for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
        assert_eq!(
            cluster
                .psql("postgres", &format!("SHOW {setting}"))
                .unwrap(),
            "on",
            "{setting}"
        );
    }
    assert_eq!(
        cluster.psql("postgres", "SHOW listen_addresses").unwrap(),
        "127.0.0.1"
    );
    let url = cluster.create_database("suite_one").unwrap();
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/suite_one", cluster.port())
    );
    cluster
        .psql(
            "suite_one",
            "CREATE TABLE t (n int); INSERT INTO t VALUES (7)",
        )
        .unwrap();
    assert_eq!(cluster.psql("suite_one", "SELECT n FROM t").unwrap(), "7");
    assert!(cluster.psql("suite_one", "SELECT * FROM missing").is_err());

    let (dir, port) = (cluster.dir().to_path_buf(), cluster.port());
    TcpStream::connect(("127.0.0.1", port)).expect("server listens on loopback");
    drop(cluster);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server still listening after drop"
    );
}

#[test]
fn a_panicking_test_still_stops_and_removes_its_cluster() {
    let Some(probe) = PgCluster::start_or_skip() else {
        return;
    };
    drop(probe);
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let cluster = PgCluster::start_or_skip().unwrap();
        *seen.lock().unwrap() = Some((cluster.dir().to_path_buf(), cluster.port()));
        panic!("test failed mid-way");
    }));
    assert!(result.is_err());
    let (dir, port) = seen.lock().unwrap().take().unwrap();
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
