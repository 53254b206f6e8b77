//! WeChat Cloud Hosting's payment interface as it travels (providers.md §9):
//! `POST http://api.weixin.qq.com/_/pay/<api>` with a snake_case JSON body,
//! answered `{"errcode", "errmsg", "respdata": {...}}` where `respdata` holds
//! the WeChat Pay v2 fields as JSON; callbacks are JSON POSTs with the v2
//! notification fields in camelCase (or snake_case, §9.7).

use payhost_sdk::json::Value;
use payhost_sdk::prelude::*;
use std::collections::BTreeMap;

/// §9.2: the open-interface service, reached from inside Cloud Hosting over
/// plain HTTP; the sidecar adds the credentials.
pub const DEFAULT_BASE_URL: &str = "http://api.weixin.qq.com";
pub const EGRESS_HOST: &str = "api.weixin.qq.com";

/// §9.2: the unified order's documented name; some pages and working code
/// write `unifiedorder` (a configuration field picks).
pub const UNIFIED_ORDER: &str = "unifiedOrder";
pub const QUERY_ORDER: &str = "queryorder";
pub const CLOSE_ORDER: &str = "closeorder";
pub const REFUND: &str = "refund";
pub const QUERY_REFUND: &str = "queryrefund";

/// `callback_type` 2: the result is POSTed to a Cloud Hosting service
/// (`container`), as opposed to 1, a cloud function (§9.4).
pub const CALLBACK_CONTAINER: u64 = 2;

/// The path of one call.
pub fn path(api: &str) -> String {
    format!("/_/pay/{api}")
}

/// §9.7: what the platform takes as "handled": errcode 0, any message.
pub fn ack_success() -> HttpResponse {
    ack(0, "SUCCESS")
}

/// Anything but errcode 0 makes the platform send the callback again
/// (for up to two days). `msg` is fixed text, never secret material.
pub fn ack_fail(msg: &str) -> HttpResponse {
    ack(1, msg)
}

fn ack(errcode: i64, errmsg: &str) -> HttpResponse {
    http::response(
        200,
        "application/json",
        json::to_body(&json::json!({"errcode": errcode, "errmsg": errmsg})),
    )
}

/// The platform's envelope around every answer (§9.2).
#[derive(serde::Deserialize)]
pub struct Envelope {
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(default)]
    pub respdata: Option<Value>,
}

/// Platform `errcode`s after which the same call may succeed: `-1` is the
/// open interface's "system busy".
pub fn retryable_errcode(errcode: i64) -> bool {
    errcode == -1
}

/// WeChat Pay `err_code`s after which the identical request may succeed.
pub fn retryable(err_code: &str) -> bool {
    matches!(err_code, "SYSTEMERROR" | "BIZERR_NEED_RETRY")
}

/// A flat JSON message (an answer's `respdata`, a callback) read by field
/// name. Values are text or numbers: `total_fee` is a JSON number, most
/// other fields strings.
#[derive(Debug, Clone, Default)]
pub struct Message(pub BTreeMap<String, Value>);

impl Message {
    pub fn from_value(value: Value, what: &str) -> std::result::Result<Message, String> {
        match value {
            Value::Object(map) => Ok(Message(map.into_iter().collect())),
            _ => Err(format!("{what} is not a JSON object")),
        }
    }

    /// A field as text, numbers included; empty text counts as absent.
    pub fn text(&self, name: &str) -> Option<String> {
        scalar_text(self.0.get(name)?)
    }

    pub fn required(&self, name: &str, what: &str) -> Result<String> {
        self.text(name)
            .ok_or_else(|| Error::malformed(format!("{what} lacks `{name}`")))
    }

    /// An integer count of fen, as a JSON number or a digit string.
    pub fn fen(&self, name: &str, what: &str) -> Result<Option<u64>> {
        match self.text(name) {
            None => Ok(None),
            Some(t) => t
                .parse::<u64>()
                .map(Some)
                .map_err(|_| Error::malformed(format!("{what}: `{name}` is not an amount in fen"))),
        }
    }

    /// An array of scalars (§9.6's refund lists) as text.
    pub fn list(&self, name: &str) -> Vec<String> {
        match self.0.get(name) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| scalar_text(v).unwrap_or_default())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `total_fee` with `fee_type` (CNY when absent, §9.8). A `fee_type`
    /// ISO 4217 does not know is refused: fen of it mean nothing.
    pub fn total_fee(&self, what: &str) -> Result<Option<Money>> {
        let Some(minor) = self.fen("total_fee", what)? else {
            return Ok(None);
        };
        let currency = self.text("fee_type").unwrap_or_else(|| "CNY".into());
        money::exponent(&currency)
            .map_err(|e| Error::malformed(format!("{what}: `fee_type`: {e}")))?;
        Ok(Some(Money { minor, currency }))
    }

    /// `time_end` (`yyyyMMddHHmmss`, China time) as Unix seconds.
    pub fn time_end(&self) -> Result<Option<i64>> {
        self.text("time_end")
            .map(|t| time::parse_compact(&t, time::CHINA))
            .transpose()
            .map_err(Error::from)
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `trade_state` (§9.5, the v2 words of §1.4) in the contract's terms.
pub fn trade_state(word: &str) -> Option<TradeState> {
    Some(match word {
        "SUCCESS" => TradeState::Paid,
        "REFUND" => TradeState::Refunded,
        "NOTPAY" | "USERPAYING" | "ACCEPT" => TradeState::Pending,
        "CLOSED" | "REVOKED" => TradeState::Closed,
        "PAYERROR" => TradeState::Failed,
        _ => return None,
    })
}

/// `refund_status` (§1.8 words): `CHANGE` (the money left the merchant but
/// could not reach the payer) waits as pending, it does not free the amount.
pub fn refund_state(word: &str) -> Option<RefundState> {
    Some(match word {
        "SUCCESS" => RefundState::Succeeded,
        "REFUNDCLOSE" => RefundState::Failed,
        "PROCESSING" | "CHANGE" => RefundState::Pending,
        _ => return None,
    })
}

/// `wx-server-sdk`'s key conversion towards the wire (§9.2, vector §9.9):
/// every capital letter becomes `_` and its lower case; snake keys pass.
pub fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The SDK's conversion of answers: `_x` becomes `X`.
pub fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Converts every key of `value` (recursively) with `convert`, as the SDK
/// does for requests (to snake) and answers (to camel).
pub fn convert_keys(value: &Value, convert: fn(&str) -> String) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (convert(k), convert_keys(v, convert)))
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| convert_keys(v, convert)).collect())
        }
        other => other.clone(),
    }
}

/// A callback's keys in snake_case (§9.7: the official example is camelCase,
/// a CloudBase page shows snake_case; both are read). When one field comes
/// in both casings, `prefer_camel` says which wins.
pub fn callback_fields(body: Value, prefer_camel: bool) -> std::result::Result<Message, String> {
    let Value::Object(map) = body else {
        return Err("callback body is not a JSON object".into());
    };
    let mut fields = BTreeMap::new();
    let (camel, snake): (Vec<_>, Vec<_>) = map
        .into_iter()
        .partition(|(k, _)| k.chars().any(|c| c.is_ascii_uppercase()));
    let (first, last) = if prefer_camel {
        (snake, camel)
    } else {
        (camel, snake)
    };
    for (k, v) in first.into_iter().chain(last) {
        fields.insert(snake_case(&k), v);
    }
    Ok(Message(fields))
}

/// One refund of a `queryrefund` answer. §9.6: the platform lists refunds
/// in arrays (`out_refund_no_list`, ...), which have been seen empty beside
/// `refund_count: 1`.
pub enum QueriedRefund {
    Listed {
        refund_id: Option<String>,
        refund_fee: Option<String>,
        refund_status: String,
    },
    /// Counted but not listed: it exists, its status is not said.
    Unlisted,
}

pub fn queried_refund(msg: &Message, out_refund_no: &str, what: &str) -> Result<QueriedRefund> {
    let numbers = msg.list("out_refund_no_list");
    if numbers.is_empty() {
        let count = msg.fen("refund_count", what)?.unwrap_or(0);
        return if count > 0 {
            Ok(QueriedRefund::Unlisted)
        } else {
            Err(Error::malformed(format!("{what} lists no refund")))
        };
    }
    let n = numbers
        .iter()
        .position(|no| no == out_refund_no)
        .ok_or_else(|| {
            Error::malformed(format!(
                "{what} does not list out_refund_no `{out_refund_no}`"
            ))
        })?;
    let at = |name: &str| msg.list(name).get(n).cloned().filter(|v| !v.is_empty());
    Ok(QueriedRefund::Listed {
        refund_id: at("refund_id_list"),
        refund_fee: at("refund_fee_list"),
        refund_status: at("refund_status_list").ok_or_else(|| {
            Error::malformed(format!(
                "{what} lists no refund_status for `{out_refund_no}`"
            ))
        })?,
    })
}

/// The path part of the notify URL: where the platform POSTs callbacks
/// inside the Cloud Hosting service (`container.path`).
pub fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}
