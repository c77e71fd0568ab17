//! The one place that branches on the backend: a handle [`Db`] over a pooled connection or
//! a transaction of either database, and [`Store::read`]/[`Store::write`], which run a
//! method body written once as ordinary async code.
//!
//! A body passes its SQL text (one per query, shared by both backends) and typed [`Arg`]s
//! (`args![..]`); rows decode by column name into `#[derive(sqlx::FromRow)]` structs
//! (`rows.rs`), whose derive is generic over the row type and so serves both drivers.
//! [`Store::all`], [`Store::one`] and [`Store::optional`] run a single decoded query.
//! [`Store::write`] commits exactly when the body returns `Ok`: an error (or a panic) drops
//! the transaction, which rolls it back, and no early return can skip the commit.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use model::Timestamp;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Arguments, Database, Encode, FromRow, Postgres, Sqlite, Transaction, Type};

use crate::{Backend, Store, StoreError};

/// A boxed, `Send` future: what a [`Store::read`]/[`Store::write`] body returns.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One bind argument. NULLs keep their type: PostgreSQL refuses a TEXT NULL for a BIGINT.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<Timestamp> for Arg {
    fn from(v: Timestamp) -> Self {
        Arg::Int(Some(v.0))
    }
}
impl From<Option<Timestamp>> for Arg {
    fn from(v: Option<Timestamp>) -> Self {
        Arg::Int(v.map(|t| t.0))
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(Some(v))
    }
}
impl From<Option<bool>> for Arg {
    fn from(v: Option<bool>) -> Self {
        Arg::Bool(v)
    }
}

/// `args![a, b, ..]`: the bind arguments `$1, $2, ..` of one query.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        vec![$($crate::db::Arg::from($a)),*]
    };
}
pub(crate) use args;

/// A row struct both drivers can decode (every `#[derive(sqlx::FromRow)]` in `rows.rs`).
pub(crate) trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> Record for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

enum Handle {
    SqliteConn(PoolConnection<Sqlite>),
    SqliteTx(Transaction<'static, Sqlite>),
    PgConn(PoolConnection<Postgres>),
    PgTx(Transaction<'static, Postgres>),
}

enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Pg(&'c mut PgConnection),
}

/// A pooled connection ([`Store::read`]) or a transaction ([`Store::write`]) of either
/// backend. `'a` is only a marker: it outlives every borrow of the handle, which lets a body
/// capture the caller's references and generic closures (a `check`) without `'static`.
pub(crate) struct Db<'a> {
    handle: Handle,
    _borrows: PhantomData<&'a ()>,
}

/// The bind arguments of one query for the driver `DB`, in order.
fn arguments<'q, DB: Database>(args: Vec<Arg>) -> Result<DB::Arguments<'q>, StoreError>
where
    Option<String>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<bool>: Encode<'q, DB> + Type<DB>,
{
    let mut out = DB::Arguments::default();
    for a in args {
        match a {
            Arg::Text(v) => out.add(v),
            Arg::Int(v) => out.add(v),
            Arg::Bool(v) => out.add(v),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}

impl Db<'_> {
    fn new(handle: Handle) -> Self {
        Self {
            handle,
            _borrows: PhantomData,
        }
    }

    fn conn(&mut self) -> Conn<'_> {
        match &mut self.handle {
            Handle::SqliteConn(c) => Conn::Sqlite(c),
            Handle::SqliteTx(t) => Conn::Sqlite(t),
            Handle::PgConn(c) => Conn::Pg(c),
            Handle::PgTx(t) => Conn::Pg(t),
        }
    }

    /// Runs a statement; the number of rows it changed.
    pub(crate) async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        self.run(sql, args, true).await
    }

    /// Runs a statement that is not kept prepared (its text varies, e.g. with a batch
    /// size); the number of rows it changed.
    pub(crate) async fn execute_uncached(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<u64, StoreError> {
        self.run(sql, args, false).await
    }

    async fn run(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
        persistent: bool,
    ) -> Result<u64, StoreError> {
        Ok(match self.conn() {
            Conn::Sqlite(c) => sqlx::query_with(sql, arguments::<Sqlite>(args)?)
                .persistent(persistent)
                .execute(c)
                .await?
                .rows_affected(),
            Conn::Pg(c) => sqlx::query_with(sql, arguments::<Postgres>(args)?)
                .persistent(persistent)
                .execute(c)
                .await?
                .rows_affected(),
        })
    }

    /// All rows of a query, decoded by column name.
    pub(crate) async fn fetch_all<T: Record>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<T>, StoreError> {
        Ok(match self.conn() {
            Conn::Sqlite(c) => {
                sqlx::query_as_with::<_, T, _>(sql, arguments::<Sqlite>(args)?)
                    .fetch_all(c)
                    .await?
            }
            Conn::Pg(c) => {
                sqlx::query_as_with::<_, T, _>(sql, arguments::<Postgres>(args)?)
                    .fetch_all(c)
                    .await?
            }
        })
    }

    /// The first row of a query, if any.
    pub(crate) async fn fetch_optional<T: Record>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Option<T>, StoreError> {
        Ok(match self.conn() {
            Conn::Sqlite(c) => {
                sqlx::query_as_with::<_, T, _>(sql, arguments::<Sqlite>(args)?)
                    .fetch_optional(c)
                    .await?
            }
            Conn::Pg(c) => {
                sqlx::query_as_with::<_, T, _>(sql, arguments::<Postgres>(args)?)
                    .fetch_optional(c)
                    .await?
            }
        })
    }

    /// The first row of a query; [`StoreError::NotFound`] when there is none.
    pub(crate) async fn fetch_one<T: Record>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<T, StoreError> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn commit(self) -> Result<(), StoreError> {
        match self.handle {
            Handle::SqliteTx(t) => t.commit().await?,
            Handle::PgTx(t) => t.commit().await?,
            Handle::SqliteConn(_) | Handle::PgConn(_) => {}
        }
        Ok(())
    }
}

impl Store {
    /// Runs `body` on a pooled connection (no transaction: each statement stands alone).
    pub(crate) async fn read<'a, T, E, F>(&self, body: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c mut Db<'a>) -> BoxFuture<'c, Result<T, E>>,
        E: From<StoreError>,
    {
        let handle = match &self.backend {
            Backend::Sqlite(p) => Handle::SqliteConn(p.acquire().await.map_err(StoreError::from)?),
            Backend::Postgres(p) => Handle::PgConn(p.acquire().await.map_err(StoreError::from)?),
        };
        body(&mut Db::new(handle)).await
    }

    /// Runs `body` in a transaction that commits iff it returns `Ok`; an `Err` rolls back,
    /// so a failed mutation leaves neither a half-write nor an audit record.
    pub(crate) async fn write<'a, T, E, F>(&self, body: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c mut Db<'a>) -> BoxFuture<'c, Result<T, E>>,
        E: From<StoreError>,
    {
        let handle = match &self.backend {
            // IMMEDIATE takes the write lock up front: a deferred transaction that reads
            // and then writes can fail with SQLITE_BUSY instead of waiting.
            Backend::Sqlite(p) => Handle::SqliteTx(
                p.begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(StoreError::from)?,
            ),
            Backend::Postgres(p) => Handle::PgTx(p.begin().await.map_err(StoreError::from)?),
        };
        let mut db = Db::new(handle);
        let out = body(&mut db).await?;
        db.commit().await?;
        Ok(out)
    }

    /// One query on a pooled connection: every row, decoded into `T`.
    pub(crate) async fn all<R, T>(&self, sql: &str, args: Vec<Arg>) -> Result<Vec<T>, StoreError>
    where
        R: Record,
        T: TryFrom<R, Error = StoreError> + Send,
    {
        self.read(move |db| {
            Box::pin(async move {
                db.fetch_all::<R>(sql, args)
                    .await?
                    .into_iter()
                    .map(T::try_from)
                    .collect()
            })
        })
        .await
    }

    /// One query on a pooled connection: its first row decoded into `T`, `NotFound` when none.
    pub(crate) async fn one<R, T>(&self, sql: &str, args: Vec<Arg>) -> Result<T, StoreError>
    where
        R: Record,
        T: TryFrom<R, Error = StoreError> + Send,
    {
        self.read(move |db| Box::pin(async move { db.fetch_one::<R>(sql, args).await?.try_into() }))
            .await
    }

    /// One query on a pooled connection: its first row decoded into `T`, if any.
    pub(crate) async fn optional<R, T>(
        &self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Option<T>, StoreError>
    where
        R: Record,
        T: TryFrom<R, Error = StoreError> + Send,
    {
        self.read(move |db| {
            Box::pin(async move {
                db.fetch_optional::<R>(sql, args)
                    .await?
                    .map(T::try_from)
                    .transpose()
            })
        })
        .await
    }
}
