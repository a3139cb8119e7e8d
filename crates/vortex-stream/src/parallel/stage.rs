use core::fmt;
use core::future::Future;
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;

use futures_core::{FusedStream, Stream};
use futures_util::FutureExt;
use pin_project_lite::pin_project;

use crate::error::panic_message;
use crate::{Error, Result};

/// A unit of work in flight, its type erased.
pub(crate) type Work<U> = Pin<Box<dyn Future<Output = Result<U>> + Send>>;

/// How a [`Parallel`] stage starts the work for one value.
pub trait Start<T> {
    /// What the work produces.
    type Output;

    /// Starts the work for `value`; the future resolves to its result.
    fn start(&mut self, value: T) -> Work<Self::Output>;
}

/// Starts an async closure's future, polled by the stage itself (no task is spawned, so
/// dropping the stage cancels the work at once). A panic becomes an `Internal` error item.
pub struct StartAsync<F> {
    f: F,
    stage: &'static str,
}

impl<F> fmt::Debug for StartAsync<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartAsync")
            .field("stage", &self.stage)
            .finish()
    }
}

impl<F> StartAsync<F> {
    pub(crate) fn new(f: F, stage: &'static str) -> Self {
        StartAsync { f, stage }
    }
}

impl<T, U, E, F, Fut> Start<T> for StartAsync<F>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    E: Into<crate::BoxError>,
{
    type Output = U;

    fn start(&mut self, value: T) -> Work<U> {
        let stage = self.stage;
        // Creating the future runs user code too: catch a panic there as well.
        let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| (self.f)(value))) {
            Ok(fut) => fut,
            Err(payload) => {
                let err = panic_error(stage, &*payload);
                return Box::pin(async move { Err(err) });
            }
        };
        Box::pin(
            AssertUnwindSafe(fut)
                .catch_unwind()
                .map(move |outcome| match outcome {
                    Ok(result) => result.map_err(|e| Error::from_user(stage, e)),
                    Err(payload) => Err(panic_error(stage, &*payload)),
                }),
        )
    }
}

/// The `Internal` error for a panic in a stage's closure.
pub(crate) fn panic_error(stage: &'static str, payload: &(dyn std::any::Any + Send)) -> Error {
    Error::internal(
        stage,
        format!("the closure panicked: {}", panic_message(payload)),
    )
}

enum Slot<U> {
    Running(Work<U>),
    Done(Result<U>),
}

pin_project! {
    /// Stream for the [`par_map`](crate::Pipeline::par_map),
    /// [`par_map_unordered`](crate::Pipeline::par_map_unordered),
    /// [`par_then`](crate::Pipeline::par_then) and
    /// [`par_then_unordered`](crate::Pipeline::par_then_unordered) methods.
    #[must_use = "streams do nothing unless polled"]
    pub struct Parallel<S, St, U> {
        #[pin]
        stream: S,
        start: St,
        // Oldest first.
        slots: VecDeque<Slot<U>>,
        running: usize,
        limit: usize,
        window: usize,
        ordered: bool,
        upstream_done: bool,
    }
}

impl<S, St, U> Parallel<S, St, U> {
    pub(crate) fn new(
        stream: S,
        start: St,
        limit: NonZeroUsize,
        window: NonZeroUsize,
        ordered: bool,
    ) -> Self {
        Parallel {
            stream,
            start,
            slots: VecDeque::new(),
            running: 0,
            limit: limit.get(),
            // The window holds at least what may run at once.
            window: window.get().max(limit.get()),
            ordered,
            upstream_done: false,
        }
    }

    /// Values pulled and not yet yielded: running, or finished and waiting for an older one.
    pub fn in_window(&self) -> usize {
        self.slots.len()
    }

    delegate_access_inner!(stream, S, holds: "values in flight and finished values not yet yielded");
}

impl<S: fmt::Debug, St, U> fmt::Debug for Parallel<S, St, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parallel")
            .field("stream", &self.stream)
            .field("running", &self.running)
            .field("in_window", &self.slots.len())
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("ordered", &self.ordered)
            .finish()
    }
}

impl<S, St, T, U> Stream for Parallel<S, St, U>
where
    S: Stream<Item = Result<T>>,
    St: Start<T, Output = U>,
{
    type Item = Result<U>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            // Pull while there is room to run and room in the window.
            while !*this.upstream_done
                && *this.running < *this.limit
                && this.slots.len() < *this.window
            {
                match this.stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(value))) => {
                        this.slots.push_back(Slot::Running(this.start.start(value)));
                        *this.running += 1;
                    }
                    Poll::Ready(Some(Err(err))) => {
                        if !*this.ordered {
                            return Poll::Ready(Some(Err(err)));
                        }
                        this.slots.push_back(Slot::Done(Err(err)));
                    }
                    Poll::Ready(None) => *this.upstream_done = true,
                    Poll::Pending => break,
                }
            }
            // Drive the work in flight.
            let before = *this.running;
            for slot in this.slots.iter_mut() {
                if let Slot::Running(work) = slot {
                    if let Poll::Ready(result) = work.as_mut().poll(cx) {
                        *slot = Slot::Done(result);
                        *this.running -= 1;
                    }
                }
            }
            // Yield the oldest finished value (ordered), or any finished value.
            let ready = if *this.ordered {
                matches!(this.slots.front(), Some(Slot::Done(_))).then_some(0)
            } else {
                this.slots
                    .iter()
                    .position(|slot| matches!(slot, Slot::Done(_)))
            };
            if let Some(index) = ready {
                if let Some(Slot::Done(result)) = this.slots.remove(index) {
                    return Poll::Ready(Some(result));
                }
            }
            if this.slots.is_empty() && *this.upstream_done {
                return Poll::Ready(None);
            }
            // Work finished and freed room: pull again. Otherwise every waker is registered.
            let freed = *this.running < before;
            if !(freed && !*this.upstream_done && this.slots.len() < *this.window) {
                return Poll::Pending;
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        super::size_hint(self.slots.len(), self.upstream_done, &self.stream)
    }
}

impl<S, St, T, U> FusedStream for Parallel<S, St, U>
where
    S: Stream<Item = Result<T>>,
    St: Start<T, Output = U>,
{
    fn is_terminated(&self) -> bool {
        self.upstream_done && self.slots.is_empty()
    }
}
