//! Contract 0.1.0, still served: bindings of `wit/compat/0.1.0/adapter.wit`
//! and the translation between its types and the current contract's.
//!
//! A 0.1 component imports `secrets@0.1.0` and `log@0.1.0` (answered by the
//! current implementations) and exports the four operations of 0.1. Its
//! `describe` is read as capabilities without `close` and `refund-query`;
//! the runtime answers those two operations `unsupported` itself. The two
//! contracts differ only in what 0.2 added, so every shared type maps field
//! for field; the compiler checks each mapping below.

use super as current;

wasmtime::component::bindgen!({
    world: "adapter",
    path: "../wit/compat/0.1.0",
});

use self::payhost::adapter::{log, secrets, types as old};

pub const CONTRACT_VERSION: &str = "0.1.0";

/// Conversion between the two contracts' copies of a type.
pub trait Bridge<T> {
    fn bridge(self) -> T;
}

macro_rules! same {
    ($($t:ty),*) => {$(
        impl Bridge<$t> for $t {
            fn bridge(self) -> $t { self }
        }
    )*};
}
same!(String, bool, u8, u16, u32, u64, i64);

impl<A: Bridge<B>, B> Bridge<Vec<B>> for Vec<A> {
    fn bridge(self) -> Vec<B> {
        self.into_iter().map(Bridge::bridge).collect()
    }
}

impl<A: Bridge<B>, B> Bridge<Option<B>> for Option<A> {
    fn bridge(self) -> Option<B> {
        self.map(Bridge::bridge)
    }
}

impl<A: Bridge<B>, B, E: Bridge<F>, F> Bridge<Result<B, F>> for Result<A, E> {
    fn bridge(self) -> Result<B, F> {
        self.map(Bridge::bridge).map_err(Bridge::bridge)
    }
}

impl<A1: Bridge<B1>, B1, A2: Bridge<B2>, B2> Bridge<(B1, B2)> for (A1, A2) {
    fn bridge(self) -> (B1, B2) {
        (self.0.bridge(), self.1.bridge())
    }
}

/// Both directions for a record whose fields are the same in both.
macro_rules! record {
    ($a:path, $b:path { $($f:ident),* }) => {
        impl Bridge<$b> for $a {
            fn bridge(self) -> $b { type B = $b; B { $($f: self.$f.bridge()),* } }
        }
        impl Bridge<$a> for $b {
            fn bridge(self) -> $a { type A = $a; A { $($f: self.$f.bridge()),* } }
        }
    };
}

/// Both directions for a variant or enum with the same cases in both;
/// `case(x)` carries a payload (bound as `x`), `case` does not.
macro_rules! cases {
    ($a:path, $b:path { $($c:ident $(($p:ident))?),* }) => {
        impl Bridge<$b> for $a {
            fn bridge(self) -> $b {
                type A = $a;
                type B = $b;
                match self { $(A::$c $(($p))? => B::$c $(($p.bridge()))?),* }
            }
        }
        impl Bridge<$a> for $b {
            fn bridge(self) -> $a {
                type A = $a;
                type B = $b;
                match self { $(B::$c $(($p))? => A::$c $(($p.bridge()))?),* }
            }
        }
    };
}

record!(old::Money, current::Money { minor, currency });
record!(
    old::CallContext,
    current::CallContext {
        request_id,
        timestamp,
        seed,
        notify_url
    }
);
record!(old::ConfigEntry, current::ConfigEntry { name, value });
cases!(old::ConfigValue, current::ConfigValue { Text(x), Secret(x) });
cases!(
    old::HttpMethod,
    current::HttpMethod {
        Get,
        Post,
        Put,
        Patch,
        Delete
    }
);
record!(
    old::HttpRequest,
    current::HttpRequest {
        method,
        url,
        headers,
        body,
        client_identity
    }
);
record!(
    old::HttpResponse,
    current::HttpResponse {
        status,
        headers,
        body
    }
);
record!(old::Exchange, current::Exchange { request, response });
cases!(old::FieldKind, current::FieldKind { Text, Secret, Url });
record!(
    old::ConfigField,
    current::ConfigField {
        name,
        description,
        kind,
        required,
        default
    }
);
record!(
    old::AdapterInfo,
    current::AdapterInfo {
        name,
        version,
        contract_version,
        methods,
        capabilities,
        egress_hosts,
        config_schema
    }
);
record!(
    old::Payer,
    current::Payer {
        app_id,
        openid,
        client_ip
    }
);
record!(
    old::OrderRequest,
    current::OrderRequest {
        merchant_order_no,
        amount,
        description,
        method,
        payer,
        expires_at,
        attach
    }
);
record!(
    old::MiniProgramParams,
    current::MiniProgramParams {
        app_id,
        time_stamp,
        nonce_str,
        package,
        sign_type,
        pay_sign
    }
);
cases!(old::PayAction, current::PayAction { MiniProgram(x), Redirect(x), QrCode(x) });
record!(
    old::OrderRef,
    current::OrderRef {
        merchant_order_no,
        provider_trade_no,
        channel_transaction_id
    }
);
record!(old::OrderCreated, current::OrderCreated { order, action });
cases!(
    old::TradeState,
    current::TradeState {
        Pending,
        Paid,
        Refunded,
        Closed,
        Failed
    }
);
record!(
    old::TradeStatus,
    current::TradeStatus {
        order,
        state,
        provider_state,
        amount,
        paid_at,
        payer_id
    }
);
record!(old::QueryRequest, current::QueryRequest { order });
record!(
    old::RefundRequest,
    current::RefundRequest {
        order,
        refund_no,
        amount,
        order_amount,
        reason
    }
);
cases!(
    old::RefundState,
    current::RefundState {
        Pending,
        Succeeded,
        Failed
    }
);
record!(
    old::RefundStatus,
    current::RefundStatus {
        order,
        refund_no,
        provider_refund_id,
        state,
        provider_state,
        amount
    }
);
record!(
    old::InboundHttp,
    current::InboundHttp {
        method,
        path,
        query,
        headers,
        body
    }
);
cases!(old::NotifyEvent, current::NotifyEvent { Payment(x), Refund(x) });
record!(old::NotifyOutcome, current::NotifyOutcome { events, ack });
record!(
    old::ProviderRejection,
    current::ProviderRejection {
        code,
        message,
        retryable
    }
);
cases!(old::AdapterError, current::AdapterError {
    InvalidConfig(x), InvalidRequest(x), Unsupported(x), ProviderRejected(x),
    MalformedResponse(x), BadSignature(x), Nondeterministic(x)
});
record!(old::NotifyFailure, current::NotifyFailure { error, ack });
cases!(old::OrderStep, current::OrderStep { Send(x), Done(x) });
cases!(old::QueryStep, current::QueryStep { Send(x), Done(x) });
cases!(old::RefundStep, current::RefundStep { Send(x), Done(x) });
cases!(old::NotifyStep, current::NotifyStep { Send(x), Done(x) });

/// 0.1 has no `close` or `refund-query`: a 0.1 adapter has neither.
impl Bridge<current::Capabilities> for old::Capabilities {
    fn bridge(self) -> current::Capabilities {
        current::Capabilities {
            payment_notifications: self.payment_notifications,
            refund_notifications: self.refund_notifications,
            partial_refunds: self.partial_refunds,
            query_by_merchant_order_no: self.query_by_merchant_order_no,
            close: false,
            refund_query: false,
        }
    }
}

impl Bridge<old::Capabilities> for current::Capabilities {
    fn bridge(self) -> old::Capabilities {
        old::Capabilities {
            payment_notifications: self.payment_notifications,
            refund_notifications: self.refund_notifications,
            partial_refunds: self.partial_refunds,
            query_by_merchant_order_no: self.query_by_merchant_order_no,
        }
    }
}

// The imports of 0.1, answered by the current implementations.

mod imports {
    use super::*;
    use crate::contract::payhost::adapter::{log as log2, secrets as secrets2};
    use crate::runtime::StepState;

    cases!(
        secrets::DigestAlgorithm,
        current::DigestAlgorithm {
            Md5,
            Sha1,
            Sha256,
            Sha512
        }
    );
    cases!(
        secrets::KeyEncoding,
        current::KeyEncoding { Raw, Hex, Base64 }
    );
    cases!(secrets::Part, current::Part { Text(x), Bytes(x), Secret(x) });
    cases!(secrets::SecretError, current::SecretError { UnknownHandle(x), UnusableKey(x), InvalidInput(x) });
    cases!(
        log::Level,
        current::Level {
            Trace,
            Debug,
            Info,
            Warn,
            Error
        }
    );

    impl old::Host for StepState {}

    impl secrets::Host for StepState {
        fn digest(
            &mut self,
            algorithm: secrets::DigestAlgorithm,
            parts: Vec<secrets::Part>,
        ) -> Result<Vec<u8>, secrets::SecretError> {
            secrets2::Host::digest(self, algorithm.bridge(), parts.bridge()).bridge()
        }

        fn hmac(
            &mut self,
            algorithm: secrets::DigestAlgorithm,
            key: u32,
            encoding: secrets::KeyEncoding,
            message: Vec<secrets::Part>,
        ) -> Result<Vec<u8>, secrets::SecretError> {
            secrets2::Host::hmac(
                self,
                algorithm.bridge(),
                key,
                encoding.bridge(),
                message.bridge(),
            )
            .bridge()
        }

        fn rsa_sha256_sign(
            &mut self,
            key: u32,
            message: Vec<u8>,
        ) -> Result<Vec<u8>, secrets::SecretError> {
            secrets2::Host::rsa_sha256_sign(self, key, message).bridge()
        }

        fn rsa_sha256_verify(
            &mut self,
            public_key_pem: String,
            message: Vec<u8>,
            signature: Vec<u8>,
        ) -> Result<bool, secrets::SecretError> {
            secrets2::Host::rsa_sha256_verify(self, public_key_pem, message, signature).bridge()
        }

        fn aes_256_gcm_decrypt(
            &mut self,
            key: u32,
            nonce: Vec<u8>,
            associated_data: Vec<u8>,
            ciphertext: Vec<u8>,
        ) -> Result<Vec<u8>, secrets::SecretError> {
            secrets2::Host::aes_256_gcm_decrypt(self, key, nonce, associated_data, ciphertext)
                .bridge()
        }

        fn aes_256_ecb_decrypt_md5_key(
            &mut self,
            key: u32,
            ciphertext: Vec<u8>,
        ) -> Result<Vec<u8>, secrets::SecretError> {
            secrets2::Host::aes_256_ecb_decrypt_md5_key(self, key, ciphertext).bridge()
        }
    }

    impl log::Host for StepState {
        fn log(&mut self, level: log::Level, message: String) {
            log2::Host::log(self, level.bridge(), message)
        }
    }
}
