//! The `secrets` and `log` imports, implemented on a step's store data.
//!
//! Secret operations delegate to [`payhost_sdk::native::SecretTable`], the
//! same code the SDK's native test harness uses, so an adapter signs in
//! production exactly as in its unit tests.

use crate::contract::payhost::adapter::{log, secrets, types};
use crate::contract::{DigestAlgorithm, KeyEncoding, Level, Part, SecretError};
use crate::runtime::StepState;
use payhost_sdk::native;

payhost_sdk::native_conversions!();

impl types::Host for StepState {}

impl secrets::Host for StepState {
    fn digest(&mut self, algorithm: DigestAlgorithm, p: Vec<Part>) -> Result<Vec<u8>, SecretError> {
        self.secrets.digest(alg(algorithm), &parts(&p)).map_err(err)
    }

    fn hmac(
        &mut self,
        algorithm: DigestAlgorithm,
        key: u32,
        encoding: KeyEncoding,
        message: Vec<Part>,
    ) -> Result<Vec<u8>, SecretError> {
        self.secrets
            .hmac(alg(algorithm), key, enc(encoding), &parts(&message))
            .map_err(err)
    }

    fn rsa_sha256_sign(&mut self, key: u32, message: Vec<u8>) -> Result<Vec<u8>, SecretError> {
        self.secrets.rsa_sha256_sign(key, &message).map_err(err)
    }

    fn rsa_sha256_verify(
        &mut self,
        public_key_pem: String,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<bool, SecretError> {
        native::rsa_sha256_verify(&public_key_pem, &message, &signature).map_err(err)
    }

    fn aes_256_gcm_decrypt(
        &mut self,
        key: u32,
        nonce: Vec<u8>,
        associated_data: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> Result<Vec<u8>, SecretError> {
        self.secrets
            .aes_256_gcm_decrypt(key, &nonce, &associated_data, &ciphertext)
            .map_err(err)
    }

    fn aes_256_ecb_decrypt_md5_key(
        &mut self,
        key: u32,
        ciphertext: Vec<u8>,
    ) -> Result<Vec<u8>, SecretError> {
        self.secrets
            .aes_256_ecb_decrypt_md5_key(key, &ciphertext)
            .map_err(err)
    }
}

/// Longest adapter log line kept; a hostile adapter must not be able to
/// flood the host's log with one call.
const MAX_LOG_LINE: usize = 4096;

impl log::Host for StepState {
    fn log(&mut self, level: Level, message: String) {
        let mut message = self.masker.mask(&message);
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [truncated]");
        }
        self.log.emit(level, &message);
    }
}
