//! The cut-over of an environment migration (SPEC §7), kept on the migration row: while a
//! Migrate runs, the destination gateway's configuration also holds the environment (with
//! its destination paths); after a completed move the source gateway's configuration holds
//! a redirect of the environment's old paths until the grace period ends. Deleting the
//! migration ends both. The history of completed migrations is read here too.

use model::migration::Redirect;
use model::*;
use serde::{Deserialize, Serialize};

use crate::db::{Db, args};
use crate::environment_migrations::lock_migration;
use crate::error::{Checked, ConflictKind};
use crate::rows::{
    CutoverRow, DeploymentApiRow, EnvironmentRow, MigrationRow, MigrationTargetRow, RedirectRow,
    parse_id, parse_opt_id,
};
use crate::tx::{load_routes, lock_environment_and_gateways};
use crate::types::*;
use crate::{Store, StoreError, s};

/// The four paths as stored in the migration row's JSON columns.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPaths {
    rest: String,
    soap: String,
    soap12: String,
    odata: String,
}

pub(crate) fn paths_json(p: &EnvironmentPaths) -> String {
    serde_json::to_string(&StoredPaths {
        rest: p.rest.clone(),
        soap: p.soap.clone(),
        soap12: p.soap12.clone(),
        odata: p.odata.clone(),
    })
    .expect("paths serialise")
}

fn parse_paths(text: &str) -> Result<EnvironmentPaths, StoreError> {
    let p: StoredPaths = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("stored migration paths: {e}")))?;
    Ok(EnvironmentPaths {
        rest: p.rest,
        soap: p.soap,
        soap12: p.soap12,
        odata: p.odata,
    })
}

/// The environments whose cut-over to `gateway` is running, as the destination serves them
/// (attached to it, with their destination paths), and their deployments with APIs.
pub(crate) async fn cutover_environments(
    db: &mut Db<'_>,
    account: AccountId,
    gateway: GatewayId,
) -> Result<Vec<(Environment, Vec<(Deployment, Api)>)>, StoreError> {
    let moving = db
        .fetch_all::<CutoverRow>(
            "SELECT environment_id, destination_paths FROM environment_migrations \
             WHERE to_gateway_id = $1 AND account_id = $2 AND cutover_at IS NOT NULL \
             AND completed_at IS NULL ORDER BY environment_id",
            args![s(gateway), s(account)],
        )
        .await?;
    let mut out = Vec::with_capacity(moving.len());
    for m in moving {
        let env_id: EnvironmentId = parse_id(&m.environment_id)?;
        let mut env = Environment::try_from(
            db.fetch_one::<EnvironmentRow>(
                concat!(
                    "SELECT ",
                    environment_cols!(),
                    " FROM environments e WHERE e.id = $1 AND e.account_id = $2"
                ),
                args![s(env_id), s(account)],
            )
            .await?,
        )?;
        env.gateway_id = Some(gateway);
        if let Some(paths) = m.destination_paths.as_deref() {
            env.paths = parse_paths(paths)?;
        }
        let deployments = db
            .fetch_all::<DeploymentApiRow>(
                concat!(
                    "SELECT ",
                    deployment_api_cols!(),
                    " FROM deployments d JOIN apis a ON a.id = d.api_id \
                     WHERE d.environment_id = $1 AND d.account_id = $2 ORDER BY d.id"
                ),
                args![s(env_id), s(account)],
            )
            .await?
            .into_iter()
            .map(DeploymentApiRow::into_model)
            .collect::<Result<Vec<_>, _>>()?;
        out.push((env, deployments));
    }
    Ok(out)
}

/// The redirects `gateway` serves at `now`: environments that left it and whose grace
/// period has not ended.
pub(crate) async fn redirects_from(
    db: &mut Db<'_>,
    account: AccountId,
    gateway: GatewayId,
    now: Timestamp,
) -> Result<Vec<Redirect>, StoreError> {
    db.fetch_all::<RedirectRow>(
        "SELECT redirect_paths, redirect_location, redirect_until FROM environment_migrations \
         WHERE from_gateway_id = $1 AND account_id = $2 AND redirect_until > $3 ORDER BY id",
        args![s(gateway), s(account), now],
    )
    .await?
    .into_iter()
    .map(|r| {
        Ok(Redirect {
            paths: parse_paths(&r.redirect_paths)?,
            location: r.redirect_location,
            until: Timestamp(r.redirect_until),
        })
    })
    .collect()
}

/// The environment and destination of a migration, read without a lock (to take the locks
/// in order: gateways, environment, then the migration row).
pub(crate) async fn migration_target(
    db: &mut Db<'_>,
    account: AccountId,
    id: MigrationId,
) -> Result<(EnvironmentId, Option<GatewayId>), StoreError> {
    let target = db
        .fetch_one::<MigrationTargetRow>(
            "SELECT environment_id, to_gateway_id FROM environment_migrations \
             WHERE id = $1 AND account_id = $2",
            args![s(id), s(account)],
        )
        .await?;
    Ok((
        parse_id(&target.environment_id)?,
        parse_opt_id(target.to_gateway_id.as_deref())?,
    ))
}

impl Store {
    /// Starts the cut-over of a migration in progress to its destination gateway: from now
    /// on the destination's configuration holds the environment with `paths`, after `check`
    /// approved them against the destination's routes (gateways, environment and migration
    /// locked). Starting it again (a Migrate retried) is allowed.
    pub async fn start_cutover<E: Send>(
        &self,
        account: AccountId,
        id: MigrationId,
        paths: &EnvironmentPaths,
        at: Timestamp,
        check: impl FnOnce(&Environment, Option<&GatewayRoutes>) -> Result<(), E> + Send,
    ) -> Result<EnvironmentMigration, Checked<E>> {
        let stored_paths = paths_json(paths);
        self.write(move |db| {
            Box::pin(async move {
                let (env_id, to) = migration_target(db, account, id).await?;
                let Some(to) = to else {
                    return Err(StoreError::Conflict {
                        what: ConflictKind::Reference,
                    }
                    .into());
                };
                let env = lock_environment_and_gateways(db, account, env_id, Some(to)).await?;
                let current = lock_migration(db, account, id).await?;
                if current.completed_at.is_some() {
                    return Err(StoreError::Conflict {
                        what: ConflictKind::MigrationCompleted,
                    }
                    .into());
                }
                if current.to_gateway_id != Some(to) {
                    return Err(StoreError::Conflict {
                        what: ConflictKind::Reference,
                    }
                    .into());
                }
                let routes = load_routes(db, account, to).await?;
                check(&env, Some(&routes)).map_err(Checked::Rejected)?;
                let migration = db
                    .fetch_one::<MigrationRow>(
                        concat!(
                            "UPDATE environment_migrations AS m SET cutover_at = $3, \
                             destination_paths = $4, updated_at = $3 \
                             WHERE m.id = $1 AND m.account_id = $2 RETURNING ",
                            migration_cols!(bare)
                        ),
                        args![s(id), s(account), at, stored_paths],
                    )
                    .await?
                    .try_into()?;
                Ok(migration)
            })
        })
        .await
    }

    /// The completed migrations of `account`, newest first.
    pub async fn completed_migrations(
        &self,
        account: AccountId,
    ) -> Result<Vec<EnvironmentMigration>, StoreError> {
        self.all::<MigrationRow, EnvironmentMigration>(
            concat!(
                "SELECT ",
                migration_cols!(),
                " FROM environment_migrations m WHERE m.account_id = $1 \
                 AND m.completed_at IS NOT NULL ORDER BY m.completed_at DESC, m.id DESC"
            ),
            args![s(account)],
        )
        .await
    }
}
