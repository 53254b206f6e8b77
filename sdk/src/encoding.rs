//! Hex and base64, as providers spell them.

use crate::error::FormatError;
use base64::Engine as _;

/// Lower-case hex.
pub fn hex_lower(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Upper-case hex (WeChat Pay v2 signatures).
pub fn hex_upper(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

pub fn hex_decode(text: &str) -> Result<Vec<u8>, FormatError> {
    hex::decode(text).map_err(|e| FormatError::new(format!("invalid hex: {e}")))
}

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn base64_decode(text: &str) -> Result<Vec<u8>, FormatError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| FormatError::new(format!("invalid base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips() {
        assert_eq!(hex_upper(&[0xab, 0x01]), "AB01");
        assert_eq!(hex_lower(&[0xab, 0x01]), "ab01");
        assert_eq!(hex_decode("AB01").unwrap(), vec![0xab, 0x01]);
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(base64_decode("aGVsbG8=\n").unwrap(), b"hello");
        assert!(hex_decode("xyz").is_err());
        assert!(base64_decode("***").is_err());
    }
}
