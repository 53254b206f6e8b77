//! `payhost adapter check`: what a component must do before it serves a
//! merchant, tested offline. No request is performed: each operation's
//! steps are driven with provider answers made here ([`Runtime::step_offline`]),
//! most of them garbage, as a broken or hostile provider (or a stranger on
//! the notify endpoint) would send.
//!
//! The checks, one line each in the report:
//! - `describe`: a slot-shaped name, a semver version, methods, currencies
//!   that are ISO 4217 codes, egress hosts, a schema whose secret fields
//!   have no default, field rules that name known methods;
//! - `imports`: loading already refuses anything outside the contract;
//! - per operation (`payout` and `payout-query` when `capabilities.payouts`
//!   says the adapter has them), `<op>/first-step` (it answers, and the same inputs
//!   give the same answer twice: determinism), then `<op>/garbage` (every
//!   garbage answer ends in the contract's error, or another request; never
//!   a trap, a deadline, or a success built on garbage);
//! - `parse-notify/garbage`: forged and malformed notifications are
//!   refused, never turned into an event;
//! - `canary`: no byte of the canary secret the configuration holds shows
//!   in any request, result or error.
//!
//! A guest cannot read a secret field (it holds handles only), and every
//! step runs in a fresh instance whose clock and randomness come from the
//! call context, so a leak or non-determinism means one of two things: a
//! field that is a secret declared as text (the describe check names such
//! fields, and the canary goes into them too), or a host that lets
//! something through. Both checks are for those.
//!
//! A merchant configuration is made from the schema (defaults, digits for
//! text, canaries for secrets) unless the author gives one. An operation
//! that refuses it is `skip`, naming the refusal: give `--config` for the
//! deeper checks.

use crate::contract::{
    AdapterError, AdapterInfo, CallContext, CloseRequest, Exchange, FieldKind, HttpMethod,
    HttpResponse, InboundHttp, Money, OrderRef, OrderRequest, Payee, Payer, PayoutQueryRequest,
    PayoutRef, PayoutRequest, QueryRequest, RefundQueryRequest, RefundRequest,
};
use crate::error::CallError;
use crate::merchant::{FieldValue, MerchantConfig};
use crate::runtime::{LoadedAdapter, OfflineStep, Operation, Output, Runtime};
use serde::Serialize;

/// The secret value every secret field gets unless the author configures
/// one: long and unlikely, so any byte run of it showing up is a leak.
pub const CANARY: &str = "cnry-7Qx2pL9vTz4mWk8sRb3nYh6dJf1c";

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    /// `pass`, `fail` or `skip`.
    pub result: &'static str,
    pub detail: String,
}

impl Check {
    fn new(name: impl Into<String>, result: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            result,
            detail: detail.into(),
        }
    }
}

/// The whole report; `passed` when no line failed and it checked something
/// beyond `describe`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub adapter: String,
    pub version: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.result != "fail") && !self.inconclusive()
    }

    /// Every operation's check was skipped (each refused the configuration
    /// it was given), so nothing but `describe` was checked.
    pub fn inconclusive(&self) -> bool {
        let operations = || self.checks.iter().filter(|c| c.name.contains('/'));
        operations().any(|c| c.result == "skip") && operations().all(|c| c.result == "skip")
    }

    /// The report as an aligned table.
    pub fn table(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = format!("adapter {} {}\n", self.adapter, self.version);
        for c in &self.checks {
            out.push_str(&format!(
                "{:<width$}  {:<4}  {}\n",
                c.name, c.result, c.detail
            ));
        }
        let failed = self.checks.iter().filter(|c| c.result == "fail").count();
        out.push_str(&if failed == 0 && self.inconclusive() {
            "conformance: inconclusive: every operation was skipped (each refused the configuration); \
             give one it accepts with --config\n"
                .to_string()
        } else if failed == 0 {
            "conformance: passed\n".to_string()
        } else {
            format!("conformance: {failed} check(s) failed\n")
        });
        out
    }
}

/// A configuration from `info`'s schema: defaults where given; for the
/// other required fields digits for text, the canary for secrets, an
/// `.invalid` URL for URLs. Optional fields without a default stay unset,
/// as a first configuration leaves them.
pub fn synthetic_config(info: &AdapterInfo) -> MerchantConfig {
    let mut config = MerchantConfig::new("conformance");
    for f in &info.config_schema {
        if !f.required && f.default.is_none() {
            continue;
        }
        let value = match (&f.kind, &f.default) {
            (FieldKind::Secret, _) => FieldValue::secret(CANARY),
            // A secret declared as text: the describe check fails it, and
            // the canary shows where its value goes.
            (FieldKind::Text, None) if looks_secret(&f.name) => FieldValue::text(CANARY),
            (_, Some(d)) => FieldValue::text(d.clone()),
            (FieldKind::Url, None) => FieldValue::text("https://provider.invalid"),
            (FieldKind::Text, None) => FieldValue::text("1900000109"),
        };
        config.fields.insert(f.name.clone(), value);
    }
    config
}

/// Whether a config field's name says it holds a secret: it ends in a
/// credential's word (`api_key`, `client_secret`, `access_token`,
/// `password`, `client_cert`) and is not a public one
/// (`wechatpay_public_key`; `key_id` and `callback_key_preference` end in
/// another word).
pub fn looks_secret(name: &str) -> bool {
    let words: Vec<String> = name
        .split(['_', '-'])
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let last = words.last().map(String::as_str).unwrap_or_default();
    [
        "key",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "token",
        "cert",
        "credential",
        "credentials",
    ]
    .contains(&last)
        && !words.iter().any(|w| w == "public")
}

/// Runs every check on `adapter` with `config` (see [`synthetic_config`]).
pub async fn check(rt: &Runtime, adapter: &LoadedAdapter, config: &MerchantConfig) -> Report {
    check_in(rt, adapter, config, call_context()).await
}

/// [`check`], with each operation's second (determinism) run given
/// `second` instead of the same call context. A guest has no other source
/// of variation, so this is how a test shows the determinism check
/// catching one a leaky host would give it.
#[doc(hidden)]
pub async fn check_with_second_context(
    rt: &Runtime,
    adapter: &LoadedAdapter,
    config: &MerchantConfig,
    second: CallContext,
) -> Report {
    check_in(rt, adapter, config, second).await
}

async fn check_in(
    rt: &Runtime,
    adapter: &LoadedAdapter,
    config: &MerchantConfig,
    second: CallContext,
) -> Report {
    let info = &adapter.info;
    let mut checks = describe_checks(info);
    checks.push(Check::new(
        "imports",
        "pass",
        "only the contract's (a component importing more does not load)",
    ));
    let mut seen = Vec::new();
    for (name, op) in operations(info) {
        checks.extend(check_operation(rt, adapter, config, &name, op, &second, &mut seen).await);
    }
    checks.extend(check_notify(rt, adapter, config, &mut seen).await);
    let leaked = seen.iter().find(|text| leaks(text, config));
    checks.push(match leaked {
        None => Check::new(
            "canary",
            "pass",
            format!(
                "no part of a secret in {} requests, results and errors",
                seen.len()
            ),
        ),
        Some(text) => Check::new(
            "canary",
            "fail",
            format!(
                "a secret's bytes appear in what the adapter returned: {}",
                crate::merchant::Masker::new(secret_values(config)).mask(text)
            ),
        ),
    });
    Report {
        adapter: info.name.clone(),
        version: info.version.clone(),
        checks,
    }
}

/// The values a leak would show: every secret, and the text of fields
/// whose names say they are secrets.
fn secret_values(config: &MerchantConfig) -> Vec<secrecy::SecretString> {
    config
        .fields
        .iter()
        .filter_map(|(name, v)| match v {
            FieldValue::Secret(s) => Some(s.clone()),
            FieldValue::Text(t) if looks_secret(name) => {
                Some(secrecy::SecretString::from(t.clone()))
            }
            FieldValue::Text(_) => None,
        })
        .collect()
}

/// Whether `text` holds 12 or more consecutive bytes of a secret.
fn leaks(text: &str, config: &MerchantConfig) -> bool {
    use secrecy::ExposeSecret;
    secret_values(config).iter().any(|s| {
        let s = s.expose_secret().as_bytes();
        s.len() >= 12
            && s.windows(12)
                .any(|w| text.as_bytes().windows(12).any(|t| t == w))
    })
}

fn describe_checks(info: &AdapterInfo) -> Vec<Check> {
    let mut problems = Vec::new();
    let slug = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !slug(&info.name) {
        problems.push(format!(
            "name `{}` is not a slot name (letters, digits, `-`, `_`)",
            info.name
        ));
    }
    if !is_semver(&info.version) {
        problems.push(format!("version `{}` is not semver (1.2.3)", info.version));
    }
    if info.methods.is_empty() {
        problems.push("no payment methods".into());
    }
    let mut methods = info.methods.clone();
    methods.sort();
    methods.dedup();
    if methods.len() != info.methods.len() {
        problems.push("a method is listed twice".into());
    }
    for c in &info.currencies {
        if c.len() != 3
            || !c.bytes().all(|b| b.is_ascii_uppercase())
            || payhost_sdk::money::exponent(c).is_err()
        {
            problems.push(format!("currency `{c}` is not an ISO 4217 code"));
        }
    }
    if info.egress_hosts.is_empty() {
        problems.push("no egress hosts: the adapter could reach no provider".into());
    }
    let mut names: Vec<&str> = info.config_schema.iter().map(|f| f.name.as_str()).collect();
    names.sort();
    names.dedup();
    if names.len() != info.config_schema.len() {
        problems.push("a config field is declared twice".into());
    }
    for f in &info.config_schema {
        // A default would be published with the adapter: not a secret.
        if f.kind == FieldKind::Text && f.default.is_none() && looks_secret(&f.name) {
            problems.push(format!(
                "field `{}` looks like a secret but is declared text: its value would reach the adapter, its requests and its logs in the clear",
                f.name
            ));
        }
        if f.kind == FieldKind::Secret && f.default.is_some() {
            problems.push(format!(
                "secret field `{}` has a default, which would be a published secret",
                f.name
            ));
        }
    }
    for r in &info.field_rules {
        if r.min_length > r.max_length {
            problems.push(format!(
                "field rule `{}`: min-length is above max-length",
                r.field
            ));
        }
        for m in &r.required_for {
            if m != "*" && !info.methods.contains(m) {
                problems.push(format!(
                    "field rule `{}` requires it for `{m}`, which is not a method",
                    r.field
                ));
            }
        }
    }
    vec![if problems.is_empty() {
        Check::new(
            "describe",
            "pass",
            format!(
                "contract {}, {} methods, {} currencies, {} config fields",
                info.contract_version,
                info.methods.len(),
                info.currencies.len(),
                info.config_schema.len()
            ),
        )
    } else {
        Check::new("describe", "fail", problems.join("; "))
    }]
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

const ORDER_NO: &str = "CONFORM0001";

fn order_ref() -> OrderRef {
    OrderRef {
        merchant_order_no: ORDER_NO.into(),
        provider_trade_no: Some("PT0000000001".into()),
        channel_transaction_id: None,
    }
}

fn money(info: &AdapterInfo, minor: u64) -> Money {
    Money {
        minor,
        currency: info
            .currencies
            .first()
            .cloned()
            .unwrap_or_else(|| "CNY".into()),
    }
}

/// Each operation the adapter has, with an input a merchant could send.
fn operations(info: &AdapterInfo) -> Vec<(String, Operation)> {
    let mut ops: Vec<(String, Operation)> = info
        .methods
        .iter()
        .map(|m| {
            (
                format!("unified-order[{m}]"),
                Operation::UnifiedOrder(OrderRequest {
                    merchant_order_no: ORDER_NO.into(),
                    amount: money(info, 100),
                    description: "Conformance check".into(),
                    method: m.clone(),
                    payer: Payer {
                        app_id: None,
                        openid: Some("oCONFORMANCE00000000000000000".into()),
                        client_ip: Some("203.0.113.7".into()),
                    },
                    expires_at: None,
                    attach: None,
                }),
            )
        })
        .collect();
    ops.push((
        "query".into(),
        Operation::Query(QueryRequest { order: order_ref() }),
    ));
    if info.capabilities.close {
        ops.push((
            "close".into(),
            Operation::Close(CloseRequest { order: order_ref() }),
        ));
    }
    ops.push((
        "refund".into(),
        Operation::Refund(RefundRequest {
            order: order_ref(),
            refund_no: "CONFORMR001".into(),
            amount: money(info, 50),
            order_amount: money(info, 100),
            reason: None,
        }),
    ));
    if info.capabilities.refund_query {
        ops.push((
            "refund-query".into(),
            Operation::RefundQuery(RefundQueryRequest {
                order: order_ref(),
                refund_no: "CONFORMR001".into(),
                provider_refund_id: Some("PR0000000001".into()),
            }),
        ));
    }
    if info.capabilities.payouts {
        let payout = PayoutRef {
            merchant_payout_no: "CONFORMP001".into(),
            provider_payout_id: None,
        };
        // Payouts are in the provider's home currency where it takes one.
        let mut amount = money(info, 100);
        if info.currencies.iter().any(|c| c == "CNY") {
            amount.currency = "CNY".into();
        }
        ops.push((
            "payout".into(),
            Operation::Payout(PayoutRequest {
                merchant_payout_no: payout.merchant_payout_no.clone(),
                amount,
                payee: Payee {
                    app_id: "wxCONFORMANCE00001".into(),
                    openid: "oCONFORMANCE00000000000000000".into(),
                    real_name: None,
                },
                remark: "Conformance check".into(),
                scene: None,
            }),
        ));
        ops.push((
            "payout-query".into(),
            Operation::PayoutQuery(PayoutQueryRequest { payout }),
        ));
    }
    ops
}

/// The call context every step of the check runs with.
pub fn call_context() -> CallContext {
    CallContext {
        request_id: "conformance".into(),
        timestamp: 1_767_225_600,
        seed: 7,
        notify_url: "https://payhost.invalid/v1/notify/conformance/conformance".into(),
    }
}

/// Provider answers a broken or hostile provider sends: each must end in
/// the contract's error (or another request), never a trap or a success.
fn garbage() -> Vec<(&'static str, HttpResponse)> {
    let answer = |status: u16, body: Vec<u8>| HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/octet-stream".into())],
        body,
    };
    use sha2::Digest as _;
    // Fixed, so a run can be repeated.
    let random: Vec<u8> = (0u8..16).flat_map(|i| sha2::Sha256::digest([i])).collect();
    vec![
        ("an empty 200", answer(200, Vec::new())),
        ("random bytes", answer(200, random)),
        (
            "truncated XML",
            answer(
                200,
                b"<xml><return_code><![CDATA[SUCCESS]]></return_code><result_co".to_vec(),
            ),
        ),
        (
            "truncated JSON",
            answer(
                200,
                br#"{"code":"SUCCESS","status":"PAID","data":{"amount":"#.to_vec(),
            ),
        ),
        (
            "JSON of the wrong types",
            answer(
                200,
                br#"{"amount":"many","status":7,"trade_state":[],"data":null,"code":{}}"#.to_vec(),
            ),
        ),
        (
            "JSON nested 10,000 deep",
            answer(200, {
                let mut b = vec![b'['; 10_000];
                b.extend(vec![b']'; 10_000]);
                b
            }),
        ),
        ("1 MiB of one letter", answer(200, vec![b'A'; 1024 * 1024])),
        (
            "a 500 page",
            answer(
                500,
                b"<html><body>Internal Server Error</body></html>".to_vec(),
            ),
        ),
    ]
}

fn outcome(r: &Result<OfflineStep, CallError>) -> String {
    match r {
        Ok(OfflineStep::Send(req)) => {
            // The query may carry a signature; the origin and path say enough.
            let url = req.url.split('?').next().unwrap_or_default();
            format!("asks for {:?} {url}", req.method)
        }
        Ok(OfflineStep::Done(Ok(_))) => "succeeds".into(),
        Ok(OfflineStep::Done(Err(e))) => format!("answers the contract error {e:?}"),
        Err(e) => format!("fails: {e}"),
    }
}

/// What `seen` (for the canary check) gets from one step.
fn texts(r: &Result<OfflineStep, CallError>) -> Vec<String> {
    match r {
        Ok(OfflineStep::Send(req)) => vec![
            req.url.clone(),
            format!("{:?}", req.headers),
            String::from_utf8_lossy(&req.body).into_owned(),
        ],
        Ok(OfflineStep::Done(d)) => vec![format!("{d:?}")],
        Err(e) => vec![e.to_string()],
    }
}

/// A failure of the sandbox kind: the component broke a bound.
fn broke_a_bound(e: &CallError) -> bool {
    !matches!(e, CallError::InvalidConfig(_) | CallError::Adapter { .. })
}

async fn check_operation(
    rt: &Runtime,
    adapter: &LoadedAdapter,
    config: &MerchantConfig,
    name: &str,
    op: Operation,
    second: &CallContext,
    seen: &mut Vec<String>,
) -> Vec<Check> {
    let step = |exchanges: Vec<Exchange>, call: CallContext| {
        let op = op.clone();
        async move { rt.step_offline(adapter, config, call, op, &exchanges).await }
    };
    let first = step(Vec::new(), call_context()).await;
    let again = step(Vec::new(), second.clone()).await;
    seen.extend(texts(&first));
    let first_step = format!("{name}/first-step");
    let request = match (&first, &again) {
        (Err(e), _) if broke_a_bound(e) => {
            return vec![Check::new(first_step, "fail", outcome(&first))];
        }
        (a, b) if outcome(a) != outcome(b) || texts(a) != texts(b) => {
            return vec![Check::new(
                first_step,
                "fail",
                format!(
                    "not deterministic: the same inputs gave `{}`, then `{}`",
                    outcome(a),
                    outcome(b)
                ),
            )];
        }
        (Ok(OfflineStep::Send(req)), _) => req.clone(),
        (Ok(OfflineStep::Done(Ok(out))), _) => {
            return vec![Check::new(
                first_step,
                "pass",
                format!("deterministic; answers without a request: {}", summary(out)),
            )];
        }
        (Ok(OfflineStep::Done(Err(AdapterError::Unsupported(m)))), _) => {
            return vec![Check::new(first_step, "pass", format!("unsupported: {m}"))];
        }
        (other, _) => {
            return vec![Check::new(
                first_step,
                "skip",
                format!(
                    "{} before any request, with this configuration; give `--config` to check further",
                    outcome(other)
                ),
            )];
        }
    };
    let mut checks = vec![Check::new(
        first_step,
        "pass",
        format!("deterministic; {}", outcome(&first)),
    )];
    let mut problems = Vec::new();
    for (what, answer) in garbage() {
        let exchanges = vec![Exchange {
            request: request.clone(),
            response: answer.clone(),
        }];
        // Further requests get the same garbage, up to the step limit.
        let verdict = match drive(rt, adapter, config, &op, exchanges, &answer, seen).await {
            Driven::Done(Ok(out)) => Some(format!("succeeds on it: {}", summary(&out))),
            Driven::Done(Err(_)) => None,
            Driven::Refused(v) => v,
        };
        if let Some(v) = verdict {
            problems.push(format!("{what}: {v}"));
        }
    }
    checks.push(if problems.is_empty() {
        Check::new(
            format!("{name}/garbage"),
            "pass",
            format!(
                "{} garbage answers, each the contract's error",
                garbage().len()
            ),
        )
    } else {
        Check::new(format!("{name}/garbage"), "fail", problems.join("; "))
    });
    checks
}

/// How [`drive`] ended.
enum Driven {
    /// The operation's answer.
    Done(Result<Output, AdapterError>),
    /// What the component did wrong (a bound broken, requests without
    /// end), or `None` for a refusal that is the contract's error.
    Refused(Option<String>),
}

/// Runs `op` from `exchanges` to its end, answering every further request
/// with `answer`, up to the step limit; `seen` gets all it returned.
async fn drive(
    rt: &Runtime,
    adapter: &LoadedAdapter,
    config: &MerchantConfig,
    op: &Operation,
    mut exchanges: Vec<Exchange>,
    answer: &HttpResponse,
    seen: &mut Vec<String>,
) -> Driven {
    loop {
        let r = rt
            .step_offline(adapter, config, call_context(), op.clone(), &exchanges)
            .await;
        seen.extend(texts(&r));
        match r {
            Ok(OfflineStep::Send(next)) if exchanges.len() < rt.config().max_steps => {
                exchanges.push(Exchange {
                    request: next,
                    response: answer.clone(),
                });
            }
            Ok(OfflineStep::Send(_)) => {
                return Driven::Refused(Some("asks for requests without end".into()));
            }
            Ok(OfflineStep::Done(d)) => return Driven::Done(d),
            Err(e) if broke_a_bound(&e) => return Driven::Refused(Some(e.to_string())),
            Err(_) => return Driven::Refused(None),
        }
    }
}

fn summary(out: &Output) -> String {
    match out {
        Output::OrderCreated(_) => "an order created".into(),
        Output::TradeStatus(t) => format!("trade state {:?}", t.state),
        Output::RefundStatus(r) => format!("refund state {:?}", r.state),
        Output::Notify(n) => format!("{} notification events", n.events.len()),
        Output::PayoutStatus(p) => format!("payout state {:?}", p.state),
        Output::ContractSigning(_) => "a signing action".into(),
        Output::ContractStatus(c) => format!("contract state {:?}", c.state),
        Output::DeductionStatus(d) => format!("deduction state {:?}", d.state),
    }
}

/// Notifications no provider signed: each must be refused.
fn forged_notifications() -> Vec<(&'static str, InboundHttp)> {
    let inbound = |content_type: &str, body: Vec<u8>| InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/conformance/conformance".into(),
        query: String::new(),
        headers: vec![("content-type".into(), content_type.into())],
        body,
    };
    vec![
        ("an empty body", inbound("text/plain", Vec::new())),
        (
            "an unsigned WeChat-style payment",
            inbound(
                "text/xml",
                format!(
                    "<xml><return_code>SUCCESS</return_code><result_code>SUCCESS</result_code>\
                     <out_trade_no>{ORDER_NO}</out_trade_no><total_fee>100</total_fee>\
                     <transaction_id>42</transaction_id><sign>00</sign></xml>"
                )
                .into_bytes(),
            ),
        ),
        (
            "an unsigned JSON payment",
            inbound(
                "application/json",
                format!(
                    r#"{{"status":"PAID","trade_state":"SUCCESS","out_trade_no":"{ORDER_NO}","order_no":"{ORDER_NO}","amount":100,"sign":"00"}}"#
                )
                .into_bytes(),
            ),
        ),
        ("truncated JSON", inbound("application/json", br#"{"event_type":"TRANSACTION.SUCC"#.to_vec())),
        ("JSON nested 10,000 deep", inbound("application/json", {
            let mut b = vec![b'['; 10_000];
            b.extend(vec![b']'; 10_000]);
            b
        })),
        ("a form with an empty key", inbound("application/x-www-form-urlencoded", b"=&&==%ZZ".to_vec())),
    ]
}

async fn check_notify(
    rt: &Runtime,
    adapter: &LoadedAdapter,
    config: &MerchantConfig,
    seen: &mut Vec<String>,
) -> Vec<Check> {
    let mut problems = Vec::new();
    for (what, inbound) in forged_notifications() {
        // A notification may be confirmed by asking the provider: it
        // answers garbage too.
        let confirm = HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: b"{\"unexpected\":true}".to_vec(),
        };
        let op = Operation::ParseNotify(inbound);
        let verdict = match drive(rt, adapter, config, &op, Vec::new(), &confirm, seen).await {
            Driven::Done(Ok(Output::Notify(n))) if !n.events.is_empty() => {
                Some(format!("turned it into {} event(s)", n.events.len()))
            }
            Driven::Done(_) => None,
            Driven::Refused(v) => v,
        };
        if let Some(v) = verdict {
            problems.push(format!("{what}: {v}"));
        }
    }
    vec![if problems.is_empty() {
        Check::new(
            "parse-notify/forged",
            "pass",
            format!(
                "{} forged or malformed notifications, none became an event",
                forged_notifications().len()
            ),
        )
    } else {
        Check::new("parse-notify/forged", "fail", problems.join("; "))
    }]
}

#[cfg(test)]
mod tests {
    use super::{Check, Report, looks_secret};

    fn report(lines: &[(&str, &'static str)]) -> Report {
        Report {
            adapter: "acme".into(),
            version: "0.1.0".into(),
            checks: lines
                .iter()
                .map(|(name, result)| Check::new(*name, result, ""))
                .collect(),
        }
    }

    #[test]
    fn a_report_whose_every_operation_was_skipped_does_not_pass() {
        let skipped = report(&[
            ("describe", "pass"),
            ("query/first-step", "skip"),
            ("parse-notify/forged", "skip"),
            ("canary", "pass"),
        ]);
        assert!(skipped.inconclusive());
        assert!(!skipped.passed());
        assert!(
            skipped
                .table()
                .ends_with("give one it accepts with --config\n"),
            "{}",
            skipped.table()
        );
        // One operation checked is enough; skips beside it are reported.
        let partly = report(&[
            ("describe", "pass"),
            ("query/first-step", "pass"),
            ("refund/first-step", "skip"),
        ]);
        assert!(!partly.inconclusive());
        assert!(partly.passed());
        assert!(partly.table().ends_with("conformance: passed\n"));
        let failed = report(&[("describe", "pass"), ("query/first-step", "fail")]);
        assert!(!failed.passed());
    }

    #[test]
    fn credential_names_look_secret_and_public_ones_do_not() {
        for name in [
            "key",
            "api_key",
            "api_v3_key",
            "client_secret",
            "password",
            "access-token",
            "private_key",
            "client_cert",
            "API_KEY",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in [
            "mid",
            "mch_id",
            "wechatpay_public_key",
            "wechatpay_public_key_id",
            "key_id",
            "base_url",
            "monkey",
            "keystone",
            "store_name",
            "callback_key_preference",
            "key_source",
        ] {
            assert!(!looks_secret(name), "{name}");
        }
    }
}
