//! WeChat Pay Global papay (providers.md §13) against scripted, signed
//! answers: what the simulator tests cannot see (institution mode's ids,
//! the settings' checks, the mapping of every state word).

use super::*;
use crate::papay::wire;

fn papay(h: Harness<WechatV3>) -> Harness<WechatV3> {
    h.text("papay_mode", "global")
        .text("papay_merchant_category_code", "4900")
}

fn sign_request() -> ContractSignRequest {
    ContractSignRequest {
        merchant_contract_no: "C100001256".into(),
        plan_id: "123".into(),
        payer: ContractPayer {
            app_id: "wxsub0000000000001".into(),
            openid: Some("o-sub".into()),
            client_ip: Some("119.145.83.6".into()),
        },
        display_name: "张三".into(),
        return_url: None,
    }
}

#[test]
fn institution_mode_names_the_institution_and_sub_merchant_on_papay_calls() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    let mut h = papay(institution())
        .text("papay_sign_expires_secs", "600")
        .respond(move |req| {
            check_authorization(req);
            s2.borrow_mut().push(req.clone());
            if req.url.ends_with("pre-entrust-sign") {
                signed(200, r#"{"session_id":"201710180325670965"}"#, NOW)
            } else {
                signed(204, "", NOW)
            }
        });
    let s = h.contract_sign(&sign_request()).unwrap();
    let SignAction::MiniProgramNavigation(nav) = s.action else {
        panic!()
    };
    assert_eq!(
        nav.extra_data,
        vec![("session_id".to_string(), "201710180325670965".to_string())]
    );
    h.contract_terminate(&ContractTerminateRequest {
        contract: ContractRef {
            merchant_contract_no: "C100001256".into(),
            provider_contract_id: Some("100005698".into()),
        },
        plan_id: "123".into(),
        reason: "解约原因".into(),
    })
    .unwrap();
    let seen = seen.borrow();
    assert_eq!(
        seen[0].url,
        "https://apihk.mch.weixin.qq.com/v3/global/papay/contracts/miniprogram-pre-entrust-sign"
    );
    let b = body_of(&seen[0]);
    for (k, v) in [
        ("sp_appid", APPID),
        ("sp_mchid", MCHID),
        ("sub_mchid", "1900000109"),
        ("sub_appid", "wxsub0000000000001"),
        ("openid", "o-sub"),
        ("user_client_ip", "119.145.83.6"),
        ("out_contract_code", "C100001256"),
        (
            "success_notify_url",
            "https://payhost.test/v1/notify/test/m1",
        ),
    ] {
        assert_eq!(b[k], v, "{k}");
    }
    // An integer in the schema, not a string.
    assert_eq!(b["plan_id"], 123);
    // NOW + 600 s in China time.
    assert_eq!(b["expired_time"], "2023-11-15T06:23:20+08:00");
    assert!(b.get("appid").is_none());
    let t = body_of(&seen[1]);
    assert_eq!(
        seen[1].url,
        "https://apihk.mch.weixin.qq.com/v3/global/papay/contracts/100005698/terminate"
    );
    assert_eq!(t["termination_note"], "解约原因");
    // Terminate's schema lists no sp_mchid.
    assert!(t.get("sp_mchid").is_none() && t["sub_mchid"] == "1900000109");
}

#[test]
fn papay_settings_are_checked() {
    let invalid_config = |h: Harness<WechatV3>| {
        let mut h = h.respond(|_| panic!("nothing is sent"));
        match h.contract_sign(&sign_request()) {
            Err(AdapterError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        }
    };
    // Papay is WeChat Pay Global's only.
    assert!(invalid_config(papay(harness())).contains("mode = global"));
    assert!(invalid_config(harness().text("papay_mode", "domestic")).contains("papay_mode"));
    assert!(
        invalid_config(papay(institution()).text("papay_path_prefix", "/v3/papay"))
            .contains("papay_path_prefix")
    );
    let mut off = institution();
    assert!(matches!(
        off.deduct(&DeductionRequest {
            contract: ContractRef {
                merchant_contract_no: "C1".into(),
                provider_contract_id: Some("1".into()),
            },
            merchant_deduction_no: "D000001".into(),
            amount: Money {
                minor: 1,
                currency: "HKD".into()
            },
            description: "x".into(),
            client_ip: None,
        }),
        Err(AdapterError::Unsupported(_))
    ));
}

#[test]
fn every_published_state_word_maps() {
    for (word, state) in [
        ("SUCCESS", DeductionState::Succeeded),
        ("REFUND", DeductionState::Succeeded),
        ("NOTPAY", DeductionState::Pending),
        ("USERPAYING", DeductionState::Pending),
        ("CLOSED", DeductionState::Failed("CLOSED".into())),
        ("PAYERROR", DeductionState::Failed("余额不足".into())),
    ] {
        let desc = (word == "PAYERROR").then_some("余额不足");
        assert_eq!(wire::deduction_state(word, desc), Some(state), "{word}");
    }
    assert_eq!(wire::deduction_state("ACCEPT", None), None);
    let contract = |state: &str, terminated: Option<&str>| wire::Contract {
        mchid: None,
        sp_mchid: None,
        sub_mchid: None,
        contract_id: "1".into(),
        out_contract_code: "C".into(),
        plan_id: Some(1),
        state: state.into(),
        signed_time: None,
        terminated_time: terminated.map(String::from),
        termination_mode: Some("USER".into()),
        openid: None,
    };
    assert_eq!(
        wire::contract_state(&contract("SIGNED", None)),
        Some(ContractState::Active)
    );
    let ended = Some(ContractState::Terminated("terminated by the payer".into()));
    assert_eq!(wire::contract_state(&contract("TERMINATED", None)), ended);
    // A word not published, with a termination time: ended all the same.
    assert_eq!(
        wire::contract_state(&contract("EXPIRED", Some("2021-11-20T13:29:35+08:00"))),
        ended
    );
    assert_eq!(wire::contract_state(&contract("SIGNING", None)), None);
}
