//! Recorded exchanges: `payhost adapter call --record DIR` keeps what one
//! operation sent and got back, secrets masked; `payhost adapter replay`
//! runs a component against that recording offline and says whether the
//! outcome is still the same. A session with a provider's sandbox becomes
//! a regression test that holds no credentials.
//!
//! Replay pairs each request the component asks for now with the answer
//! recorded at the same position, so a component whose requests changed
//! (a new field, another signature because the key given is another) is
//! still driven to an outcome; the requests that differ are listed.

use crate::contract::{CallContext, Exchange, HttpRequest, HttpResponse};
use crate::error::CallError;
use crate::merchant::{Masker, MerchantConfig};
use crate::runtime::{LoadedAdapter, OfflineStep, Operation, Runtime};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file a recording is kept in, inside its directory.
pub const FILE: &str = "recording.json";

/// One operation as it went: input, context, exchanges, outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub adapter: String,
    pub version: String,
    pub call: CallContext,
    pub operation: Operation,
    pub exchanges: Vec<Exchange>,
    /// The operation's answer as JSON, or its error in words.
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok(serde_json::Value),
    Err(String),
}

impl Outcome {
    fn of(result: &Result<crate::runtime::Output, CallError>, masker: &Masker) -> Outcome {
        match result {
            Ok(out) => Outcome::Ok(serde_json::to_value(out).unwrap_or_default()),
            Err(e) => Outcome::Err(masker.mask(&e.to_string())),
        }
    }
}

fn mask_bytes(bytes: &[u8], masker: &Masker) -> Vec<u8> {
    match std::str::from_utf8(bytes) {
        Ok(text) => masker.mask(text).into_bytes(),
        Err(_) => bytes.to_vec(),
    }
}

fn mask_request(r: &HttpRequest, masker: &Masker) -> HttpRequest {
    HttpRequest {
        method: r.method,
        url: masker.mask(&r.url),
        headers: r
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), masker.mask(v)))
            .collect(),
        body: mask_bytes(&r.body, masker),
        client_identity: r.client_identity,
    }
}

fn mask_response(r: &HttpResponse, masker: &Masker) -> HttpResponse {
    HttpResponse {
        status: r.status,
        headers: r
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), masker.mask(v)))
            .collect(),
        body: mask_bytes(&r.body, masker),
    }
}

/// Runs `op` against the provider as `adapter call` does, step by step,
/// and keeps every exchange with the merchant's secrets masked.
pub async fn record(
    rt: &Runtime,
    adapter: &LoadedAdapter,
    merchant: &MerchantConfig,
    call: CallContext,
    op: Operation,
) -> Result<Recording, CallError> {
    let resolved = merchant.validate(&adapter.info)?;
    let masker = resolved.masker();
    let mut exchanges: Vec<Exchange> = Vec::new();
    let result = loop {
        match rt
            .step_offline(adapter, merchant, call.clone(), op.clone(), &exchanges)
            .await
        {
            Err(e) => break Err(e),
            Ok(OfflineStep::Done(Ok(out))) => break Ok(out),
            Ok(OfflineStep::Done(Err(error))) => {
                break Err(CallError::Adapter { error, ack: None });
            }
            Ok(OfflineStep::Send(request)) => {
                if exchanges.len() >= rt.config().max_steps {
                    break Err(CallError::StepLimit(rt.config().max_steps));
                }
                let url = rt.egress().check(
                    &request.url,
                    &adapter.info,
                    resolved.url_hosts(),
                    &merchant.id,
                )?;
                let identity = request
                    .client_identity
                    .and_then(|h| resolved.secret_by_handle(h));
                let response = {
                    use secrecy::ExposeSecret;
                    let pem = identity.map(|s| s.expose_secret().as_bytes());
                    rt.egress()
                        .perform(url, &request, pem, &masker, &merchant.id)
                        .await?
                };
                exchanges.push(Exchange { request, response });
            }
        }
    };
    Ok(Recording {
        adapter: adapter.info.name.clone(),
        version: adapter.info.version.clone(),
        call,
        operation: op,
        exchanges: exchanges
            .iter()
            .map(|x| Exchange {
                request: mask_request(&x.request, &masker),
                response: mask_response(&x.response, &masker),
            })
            .collect(),
        outcome: Outcome::of(&result, &masker),
    })
}

/// Writes `recording` to `dir`/[`FILE`].
pub fn save(recording: &Recording, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec_pretty(recording).map_err(std::io::Error::other)?;
    crate::runtime::write_atomic(&dir.join(FILE), &json)
}

/// Reads `dir`/[`FILE`].
pub fn load(dir: &Path) -> anyhow::Result<Recording> {
    let path = dir.join(FILE);
    let bytes =
        std::fs::read(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a recording: {e}", path.display()))
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replay {
    /// The outcome now, beside the recorded one.
    pub outcome: Outcome,
    pub same_outcome: bool,
    /// Positions (from 0) of the requests that differ from the recorded
    /// ones, with what differs.
    pub changed_requests: Vec<String>,
    /// Recorded answers the component never asked for.
    pub unused_answers: usize,
}

/// Runs `adapter` offline against `recording`, giving it the recorded
/// answers in order.
pub async fn replay(
    rt: &Runtime,
    adapter: &LoadedAdapter,
    merchant: &MerchantConfig,
    recording: &Recording,
) -> Result<Replay, CallError> {
    let masker = merchant.validate(&adapter.info)?.masker();
    let mut exchanges: Vec<Exchange> = Vec::new();
    let mut changed = Vec::new();
    let result = loop {
        let step = rt
            .step_offline(
                adapter,
                merchant,
                recording.call.clone(),
                recording.operation.clone(),
                &exchanges,
            )
            .await;
        match step {
            Err(e) => break Err(e),
            Ok(OfflineStep::Done(Ok(out))) => break Ok(out),
            Ok(OfflineStep::Done(Err(error))) => {
                break Err(CallError::Adapter { error, ack: None });
            }
            Ok(OfflineStep::Send(request)) => {
                let n = exchanges.len();
                let Some(recorded) = recording.exchanges.get(n) else {
                    break Err(CallError::Transport(format!(
                        "replay: request {n} ({:?} {}) has no recorded answer",
                        request.method,
                        masker.mask(&request.url)
                    )));
                };
                let now = mask_request(&request, &masker);
                let mut what = Vec::new();
                if now.method != recorded.request.method || now.url != recorded.request.url {
                    what.push(format!(
                        "{:?} {} (recorded {:?} {})",
                        now.method, now.url, recorded.request.method, recorded.request.url
                    ));
                }
                if now.headers != recorded.request.headers {
                    what.push("headers".into());
                }
                if now.body != recorded.request.body {
                    what.push("body".into());
                }
                if !what.is_empty() {
                    changed.push(format!("request {n}: {}", what.join(", ")));
                }
                exchanges.push(Exchange {
                    request,
                    response: recorded.response.clone(),
                });
            }
        }
    };
    let outcome = Outcome::of(&result, &masker);
    Ok(Replay {
        same_outcome: outcome == recording.outcome,
        outcome,
        changed_requests: changed,
        unused_answers: recording.exchanges.len().saturating_sub(exchanges.len()),
    })
}
