use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`reverse`](crate::Pipeline::reverse) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Reverse<S, T> {
        #[pin]
        stream: S,
        // Every item upstream gave, until it ended; then handed out from the back.
        held: Vec<Result<T>>,
        ended: bool,
    }
}

impl<S, T> Reverse<S, T> {
    pub(crate) fn new(stream: S) -> Self {
        Reverse {
            stream,
            held: Vec::new(),
            ended: false,
        }
    }

    delegate_access_inner!(stream, S, holds: "values held until upstream ends");
}

impl<S, T> Stream for Reverse<S, T>
where
    S: Stream<Item = Result<T>>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        while !*this.ended {
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(item) => this.held.push(item),
                None => *this.ended = true,
            }
        }
        Poll::Ready(this.held.pop())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.ended {
            (self.held.len(), Some(self.held.len()))
        } else {
            let (lower, upper) = self.stream.size_hint();
            (
                lower.saturating_add(self.held.len()),
                upper.and_then(|u| u.checked_add(self.held.len())),
            )
        }
    }
}

impl<S, T> FusedStream for Reverse<S, T>
where
    S: Stream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.ended && self.held.is_empty()
    }
}
