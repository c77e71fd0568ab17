//! Public inputs and outputs of the Store API that the model has no entity for (yet):
//! credentials, audit records, issues, status and the Gateways page overview.

use model::status::{GatewayStatus, ReportedState, Severity};
use model::*;

/// Input of [`crate::Store::create_user`].
#[derive(Clone, Debug)]
pub struct NewUser {
    /// `None` only for a platform administrator.
    pub account_id: Option<AccountId>,
    pub name: String,
    pub email: Option<String>,
    pub role: Role,
    pub platform_admin: bool,
    /// An Argon2id PHC string; `None` for token-only users.
    pub password_hash: Option<String>,
}

/// A user with the stored password hash, for password login only.
#[derive(Clone, Debug)]
pub struct UserLogin {
    pub user: User,
    pub password_hash: Option<String>,
}

/// Input of [`crate::Store::create_api_token`]. The secret itself never reaches the store.
#[derive(Clone, Debug)]
pub struct NewApiToken {
    pub user_id: UserId,
    pub name: String,
    /// The non-secret prefix shown in listings, e.g. `sy_pat_ab12`.
    pub prefix: String,
    /// SHA-256 of the full token, in whatever encoding the platform chose (hex).
    pub hash: String,
    pub expires_at: Option<Timestamp>,
}

/// A personal API token as listed; never carries the hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    pub id: TokenId,
    pub user_id: UserId,
    pub name: String,
    pub prefix: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// Who a valid token authenticates: the token and its user (with account and role).
#[derive(Clone, Debug)]
pub struct TokenPrincipal {
    pub token: ApiToken,
    pub user: User,
}

/// Input of [`crate::Store::create_install_token`].
#[derive(Clone, Debug)]
pub struct NewInstallToken {
    pub hash: String,
    pub expires_at: Timestamp,
    pub created_by: Option<UserId>,
}

/// An install token (SPEC §10); never carries the hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallToken {
    pub id: InstallTokenId,
    pub account_id: AccountId,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A node credential, bound to one gateway of one account; never carries the hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCredential {
    pub id: TokenId,
    pub account_id: AccountId,
    pub gateway_id: GatewayId,
    pub node_id: Option<NodeId>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// Input of [`crate::Store::create_gateway`].
#[derive(Clone, Debug)]
pub struct NewGateway {
    pub name: String,
    pub public_url: Option<String>,
    pub bind_address: String,
    pub settings: GatewaySettings,
}

impl NewGateway {
    /// A gateway with default location and settings (SPEC §5).
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            public_url: None,
            bind_address: DEFAULT_BIND_ADDRESS.to_owned(),
            settings: GatewaySettings::default(),
        }
    }
}

/// Replaces a gateway's location and settings (the name has its own method).
#[derive(Clone, Debug)]
pub struct GatewayUpdate {
    pub public_url: Option<String>,
    pub bind_address: String,
    pub settings: GatewaySettings,
}

/// Which gateways the Gateways page shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayView {
    Enabled,
    Deleted,
}

/// A gateway status as the platform recorded it (`model::status` decided it), and since
/// when: the current one, or an entry of its history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedStatus {
    pub status: GatewayStatus,
    /// When the gateway entered this status.
    pub since: Timestamp,
}

/// An error or warning attached to a gateway, optionally to one of its nodes (SPEC §3), as
/// stored: raised by the platform (`model::status::issues`) or reported by a node.
#[derive(Clone, Debug, PartialEq)]
pub struct IssueRecord {
    pub id: IssueId,
    pub gateway_id: GatewayId,
    pub node_id: Option<NodeId>,
    pub code: String,
    pub severity: Severity,
    pub message: String,
    pub details: serde_json::Value,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub cleared_at: Option<Timestamp>,
}

/// Input of [`crate::Store::raise_issue`].
#[derive(Clone, Debug)]
pub struct NewIssue {
    pub gateway_id: GatewayId,
    pub node_id: Option<NodeId>,
    pub code: String,
    pub severity: Severity,
    pub message: String,
    pub details: serde_json::Value,
}

/// One row of the Gateways page: a gateway with everything its row shows.
#[derive(Clone, Debug)]
pub struct GatewayRow {
    pub gateway: Gateway,
    /// `None` until the status job first evaluated the gateway.
    pub status: Option<RecordedStatus>,
    /// Attached environments, by name (case-insensitive).
    pub environments: Vec<Environment>,
    /// All nodes of the gateway, oldest first, each with the state it reported last (the
    /// head node is `model::status`'s to decide, from the nodes' records).
    pub nodes: Vec<(Node, Option<ReportedState>)>,
    /// Active issues, errors first; always empty for deleted gateways.
    pub issues: Vec<IssueRecord>,
}

/// Everything the Gateways & Environments tab needs, read in a constant number of queries.
#[derive(Clone, Debug)]
pub struct GatewaysOverview {
    /// Sorted by name (case-insensitive), then id.
    pub gateways: Vec<GatewayRow>,
    /// Environments attached to no gateway, by name (case-insensitive).
    pub unattached: Vec<Environment>,
}

impl GatewaysOverview {
    /// The page's search on an overview already read: keeps gateways whose name or any
    /// environment name contains `q` (trimmed, case-insensitive), and unattached
    /// environments whose name contains it. [`crate::Store::gateways_overview`] with an
    /// [`OverviewFilter`] answers the same without reading the rest.
    pub fn filter(mut self, q: &str) -> Self {
        let Some(search) = Search::new(q) else {
            return self;
        };
        self.gateways.retain(|row| {
            search.hit(&row.gateway.name) || row.environments.iter().any(|e| search.hit(&e.name))
        });
        self.unattached.retain(|e| search.hit(&e.name));
        self
    }
}

/// Which part of the Gateways page [`crate::Store::gateways_overview`] reads. The default
/// is the whole page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverviewFilter<'a> {
    /// The page's search: a gateway matches when its name or any attached environment's
    /// name contains `q` trimmed, case-insensitive (Unicode lowercase, as
    /// [`str::to_lowercase`]); a matching gateway keeps all its environments, nodes and
    /// issues. Unattached environments are kept when their name contains `q`. Blank = no
    /// search.
    pub q: &'a str,
    /// Only this gateway (when it is in the view, and matches `q`), and no unattached
    /// environments.
    pub gateway: Option<GatewayId>,
}

impl<'a> OverviewFilter<'a> {
    /// The page's search; see [`OverviewFilter::q`].
    pub fn search(q: &'a str) -> Self {
        OverviewFilter { q, gateway: None }
    }

    /// The row of one gateway.
    pub fn gateway(id: GatewayId) -> Self {
        OverviewFilter {
            q: "",
            gateway: Some(id),
        }
    }
}

/// The case-insensitive substring match of the page's search, shared by
/// [`GatewaysOverview::filter`] and the store so that both mean exactly the same.
#[derive(Clone, Debug)]
pub(crate) struct Search {
    /// The query, trimmed and lowercased; never empty.
    needle: String,
}

impl Search {
    /// `None` for a blank query, which matches everything.
    pub(crate) fn new(q: &str) -> Option<Search> {
        let needle = q.trim().to_lowercase();
        (!needle.is_empty()).then_some(Search { needle })
    }

    /// The lowercased query.
    pub(crate) fn needle(&self) -> &str {
        &self.needle
    }

    pub(crate) fn hit(&self, name: &str) -> bool {
        name.to_lowercase().contains(&self.needle)
    }
}

/// Input of [`crate::Store::create_environment`]; a new environment is unattached.
#[derive(Clone, Debug)]
pub struct NewEnvironment {
    pub name: String,
    pub classification: Classification,
    pub paths: EnvironmentPaths,
}

/// Input of [`crate::Store::create_api`] and [`crate::Store::update_api`].
#[derive(Clone, Debug)]
pub struct NewApi {
    pub name: String,
    pub version: String,
    pub api_type: ApiType,
    pub base_path: String,
    pub upstream_targets: Vec<UpstreamTarget>,
    pub health_check_url: Option<String>,
    pub execution: Option<ExecutionSettings>,
}

/// Input of [`crate::Store::create_deployment`].
#[derive(Clone, Debug)]
pub struct NewDeployment {
    pub api_id: ApiId,
    pub environment_id: EnvironmentId,
    pub custom_path: Option<String>,
    pub status: DeploymentStatus,
}

/// One deployment on a gateway with what path-conflict detection needs.
#[derive(Clone, Debug)]
pub struct RouteEntry {
    pub deployment: Deployment,
    pub api: Api,
    pub environment_name: String,
    pub environment_paths: EnvironmentPaths,
}

/// The routing-relevant state of one gateway: its attached environments and every
/// deployment in them. The input of the path-uniqueness and API path-conflict rules.
#[derive(Clone, Debug)]
pub struct GatewayRoutes {
    pub gateway_id: GatewayId,
    pub environments: Vec<Environment>,
    pub deployments: Vec<RouteEntry>,
}

/// What a deployment check sees: the API, the environment and, when the environment is
/// attached, the current routes of its gateway (without the new deployment).
#[derive(Clone, Debug)]
pub struct DeploymentCheck {
    pub api: Api,
    pub environment: Environment,
    pub routes: Option<GatewayRoutes>,
}

/// A node's report as the link server records it (heartbeat or state change).
#[derive(Clone, Debug)]
pub struct NodeReport {
    pub state: ReportedState,
    pub applied_generation: Option<u64>,
    pub at: Timestamp,
}

/// A console session; never carries the hash of its cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: TokenId,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// When the session was last used (its creation until then): idle expiry counts from it.
    pub last_seen_at: Timestamp,
}

/// Start-up properties a node reported (SPEC §5, free JSON) and when.
#[derive(Clone, Debug, PartialEq)]
pub struct StartupProperties {
    pub node_id: NodeId,
    pub properties: serde_json::Value,
    pub reported_at: Timestamp,
}

/// Identifies an environment migration. Store-local until the model grows migration types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MigrationId(pub uuid::Uuid);

impl MigrationId {
    pub fn new_v7() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl std::fmt::Display for MigrationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for MigrationId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

/// An environment migration (SPEC §7). `state` holds the step data the platform saves and
/// resumes; the store only guarantees one migration in progress per environment.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvironmentMigration {
    pub id: MigrationId,
    pub account_id: AccountId,
    pub environment_id: EnvironmentId,
    pub from_gateway_id: Option<GatewayId>,
    pub to_gateway_id: Option<GatewayId>,
    pub state: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    /// `OK`, `OK_WITH_WARNINGS` or `ERROR` once completed.
    pub result: Option<String>,
}

/// What completing a migration does to its environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MigrationOutcome {
    /// The environment moves to the migration's destination (or off its gateway) with
    /// `paths`; the source redirects its old paths when `redirect` is set.
    Applied {
        paths: EnvironmentPaths,
        redirect: Option<CutoverRedirect>,
    },
    /// Nothing changes (an `ERROR` result): the environment stays where it was.
    Unchanged,
}

/// Where a moved environment's source gateway redirects its old paths, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutoverRedirect {
    /// The destination's Gateway URL.
    pub location: String,
    pub until: Timestamp,
}

/// Which audit records [`crate::Store::audit_records_filtered`] keeps; `None` keeps all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<crate::Actor>,
    /// Records whose action starts with this (`environment.` or `environment.update`).
    pub action_prefix: Option<String>,
    pub result: Option<crate::AuditResult>,
    /// At or after this instant.
    pub from: Option<Timestamp>,
    /// Before this instant.
    pub until: Option<Timestamp>,
}
