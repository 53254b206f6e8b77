//! Yaband's signature (providers.md §5.4): lowercase hex HMAC-SHA256, keyed
//! by the merchant's secret key, over `stringA` -- the envelope's `user`,
//! `method` and `time` merged with the fields of `data`, sorted by name
//! (ASCII, case-sensitive), joined as `name=value` with `&`, values raw.
//!
//! Answers and notifications are checked over the fields of their `data`
//! alone (§5.4 step 5). The key stays on the host (`ctx.hmac`).

use payhost_sdk::prelude::*;
use subtle::ConstantTimeEq;

/// A JSON object, as `data` is.
pub type Object = serde_json::Map<String, json::Value>;

/// What a nested object inside `data` contributes to `stringA` (§5.5 card
/// `3ds`, §5.8). Nothing public settles it, so it is configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nested {
    /// Its members join the map under their own names (what the one
    /// third-party shop that meets it does).
    Flatten,
    /// It is one field whose value is its compact JSON text.
    Json,
    /// It is left out.
    Skip,
}

impl Nested {
    pub fn parse(word: &str) -> Option<Nested> {
        match word {
            "flatten" => Some(Nested::Flatten),
            "json" => Some(Nested::Json),
            "skip" => Some(Nested::Skip),
            _ => None,
        }
    }
}

/// How `stringA` is built, from the merchant's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Leave out fields whose value is empty (§5.4: the docs' example does,
    /// the provider's PHP library does not).
    pub skip_empty: bool,
    pub nested: Nested,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            skip_empty: true,
            nested: Nested::Flatten,
        }
    }
}

/// The `name=value` pairs of a JSON object's members, values as Yaband
/// writes them: strings raw, numbers and booleans as their JSON text,
/// `null` empty.
pub fn pairs(object: &Object, rules: Rules, out: &mut Vec<(String, String)>) {
    for (name, value) in object {
        let text = match value {
            json::Value::String(s) => s.clone(),
            json::Value::Null => String::new(),
            json::Value::Bool(b) => b.to_string(),
            json::Value::Number(n) => n.to_string(),
            json::Value::Object(inner) => match rules.nested {
                Nested::Flatten => {
                    pairs(inner, rules, out);
                    continue;
                }
                Nested::Json => value.to_string(),
                Nested::Skip => continue,
            },
            json::Value::Array(_) => match rules.nested {
                Nested::Skip => continue,
                _ => value.to_string(),
            },
        };
        out.push((name.clone(), text));
    }
}

/// `stringA` of `pairs`, without `sign`.
pub fn string_a(pairs: &[(String, String)], rules: Rules) -> String {
    if rules.skip_empty {
        return canonical::sorted_pairs(pairs.iter().map(|(k, v)| (k, v)), &["sign"]);
    }
    // Empties kept: the SDK's helper always skips them.
    let mut kept: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "sign").collect();
    kept.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    kept.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `stringA` of a request: the envelope's `user`, `method`, `time` and the
/// fields of `data`.
pub fn request_string(user: &str, method: &str, time: i64, data: &Object, rules: Rules) -> String {
    let mut all = vec![
        ("user".to_string(), user.to_string()),
        ("method".to_string(), method.to_string()),
        ("time".to_string(), time.to_string()),
    ];
    pairs(data, rules, &mut all);
    string_a(&all, rules)
}

/// `stringA` of an answer's or notification's `data`.
pub fn data_string(data: &Object, rules: Rules) -> String {
    let mut all = Vec::new();
    pairs(data, rules, &mut all);
    string_a(&all, rules)
}

/// The signature of `string_a` with the secret key.
pub fn sign(ctx: &Ctx, key: Secret, string_a: &str) -> Result<String> {
    let mac = ctx.hmac(
        DigestAlgorithm::Sha256,
        key,
        KeyEncoding::Raw,
        &[Part::Text(string_a.to_string())],
    )?;
    Ok(encoding::hex_lower(&mac))
}

/// Checks a received `sign` against `string_a`; either hex case is taken.
pub fn verify(ctx: &Ctx, key: Secret, string_a: &str, received: &str, what: &str) -> Result<()> {
    let expected = sign(ctx, key, string_a)?;
    let received = received.to_ascii_lowercase();
    if bool::from(expected.as_bytes().ct_eq(received.as_bytes())) {
        Ok(())
    } else {
        Err(Error::bad_signature(format!(
            "{what}: `sign` does not verify with the configured secret_key"
        )))
    }
}
