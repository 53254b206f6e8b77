//! Host-side bindings of the adapter contract (`wit/adapter.wit`).
//!
//! The generated types derive serde so the CLI can read requests and print
//! results as JSON, and `PartialEq` so tests can compare them. Components
//! built against an older contract are served through [`v0_5`], [`v0_4`], [`v0_3`],
//! [`v0_2`] and [`v0_1`], which translate at the boundary so the rest of the host sees
//! only current types.

wasmtime::component::bindgen!({
    world: "adapter",
    path: "../wit",
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

mod bridge;
pub mod v0_1;
pub mod v0_2;
pub mod v0_3;
pub mod v0_4;
pub mod v0_5;

pub use bridge::Bridge;

pub use self::payhost::adapter::log::Level;
pub use self::payhost::adapter::secrets::{DigestAlgorithm, KeyEncoding, Part, SecretError};
pub use self::payhost::adapter::types::*;

/// The contract version this host implements.
pub const CONTRACT_VERSION: &str = "0.6.0";

/// The contract versions this host loads: the current one, 0.5, 0.4, 0.3,
/// 0.2 and 0.1.
pub const SUPPORTED_VERSIONS: [&str; 6] = [
    CONTRACT_VERSION,
    v0_5::CONTRACT_VERSION,
    v0_4::CONTRACT_VERSION,
    v0_3::CONTRACT_VERSION,
    v0_2::CONTRACT_VERSION,
    v0_1::CONTRACT_VERSION,
];

/// A component ready to instantiate, by the contract version it targets.
pub enum AnyAdapterPre<T: 'static> {
    Current(AdapterPre<T>),
    V0_5(v0_5::AdapterPre<T>),
    V0_4(v0_4::AdapterPre<T>),
    V0_3(v0_3::AdapterPre<T>),
    V0_2(v0_2::AdapterPre<T>),
    V0_1(v0_1::AdapterPre<T>),
}

impl<T: 'static> Clone for AnyAdapterPre<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Current(p) => Self::Current(p.clone()),
            Self::V0_5(p) => Self::V0_5(p.clone()),
            Self::V0_4(p) => Self::V0_4(p.clone()),
            Self::V0_3(p) => Self::V0_3(p.clone()),
            Self::V0_2(p) => Self::V0_2(p.clone()),
            Self::V0_1(p) => Self::V0_1(p.clone()),
        }
    }
}

impl<T: 'static> AnyAdapterPre<T> {
    /// The contract version the component's exports match.
    pub fn contract_version(&self) -> &'static str {
        match self {
            Self::Current(_) => CONTRACT_VERSION,
            Self::V0_5(_) => v0_5::CONTRACT_VERSION,
            Self::V0_4(_) => v0_4::CONTRACT_VERSION,
            Self::V0_3(_) => v0_3::CONTRACT_VERSION,
            Self::V0_2(_) => v0_2::CONTRACT_VERSION,
            Self::V0_1(_) => v0_1::CONTRACT_VERSION,
        }
    }
}
