//! WeChat Pay Global's auto-debit contracts (papay, providers.md §13,
//! "Overseas v3"), for a global merchant ([`Simulator::start_global`]):
//! the mini-program pre-sign, the contract queries by `contract_id` and by
//! `out_contract_code`, terminate (204), the synchronous deduction and its
//! query by `out_trade_no`, under one path prefix (`/v3/global/papay`
//! unless [`PapayLimits::prefix`] says `/v3/papay/hk`; §13.1).
//!
//! Checked as WeChat checks them, beyond the `Authorization` signature the
//! main handler already checked: the merchant's ids in each body or query
//! string, the fields each call requires (§13.2.6, §13.3.4, §13.5), a
//! signed contract before a deduction, and the provider limits of
//! [`PapayLimits`]: the most one deduction may take, and how many
//! successful deductions a contract may have per Beijing day (failures do
//! not count; §13.8). A refusal names WeChat's code (`RULELIMIT`,
//! `CONTRACT_NOT_EXIST`).
//!
//! The payer's side are test hooks: [`Simulator::sign_contract`] (the
//! payer signs in WeChat's mini-program after a pre-sign; the contract
//! notification goes to the pre-sign's `success_notify_url`) and
//! [`Simulator::terminate_contract_by_payer`]. [`Simulator::papay_contract`]
//! and [`Simulator::papay_deduction`] give WeChat's truth.
//!
//! Assumed where §13 says `UNKNOWN`, and named so here: the contract
//! notifications' events (`ENTRUST.SIGN` / `ENTRUST.TERMINATE`, associated
//! data `entrust`, the query's contract object as resource), the deduction
//! notification (`TRANSACTION.SUCCESS` / `TRANSACTION.FAIL`, the order),
//! the state word `TERMINATED`, the termination mode `MERCHANT`, the
//! not-found and refusal codes (v3's and v2 papay's), and that a payer's
//! termination is notified to the signing URL (WeChat: the template's).
//!
//! Not simulated: the app/JSAPI/H5/web pre-signs, `user_client_ip`
//! matching the signing client, `expired_time` expiry, reverse, refunds of
//! deductions, query by `transaction_id`, the industry whitelist.

#[cfg(test)]
mod tests;

use super::{NotifyForgery, Shared, Simulator, now};
use anyhow::anyhow;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The refusal of an amount or count over a limit (§13.8, §13.10).
pub const RULELIMIT: &str = "RULELIMIT";
/// The refusal of a deduction on a contract that is not (or no longer)
/// signed (§13.10, v2 papay's code; the overseas one is not published).
pub const CONTRACT_NOT_EXIST: &str = "CONTRACT_NOT_EXIST";

/// The limits WeChat applies, per template in reality (§13.8: overseas
/// quotas are not published, so they are configurable here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PapayLimits {
    /// The most one deduction may take, in minor units.
    pub max_per_deduction: u64,
    /// Successful deductions per contract per Beijing day.
    pub deductions_per_day: u32,
    /// `/v3/global/papay` or `/v3/papay/hk`.
    pub prefix: &'static str,
}

impl Default for PapayLimits {
    fn default() -> Self {
        PapayLimits {
            max_per_deduction: 50_000,
            deductions_per_day: 1,
            prefix: "/v3/global/papay",
        }
    }
}

#[derive(Debug, Clone)]
struct PreSign {
    plan_id: u64,
    openid: String,
    display_name: String,
    notify_url: String,
}

/// A contract as WeChat holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PapayContract {
    pub contract_id: String,
    pub out_contract_code: String,
    pub plan_id: u64,
    pub openid: String,
    pub display_name: String,
    /// `SIGNED` or `TERMINATED`.
    pub state: &'static str,
    pub signed_time: String,
    pub terminated_time: Option<String>,
    /// `USER` or `MERCHANT`.
    pub termination_mode: Option<&'static str>,
    pub termination_note: Option<String>,
    notify_url: String,
}

/// A deduction as WeChat holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PapayDeduction {
    pub out_trade_no: String,
    pub transaction_id: String,
    pub contract_id: String,
    pub total: u64,
    pub currency: String,
    /// `SUCCESS`, `PAYERROR`, ...
    pub trade_state: &'static str,
    pub success_time: Option<String>,
    /// The Beijing day (days since the epoch) it was made.
    pub day: i64,
    notify_url: String,
}

#[derive(Debug, Default)]
pub(super) struct Book {
    limits: PapayLimits,
    /// Pre-signs waiting for the payer, by `out_contract_code`.
    presigns: BTreeMap<String, PreSign>,
    contracts: BTreeMap<String, PapayContract>,
    deductions: BTreeMap<String, PapayDeduction>,
    /// The outcome of the next deduction, when not `SUCCESS`.
    next_result: Option<&'static str>,
}

fn stamp() -> String {
    payhost_sdk::time::format_rfc3339(now(), payhost_sdk::time::CHINA).unwrap_or_default()
}

/// Days since the epoch in Beijing time, the day the per-day limit counts.
fn beijing_day() -> i64 {
    (now() + 8 * 3600).div_euclid(86_400)
}

impl Shared {
    /// The merchant's and the app's ids as answers name them.
    fn papay_ids(&self) -> Value {
        let mut v = self.merchant_ids();
        let key = if self.config.sub_mchid.is_some() {
            "sp_appid"
        } else {
            "appid"
        };
        v[key] = self.config.appid.clone().into();
        v
    }

    fn contract_json(&self, c: &PapayContract) -> Value {
        let mut v = self.papay_ids();
        for (k, x) in [
            ("contract_id", json!(c.contract_id)),
            ("plan_id", json!(c.plan_id)),
            ("out_contract_code", json!(c.out_contract_code)),
            ("user_display_name", json!(c.display_name)),
            ("state", json!(c.state)),
            ("signed_time", json!(c.signed_time)),
            ("openid", json!(c.openid)),
        ] {
            v[k] = x;
        }
        if let Some(t) = &c.terminated_time {
            v["terminated_time"] = t.clone().into();
            v["termination_mode"] = c.termination_mode.into();
            v["termination_note"] = c.termination_note.clone().into();
        }
        v
    }

    fn deduction_json(&self, d: &PapayDeduction, openid: &str) -> Value {
        let mut v = self.papay_ids();
        let payer_key = if self.config.sub_mchid.is_some() {
            "sp_openid"
        } else {
            "openid"
        };
        for (k, x) in [
            ("out_trade_no", json!(d.out_trade_no)),
            ("transaction_id", json!(d.transaction_id)),
            ("trade_type", json!("AUTH")),
            ("bank_type", json!("OTHERS")),
            ("trade_state", json!(d.trade_state)),
            ("trade_state_desc", json!(state_desc(d.trade_state))),
            ("payer", json!({ payer_key: openid })),
            (
                "amount",
                json!({"total": d.total, "currency": d.currency,
                       "payer_total": d.total, "payer_currency": d.currency}),
            ),
        ] {
            v[k] = x;
        }
        if let Some(t) = &d.success_time {
            v["success_time"] = t.clone().into();
        }
        v
    }

    /// The ids of a papay body (§13.2.6, §13.3.4, §13.5): `appid` of a
    /// direct merchant; `sp_appid` and `sub_mchid` of an institution, and
    /// `sp_mchid` where the call's schema lists it.
    fn check_body_ids(&self, b: &Value, with_sp_mchid: bool) -> Result<(), String> {
        let text = |k: &str| b[k].as_str();
        match &self.config.sub_mchid {
            None => {
                if text("appid") != Some(self.config.appid.as_str()) {
                    return Err("appid is missing or not bound to the merchant".into());
                }
                if b.get("sub_mchid").is_some() {
                    return Err("sub_mchid is set for a direct merchant".into());
                }
            }
            Some(sub) => {
                if text("sp_appid") != Some(self.config.appid.as_str())
                    || text("sub_mchid") != Some(sub.as_str())
                {
                    return Err("sp_appid or sub_mchid is missing or not this merchant's".into());
                }
                if with_sp_mchid && text("sp_mchid") != Some(self.config.mchid.as_str()) {
                    return Err("sp_mchid is missing or not this institution's".into());
                }
            }
        }
        Ok(())
    }
}

fn state_desc(state: &str) -> &'static str {
    match state {
        "SUCCESS" => "支付成功",
        "PAYERROR" => "支付失败",
        "NOTPAY" => "未支付",
        "USERPAYING" => "用户支付中",
        "CLOSED" => "已关闭",
        _ => "",
    }
}

/// Answers a request under the papay prefix; `None` when the path is not
/// one (the main handler then answers `NOT_FOUND`).
pub(super) fn handle(s: &Shared, method: &Method, uri: &Uri, body: &[u8]) -> Option<Response> {
    let prefix = s.state().papay.limits.prefix;
    let rest = uri.path().strip_prefix(prefix)?;
    if !s.global {
        // §13.0: papay on v3 is WeChat Pay Global's (apihk).
        return Some(s.error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such API"));
    }
    let query: Vec<(String, String)> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let q = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let json_body = || serde_json::from_slice::<Value>(body).ok();
    Some(match (method, segments.as_slice()) {
        (&Method::POST, ["contracts", "miniprogram-pre-entrust-sign"]) => pre_sign(s, json_body()),
        (&Method::GET, ["contracts", "out-contract-code", code]) => {
            query_contract(s, &q, |c| c.out_contract_code == *code, true)
        }
        (&Method::POST, ["contracts", id, "terminate"]) => terminate(s, id, json_body()),
        (&Method::GET, ["contracts", id]) => query_contract(s, &q, |c| c.contract_id == *id, false),
        (&Method::POST, ["transactions"]) => deduct(s, json_body()),
        (&Method::GET, ["transactions", "out-trade-no", no]) => {
            if let Err(why) = s.check_ids(&q, false) {
                return Some(s.error(StatusCode::BAD_REQUEST, "PARAM_ERROR", &why));
            }
            let st = s.state();
            let found = st.papay.deductions.get(*no).cloned().map(|d| {
                let openid = st
                    .papay
                    .contracts
                    .get(&d.contract_id)
                    .map(|c| c.openid.clone())
                    .unwrap_or_default();
                (d, openid)
            });
            drop(st);
            match found {
                Some((d, openid)) => s.answer(StatusCode::OK, Some(s.deduction_json(&d, &openid))),
                None => s.error(
                    StatusCode::NOT_FOUND,
                    "ORDER_NOT_EXIST",
                    "order does not exist",
                ),
            }
        }
        _ => s.error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such API"),
    })
}

fn pre_sign(s: &Shared, body: Option<Value>) -> Response {
    let param = |why: &str| s.error(StatusCode::BAD_REQUEST, "PARAM_ERROR", why);
    let Some(b) = body else {
        return param("body is not JSON");
    };
    if let Err(why) = s.check_body_ids(&b, true) {
        return param(&why);
    }
    let text = |k: &str| b[k].as_str().filter(|t| !t.is_empty());
    let Some(plan_id) = b["plan_id"].as_u64() else {
        return param("plan_id must be an integer");
    };
    let Some(code) = text("out_contract_code").filter(|c| c.len() <= 32) else {
        return param("out_contract_code must be 1 to 32 characters");
    };
    let (Some(display), Some(notify_url), Some(openid), Some(_ip)) = (
        text("user_display_name"),
        text("success_notify_url"),
        text("openid"),
        text("user_client_ip"),
    ) else {
        return param(
            "user_display_name, success_notify_url, openid and user_client_ip are required",
        );
    };
    if let Some(t) = b.get("expired_time") {
        let future = t
            .as_str()
            .and_then(|t| payhost_sdk::time::parse_rfc3339(t).ok())
            .is_some_and(|at| at > now());
        if !future {
            return param("expired_time must be an RFC 3339 time in the future");
        }
    }
    let used = s
        .state()
        .papay
        .contracts
        .values()
        .any(|c| c.out_contract_code == code);
    if used {
        // A merchant contract number is never reused (§13.2, §13.2.6).
        return s.error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "out_contract_code was signed already",
        );
    }
    let session_id = s.next_id("SES");
    s.state().papay.presigns.insert(
        code.into(),
        PreSign {
            plan_id,
            openid: openid.into(),
            display_name: display.into(),
            notify_url: notify_url.into(),
        },
    );
    s.answer(StatusCode::OK, Some(json!({ "session_id": session_id })))
}

fn query_contract(
    s: &Shared,
    q: &dyn Fn(&str) -> Option<String>,
    is_it: impl Fn(&PapayContract) -> bool,
    plan_required: bool,
) -> Response {
    let param = |why: &str| s.error(StatusCode::BAD_REQUEST, "PARAM_ERROR", why);
    let ids = match &s.config.sub_mchid {
        None => q("appid").as_deref() == Some(s.config.appid.as_str()),
        Some(sub) => {
            q("sp_appid").as_deref() == Some(s.config.appid.as_str())
                && q("sp_mchid").as_deref() == Some(s.config.mchid.as_str())
                && q("sub_mchid").as_deref() == Some(sub.as_str())
        }
    };
    if !ids {
        return param("the merchant's ids are missing from the query or not its own");
    }
    let plan = match q("plan_id") {
        None if plan_required => return param("plan_id is required with out_contract_code"),
        None => None,
        Some(p) => match p.parse::<u64>() {
            Ok(p) => Some(p),
            Err(_) => return param("plan_id must be an integer"),
        },
    };
    let found = s
        .state()
        .papay
        .contracts
        .values()
        .find(|c| is_it(c) && plan.is_none_or(|p| p == c.plan_id))
        .cloned();
    match found {
        Some(c) => s.answer(StatusCode::OK, Some(s.contract_json(&c))),
        None => s.error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_EXISTS",
            "contract does not exist",
        ),
    }
}

fn terminate(s: &Shared, id: &str, body: Option<Value>) -> Response {
    let param = |why: &str| s.error(StatusCode::BAD_REQUEST, "PARAM_ERROR", why);
    let Some(b) = body else {
        return param("body is not JSON");
    };
    if let Err(why) = s.check_body_ids(&b, false) {
        return param(&why);
    }
    let Some(note) = b["termination_note"].as_str().filter(|n| !n.is_empty()) else {
        return param("termination_note is required");
    };
    let mut st = s.state();
    let Some(c) = st.papay.contracts.get_mut(id) else {
        drop(st);
        return s.error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_EXISTS",
            "contract does not exist",
        );
    };
    if c.state != "SIGNED" {
        drop(st);
        return s.error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "contract is not signed",
        );
    }
    c.state = "TERMINATED";
    c.terminated_time = Some(stamp());
    c.termination_mode = Some("MERCHANT");
    c.termination_note = Some(note.into());
    drop(st);
    s.answer(StatusCode::NO_CONTENT, None)
}

fn deduct(s: &Shared, body: Option<Value>) -> Response {
    let param = |why: &str| s.error(StatusCode::BAD_REQUEST, "PARAM_ERROR", why);
    let refuse = |code: &str, why: &str| s.error(StatusCode::FORBIDDEN, code, why);
    let Some(b) = body else {
        return param("body is not JSON");
    };
    if let Err(why) = s.check_body_ids(&b, false) {
        return param(&why);
    }
    let text = |k: &str| b[k].as_str().filter(|t| !t.is_empty());
    let (Some(_desc), Some(notify_url), Some(_mcc), Some(contract_id)) = (
        text("description"),
        text("notify_url"),
        text("merchant_category_code"),
        text("contract_id"),
    ) else {
        return param(
            "description, notify_url, merchant_category_code and contract_id are required",
        );
    };
    let Some(no) = text("out_trade_no").filter(|n| n.len() <= 32) else {
        return param("out_trade_no must be 1 to 32 characters");
    };
    let Some(total) = b["amount"]["total"].as_u64().filter(|t| *t > 0) else {
        return param("amount.total must be a positive integer");
    };
    let Some(currency) = b["amount"]["currency"]
        .as_str()
        .filter(|c| payhost_sdk::money::WECHAT_PAY_CURRENCIES.contains(c))
    else {
        return param("amount.currency is missing or not a currency of WeChat Pay Global");
    };
    let transaction_id = s.next_id("42");
    let mut st = s.state();
    let book = &mut st.papay;
    if let Some(d) = book.deductions.get(no).cloned() {
        let openid = book
            .contracts
            .get(&d.contract_id)
            .map(|c| c.openid.clone())
            .unwrap_or_default();
        drop(st);
        // The same number deducts once; the same request answers the order.
        if d.contract_id != contract_id || d.total != total || d.currency != currency {
            return refuse(
                "OUT_TRADE_NO_USED",
                "out_trade_no was used with other parameters",
            );
        }
        return s.answer(StatusCode::OK, Some(s.deduction_json(&d, &openid)));
    }
    let Some(contract) = book
        .contracts
        .get(contract_id)
        .filter(|c| c.state == "SIGNED")
        .cloned()
    else {
        drop(st);
        return refuse(
            CONTRACT_NOT_EXIST,
            "contract does not exist or is terminated",
        );
    };
    if total > book.limits.max_per_deduction {
        drop(st);
        return refuse(RULELIMIT, "amount is over the limit of one deduction");
    }
    let today = beijing_day();
    let done_today = book
        .deductions
        .values()
        .filter(|d| d.contract_id == contract_id && d.day == today && d.trade_state == "SUCCESS")
        .count();
    if done_today >= book.limits.deductions_per_day as usize {
        drop(st);
        return refuse(
            RULELIMIT,
            "deductions of this contract today are over the limit",
        );
    }
    let trade_state = book.next_result.take().unwrap_or("SUCCESS");
    let d = PapayDeduction {
        out_trade_no: no.into(),
        transaction_id,
        contract_id: contract_id.into(),
        total,
        currency: currency.into(),
        trade_state,
        success_time: (trade_state == "SUCCESS").then(stamp),
        day: today,
        notify_url: notify_url.into(),
    };
    book.deductions.insert(no.into(), d.clone());
    drop(st);
    s.answer(StatusCode::OK, Some(s.deduction_json(&d, &contract.openid)))
}

impl Simulator {
    /// Replaces the papay limits and path prefix.
    pub fn set_papay_limits(&self, limits: PapayLimits) {
        self.shared.state().papay.limits = limits;
    }

    /// The next deduction ends in `trade_state` (e.g. `PAYERROR`: every
    /// payment method of the payer failed) instead of `SUCCESS`.
    pub fn next_deduction_result(&self, trade_state: &'static str) {
        self.shared.state().papay.next_result = Some(trade_state);
    }

    /// WeChat's truth of a contract, by `contract_id`.
    pub fn papay_contract(&self, contract_id: &str) -> Option<PapayContract> {
        self.shared
            .state()
            .papay
            .contracts
            .get(contract_id)
            .cloned()
    }

    /// WeChat's truth of a deduction, by `out_trade_no`.
    pub fn papay_deduction(&self, out_trade_no: &str) -> Option<PapayDeduction> {
        self.shared
            .state()
            .papay
            .deductions
            .get(out_trade_no)
            .cloned()
    }

    /// The payer signs in WeChat's mini-program, after the merchant's
    /// pre-sign for `out_contract_code`: the contract is `SIGNED` and its
    /// notification goes to the pre-sign's `success_notify_url`. Refused
    /// (as WeChat's page refuses) for another template or payer than the
    /// pre-sign named, or a payer who holds an active contract of the
    /// template already (§13.8).
    pub async fn sign_contract(
        &self,
        out_contract_code: &str,
        plan_id: u64,
        openid: &str,
    ) -> anyhow::Result<String> {
        let pre = self
            .shared
            .state()
            .papay
            .presigns
            .get(out_contract_code)
            .cloned()
            .ok_or_else(|| anyhow!("no pre-sign for out_contract_code {out_contract_code}"))?;
        if pre.plan_id != plan_id || pre.openid != openid {
            return Err(anyhow!(
                "the pre-sign of {out_contract_code} is for another plan or payer"
            ));
        }
        let contract_id = self.shared.next_id("");
        let contract = {
            let mut st = self.shared.state();
            let book = &mut st.papay;
            if book
                .contracts
                .values()
                .any(|c| c.state == "SIGNED" && c.plan_id == plan_id && c.openid == openid)
            {
                return Err(anyhow!(
                    "the payer holds an active contract of plan {plan_id}"
                ));
            }
            book.presigns.remove(out_contract_code);
            let c = PapayContract {
                contract_id: contract_id.clone(),
                out_contract_code: out_contract_code.into(),
                plan_id,
                openid: openid.into(),
                display_name: pre.display_name,
                state: "SIGNED",
                signed_time: stamp(),
                terminated_time: None,
                termination_mode: None,
                termination_note: None,
                notify_url: pre.notify_url,
            };
            book.contracts.insert(contract_id.clone(), c.clone());
            c
        };
        self.send_contract(&contract, NotifyForgery::None).await?;
        Ok(contract_id)
    }

    /// The payer ends the contract in WeChat: `TERMINATED` (mode `USER`)
    /// and notified.
    pub async fn terminate_contract_by_payer(&self, contract_id: &str) -> anyhow::Result<()> {
        let contract = {
            let mut st = self.shared.state();
            let c = st
                .papay
                .contracts
                .get_mut(contract_id)
                .ok_or_else(|| anyhow!("no contract {contract_id}"))?;
            if c.state != "SIGNED" {
                return Err(anyhow!("contract {contract_id} is {}", c.state));
            }
            c.state = "TERMINATED";
            c.terminated_time = Some(stamp());
            c.termination_mode = Some("USER");
            c.termination_note = Some("用户解约".into());
            c.clone()
        };
        self.send_contract(&contract, NotifyForgery::None).await?;
        Ok(())
    }

    /// Sends the contract's notification again, as it stands, possibly
    /// forged; answers the receiver's status and body.
    pub async fn notify_contract(
        &self,
        contract_id: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let c = self
            .papay_contract(contract_id)
            .ok_or_else(|| anyhow!("no contract {contract_id}"))?;
        self.send_contract(&c, forgery).await
    }

    async fn send_contract(
        &self,
        c: &PapayContract,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let event = if c.state == "SIGNED" {
            "ENTRUST.SIGN"
        } else {
            "ENTRUST.TERMINATE"
        };
        let resource = self.shared.contract_json(c);
        self.send(&c.notify_url, event, "entrust", &resource, forgery)
            .await
    }

    /// Sends the deduction's result notification to its `notify_url`.
    pub async fn notify_deduction(
        &self,
        out_trade_no: &str,
        forgery: NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let (d, openid) = {
            let st = self.shared.state();
            let d = st
                .papay
                .deductions
                .get(out_trade_no)
                .cloned()
                .ok_or_else(|| anyhow!("no deduction {out_trade_no}"))?;
            let openid = st
                .papay
                .contracts
                .get(&d.contract_id)
                .map(|c| c.openid.clone())
                .unwrap_or_default();
            (d, openid)
        };
        let event = if d.trade_state == "SUCCESS" {
            "TRANSACTION.SUCCESS"
        } else {
            "TRANSACTION.FAIL"
        };
        let resource = self.shared.deduction_json(&d, &openid);
        self.send(&d.notify_url, event, "transaction", &resource, forgery)
            .await
    }
}
