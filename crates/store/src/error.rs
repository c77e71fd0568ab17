//! `StoreError`: what a caller of the store can act on, mapped from both backends' errors.

use std::fmt;

/// Why a store operation failed. The platform maps `NotFound` to 404, `Conflict` to 409 and
/// `Unavailable` to 503; everything else is a 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist, or belongs to another account (indistinguishable on purpose).
    #[error("not found")]
    NotFound,
    /// A uniqueness or reference rule of the schema refused the change.
    #[error("conflict: {what}")]
    Conflict { what: ConflictKind },
    /// The database cannot be reached right now (refused, timed out, pool exhausted, busy).
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// The database URL or options are not usable.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// A stored value could not be decoded into its model type.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Any other database error; a bug or an operational problem, never the caller's input.
    #[error("internal database error")]
    Internal(#[source] sqlx::Error),
}

/// The named rule a conflicting change broke.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConflictKind {
    AccountName,
    UserEmail,
    GatewayName,
    EnvironmentName,
    ApiNameVersion,
    /// The API is already deployed to the environment.
    AlreadyDeployed,
    TokenHash,
    /// A node id already registered (by another join, or in another gateway or account).
    NodeId,
    /// The environment already has a migration in progress.
    MigrationInProgress,
    /// The migration is completed and can no longer change.
    MigrationCompleted,
    /// A referenced object is missing, or the object is still referenced.
    Reference,
    /// Another uniqueness rule, by index or constraint name.
    Other(String),
}

impl fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConflictKind::AccountName => f.write_str("account name already in use"),
            ConflictKind::UserEmail => f.write_str("e-mail address already in use"),
            ConflictKind::GatewayName => f.write_str("gateway name already in use"),
            ConflictKind::EnvironmentName => f.write_str("environment name already in use"),
            ConflictKind::ApiNameVersion => f.write_str("an API with this name and version exists"),
            ConflictKind::AlreadyDeployed => {
                f.write_str("the API is already deployed to the environment")
            }
            ConflictKind::TokenHash => f.write_str("token already exists"),
            ConflictKind::NodeId => f.write_str("node id is already registered"),
            ConflictKind::MigrationInProgress => {
                f.write_str("the environment already has a migration in progress")
            }
            ConflictKind::MigrationCompleted => f.write_str("the migration is already completed"),
            ConflictKind::Reference => f.write_str("referenced object is missing or still in use"),
            ConflictKind::Other(name) => write!(f, "unique rule {name} violated"),
        }
    }
}

/// Unique indexes by name. PostgreSQL reports the index name; SQLite names expression
/// indexes and lists `table.column`s otherwise, so both spellings are matched.
fn unique_conflict(db: &dyn sqlx::error::DatabaseError) -> ConflictKind {
    let text = db.constraint().unwrap_or_else(|| db.message());
    let has = |names: &[&str]| names.iter().any(|n| text.contains(n));
    if has(&["accounts_name_key"]) {
        ConflictKind::AccountName
    } else if has(&["users_account_email_key", "users_email_key"]) {
        ConflictKind::UserEmail
    } else if has(&["gateways_name_key"]) {
        ConflictKind::GatewayName
    } else if has(&["environments_name_key"]) {
        ConflictKind::EnvironmentName
    } else if has(&["apis_name_version_key"]) {
        ConflictKind::ApiNameVersion
    } else if has(&["deployments_api_environment_key", "deployments.api_id"]) {
        ConflictKind::AlreadyDeployed
    } else if has(&[
        "environment_migrations_in_progress_key",
        "environment_migrations.environment_id",
    ]) {
        ConflictKind::MigrationInProgress
    } else if has(&["_hash_key", ".token_hash"]) {
        ConflictKind::TokenHash
    } else {
        ConflictKind::Other(text.to_owned())
    }
}

/// PostgreSQL SQLSTATE classes and SQLite codes that mean "try again later", not "bug".
fn is_unavailable_code(code: &str) -> bool {
    // 08: connection exception; 53: insufficient resources; 57P0x: operator intervention
    // (shutdown, crash); 40001/40P01: serialization failure and deadlock, which the lock
    // order of this crate avoids but a retry would cure; 5 and 6 (+ extended 261, 517,
    // 262): SQLITE_BUSY / SQLITE_LOCKED.
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "40001" | "40P01")
        || code.starts_with("57P")
        || matches!(code, "5" | "6" | "261" | "517" | "262")
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(ref db) => match db.kind() {
                ErrorKind::UniqueViolation => StoreError::Conflict {
                    what: unique_conflict(db.as_ref()),
                },
                ErrorKind::ForeignKeyViolation => StoreError::Conflict {
                    what: ConflictKind::Reference,
                },
                _ if db.code().is_some_and(|c| is_unavailable_code(&c)) => {
                    StoreError::Unavailable(e)
                }
                _ => StoreError::Internal(e),
            },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            sqlx::Error::Configuration(ref c) => StoreError::Config(c.to_string()),
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Internal(e),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => StoreError::from(inner),
            other => StoreError::Corrupt(format!("migrations: {other}")),
        }
    }
}

/// The result of a change guarded by a caller-supplied rule check, run inside the store's
/// transaction so the rule sees exactly the state the change is committed against.
#[derive(Debug, thiserror::Error)]
pub enum Checked<E> {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The check refused the change; nothing was written.
    #[error("change refused by check")]
    Rejected(E),
}

impl<E> From<sqlx::Error> for Checked<E> {
    fn from(e: sqlx::Error) -> Self {
        Checked::Store(StoreError::from(e))
    }
}

impl<E> Checked<E> {
    /// The store error, if this is one; handy in tests and for callers whose check cannot fail.
    pub fn into_store(self) -> Option<StoreError> {
        match self {
            Checked::Store(e) => Some(e),
            Checked::Rejected(_) => None,
        }
    }
}
