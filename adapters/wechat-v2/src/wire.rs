//! The v2 field sets, named as WeChat names them (providers.md §1.2–1.8).
//!
//! Requests are flat `<xml>` documents; the caller adds `nonce_str`,
//! `sign_type` and `sign`. Responses and notifications are read from the
//! decoded [`Fields`] into the few values the adapter uses.

use payhost_sdk::prelude::*;
use payhost_sdk::xml::Fields;

pub const UNIFIED_ORDER: &str = "/pay/unifiedorder";
pub const ORDER_QUERY: &str = "/pay/orderquery";
pub const CLOSE_ORDER: &str = "/pay/closeorder";
pub const REFUND: &str = "/secapi/pay/refund";
pub const REFUND_QUERY: &str = "/pay/refundquery";

/// The acknowledgement WeChat expects for a notification it may stop sending.
pub const ACK_SUCCESS: &str = "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>";

/// A `FAIL` acknowledgement: WeChat will retry the notification. `msg` must
/// be fixed text (it is shown to WeChat, never secret material).
pub fn ack_fail(msg: &str) -> String {
    format!(
        "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[{msg}]]></return_msg></xml>"
    )
}

/// Who the merchant is on the wire: direct (`appid`, `mch_id`) or partner
/// mode, which adds `sub_appid` / `sub_mch_id` (§2.1).
pub struct Merchant<'a> {
    pub appid: &'a str,
    pub mch_id: &'a str,
    pub sub_appid: Option<&'a str>,
    pub sub_mch_id: Option<&'a str>,
}

impl Merchant<'_> {
    /// The identity fields every request starts with.
    pub fn fields(&self) -> Fields {
        let mut f = Fields::new();
        put(&mut f, "appid", Some(self.appid));
        put(&mut f, "mch_id", Some(self.mch_id));
        put(&mut f, "sub_appid", self.sub_appid);
        put(&mut f, "sub_mch_id", self.sub_mch_id);
        f
    }

    /// Fails unless a received message names this merchant. Fields the
    /// message lacks are not checked (responses may omit them).
    pub fn check(&self, fields: &Fields, what: &str) -> std::result::Result<(), String> {
        for (name, ours) in [
            ("appid", Some(self.appid)),
            ("mch_id", Some(self.mch_id)),
            ("sub_mch_id", self.sub_mch_id),
        ] {
            if let (Some(theirs), Some(ours)) = (fields.get(name), ours)
                && theirs != ours
            {
                return Err(format!(
                    "{what} is for {name} `{theirs}`, this merchant's is `{ours}`"
                ));
            }
        }
        Ok(())
    }
}

/// Inserts a field when it has a value.
pub fn put(fields: &mut Fields, name: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        fields.insert(name.to_string(), v.to_string());
    }
}

/// `/pay/unifiedorder` business fields (§1.2).
pub struct UnifiedOrder<'a> {
    pub body: &'a str,
    pub attach: Option<&'a str>,
    pub out_trade_no: &'a str,
    pub fee_type: &'a str,
    pub total_fee: u64,
    pub spbill_create_ip: &'a str,
    pub time_expire: Option<String>,
    pub notify_url: &'a str,
    /// `JSAPI` or `NATIVE`.
    pub trade_type: &'a str,
    pub product_id: Option<&'a str>,
    pub openid: Option<&'a str>,
    pub sub_openid: Option<&'a str>,
}

impl UnifiedOrder<'_> {
    pub fn into_fields(self, mut f: Fields) -> Fields {
        put(&mut f, "body", Some(self.body));
        put(&mut f, "attach", self.attach);
        put(&mut f, "out_trade_no", Some(self.out_trade_no));
        put(&mut f, "fee_type", Some(self.fee_type));
        f.insert("total_fee".into(), self.total_fee.to_string());
        put(&mut f, "spbill_create_ip", Some(self.spbill_create_ip));
        put(&mut f, "time_expire", self.time_expire.as_deref());
        put(&mut f, "notify_url", Some(self.notify_url));
        put(&mut f, "trade_type", Some(self.trade_type));
        put(&mut f, "product_id", self.product_id);
        put(&mut f, "openid", self.openid);
        put(&mut f, "sub_openid", self.sub_openid);
        f
    }
}

/// `/secapi/pay/refund` business fields (§1.5).
pub struct Refund<'a> {
    pub transaction_id: Option<&'a str>,
    pub out_trade_no: Option<&'a str>,
    pub out_refund_no: &'a str,
    pub total_fee: u64,
    pub refund_fee: u64,
    pub refund_fee_type: &'a str,
    pub refund_desc: Option<&'a str>,
    pub notify_url: &'a str,
}

impl Refund<'_> {
    pub fn into_fields(self, mut f: Fields) -> Fields {
        put(&mut f, "transaction_id", self.transaction_id);
        put(&mut f, "out_trade_no", self.out_trade_no);
        put(&mut f, "out_refund_no", Some(self.out_refund_no));
        f.insert("total_fee".into(), self.total_fee.to_string());
        f.insert("refund_fee".into(), self.refund_fee.to_string());
        put(&mut f, "refund_fee_type", Some(self.refund_fee_type));
        put(&mut f, "refund_desc", self.refund_desc);
        put(&mut f, "notify_url", Some(self.notify_url));
        f
    }
}

/// A field the message must carry.
pub fn required<'f>(fields: &'f Fields, name: &str, what: &str) -> Result<&'f str> {
    fields
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::malformed(format!("{what} lacks `{name}`")))
}

/// A field the message may carry.
pub fn optional<'f>(fields: &'f Fields, name: &str) -> Option<&'f str> {
    fields
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Which v2 API the merchant is contracted for (§1.1, §1.11): the domestic
/// one (`api.` / `api2.`, CNY only) or the cross-border one (`apihk.` /
/// `apius.`), whose orders name their currency in `fee_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    Domestic,
    Overseas,
}

/// The hosts of the cross-border v2 API.
const OVERSEAS_HOSTS: [&str; 2] = ["apihk.mch.weixin.qq.com", "apius.mch.weixin.qq.com"];
const DOMESTIC_HOSTS: [&str; 2] = ["api.mch.weixin.qq.com", "api2.mch.weixin.qq.com"];

impl Region {
    pub fn parse(word: &str) -> Option<Region> {
        match word {
            "domestic" => Some(Region::Domestic),
            "overseas" => Some(Region::Overseas),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Region::Domestic => "domestic",
            Region::Overseas => "overseas",
        }
    }

    /// The region a WeChat Pay host serves; `None` for any other host (a
    /// simulator, a proxy), which says nothing about the contract.
    pub fn of_base_url(base_url: &str) -> Option<Region> {
        let rest = base_url.split_once("://").map_or(base_url, |(_, r)| r);
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        if OVERSEAS_HOSTS.contains(&host) {
            Some(Region::Overseas)
        } else if DOMESTIC_HOSTS.contains(&host) {
            Some(Region::Domestic)
        } else {
            None
        }
    }

    /// Whether this API takes orders and refunds in `currency`: the domestic
    /// one CNY only; the cross-border one WeChat Pay's foreign currencies,
    /// and CNY for merchants priced in it.
    pub fn takes(self, currency: &str) -> bool {
        match self {
            Region::Domestic => currency == "CNY",
            Region::Overseas => money::WECHAT_PAY_CURRENCIES.contains(&currency),
        }
    }

    /// The currency a message states in `name` (`fee_type`,
    /// `refund_fee_type`). Domestic messages may leave it out (CNY, §1.9);
    /// a cross-border one must say it, as guessing CNY would misstate it.
    pub fn currency<'f>(self, fields: &'f Fields, name: &str, what: &str) -> Result<&'f str> {
        match self {
            Region::Domestic => Ok(optional(fields, name).unwrap_or("CNY")),
            Region::Overseas => required(fields, name, what),
        }
    }
}

/// `total_fee` in the currency of `fee_type`.
pub fn total_fee(fields: &Fields, region: Region, what: &str) -> Result<Money> {
    let fee = required(fields, "total_fee", what)?;
    Ok(money::from_minor_str(
        fee,
        region.currency(fields, "fee_type", what)?,
    )?)
}

/// What the payer paid beside what the order costs: `cash_fee` in
/// `cash_fee_type` (CNY when absent) and, for a foreign-currency order, the
/// `rate` it was converted at (CNY per unit of `fee_type` times 10^8, as
/// the cross-border pages state it). Checked to be well formed, like any
/// field of a signed message. Not compared with `total_fee`: the payer's
/// side moves none of the merchant's money, WeChat's rounding is not
/// documented, and refusing a message for it would hide a wrong
/// `total_fee` from the host, which reports that against the order.
pub fn check_cash_fee(fields: &Fields, what: &str) -> Result<()> {
    let malformed = |m: String| Error::malformed(format!("{what}: {m}"));
    if let Some(cash) = optional(fields, "cash_fee") {
        money::from_minor_str(cash, "CNY").map_err(|e| malformed(format!("cash_fee: {e}")))?;
    }
    if let Some(t) = optional(fields, "cash_fee_type") {
        money::exponent(t).map_err(|e| malformed(format!("cash_fee_type: {e}")))?;
    }
    if let Some(r) = optional(fields, "rate")
        && !r.parse::<u64>().is_ok_and(|r| r > 0)
    {
        return Err(malformed(format!("`rate` `{r}` is not a positive integer")));
    }
    Ok(())
}

/// `time_end` (`yyyyMMddHHmmss`, China time) as Unix seconds.
pub fn time_end(fields: &Fields) -> Result<Option<i64>> {
    optional(fields, "time_end")
        .map(|t| time::parse_compact(t, time::CHINA))
        .transpose()
        .map_err(Error::from)
}

/// `trade_state` (§1.4) in the contract's terms.
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

/// One refund of a `/pay/refundquery` answer: WeChat lists every refund of
/// the order as `out_refund_no_$n`, `refund_id_$n`, `refund_fee_$n`,
/// `refund_status_$n` for `n` in `0..refund_count`.
pub struct QueriedRefund<'f> {
    pub refund_id: Option<&'f str>,
    pub refund_fee: &'f str,
    pub refund_status: &'f str,
}

/// The refund numbered `out_refund_no` in a refund query answer.
pub fn queried_refund<'f>(
    fields: &'f Fields,
    out_refund_no: &str,
    what: &str,
) -> Result<QueriedRefund<'f>> {
    let count: usize = required(fields, "refund_count", what)?
        .parse()
        .map_err(|_| Error::malformed(format!("{what}: `refund_count` is not a number")))?;
    // WeChat caps an order at 50 refunds (§1.5); more is not a real answer.
    if count > 50 {
        return Err(Error::malformed(format!(
            "{what}: refund_count {count} exceeds WeChat's 50"
        )));
    }
    let n = (0..count)
        .find(|n| optional(fields, &format!("out_refund_no_{n}")) == Some(out_refund_no))
        .ok_or_else(|| {
            Error::malformed(format!(
                "{what} does not list out_refund_no `{out_refund_no}`"
            ))
        })?;
    Ok(QueriedRefund {
        refund_id: optional(fields, &format!("refund_id_{n}")),
        refund_fee: required(fields, &format!("refund_fee_{n}"), what)?,
        refund_status: required(fields, &format!("refund_status_{n}"), what)?,
    })
}

/// `refund_status` of a refund notification (§1.8) or refund query.
/// `CHANGE` ("退款异常": the money left the merchant but could not reach
/// the payer's card) is not a failure that frees the amount: it waits, as
/// pending, for the merchant to redirect it in WeChat's merchant platform.
pub fn refund_state(word: &str) -> Option<RefundState> {
    Some(match word {
        "SUCCESS" => RefundState::Succeeded,
        "REFUNDCLOSE" => RefundState::Failed,
        "PROCESSING" | "CHANGE" => RefundState::Pending,
        _ => return None,
    })
}

/// `err_code`s after which the identical request may succeed (§1.2, §1.5).
pub fn retryable(err_code: &str) -> bool {
    matches!(err_code, "SYSTEMERROR" | "BIZERR_NEED_RETRY")
}
