use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`chain`](crate::Pipeline::chain) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Chain<A, B> {
        #[pin]
        first: Option<A>,
        #[pin]
        second: Option<B>,
    }
}

impl<A, B> Chain<A, B> {
    pub(crate) fn new(first: A, second: B) -> Self {
        Chain {
            first: Some(first),
            second: Some(second),
        }
    }
}

impl<A, B, T> Stream for Chain<A, B>
where
    A: Stream<Item = Result<T>>,
    B: Stream<Item = Result<T>>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if let Some(first) = this.first.as_mut().as_pin_mut() {
            if let Some(item) = ready!(first.poll_next(cx)) {
                return Poll::Ready(Some(item));
            }
            // The first stream is done: release it before starting the second.
            this.first.set(None);
        }
        let Some(second) = this.second.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let item = ready!(second.poll_next(cx));
        if item.is_none() {
            this.second.set(None);
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (a_lower, a_upper) = self.first.as_ref().map_or((0, Some(0)), Stream::size_hint);
        let (b_lower, b_upper) = self.second.as_ref().map_or((0, Some(0)), Stream::size_hint);
        let upper = match (a_upper, b_upper) {
            (Some(a), Some(b)) => a.checked_add(b),
            _ => None,
        };
        (a_lower.saturating_add(b_lower), upper)
    }
}

impl<A, B, T> FusedStream for Chain<A, B>
where
    A: Stream<Item = Result<T>>,
    B: Stream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.first.is_none() && self.second.is_none()
    }
}
