//! # payhost: the host of payment adapters
//!
//! - [`contract`]: the adapter contract (`wit/adapter.wit`) as Rust types;
//! - [`runtime`]: the wasmtime engine, compiled-component cache, per-step
//!   stores with memory cap and deadline, and the I/O loop;
//! - [`egress`]: how adapter requests leave the host (allow-lists, address
//!   checks, time-out, size cap, masked logging);
//! - [`merchant`]: merchant configuration and its validation against an
//!   adapter's schema; secrets stay in `secrecy` wrappers;
//! - [`secrets`]: the `secrets` and `log` imports adapters call;
//! - [`error`]: [`LoadError`] and [`CallError`];
//! - [`builder`]: compiling adapter crates into components;
//! - [`cli`]: the `payhost` command line.

// The one exception is the deserialization of cached compiled code.
#![deny(unsafe_code)]

pub mod adapter_sync;
pub mod api;
pub mod builder;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conformance;
pub mod contract;
pub mod contracts;
pub mod delivery;
pub mod demo;
pub mod egress;
pub mod error;
pub mod flows;
pub mod limits;
pub mod logging;
pub mod merchant;
pub mod metrics;
pub mod notify_guard;
pub mod orders;
pub mod payouts;
pub mod provider_health;
pub mod reconciler;
pub mod recording;
pub mod registry;
pub mod request_log;
pub mod resources;
pub mod retention;
pub mod runtime;
pub mod scaffold;
pub mod secrets;
pub mod server;
pub mod simulator;
pub mod store;
pub mod watch;
pub mod webhooks;

pub use error::{CallError, LoadError};
pub use merchant::{FieldValue, MerchantConfig};
pub use runtime::{LoadedAdapter, Operation, Output, Runtime, RuntimeConfig};
