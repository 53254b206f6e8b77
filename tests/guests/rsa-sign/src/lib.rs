//! A benchmark guest, not a provider: `unified_order` signs the order's
//! description with SHA256withRSA and returns the base64 signature as the
//! redirect URL, with no I/O.
//!
//! - With the secret field `private_key` it signs through the host
//!   (`secrets.rsa-sha256-sign`), as real adapters must.
//! - With the plain field `private_key_pem` it signs inside the sandbox with
//!   the `rsa` crate. That puts the key in the guest, which payhost forbids
//!   for real merchants; it exists only to measure what the host-side
//!   operation saves.

use payhost_sdk::prelude::*;

pub struct RsaSign;

fn sign_in_guest(pem: &str, message: &[u8]) -> Result<Vec<u8>> {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::sha2::{Digest, Sha256};
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .map_err(|_| Error::invalid_config("`private_key_pem` is not a PKCS#8 PEM key"))?;
    let hashed = Sha256::digest(message);
    key.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &hashed)
        .map_err(|_| Error::invalid_config("RSA signing failed"))
}

impl Adapter for RsaSign {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            name: "rsa-sign".into(),
            version: "0.1.0".into(),
            contract_version: CONTRACT_VERSION.into(),
            methods: vec!["benchmark".into()],
            currencies: vec!["CNY".into()],
            capabilities: Capabilities {
                payment_notifications: false,
                refund_notifications: false,
                partial_refunds: false,
                query_by_merchant_order_no: false,
                close: false,
                refund_query: false,
                payouts: false,
                payout_notifications: false,
                contracts: false,
                contract_notifications: false,
                deduction_notifications: false,
            },
            egress_hosts: vec![],
            field_rules: vec![],
            config_schema: vec![
                ConfigField {
                    name: "private_key".into(),
                    description: "PEM private key, signed with by the host".into(),
                    kind: FieldKind::Secret,
                    required: false,
                    default: None,
                },
                ConfigField {
                    name: "private_key_pem".into(),
                    description: "PEM private key handed to the guest (benchmark only)".into(),
                    kind: FieldKind::Text,
                    required: false,
                    default: None,
                },
            ],
        }
    }

    fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
        let message = req.description.as_bytes();
        let signature = match (
            ctx.config().secret_opt("private_key")?,
            ctx.config().text_opt("private_key_pem")?,
        ) {
            (Some(key), _) => ctx.rsa_sha256_sign(key, message)?,
            (None, Some(pem)) => sign_in_guest(pem, message)?,
            (None, None) => {
                return Err(Error::invalid_config(
                    "set `private_key` or `private_key_pem`",
                ));
            }
        };
        Ok(OrderCreated {
            order: OrderRef {
                merchant_order_no: req.merchant_order_no.clone(),
                provider_trade_no: None,
                channel_transaction_id: None,
            },
            action: PayAction::Redirect(encoding::base64_encode(&signature)),
        })
    }

    fn query(_: &mut Ctx, _: &QueryRequest) -> Result<TradeStatus> {
        Err(Error::unsupported("query"))
    }
    fn refund(_: &mut Ctx, _: &RefundRequest) -> Result<RefundStatus> {
        Err(Error::unsupported("refund"))
    }
    fn parse_notify(_: &mut Ctx, _: &InboundHttp) -> Result<NotifyOutcome> {
        Err(Error::unsupported("notify"))
    }
}

payhost_sdk::export_adapter!(RsaSign);
