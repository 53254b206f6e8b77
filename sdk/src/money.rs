//! Money on the wire: minor units <-> decimal strings.
//!
//! The contract carries integers of minor units; many providers want
//! major-unit decimal strings ("24.99"). The number of decimals is the
//! currency's ISO 4217 exponent (EUR 2, JPY 0, BHD 3).

use crate::error::FormatError;
use crate::types::Money;

/// What WeChat Pay takes orders in (both API versions): CNY in mainland
/// China, and the 16 foreign currencies its cross-border service settles
/// in (WeChat Pay's overseas merchant introduction). A merchant uses one.
pub const WECHAT_PAY_CURRENCIES: [&str; 17] = [
    "CNY", "GBP", "HKD", "USD", "JPY", "CAD", "AUD", "EUR", "NZD", "KRW", "THB", "SGD", "RUB",
    "DKK", "SEK", "CHF", "NOK",
];

/// `codes` as the owned list `adapter-info.currencies` wants.
pub fn currencies(codes: &[&str]) -> Vec<String> {
    codes.iter().map(|c| c.to_string()).collect()
}

/// The ISO 4217 exponent (decimal places) of `currency`.
pub fn exponent(currency: &str) -> Result<u32, FormatError> {
    iso_currency::Currency::from_code(currency)
        .and_then(|c| c.exponent())
        .map(u32::from)
        .ok_or_else(|| {
            FormatError::new(format!(
                "`{currency}` is not an ISO 4217 currency with minor units"
            ))
        })
}

/// `Money` as a major-unit decimal string: 2499 EUR -> "24.99",
/// 500 JPY -> "500", 1 BHD -> "0.001".
pub fn to_decimal(money: &Money) -> Result<String, FormatError> {
    let exp = exponent(&money.currency)?;
    if exp == 0 {
        return Ok(money.minor.to_string());
    }
    let unit = 10u64.pow(exp);
    Ok(format!(
        "{}.{:0width$}",
        money.minor / unit,
        money.minor % unit,
        width = exp as usize
    ))
}

/// Parses a major-unit decimal string exactly. More decimals than the
/// currency has are an error unless they are zeros ("24.990" EUR is fine,
/// "24.999" is not); so are signs, exponents and empty parts.
pub fn from_decimal(text: &str, currency: &str) -> Result<Money, FormatError> {
    let exp = exponent(currency)? as usize;
    let bad = || FormatError::new(format!("`{text}` is not a valid {currency} amount"));
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    if text.contains('.') && frac.is_empty() {
        return Err(bad());
    }
    let (kept, rest) = frac.split_at(frac.len().min(exp));
    if rest.bytes().any(|b| b != b'0') {
        return Err(FormatError::new(format!(
            "`{text}` has more decimals than {currency} allows ({exp})"
        )));
    }
    let digits = format!("{int}{kept:0<exp$}");
    let minor = digits.parse::<u64>().map_err(|_| bad())?;
    Ok(Money {
        minor,
        currency: currency.to_string(),
    })
}

/// Parses an integer count of minor units as WeChat sends it ("100").
pub fn from_minor_str(text: &str, currency: &str) -> Result<Money, FormatError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FormatError::new(format!(
            "`{text}` is not an amount in minor units"
        )));
    }
    let minor = text
        .parse::<u64>()
        .map_err(|_| FormatError::new(format!("`{text}` is out of range")))?;
    Ok(Money {
        minor,
        currency: currency.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(minor: u64, c: &str) -> Money {
        Money {
            minor,
            currency: c.into(),
        }
    }

    #[test]
    fn to_decimal_by_exponent() {
        assert_eq!(to_decimal(&m(2499, "EUR")).unwrap(), "24.99");
        assert_eq!(to_decimal(&m(5, "EUR")).unwrap(), "0.05");
        assert_eq!(to_decimal(&m(500, "JPY")).unwrap(), "500");
        assert_eq!(to_decimal(&m(1, "BHD")).unwrap(), "0.001");
        assert_eq!(to_decimal(&m(8_000_000, "CNY")).unwrap(), "80000.00");
        assert!(to_decimal(&m(1, "XXX")).is_err());
        assert!(to_decimal(&m(1, "eur")).is_err());
    }

    #[test]
    fn from_decimal_is_exact() {
        assert_eq!(from_decimal("24.99", "EUR").unwrap(), m(2499, "EUR"));
        assert_eq!(from_decimal("24.9", "EUR").unwrap(), m(2490, "EUR"));
        assert_eq!(from_decimal("24", "EUR").unwrap(), m(2400, "EUR"));
        assert_eq!(from_decimal("24.990", "EUR").unwrap(), m(2499, "EUR"));
        assert_eq!(from_decimal("500", "JPY").unwrap(), m(500, "JPY"));
        assert_eq!(from_decimal("0.001", "BHD").unwrap(), m(1, "BHD"));
        for bad in [
            "24.999",
            "-1",
            "+1",
            "1e3",
            "",
            ".5",
            "5.",
            "1,00",
            "abc",
            "99999999999999999999999",
        ] {
            assert!(from_decimal(bad, "EUR").is_err(), "{bad}");
        }
        assert!(from_decimal("500.5", "JPY").is_err());
    }

    #[test]
    fn roundtrip_many_values() {
        for minor in [0u64, 1, 9, 10, 99, 100, 101, 123_456_789] {
            for c in ["EUR", "JPY", "BHD", "CNY"] {
                let s = to_decimal(&m(minor, c)).unwrap();
                assert_eq!(from_decimal(&s, c).unwrap(), m(minor, c));
            }
        }
    }

    #[test]
    fn minor_strings() {
        assert_eq!(from_minor_str("100", "CNY").unwrap(), m(100, "CNY"));
        assert!(from_minor_str("1.00", "CNY").is_err());
        assert!(from_minor_str("-1", "CNY").is_err());
        assert!(from_minor_str("", "CNY").is_err());
    }
}
