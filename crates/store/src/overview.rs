//! The Gateways page overview in a constant number of queries.
//!
//! The two backends take different routes to the same [`Parts`], because their costs
//! differ (measured on the benchmark shape, 1,000 gateways × 3 environments + 100
//! unattached, about 5,000 objects):
//! - SQLite: sqlx copies every value out of the SQLite worker thread one by one, ~25 ms of
//!   CPU for plain rows. So one statement returns each entity as a single JSON array of
//!   row arrays built inside SQLite (`json_group_array`), ~3 ms including the parse.
//! - PostgreSQL: plain rows decode cheaply (~3 ms for the environments), while `json_agg`
//!   costs ~11 ms on the server. So four plain queries.
use std::collections::HashMap;

use model::*;
use serde::Deserialize;

use crate::rows::{self, Cur, SettingsCache, corrupt};
use crate::types::*;
use crate::{Backend, Store, StoreError, s};

/// One statement, four JSON texts. Column order matches the tuple types below.
const SQLITE_OVERVIEW: &str = concat!(
    "SELECT (SELECT json_group_array(json_array(",
    "g.id, g.account_id, g.name, g.public_url, g.bind_address, g.settings, g.created_at, \
     g.deleted_at, g.status_state, g.status_variant, g.status_since",
    ")) FROM gateways g WHERE g.account_id = $1 AND (g.deleted_at IS NULL) = $2), ",
    "(SELECT json_group_array(json_array(",
    "e.id, e.account_id, e.name, e.classification, e.gateway_id, e.path_rest, e.path_soap, \
     e.path_soap12, e.path_odata, e.created_at",
    ")) FROM environments e WHERE e.account_id = $1), ",
    "(SELECT json_group_array(json_array(",
    "n.id, n.gateway_id, n.host_name, n.address, n.version, n.joined_at, n.last_seen, \
     n.applied_generation, n.reported_state",
    ")) FROM nodes n JOIN gateways g ON g.id = n.gateway_id \
     WHERE n.account_id = $1 AND (g.deleted_at IS NULL) = $2), ",
    "(SELECT json_group_array(json_array(",
    "i.id, i.gateway_id, i.node_id, i.code, i.severity, i.message, i.details, i.first_seen, \
     i.last_seen, i.cleared_at",
    ")) FROM issues i JOIN gateways g ON g.id = i.gateway_id \
     WHERE i.account_id = $1 AND i.cleared_at IS NULL AND g.deleted_at IS NULL AND $2)"
);

const PG_GATEWAYS: &str = concat!(
    "SELECT ",
    gateway_cols!(),
    " FROM gateways g WHERE g.account_id = $1 AND (g.deleted_at IS NULL) = $2"
);
const PG_ENVIRONMENTS: &str = concat!(
    "SELECT ",
    environment_cols!(),
    " FROM environments e WHERE e.account_id = $1"
);
const PG_NODES: &str = concat!(
    "SELECT ",
    node_cols!(),
    " FROM nodes n JOIN gateways g ON g.id = n.gateway_id \
     WHERE n.account_id = $1 AND (g.deleted_at IS NULL) = $2"
);
const PG_ISSUES: &str = concat!(
    "SELECT ",
    issue_cols!(),
    " FROM issues i JOIN gateways g ON g.id = i.gateway_id \
     WHERE i.account_id = $1 AND i.cleared_at IS NULL AND g.deleted_at IS NULL"
);

/// The decoded entities before assembly.
#[derive(Default)]
struct Parts {
    gateways: Vec<(Gateway, Option<GatewayStatus>)>,
    environments: Vec<Environment>,
    /// With the state each node reported last.
    nodes: Vec<(Node, Option<String>)>,
    issues: Vec<Issue>,
}

type GatewayTuple = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
);
type EnvironmentTuple = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    i64,
);
type NodeTuple = (
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);
type IssueTuple = (
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
);

fn parse_json<'a, T: Deserialize<'a>>(s: &'a str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(corrupt)
}

fn id<T: std::str::FromStr>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| corrupt(format!("bad id {s:?}")))
}

fn opt_id<T: std::str::FromStr>(s: Option<&str>) -> Result<Option<T>, StoreError> {
    s.map(id).transpose()
}

fn environment(t: EnvironmentTuple) -> Result<Environment, StoreError> {
    Ok(Environment {
        id: id(&t.0)?,
        account_id: id(&t.1)?,
        name: t.2,
        classification: Classification::parse(&t.3)
            .ok_or_else(|| corrupt(format!("bad classification {:?}", t.3)))?,
        gateway_id: opt_id(t.4.as_deref())?,
        paths: EnvironmentPaths {
            rest: t.5,
            soap: t.6,
            soap12: t.7,
            odata: t.8,
        },
        created_at: Timestamp(t.9),
    })
}

fn sqlite_parts(texts: [String; 4]) -> Result<Parts, StoreError> {
    let [gateways_json, environments_json, nodes_json, issues_json] = texts;
    let mut parts = Parts::default();
    let mut cache = SettingsCache::default();
    for t in parse_json::<Vec<GatewayTuple>>(&gateways_json)? {
        let gateway = Gateway {
            id: id(&t.0)?,
            account_id: id(&t.1)?,
            name: t.2,
            public_url: t.3,
            bind_address: t.4,
            settings: cache.get(t.5)?,
            created_at: Timestamp(t.6),
            deleted_at: t.7.map(Timestamp),
        };
        let status = match (t.8, t.10) {
            (Some(state), Some(since)) => Some(GatewayStatus {
                state,
                variant: t.9,
                since: Timestamp(since),
            }),
            _ => None,
        };
        parts.gateways.push((gateway, status));
    }
    for t in parse_json::<Vec<EnvironmentTuple>>(&environments_json)? {
        parts.environments.push(environment(t)?);
    }
    for t in parse_json::<Vec<NodeTuple>>(&nodes_json)? {
        let node = Node {
            id: id(&t.0)?,
            gateway_id: id(&t.1)?,
            host_name: t.2,
            address: t.3,
            version: t.4,
            joined_at: Timestamp(t.5),
            last_seen: t.6.map(Timestamp),
            applied_generation: t.7.and_then(|g| u64::try_from(g).ok()),
        };
        parts.nodes.push((node, t.8));
    }
    for t in parse_json::<Vec<IssueTuple>>(&issues_json)? {
        parts.issues.push(Issue {
            id: id(&t.0)?,
            gateway_id: id(&t.1)?,
            node_id: opt_id(t.2.as_deref())?,
            code: t.3,
            severity: Severity::parse(&t.4)
                .ok_or_else(|| corrupt(format!("bad severity {:?}", t.4)))?,
            message: t.5,
            details: parse_json(&t.6)?,
            first_seen: Timestamp(t.7),
            last_seen: Timestamp(t.8),
            cleared_at: t.9.map(Timestamp),
        });
    }
    Ok(parts)
}

fn assemble(parts: Parts) -> GatewaysOverview {
    let mut index = HashMap::with_capacity(parts.gateways.len());
    let mut gateways = Vec::with_capacity(parts.gateways.len());
    for (gateway, status) in parts.gateways {
        index.insert(gateway.id, gateways.len());
        gateways.push(GatewayRow {
            gateway,
            status,
            environments: Vec::new(),
            nodes: Vec::new(),
            head_host_name: None,
            issues: Vec::new(),
        });
    }
    let mut unattached = Vec::new();
    for env in parts.environments {
        match env.gateway_id {
            None => unattached.push(env),
            Some(g) => {
                if let Some(&i) = index.get(&g) {
                    gateways[i].environments.push(env);
                }
            }
        }
    }
    let mut live: HashMap<NodeId, bool> = HashMap::with_capacity(parts.nodes.len());
    for (node, state) in parts.nodes {
        live.insert(node.id, state.as_deref() != Some("stopped"));
        if let Some(&i) = index.get(&node.gateway_id) {
            gateways[i].nodes.push(node);
        }
    }
    for issue in parts.issues {
        if let Some(&i) = index.get(&issue.gateway_id) {
            gateways[i].issues.push(issue);
        }
    }
    for row in &mut gateways {
        row.environments
            .sort_by_cached_key(|e| (e.name.to_lowercase(), e.id));
        row.nodes.sort_by_key(|n| (n.joined_at, n.id));
        // The head node is the oldest live node; with none live, the oldest node.
        row.head_host_name = row
            .nodes
            .iter()
            .find(|n| live.get(&n.id).copied().unwrap_or(true))
            .or(row.nodes.first())
            .map(|n| n.host_name.clone());
        row.issues.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.first_seen.cmp(&b.first_seen))
                .then(a.id.cmp(&b.id))
        });
    }
    gateways.sort_by_cached_key(|r| (r.gateway.name.to_lowercase(), r.gateway.id));
    unattached.sort_by_cached_key(|e| (e.name.to_lowercase(), e.id));
    GatewaysOverview {
        gateways,
        unattached,
    }
}

impl Store {
    /// Everything the Gateways & Environments tab shows, in a constant number of queries
    /// whatever the number of gateways (one on SQLite, four on PostgreSQL): gateways with
    /// status, attached environments, nodes, head node host and active issues, plus the
    /// unattached environments. Sorting by other columns and the search
    /// ([`GatewaysOverview::filter`]) are left to the caller, in memory.
    pub async fn gateways_overview(
        &self,
        account: AccountId,
        view: GatewayView,
    ) -> Result<GatewaysOverview, StoreError> {
        let enabled = view == GatewayView::Enabled;
        let parts = match &self.backend {
            Backend::Sqlite(pool) => {
                let row = sqlx::query(SQLITE_OVERVIEW)
                    .bind(s(account))
                    .bind(enabled)
                    .fetch_one(pool)
                    .await?;
                let mut cur = Cur::new(&row);
                sqlite_parts([cur.text()?, cur.text()?, cur.text()?, cur.text()?])?
            }
            Backend::Postgres(pool) => {
                let mut c = pool.acquire().await?;
                let mut parts = Parts::default();
                let mut cache = SettingsCache::default();
                for r in sqlx::query(PG_GATEWAYS)
                    .bind(s(account))
                    .bind(enabled)
                    .fetch_all(&mut *c)
                    .await?
                {
                    parts
                        .gateways
                        .push(rows::gateway_cached(&mut Cur::new(&r), &mut cache)?);
                }
                for r in sqlx::query(PG_ENVIRONMENTS)
                    .bind(s(account))
                    .fetch_all(&mut *c)
                    .await?
                {
                    parts
                        .environments
                        .push(rows::environment(&mut Cur::new(&r))?);
                }
                for r in sqlx::query(PG_NODES)
                    .bind(s(account))
                    .bind(enabled)
                    .fetch_all(&mut *c)
                    .await?
                {
                    parts.nodes.push(rows::node(&mut Cur::new(&r))?);
                }
                if enabled {
                    for r in sqlx::query(PG_ISSUES)
                        .bind(s(account))
                        .fetch_all(&mut *c)
                        .await?
                    {
                        parts.issues.push(rows::issue(&mut Cur::new(&r))?);
                    }
                }
                parts
            }
        };
        Ok(assemble(parts))
    }
}
