//! The upstream HTTP/1.1 client for plain `http://` targets: the proxy's hot path.
//!
//! hyper's pooled client runs every upstream connection in a task of its own and hands each
//! request to it through a channel, the response back through a oneshot and the response body
//! through another channel, and spawns a task per request to put the connection back in the
//! pool. Here the request's own task writes the request and reads the response on a pooled
//! socket (`upstream::pool`), and the response body reads the socket directly while the server
//! writes it to the client, like one event loop would. The connection goes back to its
//! target's idle list when the body has been read to its end.
//!
//! The wire format is `h1`'s: the request head is `h1::request::encode_head`, the response
//! head `h1::response::parse` (strict: ambiguous framing is [`UpstreamFailure::BadResponse`],
//! 502, and the connection closed), a chunked body `h1::chunked::ChunkedDecoder`.
//!
//! HTTPS and h2c targets, WebSocket upgrades and streamed request bodies (unknown length or over
//! the replay buffer) go through hyper's client (`hyper_client`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::HeaderMap;
use http::{Method, Response};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::h1::chunked::Piece;
use crate::h1::request::{RequestTarget, encode_head, write_header_map};
use crate::h1::response::{self, Fields, Framing, Head, Parsed};
use crate::headers::Forwarding;
use crate::upstream::connect::connect;
use crate::upstream::pool::{READ_BUFFER, UpstreamConn};
use crate::upstream::{Target, UpstreamFailure};

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

/// Writes the request head for `target`: request line, `Host`, the headers with this hop's
/// forwarding ([`Forwarding::write`]; with `None` the map already has them) and the framing of
/// the body (any `Content-Length` of the client is replaced).
#[inline]
fn write_request_head(conn: &mut UpstreamConn, target: &Target, exchange: &Exchange<'_>) {
    let request_target = RequestTarget {
        base_path: &target.base_path,
        rest: exchange.rest,
        query: exchange.query,
        host: &target.host_header,
    };
    encode_head(
        &mut conn.out,
        exchange.method,
        &request_target,
        |out| match exchange.forwarding {
            Some(forwarding) => forwarding.write(out, exchange.headers),
            None => write_header_map(out, exchange.headers),
        },
        exchange.body.map_or(0, Bytes::len),
    );
}

async fn exchange_on(
    conn: &mut UpstreamConn,
    target: &Target,
    exchange: &Exchange<'_>,
) -> Result<Head, Attempt> {
    write_request_head(conn, target, exchange);
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
            match response::parse(&mut conn.buf, *exchange.method == Method::HEAD) {
                Ok(Some(Parsed::Final(head))) => return Ok(head),
                Ok(Some(Parsed::Interim)) => continue,
                Ok(None) => {}
                Err(_) => return Err(Attempt::Failed(UpstreamFailure::BadResponse)),
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

/// Why a response body could not be read to its end; the client connection is cut, as a
/// truncated body must not look complete.
#[derive(Debug, thiserror::Error)]
pub enum BodyReadError {
    #[error("upstream closed the connection before the end of the response body")]
    Truncated,
    #[error("upstream sent a malformed chunked body: {}", .0.reason())]
    BadChunk(crate::h1::chunked::ChunkError),
    #[error("reading the upstream response body: {0}")]
    Io(#[from] io::Error),
}

/// A response body read from the upstream socket; the connection returns to the target's pool
/// at its end.
#[derive(Debug)]
pub struct H1Body {
    conn: Option<UpstreamConn>,
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
                Framing::Chunked(mut decoder) => {
                    let buf = self.buffered();
                    let step = decoder.advance(buf);
                    match step {
                        Err(error) => {
                            self.conn = None;
                            self.framing = Framing::Done;
                            return Poll::Ready(Some(Err(BodyReadError::BadChunk(error))));
                        }
                        Ok((n, Piece::Data)) if n > 0 => {
                            let data = buf.split_to(n).freeze();
                            self.framing = Framing::Chunked(decoder);
                            return Poll::Ready(Some(Ok(data)));
                        }
                        Ok((n, Piece::End)) => {
                            buf.advance(n);
                            self.finish();
                            return Poll::Ready(None);
                        }
                        Ok((n, _)) => {
                            buf.advance(n);
                            self.framing = Framing::Chunked(decoder);
                            if n > 0 {
                                continue;
                            }
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

impl Drop for H1Body {
    /// A body with nothing left (HEAD, 204, 304, `Content-Length: 0`) may never be polled, as
    /// the server sees its end from `is_end_stream`; its connection is still good for the pool.
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
