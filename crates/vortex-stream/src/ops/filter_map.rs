use core::fmt;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`filter_map`](crate::Pipeline::filter_map) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct FilterMap<S, F> {
        #[pin]
        stream: S,
        f: F,
    }
}

impl<S, F> FilterMap<S, F> {
    pub(crate) fn new(stream: S, f: F) -> Self {
        FilterMap { stream, f }
    }

    delegate_access_inner!(stream, S);
}

impl<S: fmt::Debug, F> fmt::Debug for FilterMap<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterMap")
            .field("stream", &self.stream)
            .finish()
    }
}

impl<S, F, T, U> Stream for FilterMap<S, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(T) -> Option<U>,
{
    type Item = Result<U>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(value)) => {
                    if let Some(out) = (this.f)(value) {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => return Poll::Ready(None),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.stream.size_hint().1)
    }
}

impl<S, F, T, U> FusedStream for FilterMap<S, F>
where
    S: FusedStream<Item = Result<T>>,
    F: FnMut(T) -> Option<U>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
