//! Fused stages: which stateless operators run on a source's own threads.
//!
//! A [`Pipeline`](crate::Pipeline) carries a second type parameter, its kind. Almost every
//! pipeline is [`Plain`]: each operator is a stage of its own, run where the pipeline is
//! polled, one value at a time. A source that decodes records on threads of its own (the
//! `deserialize` of the CSV and JSON Lines sources) returns a [`Fusable`] pipeline instead, and on it [`filter`](crate::Pipeline::filter),
//! [`map`](crate::Pipeline::map) and [`filter_map`](crate::Pipeline::filter_map) do not add a
//! stage: their closure joins the source and runs on the decoding threads, right after each
//! run of records is decoded. The records a filter drops are dropped there, and a map's
//! work is spread over the cores with the decoding, so the plain chain a user writes,
//! `deserialize().filter(..).map(..)`, runs as fast as a hand-fused decoder.
//!
//! What stays the same: values come out in input order; a closure sees the values one at a
//! time, in input order (runs take turns, so a closure that counts or keeps state sees what
//! it would see unfused); an error item passes the fused closures unchanged; a panic in a
//! closure reaches the pipeline as an error item naming the panic.
//!
//! What differs: the closure must be `Send + 'static`, as it moves to the decoding threads;
//! and it runs as records are decoded, ahead of what the pipeline has taken, by up to the
//! runs the source holds at once (a few hundred KiB of input). After a [`take`] of ten
//! values, a fused `map` may have run on a few thousand. Where a closure borrows, is not
//! `Send`, or must see only the values taken, call
//! [`unfused`](crate::Pipeline::unfused) first: the next stage is then a plain one.
//!
//! [`par_map`](crate::Pipeline::par_map) and
//! [`par_map_unordered`](crate::Pipeline::par_map_unordered) fuse too, and more freely: their
//! closure is `Fn + Sync`, so every decoding thread runs it at once on its own run, with no
//! turns, when the source decodes on as many threads at once as the stage would run (its
//! limit, up to rayon's threads); otherwise, so that neither the limit nor the parallelism
//! changes, the stage is a plain one after the source. A panic in it is an error item in its
//! value's place, as in a plain `par_map`.
//!
//! Any other operator ends the fusing: what follows it is [`Plain`].
//!
//! [`take`]: crate::Pipeline::take
//!
//! # Examples
//!
//! ```
//! use serde::Deserialize;
//! use vortex_stream::io::Input;
//! use vortex_stream::sources::CsvSource;
//!
//! #[derive(Deserialize)]
//! struct Order {
//!     id: u64,
//!     status: String,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> vortex_stream::Result<()> {
//! let input = Input::bytes("id,status\n1,active\n2,shipped\n3,active\n");
//! // Both closures run on the decoding threads.
//! let active: Vec<u64> = CsvSource::new(input)
//!     .deserialize::<Order>()
//!     .filter(|o| o.status == "active")
//!     .map(|o| o.id)
//!     .collect()
//!     .await?;
//! assert_eq!(active, [1, 3]);
//! # Ok(())
//! # }
//! ```

/// The kind of a pipeline whose operators are each a stage of their own (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

/// The kind of a pipeline whose source runs its next `filter`, `map` and `filter_map` on its
/// own decoding threads (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fusable;

/// A source stream that fused stages can join: the decoding streams of the CSV and JSON
/// Lines sources. Sealed; the pipeline's `map`, `filter`, `filter_map`, `par_map` and
/// `par_map_unordered` on a [`Fusable`] pipeline use it.
pub trait FusedSource:
    futures_core::Stream<Item = crate::Result<Self::Value>> + private::Sealed
{
    /// What the source yields.
    type Value: Send + 'static;
    /// The same source yielding `U`.
    type With<U: Send + 'static>: FusedSource<Value = U>;

    /// Runs `f` on each value on the decoding threads, the runs (or batches) of values taking
    /// turns in input order; values for which it returns `None` are dropped there.
    #[doc(hidden)]
    fn then<U, F>(self, f: F) -> Self::With<U>
    where
        U: Send + 'static,
        F: FnMut(Self::Value) -> Option<U> + Send + 'static;

    /// Runs `f` on each value on every decoding thread at once, with no turns, when the
    /// source decodes on as many threads as a `par_map` of `limit` would run (else in a plain
    /// `par_map` stage after it); a panic in `f` becomes an `Internal` error item in the
    /// value's place.
    #[doc(hidden)]
    fn then_parallel<U, F>(
        self,
        limit: core::num::NonZeroUsize,
        ordered: bool,
        f: F,
    ) -> Self::With<U>
    where
        U: Send + 'static,
        F: Fn(Self::Value) -> U + Send + Sync + 'static;
}

pub(crate) mod private {
    /// Only this crate's decoding sources are [`FusedSource`](super::FusedSource)s.
    pub trait Sealed {}
}
