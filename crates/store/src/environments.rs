//! Environments: naming, classification, URL paths and attachment to a gateway.

use model::*;

use crate::audit::{Audit, AuditResult};
use crate::db::{Db, args};
use crate::error::Checked;
use crate::rows::EnvironmentRow;
use crate::tx::{
    insert_audit, load_routes, lock_environment_and_gateways, require_gateway, routes_of,
};
use crate::types::*;
use crate::{Store, StoreError, s};

/// Runs `sql` (an `UPDATE environments AS e … RETURNING environment_cols!(bare)` with
/// `$1` the id and `$2` the account) and decodes the environment it returns.
async fn update_returning(
    db: &mut Db<'_>,
    sql: &str,
    args: Vec<crate::db::Arg>,
) -> Result<Environment, StoreError> {
    db.fetch_one::<EnvironmentRow>(sql, args).await?.try_into()
}

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
        self.write(move |db| {
            Box::pin(async move {
                db.execute(
                    "INSERT INTO environments (id, account_id, name, classification, gateway_id, \
                     path_rest, path_soap, path_soap12, path_odata, created_at) \
                     VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8, $9)",
                    args![
                        s(env.id),
                        s(account),
                        &env.name,
                        env.classification.as_str(),
                        &env.paths.rest,
                        &env.paths.soap,
                        &env.paths.soap12,
                        &env.paths.odata,
                        env.created_at,
                    ],
                )
                .await?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(env)
            })
        })
        .await
    }

    pub async fn environment(
        &self,
        account: AccountId,
        id: EnvironmentId,
    ) -> Result<Environment, StoreError> {
        self.one::<EnvironmentRow, _>(
            concat!(
                "SELECT ",
                environment_cols!(),
                " FROM environments e WHERE e.id = $1 AND e.account_id = $2"
            ),
            args![s(id), s(account)],
        )
        .await
    }

    /// All environments of `account`, by name (case-insensitive).
    pub async fn environments(&self, account: AccountId) -> Result<Vec<Environment>, StoreError> {
        self.all::<EnvironmentRow, Environment>(
            concat!(
                "SELECT ",
                environment_cols!(),
                " FROM environments e WHERE e.account_id = $1 ORDER BY lower(e.name), e.id"
            ),
            args![s(account)],
        )
        .await
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
        self.write(move |db| {
            Box::pin(async move {
                let env = update_returning(
                    db,
                    concat!(
                        "UPDATE environments AS e SET name = $3, classification = $4 \
                         WHERE e.id = $1 AND e.account_id = $2 RETURNING ",
                        environment_cols!(bare)
                    ),
                    args![s(id), s(account), name, classification.as_str()],
                )
                .await?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(env)
            })
        })
        .await
    }

    /// Replaces the four URL paths of an environment. `check` runs inside the transaction
    /// with the environment as it is now and, when it is attached, its gateway's current
    /// routes (the gateway row is locked, so no concurrent checked change interleaves);
    /// refusing leaves everything unchanged and writes no audit record.
    pub async fn update_environment_paths<E: Send>(
        &self,
        account: AccountId,
        id: EnvironmentId,
        paths: EnvironmentPaths,
        mut audit: Audit,
        check: impl FnOnce(&Environment, Option<&GatewayRoutes>) -> Result<(), E> + Send,
    ) -> Result<Environment, Checked<E>> {
        audit.default_target("environment", id);
        self.write(move |db| {
            Box::pin(async move {
                let current = lock_environment_and_gateways(db, account, id, None).await?;
                let routes = routes_of(db, account, current.gateway_id).await?;
                check(&current, routes.as_ref()).map_err(Checked::Rejected)?;
                let env = update_returning(
                    db,
                    concat!(
                        "UPDATE environments AS e SET path_rest = $3, path_soap = $4, \
                         path_soap12 = $5, path_odata = $6 \
                         WHERE e.id = $1 AND e.account_id = $2 RETURNING ",
                        environment_cols!(bare)
                    ),
                    args![
                        s(id),
                        s(account),
                        &paths.rest,
                        &paths.soap,
                        &paths.soap12,
                        &paths.odata
                    ],
                )
                .await?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(env)
            })
        })
        .await
    }

    /// Attaches an environment to a non-deleted gateway of the account, moves it, or
    /// detaches it (`None`). Meant for the migration flow (SPEC §7) and `switchyard up`.
    /// `check` sees the environment as it is now and the destination's current routes.
    pub async fn set_environment_gateway<E: Send>(
        &self,
        account: AccountId,
        id: EnvironmentId,
        gateway: Option<GatewayId>,
        mut audit: Audit,
        check: impl FnOnce(&Environment, Option<&GatewayRoutes>) -> Result<(), E> + Send,
    ) -> Result<Environment, Checked<E>> {
        audit.default_target("environment", id);
        self.write(move |db| {
            Box::pin(async move {
                let current = lock_environment_and_gateways(db, account, id, gateway).await?;
                let routes = routes_of(db, account, gateway).await?;
                check(&current, routes.as_ref()).map_err(Checked::Rejected)?;
                let env = update_returning(
                    db,
                    concat!(
                        "UPDATE environments AS e SET gateway_id = $3 \
                         WHERE e.id = $1 AND e.account_id = $2 RETURNING ",
                        environment_cols!(bare)
                    ),
                    args![s(id), s(account), gateway.map(s)],
                )
                .await?;
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
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(env)
            })
        })
        .await
    }

    /// Deletes an environment and its deployments.
    pub async fn delete_environment(
        &self,
        account: AccountId,
        id: EnvironmentId,
        mut audit: Audit,
    ) -> Result<(), StoreError> {
        audit.default_target("environment", id);
        self.delete_audited(
            "DELETE FROM environments WHERE id = $1 AND account_id = $2",
            account,
            s(id),
            audit,
        )
        .await
    }

    /// The routing state of a gateway of `account`: attached environments and their
    /// deployments with APIs. Input of the path rules outside a change (e.g. display).
    pub async fn gateway_routes(
        &self,
        account: AccountId,
        gateway: GatewayId,
    ) -> Result<GatewayRoutes, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                require_gateway(db, account, gateway).await?;
                load_routes(db, account, gateway).await
            })
        })
        .await
    }
}
