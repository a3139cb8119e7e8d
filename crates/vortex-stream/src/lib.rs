//! Constant-memory streaming data pipelines: stream, don't store.
//!
//! Services get OOM-killed when they *collect, then process*: every row of a query, record
//! of a CSV file or line of a log read into a `Vec` before the work starts. vortex makes the
//! other way the easy way. A [`Pipeline`] pulls one item at a time from its source through
//! its stages to its sink, and drops it: memory stays flat whatever the data size, the first
//! result leaves at once, and dropping the pipeline stops all of its work.
//!
//! # A short tour
//!
//! ```
//! use vortex_stream::{ErrorPolicy, Pipeline};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> vortex_stream::Result<()> {
//! let lines = ["id,amount", "1,9.50", "2,oops", "3,120.00", "4,31.25"];
//! let policy = ErrorPolicy::skip().max_errors(100);
//!
//! let batches = Pipeline::from_iter(lines)
//!     .skip(1)                                              // the header
//!     .try_map(|line| {                                     // errors become items...
//!         let (id, amount) = line.split_once(',').ok_or("no comma")?;
//!         Ok::<_, Box<dyn std::error::Error + Send + Sync>>((id.parse::<u32>()?, amount.parse::<f64>()?))
//!     })
//!     .on_error(policy.clone())                             // ...which a policy handles
//!     .filter(|(_, amount)| *amount > 10.0)
//!     .chunk(2)                 // bounded batches
//!     .collect::<Vec<_>>()
//!     .await?;
//!
//! assert_eq!(batches, [vec![(3, 120.0), (4, 31.25)]]);
//! assert_eq!(policy.report().skipped(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! - **Items are `Result<T>`.** Errors travel in the stream with the data. Operators act on
//!   values and pass errors on untouched, so an error keeps the operation and [`Position`]
//!   where it arose. Terminals stop at the first error; an [`ErrorPolicy`] skips errors,
//!   sends them to a dead-letter sink or enforces an error budget, and keeps a [`Report`].
//! - **Every buffer is bounded.** Each operator's docs state what it holds; sizes are
//!   arguments ([`Size`]: a literal, a `usize` or a `NonZeroUsize`; a zero panics where it
//!   is given), never defaults. Only [`Pipeline::collect`] holds everything.
//! - **Dropping stops work.** A pipeline owns its stages and sources; dropping it drops them.
//!   [`Pipeline::cancel_on`] and [`Pipeline::deadline`] end a pipeline from outside.
//! - **It is a [`Stream`](futures_core::Stream).** Operators are inherent methods, so they win
//!   over `StreamExt`'s when both are in scope, and a pipeline works anywhere a stream does.
//!   Sync code drives one with [`Pipeline::into_blocking_iter`] or [`Pipeline::run_blocking`].
//!
//! # Layers
//!
//! The modules form layers, and a module uses only the layers below its own (a test checks
//! every `crate::` path): [`error`] and [`ack`] (the acknowledgement shares of broker
//! messages, which an error may carry); [`core`] (policies, the report, located values);
//! operators ([`adapters`]), [`parallel`], [`resilience`], [`io`] and the database values;
//! [`sources`], [`sinks`], `db` and `brokers` (sources and sinks know nothing of each other,
//! a database uses both); and the [`Pipeline`] and [`AckPipeline`] facades. A constructor of `Pipeline` is written next to the
//! source it makes, `write` next to the sinks and `load` with the databases, so the facade
//! itself names no source, sink or database, and a new source or sink goes in at its own
//! level without touching it.

#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

/// Accessors to the stream an adapter wraps, as `futures`' adapters have them. An adapter
/// that holds items between polls names them (`holds: "…"`), and `into_inner` says they are
/// dropped.
macro_rules! delegate_access_inner {
    ($field:ident, $inner:ty, holds: $held:literal) => {
        delegate_access_inner!(@refs $field, $inner);

        /// Consumes this adapter, returning the underlying stream.
        ///
        #[doc = concat!("The adapter's ", $held, " are dropped with it, not yielded: pull them first if they matter.")]
        pub fn into_inner(self) -> $inner {
            self.$field
        }
    };
    ($field:ident, $inner:ty) => {
        delegate_access_inner!(@refs $field, $inner);

        /// Consumes this adapter, returning the underlying stream.
        pub fn into_inner(self) -> $inner {
            self.$field
        }
    };
    (@refs $field:ident, $inner:ty) => {
        /// Acquires a reference to the underlying stream.
        pub fn get_ref(&self) -> &$inner {
            &self.$field
        }

        /// Acquires a mutable reference to the underlying stream.
        ///
        /// Pulling items from it directly skips this adapter.
        pub fn get_mut(&mut self) -> &mut $inner {
            &mut self.$field
        }

        /// Acquires a pinned mutable reference to the underlying stream.
        pub fn get_pin_mut(self: core::pin::Pin<&mut Self>) -> core::pin::Pin<&mut $inner> {
            self.project().$field
        }
    };
}

pub mod ack;
#[cfg(any(feature = "nats", feature = "amqp"))]
pub mod brokers;
pub mod core;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub mod db;
pub mod error;
pub mod fusion;
pub mod io;
mod ops;
pub mod parallel;
mod pipeline;
pub mod resilience;
pub mod sinks;
pub mod sources;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod value;

pub use crate::core::{ErrorPolicy, Located, Report, Size, StageStats, Stats};
pub use crate::error::{BoxError, Error, ErrorKind, Position, Result};
pub use crate::ops::adapters;
pub use crate::pipeline::{AckPipeline, BlockingIter, Pipeline};
pub use crate::sources::DEFAULT_READ_CHUNK;
/// The token [`Pipeline::cancel_on`] watches, re-exported so that no other crate need be
/// added to use it.
pub use tokio_util::sync::CancellationToken;

/// The README's Rust blocks, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

#[cfg(any(
    feature = "http",
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql"
))]
mod redact;
