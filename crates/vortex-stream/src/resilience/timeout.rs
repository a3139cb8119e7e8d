use std::future::Future;
use std::time::Duration;

use crate::{Error, ErrorKind, Result};

/// Runs `fut`, or fails with a [`Timeout`](ErrorKind::Timeout) error of operation `operation`
/// once `limit` has passed (dropping `fut`, which cancels it).
///
/// # Errors
///
/// The future's own error, or the timeout.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use vortex_stream::resilience::with_timeout;
/// use vortex_stream::ErrorKind;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let slow = async {
///     tokio::time::sleep(Duration::from_secs(60)).await;
///     Ok::<_, vortex_stream::Error>(1)
/// };
/// let err = with_timeout("lookup", Duration::from_millis(10), slow).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Timeout);
/// assert_eq!(err.to_string(), "lookup: no answer within 10ms");
/// # }
/// ```
pub async fn with_timeout<T, Fut>(operation: &'static str, limit: Duration, fut: Fut) -> Result<T>
where
    Fut: Future<Output = Result<T>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(ErrorKind::Timeout, operation)
            .with_message(format!("no answer within {limit:?}"))),
    }
}
