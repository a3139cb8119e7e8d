use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

/// The capacity reserved up front for a chunk; a larger chunk grows as values arrive, so a
/// huge `n` costs nothing on a short stream.
pub(crate) const INITIAL_CHUNK_CAPACITY: usize = 1024;

pin_project! {
    /// Stream for the [`chunk`](crate::Pipeline::chunk) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Chunk<S, T> {
        #[pin]
        stream: S,
        items: Vec<T>,
        size: NonZeroUsize,
        done: bool,
    }
}

impl<S, T> Chunk<S, T> {
    pub(crate) fn new(stream: S, size: NonZeroUsize) -> Self {
        Chunk {
            stream,
            items: Vec::new(),
            size,
            done: false,
        }
    }

    delegate_access_inner!(stream, S, holds: "values gathered into a chunk not yet full");
}

impl<S, T> Stream for Chunk<S, T>
where
    S: Stream<Item = Result<T>>,
{
    type Item = Result<Vec<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let size = this.size.get();
        loop {
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(value)) => {
                    if this.items.capacity() == 0 {
                        this.items.reserve(size.min(INITIAL_CHUNK_CAPACITY));
                    }
                    this.items.push(value);
                    if this.items.len() >= size {
                        return Poll::Ready(Some(Ok(core::mem::take(this.items))));
                    }
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => {
                    *this.done = true;
                    if this.items.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(core::mem::take(this.items))));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let size = self.size.get();
        let buffered = self.items.len();
        let (lower, upper) = self.stream.size_hint();
        let lower = lower.saturating_add(buffered) / size;
        let upper = upper
            .and_then(|u| u.checked_add(buffered))
            .map(|u| u.div_ceil(size));
        (lower, upper)
    }
}

impl<S, T> FusedStream for Chunk<S, T>
where
    S: Stream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}
