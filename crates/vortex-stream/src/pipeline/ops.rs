//! The operators: each method only builds its adapter; the adapter lives in `crate::ops`.

use core::future::Future;
use core::hash::Hash;
use core::time::Duration;

use futures_core::stream::BoxStream;
use futures_core::Stream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Pipeline;
use crate::core::Size;
use crate::error::{BoxError, Error};
use crate::ops::adapters::{
    CancelOn, Chain, Chunk, ChunkTimeout, Deadline, Dedup, Distinct, DistinctBy, Enumerate, Filter,
    FilterMap, FlatMap, Flatten, GroupByKey, Inspect, Map, Merge, Observe, OnError, Reverse, Scan,
    Skip, SkipWhile, Take, TakeWhile, Tee, Then, Throttle, Timeout, TryFilter, TryMap, TryThen,
    Validate, ValidateOrElse, Window, Zip,
};
use crate::{ErrorPolicy, Result};

/// Operators. Each is lazy: it returns a new pipeline and does nothing until that is polled.
/// Memory bounds are in items of the pipeline; "O(1)" means the operator holds no item.
impl<S, Kind, T> Pipeline<S, Kind>
where
    S: Stream<Item = Result<T>>,
{
    /// Transforms each value with a fallible `f`; an `Err` it returns becomes an error item
    /// in place of the value.
    ///
    /// A vortex [`Error`] returned by `f` is passed on unchanged; any other error becomes a
    /// [`User`](crate::ErrorKind::User) error of operation `"try_map"`, with the original as
    /// its source. Name the stage yourself by returning
    /// [`Error::from_user("parse amount", e)`](Error::from_user).
    ///
    /// Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::{ErrorKind, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let err = Pipeline::from_iter(["1", "two"])
    ///     .try_map(|s| s.parse::<u32>())
    ///     .collect::<Vec<_>>()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::User);
    /// assert_eq!(err.to_string(), "try_map: invalid digit found in string");
    /// # }
    /// ```
    pub fn try_map<U, E, F>(self, f: F) -> Pipeline<TryMap<S, F>>
    where
        F: FnMut(T) -> Result<U, E>,
        E: Into<BoxError>,
    {
        Pipeline::new(TryMap::new(self.inner, f))
    }

    /// Transforms each value with an async `f`, one at a time, in order.
    ///
    /// For several calls in flight at once, use the parallel stages. Memory: one pending future.
    ///
    /// # Cancel safety
    ///
    /// Dropping the pipeline drops the pending future, cancelling the call.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let out = Pipeline::from_iter(1..=3)
    ///     .then(|n| async move { n + 1 })
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(out, [2, 3, 4]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn then<Fut, F>(self, f: F) -> Pipeline<Then<S, Fut, F>>
    where
        F: FnMut(T) -> Fut,
        Fut: Future,
    {
        Pipeline::new(Then::new(self.inner, f))
    }

    /// Transforms each value with a fallible async `f`, one at a time, in order; errors are
    /// wrapped as in [`try_map`](Pipeline::try_map), with operation `"try_then"`.
    ///
    /// Memory: one pending future.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let out = Pipeline::from_iter(["4", "2"])
    ///     .try_then(|s| async move { s.parse::<u8>() })
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(out, [4, 2]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_then<U, E, Fut, F>(self, f: F) -> Pipeline<TryThen<S, Fut, F>>
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<U, E>>,
        E: Into<BoxError>,
    {
        Pipeline::new(TryThen::new(self.inner, f))
    }

    /// Keeps the values for which a fallible `predicate` returns `Ok(true)`; an `Err` becomes
    /// an error item in place of the value, wrapped as in [`try_map`](Pipeline::try_map) with
    /// operation `"try_filter"`.
    ///
    /// Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let big = Pipeline::from_iter(["5", "50"])
    ///     .try_filter(|s| s.parse::<u32>().map(|n| n > 10))
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(big, ["50"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_filter<E, F>(self, predicate: F) -> Pipeline<TryFilter<S, F>>
    where
        F: FnMut(&T) -> Result<bool, E>,
        E: Into<BoxError>,
    {
        Pipeline::new(TryFilter::new(self.inner, predicate))
    }

    /// Replaces each value with the values of the iterable `f` returns for it.
    ///
    /// Memory: one inner iterator (which may itself hold items, as a `Vec` does).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let words = Pipeline::from_iter(["a b", "c"])
    ///     .flat_map(|line| line.split(' ').collect::<Vec<_>>())
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(words, ["a", "b", "c"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn flat_map<I, F>(self, f: F) -> Pipeline<FlatMap<S, I::IntoIter, F>>
    where
        F: FnMut(T) -> I,
        I: IntoIterator,
    {
        Pipeline::new(FlatMap::new(self.inner, f))
    }

    /// Replaces each value, itself iterable (a `Vec` from [`chunk`](Pipeline::chunk), an
    /// `Option`), with its values.
    ///
    /// Memory: one inner iterator.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let flat = Pipeline::from_iter(vec![vec![1, 2], vec![], vec![3]])
    ///     .flatten()
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(flat, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn flatten(self) -> Pipeline<Flatten<S, T>>
    where
        T: IntoIterator,
    {
        Pipeline::new(FlatMap::new(
            self.inner,
            core::convert::identity as fn(T) -> T,
        ))
    }

    /// Yields the first `n` values, then ends and drops everything upstream.
    ///
    /// Exactly `n` values are pulled from upstream (plus any error items before the `n`-th
    /// value, which pass through): `take(10)` over a million-row query reads about ten rows.
    /// Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let first = Pipeline::from_iter(1..).take(3).collect::<Vec<u64>>().await?;
    /// assert_eq!(first, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn take(self, n: usize) -> Pipeline<Take<S>> {
        Pipeline::new(Take::new(self.inner, u64::try_from(n).unwrap_or(u64::MAX)))
    }

    /// Yields values while `predicate` holds; ends at the first value for which it does not
    /// (which is dropped), and drops everything upstream.
    ///
    /// Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let small = Pipeline::from_iter([1, 2, 9, 3]).take_while(|n| *n < 5).collect::<Vec<_>>().await?;
    /// assert_eq!(small, [1, 2]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn take_while<F>(self, predicate: F) -> Pipeline<TakeWhile<S, F>>
    where
        F: FnMut(&T) -> bool,
    {
        Pipeline::new(TakeWhile::new(self.inner, predicate))
    }

    /// Drops the first `n` values; error items among them pass through.
    ///
    /// Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let rest = Pipeline::from_iter(1..=5).skip(3).collect::<Vec<_>>().await?;
    /// assert_eq!(rest, [4, 5]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn skip(self, n: usize) -> Pipeline<Skip<S>> {
        Pipeline::new(Skip::new(self.inner, u64::try_from(n).unwrap_or(u64::MAX)))
    }

    /// Yields every item, error items in their places, last first.
    ///
    /// **Holds everything**: the last item comes only after upstream has ended, so every item
    /// is held until then, like [`collect`](Pipeline::collect). Use it on bounded inputs only;
    /// an endless upstream is never yielded from. Memory: every item.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let newest_first = Pipeline::from_iter(1..=4).reverse().collect::<Vec<_>>().await?;
    /// assert_eq!(newest_first, [4, 3, 2, 1]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reverse(self) -> Pipeline<Reverse<S, T>> {
        Pipeline::new(Reverse::new(self.inner))
    }

    /// Drops values while `predicate` holds, then yields every value from the first for which
    /// it does not.
    ///
    /// Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let rest = Pipeline::from_iter([1, 2, 9, 3]).skip_while(|n| *n < 5).collect::<Vec<_>>().await?;
    /// assert_eq!(rest, [9, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn skip_while<F>(self, predicate: F) -> Pipeline<SkipWhile<S, F>>
    where
        F: FnMut(&T) -> bool,
    {
        Pipeline::new(SkipWhile::new(self.inner, predicate))
    }

    /// Groups values into `Vec`s of `size`; the last may be shorter.
    ///
    /// An error item is passed on at once; the values gathered so far stay in the current
    /// chunk. Memory: at most `size` values.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let size = 2;
    /// let chunks = Pipeline::from_iter(1..=5).chunk(size).collect::<Vec<_>>().await?;
    /// assert_eq!(chunks, [vec![1, 2], vec![3, 4], vec![5]]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn chunk(self, size: impl Size) -> Pipeline<Chunk<S, T>> {
        let size = size.non_zero("chunk");
        Pipeline::new(Chunk::new(self.inner, size))
    }

    /// Groups values into `Vec`s of `size`, or fewer once `timeout` has passed since the
    /// chunk's first value, whichever comes first: batches for bulk writes that never wait
    /// long on a slow source.
    ///
    /// Errors pass as in [`chunk`](Pipeline::chunk). Memory: at most `size` values. Needs a
    /// tokio runtime with time enabled (outside a runtime, the stage ends with a fatal
    /// [`Internal`](crate::ErrorKind::Internal) error item, as blocking sources do); time
    /// follows tokio's clock, so tests can pause it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let size = 100;
    /// let batches = Pipeline::from_iter(1..=5)
    ///     .chunk_timeout(size, Duration::from_millis(10))
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(batches, [vec![1, 2, 3, 4, 5]]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn chunk_timeout(self, size: impl Size, timeout: Duration) -> Pipeline<ChunkTimeout<S, T>> {
        let size = size.non_zero("chunk_timeout");
        Pipeline::new(ChunkTimeout::new(self.inner, size, timeout))
    }

    /// Sliding windows: after the first `size` values, yields the last `size` values each time
    /// one arrives. A stream shorter than `size` yields nothing.
    ///
    /// Memory: `size` values, plus the `Vec` yielded (a clone of them).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let size = 3;
    /// let sums = Pipeline::from_iter(1..=5)
    ///     .window(size)
    ///     .map(|w| w.iter().sum::<i32>())
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(sums, [6, 9, 12]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn window(self, size: impl Size) -> Pipeline<Window<S, T>>
    where
        T: Clone,
    {
        let size = size.non_zero("window");
        Pipeline::new(Window::new(self.inner, size))
    }

    /// Threads a state through the values: `f` updates it and returns the value to yield, or
    /// `None` to end the pipeline (dropping everything upstream).
    ///
    /// Memory: the state.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let running = Pipeline::from_iter([1, 2, 3])
    ///     .scan(0, |total, n| {
    ///         *total += n;
    ///         Some(*total)
    ///     })
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(running, [1, 3, 6]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan<St, U, F>(self, init: St, f: F) -> Pipeline<Scan<S, St, F>>
    where
        F: FnMut(&mut St, T) -> Option<U>,
    {
        Pipeline::new(Scan::new(self.inner, init, f))
    }

    /// An observation point for [`Stats`](crate::Stats): counts the items passing and times
    /// how long the pipeline waits on the stages before it and after it, so that
    /// `stats.stages()` tells, for the stages between the previous point and this one (named
    /// `name`), their items, errors and busy time. Put one after the source and one after each
    /// stage worth telling apart; the time the consumer (a sink, a terminal) takes is the
    /// last point's downstream time.
    ///
    /// Memory: O(1). Cost: two clock readings an item.
    ///
    /// # Examples
    ///
    /// See [`Stats`](crate::Stats).
    pub fn observe(self, stats: &crate::Stats, name: impl Into<String>) -> Pipeline<Observe<S>> {
        Pipeline::new(Observe::new(self.inner, stats.point(name.into())))
    }

    /// Calls `f` with a reference to each value, and passes the value on.
    ///
    /// Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let mut seen = 0;
    /// Pipeline::from_iter(1..=4).inspect(|_| seen += 1).drain().await?;
    /// assert_eq!(seen, 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn inspect<F>(self, f: F) -> Pipeline<Inspect<S, F>>
    where
        F: FnMut(&T),
    {
        Pipeline::new(Inspect::new(self.inner, f))
    }

    /// Pairs each value with its index among the values, from 0.
    ///
    /// Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let out = Pipeline::from_iter(["a", "b"]).enumerate().collect::<Vec<_>>().await?;
    /// assert_eq!(out, [(0, "a"), (1, "b")]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn enumerate(self) -> Pipeline<Enumerate<S>> {
        Pipeline::new(Enumerate::new(self.inner))
    }

    /// Yields this pipeline's items, then `other`'s; this pipeline is dropped as soon as it ends.
    ///
    /// Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let all = Pipeline::from_iter(vec![1, 2])
    ///     .chain(Pipeline::from_iter(vec![3]))
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(all, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn chain<S2>(self, other: Pipeline<S2>) -> Pipeline<Chain<S, S2>>
    where
        S2: Stream<Item = Result<T>>,
    {
        Pipeline::new(Chain::new(self.inner, other.inner))
    }

    /// Pairs the values of this pipeline and `other`, in order; ends when either ends.
    ///
    /// Error items of either side pass through as they come. Memory: one value of this side
    /// waiting for its partner.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let pairs = Pipeline::from_iter([1, 2, 3])
    ///     .zip(Pipeline::from_iter(["a", "b"]))
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(pairs, [(1, "a"), (2, "b")]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn zip<U, S2>(self, other: Pipeline<S2>) -> Pipeline<Zip<S, S2, T>>
    where
        S2: Stream<Item = Result<U>>,
    {
        Pipeline::new(Zip::new(self.inner, other.inner))
    }

    /// Interleaves this pipeline's items with `other`'s as they arrive, alternating which side
    /// is polled first so that neither starves; ends when both end.
    ///
    /// For more than two inputs of one type, see [`merge_all`](Pipeline::merge_all).
    /// Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let merged = Pipeline::from_iter(vec![1, 3])
    ///     .merge(Pipeline::from_iter(vec![2, 4]))
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(merged, [1, 2, 3, 4]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn merge<S2>(self, other: Pipeline<S2>) -> Pipeline<Merge<S, S2>>
    where
        S2: Stream<Item = Result<T>>,
    {
        Pipeline::new(Merge::new(self.inner, other.inner))
    }

    /// Drops each value equal to the value before it (consecutive duplicates).
    ///
    /// Memory: one value (a clone of the last one yielded).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let out = Pipeline::from_iter([1, 1, 2, 1, 1]).dedup().collect::<Vec<_>>().await?;
    /// assert_eq!(out, [1, 2, 1]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn dedup(self) -> Pipeline<Dedup<S, T>>
    where
        T: PartialEq + Clone,
    {
        Pipeline::new(Dedup::new(self.inner))
    }

    /// Groups consecutive values with equal keys into `(key, values)` runs, as `GROUP BY` does
    /// on input already sorted by the key.
    ///
    /// A run longer than `max_len` is yielded in pieces of `max_len`, each with the key, so
    /// one huge run cannot exhaust memory; nothing is dropped. Errors pass through at once.
    /// Memory: at most `max_len` values.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let max = 1000;
    /// let runs = Pipeline::from_iter(["ant", "ape", "bee", "ant"])
    ///     .group_by_key(max, |word| word.as_bytes()[0])
    ///     .map(|(key, words)| (key as char, words.len()))
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(runs, [('a', 2), ('b', 1), ('a', 1)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn group_by_key<K, F>(self, max_len: impl Size, key: F) -> Pipeline<GroupByKey<S, K, T, F>>
    where
        F: FnMut(&T) -> K,
        K: PartialEq,
    {
        let max_len = max_len.non_zero("group_by_key");
        Pipeline::new(GroupByKey::new(self.inner, max_len, key))
    }

    /// Drops every value whose key was seen before, remembering at most `capacity` keys.
    ///
    /// Exact, never approximate: once `capacity` keys are held, each value with a new key
    /// becomes a [`Capacity`](crate::ErrorKind::Capacity) error item (with its index at this
    /// stage as position) instead of being passed on unchecked, while values with known keys
    /// are still dropped. Under a fail-fast policy the pipeline stops there; under
    /// [`skip`](ErrorPolicy::skip) or a dead-letter policy those values are counted or routed.
    /// Memory: at most `capacity` keys.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let capacity = 10_000;
    /// let users = Pipeline::from_iter([("ann", 1), ("bob", 2), ("ann", 3)])
    ///     .distinct_by(capacity, |(name, _)| *name)
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(users, [("ann", 1), ("bob", 2)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn distinct_by<K, F>(self, capacity: impl Size, key: F) -> Pipeline<DistinctBy<S, K, F>>
    where
        F: FnMut(&T) -> K,
        K: Hash + Eq,
    {
        let capacity = capacity.non_zero("distinct_by");
        Pipeline::new(DistinctBy::new(self.inner, capacity, key))
    }

    /// Drops every value equal to one seen before, remembering at most `capacity` values; see
    /// [`distinct_by`](Pipeline::distinct_by) for what happens when the capacity is reached.
    ///
    /// Memory: at most `capacity` values (clones).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::{ErrorKind, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let capacity = 2;
    /// let out = Pipeline::from_iter([1, 2, 1, 2]).distinct(capacity).collect::<Vec<_>>().await?;
    /// assert_eq!(out, [1, 2]);
    /// let err = Pipeline::from_iter([1, 2, 3]).distinct(capacity).count().await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Capacity);
    /// # Ok(())
    /// # }
    /// ```
    pub fn distinct(self, capacity: impl Size) -> Pipeline<Distinct<S, T>>
    where
        T: Hash + Eq + Clone,
    {
        let capacity = capacity.non_zero("distinct");
        Pipeline::new(DistinctBy::new(
            self.inner,
            capacity,
            T::clone as fn(&T) -> T,
        ))
    }

    /// Checks each value with `check`; a value it rejects becomes a
    /// [`Validation`](crate::ErrorKind::Validation) error item carrying the value's position
    /// (its index at this stage, counting every item) and the rejection as its source.
    ///
    /// If `check` returns a vortex [`Error`], that error is kept as it is (its position is
    /// filled in if it has none). Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::{ErrorKind, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let err = Pipeline::from_iter([10, -5, 7])
    ///     .validate(|n| if *n >= 0 { Ok(()) } else { Err("amount must not be negative") })
    ///     .collect::<Vec<_>>()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Validation);
    /// assert_eq!(err.to_string(), "validate: record 1: amount must not be negative");
    /// # }
    /// ```
    pub fn validate<E, F>(self, check: F) -> Pipeline<Validate<S, F>>
    where
        F: FnMut(&T) -> Result<(), E>,
        E: Into<BoxError>,
    {
        Pipeline::new(Validate::new(self.inner, check))
    }

    /// Checks each value with `check`, and hands each rejected value with its
    /// [`Validation`](crate::ErrorKind::Validation) error to `on_invalid` instead of the
    /// stream; only valid values go on.
    ///
    /// Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let mut rejected = Vec::new();
    /// let valid = Pipeline::from_iter([10, -5, 7])
    ///     .validate_or_else(
    ///         |n| if *n >= 0 { Ok(()) } else { Err("negative") },
    ///         |n, err| rejected.push((n, err.to_string())),
    ///     )
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(valid, [10, 7]);
    /// assert_eq!(rejected, [(-5, "validate: record 1: negative".to_owned())]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn validate_or_else<E, F, G>(
        self,
        check: F,
        on_invalid: G,
    ) -> Pipeline<ValidateOrElse<S, F, G>>
    where
        F: FnMut(&T) -> Result<(), E>,
        E: Into<BoxError>,
        G: FnMut(T, Error),
    {
        Pipeline::new(ValidateOrElse::new(self.inner, check, on_invalid))
    }

    /// Applies an [`ErrorPolicy`] to the error items from every stage above: fail fast, skip
    /// and count, send to a dead-letter sink, within an error budget. The policy keeps the
    /// run [`Report`](crate::Report).
    ///
    /// Memory: one error on its way to the dead-letter sink (plus what that sink buffers).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::{ErrorKind, ErrorPolicy, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // At most one bad record is tolerated.
    /// let policy = ErrorPolicy::skip().max_errors(1);
    /// let err = Pipeline::from_iter(["1", "x", "y", "4"])
    ///     .try_map(|s| s.parse::<u32>())
    ///     .on_error(policy.clone())
    ///     .count()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Capacity);
    /// assert_eq!(policy.report().skipped(), 1);
    /// # }
    /// ```
    pub fn on_error(self, policy: ErrorPolicy) -> Pipeline<OnError<S>> {
        Pipeline::new(OnError::new(self.inner, policy))
    }

    /// Ends the pipeline with one [`Cancelled`](crate::ErrorKind::Cancelled) error item when
    /// `token` is cancelled, dropping everything upstream at once, even a stage in the middle
    /// of an await.
    ///
    /// The token is checked before each item is pulled. Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::{CancellationToken, ErrorKind, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let token = CancellationToken::new();
    /// let stop = token.clone();
    /// let err = Pipeline::from_iter(0..)
    ///     .inspect(move |n| if *n == 100 { stop.cancel() })
    ///     .cancel_on(token)
    ///     .drain()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Cancelled);
    /// # }
    /// ```
    pub fn cancel_on(self, token: CancellationToken) -> Pipeline<CancelOn<S>> {
        Pipeline::new(CancelOn::new(self.inner, token))
    }

    /// Ends the pipeline with one [`Timeout`](crate::ErrorKind::Timeout) error item once `at`
    /// has passed, dropping everything upstream at once, even a stage in the middle of an
    /// await.
    ///
    /// Needs a tokio runtime with time enabled (outside a runtime, the stage ends with a fatal
    /// [`Internal`](crate::ErrorKind::Internal) error item). Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// use vortex_stream::{ErrorKind, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let err = Pipeline::from_iter(0..)
    ///     .then(|n| async move {
    ///         tokio::time::sleep(Duration::from_millis(5)).await;
    ///         n
    ///     })
    ///     .deadline(Instant::now() + Duration::from_millis(50))
    ///     .drain()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Timeout);
    /// # }
    /// ```
    pub fn deadline(self, at: Instant) -> Pipeline<Deadline<S>> {
        Pipeline::new(Deadline::new(self.inner, at))
    }

    /// Erases the pipeline's type behind a box, to store pipelines of different shapes in one
    /// place or return one from a function without naming it.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_core::stream::BoxStream;
    /// use vortex_stream::{Pipeline, Result};
    ///
    /// fn evens(limit: u32) -> Pipeline<BoxStream<'static, Result<u32>>> {
    ///     Pipeline::from_iter(0..limit).filter(|n| n % 2 == 0).boxed()
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// assert_eq!(evens(7).count().await?, 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn boxed<'a>(self) -> Pipeline<BoxStream<'a, Result<T>>>
    where
        S: Send + 'a,
    {
        Pipeline::new(Box::pin(self.inner))
    }

    /// Lets at most `rate` values through per `per` (one per `per / rate`, evenly), with bursts
    /// of up to `burst` after a quiet spell: a token bucket. The stage waits for a token
    /// before pulling, so upstream is not drawn on early (and so, after the last value, it
    /// may wait for a token to find that upstream has ended). A zero `per` is no limit; a
    /// `per` too long for the clock waits as good as for ever after the burst.
    ///
    /// Needs a tokio runtime with time enabled. Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let started = tokio::time::Instant::now();
    /// Pipeline::from_iter(0..30)
    ///     .throttle(10, Duration::from_secs(1), 1)
    ///     .drain()
    ///     .await?;
    /// assert!(started.elapsed() >= Duration::from_millis(2900));
    /// # Ok(())
    /// # }
    /// ```
    pub fn throttle(
        self,
        rate: impl Size,
        per: Duration,
        burst: impl Size,
    ) -> Pipeline<Throttle<S>> {
        let (rate, burst) = (rate.non_zero("throttle"), burst.non_zero("throttle"));
        Pipeline::new(Throttle::new(self.inner, rate, per, burst))
    }

    /// Yields a [`Timeout`](crate::ErrorKind::Timeout) error item whenever upstream takes
    /// longer than `limit` to produce the next item, and goes on waiting for it: a stalled
    /// source or a hung call shows up in the stream instead of silently stalling it. To end the
    /// pipeline on the first timeout, keep the default fail-fast policy; to bound one call,
    /// see [`with_timeout`](crate::resilience::with_timeout).
    ///
    /// Needs a tokio runtime with time enabled. Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use vortex_stream::{ErrorKind, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let err = Pipeline::from_iter([10u64, 5000])
    ///     .then(|ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .timeout(Duration::from_secs(1))
    ///     .collect::<Vec<_>>()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Timeout);
    /// # }
    /// ```
    pub fn timeout(self, limit: Duration) -> Pipeline<Timeout<S>> {
        Pipeline::new(Timeout::new(self.inner, limit))
    }

    /// Splits the pipeline into `consumers` pipelines that each get every item (errors
    /// included), for fan-out: writing the same rows to two sinks, counting while exporting.
    ///
    /// Backpressure holds: the fastest consumer runs at most `buffer` items ahead of the
    /// slowest, then waits for it, so the slowest sets the pace and memory stays bounded.
    /// Drive the consumers concurrently (`tokio::join!`, separate tasks): a consumer that is
    /// never polled stops the others once the buffer is full. A dropped consumer stops
    /// counting; the upstream is dropped with the last one. To fan back in, see
    /// [`merge`](Pipeline::merge).
    ///
    /// Memory: `buffer` items, and a clone of each for each consumer that takes it.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let two = 2;
    /// let mut outs = Pipeline::from_iter(1..=100u64).tee(two, 16);
    /// let (sums, counts) = (outs.remove(0), outs.remove(0));
    /// let (sum, count) = tokio::join!(sums.fold(0, |a, b| a + b), counts.count());
    /// assert_eq!((sum?, count?), (5050, 100));
    /// # Ok(())
    /// # }
    /// ```
    pub fn tee(self, consumers: impl Size, buffer: impl Size) -> Vec<Pipeline<Tee<S, T>>>
    where
        T: Clone,
    {
        let consumers = consumers.non_zero("tee");
        let buffer = buffer.non_zero("tee");
        Tee::split(self.inner, consumers.get(), buffer.get())
            .into_iter()
            .map(Pipeline::new)
            .collect()
    }
}

/// The stateless operators of a [`Plain`](crate::fusion::Plain) pipeline, each a stage of its
/// own; a [`Fusable`](crate::fusion::Fusable) pipeline has its own, run on its source's threads.
impl<S, T> Pipeline<S>
where
    S: Stream<Item = Result<T>>,
{
    /// Transforms each value with `f`.
    ///
    /// Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let out = Pipeline::from_iter(1..=3).map(|n| n * 10).collect::<Vec<_>>().await?;
    /// assert_eq!(out, [10, 20, 30]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn map<U, F>(self, f: F) -> Pipeline<Map<S, F>>
    where
        F: FnMut(T) -> U,
    {
        Pipeline::new(Map::new(self.inner, f))
    }
    /// Keeps the values for which `predicate` returns `true`.
    ///
    /// Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let odd = Pipeline::from_iter(1..=5).filter(|n| n % 2 == 1).collect::<Vec<_>>().await?;
    /// assert_eq!(odd, [1, 3, 5]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn filter<F>(self, predicate: F) -> Pipeline<Filter<S, F>>
    where
        F: FnMut(&T) -> bool,
    {
        Pipeline::new(Filter::new(self.inner, predicate))
    }
    /// Transforms each value with `f` and keeps the `Some` results.
    ///
    /// Memory: O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let nums = Pipeline::from_iter(["1", "x", "3"])
    ///     .filter_map(|s| s.parse::<u32>().ok())
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(nums, [1, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn filter_map<U, F>(self, f: F) -> Pipeline<FilterMap<S, F>>
    where
        F: FnMut(T) -> Option<U>,
    {
        Pipeline::new(FilterMap::new(self.inner, f))
    }
}
