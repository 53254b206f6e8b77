//! Errors of loading an adapter and of calling it.
//!
//! Messages are shown to operators and may end up in API responses, so
//! they never contain secret values: the runtime masks the merchant's
//! secrets out of anything that came from the adapter before it lands here.

use crate::contract::{AdapterError, HttpResponse};

/// Why a component could not be loaded as an adapter.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid component, or compilation failed.
    #[error("not a loadable component: {0}")]
    Compile(String),
    /// The component imports something the host does not provide.
    #[error(
        "the component imports `{0}`, which payhost does not provide (adapters may import only payhost:adapter/secrets, payhost:adapter/log and WASI 0.2 cli, clocks, filesystem types and preopens, io and random)"
    )]
    ForeignImport(String),
    /// The component does not export the `adapter` world's functions.
    #[error("the component does not implement the adapter world: {0}")]
    NotAnAdapter(String),
    /// `describe` reported a contract version this host does not speak.
    #[error(
        "the adapter was built for contract {found}, this host implements {expected} (same major.minor needed)"
    )]
    IncompatibleContract { found: String, expected: String },
    /// `describe` itself failed (trap, deadline, memory).
    #[error("describe failed: {0}")]
    Describe(Box<CallError>),
    /// The on-disk cache could not be written (loading still works without it).
    #[error("component cache: {0}")]
    Cache(String),
}

/// Why one adapter operation failed. Each is an error of that call only.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The adapter trapped (panic, abort, unreachable, ...). `message`
    /// includes the last error-level line it logged, which for an SDK
    /// adapter is the panic message.
    #[error("adapter trapped: {message}")]
    Trap { message: String },
    /// A step ran longer than the step deadline (guest code, a host call,
    /// or a WASI wait that would end past it).
    #[error("adapter exceeded its step deadline")]
    Deadline,
    /// The whole operation (all steps and requests) ran longer than the
    /// operation deadline.
    #[error("adapter operation exceeded its deadline of {limit:?}")]
    OperationDeadline { limit: std::time::Duration },
    /// Something the adapter returned or asked to send is over its size
    /// limit; `field` names it (`order_created.action.redirect`,
    /// `request.headers`, `notify.events`, ...).
    #[error("the adapter's `{field}` is over its limit of {limit} {unit}")]
    TooLarge {
        field: String,
        limit: usize,
        unit: &'static str,
    },
    /// The adapter tried to grow its memory past the configured cap.
    #[error("adapter exceeded its memory limit")]
    MemoryLimit,
    /// The adapter asked for more requests than the step limit allows.
    #[error("adapter asked for more than {0} requests in one operation")]
    StepLimit(usize),
    /// A request the adapter asked for was refused by the egress policy.
    #[error("egress to `{host}` denied: {reason}")]
    EgressDenied { host: String, reason: String },
    /// The request could not be performed (connection, TLS, time-out).
    #[error("transport error: {0}")]
    Transport(String),
    /// The provider's answer was larger than the configured cap.
    #[error("response larger than {limit} bytes")]
    ResponseTooLarge { limit: usize },
    /// The adapter did not reproduce its earlier requests on replay.
    #[error("adapter is not deterministic: {0}")]
    Nondeterministic(String),
    /// The adapter finished with a contract error (and, for notifications,
    /// the answer to give the provider).
    #[error("adapter error: {}", describe_adapter_error(error))]
    Adapter {
        error: AdapterError,
        ack: Option<HttpResponse>,
    },
    /// The merchant configuration does not fit the adapter's schema.
    #[error(transparent)]
    InvalidConfig(#[from] crate::merchant::ConfigError),
    /// The host itself failed (instance pool exhausted, task panicked).
    #[error("host error: {0}")]
    Host(String),
}

fn describe_adapter_error(e: &AdapterError) -> String {
    match e {
        AdapterError::InvalidConfig(m) => format!("invalid config: {m}"),
        AdapterError::InvalidRequest(m) => format!("invalid request: {m}"),
        AdapterError::Unsupported(m) => format!("unsupported: {m}"),
        AdapterError::ProviderRejected(r) => format!(
            "provider rejected ({}{}): {}",
            r.code,
            if r.retryable { ", retryable" } else { "" },
            r.message
        ),
        AdapterError::MalformedResponse(m) => format!("malformed provider response: {m}"),
        AdapterError::BadSignature(m) => format!("bad signature: {m}"),
        AdapterError::Nondeterministic(m) => format!("nondeterministic: {m}"),
    }
}
