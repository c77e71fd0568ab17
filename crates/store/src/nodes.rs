//! Gateway nodes: join (with the node credential), link start, removal and start-up
//! properties.

use model::*;

use crate::audit::{Audit, AuditResult};
use crate::rows::{self, Cur};
use crate::types::*;
use crate::{Store, StoreError, found, insert_audit, s, with_conn, with_tx};

impl Store {
    /// Registers a node that joins a non-deleted gateway of `account` and issues its
    /// credential (stored as `hash`), with the audit record, in one transaction. A node id
    /// that is already registered (in any gateway of any account) is refused by the insert
    /// itself with [`ConflictKind::NodeId`](crate::ConflictKind::NodeId): a join never moves a
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
                    what: crate::ConflictKind::NodeId,
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
    /// gateway (of this account or another) is a [`ConflictKind::NodeId`](crate::ConflictKind::NodeId):
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
                    what: crate::ConflictKind::NodeId,
                }),
                Some(r) => rows::node(&mut Cur::new(&r)).map(|(n, _)| n),
            }
        })
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
}
