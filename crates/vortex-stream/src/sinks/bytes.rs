use std::io::Write;

use super::{Format, FormatWriter};
use crate::io::SinkWriter;
use crate::{Error, Result};

const OPERATION: &str = "bytes sink: write";

/// Writes each value's bytes as they are, with nothing between them: for a stream that is
/// already a file's content, such as PostgreSQL's `COPY … TO STDOUT`
/// ([`Database::copy_out`](crate::db::Database::copy_out)) or a body read in chunks.
///
/// The [`Written::rows`](crate::io::Written::rows) of such a write counts chunks.
///
/// # Examples
///
/// ```
/// use vortex_stream::io::Output;
/// use vortex_stream::sinks::BytesSink;
/// use vortex_stream::Pipeline;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.csv");
/// let chunks = [b"id,name\n".to_vec(), b"1,a\n".to_vec()];
/// let written = Pipeline::from_iter(chunks).write(BytesSink, Output::path(&path)).await?;
/// assert_eq!((written.rows, written.bytes), (2, 12));
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "id,name\n1,a\n");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct BytesSink;

/// The writer of a [`BytesSink`].
#[derive(Debug)]
pub struct BytesWriter {
    out: SinkWriter,
}

impl<T: AsRef<[u8]>> Format<T> for BytesSink {
    type Writer = BytesWriter;

    fn writer(self, out: SinkWriter) -> Result<BytesWriter> {
        Ok(BytesWriter { out })
    }
}

impl<T: AsRef<[u8]>> FormatWriter<T> for BytesWriter {
    fn flush(&mut self) -> Result<()> {
        std::io::Write::flush(&mut self.out).map_err(|e| Error::io(OPERATION, e))
    }

    fn write(&mut self, value: T) -> Result<()> {
        self.out
            .write_all(value.as_ref())
            .map_err(|e| Error::io(OPERATION, e))
    }

    fn finish(self) -> Result<SinkWriter> {
        Ok(self.out)
    }
}
