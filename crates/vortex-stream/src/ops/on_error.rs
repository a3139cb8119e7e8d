use core::fmt;
use core::pin::Pin;
use core::task::{ready, Context, Poll};
use std::sync::PoisonError;

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::ack::Ack;
use crate::core::policy::{DeadLetterSink, Mode};
use crate::error::{BoxError, Error, ErrorKind};
use crate::{ErrorPolicy, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    // Upstream is finished (or was stopped): flush the dead-letter sink, then yield `last`.
    Flushing,
    Done,
}

pin_project! {
    /// Stream for the [`on_error`](crate::Pipeline::on_error) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct OnError<S> {
        #[pin]
        stream: Option<S>,
        policy: ErrorPolicy,
        // An error on its way to the dead-letter sink, which was not ready for it yet.
        dead: Option<Error>,
        // The share of the broker messages of the dead letter last sent, decided once the
        // sink has flushed it.
        dead_ack: Option<Ack>,
        // The error that ends the stream once the dead-letter sink is flushed.
        last: Option<Error>,
        state: State,
    }
}

impl<S> OnError<S> {
    pub(crate) fn new(stream: S, policy: ErrorPolicy) -> Self {
        OnError {
            stream: Some(stream),
            policy,
            dead: None,
            dead_ack: None,
            last: None,
            state: State::Running,
        }
    }

    /// The policy this stage applies; its [`report`](ErrorPolicy::report) is live.
    pub fn policy(&self) -> &ErrorPolicy {
        &self.policy
    }
}

impl<S: fmt::Debug> fmt::Debug for OnError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnError")
            .field("stream", &self.stream)
            .field("policy", &self.policy)
            .field("state", &self.state)
            .finish()
    }
}

fn sink_failed(cause: BoxError) -> Error {
    Error::from_boxed(ErrorKind::Io, "dead-letter sink", cause)
}

fn budget_spent(message: String, cause: Error) -> Error {
    let mut err = Error::new(ErrorKind::Capacity, "on_error").with_message(message);
    if let Some(position) = cause.position() {
        err = err.with_position(position.clone());
    }
    err.with_source(cause)
}

fn lock(sink: &std::sync::Mutex<DeadLetterSink>) -> std::sync::MutexGuard<'_, DeadLetterSink> {
    sink.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S, T> Stream for OnError<S>
where
    S: Stream<Item = Result<T>>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let stats = &this.policy.stats;
        loop {
            if let (Some(ack), Mode::DeadLetter(sink)) = (this.dead_ack.take(), &this.policy.mode) {
                // A dead letter of broker messages is their commit point: they are
                // acknowledged once the sink has flushed it.
                match lock(sink).as_mut().poll_flush(cx) {
                    Poll::Pending => {
                        *this.dead_ack = Some(ack);
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(())) => ack.commit(),
                    Poll::Ready(Err(cause)) => {
                        ack.fail(None);
                        this.stream.set(None);
                        *this.state = State::Done;
                        return Poll::Ready(Some(Err(sink_failed(cause))));
                    }
                }
            }
            if let (Some(mut err), Mode::DeadLetter(sink)) = (this.dead.take(), &this.policy.mode) {
                let mut sink = lock(sink);
                match sink.as_mut().poll_ready(cx) {
                    Poll::Pending => {
                        *this.dead = Some(err);
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(())) => {
                        let ack = err.take_ack();
                        // A broker message's dead letter carries the message, whatever stage
                        // failed on it.
                        if err.raw().is_none() {
                            if let Some(payload) = ack.payload() {
                                err = err.with_raw(payload.as_ref());
                            }
                        }
                        tracing::debug!(kind = %err.kind(), error = %err, "record dead-lettered");
                        match sink.as_mut().start_send(err) {
                            Ok(()) => {
                                stats.dead_lettered();
                                if ack.messages() > 0 {
                                    *this.dead_ack = Some(ack);
                                }
                            }
                            Err(cause) => {
                                ack.fail(None);
                                this.stream.set(None);
                                *this.state = State::Done;
                                return Poll::Ready(Some(Err(sink_failed(cause))));
                            }
                        }
                    }
                    Poll::Ready(Err(cause)) => {
                        err.take_ack().fail(None);
                        this.stream.set(None);
                        *this.state = State::Done;
                        return Poll::Ready(Some(Err(sink_failed(cause))));
                    }
                }
            }
            match *this.state {
                State::Done => return Poll::Ready(None),
                State::Flushing => {
                    if let Mode::DeadLetter(sink) = &this.policy.mode {
                        let flushed = ready!(lock(sink).as_mut().poll_flush(cx));
                        if let Err(cause) = flushed {
                            *this.state = State::Done;
                            return Poll::Ready(Some(Err(sink_failed(cause))));
                        }
                    }
                    *this.state = State::Done;
                    return Poll::Ready(this.last.take().map(Err));
                }
                State::Running => {}
            }
            let Some(stream) = this.stream.as_mut().as_pin_mut() else {
                *this.state = State::Flushing;
                continue;
            };
            match ready!(stream.poll_next(cx)) {
                Some(Ok(value)) => {
                    stats.item_in();
                    stats.item_out();
                    return Poll::Ready(Some(Ok(value)));
                }
                Some(Err(err)) if err.is_fatal() => {
                    // The input itself is broken: no policy hides that, and it is no record to
                    // count. Whatever was dead-lettered so far is flushed, then the error ends
                    // the stream.
                    this.stream.set(None);
                    *this.last = Some(err);
                    *this.state = State::Flushing;
                }
                Some(Err(mut err)) => {
                    let seen = stats.item_in();
                    let failed = stats.error(err.kind());
                    if let Some(delay) = this.policy.redeliver {
                        if err
                            .ack()
                            .is_some_and(|ack| ack.messages() > 0 && !ack.is_last_attempt())
                        {
                            tracing::debug!(kind = %err.kind(), error = %err, ?delay, "message to be delivered again");
                            err.take_ack().fail(Some(delay));
                            stats.redelivered();
                            continue;
                        }
                    }
                    if matches!(this.policy.mode, Mode::FailFast) {
                        this.stream.set(None);
                        *this.state = State::Done;
                        return Poll::Ready(Some(Err(err)));
                    }
                    if let Some(message) = this.policy.budget.exceeded(failed, seen, false) {
                        tracing::debug!(budget = %message, error = %err, "error budget spent");
                        err.take_ack().fail(None);
                        this.stream.set(None);
                        *this.last = Some(budget_spent(message, err));
                        *this.state = State::Flushing;
                        continue;
                    }
                    match this.policy.mode {
                        Mode::DeadLetter(_) => *this.dead = Some(err),
                        _ => {
                            // Skipped for good: its broker messages are not delivered again.
                            tracing::debug!(kind = %err.kind(), error = %err, "record skipped");
                            err.take_ack().reject();
                            stats.skipped();
                        }
                    }
                }
                None => {
                    this.stream.set(None);
                    *this.state = State::Flushing;
                    let (failed, seen) = (stats.errors_total(), stats.items_seen());
                    if let Some(message) = this.policy.budget.exceeded(failed, seen, true) {
                        *this.last =
                            Some(Error::new(ErrorKind::Capacity, "on_error").with_message(message));
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match (&self.stream, self.state) {
            (_, State::Done) => (0, Some(0)),
            (None, _) => (0, Some(usize::from(self.last.is_some()))),
            (Some(stream), _) => (0, stream.size_hint().1.and_then(|u| u.checked_add(1))),
        }
    }
}

impl<S, T> FusedStream for OnError<S>
where
    S: Stream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.state == State::Done
    }
}
