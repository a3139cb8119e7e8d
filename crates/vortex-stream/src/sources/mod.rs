//! Where items come from: iterators, channels, generator closures, byte readers, and the file
//! formats (lines, CSV, JSON Lines) read from any [`Input`](crate::io::Input).
//!
//! The simple sources are wrapped by [`Pipeline`](crate::Pipeline) constructors, where they are
//! documented; the format sources are builders that end in a pipeline.

mod blocking;
mod channel;
#[cfg(feature = "csv")]
mod csv;
#[cfg(any(feature = "csv", feature = "jsonl"))]
mod fast_path;
mod flatten_batches;
mod generate;
mod iter;
#[cfg(feature = "jsonl")]
mod jsonl;
mod lines;
#[cfg(any(feature = "csv", feature = "jsonl"))]
mod planned;
mod read;

pub use blocking::Blocking;
pub use channel::Receiver;
#[cfg(feature = "csv")]
pub use csv::{CsvDecode, CsvSource, Headers, DEFAULT_MAX_RECORD_LEN};
pub use flatten_batches::FlattenBatches;
pub use generate::{Emit, Generate, Yielder};
pub use iter::Iter;
#[cfg(feature = "jsonl")]
pub use jsonl::{DecodeBatch, JsonlDecode, JsonlSource, LineBatch};
pub use lines::{LinesSource, DEFAULT_MAX_LINE_LEN};
pub use read::{ReadChunks, DEFAULT_READ_CHUNK};

#[cfg(feature = "sqlite")]
pub(crate) use blocking::Held;
