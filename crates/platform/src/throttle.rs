//! Limits on failed authentication (SPEC §14): per source address for bearer tokens, install
//! tokens and node credentials, and per address and per account for the console login.
//!
//! Decisions:
//! - Only failures count. A caller that authenticates succeeds at the cost of one map lookup,
//!   so legitimate traffic is never slowed; a source over its limit is refused (429 with
//!   `Retry-After`) even with a right secret until its window ends, so guessing cannot go on
//!   in parallel with a valid credential.
//! - A fixed window per key that starts at the key's first failure: simple to explain in a
//!   `Retry-After` and enough against guessing (a window of `max_failures` guesses per
//!   `window` makes a 256-bit token or an Argon2id password unguessable either way).
//! - IPv6 sources are counted per /64, the smallest block one customer usually holds, so an
//!   attacker cannot rotate through the addresses of one network.
//! - Memory is bounded (`max_keys`): when full, expired windows are dropped first, then the
//!   oldest one. State is per platform process; with several processes behind a balancer
//!   each counts its own share, which still caps the guessing rate.
//!
//! - The failure that uses up a window is audited once (`auth.throttled`, platform-level, target
//!   the source), not every refused request after it, so a flood cannot flood the audit log.
//!
//! The core ([`FailureLimiter::check`], [`FailureLimiter::record_failure`]) takes `now` as an
//! argument and is tested without IO; [`check_secret`] and [`secret_failed`] apply it to a
//! request's secrets.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use model::Timestamp;
use store::{Actor, Audit, AuditResult, AuditTarget};

use crate::error::ApiError;
use crate::state::AppState;

/// How many failures a key may have in one window, and how long a window lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailurePolicy {
    pub max_failures: u32,
    pub window: Duration,
    /// Largest number of keys remembered at once.
    pub max_keys: usize,
}

impl FailurePolicy {
    /// Failed bearer tokens, install tokens and node credentials from one source.
    pub const SECRETS_PER_SOURCE: FailurePolicy = FailurePolicy {
        max_failures: 20,
        window: Duration::from_secs(60),
        max_keys: 100_000,
    };
    /// Failed console logins from one source.
    pub const LOGINS_PER_SOURCE: FailurePolicy = FailurePolicy {
        max_failures: 10,
        window: Duration::from_secs(300),
        max_keys: 100_000,
    };
    /// Failed console logins for one account (user), from anywhere.
    pub const LOGINS_PER_ACCOUNT: FailurePolicy = FailurePolicy {
        max_failures: 10,
        window: Duration::from_secs(300),
        max_keys: 100_000,
    };
}

/// Refused: the key is over its limit until `retry_after` has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

impl Throttled {
    /// Whole seconds for a `Retry-After` header, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }
}

#[derive(Clone, Copy, Debug)]
struct Window {
    started: Timestamp,
    failures: u32,
}

/// Counts failures per key in fixed windows; see the module docs.
#[derive(Debug)]
pub struct FailureLimiter<K> {
    policy: FailurePolicy,
    windows: Mutex<HashMap<K, Window>>,
}

impl<K: Hash + Eq + Clone> FailureLimiter<K> {
    pub fn new(policy: FailurePolicy) -> Self {
        Self {
            policy,
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> FailurePolicy {
        self.policy
    }

    /// `Err` while `key` has used up its failures in its current window.
    pub fn check(&self, key: &K, now: Timestamp) -> Result<(), Throttled> {
        let windows = self.lock();
        match windows.get(key) {
            Some(window) => self.verdict(window, now),
            None => Ok(()),
        }
    }

    /// Counts one failure of `key`; `Err` when this failure (or an earlier one) used up the
    /// window, so the caller can answer 429 at once.
    pub fn record_failure(&self, key: &K, now: Timestamp) -> Result<(), Throttled> {
        let mut windows = self.lock();
        if let Some(window) = windows.get_mut(key) {
            if self.expired(window, now) {
                *window = Window {
                    started: now,
                    failures: 0,
                };
            }
            window.failures = window.failures.saturating_add(1);
            let window = *window;
            return self.verdict(&window, now);
        }
        if windows.len() >= self.policy.max_keys {
            self.make_room(&mut windows, now);
        }
        let window = Window {
            started: now,
            failures: 1,
        };
        windows.insert(key.clone(), window);
        self.verdict(&window, now)
    }

    fn verdict(&self, window: &Window, now: Timestamp) -> Result<(), Throttled> {
        if window.failures < self.policy.max_failures || self.expired(window, now) {
            return Ok(());
        }
        let ends = window.started.plus(self.policy.window);
        Err(Throttled {
            retry_after: ends.since(now).max(Duration::from_millis(1)),
        })
    }

    fn expired(&self, window: &Window, now: Timestamp) -> bool {
        now >= window.started.plus(self.policy.window)
    }

    fn make_room(&self, windows: &mut HashMap<K, Window>, now: Timestamp) {
        windows.retain(|_, window| !self.expired(window, now));
        if windows.len() < self.policy.max_keys {
            return;
        }
        let oldest = windows
            .iter()
            .min_by_key(|(_, window)| window.started)
            .map(|(key, _)| key.clone());
        if let Some(oldest) = oldest {
            windows.remove(&oldest);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Window>> {
        // A panic while holding this lock cannot leave a window half-written (each update is
        // one assignment), so a poisoned map is still correct.
        self.windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The key a source address is counted under: the address itself for IPv4, its /64 for IPv6
/// (an IPv4-mapped IPv6 address counts as the IPv4 address).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// The peer address of a request, when the server was started with connection info
/// (`Platform::start`/`serve` always are; a bare `app()` in a test may not be).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// The peer address of a request whose parts another extractor is reading.
    pub fn of(parts: &Parts) -> ClientIp {
        ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp::of(parts))
    }
}

/// The kind of secret a request presented, named in the audit record of a throttled source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secret {
    ApiToken,
    InstallToken,
    NodeCredential,
}

impl Secret {
    pub fn as_str(self) -> &'static str {
        match self {
            Secret::ApiToken => "api_token",
            Secret::InstallToken => "install_token",
            Secret::NodeCredential => "node_credential",
        }
    }
}

/// Before a presented secret is looked up: 429 while its source is over the secrets limit.
/// A request without a known peer address (a bare `app()`) is not limited.
pub fn check_secret(state: &AppState, ip: ClientIp) -> Result<(), ApiError> {
    let Some(ip) = ip.0 else { return Ok(()) };
    state
        .throttles
        .secrets
        .check(&source_key(ip), state.now())
        .map_err(|t| ApiError::too_many_requests(t.retry_after_secs()))
}

/// After a presented `secret` turned out wrong: counts the failure of its source and answers
/// `refusal` (the 401), or 429 when this failure used up the source's window; that failure is
/// recorded in the platform's audit log.
pub async fn secret_failed(
    state: &AppState,
    ip: ClientIp,
    secret: Secret,
    refusal: ApiError,
) -> ApiError {
    let Some(ip) = ip.0 else { return refusal };
    let source = source_key(ip);
    let now = state.now();
    let limiter = &state.throttles.secrets;
    let Err(throttled) = limiter.record_failure(&source, now) else {
        return refusal;
    };
    let policy = limiter.policy();
    let audit = Audit::new(Actor::System, "auth.throttled", now)
        .with_target(AuditTarget::new("source", source))
        .with_details(serde_json::json!({
            "secret": secret.as_str(),
            "failures": policy.max_failures,
            "window_secs": policy.window.as_secs(),
            "retry_after_secs": throttled.retry_after_secs(),
        }));
    if let Err(error) = state
        .store
        .append_audit(None, audit, AuditResult::Denied)
        .await
    {
        // The refusal stands either way; a lost audit record is an operational problem.
        tracing::warn!(%error, %source, "could not record a throttled source");
    }
    tracing::warn!(%source, secret = secret.as_str(), "too many failed authentications; source throttled");
    ApiError::too_many_requests(throttled.retry_after_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: FailurePolicy = FailurePolicy {
        max_failures: 3,
        window: Duration::from_secs(60),
        max_keys: 2,
    };

    fn at(secs: i64) -> Timestamp {
        Timestamp(secs * 1000)
    }

    #[test]
    fn failures_up_to_the_limit_then_refused_until_the_window_ends() {
        let limiter = FailureLimiter::new(POLICY);
        assert_eq!(limiter.check(&"a", at(0)), Ok(()));
        assert_eq!(limiter.record_failure(&"a", at(0)), Ok(()));
        assert_eq!(limiter.record_failure(&"a", at(10)), Ok(()));
        let refused = limiter.record_failure(&"a", at(20)).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(40));
        assert_eq!(refused.retry_after_secs(), 40);
        assert_eq!(
            limiter.check(&"a", at(59)),
            Err(Throttled {
                retry_after: Duration::from_secs(1)
            })
        );
        // Another key is not affected.
        assert_eq!(limiter.check(&"b", at(30)), Ok(()));
        // The window started at the first failure ends 60 s later.
        assert_eq!(limiter.check(&"a", at(60)), Ok(()));
        assert_eq!(limiter.record_failure(&"a", at(60)), Ok(()));
    }

    #[test]
    fn memory_is_bounded_expired_windows_go_first_then_the_oldest() {
        let limiter = FailureLimiter::new(POLICY);
        for _ in 0..3 {
            let _ = limiter.record_failure(&"old", at(0));
        }
        let _ = limiter.record_failure(&"newer", at(30));
        // Full: the oldest window goes to make room.
        let _ = limiter.record_failure(&"third", at(40));
        assert_eq!(limiter.check(&"old", at(41)), Ok(()));
        assert_eq!(limiter.lock().len(), 2);
        // Expired windows are dropped before a live one.
        let _ = limiter.record_failure(&"fourth", at(95));
        assert!(limiter.lock().contains_key("third"));
        assert!(!limiter.lock().contains_key("newer"));
    }

    #[test]
    fn retry_after_is_never_zero() {
        let refused = Throttled {
            retry_after: Duration::from_millis(1),
        };
        assert_eq!(refused.retry_after_secs(), 1);
    }

    #[test]
    fn sources_count_per_ipv4_address_and_per_ipv6_slash_64() {
        let cases = [
            ("192.0.2.7", "192.0.2.7"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
            ("2001:db8:1:2::ffff", "2001:db8:1:2::"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("::1", "::"),
        ];
        for (ip, key) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(source_key(ip), key.parse::<IpAddr>().unwrap(), "{ip}");
        }
    }
}
