//! WeChat Pay's domestic v2 papay family (委托代扣, providers.md §13), direct
//! merchants: `/papay/querycontract`, `/papay/deletecontract`,
//! `/pay/pappayapply` and `/pay/paporderquery`, checked like the other v2
//! calls (common fields, `mch_id` / `appid`, signature) plus:
//!
//! - `querycontract` and `deletecontract` take no `nonce_str` and answer
//!   none (§13.4, §13.5, §13.7); both need `version=1.0`.
//! - `deletecontract` answers its protocol refusals as WeChat prints them,
//!   with spaces (`SIGN_ERROR`, `PARAMETER FAIL`, `MERCHANT PERMISSION
//!   ERROR`, §13.10).
//! - `pappayapply` only accepts (`ACCEPT`); the charge happens when the test
//!   settles it ([`Simulator::settle_deduction`]). The template's limits
//!   ([`PapayLimits`]) are refused with `RULELIMIT`, the code §13.8 and
//!   §13.10 give for "amount or count over the limit".
//!
//! Signing happens on WeChat's signing mini-program, never through the
//! merchant's server, so the payer's side is a test hook:
//! [`Simulator::sign_contract`] (or [`Simulator::sign_contract_from_extra_data`],
//! which checks the adapter's signed `extraData` first). Contract and
//! deduction notifications go through the outbox, so the notification faults
//! and [`SimConfig::tamper_notifications`] apply to them.
//!
//! Not simulated: partner paths, the 07:00–22:00 call window, the pre-debit
//! notice mode, the 24-hour delay (the test settles when it likes),
//! `contract_expired_time`, per-user attempt caps and rate limits.

use super::*;

pub(super) const QUERY_CONTRACT: &str = "/papay/querycontract";
pub(super) const DELETE_CONTRACT: &str = "/papay/deletecontract";
pub(super) const PAP_PAY_APPLY: &str = "/pay/pappayapply";
pub(super) const PAP_ORDER_QUERY: &str = "/pay/paporderquery";

/// The refusal code of every template limit: §13.8 "exceeding quota:
/// `RULELIMIT`" (WeChat's FAQ [S13-6]), also in `pappayapply`'s list (§13.10).
pub const RULELIMIT: &str = "RULELIMIT";

/// The papay template the merchant's contracts are signed under: its
/// limits (§13.8, all template-specific, so configurable) and where it
/// notifies terminations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PapayLimits {
    /// Most fen one deduction may take. Default 50,000 (500 CNY), the
    /// initial per-deduction quota (§13.8).
    pub max_per_deduction: u64,
    /// Most fen a contract may take per China day. Default 250,000
    /// (2,500 CNY, §13.8).
    pub max_amount_per_day: u64,
    /// Deductions per contract per China day. Default 1: "1 successful
    /// deduction per contract per day (failures not counted)" of
    /// auto-renewal templates (§13.8); pay-later templates allow 5. Failed
    /// ones do not count; accepted ones still pending do, as they may yet
    /// succeed.
    pub max_deductions_per_day: u32,
    /// The URL set on the template, where terminations are notified
    /// (§13.5, §13.6.1). `None`: the `notify_url` the signing carried, which
    /// is the same URL for a merchant that has one (as payhost has).
    pub template_notify_url: Option<String>,
}

impl Default for PapayLimits {
    fn default() -> Self {
        PapayLimits {
            max_per_deduction: 50_000,
            max_amount_per_day: 250_000,
            max_deductions_per_day: 1,
            template_notify_url: None,
        }
    }
}

/// A contract as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractTruth {
    pub contract_code: String,
    pub plan_id: String,
    pub openid: String,
    /// `contract_state`: `0` signed, `1` terminated.
    pub contract_state: String,
    /// `contract_termination_mode` once terminated: `2` by the payer, `3`
    /// by the merchant's API call.
    pub termination_mode: Option<String>,
}

/// A deduction as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeductionTruth {
    pub contract_id: String,
    pub total_fee: u64,
    /// `ACCEPT`, `SUCCESS` or `PAYERROR`.
    pub trade_state: String,
    pub transaction_id: Option<String>,
}

/// Every contract (by `contract_id`) and deduction (by `out_trade_no`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PapayTruth {
    pub contracts: BTreeMap<String, ContractTruth>,
    pub deductions: BTreeMap<String, DeductionTruth>,
}

#[derive(Default)]
pub(super) struct PapayBook {
    /// By `contract_id`; ids grow, so the last match is the newest.
    contracts: BTreeMap<String, Contract>,
    deductions: BTreeMap<String, Deduction>,
}

struct Contract {
    contract_code: String,
    plan_id: String,
    openid: String,
    notify_url: String,
    display_account: Option<String>,
    request_serial: Option<String>,
    signed_at: i64,
    terminated: Option<Termination>,
}

struct Termination {
    at: i64,
    /// `contract_termination_mode` (§13.9).
    mode: &'static str,
    remark: String,
}

struct Deduction {
    /// What a repeat must carry (all but nonce and signature).
    params: Fields,
    contract_id: String,
    total_fee: u64,
    fee_type: String,
    notify_url: String,
    /// The China date it was accepted on (`yyyyMMdd`): the day it counts for.
    day: String,
    state: &'static str,
    transaction_id: Option<String>,
    time_end: Option<String>,
    /// `(err_code, err_code_des)` of a failed one.
    failure: Option<Refusal>,
}

/// Whether the endpoint takes (and answers) no `nonce_str` (§13.7).
pub(super) fn nonceless(path: &str) -> bool {
    matches!(path, QUERY_CONTRACT | DELETE_CONTRACT)
}

/// `deletecontract` prints its protocol refusals in its own words
/// (§13.10); the other endpoints use the common v2 codes.
pub(super) fn as_printed(path: &str, (code, des): Refusal) -> Refusal {
    if path != DELETE_CONTRACT {
        return (code, des);
    }
    let printed = match code.as_str() {
        "SIGNERROR" => "SIGN_ERROR",
        "LACK_PARAMS" | "PARAM_ERROR" => "PARAMETER FAIL",
        "MCHID_NOT_EXIST" | "APPID_MCHID_NOT_MATCH" => "MERCHANT PERMISSION ERROR",
        _ => return (code, des),
    };
    (printed.to_string(), des)
}

/// `yyyy-MM-dd HH:mm:ss`, China time: papay's contract times (§13.4).
fn china_dashed(unix: i64) -> String {
    let c = china_compact(unix);
    format!(
        "{}-{}-{} {}:{}:{}",
        &c[0..4],
        &c[4..6],
        &c[6..8],
        &c[8..10],
        &c[10..12],
        &c[12..14]
    )
}

fn china_day(unix: i64) -> String {
    china_compact(unix)[0..8].to_string()
}

fn put(f: &mut Fields, name: &str, value: &str) {
    f.insert(name.to_string(), value.to_string());
}

/// Contract calls carry `version=1.0` (§13.4, §13.5).
fn check_version(f: &Fields) -> Result<(), Refusal> {
    match need(f, "version")? {
        "1.0" => Ok(()),
        other => refuse("PARAM_ERROR", format!("version `{other}` is not 1.0")),
    }
}

fn not_exist<T>() -> Result<T, Refusal> {
    refuse(
        "CONTRACT_NOT_EXIST",
        "签约协议不存在 (no such signed contract)",
    )
}

/// `contract_code`, `plan_id` of a signing: the limits §13.2 states.
fn check_signing(contract_code: &str, plan_id: &str, openid: &str) -> anyhow::Result<()> {
    if contract_code.is_empty() || contract_code.len() > 32 {
        bail!("contract_code must be 1-32 characters");
    }
    if plan_id.is_empty() || !plan_id.bytes().all(|b| b.is_ascii_digit()) {
        bail!("plan_id `{plan_id}` is not a template id (digits)");
    }
    if openid.is_empty() {
        bail!("openid is empty");
    }
    Ok(())
}

fn check_notify_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://")) && !url.contains('?')
}

impl Shared {
    /// The contract a call names: by `contract_id`, else by `plan_id` +
    /// `contract_code` (the newest, as a code may be reused after
    /// termination, §13.2).
    fn find_contract<'b>(
        book: &'b Book,
        f: &Fields,
    ) -> Result<(&'b String, &'b Contract), Refusal> {
        let found = match get(f, "contract_id") {
            Some(id) => book.papay.contracts.get_key_value(id),
            None => {
                let (plan, code) = match (get(f, "plan_id"), get(f, "contract_code")) {
                    (Some(p), Some(c)) => (p, c),
                    _ => {
                        return refuse(
                            "LACK_PARAMS",
                            "缺少参数 contract_id 或 plan_id+contract_code",
                        );
                    }
                };
                book.papay
                    .contracts
                    .iter()
                    .rev()
                    .find(|(_, c)| c.plan_id == plan && c.contract_code == code)
            }
        };
        found.map_or_else(not_exist, Ok)
    }

    /// `/papay/querycontract` (§13.4): a contract never signed is
    /// `CONTRACT_NOT_EXIST`; a terminated one `contract_state=1`.
    pub(super) fn query_contract(&self, book: &mut Book, f: &Fields) -> Result<Fields, Refusal> {
        check_version(f)?;
        let (id, c) = Self::find_contract(book, f)?;
        let mut r = Fields::new();
        put(&mut r, "contract_id", id);
        put(&mut r, "plan_id", &c.plan_id);
        put(&mut r, "contract_code", &c.contract_code);
        put(&mut r, "openid", &c.openid);
        put(&mut r, "contract_signed_time", &china_dashed(c.signed_at));
        if let Some(v) = &c.display_account {
            put(&mut r, "contract_display_account", v);
        }
        if let Some(v) = &c.request_serial {
            put(&mut r, "request_serial", v);
        }
        match &c.terminated {
            None => put(&mut r, "contract_state", "0"),
            Some(t) => {
                put(&mut r, "contract_state", "1");
                put(&mut r, "contract_terminated_time", &china_dashed(t.at));
                put(&mut r, "contract_termination_mode", t.mode);
                put(&mut r, "contract_termination_remark", &t.remark);
            }
        }
        Ok(r)
    }

    /// `/papay/deletecontract` (§13.5): ends the contract at once and
    /// notifies the template's URL. A contract already terminated is
    /// refused `CONTRACT_NOT_EXIST`: providers.md does not document a
    /// second termination, and that is the code WeChat uses for a contract
    /// that is no longer signed (§13.6.2 "user terminated", §13.10).
    pub(super) fn delete_contract(&self, book: &mut Book, f: &Fields) -> Result<Fields, Refusal> {
        check_version(f)?;
        let remark = need(f, "contract_termination_remark")?;
        if remark.chars().count() > 512 {
            return refuse(
                "PARAM_ERROR",
                "contract_termination_remark longer than 512 characters",
            );
        }
        let (id, c) = Self::find_contract(book, f)?;
        if c.terminated.is_some() {
            return refuse("CONTRACT_NOT_EXIST", "签约协议已解约 (already terminated)");
        }
        let id = id.clone();
        let mut r = Fields::new();
        put(&mut r, "contract_id", &id);
        put(&mut r, "plan_id", &c.plan_id);
        put(&mut r, "contract_code", &c.contract_code);
        if let Err(e) = self.terminate(book, &id, "3", remark) {
            // Only a full outbox gets here; the contract is terminated anyway.
            tracing::warn!("termination notification of {id}: {e}");
        }
        Ok(r)
    }

    /// `/pay/pappayapply` (§13.3.1): accepted, not charged.
    pub(super) fn pap_pay_apply(&self, book: &mut Book, f: &Fields) -> Result<Fields, Refusal> {
        for name in [
            "body",
            "out_trade_no",
            "total_fee",
            "spbill_create_ip",
            "notify_url",
            "trade_type",
            "contract_id",
        ] {
            need(f, name)?;
        }
        if f["trade_type"] != "PAP" {
            return refuse("PARAM_ERROR", "trade_type of a deduction is PAP");
        }
        // ≤ 32, unique per mch_id (§13.3.1); the characters as §1.2.
        let out_trade_no = &f["out_trade_no"];
        if out_trade_no.len() > 32
            || !out_trade_no
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b))
        {
            return refuse(
                "PARAM_ERROR",
                "out_trade_no must be up to 32 letters, digits or _-|*",
            );
        }
        let total_fee = fee(f, "total_fee")?;
        let fee_type = self.fee_type(f)?.to_string();
        if f["body"].chars().count() > 127 {
            return refuse("PARAM_ERROR", "body longer than 127 characters");
        }
        if f["spbill_create_ip"].parse::<std::net::IpAddr>().is_err() {
            return refuse("PARAM_ERROR", "spbill_create_ip is not an IP address");
        }
        if !check_notify_url(&f["notify_url"]) {
            return refuse(
                "PARAM_ERROR",
                "notify_url must be an absolute URL without query string",
            );
        }
        let params: Fields = f
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "nonce_str" | "sign" | "sign_type"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // A number deducts at most once (§13.3.1).
        if let Some(d) = book.papay.deductions.get(out_trade_no) {
            return match d.state {
                _ if d.params != params => refuse(
                    "OUT_TRADE_NO_USED",
                    "商户订单号重复 (used with other parameters)",
                ),
                // "already accepted, do not repeat": query instead (§13.3.1).
                "ACCEPT" => refuse("ORDER_ACCEPTED", "订单已受理，请勿重复提交"),
                "SUCCESS" => refuse("ORDERPAID", "该订单已支付"),
                // WeChat wants a new number after a failure (§13.3.1).
                _ => refuse("OUT_TRADE_NO_USED", "该订单已失败，请使用新的商户订单号"),
            };
        }
        if book.orders.contains_key(out_trade_no) {
            return refuse(
                "OUT_TRADE_NO_USED",
                "商户订单号重复 (an order already has it)",
            );
        }
        let contract_id = f["contract_id"].clone();
        match book.papay.contracts.get(&contract_id) {
            Some(c) if c.terminated.is_none() => {}
            _ => return not_exist(),
        }
        let limits = &self.config.papay;
        if total_fee > limits.max_per_deduction {
            return refuse(
                RULELIMIT,
                format!(
                    "超过单笔扣款限额 (over {} fen per deduction)",
                    limits.max_per_deduction
                ),
            );
        }
        let day = china_day(now());
        let (count, amount) = book
            .papay
            .deductions
            .values()
            .filter(|d| d.contract_id == contract_id && d.day == day && d.state != "PAYERROR")
            .fold((0u32, 0u64), |(n, sum), d| (n + 1, sum + d.total_fee));
        if count >= limits.max_deductions_per_day {
            return refuse(
                RULELIMIT,
                format!(
                    "超过当日扣款次数限制 ({} per contract per day)",
                    limits.max_deductions_per_day
                ),
            );
        }
        if amount + total_fee > limits.max_amount_per_day {
            return refuse(
                RULELIMIT,
                format!(
                    "超过当日扣款限额 (over {} fen per contract per day)",
                    limits.max_amount_per_day
                ),
            );
        }
        book.papay.deductions.insert(
            out_trade_no.clone(),
            Deduction {
                notify_url: f["notify_url"].clone(),
                params,
                contract_id,
                total_fee,
                fee_type,
                day,
                state: "ACCEPT",
                transaction_id: None,
                time_end: None,
                failure: None,
            },
        );
        Ok(Fields::new())
    }

    /// `/pay/paporderquery` (§13.4) by `transaction_id` (first) or
    /// `out_trade_no`.
    pub(super) fn pap_order_query(&self, book: &mut Book, f: &Fields) -> Result<Fields, Refusal> {
        let found = match (get(f, "transaction_id"), get(f, "out_trade_no")) {
            (Some(tx), _) => book
                .papay
                .deductions
                .iter()
                .find(|(_, d)| d.transaction_id.as_deref() == Some(tx)),
            (None, Some(no)) => book.papay.deductions.get_key_value(no),
            (None, None) => {
                return refuse("LACK_PARAMS", "缺少参数 transaction_id 或 out_trade_no");
            }
        };
        let Some((no, d)) = found else {
            return refuse("ORDERNOTEXIST", "此交易订单号不存在");
        };
        let mut r = Fields::new();
        put(&mut r, "out_trade_no", no);
        put(&mut r, "trade_type", "PAP");
        put(&mut r, "trade_state", d.state);
        let desc = match (d.state, &d.failure) {
            ("SUCCESS", _) => "支付成功",
            (_, Some((_, des))) => des,
            _ => "订单已受理，等待扣款",
        };
        put(&mut r, "trade_state_desc", desc);
        put(&mut r, "contract_id", &d.contract_id);
        put(&mut r, "total_fee", &d.total_fee.to_string());
        put(&mut r, "fee_type", &d.fee_type);
        if let Some(c) = book.papay.contracts.get(&d.contract_id) {
            put(&mut r, "openid", &c.openid);
        }
        if let Some(v) = get(&d.params, "attach") {
            put(&mut r, "attach", v);
        }
        if let (Some(tx), Some(end)) = (&d.transaction_id, &d.time_end) {
            put(&mut r, "transaction_id", tx);
            put(&mut r, "time_end", end);
            put(&mut r, "bank_type", "OTHERS");
            for (k, v) in self.cash(d.total_fee, &d.fee_type, ["cash_fee", "cash_fee_type"]) {
                r.insert(k, v);
            }
        }
        Ok(r)
    }

    // ---------------------------------------------------------------- contract changes

    /// Records a signed contract and queues its ADD notification.
    fn record_signing(&self, book: &mut Book, mut contract: Contract) -> anyhow::Result<String> {
        check_signing(&contract.contract_code, &contract.plan_id, &contract.openid)?;
        if !check_notify_url(&contract.notify_url) {
            bail!("notify_url must be an absolute http(s) URL without query string");
        }
        let active = |c: &&Contract| c.terminated.is_none();
        let contracts = book.papay.contracts.values();
        if contracts
            .clone()
            .filter(active)
            .any(|c| c.contract_code == contract.contract_code)
        {
            bail!(
                "contract_code `{}` is already signed and active",
                contract.contract_code
            );
        }
        // One active contract per mch_id + plan_id + payer (§13.8).
        if contracts
            .filter(active)
            .any(|c| c.plan_id == contract.plan_id && c.openid == contract.openid)
        {
            bail!(
                "the payer already has an active contract on plan {}",
                contract.plan_id
            );
        }
        let n = book.next();
        let id = format!("Wx154635112520{n:014}");
        contract.signed_at = now();
        let body = self.contract_notification(&id, &contract, "ADD");
        let url = contract.notify_url.clone();
        book.papay.contracts.insert(id.clone(), contract);
        self.enqueue_signed(url, body)?;
        Ok(id)
    }

    /// Terminates an active contract (`mode` as §13.9) and queues its
    /// DELETE notification to the template's URL.
    fn terminate(
        &self,
        book: &mut Book,
        contract_id: &str,
        mode: &'static str,
        remark: &str,
    ) -> anyhow::Result<()> {
        let Some(c) = book.papay.contracts.get_mut(contract_id) else {
            bail!("no contract `{contract_id}`")
        };
        if c.terminated.is_some() {
            bail!("contract `{contract_id}` is already terminated");
        }
        c.terminated = Some(Termination {
            at: now(),
            mode,
            remark: remark.to_string(),
        });
        let c = &book.papay.contracts[contract_id];
        let body = self.contract_notification(contract_id, c, "DELETE");
        let url = self
            .config
            .papay
            .template_notify_url
            .clone()
            .unwrap_or_else(|| c.notify_url.clone());
        self.enqueue_signed(url, body)
    }

    /// §13.6.1 as WeChat's sample has it, signed MD5 (the mini-program
    /// signing entry's algorithm) without `sign_type` or `nonce_str`.
    fn contract_notification(&self, id: &str, c: &Contract, change_type: &str) -> String {
        let mut f = Fields::new();
        put(&mut f, "return_code", "SUCCESS");
        put(&mut f, "result_code", "SUCCESS");
        put(&mut f, "mch_id", &self.config.mch_id);
        put(&mut f, "contract_code", &c.contract_code);
        put(&mut f, "openid", &c.openid);
        put(&mut f, "plan_id", &c.plan_id);
        put(&mut f, "change_type", change_type);
        put(&mut f, "contract_id", id);
        let at = match &c.terminated {
            Some(t) if change_type == "DELETE" => {
                put(&mut f, "contract_termination_mode", t.mode);
                t.at
            }
            _ => c.signed_at,
        };
        put(&mut f, "operate_time", &china_dashed(at));
        self.signed_xml(f, SignType::Md5)
    }

    /// Charges (or fails) an accepted deduction and queues its §13.6.2
    /// notification.
    fn settle_deduction(
        &self,
        book: &mut Book,
        out_trade_no: &str,
        success: bool,
    ) -> anyhow::Result<()> {
        let n = book.next();
        let nonce = Self::nonce(book);
        let Some(d) = book.papay.deductions.get(out_trade_no) else {
            bail!("no deduction `{out_trade_no}`")
        };
        let wanted = if success { "SUCCESS" } else { "PAYERROR" };
        if d.state == wanted {
            return Ok(());
        }
        if d.state != "ACCEPT" {
            bail!("deduction `{out_trade_no}` is already {}", d.state);
        }
        // A contract the payer ended meanwhile cannot be charged (§13.6.2).
        let contract = book.papay.contracts.get(&d.contract_id);
        let failure = match contract {
            Some(c) if c.terminated.is_none() => (!success).then(|| {
                (
                    "NOTENOUGH".to_string(),
                    "用户账户余额不足 (insufficient balance)".to_string(),
                )
            }),
            _ => Some((
                "CONTRACT_NOT_EXIST".to_string(),
                "签约协议已解约 (contract terminated)".to_string(),
            )),
        };
        let openid = contract.map(|c| c.openid.clone()).unwrap_or_default();
        let d = book
            .papay
            .deductions
            .get_mut(out_trade_no)
            .expect("found above");
        match &failure {
            None => {
                d.state = "SUCCESS";
                d.transaction_id = Some(format!("4200{n:024}"));
                d.time_end = Some(china_compact(now()));
            }
            Some(_) => d.state = "PAYERROR",
        }
        d.failure = failure.clone();
        let mut f = Fields::new();
        put(&mut f, "return_code", "SUCCESS");
        put(&mut f, "appid", &self.config.appid);
        put(&mut f, "mch_id", &self.config.mch_id);
        put(&mut f, "nonce_str", &nonce);
        put(&mut f, "out_trade_no", out_trade_no);
        put(&mut f, "contract_id", &d.contract_id);
        put(&mut f, "trade_type", "PAP");
        put(&mut f, "trade_state", d.state);
        put(&mut f, "openid", &openid);
        put(&mut f, "total_fee", &d.total_fee.to_string());
        put(&mut f, "fee_type", &d.fee_type);
        if let Some(v) = get(&d.params, "attach") {
            put(&mut f, "attach", v);
        }
        match &failure {
            None => {
                put(&mut f, "result_code", "SUCCESS");
                put(&mut f, "is_subscribe", "N");
                put(&mut f, "bank_type", "OTHERS");
                put(
                    &mut f,
                    "transaction_id",
                    d.transaction_id.as_deref().unwrap_or_default(),
                );
                put(
                    &mut f,
                    "time_end",
                    d.time_end.as_deref().unwrap_or_default(),
                );
                for (k, v) in self.cash(d.total_fee, &d.fee_type, ["cash_fee", "cash_fee_type"]) {
                    f.insert(k, v);
                }
            }
            // The guide's failure form, not the malformed official sample
            // (§13.6.2).
            Some((code, des)) => {
                put(&mut f, "result_code", "FAIL");
                put(&mut f, "err_code", code);
                put(&mut f, "err_code_des", des);
            }
        }
        if self.config.sign_type == SignType::HmacSha256 {
            put(&mut f, "sign_type", "HMAC-SHA256");
        }
        let url = d.notify_url.clone();
        let body = self.signed_xml(f, self.config.sign_type);
        self.enqueue_signed(url, body)
    }
}

// ---------------------------------------------------------------- test hooks

impl Simulator {
    /// The payer signs `contract_code` on plan `plan_id` in WeChat's signing
    /// mini-program; WeChat notifies the ADD to `notify_url` (the signing's
    /// `extraData.notify_url`: signing calls no merchant API, so the test
    /// says where). Returns the new `contract_id`.
    pub fn sign_contract(
        &self,
        contract_code: &str,
        plan_id: &str,
        openid: &str,
        notify_url: &str,
    ) -> anyhow::Result<String> {
        let mut book = self.shared.book();
        self.shared.record_signing(
            &mut book,
            Contract {
                contract_code: contract_code.into(),
                plan_id: plan_id.into(),
                openid: openid.into(),
                notify_url: notify_url.into(),
                display_account: None,
                request_serial: None,
                signed_at: 0,
                terminated: None,
            },
        )
    }

    /// [`Self::sign_contract`] from the adapter's `extraData`, checked as
    /// the signing page checks it: this merchant's `appid` / `mch_id`, the
    /// common signing fields (§13.2), no 4-byte characters, and the MD5
    /// signature without `nonce_str` (§13.7).
    pub fn sign_contract_from_extra_data(
        &self,
        extra_data: &[(String, String)],
        openid: &str,
    ) -> anyhow::Result<String> {
        let f: Fields = extra_data.iter().cloned().collect();
        let field = |name: &str| {
            get(&f, name).ok_or_else(|| anyhow!("extraData lacks `{name}` (商户系统错误)"))
        };
        for name in [
            "appid",
            "mch_id",
            "contract_code",
            "contract_display_account",
            "notify_url",
            "plan_id",
            "request_serial",
            "timestamp",
            "sign",
        ] {
            field(name)?;
        }
        if f["appid"] != self.shared.config.appid || f["mch_id"] != self.shared.config.mch_id {
            bail!("extraData names another merchant (plan_id not of this mch_id)");
        }
        if f["sign"] != self.shared.sign(&f, SignType::Md5) {
            bail!("extraData signature does not verify (签名错误)");
        }
        let serial = &f["request_serial"];
        if !serial.bytes().all(|b| b.is_ascii_digit()) || serial.starts_with('0') {
            bail!("request_serial must be digits not starting with 0");
        }
        let ts = &f["timestamp"];
        if ts.len() < 9 || !ts.bytes().all(|b| b.is_ascii_digit()) {
            bail!("timestamp must be Unix seconds");
        }
        if f.values().any(|v| v.chars().any(|c| c.len_utf8() > 3)) {
            bail!("extraData holds a 4-byte UTF-8 character");
        }
        let mut book = self.shared.book();
        self.shared.record_signing(
            &mut book,
            Contract {
                contract_code: f["contract_code"].clone(),
                plan_id: f["plan_id"].clone(),
                openid: openid.into(),
                notify_url: f["notify_url"].clone(),
                display_account: Some(f["contract_display_account"].clone()),
                request_serial: Some(serial.clone()),
                signed_at: 0,
                terminated: None,
            },
        )
    }

    /// The payer ends the contract in WeChat (`contract_termination_mode`
    /// 2); its DELETE notification goes to the template's URL.
    pub fn terminate_contract_by_payer(&self, contract_id: &str) -> anyhow::Result<()> {
        let mut book = self.shared.book();
        self.shared.terminate(&mut book, contract_id, "2", "")
    }

    /// WeChat carries out an accepted deduction: `SUCCESS` (charged), or
    /// `PAYERROR` (`NOTENOUGH`); `PAYERROR` (`CONTRACT_NOT_EXIST`) whatever
    /// asked when the contract was terminated meanwhile. Queues its
    /// notification to the `pappayapply`'s `notify_url`. Settling again the
    /// same way changes nothing; the other way is refused.
    pub fn settle_deduction(&self, out_trade_no: &str, success: bool) -> anyhow::Result<()> {
        let mut book = self.shared.book();
        self.shared
            .settle_deduction(&mut book, out_trade_no, success)
    }

    /// Every contract and deduction as the simulator holds them.
    pub fn papay_truth(&self) -> PapayTruth {
        let book = self.shared.book();
        let contracts = book
            .papay
            .contracts
            .iter()
            .map(|(id, c)| {
                (
                    id.clone(),
                    ContractTruth {
                        contract_code: c.contract_code.clone(),
                        plan_id: c.plan_id.clone(),
                        openid: c.openid.clone(),
                        contract_state: if c.terminated.is_some() { "1" } else { "0" }.into(),
                        termination_mode: c.terminated.as_ref().map(|t| t.mode.to_string()),
                    },
                )
            })
            .collect();
        let deductions = book
            .papay
            .deductions
            .iter()
            .map(|(no, d)| {
                (
                    no.clone(),
                    DeductionTruth {
                        contract_id: d.contract_id.clone(),
                        total_fee: d.total_fee,
                        trade_state: d.state.to_string(),
                        transaction_id: d.transaction_id.clone(),
                    },
                )
            })
            .collect();
        PapayTruth {
            contracts,
            deductions,
        }
    }
}
