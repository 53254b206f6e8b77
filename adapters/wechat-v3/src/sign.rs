//! API v3 signatures (providers.md §3.5, §3.6, §3.8).
//!
//! The merchant signs every request and the mini-program's payment
//! parameters with SHA256withRSA; its private key stays on the host
//! ([`Ctx::rsa_sha256_sign`]). WeChat Pay signs every answer and every
//! notification; the key to check it with is chosen by `Wechatpay-Serial`:
//! a `PUB_KEY_ID_...` names the WeChat Pay public key from the merchant
//! console, any other value the serial of a platform certificate. Both may
//! be configured at once while a merchant migrates from one to the other.

use payhost_sdk::prelude::*;
use x509_cert::Certificate;
use x509_cert::der::{DecodePem, EncodePem, pem::LineEnding};

/// The Authorization scheme of API v3.
pub const SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

/// The prefix of a WeChat Pay public key's id, as `Wechatpay-Serial` sends it.
pub const PUBLIC_KEY_ID_PREFIX: &str = "PUB_KEY_ID_";

/// The five lines a request signature covers (§3.5), each ending in `\n`.
/// `canonical_url` is the path with its query string; `body` the exact bytes
/// sent (empty for GET).
pub fn request_message(
    method: &str,
    canonical_url: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut m = format!("{method}\n{canonical_url}\n{timestamp}\n{nonce}\n").into_bytes();
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// The `Authorization` header value for a signed request.
pub fn authorization(
    mchid: &str,
    serial_no: &str,
    nonce: &str,
    timestamp: i64,
    signature: &str,
) -> String {
    format!(
        "{SCHEME} mchid=\"{mchid}\",nonce_str=\"{nonce}\",timestamp=\"{timestamp}\",serial_no=\"{serial_no}\",signature=\"{signature}\""
    )
}

/// The four lines `paySign` covers (§3.8).
pub fn pay_sign_message(app_id: &str, time_stamp: &str, nonce_str: &str, package: &str) -> Vec<u8> {
    format!("{app_id}\n{time_stamp}\n{nonce_str}\n{package}\n").into_bytes()
}

/// The three lines WeChat Pay's signature covers (§3.6).
pub fn answer_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{timestamp}\n{nonce}\n").into_bytes();
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// SHA256withRSA with a host-held private key, Base64.
pub fn sign(ctx: &Ctx, key: Secret, message: &[u8]) -> Result<String> {
    Ok(encoding::base64_encode(&ctx.rsa_sha256_sign(key, message)?))
}

/// A key WeChat Pay signs with, and the `Wechatpay-Serial` that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    pub serial: String,
    /// SPKI PEM, as the host's verification takes it.
    pub public_key_pem: String,
    /// The certificate's validity in Unix seconds; `None` for a public key.
    pub valid: Option<(i64, i64)>,
}

/// The keys WeChat Pay's answers and notifications are checked against.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<VerifyingKey>,
    /// Largest distance between `Wechatpay-Timestamp` and the operation's
    /// time, in seconds.
    window_secs: i64,
}

impl Verifier {
    /// From the merchant's configuration: a WeChat Pay public key with its
    /// id, platform certificates (PEM, one or more), or both.
    pub fn new(
        public_key: Option<(&str, &str)>,
        platform_certificates: Option<&str>,
        window_secs: i64,
    ) -> Result<Self> {
        let mut keys = Vec::new();
        if let Some((id, pem)) = public_key {
            if !id.starts_with(PUBLIC_KEY_ID_PREFIX) {
                return Err(Error::invalid_config(format!(
                    "field `wechatpay_public_key_id` is `{id}`; WeChat Pay public key ids start with `{PUBLIC_KEY_ID_PREFIX}`"
                )));
            }
            if !pem.contains("-----BEGIN PUBLIC KEY-----") {
                return Err(Error::invalid_config(
                    "field `wechatpay_public_key` is not a PEM public key (-----BEGIN PUBLIC KEY-----)",
                ));
            }
            keys.push(VerifyingKey {
                serial: id.to_string(),
                public_key_pem: pem.trim().to_string() + "\n",
                valid: None,
            });
        }
        if let Some(pems) = platform_certificates {
            keys.extend(platform_keys(pems)?);
        }
        if keys.is_empty() {
            return Err(Error::invalid_config(
                "neither `wechatpay_public_key` (with `wechatpay_public_key_id`) nor `platform_certificates` is set; WeChat Pay's signatures cannot be checked",
            ));
        }
        Ok(Verifier { keys, window_secs })
    }

    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Checks WeChat Pay's signature over `body` (§3.6), its serial and its
    /// timestamp against the operation's time `now`.
    pub fn verify(
        &self,
        ctx: &Ctx,
        headers: &[(String, String)],
        body: &[u8],
        now: i64,
        what: &str,
    ) -> Result<()> {
        let header = |name: &str| {
            http::header(headers, name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::bad_signature(format!("{what} lacks the `{name}` header")))
        };
        let timestamp = header("Wechatpay-Timestamp")?;
        let nonce = header("Wechatpay-Nonce")?;
        let signature = header("Wechatpay-Signature")?;
        let serial = header("Wechatpay-Serial")?;
        let at: i64 = timestamp.parse().map_err(|_| {
            Error::bad_signature(format!(
                "{what}: Wechatpay-Timestamp `{timestamp}` is not Unix seconds"
            ))
        })?;
        if (at - now).abs() >= self.window_secs {
            return Err(Error::bad_signature(format!(
                "{what}: Wechatpay-Timestamp {at} is {}s from the operation's time {now} (window {}s)",
                (at - now).abs(),
                self.window_secs
            )));
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.serial == serial)
            .ok_or_else(|| {
                let known: Vec<&str> = self.keys.iter().map(|k| k.serial.as_str()).collect();
                Error::bad_signature(format!(
                    "{what}: Wechatpay-Serial `{serial}` is not a configured key (configured: {})",
                    known.join(", ")
                ))
            })?;
        if let Some((from, until)) = key.valid
            && (at < from || at > until)
        {
            return Err(Error::bad_signature(format!(
                "{what}: platform certificate `{serial}` is not valid at {at}"
            )));
        }
        let signature = encoding::base64_decode(signature).map_err(|_| {
            Error::bad_signature(format!("{what}: Wechatpay-Signature is not Base64"))
        })?;
        let message = answer_message(timestamp, nonce, body);
        if ctx.rsa_sha256_verify(&key.public_key_pem, &message, &signature)? {
            Ok(())
        } else {
            Err(Error::bad_signature(format!(
                "{what}: the signature does not verify with key `{serial}`"
            )))
        }
    }
}

/// The serial and public key of each certificate in `pems`.
pub fn platform_keys(pems: &str) -> Result<Vec<VerifyingKey>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    let bad = |m: String| Error::invalid_config(format!("field `platform_certificates`: {m}"));
    let mut keys = Vec::new();
    for (i, block) in pems.split(BEGIN).skip(1).enumerate() {
        let pem = format!("{BEGIN}{block}");
        let cert = Certificate::from_pem(pem.trim().as_bytes()).map_err(|e| {
            bad(format!(
                "certificate {} is not a PEM X.509 certificate: {e}",
                i + 1
            ))
        })?;
        let tbs = &cert.tbs_certificate;
        let serial = tbs.serial_number.as_bytes();
        // DER keeps a leading zero byte to mark a positive serial; WeChat's
        // serials are the bare hex digits.
        let serial = encoding::hex_upper(match serial {
            [0, rest @ ..] if !rest.is_empty() => rest,
            all => all,
        });
        let public_key_pem = tbs
            .subject_public_key_info
            .to_pem(LineEnding::LF)
            .map_err(|e| bad(format!("certificate `{serial}`: public key: {e}")))?;
        let secs = |t: x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
        keys.push(VerifyingKey {
            serial,
            public_key_pem,
            valid: Some((secs(tbs.validity.not_before), secs(tbs.validity.not_after))),
        });
    }
    if keys.is_empty() && !pems.trim().is_empty() {
        return Err(bad("no `-----BEGIN CERTIFICATE-----` block".into()));
    }
    Ok(keys)
}

/// providers.md 12.5: a sensitive field (a payee's `user_name`) encrypted
/// for WeChat Pay with RSA-OAEP-SHA1 under one of its keys, in Base64,
/// with the `Wechatpay-Serial` that names the key. The key: the WeChat Pay
/// public key when configured, else the platform certificate valid at
/// `now` whose validity began last (as the official Go SDK picks).
pub fn encrypt_sensitive(
    ctx: &Ctx,
    verifier: &Verifier,
    plaintext: &str,
    now: i64,
) -> Result<(String, String)> {
    let key = verifier
        .keys()
        .iter()
        .find(|k| k.valid.is_none())
        .or_else(|| {
            verifier
                .keys()
                .iter()
                .filter(|k| k.valid.is_some_and(|(from, to)| from <= now && now <= to))
                .max_by_key(|k| k.valid.map(|(from, _)| from))
        })
        .ok_or_else(|| {
            Error::invalid_config(
                "no WeChat Pay public key and no platform certificate valid now: a payee's name cannot be encrypted",
            )
        })?;
    let field = if key.valid.is_none() {
        "wechatpay_public_key"
    } else {
        "platform_certificates"
    };
    let ciphertext = ctx.rsa_oaep_sha1_encrypt(&key.public_key_pem, plaintext.as_bytes(), field)?;
    Ok((encoding::base64_encode(&ciphertext), key.serial.clone()))
}

/// Decrypts a notification's `resource` (§3.7): AES-256-GCM keyed by the
/// APIv3 key; the ciphertext carries its 16-byte tag. Decrypting is what
/// proves the content came from WeChat Pay.
pub fn decrypt_resource(
    ctx: &Ctx,
    api_v3_key: Secret,
    algorithm: &str,
    nonce: &str,
    associated_data: &str,
    ciphertext: &str,
) -> Result<Vec<u8>> {
    if algorithm != "AEAD_AES_256_GCM" {
        return Err(Error::invalid_request(format!(
            "resource algorithm `{algorithm}` is not AEAD_AES_256_GCM"
        )));
    }
    let ciphertext = encoding::base64_decode(ciphertext)
        .map_err(|_| Error::invalid_request("resource ciphertext is not Base64"))?;
    ctx.aes_256_gcm_decrypt(
        api_v3_key,
        nonce.as_bytes(),
        associated_data.as_bytes(),
        &ciphertext,
    )
    .map_err(|e| match e.adapter_error() {
        // A key of the wrong shape is the operator's to fix.
        Some(AdapterError::InvalidConfig(_)) => e,
        _ => Error::bad_signature("resource does not decrypt with the configured api_v3_key"),
    })
}
