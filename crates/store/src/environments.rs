//! Environments: naming, classification, URL paths and attachment to a gateway.

use model::*;

use crate::audit::{Audit, AuditResult};
use crate::error::Checked;
use crate::rows::{self, Cur};
use crate::types::*;
use crate::{
    Store, StoreError, found, insert_audit, load_routes, lock_environment_and_gateways, s,
    with_conn, with_tx,
};

impl Store {
    /// Creates an unattached environment (attach with [`Store::set_environment_gateway`]).
    pub async fn create_environment(
        &self,
        account: AccountId,
        new: NewEnvironment,
        mut audit: Audit,
    ) -> Result<Environment, StoreError> {
        let env = Environment {
            id: EnvironmentId::new_v7(),
            account_id: account,
            name: new.name,
            classification: new.classification,
            gateway_id: None,
            paths: new.paths,
            created_at: audit.at,
        };
        audit.default_target("environment", env.id);
        with_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO environments (id, account_id, name, classification, gateway_id, \
                 path_rest, path_soap, path_soap12, path_odata, created_at) \
                 VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8, $9)",
            )
            .bind(s(env.id))
            .bind(s(account))
            .bind(&env.name)
            .bind(env.classification.as_str())
            .bind(&env.paths.rest)
            .bind(&env.paths.soap)
            .bind(&env.paths.soap12)
            .bind(&env.paths.odata)
            .bind(env.created_at.0)
            .execute(&mut *c)
            .await?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
        });
        Ok(env)
    }

    pub async fn environment(
        &self,
        account: AccountId,
        id: EnvironmentId,
    ) -> Result<Environment, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                environment_cols!(),
                " FROM environments e WHERE e.id = $1 AND e.account_id = $2"
            ))
            .bind(s(id))
            .bind(s(account))
            .fetch_optional(&mut *c)
            .await?;
            found(row).and_then(|r| rows::environment(&mut Cur::new(&r)))
        })
    }

    /// All environments of `account`, by name (case-insensitive).
    pub async fn environments(&self, account: AccountId) -> Result<Vec<Environment>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                environment_cols!(),
                " FROM environments e WHERE e.account_id = $1 ORDER BY lower(e.name), e.id"
            ))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| rows::environment(&mut Cur::new(r)))
                .collect()
        })
    }

    /// Renames and reclassifies an environment.
    pub async fn update_environment(
        &self,
        account: AccountId,
        id: EnvironmentId,
        name: &str,
        classification: Classification,
        mut audit: Audit,
    ) -> Result<Environment, StoreError> {
        audit.default_target("environment", id);
        with_tx!(self, |c| {
            let row = sqlx::query(concat!(
                "UPDATE environments AS e SET name = $3, classification = $4 \
                 WHERE e.id = $1 AND e.account_id = $2 RETURNING ",
                environment_cols!(bare)
            ))
            .bind(s(id))
            .bind(s(account))
            .bind(name)
            .bind(classification.as_str())
            .fetch_optional(&mut *c)
            .await?;
            let env = found(row).and_then(|r| rows::environment(&mut Cur::new(&r)))?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(env)
        })
    }

    /// Replaces the four URL paths of an environment. `check` runs inside the transaction
    /// with the environment as it is now and, when it is attached, its gateway's current
    /// routes (the gateway row is locked, so no concurrent checked change interleaves);
    /// refusing leaves everything unchanged and writes no audit record.
    pub async fn update_environment_paths<E>(
        &self,
        account: AccountId,
        id: EnvironmentId,
        paths: EnvironmentPaths,
        mut audit: Audit,
        check: impl FnOnce(&Environment, Option<&GatewayRoutes>) -> Result<(), E>,
    ) -> Result<Environment, Checked<E>> {
        audit.default_target("environment", id);
        with_tx!(self, |c| {
            let current = lock_environment_and_gateways!(c, account, id, None);
            let routes = match current.gateway_id {
                Some(g) => Some(load_routes!(c, account, g)),
                None => None,
            };
            check(&current, routes.as_ref()).map_err(Checked::Rejected)?;
            let row = sqlx::query(concat!(
                "UPDATE environments AS e SET path_rest = $3, path_soap = $4, path_soap12 = $5, \
                 path_odata = $6 WHERE e.id = $1 AND e.account_id = $2 RETURNING ",
                environment_cols!(bare)
            ))
            .bind(s(id))
            .bind(s(account))
            .bind(&paths.rest)
            .bind(&paths.soap)
            .bind(&paths.soap12)
            .bind(&paths.odata)
            .fetch_optional(&mut *c)
            .await?;
            let env = found(row).and_then(|r| rows::environment(&mut Cur::new(&r)))?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(env)
        })
    }

    /// Attaches an environment to a non-deleted gateway of the account, moves it, or
    /// detaches it (`None`). Meant for the migration flow (SPEC §7) and `switchyard up`.
    /// `check` sees the environment as it is now and the destination's current routes.
    pub async fn set_environment_gateway<E>(
        &self,
        account: AccountId,
        id: EnvironmentId,
        gateway: Option<GatewayId>,
        mut audit: Audit,
        check: impl FnOnce(&Environment, Option<&GatewayRoutes>) -> Result<(), E>,
    ) -> Result<Environment, Checked<E>> {
        audit.default_target("environment", id);
        with_tx!(self, |c| {
            let current = lock_environment_and_gateways!(c, account, id, gateway);
            let routes = match gateway {
                Some(g) => Some(load_routes!(c, account, g)),
                None => None,
            };
            check(&current, routes.as_ref()).map_err(Checked::Rejected)?;
            let row = sqlx::query(concat!(
                "UPDATE environments AS e SET gateway_id = $3 \
                 WHERE e.id = $1 AND e.account_id = $2 RETURNING ",
                environment_cols!(bare)
            ))
            .bind(s(id))
            .bind(s(account))
            .bind(gateway.map(s))
            .fetch_optional(&mut *c)
            .await?;
            let env = found(row).and_then(|r| rows::environment(&mut Cur::new(&r)))?;
            audit.add_detail(
                "from_gateway",
                current
                    .gateway_id
                    .map_or(serde_json::Value::Null, |g| g.to_string().into()),
            );
            audit.add_detail(
                "to_gateway",
                gateway.map_or(serde_json::Value::Null, |g| g.to_string().into()),
            );
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(env)
        })
    }

    /// Deletes an environment and its deployments.
    pub async fn delete_environment(
        &self,
        account: AccountId,
        id: EnvironmentId,
        mut audit: Audit,
    ) -> Result<(), StoreError> {
        audit.default_target("environment", id);
        with_tx!(self, |c| {
            let done = sqlx::query("DELETE FROM environments WHERE id = $1 AND account_id = $2")
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

    /// The routing state of a gateway of `account`: attached environments and their
    /// deployments with APIs. Input of the path rules outside a change (e.g. display).
    pub async fn gateway_routes(
        &self,
        account: AccountId,
        gateway: GatewayId,
    ) -> Result<GatewayRoutes, StoreError> {
        with_conn!(self, |c| {
            let exists = sqlx::query("SELECT id FROM gateways WHERE id = $1 AND account_id = $2")
                .bind(s(gateway))
                .bind(s(account))
                .fetch_optional(&mut *c)
                .await?;
            found(exists)?;
            Ok(load_routes!(c, account, gateway))
        })
    }
}
