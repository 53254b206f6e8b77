//! Turns an [`Adapter`]'s straight-line functions into the contract's
//! step functions. Used by [`crate::export_adapter!`] in a component and by
//! the native harness, so both run the very same code path.

use crate::Adapter;
use crate::bindings::payhost::adapter::{log, secrets};
use crate::ctx::Ctx;
use crate::error::{Error, Inner};
use crate::host::HostOps;
use crate::types::*;

/// The component's imports, as [`HostOps`].
pub struct Imports;

impl HostOps for Imports {
    fn digest(&self, algorithm: DigestAlgorithm, parts: &[Part]) -> Result<Vec<u8>, SecretError> {
        secrets::digest(algorithm, parts)
    }
    fn hmac(
        &self,
        algorithm: DigestAlgorithm,
        key: Secret,
        encoding: KeyEncoding,
        message: &[Part],
    ) -> Result<Vec<u8>, SecretError> {
        secrets::hmac(algorithm, key, encoding, message)
    }
    fn rsa_sha256_sign(&self, key: Secret, message: &[u8]) -> Result<Vec<u8>, SecretError> {
        secrets::rsa_sha256_sign(key, message)
    }
    fn rsa_sha256_verify(
        &self,
        public_key_pem: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, SecretError> {
        secrets::rsa_sha256_verify(public_key_pem, message, signature)
    }
    fn aes_256_gcm_decrypt(
        &self,
        key: Secret,
        nonce: &[u8],
        associated_data: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        secrets::aes_256_gcm_decrypt(key, nonce, associated_data, ciphertext)
    }
    fn aes_256_ecb_decrypt_md5_key(
        &self,
        key: Secret,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        secrets::aes_256_ecb_decrypt_md5_key(key, ciphertext)
    }
    fn rsa_oaep_sha1_encrypt(
        &self,
        public_key_pem: &str,
        plaintext: &[u8],
        seed: u64,
    ) -> Result<Vec<u8>, SecretError> {
        secrets::rsa_oaep_sha1_encrypt(public_key_pem, plaintext, seed)
    }
    fn log(&self, level: Level, message: &str) {
        log::log(level, message)
    }
}

/// In a component, route panic messages into the host's log before the
/// abort traps, so an operator sees why an adapter died.
fn install_panic_hook() {
    #[cfg(target_arch = "wasm32")]
    std::panic::set_hook(Box::new(|info| {
        log::log(Level::Error, &format!("adapter panicked: {info}"));
    }));
}

/// Runs one step of an operation and classifies its outcome.
enum Outcome<T> {
    Send(HttpRequest),
    Done(Result<T, (AdapterError, Option<HttpResponse>)>),
}

fn run<T>(
    host: &dyn HostOps,
    call: CallContext,
    config: Vec<ConfigEntry>,
    exchanges: Vec<Exchange>,
    op: impl FnOnce(&mut Ctx) -> crate::Result<T>,
) -> Outcome<T> {
    install_panic_hook();
    let mut ctx = Ctx::new(host, &call, &config, &exchanges);
    let result = op(&mut ctx);
    let unreplayed = ctx.unreplayed();
    match result {
        Err(Error(Inner::Suspend(req))) => Outcome::Send(req),
        Err(Error(Inner::Adapter {
            error: error @ AdapterError::Nondeterministic(_),
            ack,
        })) => Outcome::Done(Err((error, ack))),
        // Finishing without asking for every recorded request means the
        // adapter took another path than in the step that recorded them.
        _ if unreplayed > 0 => Outcome::Done(Err((
            AdapterError::Nondeterministic(format!(
                "the operation finished with {unreplayed} recorded exchange(s) never requested again"
            )),
            None,
        ))),
        Ok(v) => Outcome::Done(Ok(v)),
        Err(Error(Inner::Adapter { error, ack })) => Outcome::Done(Err((error, ack))),
    }
}

pub fn unified_order<A: Adapter>(
    host: &dyn HostOps,
    call: CallContext,
    config: Vec<ConfigEntry>,
    request: OrderRequest,
    exchanges: Vec<Exchange>,
) -> OrderStep {
    match run(host, call, config, exchanges, |ctx| {
        A::unified_order(ctx, &request)
    }) {
        Outcome::Send(r) => OrderStep::Send(r),
        Outcome::Done(r) => OrderStep::Done(r.map_err(|(e, _)| e)),
    }
}

pub fn query<A: Adapter>(
    host: &dyn HostOps,
    call: CallContext,
    config: Vec<ConfigEntry>,
    request: QueryRequest,
    exchanges: Vec<Exchange>,
) -> QueryStep {
    match run(host, call, config, exchanges, |ctx| A::query(ctx, &request)) {
        Outcome::Send(r) => QueryStep::Send(r),
        Outcome::Done(r) => QueryStep::Done(r.map_err(|(e, _)| e)),
    }
}

pub fn close<A: Adapter>(
    host: &dyn HostOps,
    call: CallContext,
    config: Vec<ConfigEntry>,
    request: CloseRequest,
    exchanges: Vec<Exchange>,
) -> CloseStep {
    match run(host, call, config, exchanges, |ctx| A::close(ctx, &request)) {
        Outcome::Send(r) => CloseStep::Send(r),
        Outcome::Done(r) => CloseStep::Done(r.map_err(|(e, _)| e)),
    }
}

pub fn refund_query<A: Adapter>(
    host: &dyn HostOps,
    call: CallContext,
    config: Vec<ConfigEntry>,
    request: RefundQueryRequest,
    exchanges: Vec<Exchange>,
) -> RefundQueryStep {
    match run(host, call, config, exchanges, |ctx| {
        A::refund_query(ctx, &request)
    }) {
        Outcome::Send(r) => RefundQueryStep::Send(r),
        Outcome::Done(r) => RefundQueryStep::Done(r.map_err(|(e, _)| e)),
    }
}

pub fn refund<A: Adapter>(
    host: &dyn HostOps,
    call: CallContext,
    config: Vec<ConfigEntry>,
    request: RefundRequest,
    exchanges: Vec<Exchange>,
) -> RefundStep {
    match run(host, call, config, exchanges, |ctx| {
        A::refund(ctx, &request)
    }) {
        Outcome::Send(r) => RefundStep::Send(r),
        Outcome::Done(r) => RefundStep::Done(r.map_err(|(e, _)| e)),
    }
}

pub fn payout<A: Adapter>(
    host: &dyn HostOps,
    call: CallContext,
    config: Vec<ConfigEntry>,
    request: PayoutRequest,
    exchanges: Vec<Exchange>,
) -> PayoutStep {
    match run(host, call, config, exchanges, |ctx| {
        A::payout(ctx, &request)
    }) {
        Outcome::Send(r) => PayoutStep::Send(r),
        Outcome::Done(r) => PayoutStep::Done(r.map_err(|(e, _)| e)),
    }
}

pub fn payout_query<A: Adapter>(
    host: &dyn HostOps,
    call: CallContext,
    config: Vec<ConfigEntry>,
    request: PayoutQueryRequest,
    exchanges: Vec<Exchange>,
) -> PayoutQueryStep {
    match run(host, call, config, exchanges, |ctx| {
        A::payout_query(ctx, &request)
    }) {
        Outcome::Send(r) => PayoutQueryStep::Send(r),
        Outcome::Done(r) => PayoutQueryStep::Done(r.map_err(|(e, _)| e)),
    }
}

pub fn contract_sign<A: Adapter>(
    host: &dyn HostOps,
    call: CallContext,
    config: Vec<ConfigEntry>,
    request: ContractSignRequest,
    exchanges: Vec<Exchange>,
) -> ContractSignStep {
    match run(host, call, config, exchanges, |ctx| {
        A::contract_sign(ctx, &request)
    }) {
        Outcome::Send(r) => ContractSignStep::Send(r),
        Outcome::Done(r) => ContractSignStep::Done(r.map_err(|(e, _)| e)),
    }
}

pub fn contract_query<A: Adapter>(
    host: &dyn HostOps,
    call: CallContext,
    config: Vec<ConfigEntry>,
    request: ContractQueryRequest,
    exchanges: Vec<Exchange>,
) -> ContractStep {
    match run(host, call, config, exchanges, |ctx| {
        A::contract_query(ctx, &request)
    }) {
        Outcome::Send(r) => ContractStep::Send(r),
        Outcome::Done(r) => ContractStep::Done(r.map_err(|(e, _)| e)),
    }
}

pub fn contract_terminate<A: Adapter>(
    host: &dyn HostOps,
    call: CallContext,
    config: Vec<ConfigEntry>,
    request: ContractTerminateRequest,
    exchanges: Vec<Exchange>,
) -> ContractStep {
    match run(host, call, config, exchanges, |ctx| {
        A::contract_terminate(ctx, &request)
    }) {
        Outcome::Send(r) => ContractStep::Send(r),
        Outcome::Done(r) => ContractStep::Done(r.map_err(|(e, _)| e)),
    }
}

pub fn deduct<A: Adapter>(
    host: &dyn HostOps,
    call: CallContext,
    config: Vec<ConfigEntry>,
    request: DeductionRequest,
    exchanges: Vec<Exchange>,
) -> DeductionStep {
    match run(host, call, config, exchanges, |ctx| {
        A::deduct(ctx, &request)
    }) {
        Outcome::Send(r) => DeductionStep::Send(r),
        Outcome::Done(r) => DeductionStep::Done(r.map_err(|(e, _)| e)),
    }
}

pub fn deduction_query<A: Adapter>(
    host: &dyn HostOps,
    call: CallContext,
    config: Vec<ConfigEntry>,
    request: DeductionQueryRequest,
    exchanges: Vec<Exchange>,
) -> DeductionStep {
    match run(host, call, config, exchanges, |ctx| {
        A::deduction_query(ctx, &request)
    }) {
        Outcome::Send(r) => DeductionStep::Send(r),
        Outcome::Done(r) => DeductionStep::Done(r.map_err(|(e, _)| e)),
    }
}

pub fn parse_notify<A: Adapter>(
    host: &dyn HostOps,
    call: CallContext,
    config: Vec<ConfigEntry>,
    request: InboundHttp,
    exchanges: Vec<Exchange>,
) -> NotifyStep {
    match run(host, call, config, exchanges, |ctx| {
        A::parse_notify(ctx, &request)
    }) {
        Outcome::Send(r) => NotifyStep::Send(r),
        Outcome::Done(r) => {
            NotifyStep::Done(r.map_err(|(error, ack)| NotifyFailure { error, ack }))
        }
    }
}
