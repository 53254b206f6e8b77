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

/// Most parts one message of `digest` or `hmac` may have. Real signatures
/// splice a handful (WeChat v2: the sorted field string and `&key=`); the
/// cap keeps the host's copy of a guest's part list small.
pub const MAX_PARTS: usize = 64;

/// Most bytes one message or input of a secret operation may weigh. A
/// signed provider request is a few kilobytes; without a cap one call over
/// 500,000 copies of a 4 KiB secret made the host hash 2 GB in one host
/// call, where the step's deadline cannot interrupt it.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// What a secret part weighs against [`MAX_MESSAGE_BYTES`] at the least.
/// Weighing secrets by their real length would let an adapter find a
/// secret's length by probing the cap with text just under it.
pub const SECRET_PART_WEIGHT: usize = 64 * 1024;

/// Longest PEM public key `rsa-sha256-verify` accepts (an 8192-bit key is
/// about 1.5 KiB).
pub const MAX_PUBLIC_KEY_PEM: usize = 16 * 1024;

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

    /// Refuses a message that is too long or has too many parts, or
    /// whose hash would be a function of secrets alone, before any work.
    fn check_message(&self, parts: &[Part<'_>]) -> Result<(), CryptoError> {
        check_part_count(parts.len())?;
        let mut weight = 0usize;
        let mut has_secret = false;
        let mut has_public = false;
        for part in parts {
            weight = weight.saturating_add(match part {
                Part::Text(t) => t.len(),
                Part::Bytes(b) => b.len(),
                Part::Secret(h) => {
                    has_secret = true;
                    self.get(*h)?.len().max(SECRET_PART_WEIGHT)
                }
            });
            has_public |= matches!(part, Part::Text(t) if !t.is_empty())
                || matches!(part, Part::Bytes(b) if !b.is_empty());
        }
        if weight > MAX_MESSAGE_BYTES {
            return Err(CryptoError::InvalidInput(format!(
                "the message is over the limit of {MAX_MESSAGE_BYTES} bytes (each secret part counts as at least {SECRET_PART_WEIGHT})"
            )));
        }
        // MD5 of the WeChat v2 API key alone is the key that decrypts its
        // refund notifications: a digest of secrets alone is key material.
        if has_secret && !has_public {
            return Err(CryptoError::InvalidInput(
                "a digest or HMAC of secrets alone is refused: the message needs non-secret content"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Feeds the parts to `sink` one by one: no copy of the whole message.
    fn feed(&self, parts: &[Part<'_>], mut sink: impl FnMut(&[u8])) -> Result<(), CryptoError> {
        for part in parts {
            match part {
                Part::Text(t) => sink(t.as_bytes()),
                Part::Bytes(b) => sink(b),
                Part::Secret(h) => sink(self.get(*h)?),
            }
        }
        Ok(())
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
        self.check_message(parts)?;
        fn run<D: sha2::Digest>(
            t: &SecretTable,
            parts: &[Part<'_>],
        ) -> Result<Vec<u8>, CryptoError> {
            let mut d = D::new();
            t.feed(parts, |b| d.update(b))?;
            Ok(d.finalize().to_vec())
        }
        match alg {
            DigestAlgorithm::Md5 => run::<md5::Md5>(self, parts),
            DigestAlgorithm::Sha1 => run::<sha1::Sha1>(self, parts),
            DigestAlgorithm::Sha256 => run::<sha2::Sha256>(self, parts),
            DigestAlgorithm::Sha512 => run::<sha2::Sha512>(self, parts),
        }
    }

    /// HMAC keyed by a secret over the concatenation of `message`.
    pub fn hmac(
        &self,
        alg: DigestAlgorithm,
        key: u32,
        encoding: KeyEncoding,
        message: &[Part<'_>],
    ) -> Result<Vec<u8>, CryptoError> {
        self.check_message(message)?;
        let key = self.key_bytes(key, encoding)?;
        fn mac<M: Mac + KeyInit>(
            t: &SecretTable,
            key: &[u8],
            message: &[Part<'_>],
        ) -> Result<Vec<u8>, CryptoError> {
            // HMAC accepts keys of any length, so this cannot fail.
            let mut m = <M as Mac>::new_from_slice(key).expect("HMAC takes any key length");
            t.feed(message, |b| m.update(b))?;
            Ok(m.finalize().into_bytes().to_vec())
        }
        match alg {
            DigestAlgorithm::Md5 => mac::<hmac::Hmac<md5::Md5>>(self, &key, message),
            DigestAlgorithm::Sha1 => mac::<hmac::Hmac<sha1::Sha1>>(self, &key, message),
            DigestAlgorithm::Sha256 => mac::<hmac::Hmac<sha2::Sha256>>(self, &key, message),
            DigestAlgorithm::Sha512 => mac::<hmac::Hmac<sha2::Sha512>>(self, &key, message),
        }
    }

    /// SHA256withRSA (PKCS#1 v1.5) by a PEM private key (PKCS#8 or PKCS#1).
    pub fn rsa_sha256_sign(&self, key: u32, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        check_input_len("message", message.len())?;
        let pem_text = self.get(key)?;
        let block = pem::parse(pem_text).map_err(|_| not_rsa_private_key())?;
        let pair = match block.tag() {
            "PRIVATE KEY" => ring::rsa::KeyPair::from_pkcs8(block.contents()),
            "RSA PRIVATE KEY" => ring::rsa::KeyPair::from_der(block.contents()),
            // Neither the block's label nor ring's reason (which tells a
            // key's size class) is repeated: both describe the secret.
            _ => return Err(not_rsa_private_key()),
        }
        .map_err(|_| not_rsa_private_key())?;
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
        check_input_len("ciphertext", ciphertext.len())?;
        check_input_len("associated data", associated_data.len())?;
        let key = self.get(key)?;
        // Says what a key must be, never what this secret is.
        let cipher = aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|_| {
            CryptoError::UnusableKey("the secret is not a 32-byte AES-256 key".into())
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
        check_input_len("ciphertext", ciphertext.len())?;
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

/// Lower-case hex HMAC-SHA256 of `text` under a plain `key`: how a
/// simulator or a test signs what an adapter signs through the host.
pub fn hmac_sha256_hex(key: &[u8], text: &str) -> String {
    let mut m =
        <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(text.as_bytes());
    hex::encode(m.finalize().into_bytes())
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
    if public_key_pem.len() > MAX_PUBLIC_KEY_PEM {
        return Err(CryptoError::InvalidInput(format!(
            "the public key is over the limit of {MAX_PUBLIC_KEY_PEM} bytes"
        )));
    }
    check_input_len("message", message.len())?;
    let key = public_key(public_key_pem)?;
    let hashed = sha2::Sha256::digest(message);
    Ok(key
        .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &hashed, signature)
        .is_ok())
}

/// Longest plaintext `rsa-oaep-sha1-encrypt` takes: what OAEP-SHA1 fits
/// in a 4096-bit key. WeChat's fields (a payee's name) are far shorter.
pub const MAX_OAEP_PLAINTEXT: usize = 512 - 42;

/// RSAES-OAEP (SHA-1, MGF1-SHA-1, empty label) encryption by a PEM public
/// key, SPKI or PKCS#1: WeChat Pay's sensitive fields. The padding's
/// random bytes come from [`SeededBytes`] over `seed`, the key and the
/// plaintext, so the same step asks for the same ciphertext when replayed.
pub fn rsa_oaep_sha1_encrypt(
    public_key_pem: &str,
    plaintext: &[u8],
    seed: u64,
) -> Result<Vec<u8>, CryptoError> {
    if public_key_pem.len() > MAX_PUBLIC_KEY_PEM {
        return Err(CryptoError::InvalidInput(format!(
            "the public key is over the limit of {MAX_PUBLIC_KEY_PEM} bytes"
        )));
    }
    if plaintext.len() > MAX_OAEP_PLAINTEXT {
        return Err(CryptoError::InvalidInput(format!(
            "the plaintext is over the limit of {MAX_OAEP_PLAINTEXT} bytes"
        )));
    }
    let key = public_key(public_key_pem)?;
    let mut rng = SeededBytes::new(&[&seed.to_le_bytes(), public_key_pem.as_bytes(), plaintext]);
    key.encrypt(&mut rng, rsa::Oaep::new::<sha1::Sha1>(), plaintext)
        .map_err(|_| CryptoError::InvalidInput("the plaintext is too long for this RSA key".into()))
}

/// RSAES-OAEP (SHA-1) decryption by a PEM private key given in the clear:
/// what a simulator or a test does with a field an adapter encrypted (the
/// host never decrypts with it, so it is no secret operation).
pub fn rsa_oaep_sha1_decrypt(
    private_key_pem: &str,
    ciphertext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_key_pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(private_key_pem))
        .map_err(|_| not_rsa_private_key())?;
    key.decrypt(rsa::Oaep::new::<sha1::Sha1>(), ciphertext)
        .map_err(|_| CryptoError::InvalidInput("RSA-OAEP decryption failed".into()))
}

fn public_key(pem: &str) -> Result<rsa::RsaPublicKey, CryptoError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    rsa::RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|_| CryptoError::UnusableKey("not a PEM RSA public key".into()))
}

/// A byte stream from SHA-256 in counter mode over its inputs: the
/// "randomness" of a deterministic step. It only pads what the adapter
/// already holds in the clear, so knowing the inputs reveals nothing new.
pub struct SeededBytes {
    key: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededBytes {
    pub fn new(inputs: &[&[u8]]) -> Self {
        let mut h = sha2::Sha256::new();
        h.update(b"payhost seeded bytes v1");
        for input in inputs {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            h.update((input.len() as u64).to_le_bytes());
            h.update(input);
        }
        Self {
            key: h.finalize().into(),
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }
}

impl rsa::rand_core::RngCore for SeededBytes {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            if self.used == self.block.len() {
                let mut h = sha2::Sha256::new();
                h.update(self.key);
                h.update(self.counter.to_le_bytes());
                self.block = h.finalize().into();
                self.counter += 1;
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for SeededBytes {}

/// Refuses a part list over [`MAX_PARTS`]; conversions from bindgen types
/// call it before they copy the list.
pub fn check_part_count(n: usize) -> Result<(), CryptoError> {
    if n > MAX_PARTS {
        return Err(CryptoError::InvalidInput(format!(
            "the message has {n} parts, more than the limit of {MAX_PARTS}"
        )));
    }
    Ok(())
}

fn check_input_len(what: &str, len: usize) -> Result<(), CryptoError> {
    if len > MAX_MESSAGE_BYTES {
        return Err(CryptoError::InvalidInput(format!(
            "the {what} is over the limit of {MAX_MESSAGE_BYTES} bytes"
        )));
    }
    Ok(())
}

fn not_rsa_private_key() -> CryptoError {
    CryptoError::UnusableKey(
        "the secret is not a usable PEM RSA private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`)".into(),
    )
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

        /// Refuses an over-long list before copying it.
        fn parts(p: &[Part]) -> Result<Vec<$crate::native::Part<'_>>, SecretError> {
            $crate::native::check_part_count(p.len()).map_err(err)?;
            Ok(p.iter()
                .map(|p| match p {
                    Part::Text(t) => $crate::native::Part::Text(t),
                    Part::Bytes(b) => $crate::native::Part::Bytes(b),
                    Part::Secret(h) => $crate::native::Part::Secret(*h),
                })
                .collect())
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
    fn hmac_sha256_hex_matches_the_table_s_hmac() {
        let mut t = SecretTable::new();
        let k = t.insert(b"key".to_vec());
        let mac = t
            .hmac(
                DigestAlgorithm::Sha256,
                k,
                KeyEncoding::Raw,
                &[Part::Text("a=1&b=2")],
            )
            .unwrap();
        assert_eq!(super::hmac_sha256_hex(b"key", "a=1&b=2"), hex::encode(&mac));
        assert_ne!(super::hmac_sha256_hex(b"kez", "a=1&b=2"), hex::encode(&mac));
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

    #[test]
    fn message_limits_are_checked_before_any_work() {
        let mut t = SecretTable::new();
        let k = t.insert(vec![b'k'; 4096]);
        let flood = vec![Part::Secret(k); 500_000];
        let e = t.digest(DigestAlgorithm::Md5, &flood).unwrap_err();
        assert!(e.to_string().contains("more than the limit of 64"), "{e}");
        assert!(!e.to_string().contains("4096"), "{e}");
        let at_limit = vec![Part::Text("a"); MAX_PARTS];
        assert!(t.digest(DigestAlgorithm::Md5, &at_limit).is_ok());

        let text = "t".repeat(MAX_MESSAGE_BYTES - SECRET_PART_WEIGHT);
        assert!(
            t.digest(
                DigestAlgorithm::Sha256,
                &[Part::Text(&text), Part::Secret(k)]
            )
            .is_ok()
        );
        let over = format!("{text}t");
        let e = t
            .hmac(
                DigestAlgorithm::Sha256,
                k,
                KeyEncoding::Raw,
                &[Part::Text(&over), Part::Secret(k)],
            )
            .unwrap_err();
        assert!(matches!(e, CryptoError::InvalidInput(_)), "{e}");
        assert!(
            t.rsa_sha256_sign(k, &vec![0; MAX_MESSAGE_BYTES + 1])
                .is_err()
        );
        assert!(
            t.aes_256_ecb_decrypt_md5_key(k, &vec![0; MAX_MESSAGE_BYTES + 16])
                .unwrap_err()
                .to_string()
                .contains("ciphertext")
        );
    }

    #[test]
    fn the_cap_does_not_tell_a_secrets_length() {
        // Two secrets of different lengths (both under the part weight)
        // meet the length limit at exactly the same text length.
        let mut t = SecretTable::new();
        let short = t.insert(b"s".to_vec());
        let long = t.insert(vec![b'l'; 40_000]);
        for n in [
            MAX_MESSAGE_BYTES - SECRET_PART_WEIGHT,
            MAX_MESSAGE_BYTES - SECRET_PART_WEIGHT + 1,
        ] {
            let text = "t".repeat(n);
            let a = t.digest(
                DigestAlgorithm::Md5,
                &[Part::Text(&text), Part::Secret(short)],
            );
            let b = t.digest(
                DigestAlgorithm::Md5,
                &[Part::Text(&text), Part::Secret(long)],
            );
            assert_eq!(a.is_ok(), b.is_ok(), "text of {n} bytes");
        }
    }

    #[test]
    fn a_digest_of_secrets_alone_is_refused() {
        let mut t = SecretTable::new();
        let k = t.insert(b"192006250b4c09247ec02edce69f6a2d".to_vec());
        let alone: [&[Part<'_>]; 3] = [
            &[Part::Secret(k)],
            &[Part::Text(""), Part::Secret(k), Part::Bytes(b"")],
            &[Part::Secret(k), Part::Secret(k)],
        ];
        for parts in alone {
            let e = t.digest(DigestAlgorithm::Md5, parts).unwrap_err();
            assert!(e.to_string().contains("secrets alone"), "{e}");
            assert!(
                t.hmac(DigestAlgorithm::Sha256, k, KeyEncoding::Raw, parts)
                    .is_err()
            );
        }
        // WeChat v2's signature: public content and the key spliced in.
        assert!(
            t.digest(
                DigestAlgorithm::Md5,
                &[Part::Text("a=1&key="), Part::Secret(k)]
            )
            .is_ok()
        );
        // No secret at all is a plain digest.
        assert!(t.digest(DigestAlgorithm::Md5, &[]).is_ok());
    }

    #[test]
    fn key_errors_say_nothing_of_the_secret() {
        let mut t = SecretTable::new();
        let short = t.insert(b"0123456789abcdef".to_vec());
        let cert =
            t.insert(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec());
        let gcm = t
            .aes_256_gcm_decrypt(short, &[0; 12], b"", &[0; 32])
            .unwrap_err();
        assert!(!gcm.to_string().contains("16"), "{gcm}");
        let rsa = t.rsa_sha256_sign(cert, b"x").unwrap_err();
        assert!(!rsa.to_string().contains("CERTIFICATE"), "{rsa}");
        let rsa_short = t.rsa_sha256_sign(short, b"x").unwrap_err();
        assert_eq!(rsa.to_string(), rsa_short.to_string());
    }

    const JAVA_SDK_KEY: &str =
        include_str!("../../tests/fixtures/wechatpay-java/merchant_private_key.pem");
    const JAVA_SDK_PUB: &str =
        include_str!("../../tests/fixtures/wechatpay-java/merchant_public_key.pem");

    #[test]
    fn oaep_decrypts_the_published_sensitive_field_vector() {
        // providers.md 12.8 (wechatpay-java RSAPrivacyDecryptorTest).
        let ct = base64::engine::general_purpose::STANDARD
            .decode("Qqsluo7R1IZyAqdkm/jBzwXDP5VndCwwFbRA+yILFTYciZzrRChQIQ7SKuI2k3YSR5auB3ZspdjR1WPB3PTCKe6BCFx3NnaPWhSwonYTmW8ZseXjkbcYSbKL5O/6dr6Zftg3t2A2FUd97acjM1fr2EIvIvRieQ3Hl8qVkDBY9520wm1rzvePUnxQWN70RZiBcqr7O7Gb0gU3l7FkvoUFSbY44HgDJetmVow3yGIV3Tcd45o2MNQ+5F1qvjIjb3/6dkGKce4/kNTYraUMO6o6kfFXlfg+bFRIiz8hiUpbToWdu7g0R5Hq0/YIE5vw/5Ms4gbk2HIQIfOLkY8sEPjYHA==")
            .unwrap();
        assert_eq!(
            rsa_oaep_sha1_decrypt(JAVA_SDK_KEY, &ct).unwrap(),
            b"plaintext"
        );
    }

    #[test]
    fn oaep_encryption_is_seeded_and_decrypts_with_the_private_key() {
        let name = "王小王".as_bytes();
        let a = rsa_oaep_sha1_encrypt(JAVA_SDK_PUB, name, 7).unwrap();
        assert_eq!(a.len(), 256);
        // Same inputs, same ciphertext: a replayed step asks for the same request.
        assert_eq!(a, rsa_oaep_sha1_encrypt(JAVA_SDK_PUB, name, 7).unwrap());
        // Another seed pads differently.
        let b = rsa_oaep_sha1_encrypt(JAVA_SDK_PUB, name, 8).unwrap();
        assert_ne!(a, b);
        assert_eq!(rsa_oaep_sha1_decrypt(JAVA_SDK_KEY, &a).unwrap(), name);
        assert_eq!(rsa_oaep_sha1_decrypt(JAVA_SDK_KEY, &b).unwrap(), name);
        // 2048-bit key: 214 bytes fit, 215 do not.
        assert!(rsa_oaep_sha1_encrypt(JAVA_SDK_PUB, &[b'x'; 214], 1).is_ok());
        assert!(matches!(
            rsa_oaep_sha1_encrypt(JAVA_SDK_PUB, &[b'x'; 215], 1),
            Err(CryptoError::InvalidInput(_))
        ));
        assert!(matches!(
            rsa_oaep_sha1_encrypt("garbage", name, 1),
            Err(CryptoError::UnusableKey(_))
        ));
    }
}
