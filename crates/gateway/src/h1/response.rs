//! Upstream response heads: the strict parse of what an upstream sends (`h1client` reads the
//! socket) into a status, the body's [`Framing`] and the end-to-end [`Fields`] as lines for
//! the writer of the client response.
//!
//! A head over [`MAX_RESPONSE_HEAD_BYTES`], a `Transfer-Encoding` other than `chunked` alone,
//! both `Transfer-Encoding` and `Content-Length`, or differing `Content-Length` values are
//! [`Malformed`], so a response can never be read with other framing than the upstream meant.

use bytes::{Buf, BytesMut};
use http::header::{HeaderMap, HeaderValue};
use http::{StatusCode, Version};

use super::chunked::ChunkedDecoder;
use super::{ConnectionOptions, X_REQUEST_ID, header_name, lists_token, parse_content_length};

/// Largest response head accepted from an upstream; also the most trailer bytes of a chunked
/// response.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields accepted in a response head.
pub const MAX_RESPONSE_FIELDS: usize = 128;

/// The response is not valid HTTP/1.1 or its framing is ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// How the response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Until the upstream closes (no length given); the connection is not reused.
    UntilClose,
    Done,
}

pub enum Parsed {
    /// A 1xx response was skipped; more may follow.
    Interim,
    Final(Head),
}

/// A final response head.
pub struct Head {
    pub status: StatusCode,
    pub version: Version,
    pub fields: Fields,
    pub framing: Framing,
    pub keep_alive: bool,
}

/// Parses a response head at the start of `buf` and consumes it; `None` when incomplete.
/// `head_method`: the request was `HEAD`, so the response has no body whatever it says.
pub fn parse(buf: &mut BytesMut, head_method: bool) -> Result<Option<Parsed>, Malformed> {
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_FIELDS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_RESPONSE_HEAD_BYTES => return Ok(None),
        _ => return Err(Malformed),
    };
    let code = parsed.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| Malformed)?;
    if status.is_informational() {
        // 100 Continue, 103 Early Hints…: not forwarded. A 101 is an upgrade this client
        // never asks for.
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Malformed);
        }
        buf.advance(len);
        return Ok(Some(Parsed::Interim));
    }
    let version = if parsed.version == Some(1) {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let mut keep_alive = version == Version::HTTP_11;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    // `Connection` names headers beyond close/keep-alive, which are hop-by-hop too.
    let mut connection_lists = false;
    // Each field's class, found once for both passes.
    let mut classes = [Class::Other; MAX_RESPONSE_FIELDS];
    for (field, class_slot) in parsed.headers.iter().zip(classes.iter_mut()) {
        let value = field.value;
        let class = Class::of(field.name.as_bytes());
        *class_slot = class;
        if class == Class::ContentLength {
            let n = parse_content_length(value.trim_ascii()).ok_or(Malformed)?;
            if content_length.is_some_and(|m| m != n) {
                return Err(Malformed);
            }
            content_length = Some(n);
        } else if class == Class::TransferEncoding {
            // Only `chunked`, alone: anything else could be read with other framing than meant.
            if chunked || !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(Malformed);
            }
            chunked = true;
        } else if class == Class::Connection {
            let options = ConnectionOptions::parse(value);
            options.apply(&mut keep_alive, version == Version::HTTP_10);
            connection_lists |= options.names_fields;
        }
    }
    if chunked && content_length.is_some() {
        return Err(Malformed);
    }
    // The end-to-end fields, as the lines to write: hop-by-hop ones never get here, so the
    // proxy need not strip them, and no header map is built unless hyper's server needs one.
    let mut fields = Fields {
        lines: Vec::with_capacity(len),
        content_length: None,
        has_date: false,
        has_request_id: false,
        request_id: None,
    };
    let head_start = buf.as_ptr() as usize;
    for (field, class) in parsed.headers.iter().zip(classes) {
        let name = field.name.as_bytes();
        match class {
            Class::HopByHop | Class::TransferEncoding | Class::Connection => continue,
            _ if connection_lists && listed_in_connection(parsed.headers, name) => continue,
            Class::ContentLength => fields.content_length = content_length,
            Class::Date => fields.has_date = true,
            Class::RequestId => fields.has_request_id = true,
            Class::Other => {}
        }
        // The field as it came, from its name to the end of its value (httparse checked the
        // separator and left out trailing whitespace); the line ending is always CRLF.
        let start = field.name.as_ptr() as usize - head_start;
        let end = field.value.as_ptr() as usize - head_start + field.value.len();
        fields.lines.extend_from_slice(&buf[start..end]);
        fields.lines.extend_from_slice(b"\r\n");
    }
    buf.advance(len);
    let no_body =
        head_method || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked(ChunkedDecoder::new(MAX_RESPONSE_HEAD_BYTES))
    } else if let Some(n) = content_length {
        Framing::Length(n)
    } else {
        keep_alive = false;
        Framing::UntilClose
    };
    Ok(Some(Parsed::Final(Head {
        status,
        version,
        fields,
        framing,
        keep_alive,
    })))
}

/// What a response header field's name means to the client, found with one comparison or two
/// (by length first) instead of one per name of interest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    ContentLength,
    TransferEncoding,
    Connection,
    /// The other hop-by-hop names of `headers::is_hop_by_hop`.
    HopByHop,
    Date,
    RequestId,
    Other,
}

impl Class {
    fn of(name: &[u8]) -> Class {
        // The usual spellings compare as whole words; any other case still matches.
        let is = |canonical: &[u8], lower: &[u8]| {
            name == canonical || name == lower || name.eq_ignore_ascii_case(lower)
        };
        match name.len() {
            2 if is(b"TE", b"te") => Class::HopByHop,
            4 if is(b"Date", b"date") => Class::Date,
            7 if is(b"Trailer", b"trailer") || is(b"Upgrade", b"upgrade") => Class::HopByHop,
            10 if is(b"Connection", b"connection") => Class::Connection,
            10 if is(b"Keep-Alive", b"keep-alive") => Class::HopByHop,
            12 if is(b"X-Request-ID", b"x-request-id") => Class::RequestId,
            14 if is(b"Content-Length", b"content-length") => Class::ContentLength,
            16 if is(b"Proxy-Connection", b"proxy-connection") => Class::HopByHop,
            17 if is(b"Transfer-Encoding", b"transfer-encoding") => Class::TransferEncoding,
            18 if is(b"Proxy-Authenticate", b"proxy-authenticate") => Class::HopByHop,
            19 if is(b"Proxy-Authorization", b"proxy-authorization") => Class::HopByHop,
            _ => Class::Other,
        }
    }
}

/// Whether a `Connection` field of the head names `name`.
fn listed_in_connection(fields: &[httparse::Header<'_>], name: &[u8]) -> bool {
    fields.iter().any(|field| {
        field.name.eq_ignore_ascii_case("connection") && lists_token(field.value, name)
    })
}

/// An upstream response's end-to-end header fields as `name: value` lines (CRLF-ended, in the
/// upstream's order and spelling), with the facts the writer of the client response needs.
#[derive(Debug, Default)]
pub struct Fields {
    lines: Vec<u8>,
    /// The upstream's `Content-Length`, which is among the lines.
    pub content_length: Option<u64>,
    /// Whether the lines have a `Date`.
    pub has_date: bool,
    has_request_id: bool,
    /// This hop's request id, when the upstream's response has none.
    pub request_id: Option<HeaderValue>,
}

impl Fields {
    /// The lines to write into a response head.
    pub fn lines(&self) -> &[u8] {
        &self.lines
    }

    /// Sets the request id the response carries unless the upstream named its own.
    pub fn set_request_id(&mut self, id: HeaderValue) {
        if !self.has_request_id {
            self.request_id = Some(id);
        }
    }

    /// Adds the fields to a header map, for a writer that needs one (hyper's server).
    pub fn append_to(self, headers: &mut HeaderMap) {
        for line in self.lines.split(|b| *b == b'\n') {
            let Some(line) = line.strip_suffix(b"\r") else {
                continue;
            };
            let Some(colon) = memchr::memchr(b':', line) else {
                continue;
            };
            let (Some(name), Ok(value)) = (
                header_name(&line[..colon]),
                HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
            ) else {
                continue;
            };
            headers.append(name, value);
        }
        if let Some(id) = self.request_id {
            headers.insert(X_REQUEST_ID.clone(), id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(raw: &str, head_method: bool) -> Result<Option<Parsed>, Malformed> {
        parse(&mut BytesMut::from(raw), head_method)
    }

    fn framing(raw: &str) -> Result<(Framing, bool), Malformed> {
        match parse_str(raw, false)? {
            Some(Parsed::Final(head)) => Ok((head.framing, head.keep_alive)),
            _ => panic!("not a final response"),
        }
    }

    #[test]
    fn response_framing() {
        let chunked = Framing::Chunked(ChunkedDecoder::new(MAX_RESPONSE_HEAD_BYTES));
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n"),
            Ok((Framing::Length(12), true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Ok((chunked, true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n"),
            Ok((Framing::Length(1), false))
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\n\r\n"),
            Ok((Framing::UntilClose, false))
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\ncontent-length: 0\r\n\r\n"),
            Ok((Framing::Length(0), true))
        );
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n"),
            Ok((Framing::Length(0), true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\n"),
            Ok((Framing::Length(3), true))
        );
        match parse_str("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", true) {
            Ok(Some(Parsed::Final(head))) => assert_eq!(head.framing, Framing::Length(0)),
            _ => panic!(),
        }
        assert!(matches!(
            parse_str("HTTP/1.1 100 Continue\r\n\r\n", false),
            Ok(Some(Parsed::Interim))
        ));
        assert!(matches!(
            parse_str("HTTP/1.1 200 OK\r\ncontent-le", false),
            Ok(None)
        ));
    }

    #[test]
    fn ambiguous_responses_are_refused() {
        for raw in [
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 1 2\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(matches!(parse_str(raw, false), Err(Malformed)), "{raw:?}");
        }
        let huge = format!(
            "HTTP/1.1 200 OK\r\nx: {}",
            "a".repeat(MAX_RESPONSE_HEAD_BYTES)
        );
        assert!(matches!(parse_str(&huge, false), Err(Malformed)));
    }

    /// The fields of a final response as a header map, and its lines.
    fn fields_of(raw: &str) -> (HeaderMap, String, bool) {
        let Ok(Some(Parsed::Final(head))) = parse_str(raw, false) else {
            panic!("not a final response: {raw}")
        };
        let lines = String::from_utf8(head.fields.lines().to_vec()).unwrap();
        let mut map = HeaderMap::new();
        head.fields.append_to(&mut map);
        (map, lines, head.keep_alive)
    }

    #[test]
    fn classes_agree_with_the_hop_by_hop_list() {
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "content-length",
            "date",
            "x-request-id",
            "content-type",
            "set-cookie",
        ] {
            let hop = matches!(
                Class::of(name.to_ascii_uppercase().as_bytes()),
                Class::HopByHop | Class::TransferEncoding | Class::Connection
            );
            assert_eq!(hop, crate::headers::is_hop_by_hop(name), "{name}");
        }
        assert_eq!(Class::of(b"Content-Length"), Class::ContentLength);
        assert_eq!(Class::of(b"X-Request-ID"), Class::RequestId);
        assert_eq!(Class::of(b"DATE"), Class::Date);
    }

    #[test]
    fn end_to_end_fields_are_kept_as_sent() {
        let (map, lines, _) = fields_of(
            "HTTP/1.1 201 Created\r\nX-One: 1\r\nset-cookie: a\r\nset-cookie: b\r\ncontent-length: 0\r\n\r\nrest",
        );
        assert_eq!(
            lines,
            "X-One: 1\r\nset-cookie: a\r\nset-cookie: b\r\ncontent-length: 0\r\n"
        );
        assert_eq!(map["x-one"], "1");
        let cookies: Vec<_> = map.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a", "b"]);
        let (map, lines, keep_alive) = fields_of(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\nx-private: 1\r\nUpgrade: h2c\r\nx-kept: 1\r\ncontent-length: 0\r\n\r\n",
        );
        assert!(keep_alive);
        assert_eq!(lines, "x-kept: 1\r\ncontent-length: 0\r\n");
        let names: Vec<_> = map.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-kept", "content-length"]);
    }

    #[test]
    fn the_request_id_is_added_only_when_the_upstream_has_none() {
        let id = HeaderValue::from_static("hop-id");
        let Ok(Some(Parsed::Final(Head {
            fields: mut own, ..
        }))) = parse_str("HTTP/1.1 200 OK\r\nX-Request-Id: up-id\r\n\r\n", false)
        else {
            panic!()
        };
        own.set_request_id(id.clone());
        let mut map = HeaderMap::new();
        own.append_to(&mut map);
        assert_eq!(map["x-request-id"], "up-id");
        let Ok(Some(Parsed::Final(Head {
            fields: mut none, ..
        }))) = parse_str("HTTP/1.1 200 OK\r\nDate: x\r\n\r\n", false)
        else {
            panic!()
        };
        assert!(none.has_date);
        none.set_request_id(id);
        let mut map = HeaderMap::new();
        none.append_to(&mut map);
        assert_eq!(map["x-request-id"], "hop-id");
    }
}
