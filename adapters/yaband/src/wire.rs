//! Yaband's messages, named as its documentation names them (providers.md
//! §5.1–5.6): one endpoint, an envelope whose `method` selects the call,
//! the call's fields in `data`.

use payhost_sdk::prelude::*;
use serde::{Deserialize, Deserializer};

/// §5.1: the only endpoint.
pub const DEFAULT_BASE_URL: &str = "https://mapi.yabandpay.com";
pub const PATH: &str = "/Payments";

/// §5.2: the `method` of each call.
pub mod method {
    pub const MINI_PAY: &str = "v3.CreatePaymentsWechatMiniPay";
    pub const CREATE_PAYMENTS: &str = "v3.CreatePayments";
    pub const NATIVE_PAY: &str = "v3.CreateWechatNativePay";
    pub const CARD_PAYMENTS: &str = "v3.CreateCardPayments";
    pub const QUERY_ORDER: &str = "v3.QueryOrder";
    pub const CREATE_REFUND: &str = "v3.CreateRefund";
    pub const QUERY_REFUND: &str = "v3.QueryRefundOrder";
}

/// Yaband writes some values as strings and others as numbers; both are
/// read as text.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match json::Value::deserialize(d)? {
        json::Value::Null => None,
        json::Value::String(s) => Some(s),
        json::Value::Number(n) => Some(n.to_string()),
        json::Value::Bool(b) => Some(b.to_string()),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected text, found {other}"
            )));
        }
    })
}

/// §5.1: the answer envelope.
#[derive(Debug, Deserialize)]
pub struct Answer {
    /// `true` on success; some answers write it as a string.
    #[serde(default)]
    pub status: json::Value,
    #[serde(default, deserialize_with = "text")]
    pub code: Option<String>,
    #[serde(default)]
    pub data: json::Value,
    #[serde(default, deserialize_with = "text")]
    pub message: Option<String>,
    /// The answer's signature over `data`, when Yaband sends one.
    #[serde(default, deserialize_with = "text")]
    pub sign: Option<String>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        matches!(&self.status, json::Value::Bool(true))
            || matches!(&self.status, json::Value::String(s) if s == "true")
    }
}

/// §5.2: what a create call answers.
#[derive(Debug, Deserialize)]
pub struct Created {
    #[serde(default, deserialize_with = "text")]
    pub order_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub trade_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub amount: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub currency: Option<String>,
    /// The payment page or QR URL (every method but the mini-program).
    #[serde(default, deserialize_with = "text")]
    pub url: Option<String>,
    /// The mini-program call's `wx.requestPayment` object.
    #[serde(default)]
    pub parameters: json::Value,
}

/// §5.3 `transaction_info` of a query, and §5.5 a notification's `data`
/// (payment or refund).
#[derive(Debug, Default, Deserialize)]
pub struct Transaction {
    /// `payment` or `refund` (notifications).
    #[serde(rename = "type", default, deserialize_with = "text")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub user: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub order_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub trade_id: Option<String>,
    /// WeChat's (or Alipay+'s) transaction id.
    #[serde(default, deserialize_with = "text")]
    pub transaction_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub amount: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub state: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub paid_time: Option<String>,
    /// Refund notifications: the merchant's refund number and Yaband's.
    #[serde(default, deserialize_with = "text")]
    pub m_refund_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub refund_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub refund_amount: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub refund_currency: Option<String>,
}

/// §5.6: a refund, as refund and refund query answer it.
#[derive(Debug, Default, Deserialize)]
pub struct Refund {
    #[serde(default, deserialize_with = "text")]
    pub refund_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub m_refund_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub trade_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub order_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub refund_amount: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub refund_currency: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub state: Option<String>,
}

/// §5.5 payment `state` (code or word, `"04"`, `"verify"` or `"04 verify"`)
/// in the contract's terms. Only `paid` is paid: `verify` is paid but held
/// for risk review, `authorized` is a card authorisation not yet captured;
/// a state not listed is pending until Yaband says more.
pub fn trade_state(state: &str) -> TradeState {
    match state_word(state, PAYMENT_CODES).as_str() {
        "paid" => TradeState::Paid,
        "refunded" => TradeState::Refunded,
        "declined" | "failed" => TradeState::Failed,
        "expired" | "cancelled" | "canceled" => TradeState::Closed,
        // authorized, pending, processing, verify, and anything unknown.
        _ => TradeState::Pending,
    }
}

const PAYMENT_CODES: &[(&str, &str)] = &[
    ("00", "paid"),
    ("01", "authorized"),
    ("02", "pending"),
    ("03", "processing"),
    ("04", "verify"),
    ("05", "declined"),
    ("06", "failed"),
    ("07", "expired"),
    ("08", "cancelled"),
];

/// §5.6 refund `state` in the contract's terms: only `refunded` succeeded;
/// `failed` is an assumption (the documented list is truncated after 23);
/// anything else is still pending.
pub fn refund_state(state: &str) -> RefundState {
    match state_word(state, REFUND_CODES).as_str() {
        "refunded" => RefundState::Succeeded,
        "failed" | "refund failed" => RefundState::Failed,
        // to-be-approval, refund pending, refund processing, unknown.
        _ => RefundState::Pending,
    }
}

const REFUND_CODES: &[(&str, &str)] = &[
    ("20", "to-be-approval"),
    ("21", "refund pending"),
    ("22", "refund processing"),
    ("23", "refunded"),
];

/// The state's word, lower case, whether Yaband wrote the code, the word
/// or both (`"04 verify"`).
fn state_word(state: &str, codes: &[(&str, &str)]) -> String {
    let state = state.trim().to_ascii_lowercase();
    let (code, rest) = match state.split_once(' ') {
        Some((c, r)) if c.bytes().all(|b| b.is_ascii_digit()) => (c, r.trim()),
        _ => (state.as_str(), ""),
    };
    match codes.iter().find(|(c, _)| *c == code) {
        Some((_, word)) => (*word).to_string(),
        None if !rest.is_empty() => rest.to_string(),
        None => state.clone(),
    }
}

/// What tells Yaband a notification was taken (§5.5): plain text `ok`.
pub fn ack_success(body: &str) -> HttpResponse {
    http::response(200, "text/plain", body.to_string())
}

/// What the provider's own library answers a notification it refused.
pub fn ack_refused() -> HttpResponse {
    http::response(400, "text/plain", "bad")
}
