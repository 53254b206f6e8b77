//! Provider simulators: small HTTP servers that speak a provider's wire
//! protocol and check every request as strictly as the provider does, so
//! adapters and the host can be tested end to end without a sandbox.
//!
//! Each simulator binds `127.0.0.1:0`, answers with correctly signed
//! messages, and has test controls to mark payments, send notifications
//! and inject failures ([`faults`]: seeded and bounded; [`outbox`]: the
//! notifications a simulator sends by itself). [`tls`] serves one over
//! HTTPS with a test CA made at run time, client certificates included.

#![forbid(unsafe_code)]

pub mod acme_pay;
pub mod faults;
pub mod outage;
pub mod outbox;
pub mod supay;
pub mod tls;
pub mod twopaynow;
pub mod vr_payment;
pub mod wechat_cloudpay;
pub mod wechat_v2;
pub mod wechat_v3;
pub mod yaband;
