//! The wechat-v2 adapter, run natively by the SDK harness, against the
//! simulator over real HTTP: each side checks the other's signatures.

use payhost_sdk::http;
use payhost_sdk::testing::Harness;
use payhost_sdk::types::*;
use payhost_simulators::wechat_v2::{SignType, SimConfig, Simulator};
use std::sync::Arc;
use wechat_v2::WechatV2;

const APPID: &str = "wxd930ea5d5a258f4f";
const MCH_ID: &str = "10000100";
const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

struct Setup {
    rt: Arc<tokio::runtime::Runtime>,
    sim: Simulator,
}

fn setup(sign_type: SignType) -> Setup {
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap(),
    );
    let sim = rt.block_on(Simulator::start(SimConfig {
        sign_type,
        ..SimConfig::new(APPID, MCH_ID, KEY)
    }));
    Setup { rt, sim }
}

impl Setup {
    /// The adapter configured for the simulator's merchant; its requests go
    /// over HTTP to the simulator.
    fn adapter(&self, sign_type: &str) -> Harness<WechatV2> {
        let rt = self.rt.clone();
        let client = reqwest::Client::new();
        Harness::<WechatV2>::new()
            .text("appid", APPID)
            .text("mch_id", MCH_ID)
            .secret("api_key", KEY)
            .secret(
                "client_cert",
                "-----BEGIN CERTIFICATE-----\n(not checked by the simulator)",
            )
            .text("sign_type", sign_type)
            .text("base_url", &self.sim.base_url())
            .respond(move |req| {
                rt.block_on(async {
                    let resp = client
                        .post(&req.url)
                        .header("content-type", "text/xml")
                        .body(req.body.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = resp.status().as_u16();
                    http::response(status, "text/xml", resp.bytes().await.unwrap().to_vec())
                })
            })
    }
}

fn order(no: &str, fen: u64) -> OrderRequest {
    OrderRequest {
        merchant_order_no: no.into(),
        amount: Money {
            minor: fen,
            currency: "CNY".into(),
        },
        description: "Tea".into(),
        method: "wechat_mini_program".into(),
        payer: Payer {
            app_id: None,
            openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
            client_ip: Some("203.0.113.7".into()),
        },
        expires_at: None,
        attach: None,
    }
}

fn inbound(body: String) -> InboundHttp {
    InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/wechat-v2/m1".into(),
        query: String::new(),
        headers: vec![],
        body: body.into_bytes(),
    }
}

fn full_lifecycle(sign_type: SignType) {
    let s = setup(sign_type);
    let mut h = s.adapter(sign_type.as_str());

    let created = h.unified_order(&order("ORDER_LIFECYCLE_1", 1000)).unwrap();
    let PayAction::MiniProgram(p) = created.action else {
        panic!("{:?}", created.action)
    };
    assert!(p.package.starts_with("prepay_id=wx"));
    assert_eq!(p.sign_type, sign_type.as_str());
    // A retried operation (same seed, same fields) is accepted as the same order.
    let again = s
        .adapter(sign_type.as_str())
        .unified_order(&order("ORDER_LIFECYCLE_1", 1000))
        .unwrap();
    assert_eq!(again.action, PayAction::MiniProgram(p.clone()));

    let pending = h
        .query(&QueryRequest {
            order: created.order.clone(),
        })
        .unwrap();
    assert_eq!(pending.state, TradeState::Pending);

    let notification = s.sim.pay("ORDER_LIFECYCLE_1").unwrap();
    let out = h.parse_notify(&inbound(notification)).unwrap();
    let [NotifyEvent::Payment(paid)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(paid.state, TradeState::Paid);
    assert_eq!(
        paid.amount,
        Some(Money {
            minor: 1000,
            currency: "CNY".into()
        })
    );

    let queried = h
        .query(&QueryRequest {
            order: created.order.clone(),
        })
        .unwrap();
    assert_eq!(queried.state, TradeState::Paid);
    assert_eq!(
        queried.order.channel_transaction_id,
        paid.order.channel_transaction_id
    );
    assert_eq!(queried.paid_at, paid.paid_at);

    let refund = |no: &str, fen: u64| RefundRequest {
        order: queried.order.clone(),
        refund_no: no.into(),
        amount: Money {
            minor: fen,
            currency: "CNY".into(),
        },
        order_amount: Money {
            minor: 1000,
            currency: "CNY".into(),
        },
        reason: None,
    };
    let r1 = h.refund(&refund("REFUND_1", 600)).unwrap();
    assert_eq!(r1.state, RefundState::Pending);
    match h.refund(&refund("REFUND_2", 401)).unwrap_err() {
        AdapterError::ProviderRejected(r) => {
            assert_eq!((r.code.as_str(), r.retryable), ("NOTENOUGH", false))
        }
        other => panic!("{other:?}"),
    }
    let out = h
        .parse_notify(&inbound(s.sim.refund_notification("REFUND_1").unwrap()))
        .unwrap();
    let [NotifyEvent::Refund(settled)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(settled.state, RefundState::Succeeded);
    assert_eq!(settled.provider_refund_id, r1.provider_refund_id);
    assert_eq!(
        h.query(&QueryRequest {
            order: created.order
        })
        .unwrap()
        .state,
        TradeState::Refunded
    );

    // Every request the adapter sent passed the simulator's checks except the over-refund.
    let outcomes: Vec<String> = s.sim.requests().into_iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            "SUCCESS",
            "SUCCESS",
            "SUCCESS",
            "SUCCESS",
            "SUCCESS",
            "NOTENOUGH",
            "SUCCESS"
        ]
    );
}

#[test]
fn md5_merchant_full_lifecycle() {
    full_lifecycle(SignType::Md5);
}

#[test]
fn hmac_sha256_merchant_full_lifecycle() {
    full_lifecycle(SignType::HmacSha256);
}

#[test]
fn simulator_failures_reach_the_adapter_as_retryable_rejections() {
    let s = setup(SignType::Md5);
    s.sim.fail_next("SYSTEMERROR");
    match s
        .adapter("MD5")
        .unified_order(&order("ORDER_RETRY_1", 100))
        .unwrap_err()
    {
        AdapterError::ProviderRejected(r) => {
            assert_eq!((r.code.as_str(), r.retryable), ("SYSTEMERROR", true))
        }
        other => panic!("{other:?}"),
    }
    s.sim.answer_5xx_next();
    match s
        .adapter("MD5")
        .unified_order(&order("ORDER_RETRY_1", 100))
        .unwrap_err()
    {
        AdapterError::ProviderRejected(r) => {
            assert_eq!((r.code.as_str(), r.retryable), ("HTTP_503", true))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        s.adapter("MD5")
            .unified_order(&order("ORDER_RETRY_1", 100))
            .is_ok()
    );
    // A merchant whose key differs is refused by the simulator (SIGNERROR),
    // and the adapter reports it without the key.
    let mut wrong = s
        .adapter("MD5")
        .secret("api_key", "ffffffffffffffffffffffffffffffff");
    match wrong
        .unified_order(&order("ORDER_RETRY_2", 100))
        .unwrap_err()
    {
        AdapterError::BadSignature(m) => assert!(!m.contains("ffffffff"), "{m}"),
        other => panic!("{other:?}"),
    }
}
