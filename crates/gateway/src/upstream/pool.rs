//! The idle connections of one target for the node's own HTTP/1.1 client (`h1client`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Waker};

use bytes::BytesMut;
use tokio::net::TcpStream;

/// Idle connections kept per target.
const MAX_IDLE: usize = 1024;
/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT_MS: u64 = 90_000;
/// Read buffer of a new connection; grows for large heads.
pub const READ_BUFFER: usize = 8 * 1024;

/// One connection to an upstream target, with its buffers.
#[derive(Debug)]
pub struct UpstreamConn {
    pub stream: TcpStream,
    /// Bytes read and not consumed yet.
    pub buf: BytesMut,
    /// The request head being written; kept with the connection so its capacity is reused.
    pub out: Vec<u8>,
}

impl UpstreamConn {
    pub fn new(stream: TcpStream) -> UpstreamConn {
        UpstreamConn {
            stream,
            buf: BytesMut::with_capacity(READ_BUFFER),
            out: Vec::with_capacity(1024),
        }
    }

    /// An idle keep-alive connection has nothing to read. Readable means the upstream closed it
    /// (or sent bytes nobody asked for): either way it cannot carry a request. This asks the
    /// runtime's readiness state, which its event loop keeps, so it costs no system call.
    fn idle_and_open(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.buf.is_empty() && self.stream.poll_read_ready(&mut cx).is_pending()
    }
}

/// The idle connections of one target, most recently used last; times are the node clock's
/// milliseconds.
#[derive(Debug, Default)]
pub struct Pool {
    idle: Mutex<VecDeque<(UpstreamConn, u64)>>,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(UpstreamConn, u64)>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection that is still open.
    pub fn take(&self, now_ms: u64) -> Option<UpstreamConn> {
        let mut idle = self.lock();
        while let Some((conn, since)) = idle.pop_back() {
            if now_ms.saturating_sub(since) < IDLE_TIMEOUT_MS && conn.idle_and_open() {
                return Some(conn);
            }
        }
        None
    }

    pub fn put(&self, conn: UpstreamConn, now_ms: u64) {
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
