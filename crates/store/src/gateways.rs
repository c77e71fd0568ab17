//! Gateways: create, read, rename, update, soft delete, and the status the platform
//! records for them (with history).

use model::status::GatewayStatus;
use model::*;

use crate::audit::{Audit, AuditResult};
use crate::rows::{self, Cur};
use crate::types::*;
use crate::{Store, StoreError, found, insert_audit, s, with_conn, with_tx};

const GATEWAY_BY_ID: &str = concat!(
    "SELECT ",
    gateway_cols!(),
    " FROM gateways g WHERE g.id = $1 AND g.account_id = $2"
);

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
        with_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO gateways (id, account_id, name, public_url, bind_address, settings, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(s(gateway.id))
            .bind(s(account))
            .bind(&gateway.name)
            .bind(&gateway.public_url)
            .bind(&gateway.bind_address)
            .bind(crate::json::settings_to_json(&gateway.settings))
            .bind(gateway.created_at.0)
            .execute(&mut *c)
            .await?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
        });
        Ok(gateway)
    }

    /// A gateway of `account`, deleted or not (check `deleted_at`).
    pub async fn gateway(&self, account: AccountId, id: GatewayId) -> Result<Gateway, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(GATEWAY_BY_ID)
                .bind(s(id))
                .bind(s(account))
                .fetch_optional(&mut *c)
                .await?;
            found(row).and_then(|r| rows::gateway(&mut Cur::new(&r)).map(|(g, _)| g))
        })
    }

    /// The non-deleted gateway of `account` with this name (case-insensitive).
    pub async fn gateway_by_name(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Option<Gateway>, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                gateway_cols!(),
                " FROM gateways g WHERE g.account_id = $1 AND lower(g.name) = lower($2) \
                 AND g.deleted_at IS NULL"
            ))
            .bind(s(account))
            .bind(name)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|r| rows::gateway(&mut Cur::new(&r)).map(|(g, _)| g))
                .transpose()
        })
    }

    /// The gateways of `account` in `view`, by name.
    pub async fn gateways(
        &self,
        account: AccountId,
        view: GatewayView,
    ) -> Result<Vec<Gateway>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                gateway_cols!(),
                " FROM gateways g WHERE g.account_id = $1 AND (g.deleted_at IS NULL) = $2 \
                 ORDER BY lower(g.name), g.id"
            ))
            .bind(s(account))
            .bind(view == GatewayView::Enabled)
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| rows::gateway(&mut Cur::new(r)).map(|(g, _)| g))
                .collect()
        })
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
        with_tx!(self, |c| {
            let row = sqlx::query(concat!(
                "UPDATE gateways AS g SET name = $3 \
                 WHERE g.id = $1 AND g.account_id = $2 AND g.deleted_at IS NULL RETURNING ",
                gateway_cols!(bare)
            ))
            .bind(s(id))
            .bind(s(account))
            .bind(name)
            .fetch_optional(&mut *c)
            .await?;
            let (gateway, _) = found(row).and_then(|r| rows::gateway(&mut Cur::new(&r)))?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(gateway)
        })
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
        with_tx!(self, |c| {
            let row = sqlx::query(concat!(
                "UPDATE gateways AS g SET public_url = $3, bind_address = $4, settings = $5 \
                 WHERE g.id = $1 AND g.account_id = $2 AND g.deleted_at IS NULL RETURNING ",
                gateway_cols!(bare)
            ))
            .bind(s(id))
            .bind(s(account))
            .bind(&update.public_url)
            .bind(&update.bind_address)
            .bind(crate::json::settings_to_json(&update.settings))
            .fetch_optional(&mut *c)
            .await?;
            let (gateway, _) = found(row).and_then(|r| rows::gateway(&mut Cur::new(&r)))?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(gateway)
        })
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
        let at = audit.at.0;
        with_tx!(self, |c| {
            let row = sqlx::query(concat!(
                "UPDATE gateways AS g SET deleted_at = $3, status_state = 'deleted', \
                 status_variant = NULL, status_since = $3 \
                 WHERE g.id = $1 AND g.account_id = $2 AND g.deleted_at IS NULL RETURNING ",
                gateway_cols!(bare)
            ))
            .bind(s(id))
            .bind(s(account))
            .bind(at)
            .fetch_optional(&mut *c)
            .await?;
            let (gateway, _) = found(row).and_then(|r| rows::gateway(&mut Cur::new(&r)))?;
            let detached = sqlx::query(
                "UPDATE environments SET gateway_id = NULL \
                 WHERE gateway_id = $1 AND account_id = $2 RETURNING id",
            )
            .bind(s(id))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            let mut detached_ids = Vec::with_capacity(detached.len());
            for r in &detached {
                detached_ids.push(serde_json::Value::String(Cur::new(r).text()?));
            }
            sqlx::query(
                "UPDATE node_credentials SET revoked_at = $3 \
                 WHERE gateway_id = $1 AND account_id = $2 AND revoked_at IS NULL",
            )
            .bind(s(id))
            .bind(s(account))
            .bind(at)
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "UPDATE issues SET cleared_at = $3 \
                 WHERE gateway_id = $1 AND account_id = $2 AND cleared_at IS NULL",
            )
            .bind(s(id))
            .bind(s(account))
            .bind(at)
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "INSERT INTO gateway_status_history (id, account_id, gateway_id, state, variant, at) \
                 VALUES ($1, $2, $3, 'deleted', NULL, $4)",
            )
            .bind(s(IssueId::new_v7()))
            .bind(s(account))
            .bind(s(id))
            .bind(at)
            .execute(&mut *c)
            .await?;
            audit.add_detail(
                "detached_environments",
                serde_json::Value::Array(detached_ids),
            );
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(gateway)
        })
    }

    /// Records the gateway status the platform evaluated. Writes history only on a change
    /// of state or variant; answers whether it changed. Deleted gateways keep `deleted`.
    pub async fn set_gateway_status(
        &self,
        account: AccountId,
        id: GatewayId,
        status: GatewayStatus,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let state = status.state.as_str();
        let variant = status.variant.map(|v| v.as_str());
        with_tx!(self, |c| {
            let row = sqlx::query(
                "UPDATE gateways SET status_state = $3, status_variant = $4, status_since = $5 \
                 WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL \
                 AND (status_state IS NULL OR status_state <> $3 \
                      OR COALESCE(status_variant, '') <> COALESCE($4, '')) \
                 RETURNING id",
            )
            .bind(s(id))
            .bind(s(account))
            .bind(state)
            .bind(variant)
            .bind(at.0)
            .fetch_optional(&mut *c)
            .await?;
            if row.is_none() {
                // Unchanged, or not a live gateway of this account: tell them apart.
                let exists = sqlx::query(
                    "SELECT id FROM gateways WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
                )
                .bind(s(id))
                .bind(s(account))
                .fetch_optional(&mut *c)
                .await?;
                found(exists)?;
                Ok(false)
            } else {
                sqlx::query(
                    "INSERT INTO gateway_status_history (id, account_id, gateway_id, state, \
                     variant, at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(s(IssueId::new_v7()))
                .bind(s(account))
                .bind(s(id))
                .bind(state)
                .bind(variant)
                .bind(at.0)
                .execute(&mut *c)
                .await?;
                Ok(true)
            }
        })
    }

    /// The status history of a gateway, newest first, at most `limit` entries.
    pub async fn gateway_status_history(
        &self,
        account: AccountId,
        id: GatewayId,
        limit: u32,
    ) -> Result<Vec<RecordedStatus>, StoreError> {
        self.gateway(account, id).await?;
        with_conn!(self, |c| {
            let rows = sqlx::query(
                "SELECT state, variant, at FROM gateway_status_history \
                 WHERE gateway_id = $1 AND account_id = $2 ORDER BY at DESC, id DESC LIMIT $3",
            )
            .bind(s(id))
            .bind(s(account))
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| {
                    let mut cur = Cur::new(r);
                    let state = cur.text()?;
                    let variant = cur.opt_text()?;
                    rows::recorded_status(&state, variant.as_deref(), cur.ts()?)
                })
                .collect()
        })
    }
}
