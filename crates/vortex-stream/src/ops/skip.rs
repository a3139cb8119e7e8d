use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`skip`](crate::Pipeline::skip) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Skip<S> {
        #[pin]
        stream: S,
        remaining: u64,
    }
}

impl<S> Skip<S> {
    pub(crate) fn new(stream: S, n: u64) -> Self {
        Skip {
            stream,
            remaining: n,
        }
    }

    delegate_access_inner!(stream, S);
}

impl<S, T> Stream for Skip<S>
where
    S: Stream<Item = Result<T>>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(_)) if *this.remaining > 0 => *this.remaining -= 1,
                item => return Poll::Ready(item),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let skip = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        let (lower, upper) = self.stream.size_hint();
        (
            lower.saturating_sub(skip),
            upper.map(|u| u.saturating_sub(skip)),
        )
    }
}

impl<S, T> FusedStream for Skip<S>
where
    S: FusedStream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
