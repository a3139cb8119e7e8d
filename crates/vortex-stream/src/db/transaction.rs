//! A transaction: statements on one connection, committed together or not at all.

use std::fmt;
use std::sync::Arc;

#[cfg(feature = "mysql")]
use super::mysql;
#[cfg(feature = "postgres")]
use super::postgres;
#[cfg(feature = "sqlite")]
use super::sqlite;
use super::{Backend, Database, Row, Value};
use crate::Result;

/// A transaction on its own connection, begun by [`Database::begin`]: each statement sees
/// what the ones before it wrote, and [`commit`](Transaction::commit) makes them all last at
/// once. Dropped without a commit, it is rolled back.
///
/// For reads inside the transaction, [`fetch_optional`](Transaction::fetch_optional) reads one
/// row and [`fetch_all`](Transaction::fetch_all) **holds every row** of its result: use it for
/// small results. To stream a large table and write as rows come, query it with
/// [`Database::query`] and write through this transaction or a load (SQLite is in WAL mode for
/// that; see [`Database::sqlite_wal`]).
///
/// # Examples
///
/// A read-modify-write that two processes may run at once without losing either's update:
///
/// ```
/// use vortex_stream::db::{Database, Value};
/// use vortex_stream::params;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("bank.db");
/// let db = Database::open(&format!("sqlite://{}", path.display()))?;
/// db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)", vec![]).await?;
/// db.execute("INSERT INTO accounts VALUES (1, 100)", vec![]).await?;
///
/// let mut tx = db.begin().await?;
/// let row = tx.fetch_optional("SELECT balance FROM accounts WHERE id = ?1", params![1]).await?;
/// let balance = match row.as_ref().map(|row| &row.values()[0]) {
///     Some(Value::Int(balance)) => *balance,
///     _ => 0,
/// };
/// tx.execute("UPDATE accounts SET balance = ?1 WHERE id = ?2", params![balance - 30, 1]).await?;
/// tx.commit().await?;
///
/// let rows = db.query("SELECT balance FROM accounts", vec![]).collect::<Vec<_>>().await?;
/// assert_eq!(rows[0].values(), [Value::Int(70)]);
/// # Ok(())
/// # }
/// ```
#[must_use = "a transaction that is dropped is rolled back"]
pub struct Transaction {
    inner: Inner,
    name: Arc<str>,
}

enum Inner {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::Tx),
    #[cfg(feature = "postgres")]
    Postgres(postgres::Tx),
    #[cfg(feature = "mysql")]
    Mysql(mysql::Tx),
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("database", &self.name)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Begins a transaction on a connection of its own. SQLite's is `BEGIN IMMEDIATE`: it
    /// takes the write lock at once (waiting up to the busy timeout, 5 s, for another writer),
    /// so a read-then-write inside it cannot fail halfway for a lock another transaction holds.
    ///
    /// # Errors
    ///
    /// A [`Database`](crate::ErrorKind::Database) error if the connection or the `BEGIN` fails.
    pub async fn begin(&self) -> Result<Transaction> {
        let name = Arc::clone(&self.name);
        let inner = match &self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(file) => {
                Inner::Sqlite(sqlite::Tx::begin(file.clone(), Arc::clone(&name)).await?)
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(url) => {
                Inner::Postgres(postgres::Tx::begin(url, Arc::clone(&name)).await?)
            }
            #[cfg(feature = "mysql")]
            Backend::Mysql(opts) => Inner::Mysql(mysql::Tx::begin(opts, Arc::clone(&name)).await?),
        };
        Ok(Transaction { inner, name })
    }
}

impl Transaction {
    /// Runs a statement that returns no rows; returns the rows it changed. Without
    /// parameters, `sql` may hold several statements.
    ///
    /// # Errors
    ///
    /// A [`Database`](crate::ErrorKind::Database) error naming the database. The transaction
    /// stays open: roll it back, or drop it.
    pub async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64> {
        match &mut self.inner {
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(tx) => tx.execute(sql.to_owned(), params).await,
            #[cfg(feature = "postgres")]
            Inner::Postgres(tx) => tx.execute(sql, &params).await,
            #[cfg(feature = "mysql")]
            Inner::Mysql(tx) => tx.execute(sql, &params).await,
        }
    }

    /// The first row of `sql`, if it has one; the rest of its result is not kept.
    ///
    /// # Errors
    ///
    /// A [`Database`](crate::ErrorKind::Database) error, or a
    /// [`Decode`](crate::ErrorKind::Decode) error naming the column that could not be read.
    pub async fn fetch_optional(&mut self, sql: &str, params: Vec<Value>) -> Result<Option<Row>> {
        Ok(self.fetch(sql, params, 1).await?.into_iter().next())
    }

    /// Every row of `sql`. **Holds them all**: for small results (a lookup, a count, the rows
    /// of one key). To stream a large result, use [`Database::query`].
    ///
    /// # Errors
    ///
    /// As [`fetch_optional`](Transaction::fetch_optional).
    pub async fn fetch_all(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>> {
        self.fetch(sql, params, usize::MAX).await
    }

    async fn fetch(&mut self, sql: &str, params: Vec<Value>, limit: usize) -> Result<Vec<Row>> {
        match &mut self.inner {
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(tx) => tx.fetch(sql.to_owned(), params, limit).await,
            #[cfg(feature = "postgres")]
            Inner::Postgres(tx) => tx.fetch(sql, &params, limit).await,
            #[cfg(feature = "mysql")]
            Inner::Mysql(tx) => tx.fetch(sql, &params, limit).await,
        }
    }

    /// Commits: every statement's writes last, at once.
    ///
    /// # Errors
    ///
    /// A [`Database`](crate::ErrorKind::Database) error if the commit fails; then nothing of
    /// the transaction was written.
    pub async fn commit(self) -> Result<()> {
        self.end("COMMIT").await
    }

    /// Rolls back: nothing the transaction wrote lasts. Dropping it does the same, without
    /// waiting for the database to confirm.
    ///
    /// # Errors
    ///
    /// A [`Database`](crate::ErrorKind::Database) error if the connection failed.
    pub async fn rollback(self) -> Result<()> {
        self.end("ROLLBACK").await
    }

    async fn end(self, statement: &'static str) -> Result<()> {
        match self.inner {
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(tx) => tx.end(statement).await,
            #[cfg(feature = "postgres")]
            Inner::Postgres(tx) => tx.end(statement).await,
            #[cfg(feature = "mysql")]
            Inner::Mysql(tx) => tx.end(statement).await,
        }
    }
}
