//! Decoding rows of either backend into model values, by column name.
//!
//! Every entity has one column-list macro (`gateway_cols!()` …) with a fixed table alias
//! and a `(bare)` form for `RETURNING` (SQLite does not resolve table aliases there), and
//! one `#[derive(sqlx::FromRow)]` struct whose fields are those column names; `TryFrom`
//! (or `into_model`) turns it into the model value. The derive is generic over the row
//! type, so one struct serves both drivers (see [`crate::db::Record`]). Joins whose tables
//! share column names rename one side (`deployment_api_cols!()`, `token_user_cols!()`,
//! `session_user_cols!()`) and nest the other with `#[sqlx(flatten)]`.

use std::str::FromStr;
use std::time::Duration;

use model::status::{GatewayStatus, ReportedState, Severity};
use model::*;
use serde::Deserialize;

use crate::audit::{Actor, AuditRecord, AuditResult, AuditTarget};
use crate::error::StoreError;
use crate::types::*;

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// Parses a TEXT id column.
pub(crate) fn parse_id<T: FromStr>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| corrupt(format!("bad id {s:?}")))
}

/// A BIGINT counter column as unsigned.
pub(crate) fn opt_u64(v: Option<i64>) -> Result<Option<u64>, StoreError> {
    v.map(|v| u64::try_from(v).map_err(|_| corrupt(format!("negative counter {v}"))))
        .transpose()
}

/// A counter as stored; counters beyond i64 saturate.
pub(crate) fn counter(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A column list, written once per entity as `alias: column, …` (`gateway_cols!` …):
/// `cols!([] g: id, name)` is `"g.id, g.name"`, `[bare]` drops the alias (for `RETURNING`),
/// `[json]` is a SQLite `json_object('id', g.id, 'name', g.name)` whose keys are the
/// column names, so the overview's JSON decodes into the same row structs by name.
macro_rules! cols {
    ([] $t:ident: $c0:ident $(, $c:ident)*) => {
        concat!(stringify!($t), ".", stringify!($c0) $(, ", ", stringify!($t), ".", stringify!($c))*)
    };
    ([bare] $t:ident: $c0:ident $(, $c:ident)*) => {
        concat!(stringify!($c0) $(, ", ", stringify!($c))*)
    };
    ([json] $t:ident: $c0:ident $(, $c:ident)*) => {
        concat!(
            "json_object('", stringify!($c0), "', ", stringify!($t), ".", stringify!($c0)
            $(, ", '", stringify!($c), "', ", stringify!($t), ".", stringify!($c))*,
            ")"
        )
    };
}

macro_rules! account_cols {
    ($($form:tt)*) => {
        cols!([$($form)*] ac: id, name, created_at)
    };
}
macro_rules! user_cols {
    ($($form:tt)*) => {
        cols!([$($form)*] u: id, account_id, name, email, role, platform_admin, created_at)
    };
}
macro_rules! token_cols {
    ($($form:tt)*) => {
        cols!([$($form)*] t: id, user_id, name, prefix, created_at, expires_at, revoked_at)
    };
}
macro_rules! install_token_cols {
    ($($form:tt)*) => {
        cols!([$($form)*] it: id, account_id, created_by, created_at, expires_at, revoked_at)
    };
}
macro_rules! credential_cols {
    ($($form:tt)*) => {
        cols!([$($form)*] nc: id, account_id, gateway_id, node_id, created_at, revoked_at)
    };
}
macro_rules! gateway_cols {
    ($($form:tt)*) => {
        cols!([$($form)*] g: id, account_id, name, public_url, bind_address, settings,
            created_at, deleted_at, status_state, status_variant, status_since)
    };
}
macro_rules! node_cols {
    ($($form:tt)*) => {
        cols!([$($form)*] n: id, gateway_id, host_name, address, version, joined_at, last_seen,
            applied_generation, reported_state)
    };
}
macro_rules! environment_cols {
    ($($form:tt)*) => {
        cols!([$($form)*] e: id, account_id, name, classification, gateway_id, path_rest,
            path_soap, path_soap12, path_odata, created_at)
    };
}
macro_rules! api_cols {
    ($($form:tt)*) => {
        cols!([$($form)*] a: id, account_id, name, version, api_type, base_path,
            upstream_targets, health_check_url, execution, created_at)
    };
}
/// A deployment joined with its API (`d`, `a`): decodes as [`DeploymentApiRow`].
macro_rules! deployment_api_cols {
    () => {
        concat!(
            "d.id AS deployment_id, d.environment_id, d.custom_path, d.status, \
             d.created_at AS deployment_created_at, ",
            api_cols!()
        )
    };
}
macro_rules! deployment_cols {
    ($($form:tt)*) => {
        cols!([$($form)*] d: id, api_id, environment_id, custom_path, status, created_at)
    };
}
macro_rules! issue_cols {
    ($($form:tt)*) => {
        cols!([$($form)*] i: id, gateway_id, node_id, code, severity, message, details,
            first_seen, last_seen, cleared_at)
    };
}
/// A session joined with its user (`se`, `u`): decodes as [`SessionUserRow`].
macro_rules! session_user_cols {
    () => {
        concat!(
            "se.id AS session_id, se.user_id, se.created_at AS session_created_at, \
             se.expires_at, COALESCE(se.last_seen_at, se.created_at) AS last_seen_at, ",
            user_cols!()
        )
    };
}
/// A token joined with its user (`t`, `u`): decodes as [`TokenUserRow`].
macro_rules! token_user_cols {
    () => {
        concat!(
            "t.id AS token_id, t.user_id, t.name AS token_name, t.prefix, \
             t.created_at AS token_created_at, t.expires_at, t.revoked_at, ",
            user_cols!()
        )
    };
}
macro_rules! migration_cols {
    ($($form:tt)*) => {
        cols!([$($form)*] m: id, account_id, environment_id, from_gateway_id, to_gateway_id,
            state, created_at, updated_at, completed_at, result)
    };
}
macro_rules! audit_cols {
    ($($form:tt)*) => {
        cols!([$($form)*] ar: id, account_id, actor_kind, actor_id, action, target_kind,
            target_id, result, details, at)
    };
}

/// Parses each distinct settings JSON text once: most gateways share the defaults, and
/// the Gateways page decodes a thousand of them per request.
#[derive(Default)]
pub(crate) struct SettingsCache(std::collections::HashMap<String, GatewaySettings>);

impl SettingsCache {
    pub(crate) fn get(&mut self, json: String) -> Result<GatewaySettings, StoreError> {
        if let Some(s) = self.0.get(&json) {
            return Ok(s.clone());
        }
        let parsed = crate::json::settings_from_json(&json)?;
        self.0.insert(json, parsed.clone());
        Ok(parsed)
    }
}

/// A stored status (`status_state`, `status_variant`, or a history entry) as the model's.
pub(crate) fn recorded_status(
    state: &str,
    variant: Option<&str>,
    since: Timestamp,
) -> Result<RecordedStatus, StoreError> {
    let status = GatewayStatus::parse(state, variant)
        .ok_or_else(|| corrupt(format!("bad status {state:?}/{variant:?}")))?;
    Ok(RecordedStatus { status, since })
}

/// A stored `reported_state` as the model's. The column keeps the name only, so `starting`
/// reads as a start after a clean exit (the status record keeps the full state).
pub(crate) fn reported_state(name: Option<String>) -> Result<Option<ReportedState>, StoreError> {
    name.map(|n| {
        ReportedState::parse(&n, false).ok_or_else(|| corrupt(format!("bad reported state {n:?}")))
    })
    .transpose()
}

pub(crate) fn severity(name: &str) -> Result<Severity, StoreError> {
    Severity::parse(name).ok_or_else(|| corrupt(format!("bad severity {name:?}")))
}

/// Milliseconds as stored; durations beyond i64 milliseconds saturate.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `account_cols!()`.
#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: String,
    name: String,
    created_at: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Self, StoreError> {
        Ok(Account {
            id: parse_id(&r.id)?,
            name: r.name,
            created_at: Timestamp(r.created_at),
        })
    }
}

/// `user_cols!()`.
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    account_id: Option<String>,
    name: String,
    email: Option<String>,
    role: String,
    platform_admin: bool,
    created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: parse_id(&r.id)?,
            account_id: parse_opt_id(r.account_id.as_deref())?,
            name: r.name,
            email: r.email,
            role: Role::parse(&r.role).ok_or_else(|| corrupt(format!("bad role {:?}", r.role)))?,
            platform_admin: r.platform_admin,
            created_at: Timestamp(r.created_at),
        })
    }
}

/// `user_cols!()` and `u.password_hash`.
#[derive(sqlx::FromRow)]
pub(crate) struct UserLoginRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: Option<String>,
}

impl TryFrom<UserLoginRow> for UserLogin {
    type Error = StoreError;
    fn try_from(r: UserLoginRow) -> Result<Self, StoreError> {
        Ok(UserLogin {
            user: r.user.try_into()?,
            password_hash: r.password_hash,
        })
    }
}

/// `SELECT account_id …`: the account of a user (none for a platform administrator) or of
/// a gateway.
#[derive(sqlx::FromRow)]
pub(crate) struct AccountRefRow {
    account_id: Option<String>,
}

impl AccountRefRow {
    pub(crate) fn account(&self) -> Result<Option<AccountId>, StoreError> {
        parse_opt_id(self.account_id.as_deref())
    }
}

/// `SELECT password_hash FROM users`.
#[derive(sqlx::FromRow)]
pub(crate) struct PasswordHashRow {
    pub(crate) password_hash: Option<String>,
}

/// `token_cols!()`.
#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    id: String,
    user_id: String,
    name: String,
    prefix: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = StoreError;
    fn try_from(r: TokenRow) -> Result<Self, StoreError> {
        Ok(ApiToken {
            id: parse_id(&r.id)?,
            user_id: parse_id(&r.user_id)?,
            name: r.name,
            prefix: r.prefix,
            created_at: Timestamp(r.created_at),
            expires_at: r.expires_at.map(Timestamp),
            revoked_at: r.revoked_at.map(Timestamp),
        })
    }
}

/// `token_user_cols!()`: a token and its user.
#[derive(sqlx::FromRow)]
pub(crate) struct TokenUserRow {
    token_id: String,
    user_id: String,
    token_name: String,
    prefix: String,
    token_created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    #[sqlx(flatten)]
    user: UserRow,
}

impl TryFrom<TokenUserRow> for TokenPrincipal {
    type Error = StoreError;
    fn try_from(r: TokenUserRow) -> Result<Self, StoreError> {
        Ok(TokenPrincipal {
            token: ApiToken {
                id: parse_id(&r.token_id)?,
                user_id: parse_id(&r.user_id)?,
                name: r.token_name,
                prefix: r.prefix,
                created_at: Timestamp(r.token_created_at),
                expires_at: r.expires_at.map(Timestamp),
                revoked_at: r.revoked_at.map(Timestamp),
            },
            user: r.user.try_into()?,
        })
    }
}

/// `session_user_cols!()`: a session and its user.
#[derive(sqlx::FromRow)]
pub(crate) struct SessionUserRow {
    session_id: String,
    user_id: String,
    session_created_at: i64,
    expires_at: i64,
    last_seen_at: i64,
    #[sqlx(flatten)]
    user: UserRow,
}

impl SessionUserRow {
    pub(crate) fn into_model(self) -> Result<(Session, User), StoreError> {
        let session = Session {
            id: parse_id(&self.session_id)?,
            user_id: parse_id(&self.user_id)?,
            created_at: Timestamp(self.session_created_at),
            expires_at: Timestamp(self.expires_at),
            last_seen_at: Timestamp(self.last_seen_at),
        };
        Ok((session, self.user.try_into()?))
    }
}

/// `install_token_cols!()`.
#[derive(sqlx::FromRow)]
pub(crate) struct InstallTokenRow {
    id: String,
    account_id: String,
    created_by: Option<String>,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<InstallTokenRow> for InstallToken {
    type Error = StoreError;
    fn try_from(r: InstallTokenRow) -> Result<Self, StoreError> {
        Ok(InstallToken {
            id: parse_id(&r.id)?,
            account_id: parse_id(&r.account_id)?,
            created_by: parse_opt_id(r.created_by.as_deref())?,
            created_at: Timestamp(r.created_at),
            expires_at: Timestamp(r.expires_at),
            revoked_at: r.revoked_at.map(Timestamp),
        })
    }
}

/// `credential_cols!()`.
#[derive(sqlx::FromRow)]
pub(crate) struct CredentialRow {
    id: String,
    account_id: String,
    gateway_id: String,
    node_id: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<CredentialRow> for NodeCredential {
    type Error = StoreError;
    fn try_from(r: CredentialRow) -> Result<Self, StoreError> {
        Ok(NodeCredential {
            id: parse_id(&r.id)?,
            account_id: parse_id(&r.account_id)?,
            gateway_id: parse_id(&r.gateway_id)?,
            node_id: parse_opt_id(r.node_id.as_deref())?,
            created_at: Timestamp(r.created_at),
            revoked_at: r.revoked_at.map(Timestamp),
        })
    }
}

/// `gateway_cols!()`: a gateway and its current status. Also read from the SQLite
/// overview's JSON objects (same names).
#[derive(sqlx::FromRow, Deserialize)]
pub(crate) struct GatewayDbRow {
    id: String,
    account_id: String,
    name: String,
    public_url: Option<String>,
    bind_address: String,
    settings: String,
    created_at: i64,
    deleted_at: Option<i64>,
    status_state: Option<String>,
    status_variant: Option<String>,
    status_since: Option<i64>,
}

impl GatewayDbRow {
    /// The gateway and its status, parsing settings through `cache`.
    pub(crate) fn into_model(
        self,
        cache: &mut SettingsCache,
    ) -> Result<(Gateway, Option<RecordedStatus>), StoreError> {
        let gateway = Gateway {
            id: parse_id(&self.id)?,
            account_id: parse_id(&self.account_id)?,
            name: self.name,
            public_url: self.public_url,
            bind_address: self.bind_address,
            settings: cache.get(self.settings)?,
            created_at: Timestamp(self.created_at),
            deleted_at: self.deleted_at.map(Timestamp),
        };
        let status = match (self.status_state, self.status_since) {
            (Some(state), Some(since)) => Some(recorded_status(
                &state,
                self.status_variant.as_deref(),
                Timestamp(since),
            )?),
            _ => None,
        };
        Ok((gateway, status))
    }
}

impl TryFrom<GatewayDbRow> for Gateway {
    type Error = StoreError;
    fn try_from(r: GatewayDbRow) -> Result<Self, StoreError> {
        Ok(r.into_model(&mut SettingsCache::default())?.0)
    }
}

/// `gateway_cols!()` and [`CONFIG_COLS`]: a gateway with its last publication.
#[derive(sqlx::FromRow)]
pub(crate) struct GatewayConfigRow {
    #[sqlx(flatten)]
    pub(crate) gateway: GatewayDbRow,
    pub(crate) config_generation: i64,
    pub(crate) config_digest: Option<String>,
    pub(crate) config_published_at: Option<i64>,
}

/// The publication columns of a gateway (alias `g`), after `gateway_cols!()`.
pub(crate) const CONFIG_COLS: &str = "g.config_generation, g.config_digest, g.config_published_at";

/// `SELECT state, variant, at FROM gateway_status_history`.
#[derive(sqlx::FromRow)]
pub(crate) struct StatusHistoryRow {
    state: String,
    variant: Option<String>,
    at: i64,
}

impl TryFrom<StatusHistoryRow> for RecordedStatus {
    type Error = StoreError;
    fn try_from(r: StatusHistoryRow) -> Result<Self, StoreError> {
        recorded_status(&r.state, r.variant.as_deref(), Timestamp(r.at))
    }
}

/// `node_cols!()`: a node and the state it reported last. Also read from the SQLite
/// overview's JSON objects.
#[derive(sqlx::FromRow, Deserialize)]
pub(crate) struct NodeRow {
    id: String,
    gateway_id: String,
    host_name: String,
    address: Option<String>,
    version: String,
    joined_at: i64,
    last_seen: Option<i64>,
    applied_generation: Option<i64>,
    reported_state: Option<String>,
}

impl NodeRow {
    pub(crate) fn into_model(self) -> Result<(Node, Option<ReportedState>), StoreError> {
        let node = Node {
            id: parse_id(&self.id)?,
            gateway_id: parse_id(&self.gateway_id)?,
            host_name: self.host_name,
            address: self.address,
            version: self.version,
            joined_at: Timestamp(self.joined_at),
            last_seen: self.last_seen.map(Timestamp),
            applied_generation: opt_u64(self.applied_generation)?,
        };
        Ok((node, reported_state(self.reported_state)?))
    }
}

/// `node_cols!()` and `n.status_record`.
#[derive(sqlx::FromRow)]
pub(crate) struct NodeRecordRow {
    #[sqlx(flatten)]
    node: NodeRow,
    status_record: Option<String>,
}

impl TryFrom<NodeRecordRow> for crate::link::NodeStatusRow {
    type Error = StoreError;
    fn try_from(r: NodeRecordRow) -> Result<Self, StoreError> {
        let (node, reported_state) = r.node.into_model()?;
        Ok(crate::link::NodeStatusRow {
            node,
            reported_state,
            // A record that does not parse is rebuilt by the platform from the row.
            record: r.status_record.and_then(|t| serde_json::from_str(&t).ok()),
        })
    }
}

/// `SELECT id, startup_properties, startup_reported_at FROM nodes`.
#[derive(sqlx::FromRow)]
pub(crate) struct StartupRow {
    id: String,
    startup_properties: String,
    startup_reported_at: i64,
}

impl TryFrom<StartupRow> for StartupProperties {
    type Error = StoreError;
    fn try_from(r: StartupRow) -> Result<Self, StoreError> {
        Ok(StartupProperties {
            node_id: parse_id(&r.id)?,
            properties: parse_json(&r.startup_properties)?,
            reported_at: Timestamp(r.startup_reported_at),
        })
    }
}

/// `issue_cols!()`. Also read from the SQLite overview's JSON objects.
#[derive(sqlx::FromRow, Deserialize)]
pub(crate) struct IssueRow {
    id: String,
    gateway_id: String,
    node_id: Option<String>,
    code: String,
    severity: String,
    message: String,
    details: String,
    first_seen: i64,
    last_seen: i64,
    cleared_at: Option<i64>,
}

impl TryFrom<IssueRow> for IssueRecord {
    type Error = StoreError;
    fn try_from(r: IssueRow) -> Result<Self, StoreError> {
        Ok(IssueRecord {
            id: parse_id(&r.id)?,
            gateway_id: parse_id(&r.gateway_id)?,
            node_id: parse_opt_id(r.node_id.as_deref())?,
            code: r.code,
            severity: severity(&r.severity)?,
            message: r.message,
            details: parse_json(&r.details)?,
            first_seen: Timestamp(r.first_seen),
            last_seen: Timestamp(r.last_seen),
            cleared_at: r.cleared_at.map(Timestamp),
        })
    }
}

/// `i.account_id` and `issue_cols!()`.
#[derive(sqlx::FromRow)]
pub(crate) struct AccountIssueRow {
    account_id: String,
    #[sqlx(flatten)]
    issue: IssueRow,
}

impl TryFrom<AccountIssueRow> for (AccountId, IssueRecord) {
    type Error = StoreError;
    fn try_from(r: AccountIssueRow) -> Result<Self, StoreError> {
        Ok((parse_id(&r.account_id)?, r.issue.try_into()?))
    }
}

/// `audit_cols!()`.
#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: String,
    account_id: Option<String>,
    actor_kind: String,
    actor_id: Option<String>,
    action: String,
    target_kind: Option<String>,
    target_id: Option<String>,
    result: String,
    details: String,
    at: i64,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;
    fn try_from(r: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditRecord {
            id: parse_id(&r.id)?,
            account_id: parse_opt_id(r.account_id.as_deref())?,
            actor: Actor::parse(&r.actor_kind, r.actor_id.as_deref())
                .ok_or_else(|| corrupt(format!("bad actor {:?}", r.actor_kind)))?,
            action: r.action,
            target: r.target_kind.map(|kind| AuditTarget {
                kind,
                id: r.target_id,
            }),
            result: AuditResult::parse(&r.result)
                .ok_or_else(|| corrupt(format!("bad audit result {:?}", r.result)))?,
            details: parse_json(&r.details)?,
            at: Timestamp(r.at),
        })
    }
}

/// `SELECT id, published_gateway_id, published_generation FROM deployments`.
#[derive(sqlx::FromRow)]
pub(crate) struct PublicationRow {
    id: String,
    published_gateway_id: Option<String>,
    published_generation: Option<i64>,
}

impl TryFrom<PublicationRow> for (DeploymentId, Option<(GatewayId, u64)>) {
    type Error = StoreError;
    fn try_from(r: PublicationRow) -> Result<Self, StoreError> {
        let gateway: Option<GatewayId> = parse_opt_id(r.published_gateway_id.as_deref())?;
        let generation = opt_u64(r.published_generation)?;
        Ok((parse_id(&r.id)?, gateway.zip(generation)))
    }
}

/// `RETURNING config_generation`.
#[derive(sqlx::FromRow)]
pub(crate) struct GenerationRow {
    pub(crate) config_generation: i64,
}

/// Parses a nullable TEXT id column.
pub(crate) fn parse_opt_id<T: FromStr>(s: Option<&str>) -> Result<Option<T>, StoreError> {
    s.map(parse_id).transpose()
}

/// Parses a JSON TEXT column.
pub(crate) fn parse_json(s: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(s).map_err(corrupt)
}

/// `SELECT id …`: a bare id, e.g. to check that a row exists.
#[derive(sqlx::FromRow)]
pub(crate) struct IdRow {
    pub(crate) id: String,
}

impl IdRow {
    pub(crate) fn parse<T: FromStr>(&self) -> Result<T, StoreError> {
        parse_id(&self.id)
    }
}

/// `SELECT gateway_id …`: what an environment is attached to.
#[derive(sqlx::FromRow)]
pub(crate) struct GatewayRefRow {
    pub(crate) gateway_id: Option<String>,
}

/// `environment_cols!()`. Also read from the SQLite overview's JSON objects.
#[derive(sqlx::FromRow, Deserialize)]
pub(crate) struct EnvironmentRow {
    id: String,
    account_id: String,
    name: String,
    classification: String,
    gateway_id: Option<String>,
    path_rest: String,
    path_soap: String,
    path_soap12: String,
    path_odata: String,
    created_at: i64,
}

impl TryFrom<EnvironmentRow> for Environment {
    type Error = StoreError;
    fn try_from(r: EnvironmentRow) -> Result<Self, StoreError> {
        Ok(Environment {
            id: parse_id(&r.id)?,
            account_id: parse_id(&r.account_id)?,
            classification: Classification::parse(&r.classification)
                .ok_or_else(|| corrupt(format!("bad classification {:?}", r.classification)))?,
            name: r.name,
            gateway_id: parse_opt_id(r.gateway_id.as_deref())?,
            paths: EnvironmentPaths {
                rest: r.path_rest,
                soap: r.path_soap,
                soap12: r.path_soap12,
                odata: r.path_odata,
            },
            created_at: Timestamp(r.created_at),
        })
    }
}

/// `api_cols!()`.
#[derive(sqlx::FromRow)]
pub(crate) struct ApiRow {
    id: String,
    account_id: String,
    name: String,
    version: String,
    api_type: String,
    base_path: String,
    upstream_targets: String,
    health_check_url: Option<String>,
    execution: Option<String>,
    created_at: i64,
}

impl TryFrom<ApiRow> for Api {
    type Error = StoreError;
    fn try_from(r: ApiRow) -> Result<Self, StoreError> {
        Ok(Api {
            id: parse_id(&r.id)?,
            account_id: parse_id(&r.account_id)?,
            name: r.name,
            version: r.version,
            api_type: ApiType::parse(&r.api_type)
                .ok_or_else(|| corrupt(format!("bad API type {:?}", r.api_type)))?,
            base_path: r.base_path,
            upstream_targets: crate::json::targets_from_json(&r.upstream_targets)?,
            health_check_url: r.health_check_url,
            execution: r
                .execution
                .as_deref()
                .map(crate::json::execution_from_json)
                .transpose()?,
            created_at: Timestamp(r.created_at),
        })
    }
}

fn deployment_status(s: &str) -> Result<DeploymentStatus, StoreError> {
    Ok(match s {
        "requires_configuration" => DeploymentStatus::RequiresConfiguration,
        "pending" => DeploymentStatus::Pending,
        "sent_to_gateway" => DeploymentStatus::SentToGateway,
        other => return Err(corrupt(format!("bad deployment status {other:?}"))),
    })
}

/// `deployment_cols!()`.
#[derive(sqlx::FromRow)]
pub(crate) struct DeploymentRow {
    id: String,
    api_id: String,
    environment_id: String,
    custom_path: Option<String>,
    status: String,
    created_at: i64,
}

impl TryFrom<DeploymentRow> for Deployment {
    type Error = StoreError;
    fn try_from(r: DeploymentRow) -> Result<Self, StoreError> {
        Ok(Deployment {
            id: parse_id(&r.id)?,
            api_id: parse_id(&r.api_id)?,
            environment_id: parse_id(&r.environment_id)?,
            custom_path: r.custom_path,
            status: deployment_status(&r.status)?,
            created_at: Timestamp(r.created_at),
        })
    }
}

/// `deployment_api_cols!()`: a deployment and its API (the deployment's own `id` and
/// `created_at` are renamed, the API's keep their names).
#[derive(sqlx::FromRow)]
pub(crate) struct DeploymentApiRow {
    deployment_id: String,
    environment_id: String,
    custom_path: Option<String>,
    status: String,
    deployment_created_at: i64,
    #[sqlx(flatten)]
    api: ApiRow,
}

impl DeploymentApiRow {
    pub(crate) fn into_model(self) -> Result<(Deployment, Api), StoreError> {
        let api = Api::try_from(self.api)?;
        let deployment = Deployment {
            id: parse_id(&self.deployment_id)?,
            api_id: api.id,
            environment_id: parse_id(&self.environment_id)?,
            custom_path: self.custom_path,
            status: deployment_status(&self.status)?,
            created_at: Timestamp(self.deployment_created_at),
        };
        Ok((deployment, api))
    }
}

/// `migration_cols!()`.
#[derive(sqlx::FromRow)]
pub(crate) struct MigrationRow {
    id: String,
    account_id: String,
    environment_id: String,
    from_gateway_id: Option<String>,
    to_gateway_id: Option<String>,
    state: String,
    created_at: i64,
    updated_at: i64,
    completed_at: Option<i64>,
    result: Option<String>,
}

impl TryFrom<MigrationRow> for EnvironmentMigration {
    type Error = StoreError;
    fn try_from(r: MigrationRow) -> Result<Self, StoreError> {
        Ok(EnvironmentMigration {
            id: parse_id(&r.id)?,
            account_id: parse_id(&r.account_id)?,
            environment_id: parse_id(&r.environment_id)?,
            from_gateway_id: parse_opt_id(r.from_gateway_id.as_deref())?,
            to_gateway_id: parse_opt_id(r.to_gateway_id.as_deref())?,
            state: parse_json(&r.state)?,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
            completed_at: r.completed_at.map(Timestamp),
            result: r.result,
        })
    }
}

/// A running cut-over: `SELECT environment_id, destination_paths FROM environment_migrations`.
#[derive(sqlx::FromRow)]
pub(crate) struct CutoverRow {
    pub(crate) environment_id: String,
    pub(crate) destination_paths: Option<String>,
}

/// A redirect of a moved environment: `SELECT redirect_paths, redirect_location,
/// redirect_until FROM environment_migrations` (rows with a redirect only).
#[derive(sqlx::FromRow)]
pub(crate) struct RedirectRow {
    pub(crate) redirect_paths: String,
    pub(crate) redirect_location: String,
    pub(crate) redirect_until: i64,
}

/// `SELECT environment_id, to_gateway_id FROM environment_migrations`.
#[derive(sqlx::FromRow)]
pub(crate) struct MigrationTargetRow {
    pub(crate) environment_id: String,
    pub(crate) to_gateway_id: Option<String>,
}
