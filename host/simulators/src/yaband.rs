//! A Yaband Pay simulator (providers.md §5): the one endpoint
//! `POST /Payments`, whose envelope's `method` selects the call --
//! mini-program, URL (`v3.CreatePayments`), native QR and card orders,
//! `v3.QueryOrder`, `v3.CreateRefund`, `v3.QueryRefundOrder`.
//!
//! ```ignore
//! let sim = Simulator::start(SimConfig::new("016683", "secret")).await;
//! // point the adapter's `base_url` at sim.base_url(), create an order, then:
//! sim.pay("ORDER-1")?;
//! let (status, body) = sim.notify_payment("ORDER-1", NotifyForgery::None).await?;
//! ```
//!
//! Checked as strictly as the documentation describes Yaband: the
//! envelope's fields and nothing else, the `user`, `time` within a window,
//! the lowercase HMAC-SHA256 `sign` over the sorted pairs (§5.4), the
//! field names of each method (an unknown or missing one is refused), and
//! the ids: query and refund take Yaband's `trade_id` only -- the merchant's
//! `order_id` is refused, as the real one refuses it -- and refund query
//! takes `refund_id` only. Refunds must be in the order's currency (§5.6).
//! Refusals answer HTTP 200 `{"status": false, "code", "message"}`; every
//! success answer is signed over its `data`.
//!
//! Seeded faults ([`SimConfig::faults`]) hang, answer 503 or a refusal
//! with code `500`. Notifications are sent on request, once or more, late
//! (an older state after a newer one, or after a wait), tampered, signed
//! with another key, or signed but contradicting the order
//! ([`NotifyForgery`], [`NotifyOptions`]).
//!
//! Not simulated: the list calls, the payer's pages behind the returned
//! URLs, pre-authorisation capture, the one-year refund window.

use crate::faults::{ApiFault, FaultConfig, FaultCounts, Faults, MAX_NOTIFY_DELAY};
use anyhow::{Context, anyhow, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use payhost_sdk::native::{DigestAlgorithm, KeyEncoding, Part, SecretTable};
use payhost_sdk::types::Money;
use payhost_sdk::{encoding, money};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The endpoint's path (§5.1).
pub const PATH: &str = "/Payments";
/// Currencies the simulated account takes (§5.7).
pub const CURRENCIES: &[&str] = &["EUR", "CNY", "GBP", "CHF", "DKK", "SEK"];
/// §5.6: fewer than 30 refunds per order.
const MAX_REFUNDS: usize = 29;

/// The one account the simulator knows.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The cashier UID (`user`).
    pub user: String,
    pub secret_key: String,
    /// Mini-program AppIDs registered with Yaband (§5.2); empty: any.
    pub sub_app_ids: Vec<String>,
    /// Empty values left out of `stringA` (the docs' example); `false`:
    /// signed too (the provider's PHP library).
    pub skip_empty: bool,
    /// How far a request's `time` may be from the simulator's clock;
    /// `None` for tests that run the adapter at a fixed clock.
    pub time_window_secs: Option<i64>,
    pub faults: FaultConfig,
}

impl SimConfig {
    pub fn new(user: &str, secret_key: &str) -> Self {
        SimConfig {
            user: user.into(),
            secret_key: secret_key.into(),
            sub_app_ids: Vec::new(),
            skip_empty: true,
            time_window_secs: Some(300),
            faults: FaultConfig::none(),
        }
    }
}

#[derive(Debug, Clone)]
struct Order {
    order_id: String,
    trade_id: String,
    method: String,
    sub_pay_method: String,
    amount: Money,
    description: String,
    notify_url: String,
    state: String,
    transaction_id: Option<String>,
    paid_time: Option<i64>,
    created_at: i64,
}

#[derive(Debug, Clone)]
struct Refund {
    refund_id: String,
    m_refund_id: String,
    trade_id: String,
    amount: Money,
    state: String,
    notify_url: String,
}

#[derive(Default)]
struct Book {
    /// By Yaband's `trade_id`.
    orders: BTreeMap<String, Order>,
    /// By Yaband's `refund_id`.
    refunds: BTreeMap<String, Refund>,
    /// Calls per `method` (refused ones included).
    counts: BTreeMap<String, u64>,
    /// Why calls were refused, oldest first.
    refusals: Vec<String>,
    next_id: u64,
}

impl Book {
    fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn by_order_id(&self, order_id: &str) -> Option<&Order> {
        self.orders.values().find(|o| o.order_id == order_id)
    }

    fn by_m_refund_id(&self, m_refund_id: &str) -> Option<&Refund> {
        self.refunds.values().find(|r| r.m_refund_id == m_refund_id)
    }
}

struct Shared {
    config: SimConfig,
    keys: SecretTable,
    key: u32,
    book: Mutex<Book>,
    faults: Mutex<Faults>,
}

/// A refusal: the `code` and `message` of a `status: false` answer.
type Refusal = (&'static str, String);

fn refuse<T>(code: &'static str, message: impl Into<String>) -> Result<T, Refusal> {
    Err((code, message.into()))
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `stringA` of `pairs` (§5.4): sorted by name, `name=value` joined by
    /// `&`, values raw, nested objects' members merged, `sign` left out.
    fn string_a(&self, pairs: &mut Vec<(String, String)>) -> String {
        pairs.retain(|(k, v)| k != "sign" && !(self.config.skip_empty && v.is_empty()));
        pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    fn hmac(&self, key: u32, text: &str) -> String {
        let mac = self
            .keys
            .hmac(
                DigestAlgorithm::Sha256,
                key,
                KeyEncoding::Raw,
                &[Part::Text(text)],
            )
            .expect("HMAC with any key");
        encoding::hex_lower(&mac)
    }

    fn sign_data(&self, data: &Map<String, Value>) -> String {
        let mut pairs = Vec::new();
        flatten(data, &mut pairs);
        self.hmac(self.key, &self.string_a(&mut pairs))
    }

    /// A signed success answer.
    fn success(&self, data: Value) -> Value {
        let sign = data
            .as_object()
            .map(|d| self.sign_data(d))
            .unwrap_or_default();
        json!({"status": true, "code": "200", "data": data, "message": "", "sign": sign})
    }

    fn transaction_info(&self, o: &Order) -> Value {
        let mut t = json!({
            "trade_id": o.trade_id, "order_id": o.order_id, "merchant_name": "Simulated shop",
            "pay_method": "online", "sub_pay_method": o.sub_pay_method,
            "amount": decimal(&o.amount), "currency": o.amount.currency,
            "description": o.description, "created_at": o.created_at.to_string(),
            "notify_url": o.notify_url, "state": o.state,
        });
        if let Some(tx) = &o.transaction_id {
            t["transaction_id"] = tx.clone().into();
        }
        t
    }

    fn refund_json(&self, r: &Refund, o: &Order) -> Value {
        json!({
            "refund_id": r.refund_id, "m_refund_id": r.m_refund_id, "trade_id": r.trade_id,
            "order_id": o.order_id, "refund_amount": decimal(&r.amount),
            "refund_currency": r.amount.currency, "state": r.state,
        })
    }
}

/// A data object's pairs, nested objects' members merged under their own
/// names (the adapter's default `nested_objects = flatten`).
fn flatten(data: &Map<String, Value>, out: &mut Vec<(String, String)>) {
    for (k, v) in data {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            Value::Object(inner) => {
                flatten(inner, out);
                continue;
            }
            other => other.to_string(),
        };
        out.push((k.clone(), text));
    }
}

fn decimal(m: &Money) -> String {
    money::to_decimal(m).expect("a known currency")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How a notification is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NotifyForgery {
    /// As Yaband sends it.
    #[default]
    None,
    /// The amount changed after signing.
    Tampered,
    /// Signed with a key that is not the merchant's.
    WrongKey,
    /// Correctly signed, one minor unit more than the order.
    WrongAmount,
    /// Correctly signed, in another currency than the order's.
    WrongCurrency,
    /// Correctly signed, for an order Yaband and payhost never had.
    UnknownOrder,
}

/// How many copies of a notification, when, and claiming which state.
#[derive(Debug, Clone, Default)]
pub struct NotifyOptions {
    pub forgery: NotifyForgery,
    /// Copies sent one after the other (0 counts as 1).
    pub copies: u32,
    /// A wait before the first copy, capped at [`MAX_NOTIFY_DELAY`].
    pub delay: Duration,
    /// The `state` to claim instead of the order's own (a late
    /// notification of an earlier state: `"pending"` after `"paid"`).
    pub state: Option<String>,
}

pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    client: reqwest::Client,
}

impl Simulator {
    pub async fn start(config: SimConfig) -> Simulator {
        let mut keys = SecretTable::new();
        let key = keys.insert(config.secret_key.as_bytes().to_vec());
        let faults = Mutex::new(Faults::new(config.faults.clone()));
        let shared = Arc::new(Shared {
            config,
            keys,
            key,
            book: Mutex::new(Book::default()),
            faults,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Simulator {
            addr,
            shared,
            task,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
        }
    }

    /// The adapter's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls seen of a `method` (`v3.QueryOrder`, ...), refused ones included.
    pub fn count(&self, method: &str) -> u64 {
        self.shared.book().counts.get(method).copied().unwrap_or(0)
    }

    /// Why calls were refused, oldest first.
    pub fn refusals(&self) -> Vec<String> {
        self.shared.book().refusals.clone()
    }

    /// Yaband's `trade_id` of the merchant's order.
    pub fn trade_id(&self, order_id: &str) -> Option<String> {
        self.shared
            .book()
            .by_order_id(order_id)
            .map(|o| o.trade_id.clone())
    }

    /// The order's state word (`pending`, `paid`, ...).
    pub fn state(&self, order_id: &str) -> Option<String> {
        self.shared
            .book()
            .by_order_id(order_id)
            .map(|o| o.state.clone())
    }

    /// The refund's `refund_id` and state, by the merchant's refund number.
    pub fn refund(&self, m_refund_id: &str) -> Option<(String, String)> {
        self.shared
            .book()
            .by_m_refund_id(m_refund_id)
            .map(|r| (r.refund_id.clone(), r.state.clone()))
    }

    pub fn fault_counts(&self) -> FaultCounts {
        self.shared.faults().counts()
    }

    /// Replaces the faults from now on (fresh seed and tallies).
    pub fn set_faults(&self, config: FaultConfig) {
        *self.shared.faults() = Faults::new(config);
    }

    /// The payer pays: a pending order becomes `paid`, with a WeChat
    /// transaction id when WeChat carried it.
    pub fn pay(&self, order_id: &str) -> anyhow::Result<()> {
        let mut book = self.shared.book();
        let n = book.next();
        let o = order_mut(&mut book, order_id)?;
        if o.state != "pending" {
            bail!("order {order_id} is {}", o.state);
        }
        o.state = "paid".into();
        o.paid_time = Some(now());
        if o.sub_pay_method == "WeChat Pay" {
            o.transaction_id = Some(format!("42000{:023}", n));
        }
        Ok(())
    }

    /// Puts the order in any state word (`verify`, `declined`, `expired`, ...).
    pub fn set_state(&self, order_id: &str, state: &str) -> anyhow::Result<()> {
        order_mut(&mut self.shared.book(), order_id)?.state = state.into();
        Ok(())
    }

    /// Settles a refund (by the merchant's refund number): `refunded`, or
    /// another state word.
    pub fn settle_refund(&self, m_refund_id: &str, state: &str) -> anyhow::Result<()> {
        let mut book = self.shared.book();
        let id = book
            .by_m_refund_id(m_refund_id)
            .map(|r| r.refund_id.clone())
            .ok_or_else(|| anyhow!("no refund {m_refund_id}"))?;
        let r = book.refunds.get_mut(&id).context("refund")?;
        r.state = state.into();
        let trade_id = r.trade_id.clone();
        let refunded: u64 = book
            .refunds
            .values()
            .filter(|r| r.trade_id == trade_id && r.state == "refunded")
            .map(|r| r.amount.minor)
            .sum();
        if let Some(o) = book.orders.get_mut(&trade_id)
            && refunded >= o.amount.minor
        {
            o.state = "refunded".into();
        }
        Ok(())
    }

    /// Sends the order's payment notification once, as Yaband does;
    /// answers the receiver's status and body.
    pub async fn notify_payment(
        &self,
        order_id: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let options = NotifyOptions {
            forgery,
            ..NotifyOptions::default()
        };
        first(self.notify_payment_with(order_id, options).await?)
    }

    /// Sends the order's payment notification as `options` say; answers
    /// every copy's status and body.
    pub async fn notify_payment_with(
        &self,
        order_id: &str,
        options: NotifyOptions,
    ) -> anyhow::Result<Vec<(u16, String)>> {
        let (url, mut data) = {
            let book = self.shared.book();
            let o = book
                .by_order_id(order_id)
                .ok_or_else(|| anyhow!("no order {order_id}"))?;
            let mut data = self.shared.transaction_info(o);
            data["type"] = "payment".into();
            data["user"] = self.shared.config.user.clone().into();
            data["createDate"] = o.created_at.to_string().into();
            if let Some(t) = o.paid_time {
                data["paid_time"] = t.to_string().into();
            }
            if let Some(state) = &options.state {
                data["state"] = state.clone().into();
            }
            (o.notify_url.clone(), data)
        };
        if let Some(obj) = data.as_object_mut() {
            obj.remove("notify_url");
        }
        self.send(&url, data, &options).await
    }

    /// Sends the refund's notification (by the merchant's refund number).
    pub async fn notify_refund(
        &self,
        m_refund_id: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let (url, data) = {
            let book = self.shared.book();
            let r = book
                .by_m_refund_id(m_refund_id)
                .ok_or_else(|| anyhow!("no refund {m_refund_id}"))?;
            let o = book
                .orders
                .get(&r.trade_id)
                .context("refund without order")?;
            let mut data = self.shared.refund_json(r, o);
            data["type"] = "refund".into();
            data["user"] = self.shared.config.user.clone().into();
            data["amount"] = decimal(&o.amount).into();
            data["currency"] = o.amount.currency.clone().into();
            (r.notify_url.clone(), data)
        };
        let options = NotifyOptions {
            forgery,
            ..NotifyOptions::default()
        };
        first(self.send(&url, data, &options).await?)
    }

    async fn send(
        &self,
        url: &str,
        mut data: Value,
        options: &NotifyOptions,
    ) -> anyhow::Result<Vec<(u16, String)>> {
        let (amount_key, currency_key) = if data["type"] == "refund" {
            ("refund_amount", "refund_currency")
        } else {
            ("amount", "currency")
        };
        let currency = data[currency_key].as_str().unwrap_or("EUR").to_string();
        match options.forgery {
            NotifyForgery::WrongAmount => {
                let m = money::from_decimal(data[amount_key].as_str().unwrap_or("0"), &currency)
                    .map_err(|e| anyhow!("{e}"))?;
                data[amount_key] = decimal(&Money {
                    minor: m.minor + 1,
                    currency: currency.clone(),
                })
                .into();
            }
            NotifyForgery::WrongCurrency => {
                data[currency_key] = if currency == "EUR" { "CNY" } else { "EUR" }.into();
            }
            NotifyForgery::UnknownOrder => {
                let n = self.shared.book().next();
                data["order_id"] = format!("UNKNOWN{n:06}").into();
                data["trade_id"] = uuid_like(n).into();
            }
            _ => {}
        }
        let object = data.as_object().context("notification data")?;
        let sign = if options.forgery == NotifyForgery::WrongKey {
            let mut keys = SecretTable::new();
            let other = keys.insert(b"not-the-merchant-key".to_vec());
            let mut pairs = Vec::new();
            flatten(object, &mut pairs);
            let text = self.shared.string_a(&mut pairs);
            let mac = keys
                .hmac(
                    DigestAlgorithm::Sha256,
                    other,
                    KeyEncoding::Raw,
                    &[Part::Text(&text)],
                )
                .expect("HMAC");
            encoding::hex_lower(&mac)
        } else {
            self.shared.sign_data(object)
        };
        if options.forgery == NotifyForgery::Tampered {
            data[amount_key] = "0.01".into();
        }
        let body = json!({"sign": sign, "data": data}).to_string();
        tokio::time::sleep(options.delay.min(MAX_NOTIFY_DELAY)).await;
        let mut answers = Vec::new();
        for _ in 0..options.copies.max(1) {
            let resp = self
                .client
                .post(url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .context("posting the notification")?;
            let status = resp.status().as_u16();
            answers.push((status, resp.text().await.unwrap_or_default()));
        }
        Ok(answers)
    }
}

fn first(answers: Vec<(u16, String)>) -> anyhow::Result<(u16, String)> {
    answers.into_iter().next().context("no answer")
}

fn order_mut<'b>(book: &'b mut Book, order_id: &str) -> anyhow::Result<&'b mut Order> {
    book.orders
        .values_mut()
        .find(|o| o.order_id == order_id)
        .ok_or_else(|| anyhow!("no order {order_id}"))
}

/// A UUID-shaped `trade_id`, as Yaband's look.
fn uuid_like(n: u64) -> String {
    let h = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xffff,
        n & 0xffff,
        n
    )
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    AxState(sim): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    if method != Method::POST || uri.path() != PATH {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    let fault = sim.faults().api_call();
    let answer = match fault {
        ApiFault::None => sim.answer(&body),
        ApiFault::Http5xx => {
            return (StatusCode::SERVICE_UNAVAILABLE, "<html>503</html>").into_response();
        }
        ApiFault::SystemError => {
            json!({"status": false, "code": "500", "data": {}, "message": "system error"})
        }
        // Carried out now; the answer arrives after the caller gave up.
        ApiFault::Timeout { applied: true } => {
            let answer = sim.answer(&body);
            let hang = sim.faults().hang();
            tokio::time::sleep(hang).await;
            answer
        }
        ApiFault::Timeout { applied: false } => {
            let hang = sim.faults().hang();
            tokio::time::sleep(hang).await;
            return (StatusCode::GATEWAY_TIMEOUT, "<html>504</html>").into_response();
        }
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

/// The fields each method takes: required, then optional (§5.2).
fn fields_of(method: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match method {
        "v3.CreatePaymentsWechatMiniPay" => (
            &[
                "pay_method",
                "sub_pay_method",
                "order_id",
                "amount",
                "currency",
                "description",
                "notify_url",
                "sub_app_id",
                "sub_open_id",
            ],
            &["demo", "timeout"],
        ),
        "v3.CreatePayments" => (
            &[
                "pay_method",
                "sub_pay_method",
                "order_id",
                "amount",
                "currency",
                "description",
                "notify_url",
                "redirect_url",
            ],
            &["demo", "timeout", "iDeal_email", "post_email"],
        ),
        "v3.CreateWechatNativePay" => (
            &[
                "url_type",
                "order_id",
                "amount",
                "currency",
                "description",
                "notify_url",
            ],
            &["timeout", "redirect_url"],
        ),
        "v3.CreateCardPayments" => (
            &[
                "operate",
                "3ds_initiate",
                "request_id",
                "order_id",
                "amount",
                "currency",
                "description",
                "notify_url",
                "redirect_url",
            ],
            &["pay_method", "timeout", "demo"],
        ),
        "v3.QueryOrder" => (&["trade_id"], &[]),
        "v3.CreateRefund" => (
            &["trade_id", "refund_amount", "refund_currency", "notify_url"],
            &["m_refund_id", "refund_description"],
        ),
        "v3.QueryRefundOrder" => (&["refund_id"], &[]),
        _ => return None,
    })
}

impl Shared {
    /// The answer to one call: signed data, or a refusal (recorded).
    fn answer(&self, body: &[u8]) -> Value {
        match self.serve(body) {
            Ok(data) => self.success(data),
            Err((code, message)) => {
                self.book().refusals.push(format!("{code}: {message}"));
                json!({"status": false, "code": code, "data": {}, "message": message})
            }
        }
    }

    fn serve(&self, body: &[u8]) -> Result<Value, Refusal> {
        let Ok(Value::Object(envelope)) = serde_json::from_slice::<Value>(body) else {
            return refuse("400", "the body is not a JSON object");
        };
        if let Some(k) = envelope
            .keys()
            .find(|k| !["user", "sign", "method", "time", "data"].contains(&k.as_str()))
        {
            return refuse("400", format!("unknown envelope field `{k}`"));
        }
        let text = |k: &str| envelope.get(k).and_then(Value::as_str);
        let method = text("method").unwrap_or_default().to_string();
        *self.book().counts.entry(method.clone()).or_default() += 1;
        let (Some(user), Some(sign), Some(time), Some(Value::Object(data))) = (
            text("user"),
            text("sign"),
            envelope.get("time").and_then(Value::as_i64),
            envelope.get("data"),
        ) else {
            return refuse(
                "400",
                "user, sign, method, time (a number) and data (an object) are required",
            );
        };
        if user != self.config.user {
            return refuse("401", format!("user `{user}` does not exist"));
        }
        if let Some(window) = self.config.time_window_secs
            && (time - now()).abs() > window
        {
            return refuse("401", "time is outside the window");
        }
        let mut pairs = vec![
            ("user".to_string(), user.to_string()),
            ("method".to_string(), method.clone()),
            ("time".to_string(), time.to_string()),
        ];
        flatten(data, &mut pairs);
        let expected = self.hmac(self.key, &self.string_a(&mut pairs));
        if sign != expected {
            return refuse("401", "sign error");
        }
        let Some((required, optional)) = fields_of(&method) else {
            return refuse("400", format!("method `{method}` does not exist"));
        };
        if let Some(k) = data
            .keys()
            .find(|k| !required.contains(&k.as_str()) && !optional.contains(&k.as_str()))
        {
            return refuse("400", format!("{method}: unknown field `{k}`"));
        }
        let mut fields = BTreeMap::new();
        for (k, v) in data {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return refuse("400", format!("{method}: `{k}` must be text")),
            };
            fields.insert(k.as_str(), v);
        }
        if let Some(k) = required
            .iter()
            .find(|k| fields.get(*k).is_none_or(|v| v.is_empty()))
        {
            return refuse("400", format!("{method}: `{k}` is required"));
        }
        let f = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
        match method.as_str() {
            "v3.QueryOrder" => self.query(f("trade_id")),
            "v3.CreateRefund" => self.create_refund(&fields),
            "v3.QueryRefundOrder" => {
                let book = self.book();
                let r = book.refunds.get(f("refund_id")).ok_or_else(|| {
                    (
                        "404",
                        format!("refund_id `{}` does not exist", f("refund_id")),
                    )
                })?;
                let o = book
                    .orders
                    .get(&r.trade_id)
                    .ok_or(("500", "lost order".to_string()))?;
                Ok(self.refund_json(r, o))
            }
            _ => self.create(&method, &fields),
        }
    }

    fn create(&self, method: &str, fields: &BTreeMap<&str, String>) -> Result<Value, Refusal> {
        let f = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
        let currency = f("currency");
        if !CURRENCIES.contains(&currency) {
            return refuse("400", format!("currency `{currency}` is not supported"));
        }
        let amount = money::from_decimal(f("amount"), currency)
            .map_err(|e| ("400", format!("amount: {e}")))?;
        if amount.minor == 0 {
            return refuse("400", "amount must be positive");
        }
        if let Some(t) = fields.get("timeout") {
            match t.parse::<u32>() {
                Ok(0..=1440) => {}
                _ => return refuse("400", "timeout must be 0 to 1440 minutes"),
            }
        }
        let sub_pay_method = match method {
            "v3.CreatePaymentsWechatMiniPay" => {
                if f("pay_method") != "online" || f("sub_pay_method") != "WeChat Pay" {
                    return refuse(
                        "400",
                        "pay_method must be online, sub_pay_method WeChat Pay",
                    );
                }
                let apps = &self.config.sub_app_ids;
                if !apps.is_empty() && !apps.iter().any(|a| a == f("sub_app_id")) {
                    return refuse(
                        "400",
                        format!("sub_app_id `{}` is not registered", f("sub_app_id")),
                    );
                }
                "WeChat Pay".to_string()
            }
            "v3.CreatePayments" => {
                if f("pay_method") != "online" {
                    return refuse("400", "pay_method must be online");
                }
                f("sub_pay_method").to_string()
            }
            "v3.CreateWechatNativePay" => {
                if !["01", "02"].contains(&f("url_type")) {
                    return refuse("400", "url_type must be 01 or 02");
                }
                "WeChat Pay".to_string()
            }
            _ => {
                if !["1", "2"].contains(&f("operate")) || !["01", "02"].contains(&f("3ds_initiate"))
                {
                    return refuse("400", "operate must be 1 or 2, 3ds_initiate 01 or 02");
                }
                if f("request_id").len() < 24 {
                    return refuse("400", "request_id must have at least 24 characters");
                }
                "Card".to_string()
            }
        };
        let mut book = self.book();
        let order = match book.by_order_id(f("order_id")).cloned() {
            // The same order again answers the same trade; changed, it is refused.
            Some(o) if o.amount == amount && o.method == method => o,
            Some(_) => {
                return refuse(
                    "400",
                    format!(
                        "order_id `{}` was used with other parameters",
                        f("order_id")
                    ),
                );
            }
            None => {
                let n = book.next();
                let o = Order {
                    order_id: f("order_id").into(),
                    trade_id: uuid_like(n),
                    method: method.into(),
                    sub_pay_method,
                    amount,
                    description: f("description").into(),
                    notify_url: f("notify_url").into(),
                    state: "pending".into(),
                    transaction_id: None,
                    paid_time: None,
                    created_at: now(),
                };
                book.orders.insert(o.trade_id.clone(), o.clone());
                o
            }
        };
        drop(book);
        let mut data = json!({
            "order_id": order.order_id, "trade_id": order.trade_id,
            "amount": decimal(&order.amount), "currency": order.amount.currency,
        });
        let t = &order.trade_id;
        match method {
            "v3.CreatePaymentsWechatMiniPay" => {
                let stamp = now().to_string();
                let package = format!("prepay_id=wx{}", t.replace('-', ""));
                let pay_sign = self
                    .hmac(self.key, &format!("{stamp}{package}"))
                    .to_uppercase();
                data["parameters"] = json!({
                    "appId": f("sub_app_id"), "timeStamp": stamp, "nonceStr": t.replace('-', ""),
                    "package": package, "signType": "MD5", "paySign": &pay_sign[..32],
                });
            }
            "v3.CreateWechatNativePay" if f("url_type") == "02" => {
                data["url"] = format!("weixin://wxpay/bizpayurl?pr={}", &t[..8]).into();
            }
            "v3.CreateWechatNativePay" => {
                data["url"] = format!("https://mapi.yabandpay.com/qr/{t}").into();
            }
            "v3.CreateCardPayments" => {
                data["url"] = format!("https://card.yabandpay.com/pay/{t}").into();
            }
            _ => {
                let page: String = order
                    .sub_pay_method
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect();
                data["url"] =
                    format!("https://pay.yabandpay.com/{}/{t}", page.to_lowercase()).into();
            }
        }
        Ok(data)
    }

    /// §5.3: by Yaband's `trade_id`; the merchant's `order_id` is not one.
    fn query(&self, trade_id: &str) -> Result<Value, Refusal> {
        let book = self.book();
        match book.orders.get(trade_id) {
            Some(o) => Ok(json!({"transaction_info": self.transaction_info(o)})),
            None if book.by_order_id(trade_id).is_some() => refuse(
                "404",
                format!("trade_id `{trade_id}` does not exist (an order_id is not a trade_id)"),
            ),
            None => refuse("404", format!("trade_id `{trade_id}` does not exist")),
        }
    }

    /// §5.6: by `trade_id`, partial, fewer than 30, within the amount, in
    /// the order's currency; the same `m_refund_id` refunds once.
    fn create_refund(&self, fields: &BTreeMap<&str, String>) -> Result<Value, Refusal> {
        let f = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
        let mut book = self.book();
        let Some(order) = book.orders.get(f("trade_id")).cloned() else {
            let hint = if book.by_order_id(f("trade_id")).is_some() {
                " (an order_id is not a trade_id)"
            } else {
                ""
            };
            return refuse(
                "404",
                format!("trade_id `{}` does not exist{hint}", f("trade_id")),
            );
        };
        if f("refund_currency") != order.amount.currency {
            return refuse(
                "400",
                format!(
                    "refund_currency must be the order's currency {}",
                    order.amount.currency
                ),
            );
        }
        let amount = money::from_decimal(f("refund_amount"), &order.amount.currency)
            .map_err(|e| ("400", format!("refund_amount: {e}")))?;
        if amount.minor == 0 {
            return refuse("400", "refund_amount must be positive");
        }
        let m_refund_id = f("m_refund_id");
        if !m_refund_id.is_empty()
            && let Some(r) = book.by_m_refund_id(m_refund_id)
        {
            if r.trade_id != order.trade_id || r.amount != amount {
                return refuse(
                    "400",
                    format!("m_refund_id `{m_refund_id}` was used with other parameters"),
                );
            }
            return Ok(self.refund_json(r, &order));
        }
        if order.state != "paid" {
            return refuse("400", format!("the order is {}, not paid", order.state));
        }
        let earlier: Vec<&Refund> = book
            .refunds
            .values()
            .filter(|r| r.trade_id == order.trade_id && r.state != "failed")
            .collect();
        if earlier.len() >= MAX_REFUNDS {
            return refuse("400", "too many refunds for this order");
        }
        let refunded: u64 = earlier.iter().map(|r| r.amount.minor).sum();
        if refunded + amount.minor > order.amount.minor {
            return refuse("400", "refund_amount exceeds what is left of the order");
        }
        let n = book.next();
        let refund = Refund {
            refund_id: format!("RF{n:018}"),
            m_refund_id: if m_refund_id.is_empty() {
                format!("M{n}")
            } else {
                m_refund_id.into()
            },
            trade_id: order.trade_id.clone(),
            amount,
            state: "refund processing".into(),
            notify_url: f("notify_url").into(),
        };
        book.refunds
            .insert(refund.refund_id.clone(), refund.clone());
        Ok(self.refund_json(&refund, &order))
    }
}

#[cfg(test)]
mod tests {
    //! Loopback: envelopes signed by hand (not with the simulator's own
    //! code), posted over HTTP.
    use super::*;

    const USER: &str = "016683";
    const KEY: &str = "sim-test-key";

    fn hmac(key: &str, text: &str) -> String {
        payhost_sdk::native::hmac_sha256_hex(key.as_bytes(), text)
    }

    /// The envelope of a call, signed over the sorted pairs.
    fn envelope(key: &str, method: &str, data: Value) -> Value {
        let time = now();
        let mut pairs: Vec<String> = data
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        pairs.extend([
            format!("user={USER}"),
            format!("method={method}"),
            format!("time={time}"),
        ]);
        pairs.sort_by(|a, b| {
            let name = |s: &str| s.split('=').next().unwrap().to_string();
            name(a).cmp(&name(b))
        });
        let sign = hmac(key, &pairs.join("&"));
        json!({"user": USER, "sign": sign, "method": method, "time": time, "data": data})
    }

    async fn post(sim: &Simulator, body: &Value) -> Value {
        let text = reqwest::Client::new()
            .post(format!("{}{PATH}", sim.base_url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn mini(order_id: &str) -> Value {
        json!({"pay_method": "online", "sub_pay_method": "WeChat Pay", "order_id": order_id,
               "amount": "24.99", "currency": "EUR", "description": "Tea", "timeout": "0",
               "notify_url": "http://127.0.0.1:1/n", "sub_app_id": "wx1", "sub_open_id": "o1"})
    }

    fn assert_signed(answer: &Value) {
        let data = answer["data"].as_object().unwrap();
        let mut pairs = Vec::new();
        flatten(data, &mut pairs);
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.sort();
        let text = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(answer["sign"], hmac(KEY, &text), "{answer}");
    }

    async fn paid_order(sim: &Simulator, order_id: &str) -> String {
        let a = post(
            sim,
            &envelope(KEY, "v3.CreatePaymentsWechatMiniPay", mini(order_id)),
        )
        .await;
        assert_eq!(a["status"], true, "{a}");
        sim.pay(order_id).unwrap();
        a["data"]["trade_id"].as_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn a_signed_mini_program_order_is_created_and_answered_signed() {
        let sim = Simulator::start(SimConfig::new(USER, KEY)).await;
        let a = post(
            &sim,
            &envelope(KEY, "v3.CreatePaymentsWechatMiniPay", mini("O-1")),
        )
        .await;
        assert_eq!(a["status"], true, "{a}");
        assert_signed(&a);
        assert_eq!(a["data"]["amount"], "24.99");
        assert!(
            a["data"]["parameters"]["package"]
                .as_str()
                .unwrap()
                .starts_with("prepay_id=")
        );
        assert_eq!(
            Some(a["data"]["trade_id"].as_str().unwrap().to_string()),
            sim.trade_id("O-1")
        );
        // The same order again: the same trade.
        let again = post(
            &sim,
            &envelope(KEY, "v3.CreatePaymentsWechatMiniPay", mini("O-1")),
        )
        .await;
        assert_eq!(again["data"]["trade_id"], a["data"]["trade_id"]);
        assert_eq!(sim.count("v3.CreatePaymentsWechatMiniPay"), 2);
    }

    #[tokio::test]
    async fn bad_signatures_users_and_field_names_are_refused() {
        let sim = Simulator::start(SimConfig::new(USER, KEY)).await;
        let wrong_key = envelope("other", "v3.CreatePaymentsWechatMiniPay", mini("O-1"));
        let mut tampered = envelope(KEY, "v3.CreatePaymentsWechatMiniPay", mini("O-1"));
        tampered["data"]["amount"] = "0.10".into();
        let mut wrong_user = envelope(KEY, "v3.CreatePaymentsWechatMiniPay", mini("O-1"));
        wrong_user["user"] = "099999".into();
        let mut renamed = mini("O-1");
        renamed.as_object_mut().unwrap().remove("order_id");
        renamed["out_trade_no"] = "O-1".into();
        let mut missing = mini("O-1");
        missing.as_object_mut().unwrap().remove("sub_open_id");
        let mut stale = envelope(KEY, "v3.QueryOrder", json!({"trade_id": "x"}));
        stale["time"] = (now() - 3600).into();
        let mut extra = envelope(KEY, "v3.QueryOrder", json!({"trade_id": "x"}));
        extra["nonce"] = "n".into();
        for (name, body, want) in [
            ("wrong key", wrong_key, "sign error"),
            ("tampered", tampered, "sign error"),
            ("wrong user", wrong_user, "does not exist"),
            (
                "renamed",
                envelope(KEY, "v3.CreatePaymentsWechatMiniPay", renamed),
                "unknown field `out_trade_no`",
            ),
            (
                "missing",
                envelope(KEY, "v3.CreatePaymentsWechatMiniPay", missing),
                "`sub_open_id` is required",
            ),
            (
                "unknown method",
                envelope(KEY, "v3.CreatePaymentsX", mini("O-1")),
                "does not exist",
            ),
            ("envelope field", extra, "unknown envelope field"),
            ("stale", stale, "outside the window"),
        ] {
            let a = post(&sim, &body).await;
            assert_eq!(a["status"], false, "{name}: {a}");
            assert!(a["message"].as_str().unwrap().contains(want), "{name}: {a}");
        }
        assert_eq!(sim.refusals().len(), 8);
        assert_eq!(sim.trade_id("O-1"), None);
    }

    #[tokio::test]
    async fn an_unregistered_mini_program_is_refused() {
        let mut config = SimConfig::new(USER, KEY);
        config.sub_app_ids = vec!["wx-registered".into()];
        let sim = Simulator::start(config).await;
        let a = post(
            &sim,
            &envelope(KEY, "v3.CreatePaymentsWechatMiniPay", mini("O-A")),
        )
        .await;
        assert!(
            a["message"].as_str().unwrap().contains("not registered"),
            "{a}"
        );
        let mut ok = mini("O-A");
        ok["sub_app_id"] = "wx-registered".into();
        let a = post(&sim, &envelope(KEY, "v3.CreatePaymentsWechatMiniPay", ok)).await;
        assert_eq!(a["status"], true, "{a}");
    }

    #[tokio::test]
    async fn query_takes_the_trade_id_and_refuses_the_order_id() {
        let sim = Simulator::start(SimConfig::new(USER, KEY)).await;
        let trade_id = paid_order(&sim, "O-Q").await;
        let by_order = post(
            &sim,
            &envelope(KEY, "v3.QueryOrder", json!({"trade_id": "O-Q"})),
        )
        .await;
        assert_eq!(by_order["status"], false);
        assert!(
            by_order["message"]
                .as_str()
                .unwrap()
                .contains("not a trade_id"),
            "{by_order}"
        );
        let named = post(
            &sim,
            &envelope(KEY, "v3.QueryOrder", json!({"order_id": "O-Q"})),
        )
        .await;
        assert!(
            named["message"]
                .as_str()
                .unwrap()
                .contains("unknown field `order_id`"),
            "{named}"
        );
        let a = post(
            &sim,
            &envelope(KEY, "v3.QueryOrder", json!({"trade_id": trade_id})),
        )
        .await;
        assert_eq!(a["status"], true, "{a}");
        assert_signed(&a);
        let t = &a["data"]["transaction_info"];
        assert_eq!(t["state"], "paid");
        assert!(t["transaction_id"].as_str().unwrap().starts_with("4200"));
    }

    #[tokio::test]
    async fn refunds_are_by_trade_id_in_the_order_currency_within_the_amount() {
        let sim = Simulator::start(SimConfig::new(USER, KEY)).await;
        let trade_id = paid_order(&sim, "O-R").await;
        let refund = |trade: &str, amount: &str, currency: &str, no: &str| {
            json!({"trade_id": trade, "m_refund_id": no, "refund_amount": amount,
                   "refund_currency": currency, "refund_description": "r", "notify_url": "http://127.0.0.1:1/n"})
        };
        for (data, want) in [
            (refund("O-R", "1.00", "EUR", "R1"), "not a trade_id"),
            (refund(&trade_id, "1.00", "CNY", "R1"), "order's currency"),
            (refund(&trade_id, "25.00", "EUR", "R1"), "exceeds"),
        ] {
            let a = post(&sim, &envelope(KEY, "v3.CreateRefund", data)).await;
            assert!(a["message"].as_str().unwrap().contains(want), "{a}");
        }
        let a = post(
            &sim,
            &envelope(
                KEY,
                "v3.CreateRefund",
                refund(&trade_id, "10.00", "EUR", "R1"),
            ),
        )
        .await;
        assert_eq!(a["data"]["state"], "refund processing", "{a}");
        let again = post(
            &sim,
            &envelope(
                KEY,
                "v3.CreateRefund",
                refund(&trade_id, "10.00", "EUR", "R1"),
            ),
        )
        .await;
        assert_eq!(again["data"]["refund_id"], a["data"]["refund_id"]);
        sim.settle_refund("R1", "refunded").unwrap();
        let refund_id = a["data"]["refund_id"].as_str().unwrap();
        let q = post(
            &sim,
            &envelope(KEY, "v3.QueryRefundOrder", json!({"refund_id": refund_id})),
        )
        .await;
        assert_eq!(q["data"]["state"], "refunded", "{q}");
        let q = post(
            &sim,
            &envelope(KEY, "v3.QueryRefundOrder", json!({"refund_id": "R1"})),
        )
        .await;
        assert_eq!(q["status"], false, "{q}");
        assert_eq!(sim.state("O-R").as_deref(), Some("paid"), "partly refunded");
    }

    #[tokio::test]
    async fn faults_answer_503_a_system_error_or_hang() {
        let config = |f: fn(&mut FaultConfig)| {
            let mut c = FaultConfig {
                max_faults: 10,
                hang: Duration::from_millis(300),
                ..FaultConfig::none()
            };
            f(&mut c);
            c
        };
        let sim = Simulator::start(SimConfig::new(USER, KEY)).await;
        let url = format!("{}{PATH}", sim.base_url());
        let body = envelope(KEY, "v3.QueryOrder", json!({"trade_id": "x"}));
        sim.set_faults(config(|c| c.api_5xx = 1.0));
        let r = reqwest::Client::new()
            .post(&url)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        sim.set_faults(config(|c| c.api_system_error = 1.0));
        let a = post(&sim, &body).await;
        assert_eq!(
            (a["status"].clone(), a["code"].clone()),
            (json!(false), json!("500"))
        );
        sim.set_faults(config(|c| c.api_timeout = 1.0));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(50))
            .build()
            .unwrap();
        assert!(
            client
                .post(&url)
                .body(body.to_string())
                .send()
                .await
                .is_err()
        );
        assert_eq!(
            sim.fault_counts().http_5xx + sim.fault_counts().system_errors,
            0,
            "tallies restart"
        );
        assert_eq!(
            sim.fault_counts().timeouts_applied + sim.fault_counts().timeouts_unapplied,
            1
        );
    }

    #[tokio::test]
    async fn notifications_are_signed_and_sent_once_twice_late_or_forged() {
        let received: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = received.clone();
        let app = Router::new().fallback(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                "ok"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let notify_url = format!("http://{}/n", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let sim = Simulator::start(SimConfig::new(USER, KEY)).await;
        let mut order = mini("O-N");
        order["notify_url"] = notify_url.into();
        post(
            &sim,
            &envelope(KEY, "v3.CreatePaymentsWechatMiniPay", order),
        )
        .await;
        sim.pay("O-N").unwrap();
        assert_eq!(
            sim.notify_payment("O-N", NotifyForgery::None)
                .await
                .unwrap(),
            (200, "ok".into())
        );
        let twice = NotifyOptions {
            copies: 2,
            state: Some("pending".into()),
            ..NotifyOptions::default()
        };
        assert_eq!(
            sim.notify_payment_with("O-N", twice).await.unwrap().len(),
            2
        );
        for forgery in [
            NotifyForgery::Tampered,
            NotifyForgery::WrongKey,
            NotifyForgery::WrongAmount,
            NotifyForgery::WrongCurrency,
            NotifyForgery::UnknownOrder,
        ] {
            sim.notify_payment("O-N", forgery).await.unwrap();
        }
        let got = received.lock().unwrap().clone();
        assert_eq!(got.len(), 8);
        let verifies = |n: &Value| {
            let mut pairs = Vec::new();
            flatten(n["data"].as_object().unwrap(), &mut pairs);
            pairs.retain(|(_, v)| !v.is_empty());
            pairs.sort();
            let text = pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            n["sign"] == hmac(KEY, &text)
        };
        assert!(
            verifies(&got[0])
                && got[0]["data"]["state"] == "paid"
                && got[0]["data"]["amount"] == "24.99"
        );
        assert!(verifies(&got[1]) && got[1]["data"]["state"] == "pending");
        assert!(
            !verifies(&got[3]) && !verifies(&got[4]),
            "tampered and wrong key"
        );
        assert!(verifies(&got[5]) && got[5]["data"]["amount"] == "25.00");
        assert!(verifies(&got[6]) && got[6]["data"]["currency"] == "CNY");
        assert!(verifies(&got[7]) && got[7]["data"]["order_id"] != "O-N");
    }
}
