//! CSV: raw records or serde records.

use std::io::{BufRead, Read};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use csv::{ByteRecord, StringRecord};
use serde::de::DeserializeOwned;

mod chunks;

use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

use super::blocking::{default_decode_threads, from_input, DEFAULT_BATCH};
use super::{Blocking, FlattenBatches};
use crate::io::lines::RAW_PREFIX;
use crate::io::{Input, OpenedInput};
use crate::parallel::{ParMap, Parallelism};
use crate::{Error, ErrorKind, Pipeline, Position, Result};

/// The default longest record: 16 MiB.
pub const DEFAULT_MAX_RECORD_LEN: usize = 16 * 1024 * 1024;

const OPERATION: &str = "csv source: decode";
/// The CSV parser's read buffer; a record may run this far past the cap before it is stopped.
const PARSE_BUFFER: usize = 64 * 1024;
/// The default size of the runs of records parsed on one thread at a time.
const DEFAULT_CHUNK: usize = 256 * 1024;

/// How the first row of a CSV input is treated.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Headers {
    /// The first row names the columns; serde records are matched to it by name.
    #[default]
    Use,
    /// The first row is skipped; serde records are matched by position.
    Skip,
    /// There is no header row; serde records are matched by position.
    None,
}

/// A source of the records of a CSV [`Input`]: raw [`StringRecord`]s or serde records.
///
/// Strict by default: a row with a different number of fields than the first is a
/// [`Decode`](ErrorKind::Decode) error ([`flexible`](CsvSource::flexible) allows ragged rows).
/// Every decode error names the source, the record (counted from 0 after the header), the line
/// and the byte offset, keeps the parser's (or serde's) error as its source where there is
/// one and the record as its raw text; the next record still decodes. A UTF-8 byte-order mark is dropped. A record longer
/// than [`max_record_len`](CsvSource::max_record_len) (16 MiB by default) is a `Decode` error,
/// and ends the source, since the parser cannot find the next record boundary without reading
/// the whole field. Quoted fields may hold delimiters, quotes (doubled) and newlines.
///
/// Serde records ([`deserialize`](CsvSource::deserialize)) are parsed and decoded on several
/// threads at once ([`decode_threads`](CsvSource::decode_threads)): the reading thread cuts the
/// input into runs of whole records ([`chunk_size`](CsvSource::chunk_size), 256 KiB by default),
/// following the quoting exactly so it never cuts inside a quoted field, and each run is parsed
/// and decoded on a worker, the record buffer reused; records come out in input order. Raw
/// [`records`](CsvSource::records) are parsed on one blocking thread and handed over in
/// batches (1024 by default).
///
/// Memory: serde records hold at most twice `decode_threads` runs with their records (being
/// parsed, or parsed and waiting their turn), two more runs waiting for a worker and the one
/// being read; a record longer than a run makes that run longer, up to the cap.
/// Raw records hold about four batches plus one record and the parser's 64 KiB buffer.
///
/// # Examples
///
/// ```
/// use serde::Deserialize;
/// use vortex_stream::io::Input;
/// use vortex_stream::sources::CsvSource;
///
/// #[derive(Debug, Deserialize, PartialEq)]
/// struct Order {
///     id: u64,
///     status: String,
///     amount: f64,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// let input = Input::bytes("id,status,amount\n1,active,9.5\n2,shipped,3\n");
/// let active = CsvSource::new(input)
///     .deserialize::<Order>()
///     .filter(|o| o.status == "active")
///     .collect::<Vec<_>>()
///     .await?;
/// assert_eq!(active, [Order { id: 1, status: "active".into(), amount: 9.5 }]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct CsvSource {
    input: Input,
    options: Options,
}

#[derive(Clone, Copy, Debug)]
struct Options {
    delimiter: u8,
    quote: u8,
    comment: Option<u8>,
    trim: bool,
    flexible: bool,
    headers: Headers,
    max_record_len: usize,
    strict_quotes: bool,
    allow_nul: bool,
    batch: NonZeroUsize,
    threads: NonZeroUsize,
    chunk: NonZeroUsize,
}

impl CsvSource {
    /// Records of `input`: comma-separated, double-quoted, with a header row.
    pub fn new(input: Input) -> Self {
        CsvSource {
            input,
            options: Options {
                delimiter: b',',
                quote: b'"',
                comment: None,
                trim: false,
                flexible: false,
                headers: Headers::Use,
                max_record_len: DEFAULT_MAX_RECORD_LEN,
                strict_quotes: true,
                allow_nul: false,
                batch: DEFAULT_BATCH,
                threads: default_decode_threads(),
                chunk: NonZeroUsize::new(DEFAULT_CHUNK).unwrap_or(NonZeroUsize::MIN),
            },
        }
    }

    /// The field delimiter (`,` by default; `b'\t'` for TSV).
    #[must_use]
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.options.delimiter = delimiter;
        self
    }

    /// The quote character (`"` by default).
    #[must_use]
    pub fn quote(mut self, quote: u8) -> Self {
        self.options.quote = quote;
        self
    }

    /// Lines starting with this byte are comments and skipped.
    #[must_use]
    pub fn comment(mut self, comment: Option<u8>) -> Self {
        self.options.comment = comment;
        self
    }

    /// Trim whitespace around fields and headers.
    #[must_use]
    pub fn trim(mut self, trim: bool) -> Self {
        self.options.trim = trim;
        self
    }

    /// Accept rows with differing numbers of fields.
    #[must_use]
    pub fn flexible(mut self, flexible: bool) -> Self {
        self.options.flexible = flexible;
        self
    }

    /// How to treat the first row.
    #[must_use]
    pub fn headers(mut self, headers: Headers) -> Self {
        self.options.headers = headers;
        self
    }

    /// The longest record accepted, in bytes.
    #[must_use]
    pub fn max_record_len(mut self, max: usize) -> Self {
        self.options.max_record_len = max;
        self
    }

    /// Whether badly quoted records are errors (the default): a quote inside a field that
    /// did not start with one, or a quoted field still open at the end of the input. With
    /// `false`, they are read the lenient way, quotes taken as they come.
    #[must_use]
    pub fn strict_quotes(mut self, strict: bool) -> Self {
        self.options.strict_quotes = strict;
        self
    }

    /// Whether NUL bytes are accepted in fields. By default they are errors: in a text file
    /// they most often mean UTF-16 or binary input.
    #[must_use]
    pub fn allow_nul(mut self, allow: bool) -> Self {
        self.options.allow_nul = allow;
        self
    }

    /// Records handed at once from a thread that parses alone: raw
    /// [`records`](CsvSource::records), and serde records when one thread decodes them.
    #[must_use]
    pub fn batch(mut self, batch: NonZeroUsize) -> Self {
        self.options.batch = batch;
        self
    }

    /// Threads parsing and decoding serde records at once (the machine's cores, at most 4, by
    /// default). Raw [`records`](CsvSource::records) are parsed on one thread.
    #[must_use]
    pub fn decode_threads(mut self, threads: NonZeroUsize) -> Self {
        self.options.threads = threads;
        self
    }

    /// About how many bytes of input a thread parses at a time for serde records: the input is
    /// cut at the first record end past this size (256 KiB by default).
    #[must_use]
    pub fn chunk_size(mut self, bytes: NonZeroUsize) -> Self {
        self.options.chunk = bytes;
        self
    }

    /// The pipeline of raw records, fields as text. (The header row is not a record.)
    pub fn records(self) -> Pipeline<Blocking<StringRecord>> {
        let options = self.options;
        from_input(self.input, OPERATION, options.batch, move |opened| {
            let mut decoder = Decoder::new(opened, options);
            std::iter::from_fn(move || {
                let (read, at) = decoder.next_raw()?;
                Some(read.and_then(|()| {
                    let raw = &decoder.record;
                    match StringRecord::from_byte_record(raw.clone()) {
                        Ok(text) => Ok(text),
                        Err(e) => {
                            let field = e.utf8_error().field();
                            Err(decoder.error(at, raw, format!("invalid UTF-8 in field {field}")))
                        }
                    }
                }))
            })
        })
    }

    /// The pipeline of records decoded as `T` with serde, matched to the header row by name
    /// (or by position, without [`Headers::Use`]).
    ///
    /// Runs of records are parsed and decoded on [`decode_threads`](CsvSource::decode_threads)
    /// threads at once, in order. With one decoding thread (one core, or `decode_threads(1)`)
    /// the input is parsed and decoded on the reading thread itself: handing runs to another
    /// thread would only add work. So it is with a [`comment`](CsvSource::comment) byte set: a
    /// comment line may hold any quote, so runs cannot be cut ahead of the parser.
    pub fn deserialize<T>(self) -> Pipeline<CsvDecode<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let options = self.options;
        let inner = if options.comment.is_some() || options.threads.get() == 1 {
            Inner::OneThread(
                from_input(self.input, OPERATION, options.batch, move |opened| {
                    let mut decoder = Decoder::new(opened, options);
                    std::iter::from_fn(move || decoder.next_as::<T>(None))
                })
                .into_inner(),
            )
        } else {
            let chunk = options.chunk.get();
            let in_flight = options
                .threads
                .saturating_mul(NonZeroUsize::MIN.saturating_add(1));
            let runs = from_input(self.input, OPERATION, NonZeroUsize::MIN, move |opened| {
                chunks::Splitter::new(opened, options, chunk)
            })
            .par_map(
                // A run queued for each worker: one finishing never waits for the next to be
                // pulled. The window is no larger, so no more runs are held than run at once.
                Parallelism::new(in_flight).window(in_flight),
                chunks::decode::<T> as fn(chunks::Chunk) -> chunks::Parsed<T>,
            );
            Inner::Chunks(FlattenBatches::new(chunks::Rebase::new(runs.into_inner())))
        };
        Pipeline::new(CsvDecode { inner })
    }
}

/// Stream for [`CsvSource::deserialize`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct CsvDecode<T> {
    inner: Inner<T>,
}

type Runs<T> = ParMap<
    Blocking<chunks::Chunk>,
    fn(chunks::Chunk) -> chunks::Parsed<T>,
    chunks::Chunk,
    chunks::Parsed<T>,
>;

#[derive(Debug)]
enum Inner<T> {
    Chunks(FlattenBatches<chunks::Rebase<Runs<T>, T>, T>),
    OneThread(Blocking<T>),
}

impl<T> Unpin for CsvDecode<T> {}

impl<T: Send + 'static> Stream for CsvDecode<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        match &mut self.inner {
            // Both parts are `Unpin`: the adapters are, and so is `Blocking`.
            Inner::Chunks(stream) => Pin::new(stream).poll_next(cx),
            Inner::OneThread(stream) => Pin::new(stream).poll_next(cx),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            Inner::Chunks(stream) => stream.size_hint(),
            Inner::OneThread(stream) => stream.size_hint(),
        }
    }
}

impl<T: Send + 'static> FusedStream for CsvDecode<T> {
    fn is_terminated(&self) -> bool {
        match &self.inner {
            Inner::Chunks(stream) => stream.is_terminated(),
            Inner::OneThread(stream) => stream.is_terminated(),
        }
    }
}

/// Where a record starts.
#[derive(Clone, Copy, Debug)]
struct RecordAt {
    record: u64,
    line: u64,
    byte: u64,
}

/// Reads byte records into a reused buffer, turning parser errors into positioned errors.
struct Decoder {
    reader: csv::Reader<Capped>,
    record: ByteRecord,
    headers: Option<ByteRecord>,
    limit: Arc<AtomicU64>,
    options: Options,
    source: Arc<str>,
    index: u64,
    done: bool,
    // The field count every record must have, checked here rather than by the parser (a run
    // parsed on its own does not start with the record that sets it).
    expected: Option<usize>,
    // Whether the input may hold a quote or a NUL at all: when it is known not to, the checks
    // of each record's bytes are skipped.
    quotes: bool,
    nuls: bool,
}

impl Decoder {
    fn new(opened: OpenedInput, options: Options) -> Self {
        Decoder::with(Some(opened.reader), Vec::new(), opened.name, options)
    }

    /// A decoder of input held whole in memory: its bytes are checked in place, not copied.
    fn in_memory(bytes: Vec<u8>, name: Arc<str>, options: Options) -> Self {
        Decoder::with(None, bytes, name, options)
    }

    fn with(
        inner: Option<Box<dyn BufRead + Send>>,
        held: Vec<u8>,
        source: Arc<str>,
        options: Options,
    ) -> Self {
        let limit = Arc::new(AtomicU64::new(limit_after(0, options.max_record_len)));
        let reader = reader_builder(&options)
            .flexible(options.flexible)
            .has_headers(options.headers != Headers::None)
            .buffer_capacity(PARSE_BUFFER)
            .from_reader(Capped {
                inner,
                delivered: 0,
                limit: Arc::clone(&limit),
                tail: held,
                tail_start: 0,
            });
        Decoder {
            reader,
            record: ByteRecord::new(),
            headers: None,
            limit,
            options,
            source,
            index: 0,
            done: false,
            expected: None,
            quotes: true,
            nuls: true,
        }
    }

    /// The next record decoded as `T` with serde, matched by name to `headers`, or else to the
    /// header row this decoder read (with [`Headers::Use`]); `None` at the end.
    fn next_as<T: DeserializeOwned>(&mut self, headers: Option<&ByteRecord>) -> Option<Result<T>> {
        let (read, at) = self.next_raw()?;
        Some(read.and_then(|()| {
            let own = self
                .headers
                .as_ref()
                .filter(|_| self.options.headers == Headers::Use);
            self.record
                .deserialize::<T>(headers.or(own))
                .map_err(|e| self.deserialize_error(at, e))
        }))
    }

    /// The decode error for a record serde could not decode.
    fn deserialize_error(&self, at: RecordAt, e: csv::Error) -> Error {
        let message = match e.kind() {
            csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
            other => format!("{other:?}"),
        };
        self.error(at, &self.record, message).with_source(e)
    }

    fn position(&self, at: RecordAt) -> Position {
        Position::new()
            .with_source(Arc::clone(&self.source))
            .with_record(at.record)
            .with_line(at.line)
            .with_byte(at.byte)
    }

    /// A decode error for the record at `at`, carrying its raw text (or, if that is gone,
    /// its fields joined).
    fn error(&self, at: RecordAt, fields: &ByteRecord, message: String) -> Error {
        let capped = self.reader.get_ref();
        let mut text = match capped.bytes(at.byte, capped.delivered) {
            Some(raw) => {
                let raw = &raw[..raw.len().min(RAW_PREFIX)];
                // The record only: up to the end of its last line, as far as the parser read.
                let end = self.reader.position().byte().saturating_sub(at.byte);
                let raw = &raw[..raw.len().min(usize::try_from(end).unwrap_or(usize::MAX))];
                let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
                raw.strip_suffix(b"\r").unwrap_or(raw).to_vec()
            }
            None => Vec::new(),
        };
        if text.is_empty() {
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    text.push(self.options.delimiter);
                }
                text.extend_from_slice(field);
            }
            text.truncate(RAW_PREFIX);
        }
        Error::new(ErrorKind::Decode, OPERATION)
            .with_position(self.position(at))
            .with_message(message)
            .with_raw(text)
    }

    /// The checks the parser does not make, on the raw bytes of the record just read.
    fn check_raw(&self, at: RecordAt, end: u64) -> Option<Error> {
        let raw = self.reader.get_ref().bytes(at.byte, end)?;
        let options = &self.options;
        let terminated = raw.ends_with(b"\n") || raw.ends_with(b"\r");
        if options.strict_quotes
            && (!terminated || (self.quotes && memchr::memchr(options.quote, raw).is_some()))
        {
            match check_quotes(raw, options.delimiter, options.quote) {
                Some(QuoteFault::Unterminated) => {
                    return Some(self.error(
                        at,
                        &self.record,
                        "quoted field is not closed before the end of the input".to_owned(),
                    ))
                }
                Some(QuoteFault::InUnquoted { field }) => {
                    return Some(self.error(
                        at,
                        &self.record,
                        format!("quote character inside unquoted field {field}"),
                    ))
                }
                None => {}
            }
        }
        if !options.allow_nul && self.nuls {
            if let Some(offset) = memchr::memchr(0, raw) {
                return Some(self.error(
                    at,
                    &self.record,
                    format!(
                        "NUL byte at byte {offset} of the record (is the input UTF-16 or binary?)"
                    ),
                ));
            }
        }
        None
    }

    /// Reads the next record into the reused buffer and says where it starts; `None` at the
    /// end.
    fn next_raw(&mut self) -> Option<(Result<()>, RecordAt)> {
        if self.done {
            return None;
        }
        if self.headers.is_none() && self.options.headers != Headers::None {
            match self.reader.byte_headers() {
                Ok(headers) => self.headers = Some(headers.clone()),
                Err(e) => {
                    self.done = true;
                    let at = self.at();
                    return Some((Err(self.parse_error(e, at)), at));
                }
            }
            self.rearm();
        }
        let at = self.at();
        let result = self.reader.read_byte_record(&mut self.record);
        let end = self.reader.position().byte();
        self.rearm();
        let item = match result {
            Ok(false) => {
                self.done = true;
                None
            }
            Ok(true) => {
                self.index += 1;
                let len = end.saturating_sub(at.byte);
                let fields = self.record.len();
                let checked = if let Some(expected) = self.expected.filter(|&e| e != fields) {
                    let message = format!("record has {fields} fields, expected {expected}");
                    Err(self.error(at, &self.record, message))
                } else if len > self.options.max_record_len as u64 {
                    Err(self.too_long(at, len))
                } else {
                    match self.check_raw(at, end) {
                        Some(err) => Err(err),
                        None => Ok(()),
                    }
                };
                Some((checked, at))
            }
            Err(e) => {
                self.index += 1;
                if e.is_io_error() {
                    self.done = true;
                }
                Some((Err(self.parse_error(e, at)), at))
            }
        };
        // Good record or bad, its raw bytes are no longer needed once its item is made: a run
        // of bad records must not pile up in the copy.
        self.reader.get_mut().forget_before(end);
        item
    }

    fn at(&self) -> RecordAt {
        let pos = self.reader.position();
        RecordAt {
            record: self.index,
            line: pos.line(),
            byte: pos.byte(),
        }
    }

    /// Lets the next record be read up to the cap (plus the parser's read-ahead).
    fn rearm(&self) {
        let byte = self.reader.position().byte();
        self.limit.store(
            limit_after(byte, self.options.max_record_len),
            Ordering::Relaxed,
        );
    }

    fn too_long(&self, at: RecordAt, len: u64) -> Error {
        Error::new(ErrorKind::Decode, OPERATION)
            .with_position(self.position(at))
            .with_message(match len {
                0 => format!(
                    "record is longer than the limit of {} bytes",
                    self.options.max_record_len
                ),
                len => format!(
                    "record is {len} bytes long, over the limit of {} bytes",
                    self.options.max_record_len
                ),
            })
    }

    fn parse_error(&self, e: csv::Error, at: RecordAt) -> Error {
        let at = match e.position() {
            Some(pos) => RecordAt {
                record: at.record,
                line: pos.line(),
                byte: pos.byte(),
            },
            None => at,
        };
        match e.kind() {
            csv::ErrorKind::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<TooLong>()) => {
                self.too_long(at, 0)
            }
            csv::ErrorKind::Io(_) => match e.into_kind() {
                csv::ErrorKind::Io(io) => {
                    Error::io("csv source: read", io).with_position(self.position(at))
                }
                _ => Error::internal("csv source", "an i/o error changed kind"),
            },
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => {
                let message = format!("record has {len} fields, expected {expected_len}");
                self.error(at, &self.record, message).with_source(e)
            }
            csv::ErrorKind::Utf8 { err, .. } => {
                let message = format!("invalid UTF-8 in field {}", err.field());
                self.error(at, &self.record, message).with_source(e)
            }
            _ => {
                let message = e.to_string();
                self.error(at, &self.record, message).with_source(e)
            }
        }
    }
}

/// A CSV reader builder with the options that shape parsing.
fn reader_builder(options: &Options) -> csv::ReaderBuilder {
    let mut builder = csv::ReaderBuilder::new();
    builder
        .delimiter(options.delimiter)
        .quote(options.quote)
        .comment(options.comment)
        .trim(if options.trim {
            csv::Trim::All
        } else {
            csv::Trim::None
        });
    builder
}

fn limit_after(byte: u64, max_record_len: usize) -> u64 {
    byte.saturating_add(max_record_len as u64)
        .saturating_add(PARSE_BUFFER as u64)
        .saturating_add(1)
}

/// The marker inside the I/O error `Capped` returns.
#[derive(Debug)]
struct TooLong;

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("record longer than the limit")
    }
}

impl std::error::Error for TooLong {}

/// Hands the parser at most `limit` bytes in all (past it, a record is too long), and keeps a
/// copy of what it handed over since the current record began, for checks and raw text.
/// Without `inner`, the input is `tail`, held whole from the start, and nothing is copied.
struct Capped {
    inner: Option<Box<dyn BufRead + Send>>,
    delivered: u64,
    limit: Arc<AtomicU64>,
    tail: Vec<u8>,
    // The offset of `tail[0]` in the input.
    tail_start: u64,
}

impl Capped {
    /// The bytes from `start` to `end`, if still held.
    fn bytes(&self, start: u64, end: u64) -> Option<&[u8]> {
        let from = usize::try_from(start.checked_sub(self.tail_start)?).ok()?;
        let to = usize::try_from(end.checked_sub(self.tail_start)?).ok()?;
        self.tail.get(from..to)
    }

    /// Forgets the bytes before `start`, once enough have piled up to make it worth a move.
    fn forget_before(&mut self, start: u64) {
        if self.inner.is_none() {
            return;
        }
        let Ok(drop) = usize::try_from(start.saturating_sub(self.tail_start)) else {
            return;
        };
        let drop = drop.min(self.tail.len());
        if drop >= PARSE_BUFFER && drop * 2 >= self.tail.len() {
            self.tail.drain(..drop);
            self.tail_start += drop as u64;
        }
    }
}

impl Read for Capped {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = self
            .limit
            .load(Ordering::Relaxed)
            .saturating_sub(self.delivered);
        if room == 0 {
            return Err(std::io::Error::other(TooLong));
        }
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = match self.inner.as_mut() {
            Some(inner) => {
                let n = inner.read(&mut buf[..want])?;
                self.tail.extend_from_slice(&buf[..n]);
                n
            }
            None => {
                let from = usize::try_from(self.delivered)
                    .map_or(self.tail.len(), |d| d.min(self.tail.len()));
                let held = &self.tail[from..];
                let n = want.min(held.len());
                buf[..n].copy_from_slice(&held[..n]);
                n
            }
        };
        self.delivered += n as u64;
        Ok(n)
    }
}

/// What a quote check found wrong in a record's raw bytes.
#[derive(Debug, PartialEq, Eq)]
enum QuoteFault {
    /// A quoted field runs to the end of the input.
    Unterminated,
    /// A quote character inside a field that did not start with one.
    InUnquoted { field: usize },
}

/// Checks the quoting of one record's raw bytes, as RFC 4180 has it: a field is quoted only
/// if it starts with the quote, and a quote inside it is doubled.
fn check_quotes(raw: &[u8], delimiter: u8, quote: u8) -> Option<QuoteFault> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut state = State::FieldStart;
    let mut field = 0;
    for &byte in raw {
        state = match (state, byte) {
            (State::Quoted, b) if b == quote => State::QuoteInQuoted,
            (State::Quoted, _) => State::Quoted,
            (State::QuoteInQuoted, b) if b == quote => State::Quoted,
            (_, b) if b == delimiter => {
                field += 1;
                State::FieldStart
            }
            (_, b'\n' | b'\r') => State::FieldStart,
            (State::FieldStart, b) if b == quote => State::Quoted,
            (State::Unquoted | State::FieldStart, b) if b == quote => {
                return Some(QuoteFault::InUnquoted { field });
            }
            (State::QuoteInQuoted, _) => return Some(QuoteFault::InUnquoted { field }),
            (_, _) => State::Unquoted,
        };
    }
    (state == State::Quoted).then_some(QuoteFault::Unterminated)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{check_quotes, CsvSource, Decoder, QuoteFault, PARSE_BUFFER};
    use crate::io::{Input, OpenedInput};

    #[test]
    fn the_raw_copy_stays_bounded_through_a_run_of_bad_records() {
        // 100,000 ragged records in a row, each an error: 600 KB of input.
        let mut text = String::from("a,b\n");
        for _ in 0..100_000 {
            text.push_str("1,2,3\n");
        }
        let options = CsvSource::new(Input::bytes("")).options;
        let opened = OpenedInput {
            reader: Box::new(std::io::Cursor::new(text.into_bytes())),
            name: Arc::from("t"),
        };
        let mut decoder = Decoder::new(opened, options);
        let (mut errors, mut largest) = (0, 0);
        while let Some((read, _)) = decoder.next_raw() {
            errors += usize::from(read.is_err());
            largest = largest.max(decoder.reader.get_ref().tail.len());
        }
        assert_eq!(errors, 100_000);
        assert!(
            largest <= 3 * PARSE_BUFFER,
            "the copy grew to {largest} bytes"
        );
    }

    #[test]
    fn quote_checks() {
        let check = |raw: &str| check_quotes(raw.as_bytes(), b',', b'"');
        assert_eq!(check("a,b\n"), None);
        assert_eq!(check("\"a,b\",\"say \"\"hi\"\"\"\r\n"), None);
        assert_eq!(check("\"multi\nline\",x\n"), None);
        assert_eq!(check("1,\"open"), Some(QuoteFault::Unterminated));
        assert_eq!(
            check("1,ab\"c\n"),
            Some(QuoteFault::InUnquoted { field: 1 })
        );
        assert_eq!(
            check("\"ab\"c,d\n"),
            Some(QuoteFault::InUnquoted { field: 0 })
        );
    }
}
