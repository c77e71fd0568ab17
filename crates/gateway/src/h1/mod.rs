//! The HTTP/1.1 codec shared by the framing guard (`h1guard`), the node's own server
//! (`h1server`) and its upstream client (`h1client`): pure functions and state machines over
//! bytes, no IO. One copy of each wire rule: `Content-Length` values, `Connection` options,
//! field lines, chunked bodies (`chunked`), request heads (`request`) and response heads
//! (`response`).

pub mod chunked;
pub mod request;
pub mod response;

use http::header::{self, HeaderName};

/// `x-request-id`, which the node reads from requests and adds to responses.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// A `Content-Length` value: digits only, at most 18 of them so it fits in a u64 (no sign,
/// list or whitespace: a repeated or listed length is ambiguous framing).
#[inline]
pub fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The elements of a comma-separated field value (`Connection`, `Upgrade`), trimmed of
/// optional whitespace; empty elements are skipped (RFC 9110 §5.6.1).
#[inline]
pub fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|element| !element.is_empty())
}

/// Whether a comma-separated field value lists `token` (case-insensitively).
#[inline]
pub fn lists_token(value: &[u8], token: &[u8]) -> bool {
    list_elements(value).any(|element| element.eq_ignore_ascii_case(token))
}

/// What one `Connection` field says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionOptions {
    pub close: bool,
    pub keep_alive: bool,
    /// Names other than `close` and `keep-alive`: more hop-by-hop fields of this message.
    pub names_fields: bool,
}

impl ConnectionOptions {
    #[inline(always)]
    pub fn parse(value: &[u8]) -> ConnectionOptions {
        let mut options = ConnectionOptions::default();
        for token in value.split(|b| *b == b',') {
            let token = token.trim_ascii();
            if token.is_empty() {
                continue;
            }
            if token.eq_ignore_ascii_case(b"close") {
                options.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                options.keep_alive = true;
            } else {
                options.names_fields = true;
            }
        }
        options
    }

    /// Folds this field into whether the connection persists after the message: `close`
    /// ends it; `keep-alive` keeps an HTTP/1.0 one (HTTP/1.1 persists by default).
    #[inline(always)]
    pub fn apply(self, keep_alive: &mut bool, http10: bool) {
        if self.close {
            *keep_alive = false;
        } else if self.keep_alive && http10 {
            *keep_alive = true;
        }
    }
}

/// Appends one field line, `name: value` and CRLF.
/// Always inlined: four copies, called on every field line of the hot path.
#[inline(always)]
pub fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends a `content-length` field line.
#[inline]
pub fn write_content_length(out: &mut Vec<u8>, length: u64) {
    write_field(
        out,
        b"content-length",
        itoa::Buffer::new().format(length).as_bytes(),
    );
}

/// The name of a header field as it came off the wire; the usual spellings of the common
/// request and response fields skip the general parser (which lower-cases into a buffer, then
/// searches the standard names).
pub fn header_name(raw: &[u8]) -> Option<HeaderName> {
    Some(match raw {
        b"Host" | b"host" => header::HOST,
        b"User-Agent" | b"user-agent" => header::USER_AGENT,
        b"Accept" | b"accept" => header::ACCEPT,
        b"Accept-Encoding" | b"accept-encoding" => header::ACCEPT_ENCODING,
        b"Accept-Language" | b"accept-language" => header::ACCEPT_LANGUAGE,
        b"Authorization" | b"authorization" => header::AUTHORIZATION,
        b"Cookie" | b"cookie" => header::COOKIE,
        b"Content-Length" | b"content-length" => header::CONTENT_LENGTH,
        b"Content-Type" | b"content-type" => header::CONTENT_TYPE,
        b"Content-Encoding" | b"content-encoding" => header::CONTENT_ENCODING,
        b"Connection" | b"connection" => header::CONNECTION,
        b"Transfer-Encoding" | b"transfer-encoding" => header::TRANSFER_ENCODING,
        b"Date" | b"date" => header::DATE,
        b"Server" | b"server" => header::SERVER,
        b"Cache-Control" | b"cache-control" => header::CACHE_CONTROL,
        b"ETag" | b"etag" => header::ETAG,
        b"Last-Modified" | b"last-modified" => header::LAST_MODIFIED,
        b"Vary" | b"vary" => header::VARY,
        b"Set-Cookie" | b"set-cookie" => header::SET_COOKIE,
        b"Keep-Alive" | b"keep-alive" => KEEP_ALIVE.clone(),
        _ => return HeaderName::from_bytes(raw).ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths() {
        assert_eq!(parse_content_length(b"0"), Some(0));
        assert_eq!(parse_content_length(b"123"), Some(123));
        assert_eq!(
            parse_content_length(b"999999999999999999"),
            Some(999_999_999_999_999_999)
        );
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b"1 2",
            b"3, 3",
            b"0x3",
            b"1234567890123456789",
        ] {
            assert_eq!(parse_content_length(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn connection_options() {
        let parse = |v: &str| ConnectionOptions::parse(v.as_bytes());
        assert!(parse("Close").close);
        assert!(parse(" keep-alive , X-Private").keep_alive);
        assert!(parse("keep-alive, X-Private").names_fields);
        assert!(!parse("keep-alive,,").names_fields);
        let keep = |v: &str, http10: bool| {
            let mut keep_alive = !http10;
            parse(v).apply(&mut keep_alive, http10);
            keep_alive
        };
        assert!(keep("", false));
        assert!(!keep("close", false));
        assert!(!keep("", true));
        assert!(keep("keep-alive", true));
        assert!(!keep("keep-alive, close", true));
        assert!(lists_token(b"a, Upgrade", b"upgrade"));
        assert!(!lists_token(b"upgraded", b"upgrade"));
    }

    #[test]
    fn header_names_fast_and_general() {
        for raw in [
            "Content-Length",
            "content-length",
            "CONTENT-LENGTH",
            "Content-length",
        ] {
            assert_eq!(
                header_name(raw.as_bytes()),
                Some(header::CONTENT_LENGTH),
                "{raw}"
            );
        }
        assert_eq!(header_name(b"X-Custom").unwrap().as_str(), "x-custom");
        assert_eq!(header_name(b"Keep-Alive").unwrap().as_str(), "keep-alive");
        assert_eq!(header_name(b"bad name"), None);
    }

    #[test]
    fn field_lines() {
        let mut out = Vec::new();
        write_field(&mut out, b"x-a", b"1");
        write_content_length(&mut out, 42);
        assert_eq!(out, b"x-a: 1\r\ncontent-length: 42\r\n");
    }
}
