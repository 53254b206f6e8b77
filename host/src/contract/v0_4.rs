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
use super::bridge::{record_into, shared_types, since_0_2_types};

pub const CONTRACT_VERSION: &str = "0.4.0";

shared_types!(old, current);
since_0_2_types!(old, current);

record_into!(
    old::FieldRule,
    current::FieldRule {
        field,
        min_length,
        max_length,
        allowed,
        required_for
    }
);
record_into!(
    old::AdapterInfo,
    current::AdapterInfo {
        name,
        version,
        contract_version,
        methods,
        currencies,
        capabilities,
        egress_hosts,
        config_schema,
        field_rules
    }
);

mod imports {
    use super::{log, old, secrets};
    use crate::contract::bridge::forward_imports;
    forward_imports!(old, secrets, log);
}
