//! Body types of the proxy: the request body sent upstream (with the API's size limit) and the
//! response body sent to the client (which releases the request's counters when it ends).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::client_body::{BodyError, PacedBody};
use crate::h1::response::Fields;
use crate::h1client::H1Body;
use crate::upstream::{ApiState, Target};

/// Request bodies of known length up to this size are read whole before the upstream is
/// called: the node's own server serves a request whose body arrived with its head, the slow
/// path collects a small body before the request takes an API slot, and a retry can send the
/// body again. Larger ones are streamed through and never retried.
pub const MAX_BUFFERED_BODY_BYTES: u64 = 64 * 1024;

/// A client's request body: hyper's, or read whole by the node's own HTTP/1 server (which
/// serves only requests whose body arrived with the head). A body still to arrive is held to
/// the slow-body limits (`Paced`) before it is read.
#[derive(Debug)]
pub enum ClientBody {
    Hyper(Incoming),
    Paced(Box<PacedBody>),
    Buffered(Option<Bytes>),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ClientBody::Hyper(inner) => Pin::new(inner).poll_frame(cx).map_err(BodyError::Client),
            ClientBody::Paced(inner) => Pin::new(inner.as_mut()).poll_frame(cx),
            ClientBody::Buffered(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Hyper(inner) => inner.is_end_stream(),
            ClientBody::Paced(inner) => inner.is_end_stream(),
            ClientBody::Buffered(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Hyper(inner) => inner.size_hint(),
            ClientBody::Paced(inner) => inner.size_hint(),
            ClientBody::Buffered(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

/// The request body sent upstream.
#[derive(Debug)]
pub enum UpstreamRequestBody {
    Empty,
    /// Buffered, so an idempotent request can be sent again on retry.
    Full(Option<Bytes>),
    /// Streamed from the client with a byte limit.
    Stream {
        inner: ClientBody,
        limit: u64,
        seen: u64,
    },
}

impl Body for UpstreamRequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            UpstreamRequestBody::Empty => Poll::Ready(None),
            UpstreamRequestBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            UpstreamRequestBody::Stream { inner, limit, seen } => {
                match Pin::new(inner).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            *seen += data.len() as u64;
                            if *seen > *limit {
                                return Poll::Ready(Some(Err(BodyError::TooLarge)));
                            }
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamRequestBody::Empty => true,
            UpstreamRequestBody::Full(data) => data.is_none(),
            UpstreamRequestBody::Stream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamRequestBody::Empty => SizeHint::with_exact(0),
            UpstreamRequestBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            UpstreamRequestBody::Stream { inner, .. } => inner.size_hint(),
        }
    }
}

/// Releases a request's claims (API concurrency slot, target load, node in-flight count) when
/// dropped: at the end of the response body, or when the client goes away.
#[derive(Debug)]
pub struct Claims {
    pub api: Option<Arc<ApiState>>,
    pub target: Option<Arc<Target>>,
    pub node_in_flight: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for Claims {
    fn drop(&mut self) {
        if let Some(api) = &self.api {
            api.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(target) = &self.target {
            target.outstanding.fetch_sub(1, Ordering::Relaxed);
        }
        self.node_in_flight.dec();
    }
}

/// The response body sent to the client.
#[derive(Debug)]
pub struct RespBody {
    kind: Kind,
    claims: Option<Claims>,
}

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    Upstream(UpstreamResponseBody),
}

/// A response body from an upstream: through hyper's client, or read by the node's own
/// HTTP/1.1 client from the upstream socket.
#[derive(Debug)]
pub enum UpstreamResponseBody {
    Hyper(Incoming),
    H1(H1Body),
}

/// Errors of a response body, boxed: hyper's server takes any error and ends the connection.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl RespBody {
    pub fn full(data: impl Into<Bytes>) -> RespBody {
        let data = data.into();
        RespBody {
            kind: Kind::Full((!data.is_empty()).then_some(data)),
            claims: None,
        }
    }

    pub fn empty() -> RespBody {
        RespBody {
            kind: Kind::Full(None),
            claims: None,
        }
    }

    pub fn upstream(body: UpstreamResponseBody, claims: Claims) -> RespBody {
        RespBody {
            kind: Kind::Upstream(body),
            claims: Some(claims),
        }
    }

    /// The header fields of a response read by the node's own client, which are not in the
    /// response's header map (see `h1::response::Fields`); taken once, by the writer.
    pub fn take_fields(&mut self) -> Option<Fields> {
        match &mut self.kind {
            Kind::Upstream(UpstreamResponseBody::H1(body)) => body.take_fields(),
            _ => None,
        }
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Upstream(UpstreamResponseBody::Hyper(inner)) => {
                Pin::new(inner).poll_frame(cx).map_err(Into::into)
            }
            Kind::Upstream(UpstreamResponseBody::H1(inner)) => {
                Pin::new(inner).poll_frame(cx).map_err(Into::into)
            }
        };
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            // Release the claims as soon as the body ends, not when hyper drops it.
            this.claims = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(data) => data.is_none(),
            Kind::Upstream(UpstreamResponseBody::Hyper(inner)) => inner.is_end_stream(),
            Kind::Upstream(UpstreamResponseBody::H1(inner)) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Upstream(UpstreamResponseBody::Hyper(inner)) => inner.size_hint(),
            Kind::Upstream(UpstreamResponseBody::H1(inner)) => inner.size_hint(),
        }
    }
}
