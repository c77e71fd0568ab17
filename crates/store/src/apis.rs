//! APIs and their deployments to environments.

use model::*;

use crate::audit::{Audit, AuditResult};
use crate::error::Checked;
use crate::rows::{self, Cur};
use crate::types::*;
use crate::{
    Store, StoreError, found, insert_audit, load_routes, lock_environment_and_gateways,
    lock_gateway, s, with_conn, with_tx,
};

const API_BY_ID: &str = concat!(
    "SELECT ",
    api_cols!(),
    " FROM apis a WHERE a.id = $1 AND a.account_id = $2"
);

impl Store {
    pub async fn create_api(
        &self,
        account: AccountId,
        new: NewApi,
        mut audit: Audit,
    ) -> Result<Api, StoreError> {
        let api = Api {
            id: ApiId::new_v7(),
            account_id: account,
            name: new.name,
            version: new.version,
            api_type: new.api_type,
            base_path: new.base_path,
            upstream_targets: new.upstream_targets,
            health_check_url: new.health_check_url,
            execution: new.execution,
            created_at: audit.at,
        };
        audit.default_target("api", api.id);
        with_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO apis (id, account_id, name, version, api_type, base_path, \
                 upstream_targets, health_check_url, execution, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(s(api.id))
            .bind(s(account))
            .bind(&api.name)
            .bind(&api.version)
            .bind(api.api_type.as_str())
            .bind(&api.base_path)
            .bind(crate::json::targets_to_json(&api.upstream_targets))
            .bind(&api.health_check_url)
            .bind(api.execution.as_ref().map(crate::json::execution_to_json))
            .bind(api.created_at.0)
            .execute(&mut *c)
            .await?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
        });
        Ok(api)
    }

    pub async fn api(&self, account: AccountId, id: ApiId) -> Result<Api, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(API_BY_ID)
                .bind(s(id))
                .bind(s(account))
                .fetch_optional(&mut *c)
                .await?;
            found(row).and_then(|r| rows::api(&mut Cur::new(&r)))
        })
    }

    /// All APIs of `account`, by name then version.
    pub async fn apis(&self, account: AccountId) -> Result<Vec<Api>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                api_cols!(),
                " FROM apis a WHERE a.account_id = $1 ORDER BY lower(a.name), a.version, a.id"
            ))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            rows.iter().map(|r| rows::api(&mut Cur::new(r))).collect()
        })
    }

    /// Replaces an API's definition. `check` runs inside the transaction with the updated
    /// API and the current routes of every gateway it is deployed on (those gateways are
    /// locked); refusing changes nothing.
    pub async fn update_api<E>(
        &self,
        account: AccountId,
        id: ApiId,
        update: NewApi,
        mut audit: Audit,
        check: impl FnOnce(&Api, &[GatewayRoutes]) -> Result<(), E>,
    ) -> Result<Api, Checked<E>> {
        audit.default_target("api", id);
        with_tx!(self, |c| {
            let row = sqlx::query(concat!(
                "UPDATE apis AS a SET name = $3, version = $4, api_type = $5, base_path = $6, \
                 upstream_targets = $7, health_check_url = $8, execution = $9 \
                 WHERE a.id = $1 AND a.account_id = $2 RETURNING ",
                api_cols!(bare)
            ))
            .bind(s(id))
            .bind(s(account))
            .bind(&update.name)
            .bind(&update.version)
            .bind(update.api_type.as_str())
            .bind(&update.base_path)
            .bind(crate::json::targets_to_json(&update.upstream_targets))
            .bind(&update.health_check_url)
            .bind(
                update
                    .execution
                    .as_ref()
                    .map(crate::json::execution_to_json),
            )
            .fetch_optional(&mut *c)
            .await?;
            let api = found(row).and_then(|r| rows::api(&mut Cur::new(&r)))?;
            let gateway_rows = sqlx::query(
                "SELECT DISTINCT e.gateway_id FROM deployments d \
                 JOIN environments e ON e.id = d.environment_id \
                 WHERE d.api_id = $1 AND d.account_id = $2 AND e.gateway_id IS NOT NULL \
                 ORDER BY e.gateway_id",
            )
            .bind(s(id))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            let mut gateway_ids: Vec<GatewayId> = Vec::with_capacity(gateway_rows.len());
            for r in &gateway_rows {
                gateway_ids.push(Cur::new(r).id()?);
            }
            let mut routes = Vec::with_capacity(gateway_ids.len());
            for g in gateway_ids {
                lock_gateway!(c, account, g);
                routes.push(load_routes!(c, account, g));
            }
            check(&api, &routes).map_err(Checked::Rejected)?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(api)
        })
    }

    /// Deletes an API and its deployments.
    pub async fn delete_api(
        &self,
        account: AccountId,
        id: ApiId,
        mut audit: Audit,
    ) -> Result<(), StoreError> {
        audit.default_target("api", id);
        with_tx!(self, |c| {
            let done = sqlx::query("DELETE FROM apis WHERE id = $1 AND account_id = $2")
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

    // ---- deployments ----------------------------------------------------------------

    /// Deploys an API to an environment. `check` runs inside the transaction with the API,
    /// the environment and, when attached, its gateway's current routes (gateway locked);
    /// refusing changes nothing. A second deployment of the same pair is
    /// [`ConflictKind::AlreadyDeployed`](crate::ConflictKind::AlreadyDeployed).
    pub async fn create_deployment<E>(
        &self,
        account: AccountId,
        new: NewDeployment,
        mut audit: Audit,
        check: impl FnOnce(&DeploymentCheck) -> Result<(), E>,
    ) -> Result<Deployment, Checked<E>> {
        let deployment = Deployment {
            id: DeploymentId::new_v7(),
            api_id: new.api_id,
            environment_id: new.environment_id,
            custom_path: new.custom_path,
            status: new.status,
            created_at: audit.at,
        };
        audit.default_target("deployment", deployment.id);
        with_tx!(self, |c| {
            let environment =
                lock_environment_and_gateways!(c, account, deployment.environment_id, None);
            let api_row = sqlx::query(API_BY_ID)
                .bind(s(deployment.api_id))
                .bind(s(account))
                .fetch_optional(&mut *c)
                .await?;
            let api = found(api_row).and_then(|r| rows::api(&mut Cur::new(&r)))?;
            let routes = match environment.gateway_id {
                Some(g) => Some(load_routes!(c, account, g)),
                None => None,
            };
            let input = DeploymentCheck {
                api,
                environment,
                routes,
            };
            check(&input).map_err(Checked::Rejected)?;
            sqlx::query(
                "INSERT INTO deployments (id, account_id, api_id, environment_id, custom_path, \
                 status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(s(deployment.id))
            .bind(s(account))
            .bind(s(deployment.api_id))
            .bind(s(deployment.environment_id))
            .bind(&deployment.custom_path)
            .bind(rows::deployment_status_str(deployment.status))
            .bind(deployment.created_at.0)
            .execute(&mut *c)
            .await?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
        });
        Ok(deployment)
    }

    pub async fn deployment(
        &self,
        account: AccountId,
        id: DeploymentId,
    ) -> Result<Deployment, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                deployment_cols!(),
                " FROM deployments d WHERE d.id = $1 AND d.account_id = $2"
            ))
            .bind(s(id))
            .bind(s(account))
            .fetch_optional(&mut *c)
            .await?;
            found(row).and_then(|r| rows::deployment(&mut Cur::new(&r)))
        })
    }

    /// The deployments in an environment of `account` (empty when it has none or is not
    /// the account's; use [`Store::environment`] first to tell those apart).
    pub async fn deployments_by_environment(
        &self,
        account: AccountId,
        environment: EnvironmentId,
    ) -> Result<Vec<Deployment>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                deployment_cols!(),
                " FROM deployments d WHERE d.environment_id = $1 AND d.account_id = $2 \
                 ORDER BY d.id"
            ))
            .bind(s(environment))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| rows::deployment(&mut Cur::new(r)))
                .collect()
        })
    }

    /// The deployments of an API of `account`.
    pub async fn deployments_by_api(
        &self,
        account: AccountId,
        api: ApiId,
    ) -> Result<Vec<Deployment>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                deployment_cols!(),
                " FROM deployments d WHERE d.api_id = $1 AND d.account_id = $2 ORDER BY d.id"
            ))
            .bind(s(api))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| rows::deployment(&mut Cur::new(r)))
                .collect()
        })
    }

    pub async fn delete_deployment(
        &self,
        account: AccountId,
        id: DeploymentId,
        mut audit: Audit,
    ) -> Result<(), StoreError> {
        audit.default_target("deployment", id);
        with_tx!(self, |c| {
            let done = sqlx::query("DELETE FROM deployments WHERE id = $1 AND account_id = $2")
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
