//! Upstream side: targets with their long-lived state (health, load, idle connections in
//! `pool`), load balancing, passive ejection, name resolution and connecting (`connect`), and
//! the failure cases of SPEC §5. The clients that talk to targets are `h1client` (the node's
//! own, for `http://`) and `hyper_client`.

pub mod connect;
pub mod pool;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use http::uri::{Authority, Scheme};
use protocol::{LoadBalancing, RetryCase};

use crate::client_body::BodyTimeout;

/// One upstream target of one API. Shared across snapshots while the API id and URL stay the
/// same, so its health and counters survive a swap.
#[derive(Debug)]
pub struct Target {
    /// The URL as configured.
    pub url: String,
    pub scheme: Scheme,
    pub authority: Authority,
    /// Path prefix without a trailing `/` (empty for the root).
    pub base_path: String,
    /// `h2c://`: HTTP/2 with prior knowledge over cleartext.
    pub h2c: bool,
    /// Requests sent and not yet finished (least-outstanding balancing).
    pub outstanding: AtomicU32,
    /// Consecutive transport failures (passive health).
    pub failures: AtomicU32,
    /// Milliseconds since the node started until which the target is ejected.
    pub ejected_until_ms: AtomicU64,
    /// Result of the last active health check (true until a check says otherwise).
    pub healthy: AtomicBool,
    /// The `Host` header sent upstream: the authority without the scheme's default port.
    pub host_header: String,
    /// Idle connections of the node's own HTTP/1.1 client (`http://` targets).
    pub pool: pool::Pool,
}

/// Why a target URL is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid upstream target {url:?}: {reason}")]
pub struct TargetError {
    pub url: String,
    pub reason: &'static str,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let err = |reason| TargetError {
            url: url.to_string(),
            reason,
        };
        let (scheme, rest, h2c) = if let Some(rest) = url.strip_prefix("http://") {
            (Scheme::HTTP, rest, false)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (Scheme::HTTPS, rest, false)
        } else if let Some(rest) = url.strip_prefix("h2c://") {
            (Scheme::HTTP, rest, true)
        } else {
            return Err(err("scheme must be http, https or h2c"));
        };
        if rest.contains(['?', '#']) {
            return Err(err("no query or fragment allowed"));
        }
        let slash = rest.find('/').unwrap_or(rest.len());
        let authority: Authority = rest[..slash].parse().map_err(|_| err("bad host"))?;
        if authority.host().is_empty() || authority.as_str().contains('@') {
            return Err(err("bad host"));
        }
        let base_path = rest[slash..].trim_end_matches('/').to_string();
        if base_path.contains("//") || base_path.contains(char::is_whitespace) {
            return Err(err("bad path"));
        }
        let default_port = if scheme == Scheme::HTTPS { 443 } else { 80 };
        let host_header = match authority.port_u16() {
            Some(port) if port != default_port => authority.as_str().to_owned(),
            _ => authority.host().to_owned(),
        };
        Ok(Target {
            host_header,
            pool: pool::Pool::default(),
            url: url.to_string(),
            scheme,
            authority,
            base_path,
            h2c,
            outstanding: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
        })
    }

    /// Whether requests to this target go through the node's own HTTP/1.1 client
    /// ([`crate::h1client`]): plain `http://`, not h2c.
    pub fn plain_http(&self) -> bool {
        !self.h2c && self.scheme == Scheme::HTTP
    }

    /// Whether the target may get new traffic at `now_ms`.
    pub fn available(&self, now_ms: u64) -> bool {
        self.healthy.load(Ordering::Relaxed)
            && self.ejected_until_ms.load(Ordering::Relaxed) <= now_ms
    }

    /// Records a transport failure; ejects after `eject_after` consecutive ones (0 = never).
    pub fn record_failure(&self, now_ms: u64, eject_after: u32, ejection_ms: u64) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if eject_after > 0 && failures >= eject_after {
            self.ejected_until_ms
                .store(now_ms + ejection_ms, Ordering::Relaxed);
            // The next failure after the ejection ends ejects again at once (half-open).
            self.failures.store(eject_after - 1, Ordering::Relaxed);
        }
    }

    pub fn record_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }
}

/// Counters of one API that survive swaps.
#[derive(Debug, Default)]
pub struct ApiState {
    pub in_flight: AtomicU32,
    pub next: AtomicUsize,
}

/// Picks a target index, avoiding those in `tried` (a bit per index) and unavailable ones;
/// when every target is unavailable it still picks one, since refusing all traffic is worse
/// than trying a target that may have recovered.
pub fn pick(
    targets: &[Arc<Target>],
    policy: LoadBalancing,
    state: &ApiState,
    tried: u64,
    now_ms: u64,
) -> usize {
    let n = targets.len();
    if n <= 1 {
        return 0;
    }
    // A retry continues from where the rotation stands instead of advancing it, so retries do
    // not skew the distribution of first attempts.
    let start = if tried == 0 {
        state.next.fetch_add(1, Ordering::Relaxed) % n
    } else {
        state.next.load(Ordering::Relaxed) % n
    };
    let untried = |i: usize| i >= 64 || tried & (1 << i) == 0;
    let mut best: Option<(usize, u32)> = None;
    for k in 0..n {
        let i = (start + k) % n;
        if !untried(i) || !targets[i].available(now_ms) {
            continue;
        }
        match policy {
            LoadBalancing::RoundRobin => return i,
            LoadBalancing::LeastOutstanding => {
                let load = targets[i].outstanding.load(Ordering::Relaxed);
                if best.is_none_or(|(_, b)| load < b) {
                    best = Some((i, load));
                }
            }
        }
    }
    if let Some((i, _)) = best {
        return i;
    }
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| untried(i))
        .unwrap_or(start)
}

/// An upstream failure, classified into the retry cases of SPEC §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    ConnectTimeout,
    HostNotFound,
    HostRouting,
    ConnectionDropped,
    ExecutionTimeout,
    /// The upstream answered with something that is not a valid HTTP/1.1 response.
    BadResponse,
    /// The client's request body failed (over the limit, or malformed): not the upstream's fault.
    RequestBodyTooLarge,
    RequestBodyBroken,
    /// The client sent its body too slowly.
    RequestBodyTimeout(BodyTimeout),
    Other,
}

impl UpstreamFailure {
    pub fn retry_case(self) -> Option<RetryCase> {
        match self {
            UpstreamFailure::ConnectTimeout => Some(RetryCase::ConnectTimeout),
            UpstreamFailure::HostNotFound => Some(RetryCase::HostNotFound),
            UpstreamFailure::HostRouting => Some(RetryCase::HostRoutingError),
            UpstreamFailure::ConnectionDropped => Some(RetryCase::ConnectionDropped),
            UpstreamFailure::ExecutionTimeout => Some(RetryCase::ExecutionTimeout),
            _ => None,
        }
    }

    /// Whether the target is to blame (counts toward passive ejection).
    pub fn blames_target(self) -> bool {
        matches!(
            self,
            UpstreamFailure::ConnectTimeout
                | UpstreamFailure::HostNotFound
                | UpstreamFailure::HostRouting
                | UpstreamFailure::ConnectionDropped
                | UpstreamFailure::ExecutionTimeout
                | UpstreamFailure::BadResponse
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamFailure::ConnectTimeout => "connect_timeout",
            UpstreamFailure::HostNotFound => "host_not_found",
            UpstreamFailure::HostRouting => "host_routing",
            UpstreamFailure::ConnectionDropped => "connection_dropped",
            UpstreamFailure::ExecutionTimeout => "execution_timeout",
            UpstreamFailure::BadResponse => "bad_response",
            UpstreamFailure::RequestBodyTooLarge => "request_body_too_large",
            UpstreamFailure::RequestBodyBroken => "request_body_broken",
            UpstreamFailure::RequestBodyTimeout(_) => "request_body_timeout",
            UpstreamFailure::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(n: usize) -> Vec<Arc<Target>> {
        (0..n)
            .map(|i| Arc::new(Target::parse(&format!("http://10.0.0.{i}:80/base/")).unwrap()))
            .collect()
    }

    #[test]
    fn target_urls() {
        let t = Target::parse("https://api.example.com:8443/v1/").unwrap();
        assert_eq!(t.base_path, "/v1");
        assert_eq!(t.authority.as_str(), "api.example.com:8443");
        assert_eq!(Target::parse("http://a").unwrap().base_path, "");
        assert!(Target::parse("h2c://a:81").unwrap().h2c);
        for bad in ["ftp://a", "http://", "http://a/?x", "http://u@a/", "a:80"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn round_robin_skips_tried_and_ejected() {
        let ts = targets(3);
        let state = ApiState::default();
        let picks: Vec<usize> = (0..6)
            .map(|_| pick(&ts, LoadBalancing::RoundRobin, &state, 0, 0))
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert_ne!(pick(&ts, LoadBalancing::RoundRobin, &state, 0b001, 0), 0);
        ts[1].record_failure(0, 2, 1000);
        ts[1].record_failure(0, 2, 1000);
        for _ in 0..6 {
            assert_ne!(pick(&ts, LoadBalancing::RoundRobin, &state, 0, 10), 1);
        }
        // Recovers when the ejection ends.
        assert!(ts[1].available(1000));
        // All tried: still picks one.
        assert!(pick(&ts, LoadBalancing::RoundRobin, &state, 0b111, 0) < 3);
    }

    #[test]
    fn least_outstanding_prefers_idle() {
        let ts = targets(3);
        let state = ApiState::default();
        ts[0].outstanding.store(5, Ordering::Relaxed);
        ts[1].outstanding.store(1, Ordering::Relaxed);
        ts[2].outstanding.store(3, Ordering::Relaxed);
        for _ in 0..4 {
            assert_eq!(pick(&ts, LoadBalancing::LeastOutstanding, &state, 0, 0), 1);
        }
        assert_eq!(
            pick(&ts, LoadBalancing::LeastOutstanding, &state, 0b010, 0),
            2
        );
    }
}
