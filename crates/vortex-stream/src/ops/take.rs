use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`take`](crate::Pipeline::take) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Take<S> {
        #[pin]
        stream: Option<S>,
        remaining: u64,
    }
}

impl<S> Take<S> {
    pub(crate) fn new(stream: S, n: u64) -> Self {
        // Taking nothing never touches the source: drop it at once.
        let stream = if n == 0 { None } else { Some(stream) };
        Take {
            stream,
            remaining: n,
        }
    }

    /// Acquires a reference to the underlying stream, or `None` once enough values were taken
    /// and it was dropped.
    pub fn get_ref(&self) -> Option<&S> {
        self.stream.as_ref()
    }
}

impl<S, T> Stream for Take<S>
where
    S: Stream<Item = Result<T>>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let Some(stream) = this.stream.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let item = ready!(stream.poll_next(cx));
        match &item {
            Some(Ok(_)) => {
                *this.remaining -= 1;
                if *this.remaining == 0 {
                    // Satisfied: release the source (its file, query or task) right now.
                    this.stream.set(None);
                }
            }
            Some(Err(_)) => {}
            None => this.stream.set(None),
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.stream {
            None => (0, Some(0)),
            Some(stream) => {
                let (_, upper) = stream.size_hint();
                (0, upper)
            }
        }
    }
}

impl<S, T> FusedStream for Take<S>
where
    S: Stream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_none()
    }
}
