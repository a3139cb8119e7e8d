//! JSON Lines: one JSON value per line.

use std::num::NonZeroUsize;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::blocking::{default_decode_threads, from_input_parallel, ParallelDecode, DEFAULT_BATCH};
use super::lines::DEFAULT_MAX_LINE_LEN;
use crate::io::lines::{LineAt, LineReader, RAW_PREFIX};
use crate::io::Input;
use crate::{Error, ErrorKind, Pipeline, Position, Result};

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
/// Lines are read and split on one thread and decoded on others
/// ([`decode_threads`](JsonlSource::decode_threads)), in order. Memory: a few batches of lines
/// and of values (1024 each by default, and at most 1 MiB of lines) per decoding thread.
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
    threads: NonZeroUsize,
}

impl JsonlSource {
    /// Values of `input`, with the default limits.
    pub fn new(input: Input) -> Self {
        JsonlSource {
            input,
            max_line_len: DEFAULT_MAX_LINE_LEN,
            batch: DEFAULT_BATCH,
            threads: default_decode_threads(),
        }
    }

    /// The longest line accepted, in bytes.
    #[must_use]
    pub fn max_line_len(mut self, max: usize) -> Self {
        self.max_line_len = max;
        self
    }

    /// Lines decoded as one batch.
    #[must_use]
    pub fn batch(mut self, batch: NonZeroUsize) -> Self {
        self.batch = batch;
        self
    }

    /// Threads decoding JSON at once (the machine's cores, at most 4, by default). One more
    /// thread reads and splits the lines.
    #[must_use]
    pub fn decode_threads(mut self, threads: NonZeroUsize) -> Self {
        self.threads = threads;
        self
    }

    /// The pipeline of values, each decoded as `T`.
    pub fn deserialize<T>(self) -> Pipeline<JsonlDecode<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let (max, batch) = (self.max_line_len, self.batch.get());
        from_input_parallel(
            self.input,
            OPERATION,
            self.threads,
            move |opened| {
                let mut reader = LineReader::new(opened.reader, max, opened.name, OPERATION);
                let mut record = 0u64;
                std::iter::from_fn(move || read_batch(&mut reader, &mut record, batch))
            },
            decode_batch::<T> as fn(LineBatch) -> Vec<Result<T>>,
        )
    }

    /// The pipeline of values as `serde_json::Value`s.
    pub fn values(self) -> Pipeline<JsonlDecode<serde_json::Value>> {
        self.deserialize()
    }
}

/// Stream for [`JsonlSource::deserialize`]: lines split on one thread, decoded on others.
pub type JsonlDecode<T> = ParallelDecode<LineBatch, T, fn(LineBatch) -> Vec<Result<T>>>;

/// Lines read and split, waiting to be decoded: one buffer, and where each line is in it.
///
/// A line's position is kept as plain numbers, the source name once per batch: a `Position`
/// per line would clone the name's `Arc` on the reading thread and drop it on a decoding one,
/// two atomic operations on one shared counter per line.
#[derive(Debug)]
pub struct LineBatch {
    source: Arc<str>,
    bytes: Vec<u8>,
    lines: Vec<RawLine>,
}

#[derive(Debug)]
enum RawLine {
    Line {
        start: usize,
        end: usize,
        at: LineAt,
        record: u64,
    },
    Failed(Error),
}

/// Reads up to `batch` non-blank lines (or 1 MiB of them).
fn read_batch(
    reader: &mut LineReader,
    record: &mut u64,
    batch: usize,
) -> Option<Result<LineBatch>> {
    let mut out = LineBatch {
        source: reader.source(),
        bytes: Vec::new(),
        lines: Vec::new(),
    };
    while out.lines.len() < batch && out.bytes.len() < BATCH_BYTES {
        let Some(next) = reader.next_line() else {
            break;
        };
        match next {
            Ok((at, line)) => {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let start = out.bytes.len();
                out.bytes.extend_from_slice(line);
                out.lines.push(RawLine::Line {
                    start,
                    end: out.bytes.len(),
                    at,
                    record: *record,
                });
                *record += 1;
            }
            Err(err) => {
                *record += 1;
                out.lines.push(RawLine::Failed(err));
            }
        }
    }
    (!out.lines.is_empty()).then_some(Ok(out))
}

/// A batch stops growing past this many bytes, so huge lines do not make huge batches.
const BATCH_BYTES: usize = 1024 * 1024;

fn decode_batch<T: DeserializeOwned>(batch: LineBatch) -> Vec<Result<T>> {
    let LineBatch {
        source,
        bytes,
        lines,
    } = batch;
    lines
        .into_iter()
        .map(|line| match line {
            RawLine::Failed(err) => Err(err),
            RawLine::Line {
                start,
                end,
                at,
                record,
            } => {
                let line = &bytes[start..end];
                serde_json::from_slice::<T>(line).map_err(|e| {
                    let column = e.column().max(1);
                    let raw = line[..line.len().min(RAW_PREFIX)].to_vec();
                    let message = serde_message(&e);
                    let position = Position::new()
                        .with_source(Arc::clone(&source))
                        .with_record(record)
                        .with_line(at.line)
                        .with_byte(at.byte + column as u64 - 1);
                    Error::new(ErrorKind::Decode, OPERATION)
                        .with_position(position)
                        .with_message(format!("{message} (column {column})"))
                        .with_source(e)
                        .with_raw(raw)
                })
            }
        })
        .collect()
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
