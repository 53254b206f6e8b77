//! The merchant transfer, user-confirmation mode (providers.md §12.4):
//! `POST /v3/fund-app/mch-transfer/transfer-bills` and the query by
//! `out_bill_no`, for a direct merchant.
//!
//! Checked as WeChat checks them: the AppID bound to the merchant, the
//! bill number (≤ 32 letters and digits), a scene with its report items,
//! the remark (≤ 32 characters), the amount limits (at least 0.1 CNY; from
//! 2,000 CNY the payee's `user_name` is required), and a `user_name`
//! encrypted with RSA-OAEP-SHA1 for the key that `Wechatpay-Serial` names
//! (decrypted with the platform key; another serial or a ciphertext that
//! does not decrypt is `PARAM_ERROR`). The same `out_bill_no` answers the
//! same bill; with other parameters it is refused.
//!
//! A bill waits in `WAIT_USER_CONFIRM` until [`Simulator::confirm_transfer`]
//! (the payee taps "confirm receipt") or [`Simulator::fail_transfer`] (the
//! 24-hour expiry, a refused account); [`Simulator::notify_transfer`] sends
//! its `MCHTRANSFER.BILL.FINISHED`, encrypted and signed like payment
//! notifications.
//!
//! Not simulated: cancel, the no-confirmation mode, the per-scene caps
//! (`UNKNOWN` in §12.6), `user_recv_perception` values.

#[cfg(test)]
mod tests;

use super::{Shared, Simulator, now};
use anyhow::anyhow;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use payhost_sdk::encoding;
use serde_json::{Value, json};

/// §12.1.
pub const PATH: &str = "/v3/fund-app/mch-transfer/transfer-bills";
/// §12.6: the least a transfer may be (cash marketing, "fixed").
pub const MIN_FEN: u64 = 10;
/// §12.4.1: from this amount on the payee's real name is required.
pub const NAME_REQUIRED_FROM_FEN: u64 = 200_000;

#[derive(Debug, Clone)]
pub(super) struct Bill {
    out_bill_no: String,
    transfer_bill_no: String,
    appid: String,
    openid: String,
    amount: u64,
    remark: String,
    notify_url: String,
    /// The decrypted real name, when one was sent.
    user_name: Option<String>,
    state: &'static str,
    fail_reason: Option<String>,
    create_time: String,
    update_time: String,
}

fn stamp() -> String {
    payhost_sdk::time::format_rfc3339(now(), payhost_sdk::time::CHINA).unwrap_or_default()
}

impl Shared {
    fn bill_json(&self, b: &Bill) -> Value {
        let mut j = json!({
            "mch_id": self.config.mchid, "out_bill_no": b.out_bill_no,
            "transfer_bill_no": b.transfer_bill_no, "appid": b.appid, "state": b.state,
            "transfer_amount": b.amount, "transfer_remark": b.remark, "openid": b.openid,
            "create_time": b.create_time, "update_time": b.update_time,
        });
        if let Some(r) = &b.fail_reason {
            j["fail_reason"] = r.clone().into();
        }
        j
    }
}

/// Answers a request under [`PATH`]; `None` when the path is not one.
pub(super) fn handle(
    s: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Response> {
    let rest = path.strip_prefix(PATH)?;
    if s.global || s.config.sub_mchid.is_some() {
        // §12.0: no payout API for WeChat Pay Global; partner paths differ.
        return Some(s.error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such API"));
    }
    Some(match (method, rest) {
        (&Method::POST, "") => create(s, headers, body),
        (&Method::GET, _) if rest.starts_with("/out-bill-no/") => {
            let no = &rest["/out-bill-no/".len()..];
            let bill = s.state().bills.get(no).cloned();
            match bill {
                Some(b) => s.answer(StatusCode::OK, Some(s.bill_json(&b))),
                None => s.error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such transfer bill"),
            }
        }
        _ => s.error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such API"),
    })
}

fn create(s: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let param = |why: &str| s.error(StatusCode::BAD_REQUEST, "PARAM_ERROR", why);
    let Ok(b) = serde_json::from_slice::<Value>(body) else {
        return param("body is not JSON");
    };
    let text = |k: &str| b[k].as_str().filter(|t| !t.is_empty());
    if text("appid") != Some(s.config.appid.as_str()) {
        return param("appid is missing or not bound to the merchant");
    }
    let Some(no) = text("out_bill_no")
        .filter(|n| n.len() <= 32 && n.chars().all(|c| c.is_ascii_alphanumeric()))
    else {
        return param("out_bill_no must be 1 to 32 letters and digits");
    };
    let (Some(openid), Some(_scene), Some(notify_url)) = (
        text("openid"),
        text("transfer_scene_id"),
        text("notify_url"),
    ) else {
        return param("openid, transfer_scene_id and notify_url are required");
    };
    let Some(remark) = text("transfer_remark").filter(|r| r.chars().count() <= 32) else {
        return param("transfer_remark must be 1 to 32 characters");
    };
    let infos_ok = b["transfer_scene_report_infos"]
        .as_array()
        .is_some_and(|a| {
            !a.is_empty()
                && a.iter()
                    .all(|i| i["info_type"].is_string() && i["info_content"].is_string())
        });
    if !infos_ok {
        return param("transfer_scene_report_infos are incomplete");
    }
    let Some(amount) = b["transfer_amount"].as_u64() else {
        return param("transfer_amount must be an integer number of fen");
    };
    if amount < MIN_FEN {
        return param("transfer_amount is below the minimum of 0.1 CNY");
    }
    let user_name = match b.get("user_name") {
        None => None,
        Some(v) => match decrypt_name(s, headers, v) {
            Ok(name) => Some(name),
            Err(why) => return param(why),
        },
    };
    if amount >= NAME_REQUIRED_FROM_FEN && user_name.is_none() {
        return param("user_name is required from 2000 CNY");
    }
    let existing = s.state().bills.get(no).cloned();
    let bill = match existing {
        Some(old) if old.amount != amount || old.openid != openid => {
            return s.error(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "out_bill_no was used with other parameters",
            );
        }
        Some(old) => old,
        None => {
            let bill = Bill {
                out_bill_no: no.into(),
                transfer_bill_no: s.next_id("1330"),
                appid: s.config.appid.clone(),
                openid: openid.into(),
                amount,
                remark: remark.into(),
                notify_url: notify_url.into(),
                user_name,
                state: "WAIT_USER_CONFIRM",
                fail_reason: None,
                create_time: stamp(),
                update_time: stamp(),
            };
            s.state().bills.insert(no.into(), bill.clone());
            bill
        }
    };
    let mut answer = json!({
        "out_bill_no": bill.out_bill_no, "transfer_bill_no": bill.transfer_bill_no,
        "create_time": bill.create_time, "state": bill.state,
    });
    match bill.state {
        "WAIT_USER_CONFIRM" => {
            answer["package_info"] = format!("pkg-{}", bill.transfer_bill_no).into()
        }
        "FAIL" => answer["fail_reason"] = bill.fail_reason.clone().into(),
        _ => {}
    }
    s.answer(StatusCode::OK, Some(answer))
}

/// §12.5: the name decrypted with the platform key `Wechatpay-Serial` names.
fn decrypt_name(s: &Shared, headers: &HeaderMap, v: &Value) -> Result<String, &'static str> {
    let serial = headers
        .get("wechatpay-serial")
        .and_then(|h| h.to_str().ok());
    if serial != Some(s.config.platform_serial.as_str()) {
        return Err("Wechatpay-Serial is missing or names no key of WeChat Pay's");
    }
    let cipher = v
        .as_str()
        .and_then(|t| encoding::base64_decode(t).ok())
        .ok_or("user_name is not Base64")?;
    let plain = payhost_sdk::native::rsa_oaep_sha1_decrypt(&s.config.platform_private_key, &cipher)
        .map_err(|_| "user_name does not decrypt with the key Wechatpay-Serial names")?;
    String::from_utf8(plain).map_err(|_| "user_name is not UTF-8")
}

impl Simulator {
    /// WeChat's state of a transfer bill (`WAIT_USER_CONFIRM`, `SUCCESS`, ...).
    pub fn transfer_state(&self, out_bill_no: &str) -> Option<&'static str> {
        self.shared.state().bills.get(out_bill_no).map(|b| b.state)
    }

    /// The payee's real name as WeChat decrypted it, if one was sent.
    pub fn transfer_user_name(&self, out_bill_no: &str) -> Option<String> {
        self.shared
            .state()
            .bills
            .get(out_bill_no)
            .and_then(|b| b.user_name.clone())
    }

    /// The payee confirms receipt: the bill becomes `SUCCESS`.
    pub fn confirm_transfer(&self, out_bill_no: &str) -> anyhow::Result<()> {
        self.finish_transfer(out_bill_no, "SUCCESS", None)
    }

    /// The bill fails (unconfirmed for 24 hours, a refused account).
    pub fn fail_transfer(&self, out_bill_no: &str, reason: &str) -> anyhow::Result<()> {
        self.finish_transfer(out_bill_no, "FAIL", Some(reason.into()))
    }

    fn finish_transfer(
        &self,
        out_bill_no: &str,
        state: &'static str,
        reason: Option<String>,
    ) -> anyhow::Result<()> {
        let mut st = self.shared.state();
        let b = st
            .bills
            .get_mut(out_bill_no)
            .ok_or_else(|| anyhow!("no transfer bill {out_bill_no}"))?;
        if b.state != "WAIT_USER_CONFIRM" {
            return Err(anyhow!("transfer bill {out_bill_no} is {}", b.state));
        }
        b.state = state;
        b.fail_reason = reason;
        b.update_time = stamp();
        Ok(())
    }

    /// Sends the bill's `MCHTRANSFER.BILL.FINISHED` (§12.4.5).
    pub async fn notify_transfer(
        &self,
        out_bill_no: &str,
        forgery: super::NotifyForgery,
    ) -> anyhow::Result<(u16, String)> {
        let (url, resource) = {
            let st = self.shared.state();
            let b = st
                .bills
                .get(out_bill_no)
                .ok_or_else(|| anyhow!("no transfer bill {out_bill_no}"))?;
            let mut r = self.shared.bill_json(b);
            // The notification carries no remark or appid (WxJava's model).
            if let Some(o) = r.as_object_mut() {
                o.remove("transfer_remark");
                o.remove("appid");
            }
            (b.notify_url.clone(), r)
        };
        self.send(
            &url,
            "MCHTRANSFER.BILL.FINISHED",
            "mch_payment",
            &resource,
            forgery,
        )
        .await
    }
}
