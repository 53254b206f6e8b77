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
