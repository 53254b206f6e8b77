//! `/v1/notify/{adapter}/{merchant}`: providers' asynchronous notifications.
//!
//! Every notification is recorded with its verdict, verified ones are
//! applied to their orders, and the provider gets exactly the answer the
//! adapter produced -- after all of that is committed.

use super::problem::ApiError;
use super::{AppState, now_ms};
use crate::CallError;
use crate::contract::{HttpMethod, InboundHttp, NotifyEvent};
use crate::flows::{self, Verdict};
use crate::runtime::{Operation, Output};
use crate::store::NotificationRecord;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// `POST|GET /v1/notify/{adapter}/{merchant}`
#[utoipa::path(post, path = "/v1/notify/{adapter}/{merchant}",
    params(("adapter" = String, Path), ("merchant" = String, Path)),
    request_body(content = Vec<u8>, description = "The provider's notification, verbatim", content_type = "*/*"),
    responses((status = 200, description = "The acknowledgement the provider expects, verbatim"),
              (status = "4XX", body = super::problem::Problem), (status = "5XX", body = super::problem::Problem)))]
pub async fn receive(
    State(state): State<AppState>,
    Path((adapter_name, merchant_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant = state
        .merchants
        .get(&merchant_id)
        .filter(|m| m.adapter == adapter_name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no merchant `{merchant_id}` using adapter `{adapter_name}`"
            ))
        })?
        .clone();
    // Parsed by the merchant's active (or pinned) version, whichever
    // version created the order: the contract is the same.
    let adapter = state.adapter_for(&merchant)?;
    let inbound = InboundHttp {
        method: if method == Method::GET {
            HttpMethod::Get
        } else {
            HttpMethod::Post
        },
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
    };
    let mut record = NotificationRecord {
        id: 0,
        merchant_id: merchant.id.clone(),
        adapter: adapter_name.clone(),
        received_at: now_ms(),
        method: method.to_string(),
        path: inbound.path.clone(),
        query: inbound.query.clone(),
        headers: serde_json::to_value(&inbound.headers).unwrap_or_default(),
        body: inbound.body.clone(),
        verdict: String::new(),
        detail: None,
        merchant_order_no: None,
    };
    let ctx = state.call_context(&merchant);
    let result = state
        .metrics
        .time_call(
            &adapter_name,
            "parse_notify",
            state.runtime.call(
                &adapter,
                &merchant.adapter_config,
                ctx,
                Operation::ParseNotify(inbound),
            ),
        )
        .await;
    match result {
        Ok(Output::Notify(outcome)) => {
            let mut verdicts = Vec::new();
            for event in &outcome.events {
                let (order_no, verdict) = match event {
                    NotifyEvent::Payment(status) => {
                        let no = status.order.merchant_order_no.clone();
                        let v = flows::apply_trade_status(&state, &merchant, &no, status, true)
                            .await
                            .map(|(_, v)| v);
                        (no, v)
                    }
                    NotifyEvent::Refund(status) => {
                        let no = status.order.merchant_order_no.clone();
                        let v = flows::apply_refund_status(
                            &state,
                            &merchant,
                            &no,
                            &status.refund_no,
                            status,
                        )
                        .await
                        .map(|(_, v)| v);
                        (no, v)
                    }
                };
                let verdict = match verdict {
                    Ok(v) => v,
                    // A verified event about an order payhost does not have.
                    Err(e) if e.status == StatusCode::NOT_FOUND => {
                        Verdict::Mismatch("unknown order or refund".into())
                    }
                    Err(e) => return Err(e),
                };
                record.merchant_order_no.get_or_insert(order_no);
                verdicts.push(verdict);
            }
            record.verdict = summarize(&verdicts);
            record.detail = (!verdicts.is_empty()).then(|| {
                verdicts
                    .iter()
                    .map(Verdict::detail)
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            state.store.record_notification(&record).await?;
            state.metrics.notification(&adapter_name, &record.verdict);
            // The provider hears success only for what payhost took in: a
            // contradiction, or a paid statement it could not confirm, is
            // refused so the provider keeps the notification and repeats it.
            if let Some(v) = verdicts
                .iter()
                .find(|v| matches!(v, Verdict::Mismatch(_) | Verdict::Unconfirmed))
            {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "notification_not_applied",
                    "The notification contradicts the order or could not be confirmed",
                    v.detail(),
                ));
            }
            Ok(ack(
                outcome.ack.status,
                &outcome.ack.headers,
                outcome.ack.body,
            ))
        }
        Ok(other) => Err(ApiError::internal(format!(
            "adapter answered parse-notify with {other:?}"
        ))),
        Err(err) => {
            record.verdict = "unverified".into();
            record.detail = Some(err.to_string());
            state.store.record_notification(&record).await?;
            state.metrics.notification(&adapter_name, &record.verdict);
            match err {
                CallError::Adapter { ack: Some(a), .. } => Ok(ack(a.status, &a.headers, a.body)),
                other => Err(ApiError::from(other)),
            }
        }
    }
}

/// "rejected" if anything contradicted, "unconfirmed" if a paid statement
/// could not be checked, "applied" if anything changed, else "duplicate"
/// (or "empty" for a notification with no events).
fn summarize(verdicts: &[Verdict]) -> String {
    let any = |w: &str| verdicts.iter().any(|v| v.word() == w);
    if any("rejected") {
        "rejected".into()
    } else if any("unconfirmed") {
        "unconfirmed".into()
    } else if any("applied") {
        "applied".into()
    } else if verdicts.is_empty() {
        "empty".into()
    } else {
        "duplicate".into()
    }
}

fn ack(status: u16, headers: &[(String, String)], body: Vec<u8>) -> Response {
    let mut resp = (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}
