//! Auto-debit contracts, WeChat Pay Global's overseas papay family
//! (providers.md §13.0 "Overseas v3"): the mini-program pre-sign, the
//! contract queries, termination, the synchronous deduction, its query and
//! the contract and deduction notifications. Enabled per merchant by
//! `papay_mode = "global"` (with `mode = "global"`); off, every contract
//! operation answers `unsupported`.
//!
//! The domestic papay family is v2 (§13.0) and lives in the wechat-v2
//! adapter; the domestic v3 "scheduled deduction" family is not offered.

pub mod wire;

use crate::wire::Mode;
use crate::{Settings, rejection_code};
use payhost_sdk::prelude::*;

const CONTRACT_NO: field::Rule = field::Rule::order_no("merchant_contract_no", 1, 32, "_-|*");
const DEDUCTION_NO: field::Rule = field::Rule::order_no("merchant_deduction_no", 6, 32, "_-|*");

/// What papay needs beyond the payment settings; every `CONFIGURABLE` or
/// `UNKNOWN` item of §13 for the overseas family is one of these.
pub(crate) struct PapaySettings<'a> {
    prefix: &'a str,
    signing_app_id: &'a str,
    signing_path: &'a str,
    session_param: &'a str,
    sign_expires_secs: Option<i64>,
    merchant_category_code: Option<&'a str>,
    contract_events: Vec<&'a str>,
}

impl<'a> PapaySettings<'a> {
    /// `None` when papay is off: the caller answers `unsupported`, and a
    /// notification is not routed here.
    pub(crate) fn read_opt(ctx: &Ctx<'a>, s: &Settings) -> Result<Option<Self>> {
        let c = ctx.config();
        match c.text_opt("papay_mode")?.unwrap_or("off") {
            "off" => return Ok(None),
            "global" => {}
            other => {
                return Err(Error::invalid_config(format!(
                    "field `papay_mode` is `{other}`, expected `off` or `global`"
                )));
            }
        }
        if s.ids.mode != Mode::Global {
            return Err(Error::invalid_config(
                "`papay_mode = global` needs `mode = global` (WeChat Pay Global, apihk)",
            ));
        }
        let prefix = c
            .text_opt("papay_path_prefix")?
            .unwrap_or(wire::DEFAULT_PREFIX);
        if !wire::PREFIXES.contains(&prefix) {
            return Err(Error::invalid_config(format!(
                "field `papay_path_prefix` is `{prefix}`, expected one of {}",
                wire::PREFIXES.join(", ")
            )));
        }
        let sign_expires_secs = match c.text_opt("papay_sign_expires_secs")? {
            None => None,
            Some(t) => Some(t.parse().ok().filter(|v: &i64| *v > 0).ok_or_else(|| {
                Error::invalid_config(format!(
                    "field `papay_sign_expires_secs` is `{t}`, expected a positive number of seconds"
                ))
            })?),
        };
        let contract_events = c
            .text_opt("papay_contract_events")?
            .unwrap_or(wire::DEFAULT_CONTRACT_EVENTS)
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        Ok(Some(PapaySettings {
            prefix,
            signing_app_id: c
                .text_opt("papay_signing_appid")?
                .unwrap_or(wire::DEFAULT_SIGNING_APP_ID),
            signing_path: c
                .text_opt("papay_signing_path")?
                .unwrap_or(wire::DEFAULT_SIGNING_PATH),
            session_param: c
                .text_opt("papay_session_param")?
                .unwrap_or(wire::DEFAULT_SESSION_PARAM),
            sign_expires_secs,
            merchant_category_code: c.text_opt("papay_merchant_category_code")?,
            contract_events,
        }))
    }

    fn read(ctx: &Ctx<'a>, s: &Settings) -> Result<Self> {
        Self::read_opt(ctx, s)?.ok_or_else(|| {
            Error::unsupported(
                "auto-debit contracts need `papay_mode = global` (WeChat Pay Global papay)",
            )
        })
    }

    pub(crate) fn is_contract_event(&self, event_type: &str) -> bool {
        self.contract_events.contains(&event_type)
    }
}

/// `plan_id` travels as a JSON integer (§13.2.6 schema).
fn plan_number(plan_id: &str) -> Result<u64> {
    field::order_no(plan_id, "plan_id", 1, 20, "")?;
    plan_id
        .parse()
        .map_err(|_| Error::invalid_request("plan_id: WeChat Pay Global's template id is a number"))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    json::from_body(body).map_err(|e| Error::malformed(format!("{what}: {e}")))
}

fn rfc3339(t: Option<&str>, name: &str, what: &str) -> Result<Option<i64>> {
    t.map(|t| time::parse_rfc3339(t).map_err(|e| Error::malformed(format!("{what}: {name}: {e}"))))
        .transpose()
}

/// §13.2.6: the pre-sign answers a `session_id`, which WeChat's signing
/// mini-program takes; the contract is real only once its notification or
/// a query says so.
pub(crate) fn sign_contract(ctx: &mut Ctx, req: &ContractSignRequest) -> Result<ContractSigning> {
    let s = Settings::read(ctx)?;
    let p = PapaySettings::read(ctx, &s)?;
    CONTRACT_NO.check(&req.merchant_contract_no)?;
    let plan = plan_number(&req.plan_id)?;
    field::chars(&req.display_name, "display_name", 1, 32)?;
    if req.display_name.chars().any(|c| c.len_utf8() > 3) {
        return Err(Error::invalid_request(
            "display_name: WeChat's signing page takes no 4-byte characters (emoji)",
        ));
    }
    if req.payer.app_id != s.pay_appid {
        return Err(Error::invalid_request(format!(
            "payer.app_id `{}`: the pre-sign's openid is of `{}`",
            req.payer.app_id, s.pay_appid
        )));
    }
    let openid = req.payer.openid.as_deref().ok_or_else(|| {
        Error::invalid_request("payer.openid: WeChat Pay Global's pre-sign names the payer")
    })?;
    field::chars(openid, "payer.openid", 1, 128)?;
    // WeChat refuses the signing unless this is the signing client's IP.
    let ip = req.payer.client_ip.as_deref().ok_or_else(|| {
        Error::invalid_request("payer.client_ip: WeChat Pay Global's pre-sign needs user_client_ip")
    })?;
    let mut body = wire::ids(&s.ids, true);
    body["plan_id"] = plan.into();
    body["out_contract_code"] = req.merchant_contract_no.as_str().into();
    body["user_display_name"] = req.display_name.as_str().into();
    body["success_notify_url"] = field::notify_url_without_query(ctx.notify_url())?.into();
    body["openid"] = openid.into();
    body["user_client_ip"] = ip.into();
    if let Some(secs) = p.sign_expires_secs {
        let at = time::format_rfc3339(ctx.timestamp() + secs, time::CHINA)
            .map_err(|e| Error::invalid_config(format!("papay_sign_expires_secs: {e}")))?;
        body["expired_time"] = at.into();
    }
    let (_, answer) = s.call(ctx, HttpMethod::Post, &wire::pre_sign(p.prefix), Some(body))?;
    let a: wire::PreSignAnswer = parse(&answer, "pre-sign answer")?;
    if a.session_id.is_empty() {
        return Err(Error::malformed("pre-sign answer: empty session_id"));
    }
    Ok(ContractSigning {
        contract: ContractRef {
            merchant_contract_no: req.merchant_contract_no.clone(),
            provider_contract_id: None,
        },
        action: SignAction::MiniProgramNavigation(MiniProgramNavigation {
            app_id: p.signing_app_id.into(),
            path: p.signing_path.into(),
            extra_data: vec![(p.session_param.into(), a.session_id)],
        }),
    })
}

/// A contract as WeChat states it, checked against the merchant and what
/// was asked (`asked` empty: a notification, nothing to compare).
fn contract_status(
    s: &Settings,
    c: wire::Contract,
    asked: Option<&ContractRef>,
    what: &str,
) -> Result<ContractStatus> {
    s.check_merchant(
        c.mchid.as_deref().or(c.sp_mchid.as_deref()),
        c.sub_mchid.as_deref(),
        what,
    )?;
    if let Some(asked) = asked {
        if c.out_contract_code != asked.merchant_contract_no {
            return Err(Error::malformed(format!(
                "{what} is for out_contract_code `{}`, not `{}`",
                c.out_contract_code, asked.merchant_contract_no
            )));
        }
        if let Some(ours) = &asked.provider_contract_id
            && *ours != c.contract_id
        {
            return Err(Error::malformed(format!(
                "{what} is for contract_id `{}`, not `{ours}`",
                c.contract_id
            )));
        }
    }
    let state = wire::contract_state(&c)
        .ok_or_else(|| Error::malformed(format!("{what}: unknown contract state `{}`", c.state)))?;
    let changed_at = match state {
        ContractState::Terminated(_) => {
            rfc3339(c.terminated_time.as_deref(), "terminated_time", what)?
        }
        _ => rfc3339(c.signed_time.as_deref(), "signed_time", what)?,
    };
    Ok(ContractStatus {
        contract: ContractRef {
            merchant_contract_no: c.out_contract_code,
            provider_contract_id: Some(c.contract_id),
        },
        plan_id: c.plan_id.map(|p| p.to_string()),
        state,
        provider_state: c.state,
        payer_id: c.openid,
        changed_at,
    })
}

/// §13.4: by WeChat's `contract_id` when known, else by the merchant's
/// number. A contract WeChat does not know was never signed.
pub(crate) fn query_contract(ctx: &mut Ctx, req: &ContractQueryRequest) -> Result<ContractStatus> {
    let s = Settings::read(ctx)?;
    let p = PapaySettings::read(ctx, &s)?;
    fetch_contract(ctx, &s, &p, &req.contract, &req.plan_id)
}

fn fetch_contract(
    ctx: &mut Ctx,
    s: &Settings,
    p: &PapaySettings,
    contract: &ContractRef,
    plan_id: &str,
) -> Result<ContractStatus> {
    let query = wire::ids_query(&s.ids, plan_number(plan_id)?);
    let path = match &contract.provider_contract_id {
        Some(id) => {
            field::order_no(id, "contract.provider_contract_id", 1, 64, "_-")?;
            wire::contract_by_id(p.prefix, id, &query)
        }
        None => {
            CONTRACT_NO.check(&contract.merchant_contract_no)?;
            wire::contract_by_code(p.prefix, &contract.merchant_contract_no, &query)
        }
    };
    let what = "contract query answer";
    match s.call(ctx, HttpMethod::Get, &path, None) {
        Ok((_, answer)) => contract_status(s, parse(&answer, what)?, Some(contract), what),
        Err(e) if not_found(&e) => Ok(ContractStatus {
            contract: contract.clone(),
            plan_id: Some(plan_id.into()),
            state: ContractState::PendingSignature,
            provider_state: rejection_code(&e).unwrap_or_default().into(),
            payer_id: None,
            changed_at: None,
        }),
        Err(e) => Err(e),
    }
}

/// The overseas not-found code is not published; these are v3's and v2
/// papay's.
fn not_found(e: &Error) -> bool {
    matches!(
        rejection_code(e),
        Some("RESOURCE_NOT_EXISTS" | "NOT_FOUND" | "CONTRACT_NOT_EXIST" | "ORDER_NOT_EXIST")
    )
}

/// §13.5: terminate answers 204; the contract is then over. Without
/// WeChat's id the contract is looked up first, as terminate takes only it.
pub(crate) fn terminate_contract(
    ctx: &mut Ctx,
    req: &ContractTerminateRequest,
) -> Result<ContractStatus> {
    let s = Settings::read(ctx)?;
    let p = PapaySettings::read(ctx, &s)?;
    field::chars(&req.reason, "reason", 1, 512)?;
    let contract = match &req.contract.provider_contract_id {
        Some(_) => req.contract.clone(),
        None => {
            let found = fetch_contract(ctx, &s, &p, &req.contract, &req.plan_id)?;
            match found.state {
                ContractState::Active => found.contract,
                // Nothing to end: answer what WeChat says.
                _ => return Ok(found),
            }
        }
    };
    let id = contract.provider_contract_id.as_deref().unwrap_or_default();
    field::order_no(id, "contract.provider_contract_id", 1, 64, "_-")?;
    let mut body = wire::ids(&s.ids, false);
    body["termination_note"] = req.reason.as_str().into();
    let (status, _) = s.call(
        ctx,
        HttpMethod::Post,
        &wire::terminate(p.prefix, id),
        Some(body),
    )?;
    if status != 204 {
        return Err(Error::malformed(format!(
            "terminate answer: HTTP {status}, expected 204"
        )));
    }
    Ok(ContractStatus {
        contract,
        plan_id: Some(req.plan_id.clone()),
        state: ContractState::Terminated("terminated by the merchant (API)".into()),
        provider_state: "TERMINATED".into(),
        payer_id: None,
        changed_at: Some(ctx.timestamp()),
    })
}

/// A deduction order in the contract's terms, checked against the
/// merchant and the number asked about.
fn deduction_status(
    s: &Settings,
    d: wire::Deduction,
    contract: &ContractRef,
    deduction_no: Option<&str>,
    what: &str,
) -> Result<DeductionStatus> {
    s.check_merchant(
        d.mchid.as_deref().or(d.sp_mchid.as_deref()),
        d.sub_mchid.as_deref(),
        what,
    )?;
    if let Some(no) = deduction_no
        && d.out_trade_no != no
    {
        return Err(Error::malformed(format!(
            "{what} is for out_trade_no `{}`, not `{no}`",
            d.out_trade_no
        )));
    }
    if let Some(t) = d.trade_type.as_deref()
        && t != wire::TRADE_TYPE
    {
        return Err(Error::malformed(format!(
            "{what}: trade_type `{t}` is not a papay deduction"
        )));
    }
    let state =
        wire::deduction_state(&d.trade_state, d.trade_state_desc.as_deref()).ok_or_else(|| {
            Error::malformed(format!("{what}: unknown trade_state `{}`", d.trade_state))
        })?;
    let paid = state == DeductionState::Succeeded;
    if paid && d.transaction_id.is_none() {
        return Err(Error::malformed(format!(
            "{what}: a charged deduction without transaction_id"
        )));
    }
    let amount = match (&d.amount, paid) {
        (Some(a), true) => Some(Money {
            minor: a.total,
            currency: a
                .currency
                .clone()
                .ok_or_else(|| Error::malformed(format!("{what}: amount.currency missing")))?,
        }),
        (None, true) => return Err(Error::malformed(format!("{what}: amount missing"))),
        _ => None,
    };
    let paid_at = if paid {
        rfc3339(d.success_time.as_deref(), "success_time", what)?
    } else {
        None
    };
    Ok(DeductionStatus {
        contract: ContractRef {
            merchant_contract_no: contract.merchant_contract_no.clone(),
            provider_contract_id: d
                .contract_id
                .or_else(|| contract.provider_contract_id.clone()),
        },
        merchant_deduction_no: d.out_trade_no,
        provider_deduction_id: d.transaction_id,
        state,
        provider_state: d.trade_state,
        amount,
        paid_at,
    })
}

/// §13.3.4: WeChat charges at once and answers the order. A refusal
/// (limits, a contract that ended) is an error naming WeChat's code; an
/// answer that says nothing certain (time-out, 5xx) is an error too, and
/// the host queries under the same number before anything else.
pub(crate) fn deduct(ctx: &mut Ctx, req: &DeductionRequest) -> Result<DeductionStatus> {
    let s = Settings::read(ctx)?;
    let p = PapaySettings::read(ctx, &s)?;
    DEDUCTION_NO.check(&req.merchant_deduction_no)?;
    field::positive(req.amount.minor, "amount.minor")?;
    field::currency(&req.amount.currency, "amount.currency")?;
    field::chars(&req.description, "description", 1, 127)?;
    let mcc = p.merchant_category_code.ok_or_else(|| {
        Error::invalid_config(
            "field `papay_merchant_category_code` is needed to deduct (WeChat requires merchant_category_code)",
        )
    })?;
    let contract_id = req
        .contract
        .provider_contract_id
        .as_deref()
        .ok_or_else(|| {
            Error::invalid_request(
                "contract.provider_contract_id: WeChat Pay Global deducts by contract_id",
            )
        })?;
    let mut body = wire::ids(&s.ids, false);
    body["description"] = req.description.as_str().into();
    body["notify_url"] = field::notify_url_without_query(ctx.notify_url())?.into();
    body["out_trade_no"] = req.merchant_deduction_no.as_str().into();
    body["merchant_category_code"] = mcc.into();
    body["contract_id"] = contract_id.into();
    body["amount"] = json::json!({"total": req.amount.minor, "currency": req.amount.currency});
    if let Some(ip) = &req.client_ip {
        body["scene_info"] = json::json!({"device_ip": ip});
    }
    let what = "deduction answer";
    let (_, answer) = s.call(
        ctx,
        HttpMethod::Post,
        &wire::transactions(p.prefix),
        Some(body),
    )?;
    deduction_status(
        &s,
        parse(&answer, what)?,
        &req.contract,
        Some(&req.merchant_deduction_no),
        what,
    )
}

/// §13.4 by the merchant's number. A deduction WeChat does not know was
/// never taken: no money moved, none will under this number.
pub(crate) fn query_deduction(
    ctx: &mut Ctx,
    req: &DeductionQueryRequest,
) -> Result<DeductionStatus> {
    let s = Settings::read(ctx)?;
    let p = PapaySettings::read(ctx, &s)?;
    let no = &req.merchant_deduction_no;
    DEDUCTION_NO.check(no)?;
    let path = wire::transaction_by_out_trade_no(p.prefix, no, &s.ids.query());
    let what = "deduction query answer";
    match s.call(ctx, HttpMethod::Get, &path, None) {
        Ok((_, answer)) => {
            deduction_status(&s, parse(&answer, what)?, &req.contract, Some(no), what)
        }
        Err(e) if not_found(&e) => {
            let code = rejection_code(&e).unwrap_or_default().to_string();
            Ok(DeductionStatus {
                contract: req.contract.clone(),
                merchant_deduction_no: no.clone(),
                provider_deduction_id: None,
                state: DeductionState::Failed(format!("{code}: WeChat has no deduction `{no}`")),
                provider_state: code,
                amount: None,
                paid_at: None,
            })
        }
        Err(e) => Err(e),
    }
}

/// §13.6.3: a verified, decrypted notification resource of papay, or
/// `None` when it is not papay's (an ordinary payment, a refund).
pub(crate) fn notification_events(
    s: &Settings,
    p: &PapaySettings,
    event_type: &str,
    plain: &[u8],
    what: &str,
) -> Result<Option<Vec<NotifyEvent>>> {
    let invalid = |e: Error| match e.adapter_error() {
        Some(AdapterError::MalformedResponse(m)) => Error::invalid_request(m.clone()),
        _ => e,
    };
    if p.is_contract_event(event_type) {
        let c: wire::Contract = json::from_body(plain)
            .map_err(|e| Error::invalid_request(format!("{what}: resource: {e}")))?;
        let status = contract_status(s, c, None, what).map_err(invalid)?;
        return Ok(Some(vec![NotifyEvent::Contract(status)]));
    }
    if !event_type.starts_with("TRANSACTION.") {
        return Ok(None);
    }
    // A deduction shares the payment events; its trade type tells it apart.
    let is_papay = json::from_body::<json::Value>(plain)
        .ok()
        .is_some_and(|v| v["trade_type"] == wire::TRADE_TYPE);
    if !is_papay {
        return Ok(None);
    }
    let d: wire::Deduction = json::from_body(plain)
        .map_err(|e| Error::invalid_request(format!("{what}: resource: {e}")))?;
    // The resource names no merchant contract number: the host finds the
    // deduction by its own number.
    let contract = ContractRef {
        merchant_contract_no: String::new(),
        provider_contract_id: None,
    };
    let status = deduction_status(s, d, &contract, None, what).map_err(invalid)?;
    Ok(Some(vec![NotifyEvent::Deduction(status)]))
}
