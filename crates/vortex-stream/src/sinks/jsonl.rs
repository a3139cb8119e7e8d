use std::io::Write;

use serde::Serialize;

use super::{Format, FormatWriter};
use crate::io::SinkWriter;
use crate::{Error, ErrorKind, Result};

const OPERATION: &str = "jsonl sink: write";

/// Writes each value as one line of JSON, with serde.
///
/// # Examples
///
/// ```
/// use vortex_stream::io::Output;
/// use vortex_stream::sinks::JsonlSink;
/// use vortex_stream::Pipeline;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.jsonl");
/// Pipeline::from_iter([(1, "a"), (2, "b")]).write(JsonlSink, Output::path(&path)).await?;
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "[1,\"a\"]\n[2,\"b\"]\n");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonlSink;

/// The writer of a [`JsonlSink`].
#[derive(Debug)]
pub struct JsonlWriter {
    out: SinkWriter,
}

impl<T: Serialize> Format<T> for JsonlSink {
    type Writer = JsonlWriter;

    fn writer(self, out: SinkWriter) -> Result<JsonlWriter> {
        Ok(JsonlWriter { out })
    }
}

impl<T: Serialize> FormatWriter<T> for JsonlWriter {
    fn flush(&mut self) -> Result<()> {
        std::io::Write::flush(&mut self.out).map_err(|e| Error::io(OPERATION, e))
    }

    fn write(&mut self, value: T) -> Result<()> {
        serde_json::to_writer(&mut self.out, &value).map_err(|e| {
            if e.is_io() {
                Error::io(OPERATION, std::io::Error::from(e))
            } else {
                Error::from_boxed(ErrorKind::User, "jsonl sink: encode", e.into())
            }
        })?;
        self.out
            .write_all(b"\n")
            .map_err(|e| Error::io(OPERATION, e))
    }

    fn finish(self) -> Result<SinkWriter> {
        Ok(self.out)
    }
}
