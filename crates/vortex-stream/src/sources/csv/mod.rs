//! CSV: raw records or serde records.

use std::io::{BufRead, Read};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use csv::{ByteRecord, StringRecord};
use serde::de::DeserializeOwned;

mod chunks;
mod fields;
mod skip;

use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

use super::blocking::{default_decode_threads, from_input, DEFAULT_BATCH};
use super::{Blocking, FlattenBatches};
use crate::io::lines::RAW_PREFIX;
use crate::io::{Input, OpenedInput};
use crate::parallel::Parallelism;
use crate::{Error, ErrorKind, Located, Pipeline, Position, Result};

/// The UTF-8 byte-order mark, which the parser drops at the start of its input.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// The default longest record: 16 MiB.
pub const DEFAULT_MAX_RECORD_LEN: usize = 16 * 1024 * 1024;

const OPERATION: &str = "csv source: decode";
/// The operation an input that cannot be opened is reported under.
const OPEN: &str = "csv source: open";
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
/// one and the record as its raw text; the next record still decodes. A UTF-8 byte-order mark
/// is dropped. A record longer than [`max_record_len`](CsvSource::max_record_len) (16 MiB by
/// default) is a `Decode` error; it is never held whole: once it is known to be too long, the
/// rest of it is read past, following its quoting to where it ends, and the next record
/// decodes as usual (blank lines between records do not count towards the cap). Quoted fields
/// may hold delimiters, quotes (doubled) and newlines.
///
/// Serde records ([`deserialize`](CsvSource::deserialize)) are parsed and decoded on several
/// threads at once ([`decode_threads`](CsvSource::decode_threads)): the reading thread cuts the
/// input into runs of whole records ([`chunk_size`](CsvSource::chunk_size), 256 KiB by default),
/// following the quoting exactly so it never cuts inside a quoted field, and each run is parsed
/// and decoded on a worker, the record buffer reused; records come out in input order. Raw
/// [`records`](CsvSource::records) are parsed on tokio's blocking pool, a batch (1024 by
/// default) per job, and handed over batch by batch.
///
/// Memory: serde records hold at most twice `decode_threads` runs with their records (being
/// parsed, or parsed and waiting their turn), two more runs waiting for a worker and the one
/// being read (with one decoding thread: the run being read and decoded, and about four runs'
/// records handed over); a record longer than a run makes that run longer, up to the cap.
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
    ///
    /// Each record's [`position`](StringRecord::position) is where it is in the input: its
    /// record index (from 0, after the header row), the line and the byte of its first
    /// character, as in this source's errors.
    pub fn records(self) -> Pipeline<Blocking<StringRecord>> {
        let options = self.options;
        from_input(self.input, OPEN, options.batch, move |opened| {
            let mut decoder = Decoder::new(opened, options);
            std::iter::from_fn(move || {
                let (read, at) = decoder.next_raw()?;
                Some(read.and_then(|()| {
                    let raw = &decoder.record;
                    match StringRecord::from_byte_record(raw.clone()) {
                        Ok(mut text) => {
                            text.set_position(Some(decoder.csv_position(at)));
                            Ok(text)
                        }
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
    /// the runs are parsed and decoded on the reading thread itself: handing them to another
    /// thread would only add work. With a [`comment`](CsvSource::comment) byte set the records
    /// are parsed one after another on the reading thread: a comment line may hold any quote,
    /// so runs cannot be cut ahead of the parser.
    ///
    /// A run of plain lines (no quote, carriage return or NUL anywhere in it; no trimming) is
    /// split into records at its line ends and delimiters directly, without the parser, which
    /// would read the same records from it.
    pub fn deserialize<T>(self) -> Pipeline<CsvDecode<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.deserialize_filter_map(Some)
    }

    /// [`deserialize`](CsvSource::deserialize) and then
    /// [`filter_map`](Pipeline::filter_map) in one, with `f` run on the decoding threads,
    /// right after each record is decoded: the records it drops are dropped there and never
    /// handed to the pipeline, and its work is spread over the cores with the decoding. What
    /// comes out is in input order; a record that fails to decode comes out as its error, which
    /// `f` does not see.
    ///
    /// Worth it when most records are filtered out, or when each takes real work to turn into
    /// what the pipeline wants; `f` must not block.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde::Deserialize;
    /// use vortex_stream::io::Input;
    /// use vortex_stream::sources::CsvSource;
    ///
    /// #[derive(Deserialize)]
    /// struct Order {
    ///     id: u64,
    ///     status: String,
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let input = Input::bytes("id,status\n1,active\n2,shipped\n3,active\n");
    /// let active: Vec<u64> = CsvSource::new(input)
    ///     .deserialize_filter_map(|o: Order| (o.status == "active").then_some(o.id))
    ///     .collect()
    ///     .await?;
    /// assert_eq!(active, [1, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn deserialize_filter_map<T, U, F>(self, f: F) -> Pipeline<CsvDecode<U>>
    where
        T: DeserializeOwned,
        U: Send + 'static,
        F: Fn(T) -> Option<U> + Send + Sync + 'static,
    {
        self.decode_with(move |value: T, _: &Decoder| f(value), |_, _, _, _| {})
    }

    /// [`deserialize`](CsvSource::deserialize), each value with the position of its record
    /// (record index, line and byte of its first character, as in this source's errors), so
    /// that a later check can reject it with [`Located::reject`] naming where it is.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde::Deserialize;
    /// use vortex_stream::io::Input;
    /// use vortex_stream::sources::CsvSource;
    ///
    /// #[derive(Deserialize)]
    /// struct Order {
    ///     id: u64,
    ///     amount: f64,
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let input = Input::bytes("id,amount\r\n1,9.5\r\n2,-3\r\n").name("orders.csv");
    /// let err = CsvSource::new(input)
    ///     .deserialize_located::<Order>()
    ///     .try_map(|order| match order.value().amount {
    ///         a if a < 0.0 => Err(order.reject(format!("order {} has a negative amount", order.value().id))),
    ///         _ => Ok(order.into_value()),
    ///     })
    ///     .drain()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "check: orders.csv: record 1 (line 3, byte 18): order 2 has a negative amount");
    /// # }
    /// ```
    pub fn deserialize_located<T>(self) -> Pipeline<CsvDecode<Located<T>>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.decode_with(
            |value: T, decoder: &Decoder| Some(Located::new(value, decoder.last_position())),
            |located, record, line, byte| located.shift_position(record, line, byte),
        )
    }

    /// The pipeline of records decoded as `T` and passed through `f` (which sees where each
    /// record is) on the decoding threads; `shift` moves a value's position by what came
    /// before its run, as errors' positions are moved.
    fn decode_with<T, U, F>(self, f: F, shift: chunks::Shift<U>) -> Pipeline<CsvDecode<U>>
    where
        T: DeserializeOwned,
        U: Send + 'static,
        F: Fn(T, &Decoder) -> Option<U> + Send + Sync + 'static,
    {
        let options = self.options;
        if options.comment.is_some() {
            let records = from_input(self.input, OPEN, options.batch, move |opened| {
                let mut decoder = Decoder::new(opened, options);
                std::iter::from_fn(move || decoder.next_kept(None, &f))
            });
            return Pipeline::new(CsvDecode {
                inner: Inner::Records(records.into_inner()),
            });
        }
        let chunk = options.chunk.get();
        let runs: DecodedRuns<U> = if options.threads.get() == 1 {
            from_input(self.input, OPEN, NonZeroUsize::MIN, move |opened| {
                chunks::Splitter::new(opened, options, chunk)
                    .map(move |run| run.map(|run| chunks::decode(run, &f)))
            })
            .boxed()
            .into_inner()
        } else {
            let in_flight = options
                .threads
                .saturating_mul(NonZeroUsize::MIN.saturating_add(1));
            from_input(self.input, OPEN, NonZeroUsize::MIN, move |opened| {
                chunks::Splitter::new(opened, options, chunk)
            })
            .par_map(
                // A run queued for each worker: one finishing never waits for the next to be
                // pulled. The window is no larger, so no more runs are held than run at once.
                Parallelism::new(in_flight).window(in_flight),
                move |run| chunks::decode(run, &f),
            )
            .boxed()
            .into_inner()
        };
        let inner = Inner::Runs(FlattenBatches::new(chunks::Rebase::new(runs, shift)));
        Pipeline::new(CsvDecode { inner })
    }
}

/// Stream for [`CsvSource::deserialize`] and [`CsvSource::deserialize_filter_map`].
#[must_use = "streams do nothing unless polled"]
pub struct CsvDecode<T> {
    inner: Inner<T>,
}

/// Runs of records, decoded in order (on the workers, or on the reading thread); boxed so that
/// `CsvDecode` names only the type that comes out, not the record type or the function.
type DecodedRuns<T> = futures_util::stream::BoxStream<'static, Result<chunks::Parsed<T>>>;

enum Inner<T> {
    // Runs cut ahead of the parser.
    Runs(FlattenBatches<chunks::Rebase<DecodedRuns<T>, T>, T>),
    // Records parsed one after another on the reading thread.
    Records(Blocking<T>),
}

impl<T> std::fmt::Debug for CsvDecode<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.inner {
            Inner::Runs(_) => "runs",
            Inner::Records(_) => "records",
        };
        f.debug_struct("CsvDecode")
            .field("parsed_in", &how)
            .finish()
    }
}

impl<T> Unpin for CsvDecode<T> {}

impl<T: Send + 'static> Stream for CsvDecode<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        match &mut self.inner {
            // Both parts are `Unpin`: the adapters are, and so is `Blocking`.
            Inner::Runs(stream) => Pin::new(stream).poll_next(cx),
            Inner::Records(stream) => Pin::new(stream).poll_next(cx),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            Inner::Runs(stream) => stream.size_hint(),
            Inner::Records(stream) => stream.size_hint(),
        }
    }
}

impl<T: Send + 'static> FusedStream for CsvDecode<T> {
    fn is_terminated(&self) -> bool {
        match &self.inner {
            Inner::Runs(stream) => stream.is_terminated(),
            Inner::Records(stream) => stream.is_terminated(),
        }
    }
}

/// A line of a decoder that splits lines itself: where its record starts, its text (without
/// the line end) and where the next begins.
struct PlainLine {
    at: RecordAt,
    text: std::ops::Range<usize>,
    end: usize,
}

/// Where a record starts.
#[derive(Clone, Copy, Debug)]
struct RecordAt {
    record: u64,
    line: u64,
    byte: u64,
}

impl RecordAt {
    /// Record `record`, starting where `parser` has got to.
    fn parsed(record: u64, parser: &csv::Reader<Capped>) -> Self {
        let position = parser.position();
        RecordAt {
            record,
            line: position.line(),
            byte: position.byte(),
        }
    }
}

/// A header row, and its text when it is valid UTF-8.
#[derive(Clone, Debug)]
struct HeaderRow {
    bytes: ByteRecord,
    text: Option<StringRecord>,
}

impl HeaderRow {
    fn new(bytes: ByteRecord) -> Self {
        let text = StringRecord::from_byte_record(bytes.clone()).ok();
        HeaderRow { bytes, text }
    }

    /// The headers to decode text records with: `Some(None)` without any, `None` if they are
    /// not text (and the records must be decoded as bytes).
    fn as_text(headers: Option<&HeaderRow>) -> Option<Option<&StringRecord>> {
        match headers {
            None => Some(None),
            Some(row) => row.text.as_ref().map(Some),
        }
    }
}

/// Where a decoder splitting lines itself has got to.
#[derive(Clone, Copy, Debug)]
struct Plain {
    byte: usize,
    line: u64,
}

/// Lets the parser's next record be read up to the cap of `max` bytes (plus its read-ahead).
fn rearm(parser: &csv::Reader<Capped>, max: usize) {
    let limit = limit_after(parser.position().byte(), max);
    parser.get_ref().limit.store(limit, Ordering::Relaxed);
}

/// How a decoder reads its input.
// One per decoder, never moved in a loop: boxing the parser would only add a pointer chase
// per record.
#[allow(clippy::large_enum_variant)]
enum Reading {
    /// csv's parser reads it.
    Parsed(csv::Reader<Capped>),
    /// The input, held whole, holds nothing but plain lines and is split into records here
    /// (see [`Decoder::in_memory`]), from `next` on. No parser is built: building one costs
    /// as much as splitting a few hundred lines.
    Split { held: Held, next: Plain },
}

/// Input split into lines by a decoder: text if it is all valid UTF-8 (checked once, not line
/// by line), else bytes.
enum Held {
    Text(String),
    Bytes(Vec<u8>),
}

impl Held {
    fn new(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(text) => Held::Text(text),
            Err(e) => Held::Bytes(e.into_bytes()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Held::Text(text) => text.as_bytes(),
            Held::Bytes(bytes) => bytes,
        }
    }

    /// The text at `range`, if it is valid UTF-8.
    fn text(&self, range: std::ops::Range<usize>) -> Option<&str> {
        match self {
            Held::Text(text) => text.get(range),
            Held::Bytes(bytes) => std::str::from_utf8(bytes.get(range)?).ok(),
        }
    }
}

impl Reading {
    /// csv's parser, over `inner` (or, without one, over `held`, the input held whole).
    fn parsed(inner: Option<Box<dyn BufRead + Send>>, held: Vec<u8>, options: &Options) -> Self {
        let limit = Arc::new(AtomicU64::new(limit_after(0, options.max_record_len)));
        let capped = Capped {
            inner,
            pending: Vec::new(),
            delivered: 0,
            limit,
            budget: limit_after(0, options.max_record_len),
            blank: None,
            tail: held,
            tail_start: 0,
        };
        Reading::over(
            capped,
            options,
            options.headers != Headers::None,
            options.flexible,
        )
    }

    /// csv's parser over `capped`.
    fn over(capped: Capped, options: &Options, headers: bool, flexible: bool) -> Self {
        let parser = reader_builder(options)
            .flexible(flexible)
            .has_headers(headers)
            .buffer_capacity(PARSE_BUFFER)
            .from_reader(capped);
        Reading::Parsed(parser)
    }

    /// The input's bytes from `start` to `end`, if still held.
    fn bytes(&self, start: u64, end: u64) -> Option<&[u8]> {
        match self {
            Reading::Parsed(parser) => parser.get_ref().span(start, end),
            Reading::Split { held, .. } => held
                .as_bytes()
                .get(usize::try_from(start).ok()?..usize::try_from(end).ok()?),
        }
    }
}

/// Reads byte records into a reused buffer, turning parser errors into positioned errors.
struct Decoder {
    reading: Reading,
    record: ByteRecord,
    // Stands in for `record` while its bytes are decoded as text (see `decode_record`).
    spare: Option<ByteRecord>,
    // Where each field of the line being decoded in place ends (see `next_plain_as`).
    ends: Vec<usize>,
    headers: Option<HeaderRow>,
    options: Options,
    source: Arc<str>,
    index: u64,
    done: bool,
    // The field count every record must have, checked here rather than by the parser (a run
    // parsed on its own does not start with the record that sets it, nor does a parser started
    // after a record too long to parse).
    expected: Option<usize>,
    // The field count of the first row, for a parser started after a record too long to parse.
    first_len: Option<usize>,
    // Where the parser started in the input (it starts again after a record too long to
    // parse): its positions count from there.
    base_line: u64,
    base_byte: u64,
    // Where the record last read starts.
    last: RecordAt,
    // Whether the input may hold a quote or a NUL at all: when it is known not to, the checks
    // of each record's bytes are skipped.
    quotes: bool,
    nuls: bool,
}

impl Decoder {
    fn new(opened: OpenedInput, options: Options) -> Self {
        let reading = Reading::parsed(Some(opened.reader), Vec::new(), &options);
        Decoder::with(reading, opened.name, options)
    }

    /// A decoder of input held whole in memory: its bytes are checked in place, not copied.
    ///
    /// The input is searched once for quotes and NULs, so that records are not searched one by
    /// one when there are none. When it holds nothing but plain lines (no quote, carriage
    /// return, NUL or comment anywhere, no header row or byte-order mark at the start, no
    /// trimming, and no longer than a record may be), it is split into records here, one per
    /// line, at the delimiter, instead of by the parser, which would read the same records.
    fn in_memory(bytes: Vec<u8>, name: Arc<str>, options: Options) -> Self {
        // One pass finds none of the three in nearly every run; a run holding one is searched
        // again for each, from the first.
        let (quotes, nuls, crs) = match memchr::memchr3(options.quote, 0, b'\r', &bytes) {
            None => (false, false, false),
            Some(first) => {
                let rest = &bytes[first..];
                (
                    memchr::memchr(options.quote, rest).is_some(),
                    memchr::memchr(0, rest).is_some(),
                    memchr::memchr(b'\r', rest).is_some(),
                )
            }
        };
        let plain = !quotes
            && !nuls
            && !options.trim
            && options.comment.is_none()
            && options.headers == Headers::None
            && !bytes.starts_with(BOM)
            && !matches!(options.delimiter, b'\n' | b'\r')
            && bytes.len() <= options.max_record_len
            && !crs;
        let reading = if plain {
            let next = Plain { byte: 0, line: 1 };
            Reading::Split {
                held: Held::new(bytes),
                next,
            }
        } else {
            Reading::parsed(None, bytes, &options)
        };
        let mut decoder = Decoder::with(reading, name, options);
        decoder.quotes = quotes;
        decoder.nuls = nuls;
        decoder
    }

    fn with(reading: Reading, source: Arc<str>, options: Options) -> Self {
        Decoder {
            reading,
            record: ByteRecord::new(),
            spare: None,
            ends: Vec::new(),
            headers: None,
            options,
            source,
            index: 0,
            done: false,
            expected: None,
            first_len: None,
            base_line: 0,
            base_byte: 0,
            last: RecordAt {
                record: 0,
                line: 1,
                byte: 0,
            },
            quotes: true,
            nuls: true,
        }
    }

    /// The next record decoded as `T` with serde, matched by name to `headers`, or else to the
    /// header row this decoder read (with [`Headers::Use`]); `None` at the end.
    fn next_as<T: DeserializeOwned>(&mut self, headers: Option<&HeaderRow>) -> Option<Result<T>> {
        // A decoder splitting lines itself reads no header row of its own.
        if matches!(self.reading, Reading::Split { .. }) && !self.done {
            return self.next_plain_as(headers);
        }
        let (read, at) = self.next_raw()?;
        self.last = at;
        Some(read.and_then(|()| {
            let own = self
                .headers
                .as_ref()
                .filter(|_| self.options.headers == Headers::Use);
            decode_record(&mut self.record, &mut self.spare, headers.or(own))
                .map_err(|e| self.deserialize_error(at, e))
        }))
    }

    /// The next record decoded as `T` (see [`next_as`](Decoder::next_as)) that `f` keeps,
    /// or the next error; `None` at the end.
    fn next_kept<T, U>(
        &mut self,
        headers: Option<&HeaderRow>,
        f: &impl Fn(T, &Decoder) -> Option<U>,
    ) -> Option<Result<U>>
    where
        T: DeserializeOwned,
    {
        loop {
            match self.next_as::<T>(headers)? {
                Ok(record) => match f(record, self) {
                    Some(kept) => return Some(Ok(kept)),
                    None => continue,
                },
                Err(e) => return Some(Err(e)),
            }
        }
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
        let at = self.content_at(at);
        Position::new()
            .with_source(Arc::clone(&self.source))
            .with_record(at.record)
            .with_line(at.line + self.base_line)
            .with_byte(at.byte + self.base_byte)
    }

    /// Where the record read from `at` really starts: the parser counts a record from the end
    /// of the one before, so the rest of a CRLF and any blank lines come first.
    // Off the path of good records: kept out of line, so that it does not weigh on theirs.
    #[cold]
    #[inline(never)]
    fn content_at(&self, at: RecordAt) -> RecordAt {
        let mut at = at;
        // Blank lines passed over while a long record was read may be forgotten already.
        if let Reading::Parsed(parser) = &self.reading {
            if let Some(blank) = parser.get_ref().blank.filter(|b| b.start == at.byte) {
                at.byte = blank.content;
                at.line += blank.lines;
            }
        }
        let Some(raw) = self.reading.bytes(at.byte, self.at().byte) else {
            return at;
        };
        for &b in raw {
            match b {
                b'\n' => at.line += 1,
                b'\r' => {}
                _ => break,
            }
            at.byte += 1;
        }
        at
    }

    /// The position of the record last read.
    fn last_position(&self) -> Position {
        self.position(self.last)
    }

    /// The position of the record at `at`, as csv records carry one.
    fn csv_position(&self, at: RecordAt) -> csv::Position {
        let at = self.content_at(at);
        let mut position = csv::Position::new();
        position
            .set_record(at.record)
            .set_line(at.line + self.base_line)
            .set_byte(at.byte + self.base_byte);
        position
    }

    /// Line feeds read so far (with those of the records skipped as too long).
    fn lines_read(&self) -> u64 {
        self.base_line + self.at().line.saturating_sub(1)
    }

    /// A decode error for the record at `at`, carrying its raw text (or, if that is gone,
    /// its fields joined).
    fn error(&self, at: RecordAt, fields: &ByteRecord, message: String) -> Error {
        // The record only: up to the end of its last line, as far as it was read.
        let start = self.content_at(at).byte;
        let mut text = match self.reading.bytes(start, self.at().byte) {
            Some(raw) => {
                let raw = &raw[..raw.len().min(RAW_PREFIX)];
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
        let raw = self.reading.bytes(at.byte, end)?;
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
                // Counted from the record's first byte, past any blank lines before it.
                let offset = offset as u64 - (self.content_at(at).byte - at.byte);
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
        let Reading::Parsed(parser) = &mut self.reading else {
            return self.next_plain();
        };
        let max = self.options.max_record_len;
        if self.headers.is_none() && self.options.headers != Headers::None {
            match parser.byte_headers() {
                Ok(headers) => {
                    self.first_len = Some(headers.len());
                    self.headers = Some(HeaderRow::new(headers.clone()));
                }
                Err(e) => {
                    // Without its header row no record can be read: the input is broken, and
                    // no policy may skip that (the records after it would vanish unnoticed).
                    self.done = true;
                    let at = self.at();
                    return Some((Err(self.parse_error(e, at).fatal()), at));
                }
            }
            rearm(parser, max);
        }
        let at = RecordAt::parsed(self.index, parser);
        let result = parser.read_byte_record(&mut self.record);
        let end = parser.position().byte();
        rearm(parser, max);
        let item = match result {
            Ok(false) => {
                self.done = true;
                None
            }
            Ok(true) => {
                self.first_len.get_or_insert(self.record.len());
                Some((self.check(at, end), at))
            }
            Err(e) if is_too_long(&e) => return Some((Err(self.read_past(at)), at)),
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
        if let Reading::Parsed(parser) = &mut self.reading {
            parser.get_mut().forget_before(end);
        }
        item
    }

    /// The error for the record at `at`, too long to parse, once it is read past (see
    /// [`skip_too_long`](Decoder::skip_too_long)), or the read error that stopped that.
    #[cold]
    #[inline(never)]
    fn read_past(&mut self, at: RecordAt) -> Error {
        self.index += 1;
        let err = self.too_long(at, 0);
        self.skip_too_long(at).unwrap_or(err)
    }

    /// Reads past the record at `at`, too long to parse, to where it ends, and starts a new
    /// parser there; at the end of the input, or on a read error (returned, fatal), the
    /// decoder is done.
    // Off the path of good records: kept out of line, so that it does not weigh on theirs.
    #[cold]
    #[inline(never)]
    fn skip_too_long(&mut self, at: RecordAt) -> Option<Error> {
        let placeholder = Reading::Split {
            held: Held::Bytes(Vec::new()),
            next: Plain { byte: 0, line: 1 },
        };
        let Reading::Parsed(parser) = std::mem::replace(&mut self.reading, placeholder) else {
            self.done = true;
            return None;
        };
        let mut capped = parser.into_inner();
        let options = self.options;
        let mut end = skip::RecordEnd::new(options.delimiter, options.quote, options.comment);
        // What the parser was handed of the record, then the input itself, not kept. Blank
        // lines before the record may be forgotten already: their line feeds are counted.
        let from = at.byte.max(capped.tail_start);
        let blank_lines = capped
            .blank
            .filter(|blank| blank.start == at.byte)
            .map_or(0, |blank| blank.lines);
        // All that is held: what the parser was handed and, for an input held whole, the rest
        // of it too.
        let held_end = capped.tail_start + capped.tail.len() as u64;
        let mut pending = std::mem::take(&mut capped.pending);
        let held = capped.span(from, held_end).unwrap_or_default();
        let mut skipped = from;
        let mut rest = match end.feed(held) {
            Some(n) => {
                skipped += n as u64;
                // Bytes read past an earlier skip and not handed over yet come after these.
                let mut rest = held[n..].to_vec();
                rest.append(&mut pending);
                Some(rest)
            }
            None => {
                skipped += held.len() as u64;
                None
            }
        };
        let mut inner = capped.inner.take();
        while rest.is_none() {
            let Some(reader) = inner.as_mut() else { break };
            let available = if pending.is_empty() {
                match reader.fill_buf() {
                    Ok(available) => available,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.done = true;
                        let at = RecordAt {
                            byte: skipped,
                            ..at
                        };
                        return Some(
                            Error::io("csv source: read", e)
                                .with_position(self.position(at))
                                .fatal(),
                        );
                    }
                }
            } else {
                &pending[..]
            };
            if available.is_empty() {
                break;
            }
            let len = available.len();
            match end.feed(available) {
                Some(n) => {
                    skipped += n as u64;
                    rest = Some(available[n..].to_vec());
                    if pending.is_empty() {
                        reader.consume(len);
                    }
                }
                None => {
                    skipped += len as u64;
                    if pending.is_empty() {
                        reader.consume(len);
                    } else {
                        pending.clear();
                    }
                }
            }
        }
        let Some(rest) = rest else {
            // The input ends inside the record.
            self.done = true;
            return None;
        };
        // The new parser starts where the record ended: positions count on from there.
        self.base_line += at.line - 1 + blank_lines + end.lines();
        self.base_byte += skipped;
        if !options.flexible {
            self.expected = self.first_len;
        }
        let (tail, pending) = match inner {
            Some(_) => (Vec::new(), rest),
            None => (rest, Vec::new()),
        };
        let capped = Capped {
            inner,
            pending,
            delivered: 0,
            limit: Arc::new(AtomicU64::new(capped.budget)),
            budget: capped.budget,
            blank: None,
            tail,
            tail_start: 0,
        };
        self.reading = Reading::over(capped, &options, false, true);
        None
    }

    /// Counts the record just read, from `at` to `end`, and checks it.
    fn check(&mut self, at: RecordAt, end: u64) -> Result<()> {
        self.index += 1;
        let mut len = end.saturating_sub(at.byte);
        if len > self.options.max_record_len as u64 {
            len = self.content_len(at, end);
        }
        let fields = self.record.len();
        if let Some(expected) = self.expected.filter(|&e| e != fields) {
            let message = format!("record has {fields} fields, expected {expected}");
            Err(self.error(at, &self.record, message))
        } else if len > self.options.max_record_len as u64 {
            Err(self.too_long(at, len))
        } else {
            match self.check_raw(at, end) {
                Some(err) => Err(err),
                None => Ok(()),
            }
        }
    }

    /// The length of the record from `at` to `end` without the blank lines before it (the
    /// parser counts them in), which belong to no record.
    // Off the path of good records: kept out of line, so that it does not weigh on theirs.
    #[cold]
    #[inline(never)]
    fn content_len(&self, at: RecordAt, end: u64) -> u64 {
        // Blank lines passed over while the record was read may be forgotten already.
        let start = match &self.reading {
            Reading::Parsed(parser) => at.byte.max(parser.get_ref().tail_start),
            Reading::Split { .. } => at.byte,
        };
        let blank = self.reading.bytes(start, end).map_or(0, |raw| {
            raw.iter()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .count()
        });
        end.saturating_sub(start).saturating_sub(blank as u64)
    }

    /// `next_raw` for a decoder that splits lines itself.
    fn next_plain(&mut self) -> Option<(Result<()>, RecordAt)> {
        let line = self.plain_line()?;
        let Reading::Split { held, .. } = &self.reading else {
            return None;
        };
        self.record.clear();
        push_fields(
            &mut self.record,
            &held.as_bytes()[line.text.clone()],
            self.options.delimiter,
        );
        Some((self.check(line.at, line.end as u64), line.at))
    }

    /// The next line of a decoder that splits lines itself, `None` at the end: the parser would
    /// skip the empty lines, and end the record at the line end (or at the end of the input).
    fn plain_line(&mut self) -> Option<PlainLine> {
        let at = self.at();
        let Reading::Split { held, next } = &mut self.reading else {
            return None;
        };
        let held = held.as_bytes();
        let Plain { byte, mut line } = *next;
        let rest = held.get(byte..).unwrap_or_default();
        let skipped = rest.iter().take_while(|&&b| b == b'\n').count();
        line += skipped as u64;
        let start = byte + skipped;
        let Some(text) = held.get(start..).filter(|text| !text.is_empty()) else {
            self.done = true;
            *next = Plain {
                byte: held.len(),
                line,
            };
            return None;
        };
        let (text, end) = match memchr::memchr(b'\n', text) {
            Some(len) => {
                line += 1;
                (start..start + len, start + len + 1)
            }
            None => (start..held.len(), held.len()),
        };
        *next = Plain { byte: end, line };
        Some(PlainLine { at, text, end })
    }

    /// [`next_as`](Decoder::next_as) for a decoder that splits lines itself: the line's fields
    /// are decoded where they lie (see [`fields`]), or, if that fails, read into a record and
    /// decoded as any other, so that the error is the same.
    fn next_plain_as<T: DeserializeOwned>(
        &mut self,
        headers: Option<&HeaderRow>,
    ) -> Option<Result<T>> {
        let PlainLine { at, text, end } = self.plain_line()?;
        self.last = at;
        let Reading::Split { held, .. } = &self.reading else {
            return None;
        };
        let delimiter = self.options.delimiter;
        // Headers that are not text leave the fields to be read as bytes, by csv.
        if let (Some(headers), Some(line)) = (HeaderRow::as_text(headers), held.text(text.clone()))
        {
            self.ends.clear();
            split_fields(line.as_bytes(), delimiter, |end| self.ends.push(end));
            // The checks `check` makes (a plain line has no quote or NUL for `check_raw` to
            // find): any failure is reported by it, below.
            let fits = self.expected.is_none_or(|e| e == self.ends.len())
                && (end as u64).saturating_sub(at.byte) <= self.options.max_record_len as u64;
            if fits {
                if let Ok(value) =
                    T::deserialize(&mut fields::LineFields::new(line, &self.ends, headers))
                {
                    self.index += 1;
                    return Some(Ok(value));
                }
            }
        }
        self.record.clear();
        push_fields(&mut self.record, &held.as_bytes()[text], delimiter);
        let checked = self.check(at, end as u64);
        Some(checked.and_then(|()| {
            decode_record(&mut self.record, &mut self.spare, headers)
                .map_err(|e| self.deserialize_error(at, e))
        }))
    }

    /// Where the next record starts.
    fn at(&self) -> RecordAt {
        match &self.reading {
            Reading::Split { next, .. } => RecordAt {
                record: self.index,
                line: next.line,
                byte: next.byte as u64,
            },
            Reading::Parsed(parser) => RecordAt::parsed(self.index, parser),
        }
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
            csv::ErrorKind::Io(_) if is_too_long(&e) => self.too_long(at, 0),
            csv::ErrorKind::Io(_) => match e.into_kind() {
                csv::ErrorKind::Io(io) => Error::io("csv source: read", io)
                    .with_position(self.position(at))
                    .fatal(),
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

/// Decodes `record` as `T`, matched by name to `headers` if given. A record that is valid
/// UTF-8 (as nearly all are; the check is one pass over its bytes) is decoded as text, so that
/// its fields are not checked one by one again; `spare` stands in for it meanwhile. Any other
/// is decoded from its bytes, which fails only on the fields that need to be text.
fn decode_record<T: DeserializeOwned>(
    record: &mut ByteRecord,
    spare: &mut Option<ByteRecord>,
    headers: Option<&HeaderRow>,
) -> csv::Result<T> {
    if let Some(text_headers) = HeaderRow::as_text(headers) {
        let bytes = std::mem::replace(record, spare.take().unwrap_or_default());
        match StringRecord::from_byte_record(bytes) {
            Ok(text) => {
                let decoded = text.deserialize(text_headers);
                *spare = Some(std::mem::replace(record, text.into_byte_record()));
                return decoded;
            }
            Err(e) => *spare = Some(std::mem::replace(record, e.into_byte_record())),
        }
    }
    record.deserialize(headers.map(|h| &h.bytes))
}

/// Pushes the fields of `line`, split at every `delimiter`, onto `record`.
///
/// Eight bytes are compared at a time (a byte loop spends about a cycle on each byte, and
/// this runs over every byte of the input); no crate splits short fields faster: `memchr`
/// pays a setup on every call, and fields are a dozen bytes or so.
fn push_fields(record: &mut ByteRecord, line: &[u8], delimiter: u8) {
    let mut start = 0;
    split_fields(line, delimiter, |end| {
        record.push_field(&line[start..end]);
        start = end + 1;
    });
}

/// Calls `each` with where each field of `line`, split at every `delimiter`, ends.
#[inline]
fn split_fields(line: &[u8], delimiter: u8, mut each: impl FnMut(usize)) {
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    let splat = u64::from_ne_bytes([delimiter; 8]);
    let mut words = line.chunks_exact(8);
    let mut base = 0;
    for word in words.by_ref() {
        let x = u64::from_le_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]) ^ splat;
        // The high bit of each byte of `x` that is zero, exactly: adding 0x7f to the low seven
        // bits of a byte sets its high bit unless they are all zero, and never carries out.
        let mut found = !(((x & LOW7) + LOW7) | x | LOW7);
        while found != 0 {
            let at = base + (found.trailing_zeros() / 8) as usize;
            each(at);
            found &= found - 1;
        }
        base += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b == delimiter {
            each(base + i);
        }
    }
    each(line.len());
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

/// Blank lines before a record, forgotten: where the record was counted from, where it
/// really starts, and the line feeds between.
#[derive(Clone, Copy, Debug)]
struct Blank {
    start: u64,
    content: u64,
    lines: u64,
}

/// Whether a parser error is `Capped` saying a record is over the cap.
fn is_too_long(e: &csv::Error) -> bool {
    matches!(e.kind(), csv::ErrorKind::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<TooLong>()))
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
    // Bytes read from `inner` past a skipped record, handed over before any more are read.
    pending: Vec<u8>,
    delivered: u64,
    limit: Arc<AtomicU64>,
    // How far past a record's first byte the parser may read (the cap and its read-ahead).
    budget: u64,
    // The blank lines last passed over (and forgotten) before a record.
    blank: Option<Blank>,
    tail: Vec<u8>,
    // The offset of `tail[0]` in the input.
    tail_start: u64,
}

impl Capped {
    /// The bytes from `start` to `end`, if still held.
    fn span(&self, start: u64, end: u64) -> Option<&[u8]> {
        let from = usize::try_from(start.checked_sub(self.tail_start)?).ok()?;
        let to = usize::try_from(end.checked_sub(self.tail_start)?).ok()?;
        self.tail.get(from..to)
    }

    /// Whether the record being read has only had blank lines so far: if so, the limit moves
    /// past them (they are not part of any record) and they are forgotten.
    #[cold]
    #[inline(never)]
    fn past_blank_lines(&mut self) -> bool {
        let start = self
            .limit
            .load(Ordering::Relaxed)
            .saturating_sub(self.budget);
        let Some(read) = self.span(start, self.delivered) else {
            return false;
        };
        let blank = read
            .iter()
            .position(|&b| b != b'\n' && b != b'\r')
            .unwrap_or(read.len());
        if blank == 0 {
            return false;
        }
        let lines = read[..blank].iter().filter(|&&b| b == b'\n').count() as u64;
        let content = start + blank as u64;
        self.limit
            .store(content.saturating_add(self.budget), Ordering::Relaxed);
        if self.inner.is_some() {
            // Blank lines passed before are counted in too (a run longer than the budget).
            let (start, lines) = match self.blank.filter(|b| b.content == start) {
                Some(before) => (before.start, before.lines + lines),
                None => (start, lines),
            };
            self.blank = Some(Blank {
                start,
                content,
                lines,
            });
            let drop = usize::try_from(content - self.tail_start).unwrap_or(0);
            self.tail.drain(..drop.min(self.tail.len()));
            self.tail_start = content;
        }
        true
    }

    /// Hands over bytes read past a skipped record (see `pending`).
    #[cold]
    #[inline(never)]
    fn read_pending(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        self.tail.extend_from_slice(&buf[..n]);
        n
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
        let mut room = self
            .limit
            .load(Ordering::Relaxed)
            .saturating_sub(self.delivered);
        if room == 0 && self.past_blank_lines() {
            room = self
                .limit
                .load(Ordering::Relaxed)
                .saturating_sub(self.delivered);
        }
        if room == 0 {
            return Err(std::io::Error::other(TooLong));
        }
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = match self.inner.as_mut() {
            Some(_) if !self.pending.is_empty() => self.read_pending(&mut buf[..want]),
            Some(inner) => {
                let mut n = inner.read(&mut buf[..want])?;
                // The parser drops a byte-order mark only when its first read holds all of it
                // and more: a first read of just the mark reads to it as the end of the input,
                // and one of part of it keeps the mark as data. So the first read goes on until
                // it holds more than a mark, or the input ends.
                while self.delivered == 0 && n > 0 && n <= BOM.len() && n < want {
                    match inner.read(&mut buf[n..want]) {
                        Ok(0) => break,
                        Ok(more) => n += more,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        // What was read goes to the parser; the next read meets the error.
                        Err(_) => break,
                    }
                }
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

    use super::{check_quotes, CsvSource, Decoder, QuoteFault, Reading, PARSE_BUFFER};
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
            let Reading::Parsed(parser) = &decoder.reading else {
                panic!("a streaming decoder parses");
            };
            largest = largest.max(parser.get_ref().tail.len());
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

#[cfg(test)]
mod decode_tests {
    #![allow(clippy::unwrap_used)]
    use csv::ByteRecord;
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::{decode_record, HeaderRow};

    /// A record of every kind of field (shared with the tests of `fields`).
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    pub(super) struct Row {
        a: Option<i64>,
        b: String,
        c: f64,
        #[serde(default)]
        d: Vec<u8>,
        e: Kind,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub(super) enum Kind {
        On,
        Off,
    }

    fn field() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"".to_vec()),
            Just(b"on".to_vec()),
            Just(b"off".to_vec()),
            Just(b"0x1f".to_vec()),
            Just(b"1.5".to_vec()),
            Just(b"-3".to_vec()),
            Just(b"\xc3\xa9".to_vec()),
            Just(b"\xff".to_vec()),
            prop::collection::vec(any::<u8>(), 0..4),
        ]
    }

    fn name() -> impl Strategy<Value = Vec<u8>> {
        const NAMES: [&[u8]; 7] = [b"a", b"b", b"c", b"d", b"e", b"x", b"\xff"];
        prop::sample::select(&NAMES[..]).prop_map(<[u8]>::to_vec)
    }

    fn outcome<T: std::fmt::Debug>(result: csv::Result<T>) -> String {
        match result {
            Ok(value) => format!("{value:?}"),
            Err(e) => format!("error: {e}"),
        }
    }

    proptest! {
        /// Decoding a record as text, when it is valid UTF-8, gives what decoding its bytes
        /// gives: the same value, or the same error.
        #[test]
        fn text_decodes_as_bytes_do(
            fields in prop::collection::vec(field(), 0..7),
            names in prop::option::of(prop::collection::vec(name(), 0..7)),
        ) {
            let record = ByteRecord::from(fields);
            let headers = names.map(|names| HeaderRow::new(ByteRecord::from(names)));
            let expected = outcome(record.deserialize::<Row>(headers.as_ref().map(|h| &h.bytes)));
            let expected_seq = outcome(record.deserialize::<Vec<String>>(None));
            let (mut got, mut spare) = (record.clone(), None);
            prop_assert_eq!(outcome(decode_record::<Row>(&mut got, &mut spare, headers.as_ref())), expected);
            prop_assert_eq!(&got, &record, "the record is back in place");
            prop_assert_eq!(outcome(decode_record::<Vec<String>>(&mut got, &mut spare, None)), expected_seq);
            prop_assert_eq!(got, record);
        }
    }
}
