//! Loading a pipeline into a database table.

use futures_core::Stream;

use super::{Database, IntoValues, Loaded, Table};
use crate::Pipeline;
use crate::Result;

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
