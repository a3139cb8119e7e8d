//! Excel workbooks, written while the rows arrive.
//!
//! The worksheet XML is written here rather than by `rust_xlsxwriter`: that crate, even in its
//! constant-memory mode, keeps each sheet in a temporary file and compresses it into the
//! workbook only after the last row, on one core, and nothing of the file leaves before then.
//! Here the sheet's XML goes in pieces to a thread that has them deflated on rayon's pool
//! (see `zip.rs`) while the next rows are encoded, so a workbook uses every core, needs no
//! temporary file, and its bytes leave as it is written. What a sheet needs is small: rows of
//! inline-string, number and boolean cells, and five short package parts.

mod zip;

use std::fmt;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use self::zip::ZipStream;
use super::{Format, FormatWriter};
use crate::core::Carried;
use crate::error::Position;
use crate::io::SinkWriter;
use crate::{Error, ErrorKind, Result};

const OPERATION: &str = "xlsx sink: write";

/// The most rows an Excel worksheet holds.
const SHEET_ROWS: u32 = 1_048_576;

/// The most columns an Excel worksheet holds (`A` to `XFD`).
const SHEET_COLUMNS: usize = 16_384;

/// The most characters an Excel cell holds.
const CELL_CHARS: usize = 32_767;

/// A sheet whose XML passes this size ends, and the next row starts a new sheet: no part of
/// the workbook then needs zip64's large-file records, which some readers cannot open (a zip
/// part holds at most 4 GiB), leaving a last row up to 1 GiB of room.
const SHEET_BYTES: u64 = 3 << 30;

/// The XML is handed to the compressing thread in pieces of about this size...
const PIECE: usize = 256 * 1024;

/// ...with at most this many waiting for it.
const PIECES_WAITING: usize = 2;

/// Excel keeps numbers as doubles, which hold every integer up to 2^53 exactly.
const EXACT_INTEGER: u64 = 1 << 53;

/// Writes rows as an Excel workbook (`.xlsx`) in constant memory: each row's cells are encoded
/// as it comes, and the sheet is deflated in pieces of 256 KiB on rayon's pool while the next
/// rows are encoded, so a workbook uses every core, its bytes leave as it is written, no
/// temporary file is made, and memory stays flat whatever the number of rows (at most 3 pieces
/// of XML waiting and 4 being deflated with their compressors' state, under 3 MiB, plus one
/// row).
/// A sheet holds at most 1,048,576 rows (Excel's limit); the next rows go to a new sheet, which
/// starts with the header again.
///
/// Rows are database [`Row`](crate::db::Row)s (the header is their column names),
/// `Vec<Value>`s or `Vec<String>`s (no header), or any type implementing [`XlsxRow`].
///
/// Nothing is changed on the way without saying so: a value a cell cannot hold fails the
/// write with an error naming the row (more than 32,767 characters in a text, more than 16,384
/// columns); integers beyond ±2^53, which Excel's numbers (doubles) would round, are written
/// as text holding their exact digits; a float that is not a number or infinite is written as
/// the text `NAN`, `INF` or `-INF`; bytes that are not UTF-8 text are written as `\x` and their
/// hex digits (PostgreSQL's text form); control characters are kept in Excel's `_xHHHH_`
/// escapes.
///
/// # Examples
///
/// ```
/// use vortex_stream::io::Output;
/// use vortex_stream::sinks::XlsxSink;
/// use vortex_stream::Pipeline;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("report.xlsx");
/// let rows = (1..=3).map(|i| vec![format!("row {i}"), (i * 10).to_string()]);
/// let written = Pipeline::from_iter(rows).write(XlsxSink::new(), Output::path(&path)).await?;
/// assert_eq!(written.rows, 3);
/// assert!(std::fs::read(&path).unwrap().starts_with(b"PK"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct XlsxSink {
    sheet_rows: u32,
    zip_level: u8,
}

impl Default for XlsxSink {
    fn default() -> Self {
        XlsxSink::new()
    }
}

impl XlsxSink {
    /// A workbook of full sheets.
    #[must_use]
    pub fn new() -> Self {
        XlsxSink {
            sheet_rows: SHEET_ROWS,
            zip_level: 6,
        }
    }

    /// The workbook's zip compression level, from 1 (fastest) to 9; 6 by default. Compressing
    /// is most of a large workbook's work: level 1 takes about a third of level 6's time for a
    /// file about 1.2 times larger.
    #[must_use]
    pub fn compression_level(mut self, level: u8) -> Self {
        self.zip_level = level.clamp(1, 9);
        self
    }

    /// Rows per sheet, the header included (at most, and by default, 1,048,576).
    #[must_use]
    pub fn sheet_rows(mut self, rows: u32) -> Self {
        self.sheet_rows = rows.clamp(2, SHEET_ROWS);
        self
    }
}

/// A row [`XlsxSink`] can write.
///
/// # Examples
///
/// ```
/// use vortex_stream::sinks::{XlsxCells, XlsxRow};
///
/// struct Sale {
///     item: String,
///     units: i64,
///     price: f64,
///     paid: bool,
/// }
///
/// impl XlsxRow for Sale {
///     fn header(&self) -> Option<Vec<String>> {
///         Some(["item", "units", "price", "paid"].map(String::from).to_vec())
///     }
///
///     fn write_cells(&self, cells: &mut XlsxCells<'_>) -> vortex_stream::Result<()> {
///         cells.text(&self.item)?;
///         cells.integer(self.units)?;
///         cells.number(self.price)?;
///         cells.boolean(self.paid)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("sales.xlsx");
/// use vortex_stream::io::Output;
/// use vortex_stream::sinks::XlsxSink;
/// use vortex_stream::Pipeline;
///
/// let sales = (1..=3).map(|i| Sale { item: format!("item {i}"), units: i, price: 2.5, paid: i % 2 == 0 });
/// let written = Pipeline::from_iter(sales).write(XlsxSink::new(), Output::path(&path)).await?;
/// assert_eq!(written.rows, 3);
/// # Ok(())
/// # }
/// ```
pub trait XlsxRow {
    /// The header of a sheet starting with this row, if the row knows its column names.
    fn header(&self) -> Option<Vec<String>>;

    /// Writes the row's cells, left to right.
    ///
    /// # Errors
    ///
    /// When a cell cannot hold a value (see [`XlsxCells`]); the row is then not written.
    fn write_cells(&self, cells: &mut XlsxCells<'_>) -> Result<()>;
}

/// The cells of one row of a worksheet, written left to right by [`XlsxRow::write_cells`].
pub struct XlsxCells<'a> {
    xml: &'a mut Vec<u8>,
    row: &'a str,
    column: usize,
}

impl fmt::Debug for XlsxCells<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XlsxCells")
            .field("row", &self.row)
            .field("column", &self.column)
            .finish_non_exhaustive()
    }
}

impl XlsxCells<'_> {
    /// A text cell.
    ///
    /// # Errors
    ///
    /// When the text is longer than a cell holds (32,767 characters), or the row already has
    /// 16,384 cells.
    pub fn text(&mut self, value: &str) -> Result<()> {
        if value.len() > CELL_CHARS {
            let chars = value.chars().count();
            if chars > CELL_CHARS {
                return Err(refused(format!(
                    "column {}: a text of {chars} characters; an Excel cell holds at most 32,767",
                    self.column + 1
                )));
            }
        }
        // Spaces at either end are lost by XML readers unless the element says to keep them.
        let keep_spaces = matches!(value.as_bytes().first(), Some(b' ' | b'\t' | b'\n' | b'\r'))
            || matches!(value.as_bytes().last(), Some(b' ' | b'\t' | b'\n' | b'\r'));
        self.start(if keep_spaces {
            b" t=\"inlineStr\"><is><t xml:space=\"preserve\">"
        } else {
            b" t=\"inlineStr\"><is><t>"
        })?;
        escape(self.xml, value);
        self.xml.extend_from_slice(b"</t></is></c>");
        Ok(())
    }

    /// A number cell. A value that is not a number, or is infinite, which a cell cannot hold
    /// as a number, is written as the text `NAN`, `INF` or `-INF`.
    ///
    /// # Errors
    ///
    /// When the row already has 16,384 cells.
    pub fn number(&mut self, value: f64) -> Result<()> {
        if !value.is_finite() {
            return self.text(if value.is_nan() {
                "NAN"
            } else if value > 0.0 {
                "INF"
            } else {
                "-INF"
            });
        }
        self.start(b"><v>")?;
        let mut digits = ryu::Buffer::new();
        let shortest = digits.format_finite(value);
        let shortest = shortest.strip_suffix(".0").unwrap_or(shortest);
        match shortest.split_once('e') {
            None => self.xml.extend_from_slice(shortest.as_bytes()),
            // Excel's own form of an exponent: `1E+21`, `1E-7`.
            Some((mantissa, exponent)) => {
                self.xml.extend_from_slice(mantissa.as_bytes());
                self.xml.push(b'E');
                if !exponent.starts_with('-') {
                    self.xml.push(b'+');
                }
                self.xml.extend_from_slice(exponent.as_bytes());
            }
        }
        self.xml.extend_from_slice(b"</v></c>");
        Ok(())
    }

    /// An integer cell. Beyond ±2^53 a number cell (a double) would round the value, so it is
    /// written as a text cell holding its exact digits.
    ///
    /// # Errors
    ///
    /// When the row already has 16,384 cells.
    pub fn integer(&mut self, value: i64) -> Result<()> {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(value);
        if value.unsigned_abs() > EXACT_INTEGER {
            return self.text(digits);
        }
        self.start(b"><v>")?;
        self.xml.extend_from_slice(digits.as_bytes());
        self.xml.extend_from_slice(b"</v></c>");
        Ok(())
    }

    /// A boolean cell.
    ///
    /// # Errors
    ///
    /// When the row already has 16,384 cells.
    pub fn boolean(&mut self, value: bool) -> Result<()> {
        self.start(b" t=\"b\"><v>")?;
        self.xml.push(if value { b'1' } else { b'0' });
        self.xml.extend_from_slice(b"</v></c>");
        Ok(())
    }

    /// An empty cell.
    ///
    /// # Errors
    ///
    /// When the row already has 16,384 cells.
    pub fn blank(&mut self) -> Result<()> {
        self.next_column()?;
        Ok(())
    }

    /// Takes the next column, or fails past the last one.
    fn next_column(&mut self) -> Result<usize> {
        let column = self.column;
        if column >= SHEET_COLUMNS {
            return Err(refused(format!(
                "more than {SHEET_COLUMNS} cells in a row, the most a worksheet holds"
            )));
        }
        self.column += 1;
        Ok(column)
    }

    /// Starts the next cell: `<c r="B7"` and then `rest`.
    fn start(&mut self, rest: &[u8]) -> Result<()> {
        let column = self.next_column()?;
        self.xml.extend_from_slice(b"<c r=\"");
        push_column_name(self.xml, column);
        self.xml.extend_from_slice(self.row.as_bytes());
        self.xml.push(b'"');
        self.xml.extend_from_slice(rest);
        Ok(())
    }
}

/// A value a cell cannot hold.
fn refused(message: String) -> Error {
    Error::new(ErrorKind::Validation, OPERATION).with_message(message)
}

/// `A` for column 0, `Z`, `AA`, ... `XFD` for 16,383.
fn push_column_name(xml: &mut Vec<u8>, column: usize) {
    let mut letters = [0u8; 3];
    let mut start = letters.len();
    let mut n = column + 1;
    while n > 0 && start > 0 {
        start -= 1;
        // Below 26: the cast keeps every bit.
        letters[start] = b'A' + u8::try_from((n - 1) % 26).unwrap_or(0);
        n = (n - 1) / 26;
    }
    xml.extend_from_slice(&letters[start..]);
}

/// Appends `text` as XML character data, the way Excel writes it: `&`, `<` and `>` as
/// entities; the control characters XML cannot carry (all below U+0020 but tab and line feed,
/// and a carriage return, which XML readers would turn into a line feed) and the non-characters
/// U+FFFE and U+FFFF as `_xHHHH_`; and a `_` that starts what could read as such an escape
/// (`_x` and four hex digits) as `_x005F_`, so that text which looks like one comes back as
/// written.
fn escape(xml: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = text.as_bytes();
    let mut plain = 0;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let (entity, len): (&[u8], usize) = match byte {
            b'&' => (b"&amp;", 1),
            b'<' => (b"&lt;", 1),
            b'>' => (b"&gt;", 1),
            b'_' if looks_escaped(&bytes[i..]) => (b"_x005F_", 1),
            0xEF if matches!(bytes.get(i + 1..i + 3), Some([0xBF, 0xBE | 0xBF])) => (
                if bytes[i + 2] == 0xBE {
                    b"_xFFFE_"
                } else {
                    b"_xFFFF_"
                },
                3,
            ),
            b'\t' | b'\n' => {
                i += 1;
                continue;
            }
            0..=0x1F => {
                xml.extend_from_slice(&bytes[plain..i]);
                xml.extend_from_slice(b"_x00");
                xml.push(HEX[usize::from(byte >> 4)]);
                xml.push(HEX[usize::from(byte & 0xF)]);
                xml.push(b'_');
                i += 1;
                plain = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        xml.extend_from_slice(&bytes[plain..i]);
        xml.extend_from_slice(entity);
        i += len;
        plain = i;
    }
    xml.extend_from_slice(&bytes[plain..]);
}

/// Whether `bytes` starts with `_xHHHH`, which with a `_` after it Excel reads as an escaped
/// character. The `_` after it need not be there yet: the escape of what follows may start
/// with one (`_x00a0` and then a NUL, written `_x0000_`, would read as U+00A0).
fn looks_escaped(bytes: &[u8]) -> bool {
    matches!(bytes, [b'_', b'x' | b'X', a, b, c, d, ..]
        if [a, b, c, d].iter().all(|h| h.is_ascii_hexdigit()))
}

impl XlsxRow for Vec<String> {
    fn header(&self) -> Option<Vec<String>> {
        None
    }

    fn write_cells(&self, cells: &mut XlsxCells<'_>) -> Result<()> {
        self.iter().try_for_each(|value| cells.text(value))
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod db_rows {
    use super::{XlsxCells, XlsxRow};
    use crate::value::{Row, Value};
    use crate::Result;

    fn write_value(cells: &mut XlsxCells<'_>, value: &Value) -> Result<()> {
        match value {
            Value::Null => cells.blank(),
            Value::Bool(b) => cells.boolean(*b),
            Value::Int(i) => cells.integer(*i),
            Value::Float(f) => cells.number(*f),
            Value::Text(s) => cells.text(s),
            // UTF-8 as its text, other bytes in hex, never replaced (see `Value::to_text`).
            Value::Bytes(_) => cells.text(&value.to_text()),
        }
    }

    impl XlsxRow for Vec<Value> {
        fn header(&self) -> Option<Vec<String>> {
            None
        }

        fn write_cells(&self, cells: &mut XlsxCells<'_>) -> Result<()> {
            self.iter().try_for_each(|value| write_value(cells, value))
        }
    }

    impl XlsxRow for Row {
        fn header(&self) -> Option<Vec<String>> {
            Some(self.columns().to_vec())
        }

        fn write_cells(&self, cells: &mut XlsxCells<'_>) -> Result<()> {
            self.values()
                .iter()
                .try_for_each(|value| write_value(cells, value))
        }
    }
}

/// What the encoding side hands the compressing thread.
enum Piece {
    /// Start the zip part of this name.
    Part(String),
    /// The next bytes of the current part.
    Bytes(Vec<u8>),
    /// Write the zip's directory and give the output back.
    Finish,
}

/// The thread compressing the workbook into the output.
struct Compressor {
    pieces: SyncSender<Piece>,
    thread: JoinHandle<Result<SinkWriter>>,
}

/// The writer of an [`XlsxSink`].
pub struct XlsxWriter {
    // The XML not yet handed on.
    xml: Vec<u8>,
    // `None` once finished, or once the thread stopped (its error was returned).
    compressor: Option<Compressor>,
    sheets: usize,
    // Rows in the current sheet, the header included.
    row: u32,
    sheet_rows: u32,
    // Bytes of the current sheet already handed on.
    sheet_bytes: u64,
    // Rows given to the writer, for an error's position.
    records: u64,
}

impl fmt::Debug for XlsxWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XlsxWriter")
            .field("sheets", &self.sheets)
            .field("row", &self.row)
            .finish_non_exhaustive()
    }
}

/// The compressing thread: each part as its pieces arrive, then the zip's directory. Ended
/// early (the workbook dropped, or an error), it writes no directory, so an unfinished
/// workbook never ends like a finished one.
fn compress(out: SinkWriter, level: u8, pieces: &Receiver<Piece>) -> Result<SinkWriter> {
    let mut zip = ZipStream::new(out, level);
    while let Ok(piece) = pieces.recv() {
        match piece {
            Piece::Part(name) => zip.start(name)?,
            Piece::Bytes(bytes) => zip.write(bytes)?,
            Piece::Finish => return zip.finish(),
        }
    }
    Err(Error::new(ErrorKind::Cancelled, OPERATION)
        .with_message("the workbook was dropped before its end"))
}

impl<T: XlsxRow> Format<T> for XlsxSink {
    type Writer = XlsxWriter;

    fn writer(self, out: SinkWriter) -> Result<XlsxWriter> {
        let (pieces, received) = sync_channel(PIECES_WAITING);
        let carried = Carried::here(tracing::Span::current());
        let level = self.zip_level;
        let thread = std::thread::Builder::new()
            .name("vortex-xlsx".into())
            .spawn(move || carried.run(|| compress(out, level, &received)))
            .map_err(|e| Error::io("xlsx sink: start the compressing thread", e))?;
        Ok(XlsxWriter {
            xml: Vec::with_capacity(PIECE + PIECE / 4),
            compressor: Some(Compressor { pieces, thread }),
            sheets: 0,
            row: 0,
            sheet_rows: self.sheet_rows,
            sheet_bytes: 0,
            records: 0,
        })
    }
}

const SHEET_START: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" \
xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">";

const SHEET_END: &[u8] = b"</sheetData><pageMargins left=\"0.7\" right=\"0.7\" top=\"0.75\" \
bottom=\"0.75\" header=\"0.3\" footer=\"0.3\"/></worksheet>";

impl XlsxWriter {
    /// Hands `piece` to the compressing thread; if the thread has stopped, its error.
    fn send(&mut self, piece: Piece) -> Result<()> {
        let Some(compressor) = &self.compressor else {
            return Err(Error::internal(
                OPERATION,
                "the workbook was already finished",
            ));
        };
        if compressor.pieces.send(piece).is_ok() {
            return Ok(());
        }
        Err(self.stopped())
    }

    /// Why the compressing thread stopped (it stops early only on an error).
    fn stopped(&mut self) -> Error {
        let Some(compressor) = self.compressor.take() else {
            return Error::internal(OPERATION, "the workbook was already finished");
        };
        drop(compressor.pieces);
        match compressor.thread.join() {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => Error::internal(OPERATION, "the compressing thread ended early"),
            Err(_) => Error::internal(OPERATION, "the compressing thread panicked"),
        }
    }

    /// Hands the XML written so far on to the compressing thread.
    fn hand_on(&mut self) -> Result<()> {
        if self.xml.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.xml, Vec::with_capacity(PIECE + PIECE / 4));
        self.sheet_bytes += piece.len() as u64;
        self.send(Piece::Bytes(piece))
    }

    /// Ends the current sheet, if any, and starts the next.
    fn next_sheet(&mut self) -> Result<()> {
        if self.sheets > 0 {
            self.xml.extend_from_slice(SHEET_END);
            self.hand_on()?;
        }
        self.sheets += 1;
        self.row = 0;
        self.sheet_bytes = 0;
        self.send(Piece::Part(format!(
            "xl/worksheets/sheet{}.xml",
            self.sheets
        )))?;
        self.xml.extend_from_slice(SHEET_START);
        self.xml.extend_from_slice(if self.sheets == 1 {
            b"<sheetViews><sheetView tabSelected=\"1\" workbookViewId=\"0\"/></sheetViews>"
        } else {
            b"<sheetViews><sheetView workbookViewId=\"0\"/></sheetViews>"
        });
        self.xml
            .extend_from_slice(b"<sheetFormatPr defaultRowHeight=\"15\"/><sheetData>");
        Ok(())
    }

    /// Writes one row of the current sheet; on an error nothing of it.
    fn write_row(&mut self, row: &impl XlsxRow) -> Result<()> {
        let start = self.xml.len();
        let mut number = itoa::Buffer::new();
        let number = number.format(self.row + 1);
        self.xml.extend_from_slice(b"<row r=\"");
        self.xml.extend_from_slice(number.as_bytes());
        self.xml.extend_from_slice(b"\">");
        let mut cells = XlsxCells {
            xml: &mut self.xml,
            row: number,
            column: 0,
        };
        if let Err(e) = row.write_cells(&mut cells) {
            self.xml.truncate(start);
            return Err(e);
        }
        self.xml.extend_from_slice(b"</row>");
        self.row += 1;
        Ok(())
    }

    /// The package parts that name the sheets: written last, once their number is known.
    fn package(&self) -> [(&'static str, String); 5] {
        let sheets = 1..=self.sheets;
        let content_types = format!(
            "{XML_DECLARATION}<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
<Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
<Default Extension=\"xml\" ContentType=\"application/xml\"/>\
<Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
<Override PartName=\"/xl/styles.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml\"/>\
{}</Types>",
            sheets.clone().map(|i| format!(
                "<Override PartName=\"/xl/worksheets/sheet{i}.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>"
            )).collect::<String>()
        );
        let root_rels = format!(
            "{XML_DECLARATION}<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"xl/workbook.xml\"/>\
</Relationships>"
        );
        let workbook = format!(
            "{XML_DECLARATION}<workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" \
xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">\
<bookViews><workbookView xWindow=\"240\" yWindow=\"15\" windowWidth=\"16095\" windowHeight=\"9660\"/></bookViews>\
<sheets>{}</sheets></workbook>",
            sheets
                .clone()
                .map(|i| format!("<sheet name=\"Sheet{i}\" sheetId=\"{i}\" r:id=\"rId{i}\"/>"))
                .collect::<String>()
        );
        let workbook_rels = format!(
            "{XML_DECLARATION}<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
{}<Relationship Id=\"rId{}\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles\" Target=\"styles.xml\"/>\
</Relationships>",
            sheets.map(|i| format!(
                "<Relationship Id=\"rId{i}\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet{i}.xml\"/>"
            )).collect::<String>(),
            self.sheets + 1
        );
        let styles = format!(
            "{XML_DECLARATION}<styleSheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">\
<fonts count=\"1\"><font><sz val=\"11\"/><name val=\"Calibri\"/><family val=\"2\"/></font></fonts>\
<fills count=\"2\"><fill><patternFill patternType=\"none\"/></fill><fill><patternFill patternType=\"gray125\"/></fill></fills>\
<borders count=\"1\"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
<cellStyleXfs count=\"1\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\"/></cellStyleXfs>\
<cellXfs count=\"1\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\"/></cellXfs>\
<cellStyles count=\"1\"><cellStyle name=\"Normal\" xfId=\"0\" builtinId=\"0\"/></cellStyles></styleSheet>"
        );
        [
            ("[Content_Types].xml", content_types),
            ("_rels/.rels", root_rels),
            ("xl/workbook.xml", workbook),
            ("xl/_rels/workbook.xml.rels", workbook_rels),
            ("xl/styles.xml", styles),
        ]
    }
}

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";

impl<T: XlsxRow> FormatWriter<T> for XlsxWriter {
    fn write(&mut self, value: T) -> Result<()> {
        self.records += 1;
        let record = self.records;
        let at_record = |e: Error| e.or_position(|| Position::new().with_record(record));
        if self.sheets == 0
            || self.row >= self.sheet_rows
            || self.sheet_bytes + self.xml.len() as u64 >= SHEET_BYTES
        {
            self.next_sheet()?;
            if let Some(header) = value.header() {
                self.write_row(&header).map_err(at_record)?;
            }
        }
        self.write_row(&value).map_err(at_record)?;
        if self.xml.len() >= PIECE {
            self.hand_on()?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<SinkWriter> {
        if self.sheets == 0 {
            self.next_sheet()?;
        }
        self.xml.extend_from_slice(SHEET_END);
        self.hand_on()?;
        for (name, xml) in self.package() {
            self.send(Piece::Part(name.to_owned()))?;
            self.send(Piece::Bytes(xml.into_bytes()))?;
        }
        self.send(Piece::Finish)?;
        let Some(compressor) = self.compressor.take() else {
            return Err(Error::internal(
                OPERATION,
                "the workbook was already finished",
            ));
        };
        drop(compressor.pieces);
        compressor.thread.join().unwrap_or_else(|_| {
            Err(Error::internal(
                OPERATION,
                "the compressing thread panicked",
            ))
        })
    }
}

impl Drop for XlsxWriter {
    /// Stops the compressing thread (it sees the pieces end) and waits for it: the output is
    /// dropped unfinished, and no thread outlives the writer.
    fn drop(&mut self) {
        if let Some(compressor) = self.compressor.take() {
            drop(compressor.pieces);
            // Its result is the "dropped" error, or the output's own, which nobody awaits.
            let _ = compressor.thread.join();
        }
    }
}
