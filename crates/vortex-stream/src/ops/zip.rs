use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`zip`](crate::Pipeline::zip) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Zip<A, B, T> {
        #[pin]
        left: A,
        #[pin]
        right: B,
        // A value from the left side waiting for its partner.
        pending: Option<T>,
        done: bool,
    }
}

impl<A, B, T> Zip<A, B, T> {
    pub(crate) fn new(left: A, right: B) -> Self {
        Zip {
            left,
            right,
            pending: None,
            done: false,
        }
    }

    /// Consumes this adapter, returning the two underlying streams.
    pub fn into_inner(self) -> (A, B) {
        (self.left, self.right)
    }
}

impl<A, B, T, U> Stream for Zip<A, B, T>
where
    A: Stream<Item = Result<T>>,
    B: Stream<Item = Result<U>>,
{
    type Item = Result<(T, U)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if this.pending.is_none() {
            match ready!(this.left.as_mut().poll_next(cx)) {
                Some(Ok(value)) => *this.pending = Some(value),
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => {
                    *this.done = true;
                    return Poll::Ready(None);
                }
            }
        }
        match ready!(this.right.as_mut().poll_next(cx)) {
            Some(Ok(right)) => match this.pending.take() {
                Some(left) => Poll::Ready(Some(Ok((left, right)))),
                None => Poll::Ready(None),
            },
            Some(Err(err)) => Poll::Ready(Some(Err(err))),
            None => {
                *this.done = true;
                *this.pending = None;
                Poll::Ready(None)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let pending = usize::from(self.pending.is_some());
        let (_, l_upper) = self.left.size_hint();
        let (_, r_upper) = self.right.size_hint();
        let upper = match (l_upper.and_then(|l| l.checked_add(pending)), r_upper) {
            (Some(l), Some(r)) => Some(l.min(r)),
            (Some(l), None) => Some(l),
            (None, r) => r,
        };
        (0, upper)
    }
}

impl<A, B, T, U> FusedStream for Zip<A, B, T>
where
    A: Stream<Item = Result<T>>,
    B: Stream<Item = Result<U>>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}
