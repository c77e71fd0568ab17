//! The configuration snapshot: everything a gateway node needs to serve traffic, versioned,
//! with a strictly increasing generation and a content hash over a canonical serialisation.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the snapshot wire format. A node refuses snapshots of another version.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// A complete gateway configuration as sent by the platform or read from a file.
///
/// `content_hash` is the lowercase hex SHA-256 of [`Snapshot::canonical_bytes`], which covers
/// every other field. The serialisation is canonical because every type here is a struct or a
/// `Vec` (fields in declaration order, no maps with unordered keys) written by `serde_json`
/// in compact form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub format_version: u32,
    /// Strictly increasing per gateway; a node never applies one lower than or equal to its own.
    pub generation: u64,
    pub content_hash: String,
    pub config: SnapshotConfig,
}

/// The hashed part of a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    pub gateway: GatewaySettings,
    #[serde(default)]
    pub environments: Vec<Environment>,
    #[serde(default)]
    pub apis: Vec<Api>,
    /// Server certificates for the HTTPS listener, chosen by SNI.
    #[serde(default)]
    pub certificates: Vec<TlsCertificate>,
    /// Environments that migrated to another gateway and are still in their grace period
    /// (SPEC §7). Left out of the JSON when empty, so that a snapshot written before this
    /// field existed keeps its content hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<EnvironmentRedirect>,
}

/// The URLs of an environment that moved to another gateway: until `until_ms`, a request
/// under one of `paths` that no route of this gateway matches answers `308 Permanent
/// Redirect` to `location` followed by the same path and query. Checked only when no route
/// matched, so it costs nothing on the proxied path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentRedirect {
    /// The environment's path prefixes as this gateway served them (normal form, no leading
    /// or trailing `/`).
    pub paths: Vec<String>,
    /// The destination's Gateway URL (scheme, host, optional port and base path; no trailing
    /// `/`).
    pub location: String,
    /// Unix milliseconds (wall clock) at which the grace period ends; after it, the normal 404.
    pub until_ms: u64,
}

/// Why a snapshot's hash does not check out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("content hash mismatch: snapshot says {claimed}, content hashes to {actual}")]
pub struct HashMismatch {
    pub claimed: String,
    pub actual: String,
}

impl Snapshot {
    /// A snapshot of the current format with its hash computed.
    pub fn new(generation: u64, config: SnapshotConfig) -> Snapshot {
        let mut snapshot = Snapshot {
            format_version: SNAPSHOT_FORMAT_VERSION,
            generation,
            content_hash: String::new(),
            config,
        };
        snapshot.content_hash = snapshot.compute_hash();
        snapshot
    }

    /// The bytes the content hash is computed over: format version, generation and config.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&(self.format_version, self.generation, &self.config))
            .expect("plain structs and Vecs serialise into memory")
    }

    /// Lowercase hex SHA-256 of [`Snapshot::canonical_bytes`], streamed into the hasher so a
    /// large snapshot is not serialised into memory a second time.
    pub fn compute_hash(&self) -> String {
        struct HashWriter(Sha256);
        impl std::io::Write for HashWriter {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.update(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut writer = HashWriter(Sha256::new());
        serde_json::to_writer(
            &mut writer,
            &(self.format_version, self.generation, &self.config),
        )
        .expect("plain structs and Vecs serialise into a hasher");
        hex::encode(writer.0.finalize())
    }

    /// Checks that `content_hash` matches the content.
    pub fn verify_hash(&self) -> Result<(), HashMismatch> {
        let actual = self.compute_hash();
        if actual == self.content_hash {
            Ok(())
        } else {
            Err(HashMismatch {
                claimed: self.content_hash.clone(),
                actual,
            })
        }
    }

    /// Recomputes `content_hash` after the content was edited.
    pub fn seal(&mut self) {
        self.content_hash = self.compute_hash();
    }

    pub fn from_json(bytes: &[u8]) -> Result<Snapshot, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain structs and Vecs serialise into memory")
    }
}

/// Gateway-wide settings (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// The platform's id of the gateway this snapshot is for.
    #[serde(default)]
    pub gateway_id: String,
    #[serde(default)]
    pub name: String,
    /// Host names (of the Gateway URL) this gateway answers for; empty means any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Desired bind addresses; a node's command-line flags take precedence.
    #[serde(default)]
    pub listeners: Listeners,
    #[serde(default)]
    pub execution: ExecutionSettings,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub health: HealthSettings,
    /// How long readiness answers 503 before the node stops accepting, so load balancers drain.
    #[serde(default)]
    pub shutdown_delay_ms: u64,
    /// How long in-flight requests may take to finish after the node stops accepting.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// Extra CA certificates (PEM) trusted for TLS upstreams besides the system roots.
    #[serde(default)]
    pub upstream_ca_pem: Option<String>,
}

fn default_drain_timeout_ms() -> u64 {
    millis(model::DEFAULT_DRAIN_TIMEOUT)
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            gateway_id: String::new(),
            name: String::new(),
            hosts: Vec::new(),
            listeners: Listeners::default(),
            execution: ExecutionSettings::default(),
            limits: Limits::default(),
            health: HealthSettings::default(),
            shutdown_delay_ms: 0,
            drain_timeout_ms: default_drain_timeout_ms(),
            upstream_ca_pem: None,
        }
    }
}

/// Bind addresses, e.g. `0.0.0.0:8077`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    #[serde(default)]
    pub http: Option<String>,
    #[serde(default)]
    pub https: Option<String>,
}

/// Failure cases after which an idempotent request may be retried on another target (SPEC §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RetryCase {
    ConnectTimeout,
    ConnectionDropped,
    HostNotFound,
    HostRoutingError,
    ExecutionTimeout,
}

/// Execution settings: gateway defaults, overridable per API (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionSettings {
    pub max_concurrency_per_node: u32,
    pub retry_attempts: u32,
    pub connect_timeout_ms: u64,
    pub execution_timeout_ms: u64,
    pub retry_cases: Vec<RetryCase>,
}

/// The defaults are the model's (SPEC §5), converted: one definition of each value.
impl Default for ExecutionSettings {
    fn default() -> Self {
        Self::from(&model::ExecutionSettings::default())
    }
}

impl From<&model::ExecutionSettings> for ExecutionSettings {
    /// Retry cases sorted and deduplicated, so equal settings serialise (and hash) equally.
    fn from(settings: &model::ExecutionSettings) -> Self {
        let mut retry_cases: Vec<RetryCase> = settings
            .retry_cases
            .iter()
            .map(|c| RetryCase::from(*c))
            .collect();
        retry_cases.sort();
        retry_cases.dedup();
        Self {
            max_concurrency_per_node: settings.max_concurrency_per_node,
            retry_attempts: settings.retry_attempts,
            connect_timeout_ms: millis(settings.connect_timeout),
            execution_timeout_ms: millis(settings.execution_timeout),
            retry_cases,
        }
    }
}

impl From<model::RetryCase> for RetryCase {
    fn from(case: model::RetryCase) -> Self {
        match case {
            model::RetryCase::ConnectTimeout => RetryCase::ConnectTimeout,
            model::RetryCase::ConnectionDropped => RetryCase::ConnectionDropped,
            model::RetryCase::HostNotFound => RetryCase::HostNotFound,
            model::RetryCase::HostRoutingError => RetryCase::HostRoutingError,
            model::RetryCase::ExecutionTimeout => RetryCase::ExecutionTimeout,
        }
    }
}

/// Whole milliseconds of a duration, saturating.
pub(crate) fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Default of [`Limits::client_body_timeout_ms`]: a request body with no byte for this long,
/// or slower than [`DEFAULT_MIN_CLIENT_BODY_RATE`] over this long, is answered 408 (SPEC §9).
pub const DEFAULT_CLIENT_BODY_TIMEOUT_MS: u64 = 10_000;
/// Default of [`Limits::min_client_body_rate`], bytes per second.
pub const DEFAULT_MIN_CLIENT_BODY_RATE: u64 = 1024;
/// Default of [`Limits::max_body_connections_per_ip`].
pub const DEFAULT_MAX_BODY_CONNECTIONS_PER_IP: u32 = 32;

/// Safe request limits (SPEC §9). Every field has the spec's default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest request line → 414.
    pub max_request_line_bytes: u32,
    /// Longest single header line → 431.
    pub max_header_bytes: u32,
    /// All header lines together → 431.
    pub max_headers_total_bytes: u32,
    /// Most header lines → 431.
    pub max_headers: u32,
    /// Default request body limit of an API → 413.
    pub max_body_bytes: u64,
    /// Time to receive a complete request head → 408.
    pub header_read_timeout_ms: u64,
    /// Idle keep-alive connections are closed after this long.
    pub keep_alive_timeout_ms: u64,
    /// Most client connections open at once on one node.
    pub max_connections: u32,
    /// A request body that sends no byte for this long is answered 408; it is also the window
    /// over which [`Limits::min_client_body_rate`] is averaged. Fields at their default are
    /// not serialised, so snapshots from before they existed keep their content hash.
    #[serde(skip_serializing_if = "is_default_client_body_timeout")]
    pub client_body_timeout_ms: u64,
    /// Slowest accepted request body in bytes per second, averaged over each
    /// `client_body_timeout_ms` (a body smaller than one window's worth must arrive whole
    /// within one window); slower → 408. 0 turns the rate check off.
    #[serde(skip_serializing_if = "is_default_min_client_body_rate")]
    pub min_client_body_rate: u64,
    /// Requests from one client address (IPv6: its /64) that may be sending a body at once;
    /// more wait, up to `client_body_timeout_ms`, for one of them to finish.
    #[serde(skip_serializing_if = "is_default_max_body_connections_per_ip")]
    pub max_body_connections_per_ip: u32,
}

fn is_default_client_body_timeout(v: &u64) -> bool {
    *v == DEFAULT_CLIENT_BODY_TIMEOUT_MS
}

fn is_default_min_client_body_rate(v: &u64) -> bool {
    *v == DEFAULT_MIN_CLIENT_BODY_RATE
}

fn is_default_max_body_connections_per_ip(v: &u32) -> bool {
    *v == DEFAULT_MAX_BODY_CONNECTIONS_PER_IP
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_line_bytes: 8 * 1024,
            max_header_bytes: 8 * 1024,
            max_headers_total_bytes: 32 * 1024,
            max_headers: 100,
            max_body_bytes: 10 * 1024 * 1024,
            header_read_timeout_ms: 10_000,
            keep_alive_timeout_ms: 75_000,
            max_connections: 10_000,
            client_body_timeout_ms: DEFAULT_CLIENT_BODY_TIMEOUT_MS,
            min_client_body_rate: DEFAULT_MIN_CLIENT_BODY_RATE,
            max_body_connections_per_ip: DEFAULT_MAX_BODY_CONNECTIONS_PER_IP,
        }
    }
}

/// Upstream health checking, active and passive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// Period of active checks of APIs that have a health check.
    pub check_interval_ms: u64,
    pub check_timeout_ms: u64,
    /// Consecutive failed requests after which a target is ejected (0 disables).
    pub eject_after_failures: u32,
    /// How long an ejected target gets no traffic before it is tried again.
    pub ejection_ms: u64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            check_interval_ms: 10_000,
            check_timeout_ms: 2_000,
            eject_after_failures: 5,
            ejection_ms: 10_000,
        }
    }
}

/// An environment with one URL path per API type (SPEC §6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub id: String,
    pub name: String,
    pub paths: EnvironmentPaths,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentPaths {
    pub rest: String,
    pub soap: String,
    pub soap12: String,
    pub odata: String,
}

impl Default for EnvironmentPaths {
    fn default() -> Self {
        Self {
            rest: "ws/rest".into(),
            soap: "ws/soap".into(),
            soap12: "ws/soap12".into(),
            odata: "ws/odata".into(),
        }
    }
}

impl EnvironmentPaths {
    pub fn for_type(&self, api_type: ApiType) -> &str {
        match api_type {
            ApiType::Rest => &self.rest,
            ApiType::Soap => &self.soap,
            ApiType::Soap12 => &self.soap12,
            ApiType::Odata => &self.odata,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApiType {
    Rest,
    Soap,
    Soap12,
    Odata,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancing {
    #[default]
    RoundRobin,
    LeastOutstanding,
}

/// An API proxy as the gateway needs it (SPEC §8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// Stable across snapshots; long-lived state (pools, health, counters) is keyed by it.
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub version: String,
    pub api_type: ApiType,
    /// Without leading or trailing `/`, e.g. `orders/v1`.
    pub base_path: String,
    /// Upstream base URLs, e.g. `http://10.0.0.5:8080/base`.
    pub targets: Vec<UpstreamTarget>,
    #[serde(default)]
    pub load_balancing: LoadBalancing,
    /// A path starting with `/` is checked on every target; an absolute URL is checked once
    /// and its result applies to all targets.
    #[serde(default)]
    pub health_check_url: Option<String>,
    #[serde(default)]
    pub execution: Option<ExecutionSettings>,
    /// Overrides the gateway's default body limit.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    pub deployments: Vec<Deployment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTarget {
    pub url: String,
}

/// An API deployed to an environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub environment_id: String,
    /// Replaces `environment path / base path` for this deployment.
    #[serde(default)]
    pub custom_path: Option<String>,
}

/// A server certificate chain and key (PEM) for the listed SNI names (`*.example.com` allowed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificate {
    pub server_names: Vec<String>,
    pub cert_pem: String,
    pub key_pem: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot::new(
            7,
            SnapshotConfig {
                environments: vec![Environment {
                    id: "env-1".into(),
                    name: "Production".into(),
                    paths: EnvironmentPaths::default(),
                }],
                apis: vec![Api {
                    id: "api-1".into(),
                    name: "orders".into(),
                    version: "1".into(),
                    api_type: ApiType::Rest,
                    base_path: "orders".into(),
                    targets: vec![UpstreamTarget {
                        url: "http://127.0.0.1:9000".into(),
                    }],
                    load_balancing: LoadBalancing::RoundRobin,
                    health_check_url: None,
                    execution: None,
                    max_body_bytes: None,
                    deployments: vec![Deployment {
                        environment_id: "env-1".into(),
                        custom_path: None,
                    }],
                }],
                ..SnapshotConfig::default()
            },
        )
    }

    #[test]
    fn hash_round_trips_through_json() {
        let snapshot = sample();
        assert_eq!(snapshot.content_hash.len(), 64);
        let parsed = Snapshot::from_json(snapshot.to_json_pretty().as_bytes()).unwrap();
        assert_eq!(parsed, snapshot);
        parsed.verify_hash().unwrap();
    }

    #[test]
    fn streamed_hash_equals_hash_of_canonical_bytes() {
        let snapshot = sample();
        assert_eq!(
            snapshot.compute_hash(),
            hex::encode(Sha256::digest(snapshot.canonical_bytes()))
        );
    }

    #[test]
    fn any_change_breaks_the_hash() {
        let mut snapshot = sample();
        snapshot.config.apis[0].base_path = "orders2".into();
        assert!(snapshot.verify_hash().is_err());
        snapshot.seal();
        snapshot.verify_hash().unwrap();
        let mut snapshot2 = snapshot.clone();
        snapshot2.generation += 1;
        assert!(snapshot2.verify_hash().is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let json = r#"{"format_version":1,"generation":1,"content_hash":"","config":{"gateway":{}},"extra":1}"#;
        assert!(Snapshot::from_json(json.as_bytes()).is_err());
        let json = r#"{"format_version":1,"generation":1,"content_hash":"","config":{"gateway":{"limits":{"max_headerz":1}}}}"#;
        assert!(Snapshot::from_json(json.as_bytes()).is_err());
    }

    #[test]
    fn defaults_follow_the_spec() {
        let json =
            r#"{"format_version":1,"generation":1,"content_hash":"","config":{"gateway":{}}}"#;
        let snapshot = Snapshot::from_json(json.as_bytes()).unwrap();
        let limits = &snapshot.config.gateway.limits;
        assert_eq!(limits.max_request_line_bytes, 8192);
        assert_eq!(limits.max_headers_total_bytes, 32768);
        assert_eq!(limits.max_body_bytes, 10 << 20);
        assert_eq!(limits.client_body_timeout_ms, 10_000);
        assert_eq!(limits.min_client_body_rate, 1024);
        assert_eq!(limits.max_body_connections_per_ip, 32);
        assert_eq!(snapshot.config.gateway.execution.retry_attempts, 1);
    }

    /// Snapshots written before the slow-body limits existed (a node's cache, a platform not
    /// yet upgraded) still load and keep their hash: the new fields are left out at their
    /// default, and set ones go into the hash like any other field.
    #[test]
    fn slow_body_limits_keep_old_hashes_and_round_trip() {
        let old = sample();
        let json = serde_json::to_string(&old).unwrap();
        for field in [
            "client_body_timeout_ms",
            "min_client_body_rate",
            "max_body_connections_per_ip",
        ] {
            assert!(!json.contains(field), "{field} serialised at its default");
        }
        Snapshot::from_json(json.as_bytes())
            .unwrap()
            .verify_hash()
            .unwrap();
        let mut set = old.clone();
        set.config.gateway.limits.client_body_timeout_ms = 500;
        set.config.gateway.limits.max_body_connections_per_ip = 4;
        assert!(set.verify_hash().is_err());
        set.seal();
        let back = Snapshot::from_json(serde_json::to_string(&set).unwrap().as_bytes()).unwrap();
        back.verify_hash().unwrap();
        assert_eq!(back.config.gateway.limits.client_body_timeout_ms, 500);
        assert_eq!(back.config.gateway.limits.max_body_connections_per_ip, 4);
        assert_eq!(back.config.gateway.limits.min_client_body_rate, 1024);
    }

    /// Old snapshots have no `redirects` and keep their hash; set ones are hashed and round-trip.
    #[test]
    fn redirects_keep_old_hashes_and_round_trip() {
        let old = sample();
        let json = serde_json::to_string(&old).unwrap();
        assert!(!json.contains("redirects"), "empty redirects serialised");
        let mut moved = old.clone();
        moved.config.redirects.push(EnvironmentRedirect {
            paths: vec!["ws/rest".into(), "ws/soap".into()],
            location: "https://gw2.example.com".into(),
            until_ms: 1_800_000_000_000,
        });
        assert!(moved.verify_hash().is_err());
        moved.seal();
        let back = Snapshot::from_json(serde_json::to_string(&moved).unwrap().as_bytes()).unwrap();
        back.verify_hash().unwrap();
        assert_eq!(back, moved);
        let unknown = serde_json::to_string(&moved)
            .unwrap()
            .replace("\"until_ms\"", "\"extra\":1,\"until_ms\"");
        assert!(Snapshot::from_json(unknown.as_bytes()).is_err());
    }
}
