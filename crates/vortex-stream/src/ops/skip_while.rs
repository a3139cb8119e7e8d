use core::fmt;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`skip_while`](crate::Pipeline::skip_while) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct SkipWhile<S, F> {
        #[pin]
        stream: S,
        skipping: bool,
        f: F,
    }
}

impl<S, F> SkipWhile<S, F> {
    pub(crate) fn new(stream: S, f: F) -> Self {
        SkipWhile {
            stream,
            skipping: true,
            f,
        }
    }

    delegate_access_inner!(stream, S);
}

impl<S: fmt::Debug, F> fmt::Debug for SkipWhile<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkipWhile")
            .field("stream", &self.stream)
            .field("skipping", &self.skipping)
            .finish()
    }
}

impl<S, F, T> Stream for SkipWhile<S, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(&T) -> bool,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(value)) if *this.skipping => {
                    if !(this.f)(&value) {
                        *this.skipping = false;
                        return Poll::Ready(Some(Ok(value)));
                    }
                }
                item => return Poll::Ready(item),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.skipping {
            (0, self.stream.size_hint().1)
        } else {
            self.stream.size_hint()
        }
    }
}

impl<S, F, T> FusedStream for SkipWhile<S, F>
where
    S: FusedStream<Item = Result<T>>,
    F: FnMut(&T) -> bool,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
