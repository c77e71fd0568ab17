//! Decoding rows of either backend into model values, by column position.
//!
//! Every entity has one column-list macro (`gateway_cols!()` …) with a fixed table alias, and
//! one decoder reading those columns in order through a [`Cur`]. Joins concatenate lists and
//! decode entity after entity from one cursor, so no column needs a name or an alias.
//! `RETURNING` uses the `(bare)` form: SQLite does not resolve table aliases there.

use std::str::FromStr;
use std::time::Duration;

use model::status::{GatewayStatus, ReportedState, Severity};
use model::*;
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use crate::audit::{Actor, AuditRecord, AuditResult, AuditTarget};
use crate::error::StoreError;
use crate::types::*;

/// The three column types the schema uses, read from either backend's row.
pub(crate) trait Get {
    fn text(&self, i: usize) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, i: usize) -> Result<Option<i64>, sqlx::Error>;
    fn boolean(&self, i: usize) -> Result<Option<bool>, sqlx::Error>;
}

macro_rules! impl_get {
    ($row:ty) => {
        impl Get for $row {
            fn text(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
                self.try_get(i)
            }
            fn int(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(i)
            }
            fn boolean(&self, i: usize) -> Result<Option<bool>, sqlx::Error> {
                self.try_get(i)
            }
        }
    };
}
impl_get!(SqliteRow);
impl_get!(PgRow);

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A read position in a row.
pub(crate) struct Cur<'r, R> {
    row: &'r R,
    i: usize,
}

impl<'r, R: Get> Cur<'r, R> {
    pub(crate) fn new(row: &'r R) -> Self {
        Self { row, i: 0 }
    }

    fn next(&mut self) -> usize {
        self.i += 1;
        self.i - 1
    }

    pub(crate) fn opt_text(&mut self) -> Result<Option<String>, StoreError> {
        let i = self.next();
        self.row.text(i).map_err(StoreError::from)
    }

    pub(crate) fn text(&mut self) -> Result<String, StoreError> {
        let i = self.i;
        self.opt_text()?
            .ok_or_else(|| corrupt(format!("column {i} is unexpectedly NULL")))
    }

    pub(crate) fn opt_int(&mut self) -> Result<Option<i64>, StoreError> {
        let i = self.next();
        self.row.int(i).map_err(StoreError::from)
    }

    pub(crate) fn int(&mut self) -> Result<i64, StoreError> {
        let i = self.i;
        self.opt_int()?
            .ok_or_else(|| corrupt(format!("column {i} is unexpectedly NULL")))
    }

    pub(crate) fn boolean(&mut self) -> Result<bool, StoreError> {
        let i = self.next();
        self.row
            .boolean(i)
            .map_err(StoreError::from)?
            .ok_or_else(|| corrupt(format!("column {i} is unexpectedly NULL")))
    }

    pub(crate) fn id<T: FromStr>(&mut self) -> Result<T, StoreError> {
        let s = self.text()?;
        s.parse().map_err(|_| corrupt(format!("bad id {s:?}")))
    }

    pub(crate) fn opt_id<T: FromStr>(&mut self) -> Result<Option<T>, StoreError> {
        match self.opt_text()? {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| corrupt(format!("bad id {s:?}"))),
        }
    }

    pub(crate) fn ts(&mut self) -> Result<Timestamp, StoreError> {
        self.int().map(Timestamp)
    }

    pub(crate) fn opt_ts(&mut self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.opt_int()?.map(Timestamp))
    }

    pub(crate) fn opt_u64(&mut self) -> Result<Option<u64>, StoreError> {
        self.opt_int()?
            .map(|v| u64::try_from(v).map_err(|_| corrupt(format!("negative counter {v}"))))
            .transpose()
    }

    pub(crate) fn json(&mut self) -> Result<serde_json::Value, StoreError> {
        let s = self.text()?;
        serde_json::from_str(&s).map_err(corrupt)
    }
}

macro_rules! account_cols {
    () => {
        "ac.id, ac.name, ac.created_at"
    };
    (bare) => {
        "id, name, created_at"
    };
}
macro_rules! user_cols {
    () => {
        "u.id, u.account_id, u.name, u.email, u.role, u.platform_admin, u.created_at"
    };
    (bare) => {
        "id, account_id, name, email, role, platform_admin, created_at"
    };
}
macro_rules! token_cols {
    () => {
        "t.id, t.user_id, t.name, t.prefix, t.created_at, t.expires_at, t.revoked_at"
    };
    (bare) => {
        "id, user_id, name, prefix, created_at, expires_at, revoked_at"
    };
}
macro_rules! install_token_cols {
    () => {
        "it.id, it.account_id, it.created_by, it.created_at, it.expires_at, it.revoked_at"
    };
    (bare) => {
        "id, account_id, created_by, created_at, expires_at, revoked_at"
    };
}
macro_rules! credential_cols {
    () => {
        "nc.id, nc.account_id, nc.gateway_id, nc.node_id, nc.created_at, nc.revoked_at"
    };
    (bare) => {
        "id, account_id, gateway_id, node_id, created_at, revoked_at"
    };
}
macro_rules! gateway_cols {
    () => {
        "g.id, g.account_id, g.name, g.public_url, g.bind_address, g.settings, g.created_at, \
         g.deleted_at, g.status_state, g.status_variant, g.status_since"
    };
    (bare) => {
        "id, account_id, name, public_url, bind_address, settings, created_at, \
         deleted_at, status_state, status_variant, status_since"
    };
}
macro_rules! node_cols {
    () => {
        "n.id, n.gateway_id, n.host_name, n.address, n.version, n.joined_at, n.last_seen, \
         n.applied_generation, n.reported_state"
    };
    (bare) => {
        "id, gateway_id, host_name, address, version, joined_at, last_seen, \
         applied_generation, reported_state"
    };
}
macro_rules! environment_cols {
    () => {
        "e.id, e.account_id, e.name, e.classification, e.gateway_id, e.path_rest, e.path_soap, \
         e.path_soap12, e.path_odata, e.created_at"
    };
    (bare) => {
        "id, account_id, name, classification, gateway_id, path_rest, path_soap, \
         path_soap12, path_odata, created_at"
    };
}
macro_rules! api_cols {
    () => {
        "a.id, a.account_id, a.name, a.version, a.api_type, a.base_path, a.upstream_targets, \
         a.health_check_url, a.execution, a.created_at"
    };
    (bare) => {
        "id, account_id, name, version, api_type, base_path, upstream_targets, \
         health_check_url, execution, created_at"
    };
}
/// A deployment joined with its API (`d`, `a`): decodes as [`DeploymentApiRow`].
macro_rules! deployment_api_cols {
    () => {
        "d.id AS deployment_id, d.environment_id, d.custom_path, d.status, \
         d.created_at AS deployment_created_at, a.id, a.account_id, a.name, a.version, \
         a.api_type, a.base_path, a.upstream_targets, a.health_check_url, a.execution, \
         a.created_at"
    };
}
macro_rules! deployment_cols {
    () => {
        "d.id, d.api_id, d.environment_id, d.custom_path, d.status, d.created_at"
    };
    (bare) => {
        "id, api_id, environment_id, custom_path, status, created_at"
    };
}
macro_rules! issue_cols {
    () => {
        "i.id, i.gateway_id, i.node_id, i.code, i.severity, i.message, i.details, i.first_seen, \
         i.last_seen, i.cleared_at"
    };
    (bare) => {
        "id, gateway_id, node_id, code, severity, message, details, first_seen, \
         last_seen, cleared_at"
    };
}
macro_rules! session_cols {
    () => {
        "se.id, se.user_id, se.created_at, se.expires_at, COALESCE(se.last_seen_at, se.created_at)"
    };
}
macro_rules! migration_cols {
    () => {
        "m.id, m.account_id, m.environment_id, m.from_gateway_id, m.to_gateway_id, m.state, \
         m.created_at, m.updated_at, m.completed_at, m.result"
    };
    (bare) => {
        "id, account_id, environment_id, from_gateway_id, to_gateway_id, state, created_at, \
         updated_at, completed_at, result"
    };
}
macro_rules! audit_cols {
    () => {
        "ar.id, ar.account_id, ar.actor_kind, ar.actor_id, ar.action, ar.target_kind, \
         ar.target_id, ar.result, ar.details, ar.at"
    };
    (bare) => {
        "id, account_id, actor_kind, actor_id, action, target_kind, \
         target_id, result, details, at"
    };
}

pub(crate) fn account<R: Get>(c: &mut Cur<R>) -> Result<Account, StoreError> {
    Ok(Account {
        id: c.id()?,
        name: c.text()?,
        created_at: c.ts()?,
    })
}

pub(crate) fn user<R: Get>(c: &mut Cur<R>) -> Result<User, StoreError> {
    Ok(User {
        id: c.id()?,
        account_id: c.opt_id()?,
        name: c.text()?,
        email: c.opt_text()?,
        role: {
            let s = c.text()?;
            Role::parse(&s).ok_or_else(|| corrupt(format!("bad role {s:?}")))?
        },
        platform_admin: c.boolean()?,
        created_at: c.ts()?,
    })
}

pub(crate) fn api_token<R: Get>(c: &mut Cur<R>) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: c.id()?,
        user_id: c.id()?,
        name: c.text()?,
        prefix: c.text()?,
        created_at: c.ts()?,
        expires_at: c.opt_ts()?,
        revoked_at: c.opt_ts()?,
    })
}

pub(crate) fn install_token<R: Get>(c: &mut Cur<R>) -> Result<InstallToken, StoreError> {
    Ok(InstallToken {
        id: c.id()?,
        account_id: c.id()?,
        created_by: c.opt_id()?,
        created_at: c.ts()?,
        expires_at: c.ts()?,
        revoked_at: c.opt_ts()?,
    })
}

pub(crate) fn credential<R: Get>(c: &mut Cur<R>) -> Result<NodeCredential, StoreError> {
    Ok(NodeCredential {
        id: c.id()?,
        account_id: c.id()?,
        gateway_id: c.id()?,
        node_id: c.opt_id()?,
        created_at: c.ts()?,
        revoked_at: c.opt_ts()?,
    })
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

/// Reads `gateway_cols!()`: the gateway and its current status.
pub(crate) fn gateway<R: Get>(
    c: &mut Cur<R>,
) -> Result<(Gateway, Option<RecordedStatus>), StoreError> {
    gateway_cached(c, &mut SettingsCache::default())
}

pub(crate) fn gateway_cached<R: Get>(
    c: &mut Cur<R>,
    cache: &mut SettingsCache,
) -> Result<(Gateway, Option<RecordedStatus>), StoreError> {
    let gateway = Gateway {
        id: c.id()?,
        account_id: c.id()?,
        name: c.text()?,
        public_url: c.opt_text()?,
        bind_address: c.text()?,
        settings: cache.get(c.text()?)?,
        created_at: c.ts()?,
        deleted_at: c.opt_ts()?,
    };
    let state = c.opt_text()?;
    let variant = c.opt_text()?;
    let since = c.opt_ts()?;
    let status = match (state, since) {
        (Some(state), Some(since)) => Some(recorded_status(&state, variant.as_deref(), since)?),
        _ => None,
    };
    Ok((gateway, status))
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

/// Reads `node_cols!()`: the node and the state it reported last.
pub(crate) fn node<R: Get>(c: &mut Cur<R>) -> Result<(Node, Option<ReportedState>), StoreError> {
    let node = Node {
        id: c.id()?,
        gateway_id: c.id()?,
        host_name: c.text()?,
        address: c.opt_text()?,
        version: c.text()?,
        joined_at: c.ts()?,
        last_seen: c.opt_ts()?,
        applied_generation: c.opt_u64()?,
    };
    Ok((node, reported_state(c.opt_text()?)?))
}

pub(crate) fn environment<R: Get>(c: &mut Cur<R>) -> Result<Environment, StoreError> {
    Ok(Environment {
        id: c.id()?,
        account_id: c.id()?,
        name: c.text()?,
        classification: {
            let s = c.text()?;
            Classification::parse(&s).ok_or_else(|| corrupt(format!("bad classification {s:?}")))?
        },
        gateway_id: c.opt_id()?,
        paths: EnvironmentPaths {
            rest: c.text()?,
            soap: c.text()?,
            soap12: c.text()?,
            odata: c.text()?,
        },
        created_at: c.ts()?,
    })
}

pub(crate) fn api<R: Get>(c: &mut Cur<R>) -> Result<Api, StoreError> {
    Ok(Api {
        id: c.id()?,
        account_id: c.id()?,
        name: c.text()?,
        version: c.text()?,
        api_type: {
            let s = c.text()?;
            ApiType::parse(&s).ok_or_else(|| corrupt(format!("bad API type {s:?}")))?
        },
        base_path: c.text()?,
        upstream_targets: crate::json::targets_from_json(&c.text()?)?,
        health_check_url: c.opt_text()?,
        execution: c
            .opt_text()?
            .map(|s| crate::json::execution_from_json(&s))
            .transpose()?,
        created_at: c.ts()?,
    })
}

pub(crate) fn deployment_status_str(s: DeploymentStatus) -> &'static str {
    s.as_str()
}

pub(crate) fn deployment<R: Get>(c: &mut Cur<R>) -> Result<Deployment, StoreError> {
    Ok(Deployment {
        id: c.id()?,
        api_id: c.id()?,
        environment_id: c.id()?,
        custom_path: c.opt_text()?,
        status: match c.text()?.as_str() {
            "requires_configuration" => DeploymentStatus::RequiresConfiguration,
            "pending" => DeploymentStatus::Pending,
            "sent_to_gateway" => DeploymentStatus::SentToGateway,
            other => return Err(corrupt(format!("bad deployment status {other:?}"))),
        },
        created_at: c.ts()?,
    })
}

pub(crate) fn issue<R: Get>(c: &mut Cur<R>) -> Result<IssueRecord, StoreError> {
    Ok(IssueRecord {
        id: c.id()?,
        gateway_id: c.id()?,
        node_id: c.opt_id()?,
        code: c.text()?,
        severity: severity(&c.text()?)?,
        message: c.text()?,
        details: c.json()?,
        first_seen: c.ts()?,
        last_seen: c.ts()?,
        cleared_at: c.opt_ts()?,
    })
}

pub(crate) fn audit_record<R: Get>(c: &mut Cur<R>) -> Result<AuditRecord, StoreError> {
    let id = c.id()?;
    let account_id = c.opt_id()?;
    let actor_kind = c.text()?;
    let actor_id = c.opt_text()?;
    let actor = Actor::parse(&actor_kind, actor_id.as_deref())
        .ok_or_else(|| corrupt(format!("bad actor {actor_kind:?}")))?;
    let action = c.text()?;
    let target_kind = c.opt_text()?;
    let target_id = c.opt_text()?;
    let result = {
        let s = c.text()?;
        AuditResult::parse(&s).ok_or_else(|| corrupt(format!("bad audit result {s:?}")))?
    };
    Ok(AuditRecord {
        id,
        account_id,
        actor,
        action,
        target: target_kind.map(|kind| AuditTarget {
            kind,
            id: target_id,
        }),
        result,
        details: c.json()?,
        at: c.ts()?,
    })
}

/// Milliseconds as stored; durations beyond i64 milliseconds saturate.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn session<R: Get>(c: &mut Cur<R>) -> Result<Session, StoreError> {
    Ok(Session {
        id: c.id()?,
        user_id: c.id()?,
        created_at: c.ts()?,
        expires_at: c.ts()?,
        last_seen_at: c.ts()?,
    })
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

/// `SELECT gateway_id …`: what an environment is attached to.
#[derive(sqlx::FromRow)]
pub(crate) struct GatewayRefRow {
    pub(crate) gateway_id: Option<String>,
}

/// `environment_cols!()`.
#[derive(sqlx::FromRow)]
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

/// `SELECT environment_id, to_gateway_id FROM environment_migrations`.
#[derive(sqlx::FromRow)]
pub(crate) struct MigrationTargetRow {
    pub(crate) environment_id: String,
    pub(crate) to_gateway_id: Option<String>,
}
