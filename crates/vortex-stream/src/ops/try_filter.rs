use core::fmt;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::error::{BoxError, Error};
use crate::Result;

pin_project! {
    /// Stream for the [`try_filter`](crate::Pipeline::try_filter) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct TryFilter<S, F> {
        #[pin]
        stream: S,
        f: F,
    }
}

impl<S, F> TryFilter<S, F> {
    pub(crate) fn new(stream: S, f: F) -> Self {
        TryFilter { stream, f }
    }

    delegate_access_inner!(stream, S);
}

impl<S: fmt::Debug, F> fmt::Debug for TryFilter<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryFilter")
            .field("stream", &self.stream)
            .finish()
    }
}

impl<S, F, T, E> Stream for TryFilter<S, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(&T) -> Result<bool, E>,
    E: Into<BoxError>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(value)) => match (this.f)(&value) {
                    Ok(true) => return Poll::Ready(Some(Ok(value))),
                    Ok(false) => {}
                    Err(e) => return Poll::Ready(Some(Err(Error::from_user("try_filter", e)))),
                },
                item => return Poll::Ready(item),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.stream.size_hint().1)
    }
}

impl<S, F, T, E> FusedStream for TryFilter<S, F>
where
    S: FusedStream<Item = Result<T>>,
    F: FnMut(&T) -> Result<bool, E>,
    E: Into<BoxError>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
