//! Durable state of the payment front: orders, refunds, raw provider
//! notifications, idempotency records and the merchant-webhook outbox.
//!
//! [`Store`] is the one interface the rest of the host uses, as
//! `Arc<dyn Store>`. [`SqliteStore`] is the embedded default, for one
//! machine; [`PgStore`] keeps the same state in PostgreSQL for several
//! replicas. Both run the same statements (`sql`), map rows the same way
//! (`rows`) and answer held idempotency keys the same way (`keys`); one
//! test suite (`suite`) runs against each.
//!
//! Every method returns only after the change is committed, so whatever a
//! caller acknowledges (an HTTP answer, a provider's notification) is
//! already durable.
//!
//! Timestamps are unix milliseconds (`i64`); money is an `i64` count of
//! minor units plus an ISO 4217 currency code.
//!
//! # Two commits per create, with or without an `Idempotency-Key`
//!
//! A create waits for exactly two commits, each shared with whatever other
//! requests' writes the writer batches with it (group commit):
//!
//! 1. [`Store::insert_order_claiming`]: the order row (`created`, with a
//!    poll time for the reconciler) and, in the same transaction, the
//!    claim of the request's key. Then the provider is asked.
//! 2. [`Store::update_order_completing`]: the provider's acceptance and,
//!    in the same transaction, the answer stored under the key.
//!
//! Why this keeps every guarantee of claiming the key in a commit of its
//! own first:
//!
//! - *Durable before acknowledged.* The client's answer is sent after the
//!   second commit returns; nothing it sees is only in memory.
//! - *One request per key.* The claim and the insert are one write on the
//!   single writer, so of any number of concurrent requests with a key one
//!   claims it and the others find it held, as with a separate claim
//!   (`idempotency_in_progress`, `idempotency_key_reused`, or the stored
//!   answer replayed), and nothing of theirs is written. Within one process
//!   a second request with a running key is turned away before any store
//!   work (`api::idempotency::run_claiming`).
//! - *Same key, same answer.* The answer is stored in the transaction that
//!   makes the order what the answer says, so a key is never completed with
//!   an answer its order contradicts. A create that fails before its insert
//!   (a refusal, the payer's cap) never claimed the key; it settles it in
//!   one commit ([`Store::idempotency_settle`]), keeping its answer, or
//!   giving the earlier request's answer if the key was taken meanwhile.
//! - *A crash between the two commits loses no order a client saw.* No
//!   client saw anything yet. The order is `created` and the reconciler
//!   asks the provider about it after the notification delay; the key stays
//!   in progress, so a retry with it is told to wait until the key's lease
//!   ends and then runs again, deduplicated by its order number. That is
//!   what claiming first gave, minus the case of a claim committed without
//!   its order.
//! - *A crash before the first commit* leaves nothing: neither order nor
//!   claim, and a retry runs as new.
//!
//! A verified notification that changes a payment waits for one commit:
//! the change, its outbox event and the notification's record
//! ([`Store::update_order_noting`]). The provider is acknowledged after it,
//! and a crash before it leaves neither, so the provider's repeat is
//! applied as the first.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub mod contracts;
mod keys;
pub mod payouts;
mod rows;
mod sql;
pub mod sqlite;
#[cfg(test)]
mod suite;
#[cfg(test)]
pub(crate) mod test_db;

pub use contracts::{
    Contract, ContractState, Deduction, DeductionCaps, DeductionHistory, DeductionRefusal,
    DeductionState,
};
pub use payouts::{Payout, PayoutCaps, PayoutState, PayoutTotals};
pub use sqlite::SqliteStore;
pub mod postgres;
pub use postgres::PgStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or written (disk full, I/O error,
    /// writer gone). The API answers 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A compare-and-set lost: the row's `version` is no longer the one the
    /// caller read. Re-read and decide again.
    #[error("version conflict: the row changed since it was read")]
    Conflict,
    /// Stored data cannot be understood (unknown state word, bad JSON).
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    /// An insert under a [`DailyCap`] would take the payer past it; nothing
    /// was written. `counted_minor` is what the payer already has that day.
    #[error(
        "the payer's daily cap would be exceeded ({counted_minor} minor units already counted)"
    )]
    CapExceeded { counted_minor: i64 },
    /// A payout insert under [`PayoutCaps`] would pass `limit` (its
    /// maximum `max`; `counted` is what the day already holds); nothing
    /// was written.
    #[error("the payout would pass the {limit} limit of {max} ({counted} already counted)")]
    PayoutLimit {
        limit: &'static str,
        max: i64,
        counted: i64,
    },
    /// A deduction insert under [`DeductionCaps`] was refused (the contract
    /// is not active, a limit, too soon after a failure); nothing was
    /// written.
    #[error("the deduction was refused: {0:?}")]
    Deduction(DeductionRefusal),
}

/// A per-payer daily amount cap checked inside the insert's transaction, so
/// concurrent creates for one payer cannot together pass it.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyCap {
    pub payer_openid: String,
    /// Start of the payer's day in the merchant's time zone (Unix ms).
    pub since: i64,
    pub max_minor: i64,
    /// What this order counts against the cap: its amount in the currency
    /// the cap is in (a CNY order of a EUR merchant, converted). Stored
    /// with the order, so later sums count it the same way.
    pub counts_minor: i64,
}

/// What an inserted order stores as `limit_minor`: its count against
/// `cap` when that differs from its amount (NULL: the amount counts).
fn limit_minor(order: &Order, cap: Option<&DailyCap>) -> Option<i64> {
    cap.map(|c| c.counts_minor)
        .filter(|&counts| counts != order.amount_minor)
}

/// Completes an `Idempotency-Key` in the transaction that writes the
/// order, with the answer rendered from the order as stored: the key can
/// never be left in progress (or answer differently) for a create whose
/// order was committed.
pub struct KeyCompletion {
    pub merchant_id: String,
    pub key: String,
    pub status: u16,
    pub render: RenderAnswer,
}

/// An `Idempotency-Key` to claim in the transaction of an operation's first
/// write ([`Store::insert_order_claiming`]), instead of in a commit of its
/// own before it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyClaim {
    pub merchant_id: String,
    pub key: String,
    /// Canonical hash of the request (route and body).
    pub request_hash: String,
    /// When the request arrived (Unix ms): the claim's lease starts here.
    pub now: i64,
}

/// Result of a write that first claims an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub enum Claimed<T> {
    /// The key was claimed with the write (or there was no key).
    Ran(T),
    /// The key belongs to an earlier request (in progress, completed, or
    /// used with another body: never [`IdempotencyBegin::Started`]);
    /// nothing was written.
    Held(IdempotencyBegin),
}

/// Renders the answer to keep under a key from the order as stored.
pub type RenderAnswer = Box<dyn FnOnce(&Order) -> Vec<u8> + Send>;

impl std::fmt::Debug for KeyCompletion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCompletion")
            .field("merchant_id", &self.merchant_id)
            .field("key", &self.key)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// State of an order; see [`crate::orders`] for the legal transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    Created,
    Pending,
    Paid,
    PartiallyRefunded,
    Refunded,
    Closed,
    Failed,
}

impl OrderState {
    pub const ALL: [OrderState; 7] = [
        OrderState::Created,
        OrderState::Pending,
        OrderState::Paid,
        OrderState::PartiallyRefunded,
        OrderState::Refunded,
        OrderState::Closed,
        OrderState::Failed,
    ];

    /// The word stored in the database and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Created => "created",
            OrderState::Pending => "pending",
            OrderState::Paid => "paid",
            OrderState::PartiallyRefunded => "partially_refunded",
            OrderState::Refunded => "refunded",
            OrderState::Closed => "closed",
            OrderState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<OrderState> {
        OrderState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Refunded orders never change state again; closed and failed ones
    /// only when the provider proves the payer paid after all.
    pub fn is_terminal(self) -> bool {
        self == OrderState::Refunded
    }

    /// Payhost has given up on the payment (closed, failed), though the
    /// provider may still report it paid.
    pub fn is_given_up(self) -> bool {
        matches!(self, OrderState::Closed | OrderState::Failed)
    }
}

impl std::fmt::Display for OrderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One payment order, keyed by (merchant, merchant order no).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub merchant_id: String,
    pub merchant_order_no: String,
    /// Adapter name and the digest of the component that created the order.
    pub adapter: String,
    pub adapter_digest: String,
    /// Payment method, e.g. `wechat_mini_program`.
    pub method: String,
    pub description: String,
    pub amount_minor: i64,
    pub currency: String,
    pub state: OrderState,
    /// The provider's own trade number (some providers accept only it).
    pub provider_trade_no: Option<String>,
    /// WeChat Pay's `transaction_id`, once known.
    pub channel_transaction_id: Option<String>,
    pub payer_app_id: Option<String>,
    pub payer_openid: Option<String>,
    pub client_ip: Option<String>,
    /// What the payer needs (wx.requestPayment parameters, a URL), as JSON.
    pub pay_action: Option<serde_json::Value>,
    /// Sum of succeeded refunds, never above `amount_minor`.
    pub refunded_minor: i64,
    pub expires_at: Option<i64>,
    pub paid_at: Option<i64>,
    pub attach: Option<String>,
    /// Merchant-supplied metadata, returned as given (`null` when none).
    pub metadata: serde_json::Value,
    /// When the reconciler should next `query` this order (None: never).
    pub next_poll_at: Option<i64>,
    pub poll_attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Incremented by every update; the compare-and-set token.
    pub version: i64,
}

/// State of a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    Pending,
    Succeeded,
    Failed,
}

impl RefundState {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundState::Pending => "pending",
            RefundState::Succeeded => "succeeded",
            RefundState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RefundState> {
        [
            RefundState::Pending,
            RefundState::Succeeded,
            RefundState::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for RefundState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One refund of an order, keyed by (merchant, order no, refund no).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub merchant_id: String,
    pub merchant_order_no: String,
    pub refund_no: String,
    pub amount_minor: i64,
    pub currency: String,
    pub state: RefundState,
    pub provider_refund_id: Option<String>,
    pub reason: Option<String>,
    /// When the reconciler next asks the provider about a pending refund.
    pub next_poll_at: Option<i64>,
    pub poll_attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

/// An event to append to the webhook outbox together with a state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// e.g. `payment.paid`, `refund.succeeded`.
    pub event_type: String,
    pub payload: serde_json::Value,
}

/// One outbox entry: a webhook to deliver to a merchant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// Store-assigned, increasing; used for paging.
    pub id: i64,
    /// `evt_` + ULID; the Standard Webhooks `webhook-id`.
    pub event_id: String,
    pub merchant_id: String,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
    pub gave_up: bool,
    /// Why the event can never be delivered (e.g. `merchant_not_configured`,
    /// `no_callback_url`); such an event is also `gave_up`.
    #[serde(default)]
    pub undeliverable: Option<String>,
}

/// A provider notification exactly as received, with what the host made of
/// it. Recorded whether or not it verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationRecord {
    /// Ignored on insert; the store assigns it.
    pub id: i64,
    pub merchant_id: String,
    pub adapter: String,
    pub received_at: i64,
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
    /// `applied` | `duplicate` | `rejected` | `unverified`.
    pub verdict: String,
    pub detail: Option<String>,
    pub merchant_order_no: Option<String>,
    /// The body's size as received. Larger than `body.len()` when only a
    /// prefix was kept (notifications that did not verify).
    #[serde(default)]
    pub received_bytes: i64,
}

/// The verdicts of notifications that were not verified as the provider's:
/// kept truncated, and pruned after their retention period.
pub const UNVERIFIED_VERDICTS: [&str; 2] = ["unverified", "too_large"];

/// What [`Store::prune`] may delete: rows older than each cutoff (unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Idempotency records created before this.
    pub idempotency_before: i64,
    /// Unverified notifications received before this.
    pub unverified_before: i64,
    /// Outbox events delivered before this.
    pub delivered_before: i64,
    /// Most rows of each kind deleted by one call, so one call is one short
    /// transaction that payment writes need not wait long for.
    pub batch: i64,
}

/// Rows deleted by one [`Store::prune`] call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub idempotency: u64,
    pub notifications: u64,
    pub outbox: u64,
}

impl PruneReport {
    /// Whether any kind hit the batch size (more may be left).
    pub fn full(&self, batch: i64) -> bool {
        let batch = u64::try_from(batch).unwrap_or(0);
        self.idempotency >= batch || self.notifications >= batch || self.outbox >= batch
    }
}

/// Result of an insert that must never create two rows for one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted<T> {
    /// The row was created.
    New(T),
    /// A row with that key already existed; it is returned unchanged.
    Existing(T),
}

impl<T> Inserted<T> {
    pub fn is_new(&self) -> bool {
        matches!(self, Inserted::New(_))
    }

    pub fn into_inner(self) -> T {
        match self {
            Inserted::New(t) | Inserted::Existing(t) => t,
        }
    }
}

/// Outcome of claiming an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyBegin {
    /// This caller owns the key: perform the request, then call
    /// [`Store::idempotency_complete`] (or [`Store::idempotency_release`]).
    Started,
    /// Another request with this key is still running (answer 409).
    InProgress,
    /// The key was used before with the same request; replay its answer.
    Completed { status: u16, body: Vec<u8> },
    /// The key was used before with a different request body (answer 409).
    Mismatch,
}

/// Durable storage of the payment front. All methods commit before they
/// return.
#[async_trait]
pub trait Store: Send + Sync {
    /// Inserts a new order, or returns the existing one for the same
    /// (merchant, merchant order no) without changing it.
    async fn insert_order(&self, order: &Order) -> Result<Inserted<Order>, StoreError> {
        self.insert_order_capped(order, None).await
    }

    /// [`Store::insert_order`], refusing with [`StoreError::CapExceeded`]
    /// (writing nothing) when the payer's open and paid orders since
    /// `cap.since`, plus this one, would exceed `cap.max_minor`. Counted in
    /// the same transaction as the insert.
    async fn insert_order_capped(
        &self,
        order: &Order,
        cap: Option<&DailyCap>,
    ) -> Result<Inserted<Order>, StoreError>;

    /// [`Store::insert_order_capped`], first claiming `claim` as
    /// [`Store::idempotency_begin`] does, in one transaction: a key held by
    /// another request writes nothing and answers [`Claimed::Held`]; a
    /// failed insert (the cap, the store) leaves the key unclaimed.
    ///
    /// This default takes two commits; a store that can make it one
    /// transaction should.
    async fn insert_order_claiming(
        &self,
        order: &Order,
        cap: Option<&DailyCap>,
        claim: Option<&KeyClaim>,
    ) -> Result<Claimed<Inserted<Order>>, StoreError> {
        if let Some(c) = claim {
            let begin = self
                .idempotency_begin(&c.merchant_id, &c.key, &c.request_hash, c.now)
                .await?;
            if begin != IdempotencyBegin::Started {
                return Ok(Claimed::Held(begin));
            }
        }
        match self.insert_order_capped(order, cap).await {
            Ok(inserted) => Ok(Claimed::Ran(inserted)),
            Err(e) => {
                if let Some(c) = claim {
                    self.idempotency_release(&c.merchant_id, &c.key).await?;
                }
                Err(e)
            }
        }
    }

    async fn get_order(
        &self,
        merchant_id: &str,
        merchant_order_no: &str,
    ) -> Result<Option<Order>, StoreError>;

    /// Writes `order` if the stored version equals `order.version` and
    /// appends `events` to the outbox in the same transaction. Returns the
    /// stored order (version + 1, fresh `updated_at`); [`StoreError::Conflict`]
    /// when the version moved (or the order does not exist), in which case
    /// nothing is written.
    async fn update_order(&self, order: &Order, events: &[NewEvent]) -> Result<Order, StoreError> {
        self.update_order_completing(order, events, None).await
    }

    /// Deletes an order that no provider was asked about: only while it is
    /// still `created` without a pay action, at `order.version` (a row
    /// anything else has changed meanwhile stays). Returns whether it was
    /// deleted. Its number is then free again.
    async fn delete_unsent_order(&self, order: &Order) -> Result<bool, StoreError>;

    /// [`Store::update_order`], also completing an `Idempotency-Key` in the
    /// same transaction.
    async fn update_order_completing(
        &self,
        order: &Order,
        events: &[NewEvent],
        completion: Option<KeyCompletion>,
    ) -> Result<Order, StoreError>;

    /// Records a verified provider statement that contradicts an order,
    /// once per `fingerprint`: the first time it also appends `event` and
    /// returns true; repeats (a provider retrying its notification) only
    /// count and return false.
    async fn record_mismatch(
        &self,
        merchant_id: &str,
        merchant_order_no: &str,
        fingerprint: &str,
        event: &NewEvent,
    ) -> Result<bool, StoreError>;

    /// Inserts a refund and compare-and-sets `order` (typically unchanged
    /// apart from its version, which serializes refunds of one order) with
    /// the events, in one transaction. An existing refund with the same
    /// number is returned as `Existing` and nothing is written.
    async fn insert_refund(
        &self,
        refund: &Refund,
        order: &Order,
        events: &[NewEvent],
    ) -> Result<Inserted<Refund>, StoreError>;

    /// Compare-and-sets `refund` and, when given, `order`, appending the
    /// events, in one transaction.
    async fn update_refund(
        &self,
        refund: &Refund,
        order: Option<&Order>,
        events: &[NewEvent],
    ) -> Result<Refund, StoreError>;

    async fn get_refund(
        &self,
        merchant_id: &str,
        merchant_order_no: &str,
        refund_no: &str,
    ) -> Result<Option<Refund>, StoreError>;

    /// Refunds of one order, oldest first.
    async fn list_refunds(
        &self,
        merchant_id: &str,
        merchant_order_no: &str,
    ) -> Result<Vec<Refund>, StoreError>;

    /// Inserts a payout (at version 1) unless one with its number exists,
    /// which is returned unchanged. Refuses with
    /// [`StoreError::PayoutLimit`], writing nothing, when the merchant's
    /// day would pass one of `caps`; counted in the insert's transaction.
    async fn insert_payout(
        &self,
        payout: &Payout,
        caps: &PayoutCaps,
    ) -> Result<Inserted<Payout>, StoreError>;

    async fn get_payout(
        &self,
        merchant_id: &str,
        payout_no: &str,
    ) -> Result<Option<Payout>, StoreError>;

    /// Compare-and-sets `payout` (its amount and payee never change) and
    /// appends `events`, in one transaction; [`StoreError::Conflict`] when
    /// the version moved.
    async fn update_payout(
        &self,
        payout: &Payout,
        events: &[NewEvent],
    ) -> Result<Payout, StoreError>;

    /// Payouts not final with `next_poll_at <= now`, earliest first, leased
    /// as [`Store::orders_to_poll`] leases orders.
    async fn payouts_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Payout>, StoreError>;

    /// Inserts a contract (at version 1) unless one with its number
    /// exists, which is returned unchanged.
    async fn insert_contract(&self, contract: &Contract) -> Result<Inserted<Contract>, StoreError>;

    async fn get_contract(
        &self,
        merchant_id: &str,
        contract_no: &str,
    ) -> Result<Option<Contract>, StoreError>;

    /// Compare-and-sets `contract` (its template never changes) and appends
    /// `events`, in one transaction.
    async fn update_contract(
        &self,
        contract: &Contract,
        events: &[NewEvent],
    ) -> Result<Contract, StoreError>;

    /// Contracts waiting for their signature with `next_poll_at <= now`,
    /// leased as [`Store::orders_to_poll`] leases orders.
    async fn contracts_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Contract>, StoreError>;

    /// Inserts a deduction (at version 1) unless one with its number
    /// exists, which is returned unchanged. In the insert's transaction it
    /// reads the contract and its deductions and refuses with
    /// [`StoreError::Deduction`], writing nothing, when `caps` say no.
    async fn insert_deduction(
        &self,
        deduction: &Deduction,
        caps: &DeductionCaps,
    ) -> Result<Inserted<Deduction>, StoreError>;

    async fn get_deduction(
        &self,
        merchant_id: &str,
        deduction_no: &str,
    ) -> Result<Option<Deduction>, StoreError>;

    /// Compare-and-sets `deduction` (its contract and amount never change)
    /// and appends `events`, in one transaction.
    async fn update_deduction(
        &self,
        deduction: &Deduction,
        events: &[NewEvent],
    ) -> Result<Deduction, StoreError>;

    /// Deletes a deduction no provider was asked about: only while it is
    /// still `created` at `deduction.version`. Returns whether it was
    /// deleted; its number is then free again and it counts for nothing.
    async fn delete_unsent_deduction(&self, deduction: &Deduction) -> Result<bool, StoreError>;

    /// What a contract's deductions hold: the day's count from `since`,
    /// and the run of failures after `failures_from` (Unix ms).
    async fn deduction_history(
        &self,
        merchant_id: &str,
        contract_no: &str,
        since: i64,
        failures_from: i64,
    ) -> Result<DeductionHistory, StoreError>;

    /// Deductions not final with `next_poll_at <= now`, leased likewise.
    async fn deductions_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Deduction>, StoreError>;

    /// Records a raw provider notification; returns its id.
    async fn record_notification(&self, record: &NotificationRecord) -> Result<i64, StoreError>;

    /// [`Store::update_order`], recording the notification that caused the
    /// change in the same transaction (nothing is written on a lost
    /// compare-and-set). The default takes two commits; a store that can
    /// make it one transaction should.
    async fn update_order_noting(
        &self,
        order: &Order,
        events: &[NewEvent],
        note: &NotificationRecord,
    ) -> Result<Order, StoreError> {
        let saved = self.update_order(order, events).await?;
        self.record_notification(note).await?;
        Ok(saved)
    }

    /// Claims `key` for a request whose canonical hash is `request_hash`.
    /// Exactly one of any number of concurrent callers gets `Started`.
    async fn idempotency_begin(
        &self,
        merchant_id: &str,
        key: &str,
        request_hash: &str,
        now: i64,
    ) -> Result<IdempotencyBegin, StoreError>;

    /// Stores the answer of a started request, for replay.
    async fn idempotency_complete(
        &self,
        merchant_id: &str,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), StoreError>;

    /// Forgets an in-progress key after a failure that changed nothing, so
    /// the client may retry with the same key.
    async fn idempotency_release(&self, merchant_id: &str, key: &str) -> Result<(), StoreError>;

    /// For a request that answered without claiming its key (it failed
    /// before the write that claims it): claims `claim` as
    /// [`Store::idempotency_begin`] does and, when this request gets it,
    /// completes it with `answer` at once, or leaves it free when `answer`
    /// is `None` (a "try again" answer is not kept). One transaction in a
    /// store that can; the default takes two commits.
    async fn idempotency_settle(
        &self,
        claim: &KeyClaim,
        answer: Option<(u16, &[u8])>,
    ) -> Result<IdempotencyBegin, StoreError> {
        let begin = self
            .idempotency_begin(
                &claim.merchant_id,
                &claim.key,
                &claim.request_hash,
                claim.now,
            )
            .await?;
        if begin == IdempotencyBegin::Started {
            match answer {
                Some((status, body)) => {
                    self.idempotency_complete(&claim.merchant_id, &claim.key, status, body)
                        .await?
                }
                None => {
                    self.idempotency_release(&claim.merchant_id, &claim.key)
                        .await?
                }
            }
        }
        Ok(begin)
    }

    /// Writes callers of this store have waited for to be committed, since
    /// it was opened (each is one commit a caller waits for, however many
    /// writes share it), or `None` where the store does not count them.
    /// Tests and benches divide it by requests.
    fn commit_waits(&self) -> Option<u64> {
        None
    }

    /// Undelivered events not given up whose `next_attempt_at <= now`,
    /// oldest first, leased or not: a read, which takes no lease.
    async fn due_events(&self, now: i64, limit: i64) -> Result<Vec<OutboxEvent>, StoreError>;

    async fn mark_delivered(&self, id: i64, at: i64) -> Result<(), StoreError>;

    /// Counts a failed attempt; schedules the next at `next_attempt_at`, or
    /// stops retrying when `give_up`.
    async fn mark_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: i64,
        give_up: bool,
    ) -> Result<(), StoreError>;

    /// A merchant's events in id order, those with id > `after_id`.
    async fn list_events(
        &self,
        merchant_id: &str,
        limit: i64,
        after_id: Option<i64>,
    ) -> Result<Vec<OutboxEvent>, StoreError>;

    /// Created or pending orders with `next_poll_at <= now`, earliest first.
    /// A store that replicas share leases them: they are not due again
    /// for another caller until the lease ends or the order is rescheduled,
    /// so one order is polled by one replica at a time.
    async fn orders_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Order>, StoreError>;

    /// Pending refunds with `next_poll_at <= now`, earliest first, leased
    /// as [`Store::orders_to_poll`] leases orders.
    async fn refunds_to_poll(&self, now: i64, limit: i64) -> Result<Vec<Refund>, StoreError>;

    /// Number of orders in each state (states with no orders may be absent).
    async fn count_orders_by_state(&self) -> Result<Vec<(OrderState, i64)>, StoreError>;

    /// Sum of `amount_minor` of this payer's orders created at or after
    /// `since` that are not closed or failed (for per-payer daily caps;
    /// orders still being created count, so that concurrent creates cannot
    /// pass a cap together).
    async fn paid_total_since(
        &self,
        merchant_id: &str,
        payer_openid: &str,
        since: i64,
    ) -> Result<i64, StoreError>;

    /// Checks the store answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// A merchant's recorded notifications in id order, those with id >
    /// `after_id`.
    async fn list_notifications(
        &self,
        merchant_id: &str,
        limit: i64,
        after_id: Option<i64>,
    ) -> Result<Vec<NotificationRecord>, StoreError>;

    /// Merchants with at least one due event not leased (as
    /// [`Store::due_events_of`] finds them), the one with the oldest first.
    async fn due_merchants(&self, now: i64, limit: i64) -> Result<Vec<String>, StoreError>;

    /// [`Store::due_events`] of one merchant, for delivering them: leased
    /// events left out. A store several replicas share leases what it
    /// returns for `lease_ms` (the longest the caller may take to deliver
    /// them all), or until [`Store::mark_delivered`] /
    /// [`Store::mark_failed`], so concurrent callers never get one event
    /// both, and those of a caller that died are due again once the lease
    /// ends; SQLite, one process, takes none.
    async fn due_events_of(
        &self,
        merchant_id: &str,
        now: i64,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError>;

    /// Marks every event of `merchant_id` still to deliver as undeliverable
    /// for `reason` (a stable word), with `detail` as its last error.
    /// Returns how many were marked.
    async fn mark_undeliverable(
        &self,
        merchant_id: &str,
        reason: &str,
        detail: &str,
    ) -> Result<u64, StoreError>;

    /// Makes events of `merchant_id` marked undeliverable for `reason`
    /// deliverable again, due at `now` (the cause went away). Returns how
    /// many.
    async fn revive_undeliverable(
        &self,
        merchant_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError>;

    /// Deletes, in one transaction, at most `policy.batch` rows of each of:
    /// idempotency records, unverified notifications and delivered events
    /// past their cutoffs. Nothing else.
    async fn prune(&self, policy: &PrunePolicy) -> Result<PruneReport, StoreError>;

    /// Whether several replicas share this store (PostgreSQL). The methods
    /// below then hold the cluster's adapters and request rates; on a store
    /// of one process they do nothing, and the process keeps both itself.
    fn shared(&self) -> bool {
        false
    }

    /// Takes one call from `merchant_id`'s budget for `op`: GCRA with one
    /// call per `interval_us` and a burst of `period_us / interval_us`,
    /// counted for every replica at once. `Ok(None)`: not shared; `Some(Ok)`
    /// admitted; `Some(Err(wait_us))` refused until then.
    async fn take_rate(
        &self,
        _merchant_id: &str,
        _op: &str,
        _now_us: i64,
        _interval_us: i64,
        _period_us: i64,
    ) -> Result<Option<Result<(), i64>>, StoreError> {
        Ok(None)
    }

    /// Every adapter slot the replicas published, with its versions.
    async fn adapter_slots(&self) -> Result<Vec<SharedSlot>, StoreError> {
        Ok(Vec::new())
    }

    /// A published component's bytes, by hex sha256.
    async fn adapter_blob(&self, _digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }

    /// Publishes what `slot` keeps (active first) with the bytes of each
    /// version (`blobs`, by digest; those already stored are not sent
    /// again) and tells every replica watching. Returns the slot's new
    /// generation. The last publication wins.
    async fn publish_adapter_slot(
        &self,
        _slot: &str,
        _versions: &[SharedVersion],
        _blobs: &[(String, std::sync::Arc<[u8]>)],
    ) -> Result<i64, StoreError> {
        Ok(0)
    }

    /// Calls `wake.notify_one()` whenever any replica publishes an adapter
    /// slot (and once after each (re)connection, for what was missed),
    /// until the handle is aborted. `None`: nothing to watch.
    fn watch_adapters(
        &self,
        _wake: std::sync::Arc<tokio::sync::Notify>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        None
    }
}

/// One slot as the replicas share it ([`Store::publish_adapter_slot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSlot {
    pub slot: String,
    /// Grows by one at each publication.
    pub generation: i64,
    /// The active version first, then the previous ones, newest first.
    pub versions: Vec<SharedVersion>,
}

/// One version of a shared slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedVersion {
    pub digest: String,
    pub version: String,
    pub loaded_at: i64,
    /// How it first came in (`admin`, `directory:<path>`).
    pub source: String,
}
