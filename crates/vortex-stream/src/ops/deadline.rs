use core::future::Future;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::error::{Error, ErrorKind};
use crate::Result;

pin_project! {
    /// Stream for the [`deadline`](crate::Pipeline::deadline) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Deadline<S> {
        #[pin]
        stream: Option<S>,
        // Created at the first poll, inside the runtime.
        #[pin]
        timer: Option<Sleep>,
        at: Instant,
    }
}

impl<S> Deadline<S> {
    pub(crate) fn new(stream: S, at: Instant) -> Self {
        Deadline {
            stream: Some(stream),
            timer: None,
            at,
        }
    }

    /// Acquires a reference to the underlying stream, or `None` once it ended or timed out.
    pub fn get_ref(&self) -> Option<&S> {
        self.stream.as_ref()
    }
}

impl<S, T> Stream for Deadline<S>
where
    S: Stream<Item = Result<T>>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let Some(stream) = this.stream.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        if this.timer.is_none() {
            if let Some(err) = super::outside_runtime("deadline") {
                this.stream.set(None);
                return Poll::Ready(Some(Err(err)));
            }
            this.timer.set(Some(tokio::time::sleep_until(*this.at)));
        }
        if let Some(timer) = this.timer.as_mut().as_pin_mut() {
            if timer.poll(cx).is_ready() {
                this.stream.set(None);
                this.timer.set(None);
                return Poll::Ready(Some(Err(Error::new(ErrorKind::Timeout, "deadline")
                    .with_message("pipeline deadline passed"))));
            }
        }
        let item = ready!(stream.poll_next(cx));
        if item.is_none() {
            this.stream.set(None);
            this.timer.set(None);
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

impl<S, T> FusedStream for Deadline<S>
where
    S: Stream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_none()
    }
}
