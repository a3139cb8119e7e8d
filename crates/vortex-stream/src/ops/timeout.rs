use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::error::{Error, ErrorKind};
use crate::Result;

pin_project! {
    /// Stream for the [`timeout`](crate::Pipeline::timeout) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Timeout<S> {
        #[pin]
        stream: S,
        // Armed while waiting for an item; created inside the runtime.
        #[pin]
        timer: Option<Sleep>,
        armed: bool,
        limit: Duration,
    }
}

impl<S> Timeout<S> {
    pub(crate) fn new(stream: S, limit: Duration) -> Self {
        Timeout {
            stream,
            timer: None,
            armed: false,
            limit,
        }
    }

    delegate_access_inner!(stream, S);
}

impl<S, T> Stream for Timeout<S>
where
    S: Stream<Item = Result<T>>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if let Poll::Ready(item) = this.stream.as_mut().poll_next(cx) {
            *this.armed = false;
            return Poll::Ready(item);
        }
        if !*this.armed {
            let deadline = Instant::now() + *this.limit;
            match this.timer.as_mut().as_pin_mut() {
                Some(timer) => timer.reset(deadline),
                None => this.timer.set(Some(tokio::time::sleep_until(deadline))),
            }
            *this.armed = true;
        }
        let Some(timer) = this.timer.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        match timer.poll(cx) {
            Poll::Ready(()) => {
                // The next wait starts afresh; upstream keeps its work in progress.
                *this.armed = false;
                Poll::Ready(Some(Err(Error::new(ErrorKind::Timeout, "timeout")
                    .with_message(format!("no item within {:?}", this.limit)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.stream.size_hint().0, None)
    }
}

impl<S, T> FusedStream for Timeout<S>
where
    S: FusedStream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
