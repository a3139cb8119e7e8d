use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use tokio::sync::mpsc;

use crate::core::Size;
use crate::Pipeline;
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

impl<T> Pipeline<Receiver<T>> {
    /// A bounded channel feeding a pipeline: at most `capacity` items wait in it, and a sender
    /// waits for room, so a fast producer is held back by a slow pipeline.
    ///
    /// The pipeline ends when every sender is dropped. Senders send `Result<T>` items, so a
    /// producer can report an error in the stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let (tx, pipeline) = Pipeline::channel(8);
    /// let producer = async move {
    ///     for n in 0..100 {
    ///         if tx.send(Ok(n)).await.is_err() {
    ///             break; // the pipeline was dropped
    ///         }
    ///     }
    /// };
    /// let (_, sum) = tokio::join!(producer, pipeline.fold(0, |a, b| a + b));
    /// assert_eq!(sum?, 4950);
    /// # Ok(())
    /// # }
    /// ```
    pub fn channel(capacity: impl Size) -> (mpsc::Sender<Result<T>>, Self) {
        let capacity = capacity.non_zero("channel");
        let (tx, rx) = mpsc::channel(capacity.get());
        (tx, Pipeline::from_receiver(rx))
    }

    /// A pipeline over the items of a tokio channel's receiver; it ends when every sender is
    /// dropped.
    pub fn from_receiver(rx: mpsc::Receiver<Result<T>>) -> Self {
        Pipeline::new(Receiver::new(rx))
    }
}
