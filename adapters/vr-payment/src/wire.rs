//! The VR Payment gateway's messages (wallee platform, REST API v1), named
//! as the gateway names them (providers.md §8.4, §8.5).
//!
//! Every call carries the space as the `spaceId` query parameter; entity
//! ids are the gateway's int64 ids. Amounts are JSON numbers in major units.

use payhost_sdk::prelude::*;
use serde::Deserialize;

/// The API's default base URL; the MAC is computed over the path below the
/// host, `/api` prefix included (§8.3).
pub const DEFAULT_BASE_URL: &str = "https://gateway.vr-payment.de/api";

// ------------------------------------------------------------ paths (§8.4, v1)

pub fn create_transaction(space: &str) -> String {
    format!("/transaction/create?spaceId={space}")
}

pub fn payment_page_url(space: &str, id: i64) -> String {
    format!("/transaction-payment-page/payment-page-url?spaceId={space}&id={id}")
}

pub fn read_transaction(space: &str, id: i64) -> String {
    format!("/transaction/read?spaceId={space}&id={id}")
}

pub fn create_refund(space: &str) -> String {
    format!("/refund/refund?spaceId={space}")
}

pub fn read_refund(space: &str, id: i64) -> String {
    format!("/refund/read?spaceId={space}&id={id}")
}

/// The refund search of the wallee API (`EntityQuery`); not in §8.4's
/// table, used only when the refund's id was never learned.
pub fn search_refunds(space: &str) -> String {
    format!("/refund/search?spaceId={space}")
}

pub fn read_webhook_key(key_id: &str) -> String {
    format!("/webhook-encryption/read?id={key_id}")
}

// ------------------------------------------------------------ entities

/// A transaction as `transaction/create` and `transaction/read` answer it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub id: i64,
    pub state: String,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub authorization_amount: Option<json::Value>,
    #[serde(default)]
    pub merchant_reference: Option<String>,
    #[serde(default)]
    pub linked_space_id: Option<i64>,
    #[serde(default)]
    pub completed_on: Option<String>,
}

/// The transaction a refund belongs to, as the refund embeds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundTransaction {
    pub id: i64,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub merchant_reference: Option<String>,
}

/// A refund as `refund/refund`, `refund/read` and `refund/search` answer it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    pub id: i64,
    pub state: String,
    #[serde(default)]
    pub amount: Option<json::Value>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub merchant_reference: Option<String>,
    #[serde(default)]
    pub linked_space_id: Option<i64>,
    #[serde(default)]
    pub transaction: Option<RefundTransaction>,
}

/// The gateway's error body (HTTP 442 client errors, 542 server errors).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub default_message: Option<String>,
}

/// `webhook-encryption/read`: the key that signs webhooks (§8.5), Base64
/// X.509 SubjectPublicKeyInfo DER.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPublicKey {
    pub id: String,
    pub public_key: String,
}

/// A webhook's body (§8.5): which entity changed, never its amount.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub entity_id: i64,
    pub listener_entity_technical_name: String,
    pub space_id: i64,
    #[serde(default)]
    pub event_id: Option<i64>,
    #[serde(default)]
    pub state: Option<String>,
}

// ------------------------------------------------------------ states (§8.4)

/// A transaction state in the contract's terms. Only the states of
/// `paid_states` (FULFILL by default) are paid: AUTHORIZED is reserved
/// money that may still be voided, and COMPLETED may still be declined by
/// the gateway's fraud check before FULFILL. Unknown words stay pending.
pub fn trade_state(state: &str, paid_states: &[&str]) -> TradeState {
    if paid_states.contains(&state) {
        return TradeState::Paid;
    }
    match state {
        "VOIDED" => TradeState::Closed,
        "FAILED" | "DECLINE" => TradeState::Failed,
        _ => TradeState::Pending,
    }
}

/// The states a merchant may declare paid (`paid_states`).
pub const PAYABLE_STATES: &[&str] = &["FULFILL", "COMPLETED"];

pub fn refund_state(state: &str) -> RefundState {
    match state {
        "SUCCESSFUL" => RefundState::Succeeded,
        "FAILED" => RefundState::Failed,
        // CREATE, SCHEDULED, PENDING, MANUAL_CHECK and anything new.
        _ => RefundState::Pending,
    }
}

// ------------------------------------------------------------ amounts

/// `Money` as the JSON number the gateway wants: the exact decimal of
/// `money::to_decimal`, which a double reproduces digit for digit below
/// 15 significant digits (the gateway's own type is a double).
pub fn amount(m: &Money) -> Result<json::Value> {
    let text = money::to_decimal(m).map_err(|e| Error::invalid_request(e.0))?;
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    if digits > 15 {
        return Err(Error::invalid_request(format!(
            "amount {text} {} has more digits than the gateway's number keeps",
            m.currency
        )));
    }
    let number: f64 = text
        .parse()
        .map_err(|_| Error::invalid_request(format!("amount `{text}`")))?;
    Ok(json::json!(number))
}

/// A JSON amount in major units as `Money`, exactly: `24.99` is 2499 EUR;
/// `24.999` EUR, negatives and exponents are refused.
pub fn money_of(value: &json::Value, currency: &str, what: &str) -> Result<Money> {
    let json::Value::Number(n) = value else {
        return Err(Error::malformed(format!("{what}: amount is not a number")));
    };
    let text = n.to_string();
    money::from_decimal(&text, currency).map_err(|e| Error::malformed(format!("{what}: {e}")))
}

// ------------------------------------------------------------ notifications

/// What the gateway expects for a webhook it may forget: HTTP 200 (§8.5).
pub fn ack() -> HttpResponse {
    http::response(200, "text/plain", Vec::new())
}

/// Whether repeating a failed call unchanged may succeed.
pub fn retryable(status: u16) -> bool {
    status == 429 || status >= 500
}
