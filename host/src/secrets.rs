//! The `secrets` and `log` imports, implemented on a step's store data.
//!
//! Secret operations delegate to [`payhost_sdk::native::SecretTable`], the
//! same code the SDK's native test harness uses, so an adapter signs in
//! production exactly as in its unit tests, under the same size limits
//! ([`native::MAX_PARTS`], [`native::MAX_MESSAGE_BYTES`]).
//!
//! Epoch interruption cannot stop a step inside a host call, so each
//! operation first checks the step's deadline itself: once it has passed,
//! every secret operation is refused and the step ends as a deadline. The
//! check is told the call's input size, since a step running on an async
//! task may only make small calls (`runtime`'s `INLINE_HOST_BYTES`).

use crate::contract::payhost::adapter::{log, secrets, types};
use crate::contract::{DigestAlgorithm, KeyEncoding, Level, Part, SecretError};
use crate::runtime::StepState;
use payhost_sdk::native;

payhost_sdk::native_conversions!();

impl types::Host for StepState {}

/// Bytes of text and data in a message (a secret's handle counts nothing:
/// secrets are a merchant's configuration, small and bounded).
fn input_bytes(parts: &[Part]) -> usize {
    parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => t.len(),
            Part::Bytes(b) => b.len(),
            Part::Secret(_) => 0,
        })
        .sum()
}

/// The error of a secret operation attempted after the step's deadline.
fn past_deadline() -> SecretError {
    SecretError::InvalidInput("the step's deadline has passed".into())
}

impl secrets::Host for StepState {
    fn digest(&mut self, algorithm: DigestAlgorithm, p: Vec<Part>) -> Result<Vec<u8>, SecretError> {
        if self.deadline.refuses(input_bytes(&p)) {
            return Err(past_deadline());
        }
        self.secrets
            .digest(alg(algorithm), &parts(&p)?)
            .map_err(err)
    }

    fn hmac(
        &mut self,
        algorithm: DigestAlgorithm,
        key: u32,
        encoding: KeyEncoding,
        message: Vec<Part>,
    ) -> Result<Vec<u8>, SecretError> {
        if self.deadline.refuses(input_bytes(&message)) {
            return Err(past_deadline());
        }
        self.secrets
            .hmac(alg(algorithm), key, enc(encoding), &parts(&message)?)
            .map_err(err)
    }

    fn rsa_sha256_sign(&mut self, key: u32, message: Vec<u8>) -> Result<Vec<u8>, SecretError> {
        if self.deadline.refuses(message.len()) {
            return Err(past_deadline());
        }
        self.secrets.rsa_sha256_sign(key, &message).map_err(err)
    }

    fn rsa_sha256_verify(
        &mut self,
        public_key_pem: String,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<bool, SecretError> {
        if self
            .deadline
            .refuses(public_key_pem.len() + message.len() + signature.len())
        {
            return Err(past_deadline());
        }
        native::rsa_sha256_verify(&public_key_pem, &message, &signature).map_err(err)
    }

    fn aes_256_gcm_decrypt(
        &mut self,
        key: u32,
        nonce: Vec<u8>,
        associated_data: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> Result<Vec<u8>, SecretError> {
        if self
            .deadline
            .refuses(nonce.len() + associated_data.len() + ciphertext.len())
        {
            return Err(past_deadline());
        }
        self.secrets
            .aes_256_gcm_decrypt(key, &nonce, &associated_data, &ciphertext)
            .map_err(err)
    }

    fn aes_256_ecb_decrypt_md5_key(
        &mut self,
        key: u32,
        ciphertext: Vec<u8>,
    ) -> Result<Vec<u8>, SecretError> {
        if self.deadline.refuses(ciphertext.len()) {
            return Err(past_deadline());
        }
        self.secrets
            .aes_256_ecb_decrypt_md5_key(key, &ciphertext)
            .map_err(err)
    }

    fn rsa_oaep_sha1_encrypt(
        &mut self,
        public_key_pem: String,
        plaintext: Vec<u8>,
        seed: u64,
    ) -> Result<Vec<u8>, SecretError> {
        if self
            .deadline
            .refuses(public_key_pem.len() + plaintext.len())
        {
            return Err(past_deadline());
        }
        native::rsa_oaep_sha1_encrypt(&public_key_pem, &plaintext, seed).map_err(err)
    }
}

impl log::Host for StepState {
    fn log(&mut self, level: Level, message: String) {
        // Masking takes time with the line's length; a step on the calling
        // task goes to the pool instead, where the line is logged.
        if self.deadline.outgrows_task(message.len()) {
            return;
        }
        self.log.record(level, &message, &self.masker);
    }
}
