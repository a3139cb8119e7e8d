//! A decoding source that starts at its first poll, so that fused stages can join its plan
//! until then (see [`fusion`](crate::fusion)): shared by the CSV and JSON Lines sources.

use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::stream::BoxStream;
use futures_core::{FusedStream, Stream};

use crate::parallel::workers;
use crate::{Pipeline, Result};

/// How a source will decode, before it starts.
pub(crate) trait Plan: Send + Sized + 'static {
    type Value: Send + 'static;
    type Running: Stream<Item = Result<Self::Value>> + FusedStream + Unpin + Send + 'static;

    /// Starts reading and decoding.
    fn start(self) -> Self::Running;

    /// The threads that decode at once.
    fn decoders(&self) -> usize;
}

/// A source's stream: its plan until the first poll, then the plan running.
pub(crate) enum Planned<P: Plan> {
    // Not polled yet (`None` once ended).
    Waiting(Option<P>),
    // Polled before a fused stage was added: the stage runs after it, as a plain one.
    Staged(BoxStream<'static, Result<P::Value>>),
    Running(P::Running),
}

impl<P: Plan> Planned<P> {
    pub(crate) fn new(plan: P) -> Self {
        Planned::Waiting(Some(plan))
    }

    /// Runs `f` after the plan, joined to it by `join` while nothing has started, or else as
    /// a plain `filter_map` stage after what runs.
    pub(crate) fn then<Q, F>(self, f: F, join: impl FnOnce(P, F) -> Q) -> Planned<Q>
    where
        Q: Plan,
        F: FnMut(P::Value) -> Option<Q::Value> + Send + 'static,
    {
        match self {
            Planned::Waiting(Some(plan)) => Planned::new(join(plan, f)),
            started => Planned::Staged(Box::pin(Pipeline::new(started).filter_map(f).into_inner())),
        }
    }

    /// Runs `f` on every decoding thread, joined to the plan by `join` while nothing has
    /// started and the plan decodes on as many threads as a `par_map` of `limit` would run;
    /// or else as a plain `par_map` stage after the source, so that neither the limit nor the
    /// parallelism changes.
    pub(crate) fn then_parallel<Q, F>(
        self,
        limit: NonZeroUsize,
        ordered: bool,
        f: F,
        join: impl FnOnce(P, F) -> Q,
    ) -> Planned<Q>
    where
        Q: Plan,
        F: Fn(P::Value) -> Q::Value + Send + Sync + 'static,
    {
        match self {
            Planned::Waiting(Some(plan)) if plan.decoders() == workers(limit) => {
                Planned::new(join(plan, f))
            }
            unfused => {
                let source = Pipeline::new(unfused);
                Planned::Staged(if ordered {
                    Box::pin(source.par_map(limit, f).into_inner())
                } else {
                    Box::pin(source.par_map_unordered(limit, f).into_inner())
                })
            }
        }
    }

    /// Where it is, for `Debug`.
    pub(crate) fn state(&self) -> &'static str {
        match self {
            Planned::Waiting(Some(_)) => "not started",
            Planned::Waiting(None) => "ended",
            Planned::Staged(_) => "running, then a stage",
            Planned::Running(_) => "running",
        }
    }
}

// Every part is `Unpin` but the plan, which is never pinned.
impl<P: Plan> Unpin for Planned<P> {}

impl<P: Plan> Stream for Planned<P> {
    type Item = Result<P::Value>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Planned::Waiting(plan) = &mut *self {
            *self = match plan.take() {
                Some(plan) => Planned::Running(plan.start()),
                None => return Poll::Ready(None),
            };
        }
        let next = match &mut *self {
            Planned::Waiting(_) => return Poll::Ready(None),
            Planned::Staged(stream) => stream.as_mut().poll_next(cx),
            Planned::Running(stream) => Pin::new(stream).poll_next(cx),
        };
        if let Poll::Ready(Some(Err(e))) = &next {
            if e.is_fatal() {
                // The input is broken from here on: nothing after it is read, and the
                // decoding stops now.
                *self = Planned::Waiting(None);
            }
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Planned::Waiting(_) => (0, None),
            Planned::Staged(stream) => stream.size_hint(),
            Planned::Running(stream) => stream.size_hint(),
        }
    }
}

impl<P: Plan> FusedStream for Planned<P> {
    fn is_terminated(&self) -> bool {
        match self {
            Planned::Waiting(plan) => plan.is_none(),
            // A boxed stream cannot say; the stage after it ends with it.
            Planned::Staged(_) => false,
            Planned::Running(stream) => stream.is_terminated(),
        }
    }
}
