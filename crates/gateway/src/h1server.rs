//! The node's own HTTP/1.1 server for client connections: the proxy's hot path, as
//! `h1client` is on the upstream side.
//!
//! Every byte still passes the framing guard first (`io::GuardedIo`): this module only reads
//! what the guard validated. It serves the common request, a head whose body (if any) arrived
//! with it, straight from the guard's buffer: one parse into the request, the handler awaited
//! in the connection's task, and the response head and a small body written with one system
//! call. Anything else (a body still on its way, a chunked body, an upgrade, `Expect`, HTTP/2,
//! a head the `http` types refuse) hands the connection over to hyper's server, which then
//! serves it to its end and answers exactly as before. Nothing is lost in the handover: the
//! head stays in the guard's buffer and hyper reads it from there.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::io;
use std::mem::MaybeUninit;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::body::{ClientBody, MAX_BUFFERED_BODY_BYTES, RespBody};
use crate::h1::chunked::size_line;
use crate::h1::{
    ConnectionOptions, header_name, lists_token, parse_content_length, write_content_length,
    write_field,
};
use crate::h1guard::MAX_HEADERS_CAP;
use crate::io::{GuardedIo, StreamState};
use crate::proxy::{ClientConn, panicked, refused, respond};

/// Response body bytes gathered behind the head before a write.
const COALESCE_BYTES: usize = 16 * 1024;

/// What the writer needs to know about the request being answered.
#[derive(Clone, Copy)]
struct RequestFacts {
    version: Version,
    keep_alive: bool,
    head_method: bool,
}

/// Serves requests until the connection ends (`None`) or needs hyper's server (`Some`: the
/// rest of the connection is hyper's; its next request is still in the guard's buffer).
/// `stop` turns true when the node stops: an idle connection then closes; a request in
/// progress is answered first.
pub async fn serve<T>(
    mut io: GuardedIo<T>,
    ctx: &ClientConn,
    mut stop: watch::Receiver<bool>,
) -> Option<GuardedIo<T>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut out = Vec::with_capacity(4096);
    let mut stop_signal = pin!(stop.wait_for(|stopped| *stopped));
    loop {
        // HTTP/2, or bytes after an upgrade request: hyper's, with what was read of them.
        if io.state() == StreamState::Opaque {
            return Some(io);
        }
        if !io.validated().is_empty() {
            let Some((request, consumed, facts)) = parse_request(io.validated()) else {
                return Some(io);
            };
            io.consume(consumed);
            // Pinned here rather than inside the helper: a future is copied each time it is
            // moved into a parent's state, and this one is about 2 KB.
            let handler = pin!(respond(ctx, request));
            // `None`: the client went away while waiting, so there is nothing to answer.
            let response = respond_unless_gone(&mut io, ctx, handler).await?;
            match write_response(io.io_mut(), &mut out, response, facts).await {
                Ok(true) => continue,
                Ok(false) => return close(io).await,
                Err(_) => return None,
            }
        }
        match io.state() {
            StreamState::Open | StreamState::Opaque => {}
            StreamState::Refused(reject) => {
                let response = refused(ctx, reject);
                let facts = RequestFacts {
                    version: Version::HTTP_11,
                    keep_alive: false,
                    head_method: false,
                };
                let _ = write_response(io.io_mut(), &mut out, response, facts).await;
                return close(io).await;
            }
            StreamState::Ended => return close(io).await,
        }
        // Wait for more of the client; the stop signal is looked at only when there is
        // nothing to read, so it costs nothing while requests keep coming.
        let filled = poll_fn(|cx| match io.poll_fill(cx) {
            Poll::Ready(result) => Poll::Ready(Some(result)),
            Poll::Pending => match stop_signal.as_mut().poll(cx) {
                Poll::Ready(_) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        })
        .await;
        match filled {
            Some(Ok(())) => {}
            Some(Err(_)) => return None,
            None => return close(io).await,
        }
    }
}

/// Awaits the handler while watching the client: if it goes away first, the handler is
/// dropped, which releases its claims and the upstream connection (`None`). A pipelined
/// request that arrives meanwhile stays in the guard's buffer, and watching stops there.
fn respond_unless_gone<T: AsyncRead + Unpin>(
    io: &mut GuardedIo<T>,
    ctx: &ClientConn,
    mut handler: Pin<&mut impl Future<Output = Response<RespBody>>>,
) -> impl Future<Output = Option<Response<RespBody>>> {
    let mut watching = true;
    poll_fn(move |cx| {
        // A panic answers 500 for this request only; the handler is not polled again.
        match catch_unwind(AssertUnwindSafe(|| handler.as_mut().poll(cx))) {
            Ok(Poll::Ready(response)) => return Poll::Ready(Some(response)),
            Ok(Poll::Pending) => {}
            Err(_) => return Poll::Ready(Some(panicked(ctx))),
        }
        while watching {
            match io.poll_fill(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(())) => match io.state() {
                    StreamState::Ended => return Poll::Ready(None),
                    StreamState::Open if io.validated().is_empty() => {}
                    _ => watching = false,
                },
            }
        }
        Poll::Pending
    })
}

async fn close<T: AsyncRead + AsyncWrite + Unpin>(mut io: GuardedIo<T>) -> Option<GuardedIo<T>> {
    let _ = io.io_mut().shutdown().await;
    None
}

/// Parses the request at the start of `validated` (a whole head, as the guard releases them)
/// with its body; `None` when it is not one this server takes.
fn parse_request(validated: &[u8]) -> Option<(Request<ClientBody>, usize, RequestFacts)> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let mut parsed = httparse::Request::new(&mut []);
    let head_len = match parsed.parse_with_uninit_headers(validated, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return None,
    };
    let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    let version = match parsed.version? {
        1 => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    let target = parsed.path?;
    let mut keep_alive = version == Version::HTTP_11;
    let mut content_length = 0;
    for field in parsed.headers.iter() {
        let name = field.name.as_bytes();
        let value = field.value;
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length = parse_content_length(value.trim_ascii())?;
        } else if name.eq_ignore_ascii_case(b"connection") {
            ConnectionOptions::parse(value).apply(&mut keep_alive, version == Version::HTTP_10);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"expect")
        {
            // A chunked body, a protocol switch or an interim response: hyper's.
            return None;
        }
    }
    // Larger bodies (rare on this path) go to hyper.
    if content_length > MAX_BUFFERED_BODY_BYTES {
        return None;
    }
    let total = head_len + content_length as usize;
    if validated.len() < total {
        // The body is still on its way.
        return None;
    }
    // One copy of head and body; the path and the header values share it. The parsed fields
    // point into `validated`, so their offsets there are their offsets in the copy.
    let bytes = Bytes::copy_from_slice(&validated[..total]);
    let base = validated.as_ptr() as usize;
    let shared = |part: &[u8]| {
        let at = part.as_ptr() as usize - base;
        bytes.slice(at..at + part.len())
    };
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for field in parsed.headers.iter() {
        let name = header_name(field.name.as_bytes())?;
        let value = HeaderValue::from_maybe_shared(shared(field.value)).ok()?;
        headers.append(name, value);
    }
    let uri = Uri::from_maybe_shared(shared(target.as_bytes())).ok()?;
    let body = (content_length > 0).then(|| bytes.slice(head_len..total));
    let mut request = Request::new(ClientBody::Buffered(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    let facts = RequestFacts {
        version,
        keep_alive,
        head_method: request.method() == Method::HEAD,
    };
    Some((request, total, facts))
}

/// Writes `response`; `Ok(false)` when the connection must close after it.
async fn write_response<T: AsyncWrite + Unpin>(
    io: &mut T,
    out: &mut Vec<u8>,
    response: Response<RespBody>,
    facts: RequestFacts,
) -> io::Result<bool> {
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let mut keep_alive = facts.keep_alive;
    out.clear();
    if parts.version == Version::HTTP_10 {
        out.extend_from_slice(b"HTTP/1.0 ");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
    }
    if status == StatusCode::OK {
        out.extend_from_slice(b"200 OK\r\n");
    } else {
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let mut length = None;
    let mut has_date = false;
    if let Some(fields) = body.take_fields() {
        // A response from the node's own client: its fields are lines to copy as they are.
        out.extend_from_slice(fields.lines());
        length = fields.content_length;
        has_date = fields.has_date;
        if let Some(id) = &fields.request_id {
            write_field(out, b"x-request-id", id.as_bytes());
        }
    }
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH {
            length = parse_content_length(value.as_bytes());
        } else if name == header::DATE {
            has_date = true;
        } else if name == header::CONNECTION || name == header::TRANSFER_ENCODING {
            // This hop's framing and connection handling are decided here.
            if name == header::CONNECTION && lists_token(value.as_bytes(), b"close") {
                keep_alive = false;
            }
            continue;
        }
        write_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        write_date(out);
        out.extend_from_slice(b"\r\n");
    }
    let no_body = facts.head_method
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let mut chunked = false;
    if length.is_none() && status != StatusCode::NO_CONTENT && !status.is_informational() {
        match body.size_hint().exact() {
            // A HEAD answer's empty body says nothing of the resource's length.
            Some(n) if status != StatusCode::NOT_MODIFIED && !(facts.head_method && n == 0) => {
                write_content_length(out, n);
                length = Some(n);
            }
            Some(_) => {}
            None if no_body => {}
            None if facts.version == Version::HTTP_11 => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                chunked = true;
            }
            // An HTTP/1.0 client reads an unknown length to the end of the connection.
            None => keep_alive = false,
        }
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if facts.version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");

    if no_body {
        // Dropping the body releases its claims (and returns an upstream connection whose
        // response had no body).
        drop(body);
        io.write_all(out).await?;
        io.flush().await?;
        return Ok(keep_alive);
    }
    let mut written: u64 = 0;
    while !body.is_end_stream() {
        // Gathered bytes go out before waiting for more of the body.
        let step = poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
        })
        .await;
        let frame = match step {
            None => {
                io.write_all(out).await?;
                out.clear();
                continue;
            }
            Some(None) => break,
            Some(Some(Ok(frame))) => frame,
            Some(Some(Err(_))) => {
                // A broken body is cut short: the client sees the truncation.
                io.write_all(out).await?;
                return Ok(false);
            }
        };
        let Ok(data) = frame.into_data() else {
            // Trailers are not forwarded.
            continue;
        };
        if data.is_empty() {
            continue;
        }
        written += data.len() as u64;
        if length.is_some_and(|n| written > n) {
            io.write_all(out).await?;
            return Ok(false);
        }
        if chunked {
            out.extend_from_slice(size_line(data.len()).as_slice());
            out.extend_from_slice(b"\r\n");
        }
        if out.len() + data.len() <= COALESCE_BYTES {
            out.extend_from_slice(&data);
        } else {
            io.write_all(out).await?;
            out.clear();
            io.write_all(&data).await?;
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    if length.is_some_and(|n| written != n) {
        // Shorter than announced: only closing tells the client.
        keep_alive = false;
    }
    io.write_all(out).await?;
    io.flush().await?;
    out.clear();
    Ok(keep_alive)
}

/// Appends the current time as an HTTP date, formatted at most once a second per thread.
fn write_date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHED: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with_borrow_mut(|(at, date)| {
        if *at != second {
            *at = second;
            *date = httpdate::fmt_http_date(now).into_bytes();
        }
        out.extend_from_slice(date);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Option<(Request<ClientBody>, usize, RequestFacts)> {
        parse_request(raw.as_bytes())
    }

    #[test]
    fn parses_heads_with_their_bodies() {
        let raw = "POST /a/b?x=1 HTTP/1.1\r\nHost: h.example\r\nContent-Length: 3\r\nX-Two: a\r\nx-two: b\r\n\r\nabcGET";
        let (request, consumed, facts) = parse(raw).expect("served here");
        assert_eq!(consumed, raw.len() - 3);
        assert!(facts.keep_alive);
        assert!(!facts.head_method);
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri().path(), "/a/b");
        assert_eq!(request.uri().query(), Some("x=1"));
        assert_eq!(request.headers()["host"], "h.example");
        let twos: Vec<_> = request.headers().get_all("x-two").iter().collect();
        assert_eq!(twos, ["a", "b"]);
        match request.into_body() {
            ClientBody::Buffered(Some(body)) => assert_eq!(&body[..], b"abc"),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let cases = [
            ("GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n",
                false,
            ),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        ];
        for (raw, keep_alive) in cases {
            let (_, _, facts) = parse(raw).expect(raw);
            assert_eq!(facts.keep_alive, keep_alive, "{raw}");
        }
    }

    #[test]
    fn hands_over_what_it_does_not_serve() {
        for raw in [
            // Body still on its way.
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 70000\r\n\r\n",
            // Incomplete head.
            "GET / HTTP/1.1\r\nHost: h\r\n",
        ] {
            assert!(parse(raw).is_none(), "{raw}");
        }
    }

    #[test]
    fn dates_are_http_dates() {
        let mut out = Vec::new();
        write_date(&mut out);
        write_date(&mut out);
        assert_eq!(out.len(), 58);
        let date = std::str::from_utf8(&out[..29]).unwrap();
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    }
}
