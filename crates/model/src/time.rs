//! Instants as plain values, so rules that depend on time take it as an argument.

use std::time::Duration;

/// Milliseconds since the Unix epoch (UTC). The only notion of "when" in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The instant `duration` after this one, saturating instead of overflowing.
    pub fn plus(self, duration: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(duration)))
    }

    /// The instant `duration` before this one, saturating instead of overflowing.
    pub fn minus(self, duration: Duration) -> Self {
        Self(self.0.saturating_sub(duration_millis(duration)))
    }

    /// Time elapsed from `earlier` to `self`; zero when `earlier` is later (clocks may step).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_never_goes_negative() {
        let a = Timestamp(1_000);
        let b = Timestamp(4_500);
        assert_eq!(b.since(a), Duration::from_millis(3_500));
        assert_eq!(a.since(b), Duration::ZERO);
        assert_eq!(a.plus(Duration::from_secs(1)), Timestamp(2_000));
        assert_eq!(
            Timestamp(i64::MAX).plus(Duration::from_secs(1)),
            Timestamp(i64::MAX)
        );
    }
}
