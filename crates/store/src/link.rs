//! What the platform–node link and the status job persist: published configuration
//! generations (with a digest, so unchanged configurations are not re-published), node status
//! records, and the all-accounts reads of the status job. Telemetry, so not audited.

use model::status::ReportedState;
use model::*;

use crate::db::{Arg, Db, args};
use crate::rows::{
    AccountIssueRow, AccountRefRow, CONFIG_COLS, GatewayConfigRow, GenerationRow, IdRow,
    NodeRecordRow, PublicationRow, SettingsCache, counter, opt_u64,
};
use crate::tx::{load_routes, lock_gateway};
use crate::types::*;
use crate::{Store, StoreError, s};

/// Everything a gateway's configuration snapshot is compiled from, with the generation and
/// digest last published.
#[derive(Clone, Debug)]
pub struct GatewayConfigInput {
    pub gateway: Gateway,
    /// Attached environments, by id.
    pub environments: Vec<Environment>,
    /// APIs deployed to at least one attached environment, by id, each once.
    pub apis: Vec<Api>,
    /// Deployments to attached environments, by id.
    pub deployments: Vec<Deployment>,
    /// The generation last published (0 before the first).
    pub generation: u64,
    /// Digest of the configuration last published; `None` before the first.
    pub digest: Option<String>,
    /// When `generation` was published.
    pub published_at: Option<Timestamp>,
    /// Environments that left this gateway and still redirect to their destination.
    pub redirects: Vec<model::migration::Redirect>,
}

/// The outcome of [`Store::publish_gateway_config`].
#[derive(Clone, Debug)]
pub struct PublishedConfig {
    pub input: GatewayConfigInput,
    /// True when the generation was bumped (the configuration changed, or none was published).
    pub bumped: bool,
}

/// A node as the status job reads it: the row, its last reported state and its status record.
#[derive(Clone, Debug)]
pub struct NodeStatusRow {
    pub node: Node,
    pub reported_state: Option<ReportedState>,
    /// The platform's status record (JSON it wrote with [`Store::save_node_statuses`]).
    pub record: Option<serde_json::Value>,
}

/// One node's status write in a batch ([`Store::save_node_statuses`]).
#[derive(Clone, Debug)]
pub struct NodeStatusWrite {
    pub account: AccountId,
    pub node: NodeId,
    /// What the node said last (state, time, applied generation), when it said something.
    pub report: Option<NodeReport>,
    /// The platform's status record of the node.
    pub record: serde_json::Value,
}

/// Rows per statement of a batched status write: 6 bind parameters each stays far below
/// both backends' parameter limits (SQLite 32,766, PostgreSQL 65,535).
pub const STATUS_WRITES_PER_STATEMENT: usize = 1000;

/// A live gateway of any account with its nodes: the input of one status-job tick.
#[derive(Clone, Debug)]
pub struct GatewayStatusInput {
    pub gateway: Gateway,
    pub status: Option<RecordedStatus>,
    pub generation: u64,
    pub published_at: Option<Timestamp>,
    /// Oldest first.
    pub nodes: Vec<NodeStatusRow>,
}

/// Reads the [`GatewayConfigInput`] of a live gateway on `db`; `NotFound` when deleted.
/// Redirects whose grace period ended are left out: their periods are wall-clock times,
/// which nodes compare with their own clocks, so the wall clock decides here too.
async fn load_config_input(
    db: &mut Db<'_>,
    account: AccountId,
    gateway: GatewayId,
) -> Result<GatewayConfigInput, StoreError> {
    let row = db
        .fetch_one::<GatewayConfigRow>(
            &format!(
                "SELECT {}, {CONFIG_COLS} FROM gateways g \
                 WHERE g.id = $1 AND g.account_id = $2 AND g.deleted_at IS NULL",
                gateway_cols!()
            ),
            args![s(gateway), s(account)],
        )
        .await?;
    let generation = opt_u64(Some(row.config_generation))?.unwrap_or(0);
    let routes = load_routes(db, account, gateway).await?;
    let mut environments = routes.environments;
    let mut seen = std::collections::HashSet::new();
    let mut apis: Vec<Api> = Vec::new();
    let mut deployments = Vec::with_capacity(routes.deployments.len());
    let entries = routes
        .deployments
        .into_iter()
        .map(|e| (e.deployment, e.api));
    // Make-before-break: an environment moving here is served here before it leaves its
    // source (SPEC §7).
    let mut moving_in = Vec::new();
    for (env, entries) in crate::cutover::cutover_environments(db, account, gateway).await? {
        environments.push(env);
        moving_in.extend(entries);
    }
    for (deployment, api) in entries.chain(moving_in) {
        if seen.insert(api.id) {
            apis.push(api);
        }
        deployments.push(deployment);
    }
    apis.sort_by_key(|a| a.id);
    environments.sort_by_key(|e| e.id);
    deployments.sort_by_key(|d| d.id);
    let redirects = crate::cutover::redirects_from(db, account, gateway, wall_clock()).await?;
    Ok(GatewayConfigInput {
        gateway: row.gateway.try_into()?,
        environments,
        apis,
        deployments,
        generation,
        digest: row.config_digest,
        published_at: row.config_published_at.map(Timestamp),
        redirects,
    })
}

/// Records on `db` which deployments the gateway's configuration at `generation` serves:
/// those of its attached environments that were not on it yet get `generation` as the first
/// one containing them; those no longer on it (environment detached or moved) lose theirs.
async fn record_publication(
    db: &mut Db<'_>,
    account: AccountId,
    gateway: GatewayId,
    generation: u64,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE deployments SET published_gateway_id = $1, published_generation = $3 \
         WHERE account_id = $2 AND environment_id IN \
         (SELECT id FROM environments WHERE gateway_id = $1 AND account_id = $2) \
         AND (published_gateway_id IS NULL OR published_gateway_id <> $1 \
              OR published_generation IS NULL)",
        args![s(gateway), s(account), counter(generation)],
    )
    .await?;
    db.execute(
        "UPDATE deployments SET published_gateway_id = NULL, published_generation = NULL \
         WHERE account_id = $2 AND published_gateway_id = $1 AND environment_id NOT IN \
         (SELECT id FROM environments WHERE gateway_id = $1 AND account_id = $2)",
        args![s(gateway), s(account)],
    )
    .await?;
    Ok(())
}

/// The current wall-clock time.
fn wall_clock() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp(i64::try_from(millis).unwrap_or(i64::MAX))
}

impl Store {
    /// Publishes the configuration of a non-deleted gateway: inside one transaction that
    /// locks the gateway row, loads its configuration input, asks `digest_of` for the digest
    /// of the compiled configuration and, when it differs from the one last published (or
    /// nothing was published yet), bumps the generation and records the digest and `now`.
    /// The lock serializes publishers (also across platform processes), so a later
    /// generation is always compiled from a later state.
    pub async fn publish_gateway_config<F>(
        &self,
        account: AccountId,
        gateway: GatewayId,
        now: Timestamp,
        digest_of: F,
    ) -> Result<PublishedConfig, StoreError>
    where
        F: FnOnce(&GatewayConfigInput) -> String + Send,
    {
        self.write(move |db| {
            Box::pin(async move {
                lock_gateway(db, account, gateway).await?;
                let mut input = load_config_input(db, account, gateway).await?;
                let digest = digest_of(&input);
                let bumped = input.generation == 0 || input.digest.as_deref() != Some(&digest);
                if bumped {
                    let row = db
                        .fetch_one::<GenerationRow>(
                            "UPDATE gateways SET config_generation = config_generation + 1, \
                             config_digest = $3, config_published_at = $4 \
                             WHERE id = $1 AND account_id = $2 RETURNING config_generation",
                            args![s(gateway), s(account), &digest, now],
                        )
                        .await?;
                    input.generation =
                        opt_u64(Some(row.config_generation))?.ok_or(StoreError::NotFound)?;
                    input.digest = Some(digest);
                    input.published_at = Some(now);
                }
                // Also when not bumped: deployments from before this was recorded get the
                // current generation, which serves them.
                record_publication(db, account, gateway, input.generation).await?;
                Ok(PublishedConfig { input, bumped })
            })
        })
        .await
    }

    /// The configuration input of a gateway of `account` as last published, without locking
    /// (a node connecting reads it). `NotFound` for a deleted gateway.
    pub async fn gateway_config_input(
        &self,
        account: AccountId,
        gateway: GatewayId,
    ) -> Result<GatewayConfigInput, StoreError> {
        self.read(move |db| Box::pin(async move { load_config_input(db, account, gateway).await }))
            .await
    }

    /// Where the deployments of an API of `account` are published: per deployment, the gateway
    /// and the first generation of its configuration that contained it (`None` when on no
    /// published configuration).
    pub async fn deployment_publications(
        &self,
        account: AccountId,
        api: ApiId,
    ) -> Result<Vec<(DeploymentId, Option<(GatewayId, u64)>)>, StoreError> {
        self.all::<PublicationRow, _>(
            "SELECT id, published_gateway_id, published_generation FROM deployments \
             WHERE api_id = $1 AND account_id = $2 ORDER BY id",
            args![s(api), s(account)],
        )
        .await
    }

    /// The live gateways of `account`, for re-publishing after a change in the account.
    pub async fn live_gateway_ids(&self, account: AccountId) -> Result<Vec<GatewayId>, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                db.fetch_all::<IdRow>(
                    "SELECT id FROM gateways WHERE account_id = $1 AND deleted_at IS NULL \
                     ORDER BY id",
                    args![s(account)],
                )
                .await?
                .iter()
                .map(IdRow::parse)
                .collect()
            })
        })
        .await
    }

    /// Records what nodes said (for a write with a report: state, time, applied generation,
    /// last seen) and the platform's status records of them, in one transaction, with one
    /// statement per
    /// [`STATUS_WRITES_PER_STATEMENT`] nodes that reported (and one per as many that did not),
    /// so the link writes all heartbeats of a second at once. A node appears at most once
    /// (when it repeats, its last write wins). Nodes that no longer exist in their account are
    /// skipped; answers how many rows were written.
    pub async fn save_node_statuses(&self, writes: &[NodeStatusWrite]) -> Result<u64, StoreError> {
        let mut seen = std::collections::HashSet::with_capacity(writes.len());
        let mut reported = Vec::new();
        let mut record_only = Vec::new();
        for w in writes.iter().rev() {
            if seen.insert(w.node) {
                let row = (s(w.node), s(w.account), w.record.to_string());
                match &w.report {
                    Some(report) => reported.push((row, report)),
                    None => record_only.push(row),
                }
            }
        }
        if reported.is_empty() && record_only.is_empty() {
            return Ok(0);
        }
        self.write(move |db| {
            Box::pin(async move {
                let mut written = 0;
                for chunk in reported.chunks(STATUS_WRITES_PER_STATEMENT) {
                    let sql = format!(
                        "WITH u (id, account_id, state, at, applied, record) AS (VALUES {}) \
                         UPDATE nodes SET reported_state = u.state, reported_at = u.at, \
                         last_seen = u.at, \
                         applied_generation = COALESCE(u.applied, nodes.applied_generation), \
                         status_record = u.record \
                         FROM u WHERE nodes.id = u.id AND nodes.account_id = u.account_id",
                        placeholders(chunk.len(), 6)
                    );
                    let mut binds: Vec<Arg> = Vec::with_capacity(chunk.len() * 6);
                    for ((node, account, record), report) in chunk {
                        binds.extend(args![
                            node,
                            account,
                            report.state.as_str(),
                            report.at,
                            report.applied_generation.map(counter),
                            record,
                        ]);
                    }
                    // Not cached: every batch size is another statement text.
                    written += db.execute_uncached(&sql, binds).await?;
                }
                for chunk in record_only.chunks(STATUS_WRITES_PER_STATEMENT) {
                    let sql = format!(
                        "WITH u (id, account_id, record) AS (VALUES {}) \
                         UPDATE nodes SET status_record = u.record \
                         FROM u WHERE nodes.id = u.id AND nodes.account_id = u.account_id",
                        placeholders(chunk.len(), 3)
                    );
                    let mut binds: Vec<Arg> = Vec::with_capacity(chunk.len() * 3);
                    for (node, account, record) in chunk {
                        binds.extend(args![node, account, record]);
                    }
                    written += db.execute_uncached(&sql, binds).await?;
                }
                Ok(written)
            })
        })
        .await
    }

    /// Every live gateway of every account with its nodes and their status records, in two
    /// queries: the input of one status-job tick.
    pub async fn gateway_status_inputs(&self) -> Result<Vec<GatewayStatusInput>, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                let gateway_rows = db
                    .fetch_all::<GatewayConfigRow>(
                        &format!(
                            "SELECT {}, {CONFIG_COLS} FROM gateways g \
                             WHERE g.deleted_at IS NULL ORDER BY g.id",
                            gateway_cols!()
                        ),
                        args![],
                    )
                    .await?;
                let node_rows = db
                    .fetch_all::<NodeRecordRow>(
                        concat!(
                            "SELECT ",
                            node_cols!(),
                            ", n.status_record FROM nodes n JOIN gateways g ON g.id = n.gateway_id \
                             WHERE g.deleted_at IS NULL ORDER BY n.joined_at, n.id"
                        ),
                        args![],
                    )
                    .await?;
                let mut cache = SettingsCache::default();
                let mut out = Vec::with_capacity(gateway_rows.len());
                let mut index = std::collections::HashMap::with_capacity(gateway_rows.len());
                for r in gateway_rows {
                    let (gateway, status) = r.gateway.into_model(&mut cache)?;
                    index.insert(gateway.id, out.len());
                    out.push(GatewayStatusInput {
                        gateway,
                        status,
                        generation: opt_u64(Some(r.config_generation))?.unwrap_or(0),
                        published_at: r.config_published_at.map(Timestamp),
                        nodes: Vec::new(),
                    });
                }
                for r in node_rows {
                    let row = NodeStatusRow::try_from(r)?;
                    if let Some(&i) = index.get(&row.node.gateway_id) {
                        out[i].nodes.push(row);
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    /// The nodes of a gateway of `account` (deleted or not), oldest first, with their status
    /// records: what REST reads derive node and gateway states from.
    pub async fn node_status_rows(
        &self,
        account: AccountId,
        gateway: GatewayId,
    ) -> Result<Vec<NodeStatusRow>, StoreError> {
        self.all::<NodeRecordRow, NodeStatusRow>(
            concat!(
                "SELECT ",
                node_cols!(),
                ", n.status_record FROM nodes n \
                 WHERE n.gateway_id = $1 AND n.account_id = $2 ORDER BY n.joined_at, n.id"
            ),
            args![s(gateway), s(account)],
        )
        .await
    }

    /// The active issues of every live gateway of every account (the status job's memory
    /// of what it raised is rebuilt from them on start).
    pub async fn all_active_issues(&self) -> Result<Vec<(AccountId, IssueRecord)>, StoreError> {
        self.all::<AccountIssueRow, _>(
            concat!(
                "SELECT i.account_id, ",
                issue_cols!(),
                " FROM issues i JOIN gateways g ON g.id = i.gateway_id \
                 WHERE i.cleared_at IS NULL AND g.deleted_at IS NULL \
                 ORDER BY i.first_seen, i.id"
            ),
            args![],
        )
        .await
    }

    /// The account of a live gateway (commands and notices carry only gateway ids).
    pub async fn gateway_account(&self, gateway: GatewayId) -> Result<AccountId, StoreError> {
        self.read(move |db| {
            Box::pin(async move {
                db.fetch_one::<AccountRefRow>(
                    "SELECT account_id FROM gateways WHERE id = $1 AND deleted_at IS NULL",
                    args![s(gateway)],
                )
                .await?
                .account()?
                .ok_or(StoreError::NotFound)
            })
        })
        .await
    }
}

/// `($1, $2, …), ($k+1, …)`: `rows` tuples of `width` numbered parameters.
fn placeholders(rows: usize, width: usize) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(rows * width * 6);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for i in 0..width {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "${}", r * width + i + 1);
        }
        out.push(')');
    }
    out
}
