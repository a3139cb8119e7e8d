//! Where items go: file formats (CSV, JSON Lines, lines, raw bytes) written to any
//! [`Output`](crate::io::Output) by [`Pipeline::write`](crate::Pipeline::write), and the
//! dead-letter sink for an [`ErrorPolicy`](crate::ErrorPolicy).

mod bytes;
#[cfg(feature = "csv")]
mod csv;
#[cfg(feature = "jsonl")]
mod dead_letter;
#[cfg(feature = "jsonl")]
mod jsonl;
mod lines;
mod write;
#[cfg(feature = "xlsx")]
mod xlsx;

pub use bytes::{BytesSink, BytesWriter};
#[cfg(feature = "csv")]
pub use csv::{CsvRecords, CsvRecordsWriter, CsvSink, CsvWriter, RawRecord};
#[cfg(feature = "jsonl")]
pub use dead_letter::{DeadLetterCodec, DeadLetters};
#[cfg(feature = "jsonl")]
pub use jsonl::{JsonlSink, JsonlWriter};
pub use lines::{LinesSink, LinesWriter};
#[cfg(feature = "xlsx")]
pub use xlsx::{XlsxCells, XlsxRow, XlsxSink, XlsxWriter};

#[cfg(feature = "sqlite")]
pub(crate) use write::{feed, BatchWrite};

use crate::io::SinkWriter;
use crate::Result;

/// A file format values of type `T` can be written in, by
/// [`Pipeline::write`](crate::Pipeline::write).
///
/// The format's writer runs on tokio's blocking pool, a batch of values at a time (it moves
/// to a pool thread for each batch, so it is `Send`, and the sink holds no thread while it
/// waits for values): it gets the output's buffered, compressing [`SinkWriter`], writes each
/// value to it, and gives it back when done so the output can be committed.
pub trait Format<T>: Send + 'static {
    /// The writer of one output.
    type Writer: FormatWriter<T> + Send + 'static;

    /// Starts writing to `out`.
    ///
    /// # Errors
    ///
    /// When the format cannot start (a header it cannot write).
    fn writer(self, out: SinkWriter) -> Result<Self::Writer>;
}

/// Writes values of type `T` in a [`Format`].
pub trait FormatWriter<T> {
    /// Writes one value.
    ///
    /// # Errors
    ///
    /// When the value cannot be encoded or written.
    fn write(&mut self, value: T) -> Result<()>;

    /// Hands what was written so far on to the output: called when upstream has no value
    /// ready, so that the first values of a slow source leave at once rather than when a
    /// buffer fills. By default it does nothing (a format that cannot be read in parts, such
    /// as a workbook, has nothing to hand on).
    ///
    /// # Errors
    ///
    /// When the bytes cannot be written.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Writes any trailer and gives the output writer back.
    ///
    /// # Errors
    ///
    /// When the last bytes cannot be written.
    fn finish(self) -> Result<SinkWriter>;
}
