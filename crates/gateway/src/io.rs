//! The client connection's byte stream: every byte passes the strict HTTP/1 scanner (`h1guard`)
//! first. The node's own server (`h1server`) reads the validated bytes from the buffer here
//! ([`GuardedIo::validated`], [`GuardedIo::poll_fill`]) and answers a refusal itself; hyper
//! reads them through `AsyncRead`, where a refused message is replaced by a marked synthetic
//! request that the service answers with the scanner's status before the connection closes.
//!
//! Replacing the message, instead of writing a response from here, keeps responses in order:
//! hyper answers messages one after another, so the refusal is written after the responses to
//! every valid message before it. The marker carries a per-process secret so a client cannot
//! forge it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::h1guard::{HeadLimits, Reject, Scanner};

/// Header carrying the secret on the synthetic request.
pub const REJECT_MARKER_HEADER: &str = "x-switchyard-guard";

/// The per-process secret of the synthetic request.
pub fn reject_secret() -> &'static str {
    static SECRET: OnceLock<String> = OnceLock::new();
    SECRET.get_or_init(|| format!("{:032x}", rand::random::<u128>()))
}

fn synthetic_request() -> &'static [u8] {
    static REQUEST: OnceLock<Vec<u8>> = OnceLock::new();
    REQUEST.get_or_init(|| {
        format!(
            "GET /_switchyard/refused HTTP/1.1\r\nhost: refused.invalid\r\n{REJECT_MARKER_HEADER}: {}\r\n\r\n",
            reject_secret()
        )
        .into_bytes()
    })
}

/// State shared between a connection's byte stream and its request handler.
#[derive(Debug, Default)]
pub struct ClientConnState {
    rejected: OnceLock<Reject>,
    /// Requests of this connection being handled; the idle timer only runs at zero.
    pub active: AtomicU32,
}

impl ClientConnState {
    pub fn rejected(&self) -> Option<Reject> {
        self.rejected.get().copied()
    }
}

/// Timeouts of the head reader.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header_read: Duration,
    pub keep_alive: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Off,
    Idle,
    Head,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Normal,
    /// Delivering the synthetic request from this offset.
    Refusing(usize),
    /// Nothing more is read from the client.
    Eof,
    /// After the synthetic request: reads stay pending until hyper closes the connection after
    /// answering it. (An end of stream here would make hyper drop the connection unanswered.)
    Refused,
    /// A body failed the scanner: the next read fails, so hyper fails the request body.
    BodyError,
}

/// Initial buffer size; grows up to the head limits when a large head arrives.
const INITIAL_BUF: usize = 8 * 1024;

pub struct GuardedIo<T> {
    io: T,
    scanner: Scanner,
    /// `buf[start..ready]` is validated and waiting for hyper; `buf[ready..end]` is unvalidated.
    buf: Vec<u8>,
    start: usize,
    ready: usize,
    end: usize,
    max_buf: usize,
    shared: Arc<ClientConnState>,
    timeouts: Timeouts,
    sleep: Pin<Box<Sleep>>,
    timer: Timer,
    /// When the current timer state expires; the sleep may be armed later than this only
    /// until it fires and is re-armed.
    deadline: Instant,
    armed: bool,
    phase: Phase,
}

impl<T> GuardedIo<T> {
    pub fn new(
        io: T,
        limits: HeadLimits,
        timeouts: Timeouts,
        shared: Arc<ClientConnState>,
    ) -> Self {
        let max_buf = limits.max_request_line_bytes + limits.max_headers_total_bytes + 8 * 1024;
        GuardedIo {
            io,
            scanner: Scanner::new(limits),
            buf: vec![0; INITIAL_BUF],
            start: 0,
            ready: 0,
            end: 0,
            max_buf: max_buf.max(INITIAL_BUF),
            shared,
            timeouts,
            sleep: Box::pin(tokio::time::sleep(timeouts.header_read)),
            timer: Timer::Off,
            deadline: Instant::now(),
            armed: false,
            phase: Phase::Normal,
        }
    }

    fn refuse(&mut self, reject: Reject) {
        let _ = self.shared.rejected.set(reject);
        // Unvalidated bytes are dropped: they are never given to hyper.
        self.end = self.ready;
        self.phase = Phase::Refusing(0);
        tracing::debug!(
            reason = reject.reason(),
            status = reject.status().as_u16(),
            "request refused by framing guard"
        );
    }
}

impl<T: AsyncRead + Unpin> GuardedIo<T> {
    /// Arms or polls the head timers; `Ready` means a timer fired.
    ///
    /// The timer is lazy: a state change only records the new deadline, and the sleep is reset
    /// only when that deadline is earlier than the armed one, or when the sleep fires before
    /// the current deadline. That is about one timer-wheel update per timeout period instead
    /// of several per request.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let want = if self.shared.active.load(Ordering::Acquire) > 0 {
            Timer::Off
        } else if self.scanner.in_partial_head() || self.scanner.messages() == 0 {
            Timer::Head
        } else if self.scanner.idle() {
            Timer::Idle
        } else {
            Timer::Off
        };
        if want != self.timer {
            self.timer = want;
            let after = match want {
                Timer::Head => self.timeouts.header_read,
                Timer::Idle => self.timeouts.keep_alive,
                Timer::Off => return Poll::Pending,
            };
            self.deadline = Instant::now() + after;
            if self.deadline < self.sleep.deadline() || !self.armed {
                self.sleep.as_mut().reset(self.deadline);
                self.armed = true;
            }
        }
        if self.timer == Timer::Off {
            return Poll::Pending;
        }
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            if Instant::now() >= self.deadline {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(self.deadline);
        }
    }

    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.ready = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.ready -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() && self.buf.len() < self.max_buf {
                let new_len = (self.buf.len() * 2).min(self.max_buf);
                self.buf.resize(new_len, 0);
            }
        }
    }
}

impl<T: AsyncRead + Unpin> GuardedIo<T> {
    /// Reads more bytes from the client and scans them; `Ready(Ok)` after any progress: new
    /// validated bytes, a refusal, or the end of the stream (see [`GuardedIo::state`]).
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.scanner.in_body() && self.poll_timer(cx).is_ready() {
            if self.scanner.in_partial_head() || self.scanner.messages() == 0 {
                self.refuse(Reject::Timeout);
            } else {
                // An idle keep-alive connection simply ends.
                self.phase = Phase::Eof;
            }
            return Poll::Ready(Ok(()));
        }
        self.make_room();
        if self.end == self.buf.len() {
            // Only reachable if the limits were exceeded without the scanner noticing.
            self.refuse(Reject::HeadersTooLarge("request head too large"));
            return Poll::Ready(Ok(()));
        }
        let mut read_buf = ReadBuf::new(&mut self.buf[self.end..]);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read_buf))?;
        let n = read_buf.filled().len();
        if n == 0 {
            // End of stream: the reader sees the end; an incomplete head is simply dropped.
            self.phase = Phase::Eof;
            self.end = self.ready;
            return Poll::Ready(Ok(()));
        }
        self.end += n;
        let scan = self.scanner.scan(&self.buf[self.ready..self.end]);
        self.ready += scan.released;
        if let Some(reject) = scan.reject {
            if self.scanner.in_body() {
                let _ = self.shared.rejected.set(reject);
                self.end = self.ready;
                self.phase = Phase::BodyError;
            } else {
                self.refuse(reject);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T> GuardedIo<T> {
    /// Validated bytes not yet consumed: whole request heads, each followed by the part of its
    /// body that has arrived (or, on an opaque connection, whatever arrived).
    pub(crate) fn validated(&self) -> &[u8] {
        &self.buf[self.start..self.ready]
    }

    /// Drops `n` validated bytes from the front.
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.ready - self.start);
        self.start += n;
    }

    /// What comes after the validated bytes.
    pub(crate) fn state(&self) -> StreamState {
        match self.phase {
            Phase::Normal if self.scanner.is_opaque() => StreamState::Opaque,
            Phase::Normal => StreamState::Open,
            Phase::Refusing(_) => match self.shared.rejected() {
                Some(reject) => StreamState::Refused(reject),
                None => StreamState::Ended,
            },
            Phase::Eof | Phase::Refused | Phase::BodyError => StreamState::Ended,
        }
    }

    /// The client connection, for writing.
    pub(crate) fn io_mut(&mut self) -> &mut T {
        &mut self.io
    }
}

/// What a reader of [`GuardedIo::validated`] finds after those bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamState {
    /// More HTTP/1 bytes may come.
    Open,
    /// HTTP/2 or an upgraded connection: bytes are not HTTP/1 requests.
    Opaque,
    /// The next message was refused with this reason; nothing after it is read.
    Refused(Reject),
    /// Nothing more comes: end of stream, idle timeout, or a failed body.
    Ended,
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            // Validated bytes first, in order.
            if this.ready > this.start {
                let n = (this.ready - this.start).min(out.remaining());
                out.put_slice(&this.buf[this.start..this.start + n]);
                this.start += n;
                return Poll::Ready(Ok(()));
            }
            match this.phase {
                Phase::Refusing(offset) => {
                    let synthetic = synthetic_request();
                    let n = (synthetic.len() - offset).min(out.remaining());
                    out.put_slice(&synthetic[offset..offset + n]);
                    this.phase = if offset + n == synthetic.len() {
                        Phase::Refused
                    } else {
                        Phase::Refusing(offset + n)
                    };
                    return Poll::Ready(Ok(()));
                }
                Phase::Eof => return Poll::Ready(Ok(())),
                Phase::Refused => return Poll::Pending,
                Phase::BodyError => {
                    this.phase = Phase::Refused;
                    let reason = this
                        .shared
                        .rejected()
                        .map_or("invalid body", Reject::reason);
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, reason)));
                }
                Phase::Normal => {}
            }
            // Opaque (HTTP/2, upgraded) or a fixed-length body with nothing buffered: read
            // straight into hyper's buffer, at most up to the end of the body.
            if this.end == this.start {
                if this.scanner.is_opaque() {
                    return Pin::new(&mut this.io).poll_read(cx, out);
                }
                if let Some(remaining) = this.scanner.body_remaining() {
                    let limit = remaining.min(out.remaining() as u64) as usize;
                    let dst = out.initialize_unfilled_to(limit);
                    let mut limited = ReadBuf::new(dst);
                    ready!(Pin::new(&mut this.io).poll_read(cx, &mut limited))?;
                    let n = limited.filled().len();
                    let scan = this.scanner.scan(limited.filled());
                    debug_assert_eq!(scan.released, n);
                    out.advance(n);
                    return Poll::Ready(Ok(()));
                }
            }
            ready!(this.poll_fill(cx))?;
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
