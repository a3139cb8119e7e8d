use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use tokio::sync::mpsc;

use crate::Result;

/// Stream for the [`channel`](crate::Pipeline::channel) and
/// [`from_receiver`](crate::Pipeline::from_receiver) constructors.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct Receiver<T> {
    rx: mpsc::Receiver<Result<T>>,
    done: bool,
}

impl<T> Receiver<T> {
    pub(crate) fn new(rx: mpsc::Receiver<Result<T>>) -> Self {
        Receiver { rx, done: false }
    }

    /// Closes the channel: senders fail from now on, and items already sent are still yielded.
    pub fn close(&mut self) {
        self.rx.close();
    }
}

impl<T> Stream for Receiver<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = self.rx.poll_recv(cx);
        if let Poll::Ready(None) = item {
            self.done = true;
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            (self.rx.len(), None)
        }
    }
}

impl<T> FusedStream for Receiver<T> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}
