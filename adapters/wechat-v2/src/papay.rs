//! Auto-debit contracts, WeChat Pay's domestic v2 papay family (委托代扣,
//! providers.md §13): signing through WeChat's signing mini-program,
//! `querycontract`, `deletecontract`, `pappayapply`, `paporderquery` and the
//! contract and deduction notifications. Direct merchants only; the partner
//! paths (§13.1) answer `unsupported`.
//!
//! Papay's own signature rules (§13.7): the signing entry, `querycontract`
//! and `deletecontract` carry no `nonce_str`; everything is signed over the
//! raw values (the `notify_url` too).

use crate::sign::{self, SignType};
use crate::wire;
use crate::{Settings, as_invalid};
use payhost_sdk::prelude::*;
use payhost_sdk::xml::Fields;

pub const QUERY_CONTRACT: &str = "/papay/querycontract";
pub const DELETE_CONTRACT: &str = "/papay/deletecontract";
pub const PAP_PAY_APPLY: &str = "/pay/pappayapply";
pub const PAP_ORDER_QUERY: &str = "/pay/paporderquery";

/// WeChat's signing mini-program and its page (§13.2.1), fixed.
pub const SIGNING_APP_ID: &str = "wxbd687630cd02ce1d";
pub const SIGNING_PATH: &str = "pages/index/index";

const CONTRACT_NO: field::Rule = field::Rule::order_no("merchant_contract_no", 1, 32, "_-|*");
const DEDUCTION_NO: field::Rule = field::Rule::order_no("merchant_deduction_no", 1, 32, "_-|*");

fn direct_only(s: &Settings) -> Result<()> {
    if s.partner() {
        return Err(Error::unsupported(
            "papay in partner mode (/papay/partner/...) is not implemented; direct merchants only",
        ));
    }
    Ok(())
}

/// `contract_display_account`: shown on the signing page; WeChat refuses
/// 4-byte UTF-8 (§13.2).
fn display_account(name: &str) -> Result<&str> {
    field::chars(name, "display_name", 1, 32)?;
    if name.chars().any(|c| c.len_utf8() > 3) {
        return Err(Error::invalid_request(
            "display_name: WeChat's signing page takes no 4-byte characters (emoji)",
        ));
    }
    Ok(name)
}

/// §13.2.1: the `extraData` of `wx.navigateToMiniProgram`, signed (MD5,
/// no `nonce_str`). No call to WeChat: the payer signs on WeChat's page,
/// and the contract is real only once its notification or
/// `querycontract` says so.
pub(crate) fn sign_contract(ctx: &mut Ctx, req: &ContractSignRequest) -> Result<ContractSigning> {
    let s = Settings::read(ctx)?;
    direct_only(&s)?;
    CONTRACT_NO.check(&req.merchant_contract_no)?;
    field::order_no(&req.plan_id, "plan_id", 1, 20, "")?;
    let display = display_account(&req.display_name)?;
    if req.payer.app_id != s.merchant.appid {
        return Err(Error::invalid_request(format!(
            "payer.app_id `{}`: papay signs in the configured appid `{}`",
            req.payer.app_id, s.merchant.appid
        )));
    }
    let notify_url = field::notify_url_without_query(ctx.notify_url())?;
    let mut fields = Fields::new();
    for (name, value) in [
        ("appid", s.merchant.appid),
        ("mch_id", s.merchant.mch_id),
        ("contract_code", &req.merchant_contract_no),
        ("contract_display_account", display),
        ("notify_url", notify_url),
        ("plan_id", &req.plan_id),
    ] {
        fields.insert(name.into(), value.into());
    }
    // Digits, not starting with 0; it only orders signings (§13.2).
    fields.insert("request_serial".into(), request_serial(ctx));
    fields.insert("timestamp".into(), ctx.timestamp().to_string());
    let signature = sign::sign(ctx, SignType::Md5, s.api_key, &fields)?;
    fields.insert("sign".into(), signature);
    Ok(ContractSigning {
        contract: ContractRef {
            merchant_contract_no: req.merchant_contract_no.clone(),
            provider_contract_id: None,
        },
        action: SignAction::MiniProgramNavigation(MiniProgramNavigation {
            app_id: SIGNING_APP_ID.into(),
            path: SIGNING_PATH.into(),
            extra_data: fields.into_iter().collect(),
        }),
    })
}

/// The operation's time in milliseconds plus three digits of its seed:
/// increasing between signings, the same in every replay of a step.
fn request_serial(ctx: &mut Ctx) -> String {
    let digits: String = ctx
        .nonce(12)
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .take(3)
        .collect();
    format!("{}{digits}", ctx.timestamp().max(1) * 1000)
}

/// The contract named as `querycontract` and `deletecontract` take it:
/// WeChat's id when known, else the plan and the merchant's number.
fn name_contract(fields: &mut Fields, contract: &ContractRef, plan_id: &str) -> Result<()> {
    match &contract.provider_contract_id {
        Some(id) => {
            fields.insert("contract_id".into(), id.clone());
        }
        None => {
            CONTRACT_NO.check(&contract.merchant_contract_no)?;
            field::order_no(plan_id, "plan_id", 1, 20, "")?;
            fields.insert("plan_id".into(), plan_id.into());
            fields.insert(
                "contract_code".into(),
                contract.merchant_contract_no.clone(),
            );
        }
    }
    fields.insert("version".into(), "1.0".into());
    Ok(())
}

/// §13.9: `contract_state` 0 signed, 1 not (or no longer) signed, 9 in
/// progress.
fn contract_state(fields: &Fields, what: &str) -> Result<ContractState> {
    let word = wire::required(fields, "contract_state", what)?;
    Ok(match word {
        "0" => ContractState::Active,
        "9" => ContractState::PendingSignature,
        "1" => ContractState::Terminated(termination(fields)),
        other => {
            return Err(Error::malformed(format!(
                "{what}: unknown contract_state `{other}`"
            )));
        }
    })
}

/// `contract_termination_mode` in words (§13.9).
fn termination(fields: &Fields) -> String {
    match wire::optional(fields, "contract_termination_mode") {
        Some("1") => "expired".into(),
        Some("2") => "terminated by the payer".into(),
        Some("3") => "terminated by the merchant (API)".into(),
        Some("4") => "terminated by the merchant (console)".into(),
        Some("5") => "the payer's account was closed".into(),
        Some("7") => "terminated through WeChat Pay's customer service".into(),
        Some(other) => format!("contract_termination_mode {other}"),
        None => "not signed".into(),
    }
}

/// A contract as a signed message names it, checked against `asked`.
fn contract_ref(fields: &Fields, asked: &ContractRef, what: &str) -> Result<ContractRef> {
    let code = wire::optional(fields, "contract_code");
    if let Some(code) = code
        && code != asked.merchant_contract_no
    {
        return Err(Error::malformed(format!(
            "{what} is for contract_code `{code}`, not `{}`",
            asked.merchant_contract_no
        )));
    }
    let id = wire::optional(fields, "contract_id").map(String::from);
    if let (Some(ours), Some(theirs)) = (&asked.provider_contract_id, &id)
        && ours != theirs
    {
        return Err(Error::malformed(format!(
            "{what} is for contract_id `{theirs}`, not `{ours}`"
        )));
    }
    Ok(ContractRef {
        merchant_contract_no: asked.merchant_contract_no.clone(),
        provider_contract_id: id.or_else(|| asked.provider_contract_id.clone()),
    })
}

/// `yyyy-MM-dd HH:mm:ss`, China time.
fn dashed_time(fields: &Fields, name: &str) -> Result<Option<i64>> {
    wire::optional(fields, name)
        .map(|t| time::parse_dashed(t, time::CHINA))
        .transpose()
        .map_err(Error::from)
}

/// §13.4 `querycontract`. A contract WeChat does not know was never signed.
pub(crate) fn query_contract(ctx: &mut Ctx, req: &ContractQueryRequest) -> Result<ContractStatus> {
    let s = Settings::read(ctx)?;
    direct_only(&s)?;
    let mut fields = s.merchant.fields();
    name_contract(&mut fields, &req.contract, &req.plan_id)?;
    let reply = match s.call_without_nonce(ctx, QUERY_CONTRACT, fields) {
        Ok(reply) => reply,
        Err(e) if crate::rejection_code(&e) == Some("CONTRACT_NOT_EXIST") => {
            return Ok(ContractStatus {
                contract: req.contract.clone(),
                plan_id: Some(req.plan_id.clone()),
                state: ContractState::PendingSignature,
                provider_state: "CONTRACT_NOT_EXIST".into(),
                payer_id: None,
                changed_at: None,
            });
        }
        Err(e) => return Err(e),
    };
    let what = "querycontract response";
    let state = contract_state(&reply, what)?;
    let changed_at = match state {
        ContractState::Terminated(_) => dashed_time(&reply, "contract_terminated_time")?,
        _ => dashed_time(&reply, "contract_signed_time")?,
    };
    Ok(ContractStatus {
        contract: contract_ref(&reply, &req.contract, what)?,
        plan_id: wire::optional(&reply, "plan_id").map(String::from),
        provider_state: wire::required(&reply, "contract_state", what)?.into(),
        state,
        payer_id: wire::optional(&reply, "openid").map(String::from),
        changed_at,
    })
}

/// §13.5 `deletecontract`: the contract ends at once; its notification
/// goes to the template's URL.
pub(crate) fn terminate_contract(
    ctx: &mut Ctx,
    req: &ContractTerminateRequest,
) -> Result<ContractStatus> {
    let s = Settings::read(ctx)?;
    direct_only(&s)?;
    field::chars(&req.reason, "reason", 1, 512)?;
    let mut fields = s.merchant.fields();
    name_contract(&mut fields, &req.contract, &req.plan_id)?;
    fields.insert("contract_termination_remark".into(), req.reason.clone());
    let reply = s.call_without_nonce(ctx, DELETE_CONTRACT, fields)?;
    let what = "deletecontract response";
    Ok(ContractStatus {
        contract: contract_ref(&reply, &req.contract, what)?,
        plan_id: wire::optional(&reply, "plan_id").map(String::from),
        state: ContractState::Terminated("terminated by the merchant (API)".into()),
        provider_state: "DELETED".into(),
        payer_id: None,
        changed_at: None,
    })
}

/// §13.3.1 `pappayapply`: `SUCCESS` only means accepted; the charge comes
/// later (by notification or `paporderquery`). A repeat inside WeChat's
/// notice window answers `ORDER_ACCEPTED`: accepted as well.
pub(crate) fn deduct(ctx: &mut Ctx, req: &DeductionRequest) -> Result<DeductionStatus> {
    let s = Settings::read(ctx)?;
    direct_only(&s)?;
    DEDUCTION_NO.check(&req.merchant_deduction_no)?;
    field::positive(req.amount.minor, "amount.minor")?;
    s.check_currency(&req.amount.currency, "amount.currency")?;
    field::chars(&req.description, "description", 1, 127)?;
    let contract_id = req.contract.provider_contract_id.as_deref().ok_or_else(|| {
        Error::invalid_request("contract.provider_contract_id: pappayapply names the contract by WeChat's contract_id")
    })?;
    let client_ip = req
        .client_ip
        .as_deref()
        .ok_or_else(|| Error::invalid_request("client_ip: pappayapply needs spbill_create_ip"))?;
    let mut fields = s.merchant.fields();
    for (name, value) in [
        ("body", req.description.as_str()),
        ("out_trade_no", &req.merchant_deduction_no),
        ("spbill_create_ip", client_ip),
        (
            "notify_url",
            field::notify_url_without_query(ctx.notify_url())?,
        ),
        ("trade_type", "PAP"),
        ("contract_id", contract_id),
    ] {
        fields.insert(name.into(), value.into());
    }
    fields.insert("total_fee".into(), req.amount.minor.to_string());
    if req.amount.currency != "CNY" {
        fields.insert("fee_type".into(), req.amount.currency.clone());
    }
    let accepted = |word: &str| DeductionStatus {
        contract: req.contract.clone(),
        merchant_deduction_no: req.merchant_deduction_no.clone(),
        provider_deduction_id: None,
        state: DeductionState::Pending,
        provider_state: word.into(),
        amount: None,
        paid_at: None,
    };
    match s.call(ctx, PAP_PAY_APPLY, fields, None) {
        Ok(_) => Ok(accepted("ACCEPT")),
        Err(e) if crate::rejection_code(&e) == Some("ORDER_ACCEPTED") => {
            Ok(accepted("ORDER_ACCEPTED"))
        }
        Err(e) => Err(e),
    }
}

/// A deduction's state word (§13.9) in the contract's terms.
fn deduction_state(word: &str, desc: Option<&str>) -> Option<DeductionState> {
    Some(match word {
        "SUCCESS" | "REFUND" => DeductionState::Succeeded,
        "ACCEPT" | "NOTPAY" | "USERPAYING" => DeductionState::Pending,
        "CLOSED" | "PAYERROR" | "REVOKED" => {
            DeductionState::Failed(desc.filter(|d| !d.is_empty()).unwrap_or(word).to_string())
        }
        _ => return None,
    })
}

/// §13.4 `paporderquery` by the merchant's number.
pub(crate) fn query_deduction(
    ctx: &mut Ctx,
    req: &DeductionQueryRequest,
) -> Result<DeductionStatus> {
    let s = Settings::read(ctx)?;
    direct_only(&s)?;
    DEDUCTION_NO.check(&req.merchant_deduction_no)?;
    let mut fields = s.merchant.fields();
    fields.insert("out_trade_no".into(), req.merchant_deduction_no.clone());
    let reply = s.call(ctx, PAP_ORDER_QUERY, fields, None)?;
    let what = "paporderquery response";
    deduction_status(&s, &reply, &req.contract, &req.merchant_deduction_no, what)
}

/// A deduction as a signed message states it, checked against what was
/// asked.
fn deduction_status(
    s: &Settings,
    fields: &Fields,
    contract: &ContractRef,
    deduction_no: &str,
    what: &str,
) -> Result<DeductionStatus> {
    let no = wire::required(fields, "out_trade_no", what)?;
    if no != deduction_no {
        return Err(Error::malformed(format!(
            "{what} is for out_trade_no `{no}`, not `{deduction_no}`"
        )));
    }
    let word = wire::required(fields, "trade_state", what)?;
    let state = deduction_state(word, wire::optional(fields, "trade_state_desc"))
        .ok_or_else(|| Error::malformed(format!("{what}: unknown trade_state `{word}`")))?;
    let paid = state == DeductionState::Succeeded;
    Ok(DeductionStatus {
        contract: contract_ref(fields, contract, what)?,
        merchant_deduction_no: no.into(),
        provider_deduction_id: wire::optional(fields, "transaction_id").map(String::from),
        state,
        provider_state: word.into(),
        amount: if paid {
            Some(s.total_fee(fields, what)?)
        } else {
            None
        },
        paid_at: if paid { wire::time_end(fields)? } else { None },
    })
}

/// §13.6.1: a signing (`change_type` ADD) or termination (DELETE). Signed
/// with the signing entry's algorithm, MD5 unless the message says.
pub(crate) fn contract_notification(
    ctx: &Ctx,
    s: &Settings,
    fields: &Fields,
) -> Result<Vec<NotifyEvent>> {
    let what = "contract notification";
    if wire::required(fields, "return_code", what).map_err(as_invalid)? != "SUCCESS" {
        return Ok(vec![]);
    }
    let sign_type = notification_sign_type(fields, SignType::Md5, what)?;
    sign::verify(ctx, sign_type, s.api_key, fields, what)?;
    s.merchant
        .check(fields, what)
        .map_err(Error::invalid_request)?;
    if wire::required(fields, "result_code", what).map_err(as_invalid)? != "SUCCESS" {
        return Ok(vec![]);
    }
    let change = wire::required(fields, "change_type", what).map_err(as_invalid)?;
    let state = match change {
        "ADD" => ContractState::Active,
        "DELETE" => ContractState::Terminated(termination(fields)),
        other => {
            return Err(Error::invalid_request(format!(
                "{what}: unknown change_type `{other}`"
            )));
        }
    };
    let code = wire::required(fields, "contract_code", what).map_err(as_invalid)?;
    Ok(vec![NotifyEvent::Contract(ContractStatus {
        contract: ContractRef {
            merchant_contract_no: code.into(),
            provider_contract_id: Some(
                wire::required(fields, "contract_id", what)
                    .map_err(as_invalid)?
                    .into(),
            ),
        },
        plan_id: wire::optional(fields, "plan_id").map(String::from),
        state,
        provider_state: change.into(),
        // The authoritative payer of the contract (§13.6.1).
        payer_id: wire::optional(fields, "openid").map(String::from),
        changed_at: dashed_time(fields, "operate_time").map_err(as_invalid)?,
    })])
}

/// §13.6.2: a deduction's result, signed like a payment notification. It
/// names the contract by WeChat's `contract_id` only, so the contract's
/// merchant number is left empty: the host finds the deduction by its own
/// number.
pub(crate) fn deduction_notification(
    ctx: &Ctx,
    s: &Settings,
    fields: &Fields,
) -> Result<Vec<NotifyEvent>> {
    let what = "deduction notification";
    if wire::required(fields, "return_code", what).map_err(as_invalid)? != "SUCCESS" {
        return Ok(vec![]);
    }
    let sign_type = notification_sign_type(fields, s.sign_type, what)?;
    sign::verify(ctx, sign_type, s.api_key, fields, what)?;
    s.merchant
        .check(fields, what)
        .map_err(Error::invalid_request)?;
    let no = wire::required(fields, "out_trade_no", what).map_err(as_invalid)?;
    let succeeded = wire::required(fields, "result_code", what).map_err(as_invalid)? == "SUCCESS";
    let transaction_id = wire::optional(fields, "transaction_id").map(String::from);
    if succeeded && transaction_id.is_none() {
        // WeChat's own failure sample looks like this: never take it as paid.
        return Err(Error::invalid_request(format!(
            "{what} says SUCCESS without a transaction_id"
        )));
    }
    let state = if succeeded {
        DeductionState::Succeeded
    } else {
        DeductionState::Failed(
            wire::optional(fields, "err_code_des")
                .or_else(|| wire::optional(fields, "err_code"))
                .unwrap_or("FAIL")
                .into(),
        )
    };
    Ok(vec![NotifyEvent::Deduction(DeductionStatus {
        contract: ContractRef {
            merchant_contract_no: String::new(),
            provider_contract_id: wire::optional(fields, "contract_id").map(String::from),
        },
        merchant_deduction_no: no.into(),
        provider_deduction_id: transaction_id,
        provider_state: if succeeded {
            "SUCCESS"
        } else {
            wire::optional(fields, "err_code").unwrap_or("FAIL")
        }
        .into(),
        amount: if succeeded {
            Some(s.total_fee(fields, what).map_err(as_invalid)?)
        } else {
            None
        },
        paid_at: if succeeded {
            wire::time_end(fields).map_err(as_invalid)?
        } else {
            None
        },
        state,
    })])
}

fn notification_sign_type(fields: &Fields, default: SignType, what: &str) -> Result<SignType> {
    match wire::optional(fields, "sign_type") {
        Some(t) => SignType::parse(t)
            .ok_or_else(|| Error::bad_signature(format!("{what}: unknown sign_type `{t}`"))),
        None => Ok(default),
    }
}
