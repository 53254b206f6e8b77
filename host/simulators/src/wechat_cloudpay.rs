//! A WeChat cloud payment (cloudPay) simulator (providers.md §9): the open
//! interface of WeChat Cloud Hosting, `POST /_/pay/<api>` with JSON bodies,
//! for `unifiedOrder` (or `unifiedorder`), `queryorder`, `closeorder`,
//! `refund` and `queryrefund`, answered `{"errcode", "errmsg", "respdata"}`,
//! and the result callbacks the platform POSTs to a Cloud Hosting service.
//!
//! Checked as the platform checks them, in this order: seeded faults
//! ([`SimConfig::faults`]: hang, 503, `SYSTEMERROR`), a 503 on request, POST
//! and a known call (else 404), the open interface switched on (else an
//! empty 200, §9.2), `Content-Type: application/json` (else errcode 45105
//! "invalid content type", as users report), a JSON object body (else
//! errcode 47001), then in `respdata`: every key one the call knows, in
//! snake_case (stricter than the platform, which ignores unknown keys and
//! then misses the required one: a camelCase key is a bug either way),
//! `sub_mch_id` present (`sub_mch_id is empty`) and bound (`受理关系不存在`),
//! an injected failure ([`Simulator::fail_next`]), and each call's own rules
//! (`total_fee` a JSON number, else errcode -202; the callback target; the
//! openid; `closeorder` not within [`SimConfig::close_min_age`] of creation).
//!
//! There is no merchant signature to check: the platform authenticates the
//! caller itself. `paySign` in the payment object is an MD5 over the five
//! `wx.requestPayment` fields with the simulator's own key, standing for the
//! platform's.
//!
//! Callbacks are sent on request ([`Simulator::notify_payment`],
//! [`Simulator::notify_refund`]) to the URL routed for the order's
//! `container.service` ([`Simulator::route_service`]) plus its
//! `container.path`, as JSON with camelCase keys (§9.7), header
//! `x-wx-source`; they can be repeated, delayed, tampered with, or sent for
//! an unknown or unpaid order ([`NotifyForgery`]). A callback counts as
//! handled when answered `{"errcode": 0}`.
//!
//! Not simulated: cloud-function callbacks (`callback_type` 1), bills,
//! profit sharing, the one-year refund limit, rate limits.

use crate::faults::{ApiFault, FaultConfig, FaultCounts, Faults};
use anyhow::{Context, anyhow, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use payhost_sdk::encoding;
use payhost_sdk::native::{self, DigestAlgorithm};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The platform's own service-provider ids, as its examples show them.
const PLATFORM_APPID: &str = "wxd2565e6a04246fd1";
const PLATFORM_MCH_ID: &str = "1800780001";
/// Stands for the platform's key in `paySign`.
const PLATFORM_KEY: &str = "cloudpay-simulator-platform-key";

/// The environment and merchant binding the simulator knows.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The Cloud Hosting environment callbacks must name (`env_id`).
    pub env_id: String,
    /// The merchant number bound to the mini-program (`sub_mch_id`).
    pub sub_mch_id: String,
    /// The mini-program (`sub_appid`, `payment.appId`).
    pub appid: String,
    /// Seeded faults; none by default.
    pub faults: FaultConfig,
    /// `closeorder` is refused this soon after creation (§9.5: five minutes).
    pub close_min_age: Duration,
    /// `queryrefund` fills its arrays. `false` reproduces §9.6's defect:
    /// `refund_count` beside empty arrays.
    pub refund_query_lists_refunds: bool,
}

impl SimConfig {
    pub fn new(env_id: &str, sub_mch_id: &str, appid: &str) -> Self {
        SimConfig {
            env_id: env_id.into(),
            sub_mch_id: sub_mch_id.into(),
            appid: appid.into(),
            faults: FaultConfig::none(),
            close_min_age: Duration::from_secs(300),
            refund_query_lists_refunds: true,
        }
    }
}

/// How a callback is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NotifyForgery {
    /// As the platform sends it.
    #[default]
    None,
    /// Genuine, with snake_case keys (as a CloudBase page shows them).
    SnakeCase,
    /// `totalFee` (refunds: `refundFee`) one fen more than the truth.
    Tampered,
    /// `feeType` USD.
    WrongCurrency,
    /// For an order (refund) number the platform never saw.
    UnknownOrder,
    /// A payment callback for an order that is not paid (sent by someone
    /// who can call the service, not by the platform).
    Unpaid,
    /// Naming another merchant number.
    OtherMerchant,
}

#[derive(Debug, Clone)]
struct Container {
    service: String,
    path: String,
}

#[derive(Debug, Clone)]
struct Order {
    total_fee: u64,
    openid: String,
    attach: Option<String>,
    prepay_id: String,
    state: &'static str,
    transaction_id: String,
    time_end: Option<String>,
    container: Container,
    created: Instant,
}

#[derive(Debug, Clone)]
struct Refund {
    out_trade_no: String,
    refund_id: String,
    refund_fee: u64,
    status: &'static str,
    container: Option<Container>,
}

#[derive(Default)]
struct Book {
    orders: BTreeMap<String, Order>,
    refunds: BTreeMap<String, Refund>,
    /// Calls per API name as requested (`unifiedOrder`, `queryorder`, ...).
    counts: BTreeMap<String, u64>,
    /// Where each Cloud Hosting service is reached.
    services: BTreeMap<String, String>,
    fail_next: Option<String>,
    answer_5xx_next: bool,
    open_interface_off: bool,
    seq: u64,
}

impl Book {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

struct Shared {
    config: SimConfig,
    book: Mutex<Book>,
    faults: Mutex<Faults>,
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running simulator; stops when dropped.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    client: reqwest::Client,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Simulator {
    /// Starts on `127.0.0.1:0`; panics if it cannot bind.
    pub async fn start(config: SimConfig) -> Simulator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            faults: Mutex::new(Faults::new(config.faults.clone())),
            config,
            book: Mutex::new(Book::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("cloudPay simulator stopped: {e}");
            }
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

    /// `http://127.0.0.1:<port>`: the adapter's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Callbacks for Cloud Hosting service `service` go to `base_url` plus
    /// the `container.path` of the order or refund.
    pub fn route_service(&self, service: &str, base_url: &str) {
        self.shared
            .book()
            .services
            .insert(service.into(), base_url.trim_end_matches('/').into());
    }

    /// Calls of one API, by the name requested (`unifiedOrder`,
    /// `unifiedorder`, `queryorder`, `closeorder`, `refund`, `queryrefund`).
    pub fn count(&self, api: &str) -> u64 {
        self.shared.book().counts.get(api).copied().unwrap_or(0)
    }

    /// The order's `trade_state` (`NOTPAY`, `SUCCESS`, `REFUND`, `CLOSED`).
    pub fn trade_state(&self, out_trade_no: &str) -> Option<&'static str> {
        self.shared.book().orders.get(out_trade_no).map(|o| o.state)
    }

    /// A refund's `refund_status` (`PROCESSING`, `SUCCESS`, ...).
    pub fn refund_status(&self, out_refund_no: &str) -> Option<&'static str> {
        self.shared
            .book()
            .refunds
            .get(out_refund_no)
            .map(|r| r.status)
    }

    /// The payer pays: the order becomes `SUCCESS`. Returns its
    /// `transaction_id`. Refused unless it is `NOTPAY`.
    pub fn pay(&self, out_trade_no: &str) -> anyhow::Result<String> {
        let mut book = self.shared.book();
        let o = book
            .orders
            .get_mut(out_trade_no)
            .ok_or_else(|| anyhow!("no order {out_trade_no}"))?;
        if o.state != "NOTPAY" {
            bail!("order {out_trade_no} is {}", o.state);
        }
        o.state = "SUCCESS";
        o.time_end = Some(china_compact(now()));
        Ok(o.transaction_id.clone())
    }

    /// Settles a `PROCESSING` refund as `SUCCESS`, `REFUNDCLOSE` or `CHANGE`.
    pub fn settle_refund(&self, out_refund_no: &str, status: &'static str) -> anyhow::Result<()> {
        if !matches!(status, "SUCCESS" | "REFUNDCLOSE" | "CHANGE") {
            bail!("a refund settles as SUCCESS, REFUNDCLOSE or CHANGE, not {status}");
        }
        let mut book = self.shared.book();
        let r = book
            .refunds
            .get_mut(out_refund_no)
            .ok_or_else(|| anyhow!("no refund {out_refund_no}"))?;
        if r.status != "PROCESSING" {
            bail!("refund {out_refund_no} is {}", r.status);
        }
        r.status = status;
        let no = r.out_trade_no.clone();
        if status == "SUCCESS"
            && let Some(o) = book.orders.get_mut(&no)
        {
            o.state = "REFUND";
        }
        Ok(())
    }

    /// The open-interface switch of the environment (§9.2): while off,
    /// every call is answered with an empty body.
    pub fn set_open_interface(&self, on: bool) {
        self.shared.book().open_interface_off = !on;
    }

    /// The next call that passes the common checks fails with
    /// `result_code=FAIL` and this `err_code` (a decline: `PARAM_ERROR`,
    /// `NOTENOUGH`, `SYSTEMERROR`, ...).
    pub fn fail_next(&self, err_code: &str) {
        self.shared.book().fail_next = Some(err_code.into());
    }

    /// The next call is answered HTTP 503.
    pub fn answer_5xx_next(&self) {
        self.shared.book().answer_5xx_next = true;
    }

    /// Replaces the faults from now on (a fresh seed, fresh tallies).
    pub fn set_faults(&self, config: FaultConfig) {
        *self.shared.faults() = Faults::new(config);
    }

    pub fn fault_counts(&self) -> FaultCounts {
        self.shared.faults().counts()
    }

    /// POSTs the order's payment callback once; answers the receiver's
    /// status and body. Only a paid order has one, unless `forgery` says
    /// otherwise.
    pub async fn notify_payment(
        &self,
        out_trade_no: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let (url, body) = self.payment_callback(out_trade_no, forgery)?;
        self.post(&url, &body).await
    }

    /// The same callback `times` times, `delay` apart (the platform repeats
    /// until answered errcode 0; a late one comes after `delay`).
    pub async fn notify_payment_repeatedly(
        &self,
        out_trade_no: &str,
        forgery: NotifyForgery,
        times: usize,
        delay: Duration,
    ) -> anyhow::Result<Vec<(u16, String)>> {
        let (url, body) = self.payment_callback(out_trade_no, forgery)?;
        let mut answers = Vec::with_capacity(times);
        for _ in 0..times {
            tokio::time::sleep(delay).await;
            answers.push(self.post(&url, &body).await?);
        }
        Ok(answers)
    }

    /// POSTs the refund's callback (its current status) once.
    pub async fn notify_refund(
        &self,
        out_refund_no: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let (url, body) = {
            let book = self.shared.book();
            let r = book
                .refunds
                .get(out_refund_no)
                .ok_or_else(|| anyhow!("no refund {out_refund_no}"))?;
            let container = r
                .container
                .clone()
                .ok_or_else(|| anyhow!("refund {out_refund_no} was asked without a callback"))?;
            let o = book
                .orders
                .get(&r.out_trade_no)
                .context("refund without order")?;
            let mut body = json!({
                "returnCode": "SUCCESS", "appid": PLATFORM_APPID, "mchId": PLATFORM_MCH_ID,
                "subAppid": self.shared.config.appid, "subMchId": self.shared.config.sub_mch_id,
                "nonceStr": format!("n{}", book.seq), "outTradeNo": r.out_trade_no,
                "outRefundNo": out_refund_no, "refundId": r.refund_id, "totalFee": o.total_fee,
                "refundFee": r.refund_fee, "settlementRefundFee": r.refund_fee,
                "refundStatus": r.status, "transactionId": o.transaction_id,
            });
            if r.status == "SUCCESS" {
                body["successTime"] = china_dashed(now()).into();
            }
            match forgery {
                NotifyForgery::Tampered => body["refundFee"] = (r.refund_fee + 1).into(),
                NotifyForgery::UnknownOrder => body["outRefundNo"] = "NOSUCHREFUND".into(),
                _ => {}
            }
            (self.callback_url(&book, &container)?, forge(body, forgery))
        };
        self.post(&url, &body).await
    }

    fn callback_url(&self, book: &Book, c: &Container) -> anyhow::Result<String> {
        let base = book.services.get(&c.service).ok_or_else(|| {
            anyhow!(
                "no URL for Cloud Hosting service `{}` (route_service)",
                c.service
            )
        })?;
        Ok(format!("{base}{}", c.path))
    }

    fn payment_callback(
        &self,
        out_trade_no: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(String, Value)> {
        let book = self.shared.book();
        let o = book
            .orders
            .get(out_trade_no)
            .ok_or_else(|| anyhow!("no order {out_trade_no}"))?;
        let paid = matches!(o.state, "SUCCESS" | "REFUND");
        if paid == (forgery == NotifyForgery::Unpaid) {
            bail!(
                "order {out_trade_no} is {}: {forgery:?} does not apply",
                o.state
            );
        }
        let c = &self.shared.config;
        let mut body = json!({
            "returnCode": "SUCCESS", "appid": PLATFORM_APPID, "mchId": PLATFORM_MCH_ID,
            "subAppid": c.appid, "subMchId": c.sub_mch_id, "nonceStr": format!("n{}", book.seq),
            "resultCode": "SUCCESS", "openid": "oPlatformOpenid", "isSubscribe": "N",
            "subOpenid": o.openid, "subIsSubscribe": "N", "tradeType": "JSAPI",
            "bankType": "OTHERS", "totalFee": o.total_fee, "feeType": "CNY",
            "cashFee": o.total_fee, "transactionId": o.transaction_id,
            "outTradeNo": out_trade_no,
            "timeEnd": o.time_end.clone().unwrap_or_else(|| china_compact(now())),
        });
        if let Some(a) = &o.attach {
            body["attach"] = a.clone().into();
        }
        match forgery {
            NotifyForgery::Tampered => body["totalFee"] = (o.total_fee + 1).into(),
            NotifyForgery::UnknownOrder => body["outTradeNo"] = "NOSUCHORDER0001".into(),
            _ => {}
        }
        Ok((
            self.callback_url(&book, &o.container)?,
            forge(body, forgery),
        ))
    }

    async fn post(&self, url: &str, body: &Value) -> anyhow::Result<(u16, String)> {
        let resp = self
            .client
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-wx-source", "wxpay-callback")
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("POST callback to {url}"))?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.unwrap_or_default()))
    }
}

/// Whether the platform counts an answer to its callback as handled (§9.7).
pub fn acknowledged(status: u16, body: &str) -> bool {
    status == 200
        && serde_json::from_str::<Value>(body)
            .is_ok_and(|v| v["errcode"].as_i64() == Some(0) && v["errmsg"].is_string())
}

/// The forgeries that change a callback's keys rather than its values.
fn forge(mut body: Value, forgery: NotifyForgery) -> Value {
    match forgery {
        NotifyForgery::WrongCurrency => body["feeType"] = "USD".into(),
        NotifyForgery::OtherMerchant => body["subMchId"] = "1900000000".into(),
        NotifyForgery::SnakeCase => {
            if let Value::Object(map) = body {
                return Value::Object(map.into_iter().map(|(k, v)| (snake(&k), v)).collect());
            }
        }
        _ => {}
    }
    body
}

fn snake(key: &str) -> String {
    key.chars()
        .flat_map(|c| {
            if c.is_ascii_uppercase() {
                vec!['_', c.to_ascii_lowercase()]
            } else {
                vec![c]
            }
        })
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn china_compact(unix: i64) -> String {
    payhost_sdk::time::format_compact(unix, payhost_sdk::time::CHINA).expect("current time formats")
}

fn china_dashed(unix: i64) -> String {
    let c = china_compact(unix);
    format!(
        "{}-{}-{} {}:{}:{}",
        &c[0..4],
        &c[4..6],
        &c[6..8],
        &c[8..10],
        &c[10..12],
        &c[12..14]
    )
}

// ---------------------------------------------------------------- the API

/// The keys each call knows (§9.4–§9.6 and the v2 fields they carry).
fn known_keys(api: &str) -> &'static [&'static str] {
    const CALLBACK: [&str; 4] = ["env_id", "callback_type", "container", "function_name"];
    match api {
        "unifiedOrder" | "unifiedorder" => &[
            "sub_mch_id",
            "nonce_str",
            "body",
            "detail",
            "attach",
            "out_trade_no",
            "fee_type",
            "total_fee",
            "spbill_create_ip",
            "time_start",
            "time_expire",
            "goods_tag",
            "limit_pay",
            "device_info",
            "trade_type",
            "openid",
            "sub_openid",
            "sub_appid",
            "scene_info",
            "receipt",
            "profit_sharing",
            CALLBACK[0],
            CALLBACK[1],
            CALLBACK[2],
            CALLBACK[3],
        ],
        "queryorder" => &[
            "sub_mch_id",
            "nonce_str",
            "transaction_id",
            "out_trade_no",
            "sub_appid",
        ],
        "closeorder" => &["sub_mch_id", "nonce_str", "out_trade_no", "sub_appid"],
        "refund" => &[
            "sub_mch_id",
            "nonce_str",
            "transaction_id",
            "out_trade_no",
            "out_refund_no",
            "total_fee",
            "refund_fee",
            "refund_fee_type",
            "refund_desc",
            "refund_account",
            "sub_appid",
            CALLBACK[0],
            CALLBACK[1],
            CALLBACK[2],
            CALLBACK[3],
        ],
        "queryrefund" => &[
            "sub_mch_id",
            "nonce_str",
            "refund_id",
            "out_refund_no",
            "transaction_id",
            "out_trade_no",
            "offset",
            "sub_appid",
        ],
        _ => &[],
    }
}

/// An answer of the open interface: HTTP status and body.
type Answer = (StatusCode, String);

fn envelope(errcode: i64, errmsg: &str) -> Answer {
    (
        StatusCode::OK,
        json!({"errcode": errcode, "errmsg": errmsg}).to_string(),
    )
}

fn respdata(data: Value) -> Answer {
    (
        StatusCode::OK,
        json!({"errcode": 0, "errmsg": "ok", "respdata": data}).to_string(),
    )
}

/// `return_code=FAIL`: the request never reached WeChat Pay's business.
fn return_fail(msg: &str) -> Answer {
    respdata(json!({"return_code": "FAIL", "return_msg": msg}))
}

async fn handle(
    AxState(sim): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = sim.faults().api_call();
    let hang = sim.faults().hang();
    let (status, text) = match fault {
        ApiFault::None => answer(&sim, &method, uri.path(), &headers, &body, None),
        ApiFault::Http5xx => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
        ApiFault::SystemError => answer(
            &sim,
            &method,
            uri.path(),
            &headers,
            &body,
            Some("SYSTEMERROR"),
        ),
        // Carried out now; the answer comes after the caller gave up.
        ApiFault::Timeout { applied: true } => {
            let a = answer(&sim, &method, uri.path(), &headers, &body, None);
            tokio::time::sleep(hang).await;
            a
        }
        ApiFault::Timeout { applied: false } => {
            tokio::time::sleep(hang).await;
            (StatusCode::GATEWAY_TIMEOUT, String::new())
        }
    };
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("media type"),
    );
    response
}

fn answer(
    sim: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    injected: Option<&str>,
) -> Answer {
    let mut book = sim.book();
    if std::mem::take(&mut book.answer_5xx_next) {
        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
    }
    let api = path.strip_prefix("/_/pay/").unwrap_or_default();
    if method != Method::POST || known_keys(api).is_empty() {
        return (StatusCode::NOT_FOUND, String::new());
    }
    *book.counts.entry(api.to_string()).or_default() += 1;
    if book.open_interface_off {
        return (StatusCode::OK, String::new());
    }
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        return envelope(45105, "invalid content type");
    }
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        return envelope(47001, "data format error");
    };
    if let Some(k) = req.keys().find(|k| !known_keys(api).contains(&k.as_str())) {
        return return_fail(&format!("unknown field `{k}`"));
    }
    match req.get("sub_mch_id").and_then(Value::as_str) {
        None | Some("") => return return_fail("sub_mch_id is empty"),
        Some(m) if m != sim.config.sub_mch_id => return return_fail("受理关系不存在"),
        Some(_) => {}
    }
    let call = Call {
        sim,
        req: &req,
        book: &mut book,
    };
    if let Some(code) = injected
        .map(String::from)
        .or_else(|| call.book.fail_next.take())
    {
        return call.refuse(&code, "injected failure");
    }
    match api {
        "unifiedOrder" | "unifiedorder" => call.unified_order(),
        "queryorder" => call.query_order(),
        "closeorder" => call.close_order(),
        "refund" => call.refund(),
        _ => call.query_refund(),
    }
}

/// One call that passed the common checks.
struct Call<'a> {
    sim: &'a Shared,
    req: &'a Map<String, Value>,
    book: &'a mut Book,
}

impl Call<'_> {
    fn text(&self, key: &str) -> Option<&str> {
        self.req
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The signed-looking frame of every business answer.
    fn frame(&mut self, result_code: &str) -> Value {
        let nonce = format!("{:016x}", self.book.next());
        json!({
            "return_code": "SUCCESS", "return_msg": "OK", "appid": PLATFORM_APPID,
            "mch_id": PLATFORM_MCH_ID, "sub_appid": self.sim.config.appid,
            "sub_mch_id": self.sim.config.sub_mch_id, "nonce_str": nonce,
            "sign": encoding::hex_upper(&native::digest(DigestAlgorithm::Md5, nonce.as_bytes())),
            "result_code": result_code,
        })
    }

    fn ok(mut self, fields: Value) -> Answer {
        let mut data = self.frame("SUCCESS");
        for (k, v) in fields.as_object().into_iter().flatten() {
            data[k] = v.clone();
        }
        respdata(data)
    }

    fn refuse(mut self, code: &str, des: &str) -> Answer {
        let mut data = self.frame("FAIL");
        data["err_code"] = code.into();
        data["err_code_des"] = des.into();
        respdata(data)
    }

    /// §9.4's callback target: env, `callback_type` 2 and a container.
    fn container(&self) -> Result<Container, String> {
        if self.text("env_id") != Some(self.sim.config.env_id.as_str()) {
            return Err("env_id is not this environment".into());
        }
        if self.req.get("callback_type").and_then(Value::as_u64) != Some(2) {
            return Err("callback_type must be the number 2 (Cloud Hosting)".into());
        }
        let c = &self.req["container"];
        match (c["service"].as_str(), c["path"].as_str()) {
            (Some(service), Some(path)) if !service.is_empty() && path.starts_with('/') => {
                Ok(Container {
                    service: service.into(),
                    path: path.into(),
                })
            }
            _ => Err("container needs a service and a path starting with /".into()),
        }
    }

    /// A fen amount: a JSON number, as the platform demands.
    fn fen(&self, key: &str) -> Result<u64, Answer> {
        match self.req.get(key) {
            Some(Value::Number(n)) => n
                .as_u64()
                .filter(|v| *v > 0)
                .ok_or_else(|| envelope(-202, &format!("{key} must be a positive integer"))),
            _ => Err(envelope(
                -202,
                &format!("wx api error: {key} is not a number"),
            )),
        }
    }

    fn unified_order(self) -> Answer {
        let container = match self.container() {
            Ok(c) => c,
            Err(why) => return self.refuse("PARAM_ERROR", &why),
        };
        let total_fee = match self.fen("total_fee") {
            Ok(f) => f,
            Err(a) => return a,
        };
        let (Some(no), Some(_), Some(_)) = (
            self.text("out_trade_no"),
            self.text("body"),
            self.text("spbill_create_ip"),
        ) else {
            return self.refuse(
                "PARAM_ERROR",
                "out_trade_no, body, spbill_create_ip are required",
            );
        };
        let no = no.to_string();
        if self.text("trade_type").is_some_and(|t| t != "JSAPI") {
            return self.refuse("PARAM_ERROR", "trade_type must be JSAPI");
        }
        if self.text("fee_type").is_some_and(|t| t != "CNY") {
            return self.refuse("PARAM_ERROR", "fee_type must be CNY");
        }
        let Some(openid) = self.text("openid").or(self.text("sub_openid")) else {
            return self.refuse("PARAM_ERROR", "无效的openid");
        };
        let openid = openid.to_string();
        let prepay_id = match self.book.orders.get(&no) {
            Some(o) if o.state != "NOTPAY" => return self.refuse("ORDERPAID", "order is paid"),
            Some(o) if o.total_fee != total_fee => {
                return self.refuse(
                    "OUT_TRADE_NO_USED",
                    "out_trade_no used with other parameters",
                );
            }
            Some(o) => o.prepay_id.clone(),
            None => {
                let n = self.book.next();
                let order = Order {
                    total_fee,
                    openid,
                    attach: self.text("attach").map(String::from),
                    prepay_id: format!("wx{n:034}"),
                    state: "NOTPAY",
                    transaction_id: format!("42{n:026}"),
                    time_end: None,
                    container,
                    created: Instant::now(),
                };
                let id = order.prepay_id.clone();
                self.book.orders.insert(no.clone(), order);
                id
            }
        };
        let time_stamp = now().to_string();
        let nonce = format!("{:016x}", self.book.next());
        let package = format!("prepay_id={prepay_id}");
        let appid = self.sim.config.appid.clone();
        let pay_sign = encoding::hex_upper(&native::digest(
            DigestAlgorithm::Md5,
            format!(
                "appId={appid}&nonceStr={nonce}&package={package}&signType=MD5&timeStamp={time_stamp}&key={PLATFORM_KEY}"
            )
            .as_bytes(),
        ));
        self.ok(json!({
            "trade_type": "JSAPI", "prepay_id": prepay_id,
            "payment": {"appId": appid, "timeStamp": time_stamp, "nonceStr": nonce,
                        "package": package, "signType": "MD5", "paySign": pay_sign},
        }))
    }

    /// The order named by `transaction_id` (first) or `out_trade_no`.
    fn find_order(&self) -> Option<(String, Order)> {
        match (self.text("transaction_id"), self.text("out_trade_no")) {
            (Some(tx), _) => self
                .book
                .orders
                .iter()
                .find(|(_, o)| o.transaction_id == tx && o.state != "NOTPAY")
                .map(|(k, o)| (k.clone(), o.clone())),
            (None, Some(no)) => self
                .book
                .orders
                .get(no)
                .map(|o| (no.to_string(), o.clone())),
            _ => None,
        }
    }

    fn query_order(self) -> Answer {
        let Some((no, o)) = self.find_order() else {
            return self.refuse("ORDERNOTEXIST", "order does not exist");
        };
        let mut fields = json!({
            "out_trade_no": no, "trade_state": o.state, "trade_state_desc": o.state,
            "total_fee": o.total_fee, "fee_type": "CNY", "sub_openid": o.openid,
        });
        if let Some(a) = &o.attach {
            fields["attach"] = a.clone().into();
        }
        if matches!(o.state, "SUCCESS" | "REFUND") {
            fields["transaction_id"] = o.transaction_id.into();
            fields["cash_fee"] = o.total_fee.into();
            fields["time_end"] = o.time_end.into();
            fields["bank_type"] = "OTHERS".into();
        }
        self.ok(fields)
    }

    fn close_order(self) -> Answer {
        let Some(no) = self.text("out_trade_no").map(String::from) else {
            return self.refuse("PARAM_ERROR", "out_trade_no is required");
        };
        let min_age = self.sim.config.close_min_age;
        let Some(o) = self.book.orders.get_mut(&no) else {
            return self.refuse("ORDERNOTEXIST", "order does not exist");
        };
        match o.state {
            "SUCCESS" | "REFUND" => self.refuse("ORDERPAID", "order is paid"),
            "CLOSED" => self.refuse("ORDERCLOSED", "order is closed"),
            _ if o.created.elapsed() < min_age => self.refuse(
                "SYSTEMERROR",
                "an order cannot be closed within five minutes of its creation",
            ),
            _ => {
                o.state = "CLOSED";
                self.ok(json!({"result_msg": "OK"}))
            }
        }
    }

    fn refund(self) -> Answer {
        let container = match self.req.get("container") {
            None => None,
            Some(_) => match self.container() {
                Ok(c) => Some(c),
                Err(why) => return self.refuse("PARAM_ERROR", &why),
            },
        };
        let (total_fee, refund_fee) = match (self.fen("total_fee"), self.fen("refund_fee")) {
            (Ok(t), Ok(r)) => (t, r),
            (Err(a), _) | (_, Err(a)) => return a,
        };
        let Some(refund_no) = self.text("out_refund_no").map(String::from) else {
            return self.refuse("PARAM_ERROR", "out_refund_no is required");
        };
        let Some((no, o)) = self.find_order() else {
            return self.refuse("ORDERNOTEXIST", "order does not exist");
        };
        if let Some(r) = self.book.refunds.get(&refund_no).cloned() {
            // The same refund number refunds once.
            if r.out_trade_no != no || r.refund_fee != refund_fee {
                return self.refuse(
                    "INVALID_REQUEST",
                    "out_refund_no used with other parameters",
                );
            }
            return self.refund_answer(&refund_no, &r, &no, &o);
        }
        if !matches!(o.state, "SUCCESS" | "REFUND") {
            return self.refuse("TRADE_STATE_ERROR", "order is not paid");
        }
        if total_fee != o.total_fee {
            return self.refuse("INVALID_REQUEST", "total_fee is not the order's");
        }
        let held: u64 = self
            .book
            .refunds
            .values()
            .filter(|r| r.out_trade_no == no && r.status != "REFUNDCLOSE")
            .map(|r| r.refund_fee)
            .sum();
        if held + refund_fee > o.total_fee {
            return self.refuse("INVALID_REQUEST", "refund_fee exceeds what is refundable");
        }
        let n = self.book.next();
        let r = Refund {
            out_trade_no: no.clone(),
            refund_id: format!("50{n:027}"),
            refund_fee,
            status: "PROCESSING",
            container,
        };
        self.book.refunds.insert(refund_no.clone(), r.clone());
        self.refund_answer(&refund_no, &r, &no, &o)
    }

    fn refund_answer(self, refund_no: &str, r: &Refund, no: &str, o: &Order) -> Answer {
        self.ok(json!({
            "transaction_id": o.transaction_id, "out_trade_no": no, "out_refund_no": refund_no,
            "refund_id": r.refund_id, "refund_fee": r.refund_fee, "total_fee": o.total_fee,
            "cash_fee": o.total_fee, "cash_refund_fee": r.refund_fee, "coupon_refund_fee": 0,
            "coupon_refund_count": 0,
        }))
    }

    /// By `refund_id` > `out_refund_no` > `transaction_id` > `out_trade_no`
    /// (§9.6); the order's refunds as arrays.
    fn query_refund(self) -> Answer {
        let by_refund = self
            .text("refund_id")
            .and_then(|id| {
                self.book
                    .refunds
                    .values()
                    .find(|r| r.refund_id == id)
                    .map(|r| r.out_trade_no.clone())
            })
            .or_else(|| {
                self.text("out_refund_no")
                    .and_then(|no| self.book.refunds.get(no))
                    .map(|r| r.out_trade_no.clone())
            });
        let asked_refund = self.text("refund_id").is_some() || self.text("out_refund_no").is_some();
        let order_no = match by_refund {
            Some(no) => Some(no),
            None if asked_refund => None,
            None => self.find_order().map(|(no, _)| no),
        };
        let Some((no, o)) =
            order_no.and_then(|no| self.book.orders.get(&no).map(|o| (no.clone(), o.clone())))
        else {
            return self.refuse("REFUNDNOTEXIST", "refund does not exist");
        };
        let refunds: Vec<(&String, &Refund)> = self
            .book
            .refunds
            .iter()
            .filter(|(_, r)| r.out_trade_no == no)
            .collect();
        if refunds.is_empty() {
            return self.refuse("REFUNDNOTEXIST", "refund does not exist");
        }
        let lists = self.sim.config.refund_query_lists_refunds;
        let list = |f: &dyn Fn(&String, &Refund) -> Value| -> Value {
            if lists {
                refunds.iter().map(|(k, r)| f(k, r)).collect()
            } else {
                json!([])
            }
        };
        let fields = json!({
            "out_trade_no": no, "transaction_id": o.transaction_id, "total_fee": o.total_fee,
            "fee_type": "CNY", "cash_fee": o.total_fee, "refund_count": refunds.len(),
            "out_refund_no_list": list(&|k, _| json!(k)),
            "refund_id_list": list(&|_, r| json!(r.refund_id)),
            "refund_fee_list": list(&|_, r| json!(r.refund_fee)),
            "refund_status_list": list(&|_, r| json!(r.status)),
            "refund_channel": list(&|_, _| json!("ORIGINAL")),
        });
        self.ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;

    const ENV: &str = "prod-test-env";
    const SUB: &str = "1712734762";
    const APPID: &str = "wx8888888888888888";

    async fn started(config: SimConfig) -> (Simulator, reqwest::Client) {
        (Simulator::start(config).await, reqwest::Client::new())
    }

    fn config() -> SimConfig {
        SimConfig {
            close_min_age: Duration::ZERO,
            ..SimConfig::new(ENV, SUB, APPID)
        }
    }

    async fn call(sim: &Simulator, c: &reqwest::Client, api: &str, body: Value) -> (u16, Value) {
        let r = c
            .post(format!("{}/_/pay/{api}", sim.base_url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn order_body(no: &str, fee: u64) -> Value {
        json!({"sub_mch_id": SUB, "nonce_str": "n", "body": "Tea", "out_trade_no": no,
            "total_fee": fee, "spbill_create_ip": "203.0.113.7", "openid": "o-payer",
            "trade_type": "JSAPI", "env_id": ENV, "callback_type": 2,
            "container": {"service": "payhost", "path": "/v1/notify/wechat-cloudpay/shop"}})
    }

    #[tokio::test]
    async fn unified_order_answers_a_payment_and_repeats_it_for_the_same_order() {
        let (sim, c) = started(config()).await;
        let (status, a) = call(&sim, &c, "unifiedOrder", order_body("SIM0001", 100)).await;
        assert_eq!(status, 200);
        assert_eq!(a["errcode"], 0);
        let d = &a["respdata"];
        assert_eq!(d["return_code"], "SUCCESS");
        assert_eq!(d["result_code"], "SUCCESS");
        assert_eq!(d["sub_mch_id"], SUB);
        let prepay = d["prepay_id"].as_str().unwrap();
        assert_eq!(d["payment"]["package"], format!("prepay_id={prepay}"));
        assert_eq!(d["payment"]["appId"], APPID);
        assert_eq!(d["payment"]["paySign"].as_str().unwrap().len(), 32);
        let (_, again) = call(&sim, &c, "unifiedorder", order_body("SIM0001", 100)).await;
        assert_eq!(again["respdata"]["prepay_id"], prepay);
        let (_, other) = call(&sim, &c, "unifiedOrder", order_body("SIM0001", 200)).await;
        assert_eq!(other["respdata"]["err_code"], "OUT_TRADE_NO_USED");
        assert_eq!(sim.count("unifiedOrder"), 2);
        assert_eq!(sim.count("unifiedorder"), 1);
        assert_eq!(sim.trade_state("SIM0001"), Some("NOTPAY"));
    }

    #[tokio::test]
    async fn requests_are_checked_strictly() {
        let (sim, c) = started(config()).await;
        // Wrong content type.
        let r = c
            .post(format!("{}/_/pay/queryorder", sim.base_url()))
            .header("content-type", "text/plain")
            .body(json!({"sub_mch_id": SUB}).to_string())
            .send()
            .await
            .unwrap();
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(v["errcode"], 45105);
        // camelCase keys, no or another merchant number.
        let mut camel = order_body("SIM0002", 1);
        camel["outTradeNo"] = "SIM0002".into();
        let (_, a) = call(&sim, &c, "unifiedOrder", camel).await;
        assert_eq!(a["respdata"]["return_code"], "FAIL");
        assert!(
            a["respdata"]["return_msg"]
                .as_str()
                .unwrap()
                .contains("outTradeNo")
        );
        let (_, a) = call(&sim, &c, "queryorder", json!({"out_trade_no": "X"})).await;
        assert_eq!(a["respdata"]["return_msg"], "sub_mch_id is empty");
        let (_, a) = call(
            &sim,
            &c,
            "queryorder",
            json!({"sub_mch_id": "1", "out_trade_no": "X"}),
        )
        .await;
        assert_eq!(a["respdata"]["return_msg"], "受理关系不存在");
        // total_fee as a string; a callback to another environment; no openid.
        let mut b = order_body("SIM0003", 1);
        b["total_fee"] = "1".into();
        let (_, a) = call(&sim, &c, "unifiedOrder", b).await;
        assert_eq!(a["errcode"], -202);
        let mut b = order_body("SIM0003", 1);
        b["env_id"] = "other".into();
        let (_, a) = call(&sim, &c, "unifiedOrder", b).await;
        assert_eq!(a["respdata"]["err_code"], "PARAM_ERROR");
        let mut b = order_body("SIM0003", 1);
        b.as_object_mut().unwrap().remove("openid");
        let (_, a) = call(&sim, &c, "unifiedOrder", b).await;
        assert_eq!(a["respdata"]["err_code_des"], "无效的openid");
        // Unknown call; the open interface switched off.
        let (status, _) = call(&sim, &c, "queryOrder", json!({"sub_mch_id": SUB})).await;
        assert_eq!(status, 404);
        sim.set_open_interface(false);
        let r = c
            .post(format!("{}/_/pay/queryorder", sim.base_url()))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.text().await.unwrap().is_empty());
        assert_eq!(sim.trade_state("SIM0003"), None);
    }

    #[tokio::test]
    async fn declines_5xx_and_faults() {
        let (sim, c) = started(config()).await;
        sim.fail_next("NOTENOUGH");
        let (_, a) = call(&sim, &c, "unifiedOrder", order_body("SIM0010", 1)).await;
        assert_eq!(a["respdata"]["result_code"], "FAIL");
        assert_eq!(a["respdata"]["err_code"], "NOTENOUGH");
        sim.answer_5xx_next();
        let (status, _) = call(&sim, &c, "unifiedOrder", order_body("SIM0010", 1)).await;
        assert_eq!(status, 503);
        assert_eq!(sim.trade_state("SIM0010"), None);
        sim.set_faults(FaultConfig {
            api_system_error: 1.0,
            max_faults: 1,
            ..FaultConfig::none()
        });
        let (_, a) = call(&sim, &c, "unifiedOrder", order_body("SIM0010", 1)).await;
        assert_eq!(a["respdata"]["err_code"], "SYSTEMERROR");
        sim.set_faults(FaultConfig {
            api_5xx: 1.0,
            max_faults: 1,
            ..FaultConfig::none()
        });
        let (status, _) = call(&sim, &c, "unifiedOrder", order_body("SIM0010", 1)).await;
        assert_eq!(status, 503);
        // A hung call that was carried out: the order exists though the
        // answer came late.
        sim.set_faults(FaultConfig {
            api_timeout: 1.0,
            max_faults: 1,
            seed: 1,
            hang: Duration::from_millis(10),
            ..FaultConfig::none()
        });
        let (status, _) = call(&sim, &c, "unifiedOrder", order_body("SIM0011", 1)).await;
        let counts = sim.fault_counts();
        assert_eq!(counts.timeouts_applied + counts.timeouts_unapplied, 1);
        if counts.timeouts_applied == 1 {
            assert_eq!(status, 200);
            assert_eq!(sim.trade_state("SIM0011"), Some("NOTPAY"));
        } else {
            assert_eq!(status, 504);
            assert_eq!(sim.trade_state("SIM0011"), None);
        }
        // Faults spent: a clean call.
        let (_, a) = call(&sim, &c, "unifiedOrder", order_body("SIM0010", 1)).await;
        assert_eq!(a["respdata"]["result_code"], "SUCCESS");
    }

    #[tokio::test]
    async fn query_close_refund_and_refund_query() {
        let mut cfg = config();
        cfg.close_min_age = Duration::from_secs(3600);
        let (sim, c) = started(cfg).await;
        call(&sim, &c, "unifiedOrder", order_body("SIM0020", 100)).await;
        call(&sim, &c, "unifiedOrder", order_body("SIM0021", 100)).await;
        let q = |no: &str| json!({"sub_mch_id": SUB, "out_trade_no": no});
        let (_, a) = call(&sim, &c, "queryorder", q("SIM0020")).await;
        assert_eq!(a["respdata"]["trade_state"], "NOTPAY");
        assert!(a["respdata"].get("transaction_id").is_none());
        let (_, a) = call(&sim, &c, "closeorder", q("SIM0021")).await;
        assert_eq!(
            a["respdata"]["err_code"], "SYSTEMERROR",
            "too young to close"
        );
        // Refund of an unpaid order, then paid.
        let refund = |fee: u64, no: &str| {
            json!({"sub_mch_id": SUB, "out_trade_no": "SIM0020", "out_refund_no": no,
                "total_fee": 100, "refund_fee": fee, "env_id": ENV, "callback_type": 2,
                "container": {"service": "payhost", "path": "/cb"}})
        };
        let (_, a) = call(&sim, &c, "refund", refund(40, "R1")).await;
        assert_eq!(a["respdata"]["err_code"], "TRADE_STATE_ERROR");
        let tx = sim.pay("SIM0020").unwrap();
        let (_, a) = call(
            &sim,
            &c,
            "queryorder",
            json!({"sub_mch_id": SUB, "transaction_id": tx}),
        )
        .await;
        assert_eq!(a["respdata"]["trade_state"], "SUCCESS");
        assert_eq!(a["respdata"]["out_trade_no"], "SIM0020");
        let (_, a) = call(&sim, &c, "closeorder", q("SIM0020")).await;
        assert_eq!(a["respdata"]["err_code"], "ORDERPAID");
        let (_, a) = call(&sim, &c, "refund", refund(40, "R1")).await;
        let refund_id = a["respdata"]["refund_id"].as_str().unwrap().to_string();
        let (_, again) = call(&sim, &c, "refund", refund(40, "R1")).await;
        assert_eq!(
            again["respdata"]["refund_id"],
            refund_id.as_str(),
            "same number, same refund"
        );
        let (_, a) = call(&sim, &c, "refund", refund(61, "R2")).await;
        assert_eq!(a["respdata"]["err_code"], "INVALID_REQUEST");
        // Refund query: by refund id, the lists name every refund.
        let (_, a) = call(
            &sim,
            &c,
            "queryrefund",
            json!({"sub_mch_id": SUB, "refund_id": refund_id}),
        )
        .await;
        assert_eq!(a["respdata"]["refund_count"], 1);
        assert_eq!(a["respdata"]["out_refund_no_list"], json!(["R1"]));
        assert_eq!(a["respdata"]["refund_status_list"], json!(["PROCESSING"]));
        sim.settle_refund("R1", "SUCCESS").unwrap();
        assert_eq!(sim.trade_state("SIM0020"), Some("REFUND"));
        let (_, a) = call(
            &sim,
            &c,
            "queryrefund",
            json!({"sub_mch_id": SUB, "out_refund_no": "R9"}),
        )
        .await;
        assert_eq!(a["respdata"]["err_code"], "REFUNDNOTEXIST");
    }

    #[tokio::test]
    async fn refund_query_can_reproduce_the_empty_lists() {
        let mut cfg = config();
        cfg.refund_query_lists_refunds = false;
        let (sim, c) = started(cfg).await;
        call(&sim, &c, "unifiedOrder", order_body("SIM0030", 100)).await;
        sim.pay("SIM0030").unwrap();
        call(
            &sim,
            &c,
            "refund",
            json!({"sub_mch_id": SUB, "out_trade_no": "SIM0030",
            "out_refund_no": "R1", "total_fee": 100, "refund_fee": 100}),
        )
        .await;
        let (_, a) = call(
            &sim,
            &c,
            "queryrefund",
            json!({"sub_mch_id": SUB, "out_refund_no": "R1"}),
        )
        .await;
        assert_eq!(a["respdata"]["refund_count"], 1);
        assert_eq!(a["respdata"]["out_refund_no_list"], json!([]));
    }

    /// A Cloud Hosting service that records callbacks and answers errcode 0.
    async fn receiver() -> (String, Arc<Mutex<Vec<(HeaderMap, Value)>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let app = Router::new().route(
            "/cb",
            post(move |headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move {
                    s.lock()
                        .unwrap()
                        .push((headers, serde_json::from_slice(&body).unwrap()));
                    json!({"errcode": 0, "errmsg": "SUCCESS"}).to_string()
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (url, seen)
    }

    #[tokio::test]
    async fn callbacks_go_to_the_container_once_twice_late_or_forged() {
        let (sim, c) = started(config()).await;
        let (url, seen) = receiver().await;
        sim.route_service("payhost", &url);
        let mut b = order_body("SIM0040", 100);
        b["container"]["path"] = "/cb".into();
        call(&sim, &c, "unifiedOrder", b).await;
        // Not paid: only the Unpaid forgery sends one.
        assert!(
            sim.notify_payment("SIM0040", NotifyForgery::None)
                .await
                .is_err()
        );
        let (status, body) = sim
            .notify_payment("SIM0040", NotifyForgery::Unpaid)
            .await
            .unwrap();
        assert!(acknowledged(status, &body));
        let tx = sim.pay("SIM0040").unwrap();
        sim.notify_payment("SIM0040", NotifyForgery::None)
            .await
            .unwrap();
        let answers = sim
            .notify_payment_repeatedly("SIM0040", NotifyForgery::Tampered, 2, Duration::ZERO)
            .await
            .unwrap();
        assert!(answers.iter().all(|(s, b)| acknowledged(*s, b)));
        for f in [
            NotifyForgery::WrongCurrency,
            NotifyForgery::UnknownOrder,
            NotifyForgery::OtherMerchant,
            NotifyForgery::SnakeCase,
        ] {
            sim.notify_payment("SIM0040", f).await.unwrap();
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 8);
        let (headers, genuine) = &seen[1];
        assert!(headers.contains_key("x-wx-source"));
        assert_eq!(genuine["outTradeNo"], "SIM0040");
        assert_eq!(genuine["transactionId"], tx.as_str());
        assert_eq!(genuine["totalFee"], 100);
        assert_eq!(genuine["subMchId"], SUB);
        assert_eq!(seen[2].1["totalFee"], 101);
        assert_eq!(seen[2].1, seen[3].1, "a repeat is the same callback");
        assert_eq!(seen[4].1["feeType"], "USD");
        assert_eq!(seen[5].1["outTradeNo"], "NOSUCHORDER0001");
        assert_ne!(seen[6].1["subMchId"], SUB);
        assert_eq!(seen[7].1["out_trade_no"], "SIM0040");
        assert!(seen[7].1.get("outTradeNo").is_none());
        assert!(!acknowledged(200, r#"{"errcode":1,"errmsg":"no"}"#));
        assert!(!acknowledged(500, r#"{"errcode":0,"errmsg":"ok"}"#));
    }
}
