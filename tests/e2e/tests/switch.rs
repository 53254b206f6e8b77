//! The source article's `switch (pay_sp)`, replaced: one payhost process
//! with one merchant per regional provider (and shop-1 on WeChat Pay v2),
//! each paid through its own sandboxed adapter against its own simulator,
//! side by side, through the same HTTP API.

use payhost::config::api_key_hash;
use payhost_e2e::front::{Front, Options};
use payhost_simulators::{supay, twopaynow, vr_payment, wechat_cloudpay, yaband};
use serde_json::{Value, json};
use std::fmt::Write as _;

const APPID: &str = "wx5a1e7f1b2c3d4e5f";

/// One merchant of the switch: its API key, adapter and order.
struct Shop {
    id: &'static str,
    key: &'static str,
    adapter: &'static str,
    currency: &'static str,
    method: &'static str,
}

const SHOPS: [Shop; 5] = [
    Shop {
        id: "shop-yaband",
        key: "pk_sw_yaband",
        adapter: "yaband",
        currency: "EUR",
        method: "wechat_mini_program",
    },
    Shop {
        id: "shop-2paynow",
        key: "pk_sw_2paynow",
        adapter: "2paynow",
        currency: "EUR",
        method: "wechat_native",
    },
    Shop {
        id: "shop-supay",
        key: "pk_sw_supay",
        adapter: "supay",
        currency: "AUD",
        method: "wechat_mini_program",
    },
    Shop {
        id: "shop-vr",
        key: "pk_sw_vr",
        adapter: "vr-payment",
        currency: "EUR",
        method: "card",
    },
    Shop {
        id: "shop-cloudpay",
        key: "pk_sw_cloudpay",
        adapter: "wechat-cloudpay",
        currency: "CNY",
        method: "wechat_mini_program",
    },
];

fn merchant(shop: &Shop, limits: &str, config: &str) -> String {
    format!(
        "\n[[merchants]]\nid = \"{id}\"\napi_keys = [\"{hash}\"]\nadapter = \"{adapter}\"\ncurrency = \"{currency}\"\nindustry = \"physical\"\n\n[merchants.limits]\n{limits}\n[merchants.config]\n{config}",
        id = shop.id,
        hash = api_key_hash(shop.key),
        adapter = shop.adapter,
        currency = shop.currency,
    )
}

async fn as_shop(
    f: &Front,
    shop: &Shop,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = f.client.request(method, f.url(path)).bearer_auth(shop.key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn one_payhost_serves_a_payment_through_each_regional_provider() {
    let yb = yaband::Simulator::start(yaband::SimConfig::new("016683", "sw-yaband-secret")).await;
    let tp =
        twopaynow::Simulator::start(twopaynow::SimConfig::new("4002563369", "sw2paynowkey")).await;
    let sp = supay::Simulator::start(supay::SimConfig::new("100001", "sw-supay-key")).await;
    let vr = vr_payment::Simulator::start(vr_payment::SimConfig::new(
        40213,
        "512",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ))
    .await;
    let cp = wechat_cloudpay::Simulator::start(wechat_cloudpay::SimConfig::new(
        "prod-sw",
        "1712734762",
        APPID,
    ))
    .await;

    let dir = payhost_e2e::temp_dir("switch");
    let d = dir.display();
    for (file, secret) in [
        ("yaband.key", "sw-yaband-secret"),
        ("2paynow.key", "sw2paynowkey"),
        ("supay.key", "sw-supay-key"),
        ("vr.key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
    ] {
        std::fs::write(dir.join(file), secret).unwrap();
    }
    let mut extra = String::new();
    for (shop, limits, config) in [
        (
            &SHOPS[0],
            "cny_rate = \"0.1300\"",
            format!(
                "user = \"016683\"\nsecret_key = \"file:{d}/yaband.key\"\nbase_url = \"{}\"\nredirect_url = \"https://shop.example/back\"\n",
                yb.base_url()
            ),
        ),
        (
            &SHOPS[1],
            "cny_rate = \"0.1280\"",
            format!(
                "mid = \"4002563369\"\nkey = \"file:{d}/2paynow.key\"\nbase_url = \"{}\"\n",
                tp.base_url()
            ),
        ),
        (
            &SHOPS[2],
            "cny_rate = \"0.2100\"",
            format!(
                "mch_id = \"100001\"\napi_key = \"file:{d}/supay.key\"\nstore_name = \"Tea House Sydney\"\nappid = \"{APPID}\"\nbase_url = \"{}\"\n",
                sp.base_url()
            ),
        ),
        (
            &SHOPS[3],
            "cny_rate = \"0.1385\"",
            format!(
                "space_id = \"40213\"\nuser_id = \"512\"\nauthentication_key = \"file:{d}/vr.key\"\nbase_url = \"{}\"\nsuccess_url = \"https://shop.example/paid\"\n",
                vr.base_url()
            ),
        ),
        (
            &SHOPS[4],
            "",
            format!(
                "env_id = \"prod-sw\"\nsub_mch_id = \"1712734762\"\nappid = \"{APPID}\"\ncontainer_service = \"payhost\"\nbase_url = \"{}\"\n",
                cp.base_url()
            ),
        ),
    ] {
        write!(extra, "{}", merchant(shop, limits, &config)).unwrap();
    }
    let f = Front::start(
        "switch",
        Options {
            data_dir: Some(dir.clone()),
            extra_toml: extra,
            // VR Payment sends nothing: its order is settled by polling.
            reconciler_interval_ms: 50,
            poll_backoff_ms: 100,
            ..Options::default()
        },
    )
    .await;
    cp.route_service("payhost", &f.base);

    // Every merchant creates its order through the same endpoint.
    let mut actions = Vec::new();
    for (i, shop) in SHOPS.iter().enumerate() {
        let no = format!("SW{i}0001");
        let body = json!({
            "merchant_order_no": no, "amount": 1999, "currency": shop.currency,
            "description": "Tea, 250 g", "method": shop.method,
            "payer": {"app_id": APPID, "openid": "o-switch-payer", "client_ip": "203.0.113.7"},
        });
        let (status, p) =
            as_shop(&f, shop, reqwest::Method::POST, "/v1/payments", Some(body)).await;
        assert_eq!(status, 201, "{}: {p}", shop.adapter);
        actions.push(
            p["pay_action"]["type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(
        actions,
        [
            "mini_program",
            "qr_code",
            "mini_program",
            "redirect",
            "mini_program"
        ]
    );

    // Each payer pays; four providers notify with their own wire format and
    // acknowledgement, VR Payment notifies nothing.
    yb.pay("SW00001").unwrap();
    assert_eq!(
        yb.notify_payment("SW00001", Default::default())
            .await
            .unwrap(),
        (200, "ok".into())
    );
    tp.pay("SW10001").unwrap();
    assert_eq!(
        tp.notify_payment("SW10001", Default::default())
            .await
            .unwrap(),
        (200, "success".into())
    );
    sp.pay("SW20001").unwrap();
    assert_eq!(
        sp.notify_payment("SW20001", Default::default())
            .await
            .unwrap(),
        (200, "success".into())
    );
    vr.pay("SW30001").unwrap();
    cp.pay("SW40001").unwrap();
    let (status, body) = cp
        .notify_payment("SW40001", Default::default())
        .await
        .unwrap();
    assert!(
        wechat_cloudpay::acknowledged(status, &body),
        "{status} {body}"
    );

    for (i, shop) in SHOPS.iter().enumerate() {
        let path = format!("/v1/payments/SW{i}0001");
        let mut p = Value::Null;
        for _ in 0..200 {
            p = as_shop(&f, shop, reqwest::Method::GET, &path, None).await.1;
            if p["state"] == "paid" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(p["state"], "paid", "{}: {p}", shop.adapter);
        assert_eq!(
            (p["amount"].as_i64(), p["currency"].as_str()),
            (Some(1999), Some(shop.currency))
        );
        // Every provider but WeChat's own cloud payment has a trade number.
        assert_eq!(
            p["provider_trade_no"].is_string(),
            shop.adapter != "wechat-cloudpay",
            "{}: {p}",
            shop.adapter
        );
        // Merchants see only their own orders.
        let other = &SHOPS[(i + 1) % SHOPS.len()];
        assert_eq!(
            as_shop(&f, other, reqwest::Method::GET, &path, None)
                .await
                .0,
            404
        );
    }
    // And WeChat Pay v2 (shop-1) beside them, in the same process.
    let r = f.create("SW-V2-0001", 1999).await;
    assert_eq!(r.status(), 201);
}
