//! Persistence: one Store API over SQLite (default) and PostgreSQL.
//!
//! # Design
//!
//! [`Store`] holds an enum over the two sqlx pools (`Backend`) instead of sqlx's `Any`
//! driver, and `db.rs` is the one place that branches on it: a method body is written once
//! as ordinary async code against a `Db` handle, run by `Store::read` (a pooled connection)
//! or `Store::write` (a transaction that commits exactly when the body returns `Ok`, so an
//! early `return Ok(..)` is as safe as `?`). Every query is still compiled against the
//! concrete driver: native type mapping (no `Any` value conversion per column, no lost
//! `BOOLEAN`/`BIGINT` distinctions), backend-specific transaction starts (`BEGIN IMMEDIATE`
//! on SQLite, so a read-then-write transaction never fails to upgrade its lock), and errors
//! that keep their backend codes for [`StoreError`] mapping. The SQL text itself is shared:
//! `$n` placeholders, `RETURNING`, partial and expression indexes and composite foreign keys
//! mean the same on both, so there is one portable migration set (`migrations/`); only the
//! Gateways page overview (`overview.rs`) takes a different route per backend, for speed.
//!
//! Values: ids are TEXT UUIDs, instants are BIGINT milliseconds ([`model::Timestamp`]),
//! flags BOOLEAN, settings JSON in TEXT. Arguments are typed (`db::Arg`, `args![..]`); rows
//! decode by column name into `#[derive(sqlx::FromRow)]` structs (`rows.rs`). Steps shared
//! by many bodies (audit records, route loading, the row locks of checked changes) are plain
//! functions on a `Db` (`tx.rs`).
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
//! Modules, one aggregate each: `accounts.rs` (accounts, users, personal tokens, audit log),
//! `credentials.rs` (install tokens, node credentials), `gateways.rs` (gateway entity),
//! `gateway_status.rs` (recorded status and history), `environments.rs`, `apis.rs` (APIs and
//! deployments), `environment_migrations.rs`, `nodes.rs`, `issues.rs`, `sessions.rs`,
//! `link.rs` (published configuration and the status job's reads and writes), `overview.rs`
//! (the Gateways page), `notify.rs` (cross-process notices), `seed.rs` (bulk bench data).
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
mod cutover;
mod db;
mod environment_migrations;
mod environments;
mod error;
mod gateway_status;
mod gateways;
mod issues;
mod json;
mod link;
mod nodes;
mod notify;
mod overview;
pub mod seed;
mod sessions;
mod tx;
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
        self.read(|db| Box::pin(async move { db.execute("SELECT 1", Vec::new()).await }))
            .await?;
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

/// The platform shares one store between all request handlers.
const _: () = {
    const fn check<T: Send + Sync + Clone>() {}
    check::<Store>();
};
