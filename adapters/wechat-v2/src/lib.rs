//! WeChat Pay API v2 adapter: XML over HTTPS, MD5 / HMAC-SHA256 signatures,
//! direct and partner (service-provider) mode.
//!
//! - `lib.rs` (this file): the contract -- `describe` and the six operations.
//! - [`papay`]: auto-debit contracts (contract 0.6), WeChat's papay family.
//! - [`wire`]: the v2 field sets, named as WeChat names them.
//! - [`sign`]: the v2 signature, with the API key as a host-held secret.
//!
//! References are to sections of `providers.md` (§1 direct, §2 partner).

#![forbid(unsafe_code)]

pub mod papay;
pub mod sign;
pub mod wire;

use payhost_sdk::prelude::*;
use payhost_sdk::xml::Fields;
use sign::SignType;
use wire::{Merchant, Region};

pub struct WechatV2;

/// WeChat Pay's limits on request fields (§1.2, §3.2), declared in
/// `describe` so the host refuses a value before an order number is spent.
const ORDER_NO: field::Rule = field::Rule::order_no("merchant_order_no", 6, 32, "_-|*");
const DESCRIPTION: field::Rule = field::Rule::text("description", 1, 127);
const REFUND_NO: field::Rule = field::Rule::order_no("refund_no", 1, 64, "_-|*@");
const RULES: [field::Rule; 6] = [
    ORDER_NO,
    DESCRIPTION,
    ATTACH,
    REFUND_NO,
    field::MINI_PROGRAM_OPENID,
    field::CLIENT_IP,
];
const ATTACH: field::Rule = field::Rule::text("attach", 0, 127);

const DEFAULT_BASE_URL: &str = "https://api.mch.weixin.qq.com";
const MINI_PROGRAM: &str = "wechat_mini_program";
const NATIVE: &str = "wechat_native";

/// The merchant configuration, read once per operation.
struct Settings<'a> {
    merchant: Merchant<'a>,
    api_key: Secret,
    sign_type: SignType,
    base_url: &'a str,
    client_cert: Option<Secret>,
    region: Region,
    /// Sent as `version` on every request when set (§1.11: one
    /// cross-border page shows a fixed one; which calls want it is unknown).
    version: Option<&'a str>,
}

impl<'a> Settings<'a> {
    fn read(ctx: &Ctx<'a>) -> Result<Self> {
        let c = ctx.config();
        let sign_type = c.text_opt("sign_type")?.unwrap_or("MD5");
        let sign_type = SignType::parse(sign_type).ok_or_else(|| {
            Error::invalid_config(format!(
                "field `sign_type` is `{sign_type}`, expected `MD5` or `HMAC-SHA256`"
            ))
        })?;
        let merchant = Merchant {
            appid: c.text("appid")?,
            mch_id: c.text("mch_id")?,
            sub_appid: c.text_opt("sub_appid")?,
            sub_mch_id: c.text_opt("sub_mch_id")?,
        };
        if merchant.sub_appid.is_some() && merchant.sub_mch_id.is_none() {
            return Err(Error::invalid_config(
                "field `sub_appid` is set but `sub_mch_id` is not (partner mode needs both)",
            ));
        }
        let base_url = c.text_opt("base_url")?.unwrap_or(DEFAULT_BASE_URL);
        let region = Self::region(c.text_opt("region")?, base_url)?;
        Ok(Settings {
            merchant,
            api_key: c.secret("api_key")?,
            sign_type,
            base_url,
            client_cert: c.secret_opt("client_cert")?,
            region,
            version: c.text_opt("version")?,
        })
    }

    /// `region` as configured, else the region of a WeChat Pay `base_url`
    /// (domestic for any other host). A region that contradicts a WeChat
    /// Pay host is refused: that host would refuse every call.
    fn region(configured: Option<&str>, base_url: &str) -> Result<Region> {
        let by_host = Region::of_base_url(base_url);
        let Some(word) = configured else {
            return Ok(by_host.unwrap_or(Region::Domestic));
        };
        let region = Region::parse(word).ok_or_else(|| {
            Error::invalid_config(format!(
                "field `region` is `{word}`, expected `domestic` or `overseas`"
            ))
        })?;
        match by_host {
            Some(host) if host != region => Err(Error::invalid_config(format!(
                "field `region` is `{word}` but `base_url` `{base_url}` is a {} host",
                host.as_str()
            ))),
            _ => Ok(region),
        }
    }

    /// Refuses a currency this merchant's API does not take, naming the
    /// field and what to configure.
    fn check_currency(&self, currency: &str, field: &str) -> Result<()> {
        field::currency(currency, field)?;
        if self.region.takes(currency) {
            return Ok(());
        }
        Err(Error::invalid_request(match self.region {
            Region::Domestic => format!(
                "{field} `{currency}`: the domestic v2 API takes CNY only; a cross-border \
                 merchant sets `region = \"overseas\"` (or an apihk base_url)"
            ),
            Region::Overseas => format!(
                "{field} `{currency}` is not a currency WeChat Pay's cross-border API takes"
            ),
        }))
    }

    /// `total_fee` of a signed message, with its payer's side checked.
    fn total_fee(&self, fields: &Fields, what: &str) -> Result<Money> {
        let total = wire::total_fee(fields, self.region, what)?;
        wire::check_cash_fee(fields, what)?;
        Ok(total)
    }

    fn partner(&self) -> bool {
        self.merchant.sub_mch_id.is_some()
    }

    /// Signs `fields` (plus `nonce_str`, `sign_type`), POSTs them as XML
    /// and returns the verified answer of a call that fully succeeded
    /// (`return_code` and `result_code` SUCCESS).
    fn call(
        &self,
        ctx: &mut Ctx,
        path: &str,
        mut fields: Fields,
        client_identity: Option<Secret>,
    ) -> Result<Fields> {
        fields.insert("nonce_str".into(), ctx.nonce(32));
        fields.insert("sign_type".into(), self.sign_type.as_str().into());
        wire::put(&mut fields, "version", self.version);
        self.send_signed(ctx, path, fields, client_identity)
    }

    /// [`Self::call`] for papay's `querycontract` and `deletecontract`,
    /// which take no `nonce_str` (§13.7) and their own `version`; the
    /// `sign_type` is named only when it is not the default MD5.
    fn call_without_nonce(&self, ctx: &mut Ctx, path: &str, mut fields: Fields) -> Result<Fields> {
        if self.sign_type != SignType::Md5 {
            fields.insert("sign_type".into(), self.sign_type.as_str().into());
        }
        self.send_signed(ctx, path, fields, None)
    }

    /// Signs `fields` as they are, POSTs them and checks the answer.
    fn send_signed(
        &self,
        ctx: &mut Ctx,
        path: &str,
        mut fields: Fields,
        client_identity: Option<Secret>,
    ) -> Result<Fields> {
        let signature = sign::sign(ctx, self.sign_type, self.api_key, &fields)?;
        fields.insert("sign".into(), signature);
        let mut request = http::post(
            http::join(self.base_url, path),
            "text/xml",
            xml::encode("xml", &fields),
        );
        request.client_identity = client_identity;
        let response = ctx.send(request)?;

        if response.status != 200 {
            // WeChat answers protocol problems with 200 + XML; anything else
            // is its front end failing, which a retry may get past.
            return Err(Error::rejected(
                format!("HTTP_{}", response.status),
                format!("{path} answered HTTP {}", response.status),
                response.status >= 500 || response.status == 429,
            ));
        }
        let (_, reply) = xml::decode(&response.body)?;
        let what = format!("{path} response");
        if wire::required(&reply, "return_code", &what)? != "SUCCESS" {
            // Transport-level failure; such answers are not signed.
            let msg = wire::optional(&reply, "return_msg").unwrap_or("");
            return Err(Error::rejected(
                "FAIL",
                format!("{path}: return_msg `{msg}`"),
                false,
            ));
        }
        sign::verify(ctx, self.sign_type, self.api_key, &reply, &what)?;
        self.merchant
            .check(&reply, &what)
            .map_err(Error::malformed)?;
        if wire::required(&reply, "result_code", &what)? != "SUCCESS" {
            let code = wire::optional(&reply, "err_code").unwrap_or("FAIL");
            let des = wire::optional(&reply, "err_code_des").unwrap_or("");
            return Err(Error::rejected(
                code,
                format!("{path}: {des}"),
                wire::retryable(code),
            ));
        }
        Ok(reply)
    }

    /// The payer's id from a signed message: `sub_openid` in partner mode
    /// when present, else `openid`.
    fn payer_id(&self, fields: &Fields) -> Option<String> {
        self.partner()
            .then(|| wire::optional(fields, "sub_openid"))
            .flatten()
            .or_else(|| wire::optional(fields, "openid"))
            .map(String::from)
    }
}

impl Adapter for WechatV2 {
    fn describe() -> AdapterInfo {
        let field = field::config;
        AdapterInfo {
            name: "wechat-v2".into(),
            // The package version, so a build of this source under another
            // package version (tests/guests/wechat-v2-next) tells itself apart.
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
                payouts: false,
                payout_notifications: false,
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
                    "appid",
                    "AppID bound to mch_id (partner mode: the service provider's)",
                    FieldKind::Text,
                    true,
                    None,
                ),
                field(
                    "mch_id",
                    "Merchant id (partner mode: the service provider's)",
                    FieldKind::Text,
                    true,
                    None,
                ),
                field(
                    "api_key",
                    "The 32-character v2 API key from the merchant console",
                    FieldKind::Secret,
                    true,
                    None,
                ),
                field(
                    "sign_type",
                    "`MD5` or `HMAC-SHA256`",
                    FieldKind::Text,
                    false,
                    Some("MD5"),
                ),
                field(
                    "base_url",
                    "API host: api.mch.weixin.qq.com, api2 (backup) or apihk (overseas)",
                    FieldKind::Url,
                    false,
                    Some(DEFAULT_BASE_URL),
                ),
                field(
                    "sub_appid",
                    "Partner mode: the sub-merchant's mini-program AppID",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "sub_mch_id",
                    "Partner mode: the sub-merchant id; setting it enables partner mode",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "client_cert",
                    "PEM certificate and private key (apiclient_cert + apiclient_key) for refunds over mutual TLS",
                    FieldKind::Secret,
                    false,
                    None,
                ),
                field(
                    "region",
                    "`domestic` (CNY only) or `overseas` (the cross-border API: fee_type in the order's currency); default: from base_url (apihk/apius: overseas), else domestic",
                    FieldKind::Text,
                    false,
                    None,
                ),
                field(
                    "version",
                    "A `version` value sent on every request when set (some cross-border contracts show one); unset by default",
                    FieldKind::Text,
                    false,
                    None,
                ),
            ],
        }
    }

    fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
        let s = Settings::read(ctx)?;
        let trade_type = match req.method.as_str() {
            MINI_PROGRAM => "JSAPI",
            NATIVE => "NATIVE",
            other => {
                return Err(Error::unsupported(format!(
                    "method `{other}`: wechat-v2 offers {MINI_PROGRAM}, {NATIVE}"
                )));
            }
        };
        ORDER_NO.check(&req.merchant_order_no)?;
        DESCRIPTION.check(&req.description)?;
        if let Some(attach) = &req.attach {
            ATTACH.check(attach)?;
        }
        field::positive(req.amount.minor, "amount.minor")?;
        // Sent as `fee_type` always: the cross-border API requires it.
        s.check_currency(&req.amount.currency, "amount.currency")?;
        let client_ip = field::client_ip(&req.payer, "spbill_create_ip")?;
        let time_expire = match field::expiry(req.expires_at, ctx.timestamp())? {
            Some(at) => Some(
                time::format_compact(at, time::CHINA)
                    .map_err(|e| Error::invalid_request(format!("expires_at: {e}")))?,
            ),
            None => None,
        };
        let notify_url = field::notify_url_without_query(ctx.notify_url())?;

        // The mini-program paying: sub_appid in partner mode (§2.1), else appid.
        let pay_appid = s.merchant.sub_appid.unwrap_or(s.merchant.appid);
        let openid = if trade_type == "JSAPI" {
            Some(field::mini_program_openid(&req.payer, pay_appid)?)
        } else {
            None
        };
        let use_sub_openid = s.merchant.sub_appid.is_some();
        let body = wire::UnifiedOrder {
            body: &req.description,
            attach: req.attach.as_deref(),
            out_trade_no: &req.merchant_order_no,
            fee_type: &req.amount.currency,
            total_fee: req.amount.minor,
            spbill_create_ip: client_ip,
            time_expire,
            notify_url,
            trade_type,
            // NATIVE needs a product id; the order number identifies the product bought.
            product_id: (trade_type == "NATIVE").then_some(req.merchant_order_no.as_str()),
            openid: openid.filter(|_| !use_sub_openid),
            sub_openid: openid.filter(|_| use_sub_openid),
        };
        let reply = s.call(
            ctx,
            wire::UNIFIED_ORDER,
            body.into_fields(s.merchant.fields()),
            None,
        )?;

        let what = "unified order response";
        let order = OrderRef {
            merchant_order_no: req.merchant_order_no.clone(),
            provider_trade_no: None,
            channel_transaction_id: None,
        };
        let action = if trade_type == "NATIVE" {
            PayAction::QrCode(wire::required(&reply, "code_url", what)?.to_string())
        } else {
            let prepay_id = wire::required(&reply, "prepay_id", what)?;
            // §1.3: the five fields wx.requestPayment checks, then paySign.
            let mut params = Fields::new();
            params.insert("appId".into(), pay_appid.into());
            params.insert("timeStamp".into(), ctx.timestamp().to_string());
            params.insert("nonceStr".into(), ctx.nonce(32));
            params.insert("package".into(), format!("prepay_id={prepay_id}"));
            params.insert("signType".into(), s.sign_type.as_str().into());
            let pay_sign = sign::sign(ctx, s.sign_type, s.api_key, &params)?;
            let mut take = |k: &str| params.remove(k).unwrap_or_default();
            PayAction::MiniProgram(MiniProgramParams {
                app_id: take("appId"),
                time_stamp: take("timeStamp"),
                nonce_str: take("nonceStr"),
                package: take("package"),
                sign_type: take("signType"),
                pay_sign,
            })
        };
        Ok(OrderCreated { order, action })
    }

    fn query(ctx: &mut Ctx, req: &QueryRequest) -> Result<TradeStatus> {
        let s = Settings::read(ctx)?;
        let mut fields = s.merchant.fields();
        // Exactly one selector (§1.4); the transaction id is the stronger one.
        match req
            .order
            .channel_transaction_id
            .as_deref()
            .filter(|t| !t.is_empty())
        {
            Some(tx) => wire::put(&mut fields, "transaction_id", Some(tx)),
            None => {
                field::order_no(
                    &req.order.merchant_order_no,
                    "order.merchant_order_no",
                    1,
                    32,
                    "_-|*",
                )?;
                wire::put(
                    &mut fields,
                    "out_trade_no",
                    Some(&req.order.merchant_order_no),
                );
            }
        }
        let reply = s.call(ctx, wire::ORDER_QUERY, fields, None)?;

        let what = "order query response";
        let out_trade_no =
            wire::optional(&reply, "out_trade_no").unwrap_or(&req.order.merchant_order_no);
        if !req.order.merchant_order_no.is_empty() && out_trade_no != req.order.merchant_order_no {
            return Err(Error::malformed(format!(
                "{what} is for out_trade_no `{out_trade_no}`, not `{}`",
                req.order.merchant_order_no
            )));
        }
        let word = wire::required(&reply, "trade_state", what)?;
        let state = wire::trade_state(word)
            .ok_or_else(|| Error::malformed(format!("{what}: unknown trade_state `{word}`")))?;
        let amount = match wire::optional(&reply, "total_fee") {
            Some(_) => Some(s.total_fee(&reply, what)?),
            None => None,
        };
        Ok(TradeStatus {
            order: OrderRef {
                merchant_order_no: out_trade_no.to_string(),
                provider_trade_no: None,
                channel_transaction_id: wire::optional(&reply, "transaction_id")
                    .map(String::from)
                    .or_else(|| req.order.channel_transaction_id.clone()),
            },
            state,
            provider_state: word.to_string(),
            amount,
            paid_at: wire::time_end(&reply)?,
            payer_id: s.payer_id(&reply),
        })
    }

    /// §1.4: close by `out_trade_no`. `ORDERCLOSED` means closed already;
    /// `ORDERPAID` means the payer was faster, so the order is queried and
    /// its paid status (with the amount) answered instead.
    fn close(ctx: &mut Ctx, req: &CloseRequest) -> Result<TradeStatus> {
        let s = Settings::read(ctx)?;
        field::order_no(
            &req.order.merchant_order_no,
            "order.merchant_order_no",
            1,
            32,
            "_-|*",
        )?;
        let mut fields = s.merchant.fields();
        wire::put(
            &mut fields,
            "out_trade_no",
            Some(&req.order.merchant_order_no),
        );
        let closed = || TradeStatus {
            order: req.order.clone(),
            state: TradeState::Closed,
            provider_state: "CLOSED".into(),
            amount: None,
            paid_at: None,
            payer_id: None,
        };
        match s.call(ctx, wire::CLOSE_ORDER, fields, None) {
            Ok(_) => Ok(closed()),
            Err(e) => match rejection_code(&e) {
                Some("ORDERCLOSED") => Ok(closed()),
                Some("ORDERPAID") => Self::query(
                    ctx,
                    &QueryRequest {
                        order: req.order.clone(),
                    },
                ),
                _ => Err(e),
            },
        }
    }

    /// `/pay/refundquery` by `refund_id` when known, else `out_refund_no`.
    /// `REFUNDNOTEXIST` means WeChat never accepted the refund: nothing was
    /// refunded, so it is reported failed.
    fn refund_query(ctx: &mut Ctx, req: &RefundQueryRequest) -> Result<RefundStatus> {
        let s = Settings::read(ctx)?;
        REFUND_NO.check(&req.refund_no)?;
        let mut fields = s.merchant.fields();
        match req.provider_refund_id.as_deref().filter(|r| !r.is_empty()) {
            Some(id) => wire::put(&mut fields, "refund_id", Some(id)),
            None => wire::put(&mut fields, "out_refund_no", Some(&req.refund_no)),
        }
        let status = |state, word: &str, id: Option<&str>, amount| RefundStatus {
            order: req.order.clone(),
            refund_no: req.refund_no.clone(),
            provider_refund_id: id
                .map(String::from)
                .or_else(|| req.provider_refund_id.clone()),
            state,
            provider_state: word.into(),
            amount,
        };
        let reply = match s.call(ctx, wire::REFUND_QUERY, fields, None) {
            Ok(reply) => reply,
            Err(e) if rejection_code(&e) == Some("REFUNDNOTEXIST") => {
                return Ok(status(RefundState::Failed, "REFUNDNOTEXIST", None, None));
            }
            Err(e) => return Err(e),
        };
        let what = "refund query response";
        if let Some(no) = wire::optional(&reply, "out_trade_no")
            && no != req.order.merchant_order_no
        {
            return Err(Error::malformed(format!(
                "{what} is for out_trade_no `{no}`, not `{}`",
                req.order.merchant_order_no
            )));
        }
        let found = wire::queried_refund(&reply, &req.refund_no, what)?;
        let state = wire::refund_state(found.refund_status).ok_or_else(|| {
            Error::malformed(format!(
                "{what}: unknown refund_status `{}`",
                found.refund_status
            ))
        })?;
        let currency = s.region.currency(&reply, "fee_type", what)?;
        let amount = money::from_minor_str(found.refund_fee, currency)?;
        let mut st = status(state, found.refund_status, found.refund_id, Some(amount));
        if let Some(tx) = wire::optional(&reply, "transaction_id") {
            st.order.channel_transaction_id = Some(tx.into());
        }
        Ok(st)
    }

    fn refund(ctx: &mut Ctx, req: &RefundRequest) -> Result<RefundStatus> {
        let s = Settings::read(ctx)?;
        REFUND_NO.check(&req.refund_no)?;
        // Refunds are in the order's currency (refund_amount checks that),
        // stated as `refund_fee_type`, which the cross-border API requires.
        s.check_currency(&req.amount.currency, "amount.currency")?;
        field::refund_amount(&req.amount, &req.order_amount)?;
        let transaction_id = req
            .order
            .channel_transaction_id
            .as_deref()
            .filter(|t| !t.is_empty());
        if transaction_id.is_none() {
            field::order_no(
                &req.order.merchant_order_no,
                "order.merchant_order_no",
                1,
                32,
                "_-|*",
            )?;
        }
        let body = wire::Refund {
            transaction_id,
            // If both were sent WeChat would use transaction_id anyway (§1.5).
            out_trade_no: transaction_id
                .is_none()
                .then_some(req.order.merchant_order_no.as_str()),
            out_refund_no: &req.refund_no,
            total_fee: req.order_amount.minor,
            refund_fee: req.amount.minor,
            refund_fee_type: &req.amount.currency,
            refund_desc: req.reason.as_deref(),
            notify_url: ctx.notify_url(),
        };
        // WeChat refuses `/secapi/` without the merchant's client
        // certificate; said here, naming the field, rather than as the
        // provider's TLS-level refusal. Plain HTTP (a local simulator) has
        // no TLS to present one in.
        if s.client_cert.is_none() && s.base_url.starts_with("https://") {
            return Err(Error::invalid_config(
                "field `client_cert` is not set: refunds (`/secapi/pay/refund`) need the merchant's \
                 API certificate and key (apiclient_cert.pem + apiclient_key.pem, one PEM secret) \
                 for mutual TLS",
            ));
        }
        let reply = s.call(
            ctx,
            wire::REFUND,
            body.into_fields(s.merchant.fields()),
            s.client_cert,
        )?;

        let what = "refund response";
        if let Some(t) = wire::optional(&reply, "refund_fee_type")
            && t != req.amount.currency
        {
            return Err(Error::malformed(format!(
                "{what}: refund_fee_type `{t}` is not the refund's `{}`",
                req.amount.currency
            )));
        }
        let refund_fee = wire::optional(&reply, "refund_fee")
            .map(|fee| money::from_minor_str(fee, &req.amount.currency))
            .transpose()?;
        Ok(RefundStatus {
            order: OrderRef {
                merchant_order_no: wire::optional(&reply, "out_trade_no")
                    .unwrap_or(&req.order.merchant_order_no)
                    .to_string(),
                provider_trade_no: None,
                channel_transaction_id: wire::optional(&reply, "transaction_id")
                    .map(String::from)
                    .or(transaction_id.map(String::from)),
            },
            refund_no: req.refund_no.clone(),
            provider_refund_id: Some(wire::required(&reply, "refund_id", what)?.to_string()),
            // The synchronous answer only means "accepted" (§1.5).
            state: RefundState::Pending,
            provider_state: "SUCCESS".into(),
            amount: refund_fee,
        })
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
        let fail =
            |e: Error, msg: &str| e.with_ack(http::response(200, "text/xml", wire::ack_fail(msg)));
        let s = Settings::read(ctx)?;
        if req.method != HttpMethod::Post {
            return Err(fail(
                Error::invalid_request("notification must be a POST"),
                "POST required",
            ));
        }
        let (_, fields) = xml::decode(&req.body).map_err(|e| {
            fail(
                Error::invalid_request(format!("notification body: {e}")),
                "invalid XML",
            )
        })?;
        // One URL may serve all four (§13.6.2): a contract change says
        // `change_type`, a refund carries `req_info`, a deduction names its
        // contract.
        let outcome = if fields.contains_key("change_type") {
            papay::contract_notification(ctx, &s, &fields)
        } else if fields.contains_key("req_info") {
            refund_notification(ctx, &s, &fields)
        } else if fields.contains_key("contract_id") {
            papay::deduction_notification(ctx, &s, &fields)
        } else {
            payment_notification(ctx, &s, &fields)
        };
        let events = outcome.map_err(|e| match e.adapter_error() {
            Some(AdapterError::BadSignature(_)) => fail(e, "SIGNERROR"),
            _ => fail(e, "invalid notification"),
        })?;
        Ok(NotifyOutcome {
            events,
            ack: http::response(200, "text/xml", wire::ACK_SUCCESS),
        })
    }
}

/// §1.7: a signed XML notification of one payment.
fn payment_notification(ctx: &Ctx, s: &Settings, fields: &Fields) -> Result<Vec<NotifyEvent>> {
    let what = "payment notification";
    if wire::required(fields, "return_code", what).map_err(as_invalid)? != "SUCCESS" {
        // Carries no business data and no signature: nothing to apply.
        return Ok(vec![]);
    }
    let sign_type = match wire::optional(fields, "sign_type") {
        Some(t) => SignType::parse(t)
            .ok_or_else(|| Error::bad_signature(format!("{what}: unknown sign_type `{t}`")))?,
        None => s.sign_type,
    };
    sign::verify(ctx, sign_type, s.api_key, fields, what)?;
    s.merchant
        .check(fields, what)
        .map_err(Error::invalid_request)?;
    let out_trade_no = wire::required(fields, "out_trade_no", what).map_err(as_invalid)?;
    let paid = wire::required(fields, "result_code", what).map_err(as_invalid)? == "SUCCESS";
    let status = TradeStatus {
        order: OrderRef {
            merchant_order_no: out_trade_no.to_string(),
            provider_trade_no: None,
            channel_transaction_id: wire::optional(fields, "transaction_id").map(String::from),
        },
        state: if paid {
            TradeState::Paid
        } else {
            TradeState::Failed
        },
        provider_state: if paid {
            "SUCCESS"
        } else {
            wire::optional(fields, "err_code").unwrap_or("FAIL")
        }
        .to_string(),
        amount: Some(s.total_fee(fields, what).map_err(as_invalid)?),
        paid_at: if paid {
            wire::time_end(fields).map_err(as_invalid)?
        } else {
            None
        },
        payer_id: s.payer_id(fields),
    };
    if paid && status.order.channel_transaction_id.is_none() {
        return Err(Error::invalid_request(format!(
            "{what} for a paid order lacks `transaction_id`"
        )));
    }
    Ok(vec![NotifyEvent::Payment(status)])
}

/// §1.8: an unsigned notification whose `req_info` is encrypted with a key
/// derived from the API key; decrypting it is what authenticates it.
fn refund_notification(ctx: &Ctx, s: &Settings, fields: &Fields) -> Result<Vec<NotifyEvent>> {
    let what = "refund notification";
    if wire::required(fields, "return_code", what).map_err(as_invalid)? != "SUCCESS" {
        return Ok(vec![]);
    }
    s.merchant
        .check(fields, what)
        .map_err(Error::invalid_request)?;
    let ciphertext =
        encoding::base64_decode(wire::required(fields, "req_info", what).map_err(as_invalid)?)
            .map_err(|e| Error::invalid_request(format!("{what}: req_info: {e}")))?;
    let plain = ctx
        .aes_256_ecb_decrypt_md5_key(s.api_key, &ciphertext)
        .map_err(|_| {
            Error::bad_signature(format!(
                "{what}: req_info does not decrypt with the configured api_key"
            ))
        })?;
    let (root, info) = xml::decode(&plain)
        .map_err(|e| Error::invalid_request(format!("{what}: req_info: {e}")))?;
    if root != "root" {
        return Err(Error::invalid_request(format!(
            "{what}: req_info root is <{root}>, expected <root>"
        )));
    }
    let what = "refund notification req_info";
    let word = wire::required(&info, "refund_status", what).map_err(as_invalid)?;
    let state = wire::refund_state(word)
        .ok_or_else(|| Error::invalid_request(format!("{what}: unknown refund_status `{word}`")))?;
    Ok(vec![NotifyEvent::Refund(RefundStatus {
        order: OrderRef {
            merchant_order_no: wire::required(&info, "out_trade_no", what)
                .map_err(as_invalid)?
                .to_string(),
            provider_trade_no: None,
            channel_transaction_id: wire::optional(&info, "transaction_id").map(String::from),
        },
        refund_no: wire::required(&info, "out_refund_no", what)
            .map_err(as_invalid)?
            .to_string(),
        provider_refund_id: wire::optional(&info, "refund_id").map(String::from),
        state,
        provider_state: word.to_string(),
        // req_info names no currency, and guessing CNY would mislabel
        // overseas merchants' refunds; the host knows what it asked for.
        amount: None,
    })])
}

/// WeChat's `err_code` of a provider rejection.
fn rejection_code(e: &Error) -> Option<&str> {
    match e.adapter_error() {
        Some(AdapterError::ProviderRejected(r)) => Some(r.code.as_str()),
        _ => None,
    }
}

/// In a notification, a missing or malformed field is the sender's fault.
fn as_invalid(e: Error) -> Error {
    match e.adapter_error() {
        Some(AdapterError::MalformedResponse(m)) => Error::invalid_request(m.clone()),
        _ => e,
    }
}

payhost_sdk::export_adapter!(WechatV2);

#[cfg(test)]
mod tests;
