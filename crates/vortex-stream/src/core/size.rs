//! Sizes that cannot be zero, given as literals.

use core::num::NonZeroUsize;

mod sealed {
    pub trait Sealed {}
    impl Sealed for usize {}
    impl Sealed for core::num::NonZeroUsize {}
}

/// A size that cannot be zero — a batch, a buffer, a window, a number of consumers or of
/// values in flight — given as a literal (`chunk(100)`), a `usize` (`tee(outputs.len(), 16)`)
/// or a [`NonZeroUsize`].
///
/// Zero is refused where the size is given: the method taking it panics, naming itself, as
/// [`slice::chunks`] does, so that a zero never reaches a running pipeline (where it would
/// stall it or never end).
///
/// # Examples
///
/// ```
/// use std::num::NonZeroUsize;
/// use vortex_stream::Pipeline;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// let rows = vec![1, 2, 3, 4, 5];
/// let pairs = Pipeline::from_iter(rows.clone()).chunk(2).collect::<Vec<_>>().await?;
/// assert_eq!(pairs, [vec![1, 2], vec![3, 4], vec![5]]);
/// let all = Pipeline::from_iter(rows.clone()).chunk(rows.len()).count().await?;
/// let one = Pipeline::from_iter(rows).chunk(NonZeroUsize::MIN).count().await?;
/// assert_eq!((all, one), (1, 5));
/// # Ok(())
/// # }
/// ```
///
/// ```should_panic
/// # use vortex_stream::Pipeline;
/// // chunk: the size must be at least 1, not 0
/// let _ = Pipeline::from_iter([1, 2, 3]).chunk(0);
/// ```
pub trait Size: sealed::Sealed {
    /// The size, or a panic naming `what` (the method it was given to) if it is zero.
    #[doc(hidden)]
    fn non_zero(self, what: &str) -> NonZeroUsize;
}

impl Size for usize {
    fn non_zero(self, what: &str) -> NonZeroUsize {
        match NonZeroUsize::new(self) {
            Some(size) => size,
            None => refuse_zero(what),
        }
    }
}

impl Size for NonZeroUsize {
    fn non_zero(self, _what: &str) -> NonZeroUsize {
        self
    }
}

#[cold]
#[track_caller]
#[allow(
    clippy::panic,
    reason = "a zero size is a programming error, refused where it is given"
)]
fn refuse_zero(what: &str) -> ! {
    panic!("{what}: the size must be at least 1, not 0")
}
