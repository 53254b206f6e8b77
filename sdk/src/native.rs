//! Native implementations of the contract's secret operations.
//!
//! The host runs these with a merchant's real secret bytes; the test
//! harness ([`crate::testing`]) runs them with in-memory test secrets. One
//! implementation serves both, so an adapter tested natively signs exactly
//! as it will in production.
//!
//! Nothing here returns, logs or formats secret bytes: errors describe what
//! was wrong with a key, never what it contained.

use aes::cipher::{BlockDecryptMut, KeyInit, block_padding::Pkcs7};
use aes_gcm::aead::{Aead, Payload};
use hmac::Mac;
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Digest as _;

/// Which digest an operation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

/// How a secret's text becomes key bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    Raw,
    Hex,
    Base64,
}

/// A piece of a message; `Secret` is a handle into a [`SecretTable`].
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
    Secret(u32),
}

/// Why a secret operation failed. Never contains secret material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    UnknownHandle(u32),
    UnusableKey(String),
    InvalidInput(String),
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CryptoError::UnknownHandle(h) => write!(f, "unknown secret handle {h}"),
            CryptoError::UnusableKey(m) => write!(f, "unusable key: {m}"),
            CryptoError::InvalidInput(m) => write!(f, "invalid input: {m}"),
        }
    }
}

impl std::error::Error for CryptoError {}

/// The secrets of one merchant for one step, addressed by handle.
///
/// Handles are indexes in insertion order, so the same configuration gives
/// the same handles in every step of an operation.
#[derive(Default)]
pub struct SecretTable {
    values: Vec<SecretSlice<u8>>,
}

impl std::fmt::Debug for SecretTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretTable({} secrets, redacted)", self.values.len())
    }
}

impl SecretTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret and returns its handle.
    pub fn insert(&mut self, bytes: Vec<u8>) -> u32 {
        self.values.push(SecretSlice::from(bytes));
        (self.values.len() - 1) as u32
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn get(&self, handle: u32) -> Result<&[u8], CryptoError> {
        self.values
            .get(handle as usize)
            .map(|s| s.expose_secret())
            .ok_or(CryptoError::UnknownHandle(handle))
    }

    /// Every secret value, for masking them out of logged text.
    pub fn expose_all_for_masking(&self) -> impl Iterator<Item = &[u8]> {
        self.values.iter().map(|s| s.expose_secret())
    }

    fn concat(&self, parts: &[Part<'_>]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::new();
        for part in parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::Secret(h) => out.extend_from_slice(self.get(*h)?),
            }
        }
        Ok(out)
    }

    fn key_bytes(&self, handle: u32, encoding: KeyEncoding) -> Result<Vec<u8>, CryptoError> {
        let raw = self.get(handle)?;
        match encoding {
            KeyEncoding::Raw => Ok(raw.to_vec()),
            KeyEncoding::Hex => hex::decode(trim_ascii(raw))
                .map_err(|_| CryptoError::UnusableKey("secret is not valid hex".into())),
            KeyEncoding::Base64 => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(trim_ascii(raw))
                    .map_err(|_| CryptoError::UnusableKey("secret is not valid base64".into()))
            }
        }
    }

    /// Digest of the concatenation of `parts`.
    pub fn digest(&self, alg: DigestAlgorithm, parts: &[Part<'_>]) -> Result<Vec<u8>, CryptoError> {
        let msg = self.concat(parts)?;
        Ok(digest(alg, &msg))
    }

    /// HMAC keyed by a secret over the concatenation of `message`.
    pub fn hmac(
        &self,
        alg: DigestAlgorithm,
        key: u32,
        encoding: KeyEncoding,
        message: &[Part<'_>],
    ) -> Result<Vec<u8>, CryptoError> {
        let key = self.key_bytes(key, encoding)?;
        let msg = self.concat(message)?;
        fn mac<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
            // HMAC accepts keys of any length, so this cannot fail.
            let mut m = <M as Mac>::new_from_slice(key).expect("HMAC takes any key length");
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        Ok(match alg {
            DigestAlgorithm::Md5 => mac::<hmac::Hmac<md5::Md5>>(&key, &msg),
            DigestAlgorithm::Sha1 => mac::<hmac::Hmac<sha1::Sha1>>(&key, &msg),
            DigestAlgorithm::Sha256 => mac::<hmac::Hmac<sha2::Sha256>>(&key, &msg),
            DigestAlgorithm::Sha512 => mac::<hmac::Hmac<sha2::Sha512>>(&key, &msg),
        })
    }

    /// SHA256withRSA (PKCS#1 v1.5) by a PEM private key (PKCS#8 or PKCS#1).
    pub fn rsa_sha256_sign(&self, key: u32, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let pem_text = self.get(key)?;
        let block = pem::parse(pem_text)
            .map_err(|_| CryptoError::UnusableKey("secret is not a PEM private key".into()))?;
        let pair = match block.tag() {
            "PRIVATE KEY" => ring::rsa::KeyPair::from_pkcs8(block.contents()),
            "RSA PRIVATE KEY" => ring::rsa::KeyPair::from_der(block.contents()),
            other => {
                return Err(CryptoError::UnusableKey(format!(
                    "PEM block is `{other}`, expected `PRIVATE KEY` or `RSA PRIVATE KEY`"
                )));
            }
        }
        .map_err(|e| CryptoError::UnusableKey(format!("RSA private key rejected: {e}")))?;
        let mut sig = vec![0u8; pair.public().modulus_len()];
        // PKCS#1 v1.5 padding is deterministic; ring only wants an RNG for
        // its interface.
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            message,
            &mut sig,
        )
        .map_err(|_| CryptoError::UnusableKey("RSA signing failed".into()))?;
        Ok(sig)
    }

    /// AES-256-GCM decryption keyed by a secret's 32 raw bytes.
    pub fn aes_256_gcm_decrypt(
        &self,
        key: u32,
        nonce: &[u8],
        associated_data: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let key = self.get(key)?;
        let cipher = aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|_| {
            CryptoError::UnusableKey(format!(
                "AES-256 key must be 32 bytes, secret has {}",
                key.len()
            ))
        })?;
        if nonce.len() != 12 {
            return Err(CryptoError::InvalidInput(format!(
                "AES-GCM nonce must be 12 bytes, got {}",
                nonce.len()
            )));
        }
        cipher
            .decrypt(
                aes_gcm::Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: associated_data,
                },
            )
            .map_err(|_| {
                CryptoError::InvalidInput(
                    "AES-GCM decryption failed (wrong key or tampered data)".into(),
                )
            })
    }

    /// AES-256-ECB with PKCS#7, keyed by the lower-case hex MD5 of a secret.
    pub fn aes_256_ecb_decrypt_md5_key(
        &self,
        key: u32,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let derived = hex::encode(md5::Md5::digest(self.get(key)?));
        aes_256_ecb_decrypt(derived.as_bytes(), ciphertext)
    }
}

/// Plain digest, no secret involved.
pub fn digest(alg: DigestAlgorithm, msg: &[u8]) -> Vec<u8> {
    match alg {
        DigestAlgorithm::Md5 => md5::Md5::digest(msg).to_vec(),
        DigestAlgorithm::Sha1 => sha1::Sha1::digest(msg).to_vec(),
        DigestAlgorithm::Sha256 => sha2::Sha256::digest(msg).to_vec(),
        DigestAlgorithm::Sha512 => sha2::Sha512::digest(msg).to_vec(),
    }
}

/// AES-256-ECB decryption with PKCS#7 padding and a 32-byte key.
pub fn aes_256_ecb_decrypt(key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let dec = ecb::Decryptor::<aes::Aes256>::new_from_slice(key)
        .map_err(|_| CryptoError::UnusableKey("AES-256 key must be 32 bytes".into()))?;
    dec.decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| {
            CryptoError::InvalidInput("AES-ECB decryption failed (wrong key or bad padding)".into())
        })
}

/// AES-256-ECB encryption with PKCS#7 (what WeChat does to `req_info`);
/// used by simulators and tests.
pub fn aes_256_ecb_encrypt(key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    use aes::cipher::BlockEncryptMut;
    let enc = ecb::Encryptor::<aes::Aes256>::new_from_slice(key)
        .map_err(|_| CryptoError::UnusableKey("AES-256 key must be 32 bytes".into()))?;
    Ok(enc.encrypt_padded_vec_mut::<Pkcs7>(plaintext))
}

/// Verifies SHA256withRSA by a PEM public key (SPKI or PKCS#1).
pub fn rsa_sha256_verify(
    public_key_pem: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, CryptoError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    let key = rsa::RsaPublicKey::from_public_key_pem(public_key_pem)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(public_key_pem))
        .map_err(|_| CryptoError::UnusableKey("not a PEM RSA public key".into()))?;
    let hashed = sha2::Sha256::digest(message);
    Ok(key
        .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &hashed, signature)
        .is_ok())
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// Conversions from a bindgen's `secrets` types (`DigestAlgorithm`,
/// `KeyEncoding`, `Part`, `SecretError`, which must be in scope) to these.
/// The host (wasmtime's bindgen) and the harness (wit-bindgen) generate
/// distinct but identically shaped types from the same WIT; this writes the
/// mapping once for both.
#[macro_export]
macro_rules! native_conversions {
    () => {
        fn alg(a: DigestAlgorithm) -> $crate::native::DigestAlgorithm {
            match a {
                DigestAlgorithm::Md5 => $crate::native::DigestAlgorithm::Md5,
                DigestAlgorithm::Sha1 => $crate::native::DigestAlgorithm::Sha1,
                DigestAlgorithm::Sha256 => $crate::native::DigestAlgorithm::Sha256,
                DigestAlgorithm::Sha512 => $crate::native::DigestAlgorithm::Sha512,
            }
        }

        fn enc(e: KeyEncoding) -> $crate::native::KeyEncoding {
            match e {
                KeyEncoding::Raw => $crate::native::KeyEncoding::Raw,
                KeyEncoding::Hex => $crate::native::KeyEncoding::Hex,
                KeyEncoding::Base64 => $crate::native::KeyEncoding::Base64,
            }
        }

        fn parts(p: &[Part]) -> Vec<$crate::native::Part<'_>> {
            p.iter()
                .map(|p| match p {
                    Part::Text(t) => $crate::native::Part::Text(t),
                    Part::Bytes(b) => $crate::native::Part::Bytes(b),
                    Part::Secret(h) => $crate::native::Part::Secret(*h),
                })
                .collect()
        }

        fn err(e: $crate::native::CryptoError) -> SecretError {
            match e {
                $crate::native::CryptoError::UnknownHandle(h) => SecretError::UnknownHandle(h),
                $crate::native::CryptoError::UnusableKey(m) => SecretError::UnusableKey(m),
                $crate::native::CryptoError::InvalidInput(m) => SecretError::InvalidInput(m),
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[test]
    fn aes_256_ecb_matches_published_vector() {
        // providers.md 1.10: wechatpay-php AesEcbTest.
        let ct = aes_256_ecb_encrypt(b"0123456789abcdef0123456789abcdef", b"hello").unwrap();
        assert_eq!(b64(&ct), "pZwJZBLuy3mDACEQT4YTBw==");
        let pt = aes_256_ecb_decrypt(b"0123456789abcdef0123456789abcdef", &ct).unwrap();
        assert_eq!(pt, b"hello");
    }

    #[test]
    fn ecb_with_md5_derived_key_roundtrips_and_rejects_wrong_key() {
        let mut t = SecretTable::new();
        let right = t.insert(b"192006250b4c09247ec02edce69f6a2d".to_vec());
        let wrong = t.insert(b"another-key".to_vec());
        let key = hex::encode(md5::Md5::digest(b"192006250b4c09247ec02edce69f6a2d"));
        let ct = aes_256_ecb_encrypt(key.as_bytes(), b"<root><a>1</a></root>").unwrap();
        assert_eq!(
            t.aes_256_ecb_decrypt_md5_key(right, &ct).unwrap(),
            b"<root><a>1</a></root>"
        );
        assert!(matches!(
            t.aes_256_ecb_decrypt_md5_key(wrong, &ct),
            Err(CryptoError::InvalidInput(_))
        ));
    }

    #[test]
    fn digest_splices_secret_parts() {
        let mut t = SecretTable::new();
        let k = t.insert(b"zG93Cv85BCCp2h".to_vec());
        // providers.md 6.5 (2paynow): md5(function + mid + timestamp + key).
        let d = t
            .digest(
                DigestAlgorithm::Md5,
                &[
                    Part::Text("precreate4002563369"),
                    Part::Bytes(b"1571034662245"),
                    Part::Secret(k),
                ],
            )
            .unwrap();
        assert_eq!(hex::encode(d), "4f83e30f527ff4ed0fc9c03185f43f97");
    }

    #[test]
    fn unknown_handle_is_an_error() {
        let t = SecretTable::new();
        assert_eq!(
            t.digest(DigestAlgorithm::Md5, &[Part::Secret(7)]),
            Err(CryptoError::UnknownHandle(7))
        );
    }

    #[test]
    fn hmac_key_encodings() {
        let mut t = SecretTable::new();
        let raw = t.insert(b"key".to_vec());
        let hexed = t.insert(b"6b6579".to_vec());
        let b64d = t.insert(b"a2V5".to_vec());
        let bad = t.insert(b"zz".to_vec());
        let m = [Part::Text("The quick brown fox jumps over the lazy dog")];
        // RFC 4231-style well-known value for HMAC-SHA256("key", fox).
        let expect = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
        assert_eq!(
            hex::encode(
                t.hmac(DigestAlgorithm::Sha256, raw, KeyEncoding::Raw, &m)
                    .unwrap()
            ),
            expect
        );
        assert_eq!(
            hex::encode(
                t.hmac(DigestAlgorithm::Sha256, hexed, KeyEncoding::Hex, &m)
                    .unwrap()
            ),
            expect
        );
        assert_eq!(
            hex::encode(
                t.hmac(DigestAlgorithm::Sha256, b64d, KeyEncoding::Base64, &m)
                    .unwrap()
            ),
            expect
        );
        assert!(matches!(
            t.hmac(DigestAlgorithm::Sha256, bad, KeyEncoding::Hex, &m),
            Err(CryptoError::UnusableKey(_))
        ));
    }

    #[test]
    fn gcm_rejects_short_key_without_echoing_it() {
        let mut t = SecretTable::new();
        let k = t.insert(b"short-secret-value".to_vec());
        let err = t
            .aes_256_gcm_decrypt(k, &[0; 12], b"", &[0; 32])
            .unwrap_err();
        assert!(!err.to_string().contains("short-secret-value"));
        assert!(matches!(err, CryptoError::UnusableKey(_)));
    }

    #[test]
    fn gcm_decrypts_published_vector() {
        // providers.md 3.10 (wechatpay-java AeadAesCipherTest): 32-byte key.
        let mut t = SecretTable::new();
        let k = t.insert(b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb".to_vec());
        let ct = base64::engine::general_purpose::STANDARD
            .decode("ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI=")
            .unwrap();
        assert_eq!(
            t.aes_256_gcm_decrypt(k, b"uluk4a9R25RW", b"associatedData", &ct)
                .unwrap(),
            b"message"
        );
        // Tampered associated data must fail, not return garbage.
        assert!(matches!(
            t.aes_256_gcm_decrypt(k, b"uluk4a9R25RW", b"associatedDatA", &ct),
            Err(CryptoError::InvalidInput(_))
        ));
    }

    #[test]
    fn rsa_sign_verifies_with_the_public_key_and_rejects_tampering() {
        let key = include_str!("../../tests/fixtures/test-rsa-2048.key.pem");
        let public = include_str!("../../tests/fixtures/test-rsa-2048.pub.pem");
        let mut t = SecretTable::new();
        let k = t.insert(key.as_bytes().to_vec());
        let sig = t
            .rsa_sha256_sign(k, b"GET\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\n\n")
            .unwrap();
        assert_eq!(sig.len(), 256);
        assert!(
            rsa_sha256_verify(
                public,
                b"GET\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\n\n",
                &sig
            )
            .unwrap()
        );
        assert!(
            !rsa_sha256_verify(
                public,
                b"GET\n/v3/certificates\n1624523847\nA1B2C3D4E5F6G7\n\n",
                &sig
            )
            .unwrap()
        );
        // PKCS#1 v1.5 is deterministic: same message, same signature.
        assert_eq!(
            t.rsa_sha256_sign(k, b"GET\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\n\n")
                .unwrap(),
            sig
        );
        let not_pem = t.insert(b"not a key".to_vec());
        let err = t.rsa_sha256_sign(not_pem, b"x").unwrap_err();
        assert!(
            matches!(err, CryptoError::UnusableKey(_)) && !err.to_string().contains("not a key")
        );
        assert!(rsa_sha256_verify("garbage", b"x", &sig).is_err());
    }
}
