//! Payouts (the merchant transfer, providers.md §12.4) against scripted,
//! signed WeChat Pay answers, and the §12.8 notification vector.

use super::*;

const REPORT_INFOS: &str = r#"[{"info_type":"活动名称","info_content":"新会员有礼"},{"info_type":"奖励说明","info_content":"注册会员抽奖一等奖"}]"#;
const PAYEE_APP: &str = "wxd678efh567hg6787";
const OPENID: &str = "o-MYE42l80oelYMDE34nYD456Xoy";
const NAME: &str = "王小王";

fn payouts() -> Harness<WechatV3> {
    harness()
        .text("transfer_scene_id", "1000")
        .text("transfer_scene_report_infos", REPORT_INFOS)
}

fn payout(no: &str, minor: u64, real_name: Option<&str>) -> PayoutRequest {
    PayoutRequest {
        merchant_payout_no: no.into(),
        amount: Money {
            minor,
            currency: "CNY".into(),
        },
        payee: Payee {
            app_id: PAYEE_APP.into(),
            openid: OPENID.into(),
            real_name: real_name.map(String::from),
        },
        remark: "新会员开通有礼".into(),
        scene: None,
    }
}

fn waiting(no: &str) -> String {
    format!(
        r#"{{"out_bill_no":"{no}","transfer_bill_no":"1330000071100999991182020050700019480001","create_time":"2015-05-20T13:29:35.120+08:00","state":"WAIT_USER_CONFIRM","package_info":"affffddafdfafddffda=="}}"#
    )
}

#[test]
fn a_payout_is_a_signed_transfer_bill_waiting_for_the_payee() {
    let seen = Rc::new(RefCell::new(None));
    let s2 = seen.clone();
    let mut h = payouts().respond(move |req| {
        check_authorization(req);
        *s2.borrow_mut() = Some(req.clone());
        signed(200, &waiting("plfk2020042013"), NOW)
    });
    let st = h.payout(&payout("plfk2020042013", 200, None)).unwrap();
    let req = seen.borrow().clone().unwrap();
    assert_eq!(
        req.url,
        "https://api.mch.weixin.qq.com/v3/fund-app/mch-transfer/transfer-bills"
    );
    let b = body_of(&req);
    assert_eq!(b["appid"], PAYEE_APP);
    assert_eq!(b["out_bill_no"], "plfk2020042013");
    assert_eq!(b["transfer_scene_id"], "1000");
    assert_eq!(b["openid"], OPENID);
    assert_eq!(b["transfer_amount"], 200);
    assert_eq!(b["transfer_remark"], "新会员开通有礼");
    assert_eq!(b["notify_url"], "https://payhost.test/v1/notify/test/m1");
    assert_eq!(b["transfer_scene_report_infos"][1]["info_type"], "奖励说明");
    assert!(b.get("user_name").is_none() && b.get("user_recv_perception").is_none());
    assert!(http::header(&req.headers, "wechatpay-serial").is_none());

    assert_eq!(
        st.state,
        PayoutState::PendingUserConfirmation(Some(PayeeConfirmation {
            mch_id: MCHID.into(),
            app_id: PAYEE_APP.into(),
            package: "affffddafdfafddffda==".into(),
        }))
    );
    assert_eq!(st.provider_state, "WAIT_USER_CONFIRM");
    assert_eq!(
        st.payout.provider_payout_id.as_deref(),
        Some("1330000071100999991182020050700019480001")
    );
    // create_time, milliseconds and all: 2015-05-20T05:29:35Z.
    assert_eq!(st.updated_at, Some(1_432_099_775));
}

#[test]
fn a_real_name_travels_only_encrypted_for_the_key_it_names() {
    let seen = Rc::new(RefCell::new(None));
    let s2 = seen.clone();
    let mut h = payouts()
        .text("user_recv_perception", "活动奖励")
        .respond(move |req| {
            *s2.borrow_mut() = Some(req.clone());
            signed(200, &waiting("P200000"), NOW)
        });
    // At the 2,000 CNY line the name is required, and given.
    h.payout(&payout("P200000", 200_000, Some(NAME))).unwrap();
    let req = seen.borrow().clone().unwrap();
    assert_eq!(
        http::header(&req.headers, "wechatpay-serial"),
        Some(PUBLIC_KEY_ID)
    );
    let b = body_of(&req);
    assert_eq!(b["user_recv_perception"], "活动奖励");
    let cipher = encoding::base64_decode(b["user_name"].as_str().unwrap()).unwrap();
    assert_eq!(
        native::rsa_oaep_sha1_decrypt(KEY_PEM, &cipher).unwrap(),
        NAME.as_bytes()
    );
    assert!(!String::from_utf8_lossy(&req.body).contains(NAME));
    assert!(h.logs().iter().all(|(_, line)| !line.contains(NAME)));
}

#[test]
fn payouts_wechat_would_refuse_are_refused_before_sending() {
    let refused = |mut h: Harness<WechatV3>, p: PayoutRequest| {
        let e = h.payout(&p).unwrap_err();
        assert!(h.sent().is_empty(), "{e:?}");
        e
    };
    let invalid = |p: PayoutRequest, needle: &str| match refused(payouts(), p) {
        AdapterError::InvalidRequest(m) => assert!(m.contains(needle), "{m}"),
        other => panic!("{other:?}"),
    };
    // One fen under 2,000 CNY needs no name; at 2,000 CNY it does.
    invalid(payout("P1", 200_000, None), "payee.real_name");
    let mut h = payouts().respond(|_| signed(200, &waiting("P1"), NOW));
    assert!(h.payout(&payout("P1", 199_999, None)).is_ok());
    invalid(payout("P-1", 100, None), "merchant_payout_no");
    invalid(payout(&"P".repeat(33), 100, None), "merchant_payout_no");
    invalid(payout("P1", 0, None), "amount.minor");
    let mut eur = payout("P1", 100, None);
    eur.amount.currency = "EUR".into();
    invalid(eur, "CNY");
    let mut long = payout("P1", 100, None);
    long.remark = "字".repeat(33);
    invalid(long, "remark");
    let long_name = "名".repeat(65);
    match refused(payouts(), payout("P1", 100, Some(&long_name))) {
        AdapterError::InvalidRequest(m) => {
            assert!(m.contains("payee.real_name") && !m.contains('名'), "{m}")
        }
        other => panic!("{other:?}"),
    }
    // No scene anywhere; a scene of its own is taken.
    let no_scene = harness().text("transfer_scene_report_infos", REPORT_INFOS);
    assert!(matches!(
        refused(no_scene, payout("P1", 100, None)),
        AdapterError::InvalidRequest(m) if m.contains("transfer_scene_id")
    ));
    for infos in [
        None,
        Some("[]"),
        Some(r#"[{"info_type":"活动名称"}]"#),
        Some("x"),
    ] {
        let mut h = harness().text("transfer_scene_id", "1000");
        if let Some(i) = infos {
            h = h.text("transfer_scene_report_infos", i);
        }
        assert!(matches!(
            refused(h, payout("P1", 100, None)),
            AdapterError::InvalidConfig(m) if m.contains("transfer_scene_report_infos")
        ));
    }
    // Partner and global mode have no merchant transfer here.
    let partner = payouts()
        .text("mode", "partner")
        .text("sub_mchid", "1900000109");
    assert!(matches!(
        refused(partner, payout("P1", 100, None)),
        AdapterError::Unsupported(_)
    ));
}

#[test]
fn payout_query_maps_every_state_and_checks_whose_bill_it_is() {
    let bill = |state: &str, extra: &str| {
        format!(
            r#"{{"mch_id":"{MCHID}","out_bill_no":"plfk2020042013","transfer_bill_no":"1330000071100999991182020050700019480001","appid":"{PAYEE_APP}","state":"{state}","transfer_amount":2000,"transfer_remark":"r","openid":"{OPENID}","create_time":"2025-01-01T10:00:00+08:00","update_time":"2025-01-01T10:00:05+08:00"{extra}}}"#
        )
    };
    let query = PayoutQueryRequest {
        payout: PayoutRef {
            merchant_payout_no: "plfk2020042013".into(),
            provider_payout_id: None,
        },
    };
    for (word, extra, want) in [
        ("ACCEPTED", "", PayoutState::Accepted),
        ("PROCESSING", "", PayoutState::Processing),
        (
            "WAIT_USER_CONFIRM",
            "",
            PayoutState::PendingUserConfirmation(None),
        ),
        ("TRANSFERING", "", PayoutState::Processing),
        ("SUCCESS", "", PayoutState::Succeeded),
        (
            "FAIL",
            r#","fail_reason":"PAYEE_ACCOUNT_ABNORMAL""#,
            PayoutState::Failed("PAYEE_ACCOUNT_ABNORMAL".into()),
        ),
        ("CANCELING", "", PayoutState::Processing),
        ("CANCELLED", "", PayoutState::Cancelled),
    ] {
        let body = bill(word, extra);
        let mut h = payouts().respond(move |req| {
            check_authorization(req);
            assert_eq!(req.method, HttpMethod::Get);
            assert_eq!(
                req.url,
                "https://api.mch.weixin.qq.com/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/plfk2020042013"
            );
            signed(200, &body, NOW)
        });
        let st = h.payout_query(&query).unwrap();
        assert_eq!(st.state, want, "{word}");
        assert_eq!(st.provider_state, word);
        assert_eq!(st.amount.as_ref().map(|m| m.minor), Some(2000));
        assert_eq!(st.payee_id.as_deref(), Some(OPENID));
        assert_eq!(st.updated_at, Some(1_735_696_805));
    }
    // No such bill: WeChat never accepted it, so it failed.
    let mut h =
        payouts().respond(|_| signed(404, r#"{"code":"NOT_FOUND","message":"no such bill"}"#, NOW));
    let st = h.payout_query(&query).unwrap();
    assert!(
        matches!(&st.state, PayoutState::Failed(r) if r.starts_with("NOT_FOUND")),
        "{:?}",
        st.state
    );
    assert_eq!(st.provider_state, "NOT_FOUND");
    let answering = |body: String| {
        let mut h = payouts().respond(move |_| signed(200, &body, NOW));
        h.payout_query(&query).unwrap_err()
    };
    for body in [
        bill("SUCCESS", "").replace(MCHID, "1900000002"),
        bill("SUCCESS", "").replace("plfk2020042013", "other"),
        bill("PAID", ""),
    ] {
        assert!(
            matches!(answering(body), AdapterError::MalformedResponse(_)),
            "refused"
        );
    }
    // WeChat's refusals keep their codes; a short operating account is
    // retried with the same number (§12.4.6).
    let mut h =
        payouts().respond(|_| signed(403, r#"{"code":"NOT_ENOUGH","message":"余额不足"}"#, NOW));
    match h.payout(&payout("P1", 100, None)).unwrap_err() {
        AdapterError::ProviderRejected(r) => assert_eq!(r.code, "NOT_ENOUGH"),
        other => panic!("{other:?}"),
    }
}

/// providers.md §12.8: the `MCHTRANSFER.BILL.FINISHED` resource encrypted
/// with the Java SDK's APIv3 key (derived there, not published by WeChat).
const FINISHED_CIPHERTEXT: &str = "6ZlkfRD4Qb+CW2eY+xbg+6m9LIuLtnxd6AygPgcU/P/W4JfrMRTIzqSHjhpOl1rCdeqpGUuRQwGAobPt4j1dCr2fcfX9vOjpu8GHRDKv46kO5RvBlYEIXxqOpEGaMy6+yFWlOrHeyzNB/33Wdekk4xYvJ1+belzWvCy8/eaaUhFd1gnmmUbmtlVNEXMeEVGop2hjsHmDTZHC2CMEy1om3vxloLnT2uBpEtb5HP7SVn9Or4/n67oUebcQLgw5Tl6gnmXTf+hnrL//97zz8p2NU+YiNFTsWWK6LwhztjEFtO4B+zmSbmG4G9QQWfKR00faFTcsHyTJgU1uF9/D3vWstlH3tIskMlfDgTi9iInQtiPbqxutN2qZpcRRrIyIriWquZRMJ3F6sE4R";

fn finished(ciphertext: &str) -> InboundHttp {
    let body = serde_json::json!({
        "id": "EV-2025010110", "create_time": "2025-01-01T10:00:05+08:00",
        "event_type": "MCHTRANSFER.BILL.FINISHED", "resource_type": "encrypt-resource",
        "summary": "商家转账单据终态通知",
        "resource": {
            "algorithm": "AEAD_AES_256_GCM", "ciphertext": ciphertext,
            "associated_data": "mch_payment", "nonce": "fPqxLQRZmjVn", "original_type": "mch_payment",
        },
    })
    .to_string();
    signed_notification(&body, NOW)
}

#[test]
fn the_transfer_finished_vector_is_a_succeeded_payout_event() {
    let mut h = payouts().text("mchid", "1900001109");
    let out = h.parse_notify(&finished(FINISHED_CIPHERTEXT)).unwrap();
    assert_eq!(out.ack.status, 200);
    let [NotifyEvent::Payout(p)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(p.payout.merchant_payout_no, "plfk2020042013");
    assert_eq!(p.state, PayoutState::Succeeded);
    assert_eq!(p.amount.as_ref().map(|m| m.minor), Some(2000));
    assert_eq!(p.payee_id.as_deref(), Some(OPENID));

    // The same verified bill for another merchant changes nothing.
    let err = payouts()
        .parse_notify(&finished(FINISHED_CIPHERTEXT))
        .unwrap_err();
    assert!(
        matches!(err.error, AdapterError::InvalidRequest(_)),
        "{err:?}"
    );
    // One changed ciphertext byte does not decrypt.
    let mut changed = FINISHED_CIPHERTEXT.to_string();
    changed.replace_range(0..1, "7");
    let err = h.parse_notify(&finished(&changed)).unwrap_err();
    assert!(
        matches!(err.error, AdapterError::BadSignature(_)),
        "{err:?}"
    );
    assert_eq!(err.ack.map(|a| a.status), Some(400));
}
