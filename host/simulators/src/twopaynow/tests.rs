//! The simulator checked over real HTTP with hand-built requests; the test
//! side signs with its own MD5 so a mistake in [`sign`] cannot hide.

use super::*;
use axum::routing::any;

const MID: &str = "4002563369";
const KEY: &str = "zG93Cv85BCCp2h";

fn md5(text: &str) -> String {
    encoding::hex_lower(&native::digest(DigestAlgorithm::Md5, text.as_bytes()))
}

#[test]
fn the_published_vector() {
    assert_eq!(
        sign("precreate", MID, "1571034662245", KEY),
        "4f83e30f527ff4ed0fc9c03185f43f97"
    );
    let config = format!("{:?}", SimConfig::new(MID, KEY));
    assert!(!config.contains(KEY), "{config}");
}

fn now_ms() -> String {
    TimestampUnit::Milliseconds.now().to_string()
}

/// A signed query string: function, mid, timestamp, sign, then `params`.
fn signed(function: &str, timestamp: &str, params: &[(&str, &str)]) -> String {
    let sign = md5(&format!("{function}{MID}{timestamp}{KEY}"));
    let mut pairs = vec![
        ("function", function),
        ("mid", MID),
        ("timestamp", timestamp),
        ("sign", sign.as_str()),
    ];
    pairs.extend_from_slice(params);
    form::encode(pairs)
}

fn precreate_params<'a>(no: &'a str, amount: &'a str, notify: &'a str) -> Vec<(&'a str, String)> {
    vec![
        ("type", "1".into()),
        ("subject", "Tea".into()),
        ("amount", amount.into()),
        ("currency", "EUR".into()),
        ("notify_url", notify.into()),
        ("it_b_pay", "30m".into()),
        (
            "passback_parameters",
            json!({"merchant_order_no": no}).to_string(),
        ),
    ]
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Calls the web endpoint; checks the answer's signature when it is 200.
async fn call(sim: &Simulator, function: &str, params: &[(&str, String)]) -> Value {
    call_raw(sim, &signed(function, &now_ms(), &borrow(params))).await
}

fn borrow<'a>(params: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn call_raw(sim: &Simulator, query: &str) -> Value {
    let (status, body) = get(&format!("{}{API_PATH}?{query}", sim.base_url())).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    if v["status"] == 200 {
        let f = v["function"].as_str().unwrap();
        let ts = v["timestamp"].as_str().unwrap();
        assert_eq!(v["sign"], md5(&format!("{f}{MID}{ts}{KEY}")), "{v}");
    }
    v
}

async fn sim() -> Simulator {
    Simulator::start(SimConfig::new(MID, KEY)).await
}

#[tokio::test]
async fn a_web_order_is_found_by_trade_no_only() {
    let sim = sim().await;
    let created = call(
        &sim,
        "precreate",
        &precreate_params("ORDER-1", "8.99", "http://127.0.0.1:1/n"),
    )
    .await;
    assert_eq!(created["status"], 200, "{created}");
    let trade_no = created["trade_no"].as_str().unwrap().to_string();
    assert!(
        created["qr_code"]
            .as_str()
            .unwrap()
            .starts_with("weixin://wxpay/bizpayurl")
    );
    assert_eq!(sim.trade_no("ORDER-1").as_deref(), Some(trade_no.as_str()));

    let q = call(&sim, "query", &[("trade_no", trade_no.clone())]).await;
    assert_eq!(q["trans_status"], "UNKNOWN");
    assert_eq!(q["amount"], "8.99");
    assert_eq!(q["currency"], "EUR");
    // The merchant's number is not 2paynow's: not found, either way.
    let q = call(&sim, "query", &[("trade_no", "ORDER-1".into())]).await;
    assert_eq!(q["status"], 404, "{q}");
    let q = call(
        &sim,
        "wap_query",
        &[("merchant_trade_no", "ORDER-1".into())],
    )
    .await;
    assert_eq!(q["status"], 404, "{q}");

    sim.pay("ORDER-1").unwrap();
    let q = call(&sim, "query", &[("trade_no", trade_no.clone())]).await;
    assert_eq!(q["trans_status"], "TRADE_SUCCESS");
    assert_eq!(sim.count("precreate"), 1);
    assert_eq!(sim.count("query"), 3);
    assert_eq!(sim.count("wap_query"), 1);
}

#[tokio::test]
async fn every_request_is_checked_strictly() {
    let sim = sim().await;
    let good = precreate_params("ORDER-2", "8.99", "http://127.0.0.1:1/n");
    let good = borrow(&good);
    let refused = |v: Value, status: u16, word: &str| {
        assert_eq!(v["status"], status, "{v}");
        assert!(v["error_info"].as_str().unwrap().contains(word), "{v}");
        assert!(v.get("sign").is_none());
    };
    // The signature over function, mid, timestamp and key.
    let forged = signed("precreate", &now_ms(), &good).replace("sign=", "sign=0");
    refused(call_raw(&sim, &forged).await, 401, "sign");
    let other_key = form::encode([
        ("function", "precreate"),
        ("mid", MID),
        ("timestamp", &now_ms()),
        ("sign", &md5(&format!("precreate{MID}{}other", now_ms()))),
    ]);
    refused(call_raw(&sim, &other_key).await, 401, "sign");
    // Seconds where milliseconds are expected, and a stale stamp.
    let seconds = TimestampUnit::Seconds.now().to_string();
    refused(
        call_raw(&sim, &signed("precreate", &seconds, &good)).await,
        401,
        "timestamp",
    );
    let stale = (TimestampUnit::Milliseconds.now() - 600_000).to_string();
    refused(
        call_raw(&sim, &signed("precreate", &stale, &good)).await,
        401,
        "timestamp",
    );
    // Another merchant.
    let other_mid = signed("precreate", &now_ms(), &good).replace(MID, "4002563370");
    refused(call_raw(&sim, &other_mid).await, 403, "mid not exist");
    // Wrong and repeated names, missing and bad values.
    let mut extra = good.clone();
    extra.push(("total_fee", "899"));
    refused(
        call_raw(&sim, &signed("precreate", &now_ms(), &extra)).await,
        400,
        "unknown parameter total_fee",
    );
    let twice = format!("{}&amount=1.00", signed("precreate", &now_ms(), &good));
    refused(call_raw(&sim, &twice).await, 400, "twice");
    let without: Vec<_> = good
        .iter()
        .copied()
        .filter(|(k, _)| *k != "notify_url")
        .collect();
    refused(
        call_raw(&sim, &signed("precreate", &now_ms(), &without)).await,
        400,
        "notify_url",
    );
    for (k, v, word) in [
        ("amount", "8.999", "amount"),
        ("amount", "0.00", "amount"),
        ("currency", "USD", "currency"),
        ("type", "2", "type"),
        ("it_b_pay", "30", "it_b_pay"),
        ("passback_parameters", "{oops", "passback"),
    ] {
        let changed: Vec<_> = good
            .iter()
            .map(|(n, old)| if *n == k { (*n, v) } else { (*n, *old) })
            .collect();
        refused(
            call_raw(&sim, &signed("precreate", &now_ms(), &changed)).await,
            400,
            word,
        );
    }
    refused(
        call_raw(&sim, &signed("refund", &now_ms(), &[])).await,
        400,
        "function refund",
    );
    refused(call(&sim, "wap_precreate", &[]).await, 400, "required");
    assert_eq!(sim.trade_no("ORDER-2"), None);
    // The same request signed in seconds passes a seconds-mode simulator.
    let mut config = SimConfig::new(MID, KEY);
    config.timestamp_unit = TimestampUnit::Seconds;
    let sim = Simulator::start(config).await;
    let ok = call_raw(
        &sim,
        &signed(
            "precreate",
            &TimestampUnit::Seconds.now().to_string(),
            &good,
        ),
    )
    .await;
    assert_eq!(ok["status"], 200, "{ok}");
}

/// A signed `wap_precreate` URL on `page` with `params`.
fn wap_url(page: &str, params: &[(&str, String)]) -> String {
    format!(
        "{page}?{}",
        signed("wap_precreate", &now_ms(), &borrow(params))
    )
}

fn wap_params(no: &str, page_type: &str) -> Vec<(&'static str, String)> {
    vec![
        ("type", page_type.into()),
        ("subject", "Tea".into()),
        ("amount", "24.99".into()),
        ("currency", "EUR".into()),
        ("notify_url", "http://127.0.0.1:1/n".into()),
        ("merchant_trade_no", no.into()),
        ("return_url", "https://shop.example/back".into()),
    ]
}

#[tokio::test]
async fn a_wap_order_exists_once_its_page_is_opened_and_is_found_by_merchant_number_only() {
    let sim = sim().await;
    let q = call(&sim, "wap_query", &[("merchant_trade_no", "WAP-1".into())]).await;
    assert_eq!(q["status"], 404);
    let page = wap_url(&sim.wap_wechat_url(), &wap_params("WAP-1", "1"));
    let (status, html) = get(&page).await;
    assert_eq!(status, 200, "{html}");
    // Opened twice: still one order.
    assert_eq!(get(&page).await.0, 200);
    let trade_no = sim.trade_no("WAP-1").unwrap();
    assert!(html.contains(&trade_no));
    let q = call(&sim, "wap_query", &[("merchant_trade_no", "WAP-1".into())]).await;
    assert_eq!(q["trade_no"], trade_no.as_str());
    assert_eq!(q["trans_status"], "UNKNOWN");
    let q = call(&sim, "query", &[("trade_no", trade_no)]).await;
    assert_eq!(q["status"], 404, "{q}");
    assert_eq!(sim.count("wap_page"), 2);

    // The WeChat page takes WeChat and no time-out; the Alipay page Alipay.
    let mut with_timeout = wap_params("WAP-2", "1");
    with_timeout.push(("it_b_pay", "5m".into()));
    let (status, body) = get(&wap_url(&sim.wap_wechat_url(), &with_timeout)).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = get(&wap_url(&sim.wap_alipay_url(), &wap_params("WAP-2", "1"))).await;
    assert_eq!(status, 400);
    let (status, _) = get(&wap_url(&sim.wap_alipay_url(), &wap_params("WAP-2", "0"))).await;
    assert_eq!(status, 200);
    let forged =
        wap_url(&sim.wap_alipay_url(), &wap_params("WAP-3", "0")).replace("sign=", "sign=1");
    assert_eq!(get(&forged).await.0, 400);
    assert_eq!(sim.trade_no("WAP-3"), None);
}

#[tokio::test]
async fn cancel_closes_an_unpaid_order_and_refuses_a_paid_one() {
    let sim = sim().await;
    for no in ["C-1", "C-2"] {
        call(
            &sim,
            "precreate",
            &precreate_params(no, "1.00", "http://127.0.0.1:1/n"),
        )
        .await;
    }
    let c1 = sim.trade_no("C-1").unwrap();
    let a = call(&sim, "cancel", &[("trade_no", c1.clone())]).await;
    assert_eq!(a["status"], 200, "{a}");
    assert_eq!(sim.trans_status("C-1"), Some("TRADE_CLOSED"));
    assert!(sim.pay("C-1").is_err());
    // Again: still closed.
    assert_eq!(
        call(&sim, "cancel", &[("trade_no", c1)]).await["status"],
        200
    );
    sim.pay("C-2").unwrap();
    let a = call(
        &sim,
        "cancel",
        &[("trade_no", sim.trade_no("C-2").unwrap())],
    )
    .await;
    assert_eq!(a["status"], 400, "{a}");
    assert_eq!(sim.trans_status("C-2"), Some("TRADE_SUCCESS"));
    assert_eq!(
        call(&sim, "cancel", &[("trade_no", "C-2".into())]).await["status"],
        404
    );
    sim.decline("C-2").unwrap_err();
    assert_eq!(sim.count("cancel"), 4);
}

/// A merchant endpoint that records each notification (method and query)
/// and answers `answer`.
async fn receiver(answer: &'static str) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let log = seen.clone();
    let app = Router::new().route(
        "/notify",
        any(move |method: axum::http::Method, uri: Uri| {
            let log = log.clone();
            async move {
                log.lock()
                    .unwrap()
                    .push((method.to_string(), uri.query().unwrap_or("").to_string()));
                answer
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/notify"), seen)
}

fn pairs(query: &str) -> BTreeMap<String, String> {
    form::decode(query.as_bytes()).into_iter().collect()
}

fn verifies(p: &BTreeMap<String, String>) -> bool {
    p["sign"]
        == md5(&format!(
            "{}{}{}{KEY}",
            p["function"], p["mid"], p["timestamp"]
        ))
}

#[tokio::test]
async fn notifications_are_signed_query_strings_and_forged_on_request() {
    let sim = sim().await;
    let (url, seen) = receiver("success").await;
    call(&sim, "precreate", &precreate_params("N-1", "8.99", &url)).await;
    let trade_no = sim.trade_no("N-1").unwrap();
    sim.pay("N-1").unwrap();
    let (status, body) = sim
        .notify_payment("N-1", NotifyForgery::None)
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "success"));
    sim.notify_payment_via("N-1", NotifyForgery::None, NotifyMethod::Post)
        .await
        .unwrap();
    for forgery in [
        NotifyForgery::Tampered,
        NotifyForgery::WrongAmount,
        NotifyForgery::WrongCurrency,
        NotifyForgery::UnknownOrder,
    ] {
        sim.notify_payment("N-1", forgery).await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let methods: Vec<_> = seen.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, ["GET", "POST", "GET", "GET", "GET", "GET"]);
    let p: Vec<_> = seen.iter().map(|(_, q)| pairs(q)).collect();
    assert!(verifies(&p[0]) && verifies(&p[1]));
    assert_eq!(p[0]["function"], "precreate");
    assert_eq!(p[0]["trade_no"], trade_no);
    assert_eq!(p[0]["trade_status"], "TRADE_SUCCESS");
    assert_eq!(p[0]["amount"], "8.99");
    assert_eq!(p[0]["currency"], "EUR");
    assert_eq!(p[0]["merchant_trade_no"], "");
    assert_eq!(
        p[0]["original_trade_no"],
        sim.original_trade_no("N-1").unwrap()
    );
    assert!(p[0]["passback_parameters"].contains("N-1"));
    assert!(!verifies(&p[2]));
    assert!(verifies(&p[3]) && p[3]["amount"] == "9.00");
    assert!(verifies(&p[4]) && p[4]["currency"] == "CNY");
    assert!(verifies(&p[5]) && !p[5]["passback_parameters"].contains("\"N-1\""));
    assert_eq!(p[5]["trade_no"], trade_no);
}

#[tokio::test]
async fn an_unpaid_order_notifies_its_state_unless_the_forgery_claims_paid() {
    let sim = sim().await;
    let (url, seen) = receiver("success").await;
    let mut params = wap_params("N-2", "0");
    params.retain(|(k, _)| *k != "notify_url");
    params.push(("notify_url", url.clone()));
    let page = wap_url(&sim.wap_alipay_url(), &params);
    assert_eq!(get(&page).await.0, 200);
    sim.notify_payment("N-2", NotifyForgery::None)
        .await
        .unwrap();
    sim.notify_payment("N-2", NotifyForgery::ClaimsPaid)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let p: Vec<_> = seen.iter().map(|(_, q)| pairs(q)).collect();
    assert_eq!(p[0]["trade_status"], "UNKNOWN");
    assert_eq!(p[0]["function"], "wap_precreate");
    assert_eq!(p[0]["merchant_trade_no"], "N-2");
    assert!(!p[0].contains_key("original_trade_no"));
    assert_eq!(p[1]["trade_status"], "TRADE_SUCCESS");
    assert_eq!(sim.trans_status("N-2"), Some("UNKNOWN"));
}

async fn until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

#[tokio::test]
async fn queued_notifications_repeat_until_acknowledged_and_can_be_duplicated() {
    let mut config = SimConfig::new(MID, KEY);
    config.faults = FaultConfig {
        seed: 3,
        notify_duplicate: 1.0,
        max_faults: 1,
        max_notify_delay: Duration::from_millis(20),
        ..FaultConfig::none()
    };
    let sim = Simulator::start(config).await;
    let (ok_url, ok_seen) = receiver("success").await;
    let (bad_url, bad_seen) = receiver("fail").await;
    call(&sim, "precreate", &precreate_params("Q-1", "1.00", &ok_url)).await;
    call(
        &sim,
        "precreate",
        &precreate_params("Q-2", "1.00", &bad_url),
    )
    .await;
    assert!(sim.pay_and_notify("Q-1").unwrap());
    assert!(!sim.pay_and_notify("Q-1").unwrap());
    // The one duplication the budget allows went to Q-1.
    until("Q-1 twice", || ok_seen.lock().unwrap().len() == 2).await;
    assert!(sim.pay_and_notify("Q-2").unwrap());
    until("Q-2 given up", || sim.outbox_stats().gave_up == 1).await;
    assert_eq!(bad_seen.lock().unwrap().len(), 4);
    assert_eq!(sim.fault_counts().notify_duplicated, 1);
    assert!(
        ok_seen
            .lock()
            .unwrap()
            .iter()
            .all(|(_, q)| verifies(&pairs(q)))
    );
}

#[tokio::test]
async fn api_faults_answer_503_system_error_or_hang() {
    let sim = sim().await;
    let params = precreate_params("F-1", "1.00", "http://127.0.0.1:1/n");
    sim.set_faults(FaultConfig {
        api_5xx: 1.0,
        max_faults: 1,
        ..FaultConfig::none()
    });
    let (status, _) = get(&format!(
        "{}{API_PATH}?{}",
        sim.base_url(),
        signed("precreate", &now_ms(), &borrow(&params))
    ))
    .await;
    assert_eq!(status, 503);
    assert_eq!(sim.trade_no("F-1"), None);
    sim.set_faults(FaultConfig {
        api_system_error: 1.0,
        max_faults: 1,
        ..FaultConfig::none()
    });
    let v = call(&sim, "precreate", &params).await;
    assert_eq!(v["status"], 500, "{v}");
    assert_eq!(sim.trade_no("F-1"), None);
    // A hang that was carried out: the answer comes late, the order exists.
    sim.set_faults(FaultConfig {
        seed: 1,
        api_timeout: 1.0,
        hang: Duration::from_millis(50),
        max_faults: 1,
        ..FaultConfig::none()
    });
    let _ = get(&format!(
        "{}{API_PATH}?{}",
        sim.base_url(),
        signed("precreate", &now_ms(), &borrow(&params))
    ))
    .await;
    let c = sim.fault_counts();
    assert_eq!(c.timeouts_applied + c.timeouts_unapplied, 1);
    assert_eq!(sim.trade_no("F-1").is_some(), c.timeouts_applied == 1);
    // Faults spent: the next call is answered.
    assert_eq!(
        call(
            &sim,
            "precreate",
            &precreate_params("F-2", "1.00", "http://127.0.0.1:1/n")
        )
        .await["status"],
        200
    );
}
