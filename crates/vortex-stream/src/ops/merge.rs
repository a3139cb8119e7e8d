use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`merge`](crate::Pipeline::merge) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Merge<A, B> {
        #[pin]
        left: Option<A>,
        #[pin]
        right: Option<B>,
        // Which side is polled first next time; flipped after every item, for fairness.
        right_first: bool,
    }
}

impl<A, B> Merge<A, B> {
    pub(crate) fn new(left: A, right: B) -> Self {
        Merge {
            left: Some(left),
            right: Some(right),
            right_first: false,
        }
    }
}

/// Polls one side, dropping it when it ends; `None` means the side is finished or pending.
fn poll_side<S: Stream>(mut side: Pin<&mut Option<S>>, cx: &mut Context<'_>) -> Option<S::Item> {
    let stream = side.as_mut().as_pin_mut()?;
    match stream.poll_next(cx) {
        Poll::Ready(Some(item)) => Some(item),
        Poll::Ready(None) => {
            side.set(None);
            None
        }
        Poll::Pending => None,
    }
}

impl<A, B, T> Stream for Merge<A, B>
where
    A: Stream<Item = Result<T>>,
    B: Stream<Item = Result<T>>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let item = if *this.right_first {
            poll_side(this.right.as_mut(), cx).or_else(|| poll_side(this.left.as_mut(), cx))
        } else {
            poll_side(this.left.as_mut(), cx).or_else(|| poll_side(this.right.as_mut(), cx))
        };
        match item {
            Some(item) => {
                *this.right_first = !*this.right_first;
                Poll::Ready(Some(item))
            }
            None if this.left.is_none() && this.right.is_none() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (a_lower, a_upper) = self.left.as_ref().map_or((0, Some(0)), Stream::size_hint);
        let (b_lower, b_upper) = self.right.as_ref().map_or((0, Some(0)), Stream::size_hint);
        let upper = match (a_upper, b_upper) {
            (Some(a), Some(b)) => a.checked_add(b),
            _ => None,
        };
        (a_lower.saturating_add(b_lower), upper)
    }
}

impl<A, B, T> FusedStream for Merge<A, B>
where
    A: Stream<Item = Result<T>>,
    B: Stream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.left.is_none() && self.right.is_none()
    }
}
