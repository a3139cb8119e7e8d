use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::core::Size;
use crate::{Error, ErrorKind, Result};

/// A concurrency limit shared by every pipeline and stage holding a clone: at most `n` calls
/// through it run at once, whoever makes them, so one busy pipeline cannot take all of a
/// dependency's capacity.
///
/// [`call`](Bulkhead::call) waits for room; [`try_call`](Bulkhead::try_call) fails fast with a
/// [`Capacity`](ErrorKind::Capacity) error when the bulkhead is full. A call's slot is released
/// however it ends: success, error, panic or cancellation.
///
/// # Examples
///
/// ```
/// use vortex_stream::resilience::Bulkhead;
/// use vortex_stream::Pipeline;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// let database = Bulkhead::new(4);
/// let eight = 8;
/// let bulkhead = database.clone();
/// let n = Pipeline::from_iter(0..20)
///     .par_then(eight, move |id| {
///         let bulkhead = bulkhead.clone();
///         async move { bulkhead.call(async move { Ok(id) }).await }
///     })
///     .count()
///     .await?;
/// assert_eq!(n, 20);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Bulkhead {
    permits: Arc<Semaphore>,
    size: usize,
}

impl Bulkhead {
    /// At most `n` calls at once.
    #[must_use]
    pub fn new(n: impl Size) -> Self {
        let n = n.non_zero("Bulkhead::new");
        Bulkhead {
            permits: Arc::new(Semaphore::new(n.get())),
            size: n.get(),
        }
    }

    /// Calls running now.
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.size - self.permits.available_permits()
    }

    /// Runs `fut` once there is room.
    ///
    /// # Errors
    ///
    /// The future's own error.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future while it waits gives up its place; while it runs,
    /// cancels the call and frees its slot.
    pub async fn call<T, Fut>(&self, fut: Fut) -> Result<T>
    where
        Fut: Future<Output = Result<T>>,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::internal("bulkhead", "the semaphore was closed"))?;
        fut.await
    }

    /// Runs `fut` if there is room now.
    ///
    /// # Errors
    ///
    /// A [`Capacity`](ErrorKind::Capacity) error when full, or the future's own error.
    pub async fn try_call<T, Fut>(&self, fut: Fut) -> Result<T>
    where
        Fut: Future<Output = Result<T>>,
    {
        let Ok(_permit) = self.permits.try_acquire() else {
            return Err(Error::new(ErrorKind::Capacity, "bulkhead")
                .with_message(format!("all {} slots are in use", self.size)));
        };
        fut.await
    }
}
