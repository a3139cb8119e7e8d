//! Where bytes come from and go to: [`Input`] and [`Output`], with gzip or zstd compression
//! detected or chosen, and the line reader the text formats share.
//!
//! Format sources (CSV, JSON Lines, lines) open their input on a blocking thread, decode in
//! batches there and hand the batches to the pipeline; format sinks do the mirror image on
//! their own blocking thread. So a file pipeline keeps both cores busy, and never blocks the
//! async runtime on disk I/O.

mod compression;
mod input;
pub(crate) mod lines;
mod output;

pub use compression::Compression;
pub use input::Input;
pub use output::{Output, SinkWriter, Written};

pub(crate) use input::{OpenedInput, OverLimit};
