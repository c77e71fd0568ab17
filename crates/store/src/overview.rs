//! The Gateways page overview in a constant number of queries, reading only the rows it
//! returns.
//!
//! The two backends take different routes to the same [`Parts`], because their costs
//! differ (measured on the benchmark shape, 1,000 gateways × 3 environments + 100
//! unattached, about 5,000 objects):
//! - SQLite: sqlx copies every value out of the SQLite worker thread one by one, ~25 ms of
//!   CPU for plain rows. So one statement returns each entity as a single JSON array of
//!   row objects built inside SQLite (`json_group_array` of `cols!([json] ..)`, keyed by
//!   column name), which decode into the same `rows.rs` structs as plain rows.
//! - PostgreSQL: plain rows decode cheaply (~3 ms for the environments), while `json_agg`
//!   costs ~11 ms on the server. So four plain queries.
//!
//! The search ([`OverviewFilter::q`]) is Unicode case-insensitive, which neither SQLite's
//! `lower()`/`LIKE` (ASCII only) nor PostgreSQL's (locale dependent) provide. So SQL only
//! narrows the rows to *candidates*, a superset of the matches, and [`retain_matches`]
//! decides in Rust with the same [`Search`] as [`GatewaysOverview::filter`]. A name is a
//! candidate when it has a non-ASCII character (always checked in Rust) or when its ASCII
//! lowercase contains the lowercased query (`instr`/`strpos`, no `LIKE`, so `%` and `_`
//! are plain characters). For an ASCII name both tests agree, since Unicode lowercase of
//! ASCII is ASCII lowercase; so for ASCII names SQL reads exactly the matches. A gateway
//! is a candidate when its name or an attached environment's name is; its environments,
//! nodes and issues are read by gateway id (indexed), so a search reads about what it
//! returns; only the names of the account's gateways and environments are all scanned,
//! inside the database. On the benchmark shape a search for 100 gateways takes ~1.5 ms on
//! SQLite and ~3 ms on PostgreSQL, against ~9–10 ms for the whole page; one gateway
//! (`OverviewFilter::gateway`) reads only its own rows.
use std::collections::{HashMap, HashSet};

use model::status::ReportedState;
use model::*;

use crate::rows::{EnvironmentRow, GatewayDbRow, IssueRow, NodeRow, SettingsCache, corrupt};
use crate::types::*;
use crate::{Backend, Store, StoreError, s};

/// The whole page: one statement, four JSON texts (an array of objects each, keyed by
/// column name, decoded into the same row structs as plain rows). `$1` account, `$2`
/// enabled view.
const SQLITE_OVERVIEW: &str = concat!(
    "SELECT (SELECT json_group_array(",
    gateway_cols!(json),
    ") FROM gateways g WHERE g.account_id = $1 AND (g.deleted_at IS NULL) = $2) AS gateways, ",
    "(SELECT json_group_array(",
    environment_cols!(json),
    ") FROM environments e WHERE e.account_id = $1) AS environments, ",
    "(SELECT json_group_array(",
    node_cols!(json),
    ") FROM nodes n JOIN gateways g ON g.id = n.gateway_id \
     WHERE n.account_id = $1 AND (g.deleted_at IS NULL) = $2) AS nodes, ",
    "(SELECT json_group_array(",
    issue_cols!(json),
    ") FROM issues i JOIN gateways g ON g.id = i.gateway_id \
     WHERE i.account_id = $1 AND i.cleared_at IS NULL AND g.deleted_at IS NULL AND $2) AS issues"
);

/// Part of the page, as [`SQLITE_OVERVIEW`]: the gateways of the account and view that
/// satisfy `$gateways` (a condition on `g`), with their nodes and issues, and the
/// environments that satisfy `$environments` (a condition on `e` that may use the matched
/// gateway ids, `hit`). `$3` is free for the conditions. The unary `+` on `account_id`
/// keeps SQLite from scanning the account's index instead of looking rows up by gateway
/// (the account check stays).
macro_rules! sqlite_overview_of {
    ($gateways:expr, $environments:expr) => {
        concat!(
            "WITH hit AS MATERIALIZED (SELECT g.id FROM gateways g \
             WHERE g.account_id = $1 AND (g.deleted_at IS NULL) = $2 AND ",
            $gateways,
            ") SELECT (SELECT json_group_array(",
            gateway_cols!(json),
            ") FROM gateways g WHERE g.id IN (SELECT id FROM hit)) AS gateways, ",
            "(SELECT json_group_array(",
            environment_cols!(json),
            ") FROM environments e WHERE +e.account_id = $1 AND (",
            $environments,
            ")) AS environments, ",
            "(SELECT json_group_array(",
            node_cols!(json),
            ") FROM nodes n WHERE +n.account_id = $1 AND n.gateway_id IN (SELECT id FROM hit)) AS nodes, ",
            "(SELECT json_group_array(",
            issue_cols!(json),
            ") FROM issues i WHERE i.account_id = $1 AND i.cleared_at IS NULL AND $2 \
             AND i.gateway_id IN (SELECT id FROM hit)) AS issues"
        )
    };
}

/// SQLite: whether the name `$x` is a search candidate for the lowercased query `$3` (see
/// the module doc). `lower()` is ASCII only; a name with more bytes (as a BLOB) than
/// characters has a non-ASCII character.
macro_rules! sqlite_candidate {
    ($x:literal) => {
        concat!(
            "(length(CAST(",
            $x,
            " AS BLOB)) <> length(",
            $x,
            ") OR instr(lower(",
            $x,
            "), $3) > 0)"
        )
    };
}

/// `$3` the lowercased query.
const SQLITE_SEARCH: &str = sqlite_overview_of!(
    concat!(
        "(",
        sqlite_candidate!("g.name"),
        " OR g.id IN (SELECT e.gateway_id FROM environments e \
         WHERE e.account_id = $1 AND e.gateway_id IS NOT NULL AND ",
        sqlite_candidate!("e.name"),
        "))"
    ),
    concat!(
        "e.gateway_id IN (SELECT id FROM hit) OR (e.gateway_id IS NULL AND ",
        sqlite_candidate!("e.name"),
        ")"
    )
);

/// `$3` the gateway id.
const SQLITE_ONE: &str = sqlite_overview_of!("g.id = $3", "e.gateway_id IN (SELECT id FROM hit)");

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

/// PostgreSQL: whether the name `$x` is a search candidate for the lowercased query `$3`
/// (see the module doc). Under the "C" collation `lower()` changes ASCII letters only,
/// whatever the database locale (and is ~10× cheaper than `translate`); in a UTF-8
/// database a name with more bytes than characters has a non-ASCII character.
macro_rules! pg_candidate {
    ($x:literal) => {
        concat!(
            "(octet_length(",
            $x,
            ") <> char_length(",
            $x,
            ") OR strpos(lower(",
            $x,
            " COLLATE \"C\"), $3) > 0)"
        )
    };
}

/// The candidate gateways of a search; `$3` the lowercased query.
const PG_GATEWAYS_SEARCH: &str = concat!(
    "SELECT ",
    gateway_cols!(),
    " FROM gateways g WHERE g.account_id = $1 AND (g.deleted_at IS NULL) = $2 AND (",
    pg_candidate!("g.name"),
    " OR g.id IN (SELECT e.gateway_id FROM environments e WHERE e.account_id = $1 AND ",
    pg_candidate!("e.name"),
    "))"
);
/// `$3` the gateway id.
const PG_GATEWAYS_ONE: &str = concat!(
    "SELECT ",
    gateway_cols!(),
    " FROM gateways g WHERE g.account_id = $1 AND (g.deleted_at IS NULL) = $2 AND g.id = $3"
);
/// The environments of the gateways `$2`, and the candidate unattached ones of the search
/// `$3`. The ids are matched by `IN (SELECT unnest(..))` rather than `= ANY(..)`: that is a
/// hashed semi-join whatever the plan, while `= ANY` of a parameter is a linear scan of the
/// array for each row when the planner (e.g. without statistics yet) walks the account's
/// rows instead of the gateway index (3.5 ms instead of 0.5 ms for 100 of 1,000 gateways).
const PG_ENVIRONMENTS_SEARCH: &str = concat!(
    "SELECT ",
    environment_cols!(),
    " FROM environments e WHERE e.account_id = $1 \
     AND (e.gateway_id IN (SELECT unnest($2::text[])) OR (e.gateway_id IS NULL AND ",
    pg_candidate!("e.name"),
    "))"
);
/// The environments of the gateways `$2`.
const PG_ENVIRONMENTS_OF: &str = concat!(
    "SELECT ",
    environment_cols!(),
    " FROM environments e WHERE e.account_id = $1 AND e.gateway_id IN (SELECT unnest($2::text[]))"
);
/// The nodes of the gateways `$2`.
const PG_NODES_OF: &str = concat!(
    "SELECT ",
    node_cols!(),
    " FROM nodes n WHERE n.account_id = $1 AND n.gateway_id IN (SELECT unnest($2::text[]))"
);
/// The active issues of the gateways `$2`.
const PG_ISSUES_OF: &str = concat!(
    "SELECT ",
    issue_cols!(),
    " FROM issues i WHERE i.account_id = $1 AND i.cleared_at IS NULL \
     AND i.gateway_id IN (SELECT unnest($2::text[]))"
);

/// What to read, from an [`OverviewFilter`].
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// The whole page.
    All,
    /// The candidates of a search.
    Search(&'a Search),
    /// One gateway, no unattached environments.
    One(GatewayId),
}

/// The decoded entities before assembly.
#[derive(Default)]
struct Parts {
    gateways: Vec<(Gateway, Option<RecordedStatus>)>,
    environments: Vec<Environment>,
    /// With the state each node reported last.
    nodes: Vec<(Node, Option<ReportedState>)>,
    issues: Vec<IssueRecord>,
}

/// The SQLite overview's one row: each entity as a JSON array of row objects.
#[derive(sqlx::FromRow)]
struct OverviewJsonRow {
    gateways: String,
    environments: String,
    nodes: String,
    issues: String,
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<Vec<T>, StoreError> {
    serde_json::from_str(s).map_err(corrupt)
}

fn sqlite_parts(row: OverviewJsonRow) -> Result<Parts, StoreError> {
    let mut cache = SettingsCache::default();
    Ok(Parts {
        gateways: from_json::<GatewayDbRow>(&row.gateways)?
            .into_iter()
            .map(|r| r.into_model(&mut cache))
            .collect::<Result<_, _>>()?,
        environments: from_json::<EnvironmentRow>(&row.environments)?
            .into_iter()
            .map(Environment::try_from)
            .collect::<Result<_, _>>()?,
        nodes: from_json::<NodeRow>(&row.nodes)?
            .into_iter()
            .map(NodeRow::into_model)
            .collect::<Result<_, _>>()?,
        issues: from_json::<IssueRow>(&row.issues)?
            .into_iter()
            .map(IssueRecord::try_from)
            .collect::<Result<_, _>>()?,
    })
}

/// Keeps the gateways that match `search` (by name or an attached environment's name) with
/// everything attached to them, and the unattached environments that match: exactly
/// [`GatewaysOverview::filter`], applied before assembly so that candidates SQL read
/// but that do not match go no further.
fn retain_matches(parts: &mut Parts, search: &Search) {
    let mut matched: HashSet<GatewayId> = parts
        .gateways
        .iter()
        .filter(|(g, _)| search.hit(&g.name))
        .map(|(g, _)| g.id)
        .collect();
    for env in &parts.environments {
        if let Some(g) = env.gateway_id {
            if !matched.contains(&g) && search.hit(&env.name) {
                matched.insert(g);
            }
        }
    }
    parts.gateways.retain(|(g, _)| matched.contains(&g.id));
    parts.environments.retain(|e| match e.gateway_id {
        Some(g) => matched.contains(&g),
        None => search.hit(&e.name),
    });
    parts.nodes.retain(|(n, _)| matched.contains(&n.gateway_id));
    parts.issues.retain(|i| matched.contains(&i.gateway_id));
}

fn gateway_ids(parts: &Parts) -> Vec<String> {
    parts.gateways.iter().map(|(g, _)| s(g.id)).collect()
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
    for (node, state) in parts.nodes {
        if let Some(&i) = index.get(&node.gateway_id) {
            gateways[i].nodes.push((node, state));
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
        row.nodes.sort_by_key(|(n, _)| (n.joined_at, n.id));
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

async fn sqlite_read(
    pool: &sqlx::SqlitePool,
    account: AccountId,
    enabled: bool,
    scope: Scope<'_>,
) -> Result<Parts, StoreError> {
    let query = match scope {
        Scope::All => sqlx::query_as(SQLITE_OVERVIEW)
            .bind(s(account))
            .bind(enabled),
        Scope::Search(search) => sqlx::query_as(SQLITE_SEARCH)
            .bind(s(account))
            .bind(enabled)
            .bind(search.needle().to_owned()),
        Scope::One(id) => sqlx::query_as(SQLITE_ONE)
            .bind(s(account))
            .bind(enabled)
            .bind(s(id)),
    };
    sqlite_parts(query.fetch_one(pool).await?)
}

async fn pg_read(
    pool: &sqlx::PgPool,
    account: AccountId,
    enabled: bool,
    scope: Scope<'_>,
) -> Result<Parts, StoreError> {
    let mut c = pool.acquire().await?;
    let mut parts = Parts::default();
    let mut cache = SettingsCache::default();
    let gateways = match scope {
        Scope::All => sqlx::query_as::<_, GatewayDbRow>(PG_GATEWAYS)
            .bind(s(account))
            .bind(enabled),
        Scope::Search(search) => sqlx::query_as(PG_GATEWAYS_SEARCH)
            .bind(s(account))
            .bind(enabled)
            .bind(search.needle().to_owned()),
        Scope::One(id) => sqlx::query_as(PG_GATEWAYS_ONE)
            .bind(s(account))
            .bind(enabled)
            .bind(s(id)),
    };
    for r in gateways.fetch_all(&mut *c).await? {
        parts.gateways.push(r.into_model(&mut cache)?);
    }
    let environments = match scope {
        Scope::All => sqlx::query_as::<_, EnvironmentRow>(PG_ENVIRONMENTS).bind(s(account)),
        Scope::Search(search) => sqlx::query_as(PG_ENVIRONMENTS_SEARCH)
            .bind(s(account))
            .bind(gateway_ids(&parts))
            .bind(search.needle().to_owned()),
        // Not in this view: nothing else to read.
        Scope::One(_) if parts.gateways.is_empty() => return Ok(parts),
        Scope::One(_) => sqlx::query_as(PG_ENVIRONMENTS_OF)
            .bind(s(account))
            .bind(gateway_ids(&parts)),
    };
    for r in environments.fetch_all(&mut *c).await? {
        parts.environments.push(r.try_into()?);
    }
    // Candidates that do not match need no nodes or issues.
    if let Scope::Search(search) = scope {
        retain_matches(&mut parts, search);
    }
    let nodes = match scope {
        Scope::All => sqlx::query_as::<_, NodeRow>(PG_NODES)
            .bind(s(account))
            .bind(enabled),
        Scope::Search(_) | Scope::One(_) => sqlx::query_as(PG_NODES_OF)
            .bind(s(account))
            .bind(gateway_ids(&parts)),
    };
    for r in nodes.fetch_all(&mut *c).await? {
        parts.nodes.push(r.into_model()?);
    }
    if enabled {
        let issues = match scope {
            Scope::All => sqlx::query_as::<_, IssueRow>(PG_ISSUES).bind(s(account)),
            Scope::Search(_) | Scope::One(_) => sqlx::query_as(PG_ISSUES_OF)
                .bind(s(account))
                .bind(gateway_ids(&parts)),
        };
        for r in issues.fetch_all(&mut *c).await? {
            parts.issues.push(r.try_into()?);
        }
    }
    Ok(parts)
}

impl Store {
    /// The Gateways & Environments tab, or the part of it that `filter` selects, in a
    /// constant number of queries whatever the number of gateways (one on SQLite, at most
    /// four on PostgreSQL): gateways with status, attached environments, nodes, head node
    /// host and active issues, plus the unattached environments. A search or a single
    /// gateway reads only about the rows it returns (see the module doc), so its cost
    /// follows its result, not the account. Sorting by other columns is left to the
    /// caller, in memory.
    pub async fn gateways_overview(
        &self,
        account: AccountId,
        view: GatewayView,
        filter: OverviewFilter<'_>,
    ) -> Result<GatewaysOverview, StoreError> {
        let enabled = view == GatewayView::Enabled;
        let search = Search::new(filter.q);
        let scope = match (filter.gateway, &search) {
            (Some(id), _) => Scope::One(id),
            // PostgreSQL text cannot hold NUL: such a query is matched in Rust alone.
            (None, Some(search)) if search.needle().contains('\0') => Scope::All,
            (None, Some(search)) => Scope::Search(search),
            (None, None) => Scope::All,
        };
        let mut parts = match &self.backend {
            Backend::Sqlite(pool) => sqlite_read(pool, account, enabled, scope).await?,
            Backend::Postgres(pool) => pg_read(pool, account, enabled, scope).await?,
        };
        // SQL read candidates; the match itself is decided here.
        if let Some(search) = &search {
            retain_matches(&mut parts, search);
        }
        Ok(assemble(parts))
    }
}
