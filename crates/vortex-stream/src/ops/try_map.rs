use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::error::{BoxError, Error};
use crate::Result;

pin_project! {
    /// Stream for the [`try_map`](crate::Pipeline::try_map) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct TryMap<S, F> {
        #[pin]
        stream: S,
        f: F,
    }
}

impl<S, F> TryMap<S, F> {
    pub(crate) fn new(stream: S, f: F) -> Self {
        TryMap { stream, f }
    }

    delegate_access_inner!(stream, S);
}

impl<S: fmt::Debug, F> fmt::Debug for TryMap<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryMap")
            .field("stream", &self.stream)
            .finish()
    }
}

impl<S, F, T, U, E> Stream for TryMap<S, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(T) -> Result<U, E>,
    E: Into<BoxError>,
{
    type Item = Result<U>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        this.stream.poll_next(cx).map(|item| {
            item.map(|item| {
                item.and_then(|v| (this.f)(v).map_err(|e| Error::from_user("try_map", e)))
            })
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S, F, T, U, E> FusedStream for TryMap<S, F>
where
    S: FusedStream<Item = Result<T>>,
    F: FnMut(T) -> Result<U, E>,
    E: Into<BoxError>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
