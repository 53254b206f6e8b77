//! A WeChat Pay API v3 simulator (providers.md §3, §4): orders (JSAPI and
//! native), query by merchant number and by transaction id, close,
//! refund and refund query, on the direct, partner and global paths.
//!
//! Checked as WeChat Pay checks them: the `Authorization` header's
//! signature over the five lines with the merchant's public key (401
//! `SIGN_ERROR`), its timestamp within five minutes, the merchant ids of
//! the request. Answered as WeChat Pay answers: JSON signed over the three
//! lines with the platform's key and named by its serial (a `PUB_KEY_ID_...`
//! or a certificate serial, as configured).
//!
//! Notifications are sent on request ([`Simulator::notify_payment`],
//! [`Simulator::notify_refund`]): the transaction or refund encrypted with
//! the APIv3 key (AES-256-GCM), the envelope signed; they can be tampered
//! with, signed with an unknown serial or stamped outside the window.
//!
//! Started with [`Simulator::start_global`] the merchant is a WeChat Pay
//! Global one (providers.md §4.2; common mode, or institution mode with a
//! `sub_mchid`): the domestic paths answer `INVALID_REQUEST` ("暂不支持境外
//! 支付") as apihk does; orders need `trade_type` and `amount.currency` (one
//! of WeChat Pay's currencies); refunds name the merchant and app as the
//! order does and are in the order's currency. In every mode the ids on a
//! query's query string and in a close or refund body must be the
//! merchant's.
//!
//! Payouts, the merchant transfer (§12.4), are in [`transfer`]; WeChat Pay
//! Global's auto-debit contracts (papay, §13) in [`papay`].
//!
//! Not simulated: mutual TLS (v3 has none), `GET /v3/certificates`, rate
//! limits, the seven-day order validity.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use anyhow::{Context, anyhow};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use payhost_sdk::encoding;
use payhost_sdk::native::{self, SecretTable};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// How far a request's timestamp may be from the simulator's clock.
const WINDOW_SECS: i64 = 300;
/// Requested paths remembered for [`Simulator::paths`].
const MAX_PATHS: usize = 1000;

/// The one merchant the simulator knows, and WeChat Pay's own keys.
#[derive(Clone)]
pub struct SimConfig {
    /// `mchid`, or the service provider's `sp_mchid` with a sub-merchant.
    pub mchid: String,
    pub appid: String,
    pub sub_mchid: Option<String>,
    /// The merchant's API public key (SPKI PEM): checks `Authorization`.
    pub merchant_public_key: String,
    /// WeChat Pay's signing key (PKCS#8 PEM) and the serial that names it.
    pub platform_private_key: String,
    pub platform_serial: String,
    /// The 32-byte APIv3 key notifications are encrypted with.
    pub api_v3_key: String,
}

#[derive(Debug, Clone)]
struct Order {
    out_trade_no: String,
    transaction_id: String,
    total: u64,
    currency: String,
    notify_url: String,
    /// The payer as the order named it: (`openid` | `sp_openid` | `sub_openid`, id).
    openid: Option<(&'static str, String)>,
    state: &'static str,
    success_time: Option<String>,
}

#[derive(Debug, Clone)]
struct Refund {
    out_refund_no: String,
    refund_id: String,
    out_trade_no: String,
    refund: u64,
    status: &'static str,
    notify_url: String,
}

#[derive(Default)]
struct State {
    orders: BTreeMap<String, Order>,
    /// Transfer bills by `out_bill_no` ([`transfer`]).
    bills: BTreeMap<String, transfer::Bill>,
    /// Papay contracts, pre-signs and deductions ([`papay`]).
    papay: papay::Book,
    refunds: BTreeMap<String, Refund>,
    /// Requests per endpoint (`POST /jsapi`, `GET /out-trade-no`, ...).
    counts: BTreeMap<String, u64>,
    /// The paths requested, oldest first (the last [`MAX_PATHS`]).
    paths: std::collections::VecDeque<String>,
    next_id: u64,
}

pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    config: SimConfig,
    /// A WeChat Pay Global merchant ([`Simulator::start_global`]).
    global: bool,
    state: Mutex<State>,
    keys: SecretTable,
    platform_key: u32,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `Wechatpay-*` headers for `body` at `timestamp`.
    fn sign(&self, timestamp: i64, serial: &str, body: &[u8]) -> Vec<(String, String)> {
        let nonce = format!("n{}", self.state().next_id);
        let mut message = format!("{timestamp}\n{nonce}\n").into_bytes();
        message.extend_from_slice(body);
        message.push(b'\n');
        let signature = self
            .keys
            .rsa_sha256_sign(self.platform_key, &message)
            .expect("platform key");
        vec![
            ("Wechatpay-Timestamp".into(), timestamp.to_string()),
            ("Wechatpay-Nonce".into(), nonce),
            (
                "Wechatpay-Signature".into(),
                encoding::base64_encode(&signature),
            ),
            ("Wechatpay-Serial".into(), serial.into()),
        ]
    }

    fn answer(&self, status: StatusCode, body: Option<Value>) -> Response {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut response = (status, bytes.clone()).into_response();
        for (k, v) in self.sign(now(), &self.config.platform_serial, &bytes) {
            response.headers_mut().insert(
                axum::http::HeaderName::try_from(k).expect("header name"),
                v.parse().expect("header value"),
            );
        }
        if !bytes.is_empty() {
            response.headers_mut().insert(
                "content-type",
                "application/json".parse().expect("media type"),
            );
        }
        response
    }

    fn error(&self, status: StatusCode, code: &str, message: &str) -> Response {
        self.answer(status, Some(json!({"code": code, "message": message})))
    }

    fn next_id(&self, prefix: &str) -> String {
        let mut s = self.state();
        s.next_id += 1;
        format!("{prefix}{:020}", s.next_id)
    }

    /// The merchant's ids as answers name them: `mchid`, or `sp_mchid`
    /// and `sub_mchid`.
    fn merchant_ids(&self) -> Value {
        match &self.config.sub_mchid {
            None => json!({"mchid": self.config.mchid}),
            Some(sub) => json!({"sp_mchid": self.config.mchid, "sub_mchid": sub}),
        }
    }

    /// The ids a request must carry (the query string of a GET, the body
    /// of a close): the merchant's, with the app's too where `with_app`
    /// (orders; global refunds).
    fn check_ids(
        &self,
        given: &dyn Fn(&str) -> Option<String>,
        with_app: bool,
    ) -> Result<(), String> {
        let mut want = vec![];
        match &self.config.sub_mchid {
            None => {
                want.push(("mchid", self.config.mchid.clone()));
                if with_app {
                    want.push(("appid", self.config.appid.clone()));
                }
            }
            Some(sub) => {
                want.push(("sp_mchid", self.config.mchid.clone()));
                want.push(("sub_mchid", sub.clone()));
                if with_app {
                    want.push(("sp_appid", self.config.appid.clone()));
                }
            }
        }
        for (name, value) in want {
            if given(name).as_deref() != Some(value.as_str()) {
                return Err(format!("{name} is missing or not this merchant's"));
            }
        }
        Ok(())
    }

    /// The transaction as query answers it and notifications carry it.
    fn transaction(&self, o: &Order) -> Value {
        let mut t = self.merchant_ids();
        t["appid"] = self.config.appid.clone().into();
        t["out_trade_no"] = o.out_trade_no.clone().into();
        t["trade_state"] = o.state.into();
        t["trade_state_desc"] = o.state.into();
        t["amount"] = json!({"total": o.total, "currency": o.currency});
        t["payer"] = json!({});
        if o.state == "SUCCESS" || o.state == "REFUND" {
            t["transaction_id"] = o.transaction_id.clone().into();
            t["success_time"] = o.success_time.clone().into();
            if let Some((key, openid)) = &o.openid {
                t["payer"] = json!({ *key: openid });
            }
        }
        t
    }

    /// A query's answer: the transaction, or `ORDER_NOT_EXIST`.
    fn transaction_answer(&self, order: Option<Order>) -> Response {
        match order {
            Some(o) => self.answer(StatusCode::OK, Some(self.transaction(&o))),
            None => self.error(
                StatusCode::NOT_FOUND,
                "ORDER_NOT_EXIST",
                "order does not exist",
            ),
        }
    }

    fn refund_json(&self, r: &Refund, o: &Order) -> Value {
        let mut j = self.merchant_ids();
        for (k, v) in [
            ("refund_id", json!(r.refund_id)),
            ("out_refund_no", json!(r.out_refund_no)),
            ("transaction_id", json!(o.transaction_id)),
            ("out_trade_no", json!(r.out_trade_no)),
            ("status", json!(r.status)),
            (
                "amount",
                json!({"refund": r.refund, "total": o.total, "currency": o.currency}),
            ),
        ] {
            j[k] = v;
        }
        j
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How a notification is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NotifyForgery {
    /// As WeChat Pay sends it.
    #[default]
    None,
    /// One byte of the signed body changed after signing.
    Tampered,
    /// Signed, but naming a serial the merchant never configured.
    UnknownSerial,
    /// Stamped ten minutes ago.
    Stale,
    /// The resource's ciphertext changed before the envelope was signed:
    /// the signature holds, decryption fails.
    BadCiphertext,
}

impl Simulator {
    pub async fn start(config: SimConfig) -> Simulator {
        Self::start_as(config, false).await
    }

    /// A simulator of WeChat Pay Global (`apihk`) for a global merchant:
    /// common mode, or institution mode when `sub_mchid` is set.
    pub async fn start_global(config: SimConfig) -> Simulator {
        Self::start_as(config, true).await
    }

    async fn start_as(config: SimConfig, global: bool) -> Simulator {
        let mut keys = SecretTable::new();
        let platform_key = keys.insert(config.platform_private_key.as_bytes().to_vec());
        let shared = Arc::new(Shared {
            config,
            global,
            state: Mutex::new(State::default()),
            keys,
            platform_key,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Simulator { addr, shared, task }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen for an endpoint key such as `POST jsapi`, `GET out-trade-no`,
    /// `POST close`, `POST refunds`, `GET refunds`.
    pub fn count(&self, endpoint: &str) -> u64 {
        self.shared
            .state()
            .counts
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// The paths of the requests seen (query strings included), oldest
    /// first; the last [`MAX_PATHS`].
    pub fn paths(&self) -> Vec<String> {
        self.shared.state().paths.iter().cloned().collect()
    }

    /// WeChat Pay's state of an order (`NOTPAY`, `SUCCESS`, ...).
    pub fn trade_state(&self, out_trade_no: &str) -> Option<&'static str> {
        self.shared
            .state()
            .orders
            .get(out_trade_no)
            .map(|o| o.state)
    }

    /// The payer pays: the order becomes `SUCCESS`.
    pub fn pay(&self, out_trade_no: &str) -> anyhow::Result<()> {
        let mut s = self.shared.state();
        let o = s
            .orders
            .get_mut(out_trade_no)
            .ok_or_else(|| anyhow!("no order {out_trade_no}"))?;
        if o.state != "NOTPAY" {
            return Err(anyhow!("order {out_trade_no} is {}", o.state));
        }
        o.state = "SUCCESS";
        o.success_time = Some(
            payhost_sdk::time::format_rfc3339(now(), payhost_sdk::time::CHINA)
                .map_err(|e| anyhow!("{e:?}"))?,
        );
        Ok(())
    }

    /// The refund is done (or closed): `SUCCESS` or `CLOSED`.
    pub fn settle_refund(&self, out_refund_no: &str, status: &'static str) -> anyhow::Result<()> {
        let mut s = self.shared.state();
        let r = s
            .refunds
            .get_mut(out_refund_no)
            .ok_or_else(|| anyhow!("no refund {out_refund_no}"))?;
        r.status = status;
        if status == "SUCCESS" {
            let no = r.out_trade_no.clone();
            if let Some(o) = s.orders.get_mut(&no) {
                o.state = "REFUND";
            }
        }
        Ok(())
    }

    /// Sends the order's `TRANSACTION.SUCCESS` notification; answers the
    /// receiver's status and body.
    pub async fn notify_payment(
        &self,
        out_trade_no: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let (url, resource) = {
            let s = self.shared.state();
            let o = s
                .orders
                .get(out_trade_no)
                .ok_or_else(|| anyhow!("no order {out_trade_no}"))?;
            (o.notify_url.clone(), self.shared.transaction(o))
        };
        self.send(
            &url,
            "TRANSACTION.SUCCESS",
            "transaction",
            &resource,
            forgery,
        )
        .await
    }

    /// Sends the refund's `REFUND.SUCCESS` / `REFUND.CLOSED` notification.
    pub async fn notify_refund(
        &self,
        out_refund_no: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let (url, event, resource) = {
            let s = self.shared.state();
            let r = s
                .refunds
                .get(out_refund_no)
                .ok_or_else(|| anyhow!("no refund {out_refund_no}"))?;
            let o = s
                .orders
                .get(&r.out_trade_no)
                .context("refund without order")?;
            // Notifications name the state `refund_status` (answers: `status`).
            let mut resource = self.shared.refund_json(r, o);
            if let Some(obj) = resource.as_object_mut() {
                obj.remove("status");
            }
            resource["refund_status"] = r.status.into();
            (
                r.notify_url.clone(),
                format!(
                    "REFUND.{}",
                    if r.status == "SUCCESS" {
                        "SUCCESS"
                    } else {
                        "CLOSED"
                    }
                ),
                resource,
            )
        };
        self.send(&url, &event, "refund", &resource, forgery).await
    }

    async fn send(
        &self,
        url: &str,
        event: &str,
        aad: &str,
        resource: &Value,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let cipher = aes_gcm::Aes256Gcm::new_from_slice(self.shared.config.api_v3_key.as_bytes())
            .map_err(|_| anyhow!("api_v3_key must be 32 bytes"))?;
        let nonce = format!("{:012}", self.shared.state().next_id % 1_000_000_000_000);
        let plain = resource.to_string();
        let ct = cipher
            .encrypt(
                aes_gcm::Nonce::from_slice(nonce.as_bytes()),
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| anyhow!("encrypt"))?;
        let mut ct = ct;
        if forgery == NotifyForgery::BadCiphertext
            && let Some(b) = ct.first_mut()
        {
            *b ^= 1;
        }
        let id = self.shared.next_id("EV");
        let body = json!({
            "id": id, "create_time": payhost_sdk::time::format_rfc3339(now(), payhost_sdk::time::CHINA).unwrap_or_default(),
            "event_type": event, "resource_type": "encrypt-resource", "summary": event,
            "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": encoding::base64_encode(&ct),
                         "associated_data": aad, "nonce": nonce, "original_type": aad},
        })
        .to_string();
        let at = if forgery == NotifyForgery::Stale {
            now() - 600
        } else {
            now()
        };
        let serial = if forgery == NotifyForgery::UnknownSerial {
            "PUB_KEY_ID_0000000000000000000000000000000000"
        } else {
            self.shared.config.platform_serial.as_str()
        };
        let headers = self.shared.sign(at, serial, body.as_bytes());
        let body = if forgery == NotifyForgery::Tampered {
            body.replacen(&id, &format!("{id}X"), 1)
        } else {
            body
        };
        let mut req = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.context("posting the notification")?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.unwrap_or_default()))
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks `Authorization` (§3.5): scheme, merchant, timestamp window and
/// the signature over the five lines.
fn authorized(
    s: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), &'static str> {
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization header")?;
    let rest = header
        .strip_prefix("WECHATPAY2-SHA256-RSA2048 ")
        .ok_or("not the WECHATPAY2-SHA256-RSA2048 scheme")?;
    let attr = |name: &str| {
        rest.split(',')
            .find_map(|kv| kv.trim().strip_prefix(&format!("{name}=\"")))
            .and_then(|v| v.strip_suffix('"'))
    };
    let (Some(mchid), Some(nonce), Some(ts), Some(_serial), Some(sig)) = (
        attr("mchid"),
        attr("nonce_str"),
        attr("timestamp"),
        attr("serial_no"),
        attr("signature"),
    ) else {
        return Err("an Authorization attribute is missing");
    };
    if mchid != s.config.mchid {
        return Err("mchid of Authorization is not the merchant's");
    }
    let ts: i64 = ts.parse().map_err(|_| "timestamp is not a number")?;
    if (ts - now()).abs() > WINDOW_SECS {
        return Err("timestamp outside the window");
    }
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let mut message = format!("{method}\n{path}\n{ts}\n{nonce}\n").into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    let sig = encoding::base64_decode(sig).map_err(|_| "signature is not Base64")?;
    match native::rsa_sha256_verify(&s.config.merchant_public_key, &message, &sig) {
        Ok(true) => Ok(()),
        _ => Err("signature does not verify"),
    }
}

async fn handle(
    AxState(s): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(why) = authorized(&s, &method, &uri, &headers, &body) {
        return s.error(StatusCode::UNAUTHORIZED, "SIGN_ERROR", why);
    }
    let path = uri.path();
    if let Some(answer) = transfer::handle(&s, &method, path, &headers, &body) {
        let mut st = s.state();
        *st.counts
            .entry(format!("{method} transfer-bills"))
            .or_default() += 1;
        drop(st);
        return answer;
    }
    if let Some(answer) = papay::handle(&s, &method, &uri, &body) {
        let mut st = s.state();
        *st.counts.entry(format!("{method} papay")).or_default() += 1;
        if st.paths.len() == MAX_PATHS {
            st.paths.pop_front();
        }
        st.paths
            .push_back(uri.path_and_query().map_or(path, |p| p.as_str()).into());
        drop(st);
        return answer;
    }
    let rest = [
        "/v3/pay/partner/transactions",
        "/v3/global/transactions",
        "/v3/pay/transactions",
    ]
    .iter()
    .find_map(|p| path.strip_prefix(p));
    let segments: Vec<&str> = rest
        .unwrap_or(path)
        .trim_start_matches('/')
        .split('/')
        .collect();
    let is_refunds =
        path.starts_with("/v3/refund/domestic/refunds") || path.starts_with("/v3/global/refunds");
    let json_body = || serde_json::from_slice::<Value>(&body).ok();
    let endpoint = match (&method, rest.is_some(), is_refunds, segments.as_slice()) {
        (&Method::POST, true, _, [kind @ ("jsapi" | "native")]) => format!("POST {kind}"),
        (&Method::GET, true, _, ["out-trade-no", _]) => "GET out-trade-no".into(),
        (&Method::GET, true, _, ["id", _]) => "GET id".into(),
        (&Method::POST, true, _, ["out-trade-no", _, "close"]) => "POST close".into(),
        (&Method::POST, _, true, _) => "POST refunds".into(),
        (&Method::GET, _, true, _) => "GET refunds".into(),
        _ => return s.error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such API"),
    };
    {
        let mut st = s.state();
        *st.counts.entry(endpoint.clone()).or_default() += 1;
        if st.paths.len() == MAX_PATHS {
            st.paths.pop_front();
        }
        st.paths.push_back(
            uri.path_and_query()
                .map_or(path, |p| p.as_str())
                .to_string(),
        );
    }
    if s.global && !path.starts_with("/v3/global/") {
        // apihk's answer to a global merchant on the domestic API.
        return s.error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "暂不支持境外支付 (use the /v3/global API)",
        );
    }
    let query: Vec<(String, String)> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let in_query = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let ids_of_query = match endpoint.as_str() {
        "GET out-trade-no" | "GET id" => s.check_ids(&in_query, false),
        // Global refund queries name the merchant as a query does; the
        // domestic partner one names the sub-merchant only.
        "GET refunds" if s.global => s.check_ids(&in_query, false),
        "GET refunds" => match &s.config.sub_mchid {
            Some(sub) if in_query("sub_mchid").as_deref() != Some(sub.as_str()) => {
                Err("sub_mchid is missing or not this merchant's".into())
            }
            _ => Ok(()),
        },
        "POST close" => {
            let b = json_body().unwrap_or_default();
            s.check_ids(&|k| b[k].as_str().map(String::from), false)
        }
        _ => Ok(()),
    };
    if let Err(why) = ids_of_query {
        return s.error(StatusCode::BAD_REQUEST, "PARAM_ERROR", &why);
    }
    match endpoint.as_str() {
        "POST jsapi" | "POST native" => create(&s, segments[0], json_body()),
        "GET out-trade-no" => {
            let o = s.state().orders.get(segments[1]).cloned();
            s.transaction_answer(o)
        }
        "GET id" => {
            let o = s
                .state()
                .orders
                .values()
                .find(|o| o.transaction_id == segments[1] && o.state != "NOTPAY")
                .cloned();
            s.transaction_answer(o)
        }
        "POST close" => {
            let mut st = s.state();
            match st.orders.get_mut(segments[1]) {
                None => {
                    drop(st);
                    s.error(
                        StatusCode::NOT_FOUND,
                        "ORDER_NOT_EXIST",
                        "order does not exist",
                    )
                }
                Some(o) if o.state == "SUCCESS" || o.state == "REFUND" => {
                    drop(st);
                    s.error(StatusCode::BAD_REQUEST, "ORDERPAID", "order is paid")
                }
                Some(o) => {
                    o.state = "CLOSED";
                    drop(st);
                    s.answer(StatusCode::NO_CONTENT, None)
                }
            }
        }
        "POST refunds" => refund(&s, json_body()),
        _ => {
            let no = path.rsplit('/').next().unwrap_or_default();
            let st = s.state();
            let found = st
                .refunds
                .get(no)
                .and_then(|r| st.orders.get(&r.out_trade_no).map(|o| s.refund_json(r, o)));
            drop(st);
            match found {
                Some(r) => s.answer(StatusCode::OK, Some(r)),
                None => s.error(
                    StatusCode::NOT_FOUND,
                    "RESOURCE_NOT_EXISTS",
                    "refund does not exist",
                ),
            }
        }
    }
}

fn create(s: &Shared, kind: &str, body: Option<Value>) -> Response {
    let Some(b) = body else {
        return s.error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "body is not JSON");
    };
    let text = |k: &str| b.get(k).and_then(Value::as_str);
    let (mchid, appid) = match &s.config.sub_mchid {
        None => (text("mchid"), text("appid")),
        Some(_) => (text("sp_mchid"), text("sp_appid")),
    };
    if mchid != Some(s.config.mchid.as_str()) || appid != Some(s.config.appid.as_str()) {
        return s.error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "mchid/appid do not match",
        );
    }
    if s.config.sub_mchid.is_some() && text("sub_mchid") != s.config.sub_mchid.as_deref() {
        return s.error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "sub_mchid does not match",
        );
    }
    let (Some(no), Some(notify_url), Some(_desc)) = (
        text("out_trade_no"),
        text("notify_url"),
        text("description"),
    ) else {
        return s.error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "out_trade_no, notify_url and description are required",
        );
    };
    let total = b["amount"]["total"].as_u64().filter(|t| *t > 0);
    let Some(total) = total else {
        return s.error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "amount.total must be a positive integer",
        );
    };
    let currency = match b["amount"]["currency"].as_str() {
        Some(c) => c.to_string(),
        // The domestic API defaults to CNY; the global one wants it said.
        None if !s.global => "CNY".to_string(),
        None => {
            return s.error(
                StatusCode::BAD_REQUEST,
                "PARAM_ERROR",
                "amount.currency is required",
            );
        }
    };
    if s.global {
        if !payhost_sdk::money::WECHAT_PAY_CURRENCIES.contains(&currency.as_str()) {
            return s.error(
                StatusCode::BAD_REQUEST,
                "PARAM_ERROR",
                "amount.currency is not a currency of WeChat Pay Global",
            );
        }
        if text("trade_type") != Some(kind.to_uppercase().as_str()) {
            return s.error(
                StatusCode::BAD_REQUEST,
                "PARAM_ERROR",
                "trade_type is missing or not this API's",
            );
        }
    } else if currency != "CNY" {
        return s.error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "the domestic API takes CNY only",
        );
    }
    let openid = ["openid", "sub_openid", "sp_openid"]
        .into_iter()
        .find_map(|k| b["payer"][k].as_str().map(|id| (k, id.to_string())));
    if kind == "jsapi" && openid.is_none() {
        return s.error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "payer openid is required",
        );
    }
    let existing = s.state().orders.get(no).cloned();
    if let Some(o) = existing {
        // §3.2: the same order again answers the same prepay id.
        if o.total != total || o.currency != currency {
            return s.error(
                StatusCode::FORBIDDEN,
                "OUT_TRADE_NO_USED",
                "out_trade_no was used with other parameters",
            );
        }
    } else {
        let transaction_id = s.next_id("42");
        s.state().orders.insert(
            no.into(),
            Order {
                out_trade_no: no.into(),
                transaction_id,
                total,
                currency,
                notify_url: notify_url.into(),
                openid,
                state: "NOTPAY",
                success_time: None,
            },
        );
    }
    match kind {
        "native" => s.answer(
            StatusCode::OK,
            Some(json!({"code_url": format!("weixin://wxpay/bizpayurl?pr={no}")})),
        ),
        _ => s.answer(
            StatusCode::OK,
            Some(json!({"prepay_id": format!("wx{no}")})),
        ),
    }
}

fn refund(s: &Shared, body: Option<Value>) -> Response {
    let Some(b) = body else {
        return s.error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "body is not JSON");
    };
    let Some(out_refund_no) = b["out_refund_no"].as_str() else {
        return s.error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "out_refund_no is required",
        );
    };
    let Some(amount) = b["amount"]["refund"].as_u64().filter(|a| *a > 0) else {
        return s.error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "amount.refund must be positive",
        );
    };
    // The global refund names merchant and app as its order does; a
    // domestic partner's names the sub-merchant.
    let ids = if s.global {
        s.check_ids(&|k| b[k].as_str().map(String::from), true)
    } else {
        match &s.config.sub_mchid {
            Some(sub) if b["sub_mchid"].as_str() != Some(sub.as_str()) => {
                Err("sub_mchid is missing or not this merchant's".into())
            }
            _ => Ok(()),
        }
    };
    if let Err(why) = ids {
        return s.error(StatusCode::BAD_REQUEST, "PARAM_ERROR", &why);
    }
    let currency = b["amount"]["currency"].as_str();
    if s.global && currency.is_none() {
        return s.error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "amount.currency is required",
        );
    }
    let mut st = s.state();
    let order = match (b["transaction_id"].as_str(), b["out_trade_no"].as_str()) {
        (Some(tx), _) => st.orders.values().find(|o| o.transaction_id == tx).cloned(),
        (None, Some(no)) => st.orders.get(no).cloned(),
        _ => None,
    };
    let Some(order) = order else {
        drop(st);
        return s.error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_EXISTS",
            "order does not exist",
        );
    };
    if let Some(r) = st.refunds.get(out_refund_no).cloned() {
        drop(st);
        // The same refund number refunds once.
        return s.answer(StatusCode::OK, Some(s.refund_json(&r, &order)));
    }
    if order.state != "SUCCESS" && order.state != "REFUND" {
        drop(st);
        return s.error(StatusCode::FORBIDDEN, "TRADE_ERROR", "order is not paid");
    }
    if currency.is_some_and(|c| c != order.currency) {
        drop(st);
        // Refunds are in the order's currency (§4.2).
        return s.error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "amount.currency is not the order's",
        );
    }
    let refunded: u64 = st
        .refunds
        .values()
        .filter(|r| r.out_trade_no == order.out_trade_no && r.status != "CLOSED")
        .map(|r| r.refund)
        .sum();
    if refunded + amount > order.total || b["amount"]["total"].as_u64() != Some(order.total) {
        drop(st);
        return s.error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "refund exceeds the order or total is wrong",
        );
    }
    st.next_id += 1;
    let refund = Refund {
        out_refund_no: out_refund_no.into(),
        refund_id: format!("50{:020}", st.next_id),
        out_trade_no: order.out_trade_no.clone(),
        refund: amount,
        status: "PROCESSING",
        notify_url: b["notify_url"].as_str().unwrap_or(&order.notify_url).into(),
    };
    st.refunds.insert(out_refund_no.into(), refund.clone());
    drop(st);
    s.answer(StatusCode::OK, Some(s.refund_json(&refund, &order)))
}

pub mod papay;
pub mod transfer;

#[cfg(test)]
mod tests;
