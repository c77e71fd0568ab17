//! Gateways (with soft delete and the Gateways page overview), install tokens, node
//! credentials, nodes, issues, status and configuration generations.

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
    // ---- gateways -------------------------------------------------------------------

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
        self.gateway_with_status(account, id).await.map(|(g, _)| g)
    }

    /// A gateway of `account` with its current status.
    pub async fn gateway_with_status(
        &self,
        account: AccountId,
        id: GatewayId,
    ) -> Result<(Gateway, Option<RecordedStatus>), StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(GATEWAY_BY_ID)
                .bind(s(id))
                .bind(s(account))
                .fetch_optional(&mut *c)
                .await?;
            found(row).and_then(|r| rows::gateway(&mut Cur::new(&r)))
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

    /// Increments and returns the configuration generation of a non-deleted gateway.
    /// Atomic on both backends, so concurrent bumps never hand out the same number.
    pub async fn bump_generation(
        &self,
        account: AccountId,
        id: GatewayId,
    ) -> Result<u64, StoreError> {
        with_tx!(self, |c| {
            let row = sqlx::query(
                "UPDATE gateways SET config_generation = config_generation + 1 \
                 WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL \
                 RETURNING config_generation",
            )
            .bind(s(id))
            .bind(s(account))
            .fetch_optional(&mut *c)
            .await?;
            let r = found(row)?;
            Cur::new(&r).opt_u64()?.ok_or(StoreError::NotFound)
        })
    }

    /// The current configuration generation of a gateway (0 before the first bump).
    pub async fn generation(&self, account: AccountId, id: GatewayId) -> Result<u64, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(
                "SELECT config_generation FROM gateways WHERE id = $1 AND account_id = $2",
            )
            .bind(s(id))
            .bind(s(account))
            .fetch_optional(&mut *c)
            .await?;
            let r = found(row)?;
            Cur::new(&r).opt_u64()?.ok_or(StoreError::NotFound)
        })
    }

    // ---- install tokens and node credentials ----------------------------------------

    pub async fn create_install_token(
        &self,
        account: AccountId,
        new: NewInstallToken,
        mut audit: Audit,
    ) -> Result<InstallToken, StoreError> {
        let token = InstallToken {
            id: InstallTokenId::new_v7(),
            account_id: account,
            created_by: new.created_by,
            created_at: audit.at,
            expires_at: new.expires_at,
            revoked_at: None,
        };
        audit.default_target("install_token", token.id);
        with_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO install_tokens (id, account_id, token_hash, created_by, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(s(token.id))
            .bind(s(account))
            .bind(&new.hash)
            .bind(token.created_by.map(s))
            .bind(token.created_at.0)
            .bind(token.expires_at.0)
            .execute(&mut *c)
            .await?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
        });
        Ok(token)
    }

    /// The install token with this hash if it is neither revoked nor expired at `now`.
    pub async fn find_install_token(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<InstallToken>, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                install_token_cols!(),
                " FROM install_tokens it WHERE it.token_hash = $1 AND it.revoked_at IS NULL \
                 AND it.expires_at > $2"
            ))
            .bind(hash)
            .bind(now.0)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|r| rows::install_token(&mut Cur::new(&r)))
                .transpose()
        })
    }

    /// The install tokens of `account`, newest first, revoked and expired ones included.
    pub async fn install_tokens(
        &self,
        account: AccountId,
    ) -> Result<Vec<InstallToken>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                install_token_cols!(),
                " FROM install_tokens it WHERE it.account_id = $1 \
                 ORDER BY it.created_at DESC, it.id DESC"
            ))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| rows::install_token(&mut Cur::new(r)))
                .collect()
        })
    }

    /// Revokes an install token of `account`.
    pub async fn revoke_install_token(
        &self,
        account: AccountId,
        id: InstallTokenId,
        mut audit: Audit,
    ) -> Result<InstallToken, StoreError> {
        audit.default_target("install_token", id);
        with_tx!(self, |c| {
            let row = sqlx::query(concat!(
                "UPDATE install_tokens AS it SET revoked_at = COALESCE(it.revoked_at, $3) \
                 WHERE it.id = $1 AND it.account_id = $2 RETURNING ",
                install_token_cols!(bare)
            ))
            .bind(s(id))
            .bind(s(account))
            .bind(audit.at.0)
            .fetch_optional(&mut *c)
            .await?;
            let token = found(row).and_then(|r| rows::install_token(&mut Cur::new(&r)))?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(token)
        })
    }

    /// Issues a credential for a node of a non-deleted gateway of `account`.
    pub async fn create_node_credential(
        &self,
        account: AccountId,
        gateway: GatewayId,
        node: Option<NodeId>,
        hash: &str,
        mut audit: Audit,
    ) -> Result<NodeCredential, StoreError> {
        let cred = NodeCredential {
            id: TokenId::new_v7(),
            account_id: account,
            gateway_id: gateway,
            node_id: node,
            created_at: audit.at,
            revoked_at: None,
        };
        audit.default_target("node_credential", cred.id);
        with_tx!(self, |c| {
            let live = sqlx::query(
                "SELECT id FROM gateways WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
            )
            .bind(s(gateway))
            .bind(s(account))
            .fetch_optional(&mut *c)
            .await?;
            found(live)?;
            sqlx::query(
                "INSERT INTO node_credentials (id, account_id, gateway_id, node_id, token_hash, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(s(cred.id))
            .bind(s(account))
            .bind(s(gateway))
            .bind(node.map(s))
            .bind(hash)
            .bind(cred.created_at.0)
            .execute(&mut *c)
            .await?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
        });
        Ok(cred)
    }

    /// The unrevoked credential with this hash whose gateway is not deleted.
    pub async fn find_node_credential(
        &self,
        hash: &str,
    ) -> Result<Option<NodeCredential>, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                credential_cols!(),
                " FROM node_credentials nc JOIN gateways g ON g.id = nc.gateway_id \
                 WHERE nc.token_hash = $1 AND nc.revoked_at IS NULL AND g.deleted_at IS NULL"
            ))
            .bind(hash)
            .fetch_optional(&mut *c)
            .await?;
            row.map(|r| rows::credential(&mut Cur::new(&r))).transpose()
        })
    }

    /// The credentials of a gateway, revoked ones included.
    pub async fn node_credentials(
        &self,
        account: AccountId,
        gateway: GatewayId,
    ) -> Result<Vec<NodeCredential>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                credential_cols!(),
                " FROM node_credentials nc WHERE nc.gateway_id = $1 AND nc.account_id = $2 \
                 ORDER BY nc.id"
            ))
            .bind(s(gateway))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| rows::credential(&mut Cur::new(r)))
                .collect()
        })
    }

    pub async fn revoke_node_credential(
        &self,
        account: AccountId,
        id: TokenId,
        mut audit: Audit,
    ) -> Result<NodeCredential, StoreError> {
        audit.default_target("node_credential", id);
        with_tx!(self, |c| {
            let row = sqlx::query(concat!(
                "UPDATE node_credentials AS nc SET revoked_at = COALESCE(nc.revoked_at, $3) \
                 WHERE nc.id = $1 AND nc.account_id = $2 RETURNING ",
                credential_cols!(bare)
            ))
            .bind(s(id))
            .bind(s(account))
            .bind(audit.at.0)
            .fetch_optional(&mut *c)
            .await?;
            let cred = found(row).and_then(|r| rows::credential(&mut Cur::new(&r)))?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok(cred)
        })
    }

    // ---- nodes ----------------------------------------------------------------------

    /// Registers a node that joins a non-deleted gateway of `account` and issues its
    /// credential (stored as `hash`), with the audit record, in one transaction. A node id
    /// that is already registered (in any gateway of any account) is refused by the insert
    /// itself with [`Conflict::NodeId`](crate::Conflict::NodeId): a join never moves a
    /// node, and two joins racing for one id cannot both win.
    pub async fn join_node(
        &self,
        account: AccountId,
        node: &Node,
        hash: &str,
        mut audit: Audit,
    ) -> Result<(Node, NodeCredential), StoreError> {
        let cred = NodeCredential {
            id: TokenId::new_v7(),
            account_id: account,
            gateway_id: node.gateway_id,
            node_id: Some(node.id),
            created_at: audit.at,
            revoked_at: None,
        };
        audit.default_target("node", node.id);
        with_tx!(self, |c| {
            let live = sqlx::query(
                "SELECT id FROM gateways WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
            )
            .bind(s(node.gateway_id))
            .bind(s(account))
            .fetch_optional(&mut *c)
            .await?;
            found(live)?;
            let row = sqlx::query(concat!(
                "INSERT INTO nodes (id, account_id, gateway_id, host_name, address, version, \
                 joined_at, last_seen, applied_generation) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (id) DO NOTHING RETURNING ",
                node_cols!(bare)
            ))
            .bind(s(node.id))
            .bind(s(account))
            .bind(s(node.gateway_id))
            .bind(&node.host_name)
            .bind(&node.address)
            .bind(&node.version)
            .bind(node.joined_at.0)
            .bind(node.last_seen.map(|t| t.0))
            .bind(
                node.applied_generation
                    .map(|g| i64::try_from(g).unwrap_or(i64::MAX)),
            )
            .fetch_optional(&mut *c)
            .await?;
            let Some(row) = row else {
                return Err(StoreError::Conflict {
                    what: crate::Conflict::NodeId,
                });
            };
            let (node, _) = rows::node(&mut Cur::new(&row))?;
            sqlx::query(
                "INSERT INTO node_credentials (id, account_id, gateway_id, node_id, token_hash, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(s(cred.id))
            .bind(s(account))
            .bind(s(cred.gateway_id))
            .bind(s(node.id))
            .bind(hash)
            .bind(cred.created_at.0)
            .execute(&mut *c)
            .await?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
            Ok((node, cred))
        })
    }

    /// Whether a node id is registered (in any gateway of any account). Only a courtesy
    /// before [`Store::join_node`], so a join that will be refused creates no gateway; the
    /// insert in `join_node` is what decides.
    pub async fn node_registered(&self, node: NodeId) -> Result<bool, StoreError> {
        with_conn!(self, |c| {
            let row = sqlx::query("SELECT id FROM nodes WHERE id = $1")
                .bind(s(node))
                .fetch_optional(&mut *c)
                .await?;
            Ok(row.is_some())
        })
    }

    /// Inserts or updates a node of a non-deleted gateway of `account` (a node's link
    /// start). `joined_at` of an existing node is kept. A node id registered in another
    /// gateway (of this account or another) is a [`Conflict::NodeId`](crate::Conflict::NodeId):
    /// a node never moves between gateways.
    pub async fn upsert_node(&self, account: AccountId, node: &Node) -> Result<Node, StoreError> {
        with_tx!(self, |c| {
            let live = sqlx::query(
                "SELECT id FROM gateways WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
            )
            .bind(s(node.gateway_id))
            .bind(s(account))
            .fetch_optional(&mut *c)
            .await?;
            found(live)?;
            let row = sqlx::query(concat!(
                "INSERT INTO nodes AS n (id, account_id, gateway_id, host_name, address, version, \
                 joined_at, last_seen, applied_generation) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (id) DO UPDATE SET \
                 host_name = excluded.host_name, address = excluded.address, \
                 version = excluded.version, \
                 last_seen = COALESCE(excluded.last_seen, n.last_seen), \
                 applied_generation = COALESCE(excluded.applied_generation, n.applied_generation) \
                 WHERE n.account_id = excluded.account_id AND n.gateway_id = excluded.gateway_id \
                 RETURNING ",
                node_cols!(bare)
            ))
            .bind(s(node.id))
            .bind(s(account))
            .bind(s(node.gateway_id))
            .bind(&node.host_name)
            .bind(&node.address)
            .bind(&node.version)
            .bind(node.joined_at.0)
            .bind(node.last_seen.map(|t| t.0))
            .bind(
                node.applied_generation
                    .map(|g| i64::try_from(g).unwrap_or(i64::MAX)),
            )
            .fetch_optional(&mut *c)
            .await?;
            match row {
                None => Err(StoreError::Conflict {
                    what: crate::Conflict::NodeId,
                }),
                Some(r) => rows::node(&mut Cur::new(&r)).map(|(n, _)| n),
            }
        })
    }

    /// Records what a node reported: its state, when, and its applied generation.
    pub async fn record_node_report(
        &self,
        account: AccountId,
        node: NodeId,
        report: &NodeReport,
    ) -> Result<(), StoreError> {
        with_conn!(self, |c| {
            let done = sqlx::query(
                "UPDATE nodes SET reported_state = $3, reported_at = $4, last_seen = $4, \
                 applied_generation = COALESCE($5, applied_generation) \
                 WHERE id = $1 AND account_id = $2",
            )
            .bind(s(node))
            .bind(s(account))
            .bind(report.state.as_str())
            .bind(report.at.0)
            .bind(
                report
                    .applied_generation
                    .map(|g| i64::try_from(g).unwrap_or(i64::MAX)),
            )
            .execute(&mut *c)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
        });
        Ok(())
    }

    /// The nodes of a gateway, oldest first, with the state each reported last.
    pub async fn nodes(
        &self,
        account: AccountId,
        gateway: GatewayId,
    ) -> Result<Vec<(Node, Option<model::status::ReportedState>)>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                node_cols!(),
                " FROM nodes n WHERE n.gateway_id = $1 AND n.account_id = $2 \
                 ORDER BY n.joined_at, n.id"
            ))
            .bind(s(gateway))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            rows.iter().map(|r| rows::node(&mut Cur::new(r))).collect()
        })
    }

    /// Removes a node record (the Cluster Status panel's action for an offline node) and
    /// revokes its credentials, so its id can join again and the old credential cannot link.
    pub async fn remove_node(
        &self,
        account: AccountId,
        node: NodeId,
        mut audit: Audit,
    ) -> Result<(), StoreError> {
        audit.default_target("node", node);
        with_tx!(self, |c| {
            let done = sqlx::query("DELETE FROM nodes WHERE id = $1 AND account_id = $2")
                .bind(s(node))
                .bind(s(account))
                .execute(&mut *c)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(
                "UPDATE node_credentials SET revoked_at = $3 \
                 WHERE node_id = $1 AND account_id = $2 AND revoked_at IS NULL",
            )
            .bind(s(node))
            .bind(s(account))
            .bind(audit.at.0)
            .execute(&mut *c)
            .await?;
            insert_audit!(c, Some(account), &audit, AuditResult::Allowed);
        });
        Ok(())
    }

    /// Stores the start-up properties a node reported (free JSON, SPEC §5) and when.
    pub async fn set_node_startup_properties(
        &self,
        account: AccountId,
        node: NodeId,
        properties: &serde_json::Value,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        with_conn!(self, |c| {
            let done = sqlx::query(
                "UPDATE nodes SET startup_properties = $3, startup_reported_at = $4 \
                 WHERE id = $1 AND account_id = $2",
            )
            .bind(s(node))
            .bind(s(account))
            .bind(properties.to_string())
            .bind(at.0)
            .execute(&mut *c)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
        });
        Ok(())
    }

    /// The start-up properties of a gateway's nodes that reported them, oldest node first.
    pub async fn startup_properties(
        &self,
        account: AccountId,
        gateway: GatewayId,
    ) -> Result<Vec<StartupProperties>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(
                "SELECT id, startup_properties, startup_reported_at FROM nodes \
                 WHERE gateway_id = $1 AND account_id = $2 AND startup_properties IS NOT NULL \
                 AND startup_reported_at IS NOT NULL ORDER BY joined_at, id",
            )
            .bind(s(gateway))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| {
                    let mut cur = Cur::new(r);
                    Ok(StartupProperties {
                        node_id: cur.id()?,
                        properties: cur.json()?,
                        reported_at: cur.ts()?,
                    })
                })
                .collect()
        })
    }

    /// Every live gateway of every account with its nodes, in two queries: the input of
    /// the platform's status job (which is not scoped to one account).
    pub async fn live_gateways_with_nodes(&self) -> Result<Vec<GatewayNodes>, StoreError> {
        with_conn!(self, |c| {
            let gateway_rows = sqlx::query(concat!(
                "SELECT ",
                gateway_cols!(),
                " FROM gateways g WHERE g.deleted_at IS NULL ORDER BY g.id"
            ))
            .fetch_all(&mut *c)
            .await?;
            let node_rows = sqlx::query(concat!(
                "SELECT ",
                node_cols!(),
                " FROM nodes n JOIN gateways g ON g.id = n.gateway_id \
                 WHERE g.deleted_at IS NULL ORDER BY n.joined_at, n.id"
            ))
            .fetch_all(&mut *c)
            .await?;
            let mut cache = rows::SettingsCache::default();
            let mut out = Vec::with_capacity(gateway_rows.len());
            let mut index = std::collections::HashMap::with_capacity(gateway_rows.len());
            for r in &gateway_rows {
                let (gateway, status) = rows::gateway_cached(&mut Cur::new(r), &mut cache)?;
                index.insert(gateway.id, out.len());
                out.push(GatewayNodes {
                    gateway,
                    status,
                    nodes: Vec::new(),
                });
            }
            for r in &node_rows {
                let (node, state) = rows::node(&mut Cur::new(r))?;
                if let Some(&i) = index.get(&node.gateway_id) {
                    out[i].nodes.push((node, state));
                }
            }
            Ok(out)
        })
    }

    // ---- issues ---------------------------------------------------------------------

    /// Raises an issue on a non-deleted gateway, or refreshes the active one with the same
    /// gateway, node and code (message, severity, details and last_seen are updated).
    pub async fn raise_issue(
        &self,
        account: AccountId,
        new: NewIssue,
        now: Timestamp,
    ) -> Result<IssueRecord, StoreError> {
        with_tx!(self, |c| {
            let live = sqlx::query(
                "SELECT id FROM gateways WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
            )
            .bind(s(new.gateway_id))
            .bind(s(account))
            .fetch_optional(&mut *c)
            .await?;
            found(live)?;
            let details = new.details.to_string();
            let updated = sqlx::query(concat!(
                "UPDATE issues AS i SET severity = $5, message = $6, details = $7, last_seen = $8 \
                 WHERE i.gateway_id = $1 AND i.account_id = $2 AND i.code = $3 \
                 AND COALESCE(i.node_id, '') = COALESCE($4, '') AND i.cleared_at IS NULL \
                 RETURNING ",
                issue_cols!(bare)
            ))
            .bind(s(new.gateway_id))
            .bind(s(account))
            .bind(&new.code)
            .bind(new.node_id.map(s))
            .bind(new.severity.as_str())
            .bind(&new.message)
            .bind(&details)
            .bind(now.0)
            .fetch_optional(&mut *c)
            .await?;
            match updated {
                Some(r) => rows::issue(&mut Cur::new(&r)),
                None => {
                    let issue = IssueRecord {
                        id: IssueId::new_v7(),
                        gateway_id: new.gateway_id,
                        node_id: new.node_id,
                        code: new.code,
                        severity: new.severity,
                        message: new.message,
                        details: new.details,
                        first_seen: now,
                        last_seen: now,
                        cleared_at: None,
                    };
                    sqlx::query(
                "INSERT INTO issues (id, account_id, gateway_id, node_id, code, severity, message, \
                 details, first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            )
            .bind(s(issue.id))
            .bind(s(account))
            .bind(s(issue.gateway_id))
            .bind(issue.node_id.map(s))
            .bind(&issue.code)
            .bind(issue.severity.as_str())
            .bind(&issue.message)
            .bind(&details)
            .bind(now.0)
            .execute(&mut *c)
            .await?;
                    Ok(issue)
                }
            }
        })
    }

    /// Clears the active issue with this gateway, node and code; answers whether one was.
    pub async fn clear_issue(
        &self,
        account: AccountId,
        gateway: GatewayId,
        node: Option<NodeId>,
        code: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        with_conn!(self, |c| {
            let done = sqlx::query(
                "UPDATE issues SET cleared_at = $5 WHERE gateway_id = $1 AND account_id = $2 \
                 AND code = $3 AND COALESCE(node_id, '') = COALESCE($4, '') AND cleared_at IS NULL",
            )
            .bind(s(gateway))
            .bind(s(account))
            .bind(code)
            .bind(node.map(s))
            .bind(now.0)
            .execute(&mut *c)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// The active issues of a gateway, errors first; none for a deleted gateway.
    pub async fn issues(
        &self,
        account: AccountId,
        gateway: GatewayId,
    ) -> Result<Vec<IssueRecord>, StoreError> {
        with_conn!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                issue_cols!(),
                " FROM issues i JOIN gateways g ON g.id = i.gateway_id \
                 WHERE i.gateway_id = $1 AND i.account_id = $2 AND i.cleared_at IS NULL \
                 AND g.deleted_at IS NULL ORDER BY i.first_seen, i.id"
            ))
            .bind(s(gateway))
            .bind(s(account))
            .fetch_all(&mut *c)
            .await?;
            let mut issues = rows
                .iter()
                .map(|r| rows::issue(&mut Cur::new(r)))
                .collect::<Result<Vec<_>, _>>()?;
            issues.sort_by_key(|i| std::cmp::Reverse(i.severity));
            Ok(issues)
        })
    }
}
