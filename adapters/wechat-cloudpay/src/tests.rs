//! The §9.9 key-conversion vector and every operation against scripted
//! answers of the open-interface service, callbacks included (each one
//! confirmed by a query the test answers).

use super::*;
use payhost_sdk::json::json;
use payhost_sdk::testing::{Harness, assert_known_currency, fuzz, fuzz_well_formed, with_body};
use std::cell::RefCell;
use std::rc::Rc;

const ENV: &str = "prod-66733tes755tabc";
const SUB_MCH: &str = "1712734762";
const APPID: &str = "wxd2565e6a04246fd1";
const OPENID: &str = "oZp5njTTsWaCeEoXi14oeOVCKlik";

fn harness() -> Harness<WechatCloudpay> {
    Harness::new()
        .text("env_id", ENV)
        .text("sub_mch_id", SUB_MCH)
        .text("appid", APPID)
        .text("container_service", "payhost")
        .with_schema_defaults()
}

/// The open interface's envelope around `respdata`.
fn answer(respdata: Value) -> HttpResponse {
    http::response(
        200,
        "application/json",
        json::to_body(&json!({"errcode": 0, "errmsg": "ok", "respdata": respdata})),
    )
}

/// A fully successful `respdata` with `extra` fields.
fn success(extra: Value) -> HttpResponse {
    let mut data = json!({
        "return_code": "SUCCESS", "return_msg": "OK", "result_code": "SUCCESS",
        "appid": "wxplatform000000", "mch_id": "1800780001", "sub_mch_id": SUB_MCH,
    });
    for (k, v) in extra.as_object().unwrap() {
        data[k] = v.clone();
    }
    answer(data)
}

fn refused(err_code: &str) -> HttpResponse {
    answer(json!({
        "return_code": "SUCCESS", "result_code": "FAIL", "sub_mch_id": SUB_MCH,
        "err_code": err_code, "err_code_des": "refused",
    }))
}

fn api(req: &HttpRequest) -> &str {
    req.url
        .strip_prefix("http://api.weixin.qq.com/_/pay/")
        .unwrap_or_else(|| panic!("unexpected URL {}", req.url))
}

fn body(req: &HttpRequest) -> Value {
    json::from_body(&req.body).unwrap()
}

fn order(no: &str, amount: u64) -> OrderRequest {
    OrderRequest {
        merchant_order_no: no.into(),
        amount: Money {
            minor: amount,
            currency: "CNY".into(),
        },
        description: "Tea, 250 g".into(),
        method: MINI_PROGRAM.into(),
        payer: Payer {
            app_id: Some(APPID.into()),
            openid: Some(OPENID.into()),
            client_ip: Some("59.37.125.120".into()),
        },
        expires_at: None,
        attach: Some("cart-17".into()),
    }
}

fn prepaid() -> HttpResponse {
    success(json!({
        "trade_type": "JSAPI", "prepay_id": "wx29415831e6a111ccb805125015a7282000",
        "payment": {"appId": APPID, "timeStamp": "1647841885", "nonceStr": "BfM1ojiTfFCbpmkL",
                    "package": "prepay_id=wx2825019415cb82821e6a15a7c113510000", "signType": "MD5",
                    "paySign": "038EE415FD025B0D37717E8A1D6C34B6"},
    }))
}

fn paid_query(no: &str, fee: u64) -> HttpResponse {
    success(json!({
        "out_trade_no": no, "trade_state": "SUCCESS", "total_fee": fee, "fee_type": "CNY",
        "cash_fee": fee, "transaction_id": "4200004561202203217657282768",
        "time_end": "20220321132007", "openid": "oPoo341Im", "sub_openid": OPENID,
    }))
}

fn rejection(e: &AdapterError) -> (&str, bool) {
    match e {
        AdapterError::ProviderRejected(r) => (r.code.as_str(), r.retryable),
        other => panic!("not a rejection: {other:?}"),
    }
}

// ------------------------------------------------------------ §9.9 vector

#[test]
fn the_sdk_key_conversion_vector() {
    let camel = json!({"functionName": "f", "envId": "e", "subMchId": "s", "nonceStr": "n",
        "outTradeNo": "o", "totalFee": 1, "spbillCreateIp": "i", "tradeType": "JSAPI",
        "subOpenid": "so", "subAppid": "sa", "timeExpire": "t", "outRefundNo": "r",
        "refundFee": 1, "sceneInfo": {"storeInfo": {"id": "x"}}});
    let snake = json!({"function_name": "f", "env_id": "e", "sub_mch_id": "s", "nonce_str": "n",
        "out_trade_no": "o", "total_fee": 1, "spbill_create_ip": "i", "trade_type": "JSAPI",
        "sub_openid": "so", "sub_appid": "sa", "time_expire": "t", "out_refund_no": "r",
        "refund_fee": 1, "scene_info": {"store_info": {"id": "x"}}});
    assert_eq!(wire::convert_keys(&camel, wire::snake_case), snake);
    // Snake keys pass through unchanged.
    assert_eq!(wire::convert_keys(&snake, wire::snake_case), snake);

    let payment = json!({"appId": "a", "timeStamp": "1", "nonceStr": "n", "package": "p",
        "signType": "MD5", "paySign": "s"});
    let response = json!({"return_code": "SUCCESS", "result_code": "SUCCESS", "prepay_id": "p",
        "sub_mch_id": "s", "out_refund_no_list": ["r"], "refund_status_list": ["SUCCESS"],
        "payment": payment});
    assert_eq!(
        wire::convert_keys(&response, wire::camel_case),
        json!({"returnCode": "SUCCESS", "resultCode": "SUCCESS", "prepayId": "p",
            "subMchId": "s", "outRefundNoList": ["r"], "refundStatusList": ["SUCCESS"],
            "payment": payment})
    );
}

#[test]
fn describe_lists_one_method_cny_and_no_secret() {
    let info = WechatCloudpay::describe();
    assert_eq!(info.name, "wechat-cloudpay");
    assert_eq!(info.methods, vec![MINI_PROGRAM.to_string()]);
    assert_eq!(CURRENCIES, &["CNY"]);
    assert_eq!(info.currencies, vec!["CNY".to_string()]);
    assert_eq!(info.egress_hosts, vec!["api.weixin.qq.com".to_string()]);
    let c = &info.capabilities;
    assert!(c.close && c.refund_query && c.payment_notifications && c.partial_refunds);
    // The sidecar authenticates: nothing secret to configure.
    assert!(
        info.config_schema
            .iter()
            .all(|f| f.kind != FieldKind::Secret)
    );
    let default = |n: &str| {
        info.config_schema
            .iter()
            .find(|f| f.name == n)
            .and_then(|f| f.default.clone())
    };
    assert_eq!(
        default("base_url").as_deref(),
        Some("http://api.weixin.qq.com")
    );
    assert_eq!(
        default("unified_order_api").as_deref(),
        Some("unifiedOrder")
    );
    assert_eq!(default("callback_key_preference").as_deref(), Some("camel"));
}

// ------------------------------------------------------------ unified order

#[test]
fn unified_order_sends_snake_case_json_and_hands_over_the_payment() {
    let mut h = harness().respond(|_| prepaid());
    let created = h
        .unified_order(&order("2021WERUN1647840687637", 1))
        .unwrap();
    let sent = &h.sent()[0];
    assert_eq!(sent.url, "http://api.weixin.qq.com/_/pay/unifiedOrder");
    assert_eq!(
        http::header(&sent.headers, "content-type"),
        Some("application/json")
    );
    let b = body(sent);
    assert_eq!(b["total_fee"], json!(1), "a JSON number");
    assert_eq!(b["out_trade_no"], "2021WERUN1647840687637");
    assert_eq!(b["openid"], OPENID);
    assert_eq!(b["sub_mch_id"], SUB_MCH);
    assert_eq!(b["env_id"], ENV);
    assert_eq!(b["callback_type"], json!(2));
    assert_eq!(
        b["container"],
        json!({"service": "payhost", "path": "/v1/notify/test/m1"})
    );
    assert_eq!(b["spbill_create_ip"], "59.37.125.120");
    assert_eq!(b["trade_type"], "JSAPI");
    assert_eq!(b["fee_type"], "CNY");
    assert_eq!(b["attach"], "cart-17");
    assert_eq!(b["nonce_str"].as_str().unwrap().len(), 32);
    // Nothing the platform fills, nothing camelCase.
    for key in b.as_object().unwrap().keys() {
        assert!(!["mch_id", "appid", "sign", "sign_type"].contains(&key.as_str()));
        assert_eq!(key, &wire::snake_case(key), "{key}");
    }
    let PayAction::MiniProgram(p) = created.action else {
        panic!("{:?}", created.action)
    };
    assert_eq!(p.app_id, APPID);
    assert_eq!(p.package, "prepay_id=wx2825019415cb82821e6a15a7c113510000");
    assert_eq!(p.pay_sign, "038EE415FD025B0D37717E8A1D6C34B6");
    assert_eq!(p.time_stamp, "1647841885");
    assert_eq!(created.order.merchant_order_no, "2021WERUN1647840687637");
}

#[test]
fn unified_order_follows_the_configured_name_path_and_resource_reuse() {
    let mut h = harness()
        .text("unified_order_api", "unifiedorder")
        .text("container_path", "/pay/callback")
        .text("send_sub_appid", "true")
        .respond(|_| prepaid());
    let mut o = order("ORDER0001", 100);
    o.expires_at = Some(1_700_000_000 + 900);
    h.unified_order(&o).unwrap();
    let sent = &h.sent()[0];
    assert_eq!(sent.url, "http://api.weixin.qq.com/_/pay/unifiedorder");
    let b = body(sent);
    assert_eq!(b["container"]["path"], "/pay/callback");
    assert_eq!(b["sub_appid"], APPID);
    assert_eq!(b["sub_openid"], OPENID);
    assert!(b.get("openid").is_none());
    assert_eq!(b["time_expire"], "20231115062820");

    let mut h = harness().text("unified_order_api", "UnifiedOrder");
    let e = h.unified_order(&o).unwrap_err();
    assert!(matches!(e, AdapterError::InvalidConfig(m) if m.contains("unified_order_api")));
}

#[test]
fn unified_order_failures_never_hand_over_a_payment() {
    let fail_payment = json!({"appId": APPID, "timeStamp": "1", "nonceStr": "",
        "package": "prepay_id=", "signType": "MD5", "paySign": "X"});
    // §9.3: the merchant number is not bound (payment still present).
    let mut h = harness().respond(move |_| {
        answer(
            json!({"return_code": "FAIL", "return_msg": "受理关系不存在", "payment": fail_payment}),
        )
    });
    let e = h.unified_order(&order("ORDER0001", 1)).unwrap_err();
    assert_eq!(rejection(&e), ("FAIL", false));
    // §9.4: the Cloud Hosting failure with an invalid openid.
    let mut h = harness().respond(|_| refused("PARAM_ERROR"));
    let e = h.unified_order(&order("ORDER0001", 1)).unwrap_err();
    assert_eq!(rejection(&e), ("PARAM_ERROR", false));
    let mut h = harness().respond(|_| refused("SYSTEMERROR"));
    assert_eq!(
        rejection(&h.unified_order(&order("ORDER0001", 1)).unwrap_err()),
        ("SYSTEMERROR", true)
    );
    // SUCCESS, but no prepay id.
    let mut h = harness().respond(|_| {
        success(json!({"prepay_id": "", "payment": {"appId": APPID, "package": "prepay_id="}}))
    });
    assert!(matches!(
        h.unified_order(&order("ORDER0001", 1)).unwrap_err(),
        AdapterError::MalformedResponse(m) if m.contains("prepay_id")
    ));
    // A payment for another mini-program (resource reuse).
    let mut h = harness().respond(|_| {
        success(
            json!({"prepay_id": "wx1", "payment": {"appId": "wxother", "timeStamp": "1",
            "nonceStr": "n", "package": "prepay_id=wx1", "signType": "MD5", "paySign": "S"}}),
        )
    });
    assert!(matches!(
        h.unified_order(&order("ORDER0001", 1)).unwrap_err(),
        AdapterError::MalformedResponse(m) if m.contains("wxother")
    ));
}

#[test]
fn platform_errors_empty_answers_and_http_failures() {
    let cases: Vec<(HttpResponse, &str, bool)> = vec![
        (
            http::response(
                200,
                "application/json",
                r#"{"errcode":45105,"errmsg":"invalid content type"}"#,
            ),
            "ERRCODE_45105",
            false,
        ),
        (
            http::response(200, "application/json", r#"{"errcode":-1,"errmsg":"busy"}"#),
            "ERRCODE_-1",
            true,
        ),
        (
            http::response(200, "application/json", ""),
            "EMPTY_ANSWER",
            false,
        ),
        (http::response(503, "text/html", "down"), "HTTP_503", true),
        (http::response(302, "text/html", ""), "HTTP_302", false),
    ];
    for (response, code, retryable) in cases {
        let mut h = harness().respond(move |_| response.clone());
        let e = h.unified_order(&order("ORDER0001", 1)).unwrap_err();
        assert_eq!(rejection(&e), (code, retryable));
    }
    let mut h = harness().respond(|_| http::response(200, "application/json", "{oops"));
    assert!(matches!(
        h.query(&QueryRequest {
            order: OrderRef {
                merchant_order_no: "ORDER0001".into(),
                provider_trade_no: None,
                channel_transaction_id: None
            }
        })
        .unwrap_err(),
        AdapterError::MalformedResponse(_)
    ));
    // An answer about another merchant number.
    let mut h = harness().respond(|_| {
        answer(json!({"return_code": "SUCCESS", "result_code": "SUCCESS", "sub_mch_id": "999"}))
    });
    assert!(matches!(
        h.unified_order(&order("ORDER0001", 1)).unwrap_err(),
        AdapterError::MalformedResponse(m) if m.contains("999")
    ));
}

#[test]
fn refused_before_sending() {
    let mut h = harness();
    let mut o = order("ORDER0001", 1);
    o.method = "wechat_native".into();
    assert!(
        matches!(h.unified_order(&o).unwrap_err(), AdapterError::Unsupported(m) if m.contains("wechat_mini_program"))
    );
    let mut o = order("ORDER0001", 1);
    o.amount.currency = "USD".into();
    assert!(
        matches!(h.unified_order(&o).unwrap_err(), AdapterError::InvalidRequest(m) if m.contains("CNY"))
    );
    let mut o = order("ORDER0001", 1);
    o.payer.openid = None;
    assert!(matches!(
        h.unified_order(&o).unwrap_err(),
        AdapterError::InvalidRequest(_)
    ));
    let mut o = order("ORDER0001", 1);
    o.payer.client_ip = Some("not-an-ip".into());
    assert!(matches!(
        h.unified_order(&o).unwrap_err(),
        AdapterError::InvalidRequest(_)
    ));
    let mut o = order("ORDER|0001", 1);
    o.merchant_order_no = "ORDER|0001".into();
    assert!(matches!(
        h.unified_order(&o).unwrap_err(),
        AdapterError::InvalidRequest(_)
    ));
    assert!(h.sent().is_empty());
}

// ------------------------------------------------------------ query and close

fn order_ref(no: &str, tx: Option<&str>) -> OrderRef {
    OrderRef {
        merchant_order_no: no.into(),
        provider_trade_no: None,
        channel_transaction_id: tx.map(String::from),
    }
}

#[test]
fn query_maps_every_trade_state_conservatively() {
    for (word, state) in [
        ("SUCCESS", TradeState::Paid),
        ("REFUND", TradeState::Refunded),
        ("NOTPAY", TradeState::Pending),
        ("USERPAYING", TradeState::Pending),
        ("ACCEPT", TradeState::Pending),
        ("CLOSED", TradeState::Closed),
        ("REVOKED", TradeState::Closed),
        ("PAYERROR", TradeState::Failed),
    ] {
        let mut h = harness().respond(move |_| {
            success(
                json!({"out_trade_no": "ORDER0001", "trade_state": word, "total_fee": 100,
                "transaction_id": "4200000001"}),
            )
        });
        let st = h
            .query(&QueryRequest {
                order: order_ref("ORDER0001", None),
            })
            .unwrap();
        assert_eq!(st.state, state, "{word}");
        assert_eq!(st.provider_state, word);
        assert_eq!(
            st.amount,
            Some(Money {
                minor: 100,
                currency: "CNY".into()
            })
        );
    }
    let mut h = harness().respond(|_| success(json!({"trade_state": "SOMETHING"})));
    assert!(matches!(
        h.query(&QueryRequest {
            order: order_ref("ORDER0001", None)
        })
        .unwrap_err(),
        AdapterError::MalformedResponse(_)
    ));
}

#[test]
fn query_by_transaction_id_when_known_and_the_three_numbers() {
    let mut h = harness().respond(|_| paid_query("ORDER0001", 100));
    let st = h
        .query(&QueryRequest {
            order: order_ref("ORDER0001", Some("4200004561202203217657282768")),
        })
        .unwrap();
    let b = body(&h.sent()[0]);
    assert_eq!(api(&h.sent()[0]), "queryorder");
    assert_eq!(b["transaction_id"], "4200004561202203217657282768");
    assert!(b.get("out_trade_no").is_none());
    assert_eq!(st.order.merchant_order_no, "ORDER0001");
    assert_eq!(st.order.provider_trade_no, None);
    assert_eq!(
        st.order.channel_transaction_id.as_deref(),
        Some("4200004561202203217657282768")
    );
    assert_eq!(st.paid_at, Some(1_647_840_007));
    assert_eq!(st.payer_id.as_deref(), Some(OPENID));

    // An answer about another order, or paid without a transaction id.
    let mut h = harness().respond(|_| paid_query("ORDER0002", 100));
    assert!(
        h.query(&QueryRequest {
            order: order_ref("ORDER0001", None)
        })
        .is_err()
    );
    let mut h = harness().respond(|_| {
        success(json!({"out_trade_no": "ORDER0001", "trade_state": "SUCCESS", "total_fee": 1}))
    });
    assert!(matches!(
        h.query(&QueryRequest {
            order: order_ref("ORDER0001", None)
        })
        .unwrap_err(),
        AdapterError::MalformedResponse(m) if m.contains("transaction_id")
    ));
}

#[test]
fn close_closes_and_a_paid_order_answers_paid() {
    let req = CloseRequest {
        order: order_ref("ORDER0001", None),
    };
    let mut h = harness().respond(|_| success(json!({"result_msg": "OK"})));
    assert_eq!(h.close(&req).unwrap().state, TradeState::Closed);
    assert_eq!(api(&h.sent()[0]), "closeorder");
    assert_eq!(body(&h.sent()[0])["out_trade_no"], "ORDER0001");

    let mut h = harness().respond(|_| refused("ORDERCLOSED"));
    assert_eq!(h.close(&req).unwrap().state, TradeState::Closed);

    let mut h = harness().respond(|req| match api(req) {
        "closeorder" => refused("ORDERPAID"),
        _ => paid_query("ORDER0001", 100),
    });
    let st = h.close(&req).unwrap();
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.amount.unwrap().minor, 100);
    assert_eq!(h.sent().len(), 2);

    let mut h = harness().respond(|_| refused("SYSTEMERROR"));
    assert_eq!(
        rejection(&h.close(&req).unwrap_err()),
        ("SYSTEMERROR", true)
    );
}

// ------------------------------------------------------------ refunds

fn refund_req(no: &str, amount: u64) -> RefundRequest {
    RefundRequest {
        order: order_ref("ORDER0001", Some("4200000001")),
        refund_no: no.into(),
        amount: Money {
            minor: amount,
            currency: "CNY".into(),
        },
        order_amount: Money {
            minor: 100,
            currency: "CNY".into(),
        },
        reason: Some("damaged".into()),
    }
}

#[test]
fn refund_is_accepted_as_pending_with_its_callback_target() {
    let mut h = harness().respond(|_| {
        success(
            json!({"refund_id": "50000000382019052709732678859", "refund_fee": 40,
            "total_fee": 100, "out_trade_no": "ORDER0001", "out_refund_no": "R1",
            "transaction_id": "4200000001"}),
        )
    });
    let st = h.refund(&refund_req("R1", 40)).unwrap();
    let b = body(&h.sent()[0]);
    assert_eq!(api(&h.sent()[0]), "refund");
    assert_eq!(b["transaction_id"], "4200000001");
    assert_eq!(b["out_refund_no"], "R1");
    assert_eq!(b["total_fee"], json!(100));
    assert_eq!(b["refund_fee"], json!(40));
    assert_eq!(b["refund_desc"], "damaged");
    assert_eq!(b["env_id"], ENV);
    assert_eq!(b["container"]["service"], "payhost");
    assert_eq!(st.state, RefundState::Pending);
    assert_eq!(
        st.provider_refund_id.as_deref(),
        Some("50000000382019052709732678859")
    );
    assert_eq!(st.amount.unwrap().minor, 40);

    let mut h = harness();
    assert!(matches!(
        h.refund(&refund_req("R1", 101)).unwrap_err(),
        AdapterError::InvalidRequest(_)
    ));
    let mut usd = refund_req("R1", 10);
    usd.amount.currency = "USD".into();
    assert!(matches!(
        h.refund(&usd).unwrap_err(),
        AdapterError::InvalidRequest(_)
    ));
    assert!(h.sent().is_empty());
}

fn refund_query_req(id: Option<&str>) -> RefundQueryRequest {
    RefundQueryRequest {
        order: order_ref("ORDER0001", None),
        refund_no: "R1".into(),
        provider_refund_id: id.map(String::from),
    }
}

fn listed(status: &str) -> HttpResponse {
    success(
        json!({"out_trade_no": "ORDER0001", "transaction_id": "4200000001",
        "refund_count": 2, "out_refund_no_list": ["R0", "R1"], "refund_id_list": ["5000", "5001"],
        "refund_fee_list": [10, 40], "refund_status_list": ["SUCCESS", status]}),
    )
}

#[test]
fn refund_query_reads_the_lists_and_treats_empty_lists_as_pending() {
    for (word, state) in [
        ("SUCCESS", RefundState::Succeeded),
        ("PROCESSING", RefundState::Pending),
        ("CHANGE", RefundState::Pending),
        ("REFUNDCLOSE", RefundState::Failed),
    ] {
        let mut h = harness().respond(move |_| listed(word));
        let st = h.refund_query(&refund_query_req(Some("5001"))).unwrap();
        assert_eq!(st.state, state, "{word}");
        assert_eq!(st.provider_refund_id.as_deref(), Some("5001"));
        assert_eq!(st.amount.unwrap().minor, 40);
        assert_eq!(body(&h.sent()[0])["refund_id"], "5001");
    }
    // §9.6's defect: counted, not listed.
    let mut h = harness().respond(|_| {
        success(
            json!({"out_trade_no": "ORDER0001", "refund_count": 1, "out_refund_no_list": [],
            "refund_status_list": []}),
        )
    });
    let st = h.refund_query(&refund_query_req(None)).unwrap();
    assert_eq!(st.state, RefundState::Pending);
    assert_eq!(st.provider_state, "UNLISTED");
    assert_eq!(body(&h.sent()[0])["out_refund_no"], "R1");

    let mut h = harness().respond(|_| refused("REFUNDNOTEXIST"));
    assert_eq!(
        h.refund_query(&refund_query_req(None)).unwrap().state,
        RefundState::Failed
    );
}

// ------------------------------------------------------------ callbacks

fn callback(body: Value) -> InboundHttp {
    InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/test/m1".into(),
        query: String::new(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-wx-source".into(), "pay".into()),
        ],
        body: json::to_body(&body),
    }
}

/// §9.7's official example, for one of our orders.
fn paid_callback(no: &str, fee: u64) -> Value {
    json!({"returnCode": "SUCCESS", "appid": "wxd2565e6a04246fd1", "mchId": "1800780001",
        "subAppid": APPID, "subMchId": SUB_MCH, "nonceStr": "f6444fd22de27b16",
        "resultCode": "SUCCESS", "openid": "oPoo341Im", "isSubscribe": "N", "subOpenid": OPENID,
        "subIsSubscribe": "N", "tradeType": "JSAPI", "bankType": "OTHERS", "totalFee": fee,
        "feeType": "CNY", "cashFee": fee, "transactionId": "4200004561202203217657282768",
        "outTradeNo": no, "timeEnd": "20220321132007"})
}

fn ack_errcode(ack: &HttpResponse) -> i64 {
    let v: Value = json::from_body(&ack.body).unwrap();
    assert!(v["errmsg"].is_string(), "{v}");
    v["errcode"].as_i64().unwrap()
}

fn refused_with_ack(f: NotifyFailure) -> AdapterError {
    let ack = f.ack.expect("a refusal answers the platform");
    assert_ne!(ack_errcode(&ack), 0);
    f.error
}

#[test]
fn a_payment_callback_is_confirmed_by_query_and_acknowledged() {
    let queries = Rc::new(RefCell::new(0));
    let q = queries.clone();
    let mut h = harness().respond(move |req| {
        assert_eq!(api(req), "queryorder");
        assert_eq!(body(req)["out_trade_no"], "2021WERUN1647839289398");
        *q.borrow_mut() += 1;
        paid_query("2021WERUN1647839289398", 1)
    });
    let out = h
        .parse_notify(&callback(paid_callback("2021WERUN1647839289398", 1)))
        .unwrap();
    assert_eq!(*queries.borrow(), 1);
    assert_eq!(ack_errcode(&out.ack), 0);
    assert_eq!(out.ack.status, 200);
    let [NotifyEvent::Payment(st)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.order.merchant_order_no, "2021WERUN1647839289398");
    assert_eq!(
        st.order.channel_transaction_id.as_deref(),
        Some("4200004561202203217657282768")
    );
    assert_eq!(st.amount.as_ref().unwrap().minor, 1);
}

#[test]
fn snake_case_callbacks_are_read_and_the_preferred_casing_wins() {
    let snake = wire::convert_keys(&paid_callback("ORDER0001", 100), wire::snake_case);
    let mut h = harness().respond(|_| paid_query("ORDER0001", 100));
    assert_eq!(h.parse_notify(&callback(snake)).unwrap().events.len(), 1);

    // Both casings of the order number: camel wins by default ...
    let mut both = paid_callback("ORDER0001", 100);
    both["out_trade_no"] = "ORDER0002".into();
    let mut h = harness().respond(|req| {
        assert_eq!(body(req)["out_trade_no"], "ORDER0001");
        paid_query("ORDER0001", 100)
    });
    h.parse_notify(&callback(both.clone())).unwrap();
    // ... snake when configured.
    let mut h = harness()
        .text("callback_key_preference", "snake")
        .respond(|req| {
            assert_eq!(body(req)["out_trade_no"], "ORDER0002");
            paid_query("ORDER0002", 100)
        });
    h.parse_notify(&callback(both)).unwrap();
}

#[test]
fn callbacks_the_query_contradicts_are_refused() {
    // Tampered amount, another currency, another transaction id.
    let mut tampered = paid_callback("ORDER0001", 101);
    let mut h = harness().respond(|_| paid_query("ORDER0001", 100));
    let e = refused_with_ack(h.parse_notify(&callback(tampered.clone())).unwrap_err());
    assert!(matches!(e, AdapterError::BadSignature(m) if m.contains("101")));
    tampered["totalFee"] = 100.into();
    tampered["feeType"] = "USD".into();
    let e = refused_with_ack(h.parse_notify(&callback(tampered.clone())).unwrap_err());
    assert!(matches!(e, AdapterError::BadSignature(m) if m.contains("USD")));
    tampered["feeType"] = "CNY".into();
    tampered["transactionId"] = "4200000000000000000000000999".into();
    let e = refused_with_ack(h.parse_notify(&callback(tampered)).unwrap_err());
    assert!(matches!(e, AdapterError::BadSignature(_)));

    // A "paid" callback for an order WeChat Pay says is unpaid.
    let mut h = harness().respond(|_| {
        success(json!({"out_trade_no": "ORDER0001", "trade_state": "NOTPAY", "total_fee": 100}))
    });
    let e = refused_with_ack(
        h.parse_notify(&callback(paid_callback("ORDER0001", 100)))
            .unwrap_err(),
    );
    assert!(matches!(e, AdapterError::BadSignature(m) if m.contains("NOTPAY")));

    // An order WeChat Pay does not know, and a query that fails.
    for code in ["ORDERNOTEXIST", "SYSTEMERROR"] {
        let mut h = harness().respond(move |_| refused(code));
        let e = refused_with_ack(
            h.parse_notify(&callback(paid_callback("ORDER0001", 100)))
                .unwrap_err(),
        );
        assert!(matches!(e, AdapterError::InvalidRequest(m) if m.contains(code)));
    }
}

#[test]
fn callbacks_refused_without_a_query() {
    let mut h = harness();
    // Another merchant number.
    let mut other = paid_callback("ORDER0001", 100);
    other["subMchId"] = "999".into();
    refused_with_ack(h.parse_notify(&callback(other)).unwrap_err());
    // Not a POST, not JSON, not an object, no order number.
    let mut get = callback(paid_callback("ORDER0001", 100));
    get.method = HttpMethod::Get;
    refused_with_ack(h.parse_notify(&get).unwrap_err());
    let mut garbage = callback(json!({}));
    garbage.body = b"<xml/>".to_vec();
    refused_with_ack(h.parse_notify(&garbage).unwrap_err());
    refused_with_ack(h.parse_notify(&callback(json!([1, 2]))).unwrap_err());
    refused_with_ack(
        h.parse_notify(&callback(
            json!({"returnCode": "SUCCESS", "resultCode": "SUCCESS"}),
        ))
        .unwrap_err(),
    );
    // An encrypted req_info is not something cloudPay is known to send.
    refused_with_ack(
        h.parse_notify(&callback(
            json!({"returnCode": "SUCCESS", "reqInfo": "abc"}),
        ))
        .unwrap_err(),
    );
    assert!(h.sent().is_empty());

    // A failed result carries no payment: taken, nothing applied, no query.
    let mut failed = paid_callback("ORDER0001", 100);
    failed["resultCode"] = "FAIL".into();
    let out = h.parse_notify(&callback(failed)).unwrap();
    assert!(out.events.is_empty());
    assert_eq!(ack_errcode(&out.ack), 0);
    assert!(h.sent().is_empty());

    // With require_wx_source, a callback without the header.
    let mut h = harness().text("require_wx_source", "true");
    let mut bare = callback(paid_callback("ORDER0001", 100));
    bare.headers.retain(|(k, _)| k != "x-wx-source");
    refused_with_ack(h.parse_notify(&bare).unwrap_err());
    assert!(h.sent().is_empty());
}

fn refund_callback_body(status: &str) -> Value {
    json!({"returnCode": "SUCCESS", "appid": "wxplatform000000", "mchId": "1800780001",
        "subMchId": SUB_MCH, "nonceStr": "n", "outTradeNo": "ORDER0001", "outRefundNo": "R1",
        "refundId": "5001", "refundFee": 40, "totalFee": 100, "refundStatus": status,
        "transactionId": "4200000001"})
}

#[test]
fn refund_callbacks_are_confirmed_by_refund_query() {
    // Listed: the query's status is reported, whatever the callback says.
    let mut h = harness().respond(|req| {
        assert_eq!(api(req), "queryrefund");
        assert_eq!(body(req)["out_refund_no"], "R1");
        listed("SUCCESS")
    });
    let out = h
        .parse_notify(&callback(refund_callback_body("SUCCESS")))
        .unwrap();
    let [NotifyEvent::Refund(r)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert_eq!(r.state, RefundState::Succeeded);
    assert_eq!(r.refund_no, "R1");
    assert_eq!(r.order.merchant_order_no, "ORDER0001");
    assert_eq!(r.amount.as_ref().unwrap().minor, 40);
    assert_eq!(ack_errcode(&out.ack), 0);

    let mut h = harness().respond(|_| listed("PROCESSING"));
    let out = h
        .parse_notify(&callback(refund_callback_body("REFUNDCLOSE")))
        .unwrap();
    let [NotifyEvent::Refund(r)] = out.events.as_slice() else {
        panic!()
    };
    assert_eq!(r.state, RefundState::Pending);

    // Counted, not listed: SUCCESS is taken, a failure is not.
    let unlisted = || {
        success(json!({"out_trade_no": "ORDER0001", "refund_count": 1, "out_refund_no_list": []}))
    };
    for (claimed, want) in [
        ("SUCCESS", RefundState::Succeeded),
        ("REFUNDCLOSE", RefundState::Pending),
    ] {
        let mut h = harness().respond(move |_| unlisted());
        let out = h
            .parse_notify(&callback(refund_callback_body(claimed)))
            .unwrap();
        let [NotifyEvent::Refund(r)] = out.events.as_slice() else {
            panic!()
        };
        assert_eq!(r.state, want, "{claimed}");
        assert_eq!(r.amount, None);
    }

    // Unknown refund; a refund of another order.
    let mut h = harness().respond(|_| refused("REFUNDNOTEXIST"));
    refused_with_ack(
        h.parse_notify(&callback(refund_callback_body("SUCCESS")))
            .unwrap_err(),
    );
    let mut h = harness().respond(|_| {
        success(
            json!({"out_trade_no": "ORDER0009", "refund_count": 1, "out_refund_no_list": ["R1"],
            "refund_status_list": ["SUCCESS"], "refund_fee_list": [40]}),
        )
    });
    refused_with_ack(
        h.parse_notify(&callback(refund_callback_body("SUCCESS")))
            .unwrap_err(),
    );
}

/// Arbitrary bytes and arbitrary JSON objects with callback-like keys never
/// panic: each is refused with an answer for the platform, or (a failed
/// result) acknowledged without events.
#[test]
fn parse_notify_never_panics_on_arbitrary_input() {
    let keys = [
        "returnCode",
        "return_code",
        "resultCode",
        "outTradeNo",
        "out_trade_no",
        "totalFee",
        "feeType",
        "subMchId",
        "outRefundNo",
        "refundStatus",
        "reqInfo",
        "transactionId",
    ];
    let words = [
        "SUCCESS",
        "FAIL",
        "ORDER0001",
        "R1",
        "",
        "CNY",
        "é",
        SUB_MCH,
    ];
    let mut rng = fastrand::Rng::with_seed(11);
    for i in 0..400 {
        let body = if i % 2 == 0 {
            (0..rng.usize(0..64))
                .map(|_| rng.u8(..))
                .collect::<Vec<u8>>()
        } else {
            let mut obj = json!({});
            for _ in 0..rng.usize(0..8) {
                let k = keys[rng.usize(..keys.len())];
                obj[k] = match rng.u8(0..4) {
                    0 => json!(rng.u64(..)),
                    1 => json!(null),
                    2 => json!([words[rng.usize(..words.len())]]),
                    _ => json!(words[rng.usize(..words.len())]),
                };
            }
            json::to_body(&obj)
        };
        let headers = (0..rng.usize(0..3))
            .map(|_| {
                let name: String = (0..rng.usize(1..8)).map(|_| rng.alphanumeric()).collect();
                (name, String::from("v"))
            })
            .collect();
        let req = InboundHttp {
            method: if rng.bool() {
                HttpMethod::Post
            } else {
                HttpMethod::Get
            },
            path: "/v1/notify/test/m1".into(),
            query: String::new(),
            headers,
            body,
        };
        let mut h = harness().respond(|_| refused("ORDERNOTEXIST"));
        match h.parse_notify(&req) {
            Ok(out) => {
                assert!(out.events.is_empty(), "{:?}", out.events);
                assert_eq!(ack_errcode(&out.ack), 0);
            }
            Err(f) => {
                refused_with_ack(f);
            }
        }
    }
}

// ------------------------------------------------------------ fuzzing

/// The platform as the fuzz tests see it: order ORDER0001 paid 1.00 CNY,
/// its refund R1 of 0.40 succeeded.
fn confirming_platform(req: &HttpRequest) -> HttpResponse {
    match api(req) {
        "queryorder" => paid_query("ORDER0001", 100),
        "queryrefund" => listed("SUCCESS"),
        other => panic!("a callback asked {other}"),
    }
}

/// Callbacks are unsigned (the platform's own channel carries them), so
/// the adapter confirms each by a query: an event comes only after one was
/// sent, and is exactly what the platform's answer says.
#[test]
fn fuzz_parse_notify_never_panics_and_reports_only_what_a_query_confirmed() {
    // A mutated refund callback may name the order's other listed refund,
    // R0: what the list says of it is confirmed too.
    let mut other_refund = refund_callback_body("SUCCESS");
    other_refund["outRefundNo"] = "R0".into();
    other_refund["refundId"] = "5000".into();
    other_refund["refundFee"] = 10.into();
    let confirmed: Vec<Vec<NotifyEvent>> = [
        paid_callback("ORDER0001", 100),
        refund_callback_body("SUCCESS"),
        other_refund,
    ]
    .into_iter()
    .map(|b| {
        harness()
            .respond(confirming_platform)
            .parse_notify(&callback(b))
            .unwrap()
            .events
    })
    .collect();
    for (kind, sample, seed) in [
        (
            "payment",
            callback(paid_callback("ORDER0001", 100)),
            0x00f0_8801,
        ),
        (
            "refund",
            callback(refund_callback_body("SUCCESS")),
            0x00f0_8802,
        ),
    ] {
        fuzz(
            &format!("wechat-cloudpay parse_notify ({kind})"),
            &sample.body,
            seed,
            300,
            |body| {
                let mut h = harness().respond(confirming_platform);
                let mut req = sample.clone();
                req.body = body.to_vec();
                let Ok(out) = h.parse_notify(&req) else {
                    return false;
                };
                if !out.events.is_empty() {
                    assert!(!h.sent().is_empty(), "an event without a query");
                    assert!(confirmed.contains(&out.events), "{:?}", out.events);
                }
                !out.events.is_empty()
            },
        );
    }
}

/// A harness answering every request with `sample`'s status and headers
/// around `body`.
fn answering(sample: &HttpResponse, body: &[u8]) -> Harness<WechatCloudpay> {
    let answer = with_body(sample, body);
    harness().respond(move |_| answer.clone())
}

/// The open interface's answers are unsigned: whatever is taken still
/// names the order and refund asked about, in a real currency.
#[test]
fn fuzz_unsigned_answers_are_taken_well_formed() {
    let of_the_order = |st: &TradeStatus| {
        assert_eq!(st.order.merchant_order_no, "ORDER0001");
        assert_known_currency(st.amount.as_ref());
    };
    let of_the_refund = |r: &RefundStatus| {
        assert_eq!(
            (r.refund_no.as_str(), r.order.merchant_order_no.as_str()),
            ("R1", "ORDER0001")
        );
        assert_known_currency(r.amount.as_ref());
    };
    let created = prepaid();
    fuzz_well_formed(
        "wechat-cloudpay unified_order",
        &created.body,
        0x00f0_8803,
        300,
        |b| {
            answering(&created, b)
                .unified_order(&order("ORDER0001", 100))
                .ok()
        },
        |c| {
            assert_eq!(c.order.merchant_order_no, "ORDER0001");
            assert!(matches!(c.action, PayAction::MiniProgram(_)), "{c:?}");
        },
    );
    let paid = paid_query("ORDER0001", 100);
    let query = QueryRequest {
        order: order_ref("ORDER0001", None),
    };
    fuzz_well_formed(
        "wechat-cloudpay query",
        &paid.body,
        0x00f0_8804,
        300,
        |b| answering(&paid, b).query(&query).ok(),
        of_the_order,
    );
    let closed = success(json!({"result_msg": "OK"}));
    let close = CloseRequest {
        order: order_ref("ORDER0001", None),
    };
    fuzz_well_formed(
        "wechat-cloudpay close",
        &closed.body,
        0x00f0_8805,
        300,
        |b| answering(&closed, b).close(&close).ok(),
        of_the_order,
    );
    let refunding = success(
        json!({"refund_id": "50000000382019052709732678859", "refund_fee": 40,
        "total_fee": 100, "out_trade_no": "ORDER0001", "out_refund_no": "R1",
        "transaction_id": "4200000001"}),
    );
    fuzz_well_formed(
        "wechat-cloudpay refund",
        &refunding.body,
        0x00f0_8806,
        300,
        |b| answering(&refunding, b).refund(&refund_req("R1", 40)).ok(),
        of_the_refund,
    );
    let refunds = listed("SUCCESS");
    let refund_query = refund_query_req(Some("5001"));
    fuzz_well_formed(
        "wechat-cloudpay refund_query",
        &refunds.body,
        0x00f0_8807,
        300,
        |b| answering(&refunds, b).refund_query(&refund_query).ok(),
        of_the_refund,
    );
}

/// Found by `fuzz_unsigned_answers_are_taken_well_formed`: a query answer
/// with `fee_type` `CJY` was taken as a paid amount in a currency that
/// does not exist.
#[test]
fn an_amount_in_a_currency_iso_4217_does_not_know_is_refused() {
    let mut answer: Value = json::from_body(&paid_query("ORDER0001", 100).body).unwrap();
    answer["respdata"]["fee_type"] = "CJY".into();
    let mut h =
        harness().respond(move |_| http::response(200, "application/json", json::to_body(&answer)));
    let e = h
        .query(&QueryRequest {
            order: order_ref("ORDER0001", None),
        })
        .unwrap_err();
    assert!(
        matches!(&e, AdapterError::MalformedResponse(m) if m.contains("CJY")),
        "{e:?}"
    );
    let mut bad = paid_callback("ORDER0001", 100);
    bad["feeType"] = "CJY".into();
    let f = harness().parse_notify(&callback(bad)).unwrap_err();
    assert!(matches!(f.error, AdapterError::InvalidRequest(_)), "{f:?}");
}

/// Found by `fuzz_unsigned_answers_are_taken_well_formed`: a refund answer
/// naming another `out_trade_no` was taken, and reported as that order's.
#[test]
fn a_refund_answer_for_another_order_is_refused() {
    let mut h = harness().respond(|_| {
        success(
            json!({"refund_id": "5001", "refund_fee": 40, "out_trade_no": "ORDER0081",
            "out_refund_no": "R1"}),
        )
    });
    let e = h.refund(&refund_req("R1", 40)).unwrap_err();
    assert!(
        matches!(&e, AdapterError::MalformedResponse(m) if m.contains("ORDER0081")),
        "{e:?}"
    );
}
