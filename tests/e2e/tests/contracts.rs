//! Auto-debit contracts through the HTTP API (issue 15): payhost, its
//! store and workers, the wechat-v2 adapter in its sandbox, the strict
//! WeChat v2 papay simulator and a merchant receiver, on loopback.

use payhost_e2e::front::{Front, Options, WEBHOOK_SECRET, sim_config};
use payhost_simulators::wechat_v2::{PapayLimits, Simulator};
use reqwest::Method;
use serde_json::{Value, json};

const PLAN: &str = "12535";
const OPENID: &str = "o-papay-payer";

fn webhooks_of(f: &Front, prefix: &str) -> Vec<Value> {
    let secret = secrecy::SecretString::from(WEBHOOK_SECRET.to_string());
    f.receiver
        .accepted()
        .iter()
        .map(|d| {
            payhost::webhooks::verify(&secret, &d.headers, &d.body).expect("signed");
            serde_json::from_slice::<Value>(&d.body).unwrap()
        })
        .filter(|e| e["type"].as_str().unwrap().starts_with(prefix))
        .collect()
}

/// A front whose simulator's template allows `per_day` deductions of up
/// to `max_fen` each, with `contracts` as shop-1's `[merchants.contracts]`.
async fn front(name: &str, contracts: &str, per_day: u32, max_fen: u64, o: Options) -> Front {
    let mut config = sim_config();
    config.papay = PapayLimits {
        max_per_deduction: max_fen,
        max_amount_per_day: u64::MAX / 2,
        max_deductions_per_day: per_day,
        ..PapayLimits::default()
    };
    let options = Options {
        extra_toml: format!("\n[merchants.contracts]\n{contracts}\n"),
        ..o
    };
    Front::start_with_simulator(name, options, Simulator::start(config).await).await
}

async fn call(f: &Front, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    f.call_as(payhost_e2e::front::MERCHANT_KEY, method, path, body)
        .await
}

fn contract_body(no: &str) -> Value {
    json!({"contract_no": no, "plan_id": PLAN,
           "payer": {"app_id": payhost_e2e::front::APPID},
           "display_name": "Membership", "metadata": {"member": "42"}})
}

fn deduction_body(no: &str, amount: i64) -> Value {
    json!({"deduction_no": no, "amount": amount, "currency": "CNY",
           "description": "Membership, December", "client_ip": "203.0.113.7"})
}

/// Creates contract `no` and has the payer sign it with the `extraData`
/// payhost handed out; waits until payhost learned it is active.
async fn signed_contract(f: &Front, no: &str) -> Value {
    let (status, created) = call(f, Method::POST, "/v1/contracts", Some(contract_body(no))).await;
    assert_eq!(status, 201, "{created}");
    let extra: Vec<(String, String)> = created["signing"]["extra_data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    f.sim.sign_contract_from_extra_data(&extra, OPENID).unwrap();
    f.wait_for_as(
        payhost_e2e::front::MERCHANT_KEY,
        &format!("/v1/contracts/{no}"),
        "state",
        "active",
    )
    .await
}

/// The demo's walk, as a test: sign through WeChat's signing
/// mini-program, deduct twice (each settled by WeChat's verified
/// notification into a signed webhook), hit the contract's daily limit,
/// terminate, and be refused after.
#[tokio::test]
async fn a_contract_is_signed_charged_twice_limited_and_terminated() {
    let f = front(
        "contracts-walk",
        "per_contract_day_count = 2",
        10,
        5_000_000,
        Options::default(),
    )
    .await;
    let (status, created) = call(
        &f,
        Method::POST,
        "/v1/contracts",
        Some(contract_body("CWALK1")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "pending_signature");
    let signing = &created["signing"];
    assert_eq!(signing["type"], "mini_program_navigation");
    assert_eq!(signing["app_id"], "wxbd687630cd02ce1d");
    assert_eq!(signing["path"], "pages/index/index");
    assert_eq!(signing["extra_data"]["contract_code"], "CWALK1");
    assert_eq!(signing["extra_data"]["plan_id"], PLAN);
    assert!(
        signing["extra_data"]["notify_url"]
            .as_str()
            .unwrap()
            .ends_with("/v1/notify/wechat-v2/shop-1"),
        "{signing}"
    );
    // The same request again: the contract as it stands. Another plan
    // under the number: refused.
    let (status, again) = call(
        &f,
        Method::POST,
        "/v1/contracts",
        Some(contract_body("CWALK1")),
    )
    .await;
    assert_eq!((status, &again["signing"]), (200, signing));
    let mut other = contract_body("CWALK1");
    other["plan_id"] = "999".into();
    let (status, conflict) = call(&f, Method::POST, "/v1/contracts", Some(other)).await;
    assert_eq!(
        (status, conflict["code"].as_str()),
        (409, Some("contract_exists"))
    );
    // Not signed yet: nothing can be charged.
    let (status, early) = call(
        &f,
        Method::POST,
        "/v1/contracts/CWALK1/deductions",
        Some(deduction_body("DWALK0", 1500)),
    )
    .await;
    assert_eq!(status, 409, "{early}");
    assert_eq!(early["contract_state"], "pending_signature");

    // The payer signs in WeChat's mini-program; WeChat notifies.
    let extra: Vec<(String, String)> = signing["extra_data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let contract_id = f.sim.sign_contract_from_extra_data(&extra, OPENID).unwrap();
    let active = f
        .wait_for_as(
            payhost_e2e::front::MERCHANT_KEY,
            "/v1/contracts/CWALK1",
            "state",
            "active",
        )
        .await;
    assert_eq!(active["provider_contract_id"], contract_id);
    assert_eq!(active["payer"]["openid"], OPENID);
    assert!(active["signing"].is_null(), "{active}");
    f.eventually("contract.signed delivered", || {
        !webhooks_of(&f, "contract.signed").is_empty()
    })
    .await;

    // Two deductions, each accepted then charged by WeChat.
    for (no, fen) in [("DWALK1", 1500), ("DWALK2", 2500)] {
        let (status, d) = call(
            &f,
            Method::POST,
            "/v1/contracts/CWALK1/deductions",
            Some(deduction_body(no, fen)),
        )
        .await;
        assert_eq!(status, 201, "{d}");
        assert_eq!(d["state"], "pending");
        f.sim.settle_deduction(no, true).unwrap();
        let paid = f
            .wait_for_as(
                payhost_e2e::front::MERCHANT_KEY,
                &format!("/v1/contracts/CWALK1/deductions/{no}"),
                "state",
                "succeeded",
            )
            .await;
        assert_eq!(paid["amount"], fen);
        assert!(paid["provider_deduction_id"].is_string(), "{paid}");
    }
    f.eventually("two deduction.succeeded delivered", || {
        webhooks_of(&f, "deduction.succeeded").len() == 2
    })
    .await;
    let hook = &webhooks_of(&f, "deduction.succeeded")[0];
    assert_eq!(hook["data"]["deduction"]["contract_no"], "CWALK1");
    // The contract's daily count (2 here): the third is refused before
    // WeChat is asked.
    let applies = f.sim.papay_truth().deductions.len();
    let (status, third) = call(
        &f,
        Method::POST,
        "/v1/contracts/CWALK1/deductions",
        Some(deduction_body("DWALK3", 100)),
    )
    .await;
    assert_eq!(status, 422, "{third}");
    assert_eq!(third["code"], "deduction_limit_exceeded");
    assert_eq!(third["limit"], "per_contract_day_count");
    assert_eq!(
        (third["max"].clone(), third["counted"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(f.sim.papay_truth().deductions.len(), applies);

    // Terminate; again answers the same; a deduction after is refused.
    let (status, ended) = call(
        &f,
        Method::DELETE,
        "/v1/contracts/CWALK1",
        Some(json!({"reason": "membership cancelled"})),
    )
    .await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["state"], "terminated");
    assert_eq!(
        f.sim.papay_truth().contracts[&contract_id].contract_state,
        "1"
    );
    let (status, again) = call(&f, Method::DELETE, "/v1/contracts/CWALK1", None).await;
    assert_eq!((status, &again["state"]), (200, &json!("terminated")));
    let (status, after) = call(
        &f,
        Method::POST,
        "/v1/contracts/CWALK1/deductions",
        Some(deduction_body("DWALK4", 100)),
    )
    .await;
    assert_eq!(status, 409, "{after}");
    assert_eq!(after["contract_state"], "terminated");
    f.eventually("contract.terminated delivered", || {
        !webhooks_of(&f, "contract.terminated").is_empty()
    })
    .await;
}

/// Three failed deductions pause the contract (`contract.paused`) and a
/// fourth is refused; a failure's retry is refused until the interval
/// passed; resuming lets the contract be charged again.
#[tokio::test]
async fn three_failed_deductions_pause_the_contract_and_a_fourth_is_refused() {
    let f = front(
        "contracts-pause",
        "retry_interval_secs = 0",
        10,
        50_000,
        Options::default(),
    )
    .await;
    signed_contract(&f, "CPAUSE1").await;
    for i in 1..=3 {
        let no = format!("DFAIL{i}");
        let (status, d) = call(
            &f,
            Method::POST,
            "/v1/contracts/CPAUSE1/deductions",
            Some(deduction_body(&no, 1000)),
        )
        .await;
        assert_eq!(status, 201, "{d}");
        f.sim.settle_deduction(&no, false).unwrap();
        let failed = f
            .wait_for_as(
                payhost_e2e::front::MERCHANT_KEY,
                &format!("/v1/contracts/CPAUSE1/deductions/{no}"),
                "state",
                "failed",
            )
            .await;
        assert!(failed["failure_reason"].is_string(), "{failed}");
    }
    let paused = f
        .wait_for_as(
            payhost_e2e::front::MERCHANT_KEY,
            "/v1/contracts/CPAUSE1",
            "state",
            "paused",
        )
        .await;
    assert!(
        paused["pause_reason"].as_str().unwrap().contains('3'),
        "{paused}"
    );
    let (status, fourth) = call(
        &f,
        Method::POST,
        "/v1/contracts/CPAUSE1/deductions",
        Some(deduction_body("DFAIL4", 1000)),
    )
    .await;
    assert_eq!(status, 409, "{fourth}");
    assert_eq!(fourth["contract_state"], "paused");
    assert!(!f.sim.papay_truth().deductions.contains_key("DFAIL4"));
    f.eventually("contract.paused delivered", || {
        !webhooks_of(&f, "contract.paused").is_empty()
    })
    .await;
    assert_eq!(webhooks_of(&f, "deduction.failed").len(), 3);

    // Resumed: charged again.
    let (status, resumed) = call(&f, Method::POST, "/v1/contracts/CPAUSE1/resume", None).await;
    assert_eq!((status, &resumed["state"]), (200, &json!("active")));
    let (status, d) = call(
        &f,
        Method::POST,
        "/v1/contracts/CPAUSE1/deductions",
        Some(deduction_body("DOK1", 1000)),
    )
    .await;
    assert_eq!(status, 201, "{d}");
}

/// The merchant's limits at their boundary, before WeChat is asked, and
/// WeChat's own (lower) limit refused by WeChat, named and failed.
#[tokio::test]
async fn deduction_limits_hold_at_their_boundaries() {
    // The template allows 50,000.00 CNY: payhost's default decides.
    let f = front("contracts-limits", "", 10, 5_000_000, Options::default()).await;
    signed_contract(&f, "CLIM1").await;
    let (status, over) = call(
        &f,
        Method::POST,
        "/v1/contracts/CLIM1/deductions",
        Some(deduction_body("DLIM1", 5_000_001)),
    )
    .await;
    assert_eq!(status, 422, "{over}");
    assert_eq!(over["limit"], "per_deduction");
    assert_eq!(over["max"], 5_000_000);
    assert!(f.sim.papay_truth().deductions.is_empty());
    let (status, at) = call(
        &f,
        Method::POST,
        "/v1/contracts/CLIM1/deductions",
        Some(deduction_body("DLIM2", 5_000_000)),
    )
    .await;
    assert_eq!(status, 201, "{at}");
    // A failure: the next deduction waits 6 hours (the default).
    f.sim.settle_deduction("DLIM2", false).unwrap();
    f.wait_for_as(
        payhost_e2e::front::MERCHANT_KEY,
        "/v1/contracts/CLIM1/deductions/DLIM2",
        "state",
        "failed",
    )
    .await;
    let (status, soon) = call(
        &f,
        Method::POST,
        "/v1/contracts/CLIM1/deductions",
        Some(deduction_body("DLIM3", 100)),
    )
    .await;
    assert_eq!(status, 422, "{soon}");
    assert_eq!(soon["limit"], "retry_interval");
    assert!(soon["retry_after"].is_string(), "{soon}");

    // WeChat's template limit (500.00 CNY here), lower than payhost's:
    // WeChat refuses, the answer names its code, the deduction failed.
    let g = front(
        "contracts-wechat-limit",
        "retry_interval_secs = 0",
        10,
        50_000,
        Options::default(),
    )
    .await;
    signed_contract(&g, "CLIM2").await;
    let (status, refused) = call(
        &g,
        Method::POST,
        "/v1/contracts/CLIM2/deductions",
        Some(deduction_body("DLIM4", 50_001)),
    )
    .await;
    assert!(status >= 400, "{refused}");
    assert!(refused.to_string().contains("RULELIMIT"), "{refused}");
    let (_, failed) = call(
        &g,
        Method::GET,
        "/v1/contracts/CLIM2/deductions/DLIM4",
        None,
    )
    .await;
    assert_eq!(failed["state"], "failed", "{failed}");

    // Bad input of any kind: a clear 400, nothing stored.
    for bad in [
        json!({"deduction_no": "D 1", "amount": 1, "currency": "CNY", "description": "d"}),
        json!({"deduction_no": "D1", "amount": 1.5, "currency": "CNY", "description": "d"}),
        json!({"deduction_no": "D1", "amount": 0, "currency": "CNY", "description": "d"}),
        json!({"deduction_no": "D1", "amount": 1, "currency": "USD", "description": "d"}),
        json!({"deduction_no": "D1", "amount": 1, "currency": "CNY", "description": " "}),
        json!({"deduction_no": "D1", "amount": 1, "currency": "CNY", "description": "d", "client_ip": "x"}),
        json!({"deduction_no": "D1", "amount": 1, "currency": "CNY", "description": "d", "extra": 1}),
    ] {
        let (status, e) = call(
            &g,
            Method::POST,
            "/v1/contracts/CLIM2/deductions",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, 400, "{bad} -> {e}");
    }
    let (status, _) = call(&g, Method::GET, "/v1/contracts/CLIM2/deductions/D1", None).await;
    assert_eq!(status, 404);
    // Refused by the adapter before anything was sent (WeChat v2 needs
    // the IP): nothing stored, nothing counted, the number free again.
    let mut no_ip = deduction_body("DNOIP1", 100);
    no_ip.as_object_mut().unwrap().remove("client_ip");
    let (status, e) = call(
        &g,
        Method::POST,
        "/v1/contracts/CLIM2/deductions",
        Some(no_ip),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    let (status, _) = call(
        &g,
        Method::GET,
        "/v1/contracts/CLIM2/deductions/DNOIP1",
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert!(!g.sim.papay_truth().deductions.contains_key("DNOIP1"));
    let (status, _) = call(
        &g,
        Method::POST,
        "/v1/contracts/NOSUCH/deductions",
        Some(deduction_body("DX", 1)),
    )
    .await;
    assert_eq!(status, 404);
}

/// A tampered contract or deduction notification changes nothing and is
/// refused, so WeChat keeps it; what WeChat really says is learned by
/// query (`?refresh=true` here; the reconciler does the same).
#[tokio::test]
async fn forged_notifications_change_nothing_and_the_truth_is_queried() {
    let mut config = sim_config();
    config.tamper_notifications = true;
    config.papay.max_deductions_per_day = 10;
    let f = Front::start_with_simulator(
        "contracts-forged",
        Options::default(),
        Simulator::start(config).await,
    )
    .await;
    let (status, created) = call(
        &f,
        Method::POST,
        "/v1/contracts",
        Some(contract_body("CFORGE1")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let notify_url = created["signing"]["extra_data"]["notify_url"]
        .as_str()
        .unwrap()
        .to_owned();
    f.sim
        .sign_contract("CFORGE1", PLAN, OPENID, &notify_url)
        .unwrap();
    f.eventually("the tampered notification was posted and refused", || {
        let s = f.sim.outbox_stats();
        s.posts >= 1 && s.acknowledged == 0
    })
    .await;
    let (_, still) = call(&f, Method::GET, "/v1/contracts/CFORGE1", None).await;
    assert_eq!(still["state"], "pending_signature", "{still}");
    let (status, active) = call(&f, Method::GET, "/v1/contracts/CFORGE1?refresh=true", None).await;
    assert_eq!(status, 200, "{active}");
    assert_eq!(active["state"], "active");
    assert_eq!(active["payer"]["openid"], OPENID);

    let (status, d) = call(
        &f,
        Method::POST,
        "/v1/contracts/CFORGE1/deductions",
        Some(deduction_body("DFORGE1", 1200)),
    )
    .await;
    assert_eq!(status, 201, "{d}");
    let posts = f.sim.outbox_stats().posts;
    f.sim.settle_deduction("DFORGE1", true).unwrap();
    f.eventually("the tampered charge notification was posted", || {
        f.sim.outbox_stats().posts > posts
    })
    .await;
    let (_, pending) = call(
        &f,
        Method::GET,
        "/v1/contracts/CFORGE1/deductions/DFORGE1",
        None,
    )
    .await;
    assert_eq!(pending["state"], "pending", "{pending}");
    let (status, paid) = call(
        &f,
        Method::GET,
        "/v1/contracts/CFORGE1/deductions/DFORGE1?refresh=true",
        None,
    )
    .await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["state"], "succeeded");
    assert_eq!(paid["amount"], 1200);
    assert_eq!(f.sim.outbox_stats().acknowledged, 0);
}

/// A signature whose notification is lost is learned by the reconciler's
/// `querycontract`, and a charge's by `paporderquery`.
#[tokio::test]
async fn lost_notifications_are_settled_by_the_reconciler() {
    let mut config = sim_config();
    config.papay.max_deductions_per_day = 10;
    let f = Front::start_with_simulator(
        "contracts-lost",
        Options::fast_reconciler(),
        Simulator::start(config).await,
    )
    .await;
    let (status, _) = call(
        &f,
        Method::POST,
        "/v1/contracts",
        Some(contract_body("CLOST1")),
    )
    .await;
    assert_eq!(status, 201);
    // The notification goes nowhere (a closed port).
    f.sim
        .sign_contract("CLOST1", PLAN, OPENID, "http://127.0.0.1:9/notify")
        .unwrap();
    f.wait_for_as(
        payhost_e2e::front::MERCHANT_KEY,
        "/v1/contracts/CLOST1",
        "state",
        "active",
    )
    .await;
    f.eventually("contract.signed delivered", || {
        !webhooks_of(&f, "contract.signed").is_empty()
    })
    .await;
    // Every notification from here on is lost.
    f.sim.set_faults(payhost_simulators::faults::FaultConfig {
        notify_drop: 1.0,
        max_faults: 10_000,
        ..payhost_simulators::faults::FaultConfig::none()
    });
    let (status, d) = call(
        &f,
        Method::POST,
        "/v1/contracts/CLOST1/deductions",
        Some(deduction_body("DLOST1", 700)),
    )
    .await;
    assert_eq!(status, 201, "{d}");
    f.sim.settle_deduction("DLOST1", true).unwrap();
    let paid = f
        .wait_for_as(
            payhost_e2e::front::MERCHANT_KEY,
            "/v1/contracts/CLOST1/deductions/DLOST1",
            "state",
            "succeeded",
        )
        .await;
    assert_eq!(paid["amount"], 700);
    assert_eq!(f.sim.outbox_stats().acknowledged, 0);
}

/// Concurrent retries of one deduction, with and without one
/// Idempotency-Key: one deduction at WeChat, one 201, the same answer.
#[tokio::test]
async fn concurrent_retries_of_a_deduction_charge_once() {
    let f = front("contracts-retries", "", 10, 50_000, Options::default()).await;
    signed_contract(&f, "CRETRY1").await;
    let answers = f
        .post_concurrently(
            payhost_e2e::front::MERCHANT_KEY,
            "/v1/contracts/CRETRY1/deductions",
            &deduction_body("DRETRY1", 900),
            "retry-key-1",
            8,
        )
        .await;
    for body in answers {
        assert_eq!(body["deduction_no"], "DRETRY1");
        assert_eq!(body["amount"], 900);
    }
    let truth = f.sim.papay_truth();
    assert_eq!(truth.deductions.len(), 1);
    assert_eq!(truth.deductions["DRETRY1"].total_fee, 900);
}

/// A correctly signed notification about a contract payhost does not have
/// is refused (422), so WeChat keeps it and sends it again; nothing is
/// created from it.
#[tokio::test]
async fn a_verified_notification_about_an_unknown_contract_is_refused() {
    let f = front("contracts-unknown", "", 10, 50_000, Options::default()).await;
    let notify_url = f.url("/v1/notify/wechat-v2/shop-1");
    f.sim
        .sign_contract("CNOBODY1", PLAN, OPENID, &notify_url)
        .unwrap();
    f.eventually("the notification was posted and refused", || {
        let s = f.sim.outbox_stats();
        s.posts >= 1 && s.acknowledged == 0
    })
    .await;
    let (status, _) = call(&f, Method::GET, "/v1/contracts/CNOBODY1", None).await;
    assert_eq!(status, 404);
    assert!(webhooks_of(&f, "contract.").is_empty());
}

/// Outside the configured call window (WeChat's 07:00-22:00) a deduction
/// is refused before anything is stored or sent, naming when it opens.
#[tokio::test]
async fn a_deduction_outside_the_call_window_waits_for_it() {
    // A window that certainly excludes now, in the merchant's Beijing day.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let beijing_hour = (secs / 3600 + 8) % 24;
    let window = if beijing_hour < 12 {
        "23:00-23:59"
    } else {
        "00:00-01:00"
    };
    let f = front(
        "contracts-window",
        &format!("call_window = \"{window}\""),
        10,
        50_000,
        Options::default(),
    )
    .await;
    signed_contract(&f, "CWIN1").await;
    let (status, refused) = call(
        &f,
        Method::POST,
        "/v1/contracts/CWIN1/deductions",
        Some(deduction_body("DWIN1", 100)),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["limit"], "call_window");
    assert!(refused["retry_after"].is_string(), "{refused}");
    let (status, _) = call(
        &f,
        Method::GET,
        "/v1/contracts/CWIN1/deductions/DWIN1",
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert!(f.sim.papay_truth().deductions.is_empty());
}

/// WeChat charged a deduction whose answer payhost never got: the retry
/// under the same number is refused by WeChat as already paid, and payhost
/// asks WeChat's record instead of failing it: succeeded, charged once.
/// And a contract the payer already ended (its notification lost) is
/// terminated by the merchant's DELETE on WeChat's word.
#[tokio::test]
async fn a_lost_answer_is_settled_by_wechats_record_not_by_its_refusal() {
    use payhost_simulators::faults::FaultConfig;
    let f = front(
        "contracts-lost-answer",
        "",
        10,
        50_000,
        Options {
            egress_timeout_ms: 300,
            ..Options::default()
        },
    )
    .await;
    let contract_id = signed_contract(&f, "CANSWER1").await["provider_contract_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The call hangs past payhost's time-out; some seeds carry it out.
    let mut carried = None;
    for seed in 0..32 {
        let no = format!("DANSWER{seed}");
        f.sim.set_faults(FaultConfig {
            seed,
            api_timeout: 1.0,
            hang: std::time::Duration::from_millis(600),
            max_faults: 1,
            ..FaultConfig::none()
        });
        let (status, _) = call(
            &f,
            Method::POST,
            "/v1/contracts/CANSWER1/deductions",
            Some(deduction_body(&no, 300)),
        )
        .await;
        assert!(status >= 500, "{status}");
        if f.sim.papay_truth().deductions.contains_key(&no) {
            carried = Some(no);
            break;
        }
    }
    let no = carried.expect("one of 32 seeds carries the hung call out");
    let (_, stored) = call(
        &f,
        Method::GET,
        &format!("/v1/contracts/CANSWER1/deductions/{no}"),
        None,
    )
    .await;
    assert_eq!(stored["state"], "created", "{stored}");
    // WeChat charges it; its notification is lost.
    f.sim.set_faults(FaultConfig {
        notify_drop: 1.0,
        max_faults: 10_000,
        ..FaultConfig::none()
    });
    f.sim.settle_deduction(&no, true).unwrap();
    let (status, retried) = call(
        &f,
        Method::POST,
        "/v1/contracts/CANSWER1/deductions",
        Some(deduction_body(&no, 300)),
    )
    .await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["state"], "succeeded");
    assert_eq!(retried["amount"], 300);
    assert_eq!(f.sim.papay_truth().deductions[&no].trade_state, "SUCCESS");

    // The payer ends the contract in WeChat; the notification is lost.
    f.sim.terminate_contract_by_payer(&contract_id).unwrap();
    let (_, still) = call(&f, Method::GET, "/v1/contracts/CANSWER1", None).await;
    assert_eq!(still["state"], "active");
    let (status, ended) = call(&f, Method::DELETE, "/v1/contracts/CANSWER1", None).await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["state"], "terminated");
}
