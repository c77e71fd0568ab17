//! The platform's clock: the real one, or a manual one that tests step, so a test of a
//! time rule (lost contact, start-up timeout, restart limits) moves time instead of sleeping.
//!
//! The link (and through it the status job, the link server, commands and REST reads) reads
//! time only from its [`Clock`]; `model` takes time as an argument. Timers that pace work
//! (the status job's interval, the flusher) stay on the runtime's clock: they say how often
//! to look, not what time it is.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use model::Timestamp;

/// A clock handle; cheap to clone (clones of a manual clock share its time).
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    Real,
    /// A time that moves only when [`Clock::advance`] or [`Clock::set`] moves it.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock at `start`.
    pub fn manual(start: Timestamp) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start.0)))
    }

    pub fn now(&self) -> Timestamp {
        match self {
            Clock::Real => crate::state::now(),
            Clock::Manual(millis) => Timestamp(millis.load(Ordering::SeqCst)),
        }
    }

    /// Moves a manual clock forward by `by`; the real clock cannot be moved (no effect).
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(millis) = self {
            let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            millis.fetch_add(by, Ordering::SeqCst);
        }
    }

    /// Sets a manual clock to `at`; the real clock cannot be moved (no effect).
    pub fn set(&self, at: Timestamp) {
        if let Clock::Manual(millis) = self {
            millis.store(at.0, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_stepped_and_clones_share_it() {
        let clock = Clock::manual(Timestamp(1_000));
        let other = clock.clone();
        assert_eq!(clock.now(), Timestamp(1_000));
        clock.advance(Duration::from_millis(250));
        assert_eq!(other.now(), Timestamp(1_250));
        other.set(Timestamp(5_000));
        assert_eq!(clock.now(), Timestamp(5_000));
        let real = Clock::Real;
        let before = real.now();
        real.advance(Duration::from_secs(3_600));
        assert!(real.now().0 - before.0 < 3_600_000);
    }
}
