//! Shared request state: the store, the node link, the failed-authentication limits and the
//! clock.

use std::net::IpAddr;
use std::sync::Arc;

use model::Timestamp;
use store::Store;

use crate::link::{Link, LinkConfig};
use crate::throttle::{FailureLimiter, FailurePolicy};

/// What every handler gets. Cheap to clone (the store is a pool handle, the link an `Arc`).
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    /// The node link: handlers tell it about committed configuration changes.
    pub link: Link,
    /// Failed-authentication limits of this process (see `throttle`).
    pub throttles: Arc<Throttles>,
}

/// The failed-authentication limiters one platform process keeps.
#[derive(Debug)]
pub struct Throttles {
    /// Bearer tokens, install tokens and node credentials, per source (`throttle::source_key`).
    pub secrets: FailureLimiter<IpAddr>,
    /// Console logins per source.
    pub logins_per_source: FailureLimiter<IpAddr>,
    /// Console logins per account name or e-mail (lowercased).
    pub logins_per_account: FailureLimiter<String>,
}

impl Default for Throttles {
    fn default() -> Self {
        Self {
            secrets: FailureLimiter::new(FailurePolicy::SECRETS_PER_SOURCE),
            logins_per_source: FailureLimiter::new(FailurePolicy::LOGINS_PER_SOURCE),
            logins_per_account: FailureLimiter::new(FailurePolicy::LOGINS_PER_ACCOUNT),
        }
    }
}

impl AppState {
    /// State with a link that has no background tasks (see [`Link::new`]).
    pub fn new(store: Store) -> Self {
        let link = Link::new(store.clone(), LinkConfig::default());
        Self::with_link(store, link)
    }

    pub fn with_link(store: Store, link: Link) -> Self {
        Self {
            store,
            link,
            throttles: Arc::default(),
        }
    }

    /// The time of a request, by the link's clock (`LinkConfig::clock`); the only place the
    /// REST API reads the clock, so rules in `model` keep taking time as an argument.
    pub fn now(&self) -> Timestamp {
        self.link.now()
    }
}

/// The current wall-clock time (`crate::clock::Clock::Real`).
pub fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Timestamp::from_millis(i64::try_from(millis).unwrap_or(i64::MAX))
}
