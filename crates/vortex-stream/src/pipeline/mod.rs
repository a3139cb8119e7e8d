//! The [`Pipeline`] type: a stream of `Result<T>` items carrying every operator as an inherent
//! method.

use core::fmt;
use core::marker::PhantomData;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::fusion::Fusable;
use crate::ops::adapters::MergeAll;
use crate::Result;

mod acked;
mod blocking;
mod drive;
#[cfg(any(feature = "csv", feature = "jsonl"))]
mod fused;
mod ops;
mod parallel;
mod terminals;

pub use acked::AckPipeline;
pub use blocking::BlockingIter;

pin_project! {
    /// A lazy stream of `Result<T>` items with every vortex operator as a method.
    ///
    /// Nothing runs until the pipeline is polled, by a terminal such as
    /// [`for_each`](Pipeline::for_each) or [`count`](Pipeline::count), by a sink, or by any code
    /// that takes a [`Stream`]: a `Pipeline` is a `Stream`. Each operator returns a new
    /// `Pipeline` wrapping an adapter from [`adapters`](crate::adapters); values flow through
    /// one at a time, and errors travel as `Err` items next to them.
    ///
    /// Operators act on values; an error item passes every operator unchanged (unless the
    /// operator's docs say otherwise), so it reaches the end of the pipeline with the operation
    /// and position where it arose. There an [`ErrorPolicy`](crate::ErrorPolicy) or a terminal
    /// decides what to do with it: every terminal stops at the first error and returns it.
    ///
    /// Dropping a pipeline drops every stage and source in it, and so stops their work.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let total: u64 = Pipeline::from_iter(1..=10u64)
    ///     .filter(|n| n % 2 == 0)
    ///     .map(|n| n * n)
    ///     .fold(0, |sum, n| sum + n)
    ///     .await?;
    /// assert_eq!(total, 4 + 16 + 36 + 64 + 100);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Fused stages
    ///
    /// The second parameter says what the next stage may do. Most pipelines are
    /// [`Plain`](crate::fusion::Plain): each operator is a stage of its own, run where the
    /// pipeline is polled. A source that decodes on threads of its own (such as
    /// [`CsvSource::deserialize`](crate::sources::CsvSource::deserialize)) returns a
    /// [`Fusable`](crate::fusion::Fusable) pipeline: the [`filter`](Pipeline::filter),
    /// [`map`](Pipeline::map), [`filter_map`](Pipeline::filter_map) and
    /// [`par_map`](Pipeline::par_map) right after it run on the decoding threads, so the
    /// records they drop never cross threads. See [`fusion`](crate::fusion).
    #[must_use = "streams do nothing unless polled"]
    pub struct Pipeline<S, Kind = crate::fusion::Plain> {
        #[pin]
        inner: S,
        kind: PhantomData<fn() -> Kind>,
    }
}

impl<S: fmt::Debug, Kind> fmt::Debug for Pipeline<S, Kind> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pipeline").field(&self.inner).finish()
    }
}

impl<S> Pipeline<S> {
    /// Wraps an adapter; the operators use this to build the next stage.
    pub(crate) fn new(inner: S) -> Self {
        Pipeline {
            inner,
            kind: PhantomData,
        }
    }
}

impl<S> Pipeline<S, Fusable> {
    /// Wraps a source whose next stateless stages can run on its own threads.
    #[cfg(any(feature = "csv", feature = "jsonl"))]
    pub(crate) fn fusable(inner: S) -> Self {
        Pipeline {
            inner,
            kind: PhantomData,
        }
    }

    /// The same pipeline, its next stage run where the pipeline is polled rather than fused
    /// into the source: for a [`filter`](Pipeline::filter), [`map`](Pipeline::map) or
    /// [`filter_map`](Pipeline::filter_map) whose closure borrows, is not `Send`, or must see
    /// only the values the pipeline goes on to take.
    pub fn unfused(self) -> Pipeline<S> {
        Pipeline::new(self.inner)
    }
}

impl<S, Kind> Pipeline<S, Kind> {
    /// Acquires a reference to the underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Acquires a mutable reference to the underlying stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the pipeline, returning the underlying stream.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Constructors.
impl<S, T> Pipeline<S>
where
    S: Stream<Item = Result<T>>,
{
    /// Wraps any stream of `Result<T>` items.
    ///
    /// A stream of plain values can be wrapped after mapping them with `Ok`, and a stream with
    /// another error type after mapping its errors with [`Error::from_user`](crate::Error::from_user)
    /// or another [`Error`](crate::Error) constructor.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_util::stream::{self, StreamExt as _};
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let values = stream::iter([3, 4]).map(Ok);
    /// assert_eq!(Pipeline::from_stream(values).collect::<Vec<i32>>().await?, [3, 4]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_stream(stream: S) -> Self {
        Pipeline::new(stream)
    }
}

impl<S, T> Pipeline<MergeAll<S>>
where
    S: Stream<Item = Result<T>>,
{
    /// Interleaves the items of several pipelines of one type fairly: each poll starts with
    /// the input after the one that yielded last, so no input starves another.
    ///
    /// Items from each input keep their order; the pipeline ends when every input has ended,
    /// and each input is dropped as soon as it ends. Memory: one pinned box per input, no items.
    /// To merge pipelines of different types, [`boxed`](Pipeline::boxed) them first, or use
    /// [`merge`](Pipeline::merge) for two.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let inputs = [Pipeline::from_iter(vec![1, 2]), Pipeline::from_iter(vec![10, 20])];
    /// let merged = Pipeline::merge_all(inputs).collect::<Vec<_>>().await?;
    /// assert_eq!(merged, [1, 10, 2, 20]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn merge_all<I>(inputs: I) -> Self
    where
        I: IntoIterator<Item = S>,
    {
        Pipeline::new(MergeAll::new(inputs))
    }
}

impl<S, Kind> Stream for Pipeline<S, Kind>
where
    S: Stream,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().inner.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S, Kind> FusedStream for Pipeline<S, Kind>
where
    S: FusedStream,
{
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}
