//! Auto-debit contracts and their deductions: sign (the payer does it at
//! the provider), learn the signature, deduct under the merchant's policy,
//! settle each deduction by the provider's answer, notification or query,
//! pause after consecutive failures, terminate.

use super::apply::tell_contradiction_once;
use super::retry::{Round, until_not_lost};
use super::{Verdict, call, call_counted, final_refusal, money, unexpected};
use crate::api::problem::ApiError;
use crate::api::{AppState, Merchant, now_ms};
use crate::contract::{
    self, ContractPayer, ContractQueryRequest, ContractRef, ContractSignRequest,
    ContractTerminateRequest, DeductionQueryRequest, DeductionRequest, SignAction,
};
use crate::contracts::{self, Decision};
use crate::runtime::{LoadedAdapter, Operation, Output};
use crate::store::{
    Contract, ContractState, Deduction, DeductionRefusal, DeductionState, Inserted, StoreError,
};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// A contract as the merchant asked for it.
#[derive(Debug, Clone)]
pub struct NewContract {
    pub contract_no: String,
    pub plan_id: String,
    pub payer_app_id: String,
    pub payer_openid: Option<String>,
    pub client_ip: Option<String>,
    pub display_name: String,
    pub return_url: Option<String>,
    pub metadata: Value,
}

/// A deduction as the merchant asked for it.
#[derive(Debug, Clone)]
pub struct NewDeduction {
    pub deduction_no: String,
    pub amount: i64,
    pub currency: String,
    pub description: String,
    pub client_ip: Option<String>,
    pub metadata: Value,
}

/// A stored object, and whether this call created it.
#[derive(Debug)]
pub struct Outcome<T> {
    pub value: T,
    pub is_new: bool,
}

fn contracts_unsupported(merchant: &Merchant) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "contracts_unsupported",
        "This merchant's provider adapter has no auto-debit contracts",
        format!(
            "adapter `{}` does not declare the `contracts` capability",
            merchant.adapter
        ),
    )
}

fn contract_adapter(state: &AppState, merchant: &Merchant) -> Result<Arc<LoadedAdapter>, ApiError> {
    let adapter = state.adapter_for(merchant)?;
    if !adapter.info.capabilities.contracts {
        return Err(contracts_unsupported(merchant));
    }
    Ok(adapter)
}

fn deduction_limit(limit: &str, max: i64, counted: Option<i64>, currency: &str) -> ApiError {
    let detail = match limit {
        "per_contract_day_count" => format!(
            "the contract already has {} deductions today, the most allowed is {max}",
            counted.unwrap_or(max)
        ),
        "pause_after_failures" => format!(
            "the contract's last {} deductions failed ({max} pause it); resume it once the \
             payer has fixed their payment method",
            counted.unwrap_or(max)
        ),
        _ => format!("the deduction passes the {limit} limit of {max} minor units of {currency}"),
    };
    let mut e = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "deduction_limit_exceeded",
        "The deduction is over one of the merchant's deduction limits",
        detail,
    )
    .with("limit", limit.to_string())
    .with("max", max);
    if let Some(n) = counted {
        e = e.with("counted", n);
    }
    if limit == "per_deduction" {
        e = e.with("currency", currency.to_string());
    }
    e
}

fn refusal(r: DeductionRefusal, currency: &str) -> ApiError {
    match r {
        DeductionRefusal::NotActive(s) => ApiError::conflict(
            "contract_not_active",
            format!("the contract is {s}; only an active contract can be charged"),
        )
        .with("contract_state", s.as_str()),
        DeductionRefusal::Limit {
            limit,
            max,
            counted,
        } => deduction_limit(limit, max, Some(counted), currency),
        DeductionRefusal::TooSoon { retry_after } => not_yet(
            "retry_interval",
            "the contract's last deduction failed; the next may be made",
            retry_after,
        ),
    }
}

/// A deduction refused for now: `limit` says why, `retry_after` (Unix ms)
/// from when it may be made.
fn not_yet(limit: &'static str, why: &str, retry_after: i64) -> ApiError {
    let at = crate::resources::Timestamp(retry_after).to_string();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "deduction_limit_exceeded",
        "The deduction is over one of the merchant's deduction limits",
        format!("{why} from {at}"),
    )
    .with("limit", limit)
    .with("retry_after", at)
}

fn sign_action_json(a: &SignAction) -> Value {
    match a {
        SignAction::MiniProgramNavigation(n) => json!({
            "type": "mini_program_navigation",
            "app_id": n.app_id,
            "path": n.path,
            "extra_data": n
                .extra_data
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<serde_json::Map<_, _>>(),
        }),
        SignAction::Redirect(url) => json!({"type": "redirect", "url": url}),
        SignAction::QrCode(text) => json!({"type": "qr_code", "text": text}),
    }
}

fn same_contract(c: &Contract, req: &NewContract) -> bool {
    c.plan_id == req.plan_id
        && c.payer_app_id == req.payer_app_id
        && (req.payer_openid.is_none() || c.payer_openid == req.payer_openid)
}

fn contract_ref(c: &Contract) -> ContractRef {
    ContractRef {
        merchant_contract_no: c.contract_no.clone(),
        provider_contract_id: c.provider_contract_id.clone(),
    }
}

/// Starts a contract: the adapter prepares what the payer must do to sign
/// (no money moves, so it is asked before the row is written), and the
/// contract is stored `pending_signature` with it. A retry with the same
/// number answers the stored contract.
pub async fn create_contract(
    state: &AppState,
    merchant: &Merchant,
    req: NewContract,
) -> Result<Outcome<Contract>, ApiError> {
    let adapter = contract_adapter(state, merchant)?;
    let exists = |c: Contract| {
        if same_contract(&c, &req) {
            Ok(Outcome {
                value: c,
                is_new: false,
            })
        } else {
            Err(ApiError::conflict(
                "contract_exists",
                format!(
                    "contract `{}` already exists for another plan or payer",
                    req.contract_no
                ),
            ))
        }
    };
    if let Some(c) = state
        .store
        .get_contract(&merchant.id, &req.contract_no)
        .await?
    {
        return exists(c);
    }
    let op = Operation::ContractSign(ContractSignRequest {
        merchant_contract_no: req.contract_no.clone(),
        plan_id: req.plan_id.clone(),
        payer: ContractPayer {
            app_id: req.payer_app_id.clone(),
            openid: req.payer_openid.clone(),
            client_ip: req.client_ip.clone(),
        },
        display_name: req.display_name.clone(),
        return_url: req.return_url.clone(),
    });
    let signing = match call(state, merchant, &adapter, op).await? {
        Output::ContractSigning(s) => s,
        other => return Err(unexpected("contract-sign", &other)),
    };
    if signing.contract.merchant_contract_no != req.contract_no {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_malformed",
            "The adapter's answer is for another contract",
            format!(
                "contract-sign answered contract {}, not {}",
                signing.contract.merchant_contract_no, req.contract_no
            ),
        ));
    }
    let now = now_ms();
    let first_poll = state.first_poll_delay_ms(adapter.info.capabilities.contract_notifications);
    let contract = Contract {
        merchant_id: merchant.id.clone(),
        contract_no: req.contract_no.clone(),
        adapter: merchant.adapter.clone(),
        adapter_digest: adapter.digest.clone(),
        plan_id: req.plan_id.clone(),
        payer_app_id: req.payer_app_id.clone(),
        payer_openid: req.payer_openid.clone(),
        display_name: req.display_name.clone(),
        state: ContractState::PendingSignature,
        provider_contract_id: signing.contract.provider_contract_id.clone(),
        signing: sign_action_json(&signing.action),
        provider_state: None,
        termination_reason: None,
        pause_reason: None,
        failures_counted_from: 0,
        signed_at: None,
        metadata: req.metadata.clone(),
        // A signature whose notification is lost is learned by query.
        next_poll_at: Some(now + first_poll),
        poll_attempts: 0,
        created_at: now,
        updated_at: now,
        version: 0,
    };
    match state.store.insert_contract(&contract).await? {
        Inserted::New(c) => Ok(Outcome {
            value: c,
            is_new: true,
        }),
        Inserted::Existing(c) => exists(c),
    }
}

/// A merchant's contract, or 404.
pub async fn load_contract(
    state: &AppState,
    merchant_id: &str,
    contract_no: &str,
) -> Result<Contract, ApiError> {
    state
        .store
        .get_contract(merchant_id, contract_no)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no contract `{contract_no}`")))
}

/// A merchant's deduction, or 404.
pub async fn load_deduction(
    state: &AppState,
    merchant_id: &str,
    deduction_no: &str,
) -> Result<Deduction, ApiError> {
    state
        .store
        .get_deduction(merchant_id, deduction_no)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no deduction `{deduction_no}`")))
}

/// Applies a provider's statement about a contract; a contradiction is
/// recorded once and sent as `contract.provider_mismatch`.
pub async fn apply_contract_status(
    state: &AppState,
    merchant: &Merchant,
    contract_no: &str,
    status: &contract::ContractStatus,
) -> Result<(Contract, Verdict), ApiError> {
    until_not_lost(move |_| async move {
        let c = load_contract(state, &merchant.id, contract_no).await?;
        Ok(match contracts::apply_contract_status(&c, status) {
            Decision::Apply { next, events } => (
                state.store.update_contract(&next, &events).await?,
                Verdict::Applied,
            ),
            Decision::Unchanged => (c, Verdict::Duplicate),
            Decision::Reject(reason) => {
                let reported = serde_json::to_value(status).unwrap_or_default();
                let event = contracts::contract_mismatch_event(&c, &reason, reported);
                let subject = crate::store::contracts::contract_subject(&c.contract_no);
                tell_contradiction_once(
                    state,
                    merchant,
                    &subject,
                    "contract_mismatch",
                    &reason,
                    &event,
                )
                .await?;
                (c, Verdict::Mismatch(reason))
            }
        })
    })
    .await
}

/// Asks the provider about a contract (`contract-query`) and applies the
/// answer; also answers the digest of the adapter version that asked.
pub async fn refresh_contract(
    state: &AppState,
    merchant: &Merchant,
    c: &Contract,
) -> Result<(Contract, Verdict, String), ApiError> {
    let adapter = contract_adapter(state, merchant)?;
    let status = query_contract(state, merchant, &adapter, c).await?;
    let (c, verdict) = apply_contract_status(state, merchant, &c.contract_no, &status).await?;
    Ok((c, verdict, adapter.digest.clone()))
}

async fn query_contract(
    state: &AppState,
    merchant: &Merchant,
    adapter: &LoadedAdapter,
    c: &Contract,
) -> Result<contract::ContractStatus, ApiError> {
    let op = Operation::ContractQuery(ContractQueryRequest {
        contract: contract_ref(c),
        plan_id: c.plan_id.clone(),
    });
    match call(state, merchant, adapter, op).await? {
        Output::ContractStatus(s) => Ok(s),
        other => Err(unexpected("contract-query", &other)),
    }
}

/// Ends a signed contract at the provider. The provider's word decides:
/// when the terminate call fails (a lost answer, a contract the payer
/// already ended), the contract is queried and what the provider says is
/// applied. A contract not signed yet cannot be ended: it stays unsigned.
pub async fn terminate_contract(
    state: &AppState,
    merchant: &Merchant,
    contract_no: &str,
    reason: &str,
) -> Result<Contract, ApiError> {
    let c = load_contract(state, &merchant.id, contract_no).await?;
    match c.state {
        ContractState::Terminated => return Ok(c),
        ContractState::PendingSignature => {
            return Err(ApiError::conflict(
                "contract_not_active",
                "the contract is not signed; there is nothing to terminate at the provider",
            )
            .with("contract_state", c.state.as_str()));
        }
        ContractState::Active | ContractState::Paused => {}
    }
    let adapter = contract_adapter(state, merchant)?;
    let op = Operation::ContractTerminate(ContractTerminateRequest {
        contract: contract_ref(&c),
        plan_id: c.plan_id.clone(),
        reason: reason.to_owned(),
    });
    let status = match call(state, merchant, &adapter, op).await {
        Ok(Output::ContractStatus(s)) => s,
        Ok(other) => return Err(unexpected("contract-terminate", &other)),
        Err(err) => match query_contract(state, merchant, &adapter, &c).await {
            Ok(s) if matches!(s.state, contract::ContractState::Terminated(_)) => s,
            _ => return Err(err),
        },
    };
    let (c, _) = apply_contract_status(state, merchant, contract_no, &status).await?;
    if c.state != ContractState::Terminated {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_malformed",
            "The provider did not end the contract",
            format!(
                "the provider reports the contract {} after terminating it",
                status.provider_state
            ),
        ));
    }
    Ok(c)
}

/// Lets a paused contract be charged again: its earlier failures no
/// longer count.
pub async fn resume_contract(
    state: &AppState,
    merchant: &Merchant,
    contract_no: &str,
) -> Result<Contract, ApiError> {
    until_not_lost(move |_| async move {
        let c = load_contract(state, &merchant.id, contract_no).await?;
        match c.state {
            ContractState::Paused => {}
            ContractState::Active => return Ok(c),
            s => {
                return Err(ApiError::conflict(
                    "contract_not_active",
                    format!("the contract is {s}; only a paused contract can be resumed"),
                )
                .with("contract_state", s.as_str())
                .into());
            }
        }
        match contracts::resume(&c, now_ms()) {
            Decision::Apply { next, events } => {
                Ok(state.store.update_contract(&next, &events).await?)
            }
            _ => Ok(c),
        }
    })
    .await
}

/// Where the stored step of a deduction ended.
enum Begun {
    /// A retry of a deduction the provider already answered.
    Settled(Deduction),
    /// The provider is to be asked (again, with the same number).
    Ask(Deduction, bool),
}

/// Charges an active contract. The deduction is stored `created`, under
/// the merchant's policy checked in the same transaction, before the
/// provider is asked; a retry with the same number never charges twice
/// (the provider deduplicates by the number, which is the provider's
/// order number).
pub async fn create_deduction(
    state: &AppState,
    merchant: &Merchant,
    contract_no: &str,
    req: NewDeduction,
) -> Result<Outcome<Deduction>, ApiError> {
    let policy = &merchant.contracts;
    if req.amount <= 0 {
        return Err(ApiError::validation(
            "`amount` must be a positive integer of minor units",
        ));
    }
    if req.currency != policy.currency {
        return Err(ApiError::validation(format!(
            "`currency` must be {}: this merchant's deductions are charged and capped in it",
            policy.currency
        )));
    }
    let max = i64::try_from(policy.per_deduction_minor).unwrap_or(i64::MAX);
    if req.amount > max {
        return Err(deduction_limit(
            "per_deduction",
            max,
            None,
            &policy.currency,
        ));
    }
    if let Some(opens) = policy
        .call_window
        .and_then(|w| w.next_open(&merchant.timezone, now_ms()))
    {
        return Err(not_yet(
            "call_window",
            "deductions are asked for only inside the call window, open",
            opens,
        ));
    }
    let adapter = contract_adapter(state, merchant)?;
    let contract = load_contract(state, &merchant.id, contract_no).await?;
    let first_poll = state.first_poll_delay_ms(adapter.info.capabilities.deduction_notifications);
    let (req, adapter_ref) = (&req, &adapter);
    let begun = until_not_lost(move |_| async move {
        if let Some(existing) = state
            .store
            .get_deduction(&merchant.id, &req.deduction_no)
            .await?
        {
            let same = existing.contract_no == contract_no
                && existing.amount_minor == req.amount
                && existing.currency == req.currency;
            if !same {
                return Err(ApiError::conflict(
                    "deduction_exists",
                    format!(
                        "deduction `{}` already exists for another contract or amount",
                        req.deduction_no
                    ),
                )
                .into());
            }
            if existing.state == DeductionState::Created {
                return Ok(Begun::Ask(existing, false));
            }
            return Ok(Begun::Settled(existing));
        }
        let now = now_ms();
        let d = Deduction {
            merchant_id: merchant.id.clone(),
            deduction_no: req.deduction_no.clone(),
            contract_no: contract_no.to_owned(),
            adapter: merchant.adapter.clone(),
            adapter_digest: adapter_ref.digest.clone(),
            amount_minor: req.amount,
            currency: req.currency.clone(),
            description: req.description.clone(),
            state: DeductionState::Created,
            provider_deduction_id: None,
            provider_state: None,
            failure_reason: None,
            paid_at: None,
            metadata: req.metadata.clone(),
            next_poll_at: Some(now + first_poll),
            poll_attempts: 0,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let caps = policy.caps(merchant.day_start_ms(now));
        match state.store.insert_deduction(&d, &caps).await {
            Ok(Inserted::New(d)) => Ok(Begun::Ask(d, true)),
            Ok(Inserted::Existing(_)) => Err(Round::Lost),
            Err(StoreError::Deduction(r)) => Err(refusal(r, &policy.currency).into()),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    let (d, is_new) = match begun {
        Begun::Settled(d) => {
            return Ok(Outcome {
                value: d,
                is_new: false,
            });
        }
        Begun::Ask(d, is_new) => (d, is_new),
    };
    let op = Operation::Deduct(DeductionRequest {
        contract: contract_ref(&contract),
        merchant_deduction_no: d.deduction_no.clone(),
        amount: money(d.amount_minor, &d.currency),
        description: d.description.clone(),
        client_ip: req.client_ip.clone(),
    });
    let (answer, sent) = call_counted(state, merchant, &adapter, op).await;
    let status = match answer {
        Ok(Output::DeductionStatus(s)) => s,
        Ok(other) => return Err(unexpected("deduct", &other)),
        Err(err) => {
            // Nothing was sent (the adapter refused the input, the egress
            // policy the host): the row this request wrote goes, so the
            // number is free and the mistake counts towards no pause or
            // retry interval. A row an earlier attempt wrote stays: that
            // attempt may have reached the provider.
            if sent == 0 {
                if is_new {
                    state.store.delete_unsent_deduction(&d).await?;
                }
                return Err(err);
            }
            if !final_refusal(&err) {
                // Unclear: the deduction stays `created`; a retry asks
                // again under the same number and the reconciler queries.
                return Err(err);
            }
            // A refusal of a number the provider already has (charged on
            // an earlier try whose answer was lost: WeChat's `ORDERPAID`)
            // is no failure: the provider's own record decides.
            match query_deduction(state, merchant, &adapter, &contract, &d).await {
                Ok(status) if !matches!(status.state, contract::DeductionState::Failed(_)) => {
                    status
                }
                Ok(status) => {
                    apply_deduction_status(state, merchant, &d.deduction_no, &status).await?;
                    return Err(err);
                }
                Err(q) if final_refusal(&q) => {
                    fail_refused(state, merchant, &d, &err.detail).await?;
                    return Err(err);
                }
                Err(_) => return Err(err),
            }
        }
    };
    let (d, verdict) = apply_deduction_status(state, merchant, &d.deduction_no, &status).await?;
    match verdict {
        Verdict::Mismatch(reason) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_malformed",
            "The provider's answer contradicts the deduction",
            format!("{reason}; the deduction stays as it was and is checked with the provider"),
        )),
        _ => Ok(Outcome { value: d, is_new }),
    }
}

/// Fails a deduction the provider refused outright (on the row as it is
/// now), then pauses the contract when the failures say so.
async fn fail_refused(
    state: &AppState,
    merchant: &Merchant,
    d: &Deduction,
    reason: &str,
) -> Result<(), ApiError> {
    let failed = until_not_lost(move |_| async move {
        let now = load_deduction(state, &d.merchant_id, &d.deduction_no).await?;
        if let Decision::Apply { next, events } = contracts::refused(&now, reason) {
            state.store.update_deduction(&next, &events).await?;
            return Ok(true);
        }
        Ok(false)
    })
    .await?;
    if failed {
        pause_if_failing(state, merchant, &d.contract_no).await?;
    }
    Ok(())
}

/// Pauses a contract whose last deductions all failed, as many as the
/// merchant's policy allows (`contract.paused`).
async fn pause_if_failing(
    state: &AppState,
    merchant: &Merchant,
    contract_no: &str,
) -> Result<(), ApiError> {
    let limit = i64::from(merchant.contracts.pause_after_failures);
    until_not_lost(move |_| async move {
        let c = load_contract(state, &merchant.id, contract_no).await?;
        let h = state
            .store
            .deduction_history(&merchant.id, contract_no, 0, c.failures_counted_from)
            .await?;
        if h.consecutive_failures < limit {
            return Ok(());
        }
        if let Decision::Apply { next, events } = contracts::pause(&c, h.consecutive_failures) {
            tracing::info!(merchant = %merchant.id, contract = %contract_no, failures = h.consecutive_failures, "contract paused after consecutive failed deductions");
            state.store.update_contract(&next, &events).await?;
        }
        Ok(())
    })
    .await
}

async fn query_deduction(
    state: &AppState,
    merchant: &Merchant,
    adapter: &LoadedAdapter,
    c: &Contract,
    d: &Deduction,
) -> Result<contract::DeductionStatus, ApiError> {
    let op = Operation::DeductionQuery(DeductionQueryRequest {
        contract: contract_ref(c),
        merchant_deduction_no: d.deduction_no.clone(),
        provider_deduction_id: d.provider_deduction_id.clone(),
    });
    match call(state, merchant, adapter, op).await? {
        Output::DeductionStatus(s) => Ok(s),
        other => Err(unexpected("deduction-query", &other)),
    }
}

/// Applies a provider's statement about a deduction. A charge reported
/// without its amount is not applied (`unconfirmed`: asked again by
/// query); a contradiction is recorded once and sent as
/// `deduction.provider_mismatch`. A failure may pause the contract.
pub async fn apply_deduction_status(
    state: &AppState,
    merchant: &Merchant,
    deduction_no: &str,
    status: &contract::DeductionStatus,
) -> Result<(Deduction, Verdict), ApiError> {
    if matches!(status.state, contract::DeductionState::Succeeded) && status.amount.is_none() {
        let d = load_deduction(state, &merchant.id, deduction_no).await?;
        return Ok((d, Verdict::Unconfirmed));
    }
    let (d, verdict, failed) = until_not_lost(move |_| async move {
        let d = load_deduction(state, &merchant.id, deduction_no).await?;
        let c = load_contract(state, &merchant.id, &d.contract_no).await?;
        Ok(match contracts::apply_deduction_status(&d, &c, status) {
            Decision::Apply { next, events } => {
                let saved = state.store.update_deduction(&next, &events).await?;
                if d.state == DeductionState::Failed && saved.state == DeductionState::Succeeded {
                    tracing::warn!(
                        merchant = %merchant.id, deduction = %deduction_no,
                        "the provider charged a deduction payhost had recorded as failed; the merchant is told"
                    );
                    state
                        .metrics
                        .money_event(&merchant.id, "deduction_succeeded_after_failure");
                }
                let failed =
                    d.state != DeductionState::Failed && saved.state == DeductionState::Failed;
                (saved, Verdict::Applied, failed)
            }
            Decision::Unchanged => (d, Verdict::Duplicate, false),
            Decision::Reject(reason) => {
                let reported = serde_json::to_value(status).unwrap_or_default();
                let event = contracts::deduction_mismatch_event(&d, &reason, reported);
                let subject = crate::store::contracts::deduction_subject(&d.deduction_no);
                tell_contradiction_once(state, merchant, &subject, "deduction_mismatch", &reason, &event)
                    .await?;
                (d, Verdict::Mismatch(reason), false)
            }
        })
    })
    .await?;
    if failed {
        pause_if_failing(state, merchant, &d.contract_no).await?;
    }
    Ok((d, verdict))
}

/// Asks the provider about a deduction (`deduction-query`) and applies the
/// answer; also answers the digest of the adapter version that asked.
pub async fn refresh_deduction(
    state: &AppState,
    merchant: &Merchant,
    d: &Deduction,
) -> Result<(Deduction, Verdict, String), ApiError> {
    let adapter = contract_adapter(state, merchant)?;
    let c = load_contract(state, &merchant.id, &d.contract_no).await?;
    let status = query_deduction(state, merchant, &adapter, &c, d).await?;
    let (d, verdict) = apply_deduction_status(state, merchant, &d.deduction_no, &status).await?;
    Ok((d, verdict, adapter.digest.clone()))
}
