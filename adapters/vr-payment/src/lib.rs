//! VR Payment adapter: the gateway of the wallee platform
//! (`https://gateway.vr-payment.de/api`, REST API v1), MAC-authenticated.
//!
//! - `lib.rs` (this file): the contract -- `describe` and the operations.
//! - [`wire`]: the gateway's paths, entities and state words.
//! - [`sign`]: the MAC request headers (HMAC-SHA512 on the host) and the
//!   ECDSA webhook signature.
//!
//! The payer pays on the gateway's payment page (a `redirect`). The source
//! article's integration received no notification from VR Payment, so
//! `describe` declares none: the host settles orders by polling `query`
//! with back-off. A webhook, where one is configured, is only a hint: the
//! adapter reads the entity it names and reports what the read says.
//!
//! References are to sections of `providers.md` (§8).

#![forbid(unsafe_code)]

pub mod sign;
pub mod wire;

use payhost_sdk::prelude::*;
use sign::WebhookSignature;

pub struct VrPayment;

/// The provider's limits on request fields, declared in `describe` so the
/// host refuses a value before an order number is spent.
const ORDER_NO: field::Rule = field::Rule::order_no("merchant_order_no", 1, 100, "_-.");
const DESCRIPTION: field::Rule = field::Rule::text("description", 1, 150);
const ATTACH: field::Rule = field::Rule::text("attach", 0, 512);
const REFUND_NO: field::Rule = field::Rule::order_no("refund_no", 1, 100, "_-.");
const RULES: [field::Rule; 4] = [ORDER_NO, DESCRIPTION, ATTACH, REFUND_NO];

/// Payment methods, each a payment-page redirect; which of them the page
/// offers is the space's configuration (`method_configurations` narrows it).
pub const METHODS: &[&str] = &["card", "alipay", "wechat_pay"];

/// ISO 4217 codes accepted, `adapter-info.currencies` (providers.md §8.2: the processing API is
/// documented with EUR; §8.4 leaves the gateway's list to the space's
/// contract, and the brief of issue 11 names EUR and CHF).
pub const CURRENCIES: &[&str] = &["EUR", "CHF"];

/// The merchant configuration, read once per operation.
struct Settings<'a> {
    space_id: &'a str,
    user_id: &'a str,
    key: Secret,
    base_url: &'a str,
    paid_states: Vec<&'a str>,
    method_configurations: Vec<(&'a str, i64)>,
    success_url: Option<&'a str>,
    failed_url: Option<&'a str>,
    language: Option<&'a str>,
    signature_required: bool,
}

fn digits<'a>(c: &Config<'a>, name: &str) -> Result<&'a str> {
    let v = c.text(name)?;
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid_config(format!(
            "field `{name}` is `{v}`, expected the gateway's numeric id"
        )));
    }
    Ok(v)
}

impl<'a> Settings<'a> {
    fn read(ctx: &Ctx<'a>) -> Result<Self> {
        let c = ctx.config();
        let paid_states: Vec<&str> = c
            .text_opt("paid_states")?
            .unwrap_or("FULFILL")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if paid_states.is_empty()
            || paid_states
                .iter()
                .any(|s| !wire::PAYABLE_STATES.contains(s))
        {
            return Err(Error::invalid_config(format!(
                "field `paid_states` may list only {:?} (AUTHORIZED money is not taken yet)",
                wire::PAYABLE_STATES
            )));
        }
        let mut method_configurations = Vec::new();
        for pair in c
            .text_opt("method_configurations")?
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let parsed = pair
                .split_once('=')
                .and_then(|(m, id)| Some((m.trim(), id.trim().parse::<i64>().ok()?)))
                .filter(|(m, _)| METHODS.contains(m));
            let Some(entry) = parsed else {
                return Err(Error::invalid_config(format!(
                    "field `method_configurations`: `{pair}` is not METHOD=ID with METHOD one of {METHODS:?}"
                )));
            };
            method_configurations.push(entry);
        }
        let signature_required = match c.text_opt("webhook_signature")?.unwrap_or("optional") {
            "optional" => false,
            "required" => true,
            other => {
                return Err(Error::invalid_config(format!(
                    "field `webhook_signature` is `{other}`, expected `optional` or `required`"
                )));
            }
        };
        Ok(Settings {
            space_id: digits(&c, "space_id")?,
            user_id: digits(&c, "user_id")?,
            key: c.secret("authentication_key")?,
            base_url: c.text_opt("base_url")?.unwrap_or(wire::DEFAULT_BASE_URL),
            paid_states,
            method_configurations,
            success_url: c.text_opt("success_url")?,
            failed_url: c.text_opt("failed_url")?,
            language: c.text_opt("language")?,
            signature_required,
        })
    }

    /// Sends one MAC-authenticated call (§8.3) and returns the body of a
    /// 2xx answer; anything else is the gateway's refusal.
    fn call(&self, ctx: &mut Ctx, path: &str, body: Option<json::Value>) -> Result<Vec<u8>> {
        let url = http::join(self.base_url, path);
        let (word, mut request) = match body {
            None => ("GET", http::get(url.clone())),
            Some(b) => (
                "POST",
                http::post(url.clone(), "application/json", json::to_body(&b)),
            ),
        };
        request
            .headers
            .extend(sign::mac_headers(ctx, self.user_id, self.key, word, &url)?);
        request
            .headers
            .push(("accept".into(), "application/json".into()));
        let response = ctx.send(request)?;
        let status = response.status;
        if (200..300).contains(&status) {
            return Ok(response.body);
        }
        let error: Option<wire::ApiError> = json::from_body(&response.body).ok();
        let (kind, message) = match error {
            Some(e) => (e.kind, e.message.or(e.default_message).unwrap_or_default()),
            None => (None, String::new()),
        };
        let code = match (status, kind) {
            (404, _) => "NOT_FOUND".to_string(),
            (_, Some(kind)) => kind,
            _ => format!("HTTP_{status}"),
        };
        Err(Error::rejected(
            code.clone(),
            format!("{}: HTTP {status} {code} {message}", path_only(path)),
            wire::retryable(status),
        ))
    }

    fn read_transaction(&self, ctx: &mut Ctx, id: i64) -> Result<wire::Transaction> {
        let answer = self.call(ctx, &wire::read_transaction(self.space_id, id), None)?;
        let t: wire::Transaction = json::from_body(&answer)
            .map_err(|e| Error::malformed(format!("transaction/read answer: {e}")))?;
        if t.id != id {
            return Err(Error::malformed(format!(
                "transaction/read answered transaction {}, not {id}",
                t.id
            )));
        }
        Ok(t)
    }

    fn check_space(&self, linked: Option<i64>, what: &str) -> Result<()> {
        match linked {
            Some(space) if space.to_string() != self.space_id => Err(Error::malformed(format!(
                "{what} belongs to space {space}, not {}",
                self.space_id
            ))),
            _ => Ok(()),
        }
    }

    /// A transaction in the contract's terms, checked against the order
    /// asked about (an empty `expected_no` accepts any reference).
    fn trade_status(&self, t: wire::Transaction, expected_no: &str) -> Result<TradeStatus> {
        let what = format!("transaction {}", t.id);
        self.check_space(t.linked_space_id, &what)?;
        let reference = t.merchant_reference.clone().unwrap_or_default();
        if !expected_no.is_empty() && reference != expected_no {
            return Err(Error::malformed(format!(
                "{what} has merchantReference `{reference}`, not `{expected_no}`"
            )));
        }
        if reference.is_empty() {
            return Err(Error::malformed(format!("{what} has no merchantReference")));
        }
        let state = wire::trade_state(&t.state, &self.paid_states);
        let amount = match (&t.authorization_amount, &t.currency) {
            (Some(a), Some(c)) => Some(wire::money_of(a, c, &what)?),
            _ => None,
        };
        // Informational only: an unreadable time is dropped, not an error.
        let paid_at = t
            .completed_on
            .as_deref()
            .filter(|_| state == TradeState::Paid)
            .and_then(|s| time::parse_rfc3339(s).ok());
        Ok(TradeStatus {
            order: OrderRef {
                merchant_order_no: reference,
                provider_trade_no: Some(t.id.to_string()),
                // §0: VR Payment reports no WeChat transaction id.
                channel_transaction_id: None,
            },
            state,
            provider_state: t.state,
            amount,
            paid_at,
            payer_id: None,
        })
    }

    /// A refund in the contract's terms. `refund_no` is the externalId
    /// asked about; `order` what the host knows of the order.
    fn refund_status(
        &self,
        r: wire::Refund,
        refund_no: &str,
        order: &OrderRef,
        currency: Option<&str>,
    ) -> Result<RefundStatus> {
        let what = format!("refund {}", r.id);
        self.check_space(r.linked_space_id, &what)?;
        if r.external_id.as_deref() != Some(refund_no) {
            return Err(Error::malformed(format!(
                "{what} has externalId `{}`, not `{refund_no}`",
                r.external_id.as_deref().unwrap_or_default()
            )));
        }
        let transaction = r.transaction.as_ref();
        if let (Some(t), Some(known)) = (transaction, order.provider_trade_no.as_deref())
            && t.id.to_string() != known
        {
            return Err(Error::malformed(format!(
                "{what} is of transaction {}, not {known}",
                t.id
            )));
        }
        let merchant_order_no = transaction
            .and_then(|t| t.merchant_reference.clone())
            .or_else(|| r.merchant_reference.clone())
            .unwrap_or_else(|| order.merchant_order_no.clone());
        if !order.merchant_order_no.is_empty() && merchant_order_no != order.merchant_order_no {
            return Err(Error::malformed(format!(
                "{what} is of order `{merchant_order_no}`, not `{}`",
                order.merchant_order_no
            )));
        }
        let currency = transaction.and_then(|t| t.currency.as_deref()).or(currency);
        let amount = match (&r.amount, currency) {
            (Some(a), Some(c)) => Some(wire::money_of(a, c, &what)?),
            _ => None,
        };
        Ok(RefundStatus {
            order: OrderRef {
                merchant_order_no,
                provider_trade_no: transaction
                    .map(|t| t.id.to_string())
                    .or_else(|| order.provider_trade_no.clone()),
                channel_transaction_id: None,
            },
            refund_no: refund_no.into(),
            provider_refund_id: Some(r.id.to_string()),
            state: wire::refund_state(&r.state),
            provider_state: r.state,
            amount,
        })
    }
}

/// A path without its query string, for error messages.
fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// The gateway's transaction id of an order, which every read and refund needs.
fn transaction_id(order: &OrderRef) -> Result<i64> {
    let id = order
        .provider_trade_no
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::invalid_request(
                "order.provider_trade_no is required: VR Payment reads transactions by its own id",
            )
        })?;
    id.parse::<i64>().ok().filter(|i| *i > 0).ok_or_else(|| {
        Error::invalid_request(format!(
            "order.provider_trade_no `{id}` is not a VR Payment transaction id"
        ))
    })
}

fn rejection_code(e: &Error) -> Option<&str> {
    match e.adapter_error() {
        Some(AdapterError::ProviderRejected(r)) => Some(r.code.as_str()),
        _ => None,
    }
}

impl Adapter for VrPayment {
    fn describe() -> AdapterInfo {
        let field = field::config;
        AdapterInfo {
            name: "vr-payment".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            contract_version: CONTRACT_VERSION.into(),
            methods: METHODS.iter().map(|m| m.to_string()).collect(),
            currencies: money::currencies(CURRENCIES),
            capabilities: Capabilities {
                // The source article's integration got none (§8.1): poll.
                payment_notifications: false,
                refund_notifications: false,
                partial_refunds: true,
                query_by_merchant_order_no: false,
                // §8.4 documents no cancel of a pending transaction.
                close: false,
                refund_query: true,
                payouts: false,
                payout_notifications: false,
                contracts: false,
                contract_notifications: false,
                deduction_notifications: false,
            },
            egress_hosts: vec!["gateway.vr-payment.de".into()],
            field_rules: field::declare(&RULES),
            config_schema: vec![
                field(
                    "space_id",
                    "The gateway space the transactions belong to (numeric)",
                    FieldKind::Text,
                    true,
                    None,
                ),
                field(
                    "user_id",
                    "The application user's id (numeric), sent as x-mac-userid",
                    FieldKind::Text,
                    true,
                    None,
                ),
                field(
                    "authentication_key",
                    "The application user's authentication key (Base64), the MAC's HMAC-SHA512 key",
                    FieldKind::Secret,
                    true,
                    None,
                ),
                field(
                    "base_url",
                    "The REST API v1 base, `/api` included (the MAC covers it)",
                    FieldKind::Url,
                    false,
                    Some(wire::DEFAULT_BASE_URL),
                ),
                field(
                    "paid_states",
                    "Transaction states that mean paid: `FULFILL`, or `FULFILL,COMPLETED` for a space without a post-completion check",
                    FieldKind::Text,
                    false,
                    Some("FULFILL"),
                ),
                field(
                    "method_configurations",
                    "Payment method configuration ids per method, e.g. `wechat_pay=1234,alipay=1235`: the page then offers only that one; without, the space's every method",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "success_url",
                    "Where the payment page sends the payer after paying",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "failed_url",
                    "Where the payment page sends the payer after a failure",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "language",
                    "The payment page's language (e.g. `de-DE`); the gateway's default without",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "webhook_signature",
                    "`optional`: verify X-Signature when a webhook has one; `required`: refuse webhooks without",
                    FieldKind::Text,
                    false,
                    Some("optional"),
                ),
            ],
        }
    }

    fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
        let s = Settings::read(ctx)?;
        if !METHODS.contains(&req.method.as_str()) {
            return Err(Error::unsupported(format!(
                "method `{}`: vr-payment offers {} (payment-page redirects; no mini-program payment is documented)",
                req.method,
                METHODS.join(", ")
            )));
        }
        ORDER_NO.check(&req.merchant_order_no)?;
        DESCRIPTION.check(&req.description)?;
        field::positive(req.amount.minor, "amount.minor")?;
        if !CURRENCIES.contains(&req.amount.currency.as_str()) {
            return Err(Error::invalid_request(format!(
                "amount.currency `{}`: vr-payment takes {}",
                req.amount.currency,
                CURRENCIES.join(", ")
            )));
        }
        let mut body = json::json!({
            "currency": req.amount.currency,
            "merchantReference": req.merchant_order_no,
            "lineItems": [{
                "name": req.description,
                "uniqueId": req.merchant_order_no,
                "type": "PRODUCT",
                "quantity": 1,
                "amountIncludingTax": wire::amount(&req.amount)?,
            }],
        });
        if let Some(&(_, id)) = s
            .method_configurations
            .iter()
            .find(|(m, _)| *m == req.method)
        {
            body["allowedPaymentMethodConfigurations"] = json::json!([id]);
        }
        for (key, value) in [
            ("successUrl", s.success_url),
            ("failedUrl", s.failed_url),
            ("language", s.language),
        ] {
            if let Some(v) = value {
                body[key] = v.into();
            }
        }
        if let Some(attach) = &req.attach {
            ATTACH.check(attach)?;
            body["metaData"] = json::json!({ "attach": attach });
        }
        let answer = s.call(ctx, &wire::create_transaction(s.space_id), Some(body))?;
        let t: wire::Transaction = json::from_body(&answer)
            .map_err(|e| Error::malformed(format!("transaction/create answer: {e}")))?;
        let status = s.trade_status(t, &req.merchant_order_no)?;
        let id = transaction_id(&status.order)?;
        let answer = s.call(ctx, &wire::payment_page_url(s.space_id, id), None)?;
        let url: String = json::from_body(&answer)
            .map_err(|e| Error::malformed(format!("payment-page-url answer: {e}")))?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(Error::malformed(format!(
                "payment-page-url answer `{url}` is not a URL"
            )));
        }
        Ok(OrderCreated {
            order: status.order,
            action: PayAction::Redirect(url),
        })
    }

    fn query(ctx: &mut Ctx, req: &QueryRequest) -> Result<TradeStatus> {
        let s = Settings::read(ctx)?;
        let id = transaction_id(&req.order)?;
        let t = s.read_transaction(ctx, id)?;
        s.trade_status(t, &req.order.merchant_order_no)
    }

    fn refund(ctx: &mut Ctx, req: &RefundRequest) -> Result<RefundStatus> {
        let s = Settings::read(ctx)?;
        let id = transaction_id(&req.order)?;
        REFUND_NO.check(&req.refund_no)?;
        field::positive(req.amount.minor, "amount.minor")?;
        if req.amount.currency != req.order_amount.currency {
            return Err(Error::invalid_request(format!(
                "amount.currency `{}` differs from the order's `{}`: the gateway refunds in the transaction's currency",
                req.amount.currency, req.order_amount.currency
            )));
        }
        if req.amount.minor > req.order_amount.minor {
            return Err(Error::invalid_request(format!(
                "amount.minor {} exceeds order_amount.minor {}",
                req.amount.minor, req.order_amount.minor
            )));
        }
        // externalId is the gateway's idempotency key: a repeat with the
        // same refund number answers the refund made the first time.
        let body = json::json!({
            "transaction": id,
            "amount": wire::amount(&req.amount)?,
            "externalId": req.refund_no,
            "merchantReference": req.order.merchant_order_no,
            "type": "MERCHANT_INITIATED_ONLINE",
        });
        let answer = s.call(ctx, &wire::create_refund(s.space_id), Some(body))?;
        let r: wire::Refund = json::from_body(&answer)
            .map_err(|e| Error::malformed(format!("refund/refund answer: {e}")))?;
        s.refund_status(r, &req.refund_no, &req.order, Some(&req.amount.currency))
    }

    /// By the refund's id when the host has it, else by searching its
    /// externalId; a search that finds nothing means the gateway never
    /// took the refund.
    fn refund_query(ctx: &mut Ctx, req: &RefundQueryRequest) -> Result<RefundStatus> {
        let s = Settings::read(ctx)?;
        REFUND_NO.check(&req.refund_no)?;
        let known_id = req
            .provider_refund_id
            .as_deref()
            .filter(|id| !id.is_empty());
        let refund = match known_id {
            Some(id) => {
                let id: i64 = id.parse().map_err(|_| {
                    Error::invalid_request(format!(
                        "provider_refund_id `{id}` is not a VR Payment refund id"
                    ))
                })?;
                let answer = s.call(ctx, &wire::read_refund(s.space_id, id), None)?;
                Some(
                    json::from_body::<wire::Refund>(&answer)
                        .map_err(|e| Error::malformed(format!("refund/read answer: {e}")))?,
                )
            }
            None => {
                let query = json::json!({"filter": {
                    "type": "LEAF", "fieldName": "externalId",
                    "operator": "EQUALS", "value": req.refund_no,
                }});
                let answer = s.call(ctx, &wire::search_refunds(s.space_id), Some(query))?;
                let found: Vec<wire::Refund> = json::from_body(&answer)
                    .map_err(|e| Error::malformed(format!("refund/search answer: {e}")))?;
                found
                    .into_iter()
                    .find(|r| r.external_id.as_deref() == Some(req.refund_no.as_str()))
            }
        };
        match refund {
            Some(r) => s.refund_status(r, &req.refund_no, &req.order, None),
            None => Ok(RefundStatus {
                order: req.order.clone(),
                refund_no: req.refund_no.clone(),
                provider_refund_id: None,
                state: RefundState::Failed,
                provider_state: "NOT_FOUND".into(),
                amount: None,
            }),
        }
    }

    /// A webhook (§8.5) names an entity and carries no amount: its
    /// signature is checked when present (or required), the entity is read
    /// with the API, and the read is what gets reported.
    fn parse_notify(ctx: &mut Ctx, req: &InboundHttp) -> Result<NotifyOutcome> {
        let s = Settings::read(ctx)?;
        if req.method != HttpMethod::Post {
            return Err(Error::invalid_request("a webhook is a POST"));
        }
        match http::header(&req.headers, "x-signature") {
            Some(header) => {
                let sig = WebhookSignature::parse(header)?;
                let answer = s
                    .call(ctx, &wire::read_webhook_key(&sig.key_id), None)
                    .map_err(|e| match rejection_code(&e) {
                        // A key the gateway does not know signed nothing of it.
                        Some("NOT_FOUND") => Error::bad_signature(format!(
                            "X-Signature names key {}, which the gateway does not know",
                            sig.key_id
                        )),
                        _ => e,
                    })?;
                let key: wire::WebhookPublicKey = json::from_body(&answer).map_err(|e| {
                    Error::malformed(format!("webhook-encryption/read answer: {e}"))
                })?;
                if key.id != sig.key_id {
                    return Err(Error::malformed(format!(
                        "webhook-encryption/read answered key {}, not {}",
                        key.id, sig.key_id
                    )));
                }
                sign::verify_webhook(&key.public_key, &req.body, &sig)?;
            }
            None if s.signature_required => {
                return Err(Error::bad_signature(
                    "the webhook has no X-Signature and `webhook_signature` is `required`",
                ));
            }
            None => {}
        }
        let hook: wire::Webhook = json::from_body(&req.body)
            .map_err(|e| Error::invalid_request(format!("webhook body: {e}")))?;
        if hook.space_id.to_string() != s.space_id {
            return Err(Error::invalid_request(format!(
                "webhook of space {}, not {}",
                hook.space_id, s.space_id
            )));
        }
        let unknown = |e: Error, what: &str| match rejection_code(&e) {
            Some("NOT_FOUND") => Error::invalid_request(format!(
                "webhook names {what} {}, which the gateway does not know",
                hook.entity_id
            )),
            _ => e,
        };
        let events = match hook.listener_entity_technical_name.as_str() {
            "Transaction" => {
                let t = s
                    .read_transaction(ctx, hook.entity_id)
                    .map_err(|e| unknown(e, "transaction"))?;
                vec![NotifyEvent::Payment(s.trade_status(t, "")?)]
            }
            "Refund" => {
                let answer = s
                    .call(ctx, &wire::read_refund(s.space_id, hook.entity_id), None)
                    .map_err(|e| unknown(e, "refund"))?;
                let r: wire::Refund = json::from_body(&answer)
                    .map_err(|e| Error::malformed(format!("refund/read answer: {e}")))?;
                let refund_no = r.external_id.clone().unwrap_or_default();
                if refund_no.is_empty() {
                    return Err(Error::invalid_request(format!(
                        "refund {} has no externalId: not made by payhost",
                        r.id
                    )));
                }
                let order = OrderRef {
                    merchant_order_no: String::new(),
                    provider_trade_no: None,
                    channel_transaction_id: None,
                };
                vec![NotifyEvent::Refund(
                    s.refund_status(r, &refund_no, &order, None)?,
                )]
            }
            // Another entity (invoices, tokens, ...): taken, nothing to apply.
            _ => vec![],
        };
        Ok(NotifyOutcome {
            events,
            ack: wire::ack(),
        })
    }
}

payhost_sdk::export_adapter!(VrPayment);

#[cfg(test)]
mod tests;
