//! The upstream HTTP/1.1 client for plain `http://` targets: the proxy's hot path.
//!
//! hyper's pooled client runs every upstream connection in a task of its own and hands each
//! request to it through a channel, the response back through a oneshot and the response body
//! through another channel, and spawns a task per request to put the connection back in the
//! pool. Here the request's own task writes the request and reads the response on a pooled
//! socket, and the response body reads the socket directly while hyper's server writes it to the
//! client, like one event loop would. The connection goes back to its target's idle list when
//! the body has been read to its end.
//!
//! It is strict about what it accepts from upstreams: a response head over 64 KiB, a
//! `Transfer-Encoding` other than `chunked` alone, both `Transfer-Encoding` and
//! `Content-Length`, differing `Content-Length` values or a malformed chunk are refused
//! ([`UpstreamFailure::BadResponse`], 502) and the connection closed, so a response can never be
//! read with other framing than the upstream meant.
//!
//! HTTPS and h2c targets, WebSocket upgrades and streamed request bodies (unknown length or over
//! the replay buffer) still go through hyper's client (`upstream::build_client`).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::headers::{Forwarding, header_name};
use crate::upstream::{Target, UpstreamFailure};

/// Largest response head accepted from an upstream.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields accepted in a response head.
const MAX_HEADERS: usize = 128;
/// Read buffer of a connection; grows for large heads.
const READ_BUFFER: usize = 8 * 1024;
/// Idle connections kept per target.
const MAX_IDLE: usize = 1024;
/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT_MS: u64 = 90_000;
/// Longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// One upstream connection.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// Bytes read and not consumed yet.
    buf: BytesMut,
    /// The request head being written; kept with the connection so its capacity is reused.
    out: Vec<u8>,
}

/// The idle connections of one target, most recently used last.
#[derive(Debug, Default)]
pub struct Pool {
    idle: Mutex<VecDeque<(Conn, u64)>>,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Conn, u64)>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection that is still open.
    fn take(&self, now_ms: u64) -> Option<Conn> {
        let mut idle = self.lock();
        while let Some((conn, since)) = idle.pop_back() {
            if now_ms.saturating_sub(since) < IDLE_TIMEOUT_MS && conn.idle_and_open() {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, conn: Conn, now_ms: u64) {
        let mut idle = self.lock();
        // Close what expired at the cold end, so a burst's connections do not linger.
        while idle
            .front()
            .is_some_and(|(_, since)| now_ms.saturating_sub(*since) >= IDLE_TIMEOUT_MS)
        {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE {
            idle.push_back((conn, now_ms));
        }
    }

    /// Idle connections (for tests and metrics).
    pub fn idle_count(&self) -> usize {
        self.lock().len()
    }
}

impl Conn {
    /// An idle keep-alive connection has nothing to read. Readable means the upstream closed it
    /// (or sent bytes nobody asked for): either way it cannot carry a request. This asks the
    /// runtime's readiness state, which its event loop keeps, so it costs no system call.
    fn idle_and_open(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.buf.is_empty() && self.stream.poll_read_ready(&mut cx).is_pending()
    }
}

/// Writes the request head for `target`: request line, `Host`, the headers with this hop's
/// forwarding ([`Forwarding::write`]; with `None` the map already has them) and the framing of
/// `body_len` (any `Content-Length` of the client is replaced).
#[allow(clippy::too_many_arguments)]
pub fn encode_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &Target,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    forwarding: Option<&Forwarding<'_>>,
    body_len: usize,
) {
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.base_path.as_bytes());
    out.extend_from_slice(rest.as_bytes());
    if target.base_path.is_empty() && rest.is_empty() {
        out.push(b'/');
    }
    if let Some(query) = query {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(target.host_header.as_bytes());
    out.extend_from_slice(b"\r\n");
    match forwarding {
        Some(forwarding) => forwarding.write(out, headers),
        None => {
            for (name, value) in headers {
                if name == header::CONTENT_LENGTH || name == header::HOST {
                    continue;
                }
                out.extend_from_slice(name.as_str().as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    if body_len > 0 || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// What the caller of [`send`] knows about the request.
pub struct Exchange<'a> {
    pub method: &'a Method,
    /// The request path after the API's prefix (empty or starting with `/`).
    pub rest: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// This hop's forwarding headers; `None` when `headers` already has them.
    pub forwarding: Option<&'a Forwarding<'a>>,
    pub body: Option<&'a Bytes>,
    /// The request may be sent again if a reused connection turns out closed before any byte
    /// of a response (RFC 9110 §9.2.2: idempotent method, body kept).
    pub replayable: bool,
    pub connect_timeout: Duration,
    pub now_ms: u64,
}

/// Sends a request to `target` and reads the response head. The body reads the same socket.
pub async fn send(
    target: &Arc<Target>,
    exchange: Exchange<'_>,
) -> Result<Response<H1Body>, UpstreamFailure> {
    let mut reused = target.pool.take(exchange.now_ms);
    loop {
        let was_reused = reused.is_some();
        let mut conn = match reused.take() {
            Some(conn) => conn,
            None => connect(target, exchange.connect_timeout).await?,
        };
        match exchange_on(&mut conn, target, &exchange).await {
            Ok(head) => {
                let body = H1Body {
                    conn: Some(conn),
                    fields: Some(head.fields),
                    framing: head.framing,
                    keep_alive: head.keep_alive,
                    target: target.clone(),
                    now_ms: exchange.now_ms,
                };
                let mut response = Response::new(body);
                *response.status_mut() = head.status;
                *response.version_mut() = head.version;
                return Ok(response);
            }
            // The upstream closed an idle connection while it was being taken from the pool:
            // nothing of this request was processed, so it goes once more on a new connection.
            Err(Attempt::Closed) if was_reused && exchange.replayable => continue,
            Err(Attempt::Closed) => return Err(UpstreamFailure::ConnectionDropped),
            Err(Attempt::Failed(failure)) => return Err(failure),
        }
    }
}

enum Attempt {
    /// The connection ended (EOF, reset, broken pipe) before any byte of a response.
    Closed,
    Failed(UpstreamFailure),
}

async fn exchange_on(
    conn: &mut Conn,
    target: &Target,
    exchange: &Exchange<'_>,
) -> Result<Head, Attempt> {
    encode_head(
        &mut conn.out,
        exchange.method,
        target,
        exchange.rest,
        exchange.query,
        exchange.headers,
        exchange.forwarding,
        exchange.body.map_or(0, Bytes::len),
    );
    let write = async {
        conn.stream.write_all(&conn.out).await?;
        if let Some(body) = exchange.body {
            conn.stream.write_all(body).await?;
        }
        Ok::<_, io::Error>(())
    };
    if let Err(error) = write.await {
        return Err(closed_or(error));
    }
    let mut received_any = false;
    loop {
        if conn.buf.capacity() - conn.buf.len() < 1024 {
            conn.buf.reserve(READ_BUFFER);
        }
        if !conn.buf.is_empty() {
            match parse_head(&mut conn.buf, *exchange.method == Method::HEAD) {
                Ok(Some(Parsed::Final(head))) => return Ok(head),
                Ok(Some(Parsed::Interim)) => continue,
                Ok(None) => {}
                Err(failure) => return Err(Attempt::Failed(failure)),
            }
        }
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) if !received_any => return Err(Attempt::Closed),
            Ok(0) => return Err(Attempt::Failed(UpstreamFailure::ConnectionDropped)),
            Ok(_) => received_any = true,
            Err(error) if !received_any => return Err(closed_or(error)),
            Err(_) => return Err(Attempt::Failed(UpstreamFailure::ConnectionDropped)),
        }
    }
}

fn closed_or(error: io::Error) -> Attempt {
    use io::ErrorKind::*;
    match error.kind() {
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => Attempt::Closed,
        _ => Attempt::Failed(UpstreamFailure::ConnectionDropped),
    }
}

enum Parsed {
    /// A 1xx response was skipped; more may follow.
    Interim,
    Final(Head),
}

/// A final response head.
struct Head {
    status: StatusCode,
    version: Version,
    fields: Fields,
    framing: Framing,
    keep_alive: bool,
}

/// Parses a response head at the start of `buf` and consumes it; `None` when incomplete.
fn parse_head(buf: &mut BytesMut, head_method: bool) -> Result<Option<Parsed>, UpstreamFailure> {
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD_BYTES => return Ok(None),
        _ => return Err(UpstreamFailure::BadResponse),
    };
    let code = parsed.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| UpstreamFailure::BadResponse)?;
    if status.is_informational() {
        // 100 Continue, 103 Early Hints…: not forwarded. A 101 is an upgrade this client
        // never asks for.
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(UpstreamFailure::BadResponse);
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
    let mut classes = [Class::Other; MAX_HEADERS];
    for (field, class_slot) in parsed.headers.iter().zip(classes.iter_mut()) {
        let value = field.value;
        let class = Class::of(field.name.as_bytes());
        *class_slot = class;
        if class == Class::ContentLength {
            let n = crate::h1guard::parse_content_length(value.trim_ascii())
                .ok_or(UpstreamFailure::BadResponse)?;
            if content_length.is_some_and(|m| m != n) {
                return Err(UpstreamFailure::BadResponse);
            }
            content_length = Some(n);
        } else if class == Class::TransferEncoding {
            // Only `chunked`, alone: anything else could be read with other framing than meant.
            if chunked || !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(UpstreamFailure::BadResponse);
            }
            chunked = true;
        } else if class == Class::Connection {
            for token in value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    if version == Version::HTTP_10 {
                        keep_alive = true;
                    }
                } else if !token.is_empty() {
                    connection_lists = true;
                }
            }
        }
    }
    if chunked && content_length.is_some() {
        return Err(UpstreamFailure::BadResponse);
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
        Framing::Chunked(Chunk::Size)
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
        field.name.eq_ignore_ascii_case("connection")
            && field
                .value
                .split(|b| *b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(name))
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
            headers.insert(crate::headers::X_REQUEST_ID.clone(), id);
        }
    }
}

async fn connect(target: &Target, timeout: Duration) -> Result<Conn, UpstreamFailure> {
    let attempt = async {
        let port = target.authority.port_u16().unwrap_or(80);
        let host = target.authority.host();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match literal.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => match tokio::net::lookup_host((host, port)).await {
                Ok(addrs) => addrs.collect(),
                Err(_) => return Err(UpstreamFailure::HostNotFound),
            },
        };
        if addrs.is_empty() {
            return Err(UpstreamFailure::HostNotFound);
        }
        let mut failure = UpstreamFailure::HostRouting;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(Conn {
                        stream,
                        buf: BytesMut::with_capacity(READ_BUFFER),
                        out: Vec::with_capacity(1024),
                    });
                }
                Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                    failure = UpstreamFailure::ConnectTimeout;
                }
                Err(_) => {}
            }
        }
        Err(failure)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(UpstreamFailure::ConnectTimeout))
}

/// How the response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes (no length given); the connection is not reused.
    UntilClose,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one (trailers are not forwarded).
    Trailers,
}

/// Why a response body could not be read to its end; the client connection is cut, as a
/// truncated body must not look complete.
#[derive(Debug, thiserror::Error)]
pub enum BodyReadError {
    #[error("upstream closed the connection before the end of the response body")]
    Truncated,
    #[error("upstream sent a malformed chunked body")]
    BadChunk,
    #[error("reading the upstream response body: {0}")]
    Io(#[from] io::Error),
}

/// A response body read from the upstream socket; the connection returns to the target's pool
/// at its end.
#[derive(Debug)]
pub struct H1Body {
    conn: Option<Conn>,
    /// The response's header fields, until the writer of the client response takes them.
    fields: Option<Fields>,
    framing: Framing,
    keep_alive: bool,
    target: Arc<Target>,
    now_ms: u64,
}

impl H1Body {
    /// The response's header fields; the writer of the client response takes them once.
    pub fn fields_mut(&mut self) -> Option<&mut Fields> {
        self.fields.as_mut()
    }

    pub fn take_fields(&mut self) -> Option<Fields> {
        self.fields.take()
    }

    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            self.target.pool.put(conn, self.now_ms);
        }
    }

    /// Reads more from the socket; `Ok(false)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, io::Error>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        if conn.buf.capacity() - conn.buf.len() < 1024 {
            conn.buf.reserve(READ_BUFFER);
        }
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut conn.stream),
            cx,
            &mut conn.buf
        ))?;
        Poll::Ready(Ok(n > 0))
    }

    fn buffered(&mut self) -> &mut BytesMut {
        &mut self
            .conn
            .as_mut()
            .expect("connection present until done")
            .buf
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyReadError>>> {
        loop {
            match self.framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(0) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Framing::Length(left) => {
                    let buf = self.buffered();
                    if !buf.is_empty() {
                        let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                        let data = buf.split_to(take).freeze();
                        let left = left - take as u64;
                        self.framing = Framing::Length(left);
                        if left == 0 {
                            self.finish();
                        }
                        return Poll::Ready(Some(Ok(data)));
                    }
                    if !ready!(self.poll_fill(cx))? {
                        self.conn = None;
                        return Poll::Ready(Some(Err(BodyReadError::Truncated)));
                    }
                }
                Framing::UntilClose => {
                    let buf = self.buffered();
                    if !buf.is_empty() {
                        return Poll::Ready(Some(Ok(buf.split().freeze())));
                    }
                    if !ready!(self.poll_fill(cx))? {
                        self.conn = None;
                        self.framing = Framing::Done;
                        return Poll::Ready(None);
                    }
                }
                Framing::Chunked(state) => {
                    match decode_chunked(self.buffered(), state) {
                        Err(()) => {
                            self.conn = None;
                            self.framing = Framing::Done;
                            return Poll::Ready(Some(Err(BodyReadError::BadChunk)));
                        }
                        Ok(Decoded::Data(data, next)) => {
                            self.framing = Framing::Chunked(next);
                            return Poll::Ready(Some(Ok(data)));
                        }
                        Ok(Decoded::State(next)) => {
                            self.framing = Framing::Chunked(next);
                            continue;
                        }
                        Ok(Decoded::End) => {
                            self.finish();
                            return Poll::Ready(None);
                        }
                        Ok(Decoded::NeedMore(next)) => {
                            self.framing = Framing::Chunked(next);
                        }
                    }
                    if !ready!(self.poll_fill(cx))? {
                        self.conn = None;
                        self.framing = Framing::Done;
                        return Poll::Ready(Some(Err(BodyReadError::Truncated)));
                    }
                }
            }
        }
    }
}

enum Decoded {
    Data(Bytes, Chunk),
    State(Chunk),
    NeedMore(Chunk),
    End,
}

/// One step of the chunked decoder over the buffered bytes.
fn decode_chunked(buf: &mut BytesMut, state: Chunk) -> Result<Decoded, ()> {
    match state {
        Chunk::Size => {
            let Some(line_end) = find_crlf(buf) else {
                return if buf.len() > MAX_CHUNK_LINE {
                    Err(())
                } else {
                    Ok(Decoded::NeedMore(state))
                };
            };
            if line_end > MAX_CHUNK_LINE {
                return Err(());
            }
            let line = &buf[..line_end];
            let digits = line
                .iter()
                .position(|b| !b.is_ascii_hexdigit())
                .unwrap_or(line.len());
            if digits == 0 || digits > 15 {
                return Err(());
            }
            // After the size: nothing, or chunk extensions (`;name=value`, after optional
            // whitespace), which are ignored.
            let after = &line[digits..];
            let after_ws = after.trim_ascii_start();
            if !after_ws.is_empty() && after_ws[0] != b';' {
                return Err(());
            }
            let size =
                u64::from_str_radix(std::str::from_utf8(&line[..digits]).map_err(|_| ())?, 16)
                    .map_err(|_| ())?;
            buf.advance(line_end + 2);
            Ok(Decoded::State(if size == 0 {
                Chunk::Trailers
            } else {
                Chunk::Data(size)
            }))
        }
        Chunk::Data(left) => {
            if buf.is_empty() {
                return Ok(Decoded::NeedMore(state));
            }
            let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let data = buf.split_to(take).freeze();
            let left = left - take as u64;
            let next = if left == 0 {
                Chunk::DataEnd
            } else {
                Chunk::Data(left)
            };
            Ok(Decoded::Data(data, next))
        }
        Chunk::DataEnd => {
            if buf.len() < 2 {
                return Ok(Decoded::NeedMore(state));
            }
            if &buf[..2] != b"\r\n" {
                return Err(());
            }
            buf.advance(2);
            Ok(Decoded::State(Chunk::Size))
        }
        Chunk::Trailers => {
            let Some(line_end) = find_crlf(buf) else {
                return if buf.len() > MAX_HEAD_BYTES {
                    Err(())
                } else {
                    Ok(Decoded::NeedMore(state))
                };
            };
            buf.advance(line_end + 2);
            if line_end == 0 {
                Ok(Decoded::End)
            } else {
                Ok(Decoded::State(Chunk::Trailers))
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

impl Drop for H1Body {
    /// A body with nothing left (HEAD, 204, 304, `Content-Length: 0`) may never be polled, as
    /// hyper sees its end from `is_end_stream`; its connection is still good for the pool.
    fn drop(&mut self) {
        if self.framing == Framing::Length(0) {
            self.finish();
        }
    }
}

impl http_body::Body for H1Body {
    type Data = Bytes;
    type Error = BodyReadError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyReadError>>> {
        let this = self.get_mut();
        this.poll_next(cx)
            .map(|next| next.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Done | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, head_method: bool) -> Result<Option<Parsed>, UpstreamFailure> {
        parse_head(&mut BytesMut::from(raw), head_method)
    }

    fn framing(raw: &str) -> Result<(Framing, bool), UpstreamFailure> {
        match parse(raw, false)? {
            Some(Parsed::Final(head)) => Ok((head.framing, head.keep_alive)),
            _ => panic!("not a final response"),
        }
    }

    #[test]
    fn response_framing() {
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n"),
            Ok((Framing::Length(12), true))
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Ok((Framing::Chunked(Chunk::Size), true))
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
        match parse("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", true) {
            Ok(Some(Parsed::Final(head))) => assert_eq!(head.framing, Framing::Length(0)),
            _ => panic!(),
        }
        assert!(matches!(
            parse("HTTP/1.1 100 Continue\r\n\r\n", false),
            Ok(Some(Parsed::Interim))
        ));
        assert!(matches!(
            parse("HTTP/1.1 200 OK\r\ncontent-le", false),
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
            assert!(
                matches!(parse(raw, false), Err(UpstreamFailure::BadResponse)),
                "{raw:?}"
            );
        }
        let huge = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD_BYTES));
        assert!(matches!(
            parse(&huge, false),
            Err(UpstreamFailure::BadResponse)
        ));
    }

    /// The fields of a final response as a header map, and its lines.
    fn fields_of(raw: &str) -> (HeaderMap, String, bool) {
        let Ok(Some(Parsed::Final(head))) = parse(raw, false) else {
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
        }))) = parse("HTTP/1.1 200 OK\r\nX-Request-Id: up-id\r\n\r\n", false)
        else {
            panic!()
        };
        own.set_request_id(id.clone());
        let mut map = HeaderMap::new();
        own.append_to(&mut map);
        assert_eq!(map["x-request-id"], "up-id");
        let Ok(Some(Parsed::Final(Head {
            fields: mut none, ..
        }))) = parse("HTTP/1.1 200 OK\r\nDate: x\r\n\r\n", false)
        else {
            panic!()
        };
        assert!(none.has_date);
        none.set_request_id(id);
        let mut map = HeaderMap::new();
        none.append_to(&mut map);
        assert_eq!(map["x-request-id"], "hop-id");
    }

    fn dechunk(raw: &[u8]) -> Result<Vec<u8>, ()> {
        let mut buf = BytesMut::from(raw);
        let mut state = Chunk::Size;
        let mut out = Vec::new();
        loop {
            match decode_chunked(&mut buf, state)? {
                Decoded::Data(data, next) => {
                    out.extend_from_slice(&data);
                    state = next;
                }
                Decoded::State(next) => state = next,
                Decoded::NeedMore(_) => return Err(()),
                Decoded::End => return Ok(out),
            }
        }
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nx-trailer: 1\r\n\r\n").unwrap(),
            b"hello!"
        );
        assert_eq!(dechunk(b"0\r\n\r\n").unwrap(), b"");
        for bad in [
            &b"5\r\nhelloX\r\n0\r\n\r\n"[..],
            b"g\r\n",
            b"-1\r\n",
            b"ffffffffffffffff1\r\n",
            b"5 x\r\nhello\r\n",
        ] {
            assert!(dechunk(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn request_heads() {
        let target = Target::parse("http://up.example:8080/base/").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1"));
        headers.insert("content-length", HeaderValue::from_static("99"));
        let mut out = Vec::new();
        encode_head(
            &mut out,
            &Method::POST,
            &target,
            "/x",
            Some("q=1"),
            &headers,
            None,
            3,
        );
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /base/x?q=1 HTTP/1.1\r\nhost: up.example:8080\r\nx-a: 1\r\ncontent-length: 3\r\n\r\n"
        );
        let root = Target::parse("http://up.example:80").unwrap();
        encode_head(
            &mut out,
            &Method::GET,
            &root,
            "",
            None,
            &HeaderMap::new(),
            None,
            0,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET / HTTP/1.1\r\nhost: up.example\r\n\r\n"
        );
    }
}
