//! WeChat Pay v2 refunds over mutual TLS, through the whole payhost: the v2
//! simulator serves HTTPS with a certificate from a test CA made at run
//! time and wants a client certificate from that CA on `/secapi/`; payhost
//! trusts the CA through `[egress] extra_root_certificates` and presents
//! each merchant's `client_cert`.
//!
//! Three merchants on the same provider account: shop-1 with the
//! certificate the CA issued, shop-2 without one, shop-3 with one from
//! another CA.

use payhost_e2e::front::{self, ExtraMerchant, Front, Options};
use payhost_simulators::tls::{Identity, ServerTls, TestCa};
use payhost_simulators::wechat_v2::Simulator;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SHOP2_KEY: &str = "pk_test_shop2_without_cert";
const SHOP3_KEY: &str = "pk_test_shop3_foreign_cert";

/// Lines of a PEM's base64 body: what must never show up anywhere.
fn pem_body_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(String::from)
        .collect()
}

struct Shop<'a> {
    front: &'a Front,
    key: &'a str,
}

impl Shop<'_> {
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .front
            .client
            .request(Method::POST, self.front.url(path))
            .bearer_auth(self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    /// Creates `order_no` and has the payer pay it (notified, verified).
    async fn paid_order(&self, order_no: &str) {
        let (status, p) = self
            .post("/v1/payments", front::order_body(order_no, 1999))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{p}");
        let answers = self
            .front
            .sim
            .notify(order_no, Default::default())
            .await
            .unwrap();
        assert!(answers[0].acknowledged(), "{answers:?}");
    }

    async fn refund(&self, order_no: &str, refund_no: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/v1/payments/{order_no}/refunds"),
            json!({ "refund_no": refund_no, "amount": 500 }),
        )
        .await
    }
}

fn refund_calls(front: &Front) -> Vec<String> {
    front
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/secapi/pay/refund")
        .map(|r| r.outcome)
        .collect()
}

#[tokio::test]
async fn refunds_go_over_mutual_tls_with_the_merchants_certificate_and_only_with_it() {
    payhost_e2e::capture_logs();
    let ca = TestCa::new("WeChat Pay test CA").unwrap();
    let mut sim_config = front::sim_config();
    sim_config.tls = Some(ServerTls::signed_by(&ca).unwrap());
    let sim = Simulator::start(sim_config).await;
    assert!(sim.base_url().starts_with("https://"));

    let dir = payhost_e2e::temp_dir("wechat-v2-tls");
    let own: Identity = ca.client_identity(front::MCH_ID).unwrap();
    let foreign = TestCa::new("Another CA")
        .unwrap()
        .client_identity(front::MCH_ID)
        .unwrap();
    std::fs::write(dir.join("wechat-ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(dir.join("apiclient.pem"), own.to_pem()).unwrap();
    std::fs::write(dir.join("foreign.pem"), foreign.to_pem()).unwrap();

    let options = Options {
        data_dir: Some(dir.clone()),
        egress_toml: format!(
            "extra_root_certificates = [\"{}\"]",
            dir.join("wechat-ca.pem").display()
        ),
        merchant_config_toml: format!(
            "client_cert = \"file:{}\"",
            dir.join("apiclient.pem").display()
        ),
        // Configured like shop-1, without `client_cert`.
        extra_merchants: vec![ExtraMerchant {
            id: "shop-2".into(),
            api_key: SHOP2_KEY.into(),
            pin: None,
        }],
        extra_toml: front::wechat_v2_merchant("shop-3", SHOP3_KEY, "$SIM_URL")
            + "client_cert = \"file:$DATA_DIR/foreign.pem\"\n",
        ..Default::default()
    };
    let f = Front::start_with_simulator("wechat-v2-tls", options, sim).await;
    let mut answers = Vec::new();

    // shop-1: its certificate from the provider's CA; refunded.
    let shop1 = Shop {
        front: &f,
        key: front::MERCHANT_KEY,
    };
    shop1.paid_order("TLS-0001").await;
    let (status, refund) = shop1.refund("TLS-0001", "TLS-0001-R1").await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["state"], "pending");
    assert_eq!(refund_calls(&f), ["SUCCESS"]);
    assert_eq!(f.sim.truth().refunds["TLS-0001-R1"].refund_fee, 500);
    answers.push(refund.to_string());

    // shop-2: no certificate. A configuration error naming the field,
    // before WeChat is called.
    let shop2 = Shop {
        front: &f,
        key: SHOP2_KEY,
    };
    shop2.paid_order("TLS-0002").await;
    let (status, problem) = shop2.refund("TLS-0002", "TLS-0002-R1").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{problem}");
    assert_eq!(problem["code"], "merchant_misconfigured", "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("`client_cert`"), "{detail}");
    assert_eq!(refund_calls(&f), ["SUCCESS"], "the simulator saw no refund");
    assert!(!f.sim.truth().refunds.contains_key("TLS-0002-R1"));
    answers.push(problem.to_string());

    // shop-3: a certificate from another CA. The simulator refuses it in
    // the handshake; no refund call is ever read.
    let shop3 = Shop {
        front: &f,
        key: SHOP3_KEY,
    };
    shop3.paid_order("TLS-0003").await;
    let failures = f.sim.tls_handshake_failures();
    let (status, problem) = shop3.refund("TLS-0003", "TLS-0003-R1").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{problem}");
    assert_eq!(problem["code"], "provider_unreachable", "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("refused the client certificate"),
        "{detail}"
    );
    assert!(f.sim.tls_handshake_failures() > failures);
    assert_eq!(refund_calls(&f), ["SUCCESS"]);
    assert!(!f.sim.truth().refunds.contains_key("TLS-0003-R1"));
    answers.push(problem.to_string());

    // Neither certificates nor keys reach a log line or an answer.
    let logs = payhost_e2e::logs();
    for pem in [
        own.cert_pem(),
        own.key_pem(),
        foreign.cert_pem(),
        foreign.key_pem(),
    ] {
        for line in pem_body_lines(pem) {
            assert!(!logs.contains(&line), "a PEM line was logged");
            assert!(
                !answers.iter().any(|a| a.contains(&line)),
                "a PEM line was answered"
            );
        }
    }
    assert!(!logs.contains("PRIVATE KEY"));
}
