//! An adapter that uses WASI the way a language runtime might, for the
//! runtime's sandbox tests. `unified_order` does what
//! `request.description` says and reports what it saw in
//! `provider_trade_no`:
//!
//! - `sleep`: waits an hour on a monotonic-clock subscription (`block`);
//! - `poll`: the same through `wasi:io/poll.poll`;
//! - `clock`: the wall and monotonic clocks, before and after a 10 ms wait;
//! - `random`: 16 bytes of each random interface and the insecure seed;
//! - `env`: environment, arguments, working directory and preopens;
//! - `print`: writes 10,000 lines to stdout, then reports success.

use payhost_sdk::prelude::*;

wit_bindgen::generate!({ world: "probe", path: "wit", generate_all });

use wasi::clocks::{monotonic_clock, wall_clock};
use wasi::random::{insecure, insecure_seed, random};

pub struct Probe;

const HOUR_NS: u64 = 3600 * 1_000_000_000;

fn clocks() -> String {
    let wall = wall_clock::now();
    format!(
        "wall={}.{:09} mono={}",
        wall.seconds,
        wall.nanoseconds,
        monotonic_clock::now()
    )
}

fn seen(request: &OrderRequest) -> String {
    match request.description.as_str() {
        "sleep" => {
            monotonic_clock::subscribe_duration(HOUR_NS).block();
            "woke up after an hour".into()
        }
        "poll" => {
            let hour = monotonic_clock::subscribe_duration(HOUR_NS);
            let ready = wasi::io::poll::poll(&[&hour]);
            format!("poll returned {ready:?}")
        }
        "clock" => {
            let before = clocks();
            monotonic_clock::subscribe_duration(10_000_000).block();
            format!("{before} then {}", clocks())
        }
        "random" => {
            let (a, b) = insecure_seed::insecure_seed();
            format!(
                "random={} insecure={} seed={a:x}.{b:x}",
                encoding::hex_lower(&random::get_random_bytes(16)),
                encoding::hex_lower(&insecure::get_insecure_random_bytes(16)),
            )
        }
        "env" => {
            use wasi::cli::environment;
            format!(
                "env={} args={} cwd={:?} preopens={}",
                environment::get_environment().len(),
                environment::get_arguments().len(),
                environment::initial_cwd(),
                wasi::filesystem::preopens::get_directories().len(),
            )
        }
        "print" => {
            let out = wasi::cli::stdout::get_stdout();
            let mut written = 0;
            for n in 0..10_000 {
                let line = format!("stdout line {n} of a flood\n");
                if out.blocking_write_and_flush(line.as_bytes()).is_err() {
                    break;
                }
                written += 1;
            }
            format!("printed {written} lines")
        }
        other => format!("unknown behaviour {other}"),
    }
}

impl Adapter for Probe {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            name: "wasi-probe".into(),
            version: "0.1.0".into(),
            contract_version: CONTRACT_VERSION.into(),
            methods: vec!["test".into()],
            currencies: vec!["CNY".into()],
            capabilities: Capabilities {
                payment_notifications: false,
                refund_notifications: false,
                partial_refunds: false,
                query_by_merchant_order_no: true,
                close: false,
                refund_query: false,
                payouts: false,
                payout_notifications: false,
                contracts: false,
                contract_notifications: false,
                deduction_notifications: false,
            },
            egress_hosts: vec![],
            field_rules: vec![],
            config_schema: vec![],
        }
    }

    fn unified_order(_: &mut Ctx, request: &OrderRequest) -> Result<OrderCreated> {
        Ok(OrderCreated {
            order: OrderRef {
                merchant_order_no: request.merchant_order_no.clone(),
                provider_trade_no: Some(seen(request)),
                channel_transaction_id: None,
            },
            action: PayAction::Redirect("https://pay.example/checkout".into()),
        })
    }

    fn query(_: &mut Ctx, _: &QueryRequest) -> Result<TradeStatus> {
        Err(Error::unsupported("query"))
    }

    fn refund(_: &mut Ctx, _: &RefundRequest) -> Result<RefundStatus> {
        Err(Error::unsupported("refund"))
    }

    fn parse_notify(_: &mut Ctx, _: &InboundHttp) -> Result<NotifyOutcome> {
        Err(Error::unsupported("parse_notify"))
    }
}

payhost_sdk::export_adapter!(Probe);
