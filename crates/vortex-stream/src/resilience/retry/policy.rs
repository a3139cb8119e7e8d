use std::time::Duration;

use crate::Error;

/// Decides whether and when to retry a failed call.
///
/// [`ExponentialBackoff`](super::ExponentialBackoff) is the policy most code wants; implement
/// this trait for anything else (a fixed schedule, a budget shared across calls).
pub trait RetryPolicy: Send + Sync {
    /// Whether `err` is worth retrying at all (a timeout or a 503 is; bad data is not).
    fn is_retryable(&self, err: &Error) -> bool;

    /// How long to wait before the next attempt, after `attempt` attempts (from 1) failed,
    /// the last with `err`, `elapsed` after the first began; `None` to give up.
    fn delay(&self, err: &Error, attempt: u32, elapsed: Duration) -> Option<Duration>;
}

#[cfg(test)]
mod tests {
    use super::RetryPolicy;

    // The trait stays object safe, so policies can be chosen at run time.
    #[test]
    fn policy_is_object_safe() {
        let policy: Box<dyn RetryPolicy> =
            Box::new(crate::resilience::ExponentialBackoff::default());
        let err = crate::Error::new(crate::ErrorKind::Io, "t");
        assert!(policy.is_retryable(&err));
    }
}
