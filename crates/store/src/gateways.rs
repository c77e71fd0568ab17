//! Gateways: create, read, list, rename, update and soft delete (the status the platform
//! records for them is in `gateway_status.rs`, what is published to them in `link.rs`).

use model::*;

use crate::audit::{Audit, AuditResult};
use crate::db::{Arg, Db, args};
use crate::rows::{GatewayDbRow, IdRow};
use crate::tx::insert_audit;
use crate::types::*;
use crate::{Store, StoreError, s};

/// Runs `sql` (an `UPDATE gateways AS g … RETURNING gateway_cols!(bare)`) and decodes the
/// gateway it returns; `NotFound` when no row matched.
async fn update_returning(
    db: &mut Db<'_>,
    sql: &str,
    args: Vec<Arg>,
) -> Result<Gateway, StoreError> {
    db.fetch_one::<GatewayDbRow>(sql, args).await?.try_into()
}

impl Store {
    pub async fn create_gateway(
        &self,
        account: AccountId,
        new: NewGateway,
        mut audit: Audit,
    ) -> Result<Gateway, StoreError> {
        let gateway = Gateway {
            id: GatewayId::new_v7(),
            account_id: account,
            name: new.name,
            public_url: new.public_url,
            bind_address: new.bind_address,
            settings: new.settings,
            created_at: audit.at,
            deleted_at: None,
        };
        audit.default_target("gateway", gateway.id);
        self.write(move |db| {
            Box::pin(async move {
                db.execute(
                    "INSERT INTO gateways (id, account_id, name, public_url, bind_address, \
                     settings, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    args![
                        s(gateway.id),
                        s(account),
                        &gateway.name,
                        &gateway.public_url,
                        &gateway.bind_address,
                        crate::json::settings_to_json(&gateway.settings),
                        gateway.created_at,
                    ],
                )
                .await?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(gateway)
            })
        })
        .await
    }

    /// A gateway of `account`, deleted or not (check `deleted_at`).
    pub async fn gateway(&self, account: AccountId, id: GatewayId) -> Result<Gateway, StoreError> {
        self.one::<GatewayDbRow, _>(
            concat!(
                "SELECT ",
                gateway_cols!(),
                " FROM gateways g WHERE g.id = $1 AND g.account_id = $2"
            ),
            args![s(id), s(account)],
        )
        .await
    }

    /// The non-deleted gateway of `account` with this name (case-insensitive).
    pub async fn gateway_by_name(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Option<Gateway>, StoreError> {
        self.optional::<GatewayDbRow, Gateway>(
            concat!(
                "SELECT ",
                gateway_cols!(),
                " FROM gateways g WHERE g.account_id = $1 AND lower(g.name) = lower($2) \
                         AND g.deleted_at IS NULL"
            ),
            args![s(account), name],
        )
        .await
    }

    /// The gateways of `account` in `view`, by name.
    pub async fn gateways(
        &self,
        account: AccountId,
        view: GatewayView,
    ) -> Result<Vec<Gateway>, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                let mut cache = crate::rows::SettingsCache::default();
                db.fetch_all::<GatewayDbRow>(
                    concat!(
                        "SELECT ",
                        gateway_cols!(),
                        " FROM gateways g WHERE g.account_id = $1 AND (g.deleted_at IS NULL) = $2 \
                         ORDER BY lower(g.name), g.id"
                    ),
                    args![s(account), view == GatewayView::Enabled],
                )
                .await?
                .into_iter()
                .map(|r| r.into_model(&mut cache).map(|(g, _)| g))
                .collect()
            })
        })
        .await
    }

    /// Renames a non-deleted gateway.
    pub async fn rename_gateway(
        &self,
        account: AccountId,
        id: GatewayId,
        name: &str,
        mut audit: Audit,
    ) -> Result<Gateway, StoreError> {
        audit.default_target("gateway", id);
        self.write(move |db| {
            Box::pin(async move {
                let gateway = update_returning(
                    db,
                    concat!(
                        "UPDATE gateways AS g SET name = $3 \
                         WHERE g.id = $1 AND g.account_id = $2 AND g.deleted_at IS NULL \
                         RETURNING ",
                        gateway_cols!(bare)
                    ),
                    args![s(id), s(account), name],
                )
                .await?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(gateway)
            })
        })
        .await
    }

    /// Replaces the location and settings of a non-deleted gateway.
    pub async fn update_gateway(
        &self,
        account: AccountId,
        id: GatewayId,
        update: GatewayUpdate,
        mut audit: Audit,
    ) -> Result<Gateway, StoreError> {
        audit.default_target("gateway", id);
        self.write(move |db| {
            Box::pin(async move {
                let gateway = update_returning(
                    db,
                    concat!(
                        "UPDATE gateways AS g SET public_url = $3, bind_address = $4, \
                         settings = $5 \
                         WHERE g.id = $1 AND g.account_id = $2 AND g.deleted_at IS NULL \
                         RETURNING ",
                        gateway_cols!(bare)
                    ),
                    args![
                        s(id),
                        s(account),
                        &update.public_url,
                        &update.bind_address,
                        crate::json::settings_to_json(&update.settings),
                    ],
                )
                .await?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(gateway)
            })
        })
        .await
    }

    /// Soft-deletes a gateway. In the same transaction its environments become unattached,
    /// its node credentials are revoked, its issues are cleared and its status becomes
    /// `deleted`. The audit details gain `detached_environments`. Deleting a deleted
    /// gateway is `NotFound`: deleted gateways are never restored or changed.
    pub async fn delete_gateway(
        &self,
        account: AccountId,
        id: GatewayId,
        mut audit: Audit,
    ) -> Result<Gateway, StoreError> {
        audit.default_target("gateway", id);
        let at = audit.at;
        self.write(move |db| {
            Box::pin(async move {
                let gateway = update_returning(
                    db,
                    concat!(
                        "UPDATE gateways AS g SET deleted_at = $3, status_state = 'deleted', \
                         status_variant = NULL, status_since = $3 \
                         WHERE g.id = $1 AND g.account_id = $2 AND g.deleted_at IS NULL \
                         RETURNING ",
                        gateway_cols!(bare)
                    ),
                    args![s(id), s(account), at],
                )
                .await?;
                let detached = db
                    .fetch_all::<IdRow>(
                        "UPDATE environments SET gateway_id = NULL \
                         WHERE gateway_id = $1 AND account_id = $2 RETURNING id",
                        args![s(id), s(account)],
                    )
                    .await?;
                db.execute(
                    "UPDATE node_credentials SET revoked_at = $3 \
                     WHERE gateway_id = $1 AND account_id = $2 AND revoked_at IS NULL",
                    args![s(id), s(account), at],
                )
                .await?;
                db.execute(
                    "UPDATE issues SET cleared_at = $3 \
                     WHERE gateway_id = $1 AND account_id = $2 AND cleared_at IS NULL",
                    args![s(id), s(account), at],
                )
                .await?;
                db.execute(
                    "INSERT INTO gateway_status_history (id, account_id, gateway_id, state, \
                     variant, at) VALUES ($1, $2, $3, 'deleted', NULL, $4)",
                    args![s(IssueId::new_v7()), s(account), s(id), at],
                )
                .await?;
                audit.add_detail(
                    "detached_environments",
                    detached
                        .into_iter()
                        .map(|r| serde_json::Value::String(r.id))
                        .collect(),
                );
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(gateway)
            })
        })
        .await
    }
}
