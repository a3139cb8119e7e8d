//! Retrying a failed call: the [`RetryPolicy`] trait ("retry this attempt, after what
//! delay?"), [`ExponentialBackoff`] (the policy for most uses), the standalone [`retry`] and
//! the stage form [`retrying`].

mod backoff;
mod layer;
mod policy;

pub use backoff::ExponentialBackoff;
pub use layer::retrying;
pub use policy::RetryPolicy;

use std::future::Future;

use crate::{Error, Result};

/// Calls `op` until it succeeds or `policy` gives up, sleeping (on tokio's clock) between
/// attempts as the policy says.
///
/// An error the policy does not retry is returned as it is. When the policy gives up on a
/// retryable error, the error returned has the last error's kind and position, says how many
/// attempts were made, and keeps the last error as its source.
///
/// # Errors
///
/// As above.
///
/// # Cancel safety
///
/// Dropping the future cancels the attempt in flight, or the wait.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use vortex_stream::resilience::{retry, ExponentialBackoff};
/// use vortex_stream::{Error, ErrorKind};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> vortex_stream::Result<()> {
/// let calls = AtomicU32::new(0);
/// let flaky = || async {
///     if calls.fetch_add(1, Ordering::SeqCst) < 2 {
///         Err(Error::new(ErrorKind::Http, "GET /price").with_message("503 service unavailable"))
///     } else {
///         Ok(42)
///     }
/// };
/// assert_eq!(retry(&ExponentialBackoff::default(), flaky).await?, 42);
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
///
/// let always = || async { Err::<u32, _>(Error::new(ErrorKind::Io, "connect").with_message("refused")) };
/// let err = retry(&ExponentialBackoff::default().max_attempts(3), always).await.unwrap_err();
/// assert_eq!(err.to_string(), "connect: gave up after 3 attempts: refused");
/// # Ok(())
/// # }
/// ```
pub async fn retry<P, T, F, Fut>(policy: &P, mut op: F) -> Result<T>
where
    P: RetryPolicy + ?Sized,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = tokio::time::Instant::now();
    let mut attempt = 1u32;
    loop {
        let err = match op().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        if !policy.is_retryable(&err) {
            return Err(err);
        }
        match policy.delay(&err, attempt, started.elapsed()) {
            Some(delay) => {
                tracing::info!(attempt, ?delay, error = %err, "retrying");
                tokio::time::sleep(delay).await;
            }
            None => {
                tracing::warn!(attempts = attempt, error = %err, "giving up");
                return Err(gave_up(err, attempt));
            }
        }
        attempt = attempt.saturating_add(1);
    }
}

/// The error once retrying stops: the last error's kind, operation and position, the count.
fn gave_up(last: Error, attempts: u32) -> Error {
    let mut err = Error::new(last.kind(), last.operation().to_owned()).with_message(format!(
        "gave up after {attempts} attempt{}: {}",
        if attempts == 1 { "" } else { "s" },
        last.message()
    ));
    if let Some(position) = last.position() {
        err = err.with_position(position.clone());
    }
    err.with_source(last)
}
