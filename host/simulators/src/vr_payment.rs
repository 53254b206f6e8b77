//! A VR Payment gateway simulator (wallee platform, REST API v1;
//! providers.md §8.3-§8.5): transactions with their payment page, read,
//! refunds with `externalId`, refund read and search, and the webhook
//! signing key.
//!
//! Checked as the gateway checks them: the four `x-mac-*` headers
//! (HMAC-SHA512 with the Base64-decoded authentication key over
//! `1|userId|timestamp|METHOD|path`, path with `/api` and query; 401), the
//! timestamp window, the space of every call, the field names of every
//! body (442 `DEVELOPER_ERROR` for one the gateway does not know), and ids
//! where ids are due: a read by merchant reference is refused as the real
//! one refuses it.
//!
//! The gateway settles nothing by itself: the payer pays with
//! [`Simulator::pay`], refunds settle with [`Simulator::settle_refund`].
//! Webhooks are sent only when asked ([`Simulator::notify_payment`],
//! [`Simulator::notify_refund`]) to the space's webhook URL, signed
//! SHA256withECDSA (P-256) as §8.5 describes, or forged.
//!
//! Not simulated: the v2.0 API and JWT, the payment page itself, charge
//! attempts, fees, tokens, invoices, webhook retries.

use crate::faults::{ApiFault, FaultConfig, FaultCounts, Faults};
use anyhow::{Context, anyhow};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use payhost_sdk::encoding;
use payhost_sdk::native::{DigestAlgorithm, KeyEncoding, Part, SecretTable};
use payhost_sdk::types::Money;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// How far `x-mac-timestamp` may be from the simulator's clock (the
/// gateway's own window is not published; providers.md §8.8).
const WINDOW_SECS: i64 = 600;
/// The id of the key that signs webhooks (a lowercase UUID, §8.5).
pub const WEBHOOK_KEY_ID: &str = "7d1c8f0e-5b3a-4c2d-9e6f-0a1b2c3d4e5f";
/// Transaction ids start here, refund ids at twice it: int64 ids as the
/// gateway's, and never a valid merchant reference.
const FIRST_ID: i64 = 100_000_000;

/// The one space and application user the simulator knows.
#[derive(Clone)]
pub struct SimConfig {
    pub space_id: i64,
    pub user_id: String,
    /// The application user's authentication key, Base64 (the MAC key).
    pub authentication_key: String,
    /// Where webhooks go (the space's webhook URL); also settable later.
    pub webhook_url: Option<String>,
    pub faults: FaultConfig,
}

impl SimConfig {
    pub fn new(space_id: i64, user_id: &str, authentication_key: &str) -> Self {
        SimConfig {
            space_id,
            user_id: user_id.into(),
            authentication_key: authentication_key.into(),
            webhook_url: None,
            faults: FaultConfig::none(),
        }
    }
}

#[derive(Debug, Clone)]
struct Transaction {
    id: i64,
    state: &'static str,
    amount: Money,
    merchant_reference: String,
    completed_on: Option<String>,
    /// What `transaction/read` reports instead of the amount, when a test
    /// makes the gateway contradict the order.
    reported: Option<Money>,
}

#[derive(Debug, Clone)]
struct Refund {
    id: i64,
    state: &'static str,
    transaction: i64,
    amount: Money,
    external_id: String,
    merchant_reference: Option<String>,
}

#[derive(Default)]
struct State {
    transactions: BTreeMap<i64, Transaction>,
    refunds: BTreeMap<i64, Refund>,
    /// Requests per endpoint (`POST transaction/create`, `GET transaction/read`, ...).
    counts: BTreeMap<String, u64>,
    next_id: i64,
    webhook_url: Option<String>,
}

struct Shared {
    config: SimConfig,
    state: Mutex<State>,
    keys: SecretTable,
    mac_key: u32,
    webhook_key: SigningKey,
    faults: Mutex<Faults>,
    base_url: String,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn transaction_json(&self, t: &Transaction) -> Value {
        let reported = t.reported.as_ref().unwrap_or(&t.amount);
        let mut v = json!({
            "id": t.id,
            "state": t.state,
            "currency": reported.currency,
            "authorizationAmount": number(reported),
            "merchantReference": t.merchant_reference,
            "linkedSpaceId": self.config.space_id,
            "version": 1,
        });
        if let Some(at) = &t.completed_on {
            v["completedOn"] = at.clone().into();
        }
        v
    }

    fn refund_json(&self, r: &Refund, t: &Transaction) -> Value {
        json!({
            "id": r.id,
            "state": r.state,
            "amount": number(&r.amount),
            "externalId": r.external_id,
            "merchantReference": r.merchant_reference,
            "linkedSpaceId": self.config.space_id,
            "type": "MERCHANT_INITIATED_ONLINE",
            "transaction": {
                "id": t.id, "currency": t.amount.currency,
                "merchantReference": t.merchant_reference,
            },
        })
    }

    /// The webhook key as X.509 SubjectPublicKeyInfo DER (§8.5): the
    /// fixed id-ecPublicKey / prime256v1 header, then the uncompressed point.
    fn public_key_der(&self) -> Vec<u8> {
        const P256_SPKI_HEADER: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";
        let mut der = encoding::hex_decode(P256_SPKI_HEADER).expect("hex");
        der.extend_from_slice(
            self.webhook_key
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes(),
        );
        der
    }

    fn next_id(&self, base: i64) -> i64 {
        let mut s = self.state();
        s.next_id += 1;
        base + s.next_id
    }
}

/// Money as the gateway's JSON number.
fn number(m: &Money) -> Value {
    let text = payhost_sdk::money::to_decimal(m).unwrap_or_default();
    json!(text.parse::<f64>().unwrap_or_default())
}

/// A JSON number in major units, exactly, or `None`.
fn money_of(v: &Value, currency: &str) -> Option<Money> {
    match v {
        Value::Number(n) => payhost_sdk::money::from_decimal(&n.to_string(), currency).ok(),
        _ => None,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn now_iso() -> String {
    payhost_sdk::time::format_rfc3339(now(), 0).unwrap_or_default()
}

/// A refused call: the gateway's error body with its status (442 for
/// client errors), answered as JSON.
struct Refusal {
    status: u16,
    kind: &'static str,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (
            status,
            [("content-type", "application/json")],
            json!({"id": "sim-error", "type": self.kind, "message": self.message,
                   "defaultMessage": self.message})
            .to_string(),
        )
            .into_response()
    }
}

fn error(status: u16, kind: &'static str, message: &str) -> Refusal {
    Refusal {
        status,
        kind,
        message: message.into(),
    }
}

fn developer_error(message: &str) -> Refusal {
    error(442, "DEVELOPER_ERROR", message)
}

fn answer(v: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// How a webhook is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NotifyForgery {
    /// As the gateway sends it: signed, for this space and entity.
    #[default]
    None,
    /// One byte of the signed body changed after signing.
    Tampered,
    /// Signed with a key whose id the gateway does not know.
    UnknownKey,
    /// Without `X-Signature`.
    Unsigned,
    /// Signed, but naming an entity id the gateway never had.
    UnknownEntity,
}

pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Simulator {
    pub async fn start(config: SimConfig) -> Simulator {
        let mut keys = SecretTable::new();
        let mac_key = keys.insert(config.authentication_key.as_bytes().to_vec());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        // A fixed key: the simulator's signatures are reproducible.
        let webhook_key = SigningKey::from_slice(&[0x5a; 32]).expect("P-256 scalar");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                webhook_url: config.webhook_url.clone(),
                ..State::default()
            }),
            faults: Mutex::new(Faults::new(config.faults.clone())),
            config,
            keys,
            mac_key,
            webhook_key,
            base_url: format!("http://{addr}"),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Simulator { addr, shared, task }
    }

    /// The REST API base, `/api` included: the adapter's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Where webhooks go from now on (payhost's `/v1/notify/vr-payment/{merchant}`).
    pub fn set_webhook_url(&self, url: &str) {
        self.shared.state().webhook_url = Some(url.into());
    }

    /// Requests seen for an endpoint key: `POST transaction/create`,
    /// `GET transaction-payment-page/payment-page-url`, `GET transaction/read`,
    /// `POST refund/refund`, `GET refund/read`, `POST refund/search`,
    /// `GET webhook-encryption/read`; refused ones (MAC, fields) included.
    pub fn count(&self, endpoint: &str) -> u64 {
        self.shared
            .state()
            .counts
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// The faults injected so far.
    pub fn fault_counts(&self) -> FaultCounts {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counts()
    }

    fn by_reference(&self, merchant_reference: &str) -> Option<Transaction> {
        self.shared
            .state()
            .transactions
            .values()
            .find(|t| t.merchant_reference == merchant_reference)
            .cloned()
    }

    /// The gateway's id of the (last) transaction of a merchant reference.
    pub fn transaction_id(&self, merchant_reference: &str) -> Option<i64> {
        self.by_reference(merchant_reference).map(|t| t.id)
    }

    /// The gateway's state of a merchant reference's transaction.
    pub fn state(&self, merchant_reference: &str) -> Option<&'static str> {
        self.by_reference(merchant_reference).map(|t| t.state)
    }

    /// A transaction made outside payhost (another shop system on the same
    /// space): its webhooks name an order payhost does not have.
    pub fn create_transaction(&self, merchant_reference: &str, amount: Money) -> i64 {
        let id = self.shared.next_id(FIRST_ID);
        let t = Transaction {
            id,
            state: "PENDING",
            amount,
            merchant_reference: merchant_reference.into(),
            completed_on: None,
            reported: None,
        };
        self.shared.state().transactions.insert(id, t);
        id
    }

    /// Moves a transaction to any §8.4 state (AUTHORIZED, COMPLETED, DECLINE, ...).
    pub fn set_state(&self, merchant_reference: &str, state: &'static str) -> anyhow::Result<()> {
        const STATES: &[&str] = &[
            "CREATE",
            "PENDING",
            "CONFIRMED",
            "PROCESSING",
            "FAILED",
            "AUTHORIZED",
            "VOIDED",
            "COMPLETED",
            "FULFILL",
            "DECLINE",
        ];
        if !STATES.contains(&state) {
            return Err(anyhow!("`{state}` is not a transaction state"));
        }
        let mut s = self.shared.state();
        let t = s
            .transactions
            .values_mut()
            .rfind(|t| t.merchant_reference == merchant_reference)
            .ok_or_else(|| anyhow!("no transaction {merchant_reference}"))?;
        t.state = state;
        if state == "FULFILL" || state == "COMPLETED" {
            t.completed_on.get_or_insert_with(now_iso);
        }
        Ok(())
    }

    /// The payer pays on the payment page (or a held authorization goes
    /// through): authorized, completed, and (no fraud check objecting) FULFILL.
    pub fn pay(&self, merchant_reference: &str) -> anyhow::Result<()> {
        match self.state(merchant_reference) {
            Some(
                "PENDING" | "CREATE" | "CONFIRMED" | "PROCESSING" | "AUTHORIZED" | "COMPLETED",
            ) => self.set_state(merchant_reference, "FULFILL"),
            Some(other) => Err(anyhow!("transaction {merchant_reference} is {other}")),
            None => Err(anyhow!("no transaction {merchant_reference}")),
        }
    }

    /// Makes `transaction/read` report another amount (or the true one
    /// again with `None`): a gateway that contradicts the order.
    pub fn misreport_amount(
        &self,
        merchant_reference: &str,
        reported: Option<Money>,
    ) -> anyhow::Result<()> {
        let mut s = self.shared.state();
        let t = s
            .transactions
            .values_mut()
            .rfind(|t| t.merchant_reference == merchant_reference)
            .ok_or_else(|| anyhow!("no transaction {merchant_reference}"))?;
        t.reported = reported;
        Ok(())
    }

    /// The refund of an externalId becomes `SUCCESSFUL` or `FAILED`.
    pub fn settle_refund(&self, external_id: &str, state: &'static str) -> anyhow::Result<()> {
        if state != "SUCCESSFUL" && state != "FAILED" {
            return Err(anyhow!(
                "a refund settles SUCCESSFUL or FAILED, not {state}"
            ));
        }
        let mut s = self.shared.state();
        let r = s
            .refunds
            .values_mut()
            .find(|r| r.external_id == external_id)
            .ok_or_else(|| anyhow!("no refund {external_id}"))?;
        r.state = state;
        Ok(())
    }

    /// The gateway's refund state of an externalId.
    pub fn refund_state(&self, external_id: &str) -> Option<&'static str> {
        self.shared
            .state()
            .refunds
            .values()
            .find(|r| r.external_id == external_id)
            .map(|r| r.state)
    }

    /// Sends the transaction's webhook (entity `Transaction`); answers the
    /// receiver's status and body.
    pub async fn notify_payment(
        &self,
        merchant_reference: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let t = self
            .by_reference(merchant_reference)
            .ok_or_else(|| anyhow!("no transaction {merchant_reference}"))?;
        self.send("Transaction", t.id, t.state, forgery).await
    }

    /// Sends the refund's webhook (entity `Refund`).
    pub async fn notify_refund(
        &self,
        external_id: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let (id, state) = self
            .shared
            .state()
            .refunds
            .values()
            .find(|r| r.external_id == external_id)
            .map(|r| (r.id, r.state))
            .ok_or_else(|| anyhow!("no refund {external_id}"))?;
        self.send("Refund", id, state, forgery).await
    }

    /// The webhook body of §8.5 and its `X-Signature`.
    fn webhook(
        &self,
        entity: &str,
        id: i64,
        state: &str,
        forgery: NotifyForgery,
    ) -> (String, Option<String>) {
        let event_id = self.shared.next_id(0);
        let entity_id = if forgery == NotifyForgery::UnknownEntity {
            FIRST_ID - 1
        } else {
            id
        };
        let body = json!({
            "entityId": entity_id, "eventId": event_id, "listenerEntityId": 1472041829003i64,
            "listenerEntityTechnicalName": entity, "spaceId": self.shared.config.space_id,
            "state": state, "timestamp": now_iso(), "webhookListenerId": 2,
        })
        .to_string();
        let signature: Signature = self.shared.webhook_key.sign(body.as_bytes());
        let key_id = if forgery == NotifyForgery::UnknownKey {
            "00000000-0000-0000-0000-000000000000"
        } else {
            WEBHOOK_KEY_ID
        };
        let header = format!(
            "algorithm=SHA256withECDSA, keyId={key_id}, signature={}",
            encoding::base64_encode(signature.to_der().as_bytes())
        );
        let body = if forgery == NotifyForgery::Tampered {
            body.replacen("\"webhookListenerId\":2", "\"webhookListenerId\":3", 1)
        } else {
            body
        };
        (body, (forgery != NotifyForgery::Unsigned).then_some(header))
    }

    async fn send(
        &self,
        entity: &str,
        id: i64,
        state: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let url = self
            .shared
            .state()
            .webhook_url
            .clone()
            .context("no webhook URL: set SimConfig::webhook_url or call set_webhook_url")?;
        let (body, signature) = self.webhook(entity, id, state, forgery);
        let mut req = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = signature {
            req = req.header("X-Signature", s);
        }
        let resp = req.send().await.context("posting the webhook")?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.unwrap_or_default()))
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks the MAC headers (§8.3) against the request.
fn authenticated(
    s: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), &'static str> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(version), Some(user), Some(ts), Some(value)) = (
        get("x-mac-version"),
        get("x-mac-userid"),
        get("x-mac-timestamp"),
        get("x-mac-value"),
    ) else {
        return Err(
            "the x-mac-version, x-mac-userid, x-mac-timestamp and x-mac-value headers are required",
        );
    };
    if version != "1" {
        return Err("x-mac-version must be 1");
    }
    if user != s.config.user_id {
        return Err("x-mac-userid is not an application user of this space");
    }
    let ts: i64 = ts.parse().map_err(|_| "x-mac-timestamp is not a number")?;
    if (ts - now()).abs() > WINDOW_SECS {
        return Err("x-mac-timestamp is outside the window");
    }
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let data = format!("1|{user}|{ts}|{method}|{path}");
    let expected = s
        .keys
        .hmac(
            DigestAlgorithm::Sha512,
            s.mac_key,
            KeyEncoding::Base64,
            &[Part::Text(&data)],
        )
        .map_err(|_| "the authentication key is not Base64")?;
    if encoding::base64_encode(&expected) != value {
        return Err("x-mac-value does not verify");
    }
    Ok(())
}

fn query_params(uri: &Uri) -> BTreeMap<String, String> {
    form_pairs(uri.query().unwrap_or(""))
}

fn form_pairs(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

/// Refuses a body with a field the gateway does not know.
fn known_fields(body: &Value, allowed: &[&str], what: &str) -> Result<(), Refusal> {
    let Some(obj) = body.as_object() else {
        return Err(developer_error(&format!(
            "{what}: the body is not a JSON object"
        )));
    };
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(developer_error(&format!("{what}: unknown field `{k}`"))),
        None => Ok(()),
    }
}

async fn handle(
    AxState(s): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(resource) = uri.path().strip_prefix("/api/") else {
        return error(
            404,
            "DEVELOPER_ERROR",
            "no such API (the base URL ends in /api)",
        )
        .into_response();
    };
    let endpoint = format!("{method} {resource}");
    *s.state().counts.entry(endpoint.clone()).or_default() += 1;
    if let Err(why) = authenticated(&s, &method, &uri, &headers) {
        return error(401, "DEVELOPER_ERROR", why).into_response();
    }
    let fault = s
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .api_call();
    let hang = s.faults.lock().unwrap_or_else(|p| p.into_inner()).hang();
    match fault {
        ApiFault::None => {}
        ApiFault::Http5xx => {
            return error(503, "SERVER_ERROR", "service unavailable").into_response();
        }
        ApiFault::SystemError => {
            return error(542, "SERVER_ERROR", "internal server error").into_response();
        }
        ApiFault::Timeout { applied } => {
            if applied {
                let _ = route(&s, &method, resource, &uri, &body);
            }
            tokio::time::sleep(hang).await;
            return error(504, "SERVER_ERROR", "gateway time-out").into_response();
        }
    }
    route(&s, &method, resource, &uri, &body)
}

fn route(s: &Shared, method: &Method, resource: &str, uri: &Uri, body: &[u8]) -> Response {
    let params = query_params(uri);
    if resource != "webhook-encryption/read" {
        match params.get("spaceId").map(|v| v.parse::<i64>()) {
            Some(Ok(space)) if space == s.config.space_id => {}
            Some(Ok(_)) => {
                return error(
                    403,
                    "DEVELOPER_ERROR",
                    "the user has no access to this space",
                )
                .into_response();
            }
            _ => {
                return developer_error("the spaceId parameter is required and numeric")
                    .into_response();
            }
        }
    }
    // Ids are the gateway's int64 ids: a merchant reference is not one.
    let id = || -> Result<i64, Refusal> {
        params
            .get("id")
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| developer_error("the id parameter must be the entity's numeric id"))
    };
    let json_body = || serde_json::from_slice::<Value>(body).ok();
    let result = match (method, resource) {
        (&Method::POST, "transaction/create") => create(s, json_body()),
        (&Method::GET, "transaction-payment-page/payment-page-url") => id().and_then(|id| {
            let st = s.state();
            match st.transactions.get(&id) {
                None => Err(error(404, "DEVELOPER_ERROR", "no such transaction")),
                Some(t) if !matches!(t.state, "CREATE" | "PENDING") => {
                    Err(developer_error("the transaction is past the payment page"))
                }
                Some(t) => Ok(answer(json!(format!(
                    "{}/s/{}/payment/transaction/pay/{}?securityToken=sim-{}",
                    s.base_url, s.config.space_id, t.id, t.id
                )))),
            }
        }),
        (&Method::GET, "transaction/read") => id().and_then(|id| {
            let st = s.state();
            st.transactions
                .get(&id)
                .map(|t| answer(s.transaction_json(t)))
                .ok_or_else(|| error(404, "DEVELOPER_ERROR", "no such transaction"))
        }),
        (&Method::POST, "refund/refund") => refund(s, json_body()),
        (&Method::GET, "refund/read") => id().and_then(|id| {
            let st = s.state();
            st.refunds
                .get(&id)
                .and_then(|r| {
                    Some(answer(
                        s.refund_json(r, st.transactions.get(&r.transaction)?),
                    ))
                })
                .ok_or_else(|| error(404, "DEVELOPER_ERROR", "no such refund"))
        }),
        (&Method::POST, "refund/search") => search(s, json_body()),
        (&Method::GET, "webhook-encryption/read") => match params.get("id").map(String::as_str) {
            Some(WEBHOOK_KEY_ID) => Ok(answer(json!({
                "id": WEBHOOK_KEY_ID,
                "publicKey": encoding::base64_encode(&s.public_key_der()),
                "state": "ACTIVE", "version": 1,
            }))),
            _ => Err(error(
                404,
                "DEVELOPER_ERROR",
                "no such webhook encryption key",
            )),
        },
        _ => Err(error(404, "DEVELOPER_ERROR", "no such API")),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Transaction create fields of §8.4.
const CREATE_FIELDS: &[&str] = &[
    "lineItems",
    "currency",
    "merchantReference",
    "successUrl",
    "failedUrl",
    "customerEmailAddress",
    "customerId",
    "language",
    "metaData",
    "billingAddress",
    "shippingAddress",
    "allowedPaymentMethodConfigurations",
    "allowedPaymentMethodBrands",
    "completionBehavior",
    "tokenizationMode",
    "autoConfirmationEnabled",
    "chargeRetryEnabled",
    "customersPresence",
    "environment",
    "spaceViewId",
];
const LINE_ITEM_FIELDS: &[&str] = &[
    "name",
    "uniqueId",
    "type",
    "quantity",
    "amountIncludingTax",
    "sku",
    "shippingRequired",
    "taxes",
];

fn create(s: &Shared, body: Option<Value>) -> Result<Response, Refusal> {
    let b = body.ok_or_else(|| developer_error("the body is not JSON"))?;
    known_fields(&b, CREATE_FIELDS, "transaction create")?;
    let currency = b["currency"]
        .as_str()
        .filter(|c| payhost_sdk::money::exponent(c).is_ok())
        .ok_or_else(|| developer_error("currency must be an ISO 4217 code"))?;
    let reference = b["merchantReference"]
        .as_str()
        .filter(|r| !r.is_empty() && r.chars().count() <= 100)
        .ok_or_else(|| developer_error("merchantReference: 1 to 100 characters"))?;
    let items = b["lineItems"]
        .as_array()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| developer_error("lineItems must list at least one item"))?;
    let mut total = 0u64;
    for item in items {
        known_fields(item, LINE_ITEM_FIELDS, "line item")?;
        let (Some(_), Some(_), Some(kind)) = (
            item["name"].as_str(),
            item["uniqueId"].as_str(),
            item["type"].as_str(),
        ) else {
            return Err(developer_error("a line item needs name, uniqueId and type"));
        };
        if !["PRODUCT", "SHIPPING", "DISCOUNT", "FEE", "TIP"].contains(&kind) {
            return Err(developer_error(
                "line item type is not one of PRODUCT, SHIPPING, DISCOUNT, FEE, TIP",
            ));
        }
        if item["quantity"].as_f64().is_none_or(|q| q <= 0.0) {
            return Err(developer_error("line item quantity must be positive"));
        }
        let amount = money_of(&item["amountIncludingTax"], currency)
            .filter(|m| m.minor > 0)
            .ok_or_else(|| {
                developer_error("amountIncludingTax must be a positive amount of the currency")
            })?;
        total += amount.minor;
    }
    let id = s.next_id(FIRST_ID);
    let t = Transaction {
        id,
        state: "PENDING",
        amount: Money {
            minor: total,
            currency: currency.into(),
        },
        merchant_reference: reference.into(),
        completed_on: None,
        reported: None,
    };
    let v = s.transaction_json(&t);
    s.state().transactions.insert(id, t);
    Ok(answer(v))
}

const REFUND_FIELDS: &[&str] = &[
    "transaction",
    "amount",
    "externalId",
    "merchantReference",
    "type",
    "completion",
    "reductions",
];
const REFUND_TYPES: &[&str] = &[
    "MERCHANT_INITIATED_ONLINE",
    "MERCHANT_INITIATED_OFFLINE",
    "CUSTOMER_INITIATED_AUTOMATIC",
    "CUSTOMER_INITIATED_MANUAL",
];

fn refund(s: &Shared, body: Option<Value>) -> Result<Response, Refusal> {
    let b = body.ok_or_else(|| developer_error("the body is not JSON"))?;
    known_fields(&b, REFUND_FIELDS, "refund create")?;
    let tx = b["transaction"]
        .as_i64()
        .ok_or_else(|| developer_error("transaction must be the transaction's numeric id"))?;
    let external_id = b["externalId"]
        .as_str()
        .filter(|e| !e.is_empty() && e.len() <= 100)
        .ok_or_else(|| developer_error("externalId: 1 to 100 characters"))?;
    if !b["type"]
        .as_str()
        .is_some_and(|t| REFUND_TYPES.contains(&t))
    {
        return Err(developer_error("type is not a refund type"));
    }
    let mut st = s.state();
    let t = st
        .transactions
        .get(&tx)
        .cloned()
        .ok_or_else(|| error(404, "DEVELOPER_ERROR", "no such transaction"))?;
    let amount = money_of(&b["amount"], &t.amount.currency)
        .filter(|m| m.minor > 0)
        .ok_or_else(|| {
            developer_error("amount must be a positive amount of the transaction's currency")
        })?;
    // externalId is the idempotency key: the same refund again is answered
    // with the first one; another refund under it is refused.
    if let Some(r) = st.refunds.values().find(|r| r.external_id == external_id) {
        if r.transaction == tx && r.amount == amount {
            return Ok(answer(s.refund_json(r, &t)));
        }
        return Err(error(
            409,
            "DEVELOPER_ERROR",
            "externalId is taken by another refund",
        ));
    }
    if !matches!(t.state, "FULFILL" | "COMPLETED") {
        return Err(error(
            442,
            "END_USER_ERROR",
            "the transaction is not completed",
        ));
    }
    let refunded: u64 = st
        .refunds
        .values()
        .filter(|r| r.transaction == tx && r.state != "FAILED")
        .map(|r| r.amount.minor)
        .sum();
    if refunded + amount.minor > t.amount.minor {
        return Err(error(
            442,
            "END_USER_ERROR",
            "the refund exceeds what is left to refund",
        ));
    }
    st.next_id += 1;
    let r = Refund {
        id: 2 * FIRST_ID + st.next_id,
        state: "PENDING",
        transaction: tx,
        amount,
        external_id: external_id.into(),
        merchant_reference: b["merchantReference"].as_str().map(String::from),
    };
    let v = s.refund_json(&r, &t);
    st.refunds.insert(r.id, r);
    Ok(answer(v))
}

/// `refund/search` with the one filter payhost uses: externalId EQUALS.
fn search(s: &Shared, body: Option<Value>) -> Result<Response, Refusal> {
    let b = body.ok_or_else(|| developer_error("the body is not JSON"))?;
    known_fields(
        &b,
        &["filter", "orderBys", "numberOfEntities", "startingEntity"],
        "entity query",
    )?;
    let f = &b["filter"];
    if f["type"] != "LEAF" || f["operator"] != "EQUALS" || f["fieldName"] != "externalId" {
        return Err(developer_error(
            "the simulator searches refunds by externalId EQUALS only",
        ));
    }
    let value = f["value"].as_str().unwrap_or_default();
    let st = s.state();
    let found: Vec<Value> = st
        .refunds
        .values()
        .filter(|r| r.external_id == value)
        .filter_map(|r| Some(s.refund_json(r, st.transactions.get(&r.transaction)?)))
        .collect();
    Ok(answer(Value::Array(found)))
}

#[cfg(test)]
mod tests;
