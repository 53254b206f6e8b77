//! The papay simulator driven by the real wechat-v2 adapter, run natively
//! by the SDK harness over real HTTP: each side checks the other's
//! signatures, and notifications reach a merchant endpoint through the
//! outbox before the adapter parses them.

use super::papay::RULELIMIT;
use super::*;
use ::wechat_v2::WechatV2;
use payhost_sdk::testing::Harness;
use payhost_sdk::types::{
    AdapterError, ContractPayer, ContractQueryRequest, ContractRef, ContractSignRequest,
    ContractState, ContractStatus, ContractTerminateRequest, DeductionQueryRequest,
    DeductionRequest, DeductionState, DeductionStatus, HttpMethod, InboundHttp, Money, NotifyEvent,
    SignAction,
};

const APPID: &str = "wxd930ea5d5a258f4f";
const MCH_ID: &str = "10000100";
const KEY: &str = "192006250b4c09247ec02edce69f6a2d";
const PLAN: &str = "106";
const OPENID: &str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";

struct Fx {
    rt: Arc<tokio::runtime::Runtime>,
    sim: Simulator,
    /// The merchant's notify endpoint, which acknowledges everything.
    notify_url: String,
    got: Arc<Mutex<Vec<String>>>,
}

fn fx(configure: impl FnOnce(&mut SimConfig)) -> Fx {
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap(),
    );
    let mut config = SimConfig::new(APPID, MCH_ID, KEY);
    configure(&mut config);
    let sim = rt.block_on(Simulator::start(config));
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    let notify_url = rt.block_on(async move {
        let app = Router::new().fallback(move |body: String| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(body);
                ack()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/v1/notify/wechat-v2/m1",
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

fn ack() -> &'static str {
    "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
}

impl Fx {
    /// The adapter configured for the simulator's merchant with `key`.
    fn adapter_with_key(&self, key: &str) -> Harness<WechatV2> {
        let rt = self.rt.clone();
        let client = reqwest::Client::new();
        Harness::<WechatV2>::new()
            .text("appid", APPID)
            .text("mch_id", MCH_ID)
            .secret("api_key", key)
            .text("base_url", &self.sim.base_url())
            .notify_url(&self.notify_url)
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
                    payhost_sdk::http::response(
                        status,
                        "text/xml",
                        resp.bytes().await.unwrap().to_vec(),
                    )
                })
            })
    }

    fn adapter(&self) -> Harness<WechatV2> {
        self.adapter_with_key(KEY)
    }

    /// Waits until the merchant endpoint received `n` notifications in
    /// all, and returns them.
    fn notifications(&self, n: usize) -> Vec<String> {
        for _ in 0..500 {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "expected {n} notifications, got {:?}",
            self.got.lock().unwrap()
        )
    }

    /// Signs `code` through the adapter's real `extraData`.
    fn sign(&self, h: &mut Harness<WechatV2>, code: &str) -> String {
        let signing = h.contract_sign(&sign_request(code)).unwrap();
        let SignAction::MiniProgramNavigation(nav) = signing.action else {
            panic!("{:?}", signing.action)
        };
        self.sim
            .sign_contract_from_extra_data(&nav.extra_data, OPENID)
            .unwrap()
    }
}

fn sign_request(code: &str) -> ContractSignRequest {
    ContractSignRequest {
        merchant_contract_no: code.into(),
        plan_id: PLAN.into(),
        payer: ContractPayer {
            app_id: APPID.into(),
            openid: None,
            client_ip: None,
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

fn query(h: &mut Harness<WechatV2>, c: ContractRef) -> ContractStatus {
    h.contract_query(&ContractQueryRequest {
        contract: c,
        plan_id: PLAN.into(),
    })
    .unwrap()
}

fn deduction(code: &str, id: &str, no: &str, fen: u64) -> DeductionRequest {
    DeductionRequest {
        contract: contract(code, Some(id)),
        merchant_deduction_no: no.into(),
        amount: cny(fen),
        description: "会员续费".into(),
        client_ip: Some("203.0.113.7".into()),
    }
}

fn cny(fen: u64) -> Money {
    Money {
        minor: fen,
        currency: "CNY".into(),
    }
}

fn inbound(body: &str) -> InboundHttp {
    InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/wechat-v2/m1".into(),
        query: String::new(),
        headers: vec![],
        body: body.as_bytes().to_vec(),
    }
}

fn parsed(h: &mut Harness<WechatV2>, body: &str) -> NotifyEvent {
    let out = h.parse_notify(&inbound(body)).unwrap();
    let [event] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    event.clone()
}

fn rejected_code(e: &AdapterError) -> &str {
    match e {
        AdapterError::ProviderRejected(r) => &r.code,
        other => panic!("not a provider rejection: {other:?}"),
    }
}

fn last_outcome(sim: &Simulator) -> String {
    sim.requests().last().unwrap().outcome.clone()
}

#[test]
fn a_contract_is_signed_notified_deducted_settled_and_queried() {
    let f = fx(|_| {});
    let mut h = f.adapter();
    // Never signed: WeChat answers CONTRACT_NOT_EXIST, which the adapter
    // reads as a signing still to happen.
    let unsigned = query(&mut h, contract("C-LIFE-1", None));
    assert_eq!(unsigned.state, ContractState::PendingSignature);
    assert_eq!(unsigned.provider_state, "CONTRACT_NOT_EXIST");
    assert_eq!(last_outcome(&f.sim), "CONTRACT_NOT_EXIST");

    let id = f.sign(&mut h, "C-LIFE-1");
    let added = f.notifications(1);
    let NotifyEvent::Contract(signed) = parsed(&mut h, &added[0]) else {
        panic!("not a contract event")
    };
    assert_eq!(signed.state, ContractState::Active);
    assert_eq!(signed.provider_state, "ADD");
    assert_eq!(signed.contract, contract("C-LIFE-1", Some(&id)));
    assert_eq!(signed.payer_id.as_deref(), Some(OPENID));
    assert_eq!(signed.plan_id.as_deref(), Some(PLAN));
    assert!(signed.changed_at.is_some_and(|t| (now() - t).abs() < 60));

    // By the merchant's number and by WeChat's id alike.
    for by in [contract("C-LIFE-1", None), contract("C-LIFE-1", Some(&id))] {
        let active = query(&mut h, by);
        assert_eq!(active.state, ContractState::Active);
        assert_eq!(active.contract.provider_contract_id.as_deref(), Some(&*id));
        assert_eq!(active.payer_id.as_deref(), Some(OPENID));
    }
    // querycontract carried no nonce_str and was answered without one.
    let q = f.sim.requests().pop().unwrap();
    assert!(!q.fields.unwrap().contains_key("nonce_str"));

    let pending = h
        .deduct(&deduction("C-LIFE-1", &id, "D-LIFE-1", 1_990))
        .unwrap();
    assert_eq!(pending.state, DeductionState::Pending);
    assert_eq!(
        f.sim.papay_truth().deductions["D-LIFE-1"].trade_state,
        "ACCEPT"
    );
    let dq = DeductionQueryRequest {
        contract: contract("C-LIFE-1", Some(&id)),
        merchant_deduction_no: "D-LIFE-1".into(),
        provider_deduction_id: None,
    };
    let accepted = h.deduction_query(&dq).unwrap();
    assert_eq!(
        (accepted.state, accepted.provider_state.as_str()),
        (DeductionState::Pending, "ACCEPT")
    );

    f.sim.settle_deduction("D-LIFE-1", true).unwrap();
    let got = f.notifications(2);
    let NotifyEvent::Deduction(paid) = parsed(&mut h, &got[1]) else {
        panic!("not a deduction event")
    };
    assert_eq!(paid.state, DeductionState::Succeeded);
    assert_eq!(paid.merchant_deduction_no, "D-LIFE-1");
    assert_eq!(paid.amount, Some(cny(1_990)));
    assert_eq!(paid.contract.provider_contract_id.as_deref(), Some(&*id));
    let truth = f.sim.papay_truth().deductions["D-LIFE-1"].clone();
    assert_eq!(truth.trade_state, "SUCCESS");
    assert_eq!(paid.provider_deduction_id, truth.transaction_id);

    let queried: DeductionStatus = h.deduction_query(&dq).unwrap();
    assert_eq!(queried.state, DeductionState::Succeeded);
    assert_eq!(queried.amount, Some(cny(1_990)));
    assert_eq!(queried.provider_deduction_id, truth.transaction_id);
    assert!(queried.paid_at.is_some());
}

#[test]
fn repeats_of_a_deduction_number_answer_as_wechat_does() {
    let f = fx(|c| c.papay.max_deductions_per_day = 5);
    let mut h = f.adapter();
    let id = f.sign(&mut h, "C-REP-1");
    let d = deduction("C-REP-1", &id, "D-REP-1", 500);
    h.deduct(&d).unwrap();
    // Same content while accepted: ORDER_ACCEPTED, which the adapter takes
    // as accepted too.
    let again = h.deduct(&d).unwrap();
    assert_eq!(
        (again.state, again.provider_state.as_str()),
        (DeductionState::Pending, "ORDER_ACCEPTED")
    );
    let mut other = d.clone();
    other.amount = cny(600);
    let e = h.deduct(&other).unwrap_err();
    assert_eq!(rejected_code(&e), "OUT_TRADE_NO_USED");
    f.sim.settle_deduction("D-REP-1", true).unwrap();
    assert_eq!(rejected_code(&h.deduct(&d).unwrap_err()), "ORDERPAID");
    assert_eq!(f.sim.papay_truth().deductions.len(), 1);
    assert!(
        f.sim.settle_deduction("D-REP-1", false).is_err(),
        "a charged deduction cannot fail afterwards"
    );
}

#[test]
fn a_deduction_over_the_per_deduction_limit_is_refused_rulelimit() {
    let f = fx(|_| {});
    let mut h = f.adapter();
    let id = f.sign(&mut h, "C-MAX-1");
    let e = h
        .deduct(&deduction("C-MAX-1", &id, "D-MAX-1", 50_001))
        .unwrap_err();
    assert_eq!(rejected_code(&e), RULELIMIT);
    assert!(f.sim.papay_truth().deductions.is_empty());
    // Exactly the default limit (500 CNY) passes.
    let ok = h
        .deduct(&deduction("C-MAX-1", &id, "D-MAX-2", 50_000))
        .unwrap();
    assert_eq!(ok.state, DeductionState::Pending);
}

#[test]
fn the_per_day_count_limit_lets_the_last_allowed_through_and_refuses_the_next() {
    let f = fx(|c| c.papay.max_deductions_per_day = 3);
    let mut h = f.adapter();
    let id = f.sign(&mut h, "C-DAY-1");
    // A failed deduction does not count (§13.8).
    h.deduct(&deduction("C-DAY-1", &id, "D-DAY-0", 100))
        .unwrap();
    f.sim.settle_deduction("D-DAY-0", false).unwrap();
    for n in 1..=3 {
        let no = format!("D-DAY-{n}");
        assert_eq!(
            h.deduct(&deduction("C-DAY-1", &id, &no, 100))
                .unwrap()
                .state,
            DeductionState::Pending,
            "{no}"
        );
    }
    let e = h
        .deduct(&deduction("C-DAY-1", &id, "D-DAY-4", 100))
        .unwrap_err();
    assert_eq!(rejected_code(&e), RULELIMIT);
    assert!(!f.sim.papay_truth().deductions.contains_key("D-DAY-4"));

    // The default template: one a day.
    let f = fx(|_| {});
    let mut h = f.adapter();
    let id = f.sign(&mut h, "C-DAY-2");
    h.deduct(&deduction("C-DAY-2", &id, "D-DAY-21", 100))
        .unwrap();
    let e = h
        .deduct(&deduction("C-DAY-2", &id, "D-DAY-22", 100))
        .unwrap_err();
    assert_eq!(rejected_code(&e), RULELIMIT);
}

#[test]
fn the_per_day_amount_limit_is_refused_rulelimit() {
    let f = fx(|c| {
        c.papay.max_deductions_per_day = 10;
        c.papay.max_amount_per_day = 1_000;
    });
    let mut h = f.adapter();
    let id = f.sign(&mut h, "C-AMT-1");
    h.deduct(&deduction("C-AMT-1", &id, "D-AMT-1", 600))
        .unwrap();
    h.deduct(&deduction("C-AMT-1", &id, "D-AMT-2", 400))
        .unwrap();
    let e = h
        .deduct(&deduction("C-AMT-1", &id, "D-AMT-3", 1))
        .unwrap_err();
    assert_eq!(rejected_code(&e), RULELIMIT);
}

#[test]
fn terminating_through_deletecontract_ends_the_contract_and_its_deductions() {
    let f = fx(|_| {});
    let mut h = f.adapter();
    let id = f.sign(&mut h, "C-END-1");
    f.notifications(1);
    let terminate = ContractTerminateRequest {
        contract: contract("C-END-1", Some(&id)),
        plan_id: PLAN.into(),
        reason: "用户申请退订".into(),
    };
    let ended = h.contract_terminate(&terminate).unwrap();
    assert!(matches!(ended.state, ContractState::Terminated(_)));
    assert_eq!(ended.contract.provider_contract_id.as_deref(), Some(&*id));
    let del = f.sim.requests().pop().unwrap();
    assert_eq!(del.outcome, "SUCCESS");
    assert!(!del.fields.unwrap().contains_key("nonce_str"));

    let q = query(&mut h, contract("C-END-1", None));
    assert_eq!(
        q.state,
        ContractState::Terminated("terminated by the merchant (API)".into())
    );
    assert_eq!(q.provider_state, "1");
    assert!(q.changed_at.is_some());

    // The DELETE notification went to the template's URL (the signing's).
    let got = f.notifications(2);
    let NotifyEvent::Contract(deleted) = parsed(&mut h, &got[1]) else {
        panic!("not a contract event")
    };
    assert_eq!(deleted.provider_state, "DELETE");
    assert!(matches!(deleted.state, ContractState::Terminated(_)));

    // A second termination: CONTRACT_NOT_EXIST (see `delete_contract`).
    let e = h.contract_terminate(&terminate).unwrap_err();
    assert_eq!(rejected_code(&e), "CONTRACT_NOT_EXIST");
    // A deduction on it is refused.
    let e = h
        .deduct(&deduction("C-END-1", &id, "D-END-1", 100))
        .unwrap_err();
    assert_eq!(rejected_code(&e), "CONTRACT_NOT_EXIST");
    assert!(f.sim.papay_truth().deductions.is_empty());
}

#[test]
fn a_payer_termination_is_notified_and_fails_an_accepted_deduction() {
    let f = fx(|_| {});
    let mut h = f.adapter();
    let id = f.sign(&mut h, "C-PAYER-1");
    h.deduct(&deduction("C-PAYER-1", &id, "D-PAYER-1", 100))
        .unwrap();
    f.sim.terminate_contract_by_payer(&id).unwrap();
    let got = f.notifications(2);
    let NotifyEvent::Contract(ended) = parsed(&mut h, &got[1]) else {
        panic!("not a contract event")
    };
    assert_eq!(
        ended.state,
        ContractState::Terminated("terminated by the payer".into())
    );
    f.sim.settle_deduction("D-PAYER-1", true).unwrap();
    let got = f.notifications(3);
    let NotifyEvent::Deduction(failed) = parsed(&mut h, &got[2]) else {
        panic!("not a deduction event")
    };
    assert!(matches!(failed.state, DeductionState::Failed(_)));
    assert_eq!(failed.provider_state, "CONTRACT_NOT_EXIST");
    assert_eq!(failed.amount, None);
    assert_eq!(
        f.sim.papay_truth().contracts[&id]
            .termination_mode
            .as_deref(),
        Some("2")
    );
}

#[test]
fn a_wrong_signature_is_refused_and_changes_nothing() {
    let f = fx(|_| {});
    let mut h = f.adapter();
    let id = f.sign(&mut h, "C-SIG-1");
    let before = f.sim.papay_truth();
    let mut forger = f.adapter_with_key("ffffffffffffffffffffffffffffffff");
    // The refusal is signed with the real key, so the forger cannot even
    // verify it.
    assert!(
        forger
            .deduct(&deduction("C-SIG-1", &id, "D-SIG-1", 100))
            .is_err()
    );
    assert_eq!(last_outcome(&f.sim), "SIGNERROR");
    assert!(
        forger
            .contract_terminate(&ContractTerminateRequest {
                contract: contract("C-SIG-1", Some(&id)),
                plan_id: PLAN.into(),
                reason: "forged".into(),
            })
            .is_err()
    );
    // deletecontract prints its own code (§13.10).
    assert_eq!(last_outcome(&f.sim), "SIGN_ERROR");
    assert_eq!(f.sim.papay_truth(), before);
    assert_eq!(
        query(&mut h, contract("C-SIG-1", Some(&id))).state,
        ContractState::Active
    );
}

#[test]
fn missing_fields_and_another_merchant_are_refused() {
    let f = fx(|_| {});
    let mut h = f.adapter();
    let id = f.sign(&mut h, "C-FLD-1");
    let sign = |pairs: &[(&str, &str)]| {
        let mut fields: Fields = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = f.sim.shared.sign(&fields, SignType::Md5);
        fields.insert("sign".into(), s);
        xml::encode("xml", &fields)
    };
    let post = |path: &str, body: String| -> Fields {
        f.rt.block_on(async {
            let text = reqwest::Client::new()
                .post(format!("{}{path}", f.sim.base_url()))
                .body(body)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            xml::decode(text.as_bytes()).unwrap().1
        })
    };
    // No contract_termination_remark.
    let r = post(
        papay::DELETE_CONTRACT,
        sign(&[
            ("appid", APPID),
            ("mch_id", MCH_ID),
            ("contract_id", &id),
            ("version", "1.0"),
        ]),
    );
    assert_eq!(
        (r["result_code"].as_str(), r["err_code"].as_str()),
        ("FAIL", "PARAMETER FAIL")
    );
    assert!(!r.contains_key("nonce_str"));
    // Another mch_id.
    let r = post(
        papay::QUERY_CONTRACT,
        sign(&[
            ("appid", APPID),
            ("mch_id", "99999999"),
            ("contract_id", &id),
            ("version", "1.0"),
        ]),
    );
    assert_eq!(r["err_code"], "MCHID_NOT_EXIST");
    // pappayapply without nonce_str or contract_id.
    let r = post(
        papay::PAP_PAY_APPLY,
        sign(&[
            ("appid", APPID),
            ("mch_id", MCH_ID),
            ("body", "x"),
            ("out_trade_no", "D-FLD-1"),
            ("total_fee", "100"),
            ("spbill_create_ip", "203.0.113.7"),
            ("notify_url", "https://payhost.test/n"),
            ("trade_type", "PAP"),
            ("contract_id", &id),
        ]),
    );
    assert_eq!(r["err_code"], "LACK_PARAMS");
    let r = post(
        papay::PAP_PAY_APPLY,
        sign(&[
            ("appid", APPID),
            ("mch_id", MCH_ID),
            ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
            ("body", "x"),
            ("out_trade_no", "D-FLD-1"),
            ("total_fee", "100"),
            ("spbill_create_ip", "203.0.113.7"),
            ("notify_url", "https://payhost.test/n"),
            ("trade_type", "PAP"),
        ]),
    );
    assert_eq!(r["err_code"], "LACK_PARAMS");
    assert!(f.sim.papay_truth().deductions.is_empty());
    assert_eq!(f.sim.papay_truth().contracts[&id].contract_state, "0");
}

#[test]
fn a_tampered_notification_fails_the_adapters_signature_check() {
    let f = fx(|c| c.tamper_notifications = true);
    let mut h = f.adapter();
    let id = f.sign(&mut h, "C-TAMPER-1");
    let got = f.notifications(1);
    let e = h.parse_notify(&inbound(&got[0])).unwrap_err();
    assert!(
        matches!(e.error, AdapterError::BadSignature(_)),
        "{:?}",
        e.error
    );
    // And a deduction's, whose amount was raised after signing.
    h.deduct(&deduction("C-TAMPER-1", &id, "D-TAMPER-1", 100))
        .unwrap();
    f.sim.settle_deduction("D-TAMPER-1", true).unwrap();
    let got = f.notifications(2);
    assert!(got[1].contains("<total_fee>101</total_fee>"), "{}", got[1]);
    let e = h.parse_notify(&inbound(&got[1])).unwrap_err();
    assert!(matches!(e.error, AdapterError::BadSignature(_)));
}

#[test]
fn signing_checks_the_extra_data_and_one_active_contract_per_payer_and_plan() {
    let f = fx(|_| {});
    let mut h = f.adapter();
    let signing = h.contract_sign(&sign_request("C-XD-1")).unwrap();
    let SignAction::MiniProgramNavigation(nav) = signing.action else {
        panic!()
    };
    let mut forged = nav.extra_data.clone();
    for (k, v) in forged.iter_mut() {
        if k == "contract_display_account" {
            v.push('!');
        }
    }
    assert!(
        f.sim
            .sign_contract_from_extra_data(&forged, OPENID)
            .is_err()
    );
    assert!(f.sim.papay_truth().contracts.is_empty());
    let id = f
        .sim
        .sign_contract_from_extra_data(&nav.extra_data, OPENID)
        .unwrap();
    // Same payer, same plan: refused while the first is active.
    assert!(
        f.sim
            .sign_contract("C-XD-2", PLAN, OPENID, &f.notify_url)
            .is_err()
    );
    f.sim.terminate_contract_by_payer(&id).unwrap();
    let again = f
        .sim
        .sign_contract("C-XD-2", PLAN, OPENID, &f.notify_url)
        .unwrap();
    assert_ne!(again, id);
    assert_eq!(f.sim.papay_truth().contracts.len(), 2);
}

#[test]
fn an_hmac_merchant_queries_deducts_and_verifies_both_notifications() {
    let f = fx(|c| c.sign_type = SignType::HmacSha256);
    let mut h = f.adapter().text("sign_type", "HMAC-SHA256");
    // The signing entry stays MD5 (§13.7), and so does its notification.
    let id = f.sign(&mut h, "C-HMAC-1");
    let got = f.notifications(1);
    assert!(!got[0].contains("<sign_type>"));
    assert!(matches!(parsed(&mut h, &got[0]), NotifyEvent::Contract(_)));
    let active = query(&mut h, contract("C-HMAC-1", Some(&id)));
    assert_eq!(active.state, ContractState::Active);
    let q = f.sim.requests().pop().unwrap().fields.unwrap();
    assert_eq!(q["sign_type"], "HMAC-SHA256");
    h.deduct(&deduction("C-HMAC-1", &id, "D-HMAC-1", 300))
        .unwrap();
    f.sim.settle_deduction("D-HMAC-1", false).unwrap();
    let got = f.notifications(2);
    assert!(got[1].contains("HMAC-SHA256"));
    let NotifyEvent::Deduction(failed) = parsed(&mut h, &got[1]) else {
        panic!("not a deduction event")
    };
    assert_eq!(failed.provider_state, "NOTENOUGH");
    assert!(matches!(failed.state, DeductionState::Failed(_)));
    let dq = h
        .deduction_query(&DeductionQueryRequest {
            contract: contract("C-HMAC-1", Some(&id)),
            merchant_deduction_no: "D-HMAC-1".into(),
            provider_deduction_id: None,
        })
        .unwrap();
    assert_eq!(dq.provider_state, "PAYERROR");
    assert!(matches!(dq.state, DeductionState::Failed(ref m) if m.contains("余额不足")));
}
