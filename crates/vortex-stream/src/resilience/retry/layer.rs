use std::future::Future;
use std::sync::Arc;

use super::{retry, RetryPolicy};
use crate::Result;

/// Wraps a fallible async closure so that each call is retried in place under `policy`: for
/// the [`try_then`](crate::Pipeline::try_then) and [`par_then`](crate::Pipeline::par_then)
/// stages, where a value whose call fails and then succeeds comes out in its place, order
/// kept.
///
/// The value is cloned for each attempt.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use vortex_stream::resilience::{retrying, ExponentialBackoff};
/// use vortex_stream::{Error, ErrorKind, Pipeline};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> vortex_stream::Result<()> {
/// let failures = Arc::new(AtomicU32::new(0));
/// let counter = failures.clone();
/// // A service that fails every other call.
/// let call = move |id: u32| {
///     let counter = counter.clone();
///     async move {
///         if counter.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
///             Err(Error::new(ErrorKind::Http, "GET /user").with_message("503"))
///         } else {
///             Ok(id * 10)
///         }
///     }
/// };
/// let out = Pipeline::from_iter([1, 2, 3])
///     .par_then(2, retrying(ExponentialBackoff::default(), call))
///     .collect::<Vec<_>>()
///     .await?;
/// assert_eq!(out, [10, 20, 30]);
/// # Ok(())
/// # }
/// ```
pub fn retrying<P, T, U, F, Fut>(
    policy: P,
    f: F,
) -> impl FnMut(T) -> std::pin::Pin<Box<dyn Future<Output = Result<U>> + Send>> + Clone
where
    P: RetryPolicy + 'static,
    T: Clone + Send + Sync + 'static,
    U: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<U>> + Send + 'static,
{
    let policy = Arc::new(policy);
    let f = Arc::new(f);
    move |value: T| {
        let policy = Arc::clone(&policy);
        let f = Arc::clone(&f);
        Box::pin(async move { retry(&*policy, || f(value.clone())).await })
    }
}
