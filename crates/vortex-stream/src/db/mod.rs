//! Databases as sources and sinks, chosen by URL: SQLite (`sqlite://path`, bundled, nothing to
//! install), PostgreSQL (`postgres://…`) and MariaDB or MySQL (`mysql://…`, `mariadb://…`).
//!
//! A query is a stream of [`Row`]s fetched as the pipeline pulls them: never the whole result
//! at once. Loading a table is a sink that writes in bounded batches, each in its own
//! transaction, and reports exactly what was committed.

mod keyset;
mod pipeline;
mod transaction;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_core::stream::BoxStream;
use futures_core::Stream;
use serde::de::DeserializeOwned;

pub use crate::value::{Row, Value};
pub use keyset::{Keyset, Page};
pub use transaction::Transaction;

use crate::core::Size;
use crate::{Error, ErrorKind, Pipeline, Result};

/// The first two batches a query fetches; each batch after them is twice as large as the one
/// before (up to [`MAX_FETCH`] for SQLite). A consumer that stops early (`take(10)`) so costs
/// at most 16 rows, and a full scan soon fetches in large batches.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const FIRST_FETCH: usize = 8;

/// The sizes of a query's batches: [`FIRST_FETCH`] twice, then doubling up to `max`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn fetch_sizes(max: usize) -> impl Iterator<Item = usize> {
    std::iter::once(FIRST_FETCH).chain(std::iter::successors(Some(FIRST_FETCH), move |size| {
        Some((size * 2).min(max))
    }))
}
/// The largest batch a SQLite query hands over at once (measured: 256-row batches export as
/// fast as 1024-row ones, and 16 exports at once peaked 30 MiB lower).
#[cfg(feature = "sqlite")]
pub(crate) const MAX_FETCH: usize = 256;

/// A database, by URL. Opening it does not connect: each query opens its own connection when
/// the pipeline first pulls, and closes it when the pipeline ends or is dropped.
///
/// # Examples
///
/// ```
/// use vortex_stream::db::Database;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("shop.db");
/// let db = Database::open(&format!("sqlite://{}", path.display()))?;
/// db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT)", vec![]).await?;
/// db.execute("INSERT INTO orders VALUES (1, 'active'), (2, 'shipped')", vec![]).await?;
/// let active = db
///     .query("SELECT id FROM orders WHERE status = ?1", vortex_stream::params!["active"])
///     .map(|row| row.values()[0].clone())
///     .collect::<Vec<_>>()
///     .await?;
/// assert_eq!(active, [vortex_stream::db::Value::Int(1)]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Database {
    backend: Backend,
    name: Arc<str>,
    fetched: Arc<AtomicU64>,
    statement_timeout: Option<std::time::Duration>,
    // Threads SQLite queries may hold at once, and how long one waits for another to end
    // (see `max_open_queries`).
    open_queries: Arc<tokio::sync::Semaphore>,
    open_query_wait: std::time::Duration,
}

/// SQLite queries of one handle (and its clones) open at once, by default: each holds a
/// thread of tokio's blocking pool (512 by default) while it is open.
pub const DEFAULT_MAX_OPEN_QUERIES: usize = 64;

/// How long a SQLite query waits, by default, for one of the handle's others to end before it
/// fails.
pub const DEFAULT_OPEN_QUERY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Clone)]
enum Backend {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::File),
    #[cfg(feature = "postgres")]
    Postgres(String),
    #[cfg(feature = "mysql")]
    Mysql(mysql_async::Opts),
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.name)
            .field("rows_fetched", &self.rows_fetched())
            .finish()
    }
}

impl Database {
    /// A database by URL: `sqlite://path` (`sqlite::memory:` is not supported: each query
    /// has its own connection), `postgres://user:password@host:port/dbname`,
    /// `mysql://user:password@host:port/dbname` (or `mariadb://…`).
    ///
    /// # Errors
    ///
    /// A [`Database`](ErrorKind::Database) error for a URL whose scheme is unknown or whose
    /// support is not compiled in (each database is a cargo feature).
    pub fn open(url: &str) -> Result<Database> {
        let name: Arc<str> = crate::redact::redact(url).into();
        let unsupported = |what: &str| {
            Err(Error::new(ErrorKind::Database, "database: open")
                .with_position(crate::Position::new().with_source(Arc::clone(&name)))
                .with_message(what.to_owned()))
        };
        let backend = if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            #[cfg(feature = "sqlite")]
            {
                Backend::Sqlite(sqlite::File {
                    path: path.into(),
                    wal: true,
                })
            }
            #[cfg(not(feature = "sqlite"))]
            {
                let _ = path;
                return unsupported(
                    "SQLite support is not compiled in: enable the `sqlite` feature",
                );
            }
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            {
                Backend::Postgres(url.to_owned())
            }
            #[cfg(not(feature = "postgres"))]
            {
                return unsupported(
                    "PostgreSQL support is not compiled in: enable the `postgres` feature",
                );
            }
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            #[cfg(feature = "mysql")]
            {
                Backend::Mysql(mysql::options(url, &name)?)
            }
            #[cfg(not(feature = "mysql"))]
            {
                return unsupported(
                    "MariaDB and MySQL support is not compiled in: enable the `mysql` feature",
                );
            }
        } else {
            return unsupported(
                "unknown database URL: expected sqlite://, postgres:// or mysql://",
            );
        };
        Ok(Database {
            backend,
            name,
            fetched: Arc::new(AtomicU64::new(0)),
            statement_timeout: None,
            open_queries: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_OPEN_QUERIES)),
            open_query_wait: DEFAULT_OPEN_QUERY_WAIT,
        })
    }

    /// How many SQLite queries of this handle (and the clones made from it after this call)
    /// may be open at once, and how long a query past that waits for another to end;
    /// [`DEFAULT_MAX_OPEN_QUERIES`] and [`DEFAULT_OPEN_QUERY_WAIT`] unless set.
    ///
    /// A SQLite statement borrows its connection, so it cannot move between threads between
    /// batches the way the other blocking sources do: an open SQLite query holds one thread
    /// of tokio's blocking pool from its first row until it ends or its pipeline is dropped,
    /// also while its consumer is slow. Without a bound, enough open queries (a service's
    /// exports to slow clients) would take every thread of the pool, and every other blocking
    /// task of the process (`tokio::fs`, the other sources) would wait with no error. So a
    /// query past the bound waits for another to end, in the order they came, and fails with
    /// a fatal [`Capacity`](ErrorKind::Capacity) error after `wait`. Keep the bound below
    /// the runtime's `max_blocking_threads`. PostgreSQL, MariaDB and MySQL queries are async
    /// and hold no thread: there it has no effect.
    ///
    /// # Panics
    ///
    /// If `queries` is 0.
    #[must_use]
    pub fn max_open_queries(mut self, queries: usize, wait: std::time::Duration) -> Self {
        assert!(
            queries > 0,
            "max_open_queries: at least one query must be allowed"
        );
        self.open_queries = Arc::new(tokio::sync::Semaphore::new(queries));
        self.open_query_wait = wait;
        self
    }

    /// Has the server end a query of this handle that runs longer than `timeout`, with a
    /// fatal [`Database`](ErrorKind::Database) error: PostgreSQL's `statement_timeout`,
    /// MariaDB's `max_statement_time` (MySQL's `max_execution_time` for `SELECT`s), set on each
    /// query's connection. SQLite has no server to ask: there it has no effect. (A PostgreSQL
    /// URL may also say `options=-c%20statement_timeout%3D5000`.)
    #[must_use]
    pub fn statement_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Whether vortex may switch a SQLite file in SQLite's default journal mode (`delete`) to
    /// WAL when it first opens it (yes unless set): in WAL mode a query reads while a write
    /// commits, so a pipeline that updates the rows of a query as they come works instead of
    /// failing with "database is locked". WAL persists in the file (it adds the `-wal` and
    /// `-shm` files beside it) and needs memory the processes share, which a network file
    /// system does not give: say `false` for a database on one. A file in another journal mode
    /// is left alone. No effect on the servers.
    #[must_use]
    #[cfg_attr(not(feature = "sqlite"), allow(unused_mut))]
    pub fn sqlite_wal(mut self, wal: bool) -> Self {
        #[cfg(feature = "sqlite")]
        #[allow(
            irrefutable_let_patterns,
            reason = "with SQLite alone compiled in, every database is one"
        )]
        if let Backend::Sqlite(file) = &mut self.backend {
            file.wal = wal;
        }
        #[cfg(not(feature = "sqlite"))]
        let _ = wal;
        self
    }

    /// The URL, without its password.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Rows fetched from the database by every query of this handle (and its clones) so far:
    /// what a pipeline really read, which a `take` keeps small.
    #[must_use]
    pub fn rows_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// The rows of `sql`, with `params` bound (never interpolated), fetched as the pipeline
    /// pulls them. SQLite steps its statement on a thread of its own and hands rows over in
    /// batches of 8, 16, 32, ... up to 256; PostgreSQL fetches 8, 16, ... up to 1024 rows from
    /// a portal, then streams the rest of the result as the pipeline takes it; MariaDB and
    /// MySQL read the result row by row from the socket. Where rows stream, TCP holds the server back when the pipeline
    /// stops pulling.
    ///
    /// Parameters are `?1`, `?2` in SQLite, `$1`, `$2` in PostgreSQL and `?` in MariaDB and
    /// MySQL. Dropping the pipeline ends the query on the server (PostgreSQL and MariaDB/MySQL
    /// also ask the server to cancel a statement still running). Every error names the
    /// database (without its password).
    ///
    /// Batches are 8 rows, 8 again, then twice the one before. PostgreSQL fetches a batch when
    /// the one before is used up. SQLite's thread steps each of its first four batches (8, 8,
    /// 16, 32 rows) once the one before was taken, and later ones while the one before waits,
    /// so that a full scan overlaps reading and consuming. Memory: at most three batches of
    /// rows (SQLite: the one consumed, one waiting, one being stepped; PostgreSQL: two;
    /// MariaDB and MySQL: one row, and the driver's read buffer). So `take(10)` reads 16 rows
    /// from PostgreSQL, at most 32 from SQLite (8 + 8, and the 16 stepped meanwhile) and 10
    /// from MariaDB or MySQL (the server may have sent more into the socket's buffer),
    /// whatever the table's size.
    pub fn query(
        &self,
        sql: impl Into<String>,
        params: Vec<Value>,
    ) -> Pipeline<BoxStream<'static, Result<Row>>> {
        let sql = sql.into();
        let query = Query {
            sql,
            params,
            name: Arc::clone(&self.name),
            fetched: Arc::clone(&self.fetched),
            statement_timeout: self.statement_timeout,
        };
        match &self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(path) => sqlite::query(
                path.clone(),
                query,
                Arc::clone(&self.open_queries),
                self.open_query_wait,
            ),
            #[cfg(feature = "postgres")]
            Backend::Postgres(url) => postgres::query(url.clone(), query),
            #[cfg(feature = "mysql")]
            Backend::Mysql(opts) => mysql::query(opts.clone(), query),
        }
    }

    /// The rows of `sql` decoded into `T` with serde, columns matched to fields by name.
    ///
    /// A value that does not fit its field is a [`Decode`](ErrorKind::Decode) error item
    /// naming the column and the row.
    pub fn query_as<T>(
        &self,
        sql: impl Into<String>,
        params: Vec<Value>,
    ) -> Pipeline<BoxStream<'static, Result<T>>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.query(sql, params)
            .try_map(|row| row.deserialize::<T>())
            .boxed()
    }

    /// The bytes of PostgreSQL's `COPY (sql) TO STDOUT` in `format`: the server's own fast
    /// export, as it sends it, for writing straight to a file with
    /// [`BytesSink`](crate::sinks::BytesSink). The server encodes every value, so this is the
    /// fastest way out of PostgreSQL, in PostgreSQL's formats (its dates and numbers as it
    /// writes them).
    ///
    /// `COPY` cannot bind parameters: `sql` is a query without any (filter with
    /// [`query`](Database::query) when a value comes from outside). Chunks are `CopyData`
    /// messages, about one row each; dropping the pipeline cancels the statement on the
    /// server. Memory: the driver's read buffer, whatever the result's size.
    ///
    /// On SQLite, MariaDB and MySQL the pipeline's one item is a
    /// [`Database`](ErrorKind::Database) error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use vortex_stream::db::{CopyFormat, Database};
    /// use vortex_stream::io::Output;
    /// use vortex_stream::sinks::BytesSink;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let db = Database::open("postgres://postgres@127.0.0.1/shop")?;
    /// db.copy_out("SELECT * FROM orders", CopyFormat::Csv { header: true })
    ///     .write(BytesSink, Output::path("orders.csv"))
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn copy_out(
        &self,
        sql: impl Into<String>,
        format: CopyFormat,
    ) -> Pipeline<BoxStream<'static, Result<bytes::Bytes>>> {
        let sql = sql.into();
        match &self.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(url) => {
                postgres::copy_out(url.clone(), sql, format, Arc::clone(&self.name))
            }
            #[allow(unreachable_patterns)]
            _ => {
                let _ = (sql, format);
                let err = Error::new(ErrorKind::Database, "database: copy out")
                    .with_position(crate::Position::new().with_source(Arc::clone(&self.name)))
                    .with_message("COPY TO STDOUT is PostgreSQL's: use `query` here");
                Pipeline::from_results(std::iter::once(Err(err))).boxed()
            }
        }
    }

    /// Runs a statement that returns no rows (DDL, `INSERT`, `UPDATE`); returns the rows it
    /// changed.
    ///
    /// # Errors
    ///
    /// A [`Database`](ErrorKind::Database) error naming the database.
    pub async fn execute(&self, sql: impl Into<String>, params: Vec<Value>) -> Result<u64> {
        let sql = sql.into();
        match &self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(path) => {
                sqlite::execute(path.clone(), sql, params, Arc::clone(&self.name)).await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(url) => postgres::execute(url, &sql, &params, &self.name).await,
            #[cfg(feature = "mysql")]
            Backend::Mysql(opts) => mysql::execute(opts, &sql, &params, &self.name).await,
        }
    }

    /// Loads the rows of `pipeline` into `table`: see [`Pipeline::load`].
    pub(crate) async fn load<S, T>(&self, pipeline: S, table: &Table) -> Result<Loaded>
    where
        S: Stream<Item = Result<T>> + Send,
        T: IntoValues + Send + 'static,
    {
        let loading = async {
            match &self.backend {
                #[cfg(feature = "sqlite")]
                Backend::Sqlite(path) => {
                    sqlite::load(path.clone(), Arc::clone(&self.name), pipeline, table).await
                }
                #[cfg(any(feature = "postgres", feature = "mysql"))]
                _ => {
                    let batches = Pipeline::from_stream(pipeline).chunk(table.batch);
                    self.load_on_server(batches, table, &mut |_| {}).await
                }
            }
        };
        self.traced_load(table, loading).await
    }

    /// `loading` in a span of its own, and an event for what it committed.
    async fn traced_load(
        &self,
        table: &Table,
        loading: impl std::future::Future<Output = Result<Loaded>>,
    ) -> Result<Loaded> {
        let span = tracing::debug_span!("vortex.load", db = %self.name, table = table.name());
        let loaded = tracing::Instrument::instrument(loading, span.clone()).await;
        if let Ok(loaded) = &loaded {
            tracing::debug!(parent: &span, rows = loaded.rows, batches = loaded.batches, "loaded");
        }
        loaded
    }

    /// Loads each batch of `batches` into `table`, one transaction each (or one in all, for
    /// [`Table::all_or_nothing`]), telling `on_commit` after each commit what is committed
    /// in all. SQLite loads each batch on its own; the servers keep one connection.
    pub(crate) async fn load_batches<S, T>(
        &self,
        batches: S,
        table: &Table,
        on_commit: OnCommit<'_>,
    ) -> Result<Loaded>
    where
        S: Stream<Item = Result<Vec<T>>> + Send,
        T: IntoValues + Send + 'static,
    {
        let loading = async {
            match &self.backend {
                #[cfg(feature = "sqlite")]
                Backend::Sqlite(path) => {
                    use futures_util::StreamExt as _;
                    let mut batches = std::pin::pin!(batches);
                    let mut total = Loaded::default();
                    while let Some(batch) = batches.next().await {
                        let rows = futures_util::stream::iter(batch?.into_iter().map(Ok));
                        let name = Arc::clone(&self.name);
                        let loaded = sqlite::load(path.clone(), name, rows, table).await?;
                        total.rows += loaded.rows;
                        total.batches += 1;
                        on_commit(total);
                    }
                    Ok(total)
                }
                #[cfg(any(feature = "postgres", feature = "mysql"))]
                _ => self.load_on_server(batches, table, on_commit).await,
            }
        };
        self.traced_load(table, loading).await
    }

    /// [`load_batches`](Database::load_batches) on a server: one connection for every batch.
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    async fn load_on_server<S, T>(
        &self,
        batches: S,
        table: &Table,
        on_commit: OnCommit<'_>,
    ) -> Result<Loaded>
    where
        S: Stream<Item = Result<Vec<T>>> + Send,
        T: IntoValues + Send + 'static,
    {
        match &self.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(url) => {
                postgres::load(url, &self.name, batches, table, on_commit).await
            }
            #[cfg(feature = "mysql")]
            Backend::Mysql(opts) => mysql::load(opts, &self.name, batches, table, on_commit).await,
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(_) => Err(Error::internal("database: load", "SQLite is no server")),
        }
    }
}

/// What a query source needs to run.
pub(crate) struct Query {
    pub(crate) sql: String,
    pub(crate) params: Vec<Value>,
    pub(crate) name: Arc<str>,
    pub(crate) fetched: Arc<AtomicU64>,
    // Used by the servers' sources; SQLite has none to ask.
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    pub(crate) statement_timeout: Option<std::time::Duration>,
}

/// How long connecting to a server may take (TCP, handshake, authentication) before it is an
/// error: a server that accepts the connection and never answers must not hang the pipeline.
/// A PostgreSQL URL may set its own with `connect_timeout=SECONDS`.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The error for a connection the server did not complete within `after`.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn connect_timed_out(
    operation: &'static str,
    name: &Arc<str>,
    after: std::time::Duration,
) -> Error {
    Error::new(ErrorKind::Timeout, operation)
        .with_position(crate::Position::new().with_source(Arc::clone(name)))
        .with_message(format!("the server did not answer within {after:?}"))
        .fatal()
}

/// The error for a failure reported by a database driver. It is [`fatal`](Error::fatal): a
/// query or connection that failed yields no more rows, and a policy skipping it would make a
/// cut-off result look whole. (A row that does not decode is a `Decode` error, not this.)
pub(crate) fn db_error(
    operation: &'static str,
    name: &Arc<str>,
    cause: impl Into<crate::BoxError>,
) -> Error {
    Error::from_boxed(ErrorKind::Database, operation, cause.into())
        .or_position(|| crate::Position::new().with_source(Arc::clone(name)))
        .fatal()
}

/// The error for a value of record `index` that does not decode: the column, and why.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) fn column_error(
    operation: &'static str,
    name: &Arc<str>,
    index: u64,
    column: &str,
    detail: impl fmt::Display,
) -> Error {
    Error::new(ErrorKind::Decode, operation)
        .with_position(record_at(name, index))
        .with_message(format!("column `{column}`: {detail}"))
}

/// Record `index` of the query on `name`.
pub(crate) fn record_at(name: &Arc<str>, index: u64) -> crate::Position {
    crate::Position::new()
        .with_source(Arc::clone(name))
        .with_record(index)
}

/// The format of [`Database::copy_out`]: PostgreSQL's `COPY` formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CopyFormat {
    /// CSV, with a header line of column names or not.
    Csv {
        /// Whether the first line names the columns.
        header: bool,
    },
    /// PostgreSQL's tab-separated text format (`\N` for `NULL`).
    Text,
    /// PostgreSQL's binary format.
    Binary,
}

/// How [`Pipeline::load`] writes rows: see [`Table::method`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadMethod {
    /// Each database's fastest way: `COPY FROM STDIN` on PostgreSQL, a prepared `INSERT`
    /// stepped per row on SQLite, multi-row `INSERT`s on MariaDB and MySQL.
    #[default]
    Fastest,
    /// Multi-row `INSERT` statements with bound parameters (up to 1000 rows each). On
    /// PostgreSQL this works where `COPY` cannot (a role without `COPY` rights, a pooler in
    /// statement mode) and lets a trigger see ordinary inserts; elsewhere it is what
    /// [`Fastest`](LoadMethod::Fastest) does already.
    Inserts,
}

/// A table to load rows into, and how: see [`Pipeline::load`].
///
/// ```
/// use vortex_stream::db::Table;
///
/// let table = Table::new("orders", ["id", "email", "amount"])
///     .batch(5000)
///     .upsert(["id"]);
/// # let _ = table;
/// ```
#[derive(Clone, Debug)]
pub struct Table {
    pub(crate) name: String,
    pub(crate) columns: Vec<String>,
    pub(crate) batch: NonZeroUsize,
    pub(crate) conflict: Option<Vec<String>>,
    pub(crate) method: LoadMethod,
    pub(crate) all_or_nothing: bool,
}

impl Table {
    /// Rows go into these columns of `name`, in order; 1000 rows a batch.
    pub fn new<I, C>(name: impl Into<String>, columns: I) -> Self
    where
        I: IntoIterator<Item = C>,
        C: Into<String>,
    {
        Table {
            name: name.into(),
            columns: columns.into_iter().map(Into::into).collect(),
            batch: NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN),
            conflict: None,
            method: LoadMethod::Fastest,
            all_or_nothing: false,
        }
    }

    /// Loads every batch in one transaction, committed when the pipeline ends: the table
    /// gets all the rows or none. Batches still bound the memory the load holds (the
    /// database keeps the uncommitted rows, not the pipeline). A failed batch, an error item
    /// upstream or a pipeline dropped before its end rolls everything back, and the error
    /// says nothing was committed.
    #[must_use]
    pub fn all_or_nothing(mut self) -> Self {
        self.all_or_nothing = true;
        self
    }

    /// What a load has committed when it has loaded `loaded`: all of it, or (all or nothing)
    /// none of it until the end.
    pub(crate) fn committed(&self, loaded: Loaded) -> Loaded {
        if self.all_or_nothing {
            Loaded::default()
        } else {
            loaded
        }
    }

    /// The table's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How rows are written: [`LoadMethod::Fastest`] unless set.
    #[must_use]
    pub fn method(mut self, method: LoadMethod) -> Self {
        self.method = method;
        self
    }

    /// Rows per batch (each batch is one transaction).
    #[must_use]
    pub fn batch(mut self, rows: impl Size) -> Self {
        let rows = rows.non_zero("batch");
        self.batch = rows;
        self
    }

    /// Update the row instead when one with the same values in `keys` exists (an upsert).
    #[must_use]
    pub fn upsert<I, C>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = C>,
        C: Into<String>,
    {
        self.conflict = Some(keys.into_iter().map(Into::into).collect());
        self
    }

    /// A quoted identifier.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn quote(name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn quoted_columns(&self) -> String {
        self.columns
            .iter()
            .map(|c| Table::quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a load committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Rows committed.
    pub rows: u64,
    /// Batches committed.
    pub batches: u64,
}

/// A value that can become one row of a [`Table`]: its values in the table's column order.
pub trait IntoValues {
    /// The row's values.
    fn into_values(self) -> Vec<Value>;
}

impl IntoValues for Vec<Value> {
    fn into_values(self) -> Vec<Value> {
        self
    }
}

impl IntoValues for Row {
    fn into_values(self) -> Vec<Value> {
        Row::into_values(self)
    }
}

/// A server connection a load writes through, batch by batch: see [`load_in_batches`].
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) trait BatchTarget {
    /// Runs `BEGIN`, `COMMIT` or `ROLLBACK`.
    fn run(
        &mut self,
        statement: &'static str,
    ) -> impl std::future::Future<Output = Result<()>> + Send;

    /// Writes one batch in the open transaction; on failure, the offset in the batch of the
    /// row the database blamed, if it said.
    fn write(
        &mut self,
        rows: &[Vec<Value>],
    ) -> impl std::future::Future<Output = std::result::Result<(), (Option<u64>, Error)>> + Send;

    /// After a failed batch was rolled back: its first bad row and the database's words about
    /// it, when the failure did not say which row it was and the target can find out.
    fn locate(
        &mut self,
        rows: &[Vec<Value>],
    ) -> impl std::future::Future<Output = Option<(u64, Error)>> + Send;
}

/// What a load tells after each commit: what it has committed in all so far.
pub(crate) type OnCommit<'a> = &'a mut (dyn FnMut(Loaded) + Send);

/// The load loop of the servers: each batch of `batches` in its own transaction (or all in
/// one, for [`Table::all_or_nothing`]); a failed batch is rolled back and named. After each
/// commit, `on_commit` is told what is committed in all.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) async fn load_in_batches<S, T, B>(
    batches: S,
    table: &Table,
    target: &mut B,
    on_commit: OnCommit<'_>,
) -> Result<Loaded>
where
    S: Stream<Item = Result<Vec<T>>> + Send,
    T: IntoValues + Send + 'static,
    B: BatchTarget + Send,
{
    use futures_util::StreamExt as _;
    let mut batches = std::pin::pin!(batches);
    let mut loaded = Loaded::default();
    let committed = |loaded: Loaded| table.committed(loaded);
    let mut open_transaction = false;
    loop {
        let rows: Vec<Vec<Value>> = match batches.next().await {
            Some(Ok(batch)) => batch.into_iter().map(IntoValues::into_values).collect(),
            Some(Err(err)) => {
                if open_transaction {
                    let _ = target.run("ROLLBACK").await;
                }
                return Err(upstream_failed(err, committed(loaded)));
            }
            None => {
                if open_transaction {
                    commit(target, loaded).await?;
                    on_commit(loaded);
                }
                return Ok(loaded);
            }
        };
        let first = loaded.rows;
        if !open_transaction {
            target.run("BEGIN").await?;
            open_transaction = true;
        }
        if let Err((offset, err)) = target.write(&rows).await {
            // Rolls back the batch, or (all or nothing) the load.
            let _ = target.run("ROLLBACK").await;
            let (offset, err) = match offset {
                Some(offset) => (Some(offset), err),
                None => match target.locate(&rows).await {
                    Some((offset, cause)) => (Some(offset), cause),
                    None => (None, err),
                },
            };
            let bad = offset.map(|o| first + o);
            return Err(batch_error(
                err,
                loaded.batches,
                first,
                bad,
                committed(loaded),
            ));
        }
        let before = loaded;
        loaded.rows += rows.len() as u64;
        loaded.batches += 1;
        if !table.all_or_nothing {
            commit(target, before).await?;
            open_transaction = false;
            on_commit(loaded);
        }
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn commit<B: BatchTarget>(target: &mut B, loaded: Loaded) -> Result<()> {
    target
        .run("COMMIT")
        .await
        .map_err(|err| batch_error(err, loaded.batches, loaded.rows, None, Loaded::default()))
}

/// The error for a load whose pipeline failed: the pipeline's error, with what was committed.
pub(crate) fn upstream_failed(cause: Error, committed: Loaded) -> Error {
    let mut err = Error::new(cause.kind(), "database: load").with_message(format!(
        "the pipeline failed after {} rows in {} batches were committed: {}",
        committed.rows,
        committed.batches,
        cause.message()
    ));
    if let Some(position) = cause.position() {
        err = err.with_position(position.clone());
    }
    err.with_source(cause)
}

#[cfg(feature = "sqlite")]
/// The `INSERT` of one row into `table`, with placeholders from `placeholder(1..)`, and an
/// upsert clause when the table has conflict keys (`excluded` names the proposed row).
pub(crate) fn insert_sql(
    table: &Table,
    placeholder: impl Fn(usize) -> String,
    excluded: &str,
) -> String {
    let placeholders = (1..=table.columns.len())
        .map(placeholder)
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ({placeholders})",
        Table::quote(&table.name),
        table.quoted_columns()
    );
    if let Some(keys) = &table.conflict {
        sql.push_str(&upsert_clause(table, keys, excluded));
    }
    sql
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// `ON CONFLICT (keys) DO UPDATE SET col = excluded.col, ...` (or `DO NOTHING` when every
/// column is a key).
pub(crate) fn upsert_clause(table: &Table, keys: &[String], excluded: &str) -> String {
    let keys_sql = keys
        .iter()
        .map(|k| Table::quote(k))
        .collect::<Vec<_>>()
        .join(", ");
    let updates: Vec<String> = table
        .columns
        .iter()
        .filter(|c| !keys.contains(c))
        .map(|c| format!("{0} = {excluded}.{0}", Table::quote(c)))
        .collect();
    if updates.is_empty() {
        format!(" ON CONFLICT ({keys_sql}) DO NOTHING")
    } else {
        format!(
            " ON CONFLICT ({keys_sql}) DO UPDATE SET {}",
            updates.join(", ")
        )
    }
}

/// The error for a failed batch: what failed, where, and what had been committed before.
pub(crate) fn batch_error(
    cause: Error,
    batch: u64,
    first_row: u64,
    bad_row: Option<u64>,
    committed: Loaded,
) -> Error {
    let row = bad_row.map_or_else(String::new, |r| format!(" at row {r}"));
    let message = format!(
        "batch {batch} (rows from {first_row}) failed{row} and was rolled back; {} rows in {} earlier batches were committed: {}",
        committed.rows,
        committed.batches,
        cause.message()
    );
    let mut err = Error::new(ErrorKind::Database, "database: load").with_message(message);
    let mut position = cause.position().cloned().unwrap_or_default();
    if let Some(row) = bad_row {
        position = position.with_record(row);
    }
    err = err.with_position(position);
    err.with_source(cause)
}
