//! Host-side bindings of the adapter contract (`wit/adapter.wit`).
//!
//! The generated types derive serde so the CLI can read requests and print
//! results as JSON, and `PartialEq` so tests can compare them.

wasmtime::component::bindgen!({
    world: "adapter",
    path: "../wit",
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

pub use self::payhost::adapter::log::Level;
pub use self::payhost::adapter::secrets::{DigestAlgorithm, KeyEncoding, Part, SecretError};
pub use self::payhost::adapter::types::*;

/// The contract version this host implements.
pub const CONTRACT_VERSION: &str = "0.1.0";
