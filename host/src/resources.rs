//! What a merchant sees of a payment and a refund: one [`Payment`] and one
//! [`Refund`] shape wherever they appear -- API answers, the `data` of a
//! webhook and the items of `GET /v1/events` -- so a merchant writes one
//! parser. Amounts are integers of minor units next to their `currency`;
//! times are [`Timestamp`]s (RFC 3339, UTC, milliseconds).
//!
//! These types serialize both the API's answers and the events the store
//! keeps, so the two cannot drift apart. They hold no time of the store's
//! own bookkeeping (a row's last write moves when the reconciler schedules
//! a poll): an event's payment equals the API's answer while nothing the
//! merchant can see has changed.

use crate::store::{self, Order, OrderState, RefundState};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;

/// A point in time, sent as RFC 3339 in UTC with milliseconds
/// (`2025-07-04T15:22:14.123Z`); held as Unix milliseconds, as the store
/// keeps it. Fixed-width text sorts as it orders in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// Unix seconds, rounded down.
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Out of jiff's range (years -9999..=9999) only through a corrupt
        // row; the nearest end is still a valid time to show.
        let t = jiff::Timestamp::from_millisecond(self.0).unwrap_or(if self.0 < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        });
        write!(f, "{t:.3}")
    }
}

impl std::str::FromStr for Timestamp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t: jiff::Timestamp = s.parse().map_err(|e| {
            format!("`{s}` is not an RFC 3339 time with an offset (2025-07-04T15:22:14Z): {e}")
        })?;
        Ok(Timestamp(t.as_millisecond()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339 in UTC with milliseconds"))
            .examples([serde_json::json!("2025-07-04T15:22:14.123Z")])
            .into()
    }
}

impl ToSchema for Timestamp {}

/// A payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    pub merchant_order_no: String,
    #[schema(value_type = PaymentState)]
    pub state: OrderState,
    /// Minor units of `currency` (fen, cents): 1999 is 19.99.
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// Minor units refunded so far (succeeded refunds).
    pub refunded_amount: i64,
    pub method: String,
    pub description: String,
    pub adapter: String,
    /// The adapter version (hex sha256 of its component) that created it.
    pub adapter_digest: String,
    /// The provider's trade number, when it has one.
    pub provider_trade_no: Option<String>,
    /// WeChat Pay's transaction id, once known.
    pub channel_transaction_id: Option<String>,
    /// What the payer must do: `{"type":"mini_program","params":{appId,
    /// timeStamp, nonceStr, package, signType, paySign}}` (hand `params` to
    /// `wx.requestPayment`), `{"type":"redirect","url"}` or
    /// `{"type":"qr_code","text"}`.
    #[schema(value_type = Option<Object>)]
    pub pay_action: Option<Value>,
    pub payer_openid: Option<String>,
    /// Echoed back by providers that support it.
    pub attach: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub paid_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// Your own data, as given at creation (`null` when none).
    #[schema(value_type = Option<Object>)]
    pub metadata: Value,
}

impl From<&Order> for Payment {
    fn from(o: &Order) -> Self {
        Payment {
            merchant_order_no: o.merchant_order_no.clone(),
            state: o.state,
            amount: o.amount_minor,
            currency: o.currency.clone(),
            refunded_amount: o.refunded_minor,
            method: o.method.clone(),
            description: o.description.clone(),
            adapter: o.adapter.clone(),
            adapter_digest: o.adapter_digest.clone(),
            provider_trade_no: o.provider_trade_no.clone(),
            channel_transaction_id: o.channel_transaction_id.clone(),
            pay_action: o.pay_action.clone(),
            payer_openid: o.payer_openid.clone(),
            attach: o.attach.clone(),
            expires_at: o.expires_at.map(Timestamp),
            paid_at: o.paid_at.map(Timestamp),
            created_at: Timestamp(o.created_at),
            metadata: o.metadata.clone(),
        }
    }
}

/// A refund of a payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refund {
    pub merchant_order_no: String,
    pub refund_no: String,
    #[schema(value_type = RefundStateSchema)]
    pub state: RefundState,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    pub provider_refund_id: Option<String>,
    pub reason: Option<String>,
    pub created_at: Timestamp,
}

impl From<&store::Refund> for Refund {
    fn from(r: &store::Refund) -> Self {
        Refund {
            merchant_order_no: r.merchant_order_no.clone(),
            refund_no: r.refund_no.clone(),
            state: r.state,
            amount: r.amount_minor,
            currency: r.currency.clone(),
            provider_refund_id: r.provider_refund_id.clone(),
            reason: r.reason.clone(),
            created_at: Timestamp(r.created_at),
        }
    }
}

/// The `data` of every event: the payment as it stood when the event
/// happened, and what else the event type carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventData {
    pub payment: Payment,
    /// `refund.*` events: the refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<Refund>,
    /// `payment.paid`: whether the payer paid after payhost had closed or
    /// failed the order (fulfil or refund it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_after_close: Option<bool>,
    /// `payment.paid` after close: the state payhost had given up in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PaymentState>)]
    pub previous_state: Option<OrderState>,
    /// `*.provider_mismatch`: what contradicts the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `*.provider_mismatch`: the provider's statement (`state`,
    /// `provider_state`, `amount` and `currency` when it says them, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub reported: Option<Value>,
}

impl EventData {
    pub fn of(order: &Order) -> Self {
        EventData {
            payment: Payment::from(order),
            refund: None,
            paid_after_close: None,
            previous_state: None,
            reason: None,
            reported: None,
        }
    }

    /// The JSON the store keeps and webhooks carry.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("event data serializes")
    }
}

/// A provider's statement (the contract's trade or refund status) in the
/// shapes of this module: `amount: {minor, currency}` becomes `amount` and
/// `currency`, `paid_at` (Unix seconds) a [`Timestamp`].
pub fn reported(mut statement: Value) -> Value {
    if let Some(fields) = statement.as_object_mut() {
        if let Some(amount) = fields.remove("amount") {
            fields.insert("amount".into(), amount["minor"].clone());
            fields.insert("currency".into(), amount["currency"].clone());
        }
        if let Some(secs) = fields.get("paid_at").and_then(Value::as_i64) {
            let at = Timestamp(secs.saturating_mul(1000));
            fields.insert("paid_at".into(), at.to_string().into());
        }
    }
    statement
}

/// A payout to a payee's wallet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Payout {
    pub payout_no: String,
    #[schema(value_type = PayoutStateSchema)]
    pub state: store::PayoutState,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    pub payee: PayeeOut,
    pub remark: String,
    /// The provider's scene code it was paid under, when the request named one.
    pub scene: Option<String>,
    pub adapter: String,
    /// The adapter version (hex sha256 of its component) that created it.
    pub adapter_digest: String,
    /// The provider's own number for it (WeChat `transfer_bill_no`).
    pub provider_payout_id: Option<String>,
    /// While `pending_user_confirmation`: hand these to
    /// `wx.requestMerchantTransfer` in the payee's mini-program
    /// (`{"mchId","appId","package"}`). Its callback only says the page
    /// closed; the outcome comes as a webhook.
    #[schema(value_type = Option<Object>)]
    pub confirmation: Option<Value>,
    /// `failed`: the provider's reason.
    pub failure_reason: Option<String>,
    /// The provider's own state word.
    pub provider_state: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[schema(value_type = Option<Object>)]
    pub metadata: Value,
}

/// The payee as payhost keeps it: the real name itself never is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayeeOut {
    pub app_id: String,
    pub openid: String,
    /// A real name was sent for the provider to check against the
    /// payee's verified identity.
    pub real_name_checked: bool,
}

impl From<&store::Payout> for Payout {
    fn from(p: &store::Payout) -> Self {
        Payout {
            payout_no: p.payout_no.clone(),
            state: p.state,
            amount: p.amount_minor,
            currency: p.currency.clone(),
            payee: PayeeOut {
                app_id: p.payee_app_id.clone(),
                openid: p.payee_openid.clone(),
                real_name_checked: p.real_name_checked,
            },
            remark: p.remark.clone(),
            scene: p.scene.clone(),
            adapter: p.adapter.clone(),
            adapter_digest: p.adapter_digest.clone(),
            provider_payout_id: p.provider_payout_id.clone(),
            confirmation: p.confirmation.clone(),
            failure_reason: p.failure_reason.clone(),
            provider_state: p.provider_state.clone(),
            created_at: Timestamp(p.created_at),
            updated_at: Timestamp(p.updated_at),
            metadata: p.metadata.clone(),
        }
    }
}

/// The `data` of `payout.*` events: the payout as it stood when the event
/// happened, and what else the event type carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutEventData {
    pub payout: Payout,
    /// `payout.succeeded`: the provider paid after payhost had recorded the
    /// payout failed or cancelled (the provider's word wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PayoutStateSchema>)]
    pub previous_state: Option<store::PayoutState>,
    /// `payout.provider_mismatch`: what contradicts the payout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `payout.provider_mismatch`: the provider's statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub reported: Option<Value>,
}

impl PayoutEventData {
    pub fn of(p: &store::Payout) -> Self {
        PayoutEventData {
            payout: Payout::from(p),
            previous_state: None,
            reason: None,
            reported: None,
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("event data serializes")
    }
}

/// An auto-debit contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    pub contract_no: String,
    #[schema(value_type = ContractStateSchema)]
    pub state: store::ContractState,
    /// The provider's contract template (WeChat `plan_id`).
    pub plan_id: String,
    pub payer: ContractPayerOut,
    pub display_name: String,
    /// While `pending_signature`: what the payer's app does to sign.
    /// `{"type": "mini_program_navigation", "app_id", "path", "extra_data"}`
    /// goes to `wx.navigateToMiniProgram`; `{"type": "redirect", "url"}`
    /// opens a page; `{"type": "qr_code", "text"}` is shown as a QR code.
    /// The page's callback says nothing; the outcome comes as a webhook.
    #[schema(value_type = Option<Object>)]
    pub signing: Option<Value>,
    /// The provider's own id for it (WeChat `contract_id`), once signed.
    pub provider_contract_id: Option<String>,
    /// The provider's own state word.
    pub provider_state: Option<String>,
    pub signed_at: Option<Timestamp>,
    /// `terminated`: the provider's reason, or the merchant's.
    pub termination_reason: Option<String>,
    /// `paused`: why payhost stopped deducting (consecutive failures).
    pub pause_reason: Option<String>,
    pub adapter: String,
    pub adapter_digest: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[schema(value_type = Option<Object>)]
    pub metadata: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractPayerOut {
    pub app_id: String,
    /// The payer's openid: as given, or as the provider reported who signed.
    pub openid: Option<String>,
}

impl From<&store::Contract> for Contract {
    fn from(c: &store::Contract) -> Self {
        Contract {
            contract_no: c.contract_no.clone(),
            state: c.state,
            plan_id: c.plan_id.clone(),
            payer: ContractPayerOut {
                app_id: c.payer_app_id.clone(),
                openid: c.payer_openid.clone(),
            },
            display_name: c.display_name.clone(),
            signing: (c.state == store::ContractState::PendingSignature && !c.signing.is_null())
                .then(|| c.signing.clone()),
            provider_contract_id: c.provider_contract_id.clone(),
            provider_state: c.provider_state.clone(),
            signed_at: c.signed_at.map(Timestamp),
            termination_reason: c.termination_reason.clone(),
            pause_reason: c.pause_reason.clone(),
            adapter: c.adapter.clone(),
            adapter_digest: c.adapter_digest.clone(),
            created_at: Timestamp(c.created_at),
            updated_at: Timestamp(c.updated_at),
            metadata: c.metadata.clone(),
        }
    }
}

/// A charge of an active contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deduction {
    pub deduction_no: String,
    pub contract_no: String,
    #[schema(value_type = DeductionStateSchema)]
    pub state: store::DeductionState,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    pub description: String,
    /// The provider's id of the charge (WeChat `transaction_id`).
    pub provider_deduction_id: Option<String>,
    pub provider_state: Option<String>,
    /// `failed`: the provider's reason.
    pub failure_reason: Option<String>,
    pub paid_at: Option<Timestamp>,
    pub adapter: String,
    pub adapter_digest: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[schema(value_type = Option<Object>)]
    pub metadata: Value,
}

impl From<&store::Deduction> for Deduction {
    fn from(d: &store::Deduction) -> Self {
        Deduction {
            deduction_no: d.deduction_no.clone(),
            contract_no: d.contract_no.clone(),
            state: d.state,
            amount: d.amount_minor,
            currency: d.currency.clone(),
            description: d.description.clone(),
            provider_deduction_id: d.provider_deduction_id.clone(),
            provider_state: d.provider_state.clone(),
            failure_reason: d.failure_reason.clone(),
            paid_at: d.paid_at.map(Timestamp),
            adapter: d.adapter.clone(),
            adapter_digest: d.adapter_digest.clone(),
            created_at: Timestamp(d.created_at),
            updated_at: Timestamp(d.updated_at),
            metadata: d.metadata.clone(),
        }
    }
}

/// The `data` of `contract.*` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractEventData {
    pub contract: Contract,
    /// `contract.provider_mismatch`: what contradicts the contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `contract.provider_mismatch`: the provider's statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub reported: Option<Value>,
}

impl ContractEventData {
    pub fn of(c: &store::Contract) -> Self {
        ContractEventData {
            contract: Contract::from(c),
            reason: None,
            reported: None,
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("event data serializes")
    }
}

/// The `data` of `deduction.*` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeductionEventData {
    pub deduction: Deduction,
    /// `deduction.succeeded`: the provider charged after payhost had
    /// recorded the deduction failed (the provider's word wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DeductionStateSchema>)]
    pub previous_state: Option<store::DeductionState>,
    /// `deduction.provider_mismatch`: what contradicts the deduction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `deduction.provider_mismatch`: the provider's statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub reported: Option<Value>,
}

impl DeductionEventData {
    pub fn of(d: &store::Deduction) -> Self {
        DeductionEventData {
            deduction: Deduction::from(d),
            previous_state: None,
            reason: None,
            reported: None,
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("event data serializes")
    }
}

/// The states of a contract (the schema of [`store::ContractState`]).
#[derive(ToSchema)]
#[schema(as = ContractState)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ContractStateSchema {
    PendingSignature,
    Active,
    Paused,
    Terminated,
}

/// The states of a deduction (the schema of [`store::DeductionState`]).
#[derive(ToSchema)]
#[schema(as = DeductionState)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum DeductionStateSchema {
    Created,
    Pending,
    Succeeded,
    Failed,
}

/// An event's `data`: [`EventData`] for `payment.*` and `refund.*`
/// events, [`PayoutEventData`] for `payout.*`, [`ContractEventData`] for
/// `contract.*`, [`DeductionEventData`] for `deduction.*` (the schema only).
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum EventPayload {
    Payment(EventData),
    Payout(PayoutEventData),
    Contract(ContractEventData),
    Deduction(DeductionEventData),
}

/// The states of a payout (the schema of [`store::PayoutState`]).
#[derive(ToSchema)]
#[schema(as = PayoutState)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum PayoutStateSchema {
    Created,
    Accepted,
    PendingUserConfirmation,
    Processing,
    Succeeded,
    Failed,
    Cancelled,
}

/// The states of a payment (the schema of [`OrderState`]).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum PaymentState {
    Created,
    Pending,
    Paid,
    PartiallyRefunded,
    Refunded,
    Closed,
    Failed,
}

/// The states of a refund (the schema of [`store::RefundState`]).
#[derive(ToSchema)]
#[schema(as = RefundState)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RefundStateSchema {
    Pending,
    Succeeded,
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_751_642_534_123, "2025-07-04T15:22:14.123Z"),
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
        ] {
            assert_eq!(Timestamp(ms).to_string(), text);
            assert_eq!(text.parse::<Timestamp>().unwrap(), Timestamp(ms));
            let json = serde_json::to_value(Timestamp(ms)).unwrap();
            assert_eq!(json, text);
            assert_eq!(
                serde_json::from_value::<Timestamp>(json).unwrap(),
                Timestamp(ms)
            );
        }
        // Any offset is read; what is sent is always UTC.
        let t: Timestamp = "2025-07-04T23:22:14+08:00".parse().unwrap();
        assert_eq!(t.to_string(), "2025-07-04T15:22:14.000Z");
        assert_eq!(t.as_secs(), 1_751_642_534);
        for bad in ["2025-07-04T15:22:14", "1751642534", "", "yesterday"] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<Timestamp>(serde_json::json!(1_751_642_534)).is_err());
    }

    #[test]
    fn event_data_leaves_out_what_its_type_does_not_carry() {
        let order: Order = serde_json::from_value(serde_json::json!({
            "merchant_id": "m", "merchant_order_no": "O-1", "adapter": "a",
            "adapter_digest": "d", "method": "x", "description": "t",
            "amount_minor": 100, "currency": "CNY", "state": "paid",
            "provider_trade_no": null, "channel_transaction_id": "42",
            "payer_app_id": null, "payer_openid": null, "client_ip": null,
            "pay_action": null, "refunded_minor": 0, "expires_at": null,
            "paid_at": 2000, "attach": null, "metadata": null,
            "next_poll_at": null, "poll_attempts": 0, "created_at": 1000,
            "updated_at": 2000, "version": 1
        }))
        .unwrap();
        let data = EventData::of(&order).to_json();
        let keys: Vec<_> = data.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["payment"]);
        assert_eq!(data["payment"]["amount"], 100);
        assert_eq!(data["payment"]["paid_at"], "1970-01-01T00:00:02.000Z");
        let back: EventData = serde_json::from_value(data).unwrap();
        assert_eq!(back.payment, Payment::from(&order));
    }

    #[test]
    fn a_reported_statement_uses_the_same_amount_and_time_shapes() {
        let v = reported(serde_json::json!({
            "state": "paid", "amount": {"minor": 1, "currency": "CNY"}, "paid_at": 1_751_642_534
        }));
        assert_eq!(
            v,
            serde_json::json!({
                "state": "paid", "amount": 1, "currency": "CNY",
                "paid_at": "2025-07-04T15:22:14.000Z"
            })
        );
        let v = reported(serde_json::json!({ "state": "paid", "amount": null }));
        assert_eq!(v["amount"], Value::Null);
        assert_eq!(v["currency"], Value::Null);
    }
}
