use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::RetryPolicy;
use crate::{Error, ErrorKind};

type Classifier = Arc<dyn Fn(&Error) -> bool + Send + Sync>;
type Hint = Arc<dyn Fn(&Error) -> Option<Duration> + Send + Sync>;

/// Exponential backoff with full jitter: the wait before attempt `n + 1` is a random duration
/// between zero and `min(max_delay, base × 2ⁿ⁻¹)`, which spreads retries of many clients
/// instead of bunching them.
///
/// Defaults: 4 attempts in all, 100 ms base, 10 s longest wait, give up once 30 s have
/// passed, and retry [`Io`](ErrorKind::Io), [`Timeout`](ErrorKind::Timeout),
/// [`Http`](ErrorKind::Http) and [`Database`](ErrorKind::Database) errors only (never bad
/// data, a bug, a cancellation or an open circuit). A server's own hint (such as HTTP
/// `Retry-After`) can replace the computed wait: see [`delay_hint`](Self::delay_hint).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use vortex_stream::resilience::ExponentialBackoff;
/// use vortex_stream::ErrorKind;
///
/// let policy = ExponentialBackoff::default()
///     .max_attempts(6)
///     .base(Duration::from_millis(50))
///     .max_elapsed(Duration::from_secs(5))
///     .retry_if(|err| matches!(err.kind(), ErrorKind::Http | ErrorKind::Timeout));
/// # let _ = policy;
/// ```
#[derive(Clone)]
pub struct ExponentialBackoff {
    max_attempts: u32,
    base: Duration,
    max_delay: Duration,
    max_elapsed: Option<Duration>,
    jitter: bool,
    classify: Classifier,
    hint: Option<Hint>,
}

impl fmt::Debug for ExponentialBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExponentialBackoff")
            .field("max_attempts", &self.max_attempts)
            .field("base", &self.base)
            .field("max_delay", &self.max_delay)
            .field("max_elapsed", &self.max_elapsed)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

impl Default for ExponentialBackoff {
    fn default() -> Self {
        ExponentialBackoff {
            max_attempts: 4,
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            max_elapsed: Some(Duration::from_secs(30)),
            jitter: true,
            classify: Arc::new(|err: &Error| {
                matches!(
                    err.kind(),
                    ErrorKind::Io | ErrorKind::Timeout | ErrorKind::Http | ErrorKind::Database
                )
            }),
            hint: None,
        }
    }
}

impl ExponentialBackoff {
    /// Attempts in all, the first included (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The wait ceiling before the second attempt; it doubles for each attempt after.
    #[must_use]
    pub fn base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// The longest single wait.
    #[must_use]
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max_delay = max;
        self
    }

    /// Give up rather than start a wait that would end past this time since the first
    /// attempt began; `None` for no limit.
    #[must_use]
    pub fn max_elapsed(mut self, max: impl Into<Option<Duration>>) -> Self {
        self.max_elapsed = max.into();
        self
    }

    /// Wait the full computed delay instead of a random part of it (for tests and schedules).
    #[must_use]
    pub fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// Which errors to retry.
    #[must_use]
    pub fn retry_if(mut self, classify: impl Fn(&Error) -> bool + Send + Sync + 'static) -> Self {
        self.classify = Arc::new(classify);
        self
    }

    /// A wait the error itself asks for (an HTTP `Retry-After`), used instead of the computed
    /// one when it returns `Some` (still bounded by `max_delay` and `max_elapsed`).
    #[must_use]
    pub fn delay_hint(
        mut self,
        hint: impl Fn(&Error) -> Option<Duration> + Send + Sync + 'static,
    ) -> Self {
        self.hint = Some(Arc::new(hint));
        self
    }

    /// The ceiling of the wait after `attempt` failed attempts.
    fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.base
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

impl RetryPolicy for ExponentialBackoff {
    fn is_retryable(&self, err: &Error) -> bool {
        (self.classify)(err)
    }

    fn delay(&self, err: &Error, attempt: u32, elapsed: Duration) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let hinted = self.hint.as_ref().and_then(|hint| hint(err));
        let delay = match hinted {
            Some(hint) => hint.min(self.max_delay),
            None if self.jitter => {
                let ceiling = self.ceiling(attempt);
                let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(fastrand::u64(0..=nanos))
            }
            None => self.ceiling(attempt),
        };
        match self.max_elapsed {
            Some(max) if elapsed.saturating_add(delay) > max => None,
            _ => Some(delay),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> Error {
        Error::new(ErrorKind::Io, "t")
    }

    #[test]
    fn the_ceiling_doubles_up_to_the_maximum() {
        let policy = ExponentialBackoff::default()
            .base(Duration::from_millis(100))
            .max_delay(Duration::from_millis(700))
            .max_attempts(10)
            .max_elapsed(None)
            .without_jitter();
        let delays: Vec<_> = (1..=5)
            .map(|n| policy.delay(&io(), n, Duration::ZERO).unwrap().as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 400, 700, 700]);
    }

    #[test]
    fn attempts_and_elapsed_time_are_bounded() {
        let policy = ExponentialBackoff::default().max_attempts(3);
        assert!(policy.delay(&io(), 2, Duration::ZERO).is_some());
        assert!(policy.delay(&io(), 3, Duration::ZERO).is_none());
        let policy = ExponentialBackoff::default()
            .max_elapsed(Duration::from_secs(1))
            .without_jitter();
        assert!(policy.delay(&io(), 1, Duration::from_millis(950)).is_none());
    }

    #[test]
    fn only_failures_of_dependencies_are_retried_by_default() {
        let policy = ExponentialBackoff::default();
        for kind in [
            ErrorKind::Io,
            ErrorKind::Timeout,
            ErrorKind::Http,
            ErrorKind::Database,
        ] {
            assert!(policy.is_retryable(&Error::new(kind, "t")), "{kind}");
        }
        for kind in [
            ErrorKind::Decode,
            ErrorKind::Validation,
            ErrorKind::User,
            ErrorKind::Internal,
            ErrorKind::Cancelled,
            ErrorKind::CircuitOpen,
        ] {
            assert!(!policy.is_retryable(&Error::new(kind, "t")), "{kind}");
        }
    }

    #[test]
    fn a_hint_replaces_the_computed_wait() {
        let policy = ExponentialBackoff::default().delay_hint(|_| Some(Duration::from_secs(2)));
        assert_eq!(
            policy.delay(&io(), 1, Duration::ZERO),
            Some(Duration::from_secs(2))
        );
    }

    proptest::proptest! {
        #[test]
        fn full_jitter_stays_under_the_ceiling(attempt in 1u32..20, base_ms in 1u64..1000) {
            let policy = ExponentialBackoff::default()
                .base(Duration::from_millis(base_ms))
                .max_attempts(100)
                .max_elapsed(None);
            let delay = policy.delay(&io(), attempt, Duration::ZERO).unwrap();
            proptest::prop_assert!(delay <= policy.ceiling(attempt));
            proptest::prop_assert!(policy.ceiling(attempt) <= Duration::from_secs(10));
        }
    }
}
