//! The regional providers' scenarios of `payhost demo`: the overseas
//! mini-program payments of the source article's `switch (pay_sp)`, each
//! through its own adapter and simulator.

use super::{Answer, ProviderSim, Scenario};
use anyhow::Result;
use payhost_simulators::{supay, twopaynow, vr_payment, wechat_cloudpay, yaband};
use serde_json::json;
use std::path::Path;

const APPID: &str = "wx5a1e7f1b2c3d4e5f";

fn mini_program_payer() -> serde_json::Value {
    json!({ "app_id": APPID, "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "client_ip": "203.0.113.7" })
}

/// A provider that answers anything 2xx as taken; `ok` is what it wants.
fn answer_is((status, body): (u16, String), ok: &str) -> Answer {
    Answer {
        acknowledged: (200..300).contains(&status) && body.trim() == ok,
        status,
        body,
    }
}

pub async fn yaband(dir: &Path) -> Result<Scenario> {
    const USER: &str = "016683";
    const SECRET: &str = "demo00000000000000000000yabandkey";
    let sim = yaband::Simulator::start(yaband::SimConfig::new(USER, SECRET)).await;
    std::fs::write(dir.join("yaband.key"), SECRET)?;
    Ok(Scenario {
        title: "Yaband",
        adapter: "yaband",
        currency: "EUR",
        method: "wechat_mini_program",
        payer: mini_program_payer(),
        limits: "cny_rate = \"0.1300\"\n".into(),
        merchant_config: format!(
            "user = \"{USER}\"\nsecret_key = \"file:{}/yaband.key\"\nbase_url = \"{}\"\nredirect_url = \"https://shop.example/paid\"\n",
            dir.display(),
            sim.base_url()
        ),
        refunds: true,
        payouts: false,
        contracts: String::new(),
        sim: Box::new(Yaband(sim)),
    })
}

struct Yaband(yaband::Simulator);

#[async_trait::async_trait]
impl ProviderSim for Yaband {
    async fn pay(&self, order_no: &str) -> Result<Vec<Answer>> {
        self.0.pay(order_no)?;
        let answer = self.0.notify_payment(order_no, Default::default()).await?;
        Ok(vec![answer_is(answer, "ok")])
    }

    async fn settle_refund(&self, refund_no: &str) -> Result<Vec<Answer>> {
        self.0.settle_refund(refund_no, "refunded")?;
        let answer = self.0.notify_refund(refund_no, Default::default()).await?;
        Ok(vec![answer_is(answer, "ok")])
    }
}

pub async fn supay(dir: &Path) -> Result<Scenario> {
    const MCH_ID: &str = "100001";
    const KEY: &str = "demo0000000000supaykey";
    let sim = supay::Simulator::start(supay::SimConfig::new(MCH_ID, KEY)).await;
    std::fs::write(dir.join("supay.key"), KEY)?;
    Ok(Scenario {
        title: "Supay",
        adapter: "supay",
        currency: "AUD",
        method: "wechat_mini_program",
        payer: mini_program_payer(),
        limits: "cny_rate = \"0.2100\"\n".into(),
        merchant_config: format!(
            "mch_id = \"{MCH_ID}\"\napi_key = \"file:{}/supay.key\"\nstore_name = \"Tea House Sydney\"\nappid = \"{APPID}\"\nbase_url = \"{}\"\n",
            dir.display(),
            sim.base_url()
        ),
        refunds: true,
        payouts: false,
        contracts: String::new(),
        sim: Box::new(Supay(sim)),
    })
}

struct Supay(supay::Simulator);

#[async_trait::async_trait]
impl ProviderSim for Supay {
    async fn pay(&self, order_no: &str) -> Result<Vec<Answer>> {
        self.0.pay(order_no)?;
        let answer = self.0.notify_payment(order_no, Default::default()).await?;
        Ok(vec![answer_is(answer, "success")])
    }

    async fn settle_refund(&self, refund_no: &str) -> Result<Vec<Answer>> {
        self.0.settle_refund(refund_no, true)?;
        let answer = self.0.notify_refund(refund_no, Default::default()).await?;
        Ok(vec![answer_is(answer, "success")])
    }
}

pub async fn vr_payment(dir: &Path) -> Result<Scenario> {
    const SPACE: i64 = 40213;
    const USER: &str = "512";
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let sim = vr_payment::Simulator::start(vr_payment::SimConfig::new(SPACE, USER, KEY)).await;
    std::fs::write(dir.join("vr.key"), KEY)?;
    Ok(Scenario {
        title: "VR Payment",
        adapter: "vr-payment",
        currency: "EUR",
        method: "card",
        payer: json!({ "client_ip": "203.0.113.7" }),
        limits: "cny_rate = \"0.1385\"\n".into(),
        merchant_config: format!(
            "space_id = \"{SPACE}\"\nuser_id = \"{USER}\"\nauthentication_key = \"file:{}/vr.key\"\nbase_url = \"{}\"\nsuccess_url = \"https://shop.example/paid\"\n",
            dir.display(),
            sim.base_url()
        ),
        refunds: true,
        payouts: false,
        contracts: String::new(),
        sim: Box::new(VrPayment(sim)),
    })
}

/// VR Payment sends nothing payhost can rely on: payhost polls it.
struct VrPayment(vr_payment::Simulator);

#[async_trait::async_trait]
impl ProviderSim for VrPayment {
    async fn pay(&self, order_no: &str) -> Result<Vec<Answer>> {
        self.0.pay(order_no)?;
        Ok(Vec::new())
    }

    async fn settle_refund(&self, refund_no: &str) -> Result<Vec<Answer>> {
        self.0.settle_refund(refund_no, "SUCCESSFUL")?;
        Ok(Vec::new())
    }
}

pub async fn wechat_cloudpay(_dir: &Path) -> Result<Scenario> {
    const ENV: &str = "prod-66733tes755tabc";
    const SUB_MCH: &str = "1712734762";
    let sim =
        wechat_cloudpay::Simulator::start(wechat_cloudpay::SimConfig::new(ENV, SUB_MCH, APPID))
            .await;
    Ok(Scenario {
        title: "WeChat cloud payment",
        adapter: "wechat-cloudpay",
        currency: "CNY",
        method: "wechat_mini_program",
        payer: mini_program_payer(),
        limits: String::new(),
        merchant_config: format!(
            "env_id = \"{ENV}\"\nsub_mch_id = \"{SUB_MCH}\"\nappid = \"{APPID}\"\ncontainer_service = \"payhost\"\nbase_url = \"{}\"\n",
            sim.base_url()
        ),
        refunds: true,
        payouts: false,
        contracts: String::new(),
        sim: Box::new(CloudPay(sim)),
    })
}

struct CloudPay(wechat_cloudpay::Simulator);

fn cloudpay_answer((status, body): (u16, String)) -> Answer {
    Answer {
        acknowledged: wechat_cloudpay::acknowledged(status, &body),
        status,
        body,
    }
}

#[async_trait::async_trait]
impl ProviderSim for CloudPay {
    fn payhost_started(&self, base_url: &str) {
        // Cloud Hosting calls the container service back, not a URL.
        self.0.route_service("payhost", base_url);
    }

    async fn pay(&self, order_no: &str) -> Result<Vec<Answer>> {
        self.0.pay(order_no)?;
        let answer = self.0.notify_payment(order_no, Default::default()).await?;
        Ok(vec![cloudpay_answer(answer)])
    }

    async fn settle_refund(&self, refund_no: &str) -> Result<Vec<Answer>> {
        self.0.settle_refund(refund_no, "SUCCESS")?;
        let answer = self.0.notify_refund(refund_no, Default::default()).await?;
        Ok(vec![cloudpay_answer(answer)])
    }
}

pub async fn twopaynow(dir: &Path) -> Result<Scenario> {
    const MID: &str = "4002563369";
    const KEY: &str = "demo2paynowkey";
    let sim = twopaynow::Simulator::start(twopaynow::SimConfig::new(MID, KEY)).await;
    std::fs::write(dir.join("2paynow.key"), KEY)?;
    Ok(Scenario {
        title: "2paynow",
        adapter: "2paynow",
        currency: "EUR",
        method: "wechat_native",
        payer: json!({ "client_ip": "203.0.113.7" }),
        limits: "cny_rate = \"0.1280\"\n".into(),
        merchant_config: format!(
            "mid = \"{MID}\"\nkey = \"file:{}/2paynow.key\"\nbase_url = \"{}\"\n",
            dir.display(),
            sim.base_url()
        ),
        // 2paynow documents no refund call; its portal refunds.
        refunds: false,
        payouts: false,
        contracts: String::new(),
        sim: Box::new(TwoPayNow(sim)),
    })
}

struct TwoPayNow(twopaynow::Simulator);

#[async_trait::async_trait]
impl ProviderSim for TwoPayNow {
    async fn pay(&self, order_no: &str) -> Result<Vec<Answer>> {
        self.0.pay(order_no)?;
        let answer = self.0.notify_payment(order_no, Default::default()).await?;
        Ok(vec![answer_is(answer, "success")])
    }

    async fn settle_refund(&self, _refund_no: &str) -> Result<Vec<Answer>> {
        anyhow::bail!("2paynow has no refund")
    }
}
