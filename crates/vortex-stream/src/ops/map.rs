use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`map`](crate::Pipeline::map) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct Map<S, F> {
        #[pin]
        stream: S,
        f: F,
    }
}

impl<S, F> Map<S, F> {
    pub(crate) fn new(stream: S, f: F) -> Self {
        Map { stream, f }
    }

    delegate_access_inner!(stream, S);
}

impl<S: fmt::Debug, F> fmt::Debug for Map<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map").field("stream", &self.stream).finish()
    }
}

impl<S, F, T, U> Stream for Map<S, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(T) -> U,
{
    type Item = Result<U>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        this.stream
            .poll_next(cx)
            .map(|item| item.map(|item| item.map(this.f)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S, F, T, U> FusedStream for Map<S, F>
where
    S: FusedStream<Item = Result<T>>,
    F: FnMut(T) -> U,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
