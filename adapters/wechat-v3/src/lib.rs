//! WeChat Pay API v3 adapter: JSON over HTTPS, SHA256withRSA both ways,
//! AES-256-GCM notifications; direct, partner and global (overseas) mode.
//!
//! - `lib.rs` (this file): the contract -- `describe`, the six operations
//!   and payouts (the merchant transfer, providers.md §12.4).
//! - [`wire`]: the v3 messages and paths, named as WeChat Pay names them.
//! - [`sign`]: request signing, answer and notification verification,
//!   notification decryption; every key stays on the host.
//! - [`papay`]: WeChat Pay Global's auto-debit contracts (providers.md §13),
//!   behind `papay_mode = "global"`.
//!
//! References are to sections of `providers.md` (§3 direct, §4 partner and
//! global).

#![forbid(unsafe_code)]

pub mod papay;
pub mod sign;
pub mod wire;

use payhost_sdk::prelude::*;
use sign::Verifier;
use wire::{Ids, Mode};

pub struct WechatV3;

/// WeChat Pay's limits on request fields (§1.2, §3.2), declared in
/// `describe` so the host refuses a value before an order number is spent.
const ORDER_NO: field::Rule = field::Rule::order_no("merchant_order_no", 6, 32, "_-|*");
const DESCRIPTION: field::Rule = field::Rule::text("description", 1, 127);
const REFUND_NO: field::Rule = field::Rule::order_no("refund_no", 1, 64, "_-|*@");
const RULES: [field::Rule; 5] = [
    ORDER_NO,
    DESCRIPTION,
    ATTACH,
    REFUND_NO,
    field::MINI_PROGRAM_OPENID,
];
const ATTACH: field::Rule = field::Rule::text("attach", 0, 128);

const MINI_PROGRAM: &str = "wechat_mini_program";
const NATIVE: &str = "wechat_native";
/// §3.6: the official SDK's window for `Wechatpay-Timestamp`.
const DEFAULT_WINDOW_SECS: i64 = 300;
/// §12.4.1 / §12.6: WeChat checks the payee's real name from 2,000 CNY up
/// and refuses a transfer without one.
const NAME_REQUIRED_FROM_FEN: u64 = 200_000;
/// §12.5: a name is encrypted whole; WeChat's real names are far shorter.
const MAX_REAL_NAME_CHARS: usize = 64;

/// The merchant configuration, read once per operation.
struct Settings<'a> {
    ids: Ids<'a>,
    /// The AppID of the mini-program that pays (§4.1: partner mode signs
    /// `paySign` for it).
    pay_appid: &'a str,
    serial_no: &'a str,
    private_key: Secret,
    api_v3_key: Secret,
    verifier: Verifier,
    base_url: &'a str,
}

impl<'a> Settings<'a> {
    fn read(ctx: &Ctx<'a>) -> Result<Self> {
        let c = ctx.config();
        let mode = c.text_opt("mode")?.unwrap_or("direct");
        let mode = Mode::parse(mode).ok_or_else(|| {
            Error::invalid_config(format!(
                "field `mode` is `{mode}`, expected `direct`, `partner` or `global`"
            ))
        })?;
        let ids = Ids {
            mode,
            mchid: c.text("mchid")?,
            appid: c.text("appid")?,
            sub_mchid: c.text_opt("sub_mchid")?,
            sub_appid: c.text_opt("sub_appid")?,
        };
        if mode == Mode::Partner && ids.sub_mchid.is_none() {
            return Err(Error::invalid_config(
                "mode `partner` needs `sub_mchid` (the sub-merchant paid)",
            ));
        }
        if mode == Mode::Direct && ids.sub_mchid.is_some() {
            return Err(Error::invalid_config(
                "field `sub_mchid` is set in mode `direct`; use mode `partner` for a sub-merchant",
            ));
        }
        if ids.sub_appid.is_some() && ids.sub_mchid.is_none() {
            return Err(Error::invalid_config(
                "field `sub_appid` is set but `sub_mchid` is not",
            ));
        }
        let window_secs = match c.text_opt("timestamp_window_secs")? {
            None => DEFAULT_WINDOW_SECS,
            Some(t) => t.parse().ok().filter(|w| *w > 0).ok_or_else(|| {
                Error::invalid_config(format!(
                    "field `timestamp_window_secs` is `{t}`, expected a positive number of seconds"
                ))
            })?,
        };
        let public_key = match (
            c.text_opt("wechatpay_public_key_id")?,
            c.text_opt("wechatpay_public_key")?,
        ) {
            (Some(id), Some(pem)) => Some((id, pem)),
            (None, None) => None,
            _ => {
                return Err(Error::invalid_config(
                    "`wechatpay_public_key_id` and `wechatpay_public_key` go together",
                ));
            }
        };
        let verifier = Verifier::new(
            public_key,
            c.text_opt("platform_certificates")?,
            window_secs,
        )?;
        Ok(Settings {
            pay_appid: c
                .text_opt("pay_appid")?
                .or(ids.sub_appid)
                .unwrap_or(ids.appid),
            ids,
            serial_no: c.text("merchant_serial_no")?,
            private_key: c.secret("private_key")?,
            api_v3_key: c.secret("api_v3_key")?,
            verifier,
            base_url: c.text_opt("base_url")?.unwrap_or(mode.default_base_url()),
        })
    }

    /// Signs and sends one request (§3.5), checks the answer's signature
    /// (§3.6) and returns its status and body when it is a success.
    fn call(
        &self,
        ctx: &mut Ctx,
        method: HttpMethod,
        path: &str,
        body: Option<json::Value>,
    ) -> Result<(u16, Vec<u8>)> {
        self.call_with(ctx, method, path, body, None)
    }

    /// [`call`](Self::call) with a `Wechatpay-Serial` header naming the
    /// WeChat Pay key a sensitive field of the body is encrypted with.
    fn call_with(
        &self,
        ctx: &mut Ctx,
        method: HttpMethod,
        path: &str,
        body: Option<json::Value>,
        serial: Option<String>,
    ) -> Result<(u16, Vec<u8>)> {
        let body = body.map(|b| json::to_body(&b)).unwrap_or_default();
        let (word, mut request) = match method {
            HttpMethod::Get => ("GET", http::get(http::join(self.base_url, path))),
            _ => (
                "POST",
                http::post(
                    http::join(self.base_url, path),
                    "application/json",
                    body.clone(),
                ),
            ),
        };
        let nonce = ctx.nonce(32);
        let timestamp = ctx.timestamp();
        let message = sign::request_message(word, path, timestamp, &nonce, &body);
        let signature = sign::sign(ctx, self.private_key, &message)?;
        let header = sign::authorization(
            self.ids.mchid,
            self.serial_no,
            &nonce,
            timestamp,
            &signature,
        );
        request.headers.push(("authorization".into(), header));
        request
            .headers
            .push(("accept".into(), "application/json".into()));
        if let Some(serial) = serial {
            request.headers.push(("wechatpay-serial".into(), serial));
        }
        let response = ctx.send(request)?;
        let status = response.status;
        let what = format!("{path} answer (HTTP {status})");
        // WeChat Pay signs its error answers too; a 401 of a wrong
        // signature may not be, so errors are read before they are trusted.
        if !(200..300).contains(&status) {
            let error: Option<wire::ErrorBody> = json::from_body(&response.body).ok();
            let (code, message) = match error {
                Some(e) => (e.code, e.message),
                None => (format!("HTTP_{status}"), String::new()),
            };
            return Err(Error::rejected(
                code.clone(),
                format!("{path}: {code} {message}"),
                wire::retryable(status, &code),
            ));
        }
        self.verifier.verify(
            ctx,
            &response.headers,
            &response.body,
            ctx.timestamp(),
            &what,
        )?;
        Ok((status, response.body))
    }

    fn check_merchant(
        &self,
        mchid: Option<&str>,
        sub_mchid: Option<&str>,
        what: &str,
    ) -> Result<()> {
        if let Some(m) = mchid
            && m != self.ids.mchid
        {
            return Err(Error::malformed(format!(
                "{what} is for merchant `{m}`, not `{}`",
                self.ids.mchid
            )));
        }
        if let (Some(got), Some(want)) = (sub_mchid, self.ids.sub_mchid)
            && got != want
        {
            return Err(Error::malformed(format!(
                "{what} is for sub-merchant `{got}`, not `{want}`"
            )));
        }
        Ok(())
    }

    /// A transaction in the contract's terms, checked against the merchant.
    fn trade_status(&self, t: wire::Transaction, what: &str) -> Result<TradeStatus> {
        let (mchid, sub) = t.merchant();
        self.check_merchant(mchid, sub, what)?;
        let state = wire::trade_state(&t.trade_state).ok_or_else(|| {
            Error::malformed(format!("{what}: unknown trade_state `{}`", t.trade_state))
        })?;
        let amount = match &t.amount {
            Some(wire::TransactionAmount {
                total: Some(total),
                currency,
            }) => Some(Money {
                minor: *total,
                currency: currency.clone().unwrap_or_else(|| "CNY".into()),
            }),
            _ => None,
        };
        let paid_at = match t
            .success_time
            .as_deref()
            .filter(|_| state == TradeState::Paid)
        {
            Some(s) => Some(
                time::parse_rfc3339(s)
                    .map_err(|e| Error::malformed(format!("{what}: success_time: {e}")))?,
            ),
            None => None,
        };
        let payer_id = t.payer.sub_openid.or(t.payer.sp_openid).or(t.payer.openid);
        Ok(TradeStatus {
            order: OrderRef {
                merchant_order_no: t.out_trade_no,
                provider_trade_no: None,
                channel_transaction_id: t.transaction_id,
            },
            state,
            provider_state: t.trade_state,
            amount,
            paid_at,
            payer_id,
        })
    }

    /// The answer of refund or refund query, for the refund asked about.
    fn refund_answer(
        &self,
        answer: &[u8],
        refund_no: &str,
        order: &OrderRef,
        what: &str,
    ) -> Result<RefundStatus> {
        let r: wire::Refund =
            json::from_body(answer).map_err(|e| Error::malformed(format!("{what}: {e}")))?;
        if r.out_refund_no != refund_no {
            return Err(Error::malformed(format!(
                "{what} is for out_refund_no `{}`, not `{refund_no}`",
                r.out_refund_no
            )));
        }
        self.refund_status(r, order, what)
    }

    fn refund_status(&self, r: wire::Refund, order: &OrderRef, what: &str) -> Result<RefundStatus> {
        self.check_merchant(
            r.mchid.as_deref().or(r.sp_mchid.as_deref()),
            r.sub_mchid.as_deref(),
            what,
        )?;
        if let Some(no) = &r.out_trade_no
            && !order.merchant_order_no.is_empty()
            && *no != order.merchant_order_no
        {
            return Err(Error::malformed(format!(
                "{what} is for out_trade_no `{no}`, not `{}`",
                order.merchant_order_no
            )));
        }
        let state = wire::refund_state(&r.status).ok_or_else(|| {
            Error::malformed(format!("{what}: unknown refund status `{}`", r.status))
        })?;
        let amount = r.amount.map(|a| Money {
            minor: a.refund,
            currency: a.currency.unwrap_or_else(|| "CNY".into()),
        });
        Ok(RefundStatus {
            order: OrderRef {
                merchant_order_no: r
                    .out_trade_no
                    .unwrap_or_else(|| order.merchant_order_no.clone()),
                provider_trade_no: None,
                channel_transaction_id: r
                    .transaction_id
                    .or_else(|| order.channel_transaction_id.clone()),
            },
            refund_no: r.out_refund_no,
            provider_refund_id: r.refund_id,
            state,
            provider_state: r.status,
            amount,
        })
    }
}

/// What a payout needs beyond the payment settings (§12.4.1, §12.9: the
/// scene and its report labels are granted and fixed per merchant in
/// WeChat's console, so they are configured, not guessed).
struct PayoutSettings<'a> {
    scene: Option<&'a str>,
    report_infos: Option<json::Value>,
    perception: Option<&'a str>,
}

impl<'a> PayoutSettings<'a> {
    fn read(ctx: &Ctx<'a>, s: &Settings) -> Result<Self> {
        if s.ids.mode != Mode::Direct {
            // §12.1: partner paths differ and were not specified; §12.0:
            // WeChat Pay Global has no payout product.
            return Err(Error::unsupported(
                "payouts (merchant transfer) are offered in mode `direct` only",
            ));
        }
        let c = ctx.config();
        let report_infos = match c.text_opt("transfer_scene_report_infos")? {
            None => None,
            Some(text) => Some(report_infos(text)?),
        };
        Ok(PayoutSettings {
            scene: c.text_opt("transfer_scene_id")?,
            report_infos,
            perception: c.text_opt("user_recv_perception")?,
        })
    }
}

/// `transfer_scene_report_infos` as configured: a JSON list of
/// `{"info_type": ..., "info_content": ...}`, the labels WeChat fixes per
/// scene (§12.4.1).
fn report_infos(text: &str) -> Result<json::Value> {
    let bad = || {
        Error::invalid_config(
            "field `transfer_scene_report_infos` must be a JSON list of {\"info_type\", \"info_content\"} objects",
        )
    };
    let v: json::Value = json::from_body(text.as_bytes()).map_err(|_| bad())?;
    let items = v.as_array().filter(|a| !a.is_empty()).ok_or_else(bad)?;
    let well_formed = items.iter().all(|i| {
        i.as_object().is_some_and(|o| {
            o.len() == 2
                && ["info_type", "info_content"].iter().all(|k| {
                    o.get(*k)
                        .and_then(|v| v.as_str())
                        .is_some_and(|t| !t.is_empty())
                })
        })
    });
    if !well_formed {
        return Err(bad());
    }
    Ok(v)
}

impl Settings<'_> {
    /// A transfer bill in the contract's terms, for the payout asked
    /// about; `app_id` (known to `payout`) completes the confirmation
    /// parameters of a bill that waits for the user.
    fn payout_status(
        &self,
        answer: &[u8],
        out_bill_no: &str,
        app_id: Option<&str>,
        what: &str,
    ) -> Result<PayoutStatus> {
        let bill: wire::TransferBill =
            json::from_body(answer).map_err(|e| Error::malformed(format!("{what}: {e}")))?;
        if bill.out_bill_no != out_bill_no {
            return Err(Error::malformed(format!(
                "{what} is for out_bill_no `{}`, not `{out_bill_no}`",
                bill.out_bill_no
            )));
        }
        self.bill_status(bill, app_id, what)
    }

    fn bill_status(
        &self,
        bill: wire::TransferBill,
        app_id: Option<&str>,
        what: &str,
    ) -> Result<PayoutStatus> {
        self.check_merchant(bill.mch_id.as_deref(), None, what)?;
        let confirmation = match (&bill.package_info, app_id) {
            (Some(package), Some(app_id)) => Some(PayeeConfirmation {
                mch_id: self.ids.mchid.into(),
                app_id: app_id.into(),
                package: package.clone(),
            }),
            _ => None,
        };
        let state = wire::transfer_state(&bill.state, bill.fail_reason.as_deref(), confirmation)
            .ok_or_else(|| Error::malformed(format!("{what}: unknown state `{}`", bill.state)))?;
        if matches!(state, PayoutState::PendingUserConfirmation(None)) && app_id.is_some() {
            // The create answer of a waiting bill must carry its package,
            // or the payee has nothing to confirm with.
            return Err(Error::malformed(format!(
                "{what}: state WAIT_USER_CONFIRM without package_info"
            )));
        }
        let updated_at = match bill.update_time.as_deref().or(bill.create_time.as_deref()) {
            Some(t) => Some(
                time::parse_rfc3339(t)
                    .map_err(|e| Error::malformed(format!("{what}: update_time: {e}")))?,
            ),
            None => None,
        };
        Ok(PayoutStatus {
            payout: PayoutRef {
                merchant_payout_no: bill.out_bill_no,
                provider_payout_id: bill.transfer_bill_no,
            },
            state,
            provider_state: bill.state,
            amount: bill.transfer_amount.map(|minor| Money {
                minor,
                currency: "CNY".into(),
            }),
            payee_id: bill.openid,
            updated_at,
        })
    }
}

impl Adapter for WechatV3 {
    fn describe() -> AdapterInfo {
        let field = field::config;
        AdapterInfo {
            name: "wechat-v3".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            contract_version: CONTRACT_VERSION.into(),
            methods: vec![MINI_PROGRAM.into(), NATIVE.into()],
            currencies: money::currencies(&money::WECHAT_PAY_CURRENCIES),
            capabilities: Capabilities {
                payment_notifications: true,
                refund_notifications: true,
                partial_refunds: true,
                query_by_merchant_order_no: true,
                close: true,
                refund_query: true,
                // The merchant transfer (§12.4), direct mode.
                payouts: true,
                payout_notifications: true,
                // WeChat Pay Global papay (§13), for merchants configured
                // with `papay_mode = global`; for the others every contract
                // operation answers `unsupported`.
                contracts: true,
                contract_notifications: true,
                deduction_notifications: true,
            },
            egress_hosts: vec![
                "api.mch.weixin.qq.com".into(),
                "api2.mch.weixin.qq.com".into(),
                "apihk.mch.weixin.qq.com".into(),
            ],
            field_rules: field::declare(&RULES),
            config_schema: vec![
                field(
                    "mode",
                    "`direct`, `partner` (service provider for `sub_mchid`) or `global` (WeChat Pay Global; institution mode with `sub_mchid`)",
                    FieldKind::Text,
                    false,
                    Some("direct"),
                ),
                field(
                    "mchid",
                    "Merchant id (partner and institution mode: the service provider's)",
                    FieldKind::Text,
                    true,
                    None,
                ),
                field(
                    "appid",
                    "AppID bound to mchid (partner and institution mode: the service provider's)",
                    FieldKind::Text,
                    true,
                    None,
                ),
                field(
                    "sub_mchid",
                    "Partner and institution mode: the sub-merchant id",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "sub_appid",
                    "Partner and institution mode: the sub-merchant's mini-program AppID",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "pay_appid",
                    "The AppID `paySign` is signed for (default: sub_appid, else appid)",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "merchant_serial_no",
                    "Serial number of the merchant API certificate",
                    FieldKind::Text,
                    true,
                    None,
                ),
                field(
                    "private_key",
                    "The merchant API private key (apiclient_key.pem, PKCS#8 PEM)",
                    FieldKind::Secret,
                    true,
                    None,
                ),
                field(
                    "api_v3_key",
                    "The 32-byte APIv3 key that encrypts notifications",
                    FieldKind::Secret,
                    true,
                    None,
                ),
                field(
                    "wechatpay_public_key_id",
                    "Id of the WeChat Pay public key (PUB_KEY_ID_...)",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "wechatpay_public_key",
                    "The WeChat Pay public key (PEM)",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "platform_certificates",
                    "WeChat Pay platform certificates (PEM, one or more); may be set together with the public key while migrating",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "timestamp_window_secs",
                    "How far Wechatpay-Timestamp may be from now, in seconds",
                    FieldKind::Text,
                    false,
                    Some("300"),
                ),
                field(
                    "transfer_scene_id",
                    "Payouts: the transfer scene granted in WeChat's console (e.g. 1000 cash marketing), used when a payout names none",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "transfer_scene_report_infos",
                    "Payouts: the scene's report items as JSON, e.g. [{\"info_type\":\"活动名称\",\"info_content\":\"...\"}]; WeChat fixes the labels per scene",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "user_recv_perception",
                    "Payouts: the reason the payee sees, one of the values WeChat allows for the scene (optional)",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "papay_mode",
                    "Auto-debit contracts: `off`, or `global` for WeChat Pay Global papay (needs mode `global` and WeChat's papay permission)",
                    FieldKind::Text,
                    false,
                    Some("off"),
                ),
                field(
                    "papay_path_prefix",
                    "Papay: the API path prefix, `/v3/global/papay` (page headers, OpenAPI set) or `/v3/papay/hk` (the pages' request examples) — providers.md §13.1",
                    FieldKind::Text,
                    false,
                    Some(papay::wire::DEFAULT_PREFIX),
                ),
                field(
                    "papay_merchant_category_code",
                    "Papay: the merchant_category_code (MCC) WeChat requires on every deduction — §13.3.4",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "papay_signing_appid",
                    "Papay: the mini-program the payer is sent to with the pre-sign's session (UNKNOWN for overseas; default WeChat's signing mini-program) — §13.2.1, §13.2.6",
                    FieldKind::Text,
                    false,
                    Some(papay::wire::DEFAULT_SIGNING_APP_ID),
                ),
                field(
                    "papay_signing_path",
                    "Papay: the page of that mini-program (UNKNOWN for overseas) — §13.2.1",
                    FieldKind::Text,
                    false,
                    Some(papay::wire::DEFAULT_SIGNING_PATH),
                ),
                field(
                    "papay_session_param",
                    "Papay: the extraData key that carries the pre-sign's session_id (UNKNOWN) — §13.2.6",
                    FieldKind::Text,
                    false,
                    Some(papay::wire::DEFAULT_SESSION_PARAM),
                ),
                field(
                    "papay_sign_expires_secs",
                    "Papay: when set, the pre-sign's expired_time is now plus this many seconds; unset, none is sent (its meaning is not published) — §13.2.6",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "papay_contract_events",
                    "Papay: comma-separated event_type values of contract notifications (overseas names UNKNOWN; default the domestic v3 ones) — §13.6.3",
                    FieldKind::Text,
                    false,
                    Some(papay::wire::DEFAULT_CONTRACT_EVENTS),
                ),
                field(
                    "base_url",
                    "API host: api.mch.weixin.qq.com, api2 (backup) or apihk (global)",
                    FieldKind::Url,
                    false,
                    None,
                ),
            ],
        }
    }

    fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
        let s = Settings::read(ctx)?;
        let kind = match req.method.as_str() {
            MINI_PROGRAM => "jsapi",
            NATIVE => "native",
            other => {
                return Err(Error::unsupported(format!(
                    "method `{other}`: wechat-v3 offers {MINI_PROGRAM}, {NATIVE}"
                )));
            }
        };
        ORDER_NO.check(&req.merchant_order_no)?;
        DESCRIPTION.check(&req.description)?;
        if let Some(attach) = &req.attach {
            ATTACH.check(attach)?;
        }
        field::positive(req.amount.minor, "amount.minor")?;
        field::currency(&req.amount.currency, "amount.currency")?;
        if s.ids.mode != Mode::Global && req.amount.currency != "CNY" {
            return Err(Error::invalid_request(format!(
                "amount.currency `{}`: the domestic API takes CNY only; use mode `global`",
                req.amount.currency
            )));
        }
        let notify_url = field::notify_url_without_query(ctx.notify_url())?;
        let mut body = s.ids.order_ids();
        if s.ids.mode == Mode::Global {
            // The global order names its trade type besides its path.
            body["trade_type"] = kind.to_uppercase().into();
        }
        body["description"] = req.description.as_str().into();
        body["out_trade_no"] = req.merchant_order_no.as_str().into();
        body["notify_url"] = notify_url.into();
        body["amount"] = json::json!({"total": req.amount.minor, "currency": req.amount.currency});
        if let Some(attach) = &req.attach {
            body["attach"] = attach.as_str().into();
        }
        if let Some(at) = field::expiry(req.expires_at, ctx.timestamp())? {
            let text = time::format_rfc3339(at, time::CHINA)
                .map_err(|e| Error::invalid_request(format!("expires_at: {e}")))?;
            body["time_expire"] = text.into();
        }
        if kind == "jsapi" {
            let openid = field::mini_program_openid(&req.payer, s.pay_appid)?;
            // The payer's openid is of the app that pays: the sub-merchant's
            // when one is configured, else the service provider's (§4.1).
            let key = match (s.ids.for_sub_merchant(), s.ids.sub_appid) {
                (false, _) => "openid",
                (true, Some(_)) => "sub_openid",
                (true, None) => "sp_openid",
            };
            body["payer"] = json::json!({ key: openid });
        }
        if s.ids.mode == Mode::Global && kind == "native" {
            // The global API asks for the payer's IP on native orders.
            if let Some(ip) = req.payer.client_ip.as_deref() {
                body["scene_info"] = json::json!({"payer_client_ip": ip});
            }
        }
        let path = format!("{}/{kind}", s.ids.transactions());
        let (_, answer) = s.call(ctx, HttpMethod::Post, &path, Some(body))?;
        let what = "unified order answer";
        let order = OrderRef {
            merchant_order_no: req.merchant_order_no.clone(),
            provider_trade_no: None,
            channel_transaction_id: None,
        };
        let action = if kind == "native" {
            let p: wire::NativePrepay =
                json::from_body(&answer).map_err(|e| Error::malformed(format!("{what}: {e}")))?;
            PayAction::QrCode(p.code_url)
        } else {
            let p: wire::Prepay =
                json::from_body(&answer).map_err(|e| Error::malformed(format!("{what}: {e}")))?;
            // §3.8: the four fields wx.requestPayment checks, then paySign.
            let time_stamp = ctx.timestamp().to_string();
            let nonce_str = ctx.nonce(32);
            let package = format!("prepay_id={}", p.prepay_id);
            let message = sign::pay_sign_message(s.pay_appid, &time_stamp, &nonce_str, &package);
            PayAction::MiniProgram(MiniProgramParams {
                app_id: s.pay_appid.into(),
                time_stamp,
                nonce_str,
                package,
                sign_type: "RSA".into(),
                pay_sign: sign::sign(ctx, s.private_key, &message)?,
            })
        };
        Ok(OrderCreated { order, action })
    }

    fn query(ctx: &mut Ctx, req: &QueryRequest) -> Result<TradeStatus> {
        let s = Settings::read(ctx)?;
        // The transaction id is the stronger selector (§3.1).
        let path = match req
            .order
            .channel_transaction_id
            .as_deref()
            .filter(|t| !t.is_empty())
        {
            Some(tx) => {
                field::order_no(tx, "order.channel_transaction_id", 1, 32, "")?;
                format!("{}/id/{tx}?{}", s.ids.transactions(), s.ids.query())
            }
            None => {
                field::order_no(
                    &req.order.merchant_order_no,
                    "order.merchant_order_no",
                    1,
                    32,
                    "_-|*",
                )?;
                format!(
                    "{}/out-trade-no/{}?{}",
                    s.ids.transactions(),
                    req.order.merchant_order_no,
                    s.ids.query()
                )
            }
        };
        let (_, answer) = s.call(ctx, HttpMethod::Get, &path, None)?;
        let what = "order query answer";
        let t: wire::Transaction =
            json::from_body(&answer).map_err(|e| Error::malformed(format!("{what}: {e}")))?;
        if !req.order.merchant_order_no.is_empty() && t.out_trade_no != req.order.merchant_order_no
        {
            return Err(Error::malformed(format!(
                "{what} is for out_trade_no `{}`, not `{}`",
                t.out_trade_no, req.order.merchant_order_no
            )));
        }
        s.trade_status(t, what)
    }

    /// Close answers 204. A paid order answers `ORDERPAID`, and a closed
    /// one `ORDER_CLOSED`: the first is queried for its amount, the second
    /// is what was asked for.
    fn close(ctx: &mut Ctx, req: &CloseRequest) -> Result<TradeStatus> {
        let s = Settings::read(ctx)?;
        field::order_no(
            &req.order.merchant_order_no,
            "order.merchant_order_no",
            1,
            32,
            "_-|*",
        )?;
        let path = format!(
            "{}/out-trade-no/{}/close",
            s.ids.transactions(),
            req.order.merchant_order_no
        );
        let closed = || TradeStatus {
            order: req.order.clone(),
            state: TradeState::Closed,
            provider_state: "CLOSED".into(),
            amount: None,
            paid_at: None,
            payer_id: None,
        };
        match s.call(ctx, HttpMethod::Post, &path, Some(s.ids.close_body())) {
            Ok(_) => Ok(closed()),
            Err(e) => match rejection_code(&e) {
                Some("ORDER_CLOSED" | "ORDERCLOSED") => Ok(closed()),
                Some("ORDERPAID" | "ORDER_PAID" | "TRADE_ERROR") => Self::query(
                    ctx,
                    &QueryRequest {
                        order: req.order.clone(),
                    },
                ),
                _ => Err(e),
            },
        }
    }

    fn refund(ctx: &mut Ctx, req: &RefundRequest) -> Result<RefundStatus> {
        let s = Settings::read(ctx)?;
        REFUND_NO.check(&req.refund_no)?;
        field::refund_amount(&req.amount, &req.order_amount)?;
        let mut body = json::json!({
            "out_refund_no": req.refund_no,
            "notify_url": ctx.notify_url(),
            "amount": {
                "refund": req.amount.minor,
                "total": req.order_amount.minor,
                "currency": req.amount.currency,
            },
        });
        match req
            .order
            .channel_transaction_id
            .as_deref()
            .filter(|t| !t.is_empty())
        {
            Some(tx) => body["transaction_id"] = tx.into(),
            None => {
                field::order_no(
                    &req.order.merchant_order_no,
                    "order.merchant_order_no",
                    1,
                    32,
                    "_-|*",
                )?;
                body["out_trade_no"] = req.order.merchant_order_no.as_str().into();
            }
        }
        if let Some(reason) = &req.reason {
            field::chars(reason, "reason", 0, 80)?;
            body["reason"] = reason.as_str().into();
        }
        match (s.ids.mode, s.ids.order_ids()) {
            // The global refund names merchant and app as its order does
            // (§4.2: `mchid` + `appid`, or `sp_mchid`, `sp_appid`, `sub_mchid`).
            (Mode::Global, json::Value::Object(ids)) => {
                for (k, v) in ids {
                    body[k.as_str()] = v;
                }
            }
            _ => {
                if let Some(sub) = s.ids.sub_mchid {
                    body["sub_mchid"] = sub.into();
                }
            }
        }
        let (_, answer) = s.call(ctx, HttpMethod::Post, s.ids.refunds(), Some(body))?;
        let what = "refund answer";
        s.refund_answer(&answer, &req.refund_no, &req.order, what)
    }

    /// `NOT_FOUND` / `RESOURCE_NOT_EXISTS`: WeChat Pay never accepted the
    /// refund, so nothing was refunded.
    fn refund_query(ctx: &mut Ctx, req: &RefundQueryRequest) -> Result<RefundStatus> {
        let s = Settings::read(ctx)?;
        REFUND_NO.check(&req.refund_no)?;
        let path = s.ids.refund_query(&req.refund_no);
        let answer = match s.call(ctx, HttpMethod::Get, &path, None) {
            Ok((_, answer)) => answer,
            Err(e)
                if matches!(
                    rejection_code(&e),
                    Some("RESOURCE_NOT_EXISTS" | "NOT_FOUND" | "REFUNDNOTEXIST")
                ) =>
            {
                return Ok(RefundStatus {
                    order: req.order.clone(),
                    refund_no: req.refund_no.clone(),
                    provider_refund_id: req.provider_refund_id.clone(),
                    state: RefundState::Failed,
                    provider_state: rejection_code(&e).unwrap_or_default().into(),
                    amount: None,
                });
            }
            Err(e) => return Err(e),
        };
        let what = "refund query answer";
        s.refund_answer(&answer, &req.refund_no, &req.order, what)
    }

    /// §12.4.1: a transfer bill in user-confirmation mode. Retrying with
    /// the same number answers the same bill; a non-2xx answer says nothing
    /// about the bill, so it is an error and the number is kept (the host
    /// queries before anything else).
    fn payout(ctx: &mut Ctx, req: &PayoutRequest) -> Result<PayoutStatus> {
        let s = Settings::read(ctx)?;
        let p = PayoutSettings::read(ctx, &s)?;
        let no = &req.merchant_payout_no;
        field::order_no(no, "merchant_payout_no", 1, 32, "")?;
        field::positive(req.amount.minor, "amount.minor")?;
        if req.amount.currency != "CNY" {
            return Err(Error::invalid_request(format!(
                "amount.currency `{}`: WeChat's merchant transfer pays CNY only",
                req.amount.currency
            )));
        }
        field::chars(&req.remark, "remark", 1, 32)?;
        field::chars(&req.payee.app_id, "payee.app_id", 1, 32)?;
        field::chars(&req.payee.openid, "payee.openid", 1, 128)?;
        let scene = req.scene.as_deref().or(p.scene).ok_or_else(|| {
            Error::invalid_request(
                "scene: the payout names none and `transfer_scene_id` is not configured",
            )
        })?;
        field::order_no(scene, "scene", 1, 16, "")?;
        let report_infos = p.report_infos.ok_or_else(|| {
            Error::invalid_config(
                "field `transfer_scene_report_infos` is needed for payouts (WeChat requires the scene's report items)",
            )
        })?;
        if req.amount.minor >= NAME_REQUIRED_FROM_FEN && req.payee.real_name.is_none() {
            return Err(Error::invalid_request(
                "payee.real_name: WeChat requires the payee's real name from 2,000.00 CNY",
            ));
        }
        let notify_url = field::notify_url_without_query(ctx.notify_url())?;
        let mut body = json::json!({
            "appid": req.payee.app_id,
            "out_bill_no": no,
            "transfer_scene_id": scene,
            "openid": req.payee.openid,
            "transfer_amount": req.amount.minor,
            "transfer_remark": req.remark,
            "notify_url": notify_url,
            "transfer_scene_report_infos": report_infos,
        });
        if let Some(perception) = p.perception {
            body["user_recv_perception"] = perception.into();
        }
        let serial = match &req.payee.real_name {
            None => None,
            Some(name) => {
                // The message names the limit, never the name.
                field::chars(name, "payee.real_name", 1, MAX_REAL_NAME_CHARS)?;
                let (cipher, serial) =
                    sign::encrypt_sensitive(ctx, &s.verifier, name, ctx.timestamp())?;
                body["user_name"] = cipher.into();
                Some(serial)
            }
        };
        let (_, answer) = s.call_with(
            ctx,
            HttpMethod::Post,
            wire::TRANSFER_BILLS,
            Some(body),
            serial,
        )?;
        s.payout_status(&answer, no, Some(&req.payee.app_id), "transfer answer")
    }

    /// §12.4.4: the bill by `out_bill_no` (the last 30 days only).
    fn payout_query(ctx: &mut Ctx, req: &PayoutQueryRequest) -> Result<PayoutStatus> {
        let s = Settings::read(ctx)?;
        PayoutSettings::read(ctx, &s)?;
        let no = &req.payout.merchant_payout_no;
        field::order_no(no, "payout.merchant_payout_no", 1, 32, "")?;
        let path = wire::transfer_bill_by_out_bill_no(no);
        let answer = match s.call(ctx, HttpMethod::Get, &path, None) {
            Ok((_, answer)) => answer,
            // WeChat Pay has no bill of that number: it never accepted the
            // payout, so no money moved and none will (the host asks only
            // well after its request's deadline).
            Err(e)
                if matches!(
                    rejection_code(&e),
                    Some("NOT_FOUND" | "RESOURCE_NOT_EXISTS")
                ) =>
            {
                return Ok(PayoutStatus {
                    payout: req.payout.clone(),
                    state: PayoutState::Failed(format!(
                        "{}: WeChat Pay has no transfer bill `{no}`",
                        rejection_code(&e).unwrap_or_default()
                    )),
                    provider_state: rejection_code(&e).unwrap_or_default().into(),
                    amount: None,
                    payee_id: None,
                    updated_at: None,
                });
            }
            Err(e) => return Err(e),
        };
        s.payout_status(&answer, no, None, "transfer query answer")
    }

    fn contract_sign(ctx: &mut Ctx, req: &ContractSignRequest) -> Result<ContractSigning> {
        papay::sign_contract(ctx, req)
    }

    fn contract_query(ctx: &mut Ctx, req: &ContractQueryRequest) -> Result<ContractStatus> {
        papay::query_contract(ctx, req)
    }

    fn contract_terminate(ctx: &mut Ctx, req: &ContractTerminateRequest) -> Result<ContractStatus> {
        papay::terminate_contract(ctx, req)
    }

    fn deduct(ctx: &mut Ctx, req: &DeductionRequest) -> Result<DeductionStatus> {
        papay::deduct(ctx, req)
    }

    fn deduction_query(ctx: &mut Ctx, req: &DeductionQueryRequest) -> Result<DeductionStatus> {
        papay::query_deduction(ctx, req)
    }

    fn parse_notify(ctx: &mut Ctx, req: &InboundHttp) -> Result<NotifyOutcome> {
        let fail = |e: Error, msg: &str| e.with_ack(wire::ack_fail(msg));
        let s = Settings::read(ctx)?;
        if req.method != HttpMethod::Post {
            return Err(fail(
                Error::invalid_request("notification must be a POST"),
                "POST required",
            ));
        }
        let what = "notification";
        s.verifier
            .verify(ctx, &req.headers, &req.body, ctx.timestamp(), what)
            .map_err(|e| fail(e, "signature check failed"))?;
        let events =
            notification_events(ctx, &s, &req.body).map_err(|e| fail(e, "invalid notification"))?;
        Ok(NotifyOutcome {
            events,
            ack: wire::ack_success(),
        })
    }
}

/// §3.7: the decrypted resource of a verified notification.
fn notification_events(ctx: &Ctx, s: &Settings, body: &[u8]) -> Result<Vec<NotifyEvent>> {
    let n: wire::Notification = json::from_body(body)
        .map_err(|e| Error::invalid_request(format!("notification body: {e}")))?;
    let r = &n.resource;
    let plain = sign::decrypt_resource(
        ctx,
        s.api_v3_key,
        &r.algorithm,
        &r.nonce,
        &r.associated_data,
        &r.ciphertext,
    )?;
    let what = format!("notification {} ({})", n.id, n.event_type);
    if let Some(p) = papay::PapaySettings::read_opt(ctx, s)?
        && let Some(events) = papay::notification_events(s, &p, &n.event_type, &plain, &what)?
    {
        return Ok(events);
    }
    let invalid = |e: Error| match e.adapter_error() {
        Some(AdapterError::MalformedResponse(m)) => Error::invalid_request(m.clone()),
        _ => e,
    };
    if n.event_type.starts_with("TRANSACTION.") {
        let t: wire::Transaction = json::from_body(&plain)
            .map_err(|e| Error::invalid_request(format!("{what}: resource: {e}")))?;
        let status = s.trade_status(t, &what).map_err(invalid)?;
        if status.state == TradeState::Paid && status.order.channel_transaction_id.is_none() {
            return Err(Error::invalid_request(format!(
                "{what} for a paid order lacks `transaction_id`"
            )));
        }
        Ok(vec![NotifyEvent::Payment(status)])
    } else if n.event_type.starts_with("REFUND.") {
        let r: wire::Refund = json::from_body(&plain)
            .map_err(|e| Error::invalid_request(format!("{what}: resource: {e}")))?;
        let order = OrderRef {
            merchant_order_no: r.out_trade_no.clone().unwrap_or_default(),
            provider_trade_no: None,
            channel_transaction_id: r.transaction_id.clone(),
        };
        if order.merchant_order_no.is_empty() {
            return Err(Error::invalid_request(format!(
                "{what} lacks `out_trade_no`"
            )));
        }
        Ok(vec![NotifyEvent::Refund(
            s.refund_status(r, &order, &what).map_err(invalid)?,
        )])
    } else if n.event_type == wire::TRANSFER_FINISHED {
        // §12.4.5: the resource is a transfer bill.
        let bill: wire::TransferBill = json::from_body(&plain)
            .map_err(|e| Error::invalid_request(format!("{what}: resource: {e}")))?;
        Ok(vec![NotifyEvent::Payout(
            s.bill_status(bill, None, &what).map_err(invalid)?,
        )])
    } else {
        // Verified, but of a product payhost does not handle: taken, so
        // WeChat Pay does not send it again, and nothing applied.
        Ok(vec![])
    }
}

/// WeChat Pay's `code` of a provider rejection.
fn rejection_code(e: &Error) -> Option<&str> {
    match e.adapter_error() {
        Some(AdapterError::ProviderRejected(r)) => Some(r.code.as_str()),
        _ => None,
    }
}

payhost_sdk::export_adapter!(WechatV3);

#[cfg(test)]
mod tests;
