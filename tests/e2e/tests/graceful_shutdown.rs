//! Stopping a server gracefully (`Running::shutdown`, what `payhost serve`
//! does on SIGTERM or Ctrl-C): during `shutdown_delay_ms` `/readyz` says
//! it is going while everything else is served; then new connections are
//! refused, idle ones close, and the request in flight is answered and its
//! order stored.

use payhost_e2e::front::{Front, MERCHANT_KEY, Options, order_body};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Everything the server sends until it closes the connection.
async fn read_to_close(conn: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes within the grace")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_stopping_server_drains_then_answers_what_is_in_flight_and_refuses_the_rest() {
    let front = Front::start(
        "graceful-shutdown",
        Options {
            server_toml: "limits.shutdown_delay_ms = 400\n".into(),
            ..Options::default()
        },
    )
    .await;
    let addr = front.running.addr;
    let client = front.client.clone();
    let base = front.base.clone();
    assert_eq!(
        front
            .as_merchant(reqwest::Method::GET, "/readyz")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A create whose body is half sent: in flight when the stop comes.
    let body = serde_json::to_vec(&order_body("gs-inflight", 1200)).unwrap();
    let mut inflight = TcpStream::connect(addr).await.unwrap();
    inflight
        .write_all(
            format!(
                "POST /v1/payments HTTP/1.1\r\nhost: payhost\r\nauthorization: Bearer {MERCHANT_KEY}\r\n\
                 content-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    inflight.write_all(&body[..body.len() / 2]).await.unwrap();
    // An idle keep-alive connection, after one answered request.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: payhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 512];
    let n = idle.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(50)).await;

    let Front { running, sim, .. } = front;
    let store = running.state.store.clone();
    let shutdown = tokio::spawn(running.shutdown());

    // The delay: still serving, but not ready.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let problem: serde_json::Value = ready.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{problem}"
    );
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // After it: the idle connection is closed without another answer.
    assert_eq!(read_to_close(&mut idle).await, "");
    // New connections are refused (or closed unanswered).
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Ok(mut late) = TcpStream::connect(addr).await {
        let _ = late
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: payhost\r\n\r\n")
            .await;
        assert_eq!(
            read_to_close(&mut late).await,
            "",
            "a new connection was served"
        );
    }
    assert!(
        !shutdown.is_finished(),
        "the request in flight is still open"
    );

    // The rest of the body: the create completes, answered and closed.
    inflight.write_all(&body[body.len() / 2..]).await.unwrap();
    let answer = read_to_close(&mut inflight).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(10), shutdown)
            .await
            .expect("shutdown ends once the request is answered")
            .unwrap(),
        "every request finished within the grace"
    );
    let order = store
        .get_order("shop-1", "gs-inflight")
        .await
        .unwrap()
        .expect("the answered order is stored");
    assert_eq!(order.amount_minor, 1200);
    drop(sim);
}

#[tokio::test]
async fn a_request_outliving_the_grace_is_cut_off_and_shutdown_says_so() {
    let front = Front::start(
        "graceful-shutdown-grace",
        Options {
            server_toml: "limits.shutdown_grace_ms = 300\n".into(),
            ..Options::default()
        },
    )
    .await;
    let mut stuck = TcpStream::connect(front.running.addr).await.unwrap();
    stuck
        .write_all(
            format!(
                "POST /v1/payments HTTP/1.1\r\nhost: payhost\r\nauthorization: Bearer {MERCHANT_KEY}\r\n\
                 content-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let Front { running, .. } = front;
    let finished = tokio::time::timeout(Duration::from_secs(10), running.shutdown())
        .await
        .expect("shutdown ends at the grace");
    assert!(!finished, "the body never came: not finished in time");
}
