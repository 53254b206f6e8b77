//! The simulator checked over real HTTP with hand-built requests. The test
//! side signs with `payhost_sdk::native` directly.

use super::*;

const APPID: &str = "wxd930ea5d5a258f4f";
const MCH_ID: &str = "10000100";
const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

fn test_sign(f: &Fields, sign_type: SignType, key: &str) -> String {
    let temp = format!("{}&key={key}", canonical::sorted_pairs(f, &["sign"]));
    let bytes = match sign_type {
        SignType::Md5 => native::digest(DigestAlgorithm::Md5, temp.as_bytes()),
        SignType::HmacSha256 => {
            let mut t = SecretTable::new();
            let h = t.insert(key.as_bytes().to_vec());
            t.hmac(
                DigestAlgorithm::Sha256,
                h,
                KeyEncoding::Raw,
                &[Part::Text(&temp)],
            )
            .unwrap()
        }
    };
    encoding::hex_upper(&bytes)
}

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn order(out_trade_no: &str, total_fee: &str) -> Fields {
    fields(&[
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ("body", "Tea"),
        ("out_trade_no", out_trade_no),
        ("total_fee", total_fee),
        ("spbill_create_ip", "203.0.113.7"),
        ("notify_url", "https://payhost.test/v1/notify/wechat-v2/m1"),
        ("trade_type", "JSAPI"),
        ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
    ])
}

fn signed(mut f: Fields, sign_type: SignType) -> String {
    if sign_type == SignType::HmacSha256 {
        f.insert("sign_type".into(), "HMAC-SHA256".into());
    }
    let s = test_sign(&f, sign_type, KEY);
    f.insert("sign".into(), s);
    xml::encode("xml", &f)
}

async fn sim() -> Simulator {
    Simulator::start(SimConfig::new(APPID, MCH_ID, KEY)).await
}

/// POSTs `body` and returns the answer's fields, checking the answer's
/// signature whenever it is a signed one.
async fn call(sim: &Simulator, path: &str, body: String) -> Fields {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", sim.base_url()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, f) = xml::decode(&resp.bytes().await.unwrap()).unwrap();
    if f["return_code"] == "SUCCESS" {
        let st = SignType::parse(f.get("sign_type").map(String::as_str).unwrap_or("MD5")).unwrap();
        let expected_md5 = test_sign(&f, st, KEY);
        let expected_hmac = test_sign(&f, SignType::HmacSha256, KEY);
        assert!(
            f["sign"] == expected_md5 || f["sign"] == expected_hmac,
            "simulator answer not signed: {f:?}"
        );
        assert_eq!((f["appid"].as_str(), f["mch_id"].as_str()), (APPID, MCH_ID));
    }
    f
}

fn err_code(f: &Fields) -> &str {
    if f["return_code"] != "SUCCESS" {
        return &f["return_msg"];
    }
    if f["result_code"] == "SUCCESS" {
        "SUCCESS"
    } else {
        &f["err_code"]
    }
}

#[tokio::test]
async fn signed_order_succeeds_and_identical_resubmission_returns_the_same_prepay_id() {
    let sim = sim().await;
    let a = call(
        &sim,
        "/pay/unifiedorder",
        signed(order("ORDER_000001", "100"), SignType::Md5),
    )
    .await;
    assert_eq!(err_code(&a), "SUCCESS");
    assert!(a["prepay_id"].starts_with("wx"));
    let mut again = order("ORDER_000001", "100");
    again.insert("nonce_str".into(), "another-nonce".into());
    let b = call(
        &sim,
        "/pay/unifiedorder",
        signed(again, SignType::HmacSha256),
    )
    .await;
    assert_eq!(b["prepay_id"], a["prepay_id"]);
    let c = call(
        &sim,
        "/pay/unifiedorder",
        signed(order("ORDER_000001", "200"), SignType::Md5),
    )
    .await;
    assert_eq!(err_code(&c), "INVALID_REQUEST");
    assert_eq!(sim.trade_state("ORDER_000001").as_deref(), Some("NOTPAY"));
}

#[tokio::test]
async fn signatures_are_checked_strictly() {
    let sim = sim().await;
    // Signed with another key.
    let mut f = order("ORDER_000002", "100");
    f.insert(
        "sign".into(),
        test_sign(&f, SignType::Md5, "ffffffffffffffffffffffffffffffff"),
    );
    assert_eq!(
        err_code(&call(&sim, "/pay/unifiedorder", xml::encode("xml", &f)).await),
        "SIGNERROR"
    );
    // HMAC signature declared as MD5 (no sign_type).
    let mut f = order("ORDER_000002", "100");
    f.insert("sign".into(), test_sign(&f, SignType::HmacSha256, KEY));
    assert_eq!(
        err_code(&call(&sim, "/pay/unifiedorder", xml::encode("xml", &f)).await),
        "SIGNERROR"
    );
    // A field changed after signing.
    let body =
        signed(order("ORDER_000002", "100"), SignType::Md5).replace("<body>Tea<", "<body>Coffee<");
    assert_eq!(
        err_code(&call(&sim, "/pay/unifiedorder", body).await),
        "SIGNERROR"
    );
    // HMAC declared and used.
    assert_eq!(
        err_code(
            &call(
                &sim,
                "/pay/unifiedorder",
                signed(order("ORDER_000002", "100"), SignType::HmacSha256)
            )
            .await
        ),
        "SUCCESS"
    );
    let outcomes: Vec<String> = sim.requests().into_iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, ["SIGNERROR", "SIGNERROR", "SIGNERROR", "SUCCESS"]);
}

#[tokio::test]
async fn protocol_and_parameter_errors() {
    let sim = sim().await;
    let get = reqwest::get(format!("{}/pay/unifiedorder", sim.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(get.contains("REQUIRE_POST_METHOD"), "{get}");
    assert_eq!(
        err_code(&call(&sim, "/pay/unifiedorder", String::new()).await),
        "POST_DATA_EMPTY"
    );
    assert_eq!(
        err_code(&call(&sim, "/pay/unifiedorder", "<xml><a>1</xml>".into()).await),
        "XML_FORMAT_ERROR"
    );

    type Mutation = fn(&mut Fields);
    let cases: &[(Mutation, &str)] = &[
        (|f| drop(f.remove("spbill_create_ip")), "LACK_PARAMS"),
        (|f| drop(f.remove("openid")), "LACK_PARAMS"),
        (
            |f| drop(f.insert("trade_type".into(), "NATIVE".into())),
            "LACK_PARAMS",
        ),
        (
            |f| drop(f.insert("mch_id".into(), "99999999".into())),
            "MCHID_NOT_EXIST",
        ),
        (
            |f| drop(f.insert("appid".into(), "wxother".into())),
            "APPID_MCHID_NOT_MATCH",
        ),
        (
            |f| {
                drop(f.insert(
                    "notify_url".into(),
                    "https://payhost.test/notify?m=1".into(),
                ))
            },
            "INVALID_REQUEST",
        ),
        (
            |f| drop(f.insert("out_trade_no".into(), "A1".into())),
            "INVALID_REQUEST",
        ),
        (
            |f| drop(f.insert("out_trade_no".into(), "ORDER 000003".into())),
            "INVALID_REQUEST",
        ),
        (
            |f| drop(f.insert("total_fee".into(), "1.00".into())),
            "PARAM_ERROR",
        ),
        (
            |f| drop(f.insert("time_expire".into(), "2023-11-15".into())),
            "PARAM_ERROR",
        ),
    ];
    for (mutate, code) in cases {
        let mut f = order("ORDER_000003", "100");
        mutate(&mut f);
        let got = call(&sim, "/pay/unifiedorder", signed(f, SignType::Md5)).await;
        assert_eq!(err_code(&got), *code, "{got:?}");
    }
    let query = fields(&[
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("nonce_str", "n1"),
        ("out_trade_no", "NO_SUCH_ORDER"),
    ]);
    assert_eq!(
        err_code(&call(&sim, "/pay/orderquery", signed(query, SignType::Md5)).await),
        "ORDERNOTEXIST"
    );
}

#[tokio::test]
async fn payment_query_close_and_paid_resubmission() {
    let sim = sim().await;
    call(
        &sim,
        "/pay/unifiedorder",
        signed(order("ORDER_000004", "2499"), SignType::Md5),
    )
    .await;
    let notification = sim.pay("ORDER_000004").unwrap();
    let (_, n) = xml::decode(notification.as_bytes()).unwrap();
    assert_eq!(n["sign"], test_sign(&n, SignType::Md5, KEY));
    assert_eq!(
        (
            n["out_trade_no"].as_str(),
            n["total_fee"].as_str(),
            n["result_code"].as_str()
        ),
        ("ORDER_000004", "2499", "SUCCESS")
    );

    let q = call(
        &sim,
        "/pay/orderquery",
        signed(
            fields(&[
                ("appid", APPID),
                ("mch_id", MCH_ID),
                ("nonce_str", "n2"),
                ("transaction_id", &n["transaction_id"]),
            ]),
            SignType::Md5,
        ),
    )
    .await;
    assert_eq!(
        (q["trade_state"].as_str(), q["out_trade_no"].as_str()),
        ("SUCCESS", "ORDER_000004")
    );
    assert_eq!(q["time_end"], n["time_end"]);
    assert_eq!(
        err_code(
            &call(
                &sim,
                "/pay/unifiedorder",
                signed(order("ORDER_000004", "2499"), SignType::Md5)
            )
            .await
        ),
        "ORDERPAID"
    );
    let close = signed(
        fields(&[
            ("appid", APPID),
            ("mch_id", MCH_ID),
            ("nonce_str", "n3"),
            ("out_trade_no", "ORDER_000004"),
        ]),
        SignType::Md5,
    );
    assert_eq!(
        err_code(&call(&sim, "/pay/closeorder", close).await),
        "ORDERPAID"
    );

    call(
        &sim,
        "/pay/unifiedorder",
        signed(order("ORDER_000005", "100"), SignType::Md5),
    )
    .await;
    let close = signed(
        fields(&[
            ("appid", APPID),
            ("mch_id", MCH_ID),
            ("nonce_str", "n4"),
            ("out_trade_no", "ORDER_000005"),
        ]),
        SignType::Md5,
    );
    assert_eq!(
        err_code(&call(&sim, "/pay/closeorder", close.clone()).await),
        "SUCCESS"
    );
    assert_eq!(
        err_code(&call(&sim, "/pay/closeorder", close).await),
        "ORDERCLOSED"
    );
    assert!(sim.pay("ORDER_000005").is_err());
}

fn refund(out_refund_no: &str, refund_fee: &str) -> String {
    signed(
        fields(&[
            ("appid", APPID),
            ("mch_id", MCH_ID),
            ("nonce_str", "r1"),
            ("out_trade_no", "ORDER_000006"),
            ("out_refund_no", out_refund_no),
            ("total_fee", "1000"),
            ("refund_fee", refund_fee),
            ("notify_url", "https://payhost.test/v1/notify/wechat-v2/m1"),
        ]),
        SignType::Md5,
    )
}

#[tokio::test]
async fn refunds_never_exceed_the_paid_total_and_a_refund_number_refunds_once() {
    let sim = sim().await;
    call(
        &sim,
        "/pay/unifiedorder",
        signed(order("ORDER_000006", "1000"), SignType::Md5),
    )
    .await;
    assert_eq!(
        err_code(&call(&sim, "/secapi/pay/refund", refund("R1", "600")).await),
        "ERROR",
        "not paid yet"
    );
    sim.pay("ORDER_000006").unwrap();

    let a = call(&sim, "/secapi/pay/refund", refund("R1", "600")).await;
    assert_eq!(err_code(&a), "SUCCESS");
    let again = call(&sim, "/secapi/pay/refund", refund("R1", "600")).await;
    assert_eq!(
        again["refund_id"], a["refund_id"],
        "a retry must not refund twice"
    );
    assert_eq!(
        err_code(&call(&sim, "/secapi/pay/refund", refund("R1", "500")).await),
        "INVALID_REQUEST"
    );
    assert_eq!(
        err_code(&call(&sim, "/secapi/pay/refund", refund("R2", "401")).await),
        "NOTENOUGH"
    );
    assert_eq!(
        err_code(&call(&sim, "/secapi/pay/refund", refund("R2", "400")).await),
        "SUCCESS"
    );
    assert_eq!(
        err_code(&call(&sim, "/secapi/pay/refund", refund("R3", "1")).await),
        "NOTENOUGH"
    );
    assert_eq!(sim.trade_state("ORDER_000006").as_deref(), Some("REFUND"));

    // The refund notification decrypts with the MD5-of-key AES key.
    let xml_text = sim.refund_notification("R1").unwrap();
    let (_, outer) = xml::decode(xml_text.as_bytes()).unwrap();
    assert!(!outer.contains_key("sign"));
    let key = encoding::hex_lower(&native::digest(DigestAlgorithm::Md5, KEY.as_bytes()));
    let plain = native::aes_256_ecb_decrypt(
        key.as_bytes(),
        &encoding::base64_decode(&outer["req_info"]).unwrap(),
    )
    .unwrap();
    let (root, inner) = xml::decode(&plain).unwrap();
    assert_eq!(root, "root");
    assert_eq!(
        (
            inner["out_refund_no"].as_str(),
            inner["refund_fee"].as_str(),
            inner["refund_status"].as_str()
        ),
        ("R1", "600", "SUCCESS")
    );
    assert_eq!(inner["refund_id"], a["refund_id"]);
    assert!(
        payhost_sdk::time::parse_dashed(&inner["success_time"], payhost_sdk::time::CHINA).is_ok()
    );
}

#[tokio::test]
async fn injected_failures_apply_to_the_next_call_only() {
    let sim = sim().await;
    sim.fail_next("SYSTEMERROR");
    assert_eq!(
        err_code(
            &call(
                &sim,
                "/pay/unifiedorder",
                signed(order("ORDER_000007", "100"), SignType::Md5)
            )
            .await
        ),
        "SYSTEMERROR"
    );
    sim.answer_5xx_next();
    let resp = reqwest::Client::new()
        .post(format!("{}/pay/unifiedorder", sim.base_url()))
        .body(signed(order("ORDER_000007", "100"), SignType::Md5))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        err_code(
            &call(
                &sim,
                "/pay/unifiedorder",
                signed(order("ORDER_000007", "100"), SignType::Md5)
            )
            .await
        ),
        "SUCCESS"
    );
    let outcomes: Vec<String> = sim.requests().into_iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, ["SYSTEMERROR", "HTTP_503", "SUCCESS"]);
}

/// A merchant endpoint that records what it receives and acknowledges
/// only correctly signed notifications.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    let app = Router::new().fallback(move |body: String| {
        let store = store.clone();
        async move {
            let (_, f) = xml::decode(body.as_bytes()).unwrap();
            let ok = f["sign"] == test_sign(&f, SignType::Md5, KEY);
            store.lock().unwrap().push(body);
            if ok {
                "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
            } else {
                "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[SIGNERROR]]></return_msg></xml>"
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/notify/wechat-v2/m1",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn notify_posts_signed_notifications_to_the_orders_notify_url() {
    let sim = sim().await;
    let (url, got) = receiver().await;
    let mut f = order("ORDER_000008", "300");
    f.insert("notify_url".into(), url);
    call(&sim, "/pay/unifiedorder", signed(f, SignType::Md5)).await;

    let answers = sim
        .notify(
            "ORDER_000008",
            NotifyOptions {
                times: 2,
                delay: Duration::from_millis(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(answers.len(), 2);
    assert!(
        answers.iter().all(NotifyResponse::acknowledged),
        "{answers:?}"
    );
    assert_eq!(sim.trade_state("ORDER_000008").as_deref(), Some("SUCCESS"));

    let answers = sim
        .notify(
            "ORDER_000008",
            NotifyOptions {
                bad_signature: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!answers[0].acknowledged(), "{answers:?}");
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3);
    assert_eq!(
        bodies[0], bodies[1],
        "a repeated notification is the same message"
    );
    assert!(bodies[2].contains("<out_trade_no>ORDER_000008</out_trade_no>"));
}

#[test]
fn debug_output_hides_the_api_key() {
    let shown = format!("{:?}", SimConfig::new(APPID, MCH_ID, KEY));
    assert!(!shown.contains(KEY) && shown.contains(MCH_ID), "{shown}");
}

fn close(out_trade_no: &str, sign_type: SignType) -> String {
    signed(
        fields(&[
            ("appid", APPID),
            ("mch_id", MCH_ID),
            ("nonce_str", "c1"),
            ("out_trade_no", out_trade_no),
        ]),
        sign_type,
    )
}

#[tokio::test]
async fn close_order_is_checked_strictly_and_an_unpaid_order_closed_can_no_longer_be_paid() {
    let sim = sim().await;
    call(
        &sim,
        "/pay/unifiedorder",
        signed(order("ORDER_000010", "100"), SignType::Md5),
    )
    .await;
    // Signed with another key; a field changed after signing; an unknown
    // sign_type; no out_trade_no.
    let mut f = fields(&[
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("nonce_str", "c1"),
        ("out_trade_no", "ORDER_000010"),
    ]);
    f.insert(
        "sign".into(),
        test_sign(&f, SignType::Md5, "ffffffffffffffffffffffffffffffff"),
    );
    let tampered =
        close("ORDER_000010", SignType::HmacSha256).replace("<nonce_str>c1<", "<nonce_str>c2<");
    let mut unknown_type = fields(&[
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("nonce_str", "c1"),
        ("out_trade_no", "ORDER_000010"),
        ("sign_type", "SHA1"),
    ]);
    unknown_type.insert("sign".into(), test_sign(&unknown_type, SignType::Md5, KEY));
    let no_trade = signed(
        fields(&[("appid", APPID), ("mch_id", MCH_ID), ("nonce_str", "c1")]),
        SignType::Md5,
    );
    for (body, code) in [
        (xml::encode("xml", &f), "SIGNERROR"),
        (tampered, "SIGNERROR"),
        (xml::encode("xml", &unknown_type), "SIGNERROR"),
        (no_trade, "LACK_PARAMS"),
        (close("NO_SUCH_ORDER", SignType::Md5), "ORDERNOTEXIST"),
    ] {
        assert_eq!(err_code(&call(&sim, "/pay/closeorder", body).await), code);
    }
    assert_eq!(sim.trade_state("ORDER_000010").as_deref(), Some("NOTPAY"));

    let closed = call(
        &sim,
        "/pay/closeorder",
        close("ORDER_000010", SignType::HmacSha256),
    )
    .await;
    assert_eq!(err_code(&closed), "SUCCESS");
    assert_eq!(closed.get("sign_type").map(String::as_str), None);
    let refused = sim.pay_and_notify("ORDER_000010").unwrap_err().to_string();
    assert!(refused.starts_with("ORDERCLOSED"), "{refused}");
    assert_eq!(
        err_code(
            &call(
                &sim,
                "/pay/unifiedorder",
                signed(order("ORDER_000010", "100"), SignType::Md5)
            )
            .await
        ),
        "ORDERCLOSED"
    );
    let truth = sim.truth();
    let t = &truth.orders["ORDER_000010"];
    assert_eq!((t.state.as_str(), t.paid_count), ("CLOSED", 0));

    // A paid order is not closed: result_code FAIL, ORDERPAID.
    call(
        &sim,
        "/pay/unifiedorder",
        signed(order("ORDER_000011", "100"), SignType::Md5),
    )
    .await;
    assert!(sim.pay_and_notify("ORDER_000011").unwrap());
    let paid = call(
        &sim,
        "/pay/closeorder",
        close("ORDER_000011", SignType::Md5),
    )
    .await;
    assert_eq!(
        (
            paid["return_code"].as_str(),
            paid["result_code"].as_str(),
            err_code(&paid)
        ),
        ("SUCCESS", "FAIL", "ORDERPAID")
    );
    assert_eq!(sim.trade_state("ORDER_000011").as_deref(), Some("SUCCESS"));
}

fn refund_query(selector: (&str, &str), sign_type: SignType) -> String {
    signed(
        fields(&[
            ("appid", APPID),
            ("mch_id", MCH_ID),
            ("nonce_str", "q1"),
            selector,
        ]),
        sign_type,
    )
}

/// `(out_refund_no, refund_fee, refund_status)` for each refund listed.
fn listed(f: &Fields) -> Vec<(String, String, String)> {
    let n: usize = f["refund_count"].parse().unwrap();
    (0..n)
        .map(|i| {
            (
                f[&format!("out_refund_no_{i}")].clone(),
                f[&format!("refund_fee_{i}")].clone(),
                f[&format!("refund_status_{i}")].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn refund_query_lists_refunds_by_each_selector_with_their_status() {
    let sim = sim().await;
    call(
        &sim,
        "/pay/unifiedorder",
        signed(order("ORDER_000006", "1000"), SignType::Md5),
    )
    .await;
    sim.pay("ORDER_000006").unwrap();
    let r1 = call(&sim, "/secapi/pay/refund", refund("R1", "600")).await;
    call(&sim, "/secapi/pay/refund", refund("R2", "400")).await;

    let q = call(
        &sim,
        "/pay/refundquery",
        refund_query(("out_refund_no", "R1"), SignType::Md5),
    )
    .await;
    assert_eq!(err_code(&q), "SUCCESS");
    assert_eq!(
        listed(&q),
        [("R1".into(), "600".into(), "PROCESSING".into())]
    );
    assert_eq!(q["refund_id_0"], r1["refund_id"]);
    assert!(!q.contains_key("refund_success_time_0"));

    sim.settle_refund("R1", RefundStatus::Success).unwrap();
    sim.settle_refund("R2", RefundStatus::RefundClose).unwrap();
    assert!(sim.settle_refund("R2", RefundStatus::Success).is_err());
    let by_order = call(
        &sim,
        "/pay/refundquery",
        refund_query(("out_trade_no", "ORDER_000006"), SignType::HmacSha256),
    )
    .await;
    assert_eq!(
        listed(&by_order),
        [
            ("R1".into(), "600".into(), "SUCCESS".into()),
            ("R2".into(), "400".into(), "REFUNDCLOSE".into())
        ]
    );
    assert!(
        payhost_sdk::time::parse_dashed(
            &by_order["refund_success_time_0"],
            payhost_sdk::time::CHINA
        )
        .is_ok()
    );
    let tx = by_order["transaction_id"].clone();
    let by_tx = call(
        &sim,
        "/pay/refundquery",
        refund_query(("transaction_id", &tx), SignType::Md5),
    )
    .await;
    assert_eq!(listed(&by_tx).len(), 2);
    let by_id = call(
        &sim,
        "/pay/refundquery",
        refund_query(("refund_id", &by_order["refund_id_1"]), SignType::Md5),
    )
    .await;
    assert_eq!(
        listed(&by_id),
        [("R2".into(), "400".into(), "REFUNDCLOSE".into())]
    );

    // A closed refund gives its amount back; a CHANGE refund does not.
    assert_eq!(
        err_code(&call(&sim, "/secapi/pay/refund", refund("R3", "400")).await),
        "SUCCESS"
    );
    sim.settle_refund("R3", RefundStatus::Change).unwrap();
    assert_eq!(
        err_code(&call(&sim, "/secapi/pay/refund", refund("R4", "1")).await),
        "NOTENOUGH"
    );
    let truth = sim.truth();
    assert_eq!(truth.refunds["R3"].status, RefundStatus::Change);
    let t = &truth.orders["ORDER_000006"];
    assert_eq!((t.refund_requested, t.refunded), (1000, 600));

    let mut wrong_key = fields(&[
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("nonce_str", "q1"),
        ("out_refund_no", "R1"),
    ]);
    wrong_key.insert(
        "sign".into(),
        test_sign(
            &wrong_key,
            SignType::Md5,
            "ffffffffffffffffffffffffffffffff",
        ),
    );
    let hmac_as_md5 = {
        let mut f = fields(&[
            ("appid", APPID),
            ("mch_id", MCH_ID),
            ("nonce_str", "q1"),
            ("out_refund_no", "R1"),
        ]);
        f.insert("sign".into(), test_sign(&f, SignType::HmacSha256, KEY));
        xml::encode("xml", &f)
    };
    let other_mch = refund_query(("out_refund_no", "R1"), SignType::Md5)
        .replace(&format!("<mch_id>{MCH_ID}<"), "<mch_id>99999999<");
    for (body, code) in [
        (xml::encode("xml", &wrong_key), "SIGNERROR"),
        (hmac_as_md5, "SIGNERROR"),
        (other_mch, "MCHID_NOT_EXIST"),
        (
            refund_query(("out_refund_no", "NO_SUCH"), SignType::Md5),
            "REFUNDNOTEXIST",
        ),
        (
            refund_query(("out_trade_no", "NO_SUCH_ORDER"), SignType::Md5),
            "REFUNDNOTEXIST",
        ),
        (
            refund_query(("device_info", "WEB"), SignType::Md5),
            "LACK_PARAMS",
        ),
        (String::new(), "POST_DATA_EMPTY"),
    ] {
        assert_eq!(err_code(&call(&sim, "/pay/refundquery", body).await), code);
    }
}

/// A merchant endpoint that acknowledges everything and records, in
/// arrival order, each body it received.
async fn acking_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    let app = Router::new().fallback(move |body: String| {
        let store = store.clone();
        async move {
            store.lock().unwrap().push(body);
            "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/notify/wechat-v2/m1",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

async fn until(what: &str, bound: Duration, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < bound, "not within {bound:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_refund_stays_processing_until_its_delay_then_succeeds_and_is_notified() {
    let mut config = SimConfig::new(APPID, MCH_ID, KEY);
    config.refund_settle = RefundSettle::After(Duration::from_millis(300));
    let sim = Simulator::start(config).await;
    let (url, got) = acking_receiver().await;
    call(
        &sim,
        "/pay/unifiedorder",
        signed(order("ORDER_000006", "1000"), SignType::Md5),
    )
    .await;
    sim.pay("ORDER_000006").unwrap();
    let body = refund("R1", "1000").replace("https://payhost.test/v1/notify/wechat-v2/m1", &url);
    // The notify_url replaced after signing: signed again.
    let (_, mut f) = xml::decode(body.as_bytes()).unwrap();
    f.remove("sign");
    call(&sim, "/secapi/pay/refund", signed(f, SignType::Md5)).await;
    let status = |sim: &Simulator| sim.truth().refunds["R1"].status;
    assert_eq!(status(&sim), RefundStatus::Processing);
    until("refund settled", Duration::from_secs(5), || {
        status(&sim) == RefundStatus::Success && got.lock().unwrap().len() == 1
    })
    .await;
    let q = call(
        &sim,
        "/pay/refundquery",
        refund_query(("out_refund_no", "R1"), SignType::Md5),
    )
    .await;
    assert_eq!(q["refund_status_0"], "SUCCESS");
    let (_, outer) = xml::decode(got.lock().unwrap()[0].as_bytes()).unwrap();
    assert!(outer.contains_key("req_info"));
}

fn faulty(seed: u64) -> SimConfig {
    let mut config = SimConfig::new(APPID, MCH_ID, KEY);
    config.faults = FaultConfig {
        seed,
        api_timeout: 0.15,
        api_5xx: 0.15,
        api_system_error: 0.15,
        hang: Duration::from_millis(300),
        notify_drop: 0.15,
        notify_duplicate: 0.2,
        notify_delay: 0.4,
        notify_reorder: 0.5,
        max_notify_delay: Duration::from_millis(200),
        max_faults: 1_000,
    };
    config
}

/// Sends 40 orders with a client that gives up after 150 ms; returns each
/// call's outcome as the client saw it.
async fn forty_orders(sim: &Simulator) -> Vec<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let mut seen = Vec::new();
    for i in 0..40 {
        let body = signed(order(&format!("ORDER_{i:06}"), "100"), SignType::Md5);
        let outcome = match client
            .post(format!("{}/pay/unifiedorder", sim.base_url()))
            .body(body)
            .send()
            .await
        {
            Err(e) if e.is_timeout() => "client timeout".to_string(),
            Err(e) => panic!("{e}"),
            Ok(r) if r.status() != 200 => format!("HTTP {}", r.status().as_u16()),
            Ok(r) => {
                let (_, f) = xml::decode(&r.bytes().await.unwrap()).unwrap();
                err_code(&f).to_string()
            }
        };
        seen.push(outcome);
    }
    seen
}

#[tokio::test]
async fn seeded_api_faults_hang_fail_and_repeat_with_the_seed() {
    let started = Instant::now();
    let sim = Simulator::start(faulty(42)).await;
    let seen = forty_orders(&sim).await;
    let counts = sim.fault_counts();
    let count = |what: &str| seen.iter().filter(|s| *s == what).count() as u64;
    assert_eq!(
        count("client timeout"),
        counts.timeouts_applied + counts.timeouts_unapplied
    );
    assert_eq!(count("HTTP 503"), counts.http_5xx);
    assert_eq!(count("SYSTEMERROR"), counts.system_errors);
    assert_eq!(count("SUCCESS") + counts.total(), 40, "{seen:?}");
    assert!(
        counts.timeouts_applied > 0 && counts.http_5xx > 0 && counts.system_errors > 0,
        "{counts}"
    );
    // A hung call that was carried out created its order; the others did not.
    let truth = sim.truth();
    assert_eq!(
        truth.orders.len() as u64,
        count("SUCCESS") + counts.timeouts_applied
    );
    // Every hung call ends (after its bounded hang) and is recorded.
    until("hung calls recorded", Duration::from_secs(2), || {
        sim.requests().len() == 40
    })
    .await;
    let hung = sim
        .requests()
        .iter()
        .filter(|r| r.outcome.starts_with("TIMEOUT"))
        .count() as u64;
    assert_eq!(hung, counts.timeouts_applied + counts.timeouts_unapplied);
    // The same seed makes the same faults; another seed others.
    let again = Simulator::start(faulty(42)).await;
    assert_eq!(forty_orders(&again).await, seen);
    let other = Simulator::start(faulty(43)).await;
    assert_ne!(forty_orders(&other).await, seen);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn notifications_are_dropped_duplicated_delayed_and_reordered_within_bounds() {
    let mut config = faulty(7);
    config.faults.api_timeout = 0.0;
    config.faults.api_5xx = 0.0;
    config.faults.api_system_error = 0.0;
    let sim = Simulator::start(config).await;
    let (url, got) = acking_receiver().await;
    let mut paid = Vec::new();
    for i in 0..40 {
        let no = format!("ORDER_{i:06}");
        let mut f = order(&no, "100");
        f.insert("notify_url".into(), url.clone());
        call(&sim, "/pay/unifiedorder", signed(f, SignType::Md5)).await;
        assert!(sim.pay_and_notify(&no).unwrap());
        // Paying again charges nothing and notifies nothing more.
        assert!(!sim.pay_and_notify(&no).unwrap());
        paid.push(no);
    }
    until("outbox drained", Duration::from_secs(10), || {
        sim.outbox_idle()
    })
    .await;
    let counts = sim.fault_counts();
    let received: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|b| xml::decode(b.as_bytes()).unwrap().1["out_trade_no"].clone())
        .collect();
    assert!(
        counts.notify_dropped > 0 && counts.notify_duplicated > 0 && counts.notify_delayed > 0,
        "{counts}"
    );
    assert_eq!(
        received.len() as u64,
        40 - counts.notify_dropped + counts.notify_duplicated,
        "{counts}"
    );
    let mut distinct = received.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len() as u64, 40 - counts.notify_dropped);
    let mut arrival = received.clone();
    arrival.dedup();
    assert_ne!(arrival, paid, "delays reorder the notifications");
    let stats = sim.outbox_stats();
    assert_eq!(
        (stats.queued, stats.posts, stats.gave_up),
        (40, received.len() as u64, 0)
    );
    assert!(
        sim.truth()
            .orders
            .values()
            .all(|o| o.paid_count == 1 && o.state == "SUCCESS")
    );
}

#[tokio::test]
async fn with_time_expire_enforced_a_payer_cannot_pay_an_expired_order() {
    let mut config = SimConfig::new(APPID, MCH_ID, KEY);
    config.enforce_time_expire = true;
    let sim = Simulator::start(config).await;
    for (no, offset) in [("ORDER_000020", -60), ("ORDER_000021", 600)] {
        let mut f = order(no, "100");
        f.insert("time_expire".into(), china_compact(now() + offset));
        assert_eq!(
            err_code(&call(&sim, "/pay/unifiedorder", signed(f, SignType::Md5)).await),
            "SUCCESS"
        );
    }
    let refused = sim.pay_and_notify("ORDER_000020").unwrap_err().to_string();
    assert!(refused.starts_with("ORDEREXPIRED"), "{refused}");
    assert!(sim.pay_and_notify("ORDER_000021").unwrap());
    let truth = sim.truth();
    assert_eq!(truth.orders["ORDER_000020"].state, "NOTPAY");
    assert_eq!(truth.orders["ORDER_000021"].paid_count, 1);
}

/// A client of the TLS simulator that trusts `ca` and presents `identity`.
fn tls_client(ca: &crate::tls::TestCa, identity: Option<&crate::tls::Identity>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap());
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(id.to_pem().as_bytes()).unwrap());
    }
    b.build().unwrap()
}

#[tokio::test]
async fn over_tls_secapi_needs_a_client_certificate_from_the_ca_and_other_paths_do_not() {
    let ca = crate::tls::TestCa::new("simulator test CA").unwrap();
    let mut config = SimConfig::new(APPID, MCH_ID, KEY);
    config.tls = Some(crate::tls::ServerTls::signed_by(&ca).unwrap());
    let sim = Simulator::start(config).await;
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    let post = |client: reqwest::Client, path: &str, body: String| {
        let url = format!("{}{path}", sim.base_url());
        async move { client.post(url).body(body).send().await }
    };

    // Without a certificate: unified order is served, the refund is not.
    let anonymous = tls_client(&ca, None);
    let created = post(
        anonymous.clone(),
        "/pay/unifiedorder",
        signed(order("ORDER_000006", "1000"), SignType::Md5),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 200);
    let (_, f) = xml::decode(&created.bytes().await.unwrap()).unwrap();
    assert_eq!(err_code(&f), "SUCCESS");
    sim.pay("ORDER_000006").unwrap();
    let refused = post(anonymous, "/secapi/pay/refund", refund("R1", "600"))
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("No required SSL certificate")
    );
    assert_eq!(sim.requests().last().unwrap().outcome, "NO_CLIENT_CERT");
    assert!(sim.truth().refunds.is_empty());

    // A certificate from another CA: the handshake fails, nothing is read.
    let other = crate::tls::TestCa::new("another CA").unwrap();
    let foreign = other.client_identity(MCH_ID).unwrap();
    let seen = sim.requests().len();
    assert!(
        post(
            tls_client(&ca, Some(&foreign)),
            "/secapi/pay/refund",
            refund("R1", "600")
        )
        .await
        .is_err()
    );
    assert!(sim.tls_handshake_failures() >= 1);
    assert_eq!(sim.requests().len(), seen);
    assert!(sim.truth().refunds.is_empty());

    // The merchant's certificate from the CA: refunded.
    let merchant = ca.client_identity(MCH_ID).unwrap();
    let ok = post(
        tls_client(&ca, Some(&merchant)),
        "/secapi/pay/refund",
        refund("R1", "600"),
    )
    .await
    .unwrap();
    let (_, f) = xml::decode(&ok.bytes().await.unwrap()).unwrap();
    assert_eq!(err_code(&f), "SUCCESS");
    assert_eq!(sim.truth().refunds["R1"].refund_fee, 600);

    // The server's certificate is verified too: a client without the CA
    // as a root never reaches the simulator.
    assert!(
        post(reqwest::Client::new(), "/pay/orderquery", String::new())
            .await
            .is_err()
    );
}

#[test]
fn identities_print_no_private_key() {
    let ca = crate::tls::TestCa::new("debug CA").unwrap();
    let id = ca.client_identity(MCH_ID).unwrap();
    assert!(id.to_pem().contains("PRIVATE KEY"));
    let shown = format!(
        "{id:?} {:?}",
        SimConfig {
            tls: Some(crate::tls::ServerTls::signed_by(&ca).unwrap()),
            ..SimConfig::new(APPID, MCH_ID, KEY)
        }
    );
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}

// ---------------------------------------------------------------- overseas

async fn overseas_sim() -> Simulator {
    Simulator::start(SimConfig {
        overseas: Some(Overseas::default()),
        ..SimConfig::new(APPID, MCH_ID, KEY)
    })
    .await
}

fn order_in(out_trade_no: &str, total_fee: &str, fee_type: Option<&str>) -> String {
    let mut f = order(out_trade_no, total_fee);
    if let Some(t) = fee_type {
        f.insert("fee_type".into(), t.into());
    }
    signed(f, SignType::Md5)
}

#[tokio::test]
async fn the_overseas_api_insists_on_fee_type_among_wechat_pays_currencies() {
    let hk = overseas_sim().await;
    for (fee_type, want) in [
        (None, "LACK_PARAMS"),
        (Some("BRL"), "PARAM_ERROR"),
        (Some("eur"), "PARAM_ERROR"),
        (Some("EUR"), "SUCCESS"),
    ] {
        let answer = call(
            &hk,
            "/pay/unifiedorder",
            order_in("OVS_0001", "2499", fee_type),
        )
        .await;
        assert_eq!(err_code(&answer), want, "{fee_type:?}: {answer:?}");
    }
    assert_eq!(hk.truth().orders["OVS_0001"].fee_type, "EUR");
    // The domestic API takes CNY only.
    let domestic = sim().await;
    let answer = call(
        &domestic,
        "/pay/unifiedorder",
        order_in("DOM_0001", "100", Some("EUR")),
    )
    .await;
    assert_eq!(err_code(&answer), "PARAM_ERROR");
    let answer = call(
        &domestic,
        "/pay/unifiedorder",
        order_in("DOM_0001", "100", Some("CNY")),
    )
    .await;
    assert_eq!(err_code(&answer), "SUCCESS");
}

fn overseas_refund(refund_fee_type: Option<&str>) -> String {
    let mut f = fields(&[
        ("appid", APPID),
        ("mch_id", MCH_ID),
        ("nonce_str", "r1"),
        ("out_trade_no", "OVS_0002"),
        ("out_refund_no", "OVS_R1"),
        ("total_fee", "2499"),
        ("refund_fee", "1000"),
    ]);
    if let Some(t) = refund_fee_type {
        f.insert("refund_fee_type".into(), t.into());
    }
    signed(f, SignType::Md5)
}

#[tokio::test]
async fn overseas_answers_carry_the_payers_cny_side_and_refunds_stay_in_the_orders_currency() {
    let sim = overseas_sim().await;
    let answer = call(
        &sim,
        "/pay/unifiedorder",
        order_in("OVS_0002", "2499", Some("EUR")),
    )
    .await;
    assert_eq!(err_code(&answer), "SUCCESS");
    // 24.99 EUR at 7.8 is 194.92 CNY (rounded down).
    let (_, note) = xml::decode(sim.pay("OVS_0002").unwrap().as_bytes()).unwrap();
    let query = signed(
        fields(&[
            ("appid", APPID),
            ("mch_id", MCH_ID),
            ("nonce_str", "q1"),
            ("out_trade_no", "OVS_0002"),
        ]),
        SignType::Md5,
    );
    let queried = call(&sim, "/pay/orderquery", query).await;
    for f in [&note, &queried] {
        for (k, v) in [
            ("fee_type", "EUR"),
            ("total_fee", "2499"),
            ("cash_fee_type", "CNY"),
            ("cash_fee", "19492"),
            ("rate", "780000000"),
        ] {
            assert_eq!(f.get(k).map(String::as_str), Some(v), "{k} in {f:?}");
        }
    }
    for (refund_fee_type, want) in [
        (None, "LACK_PARAMS"),
        (Some("CNY"), "PARAM_ERROR"),
        (Some("EUR"), "SUCCESS"),
    ] {
        let answer = call(&sim, "/secapi/pay/refund", overseas_refund(refund_fee_type)).await;
        assert_eq!(err_code(&answer), want, "{refund_fee_type:?}: {answer:?}");
        if want == "SUCCESS" {
            for (k, v) in [
                ("refund_fee_type", "EUR"),
                ("refund_fee", "1000"),
                ("cash_refund_fee_type", "CNY"),
                ("cash_refund_fee", "7800"),
                ("rate", "780000000"),
            ] {
                assert_eq!(answer.get(k).map(String::as_str), Some(v), "{k}");
            }
        }
    }
    assert_eq!(sim.truth().orders["OVS_0002"].refund_requested, 1000);
}

// ---------------------------------------------------------------- partner mode

#[tokio::test]
async fn a_service_providers_account_wants_its_sub_merchant_named_and_names_it() {
    let sp = Simulator::start(SimConfig {
        sub_mch_id: Some("1900000109".into()),
        ..SimConfig::new(APPID, MCH_ID, KEY)
    })
    .await;
    let answer = call(&sp, "/pay/unifiedorder", order_in("SP_0001", "100", None)).await;
    assert_eq!(err_code(&answer), "MCHID_NOT_EXIST", "{answer:?}");
    let mut f = order("SP_0001", "100");
    f.insert("sub_mch_id".into(), "1900000999".into());
    let answer = call(&sp, "/pay/unifiedorder", signed(f.clone(), SignType::Md5)).await;
    assert_eq!(err_code(&answer), "MCHID_NOT_EXIST");
    f.insert("sub_mch_id".into(), "1900000109".into());
    f.insert("sub_appid".into(), "wxsub0000000000001".into());
    let answer = call(&sp, "/pay/unifiedorder", signed(f, SignType::Md5)).await;
    assert_eq!(err_code(&answer), "SUCCESS", "{answer:?}");
    assert_eq!(answer["sub_mch_id"], "1900000109");
    let (_, note) = xml::decode(sp.pay("SP_0001").unwrap().as_bytes()).unwrap();
    assert_eq!(note["sub_mch_id"], "1900000109");
    assert_eq!(note["sub_appid"], "wxsub0000000000001");
}
