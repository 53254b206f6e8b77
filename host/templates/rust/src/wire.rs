//! Acme Pay's messages, named as its documentation names them. Acme Pay
//! is fictitious: replace these with your provider's. Every call is a
//! JSON POST of string fields; every answer a JSON object of string
//! fields; notifications are form fields. All of them are signed (`sign`).

use payhost_sdk::json::Value;
use payhost_sdk::prelude::*;
use std::collections::BTreeMap;

pub const CREATE_ORDER: &str = "/v1/orders";
pub const QUERY_ORDER: &str = "/v1/orders/query";
pub const CLOSE_ORDER: &str = "/v1/orders/close";
pub const CREATE_REFUND: &str = "/v1/refunds";
pub const QUERY_REFUND: &str = "/v1/refunds/query";

/// `result` of an answer that did what was asked.
pub const RESULT_OK: &str = "OK";
/// The `error_code` Acme Pay says is worth a retry.
pub const SYSTEM_BUSY: &str = "SYSTEM_BUSY";

/// `event` of a payment and of a refund notification.
pub const PAYMENT_EVENT: &str = "payment";
pub const REFUND_EVENT: &str = "refund";

/// The contract's methods this provider offers: a QR code to scan.
pub const QR_CODE: &str = "wechat_native";
pub const METHODS: [&str; 1] = [QR_CODE];

/// A message's fields, sorted by name (the order they are signed in).
pub type Fields = BTreeMap<String, String>;

/// Adds `value` under `name` unless it is empty: empty values are never
/// signed, so they are never sent either.
pub fn put(fields: &mut Fields, name: &str, value: &str) {
    if !value.is_empty() {
        fields.insert(name.into(), value.into());
    }
}

/// An answer's fields: a JSON object whose values are all strings.
pub fn answer_fields(body: &[u8], what: &str) -> Result<Fields> {
    let object: BTreeMap<String, Value> = json::from_body(body)
        .map_err(|e| Error::malformed(format!("{what} is not a JSON object: {e}")))?;
    object
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(text) => Ok((name, text)),
            _ => Err(Error::malformed(format!(
                "{what}: `{name}` is not a string"
            ))),
        })
        .collect()
}

/// A notification's form fields; a name given twice is refused, since
/// which of its values was signed would be ambiguous.
pub fn notification_fields(body: &[u8]) -> Result<Fields> {
    let mut fields = Fields::new();
    for (name, value) in form::decode(body) {
        if fields.insert(name.clone(), value).is_some() {
            return Err(Error::invalid_request(format!(
                "notification repeats the field `{name}`"
            )));
        }
    }
    Ok(fields)
}

/// A field that must be there and not empty.
pub fn required<'a>(fields: &'a Fields, name: &str, what: &str) -> Result<&'a str> {
    fields
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::malformed(format!("{what} lacks `{name}`")))
}

/// A field that may be absent.
pub fn optional(fields: &Fields, name: &str) -> Option<String> {
    fields.get(name).filter(|v| !v.is_empty()).cloned()
}

/// `status` of an order.
pub fn trade_state(status: &str) -> Option<TradeState> {
    Some(match status {
        "PENDING" => TradeState::Pending,
        "PAID" => TradeState::Paid,
        "REFUNDED" => TradeState::Refunded,
        "CLOSED" => TradeState::Closed,
        "FAILED" => TradeState::Failed,
        _ => return None,
    })
}

/// `refund_status` of a refund.
pub fn refund_state(status: &str) -> Option<RefundState> {
    Some(match status {
        "PROCESSING" => RefundState::Pending,
        "SUCCESS" => RefundState::Succeeded,
        "FAILED" => RefundState::Failed,
        _ => return None,
    })
}
