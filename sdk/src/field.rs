//! Checks of request fields against a provider's rules, before anything
//! is sent: a value the provider would refuse is the caller's error
//! (`invalid-request`), named with the field, never a provider round trip.

use crate::{Error, Result, money};

/// A merchant number (order, refund): `min..=max` characters of ASCII
/// letters, digits and the `extra` punctuation, as most providers allow.
pub fn order_no(value: &str, field: &str, min: usize, max: usize, extra: &str) -> Result<()> {
    if let Some(c) = value
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && !extra.contains(*c))
    {
        return Err(Error::invalid_request(format!(
            "{field} `{value}` contains `{c}`; allowed are letters, digits and `{extra}`"
        )));
    }
    // ASCII from here on, so bytes are characters.
    if value.len() < min || value.len() > max {
        return Err(Error::invalid_request(format!(
            "{field} `{value}` must be {min} to {max} characters, has {}",
            value.len()
        )));
    }
    Ok(())
}

/// Free text of `min..=max` characters (not bytes).
pub fn chars(value: &str, field: &str, min: usize, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(Error::invalid_request(format!(
            "{field} must be {min} to {max} characters, has {n}"
        )));
    }
    Ok(())
}

/// An ISO 4217 code this SDK knows the minor unit of.
pub fn currency(code: &str, field: &str) -> Result<()> {
    money::exponent(code).map(|_| ()).map_err(|_| {
        Error::invalid_request(format!("{field} `{code}` is not an ISO 4217 currency code"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_are_checked_for_characters_then_length() {
        assert!(order_no("ORDER_1-2", "no", 6, 32, "_-").is_ok());
        let e = order_no("ORDER 1", "no", 6, 32, "_-").unwrap_err();
        assert!(format!("{e:?}").contains("contains ` `"), "{e:?}");
        assert!(order_no("ABC", "no", 6, 32, "").is_err());
        assert!(order_no(&"A".repeat(33), "no", 6, 32, "").is_err());
    }

    #[test]
    fn text_is_counted_in_characters() {
        assert!(chars("茶叶", "description", 1, 2).is_ok());
        assert!(chars("茶叶茶", "description", 1, 2).is_err());
        assert!(chars("", "description", 1, 2).is_err());
    }

    #[test]
    fn currencies_must_be_known() {
        assert!(currency("CNY", "amount.currency").is_ok());
        assert!(currency("XXQ", "amount.currency").is_err());
    }
}
