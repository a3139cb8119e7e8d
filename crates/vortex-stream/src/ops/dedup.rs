use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`dedup`](crate::Pipeline::dedup) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Dedup<S, T> {
        #[pin]
        stream: S,
        last: Option<T>,
    }
}

impl<S, T> Dedup<S, T> {
    pub(crate) fn new(stream: S) -> Self {
        Dedup { stream, last: None }
    }

    delegate_access_inner!(stream, S);
}

impl<S, T> Stream for Dedup<S, T>
where
    S: Stream<Item = Result<T>>,
    T: PartialEq + Clone,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(value)) => {
                    if this.last.as_ref() != Some(&value) {
                        *this.last = Some(value.clone());
                        return Poll::Ready(Some(Ok(value)));
                    }
                }
                item => return Poll::Ready(item),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lower, upper) = self.stream.size_hint();
        (lower.min(1), upper)
    }
}

impl<S, T> FusedStream for Dedup<S, T>
where
    S: FusedStream<Item = Result<T>>,
    T: PartialEq + Clone,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
