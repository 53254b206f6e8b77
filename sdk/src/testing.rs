//! Run an adapter natively, without wasm and without a network.
//!
//! The [`Harness`] plays the host: it holds a merchant configuration with
//! in-memory secrets, a fixed call context, and a responder that answers the
//! adapter's requests the way the provider would. It drives operations step
//! by step exactly as the host does -- every step replays the recorded
//! exchanges -- so non-determinism is caught here too.
//!
//! ```ignore
//! let mut h = Harness::<MyProvider>::new()
//!     .text("mch_id", "10000100")
//!     .secret("api_key", "192006250b4c09247ec02edce69f6a2d")
//!     .respond(|req| payhost_sdk::http::response(200, "text/xml", "<xml>...</xml>"));
//! let created = h.unified_order(&order).unwrap();
//! assert_eq!(h.sent().len(), 1);
//! ```

use crate::Adapter;
use crate::glue;
use crate::host::HostOps;
use crate::native::{self, SecretTable};
use crate::types::*;
use std::cell::RefCell;
use std::marker::PhantomData;

type Responder = Box<dyn FnMut(&HttpRequest) -> HttpResponse>;

/// The host's side, natively; see the module documentation.
pub struct Harness<A: Adapter> {
    config: Vec<ConfigEntry>,
    secrets: SecretTable,
    ctx: CallContext,
    responder: Responder,
    sent: Vec<HttpRequest>,
    logs: RefCell<Vec<(Level, String)>>,
    max_steps: usize,
    _adapter: PhantomData<A>,
}

impl<A: Adapter> Default for Harness<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Adapter> Harness<A> {
    /// A harness with an empty configuration, timestamp 1_700_000_000, seed
    /// 42, notify URL `https://payhost.test/v1/notify/test/m1`, and a
    /// responder that fails the test if anything is sent.
    pub fn new() -> Self {
        Self {
            config: Vec::new(),
            secrets: SecretTable::new(),
            ctx: CallContext {
                request_id: "test-request".into(),
                timestamp: 1_700_000_000,
                seed: 42,
                notify_url: "https://payhost.test/v1/notify/test/m1".into(),
            },
            responder: Box::new(|req| panic!("unexpected request to {}", req.url)),
            sent: Vec::new(),
            logs: RefCell::new(Vec::new()),
            max_steps: 16,
            _adapter: PhantomData,
        }
    }

    /// Adds (or replaces) a plain configuration field.
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.config.retain(|e| e.name != name);
        self.config.push(ConfigEntry {
            name: name.into(),
            value: ConfigValue::Text(value.into()),
        });
        self
    }

    /// Adds (or replaces) a secret configuration field.
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.config.retain(|e| e.name != name);
        let handle = self.secrets.insert(value.as_bytes().to_vec());
        self.config.push(ConfigEntry {
            name: name.into(),
            value: ConfigValue::Secret(handle),
        });
        self
    }

    /// Fills in every schema default that the configuration lacks, as the
    /// host does before a call.
    pub fn with_schema_defaults(mut self) -> Self {
        for field in A::describe().config_schema {
            if let Some(default) = field.default
                && !self.config.iter().any(|e| e.name == field.name)
            {
                self.config.push(ConfigEntry {
                    name: field.name,
                    value: ConfigValue::Text(default),
                });
            }
        }
        self
    }

    pub fn timestamp(mut self, unix: i64) -> Self {
        self.ctx.timestamp = unix;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.ctx.seed = seed;
        self
    }

    pub fn notify_url(mut self, url: &str) -> Self {
        self.ctx.notify_url = url.into();
        self
    }

    /// Sets the provider's behaviour: called once for every request the
    /// adapter sends.
    pub fn respond(mut self, f: impl FnMut(&HttpRequest) -> HttpResponse + 'static) -> Self {
        self.responder = Box::new(f);
        self
    }

    /// Every request performed so far, in order.
    pub fn sent(&self) -> &[HttpRequest] {
        &self.sent
    }

    /// Everything the adapter logged.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }

    /// Computes with the harness's secrets what the host would, e.g. to
    /// build a correctly signed notification in a test.
    pub fn secrets(&self) -> &SecretTable {
        &self.secrets
    }

    /// The handle of a secret field.
    pub fn secret_handle(&self, name: &str) -> Option<Secret> {
        self.config
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| match e.value {
                ConfigValue::Secret(h) => Some(h),
                ConfigValue::Text(_) => None,
            })
    }

    fn drive<S, T, E>(
        &mut self,
        mut step: impl FnMut(&dyn HostOps, CallContext, Vec<ConfigEntry>, Vec<Exchange>) -> S,
        classify: impl Fn(S) -> Result<Result<T, E>, HttpRequest>,
    ) -> Result<T, E> {
        let mut exchanges: Vec<Exchange> = Vec::new();
        for _ in 0..self.max_steps {
            let out = step(
                &*self,
                self.ctx.clone(),
                self.config.clone(),
                exchanges.clone(),
            );
            match classify(out) {
                Ok(done) => return done,
                Err(request) => {
                    let response = (self.responder)(&request);
                    self.sent.push(request.clone());
                    exchanges.push(Exchange { request, response });
                }
            }
        }
        panic!("the adapter did not finish within {} steps", self.max_steps);
    }

    pub fn unified_order(&mut self, request: &OrderRequest) -> Result<OrderCreated, AdapterError> {
        let request = request.clone();
        self.drive(
            |h, c, cfg, ex| glue::unified_order::<A>(h, c, cfg, request.clone(), ex),
            |s| match s {
                OrderStep::Send(r) => Err(r),
                OrderStep::Done(d) => Ok(d),
            },
        )
    }

    pub fn query(&mut self, request: &QueryRequest) -> Result<TradeStatus, AdapterError> {
        let request = request.clone();
        self.drive(
            |h, c, cfg, ex| glue::query::<A>(h, c, cfg, request.clone(), ex),
            |s| match s {
                QueryStep::Send(r) => Err(r),
                QueryStep::Done(d) => Ok(d),
            },
        )
    }

    pub fn refund(&mut self, request: &RefundRequest) -> Result<RefundStatus, AdapterError> {
        let request = request.clone();
        self.drive(
            |h, c, cfg, ex| glue::refund::<A>(h, c, cfg, request.clone(), ex),
            |s| match s {
                RefundStep::Send(r) => Err(r),
                RefundStep::Done(d) => Ok(d),
            },
        )
    }

    pub fn close(&mut self, request: &CloseRequest) -> Result<TradeStatus, AdapterError> {
        let request = request.clone();
        self.drive(
            |h, c, cfg, ex| glue::close::<A>(h, c, cfg, request.clone(), ex),
            |s| match s {
                CloseStep::Send(r) => Err(r),
                CloseStep::Done(d) => Ok(d),
            },
        )
    }

    pub fn refund_query(
        &mut self,
        request: &RefundQueryRequest,
    ) -> Result<RefundStatus, AdapterError> {
        let request = request.clone();
        self.drive(
            |h, c, cfg, ex| glue::refund_query::<A>(h, c, cfg, request.clone(), ex),
            |s| match s {
                RefundQueryStep::Send(r) => Err(r),
                RefundQueryStep::Done(d) => Ok(d),
            },
        )
    }

    pub fn payout(&mut self, request: &PayoutRequest) -> Result<PayoutStatus, AdapterError> {
        let request = request.clone();
        self.drive(
            |h, c, cfg, ex| glue::payout::<A>(h, c, cfg, request.clone(), ex),
            |s| match s {
                PayoutStep::Send(r) => Err(r),
                PayoutStep::Done(d) => Ok(d),
            },
        )
    }

    pub fn payout_query(
        &mut self,
        request: &PayoutQueryRequest,
    ) -> Result<PayoutStatus, AdapterError> {
        let request = request.clone();
        self.drive(
            |h, c, cfg, ex| glue::payout_query::<A>(h, c, cfg, request.clone(), ex),
            |s| match s {
                PayoutQueryStep::Send(r) => Err(r),
                PayoutQueryStep::Done(d) => Ok(d),
            },
        )
    }

    pub fn contract_sign(
        &mut self,
        request: &ContractSignRequest,
    ) -> Result<ContractSigning, AdapterError> {
        let request = request.clone();
        self.drive(
            |h, c, cfg, ex| glue::contract_sign::<A>(h, c, cfg, request.clone(), ex),
            |s| match s {
                ContractSignStep::Send(r) => Err(r),
                ContractSignStep::Done(d) => Ok(d),
            },
        )
    }

    pub fn contract_query(
        &mut self,
        request: &ContractQueryRequest,
    ) -> Result<ContractStatus, AdapterError> {
        let request = request.clone();
        self.drive(
            |h, c, cfg, ex| glue::contract_query::<A>(h, c, cfg, request.clone(), ex),
            |s| match s {
                ContractStep::Send(r) => Err(r),
                ContractStep::Done(d) => Ok(d),
            },
        )
    }

    pub fn contract_terminate(
        &mut self,
        request: &ContractTerminateRequest,
    ) -> Result<ContractStatus, AdapterError> {
        let request = request.clone();
        self.drive(
            |h, c, cfg, ex| glue::contract_terminate::<A>(h, c, cfg, request.clone(), ex),
            |s| match s {
                ContractStep::Send(r) => Err(r),
                ContractStep::Done(d) => Ok(d),
            },
        )
    }

    pub fn deduct(&mut self, request: &DeductionRequest) -> Result<DeductionStatus, AdapterError> {
        let request = request.clone();
        self.drive(
            |h, c, cfg, ex| glue::deduct::<A>(h, c, cfg, request.clone(), ex),
            |s| match s {
                DeductionStep::Send(r) => Err(r),
                DeductionStep::Done(d) => Ok(d),
            },
        )
    }

    pub fn deduction_query(
        &mut self,
        request: &DeductionQueryRequest,
    ) -> Result<DeductionStatus, AdapterError> {
        let request = request.clone();
        self.drive(
            |h, c, cfg, ex| glue::deduction_query::<A>(h, c, cfg, request.clone(), ex),
            |s| match s {
                DeductionStep::Send(r) => Err(r),
                DeductionStep::Done(d) => Ok(d),
            },
        )
    }

    pub fn parse_notify(&mut self, request: &InboundHttp) -> Result<NotifyOutcome, NotifyFailure> {
        let request = request.clone();
        self.drive(
            |h, c, cfg, ex| glue::parse_notify::<A>(h, c, cfg, request.clone(), ex),
            |s| match s {
                NotifyStep::Send(r) => Err(r),
                NotifyStep::Done(d) => Ok(d),
            },
        )
    }
}

// ---- the native host: conversions from the generated types ----

crate::native_conversions!();

impl<A: Adapter> HostOps for Harness<A> {
    fn digest(&self, algorithm: DigestAlgorithm, p: &[Part]) -> Result<Vec<u8>, SecretError> {
        self.secrets.digest(alg(algorithm), &parts(p)?).map_err(err)
    }
    fn hmac(
        &self,
        algorithm: DigestAlgorithm,
        key: Secret,
        encoding: KeyEncoding,
        message: &[Part],
    ) -> Result<Vec<u8>, SecretError> {
        self.secrets
            .hmac(alg(algorithm), key, enc(encoding), &parts(message)?)
            .map_err(err)
    }
    fn rsa_sha256_sign(&self, key: Secret, message: &[u8]) -> Result<Vec<u8>, SecretError> {
        self.secrets.rsa_sha256_sign(key, message).map_err(err)
    }
    fn rsa_sha256_verify(
        &self,
        public_key_pem: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, SecretError> {
        native::rsa_sha256_verify(public_key_pem, message, signature).map_err(err)
    }
    fn aes_256_gcm_decrypt(
        &self,
        key: Secret,
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        self.secrets
            .aes_256_gcm_decrypt(key, nonce, aad, ciphertext)
            .map_err(err)
    }
    fn aes_256_ecb_decrypt_md5_key(
        &self,
        key: Secret,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        self.secrets
            .aes_256_ecb_decrypt_md5_key(key, ciphertext)
            .map_err(err)
    }
    fn rsa_oaep_sha1_encrypt(
        &self,
        public_key_pem: &str,
        plaintext: &[u8],
        seed: u64,
    ) -> Result<Vec<u8>, SecretError> {
        native::rsa_oaep_sha1_encrypt(public_key_pem, plaintext, seed).map_err(err)
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}

/// Fuzz inputs for a parser, made from a valid `sample` by a seeded
/// generator: random bytes, truncations, byte flips, spliced repeats and
/// bytes outside ASCII, `cases` of them. A fuzz test feeds each to the
/// adapter (`parse_notify`, or a responder for a response parser) and
/// asserts it never panics and never yields an event from a changed
/// message. [`fuzz_cases`] lets a documented longer run ask for more.
pub fn fuzz_inputs(sample: &[u8], seed: u64, cases: usize) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..cases)
        .map(|i| {
            let mut b = sample.to_vec();
            match i % 5 {
                0 => (0..rng.usize(0..256)).map(|_| rng.u8(..)).collect(),
                1 => {
                    b.truncate(rng.usize(0..=sample.len()));
                    b
                }
                2 => {
                    for _ in 0..rng.usize(1..8) {
                        if !b.is_empty() {
                            let at = rng.usize(..b.len());
                            b[at] ^= 1 << rng.u8(0..8);
                        }
                    }
                    b
                }
                3 => {
                    let from = rng.usize(0..=b.len());
                    let to = rng.usize(from..=b.len());
                    let piece = b[from..to].to_vec();
                    for _ in 0..rng.usize(1..4) {
                        let at = rng.usize(0..=b.len());
                        b.splice(at..at, piece.iter().copied());
                    }
                    b
                }
                _ => {
                    let at = rng.usize(0..=b.len());
                    b.splice(at..at, "\u{FFFF}\u{0}é茶".bytes());
                    b
                }
            }
        })
        .collect()
}

/// How many cases a fuzz test runs: `PAYHOST_FUZZ_CASES` when set (a
/// longer run: `PAYHOST_FUZZ_CASES=200000 cargo test --release -p ADAPTER
/// fuzz -- --nocapture`), else `default`, kept small for the test command.
pub fn fuzz_cases(default: usize) -> usize {
    std::env::var("PAYHOST_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one [`fuzz`] run did: inputs tried, inputs the parser accepted,
/// and the rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FuzzRun {
    pub cases: usize,
    pub accepted: usize,
    pub per_sec: f64,
}

/// The fuzz loop, written once: feeds every input of [`fuzz_inputs`]
/// (`fuzz_cases(default_cases)` of them) to `parse`, which answers whether
/// the adapter accepted it and asserts what an accepted input must mean.
/// A panic (the adapter's or a failed assertion) first prints the input
/// that caused it, so it can become a regression test, then re-raises it. Prints
/// one summary line: `NAME: N inputs, R/s, A accepted`.
pub fn fuzz(
    name: &str,
    sample: &[u8],
    seed: u64,
    default_cases: usize,
    mut parse: impl FnMut(&[u8]) -> bool,
) -> FuzzRun {
    let inputs = fuzz_inputs(sample, seed, fuzz_cases(default_cases));
    let started = std::time::Instant::now();
    let mut accepted = 0;
    for input in &inputs {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(input))) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(panic) => {
                eprintln!("{name}: panicked on input {}", shown(input));
                std::panic::resume_unwind(panic);
            }
        }
    }
    let run = FuzzRun {
        cases: inputs.len(),
        accepted,
        per_sec: inputs.len() as f64 / started.elapsed().as_secs_f64().max(1e-9),
    };
    println!(
        "{name}: {} inputs, {:.0}/s, {} accepted",
        run.cases, run.per_sec, run.accepted
    );
    run
}

/// [`fuzz`] where the provider signs what is fuzzed: `take` answers what
/// the adapter took from an input (`None`: refused, or nothing taken, such
/// as a notification without events). The sample must be taken, and a
/// changed input taken only with exactly the sample's meaning -- a change
/// the signature does not cover (whitespace, a repeated field) is harmless,
/// any other means the adapter trusted an unsigned byte.
pub fn fuzz_same_meaning<T: PartialEq + std::fmt::Debug>(
    name: &str,
    sample: &[u8],
    seed: u64,
    default_cases: usize,
    mut take: impl FnMut(&[u8]) -> Option<T>,
) -> FuzzRun {
    let expected = take(sample).unwrap_or_else(|| panic!("{name}: the sample itself is refused"));
    fuzz(name, sample, seed, default_cases, |input| {
        match take(input) {
            Some(got) => {
                assert_eq!(
                    got, expected,
                    "{name}: a changed input was taken with another meaning"
                );
                true
            }
            None => false,
        }
    })
}

/// [`fuzz_same_meaning`] over a signed notification's body: `sample` with
/// its body mutated goes to `parse`, and the events of an accepted one
/// must be the sample's.
pub fn fuzz_signed_notify(
    name: &str,
    sample: &InboundHttp,
    seed: u64,
    default_cases: usize,
    mut parse: impl FnMut(&InboundHttp) -> Result<NotifyOutcome, NotifyFailure>,
) -> FuzzRun {
    fuzz_same_meaning(name, &sample.body, seed, default_cases, |body| {
        let mut req = sample.clone();
        req.body = body.to_vec();
        let events = parse(&req).ok()?.events;
        (!events.is_empty()).then_some(events)
    })
}

/// [`fuzz`] where nothing signs what is fuzzed: the sample must be taken,
/// and whatever is taken must pass `check` (the well-formedness the adapter
/// promises, e.g. that a status names the order that was asked about).
pub fn fuzz_well_formed<T: std::fmt::Debug>(
    name: &str,
    sample: &[u8],
    seed: u64,
    default_cases: usize,
    mut take: impl FnMut(&[u8]) -> Option<T>,
    mut check: impl FnMut(&T),
) -> FuzzRun {
    let taken = take(sample).unwrap_or_else(|| panic!("{name}: the sample itself is refused"));
    check(&taken);
    fuzz(name, sample, seed, default_cases, |input| {
        match take(input) {
            Some(got) => {
                check(&got);
                true
            }
            None => false,
        }
    })
}

/// For a [`fuzz_well_formed`] check: fails unless `money`, when present,
/// is in a currency ISO 4217 knows (so its minor units mean something).
pub fn assert_known_currency(money: Option<&Money>) {
    if let Some(m) = money {
        assert!(
            crate::money::exponent(&m.currency).is_ok(),
            "an amount in an unknown currency was taken: {m:?}"
        );
    }
}

/// `response` with its body replaced: a fuzzed provider answer keeps the
/// sample's status and headers.
pub fn with_body(response: &HttpResponse, body: &[u8]) -> HttpResponse {
    HttpResponse {
        status: response.status,
        headers: response.headers.clone(),
        body: body.to_vec(),
    }
}

/// An input as a panic report shows it: lossy UTF-8, escaped, at most 600
/// characters.
fn shown(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    let mut out: String = text
        .chars()
        .take(600)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if text.chars().count() > 600 {
        out.push_str("...");
    }
    format!("({} bytes) \"{out}\"", input.len())
}

#[cfg(test)]
mod fuzz_tests {
    #[test]
    fn fuzz_inputs_are_seeded_varied_and_as_many_as_asked() {
        let sample = b"<xml><a>1</a></xml>";
        let one = super::fuzz_inputs(sample, 7, 50);
        assert_eq!(one, super::fuzz_inputs(sample, 7, 50));
        assert_ne!(one, super::fuzz_inputs(sample, 8, 50));
        assert_eq!(one.len(), 50);
        assert!(one.iter().filter(|b| b.as_slice() != sample).count() > 40);
        assert!(one.iter().any(|b| b.len() < sample.len()));
        assert!(one.iter().any(|b| b.len() > sample.len()));
    }

    #[test]
    fn fuzz_counts_inputs_and_acceptances() {
        let sample = b"amount=100";
        let mut seen = 0;
        let run = super::fuzz("count", sample, 3, 60, |input| {
            seen += 1;
            input == sample
        });
        let expected = super::fuzz_inputs(sample, 3, super::fuzz_cases(60));
        assert_eq!(seen, expected.len());
        assert_eq!(run.cases, expected.len());
        assert_eq!(
            run.accepted,
            expected.iter().filter(|b| b.as_slice() == sample).count()
        );
        assert!(run.per_sec > 0.0);
    }

    #[test]
    fn fuzz_reraises_a_parser_panic() {
        let outcome = std::panic::catch_unwind(|| {
            super::fuzz("panics", b"<xml><a>1</a></xml>", 5, 50, |input| {
                assert!(input.len() <= 19, "too long");
                true
            })
        });
        let panic = outcome.unwrap_err();
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .or(panic.downcast_ref::<String>().map(String::as_str));
        assert_eq!(message, Some("too long"));
    }

    #[test]
    fn same_meaning_fails_when_a_changed_input_means_something_else() {
        let sample = b"amount=100";
        // Reads the first two bytes only: a change after them is harmless.
        let run = super::fuzz_same_meaning("prefix", sample, 11, 200, |b| {
            b.starts_with(b"am").then_some("am")
        });
        assert!(run.accepted > 1);
        // Takes the whole input: any change taken is another meaning.
        let failed = std::panic::catch_unwind(|| {
            super::fuzz_same_meaning("whole", sample, 11, 200, |b| Some(b.to_vec()))
        });
        assert!(failed.is_err());
        let refused = std::panic::catch_unwind(|| {
            super::fuzz_same_meaning("refused", sample, 11, 10, |_| None::<()>)
        });
        assert!(refused.is_err());
    }

    #[test]
    fn well_formed_checks_every_taken_input() {
        let mut checked = 0;
        let run = super::fuzz_well_formed(
            "digits",
            b"12345",
            13,
            200,
            |b| std::str::from_utf8(b).ok()?.parse::<u64>().ok(),
            |_| checked += 1,
        );
        assert_eq!(checked, run.accepted + 1);
        assert!(
            std::panic::catch_unwind(|| {
                super::fuzz_well_formed(
                    "bounded",
                    b"12345",
                    13,
                    200,
                    |b| Some(b.len()),
                    |n| assert!(*n <= 5),
                )
            })
            .is_err()
        );
    }

    #[test]
    fn only_known_currencies_are_well_formed() {
        let money = |currency: &str| crate::types::Money {
            minor: 1,
            currency: currency.into(),
        };
        super::assert_known_currency(None);
        super::assert_known_currency(Some(&money("JPY")));
        assert!(
            std::panic::catch_unwind(|| super::assert_known_currency(Some(&money("XQZ")))).is_err()
        );
    }

    #[test]
    fn signed_notify_mutates_the_body_and_compares_the_events() {
        use crate::types::*;
        let sample = InboundHttp {
            method: HttpMethod::Post,
            path: "/n".into(),
            query: String::new(),
            headers: vec![("x".into(), "1".into())],
            body: b"paid=100".to_vec(),
        };
        let event = |body: &[u8]| {
            NotifyEvent::Refund(RefundStatus {
                order: OrderRef {
                    merchant_order_no: String::from_utf8_lossy(body).into(),
                    provider_trade_no: None,
                    channel_transaction_id: None,
                },
                refund_no: "R".into(),
                provider_refund_id: None,
                state: RefundState::Pending,
                provider_state: String::new(),
                amount: None,
            })
        };
        let outcome = |req: &InboundHttp| NotifyOutcome {
            events: vec![event(&req.body)],
            ack: crate::http::response(200, "text/plain", "ok"),
        };
        // Verified byte for byte: only the sample is taken.
        let run = super::fuzz_signed_notify("exact", &sample, 17, 100, |req| {
            assert_eq!(req.headers, sample.headers);
            if req.body == sample.body {
                Ok(outcome(req))
            } else {
                Err(NotifyFailure {
                    error: AdapterError::BadSignature("changed".into()),
                    ack: None,
                })
            }
        });
        assert!(run.accepted >= 1);
        // Trusting every body: a changed event is caught.
        let trusting = std::panic::catch_unwind(|| {
            super::fuzz_signed_notify("trusting", &sample, 17, 100, |req| Ok(outcome(req)))
        });
        assert!(trusting.is_err());
    }

    #[test]
    fn with_body_keeps_status_and_headers() {
        let sample = crate::http::response(202, "application/json", b"{}".to_vec());
        let changed = super::with_body(&sample, b"[1]");
        assert_eq!((changed.status, &changed.headers), (202, &sample.headers));
        assert_eq!(changed.body, b"[1]");
    }

    #[test]
    fn a_shown_input_is_escaped_and_truncated() {
        let long = vec![b'\n'; 700];
        let shown = super::shown(&long);
        assert!(shown.starts_with("(700 bytes) \"\\n"));
        assert!(shown.ends_with("...\""));
        assert!(!shown.contains('\n'));
    }
}
