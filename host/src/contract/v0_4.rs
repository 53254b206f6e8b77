//! Contract 0.4.0, still served: bindings of `wit/compat/0.4.0/adapter.wit`
//! and the translation between its types and the current contract's.
//!
//! A 0.4 component imports `secrets@0.4.0` and `log@0.4.0` (answered by the
//! current implementations) and exports the six operations of 0.4. It has
//! no payouts: its capabilities read `payouts` and `payout-notifications`
//! false and the runtime answers `payout` and `payout-query` `unsupported`
//! itself. Every other type maps field for field ([`super::bridge`]).

use super as current;

wasmtime::component::bindgen!({
    world: "adapter",
    path: "../wit/compat/0.4.0",
});

use self::payhost::adapter::{log, secrets, types as old};
use super::bridge::{
    capabilities_0_2_to_0_4, events_before_0_5, info_since_0_4, shared_types, since_0_2_types,
};

pub const CONTRACT_VERSION: &str = "0.4.0";

shared_types!(old, current);
events_before_0_5!(old, current);
since_0_2_types!(old, current);
capabilities_0_2_to_0_4!(old, current);

info_since_0_4!(old, current);

mod imports {
    use super::{log, old, secrets};
    use crate::contract::bridge::forward_imports;
    forward_imports!(old, secrets, log);
}
