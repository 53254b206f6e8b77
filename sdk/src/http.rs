//! Building requests and reading responses.

use crate::types::{HttpMethod, HttpRequest, HttpResponse};

/// A POST with a body of the given content type.
pub fn post(url: impl Into<String>, content_type: &str, body: impl Into<Vec<u8>>) -> HttpRequest {
    HttpRequest {
        method: HttpMethod::Post,
        url: url.into(),
        headers: vec![("content-type".into(), content_type.into())],
        body: body.into(),
        client_identity: None,
    }
}

/// A GET without body.
pub fn get(url: impl Into<String>) -> HttpRequest {
    HttpRequest {
        method: HttpMethod::Get,
        url: url.into(),
        headers: vec![],
        body: vec![],
        client_identity: None,
    }
}

/// A response with a body of the given content type (for notification
/// acknowledgements).
pub fn response(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body: body.into(),
    }
}

/// The first value of a header, compared case-insensitively.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Joins a configured base URL and a path without doubling the slash.
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(join("https://a.b/", "/pay/x"), "https://a.b/pay/x");
        assert_eq!(join("https://a.b", "pay/x"), "https://a.b/pay/x");
        let r = post("u", "text/xml", "b");
        assert_eq!(header(&r.headers, "Content-Type"), Some("text/xml"));
        assert_eq!(header(&r.headers, "x"), None);
    }
}
