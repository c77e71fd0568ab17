//! Strict HTTP/1 framing in front of the HTTP/1 servers (the node's own, `h1server`, and
//! hyper's): a pure scanner that sees every byte a client sends before either parses it, and
//! decides where each message starts and ends.
//!
//! hyper 1.x is lenient where a proxy must not be: it accepts `Content-Length` together with
//! `Transfer-Encoding` (dropping the length), repeated identical lengths, bare LF line endings,
//! and it answers 431 for any head longer than its buffer even when the request line is at fault.
//! The scanner enforces SPEC §9 exactly and answers with the status the spec names. It is
//! sans-IO: [`Scanner::scan`] takes the bytes not yet released and says how many of them
//! are valid; `io.rs` does the reading. A rejected head never reaches a parser, so it is never
//! forwarded.

use http::StatusCode;

use crate::h1::chunked::{ChunkError, ChunkedDecoder, Piece};
use crate::h1::parse_content_length;

/// The byte limits of SPEC §9, taken from the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    pub max_request_line_bytes: usize,
    pub max_header_bytes: usize,
    pub max_headers_total_bytes: usize,
    pub max_headers: usize,
}

impl HeadLimits {
    /// The snapshot's limits, as sizes.
    pub fn of(limits: &protocol::Limits) -> HeadLimits {
        HeadLimits {
            max_request_line_bytes: limits.max_request_line_bytes as usize,
            max_header_bytes: limits.max_header_bytes as usize,
            max_headers_total_bytes: limits.max_headers_total_bytes as usize,
            max_headers: limits.max_headers as usize,
        }
    }
}

/// The defaults are `protocol::Limits`'s: the one definition of SPEC §9's numbers.
impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits::of(&protocol::Limits::default())
    }
}

/// Upper bound on `max_headers` so the parse array fits on the stack.
pub const MAX_HEADERS_CAP: usize = 256;

/// Why a message was refused; each maps to one status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Malformed or ambiguous framing → 400 and close.
    BadRequest(&'static str),
    /// Request line over the limit → 414.
    UriTooLong,
    /// One header, all headers, or too many headers → 431.
    HeadersTooLarge(&'static str),
    /// Head not received in time → 408.
    Timeout,
    /// CONNECT is not proxied → 405.
    MethodNotAllowed,
}

impl Reject {
    pub fn status(self) -> StatusCode {
        match self {
            Reject::BadRequest(_) => StatusCode::BAD_REQUEST,
            Reject::UriTooLong => StatusCode::URI_TOO_LONG,
            Reject::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reject::Timeout => StatusCode::REQUEST_TIMEOUT,
            Reject::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Reject::BadRequest(reason) | Reject::HeadersTooLarge(reason) => reason,
            Reject::UriTooLong => "request line too long",
            Reject::Timeout => "request head not received in time",
            Reject::MethodNotAllowed => "CONNECT is not supported",
        }
    }
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Nothing seen yet on this connection: may be the HTTP/2 preface.
    Start,
    /// Reading a request head.
    Head,
    /// A fixed-length body with this many bytes left.
    Body(u64),
    /// A chunked body, checked by the shared decoder (its data is not looked at).
    Chunked(ChunkedDecoder),
    /// HTTP/2 or an upgraded connection: bytes pass unexamined.
    Opaque,
}

/// The result of one [`Scanner::scan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Bytes from the start of the pending bytes that are valid.
    pub released: usize,
    /// The message after the released bytes is refused.
    pub reject: Option<Reject>,
}

/// Incremental strict HTTP/1 request framing.
#[derive(Debug)]
pub struct Scanner {
    limits: HeadLimits,
    state: State,
    /// Offset in the pending bytes up to which they have been examined.
    scanned: usize,
    /// Offset in the pending bytes where the current head line starts.
    line_start: usize,
    /// Lines completed in the current head (0 = in the request line).
    lines: usize,
    headers_total: usize,
    /// Whether any byte of the current head has arrived.
    head_started: bool,
    messages: u64,
}

impl Scanner {
    pub fn new(limits: HeadLimits) -> Scanner {
        Scanner {
            limits,
            state: State::Start,
            scanned: 0,
            line_start: 0,
            lines: 0,
            headers_total: 0,
            head_started: false,
            messages: 0,
        }
    }

    /// Whether bytes now pass unexamined (HTTP/2 or an upgraded connection).
    pub fn is_opaque(&self) -> bool {
        matches!(self.state, State::Opaque)
    }

    /// Whether the scanner waits for a head and has part of it (a header timeout applies).
    pub fn in_partial_head(&self) -> bool {
        matches!(self.state, State::Head | State::Start) && self.head_started
    }

    /// Whether the scanner waits for a head and nothing of it has arrived.
    pub fn idle(&self) -> bool {
        matches!(self.state, State::Head | State::Start) && !self.head_started
    }

    /// Complete request heads seen so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Bytes left of a fixed-length body, so the reader can read exactly that much.
    pub fn body_remaining(&self) -> Option<u64> {
        match self.state {
            State::Body(n) => Some(n),
            _ => None,
        }
    }

    /// Examines `pending` (the bytes not yet released, oldest first; the same prefix is passed
    /// again with more bytes appended until it is released) and returns how many bytes from the
    /// start are valid and may be released, and the rejection of the message after them, if
    /// any. The caller drops exactly `released` bytes from the front.
    pub fn scan(&mut self, pending: &[u8]) -> Scan {
        let mut released = 0;
        let reject = self.scan_inner(pending, &mut released).err();
        // Offsets become relative to what the caller keeps.
        self.scanned -= released.min(self.scanned);
        self.line_start -= released.min(self.line_start);
        Scan { released, reject }
    }

    /// Whether the scanner is inside a message body (a rejection there cannot be answered with
    /// a new response head; the connection is failed instead).
    pub fn in_body(&self) -> bool {
        matches!(self.state, State::Body(_) | State::Chunked(_))
    }

    fn scan_inner(&mut self, pending: &[u8], released: &mut usize) -> Result<(), Reject> {
        loop {
            match self.state {
                State::Opaque => {
                    *released = pending.len();
                    return Ok(());
                }
                State::Start => {
                    let avail = &pending[*released..];
                    if avail.is_empty() {
                        return Ok(());
                    }
                    let n = avail.len().min(H2_PREFACE.len());
                    if avail[..n] == H2_PREFACE[..n] {
                        if n == H2_PREFACE.len() {
                            self.state = State::Opaque;
                            continue;
                        }
                        self.head_started = true;
                        return Ok(());
                    }
                    self.state = State::Head;
                }
                State::Head => match self.scan_head(pending, *released)? {
                    Some(end) => {
                        *released = end;
                        self.messages += 1;
                        self.reset_head(end);
                    }
                    None => return Ok(()),
                },
                State::Body(remaining) => {
                    let avail = (pending.len() - *released) as u64;
                    if avail == 0 {
                        return Ok(());
                    }
                    let take = avail.min(remaining);
                    *released += take as usize;
                    self.state = if take == remaining {
                        State::Head
                    } else {
                        State::Body(remaining - take)
                    };
                    self.scanned = *released;
                    self.line_start = *released;
                }
                State::Chunked(_) => {
                    let done = self.scan_chunked(pending, *released)?;
                    *released = done;
                    self.scanned = done;
                    self.line_start = done;
                    if !matches!(self.state, State::Head) {
                        return Ok(());
                    }
                }
            }
            if *released == pending.len() && !matches!(self.state, State::Start) {
                return Ok(());
            }
        }
    }

    fn reset_head(&mut self, at: usize) {
        self.scanned = at;
        self.line_start = at;
        self.lines = 0;
        self.headers_total = 0;
        self.head_started = false;
    }

    /// Scans head bytes from `self.scanned`; returns the end offset of a complete valid head.
    fn scan_head(&mut self, pending: &[u8], head_start: usize) -> Result<Option<usize>, Reject> {
        if self.scanned < head_start {
            self.scanned = head_start;
            self.line_start = head_start;
        }
        let mut i = self.scanned;
        while i < pending.len() {
            self.head_started = true;
            // Jump to the next byte that matters; everything else is checked by httparse
            // once the head is complete.
            let Some(skip) = memchr::memchr3(b'\r', b'\n', 0, &pending[i..]) else {
                i = pending.len();
                break;
            };
            i += skip;
            let b = pending[i];
            match b {
                0 => return Err(Reject::BadRequest("NUL byte in request head")),
                b'\n' => return Err(Reject::BadRequest("bare LF in request head")),
                b'\r' => {
                    let Some(&next) = pending.get(i + 1) else {
                        // Wait for the byte after CR.
                        break;
                    };
                    if next != b'\n' {
                        return Err(Reject::BadRequest("bare CR in request head"));
                    }
                    let line_len = i - self.line_start;
                    let line = &pending[self.line_start..i];
                    i += 2;
                    if self.lines == 0 {
                        if line_len == 0 {
                            // RFC 9112 §2.2: ignore empty lines before the request line.
                            if i - head_start > 4 {
                                return Err(Reject::BadRequest("empty lines before request"));
                            }
                            self.line_start = i;
                            continue;
                        }
                        if line_len > self.limits.max_request_line_bytes {
                            return Err(Reject::UriTooLong);
                        }
                        self.lines = 1;
                    } else if line_len == 0 {
                        let end = i;
                        self.check_head(&pending[head_start..end])?;
                        return Ok(Some(end));
                    } else {
                        if line[0] == b' ' || line[0] == b'\t' {
                            return Err(Reject::BadRequest("obsolete line folding"));
                        }
                        self.check_header_line(line_len)?;
                    }
                    self.line_start = i;
                }
                _ => i += 1,
            }
        }
        self.scanned = i;
        // Refuse an over-long line as soon as it is over, without waiting for its end.
        let partial = i - self.line_start;
        if self.lines == 0 && partial > self.limits.max_request_line_bytes {
            return Err(Reject::UriTooLong);
        }
        if self.lines > 0 {
            if partial > self.limits.max_header_bytes {
                return Err(Reject::HeadersTooLarge("header line too long"));
            }
            if self.headers_total + partial > self.limits.max_headers_total_bytes {
                return Err(Reject::HeadersTooLarge("headers too large"));
            }
        }
        Ok(None)
    }

    fn check_header_line(&mut self, line_len: usize) -> Result<(), Reject> {
        if line_len > self.limits.max_header_bytes {
            return Err(Reject::HeadersTooLarge("header line too long"));
        }
        self.headers_total += line_len + 2;
        if self.headers_total > self.limits.max_headers_total_bytes {
            return Err(Reject::HeadersTooLarge("headers too large"));
        }
        self.lines += 1;
        if self.lines - 1 > self.limits.max_headers {
            return Err(Reject::HeadersTooLarge("too many headers"));
        }
        Ok(())
    }

    /// Parses a complete head (ending in CRLF CRLF) and decides the body framing.
    fn check_head(&mut self, head: &[u8]) -> Result<(), Reject> {
        // Uninitialised slots: zeroing 256 of them would cost more than parsing a small head.
        let mut storage =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
        let cap = self.limits.max_headers.min(MAX_HEADERS_CAP);
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(head, &mut storage[..cap]) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(Reject::BadRequest("incomplete request head"));
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Reject::HeadersTooLarge("too many headers"));
            }
            Err(_) => return Err(Reject::BadRequest("malformed request head")),
        }
        let method = req.method.unwrap_or("");
        let target = req.path.unwrap_or("");
        let http11 = req.version == Some(1);
        if method == "CONNECT" {
            return Err(Reject::MethodNotAllowed);
        }

        let mut content_length: Option<u64> = None;
        let mut cl_lines = 0;
        let mut te_lines = 0;
        let mut chunked = false;
        let mut hosts = 0;
        let mut host: &[u8] = b"";
        let mut upgrade = false;
        for header in req.headers.iter() {
            let name = header.name;
            let value = header.value.trim_ascii();
            if name.eq_ignore_ascii_case("content-length") {
                cl_lines += 1;
                content_length = Some(
                    parse_content_length(value)
                        .ok_or(Reject::BadRequest("malformed Content-Length"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                te_lines += 1;
                // Only exactly `chunked` is accepted: any other coding (or a list) is a
                // framing the upstream might read differently.
                if !value.eq_ignore_ascii_case(b"chunked") {
                    return Err(Reject::BadRequest("unsupported Transfer-Encoding"));
                }
                chunked = true;
            } else if name.eq_ignore_ascii_case("host") {
                hosts += 1;
                host = value;
            } else if name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        if cl_lines > 1 {
            return Err(Reject::BadRequest("repeated Content-Length"));
        }
        if te_lines > 1 {
            return Err(Reject::BadRequest("repeated Transfer-Encoding"));
        }
        if te_lines > 0 && cl_lines > 0 {
            return Err(Reject::BadRequest("Content-Length with Transfer-Encoding"));
        }
        if te_lines > 0 && !http11 {
            return Err(Reject::BadRequest("Transfer-Encoding in HTTP/1.0"));
        }
        if hosts > 1 {
            return Err(Reject::BadRequest("repeated Host"));
        }
        if hosts == 0 && http11 {
            return Err(Reject::BadRequest("missing Host"));
        }
        if !target.starts_with('/') && target != "*" {
            // Absolute form: the authority in the target must agree with Host.
            let authority = absolute_form_authority(target)
                .ok_or(Reject::BadRequest("malformed request target"))?;
            if hosts == 1 && !authority.as_bytes().eq_ignore_ascii_case(host) {
                return Err(Reject::BadRequest("request target and Host disagree"));
            }
        }

        self.state = if upgrade {
            // After an upgrade request the connection either switches protocols or is closed
            // by the proxy after its response, so later bytes are never read as HTTP/1.
            State::Opaque
        } else if chunked {
            State::Chunked(ChunkedDecoder::new(self.limits.max_headers_total_bytes))
        } else {
            match content_length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head,
            }
        };
        Ok(())
    }

    /// Scans chunked body bytes from `from`; returns the offset up to which they are valid.
    fn scan_chunked(&mut self, pending: &[u8], from: usize) -> Result<usize, Reject> {
        let mut i = from;
        while let State::Chunked(decoder) = &mut self.state {
            if i == pending.len() {
                break;
            }
            let (n, piece) = decoder
                .advance(&pending[i..])
                .map_err(|error| match error {
                    ChunkError::TrailersTooLarge => Reject::HeadersTooLarge(error.reason()),
                    _ => Reject::BadRequest(error.reason()),
                })?;
            i += n;
            if piece == Piece::End {
                self.state = State::Head;
            }
        }
        Ok(i)
    }
}

fn absolute_form_authority(target: &str) -> Option<&str> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes, releasing as the scanner says; returns the
    /// released byte count and the number of heads, or the rejection.
    fn run(input: &[u8], step: usize) -> Result<(usize, u64), Reject> {
        let mut scanner = Scanner::new(HeadLimits::default());
        let mut pending: Vec<u8> = Vec::new();
        let mut released = 0;
        for piece in input.chunks(step.max(1)) {
            pending.extend_from_slice(piece);
            let scan = scanner.scan(&pending);
            pending.drain(..scan.released);
            released += scan.released;
            if let Some(reject) = scan.reject {
                return Err(reject);
            }
        }
        Ok((released, scanner.messages()))
    }

    fn check(input: &str, expected: Result<u64, StatusCode>) {
        for step in [1, 3, 7, input.len()] {
            let got = run(input.as_bytes(), step)
                .map(|(_, m)| m)
                .map_err(Reject::status);
            assert_eq!(got, expected, "input {input:?} fed by {step}");
        }
    }

    #[test]
    fn valid_messages_pass_whole() {
        let two = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(run(two.as_bytes(), 5), Ok((two.len(), 2)));
        check(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
            Ok(1),
        );
        check(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            Ok(2),
        );
        check("GET / HTTP/1.0\r\n\r\n", Ok(1));
        check("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(1));
        check("GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n", Ok(1));
    }

    #[test]
    fn smuggling_vectors_are_refused() {
        let bad = StatusCode::BAD_REQUEST;
        for (input, status) in [
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                bad,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                bad,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                bad,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                bad,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                bad,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n",
                bad,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n",
                bad,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\n",
                bad,
            ),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", bad),
            ("GET / HTTP/1.1\nHost: a\n\n", bad),
            ("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", bad),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", bad),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", bad),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
                bad,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
                bad,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
                bad,
            ),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", bad),
            ("GET / HTTP/1.1\r\n\r\n", bad),
            ("GET http://b/x HTTP/1.1\r\nHost: a\r\n\r\n", bad),
            ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", bad),
            ("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", bad),
            (
                "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
                StatusCode::METHOD_NOT_ALLOWED,
            ),
        ] {
            check(input, Err(status));
        }
    }

    #[test]
    fn size_limits_have_their_own_status() {
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(8200));
        check(&long_target, Err(StatusCode::URI_TOO_LONG));
        // Refused before the line ends.
        assert_eq!(
            run(format!("GET /{}", "a".repeat(9000)).as_bytes(), 512),
            Err(Reject::UriTooLong)
        );
        let long_header = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "a".repeat(8200)
        );
        check(
            &long_header,
            Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        );
        let many: String = (0..101).map(|i| format!("X-{i}: 1\r\n")).collect();
        check(
            &format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n"),
            Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        );
        let exactly: String = (0..99).map(|i| format!("X-{i}: 1\r\n")).collect();
        check(
            &format!("GET / HTTP/1.1\r\nHost: a\r\n{exactly}\r\n"),
            Ok(1),
        );
        let big: String = (0..5)
            .map(|i| format!("X-{i}: {}\r\n", "b".repeat(7000)))
            .collect();
        check(
            &format!("GET / HTTP/1.1\r\nHost: a\r\n{big}\r\n"),
            Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        );
    }

    #[test]
    fn h2_preface_and_upgrades_go_opaque() {
        let mut scanner = Scanner::new(HeadLimits::default());
        assert_eq!(scanner.scan(b"PRI * HTTP/2.0\r\n").released, 0);
        let scan = scanner.scan(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0");
        assert_eq!(scan.released, 27);
        assert!(scanner.is_opaque());

        let mut scanner = Scanner::new(HeadLimits::default());
        let ws = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x00";
        assert_eq!(scanner.scan(ws).released, ws.len());
        assert!(scanner.is_opaque());
    }
}
