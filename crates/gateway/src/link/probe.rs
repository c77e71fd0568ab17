//! The `probe_upstreams` command (migration step 2): can this node reach each upstream?
//! A URL with a path beyond `/` is a health-check URL and must answer 2xx or 3xx to a GET;
//! a bare `scheme://host:port` is probed with a TCP connect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Uri};
use protocol::link::{ProbeReport, ProbeResult, ProbeTarget};
use tokio::sync::Semaphore;

use crate::body::UpstreamRequestBody;

/// At most this many targets are probed at once.
const MAX_CONCURRENT_PROBES: usize = 32;
/// At most this many targets are probed per command; the rest are reported as skipped.
pub const MAX_PROBE_TARGETS: usize = 1_000;

/// Probes every target with `timeout` each; the command result's `details`.
pub async fn probe_all(targets: Vec<ProbeTarget>, timeout: Duration) -> ProbeReport {
    let client = crate::hyper_client::build_client(timeout, false, None).ok();
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES));
    let mut tasks = tokio::task::JoinSet::new();
    let skipped = targets.len().saturating_sub(MAX_PROBE_TARGETS);
    for (index, target) in targets.into_iter().take(MAX_PROBE_TARGETS).enumerate() {
        let permits = permits.clone();
        let client = client.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let started = Instant::now();
            let outcome = probe_one(&target.url, client.as_ref(), timeout).await;
            let latency_ms = started.elapsed().as_millis() as u64;
            let (reachable, status, error) = match outcome {
                Ok(status) => (true, status, None),
                Err(error) => (false, None, Some(error)),
            };
            (
                index,
                ProbeResult {
                    api_id: target.api_id,
                    url: target.url,
                    reachable,
                    status,
                    latency_ms,
                    error,
                },
            )
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(result) = joined {
            results.push(result);
        }
    }
    results.sort_by_key(|(index, _)| *index);
    let results: Vec<_> = results.into_iter().map(|(_, r)| r).collect();
    let reachable = results.iter().filter(|r| r.reachable).count();
    ProbeReport {
        unreachable: results.len() - reachable,
        results,
        reachable,
        skipped,
    }
}

/// `Ok(Some(status))` for a health-check GET, `Ok(None)` for a TCP connect.
async fn probe_one(
    url: &str,
    client: Option<&crate::hyper_client::UpstreamClient>,
    timeout: Duration,
) -> Result<Option<u16>, String> {
    let uri: Uri = url.parse().map_err(|_| "not a URL".to_string())?;
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().ok_or("no host")?.to_string();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    if path == "/" || path.is_empty() {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port)))
            .await
        {
            Ok(Ok(_)) => Ok(None),
            Ok(Err(error)) => Err(format!("connect: {error}")),
            Err(_) => Err(format!("connect: no answer within {timeout:?}")),
        };
    }
    let client = client.ok_or("no HTTP client")?;
    let mut req = Request::new(UpstreamRequestBody::Empty);
    *req.uri_mut() = uri;
    match tokio::time::timeout(timeout, client.request(req)).await {
        Ok(Ok(response)) => {
            let status = response.status();
            if status.is_success() || status.is_redirection() {
                Ok(Some(status.as_u16()))
            } else {
                Err(format!("health check answered {}", status.as_u16()))
            }
        }
        Ok(Err(error)) => Err(format!("health check: {error}")),
        Err(_) => Err(format!("health check: no answer within {timeout:?}")),
    }
}
