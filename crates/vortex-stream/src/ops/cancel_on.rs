use core::future::Future;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::error::{Error, ErrorKind};
use crate::Result;

pin_project! {
    /// Stream for the [`cancel_on`](crate::Pipeline::cancel_on) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct CancelOn<S> {
        #[pin]
        stream: Option<S>,
        #[pin]
        cancelled: WaitForCancellationFutureOwned,
    }
}

impl<S> CancelOn<S> {
    pub(crate) fn new(stream: S, token: CancellationToken) -> Self {
        CancelOn {
            stream: Some(stream),
            cancelled: token.cancelled_owned(),
        }
    }

    /// Acquires a reference to the underlying stream, or `None` once it ended or was cancelled.
    pub fn get_ref(&self) -> Option<&S> {
        self.stream.as_ref()
    }
}

impl<S, T> Stream for CancelOn<S>
where
    S: Stream<Item = Result<T>>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let Some(stream) = this.stream.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        // The token is checked first, so a cancelled pipeline yields nothing more.
        if this.cancelled.poll(cx).is_ready() {
            // Dropping upstream cancels whatever it was awaiting.
            this.stream.set(None);
            return Poll::Ready(Some(Err(Error::new(ErrorKind::Cancelled, "cancel_on")
                .with_message("pipeline cancelled through its token"))));
        }
        let item = ready!(stream.poll_next(cx));
        if item.is_none() {
            this.stream.set(None);
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.stream {
            None => (0, Some(0)),
            Some(stream) => (0, stream.size_hint().1.and_then(|u| u.checked_add(1))),
        }
    }
}

impl<S, T> FusedStream for CancelOn<S>
where
    S: Stream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_none()
    }
}
