//! A round-robin HTTP load balancer in front of several payhost replicas,
//! for the scale-out tests. Each request goes to the next healthy replica:
//! one whose `/readyz` answered 200 at the last check (every
//! [`CHECK_EVERY`]), as load balancers health-check. A replica whose
//! connection is refused (stopped, killed, restarting) is skipped for that
//! request too. A request that reached a replica is never sent again,
//! because it may have been carried out; its failure is the client's
//! answer (502).

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often each replica's `/readyz` is asked.
pub const CHECK_EVERY: Duration = Duration::from_millis(50);

/// Largest request body forwarded (an adapter upload fits).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Hop-by-hop headers: they describe one connection, not the request.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

pub struct Balancer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    checks: tokio::task::JoinHandle<()>,
}

struct Shared {
    /// Base URLs of the replicas (`http://127.0.0.1:port`).
    backends: RwLock<Vec<String>>,
    /// Requests answered by each replica.
    served: Vec<AtomicU64>,
    /// Whether each replica's last `/readyz` answered 200.
    ready: Vec<AtomicBool>,
    next: AtomicUsize,
    client: reqwest::Client,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
        self.checks.abort();
    }
}

impl Balancer {
    /// Listens on a free loopback port in front of `backends`.
    pub async fn start(backends: Vec<String>) -> Balancer {
        let shared = Arc::new(Shared {
            served: backends.iter().map(|_| AtomicU64::new(0)).collect(),
            // Until checked, a replica is tried.
            ready: backends.iter().map(|_| AtomicBool::new(true)).collect(),
            backends: RwLock::new(backends),
            next: AtomicUsize::new(0),
            // A connection per request: one kept idle to a replica that is
            // stopping could be closed under a request already sent, which
            // the balancer must not resend; a new connection is refused
            // before anything is sent, and goes to the next replica.
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let checks = tokio::spawn(health_checks(shared.clone()));
        Balancer {
            addr,
            shared,
            task,
            checks,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Points replica `i` at a new address (it restarted elsewhere).
    pub fn set_backend(&self, i: usize, url: String) {
        self.shared.backends.write().unwrap()[i] = url;
    }

    /// Requests each replica answered so far.
    pub fn served(&self) -> Vec<u64> {
        self.shared
            .served
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }
}

/// Asks every replica's `/readyz` each [`CHECK_EVERY`].
async fn health_checks(shared: Arc<Shared>) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    loop {
        let backends = shared.backends.read().unwrap().clone();
        for (i, url) in backends.iter().enumerate() {
            let ready = client
                .get(format!("{url}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK);
            shared.ready[i].store(ready, Ordering::Relaxed);
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let backends = shared.backends.read().unwrap().clone();
    // The healthy ones in turn; with none healthy, every one.
    let healthy: Vec<usize> = (0..backends.len())
        .filter(|&i| shared.ready[i].load(Ordering::Relaxed))
        .collect();
    let candidates: Vec<usize> = if healthy.is_empty() {
        (0..backends.len()).collect()
    } else {
        healthy
    };
    for _ in 0..candidates.len() {
        let i = candidates[shared.next.fetch_add(1, Ordering::Relaxed) % candidates.len()];
        let mut out = shared
            .client
            .request(parts.method.clone(), format!("{}{path}", backends[i]))
            .body(body.clone());
        for (name, value) in &parts.headers {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                out = out.header(name, value);
            }
        }
        match out.send().await {
            Ok(answer) => {
                shared.served[i].fetch_add(1, Ordering::Relaxed);
                return relay(answer).await;
            }
            // Never reached the replica: the next one may take it.
            Err(e) if e.is_connect() => continue,
            Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        }
    }
    (
        StatusCode::BAD_GATEWAY,
        "no replica accepted the connection",
    )
        .into_response()
}

async fn relay(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response
                .headers_mut()
                .append(HeaderName::from(name), value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend answering its name and the body it got.
    async fn backend(name: &'static str) -> (String, tokio::task::JoinHandle<()>) {
        let app = axum::Router::new().fallback(move |body: Bytes| async move {
            (
                [("x-backend", name)],
                format!("{name}:{}", String::from_utf8_lossy(&body)),
            )
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, task)
    }

    async fn post(client: &reqwest::Client, url: &str, body: &str) -> (u16, String, String) {
        let r = client
            .post(url)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let name = r
            .headers()
            .get("x-backend")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, name, r.text().await.unwrap())
    }

    #[tokio::test]
    async fn requests_go_round_robin_and_skip_a_replica_that_refuses_connections() {
        let (a, _ta) = backend("a").await;
        let (b, tb) = backend("b").await;
        let (c, _tc) = backend("c").await;
        let lb = Balancer::start(vec![a, b, c]).await;
        let client = reqwest::Client::new();
        let url = format!("{}/v1/x?q=1", lb.url());
        let mut names = Vec::new();
        for i in 0..6 {
            let (status, name, text) = post(&client, &url, &format!("body{i}")).await;
            assert_eq!(status, 200);
            assert_eq!(
                text,
                format!("{name}:body{i}"),
                "the body is forwarded intact"
            );
            names.push(name);
        }
        assert_eq!(names, ["a", "b", "c", "a", "b", "c"]);
        assert_eq!(lb.served(), [2, 2, 2]);

        // b stops: its port refuses connections, and no request fails.
        tb.abort();
        let _ = tb.await;
        for i in 0..6 {
            let (status, name, _) = post(&client, &url, &format!("after{i}")).await;
            assert_eq!(status, 200);
            assert_ne!(name, "b");
        }
        assert_eq!(lb.served()[1], 2, "nothing more reached b");
        assert_eq!(lb.served().iter().sum::<u64>(), 12);
    }

    #[tokio::test]
    async fn with_every_replica_down_the_client_gets_502() {
        let lb = Balancer::start(vec!["http://127.0.0.1:9".into()]).await;
        let r = reqwest::get(format!("{}/healthz", lb.url())).await.unwrap();
        assert_eq!(r.status(), 502);
    }
}
