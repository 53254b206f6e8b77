//! Contract 0.1.0, still served: bindings of `wit/compat/0.1.0/adapter.wit`
//! and the translation between its types and the current contract's.
//!
//! A 0.1 component imports `secrets@0.1.0` and `log@0.1.0` (answered by the
//! current implementations) and exports the four operations of 0.1. Its
//! `describe` is read as capabilities without `close` and `refund-query`;
//! the runtime answers those two operations `unsupported` itself, and it
//! lists no currencies (0.3 added them). Every other type maps field for
//! field ([`super::bridge`]).

use super as current;

wasmtime::component::bindgen!({
    world: "adapter",
    path: "../wit/compat/0.1.0",
});

use self::payhost::adapter::{log, secrets, types as old};

pub const CONTRACT_VERSION: &str = "0.1.0";

use super::bridge::{Bridge, adapter_info_without_currencies, events_before_0_5, shared_types};

shared_types!(old, current);
events_before_0_5!(old, current);

adapter_info_without_currencies!(old, current);

/// 0.1 has no `close` or `refund-query`: a 0.1 adapter has neither (nor
/// payouts, which came with 0.5, nor contracts, 0.6).
impl Bridge<current::Capabilities> for old::Capabilities {
    fn bridge(self) -> current::Capabilities {
        current::Capabilities {
            payment_notifications: self.payment_notifications,
            refund_notifications: self.refund_notifications,
            partial_refunds: self.partial_refunds,
            query_by_merchant_order_no: self.query_by_merchant_order_no,
            close: false,
            refund_query: false,
            payouts: false,
            payout_notifications: false,
            contracts: false,
            contract_notifications: false,
            deduction_notifications: false,
        }
    }
}

mod imports {
    use super::{log, old, secrets};
    use crate::contract::bridge::forward_imports;
    forward_imports!(old, secrets, log);
}
