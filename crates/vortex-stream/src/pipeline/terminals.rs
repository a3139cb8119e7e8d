//! The terminals: methods returning a future that drives a pipeline to a result.
//!
//! Every terminal stops at the first error item and returns it (fail fast); put an
//! [`ErrorPolicy`](crate::ErrorPolicy) upstream to go on past errors. Each polls the pipeline on
//! the caller's task and holds O(1) items, except [`collect`](Pipeline::collect).

use core::future::Future;
use core::ops::ControlFlow;
use core::pin::pin;

use futures_core::Stream;
use futures_sink::Sink;
use futures_util::{SinkExt, StreamExt};

use super::drive::Drive;
use super::Pipeline;
use crate::error::{BoxError, Error, ErrorKind};
use crate::Result;

/// Terminals.
impl<S, Kind, T> Pipeline<S, Kind>
where
    S: Stream<Item = Result<T>>,
{
    /// Calls `f` with each value.
    ///
    /// # Errors
    ///
    /// The first error item, at which the pipeline stops.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the pipeline and stops it; values already handed to `f` stay
    /// handled.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let mut out = String::new();
    /// Pipeline::from_iter(["a", "b"]).for_each(|s| out.push_str(s)).await?;
    /// assert_eq!(out, "ab");
    /// # Ok(())
    /// # }
    /// ```
    pub fn for_each<F>(self, f: F) -> impl Future<Output = Result<()>>
    where
        F: FnMut(T),
    {
        Drive::new(
            self.inner,
            f,
            |f, value| {
                f(value);
                ControlFlow::Continue(())
            },
            |_| Ok(()),
        )
    }

    /// Calls a fallible `f` with each value, and stops at the first error, from the pipeline
    /// or from `f`.
    ///
    /// # Errors
    ///
    /// The first error item, or the first error `f` returns (wrapped as in
    /// [`try_map`](Pipeline::try_map), with operation `"try_for_each"`).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut sum = 0u8;
    /// let err = Pipeline::from_iter([200u8, 100])
    ///     .try_for_each(|n| {
    ///         sum = sum.checked_add(n).ok_or("sum overflows a byte")?;
    ///         Ok::<_, &str>(())
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "try_for_each: sum overflows a byte");
    /// # }
    /// ```
    pub fn try_for_each<E, F>(self, f: F) -> impl Future<Output = Result<()>>
    where
        F: FnMut(T) -> Result<(), E>,
        E: Into<BoxError>,
    {
        Drive::new(
            self.inner,
            f,
            |f, value| match f(value) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(Err(Error::from_user("try_for_each", e))),
            },
            |_| Ok(()),
        )
    }

    /// Runs the pipeline to its end for its effects, discarding the values.
    ///
    /// # Errors
    ///
    /// The first error item, at which the pipeline stops.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// Pipeline::from_iter(1..=3).drain().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn drain(self) -> impl Future<Output = Result<()>> {
        self.for_each(drop)
    }

    /// Counts the values.
    ///
    /// # Errors
    ///
    /// The first error item, at which the pipeline stops.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// assert_eq!(Pipeline::from_iter(0..1000).count().await?, 1000);
    /// # Ok(())
    /// # }
    /// ```
    pub fn count(self) -> impl Future<Output = Result<u64>> {
        Drive::new(
            self.inner,
            0u64,
            |n, _| {
                *n += 1;
                ControlFlow::Continue(())
            },
            Ok,
        )
    }

    /// Combines the values into one, starting from `init`.
    ///
    /// # Errors
    ///
    /// The first error item, at which the pipeline stops.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let sum = Pipeline::from_iter(1..=4).fold(0, |acc, n| acc + n).await?;
    /// assert_eq!(sum, 10);
    /// # Ok(())
    /// # }
    /// ```
    pub fn fold<B, F>(self, init: B, f: F) -> impl Future<Output = Result<B>>
    where
        F: FnMut(B, T) -> B,
    {
        Drive::new(
            self.inner,
            (Some(init), f),
            |(acc, f), value| match acc.take() {
                Some(before) => {
                    *acc = Some(f(before, value));
                    ControlFlow::Continue(())
                }
                None => ControlFlow::Break(Err(Error::internal("fold", "lost its accumulator"))),
            },
            |(acc, _)| acc.ok_or_else(|| Error::internal("fold", "lost its accumulator")),
        )
    }

    /// Combines the values into one with `f`, starting from the first; `None` for no values.
    ///
    /// # Errors
    ///
    /// The first error item, at which the pipeline stops.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let max = Pipeline::from_iter([3, 9, 2]).reduce(|a, b| a.max(b)).await?;
    /// assert_eq!(max, Some(9));
    /// # Ok(())
    /// # }
    /// ```
    pub fn reduce<F>(self, mut f: F) -> impl Future<Output = Result<Option<T>>>
    where
        F: FnMut(T, T) -> T,
    {
        self.fold(None, move |acc, v| {
            Some(match acc {
                Some(acc) => f(acc, v),
                None => v,
            })
        })
    }

    /// The first value, pulling exactly one value from upstream (and dropping the pipeline
    /// right after).
    ///
    /// # Errors
    ///
    /// An error item that comes before the first value.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// assert_eq!(Pipeline::from_iter(5..).first().await?, Some(5));
    /// # Ok(())
    /// # }
    /// ```
    pub fn first(self) -> impl Future<Output = Result<Option<T>>> {
        Drive::new(
            self.inner,
            (),
            |(), value| ControlFlow::Break(Ok(Some(value))),
            |()| Ok(None),
        )
    }

    /// The last value; `None` for no values.
    ///
    /// # Errors
    ///
    /// The first error item, at which the pipeline stops.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// assert_eq!(Pipeline::from_iter(1..=3).last().await?, Some(3));
    /// # Ok(())
    /// # }
    /// ```
    pub fn last(self) -> impl Future<Output = Result<Option<T>>> {
        Drive::new(
            self.inner,
            None,
            |last, value| {
                *last = Some(value);
                ControlFlow::Continue(())
            },
            Ok,
        )
    }

    /// Whether any value satisfies `predicate`; stops pulling at the first that does.
    ///
    /// # Errors
    ///
    /// An error item that comes before a satisfying value.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// assert!(Pipeline::from_iter(1..).any(|n| n * n > 50).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn any<F>(self, predicate: F) -> impl Future<Output = Result<bool>>
    where
        F: FnMut(&T) -> bool,
    {
        Drive::new(
            self.inner,
            predicate,
            |predicate, value| {
                if predicate(&value) {
                    ControlFlow::Break(Ok(true))
                } else {
                    ControlFlow::Continue(())
                }
            },
            |_| Ok(false),
        )
    }

    /// Whether every value satisfies `predicate`; stops pulling at the first that does not.
    ///
    /// # Errors
    ///
    /// An error item that comes before a failing value.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// assert!(!Pipeline::from_iter(1..).all(|n| *n < 10).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn all<F>(self, predicate: F) -> impl Future<Output = Result<bool>>
    where
        F: FnMut(&T) -> bool,
    {
        Drive::new(
            self.inner,
            predicate,
            |predicate, value| {
                if predicate(&value) {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(Ok(false))
                }
            },
            |_| Ok(true),
        )
    }

    /// Whether a value equals `needle`; stops pulling at the first that does.
    ///
    /// # Errors
    ///
    /// An error item that comes before a match.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// assert!(Pipeline::from_iter(1..).contains(&42).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn contains<'a>(self, needle: &'a T) -> impl Future<Output = Result<bool>> + 'a
    where
        T: PartialEq,
        S: 'a,
        Kind: 'a,
    {
        self.any(move |v| v == needle)
    }

    /// Gathers every value into a collection.
    ///
    /// **Eager**: this is the one terminal that holds the whole stream in memory, the
    /// "collect, then process" that vortex exists to avoid. Use it for small, bounded results
    /// (after [`take`](Pipeline::take), a filter known to be selective, or in tests).
    ///
    /// # Errors
    ///
    /// The first error item, at which the pipeline stops; the values gathered so far are
    /// dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let top: Vec<u32> = Pipeline::from_iter(1..).take(3).collect().await?;
    /// assert_eq!(top, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// To keep every item, the errors among the values in their places (a test, a report of
    /// what went wrong), collect the items themselves: `Pipeline` is a `Stream` of
    /// `Result<T>`, so `futures::StreamExt::collect` gathers them without stopping (called by
    /// its path, since this method has its name).
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let parsed = Pipeline::from_iter(["1", "x", "3"]).try_map(|s| s.parse::<u32>());
    /// let items: Vec<vortex_stream::Result<u32>> = StreamExt::collect(parsed).await;
    /// assert_eq!(items.len(), 3);
    /// assert!(items[0].is_ok() && items[1].is_err() && items[2].is_ok());
    /// # }
    /// ```
    pub fn collect<C>(self) -> impl Future<Output = Result<C>>
    where
        C: Default + Extend<T>,
    {
        Drive::new(
            self.inner,
            C::default(),
            |out, value| {
                out.extend(Some(value));
                ControlFlow::Continue(())
            },
            Ok,
        )
    }

    /// Sends every value into `sink`, then closes it; returns the number of values sent.
    ///
    /// The sink's backpressure holds the pipeline back: a value is pulled only when the sink
    /// is ready for it. On an error item the sink is dropped without being closed, so a sink
    /// that finishes its output on close (a file renamed into place) leaves nothing
    /// half-written behind.
    ///
    /// # Errors
    ///
    /// The first error item, or the first error of the sink (an [`Io`](ErrorKind::Io) error of
    /// operation `"sink"` unless the sink returned a vortex error).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let (tx, mut rx) = futures_channel::mpsc::unbounded();
    /// let sent = Pipeline::from_iter(1..=3).into_sink(tx).await?;
    /// assert_eq!(sent, 3);
    /// assert_eq!(rx.try_recv().unwrap(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn into_sink<Si>(self, sink: Si) -> Result<u64>
    where
        Si: Sink<T>,
        Si::Error: Into<BoxError>,
    {
        let sink_error = |e: Si::Error| Error::from_boxed(ErrorKind::Io, "sink", e.into());
        let mut stream = pin!(self.inner);
        let mut sink = pin!(sink);
        let mut sent = 0u64;
        while let Some(item) = stream.next().await {
            sink.feed(item?).await.map_err(sink_error)?;
            sent += 1;
        }
        sink.close().await.map_err(sink_error)?;
        Ok(sent)
    }
}
