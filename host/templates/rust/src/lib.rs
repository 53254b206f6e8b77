//! A payhost adapter for Acme Pay, a fictitious provider with a simple
//! signed-JSON API: the starting point `payhost adapter new` wrote. Replace
//! Acme Pay's paths, fields and signature with your provider's, keeping
//! the shape:
//!
//! - `lib.rs` (this file): the contract -- `describe` and the operations.
//! - [`wire`]: the provider's messages, named as its documentation names them.
//! - [`sign`]: its signature scheme, with the key held by the host.

#![forbid(unsafe_code)]

pub mod sign;
pub mod wire;

use payhost_sdk::prelude::*;
use wire::Fields;

pub struct AcmePay;

/// The provider's limits on request fields, declared in `describe` so the
/// host refuses a value before an order number is spent.
const ORDER_NO: field::Rule = field::Rule::order_no("merchant_order_no", 1, 32, "_-");
const DESCRIPTION: field::Rule = field::Rule::text("description", 1, 128);
const REFUND_NO: field::Rule = field::Rule::order_no("refund_no", 1, 32, "_-");
const RULES: [field::Rule; 3] = [ORDER_NO, DESCRIPTION, REFUND_NO];

pub const CURRENCIES: &[&str] = &["EUR", "GBP"];

const DEFAULT_BASE_URL: &str = "https://api.acme-pay.example";

/// The merchant configuration, read once per operation.
struct Settings<'a> {
    merchant_id: &'a str,
    api_key: Secret,
    base_url: &'a str,
}

impl<'a> Settings<'a> {
    fn read(ctx: &Ctx<'a>) -> Result<Self> {
        let c = ctx.config();
        Ok(Settings {
            merchant_id: c.text("merchant_id")?,
            api_key: c.secret("api_key")?,
            base_url: c.text_opt("base_url")?.unwrap_or(DEFAULT_BASE_URL),
        })
    }

    /// Adds the common fields, signs, POSTs to `path` and returns the
    /// verified fields of an answer whose `result` is `OK`.
    fn call(&self, ctx: &mut Ctx, path: &str, mut fields: Fields) -> Result<Fields> {
        wire::put(&mut fields, "merchant_id", self.merchant_id);
        // Seeded by the call: a replayed step sends the same nonce.
        let nonce = ctx.nonce(16);
        wire::put(&mut fields, "nonce", &nonce);
        wire::put(&mut fields, "timestamp", &ctx.timestamp().to_string());
        let signature = sign::sign(ctx, self.api_key, &fields)?;
        fields.insert("sign".into(), signature);
        let request = http::post(
            http::join(self.base_url, path),
            "application/json",
            json::to_body(&fields),
        );
        let response = ctx.send(request)?;
        let what = format!("{path} answer");
        if response.status != 200 {
            return Err(Error::rejected(
                format!("HTTP_{}", response.status),
                format!("{what}: HTTP {}", response.status),
                response.status >= 500 || response.status == 429,
            ));
        }
        let answer = wire::answer_fields(&response.body, &what)?;
        // Error answers are signed too: nothing unsigned is believed.
        sign::verify(ctx, self.api_key, &answer, &what)?;
        if wire::required(&answer, "merchant_id", &what)? != self.merchant_id {
            return Err(Error::malformed(format!(
                "{what} is for another merchant_id"
            )));
        }
        let result = wire::required(&answer, "result", &what)?;
        if result != wire::RESULT_OK {
            let code = wire::optional(&answer, "error_code").unwrap_or_else(|| result.into());
            let message = wire::optional(&answer, "error_message").unwrap_or_default();
            let retryable = code == wire::SYSTEM_BUSY;
            return Err(Error::rejected(
                code,
                format!("{what}: {message}"),
                retryable,
            ));
        }
        Ok(answer)
    }
}

impl Adapter for AcmePay {
    fn describe() -> AdapterInfo {
        let field = field::config;
        AdapterInfo {
            // The crate's name is the adapter's slot.
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            contract_version: CONTRACT_VERSION.into(),
            methods: wire::METHODS.iter().map(|m| m.to_string()).collect(),
            currencies: money::currencies(CURRENCIES),
            capabilities: Capabilities {
                payment_notifications: true,
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
            egress_hosts: vec!["api.acme-pay.example".into()],
            field_rules: field::declare(&RULES),
            config_schema: vec![
                field(
                    "merchant_id",
                    "Acme Pay merchant id",
                    FieldKind::Text,
                    true,
                    None,
                ),
                // Secret: the adapter only ever gets a handle to it.
                field(
                    "api_key",
                    "The API key requests and answers are signed with",
                    FieldKind::Secret,
                    true,
                    None,
                ),
                field(
                    "base_url",
                    "Acme Pay API origin",
                    FieldKind::Url,
                    false,
                    Some(DEFAULT_BASE_URL),
                ),
            ],
        }
    }

    fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
        let s = Settings::read(ctx)?;
        if req.method != wire::QR_CODE {
            return Err(Error::unsupported(format!(
                "method `{}`: acme pay offers {}",
                req.method,
                wire::METHODS.join(", ")
            )));
        }
        ORDER_NO.check(&req.merchant_order_no)?;
        DESCRIPTION.check(&req.description)?;
        field::positive(req.amount.minor, "amount.minor")?;
        if !CURRENCIES.contains(&req.amount.currency.as_str()) {
            return Err(Error::invalid_request(format!(
                "amount.currency `{}`: acme pay takes {}",
                req.amount.currency,
                CURRENCIES.join(", ")
            )));
        }
        let expires_at = field::expiry(req.expires_at, ctx.timestamp())?;
        let mut fields = Fields::new();
        wire::put(&mut fields, "out_trade_no", &req.merchant_order_no);
        wire::put(&mut fields, "amount", &money::to_decimal(&req.amount)?);
        wire::put(&mut fields, "currency", &req.amount.currency);
        wire::put(&mut fields, "description", &req.description);
        wire::put(&mut fields, "notify_url", ctx.notify_url());
        wire::put(&mut fields, "attach", req.attach.as_deref().unwrap_or(""));
        if let Some(at) = expires_at {
            wire::put(&mut fields, "expire_time", &at.to_string());
        }
        let answer = s.call(ctx, wire::CREATE_ORDER, fields)?;
        let what = "create order answer";
        let order = order_ref(&answer, &req.merchant_order_no, None, what)?;
        let qr_code = wire::required(&answer, "qr_code", what)?;
        Ok(OrderCreated {
            order,
            action: PayAction::QrCode(qr_code.into()),
        })
    }

    fn query(ctx: &mut Ctx, req: &QueryRequest) -> Result<TradeStatus> {
        order_call(ctx, wire::QUERY_ORDER, &req.order)
    }

    fn close(ctx: &mut Ctx, req: &CloseRequest) -> Result<TradeStatus> {
        // Acme Pay answers the order's status: `CLOSED`, or `PAID` when
        // the payer was quicker.
        order_call(ctx, wire::CLOSE_ORDER, &req.order)
    }

    fn refund(ctx: &mut Ctx, req: &RefundRequest) -> Result<RefundStatus> {
        let s = Settings::read(ctx)?;
        REFUND_NO.check(&req.refund_no)?;
        field::refund_amount(&req.amount, &req.order_amount)?;
        let mut fields = Fields::new();
        wire::put(&mut fields, "out_trade_no", &req.order.merchant_order_no);
        wire::put(&mut fields, "out_refund_no", &req.refund_no);
        wire::put(
            &mut fields,
            "refund_amount",
            &money::to_decimal(&req.amount)?,
        );
        wire::put(&mut fields, "currency", &req.amount.currency);
        wire::put(&mut fields, "notify_url", ctx.notify_url());
        let answer = s.call(ctx, wire::CREATE_REFUND, fields)?;
        refund_status(&answer, &req.order, &req.refund_no, "create refund answer")
    }

    fn refund_query(ctx: &mut Ctx, req: &RefundQueryRequest) -> Result<RefundStatus> {
        let s = Settings::read(ctx)?;
        REFUND_NO.check(&req.refund_no)?;
        let mut fields = Fields::new();
        wire::put(&mut fields, "out_trade_no", &req.order.merchant_order_no);
        wire::put(&mut fields, "out_refund_no", &req.refund_no);
        let answer = s.call(ctx, wire::QUERY_REFUND, fields)?;
        refund_status(&answer, &req.order, &req.refund_no, "query refund answer")
    }

    fn parse_notify(ctx: &mut Ctx, req: &InboundHttp) -> Result<NotifyOutcome> {
        // Acme Pay retries a notification until it reads `OK`.
        let fail = |e: Error| e.with_ack(http::response(400, "text/plain", "FAIL"));
        let s = Settings::read(ctx).map_err(fail)?;
        if req.method != HttpMethod::Post {
            return Err(fail(Error::invalid_request("notification must be a POST")));
        }
        let event = notification(ctx, &s, &req.body).map_err(fail)?;
        Ok(NotifyOutcome {
            events: vec![event],
            ack: http::response(200, "text/plain", "OK"),
        })
    }
}

/// Query and close: the order number in, the order's status out.
fn order_call(ctx: &mut Ctx, path: &str, order: &OrderRef) -> Result<TradeStatus> {
    let s = Settings::read(ctx)?;
    ORDER_NO.check(&order.merchant_order_no)?;
    let mut fields = Fields::new();
    wire::put(&mut fields, "out_trade_no", &order.merchant_order_no);
    let answer = s.call(ctx, path, fields)?;
    trade_status(&answer, order, &format!("{path} answer"))
}

/// The order an answer is about; it must be the one asked about.
fn order_ref(
    fields: &Fields,
    merchant_order_no: &str,
    known: Option<&OrderRef>,
    what: &str,
) -> Result<OrderRef> {
    let echoed = wire::required(fields, "out_trade_no", what)?;
    if echoed != merchant_order_no {
        return Err(Error::malformed(format!(
            "{what} is for out_trade_no `{echoed}`, not `{merchant_order_no}`"
        )));
    }
    Ok(OrderRef {
        merchant_order_no: merchant_order_no.into(),
        provider_trade_no: wire::optional(fields, "trade_no")
            .or_else(|| known.and_then(|o| o.provider_trade_no.clone())),
        channel_transaction_id: known.and_then(|o| o.channel_transaction_id.clone()),
    })
}

/// `amount` and `currency` of a message, in minor units.
fn amount(fields: &Fields, name: &str, what: &str) -> Result<Money> {
    let decimal = wire::required(fields, name, what)?;
    let currency = wire::required(fields, "currency", what)?;
    money::from_decimal(decimal, currency)
        .map_err(|e| Error::malformed(format!("{what}: `{name}`: {e}")))
}

/// An order's status in an answer or a payment notification.
fn trade_status(fields: &Fields, order: &OrderRef, what: &str) -> Result<TradeStatus> {
    let word = wire::required(fields, "status", what)?;
    let state = wire::trade_state(word)
        .ok_or_else(|| Error::malformed(format!("{what}: unknown status `{word}`")))?;
    let paid_at = match wire::optional(fields, "paid_at") {
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| Error::malformed(format!("{what}: `paid_at` is not a unix time")))?,
        ),
        None => None,
    };
    Ok(TradeStatus {
        order: order_ref(fields, &order.merchant_order_no, Some(order), what)?,
        state,
        provider_state: word.into(),
        amount: Some(amount(fields, "amount", what)?),
        paid_at,
        payer_id: None,
    })
}

/// A refund's status in an answer or a refund notification.
fn refund_status(
    fields: &Fields,
    order: &OrderRef,
    refund_no: &str,
    what: &str,
) -> Result<RefundStatus> {
    let echoed = wire::required(fields, "out_refund_no", what)?;
    if echoed != refund_no {
        return Err(Error::malformed(format!(
            "{what} is for out_refund_no `{echoed}`, not `{refund_no}`"
        )));
    }
    let word = wire::required(fields, "refund_status", what)?;
    let state = wire::refund_state(word)
        .ok_or_else(|| Error::malformed(format!("{what}: unknown refund_status `{word}`")))?;
    Ok(RefundStatus {
        order: order_ref(fields, &order.merchant_order_no, Some(order), what)?,
        refund_no: refund_no.into(),
        provider_refund_id: wire::optional(fields, "refund_id"),
        state,
        provider_state: word.into(),
        amount: Some(amount(fields, "refund_amount", what)?),
    })
}

/// A signed form notification of a payment or a refund.
fn notification(ctx: &Ctx, s: &Settings, body: &[u8]) -> Result<NotifyEvent> {
    let what = "notification";
    let fields = wire::notification_fields(body)?;
    sign::verify(ctx, s.api_key, &fields, what)?;
    if wire::required(&fields, "merchant_id", what)? != s.merchant_id {
        return Err(Error::invalid_request(format!(
            "{what} is for another merchant_id"
        )));
    }
    let order = OrderRef {
        merchant_order_no: wire::required(&fields, "out_trade_no", what)?.into(),
        provider_trade_no: None,
        channel_transaction_id: None,
    };
    match wire::required(&fields, "event", what)? {
        wire::PAYMENT_EVENT => Ok(NotifyEvent::Payment(trade_status(&fields, &order, what)?)),
        wire::REFUND_EVENT => {
            let refund_no = wire::required(&fields, "out_refund_no", what)?;
            Ok(NotifyEvent::Refund(refund_status(
                &fields, &order, refund_no, what,
            )?))
        }
        other => Err(Error::invalid_request(format!(
            "{what}: unknown event `{other}`"
        ))),
    }
}

payhost_sdk::export_adapter!(AcmePay);

#[cfg(test)]
mod tests;
