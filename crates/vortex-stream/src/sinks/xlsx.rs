use std::fmt;

use rust_xlsxwriter::{Workbook, Worksheet, XlsxError};

use super::{Format, FormatWriter};
use crate::io::SinkWriter;
use crate::{Error, ErrorKind, Result};

const OPERATION: &str = "xlsx sink: write";

/// The most rows an Excel worksheet holds.
const SHEET_ROWS: u32 = 1_048_576;

/// Writes rows as an Excel workbook in `rust_xlsxwriter`'s constant-memory mode: each row goes
/// to a temporary file as soon as the next begins, so memory stays flat whatever the number of
/// rows. A sheet holds at most 1,048,576 rows (Excel's limit); the next rows go to a new sheet,
/// which starts with the header again.
///
/// Rows are database [`Row`](crate::db::Row)s (the header is their column names),
/// `Vec<Value>`s or `Vec<String>`s (no header).
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

    /// The workbook's zip compression level, from 1 (fastest) to 9; 6 by default. Most of a
    /// large workbook's time goes into compressing its worksheets after the last row: level 1
    /// takes about half the time of level 6 for a file about 1.5 times larger.
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
pub trait XlsxRow {
    /// The header of a sheet starting with this row, if the row knows its column names.
    fn header(&self) -> Option<Vec<String>>;

    /// Writes the row's cells into `row` of `sheet`.
    ///
    /// # Errors
    ///
    /// When the worksheet refuses a value.
    fn write_cells(&self, sheet: &mut Worksheet, row: u32) -> std::result::Result<(), XlsxError>;
}

impl XlsxRow for Vec<String> {
    fn header(&self) -> Option<Vec<String>> {
        None
    }

    fn write_cells(&self, sheet: &mut Worksheet, row: u32) -> std::result::Result<(), XlsxError> {
        for (col, value) in (0u16..).zip(self) {
            sheet.write_string(row, col, value)?;
        }
        Ok(())
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod db_rows {
    use rust_xlsxwriter::{Worksheet, XlsxError};

    use super::XlsxRow;
    use crate::value::{Row, Value};

    fn write_value(
        sheet: &mut Worksheet,
        row: u32,
        col: u16,
        value: &Value,
    ) -> Result<(), XlsxError> {
        match value {
            Value::Null => {}
            Value::Bool(b) => {
                sheet.write_boolean(row, col, *b)?;
            }
            // Excel keeps numbers as doubles; integers past 2^53 lose precision there anyway.
            #[allow(clippy::cast_precision_loss)]
            Value::Int(i) => {
                sheet.write_number(row, col, *i as f64)?;
            }
            Value::Float(f) => {
                sheet.write_number(row, col, *f)?;
            }
            Value::Text(s) => {
                sheet.write_string(row, col, s)?;
            }
            Value::Bytes(b) => {
                sheet.write_string(row, col, String::from_utf8_lossy(b))?;
            }
        }
        Ok(())
    }

    impl XlsxRow for Vec<Value> {
        fn header(&self) -> Option<Vec<String>> {
            None
        }

        fn write_cells(&self, sheet: &mut Worksheet, row: u32) -> Result<(), XlsxError> {
            for (col, value) in (0u16..).zip(self) {
                write_value(sheet, row, col, value)?;
            }
            Ok(())
        }
    }

    impl XlsxRow for Row {
        fn header(&self) -> Option<Vec<String>> {
            Some(self.columns().to_vec())
        }

        fn write_cells(&self, sheet: &mut Worksheet, row: u32) -> Result<(), XlsxError> {
            for (col, value) in (0u16..).zip(self.values()) {
                write_value(sheet, row, col, value)?;
            }
            Ok(())
        }
    }
}

/// The writer of an [`XlsxSink`].
pub struct XlsxWriter {
    workbook: Workbook,
    out: SinkWriter,
    sheets: usize,
    // The next row to write in the current sheet; 0 before the first sheet.
    row: u32,
    sheet_rows: u32,
}

impl fmt::Debug for XlsxWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XlsxWriter")
            .field("sheets", &self.sheets)
            .field("row", &self.row)
            .finish_non_exhaustive()
    }
}

fn xlsx_error(e: XlsxError) -> Error {
    match e {
        XlsxError::IoError(io) => Error::io(OPERATION, io),
        other => Error::new(ErrorKind::User, OPERATION)
            .with_message(other.to_string())
            .with_source(other),
    }
}

impl<T: XlsxRow> Format<T> for XlsxSink {
    type Writer = XlsxWriter;

    fn writer(self, out: SinkWriter) -> Result<XlsxWriter> {
        let mut workbook = Workbook::new();
        workbook.set_zip_compression_level(self.zip_level);
        Ok(XlsxWriter {
            workbook,
            out,
            sheets: 0,
            row: 0,
            sheet_rows: self.sheet_rows,
        })
    }
}

impl<T: XlsxRow> FormatWriter<T> for XlsxWriter {
    fn write(&mut self, value: T) -> Result<()> {
        if self.sheets == 0 || self.row >= self.sheet_rows {
            self.workbook
                .add_worksheet_with_constant_memory()
                .map_err(xlsx_error)?;
            self.sheets += 1;
            self.row = 0;
            if let Some(header) = value.header() {
                let sheet = self
                    .workbook
                    .worksheet_from_index(self.sheets - 1)
                    .map_err(xlsx_error)?;
                header.write_cells(sheet, 0).map_err(xlsx_error)?;
                self.row = 1;
            }
        }
        let sheet = self
            .workbook
            .worksheet_from_index(self.sheets - 1)
            .map_err(xlsx_error)?;
        value.write_cells(sheet, self.row).map_err(xlsx_error)?;
        self.row += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<SinkWriter> {
        if self.sheets == 0 {
            self.workbook.add_worksheet();
        }
        self.workbook
            .save_to_writer(&mut self.out)
            .map_err(xlsx_error)?;
        Ok(self.out)
    }
}
