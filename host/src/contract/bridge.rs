//! Translation between the current contract's types and an older
//! contract's copies of them, for the components the host still serves
//! ([`super::v0_1`] to [`super::v0_5`]). Types that match field for field
//! are bridged by macros; the compiler checks each mapping. Types that grew
//! since (what carries capabilities or notification events) are bridged
//! one way only, from the older contract: the host never hands them to an
//! adapter.

/// Conversion between two contracts' copies of a type.
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

/// From `$a` to `$b`, records whose fields `$b` has too; `$b`'s other
/// fields (`name: value`, after a `;`) are given.
macro_rules! record_into {
    ($a:path, $b:path { $($f:ident),* $(; $($g:ident: $v:expr),*)? }) => {
        impl $crate::contract::bridge::Bridge<$b> for $a {
            fn bridge(self) -> $b {
                type B = $b;
                B { $($f: $crate::contract::bridge::Bridge::bridge(self.$f),)* $($($g: $v,)*)? }
            }
        }
    };
}

/// Both directions for a record whose fields are the same in both.
macro_rules! record {
    ($a:path, $b:path { $($f:ident),* }) => {
        $crate::contract::bridge::record_into!($a, $b { $($f),* });
        $crate::contract::bridge::record_into!($b, $a { $($f),* });
    };
}

/// From `$a` to `$b`, variants or enums whose cases `$b` has too;
/// `case(x)` carries a payload (bound as `x`), `case` does not.
macro_rules! cases_into {
    ($a:path, $b:path { $($c:ident $(($p:ident))?),* }) => {
        impl $crate::contract::bridge::Bridge<$b> for $a {
            fn bridge(self) -> $b {
                type A = $a;
                type B = $b;
                match self { $(A::$c $(($p))? => B::$c $(($crate::contract::bridge::Bridge::bridge($p)))?),* }
            }
        }
    };
}

/// Both directions for a variant or enum with the same cases in both.
macro_rules! cases {
    ($a:path, $b:path { $($c:ident $(($p:ident))?),* }) => {
        $crate::contract::bridge::cases_into!($a, $b { $($c $(($p))?),* });
        $crate::contract::bridge::cases_into!($b, $a { $($c $(($p))?),* });
    };
}
pub(crate) use {cases, cases_into, record, record_into};

/// The bridges of every type that is the same in all contract versions
/// (all but `capabilities`, `adapter-info` and what 0.2 added): `$old` and
/// `$current` are the two `types` modules.
macro_rules! shared_types {
    ($old:ident, $current:ident) => {
        $crate::contract::bridge::record!($old::Money, $current::Money { minor, currency });
        $crate::contract::bridge::record!(
            $old::CallContext,
            $current::CallContext {
                request_id,
                timestamp,
                seed,
                notify_url
            }
        );
        $crate::contract::bridge::record!($old::ConfigEntry, $current::ConfigEntry { name, value });
        $crate::contract::bridge::cases!($old::ConfigValue, $current::ConfigValue { Text(x), Secret(x) });
        $crate::contract::bridge::cases!(
            $old::HttpMethod,
            $current::HttpMethod {
                Get,
                Post,
                Put,
                Patch,
                Delete
            }
        );
        $crate::contract::bridge::record!(
            $old::HttpRequest,
            $current::HttpRequest {
                method,
                url,
                headers,
                body,
                client_identity
            }
        );
        $crate::contract::bridge::record!(
            $old::HttpResponse,
            $current::HttpResponse {
                status,
                headers,
                body
            }
        );
        $crate::contract::bridge::record!($old::Exchange, $current::Exchange { request, response });
        $crate::contract::bridge::cases!($old::FieldKind, $current::FieldKind { Text, Secret, Url });
        $crate::contract::bridge::record!(
            $old::ConfigField,
            $current::ConfigField {
                name,
                description,
                kind,
                required,
                default
            }
        );
        $crate::contract::bridge::record!(
            $old::Payer,
            $current::Payer {
                app_id,
                openid,
                client_ip
            }
        );
        $crate::contract::bridge::record!(
            $old::OrderRequest,
            $current::OrderRequest {
                merchant_order_no,
                amount,
                description,
                method,
                payer,
                expires_at,
                attach
            }
        );
        $crate::contract::bridge::record!(
            $old::MiniProgramParams,
            $current::MiniProgramParams {
                app_id,
                time_stamp,
                nonce_str,
                package,
                sign_type,
                pay_sign
            }
        );
        $crate::contract::bridge::cases!($old::PayAction, $current::PayAction { MiniProgram(x), Redirect(x), QrCode(x) });
        $crate::contract::bridge::record!(
            $old::OrderRef,
            $current::OrderRef {
                merchant_order_no,
                provider_trade_no,
                channel_transaction_id
            }
        );
        $crate::contract::bridge::record!($old::OrderCreated, $current::OrderCreated { order, action });
        $crate::contract::bridge::cases!(
            $old::TradeState,
            $current::TradeState {
                Pending,
                Paid,
                Refunded,
                Closed,
                Failed
            }
        );
        $crate::contract::bridge::record!(
            $old::TradeStatus,
            $current::TradeStatus {
                order,
                state,
                provider_state,
                amount,
                paid_at,
                payer_id
            }
        );
        $crate::contract::bridge::record!($old::QueryRequest, $current::QueryRequest { order });
        $crate::contract::bridge::record!(
            $old::RefundRequest,
            $current::RefundRequest {
                order,
                refund_no,
                amount,
                order_amount,
                reason
            }
        );
        $crate::contract::bridge::cases!(
            $old::RefundState,
            $current::RefundState {
                Pending,
                Succeeded,
                Failed
            }
        );
        $crate::contract::bridge::record!(
            $old::RefundStatus,
            $current::RefundStatus {
                order,
                refund_no,
                provider_refund_id,
                state,
                provider_state,
                amount
            }
        );
        $crate::contract::bridge::record!(
            $old::InboundHttp,
            $current::InboundHttp {
                method,
                path,
                query,
                headers,
                body
            }
        );
        $crate::contract::bridge::record_into!($old::NotifyOutcome, $current::NotifyOutcome { events, ack });
        $crate::contract::bridge::record!(
            $old::ProviderRejection,
            $current::ProviderRejection {
                code,
                message,
                retryable
            }
        );
        $crate::contract::bridge::cases!($old::AdapterError, $current::AdapterError {
            InvalidConfig(x), InvalidRequest(x), Unsupported(x), ProviderRejected(x),
            MalformedResponse(x), BadSignature(x), Nondeterministic(x)
        });
        $crate::contract::bridge::record!($old::NotifyFailure, $current::NotifyFailure { error, ack });
        $crate::contract::bridge::cases!($old::OrderStep, $current::OrderStep { Send(x), Done(x) });
        $crate::contract::bridge::cases!($old::QueryStep, $current::QueryStep { Send(x), Done(x) });
        $crate::contract::bridge::cases!($old::RefundStep, $current::RefundStep { Send(x), Done(x) });
        $crate::contract::bridge::cases_into!($old::NotifyStep, $current::NotifyStep { Send(x), Done(x) });
    };
}
pub(crate) use shared_types;

/// The bridges of what 0.2 added (`close`, `refund-query`), the same in
/// every contract since.
macro_rules! since_0_2_types {
    ($old:ident, $current:ident) => {
        $crate::contract::bridge::record!($old::CloseRequest, $current::CloseRequest { order });
        $crate::contract::bridge::record!(
            $old::RefundQueryRequest,
            $current::RefundQueryRequest {
                order,
                refund_no,
                provider_refund_id
            }
        );
        $crate::contract::bridge::cases!($old::CloseStep, $current::CloseStep { Send(x), Done(x) });
        $crate::contract::bridge::cases!($old::RefundQueryStep, $current::RefundQueryStep { Send(x), Done(x) });
    };
}
pub(crate) use since_0_2_types;

/// The capabilities of 0.2 to 0.4: `close` and `refund-query`, no payouts
/// (0.5) and no contracts (0.6).
macro_rules! capabilities_0_2_to_0_4 {
    ($old:ident, $current:ident) => {
        $crate::contract::bridge::record_into!(
            $old::Capabilities,
            $current::Capabilities {
                payment_notifications,
                refund_notifications,
                partial_refunds,
                query_by_merchant_order_no,
                close,
                refund_query;
                payouts: false,
                payout_notifications: false,
                contracts: false,
                contract_notifications: false,
                deduction_notifications: false
            }
        );
    };
}
pub(crate) use capabilities_0_2_to_0_4;

/// `field-rule` (with `required-for`, 0.4) and `adapter-info` as they are
/// since 0.4.
macro_rules! info_since_0_4 {
    ($old:ident, $current:ident) => {
        $crate::contract::bridge::record_into!(
            $old::FieldRule,
            $current::FieldRule {
                field,
                min_length,
                max_length,
                allowed,
                required_for
            }
        );
        $crate::contract::bridge::record_into!(
            $old::AdapterInfo,
            $current::AdapterInfo {
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
    };
}
pub(crate) use info_since_0_4;

/// The notification events before 0.5, which added `payout` (and 0.6
/// `contract` and `deduction`).
macro_rules! events_before_0_5 {
    ($old:ident, $current:ident) => {
        $crate::contract::bridge::cases_into!($old::NotifyEvent, $current::NotifyEvent { Payment(x), Refund(x) });
    };
}
pub(crate) use events_before_0_5;

/// `adapter-info` of a contract before 0.3, which lists no currencies (the
/// host then takes the merchant's configured currency on trust) and no
/// field rules (the host's own limits apply).
macro_rules! adapter_info_without_currencies {
    ($old:ident, $current:ident) => {
        impl $crate::contract::bridge::Bridge<$current::AdapterInfo> for $old::AdapterInfo {
            fn bridge(self) -> $current::AdapterInfo {
                $current::AdapterInfo {
                    name: self.name,
                    version: self.version,
                    contract_version: self.contract_version,
                    methods: self.methods,
                    currencies: Vec::new(),
                    capabilities: $crate::contract::bridge::Bridge::bridge(self.capabilities),
                    egress_hosts: self.egress_hosts,
                    config_schema: $crate::contract::bridge::Bridge::bridge(self.config_schema),
                    field_rules: Vec::new(),
                }
            }
        }
    };
}
pub(crate) use adapter_info_without_currencies;

/// An older contract's imports (`secrets`, `log` and the empty `types`
/// host trait), answered by the current implementations.
macro_rules! forward_imports {
    ($types:ident, $secrets:ident, $log:ident $(; $oaep:ident)?) => {
        use $crate::contract::bridge::Bridge as _;
    $crate::contract::bridge::cases!(
        $secrets::DigestAlgorithm,
        $crate::contract::DigestAlgorithm {
            Md5,
            Sha1,
            Sha256,
            Sha512
        }
    );
    $crate::contract::bridge::cases!(
        $secrets::KeyEncoding,
        $crate::contract::KeyEncoding { Raw, Hex, Base64 }
    );
    $crate::contract::bridge::cases!($secrets::Part, $crate::contract::Part { Text(x), Bytes(x), Secret(x) });
    $crate::contract::bridge::cases!($secrets::SecretError, $crate::contract::SecretError { UnknownHandle(x), UnusableKey(x), InvalidInput(x) });
    $crate::contract::bridge::cases!(
        $log::Level,
        $crate::contract::Level {
            Trace,
            Debug,
            Info,
            Warn,
            Error
        }
    );

    impl $types::Host for $crate::runtime::StepState {}

    impl $secrets::Host for $crate::runtime::StepState {
        fn digest(
            &mut self,
            algorithm: $secrets::DigestAlgorithm,
            parts: Vec<$secrets::Part>,
        ) -> Result<Vec<u8>, $secrets::SecretError> {
            $crate::contract::payhost::adapter::secrets::Host::digest(self, algorithm.bridge(), parts.bridge()).bridge()
        }

        fn hmac(
            &mut self,
            algorithm: $secrets::DigestAlgorithm,
            key: u32,
            encoding: $secrets::KeyEncoding,
            message: Vec<$secrets::Part>,
        ) -> Result<Vec<u8>, $secrets::SecretError> {
            $crate::contract::payhost::adapter::secrets::Host::hmac(
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
        ) -> Result<Vec<u8>, $secrets::SecretError> {
            $crate::contract::payhost::adapter::secrets::Host::rsa_sha256_sign(self, key, message).bridge()
        }

        fn rsa_sha256_verify(
            &mut self,
            public_key_pem: String,
            message: Vec<u8>,
            signature: Vec<u8>,
        ) -> Result<bool, $secrets::SecretError> {
            $crate::contract::payhost::adapter::secrets::Host::rsa_sha256_verify(self, public_key_pem, message, signature).bridge()
        }

        fn aes_256_gcm_decrypt(
            &mut self,
            key: u32,
            nonce: Vec<u8>,
            associated_data: Vec<u8>,
            ciphertext: Vec<u8>,
        ) -> Result<Vec<u8>, $secrets::SecretError> {
            $crate::contract::payhost::adapter::secrets::Host::aes_256_gcm_decrypt(self, key, nonce, associated_data, ciphertext)
                .bridge()
        }

        fn aes_256_ecb_decrypt_md5_key(
            &mut self,
            key: u32,
            ciphertext: Vec<u8>,
        ) -> Result<Vec<u8>, $secrets::SecretError> {
            $crate::contract::payhost::adapter::secrets::Host::aes_256_ecb_decrypt_md5_key(self, key, ciphertext).bridge()
        }

        // Since 0.5 (named by the caller, as the method's own name).
        $(
        fn $oaep(
            &mut self,
            public_key_pem: String,
            plaintext: Vec<u8>,
            seed: u64,
        ) -> Result<Vec<u8>, $secrets::SecretError> {
            $crate::contract::payhost::adapter::secrets::Host::$oaep(self, public_key_pem, plaintext, seed).bridge()
        }
        )?
    }

    impl $log::Host for $crate::runtime::StepState {
        fn log(&mut self, level: $log::Level, message: String) {
            $crate::contract::payhost::adapter::log::Host::log(self, level.bridge(), message)
        }
    }
    };
}
pub(crate) use forward_imports;
