use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

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
