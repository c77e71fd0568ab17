//! Gateway nodes: join (with the node credential), link start, removal and start-up
//! properties.

use model::*;

use crate::audit::{Audit, AuditResult};
use crate::db::args;
use crate::rows::{IdRow, NodeRow, StartupRow, counter};
use crate::tx::{insert_audit, require_live_gateway};
use crate::types::*;
use crate::{ConflictKind, Store, StoreError, s};

/// The bind arguments `$1..$9` of a node insert: id, account, gateway, host name, address,
/// version, joined, last seen, applied generation.
fn node_args(account: AccountId, node: &Node) -> Vec<crate::db::Arg> {
    args![
        s(node.id),
        s(account),
        s(node.gateway_id),
        &node.host_name,
        &node.address,
        &node.version,
        node.joined_at,
        node.last_seen,
        node.applied_generation.map(counter),
    ]
}

impl Store {
    /// Registers a node that joins a non-deleted gateway of `account` and issues its
    /// credential (stored as `hash`), with the audit record, in one transaction. A node id
    /// that is already registered (in any gateway of any account) is refused by the insert
    /// itself with [`ConflictKind::NodeId`]: a join never moves a node, and two joins racing
    /// for one id cannot both win.
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
        self.write(move |db| {
            Box::pin(async move {
                require_live_gateway(db, account, node.gateway_id).await?;
                let (node, _) = db
                    .fetch_optional::<NodeRow>(
                        concat!(
                            "INSERT INTO nodes (id, account_id, gateway_id, host_name, address, \
                             version, joined_at, last_seen, applied_generation) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                             ON CONFLICT (id) DO NOTHING RETURNING ",
                            node_cols!(bare)
                        ),
                        node_args(account, node),
                    )
                    .await?
                    .ok_or(StoreError::Conflict {
                        what: ConflictKind::NodeId,
                    })?
                    .into_model()?;
                db.execute(
                    "INSERT INTO node_credentials (id, account_id, gateway_id, node_id, \
                     token_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    args![
                        s(cred.id),
                        s(account),
                        s(cred.gateway_id),
                        s(node.id),
                        hash,
                        cred.created_at
                    ],
                )
                .await?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok((node, cred))
            })
        })
        .await
    }

    /// Whether a node id is registered (in any gateway of any account). Only a courtesy
    /// before [`Store::join_node`], so a join that will be refused creates no gateway; the
    /// insert in `join_node` is what decides.
    pub async fn node_registered(&self, node: NodeId) -> Result<bool, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                Ok(db
                    .fetch_optional::<IdRow>("SELECT id FROM nodes WHERE id = $1", args![s(node)])
                    .await?
                    .is_some())
            })
        })
        .await
    }

    /// Inserts or updates a node of a non-deleted gateway of `account` (a node's link
    /// start). `joined_at` of an existing node is kept. A node id registered in another
    /// gateway (of this account or another) is a [`ConflictKind::NodeId`]: a node never
    /// moves between gateways.
    pub async fn upsert_node(&self, account: AccountId, node: &Node) -> Result<Node, StoreError> {
        self.write(move |db| {
            Box::pin(async move {
                require_live_gateway(db, account, node.gateway_id).await?;
                let row = db
                    .fetch_optional::<NodeRow>(
                        concat!(
                            "INSERT INTO nodes AS n (id, account_id, gateway_id, host_name, \
                             address, version, joined_at, last_seen, applied_generation) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                             ON CONFLICT (id) DO UPDATE SET \
                             host_name = excluded.host_name, address = excluded.address, \
                             version = excluded.version, \
                             last_seen = COALESCE(excluded.last_seen, n.last_seen), \
                             applied_generation = \
                             COALESCE(excluded.applied_generation, n.applied_generation) \
                             WHERE n.account_id = excluded.account_id \
                             AND n.gateway_id = excluded.gateway_id RETURNING ",
                            node_cols!(bare)
                        ),
                        node_args(account, node),
                    )
                    .await?
                    .ok_or(StoreError::Conflict {
                        what: ConflictKind::NodeId,
                    })?;
                Ok(row.into_model()?.0)
            })
        })
        .await
    }

    /// The nodes of a gateway, oldest first, with the state each reported last.
    pub async fn nodes(
        &self,
        account: AccountId,
        gateway: GatewayId,
    ) -> Result<Vec<(Node, Option<model::status::ReportedState>)>, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                db.fetch_all::<NodeRow>(
                    concat!(
                        "SELECT ",
                        node_cols!(),
                        " FROM nodes n WHERE n.gateway_id = $1 AND n.account_id = $2 \
                         ORDER BY n.joined_at, n.id"
                    ),
                    args![s(gateway), s(account)],
                )
                .await?
                .into_iter()
                .map(NodeRow::into_model)
                .collect()
            })
        })
        .await
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
        self.write(move |db| {
            Box::pin(async move {
                let done = db
                    .execute(
                        "DELETE FROM nodes WHERE id = $1 AND account_id = $2",
                        args![s(node), s(account)],
                    )
                    .await?;
                if done == 0 {
                    return Err(StoreError::NotFound);
                }
                db.execute(
                    "UPDATE node_credentials SET revoked_at = $3 \
                     WHERE node_id = $1 AND account_id = $2 AND revoked_at IS NULL",
                    args![s(node), s(account), audit.at],
                )
                .await?;
                insert_audit(db, Some(account), &audit, AuditResult::Allowed).await?;
                Ok(())
            })
        })
        .await
    }

    /// Stores the start-up properties a node reported (free JSON, SPEC §5) and when.
    pub async fn set_node_startup_properties(
        &self,
        account: AccountId,
        node: NodeId,
        properties: &serde_json::Value,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                let done = db
                    .execute(
                        "UPDATE nodes SET startup_properties = $3, startup_reported_at = $4 \
                         WHERE id = $1 AND account_id = $2",
                        args![s(node), s(account), properties.to_string(), at],
                    )
                    .await?;
                if done == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
        })
        .await
    }

    /// The start-up properties of a gateway's nodes that reported them, oldest node first.
    pub async fn startup_properties(
        &self,
        account: AccountId,
        gateway: GatewayId,
    ) -> Result<Vec<StartupProperties>, StoreError> {
        self.all::<StartupRow, StartupProperties>(
            "SELECT id, startup_properties, startup_reported_at FROM nodes \
                     WHERE gateway_id = $1 AND account_id = $2 \
                     AND startup_properties IS NOT NULL AND startup_reported_at IS NOT NULL \
                     ORDER BY joined_at, id",
            args![s(gateway), s(account)],
        )
        .await
    }
}
