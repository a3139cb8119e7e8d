//! Driving a pipeline from sync code.

use core::fmt;
use core::future::Future;
use core::pin::Pin;

use futures_core::Stream;
use futures_util::StreamExt;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use super::Pipeline;
use crate::error::{Error, ErrorKind};
use crate::Result;

/// Where sync driving is called from, and so how it may block.
#[derive(Clone, Copy, Debug)]
enum Caller {
    /// A thread of no runtime: block freely.
    Outside,
    /// A thread of a multi-thread runtime, a worker or a `spawn_blocking` thread: block
    /// through `block_in_place`, which hands a worker's other tasks to another thread first
    /// (and on a `spawn_blocking` thread simply runs the closure).
    MultiThread,
}

impl Caller {
    /// The caller of `operation`, or an error if it may not block.
    ///
    /// On a current-thread runtime a task and a `spawn_blocking` thread look the same from
    /// here (tokio tells them apart only inside itself), and blocking the task would stall
    /// every other task, so both are refused.
    fn of(operation: &'static str) -> Result<Caller> {
        let Ok(handle) = Handle::try_current() else {
            return Ok(Caller::Outside);
        };
        match handle.runtime_flavor() {
            RuntimeFlavor::MultiThread => Ok(Caller::MultiThread),
            _ => Err(Error::new(ErrorKind::Internal, operation).with_message(
                "called from inside a current-thread async runtime, where it would stall every task; await the pipeline instead (or call it outside the runtime, or from a multi-thread runtime's spawn_blocking thread)",
            )),
        }
    }

    /// Runs `f`, which blocks.
    fn block<R>(self, f: impl FnOnce() -> R) -> R {
        match self {
            Caller::Outside => f(),
            Caller::MultiThread => tokio::task::block_in_place(f),
        }
    }
}

/// A runtime of one thread, with time and I/O (database drivers need it), for driving a
/// pipeline from sync code.
fn blocking_runtime(operation: &'static str) -> Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io(operation, e))
}

/// Sync driving.
impl<S, Kind, T> Pipeline<S, Kind>
where
    S: Stream<Item = Result<T>>,
{
    /// An iterator over the pipeline's items, for sync code: each `next` runs the pipeline on
    /// a private single-thread tokio runtime until the next item is ready.
    ///
    /// The iterator owns the pipeline; dropping it drops the pipeline and stops it.
    ///
    /// Call it outside any runtime, or on a thread of a multi-thread runtime: a
    /// `spawn_blocking` thread, or a worker (each `next` then blocks through
    /// [`block_in_place`](tokio::task::block_in_place), which first hands the worker's other
    /// tasks to another thread). Inside async code, awaiting the pipeline is better still.
    ///
    /// # Errors
    ///
    /// An [`Internal`](ErrorKind::Internal) error if called on a current-thread runtime (where
    /// blocking would stall every task), or an [`Io`](ErrorKind::Io) error if the runtime
    /// cannot start.
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
        let caller = Caller::of("blocking iterator")?;
        Ok(BlockingIter {
            runtime: Some(blocking_runtime("blocking iterator")?),
            caller,
            stream: Some(Box::pin(self.inner)),
        })
    }

    /// Runs `f`, an async terminal over this pipeline, to completion from sync code, on a
    /// private single-thread tokio runtime.
    ///
    /// Where it may be called from: as [`into_blocking_iter`](Pipeline::into_blocking_iter).
    ///
    /// # Errors
    ///
    /// What `f` returns; or an [`Internal`](ErrorKind::Internal) error if called on a
    /// current-thread runtime, or an [`Io`](ErrorKind::Io) error if the runtime cannot start.
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
        let caller = Caller::of("run_blocking")?;
        // Made, run and dropped (which waits for its blocking threads) while blocking is
        // allowed.
        caller.block(|| blocking_runtime("run_blocking")?.block_on(f(self)))
    }
}

/// Iterator for the [`into_blocking_iter`](Pipeline::into_blocking_iter) method.
pub struct BlockingIter<S> {
    // Both taken only when dropped: the pipeline first, then its runtime.
    stream: Option<Pin<Box<S>>>,
    runtime: Option<Runtime>,
    caller: Caller,
}

impl<S> Drop for BlockingIter<S> {
    fn drop(&mut self) {
        drop(self.stream.take());
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime waits for its blocking threads: allowed where blocking is.
            self.caller.block(|| drop(runtime));
        }
    }
}

impl<S> fmt::Debug for BlockingIter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingIter").finish_non_exhaustive()
    }
}

impl<S: Stream> Iterator for BlockingIter<S> {
    type Item = S::Item;

    fn next(&mut self) -> Option<Self::Item> {
        let (stream, runtime) = (self.stream.as_mut()?, self.runtime.as_ref()?);
        self.caller.block(|| runtime.block_on(stream.next()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream
            .as_ref()
            .map_or((0, Some(0)), |stream| stream.size_hint())
    }
}
