//! The [`Pipeline`] type: a stream of `Result<T>` items carrying every operator as an inherent
//! method.

use core::fmt;
use core::future::Future;
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::io::Read;

use bytes::Bytes;
use futures_core::stream::BoxStream;
use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

use crate::ops::adapters::MergeAll;
use crate::sources::{read_chunks, Blocking, Generate, Iter, ReadChunks, Receiver, Yielder};
use crate::Result;

mod blocking;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod db;
mod drive;
mod ops;
mod parallel;
mod terminals;

pub use blocking::BlockingIter;
pub use parallel::BatchMap;

/// The chunk size used by the byte-reader constructors when the caller has no preference.
pub const DEFAULT_READ_CHUNK: NonZeroUsize = match NonZeroUsize::new(64 * 1024) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

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
    #[must_use = "streams do nothing unless polled"]
    pub struct Pipeline<S> {
        #[pin]
        inner: S,
    }
}

impl<S: fmt::Debug> fmt::Debug for Pipeline<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pipeline").field(&self.inner).finish()
    }
}

impl<S> Pipeline<S> {
    /// Wraps an adapter; the operators use this to build the next stage.
    pub(crate) fn new(inner: S) -> Self {
        Pipeline { inner }
    }

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

impl<I: Iterator> Pipeline<Iter<I>> {
    /// A pipeline over the values of an iterator, which is advanced as the pipeline is polled.
    ///
    /// The iterator runs on the task that polls the pipeline, so it must be cheap and never
    /// block; a blocking iterator (reading a file, a database cursor) belongs in
    /// [`from_blocking_iter`](Pipeline::from_blocking_iter).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// assert_eq!(Pipeline::from_iter(["a", "b"]).count().await?, 2);
    /// # Ok(())
    /// # }
    /// ```
    // A `FromIterator` impl could not name the iterator type in `Pipeline<Iter<I>>`; this
    // mirrors `from_stream` and `futures::stream::iter` instead.
    #[allow(clippy::should_implement_trait)]
    pub fn from_iter<II>(iter: II) -> Self
    where
        II: IntoIterator<IntoIter = I>,
    {
        Pipeline::new(Iter::new(iter.into_iter()))
    }
}

impl<I, T> Pipeline<futures_util::stream::Iter<I>>
where
    I: Iterator<Item = Result<T>>,
{
    /// A pipeline over an iterator of items that may already be errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::{Error, ErrorKind, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let items = vec![Ok(1), Err(Error::new(ErrorKind::Decode, "test")), Ok(3)];
    /// let err = Pipeline::from_results(items).count().await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Decode);
    /// # }
    /// ```
    pub fn from_results<II>(iter: II) -> Self
    where
        II: IntoIterator<IntoIter = I>,
    {
        Pipeline::new(futures_util::stream::iter(iter))
    }
}

impl<T> Pipeline<Receiver<T>> {
    /// A bounded channel feeding a pipeline: at most `capacity` items wait in it, and a sender
    /// waits for room, so a fast producer is held back by a slow pipeline.
    ///
    /// The pipeline ends when every sender is dropped. Senders send `Result<T>` items, so a
    /// producer can report an error in the stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let (tx, pipeline) = Pipeline::channel(NonZeroUsize::new(8).unwrap());
    /// let producer = async move {
    ///     for n in 0..100 {
    ///         if tx.send(Ok(n)).await.is_err() {
    ///             break; // the pipeline was dropped
    ///         }
    ///     }
    /// };
    /// let (_, sum) = tokio::join!(producer, pipeline.fold(0, |a, b| a + b));
    /// assert_eq!(sum?, 4950);
    /// # Ok(())
    /// # }
    /// ```
    pub fn channel(capacity: NonZeroUsize) -> (mpsc::Sender<Result<T>>, Self) {
        let (tx, rx) = mpsc::channel(capacity.get());
        (tx, Pipeline::from_receiver(rx))
    }

    /// A pipeline over the items of a tokio channel's receiver; it ends when every sender is
    /// dropped.
    pub fn from_receiver(rx: mpsc::Receiver<Result<T>>) -> Self {
        Pipeline::new(Receiver::new(rx))
    }
}

impl<T, Fut> Pipeline<Generate<T, Fut>>
where
    Fut: Future<Output = Result<()>>,
{
    /// A pipeline whose items an async closure produces with a [`Yielder`], in the style of a
    /// generator.
    ///
    /// The closure runs as the pipeline is polled, on the same task: each
    /// [`emit`](Yielder::emit) waits until the consumer has taken the item, so at most one item
    /// is held. If the closure returns an error, it is the last item.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let squares = Pipeline::generate(|mut y| async move {
    ///     for n in 1..=3u32 {
    ///         y.emit(n * n).await;
    ///     }
    ///     Ok(())
    /// });
    /// assert_eq!(squares.collect::<Vec<_>>().await?, [1, 4, 9]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn generate<F>(f: F) -> Self
    where
        F: FnOnce(Yielder<T>) -> Fut,
    {
        Pipeline::new(Generate::new(f))
    }
}

impl<T> Pipeline<BoxStream<'static, Result<T>>> {
    /// A pipeline built from a state and an async step, which returns the next item and state,
    /// or `None` to end: a thin wrapper over `futures::stream::unfold`.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let countdown = Pipeline::unfold(3u32, |n| async move {
    ///     (n > 0).then(|| (Ok(n), n - 1))
    /// });
    /// assert_eq!(countdown.collect::<Vec<_>>().await?, [3, 2, 1]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn unfold<St, F, Fut>(init: St, step: F) -> Self
    where
        St: Send + 'static,
        F: FnMut(St) -> Fut + Send + 'static,
        Fut: Future<Output = Option<(Result<T>, St)>> + Send + 'static,
        T: Send + 'static,
    {
        Pipeline::new(Box::pin(futures_util::stream::unfold(init, step)))
    }
}

impl<T: Send + 'static> Pipeline<Blocking<T>> {
    /// A pipeline over a sync, possibly blocking iterator of `Result<T>` items (a file reader,
    /// a database cursor), run on tokio's blocking pool so it never stalls the runtime.
    ///
    /// Items are handed over in batches of up to `batch`, so the cost of crossing threads is
    /// paid once a batch; a slow iterator's items wait until their batch fills or the iterator
    /// ends, so choose a batch of 1 for an interactive source.
    ///
    /// Memory: at most four batches (one filling, two in the channel, one being yielded).
    /// Dropping the pipeline stops the iterator as soon as its current `next` call returns, and
    /// drops it on the blocking thread. A panic in the iterator becomes a final
    /// [`Internal`](crate::ErrorKind::Internal) error item. The pipeline must be polled inside
    /// a tokio runtime; elsewhere it yields an `Internal` error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let batch = NonZeroUsize::new(256).unwrap();
    /// let rows = (0..1000u32).map(Ok);
    /// assert_eq!(Pipeline::from_blocking_iter(rows, batch).count().await?, 1000);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_blocking_iter<I>(iter: I, batch: NonZeroUsize) -> Self
    where
        I: IntoIterator<Item = Result<T>>,
        I::IntoIter: Send + 'static,
    {
        Pipeline::new(Blocking::new(iter, batch))
    }
}

impl Pipeline<Blocking<Bytes>> {
    /// A pipeline of byte chunks (at most `chunk` bytes each) read from a sync reader on tokio's
    /// blocking pool.
    ///
    /// A read error is an [`Io`](crate::ErrorKind::Io) item whose position is the byte offset
    /// reached, and the last item. Memory: about four chunks. See
    /// [`from_blocking_iter`](Pipeline::from_blocking_iter) for how dropping stops it.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::{Pipeline, DEFAULT_READ_CHUNK};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let input = std::io::Cursor::new(vec![7u8; 200_000]);
    /// let bytes = Pipeline::from_read(input, DEFAULT_READ_CHUNK)
    ///     .fold(0, |n, chunk| n + chunk.len())
    ///     .await?;
    /// assert_eq!(bytes, 200_000);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_read<R>(reader: R, chunk: NonZeroUsize) -> Self
    where
        R: Read + Send + 'static,
    {
        Pipeline::new(Blocking::new(
            read_chunks(reader, chunk, "read"),
            NonZeroUsize::MIN,
        ))
    }
}

impl<R: AsyncRead> Pipeline<ReadChunks<R>> {
    /// A pipeline of byte chunks (at most `chunk` bytes each) read from an async reader: a
    /// file, stdin, a socket, an HTTP body.
    ///
    /// A read error is an [`Io`](crate::ErrorKind::Io) item whose position is the byte offset
    /// reached, and the last item. Memory: one chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::{Pipeline, DEFAULT_READ_CHUNK};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let input: &[u8] = b"hello, world";
    /// let chunks = Pipeline::from_async_read(input, DEFAULT_READ_CHUNK).collect::<Vec<_>>().await?;
    /// assert_eq!(chunks.concat(), b"hello, world");
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_async_read(reader: R, chunk: NonZeroUsize) -> Self {
        Pipeline::new(ReadChunks::new(reader, chunk))
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

impl<S> Stream for Pipeline<S>
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

impl<S> FusedStream for Pipeline<S>
where
    S: FusedStream,
{
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}
