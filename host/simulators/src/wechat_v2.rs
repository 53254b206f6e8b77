//! A WeChat Pay API v2 simulator (providers.md §1): `/pay/unifiedorder`,
//! `/pay/orderquery`, `/pay/closeorder`, `/secapi/pay/refund` and
//! `/pay/refundquery` over XML, checked the way WeChat checks them,
//! answered with signed XML.
//!
//! ```ignore
//! let sim = Simulator::start(SimConfig::new("wx...", "10000100", "key...")).await;
//! // point the adapter's `base_url` at sim.base_url(), create an order, then:
//! let answers = sim.notify("ORDER_1", NotifyOptions::default()).await?;
//! ```
//!
//! Order of checks for every call: seeded faults ([`SimConfig::faults`]:
//! hang, 5xx, `SYSTEMERROR`), 5xx injection, POST only, non-empty
//! UTF-8 XML (answered `return_code=FAIL`: WeChat does not sign those), then
//! -- answered signed, `result_code=FAIL` with `err_code` -- the common
//! fields (`LACK_PARAMS`), `mch_id` / `appid`, the signature (`SIGNERROR`),
//! an injected failure, and the endpoint's own rules.
//!
//! Refunds stay `PROCESSING` until the test settles them
//! ([`Simulator::settle_refund`]) or, with [`RefundSettle::After`], until
//! their delay has passed; then their notification is queued. Payments made
//! with [`Simulator::pay_and_notify`] queue theirs the same way. Queued
//! notifications are sent in the background, retried until acknowledged
//! (a few times), and subject to the notification faults.
//!
//! With [`SimConfig::tls`] it serves HTTPS, and `/secapi/` (the refund)
//! needs a client certificate that the configured roots verify, as
//! WeChat's does: without one the request is answered 400 and recorded as
//! `NO_CLIENT_CERT`; one from another CA fails the handshake
//! ([`Simulator::tls_handshake_failures`]). Over plain HTTP (the default)
//! no certificate can be presented and none is asked for.
//!
//! With [`SimConfig::sub_mch_id`] it is a service provider's account
//! (partner mode, §2): requests must name the sub-merchant.
//!
//! With [`SimConfig::overseas`] it is the cross-border API (apihk,
//! providers.md §1.11): `fee_type` is required and must be one of WeChat
//! Pay's currencies, a refund must state `refund_fee_type` in the order's
//! currency, and answers and notifications carry the payer's side
//! (`cash_fee` in `cash_fee_type` CNY at `rate`). The domestic API (the
//! default) takes CNY only.
//!
//! The papay auto-debit family (providers.md §13) is in [`papay`].
//!
//! Not simulated: the five-minute minimum before closing, refund query paging (`offset`, more
//! than 10 refunds), the 50-refund limit, rate limits.

use crate::faults::{ApiFault, FaultConfig, FaultCounts, Faults};
use crate::outbox::{Outbox, OutboxStats};
use crate::tls::{ClientCertificate, ServerTls, TlsServer};
use anyhow::{Context, anyhow, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use payhost_sdk::native::{self, DigestAlgorithm, KeyEncoding, Part, SecretTable};
use payhost_sdk::xml::{self, Fields};
use payhost_sdk::{canonical, encoding};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub mod papay;
pub use papay::{ContractTruth, DeductionTruth, PapayLimits, PapayTruth};

/// The merchant's signature algorithm (`sign_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignType {
    #[default]
    Md5,
    HmacSha256,
}

impl SignType {
    pub fn as_str(self) -> &'static str {
        match self {
            SignType::Md5 => "MD5",
            SignType::HmacSha256 => "HMAC-SHA256",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "MD5" => Some(SignType::Md5),
            "HMAC-SHA256" => Some(SignType::HmacSha256),
            _ => None,
        }
    }
}

/// The one merchant the simulator knows.
#[derive(Clone)]
pub struct SimConfig {
    pub appid: String,
    pub mch_id: String,
    pub api_key: String,
    /// How the simulator signs the notifications it sends. Requests and
    /// their answers use the request's own `sign_type` (MD5 when absent).
    pub sign_type: SignType,
    /// Seeded faults; none by default.
    pub faults: FaultConfig,
    /// When an accepted refund leaves `PROCESSING`.
    pub refund_settle: RefundSettle,
    /// Refuse payment after an order's `time_expire`, as WeChat does. Off
    /// by default: tests that run adapters at a fixed clock create orders
    /// whose `time_expire` is long past.
    pub enforce_time_expire: bool,
    /// Serve HTTPS with this certificate, and ask `/secapi/` callers for a
    /// client certificate the roots verify. Plain HTTP when `None`.
    pub tls: Option<ServerTls>,
    /// Act as the cross-border API; the domestic one when `None`.
    pub overseas: Option<Overseas>,
    /// Partner mode (§2): `mch_id` and `appid` are the service provider's,
    /// every request must name this sub-merchant, and answers and
    /// notifications name it too.
    pub sub_mch_id: Option<String>,
    /// The papay template: deduction limits and its notify URL.
    pub papay: PapayLimits,
    /// Every signed notification the background sender queues goes out
    /// with a field changed after signing, as a forger's would. Refund
    /// notifications (encrypted, not signed) are left alone.
    pub tamper_notifications: bool,
}

/// The cross-border API's exchange rate: what its payers pay in CNY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overseas {
    /// CNY per unit of any foreign currency, times 10^8 (WeChat's `rate`).
    pub rate: u64,
}

impl Default for Overseas {
    /// 7.8 CNY a unit.
    fn default() -> Self {
        Overseas { rate: 780_000_000 }
    }
}

impl Overseas {
    /// `cash_fee`, `cash_fee_type` and `rate` (and the given names for
    /// them) of `minor` units of `currency`: the payer pays CNY, converted
    /// at `rate` and rounded down.
    fn cash(&self, minor: u64, currency: &str, names: [&str; 2]) -> Vec<(String, String)> {
        let [fee, fee_type] = names;
        let cash = if currency == "CNY" {
            minor
        } else {
            let exp = |c: &str| payhost_sdk::money::exponent(c).unwrap_or(2);
            let num = u128::from(minor) * u128::from(self.rate) * 10u128.pow(exp("CNY"));
            (num / (100_000_000u128 * 10u128.pow(exp(currency)))) as u64
        };
        let mut out = vec![
            (fee.to_string(), cash.to_string()),
            (fee_type.to_string(), "CNY".to_string()),
        ];
        if currency != "CNY" {
            out.push(("rate".into(), self.rate.to_string()));
        }
        out
    }
}

/// When an accepted refund stops being `PROCESSING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefundSettle {
    /// Only when the test says so ([`Simulator::settle_refund`],
    /// [`Simulator::refund_notification`]).
    #[default]
    Manual,
    /// `SUCCESS` this long after it was accepted, with its notification
    /// queued (when the refund request gave a `notify_url`).
    After(Duration),
}

/// A refund's `refund_status` (refund query, refund notification).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    Processing,
    Success,
    /// Closed without refunding: the amount is refundable again.
    RefundClose,
    /// The money could not reach the payer ("退款异常"); it has left the
    /// merchant, so it stays counted as refunded.
    Change,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Processing => "PROCESSING",
            RefundStatus::Success => "SUCCESS",
            RefundStatus::RefundClose => "REFUNDCLOSE",
            RefundStatus::Change => "CHANGE",
        }
    }

    /// Whether the refunded money counts against the order.
    fn holds_amount(self) -> bool {
        self != RefundStatus::RefundClose
    }
}

/// The simulator's own record of an order: what actually happened at the
/// provider, for tests to compare the system under test against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTruth {
    /// `NOTPAY`, `SUCCESS`, `REFUND` or `CLOSED`.
    pub state: String,
    pub total_fee: u64,
    pub fee_type: String,
    /// How many times the payer was charged for it.
    pub paid_count: u32,
    pub transaction_id: Option<String>,
    /// Fen held by refunds that are not `REFUNDCLOSE`.
    pub refund_requested: u64,
    /// Fen of refunds that are `SUCCESS`.
    pub refunded: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundTruth {
    pub out_trade_no: String,
    pub refund_id: String,
    pub refund_fee: u64,
    pub status: RefundStatus,
}

/// Every order and refund the simulator knows, by `out_trade_no` and
/// `out_refund_no`.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    pub orders: BTreeMap<String, OrderTruth>,
    pub refunds: BTreeMap<String, RefundTruth>,
}

impl SimConfig {
    pub fn new(appid: &str, mch_id: &str, api_key: &str) -> Self {
        Self {
            appid: appid.into(),
            mch_id: mch_id.into(),
            api_key: api_key.into(),
            sign_type: SignType::Md5,
            faults: FaultConfig::none(),
            refund_settle: RefundSettle::Manual,
            enforce_time_expire: false,
            tls: None,
            overseas: None,
            sub_mch_id: None,
            papay: PapayLimits::default(),
            tamper_notifications: false,
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("appid", &self.appid)
            .field("mch_id", &self.mch_id)
            .field("api_key", &"<redacted>")
            .field("sign_type", &self.sign_type)
            .field("faults", &self.faults)
            .field("refund_settle", &self.refund_settle)
            .field("enforce_time_expire", &self.enforce_time_expire)
            .field("tls", &self.tls.is_some())
            .field("overseas", &self.overseas)
            .field("sub_mch_id", &self.sub_mch_id)
            .field("papay", &self.papay)
            .field("tamper_notifications", &self.tamper_notifications)
            .finish()
    }
}

/// How [`Simulator::notify`] delivers a notification.
#[derive(Debug, Clone)]
pub struct NotifyOptions {
    /// How many times to POST it (WeChat repeats until acknowledged).
    pub times: usize,
    /// Send it with a signature that does not verify.
    pub bad_signature: bool,
    /// Pause before each repetition.
    pub delay: Duration,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        Self {
            times: 1,
            bad_signature: false,
            delay: Duration::ZERO,
        }
    }
}

/// What the merchant's server answered to one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyResponse {
    pub status: u16,
    pub body: String,
}

impl NotifyResponse {
    /// Whether WeChat would count this as acknowledged (§1.7).
    pub fn acknowledged(&self) -> bool {
        self.status == 200
            && xml::decode(self.body.as_bytes())
                .map(|(_, f)| f.get("return_code").map(String::as_str) == Some("SUCCESS"))
                .unwrap_or(false)
    }
}

/// A request as it reached the simulator, with how it was answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub body: String,
    /// The decoded XML fields, when the body was valid XML.
    pub fields: Option<Fields>,
    /// `SUCCESS`, the `err_code` / `return_msg` code, or `HTTP_503`;
    /// `TIMEOUT` for a hung call that was not carried out, `TIMEOUT:` and
    /// the outcome for one that was.
    pub outcome: String,
}

/// A running simulator; stops when dropped (a hung call still ends
/// within its bounded hang).
pub struct Simulator {
    addr: SocketAddr,
    /// Set when serving HTTPS.
    tls: Option<Arc<TlsServer>>,
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
    /// Starts the simulator on `127.0.0.1:0`; panics if it cannot bind.
    pub async fn start(config: SimConfig) -> Simulator {
        Self::try_start(config)
            .await
            .expect("start the WeChat Pay v2 simulator")
    }

    pub async fn try_start(config: SimConfig) -> anyhow::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind 127.0.0.1:0")?;
        Self::start_on(config, listener).await
    }

    /// Starts the simulator on a listener the caller bound (`payhost
    /// simulator` binds the address a merchant's `base_url` names).
    pub async fn start_on(
        config: SimConfig,
        listener: tokio::net::TcpListener,
    ) -> anyhow::Result<Simulator> {
        let mut keys = SecretTable::new();
        let key = keys.insert(config.api_key.as_bytes().to_vec());
        let faults = Arc::new(Mutex::new(Faults::new(config.faults.clone())));
        let outbox = Outbox::new(faults.clone(), |status, body| {
            NotifyResponse {
                status,
                body: body.to_string(),
            }
            .acknowledged()
        });
        let shared = Arc::new(Shared {
            config,
            keys,
            key,
            state: Mutex::new(Book::default()),
            faults,
            outbox,
        });
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (tls, server) = match &shared.config.tls {
            Some(config) => {
                let (stats, task) = crate::tls::serve(listener, app, config)?;
                (Some(stats), task)
            }
            None => (
                None,
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, app).await {
                        tracing::error!("WeChat v2 simulator stopped: {e}");
                    }
                }),
            ),
        };
        let mut tasks = vec![server, shared.outbox.spawn()];
        if let RefundSettle::After(_) = shared.config.refund_settle {
            let sweeper = shared.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let mut book = sweeper.book();
                    sweeper.settle_due(&mut book);
                }
            }));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Simulator {
            addr,
            tls,
            shared,
            tasks,
            client,
        })
    }

    /// `http://127.0.0.1:<port>` (`https://` with [`SimConfig::tls`]):
    /// the adapter's `base_url`.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Connections refused during the TLS handshake (a client certificate
    /// the roots do not verify); 0 over plain HTTP.
    pub fn tls_handshake_failures(&self) -> u64 {
        self.tls.as_ref().map_or(0, |t| t.handshake_failures())
    }

    /// Marks the order paid (if it is not already) and returns its signed
    /// payment notification.
    pub fn pay(&self, out_trade_no: &str) -> anyhow::Result<String> {
        let mut book = self.shared.book();
        let fields = self.shared.pay(&mut book, out_trade_no)?;
        Ok(self.shared.signed_xml(fields, self.shared.config.sign_type))
    }

    /// POSTs the order's payment notification to its `notify_url`
    /// (paying it first if needed) and returns every answer received.
    pub async fn notify(
        &self,
        out_trade_no: &str,
        options: NotifyOptions,
    ) -> anyhow::Result<Vec<NotifyResponse>> {
        let (url, mut body) = {
            let mut book = self.shared.book();
            let fields = self.shared.pay(&mut book, out_trade_no)?;
            (
                book.orders[out_trade_no].notify_url.clone(),
                self.shared.signed_xml(fields, self.shared.config.sign_type),
            )
        };
        if options.bad_signature {
            body = tamper_signature(&body);
        }
        self.post_repeatedly(&url, body, &options).await
    }

    /// Marks the refund settled and returns its refund notification, with
    /// `req_info` encrypted as WeChat does (§1.8).
    pub fn refund_notification(&self, out_refund_no: &str) -> anyhow::Result<String> {
        let mut book = self.shared.book();
        self.shared
            .refund_notification(&mut book, out_refund_no)
            .map(|(_, xml)| xml)
    }

    /// POSTs the refund notification to the refund request's `notify_url`.
    pub async fn notify_refund(
        &self,
        out_refund_no: &str,
        options: NotifyOptions,
    ) -> anyhow::Result<Vec<NotifyResponse>> {
        let (url, body) = {
            let mut book = self.shared.book();
            let (url, xml) = self.shared.refund_notification(&mut book, out_refund_no)?;
            (
                url.ok_or_else(|| {
                    anyhow!("refund `{out_refund_no}` was requested without notify_url")
                })?,
                xml,
            )
        };
        self.post_repeatedly(&url, body, &options).await
    }

    /// The payer pays the order: it is charged (unless it already was) and,
    /// when this call charged it, its notification is queued for the
    /// background sender (with the notification faults). Refused for a
    /// closed order (`ORDERCLOSED`) and, with
    /// [`SimConfig::enforce_time_expire`], one past its `time_expire`.
    /// Returns whether this call charged it.
    pub fn pay_and_notify(&self, out_trade_no: &str) -> anyhow::Result<bool> {
        let mut book = self.shared.book();
        let was_paid = book
            .orders
            .get(out_trade_no)
            .is_some_and(|o| o.transaction_id.is_some());
        let fields = self.shared.pay(&mut book, out_trade_no)?;
        if was_paid {
            return Ok(false);
        }
        let url = book.orders[out_trade_no].notify_url.clone();
        drop(book);
        let body = self.shared.signed_xml(fields, self.shared.config.sign_type);
        self.shared.enqueue_signed(url, body)?;
        Ok(true)
    }

    /// Settles a `PROCESSING` refund as `status` and queues its refund
    /// notification (when the refund request gave a `notify_url`).
    /// Settling again with the same status changes nothing; with another,
    /// it is refused.
    pub fn settle_refund(&self, out_refund_no: &str, status: RefundStatus) -> anyhow::Result<()> {
        let mut book = self.shared.book();
        self.shared.settle(&mut book, out_refund_no, status)
    }

    /// What actually happened: every order's state, amount and charges, and
    /// every refund's status.
    pub fn truth(&self) -> Truth {
        let mut book = self.shared.book();
        self.shared.settle_due(&mut book);
        let mut truth = Truth::default();
        for (no, r) in &book.refunds {
            truth.refunds.insert(
                no.clone(),
                RefundTruth {
                    out_trade_no: r.out_trade_no.clone(),
                    refund_id: r.refund_id.clone(),
                    refund_fee: r.refund_fee,
                    status: r.status,
                },
            );
        }
        for (no, o) in &book.orders {
            let of_order = || truth.refunds.values().filter(|r| &r.out_trade_no == no);
            truth.orders.insert(
                no.clone(),
                OrderTruth {
                    state: o.state.to_string(),
                    total_fee: o.total_fee,
                    fee_type: o.fee_type.clone(),
                    paid_count: o.paid_count,
                    transaction_id: o.transaction_id.clone(),
                    refund_requested: o.refunded,
                    refunded: of_order()
                        .filter(|r| r.status == RefundStatus::Success)
                        .map(|r| r.refund_fee)
                        .sum(),
                },
            );
        }
        truth
    }

    /// The faults injected so far.
    pub fn fault_counts(&self) -> FaultCounts {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counts()
    }

    /// Replaces the faults from now on (a fresh seed, fresh tallies): a
    /// test can let the orders be created and then make the provider fail.
    pub fn set_faults(&self, config: FaultConfig) {
        *self.shared.faults.lock().unwrap_or_else(|p| p.into_inner()) = Faults::new(config);
    }

    /// What the background notification sender has done so far.
    pub fn outbox_stats(&self) -> OutboxStats {
        self.shared.outbox.stats()
    }

    /// No queued notification waits or is being sent.
    pub fn outbox_idle(&self) -> bool {
        self.shared.outbox.idle()
    }

    /// The next call (any endpoint) that passes the signature check fails
    /// with `result_code=FAIL` and this `err_code`.
    pub fn fail_next(&self, err_code: &str) {
        self.shared.book().fail_next = Some(err_code.to_string());
    }

    /// The next call of any kind is answered HTTP 503.
    pub fn answer_5xx_next(&self) {
        self.shared.book().answer_5xx_next = true;
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.book().requests.clone()
    }

    /// The order's `trade_state` (`NOTPAY`, `SUCCESS`, `REFUND`, `CLOSED`).
    pub fn trade_state(&self, out_trade_no: &str) -> Option<String> {
        self.shared
            .book()
            .orders
            .get(out_trade_no)
            .map(|o| o.state.to_string())
    }

    async fn post_repeatedly(
        &self,
        url: &str,
        body: String,
        options: &NotifyOptions,
    ) -> anyhow::Result<Vec<NotifyResponse>> {
        let mut answers = Vec::with_capacity(options.times);
        for i in 0..options.times {
            if i > 0 && !options.delay.is_zero() {
                tokio::time::sleep(options.delay).await;
            }
            let resp = self
                .client
                .post(url)
                .header(header::CONTENT_TYPE, "text/xml")
                .body(body.clone())
                .send()
                .await
                .with_context(|| format!("POST notification to {url}"))?;
            let status = resp.status().as_u16();
            answers.push(NotifyResponse {
                status,
                body: resp.text().await.unwrap_or_default(),
            });
        }
        Ok(answers)
    }
}

/// Replaces the `sign` element's value by one that cannot verify.
fn tamper_signature(body: &str) -> String {
    let (_, mut fields) = xml::decode(body.as_bytes()).expect("own XML");
    let sign = fields.get_mut("sign").expect("signed");
    *sign = sign
        .chars()
        .rev()
        .collect::<String>()
        .replace(|c: char| c.is_ascii_digit(), "F");
    xml::encode("xml", &fields)
}

/// A signed notification with a value changed after signing: `total_fee`
/// one fen more when it has one, else the `openid`.
fn tamper_value(body: &str) -> String {
    let (_, mut fields) = xml::decode(body.as_bytes()).expect("own XML");
    if let Some(fee) = fields.get_mut("total_fee") {
        *fee = (fee.parse::<u64>().unwrap_or(0) + 1).to_string();
    } else if let Some(openid) = fields.get_mut("openid") {
        openid.push('x');
    } else {
        return tamper_signature(body);
    }
    xml::encode("xml", &fields)
}

// ---------------------------------------------------------------- state

#[derive(Default)]
struct Book {
    orders: BTreeMap<String, Order>,
    refunds: BTreeMap<String, RefundRecord>,
    requests: Vec<RecordedRequest>,
    fail_next: Option<String>,
    answer_5xx_next: bool,
    seq: u64,
    papay: papay::PapayBook,
}

impl Book {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

struct Order {
    /// The fields a re-submission must repeat (all but nonce and signature).
    params: Fields,
    notify_url: String,
    total_fee: u64,
    fee_type: String,
    trade_type: String,
    prepay_id: String,
    code_url: Option<String>,
    state: &'static str,
    transaction_id: Option<String>,
    time_end: Option<String>,
    /// Fen held by refunds that are not closed.
    refunded: u64,
    /// `time_expire`, Unix seconds: no payment after it.
    expires_at: Option<i64>,
    paid_count: u32,
}

struct RefundRecord {
    out_trade_no: String,
    /// `total_fee`, `refund_fee`, order key: what a retry must repeat.
    params: (String, u64, u64),
    refund_id: String,
    refund_fee: u64,
    notify_url: Option<String>,
    success_time: Option<String>,
    status: RefundStatus,
    accepted_at: Instant,
}

struct Shared {
    config: SimConfig,
    keys: SecretTable,
    key: u32,
    state: Mutex<Book>,
    faults: Arc<Mutex<Faults>>,
    outbox: Arc<Outbox>,
}

/// A refusal: `(err_code, err_code_des)`.
type Refusal = (String, String);

fn refuse<T>(code: &str, des: impl Into<String>) -> Result<T, Refusal> {
    Err((code.to_string(), des.into()))
}

enum Answer {
    Unavailable,
    NotFound,
    /// `return_code=FAIL`, unsigned.
    ReturnFail(&'static str),
    /// Signed `result_code=FAIL`.
    Refused(SignType, Refusal),
    Success(SignType, Fields),
}

/// A fault the handler imposes on one call.
#[derive(Clone, Copy)]
enum Injected {
    Unavailable,
    SystemError,
}

async fn handle(
    AxState(sim): AxState<Arc<Shared>>,
    client_cert: Option<axum::Extension<ClientCertificate>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    // WeChat's front end refuses `/secapi/` without a client certificate
    // before reading the call; over plain HTTP there is none to ask for.
    if uri.path().starts_with("/secapi/")
        && client_cert.is_some_and(|axum::Extension(c)| c == ClientCertificate(false))
    {
        sim.record_unanswered(&method, uri.path(), &body, "NO_CLIENT_CERT");
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><head><title>400 No required SSL certificate was sent</title></head></html>",
        )
            .into_response();
    }
    let fault = sim
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .api_call();
    let (status, body) = match fault {
        ApiFault::None => sim.answer(&method, uri.path(), &body, None, ""),
        ApiFault::Http5xx => {
            sim.answer(&method, uri.path(), &body, Some(Injected::Unavailable), "")
        }
        ApiFault::SystemError => {
            sim.answer(&method, uri.path(), &body, Some(Injected::SystemError), "")
        }
        // Carried out now; the answer comes after the client gave up.
        ApiFault::Timeout { applied: true } => {
            let answer = sim.answer(&method, uri.path(), &body, None, "TIMEOUT:");
            let hang = sim.faults.lock().unwrap_or_else(|p| p.into_inner()).hang();
            tokio::time::sleep(hang).await;
            answer
        }
        ApiFault::Timeout { applied: false } => {
            // Recorded first: the client hangs up, which cancels this handler.
            sim.record_unanswered(&method, uri.path(), &body, "TIMEOUT");
            let hang = sim.faults.lock().unwrap_or_else(|p| p.into_inner()).hang();
            tokio::time::sleep(hang).await;
            (
                StatusCode::GATEWAY_TIMEOUT,
                "<html>504 Gateway Time-out</html>".to_string(),
            )
        }
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn china_compact(unix: i64) -> String {
    payhost_sdk::time::format_compact(unix, payhost_sdk::time::CHINA).expect("current time formats")
}

fn get<'f>(f: &'f Fields, name: &str) -> Option<&'f str> {
    f.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

fn need<'f>(f: &'f Fields, name: &str) -> Result<&'f str, Refusal> {
    get(f, name).ok_or_else(|| ("LACK_PARAMS".to_string(), format!("缺少参数 {name}")))
}

fn fee(f: &Fields, name: &str) -> Result<u64, Refusal> {
    let v = need(f, name)?;
    match v.parse::<u64>() {
        Ok(n) if n > 0 && v.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => refuse(
            "PARAM_ERROR",
            format!("{name} must be a positive integer of fen, got `{v}`"),
        ),
    }
}

/// `out_trade_no` (§1.2): 6 to 32 of letters, digits, `_ - | *`.
fn check_out_trade_no(v: &str) -> Result<(), Refusal> {
    let ok = (6..=32).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b));
    if ok {
        Ok(())
    } else {
        refuse(
            "INVALID_REQUEST",
            format!("out_trade_no `{v}` must be 6-32 letters, digits or _-|*"),
        )
    }
}

impl Shared {
    /// Records a request that no endpoint processed (its fields unread).
    fn record_unanswered(&self, method: &Method, path: &str, body: &[u8], outcome: &str) {
        self.book().requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.to_string(),
            body: String::from_utf8_lossy(body).into_owned(),
            fields: None,
            outcome: outcome.into(),
        });
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sign(&self, fields: &Fields, sign_type: SignType) -> String {
        let temp = format!("{}&key=", canonical::sorted_pairs(fields, &["sign"]));
        let parts = [Part::Text(&temp), Part::Secret(self.key)];
        let bytes = match sign_type {
            SignType::Md5 => self.keys.digest(DigestAlgorithm::Md5, &parts),
            SignType::HmacSha256 => {
                self.keys
                    .hmac(DigestAlgorithm::Sha256, self.key, KeyEncoding::Raw, &parts)
            }
        }
        .expect("the simulator's own key handle");
        encoding::hex_upper(&bytes)
    }

    fn signed_xml(&self, mut fields: Fields, sign_type: SignType) -> String {
        let sign = self.sign(&fields, sign_type);
        fields.insert("sign".into(), sign);
        xml::encode("xml", &fields)
    }

    /// Queues a signed notification, tampered with when
    /// [`SimConfig::tamper_notifications`] says so.
    fn enqueue_signed(&self, url: String, body: String) -> anyhow::Result<()> {
        let body = if self.config.tamper_notifications {
            tamper_value(&body)
        } else {
            body
        };
        self.outbox.enqueue(url, body)
    }

    fn nonce(book: &mut Book) -> String {
        let n = book.next();
        encoding::hex_lower(&native::digest(
            DigestAlgorithm::Md5,
            format!("nonce-{n}").as_bytes(),
        ))
    }

    fn answer(
        &self,
        method: &Method,
        path: &str,
        body: &[u8],
        injected: Option<Injected>,
        outcome_prefix: &str,
    ) -> (StatusCode, String) {
        let mut book = self.book();
        self.settle_due(&mut book);
        let mut fields = None;
        let answer = match injected {
            Some(Injected::Unavailable) => Answer::Unavailable,
            Some(Injected::SystemError) => {
                let before = book.fail_next.replace("SYSTEMERROR".into());
                let a = self.process(&mut book, method, path, body, &mut fields);
                // An explicit `fail_next` still applies to the next call.
                book.fail_next = before;
                a
            }
            None => self.process(&mut book, method, path, body, &mut fields),
        };
        let (status, text, outcome) = match answer {
            Answer::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "<html>503 Service Unavailable</html>".to_string(),
                "HTTP_503".to_string(),
            ),
            Answer::NotFound => (
                StatusCode::NOT_FOUND,
                "<html>404 Not Found</html>".to_string(),
                "HTTP_404".to_string(),
            ),
            Answer::ReturnFail(code) => {
                let f: Fields = [("return_code", "FAIL"), ("return_msg", code)]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (StatusCode::OK, xml::encode("xml", &f), code.to_string())
            }
            Answer::Refused(sign_type, (code, des)) => {
                let mut f = self.envelope(&mut book, path, "FAIL");
                f.insert("err_code".into(), code.clone());
                f.insert("err_code_des".into(), des);
                (StatusCode::OK, self.signed_xml(f, sign_type), code)
            }
            Answer::Success(sign_type, extra) => {
                let mut f = self.envelope(&mut book, path, "SUCCESS");
                f.extend(extra);
                (
                    StatusCode::OK,
                    self.signed_xml(f, sign_type),
                    "SUCCESS".to_string(),
                )
            }
        };
        book.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.to_string(),
            body: String::from_utf8_lossy(body).into_owned(),
            fields,
            outcome: format!("{outcome_prefix}{outcome}"),
        });
        (status, text)
    }

    fn envelope(&self, book: &mut Book, path: &str, result_code: &str) -> Fields {
        let mut f = Fields::new();
        for (k, v) in [
            ("return_code", "SUCCESS"),
            ("return_msg", "OK"),
            ("appid", &self.config.appid),
            ("mch_id", &self.config.mch_id),
            ("result_code", result_code),
        ] {
            f.insert(k.into(), v.to_string());
        }
        // papay's contract calls answer without one, as they ask (§13.4).
        if !papay::nonceless(path) {
            f.insert("nonce_str".into(), Self::nonce(book));
        }
        if let Some(sub) = &self.config.sub_mch_id {
            f.insert("sub_mch_id".into(), sub.clone());
        }
        f
    }

    fn process(
        &self,
        book: &mut Book,
        method: &Method,
        path: &str,
        body: &[u8],
        seen: &mut Option<Fields>,
    ) -> Answer {
        if std::mem::take(&mut book.answer_5xx_next) {
            return Answer::Unavailable;
        }
        type Endpoint = fn(&Shared, &mut Book, &Fields) -> Result<Fields, Refusal>;
        let endpoint: Endpoint = match path {
            "/pay/unifiedorder" => Shared::unified_order,
            "/pay/orderquery" => Shared::order_query,
            "/secapi/pay/refund" => Shared::refund,
            "/pay/closeorder" => Shared::close_order,
            "/pay/refundquery" => Shared::refund_query,
            papay::QUERY_CONTRACT => Shared::query_contract,
            papay::DELETE_CONTRACT => Shared::delete_contract,
            papay::PAP_PAY_APPLY => Shared::pap_pay_apply,
            papay::PAP_ORDER_QUERY => Shared::pap_order_query,
            _ => return Answer::NotFound,
        };
        if method != Method::POST {
            return Answer::ReturnFail("REQUIRE_POST_METHOD");
        }
        if body.is_empty() {
            return Answer::ReturnFail("POST_DATA_EMPTY");
        }
        if std::str::from_utf8(body).is_err() {
            return Answer::ReturnFail("NOT_UTF8");
        }
        let fields = match xml::decode(body) {
            Ok((root, f)) if root == "xml" => f,
            _ => return Answer::ReturnFail("XML_FORMAT_ERROR"),
        };
        *seen = Some(fields.clone());

        let declared = get(&fields, "sign_type").unwrap_or("MD5");
        let Some(sign_type) = SignType::parse(declared) else {
            return Answer::Refused(
                self.config.sign_type,
                papay::as_printed(
                    path,
                    (
                        "SIGNERROR".into(),
                        format!("sign_type `{declared}` is not MD5 or HMAC-SHA256"),
                    ),
                ),
            );
        };
        let checked = (|| {
            for name in ["appid", "mch_id", "nonce_str", "sign"] {
                if !(name == "nonce_str" && papay::nonceless(path)) {
                    need(&fields, name)?;
                }
            }
            if fields["mch_id"] != self.config.mch_id {
                return refuse(
                    "MCHID_NOT_EXIST",
                    format!("mch_id `{}` does not exist", fields["mch_id"]),
                );
            }
            if fields["appid"] != self.config.appid {
                return refuse("APPID_MCHID_NOT_MATCH", "appid 与 mch_id 不匹配");
            }
            if let Some(sub) = &self.config.sub_mch_id
                && get(&fields, "sub_mch_id") != Some(sub.as_str())
            {
                return refuse(
                    "MCHID_NOT_EXIST",
                    "sub_mch_id is missing or not a sub-merchant of this mch_id",
                );
            }
            if fields["sign"] != self.sign(&fields, sign_type) {
                return refuse("SIGNERROR", "签名错误");
            }
            if get(&fields, "nonce_str").is_some_and(|n| n.len() > 32) {
                return refuse("INVALID_REQUEST", "nonce_str longer than 32 characters");
            }
            if let Some(code) = book.fail_next.take() {
                return Err((code, "injected failure".to_string()));
            }
            endpoint(self, book, &fields)
        })();
        match checked {
            Ok(extra) => Answer::Success(sign_type, extra),
            Err(refusal) => Answer::Refused(sign_type, papay::as_printed(path, refusal)),
        }
    }

    // ---------------------------------------------------------------- endpoints

    /// An order's `fee_type`: the cross-border API requires one of WeChat
    /// Pay's currencies; the domestic one takes CNY only (its default).
    fn fee_type<'f>(&self, f: &'f Fields) -> Result<&'f str, Refusal> {
        let fee_type = match self.config.overseas {
            Some(_) => need(f, "fee_type")?,
            None => get(f, "fee_type").unwrap_or("CNY"),
        };
        if fee_type.len() != 3 || !fee_type.bytes().all(|b| b.is_ascii_uppercase()) {
            return refuse(
                "PARAM_ERROR",
                format!("fee_type `{fee_type}` is not an ISO 4217 code"),
            );
        }
        match self.config.overseas {
            Some(_) if !payhost_sdk::money::WECHAT_PAY_CURRENCIES.contains(&fee_type) => refuse(
                "PARAM_ERROR",
                format!("fee_type `{fee_type}` is not a currency of WeChat Pay's cross-border API"),
            ),
            None if fee_type != "CNY" => refuse(
                "PARAM_ERROR",
                format!("fee_type `{fee_type}`: this merchant takes CNY only"),
            ),
            _ => Ok(fee_type),
        }
    }

    /// The payer's side of an amount: overseas, CNY at the rate; domestic,
    /// `cash_fee` alone (no coupons here, so the total).
    fn cash(&self, minor: u64, currency: &str, names: [&str; 2]) -> Vec<(String, String)> {
        match &self.config.overseas {
            Some(o) => o.cash(minor, currency, names),
            None => vec![(names[0].to_string(), minor.to_string())],
        }
    }

    fn unified_order(&self, book: &mut Book, f: &Fields) -> Result<Fields, Refusal> {
        for name in [
            "body",
            "out_trade_no",
            "total_fee",
            "spbill_create_ip",
            "notify_url",
            "trade_type",
        ] {
            need(f, name)?;
        }
        let out_trade_no = &f["out_trade_no"];
        check_out_trade_no(out_trade_no)?;
        let total_fee = fee(f, "total_fee")?;
        if f["body"].chars().count() > 127 {
            return refuse("INVALID_REQUEST", "body longer than 127 characters");
        }
        let fee_type = self.fee_type(f)?;
        if f["spbill_create_ip"].parse::<std::net::IpAddr>().is_err() {
            return refuse("PARAM_ERROR", "spbill_create_ip is not an IP address");
        }
        let notify_url = &f["notify_url"];
        if !(notify_url.starts_with("https://") || notify_url.starts_with("http://"))
            || notify_url.contains('?')
        {
            return refuse(
                "INVALID_REQUEST",
                "notify_url must be an absolute URL without query string",
            );
        }
        if let Some(t) = get(f, "time_expire")
            && payhost_sdk::time::parse_compact(t, payhost_sdk::time::CHINA).is_err()
        {
            return refuse(
                "PARAM_ERROR",
                format!("time_expire `{t}` is not yyyyMMddHHmmss"),
            );
        }
        let trade_type = &f["trade_type"];
        match trade_type.as_str() {
            "JSAPI" if get(f, "openid").is_none() && get(f, "sub_openid").is_none() => {
                return refuse("LACK_PARAMS", "JSAPI 支付必须传 openid");
            }
            "NATIVE" if get(f, "product_id").is_none() => {
                return refuse("LACK_PARAMS", "NATIVE 支付必须传 product_id");
            }
            "JSAPI" | "NATIVE" | "APP" | "MWEB" => {}
            other => {
                return refuse(
                    "INVALID_REQUEST",
                    format!("trade_type `{other}` is not supported"),
                );
            }
        }
        let params: Fields = f
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "nonce_str" | "sign" | "sign_type"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();

        if let Some(order) = book.orders.get(out_trade_no.as_str()) {
            match order.state {
                "SUCCESS" | "REFUND" => return refuse("ORDERPAID", "该订单已支付"),
                "CLOSED" => return refuse("ORDERCLOSED", "该订单已关"),
                _ if order.params != params => {
                    return refuse(
                        "INVALID_REQUEST",
                        "201 商户订单号重复 (re-submitted with different parameters)",
                    );
                }
                _ => return Ok(order_reply(order)),
            }
        }
        let n = book.next();
        let now = china_compact(now());
        let order = Order {
            notify_url: notify_url.clone(),
            total_fee,
            fee_type: fee_type.to_string(),
            trade_type: trade_type.clone(),
            prepay_id: format!("wx{now}{n:012}"),
            code_url: (trade_type == "NATIVE")
                .then(|| format!("weixin://wxpay/bizpayurl?pr=sim{n:05}")),
            state: "NOTPAY",
            transaction_id: None,
            time_end: None,
            refunded: 0,
            expires_at: get(f, "time_expire")
                .and_then(|t| payhost_sdk::time::parse_compact(t, payhost_sdk::time::CHINA).ok()),
            paid_count: 0,
            params,
        };
        let reply = order_reply(&order);
        book.orders.insert(out_trade_no.clone(), order);
        Ok(reply)
    }

    /// The `out_trade_no` of the order a query or refund names.
    fn find_order(book: &Book, f: &Fields) -> Result<String, Refusal> {
        let key = match (get(f, "transaction_id"), get(f, "out_trade_no")) {
            // transaction_id wins when both are given (§1.5).
            (Some(tx), _) => book
                .orders
                .iter()
                .find(|(_, o)| o.transaction_id.as_deref() == Some(tx))
                .map(|(k, _)| k.clone()),
            (None, Some(no)) => Some(no.to_string()).filter(|k| book.orders.contains_key(k)),
            (None, None) => {
                return refuse("LACK_PARAMS", "缺少参数 transaction_id 或 out_trade_no");
            }
        };
        key.ok_or_else(|| {
            (
                "ORDERNOTEXIST".to_string(),
                "此交易订单号不存在".to_string(),
            )
        })
    }

    fn order_query(&self, book: &mut Book, f: &Fields) -> Result<Fields, Refusal> {
        let out_trade_no = Self::find_order(book, f)?;
        let o = &book.orders[&out_trade_no];
        let mut r = Fields::new();
        let mut put = |k: &str, v: &str| {
            r.insert(k.to_string(), v.to_string());
        };
        put("out_trade_no", &out_trade_no);
        put("trade_state", o.state);
        put(
            "trade_state_desc",
            match o.state {
                "SUCCESS" => "支付成功",
                "REFUND" => "转入退款",
                "CLOSED" => "已关闭",
                _ => "未支付",
            },
        );
        put("trade_type", &o.trade_type);
        put("total_fee", &o.total_fee.to_string());
        put("fee_type", &o.fee_type);
        for k in ["attach", "openid", "sub_openid", "sub_appid", "sub_mch_id"] {
            if let Some(v) = get(&o.params, k) {
                put(k, v);
            }
        }
        if let (Some(tx), Some(end)) = (&o.transaction_id, &o.time_end) {
            put("transaction_id", tx);
            put("time_end", end);
            put("bank_type", "OTHERS");
            for (k, v) in self.cash(o.total_fee, &o.fee_type, ["cash_fee", "cash_fee_type"]) {
                put(&k, &v);
            }
        }
        Ok(r)
    }

    fn refund(&self, book: &mut Book, f: &Fields) -> Result<Fields, Refusal> {
        let out_refund_no = need(f, "out_refund_no")?.to_string();
        let total_fee = fee(f, "total_fee")?;
        let refund_fee = fee(f, "refund_fee")?;
        let n = book.next();
        let out_trade_no = Self::find_order(book, f)?;
        let o = &book.orders[&out_trade_no];
        if o.transaction_id.is_none() || o.state == "CLOSED" {
            return refuse("ERROR", "订单未支付 (order is not paid)");
        }
        if total_fee != o.total_fee {
            return refuse(
                "INVALID_REQUEST",
                format!("total_fee {total_fee} is not the order's {}", o.total_fee),
            );
        }
        let refund_fee_type = match self.config.overseas {
            // The cross-border API refunds in the order's currency, stated.
            Some(_) => Some(need(f, "refund_fee_type")?),
            None => get(f, "refund_fee_type"),
        };
        if let Some(t) = refund_fee_type
            && t != o.fee_type
        {
            return refuse(
                "PARAM_ERROR",
                format!("refund_fee_type `{t}` is not the order's `{}`", o.fee_type),
            );
        }
        let params = (out_trade_no.clone(), total_fee, refund_fee);
        let tx = o.transaction_id.clone().unwrap_or_default();
        if let Some(existing) = book.refunds.get(&out_refund_no) {
            // The same refund number refunds once; a retry gets the same answer.
            if existing.params != params {
                return refuse(
                    "INVALID_REQUEST",
                    "out_refund_no already used with other parameters",
                );
            }
            let fee_type = o.fee_type.clone();
            return Ok(self.refund_reply(&tx, &out_refund_no, existing, total_fee, &fee_type));
        }
        if o.refunded + refund_fee > o.total_fee {
            return refuse(
                "NOTENOUGH",
                format!(
                    "refunds would exceed the paid total: {} of {} fen refundable",
                    o.total_fee - o.refunded,
                    o.total_fee
                ),
            );
        }
        let o = book.orders.get_mut(&out_trade_no).expect("found above");
        o.refunded += refund_fee;
        o.state = "REFUND";
        let record = RefundRecord {
            out_trade_no,
            params,
            refund_id: format!("5030{n:025}"),
            refund_fee,
            notify_url: get(f, "notify_url").map(String::from),
            success_time: None,
            status: RefundStatus::Processing,
            accepted_at: Instant::now(),
        };
        let fee_type = o.fee_type.clone();
        let reply = self.refund_reply(&tx, &out_refund_no, &record, total_fee, &fee_type);
        book.refunds.insert(out_refund_no, record);
        Ok(reply)
    }

    fn refund_reply(
        &self,
        transaction_id: &str,
        out_refund_no: &str,
        r: &RefundRecord,
        total_fee: u64,
        fee_type: &str,
    ) -> Fields {
        let mut reply: Fields = [
            ("transaction_id", transaction_id.to_string()),
            ("out_trade_no", r.out_trade_no.clone()),
            ("out_refund_no", out_refund_no.to_string()),
            ("refund_id", r.refund_id.clone()),
            ("refund_fee", r.refund_fee.to_string()),
            ("total_fee", total_fee.to_string()),
            ("fee_type", fee_type.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        reply.extend(self.cash(total_fee, fee_type, ["cash_fee", "cash_fee_type"]));
        if self.config.overseas.is_some() {
            reply.insert("refund_fee_type".into(), fee_type.into());
            reply.extend(self.cash(
                r.refund_fee,
                fee_type,
                ["cash_refund_fee", "cash_refund_fee_type"],
            ));
        }
        reply
    }

    fn close_order(&self, book: &mut Book, f: &Fields) -> Result<Fields, Refusal> {
        need(f, "out_trade_no")?;
        let Some(o) = book.orders.get_mut(&f["out_trade_no"]) else {
            return refuse("ORDERNOTEXIST", "此交易订单号不存在");
        };
        match o.state {
            "SUCCESS" | "REFUND" => refuse("ORDERPAID", "订单已支付，不能发起关单"),
            "CLOSED" => refuse("ORDERCLOSED", "订单已关闭，无法重复关闭"),
            _ => {
                o.state = "CLOSED";
                Ok(Fields::new())
            }
        }
    }

    /// `/pay/refundquery`: one refund by `refund_id` or `out_refund_no`,
    /// or every refund of an order by `transaction_id` or `out_trade_no`
    /// (WeChat's order of precedence), numbered from 0.
    fn refund_query(&self, book: &mut Book, f: &Fields) -> Result<Fields, Refusal> {
        let mut chosen: Vec<&String> = if let Some(id) = get(f, "refund_id") {
            book.refunds
                .iter()
                .filter(|(_, r)| r.refund_id == id)
                .map(|(k, _)| k)
                .collect()
        } else if let Some(no) = get(f, "out_refund_no") {
            book.refunds
                .get_key_value(no)
                .map(|(k, _)| k)
                .into_iter()
                .collect()
        } else if get(f, "transaction_id").is_some() || get(f, "out_trade_no").is_some() {
            match Self::find_order(book, f) {
                Ok(order) => book
                    .refunds
                    .iter()
                    .filter(|(_, r)| r.out_trade_no == order)
                    .map(|(k, _)| k)
                    .collect(),
                Err(_) => Vec::new(),
            }
        } else {
            return refuse(
                "LACK_PARAMS",
                "缺少参数 refund_id, out_refund_no, transaction_id 或 out_trade_no",
            );
        };
        if chosen.is_empty() {
            return refuse("REFUNDNOTEXIST", "退款订单查询失败 (no such refund)");
        }
        // In the order they were accepted (refund ids grow).
        chosen.sort_by_key(|k| &book.refunds[*k].refund_id);
        let first = &book.refunds[chosen[0]];
        let o = &book.orders[&first.out_trade_no];
        let mut r = Fields::new();
        let mut put = |k: String, v: &str| {
            r.insert(k, v.to_string());
        };
        put(
            "transaction_id".into(),
            o.transaction_id.as_deref().unwrap_or_default(),
        );
        put("out_trade_no".into(), &first.out_trade_no);
        put("total_fee".into(), &o.total_fee.to_string());
        for (k, v) in self.cash(o.total_fee, &o.fee_type, ["cash_fee", "cash_fee_type"]) {
            put(k, &v);
        }
        put("fee_type".into(), &o.fee_type);
        put("refund_count".into(), &chosen.len().to_string());
        for (n, no) in chosen.iter().enumerate() {
            let rec = &book.refunds[*no];
            put(format!("out_refund_no_{n}"), no);
            put(format!("refund_id_{n}"), &rec.refund_id);
            put(format!("refund_channel_{n}"), "ORIGINAL");
            put(format!("refund_fee_{n}"), &rec.refund_fee.to_string());
            put(format!("refund_status_{n}"), rec.status.as_str());
            put(format!("refund_recv_accout_{n}"), "支付用户零钱");
            if let (RefundStatus::Success, Some(t)) = (rec.status, &rec.success_time) {
                put(format!("refund_success_time_{n}"), t);
            }
        }
        Ok(r)
    }

    // ---------------------------------------------------------------- test controls

    /// Settles a refund and queues its notification.
    fn settle(
        &self,
        book: &mut Book,
        out_refund_no: &str,
        status: RefundStatus,
    ) -> anyhow::Result<()> {
        let Some(r) = book.refunds.get(out_refund_no) else {
            bail!("no refund `{out_refund_no}`")
        };
        if status == RefundStatus::Processing {
            bail!("a refund is settled as SUCCESS, REFUNDCLOSE or CHANGE");
        }
        if r.status == status {
            return Ok(());
        }
        if r.status != RefundStatus::Processing {
            bail!("refund `{out_refund_no}` is already {}", r.status.as_str());
        }
        let (order_no, fee, notify) =
            (r.out_trade_no.clone(), r.refund_fee, r.notify_url.is_some());
        let r = book.refunds.get_mut(out_refund_no).expect("found above");
        r.status = status;
        if !status.holds_amount() {
            let o = book.orders.get_mut(&order_no).expect("a refund's order");
            o.refunded -= fee;
        }
        if notify {
            // Builds the message (and its success time) now, sends it later.
            let (url, xml) = self.refund_notification(book, out_refund_no)?;
            if let Some(url) = url {
                self.outbox.enqueue(url, xml)?;
            }
        }
        Ok(())
    }

    /// With [`RefundSettle::After`], settles every refund whose delay passed.
    fn settle_due(&self, book: &mut Book) {
        let RefundSettle::After(delay) = self.config.refund_settle else {
            return;
        };
        let due: Vec<String> = book
            .refunds
            .iter()
            .filter(|(_, r)| {
                r.status == RefundStatus::Processing && r.accepted_at.elapsed() >= delay
            })
            .map(|(k, _)| k.clone())
            .collect();
        for no in due {
            if let Err(e) = self.settle(book, &no, RefundStatus::Success) {
                tracing::warn!("settling refund {no}: {e}");
            }
        }
    }

    /// Marks the order paid and returns its notification's fields, unsigned.
    fn pay(&self, book: &mut Book, out_trade_no: &str) -> anyhow::Result<Fields> {
        let n = book.next();
        let nonce = Self::nonce(book);
        let Some(o) = book.orders.get_mut(out_trade_no) else {
            bail!("no order `{out_trade_no}`")
        };
        if o.state == "CLOSED" {
            bail!("ORDERCLOSED: order `{out_trade_no}` is closed and cannot be paid");
        }
        if o.transaction_id.is_none() {
            if self.config.enforce_time_expire && o.expires_at.is_some_and(|at| now() > at) {
                bail!("ORDEREXPIRED: order `{out_trade_no}` is past its time_expire");
            }
            o.transaction_id = Some(format!("4200{n:024}"));
            o.time_end = Some(china_compact(now()));
            o.state = "SUCCESS";
            o.paid_count += 1;
        }
        let mut f = Fields::new();
        let mut put = |k: &str, v: &str| {
            f.insert(k.to_string(), v.to_string());
        };
        put("return_code", "SUCCESS");
        put("appid", &self.config.appid);
        put("mch_id", &self.config.mch_id);
        put("nonce_str", &nonce);
        put("result_code", "SUCCESS");
        put("is_subscribe", "N");
        put("trade_type", &o.trade_type);
        put("bank_type", "OTHERS");
        put("total_fee", &o.total_fee.to_string());
        put("fee_type", &o.fee_type);
        for (k, v) in self.cash(o.total_fee, &o.fee_type, ["cash_fee", "cash_fee_type"]) {
            put(&k, &v);
        }
        put(
            "transaction_id",
            o.transaction_id.as_deref().unwrap_or_default(),
        );
        put("out_trade_no", out_trade_no);
        put("time_end", o.time_end.as_deref().unwrap_or_default());
        for k in ["attach", "openid", "sub_openid", "sub_appid", "sub_mch_id"] {
            if let Some(v) = get(&o.params, k) {
                put(k, v);
            }
        }
        // MD5 is the default; WeChat names the algorithm only otherwise.
        if self.config.sign_type == SignType::HmacSha256 {
            put("sign_type", "HMAC-SHA256");
        }
        Ok(f)
    }

    fn refund_notification(
        &self,
        book: &mut Book,
        out_refund_no: &str,
    ) -> anyhow::Result<(Option<String>, String)> {
        let nonce = Self::nonce(book);
        let Some(r) = book.refunds.get_mut(out_refund_no) else {
            bail!("no refund `{out_refund_no}`")
        };
        if r.status == RefundStatus::Processing {
            r.status = RefundStatus::Success;
        }
        let when = r.success_time.get_or_insert_with(|| {
            let t = now();
            let c = china_compact(t);
            format!(
                "{}-{}-{} {}:{}:{}",
                &c[0..4],
                &c[4..6],
                &c[6..8],
                &c[8..10],
                &c[10..12],
                &c[12..14]
            )
        });
        let o = &book.orders[&r.out_trade_no];
        let inner: Fields = [
            (
                "transaction_id",
                o.transaction_id.clone().unwrap_or_default(),
            ),
            ("out_trade_no", r.out_trade_no.clone()),
            ("refund_id", r.refund_id.clone()),
            ("out_refund_no", out_refund_no.to_string()),
            ("total_fee", o.total_fee.to_string()),
            ("settlement_total_fee", o.total_fee.to_string()),
            ("refund_fee", r.refund_fee.to_string()),
            ("settlement_refund_fee", r.refund_fee.to_string()),
            ("refund_status", r.status.as_str().to_string()),
            ("success_time", when.clone()),
            ("refund_recv_accout", "支付用户零钱".to_string()),
            (
                "refund_account",
                "REFUND_SOURCE_UNSETTLED_FUNDS".to_string(),
            ),
            ("refund_request_source", "API".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        // Key: lower-case hex MD5 of the API key, used as 32 ASCII bytes.
        let key = encoding::hex_lower(&native::digest(
            DigestAlgorithm::Md5,
            self.config.api_key.as_bytes(),
        ));
        let cipher =
            native::aes_256_ecb_encrypt(key.as_bytes(), xml::encode("root", &inner).as_bytes())
                .map_err(|e| anyhow!("{e}"))?;
        let mut outer: Fields = [
            ("return_code", "SUCCESS".to_string()),
            ("appid", self.config.appid.clone()),
            ("mch_id", self.config.mch_id.clone()),
            ("nonce_str", nonce),
            ("req_info", encoding::base64_encode(&cipher)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        // Partner mode's refund notifications name the sub-merchant (§1.8).
        for k in ["sub_appid", "sub_mch_id"] {
            if let Some(v) = get(&o.params, k) {
                outer.insert(k.into(), v.to_string());
            }
        }
        Ok((r.notify_url.clone(), xml::encode("xml", &outer)))
    }
}

fn order_reply(o: &Order) -> Fields {
    let mut r = Fields::new();
    r.insert("trade_type".into(), o.trade_type.clone());
    r.insert("prepay_id".into(), o.prepay_id.clone());
    if let Some(url) = &o.code_url {
        r.insert("code_url".into(), url.clone());
    }
    r
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod papay_tests;
