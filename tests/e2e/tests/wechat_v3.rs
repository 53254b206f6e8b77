//! The wechat-v3 component in the sandbox: WeChat Pay's signature checked
//! through the host's RSA operation, the platform certificate parsed inside
//! the component, the notification decrypted by the host's AES-256-GCM; the
//! merchant's keys never enter the component.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use payhost::contract::{
    AdapterError, CallContext, HttpMethod, InboundHttp, NotifyEvent, TradeState,
};
use payhost::{CallError, MerchantConfig, Operation, Output, Runtime};
use payhost_e2e::{component, test_config, workspace};
use payhost_sdk::native::SecretTable;
use std::collections::BTreeMap;

const API_V3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(workspace().join("tests/fixtures/wechatpay-v3").join(name)).unwrap()
}

fn merchant(api_v3_key: &str) -> MerchantConfig {
    MerchantConfig::new("shop-v3")
        .text("mchid", "1234567890")
        .text("appid", "wx8888888888888888")
        .text(
            "merchant_serial_no",
            "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        )
        .secret("private_key", fixture("sdk-test.key.pem"))
        .secret("api_v3_key", api_v3_key)
        .text(
            "platform_certificates",
            fixture("platform-D7CE59D1F522D701.cert.pem"),
        )
}

fn ctx(timestamp: i64) -> CallContext {
    CallContext {
        request_id: "req-v3".into(),
        timestamp,
        seed: 7,
        notify_url: "https://payhost.test/v1/notify/wechat-v3/shop-v3".into(),
    }
}

fn inbound(headers: Vec<(String, String)>, body: Vec<u8>) -> Operation {
    Operation::ParseNotify(InboundHttp {
        method: HttpMethod::Post,
        path: "/v1/notify/wechat-v3/shop-v3".into(),
        query: String::new(),
        headers,
        body,
    })
}

#[tokio::test]
async fn the_published_notification_verifies_in_the_sandbox_and_its_short_key_is_named() {
    let rt = Runtime::new(test_config()).unwrap();
    let a = rt.load(&component("wechat-v3")).unwrap();
    assert_eq!(a.info.name, "wechat-v3");
    assert!(a.info.capabilities.close && a.info.capabilities.refund_query);
    let headers: BTreeMap<String, String> =
        serde_json::from_str(&fixture("notification.headers.json")).unwrap();
    let headers: Vec<_> = headers.into_iter().collect();
    let body = fixture("notification.body.json").into_bytes();
    // The Go SDK's APIv3 key is 16 bytes: the signature passes, the key is refused.
    let err = rt
        .call(
            &a,
            &merchant("testMchAPIv3Key0"),
            ctx(1624523846),
            inbound(headers.clone(), body.clone()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Adapter { error: AdapterError::InvalidConfig(m), .. } if m.contains("32-byte")),
        "{err:?}"
    );
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let err = rt
        .call(
            &a,
            &merchant("testMchAPIv3Key0"),
            ctx(1624523846),
            inbound(headers, tampered),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            CallError::Adapter {
                error: AdapterError::BadSignature(_),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_signed_encrypted_payment_notification_is_applied_in_the_sandbox() {
    let rt = Runtime::new(test_config()).unwrap();
    let a = rt.load(&component("wechat-v3")).unwrap();
    let plain = r#"{"mchid":"1234567890","out_trade_no":"V3-0001","transaction_id":"4200000000000000000000000009","trade_state":"SUCCESS","success_time":"2021-06-24T16:37:00+08:00","amount":{"total":100,"currency":"CNY"},"payer":{"openid":"o1"}}"#;
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(API_V3_KEY.as_bytes()).unwrap();
    let ct = cipher
        .encrypt(
            aes_gcm::Nonce::from_slice(b"0123456789ab"),
            Payload {
                msg: plain.as_bytes(),
                aad: b"transaction",
            },
        )
        .unwrap();
    let body = serde_json::json!({
        "id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource_type": "encrypt-resource",
        "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": payhost_sdk::encoding::base64_encode(&ct),
                     "associated_data": "transaction", "nonce": "0123456789ab"},
    })
    .to_string();
    // Signed by the "platform" (the same test key as its certificate).
    let mut keys = SecretTable::new();
    let k = keys.insert(fixture("sdk-test.key.pem").into_bytes());
    let message = format!("1624523846\nnonce-1\n{body}\n");
    let sig =
        payhost_sdk::encoding::base64_encode(&keys.rsa_sha256_sign(k, message.as_bytes()).unwrap());
    let headers = vec![
        ("Wechatpay-Timestamp".to_string(), "1624523846".to_string()),
        ("Wechatpay-Nonce".into(), "nonce-1".into()),
        ("Wechatpay-Signature".into(), sig),
        ("Wechatpay-Serial".into(), "D7CE59D1F522D701".into()),
    ];
    let out = rt
        .call(
            &a,
            &merchant(API_V3_KEY),
            ctx(1624523846 + 10),
            inbound(headers, body.into_bytes()),
        )
        .await
        .unwrap();
    let Output::Notify(n) = out else {
        panic!("{out:?}")
    };
    assert_eq!(n.ack.status, 200);
    let [NotifyEvent::Payment(st)] = n.events.as_slice() else {
        panic!("{:?}", n.events)
    };
    assert_eq!(st.state, TradeState::Paid);
    assert_eq!(st.order.merchant_order_no, "V3-0001");
    assert_eq!(st.amount.as_ref().map(|m| m.minor), Some(100));
}

// ------------------------------------------------------------ through the HTTP API

use payhost_e2e::front::{Front, Options};
use payhost_simulators::wechat_v3::{NotifyForgery, SimConfig, Simulator};
use reqwest::Method;
use serde_json::{Value, json};

const V3_KEY: &str = "pk_test_shop_v3_8d2f";
/// The scene's report items WeChat requires with every transfer (§12.4.1).
const REPORT_INFOS: &str = r#"[{"info_type":"活动名称","info_content":"新会员有礼"},{"info_type":"奖励说明","info_content":"注册会员抽奖一等奖"}]"#;
const SERIAL: &str = "PUB_KEY_ID_0112345678902025010100000000000001";

/// A `wechat-v3` merchant `shop-v3` as configured, and whether its
/// simulator is WeChat Pay Global's.
#[derive(Clone, Copy)]
struct Shop {
    mode: &'static str,
    sub_mchid: Option<&'static str>,
    sub_appid: Option<&'static str>,
    currency: &'static str,
}

const DIRECT: Shop = Shop {
    mode: "direct",
    sub_mchid: None,
    sub_appid: None,
    currency: "CNY",
};

/// WeChat Pay Global in institution mode: the institution's ids
/// (`sp_mchid`, `sp_appid`), a sub-merchant and its mini-program, in EUR.
const INSTITUTION: Shop = Shop {
    mode: "global",
    sub_mchid: Some("1900000109"),
    sub_appid: Some("wxsub0000000000001"),
    currency: "EUR",
};

/// payhost with the merchant `shop-v3` in front of a v3 simulator that
/// knows the same keys and ids.
async fn v3_front(name: &str, shop: Shop) -> (Front, Simulator) {
    v3_front_with(name, shop, Options::default()).await
}

async fn v3_front_with(name: &str, shop: Shop, options: Options) -> (Front, Simulator) {
    let config = SimConfig {
        mchid: "1900000001".into(),
        appid: "wx8888888888888888".into(),
        sub_mchid: shop.sub_mchid.map(String::from),
        merchant_public_key: fixture("sdk-test.pub.pem"),
        platform_private_key: fixture("sdk-test.key.pem"),
        platform_serial: SERIAL.into(),
        api_v3_key: API_V3_KEY.into(),
    };
    let sim = match shop.mode {
        "global" => Simulator::start_global(config).await,
        _ => Simulator::start(config).await,
    };
    let dir = payhost_e2e::temp_dir(name);
    std::fs::write(dir.join("v3.key"), fixture("sdk-test.key.pem")).unwrap();
    std::fs::write(dir.join("v3.apikey"), API_V3_KEY).unwrap();
    let mut ids = String::new();
    for (k, v) in [("sub_mchid", shop.sub_mchid), ("sub_appid", shop.sub_appid)] {
        if let Some(v) = v {
            ids.push_str(&format!("{k} = \"{v}\"\n"));
        }
    }
    // Limits count in CNY; another currency converts them.
    let limits = match shop.currency {
        "CNY" => "",
        _ => "[merchants.limits]\ncny_rate = \"0.1300\"\n",
    };
    let extra = format!(
        r#"
[[merchants]]
id = "shop-v3"
api_keys = ["{hash}"]
adapter = "wechat-v3"
currency = "{currency}"
industry = "physical"
callback_url = "$CALLBACK_URL"
webhook_secret = "file:$DATA_DIR/webhook.secret"
{limits}
[merchants.config]
mode = "{mode}"
mchid = "1900000001"
appid = "wx8888888888888888"
{ids}
merchant_serial_no = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
private_key = "file:{dir}/v3.key"
api_v3_key = "file:{dir}/v3.apikey"
wechatpay_public_key_id = "{SERIAL}"
wechatpay_public_key = """{public}"""
base_url = "{base}"
transfer_scene_id = "1000"
transfer_scene_report_infos = '{REPORT_INFOS}'
"#,
        hash = payhost::config::api_key_hash(V3_KEY),
        currency = shop.currency,
        mode = shop.mode,
        dir = dir.display(),
        public = fixture("sdk-test.pub.pem"),
        base = sim.base_url(),
    );
    let f = Front::start(
        name,
        Options {
            data_dir: Some(dir),
            extra_toml: extra,
            ..options
        },
    )
    .await;
    (f, sim)
}

async fn v3(f: &Front, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    f.call_as(V3_KEY, method, path, body).await
}

fn v3_order(no: &str, amount: i64) -> Value {
    json!({
        "merchant_order_no": no, "amount": amount, "currency": "CNY",
        "description": "Tea, 250 g", "method": "wechat_mini_program",
        "payer": {"app_id": "wx8888888888888888", "openid": "o-v3-payer", "client_ip": "203.0.113.7"},
    })
}

#[tokio::test]
async fn a_v3_payment_is_created_paid_notified_queried_refunded_and_settled() {
    let (f, sim) = v3_front("v3-flow", DIRECT).await;
    let (status, created) = v3(
        &f,
        Method::POST,
        "/v1/payments",
        Some(v3_order("V3FLOW0001", 2499)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let params = &created["pay_action"]["params"];
    assert_eq!(params["signType"], "RSA");
    assert_eq!(params["package"], "prepay_id=wxV3FLOW0001");
    assert_eq!(sim.count("POST jsapi"), 1);

    // Tampered, unknown-serial and stale notifications change nothing.
    sim.pay("V3FLOW0001").unwrap();
    for forgery in [
        NotifyForgery::Tampered,
        NotifyForgery::UnknownSerial,
        NotifyForgery::Stale,
    ] {
        let (status, _) = sim.notify_payment("V3FLOW0001", forgery).await.unwrap();
        assert!(status >= 400, "{forgery:?} answered {status}");
        let (_, p) = v3(&f, Method::GET, "/v1/payments/V3FLOW0001", None).await;
        assert_eq!(p["state"], "pending", "{forgery:?}");
    }
    // The real one is applied and acknowledged as WeChat Pay expects.
    let (status, ack) = sim
        .notify_payment("V3FLOW0001", NotifyForgery::None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{ack}");
    assert!(ack.contains("SUCCESS"), "{ack}");
    let (_, p) = v3(
        &f,
        Method::GET,
        "/v1/payments/V3FLOW0001?refresh=true",
        None,
    )
    .await;
    assert_eq!(p["state"], "paid", "{p}");
    assert_eq!(sim.count("GET out-trade-no") + sim.count("GET id"), 1);

    // A partial refund, settled by notification; the refund query agrees.
    let (status, r) = v3(
        &f,
        Method::POST,
        "/v1/payments/V3FLOW0001/refunds",
        Some(json!({"refund_no": "V3R1", "amount": 1000})),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["state"], "pending");
    sim.settle_refund("V3R1", "SUCCESS").unwrap();
    let (status, _) = sim
        .notify_refund("V3R1", NotifyForgery::None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (_, r) = v3(
        &f,
        Method::GET,
        "/v1/payments/V3FLOW0001/refunds/V3R1",
        None,
    )
    .await;
    assert_eq!(r["state"], "succeeded", "{r}");
    let (_, p) = v3(&f, Method::GET, "/v1/payments/V3FLOW0001", None).await;
    assert_eq!(p["refunded_amount"], 1000, "{p}");
}

#[tokio::test]
async fn v3_partner_mode_orders_on_the_partner_paths() {
    let (f, sim) = v3_front(
        "v3-partner",
        Shop {
            mode: "partner",
            sub_mchid: Some("1900000109"),
            ..DIRECT
        },
    )
    .await;
    let (status, created) = v3(
        &f,
        Method::POST,
        "/v1/payments",
        Some(v3_order("V3PART0001", 100)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(sim.count("POST jsapi"), 1);
    assert_eq!(sim.trade_state("V3PART0001"), Some("NOTPAY"));
    assert!(
        sim.paths()
            .iter()
            .any(|p| p == "/v3/pay/partner/transactions/jsapi")
    );
    // Unpaid at the provider: the query says pending.
    let (_, p) = v3(
        &f,
        Method::GET,
        "/v1/payments/V3PART0001?refresh=true",
        None,
    )
    .await;
    assert_eq!(p["state"], "pending", "{p}");
}

async fn wait_for(f: &Front, path: &str, field: &str, want: &str) -> Value {
    f.wait_for_as(V3_KEY, path, field, want).await
}

#[tokio::test]
async fn an_expired_v3_order_is_closed_at_wechat_pay_first() {
    let (f, sim) = v3_front_with("v3-close", DIRECT, Options::fast_reconciler()).await;
    let mut order = v3_order("V3CLOSE001", 100);
    order["expires_at"] = payhost::resources::Timestamp(payhost::api::now_ms() + 1500)
        .to_string()
        .into();
    let (status, created) = v3(&f, Method::POST, "/v1/payments", Some(order)).await;
    assert_eq!(status, 201, "{created}");
    wait_for(&f, "/v1/payments/V3CLOSE001", "state", "closed").await;
    assert_eq!(sim.count("POST close"), 1);
    assert_eq!(sim.trade_state("V3CLOSE001"), Some("CLOSED"));
}

#[tokio::test]
async fn a_v3_refund_whose_notification_is_lost_settles_by_refund_query_in_global_mode() {
    let (f, sim) = v3_front_with(
        "v3-global",
        Shop {
            mode: "global",
            ..DIRECT
        },
        Options::fast_reconciler(),
    )
    .await;
    let (status, created) = v3(
        &f,
        Method::POST,
        "/v1/payments",
        Some(v3_order("V3GLOB001", 800)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    sim.pay("V3GLOB001").unwrap();
    let (status, _) = sim
        .notify_payment("V3GLOB001", NotifyForgery::None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, r) = v3(
        &f,
        Method::POST,
        "/v1/payments/V3GLOB001/refunds",
        Some(json!({"refund_no": "V3GR1", "amount": 800})),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    // WeChat Pay refunds, but its notification never arrives.
    sim.settle_refund("V3GR1", "SUCCESS").unwrap();
    wait_for(
        &f,
        "/v1/payments/V3GLOB001/refunds/V3GR1",
        "state",
        "succeeded",
    )
    .await;
    assert!(sim.count("GET refunds") >= 1);
    let (_, p) = v3(&f, Method::GET, "/v1/payments/V3GLOB001", None).await;
    assert_eq!(p["state"], "refunded", "{p}");
    let paths = sim.paths();
    for want in [
        "/v3/global/transactions/jsapi",
        "/v3/global/refunds",
        "/v3/global/refunds/out-refund-no/V3GR1?mchid=1900000001",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} not in {paths:?}");
    }
}

/// Every operation of WeChat Pay Global in institution mode through
/// payhost's API: create, pay, notification, query, close, a partial
/// refund settled by notification, the rest settled by refund query.
#[tokio::test]
async fn a_v3_global_institution_merchant_takes_eur_through_every_operation() {
    let (f, sim) = v3_front_with("v3-institution", INSTITUTION, Options::fast_reconciler()).await;
    let eur = |no: &str, amount: i64| {
        let mut o = v3_order(no, amount);
        o["currency"] = "EUR".into();
        o["payer"]["app_id"] = "wxsub0000000000001".into();
        o
    };
    let (status, created) = v3(
        &f,
        Method::POST,
        "/v1/payments",
        Some(eur("V3INST001", 2499)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["currency"], "EUR");
    // paySign is for the sub-merchant's mini-program that pays.
    assert_eq!(
        created["pay_action"]["params"]["appId"],
        "wxsub0000000000001"
    );

    sim.pay("V3INST001").unwrap();
    let (status, ack) = sim
        .notify_payment("V3INST001", NotifyForgery::None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{ack}");
    let (_, p) = v3(&f, Method::GET, "/v1/payments/V3INST001", None).await;
    assert_eq!(
        (p["state"].as_str(), p["amount"].as_i64()),
        (Some("paid"), Some(2499)),
        "{p}"
    );
    let (_, p) = v3(&f, Method::GET, "/v1/payments/V3INST001?refresh=true", None).await;
    assert_eq!(p["state"], "paid", "{p}");

    // A partial refund settled by its notification, in the order's currency.
    let (status, r) = v3(
        &f,
        Method::POST,
        "/v1/payments/V3INST001/refunds",
        Some(json!({"refund_no": "V3IR1", "amount": 1000})),
    )
    .await;
    assert_eq!((status, r["currency"].as_str()), (201, Some("EUR")), "{r}");
    sim.settle_refund("V3IR1", "SUCCESS").unwrap();
    let (status, _) = sim
        .notify_refund("V3IR1", NotifyForgery::None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    wait_for(
        &f,
        "/v1/payments/V3INST001/refunds/V3IR1",
        "state",
        "succeeded",
    )
    .await;
    // The rest, whose notification never comes: settled by refund query.
    let (status, r) = v3(
        &f,
        Method::POST,
        "/v1/payments/V3INST001/refunds",
        Some(json!({"refund_no": "V3IR2", "amount": 1499})),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    sim.settle_refund("V3IR2", "SUCCESS").unwrap();
    wait_for(
        &f,
        "/v1/payments/V3INST001/refunds/V3IR2",
        "state",
        "succeeded",
    )
    .await;
    let (_, p) = v3(&f, Method::GET, "/v1/payments/V3INST001", None).await;
    assert_eq!(
        (p["state"].as_str(), p["refunded_amount"].as_i64()),
        (Some("refunded"), Some(2499)),
        "{p}"
    );

    // An order left unpaid past its expiry is closed at WeChat Pay first.
    let mut order = eur("V3INST002", 500);
    order["expires_at"] = payhost::resources::Timestamp(payhost::api::now_ms() + 1500)
        .to_string()
        .into();
    let (status, created) = v3(&f, Method::POST, "/v1/payments", Some(order)).await;
    assert_eq!(status, 201, "{created}");
    wait_for(&f, "/v1/payments/V3INST002", "state", "closed").await;
    assert_eq!(sim.trade_state("V3INST002"), Some("CLOSED"));

    // All on the global paths, naming the institution and the sub-merchant
    // (the simulator refuses anything else).
    let paths = sim.paths();
    let ids = "sp_mchid=1900000001&sub_mchid=1900000109";
    for want in [
        "/v3/global/transactions/jsapi".to_string(),
        "/v3/global/transactions/out-trade-no/V3INST002/close".to_string(),
        "/v3/global/refunds".to_string(),
        format!("/v3/global/refunds/out-refund-no/V3IR2?{ids}"),
    ] {
        assert!(paths.contains(&want), "{want} not in {paths:?}");
    }
    // The paid order's refresh asks by its transaction id.
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/v3/global/transactions/id/") && p.ends_with(ids)),
        "{paths:?}"
    );
    assert!(
        paths.iter().all(|p| p.starts_with("/v3/global/")),
        "{paths:?}"
    );
}

// ------------------------------------------------------------ payouts (contract 0.5)

/// A call context of now, whose notify URL is `f`'s for `shop-v3`.
fn sandbox_ctx(f: &Front) -> CallContext {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    CallContext {
        notify_url: f.url("/v1/notify/wechat-v3/shop-v3"),
        ..ctx(now)
    }
}

/// `shop-v3` as the sandbox sees it, with the merchant transfer's scene.
fn payout_merchant(sim: &Simulator) -> MerchantConfig {
    MerchantConfig::new("shop-v3")
        .text("mchid", "1900000001")
        .text("appid", "wx8888888888888888")
        .text(
            "merchant_serial_no",
            "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        )
        .secret("private_key", fixture("sdk-test.key.pem"))
        .secret("api_v3_key", API_V3_KEY)
        .text("wechatpay_public_key_id", SERIAL)
        .text("wechatpay_public_key", fixture("sdk-test.pub.pem"))
        .text("base_url", sim.base_url())
        .text("transfer_scene_id", "1000")
        .text("transfer_scene_report_infos", REPORT_INFOS)
}

/// A payout through the sandboxed component against the strict simulator,
/// as `payhost adapter call` drives it, without payhost's store:
/// created with the payee's name encrypted for WeChat, waiting for the
/// payee, confirmed, queried, and its `MCHTRANSFER.BILL.FINISHED` verified
/// and decrypted by payhost's notification endpoint (tampered: refused at
/// the signature).
#[tokio::test]
async fn a_payout_waits_for_the_payee_succeeds_and_its_notification_verifies() {
    use payhost::contract::{
        Money, Payee, PayoutQueryRequest, PayoutRef, PayoutRequest, PayoutState,
    };
    let (f, sim) = v3_front("v3-payout", DIRECT).await;
    let rt = Runtime::new(test_config()).unwrap();
    let a = rt.load(&component("wechat-v3")).unwrap();
    assert!(a.info.capabilities.payouts && a.info.capabilities.payout_notifications);
    let merchant = payout_merchant(&sim);
    let ctx = sandbox_ctx(&f);
    let call = |op| rt.call(&a, &merchant, ctx.clone(), op);
    let request = PayoutRequest {
        merchant_payout_no: "PAYOUT0001".into(),
        amount: Money {
            minor: 200_000,
            currency: "CNY".into(),
        },
        payee: Payee {
            app_id: "wx8888888888888888".into(),
            openid: "o-payee".into(),
            real_name: Some("王小王".into()),
        },
        remark: "新会员开通有礼".into(),
        scene: None,
    };
    let Output::PayoutStatus(created) = call(Operation::Payout(request)).await.unwrap() else {
        panic!("not a payout status")
    };
    let PayoutState::PendingUserConfirmation(Some(confirm)) = &created.state else {
        panic!("{:?}", created.state)
    };
    assert_eq!(confirm.mch_id, "1900000001");
    assert!(confirm.package.starts_with("pkg-"));
    assert_eq!(
        sim.transfer_user_name("PAYOUT0001").as_deref(),
        Some("王小王")
    );

    let query = || {
        Operation::PayoutQuery(PayoutQueryRequest {
            payout: PayoutRef {
                merchant_payout_no: "PAYOUT0001".into(),
                provider_payout_id: created.payout.provider_payout_id.clone(),
            },
        })
    };
    let state = |out: Output| match out {
        Output::PayoutStatus(p) => p.state,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        state(call(query()).await.unwrap()),
        PayoutState::PendingUserConfirmation(None)
    );
    sim.confirm_transfer("PAYOUT0001").unwrap();
    assert_eq!(state(call(query()).await.unwrap()), PayoutState::Succeeded);

    // payhost did not make this payout (the adapter was called directly):
    // the verified result is refused as about an unknown payout (so WeChat
    // sends it again), the tampered one before that, at its signature.
    let (status, answer) = sim
        .notify_transfer("PAYOUT0001", NotifyForgery::Tampered)
        .await
        .unwrap();
    assert!(status >= 400, "a tampered notification answered {status}");
    assert!(!answer.contains("unknown payout"), "{answer}");
    let (status, answer) = sim
        .notify_transfer("PAYOUT0001", NotifyForgery::None)
        .await
        .unwrap();
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("unknown payout"), "{answer}");
}

/// A build of wechat-v3 made against contract 0.5.0, kept as a fixture:
/// its payouts still work through the 0.5 bindings (the payee's name
/// encrypted by the host's OAEP, forwarded to the 0.5 import), and it
/// offers no auto-debit contracts (0.6 added them): its capabilities say
/// so and all five contract operations answer `unsupported` naming its
/// contract, without reaching the provider.
#[tokio::test]
async fn a_component_built_against_contract_0_5_still_pays_out_and_has_no_contracts() {
    use payhost::contract::{
        ContractPayer, ContractQueryRequest, ContractRef, ContractSignRequest,
        ContractTerminateRequest, DeductionQueryRequest, DeductionRequest, Money, Payee,
        PayoutRequest, PayoutState,
    };
    let (f, sim) = v3_front("v3-contract-0.5", DIRECT).await;
    let rt = Runtime::new(test_config()).unwrap();
    let build = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/wechat-v3-contract-0.5.0.wasm");
    let old = rt
        .load(&std::fs::read(&build).expect("the 0.5.0 fixture"))
        .expect("a 0.5.0 component loads");
    assert_eq!(old.info.contract_version, "0.5.0");
    let caps = &old.info.capabilities;
    assert!(caps.payouts && caps.payout_notifications);
    assert!(!caps.contracts && !caps.contract_notifications && !caps.deduction_notifications);
    let merchant = payout_merchant(&sim);
    let ctx = sandbox_ctx(&f);
    let call = |op| rt.call(&old, &merchant, ctx.clone(), op);
    let paid = call(Operation::Payout(PayoutRequest {
        merchant_payout_no: "OLD5PAYOUT1".into(),
        amount: Money {
            minor: 200_000,
            currency: "CNY".into(),
        },
        payee: Payee {
            app_id: "wx8888888888888888".into(),
            openid: "o-payee".into(),
            real_name: Some("王小王".into()),
        },
        remark: "新会员开通有礼".into(),
        scene: None,
    }))
    .await
    .unwrap();
    let Output::PayoutStatus(paid) = paid else {
        panic!("{paid:?}")
    };
    assert!(matches!(
        paid.state,
        PayoutState::PendingUserConfirmation(Some(_))
    ));
    assert_eq!(
        sim.transfer_user_name("OLD5PAYOUT1").as_deref(),
        Some("王小王")
    );

    let sent = sim.count("POST transfer-bills") + sim.count("GET transfer-bills");
    let contract = ContractRef {
        merchant_contract_no: "C-OLD5".into(),
        provider_contract_id: Some("Wx1546".into()),
    };
    for op in [
        Operation::ContractSign(ContractSignRequest {
            merchant_contract_no: "C-OLD5".into(),
            plan_id: "106".into(),
            payer: ContractPayer {
                app_id: "wx8888888888888888".into(),
                openid: None,
                client_ip: None,
            },
            display_name: "member".into(),
            return_url: None,
        }),
        Operation::ContractQuery(ContractQueryRequest {
            contract: contract.clone(),
            plan_id: "106".into(),
        }),
        Operation::ContractTerminate(ContractTerminateRequest {
            contract: contract.clone(),
            plan_id: "106".into(),
            reason: "moved".into(),
        }),
        Operation::Deduct(DeductionRequest {
            contract: contract.clone(),
            merchant_deduction_no: "D-OLD5".into(),
            amount: Money {
                minor: 100,
                currency: "CNY".into(),
            },
            description: "water".into(),
            client_ip: None,
        }),
        Operation::DeductionQuery(DeductionQueryRequest {
            contract: contract.clone(),
            merchant_deduction_no: "D-OLD5".into(),
            provider_deduction_id: None,
        }),
    ] {
        let name = op.name();
        match call(op).await {
            Err(CallError::Adapter {
                error: AdapterError::Unsupported(m),
                ..
            }) => assert!(m.contains("0.5.0") && m.contains(name), "{m}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(
        sim.count("POST transfer-bills") + sim.count("GET transfer-bills"),
        sent,
        "nothing reached the provider"
    );
}

/// The operator's way to a payout today: `payhost adapter call` with the
/// component, a configuration whose keys are file references, and a
/// payout request, against the simulator (payee name encrypted and read
/// back by WeChat's side), then `payout-query`.
#[test]
fn an_operator_pays_out_with_adapter_call_against_the_simulator() {
    use clap::Parser as _;
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let sim = tokio.block_on(Simulator::start(SimConfig {
        mchid: "1900000001".into(),
        appid: "wx8888888888888888".into(),
        sub_mchid: None,
        merchant_public_key: fixture("sdk-test.pub.pem"),
        platform_private_key: fixture("sdk-test.key.pem"),
        platform_serial: SERIAL.into(),
        api_v3_key: API_V3_KEY.into(),
    }));
    let dir = payhost_e2e::temp_dir("v3-payout-cli");
    std::fs::write(dir.join("v3.key"), fixture("sdk-test.key.pem")).unwrap();
    std::fs::write(dir.join("v3.apikey"), API_V3_KEY).unwrap();
    let config = json!({
        "mchid": "1900000001", "appid": "wx8888888888888888",
        "merchant_serial_no": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        "private_key": format!("file:{}/v3.key", dir.display()),
        "api_v3_key": format!("file:{}/v3.apikey", dir.display()),
        "wechatpay_public_key_id": SERIAL, "wechatpay_public_key": fixture("sdk-test.pub.pem"),
        "base_url": sim.base_url(), "transfer_scene_id": "1000",
        "transfer_scene_report_infos": r#"[{"info_type":"活动名称","info_content":"新会员有礼"}]"#,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let payout = json!({
        "merchant_payout_no": "CLIPAYOUT1", "amount": {"minor": 250_000, "currency": "CNY"},
        "payee": {"app_id": "wx8888888888888888", "openid": "o-cli", "real_name": "李四"},
        "remark": "理赔", "scene": null,
    });
    std::fs::write(dir.join("payout.json"), payout.to_string()).unwrap();
    std::fs::write(
        dir.join("query.json"),
        json!({"payout": {"merchant_payout_no": "CLIPAYOUT1", "provider_payout_id": null}})
            .to_string(),
    )
    .unwrap();
    let wasm = payhost_e2e::components_dir().join("wechat-v3.wasm");
    component("wechat-v3");
    let run = |op: &str, input: &str| {
        let (wasm, config, input) = (
            wasm.display().to_string(),
            dir.join("config.json").display().to_string(),
            dir.join(input).display().to_string(),
        );
        let args = [
            "payhost",
            "adapter",
            "call",
            &wasm,
            op,
            "--config",
            &config,
            "--secret",
            "private_key",
            "--secret",
            "api_v3_key",
            "--input",
            &input,
            "--allow-private",
        ];
        let cli = payhost::cli::Cli::try_parse_from(args).unwrap();
        let code = payhost::cli::run(cli).unwrap_or_else(|e| panic!("adapter call {op}: {e:#}"));
        assert_eq!(
            format!("{code:?}"),
            format!("{:?}", std::process::ExitCode::SUCCESS)
        );
    };
    run("payout", "payout.json");
    assert_eq!(sim.transfer_state("CLIPAYOUT1"), Some("WAIT_USER_CONFIRM"));
    assert_eq!(
        sim.transfer_user_name("CLIPAYOUT1").as_deref(),
        Some("李四")
    );
    sim.confirm_transfer("CLIPAYOUT1").unwrap();
    run("payout-query", "query.json");
    assert_eq!(sim.count("GET transfer-bills"), 1);
    assert_eq!(sim.count("POST transfer-bills"), 1);
}

// ------------------------------------------------------------ the payout API

fn payout_body(no: &str, amount: i64, real_name: Option<&str>) -> Value {
    let mut payee = json!({"app_id": "wx8888888888888888", "openid": "o-payee"});
    if let Some(name) = real_name {
        payee["real_name"] = name.into();
    }
    json!({"payout_no": no, "amount": amount, "currency": "CNY", "payee": payee,
           "remark": "新会员开通有礼", "metadata": {"campaign": "dec"}})
}

fn payout_webhooks(f: &Front, kind: &str) -> Vec<Value> {
    let secret = secrecy::SecretString::from(payhost_e2e::front::WEBHOOK_SECRET.to_string());
    f.receiver
        .accepted()
        .iter()
        .map(|d| {
            payhost::webhooks::verify(&secret, &d.headers, &d.body).expect("signed");
            serde_json::from_slice::<Value>(&d.body).unwrap()
        })
        .filter(|e| e["type"] == kind)
        .collect()
}

/// `POST /v1/payouts` through payhost: stored under its limits, sent with
/// the payee's name encrypted (never stored or answered), handed back with
/// the `wx.requestMerchantTransfer` parameters, retried without paying
/// twice, and settled by WeChat's verified notification into a signed
/// `payout.succeeded` webhook.
#[tokio::test]
async fn a_payout_through_the_api_waits_for_the_payee_and_its_notification_settles_it() {
    let (f, sim) = v3_front("v3-payout-api", DIRECT).await;
    let body = payout_body("PAYAPI0001", 200_000, Some("王小王"));
    let (status, created) = v3(&f, Method::POST, "/v1/payouts", Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "pending_user_confirmation");
    assert_eq!(created["confirmation"]["mchId"], "1900000001");
    assert_eq!(created["confirmation"]["appId"], "wx8888888888888888");
    assert!(
        created["confirmation"]["package"]
            .as_str()
            .unwrap()
            .starts_with("pkg-")
    );
    assert_eq!(created["payee"]["real_name_checked"], true);
    assert_eq!(created["metadata"]["campaign"], "dec");
    assert!(!created.to_string().contains("王小王"), "{created}");
    assert_eq!(
        sim.transfer_user_name("PAYAPI0001").as_deref(),
        Some("王小王")
    );

    // The same request again: the payout as it stands, WeChat not asked
    // twice. Another amount under the number: refused.
    let (status, again) = v3(&f, Method::POST, "/v1/payouts", Some(body)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["provider_payout_id"], created["provider_payout_id"]);
    assert_eq!(sim.count("POST transfer-bills"), 1);
    let (status, other) = v3(
        &f,
        Method::POST,
        "/v1/payouts",
        Some(payout_body("PAYAPI0001", 200_001, Some("王小王"))),
    )
    .await;
    assert_eq!(
        (status, other["code"].as_str()),
        (409, Some("payout_exists"))
    );

    // The payee confirms; a tampered notification changes nothing, the
    // real one settles the payout.
    sim.confirm_transfer("PAYAPI0001").unwrap();
    let (status, _) = sim
        .notify_transfer("PAYAPI0001", NotifyForgery::Tampered)
        .await
        .unwrap();
    assert!(status >= 400);
    let (_, still) = v3(&f, Method::GET, "/v1/payouts/PAYAPI0001", None).await;
    assert_eq!(still["state"], "pending_user_confirmation");
    let (status, answer) = sim
        .notify_transfer("PAYAPI0001", NotifyForgery::None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    let (_, paid) = v3(&f, Method::GET, "/v1/payouts/PAYAPI0001", None).await;
    assert_eq!(paid["state"], "succeeded", "{paid}");
    assert_eq!(paid["provider_state"], "SUCCESS");
    f.eventually("payout.succeeded delivered", || {
        !payout_webhooks(&f, "payout.succeeded").is_empty()
    })
    .await;
    let hook = &payout_webhooks(&f, "payout.succeeded")[0];
    assert_eq!(hook["data"]["payout"]["payout_no"], "PAYAPI0001");
    assert_eq!(hook["data"]["payout"]["amount"], 200_000);
    assert!(!hook.to_string().contains("王小王"));
    // The notification again: a duplicate, acknowledged, nothing new.
    let (status, _) = sim
        .notify_transfer("PAYAPI0001", NotifyForgery::None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (_, events) = v3(&f, Method::GET, "/v1/events", None).await;
    let kinds: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("payout."))
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(kinds, [json!("payout.succeeded")]);
}

/// A payout whose notification never comes is settled by `payout-query`:
/// the reconciler learns that it failed and the merchant hears
/// `payout.failed` with WeChat's reason; `?refresh=true` asks at once.
#[tokio::test]
async fn a_payout_without_its_notification_is_settled_by_query() {
    let (f, sim) = v3_front_with("v3-payout-poll", DIRECT, Options::fast_reconciler()).await;
    let (status, created) = v3(
        &f,
        Method::POST,
        "/v1/payouts",
        Some(payout_body("PAYPOLL001", 1_000, None)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["payee"]["real_name_checked"], false);
    sim.fail_transfer("PAYPOLL001", "PAYEE_ACCOUNT_ABNORMAL")
        .unwrap();
    let failed = wait_for(&f, "/v1/payouts/PAYPOLL001", "state", "failed").await;
    assert_eq!(failed["failure_reason"], "PAYEE_ACCOUNT_ABNORMAL");
    assert!(sim.count("GET transfer-bills") >= 1);
    f.eventually("payout.failed delivered", || {
        !payout_webhooks(&f, "payout.failed").is_empty()
    })
    .await;

    // Refresh: asked now, answered as the provider says.
    let (status, created) = v3(
        &f,
        Method::POST,
        "/v1/payouts",
        Some(payout_body("PAYPOLL002", 1_000, None)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    sim.confirm_transfer("PAYPOLL002").unwrap();
    let before = sim.count("GET transfer-bills");
    let (status, now) = v3(&f, Method::GET, "/v1/payouts/PAYPOLL002?refresh=true", None).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["state"], "succeeded");
    assert!(sim.count("GET transfer-bills") > before);
}

/// The limits of seed 002 are refused before WeChat is asked, each named
/// in the 422: the per-payout cap, the real name from 2,000.00 CNY, and
/// ten payouts per payee per day.
#[tokio::test]
async fn payouts_over_the_merchants_limits_are_refused_before_wechat_is_asked() {
    let (f, sim) = v3_front("v3-payout-limits", DIRECT).await;
    let refused = |v: &Value| (v["code"].clone(), v["limit"].clone());
    let (status, over) = v3(
        &f,
        Method::POST,
        "/v1/payouts",
        Some(payout_body("PAYLIM0001", 500_001, Some("王小王"))),
    )
    .await;
    assert_eq!(status, 422, "{over}");
    assert_eq!(
        refused(&over),
        (json!("payout_limit_exceeded"), json!("per_payout"))
    );
    assert_eq!(over["max"], 500_000);
    let (status, nameless) = v3(
        &f,
        Method::POST,
        "/v1/payouts",
        Some(payout_body("PAYLIM0002", 200_000, None)),
    )
    .await;
    assert_eq!(status, 422, "{nameless}");
    assert_eq!(refused(&nameless).1, json!("real_name_required"));
    // Ten to one payee pass; the eleventh is refused.
    for i in 0..10 {
        let no = format!("PAYCNT{i:04}");
        let (status, p) = v3(
            &f,
            Method::POST,
            "/v1/payouts",
            Some(payout_body(&no, 100, None)),
        )
        .await;
        assert_eq!(status, 201, "{p}");
    }
    let (status, eleventh) = v3(
        &f,
        Method::POST,
        "/v1/payouts",
        Some(payout_body("PAYCNT0010", 100, None)),
    )
    .await;
    assert_eq!(status, 422, "{eleventh}");
    assert_eq!(refused(&eleventh).1, json!("per_payee_day_count"));
    assert_eq!(eleventh["counted"], 10);
    // Nothing refused reached WeChat or the store.
    assert_eq!(sim.count("POST transfer-bills"), 10);
    for no in ["PAYLIM0001", "PAYLIM0002", "PAYCNT0010"] {
        let (status, _) = v3(&f, Method::GET, &format!("/v1/payouts/{no}"), None).await;
        assert_eq!(status, 404, "{no}");
    }
    // Bad input of any kind: a clear 400, nothing stored.
    for bad in [
        json!({"payout_no": "P 1", "amount": 1, "currency": "CNY", "payee": {"app_id": "a", "openid": "o"}, "remark": "r"}),
        json!({"payout_no": "P1", "amount": 1.5, "currency": "CNY", "payee": {"app_id": "a", "openid": "o"}, "remark": "r"}),
        json!({"payout_no": "P1", "amount": 1, "currency": "USD", "payee": {"app_id": "a", "openid": "o"}, "remark": "r"}),
        json!({"payout_no": "P1", "amount": 1, "currency": "CNY", "payee": {"app_id": "a", "openid": "o"}, "remark": ""}),
        json!({"payout_no": "P1", "amount": 1, "currency": "CNY", "payee": {"app_id": "a", "openid": "o", "real_name": ""}, "remark": "r"}),
        json!({"payout_no": "P1", "amount": 1, "currency": "CNY", "payee": {"openid": "o"}, "remark": "r"}),
    ] {
        let (status, answer) = v3(&f, Method::POST, "/v1/payouts", Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad} -> {answer}");
    }
    assert_eq!(sim.count("POST transfer-bills"), 10);
}

/// Concurrent retries of one payout, with and without one
/// Idempotency-Key: one transfer at WeChat, one 201, the same payout in
/// every answer that is not "in progress".
#[tokio::test]
async fn concurrent_retries_of_a_payout_pay_once() {
    let (f, sim) = v3_front("v3-payout-retries", DIRECT).await;
    let answers = f
        .post_concurrently(
            V3_KEY,
            "/v1/payouts",
            &payout_body("PAYRETRY01", 1_000, None),
            "payout-retry-1",
            8,
        )
        .await;
    for body in answers {
        assert_eq!(body["payout_no"], "PAYRETRY01");
        assert_eq!(body["amount"], 1_000);
    }
    // WeChat saw the number once or more, and holds one transfer for it.
    assert!(sim.count("POST transfer-bills") >= 1);
    assert_eq!(sim.transfer_state("PAYRETRY01"), Some("WAIT_USER_CONFIRM"));
}
