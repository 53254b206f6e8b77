//! A Supay (SuperPay) Gate API simulator (providers.md §7.3-§7.5): one JSON
//! gateway, `service` selecting `create_instant_trade`, `query_trade` or
//! `create_refund`, answered with signed JSON; form-encoded, signed payment
//! and refund notifications sent on request.
//!
//! Checked for every call, in order: seeded faults ([`SimConfig::faults`]:
//! hang, 5xx, `SYSTEM_ERROR`), POST to the gateway path, a JSON object of
//! non-empty strings (`ILLEGAL_PARAMETER`: Supay's signers disagree on empty
//! values, so a careful client sends none), only the fields the service
//! knows (a misspelt `call_back_ur` is refused), `mch_id`/`recevice_id`
//! (`ILLEGAL_MERCHANT`), `sign_type=MD5` and the signature (`ILLEGAL_SIGN`),
//! then the service's own rules. Queries and refunds are keyed by the
//! merchant's numbers: Supay's `inner_trade_no` is not a query key.
//!
//! What the real gateway does where providers.md says UNKNOWN is this
//! simulator's assumption, matching the adapter's defaults: `trade_type`
//! `PAY`/`REFUND`, `trade_status`/`refund_status` words, `error_code` in
//! `data`, `orig_outer_trade_no` in refund notifications, the `success`
//! acknowledgement.
//!
//! Not simulated: the Bridge API, bill downloads, `wx_jsapi_openid`, the
//! provider's own order expiry (see [`Simulator::expire`]).

use crate::faults::{ApiFault, FaultConfig, FaultCounts, Faults};
use anyhow::{Context, anyhow};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use payhost_sdk::native::{self, DigestAlgorithm};
use payhost_sdk::types::Money;
use payhost_sdk::{canonical, encoding, form, money};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The one gateway path (§7.3).
pub const GATEWAY_PATH: &str = "/api/gateway/merchant/order";

/// Fields every call carries.
const COMMON: [&str; 7] = [
    "service",
    "mch_id",
    "recevice_id",
    "charset",
    "version",
    "sign",
    "sign_type",
];

/// The required and the optional fields of each service (§7.3).
fn service_fields(service: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match service {
        "create_instant_trade" => (
            &[
                "mch_order_no",
                "store_name",
                "call_back_url",
                "pay_amount",
                "goods_name",
                "goods_price",
                "timeout_express",
            ],
            &[
                "pay_way",
                "pay_channel",
                "currency",
                "quantity",
                "goods_desc",
                "memo",
                "client_ip",
                "subOpenId",
            ],
        ),
        "query_trade" => (&["mch_order_no", "trade_type"], &[]),
        "create_refund" => (
            &[
                "mch_order_no",
                "call_back_url",
                "orig_mch_order_no",
                "refund_amount",
            ],
            &[],
        ),
        _ => return None,
    })
}

/// The one merchant the simulator knows.
#[derive(Clone)]
pub struct SimConfig {
    pub mch_id: String,
    pub recevice_id: String,
    pub api_key: String,
    /// The AppID put into JSAPI `pay_info`.
    pub appid: String,
    /// `trade_type` values of `query_trade` for payments and for refunds.
    pub query_trade_type: String,
    pub refund_query_trade_type: String,
    /// Seeded API faults; none by default.
    pub faults: FaultConfig,
}

impl SimConfig {
    /// A merchant whose `recevice_id` is its `mch_id`, with the adapter's
    /// default `trade_type` values and no faults.
    pub fn new(mch_id: &str, api_key: &str) -> Self {
        SimConfig {
            mch_id: mch_id.into(),
            recevice_id: mch_id.into(),
            api_key: api_key.into(),
            appid: "wx5a1e7f1b2c3d4e5f".into(),
            query_trade_type: "PAY".into(),
            refund_query_trade_type: "REFUND".into(),
            faults: FaultConfig::none(),
        }
    }
}

#[derive(Debug, Clone)]
struct Order {
    inner_trade_no: String,
    transaction_id: String,
    amount: Money,
    notify_url: String,
    pay_way: String,
    status: &'static str,
}

#[derive(Debug, Clone)]
struct Refund {
    inner_trade_no: String,
    orig_mch_order_no: String,
    amount: Money,
    notify_url: String,
    status: &'static str,
}

#[derive(Default)]
struct State {
    orders: BTreeMap<String, Order>,
    refunds: BTreeMap<String, Refund>,
    /// Calls per `service` (refused ones included).
    counts: BTreeMap<String, u64>,
    next_id: u64,
}

struct Shared {
    config: SimConfig,
    base_url: String,
    state: Mutex<State>,
    faults: Mutex<Faults>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sign(&self, pairs: &[(String, String)]) -> String {
        sign_with(&self.config.api_key, pairs)
    }

    /// `status=T` with `data` signed (its string fields, as the adapter
    /// assumes).
    fn ok(&self, mut data: Value) -> Response {
        let pairs: Vec<(String, String)> = data
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        data["sign"] = self.sign(&pairs).into();
        data["sign_type"] = "MD5".into();
        json_response(
            StatusCode::OK,
            json!({"status": "T", "message": "success", "data": data}),
        )
    }

    fn next_id(&self, prefix: &str) -> String {
        let mut s = self.state();
        s.next_id += 1;
        format!("{prefix}{:016}", s.next_id)
    }
}

/// `MD5(sorted k=v&...&key=KEY)`, upper-case hex, over every field but
/// `sign` and `sign_type`, empty values skipped.
fn sign_with(key: &str, pairs: &[(String, String)]) -> String {
    let a = canonical::sorted_pairs(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &["sign", "sign_type"],
    );
    let temp = if a.is_empty() {
        format!("key={key}")
    } else {
        format!("{a}&key={key}")
    };
    encoding::hex_upper(&native::digest(DigestAlgorithm::Md5, temp.as_bytes()))
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `status=F` with Supay's error code in `data` (unsigned).
fn declined(code: &str, message: &str) -> Response {
    json_response(
        StatusCode::OK,
        json!({"status": "F", "message": message, "data": {"error_code": code}}),
    )
}

/// How a notification is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NotifyForgery {
    /// As Supay sends it.
    #[default]
    None,
    /// The amount changed after signing.
    Tampered,
    /// Signed with a key that is not the merchant's.
    WrongKey,
    /// Correctly signed, one minor unit more than the order.
    WrongAmount,
    /// Correctly signed, in the other currency (AUD <-> CNY).
    WrongCurrency,
    /// Correctly signed, for a merchant order number nobody created.
    UnknownOrder,
}

pub struct Simulator {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Simulator {
    pub async fn start(config: SimConfig) -> Simulator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            faults: Mutex::new(Faults::new(config.faults.clone())),
            config,
            base_url: format!("http://{addr}"),
            state: Mutex::new(State::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Simulator { shared, task }
    }

    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Calls seen for a `service` (`create_instant_trade`, `query_trade`,
    /// `create_refund`), refused ones included.
    pub fn count(&self, service: &str) -> u64 {
        self.shared
            .state()
            .counts
            .get(service)
            .copied()
            .unwrap_or(0)
    }

    /// The faults injected so far.
    pub fn fault_counts(&self) -> FaultCounts {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counts()
    }

    /// Supay's `trade_status` of an order.
    pub fn trade_status(&self, mch_order_no: &str) -> Option<&'static str> {
        self.shared
            .state()
            .orders
            .get(mch_order_no)
            .map(|o| o.status)
    }

    /// Supay's `inner_trade_no` of an order.
    pub fn inner_trade_no(&self, mch_order_no: &str) -> Option<String> {
        self.shared
            .state()
            .orders
            .get(mch_order_no)
            .map(|o| o.inner_trade_no.clone())
    }

    /// WeChat's transaction id of an order (reported once it is paid).
    pub fn transaction_id(&self, mch_order_no: &str) -> Option<String> {
        self.shared
            .state()
            .orders
            .get(mch_order_no)
            .map(|o| o.transaction_id.clone())
    }

    /// The payer pays: `WAIT_BUYER_PAY` becomes `TRADE_SUCCESS`.
    pub fn pay(&self, mch_order_no: &str) -> anyhow::Result<()> {
        self.move_order(mch_order_no, "TRADE_SUCCESS")
    }

    /// Supay lets an unpaid order expire: `TRADE_CLOSED`.
    pub fn expire(&self, mch_order_no: &str) -> anyhow::Result<()> {
        self.move_order(mch_order_no, "TRADE_CLOSED")
    }

    fn move_order(&self, no: &str, to: &'static str) -> anyhow::Result<()> {
        let mut s = self.shared.state();
        let o = s
            .orders
            .get_mut(no)
            .ok_or_else(|| anyhow!("no order {no}"))?;
        if o.status != "WAIT_BUYER_PAY" {
            return Err(anyhow!("order {no} is {}", o.status));
        }
        o.status = to;
        Ok(())
    }

    /// The refund is done (`REFUND_SUCCESS`) or failed (`REFUND_FAILED`).
    pub fn settle_refund(&self, refund_no: &str, succeeded: bool) -> anyhow::Result<()> {
        let mut s = self.shared.state();
        let r = s
            .refunds
            .get_mut(refund_no)
            .ok_or_else(|| anyhow!("no refund {refund_no}"))?;
        r.status = if succeeded {
            "REFUND_SUCCESS"
        } else {
            "REFUND_FAILED"
        };
        Ok(())
    }

    /// The fields of an order's `trade_status_sync` notification, signed.
    pub fn payment_notification(
        &self,
        mch_order_no: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(String, Vec<(String, String)>)> {
        let s = self.shared.state();
        let o = s
            .orders
            .get(mch_order_no)
            .ok_or_else(|| anyhow!("no order {mch_order_no}"))?;
        let mut pairs = vec![
            ("notify_type", "trade_status_sync".to_string()),
            ("mch_id", self.shared.config.mch_id.clone()),
            ("outer_trade_no", mch_order_no.to_string()),
            ("inner_trade_no", o.inner_trade_no.clone()),
            ("trade_status", o.status.to_string()),
            ("trade_amount", decimal(&o.amount)?),
            ("currency", o.amount.currency.clone()),
        ];
        if o.status == "TRADE_SUCCESS" {
            pairs.push(("transaction_id", o.transaction_id.clone()));
        }
        let url = o.notify_url.clone();
        drop(s);
        Ok((url, self.forge(pairs, "trade_amount", forgery)?))
    }

    /// The fields of a refund's `refund_status_sync` notification, signed.
    pub fn refund_notification(
        &self,
        refund_no: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(String, Vec<(String, String)>)> {
        let s = self.shared.state();
        let r = s
            .refunds
            .get(refund_no)
            .ok_or_else(|| anyhow!("no refund {refund_no}"))?;
        let pairs = vec![
            ("notify_type", "refund_status_sync".to_string()),
            ("mch_id", self.shared.config.mch_id.clone()),
            ("outer_trade_no", refund_no.to_string()),
            ("orig_outer_trade_no", r.orig_mch_order_no.clone()),
            ("inner_trade_no", r.inner_trade_no.clone()),
            ("refund_status", r.status.to_string()),
            ("refund_amount", decimal(&r.amount)?),
            ("currency", r.amount.currency.clone()),
        ];
        let url = r.notify_url.clone();
        drop(s);
        Ok((url, self.forge(pairs, "refund_amount", forgery)?))
    }

    /// Applies `forgery` to the fields and signs them (before or after, as
    /// the forgery needs).
    fn forge(
        &self,
        pairs: Vec<(&str, String)>,
        amount_field: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let mut pairs: Vec<(String, String)> =
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let currency = pairs
            .iter()
            .find(|(k, _)| k == "currency")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let set = |pairs: &mut Vec<(String, String)>, name: &str, value: String| {
            if let Some(p) = pairs.iter_mut().find(|(k, _)| k == name) {
                p.1 = value;
            }
        };
        let get = |pairs: &[(String, String)], name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let one_more = |text: &str| -> anyhow::Result<String> {
            let mut m = money::from_decimal(text, &currency).map_err(|e| anyhow!("{e}"))?;
            m.minor += 1;
            decimal(&m)
        };
        match forgery {
            NotifyForgery::WrongAmount => {
                let v = one_more(&get(&pairs, amount_field))?;
                set(&mut pairs, amount_field, v);
            }
            NotifyForgery::WrongCurrency => {
                let other = if currency == "AUD" { "CNY" } else { "AUD" };
                set(&mut pairs, "currency", other.into());
            }
            NotifyForgery::UnknownOrder => {
                let field = if amount_field == "trade_amount" {
                    "outer_trade_no"
                } else {
                    "orig_outer_trade_no"
                };
                let v = format!("{}NOSUCH", get(&pairs, field));
                set(&mut pairs, field, v);
            }
            _ => {}
        }
        let key = if forgery == NotifyForgery::WrongKey {
            "not-the-merchant-key"
        } else {
            self.shared.config.api_key.as_str()
        };
        let sign = sign_with(key, &pairs);
        if forgery == NotifyForgery::Tampered {
            let v = one_more(&get(&pairs, amount_field))?;
            set(&mut pairs, amount_field, v);
        }
        pairs.push(("sign".into(), sign));
        pairs.push(("sign_type".into(), "MD5".into()));
        Ok(pairs)
    }

    /// POSTs an order's payment notification once; answers the receiver's
    /// status and body. Call it twice for a duplicate.
    pub async fn notify_payment(
        &self,
        mch_order_no: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let (url, pairs) = self.payment_notification(mch_order_no, forgery)?;
        post_form(&url, &pairs).await
    }

    /// Like [`notify_payment`](Self::notify_payment), after `delay` (capped
    /// at [`crate::faults::MAX_NOTIFY_DELAY`]), in the background.
    pub fn notify_payment_later(
        &self,
        mch_order_no: &str,
        forgery: NotifyForgery,
        delay: Duration,
    ) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<(u16, String)>>> {
        // Built now, so a late notification says what was true when sent.
        let (url, pairs) = self.payment_notification(mch_order_no, forgery)?;
        let delay = delay.min(crate::faults::MAX_NOTIFY_DELAY);
        Ok(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            post_form(&url, &pairs).await
        }))
    }

    /// POSTs a refund's notification once.
    pub async fn notify_refund(
        &self,
        refund_no: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let (url, pairs) = self.refund_notification(refund_no, forgery)?;
        post_form(&url, &pairs).await
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn post_form(url: &str, pairs: &[(String, String)]) -> anyhow::Result<(u16, String)> {
    let body = form::encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let resp = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .context("posting the notification")?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.unwrap_or_default()))
}

fn decimal(m: &Money) -> anyhow::Result<String> {
    money::to_decimal(m).map_err(|e| anyhow!("{e}"))
}

async fn handle(
    AxState(s): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    if method != Method::POST || uri.path() != GATEWAY_PATH {
        return (StatusCode::NOT_FOUND, "no such API").into_response();
    }
    let parsed: Option<BTreeMap<String, Value>> = serde_json::from_slice(&body).ok();
    let service = parsed
        .as_ref()
        .and_then(|m| m.get("service"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    *s.state().counts.entry(service.clone()).or_default() += 1;
    let fault = s
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .api_call();
    let hang = s.faults.lock().unwrap_or_else(|p| p.into_inner()).hang();
    match fault {
        ApiFault::None => {}
        ApiFault::Http5xx => {
            return (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response();
        }
        ApiFault::SystemError => return declined("SYSTEM_ERROR", "system busy, try again"),
        ApiFault::Timeout { applied } => {
            let answer = applied.then(|| serve(&s, &service, parsed));
            tokio::time::sleep(hang).await;
            return answer.unwrap_or_else(|| declined("SYSTEM_ERROR", "timed out"));
        }
    }
    serve(&s, &service, parsed)
}

/// The checks common to every call, then the service.
fn serve(s: &Shared, service: &str, parsed: Option<BTreeMap<String, Value>>) -> Response {
    let Some(raw) = parsed else {
        return declined("ILLEGAL_PARAMETER", "body is not a JSON object");
    };
    let mut f = BTreeMap::new();
    for (k, v) in raw {
        match v {
            Value::String(text) if !text.is_empty() => {
                f.insert(k, text);
            }
            Value::String(_) => {
                return declined("ILLEGAL_PARAMETER", &format!("`{k}` is empty"));
            }
            _ => return declined("ILLEGAL_PARAMETER", &format!("`{k}` is not a string")),
        }
    }
    let Some((required, optional)) = service_fields(service) else {
        return declined("ILLEGAL_SERVICE", &format!("unknown service `{service}`"));
    };
    if let Some(unknown) = f.keys().find(|k| {
        !COMMON.contains(&k.as_str())
            && !required.contains(&k.as_str())
            && !optional.contains(&k.as_str())
    }) {
        return declined(
            "ILLEGAL_PARAMETER",
            &format!("`{unknown}` is not a field of {service}"),
        );
    }
    if let Some(missing) = COMMON.iter().chain(required).find(|k| !f.contains_key(**k)) {
        return declined("ILLEGAL_PARAMETER", &format!("`{missing}` is required"));
    }
    if f["mch_id"] != s.config.mch_id || f["recevice_id"] != s.config.recevice_id {
        return declined("ILLEGAL_MERCHANT", "mch_id / recevice_id unknown");
    }
    if f["charset"] != "UTF-8" || f["version"] != "1.0" {
        return declined("ILLEGAL_PARAMETER", "charset must be UTF-8, version 1.0");
    }
    let pairs: Vec<(String, String)> = f.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if f["sign_type"] != "MD5" || !canonical::hex_signature_matches(&f["sign"], &s.sign(&pairs)) {
        return declined("ILLEGAL_SIGN", "signature does not verify");
    }
    match service {
        "create_instant_trade" => create(s, &f),
        "query_trade" => query(s, &f),
        _ => refund(s, &f),
    }
}

fn create(s: &Shared, f: &BTreeMap<String, String>) -> Response {
    let currency = f.get("currency").map_or("AUD", String::as_str);
    if currency != "AUD" && currency != "CNY" {
        return declined("ILLEGAL_CURRENCY", "currency must be AUD or CNY");
    }
    let (Ok(amount), Ok(price)) = (
        money::from_decimal(&f["pay_amount"], currency),
        money::from_decimal(&f["goods_price"], currency),
    ) else {
        return declined("ILLEGAL_AMOUNT", "pay_amount / goods_price are not amounts");
    };
    let quantity: u64 = match f.get("quantity").map_or(Ok(1), |q| q.parse()) {
        Ok(q) if q > 0 => q,
        _ => return declined("ILLEGAL_PARAMETER", "quantity must be a positive integer"),
    };
    if amount.minor == 0 || price.minor.checked_mul(quantity) != Some(amount.minor) {
        return declined(
            "ILLEGAL_AMOUNT",
            "pay_amount must be goods_price x quantity",
        );
    }
    let timeout = &f["timeout_express"];
    if !(timeout.ends_with('m')
        && timeout.len() > 1
        && timeout[..timeout.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_digit()))
    {
        return declined("ILLEGAL_PARAMETER", "timeout_express must be like 30m");
    }
    let pay_way = f.get("pay_way").map_or("SDK", String::as_str);
    let channel = f.get("pay_channel").map(String::as_str);
    match (pay_way, channel) {
        ("JSAPI" | "NATIVE" | "MWEB", Some("WXPAY")) => {}
        ("H5" | "PC", None) => {}
        ("H5" | "PC", Some(_)) => {
            return declined("ILLEGAL_PARAMETER", "the cashier takes no pay_channel");
        }
        _ => {
            return declined(
                "ILLEGAL_PAY_WAY",
                &format!("pay_way `{pay_way}` with pay_channel {channel:?}"),
            );
        }
    }
    if pay_way == "JSAPI" && !f.contains_key("subOpenId") {
        return declined("ILLEGAL_PARAMETER", "subOpenId is required for JSAPI");
    }
    let no = f["mch_order_no"].clone();
    let existing = s.state().orders.get(&no).cloned();
    let order = match existing {
        // The same order again gets the same answer; other terms are refused.
        Some(o) if o.amount == amount && o.pay_way == pay_way => o,
        Some(_) => return declined("ORDER_EXISTS", "mch_order_no was used with other terms"),
        None => {
            let o = Order {
                inner_trade_no: s.next_id("SP"),
                transaction_id: s.next_id("42000"),
                amount,
                notify_url: f["call_back_url"].clone(),
                pay_way: pay_way.into(),
                status: "WAIT_BUYER_PAY",
            };
            s.state().orders.insert(no.clone(), o.clone());
            o
        }
    };
    let pay_info = match pay_way {
        "JSAPI" => {
            let package = format!("prepay_id=wx{}", order.inner_trade_no);
            let params = [
                ("appId", s.config.appid.clone()),
                ("timeStamp", "1700000000".to_string()),
                ("nonceStr", order.inner_trade_no.clone()),
                ("package", package),
                ("signType", "MD5".to_string()),
            ];
            let pairs: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            let mut info: serde_json::Map<String, Value> = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone().into()))
                .collect();
            info.insert("paySign".into(), s.sign(&pairs).into());
            Value::Object(info).to_string()
        }
        "NATIVE" => format!("weixin://wxpay/bizpayurl?pr={}", order.inner_trade_no),
        "MWEB" => format!(
            "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx{}",
            order.inner_trade_no
        ),
        _ => format!("{}/cashier/{}", s.base_url, order.inner_trade_no),
    };
    s.ok(json!({
        "result": true,
        "mch_order_no": no,
        "inner_trade_no": order.inner_trade_no,
        "pay_info": pay_info,
    }))
}

fn query(s: &Shared, f: &BTreeMap<String, String>) -> Response {
    let no = &f["mch_order_no"];
    let trade_type = &f["trade_type"];
    let st = s.state();
    if *trade_type == s.config.query_trade_type {
        // Keyed by the merchant's number only: an inner_trade_no finds nothing.
        let Some(o) = st.orders.get(no).cloned() else {
            drop(st);
            return declined("ORDER_NOT_EXIST", "no order with this mch_order_no");
        };
        drop(st);
        let mut data = json!({
            "mch_order_no": no,
            "inner_trade_no": o.inner_trade_no,
            "trade_status": o.status,
            "trade_amount": decimal(&o.amount).unwrap_or_default(),
            "currency": o.amount.currency,
        });
        if o.status == "TRADE_SUCCESS" {
            data["transaction_id"] = o.transaction_id.into();
        }
        s.ok(data)
    } else if *trade_type == s.config.refund_query_trade_type {
        let Some(r) = st.refunds.get(no).cloned() else {
            drop(st);
            return declined("ORDER_NOT_EXIST", "no refund with this mch_order_no");
        };
        drop(st);
        s.ok(json!({
            "mch_order_no": no,
            "orig_mch_order_no": r.orig_mch_order_no,
            "inner_trade_no": r.inner_trade_no,
            "refund_status": r.status,
            "refund_amount": decimal(&r.amount).unwrap_or_default(),
            "currency": r.amount.currency,
        }))
    } else {
        drop(st);
        declined(
            "ILLEGAL_TRADE_TYPE",
            &format!("trade_type `{trade_type}` is unknown"),
        )
    }
}

fn refund(s: &Shared, f: &BTreeMap<String, String>) -> Response {
    let no = f["mch_order_no"].clone();
    let orig = f["orig_mch_order_no"].clone();
    if no == orig {
        return declined("ILLEGAL_PARAMETER", "the refund needs its own mch_order_no");
    }
    let mut st = s.state();
    let Some(order) = st.orders.get(&orig).cloned() else {
        drop(st);
        return declined("ORDER_NOT_EXIST", "no order with this orig_mch_order_no");
    };
    let Ok(amount) = money::from_decimal(&f["refund_amount"], &order.amount.currency) else {
        drop(st);
        return declined("ILLEGAL_AMOUNT", "refund_amount is not an amount");
    };
    let answer = |r: &Refund| {
        json!({
            "result": true,
            "mch_order_no": no,
            "orig_mch_order_no": r.orig_mch_order_no,
            "inner_trade_no": r.inner_trade_no,
            "refund_status": r.status,
            "refund_amount": decimal(&r.amount).unwrap_or_default(),
        })
    };
    if let Some(r) = st.refunds.get(&no).cloned() {
        drop(st);
        // The same refund number refunds once.
        return if r.orig_mch_order_no == orig && r.amount == amount {
            s.ok(answer(&r))
        } else {
            declined("REFUND_EXISTS", "mch_order_no was used for another refund")
        };
    }
    if order.status != "TRADE_SUCCESS" {
        drop(st);
        return declined("TRADE_STATUS_ERROR", "the order is not paid");
    }
    let refunded: u64 = st
        .refunds
        .values()
        .filter(|r| r.orig_mch_order_no == orig && r.status != "REFUND_FAILED")
        .map(|r| r.amount.minor)
        .sum();
    if amount.minor == 0 || refunded + amount.minor > order.amount.minor {
        drop(st);
        return declined("REFUND_AMOUNT_EXCEEDED", "refunds exceed the order");
    }
    st.next_id += 1;
    let r = Refund {
        inner_trade_no: format!("SR{:016}", st.next_id),
        orig_mch_order_no: orig,
        amount,
        notify_url: f["call_back_url"].clone(),
        status: "REFUND_PROCESSING",
    };
    st.refunds.insert(no.clone(), r.clone());
    drop(st);
    s.ok(answer(&r))
}

#[cfg(test)]
mod tests {
    //! Loopback tests: requests signed here with the native MD5, sent over
    //! real HTTP.
    use super::*;

    const MCH: &str = "100001";
    const KEY: &str = "TESTKEY0123456789abcdef";

    fn signed(fields: &[(&str, &str)], key: &str) -> Value {
        let mut pairs: Vec<(String, String)> = [
            ("mch_id", MCH),
            ("recevice_id", MCH),
            ("charset", "UTF-8"),
            ("version", "1.0"),
        ]
        .iter()
        .chain(fields)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sign = sign_with(key, &pairs);
        pairs.push(("sign".into(), sign));
        pairs.push(("sign_type".into(), "MD5".into()));
        Value::Object(pairs.into_iter().map(|(k, v)| (k, v.into())).collect())
    }

    async fn call(sim: &Simulator, body: &Value) -> Value {
        reqwest::Client::new()
            .post(format!("{}{GATEWAY_PATH}", sim.base_url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap()
    }

    fn create_fields<'a>(no: &'a str, pay_way: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut f = vec![
            ("service", "create_instant_trade"),
            ("mch_order_no", no),
            ("store_name", "Demo"),
            ("call_back_url", "http://127.0.0.1:9/notify"),
            ("pay_amount", "2.00"),
            ("goods_name", "goods"),
            ("goods_price", "1.00"),
            ("quantity", "2"),
            ("timeout_express", "30m"),
            ("currency", "AUD"),
            ("pay_way", pay_way),
        ];
        if pay_way != "H5" {
            f.push(("pay_channel", "WXPAY"));
        }
        if pay_way == "JSAPI" {
            f.push(("subOpenId", "oTEST"));
        }
        f
    }

    fn code(answer: &Value) -> &str {
        answer["data"]["error_code"].as_str().unwrap_or("")
    }

    #[tokio::test]
    async fn requests_are_checked_strictly() {
        let sim = Simulator::start(SimConfig::new(MCH, KEY)).await;
        let good = create_fields("ORDER0001", "JSAPI");
        assert_eq!(call(&sim, &signed(&good, "other-key")).await["status"], "F");
        assert_eq!(
            code(&call(&sim, &signed(&good, "other-key")).await),
            "ILLEGAL_SIGN"
        );
        // shopxo's misspelling of call_back_url.
        let misspelt: Vec<_> = good
            .iter()
            .map(|&(k, v)| {
                (
                    if k == "call_back_url" {
                        "call_back_ur"
                    } else {
                        k
                    },
                    v,
                )
            })
            .collect();
        assert_eq!(
            code(&call(&sim, &signed(&misspelt, KEY)).await),
            "ILLEGAL_PARAMETER"
        );
        let mut empty = good.clone();
        empty.push(("memo", ""));
        assert_eq!(
            code(&call(&sim, &signed(&empty, KEY)).await),
            "ILLEGAL_PARAMETER"
        );
        let mut tampered = signed(&good, KEY);
        tampered["pay_amount"] = "0.02".into();
        tampered["goods_price"] = "0.01".into();
        assert_eq!(code(&call(&sim, &tampered).await), "ILLEGAL_SIGN");
        let mut other = SimConfig::new("999", KEY);
        other.recevice_id = "999".into();
        let sim2 = Simulator::start(other).await;
        assert_eq!(
            code(&call(&sim2, &signed(&good, KEY)).await),
            "ILLEGAL_MERCHANT"
        );
        let mut no_openid = good.clone();
        no_openid.retain(|(k, _)| *k != "subOpenId");
        assert_eq!(
            code(&call(&sim, &signed(&no_openid, KEY)).await),
            "ILLEGAL_PARAMETER"
        );
        let mut wrong_total = good.clone();
        wrong_total.retain(|(k, _)| *k != "quantity");
        assert_eq!(
            code(&call(&sim, &signed(&wrong_total, KEY)).await),
            "ILLEGAL_AMOUNT"
        );
        assert!(sim.trade_status("ORDER0001").is_none());

        let ok = call(&sim, &signed(&good, KEY)).await;
        assert_eq!(ok["status"], "T", "{ok}");
        let info: Value = serde_json::from_str(ok["data"]["pay_info"].as_str().unwrap()).unwrap();
        assert!(info["paySign"].is_string());
        // The answer is signed over its string fields.
        let data = ok["data"].as_object().unwrap();
        let pairs: Vec<(String, String)> = data
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect();
        assert_eq!(data["sign"], sign_with(KEY, &pairs));
        assert_eq!(sim.count("create_instant_trade"), 8);
    }

    #[tokio::test]
    async fn queries_take_the_merchant_number_only_and_refunds_are_bounded() {
        let sim = Simulator::start(SimConfig::new(MCH, KEY)).await;
        let created = call(&sim, &signed(&create_fields("ORDER0002", "H5"), KEY)).await;
        assert!(
            created["data"]["pay_info"]
                .as_str()
                .unwrap()
                .contains("/cashier/"),
            "{created}"
        );
        let inner = sim.inner_trade_no("ORDER0002").unwrap();
        let q = |no: &str, tt: &str| {
            signed(
                &[
                    ("service", "query_trade"),
                    ("mch_order_no", no),
                    ("trade_type", tt),
                ],
                KEY,
            )
        };
        let a = call(&sim, &q("ORDER0002", "PAY")).await;
        assert_eq!(a["data"]["trade_status"], "WAIT_BUYER_PAY", "{a}");
        assert!(a["data"].get("transaction_id").is_none());
        assert_eq!(
            code(&call(&sim, &q(&inner, "PAY")).await),
            "ORDER_NOT_EXIST"
        );
        assert_eq!(
            code(&call(&sim, &q("ORDER0002", "X")).await),
            "ILLEGAL_TRADE_TYPE"
        );
        let refund = |no: &str, amount: &str| {
            signed(
                &[
                    ("service", "create_refund"),
                    ("mch_order_no", no),
                    ("orig_mch_order_no", "ORDER0002"),
                    ("refund_amount", amount),
                    ("call_back_url", "http://127.0.0.1:9/notify"),
                ],
                KEY,
            )
        };
        assert_eq!(
            code(&call(&sim, &refund("R1", "1.00")).await),
            "TRADE_STATUS_ERROR"
        );
        sim.pay("ORDER0002").unwrap();
        let a = call(&sim, &q("ORDER0002", "PAY")).await;
        assert_eq!(a["data"]["trade_status"], "TRADE_SUCCESS");
        assert_eq!(a["data"]["trade_amount"], "2.00");
        assert!(a["data"]["transaction_id"].is_string());
        assert_eq!(call(&sim, &refund("R1", "1.50")).await["status"], "T");
        // The same number again: the same refund, not a second one.
        assert_eq!(call(&sim, &refund("R1", "1.50")).await["status"], "T");
        assert_eq!(
            code(&call(&sim, &refund("R2", "0.51")).await),
            "REFUND_AMOUNT_EXCEEDED"
        );
        assert_eq!(
            code(&call(&sim, &refund("ORDER0002", "0.10")).await),
            "ILLEGAL_PARAMETER"
        );
        let a = call(&sim, &q("R1", "REFUND")).await;
        assert_eq!(a["data"]["refund_status"], "REFUND_PROCESSING", "{a}");
        sim.settle_refund("R1", true).unwrap();
        let a = call(&sim, &q("R1", "REFUND")).await;
        assert_eq!(a["data"]["refund_status"], "REFUND_SUCCESS");
        assert_eq!(a["data"]["orig_mch_order_no"], "ORDER0002");
    }

    #[tokio::test]
    async fn faults_decline_answer_5xx_and_hang() {
        let with = |faults: FaultConfig| {
            let mut c = SimConfig::new(MCH, KEY);
            c.faults = FaultConfig {
                max_faults: 1,
                ..faults
            };
            c
        };
        let body = signed(&create_fields("ORDER0003", "NATIVE"), KEY);
        let url = |sim: &Simulator| format!("{}{GATEWAY_PATH}", sim.base_url());
        let sim = Simulator::start(with(FaultConfig {
            api_5xx: 1.0,
            ..FaultConfig::none()
        }))
        .await;
        let r = reqwest::Client::new()
            .post(url(&sim))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 503);
        // The budget of one fault is spent: the next call goes through.
        assert_eq!(call(&sim, &body).await["status"], "T");
        let sim = Simulator::start(with(FaultConfig {
            api_system_error: 1.0,
            ..FaultConfig::none()
        }))
        .await;
        assert_eq!(code(&call(&sim, &body).await), "SYSTEM_ERROR");
        assert!(sim.trade_status("ORDER0003").is_none());
        let sim = Simulator::start(with(FaultConfig {
            api_timeout: 1.0,
            hang: Duration::from_secs(5),
            ..FaultConfig::none()
        }))
        .await;
        let r = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap()
            .post(url(&sim))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        assert!(r.unwrap_err().is_timeout());
        let c = sim.fault_counts();
        assert_eq!(c.timeouts_applied + c.timeouts_unapplied, 1);
    }

    #[tokio::test]
    async fn notifications_are_sent_once_twice_late_or_forged() {
        use axum::routing::post;
        type Received = Vec<Vec<(String, String)>>;
        let got: Arc<Mutex<Received>> = Arc::default();
        let sink = got.clone();
        let app = Router::new().route(
            "/notify",
            post(move |body: Bytes| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(form::decode(&body));
                    "success"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let notify_url = format!("http://{}/notify", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let sim = Simulator::start(SimConfig::new(MCH, KEY)).await;
        let mut fields = create_fields("ORDER0004", "NATIVE");
        for f in fields.iter_mut() {
            if f.0 == "call_back_url" {
                f.1 = &notify_url;
            }
        }
        assert_eq!(call(&sim, &signed(&fields, KEY)).await["status"], "T");
        sim.pay("ORDER0004").unwrap();
        for _ in 0..2 {
            let (status, body) = sim
                .notify_payment("ORDER0004", NotifyForgery::None)
                .await
                .unwrap();
            assert_eq!((status, body.as_str()), (200, "success"));
        }
        let late = sim
            .notify_payment_later("ORDER0004", NotifyForgery::None, Duration::from_millis(50))
            .unwrap();
        assert_eq!(late.await.unwrap().unwrap().0, 200);
        for forgery in [
            NotifyForgery::Tampered,
            NotifyForgery::WrongKey,
            NotifyForgery::WrongAmount,
            NotifyForgery::WrongCurrency,
            NotifyForgery::UnknownOrder,
        ] {
            sim.notify_payment("ORDER0004", forgery).await.unwrap();
        }
        let got = got.lock().unwrap().clone();
        assert_eq!(got.len(), 8);
        let verifies = |f: &Vec<(String, String)>| {
            let sign = &f.iter().find(|(k, _)| k == "sign").unwrap().1;
            *sign == sign_with(KEY, f)
        };
        let field = |f: &Vec<(String, String)>, name: &str| {
            f.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        // Three genuine copies, then: tampered and wrong key do not verify,
        // the other three do but contradict the order.
        assert!(got[..3].iter().all(verifies));
        assert_eq!(got[0], got[1]);
        assert!(!verifies(&got[3]) && !verifies(&got[4]));
        assert!(got[5..].iter().all(verifies));
        assert_eq!(field(&got[0], "trade_amount"), "2.00");
        assert_eq!(field(&got[3], "trade_amount"), "2.01");
        assert_eq!(field(&got[5], "trade_amount"), "2.01");
        assert_eq!(field(&got[6], "currency"), "CNY");
        assert_eq!(field(&got[7], "outer_trade_no"), "ORDER0004NOSUCH");
        assert_eq!(field(&got[0], "trade_status"), "TRADE_SUCCESS");
        assert!(field(&got[0], "transaction_id").starts_with("42000"));
    }
}
