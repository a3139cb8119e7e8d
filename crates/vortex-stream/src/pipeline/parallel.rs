//! The parallel operators.

use core::future::Future;

use futures_core::Stream;

use super::Pipeline;
use crate::core::Size;
use crate::ops::adapters::BatchMap;
use crate::parallel::{ParMap, Parallel, Parallelism, PartitionBy, StartAsync};
use crate::{BoxError, Result};

/// Parallel operators. Each bounds what it holds: see [`Parallelism`].
impl<S, Kind, T> Pipeline<S, Kind>
where
    S: Stream<Item = Result<T>>,
{
    /// Runs a fallible async `f` for up to `parallelism` values at once (calls to a service,
    /// a database, an HTTP API), and yields the results in input order.
    ///
    /// The futures are polled by the stage itself: no task is spawned, and dropping the
    /// pipeline cancels every call in flight at once. An `Err` from `f` becomes an error item
    /// in the value's place, wrapped as in [`try_map`](Pipeline::try_map) with operation
    /// `"par_then"`; a panic becomes an [`Internal`](crate::ErrorKind::Internal) error item.
    /// The window bounds what is held exactly as in [`par_map`](Pipeline::par_map).
    ///
    /// Memory: the window of values and futures.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let replies = Pipeline::from_iter([30u64, 10, 20])
    ///     .par_then(3, |ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await; // a call to a service
    ///         Ok::<_, std::io::Error>(ms)
    ///     })
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(replies, [30, 10, 20]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn par_then<U, E, F, Fut>(
        self,
        parallelism: impl Into<Parallelism>,
        f: F,
    ) -> Pipeline<Parallel<S, StartAsync<F>, U>>
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let p = parallelism.into();
        Pipeline::new(Parallel::new(
            self.inner,
            StartAsync::new(f, "par_then"),
            p.limit(),
            p.window_len(),
            true,
        ))
    }

    /// Like [`par_then`](Pipeline::par_then), yielding each result as soon as it is ready.
    ///
    /// Memory: at most the limit of values and futures.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let replies = Pipeline::from_iter([30u64, 10, 20])
    ///     .par_then_unordered(3, |ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         Ok::<_, std::io::Error>(ms)
    ///     })
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(replies, [10, 20, 30]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn par_then_unordered<U, E, F, Fut>(
        self,
        parallelism: impl Into<Parallelism>,
        f: F,
    ) -> Pipeline<Parallel<S, StartAsync<F>, U>>
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let p = parallelism.into();
        Pipeline::new(Parallel::new(
            self.inner,
            StartAsync::new(f, "par_then_unordered"),
            p.limit(),
            p.limit(),
            false,
        ))
    }

    /// Runs a fallible async `f` for values of different keys in parallel, and for values of
    /// one key strictly one after another, in order: per-customer or per-account work that
    /// must not race with itself.
    ///
    /// Values go to `parallelism` lanes by their key's hash; a lane runs one call at a time
    /// and queues the rest of its values. Results leave as they are ready, so the order holds
    /// within a key, not across keys. At most the window of values (twice the lanes by default)
    /// is held, running or queued; a lane stuck on a slow call stops the pulling once the
    /// window fills. Errors are wrapped as in [`par_then`](Pipeline::par_then), with operation
    /// `"partition_by"`; error items upstream pass at once.
    ///
    /// Memory: the window of values.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let events = [("ann", 1), ("bob", 1), ("ann", 2), ("bob", 2), ("ann", 3)];
    /// let applied = Pipeline::from_iter(events)
    ///     .partition_by(4, |(account, _)| *account, |event| async move {
    ///         Ok::<_, std::io::Error>(event) // apply it to the account
    ///     })
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// let ann: Vec<_> = applied.iter().filter(|(a, _)| *a == "ann").map(|(_, n)| *n).collect();
    /// assert_eq!(ann, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn partition_by<K, U, E, KF, F, Fut>(
        self,
        parallelism: impl Into<Parallelism>,
        key: KF,
        f: F,
    ) -> Pipeline<PartitionBy<S, T, KF, StartAsync<F>, U>>
    where
        KF: FnMut(&T) -> K,
        K: std::hash::Hash,
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let p = parallelism.into();
        Pipeline::new(PartitionBy::new(
            self.inner,
            key,
            StartAsync::new(f, "partition_by"),
            p.limit().get(),
            p.window_len().get(),
        ))
    }

    /// Hands values to `f` in owned batches of up to `size` (for bulk calls: an insert of many
    /// rows, a lookup of many keys), and yields the values of the batches `f` returns, in order.
    ///
    /// Each batch is a new `Vec` that `f` owns: it is never reused under its feet. An error
    /// item upstream passes at once; the values gathered so far stay in the current batch. An
    /// `Err` from `f` becomes one error item in the batch's place, wrapped as in
    /// [`try_then`](Pipeline::try_then). For several batches in
    /// flight, chain [`chunk`](Pipeline::chunk) and [`par_then`](Pipeline::par_then) instead.
    /// For batches of a size or an age, whichever comes first, see
    /// [`chunk_timeout`](Pipeline::chunk_timeout).
    ///
    /// Memory: one batch, and the batch `f` returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let hundred = 100;
    /// let names = Pipeline::from_iter(1..=250u32)
    ///     .batch_map(hundred, |ids: Vec<u32>| async move {
    ///         // One call to a service for a hundred ids.
    ///         Ok::<_, std::io::Error>(ids.into_iter().map(|id| format!("user {id}")).collect::<Vec<_>>())
    ///     })
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(names.len(), 250);
    /// assert_eq!(names[249], "user 250");
    /// # Ok(())
    /// # }
    /// ```
    pub fn batch_map<U, E, F, Fut>(
        self,
        size: impl Size,
        f: F,
    ) -> Pipeline<BatchMap<S, T, Fut, F, U>>
    where
        F: FnMut(Vec<T>) -> Fut,
        Fut: Future<Output = Result<Vec<U>, E>>,
        E: Into<BoxError>,
    {
        let size = size.non_zero("batch_map");
        self.chunk(size).try_then(f).flatten()
    }
}

/// The CPU-bound parallel operators of a [`Plain`](crate::fusion::Plain) pipeline; a
/// [`Fusable`](crate::fusion::Fusable) one runs them on its source's decoding threads.
impl<S, T> Pipeline<S>
where
    S: Stream<Item = Result<T>>,
{
    /// Runs a CPU-bound `f` on rayon's thread pool for up to `parallelism` values at once,
    /// and yields the results in input order.
    ///
    /// The stage holds at most the window of values between pulling and yielding (see
    /// [`Parallelism`]: twice the limit, growing for cheap work): when the oldest value is
    /// slow, the stage stops pulling instead of buffering what comes after it. A panic in `f`
    /// becomes an [`Internal`](crate::ErrorKind::Internal) error item naming the stage, in the
    /// value's place; the stage goes on. Error items keep their place in the order.
    ///
    /// Values wait in a queue that up to `limit` rayon jobs take from, in batches sized from
    /// the time values take (about 50 µs a batch), so that work of a fraction of a microsecond
    /// a value still gains from the threads. A value of 2 µs or more is handed over as soon as
    /// it is done, so that one finished before a slow value of its batch does not wait for it;
    /// cheaper ones with the rest of their batch. The workers wake the pipeline's task only
    /// when it waits, and only for what it waits for: the oldest value done (a finished head
    /// result leaves at once) or the queue running low. A wake-up is a thread switch, and on
    /// two cores one per value cost a third of the speed-up. While it waits for cheap values
    /// (several to a batch), the stage's own task runs a batch too, as a caller of rayon's
    /// parallel iterators does: for no longer than a batch takes, never for values of 25 µs or
    /// more.
    ///
    /// Costs are learnt from the last batch, so a slow value right after many cheap ones is
    /// met in a batch of them: the cheap values finished before it in that batch wait for it,
    /// and so do values finished while the stage's own task runs it. After that batch, values
    /// are handed over one by one until they are cheap again. Handing every cheap value over
    /// alone, so that none could wait, took a fifth more CPU at a fraction of a microsecond a
    /// value.
    ///
    /// Memory: the window of values (waiting, running, or finished and waiting their turn).
    ///
    /// # Cancel safety
    ///
    /// Dropping the pipeline discards results; closures already running finish on their
    /// threads (a thread cannot be interrupted), and no new ones start.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let two = 2;
    /// let squares = Pipeline::from_iter(1..=5u64)
    ///     .par_map(two, |n| n * n)
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(squares, [1, 4, 9, 16, 25]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn par_map<U, F>(
        self,
        parallelism: impl Into<Parallelism>,
        f: F,
    ) -> Pipeline<ParMap<S, F, T, U>>
    where
        F: Fn(T) -> U + Send + Sync + 'static,
        T: Send + 'static,
        U: Send + 'static,
    {
        self.par_map_stage(parallelism.into(), f, "par_map", true)
    }
    /// Like [`par_map`](Pipeline::par_map), yielding each result as soon as it is ready.
    ///
    /// Memory: the window of values (see [`Parallelism`]; finished ones leave at once).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let mut out = Pipeline::from_iter(1..=5u64)
    ///     .par_map_unordered(2, |n| n * n)
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// out.sort_unstable();
    /// assert_eq!(out, [1, 4, 9, 16, 25]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn par_map_unordered<U, F>(
        self,
        parallelism: impl Into<Parallelism>,
        f: F,
    ) -> Pipeline<ParMap<S, F, T, U>>
    where
        F: Fn(T) -> U + Send + Sync + 'static,
        T: Send + 'static,
        U: Send + 'static,
    {
        self.par_map_stage(parallelism.into(), f, "par_map_unordered", false)
    }

    /// The plain `par_map` stage, results in input order or as they finish.
    fn par_map_stage<U, F>(
        self,
        p: Parallelism,
        f: F,
        name: &'static str,
        ordered: bool,
    ) -> Pipeline<ParMap<S, F, T, U>>
    where
        F: Fn(T) -> U + Send + Sync + 'static,
        T: Send + 'static,
        U: Send + 'static,
    {
        Pipeline::new(ParMap::new(
            self.inner,
            f,
            name,
            p.limit(),
            p.window_len(),
            p.window_grows(),
            ordered,
        ))
    }
}
