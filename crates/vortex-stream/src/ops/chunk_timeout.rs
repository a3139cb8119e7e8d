use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::future::Future;

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::chunk::INITIAL_CHUNK_CAPACITY;
use crate::Result;

pin_project! {
    /// Stream for the [`chunk_timeout`](crate::Pipeline::chunk_timeout) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct ChunkTimeout<S, T> {
        #[pin]
        stream: S,
        // Created at the first value, inside the runtime, then reset for each chunk.
        #[pin]
        timer: Option<Sleep>,
        items: Vec<T>,
        size: NonZeroUsize,
        duration: Duration,
        done: bool,
    }
}

impl<S, T> ChunkTimeout<S, T> {
    pub(crate) fn new(stream: S, size: NonZeroUsize, duration: Duration) -> Self {
        ChunkTimeout {
            stream,
            timer: None,
            items: Vec::new(),
            size,
            duration,
            done: false,
        }
    }

    delegate_access_inner!(stream, S, holds: "values gathered into a chunk not yet full");
}

impl<S, T> Stream for ChunkTimeout<S, T>
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
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(value))) => {
                    if this.timer.is_none() {
                        if let Some(err) = super::outside_runtime("chunk_timeout") {
                            *this.done = true;
                            return Poll::Ready(Some(Err(err)));
                        }
                    }
                    if this.items.is_empty() {
                        // The first value of a chunk starts its clock.
                        let deadline = Instant::now() + *this.duration;
                        match this.timer.as_mut().as_pin_mut() {
                            Some(timer) => timer.reset(deadline),
                            None => this.timer.set(Some(tokio::time::sleep_until(deadline))),
                        }
                        this.items.reserve(size.min(INITIAL_CHUNK_CAPACITY));
                    }
                    this.items.push(value);
                    if this.items.len() >= size {
                        return Poll::Ready(Some(Ok(core::mem::take(this.items))));
                    }
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => {
                    *this.done = true;
                    this.timer.set(None);
                    if this.items.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(core::mem::take(this.items))));
                }
                Poll::Pending => {
                    if this.items.is_empty() {
                        return Poll::Pending;
                    }
                    let Some(timer) = this.timer.as_mut().as_pin_mut() else {
                        return Poll::Pending;
                    };
                    return match timer.poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Some(Ok(core::mem::take(this.items)))),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let buffered = self.items.len();
        let (lower, upper) = self.stream.size_hint();
        let lower = usize::from(lower.saturating_add(buffered) > 0);
        (lower, upper.and_then(|u| u.checked_add(buffered)))
    }
}

impl<S, T> FusedStream for ChunkTimeout<S, T>
where
    S: Stream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}
