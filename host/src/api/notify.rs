//! `/v1/notify/{adapter}/{merchant}`: providers' asynchronous notifications.
//!
//! Every notification is recorded with its verdict, verified ones are
//! applied to their orders, and the provider gets exactly the answer the
//! adapter produced -- after all of that is committed.
//!
//! The endpoint takes no credential, so it is bounded before the adapter
//! runs ([`crate::notify_guard`]): an unknown adapter or merchant is 404
//! without the body being read; a merchant over its rate is 429, over its
//! concurrency 503, both with `Retry-After` and recorded nowhere but in
//! `/metrics`; a body over the limit is 413, one not received in time 408.
//! A notification that did not verify is recorded truncated; a verified
//! one whole.

use super::problem::ApiError;
use super::{AppState, now_ms};
use crate::CallError;
use crate::contract::{HttpMethod, InboundHttp, NotifyEvent};
use crate::flows::{self, Verdict};
use crate::notify_guard::{NotifySettings, Refused};
use crate::runtime::{Operation, Output};
use crate::store::NotificationRecord;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

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
    body: Body,
) -> Result<Response, ApiError> {
    let Some(merchant) = state
        .merchants
        .get(&merchant_id)
        .filter(|m| m.adapter == adapter_name)
        .cloned()
    else {
        state.metrics.notify_refused("unknown_merchant");
        return Err(ApiError::not_found(format!(
            "no merchant `{merchant_id}` using adapter `{adapter_name}`"
        )));
    };
    let guard = &state.notify_guard;
    // Held until the answer is ready: the body, the adapter and the store
    // writes all count against the merchant's concurrency.
    let _slot = guard.admit(&merchant.id).map_err(|r| refused(&state, r))?;
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let mut record = NotificationRecord {
        id: 0,
        merchant_id: merchant.id.clone(),
        adapter: adapter_name.clone(),
        received_at: now_ms(),
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers: serde_json::to_value(&headers).unwrap_or_default(),
        body: Vec::new(),
        verdict: String::new(),
        detail: None,
        merchant_order_no: None,
        received_bytes: 0,
    };
    let body = match read_body(body, &headers, &guard.settings).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { prefix, received }) => {
            record.body = prefix;
            record.received_bytes = received;
            record.verdict = "too_large".into();
            let max = guard.settings.max_body_bytes;
            record.detail = Some(format!("body over the {max}-byte limit"));
            guard.truncate(&mut record);
            state.store.record_notification(&record).await?;
            state.metrics.notify_refused("too_large");
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large",
                format!(
                    "a notification body may have at most {max} bytes (`notify.max_body_bytes`)"
                ),
            )
            .with("limit", "notify.max_body_bytes"));
        }
        Err(BodyError::Timeout) => {
            state.metrics.notify_refused("body_timeout");
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "The request body did not arrive in time",
                format!(
                    "the body was not received within {} ms (`notify.body_timeout_ms`)",
                    guard.settings.body_timeout_ms
                ),
            ));
        }
        Err(BodyError::Broken(e)) => {
            return Err(ApiError::validation(format!(
                "the request body could not be read: {e}"
            )));
        }
    };
    record.received_bytes = body.len() as i64;
    record.body = body.clone();
    // Parsed by the merchant's active (or pinned) version, whichever
    // version created the order: the contract is the same.
    let adapter = state.adapter_for(&merchant)?;
    let inbound = InboundHttp {
        method: if method == Method::GET {
            HttpMethod::Get
        } else {
            HttpMethod::Post
        },
        path: record.path.clone(),
        query: record.query.clone(),
        headers,
        body,
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
            // A notification of one payment is recorded with the change it
            // makes, as it would be recorded after it: one commit, not two.
            let note = match outcome.events.as_slice() {
                [NotifyEvent::Payment(status)] => {
                    let mut note = record.clone();
                    note.merchant_order_no = Some(status.order.merchant_order_no.clone());
                    note.verdict = summarize(&[Verdict::Applied]);
                    note.detail = Some(Verdict::Applied.detail());
                    Some(note)
                }
                _ => None,
            };
            let mut recorded = false;
            let mut verdicts = Vec::new();
            for event in &outcome.events {
                // The subject recorded with the notification, the verdict,
                // and what it is about when payhost does not have it.
                let (order_no, verdict, unknown) = match event {
                    NotifyEvent::Payment(status) => {
                        let no = status.order.merchant_order_no.clone();
                        let v = flows::apply_noted_trade_status(
                            &state,
                            &merchant,
                            &no,
                            status,
                            true,
                            note.as_ref(),
                        )
                        .await
                        .map(|(_, v)| v);
                        recorded |=
                            note.is_some() && v.as_ref().is_ok_and(|v| *v == Verdict::Applied);
                        (no, v, "order or refund")
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
                        (no, v, "order or refund")
                    }
                    NotifyEvent::Payout(status) => {
                        let no = status.payout.merchant_payout_no.clone();
                        let v = flows::apply_payout_status(&state, &merchant, &no, status)
                            .await
                            .map(|(_, v)| v);
                        (crate::store::payouts::mismatch_subject(&no), v, "payout")
                    }
                    NotifyEvent::Contract(status) => {
                        let no = status.contract.merchant_contract_no.clone();
                        let v = flows::apply_contract_status(&state, &merchant, &no, status)
                            .await
                            .map(|(_, v)| v);
                        (
                            crate::store::contracts::contract_subject(&no),
                            v,
                            "contract",
                        )
                    }
                    NotifyEvent::Deduction(status) => {
                        let no = status.merchant_deduction_no.clone();
                        let v = flows::apply_deduction_status(&state, &merchant, &no, status)
                            .await
                            .map(|(_, v)| v);
                        (
                            crate::store::contracts::deduction_subject(&no),
                            v,
                            "deduction",
                        )
                    }
                };
                let verdict = match verdict {
                    Ok(v) => v,
                    // A verified event about something payhost does not
                    // have: refused, so the provider sends it again.
                    Err(e) if e.status == StatusCode::NOT_FOUND => {
                        Verdict::Mismatch(format!("unknown {unknown}"))
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
            if !recorded {
                state.store.record_notification(&record).await?;
            }
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
            // Anyone can send these: keep enough to investigate, not a
            // copy of whatever a forger posted.
            guard.truncate(&mut record);
            guard.unverified(&merchant.id);
            state.store.record_notification(&record).await?;
            state.metrics.notification(&adapter_name, &record.verdict);
            match err {
                CallError::Adapter { ack: Some(a), .. } => Ok(ack(a.status, &a.headers, a.body)),
                other => Err(ApiError::from(other)),
            }
        }
    }
}

fn refused(state: &AppState, refusal: Refused) -> ApiError {
    match refusal {
        Refused::Rate { retry_after, .. } => {
            state.metrics.notify_refused("rate_limited");
            let mut e =
                ApiError::rate_limited("notify.per_merchant_per_min", retry_after.as_secs().max(1));
            e.detail = format!("{refusal}; retry in {} s", retry_after.as_secs().max(1));
            e
        }
        Refused::Unverified { retry_after, .. } => {
            state.metrics.notify_refused("unverified_budget");
            closed_by_forgeries(&refusal, retry_after)
        }
        Refused::Busy { .. } => {
            state.metrics.notify_refused("busy");
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "notify_busy",
                "Too many notifications in progress",
                format!("{refusal} (`notify.per_merchant_concurrent`); retry shortly"),
            )
            .with("limit", "notify.per_merchant_concurrent");
            e.retry_after = Some(1);
            e
        }
    }
}

/// The 429 of a merchant closed by its forgery budget; also written by the
/// accept loop straight to a connection ([`crate::server`]).
pub(crate) fn closed_by_forgeries(refusal: &Refused, retry_after: std::time::Duration) -> ApiError {
    let secs = retry_after.as_secs().max(1);
    let mut e = ApiError::rate_limited("notify.unverified_per_min", secs);
    e.detail = format!("{refusal}; retry in {secs} s");
    e
}

/// Why a body was not taken.
enum BodyError {
    /// Over the limit: what was read of it (nothing when Content-Length
    /// already said so) and how many bytes were read or declared.
    TooLarge {
        prefix: Vec<u8>,
        received: i64,
    },
    Timeout,
    Broken(String),
}

/// Reads the body up to `max_body_bytes` within `body_timeout_ms`.
async fn read_body(
    body: Body,
    headers: &[(String, String)],
    settings: &NotifySettings,
) -> Result<Vec<u8>, BodyError> {
    let max = settings.max_body_bytes;
    let declared = headers
        .iter()
        .find(|(k, _)| k == header::CONTENT_LENGTH.as_str())
        .and_then(|(_, v)| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > max as u64) {
        return Err(BodyError::TooLarge {
            prefix: Vec::new(),
            received: i64::try_from(n).unwrap_or(i64::MAX),
        });
    }
    let read = async {
        let mut buf = Vec::new();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BodyError::Broken(e.to_string()))?;
            // One byte past the limit tells "over" from "exactly at it".
            let room = max + 1 - buf.len();
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if buf.len() > max {
                let received = buf.len() as i64;
                return Err(BodyError::TooLarge {
                    prefix: buf,
                    received,
                });
            }
        }
        Ok(buf)
    };
    tokio::time::timeout(settings.body_timeout(), read)
        .await
        .unwrap_or(Err(BodyError::Timeout))
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

/// The adapter's answer for its provider, sent as written (an error status
/// included: it is the provider's protocol, not a problem document).
fn ack(status: u16, headers: &[(String, String)], body: Vec<u8>) -> Response {
    let mut resp = (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
    resp.extensions_mut().insert(super::problem::Verbatim);
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}
