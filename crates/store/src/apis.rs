//! APIs and their deployments to environments.

use model::*;

use crate::audit::{Audit, AuditResult};
use crate::db::args;
use crate::error::Checked;
use crate::rows::{ApiRow, DeploymentRow, GatewayRefRow, parse_opt_id};
use crate::tx::{
    insert_audit, load_routes, lock_environment_and_gateways, lock_gateway, routes_of,
};
use crate::types::*;
use crate::{Store, StoreError, s};

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
        self.write(move |db| {
            Box::pin(async move {
                db.execute(
                    "INSERT INTO apis (id, account_id, name, version, api_type, base_path, \
                     upstream_targets, health_check_url, execution, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    args![
                        s(api.id),
                        s(account),
                        &api.name,
                        &api.version,
                        api.api_type.as_str(),
                        &api.base_path,
                        crate::json::targets_to_json(&api.upstream_targets),
                        &api.health_check_url,
                        api.execution.as_ref().map(crate::json::execution_to_json),
                        api.created_at,
                    ],
                )
                .await?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(api)
            })
        })
        .await
    }

    pub async fn api(&self, account: AccountId, id: ApiId) -> Result<Api, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                db.fetch_one::<ApiRow>(API_BY_ID, args![s(id), s(account)])
                    .await?
                    .try_into()
            })
        })
        .await
    }

    /// All APIs of `account`, by name then version.
    pub async fn apis(&self, account: AccountId) -> Result<Vec<Api>, StoreError> {
        self.all::<ApiRow, Api>(
            concat!(
                "SELECT ",
                api_cols!(),
                " FROM apis a WHERE a.account_id = $1 \
                         ORDER BY lower(a.name), a.version, a.id"
            ),
            args![s(account)],
        )
        .await
    }

    /// Replaces an API's definition. `check` runs inside the transaction with the updated
    /// API and the current routes of every gateway it is deployed on (those gateways are
    /// locked); refusing changes nothing.
    pub async fn update_api<E: Send>(
        &self,
        account: AccountId,
        id: ApiId,
        update: NewApi,
        mut audit: Audit,
        check: impl FnOnce(&Api, &[GatewayRoutes]) -> Result<(), E> + Send,
    ) -> Result<Api, Checked<E>> {
        audit.default_target("api", id);
        self.write(move |db| {
            Box::pin(async move {
                let api: Api = db
                    .fetch_one::<ApiRow>(
                        concat!(
                            "UPDATE apis AS a SET name = $3, version = $4, api_type = $5, \
                             base_path = $6, upstream_targets = $7, health_check_url = $8, \
                             execution = $9 WHERE a.id = $1 AND a.account_id = $2 RETURNING ",
                            api_cols!(bare)
                        ),
                        args![
                            s(id),
                            s(account),
                            &update.name,
                            &update.version,
                            update.api_type.as_str(),
                            &update.base_path,
                            crate::json::targets_to_json(&update.upstream_targets),
                            &update.health_check_url,
                            update
                                .execution
                                .as_ref()
                                .map(crate::json::execution_to_json),
                        ],
                    )
                    .await?
                    .try_into()?;
                let gateway_rows = db
                    .fetch_all::<GatewayRefRow>(
                        "SELECT DISTINCT e.gateway_id FROM deployments d \
                         JOIN environments e ON e.id = d.environment_id \
                         WHERE d.api_id = $1 AND d.account_id = $2 AND e.gateway_id IS NOT NULL \
                         ORDER BY e.gateway_id",
                        args![s(id), s(account)],
                    )
                    .await?;
                let mut routes = Vec::with_capacity(gateway_rows.len());
                for r in gateway_rows {
                    let Some(g) = parse_opt_id::<GatewayId>(r.gateway_id.as_deref())? else {
                        continue;
                    };
                    lock_gateway(db, account, g).await?;
                    routes.push(load_routes(db, account, g).await?);
                }
                check(&api, &routes).map_err(Checked::Rejected)?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(api)
            })
        })
        .await
    }

    /// Deletes an API and its deployments.
    pub async fn delete_api(
        &self,
        account: AccountId,
        id: ApiId,
        mut audit: Audit,
    ) -> Result<(), StoreError> {
        audit.default_target("api", id);
        self.delete_audited(
            "DELETE FROM apis WHERE id = $1 AND account_id = $2",
            account,
            s(id),
            audit,
        )
        .await
    }

    // ---- deployments ----------------------------------------------------------------

    /// Deploys an API to an environment. `check` runs inside the transaction with the API,
    /// the environment and, when attached, its gateway's current routes (gateway locked);
    /// refusing changes nothing. A second deployment of the same pair is
    /// [`ConflictKind::AlreadyDeployed`](crate::ConflictKind::AlreadyDeployed).
    pub async fn create_deployment<E: Send>(
        &self,
        account: AccountId,
        new: NewDeployment,
        mut audit: Audit,
        check: impl FnOnce(&DeploymentCheck) -> Result<(), E> + Send,
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
        self.write(move |db| {
            Box::pin(async move {
                let environment =
                    lock_environment_and_gateways(db, account, deployment.environment_id, None)
                        .await?;
                let api = db
                    .fetch_one::<ApiRow>(API_BY_ID, args![s(deployment.api_id), s(account)])
                    .await?
                    .try_into()?;
                let routes = routes_of(db, account, environment.gateway_id).await?;
                let input = DeploymentCheck {
                    api,
                    environment,
                    routes,
                };
                check(&input).map_err(Checked::Rejected)?;
                db.execute(
                    "INSERT INTO deployments (id, account_id, api_id, environment_id, \
                     custom_path, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    args![
                        s(deployment.id),
                        s(account),
                        s(deployment.api_id),
                        s(deployment.environment_id),
                        &deployment.custom_path,
                        deployment.status.as_str(),
                        deployment.created_at,
                    ],
                )
                .await?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(deployment)
            })
        })
        .await
    }

    pub async fn deployment(
        &self,
        account: AccountId,
        id: DeploymentId,
    ) -> Result<Deployment, StoreError> {
        self.one::<DeploymentRow, _>(
            concat!(
                "SELECT ",
                deployment_cols!(),
                " FROM deployments d WHERE d.id = $1 AND d.account_id = $2"
            ),
            args![s(id), s(account)],
        )
        .await
    }

    /// The deployments in an environment of `account` (empty when it has none or is not
    /// the account's; use [`Store::environment`] first to tell those apart).
    pub async fn deployments_by_environment(
        &self,
        account: AccountId,
        environment: EnvironmentId,
    ) -> Result<Vec<Deployment>, StoreError> {
        self.all::<DeploymentRow, Deployment>(
            concat!(
                "SELECT ",
                deployment_cols!(),
                " FROM deployments d WHERE d.environment_id = $1 AND d.account_id = $2 \
                         ORDER BY d.id"
            ),
            args![s(environment), s(account)],
        )
        .await
    }

    /// The deployments of an API of `account`.
    pub async fn deployments_by_api(
        &self,
        account: AccountId,
        api: ApiId,
    ) -> Result<Vec<Deployment>, StoreError> {
        self.all::<DeploymentRow, Deployment>(
            concat!(
                "SELECT ",
                deployment_cols!(),
                " FROM deployments d WHERE d.api_id = $1 AND d.account_id = $2 \
                         ORDER BY d.id"
            ),
            args![s(api), s(account)],
        )
        .await
    }

    pub async fn delete_deployment(
        &self,
        account: AccountId,
        id: DeploymentId,
        mut audit: Audit,
    ) -> Result<(), StoreError> {
        audit.default_target("deployment", id);
        self.delete_audited(
            "DELETE FROM deployments WHERE id = $1 AND account_id = $2",
            account,
            s(id),
            audit,
        )
        .await
    }
}
