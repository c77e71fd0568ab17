//! REST wire types, apart from the domain types of `model` and `store`: requests deny unknown
//! fields, responses are built by explicit conversions, and instants are RFC 3339 strings.

use model::{
    Account, Api, ApiType, Classification, Deployment, DeploymentStatus, Environment, Node,
    Timestamp, User,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// An instant as RFC 3339 in UTC, e.g. `2026-11-26T09:30:00.123Z`.
pub fn rfc3339(at: Timestamp) -> String {
    let nanos = i128::from(at.as_millis()) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Accounts and users

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountDto {
    pub id: Uuid,
    pub name: String,
    pub created_at: String,
}

impl From<&Account> for AccountDto {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id.0,
            name: a.name.clone(),
            created_at: rfc3339(a.created_at),
        }
    }
}

/// A new account with its first owner; the token is shown only in this response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedAccount {
    pub id: Uuid,
    pub name: String,
    pub created_at: String,
    pub owner_user_id: Uuid,
    /// Personal API token of the new account's owner. Shown once.
    pub owner_token: String,
    /// The same secret as `owner_token` (every "shown once" secret is also named `token`).
    pub token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountList {
    pub accounts: Vec<AccountDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RoleDto {
    Viewer,
    Admin,
    Owner,
}

impl From<model::Role> for RoleDto {
    fn from(r: model::Role) -> Self {
        match r {
            model::Role::Viewer => RoleDto::Viewer,
            model::Role::Admin => RoleDto::Admin,
            model::Role::Owner => RoleDto::Owner,
        }
    }
}

impl From<RoleDto> for model::Role {
    fn from(r: RoleDto) -> Self {
        match r {
            RoleDto::Viewer => model::Role::Viewer,
            RoleDto::Admin => model::Role::Admin,
            RoleDto::Owner => model::Role::Owner,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub name: String,
    pub email: Option<String>,
    pub role: RoleDto,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub role: RoleDto,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserDto {
    pub id: Uuid,
    pub account_id: Option<Uuid>,
    pub name: String,
    pub email: Option<String>,
    pub role: RoleDto,
    pub platform_admin: bool,
    pub created_at: String,
}

impl From<&User> for UserDto {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.0,
            account_id: u.account_id.map(|a| a.0),
            name: u.name.clone(),
            email: u.email.clone(),
            role: u.role.into(),
            platform_admin: u.platform_admin,
            created_at: rfc3339(u.created_at),
        }
    }
}

/// A new user with a first personal token, shown once, to hand over to them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedUser {
    #[serde(flatten)]
    pub user: UserDto,
    pub token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    /// Days until the token expires (1–3650); never when absent.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenDto {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<&store::ApiToken> for TokenDto {
    fn from(t: &store::ApiToken) -> Self {
        Self {
            id: t.id.0,
            name: t.name.clone(),
            prefix: t.prefix.clone(),
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenDto,
    /// The secret; shown only in this response.
    pub token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstallToken {
    /// 30–1440 minutes.
    #[schema(minimum = 30, maximum = 1440)]
    pub valid_for_minutes: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedInstallToken {
    pub id: Uuid,
    /// The secret a node presents to join; shown only in this response.
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
    /// The command that starts a node with this token, e.g. `switchyard gateway --platform
    /// http://127.0.0.1:8080 --install-token … --name GATEWAY_NAME`: replace `GATEWAY_NAME` by
    /// the gateway to join (an existing name adds a node to it, a new one creates it).
    pub join_command: String,
}

/// An install token without its secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstallTokenDto {
    pub id: Uuid,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// RFC 3339; null while not revoked.
    pub revoked_at: Option<String>,
    /// The user who created it; null for tokens the system minted.
    pub created_by: Option<Uuid>,
}

impl From<&store::InstallToken> for InstallTokenDto {
    fn from(t: &store::InstallToken) -> Self {
        Self {
            id: t.id.0,
            created_at: rfc3339(t.created_at),
            expires_at: rfc3339(t.expires_at),
            revoked_at: t.revoked_at.map(rfc3339),
            created_by: t.created_by.map(|u| u.0),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstallTokenList {
    pub install_tokens: Vec<InstallTokenDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Gateways

/// The wire form of a model enum: the same variants, serialized as the model's `as_str()`
/// names (a test checks every value), and listed as the schema's `enum` in OpenAPI.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $dto:ident <=> $model:ty { $($v:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Serialize, Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
        #[serde(rename_all = "snake_case")]
        pub enum $dto {
            $($v),+
        }

        impl From<$model> for $dto {
            fn from(v: $model) -> Self {
                match v {
                    $(<$model>::$v => $dto::$v),+
                }
            }
        }

        impl From<$dto> for $model {
            fn from(v: $dto) -> Self {
                match v {
                    $($dto::$v => <$model>::$v),+
                }
            }
        }

        impl $dto {
            /// The model's name of this value, as serialized.
            pub fn as_str(self) -> &'static str {
                <$model>::from(self).as_str()
            }
        }

        impl std::fmt::Display for $dto {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// The state of a status (`model::status::GatewayState`).
    StateDto <=> model::status::GatewayState {
        Starting, Online, Stopping, Restarting, Offline, ClusterIssues, Deleted,
    }
);
wire_enum!(
    /// The variant of a status (`model::status::StatusVariant`).
    VariantDto <=> model::status::StatusVariant {
        Unresponsive, NotRunning, UncleanShutdown, FailedStart, LostContact,
    }
);
wire_enum!(
    /// How bad an issue is (`model::status::Severity`).
    SeverityDto <=> model::status::Severity { Warning, Error }
);

/// A gateway's or a node's status (SPEC §2), as `model::status` decided it.
#[derive(Debug, Serialize, Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
pub struct StatusDto {
    pub state: StateDto,
    /// Set for `restarting` (`unresponsive`) and always for `offline`; null otherwise.
    pub variant: Option<VariantDto>,
}

impl From<model::status::GatewayStatus> for StatusDto {
    fn from(s: model::status::GatewayStatus) -> Self {
        Self {
            state: s.state.into(),
            variant: s.variant.map(VariantDto::from),
        }
    }
}

impl StatusDto {
    /// The model's status this shows.
    pub fn status(self) -> model::status::GatewayStatus {
        model::status::GatewayStatus {
            state: self.state.into(),
            variant: self.variant.map(Into::into),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema, Clone)]
pub struct IssueDto {
    pub code: String,
    pub severity: SeverityDto,
    pub message: String,
    pub node_id: Option<Uuid>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// Machine-readable facts of the issue: `raised_by` (`node` or `platform`) and, per code,
    /// what it is about (for `UPSTREAM_UNREACHABLE`, `unreachable`: API id, API name and
    /// target of each failing target, and their `total`).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema, Clone)]
pub struct EnvRef {
    pub id: Uuid,
    pub name: String,
}

impl From<&Environment> for EnvRef {
    fn from(e: &Environment) -> Self {
        Self {
            id: e.id.0,
            name: e.name.clone(),
        }
    }
}

/// One row of the Gateways & Environments tab.
#[derive(Debug, Serialize, Deserialize, ToSchema, Clone)]
pub struct GatewayRowDto {
    pub id: Uuid,
    pub name: String,
    pub status: StatusDto,
    pub issues: Vec<IssueDto>,
    pub environments: Vec<EnvRef>,
    /// Host name of the head node (oldest live node); null before a node joined.
    pub host_name: Option<String>,
    /// The Public URL; else the traffic address the head node reports (its bound address,
    /// with the address its link came from when it binds all interfaces); null before a node
    /// reported one.
    pub gateway_url: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GatewayListDto {
    pub gateways: Vec<GatewayRowDto>,
    /// Environments attached to no gateway, alphabetically (filtered by `q` too).
    pub unattached_environments: Vec<EnvRef>,
}

/// One gateway with its settings-page facts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GatewayDto {
    #[serde(flatten)]
    pub row: GatewayRowDto,
    pub public_url: Option<String>,
    pub bind_address: String,
    pub created_at: String,
    pub deleted_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGateway {
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGateway {
    pub name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeDto {
    pub id: Uuid,
    pub status: StatusDto,
    pub host_name: String,
    pub address: Option<String>,
    pub version: String,
    pub applied_generation: Option<u64>,
    pub last_seen: Option<String>,
    pub joined_at: String,
}

impl NodeDto {
    pub fn new(node: &Node, status: StatusDto) -> Self {
        Self {
            id: node.id.0,
            status,
            host_name: node.host_name.clone(),
            address: node.address.clone(),
            version: node.version.clone(),
            applied_generation: node.applied_generation,
            last_seen: node.last_seen.map(rfc3339),
            joined_at: rfc3339(node.joined_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<NodeDto>,
}

// ---------------------------------------------------------------------------------------------
// Environments

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClassificationDto {
    Production,
    Test,
}

impl From<Classification> for ClassificationDto {
    fn from(c: Classification) -> Self {
        match c {
            Classification::Production => ClassificationDto::Production,
            Classification::Test => ClassificationDto::Test,
        }
    }
}

impl From<ClassificationDto> for Classification {
    fn from(c: ClassificationDto) -> Self {
        match c {
            ClassificationDto::Production => Classification::Production,
            ClassificationDto::Test => Classification::Test,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironment {
    pub name: String,
    pub classification: ClassificationDto,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEnvironment {
    pub name: Option<String>,
    pub classification: Option<ClassificationDto>,
}

/// The four URL paths of an environment (SPEC §6).
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfiguration {
    pub rest_path: String,
    pub soap_path: String,
    pub soap12_path: String,
    pub odata_path: String,
}

/// An environment's URL paths as `GET /environments/{id}/configuration` shows them, with
/// what they mean on its gateway.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentConfigurationView {
    pub rest_path: String,
    pub soap_path: String,
    pub soap12_path: String,
    pub odata_path: String,
    /// One per deployed API, in the encoded form, by API name: the gateway's Gateway URL and
    /// the API's route; the route alone when unattached or no Gateway URL is known yet.
    pub example_urls: Vec<ExampleUrlDto>,
    /// `ENVIRONMENT_PATH_NESTED` warnings: a path of this environment and one of another
    /// environment on the same gateway where one is a segment prefix of the other, so that the
    /// shorter one's APIs can receive the longer one's unmatched URLs.
    pub warnings: Vec<crate::migrations::FindingDto>,
}

/// The example URL of one deployed API.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExampleUrlDto {
    pub api_id: Uuid,
    pub api: String,
    pub url: String,
}

/// Attaches, moves or detaches an environment (until migrations land, see the endpoint).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachEnvironment {
    /// The destination gateway; null detaches.
    pub gateway_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentDto {
    pub id: Uuid,
    pub name: String,
    pub classification: ClassificationDto,
    pub gateway_id: Option<Uuid>,
    pub rest_path: String,
    pub soap_path: String,
    pub soap12_path: String,
    pub odata_path: String,
    pub created_at: String,
}

impl From<&Environment> for EnvironmentDto {
    fn from(e: &Environment) -> Self {
        Self {
            id: e.id.0,
            name: e.name.clone(),
            classification: e.classification.into(),
            gateway_id: e.gateway_id.map(|g| g.0),
            rest_path: e.paths.rest.clone(),
            soap_path: e.paths.soap.clone(),
            soap12_path: e.paths.soap12.clone(),
            odata_path: e.paths.odata.clone(),
            created_at: rfc3339(e.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentList {
    pub environments: Vec<EnvironmentDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// APIs and deployments

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum ApiTypeDto {
    #[serde(rename = "REST", alias = "rest")]
    Rest,
    #[serde(rename = "SOAP", alias = "soap")]
    Soap,
    #[serde(rename = "SOAP12", alias = "soap12")]
    Soap12,
    #[serde(rename = "ODATA", alias = "odata")]
    Odata,
}

impl From<ApiType> for ApiTypeDto {
    fn from(t: ApiType) -> Self {
        match t {
            ApiType::Rest => ApiTypeDto::Rest,
            ApiType::Soap => ApiTypeDto::Soap,
            ApiType::Soap12 => ApiTypeDto::Soap12,
            ApiType::Odata => ApiTypeDto::Odata,
        }
    }
}

impl From<ApiTypeDto> for ApiType {
    fn from(t: ApiTypeDto) -> Self {
        match t {
            ApiTypeDto::Rest => ApiType::Rest,
            ApiTypeDto::Soap => ApiType::Soap,
            ApiTypeDto::Soap12 => ApiType::Soap12,
            ApiTypeDto::Odata => ApiType::Odata,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApi {
    pub name: String,
    pub version: String,
    pub api_type: ApiTypeDto,
    pub base_path: String,
    /// Upstream target URLs, e.g. `["http://10.0.0.5:8080/orders"]`; at least one.
    pub upstream_targets: Vec<String>,
    pub health_check_url: Option<String>,
}

/// Fields to change; absent fields keep their value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApi {
    pub name: Option<String>,
    pub version: Option<String>,
    pub api_type: Option<ApiTypeDto>,
    pub base_path: Option<String>,
    pub upstream_targets: Option<Vec<String>>,
    /// null removes it.
    // Absent means unchanged, so the typed client leaves it out unless it changes it.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub health_check_url: Option<Option<String>>,
}

/// Tells an absent field (`None`) from an explicit null (`Some(None)`).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiDto {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    pub api_type: ApiTypeDto,
    pub base_path: String,
    pub upstream_targets: Vec<String>,
    pub health_check_url: Option<String>,
    pub created_at: String,
}

impl From<&Api> for ApiDto {
    fn from(a: &Api) -> Self {
        Self {
            id: a.id.0,
            name: a.name.clone(),
            version: a.version.clone(),
            api_type: a.api_type.into(),
            base_path: a.base_path.clone(),
            upstream_targets: a.upstream_targets.iter().map(|t| t.url.clone()).collect(),
            health_check_url: a.health_check_url.clone(),
            created_at: rfc3339(a.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiList {
    pub apis: Vec<ApiDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    pub environment_id: Uuid,
    /// A custom URL path replacing `environment path / base path`.
    pub custom_path: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeploymentDto {
    pub id: Uuid,
    pub api_id: Uuid,
    pub environment_id: Uuid,
    pub custom_path: Option<String>,
    /// `requires_configuration` (its environment is on no gateway, or its path conflicts),
    /// `pending` (not yet applied by every online node of the gateway, or none is online) or
    /// `sent_to_gateway` (applied by every online node).
    pub status: DeploymentStatusDto,
    pub created_at: String,
}

/// The status of a deployment (SPEC §8), derived on read by `model::status::deployment_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatusDto {
    RequiresConfiguration,
    Pending,
    SentToGateway,
}

impl From<DeploymentStatus> for DeploymentStatusDto {
    fn from(s: DeploymentStatus) -> Self {
        match s {
            DeploymentStatus::RequiresConfiguration => DeploymentStatusDto::RequiresConfiguration,
            DeploymentStatus::Pending => DeploymentStatusDto::Pending,
            DeploymentStatus::SentToGateway => DeploymentStatusDto::SentToGateway,
        }
    }
}

impl DeploymentDto {
    /// The deployment with its derived `status`.
    pub fn new(d: &Deployment, status: DeploymentStatus) -> Self {
        Self {
            id: d.id.0,
            api_id: d.api_id.0,
            environment_id: d.environment_id.0,
            custom_path: d.custom_path.clone(),
            status: status.into(),
            created_at: rfc3339(d.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeploymentList {
    pub deployments: Vec<DeploymentDto>,
}

// ---------------------------------------------------------------------------------------------
// Audit

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditDto {
    pub id: Uuid,
    /// user, node or system.
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    /// allowed, denied or failed.
    pub result: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub at: String,
}

impl From<&store::AuditRecord> for AuditDto {
    fn from(r: &store::AuditRecord) -> Self {
        let (actor_kind, actor_id) = match r.actor {
            store::Actor::User(id) => ("user", Some(id.0)),
            store::Actor::Node(id) => ("node", Some(id.0)),
            store::Actor::System => ("system", None),
        };
        Self {
            id: r.id.0,
            actor_kind: actor_kind.into(),
            actor_id,
            action: r.action.clone(),
            target_kind: r.target.as_ref().map(|t| t.kind.clone()),
            target_id: r.target.as_ref().and_then(|t| t.id.clone()),
            result: r.result.as_str().into(),
            details: r.details.clone(),
            at: rfc3339(r.at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    pub records: Vec<AuditDto>,
    /// Pass as `cursor` to get the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Query parameters: read by `json::Query`, unknown parameters refused like unknown fields.

/// `limit` and `cursor` of a paged list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// page size, 1–1000 (100)
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page
    pub cursor: Option<Uuid>,
}

/// `limit` and `cursor` of the audit log (read a page at a time from the store, so smaller).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// page size, 1–500 (100)
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page
    pub cursor: Option<Uuid>,
}

/// The Gateways list's filters and order.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GatewaysQuery {
    /// enabled (default) or deleted
    #[param(inline)]
    pub view: Option<GatewayViewParam>,
    /// status, name (default), host_name or gateway_url
    #[param(inline)]
    pub sort: Option<GatewaySortParam>,
    /// asc (default) or desc
    #[param(inline)]
    pub order: Option<OrderParam>,
    /// case-insensitive substring of a gateway or environment name
    #[param(max_length = 200)]
    pub q: Option<String>,
}

/// `view` of the Gateways list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GatewayViewParam {
    #[default]
    Enabled,
    Deleted,
}

/// `sort` of the Gateways list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GatewaySortParam {
    Status,
    #[default]
    Name,
    HostName,
    GatewayUrl,
}

impl GatewaySortParam {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewaySortParam::Status => "status",
            GatewaySortParam::Name => "name",
            GatewaySortParam::HostName => "host_name",
            GatewaySortParam::GatewayUrl => "gateway_url",
        }
    }
}

/// `order` of a sorted list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderParam {
    #[default]
    Asc,
    Desc,
}

#[cfg(test)]
mod tests {
    use model::status::{GatewayState, GatewayStatus, Severity, StatusVariant};

    use super::*;

    /// The wire names are the model's: one vocabulary, whatever serde would derive.
    #[test]
    fn wire_enums_serialize_as_the_model_names() {
        let json = |v: serde_json::Value| v.as_str().unwrap().to_owned();
        for s in GatewayState::ALL {
            let dto = StateDto::from(s);
            assert_eq!(json(serde_json::to_value(dto).unwrap()), s.as_str());
            assert_eq!(GatewayState::from(dto), s);
        }
        for v in StatusVariant::ALL {
            let dto = VariantDto::from(v);
            assert_eq!(json(serde_json::to_value(dto).unwrap()), v.as_str());
            assert_eq!(StatusVariant::from(dto), v);
        }
        for v in Severity::ALL {
            let dto = SeverityDto::from(v);
            assert_eq!(json(serde_json::to_value(dto).unwrap()), v.as_str());
            assert_eq!(Severity::from(dto), v);
        }
        for s in GatewayStatus::ALL {
            assert_eq!(StatusDto::from(s).status(), s);
        }
    }
}
