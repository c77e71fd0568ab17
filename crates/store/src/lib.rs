//! Persistence: one Store API over SQLite (default) and PostgreSQL.
//!
//! # Design
//!
//! [`Store`] holds an enum over the two sqlx pools (`Backend`) instead of sqlx's `Any`
//! driver. Each method's body is written once inside `with_conn!` or `with_tx!`, which
//! expand it per backend, so every query is compiled against the concrete driver: native
//! type mapping (no `Any` value conversion per column, no lost `BOOLEAN`/`BIGINT`
//! distinctions), backend-specific transaction starts (`BEGIN IMMEDIATE` on SQLite, so a
//! read-then-write transaction never fails to upgrade its lock), and errors that keep their
//! backend codes for [`StoreError`] mapping. The SQL text itself is shared: `$n`
//! placeholders, `RETURNING`, partial and expression indexes and composite foreign keys
//! mean the same on both, so there is one portable migration set (`migrations/`); it can
//! be split per backend later without changing checksums of already applied files.
//!
//! Values: ids are TEXT UUIDs, instants are BIGINT milliseconds ([`model::Timestamp`]),
//! flags BOOLEAN, settings JSON in TEXT. Rows decode by position (`rows.rs`).
//!
//! Tenancy: every method on tenant data takes the [`model::AccountId`] and puts it in the `WHERE`
//! clause, so an object of another account is [`StoreError::NotFound`] exactly like a
//! missing one; composite foreign keys `(id, account_id)` stop cross-account references.
//!
//! Audit: every mutation takes an [`Audit`] and commits the change and its audit record in
//! one transaction; the audit's `at` is also the time recorded for the change. Telemetry
//! written by the link server and the status job (node reports, issues, status, generation
//! bumps) is not audited: nobody decided it.
//!
//! Testing: `tests/conformance.rs` generates every test for both backends. SQLite always
//! runs (a temp file per test); PostgreSQL runs when `SWITCHYARD_TEST_POSTGRES_URL` is set,
//! e.g. `SWITCHYARD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo test
//! -p store`, each test in a fresh schema (`?options=-c search_path=…`) dropped afterwards.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

#[macro_use]
mod rows;
mod accounts;
mod api_deployments;
mod apis;
mod audit;
mod credentials;
mod environment_migrations;
mod environments;
mod error;
mod gateways;
mod issues;
mod json;
mod link;
mod nodes;
mod notify;
mod overview;
pub mod seed;
mod sessions;
mod types;

pub use api_deployments::PlacedDeployment;
pub use audit::{Actor, Audit, AuditRecord, AuditResult, AuditTarget};
pub use error::{Checked, ConflictKind, StoreError};
pub use link::{
    GatewayConfigInput, GatewayStatusInput, NodeStatusRow, NodeStatusWrite, PublishedConfig,
    STATUS_WRITES_PER_STATEMENT,
};
pub use notify::{Listener, MAX_NOTICE_BYTES};
pub use types::*;

/// Runs `$body` once per backend with `$c` bound to a pooled connection (use `&mut *$c`).
macro_rules! with_conn {
    ($store:expr, |$c:ident| $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite(pool) => {
                let mut $c = pool.acquire().await.map_err($crate::StoreError::from)?;
                $body
            }
            $crate::Backend::Postgres(pool) => {
                let mut $c = pool.acquire().await.map_err($crate::StoreError::from)?;
                $body
            }
        }
    };
}

/// Runs `$body` once per backend inside a write transaction bound to `$c` (use `&mut *$c`).
/// The transaction commits when `$body` completes; an early return (`?`, `return Err`)
/// drops it, which rolls back, so a failed mutation leaves neither a half-write nor an
/// audit record. Hence a body must never `return Ok(..)`: that would skip the commit.
macro_rules! with_tx {
    ($store:expr, |$c:ident| $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite(pool) => {
                // IMMEDIATE takes the write lock up front: a deferred transaction that reads
                // and then writes can fail with SQLITE_BUSY instead of waiting.
                let mut $c = pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err($crate::StoreError::from)?;
                let out = $body;
                $c.commit().await.map_err($crate::StoreError::from)?;
                out
            }
            $crate::Backend::Postgres(pool) => {
                let mut $c = pool.begin().await.map_err($crate::StoreError::from)?;
                let out = $body;
                $c.commit().await.map_err($crate::StoreError::from)?;
                out
            }
        }
    };
}

/// Writes one audit record on `$c` and evaluates to the [`AuditRecord`].
macro_rules! insert_audit {
    ($c:ident, $account:expr, $audit:expr, $result:expr) => {{
        let rec = $crate::audit::record($account, $audit, $result);
        sqlx::query(
            "INSERT INTO audit_records (id, account_id, actor_kind, actor_id, action, \
             target_kind, target_id, result, details, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(rec.id.to_string())
        .bind(rec.account_id.map(|a| a.to_string()))
        .bind(rec.actor.kind())
        .bind(rec.actor.id())
        .bind(rec.action.clone())
        .bind(rec.target.as_ref().map(|t| t.kind.clone()))
        .bind(rec.target.as_ref().and_then(|t| t.id.clone()))
        .bind(rec.result.as_str())
        .bind(rec.details.to_string())
        .bind(rec.at.0)
        .execute(&mut *$c)
        .await?;
        rec
    }};
}

/// Reads the [`GatewayRoutes`] of `$gateway` on `$c` (inside the caller's transaction when
/// `$c` is one, so a check sees exactly what the change commits against).
macro_rules! load_routes {
    ($c:ident, $account:expr, $gateway:expr) => {{
        let account: model::AccountId = $account;
        let gateway: model::GatewayId = $gateway;
        let env_rows = sqlx::query(concat!(
            "SELECT ",
            environment_cols!(),
            " FROM environments e WHERE e.gateway_id = $1 AND e.account_id = $2 ORDER BY e.id"
        ))
        .bind($crate::s(gateway))
        .bind($crate::s(account))
        .fetch_all(&mut *$c)
        .await?;
        let mut environments = Vec::with_capacity(env_rows.len());
        for r in &env_rows {
            environments.push($crate::rows::environment(&mut $crate::rows::Cur::new(r))?);
        }
        let dep_rows = sqlx::query(concat!(
            "SELECT ",
            deployment_cols!(),
            ", ",
            api_cols!(),
            " FROM deployments d JOIN apis a ON a.id = d.api_id \
             JOIN environments e ON e.id = d.environment_id \
             WHERE e.gateway_id = $1 AND d.account_id = $2 ORDER BY d.id"
        ))
        .bind($crate::s(gateway))
        .bind($crate::s(account))
        .fetch_all(&mut *$c)
        .await?;
        let mut deployments = Vec::with_capacity(dep_rows.len());
        for r in &dep_rows {
            let mut cur = $crate::rows::Cur::new(r);
            let deployment = $crate::rows::deployment(&mut cur)?;
            let api = $crate::rows::api(&mut cur)?;
            if let Some(env) = environments
                .iter()
                .find(|e| e.id == deployment.environment_id)
            {
                deployments.push($crate::RouteEntry {
                    environment_name: env.name.clone(),
                    environment_paths: env.paths.clone(),
                    deployment,
                    api,
                });
            }
        }
        $crate::GatewayRoutes {
            gateway_id: gateway,
            environments,
            deployments,
        }
    }};
}

/// Locks a non-deleted gateway row of the account for the rest of the transaction
/// (a no-op update: a row lock on PostgreSQL; SQLite already holds the write lock), so
/// concurrent checked changes on one gateway serialize. `NotFound` when it is not live.
macro_rules! lock_gateway {
    ($c:ident, $account:expr, $gateway:expr) => {{
        let done = sqlx::query(
            "UPDATE gateways SET config_generation = config_generation \
             WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
        )
        .bind($crate::s($gateway))
        .bind($crate::s($account))
        .execute(&mut *$c)
        .await?;
        if done.rows_affected() == 0 {
            return Err($crate::StoreError::NotFound.into());
        }
    }};
}

/// Locks, in the store-wide lock order **gateways (by id) → environment**, the gateway an
/// environment is attached to, the optional destination `$dest` (which must be live), and
/// the environment itself; evaluates to the environment as locked.
///
/// Every change of what is attached to a gateway, or of the paths and deployments of its
/// environments, holds that gateway's row lock, so a check run under it sees a state no
/// concurrent checked change can invalidate. Taking gateways before environments
/// everywhere (soft delete does too) keeps PostgreSQL free of lock-order deadlocks. The
/// environment's gateway is first read unlocked; if it changed before the environment
/// lock was taken, the new one is locked as well (at most one extra round: once the
/// environment row is locked its gateway cannot change). On SQLite `BEGIN IMMEDIATE`
/// already serializes writers and the loop runs once.
macro_rules! lock_environment_and_gateways {
    ($c:ident, $account:expr, $env:expr, $dest:expr) => {{
        let account: model::AccountId = $account;
        let env_id: model::EnvironmentId = $env;
        let dest: Option<model::GatewayId> = $dest;
        let row =
            sqlx::query("SELECT gateway_id FROM environments WHERE id = $1 AND account_id = $2")
                .bind($crate::s(env_id))
                .bind($crate::s(account))
                .fetch_optional(&mut *$c)
                .await?;
        let mut seen: Option<model::GatewayId> =
            $crate::found(row).and_then(|r| $crate::rows::Cur::new(&r).opt_id())?;
        let mut locked: Vec<model::GatewayId> = Vec::new();
        let env = loop {
            let mut want: Vec<model::GatewayId> = seen
                .into_iter()
                .chain(dest)
                .filter(|g| !locked.contains(g))
                .collect();
            want.sort_unstable();
            want.dedup();
            for g in want {
                // Deleted or not: the environment may have been detached meanwhile.
                sqlx::query(
                    "UPDATE gateways SET config_generation = config_generation \
                     WHERE id = $1 AND account_id = $2",
                )
                .bind($crate::s(g))
                .bind($crate::s(account))
                .execute(&mut *$c)
                .await?;
                locked.push(g);
            }
            let row = sqlx::query(concat!(
                "UPDATE environments AS e SET name = e.name WHERE e.id = $1 AND e.account_id = $2 \
                 RETURNING ",
                environment_cols!(bare)
            ))
            .bind($crate::s(env_id))
            .bind($crate::s(account))
            .fetch_optional(&mut *$c)
            .await?;
            let env = $crate::found(row)
                .and_then(|r| $crate::rows::environment(&mut $crate::rows::Cur::new(&r)))?;
            if env.gateway_id == seen || env.gateway_id.is_none_or(|g| locked.contains(&g)) {
                break env;
            }
            seen = env.gateway_id;
        };
        if let Some(d) = dest {
            let live = sqlx::query(
                "SELECT id FROM gateways WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
            )
            .bind($crate::s(d))
            .bind($crate::s(account))
            .fetch_optional(&mut *$c)
            .await?;
            $crate::found(live)?;
        }
        env
    }};
}

pub(crate) use {
    insert_audit, load_routes, lock_environment_and_gateways, lock_gateway, with_conn, with_tx,
};

/// The two backends. Pools are reference-counted, so cloning a [`Store`] is cheap.
#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which database a [`Store`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

/// Tuning of a [`Store`]; the defaults suit one platform process.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// How long an operation waits for a connection before answering
    /// [`StoreError::Unavailable`]. Short, so a database that is down answers fast.
    pub acquire_timeout: Duration,
    /// How long SQLite waits for another writer before giving up.
    pub sqlite_busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The persistence API of the platform. See the crate documentation for the design.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) backend: Backend,
    /// Notices on SQLite, where every listener lives in this process (see `notify.rs`).
    pub(crate) local: tokio::sync::broadcast::Sender<String>,
}

impl Store {
    /// Opens the database at `url` (`sqlite://PATH`, `sqlite::memory:` or `postgres://…`)
    /// and applies the embedded migrations. A SQLite file is created when missing.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(e.to_string()))?;
            if !memory {
                // "Created if missing" includes its directory, e.g. a fresh data dir.
                if let Some(dir) = connect.get_filename().parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            StoreError::Config(format!("cannot create {}: {e}", dir.display()))
                        })?;
                    }
                }
            }
            let connect = connect
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // WAL with NORMAL is durable across application crashes and consistent
                // across power loss; FULL would fsync every commit.
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(options.sqlite_busy_timeout);
            let mut pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .acquire_timeout(options.acquire_timeout);
            if memory {
                // Each connection to `:memory:` is its own database: keep exactly one, forever.
                pool = pool
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
            let pool = pool.connect_with(connect).await?;
            MIGRATOR.run(&pool).await?;
            Backend::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let connect =
                PgConnectOptions::from_str(url).map_err(|e| StoreError::Config(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            MIGRATOR.run(&pool).await?;
            Backend::Postgres(pool)
        } else {
            return Err(StoreError::Config(
                "database URL must start with sqlite: or postgres:".into(),
            ));
        };
        Ok(Store {
            backend,
            local: notify::local_channel(),
        })
    }

    pub fn backend(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Checks that the database answers (readiness probes).
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_conn!(self, |c| {
            sqlx::query("SELECT 1").execute(&mut *c).await?;
        });
        Ok(())
    }

    /// Closes every connection; later calls answer [`StoreError::Unavailable`].
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }
}

/// Formats an id for a TEXT column.
pub(crate) fn s<T: ToString>(id: T) -> String {
    id.to_string()
}

/// Maps "no row" to [`StoreError::NotFound`].
pub(crate) fn found<T>(v: Option<T>) -> Result<T, StoreError> {
    v.ok_or(StoreError::NotFound)
}

/// The platform shares one store between all request handlers.
const _: () = {
    const fn check<T: Send + Sync + Clone>() {}
    check::<Store>();
};
