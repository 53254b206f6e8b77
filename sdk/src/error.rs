//! The error an adapter returns, and the SDK's own control flow.

use crate::types::{AdapterError, HttpRequest, HttpResponse, ProviderRejection};

/// Result of every adapter operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an operation did not finish: a contract [`AdapterError`] (with an
/// optional answer for the provider, for notifications), or -- inside the
/// SDK only -- "suspend this step and send a request".
///
/// Adapters build errors with the constructors below and propagate
/// [`Ctx::send`](crate::Ctx::send)'s result with `?`, which carries the
/// suspension up unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Error(pub(crate) Inner);

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Inner {
    Adapter {
        error: AdapterError,
        ack: Option<HttpResponse>,
    },
    Suspend(HttpRequest),
}

impl Error {
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        AdapterError::InvalidConfig(msg.into()).into()
    }
    pub fn invalid_request(msg: impl Into<String>) -> Self {
        AdapterError::InvalidRequest(msg.into()).into()
    }
    pub fn unsupported(msg: impl Into<String>) -> Self {
        AdapterError::Unsupported(msg.into()).into()
    }
    pub fn malformed(msg: impl Into<String>) -> Self {
        AdapterError::MalformedResponse(msg.into()).into()
    }
    pub fn bad_signature(msg: impl Into<String>) -> Self {
        AdapterError::BadSignature(msg.into()).into()
    }
    pub fn rejected(code: impl Into<String>, message: impl Into<String>, retryable: bool) -> Self {
        AdapterError::ProviderRejected(ProviderRejection {
            code: code.into(),
            message: message.into(),
            retryable,
        })
        .into()
    }
    pub(crate) fn nondeterministic(msg: impl Into<String>) -> Self {
        AdapterError::Nondeterministic(msg.into()).into()
    }
    pub(crate) fn suspend(req: HttpRequest) -> Self {
        Error(Inner::Suspend(req))
    }

    /// Attaches the answer the provider should get although the
    /// notification was not accepted (e.g. WeChat's `FAIL` XML). Has no
    /// effect on a suspension.
    pub fn with_ack(self, ack: HttpResponse) -> Self {
        match self.0 {
            Inner::Adapter { error, .. } => Error(Inner::Adapter {
                error,
                ack: Some(ack),
            }),
            suspend => Error(suspend),
        }
    }

    /// The contract error, or `None` for a suspension.
    pub fn adapter_error(&self) -> Option<&AdapterError> {
        match &self.0 {
            Inner::Adapter { error, .. } => Some(error),
            Inner::Suspend(_) => None,
        }
    }
}

impl From<AdapterError> for Error {
    fn from(error: AdapterError) -> Self {
        Error(Inner::Adapter { error, ack: None })
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Inner::Adapter { error, .. } => write!(f, "{error:?}"),
            Inner::Suspend(req) => write!(f, "suspended to send {:?} {}", req.method, req.url),
        }
    }
}

impl std::error::Error for Error {}

/// A wire-format problem found by an SDK helper (XML, JSON, form, money,
/// time). Converting it into [`Error`] makes it a `malformed-response`;
/// map it yourself where the input came from the merchant instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FormatError {}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Error::malformed(e.0)
    }
}

impl FormatError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        FormatError(msg.into())
    }
}
