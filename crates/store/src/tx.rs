//! Steps shared by many method bodies, run on the caller's [`Db`] (inside its transaction
//! when it is one): audit records, route loading and the row locks of checked changes.

use model::*;

use crate::audit::{Audit, AuditRecord, AuditResult};
use crate::db::{Db, args};
use crate::rows::{DeploymentApiRow, EnvironmentRow, GatewayRefRow, IdRow, parse_opt_id};
use crate::types::{GatewayRoutes, RouteEntry};
use crate::{Store, StoreError, s};

impl Store {
    /// Runs `sql`, a `DELETE … WHERE id = $1 AND account_id = $2`, with its audit record in
    /// one transaction; `NotFound` (and nothing written) when no row matched.
    pub(crate) async fn delete_audited(
        &self,
        sql: &'static str,
        account: AccountId,
        id: String,
        audit: Audit,
    ) -> Result<(), StoreError> {
        self.write(move |db| {
            Box::pin(async move {
                if db.execute(sql, args![id, s(account)]).await? == 0 {
                    return Err(StoreError::NotFound);
                }
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(())
            })
        })
        .await
    }
}

/// Writes one audit record on `db` and returns it.
pub(crate) async fn insert_audit(
    db: &mut Db<'_>,
    account: Option<AccountId>,
    audit: &Audit,
    result: AuditResult,
) -> Result<AuditRecord, StoreError> {
    let rec = crate::audit::record(account, audit, result);
    db.execute(
        "INSERT INTO audit_records (id, account_id, actor_kind, actor_id, action, \
         target_kind, target_id, result, details, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        args![
            s(rec.id),
            rec.account_id.map(s),
            rec.actor.kind(),
            rec.actor.id(),
            &rec.action,
            rec.target.as_ref().map(|t| t.kind.clone()),
            rec.target.as_ref().and_then(|t| t.id.clone()),
            rec.result.as_str(),
            rec.details.to_string(),
            rec.at,
        ],
    )
    .await?;
    Ok(rec)
}

/// Reads the [`GatewayRoutes`] of `gateway` on `db` (inside the caller's transaction when
/// `db` is one, so a check sees exactly what the change commits against).
pub(crate) async fn load_routes(
    db: &mut Db<'_>,
    account: AccountId,
    gateway: GatewayId,
) -> Result<GatewayRoutes, StoreError> {
    let environments = db
        .fetch_all::<EnvironmentRow>(
            concat!(
                "SELECT ",
                environment_cols!(),
                " FROM environments e WHERE e.gateway_id = $1 AND e.account_id = $2 ORDER BY e.id"
            ),
            args![s(gateway), s(account)],
        )
        .await?
        .into_iter()
        .map(Environment::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let rows = db
        .fetch_all::<DeploymentApiRow>(
            concat!(
                "SELECT ",
                deployment_api_cols!(),
                " FROM deployments d JOIN apis a ON a.id = d.api_id \
                 JOIN environments e ON e.id = d.environment_id \
                 WHERE e.gateway_id = $1 AND d.account_id = $2 ORDER BY d.id"
            ),
            args![s(gateway), s(account)],
        )
        .await?;
    let mut deployments = Vec::with_capacity(rows.len());
    for r in rows {
        let (deployment, api) = r.into_model()?;
        if let Some(env) = environments
            .iter()
            .find(|e| e.id == deployment.environment_id)
        {
            deployments.push(RouteEntry {
                environment_name: env.name.clone(),
                environment_paths: env.paths.clone(),
                deployment,
                api,
            });
        }
    }
    Ok(GatewayRoutes {
        gateway_id: gateway,
        environments,
        deployments,
    })
}

/// [`load_routes`] of `gateway` when there is one.
pub(crate) async fn routes_of(
    db: &mut Db<'_>,
    account: AccountId,
    gateway: Option<GatewayId>,
) -> Result<Option<GatewayRoutes>, StoreError> {
    match gateway {
        Some(g) => Ok(Some(load_routes(db, account, g).await?)),
        None => Ok(None),
    }
}

/// Locks a non-deleted gateway row of the account for the rest of the transaction
/// (a no-op update: a row lock on PostgreSQL; SQLite already holds the write lock), so
/// concurrent checked changes on one gateway serialize. `NotFound` when it is not live.
pub(crate) async fn lock_gateway(
    db: &mut Db<'_>,
    account: AccountId,
    gateway: GatewayId,
) -> Result<(), StoreError> {
    let done = db
        .execute(
            "UPDATE gateways SET config_generation = config_generation \
             WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
            args![s(gateway), s(account)],
        )
        .await?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Fails with `NotFound` unless `gateway` is a gateway of the account, deleted or not.
pub(crate) async fn require_gateway(
    db: &mut Db<'_>,
    account: AccountId,
    gateway: GatewayId,
) -> Result<(), StoreError> {
    db.fetch_one::<IdRow>(
        "SELECT id FROM gateways WHERE id = $1 AND account_id = $2",
        args![s(gateway), s(account)],
    )
    .await?;
    Ok(())
}

/// Fails with `NotFound` unless `gateway` is a live gateway of the account.
pub(crate) async fn require_live_gateway(
    db: &mut Db<'_>,
    account: AccountId,
    gateway: GatewayId,
) -> Result<(), StoreError> {
    db.fetch_one::<IdRow>(
        "SELECT id FROM gateways WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
        args![s(gateway), s(account)],
    )
    .await?;
    Ok(())
}

/// Locks, in the store-wide lock order **gateways (by id) → environment**, the gateway an
/// environment is attached to, the optional destination `dest` (which must be live), and
/// the environment itself; returns the environment as locked.
///
/// Every change of what is attached to a gateway, or of the paths and deployments of its
/// environments, holds that gateway's row lock, so a check run under it sees a state no
/// concurrent checked change can invalidate. Taking gateways before environments
/// everywhere (soft delete does too) keeps PostgreSQL free of lock-order deadlocks. The
/// environment's gateway is first read unlocked; if it changed before the environment
/// lock was taken, the new one is locked as well (at most one extra round: once the
/// environment row is locked its gateway cannot change). On SQLite `BEGIN IMMEDIATE`
/// already serializes writers and the loop runs once.
pub(crate) async fn lock_environment_and_gateways(
    db: &mut Db<'_>,
    account: AccountId,
    env_id: EnvironmentId,
    dest: Option<GatewayId>,
) -> Result<Environment, StoreError> {
    let row = db
        .fetch_one::<GatewayRefRow>(
            "SELECT gateway_id FROM environments WHERE id = $1 AND account_id = $2",
            args![s(env_id), s(account)],
        )
        .await?;
    let mut seen: Option<GatewayId> = parse_opt_id(row.gateway_id.as_deref())?;
    let mut locked: Vec<GatewayId> = Vec::new();
    let env = loop {
        let mut want: Vec<GatewayId> = seen
            .into_iter()
            .chain(dest)
            .filter(|g| !locked.contains(g))
            .collect();
        want.sort_unstable();
        want.dedup();
        for g in want {
            // Deleted or not: the environment may have been detached meanwhile.
            db.execute(
                "UPDATE gateways SET config_generation = config_generation \
                 WHERE id = $1 AND account_id = $2",
                args![s(g), s(account)],
            )
            .await?;
            locked.push(g);
        }
        let env = Environment::try_from(
            db.fetch_one::<EnvironmentRow>(
                concat!(
                    "UPDATE environments AS e SET name = e.name \
                     WHERE e.id = $1 AND e.account_id = $2 RETURNING ",
                    environment_cols!(bare)
                ),
                args![s(env_id), s(account)],
            )
            .await?,
        )?;
        if env.gateway_id == seen || env.gateway_id.is_none_or(|g| locked.contains(&g)) {
            break env;
        }
        seen = env.gateway_id;
    };
    if let Some(d) = dest {
        require_live_gateway(db, account, d).await?;
    }
    Ok(env)
}
