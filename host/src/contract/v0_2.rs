//! Contract 0.2.0, still served: bindings of `wit/compat/0.2.0/adapter.wit`
//! and the translation between its types and the current contract's.
//!
//! A 0.2 component imports `secrets@0.2.0` and `log@0.2.0` (answered by the
//! current implementations) and exports the same six operations as today.
//! Only `adapter-info` differs: a 0.2 adapter lists no currencies, so the
//! host takes the merchant's configured currency on trust, as it did before
//! 0.3. Every other type maps field for field ([`super::bridge`]).

use super as current;

wasmtime::component::bindgen!({
    world: "adapter",
    path: "../wit/compat/0.2.0",
});

use self::payhost::adapter::{log, secrets, types as old};
use super::bridge::{
    adapter_info_without_currencies, capabilities_0_2_to_0_4, events_before_0_5, shared_types,
    since_0_2_types,
};

pub const CONTRACT_VERSION: &str = "0.2.0";

shared_types!(old, current);
events_before_0_5!(old, current);
since_0_2_types!(old, current);
capabilities_0_2_to_0_4!(old, current);

adapter_info_without_currencies!(old, current);

mod imports {
    use super::{log, old, secrets};
    use crate::contract::bridge::forward_imports;
    forward_imports!(old, secrets, log);
}
