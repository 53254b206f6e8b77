//! Supay's Gate API messages (providers.md §7.3, §7.5), named as Supay
//! names them: one JSON POST to the gateway, `service` selecting the call,
//! every value a string; notifications as form fields.

use payhost_sdk::json::Value;
use payhost_sdk::prelude::*;
use std::collections::BTreeMap;

/// The one gateway path of every call (§7.3).
pub const GATEWAY_PATH: &str = "/api/gateway/merchant/order";

pub const CREATE_INSTANT_TRADE: &str = "create_instant_trade";
pub const QUERY_TRADE: &str = "query_trade";
pub const CREATE_REFUND: &str = "create_refund";

/// `notify_type` of a payment and of a refund notification (§7.5).
pub const TRADE_STATUS_SYNC: &str = "trade_status_sync";
pub const REFUND_STATUS_SYNC: &str = "refund_status_sync";

/// A request's fields, sorted by name (the order they are signed in).
pub type Fields = BTreeMap<String, String>;

/// Adds `value` under `name` unless it is empty: Supay's signers disagree
/// on empty values (§7.4), so none is ever sent.
pub fn put(fields: &mut Fields, name: &str, value: &str) {
    if !value.is_empty() {
        fields.insert(name.into(), value.into());
    }
}

/// How a payment method is asked for: `pay_way` and `pay_channel`
/// (§7.3; an empty channel with `PC`/`H5` is Supay's cashier page).
pub struct PayWay {
    pub pay_way: &'static str,
    pub pay_channel: Option<&'static str>,
}

pub const MINI_PROGRAM: &str = "wechat_mini_program";
pub const NATIVE: &str = "wechat_native";
pub const H5: &str = "wechat_h5";
pub const CASHIER_H5: &str = "cashier_h5";
pub const CASHIER_PC: &str = "cashier_pc";
pub const METHODS: [&str; 5] = [MINI_PROGRAM, NATIVE, H5, CASHIER_H5, CASHIER_PC];

/// The `pay_way` / `pay_channel` of a contract method.
pub fn pay_way(method: &str, wechat_channel: &'static str) -> Option<PayWay> {
    let (pay_way, pay_channel) = match method {
        MINI_PROGRAM => ("JSAPI", Some(wechat_channel)),
        NATIVE => ("NATIVE", Some(wechat_channel)),
        H5 => ("MWEB", Some(wechat_channel)),
        CASHIER_H5 => ("H5", None),
        CASHIER_PC => ("PC", None),
        _ => return None,
    };
    Some(PayWay {
        pay_way,
        pay_channel,
    })
}

/// The answer envelope: `{"status":"T", "message":..., "data":{...}}`.
pub struct Answer {
    pub status: String,
    pub message: String,
    /// An object, or null when the answer has none.
    pub data: Value,
}

/// Reads the envelope of a gateway answer.
pub fn answer(body: &[u8], what: &str) -> Result<Answer> {
    let v: Value = json::from_body(body)?;
    let status = v
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::malformed(format!("{what} has no `status`")))?
        .to_string();
    let message = v
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let data = v.get("data").cloned().unwrap_or(Value::Null);
    if !(data.is_object() || data.is_null()) {
        return Err(Error::malformed(format!("{what}: `data` is not an object")));
    }
    Ok(Answer {
        status,
        message,
        data,
    })
}

/// The text of a scalar field of `data` (strings as they are, numbers as
/// written); `None` when absent, null or empty.
pub fn text(data: &Value, name: &str) -> Option<String> {
    match data.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub fn required(data: &Value, name: &str, what: &str) -> Result<String> {
    text(data, name).ok_or_else(|| Error::malformed(format!("{what} lacks `{name}`")))
}

/// The signed fields of `data`: strings and numbers. Objects, arrays,
/// booleans and nulls have no agreed text form, so they are not signed
/// (assumption, README).
pub fn signed_fields(data: &Value) -> Vec<(String, String)> {
    data.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k.clone(), s.clone())),
                    Value::Number(n) => Some((k.clone(), n.to_string())),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `trade_status` mapped conservatively: only a clear success is paid.
pub fn trade_state(word: &str) -> TradeState {
    match word {
        "TRADE_SUCCESS" | "TRADE_FINISHED" => TradeState::Paid,
        "TRADE_CLOSED" => TradeState::Closed,
        "TRADE_FAILED" => TradeState::Failed,
        // WAIT_BUYER_PAY and anything not documented.
        _ => TradeState::Pending,
    }
}

/// `refund_status` mapped conservatively: only a clear success succeeded.
pub fn refund_state(word: &str) -> RefundState {
    match word {
        "REFUND_SUCCESS" => RefundState::Succeeded,
        "REFUND_FAILED" | "REFUND_FAIL" | "REFUND_CLOSED" => RefundState::Failed,
        _ => RefundState::Pending,
    }
}

/// `timeout_express` as Supay's plugins write it (`30m`), from an expiry:
/// whole minutes, rounded up, at least one.
pub fn timeout_express(expires_at: i64, now: i64) -> String {
    let secs = (expires_at - now).max(1);
    let minutes = (secs + 59) / 60;
    format!("{minutes}m")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_mapped_conservatively() {
        assert_eq!(trade_state("TRADE_SUCCESS"), TradeState::Paid);
        assert_eq!(trade_state("TRADE_FINISHED"), TradeState::Paid);
        assert_eq!(trade_state("TRADE_CLOSED"), TradeState::Closed);
        assert_eq!(trade_state("TRADE_FAILED"), TradeState::Failed);
        for word in [
            "WAIT_BUYER_PAY",
            "TRADE_PROCESSING",
            "",
            "trade_success",
            "SUCCESS",
        ] {
            assert_eq!(trade_state(word), TradeState::Pending, "{word}");
        }
        assert_eq!(refund_state("REFUND_SUCCESS"), RefundState::Succeeded);
        assert_eq!(refund_state("REFUND_FAILED"), RefundState::Failed);
        for word in ["REFUND_PROCESSING", "", "SUCCESS"] {
            assert_eq!(refund_state(word), RefundState::Pending, "{word}");
        }
    }

    #[test]
    fn timeouts_round_up_to_minutes() {
        assert_eq!(timeout_express(1_000_060, 1_000_000), "1m");
        assert_eq!(timeout_express(1_000_061, 1_000_000), "2m");
        assert_eq!(timeout_express(1_001_800, 1_000_000), "30m");
        assert_eq!(timeout_express(1_000_001, 1_000_000), "1m");
    }

    #[test]
    fn methods_map_to_pay_ways() {
        let w = pay_way(MINI_PROGRAM, "WXPAY").unwrap();
        assert_eq!((w.pay_way, w.pay_channel), ("JSAPI", Some("WXPAY")));
        assert_eq!(pay_way(NATIVE, "WXPAY").unwrap().pay_way, "NATIVE");
        assert_eq!(pay_way(H5, "WXPAY").unwrap().pay_way, "MWEB");
        let c = pay_way(CASHIER_H5, "WXPAY").unwrap();
        assert_eq!((c.pay_way, c.pay_channel), ("H5", None));
        assert_eq!(pay_way(CASHIER_PC, "WXPAY").unwrap().pay_way, "PC");
        assert!(pay_way("alipay", "WXPAY").is_none());
    }
}
