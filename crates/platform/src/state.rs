//! Shared request state: the store, the node link and the clock.

use model::Timestamp;
use store::Store;

use crate::link::{Link, LinkConfig};

/// What every handler gets. Cheap to clone (the store is a pool handle, the link an `Arc`).
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    /// The node link: handlers tell it about committed configuration changes.
    pub link: Link,
}

impl AppState {
    /// State with a link that has no background tasks (see [`Link::new`]).
    pub fn new(store: Store) -> Self {
        let link = Link::new(store.clone(), LinkConfig::default());
        Self { store, link }
    }

    pub fn with_link(store: Store, link: Link) -> Self {
        Self { store, link }
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
