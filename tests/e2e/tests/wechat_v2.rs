//! The built `wechat-v2` component, loaded into the sandboxed runtime, runs
//! all four operations against the WeChat Pay v2 simulator over real HTTP on
//! loopback. The simulator checks every signature and field as WeChat does.

use payhost::contract::{
    AdapterError, CallContext, FieldKind, HttpMethod, InboundHttp, Money, NotifyEvent, OrderRef,
    OrderRequest, PayAction, Payer, QueryRequest, RefundRequest, RefundState, TradeState,
};
use payhost::{CallError, LoadedAdapter, MerchantConfig, Operation, Output, Runtime};
use payhost_e2e::{component, test_config};
use payhost_sdk::canonical;
use payhost_sdk::native::{DigestAlgorithm, Part, SecretTable};
use payhost_simulators::wechat_v2::{SimConfig, Simulator};
use std::sync::Arc;

const APPID: &str = "wx2421b1c4370ec43b";
const MCH_ID: &str = "10000100";
const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

struct Setup {
    runtime: Runtime,
    adapter: Arc<LoadedAdapter>,
    merchant: MerchantConfig,
    sim: Simulator,
}

async fn setup() -> Setup {
    let sim = Simulator::start(SimConfig::new(APPID, MCH_ID, KEY)).await;
    let runtime = Runtime::new(test_config()).expect("runtime");
    let adapter = runtime
        .load(&component("wechat-v2"))
        .expect("load wechat-v2");
    let merchant = MerchantConfig::new("shop-1")
        .text("appid", APPID)
        .text("mch_id", MCH_ID)
        .secret("api_key", KEY)
        .text("base_url", sim.base_url());
    Setup {
        runtime,
        adapter,
        merchant,
        sim,
    }
}

fn ctx(seed: u64) -> CallContext {
    CallContext {
        request_id: format!("req-{seed}"),
        timestamp: 1_700_000_000,
        seed,
        notify_url: "http://127.0.0.1:9/v1/notify/wechat-v2/shop-1".into(),
    }
}

fn order(no: &str, fen: u64) -> OrderRequest {
    OrderRequest {
        merchant_order_no: no.into(),
        amount: Money {
            minor: fen,
            currency: "CNY".into(),
        },
        description: "Tea, 250 g".into(),
        method: "wechat_mini_program".into(),
        payer: Payer {
            app_id: Some(APPID.into()),
            openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
            client_ip: Some("203.0.113.7".into()),
        },
        expires_at: Some(1_700_001_800),
        attach: None,
    }
}

fn order_ref(no: &str) -> OrderRef {
    OrderRef {
        merchant_order_no: no.into(),
        provider_trade_no: None,
        channel_transaction_id: None,
    }
}

fn inbound(body: String) -> InboundHttp {
    InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/wechat-v2/shop-1".into(),
        query: String::new(),
        headers: vec![("content-type".into(), "text/xml".into())],
        body: body.into_bytes(),
    }
}

impl Setup {
    async fn call(&self, seed: u64, op: Operation) -> Result<Output, CallError> {
        self.runtime
            .call(&self.adapter, &self.merchant, ctx(seed), op)
            .await
    }
}

#[tokio::test]
async fn describe_reports_what_inspect_prints() {
    let s = setup().await;
    let info = &s.adapter.info;
    assert_eq!(info.name, "wechat-v2");
    assert_eq!(info.contract_version, "0.6.0");
    assert!(info.capabilities.close && info.capabilities.refund_query);
    assert!(
        info.currencies.iter().any(|c| c == "CNY"),
        "{:?}",
        info.currencies
    );
    assert!(!info.currencies.iter().any(|c| c == "XAU"));
    assert!(info.methods.contains(&"wechat_mini_program".to_string()));
    assert!(
        info.egress_hosts
            .contains(&"api.mch.weixin.qq.com".to_string())
    );
    assert!(info.capabilities.payment_notifications);
    let key = info
        .config_schema
        .iter()
        .find(|f| f.name == "api_key")
        .expect("api_key field");
    assert_eq!(key.kind, FieldKind::Secret);
    assert!(key.required && key.default.is_none());
    let base = info
        .config_schema
        .iter()
        .find(|f| f.name == "base_url")
        .expect("base_url field");
    assert_eq!(base.kind, FieldKind::Url);
    assert_eq!(s.adapter.digest.len(), 64);
}

#[tokio::test]
async fn order_pay_notify_query_refund_through_the_sandbox() {
    let s = setup().await;

    // 1. Unified order: wx.requestPayment parameters with a valid paySign.
    let Output::OrderCreated(created) = s
        .call(1, Operation::UnifiedOrder(order("ORDER-0001", 1999)))
        .await
        .unwrap()
    else {
        panic!("not an order")
    };
    let PayAction::MiniProgram(p) = created.action else {
        panic!("not mini-program params: {:?}", created.action)
    };
    assert_eq!(p.app_id, APPID);
    assert_eq!(p.time_stamp, "1700000000");
    assert!(p.package.starts_with("prepay_id="), "{}", p.package);
    assert_eq!(p.sign_type, "MD5");
    let string_a = canonical::sorted_pairs(
        [
            ("appId", p.app_id.as_str()),
            ("nonceStr", &p.nonce_str),
            ("package", &p.package),
            ("signType", &p.sign_type),
            ("timeStamp", &p.time_stamp),
        ],
        &[],
    );
    let mut t = SecretTable::new();
    let k = t.insert(KEY.as_bytes().to_vec());
    let expect = t
        .digest(
            DigestAlgorithm::Md5,
            &[Part::Text(&format!("{string_a}&key=")), Part::Secret(k)],
        )
        .unwrap();
    assert_eq!(
        p.pay_sign,
        hex::encode_upper(expect),
        "paySign must verify with the merchant key"
    );
    // The simulator accepted exactly one signed unified order.
    let reqs = s.sim.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        (reqs[0].path.as_str(), reqs[0].outcome.as_str()),
        ("/pay/unifiedorder", "SUCCESS")
    );
    assert!(
        !reqs[0].body.contains(KEY),
        "the API key must never be sent"
    );

    // 2. Not paid yet.
    let Output::TradeStatus(st) = s
        .call(
            2,
            Operation::Query(QueryRequest {
                order: order_ref("ORDER-0001"),
            }),
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(st.state, TradeState::Pending);

    // 3. The payer pays; WeChat's notification is verified in the sandbox.
    let notification = s.sim.pay("ORDER-0001").unwrap();
    let Output::Notify(outcome) = s
        .call(3, Operation::ParseNotify(inbound(notification)))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(outcome.ack.status, 200);
    assert_eq!(
        String::from_utf8(outcome.ack.body.clone()).unwrap(),
        "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
    );
    let [NotifyEvent::Payment(paid)] = outcome.events.as_slice() else {
        panic!("{:?}", outcome.events)
    };
    assert_eq!(paid.state, TradeState::Paid);
    assert_eq!(
        paid.amount,
        Some(Money {
            minor: 1999,
            currency: "CNY".into()
        })
    );
    let transaction_id = paid
        .order
        .channel_transaction_id
        .clone()
        .expect("transaction id");

    // 4. Query agrees.
    let Output::TradeStatus(st) = s
        .call(
            4,
            Operation::Query(QueryRequest {
                order: order_ref("ORDER-0001"),
            }),
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(
        st.order.channel_transaction_id.as_deref(),
        Some(transaction_id.as_str())
    );

    // 5. Partial refund, then its encrypted notification.
    let refund = RefundRequest {
        order: OrderRef {
            channel_transaction_id: Some(transaction_id),
            ..order_ref("ORDER-0001")
        },
        refund_no: "R-0001".into(),
        amount: Money {
            minor: 500,
            currency: "CNY".into(),
        },
        order_amount: Money {
            minor: 1999,
            currency: "CNY".into(),
        },
        reason: Some("one item returned".into()),
    };
    let Output::RefundStatus(rs) = s.call(5, Operation::Refund(refund.clone())).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(
        rs.state,
        RefundState::Pending,
        "WeChat's synchronous answer only means accepted"
    );
    let refund_note = s.sim.refund_notification("R-0001").unwrap();
    let Output::Notify(outcome) = s
        .call(6, Operation::ParseNotify(inbound(refund_note)))
        .await
        .unwrap()
    else {
        panic!()
    };
    let [NotifyEvent::Refund(done)] = outcome.events.as_slice() else {
        panic!("{:?}", outcome.events)
    };
    assert_eq!(
        (done.refund_no.as_str(), done.state),
        ("R-0001", RefundState::Succeeded)
    );

    // 6. Refunding more than what is left is refused by the provider.
    let too_much = RefundRequest {
        refund_no: "R-0002".into(),
        amount: Money {
            minor: 1500,
            currency: "CNY".into(),
        },
        ..refund
    };
    match s.call(7, Operation::Refund(too_much)).await {
        Err(CallError::Adapter {
            error: AdapterError::ProviderRejected(r),
            ..
        }) => assert_eq!(r.code, "NOTENOUGH"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn forged_notification_is_refused_with_the_fail_ack() {
    let s = setup().await;
    s.call(1, Operation::UnifiedOrder(order("ORDER-0002", 100)))
        .await
        .unwrap();
    let genuine = s.sim.pay("ORDER-0002").unwrap();
    // Raise the amount without re-signing, as a forger would.
    let forged = genuine.replace("<total_fee>100</total_fee>", "<total_fee>1</total_fee>");
    assert_ne!(forged, genuine, "the notification carries total_fee");
    match s.call(2, Operation::ParseNotify(inbound(forged))).await {
        Err(CallError::Adapter {
            error: AdapterError::BadSignature(_),
            ack: Some(ack),
        }) => {
            assert!(String::from_utf8(ack.body).unwrap().contains("FAIL"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn provider_errors_and_wrong_keys_are_typed() {
    let s = setup().await;
    s.sim.fail_next("SYSTEMERROR");
    match s
        .call(1, Operation::UnifiedOrder(order("ORDER-0003", 100)))
        .await
    {
        Err(CallError::Adapter {
            error: AdapterError::ProviderRejected(r),
            ..
        }) => {
            assert_eq!(r.code, "SYSTEMERROR");
            assert!(r.retryable, "WeChat says to retry SYSTEMERROR unchanged");
        }
        other => panic!("{other:?}"),
    }
    // Retrying the identical order succeeds.
    s.call(1, Operation::UnifiedOrder(order("ORDER-0003", 100)))
        .await
        .unwrap();

    // A merchant configured with the wrong key is refused by WeChat, and
    // the error does not echo either key.
    let wrong = MerchantConfig::new("shop-1")
        .text("appid", APPID)
        .text("mch_id", MCH_ID)
        .secret("api_key", "ffffffffffffffffffffffffffffffff")
        .text("base_url", s.sim.base_url());
    let err = s
        .runtime
        .call(
            &s.adapter,
            &wrong,
            ctx(2),
            Operation::UnifiedOrder(order("ORDER-0004", 100)),
        )
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains(KEY) && !text.contains("ffffffffffffffffffffffffffffffff"),
        "{text}"
    );
    assert!(matches!(err, CallError::Adapter { .. }), "{err:?}");
    assert_eq!(s.sim.requests().last().unwrap().outcome, "SIGNERROR");
}

#[tokio::test]
async fn bad_input_is_named_before_anything_is_sent() {
    let s = setup().await;
    let mut o = order("ORDER-0005", 100);
    o.payer.openid = None;
    match s.call(1, Operation::UnifiedOrder(o)).await {
        Err(CallError::Adapter {
            error: AdapterError::InvalidRequest(m),
            ..
        }) => assert!(m.contains("openid"), "{m}"),
        other => panic!("{other:?}"),
    }
    let missing_key = MerchantConfig::new("shop-2")
        .text("appid", APPID)
        .text("mch_id", MCH_ID);
    match s
        .runtime
        .call(
            &s.adapter,
            &missing_key,
            ctx(2),
            Operation::UnifiedOrder(order("ORDER-0006", 100)),
        )
        .await
    {
        Err(CallError::InvalidConfig(e)) => {
            let m = e.to_string();
            assert!(m.contains("shop-2") && m.contains("api_key"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(s.sim.requests().is_empty());
}

/// A mini-program order created through `adapter` (an older contract's
/// bindings), paid at the simulator, and its notification verified.
async fn ordered_and_paid(s: &Setup, adapter: &LoadedAdapter, no: &str) {
    let call = |seed, op| s.runtime.call(adapter, &s.merchant, ctx(seed), op);
    let Output::OrderCreated(created) = call(1, Operation::UnifiedOrder(order(no, 1999)))
        .await
        .expect("unified order through the older bindings")
    else {
        panic!("not an order")
    };
    assert!(matches!(created.action, PayAction::MiniProgram(_)));
    let notification = s.sim.pay(no).unwrap();
    let Output::Notify(outcome) = call(2, Operation::ParseNotify(inbound(notification)))
        .await
        .unwrap()
    else {
        panic!("not a notify outcome")
    };
    assert!(
        matches!(&outcome.events[..], [NotifyEvent::Payment(p)] if p.state == TradeState::Paid)
    );
}

/// A build of wechat-v2 made against contract 0.4.0, kept as a fixture:
/// it serves through the 0.4 bindings with its required fields, is paid
/// by notification, and offers no payouts (0.5 added them): its
/// capabilities say so and both payout operations answer `unsupported`
/// naming its contract, without reaching the provider.
#[tokio::test]
async fn a_component_built_against_contract_0_4_still_serves_and_has_no_payouts() {
    let s = setup().await;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/wechat-v2-contract-0.4.0.wasm");
    let old = s
        .runtime
        .load(&std::fs::read(&fixture).expect("the 0.4.0 fixture"))
        .expect("a 0.4.0 component loads");
    assert_eq!(old.info.contract_version, "0.4.0");
    assert!(old.info.currencies.contains(&"CNY".to_string()));
    assert!(
        old.info
            .field_rules
            .iter()
            .any(|r| r.field == "payer.openid" && !r.required_for.is_empty()),
        "0.4 rules come through with required-for"
    );
    assert!(!old.info.capabilities.payouts && !old.info.capabilities.payout_notifications);
    assert!(old.info.capabilities.close && old.info.capabilities.refund_query);

    ordered_and_paid(&s, &old, "OLD4-0001").await;
    let call = |seed, op| s.runtime.call(&old, &s.merchant, ctx(seed), op);

    let sent = s.sim.requests().len();
    let payout_ref = payhost::contract::PayoutRef {
        merchant_payout_no: "P4-0001".into(),
        provider_payout_id: None,
    };
    for op in [
        Operation::Payout(payhost::contract::PayoutRequest {
            merchant_payout_no: "P4-0001".into(),
            amount: payhost::contract::Money {
                minor: 100,
                currency: "CNY".into(),
            },
            payee: payhost::contract::Payee {
                app_id: "wxd678efh567hg6787".into(),
                openid: "o-payee".into(),
                real_name: None,
            },
            remark: "reward".into(),
            scene: None,
        }),
        Operation::PayoutQuery(payhost::contract::PayoutQueryRequest { payout: payout_ref }),
    ] {
        match call(3, op).await {
            Err(CallError::Adapter {
                error: AdapterError::Unsupported(m),
                ..
            }) => assert!(m.contains("0.4.0"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(s.sim.requests().len(), sent, "nothing reached the provider");
}

/// A build of wechat-v2 made against contract 0.3.0, kept as a fixture:
/// it serves through the 0.3 bindings, keeps its currencies and field
/// limits, and requires nothing (0.4 added `required-for`), so a missing
/// openid is still its own refusal.
#[tokio::test]
async fn a_component_built_against_contract_0_3_still_serves_with_its_rules() {
    let s = setup().await;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/wechat-v2-contract-0.3.0.wasm");
    let old = s
        .runtime
        .load(&std::fs::read(&fixture).expect("the 0.3.0 fixture"))
        .expect("a 0.3.0 component loads");
    assert_eq!(old.info.contract_version, "0.3.0");
    assert!(old.info.currencies.contains(&"CNY".to_string()));
    let order_no = old
        .info
        .field_rules
        .iter()
        .find(|r| r.field == "merchant_order_no")
        .expect("0.3 rules come through");
    assert_eq!((order_no.min_length, order_no.max_length), (6, 32));
    assert!(
        old.info
            .field_rules
            .iter()
            .all(|r| r.required_for.is_empty())
    );

    let call = |seed, op| s.runtime.call(&old, &s.merchant, ctx(seed), op);
    let Output::OrderCreated(created) = call(1, Operation::UnifiedOrder(order("OLD3-0001", 1999)))
        .await
        .expect("unified order through the 0.3 bindings")
    else {
        panic!("not an order")
    };
    assert!(matches!(created.action, PayAction::MiniProgram(_)));
    let Output::TradeStatus(closed) = call(
        2,
        Operation::Close(payhost::contract::CloseRequest {
            order: order_ref("OLD3-0001"),
        }),
    )
    .await
    .expect("close through the 0.3 bindings") else {
        panic!("not a trade status")
    };
    assert_eq!(closed.state, TradeState::Closed);
}

/// A build of wechat-v2 made against contract 0.2.0, kept as a fixture:
/// it serves all six operations through the 0.2 bindings and lists no
/// currencies (0.3 added them), so the host takes the merchant's on trust.
#[tokio::test]
async fn a_component_built_against_contract_0_2_still_serves_every_operation() {
    let s = setup().await;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/wechat-v2-contract-0.2.0.wasm");
    let old = s
        .runtime
        .load(&std::fs::read(&fixture).expect("the 0.2.0 fixture"))
        .expect("a 0.2.0 component loads");
    assert_eq!(old.info.contract_version, "0.2.0");
    assert!(old.info.currencies.is_empty());
    assert!(old.info.capabilities.close && old.info.capabilities.refund_query);

    let call = |seed, op| s.runtime.call(&old, &s.merchant, ctx(seed), op);
    let Output::OrderCreated(created) = call(1, Operation::UnifiedOrder(order("OLD2-0001", 1999)))
        .await
        .expect("unified order through the 0.2 bindings")
    else {
        panic!("not an order")
    };
    assert!(matches!(created.action, PayAction::MiniProgram(_)));
    // What 0.2 added over 0.1 goes through too: close reaches the provider.
    let Output::TradeStatus(closed) = call(
        2,
        Operation::Close(payhost::contract::CloseRequest {
            order: order_ref("OLD2-0001"),
        }),
    )
    .await
    .expect("close through the 0.2 bindings") else {
        panic!("not a trade status")
    };
    assert_eq!(closed.state, TradeState::Closed);
    assert!(s.sim.requests().iter().any(|r| r.path == "/pay/closeorder"));
}

/// A build of wechat-v2 made against contract 0.1.0, kept as a fixture:
/// it still loads and serves its four operations; what 0.2 added answers
/// `unsupported` and its capabilities say so.
#[tokio::test]
async fn a_component_built_against_contract_0_1_still_serves() {
    let s = setup().await;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/wechat-v2-contract-0.1.0.wasm");
    let old = s
        .runtime
        .load(&std::fs::read(&fixture).expect("the 0.1.0 fixture"))
        .expect("a 0.1.0 component loads");
    assert_eq!(old.info.contract_version, "0.1.0");
    assert!(!old.info.capabilities.close && !old.info.capabilities.refund_query);
    assert!(old.info.capabilities.refund_notifications);

    ordered_and_paid(&s, &old, "OLD-0001").await;
    let call = |seed, op| s.runtime.call(&old, &s.merchant, ctx(seed), op);

    for op in [
        Operation::Close(payhost::contract::CloseRequest {
            order: order_ref("OLD-0001"),
        }),
        Operation::RefundQuery(payhost::contract::RefundQueryRequest {
            order: order_ref("OLD-0001"),
            refund_no: "R1".into(),
            provider_refund_id: None,
        }),
    ] {
        match call(3, op).await {
            Err(CallError::Adapter {
                error: AdapterError::Unsupported(m),
                ..
            }) => assert!(m.contains("0.1.0"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

// ------------------------------------------------------------ overseas, through the HTTP API

use payhost_e2e::front::{self, Front, Options};
use payhost_simulators::wechat_v2::{Overseas, RefundSettle};
use serde_json::json;

const HK_KEY: &str = "pk_test_shop_hk_51c0";

/// A cross-border v2 merchant (`region = "overseas"`: the simulator is on
/// loopback, not apihk) taking EUR, in front of the simulator acting as
/// the cross-border API, which insists on `fee_type` and `refund_fee_type`.
#[tokio::test]
async fn an_overseas_v2_merchant_is_paid_notified_and_refunded_in_eur() {
    let sim = Simulator::start(SimConfig {
        overseas: Some(Overseas::default()),
        refund_settle: RefundSettle::After(std::time::Duration::from_millis(200)),
        ..front::sim_config()
    })
    .await;
    let options = Options {
        // The front's merchant template, in EUR and overseas.
        extra_toml: front::wechat_v2_merchant("shop-hk", HK_KEY, "$SIM_URL")
            .replace("currency = \"CNY\"", "currency = \"EUR\"")
            + "region = \"overseas\"\n\n[merchants.limits]\ncny_rate = \"0.1300\"\n",
        ..Options::default()
    };
    let f = Front::start_with_simulator("wechat-v2-overseas", options, sim).await;
    let mut order = front::order_body("HKEUR0001", 2499);
    order["currency"] = "EUR".into();
    let (status, created) = f
        .call_as(HK_KEY, reqwest::Method::POST, "/v1/payments", Some(order))
        .await;
    assert_eq!(status, 201, "{created}");
    let truth = f.sim.truth();
    assert_eq!(truth.orders["HKEUR0001"].fee_type, "EUR");

    // The payer pays in CNY at the rate; the notification says both sides.
    assert!(f.sim.pay_and_notify("HKEUR0001").unwrap());
    let p = f
        .wait_for_as(HK_KEY, "/v1/payments/HKEUR0001", "state", "paid")
        .await;
    assert_eq!(
        (p["amount"].as_i64(), p["currency"].as_str()),
        (Some(2499), Some("EUR")),
        "{p}"
    );
    let (_, p) = f
        .call_as(
            HK_KEY,
            reqwest::Method::GET,
            "/v1/payments/HKEUR0001?refresh=true",
            None,
        )
        .await;
    assert_eq!(p["state"], "paid", "{p}");

    // A partial refund, in the order's currency, settled by its notification.
    let (status, r) = f
        .call_as(
            HK_KEY,
            reqwest::Method::POST,
            "/v1/payments/HKEUR0001/refunds",
            Some(json!({"refund_no": "HKR1", "amount": 1000})),
        )
        .await;
    assert_eq!((status, r["currency"].as_str()), (201, Some("EUR")), "{r}");
    f.wait_for_as(
        HK_KEY,
        "/v1/payments/HKEUR0001/refunds/HKR1",
        "state",
        "succeeded",
    )
    .await;
    let (_, p) = f
        .call_as(HK_KEY, reqwest::Method::GET, "/v1/payments/HKEUR0001", None)
        .await;
    assert_eq!(
        (p["state"].as_str(), p["refunded_amount"].as_i64()),
        (Some("partially_refunded"), Some(1000)),
        "{p}"
    );
    let refund = f
        .sim
        .requests()
        .into_iter()
        .find(|r| r.path == "/secapi/pay/refund")
        .and_then(|r| r.fields)
        .expect("the refund reached the simulator");
    assert_eq!(refund["refund_fee_type"], "EUR");
    assert_eq!(f.sim.truth().refunds["HKR1"].refund_fee, 1000);
}

const SP_KEY: &str = "pk_test_shop_sp_7a21";

/// A service provider's sub-merchant (`v2sp`) through payhost's API: the
/// simulator is the provider's account and insists on the sub-merchant.
#[tokio::test]
async fn a_v2_partner_sub_merchant_is_paid_notified_queried_and_refunded() {
    let sim = Simulator::start(SimConfig {
        sub_mch_id: Some("1900000109".into()),
        refund_settle: RefundSettle::After(std::time::Duration::from_millis(200)),
        ..front::sim_config()
    })
    .await;
    let options = Options {
        extra_toml: front::wechat_v2_merchant("shop-sp", SP_KEY, "$SIM_URL")
            + "sub_mch_id = \"1900000109\"\nsub_appid = \"wxsub0000000000001\"\n",
        ..Options::default()
    };
    let f = Front::start_with_simulator("wechat-v2-partner", options, sim).await;
    let mut order = front::order_body("SPORDER01", 1999);
    order["payer"]["app_id"] = "wxsub0000000000001".into();
    let (status, created) = f
        .call_as(SP_KEY, reqwest::Method::POST, "/v1/payments", Some(order))
        .await;
    assert_eq!(status, 201, "{created}");
    // wx.requestPayment runs in the sub-merchant's mini-program.
    assert_eq!(
        created["pay_action"]["params"]["appId"],
        "wxsub0000000000001"
    );
    let sent = f
        .sim
        .requests()
        .into_iter()
        .find(|r| r.path == "/pay/unifiedorder")
        .and_then(|r| r.fields)
        .unwrap();
    assert_eq!(sent["sub_openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");

    assert!(f.sim.pay_and_notify("SPORDER01").unwrap());
    f.wait_for_as(SP_KEY, "/v1/payments/SPORDER01", "state", "paid")
        .await;
    let (_, p) = f
        .call_as(
            SP_KEY,
            reqwest::Method::GET,
            "/v1/payments/SPORDER01?refresh=true",
            None,
        )
        .await;
    assert_eq!(p["state"], "paid", "{p}");
    let (status, r) = f
        .call_as(
            SP_KEY,
            reqwest::Method::POST,
            "/v1/payments/SPORDER01/refunds",
            Some(json!({"refund_no": "SPR1", "amount": 999})),
        )
        .await;
    assert_eq!(status, 201, "{r}");
    f.wait_for_as(
        SP_KEY,
        "/v1/payments/SPORDER01/refunds/SPR1",
        "state",
        "succeeded",
    )
    .await;
    let (_, p) = f
        .call_as(SP_KEY, reqwest::Method::GET, "/v1/payments/SPORDER01", None)
        .await;
    assert_eq!(p["refunded_amount"], 999, "{p}");
    // Every request named the sub-merchant (the simulator refuses others).
    assert!(f.sim.requests().iter().all(|r| r.outcome == "SUCCESS"));
}

/// MD5 v2 signature of `pairs` with the merchant key, test-side.
fn md5_sign(pairs: &[(&str, &str)]) -> String {
    let string_a = canonical::sorted_pairs(pairs.iter().map(|(k, v)| (*k, *v)), &["sign"]);
    let mut t = SecretTable::new();
    let k = t.insert(KEY.as_bytes().to_vec());
    let digest = t
        .digest(
            DigestAlgorithm::Md5,
            &[Part::Text(&format!("{string_a}&key=")), Part::Secret(k)],
        )
        .unwrap();
    hex::encode_upper(digest)
}

/// Contract 0.6 across the component boundary: the sandboxed wechat-v2
/// answers `contract-sign` with WeChat's signing mini-program and signed
/// `extraData` (no call to WeChat), and turns a signed contract
/// notification into a `contract` event; a forged one is refused.
#[tokio::test]
async fn papay_signing_and_its_notification_cross_the_sandbox() {
    use payhost::contract::{
        ContractPayer, ContractSignRequest, ContractState, HttpResponse, SignAction,
    };
    let s = setup().await;
    assert!(s.adapter.info.capabilities.contracts);
    let call = |seed, op| s.runtime.call(&s.adapter, &s.merchant, ctx(seed), op);
    let out = call(
        1,
        Operation::ContractSign(ContractSignRequest {
            merchant_contract_no: "C0001".into(),
            plan_id: "106".into(),
            payer: ContractPayer {
                app_id: APPID.into(),
                openid: None,
                client_ip: None,
            },
            display_name: "张三".into(),
            return_url: None,
        }),
    )
    .await
    .unwrap();
    let Output::ContractSigning(signing) = out else {
        panic!("{out:?}")
    };
    let SignAction::MiniProgramNavigation(nav) = signing.action else {
        panic!("not a navigation")
    };
    assert_eq!(nav.app_id, "wxbd687630cd02ce1d");
    let pairs: Vec<(&str, &str)> = nav
        .extra_data
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let sign = pairs.iter().find(|(k, _)| *k == "sign").unwrap().1;
    assert_eq!(
        sign,
        md5_sign(&pairs),
        "extraData signed with the merchant key"
    );
    assert!(s.sim.requests().is_empty(), "signing calls no WeChat API");

    let mut notification = vec![
        ("return_code", "SUCCESS"),
        ("result_code", "SUCCESS"),
        ("mch_id", MCH_ID),
        ("contract_code", "C0001"),
        ("openid", "o-payer"),
        ("plan_id", "106"),
        ("change_type", "ADD"),
        ("operate_time", "2026-12-03 10:00:00"),
        ("contract_id", "Wx1546"),
    ];
    let signature = md5_sign(&notification);
    notification.push(("sign", &signature));
    let body = |pairs: &[(&str, &str)]| {
        let fields: payhost_sdk::xml::Fields = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        payhost_sdk::xml::encode("xml", &fields).into_bytes()
    };
    let inbound = |body: Vec<u8>| {
        Operation::ParseNotify(InboundHttp {
            method: HttpMethod::Post,
            path: "/v1/notify/wechat-v2/shop-1".into(),
            query: String::new(),
            headers: vec![("content-type".into(), "text/xml".into())],
            body,
        })
    };
    let Output::Notify(outcome) = call(2, inbound(body(&notification))).await.unwrap() else {
        panic!("not a notify outcome")
    };
    assert!(matches!(
        &outcome.events[..],
        [NotifyEvent::Contract(c)] if c.state == ContractState::Active
            && c.contract.provider_contract_id.as_deref() == Some("Wx1546")
    ));
    let forged: Vec<(&str, &str)> = notification
        .iter()
        .map(|&(k, v)| {
            if k == "openid" {
                (k, "o-thief")
            } else {
                (k, v)
            }
        })
        .collect();
    match call(3, inbound(body(&forged))).await {
        Err(CallError::Adapter {
            error: AdapterError::BadSignature(_),
            ack: Some(HttpResponse { status: 200, .. }),
        }) => {}
        other => panic!("{other:?}"),
    }
}
