//! Lines of UTF-8 text.

use std::num::NonZeroUsize;

use super::blocking::{from_input, DEFAULT_BATCH};
use super::Blocking;
use crate::core::Size;
use crate::io::lines::{LineReader, RAW_PREFIX};
use crate::io::Input;
use crate::{Error, ErrorKind, Pipeline};

/// The default longest line: 16 MiB.
pub const DEFAULT_MAX_LINE_LEN: usize = 16 * 1024 * 1024;

const OPERATION: &str = "lines source";
/// The operation an input that cannot be opened is reported under.
const OPEN: &str = "lines source: open";

/// A source of the lines of an [`Input`], as `String`s without their endings (LF or CRLF).
///
/// A line longer than [`max_line_len`](LinesSource::max_line_len) (16 MiB by default) is a
/// [`Decode`](ErrorKind::Decode) error naming its line and byte offset; at most that many
/// bytes of it are ever held, and reading goes on with the next line, so a
/// [`skip`](crate::ErrorPolicy::skip) policy can pass over it. Invalid UTF-8 is a `Decode`
/// error too, unless [`lossy`](LinesSource::lossy) replaces it.
///
/// Memory: about four batches of lines (1024 lines each by default) plus one line being read.
///
/// # Examples
///
/// ```
/// use vortex_stream::io::Input;
/// use vortex_stream::sources::LinesSource;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// let lines = LinesSource::new(Input::bytes("one\r\ntwo\nthree")).lines();
/// assert_eq!(lines.collect::<Vec<_>>().await?, ["one", "two", "three"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct LinesSource {
    input: Input,
    max_line_len: usize,
    lossy: bool,
    batch: NonZeroUsize,
}

impl LinesSource {
    /// Lines of `input`, with the default limits.
    pub fn new(input: Input) -> Self {
        LinesSource {
            input,
            max_line_len: DEFAULT_MAX_LINE_LEN,
            lossy: false,
            batch: DEFAULT_BATCH,
        }
    }

    /// The longest line accepted, in bytes, without its ending.
    #[must_use]
    pub fn max_line_len(mut self, max: usize) -> Self {
        self.max_line_len = max;
        self
    }

    /// Replace invalid UTF-8 with U+FFFD instead of reporting it.
    #[must_use]
    pub fn lossy(mut self, lossy: bool) -> Self {
        self.lossy = lossy;
        self
    }

    /// Lines handed from the reading thread at once.
    #[must_use]
    pub fn batch(mut self, batch: impl Size) -> Self {
        let batch = batch.non_zero("batch");
        self.batch = batch;
        self
    }

    /// The pipeline of lines.
    pub fn lines(self) -> Pipeline<Blocking<String>> {
        let (max, lossy) = (self.max_line_len, self.lossy);
        from_input(self.input, OPEN, self.batch, move |opened| {
            let mut reader = LineReader::new(opened.reader, max, opened.name, OPERATION);
            std::iter::from_fn(move || {
                let (at, line) = match reader.next_line()? {
                    Ok(line) => line,
                    Err(err) => return Some(Err(err)),
                };
                let record = at.line - 1;
                Some(match std::str::from_utf8(line) {
                    Ok(text) => Ok(text.to_owned()),
                    Err(_) if lossy => Ok(String::from_utf8_lossy(line).into_owned()),
                    Err(e) => {
                        let error = Error::new(ErrorKind::Decode, OPERATION)
                            .with_raw_prefix(line, RAW_PREFIX)
                            .with_message(format!(
                                "invalid UTF-8 at byte {} of the line",
                                e.valid_up_to()
                            ))
                            .with_source(e);
                        Err(error.with_position(reader.position(at, Some(record))))
                    }
                })
            })
        })
    }
}
