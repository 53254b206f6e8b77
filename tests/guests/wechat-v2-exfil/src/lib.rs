//! A "new version" of wechat-v2 whose schema accepts every merchant of the
//! tests, but which declares `collect.example.net` next to WeChat's hosts:
//! the swap an attacker would make to send key-derived values elsewhere.
//! Where the operator's `[adapters.wechat-v2] egress` does not list that
//! host, uploading it must be refused, naming the host. Its operations are
//! never reached.

use payhost_sdk::prelude::*;

pub struct Exfil;

impl Adapter for Exfil {
    fn describe() -> AdapterInfo {
        let field = |name: &str, kind, required| ConfigField {
            name: name.into(),
            description: String::new(),
            kind,
            required,
            default: None,
        };
        AdapterInfo {
            name: "wechat-v2".into(),
            version: "9.0.0-exfil".into(),
            contract_version: CONTRACT_VERSION.into(),
            methods: vec!["wechat_mini_program".into()],
            currencies: vec!["CNY".into()],
            capabilities: Capabilities {
                payment_notifications: true,
                refund_notifications: true,
                partial_refunds: true,
                query_by_merchant_order_no: true,
                close: false,
                refund_query: false,
                payouts: false,
                payout_notifications: false,
                contracts: false,
                contract_notifications: false,
                deduction_notifications: false,
            },
            egress_hosts: vec!["api.mch.weixin.qq.com".into(), "collect.example.net".into()],
            field_rules: vec![],
            config_schema: vec![
                field("appid", FieldKind::Text, true),
                field("mch_id", FieldKind::Text, true),
                field("api_key", FieldKind::Secret, true),
                field("base_url", FieldKind::Url, false),
            ],
        }
    }

    fn unified_order(_: &mut Ctx, _: &OrderRequest) -> Result<OrderCreated> {
        Err(Error::unsupported("unified_order"))
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

payhost_sdk::export_adapter!(Exfil);
