//! Canonical `k=v&k=v` strings, the base of most provider signatures.
//!
//! WeChat Pay v2, Supay and Yaband all sign the request's fields sorted by
//! name (ASCII byte order), joined as `name=value` with `&`, values raw (not
//! URL-encoded), skipping empty values. WeChat Pay v2 (MD5) and Supay's
//! Gate API then append `&key=` and the merchant key and take the
//! upper-case hex MD5: [`md5_with_key`] does that with the key held by the
//! host.

use crate::types::{DigestAlgorithm, Part, Secret};
use crate::{Ctx, Result};

/// Joins `pairs` sorted by name, skipping empty values and any name in
/// `exclude` (typically `sign`). Duplicate names keep their given order.
pub fn sorted_pairs<'a, I, K, V>(pairs: I, exclude: &[&str]) -> String
where
    I: IntoIterator<Item = (&'a K, &'a V)>,
    K: AsRef<str> + ?Sized + 'a,
    V: AsRef<str> + ?Sized + 'a,
{
    join_sorted(pairs, exclude, false)
}

/// Like [`sorted_pairs`], but an empty value still counts (as `k=`): how
/// signers that sign every field they send build the string.
pub fn sorted_pairs_keep_empty<'a, I, K, V>(pairs: I, exclude: &[&str]) -> String
where
    I: IntoIterator<Item = (&'a K, &'a V)>,
    K: AsRef<str> + ?Sized + 'a,
    V: AsRef<str> + ?Sized + 'a,
{
    join_sorted(pairs, exclude, true)
}

/// `string_a` + `&key=` + the secret (`key=` + the secret when `string_a`
/// is empty), as message parts for the host's digest or HMAC.
pub fn with_key(string_a: &str, key: Secret) -> [Part; 2] {
    let prefix = if string_a.is_empty() {
        "key=".to_string()
    } else {
        format!("{string_a}&key=")
    };
    [Part::Text(prefix), Part::Secret(key)]
}

/// Upper-case hex `MD5(string_a&key=KEY)`, computed by the host so the key
/// never enters the adapter.
pub fn md5_with_key(ctx: &Ctx, string_a: &str, key: Secret) -> Result<String> {
    let digest = ctx.digest(DigestAlgorithm::Md5, &with_key(string_a, key))?;
    Ok(crate::encoding::hex_upper(&digest))
}

/// Whether a received hex signature equals the `expected` upper-case one,
/// ignoring the sender's letter case; constant time in the content.
pub fn hex_signature_matches(received: &str, expected_upper: &str) -> bool {
    let received = received.to_ascii_uppercase();
    received.len() == expected_upper.len()
        && received
            .bytes()
            .zip(expected_upper.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn join_sorted<'a, I, K, V>(pairs: I, exclude: &[&str], keep_empty: bool) -> String
where
    I: IntoIterator<Item = (&'a K, &'a V)>,
    K: AsRef<str> + ?Sized + 'a,
    V: AsRef<str> + ?Sized + 'a,
{
    let mut kept: Vec<(&str, &str)> = pairs
        .into_iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .filter(|(k, v)| (keep_empty || !v.is_empty()) && !exclude.contains(k))
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
    fn keep_empty_emits_k_equals() {
        let f = [("b", ""), ("a", "1"), ("sign", "X")];
        assert_eq!(
            sorted_pairs_keep_empty(f.iter().map(|(k, v)| (*k, *v)), &["sign"]),
            "a=1&b="
        );
    }

    #[test]
    fn hex_signatures_compare_case_insensitively_and_by_length() {
        assert!(hex_signature_matches("9a0aff", "9A0AFF"));
        assert!(!hex_signature_matches("9A0AFE", "9A0AFF"));
        assert!(!hex_signature_matches("9A0A", "9A0AFF"));
        assert!(!hex_signature_matches("", "9A0AFF"));
    }

    /// `md5_with_key` through the harness's host: WeChat's published MD5
    /// vector (providers.md 1.10) and the empty-string form `key=KEY`.
    #[test]
    fn md5_with_key_is_the_published_wechat_signature() {
        use crate::prelude::*;
        use crate::testing::Harness;
        struct Probe;
        impl Adapter for Probe {
            fn describe() -> AdapterInfo {
                unreachable!()
            }
            fn unified_order(ctx: &mut Ctx, req: &OrderRequest) -> Result<OrderCreated> {
                let key = ctx.config().secret("key")?;
                let sig = md5_with_key(ctx, &req.description, key)?;
                Ok(OrderCreated {
                    order: OrderRef {
                        merchant_order_no: String::new(),
                        provider_trade_no: None,
                        channel_transaction_id: None,
                    },
                    action: PayAction::QrCode(sig),
                })
            }
            fn query(_: &mut Ctx, _: &QueryRequest) -> Result<TradeStatus> {
                unreachable!()
            }
            fn refund(_: &mut Ctx, _: &RefundRequest) -> Result<RefundStatus> {
                unreachable!()
            }
            fn parse_notify(_: &mut Ctx, _: &InboundHttp) -> Result<NotifyOutcome> {
                unreachable!()
            }
        }
        let sign = |text: &str, key: &str| {
            let order = OrderRequest {
                merchant_order_no: "X".into(),
                amount: Money {
                    minor: 1,
                    currency: "CNY".into(),
                },
                description: text.into(),
                method: "m".into(),
                payer: Payer {
                    app_id: None,
                    openid: None,
                    client_ip: None,
                },
                expires_at: None,
                attach: None,
            };
            match Harness::<Probe>::new()
                .secret("key", key)
                .unified_order(&order)
                .unwrap()
                .action
            {
                PayAction::QrCode(s) => s,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            sign(
                "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA",
                "192006250b4c09247ec02edce69f6a2d"
            ),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
        // MD5("key=k")
        assert_eq!(
            sign("", "k"),
            crate::encoding::hex_upper(&crate::native::digest(
                crate::native::DigestAlgorithm::Md5,
                b"key=k"
            ))
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
