//! Text the merchant sends on to a provider, refused with 400 before any
//! provider call when no provider could carry it.
//!
//! Providers speak XML or JSON over HTTP with length-limited fields: a NUL
//! or another control character is refused by them (WeChat answers
//! `XML_FORMAT_ERROR`), after the order number was already sent. So every
//! text field that reaches an adapter is checked here first, with the
//! same two rules for all: no control characters (U+0000-U+001F,
//! U+007F-U+009F) nor the two characters XML excludes (U+FFFE, U+FFFF),
//! and a length in characters the host allows at most ([`MAX_CHARS`]; the
//! OpenAPI document declares the same `maxLength` and `pattern`). An adapter may
//! still refuse a shorter value its provider limits further
//! (`invalid_request`, naming the field).
//!
//! A refusal is `validation_failed` with `field` (the JSON path, e.g.
//! `payer.openid`) and `reason` (`control_character`, `too_long`, and for
//! `payer.client_ip` `not_an_ip_address`; the adapter's rules add
//! `too_short`, `character_not_allowed` and `required`).

use super::problem::ApiError;
use crate::flows::NewPayment;

/// The longest value of each checked field, in characters (as JSON
/// Schema's `maxLength` counts them).
pub const MAX_CHARS: &[(&str, usize)] = &[
    ("description", 512),
    ("attach", 512),
    ("method", 64),
    ("payer.app_id", 64),
    ("payer.openid", 128),
    ("payer.client_ip", 64),
    ("reason", 512),
];

fn max_chars(field: &str) -> usize {
    MAX_CHARS
        .iter()
        .find(|(f, _)| *f == field)
        .map_or(512, |(_, n)| *n)
}

/// Whether a provider's text field can carry `c`.
fn carriable(c: char) -> bool {
    !c.is_control() && c != '\u{FFFE}' && c != '\u{FFFF}'
}

/// Checks one text field (`None` passes).
pub fn provider_text(field: &'static str, value: Option<&str>) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Ok(());
    };
    if let Some((at, c)) = value.char_indices().find(|(_, c)| !carriable(*c)) {
        return Err(ApiError::validation(format!(
            "`{field}` contains the control character U+{:04X} at byte {at}; \
             providers cannot carry control characters",
            c as u32
        ))
        .with("field", field)
        .with("reason", "control_character"));
    }
    let max = max_chars(field);
    let len = value.chars().count();
    if len > max {
        return Err(ApiError::validation(format!(
            "`{field}` is {len} characters long; at most {max} are taken"
        ))
        .with("field", field)
        .with("reason", "too_long")
        .with("max_chars", max));
    }
    Ok(())
}

/// Every text of a payment that reaches the adapter.
pub fn payment(p: &NewPayment) -> Result<(), ApiError> {
    provider_text("description", Some(&p.description))?;
    provider_text("attach", p.attach.as_deref())?;
    provider_text("method", Some(&p.method))?;
    provider_text("payer.app_id", p.payer_app_id.as_deref())?;
    provider_text("payer.openid", p.payer_openid.as_deref())?;
    provider_text("payer.client_ip", p.client_ip.as_deref())?;
    // Every provider takes the payer's address as an address.
    ip_address("payer.client_ip", p.client_ip.as_deref())
}

/// An optional IP address field: absent, or an IPv4 or IPv6 address.
pub fn ip_address(field: &'static str, value: Option<&str>) -> Result<(), ApiError> {
    match value {
        Some(ip) if ip.parse::<std::net::IpAddr>().is_err() => Err(ApiError::validation(format!(
            "`{field}` is `{ip}`, not an IPv4 or IPv6 address"
        ))
        .with("field", field)
        .with("reason", "not_an_ip_address")),
        _ => Ok(()),
    }
}

/// The adapter's own limits on the fields it would be given (contract 0.3
/// `field-rules`), checked before the adapter is called. `values` are the
/// request's fields by API name; an absent (or empty) one is refused when a
/// rule requires it for the payment's `method` (contract 0.4), else not
/// checked.
pub fn field_rules(
    rules: &[crate::contract::FieldRule],
    method: Option<&str>,
    values: &[(&'static str, Option<&str>)],
) -> Result<(), ApiError> {
    for (field, value) in values {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            let required = |r: &&crate::contract::FieldRule| {
                r.field == *field
                    && method.is_some_and(|m| r.required_for.iter().any(|f| f == "*" || f == m))
            };
            if rules.iter().any(|r| required(&r)) {
                let method = method.unwrap_or_default();
                return Err(ApiError::validation(format!(
                    "`{field}` is required: the merchant's provider cannot take a `{method}` payment without it"
                ))
                .with("field", *field)
                .with("reason", "required")
                .with("method", method));
            }
            continue;
        };
        for rule in rules.iter().filter(|r| r.field == *field) {
            let refuse = |reason: &'static str, what: String| {
                Err(ApiError::validation(format!(
                    "`{field}` {what}; the merchant's provider allows {} to {} characters{}",
                    rule.min_length,
                    rule.max_length,
                    rule.allowed
                        .as_ref()
                        .map(|a| format!(" of ASCII letters, digits and `{a}`"))
                        .unwrap_or_default()
                ))
                .with("field", *field)
                .with("reason", reason))
            };
            if let Some(allowed) = &rule.allowed
                && let Some(c) = value
                    .chars()
                    .find(|c| !c.is_ascii_alphanumeric() && !allowed.contains(*c))
            {
                return refuse("character_not_allowed", format!("contains `{c}`"));
            }
            let len = value.chars().count();
            if len > rule.max_length as usize {
                return refuse("too_long", format!("is {len} characters long"));
            }
            if len < rule.min_length as usize {
                return refuse("too_short", format!("is {len} characters long"));
            }
        }
    }
    Ok(())
}

/// A payment's fields as [`field_rules`] names them.
pub fn payment_fields(p: &NewPayment) -> [(&'static str, Option<&str>); 6] {
    [
        ("merchant_order_no", Some(&p.merchant_order_no)),
        ("description", Some(&p.description)),
        ("attach", p.attach.as_deref()),
        ("payer.app_id", p.payer_app_id.as_deref()),
        ("payer.openid", p.payer_openid.as_deref()),
        ("payer.client_ip", p.client_ip.as_deref()),
    ]
}

/// A text field a provider carries and a person reads: 1 to `max`
/// characters, not blank, no control characters.
pub fn not_blank(field: &'static str, value: &str, max: usize) -> Result<(), ApiError> {
    provider_text(field, Some(value))?;
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(ApiError::validation(format!(
            "`{field}` must be 1 to {max} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(field: &'static str, value: &str) -> Option<(String, String)> {
        provider_text(field, Some(value)).err().map(|e| {
            (
                e.extra["field"].as_str().unwrap().to_string(),
                e.extra["reason"].as_str().unwrap().to_string(),
            )
        })
    }

    #[test]
    fn control_characters_are_refused_naming_the_field() {
        for bad in [
            "tea\0",
            "a\tb",
            "line\nbreak",
            "\u{7f}",
            "\u{85}",
            "x\u{FFFF}",
        ] {
            assert_eq!(
                refusal("description", bad),
                Some(("description".into(), "control_character".into())),
                "{bad:?}"
            );
        }
        // Ordinary text in any script passes, emoji and all.
        for good in ["Tea", "乌龙茶 500g", "café ☕", "a|b*c"] {
            assert_eq!(refusal("description", good), None, "{good:?}");
        }
    }

    #[test]
    fn lengths_are_bounded_per_field() {
        assert_eq!(refusal("payer.openid", &"o".repeat(128)), None);
        assert_eq!(
            refusal("payer.openid", &"o".repeat(129)),
            Some(("payer.openid".into(), "too_long".into()))
        );
        // Characters, not bytes, as the document's maxLength counts.
        assert_eq!(refusal("description", &"茶".repeat(512)), None);
        assert_eq!(
            refusal("description", &"茶".repeat(513)),
            Some(("description".into(), "too_long".into()))
        );
        assert!(provider_text("attach", None).is_ok());
    }

    #[test]
    fn an_adapters_field_rules_are_checked_naming_field_and_reason() {
        let rules = vec![
            crate::contract::FieldRule {
                field: "merchant_order_no".into(),
                min_length: 6,
                max_length: 32,
                allowed: Some("_-|*".into()),
                required_for: vec![],
            },
            crate::contract::FieldRule {
                field: "description".into(),
                min_length: 1,
                max_length: 4,
                allowed: None,
                required_for: vec![],
            },
        ];
        let check = |no: &str, desc: &str| {
            field_rules(
                &rules,
                Some("m"),
                &[
                    ("merchant_order_no", Some(no)),
                    ("description", Some(desc)),
                    ("attach", None),
                ],
            )
            .err()
            .map(|e| (e.extra["field"].clone(), e.extra["reason"].clone()))
        };
        assert_eq!(check("ORDER_1|*", "茶茶茶茶"), None);
        let said = |f: &str, r: &str| Some((serde_json::json!(f), serde_json::json!(r)));
        assert_eq!(
            check("ORD 001", "tea"),
            said("merchant_order_no", "character_not_allowed")
        );
        assert_eq!(
            check("ORD01", "tea"),
            said("merchant_order_no", "too_short")
        );
        assert_eq!(
            check(&"A".repeat(33), "tea"),
            said("merchant_order_no", "too_long")
        );
        assert_eq!(check("ORDER1", "teas!"), said("description", "too_long"));
        // No rule, no limit beyond the host's own.
        assert!(field_rules(&[], None, &[("merchant_order_no", Some("x"))]).is_ok());
    }

    #[test]
    fn a_field_a_method_requires_is_refused_when_missing_or_empty() {
        let rule = |field: &str, methods: &[&str]| crate::contract::FieldRule {
            field: field.into(),
            min_length: 1,
            max_length: 128,
            allowed: None,
            required_for: methods.iter().map(|m| m.to_string()).collect(),
        };
        let rules = vec![
            rule("payer.openid", &["wechat_mini_program"]),
            rule("payer.client_ip", &["*"]),
        ];
        let check = |method: &str, openid: Option<&str>, ip: Option<&str>| {
            field_rules(
                &rules,
                Some(method),
                &[("payer.openid", openid), ("payer.client_ip", ip)],
            )
            .err()
            .map(|e| {
                assert_eq!(e.extra["reason"], "required");
                assert_eq!(e.extra["method"], method);
                e.extra["field"].as_str().unwrap().to_string()
            })
        };
        let ip = Some("203.0.113.7");
        assert_eq!(check("wechat_mini_program", Some("o1"), ip), None);
        assert_eq!(check("wechat_native", None, ip), None);
        assert_eq!(
            check("wechat_mini_program", None, ip).as_deref(),
            Some("payer.openid")
        );
        assert_eq!(
            check("wechat_mini_program", Some(""), ip).as_deref(),
            Some("payer.openid")
        );
        assert_eq!(
            check("wechat_native", None, None).as_deref(),
            Some("payer.client_ip")
        );
        // A refund (no method) requires nothing.
        assert!(field_rules(&rules, None, &[("payer.openid", None)]).is_ok());
    }

    #[test]
    fn a_client_ip_must_be_an_address() {
        let mut p = NewPayment {
            merchant_order_no: "ORDER-1".into(),
            amount: 100,
            currency: "CNY".into(),
            description: "tea".into(),
            method: "wechat_native".into(),
            payer_app_id: None,
            payer_openid: None,
            client_ip: Some("203.0.113.7".into()),
            expires_at: None,
            attach: None,
            metadata: Default::default(),
        };
        assert!(payment(&p).is_ok());
        p.client_ip = Some("2001:db8::1".into());
        assert!(payment(&p).is_ok());
        p.client_ip = Some("a.b".into());
        let e = payment(&p).unwrap_err();
        assert_eq!(e.extra["field"], "payer.client_ip");
        assert_eq!(e.extra["reason"], "not_an_ip_address");
    }
}
