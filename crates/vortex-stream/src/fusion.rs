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
