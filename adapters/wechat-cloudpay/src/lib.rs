//! WeChat cloud payment (cloudPay) adapter, for payhost deployed as a WeChat
//! Cloud Hosting service: WeChat Pay through the platform's open-interface
//! service (`POST http://api.weixin.qq.com/_/pay/<api>`, JSON), with the
//! platform as the service provider and the merchant as `sub_mch_id`.
//!
//! - `lib.rs` (this file): the contract -- `describe` and the six operations.
//! - [`wire`]: the platform's messages, named as WeChat names them.
//!
//! There is no `sign.rs`: the merchant signs nothing (the platform fills
//! `mch_id`, `sign` and the `paySign` of the payment object), and callbacks
//! carry no signature the adapter could check, so every callback is
//! confirmed by a query in the same operation before it is reported.
//!
//! References are to sections of `providers.md` (§9).

#![forbid(unsafe_code)]

pub mod wire;

use payhost_sdk::json::Value;
use payhost_sdk::prelude::*;
use wire::Message;

pub struct WechatCloudpay;

const MINI_PROGRAM: &str = "wechat_mini_program";

/// ISO 4217 codes accepted: §9.8 (`fee_type` defaults to CNY; other
/// currencies and overseas merchant numbers are UNKNOWN, §9.10).
pub const CURRENCIES: &[&str] = &["CNY"];

/// The merchant configuration, read once per operation.
struct Settings<'a> {
    env_id: &'a str,
    sub_mch_id: &'a str,
    appid: &'a str,
    container_service: &'a str,
    container_path: Option<&'a str>,
    base_url: &'a str,
    unified_order_api: &'a str,
    prefer_camel: bool,
    require_wx_source: bool,
    send_sub_appid: bool,
}

fn flag(c: &Config, name: &str, default: bool) -> Result<bool> {
    match c.text_opt(name)? {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(Error::invalid_config(format!(
            "field `{name}` is `{other}`, expected `true` or `false`"
        ))),
    }
}

impl<'a> Settings<'a> {
    fn read(ctx: &Ctx<'a>) -> Result<Self> {
        let c = ctx.config();
        let unified_order_api = c
            .text_opt("unified_order_api")?
            .unwrap_or(wire::UNIFIED_ORDER);
        if !matches!(unified_order_api, "unifiedOrder" | "unifiedorder") {
            return Err(Error::invalid_config(format!(
                "field `unified_order_api` is `{unified_order_api}`, expected `unifiedOrder` or `unifiedorder`"
            )));
        }
        let prefer_camel = match c.text_opt("callback_key_preference")?.unwrap_or("camel") {
            "camel" => true,
            "snake" => false,
            other => {
                return Err(Error::invalid_config(format!(
                    "field `callback_key_preference` is `{other}`, expected `camel` or `snake`"
                )));
            }
        };
        Ok(Settings {
            env_id: c.text("env_id")?,
            sub_mch_id: c.text("sub_mch_id")?,
            appid: c.text("appid")?,
            container_service: c.text("container_service")?,
            container_path: c.text_opt("container_path")?,
            base_url: c.text_opt("base_url")?.unwrap_or(wire::DEFAULT_BASE_URL),
            unified_order_api,
            prefer_camel,
            require_wx_source: flag(&c, "require_wx_source", false)?,
            send_sub_appid: flag(&c, "send_sub_appid", false)?,
        })
    }

    /// Where the platform delivers the result of an order or a refund
    /// (§9.4): this Cloud Hosting service, at the notify URL's path.
    fn callback(&self, body: &mut Value, ctx: &Ctx) {
        body["env_id"] = self.env_id.into();
        body["callback_type"] = wire::CALLBACK_CONTAINER.into();
        body["container"] = json::json!({
            "service": self.container_service,
            "path": self.container_path.unwrap_or(wire::path_of(ctx.notify_url())),
        });
    }

    /// POSTs one call and returns the `respdata` of a call that fully
    /// succeeded (`errcode` 0, `return_code` and `result_code` SUCCESS).
    fn call(&self, ctx: &mut Ctx, api: &str, mut body: Value) -> Result<Message> {
        body["sub_mch_id"] = self.sub_mch_id.into();
        body["nonce_str"] = ctx.nonce(32).into();
        let path = wire::path(api);
        // §9.2: without this content type the service answers 302, 400 or nothing.
        let request = http::post(
            http::join(self.base_url, &path),
            "application/json",
            json::to_body(&body),
        );
        let response = ctx.send(request)?;
        let status = response.status;
        if status != 200 {
            return Err(Error::rejected(
                format!("HTTP_{status}"),
                format!("{path} answered HTTP {status}"),
                status >= 500 || status == 429,
            ));
        }
        if response.body.iter().all(u8::is_ascii_whitespace) {
            // §9.2: what the service answers while the open interface is off.
            return Err(Error::rejected(
                "EMPTY_ANSWER",
                format!(
                    "{path} answered nothing: turn on the open-interface service (开放接口服务) of the Cloud Hosting environment and redeploy the service"
                ),
                false,
            ));
        }
        let what = format!("{path} answer");
        let envelope: wire::Envelope = json::from_body(&response.body)
            .map_err(|e| Error::malformed(format!("{what}: {e}")))?;
        if envelope.errcode != 0 {
            return Err(Error::rejected(
                format!("ERRCODE_{}", envelope.errcode),
                format!("{path}: errcode {} {}", envelope.errcode, envelope.errmsg),
                wire::retryable_errcode(envelope.errcode),
            ));
        }
        let data = envelope
            .respdata
            .ok_or_else(|| Error::malformed(format!("{what} lacks `respdata`")))?;
        let msg = Message::from_value(data, &what).map_err(Error::malformed)?;
        if msg.required("return_code", &what)? != "SUCCESS" {
            // §9.3: e.g. 受理关系不存在 when the merchant number is not bound.
            let text = msg.text("return_msg").unwrap_or_default();
            return Err(Error::rejected(
                "FAIL",
                format!("{path}: return_msg `{text}`"),
                false,
            ));
        }
        if let Some(theirs) = msg.text("sub_mch_id")
            && theirs != self.sub_mch_id
        {
            return Err(Error::malformed(format!(
                "{what} is for sub_mch_id `{theirs}`, this merchant's is `{}`",
                self.sub_mch_id
            )));
        }
        if msg.required("result_code", &what)? != "SUCCESS" {
            let code = msg.text("err_code").unwrap_or_else(|| "FAIL".into());
            let des = msg.text("err_code_des").unwrap_or_default();
            return Err(Error::rejected(
                code.clone(),
                format!("{path}: {code} {des}"),
                wire::retryable(&code),
            ));
        }
        Ok(msg)
    }

    /// `queryorder` by `out_trade_no`, or by `transaction_id` when known
    /// (§9.5), as a trade status checked against the order asked about.
    fn query(&self, ctx: &mut Ctx, order: &OrderRef) -> Result<TradeStatus> {
        let mut body = json::json!({});
        match order
            .channel_transaction_id
            .as_deref()
            .filter(|t| !t.is_empty())
        {
            Some(tx) => {
                field::order_no(tx, "order.channel_transaction_id", 1, 32, "")?;
                body["transaction_id"] = tx.into();
            }
            None => {
                order_no(&order.merchant_order_no, "order.merchant_order_no")?;
                body["out_trade_no"] = order.merchant_order_no.as_str().into();
            }
        }
        let msg = self.call(ctx, wire::QUERY_ORDER, body)?;
        let what = "queryorder answer";
        let out_trade_no = msg
            .text("out_trade_no")
            .unwrap_or_else(|| order.merchant_order_no.clone());
        if !order.merchant_order_no.is_empty() && out_trade_no != order.merchant_order_no {
            return Err(Error::malformed(format!(
                "{what} is for out_trade_no `{out_trade_no}`, not `{}`",
                order.merchant_order_no
            )));
        }
        let word = msg.required("trade_state", what)?;
        let state = wire::trade_state(&word)
            .ok_or_else(|| Error::malformed(format!("{what}: unknown trade_state `{word}`")))?;
        let transaction_id = msg
            .text("transaction_id")
            .or_else(|| order.channel_transaction_id.clone());
        if matches!(state, TradeState::Paid | TradeState::Refunded) && transaction_id.is_none() {
            return Err(Error::malformed(format!(
                "{what} says {word} without `transaction_id`"
            )));
        }
        Ok(TradeStatus {
            order: OrderRef {
                merchant_order_no: out_trade_no,
                provider_trade_no: None,
                channel_transaction_id: transaction_id,
            },
            state,
            provider_state: word,
            amount: msg.total_fee(what)?,
            paid_at: if matches!(state, TradeState::Paid | TradeState::Refunded) {
                msg.time_end()?
            } else {
                None
            },
            payer_id: msg.text("sub_openid").or_else(|| msg.text("openid")),
        })
    }

    /// `queryrefund` by `refund_id` when known, else `out_refund_no` (§9.6).
    fn query_refund(
        &self,
        ctx: &mut Ctx,
        order: &OrderRef,
        refund_no: &str,
        refund_id: Option<&str>,
    ) -> Result<(Message, wire::QueriedRefund)> {
        let body = match refund_id.filter(|r| !r.is_empty()) {
            Some(id) => json::json!({ "refund_id": id }),
            None => json::json!({ "out_refund_no": refund_no }),
        };
        let msg = self.call(ctx, wire::QUERY_REFUND, body)?;
        let what = "queryrefund answer";
        if let Some(no) = msg.text("out_trade_no")
            && !order.merchant_order_no.is_empty()
            && no != order.merchant_order_no
        {
            return Err(Error::malformed(format!(
                "{what} is for out_trade_no `{no}`, not `{}`",
                order.merchant_order_no
            )));
        }
        let found = wire::queried_refund(&msg, refund_no, what)?;
        Ok((msg, found))
    }
}

/// §9.4: `out_trade_no` of at most 32 of `[0-9A-Za-z_-]`.
fn order_no(value: &str, name: &str) -> Result<()> {
    field::order_no(value, name, 1, 32, "_-")
}

fn rejection_code(e: &Error) -> Option<&str> {
    match e.adapter_error() {
        Some(AdapterError::ProviderRejected(r)) => Some(r.code.as_str()),
        _ => None,
    }
}

impl Adapter for WechatCloudpay {
    fn describe() -> AdapterInfo {
        let field = field::config;
        AdapterInfo {
            name: "wechat-cloudpay".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            contract_version: CONTRACT_VERSION.into(),
            methods: vec![MINI_PROGRAM.into()],
            currencies: money::currencies(CURRENCIES),
            capabilities: Capabilities {
                // Sent only for successful payments, unsigned: each one is
                // confirmed by `queryorder` before it is reported (§9.7).
                payment_notifications: true,
                // Undocumented format, confirmed by `queryrefund` (§9.7).
                refund_notifications: true,
                partial_refunds: true,
                query_by_merchant_order_no: true,
                close: true,
                refund_query: true,
                payouts: false,
                payout_notifications: false,
                contracts: false,
                contract_notifications: false,
                deduction_notifications: false,
            },
            egress_hosts: vec![wire::EGRESS_HOST.into()],
            field_rules: field::declare(&[field::MINI_PROGRAM_OPENID, field::CLIENT_IP]),
            config_schema: vec![
                field(
                    "env_id",
                    "Cloud Hosting environment id (env_id) of the service that receives callbacks",
                    FieldKind::Text,
                    true,
                    None,
                ),
                field(
                    "sub_mch_id",
                    "The merchant's own WeChat Pay merchant number, bound to the mini-program in the Cloud Hosting console",
                    FieldKind::Text,
                    true,
                    None,
                ),
                field(
                    "appid",
                    "AppID of the mini-program that pays (the payer's openid is of this app)",
                    FieldKind::Text,
                    true,
                    None,
                ),
                field(
                    "container_service",
                    "Name of the Cloud Hosting service running payhost, where callbacks are delivered",
                    FieldKind::Text,
                    true,
                    None,
                ),
                field(
                    "container_path",
                    "Path of the callback inside that service (default: the path of payhost's notify URL)",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "base_url",
                    "The open-interface service (plain HTTP inside Cloud Hosting)",
                    FieldKind::Url,
                    false,
                    Some(wire::DEFAULT_BASE_URL),
                ),
                field(
                    "unified_order_api",
                    "Name of the unified order call: `unifiedOrder` (documented) or `unifiedorder`",
                    FieldKind::Text,
                    false,
                    Some(wire::UNIFIED_ORDER),
                ),
                field(
                    "callback_key_preference",
                    "Callbacks (unsigned, so always confirmed by a query first) are read in both casings; `camel` or `snake` wins when a field comes in both",
                    FieldKind::Text,
                    false,
                    Some("camel"),
                ),
                field(
                    "require_wx_source",
                    "`true`: refuse callbacks without the platform's `x-wx-source` header",
                    FieldKind::Text,
                    false,
                    Some("false"),
                ),
                field(
                    "send_sub_appid",
                    "`true`: send `sub_appid` (= appid) and the payer as `sub_openid`, for environment resource reuse",
                    FieldKind::Text,
                    false,
                    Some("false"),
                ),
            ],
        }
    }

    fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
        let s = Settings::read(ctx)?;
        if req.method != MINI_PROGRAM {
            return Err(Error::unsupported(format!(
                "method `{}`: wechat-cloudpay offers {MINI_PROGRAM} (cloudPay is JSAPI only)",
                req.method
            )));
        }
        order_no(&req.merchant_order_no, "merchant_order_no")?;
        field::chars(&req.description, "description", 1, 128)?;
        if let Some(attach) = &req.attach {
            field::chars(attach, "attach", 0, 127)?;
        }
        field::positive(req.amount.minor, "amount.minor")?;
        if !CURRENCIES.contains(&req.amount.currency.as_str()) {
            return Err(Error::invalid_request(format!(
                "amount.currency `{}`: wechat-cloudpay takes {}",
                req.amount.currency,
                CURRENCIES.join(", ")
            )));
        }
        let client_ip = field::client_ip(&req.payer, "spbill_create_ip")?;
        // §9.4: payhost has no user context, so the openid is always sent.
        let openid = field::mini_program_openid(&req.payer, s.appid)?;
        let mut body = json::json!({
            "body": req.description,
            "out_trade_no": req.merchant_order_no,
            "fee_type": req.amount.currency,
            // §9.4: a JSON number; a string is refused (-202).
            "total_fee": req.amount.minor,
            "spbill_create_ip": client_ip,
            "trade_type": "JSAPI",
        });
        if s.send_sub_appid {
            body["sub_appid"] = s.appid.into();
            body["sub_openid"] = openid.into();
        } else {
            body["openid"] = openid.into();
        }
        if let Some(attach) = &req.attach {
            body["attach"] = attach.as_str().into();
        }
        if let Some(at) = field::expiry(req.expires_at, ctx.timestamp())? {
            body["time_expire"] = time::format_compact(at, time::CHINA)
                .map_err(|e| Error::invalid_request(format!("expires_at: {e}")))?
                .into();
        }
        s.callback(&mut body, ctx);
        let msg = s.call(ctx, s.unified_order_api, body)?;
        let what = "unified order answer";
        // §9.4: `payment` is present on failures too, with an empty prepay
        // id; it is handed over only after a full success with a prepay id.
        msg.required("prepay_id", what)?;
        let payment = msg
            .0
            .get("payment")
            .cloned()
            .ok_or_else(|| Error::malformed(format!("{what} lacks `payment`")))?;
        let p = Message::from_value(payment, "payment").map_err(Error::malformed)?;
        let need = |k: &str| p.required(k, &format!("{what}: payment"));
        let package = need("package")?;
        if package.strip_prefix("prepay_id=").is_none_or(str::is_empty) {
            return Err(Error::malformed(format!(
                "{what}: payment.package `{package}` has no prepay id"
            )));
        }
        let app_id = need("appId")?;
        if app_id != s.appid {
            // §9.4: under resource reuse the platform may pay for the
            // environment's own mini-program, whose openids differ.
            return Err(Error::malformed(format!(
                "{what}: payment is for AppID `{app_id}`, not the configured `{}`",
                s.appid
            )));
        }
        Ok(OrderCreated {
            order: OrderRef {
                merchant_order_no: req.merchant_order_no.clone(),
                provider_trade_no: None,
                channel_transaction_id: None,
            },
            action: PayAction::MiniProgram(MiniProgramParams {
                app_id,
                time_stamp: need("timeStamp")?,
                nonce_str: need("nonceStr")?,
                package,
                sign_type: need("signType")?,
                pay_sign: need("paySign")?,
            }),
        })
    }

    fn query(ctx: &mut Ctx, req: &QueryRequest) -> Result<TradeStatus> {
        Settings::read(ctx)?.query(ctx, &req.order)
    }

    /// §9.5: `closeorder` by `out_trade_no` (refused within five minutes of
    /// creation). `ORDERCLOSED` is closed already; `ORDERPAID` means the
    /// payer was faster, so the order is queried and that answered.
    fn close(ctx: &mut Ctx, req: &CloseRequest) -> Result<TradeStatus> {
        let s = Settings::read(ctx)?;
        order_no(&req.order.merchant_order_no, "order.merchant_order_no")?;
        let body = json::json!({ "out_trade_no": req.order.merchant_order_no });
        let closed = || TradeStatus {
            order: req.order.clone(),
            state: TradeState::Closed,
            provider_state: "CLOSED".into(),
            amount: None,
            paid_at: None,
            payer_id: None,
        };
        match s.call(ctx, wire::CLOSE_ORDER, body) {
            Ok(_) => Ok(closed()),
            Err(e) => match rejection_code(&e) {
                Some("ORDERCLOSED") => Ok(closed()),
                Some("ORDERPAID") => s.query(ctx, &req.order),
                _ => Err(e),
            },
        }
    }

    fn refund(ctx: &mut Ctx, req: &RefundRequest) -> Result<RefundStatus> {
        let s = Settings::read(ctx)?;
        // §9.6: `out_refund_no` of at most 64.
        field::order_no(&req.refund_no, "refund_no", 1, 64, "_-|*@")?;
        field::positive(req.amount.minor, "amount.minor")?;
        for (m, name) in [
            (&req.amount, "amount.currency"),
            (&req.order_amount, "order_amount.currency"),
        ] {
            if !CURRENCIES.contains(&m.currency.as_str()) {
                return Err(Error::invalid_request(format!(
                    "{name} `{}`: wechat-cloudpay refunds in {}",
                    m.currency,
                    CURRENCIES.join(", ")
                )));
            }
        }
        if req.amount.minor > req.order_amount.minor {
            return Err(Error::invalid_request(format!(
                "amount.minor {} exceeds order_amount.minor {}",
                req.amount.minor, req.order_amount.minor
            )));
        }
        let transaction_id = req
            .order
            .channel_transaction_id
            .as_deref()
            .filter(|t| !t.is_empty());
        let mut body = json::json!({
            "out_refund_no": req.refund_no,
            "total_fee": req.order_amount.minor,
            "refund_fee": req.amount.minor,
        });
        match transaction_id {
            Some(tx) => body["transaction_id"] = tx.into(),
            None => {
                order_no(&req.order.merchant_order_no, "order.merchant_order_no")?;
                body["out_trade_no"] = req.order.merchant_order_no.as_str().into();
            }
        }
        if let Some(reason) = &req.reason {
            field::chars(reason, "reason", 0, 80)?;
            body["refund_desc"] = reason.as_str().into();
        }
        s.callback(&mut body, ctx);
        let msg = s.call(ctx, wire::REFUND, body)?;
        let what = "refund answer";
        if let Some(no) = msg.text("out_refund_no")
            && no != req.refund_no
        {
            return Err(Error::malformed(format!(
                "{what} is for out_refund_no `{no}`, not `{}`",
                req.refund_no
            )));
        }
        if let Some(no) = msg.text("out_trade_no")
            && no != req.order.merchant_order_no
        {
            return Err(Error::malformed(format!(
                "{what} is for out_trade_no `{no}`, not `{}`",
                req.order.merchant_order_no
            )));
        }
        let amount = msg.fen("refund_fee", what)?.map(|minor| Money {
            minor,
            currency: req.amount.currency.clone(),
        });
        Ok(RefundStatus {
            order: OrderRef {
                merchant_order_no: req.order.merchant_order_no.clone(),
                provider_trade_no: None,
                channel_transaction_id: msg
                    .text("transaction_id")
                    .or(transaction_id.map(String::from)),
            },
            refund_no: req.refund_no.clone(),
            provider_refund_id: Some(msg.required("refund_id", what)?),
            // §9.6: a successful call means accepted, not refunded.
            state: RefundState::Pending,
            provider_state: "SUCCESS".into(),
            amount,
        })
    }

    /// §9.6. `REFUNDNOTEXIST`: the platform never accepted the refund, so
    /// nothing was refunded. A refund counted but not listed (the platform's
    /// empty arrays) stays pending: its callback settles it.
    fn refund_query(ctx: &mut Ctx, req: &RefundQueryRequest) -> Result<RefundStatus> {
        let s = Settings::read(ctx)?;
        field::order_no(&req.refund_no, "refund_no", 1, 64, "_-|*@")?;
        let status = |state, word: &str, id: Option<String>, amount| RefundStatus {
            order: req.order.clone(),
            refund_no: req.refund_no.clone(),
            provider_refund_id: id.or_else(|| req.provider_refund_id.clone()),
            state,
            provider_state: word.into(),
            amount,
        };
        let found = s.query_refund(
            ctx,
            &req.order,
            &req.refund_no,
            req.provider_refund_id.as_deref(),
        );
        let (msg, found) = match found {
            Ok(f) => f,
            Err(e) if rejection_code(&e) == Some("REFUNDNOTEXIST") => {
                return Ok(status(RefundState::Failed, "REFUNDNOTEXIST", None, None));
            }
            Err(e) => return Err(e),
        };
        let mut st = match found {
            wire::QueriedRefund::Unlisted => status(RefundState::Pending, "UNLISTED", None, None),
            wire::QueriedRefund::Listed {
                refund_id,
                refund_fee,
                refund_status,
            } => {
                let state = wire::refund_state(&refund_status).ok_or_else(|| {
                    Error::malformed(format!(
                        "queryrefund answer: unknown refund_status `{refund_status}`"
                    ))
                })?;
                let currency = msg.text("fee_type").unwrap_or_else(|| "CNY".into());
                let amount = refund_fee
                    .map(|fee| money::from_minor_str(&fee, &currency))
                    .transpose()?;
                status(state, &refund_status, refund_id, amount)
            }
        };
        if let Some(tx) = msg.text("transaction_id") {
            st.order.channel_transaction_id = Some(tx);
        }
        Ok(st)
    }

    fn parse_notify(ctx: &mut Ctx, req: &InboundHttp) -> Result<NotifyOutcome> {
        let fail = |e: Error, msg: &str| e.with_ack(wire::ack_fail(msg));
        let s = Settings::read(ctx)?;
        if req.method != HttpMethod::Post {
            return Err(fail(
                Error::invalid_request("callback must be a POST"),
                "POST required",
            ));
        }
        if s.require_wx_source && http::header(&req.headers, "x-wx-source").is_none() {
            return Err(fail(
                Error::invalid_request("callback lacks the platform's `x-wx-source` header"),
                "not from the platform",
            ));
        }
        let body: Value = json::from_body(&req.body).map_err(|e| {
            fail(
                Error::invalid_request(format!("callback body: {e}")),
                "invalid JSON",
            )
        })?;
        let fields = wire::callback_fields(body, s.prefer_camel)
            .map_err(|e| fail(Error::invalid_request(e), "invalid callback"))?;
        let events = if fields.0.contains_key("out_refund_no") || fields.0.contains_key("req_info")
        {
            refund_callback(ctx, &s, &fields)
        } else {
            payment_callback(ctx, &s, &fields)
        };
        let events = events.map_err(|e| match e.adapter_error() {
            Some(AdapterError::BadSignature(_)) => fail(e, "not confirmed by query"),
            _ => fail(e, "callback refused"),
        })?;
        Ok(NotifyOutcome {
            events,
            ack: wire::ack_success(),
        })
    }
}

/// In a callback, a missing or malformed field is the sender's fault.
fn as_invalid(e: Error) -> Error {
    match e.adapter_error() {
        Some(AdapterError::MalformedResponse(m)) => Error::invalid_request(m.clone()),
        _ => e,
    }
}

/// The callback names this merchant, when it names one.
fn check_merchant(s: &Settings, fields: &Message, what: &str) -> Result<()> {
    match fields.text("sub_mch_id") {
        Some(theirs) if theirs != s.sub_mch_id => Err(Error::invalid_request(format!(
            "{what} is for sub_mch_id `{theirs}`, this merchant's is `{}`",
            s.sub_mch_id
        ))),
        _ => Ok(()),
    }
}

/// A confirming query that could not be made or answered: the callback is
/// refused (the platform repeats it); an unknown order is refused for good
/// reason. Suspensions pass through untouched.
fn unconfirmed(e: Error, what: &str) -> Error {
    match e.adapter_error() {
        Some(AdapterError::ProviderRejected(r)) => Error::invalid_request(format!(
            "{what} could not be confirmed by query: {} {}",
            r.code, r.message
        )),
        _ => e,
    }
}

/// §9.7: a payment callback, sent only when the payer paid. Nothing in it
/// is signed, so the order is read back with `queryorder` and its answer is
/// what is reported; the callback must agree with it.
fn payment_callback(ctx: &mut Ctx, s: &Settings, fields: &Message) -> Result<Vec<NotifyEvent>> {
    let what = "payment callback";
    if fields.required("return_code", what).map_err(as_invalid)? != "SUCCESS"
        || fields.text("result_code").as_deref() != Some("SUCCESS")
    {
        // Carries no payment: nothing to confirm or apply.
        return Ok(vec![]);
    }
    check_merchant(s, fields, what)?;
    let out_trade_no = fields.required("out_trade_no", what).map_err(as_invalid)?;
    order_no(&out_trade_no, "callback out_trade_no")?;
    let claimed = fields.total_fee(what).map_err(as_invalid)?;
    let order = OrderRef {
        merchant_order_no: out_trade_no,
        provider_trade_no: None,
        channel_transaction_id: None,
    };
    let status = s.query(ctx, &order).map_err(|e| unconfirmed(e, what))?;
    if !matches!(status.state, TradeState::Paid | TradeState::Refunded) {
        return Err(Error::bad_signature(format!(
            "{what} says paid, queryorder says `{}`",
            status.provider_state
        )));
    }
    if let Some(claimed) = claimed
        && status.amount.as_ref() != Some(&claimed)
    {
        return Err(Error::bad_signature(format!(
            "{what} says {} {}, queryorder says {:?}",
            claimed.minor, claimed.currency, status.amount
        )));
    }
    if let Some(tx) = fields.text("transaction_id")
        && status.order.channel_transaction_id.as_deref() != Some(tx.as_str())
    {
        return Err(Error::bad_signature(format!(
            "{what} names transaction_id `{tx}`, queryorder another"
        )));
    }
    Ok(vec![NotifyEvent::Payment(status)])
}

/// A refund callback (§9.7: undocumented; the v2 `req_info` fields in
/// either casing, unencrypted). Confirmed with `queryrefund`: a listed
/// refund reports the query's status. A refund the query only counts is
/// reported succeeded when the callback says SUCCESS (the refund exists
/// and was accepted) and otherwise pending: a failure that would free the
/// amount for another refund is never taken from an unsigned callback.
fn refund_callback(ctx: &mut Ctx, s: &Settings, fields: &Message) -> Result<Vec<NotifyEvent>> {
    let what = "refund callback";
    if fields.0.contains_key("req_info") && !fields.0.contains_key("out_refund_no") {
        return Err(Error::invalid_request(format!(
            "{what} carries an encrypted `req_info`, which cloudPay is not known to send and this adapter cannot read"
        )));
    }
    if fields.text("return_code").is_some_and(|c| c != "SUCCESS") {
        return Ok(vec![]);
    }
    check_merchant(s, fields, what)?;
    let refund_no = fields.required("out_refund_no", what).map_err(as_invalid)?;
    field::order_no(&refund_no, "callback out_refund_no", 1, 64, "_-|*@")?;
    let out_trade_no = fields.required("out_trade_no", what).map_err(as_invalid)?;
    order_no(&out_trade_no, "callback out_trade_no")?;
    let claimed = fields.required("refund_status", what).map_err(as_invalid)?;
    let claimed_state = wire::refund_state(&claimed).ok_or_else(|| {
        Error::invalid_request(format!("{what}: unknown refund_status `{claimed}`"))
    })?;
    let order = OrderRef {
        merchant_order_no: out_trade_no,
        provider_trade_no: None,
        channel_transaction_id: fields.text("transaction_id"),
    };
    let (msg, found) = s
        .query_refund(ctx, &order, &refund_no, None)
        .map_err(|e| unconfirmed(e, what))?;
    let (state, word, refund_id, amount) = match found {
        wire::QueriedRefund::Listed {
            refund_id,
            refund_fee,
            refund_status,
        } => {
            let state = wire::refund_state(&refund_status).ok_or_else(|| {
                Error::invalid_request(format!(
                    "{what}: queryrefund says unknown refund_status `{refund_status}`"
                ))
            })?;
            let currency = msg.text("fee_type").unwrap_or_else(|| "CNY".into());
            let amount = refund_fee
                .map(|fee| money::from_minor_str(&fee, &currency))
                .transpose()
                .map_err(|e| Error::invalid_request(format!("{what}: {e}")))?;
            (state, refund_status, refund_id, amount)
        }
        wire::QueriedRefund::Unlisted if claimed_state == RefundState::Succeeded => (
            RefundState::Succeeded,
            claimed,
            fields.text("refund_id"),
            None,
        ),
        wire::QueriedRefund::Unlisted => (
            RefundState::Pending,
            format!("{claimed} (unconfirmed)"),
            fields.text("refund_id"),
            None,
        ),
    };
    Ok(vec![NotifyEvent::Refund(RefundStatus {
        order: OrderRef {
            channel_transaction_id: msg.text("transaction_id").or(order.channel_transaction_id),
            ..order
        },
        refund_no,
        provider_refund_id: refund_id,
        state,
        provider_state: word,
        amount,
    })])
}

payhost_sdk::export_adapter!(WechatCloudpay);

#[cfg(test)]
mod tests;
