//! WeChat Pay v2 signatures ("安全规范 / 签名算法", providers.md §1.6).
//!
//! `stringA` is every non-empty field except `sign`, sorted by name and
//! joined as `k=v&...`; `stringSignTemp` is `stringA&key=API_KEY`. The
//! signature is the upper-case hex of `MD5(stringSignTemp)` or of
//! `HMAC-SHA256(API_KEY, stringSignTemp)`. The API key is only ever a
//! handle: the host splices it in and computes the digest.

use payhost_sdk::prelude::*;

/// The two algorithms a v2 merchant may choose (`sign_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignType {
    Md5,
    HmacSha256,
}

impl SignType {
    /// Reads a `sign_type` value as WeChat spells it.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "MD5" => Some(SignType::Md5),
            "HMAC-SHA256" => Some(SignType::HmacSha256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SignType::Md5 => "MD5",
            SignType::HmacSha256 => "HMAC-SHA256",
        }
    }
}

/// The signature of `fields` (any `sign` among them is ignored).
pub fn sign<'a, K, V>(
    ctx: &Ctx,
    sign_type: SignType,
    api_key: Secret,
    fields: impl IntoIterator<Item = (&'a K, &'a V)>,
) -> Result<String>
where
    K: AsRef<str> + ?Sized + 'a,
    V: AsRef<str> + ?Sized + 'a,
{
    let string_a = canonical::sorted_pairs(fields, &["sign"]);
    match sign_type {
        SignType::Md5 => canonical::md5_with_key(ctx, &string_a, api_key),
        // The key is both the HMAC key and still appended to the string.
        SignType::HmacSha256 => {
            let message = canonical::with_key(&string_a, api_key);
            let digest = ctx.hmac(DigestAlgorithm::Sha256, api_key, KeyEncoding::Raw, &message)?;
            Ok(encoding::hex_upper(&digest))
        }
    }
}

/// Checks the `sign` field of a received message. Every other field counts,
/// including ones this adapter does not know: WeChat adds fields over time.
pub fn verify(
    ctx: &Ctx,
    sign_type: SignType,
    api_key: Secret,
    fields: &xml::Fields,
    what: &str,
) -> Result<()> {
    let received = fields
        .get("sign")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad_signature(format!("{what} carries no `sign`")))?;
    let expected = sign(ctx, sign_type, api_key, fields)?;
    // WeChat writes upper case; accept either case, compare in constant time.
    if canonical::hex_signature_matches(received, &expected) {
        Ok(())
    } else {
        Err(Error::bad_signature(format!(
            "{what}: `sign` does not verify with the configured api_key ({})",
            sign_type.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    //! The published vectors of providers.md §1.10, through this module.
    use super::*;
    use payhost_sdk::testing::Harness;

    /// A `Ctx` exists only inside an operation, so a probe adapter runs
    /// `sign` / `verify` there: the order's `description` is the sign type,
    /// its `attach` the fields as XML; the result comes back as a QR code.
    struct Probe;
    impl Adapter for Probe {
        fn describe() -> AdapterInfo {
            crate::WechatV2::describe()
        }
        fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
            let key = ctx.config().secret("api_key")?;
            let sign_type = SignType::parse(&req.description).unwrap();
            let (_, fields) = xml::decode(req.attach.as_deref().unwrap().as_bytes())?;
            let out = if fields.contains_key("sign") {
                verify(ctx, sign_type, key, &fields, "probe").map(|()| "verified".to_string())?
            } else {
                sign(ctx, sign_type, key, &fields)?
            };
            let order = OrderRef {
                merchant_order_no: String::new(),
                provider_trade_no: None,
                channel_transaction_id: None,
            };
            Ok(OrderCreated {
                order,
                action: PayAction::QrCode(out),
            })
        }
        fn query(_: &mut Ctx, _: &QueryRequest) -> Result<TradeStatus> {
            unreachable!()
        }
        fn refund(_: &mut Ctx, _: &RefundRequest) -> Result<RefundStatus> {
            unreachable!()
        }
        fn parse_notify(_: &mut Ctx, _: &InboundHttp) -> Result<NotifyOutcome> {
            unreachable!()
        }
    }

    fn run(
        api_key: &str,
        sign_type: &str,
        fields: &[(&str, &str)],
    ) -> std::result::Result<String, AdapterError> {
        let mut order = crate::tests::mini_program_order();
        order.description = sign_type.into();
        order.attach = Some(xml::encode("xml", fields.iter().map(|(k, v)| (*k, *v))));
        let created = Harness::<Probe>::new()
            .secret("api_key", api_key)
            .unified_order(&order)?;
        match created.action {
            PayAction::QrCode(s) => Ok(s),
            other => panic!("{other:?}"),
        }
    }

    const DOC_KEY: &str = "192006250b4c09247ec02edce69f6a2d";
    const DOC_FIELDS: [(&str, &str); 5] = [
        ("appid", "wxd930ea5d5a258f4f"),
        ("mch_id", "10000100"),
        ("device_info", "1000"),
        ("body", "test"),
        ("nonce_str", "ibuaiVcKdpRxkhJA"),
    ];

    #[test]
    fn published_md5_vector() {
        assert_eq!(
            run(DOC_KEY, "MD5", &DOC_FIELDS).unwrap(),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
    }

    #[test]
    fn published_hmac_sha256_vector() {
        assert_eq!(
            run(DOC_KEY, "HMAC-SHA256", &DOC_FIELDS).unwrap(),
            "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
        );
    }

    #[test]
    fn published_mini_program_pay_sign_vector() {
        let fields = [
            ("appId", "wxd678efh567hg6787"),
            ("nonceStr", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
            ("package", "prepay_id=wx2017033010242291fcfe0db70013231072"),
            ("signType", "MD5"),
            ("timeStamp", "1490840662"),
        ];
        assert_eq!(
            run("qazwsxedcrfvtgbyhnujmikolp111111", "MD5", &fields).unwrap(),
            "22D9B4E54AB1950F51E0649E8810ACD6"
        );
    }

    #[test]
    fn verify_accepts_the_vector_and_rejects_changes() {
        let mut signed = DOC_FIELDS.to_vec();
        signed.push(("sign", "9A0A8659F005D6984697E2CA0A9CF3B7"));
        assert_eq!(run(DOC_KEY, "MD5", &signed).unwrap(), "verified");
        // Lower-case hex is the same signature.
        let mut lower = DOC_FIELDS.to_vec();
        lower.push(("sign", "9a0a8659f005d6984697e2ca0a9cf3b7"));
        assert_eq!(run(DOC_KEY, "MD5", &lower).unwrap(), "verified");
        // A changed field, an added unknown field, the wrong algorithm, the wrong key.
        let mut tampered = signed.clone();
        tampered[3] = ("body", "test2");
        let mut extra = signed.clone();
        extra.push(("zz_new_field", "1"));
        for (key, alg, fields) in [
            (DOC_KEY, "MD5", &tampered),
            (DOC_KEY, "MD5", &extra),
            (DOC_KEY, "HMAC-SHA256", &signed),
            ("another-key", "MD5", &signed),
        ] {
            let err = run(key, alg, fields).unwrap_err();
            assert!(matches!(err, AdapterError::BadSignature(_)), "{err:?}");
        }
    }
}
