//! VR Payment's two signatures (providers.md §8.3, §8.5).
//!
//! - Requests: the MAC headers, HMAC-SHA512 with the Base64-decoded
//!   authentication key over `1|userId|timestamp|METHOD|path`, computed by
//!   the host (`ctx.hmac`): the key never enters the component.
//! - Webhooks: `X-Signature`, SHA256withECDSA (P-256) over the raw body
//!   with a public key the gateway names by id. Public keys are not
//!   secret, and the host's secret operations have no ECDSA, so this one
//!   is verified here.

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use payhost_sdk::prelude::*;

/// `x-mac-version`: the only version the gateway defines.
pub const MAC_VERSION: &str = "1";

/// The text the MAC covers. `path` is the request's path below the host,
/// `/api` prefix and query string included.
pub fn mac_data(user_id: &str, timestamp: i64, method: &str, path: &str) -> String {
    format!("{MAC_VERSION}|{user_id}|{timestamp}|{method}|{path}")
}

/// The path and query of an absolute URL, as the MAC covers it.
pub fn signed_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.find('/').map_or("/", |at| &after_scheme[at..])
}

/// The four `x-mac-*` headers of one request.
pub fn mac_headers(
    ctx: &Ctx,
    user_id: &str,
    key: Secret,
    method: &str,
    url: &str,
) -> Result<Vec<(String, String)>> {
    let timestamp = ctx.timestamp();
    let data = mac_data(user_id, timestamp, method, signed_path(url));
    let mac = ctx.hmac(
        DigestAlgorithm::Sha512,
        key,
        KeyEncoding::Base64,
        &[Part::Text(data)],
    )?;
    Ok(vec![
        ("x-mac-version".into(), MAC_VERSION.into()),
        ("x-mac-userid".into(), user_id.into()),
        ("x-mac-timestamp".into(), timestamp.to_string()),
        ("x-mac-value".into(), encoding::base64_encode(&mac)),
    ])
}

/// The parts of an `X-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSignature {
    pub algorithm: String,
    pub key_id: String,
    pub signature: Vec<u8>,
}

/// The only algorithm the gateway uses (§8.5, §8.7).
pub const WEBHOOK_ALGORITHM: &str = "SHA256withECDSA";

impl WebhookSignature {
    /// Parses `algorithm=A, keyId=K, signature=S` with the official SDK's
    /// grammar: A alphanumeric, K lowercase hex and `-`, S Base64, each
    /// separator exactly `", "`.
    pub fn parse(header: &str) -> Result<Self> {
        let bad = |why: &str| Error::bad_signature(format!("X-Signature: {why}"));
        let rest = header
            .strip_prefix("algorithm=")
            .ok_or_else(|| bad("does not start with `algorithm=`"))?;
        let (algorithm, rest) = rest
            .split_once(", keyId=")
            .ok_or_else(|| bad("no `, keyId=`"))?;
        let (key_id, signature) = rest
            .split_once(", signature=")
            .ok_or_else(|| bad("no `, signature=`"))?;
        if algorithm.is_empty() || !algorithm.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad("the algorithm is not alphanumeric"));
        }
        if key_id.is_empty()
            || !key_id
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-')
        {
            return Err(bad("the key id is not a lowercase id"));
        }
        if signature.is_empty()
            || !signature
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return Err(bad("the signature is not Base64"));
        }
        let signature =
            encoding::base64_decode(signature).map_err(|_| bad("the signature is not Base64"))?;
        Ok(WebhookSignature {
            algorithm: algorithm.into(),
            key_id: key_id.into(),
            signature,
        })
    }
}

/// Verifies a DER ECDSA signature over `body` with a Base64 SPKI DER P-256
/// key. A key that is not one is the provider's fault (`malformed`); a
/// signature that does not verify is `bad-signature`.
pub fn verify_webhook(public_key_b64: &str, body: &[u8], sig: &WebhookSignature) -> Result<()> {
    if sig.algorithm != WEBHOOK_ALGORITHM {
        return Err(Error::bad_signature(format!(
            "X-Signature: algorithm `{}` is not {WEBHOOK_ALGORITHM}",
            sig.algorithm
        )));
    }
    let der = encoding::base64_decode(public_key_b64)
        .map_err(|e| Error::malformed(format!("webhook public key {}: {e}", sig.key_id)))?;
    let key = VerifyingKey::from_public_key_der(&der).map_err(|_| {
        Error::malformed(format!(
            "webhook public key {} is not a P-256 SubjectPublicKeyInfo",
            sig.key_id
        ))
    })?;
    let signature = DerSignature::from_bytes(&sig.signature)
        .map_err(|_| Error::bad_signature("X-Signature: the signature is not DER ECDSA"))?;
    key.verify(body, &signature)
        .map_err(|_| Error::bad_signature("X-Signature does not verify over the body"))
}
