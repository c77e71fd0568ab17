//! Environment migrations (SPEC §7): saved, resumable, at most one in progress per
//! environment; completing one moves the environment in the same transaction.

use model::*;

use crate::audit::{Audit, AuditResult};
use crate::error::{Checked, ConflictKind};
use crate::rows::{self, Cur};
use crate::types::*;
use crate::{
    Store, StoreError, found, insert_audit, load_routes, lock_environment_and_gateways, s,
    with_conn, with_tx,
};

/// Locks and reads a migration of the account (no-op update: row lock on PostgreSQL).
macro_rules! lock_migration {
    ($c:ident, $account:expr, $id:expr) => {{
        let row = sqlx::query(concat!(
            "UPDATE environment_migrations AS m SET state = m.state \
             WHERE m.id = $1 AND m.account_id = $2 RETURNING ",
            migration_cols!(bare)
        ))
        .bind(s($id))
        .bind(s($account))
        .fetch_optional(&mut *$c)
        .await?;
        found(row).and_then(|r| rows::migration(&mut Cur::new(&r)))?
    }};
}

/// Fails with `NotFound` unless `$gateway` is a live gateway of the account.
macro_rules! require_live_gateway {
    ($c:ident, $account:expr, $gateway:expr) => {{
        let row = sqlx::query(
            "SELECT id FROM gateways WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
        )
        .bind(s($gateway))
        .bind(s($account))
        .fetch_optional(&mut *$c)
        .await?;
        found(row)?;
    }};
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
        with_tx!(self, |c| {
            let env_row = sqlx::query(concat!(
                "SELECT ",
                environment_cols!(),
                " FROM environments e WHERE e.id = $1 AND e.account_id = $2"
            ))
            .bind(s(environment))
            .bind(s(account))
            .fetch_optional(&mut *c)
            .await?;
            let env = found(env_row).and_then(|r| rows::environment(&mut Cur::new(&r)))?;
            if let Some(g) = to_gateway {
                require_live_gateway!(c, account, g);
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
            sqlx::query(
                "INSERT INTO environment_migrations (id, account_id, environment_id, \
                 from_gateway_id, to_gateway_id, state, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(s(id))
            .bind(s(account))
            .bind(s(environment))
            .bind(migration.from_gateway_id.map(s))
            .bind(to_gateway.map(s))
            .bind(migration.state.to_string())
            .bind(audit.at.0)
            .execute(&mut *c)
            .await?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(migration)
        })
    }

    pub async fn migration(
        &self,
        account: AccountId,
        id: MigrationId,
    ) -> Result<EnvironmentMigration, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                migration_cols!(),
                " FROM environment_migrations m WHERE m.id = $1 AND m.account_id = $2"
            ))
            .bind(s(id))
            .bind(s(account))
            .fetch_optional(&mut *c)
            .await?;
            found(row).and_then(|r| rows::migration(&mut Cur::new(&r)))
        })
    }

    /// The migrations of `account` in progress, oldest first (the Environment Migration tab).
    pub async fn migrations_in_progress(
        &self,
        account: AccountId,
    ) -> Result<Vec<EnvironmentMigration>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                migration_cols!(),
                " FROM environment_migrations m WHERE m.account_id = $1 \
                 AND m.completed_at IS NULL ORDER BY m.id"
            ))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| rows::migration(&mut Cur::new(r)))
                .collect()
        })
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
        with_tx!(self, |c| {
            let current = lock_migration!(c, account, id);
            if current.completed_at.is_some() {
                return Err(StoreError::Conflict {
                    what: ConflictKind::MigrationCompleted,
                });
            }
            if let Some(g) = to_gateway {
                require_live_gateway!(c, account, g);
            }
            let row = sqlx::query(concat!(
                "UPDATE environment_migrations AS m SET to_gateway_id = $3, state = $4, \
                 updated_at = $5 WHERE m.id = $1 AND m.account_id = $2 RETURNING ",
                migration_cols!(bare)
            ))
            .bind(s(id))
            .bind(s(account))
            .bind(to_gateway.map(s))
            .bind(state.to_string())
            .bind(audit.at.0)
            .fetch_optional(&mut *c)
            .await?;
            let migration = found(row).and_then(|r| rows::migration(&mut Cur::new(&r)))?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(migration)
        })
    }

    /// Completes a migration with `result` (`OK`, `OK_WITH_WARNINGS`, `ERROR`). With
    /// `apply`, the environment moves to the destination in the same transaction, after
    /// `check` approved it against the destination's current routes (destination locked);
    /// an `ERROR` result is recorded with `apply = false`, leaving the environment alone.
    pub async fn complete_migration<E>(
        &self,
        account: AccountId,
        id: MigrationId,
        result: &str,
        apply: bool,
        mut audit: Audit,
        check: impl FnOnce(&Environment, Option<&GatewayRoutes>) -> Result<(), E>,
    ) -> Result<EnvironmentMigration, Checked<E>> {
        audit.default_target("migration", id);
        with_tx!(self, |c| {
            // Lock order: gateways, environment, then the migration row.
            let peek = sqlx::query(
                "SELECT environment_id, to_gateway_id FROM environment_migrations \
                 WHERE id = $1 AND account_id = $2",
            )
            .bind(s(id))
            .bind(s(account))
            .fetch_optional(&mut *c)
            .await?;
            let (env_id, to_gateway) = {
                let r = found(peek)?;
                let mut cur = Cur::new(&r);
                (cur.id::<EnvironmentId>()?, cur.opt_id::<GatewayId>()?)
            };
            let env = if apply {
                Some(lock_environment_and_gateways!(
                    c, account, env_id, to_gateway
                ))
            } else {
                None
            };
            let current = lock_migration!(c, account, id);
            if current.completed_at.is_some() {
                return Err(StoreError::Conflict {
                    what: ConflictKind::MigrationCompleted,
                }
                .into());
            }
            if let Some(env) = env {
                // The destination cannot change under us: update_migration takes the same
                // migration row lock, and we hold it now.
                let routes = match current.to_gateway_id {
                    Some(g) if Some(g) == to_gateway => Some(load_routes!(c, account, g)),
                    Some(_) => {
                        return Err(StoreError::Conflict {
                            what: ConflictKind::Reference,
                        }
                        .into());
                    }
                    None => None,
                };
                check(&env, routes.as_ref()).map_err(Checked::Rejected)?;
                sqlx::query(
                    "UPDATE environments SET gateway_id = $3 WHERE id = $1 AND account_id = $2",
                )
                .bind(s(current.environment_id))
                .bind(s(account))
                .bind(current.to_gateway_id.map(s))
                .execute(&mut *c)
                .await?;
            }
            let row = sqlx::query(concat!(
                "UPDATE environment_migrations AS m SET completed_at = $3, updated_at = $3, \
                 result = $4 WHERE m.id = $1 AND m.account_id = $2 RETURNING ",
                migration_cols!(bare)
            ))
            .bind(s(id))
            .bind(s(account))
            .bind(audit.at.0)
            .bind(result)
            .fetch_optional(&mut *c)
            .await?;
            let migration = found(row).and_then(|r| rows::migration(&mut Cur::new(&r)))?;
            audit.add_detail("result", result.into());
            audit.add_detail("applied", apply.into());
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(migration)
        })
    }

    /// Deletes a migration (the tab's Delete action); the environment stays where it is.
    pub async fn delete_migration(
        &self,
        account: AccountId,
        id: MigrationId,
        mut audit: Audit,
    ) -> Result<(), StoreError> {
        audit.default_target("migration", id);
        with_tx!(self, |c| {
            let done =
                sqlx::query("DELETE FROM environment_migrations WHERE id = $1 AND account_id = $2")
                    .bind(s(id))
                    .bind(s(account))
                    .execute(&mut *c)
                    .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
        });
        Ok(())
    }
}
