//! Parallel stages: [`par_map`](crate::Pipeline::par_map) (CPU-bound closures on rayon's
//! thread pool) and [`par_then`](crate::Pipeline::par_then) (async closures, several in
//! flight), each ordered or unordered, with bounded memory.
//!
//! Both hold at most `window` values between pulling and yielding (waiting, running, or
//! finished and waiting for an older one), so a slow value at the head makes the stage stop
//! pulling instead of buffering its input. [`Parallel`] polls up to `n` futures at once;
//! [`ParMap`] queues values for up to `n` rayon jobs, which wake the pipeline's task only
//! when it waits for what they finished, not once per value.
//!
//! `par_map` runs on rayon's pool rather than tokio's blocking pool: measured with 15 µs of
//! work per value on 2 cores, a `spawn_blocking` per value made the stage 2.3 times slower than
//! no parallelism at all, while rayon's persistent workers made it faster (see
//! BENCHMARKS.md). Cheap values go in batches sized from the time they take (about 50 µs a
//! batch), and while the stage waits for cheap values its own task runs a batch too, as a
//! caller of rayon's parallel iterators does.

use crate::core::Size;
use core::num::NonZeroUsize;

// Only sources that fuse stages use it.
#[cfg(any(feature = "csv", feature = "jsonl"))]
mod in_order;
mod par_map;
mod partition;
mod stage;

#[cfg(any(feature = "csv", feature = "jsonl"))]
pub(crate) use in_order::InOrder;
#[cfg(any(feature = "csv", feature = "jsonl"))]
use stage::panic_error;

/// `f`, with a panic in it turned into the `Internal` error a `par_map` stage makes of one:
/// for a `par_map` fused into a decoding source, whose values must fail as they would in the
/// stage.
#[cfg(any(feature = "csv", feature = "jsonl"))]
pub(crate) fn as_par_map<T, U>(f: impl Fn(T) -> U) -> impl Fn(T) -> crate::Result<U> {
    move |value| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(value)))
            .map_err(|panic| panic_error("par_map", &*panic))
    }
}

/// The values a `par_map` stage of `limit` runs at once: no more than rayon's threads.
#[cfg(any(feature = "csv", feature = "jsonl"))]
pub(crate) fn workers(limit: NonZeroUsize) -> usize {
    limit.get().min(rayon::current_num_threads().max(1))
}

pub use par_map::ParMap;
pub use partition::PartitionBy;
pub use stage::{Parallel, Start, StartAsync};

/// How much a parallel stage may do at once: `limit` values in flight, and at most `window`
/// values held between pulling and yielding (at least `limit`; twice it by default).
///
/// Left unset, the window of a [`par_map`](crate::Pipeline::par_map) grows with the batches
/// its workers take (two batches a worker), up to 1,024 values: for work of a fraction of a
/// microsecond a value, a window of a few values would keep the workers waiting for the
/// stage. Values of 50 µs and more go one at a time and the window stays at twice the limit.
/// Setting the window fixes it: do so for large values that take little time each.
///
/// ```
/// use vortex_stream::parallel::Parallelism;
///
/// let four = 4;
/// let p = Parallelism::new(four);
/// assert_eq!((p.limit().get(), p.window_len().get()), (4, 8));
/// let p = Parallelism::from(four).window(16);
/// assert_eq!(p.window_len().get(), 16);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parallelism {
    limit: NonZeroUsize,
    window: NonZeroUsize,
    grows: bool,
}

impl Parallelism {
    /// At most `limit` values in flight, and a window of twice that.
    #[must_use]
    pub fn new(limit: impl Size) -> Self {
        let limit = limit.non_zero("Parallelism::new");
        Parallelism {
            limit,
            window: limit.saturating_mul(NonZeroUsize::MIN.saturating_add(1)),
            grows: true,
        }
    }

    /// Sets the window: values held between pulling and yielding. Raised to `limit` if lower.
    #[must_use]
    pub fn window(mut self, window: impl Size) -> Self {
        let window = window.non_zero("Parallelism::window");
        self.window = window.max(self.limit);
        self.grows = false;
        self
    }

    /// Whether the window may grow with the batch size (it was not set).
    pub(crate) fn window_grows(&self) -> bool {
        self.grows
    }

    /// Values in flight at most.
    #[must_use]
    pub fn limit(&self) -> NonZeroUsize {
        self.limit
    }

    /// The window set (or defaulted).
    #[must_use]
    pub fn window_len(&self) -> NonZeroUsize {
        self.window
    }
}

/// The size hint of a stage holding `held` values pulled from `upstream` and not yet yielded.
fn size_hint<S: futures_core::Stream>(
    held: usize,
    upstream_done: bool,
    upstream: &S,
) -> (usize, Option<usize>) {
    if upstream_done {
        return (held, Some(held));
    }
    let (lower, upper) = upstream.size_hint();
    (
        lower.saturating_add(held),
        upper.and_then(|u| u.checked_add(held)),
    )
}

/// A limit of values in flight given as a literal, a `usize` or a `NonZeroUsize` (a zero panics).
impl<N: Size> From<N> for Parallelism {
    fn from(limit: N) -> Self {
        Parallelism::new(limit)
    }
}
