//! Loading a pipeline into a database table.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt;

use super::{Database, IntoValues, Loaded, Table};
use crate::ack::{Ack, AckReport, Acked};
use crate::Result;
use crate::{AckPipeline, Pipeline};

/// Database sinks.
impl<S, Kind, T> Pipeline<S, Kind>
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
    /// The servers load every batch through one connection; SQLite loads each batch on its
    /// own. With [`Table::all_or_nothing`], every message waits for the one commit at the end,
    /// so the source's window must hold them all.
    ///
    /// Memory: one batch being gathered and one being loaded.
    ///
    /// # Errors
    ///
    /// The first failed batch or error item, as
    /// [`AckPipeline::commit_each`](crate::AckPipeline::commit_each).
    pub async fn load(self, db: &Database, table: Table, max_wait: Duration) -> Result<AckReport> {
        let ledgers = self.ledgers().to_vec();
        let delay = self.delay();
        // The shares of the batches handed to the load, in order: a commit decides those of
        // the batches it made durable.
        let waiting: Arc<Mutex<VecDeque<Ack>>> = Arc::default();
        let queue = Arc::clone(&waiting);
        let batches = StreamExt::map(
            self.chunk_timeout(table.batch, max_wait).into_pipeline(),
            move |batch| match batch {
                Ok(Acked { value, ack, .. }) => {
                    lock(&queue).push_back(ack);
                    Ok(value)
                }
                Err(mut err) => {
                    err.take_ack().fail(None);
                    Err(err)
                }
            },
        );
        let done = Arc::clone(&waiting);
        let mut decided = 0;
        let mut on_commit = move |loaded: Loaded| {
            let mut queue = lock(&done);
            while decided < loaded.batches {
                if let Some(ack) = queue.pop_front() {
                    ack.commit();
                }
                decided += 1;
            }
        };
        let loaded = db.load_batches(batches, &table, &mut on_commit).await;
        // What no commit made durable is delivered again.
        for ack in lock(&waiting).drain(..) {
            ack.fail(Some(delay));
        }
        crate::ack::finish(loaded.map(drop), &ledgers).await
    }
}

fn lock(queue: &Mutex<VecDeque<Ack>>) -> std::sync::MutexGuard<'_, VecDeque<Ack>> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}
