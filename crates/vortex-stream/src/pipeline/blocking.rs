//! Driving a pipeline from sync code.

use core::fmt;
use core::future::Future;
use core::pin::Pin;

use futures_core::Stream;
use futures_util::StreamExt;
use tokio::runtime::Runtime;

use super::Pipeline;
use crate::error::{Error, ErrorKind};
use crate::Result;

/// A runtime of one thread, with time and I/O (database drivers need it), for driving a
/// pipeline from sync code.
fn blocking_runtime(operation: &'static str) -> Result<Runtime> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::new(ErrorKind::Internal, operation).with_message(
            "called from inside an async runtime, where it would block a worker; await the pipeline instead",
        ));
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io(operation, e))
}

/// Sync driving.
impl<S, T> Pipeline<S>
where
    S: Stream<Item = Result<T>>,
{
    /// An iterator over the pipeline's items, for sync code: each `next` runs the pipeline on
    /// a private single-thread tokio runtime until the next item is ready.
    ///
    /// The iterator owns the pipeline; dropping it drops the pipeline and stops it.
    ///
    /// # Errors
    ///
    /// An [`Internal`](ErrorKind::Internal) error if called inside an async runtime (where
    /// blocking would stall it), or an [`Io`](ErrorKind::Io) error if the runtime cannot start.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// fn main() -> vortex_stream::Result<()> {
    ///     let mut total = 0;
    ///     for item in Pipeline::from_iter(1..=3).map(|n| n * 2).into_blocking_iter()? {
    ///         total += item?;
    ///     }
    ///     assert_eq!(total, 12);
    ///     Ok(())
    /// }
    /// ```
    pub fn into_blocking_iter(self) -> Result<BlockingIter<S>> {
        Ok(BlockingIter {
            runtime: blocking_runtime("blocking iterator")?,
            stream: Box::pin(self.inner),
        })
    }

    /// Runs `f`, an async terminal over this pipeline, to completion from sync code, on a
    /// private single-thread tokio runtime.
    ///
    /// # Errors
    ///
    /// What `f` returns; or an [`Internal`](ErrorKind::Internal) error if called inside an
    /// async runtime, or an [`Io`](ErrorKind::Io) error if the runtime cannot start.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// fn main() -> vortex_stream::Result<()> {
    ///     let evens = Pipeline::from_iter(0..10).filter(|n| n % 2 == 0).run_blocking(|p| p.count())?;
    ///     assert_eq!(evens, 5);
    ///     Ok(())
    /// }
    /// ```
    pub fn run_blocking<R, F, Fut>(self, f: F) -> Result<R>
    where
        F: FnOnce(Self) -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        blocking_runtime("run_blocking")?.block_on(f(self))
    }
}

/// Iterator for the [`into_blocking_iter`](Pipeline::into_blocking_iter) method.
pub struct BlockingIter<S> {
    runtime: Runtime,
    stream: Pin<Box<S>>,
}

impl<S> fmt::Debug for BlockingIter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingIter").finish_non_exhaustive()
    }
}

impl<S: Stream> Iterator for BlockingIter<S> {
    type Item = S::Item;

    fn next(&mut self) -> Option<Self::Item> {
        let stream = &mut self.stream;
        self.runtime.block_on(stream.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}
