//! Contract 0.3.0, still served: bindings of `wit/compat/0.3.0/adapter.wit`
//! and the translation between its types and the current contract's.
//!
//! A 0.3 component imports `secrets@0.3.0` and `log@0.3.0` (answered by the
//! current implementations) and exports the same six operations as today.
//! Only `field-rule` differs: 0.3 cannot say a method needs a field, so a
//! 0.3 adapter's rules require nothing and it refuses a missing field
//! itself, as before. Every other type maps field for field
//! ([`super::bridge`]).

use super as current;

wasmtime::component::bindgen!({
    world: "adapter",
    path: "../wit/compat/0.3.0",
});

use self::payhost::adapter::{log, secrets, types as old};
use super::bridge::{
    Bridge, capabilities_0_2_to_0_4, events_before_0_5, shared_types, since_0_2_types,
};

pub const CONTRACT_VERSION: &str = "0.3.0";

shared_types!(old, current);
events_before_0_5!(old, current);
since_0_2_types!(old, current);
capabilities_0_2_to_0_4!(old, current);

impl Bridge<current::FieldRule> for old::FieldRule {
    fn bridge(self) -> current::FieldRule {
        current::FieldRule {
            field: self.field,
            min_length: self.min_length,
            max_length: self.max_length,
            allowed: self.allowed,
            required_for: Vec::new(),
        }
    }
}

impl Bridge<current::AdapterInfo> for old::AdapterInfo {
    fn bridge(self) -> current::AdapterInfo {
        current::AdapterInfo {
            name: self.name,
            version: self.version,
            contract_version: self.contract_version,
            methods: self.methods,
            currencies: self.currencies,
            capabilities: self.capabilities.bridge(),
            egress_hosts: self.egress_hosts,
            config_schema: self.config_schema.bridge(),
            field_rules: self.field_rules.bridge(),
        }
    }
}

mod imports {
    use super::{log, old, secrets};
    use crate::contract::bridge::forward_imports;
    forward_imports!(old, secrets, log);
}
