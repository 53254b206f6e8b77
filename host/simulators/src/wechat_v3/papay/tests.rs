//! WeChat Pay Global papay driven by the real wechat-v3 adapter, run
//! natively by the SDK harness over real HTTP: the simulator checks the
//! adapter's request signatures, the adapter the simulator's answer and
//! notification signatures, and notifications reach a merchant endpoint
//! before the adapter parses them.

use super::super::tests::{config, fixture};
use super::*;
use ::wechat_v3::WechatV3;
use axum::http::HeaderMap;
use payhost_sdk::Adapter;
use payhost_sdk::testing::Harness;
use payhost_sdk::types::{
    AdapterError, ContractPayer, ContractQueryRequest, ContractRef, ContractSignRequest,
    ContractState, ContractStatus, ContractTerminateRequest, DeductionQueryRequest,
    DeductionRequest, DeductionState, DeductionStatus, HttpMethod, InboundHttp, Money, NotifyEvent,
    SignAction,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const APPID: &str = "wx8888888888888888";
const MCHID: &str = "1900000001";
const SERIAL: &str = "PUB_KEY_ID_0112345678902025010100000000000001";
const PLAN: u64 = 12535;
const OPENID: &str = "ouFhd5X9s9WteC3eWRjXV3lea123";

type Received = Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>;

struct Fx {
    rt: Arc<tokio::runtime::Runtime>,
    sim: Simulator,
    notify_url: String,
    got: Received,
}

fn fx() -> Fx {
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap(),
    );
    let sim = rt.block_on(Simulator::start_global(config(None)));
    let got: Received = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let notify_url = rt.block_on(async move {
        let app =
            axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let headers = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                        .collect();
                    sink.lock().unwrap().push((headers, body.to_vec()));
                    (StatusCode::OK, "")
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/v1/notify/wechat-v3/m1",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    });
    Fx {
        rt,
        sim,
        notify_url,
        got,
    }
}

impl Fx {
    /// The adapter for the simulator's global merchant, without papay.
    fn plain_adapter(&self) -> Harness<WechatV3> {
        let rt = self.rt.clone();
        let client = reqwest::Client::new();
        Harness::<WechatV3>::new()
            .text("mode", "global")
            .text("mchid", MCHID)
            .text("appid", APPID)
            .text(
                "merchant_serial_no",
                "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
            )
            .secret("private_key", &fixture("sdk-test.key.pem"))
            .secret("api_v3_key", "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb")
            .text("wechatpay_public_key_id", SERIAL)
            .text("wechatpay_public_key", &fixture("sdk-test.pub.pem"))
            .text("base_url", &self.sim.base_url())
            .notify_url(&self.notify_url)
            .timestamp(now())
            .respond(move |req| {
                rt.block_on(async {
                    let mut r = match req.method {
                        HttpMethod::Get => client.get(&req.url),
                        _ => client.post(&req.url).body(req.body.clone()),
                    };
                    for (k, v) in &req.headers {
                        r = r.header(k, v);
                    }
                    let resp = r.send().await.unwrap();
                    let status = resp.status().as_u16();
                    let headers = resp
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                        .collect();
                    payhost_sdk::types::HttpResponse {
                        status,
                        headers,
                        body: resp.bytes().await.unwrap().to_vec(),
                    }
                })
            })
    }

    fn adapter(&self) -> Harness<WechatV3> {
        self.plain_adapter()
            .text("papay_mode", "global")
            .text("papay_merchant_category_code", "5999")
    }

    /// Waits until the merchant endpoint received `n` notifications in
    /// all, and returns the `n`th.
    fn notification(&self, n: usize) -> InboundHttp {
        for _ in 0..500 {
            if let Some((headers, body)) = self.got.lock().unwrap().get(n - 1).cloned() {
                return InboundHttp {
                    method: HttpMethod::Post,
                    path: "/v1/notify/wechat-v3/m1".into(),
                    query: String::new(),
                    headers,
                    body,
                };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("expected {n} notifications")
    }

    /// Pre-signs `code` through the adapter and has the payer sign it;
    /// answers WeChat's contract id.
    fn signed(&self, h: &mut Harness<WechatV3>, code: &str) -> String {
        let signing = h.contract_sign(&sign_request(code)).unwrap();
        let SignAction::MiniProgramNavigation(nav) = signing.action else {
            panic!("{:?}", signing.action)
        };
        assert_eq!(nav.extra_data[0].0, "session_id");
        self.rt
            .block_on(self.sim.sign_contract(code, PLAN, OPENID))
            .unwrap()
    }
}

fn sign_request(code: &str) -> ContractSignRequest {
    ContractSignRequest {
        merchant_contract_no: code.into(),
        plan_id: PLAN.to_string(),
        payer: ContractPayer {
            app_id: APPID.into(),
            openid: Some(OPENID.into()),
            client_ip: Some("119.145.83.6".into()),
        },
        display_name: "会员 张三".into(),
        return_url: None,
    }
}

fn contract(code: &str, id: Option<&str>) -> ContractRef {
    ContractRef {
        merchant_contract_no: code.into(),
        provider_contract_id: id.map(String::from),
    }
}

fn query(h: &mut Harness<WechatV3>, c: ContractRef) -> ContractStatus {
    h.contract_query(&ContractQueryRequest {
        contract: c,
        plan_id: PLAN.to_string(),
    })
    .unwrap()
}

fn hkd(minor: u64) -> Money {
    Money {
        minor,
        currency: "HKD".into(),
    }
}

fn deduction(code: &str, id: &str, no: &str, minor: u64) -> DeductionRequest {
    DeductionRequest {
        contract: contract(code, Some(id)),
        merchant_deduction_no: no.into(),
        amount: hkd(minor),
        description: "電費".into(),
        client_ip: None,
    }
}

fn deduct(
    h: &mut Harness<WechatV3>,
    code: &str,
    id: &str,
    no: &str,
    minor: u64,
) -> DeductionStatus {
    h.deduct(&deduction(code, id, no, minor)).unwrap()
}

fn rejection(e: &AdapterError) -> (&str, &str) {
    match e {
        AdapterError::ProviderRejected(r) => (&r.code, &r.message),
        other => panic!("not a rejection: {other:?}"),
    }
}

fn one_event(h: &mut Harness<WechatV3>, n: &InboundHttp) -> NotifyEvent {
    let out = h.parse_notify(n).unwrap();
    let [event] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    event.clone()
}

#[test]
fn a_signed_contract_is_notified_active_and_queries_active() {
    let f = fx();
    let mut h = f.adapter();
    let signing = h.contract_sign(&sign_request("C1")).unwrap();
    let SignAction::MiniProgramNavigation(nav) = &signing.action else {
        panic!("{:?}", signing.action)
    };
    assert_eq!(
        (nav.app_id.as_str(), nav.path.as_str()),
        ("wxbd687630cd02ce1d", "pages/index/index")
    );
    assert!(nav.extra_data[0].1.starts_with("SES"), "{nav:?}");
    assert_eq!(signing.contract, contract("C1", None));
    // Until the payer signs, WeChat knows no contract.
    let st = query(&mut h, contract("C1", None));
    assert_eq!(st.state, ContractState::PendingSignature);

    let id =
        f.rt.block_on(f.sim.sign_contract("C1", PLAN, OPENID))
            .unwrap();
    let NotifyEvent::Contract(c) = one_event(&mut h, &f.notification(1)) else {
        panic!()
    };
    assert_eq!(c.state, ContractState::Active);
    assert_eq!(c.contract, contract("C1", Some(&id)));
    assert_eq!(c.payer_id.as_deref(), Some(OPENID));
    assert_eq!(c.plan_id, Some(PLAN.to_string()));
    assert!(c.changed_at.is_some());

    let by_code = query(&mut h, contract("C1", None));
    assert_eq!(by_code.state, ContractState::Active);
    assert_eq!(by_code.contract.provider_contract_id.as_deref(), Some(&*id));
    let by_id = query(&mut h, contract("C1", Some(&id)));
    assert_eq!(
        (by_id.state, by_id.provider_state.as_str()),
        (ContractState::Active, "SIGNED")
    );
    assert!(
        f.sim
            .paths()
            .iter()
            .any(|p| p.starts_with(&format!("/v3/global/papay/contracts/{id}?appid={APPID}")))
    );
    // The payer signs once per pre-sign; a second pre-sign of the number
    // is refused.
    assert!(
        f.rt.block_on(f.sim.sign_contract("C1", PLAN, OPENID))
            .is_err()
    );
    let e = h.contract_sign(&sign_request("C1")).unwrap_err();
    assert_eq!(rejection(&e).0, "INVALID_REQUEST");
}

#[test]
fn a_deduction_is_charged_at_once_and_the_amount_limit_refuses_naming_rulelimit() {
    let f = fx();
    let mut h = f.adapter();
    let id = f.signed(&mut h, "C2");
    // Over the per-deduction maximum (default 50,000 minor units).
    let e = h
        .deduct(&deduction("C2", &id, "D2OVER", 50_001))
        .unwrap_err();
    let (code, message) = rejection(&e);
    assert_eq!(code, RULELIMIT);
    assert!(message.contains("one deduction"), "{message}");
    assert!(f.sim.papay_deduction("D2OVER").is_none());
    // At the maximum.
    let d = deduct(&mut h, "C2", &id, "D2MAX1", 50_000);
    assert_eq!(d.state, DeductionState::Succeeded);
    assert_eq!(d.amount, Some(hkd(50_000)));
    assert_eq!(d.provider_state, "SUCCESS");
    assert!(d.provider_deduction_id.is_some() && d.paid_at.is_some());
    assert_eq!(d.contract.provider_contract_id.as_deref(), Some(&*id));
    let truth = f.sim.papay_deduction("D2MAX1").unwrap();
    assert_eq!((truth.total, truth.trade_state), (50_000, "SUCCESS"));
    // The query says the same.
    let q = h
        .deduction_query(&DeductionQueryRequest {
            contract: contract("C2", Some(&id)),
            merchant_deduction_no: "D2MAX1".into(),
            provider_deduction_id: None,
        })
        .unwrap();
    assert_eq!(
        (
            q.state.clone(),
            q.amount.clone(),
            q.provider_deduction_id.clone()
        ),
        (
            DeductionState::Succeeded,
            Some(hkd(50_000)),
            d.provider_deduction_id
        )
    );
    // The same number again is the same order, charged once.
    let again = deduct(&mut h, "C2", &id, "D2MAX1", 50_000);
    assert_eq!(again.provider_deduction_id, q.provider_deduction_id);
    // A number WeChat never took: nothing was charged.
    let none = h
        .deduction_query(&DeductionQueryRequest {
            contract: contract("C2", Some(&id)),
            merchant_deduction_no: "D2NONE".into(),
            provider_deduction_id: None,
        })
        .unwrap();
    assert!(matches!(none.state, DeductionState::Failed(_)), "{none:?}");
    assert_eq!(none.provider_state, "ORDER_NOT_EXIST");
    // The deduction's notification parses as the deduction.
    let (status, _) =
        f.rt.block_on(f.sim.notify_deduction("D2MAX1", NotifyForgery::None))
            .unwrap();
    assert_eq!(status, 200);
    let NotifyEvent::Deduction(n) = one_event(&mut h, &f.notification(2)) else {
        panic!()
    };
    assert_eq!(
        (n.merchant_deduction_no.as_str(), n.state, n.amount),
        ("D2MAX1", DeductionState::Succeeded, Some(hkd(50_000)))
    );
}

#[test]
fn the_per_day_count_holds_at_its_boundary_and_failures_do_not_count() {
    let f = fx();
    let mut h = f.adapter();
    let id = f.signed(&mut h, "C3");
    // Default: one successful deduction per contract per day.
    assert_eq!(
        deduct(&mut h, "C3", &id, "D3A001", 100).state,
        DeductionState::Succeeded
    );
    let e = h.deduct(&deduction("C3", &id, "D3A002", 100)).unwrap_err();
    let (code, message) = rejection(&e);
    assert_eq!(code, RULELIMIT);
    assert!(message.contains("today"), "{message}");

    f.sim.set_papay_limits(PapayLimits {
        deductions_per_day: 3,
        ..PapayLimits::default()
    });
    // A failed deduction (every payment method failed) does not count.
    f.sim.next_deduction_result("PAYERROR");
    let failed = deduct(&mut h, "C3", &id, "D3B001", 100);
    assert_eq!(failed.state, DeductionState::Failed("支付失败".into()));
    assert_eq!(
        (failed.provider_state.as_str(), failed.amount),
        ("PAYERROR", None)
    );
    assert_eq!(
        deduct(&mut h, "C3", &id, "D3B002", 100).state,
        DeductionState::Succeeded
    );
    assert_eq!(
        deduct(&mut h, "C3", &id, "D3B003", 100).state,
        DeductionState::Succeeded
    );
    let e = h.deduct(&deduction("C3", &id, "D3B004", 100)).unwrap_err();
    assert_eq!(rejection(&e).0, RULELIMIT);
    assert!(f.sim.papay_deduction("D3B004").is_none());
}

#[test]
fn a_terminated_contract_is_terminated_and_refuses_deductions() {
    let f = fx();
    let mut h = f.adapter();
    let id = f.signed(&mut h, "C4");
    let t = h
        .contract_terminate(&ContractTerminateRequest {
            contract: contract("C4", Some(&id)),
            plan_id: PLAN.to_string(),
            reason: "用户退租".into(),
        })
        .unwrap();
    assert!(matches!(t.state, ContractState::Terminated(_)), "{t:?}");
    let truth = f.sim.papay_contract(&id).unwrap();
    assert_eq!(
        (
            truth.state,
            truth.termination_mode,
            truth.termination_note.as_deref()
        ),
        ("TERMINATED", Some("MERCHANT"), Some("用户退租"))
    );
    let q = query(&mut h, contract("C4", Some(&id)));
    assert_eq!(
        q.state,
        ContractState::Terminated("terminated by the merchant".into())
    );
    let e = h.deduct(&deduction("C4", &id, "D4A001", 100)).unwrap_err();
    assert_eq!(rejection(&e).0, CONTRACT_NOT_EXIST);
    assert!(f.sim.papay_deduction("D4A001").is_none());

    // Without WeChat's id the adapter finds the contract first.
    let id5 = f.signed(&mut h, "C5");
    let t = h
        .contract_terminate(&ContractTerminateRequest {
            contract: contract("C5", None),
            plan_id: PLAN.to_string(),
            reason: "merchant closes the account".into(),
        })
        .unwrap();
    assert_eq!(t.contract, contract("C5", Some(&id5)));
    assert_eq!(f.sim.papay_contract(&id5).unwrap().state, "TERMINATED");
}

#[test]
fn a_payers_termination_is_notified_as_terminated() {
    let f = fx();
    let mut h = f.adapter();
    let id = f.signed(&mut h, "C6");
    f.rt.block_on(f.sim.terminate_contract_by_payer(&id))
        .unwrap();
    let NotifyEvent::Contract(c) = one_event(&mut h, &f.notification(2)) else {
        panic!()
    };
    assert_eq!(
        c.state,
        ContractState::Terminated("terminated by the payer".into())
    );
    assert_eq!(c.contract, contract("C6", Some(&id)));
    let e = h.deduct(&deduction("C6", &id, "D6A001", 100)).unwrap_err();
    assert_eq!(rejection(&e).0, CONTRACT_NOT_EXIST);
}

#[test]
fn tampered_notifications_fail_verification() {
    let f = fx();
    let mut h = f.adapter();
    let id = f.signed(&mut h, "C7");
    deduct(&mut h, "C7", &id, "D7A001", 100);
    let send = |forgery| {
        f.rt.block_on(f.sim.notify_contract(&id, forgery)).unwrap();
    };
    send(NotifyForgery::Tampered);
    let e = h.parse_notify(&f.notification(2)).unwrap_err();
    assert!(matches!(e.error, AdapterError::BadSignature(_)), "{e:?}");
    send(NotifyForgery::BadCiphertext);
    let e = h.parse_notify(&f.notification(3)).unwrap_err();
    assert!(
        e.ack.is_some_and(|a| a.status == 400),
        "asks WeChat to resend"
    );
    send(NotifyForgery::UnknownSerial);
    assert!(h.parse_notify(&f.notification(4)).is_err());
    f.rt.block_on(f.sim.notify_deduction("D7A001", NotifyForgery::Tampered))
        .unwrap();
    let e = h.parse_notify(&f.notification(5)).unwrap_err();
    assert!(matches!(e.error, AdapterError::BadSignature(_)), "{e:?}");
    // The genuine one still parses.
    assert!(matches!(
        one_event(&mut h, &f.notification(1)),
        NotifyEvent::Contract(_)
    ));
}

#[test]
fn papay_is_off_unless_configured_and_the_prefix_is_a_setting() {
    let f = fx();
    let mut plain = f.plain_adapter();
    let e = plain.contract_sign(&sign_request("C8")).unwrap_err();
    assert!(matches!(e, AdapterError::Unsupported(_)), "{e:?}");
    assert!(plain.sent().is_empty());
    let caps = WechatV3::describe().capabilities;
    assert!(caps.contracts && caps.contract_notifications && caps.deduction_notifications);
    // A contract notification reaches an adapter without papay as an
    // event it does not handle: taken, nothing applied.
    let mut h = f.adapter();
    f.signed(&mut h, "C8");
    let out = plain.parse_notify(&f.notification(1)).unwrap();
    assert!(out.events.is_empty());

    // The `/v3/papay/hk` form, where WeChat serves it.
    let e = f
        .adapter()
        .text("papay_path_prefix", "/v3/papay/hk")
        .contract_sign(&sign_request("C9"))
        .unwrap_err();
    assert_eq!(rejection(&e).0, "NOT_FOUND");
    f.sim.set_papay_limits(PapayLimits {
        prefix: "/v3/papay/hk",
        ..PapayLimits::default()
    });
    let mut hk = f.adapter().text("papay_path_prefix", "/v3/papay/hk");
    hk.contract_sign(&sign_request("C9")).unwrap();
    let bad = f
        .adapter()
        .text("papay_path_prefix", "/v3/other")
        .contract_sign(&sign_request("C10"));
    assert!(
        matches!(bad, Err(AdapterError::InvalidConfig(_))),
        "{bad:?}"
    );
}
