//! Contract 0.5.0, still served: bindings of `wit/compat/0.5.0/adapter.wit`
//! and the translation between its types and the current contract's.
//!
//! A 0.5 component imports `secrets@0.5.0` and `log@0.5.0` (answered by the
//! current implementations) and exports the eight operations of 0.5,
//! payouts included. It has no auto-debit contracts: its capabilities read
//! `contracts`, `contract-notifications` and `deduction-notifications`
//! false and the runtime answers the five contract operations
//! `unsupported` itself. Every other type maps field for field
//! ([`super::bridge`]).

use super as current;

wasmtime::component::bindgen!({
    world: "adapter",
    path: "../wit/compat/0.5.0",
});

use self::payhost::adapter::{log, secrets, types as old};
use super::bridge::{
    cases, cases_into, info_since_0_4, record, record_into, shared_types, since_0_2_types,
};

pub const CONTRACT_VERSION: &str = "0.5.0";

shared_types!(old, current);
since_0_2_types!(old, current);

cases_into!(old::NotifyEvent, current::NotifyEvent { Payment(x), Refund(x), Payout(x) });

record_into!(
    old::Capabilities,
    current::Capabilities {
        payment_notifications,
        refund_notifications,
        partial_refunds,
        query_by_merchant_order_no,
        close,
        refund_query,
        payouts,
        payout_notifications;
        contracts: false,
        contract_notifications: false,
        deduction_notifications: false
    }
);
info_since_0_4!(old, current);

// Payouts, as 0.5 defined them and 0.6 kept them.
record!(
    old::Payee,
    current::Payee {
        app_id,
        openid,
        real_name
    }
);
record!(
    old::PayoutRequest,
    current::PayoutRequest {
        merchant_payout_no,
        amount,
        payee,
        remark,
        scene
    }
);
record!(
    old::PayoutRef,
    current::PayoutRef {
        merchant_payout_no,
        provider_payout_id
    }
);
record!(
    old::PayeeConfirmation,
    current::PayeeConfirmation {
        mch_id,
        app_id,
        package
    }
);
cases!(
    old::PayoutState,
    current::PayoutState {
        Accepted,
        PendingUserConfirmation(x),
        Processing,
        Succeeded,
        Failed(x),
        Cancelled
    }
);
record!(
    old::PayoutStatus,
    current::PayoutStatus {
        payout,
        state,
        provider_state,
        amount,
        payee_id,
        updated_at
    }
);
record!(
    old::PayoutQueryRequest,
    current::PayoutQueryRequest { payout }
);

mod imports {
    use super::{log, old, secrets};
    use crate::contract::bridge::forward_imports;
    forward_imports!(old, secrets, log; rsa_oaep_sha1_encrypt);
}
