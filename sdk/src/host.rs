//! What an adapter asks of its host besides I/O: the secret operations
//! and logging.

use crate::types::{DigestAlgorithm, KeyEncoding, Level, Part, Secret, SecretError};

/// The host's services as the SDK uses them. In a component they are the
/// imports of the `adapter` world ([`crate::glue::Imports`]); in native
/// tests, the harness implements them with in-memory secrets.
pub trait HostOps {
    fn digest(&self, algorithm: DigestAlgorithm, parts: &[Part]) -> Result<Vec<u8>, SecretError>;
    fn hmac(
        &self,
        algorithm: DigestAlgorithm,
        key: Secret,
        encoding: KeyEncoding,
        message: &[Part],
    ) -> Result<Vec<u8>, SecretError>;
    fn rsa_sha256_sign(&self, key: Secret, message: &[u8]) -> Result<Vec<u8>, SecretError>;
    fn rsa_sha256_verify(
        &self,
        public_key_pem: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, SecretError>;
    fn aes_256_gcm_decrypt(
        &self,
        key: Secret,
        nonce: &[u8],
        associated_data: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, SecretError>;
    fn aes_256_ecb_decrypt_md5_key(
        &self,
        key: Secret,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, SecretError>;
    /// Contract 0.5.
    fn rsa_oaep_sha1_encrypt(
        &self,
        public_key_pem: &str,
        plaintext: &[u8],
        seed: u64,
    ) -> Result<Vec<u8>, SecretError>;
    fn log(&self, level: Level, message: &str);
}
