//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the
//! handlers' annotations and types, completed here with what annotations
//! cannot say, and narrowed to the running configuration, so that what it
//! allows is what the server accepts:
//!
//! - errors are `application/problem+json` [`Problem`](super::problem::Problem)s;
//! - every authenticated operation documents 401 (with `WWW-Authenticate`)
//!   and the admin API 403;
//! - the provider notification endpoint takes raw bytes, by `POST` or `GET`;
//! - order and refund numbers carry the server's pattern wherever they
//!   appear, `Idempotency-Key` its rule;
//! - `currency`, `method` and the amount cap list what the configured
//!   merchants take;
//! - `webhooks` describes each event posted to a merchant's `callback_url`.

use super::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "payhost", description = "A payment front over sandboxed provider adapters. Amounts are integers of minor units next to their `currency`; times are RFC 3339 strings in UTC with milliseconds. Every error is an RFC 9457 problem document (`application/problem+json`) with a stable `code` and the `request_id`. Webhooks (see `webhooks`) carry the same `Payment` and `Refund` objects as the API."),
    paths(
        super::payments::create, super::payments::get, super::payments::create_refund,
        super::payments::list_refunds, super::payments::get_refund,
        super::payouts::create, super::payouts::get,
        super::contracts::create, super::contracts::get, super::contracts::terminate,
        super::contracts::resume, super::contracts::create_deduction,
        super::contracts::get_deduction,
        super::notify::receive, super::events::list,
        super::health::healthz, super::health::readyz, super::health::metrics,
        super::admin::list, super::admin::show, super::admin::versions,
        super::admin::upload, super::admin::rollback, super::admin::events,
    ),
    components(schemas(
        super::payments::CreatePayment, super::payments::PayerInput,
        super::payments::CreateRefund,
        super::payouts::CreatePayout, super::payouts::PayeeInput,
        super::contracts::CreateContract, super::contracts::ContractPayerInput,
        super::contracts::TerminateContract, super::contracts::CreateDeduction,
        crate::resources::Contract, crate::resources::ContractPayerOut,
        crate::resources::Deduction, crate::resources::ContractEventData,
        crate::resources::DeductionEventData, crate::resources::ContractStateSchema,
        crate::resources::DeductionStateSchema,
        crate::resources::Payout, crate::resources::PayeeOut, crate::resources::PayoutEventData,
        crate::resources::PayoutStateSchema, crate::resources::EventPayload,
        crate::resources::Payment, crate::resources::Refund, crate::resources::EventData,
        crate::resources::Timestamp, crate::resources::PaymentState,
        crate::resources::RefundStateSchema,
        crate::webhooks::WebhookEvent, crate::webhooks::EventType,
        super::events::EventList, super::events::EventView, super::events::Delivery,
        super::events::DeliveryStatus,
        super::problem::Problem,
        super::admin::AdapterList, super::admin::AdapterView, super::admin::Pin,
        super::admin::VersionList, super::admin::RollbackRequest, super::admin::OperatorEventList,
        crate::provider_health::OperatorEvent, crate::registry::VersionView,
    )),
    modifiers(&Security),
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "merchant_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A merchant API key"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The operator's admin token (`server.admin_token`)"))
                    .build(),
            ),
        );
    }
}

/// What the running configuration accepts, where the document narrows a
/// field to it.
#[derive(Debug, Default, Clone)]
pub struct Accepted {
    /// The currencies of the configured merchants.
    pub currencies: Vec<String>,
    /// The payment methods of their adapters' active versions.
    pub methods: Vec<String>,
    /// The largest `limits.per_payment_minor` of any merchant.
    pub max_amount: Option<u64>,
    /// The field rules of their adapters' active versions (contract 0.3).
    pub field_rules: Vec<crate::contract::FieldRule>,
    /// The payout currencies of the configured merchants.
    pub payout_currencies: Vec<String>,
    /// Their deduction currencies (`[merchants.contracts] currency`).
    pub deduction_currencies: Vec<String>,
}

impl Accepted {
    pub fn of(state: &AppState) -> Self {
        let mut currencies: Vec<String> = state
            .merchants
            .values()
            .flat_map(|m| m.currencies.clone())
            .collect();
        let mut methods: Vec<String> = state
            .merchants
            .values()
            .filter_map(|m| state.registry.active(&m.adapter))
            .flat_map(|a| a.info().methods.clone())
            .collect();
        for list in [&mut currencies, &mut methods] {
            list.sort();
            list.dedup();
        }
        let max_amount = state
            .merchants
            .values()
            .map(|m| m.limits.amounts.per_payment_minor)
            .max();
        let field_rules = state
            .merchants
            .values()
            .filter_map(|m| state.registry.active(&m.adapter))
            .flat_map(|a| {
                let info = a.info();
                // `*` is every method of this adapter, not of every adapter.
                let mut rules = info.field_rules.clone();
                for r in &mut rules {
                    if r.required_for.iter().any(|m| m == "*") {
                        r.required_for = info.methods.clone();
                    }
                }
                rules
            })
            .collect();
        let mut payout_currencies: Vec<String> = state
            .merchants
            .values()
            .map(|m| m.payouts.currency.clone())
            .collect();
        payout_currencies.sort();
        payout_currencies.dedup();
        let mut deduction_currencies: Vec<String> = state
            .merchants
            .values()
            .map(|m| m.contracts.currency.clone())
            .collect();
        deduction_currencies.sort();
        deduction_currencies.dedup();
        Accepted {
            deduction_currencies,
            currencies,
            methods,
            max_amount,
            field_rules,
            payout_currencies,
        }
    }
}

/// `GET /openapi.json`
pub async fn serve(State(state): State<AppState>) -> Json<Value> {
    Json(document(&Accepted::of(&state)))
}

/// The document as served.
pub fn document(accepted: &Accepted) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    problems_as_problem_json(&mut doc);
    document_auth_failures(&mut doc);
    notify_takes_raw_bytes(&mut doc);
    upload_takes_raw_bytes(&mut doc);
    number_patterns(&mut doc);
    not_blank_texts(&mut doc);
    client_ip_is_an_address(&mut doc);
    narrow_to(&mut doc, accepted);
    doc["webhooks"] = webhooks();
    doc
}

/// The schema of a merchant order number (`max` 32) or refund number (64):
/// what `valid_number` in [`super::payments`] accepts.
/// The punctuation an order or refund number may hold (with letters and
/// digits), as the server checks it.
const NUMBER_PUNCTUATION: &str = "_|*-";

fn number_schema(max: u64) -> Value {
    json!({
        "type": "string", "minLength": 1, "maxLength": max,
        "pattern": "^[A-Za-z0-9_|*-]+$",
    })
}

/// `Idempotency-Key` as the server reads it: visible ASCII (spaces and
/// tabs inside allowed; surrounding quotes, as in the IETF draft's
/// structured string, are removed), at most 255 characters.
fn idempotency_key_schema() -> Value {
    json!({
        "type": "string", "minLength": 1, "maxLength": 255,
        "pattern": "^[\\t -~]*[!#-~][\\t -~]*$",
    })
}

fn operations(doc: &mut Value) -> impl Iterator<Item = (&String, &mut Map<String, Value>)> {
    doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.iter_mut())
        .flat_map(|(_, item)| item.as_object_mut().into_iter().flat_map(|m| m.iter_mut()))
        .filter_map(|(method, op)| Some((method, op.as_object_mut()?)))
}

fn problem_content() -> Value {
    json!({ "application/problem+json": {
        "schema": { "$ref": "#/components/schemas/Problem" } } })
}

/// utoipa writes every body as `application/json`; a Problem is sent as
/// `application/problem+json`.
fn problems_as_problem_json(doc: &mut Value) {
    for (_, op) in operations(doc) {
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        for response in responses.values_mut() {
            // Indexing a missing key would insert `null`; a response without
            // content must stay without.
            let Some(content) = response.get_mut("content") else {
                continue;
            };
            let is_problem = content["application/json"]["schema"]["$ref"]
                .as_str()
                .is_some_and(|r| r.ends_with("/Problem"));
            if is_problem {
                *content = problem_content();
            }
        }
    }
}

/// 401 on every authenticated operation, 403 on the admin API.
fn document_auth_failures(doc: &mut Value) {
    for (_, op) in operations(doc) {
        let schemes: Vec<String> = op
            .get("security")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .flat_map(|r| r.keys().cloned())
            .collect();
        if schemes.is_empty() {
            continue;
        }
        let responses = op
            .entry("responses")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("responses is an object");
        responses.insert(
            "401".into(),
            json!({
                "description": "No bearer credential, or one payhost does not know",
                "headers": { "WWW-Authenticate": {
                    "description": "`Bearer realm=\"payhost\"`",
                    "schema": { "type": "string" } } },
                "content": problem_content(),
            }),
        );
        if schemes.iter().any(|s| s == "admin_token") {
            responses.insert(
                "403".into(),
                json!({
                    "description": "A merchant API key (`forbidden`), or the admin API is disabled (`admin_disabled`)",
                    "content": problem_content(),
                }),
            );
        }
    }
}

/// The provider's notification is read verbatim (XML, JSON, a form...),
/// by `POST` or, for providers that call back with a query, `GET`; the
/// answer is the adapter's acknowledgement, verbatim.
fn notify_takes_raw_bytes(doc: &mut Value) {
    let item = &mut doc["paths"]["/v1/notify/{adapter}/{merchant}"];
    let Some(post) = item.get_mut("post") else {
        return;
    };
    let raw = json!({});
    post["requestBody"] = json!({
        "description": "The provider's notification, verbatim (any media type; at most `notify.max_body_bytes`)",
        "required": false,
        "content": {
            "application/octet-stream": raw, "text/xml": raw,
            "application/json": raw, "application/x-www-form-urlencoded": raw,
        },
    });
    post["responses"]["200"] = json!({
        "description": "The acknowledgement the provider expects, verbatim",
        "content": { "*/*": {} },
    });
    let mut get = post.clone();
    if let Some(get) = get.as_object_mut() {
        get.remove("requestBody");
        get.insert("operationId".into(), "receive_by_get".into());
    }
    item["get"] = get;
}

/// An upload is the component's bytes, whatever the content type says.
fn upload_takes_raw_bytes(doc: &mut Value) {
    if let Some(put) = doc["paths"]["/admin/adapters/{name}"].get_mut("put") {
        put["requestBody"]["content"] =
            json!({ "application/wasm": {}, "application/octet-stream": {} });
    }
}

/// Path parameters and request fields that carry an order or refund
/// number, and the `Idempotency-Key` header, get the server's rule.
fn number_patterns(doc: &mut Value) {
    for (_, op) in operations(doc) {
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for p in params {
            let schema = match p["name"].as_str() {
                Some("merchant_order_no") => number_schema(32),
                Some("refund_no") => number_schema(64),
                Some("payout_no" | "contract_no" | "deduction_no") => number_schema(32),
                Some("Idempotency-Key") => idempotency_key_schema(),
                // An adapter slot: what `registry::slot_of` accepts.
                Some("name") if p["in"] == "path" => json!({
                    "type": "string", "minLength": 1, "maxLength": 64,
                    "pattern": "^[A-Za-z0-9_-]+$",
                }),
                _ => continue,
            };
            p["schema"] = schema;
        }
    }
    let schemas = &mut doc["components"]["schemas"];
    schemas["CreatePayment"]["properties"]["merchant_order_no"] = number_schema(32);
    schemas["CreateRefund"]["properties"]["refund_no"] = number_schema(64);
    schemas["CreatePayout"]["properties"]["payout_no"] = number_schema(32);
    schemas["CreateContract"]["properties"]["contract_no"] = number_schema(32);
    schemas["CreateDeduction"]["properties"]["deduction_no"] = number_schema(32);
}

/// `currency` and `method` as enums of what is configured; `amount` capped
/// by the largest per-payment limit.
fn narrow_to(doc: &mut Value, accepted: &Accepted) {
    let create = &mut doc["components"]["schemas"]["CreatePayment"]["properties"];
    if !accepted.currencies.is_empty() {
        create["currency"]["enum"] = json!(accepted.currencies);
    }
    if !accepted.methods.is_empty() {
        create["method"]["enum"] = json!(accepted.methods);
    }
    // What every configured merchant's provider takes: the tightest rules.
    for rule in &accepted.field_rules {
        let schema = match rule.field.as_str() {
            "merchant_order_no" | "description" | "attach" => "CreatePayment",
            "refund_no" | "reason" => "CreateRefund",
            _ => continue,
        };
        // Order and refund numbers: the server's own characters as well.
        let server_allows = matches!(rule.field.as_str(), "merchant_order_no" | "refund_no")
            .then_some(NUMBER_PUNCTUATION);
        tighten(
            &mut doc["components"]["schemas"][schema]["properties"][rule.field.as_str()],
            rule,
            server_allows,
        );
    }
    let required = required_by_method(&accepted.field_rules);
    if !required.is_empty() {
        doc["components"]["schemas"]["CreatePayment"]["allOf"] = json!(required);
    }
    if !accepted.payout_currencies.is_empty() {
        doc["components"]["schemas"]["CreatePayout"]["properties"]["currency"]["enum"] =
            json!(accepted.payout_currencies);
    }
    if !accepted.deduction_currencies.is_empty() {
        doc["components"]["schemas"]["CreateDeduction"]["properties"]["currency"]["enum"] =
            json!(accepted.deduction_currencies);
    }
    let create = &mut doc["components"]["schemas"]["CreatePayment"]["properties"];
    if let Some(max) = accepted.max_amount {
        // JSON numbers past 2^53 lose precision in most clients; payhost
        // reads amounts as i64.
        create["amount"]["maximum"] = json!(max.min(i64::MAX as u64));
    }
}

/// What providers cannot go without (contract 0.4 `required-for`), as
/// JSON Schema conditions on `method`: `if method is M then FIELD is a
/// non-empty string`.
fn required_by_method(rules: &[crate::contract::FieldRule]) -> Vec<Value> {
    let mut conditions = Vec::new();
    for rule in rules {
        let then = match rule.field.strip_prefix("payer.") {
            Some(name) => json!({
                "required": ["payer"],
                "properties": { "payer": {
                    "required": [name],
                    "properties": { name: { "type": "string", "minLength": 1 } }
                } }
            }),
            None if matches!(rule.field.as_str(), "description" | "attach") => json!({
                "required": [rule.field],
                "properties": { rule.field.as_str(): { "type": "string", "minLength": 1 } }
            }),
            None => continue,
        };
        for method in &rule.required_for {
            let condition = json!({
                "if": { "properties": { "method": { "const": method } }, "required": ["method"] },
                "then": then,
            });
            if !conditions.contains(&condition) {
                conditions.push(condition);
            }
        }
    }
    conditions
}

/// Text a provider can carry and that is not blank, as the server checks
/// a payment's `description`.
const NOT_BLANK: &str = r"^[^\x00-\x1F\x7F-\x9F\uFFFE\uFFFF]*[^\s\x00-\x1F\x7F-\x9F\uFFFE\uFFFF][^\x00-\x1F\x7F-\x9F\uFFFE\uFFFF]*$";

/// The texts of payouts, contracts and deductions as `api::payouts` and
/// `api::contracts` check them: not blank, no control characters.
fn not_blank_texts(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    for (schema, field) in [
        ("CreatePayout", "remark"),
        ("CreatePayout", "scene"),
        ("PayeeInput", "app_id"),
        ("PayeeInput", "openid"),
        ("PayeeInput", "real_name"),
        ("CreateContract", "plan_id"),
        ("CreateContract", "display_name"),
        ("CreateContract", "return_url"),
        ("ContractPayerInput", "app_id"),
        ("ContractPayerInput", "openid"),
        ("CreateDeduction", "description"),
        ("TerminateContract", "reason"),
    ] {
        schemas[schema]["properties"][field]["pattern"] = json!(NOT_BLANK);
    }
}

/// `client_ip` fields as the server checks them: an IPv4 or IPv6 address.
fn client_ip_is_an_address(doc: &mut Value) {
    for schema in ["PayerInput", "ContractPayerInput", "CreateDeduction"] {
        client_ip_of(&mut doc["components"]["schemas"][schema]["properties"]["client_ip"]);
    }
}

fn client_ip_of(ip: &mut Value) {
    let string = match ip.get_mut("anyOf").and_then(Value::as_array_mut) {
        Some(cases) => match cases.iter_mut().find(|c| c["type"] == "string") {
            Some(c) => c,
            None => return,
        },
        None => ip,
    };
    // Formats constrain strings only, so a `null` still passes.
    string["anyOf"] = json!([{ "format": "ipv4" }, { "format": "ipv6" }]);
}

/// `schema` (a string property, or `anyOf` with `null` for an optional
/// one) limited further by an adapter's `rule`.
fn tighten(schema: &mut Value, rule: &crate::contract::FieldRule, server_allows: Option<&str>) {
    let string = match schema.get_mut("anyOf").and_then(Value::as_array_mut) {
        Some(cases) => match cases.iter_mut().find(|c| c["type"] == "string") {
            Some(c) => c,
            None => return,
        },
        None => schema,
    };
    let max = string["maxLength"]
        .as_u64()
        .unwrap_or(u64::MAX)
        .min(rule.max_length.into());
    let min = string["minLength"]
        .as_u64()
        .unwrap_or(0)
        .max(rule.min_length.into());
    string["maxLength"] = json!(max);
    string["minLength"] = json!(min);
    if let Some(allowed) = &rule.allowed {
        let class: String = allowed
            .chars()
            .filter(|c| server_allows.is_none_or(|s| s.contains(*c)))
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c.to_string()
                } else {
                    format!("\\{c}")
                }
            })
            .collect();
        string["pattern"] = json!(format!("^[A-Za-z0-9{class}]*$"));
    }
}

/// OpenAPI 3.1 `webhooks`: one entry per event type, each a signed POST
/// of a [`WebhookEvent`](crate::webhooks::WebhookEvent).
fn webhooks() -> Value {
    let header = |name: &str, description: &str| {
        json!({ "name": name, "in": "header", "required": true,
                "description": description, "schema": { "type": "string" } })
    };
    let parameters = json!([
        header("webhook-id", "The event's `id`; the same on every retry"),
        header("webhook-timestamp", "Unix seconds of this attempt"),
        header(
            "webhook-signature",
            "`v1,<base64 HMAC-SHA256>` over `id.timestamp.body` with the merchant's `whsec_` secret (Standard Webhooks)"
        ),
    ]);
    let events = [
        (
            "payment.paid",
            "The payer paid. `paid_after_close` says whether payhost had closed or failed the order first.",
        ),
        ("payment.closed", "The order was closed unpaid."),
        ("payment.failed", "The payment failed."),
        (
            "payment.provider_mismatch",
            "The provider stated something that contradicts the order (`reason`, `reported`); nothing was changed.",
        ),
        ("refund.succeeded", "A refund was paid out; `refund` is it."),
        ("refund.failed", "A refund failed; `refund` is it."),
        (
            "refund.provider_mismatch",
            "The provider stated something about a refund that contradicts it; nothing was changed.",
        ),
        (
            "payout.succeeded",
            "The payee has the money; `payout` is it. `previous_state` is set when payhost had recorded it failed or cancelled.",
        ),
        (
            "payout.failed",
            "A payout failed or was cancelled (`payout.state`, `payout.failure_reason`); no money moved. Pay again with a new number.",
        ),
        (
            "payout.provider_mismatch",
            "The provider stated something about a payout that contradicts it (`reason`, `reported`); nothing was changed.",
        ),
        (
            "contract.signed",
            "The payer signed; `contract` is it, `active`. Deductions may be made.",
        ),
        (
            "contract.terminated",
            "The contract ended (the payer, the merchant or the provider; `contract.termination_reason`). No deduction can be made under it again.",
        ),
        (
            "contract.paused",
            "payhost stopped deducting after consecutive failed deductions (`contract.pause_reason`); resume it with `POST /v1/contracts/{contract_no}/resume`.",
        ),
        (
            "contract.provider_mismatch",
            "The provider stated something about a contract that contradicts it (a terminated contract reported active, another payer or plan); nothing was changed.",
        ),
        (
            "deduction.succeeded",
            "The payer was charged; `deduction` is it. `previous_state` is set when payhost had recorded it failed.",
        ),
        (
            "deduction.failed",
            "A deduction failed (`deduction.failure_reason`); nothing was charged. It counts towards the contract's pause.",
        ),
        (
            "deduction.provider_mismatch",
            "The provider stated something about a deduction that contradicts it (`reason`, `reported`); nothing was changed.",
        ),
    ];
    let mut out = Map::new();
    for (kind, description) in events {
        out.insert(
            kind.into(),
            json!({ "post": {
                "operationId": format!("webhook_{}", kind.replace('.', "_")),
                "summary": format!("`{kind}`"),
                "description": description,
                "parameters": parameters,
                "requestBody": { "required": true, "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/WebhookEvent" } } } },
                "responses": {
                    "2XX": { "description": "Received; anything else is retried with back-off" },
                },
            } }),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served() -> Value {
        document(&Accepted {
            currencies: vec!["CNY".into()],
            methods: vec!["wechat_mini_program".into(), "wechat_native".into()],
            max_amount: Some(5_000_000),
            field_rules: Vec::new(),
            payout_currencies: vec!["CNY".into()],
            deduction_currencies: vec!["CNY".into()],
        })
    }

    #[test]
    fn payouts_are_documented_with_the_servers_rules() {
        let doc = served();
        assert!(doc["paths"]["/v1/payouts"]["post"].is_object());
        assert!(doc["paths"]["/v1/payouts/{payout_no}"]["get"].is_object());
        let create = &doc["components"]["schemas"]["CreatePayout"]["properties"];
        assert_eq!(create["currency"]["enum"], json!(["CNY"]));
        assert_eq!(create["payout_no"], number_schema(32));
        assert_eq!(create["remark"]["pattern"], NOT_BLANK);
        let payee = &doc["components"]["schemas"]["PayeeInput"]["properties"];
        assert_eq!(payee["real_name"]["pattern"], NOT_BLANK);
        assert_eq!(payee["real_name"]["maxLength"], 64);
        let param = doc["paths"]["/v1/payouts/{payout_no}"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "payout_no")
            .unwrap()
            .clone();
        assert_eq!(param["schema"], number_schema(32));
        // The 422 of a limit is a problem document.
        assert!(
            doc["paths"]["/v1/payouts"]["post"]["responses"]["422"]["content"]
                ["application/problem+json"]
                .is_object()
        );
    }

    #[test]
    fn an_adapters_field_rules_tighten_the_request_schema() {
        let doc = document(&Accepted {
            field_rules: vec![crate::contract::FieldRule {
                field: "merchant_order_no".into(),
                min_length: 6,
                max_length: 32,
                allowed: Some("_-|*".into()),
                required_for: vec![],
            }],
            ..Accepted::default()
        });
        let no = &doc["components"]["schemas"]["CreatePayment"]["properties"]["merchant_order_no"];
        assert_eq!(
            (no["minLength"].as_u64(), no["maxLength"].as_u64()),
            (Some(6), Some(32))
        );
        let pattern = no["pattern"].as_str().unwrap();
        assert_eq!(pattern, "^[A-Za-z0-9_\\-\\|\\*]*$");
        // A provider allowing more than the server (WeChat's `@` in refund
        // numbers) cannot widen what the server takes.
        let doc = document(&Accepted {
            field_rules: vec![crate::contract::FieldRule {
                field: "refund_no".into(),
                min_length: 1,
                max_length: 64,
                allowed: Some("_-|*@".into()),
                required_for: vec![],
            }],
            ..Accepted::default()
        });
        let no = &doc["components"]["schemas"]["CreateRefund"]["properties"]["refund_no"];
        assert!(!no["pattern"].as_str().unwrap().contains('@'), "{no}");
    }

    #[test]
    fn fields_a_method_requires_are_required_for_that_method() {
        let doc = document(&Accepted {
            field_rules: vec![crate::contract::FieldRule {
                field: "payer.openid".into(),
                min_length: 1,
                max_length: 128,
                allowed: None,
                required_for: vec!["wechat_mini_program".into()],
            }],
            ..Accepted::default()
        });
        let all_of = doc["components"]["schemas"]["CreatePayment"]["allOf"]
            .as_array()
            .unwrap();
        assert_eq!(all_of.len(), 1);
        assert_eq!(
            all_of[0]["if"]["properties"]["method"]["const"],
            "wechat_mini_program"
        );
        assert_eq!(
            all_of[0]["then"]["properties"]["payer"]["required"],
            json!(["openid"])
        );
        // Nothing required: no condition.
        assert!(served()["components"]["schemas"]["CreatePayment"]["allOf"].is_null());
        let ip =
            served()["components"]["schemas"]["PayerInput"]["properties"]["client_ip"].to_string();
        assert!(ip.contains("ipv4") && ip.contains("ipv6"), "{ip}");
    }

    #[test]
    fn every_problem_is_problem_json() {
        let doc = served();
        assert!(!doc.to_string().contains("\"content\":null"));
        let text = doc.to_string();
        let problems = text.matches("#/components/schemas/Problem").count();
        assert!(problems > 20, "{problems}");
        let doc_json = &doc;
        for (path, item) in doc_json["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, r) in op["responses"].as_object().unwrap() {
                    let json_ref = &r["content"]["application/json"]["schema"]["$ref"];
                    assert!(
                        !json_ref.as_str().is_some_and(|r| r.ends_with("/Problem")),
                        "{method} {path} {status}"
                    );
                    if status.starts_with('4') || status.starts_with('5') {
                        assert!(
                            r["content"]["application/problem+json"].is_object(),
                            "{method} {path} {status}: {r}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn query_parameters_are_optional_queries() {
        let doc = served();
        let params = |path: &str| doc["paths"][path]["get"]["parameters"].clone();
        for (path, name) in [
            ("/v1/events", "after"),
            ("/v1/events", "limit"),
            ("/v1/payments/{merchant_order_no}", "refresh"),
        ] {
            let p = params(path)
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{path} {name}"));
            assert_eq!(p["in"], "query", "{path} {name}");
            assert_ne!(p["required"], true, "{path} {name}");
        }
    }

    #[test]
    fn constraints_match_the_server() {
        let doc = served();
        let create = &doc["components"]["schemas"]["CreatePayment"]["properties"];
        assert_eq!(create["merchant_order_no"]["maxLength"], 32);
        assert_eq!(create["merchant_order_no"]["minLength"], 1);
        assert_eq!(create["amount"]["minimum"], 1);
        assert_eq!(create["amount"]["maximum"], 5_000_000);
        assert_eq!(create["currency"]["enum"], json!(["CNY"]));
        assert_eq!(create["method"]["enum"][1], "wechat_native");
        let refund = &doc["components"]["schemas"]["CreateRefund"]["properties"];
        assert_eq!(refund["refund_no"]["maxLength"], 64);
        assert_eq!(refund["amount"]["minimum"], 1);
        let key = doc["paths"]["/v1/payments"]["post"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .unwrap()
            .clone();
        assert_eq!(key["schema"]["maxLength"], 255);
        // The patterns refuse what the server refuses.
        let order_no = create["merchant_order_no"]["pattern"].as_str().unwrap();
        assert_eq!(order_no, "^[A-Za-z0-9_|*-]+$");
    }

    #[test]
    fn admin_and_merchant_operations_document_auth_failures() {
        let doc = served();
        let admin = &doc["paths"]["/admin/adapters"]["get"]["responses"];
        assert!(admin["401"]["headers"]["WWW-Authenticate"].is_object());
        assert!(admin["403"].is_object());
        let merchant = &doc["paths"]["/v1/events"]["get"]["responses"];
        assert!(merchant["401"].is_object());
        assert!(merchant["403"].is_null());
        assert!(doc["paths"]["/healthz"]["get"]["responses"]["401"].is_null());
    }

    #[test]
    fn notify_is_raw_bytes_by_post_and_get() {
        let doc = served();
        let item = &doc["paths"]["/v1/notify/{adapter}/{merchant}"];
        let content = item["post"]["requestBody"]["content"].as_object().unwrap();
        assert!(content.contains_key("text/xml"));
        assert!(content.contains_key("application/octet-stream"));
        assert!(content.values().all(|c| c.get("schema").is_none()));
        assert!(item["get"]["responses"]["200"].is_object());
        assert!(item["get"]["requestBody"].is_null());
        assert_ne!(item["get"]["operationId"], item["post"]["operationId"]);
    }

    #[test]
    fn webhooks_describe_every_event_type() {
        let doc = served();
        let types = doc["components"]["schemas"]["EventType"]["enum"]
            .as_array()
            .unwrap()
            .clone();
        let hooks = doc["webhooks"].as_object().unwrap();
        assert_eq!(hooks.len(), types.len());
        for t in types {
            let hook = &hooks[t.as_str().unwrap()]["post"];
            assert_eq!(
                hook["requestBody"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/WebhookEvent"
            );
        }
        for t in [
            crate::orders::PAYMENT_PAID,
            crate::orders::PAYMENT_CLOSED,
            crate::orders::PAYMENT_FAILED,
            crate::orders::PAYMENT_MISMATCH,
            crate::orders::REFUND_SUCCEEDED,
            crate::orders::REFUND_FAILED,
            crate::orders::REFUND_MISMATCH,
            crate::payouts::PAYOUT_SUCCEEDED,
            crate::payouts::PAYOUT_FAILED,
            crate::payouts::PAYOUT_MISMATCH,
            crate::contracts::CONTRACT_SIGNED,
            crate::contracts::CONTRACT_TERMINATED,
            crate::contracts::CONTRACT_PAUSED,
            crate::contracts::CONTRACT_MISMATCH,
            crate::contracts::DEDUCTION_SUCCEEDED,
            crate::contracts::DEDUCTION_FAILED,
            crate::contracts::DEDUCTION_MISMATCH,
        ] {
            assert!(hooks.contains_key(t), "{t}");
        }
    }
}
