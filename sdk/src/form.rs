//! `application/x-www-form-urlencoded` bodies and query strings.

/// Encodes pairs in the given order.
pub fn encode<'a, K, V>(pairs: impl IntoIterator<Item = (&'a K, &'a V)>) -> String
where
    K: AsRef<str> + ?Sized + 'a,
    V: AsRef<str> + ?Sized + 'a,
{
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k.as_ref(), v.as_ref());
    }
    s.finish()
}

/// Decodes a body or query string into pairs, in order.
pub fn decode(input: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(input).into_owned().collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn roundtrip_with_reserved_characters() {
        let pairs = [("a b", "x&y=z"), ("中", "文")];
        let enc = super::encode(pairs.iter().map(|(k, v)| (*k, *v)));
        assert_eq!(enc, "a+b=x%26y%3Dz&%E4%B8%AD=%E6%96%87");
        let dec = super::decode(enc.as_bytes());
        assert_eq!(
            dec,
            vec![("a b".into(), "x&y=z".into()), ("中".into(), "文".into())]
        );
    }
}
