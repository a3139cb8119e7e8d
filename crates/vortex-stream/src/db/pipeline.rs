//! Loading a pipeline into a database table.

use std::time::Duration;

use futures_core::Stream;

use super::{Database, IntoValues, Loaded, Table};
use crate::ack::AckReport;
use crate::Result;
use crate::{AckPipeline, Pipeline};

/// Database sinks.
impl<S, T> Pipeline<S>
where
    S: Stream<Item = Result<T>> + Send,
    T: IntoValues + Send + 'static,
{
    /// Loads every row (a `Vec<Value>` or a [`Row`](crate::db::Row), in the table's column
    /// order) into `table` of `db`, in batches, each batch one transaction; returns what was
    /// committed.
    ///
    /// SQLite inserts with one prepared statement per batch, each batch a job on tokio's
    /// blocking pool (no thread is held between batches); PostgreSQL
    /// streams each batch through `COPY FROM STDIN` (into a temporary table first for an
    /// upsert), or sends multi-row `INSERT`s ([`LoadMethod`](crate::db::LoadMethod));
    /// MariaDB and MySQL send multi-row `INSERT`s.
    ///
    /// Memory: about three batches of rows.
    ///
    /// # Errors
    ///
    /// When a batch fails, it is rolled back and the error names the batch, the first bad
    /// row's index where the database tells it, and the rows of earlier batches, which stay
    /// committed (with [`Table::all_or_nothing`](crate::db::Table::all_or_nothing), nothing
    /// stays). An error item upstream stops the load the same way: the rows not yet in a
    /// committed batch are not written, and the error says what was.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::db::{Database, Table};
    /// use vortex_stream::{params, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let url = format!("sqlite://{}", dir.path().join("shop.db").display());
    /// let db = Database::open(&url)?;
    /// db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT)", vec![]).await?;
    /// let loaded = Pipeline::from_iter(1..=2500)
    ///     .map(|id| params![id, if id % 3 == 0 { "active" } else { "shipped" }])
    ///     .load(&db, Table::new("orders", ["id", "status"]))
    ///     .await?;
    /// assert_eq!((loaded.rows, loaded.batches), (2500, 3));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn load(self, db: &Database, table: Table) -> Result<Loaded> {
        db.load(self.into_inner(), &table).await
    }
}

/// Database sinks for broker messages, acknowledged after each commit.
impl<T> AckPipeline<T>
where
    T: IntoValues + Send + 'static,
{
    /// Loads every value (a row, in the table's column order) into `table` of `db` as
    /// [`Pipeline::load`] does, a batch of the table's size (or what arrived within
    /// `max_wait` of a batch's first value) per transaction, and commits the batch's shares
    /// once its transaction is committed: a message is acknowledged only once its rows are in
    /// the table. A failed batch is rolled back and its messages delivered again; give the
    /// table [`upsert`](Table::upsert) keys, so that rows loaded again after a crash replace
    /// themselves instead of doubling.
    ///
    /// Each batch is its own load (with [`Table::all_or_nothing`], its own transaction, as
    /// without): a batch must also fit in the source's window of unacknowledged messages,
    /// which `max_wait` guarantees.
    ///
    /// Memory: one batch being gathered and one being loaded.
    ///
    /// # Errors
    ///
    /// The first failed batch or error item, as
    /// [`AckPipeline::commit_each`](crate::AckPipeline::commit_each).
    pub async fn load(self, db: &Database, table: Table, max_wait: Duration) -> Result<AckReport> {
        let size = table.batch;
        let db = db.clone();
        self.commit_batches(size, max_wait, move |rows: Vec<T>| {
            let (db, table) = (db.clone(), table.clone());
            async move {
                let rows = futures_util::stream::iter(rows.into_iter().map(Ok));
                db.load(rows, &table).await.map(drop)
            }
        })
        .await
    }
}
