//! Yaband Pay adapter (YabandPay, Europe PayPro B.V.): one JSON endpoint
//! whose `method` selects the call, HMAC-SHA256 signatures, amounts as
//! major-unit decimal strings.
//!
//! - `lib.rs` (this file): the contract -- `describe` and the operations.
//! - [`wire`]: Yaband's messages, methods and state codes.
//! - [`sign`]: `stringA` and its signature; the key stays on the host.
//!
//! Yaband knows an order by its own `trade_id` only (providers.md §5.6,
//! the source article's main pitfall): query and refund need the provider
//! trade no the host stored at creation, refund query Yaband's `refund_id`.
//! References are to sections of `providers.md` §5.

#![forbid(unsafe_code)]

pub mod sign;
pub mod wire;

use payhost_sdk::prelude::*;
use sign::{Nested, Object, Rules};
use wire::method;

pub struct Yaband;

/// The provider's limits on request fields, declared in `describe` so the
/// host refuses a value before an order number is spent.
const ORDER_NO: field::Rule = field::Rule::order_no("merchant_order_no", 1, 64, "_-");
const DESCRIPTION: field::Rule = field::Rule::text("description", 1, 128);
const REFUND_NO: field::Rule = field::Rule::order_no("refund_no", 1, 64, "_-");
const RULES: [field::Rule; 4] = [ORDER_NO, DESCRIPTION, REFUND_NO, field::MINI_PROGRAM_OPENID];

pub const MINI_PROGRAM: &str = "wechat_mini_program";
pub const WECHAT_JSAPI: &str = "wechat_jsapi";
pub const WECHAT_NATIVE: &str = "wechat_native";
pub const PAYPAL: &str = "paypal";
pub const PAYCONIQ: &str = "payconiq";
pub const UNIONPAY_WAP: &str = "unionpay_wap";
pub const CARD: &str = "card";

/// The methods `describe` offers, in that order.
pub const METHODS: &[&str] = &[
    MINI_PROGRAM,
    WECHAT_JSAPI,
    WECHAT_NATIVE,
    PAYPAL,
    PAYCONIQ,
    UNIONPAY_WAP,
    CARD,
];

/// Currencies Yaband accepts (providers.md §5.7: the docs name EUR, CHF,
/// CNY; the library bundled in its WooCommerce plugin adds GBP, DKK, SEK).
pub const CURRENCIES: &[&str] = &["EUR", "CNY", "GBP", "CHF", "DKK", "SEK"];

/// §5.7: `timeout` is 0–1440 minutes.
const MAX_TIMEOUT_MINUTES: i64 = 1440;

/// The merchant configuration, read once per operation.
struct Settings<'a> {
    user: &'a str,
    key: Secret,
    endpoint: String,
    rules: Rules,
    answer_sign_required: bool,
    /// `None`: the order's currency.
    refund_currency: Option<&'a str>,
    refund_description: &'a str,
    redirect_url: Option<&'a str>,
    sub_app_id: Option<&'a str>,
    default_timeout: &'a str,
    notify_ack: &'a str,
}

impl<'a> Settings<'a> {
    fn read(ctx: &Ctx<'a>) -> Result<Self> {
        let c = ctx.config();
        let bool_field = |name: &str, default: bool| -> Result<bool> {
            match c.text_opt(name)? {
                None => Ok(default),
                Some("true") => Ok(true),
                Some("false") => Ok(false),
                Some(other) => Err(Error::invalid_config(format!(
                    "field `{name}` is `{other}`, expected `true` or `false`"
                ))),
            }
        };
        let nested = c.text_opt("nested_objects")?.unwrap_or("flatten");
        let nested = Nested::parse(nested).ok_or_else(|| {
            Error::invalid_config(format!(
                "field `nested_objects` is `{nested}`, expected `flatten`, `json` or `skip`"
            ))
        })?;
        let answer_sign_required = match c.text_opt("answer_signature")?.unwrap_or("if_present") {
            "if_present" => false,
            "required" => true,
            other => {
                return Err(Error::invalid_config(format!(
                    "field `answer_signature` is `{other}`, expected `if_present` or `required`"
                )));
            }
        };
        let refund_currency = match c.text_opt("refund_currency")?.unwrap_or("order") {
            "order" => None,
            code => {
                field::currency(code, "refund_currency").map_err(|_| {
                    Error::invalid_config(format!(
                        "field `refund_currency` is `{code}`, expected `order` or an ISO 4217 code"
                    ))
                })?;
                Some(code)
            }
        };
        let default_timeout = c.text_opt("timeout_minutes")?.unwrap_or("0");
        match default_timeout.parse::<i64>() {
            Ok(m) if (0..=MAX_TIMEOUT_MINUTES).contains(&m) => {}
            _ => {
                return Err(Error::invalid_config(format!(
                    "field `timeout_minutes` is `{default_timeout}`, expected 0 to 1440 (0: Yaband's 1440)"
                )));
            }
        }
        let base = c.text_opt("base_url")?.unwrap_or(wire::DEFAULT_BASE_URL);
        Ok(Settings {
            user: c.text("user")?,
            key: c.secret("secret_key")?,
            endpoint: http::join(base, wire::PATH),
            rules: Rules {
                skip_empty: bool_field("skip_empty_values", true)?,
                nested,
            },
            answer_sign_required,
            refund_currency,
            refund_description: c.text_opt("refund_description")?.unwrap_or("refund"),
            redirect_url: c.text_opt("redirect_url")?,
            sub_app_id: c.text_opt("sub_app_id")?,
            default_timeout,
            notify_ack: c.text_opt("notify_ack")?.unwrap_or("ok"),
        })
    }

    /// Signs and sends one call (§5.1, §5.4) and returns the answer's
    /// `data` when Yaband says `status: true`.
    fn call(&self, ctx: &mut Ctx, method: &str, data: Object) -> Result<json::Value> {
        let time = ctx.timestamp();
        let string_a = sign::request_string(self.user, method, time, &data, self.rules);
        let signature = sign::sign(ctx, self.key, &string_a)?;
        let body = json::json!({
            "user": self.user, "sign": signature, "method": method, "time": time, "data": data,
        });
        let response = ctx.send(http::post(
            self.endpoint.clone(),
            "application/json",
            json::to_body(&body),
        ))?;
        let status = response.status;
        let answer: Option<wire::Answer> = json::from_body(&response.body).ok();
        if !(200..300).contains(&status) {
            let message = answer.and_then(|a| a.message).unwrap_or_default();
            return Err(Error::rejected(
                format!("HTTP_{status}"),
                format!("{method}: HTTP {status} {message}"),
                status >= 500 || status == 429,
            ));
        }
        let answer = answer
            .ok_or_else(|| Error::malformed(format!("{method} answer is not Yaband's JSON")))?;
        if !answer.ok() {
            let code = answer.code.clone().unwrap_or_else(|| "FAIL".into());
            return Err(Error::rejected(
                code.clone(),
                format!(
                    "{method}: {code} {}",
                    answer.message.as_deref().unwrap_or("")
                ),
                code.starts_with('5'),
            ));
        }
        let what = format!("{method} answer");
        let data_sign = answer.data.get("sign").and_then(json::Value::as_str);
        match (
            answer.sign.as_deref().or(data_sign),
            answer.data.as_object(),
        ) {
            (Some(received), Some(data)) => {
                let string_a = sign::data_string(data, self.rules);
                sign::verify(ctx, self.key, &string_a, received, &what)?;
            }
            (None, _) if self.answer_sign_required => {
                return Err(Error::bad_signature(format!("{what} carries no `sign`")));
            }
            (Some(_), None) => return Err(Error::malformed(format!("{what} has no `data`"))),
            (None, _) => {}
        }
        Ok(answer.data)
    }

    /// A payment as Yaband reports it, in the contract's terms, checked
    /// against the order asked about.
    fn trade_status(
        &self,
        t: wire::Transaction,
        order: &OrderRef,
        what: &str,
    ) -> Result<TradeStatus> {
        self.check_user(t.user.as_deref(), what)?;
        // Flattened, `sign` does not cover the name of a nested object: a
        // signed answer whose `transaction_info` was renamed still
        // verifies, and would read as a status of nothing.
        if t.state.as_deref().is_none_or(str::is_empty) {
            return Err(Error::malformed(format!("{what} names no `state`")));
        }
        if t.trade_id.is_none() && t.order_id.is_none() {
            return Err(Error::malformed(format!(
                "{what} names neither `trade_id` nor `order_id`"
            )));
        }
        check_same(
            t.trade_id.as_deref(),
            order.provider_trade_no.as_deref(),
            "trade_id",
            what,
        )?;
        check_same(
            t.order_id.as_deref(),
            Some(&order.merchant_order_no),
            "order_id",
            what,
        )?;
        let provider_state = t.state.unwrap_or_default();
        let state = wire::trade_state(&provider_state);
        let amount = decimal(t.amount.as_deref(), t.currency.as_deref(), what)?;
        let paid_at = match t.paid_time.as_deref().filter(|_| state == TradeState::Paid) {
            Some(text) => paid_time(text),
            None => None,
        };
        Ok(TradeStatus {
            order: OrderRef {
                merchant_order_no: t
                    .order_id
                    .filter(|o| !o.is_empty())
                    .unwrap_or_else(|| order.merchant_order_no.clone()),
                provider_trade_no: t
                    .trade_id
                    .filter(|t| !t.is_empty())
                    .or_else(|| order.provider_trade_no.clone()),
                channel_transaction_id: t
                    .transaction_id
                    .filter(|t| !t.is_empty())
                    .or_else(|| order.channel_transaction_id.clone()),
            },
            state,
            provider_state,
            amount,
            paid_at,
            payer_id: None,
        })
    }

    /// A refund as Yaband reports it, for the refund asked about.
    fn refund_status(
        &self,
        r: wire::Refund,
        order: &OrderRef,
        refund_no: &str,
        refund_id: Option<&str>,
        what: &str,
    ) -> Result<RefundStatus> {
        check_same(
            r.m_refund_id.as_deref(),
            Some(refund_no),
            "m_refund_id",
            what,
        )?;
        check_same(r.refund_id.as_deref(), refund_id, "refund_id", what)?;
        check_same(
            r.trade_id.as_deref(),
            order.provider_trade_no.as_deref(),
            "trade_id",
            what,
        )?;
        check_same(
            r.order_id.as_deref(),
            Some(&order.merchant_order_no),
            "order_id",
            what,
        )?;
        let provider_state = r.state.unwrap_or_default();
        Ok(RefundStatus {
            order: order.clone(),
            refund_no: refund_no.to_string(),
            provider_refund_id: r
                .refund_id
                .filter(|r| !r.is_empty())
                .or_else(|| refund_id.map(String::from)),
            state: wire::refund_state(&provider_state),
            provider_state,
            amount: decimal(
                r.refund_amount.as_deref(),
                r.refund_currency.as_deref(),
                what,
            )?,
        })
    }

    fn check_user(&self, user: Option<&str>, what: &str) -> Result<()> {
        match user.filter(|u| !u.is_empty()) {
            Some(u) if u != self.user => Err(Error::malformed(format!(
                "{what} is for user `{u}`, not `{}`",
                self.user
            ))),
            _ => Ok(()),
        }
    }

    /// `timeout` in minutes (§5.7): until the order's expiry, rounded down
    /// so Yaband never takes a payment payhost has given up on; at least 1
    /// (0 would mean 1440).
    fn timeout(&self, ctx: &Ctx, expires_at: Option<i64>) -> Result<String> {
        match field::expiry(expires_at, ctx.timestamp())? {
            None => Ok(self.default_timeout.to_string()),
            Some(at) => {
                let minutes = ((at - ctx.timestamp()) / 60).clamp(1, MAX_TIMEOUT_MINUTES);
                Ok(minutes.to_string())
            }
        }
    }

    fn redirect_url(&self, method: &str) -> Result<&'a str> {
        self.redirect_url.ok_or_else(|| {
            Error::invalid_config(format!(
                "field `redirect_url` (where Yaband sends the payer back) is required for method `{method}`"
            ))
        })
    }
}

/// A reported identifier that contradicts the one asked about.
fn check_same(reported: Option<&str>, asked: Option<&str>, name: &str, what: &str) -> Result<()> {
    match (
        reported.filter(|r| !r.is_empty()),
        asked.filter(|a| !a.is_empty()),
    ) {
        (Some(r), Some(a)) if r != a => Err(Error::malformed(format!(
            "{what} is for {name} `{r}`, not `{a}`"
        ))),
        _ => Ok(()),
    }
}

/// An amount Yaband wrote in major units, with its currency.
fn decimal(amount: Option<&str>, currency: Option<&str>, what: &str) -> Result<Option<Money>> {
    match (
        amount.filter(|a| !a.is_empty()),
        currency.filter(|c| !c.is_empty()),
    ) {
        (Some(a), Some(c)) => money::from_decimal(a, c)
            .map(Some)
            .map_err(|e| Error::malformed(format!("{what}: {e}"))),
        (Some(_), None) => Err(Error::malformed(format!(
            "{what} has an amount without a currency"
        ))),
        _ => Ok(None),
    }
}

/// `paid_time`: Unix seconds or RFC 3339; another form is left out rather
/// than guessed (its zone is not documented).
fn paid_time(text: &str) -> Option<i64> {
    match text.parse::<i64>() {
        Ok(unix) => Some(unix),
        Err(_) => time::parse_rfc3339(text).ok(),
    }
}

/// §5.7 minimums: EUR 0.10 or CNY 1 for wallets, EUR 1.00 for card and
/// UnionPay.
fn check_minimum(method: &str, amount: &Money) -> Result<()> {
    let minimum = match (method, amount.currency.as_str()) {
        (CARD | UNIONPAY_WAP, "EUR") => 100,
        (_, "EUR") => 10,
        (MINI_PROGRAM | WECHAT_JSAPI | WECHAT_NATIVE, "CNY") => 100,
        _ => return Ok(()),
    };
    if amount.minor < minimum {
        let min = money::to_decimal(&Money {
            minor: minimum,
            currency: amount.currency.clone(),
        })?;
        return Err(Error::invalid_request(format!(
            "amount: Yaband takes at least {min} {} for method `{method}`",
            amount.currency
        )));
    }
    Ok(())
}

fn text_map(pairs: &[(&str, &str)]) -> Object {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json::Value::String(v.to_string())))
        .collect()
}

/// The provider trade no the host stored, which Yaband needs.
fn trade_id<'r>(order: &'r OrderRef, operation: &str) -> Result<&'r str> {
    order
        .provider_trade_no
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::invalid_request(format!(
                "order.provider_trade_no (Yaband's trade_id) is required: Yaband's {operation} takes its trade_id only, not the merchant order no"
            ))
        })
}

/// §5.2: the `wx.requestPayment` object of the mini-program call, whose
/// names Yaband passes on from WeChat (either case of the first letter).
fn mini_program_params(parameters: &json::Value, what: &str) -> Result<MiniProgramParams> {
    let parsed;
    let object = match parameters {
        json::Value::String(s) => {
            parsed = json::from_body::<json::Value>(s.as_bytes())
                .map_err(|e| Error::malformed(format!("{what}: parameters: {e}")))?;
            &parsed
        }
        other => other,
    };
    let get = |names: &[&str]| -> Result<String> {
        names
            .iter()
            .find_map(|n| match object.get(*n) {
                Some(json::Value::String(s)) => Some(s.clone()),
                Some(json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
            .ok_or_else(|| Error::malformed(format!("{what}: parameters lack `{}`", names[0])))
    };
    Ok(MiniProgramParams {
        app_id: get(&["appId", "appid"])?,
        time_stamp: get(&["timeStamp", "timestamp"])?,
        nonce_str: get(&["nonceStr", "noncestr"])?,
        package: get(&["package"])?,
        sign_type: get(&["signType", "signtype"])?,
        pay_sign: get(&["paySign", "paysign"])?,
    })
}

impl Adapter for Yaband {
    fn describe() -> AdapterInfo {
        let field = field::config;
        AdapterInfo {
            name: "yaband".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            contract_version: CONTRACT_VERSION.into(),
            methods: METHODS.iter().map(|m| m.to_string()).collect(),
            currencies: money::currencies(CURRENCIES),
            capabilities: Capabilities {
                payment_notifications: true,
                refund_notifications: true,
                partial_refunds: true,
                // Yaband answers for its trade_id only.
                query_by_merchant_order_no: false,
                // No close call is documented; orders lapse after `timeout`.
                close: false,
                refund_query: true,
                payouts: false,
                payout_notifications: false,
                contracts: false,
                contract_notifications: false,
                deduction_notifications: false,
            },
            egress_hosts: vec!["mapi.yabandpay.com".into()],
            field_rules: field::declare(&RULES),
            config_schema: vec![
                field(
                    "user",
                    "The cashier account UID (`user`, e.g. 016683 or an e-mail)",
                    FieldKind::Text,
                    true,
                    None,
                ),
                field(
                    "secret_key",
                    "The account's secret key (HMAC-SHA256 key)",
                    FieldKind::Secret,
                    true,
                    None,
                ),
                field(
                    "base_url",
                    "API host; no sandbox host is documented",
                    FieldKind::Url,
                    false,
                    Some(wire::DEFAULT_BASE_URL),
                ),
                field(
                    "redirect_url",
                    "Where Yaband sends the payer back after a URL method (PayPal, card, ...); required for those",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "sub_app_id",
                    "The mini-program AppID registered with Yaband (default: the payer's app_id)",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "paypal_sub_pay_method",
                    "`sub_pay_method` of method paypal (the source article used PAYPAL/RECURRING)",
                    FieldKind::Text,
                    false,
                    Some("PayPal"),
                ),
                field(
                    "payconiq_sub_pay_method",
                    "`sub_pay_method` of method payconiq",
                    FieldKind::Text,
                    false,
                    Some("Payconiq"),
                ),
                field(
                    "unionpay_wap_sub_pay_method",
                    "`sub_pay_method` of method unionpay_wap",
                    FieldKind::Text,
                    false,
                    Some("UnionPayWap"),
                ),
                field(
                    "wechat_jsapi_sub_pay_method",
                    "`sub_pay_method` of method wechat_jsapi (the in-WeChat JSAPI page)",
                    FieldKind::Text,
                    false,
                    Some("WeChat Pay"),
                ),
                field(
                    "native_url_type",
                    "`url_type` of wechat_native: 01 Yaband's hosted page, 02 the raw WeChat QR URL",
                    FieldKind::Text,
                    false,
                    Some("01"),
                ),
                field(
                    "card_operate",
                    "`operate` of card: 1 sale, 2 authorisation",
                    FieldKind::Text,
                    false,
                    Some("1"),
                ),
                field(
                    "card_3ds_initiate",
                    "`3ds_initiate` of card: 01 on, 02 off",
                    FieldKind::Text,
                    false,
                    Some("01"),
                ),
                field(
                    "timeout_minutes",
                    "`timeout` when the order has no expiry: 0 to 1440 minutes (0: Yaband's 1440)",
                    FieldKind::Text,
                    false,
                    Some("0"),
                ),
                field(
                    "refund_currency",
                    "`refund_currency`: `order` (the order's currency, newer docs) or a fixed ISO 4217 code",
                    FieldKind::Text,
                    false,
                    Some("order"),
                ),
                field(
                    "refund_description",
                    "`refund_description` when the refund has no reason",
                    FieldKind::Text,
                    false,
                    Some("refund"),
                ),
                field(
                    "skip_empty_values",
                    "Leave empty values out of the signed string (the docs' example) or keep them (the PHP library)",
                    FieldKind::Text,
                    false,
                    Some("true"),
                ),
                field(
                    "nested_objects",
                    "Nested objects in a signed `data` (card `3ds`): `flatten` their members, sign them as `json` text, or `skip` them",
                    FieldKind::Text,
                    false,
                    Some("flatten"),
                ),
                field(
                    "answer_signature",
                    "A call's answer `sign`: checked `if_present`, or `required`",
                    FieldKind::Text,
                    false,
                    Some("if_present"),
                ),
                field(
                    "notify_ack",
                    "The body that acknowledges a notification",
                    FieldKind::Text,
                    false,
                    Some("ok"),
                ),
            ],
        }
    }

    fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
        let s = Settings::read(ctx)?;
        let c = ctx.config();
        if !METHODS.contains(&req.method.as_str()) {
            return Err(Error::unsupported(format!(
                "method `{}`: yaband offers {}",
                req.method,
                METHODS.join(", ")
            )));
        }
        ORDER_NO.check(&req.merchant_order_no)?;
        DESCRIPTION.check(&req.description)?;
        field::positive(req.amount.minor, "amount.minor")?;
        if !CURRENCIES.contains(&req.amount.currency.as_str()) {
            return Err(Error::invalid_request(format!(
                "amount.currency `{}`: yaband accepts {}",
                req.amount.currency,
                CURRENCIES.join(", ")
            )));
        }
        check_minimum(&req.method, &req.amount)?;
        let amount = money::to_decimal(&req.amount)
            .map_err(|e| Error::invalid_request(format!("amount: {e}")))?;
        let timeout = s.timeout(ctx, req.expires_at)?;
        let mut data = text_map(&[
            ("order_id", &req.merchant_order_no),
            ("amount", &amount),
            ("currency", &req.amount.currency),
            ("description", &req.description),
            ("timeout", &timeout),
            ("notify_url", ctx.notify_url()),
        ]);
        let mut put = |k: &str, v: &str| {
            data.insert(k.to_string(), json::Value::String(v.to_string()));
        };
        let call = match req.method.as_str() {
            MINI_PROGRAM => {
                let app = match s.sub_app_id {
                    Some(app) => app,
                    None => req
                        .payer
                        .app_id
                        .as_deref()
                        .filter(|a| !a.is_empty())
                        .ok_or_else(|| {
                            Error::invalid_request(
                                "payer.app_id (the mini-program registered with Yaband) is required for wechat_mini_program",
                            )
                        })?,
                };
                let openid = field::mini_program_openid(&req.payer, app)?;
                put("pay_method", "online");
                put("sub_pay_method", "WeChat Pay");
                put("sub_app_id", app);
                put("sub_open_id", openid);
                method::MINI_PAY
            }
            WECHAT_NATIVE => {
                put("url_type", c.text_opt("native_url_type")?.unwrap_or("01"));
                if let Some(url) = s.redirect_url {
                    put("redirect_url", url);
                }
                method::NATIVE_PAY
            }
            CARD => {
                put("pay_method", "online");
                put("operate", c.text_opt("card_operate")?.unwrap_or("1"));
                put(
                    "3ds_initiate",
                    c.text_opt("card_3ds_initiate")?.unwrap_or("01"),
                );
                // Unique per order and the same on every retry of it.
                let digest = ctx.digest(
                    DigestAlgorithm::Sha256,
                    &[Part::Text(format!(
                        "yaband-card:{}:{}",
                        s.user, req.merchant_order_no
                    ))],
                )?;
                put("request_id", &encoding::hex_lower(&digest)[..32]);
                put("redirect_url", s.redirect_url(CARD)?);
                method::CARD_PAYMENTS
            }
            url_method => {
                let (name, default) = match url_method {
                    PAYPAL => ("paypal_sub_pay_method", "PayPal"),
                    PAYCONIQ => ("payconiq_sub_pay_method", "Payconiq"),
                    UNIONPAY_WAP => ("unionpay_wap_sub_pay_method", "UnionPayWap"),
                    _ => ("wechat_jsapi_sub_pay_method", "WeChat Pay"),
                };
                put("pay_method", "online");
                put("sub_pay_method", c.text_opt(name)?.unwrap_or(default));
                put("redirect_url", s.redirect_url(url_method)?);
                method::CREATE_PAYMENTS
            }
        };
        let data = s.call(ctx, call, data)?;
        let what = format!("{call} answer");
        let created: wire::Created =
            serde_json::from_value(data).map_err(|e| Error::malformed(format!("{what}: {e}")))?;
        let trade_id = created
            .trade_id
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::malformed(format!("{what} lacks `trade_id`")))?;
        check_same(
            created.order_id.as_deref(),
            Some(&req.merchant_order_no),
            "order_id",
            &what,
        )?;
        if let Some(reported) = decimal(
            created.amount.as_deref(),
            created.currency.as_deref(),
            &what,
        )? && reported != req.amount
        {
            return Err(Error::malformed(format!(
                "{what} is for {} {}, not the order's {amount} {}",
                created.amount.unwrap_or_default(),
                reported.currency,
                req.amount.currency
            )));
        }
        let action = match req.method.as_str() {
            MINI_PROGRAM => {
                PayAction::MiniProgram(mini_program_params(&created.parameters, &what)?)
            }
            other => {
                let url = created
                    .url
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| Error::malformed(format!("{what} lacks `url`")))?;
                if other == WECHAT_NATIVE {
                    PayAction::QrCode(url)
                } else {
                    PayAction::Redirect(url)
                }
            }
        };
        Ok(OrderCreated {
            order: OrderRef {
                merchant_order_no: req.merchant_order_no.clone(),
                provider_trade_no: Some(trade_id),
                channel_transaction_id: None,
            },
            action,
        })
    }

    fn query(ctx: &mut Ctx, req: &QueryRequest) -> Result<TradeStatus> {
        let s = Settings::read(ctx)?;
        let trade_id = trade_id(&req.order, "v3.QueryOrder")?;
        let data = s.call(
            ctx,
            method::QUERY_ORDER,
            text_map(&[("trade_id", trade_id)]),
        )?;
        let what = "v3.QueryOrder answer";
        let info = data.get("transaction_info").cloned().unwrap_or(data);
        let t: wire::Transaction =
            serde_json::from_value(info).map_err(|e| Error::malformed(format!("{what}: {e}")))?;
        s.trade_status(t, &req.order, what)
    }

    fn close(_ctx: &mut Ctx, _req: &CloseRequest) -> Result<TradeStatus> {
        Err(Error::unsupported(
            "yaband documents no close call; an unpaid order lapses after its `timeout`",
        ))
    }

    fn refund(ctx: &mut Ctx, req: &RefundRequest) -> Result<RefundStatus> {
        let s = Settings::read(ctx)?;
        let trade_id = trade_id(&req.order, "v3.CreateRefund")?;
        REFUND_NO.check(&req.refund_no)?;
        field::positive(req.amount.minor, "amount.minor")?;
        if req.amount.currency != req.order_amount.currency {
            return Err(Error::invalid_request(format!(
                "amount.currency `{}` differs from order_amount.currency `{}`",
                req.amount.currency, req.order_amount.currency
            )));
        }
        if let Some(fixed) = s.refund_currency
            && fixed != req.amount.currency
        {
            return Err(Error::invalid_request(format!(
                "amount.currency `{}`: this merchant's Yaband refunds in `{fixed}` only (field `refund_currency`)",
                req.amount.currency
            )));
        }
        if req.amount.minor > req.order_amount.minor {
            return Err(Error::invalid_request(format!(
                "amount.minor {} exceeds order_amount.minor {}",
                req.amount.minor, req.order_amount.minor
            )));
        }
        let amount = money::to_decimal(&req.amount)
            .map_err(|e| Error::invalid_request(format!("amount: {e}")))?;
        let description = req
            .reason
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or(s.refund_description);
        let data = text_map(&[
            ("trade_id", trade_id),
            ("m_refund_id", &req.refund_no),
            ("refund_amount", &amount),
            ("refund_currency", &req.amount.currency),
            ("refund_description", description),
            ("notify_url", ctx.notify_url()),
        ]);
        let data = s.call(ctx, method::CREATE_REFUND, data)?;
        let what = "v3.CreateRefund answer";
        let info = data.get("refund_info").cloned().unwrap_or(data);
        let r: wire::Refund =
            serde_json::from_value(info).map_err(|e| Error::malformed(format!("{what}: {e}")))?;
        s.refund_status(r, &req.order, &req.refund_no, None, what)
    }

    fn refund_query(ctx: &mut Ctx, req: &RefundQueryRequest) -> Result<RefundStatus> {
        let s = Settings::read(ctx)?;
        let refund_id = req
            .provider_refund_id
            .as_deref()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                Error::invalid_request(
                    "provider_refund_id (Yaband's refund_id) is required: v3.QueryRefundOrder takes it only",
                )
            })?;
        let data = s.call(
            ctx,
            method::QUERY_REFUND,
            text_map(&[("refund_id", refund_id)]),
        )?;
        let what = "v3.QueryRefundOrder answer";
        let info = data.get("refund_info").cloned().unwrap_or(data);
        let r: wire::Refund =
            serde_json::from_value(info).map_err(|e| Error::malformed(format!("{what}: {e}")))?;
        s.refund_status(r, &req.order, &req.refund_no, Some(refund_id), what)
    }

    fn parse_notify(ctx: &mut Ctx, req: &InboundHttp) -> Result<NotifyOutcome> {
        let s = Settings::read(ctx)?;
        let refuse = |e: Error| e.with_ack(wire::ack_refused());
        if req.method != HttpMethod::Post {
            return Err(refuse(Error::invalid_request(
                "notification must be a POST",
            )));
        }
        let (received, data) = notification_body(&req.body).map_err(refuse)?;
        let what = "notification";
        sign::verify(
            ctx,
            s.key,
            &sign::data_string(&data, s.rules),
            &received,
            what,
        )
        .map_err(refuse)?;
        let events = notification_events(&s, data).map_err(refuse)?;
        Ok(NotifyOutcome {
            events,
            ack: wire::ack_success(s.notify_ack),
        })
    }
}

/// §5.5: `{"sign": ..., "data": {...}}`, or the PHP library's form field
/// `resultData=<JSON>`. The older "signature.status" dot form is not taken.
fn notification_body(body: &[u8]) -> Result<(String, Object)> {
    let bad = |m: String| Error::invalid_request(format!("notification body: {m}"));
    let trimmed = body.trim_ascii_start();
    let envelope: json::Value = if trimmed.starts_with(b"{") {
        json::from_body(trimmed).map_err(|e| bad(e.0))?
    } else {
        let result = form::decode(body)
            .into_iter()
            .find(|(k, _)| k == "resultData")
            .ok_or_else(|| bad("neither JSON nor a `resultData` form field".into()))?;
        json::from_body(result.1.as_bytes()).map_err(|e| bad(format!("resultData: {}", e.0)))?
    };
    let received = envelope
        .get("sign")
        .and_then(json::Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad_signature("notification carries no `sign`"))?
        .to_string();
    let data = match envelope.get("data") {
        Some(json::Value::Object(d)) => d.clone(),
        _ => return Err(bad("`data` is not an object".into())),
    };
    Ok((received, data))
}

/// The verified `data` of a notification as contract events.
fn notification_events(s: &Settings, data: Object) -> Result<Vec<NotifyEvent>> {
    let t: wire::Transaction = serde_json::from_value(json::Value::Object(data))
        .map_err(|e| Error::invalid_request(format!("notification data: {e}")))?;
    let what = "notification";
    let invalid = |e: Error| match e.adapter_error() {
        Some(AdapterError::MalformedResponse(m)) => Error::invalid_request(m.clone()),
        _ => e,
    };
    s.check_user(t.user.as_deref(), what).map_err(invalid)?;
    let order_id = t
        .order_id
        .clone()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| Error::invalid_request("notification lacks `order_id`"))?;
    let order = OrderRef {
        merchant_order_no: order_id,
        provider_trade_no: t.trade_id.clone().filter(|t| !t.is_empty()),
        channel_transaction_id: t.transaction_id.clone().filter(|t| !t.is_empty()),
    };
    match t.kind.as_deref().unwrap_or("payment") {
        "payment" => Ok(vec![NotifyEvent::Payment(
            s.trade_status(t, &order, what).map_err(invalid)?,
        )]),
        "refund" => {
            let refund_no = t
                .m_refund_id
                .clone()
                .filter(|r| !r.is_empty())
                .ok_or_else(|| Error::invalid_request("refund notification lacks `m_refund_id`"))?;
            let r = wire::Refund {
                refund_id: t.refund_id,
                m_refund_id: Some(refund_no.clone()),
                trade_id: t.trade_id,
                order_id: t.order_id,
                // A refund notice names the refund's amount; without one,
                // the order's amount fields are not the refund's.
                refund_amount: t.refund_amount,
                refund_currency: t.refund_currency.or(t.currency),
                state: t.state,
            };
            Ok(vec![NotifyEvent::Refund(
                s.refund_status(r, &order, &refund_no, None, what)
                    .map_err(invalid)?,
            )])
        }
        // Verified, of a kind payhost does not handle: taken, nothing applied.
        _ => Ok(vec![]),
    }
}

payhost_sdk::export_adapter!(Yaband);

#[cfg(test)]
mod tests;
