use core::fmt;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`take_while`](crate::Pipeline::take_while) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct TakeWhile<S, F> {
        #[pin]
        stream: Option<S>,
        f: F,
    }
}

impl<S, F> TakeWhile<S, F> {
    pub(crate) fn new(stream: S, f: F) -> Self {
        TakeWhile {
            stream: Some(stream),
            f,
        }
    }

    /// Acquires a reference to the underlying stream, or `None` once it ended and was dropped.
    pub fn get_ref(&self) -> Option<&S> {
        self.stream.as_ref()
    }
}

impl<S: fmt::Debug, F> fmt::Debug for TakeWhile<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TakeWhile")
            .field("stream", &self.stream)
            .finish()
    }
}

impl<S, F, T> Stream for TakeWhile<S, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(&T) -> bool,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let Some(stream) = this.stream.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        match ready!(stream.poll_next(cx)) {
            Some(Ok(value)) if !(this.f)(&value) => {
                this.stream.set(None);
                Poll::Ready(None)
            }
            None => {
                this.stream.set(None);
                Poll::Ready(None)
            }
            item => Poll::Ready(item),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.stream {
            None => (0, Some(0)),
            Some(stream) => (0, stream.size_hint().1),
        }
    }
}

impl<S, F, T> FusedStream for TakeWhile<S, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(&T) -> bool,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_none()
    }
}
