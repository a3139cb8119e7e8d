use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

use crate::Pipeline;
use crate::Result;

/// Stream for the [`from_iter`](crate::Pipeline::from_iter) constructor.
#[derive(Debug, Clone)]
#[must_use = "streams do nothing unless polled"]
pub struct Iter<I> {
    iter: Option<I>,
}

impl<I> Iter<I> {
    pub(crate) fn new(iter: I) -> Self {
        Iter { iter: Some(iter) }
    }
}

// The iterator is only ever moved, never pinned.
impl<I> Unpin for Iter<I> {}

impl<I: Iterator> Stream for Iter<I> {
    type Item = Result<I::Item>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(iter) = self.iter.as_mut() else {
            return Poll::Ready(None);
        };
        match iter.next() {
            Some(value) => Poll::Ready(Some(Ok(value))),
            None => {
                self.iter = None;
                Poll::Ready(None)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.as_ref().map_or((0, Some(0)), Iterator::size_hint)
    }
}

impl<I: Iterator> FusedStream for Iter<I> {
    fn is_terminated(&self) -> bool {
        self.iter.is_none()
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

impl<S, T, E> Pipeline<futures_util::stream::MapErr<S, fn(E) -> crate::Error>>
where
    S: Stream<Item = core::result::Result<T, E>>,
    E: Into<crate::BoxError>,
{
    /// A pipeline of any stream of results whose error converts into a boxed error (an
    /// `std::io::Error`, a driver's error, a `String`): each error becomes a
    /// [`User`](crate::ErrorKind::User) error item with it as its cause (a vortex
    /// [`Error`](crate::Error)
    /// passes as it is). For a stream of `Result<T, vortex_stream::Error>`, use
    /// [`from_stream`](Pipeline::from_stream).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_util::stream;
    /// use vortex_stream::{ErrorKind, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let lines = stream::iter([Ok("a"), Err(std::io::Error::other("disk gone")), Ok("b")]);
    /// let items: Vec<_> = futures_util::StreamExt::collect(Pipeline::from_try_stream(lines)).await;
    /// assert_eq!(items.len(), 3);
    /// let err = items[1].as_ref().unwrap_err();
    /// assert_eq!((err.kind(), err.message()), (ErrorKind::User, "disk gone"));
    /// # }
    /// ```
    pub fn from_try_stream(stream: S) -> Self {
        let convert: fn(E) -> crate::Error =
            |err| crate::Error::from_boxed(crate::ErrorKind::User, "stream", err.into());
        Pipeline::new(futures_util::TryStreamExt::map_err(stream, convert))
    }
}
