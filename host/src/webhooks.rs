//! Merchant webhooks: Standard Webhooks signatures, retry back-off and one
//! delivery attempt. The worker that drains the store's outbox uses these.
//!
//! A delivery is a POST of a [`WebhookEvent`] (`{"id", "type",
//! "created_at", "data"}`) with the
//! `webhook-id`, `webhook-timestamp` and `webhook-signature` headers of the
//! Standard Webhooks specification (HMAC-SHA256 over `id.timestamp.body`),
//! so merchants verify it with any of that specification's libraries.

use crate::resources::Timestamp;
use axum::http::HeaderMap;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use standardwebhooks::{
    HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP, Webhook,
};
use std::time::Duration;

/// How much of a failed response's body is kept for the event's last error.
const ERROR_BODY_BYTES: usize = 256;

/// A secret or body the signer cannot use.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the webhook: {0}")]
pub struct SignError(String);

/// The three Standard Webhooks headers for one message. `secret` is the
/// merchant's `whsec_<base64>` secret; `body` must be UTF-8 (it is JSON).
pub fn sign(
    secret: &SecretString,
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
) -> Result<Vec<(&'static str, String)>, SignError> {
    let webhook = webhook(secret).map_err(SignError)?;
    let signature = webhook
        .sign(msg_id, timestamp_secs, body)
        .map_err(|e| SignError(e.to_string()))?;
    Ok(vec![
        (HEADER_WEBHOOK_ID, msg_id.to_string()),
        (HEADER_WEBHOOK_TIMESTAMP, timestamp_secs.to_string()),
        (HEADER_WEBHOOK_SIGNATURE, signature),
    ])
}

/// Verifies a received webhook as a merchant would (the crate's verifier,
/// which also refuses timestamps more than five minutes from now).
pub fn verify(secret: &SecretString, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    webhook(secret)?
        .verify(body, headers)
        .map_err(|e| e.to_string())
}

fn webhook(secret: &SecretString) -> Result<Webhook, String> {
    // Only the `whsec_` form: the crate would also take bare base64, and a
    // mistyped secret must not silently become another key.
    let b64 = secret
        .expose_secret()
        .strip_prefix("whsec_")
        .ok_or("the secret must start with `whsec_`")?;
    Webhook::new(b64).map_err(|_| "the secret after `whsec_` is not base64".to_string())
}

/// Exponential back-off with equal jitter: the delay after the n-th failed
/// attempt lies in `[d/2, d]` with `d = min(max, initial * 2^(n-1))`. Half
/// fixed keeps retries from bunching at zero; half random spreads merchants
/// that failed together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub max_attempts: u32,
}

impl Backoff {
    /// The ceiling of the delay after failed attempt `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(63);
        self.initial
            .checked_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// How long to wait after failed attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        let jitter_ms = (ceiling - half).as_millis() as u64;
        half + Duration::from_millis(rng.random_range(0..=jitter_ms))
    }

    /// Whether an event that has been tried `attempts` times is given up.
    pub fn gives_up(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts
    }
}

/// Why one delivery attempt failed; its text becomes the event's last error.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("merchant endpoint answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("merchant endpoint did not answer in time")]
    Timeout,
    #[error("cannot reach the merchant endpoint: {0}")]
    Connect(String),
    #[error("request failed: {0}")]
    Request(String),
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// A client for deliveries. Redirects are not followed: a signed event goes
/// only where the merchant configured.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("payhost-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The body of every webhook delivery. `data` is the event's
/// [`EventData`](crate::resources::EventData) (`payment.*`, `refund.*`) or
/// [`PayoutEventData`](crate::resources::PayoutEventData) (`payout.*`),
/// [`ContractEventData`](crate::resources::ContractEventData) (`contract.*`),
/// [`DeductionEventData`](crate::resources::DeductionEventData) (`deduction.*`),
/// the same object `GET /v1/events` lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookEvent {
    /// `evt_<ULID>`, also the `webhook-id` header: de-duplicate on it.
    pub id: String,
    #[serde(rename = "type")]
    #[schema(value_type = EventType)]
    pub kind: String,
    /// When the event happened; the same on every retry.
    pub created_at: Timestamp,
    #[schema(value_type = crate::resources::EventPayload)]
    pub data: serde_json::Value,
}

/// The event types (`type`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub enum EventType {
    #[serde(rename = "payment.paid")]
    PaymentPaid,
    #[serde(rename = "payment.closed")]
    PaymentClosed,
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    #[serde(rename = "payment.provider_mismatch")]
    PaymentProviderMismatch,
    #[serde(rename = "refund.succeeded")]
    RefundSucceeded,
    #[serde(rename = "refund.failed")]
    RefundFailed,
    #[serde(rename = "refund.provider_mismatch")]
    RefundProviderMismatch,
    #[serde(rename = "payout.succeeded")]
    PayoutSucceeded,
    #[serde(rename = "payout.failed")]
    PayoutFailed,
    #[serde(rename = "payout.provider_mismatch")]
    PayoutProviderMismatch,
    #[serde(rename = "contract.signed")]
    ContractSigned,
    #[serde(rename = "contract.terminated")]
    ContractTerminated,
    #[serde(rename = "contract.paused")]
    ContractPaused,
    #[serde(rename = "contract.provider_mismatch")]
    ContractProviderMismatch,
    #[serde(rename = "deduction.succeeded")]
    DeductionSucceeded,
    #[serde(rename = "deduction.failed")]
    DeductionFailed,
    #[serde(rename = "deduction.provider_mismatch")]
    DeductionProviderMismatch,
}

/// When an event was created: the time in its ULID when `event_id` is
/// `evt_<ULID>` (the store's form), so it is the same on every retry and
/// in `GET /v1/events`; otherwise `fallback`.
pub fn event_time(event_id: &str, fallback: Timestamp) -> Timestamp {
    event_id
        .strip_prefix("evt_")
        .and_then(|u| ulid::Ulid::from_string(u).ok())
        .and_then(|u| i64::try_from(u.timestamp_ms()).ok())
        .map_or(fallback, Timestamp)
}

/// The JSON body of an event (a [`WebhookEvent`]).
pub fn event_body(
    event_id: &str,
    event_type: &str,
    payload: &serde_json::Value,
    now_secs: i64,
) -> Vec<u8> {
    let body = WebhookEvent {
        id: event_id.into(),
        kind: event_type.into(),
        created_at: event_time(event_id, Timestamp(now_secs.saturating_mul(1000))),
        data: payload.clone(),
    };
    serde_json::to_vec(&body).expect("a JSON value serializes")
}

/// The time-out [`deliver`] uses: the `[webhooks] timeout_ms` default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs one event to `url`, signed with the merchant's secret at
/// `now_secs` (unix seconds). `Ok(status)` on 2xx. The attempt is bounded
/// by [`DEFAULT_TIMEOUT`]; [`deliver_within`] takes the configured one.
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    event_id: &str,
    event_type: &str,
    payload: &serde_json::Value,
    secret: &SecretString,
    now_secs: i64,
) -> Result<u16, DeliveryError> {
    let event = Event {
        id: event_id,
        event_type,
        payload,
    };
    deliver_within(DEFAULT_TIMEOUT, client, url, &event, secret, now_secs).await
}

/// What [`deliver_within`] sends.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// `evt_<ULID>`; the `webhook-id`, which merchants de-duplicate on.
    pub id: &'a str,
    pub event_type: &'a str,
    pub payload: &'a serde_json::Value,
}

/// [`deliver`] with a time-out for the whole attempt (connect, send, answer).
pub async fn deliver_within(
    timeout: Duration,
    client: &reqwest::Client,
    url: &str,
    event: &Event<'_>,
    secret: &SecretString,
    now_secs: i64,
) -> Result<u16, DeliveryError> {
    // Checked before anything is sent: a bad secret is a configuration
    // error, not the merchant's failure.
    let body = event_body(event.id, event.event_type, event.payload, now_secs);
    let headers = sign(secret, event.id, now_secs, &body)?;
    let attempt = async {
        let mut request = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut response = request.body(body).send().await.map_err(classify)?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(status);
        }
        // A little of the answer helps the merchant see why; more is not read.
        let mut kept = Vec::new();
        while kept.len() < ERROR_BODY_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                _ => break,
            }
        }
        kept.truncate(ERROR_BODY_BYTES);
        Err(DeliveryError::Status {
            status,
            body: String::from_utf8_lossy(&kept).into_owned(),
        })
    };
    // Outside reqwest, so it holds whatever client the caller built.
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(DeliveryError::Timeout))
}

fn classify(e: reqwest::Error) -> DeliveryError {
    if e.is_timeout() {
        DeliveryError::Timeout
    } else if e.is_connect() {
        DeliveryError::Connect(e.to_string())
    } else {
        DeliveryError::Request(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, StatusCode};
    use rand::SeedableRng;
    use std::sync::{Arc, Mutex};
    use std::time::{SystemTime, UNIX_EPOCH};

    fn secret() -> SecretString {
        SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    }

    fn now_secs() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn header_map(headers: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn signature_verifies_and_binds_the_body() {
        let body = br#"{"id":"evt_1","type":"payment.paid"}"#;
        let headers = sign(&secret(), "evt_1", now_secs(), body).unwrap();
        let names: Vec<_> = headers.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        );
        assert!(headers[2].1.starts_with("v1,"));
        let map = header_map(&headers);
        // The crate's own verifier, as a merchant would use it.
        Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap()
            .verify(body, &map)
            .unwrap();
        assert!(verify(&secret(), &map, body).is_ok());
        assert!(
            verify(
                &secret(),
                &map,
                br#"{"id":"evt_1","type":"payment.refunded"}"#
            )
            .is_err()
        );
        let other = SecretString::from("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        assert!(verify(&other, &map, body).is_err());
        // Another id with the same signature does not verify either.
        let mut swapped = map.clone();
        swapped.insert("webhook-id", HeaderValue::from_static("evt_2"));
        assert!(verify(&secret(), &swapped, body).is_err());
    }

    #[test]
    fn known_signature() {
        // The Standard Webhooks specification's reference vector.
        let s = SecretString::from("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        let headers = sign(
            &s,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(
            headers[2].1,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn bad_secrets_are_errors() {
        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_***"] {
            assert!(
                sign(&SecretString::from(bad), "e", 1, b"{}").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            max_attempts: 5,
        };
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(2), Duration::from_secs(2));
        assert_eq!(b.ceiling(6), Duration::from_secs(32));
        assert_eq!(b.ceiling(7), Duration::from_secs(60));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(60));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut distinct = std::collections::HashSet::new();
        for attempt in 1..=40 {
            for _ in 0..50 {
                let d = b.delay(attempt, &mut rng);
                let c = b.ceiling(attempt);
                assert!(d >= c / 2 && d <= c, "attempt {attempt}: {d:?} vs {c:?}");
                distinct.insert(d);
            }
        }
        // Jitter: the delays are not all the same few values.
        assert!(distinct.len() > 100, "{}", distinct.len());
        assert!(!b.gives_up(4));
        assert!(b.gives_up(5));
        assert!(b.gives_up(6));
    }

    #[test]
    fn created_at_comes_from_the_event_ulid() {
        let ulid = ulid::Ulid::from_parts(1_751_642_534_123, 42);
        let body = event_body(&format!("evt_{ulid}"), "t", &serde_json::json!({}), 0);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["created_at"], "2025-07-04T15:22:14.123Z");
        let body = event_body("other", "t", &serde_json::json!({}), 0);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["created_at"], "1970-01-01T00:00:00.000Z");
    }

    type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

    /// A merchant endpoint on loopback answering `status`.
    async fn responder(status: StatusCode) -> (String, Seen) {
        let seen: Seen = Arc::default();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post({
                let seen = seen.clone();
                move |headers: HeaderMap, body: axum::body::Bytes| async move {
                    seen.lock().unwrap().push((headers, body.to_vec()));
                    (status, "merchant says no")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/hook"), seen)
    }

    #[tokio::test]
    async fn delivers_signed_json() {
        let (url, seen) = responder(StatusCode::NO_CONTENT).await;
        let client = client().unwrap();
        let payload = serde_json::json!({"merchant_order_no": "o-1", "state": "paid"});
        let status = deliver(
            &client,
            &url,
            "evt_01J1Z3ZJ5T9X6Y8W0A2B4C6D8E",
            "payment.paid",
            &payload,
            &secret(),
            now_secs(),
        )
        .await
        .unwrap();
        assert_eq!(status, 204);
        let seen = seen.lock().unwrap();
        let (headers, body) = &seen[0];
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["webhook-id"], "evt_01J1Z3ZJ5T9X6Y8W0A2B4C6D8E");
        verify(&secret(), headers, body).unwrap();
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["id"], "evt_01J1Z3ZJ5T9X6Y8W0A2B4C6D8E");
        assert_eq!(v["type"], "payment.paid");
        assert_eq!(v["data"], payload);
        assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
    }

    #[tokio::test]
    async fn non_2xx_and_unreachable_are_errors() {
        let (url, seen) = responder(StatusCode::INTERNAL_SERVER_ERROR).await;
        let client = client().unwrap();
        let e = deliver(
            &client,
            &url,
            "evt_x",
            "t",
            &serde_json::json!(1),
            &secret(),
            now_secs(),
        )
        .await
        .unwrap_err();
        match e {
            DeliveryError::Status { status, body } => {
                assert_eq!(status, 500);
                assert_eq!(body, "merchant says no");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(seen.lock().unwrap().len(), 1);

        // A port nobody listens on: bind one, then drop it.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = deliver(
            &client,
            &format!("http://127.0.0.1:{port}/hook"),
            "evt_x",
            "t",
            &serde_json::json!(1),
            &secret(),
            now_secs(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, DeliveryError::Connect(_)), "{e:?}");
    }

    #[tokio::test]
    async fn a_silent_endpoint_times_out() {
        // Accepts the connection and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        // A plain client: the time-out is deliver_within's own.
        let e = deliver_within(
            Duration::from_millis(200),
            &reqwest::Client::new(),
            &format!("http://{addr}/hook"),
            &Event {
                id: "evt_x",
                event_type: "t",
                payload: &serde_json::json!(1),
            },
            &secret(),
            now_secs(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, DeliveryError::Timeout), "{e:?}");
        hold.abort();
    }
}
