//! A circuit breaker: after enough failures it fails calls fast for a while instead of
//! piling them onto a dependency that is down, then lets a few probes through to see whether
//! it is back.

mod state;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use self::state::{Permit, State};
use crate::{Error, ErrorKind, Result};

/// The state of a [`CircuitBreaker`], as observers see it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls fail fast with a [`CircuitOpen`](ErrorKind::CircuitOpen) error.
    Open,
    /// A bounded number of probe calls go through; the rest fail fast.
    HalfOpen,
}

/// Counters of a [`CircuitBreaker`] since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CircuitStats {
    /// Calls let through.
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed (errors other than cancellations, and panics).
    pub failures: u64,
    /// Calls refused while open.
    pub rejected: u64,
    /// Times the circuit opened.
    pub opened: u64,
    /// Times it went half-open.
    pub half_opened: u64,
    /// Times it closed again.
    pub closed: u64,
}

/// A circuit breaker, shared by every stage and pipeline holding a clone (cloning is cheap).
///
/// It opens after `consecutive_failures` failures in a row (5 by default) or, if set, when
/// more than a given share of the last calls failed. Open, it fails every call fast for
/// `open_for` (30 s by default), then goes half-open: `probes` calls (1 by default) go through,
/// and `close_after` successes (1 by default) close it, while one failure opens it again.
///
/// Cancelled calls (dropped futures, or [`Cancelled`](ErrorKind::Cancelled) errors) count as
/// neither success nor failure; a panicking call counts as a failure and never keeps its
/// probe slot. Time is tokio's, so tests can pause it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use vortex_stream::resilience::circuit_breaker::{CircuitBreaker, CircuitState};
/// use vortex_stream::{Error, ErrorKind};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let breaker = CircuitBreaker::new().consecutive_failures(2).open_for(Duration::from_secs(10));
/// let down = || async { Err::<(), _>(Error::new(ErrorKind::Http, "GET /rates").with_message("502")) };
/// let _ = breaker.call(down()).await;
/// let _ = breaker.call(down()).await;
/// assert_eq!(breaker.state(), CircuitState::Open);
/// let err = breaker.call(async { Ok(1) }).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::CircuitOpen);
///
/// tokio::time::advance(Duration::from_secs(10)).await;
/// assert_eq!(breaker.call(async { Ok(1) }).await.unwrap(), 1); // the probe succeeds
/// assert_eq!(breaker.state(), CircuitState::Closed);
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    state: Mutex<State>,
    watch: watch::Sender<CircuitState>,
    calls: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    rejected: AtomicU64,
    opened: AtomicU64,
    half_opened: AtomicU64,
    closed: AtomicU64,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) consecutive_failures: Option<u32>,
    /// (share of failures, calls in the window, fewest calls before the share counts)
    pub(crate) failure_rate: Option<(f64, usize, usize)>,
    pub(crate) open_for: Duration,
    pub(crate) probes: u32,
    pub(crate) close_after: u32,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("state", &self.state())
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker::new()
    }
}

impl CircuitBreaker {
    /// A closed breaker with the default thresholds.
    #[must_use]
    pub fn new() -> Self {
        CircuitBreaker::with_config(Config {
            consecutive_failures: Some(5),
            failure_rate: None,
            open_for: Duration::from_secs(30),
            probes: 1,
            close_after: 1,
        })
    }

    fn with_config(config: Config) -> Self {
        let (watch, _) = watch::channel(CircuitState::Closed);
        CircuitBreaker {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State::closed()),
                watch,
                calls: AtomicU64::new(0),
                successes: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                opened: AtomicU64::new(0),
                half_opened: AtomicU64::new(0),
                closed: AtomicU64::new(0),
            }),
        }
    }

    fn configure(self, change: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.inner.config;
        change(&mut config);
        CircuitBreaker::with_config(config)
    }

    /// Open after this many failures in a row (at least 1).
    #[must_use]
    pub fn consecutive_failures(self, n: u32) -> Self {
        self.configure(|c| c.consecutive_failures = Some(n.max(1)))
    }

    /// Open when more than `share` (0.5 is half) of the last `window` calls failed, once at
    /// least `min_calls` are in the window.
    #[must_use]
    pub fn failure_rate(self, share: f64, window: usize, min_calls: usize) -> Self {
        self.configure(|c| c.failure_rate = Some((share, window.max(1), min_calls.max(1))))
    }

    /// How long to stay open before probing.
    #[must_use]
    pub fn open_for(self, duration: Duration) -> Self {
        self.configure(|c| c.open_for = duration)
    }

    /// Probe calls let through at once while half-open (at least 1).
    #[must_use]
    pub fn probes(self, n: u32) -> Self {
        self.configure(|c| c.probes = n.max(1))
    }

    /// Successful probes needed to close (at least 1).
    #[must_use]
    pub fn close_after(self, n: u32) -> Self {
        self.configure(|c| c.close_after = n.max(1))
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> CircuitState {
        self.lock().public(tokio::time::Instant::now())
    }

    /// Changes of state as they happen.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<CircuitState> {
        self.inner.watch.subscribe()
    }

    /// Counters since the breaker was made.
    #[must_use]
    pub fn stats(&self) -> CircuitStats {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let inner = &self.inner;
        CircuitStats {
            calls: load(&inner.calls),
            successes: load(&inner.successes),
            failures: load(&inner.failures),
            rejected: load(&inner.rejected),
            opened: load(&inner.opened),
            half_opened: load(&inner.half_opened),
            closed: load(&inner.closed),
        }
    }

    /// Runs `fut` if the circuit lets it through, and records how it ended.
    ///
    /// # Errors
    ///
    /// A [`CircuitOpen`](ErrorKind::CircuitOpen) error without running `fut` while the
    /// circuit is open (or half-open with every probe slot taken); otherwise `fut`'s own error.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future cancels the call, which then counts as neither success
    /// nor failure, and frees its probe slot.
    pub async fn call<T, Fut>(&self, fut: Fut) -> Result<T>
    where
        Fut: Future<Output = Result<T>>,
    {
        let permit = self.acquire()?;
        let mut guard = CallGuard {
            breaker: self,
            permit: Some(permit),
        };
        let result = fut.await;
        let outcome = match &result {
            Ok(_) => Outcome::Success,
            Err(err) if err.kind() == ErrorKind::Cancelled => Outcome::Ignored,
            Err(_) => Outcome::Failure,
        };
        guard.finish(outcome);
        result
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn acquire(&self) -> Result<Permit> {
        let now = tokio::time::Instant::now();
        let mut state = self.lock();
        let before = state.raw();
        let permit = state.acquire(now, &self.inner.config);
        self.transitioned(before, state.raw());
        drop(state);
        match permit {
            Ok(permit) => {
                self.inner.calls.fetch_add(1, Ordering::Relaxed);
                Ok(permit)
            }
            Err(retry_in) => {
                self.inner.rejected.fetch_add(1, Ordering::Relaxed);
                let message = match retry_in {
                    Some(wait) => format!("circuit open; next probe in {wait:?}"),
                    None => "circuit half-open; every probe slot is taken".to_owned(),
                };
                Err(Error::new(ErrorKind::CircuitOpen, "circuit breaker").with_message(message))
            }
        }
    }

    fn record(&self, permit: Permit, outcome: Outcome) {
        match outcome {
            Outcome::Success => self.inner.successes.fetch_add(1, Ordering::Relaxed),
            Outcome::Failure => self.inner.failures.fetch_add(1, Ordering::Relaxed),
            Outcome::Ignored => 0,
        };
        let now = tokio::time::Instant::now();
        let mut state = self.lock();
        let before = state.raw();
        state.record(permit, outcome, now, &self.inner.config);
        self.transitioned(before, state.raw());
    }

    fn transitioned(&self, before: CircuitState, after: CircuitState) {
        if before == after {
            return;
        }
        let counter = match after {
            CircuitState::Open => &self.inner.opened,
            CircuitState::HalfOpen => &self.inner.half_opened,
            CircuitState::Closed => &self.inner.closed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(from = ?before, to = ?after, "circuit breaker");
        self.inner.watch.send_replace(after);
    }
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failure,
    Ignored,
}

/// Records the outcome of a call even if it never finishes: dropped (a cancellation), or
/// unwound by a panic (a failure).
struct CallGuard<'a> {
    breaker: &'a CircuitBreaker,
    permit: Option<Permit>,
}

impl CallGuard<'_> {
    fn finish(&mut self, outcome: Outcome) {
        if let Some(permit) = self.permit.take() {
            self.breaker.record(permit, outcome);
        }
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        let outcome = if std::thread::panicking() {
            Outcome::Failure
        } else {
            Outcome::Ignored
        };
        self.finish(outcome);
    }
}
