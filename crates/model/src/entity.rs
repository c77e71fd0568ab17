//! The entities of SPEC §1 as plain values. Validation lives beside them in other modules;
//! a value of these types coming out of the store is assumed valid.

use std::time::Duration;

use crate::id::*;
use crate::time::Timestamp;

/// A tenant. Owns users, gateways, environments and APIs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub created_at: Timestamp,
}

/// What a user may do inside one account (SPEC §14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read only.
    Viewer,
    /// Manage gateways, environments, APIs, migrations.
    Admin,
    /// Everything, including restart, delete and the release schedule.
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Admin, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role may change gateways, environments, APIs and migrations.
    pub fn can_manage(self) -> bool {
        self >= Role::Admin
    }

    /// Whether this role may restart or delete gateways and set release schedules.
    pub fn is_owner(self) -> bool {
        self == Role::Owner
    }
}

/// A person or service principal. Platform administrators belong to no account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    /// `None` for a platform administrator.
    pub account_id: Option<AccountId>,
    pub name: String,
    pub email: Option<String>,
    pub role: Role,
    pub platform_admin: bool,
    pub created_at: Timestamp,
}

/// A named cluster of gateway nodes, belonging to exactly one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gateway {
    pub id: GatewayId,
    pub account_id: AccountId,
    pub name: String,
    /// Public URL; when `None` the gateway URL is the bind address.
    pub public_url: Option<String>,
    pub bind_address: String,
    pub settings: GatewaySettings,
    pub created_at: Timestamp,
    /// Soft delete: a deleted gateway is never restored.
    pub deleted_at: Option<Timestamp>,
}

impl Gateway {
    /// The URL shown in the Gateways list: the Public URL; else, until the Public URL is
    /// editable, the traffic address the head node reports ([`Node::address`]); `None` before a
    /// node reported one. Never the bind address default, which no node need use.
    pub fn gateway_url(&self, head_address: Option<&str>) -> Option<String> {
        match (&self.public_url, head_address) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(address)) => Some(format!("http://{address}")),
            (None, None) => None,
        }
    }
}

/// Heartbeat Interval of a gateway when the property is not set (SPEC §5); a node uses it until
/// the platform's `Welcome` names the gateway's.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// How long a node drains in-flight requests before a restart or stop when nothing else is
/// said (Force Restart not set, no drain limit in the snapshot).
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Default bind address of a gateway (SPEC §5).
pub const DEFAULT_BIND_ADDRESS: &str = "http://0.0.0.0:8077";

/// Gateway properties that affect status evaluation and the data plane (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewaySettings {
    pub heartbeat_interval: Duration,
    /// Force Restart after this long; `None` when the property is not set.
    pub force_restart_after: Option<Duration>,
    pub log_retention_days: u32,
    pub shutdown_delay: Duration,
    pub execution: ExecutionSettings,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            force_restart_after: None,
            log_retention_days: 30,
            shutdown_delay: Duration::from_secs(0),
            execution: ExecutionSettings::default(),
        }
    }
}

/// Failure cases after which an idempotent request may be retried on another target (SPEC §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RetryCase {
    ConnectTimeout,
    ConnectionDropped,
    HostNotFound,
    HostRoutingError,
    ExecutionTimeout,
}

impl RetryCase {
    pub const ALL: [RetryCase; 5] = [
        RetryCase::ConnectTimeout,
        RetryCase::ConnectionDropped,
        RetryCase::HostNotFound,
        RetryCase::HostRoutingError,
        RetryCase::ExecutionTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RetryCase::ConnectTimeout => "CONNECT_TIMEOUT",
            RetryCase::ConnectionDropped => "CONNECTION_DROPPED",
            RetryCase::HostNotFound => "HOST_NOT_FOUND",
            RetryCase::HostRoutingError => "HOST_ROUTING_ERROR",
            RetryCase::ExecutionTimeout => "EXECUTION_TIMEOUT",
        }
    }

    pub fn parse(s: &str) -> Option<RetryCase> {
        RetryCase::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Execution settings: gateway defaults, overridable per API (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionSettings {
    /// 1–10000.
    pub max_concurrency_per_node: u32,
    /// 0–10.
    pub retry_attempts: u32,
    /// 1–600 s.
    pub connect_timeout: Duration,
    /// 1–315360000 s.
    pub execution_timeout: Duration,
    pub retry_cases: Vec<RetryCase>,
}

impl Default for ExecutionSettings {
    fn default() -> Self {
        Self {
            max_concurrency_per_node: 100,
            retry_attempts: 1,
            connect_timeout: Duration::from_secs(10),
            execution_timeout: Duration::from_secs(120),
            retry_cases: vec![
                RetryCase::ConnectTimeout,
                RetryCase::ConnectionDropped,
                RetryCase::HostNotFound,
                RetryCase::HostRoutingError,
            ],
        }
    }
}

/// One running gateway process, as the platform knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub id: NodeId,
    pub gateway_id: GatewayId,
    pub host_name: String,
    pub address: Option<String>,
    pub version: String,
    /// First time this node joined; the head node is the oldest live one.
    pub joined_at: Timestamp,
    pub last_seen: Option<Timestamp>,
    pub applied_generation: Option<u64>,
}

impl Node {
    /// The address clients reach a node's HTTP traffic listener at, from what the node reports:
    /// its bound socket address when its host is a real one; for an unspecified host (`0.0.0.0`,
    /// `::`) the same port on the address its platform link came from, else on its host name.
    /// `None` when `bound` is not a socket address.
    pub fn reachable_address(
        bound: &str,
        link_peer: Option<std::net::IpAddr>,
        host_name: &str,
    ) -> Option<String> {
        let bound: std::net::SocketAddr = bound.trim().parse().ok()?;
        if !bound.ip().is_unspecified() {
            return Some(bound.to_string());
        }
        match link_peer {
            Some(ip) => Some(std::net::SocketAddr::new(ip, bound.port()).to_string()),
            None if !host_name.is_empty() => Some(format!("{host_name}:{}", bound.port())),
            None => None,
        }
    }
}

/// Whether an environment is production or test (SPEC §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Classification {
    Production,
    Test,
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Production => "production",
            Classification::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Classification> {
        match s {
            "production" => Some(Classification::Production),
            "test" => Some(Classification::Test),
            _ => None,
        }
    }
}

/// The type of an API, which picks the environment URL path it is served under (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiType {
    Rest,
    Soap,
    Soap12,
    Odata,
}

impl ApiType {
    pub const ALL: [ApiType; 4] = [
        ApiType::Rest,
        ApiType::Soap,
        ApiType::Soap12,
        ApiType::Odata,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiType::Rest => "REST",
            ApiType::Soap => "SOAP",
            ApiType::Soap12 => "SOAP12",
            ApiType::Odata => "ODATA",
        }
    }

    pub fn parse(s: &str) -> Option<ApiType> {
        ApiType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }
}

/// One URL path per API type; stored already validated and percent-encoded (SPEC §6).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EnvironmentPaths {
    pub rest: String,
    pub soap: String,
    pub soap12: String,
    pub odata: String,
}

impl EnvironmentPaths {
    /// The path under which APIs of `api_type` are served in this environment.
    pub fn for_type(&self, api_type: ApiType) -> &str {
        match api_type {
            ApiType::Rest => &self.rest,
            ApiType::Soap => &self.soap,
            ApiType::Soap12 => &self.soap12,
            ApiType::Odata => &self.odata,
        }
    }
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

/// A named stage for APIs, attached to at most one gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environment {
    pub id: EnvironmentId,
    pub account_id: AccountId,
    pub name: String,
    pub classification: Classification,
    pub gateway_id: Option<GatewayId>,
    pub paths: EnvironmentPaths,
    pub created_at: Timestamp,
}

/// One upstream target of an API, e.g. `http://10.0.0.5:8080/base`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTarget {
    pub url: String,
}

/// An API proxy definition (SPEC §8, the parts the foundation needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Api {
    pub id: ApiId,
    pub account_id: AccountId,
    pub name: String,
    pub version: String,
    pub api_type: ApiType,
    /// Validated like an environment path; never starts or ends with `/`.
    pub base_path: String,
    pub upstream_targets: Vec<UpstreamTarget>,
    pub health_check_url: Option<String>,
    /// Overrides the gateway's execution settings when set.
    pub execution: Option<ExecutionSettings>,
    pub created_at: Timestamp,
}

/// Status of an API's deployment to an environment (SPEC §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeploymentStatus {
    /// It cannot be served: its environment is on no gateway, or its path conflicts.
    RequiresConfiguration,
    /// On a gateway, but not yet applied by every online node (or no node is online).
    Pending,
    /// Applied by every online node of its gateway.
    SentToGateway,
}

impl DeploymentStatus {
    /// The REST and stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::RequiresConfiguration => "requires_configuration",
            DeploymentStatus::Pending => "pending",
            DeploymentStatus::SentToGateway => "sent_to_gateway",
        }
    }
}

/// An API deployed to an environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub id: DeploymentId,
    pub api_id: ApiId,
    pub environment_id: EnvironmentId,
    /// A custom URL path that replaces `env path / base path` for this deployment.
    pub custom_path: Option<String>,
    pub status: DeploymentStatus,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachable_addresses_never_use_an_unspecified_host() {
        let peer: Option<std::net::IpAddr> = Some("10.1.2.3".parse().unwrap());
        let v6: Option<std::net::IpAddr> = Some("fd00::7".parse().unwrap());
        let cases = [
            ("127.0.0.1:8080", peer, "h", Some("127.0.0.1:8080")),
            ("192.168.0.9:80", None, "h", Some("192.168.0.9:80")),
            ("0.0.0.0:8077", peer, "h", Some("10.1.2.3:8077")),
            ("[::]:8077", v6, "h", Some("[fd00::7]:8077")),
            ("0.0.0.0:8077", None, "edge-1", Some("edge-1:8077")),
            ("0.0.0.0:8077", None, "", None),
            ("not an address", peer, "h", None),
        ];
        for (bound, peer, host, expected) in cases {
            assert_eq!(
                Node::reachable_address(bound, peer, host).as_deref(),
                expected,
                "{bound}"
            );
        }
    }

    #[test]
    fn the_gateway_url_is_the_public_url_else_the_head_node_address() {
        let mut g = Gateway {
            id: GatewayId::new_v7(),
            account_id: AccountId::new_v7(),
            name: "edge".into(),
            public_url: None,
            bind_address: DEFAULT_BIND_ADDRESS.into(),
            settings: GatewaySettings::default(),
            created_at: Timestamp(0),
            deleted_at: None,
        };
        assert_eq!(g.gateway_url(None), None);
        assert_eq!(
            g.gateway_url(Some("10.1.2.3:8077")).as_deref(),
            Some("http://10.1.2.3:8077")
        );
        g.public_url = Some("https://api.example.com".into());
        assert_eq!(
            g.gateway_url(Some("10.1.2.3:8077")).as_deref(),
            Some("https://api.example.com")
        );
    }
}
