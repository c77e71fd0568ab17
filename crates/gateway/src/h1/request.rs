//! Request heads the node's own client sends upstream.

use http::Method;
use http::header::{self, HeaderMap};

use super::{write_content_length, write_field};

/// Where a request goes on its upstream: the request target's parts and the `Host` to send.
pub struct RequestTarget<'a> {
    /// The target's path prefix without a trailing `/` (empty for the root).
    pub base_path: &'a str,
    /// The request path after the API's prefix (empty or starting with `/`).
    pub rest: &'a str,
    pub query: Option<&'a str>,
    pub host: &'a str,
}

/// Writes a request head into `out` (cleared first): request line, `Host`, the fields
/// `write_fields` writes, and the framing of `body_len` (any `Content-Length` the fields had is
/// the caller's to leave out).
pub fn encode_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &RequestTarget<'_>,
    write_fields: impl FnOnce(&mut Vec<u8>),
    body_len: usize,
) {
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.base_path.as_bytes());
    out.extend_from_slice(target.rest.as_bytes());
    if target.base_path.is_empty() && target.rest.is_empty() {
        out.push(b'/');
    }
    if let Some(query) = target.query {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(target.host.as_bytes());
    out.extend_from_slice(b"\r\n");
    write_fields(out);
    if body_len > 0 || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        write_content_length(out, body_len as u64);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes every field of `headers` but `Host` and `Content-Length` (which [`encode_head`]
/// writes itself).
pub fn write_header_map(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::HOST {
            continue;
        }
        write_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn request_heads() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1"));
        headers.insert("content-length", HeaderValue::from_static("99"));
        headers.insert("host", HeaderValue::from_static("client.example"));
        let mut out = Vec::new();
        let target = RequestTarget {
            base_path: "/base",
            rest: "/x",
            query: Some("q=1"),
            host: "up.example:8080",
        };
        encode_head(
            &mut out,
            &Method::POST,
            &target,
            |out| write_header_map(out, &headers),
            3,
        );
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /base/x?q=1 HTTP/1.1\r\nhost: up.example:8080\r\nx-a: 1\r\ncontent-length: 3\r\n\r\n"
        );
        let root = RequestTarget {
            base_path: "",
            rest: "",
            query: None,
            host: "up.example",
        };
        encode_head(&mut out, &Method::GET, &root, |_| {}, 0);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "GET / HTTP/1.1\r\nhost: up.example\r\n\r\n"
        );
        encode_head(&mut out, &Method::DELETE, &root, |_| {}, 0);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .ends_with("content-length: 0\r\n\r\n")
        );
    }
}
