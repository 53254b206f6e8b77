//! 2paynow (Europe Sepay B.V.) adapter, providers.md §6.
//!
//! - `lib.rs` (this file): the contract -- `describe` and the operations.
//! - [`wire`]: 2paynow's functions, parameters and answers.
//! - [`sign`]: its signature, MD5 over function, mid, timestamp and key.
//!
//! What 2paynow signs covers neither amount, order nor status (§6.3), so
//! no notification is believed on its own: `parse_notify` asks 2paynow
//! (`query` / `wap_query`) and reports only what that answer says. Refunds
//! and the mini-program (JSAPI) call are not publicly documented (§6.6):
//! `refund` and `refund_query` answer `unsupported`, and no mini-program
//! method is offered.

#![forbid(unsafe_code)]

pub mod sign;
pub mod wire;

use payhost_sdk::prelude::*;
use sign::TimestampUnit;
use wire::Answer;

pub struct TwoPayNow;

const NAME: &str = "2paynow";
const DEFAULT_BASE_URL: &str = "https://www.2paynow.com";
const DEFAULT_WAP_WECHAT_URL: &str = "http://www.2paynow.com/wap/WxpayAPI/jsapi.php";
const DEFAULT_WAP_ALIPAY_URL: &str = "http://2paynow.com/wap/wappay/pay.html";

const WECHAT_NATIVE: &str = "wechat_native";
const ALIPAY_NATIVE: &str = "alipay_native";
const WECHAT_WAP: &str = "wechat_wap";
const ALIPAY_WAP: &str = "alipay_wap";
const METHODS: [&str; 4] = [WECHAT_NATIVE, ALIPAY_NATIVE, WECHAT_WAP, ALIPAY_WAP];

/// The ISO 4217 codes the adapter accepts (`adapter-info.currencies`): EUR
/// is the currency of the driver and its test (providers.md §6.2, §6.5);
/// the source article orders in CNY or the local currency (its section 七).
pub const CURRENCIES: &[&str] = &["EUR", "CNY"];

/// Why refunds answer `unsupported`, for operators reading the error.
const NO_REFUNDS: &str = "2paynow has no publicly documented refund call (providers.md §6.6: the call, its currency and its notification are UNKNOWN; the source article omits `refund_2paynow`); refund in the 2paynow merchant portal";

/// What a method asks 2paynow for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Wechat,
    Alipay,
}

/// The merchant configuration, read once per operation.
struct Settings<'a> {
    mid: &'a str,
    key: Secret,
    base_url: &'a str,
    timestamp_unit: TimestampUnit,
    wechat_type: &'a str,
    alipay_type: &'a str,
    it_b_pay: &'a str,
    wap_wechat_url: &'a str,
    wap_alipay_url: &'a str,
    return_url: Option<&'a str>,
    verify_answers: bool,
}

impl<'a> Settings<'a> {
    fn read(ctx: &Ctx<'a>) -> Result<Self> {
        let c = ctx.config();
        let mid = c.text("mid")?;
        if !mid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid_config(format!(
                "field `mid` is `{mid}`; 2paynow merchant ids are numeric"
            )));
        }
        let unit = c.text_opt("timestamp_unit")?.unwrap_or("milliseconds");
        let timestamp_unit = TimestampUnit::parse(unit).ok_or_else(|| {
            Error::invalid_config(format!(
                "field `timestamp_unit` is `{unit}`, expected `milliseconds` or `seconds`"
            ))
        })?;
        let verify = c.text_opt("verify_answer_sign")?.unwrap_or("false");
        let verify_answers = match verify {
            "true" => true,
            "false" => false,
            other => {
                return Err(Error::invalid_config(format!(
                    "field `verify_answer_sign` is `{other}`, expected `true` or `false`"
                )));
            }
        };
        Ok(Settings {
            mid,
            key: c.secret("key")?,
            base_url: c.text_opt("base_url")?.unwrap_or(DEFAULT_BASE_URL),
            timestamp_unit,
            wechat_type: c.text_opt("wechat_type")?.unwrap_or("1"),
            alipay_type: c.text_opt("alipay_type")?.unwrap_or("0"),
            it_b_pay: c.text_opt("it_b_pay")?.unwrap_or("30m"),
            wap_wechat_url: c
                .text_opt("wap_wechat_url")?
                .unwrap_or(DEFAULT_WAP_WECHAT_URL),
            wap_alipay_url: c
                .text_opt("wap_alipay_url")?
                .unwrap_or(DEFAULT_WAP_ALIPAY_URL),
            return_url: c.text_opt("return_url")?,
            verify_answers,
        })
    }

    /// `function`, `mid`, `timestamp` and `sign` followed by `params`, as a
    /// query string.
    fn signed_query(&self, ctx: &Ctx, function: &str, params: &[(&str, String)]) -> Result<String> {
        let timestamp = self.timestamp_unit.stamp(ctx.timestamp());
        let sign = sign::sign(ctx, function, self.mid, &timestamp, self.key)?;
        let head = [
            ("function", function.to_string()),
            ("mid", self.mid.to_string()),
            ("timestamp", timestamp),
            ("sign", sign),
        ];
        Ok(form::encode(
            head.iter().chain(params).map(|(k, v)| (*k, v.as_str())),
        ))
    }

    /// Calls `function` on the web endpoint and returns its answer when
    /// 2paynow's `status` says 200.
    fn call(
        &self,
        ctx: &mut Ctx,
        function: &'static str,
        params: &[(&str, String)],
    ) -> Result<Answer> {
        let query = self.signed_query(ctx, function, params)?;
        let url = format!("{}?{query}", http::join(self.base_url, wire::API_PATH));
        let response = ctx.send(http::get(url))?;
        if response.status != 200 {
            return Err(Error::rejected(
                format!("HTTP_{}", response.status),
                format!("{NAME} {function} answered HTTP {}", response.status),
                wire::retryable(response.status),
            ));
        }
        let answer = Answer::parse(function, &response.body)?;
        let status = answer.status()?;
        if status != 200 {
            // Refusals carry `error_info` and, in the driver, no signature.
            let info = answer.text("error_info").unwrap_or_default();
            return Err(Error::rejected(
                format!("STATUS_{status}"),
                format!("{NAME} {function}: status {status} `{info}`"),
                wire::retryable(status),
            ));
        }
        if self.verify_answers {
            let what = format!("{function} answer");
            let f = answer.required("function")?;
            let ts = answer.required("timestamp")?;
            let sign = answer
                .text("sign")
                .ok_or_else(|| Error::bad_signature(format!("{what} carries no `sign`")))?;
            sign::verify(ctx, &f, self.mid, &ts, self.key, &sign, &what)?;
        }
        Ok(answer)
    }

    fn pay_type(&self, channel: Channel) -> &'a str {
        match channel {
            Channel::Wechat => self.wechat_type,
            Channel::Alipay => self.alipay_type,
        }
    }

    /// The order's state at 2paynow. A known `trade_no` is asked with
    /// `query` (how web orders are found); without one, or when `query`
    /// does not know it (a WAP order, which the driver only ever asks by
    /// merchant number), with `wap_query` and the merchant order no.
    fn order_status(&self, ctx: &mut Ctx, order: &OrderRef) -> Result<TradeStatus> {
        let trade_no = order.provider_trade_no.as_deref().filter(|t| !t.is_empty());
        let answer = match trade_no {
            Some(t) => match self.call(ctx, wire::QUERY, &[("trade_no", t.to_string())]) {
                Ok(a) => a,
                // The first refusal is the one worth reporting; a
                // suspension (the request still to send) must pass through.
                Err(e) if is_final_refusal(&e) && !order.merchant_order_no.is_empty() => self
                    .wap_query(ctx, &order.merchant_order_no)
                    .map_err(|w| if w.adapter_error().is_some() { e } else { w })?,
                Err(e) => return Err(e),
            },
            None => self.wap_query(ctx, &order.merchant_order_no)?,
        };
        let reported = answer.text("trade_no");
        if let (Some(asked), Some(got)) = (trade_no, reported.as_deref())
            && asked != got
        {
            return Err(Error::malformed(format!(
                "{} answer is for trade_no `{got}`, not `{asked}`",
                answer.function
            )));
        }
        let word = answer.required("trans_status")?;
        Ok(TradeStatus {
            order: OrderRef {
                merchant_order_no: order.merchant_order_no.clone(),
                provider_trade_no: reported.or_else(|| order.provider_trade_no.clone()),
                channel_transaction_id: answer
                    .text("original_trade_no")
                    .or_else(|| order.channel_transaction_id.clone()),
            },
            state: wire::trade_state(&word),
            provider_state: word,
            amount: answer.money()?,
            paid_at: None,
            payer_id: None,
        })
    }

    fn wap_query(&self, ctx: &mut Ctx, merchant_order_no: &str) -> Result<Answer> {
        order_no(merchant_order_no, "order.merchant_order_no")?;
        self.call(
            ctx,
            wire::WAP_QUERY,
            &[("merchant_trade_no", merchant_order_no.to_string())],
        )
    }
}

/// The merchant numbers 2paynow is sent: letters, digits, `_` and `-`
/// (its own limits are not public; these pass any query string unescaped).
fn order_no(value: &str, field: &str) -> Result<()> {
    field::order_no(value, field, 1, 64, "_-")
}

/// A refusal 2paynow would repeat: worth trying the other query.
fn is_final_refusal(e: &Error) -> bool {
    matches!(e.adapter_error(), Some(AdapterError::ProviderRejected(r)) if !r.retryable)
}

impl Adapter for TwoPayNow {
    fn describe() -> AdapterInfo {
        let field = field::config;
        AdapterInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            contract_version: CONTRACT_VERSION.into(),
            // No `wechat_mini_program`: the JSAPI call is not public (§6.6).
            methods: METHODS.iter().map(|m| m.to_string()).collect(),
            currencies: money::currencies(CURRENCIES),
            capabilities: Capabilities {
                payment_notifications: true,
                // Refunds are not publicly documented (§6.6).
                refund_notifications: false,
                partial_refunds: false,
                // Web orders are found by 2paynow's trade_no only.
                query_by_merchant_order_no: false,
                close: true,
                refund_query: false,
                payouts: false,
                payout_notifications: false,
                contracts: false,
                contract_notifications: false,
                deduction_notifications: false,
            },
            egress_hosts: vec!["www.2paynow.com".into()],
            field_rules: vec![],
            config_schema: vec![
                field(
                    "mid",
                    "2paynow merchant id (numeric)",
                    FieldKind::Text,
                    true,
                    None,
                ),
                field(
                    "key",
                    "The key 2paynow issued with the merchant id",
                    FieldKind::Secret,
                    true,
                    None,
                ),
                field(
                    "base_url",
                    "Web endpoint host; the adapter calls {base_url}/zhifu/mc_itf",
                    FieldKind::Url,
                    false,
                    Some(DEFAULT_BASE_URL),
                ),
                field(
                    "timestamp_unit",
                    "`milliseconds` (the public driver) or `seconds`",
                    FieldKind::Text,
                    false,
                    Some("milliseconds"),
                ),
                field(
                    "wechat_type",
                    "`type` value that selects WeChat Pay",
                    FieldKind::Text,
                    false,
                    Some("1"),
                ),
                field(
                    "alipay_type",
                    "`type` value that selects Alipay",
                    FieldKind::Text,
                    false,
                    Some("0"),
                ),
                field(
                    "it_b_pay",
                    "Payment time-out sent when an order has no expiry",
                    FieldKind::Text,
                    false,
                    Some("30m"),
                ),
                field(
                    "wap_wechat_url",
                    "Page the payer opens for wechat_wap (http or https as 2paynow accepts)",
                    FieldKind::Text,
                    false,
                    Some(DEFAULT_WAP_WECHAT_URL),
                ),
                field(
                    "wap_alipay_url",
                    "Page the payer opens for alipay_wap (http or https as 2paynow accepts)",
                    FieldKind::Text,
                    false,
                    Some(DEFAULT_WAP_ALIPAY_URL),
                ),
                field(
                    "return_url",
                    "Where 2paynow sends the payer back after a WAP payment (required for the WAP methods)",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "verify_answer_sign",
                    "`true` to check answers' `sign` with the request formula (unconfirmed that 2paynow signs them so)",
                    FieldKind::Text,
                    false,
                    Some("false"),
                ),
            ],
        }
    }

    fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
        let s = Settings::read(ctx)?;
        let (channel, wap) = match req.method.as_str() {
            WECHAT_NATIVE => (Channel::Wechat, false),
            ALIPAY_NATIVE => (Channel::Alipay, false),
            WECHAT_WAP => (Channel::Wechat, true),
            ALIPAY_WAP => (Channel::Alipay, true),
            other => {
                return Err(Error::unsupported(format!(
                    "method `{other}`: {NAME} offers {} (its mini-program call is not publicly documented)",
                    METHODS.join(", ")
                )));
            }
        };
        order_no(&req.merchant_order_no, "merchant_order_no")?;
        field::chars(&req.description, "description", 1, 128)?;
        field::positive(req.amount.minor, "amount.minor")?;
        if !CURRENCIES.contains(&req.amount.currency.as_str()) {
            return Err(Error::invalid_request(format!(
                "amount.currency `{}`: {NAME} takes {}",
                req.amount.currency,
                CURRENCIES.join(", ")
            )));
        }
        let amount = money::to_decimal(&req.amount)
            .map_err(|e| Error::invalid_request(format!("amount: {e}")))?;
        let it_b_pay = match field::expiry(req.expires_at, ctx.timestamp())? {
            Some(at) => wire::it_b_pay(at - ctx.timestamp()),
            None => s.it_b_pay.to_string(),
        };
        let passback = json::json!({ wire::PASSBACK_ORDER_KEY: req.merchant_order_no }).to_string();
        let mut params = vec![
            ("type", s.pay_type(channel).to_string()),
            ("subject", req.description.clone()),
            ("amount", amount),
            ("currency", req.amount.currency.clone()),
            ("notify_url", ctx.notify_url().to_string()),
        ];
        // §6.2: WAP WeChat takes no time-out.
        if !(wap && channel == Channel::Wechat) {
            params.push(("it_b_pay", it_b_pay));
        }
        params.push(("passback_parameters", passback));

        if wap {
            let return_url = s.return_url.ok_or_else(|| {
                Error::invalid_config(format!(
                    "field `return_url` is required for {WECHAT_WAP} and {ALIPAY_WAP}"
                ))
            })?;
            params.push(("merchant_trade_no", req.merchant_order_no.clone()));
            params.push(("return_url", return_url.to_string()));
            // The payer's browser opens the page; nothing is sent from here,
            // and 2paynow's trade_no arrives with the notification.
            let page = match channel {
                Channel::Wechat => s.wap_wechat_url,
                Channel::Alipay => s.wap_alipay_url,
            };
            let query = s.signed_query(ctx, wire::WAP_PRECREATE, &params)?;
            return Ok(OrderCreated {
                order: OrderRef {
                    merchant_order_no: req.merchant_order_no.clone(),
                    provider_trade_no: None,
                    channel_transaction_id: None,
                },
                action: PayAction::Redirect(format!("{page}?{query}")),
            });
        }

        let answer = s.call(ctx, wire::PRECREATE, &params)?;
        Ok(OrderCreated {
            order: OrderRef {
                merchant_order_no: req.merchant_order_no.clone(),
                provider_trade_no: Some(answer.required("trade_no")?),
                channel_transaction_id: None,
            },
            action: PayAction::QrCode(answer.required("qr_code")?),
        })
    }

    fn query(ctx: &mut Ctx, req: &QueryRequest) -> Result<TradeStatus> {
        let s = Settings::read(ctx)?;
        s.order_status(ctx, &req.order)
    }

    /// `cancel` by trade_no (looked up with `wap_query` for a WAP order
    /// that has none yet). When 2paynow refuses, the order is queried: a
    /// payer who was faster is answered as paid, a closed order as closed,
    /// anything else keeps the refusal (the host then does not close).
    fn close(ctx: &mut Ctx, req: &CloseRequest) -> Result<TradeStatus> {
        let s = Settings::read(ctx)?;
        let trade_no = match req
            .order
            .provider_trade_no
            .as_deref()
            .filter(|t| !t.is_empty())
        {
            Some(t) => t.to_string(),
            None => s
                .wap_query(ctx, &req.order.merchant_order_no)?
                .required("trade_no")?,
        };
        let closed = |trade_no: String| TradeStatus {
            order: OrderRef {
                provider_trade_no: Some(trade_no),
                ..req.order.clone()
            },
            state: TradeState::Closed,
            provider_state: "TRADE_CLOSED".into(),
            amount: None,
            paid_at: None,
            payer_id: None,
        };
        match s.call(ctx, wire::CANCEL, &[("trade_no", trade_no.clone())]) {
            Ok(_) => Ok(closed(trade_no)),
            Err(e) if is_final_refusal(&e) => {
                let order = OrderRef {
                    provider_trade_no: Some(trade_no),
                    ..req.order.clone()
                };
                let status = s.order_status(ctx, &order)?;
                match status.state {
                    TradeState::Paid | TradeState::Closed => Ok(status),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn refund(_ctx: &mut Ctx, _req: &RefundRequest) -> Result<RefundStatus> {
        Err(Error::unsupported(NO_REFUNDS))
    }

    fn refund_query(_ctx: &mut Ctx, _req: &RefundQueryRequest) -> Result<RefundStatus> {
        Err(Error::unsupported(NO_REFUNDS))
    }

    /// §6.4: parameters in the query string (GET or POST; a form body is
    /// read when the query string is empty), `sign` over function, mid and
    /// timestamp. Then the order is asked at 2paynow, and only that answer
    /// is reported: a notification saying TRADE_SUCCESS for an order 2paynow
    /// calls unpaid reports it pending. An amount or trade_no that differs
    /// from 2paynow's answer refuses the notification.
    fn parse_notify(ctx: &mut Ctx, req: &InboundHttp) -> Result<NotifyOutcome> {
        let s = Settings::read(ctx)?;
        if !matches!(req.method, HttpMethod::Get | HttpMethod::Post) {
            return Err(Error::invalid_request("notification must be a GET or POST"));
        }
        let what = "notification";
        let params = wire::Params::parse(&req.query, &req.body)?;
        let sign = params
            .get("sign")
            .ok_or_else(|| Error::bad_signature(format!("{what} carries no `sign`")))?;
        let mid = params.required("mid")?;
        if mid != s.mid {
            return Err(Error::bad_signature(format!(
                "{what} is for mid `{mid}`, not the configured one"
            )));
        }
        sign::verify(
            ctx,
            params.required("function")?,
            mid,
            params.required("timestamp")?,
            s.key,
            sign,
            what,
        )?;
        let ack = http::response(200, "text/plain", "success");
        // The source article answers `success` to a notification naming no
        // order, and applies nothing.
        let Some(merchant_order_no) = params.merchant_order_no() else {
            return Ok(NotifyOutcome {
                events: vec![],
                ack,
            });
        };
        order_no(&merchant_order_no, "merchant_trade_no")?;
        let notified_trade_no = params.get("trade_no").map(String::from);
        let wap = params.get("merchant_trade_no").is_some();
        if !wap && notified_trade_no.is_none() {
            return Err(Error::invalid_request(format!(
                "{what} for a web order lacks `trade_no`"
            )));
        }
        // A WAP order is asked by the merchant number payhost chose; a web
        // order by the trade_no, which the host checks against the one it
        // stored at creation.
        let order = OrderRef {
            merchant_order_no,
            provider_trade_no: if wap { None } else { notified_trade_no.clone() },
            channel_transaction_id: None,
        };
        let status = s.order_status(ctx, &order)?;
        if let (Some(told), Some(found)) = (&notified_trade_no, &status.order.provider_trade_no)
            && told != found
        {
            return Err(Error::invalid_request(format!(
                "{what} names trade_no `{told}`; 2paynow has `{found}` for order `{}`",
                status.order.merchant_order_no
            )));
        }
        if let (Some(amount), Some(currency)) = (params.get("amount"), params.get("currency")) {
            let told = money::from_decimal(amount, currency)
                .map_err(|e| Error::invalid_request(format!("{what}: amount: {e}")))?;
            if let Some(found) = &status.amount
                && *found != told
            {
                return Err(Error::invalid_request(format!(
                    "{what} says {amount} {currency}; 2paynow's query says {} {}",
                    money::to_decimal(found).unwrap_or_default(),
                    found.currency
                )));
            }
        }
        let mut status = status;
        // §6.4: the article keeps `original_trade_no` as the third number.
        // It is unsigned, so it is taken only for a payment 2paynow confirmed.
        if status.order.channel_transaction_id.is_none() && status.state == TradeState::Paid {
            status.order.channel_transaction_id = params.get("original_trade_no").map(String::from);
        }
        Ok(NotifyOutcome {
            events: vec![NotifyEvent::Payment(status)],
            ack,
        })
    }
}

payhost_sdk::export_adapter!(TwoPayNow);

#[cfg(test)]
mod tests;
