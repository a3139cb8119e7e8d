use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::sync::{Arc, Mutex, PoisonError};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Pipeline;
use crate::{Error, Result};
use futures_core::stream::BoxStream;

type Slot<T> = Arc<Mutex<Shared<T>>>;

/// What the generator and its stream share: the item handed over, and the wakers of the two
/// sides for when the generator runs in a task of its own (a yielder moved into a spawned
/// task), where neither side's poll drives the other.
struct Shared<T> {
    item: Option<Result<T>>,
    // The task polling the stream.
    consumer: Option<Waker>,
    // A task other than the consumer's, waiting for its item to be taken.
    producer: Option<Waker>,
}

/// Hands items from a generator closure to its [`Pipeline::generate`](crate::Pipeline::generate)
/// stream, one at a time.
///
/// Written by hand because no well-kept crate offers a `yield` helper as a plain closure
/// argument without `unsafe` or a macro: the slot holds at most one item, and
/// [`emit`](Yielder::emit) waits until the consumer has taken it, so the generator never runs
/// ahead of demand.
pub struct Yielder<T> {
    slot: Slot<T>,
}

impl<T> fmt::Debug for Yielder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder").finish_non_exhaustive()
    }
}

impl<T> Yielder<T> {
    /// Yields a value; completes once the consumer has taken it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes may still deliver the value.
    pub fn emit(&mut self, value: T) -> Emit<'_, T> {
        self.emit_item(Ok(value))
    }

    /// Yields an error item; completes once the consumer has taken it.
    pub fn emit_err(&mut self, err: Error) -> Emit<'_, T> {
        self.emit_item(Err(err))
    }

    /// Yields an item, value or error; completes once the consumer has taken it.
    pub fn emit_item(&mut self, item: Result<T>) -> Emit<'_, T> {
        Emit {
            slot: &self.slot,
            item: Some(item),
        }
    }
}

/// Future for the [`Yielder::emit`] family of methods.
#[must_use = "futures do nothing unless awaited"]
pub struct Emit<'a, T> {
    slot: &'a Mutex<Shared<T>>,
    item: Option<Result<T>>,
}

impl<T> fmt::Debug for Emit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emit")
            .field("delivered", &self.item.is_none())
            .finish()
    }
}

// The item is only moved, never pinned.
impl<T> Unpin for Emit<'_, T> {}

impl<T> Future for Emit<'_, T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        // Polled by the stream's own task (the usual case), the stream takes the item as soon
        // as this returns; from another task, both sides must be woken.
        let elsewhere = !slot
            .consumer
            .as_ref()
            .is_some_and(|consumer| consumer.will_wake(cx.waker()));
        if let Some(item) = self.item.take() {
            slot.item = Some(item);
            if elsewhere {
                slot.producer = Some(cx.waker().clone());
                if let Some(consumer) = slot.consumer.take() {
                    consumer.wake();
                }
            }
            return Poll::Pending;
        }
        if slot.item.is_some() {
            if elsewhere {
                slot.producer = Some(cx.waker().clone());
            }
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

pin_project! {
    /// Stream for the [`generate`](crate::Pipeline::generate) constructor.
    #[must_use = "streams do nothing unless polled"]
    pub struct Generate<T, Fut> {
        slot: Slot<T>,
        #[pin]
        fut: Option<Fut>,
        // The generator's error, when it ended in the same poll as it handed over an item:
        // yielded after that item.
        ended: Option<Error>,
    }
}

impl<T, Fut> Generate<T, Fut> {
    pub(crate) fn new<F>(f: F) -> Self
    where
        F: FnOnce(Yielder<T>) -> Fut,
    {
        let slot: Slot<T> = Arc::new(Mutex::new(Shared {
            item: None,
            consumer: None,
            producer: None,
        }));
        let fut = f(Yielder {
            slot: Arc::clone(&slot),
        });
        Generate {
            slot,
            fut: Some(fut),
            ended: None,
        }
    }
}

impl<T, Fut> fmt::Debug for Generate<T, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generate")
            .field("done", &self.fut.is_none())
            .finish()
    }
}

impl<T, Fut> Stream for Generate<T, Fut>
where
    Fut: Future<Output = Result<()>>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let Some(fut) = this.fut.as_mut().as_pin_mut() else {
            return Poll::Ready(this.ended.take().map(Err));
        };
        {
            let mut slot = this.slot.lock().unwrap_or_else(PoisonError::into_inner);
            if !slot
                .consumer
                .as_ref()
                .is_some_and(|consumer| consumer.will_wake(cx.waker()))
            {
                slot.consumer = Some(cx.waker().clone());
            }
        }
        let finished = fut.poll(cx);
        let (item, producer) = {
            let mut slot = this.slot.lock().unwrap_or_else(PoisonError::into_inner);
            let item = slot.item.take();
            let producer = if item.is_some() {
                slot.producer.take()
            } else {
                None
            };
            (item, producer)
        };
        if let Some(producer) = producer {
            producer.wake();
        }
        match (item, finished) {
            (Some(item), Poll::Pending) => Poll::Ready(Some(item)),
            (Some(item), Poll::Ready(result)) => {
                this.fut.set(None);
                *this.ended = result.err();
                Poll::Ready(Some(item))
            }
            (None, Poll::Ready(result)) => {
                this.fut.set(None);
                Poll::Ready(result.err().map(Err))
            }
            (None, Poll::Pending) => Poll::Pending,
        }
    }
}

impl<T, Fut> FusedStream for Generate<T, Fut>
where
    Fut: Future<Output = Result<()>>,
{
    fn is_terminated(&self) -> bool {
        self.fut.is_none() && self.ended.is_none()
    }
}

impl<T, Fut> Pipeline<Generate<T, Fut>>
where
    Fut: Future<Output = Result<()>>,
{
    /// A pipeline whose items an async closure produces with a [`Yielder`], in the style of a
    /// generator.
    ///
    /// The closure runs as the pipeline is polled, on the same task: each
    /// [`emit`](Yielder::emit) waits until the consumer has taken the item, so at most one item
    /// is held. If the closure returns an error, it is the last item.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let squares = Pipeline::generate(|mut y| async move {
    ///     for n in 1..=3u32 {
    ///         y.emit(n * n).await;
    ///     }
    ///     Ok(())
    /// });
    /// assert_eq!(squares.collect::<Vec<_>>().await?, [1, 4, 9]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn generate<F>(f: F) -> Self
    where
        F: FnOnce(Yielder<T>) -> Fut,
    {
        Pipeline::new(Generate::new(f))
    }
}

impl<T> Pipeline<BoxStream<'static, Result<T>>> {
    /// A pipeline built from a state and an async step, which returns the next item and state,
    /// or `None` to end: a thin wrapper over `futures::stream::unfold`.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let countdown = Pipeline::unfold(3u32, |n| async move {
    ///     (n > 0).then(|| (Ok(n), n - 1))
    /// });
    /// assert_eq!(countdown.collect::<Vec<_>>().await?, [3, 2, 1]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn unfold<St, F, Fut>(init: St, step: F) -> Self
    where
        St: Send + 'static,
        F: FnMut(St) -> Fut + Send + 'static,
        Fut: Future<Output = Option<(Result<T>, St)>> + Send + 'static,
        T: Send + 'static,
    {
        Pipeline::new(Box::pin(futures_util::stream::unfold(init, step)))
    }
}
