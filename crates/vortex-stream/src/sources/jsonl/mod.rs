//! JSON Lines: one JSON value per line.

use std::num::NonZeroUsize;
use std::sync::Arc;

use core::pin::Pin;
use core::task::{Context, Poll};
use std::panic::AssertUnwindSafe;

use futures_core::{FusedStream, Stream};
use serde::de::DeserializeOwned;

use super::blocking::{default_decode_threads, from_input_parallel, ParallelDecode};
use super::lines::DEFAULT_MAX_LINE_LEN;
use super::planned::{self, Planned};
use crate::core::Size;
use crate::error::panic_message;
use crate::fusion::{Fusable, FusedSource};
use crate::io::lines::{LineAt, LineReader, RAW_PREFIX};
use crate::io::Input;
use crate::parallel::{as_par_map, workers, InOrder};
use crate::{Error, ErrorKind, Located, Pipeline, Position, Result};

mod plain;

const OPERATION: &str = "jsonl source: decode";
/// The operation an input that cannot be opened is reported under.
const OPEN: &str = "jsonl source: open";

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
/// A line with no escape and no control character in it (most are) is decoded in place by a
/// deserializer of this crate that hands serde exactly what `serde_json` would, about twice as
/// fast; any other line, and any line that does not decode, goes to `serde_json`, whose value
/// or error is the one that counts.
///
/// Lines are read and split on one thread and decoded on others
/// ([`decode_threads`](JsonlSource::decode_threads)), in order. Memory: a few batches of lines
/// and of values (2048 each by default, and at most 1 MiB of lines, or one line longer than
/// that) per decoding thread, `2 × decode_threads + 4` batches at most; the buffers of the
/// lines are reused from batch to batch (but for those grown by a huge line).
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
            batch: DEFAULT_LINES,
            threads: default_decode_threads(),
        }
    }

    /// The longest line accepted, in bytes.
    #[must_use]
    pub fn max_line_len(mut self, max: usize) -> Self {
        self.max_line_len = max;
        self
    }

    /// Lines decoded as one batch (2048 by default).
    #[must_use]
    pub fn batch(mut self, batch: impl Size) -> Self {
        let batch = batch.non_zero("batch");
        self.batch = batch;
        self
    }

    /// Threads decoding JSON at once (the machine's cores, at most 4, by default). One more
    /// thread reads and splits the lines.
    #[must_use]
    pub fn decode_threads(mut self, threads: impl Size) -> Self {
        let threads = threads.non_zero("decode_threads");
        self.threads = threads;
        self
    }

    /// The pipeline of values, each decoded as `T`.
    ///
    /// The pipeline is [`Fusable`]: a [`filter`](Pipeline::filter), [`map`](Pipeline::map) or
    /// [`filter_map`](Pipeline::filter_map) right after it runs on the decoding threads (see
    /// [`fusion`](crate::fusion)).
    pub fn deserialize<T>(self) -> Pipeline<JsonlDecode<T>, Fusable>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.deserialize_filter_map(Some)
    }

    /// [`deserialize`](JsonlSource::deserialize) and then
    /// [`filter_map`](Pipeline::filter_map) in one, with `f` run on the decoding threads,
    /// right after each value is decoded: the values it drops are dropped there and never
    /// handed to the pipeline, and its work is spread over the cores with the decoding. What
    /// comes out is in input order; a line that fails to decode comes out as its error, which
    /// `f` does not see.
    ///
    /// The plain chain, [`deserialize`](JsonlSource::deserialize) then `filter_map(f)`, runs
    /// `f` on the decoding threads too, but the batches take turns at it (so that an `FnMut`
    /// sees the values in order); this `f` is `Fn + Sync` and runs on every decoding thread at
    /// once. Worth it when each value takes real work to turn into what the pipeline wants;
    /// `f` must not block.
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
    ///     r#"{"level":"error","latency_ms":340}"#, "\n",
    /// ));
    /// let errors: Vec<u32> = JsonlSource::new(input)
    ///     .deserialize_filter_map(|log: Log| (log.level == "error").then_some(log.latency_ms))
    ///     .collect()
    ///     .await?;
    /// assert_eq!(errors, [340]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn deserialize_filter_map<T, U, F>(self, f: F) -> Pipeline<JsonlDecode<U>, Fusable>
    where
        T: DeserializeOwned,
        U: Send + 'static,
        F: Fn(T) -> Option<U> + Send + Sync + 'static,
    {
        self.decode_lines(move |value: T, _: &LineInfo<'_>| f(value))
    }

    /// [`deserialize`](JsonlSource::deserialize), each value with the position of its line
    /// (record index among the non-blank lines, line number, and the byte where the line
    /// starts), so that a later check can reject it with [`Located::reject`] naming where it
    /// is.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::io::Input;
    /// use vortex_stream::sources::JsonlSource;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let lines = JsonlSource::new(Input::bytes("1\n\n  2\n"))
    ///     .deserialize_located::<u32>()
    ///     .map(|n| (n.position().line(), n.into_value()))
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(lines, [(Some(1), 1), (Some(3), 2)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn deserialize_located<T>(self) -> Pipeline<JsonlDecode<Located<T>>, Fusable>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.decode_lines(|value: T, line: &LineInfo<'_>| {
            Some(Located::new(value, line.position()))
        })
    }

    /// The pipeline of lines decoded as `T` and passed through `f` on the decoding threads;
    /// nothing starts before the first poll, so that fused stages can still join `f`.
    fn decode_lines<T, U, F>(self, f: F) -> Pipeline<JsonlDecode<U>, Fusable>
    where
        T: DeserializeOwned,
        U: Send + 'static,
        F: Fn(T, &LineInfo<'_>) -> Option<U> + Send + Sync + 'static,
    {
        // Enough buffers for every batch that can be in flight at once: read, queued, decoding.
        let pool = Arc::new(Pool::new(self.threads.get() * 2 + 4));
        let refill = Arc::clone(&pool);
        let plan = Plan {
            source: self,
            pool: refill,
            decode: Box::new(move |lines| decode_batch(lines, &pool, &f)),
        };
        Pipeline::fusable(JsonlDecode {
            inner: Planned::new(plan),
        })
    }

    /// The pipeline of values as `serde_json::Value`s.
    ///
    /// A `Value` tree takes far more memory than its text: up to about 64 times (a line of
    /// `[{},{},…]`, measured), so a 16 MiB line may take 1 GiB while it is decoded. For input
    /// you do not trust, lower [`max_line_len`](JsonlSource::max_line_len), or decode into your
    /// own types or `Box<serde_json::value::RawValue>` (the value kept as its text).
    pub fn values(self) -> Pipeline<JsonlDecode<serde_json::Value>, Fusable> {
        self.deserialize()
    }
}

/// Stream for [`JsonlSource::deserialize`]: lines split on one thread, decoded on others.
#[must_use = "streams do nothing unless polled"]
pub struct JsonlDecode<T: Send + 'static> {
    inner: Planned<Plan<T>>,
}

/// A decode not started yet: the source, and how a batch of lines becomes values.
struct Plan<U> {
    source: JsonlSource,
    pool: Arc<Pool>,
    decode: DecodeBatch<U>,
}

impl<U: Send + 'static> Plan<U> {
    /// The plan with `f` run on each value after what it did, on the decoding threads, the
    /// batches taking turns at it in input order.
    fn then<V, F>(self, f: F) -> Plan<V>
    where
        V: Send + 'static,
        F: FnMut(U) -> Option<V> + Send + 'static,
    {
        let Plan {
            source,
            pool,
            decode,
        } = self;
        let f = InOrder::new(f);
        Plan {
            source,
            pool,
            decode: Box::new(move |batch: LineBatch| {
                let seq = batch.seq;
                f.run_after(
                    seq,
                    || decode(batch),
                    |f, values| {
                        values
                            .into_iter()
                            .filter_map(|item| match item {
                                Ok(value) => f(value).map(Ok),
                                Err(e) => Some(Err(e)),
                            })
                            .collect()
                    },
                )
            }),
        }
    }

    /// The plan with `f` run on each value after what it did, on every decoding thread at
    /// once; a panic in `f` is an error in the value's place, as in `par_map`.
    fn then_parallel<V, F>(self, f: F) -> Plan<V>
    where
        V: Send + 'static,
        F: Fn(U) -> V + Send + Sync + 'static,
    {
        let Plan {
            source,
            pool,
            decode,
        } = self;
        let each = as_par_map(f);
        Plan {
            source,
            pool,
            decode: Box::new(move |batch: LineBatch| {
                decode(batch)
                    .into_iter()
                    .map(|item| item.and_then(&each))
                    .collect()
            }),
        }
    }
}

impl<U: Send + 'static> planned::Plan for Plan<U> {
    type Value = U;
    type Running = ParallelDecode<LineBatch, U, DecodeBatch<U>>;

    /// The batches are decoded by a `par_map` of `decode_threads`.
    fn decoders(&self) -> usize {
        workers(self.source.threads)
    }

    fn start(self) -> Self::Running {
        let Plan {
            source,
            pool,
            decode,
        } = self;
        let (max, batch) = (source.max_line_len, source.batch.get());
        // A panic (in a fused closure, or a type's `Deserialize`) loses its batch's values: a
        // fatal error, which ends the stream, never one that a policy could skip as a record.
        let decode: DecodeBatch<U> = Box::new(move |lines: LineBatch| {
            let (name, first) = (Arc::clone(&lines.source), lines.first);
            std::panic::catch_unwind(AssertUnwindSafe(|| decode(lines))).unwrap_or_else(|panic| {
                let message = format!(
                    "a closure panicked on the batch of lines from here; none of them is read: {}",
                    panic_message(&*panic)
                );
                let mut at = Position::new().with_source(name);
                if let Some((record, line)) = first {
                    at = at
                        .with_record(record)
                        .with_line(line.line)
                        .with_byte(line.byte);
                }
                vec![Err(Error::internal(OPERATION, message)
                    .with_position(at)
                    .fatal())]
            })
        });
        let running = from_input_parallel(
            source.input,
            OPEN,
            source.threads,
            move |opened| {
                let mut reader = LineReader::new(opened.reader, max, opened.name, OPERATION);
                let (mut record, mut seq) = (0u64, 0u64);
                std::iter::from_fn(move || {
                    let mut next = read_batch(&mut reader, &mut record, batch, &pool);
                    if let Some(Ok(lines)) = &mut next {
                        lines.seq = seq;
                        seq += 1;
                        lines.first = lines.lines.first().and_then(|line| match line {
                            RawLine::Line { at, record, .. } => Some((*record, *at)),
                            RawLine::Failed(_) => None,
                        });
                    }
                    next
                })
            },
            decode,
        );
        running.into_inner()
    }
}

impl<T: Send + 'static> std::fmt::Debug for JsonlDecode<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlDecode")
            .field("state", &self.inner.state())
            .finish()
    }
}

impl<T: Send + 'static> Stream for JsonlDecode<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T: Send + 'static> FusedStream for JsonlDecode<T> {
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}

impl<T: Send + 'static> crate::fusion::private::Sealed for JsonlDecode<T> {}

impl<T: Send + 'static> FusedSource for JsonlDecode<T> {
    type Value = T;
    type With<U: Send + 'static> = JsonlDecode<U>;

    fn then<U, F>(self, f: F) -> JsonlDecode<U>
    where
        U: Send + 'static,
        F: FnMut(T) -> Option<U> + Send + 'static,
    {
        JsonlDecode {
            inner: self.inner.then(f, Plan::then),
        }
    }

    fn then_parallel<U, F>(self, limit: NonZeroUsize, ordered: bool, f: F) -> JsonlDecode<U>
    where
        U: Send + 'static,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        JsonlDecode {
            inner: self
                .inner
                .then_parallel(limit, ordered, f, Plan::then_parallel),
        }
    }
}

/// Decodes a batch of lines (and hands its buffers back to be filled again).
pub type DecodeBatch<T> = Box<dyn Fn(LineBatch) -> Vec<Result<T>> + Send + Sync>;

/// The buffers of decoded batches, handed back from the decoding threads to the reading one:
/// filled, emptied and filled again, they are allocated once (not once per batch on one
/// thread and freed on another, which costs the allocator more than the copy, and leaves it
/// holding freed memory).
#[derive(Debug)]
struct Pool {
    free: std::sync::Mutex<Vec<(Vec<u8>, Vec<RawLine>)>>,
    most: usize,
}

impl Pool {
    fn new(most: usize) -> Self {
        Pool {
            free: std::sync::Mutex::new(Vec::with_capacity(most)),
            most,
        }
    }

    fn take(&self) -> (Vec<u8>, Vec<RawLine>) {
        let taken = self.free.lock().ok().and_then(|mut free| free.pop());
        taken.unwrap_or_default()
    }

    fn give(&self, mut bytes: Vec<u8>, mut lines: Vec<RawLine>) {
        // A buffer grown by a huge line is not kept: held in the pool, a few 16 MiB lines
        // would keep their memory for the rest of the input.
        if bytes.capacity() > 4 * BATCH_BYTES {
            return;
        }
        bytes.clear();
        lines.clear();
        if let Ok(mut free) = self.free.lock() {
            if free.len() < self.most {
                free.push((bytes, lines));
            }
        }
    }
}

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
    // The batch's place among the input's batches, from 0: fused stages take them in order.
    seq: u64,
    // The record number and place of its first line, to name where a panic lost the batch.
    first: Option<(u64, LineAt)>,
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

/// Reads up to `batch` non-blank lines (or 1 MiB of them); `None` at the end of the input.
fn read_batch(
    reader: &mut LineReader,
    record: &mut u64,
    batch: usize,
    pool: &Pool,
) -> Option<Result<LineBatch>> {
    let (bytes, lines) = pool.take();
    let mut out = LineBatch {
        source: reader.source(),
        bytes,
        lines,
        seq: 0,
        first: None,
    };
    loop {
        let mut ended = false;
        while out.lines.len() < batch && out.bytes.len() < BATCH_BYTES {
            // The lines already read ahead, all at once; then one line at a time (the rest of
            // a line only partly read ahead, or a line over the limit, or the end of the input).
            let lines = &mut out.lines;
            let most = batch - lines.len();
            let read = reader.append_buffered(&mut out.bytes, most, |range, at, text| {
                keep_line(lines, record, range, at, text);
            });
            let next = match read {
                Ok(0) => {
                    // Straight into the batch: the line is not copied anywhere first.
                    let start = out.bytes.len();
                    match reader.append_line(&mut out.bytes) {
                        None => {
                            ended = true;
                            break;
                        }
                        Some(next) => next.map(|at| (start, at)),
                    }
                }
                Ok(_) => continue,
                Err(err) => Err(err),
            };
            match next {
                Ok((start, at)) => {
                    let end = out.bytes.len();
                    keep_line(&mut out.lines, record, start..end, at, &out.bytes[start..]);
                }
                Err(err) => {
                    *record += 1;
                    out.lines.push(RawLine::Failed(err));
                    // Handed over at once: reading on (past the rest of an endless line, say)
                    // must not hold the error back.
                    return Some(Ok(out));
                }
            }
        }
        if !out.lines.is_empty() {
            return Some(Ok(out));
        }
        if ended {
            pool.give(out.bytes, out.lines);
            return None;
        }
        // Blank lines only, as many bytes as a batch holds: not the end of the input.
        out.bytes.clear();
    }
}

/// Adds the line at `range` of the batch, numbered `record`, unless it is blank (its bytes
/// stay in the batch, unread).
fn keep_line(
    lines: &mut Vec<RawLine>,
    record: &mut u64,
    range: std::ops::Range<usize>,
    at: LineAt,
    text: &[u8],
) {
    if !text.iter().all(u8::is_ascii_whitespace) {
        lines.push(RawLine::Line {
            start: range.start,
            end: range.end,
            at,
            record: *record,
        });
        *record += 1;
    }
}

/// Lines in a batch by default: each batch crosses threads twice (to a decoding thread and
/// back), and fewer, larger batches cost fewer thread switches (2048 against 1024: half the
/// switches, about 5% less CPU for short lines, 2 MiB more memory).
const DEFAULT_LINES: NonZeroUsize = match NonZeroUsize::new(2048) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// A batch stops growing past this many bytes, so huge lines do not make huge batches.
const BATCH_BYTES: usize = 1024 * 1024;

/// Where a line decoded in a batch is.
struct LineInfo<'a> {
    source: &'a Arc<str>,
    at: LineAt,
    record: u64,
}

impl LineInfo<'_> {
    fn position(&self) -> Position {
        Position::new()
            .with_source(Arc::clone(self.source))
            .with_record(self.record)
            .with_line(self.at.line)
            .with_byte(self.at.byte)
    }
}

/// Decodes each line of `batch` and passes it through `f`; errors pass as they are.
fn decode_batch<T, U>(
    batch: LineBatch,
    pool: &Pool,
    f: &impl Fn(T, &LineInfo<'_>) -> Option<U>,
) -> Vec<Result<U>>
where
    T: DeserializeOwned,
{
    let LineBatch {
        source,
        bytes,
        mut lines,
        seq: _,
        first: _,
    } = batch;
    // Checked as UTF-8 once, so that serde_json does not check every string of every line
    // again; a line that is not text on its own (or a batch that is not) is read as bytes,
    // and serde_json says where it goes wrong.
    let text = std::str::from_utf8(&bytes).ok();
    let mut plain = plain::Lines::new();
    let decoded = lines
        .drain(..)
        .filter_map(|line| match line {
            RawLine::Failed(err) => Some(Err(err)),
            RawLine::Line {
                start,
                end,
                at,
                record,
            } => {
                let line = &bytes[start..end];
                match text.and_then(|text| text.get(start..end)) {
                    // Most lines are plain (no escapes): read in place, or else by serde_json.
                    Some(text) => plain.decode::<T>(text),
                    None => serde_json::from_slice::<T>(line),
                }
                .map_or_else(
                    |e| Some(Err(decode_error(&source, line, at, record, e))),
                    |value| {
                        let info = LineInfo {
                            source: &source,
                            at,
                            record,
                        };
                        f(value, &info).map(Ok)
                    },
                )
            }
        })
        .collect();
    pool.give(bytes, lines);
    decoded
}

/// The error for a line `serde_json` could not decode.
fn decode_error(
    source: &Arc<str>,
    line: &[u8],
    at: LineAt,
    record: u64,
    e: serde_json::Error,
) -> Error {
    let column = e.column().max(1);
    let message = serde_message(&e);
    let position = Position::new()
        .with_source(Arc::clone(source))
        .with_record(record)
        .with_line(at.line)
        .with_byte(at.byte + column as u64 - 1);
    Error::new(ErrorKind::Decode, OPERATION)
        .with_position(position)
        .with_message(format!("{message} (column {column})"))
        .with_retold_source(e)
        .with_raw_prefix(line, RAW_PREFIX)
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
