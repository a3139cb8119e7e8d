use core::fmt;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`filter`](crate::Pipeline::filter) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct Filter<S, F> {
        #[pin]
        stream: S,
        f: F,
    }
}

impl<S, F> Filter<S, F> {
    pub(crate) fn new(stream: S, f: F) -> Self {
        Filter { stream, f }
    }

    delegate_access_inner!(stream, S);
}

impl<S: fmt::Debug, F> fmt::Debug for Filter<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("stream", &self.stream)
            .finish()
    }
}

impl<S, F, T> Stream for Filter<S, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(&T) -> bool,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(value)) if !(this.f)(&value) => {}
                item => return Poll::Ready(item),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.stream.size_hint().1)
    }
}

impl<S, F, T> FusedStream for Filter<S, F>
where
    S: FusedStream<Item = Result<T>>,
    F: FnMut(&T) -> bool,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
