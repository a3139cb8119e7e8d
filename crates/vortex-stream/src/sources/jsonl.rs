//! JSON Lines: one JSON value per line.

use std::marker::PhantomData;
use std::num::NonZeroUsize;

use serde::de::DeserializeOwned;

use super::blocking::{from_input, DEFAULT_BATCH};
use super::lines::DEFAULT_MAX_LINE_LEN;
use super::Blocking;
use crate::io::lines::{LineReader, RAW_PREFIX};
use crate::io::Input;
use crate::{Error, ErrorKind, Pipeline};

const OPERATION: &str = "jsonl source: decode";

/// A source of the JSON values of a JSON Lines [`Input`], decoded with serde.
///
/// Blank lines are skipped. A line that does not decode (bad JSON, trailing garbage, a wrong
/// type for the target) is a [`Decode`](ErrorKind::Decode) error naming the record, the line
/// and the byte offset of the fault, with `serde_json`'s error as its source and the line as its
/// raw text; the next line still decodes, so a [`skip`](crate::ErrorPolicy::skip) or
/// dead-letter policy keeps going. Lines are capped at
/// [`max_line_len`](JsonlSource::max_line_len) bytes (16 MiB by default), as in
/// [`LinesSource`](super::LinesSource).
///
/// Memory: about three batches of values (1024 each by default) plus one line being read.
///
/// # Examples
///
/// ```
/// use serde::Deserialize;
/// use vortex_stream::io::Input;
/// use vortex_stream::sources::JsonlSource;
///
/// #[derive(Deserialize)]
/// struct Log {
///     level: String,
///     latency_ms: u32,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// let input = Input::bytes(concat!(
///     r#"{"level":"info","latency_ms":12}"#, "\n",
///     "\n",
///     r#"{"level":"error","latency_ms":340}"#, "\n",
/// ));
/// let slow_errors = JsonlSource::new(input)
///     .deserialize::<Log>()
///     .filter(|log| log.level == "error")
///     .fold(0, |sum, log| sum + log.latency_ms)
///     .await?;
/// assert_eq!(slow_errors, 340);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct JsonlSource {
    input: Input,
    max_line_len: usize,
    batch: NonZeroUsize,
}

impl JsonlSource {
    /// Values of `input`, with the default limits.
    pub fn new(input: Input) -> Self {
        JsonlSource {
            input,
            max_line_len: DEFAULT_MAX_LINE_LEN,
            batch: DEFAULT_BATCH,
        }
    }

    /// The longest line accepted, in bytes.
    #[must_use]
    pub fn max_line_len(mut self, max: usize) -> Self {
        self.max_line_len = max;
        self
    }

    /// Values handed from the decoding thread at once.
    #[must_use]
    pub fn batch(mut self, batch: NonZeroUsize) -> Self {
        self.batch = batch;
        self
    }

    /// The pipeline of values, each decoded as `T`.
    pub fn deserialize<T>(self) -> Pipeline<Blocking<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let max = self.max_line_len;
        from_input(self.input, OPERATION, self.batch, move |opened| Decoder::<
            T,
        > {
            reader: LineReader::new(opened.reader, max, opened.name, OPERATION),
            record: 0,
            target: PhantomData,
        })
    }

    /// The pipeline of values as `serde_json::Value`s.
    pub fn values(self) -> Pipeline<Blocking<serde_json::Value>> {
        self.deserialize()
    }
}

struct Decoder<T> {
    reader: LineReader,
    record: u64,
    target: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Iterator for Decoder<T> {
    type Item = crate::Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (at, line) = match self.reader.next_line()? {
                Ok(line) => line,
                Err(err) => {
                    self.record += 1;
                    return Some(Err(err));
                }
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let record = self.record;
            self.record += 1;
            return Some(match serde_json::from_slice::<T>(line) {
                Ok(value) => Ok(value),
                Err(e) => {
                    let column = e.column().max(1);
                    let raw = line[..line.len().min(RAW_PREFIX)].to_vec();
                    let message = serde_message(&e);
                    let position = self
                        .reader
                        .position(at, Some(record))
                        .with_byte(at.byte + column as u64 - 1);
                    Err(Error::new(ErrorKind::Decode, OPERATION)
                        .with_position(position)
                        .with_message(format!("{message} (column {column})"))
                        .with_source(e)
                        .with_raw(raw))
                }
            });
        }
    }
}

/// `serde_json`'s message without its " at line L column C" suffix: within one line, the line
/// is always 1 and the position is given by the error's own fields.
fn serde_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}
