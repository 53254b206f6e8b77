//! `GET /v1/events`: the merchant's webhook events and their delivery.

use super::problem::ApiError;
use super::{AppState, AuthMerchant};
use crate::resources::Timestamp;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only events after this `id` (for paging).
    pub after: Option<i64>,
    /// At most this many (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// The most events one page lists.
pub const MAX_LIMIT: i64 = 500;

/// One event: the webhook's `type`, `created_at` and `data` as it was (or
/// will be) delivered, and how its delivery stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// The paging cursor (`after`).
    pub id: i64,
    /// The webhook's `id` and `webhook-id` header.
    pub event_id: String,
    #[serde(rename = "type")]
    #[schema(value_type = crate::webhooks::EventType)]
    pub kind: String,
    pub created_at: Timestamp,
    #[schema(value_type = crate::resources::EventPayload)]
    pub data: serde_json::Value,
    pub delivery: Delivery,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub status: DeliveryStatus,
    /// Why an `undeliverable` event cannot be delivered:
    /// `merchant_not_configured` or `no_callback_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub attempts: i64,
    pub delivered_at: Option<Timestamp>,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// How an event's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Delivered,
    /// Not yet delivered; tried again at `next_attempt_at`.
    Retrying,
    /// Every attempt failed.
    GaveUp,
    /// Cannot be delivered (see `reason`).
    Undeliverable,
    /// The merchant has no `callback_url`; read the events here.
    NoCallback,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventList {
    pub events: Vec<EventView>,
}

/// `GET /v1/events`
#[utoipa::path(get, path = "/v1/events", params(ListParams),
    responses((status = 200, body = EventList), (status = "4XX", body = super::problem::Problem)), security(("merchant_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AuthMerchant(merchant): AuthMerchant,
    super::ApiQuery(params): super::ApiQuery<ListParams>,
) -> Result<Json<EventList>, ApiError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation(format!(
            "`limit` must be 1 to {MAX_LIMIT}"
        )));
    }
    let events = state
        .store
        .list_events(&merchant.id, limit, params.after)
        .await?;
    let events = events
        .into_iter()
        .map(|e| {
            let status = if e.delivered_at.is_some() {
                DeliveryStatus::Delivered
            } else if e.undeliverable.is_some() {
                DeliveryStatus::Undeliverable
            } else if e.gave_up {
                DeliveryStatus::GaveUp
            } else if merchant.callback_url.is_none() {
                DeliveryStatus::NoCallback
            } else {
                DeliveryStatus::Retrying
            };
            let created_at = crate::webhooks::event_time(&e.event_id, Timestamp(e.created_at));
            EventView {
                id: e.id,
                event_id: e.event_id,
                kind: e.event_type,
                created_at,
                data: e.payload,
                delivery: Delivery {
                    status,
                    reason: e.undeliverable,
                    attempts: e.attempts,
                    delivered_at: e.delivered_at.map(Timestamp),
                    next_attempt_at: (e.delivered_at.is_none() && !e.gave_up)
                        .then_some(Timestamp(e.next_attempt_at)),
                    last_error: e.last_error,
                },
            }
        })
        .collect();
    Ok(Json(EventList { events }))
}
