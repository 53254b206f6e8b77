//! Checks of request fields against a provider's rules, before anything
//! is sent: a value the provider would refuse is the caller's error
//! (`invalid-request`), named with the field, never a provider round trip.

use crate::types::{ConfigField, FieldKind, FieldRule, Money, Payer};
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

/// A provider's limit on one request field, written once: `describe`
/// declares it ([`declare`]; the host then checks it before calling the
/// adapter) and the adapter checks it with [`Rule::check`] all the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The field's name in payhost's API (`merchant_order_no`, ...).
    pub field: &'static str,
    pub min: usize,
    pub max: usize,
    /// Only ASCII letters, digits and these characters, when set.
    pub allowed: Option<&'static str>,
    /// The methods that cannot go without the field (`*`: every method);
    /// see [`Rule::required_for`].
    pub required_for: &'static [&'static str],
}

impl Rule {
    /// A merchant number: `min..=max` ASCII letters, digits and `extra`.
    pub const fn order_no(
        field: &'static str,
        min: usize,
        max: usize,
        extra: &'static str,
    ) -> Rule {
        Rule {
            field,
            min,
            max,
            allowed: Some(extra),
            required_for: &[],
        }
    }

    /// Free text of `min..=max` characters.
    pub const fn text(field: &'static str, min: usize, max: usize) -> Rule {
        Rule {
            field,
            min,
            max,
            allowed: None,
            required_for: &[],
        }
    }

    /// The same rule, and the field must be given for these `methods`
    /// (`&["*"]`: every method). The host refuses a create without it
    /// before the adapter is called, naming field and method (contract
    /// 0.4); payment fields only.
    pub const fn required_for(self, methods: &'static [&'static str]) -> Rule {
        Rule {
            required_for: methods,
            ..self
        }
    }

    /// Whether `method` cannot go without the field.
    pub fn required(&self, method: &str) -> bool {
        self.required_for.iter().any(|m| *m == "*" || *m == method)
    }

    /// `value` of a request paid by `method`: refused when the rule
    /// requires it and it is missing or empty, else checked as
    /// [`check`](Self::check) does. Answers the value when present.
    pub fn check_for<'a>(&self, method: &str, value: Option<&'a str>) -> Result<Option<&'a str>> {
        match value.filter(|v| !v.is_empty()) {
            None if self.required(method) => Err(Error::invalid_request(format!(
                "{} is required for method `{method}`",
                self.field
            ))),
            None => Ok(None),
            Some(v) => self.check(v).map(|()| Some(v)),
        }
    }

    /// `value` against the rule (`invalid-request` naming the field).
    pub fn check(&self, value: &str) -> Result<()> {
        match self.allowed {
            Some(extra) => order_no(value, self.field, self.min, self.max, extra),
            None => chars(value, self.field, self.min, self.max),
        }
    }
}

/// `payer.openid` as WeChat Pay's mini-program (JSAPI) payment needs it,
/// by every provider that carries one: required for `wechat_mini_program`.
pub const MINI_PROGRAM_OPENID: Rule =
    Rule::text("payer.openid", 1, 128).required_for(&["wechat_mini_program"]);

/// `payer.client_ip`, required for every method (WeChat v2's
/// `spbill_create_ip`); the host checks it is an address.
pub const CLIENT_IP: Rule = Rule::text("payer.client_ip", 1, 64).required_for(&["*"]);

/// `rules` as `adapter-info.field-rules`.
pub fn declare(rules: &[Rule]) -> Vec<FieldRule> {
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    rules
        .iter()
        .map(|r| FieldRule {
            field: r.field.into(),
            min_length: n(r.min),
            max_length: n(r.max),
            allowed: r.allowed.map(String::from),
            required_for: r.required_for.iter().map(|m| m.to_string()).collect(),
        })
        .collect()
}

/// The payer's IP address, which `wire_name` (WeChat's
/// `spbill_create_ip`) requires: present and an IPv4 or IPv6 address.
pub fn client_ip<'a>(payer: &'a Payer, wire_name: &str) -> Result<&'a str> {
    let ip = payer
        .client_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| {
            Error::invalid_request(format!("payer.client_ip is required ({wire_name})"))
        })?;
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Err(Error::invalid_request(format!(
            "payer.client_ip `{ip}` is not an IPv4 or IPv6 address"
        )));
    }
    Ok(ip)
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

/// An amount of minor units a provider can charge or refund: above zero.
pub fn positive(minor: u64, field: &str) -> Result<()> {
    if minor == 0 {
        return Err(Error::invalid_request(format!(
            "{field} must be greater than 0"
        )));
    }
    Ok(())
}

/// A refund's amount against its order's: above zero, in the order's
/// currency, and not more than the order.
pub fn refund_amount(amount: &Money, order_amount: &Money) -> Result<()> {
    positive(amount.minor, "amount.minor")?;
    if order_amount.currency != amount.currency {
        return Err(Error::invalid_request(format!(
            "amount.currency `{}` differs from order_amount.currency `{}`",
            amount.currency, order_amount.currency
        )));
    }
    if amount.minor > order_amount.minor {
        return Err(Error::invalid_request(format!(
            "amount.minor {} exceeds order_amount.minor {}",
            amount.minor, order_amount.minor
        )));
    }
    Ok(())
}

/// An order's expiry, when it has one: after the operation's time `now`.
pub fn expiry(expires_at: Option<i64>, now: i64) -> Result<Option<i64>> {
    match expires_at {
        Some(at) if at <= now => Err(Error::invalid_request(format!(
            "expires_at {at} is not after the operation's time {now}"
        ))),
        other => Ok(other),
    }
}

/// A notify URL without a query string, which WeChat Pay (and most
/// providers that sign the URL) refuse.
pub fn notify_url_without_query(url: &str) -> Result<&str> {
    if url.contains('?') {
        return Err(Error::invalid_config(format!(
            "notify URL `{url}` has a query string, which the provider rejects"
        )));
    }
    Ok(url)
}

/// The payer's openid for a mini-program payment in `pay_appid`: required,
/// and a `payer.app_id`, when given, must be that mini-program (an openid
/// is valid only under the AppID it was issued for).
pub fn mini_program_openid<'a>(payer: &'a Payer, pay_appid: &str) -> Result<&'a str> {
    if let Some(app) = payer.app_id.as_deref().filter(|a| !a.is_empty())
        && app != pay_appid
    {
        return Err(Error::invalid_request(format!(
            "payer.app_id `{app}` is not the configured mini-program `{pay_appid}`; its openid would not be valid here"
        )));
    }
    payer
        .openid
        .as_deref()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| {
            Error::invalid_request("payer.openid is required for wechat_mini_program (JSAPI)")
        })
}

/// One field of an adapter's configuration schema, for `describe`.
pub fn config(
    name: &str,
    description: &str,
    kind: FieldKind,
    required: bool,
    default: Option<&str>,
) -> ConfigField {
    ConfigField {
        name: name.into(),
        description: description.into(),
        kind,
        required,
        default: default.map(String::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_field_is_declared_per_method_and_checked_for_it() {
        assert!(MINI_PROGRAM_OPENID.required("wechat_mini_program"));
        assert!(!MINI_PROGRAM_OPENID.required("wechat_native"));
        assert!(CLIENT_IP.required("anything"));
        assert!(!Rule::text("attach", 0, 127).required("wechat_mini_program"));
        let e = MINI_PROGRAM_OPENID
            .check_for("wechat_mini_program", Some(""))
            .unwrap_err();
        assert!(
            format!("{e:?}").contains("payer.openid is required"),
            "{e:?}"
        );
        assert_eq!(
            MINI_PROGRAM_OPENID
                .check_for("wechat_native", None)
                .unwrap(),
            None
        );
        assert_eq!(
            MINI_PROGRAM_OPENID
                .check_for("wechat_mini_program", Some("o1"))
                .unwrap(),
            Some("o1")
        );
        assert!(
            MINI_PROGRAM_OPENID
                .check_for("wechat_native", Some(&"o".repeat(129)))
                .is_err()
        );
        let declared = declare(&[MINI_PROGRAM_OPENID, CLIENT_IP]);
        assert_eq!(declared[0].required_for, ["wechat_mini_program"]);
        assert_eq!(declared[1].required_for, ["*"]);
    }

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
    fn expiry_positive_amounts_and_notify_urls() {
        assert_eq!(expiry(Some(11), 10).unwrap(), Some(11));
        assert!(expiry(Some(10), 10).is_err());
        assert_eq!(expiry(None, 10).unwrap(), None);
        assert!(positive(0, "amount.minor").is_err());
        assert!(positive(1, "amount.minor").is_ok());
        assert!(notify_url_without_query("https://a/n?x=1").is_err());
        assert!(notify_url_without_query("https://a/n").is_ok());
    }

    #[test]
    fn a_mini_program_payer_needs_an_openid_of_the_paying_app() {
        let payer = |app: Option<&str>, openid: Option<&str>| Payer {
            app_id: app.map(String::from),
            openid: openid.map(String::from),
            client_ip: None,
        };
        assert_eq!(
            mini_program_openid(&payer(Some("wx1"), Some("o1")), "wx1").unwrap(),
            "o1"
        );
        assert_eq!(
            mini_program_openid(&payer(None, Some("o1")), "wx1").unwrap(),
            "o1"
        );
        assert!(mini_program_openid(&payer(Some("wx2"), Some("o1")), "wx1").is_err());
        assert!(mini_program_openid(&payer(Some("wx1"), Some("")), "wx1").is_err());
    }

    #[test]
    fn refunds_are_positive_in_the_order_currency_and_within_the_order() {
        let m = |minor, c: &str| Money {
            minor,
            currency: c.into(),
        };
        assert!(refund_amount(&m(100, "AUD"), &m(100, "AUD")).is_ok());
        assert!(refund_amount(&m(1, "AUD"), &m(100, "AUD")).is_ok());
        for (amount, order) in [
            (m(0, "AUD"), m(100, "AUD")),
            (m(101, "AUD"), m(100, "AUD")),
            (m(10, "CNY"), m(100, "AUD")),
        ] {
            let e = refund_amount(&amount, &order).unwrap_err();
            assert!(format!("{e:?}").contains("amount"), "{e:?}");
        }
    }

    #[test]
    fn currencies_must_be_known() {
        assert!(currency("CNY", "amount.currency").is_ok());
        assert!(currency("XXQ", "amount.currency").is_err());
    }
}
