//! Where bytes come from and go to: [`Input`] and [`Output`], with gzip or zstd compression
//! detected or chosen, and the line reader the text formats share.
//!
//! Format sources (CSV, JSON Lines, lines) open their input and decode it on tokio's blocking
//! pool, a batch per job, and hand the batches to the pipeline; format sinks do the mirror
//! image. So a file pipeline keeps both cores busy and never blocks the async runtime on disk
//! I/O, and a pipeline holds a pool thread only while a job runs: not while it waits for its
//! consumer or its upstream. (A job reading an [`Input::async_reader`] waits in it for the
//! bytes: a slow peer holds that thread while the job waits.)

mod compression;
mod input;
pub(crate) mod lines;
mod output;

pub use compression::Compression;
pub use input::Input;
pub use output::{Output, SinkWriter, Written};

pub(crate) use input::OpenedInput;
pub(crate) use output::{Commit, Drain, Spool};
