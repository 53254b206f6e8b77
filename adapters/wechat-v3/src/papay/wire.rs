//! WeChat Pay Global papay messages and paths, named as WeChat Pay names
//! them (providers.md §13.1, §13.2.6, §13.3.4, §13.4, §13.5; the field
//! lists of the OpenAPI set [S13-13]).

use payhost_sdk::prelude::*;
use serde::Deserialize;

use crate::wire::Ids;

/// §13.1: the pages' headers and the OpenAPI set say `/v3/global/papay`;
/// the pages' own request examples say `/v3/papay/hk`.
pub const DEFAULT_PREFIX: &str = "/v3/global/papay";
pub const PREFIXES: [&str; 2] = [DEFAULT_PREFIX, "/v3/papay/hk"];

/// WeChat's signing mini-program and page (§13.2.1), which the overseas
/// pre-sign is assumed to open as the domestic one does (§13.2.6 leaves
/// step 2 `UNKNOWN`).
pub const DEFAULT_SIGNING_APP_ID: &str = "wxbd687630cd02ce1d";
pub const DEFAULT_SIGNING_PATH: &str = "pages/index/index";
/// The `extraData` key that carries the pre-sign's `session_id`
/// (`UNKNOWN`; the domestic v3 pre-sign passes its id under its own name).
pub const DEFAULT_SESSION_PARAM: &str = "session_id";

/// §13.6.3: the overseas event names were not read; these are the
/// domestic v3 contract events, assumed until WeChat's pages say otherwise.
pub const DEFAULT_CONTRACT_EVENTS: &str = "ENTRUST.SIGN,ENTRUST.TERMINATE";

/// The one `trade_type` of a papay deduction (§13.3.4), which tells it
/// from an ordinary payment on the shared `TRANSACTION.*` events.
pub const TRADE_TYPE: &str = "AUTH";

pub fn pre_sign(prefix: &str) -> String {
    format!("{prefix}/contracts/miniprogram-pre-entrust-sign")
}

pub fn contract_by_id(prefix: &str, contract_id: &str, query: &str) -> String {
    format!("{prefix}/contracts/{contract_id}?{query}")
}

pub fn contract_by_code(prefix: &str, code: &str, query: &str) -> String {
    format!("{prefix}/contracts/out-contract-code/{code}?{query}")
}

pub fn terminate(prefix: &str, contract_id: &str) -> String {
    format!("{prefix}/contracts/{contract_id}/terminate")
}

pub fn transactions(prefix: &str) -> String {
    format!("{prefix}/transactions")
}

pub fn transaction_by_out_trade_no(prefix: &str, no: &str, query: &str) -> String {
    format!("{prefix}/transactions/out-trade-no/{no}?{query}")
}

/// The merchant's ids as the papay bodies carry them: `appid` for a
/// direct merchant; `sp_appid`, `sub_mchid` (+ `sub_appid`) for an
/// institution, with `sp_mchid` where the schema lists it (the pre-sign,
/// the contract queries) and not where it does not (terminate, deduct).
pub fn ids(ids: &Ids, with_sp_mchid: bool) -> json::Value {
    match ids.sub_mchid {
        None => json::json!({"appid": ids.appid}),
        Some(sub) => {
            let mut v = json::json!({"sp_appid": ids.appid, "sub_mchid": sub});
            if with_sp_mchid {
                v["sp_mchid"] = ids.mchid.into();
            }
            if let Some(app) = ids.sub_appid {
                v["sub_appid"] = app.into();
            }
            v
        }
    }
}

/// The same ids as a query string, for the contract queries.
pub fn ids_query(ids: &Ids, plan_id: u64) -> String {
    let mut q = match ids.sub_mchid {
        None => format!("appid={}", ids.appid),
        Some(sub) => format!(
            "sp_appid={}&sp_mchid={}&sub_mchid={sub}",
            ids.appid, ids.mchid
        ),
    };
    if let Some(app) = ids.sub_appid {
        q.push_str(&format!("&sub_appid={app}"));
    }
    q.push_str(&format!("&plan_id={plan_id}"));
    q
}

#[derive(Debug, Deserialize)]
pub struct PreSignAnswer {
    pub session_id: String,
}

/// §13.4: a contract as the queries answer it (and, assumed, as the
/// contract notification's resource carries it).
#[derive(Debug, Deserialize)]
pub struct Contract {
    pub mchid: Option<String>,
    pub sp_mchid: Option<String>,
    pub sub_mchid: Option<String>,
    pub contract_id: String,
    pub out_contract_code: String,
    pub plan_id: Option<u64>,
    pub state: String,
    pub signed_time: Option<String>,
    pub terminated_time: Option<String>,
    pub termination_mode: Option<String>,
    pub openid: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Amount {
    pub total: u64,
    pub currency: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Payer {
    pub openid: Option<String>,
    pub sp_openid: Option<String>,
    pub sub_openid: Option<String>,
}

/// §13.3.4: the deduction order the deduct call, its query and its
/// notification carry.
#[derive(Debug, Deserialize)]
pub struct Deduction {
    pub mchid: Option<String>,
    pub sp_mchid: Option<String>,
    pub sub_mchid: Option<String>,
    pub out_trade_no: String,
    pub transaction_id: Option<String>,
    pub trade_type: Option<String>,
    pub trade_state: String,
    pub trade_state_desc: Option<String>,
    pub success_time: Option<String>,
    pub amount: Option<Amount>,
    #[serde(default)]
    pub payer: Payer,
    /// Not in the published answer; taken when WeChat sends it.
    pub contract_id: Option<String>,
}

/// §13.4 / §13.9 contract `state`: only `SIGNED` is published; a
/// terminated contract is recognised by its word or its termination time.
pub fn contract_state(c: &Contract) -> Option<ContractState> {
    Some(match c.state.as_str() {
        "SIGNED" => ContractState::Active,
        "TERMINATED" | "UNSIGNED" => ContractState::Terminated(termination(c)),
        _ if c.terminated_time.is_some() => ContractState::Terminated(termination(c)),
        _ => return None,
    })
}

/// `termination_mode` in words (only `USER` is published).
pub fn termination(c: &Contract) -> String {
    match c.termination_mode.as_deref() {
        Some("USER") => "terminated by the payer".into(),
        Some("MERCHANT") => "terminated by the merchant".into(),
        Some(other) => format!("termination_mode {other}"),
        None => c.state.clone(),
    }
}

/// §13.9 overseas `trade_state` in the contract's terms.
pub fn deduction_state(word: &str, desc: Option<&str>) -> Option<DeductionState> {
    Some(match word {
        // REFUND: charged, then (part) refunded.
        "SUCCESS" | "REFUND" => DeductionState::Succeeded,
        "NOTPAY" | "USERPAYING" => DeductionState::Pending,
        "CLOSED" | "PAYERROR" | "REVOKED" => {
            DeductionState::Failed(desc.filter(|d| !d.is_empty()).unwrap_or(word).to_string())
        }
        _ => return None,
    })
}
