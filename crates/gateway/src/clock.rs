//! The node's clock for passive ejection and idle upstream connections: real time since the
//! node started, or a manual clock that tests step instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Milliseconds since an origin; cheap to clone and to read.
#[derive(Debug, Clone)]
pub struct Clock(Source);

#[derive(Debug, Clone)]
enum Source {
    Real(Instant),
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// Real time, counted from now.
    pub fn real() -> Clock {
        Clock(Source::Real(Instant::now()))
    }

    /// A clock that stands still until its [`ManualClock`] moves it; starts at 0.
    pub fn manual() -> (Clock, ManualClock) {
        let now = Arc::new(AtomicU64::new(0));
        (Clock(Source::Manual(now.clone())), ManualClock(now))
    }

    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Source::Real(origin) => origin.elapsed().as_millis() as u64,
            Source::Manual(now) => now.load(Ordering::Acquire),
        }
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::real()
    }
}

/// The hand that moves a manual [`Clock`].
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_stepped() {
        let (clock, hand) = Clock::manual();
        let copy = clock.clone();
        assert_eq!(clock.now_ms(), 0);
        hand.advance(Duration::from_millis(1500));
        assert_eq!(copy.now_ms(), 1500);
        assert!(Clock::real().now_ms() < 1000);
    }
}
