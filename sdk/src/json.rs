//! JSON bodies.

use crate::error::FormatError;
pub use serde_json::{Value, json};

pub fn to_body<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain data structures cannot fail.
    serde_json::to_vec(value).expect("JSON serialization of adapter data")
}

pub fn from_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, FormatError> {
    serde_json::from_slice(body).map_err(|e| FormatError::new(format!("invalid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_error_is_described() {
        let e = super::from_body::<super::Value>(b"{oops").unwrap_err();
        assert!(e.0.starts_with("invalid JSON"), "{e}");
        let v: super::Value = super::from_body(br#"{"a":1}"#).unwrap();
        assert_eq!(super::to_body(&v), br#"{"a":1}"#);
    }
}
