//! A 2paynow simulator (providers.md §6): the web endpoint
//! `/zhifu/mc_itf` (`precreate`, `query`, `wap_query`, `cancel`) and the two
//! WAP pages a payer's browser opens (`/wap/WxpayAPI/jsapi.php`,
//! `/wap/wappay/pay.html`).
//!
//! Checked as strictly as the public driver lets us know 2paynow: every
//! request's `sign` (MD5 of function, mid, timestamp and key), its mid, its
//! timestamp (in the configured unit, within a window for API calls), the
//! parameter names each function takes (an unknown or repeated one is
//! refused), amounts with the currency's decimals. `query` finds an order
//! only by 2paynow's `trade_no` of a web order; `wap_query` only by the
//! merchant's `merchant_trade_no` of a WAP order -- asking with the other
//! number answers `404 trade not exist`, as the pitfall goes.
//!
//! Answers are JSON, signed with the request formula at the simulator's
//! time. Notifications are GET (or POST) query strings sent on request
//! ([`Simulator::notify_payment`]), forged on request ([`NotifyForgery`]),
//! or queued by [`Simulator::pay_and_notify`] for the background sender
//! with the seeded notification faults (dropped, repeated, late). API calls
//! are subject to the seeded API faults (hang, 503, `status 500`).
//!
//! Not simulated: refunds and the mini-program call (not public), forex.

use crate::faults::{ApiFault, FaultConfig, FaultCounts, Faults};
use crate::outbox::{Outbox, OutboxStats};
use anyhow::{Context, anyhow};
use axum::Router;
use axum::extract::State as AxState;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use payhost_sdk::native::{self, DigestAlgorithm};
use payhost_sdk::{encoding, form, money};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The web endpoint.
pub const API_PATH: &str = "/zhifu/mc_itf";
pub const WAP_WECHAT_PATH: &str = "/wap/WxpayAPI/jsapi.php";
pub const WAP_ALIPAY_PATH: &str = "/wap/wappay/pay.html";
/// What a merchant must answer to a notification.
pub const ACK: &str = "success";
/// The currencies the simulated account takes.
pub const CURRENCIES: [&str; 2] = ["EUR", "CNY"];

/// How `timestamp` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampUnit {
    #[default]
    Milliseconds,
    Seconds,
}

impl TimestampUnit {
    fn now(self) -> i64 {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        match self {
            TimestampUnit::Milliseconds => d.as_millis() as i64,
            TimestampUnit::Seconds => d.as_secs() as i64,
        }
    }

    fn per_second(self) -> i64 {
        match self {
            TimestampUnit::Milliseconds => 1000,
            TimestampUnit::Seconds => 1,
        }
    }
}

/// The one merchant the simulator knows.
#[derive(Clone)]
pub struct SimConfig {
    pub mid: String,
    pub key: String,
    pub timestamp_unit: TimestampUnit,
    /// How far an API call's timestamp may be from the simulator's clock.
    /// WAP pages are opened later by a payer; they get a day.
    pub window_secs: i64,
    /// Seeded faults; none by default.
    pub faults: FaultConfig,
}

impl SimConfig {
    pub fn new(mid: &str, key: &str) -> Self {
        SimConfig {
            mid: mid.into(),
            key: key.into(),
            timestamp_unit: TimestampUnit::Milliseconds,
            window_secs: 300,
            faults: FaultConfig::none(),
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("mid", &self.mid)
            .field("key", &"***")
            .field("timestamp_unit", &self.timestamp_unit)
            .field("window_secs", &self.window_secs)
            .field("faults", &self.faults)
            .finish()
    }
}

/// How a notification is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NotifyForgery {
    /// As 2paynow sends it: the order's current `trade_status`.
    #[default]
    None,
    /// `sign` changed after signing.
    Tampered,
    /// `amount` raised by one minor unit (the signature does not cover it).
    WrongAmount,
    /// `currency` switched between EUR and CNY.
    WrongCurrency,
    /// Naming an order the merchant never created (in `merchant_trade_no`
    /// or `passback_parameters`), with this order's real `trade_no`.
    UnknownOrder,
    /// `trade_status=TRADE_SUCCESS` whatever the order's state.
    ClaimsPaid,
}

/// How a notification travels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NotifyMethod {
    #[default]
    Get,
    /// POST with the parameters still in the query string (§6.4).
    Post,
}

#[derive(Debug, Clone)]
struct Order {
    trade_no: String,
    /// The merchant's number: `merchant_trade_no` (WAP) or payhost's key in
    /// `passback_parameters` (web); absent when neither named one.
    merchant_order_no: Option<String>,
    wap: bool,
    function: &'static str,
    pay_type: String,
    amount: String,
    currency: String,
    notify_url: String,
    passback: Option<String>,
    state: &'static str,
    original_trade_no: String,
    trans_time: Option<String>,
}

#[derive(Default)]
struct Book {
    /// By trade_no.
    orders: BTreeMap<String, Order>,
    counts: BTreeMap<String, u64>,
    seq: u64,
}

impl Book {
    fn find(&self, no: &str) -> Option<&Order> {
        self.orders.get(no).or_else(|| {
            self.orders
                .values()
                .find(|o| o.merchant_order_no.as_deref() == Some(no))
        })
    }

    fn find_mut(&mut self, no: &str) -> Option<&mut Order> {
        let trade_no = self.find(no)?.trade_no.clone();
        self.orders.get_mut(&trade_no)
    }
}

struct Shared {
    config: SimConfig,
    book: Mutex<Book>,
    faults: Arc<Mutex<Faults>>,
    outbox: Arc<Outbox>,
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sign(&self, function: &str, timestamp: &str) -> String {
        sign(function, &self.config.mid, timestamp, &self.config.key)
    }

    /// A signed answer: `status` 200, `function`, `timestamp`, `sign`, then `fields`.
    fn answer(&self, function: &str, fields: Value) -> Value {
        let timestamp = self.config.timestamp_unit.now().to_string();
        let mut a = json!({
            "status": 200,
            "function": function,
            "timestamp": timestamp,
            "sign": self.sign(function, &timestamp),
        });
        if let (Some(a), Value::Object(f)) = (a.as_object_mut(), fields) {
            a.extend(f);
        }
        a
    }

    fn query_fields(&self, o: &Order) -> Value {
        json!({
            "trade_no": o.trade_no,
            "trans_status": o.state,
            "trans_time": o.trans_time.clone().unwrap_or_default(),
            "forex_rate": "7.8",
            "amount": o.amount,
            "currency": o.currency,
            "refund_amount": "0.00",
        })
    }

    /// The notification's query string (§6.4), signed now.
    fn notification(&self, o: &Order, forgery: NotifyForgery) -> String {
        let timestamp = self.config.timestamp_unit.now().to_string();
        let mut sign = self.sign(o.function, &timestamp);
        if forgery == NotifyForgery::Tampered {
            sign = sign.chars().rev().collect();
            if sign == self.sign(o.function, &timestamp) {
                sign = "0".repeat(32);
            }
        }
        let mut amount = o.amount.clone();
        let mut currency = o.currency.clone();
        match forgery {
            NotifyForgery::WrongAmount => {
                if let Ok(mut m) = money::from_decimal(&amount, &currency) {
                    m.minor += 1;
                    amount = money::to_decimal(&m).unwrap_or(amount);
                }
            }
            NotifyForgery::WrongCurrency => {
                currency = if currency == "EUR" { "CNY" } else { "EUR" }.into();
            }
            _ => {}
        }
        let mut merchant_trade_no = if o.wap {
            o.merchant_order_no.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let mut passback = o.passback.clone().unwrap_or_default();
        if forgery == NotifyForgery::UnknownOrder {
            let stranger = format!("NOSUCH{}", o.trade_no);
            if o.wap {
                merchant_trade_no = stranger;
            } else {
                passback = json!({ "merchant_order_no": stranger }).to_string();
            }
        }
        let trade_status = if forgery == NotifyForgery::ClaimsPaid {
            "TRADE_SUCCESS"
        } else {
            o.state
        };
        let amount_cny = money::from_decimal(&amount, &currency)
            .ok()
            .and_then(|m| {
                money::to_decimal(&payhost_sdk::types::Money {
                    minor: m.minor * 78 / 10,
                    currency: "CNY".into(),
                })
                .ok()
            })
            .unwrap_or_default();
        let mut pairs = vec![
            ("amount", amount),
            ("amount_cny", amount_cny),
            ("currency", currency),
            ("function", o.function.to_string()),
            ("merchant_trade_no", merchant_trade_no),
            ("mid", self.config.mid.clone()),
            ("passback_parameters", passback),
            ("sign", sign),
            ("timestamp", timestamp),
            ("trade_no", o.trade_no.clone()),
            ("trade_status", trade_status.to_string()),
        ];
        if o.state == "TRADE_SUCCESS" {
            pairs.push(("original_trade_no", o.original_trade_no.clone()));
        }
        form::encode(pairs.iter().map(|(k, v)| (*k, v.as_str())))
    }

    fn notification_url(&self, no: &str, forgery: NotifyForgery) -> anyhow::Result<String> {
        let book = self.book();
        let o = book.find(no).ok_or_else(|| anyhow!("no order {no}"))?;
        let sep = if o.notify_url.contains('?') { '&' } else { '?' };
        Ok(format!(
            "{}{sep}{}",
            o.notify_url,
            self.notification(o, forgery)
        ))
    }
}

/// `lowercase hex(MD5(function + mid + timestamp + key))` (§6.3).
pub fn sign(function: &str, mid: &str, timestamp: &str, key: &str) -> String {
    let text = format!("{function}{mid}{timestamp}{key}");
    encoding::hex_lower(&native::digest(DigestAlgorithm::Md5, text.as_bytes()))
}

/// A running simulator; stops when dropped.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    client: reqwest::Client,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Simulator {
    /// Starts on `127.0.0.1:0`; panics if it cannot bind.
    pub async fn start(config: SimConfig) -> Simulator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        Self::start_on(config, listener)
            .await
            .expect("start the 2paynow simulator")
    }

    /// Starts on a listener the caller bound.
    pub async fn start_on(
        config: SimConfig,
        listener: tokio::net::TcpListener,
    ) -> anyhow::Result<Simulator> {
        let faults = Arc::new(Mutex::new(Faults::new(config.faults.clone())));
        let outbox = Outbox::new(faults.clone(), |status, body| {
            status == 200 && body.trim() == ACK
        });
        let shared = Arc::new(Shared {
            config,
            book: Mutex::new(Book::default()),
            faults,
            outbox,
        });
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("2paynow simulator stopped: {e}");
            }
        });
        let tasks = vec![server, shared.outbox.spawn()];
        Ok(Simulator {
            addr,
            shared,
            tasks,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    /// `http://127.0.0.1:<port>`: the adapter's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The adapter's `wap_wechat_url` for this simulator.
    pub fn wap_wechat_url(&self) -> String {
        format!("{}{WAP_WECHAT_PATH}", self.base_url())
    }

    /// The adapter's `wap_alipay_url` for this simulator.
    pub fn wap_alipay_url(&self) -> String {
        format!("{}{WAP_ALIPAY_PATH}", self.base_url())
    }

    /// Requests seen per endpoint: `precreate`, `query`, `wap_query`,
    /// `cancel`, `wap_page` (rejected ones included).
    pub fn count(&self, endpoint: &str) -> u64 {
        self.shared
            .book()
            .counts
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// `trans_status` of an order, by merchant order no or trade_no.
    pub fn trans_status(&self, no: &str) -> Option<&'static str> {
        self.shared.book().find(no).map(|o| o.state)
    }

    /// 2paynow's `trade_no` of an order, by merchant order no.
    pub fn trade_no(&self, no: &str) -> Option<String> {
        self.shared.book().find(no).map(|o| o.trade_no.clone())
    }

    /// The value sent as `original_trade_no` once the order is paid.
    pub fn original_trade_no(&self, no: &str) -> Option<String> {
        self.shared
            .book()
            .find(no)
            .map(|o| o.original_trade_no.clone())
    }

    /// The payer pays (by merchant order no or trade_no): `TRADE_SUCCESS`.
    /// Refused for a closed or failed order.
    pub fn pay(&self, no: &str) -> anyhow::Result<()> {
        self.settle(no, "TRADE_SUCCESS")
    }

    /// The payment is declined: `TRADE_FAILED`.
    pub fn decline(&self, no: &str) -> anyhow::Result<()> {
        self.settle(no, "TRADE_FAILED")
    }

    fn settle(&self, no: &str, state: &'static str) -> anyhow::Result<()> {
        let mut book = self.shared.book();
        let o = book.find_mut(no).ok_or_else(|| anyhow!("no order {no}"))?;
        match o.state {
            "UNKNOWN" => {
                o.state = state;
                o.trans_time = Some(trans_time());
                Ok(())
            }
            s if s == state => Ok(()),
            s => Err(anyhow!("order {no} is {s}")),
        }
    }

    /// Sends the order's notification by GET to its `notify_url`; answers
    /// the receiver's status and body.
    pub async fn notify_payment(
        &self,
        no: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        self.notify_payment_via(no, forgery, NotifyMethod::Get)
            .await
    }

    /// [`notify_payment`](Self::notify_payment) by GET or POST.
    pub async fn notify_payment_via(
        &self,
        no: &str,
        forgery: NotifyForgery,
        method: NotifyMethod,
    ) -> anyhow::Result<(u16, String)> {
        let url = self.shared.notification_url(no, forgery)?;
        let req = match method {
            NotifyMethod::Get => self.client.get(&url),
            NotifyMethod::Post => self.client.post(&url),
        };
        let resp = req.send().await.context("sending the notification")?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.unwrap_or_default()))
    }

    /// The payer pays, and the notification is queued for the background
    /// sender, which repeats it until answered `success` and applies the
    /// notification faults. Returns whether this call paid the order.
    pub fn pay_and_notify(&self, no: &str) -> anyhow::Result<bool> {
        let was_paid = self.trans_status(no) == Some("TRADE_SUCCESS");
        self.pay(no)?;
        if was_paid {
            return Ok(false);
        }
        let url = self.shared.notification_url(no, NotifyForgery::None)?;
        self.shared.outbox.enqueue(url, String::new())?;
        Ok(true)
    }

    pub fn fault_counts(&self) -> FaultCounts {
        self.shared.faults().counts()
    }

    /// Replaces the faults from now on.
    pub fn set_faults(&self, config: FaultConfig) {
        *self.shared.faults() = Faults::new(config);
    }

    pub fn outbox_stats(&self) -> OutboxStats {
        self.shared.outbox.stats()
    }

    pub fn outbox_idle(&self) -> bool {
        self.shared.outbox.idle()
    }
}

fn trans_time() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    payhost_sdk::time::format_rfc3339(now, payhost_sdk::time::CHINA).unwrap_or_default()
}

/// A refusal as 2paynow words it: `status` and `error_info`, unsigned.
fn refusal(status: u16, info: impl Into<String>) -> Value {
    json!({ "status": status, "error_info": info.into() })
}

fn json_response(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(AxState(s): AxState<Arc<Shared>>, uri: Uri) -> Response {
    let path = uri.path();
    let query = uri.query().unwrap_or("");
    let page = match path {
        API_PATH => None,
        WAP_WECHAT_PATH => Some("wechat"),
        WAP_ALIPAY_PATH => Some("alipay"),
        _ => return (StatusCode::NOT_FOUND, "no such page").into_response(),
    };
    if let Some(page) = page {
        *s.book().counts.entry("wap_page".into()).or_default() += 1;
        return wap_page(&s, page, query);
    }
    let fault = s.faults().api_call();
    match fault {
        ApiFault::None => json_response(api(&s, query)),
        ApiFault::Http5xx => (StatusCode::SERVICE_UNAVAILABLE, "<html>503</html>").into_response(),
        ApiFault::SystemError => json_response(refusal(500, "system error")),
        ApiFault::Timeout { applied } => {
            let answer = if applied { Some(api(&s, query)) } else { None };
            let hang = s.faults().hang();
            tokio::time::sleep(hang).await;
            match answer {
                Some(a) => json_response(a),
                None => (StatusCode::GATEWAY_TIMEOUT, "<html>504</html>").into_response(),
            }
        }
    }
}

/// The parameters of one call, each name once and every name known.
struct Params(BTreeMap<String, String>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

const FUNCTIONS: [&str; 5] = ["precreate", "wap_precreate", "query", "wap_query", "cancel"];

/// Parameters each function takes besides function, mid, timestamp, sign:
/// `(required, optional)`.
fn allowed(function: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match function {
        "precreate" => (
            &["type", "subject", "amount", "currency", "notify_url"],
            &["it_b_pay", "passback_parameters"],
        ),
        "wap_precreate" => (
            &[
                "type",
                "subject",
                "amount",
                "currency",
                "notify_url",
                "merchant_trade_no",
                "return_url",
            ],
            &["it_b_pay", "passback_parameters"],
        ),
        "query" | "cancel" => (&["trade_no"], &[]),
        "wap_query" => (&["merchant_trade_no"], &[]),
        _ => return None,
    })
}

/// Checks the common parameters and the signature (`window` in seconds),
/// then the names the function takes: a forger learns nothing more.
fn checked(s: &Shared, query: &str, window: i64) -> Result<(&'static str, Params), Value> {
    let mut map = BTreeMap::new();
    for (k, v) in form::decode(query.as_bytes()) {
        if map.insert(k.clone(), v).is_some() {
            return Err(refusal(400, format!("parameter {k} given twice")));
        }
    }
    let p = Params(map);
    let function = match p.get("function") {
        Some(f) => FUNCTIONS
            .into_iter()
            .find(|known| *known == f)
            .ok_or_else(|| refusal(400, format!("function {f} not exist")))?,
        None => return Err(refusal(400, "function required")),
    };
    if p.get("mid") != Some(s.config.mid.as_str()) {
        return Err(refusal(403, "mid not exist"));
    }
    let Some(timestamp) = p
        .get("timestamp")
        .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
    else {
        return Err(refusal(400, "timestamp required"));
    };
    let unit = s.config.timestamp_unit;
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| refusal(400, "bad timestamp"))?;
    if (ts - unit.now()).abs() > window * unit.per_second() {
        return Err(refusal(401, "timestamp expired"));
    }
    let expected = s.sign(function, timestamp);
    if p.get("sign") != Some(expected.as_str()) {
        return Err(refusal(401, "sign error"));
    }
    let (required, optional) = allowed(function).expect("known function");
    for k in p.0.keys() {
        let k = k.as_str();
        if !["function", "mid", "timestamp", "sign"].contains(&k)
            && !required.contains(&k)
            && !optional.contains(&k)
        {
            return Err(refusal(400, format!("unknown parameter {k}")));
        }
    }
    if let Some(k) = required.iter().find(|k| p.get(k).is_none()) {
        return Err(refusal(400, format!("{k} required")));
    }
    Ok((function, p))
}

/// Checks an order's amount, currency, type and time-out.
fn order_terms(p: &Params) -> Result<(), Value> {
    let currency = p.get("currency").unwrap_or_default();
    if !CURRENCIES.contains(&currency) {
        return Err(refusal(400, format!("currency {currency} not supported")));
    }
    let amount = p.get("amount").unwrap_or_default();
    match money::from_decimal(amount, currency) {
        Ok(m) if m.minor > 0 => {}
        _ => return Err(refusal(400, format!("amount {amount} invalid"))),
    }
    if !matches!(p.get("type"), Some("0" | "1")) {
        return Err(refusal(400, "type must be 0 or 1"));
    }
    if let Some(t) = p.get("it_b_pay") {
        let minutes = t.strip_suffix('m').unwrap_or("");
        if minutes.is_empty() || !minutes.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refusal(400, format!("it_b_pay {t} invalid")));
        }
    }
    if let Some(pb) = p.get("passback_parameters")
        && serde_json::from_str::<Value>(pb).is_err()
    {
        return Err(refusal(400, "passback_parameters is not JSON"));
    }
    Ok(())
}

fn api(s: &Shared, query: &str) -> Value {
    let function = form::decode(query.as_bytes())
        .into_iter()
        .find(|(k, _)| k == "function")
        .map(|(_, v)| v)
        .unwrap_or_default();
    *s.book().counts.entry(function.clone()).or_default() += 1;
    let (function, p) = match checked(s, query, s.config.window_secs) {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let not_found = || refusal(404, "trade not exist");
    match function {
        "precreate" => {
            if let Err(e) = order_terms(&p) {
                return e;
            }
            let o = new_order(s, &p, false);
            let qr = if o.pay_type == "1" {
                format!("weixin://wxpay/bizpayurl?pr={}", o.trade_no)
            } else {
                format!("https://qr.alipay.com/{}", o.trade_no)
            };
            let fields = json!({
                "trade_no": o.trade_no,
                "qr_code": qr,
                "pic_url": format!("https://www.2paynow.com/qr/{}.png", o.trade_no),
            });
            s.book().orders.insert(o.trade_no.clone(), o);
            s.answer(function, fields)
        }
        // Only ever opened by a payer's browser.
        "wap_precreate" => refusal(400, "wap_precreate is a payment page"),
        "query" => {
            let book = s.book();
            match book.orders.get(p.get("trade_no").unwrap_or_default()) {
                Some(o) if !o.wap => s.answer(function, s.query_fields(o)),
                _ => not_found(),
            }
        }
        "wap_query" => {
            let no = p.get("merchant_trade_no").unwrap_or_default();
            let book = s.book();
            match book
                .orders
                .values()
                .find(|o| o.wap && o.merchant_order_no.as_deref() == Some(no))
            {
                Some(o) => s.answer(function, s.query_fields(o)),
                None => not_found(),
            }
        }
        _ => {
            let mut book = s.book();
            let Some(o) = book.orders.get_mut(p.get("trade_no").unwrap_or_default()) else {
                return not_found();
            };
            match o.state {
                "UNKNOWN" | "TRADE_CLOSED" => {
                    o.state = "TRADE_CLOSED";
                    let trade_no = o.trade_no.clone();
                    drop(book);
                    s.answer(function, json!({ "trade_no": trade_no }))
                }
                state => refusal(400, format!("trade is {state}, cannot cancel")),
            }
        }
    }
}

fn new_order(s: &Shared, p: &Params, wap: bool) -> Order {
    let mut book = s.book();
    book.seq += 1;
    let seq = book.seq;
    let passback = p.get("passback_parameters").map(String::from);
    let merchant_order_no = if wap {
        p.get("merchant_trade_no").map(String::from)
    } else {
        passback
            .as_deref()
            .and_then(|pb| serde_json::from_str::<Value>(pb).ok())
            .and_then(|v| v["merchant_order_no"].as_str().map(String::from))
    };
    Order {
        trade_no: format!("A{:017}", 26120200000000000 + seq),
        merchant_order_no,
        wap,
        function: if wap { "wap_precreate" } else { "precreate" },
        pay_type: p.get("type").unwrap_or_default().to_string(),
        amount: p.get("amount").unwrap_or_default().to_string(),
        currency: p.get("currency").unwrap_or_default().to_string(),
        notify_url: p.get("notify_url").unwrap_or_default().to_string(),
        passback,
        state: "UNKNOWN",
        original_trade_no: format!("42000026{:020}", seq),
        trans_time: None,
    }
}

/// A payer's browser opening a WAP page: the order exists from then on.
fn wap_page(s: &Shared, page: &str, query: &str) -> Response {
    let page_error = |v: Value| (StatusCode::BAD_REQUEST, v.to_string()).into_response();
    let (function, p) = match checked(s, query, 24 * 3600) {
        Ok(ok) => ok,
        Err(e) => return page_error(e),
    };
    if function != "wap_precreate" {
        return page_error(refusal(400, "this page takes wap_precreate"));
    }
    if let Err(e) = order_terms(&p) {
        return page_error(e);
    }
    let want = if page == "wechat" { "1" } else { "0" };
    if p.get("type") != Some(want) {
        return page_error(refusal(400, format!("this page takes type {want}")));
    }
    if page == "wechat" && p.get("it_b_pay").is_some() {
        return page_error(refusal(400, "unknown parameter it_b_pay"));
    }
    let no = p.get("merchant_trade_no").unwrap_or_default().to_string();
    let existing = s
        .book()
        .orders
        .values()
        .find(|o| o.wap && o.merchant_order_no.as_deref() == Some(no.as_str()))
        .cloned();
    let trade_no = match existing {
        // Opened again: the same order, if the terms are the same.
        Some(o)
            if Some(o.amount.as_str()) == p.get("amount")
                && Some(o.currency.as_str()) == p.get("currency") =>
        {
            o.trade_no
        }
        Some(_) => {
            return page_error(refusal(400, "merchant_trade_no used with other terms"));
        }
        None => {
            let o = new_order(s, &p, true);
            let trade_no = o.trade_no.clone();
            s.book().orders.insert(trade_no.clone(), o);
            trade_no
        }
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<html><body>2paynow {page} cashier, trade {trade_no}</body></html>"),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
