use core::future::Future;
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{ready, Context, Poll};
use core::time::Duration;

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::Result;

pin_project! {
    /// Stream for the [`throttle`](crate::Pipeline::throttle) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Throttle<S> {
        #[pin]
        stream: S,
        // Created at the first wait, inside the runtime.
        #[pin]
        timer: Option<Sleep>,
        // A token bucket: `tokens` of `burst`, refilled at one per `interval`.
        tokens: f64,
        burst: f64,
        interval: Duration,
        refilled: Option<Instant>,
    }
}

/// The longest wait for a token: thirty years.
const FOREVER: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

impl<S> Throttle<S> {
    pub(crate) fn new(stream: S, rate: NonZeroUsize, per: Duration, burst: NonZeroUsize) -> Self {
        // Sizes above 2^53 lose precision as floats; a bucket that large is no limit anyway.
        #[allow(clippy::cast_precision_loss, reason = "see above")]
        let burst = burst.get() as f64;
        // One token per `per / rate`, to the nanosecond (a rate above u32::MAX is allowed).
        let rate = u128::try_from(rate.get()).unwrap_or(u128::MAX);
        let interval = u64::try_from(per.as_nanos() / rate).map_or(FOREVER, Duration::from_nanos);
        Throttle {
            stream,
            timer: None,
            tokens: burst,
            burst,
            interval,
            refilled: None,
        }
    }

    delegate_access_inner!(stream, S);
}

impl<S, T> Stream for Throttle<S>
where
    S: Stream<Item = Result<T>>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        // A zero period is no limit at all: every value passes as it comes (there is no token
        // to wait for, and waiting for one would never end).
        while !this.interval.is_zero() {
            let now = Instant::now();
            let last = *this.refilled.get_or_insert(now);
            let earned = now.duration_since(last).as_secs_f64() / this.interval.as_secs_f64();
            *this.tokens = (*this.tokens + earned).min(*this.burst);
            *this.refilled = Some(now);
            if *this.tokens >= 1.0 {
                break;
            }
            // Wait for the next token before pulling.
            // A period too long for the clock (`Duration::MAX`) waits as good as for ever,
            // without overflowing it.
            let wait =
                Duration::try_from_secs_f64(this.interval.as_secs_f64() * (1.0 - *this.tokens))
                    .map_or(FOREVER, |wait| wait.min(FOREVER));
            let until = now + wait;
            match this.timer.as_mut().as_pin_mut() {
                Some(timer) => timer.reset(until),
                None => this.timer.set(Some(tokio::time::sleep_until(until))),
            }
            if let Some(timer) = this.timer.as_mut().as_pin_mut() {
                ready!(timer.poll(cx));
            }
        }
        let item = ready!(this.stream.as_mut().poll_next(cx));
        if item.is_some() {
            *this.tokens -= 1.0;
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S, T> FusedStream for Throttle<S>
where
    S: FusedStream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
