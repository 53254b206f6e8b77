//! What `payhost adapter check` exists to catch, on purpose: the unified
//! order takes whatever the provider answers for a created order (a
//! garbage answer becomes a payment URL), and it traps on an empty answer
//! instead of naming it. Query, refund and notifications are honest
//! (`unsupported`), so the report fails on exactly these two.

use payhost_sdk::prelude::*;

pub struct GarbageTrusting;

impl Adapter for GarbageTrusting {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            name: "garbage-trusting".into(),
            version: "0.1.0".into(),
            contract_version: CONTRACT_VERSION.into(),
            methods: vec!["qr".into()],
            currencies: vec!["EUR".into()],
            capabilities: Capabilities {
                payment_notifications: false,
                refund_notifications: false,
                partial_refunds: false,
                query_by_merchant_order_no: true,
                close: false,
                refund_query: false,
                payouts: false,
                payout_notifications: false,
                contracts: false,
                contract_notifications: false,
                deduction_notifications: false,
            },
            egress_hosts: vec!["api.provider.example".into()],
            field_rules: vec![],
            config_schema: vec![ConfigField {
                name: "api_key".into(),
                description: "The provider's key".into(),
                kind: FieldKind::Secret,
                required: true,
                default: None,
            }],
        }
    }

    fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
        let answer = ctx.send(payhost_sdk::http::post(
            "https://api.provider.example/orders",
            "application/json",
            req.merchant_order_no.as_bytes().to_vec(),
        ))?;
        // The bug this guest is for: no check of status or shape.
        assert!(!answer.body.is_empty(), "the provider sent nothing");
        Ok(OrderCreated {
            order: OrderRef {
                merchant_order_no: req.merchant_order_no.clone(),
                provider_trade_no: None,
                channel_transaction_id: None,
            },
            action: PayAction::QrCode(
                String::from_utf8_lossy(&answer.body[..16.min(answer.body.len())]).into_owned(),
            ),
        })
    }
    fn query(_: &mut Ctx, _: &QueryRequest) -> Result<TradeStatus> {
        Err(Error::unsupported("query"))
    }
    fn refund(_: &mut Ctx, _: &RefundRequest) -> Result<RefundStatus> {
        Err(Error::unsupported("refund"))
    }
    fn parse_notify(_: &mut Ctx, _: &InboundHttp) -> Result<NotifyOutcome> {
        Err(Error::unsupported("notifications"))
    }
}

payhost_sdk::export_adapter!(GarbageTrusting);
