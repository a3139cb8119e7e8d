use std::io::Write;

use super::{Format, FormatWriter};
use crate::io::SinkWriter;
use crate::{Error, Result};

const OPERATION: &str = "lines sink: write";

/// Writes each value as one line of text, ending in `\n`.
///
/// # Examples
///
/// ```
/// use vortex_stream::io::Output;
/// use vortex_stream::sinks::LinesSink;
/// use vortex_stream::Pipeline;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.txt");
/// let written = Pipeline::from_iter(["a", "b"]).write(LinesSink, Output::path(&path)).await?;
/// assert_eq!(written.rows, 2);
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\n");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct LinesSink;

/// The writer of a [`LinesSink`].
#[derive(Debug)]
pub struct LinesWriter {
    out: SinkWriter,
}

impl<T: AsRef<str>> Format<T> for LinesSink {
    type Writer = LinesWriter;

    fn writer(self, out: SinkWriter) -> Result<LinesWriter> {
        Ok(LinesWriter { out })
    }
}

impl<T: AsRef<str>> FormatWriter<T> for LinesWriter {
    fn flush(&mut self) -> Result<()> {
        std::io::Write::flush(&mut self.out).map_err(|e| Error::io(OPERATION, e))
    }

    fn write(&mut self, value: T) -> Result<()> {
        let line = value.as_ref().as_bytes();
        self.out
            .write_all(line)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| Error::io(OPERATION, e))
    }

    fn finish(self) -> Result<SinkWriter> {
        Ok(self.out)
    }
}
