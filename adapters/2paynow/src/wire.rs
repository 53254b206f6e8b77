//! 2paynow's messages (providers.md §6.1, §6.2, §6.4), named as the
//! provider names them: one web endpoint whose `function` parameter selects
//! the call, parameters in the query string of a GET, JSON answers.

use payhost_sdk::json::Value;
use payhost_sdk::prelude::*;

/// The web endpoint's path on `base_url`.
pub const API_PATH: &str = "/zhifu/mc_itf";

/// The `function` values (§6.1).
pub const PRECREATE: &str = "precreate";
pub const WAP_PRECREATE: &str = "wap_precreate";
pub const QUERY: &str = "query";
pub const WAP_QUERY: &str = "wap_query";
pub const CANCEL: &str = "cancel";

/// The key payhost puts into `passback_parameters` (echoed back in the
/// notification): a web order's notification names no `merchant_trade_no`.
pub const PASSBACK_ORDER_KEY: &str = "merchant_order_no";

/// A JSON answer of the web endpoint.
pub struct Answer {
    pub function: &'static str,
    body: Value,
}

impl Answer {
    pub fn parse(function: &'static str, body: &[u8]) -> Result<Self> {
        let body: Value = json::from_body(body)
            .map_err(|e| Error::malformed(format!("{function} answer: {e}")))?;
        if !body.is_object() {
            return Err(Error::malformed(format!(
                "{function} answer is not a JSON object"
            )));
        }
        Ok(Answer { function, body })
    }

    /// A field as text: 2paynow writes numbers (`status`, `amount`) either
    /// way, so a JSON number counts as its decimal text.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.body.get(name)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    pub fn required(&self, name: &str) -> Result<String> {
        self.text(name)
            .ok_or_else(|| Error::malformed(format!("{} answer lacks `{name}`", self.function)))
    }

    /// `status`: 200 is success (§6.2); other values read like HTTP
    /// codes (`403` with `error_info: "mid not exist"`).
    pub fn status(&self) -> Result<u16> {
        let s = self.required("status")?;
        s.parse()
            .map_err(|_| Error::malformed(format!("{} answer: `status` is `{s}`", self.function)))
    }

    /// The amount an answer reports, when it names both amount and currency.
    pub fn money(&self) -> Result<Option<Money>> {
        match (self.text("amount"), self.text("currency")) {
            (Some(a), Some(c)) => Ok(Some(money::from_decimal(&a, &c).map_err(|e| {
                Error::malformed(format!("{} answer: amount: {e}", self.function))
            })?)),
            _ => Ok(None),
        }
    }
}

/// `trans_status` of a query answer, conservatively: only `TRADE_SUCCESS`
/// is paid, `TRADE_CLOSED` closed, `TRADE_FAILED` failed; `UNKNOWN` and
/// any word this adapter does not know are pending.
pub fn trade_state(trans_status: &str) -> TradeState {
    match trans_status {
        "TRADE_SUCCESS" => TradeState::Paid,
        "TRADE_CLOSED" => TradeState::Closed,
        "TRADE_FAILED" => TradeState::Failed,
        _ => TradeState::Pending,
    }
}

/// Whether a rejection with this `status` may pass if repeated.
pub fn retryable(status: u16) -> bool {
    status >= 500 || status == 429
}

/// `it_b_pay` for an order that expires `seconds` from now: whole minutes,
/// rounded up so the payer never gets less time than asked.
pub fn it_b_pay(seconds: i64) -> String {
    format!("{}m", (seconds.max(1) + 59) / 60)
}

/// A notification's parameters (§6.4), each name once.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Reads `query` (or, when it is empty, a form body): a name given
    /// twice is refused, since which copy counts would be a guess.
    pub fn parse(query: &str, body: &[u8]) -> Result<Self> {
        let pairs = if query.is_empty() {
            form::decode(body)
        } else {
            form::decode(query.as_bytes())
        };
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(seen, _)| seen == k) {
                return Err(Error::invalid_request(format!(
                    "notification names `{k}` twice"
                )));
            }
        }
        Ok(Params(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str> {
        self.get(name)
            .ok_or_else(|| Error::invalid_request(format!("notification lacks `{name}`")))
    }

    /// The merchant order number: `merchant_trade_no` (WAP orders), else
    /// the one payhost put into `passback_parameters` (web orders).
    pub fn merchant_order_no(&self) -> Option<String> {
        if let Some(no) = self.get("merchant_trade_no") {
            return Some(no.to_string());
        }
        let passback: Value = json::from_body(self.get("passback_parameters")?.as_bytes()).ok()?;
        passback
            .get(PASSBACK_ORDER_KEY)?
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from)
    }
}
