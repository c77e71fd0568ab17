//! Shared request state: the store and the clock.

use model::Timestamp;
use store::Store;

/// What every handler gets. Cheap to clone (the store is a pool handle).
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
}

impl AppState {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The time of a request; the only place the REST API reads the clock, so rules in
    /// `model` keep taking time as an argument.
    pub fn now(&self) -> Timestamp {
        now()
    }
}

/// The current wall-clock time.
pub fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Timestamp::from_millis(i64::try_from(millis).unwrap_or(i64::MAX))
}
