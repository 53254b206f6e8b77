//! Supay (SuperPay by Supay Technology, Australia) adapter on the Gate API
//! (providers.md §7.3-§7.5): one JSON gateway, `service` selecting the
//! call, upper-case MD5 signatures, form-encoded notifications.
//!
//! - `lib.rs` (this file): the contract -- `describe` and the operations.
//! - [`wire`]: Supay's fields and value mappings, named as Supay names them.
//! - [`sign`]: the Gate signature, with the key as a host-held secret.
//!
//! Why the Gate API and not the Bridge API (§7.6): Gate is the family with
//! a mini-program payment (`pay_way=JSAPI` returning the `wx.requestPayment`
//! object); Bridge only hands out cashier/QR URLs, its notifications carry
//! neither amount nor status, and its responses are undocumented.

#![forbid(unsafe_code)]

pub mod sign;
pub mod wire;

use payhost_sdk::json::Value;
use payhost_sdk::prelude::*;
use sign::EmptyValues;
use wire::Fields;

pub struct Supay;

/// The provider's limits on request fields, declared in `describe` so the
/// host refuses a value before an order number is spent.
const ORDER_NO: field::Rule = field::Rule::order_no("merchant_order_no", 1, 32, "_-");
const DESCRIPTION: field::Rule = field::Rule::text("description", 1, 128);
const REFUND_NO: field::Rule = field::Rule::order_no("refund_no", 1, 32, "_-");
const RULES: [field::Rule; 4] = [ORDER_NO, DESCRIPTION, REFUND_NO, field::MINI_PROGRAM_OPENID];

/// The currencies the adapter accepts: AUD in every sample of both API
/// families, CNY pricing possibly (providers.md §7.7). Until contract 0.3
/// carries `adapter-info.currencies`, the host reads this list.
pub const CURRENCIES: &[&str] = &["AUD", "CNY"];

const DEFAULT_BASE_URL: &str = "https://gate.supaytechnology.com";

/// The merchant configuration, read once per operation.
struct Settings<'a> {
    mch_id: &'a str,
    recevice_id: &'a str,
    api_key: Secret,
    store_name: &'a str,
    base_url: &'a str,
    appid: Option<&'a str>,
    wechat_channel: &'static str,
    timeout_express: &'a str,
    query_trade_type: &'a str,
    refund_query_trade_type: &'a str,
    empty_values: EmptyValues,
    responses_must_be_signed: bool,
    notify_ack: &'a str,
    amount_currency: &'a str,
    transaction_id_field: &'a str,
}

fn text_or<'a>(c: &Config<'a>, name: &str, default: &'a str) -> Result<&'a str> {
    Ok(c.text_opt(name)?.unwrap_or(default))
}

impl<'a> Settings<'a> {
    fn read(ctx: &Ctx<'a>) -> Result<Self> {
        let c = ctx.config();
        let mch_id = c.text("mch_id")?;
        let empty = text_or(&c, "verify_empty_values", "keep_then_skip")?;
        let empty_values = EmptyValues::parse(empty).ok_or_else(|| {
            Error::invalid_config(format!(
                "field `verify_empty_values` is `{empty}`, expected `keep_then_skip`, `keep` or `skip`"
            ))
        })?;
        let response_signature = text_or(&c, "response_signature", "if_present")?;
        let responses_must_be_signed = match response_signature {
            "if_present" => false,
            "required" => true,
            other => {
                return Err(Error::invalid_config(format!(
                    "field `response_signature` is `{other}`, expected `if_present` or `required`"
                )));
            }
        };
        let wechat_channel = match text_or(&c, "wechat_pay_channel", "WXPAY")? {
            "WXPAY" => "WXPAY",
            other => {
                return Err(Error::invalid_config(format!(
                    "field `wechat_pay_channel` is `{other}`, expected `WXPAY`"
                )));
            }
        };
        let amount_currency = text_or(&c, "amount_currency", "AUD")?;
        if !CURRENCIES.contains(&amount_currency) {
            return Err(Error::invalid_config(format!(
                "field `amount_currency` is `{amount_currency}`, expected one of {CURRENCIES:?}"
            )));
        }
        Ok(Settings {
            mch_id,
            recevice_id: text_or(&c, "recevice_id", mch_id)?,
            api_key: c.secret("api_key")?,
            store_name: c.text("store_name")?,
            base_url: text_or(&c, "base_url", DEFAULT_BASE_URL)?,
            appid: c.text_opt("appid")?,
            wechat_channel,
            timeout_express: text_or(&c, "timeout_express", "30m")?,
            query_trade_type: text_or(&c, "query_trade_type", "PAY")?,
            refund_query_trade_type: text_or(&c, "refund_query_trade_type", "REFUND")?,
            empty_values,
            responses_must_be_signed,
            notify_ack: text_or(&c, "notify_ack", "success")?,
            amount_currency,
            transaction_id_field: text_or(&c, "transaction_id_field", "transaction_id")?,
        })
    }

    /// Adds the common fields, signs, POSTs to the gateway and returns the
    /// verified `data` of a call Supay answered with `status=T`.
    fn call(&self, ctx: &mut Ctx, service: &str, mut fields: Fields) -> Result<Value> {
        // §7.3: what the SDK adds to every call; `sign_type` only after signing.
        wire::put(&mut fields, "service", service);
        wire::put(&mut fields, "mch_id", self.mch_id);
        wire::put(&mut fields, "recevice_id", self.recevice_id);
        wire::put(&mut fields, "charset", "UTF-8");
        wire::put(&mut fields, "version", "1.0");
        let signature = sign::sign(ctx, self.api_key, &fields)?;
        fields.insert("sign".into(), signature);
        fields.insert("sign_type".into(), "MD5".into());
        let request = http::post(
            http::join(self.base_url, wire::GATEWAY_PATH),
            "application/json",
            json::to_body(&fields),
        );
        let response = ctx.send(request)?;
        if response.status != 200 {
            return Err(Error::rejected(
                format!("HTTP_{}", response.status),
                format!("{service} answered HTTP {}", response.status),
                response.status >= 500 || response.status == 429,
            ));
        }
        let what = format!("{service} answer");
        let answer = wire::answer(&response.body, &what)?;
        if answer.status != "T" {
            let code = wire::text(&answer.data, "error_code").unwrap_or(answer.status);
            // A system error is the gateway's own trouble (assumed code).
            let retryable = code == "SYSTEM_ERROR";
            return Err(Error::rejected(
                code,
                format!("{service}: {}", answer.message),
                retryable,
            ));
        }
        let data = answer.data;
        let signed = wire::signed_fields(&data);
        if signed.iter().any(|(k, _)| k == "sign") {
            sign::verify(ctx, self.api_key, &signed, self.empty_values, &what)?;
        } else if self.responses_must_be_signed {
            return Err(Error::bad_signature(format!(
                "{what} carries no `sign` (response_signature = \"required\")"
            )));
        }
        if let Some(mch) = wire::text(&data, "mch_id")
            && mch != self.mch_id
        {
            return Err(Error::malformed(format!(
                "{what} is for mch_id `{mch}`, not the configured one"
            )));
        }
        Ok(data)
    }

    /// A decimal amount field; the currency is the message's `currency`
    /// when it states one, else `amount_currency`.
    fn amount(&self, currency: Option<&str>, amount: &str) -> Result<Money> {
        let currency = currency.unwrap_or(self.amount_currency);
        Ok(money::from_decimal(amount, currency)?)
    }

    fn transaction_id(&self, data: &Value) -> Option<String> {
        wire::text(data, self.transaction_id_field)
    }
}

impl Adapter for Supay {
    fn describe() -> AdapterInfo {
        let field = field::config;
        AdapterInfo {
            name: "supay".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            contract_version: CONTRACT_VERSION.into(),
            methods: wire::METHODS.iter().map(|m| m.to_string()).collect(),
            currencies: money::currencies(CURRENCIES),
            capabilities: Capabilities {
                payment_notifications: true,
                refund_notifications: true,
                partial_refunds: true,
                query_by_merchant_order_no: true,
                // The Gate API documents no close call (§7.3).
                close: false,
                refund_query: true,
                payouts: false,
                payout_notifications: false,
                contracts: false,
                contract_notifications: false,
                deduction_notifications: false,
            },
            egress_hosts: vec!["gate.supaytechnology.com".into()],
            field_rules: field::declare(&RULES),
            config_schema: vec![
                field("mch_id", "Supay merchant id", FieldKind::Text, true, None),
                field(
                    "recevice_id",
                    "Supay's `recevice_id` (sic); the merchant id when not set",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "api_key",
                    "The Gate API signing key",
                    FieldKind::Secret,
                    true,
                    None,
                ),
                field(
                    "store_name",
                    "`store_name` of every order (required by Supay)",
                    FieldKind::Text,
                    true,
                    None,
                ),
                field(
                    "base_url",
                    "Gate API host",
                    FieldKind::Url,
                    false,
                    Some(DEFAULT_BASE_URL),
                ),
                field(
                    "appid",
                    "The mini-program's AppID; when set, payers and pay_info must name it",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "wechat_pay_channel",
                    "`pay_channel` of the WeChat methods",
                    FieldKind::Text,
                    false,
                    Some("WXPAY"),
                ),
                field(
                    "timeout_express",
                    "`timeout_express` of orders without an expiry",
                    FieldKind::Text,
                    false,
                    Some("30m"),
                ),
                field(
                    "query_trade_type",
                    "`trade_type` of query_trade for a payment (UNKNOWN: confirm with Supay)",
                    FieldKind::Text,
                    false,
                    Some("PAY"),
                ),
                field(
                    "refund_query_trade_type",
                    "`trade_type` of query_trade for a refund (UNKNOWN: confirm with Supay)",
                    FieldKind::Text,
                    false,
                    Some("REFUND"),
                ),
                field(
                    "verify_empty_values",
                    "How empty values count in received signatures: keep_then_skip, keep or skip",
                    FieldKind::Text,
                    false,
                    Some("keep_then_skip"),
                ),
                field(
                    "response_signature",
                    "if_present: check answers' `sign` when they carry one; required: refuse unsigned answers",
                    FieldKind::Text,
                    false,
                    Some("if_present"),
                ),
                field(
                    "notify_ack",
                    "The body answered to an accepted notification (UNKNOWN: confirm with Supay)",
                    FieldKind::Text,
                    false,
                    Some("success"),
                ),
                field(
                    "amount_currency",
                    "Currency of amounts in messages that state none",
                    FieldKind::Text,
                    false,
                    Some("AUD"),
                ),
                field(
                    "transaction_id_field",
                    "Field carrying WeChat's transaction id in answers and notifications (UNKNOWN)",
                    FieldKind::Text,
                    false,
                    Some("transaction_id"),
                ),
            ],
        }
    }

    fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
        let s = Settings::read(ctx)?;
        let way = wire::pay_way(&req.method, s.wechat_channel).ok_or_else(|| {
            Error::unsupported(format!(
                "method `{}`: supay offers {}",
                req.method,
                wire::METHODS.join(", ")
            ))
        })?;
        ORDER_NO.check(&req.merchant_order_no)?;
        DESCRIPTION.check(&req.description)?;
        field::positive(req.amount.minor, "amount.minor")?;
        if !CURRENCIES.contains(&req.amount.currency.as_str()) {
            return Err(Error::invalid_request(format!(
                "amount.currency `{}`: supay takes {}",
                req.amount.currency,
                CURRENCIES.join(", ")
            )));
        }
        let timeout = match field::expiry(req.expires_at, ctx.timestamp())? {
            Some(at) => wire::timeout_express(at, ctx.timestamp()),
            None => s.timeout_express.to_string(),
        };
        let open_id = if way.pay_way == "JSAPI" {
            Some(match s.appid {
                Some(appid) => field::mini_program_openid(&req.payer, appid)?,
                None => req
                    .payer
                    .openid
                    .as_deref()
                    .filter(|o| !o.is_empty())
                    .ok_or_else(|| {
                        Error::invalid_request("payer.openid is required for wechat_mini_program")
                    })?,
            })
        } else {
            None
        };
        let price = money::to_decimal(&req.amount)?;
        let mut fields = Fields::new();
        wire::put(&mut fields, "mch_order_no", &req.merchant_order_no);
        wire::put(&mut fields, "store_name", s.store_name);
        wire::put(&mut fields, "call_back_url", ctx.notify_url());
        wire::put(&mut fields, "pay_amount", &price);
        wire::put(&mut fields, "goods_name", &req.description);
        wire::put(&mut fields, "goods_price", &price);
        wire::put(&mut fields, "quantity", "1");
        wire::put(&mut fields, "timeout_express", &timeout);
        wire::put(&mut fields, "currency", &req.amount.currency);
        wire::put(&mut fields, "pay_way", way.pay_way);
        wire::put(&mut fields, "pay_channel", way.pay_channel.unwrap_or(""));
        wire::put(&mut fields, "subOpenId", open_id.unwrap_or(""));
        wire::put(
            &mut fields,
            "client_ip",
            req.payer.client_ip.as_deref().unwrap_or(""),
        );
        wire::put(&mut fields, "memo", req.attach.as_deref().unwrap_or(""));
        let data = s.call(ctx, wire::CREATE_INSTANT_TRADE, fields)?;

        let what = "create_instant_trade answer";
        if data.get("result").and_then(Value::as_bool) == Some(false) {
            return Err(Error::rejected(
                "RESULT_FALSE",
                format!("{what}: result false"),
                false,
            ));
        }
        let order = OrderRef {
            merchant_order_no: req.merchant_order_no.clone(),
            provider_trade_no: wire::text(&data, "inner_trade_no"),
            channel_transaction_id: s.transaction_id(&data),
        };
        let action = match way.pay_way {
            "JSAPI" => PayAction::MiniProgram(mini_program_params(&data, s.appid, what)?),
            "NATIVE" => PayAction::QrCode(wire::required(&data, "pay_info", what)?),
            _ => {
                let url = wire::required(&data, "pay_info", what)?;
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(Error::malformed(format!(
                        "{what}: pay_info of {} is not a URL",
                        way.pay_way
                    )));
                }
                PayAction::Redirect(url)
            }
        };
        Ok(OrderCreated { order, action })
    }

    fn query(ctx: &mut Ctx, req: &QueryRequest) -> Result<TradeStatus> {
        let s = Settings::read(ctx)?;
        let no = &req.order.merchant_order_no;
        field::order_no(no, "order.merchant_order_no", 1, 32, "_-")?;
        let mut fields = Fields::new();
        wire::put(&mut fields, "mch_order_no", no);
        wire::put(&mut fields, "trade_type", s.query_trade_type);
        let data = s.call(ctx, wire::QUERY_TRADE, fields)?;

        let what = "query_trade answer";
        if let Some(other) = wire::text(&data, "mch_order_no")
            && &other != no
        {
            return Err(Error::malformed(format!(
                "{what} is for mch_order_no `{other}`, not `{no}`"
            )));
        }
        let word = wire::required(&data, "trade_status", what)?;
        let amount = match wire::text(&data, "trade_amount") {
            Some(a) => Some(s.amount(wire::text(&data, "currency").as_deref(), &a)?),
            None => None,
        };
        Ok(TradeStatus {
            order: OrderRef {
                merchant_order_no: no.clone(),
                provider_trade_no: wire::text(&data, "inner_trade_no")
                    .or_else(|| req.order.provider_trade_no.clone()),
                channel_transaction_id: s
                    .transaction_id(&data)
                    .or_else(|| req.order.channel_transaction_id.clone()),
            },
            state: wire::trade_state(&word),
            provider_state: word,
            amount,
            paid_at: None,
            payer_id: None,
        })
    }

    fn refund(ctx: &mut Ctx, req: &RefundRequest) -> Result<RefundStatus> {
        let s = Settings::read(ctx)?;
        REFUND_NO.check(&req.refund_no)?;
        field::order_no(
            &req.order.merchant_order_no,
            "order.merchant_order_no",
            1,
            32,
            "_-",
        )?;
        if req.refund_no == req.order.merchant_order_no {
            // §7.3: the refund has its own number in `mch_order_no`.
            return Err(Error::invalid_request(
                "refund_no must differ from the order's merchant_order_no",
            ));
        }
        field::refund_amount(&req.amount, &req.order_amount)?;
        let mut fields = Fields::new();
        wire::put(&mut fields, "mch_order_no", &req.refund_no);
        wire::put(
            &mut fields,
            "orig_mch_order_no",
            &req.order.merchant_order_no,
        );
        wire::put(
            &mut fields,
            "refund_amount",
            &money::to_decimal(&req.amount)?,
        );
        wire::put(&mut fields, "call_back_url", ctx.notify_url());
        let data = s.call(ctx, wire::CREATE_REFUND, fields)?;

        // The answer means "accepted" unless it says the refund is done.
        let word = wire::text(&data, "refund_status");
        Ok(RefundStatus {
            order: req.order.clone(),
            refund_no: req.refund_no.clone(),
            provider_refund_id: wire::text(&data, "inner_trade_no"),
            state: word
                .as_deref()
                .map_or(RefundState::Pending, wire::refund_state),
            provider_state: word.unwrap_or_else(|| "ACCEPTED".into()),
            amount: Some(req.amount.clone()),
        })
    }

    /// A refund is a trade document of its own at Supay: `query_trade` with
    /// the refund number and the refund `trade_type`.
    fn refund_query(ctx: &mut Ctx, req: &RefundQueryRequest) -> Result<RefundStatus> {
        let s = Settings::read(ctx)?;
        REFUND_NO.check(&req.refund_no)?;
        let mut fields = Fields::new();
        wire::put(&mut fields, "mch_order_no", &req.refund_no);
        wire::put(&mut fields, "trade_type", s.refund_query_trade_type);
        let data = s.call(ctx, wire::QUERY_TRADE, fields)?;

        let what = "query_trade answer for a refund";
        for (field, want) in [
            ("mch_order_no", &req.refund_no),
            ("orig_mch_order_no", &req.order.merchant_order_no),
        ] {
            if let Some(got) = wire::text(&data, field)
                && &got != want
            {
                return Err(Error::malformed(format!(
                    "{what} is for {field} `{got}`, not `{want}`"
                )));
            }
        }
        let word = wire::required(&data, "refund_status", what)?;
        let amount = match wire::text(&data, "refund_amount") {
            Some(a) => Some(s.amount(wire::text(&data, "currency").as_deref(), &a)?),
            None => None,
        };
        Ok(RefundStatus {
            order: req.order.clone(),
            refund_no: req.refund_no.clone(),
            provider_refund_id: wire::text(&data, "inner_trade_no")
                .or_else(|| req.provider_refund_id.clone()),
            state: wire::refund_state(&word),
            provider_state: word,
            amount,
        })
    }

    fn parse_notify(ctx: &mut Ctx, req: &InboundHttp) -> Result<NotifyOutcome> {
        let fail = |e: Error| e.with_ack(http::response(200, "text/plain", "fail"));
        let s = Settings::read(ctx).map_err(fail)?;
        if req.method != HttpMethod::Post {
            return Err(fail(Error::invalid_request("notification must be a POST")));
        }
        let fields = form::decode(&req.body);
        let events = notification(ctx, &s, &fields).map_err(fail)?;
        Ok(NotifyOutcome {
            events,
            ack: http::response(200, "text/plain", s.notify_ack),
        })
    }
}

/// §7.3: the `wx.requestPayment` object of a JSAPI order, passed through
/// when it is complete (it carries `paySign`). `pay_info` may be a JSON
/// string or an object.
fn mini_program_params(data: &Value, appid: Option<&str>, what: &str) -> Result<MiniProgramParams> {
    let info = match data.get("pay_info") {
        Some(Value::String(text)) => json::from_body::<Value>(text.as_bytes())
            .map_err(|e| Error::malformed(format!("{what}: pay_info: {e}")))?,
        Some(v @ Value::Object(_)) => v.clone(),
        _ => return Err(Error::malformed(format!("{what} lacks `pay_info`"))),
    };
    let take = |name: &str| {
        wire::text(&info, name).ok_or_else(|| {
            Error::malformed(format!(
                "{what}: pay_info lacks `{name}` (accounts that get only a prepay id are not supported)"
            ))
        })
    };
    let params = MiniProgramParams {
        app_id: take("appId")?,
        time_stamp: take("timeStamp")?,
        nonce_str: take("nonceStr")?,
        package: take("package")?,
        sign_type: take("signType")?,
        pay_sign: take("paySign")?,
    };
    if let Some(appid) = appid
        && params.app_id != appid
    {
        return Err(Error::malformed(format!(
            "{what}: pay_info is for appId `{}`, not the configured `{appid}`",
            params.app_id
        )));
    }
    Ok(params)
}

/// §7.5: a signed form notification of a payment or a refund.
fn notification(ctx: &Ctx, s: &Settings, fields: &[(String, String)]) -> Result<Vec<NotifyEvent>> {
    let what = "notification";
    for (i, (name, _)) in fields.iter().enumerate() {
        if fields[..i].iter().any(|(n, _)| n == name) {
            // Two values under one name: which one was signed is ambiguous.
            return Err(Error::invalid_request(format!(
                "{what} repeats the field `{name}`"
            )));
        }
    }
    sign::verify(ctx, s.api_key, fields, s.empty_values, what)?;
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let need = |name: &str| {
        get(name).ok_or_else(|| Error::invalid_request(format!("{what} lacks `{name}`")))
    };
    if let Some(mch) = get("mch_id")
        && mch != s.mch_id
    {
        return Err(Error::invalid_request(format!(
            "{what} is for mch_id `{mch}`, not the configured one"
        )));
    }
    let amount = |name: &str| {
        s.amount(get("currency"), need(name)?)
            .map_err(|e| Error::invalid_request(format!("{what}: {name}: {e}")))
    };
    let transaction_id = get(s.transaction_id_field).map(String::from);
    match need("notify_type")? {
        wire::TRADE_STATUS_SYNC => {
            let word = need("trade_status")?;
            Ok(vec![NotifyEvent::Payment(TradeStatus {
                order: OrderRef {
                    merchant_order_no: need("outer_trade_no")?.into(),
                    provider_trade_no: get("inner_trade_no").map(String::from),
                    channel_transaction_id: transaction_id,
                },
                state: wire::trade_state(word),
                provider_state: word.into(),
                amount: Some(amount("trade_amount")?),
                paid_at: None,
                payer_id: None,
            })])
        }
        wire::REFUND_STATUS_SYNC => {
            let word = need("refund_status")?;
            Ok(vec![NotifyEvent::Refund(RefundStatus {
                order: OrderRef {
                    // Assumed by analogy with create_refund's fields (README).
                    merchant_order_no: need("orig_outer_trade_no")?.into(),
                    provider_trade_no: None,
                    channel_transaction_id: transaction_id,
                },
                refund_no: need("outer_trade_no")?.into(),
                provider_refund_id: get("inner_trade_no").map(String::from),
                state: wire::refund_state(word),
                provider_state: word.into(),
                amount: Some(amount("refund_amount")?),
            })])
        }
        other => Err(Error::invalid_request(format!(
            "{what}: unknown notify_type `{other}`"
        ))),
    }
}

payhost_sdk::export_adapter!(Supay);

#[cfg(test)]
mod tests;
