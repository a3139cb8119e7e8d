use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Yields the items of decoded batches one by one: the last step of a format source that
    /// decodes batches in parallel.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct FlattenBatches<S, T> {
        #[pin]
        stream: S,
        batch: std::vec::IntoIter<Result<T>>,
        done: bool,
    }
}

impl<S, T> FlattenBatches<S, T> {
    #[cfg(any(feature = "csv", feature = "jsonl", feature = "postgres"))]
    pub(crate) fn new(stream: S) -> Self {
        FlattenBatches {
            stream,
            batch: Vec::new().into_iter(),
            done: false,
        }
    }
}

impl<S, T> Stream for FlattenBatches<S, T>
where
    S: Stream<Item = Result<Vec<Result<T>>>>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(item) = this.batch.next() {
                return Poll::Ready(Some(item));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(batch)) => *this.batch = batch.into_iter(),
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => *this.done = true,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let held = self.batch.len();
        if self.done {
            (held, Some(held))
        } else {
            (held, None)
        }
    }
}

impl<S, T> FusedStream for FlattenBatches<S, T>
where
    S: Stream<Item = Result<Vec<Result<T>>>>,
{
    fn is_terminated(&self) -> bool {
        self.done && self.batch.len() == 0
    }
}
