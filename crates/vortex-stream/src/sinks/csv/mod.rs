use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use csv::{ByteRecord, StringRecord};
use serde::Serialize;

mod quick;

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

    fn open<W: std::io::Write>(self, out: W) -> csv::Writer<W> {
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

/// The writer of a [`CsvSink`].
///
/// The header row and the first row are written by csv's serializer, and so is any row the
/// quick writer leaves to it; the others are written by hand (see `quick`), byte for byte as
/// csv writes them, and checked for the field count csv requires of every row as it does. The
/// two take turns on one output, in the order of the rows.
#[derive(Debug)]
pub struct CsvWriter {
    csv: csv::Writer<Shared>,
    out: Shared,
    delimiter: u8,
    // Whether the first row was written yet.
    started: bool,
    // The field count csv took from the first row, while rows are written quickly: `None`
    // before the first row, and for good once a row's shape is one the quick writer leaves
    // to csv.
    fields: Option<usize>,
    // Rows written quickly, not yet handed on to the output.
    rows: Vec<u8>,
    // Whether csv's buffer may hold rows not yet handed on.
    csv_holds: bool,
}

/// Rows written quickly that wait before they are handed on to the output at once. The buffer
/// keeps up to twice this from one batch of rows to the next: one that a long row grew past it
/// is let go of once that row is handed on.
const QUICK_BUFFER: usize = 64 * 1024;

/// The output, shared by csv's writer and the quick one. Its `flush` hands csv's buffer on,
/// and no further: the output itself is flushed by the sink.
#[derive(Clone)]
struct Shared(Arc<Mutex<SinkWriter>>);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, SinkWriter> {
        // A panic while writing leaves the output as any failed write does.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lock().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.lock().write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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

impl<T: Serialize> Format<T> for CsvSink {
    type Writer = CsvWriter;

    fn writer(self, out: SinkWriter) -> Result<CsvWriter> {
        let out = Shared(Arc::new(Mutex::new(out)));
        Ok(CsvWriter {
            csv: self.open(out.clone()),
            out,
            delimiter: self.delimiter,
            started: false,
            fields: None,
            rows: Vec::new(),
            csv_holds: false,
        })
    }
}

impl CsvWriter {
    /// Hands on to the output what csv's buffer holds, then the quick rows: csv takes a row
    /// only once the quick rows before it are handed on, so this is their order.
    fn hand_on(&mut self) -> Result<()> {
        if std::mem::take(&mut self.csv_holds) {
            self.csv.flush().map_err(|e| Error::io(OPERATION, e))?;
        }
        if !self.rows.is_empty() {
            self.out
                .write_all(&self.rows)
                .map_err(|e| Error::io(OPERATION, e))?;
            self.rows.clear();
            if self.rows.capacity() > 2 * QUICK_BUFFER {
                self.rows = Vec::new();
            }
        }
        Ok(())
    }

    /// Writes `value` quickly, if it can be: true if it was.
    fn quickly<T: Serialize>(&mut self, value: &T) -> Result<bool> {
        let Some(fields) = self.fields else {
            return Ok(false);
        };
        // Behind any rows csv holds: `hand_on` hands those on first.
        let start = self.rows.len();
        match quick::row(value, &mut self.rows, self.delimiter) {
            Ok(written) if written == fields => {
                if self.rows.len() >= QUICK_BUFFER {
                    self.hand_on()?;
                }
                Ok(true)
            }
            // A row of another length: csv's error says so.
            Ok(_) => {
                self.rows.truncate(start);
                Ok(false)
            }
            Err(quick::Unsupported) => {
                self.fields = None;
                Ok(false)
            }
        }
    }
}

impl<T: Serialize> FormatWriter<T> for CsvWriter {
    fn flush(&mut self) -> Result<()> {
        self.hand_on()?;
        self.out.lock().flush().map_err(|e| Error::io(OPERATION, e))
    }

    fn write(&mut self, value: T) -> Result<()> {
        if self.quickly(&value)? {
            return Ok(());
        }
        self.hand_on()?;
        self.csv.serialize(&value).map_err(csv_error)?;
        self.csv_holds = true;
        if !std::mem::replace(&mut self.started, true) && quick::handles(self.delimiter) {
            // The first row, with the header before it, is csv's, and sets the field count
            // of every row; the rows after it of the same shape are written quickly.
            let start = self.rows.len();
            self.fields = quick::row(&value, &mut self.rows, self.delimiter).ok();
            self.rows.truncate(start);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<SinkWriter> {
        self.hand_on()?;
        let CsvWriter { csv, out, .. } = self;
        drop(
            csv.into_inner()
                .map_err(|e| Error::io(OPERATION, e.into_error()))?,
        );
        let out = Arc::try_unwrap(out.0)
            .map_err(|_| Error::internal(OPERATION, "the output is still shared"))?;
        Ok(out.into_inner().unwrap_or_else(PoisonError::into_inner))
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

/// The writer of [`CsvRecords`], which writes raw records.
#[derive(Debug)]
pub struct CsvRecordsWriter {
    out: csv::Writer<SinkWriter>,
    header: bool,
}

impl<T: RawRecord> Format<T> for CsvRecords {
    type Writer = CsvRecordsWriter;

    fn writer(self, out: SinkWriter) -> Result<CsvRecordsWriter> {
        let sink = self.sink.unwrap_or_default();
        Ok(CsvRecordsWriter {
            header: sink.headers,
            out: sink.headers(false).open(out),
        })
    }
}

impl<T: RawRecord> FormatWriter<T> for CsvRecordsWriter {
    fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(OPERATION, e))
    }

    fn write(&mut self, value: T) -> Result<()> {
        if std::mem::take(&mut self.header) {
            value.write_header(&mut self.out).map_err(csv_error)?;
        }
        value.write_to(&mut self.out).map_err(csv_error)
    }

    fn finish(self) -> Result<SinkWriter> {
        self.out
            .into_inner()
            .map_err(|e| Error::io(OPERATION, e.into_error()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{CsvSink, QUICK_BUFFER};
    use crate::io::Output;
    use crate::sinks::{Format, FormatWriter};

    #[test]
    fn one_long_row_does_not_keep_its_size_held() {
        let opened = Output::writer(std::io::sink()).open("test").unwrap();
        let mut writer =
            <CsvSink as Format<(u32, String)>>::writer(CsvSink::new(), opened.writer).unwrap();
        // The first row is csv's; the next ones are written quickly.
        writer.write((1, "first".to_owned())).unwrap();
        writer.write((2, "x".repeat(QUICK_BUFFER * 4))).unwrap();
        assert!(writer.rows.capacity() <= 2 * QUICK_BUFFER);
        // Short rows keep their buffer from one batch to the next: more than a batch of them
        // is handed on, and the buffer is still there, no larger than a batch needs.
        for id in 3..20_000 {
            writer.write((id, "short".to_owned())).unwrap();
        }
        let kept = writer.rows.capacity();
        assert!((QUICK_BUFFER..=2 * QUICK_BUFFER).contains(&kept), "{kept}");
    }
}
