//! Slow request bodies (SPEC §9): the pace a client must keep while it sends a body that did
//! not arrive with its head, and the cap on requests per client address still sending one.
//!
//! Only the slow path pays for this: a body that arrived with its head (served by `h1server`
//! from the guard's buffer) never gets a clock or a slot. The clock runs only while the
//! reader waits for the client, so time the upstream takes to accept the bytes (backpressure)
//! is never blamed on the client.

use std::collections::HashMap;
use std::future::Future as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Why the client's request body could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body over the limit")]
    TooLarge,
    #[error("request body: {0}")]
    Client(hyper::Error),
    /// The client sent its body too slowly (SPEC §9): answered 408, never an upstream error.
    #[error("request body too slow: {}", .0.as_str())]
    TimedOut(BodyTimeout),
}

/// How fast a request body must arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPace {
    /// No byte for this long → timeout; also the window the rate is averaged over.
    pub timeout: Duration,
    /// Bytes per second over each window; 0 = no rate check.
    pub min_rate: u64,
}

impl BodyPace {
    /// Bytes a window must bring unless the body ends in it.
    fn window_bytes(&self) -> u64 {
        (self.min_rate as f64 * self.timeout.as_secs_f64()) as u64
    }
}

/// Why a request body was too slow; the label of the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyTimeout {
    /// No byte for the body timeout.
    NoProgress,
    /// Fewer bytes than the minimum rate over a window.
    TooSlow,
    /// The client's address had its cap of requests sending a body for the whole timeout.
    AddressBusy,
}

impl BodyTimeout {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyTimeout::NoProgress => "no_progress",
            BodyTimeout::TooSlow => "too_slow",
            BodyTimeout::AddressBusy => "address_busy",
        }
    }
}

/// The pace accounting of one body, in "waiting time": a clock that advances only while the
/// reader is pending on the client. Pure apart from the instants it is given.
#[derive(Debug)]
struct PaceClock {
    pace: BodyPace,
    /// Waiting time accumulated before the current wait.
    waited: Duration,
    /// Start of the current wait, if the reader is waiting.
    since: Option<Instant>,
    /// Waiting time at the last byte and at the start of the current window.
    last_byte: Duration,
    window_start: Duration,
    window_bytes: u64,
}

impl PaceClock {
    /// `already` is waiting time before the body is first read (the wait for a slot, during
    /// which the client's bytes queue up unread), so the first window ends one timeout after
    /// the head, whatever the wait.
    fn new(pace: BodyPace, already: Duration) -> PaceClock {
        PaceClock {
            pace,
            waited: already,
            since: None,
            last_byte: Duration::ZERO,
            window_start: Duration::ZERO,
            window_bytes: 0,
        }
    }

    fn waited_at(&self, now: Instant) -> Duration {
        self.waited + self.since.map_or(Duration::ZERO, |since| now - since)
    }

    /// `n` bytes arrived at `now`; `ended` when the body is complete. An error when the window
    /// that just closed brought too little.
    fn data(&mut self, n: u64, ended: bool, now: Instant) -> Result<(), BodyTimeout> {
        let waited = self.waited_at(now);
        self.waited = waited;
        self.since = None;
        self.last_byte = waited;
        self.window_bytes += n;
        if ended {
            return Ok(());
        }
        self.close_window(waited)
    }

    fn close_window(&mut self, waited: Duration) -> Result<(), BodyTimeout> {
        if waited >= self.window_start + self.pace.timeout {
            if self.window_bytes < self.pace.window_bytes() {
                return Err(BodyTimeout::TooSlow);
            }
            self.window_start = waited;
            self.window_bytes = 0;
        }
        Ok(())
    }

    /// The reader is pending at `now`: an error if a limit has passed, else the instant at
    /// which to look again.
    fn pending(&mut self, now: Instant) -> Result<Instant, BodyTimeout> {
        let since = *self.since.get_or_insert(now);
        let waited = self.waited_at(now);
        if waited >= self.last_byte + self.pace.timeout {
            return Err(BodyTimeout::NoProgress);
        }
        if self.pace.min_rate > 0 {
            self.close_window(waited)?;
        }
        let mut next = self.last_byte + self.pace.timeout;
        if self.pace.min_rate > 0 {
            next = next.min(self.window_start + self.pace.timeout);
        }
        // In wall-clock time: the current wait started at `since` with `self.waited` behind it.
        Ok(since + next.saturating_sub(self.waited))
    }
}

/// A client's request body read through hyper, held to the pace and holding its address's
/// slot until it ends.
#[derive(Debug)]
pub struct PacedBody {
    inner: Incoming,
    clock: PaceClock,
    sleep: Option<Pin<Box<Sleep>>>,
    slot: Option<BodySlot>,
    failed: bool,
    /// Set once the whole body arrived; the handler looks at it when the upstream times out.
    arrived: Arc<AtomicBool>,
}

impl PacedBody {
    /// `waited`: how long the request already waited for its slot.
    pub fn new(inner: Incoming, pace: BodyPace, slot: BodySlot, waited: Duration) -> PacedBody {
        PacedBody {
            inner,
            clock: PaceClock::new(pace, waited),
            sleep: None,
            slot: Some(slot),
            failed: false,
            arrived: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Turns true when the whole body has arrived.
    pub fn arrived(&self) -> Arc<AtomicBool> {
        self.arrived.clone()
    }

    fn ended(&mut self) {
        self.slot = None;
        self.arrived.store(true, Ordering::Release);
    }

    fn fail(&mut self, reason: BodyTimeout) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.failed = true;
        self.slot = None;
        self.sleep = None;
        Poll::Ready(Some(Err(BodyError::TimedOut(reason))))
    }
}

impl Body for PacedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                    let ended = this.inner.is_end_stream();
                    if let Err(reason) = this.clock.data(n, ended, Instant::now()) {
                        return this.fail(reason);
                    }
                    if ended {
                        this.ended();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(error))) => {
                    this.slot = None;
                    return Poll::Ready(Some(Err(BodyError::Client(error))));
                }
                Poll::Ready(None) => {
                    this.ended();
                    return Poll::Ready(None);
                }
                Poll::Pending => {}
            }
            let deadline = match this.clock.pending(Instant::now()) {
                Ok(deadline) => deadline,
                Err(reason) => return this.fail(reason),
            };
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            match sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                // A limit may have passed: look again (the body first, it may have data).
                Poll::Ready(()) => continue,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Requests per client address that are still sending a body.
#[derive(Debug, Default)]
pub struct BodySenders {
    by_address: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

/// One of an address's slots; given back when dropped (at the end of the body).
#[derive(Debug)]
pub struct BodySlot {
    senders: Arc<BodySenders>,
    address: IpAddr,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for BodySlot {
    fn drop(&mut self) {
        drop(self.permit.take());
        // The last one out removes the address, so the map holds only busy addresses.
        let mut map = self.senders.lock();
        if map
            .get(&self.address)
            .is_some_and(|sem| Arc::strong_count(sem) == 1)
        {
            map.remove(&self.address);
        }
    }
}

/// The address a cap counts against: IPv4 as is, IPv6 by its /64 (one host usually holds a
/// whole /64).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

impl BodySenders {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Arc<Semaphore>>> {
        self.by_address.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for `ip`, waiting up to `wait` while it has `cap` requests sending a body.
    /// The cap in force when an address becomes busy holds until it is idle again.
    pub async fn acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        cap: u32,
        wait: Duration,
    ) -> Option<BodySlot> {
        let address = address_key(ip);
        let semaphore = self
            .lock()
            .entry(address)
            .or_insert_with(|| Arc::new(Semaphore::new(cap.max(1) as usize)))
            .clone();
        let slot = |permit| BodySlot {
            senders: self.clone(),
            address,
            permit: Some(permit),
        };
        if let Ok(permit) = semaphore.clone().try_acquire_owned() {
            return Some(slot(permit));
        }
        let waited = tokio::time::timeout(wait, semaphore.acquire_owned()).await;
        match waited {
            Ok(Ok(permit)) => Some(slot(permit)),
            _ => {
                // Not holding a slot, but the map entry may be ours to remove.
                drop(BodySlot {
                    senders: self.clone(),
                    address,
                    permit: None,
                });
                None
            }
        }
    }

    /// Addresses with a request sending a body (for tests and the status page).
    #[cfg(test)]
    fn busy(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACE: BodyPace = BodyPace {
        timeout: Duration::from_secs(10),
        min_rate: 1024,
    };

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// A client that sends one byte a second fails at the end of the first window, although
    /// it never stops for the whole timeout.
    #[test]
    fn a_byte_a_second_fails_the_rate_after_one_window() {
        let start = Instant::now();
        let mut clock = PaceClock::new(PACE, Duration::ZERO);
        let mut result = Ok(());
        for second in 1..=10 {
            clock.pending(start + secs(second as f64 - 1.0)).unwrap();
            result = clock.data(1, false, start + secs(second as f64));
            if result.is_err() {
                assert_eq!(second, 10);
            }
        }
        assert_eq!(result, Err(BodyTimeout::TooSlow));
    }

    #[test]
    fn silence_is_no_progress_at_the_timeout() {
        let start = Instant::now();
        let mut clock = PaceClock::new(
            BodyPace {
                min_rate: 0,
                ..PACE
            },
            Duration::ZERO,
        );
        assert_eq!(clock.pending(start), Ok(start + secs(10.0)));
        assert_eq!(clock.pending(start + secs(9.9)), Ok(start + secs(10.0)));
        assert_eq!(
            clock.pending(start + secs(10.0)),
            Err(BodyTimeout::NoProgress)
        );
    }

    /// A fast start does not buy silence later: no byte for the timeout fails, whatever the
    /// average.
    #[test]
    fn a_fast_start_then_silence_fails_at_the_timeout() {
        let start = Instant::now();
        let mut clock = PaceClock::new(PACE, Duration::ZERO);
        clock.pending(start).unwrap();
        clock.data(50_000, false, start + secs(1.0)).unwrap();
        // The window closes at 10 s of waiting with enough bytes; silence still ends at 11 s.
        let next = clock.pending(start + secs(1.0)).unwrap();
        assert_eq!(next, start + secs(10.0));
        assert_eq!(clock.pending(start + secs(10.0)), Ok(start + secs(11.0)));
        assert_eq!(
            clock.pending(start + secs(11.0)),
            Err(BodyTimeout::NoProgress)
        );
    }

    #[test]
    fn a_steady_client_passes_and_a_small_body_has_one_window() {
        let start = Instant::now();
        let mut clock = PaceClock::new(PACE, Duration::ZERO);
        // 2 KiB a second for a minute.
        for second in 0..60 {
            clock.pending(start + secs(f64::from(second))).unwrap();
            clock
                .data(2048, false, start + secs(f64::from(second) + 1.0))
                .unwrap();
        }
        // 5 KiB (under one window's 10 KiB) arriving whole within the window passes.
        let mut clock = PaceClock::new(PACE, Duration::ZERO);
        clock.pending(start).unwrap();
        clock.data(4000, false, start + secs(4.0)).unwrap();
        clock.pending(start + secs(4.0)).unwrap();
        clock.data(1000, true, start + secs(9.0)).unwrap();
    }

    /// Time the reader spends elsewhere (the upstream not taking bytes) is not waiting on
    /// the client.
    #[test]
    fn only_waiting_time_counts() {
        let start = Instant::now();
        let mut clock = PaceClock::new(PACE, Duration::ZERO);
        clock.pending(start).unwrap();
        clock.data(20_000, false, start + secs(1.0)).unwrap();
        // Not polled for a minute, then pending again: 9 s of waiting are left.
        assert_eq!(clock.pending(start + secs(61.0)), Ok(start + secs(70.0)));
    }

    /// A body that waited for its address's slot has only the rest of its first window.
    #[test]
    fn the_wait_for_a_slot_counts_toward_the_first_window() {
        let start = Instant::now();
        let mut clock = PaceClock::new(PACE, secs(9.0));
        assert_eq!(clock.pending(start), Ok(start + secs(1.0)));
        // The bytes queued during the wait arrive at once and pay for the window.
        clock.data(12_000, false, start).unwrap();
        let mut slow = PaceClock::new(PACE, secs(9.0));
        slow.pending(start).unwrap();
        slow.data(9, false, start).unwrap();
        slow.pending(start).unwrap();
        assert_eq!(slow.pending(start + secs(1.0)), Err(BodyTimeout::TooSlow));
    }

    #[tokio::test]
    async fn an_address_has_its_cap_and_is_forgotten_when_idle() {
        let senders = Arc::new(BodySenders::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let wait = Duration::from_millis(20);
        let a = senders.acquire(ip, 2, wait).await.expect("first");
        let b = senders.acquire(ip, 2, wait).await.expect("second");
        assert!(senders.acquire(ip, 2, wait).await.is_none(), "over the cap");
        // Another address is not affected.
        let other = senders
            .acquire("192.0.2.2".parse().unwrap(), 2, wait)
            .await
            .expect("other address");
        drop(a);
        let c = senders
            .acquire(ip, 2, wait)
            .await
            .expect("a slot came free");
        assert_eq!(senders.busy(), 2);
        drop((b, c, other));
        assert_eq!(senders.busy(), 0);
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
