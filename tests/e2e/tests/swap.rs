//! Hot swap end to end: adapter versions uploaded through the admin API and
//! dropped into the adapters directory while payments flow; refusals,
//! rollback and pinning.

use payhost_e2e::front::{ExtraMerchant, Front, Options};
use payhost_e2e::{component, components_dir, temp_dir};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "adm_test_7d1f0c5e9b";
const SHOP2_KEY: &str = "pk_test_shop2_pinned";
const LIMITS: &str = "create_per_min = 60000\nquery_per_min = 60000\nrefund_per_min = 60000";

fn digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A private adapters directory holding the wechat-v2 build, so a test
/// may upload and overwrite without touching the shared build output.
fn adapters_dir(name: &str) -> std::path::PathBuf {
    let dir = temp_dir(&format!("{name}-adapters"));
    std::fs::copy(
        components_dir().join("wechat-v2.wasm"),
        dir.join("wechat-v2.wasm"),
    )
    .unwrap();
    dir
}

fn options(name: &str) -> Options {
    Options {
        admin_token: Some(ADMIN_TOKEN.into()),
        adapters_dir: Some(adapters_dir(name)),
        limits: LIMITS.into(),
        ..Default::default()
    }
}

async fn put(f: &Front, name: &str, bytes: &[u8]) -> (StatusCode, Value) {
    let r = f
        .as_admin(Method::PUT, &format!("/admin/adapters/{name}"))
        .header("content-type", "application/wasm")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn rollback(f: &Front, to: Option<&str>) -> (StatusCode, Value) {
    let mut req = f.as_admin(Method::POST, "/admin/adapters/wechat-v2/rollback");
    if let Some(d) = to {
        req = req.json(&json!({ "digest": d }));
    }
    let r = req.send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn active(f: &Front) -> String {
    let r = f
        .as_admin(Method::GET, "/admin/adapters")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let list: Value = r.json().await.unwrap();
    list["adapters"][0]["digest"].as_str().unwrap().to_string()
}

/// One answered request of the load: when it ran and which version served it.
#[derive(Debug, Clone)]
struct Served {
    start: Instant,
    end: Instant,
    merchant: &'static str,
    digest: String,
}

/// A change of the active version: it happened somewhere in [start, end].
#[derive(Debug, Clone)]
struct Change {
    start: Instant,
    end: Instant,
    digest: String,
}

/// Creates and queries (through the provider) payments until `stop`.
async fn client(
    base: String,
    key: &'static str,
    merchant: &'static str,
    tag: String,
    stop: Arc<AtomicBool>,
) -> (Vec<Served>, Vec<String>) {
    let http = reqwest::Client::new();
    let (mut served, mut failures) = (Vec::new(), Vec::new());
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let no = format!("{tag}{n:05}");
        let start = Instant::now();
        let r = http
            .post(format!("{base}/v1/payments"))
            .bearer_auth(key)
            .json(&payhost_e2e::front::order_body(&no, 100 + n))
            .send()
            .await;
        let end = Instant::now();
        match r {
            Ok(r) if r.status() == StatusCode::CREATED => {
                let p: Value = r.json().await.unwrap();
                served.push(Served {
                    start,
                    end,
                    merchant,
                    digest: p["adapter_digest"].as_str().unwrap().to_string(),
                });
            }
            Ok(r) => failures.push(format!(
                "create {no}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            )),
            Err(e) => failures.push(format!("create {no}: {e}")),
        }
        let start = Instant::now();
        let r = http
            .get(format!("{base}/v1/payments/{no}?refresh=true"))
            .bearer_auth(key)
            .send()
            .await;
        let end = Instant::now();
        match r {
            Ok(r) if r.status() == StatusCode::OK => {
                let d = r.headers()["payhost-adapter-digest"]
                    .to_str()
                    .unwrap()
                    .to_string();
                let p: Value = r.json().await.unwrap();
                assert_eq!(p["state"], "pending", "{p}");
                served.push(Served {
                    start,
                    end,
                    merchant,
                    digest: d,
                });
            }
            Ok(r) => failures.push(format!(
                "query {no}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            )),
            Err(e) => failures.push(format!("query {no}: {e}")),
        }
    }
    (served, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_swaps_and_five_rollbacks_under_load_fail_no_request() {
    let v1 = component("wechat-v2");
    let v2 = component("wechat-v2-next");
    let (d1, d2) = (digest(&v1), digest(&v2));
    assert_ne!(d1, d2);
    let mut opts = options("swap-load");
    opts.extra_merchants.push(ExtraMerchant {
        id: "shop-2".into(),
        api_key: SHOP2_KEY.into(),
        pin: Some(format!("sha256:{d1}")),
    });
    let f = Front::start("swap-load", opts).await;
    assert_eq!(active(&f).await, d1);

    let mut timeline = vec![Change {
        start: Instant::now(),
        end: Instant::now(),
        digest: d1.clone(),
    }];
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(tokio::spawn(client(
            f.base.clone(),
            payhost_e2e::front::MERCHANT_KEY,
            "shop-1",
            format!("SWAP{i}"),
            stop.clone(),
        )));
    }
    clients.push(tokio::spawn(client(
        f.base.clone(),
        SHOP2_KEY,
        "shop-2",
        "PIN".into(),
        stop.clone(),
    )));

    // Each swap uploads the build that is not active; after every fourth
    // one, a rollback goes back to the version before it.
    let mut rollbacks = 0;
    let mut current = d1.clone();
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let (bytes, want) = if current == d1 {
            (&v2, &d2)
        } else {
            (&v1, &d1)
        };
        let start = Instant::now();
        let (status, body) = put(&f, "wechat-v2", bytes).await;
        let end = Instant::now();
        assert_eq!(status, StatusCode::CREATED, "swap {i}: {body}");
        assert_eq!(
            (body["digest"].as_str(), body["previous_digest"].as_str()),
            (Some(want.as_str()), Some(current.as_str())),
            "swap {i}: {body}"
        );
        timeline.push(Change {
            start,
            end,
            digest: want.clone(),
        });
        let before = std::mem::replace(&mut current, want.clone());
        if i % 4 == 3 {
            tokio::time::sleep(Duration::from_millis(40)).await;
            let start = Instant::now();
            let (status, body) = rollback(&f, None).await;
            let end = Instant::now();
            assert_eq!(status, StatusCode::OK, "rollback after swap {i}: {body}");
            assert_eq!(
                (body["digest"].as_str(), body["previous_digest"].as_str()),
                (Some(before.as_str()), Some(current.as_str())),
                "rollback after swap {i}: {body}"
            );
            rollbacks += 1;
            timeline.push(Change {
                start,
                end,
                digest: before.clone(),
            });
            current = before;
        }
    }
    assert_eq!(rollbacks, 5);
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let mut served = Vec::new();
    let mut failures = Vec::new();
    for c in clients {
        let (s, f) = c.await.unwrap();
        served.extend(s);
        failures.extend(f);
    }
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );

    // Each answer came from a version active at some moment of its request:
    // version k was (possibly) active from the start of its change to the
    // end of the next one.
    let active_during = |s: &Served| {
        timeline.iter().enumerate().any(|(k, c)| {
            let until = timeline.get(k + 1).map(|n| n.end);
            c.digest == s.digest && c.start <= s.end && until.is_none_or(|u| s.start <= u)
        })
    };
    let shop1: Vec<&Served> = served.iter().filter(|s| s.merchant == "shop-1").collect();
    let bad: Vec<_> = shop1.iter().filter(|s| !active_during(s)).collect();
    assert!(
        bad.is_empty(),
        "served by a version not active then: {bad:#?}"
    );
    let by = |d: &str| shop1.iter().filter(|s| s.digest == d).count();
    assert!(by(&d1) > 0 && by(&d2) > 0, "{} / {}", by(&d1), by(&d2));
    // The pinned merchant never left its version.
    let pinned: Vec<_> = served.iter().filter(|s| s.merchant == "shop-2").collect();
    assert!(!pinned.is_empty());
    assert!(pinned.iter().all(|s| s.digest == d1), "{pinned:#?}");
    eprintln!(
        "{} requests answered during {} swaps and {rollbacks} rollbacks ({} by {}, {} by {}, {} pinned)",
        served.len(),
        timeline.len() - 1 - rollbacks,
        by(&d1),
        &d1[..12],
        by(&d2),
        &d2[..12],
        pinned.len()
    );

    // The listing shows who is pinned where, and the kept versions.
    let list: Value = f
        .as_admin(Method::GET, "/admin/adapters")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a = &list["adapters"][0];
    assert_eq!(a["name"], "wechat-v2");
    assert_eq!(
        a["pins"],
        json!([{ "merchant": "shop-2", "digest": d1, "loaded": true }])
    );
    assert_eq!(a["versions_kept"], 2, "{a}");
    // Audited in /metrics.
    let metrics = f.metrics().await;
    assert!(
        metrics.contains(
            r#"payhost_adapter_registry_events_total{action="rollback",outcome="swapped"} 5"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn refused_uploads_change_nothing_and_say_why() {
    let v1 = component("wechat-v2");
    let v2 = component("wechat-v2-next");
    let (d1, d2) = (digest(&v1), digest(&v2));
    let missing = "ab".repeat(32);
    let mut opts = options("swap-refuse");
    opts.extra_merchants.push(ExtraMerchant {
        id: "shop-3".into(),
        api_key: "pk_test_shop3_lost".into(),
        pin: Some(missing.clone()),
    });
    let f = Front::start("swap-refuse", opts).await;

    // Credentials: the admin token only.
    let r = f.client.get(f.url("/admin/adapters")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = f
        .as_merchant(Method::GET, "/admin/adapters")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = f
        .client
        .put(f.url("/admin/adapters/wechat-v2"))
        .bearer_auth("not-the-token")
        .body(v2.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let truncated = &v2[..v2.len() / 2];
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str, &str)> = vec![
        (
            "garbage",
            b"\0asm not really".to_vec(),
            StatusCode::BAD_REQUEST,
            "not_a_component",
            "not a loadable component",
        ),
        (
            "truncated",
            truncated.to_vec(),
            StatusCode::BAD_REQUEST,
            "not_a_component",
            "not a loadable component",
        ),
        (
            "foreign import",
            component("foreign-import"),
            StatusCode::BAD_REQUEST,
            "foreign_import",
            "imports",
        ),
        (
            "wrong name",
            component("rsa-sign"),
            StatusCode::BAD_REQUEST,
            "wrong_name",
            "`rsa-sign`",
        ),
        (
            "schema",
            component("wechat-v2-strict"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "incompatible_schema",
            "merchant_serial_no",
        ),
    ];
    for (i, (what, bytes, status, code, says)) in cases.into_iter().enumerate() {
        let (s, body) = put(&f, "wechat-v2", &bytes).await;
        assert_eq!(s, status, "{what}: {body}");
        assert_eq!(body["code"], code, "{what}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{what}: {detail}");
        assert_eq!(active(&f).await, d1, "{what} changed the active version");
        let p: Value = f
            .create(&format!("REFUSED-{i}"), 100)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(p["adapter_digest"], d1.as_str(), "{what}: {p}");
    }
    // The schema refusal names the merchant and the field.
    let (_, body) = put(&f, "wechat-v2", &component("wechat-v2-strict")).await;
    assert_eq!(
        (body["merchant"].as_str(), body["field"].as_str()),
        (Some("shop-1"), Some("merchant_serial_no")),
        "{body}"
    );
    // Nothing was written over the directory's file either.
    let file = f
        .options
        .adapters_dir
        .clone()
        .unwrap()
        .join("wechat-v2.wasm");
    assert_eq!(std::fs::read(&file).unwrap(), v1);

    // Rollback needs something to roll back to.
    let (s, body) = rollback(&f, None).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("nothing_to_roll_back")),
        "{body}"
    );
    let (s, body) = rollback(&f, Some(&missing)).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_version")),
        "{body}"
    );

    // A good upload swaps, is written to the directory, and repeating it changes nothing.
    let (s, body) = put(&f, "wechat-v2", &v2).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["digest"].as_str(), body["previous_digest"].as_str()),
        (Some(d2.as_str()), Some(d1.as_str()))
    );
    assert_eq!(body["version"], "0.2.0-next");
    assert_eq!(std::fs::read(&file).unwrap(), v2);
    let (s, body) = put(&f, "wechat-v2", &v2).await;
    assert_eq!(
        (s, body["unchanged"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{body}"
    );
    let versions: Value = f
        .as_admin(Method::GET, "/admin/adapters/wechat-v2/versions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<(&str, bool)> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["digest"].as_str().unwrap(),
                v["active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [(d2.as_str(), true), (d1.as_str(), false)]);

    // Rollback restores the previous digest, for new payments and on disk.
    let (s, body) = rollback(&f, Some(&format!("sha256:{d1}"))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        (body["digest"].as_str(), body["previous_digest"].as_str()),
        (Some(d1.as_str()), Some(d2.as_str()))
    );
    assert_eq!(active(&f).await, d1);
    let p: Value = f.create("ROLLED-1", 100).await.json().await.unwrap();
    assert_eq!(p["adapter_digest"], d1.as_str());
    assert_eq!(std::fs::read(&file).unwrap(), v1);

    // A merchant pinned to a version that is not loaded fails clearly.
    let r = f
        .client
        .post(f.url("/v1/payments"))
        .bearer_auth("pk_test_shop3_lost")
        .json(&payhost_e2e::front::order_body("LOST-1", 100))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "adapter_unavailable");
    assert!(
        body["detail"].as_str().unwrap().contains(&missing),
        "{body}"
    );

    // Audit: refusals are counted.
    let metrics = f.metrics().await;
    assert!(
        metrics.contains(
            r#"payhost_adapter_registry_events_total{action="install",outcome="refused"} 6"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_an_admin_token_the_admin_api_is_disabled() {
    let f = Front::start("swap-noadmin", Options::default()).await;
    let r = f
        .as_merchant(Method::GET, "/admin/adapters")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "admin_disabled");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("server.admin_token")
    );
}

#[tokio::test]
async fn the_adapters_directory_is_watched() {
    let v1 = component("wechat-v2");
    let v2 = component("wechat-v2-next");
    let (d1, d2) = (digest(&v1), digest(&v2));
    let mut opts = options("swap-watch");
    opts.watch = true;
    let dir = opts.adapters_dir.clone().unwrap();
    let file = dir.join("wechat-v2.wasm");
    let f = Front::start("swap-watch", opts).await;
    assert_eq!(active(&f).await, d1);

    async fn until(f: &Front, digest: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while active(f).await != digest {
            assert!(Instant::now() < deadline, "{digest} never became active");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Copy then rename over the old file: swapped without a restart.
    let tmp = dir.join("wechat-v2.wasm.tmp");
    std::fs::write(&tmp, &v2).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    until(&f, &d2).await;
    let p: Value = f.create("WATCH-1", 100).await.json().await.unwrap();
    assert_eq!(p["adapter_digest"], d2.as_str());

    // A truncated file is refused and changes nothing.
    std::fs::write(&file, &v1[..v1.len() / 3]).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(active(&f).await, d2);
    let p: Value = f.create("WATCH-2", 100).await.json().await.unwrap();
    assert_eq!(p["adapter_digest"], d2.as_str());

    // Finishing the file (a direct overwrite) is picked up.
    std::fs::write(&file, &v1).unwrap();
    until(&f, &d1).await;
    let versions: Value = f
        .as_admin(Method::GET, "/admin/adapters/wechat-v2/versions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        versions["versions"][0]["source"]
            .as_str()
            .unwrap()
            .starts_with("directory:"),
        "{versions}"
    );
}

#[test]
fn versions_no_longer_kept_release_their_compiled_code() {
    let runtime = Arc::new(payhost::Runtime::new(payhost_e2e::test_config()).unwrap());
    let metrics = Arc::new(payhost::metrics::Metrics::new());
    // Keep no previous version: every swap drops the one it replaces.
    let registry = payhost::registry::Registry::new(runtime.clone(), metrics, 0);
    let (v1, v2) = (component("wechat-v2"), component("wechat-v2-next"));
    registry
        .install("wechat-v2", &v1, payhost::registry::Source::Admin)
        .unwrap();
    registry
        .install("wechat-v2", &v2, payhost::registry::Source::Admin)
        .unwrap();
    assert_eq!(registry.get("wechat-v2").unwrap().digest, digest(&v2));
    assert_eq!(
        runtime.cached_components(),
        1,
        "the replaced version's code is still held"
    );
    // It can come back; then it is compiled (or read from disk) again.
    registry
        .install("wechat-v2", &v1, payhost::registry::Source::Admin)
        .unwrap();
    assert_eq!(runtime.cached_components(), 1);
}

const WECHAT_EGRESS: &str = r#"
[adapters.wechat-v2]
egress = ["api.mch.weixin.qq.com:443", "api2.mch.weixin.qq.com:443", "apihk.mch.weixin.qq.com:443"]
"#;

async fn create_as(f: &Front, key: &str, no: &str) -> (StatusCode, Value) {
    let r = f
        .client
        .post(f.url("/v1/payments"))
        .bearer_auth(key)
        .json(&payhost_e2e::front::order_body(no, 100))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

/// The files `<dir>/refused/` holds: (component, reason) pairs.
fn refused_files(dir: &std::path::Path) -> Vec<(Vec<u8>, String)> {
    let Ok(entries) = std::fs::read_dir(dir.join("refused")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "wasm") {
            let mut reason = p.clone().into_os_string();
            reason.push(".reason");
            out.push((
                std::fs::read(&p).unwrap(),
                std::fs::read_to_string(reason).unwrap_or_default(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn a_swap_that_adds_an_egress_host_outside_the_operators_list_is_refused() {
    let v1 = component("wechat-v2");
    let d1 = digest(&v1);
    let mut opts = options("swap-egress");
    opts.extra_toml = WECHAT_EGRESS.into();
    let f = Front::start("swap-egress", opts).await;

    // The listing shows what the active version may reach.
    let list: Value = f
        .as_admin(Method::GET, "/admin/adapters")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["adapters"][0]["egress_hosts"],
        json!([
            "api.mch.weixin.qq.com:443",
            "api2.mch.weixin.qq.com:443",
            "apihk.mch.weixin.qq.com:443"
        ]),
        "{list}"
    );

    // Same schema, one more host: refused, naming it; nothing changes.
    let (s, body) = put(&f, "wechat-v2", &component("wechat-v2-exfil")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "egress_host_not_allowed", "{body}");
    assert_eq!(body["host"], "collect.example.net", "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("collect.example.net") && detail.contains("[adapters.wechat-v2] egress"),
        "{detail}"
    );
    assert_eq!(active(&f).await, d1);
    let file = f
        .options
        .adapters_dir
        .clone()
        .unwrap()
        .join("wechat-v2.wasm");
    assert_eq!(std::fs::read(&file).unwrap(), v1);
    let p: Value = f.create("EGRESS-1", 100).await.json().await.unwrap();
    assert_eq!(p["adapter_digest"], d1.as_str(), "{p}");

    // A version within the list is accepted.
    let (s, body) = put(&f, "wechat-v2", &component("wechat-v2-next")).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_version_that_makes_a_secret_plain_text_is_refused_on_every_way_in() {
    let v1 = component("wechat-v2");
    let plain = component("wechat-v2-plainkey");
    let d1 = digest(&v1);
    // The slot's only merchant is pinned: no merchant follows the active
    // version, and still no version may take its secret as text.
    let mut opts = options("swap-secret");
    opts.pin = Some(format!("sha256:{d1}"));
    opts.watch = true;
    let dir = opts.adapters_dir.clone().unwrap();
    let file = dir.join("wechat-v2.wasm");
    let f = Front::start("swap-secret", opts).await;

    // Upload.
    let (s, body) = put(&f, "wechat-v2", &plain).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "secret_field_not_secret", "{body}");
    assert_eq!(
        (body["merchant"].as_str(), body["field"].as_str()),
        (Some("shop-1"), Some("api_key")),
        "{body}"
    );
    assert_eq!(active(&f).await, d1);
    assert_eq!(std::fs::read(&file).unwrap(), v1, "nothing was persisted");

    // The watched directory: refused, moved aside with its reason, and the
    // active version written back in its place.
    let tmp = dir.join("wechat-v2.wasm.tmp");
    std::fs::write(&tmp, &plain).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while refused_files(&dir).is_empty() || std::fs::read(&file).ok().as_deref() != Some(&v1[..]) {
        assert!(
            Instant::now() < deadline,
            "the refused file was not moved aside"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused_files(&dir);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, plain);
    assert!(
        refused[0].1.contains("secret_field_not_secret") && refused[0].1.contains("api_key"),
        "{}",
        refused[0].1
    );
    assert_eq!(active(&f).await, d1);

    // A restart starts, on the version that was active.
    let f = f.restart().await;
    assert_eq!(active(&f).await, d1);
    let p: Value = f.create("SECRET-1", 100).await.json().await.unwrap();
    assert_eq!(p["adapter_digest"], d1.as_str(), "{p}");

    // The same file written while payhost is down is refused at start,
    // moved aside too, and the start still succeeds.
    let f = f
        .restart_after(|_| std::fs::write(&file, &plain).unwrap())
        .await;
    assert_eq!(active(&f).await, d1);
    assert_eq!(std::fs::read(&file).unwrap(), v1);
    assert_eq!(refused_files(&dir).len(), 2);
    let p: Value = f.create("SECRET-2", 100).await.json().await.unwrap();
    assert_eq!(p["adapter_digest"], d1.as_str(), "{p}");
}

#[tokio::test]
async fn rollback_history_and_pins_survive_a_restart() {
    let v1 = component("wechat-v2");
    let v2 = component("wechat-v2-next");
    let (d1, d2) = (digest(&v1), digest(&v2));
    let mut opts = options("swap-history");
    opts.extra_merchants.push(ExtraMerchant {
        id: "shop-2".into(),
        api_key: SHOP2_KEY.into(),
        pin: Some(format!("sha256:{d1}")),
    });
    let dir = opts.adapters_dir.clone().unwrap();
    let f = Front::start("swap-history", opts).await;
    let (s, body) = put(&f, "wechat-v2", &v2).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");

    // After a restart the directory holds only v2 as the active file, yet
    // the kept version is back: the pinned merchant is served by it...
    let f = f.restart().await;
    assert_eq!(active(&f).await, d2);
    assert!(
        dir.join("versions/wechat-v2")
            .join(format!("{d1}.wasm"))
            .is_file(),
        "kept versions are on disk by digest"
    );
    let (s, p) = create_as(&f, SHOP2_KEY, "PINNED-1").await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(p["adapter_digest"], d1.as_str(), "{p}");
    let p: Value = f.create("FOLLOW-1", 100).await.json().await.unwrap();
    assert_eq!(p["adapter_digest"], d2.as_str(), "{p}");
    let versions: Value = f
        .as_admin(Method::GET, "/admin/adapters/wechat-v2/versions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [d2.as_str(), d1.as_str()], "{versions}");

    // ...and rollback works.
    let (s, body) = rollback(&f, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        (body["digest"].as_str(), body["previous_digest"].as_str()),
        (Some(d1.as_str()), Some(d2.as_str()))
    );

    // The rollback survives a restart too, and so does the way back.
    let f = f.restart().await;
    assert_eq!(active(&f).await, d1);
    let (s, body) = rollback(&f, Some(&d2)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(active(&f).await, d2);
}
