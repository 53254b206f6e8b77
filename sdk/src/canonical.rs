//! Canonical `k=v&k=v` strings, the base of most provider signatures.
//!
//! WeChat Pay v2, Supay and Yaband all sign the request's fields sorted by
//! name (ASCII byte order), joined as `name=value` with `&`, values raw (not
//! URL-encoded), skipping empty values.

/// Joins `pairs` sorted by name, skipping empty values and any name in
/// `exclude` (typically `sign`). Duplicate names keep their given order.
pub fn sorted_pairs<'a, I, K, V>(pairs: I, exclude: &[&str]) -> String
where
    I: IntoIterator<Item = (&'a K, &'a V)>,
    K: AsRef<str> + ?Sized + 'a,
    V: AsRef<str> + ?Sized + 'a,
{
    let mut kept: Vec<(&str, &str)> = pairs
        .into_iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .filter(|(k, v)| !v.is_empty() && !exclude.contains(k))
        .collect();
    // Stable sort: equal names stay in input order.
    kept.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::new();
    for (i, (k, v)) in kept.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn wechat_published_string_a() {
        // providers.md 1.10: the fields of the WeChat v2 signature example.
        let fields = [
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("device_info", "1000"),
            ("body", "test"),
            ("nonce_str", "ibuaiVcKdpRxkhJA"),
        ];
        assert_eq!(
            sorted_pairs(fields.iter().map(|(k, v)| (*k, *v)), &[]),
            "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA"
        );
    }

    #[test]
    fn skips_empty_values_and_excluded_names() {
        let mut m = BTreeMap::new();
        m.insert("b".to_string(), "2".to_string());
        m.insert("a".to_string(), "1".to_string());
        m.insert("sign".to_string(), "XYZ".to_string());
        m.insert("empty".to_string(), String::new());
        assert_eq!(sorted_pairs(&m, &["sign"]), "a=1&b=2");
    }

    #[test]
    fn sorts_by_ascii_bytes_case_sensitive() {
        let f = [("b", "1"), ("B", "2"), ("a_b", "3"), ("aB", "4")];
        // 'B' (0x42) < '_' (0x5f) < 'b' (0x62)
        assert_eq!(
            sorted_pairs(f.iter().map(|(k, v)| (*k, *v)), &[]),
            "B=2&aB=4&a_b=3&b=1"
        );
    }

    #[test]
    fn values_are_not_url_encoded() {
        let f = [("url", "https://x/y?a=1&b=2"), ("body", "中文 test")];
        assert_eq!(
            sorted_pairs(f.iter().map(|(k, v)| (*k, *v)), &[]),
            "body=中文 test&url=https://x/y?a=1&b=2"
        );
    }
}
