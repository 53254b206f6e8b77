//! `adapter call --record` and `adapter replay` (`payhost::recording`): a
//! unified order recorded against the WeChat v2 simulator, then replayed
//! with the simulator gone.

use payhost::contract::{CallContext, Money, OrderRequest, Payer};
use payhost::merchant::MerchantConfig;
use payhost::recording::{self, Outcome};
use payhost::runtime::{Operation, Runtime};
use payhost_e2e::front::{self, APPID, MCH_ID, WECHAT_KEY};
use payhost_simulators::wechat_v2::Simulator;

fn merchant(key: &str, base_url: &str) -> MerchantConfig {
    MerchantConfig::new("shop-1")
        .text("appid", APPID)
        .text("mch_id", MCH_ID)
        .secret("api_key", key)
        .text("base_url", base_url)
}

fn order() -> Operation {
    Operation::UnifiedOrder(OrderRequest {
        merchant_order_no: "REC-0001".into(),
        amount: Money {
            minor: 1999,
            currency: "CNY".into(),
        },
        description: "Tea, 250 g".into(),
        method: "wechat_mini_program".into(),
        payer: Payer {
            app_id: Some(APPID.into()),
            openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
            client_ip: Some("203.0.113.7".into()),
        },
        expires_at: None,
        attach: None,
    })
}

#[tokio::test]
async fn a_recorded_call_replays_offline_without_its_secret() {
    let rt = Runtime::new(payhost_e2e::test_config()).unwrap();
    let adapter = rt.load(&payhost_e2e::component("wechat-v2")).unwrap();
    let sim = Simulator::start(front::sim_config()).await;
    let base = sim.base_url();
    let call = CallContext {
        request_id: "rec-1".into(),
        timestamp: 1_700_000_000,
        seed: 11,
        notify_url: "http://127.0.0.1:9/v1/notify/wechat-v2/shop-1".into(),
    };
    let rec = recording::record(&rt, &adapter, &merchant(WECHAT_KEY, &base), call, order())
        .await
        .unwrap();
    assert_eq!(rec.exchanges.len(), 1);
    assert!(rec.exchanges[0].request.url.ends_with("/pay/unifiedorder"));
    let Outcome::Ok(created) = &rec.outcome else {
        panic!("{:?}", rec.outcome)
    };
    assert_eq!(
        created["OrderCreated"]["order"]["merchant_order_no"],
        "REC-0001"
    );
    assert_eq!(sim.requests().len(), 1);

    let dir = payhost_e2e::temp_dir("recording");
    recording::save(&rec, &dir).unwrap();
    let text = std::fs::read_to_string(dir.join(recording::FILE)).unwrap();
    assert!(
        !text.contains(WECHAT_KEY),
        "the API key is in the recording"
    );
    drop(sim);

    // The provider is gone; the recording answers. Same key: same requests
    // and the same order.
    let loaded = recording::load(&dir).unwrap();
    assert_eq!(loaded, rec);
    let same = recording::replay(&rt, &adapter, &merchant(WECHAT_KEY, &base), &loaded)
        .await
        .unwrap();
    assert!(same.same_outcome, "{same:?}");
    assert!(same.changed_requests.is_empty(), "{same:?}");
    assert_eq!(same.unused_answers, 0);

    // Another key: the request's signature changes, and the recorded answer
    // (signed with the real key) no longer verifies.
    let other = recording::replay(
        &rt,
        &adapter,
        &merchant("0123456789abcdef0123456789abcdef", &base),
        &loaded,
    )
    .await
    .unwrap();
    assert!(!other.same_outcome, "{other:?}");
    assert_eq!(other.changed_requests.len(), 1, "{other:?}");
    assert!(other.changed_requests[0].contains("body"), "{other:?}");

    // An answer edited after the fact is caught by the adapter's check.
    let mut tampered = loaded.clone();
    let body = String::from_utf8(tampered.exchanges[0].response.body.clone()).unwrap();
    tampered.exchanges[0].response.body = body.replace("SUCCESS", "SUCCESs").into_bytes();
    let t = recording::replay(&rt, &adapter, &merchant(WECHAT_KEY, &base), &tampered)
        .await
        .unwrap();
    assert!(!t.same_outcome, "{t:?}");
}
