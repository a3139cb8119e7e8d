use core::fmt;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`scan`](crate::Pipeline::scan) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct Scan<S, St, F> {
        #[pin]
        stream: Option<S>,
        state: St,
        f: F,
    }
}

impl<S, St, F> Scan<S, St, F> {
    pub(crate) fn new(stream: S, state: St, f: F) -> Self {
        Scan {
            stream: Some(stream),
            state,
            f,
        }
    }

    /// Acquires a reference to the underlying stream, or `None` once the scan ended.
    pub fn get_ref(&self) -> Option<&S> {
        self.stream.as_ref()
    }
}

impl<S: fmt::Debug, St: fmt::Debug, F> fmt::Debug for Scan<S, St, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scan")
            .field("stream", &self.stream)
            .field("state", &self.state)
            .finish()
    }
}

impl<S, St, F, T, U> Stream for Scan<S, St, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(&mut St, T) -> Option<U>,
{
    type Item = Result<U>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let Some(stream) = this.stream.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        match ready!(stream.poll_next(cx)) {
            Some(Ok(value)) => match (this.f)(this.state, value) {
                Some(out) => Poll::Ready(Some(Ok(out))),
                None => {
                    this.stream.set(None);
                    Poll::Ready(None)
                }
            },
            Some(Err(err)) => Poll::Ready(Some(Err(err))),
            None => {
                this.stream.set(None);
                Poll::Ready(None)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.stream {
            None => (0, Some(0)),
            Some(stream) => (0, stream.size_hint().1),
        }
    }
}

impl<S, St, F, T, U> FusedStream for Scan<S, St, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(&mut St, T) -> Option<U>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_none()
    }
}
