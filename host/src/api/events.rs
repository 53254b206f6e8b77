//! `GET /v1/events`: the merchant's webhook events and their delivery.

use super::problem::ApiError;
use super::{AppState, AuthMerchant};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only events after this id (for paging).
    pub after: Option<i64>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: i64,
    /// The `webhook-id` the callback carries.
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub created_at: i64,
    pub data: serde_json::Value,
    pub delivery: Delivery,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// delivered, retrying, gave_up, undeliverable or no_callback.
    pub status: String,
    /// Why an `undeliverable` event cannot be delivered:
    /// `merchant_not_configured` or `no_callback_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub attempts: i64,
    pub delivered_at: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
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
    let limit = params.limit.unwrap_or(50).clamp(1, 500);
    let events = state
        .store
        .list_events(&merchant.id, limit, params.after)
        .await?;
    let events = events
        .into_iter()
        .map(|e| {
            let status = if e.delivered_at.is_some() {
                "delivered"
            } else if e.undeliverable.is_some() {
                "undeliverable"
            } else if e.gave_up {
                "gave_up"
            } else if merchant.callback_url.is_none() {
                "no_callback"
            } else {
                "retrying"
            };
            EventView {
                id: e.id,
                event_id: e.event_id,
                kind: e.event_type,
                created_at: e.created_at / 1000,
                data: e.payload,
                delivery: Delivery {
                    status: status.into(),
                    reason: e.undeliverable,
                    attempts: e.attempts,
                    delivered_at: e.delivered_at.map(|t| t / 1000),
                    next_attempt_at: (e.delivered_at.is_none() && !e.gave_up)
                        .then_some(e.next_attempt_at / 1000),
                    last_error: e.last_error,
                },
            }
        })
        .collect();
    Ok(Json(EventList { events }))
}
