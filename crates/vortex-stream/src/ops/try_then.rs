use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::error::{BoxError, Error};
use crate::Result;

pin_project! {
    /// Stream for the [`try_then`](crate::Pipeline::try_then) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct TryThen<S, Fut, F> {
        #[pin]
        stream: S,
        #[pin]
        pending: Option<Fut>,
        f: F,
    }
}

impl<S, Fut, F> TryThen<S, Fut, F> {
    pub(crate) fn new(stream: S, f: F) -> Self {
        TryThen {
            stream,
            pending: None,
            f,
        }
    }

    delegate_access_inner!(stream, S, holds: "call in progress and its value");
}

impl<S: fmt::Debug, Fut, F> fmt::Debug for TryThen<S, Fut, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryThen")
            .field("stream", &self.stream)
            .field("pending", &self.pending.is_some())
            .finish()
    }
}

impl<S, Fut, F, T, U, E> Stream for TryThen<S, Fut, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(T) -> Fut,
    Fut: Future<Output = Result<U, E>>,
    E: Into<BoxError>,
{
    type Item = Result<U>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(fut) = this.pending.as_mut().as_pin_mut() {
                let out = ready!(fut.poll(cx));
                this.pending.set(None);
                return Poll::Ready(Some(out.map_err(|e| Error::from_user("try_then", e))));
            }
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(value)) => this.pending.set(Some((this.f)(value))),
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => return Poll::Ready(None),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let pending = usize::from(self.pending.is_some());
        let (lower, upper) = self.stream.size_hint();
        (
            lower.saturating_add(pending),
            upper.and_then(|u| u.checked_add(pending)),
        )
    }
}

impl<S, Fut, F, T, U, E> FusedStream for TryThen<S, Fut, F>
where
    S: FusedStream<Item = Result<T>>,
    F: FnMut(T) -> Fut,
    Fut: Future<Output = Result<U, E>>,
    E: Into<BoxError>,
{
    fn is_terminated(&self) -> bool {
        self.pending.is_none() && self.stream.is_terminated()
    }
}
