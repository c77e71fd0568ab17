//! Environment migrations (SPEC §7): saved, resumable, at most one in progress per
//! environment; completing one moves the environment in the same transaction.

use model::*;

use crate::audit::{Audit, AuditResult};
use crate::db::{Db, args};
use crate::error::{Checked, ConflictKind};
use crate::rows::{EnvironmentRow, MigrationRow};
use crate::tx::{insert_audit, load_routes, lock_environment_and_gateways, require_live_gateway};
use crate::types::*;
use crate::{Store, StoreError, s};

/// Locks and reads a migration of the account (no-op update: row lock on PostgreSQL).
pub(crate) async fn lock_migration(
    db: &mut Db<'_>,
    account: AccountId,
    id: MigrationId,
) -> Result<EnvironmentMigration, StoreError> {
    db.fetch_one::<MigrationRow>(
        concat!(
            "UPDATE environment_migrations AS m SET state = m.state \
             WHERE m.id = $1 AND m.account_id = $2 RETURNING ",
            migration_cols!(bare)
        ),
        args![s(id), s(account)],
    )
    .await?
    .try_into()
}

impl Store {
    /// Starts a migration of `environment` to `to_gateway` (`None`: off its gateway). The
    /// source is the environment's gateway now. A second migration of the same environment
    /// while one is in progress is [`ConflictKind::MigrationInProgress`].
    pub async fn create_migration(
        &self,
        account: AccountId,
        environment: EnvironmentId,
        to_gateway: Option<GatewayId>,
        state: serde_json::Value,
        mut audit: Audit,
    ) -> Result<EnvironmentMigration, StoreError> {
        let id = MigrationId::new_v7();
        audit.default_target("migration", id);
        self.write(move |db| {
            Box::pin(async move {
                let env = Environment::try_from(
                    db.fetch_one::<EnvironmentRow>(
                        concat!(
                            "SELECT ",
                            environment_cols!(),
                            " FROM environments e WHERE e.id = $1 AND e.account_id = $2"
                        ),
                        args![s(environment), s(account)],
                    )
                    .await?,
                )?;
                if let Some(g) = to_gateway {
                    require_live_gateway(db, account, g).await?;
                }
                let migration = EnvironmentMigration {
                    id,
                    account_id: account,
                    environment_id: environment,
                    from_gateway_id: env.gateway_id,
                    to_gateway_id: to_gateway,
                    state,
                    created_at: audit.at,
                    updated_at: audit.at,
                    completed_at: None,
                    result: None,
                };
                db.execute(
                    "INSERT INTO environment_migrations (id, account_id, environment_id, \
                     from_gateway_id, to_gateway_id, state, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                    args![
                        s(id),
                        s(account),
                        s(environment),
                        migration.from_gateway_id.map(s),
                        to_gateway.map(s),
                        migration.state.to_string(),
                        audit.at,
                    ],
                )
                .await?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(migration)
            })
        })
        .await
    }

    pub async fn migration(
        &self,
        account: AccountId,
        id: MigrationId,
    ) -> Result<EnvironmentMigration, StoreError> {
        self.one::<MigrationRow, _>(
            concat!(
                "SELECT ",
                migration_cols!(),
                " FROM environment_migrations m WHERE m.id = $1 AND m.account_id = $2"
            ),
            args![s(id), s(account)],
        )
        .await
    }

    /// The migrations of `account` in progress, oldest first (the Environment Migration tab).
    pub async fn migrations_in_progress(
        &self,
        account: AccountId,
    ) -> Result<Vec<EnvironmentMigration>, StoreError> {
        self.all::<MigrationRow, EnvironmentMigration>(
            concat!(
                "SELECT ",
                migration_cols!(),
                " FROM environment_migrations m WHERE m.account_id = $1 \
                         AND m.completed_at IS NULL ORDER BY m.id"
            ),
            args![s(account)],
        )
        .await
    }

    /// Saves a step: a new destination and step state of a migration in progress.
    pub async fn update_migration(
        &self,
        account: AccountId,
        id: MigrationId,
        to_gateway: Option<GatewayId>,
        state: serde_json::Value,
        mut audit: Audit,
    ) -> Result<EnvironmentMigration, StoreError> {
        audit.default_target("migration", id);
        self.write(move |db| {
            Box::pin(async move {
                let current = lock_migration(db, account, id).await?;
                if current.completed_at.is_some() {
                    return Err(StoreError::Conflict {
                        what: ConflictKind::MigrationCompleted,
                    });
                }
                if let Some(g) = to_gateway {
                    require_live_gateway(db, account, g).await?;
                }
                let migration = db
                    .fetch_one::<MigrationRow>(
                        concat!(
                            "UPDATE environment_migrations AS m SET to_gateway_id = $3, \
                             state = $4, updated_at = $5 \
                             WHERE m.id = $1 AND m.account_id = $2 RETURNING ",
                            migration_cols!(bare)
                        ),
                        args![
                            s(id),
                            s(account),
                            to_gateway.map(s),
                            state.to_string(),
                            audit.at
                        ],
                    )
                    .await?
                    .try_into()?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(migration)
            })
        })
        .await
    }

    /// Completes a migration with `result` (`OK`, `OK_WITH_WARNINGS`, `ERROR`) and its final
    /// step `state`. With [`MigrationOutcome::Applied`] the environment moves to the
    /// destination (or off its gateway) with the given paths in the same transaction, after
    /// `check` approved them against the destination's current routes (gateways locked), and
    /// the source redirects its old paths when a redirect is given; with
    /// [`MigrationOutcome::Unchanged`] (an `ERROR` result) the environment stays where it was.
    /// Either way a running cut-over ends: a completed migration is no longer one.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_migration<E: Send>(
        &self,
        account: AccountId,
        id: MigrationId,
        result: &str,
        outcome: MigrationOutcome,
        state: serde_json::Value,
        mut audit: Audit,
        check: impl FnOnce(&Environment, Option<&GatewayRoutes>) -> Result<(), E> + Send,
    ) -> Result<EnvironmentMigration, Checked<E>> {
        audit.default_target("migration", id);
        let applied = matches!(outcome, MigrationOutcome::Applied { .. });
        self.write(move |db| {
            Box::pin(async move {
                // Lock order: gateways, environment, then the migration row.
                let (env_id, to_gateway) =
                    crate::cutover::migration_target(db, account, id).await?;
                let env = if applied {
                    Some(lock_environment_and_gateways(db, account, env_id, to_gateway).await?)
                } else {
                    None
                };
                let current = lock_migration(db, account, id).await?;
                if current.completed_at.is_some() {
                    return Err(StoreError::Conflict {
                        what: ConflictKind::MigrationCompleted,
                    }
                    .into());
                }
                let mut redirect_cols = (None, None, None);
                if let (Some(env), MigrationOutcome::Applied { paths, redirect }) = (env, &outcome)
                {
                    // The destination cannot change under us: update_migration takes the
                    // same migration row lock, and we hold it now.
                    let routes = match current.to_gateway_id {
                        Some(g) if Some(g) == to_gateway => {
                            Some(load_routes(db, account, g).await?)
                        }
                        Some(_) => {
                            return Err(StoreError::Conflict {
                                what: ConflictKind::Reference,
                            }
                            .into());
                        }
                        None => None,
                    };
                    check(&env, routes.as_ref()).map_err(Checked::Rejected)?;
                    if let Some(r) = redirect.as_ref().filter(|_| env.gateway_id.is_some()) {
                        redirect_cols = (
                            Some(crate::cutover::paths_json(&env.paths)),
                            Some(r.location.clone()),
                            Some(r.until.0),
                        );
                    }
                    db.execute(
                        "UPDATE environments SET gateway_id = $3, path_rest = $4, \
                         path_soap = $5, path_soap12 = $6, path_odata = $7 \
                         WHERE id = $1 AND account_id = $2",
                        args![
                            s(current.environment_id),
                            s(account),
                            current.to_gateway_id.map(s),
                            &paths.rest,
                            &paths.soap,
                            &paths.soap12,
                            &paths.odata
                        ],
                    )
                    .await?;
                }
                let (redirect_paths, redirect_location, redirect_until) = redirect_cols;
                let migration = db
                    .fetch_one::<MigrationRow>(
                        concat!(
                            "UPDATE environment_migrations AS m SET completed_at = $3, \
                             updated_at = $3, result = $4, state = $5, redirect_paths = $6, \
                             redirect_location = $7, redirect_until = $8 \
                             WHERE m.id = $1 AND m.account_id = $2 RETURNING ",
                            migration_cols!(bare)
                        ),
                        args![
                            s(id),
                            s(account),
                            audit.at,
                            result,
                            state.to_string(),
                            redirect_paths,
                            redirect_location,
                            redirect_until
                        ],
                    )
                    .await?
                    .try_into()?;
                audit.add_detail("result", result.into());
                audit.add_detail("applied", applied.into());
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(migration)
            })
        })
        .await
    }

    /// Deletes a migration (the tab's Delete action); the environment stays where it is.
    pub async fn delete_migration(
        &self,
        account: AccountId,
        id: MigrationId,
        mut audit: Audit,
    ) -> Result<(), StoreError> {
        audit.default_target("migration", id);
        self.delete_audited(
            "DELETE FROM environment_migrations WHERE id = $1 AND account_id = $2",
            account,
            s(id),
            audit,
        )
        .await
    }
}
