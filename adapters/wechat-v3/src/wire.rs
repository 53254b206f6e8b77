//! The API v3 messages, named as WeChat Pay names them (providers.md §3.1–3.4,
//! §3.7, §3.9; partner mode §4.1, the global API §4.2).

use payhost_sdk::prelude::*;
use serde::Deserialize;

/// Which API family a merchant is contracted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A merchant of its own (`mchid` + `appid`).
    Direct,
    /// A service provider acting for a sub-merchant (`sp_mchid`, `sub_mchid`).
    Partner,
    /// WeChat Pay Global (`apihk`, `/v3/global/...`); with `sub_mchid`
    /// set, institution mode.
    Global,
}

impl Mode {
    pub fn parse(word: &str) -> Option<Mode> {
        match word {
            "direct" => Some(Mode::Direct),
            "partner" => Some(Mode::Partner),
            "global" => Some(Mode::Global),
            _ => None,
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            Mode::Global => "https://apihk.mch.weixin.qq.com",
            _ => "https://api.mch.weixin.qq.com",
        }
    }
}

/// The merchant's ids, as each request carries them.
#[derive(Debug, Clone)]
pub struct Ids<'a> {
    pub mode: Mode,
    /// `mchid`, or `sp_mchid` when a sub-merchant is set.
    pub mchid: &'a str,
    /// `appid`, or `sp_appid` when a sub-merchant is set.
    pub appid: &'a str,
    pub sub_mchid: Option<&'a str>,
    pub sub_appid: Option<&'a str>,
}

impl Ids<'_> {
    /// A service provider (partner) or institution acting for `sub_mchid`.
    pub fn for_sub_merchant(&self) -> bool {
        self.sub_mchid.is_some()
    }

    /// The ids an order body starts with.
    pub fn order_ids(&self) -> json::Value {
        match self.sub_mchid {
            None => json::json!({"appid": self.appid, "mchid": self.mchid}),
            Some(sub) => {
                let mut ids = json::json!({
                    "sp_appid": self.appid, "sp_mchid": self.mchid, "sub_mchid": sub,
                });
                if let Some(app) = self.sub_appid {
                    ids["sub_appid"] = app.into();
                }
                ids
            }
        }
    }

    /// The query string that names the merchant on GETs and the body of close.
    pub fn query(&self) -> String {
        match self.sub_mchid {
            None => format!("mchid={}", self.mchid),
            Some(sub) => format!("sp_mchid={}&sub_mchid={sub}", self.mchid),
        }
    }

    pub fn close_body(&self) -> json::Value {
        match self.sub_mchid {
            None => json::json!({"mchid": self.mchid}),
            Some(sub) => json::json!({"sp_mchid": self.mchid, "sub_mchid": sub}),
        }
    }

    /// Paths of the transaction API.
    pub fn transactions(&self) -> &'static str {
        match (self.mode, self.for_sub_merchant()) {
            (Mode::Global, _) => "/v3/global/transactions",
            (_, true) => "/v3/pay/partner/transactions",
            (_, false) => "/v3/pay/transactions",
        }
    }

    pub fn refunds(&self) -> &'static str {
        match self.mode {
            Mode::Global => "/v3/global/refunds",
            _ => "/v3/refund/domestic/refunds",
        }
    }

    /// The refund-query path of `out_refund_no` (with its query string).
    pub fn refund_query(&self, out_refund_no: &str) -> String {
        let path = match self.mode {
            Mode::Global => format!("{}/out-refund-no/{out_refund_no}", self.refunds()),
            _ => format!("{}/{out_refund_no}", self.refunds()),
        };
        match (self.mode, self.sub_mchid) {
            (Mode::Global, _) => format!("{path}?{}", self.query()),
            (_, Some(sub)) => format!("{path}?sub_mchid={sub}"),
            (_, None) => path,
        }
    }
}

/// §3.9: an error answer.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// Whether WeChat Pay says a call may succeed when repeated as it was.
pub fn retryable(status: u16, code: &str) -> bool {
    matches!(
        code,
        "SYSTEMERROR"
            | "SYSTEM_ERROR"
            | "FREQUENCY_LIMITED"
            | "FREQUENCY_LIMIT_EXCEED"
            | "BANKERROR"
            // WeChat Pay Global's rate limit (its institution guide).
            | "RATE_LIMITED"
    ) || code.starts_with("FREQUENCY_LIMIT")
        || status == 429
        || status >= 500 && !matches!(code, "OPENID_MISMATCH" | "INVALID_TRANSACTIONID")
}

/// §3.2: the answer of a JSAPI order.
#[derive(Debug, Deserialize)]
pub struct Prepay {
    pub prepay_id: String,
}

/// The answer of a native (QR) order.
#[derive(Debug, Deserialize)]
pub struct NativePrepay {
    pub code_url: String,
}

#[derive(Debug, Deserialize)]
pub struct TransactionAmount {
    pub total: Option<u64>,
    pub currency: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TransactionPayer {
    pub openid: Option<String>,
    pub sp_openid: Option<String>,
    pub sub_openid: Option<String>,
}

/// §3.3: a transaction, as query answers it and notifications carry it.
#[derive(Debug, Deserialize)]
pub struct Transaction {
    pub mchid: Option<String>,
    pub sp_mchid: Option<String>,
    pub sub_mchid: Option<String>,
    pub out_trade_no: String,
    pub transaction_id: Option<String>,
    pub trade_state: String,
    pub success_time: Option<String>,
    pub amount: Option<TransactionAmount>,
    #[serde(default)]
    pub payer: TransactionPayer,
}

impl Transaction {
    /// The merchant the transaction belongs to, as WeChat Pay says.
    pub fn merchant(&self) -> (Option<&str>, Option<&str>) {
        (
            self.mchid.as_deref().or(self.sp_mchid.as_deref()),
            self.sub_mchid.as_deref(),
        )
    }
}

/// §3.3 `trade_state` in the contract's terms.
pub fn trade_state(word: &str) -> Option<TradeState> {
    Some(match word {
        "SUCCESS" => TradeState::Paid,
        "REFUND" => TradeState::Refunded,
        "NOTPAY" | "USERPAYING" => TradeState::Pending,
        "CLOSED" | "REVOKED" => TradeState::Closed,
        "PAYERROR" => TradeState::Failed,
        _ => return None,
    })
}

#[derive(Debug, Deserialize)]
pub struct RefundAmount {
    pub refund: u64,
    pub currency: Option<String>,
}

/// §3.4: a refund, as refund and refund query answer it and refund
/// notifications carry it (`refund_status` there, `status` here).
#[derive(Debug, Deserialize)]
pub struct Refund {
    pub refund_id: Option<String>,
    pub out_refund_no: String,
    pub out_trade_no: Option<String>,
    pub transaction_id: Option<String>,
    #[serde(alias = "refund_status")]
    pub status: String,
    pub amount: Option<RefundAmount>,
    pub mchid: Option<String>,
    pub sp_mchid: Option<String>,
    pub sub_mchid: Option<String>,
}

/// §3.4 refund `status` in the contract's terms.
pub fn refund_state(word: &str) -> Option<RefundState> {
    Some(match word {
        "SUCCESS" => RefundState::Succeeded,
        "PROCESSING" => RefundState::Pending,
        "CLOSED" | "ABNORMAL" => RefundState::Failed,
        _ => return None,
    })
}

/// providers.md 12.1: the merchant transfer (商家转账), user-confirmation
/// mode, direct merchants.
pub const TRANSFER_BILLS: &str = "/v3/fund-app/mch-transfer/transfer-bills";

/// 12.4.4: a transfer bill by the merchant's number.
pub fn transfer_bill_by_out_bill_no(out_bill_no: &str) -> String {
    format!("{TRANSFER_BILLS}/out-bill-no/{out_bill_no}")
}

/// 12.4.5: the event of a transfer bill that reached `SUCCESS`, `FAIL` or
/// `CANCELLED`, and its resource's associated data.
pub const TRANSFER_FINISHED: &str = "MCHTRANSFER.BILL.FINISHED";

/// 12.4.1 / 12.4.4 / 12.4.5: a transfer bill as the create answer, the
/// query answer and the notification resource carry it (each a subset).
#[derive(Debug, Deserialize)]
pub struct TransferBill {
    pub mch_id: Option<String>,
    pub out_bill_no: String,
    pub transfer_bill_no: Option<String>,
    pub state: String,
    pub transfer_amount: Option<u64>,
    pub openid: Option<String>,
    pub fail_reason: Option<String>,
    /// Only in the create answer of a bill waiting for the user.
    pub package_info: Option<String>,
    pub create_time: Option<String>,
    pub update_time: Option<String>,
}

/// 12.4.3 `state` in the contract's terms; `package` is the create answer's
/// `package_info` of a bill waiting for the user.
pub fn transfer_state(
    word: &str,
    fail_reason: Option<&str>,
    confirmation: Option<PayeeConfirmation>,
) -> Option<PayoutState> {
    Some(match word {
        "ACCEPTED" => PayoutState::Accepted,
        "WAIT_USER_CONFIRM" => PayoutState::PendingUserConfirmation(confirmation),
        // TRANSFERING (sic): the result is not clear yet; CANCELING: a
        // cancel is under way. Neither is final.
        "PROCESSING" | "TRANSFERING" | "CANCELING" => PayoutState::Processing,
        "SUCCESS" => PayoutState::Succeeded,
        "FAIL" => PayoutState::Failed(fail_reason.unwrap_or("FAIL").into()),
        "CANCELLED" => PayoutState::Cancelled,
        _ => return None,
    })
}

/// §3.7: a notification's envelope.
#[derive(Debug, Deserialize)]
pub struct Notification {
    pub id: String,
    pub event_type: String,
    pub resource: Resource,
}

#[derive(Debug, Deserialize)]
pub struct Resource {
    pub algorithm: String,
    pub ciphertext: String,
    #[serde(default)]
    pub associated_data: String,
    pub nonce: String,
}

/// The acknowledgement that tells WeChat Pay a notification was taken (§3.7).
pub fn ack_success() -> HttpResponse {
    http::response(
        200,
        "application/json",
        r#"{"code":"SUCCESS","message":"OK"}"#,
    )
}

/// The answer that asks WeChat Pay to send the notification again.
pub fn ack_fail(message: &str) -> HttpResponse {
    let body = json::to_body(&json::json!({"code": "FAIL", "message": message}));
    http::response(400, "application/json", body)
}
