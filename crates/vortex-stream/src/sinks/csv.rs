use csv::{ByteRecord, StringRecord};
use serde::Serialize;

use super::{Format, FormatWriter};
use crate::io::SinkWriter;
use crate::{Error, ErrorKind, Result};

const OPERATION: &str = "csv sink: write";

/// Writes serde values as CSV rows; for a struct, the header row (from its field names) is
/// written once, before the first row.
///
/// # Examples
///
/// ```
/// use serde::Serialize;
/// use vortex_stream::io::Output;
/// use vortex_stream::sinks::CsvSink;
/// use vortex_stream::Pipeline;
///
/// #[derive(Serialize)]
/// struct Row {
///     id: u32,
///     email: &'static str,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.csv");
/// let rows = [Row { id: 1, email: "a@x.org" }, Row { id: 2, email: "b,c@x.org" }];
/// let written = Pipeline::from_iter(rows).write(CsvSink::new(), Output::path(&path)).await?;
/// assert_eq!(written.rows, 2);
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "id,email\n1,a@x.org\n2,\"b,c@x.org\"\n");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CsvSink {
    delimiter: u8,
    headers: bool,
}

impl Default for CsvSink {
    fn default() -> Self {
        CsvSink::new()
    }
}

impl CsvSink {
    /// Comma-separated, with a header row for structs.
    #[must_use]
    pub fn new() -> Self {
        CsvSink {
            delimiter: b',',
            headers: true,
        }
    }

    /// The field delimiter.
    #[must_use]
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }

    /// Whether to write a header row for structs.
    #[must_use]
    pub fn headers(mut self, headers: bool) -> Self {
        self.headers = headers;
        self
    }

    fn open(self, out: SinkWriter) -> csv::Writer<SinkWriter> {
        csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .has_headers(self.headers)
            .buffer_capacity(64 * 1024)
            .from_writer(out)
    }
}

/// Writes raw records ([`StringRecord`], [`ByteRecord`], `Vec<String>`, query
/// [`Row`](crate::db::Row)s) as CSV rows, as they are. Query rows get a header row of their
/// column names first (unless [`headers(false)`](CsvRecords::headers)); for the others, a
/// header is whatever the first record is.
#[derive(Clone, Copy, Debug, Default)]
pub struct CsvRecords {
    sink: Option<CsvSink>,
}

impl CsvRecords {
    /// Comma-separated.
    #[must_use]
    pub fn new() -> Self {
        CsvRecords::default()
    }

    /// The field delimiter.
    #[must_use]
    pub fn delimiter(self, delimiter: u8) -> Self {
        CsvRecords {
            sink: Some(self.sink.unwrap_or_default().delimiter(delimiter)),
        }
    }

    /// Whether records that carry their column names (query rows) get a header row: yes
    /// unless turned off.
    #[must_use]
    pub fn headers(self, headers: bool) -> Self {
        CsvRecords {
            sink: Some(self.sink.unwrap_or_default().headers(headers)),
        }
    }
}

/// The writer of a [`CsvSink`] or [`CsvRecords`].
#[derive(Debug)]
pub struct CsvWriter {
    out: csv::Writer<SinkWriter>,
}

fn csv_error(e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(OPERATION, io),
        csv::ErrorKind::Serialize(message) => {
            Error::new(ErrorKind::User, "csv sink: encode").with_message(message)
        }
        other => Error::new(ErrorKind::Io, OPERATION).with_message(format!("{other:?}")),
    }
}

impl CsvWriter {
    fn into_output(self) -> Result<SinkWriter> {
        self.out
            .into_inner()
            .map_err(|e| Error::io(OPERATION, e.into_error()))
    }
}

impl<T: Serialize> Format<T> for CsvSink {
    type Writer = CsvWriter;

    fn writer(self, out: SinkWriter) -> Result<CsvWriter> {
        Ok(CsvWriter {
            out: self.open(out),
        })
    }
}

impl CsvWriter {
    /// Hands the rows written so far on to the output.
    fn flush_rows(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(OPERATION, e))
    }
}

impl<T: Serialize> FormatWriter<T> for CsvWriter {
    fn flush(&mut self) -> Result<()> {
        self.flush_rows()
    }

    fn write(&mut self, value: T) -> Result<()> {
        self.out.serialize(value).map_err(csv_error)
    }

    fn finish(self) -> Result<SinkWriter> {
        self.into_output()
    }
}

/// A raw CSV record [`CsvRecords`] can write.
pub trait RawRecord {
    /// Writes the record as one row.
    ///
    /// # Errors
    ///
    /// When the row cannot be written.
    fn write_to(&self, out: &mut csv::Writer<SinkWriter>) -> csv::Result<()>;

    /// Writes the header row that goes before the first record, for records that carry
    /// their column names (query [`Row`](crate::db::Row)s do); called once, with the first
    /// record, unless [`CsvRecords::headers`] turned headers off. Writes nothing by default.
    ///
    /// # Errors
    ///
    /// When the row cannot be written.
    fn write_header(&self, out: &mut csv::Writer<SinkWriter>) -> csv::Result<()> {
        let _ = out;
        Ok(())
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
impl RawRecord for crate::value::Row {
    fn write_to(&self, out: &mut csv::Writer<SinkWriter>) -> csv::Result<()> {
        use crate::value::Value;
        // Numbers are formatted on the stack: no allocation per value.
        let mut digits = [0u8; 40];
        for value in self.values() {
            match value {
                Value::Int(i) => out.write_field(on_stack(&mut digits, format_args!("{i}")))?,
                Value::Float(f) => out.write_field(on_stack(&mut digits, format_args!("{f}")))?,
                other => out.write_field(other.to_text().as_bytes())?,
            }
        }
        out.write_record(None::<&[u8]>)
    }

    fn write_header(&self, out: &mut csv::Writer<SinkWriter>) -> csv::Result<()> {
        out.write_record(self.columns())
    }
}

/// `args` written into `buf`: the bytes written (a number's text always fits in 40).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
fn on_stack<'a>(buf: &'a mut [u8; 40], args: std::fmt::Arguments<'_>) -> &'a [u8] {
    use std::io::Write as _;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = cursor.write_fmt(args);
    let len = usize::try_from(cursor.position()).unwrap_or(0);
    &buf[..len]
}

impl RawRecord for StringRecord {
    fn write_to(&self, out: &mut csv::Writer<SinkWriter>) -> csv::Result<()> {
        out.write_record(self)
    }
}

impl RawRecord for ByteRecord {
    fn write_to(&self, out: &mut csv::Writer<SinkWriter>) -> csv::Result<()> {
        out.write_byte_record(self)
    }
}

impl<F: AsRef<[u8]>> RawRecord for Vec<F> {
    fn write_to(&self, out: &mut csv::Writer<SinkWriter>) -> csv::Result<()> {
        out.write_record(self)
    }
}

/// The writer of [`CsvRecords`]: a [`CsvWriter`] that writes raw records.
#[derive(Debug)]
pub struct CsvRecordsWriter {
    writer: CsvWriter,
    header: bool,
}

impl<T: RawRecord> Format<T> for CsvRecords {
    type Writer = CsvRecordsWriter;

    fn writer(self, out: SinkWriter) -> Result<CsvRecordsWriter> {
        let sink = self.sink.unwrap_or_default();
        Ok(CsvRecordsWriter {
            header: sink.headers,
            writer: CsvWriter {
                out: sink.headers(false).open(out),
            },
        })
    }
}

impl<T: RawRecord> FormatWriter<T> for CsvRecordsWriter {
    fn flush(&mut self) -> Result<()> {
        self.writer.flush_rows()
    }

    fn write(&mut self, value: T) -> Result<()> {
        if std::mem::take(&mut self.header) {
            value
                .write_header(&mut self.writer.out)
                .map_err(csv_error)?;
        }
        value.write_to(&mut self.writer.out).map_err(csv_error)
    }

    fn finish(self) -> Result<SinkWriter> {
        self.writer.into_output()
    }
}
