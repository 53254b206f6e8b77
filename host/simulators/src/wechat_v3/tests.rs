//! The simulator checked over real HTTP with requests signed test-side
//! (the official SDK's published test key, from tests/fixtures).

use super::*;

const MCHID: &str = "1900000001";
const APPID: &str = "wx8888888888888888";
const SUB: &str = "1900000109";
const SERIAL: &str = "PUB_KEY_ID_0112345678902025010100000000000001";

pub(super) fn fixture(name: &str) -> String {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/wechatpay-v3");
    std::fs::read_to_string(dir.join(name)).unwrap()
}

pub(super) fn config(sub_mchid: Option<&str>) -> SimConfig {
    SimConfig {
        mchid: MCHID.into(),
        appid: APPID.into(),
        sub_mchid: sub_mchid.map(String::from),
        merchant_public_key: fixture("sdk-test.pub.pem"),
        platform_private_key: fixture("sdk-test.key.pem"),
        platform_serial: SERIAL.into(),
        api_v3_key: "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb".into(),
    }
}

/// A request signed as the merchant signs it (§3.5); the answer's status
/// and JSON, its signature checked with the platform's (same) key.
async fn call(sim: &Simulator, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    call_with(sim, method, path, body, &[]).await
}

/// [`call`] with more request headers.
pub(super) async fn call_with(
    sim: &Simulator,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (ts, nonce) = (now(), "N0NCE");
    let mut keys = SecretTable::new();
    let key = keys.insert(fixture("sdk-test.key.pem").into_bytes());
    let message = format!("{method}\n{path}\n{ts}\n{nonce}\n{body}\n");
    let sig = encoding::base64_encode(&keys.rsa_sha256_sign(key, message.as_bytes()).unwrap());
    let auth = format!(
        r#"WECHATPAY2-SHA256-RSA2048 mchid="{MCHID}",nonce_str="{nonce}",timestamp="{ts}",serial_no="5157F09E",signature="{sig}""#
    );
    let url = format!("{}{path}", sim.base_url());
    let client = reqwest::Client::new();
    let req = match method {
        "GET" => client.get(url),
        _ => client
            .post(url)
            .header("content-type", "application/json")
            .body(body),
    };
    let req = headers.iter().fold(req, |r, (k, v)| r.header(*k, *v));
    let resp = req.header("authorization", auth).send().await.unwrap();
    let status = resp.status().as_u16();
    let header = |n: &str| resp.headers()[n].to_str().unwrap().to_string();
    let (at, nonce, sig) = (
        header("wechatpay-timestamp"),
        header("wechatpay-nonce"),
        header("wechatpay-signature"),
    );
    assert_eq!(header("wechatpay-serial"), SERIAL);
    let bytes = resp.bytes().await.unwrap();
    let mut signed = format!("{at}\n{nonce}\n").into_bytes();
    signed.extend_from_slice(&bytes);
    signed.push(b'\n');
    let sig = encoding::base64_decode(&sig).unwrap();
    assert!(native::rsa_sha256_verify(&fixture("sdk-test.pub.pem"), &signed, &sig).unwrap());
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn institution_order(no: &str) -> Value {
    json!({
        "sp_mchid": MCHID, "sp_appid": APPID, "sub_mchid": SUB, "sub_appid": "wxsub0000000000001",
        "trade_type": "JSAPI", "description": "Tea", "out_trade_no": no,
        "notify_url": "https://payhost.test/v1/notify/wechat-v3/m",
        "amount": {"total": 2499, "currency": "EUR"},
        "payer": {"sub_openid": "o-sub"},
    })
}

#[tokio::test]
async fn a_global_institution_merchant_is_served_on_the_global_paths_only() {
    let sim = Simulator::start_global(config(Some(SUB))).await;
    let (status, e) = call(
        &sim,
        "POST",
        "/v3/pay/partner/transactions/jsapi",
        Some(institution_order("GLB0001")),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("INVALID_REQUEST")),
        "{e}"
    );

    let path = "/v3/global/transactions/jsapi";
    let without = |k: &str| {
        let mut o = institution_order("GLB0001");
        if k == "currency" {
            o["amount"].as_object_mut().unwrap().remove("currency");
        } else {
            o.as_object_mut().unwrap().remove(k);
        }
        o
    };
    let mut other_sub = institution_order("GLB0001");
    other_sub["sub_mchid"] = "1900000999".into();
    let mut brl = institution_order("GLB0001");
    brl["amount"]["currency"] = "BRL".into();
    for body in [
        without("currency"),
        without("trade_type"),
        without("sp_appid"),
        other_sub,
        brl,
    ] {
        let (status, e) = call(&sim, "POST", path, Some(body.clone())).await;
        assert_eq!(
            (status, e["code"].as_str()),
            (400, Some("PARAM_ERROR")),
            "{body}: {e}"
        );
    }
    assert_eq!(sim.trade_state("GLB0001"), None);
    let (status, p) = call(&sim, "POST", path, Some(institution_order("GLB0001"))).await;
    assert_eq!(status, 200, "{p}");
    assert!(p["prepay_id"].is_string());

    // Queries and closes name the institution and the sub-merchant.
    let q = "/v3/global/transactions/out-trade-no/GLB0001";
    for bad in [
        format!("{q}?mchid={MCHID}"),
        format!("{q}?sp_mchid={MCHID}&sub_mchid=1"),
    ] {
        let (status, _) = call(&sim, "GET", &bad, None).await;
        assert_eq!(status, 400, "{bad}");
    }
    sim.pay("GLB0001").unwrap();
    let (status, t) = call(
        &sim,
        "GET",
        &format!("{q}?sp_mchid={MCHID}&sub_mchid={SUB}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(
        (t["sp_mchid"].as_str(), t["sub_mchid"].as_str()),
        (Some(MCHID), Some(SUB))
    );
    assert_eq!(t["amount"], json!({"total": 2499, "currency": "EUR"}));
    assert_eq!(t["payer"], json!({"sub_openid": "o-sub"}));
    let (status, _) = call(
        &sim,
        "POST",
        "/v3/global/transactions/out-trade-no/GLB0001/close",
        Some(json!({"mchid": MCHID})),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_global_refund_names_the_merchant_and_stays_in_the_orders_currency() {
    let sim = Simulator::start_global(config(Some(SUB))).await;
    let (status, _) = call(
        &sim,
        "POST",
        "/v3/global/transactions/jsapi",
        Some(institution_order("GLB0002")),
    )
    .await;
    assert_eq!(status, 200);
    sim.pay("GLB0002").unwrap();
    let refund = |currency: Option<&str>, sp_appid: bool| {
        let mut r = json!({
            "sp_mchid": MCHID, "sub_mchid": SUB, "out_trade_no": "GLB0002", "out_refund_no": "GLBR1",
            "amount": {"refund": 1000, "total": 2499},
        });
        if let Some(c) = currency {
            r["amount"]["currency"] = c.into();
        }
        if sp_appid {
            r["sp_appid"] = APPID.into();
        }
        r
    };
    for body in [
        refund(None, true),
        refund(Some("CNY"), true),
        refund(Some("EUR"), false),
    ] {
        let (status, e) = call(&sim, "POST", "/v3/global/refunds", Some(body.clone())).await;
        assert_eq!(
            (status, e["code"].as_str()),
            (400, Some("PARAM_ERROR")),
            "{body}: {e}"
        );
    }
    let (status, r) = call(
        &sim,
        "POST",
        "/v3/global/refunds",
        Some(refund(Some("EUR"), true)),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["amount"]["currency"], "EUR");
    assert_eq!(r["sub_mchid"], SUB);
    let q = "/v3/global/refunds/out-refund-no/GLBR1";
    let (status, _) = call(&sim, "GET", q, None).await;
    assert_eq!(status, 400);
    let (status, r) = call(
        &sim,
        "GET",
        &format!("{q}?sp_mchid={MCHID}&sub_mchid={SUB}"),
        None,
    )
    .await;
    assert_eq!(
        (status, r["status"].as_str()),
        (200, Some("PROCESSING")),
        "{r}"
    );
}

#[tokio::test]
async fn the_domestic_api_takes_cny_and_checks_the_ids_of_queries() {
    let sim = Simulator::start(config(None)).await;
    let order = |currency: &str| {
        json!({
            "mchid": MCHID, "appid": APPID, "description": "Tea", "out_trade_no": "DOM0001",
            "notify_url": "https://payhost.test/n", "amount": {"total": 100, "currency": currency},
            "payer": {"openid": "o1"},
        })
    };
    let (status, _) = call(
        &sim,
        "POST",
        "/v3/pay/transactions/jsapi",
        Some(order("EUR")),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &sim,
        "POST",
        "/v3/pay/transactions/jsapi",
        Some(order("CNY")),
    )
    .await;
    assert_eq!(status, 200);
    let q = "/v3/pay/transactions/out-trade-no/DOM0001";
    assert_eq!(call(&sim, "GET", q, None).await.0, 400);
    let (status, t) = call(&sim, "GET", &format!("{q}?mchid={MCHID}"), None).await;
    assert_eq!((status, t["trade_state"].as_str()), (200, Some("NOTPAY")));
}
