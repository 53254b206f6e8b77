//! An outage to order: a front for any simulator that forwards every
//! request to it, until told to fail, then answers 503 to all of them
//! (probes included) until told to recover. Provider failover is tested
//! with it: the failing front plays `api.mch.weixin.qq.com`, the simulator
//! itself plays `api2`, so both reach the same orders, as WeChat's do.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

struct Shared {
    upstream: String,
    client: reqwest::Client,
    failing: AtomicBool,
    forwarded: AtomicU64,
    refused: AtomicU64,
}

/// The running front; stops when dropped.
pub struct Outage {
    base_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Outage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Outage {
    /// A front on `127.0.0.1:0` for `upstream` (a base URL such as a
    /// simulator's), forwarding until [`fail`](Self::fail).
    pub async fn start(upstream: &str) -> anyhow::Result<Outage> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder().no_proxy().build()?,
            failing: AtomicBool::new(false),
            forwarded: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("outage front stopped: {e}");
            }
        });
        Ok(Outage {
            base_url,
            shared,
            task,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// From now on every request is answered 503 and not forwarded.
    pub fn fail(&self) {
        self.shared.failing.store(true, Ordering::SeqCst);
    }

    /// From now on requests are forwarded again.
    pub fn recover(&self) {
        self.shared.failing.store(false, Ordering::SeqCst);
    }

    /// Requests forwarded to the upstream so far.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// Requests answered 503 so far.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if shared.failing.load(Ordering::SeqCst) {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, "outage").into_response();
    }
    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = shared
        .client
        .request(method, format!("{}{path}", shared.upstream));
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.body(body).send().await {
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    response = response.header(name, value);
                }
            }
            let body = answer.bytes().await.unwrap_or_default();
            response
                .body(Body::from(body))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forwards_until_told_to_fail_and_after_it_recovers() {
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_url = format!("http://{}", upstream.local_addr().unwrap());
        let app = axum::Router::new().fallback(|uri: Uri, body: Bytes| async move {
            format!("{} {}", uri, String::from_utf8_lossy(&body))
        });
        tokio::spawn(async move { axum::serve(upstream, app).await.ok() });
        let front = Outage::start(&upstream_url).await.unwrap();
        let client = reqwest::Client::new();
        let post = |path: &str| {
            client
                .post(format!("{}{path}", front.base_url()))
                .body("hello")
                .send()
        };
        let answer = post("/pay/x?y=1").await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), "/pay/x?y=1 hello");
        front.fail();
        assert_eq!(post("/pay/x").await.unwrap().status(), 503);
        front.recover();
        assert_eq!(post("/").await.unwrap().status(), 200);
        assert_eq!((front.forwarded(), front.refused()), (2, 1));
    }
}
