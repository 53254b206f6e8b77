//! Flat XML documents as WeChat Pay v2 uses them:
//! `<xml><name>value</name>...</xml>`, one level of elements, values as
//! text or CDATA.

use crate::error::FormatError;
use quick_xml::events::Event;
use std::collections::BTreeMap;

/// The fields of a flat XML document, by name.
pub type Fields = BTreeMap<String, String>;

/// Encodes fields as `<root><name>value</name>...</root>`, values escaped.
/// Fields keep the iteration order (a `BTreeMap` gives sorted names).
pub fn encode<'a, K, V>(root: &str, fields: impl IntoIterator<Item = (&'a K, &'a V)>) -> String
where
    K: AsRef<str> + ?Sized + 'a,
    V: AsRef<str> + ?Sized + 'a,
{
    let mut out = format!("<{root}>");
    for (k, v) in fields {
        let k = k.as_ref();
        out.push('<');
        out.push_str(k);
        out.push('>');
        out.push_str(&quick_xml::escape::escape(v.as_ref()));
        out.push_str("</");
        out.push_str(k);
        out.push('>');
    }
    out.push_str("</");
    out.push_str(root);
    out.push('>');
    out
}

/// Decodes a flat document. Returns the root element's name and its child
/// fields. Nested elements, duplicate fields and trailing garbage are
/// errors: a provider message that is not flat is not what we expect.
pub fn decode(input: &[u8]) -> Result<(String, Fields), FormatError> {
    let text =
        std::str::from_utf8(input).map_err(|_| FormatError::new("XML is not valid UTF-8"))?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut root: Option<String> = None;
    let mut fields = Fields::new();
    // The field being read: its name and the text gathered so far.
    let mut current: Option<(String, String)> = None;
    let mut closed = false;
    loop {
        let event = reader.read_event().map_err(|e| {
            FormatError::new(format!(
                "invalid XML at byte {}: {e}",
                reader.buffer_position()
            ))
        })?;
        match event {
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Start(e) => {
                let name = e.name().as_ref().to_string();
                if closed {
                    return Err(FormatError::new(format!(
                        "unexpected element <{name}> after the root"
                    )));
                }
                match (&root, &current) {
                    (None, _) => root = Some(name),
                    (Some(_), None) => current = Some((name, String::new())),
                    (Some(_), Some((field, _))) => {
                        return Err(FormatError::new(format!(
                            "nested element <{name}> inside <{field}>"
                        )));
                    }
                }
            }
            Event::Empty(e) => {
                let name = e.name().as_ref().to_string();
                match (&root, &current) {
                    (Some(_), None) if !closed => insert(&mut fields, name, String::new())?,
                    _ => {
                        return Err(FormatError::new(format!(
                            "unexpected empty element <{name}/>"
                        )));
                    }
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                match &mut current {
                    Some((_, value)) => value.push_str(&content),
                    None if content.trim().is_empty() => {}
                    None => return Err(FormatError::new("text outside of any field")),
                }
            }
            Event::CData(c) => match &mut current {
                Some((_, value)) => value.push_str(&c.xml10_content()),
                None => return Err(FormatError::new("CDATA outside of any field")),
            },
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| FormatError::new(format!("bad character reference: {e}")))?
                        .map(String::from)
                } else {
                    quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                        .map(String::from)
                };
                let resolved = resolved.ok_or_else(|| FormatError::new("unknown XML entity"))?;
                match &mut current {
                    Some((_, value)) => value.push_str(&resolved),
                    None => return Err(FormatError::new("entity outside of any field")),
                }
            }
            Event::End(e) => {
                let name = e.name().as_ref().to_string();
                match current.take() {
                    Some((field, value)) if field == name => insert(&mut fields, field, value)?,
                    Some((field, _)) => {
                        return Err(FormatError::new(format!("</{name}> closes <{field}>")));
                    }
                    None if root.as_deref() == Some(name.as_str()) => closed = true,
                    None => return Err(FormatError::new(format!("unexpected </{name}>"))),
                }
            }
            Event::Eof => break,
        }
    }
    match root {
        Some(root) if closed => Ok((root, fields)),
        Some(root) => Err(FormatError::new(format!("XML ends before </{root}>"))),
        None => Err(FormatError::new("empty XML document")),
    }
}

fn insert(fields: &mut Fields, name: String, value: String) -> Result<(), FormatError> {
    if fields.contains_key(&name) {
        return Err(FormatError::new(format!("field <{name}> appears twice")));
    }
    fields.insert(name, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_wechat_notification_style() {
        let doc = br#"<xml><return_code><![CDATA[SUCCESS]]></return_code>
            <total_fee>1</total_fee><attach><![CDATA[a&b <c>]]></attach>
            <body>x &amp; y &#x4e2d;</body><empty/></xml>"#;
        let (root, f) = decode(doc).unwrap();
        assert_eq!(root, "xml");
        assert_eq!(f["return_code"], "SUCCESS");
        assert_eq!(f["total_fee"], "1");
        assert_eq!(f["attach"], "a&b <c>");
        assert_eq!(f["body"], "x & y 中");
        assert_eq!(f["empty"], "");
    }

    #[test]
    fn encode_then_decode_roundtrips_special_characters() {
        let mut f = Fields::new();
        f.insert("body".into(), "T-shirt <red> & \"blue\"".into());
        f.insert("total_fee".into(), "100".into());
        let doc = encode("xml", &f);
        assert_eq!(
            doc,
            "<xml><body>T-shirt &lt;red&gt; &amp; &quot;blue&quot;</body><total_fee>100</total_fee></xml>"
        );
        assert_eq!(decode(doc.as_bytes()).unwrap(), ("xml".to_string(), f));
    }

    #[test]
    fn rejects_what_is_not_flat_xml() {
        for bad in [
            &b""[..],
            b"not xml",
            b"<xml><a>1</a>",
            b"<xml><a><b>1</b></a></xml>",
            b"<xml><a>1</a><a>2</a></xml>",
            b"<xml><a>1</b></xml>",
            b"<xml></xml><xml></xml>",
            b"<xml><a>&bogus;</a></xml>",
            b"\xff\xfe",
        ] {
            assert!(
                decode(bad).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
