//! Validation of a raw [`protocol::Snapshot`] into the node's runtime configuration, a value
//! that cannot be invalid. Long-lived state (targets with their health, API counters, pooled
//! clients) is looked up in [`StateRegistry`] by stable key, so it survives a swap.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use protocol::{ApiType, LoadBalancing, RetryCase, SNAPSHOT_FORMAT_VERSION, Snapshot};

use crate::client_body::BodyPace;
use crate::h1guard::{HeadLimits, MAX_HEADERS_CAP};
use crate::hyper_client::{UpstreamClient, build_client};
use crate::metrics::{Metrics, RouteMetrics};
use crate::router::{RouteError, Router};
use crate::upstream::{ApiState, Target};

/// Why a snapshot was refused. The node keeps its previous configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("snapshot is not valid JSON: {0}")]
    Malformed(String),
    #[error(
        "snapshot format version {0} is not supported (this node reads {SNAPSHOT_FORMAT_VERSION})"
    )]
    UnsupportedFormat(u32),
    #[error("{0}")]
    HashMismatch(String),
    #[error("generation {generation} was already applied with another content hash")]
    GenerationConflict { generation: u64 },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Execution settings in effect for one API (SPEC §5).
#[derive(Debug, Clone)]
pub struct Execution {
    pub max_concurrency: u32,
    pub retry_attempts: u32,
    pub connect_timeout: Duration,
    pub execution_timeout: Duration,
    pub retry_cases: Vec<RetryCase>,
}

impl Execution {
    pub fn retries_on(&self, case: RetryCase) -> bool {
        self.retry_cases.contains(&case)
    }
}

/// How an API is health-checked actively.
#[derive(Debug, Clone)]
pub enum HealthCheck {
    /// Checked on each target: origin of the target + this path.
    Path(String),
    /// One URL whose result applies to every target.
    Url(http::Uri),
}

/// One API as the node serves it.
#[derive(Debug)]
pub struct ApiRuntime {
    pub id: String,
    pub name: Arc<String>,
    pub targets: Vec<Arc<Target>>,
    pub load_balancing: LoadBalancing,
    pub execution: Execution,
    pub max_body_bytes: u64,
    pub health_check: Option<HealthCheck>,
    pub state: Arc<ApiState>,
    /// Clients for `http`/`https` targets and for `h2c` targets.
    pub client: UpstreamClient,
    pub h2c_client: UpstreamClient,
}

/// One routable prefix: an API in an environment (or at a custom path).
#[derive(Debug)]
pub struct Route {
    pub api: Arc<ApiRuntime>,
    pub environment: Arc<String>,
    pub metrics: RouteMetrics,
}

/// Server certificates for the TLS listener.
#[derive(Debug, Clone)]
pub struct CertEntry {
    pub server_names: Vec<String>,
    pub key: Arc<rustls::sign::CertifiedKey>,
}

/// Node-wide settings from the snapshot.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub head_limits: HeadLimits,
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: u32,
    /// How fast a request body still on its way must arrive.
    pub body_pace: BodyPace,
    /// Requests per client address that may be sending a body at once.
    pub max_body_connections_per_ip: u32,
    pub shutdown_delay: Duration,
    pub drain_timeout: Duration,
    pub health_interval: Duration,
    pub health_timeout: Duration,
    pub eject_after_failures: u32,
    pub ejection: Duration,
}

/// The settings of a snapshot with every default: `protocol`'s defaults are the one
/// definition, so they are validated like any snapshot's.
impl Default for NodeSettings {
    fn default() -> Self {
        settings(&protocol::GatewaySettings::default()).expect("the default settings are valid")
    }
}

/// A validated snapshot, ready to serve.
#[derive(Debug)]
pub struct Runtime {
    pub generation: u64,
    pub content_hash: String,
    /// Lower-case host names; empty means any host.
    pub hosts: Vec<String>,
    pub router: Router,
    pub routes: Vec<Route>,
    pub apis: Vec<Arc<ApiRuntime>>,
    pub settings: NodeSettings,
    pub certificates: Vec<CertEntry>,
    /// Environments that moved to another gateway (SPEC §7), consulted only when no route
    /// matched.
    pub redirects: Redirects,
}

/// The redirect table of a snapshot: a trie of the moved environments' path prefixes (the
/// router's segment rules, so `/ws/rest` redirects exactly what it used to route) to the
/// destination's Gateway URL and the end of the grace period.
#[derive(Debug, Default)]
pub struct Redirects {
    router: Router,
    targets: Vec<(String, u64)>,
}

impl Redirects {
    /// Builds the table; when two redirects claim one prefix the later grace period wins.
    fn build(redirects: &[protocol::EnvironmentRedirect]) -> Result<Redirects, RejectReason> {
        let mut sorted: Vec<&protocol::EnvironmentRedirect> = redirects.iter().collect();
        sorted.sort_by_key(|r| std::cmp::Reverse(r.until_ms));
        let mut table = Redirects::default();
        for redirect in sorted {
            let location = redirect.location.trim_end_matches('/');
            if !(location.starts_with("http://") || location.starts_with("https://"))
                || http::HeaderValue::from_str(location).is_err()
            {
                return Err(invalid(format!(
                    "redirect location {location:?} is not an http(s) URL"
                )));
            }
            let index = table.targets.len() as u32;
            for path in &redirect.paths {
                check_config_path("redirect path", path)?;
                match table.router.insert(path, index) {
                    Ok(()) | Err(RouteError::Duplicate { .. }) => {}
                    Err(other) => return Err(invalid(other.to_string())),
                }
            }
            table.targets.push((location.to_owned(), redirect.until_ms));
        }
        Ok(table)
    }

    /// Where a request for `path_and_query` (starting with `/`) that matched no route goes at
    /// `now_ms` (Unix milliseconds): the destination URL, or `None` for the normal 404.
    pub fn location(&self, path: &str, path_and_query: &str, now_ms: u64) -> Option<String> {
        if self.targets.is_empty() {
            return None;
        }
        let found = self.router.lookup(path)?;
        let (location, until_ms) = &self.targets[found.route as usize];
        (now_ms < *until_ms).then(|| format!("{location}{path_and_query}"))
    }
}

impl Runtime {
    /// Whether `host` (without port) is served by this gateway.
    pub fn serves_host(&self, host: &str) -> bool {
        self.hosts.is_empty() || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }
}

/// State that outlives snapshots, keyed by stable ids.
#[derive(Default)]
pub struct StateRegistry {
    targets: HashMap<(String, String), Arc<Target>>,
    apis: HashMap<String, Arc<ApiState>>,
    clients: HashMap<(u64, bool), UpstreamClient>,
    ca_pem: Option<String>,
}

impl StateRegistry {
    fn client(
        &mut self,
        connect_timeout: Duration,
        h2c: bool,
    ) -> Result<UpstreamClient, RejectReason> {
        let key = (connect_timeout.as_millis() as u64, h2c);
        if let Some(client) = self.clients.get(&key) {
            return Ok(client.clone());
        }
        let client = build_client(connect_timeout, h2c, self.ca_pem.as_deref())
            .map_err(|e| RejectReason::Invalid(e.to_string()))?;
        self.clients.insert(key, client.clone());
        Ok(client)
    }
}

fn invalid(message: impl Into<String>) -> RejectReason {
    RejectReason::Invalid(message.into())
}

/// Checks an environment path, API base path or custom path: segments of RFC 3986 `pchar`
/// (already percent-encoded), no empty, `.` or `..` segment, no leading or trailing `/`.
pub fn check_config_path(what: &str, path: &str) -> Result<(), RejectReason> {
    if path.is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    for segment in path.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(invalid(format!(
                "{what} {path:?} has an empty, `.` or `..` segment"
            )));
        }
        let bytes = segment.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
                if !ok {
                    return Err(invalid(format!("{what} {path:?} has a malformed %-escape")));
                }
                i += 3;
                continue;
            }
            let pchar = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b);
            if !pchar {
                return Err(invalid(format!(
                    "{what} {path:?} has a character that must be percent-encoded"
                )));
            }
            i += 1;
        }
    }
    Ok(())
}

fn in_range<T: PartialOrd>(value: T, (min, max): (T, T)) -> bool {
    min <= value && value <= max
}

/// Checks an API's execution settings against `model`'s ranges (SPEC §5), with `model`'s
/// messages. One difference on purpose: a timeout may be shorter than model's floor of 1 s,
/// down to 1 ms. The wire carries milliseconds, the platform only ever sends values inside
/// model's ranges, and hand-written snapshots (tests, benchmarks) use sub-second timeouts.
fn execution(raw: &protocol::ExecutionSettings, api: &str) -> Result<Execution, RejectReason> {
    use model::validate::{
        CONNECT_TIMEOUT_RANGE, EXECUTION_TIMEOUT_RANGE, MAX_CONCURRENCY_RANGE,
        RETRY_ATTEMPTS_RANGE, ValidationError,
    };
    let connect_timeout = Duration::from_millis(raw.connect_timeout_ms);
    let execution_timeout = Duration::from_millis(raw.execution_timeout_ms);
    let floor = Duration::from_millis(1);
    let refused = |error: ValidationError| invalid(format!("API {api}: {error}"));
    if !in_range(raw.max_concurrency_per_node, MAX_CONCURRENCY_RANGE) {
        return Err(refused(ValidationError::MaxConcurrencyOutOfRange {
            value: raw.max_concurrency_per_node,
        }));
    }
    if !in_range(raw.retry_attempts, RETRY_ATTEMPTS_RANGE) {
        return Err(refused(ValidationError::RetryAttemptsOutOfRange {
            value: raw.retry_attempts,
        }));
    }
    if !in_range(connect_timeout, (floor, CONNECT_TIMEOUT_RANGE.1)) {
        return Err(refused(ValidationError::ConnectTimeoutOutOfRange {
            value: connect_timeout,
        }));
    }
    if !in_range(execution_timeout, (floor, EXECUTION_TIMEOUT_RANGE.1)) {
        return Err(refused(ValidationError::ExecutionTimeoutOutOfRange {
            value: execution_timeout,
        }));
    }
    Ok(Execution {
        max_concurrency: raw.max_concurrency_per_node,
        retry_attempts: raw.retry_attempts,
        connect_timeout,
        execution_timeout,
        retry_cases: raw.retry_cases.clone(),
    })
}

fn body_pace(limits: &protocol::Limits) -> BodyPace {
    BodyPace {
        timeout: Duration::from_millis(limits.client_body_timeout_ms),
        min_rate: limits.min_client_body_rate,
    }
}

fn settings(raw: &protocol::GatewaySettings) -> Result<NodeSettings, RejectReason> {
    let l = &raw.limits;
    if l.max_request_line_bytes < 64
        || l.max_header_bytes < 64
        || l.max_headers_total_bytes < l.max_header_bytes
        || l.max_headers == 0
        || l.max_headers as usize > MAX_HEADERS_CAP
        || l.max_headers_total_bytes > 1 << 20
        || l.max_request_line_bytes > 1 << 20
    {
        return Err(invalid(format!(
            "limits out of range (max_headers 1–{MAX_HEADERS_CAP}, line and header sizes 64 B–1 MiB)"
        )));
    }
    if l.header_read_timeout_ms == 0
        || l.keep_alive_timeout_ms == 0
        || l.client_body_timeout_ms == 0
        || l.max_connections == 0
        || l.max_body_connections_per_ip == 0
    {
        return Err(invalid(
            "limits: timeouts, max_connections and max_body_connections_per_ip must be positive",
        ));
    }
    let h = &raw.health;
    if h.check_interval_ms < 100 || h.check_timeout_ms == 0 {
        return Err(invalid(
            "health: check_interval_ms ≥ 100 and check_timeout_ms ≥ 1",
        ));
    }
    Ok(NodeSettings {
        head_limits: HeadLimits::of(l),
        header_read_timeout: Duration::from_millis(l.header_read_timeout_ms),
        keep_alive_timeout: Duration::from_millis(l.keep_alive_timeout_ms),
        max_connections: l.max_connections,
        body_pace: body_pace(l),
        max_body_connections_per_ip: l.max_body_connections_per_ip,
        shutdown_delay: Duration::from_millis(raw.shutdown_delay_ms),
        drain_timeout: Duration::from_millis(raw.drain_timeout_ms),
        health_interval: Duration::from_millis(h.check_interval_ms),
        health_timeout: Duration::from_millis(h.check_timeout_ms),
        eject_after_failures: h.eject_after_failures,
        ejection: Duration::from_millis(h.ejection_ms),
    })
}

fn certificate(raw: &protocol::TlsCertificate, index: usize) -> Result<CertEntry, RejectReason> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let err = |what: String| invalid(format!("certificate {index}: {what}"));
    if raw.server_names.is_empty() {
        return Err(err("no server name".into()));
    }
    let chain = CertificateDer::pem_slice_iter(raw.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if chain.is_empty() {
        return Err(err("no certificate in PEM".into()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(raw.key_pem.as_bytes()).map_err(|e| err(e.to_string()))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| err(e.to_string()))?;
    Ok(CertEntry {
        server_names: raw
            .server_names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect(),
        key: Arc::new(rustls::sign::CertifiedKey::new(chain, signing)),
    })
}

/// Validates `snapshot` whole into a runtime. Nothing is changed in `registry` unless the
/// whole snapshot is valid.
pub fn build(
    snapshot: &Snapshot,
    registry: &mut StateRegistry,
    metrics: &Metrics,
) -> Result<Runtime, RejectReason> {
    if snapshot.format_version != SNAPSHOT_FORMAT_VERSION {
        return Err(RejectReason::UnsupportedFormat(snapshot.format_version));
    }
    snapshot
        .verify_hash()
        .map_err(|e| RejectReason::HashMismatch(e.to_string()))?;
    let config = &snapshot.config;
    let node_settings = settings(&config.gateway)?;
    let default_execution = execution(&config.gateway.execution, "(gateway default)")?;

    let mut hosts = Vec::new();
    for host in &config.gateway.hosts {
        let host = host.to_ascii_lowercase();
        // An IPv6 literal comes bracketed, as requests name it (`Host: [::1]:8080`).
        let ipv6 = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
        if host.is_empty() || (!ipv6 && host.contains(['/', ' ', ':', '[', ']'])) {
            return Err(invalid(format!("host {host:?} is not a host name")));
        }
        hosts.push(host);
    }

    let mut environments = HashMap::new();
    for env in &config.environments {
        for api_type in [
            ApiType::Rest,
            ApiType::Soap,
            ApiType::Soap12,
            ApiType::Odata,
        ] {
            check_config_path(
                &format!("environment {} path", env.name),
                env.paths.for_type(api_type),
            )?;
        }
        let paths = [
            &env.paths.rest,
            &env.paths.soap,
            &env.paths.soap12,
            &env.paths.odata,
        ];
        if paths.iter().collect::<HashSet<_>>().len() != 4 {
            return Err(invalid(format!(
                "environment {}: the four paths must differ",
                env.name
            )));
        }
        if environments
            .insert(env.id.as_str(), (env, Arc::new(env.name.clone())))
            .is_some()
        {
            return Err(invalid(format!("environment id {} appears twice", env.id)));
        }
    }

    // The CA is part of the configuration: a change rebuilds the clients (new pools).
    let ca_pem = config.gateway.upstream_ca_pem.clone();
    let mut staged = StateRegistry {
        ca_pem: ca_pem.clone(),
        clients: if ca_pem == registry.ca_pem {
            registry.clients.clone()
        } else {
            HashMap::new()
        },
        ..StateRegistry::default()
    };

    let mut router = Router::default();
    let mut routes: Vec<Route> = Vec::new();
    let mut apis = Vec::new();
    let mut api_ids = HashSet::new();
    let mut route_owner: Vec<String> = Vec::new();
    for raw in &config.apis {
        if !api_ids.insert(raw.id.as_str()) {
            return Err(invalid(format!("API id {} appears twice", raw.id)));
        }
        check_config_path(&format!("API {} base path", raw.name), &raw.base_path)?;
        if raw.targets.is_empty() {
            return Err(invalid(format!("API {} has no upstream target", raw.name)));
        }
        let execution = match &raw.execution {
            Some(e) => execution(e, &raw.name)?,
            None => default_execution.clone(),
        };
        let mut targets = Vec::with_capacity(raw.targets.len());
        let mut seen_urls = HashSet::new();
        for target in &raw.targets {
            if !seen_urls.insert(target.url.as_str()) {
                return Err(invalid(format!(
                    "API {}: target {} appears twice",
                    raw.name, target.url
                )));
            }
            let key = (raw.id.clone(), target.url.clone());
            let target = match registry.targets.get(&key) {
                Some(existing) => existing.clone(),
                None => Arc::new(
                    Target::parse(&target.url)
                        .map_err(|e| invalid(format!("API {}: {e}", raw.name)))?,
                ),
            };
            staged.targets.insert(key, target.clone());
            targets.push(target);
        }
        let health_check = match raw.health_check_url.as_deref() {
            None | Some("") => None,
            Some(path) if path.starts_with('/') => Some(HealthCheck::Path(path.to_string())),
            Some(url) => {
                let uri: http::Uri = url
                    .parse()
                    .map_err(|_| invalid(format!("API {}: bad health-check URL", raw.name)))?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(invalid(format!(
                        "API {}: health-check URL must be http(s)",
                        raw.name
                    )));
                }
                Some(HealthCheck::Url(uri))
            }
        };
        let max_body_bytes = raw
            .max_body_bytes
            .unwrap_or(config.gateway.limits.max_body_bytes);
        let state = registry.apis.get(&raw.id).cloned().unwrap_or_default();
        staged.apis.insert(raw.id.clone(), state.clone());
        let api = Arc::new(ApiRuntime {
            id: raw.id.clone(),
            name: Arc::new(raw.name.clone()),
            client: staged.client(execution.connect_timeout, false)?,
            h2c_client: staged.client(execution.connect_timeout, true)?,
            targets,
            load_balancing: raw.load_balancing,
            execution,
            max_body_bytes,
            health_check,
            state,
        });
        if raw.deployments.is_empty() {
            return Err(invalid(format!(
                "API {} is not deployed to any environment",
                raw.name
            )));
        }
        for deployment in &raw.deployments {
            let (env, env_name) = environments
                .get(deployment.environment_id.as_str())
                .ok_or_else(|| {
                    invalid(format!(
                        "API {} is deployed to unknown environment {}",
                        raw.name, deployment.environment_id
                    ))
                })?;
            let prefix = match &deployment.custom_path {
                Some(custom) => {
                    check_config_path(&format!("API {} custom path", raw.name), custom)?;
                    custom.clone()
                }
                None => format!("{}/{}", env.paths.for_type(raw.api_type), raw.base_path),
            };
            let index = routes.len() as u32;
            router.insert(&prefix, index).map_err(|e| match e {
                RouteError::Duplicate { existing, .. } => invalid(format!(
                    "API path conflict: /{prefix} is claimed by API {} and API {}",
                    route_owner[existing as usize], raw.name
                )),
                other => invalid(other.to_string()),
            })?;
            route_owner.push(raw.name.clone());
            routes.push(Route {
                metrics: metrics.route(&api.name, env_name),
                api: api.clone(),
                environment: env_name.clone(),
            });
        }
        apis.push(api);
    }

    let certificates = config
        .certificates
        .iter()
        .enumerate()
        .map(|(i, c)| certificate(c, i))
        .collect::<Result<Vec<_>, _>>()?;

    let redirects = Redirects::build(&config.redirects)?;

    // Valid as a whole: only now does the registry forget state of removed APIs and targets.
    *registry = staged;
    Ok(Runtime {
        generation: snapshot.generation,
        content_hash: snapshot.content_hash.clone(),
        hosts,
        router,
        routes,
        apis,
        settings: node_settings,
        certificates,
        redirects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_protocols() {
        let defaults = NodeSettings::default();
        let limits = protocol::Limits::default();
        assert_eq!(defaults.head_limits, HeadLimits::of(&limits));
        assert_eq!(
            defaults.head_limits.max_headers_total_bytes,
            limits.max_headers_total_bytes as usize
        );
        assert_eq!(
            defaults.drain_timeout,
            Duration::from_millis(protocol::GatewaySettings::default().drain_timeout_ms)
        );
    }

    #[test]
    fn execution_ranges_are_models() {
        let ok = protocol::ExecutionSettings::default();
        assert!(execution(&ok, "a").is_ok());
        let refused = |edit: fn(&mut protocol::ExecutionSettings)| {
            let mut raw = protocol::ExecutionSettings::default();
            edit(&mut raw);
            execution(&raw, "a").unwrap_err().to_string()
        };
        assert_eq!(
            refused(|e| e.max_concurrency_per_node = 0),
            "invalid configuration: API a: max concurrency per node 0 is outside 1–10000"
        );
        assert!(refused(|e| e.retry_attempts = 11).contains("retry attempts 11 is outside 0–10"));
        assert!(refused(|e| e.connect_timeout_ms = 0).contains("connect timeout"));
        assert!(refused(|e| e.connect_timeout_ms = 600_001).contains("connect timeout"));
        assert!(
            refused(|e| e.execution_timeout_ms = 315_360_000_001).contains("execution timeout")
        );
        // Below model's floor of 1 s, down to 1 ms: hand-written snapshots use short timeouts.
        let short = protocol::ExecutionSettings {
            connect_timeout_ms: 1,
            execution_timeout_ms: 300,
            ..protocol::ExecutionSettings::default()
        };
        assert!(execution(&short, "a").is_ok());
    }

    #[test]
    fn config_paths() {
        for ok in ["ws/rest", "a", "a%20b", "v1.0/x~y", "a:b@c"] {
            check_config_path("p", ok).unwrap();
        }
        for bad in [
            "", "/a", "a/", "a//b", "a/./b", "a/../b", "a b", "a%2", "a%zz", "a?b", "a#b",
        ] {
            assert!(check_config_path("p", bad).is_err(), "{bad:?}");
        }
    }
}
