//! # payhost-sdk: write a payment adapter for payhost
//!
//! An adapter is one Rust crate that implements [`Adapter`] and calls
//! [`export_adapter!`]. `payhost adapter build` compiles it to a sandboxed
//! WebAssembly component; the host loads it at run time.
//!
//! ```ignore
//! use payhost_sdk::prelude::*;
//!
//! struct MyProvider;
//!
//! impl Adapter for MyProvider {
//!     fn describe() -> AdapterInfo { /* name, methods, config schema ... */ }
//!     fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
//!         let body = /* build the provider's request */;
//!         let resp = ctx.send(http::post(url, "application/json", body))?;
//!         /* read the provider's answer */
//!     }
//!     // query, refund, parse_notify ...
//! }
//!
//! payhost_sdk::export_adapter!(MyProvider);
//! ```
//!
//! How the pieces fit:
//!
//! - [`Ctx`] is everything an operation may use: the call context (time,
//!   seeded nonces, notify URL), the merchant configuration ([`Config`]),
//!   I/O through [`Ctx::send`], and the host's secret operations.
//! - `ctx.send(req)?` looks like a blocking HTTP call. Under the hood the
//!   operation runs as steps: the first time, `send` ends the step and the
//!   host performs the request; in the next step the SDK replays the
//!   recorded answer. A replayed request that differs from the recorded one
//!   is reported as `nondeterministic`.
//! - Helpers for what providers have in common live here once:
//!   [`canonical`] (sorted `k=v&...` strings), [`xml`], [`form`], [`json`],
//!   [`money`], [`time`], [`http`], hex/base64 in [`encoding`].
//! - With the `testing` feature, [`testing::Harness`] runs the same adapter
//!   natively with scripted provider answers and in-memory secrets.

#![forbid(unsafe_code)]

pub mod bindings;
pub mod canonical;
mod config;
mod ctx;
pub mod encoding;
mod error;
pub mod field;
pub mod form;
#[doc(hidden)]
pub mod glue;
mod host;
pub mod http;
pub mod json;
pub mod money;
#[cfg(feature = "native")]
pub mod native;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod xml;

pub use config::Config;
pub use ctx::Ctx;
pub use error::{Error, FormatError, Result};
pub use host::HostOps;

/// The contract's data types (generated from `wit/adapter.wit`).
pub mod types {
    pub use crate::bindings::payhost::adapter::log::Level;
    pub use crate::bindings::payhost::adapter::secrets::{
        DigestAlgorithm, KeyEncoding, Part, SecretError,
    };
    pub use crate::bindings::payhost::adapter::types::*;
}

/// The version of the contract this SDK implements; put it in
/// `AdapterInfo::contract_version`.
pub const CONTRACT_VERSION: &str = "0.6.0";

/// What an adapter implements: the provider's side of the contract's operations.
///
/// Each function receives a fresh [`Ctx`]; it may call [`Ctx::send`] any
/// number of times (within the host's step limit) and must be deterministic
/// given the context, configuration, request and the answers it receives.
pub trait Adapter {
    /// Self-description: name, version, methods, capabilities, egress
    /// hosts and the merchant configuration schema.
    fn describe() -> types::AdapterInfo;

    /// Create the order at the provider and say what the payer must do.
    fn unified_order(ctx: &mut Ctx, request: &types::OrderRequest) -> Result<types::OrderCreated>;

    /// The order's current state at the provider.
    fn query(ctx: &mut Ctx, request: &types::QueryRequest) -> Result<types::TradeStatus>;

    /// Close an unpaid order at the provider so it can no longer be paid.
    /// Answer `closed`, or, when the payer paid first, the paid status
    /// (query in the same operation). Set `capabilities.close` when
    /// implemented; the default answers `unsupported`.
    fn close(_ctx: &mut Ctx, _request: &types::CloseRequest) -> Result<types::TradeStatus> {
        Err(Error::unsupported("this adapter cannot close orders"))
    }

    /// Refund (part of) a paid order.
    fn refund(ctx: &mut Ctx, request: &types::RefundRequest) -> Result<types::RefundStatus>;

    /// One refund's state at the provider. Set `capabilities.refund_query`
    /// when implemented; the default answers `unsupported`.
    fn refund_query(
        _ctx: &mut Ctx,
        _request: &types::RefundQueryRequest,
    ) -> Result<types::RefundStatus> {
        Err(Error::unsupported("this adapter cannot query refunds"))
    }

    /// Pay money to a user's wallet (contract 0.5). Set
    /// `capabilities.payouts` when implemented; the default answers
    /// `unsupported`, so adapters without payouts need nothing.
    fn payout(_ctx: &mut Ctx, _request: &types::PayoutRequest) -> Result<types::PayoutStatus> {
        Err(Error::unsupported("this adapter cannot pay out"))
    }

    /// One payout's state at the provider (contract 0.5); the default
    /// answers `unsupported`.
    fn payout_query(
        _ctx: &mut Ctx,
        _request: &types::PayoutQueryRequest,
    ) -> Result<types::PayoutStatus> {
        Err(Error::unsupported("this adapter cannot query payouts"))
    }

    /// What the payer must do to sign an auto-debit contract (contract 0.6).
    /// Set `capabilities.contracts` when the five contract operations are
    /// implemented; every default answers `unsupported`.
    fn contract_sign(
        _ctx: &mut Ctx,
        _request: &types::ContractSignRequest,
    ) -> Result<types::ContractSigning> {
        Err(Error::unsupported("this adapter cannot sign contracts"))
    }

    /// A contract's state at the provider (contract 0.6).
    fn contract_query(
        _ctx: &mut Ctx,
        _request: &types::ContractQueryRequest,
    ) -> Result<types::ContractStatus> {
        Err(Error::unsupported("this adapter cannot query contracts"))
    }

    /// The merchant ends a contract (contract 0.6).
    fn contract_terminate(
        _ctx: &mut Ctx,
        _request: &types::ContractTerminateRequest,
    ) -> Result<types::ContractStatus> {
        Err(Error::unsupported(
            "this adapter cannot terminate contracts",
        ))
    }

    /// Charge an active contract (contract 0.6).
    fn deduct(
        _ctx: &mut Ctx,
        _request: &types::DeductionRequest,
    ) -> Result<types::DeductionStatus> {
        Err(Error::unsupported("this adapter cannot deduct"))
    }

    /// A deduction's state at the provider (contract 0.6).
    fn deduction_query(
        _ctx: &mut Ctx,
        _request: &types::DeductionQueryRequest,
    ) -> Result<types::DeductionStatus> {
        Err(Error::unsupported("this adapter cannot query deductions"))
    }

    /// Verify a notification and turn it into events plus the exact answer
    /// the provider expects. Attach an answer to an error with
    /// [`Error::with_ack`] when the provider needs one even on failure.
    fn parse_notify(ctx: &mut Ctx, request: &types::InboundHttp) -> Result<types::NotifyOutcome>;
}

/// Everything an adapter module usually needs.
pub mod prelude {
    pub use crate::types::*;
    pub use crate::{Adapter, CONTRACT_VERSION, Config, Ctx, Error, Result};
    pub use crate::{canonical, encoding, field, form, http, json, money, time, xml};
}

/// Exports an [`Adapter`] implementation as the component's `adapter`
/// world. Call it once, at the crate root.
#[macro_export]
macro_rules! export_adapter {
    ($adapter:ty) => {
        #[doc(hidden)]
        pub struct __PayhostAdapterExport;

        impl $crate::bindings::Guest for __PayhostAdapterExport {
            fn describe() -> $crate::types::AdapterInfo {
                <$adapter as $crate::Adapter>::describe()
            }
            fn unified_order(
                ctx: $crate::types::CallContext,
                config: ::std::vec::Vec<$crate::types::ConfigEntry>,
                request: $crate::types::OrderRequest,
                exchanges: ::std::vec::Vec<$crate::types::Exchange>,
            ) -> $crate::types::OrderStep {
                $crate::glue::unified_order::<$adapter>(&$crate::glue::Imports, ctx, config, request, exchanges)
            }
            fn query(
                ctx: $crate::types::CallContext,
                config: ::std::vec::Vec<$crate::types::ConfigEntry>,
                request: $crate::types::QueryRequest,
                exchanges: ::std::vec::Vec<$crate::types::Exchange>,
            ) -> $crate::types::QueryStep {
                $crate::glue::query::<$adapter>(&$crate::glue::Imports, ctx, config, request, exchanges)
            }
            fn close(
                ctx: $crate::types::CallContext,
                config: ::std::vec::Vec<$crate::types::ConfigEntry>,
                request: $crate::types::CloseRequest,
                exchanges: ::std::vec::Vec<$crate::types::Exchange>,
            ) -> $crate::types::CloseStep {
                $crate::glue::close::<$adapter>(&$crate::glue::Imports, ctx, config, request, exchanges)
            }
            fn refund_query(
                ctx: $crate::types::CallContext,
                config: ::std::vec::Vec<$crate::types::ConfigEntry>,
                request: $crate::types::RefundQueryRequest,
                exchanges: ::std::vec::Vec<$crate::types::Exchange>,
            ) -> $crate::types::RefundQueryStep {
                $crate::glue::refund_query::<$adapter>(&$crate::glue::Imports, ctx, config, request, exchanges)
            }
            fn refund(
                ctx: $crate::types::CallContext,
                config: ::std::vec::Vec<$crate::types::ConfigEntry>,
                request: $crate::types::RefundRequest,
                exchanges: ::std::vec::Vec<$crate::types::Exchange>,
            ) -> $crate::types::RefundStep {
                $crate::glue::refund::<$adapter>(&$crate::glue::Imports, ctx, config, request, exchanges)
            }
            fn payout(
                ctx: $crate::types::CallContext,
                config: ::std::vec::Vec<$crate::types::ConfigEntry>,
                request: $crate::types::PayoutRequest,
                exchanges: ::std::vec::Vec<$crate::types::Exchange>,
            ) -> $crate::types::PayoutStep {
                $crate::glue::payout::<$adapter>(&$crate::glue::Imports, ctx, config, request, exchanges)
            }
            fn payout_query(
                ctx: $crate::types::CallContext,
                config: ::std::vec::Vec<$crate::types::ConfigEntry>,
                request: $crate::types::PayoutQueryRequest,
                exchanges: ::std::vec::Vec<$crate::types::Exchange>,
            ) -> $crate::types::PayoutQueryStep {
                $crate::glue::payout_query::<$adapter>(&$crate::glue::Imports, ctx, config, request, exchanges)
            }
            fn contract_sign(
                ctx: $crate::types::CallContext,
                config: ::std::vec::Vec<$crate::types::ConfigEntry>,
                request: $crate::types::ContractSignRequest,
                exchanges: ::std::vec::Vec<$crate::types::Exchange>,
            ) -> $crate::types::ContractSignStep {
                $crate::glue::contract_sign::<$adapter>(&$crate::glue::Imports, ctx, config, request, exchanges)
            }
            fn contract_query(
                ctx: $crate::types::CallContext,
                config: ::std::vec::Vec<$crate::types::ConfigEntry>,
                request: $crate::types::ContractQueryRequest,
                exchanges: ::std::vec::Vec<$crate::types::Exchange>,
            ) -> $crate::types::ContractStep {
                $crate::glue::contract_query::<$adapter>(&$crate::glue::Imports, ctx, config, request, exchanges)
            }
            fn contract_terminate(
                ctx: $crate::types::CallContext,
                config: ::std::vec::Vec<$crate::types::ConfigEntry>,
                request: $crate::types::ContractTerminateRequest,
                exchanges: ::std::vec::Vec<$crate::types::Exchange>,
            ) -> $crate::types::ContractStep {
                $crate::glue::contract_terminate::<$adapter>(&$crate::glue::Imports, ctx, config, request, exchanges)
            }
            fn deduct(
                ctx: $crate::types::CallContext,
                config: ::std::vec::Vec<$crate::types::ConfigEntry>,
                request: $crate::types::DeductionRequest,
                exchanges: ::std::vec::Vec<$crate::types::Exchange>,
            ) -> $crate::types::DeductionStep {
                $crate::glue::deduct::<$adapter>(&$crate::glue::Imports, ctx, config, request, exchanges)
            }
            fn deduction_query(
                ctx: $crate::types::CallContext,
                config: ::std::vec::Vec<$crate::types::ConfigEntry>,
                request: $crate::types::DeductionQueryRequest,
                exchanges: ::std::vec::Vec<$crate::types::Exchange>,
            ) -> $crate::types::DeductionStep {
                $crate::glue::deduction_query::<$adapter>(&$crate::glue::Imports, ctx, config, request, exchanges)
            }
            fn parse_notify(
                ctx: $crate::types::CallContext,
                config: ::std::vec::Vec<$crate::types::ConfigEntry>,
                request: $crate::types::InboundHttp,
                exchanges: ::std::vec::Vec<$crate::types::Exchange>,
            ) -> $crate::types::NotifyStep {
                $crate::glue::parse_notify::<$adapter>(&$crate::glue::Imports, ctx, config, request, exchanges)
            }
        }

        // Only a component exports the world: natively, the export symbols
        // (`close`, ...) would shadow the C library's functions of the same
        // name in test binaries.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_adapter_world!(__PayhostAdapterExport with_types_in $crate::bindings);
    };
}
