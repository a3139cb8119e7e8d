use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

use crate::Result;

/// Stream for the [`merge_all`](crate::Pipeline::merge_all) constructor.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct MergeAll<S> {
    // A finished input leaves an empty slot, so that the others keep their places.
    streams: Vec<Option<Pin<Box<S>>>>,
    live: usize,
    // The slot polled first next time; it advances after every item, for fairness.
    next: usize,
}

impl<S> MergeAll<S> {
    pub(crate) fn new(streams: impl IntoIterator<Item = S>) -> Self {
        let streams: Vec<_> = streams.into_iter().map(|s| Some(Box::pin(s))).collect();
        MergeAll {
            live: streams.len(),
            streams,
            next: 0,
        }
    }

    /// The number of inputs that have not ended yet.
    #[must_use]
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether every input has ended.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
}

impl<S, T> Stream for MergeAll<S>
where
    S: Stream<Item = Result<T>>,
{
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let slots = this.streams.len();
        for step in 0..slots {
            let index = (this.next + step) % slots;
            let Some(stream) = this.streams[index].as_mut() else {
                continue;
            };
            match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.next = (index + 1) % slots;
                    return Poll::Ready(Some(item));
                }
                Poll::Ready(None) => {
                    // Release the finished input at once.
                    this.streams[index] = None;
                    this.live -= 1;
                }
                Poll::Pending => {}
            }
        }
        if this.live == 0 {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.streams.iter().flatten().map(|s| s.size_hint()).fold(
            (0, Some(0)),
            |(lower, upper), (l, u)| {
                (
                    lower.saturating_add(l),
                    upper.zip(u).and_then(|(a, b)| a.checked_add(b)),
                )
            },
        )
    }
}

impl<S, T> FusedStream for MergeAll<S>
where
    S: Stream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.live == 0
    }
}
