//! Payouts to a payee's wallet: checked against the merchant's limits and
//! stored before the provider is asked, then settled by the provider's
//! answer, its notification or `payout-query`.

use super::apply::tell_contradiction_once;
use super::retry::{Round, until_not_lost};
use super::{Verdict, call, call_counted, final_refusal, money, unexpected};
use crate::api::problem::ApiError;
use crate::api::{AppState, Merchant, now_ms};
use crate::contract::{self, Payee, PayoutQueryRequest, PayoutRef, PayoutRequest};
use crate::payouts::{self, Decision};
use crate::runtime::{Operation, Output};
use crate::store::{Inserted, Payout, PayoutState, StoreError};
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};

/// A payout as the merchant asked for it.
#[derive(Debug, Clone)]
pub struct NewPayout {
    pub payout_no: String,
    pub amount: i64,
    pub currency: String,
    pub payee_app_id: String,
    pub payee_openid: String,
    /// Personal data: sent to the provider, never stored or logged.
    pub real_name: Option<SecretString>,
    pub remark: String,
    pub scene: Option<String>,
    pub metadata: serde_json::Value,
}

/// The outcome of [`create_payout`].
#[derive(Debug)]
pub struct PayoutOutcome {
    pub payout: Payout,
    /// Created by this call, not a retry of an earlier one.
    pub is_new: bool,
}

fn payouts_unsupported(merchant: &Merchant) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "payouts_unsupported",
        "This merchant's provider adapter makes no payouts",
        format!(
            "adapter `{}` does not declare the `payouts` capability",
            merchant.adapter
        ),
    )
}

fn limit_exceeded(limit: &str, max: i64, counted: Option<i64>, currency: &str) -> ApiError {
    let detail = match (limit, counted) {
        ("real_name_required", _) if max == 0 => {
            "this merchant pays only payees whose real name is given for the provider to check"
                .to_string()
        }
        ("real_name_required", _) => format!(
            "a payout of {max} minor units or more must name the payee's real name \
             (`payee.real_name`)"
        ),
        ("per_payee_day_count", Some(n)) => {
            format!("the payee already has {n} payouts today, the most allowed is {max}")
        }
        (_, Some(n)) => format!(
            "the payout would pass the {limit} limit of {max} minor units of {currency} \
             ({n} already counted today)"
        ),
        (_, None) => {
            format!("the payout passes the {limit} limit of {max} minor units of {currency}")
        }
    };
    let mut e = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "payout_limit_exceeded",
        "The payout is over one of the merchant's payout limits",
        detail,
    )
    .with("limit", limit.to_string())
    .with("max", max)
    .with("currency", currency.to_string());
    if let Some(n) = counted {
        e = e.with("counted", n);
    }
    e
}

/// Where the stored step of a payout ended.
enum Begun {
    /// A retry of a payout the provider already answered.
    Settled(Payout),
    /// The provider is to be asked (again, with the same number).
    Ask(Payout, bool),
}

/// Pays `req.amount` to the payee. The payout is stored `created`, under
/// the merchant's daily limits, before the provider is asked; a retry with
/// the same number never pays twice (it asks the provider again with that
/// number while no answer was stored, WeChat's rule, or answers the
/// payout as it stands).
pub async fn create_payout(
    state: &AppState,
    merchant: &Merchant,
    req: NewPayout,
) -> Result<PayoutOutcome, ApiError> {
    let policy = &merchant.payouts;
    if req.amount <= 0 {
        return Err(ApiError::validation(
            "`amount` must be a positive integer of minor units",
        ));
    }
    if req.currency != policy.currency {
        return Err(ApiError::validation(format!(
            "`currency` must be {}: this merchant's payouts are paid and counted in it",
            policy.currency
        )));
    }
    let adapter = state.adapter_for(merchant)?;
    if !adapter.info.capabilities.payouts {
        return Err(payouts_unsupported(merchant));
    }
    policy
        .check_one(req.amount, req.real_name.is_some())
        .map_err(|e| {
            limit_exceeded(
                e.limit,
                i64::try_from(e.max_minor).unwrap_or(i64::MAX),
                None,
                &policy.currency,
            )
        })?;
    let first_poll_ms = state.first_poll_delay_ms(adapter.info.capabilities.payout_notifications);
    let req = &req;
    let adapter_ref = &adapter;
    let begun = until_not_lost(move |_| async move {
        if let Some(existing) = state.store.get_payout(&merchant.id, &req.payout_no).await? {
            let same = existing.amount_minor == req.amount
                && existing.currency == req.currency
                && existing.payee_openid == req.payee_openid
                && existing.payee_app_id == req.payee_app_id;
            if !same {
                return Err(ApiError::conflict(
                    "payout_exists",
                    format!(
                        "payout `{}` already exists for another amount or payee",
                        req.payout_no
                    ),
                )
                .into());
            }
            if existing.state == PayoutState::Created {
                return Ok(Begun::Ask(existing, false));
            }
            return Ok(Begun::Settled(existing));
        }
        let now = now_ms();
        let payout = Payout {
            merchant_id: merchant.id.clone(),
            payout_no: req.payout_no.clone(),
            adapter: merchant.adapter.clone(),
            adapter_digest: adapter_ref.digest.clone(),
            amount_minor: req.amount,
            currency: req.currency.clone(),
            payee_app_id: req.payee_app_id.clone(),
            payee_openid: req.payee_openid.clone(),
            real_name_checked: req.real_name.is_some(),
            remark: req.remark.clone(),
            scene: req.scene.clone(),
            state: PayoutState::Created,
            provider_payout_id: None,
            confirmation: None,
            failure_reason: None,
            provider_state: None,
            metadata: req.metadata.clone(),
            // Should the answer or the notification be lost, the
            // reconciler asks the provider.
            next_poll_at: Some(now + first_poll_ms),
            poll_attempts: 0,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let caps = policy.caps(merchant.day_start_ms(now));
        match state.store.insert_payout(&payout, &caps).await {
            Ok(Inserted::New(p)) => Ok(Begun::Ask(p, true)),
            // A concurrent request with the same number won: decide again.
            Ok(Inserted::Existing(_)) => Err(Round::Lost),
            Err(StoreError::PayoutLimit {
                limit,
                max,
                counted,
            }) => Err(limit_exceeded(limit, max, Some(counted), &policy.currency).into()),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    let (payout, is_new) = match begun {
        Begun::Settled(payout) => {
            return Ok(PayoutOutcome {
                payout,
                is_new: false,
            });
        }
        Begun::Ask(payout, is_new) => (payout, is_new),
    };

    let op = Operation::Payout(PayoutRequest {
        merchant_payout_no: payout.payout_no.clone(),
        amount: money(payout.amount_minor, &payout.currency),
        payee: Payee {
            app_id: payout.payee_app_id.clone(),
            openid: payout.payee_openid.clone(),
            real_name: req.real_name.as_ref().map(|n| n.expose_secret().to_owned()),
        },
        remark: payout.remark.clone(),
        scene: payout.scene.clone(),
    });
    let (answer, sent) = call_counted(state, merchant, &adapter, op).await;
    let status = match answer {
        Ok(Output::PayoutStatus(s)) => s,
        Ok(other) => return Err(unexpected("payout", &other)),
        Err(err) => {
            // A final refusal, or a request the adapter refused before
            // sending it: no money moved. Anything else may have reached
            // the provider: the payout stays `created` and is settled by
            // query.
            if final_refusal(&err) || (sent == 0 && err.code != "provider_unreachable") {
                let reason = err.detail.clone();
                fail_refused(state, &payout, &reason).await?;
            }
            return Err(err);
        }
    };
    let (payout, verdict) =
        apply_payout_status(state, merchant, &payout.payout_no, &status).await?;
    match verdict {
        Verdict::Mismatch(reason) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_malformed",
            "The provider's answer contradicts the payout",
            format!("{reason}; the payout stays as it was and is checked with the provider"),
        )),
        _ => Ok(PayoutOutcome { payout, is_new }),
    }
}

/// Fails a payout the provider refused outright, on the row as it is now
/// (a payout something else settled meanwhile stays as it is).
async fn fail_refused(state: &AppState, payout: &Payout, reason: &str) -> Result<(), ApiError> {
    until_not_lost(move |_| async move {
        let now = load_payout(state, &payout.merchant_id, &payout.payout_no).await?;
        if let Decision::Apply {
            payout: next,
            events,
        } = payouts::refused(&now, reason)
        {
            state.store.update_payout(&next, &events).await?;
        }
        Ok(())
    })
    .await
}

/// A merchant's payout, or 404.
pub async fn load_payout(
    state: &AppState,
    merchant_id: &str,
    payout_no: &str,
) -> Result<Payout, ApiError> {
    state
        .store
        .get_payout(merchant_id, payout_no)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no payout `{payout_no}`")))
}

/// Applies a provider's statement about a payout; a contradiction is
/// recorded once and sent to the merchant as `payout.provider_mismatch`.
pub async fn apply_payout_status(
    state: &AppState,
    merchant: &Merchant,
    payout_no: &str,
    status: &contract::PayoutStatus,
) -> Result<(Payout, Verdict), ApiError> {
    until_not_lost(move |_| async move {
        let payout = load_payout(state, &merchant.id, payout_no).await?;
        Ok(match payouts::apply_payout_status(&payout, status) {
            Decision::Apply {
                payout: next,
                events,
            } => {
                let saved = state.store.update_payout(&next, &events).await?;
                if payout.state.is_final() && saved.state != payout.state {
                    tracing::warn!(
                        merchant = %merchant.id, payout = %payout_no, from = %payout.state,
                        "the provider paid a payout payhost had recorded as not paid; the merchant is told"
                    );
                    state
                        .metrics
                        .money_event(&merchant.id, "payout_succeeded_after_failure");
                }
                (saved, Verdict::Applied)
            }
            Decision::Unchanged => (payout, Verdict::Duplicate),
            Decision::Reject(reason) => {
                mismatch(state, merchant, &payout, &reason, status).await?;
                (payout, Verdict::Mismatch(reason))
            }
        })
    })
    .await
}

async fn mismatch(
    state: &AppState,
    merchant: &Merchant,
    payout: &Payout,
    reason: &str,
    status: &contract::PayoutStatus,
) -> Result<(), ApiError> {
    let reported = serde_json::to_value(status).unwrap_or_default();
    let event = payouts::mismatch_event(payout, reason, reported);
    let subject = crate::store::payouts::mismatch_subject(&payout.payout_no);
    tell_contradiction_once(state, merchant, &subject, "payout_mismatch", reason, &event).await
}

/// Asks the provider about a payout (`payout-query`) and applies the
/// answer; also answers the digest of the adapter version that asked.
pub async fn refresh_payout(
    state: &AppState,
    merchant: &Merchant,
    payout: &Payout,
) -> Result<(Payout, Verdict, String), ApiError> {
    let adapter = state.adapter_for(merchant)?;
    if !adapter.info.capabilities.payouts {
        return Err(payouts_unsupported(merchant));
    }
    let op = Operation::PayoutQuery(PayoutQueryRequest {
        payout: PayoutRef {
            merchant_payout_no: payout.payout_no.clone(),
            provider_payout_id: payout.provider_payout_id.clone(),
        },
    });
    let status = match call(state, merchant, &adapter, op).await? {
        Output::PayoutStatus(s) => s,
        other => return Err(unexpected("payout-query", &other)),
    };
    let (payout, verdict) =
        apply_payout_status(state, merchant, &payout.payout_no, &status).await?;
    Ok((payout, verdict, adapter.digest.clone()))
}
