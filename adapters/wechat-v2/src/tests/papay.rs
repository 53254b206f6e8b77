//! Auto-debit contracts (papay, providers.md §13) against scripted WeChat
//! answers, and the §13.12 signature values.

use super::*;

/// §13.12's derived values with the §1.10 key: the mini-program
/// `extraData`, `pappayapply` and a contract notification. The test side's
/// signer is the one every test below checks the adapter's signatures
/// against.
#[test]
fn papay_signatures_match_the_published_derivations() {
    let md5 = |pairs: &[(&str, &str)]| wx_sign(&fields(pairs), "MD5", KEY);
    assert_eq!(
        md5(&[
            ("appid", "wx426a3015555a46be"),
            ("contract_code", "122"),
            ("contract_display_account", "张三"),
            ("mch_id", "1223816102"),
            ("notify_url", "https://www.qq.com/test/papay"),
            ("plan_id", "106"),
            ("request_serial", "123"),
            ("timestamp", "1414488825"),
        ]),
        "F7CF2942CDF2E0C1CF9CEA3F8BBE3E0F"
    );
    assert_eq!(
        md5(&[
            ("appid", "wxcbda96de0b165486"),
            ("body", "水电代扣"),
            ("contract_id", "Wx15463511252015071056489715"),
            ("mch_id", "10000098"),
            ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
            ("notify_url", "http://yoursite.com/wxpay.html"),
            ("out_trade_no", "217752501201407033233368018"),
            ("spbill_create_ip", "8.8.8.8"),
            ("total_fee", "888"),
            ("trade_type", "PAP"),
        ]),
        "5A663721E601891F53A67F083F06B30F"
    );
    assert_eq!(
        md5(&[
            ("change_type", "ADD"),
            ("contract_code", "100001256"),
            ("contract_id", "Wx15463511252015071056489715"),
            ("mch_id", "10010404"),
            ("openid", "onqOjjmM1tad-3ROpncN-yUfa6ua"),
            ("operate_time", "2015-07-01 10:00:00"),
            ("plan_id", "123"),
            ("result_code", "SUCCESS"),
            ("return_code", "SUCCESS"),
        ]),
        "443D1E4B5D19B272395242E0FE655079"
    );
}

fn sign_request() -> ContractSignRequest {
    ContractSignRequest {
        merchant_contract_no: "C20261203001".into(),
        plan_id: "106".into(),
        payer: ContractPayer {
            app_id: APPID.into(),
            openid: None,
            client_ip: None,
        },
        display_name: "会员 张三".into(),
        return_url: None,
    }
}

#[test]
fn signing_answers_the_signing_mini_program_with_signed_extra_data_and_sends_nothing() {
    let (mut h, seen) = scripted(merchant(), reply(&[]));
    let signing = h.contract_sign(&sign_request()).unwrap();
    assert!(seen.borrow().is_empty(), "signing calls no WeChat API");
    assert_eq!(signing.contract.merchant_contract_no, "C20261203001");
    assert_eq!(signing.contract.provider_contract_id, None);
    let SignAction::MiniProgramNavigation(nav) = signing.action else {
        panic!("{:?}", signing.action)
    };
    assert_eq!(
        (nav.app_id.as_str(), nav.path.as_str()),
        (crate::papay::SIGNING_APP_ID, crate::papay::SIGNING_PATH)
    );
    let extra: Fields = nav.extra_data.into_iter().collect();
    assert_eq!(extra["appid"], APPID);
    assert_eq!(extra["mch_id"], MCH_ID);
    assert_eq!(extra["plan_id"], "106");
    assert_eq!(extra["contract_code"], "C20261203001");
    assert_eq!(extra["contract_display_account"], "会员 张三");
    assert_eq!(extra["notify_url"], NOTIFY_URL);
    assert_eq!(extra["timestamp"], NOW.to_string());
    let serial = &extra["request_serial"];
    assert!(
        serial.bytes().all(|b| b.is_ascii_digit()) && !serial.starts_with('0'),
        "{serial}"
    );
    assert!(
        !extra.contains_key("nonce_str"),
        "signing entries carry no nonce_str"
    );
    assert_eq!(extra["sign"], wx_sign(&extra, "MD5", KEY));
}

#[test]
fn signing_refuses_what_wechat_would_refuse() {
    let mut h = merchant();
    let refused =
        |h: &mut Harness<WechatV2>, r: ContractSignRequest| h.contract_sign(&r).unwrap_err();
    let mut emoji = sign_request();
    emoji.display_name = "会员 😀".into();
    assert!(
        matches!(refused(&mut h, emoji), AdapterError::InvalidRequest(m) if m.contains("4-byte"))
    );
    let mut other_app = sign_request();
    other_app.payer.app_id = "wxother".into();
    assert!(
        matches!(refused(&mut h, other_app), AdapterError::InvalidRequest(m) if m.contains("appid"))
    );
    let mut partner = merchant().text("sub_mch_id", "1900000109");
    assert!(matches!(
        partner.contract_sign(&sign_request()).unwrap_err(),
        AdapterError::Unsupported(_)
    ));
}

fn contract(id: Option<&str>) -> ContractRef {
    ContractRef {
        merchant_contract_no: "C20261203001".into(),
        provider_contract_id: id.map(String::from),
    }
}

/// Decodes a nonceless papay request and checks its signature.
fn sent_nonceless(req: &HttpRequest) -> Fields {
    let (_, f) = xml::decode(&req.body).unwrap();
    assert!(!f.contains_key("nonce_str"), "{f:?}");
    assert_eq!(f["sign"], wx_sign(&f, "MD5", KEY));
    f
}

#[test]
fn a_contract_is_queried_without_a_nonce_and_its_states_mapped() {
    for (state, mode, want) in [
        ("0", None, ContractState::Active),
        ("9", None, ContractState::PendingSignature),
        (
            "1",
            Some("2"),
            ContractState::Terminated("terminated by the payer".into()),
        ),
    ] {
        let mut extra = vec![
            ("contract_id", "Wx1546"),
            ("contract_code", "C20261203001"),
            ("plan_id", "106"),
            ("contract_state", state),
            ("openid", "o-payer"),
            ("contract_signed_time", "2026-12-03 10:00:00"),
        ];
        if let Some(m) = mode {
            extra.push(("contract_termination_mode", m));
        }
        let (mut h, seen) = scripted(merchant(), reply(&extra));
        let st = h
            .contract_query(&ContractQueryRequest {
                contract: contract(None),
                plan_id: "106".into(),
            })
            .unwrap();
        assert_eq!(st.state, want, "{state}");
        assert_eq!(st.contract.provider_contract_id.as_deref(), Some("Wx1546"));
        assert_eq!(st.payer_id.as_deref(), Some("o-payer"));
        let req = &seen.borrow()[0];
        assert!(req.url.ends_with("/papay/querycontract"));
        let sent = sent_nonceless(req);
        assert_eq!(sent["plan_id"], "106");
        assert_eq!(sent["contract_code"], "C20261203001");
        assert_eq!(sent["version"], "1.0");
    }
    // An answer about another contract is refused; one WeChat does not
    // know was never signed.
    let (mut h, _) = scripted(
        merchant(),
        reply(&[("contract_code", "OTHER"), ("contract_state", "0")]),
    );
    let q = ContractQueryRequest {
        contract: contract(Some("Wx1546")),
        plan_id: "106".into(),
    };
    assert!(matches!(
        h.contract_query(&q).unwrap_err(),
        AdapterError::MalformedResponse(_)
    ));
    let (mut h, _) = scripted(
        merchant(),
        reply(&[
            ("result_code", "FAIL"),
            ("err_code", "CONTRACT_NOT_EXIST"),
            ("err_code_des", "no such contract"),
        ]),
    );
    let st = h.contract_query(&q).unwrap();
    assert_eq!(st.state, ContractState::PendingSignature);
    assert_eq!(st.provider_state, "CONTRACT_NOT_EXIST");
}

#[test]
fn terminating_names_the_contract_by_its_id_and_the_reason() {
    let (mut h, seen) = scripted(
        merchant(),
        reply(&[("contract_id", "Wx1546"), ("plan_id", "106")]),
    );
    let st = h
        .contract_terminate(&ContractTerminateRequest {
            contract: contract(Some("Wx1546")),
            plan_id: "106".into(),
            reason: "会员到期".into(),
        })
        .unwrap();
    assert!(matches!(st.state, ContractState::Terminated(_)));
    let sent = sent_nonceless(&seen.borrow()[0]);
    assert!(seen.borrow()[0].url.ends_with("/papay/deletecontract"));
    assert_eq!(sent["contract_id"], "Wx1546");
    assert!(!sent.contains_key("contract_code"));
    assert_eq!(sent["contract_termination_remark"], "会员到期");
}

fn deduction(no: &str) -> DeductionRequest {
    DeductionRequest {
        contract: contract(Some("Wx1546")),
        merchant_deduction_no: no.into(),
        amount: Money {
            minor: 888,
            currency: "CNY".into(),
        },
        description: "水电代扣".into(),
        client_ip: Some("203.0.113.7".into()),
    }
}

#[test]
fn a_deduction_is_a_pap_order_accepted_not_charged() {
    let (mut h, seen) = scripted(merchant(), reply(&[]));
    let st = h.deduct(&deduction("D20261203001")).unwrap();
    assert_eq!(st.state, DeductionState::Pending);
    assert_eq!(st.provider_state, "ACCEPT");
    let req = &seen.borrow()[0];
    assert!(req.url.ends_with("/pay/pappayapply"));
    let sent = sent_fields(req);
    assert_eq!(sent["trade_type"], "PAP");
    assert_eq!(sent["contract_id"], "Wx1546");
    assert_eq!(sent["total_fee"], "888");
    assert_eq!(sent["out_trade_no"], "D20261203001");
    assert_eq!(sent["notify_url"], NOTIFY_URL);
    assert!(!sent.contains_key("fee_type"));
    // A repeat inside the notice window: accepted already.
    let (mut h, _) = scripted(
        merchant(),
        reply(&[("result_code", "FAIL"), ("err_code", "ORDER_ACCEPTED")]),
    );
    assert_eq!(
        h.deduct(&deduction("D20261203001")).unwrap().provider_state,
        "ORDER_ACCEPTED"
    );
    // WeChat's refusal keeps its code; nothing is sent without the
    // contract's id or an IP.
    let (mut h, _) = scripted(
        merchant(),
        reply(&[
            ("result_code", "FAIL"),
            ("err_code", "RULELIMIT"),
            ("err_code_des", "over the quota"),
        ]),
    );
    assert!(
        matches!(h.deduct(&deduction("D2")).unwrap_err(), AdapterError::ProviderRejected(r) if r.code == "RULELIMIT")
    );
    let (mut h, seen) = scripted(merchant(), reply(&[]));
    let mut unsigned = deduction("D3");
    unsigned.contract.provider_contract_id = None;
    assert!(matches!(
        h.deduct(&unsigned).unwrap_err(),
        AdapterError::InvalidRequest(_)
    ));
    let mut no_ip = deduction("D4");
    no_ip.client_ip = None;
    assert!(matches!(
        h.deduct(&no_ip).unwrap_err(),
        AdapterError::InvalidRequest(_)
    ));
    assert!(seen.borrow().is_empty());
}

#[test]
fn a_deductions_query_maps_its_states_and_checks_the_amount_comes_with_success() {
    let q = DeductionQueryRequest {
        contract: contract(Some("Wx1546")),
        merchant_deduction_no: "D20261203001".into(),
        provider_deduction_id: None,
    };
    for (word, want) in [
        ("SUCCESS", DeductionState::Succeeded),
        ("ACCEPT", DeductionState::Pending),
        ("NOTPAY", DeductionState::Pending),
        ("PAYERROR", DeductionState::Failed("balance too low".into())),
    ] {
        let (mut h, seen) = scripted(
            merchant(),
            reply(&[
                ("out_trade_no", "D20261203001"),
                ("trade_state", word),
                ("trade_state_desc", "balance too low"),
                ("contract_id", "Wx1546"),
                ("transaction_id", "4200000001"),
                ("total_fee", "888"),
                ("cash_fee", "888"),
                ("time_end", "20261203100000"),
            ]),
        );
        let st = h.deduction_query(&q).unwrap();
        assert_eq!(st.state, want, "{word}");
        assert!(seen.borrow()[0].url.ends_with("/pay/paporderquery"));
        if word == "SUCCESS" {
            assert_eq!(st.amount.as_ref().map(|m| m.minor), Some(888));
            assert_eq!(st.provider_deduction_id.as_deref(), Some("4200000001"));
            assert!(st.paid_at.is_some());
        } else {
            assert_eq!(st.amount, None);
        }
    }
    let (mut h, _) = scripted(
        merchant(),
        reply(&[("out_trade_no", "OTHER"), ("trade_state", "SUCCESS")]),
    );
    assert!(matches!(
        h.deduction_query(&q).unwrap_err(),
        AdapterError::MalformedResponse(_)
    ));
}

/// A v2 notification as WeChat signs it.
fn signed_notification(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut f = fields(pairs);
    let sig = wx_sign(&f, "MD5", KEY);
    f.insert("sign".into(), sig);
    xml::encode("xml", &f).into_bytes()
}

#[test]
fn contract_notifications_become_contract_events_and_forgeries_are_refused() {
    let signed = [
        ("return_code", "SUCCESS"),
        ("result_code", "SUCCESS"),
        ("mch_id", MCH_ID),
        ("contract_code", "C20261203001"),
        ("openid", "o-payer"),
        ("plan_id", "106"),
        ("change_type", "ADD"),
        ("operate_time", "2026-12-03 10:00:00"),
        ("contract_id", "Wx1546"),
    ];
    let mut h = merchant();
    let out = h
        .parse_notify(&inbound(signed_notification(&signed)))
        .unwrap();
    let [NotifyEvent::Contract(c)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(c.state, ContractState::Active);
    assert_eq!(c.contract.provider_contract_id.as_deref(), Some("Wx1546"));
    assert_eq!(c.payer_id.as_deref(), Some("o-payer"));
    assert_eq!(c.changed_at, Some(1_796_263_200));
    assert_eq!(out.ack.body, wire::ACK_SUCCESS.as_bytes());

    let mut deleted = signed.to_vec();
    deleted[6] = ("change_type", "DELETE");
    deleted.push(("contract_termination_mode", "2"));
    let out = h
        .parse_notify(&inbound(signed_notification(&deleted)))
        .unwrap();
    assert!(matches!(
        &out.events[..],
        [NotifyEvent::Contract(c)] if c.state == ContractState::Terminated("terminated by the payer".into())
    ));

    // Tampered after signing: refused with WeChat's FAIL answer.
    let forged = String::from_utf8(signed_notification(&signed))
        .unwrap()
        .replace("o-payer", "o-thief");
    let refused = h.parse_notify(&inbound(forged)).unwrap_err();
    assert!(matches!(refused.error, AdapterError::BadSignature(_)));
    assert_fail_ack(&refused);
}

#[test]
fn deduction_notifications_become_deduction_events_paid_only_with_a_transaction() {
    let paid = [
        ("return_code", "SUCCESS"),
        ("result_code", "SUCCESS"),
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ("openid", "o-payer"),
        ("out_trade_no", "D20261203001"),
        ("total_fee", "888"),
        ("cash_fee", "888"),
        ("transaction_id", "4200000001"),
        ("contract_id", "Wx1546"),
        ("time_end", "20261203100000"),
    ];
    let mut h = merchant();
    let out = h
        .parse_notify(&inbound(signed_notification(&paid)))
        .unwrap();
    let [NotifyEvent::Deduction(d)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(d.state, DeductionState::Succeeded);
    assert_eq!(d.merchant_deduction_no, "D20261203001");
    assert_eq!(d.contract.provider_contract_id.as_deref(), Some("Wx1546"));
    assert_eq!(
        d.amount.as_ref().map(|m| (m.minor, m.currency.as_str())),
        Some((888, "CNY"))
    );

    let failed = [
        ("return_code", "SUCCESS"),
        ("result_code", "FAIL"),
        ("err_code", "NOTENOUGH"),
        ("err_code_des", "余额不足"),
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("out_trade_no", "D20261203002"),
        ("contract_id", "Wx1546"),
    ];
    let out = h
        .parse_notify(&inbound(signed_notification(&failed)))
        .unwrap();
    assert!(matches!(
        &out.events[..],
        [NotifyEvent::Deduction(d)] if d.state == DeductionState::Failed("余额不足".into()) && d.amount.is_none()
    ));
    // WeChat's malformed sample: SUCCESS without a transaction is never paid.
    let no_transaction: Vec<_> = paid
        .iter()
        .filter(|(k, _)| *k != "transaction_id")
        .copied()
        .collect();
    let refused = h
        .parse_notify(&inbound(signed_notification(&no_transaction)))
        .unwrap_err();
    assert!(matches!(refused.error, AdapterError::InvalidRequest(_)));
}
