//! Acme Pay: the fictitious provider of the adapter `payhost adapter new`
//! writes (`host/templates/rust/`), simulated so that a fresh scaffold can
//! serve payments before its author has a real provider to talk to.
//!
//! Its protocol is the template's: JSON POSTs of string fields to
//! `/v1/orders`, `/v1/orders/query`, `/v1/orders/close`, `/v1/refunds` and
//! `/v1/refunds/query`; every message signed with lower-case hex
//! HMAC-SHA256 over the fields but `sign`, sorted, `k=v&...`; notifications
//! as signed form POSTs, acknowledged with `OK`. A request whose signature
//! or `merchant_id` is wrong is answered `BAD_SIGNATURE`.

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use payhost_sdk::native;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A message's fields, sorted by name.
pub type Fields = BTreeMap<String, String>;

/// The merchant account the simulator knows.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub merchant_id: String,
    pub key: String,
    /// When set, each order is paid (and each refund succeeds) this long
    /// after it is created, and its notification is sent.
    pub pay_after: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Order {
    amount: String,
    currency: String,
    status: &'static str,
    notify_url: String,
}

#[derive(Debug, Clone)]
struct Refund {
    out_trade_no: String,
    amount: String,
    currency: String,
    status: &'static str,
}

#[derive(Default)]
struct Books {
    orders: HashMap<String, Order>,
    refunds: HashMap<String, Refund>,
    calls: Vec<String>,
}

struct Inner {
    config: SimConfig,
    books: Mutex<Books>,
}

/// A running Acme Pay on loopback.
#[derive(Clone)]
pub struct Simulator {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Simulator {
    /// Starts on `127.0.0.1:0`.
    pub async fn start(config: SimConfig) -> Simulator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the Acme Pay simulator");
        Self::start_on(config, listener)
    }

    /// Starts on a listener of the caller's (`payhost simulator`).
    pub fn start_on(config: SimConfig, listener: tokio::net::TcpListener) -> Simulator {
        let addr = listener.local_addr().expect("listener address");
        let inner = Arc::new(Inner {
            config,
            books: Mutex::default(),
        });
        let app = Router::new()
            .route("/v1/{*call}", axum::routing::post(answer))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Simulator { addr, inner }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The payer pays `no`: it is paid here, and the notification Acme Pay
    /// sends is returned with where it goes (`None`: no such order).
    pub fn pay(&self, no: &str) -> Option<(String, String)> {
        pay(&self.inner, no)
    }

    /// The refund succeeds; its notification and where it goes.
    pub fn settle_refund(&self, refund_no: &str) -> Option<(String, String)> {
        settle_refund(&self.inner, refund_no)
    }

    /// The paths of the calls answered, in order.
    pub fn calls(&self) -> Vec<String> {
        self.inner.books.lock().unwrap().calls.clone()
    }
}

/// POSTs a notification as Acme Pay does: the status and body of the answer.
pub async fn send_notification(url: &str, body: String) -> anyhow::Result<(u16, String)> {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    Ok((r.status().as_u16(), r.text().await?))
}

impl Inner {
    /// Lower-case hex HMAC-SHA256 of every field but `sign`.
    fn sign(&self, fields: &Fields) -> String {
        let text = payhost_sdk::canonical::sorted_pairs(fields, &["sign"]);
        native::hmac_sha256_hex(self.config.key.as_bytes(), &text)
    }

    fn signed(&self, pairs: &[(&str, &str)]) -> Fields {
        let mut fields: Fields = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        fields.insert("merchant_id".into(), self.config.merchant_id.clone());
        let sign = self.sign(&fields);
        fields.insert("sign".into(), sign);
        fields
    }

    fn signed_form(&self, pairs: &[(&str, &str)]) -> String {
        payhost_sdk::form::encode(&self.signed(pairs))
    }
}

fn settle_refund(inner: &Inner, refund_no: &str) -> Option<(String, String)> {
    let mut books = inner.books.lock().unwrap();
    let r = books.refunds.get_mut(refund_no)?;
    r.status = "SUCCESS";
    let r = r.clone();
    let url = books.orders.get(&r.out_trade_no)?.notify_url.clone();
    let body = inner.signed_form(&[
        ("event", "refund"),
        ("out_trade_no", &r.out_trade_no),
        ("out_refund_no", refund_no),
        ("refund_id", &format!("RF-{refund_no}")),
        ("refund_status", r.status),
        ("refund_amount", &r.amount),
        ("currency", &r.currency),
    ]);
    Some((url, body))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn pay(inner: &Inner, no: &str) -> Option<(String, String)> {
    let mut books = inner.books.lock().unwrap();
    let o = books.orders.get_mut(no)?;
    o.status = "PAID";
    let o = o.clone();
    let body = inner.signed_form(&[
        ("event", "payment"),
        ("out_trade_no", no),
        ("trade_no", &format!("T-{no}")),
        ("status", o.status),
        ("amount", &o.amount),
        ("currency", &o.currency),
        ("paid_at", &unix_now().to_string()),
    ]);
    Some((o.notify_url, body))
}

async fn answer(
    State(inner): State<Arc<Inner>>,
    uri: Uri,
    body: axum::body::Bytes,
) -> axum::Json<Fields> {
    let Ok(req) = serde_json::from_slice::<Fields>(&body) else {
        return axum::Json(inner.signed(&[("result", "ERROR"), ("error_code", "BAD_REQUEST")]));
    };
    axum::Json(reply(&inner, uri.path(), &req))
}

fn reply(inner: &Arc<Inner>, path: &str, req: &Fields) -> Fields {
    let refuse = |code: &str| inner.signed(&[("result", "ERROR"), ("error_code", code)]);
    let field = |name: &str| req.get(name).cloned().unwrap_or_default();
    if req.get("sign") != Some(&inner.sign(req)) || field("merchant_id") != inner.config.merchant_id
    {
        return refuse("BAD_SIGNATURE");
    }
    let mut books = inner.books.lock().unwrap();
    books.calls.push(path.to_string());
    let no = field("out_trade_no");
    let trade_no = format!("T-{no}");
    match path {
        "/v1/orders" => {
            if books.orders.contains_key(&no) {
                return refuse("ORDER_EXISTS");
            }
            books.orders.insert(
                no.clone(),
                Order {
                    amount: field("amount"),
                    currency: field("currency"),
                    status: "PENDING",
                    notify_url: field("notify_url"),
                },
            );
            if let Some(after) = inner.config.pay_after {
                let (inner, no) = (inner.clone(), no.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    if let Some((url, body)) = pay(&inner, &no) {
                        let outcome = send_notification(&url, body).await;
                        tracing::info!(order = %no, ?outcome, "Acme Pay notified");
                    }
                });
            }
            let qr = format!("https://qr.acme-pay.example/{trade_no}");
            inner.signed(&[
                ("result", "OK"),
                ("out_trade_no", &no),
                ("trade_no", &trade_no),
                ("qr_code", &qr),
            ])
        }
        "/v1/orders/query" | "/v1/orders/close" => {
            let Some(o) = books.orders.get_mut(&no) else {
                return refuse("ORDER_NOT_FOUND");
            };
            if path.ends_with("close") && o.status == "PENDING" {
                o.status = "CLOSED";
            }
            inner.signed(&[
                ("result", "OK"),
                ("out_trade_no", &no),
                ("trade_no", &trade_no),
                ("status", o.status),
                ("amount", &o.amount),
                ("currency", &o.currency),
            ])
        }
        "/v1/refunds" | "/v1/refunds/query" => {
            let refund_no = field("out_refund_no");
            if path == "/v1/refunds" {
                if books.orders.get(&no).map(|o| o.status) != Some("PAID") {
                    return refuse("ORDER_NOT_PAID");
                }
                if !books.refunds.contains_key(&refund_no) {
                    books.refunds.insert(
                        refund_no.clone(),
                        Refund {
                            out_trade_no: no.clone(),
                            amount: field("refund_amount"),
                            currency: field("currency"),
                            status: "PROCESSING",
                        },
                    );
                    if let Some(after) = inner.config.pay_after {
                        let (inner, refund_no) = (inner.clone(), refund_no.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(after).await;
                            if let Some((url, body)) = settle_refund(&inner, &refund_no) {
                                let outcome = send_notification(&url, body).await;
                                tracing::info!(refund = %refund_no, ?outcome, "Acme Pay notified");
                            }
                        });
                    }
                }
            }
            let Some(r) = books
                .refunds
                .get(&refund_no)
                .filter(|r| r.out_trade_no == no)
            else {
                return refuse("REFUND_NOT_FOUND");
            };
            inner.signed(&[
                ("result", "OK"),
                ("out_trade_no", &no),
                ("out_refund_no", &refund_no),
                ("refund_id", &format!("RF-{refund_no}")),
                ("refund_status", r.status),
                ("refund_amount", &r.amount),
                ("currency", &r.currency),
            ])
        }
        _ => refuse("NOT_FOUND"),
    }
}
