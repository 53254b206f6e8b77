//! The WeChat Pay scenarios of `payhost demo`: API v2 (XML, MD5) and API v3
//! (JSON, RSA, encrypted notifications), both paid in a mini-program.

use super::{Answer, ProviderSim, Scenario};
use anyhow::Result;
use payhost_simulators::wechat_v2::{self, NotifyOptions};
use payhost_simulators::wechat_v3::{self, NotifyForgery};
use serde_json::json;
use std::path::Path;

const APPID: &str = "wxd678efh567hg6787";
const MCH_ID: &str = "1230000109";
/// Demo credentials, known to the simulator and the demo only.
const WECHAT_KEY: &str = "demo0000000000000000000000000key";
/// WeChat Pay v3 demo keys: the official SDK's published test key serves
/// as both the merchant's key and the "platform's" (tests/fixtures).
const V3_KEY_FIXTURE: &str = "tests/fixtures/wechatpay-v3/sdk-test.key.pem";
const V3_PUBLIC_FIXTURE: &str = "tests/fixtures/wechatpay-v3/sdk-test.pub.pem";
const V3_API_KEY: &str = "demo0000000000000000000000v3key0";
const V3_MCHID: &str = "1900000001";
const V3_SERIAL: &str = "PUB_KEY_ID_0119000000012026120100000000000001";
/// The merchant transfer's scene (1000, cash marketing) and the report
/// items WeChat requires with it (providers.md §12.4.1).
const TRANSFER_CONFIG: &str = r#"transfer_scene_id = "1000"
transfer_scene_report_infos = '[{"info_type":"活动名称","info_content":"新会员有礼"},{"info_type":"奖励说明","info_content":"注册会员抽奖一等奖"}]'
"#;

/// The payer of every WeChat scenario: a mini-program user.
fn payer() -> serde_json::Value {
    json!({ "app_id": APPID, "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "client_ip": "203.0.113.7" })
}

pub async fn v2(dir: &Path) -> Result<Scenario> {
    let mut config = wechat_v2::SimConfig::new(APPID, MCH_ID, WECHAT_KEY);
    // The demo's template allows more deductions a day than payhost's
    // policy for it, so the contract walk shows payhost's own refusal.
    config.papay.max_deductions_per_day = 10;
    let sim = wechat_v2::Simulator::start(config).await;
    std::fs::write(dir.join("wechat.key"), WECHAT_KEY)?;
    Ok(Scenario {
        title: "WeChat Pay v2",
        adapter: "wechat-v2",
        currency: "CNY",
        method: "wechat_mini_program",
        payer: payer(),
        limits: String::new(),
        merchant_config: format!(
            "appid = \"{APPID}\"\nmch_id = \"{MCH_ID}\"\napi_key = \"file:{}/wechat.key\"\nbase_url = \"{}\"\n",
            dir.display(),
            sim.base_url()
        ),
        refunds: true,
        payouts: false,
        contracts: "per_contract_day_count = 2\n".into(),
        sim: Box::new(V2(sim)),
    })
}

pub async fn v3(ws: &Path, dir: &Path) -> Result<Scenario> {
    let public = std::fs::read_to_string(ws.join(V3_PUBLIC_FIXTURE))?;
    let sim = wechat_v3::Simulator::start(wechat_v3::SimConfig {
        mchid: V3_MCHID.into(),
        appid: APPID.into(),
        sub_mchid: None,
        merchant_public_key: public.clone(),
        platform_private_key: std::fs::read_to_string(ws.join(V3_KEY_FIXTURE))?,
        platform_serial: V3_SERIAL.into(),
        api_v3_key: V3_API_KEY.into(),
    })
    .await;
    std::fs::write(dir.join("v3.apikey"), V3_API_KEY)?;
    Ok(Scenario {
        title: "WeChat Pay v3",
        adapter: "wechat-v3",
        currency: "CNY",
        method: "wechat_mini_program",
        payer: payer(),
        limits: String::new(),
        merchant_config: format!(
            "mode = \"direct\"\nmchid = \"{V3_MCHID}\"\nappid = \"{APPID}\"\nmerchant_serial_no = \"5157F09EFDC096DE15EBE81A47057A7232F1B8E1\"\nprivate_key = \"file:{key}\"\napi_v3_key = \"file:{dir}/v3.apikey\"\nwechatpay_public_key_id = \"{V3_SERIAL}\"\nwechatpay_public_key = \"\"\"{public}\"\"\"\nbase_url = \"{base}\"\n{transfers}",
            key = ws.join(V3_KEY_FIXTURE).display(),
            dir = dir.display(),
            base = sim.base_url(),
            transfers = TRANSFER_CONFIG,
        ),
        refunds: true,
        payouts: true,
        contracts: String::new(),
        sim: Box::new(V3(sim)),
    })
}

struct V2(wechat_v2::Simulator);

#[async_trait::async_trait]
impl ProviderSim for V2 {
    async fn pay(&self, order_no: &str) -> Result<Vec<Answer>> {
        let options = NotifyOptions {
            times: 2,
            ..Default::default()
        };
        let answers = self.0.notify(order_no, options).await?;
        Ok(answers.into_iter().map(v2_answer).collect())
    }

    async fn settle_refund(&self, refund_no: &str) -> Result<Vec<Answer>> {
        let answers = self
            .0
            .notify_refund(refund_no, NotifyOptions::default())
            .await?;
        Ok(answers.into_iter().map(v2_answer).collect())
    }

    fn sign_contract(&self, signing: &serde_json::Value, openid: &str) -> Result<()> {
        let extra: Vec<(String, String)> = signing["extra_data"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        self.0.sign_contract_from_extra_data(&extra, openid)?;
        Ok(())
    }

    fn charge_deduction(&self, deduction_no: &str) -> Result<()> {
        self.0.settle_deduction(deduction_no, true)
    }
}

fn v2_answer(a: wechat_v2::NotifyResponse) -> Answer {
    Answer {
        acknowledged: a.acknowledged(),
        status: a.status,
        body: a.body,
    }
}

struct V3(wechat_v3::Simulator);

#[async_trait::async_trait]
impl ProviderSim for V3 {
    async fn pay(&self, order_no: &str) -> Result<Vec<Answer>> {
        self.0.pay(order_no)?;
        let mut answers = Vec::new();
        for _ in 0..2 {
            let answer = self.0.notify_payment(order_no, NotifyForgery::None).await?;
            answers.push(Answer::any_2xx(answer));
        }
        Ok(answers)
    }

    async fn settle_refund(&self, refund_no: &str) -> Result<Vec<Answer>> {
        self.0.settle_refund(refund_no, "SUCCESS")?;
        let answer = self.0.notify_refund(refund_no, NotifyForgery::None).await?;
        Ok(vec![Answer::any_2xx(answer)])
    }

    async fn confirm_payout(&self, payout_no: &str) -> Result<Vec<Answer>> {
        self.0.confirm_transfer(payout_no)?;
        let answer = self
            .0
            .notify_transfer(payout_no, NotifyForgery::None)
            .await?;
        Ok(vec![Answer::any_2xx(answer)])
    }
}
