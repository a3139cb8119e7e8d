//! The one loop behind the terminals.
//!
//! Written as a hand-made future rather than an `async fn` with `while let Some(x) =
//! stream.next().await`: the `async` state machine keeps the stream in its frame and
//! re-enters it for every item, which measured ten times slower on a plain fold (see
//! BENCHMARKS.md). This loop polls the stream until it is pending, so the compiler sees one
//! tight loop.

use core::future::Future;
use core::ops::ControlFlow;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::error::Error;
use crate::Result;

pin_project! {
    /// Future for the terminals: polls `stream`, feeding each value to `step` until it breaks;
    /// at the end of the stream, `finish` turns the state into the result.
    #[must_use = "futures do nothing unless polled"]
    pub(crate) struct Drive<S, St, F, G> {
        #[pin]
        stream: S,
        state: Option<St>,
        step: F,
        finish: Option<G>,
    }
}

impl<S, St, F, G> Drive<S, St, F, G> {
    // The bounds are here as well as on the `Future` impl so that closures infer their types.
    pub(crate) fn new<T, R>(stream: S, state: St, step: F, finish: G) -> Self
    where
        S: Stream<Item = Result<T>>,
        F: FnMut(&mut St, T) -> ControlFlow<Result<R>>,
        G: FnOnce(St) -> Result<R>,
    {
        Drive {
            stream,
            state: Some(state),
            step,
            finish: Some(finish),
        }
    }
}

impl<S, T, St, F, G, R> Future for Drive<S, St, F, G>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(&mut St, T) -> ControlFlow<Result<R>>,
    G: FnOnce(St) -> Result<R>,
{
    type Output = Result<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        let mut this = self.project();
        let Some(state) = this.state.as_mut() else {
            return Poll::Ready(Err(Error::internal(
                "terminal",
                "polled again after it completed",
            )));
        };
        loop {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(value))) => {
                    if let ControlFlow::Break(result) = (this.step)(state, value) {
                        *this.state = None;
                        return Poll::Ready(result);
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    *this.state = None;
                    return Poll::Ready(Err(err));
                }
                Poll::Ready(None) => {
                    let (Some(state), Some(finish)) = (this.state.take(), this.finish.take())
                    else {
                        return Poll::Ready(Err(Error::internal("terminal", "finished twice")));
                    };
                    return Poll::Ready(finish(state));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
