//! [`Ctx`]: what one operation may use.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::host::HostOps;
use crate::types::*;

/// Alphabet of [`Ctx::nonce`]: what every provider accepts in a nonce.
const NONCE_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The context of one step of one operation.
///
/// Everything that could differ between two runs of a step -- the time,
/// random values, the provider's answers -- comes from here, so a replayed
/// step takes the same path and asks for the same requests.
pub struct Ctx<'a> {
    host: &'a dyn HostOps,
    call: &'a CallContext,
    config: Config<'a>,
    exchanges: &'a [Exchange],
    replayed: usize,
    rng: fastrand::Rng,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(
        host: &'a dyn HostOps,
        call: &'a CallContext,
        config: &'a [ConfigEntry],
        exchanges: &'a [Exchange],
    ) -> Self {
        Self {
            host,
            call,
            config: Config::new(config),
            exchanges,
            replayed: 0,
            rng: fastrand::Rng::with_seed(call.seed),
        }
    }

    /// Performs an HTTP request through the host and returns the answer.
    ///
    /// Returns `Err` to end the step when the request has not been
    /// performed yet -- propagate it with `?` -- and an error of kind
    /// `nondeterministic` when it differs from the request recorded at this
    /// position.
    pub fn send(&mut self, request: HttpRequest) -> Result<HttpResponse> {
        match self.exchanges.get(self.replayed) {
            None => Err(Error::suspend(request)),
            Some(recorded) if recorded.request == request => {
                self.replayed += 1;
                Ok(recorded.response.clone())
            }
            Some(recorded) => Err(Error::nondeterministic(format!(
                "request #{} differs from the recorded one ({:?} {} then, {:?} {} now{})",
                self.replayed + 1,
                recorded.request.method,
                recorded.request.url,
                request.method,
                request.url,
                if recorded.request.url == request.url {
                    ", different headers or body"
                } else {
                    ""
                }
            ))),
        }
    }

    /// How many recorded exchanges this step has not asked for again.
    pub(crate) fn unreplayed(&self) -> usize {
        self.exchanges.len() - self.replayed
    }

    /// The merchant's configuration.
    pub fn config(&self) -> Config<'a> {
        self.config
    }

    /// Unix seconds at which the operation started.
    pub fn timestamp(&self) -> i64 {
        self.call.timestamp
    }

    /// The URL where this merchant's provider notifications arrive.
    pub fn notify_url(&self) -> &'a str {
        &self.call.notify_url
    }

    /// The host's id for this operation.
    pub fn request_id(&self) -> &'a str {
        &self.call.request_id
    }

    /// A random alphanumeric string of `len` characters, derived from the
    /// operation's seed: the n-th nonce of a step is the same in every
    /// replay of it.
    pub fn nonce(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| NONCE_ALPHABET[self.rng.usize(..NONCE_ALPHABET.len())] as char)
            .collect()
    }

    pub fn log(&self, level: Level, message: &str) {
        self.host.log(level, message)
    }

    // ---- secret operations (see the `secrets` interface in the WIT) ----

    pub fn digest(&self, algorithm: DigestAlgorithm, parts: &[Part]) -> Result<Vec<u8>> {
        self.host.digest(algorithm, parts).map_err(secret_error)
    }

    pub fn hmac(
        &self,
        algorithm: DigestAlgorithm,
        key: Secret,
        encoding: KeyEncoding,
        message: &[Part],
    ) -> Result<Vec<u8>> {
        self.host
            .hmac(algorithm, key, encoding, message)
            .map_err(secret_error)
    }

    pub fn rsa_sha256_sign(&self, key: Secret, message: &[u8]) -> Result<Vec<u8>> {
        self.host
            .rsa_sha256_sign(key, message)
            .map_err(secret_error)
    }

    pub fn rsa_sha256_verify(
        &self,
        public_key_pem: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool> {
        self.host
            .rsa_sha256_verify(public_key_pem, message, signature)
            .map_err(secret_error)
    }

    pub fn aes_256_gcm_decrypt(
        &self,
        key: Secret,
        nonce: &[u8],
        associated_data: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>> {
        self.host
            .aes_256_gcm_decrypt(key, nonce, associated_data, ciphertext)
            .map_err(secret_error)
    }

    pub fn aes_256_ecb_decrypt_md5_key(&self, key: Secret, ciphertext: &[u8]) -> Result<Vec<u8>> {
        self.host
            .aes_256_ecb_decrypt_md5_key(key, ciphertext)
            .map_err(secret_error)
    }

    /// RSA-OAEP-SHA1 encryption by a provider's public key (WeChat Pay's
    /// sensitive fields), padded from the call's seed so replays match.
    /// An unusable key is a configuration error naming `key_field`.
    pub fn rsa_oaep_sha1_encrypt(
        &self,
        public_key_pem: &str,
        plaintext: &[u8],
        key_field: &str,
    ) -> Result<Vec<u8>> {
        self.host
            .rsa_oaep_sha1_encrypt(public_key_pem, plaintext, self.call.seed)
            .map_err(|e| match e {
                SecretError::UnusableKey(m) => Error::invalid_config(format!("{key_field}: {m}")),
                // Never echo the plaintext: it is personal data.
                SecretError::InvalidInput(m) => Error::invalid_request(m),
                other => secret_error(other),
            })
    }
}

/// A failed secret operation is a configuration problem (the key is not
/// what the provider needs) unless the input was at fault.
fn secret_error(e: SecretError) -> Error {
    match e {
        SecretError::UnknownHandle(h) => {
            Error::invalid_config(format!("secret handle {h} is not valid in this call"))
        }
        SecretError::UnusableKey(m) => Error::invalid_config(m),
        SecretError::InvalidInput(m) => Error::malformed(m),
    }
}
