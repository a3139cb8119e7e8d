//! CSV: raw records or serde records.
//!
//! The files: this one holds the builder ([`CsvSource`]) and the stream it gives; `reading`
//! how a decoder reads (the parser, or plain lines held whole), `capped` the length-capped
//! reader under the parser, `decoder` the decoder that checks and decodes each record,
//! `quotes` the quote check, `fields` the plain-line fast path, `chunks` the cutting of the
//! input into runs decoded on several threads, `skip` the reading past a record too long.

use std::num::NonZeroUsize;

use csv::StringRecord;
use serde::de::DeserializeOwned;

mod capped;
mod chunks;
mod decoder;
mod fields;
mod quotes;
mod reading;
mod skip;

use decoder::Decoder;

use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

use super::blocking::{default_decode_threads, from_input, DEFAULT_BATCH};
use super::{Blocking, FlattenBatches};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use super::planned::{self, Planned};
use crate::core::Size;
use crate::error::panic_message;
use crate::fusion::{Fusable, FusedSource};
use crate::io::Input;
use crate::parallel::{as_par_map, workers, InOrder, Parallelism};
use crate::{Error, Located, Pipeline, Result};

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
/// [`Decode`](crate::ErrorKind::Decode) error ([`flexible`](CsvSource::flexible) allows ragged rows).
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
/// The buffers of decoded runs go back to the reading thread to be filled again (as many as
/// can be in flight, none grown past twice a run), so the memory stays what it was at the
/// start of the input. Raw records hold about four batches plus one record and the parser's
/// 64 KiB buffer.
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
    pub fn batch(mut self, batch: impl Size) -> Self {
        let batch = batch.non_zero("batch");
        self.options.batch = batch;
        self
    }

    /// Threads parsing and decoding serde records at once (the machine's cores, at most 4, by
    /// default). Raw [`records`](CsvSource::records) are parsed on one thread.
    #[must_use]
    pub fn decode_threads(mut self, threads: impl Size) -> Self {
        let threads = threads.non_zero("decode_threads");
        self.options.threads = threads;
        self
    }

    /// About how many bytes of input a thread parses at a time for serde records: the input is
    /// cut at the first record end past this size (256 KiB by default).
    #[must_use]
    pub fn chunk_size(mut self, bytes: impl Size) -> Self {
        let bytes = bytes.non_zero("chunk_size");
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
    ///
    /// The pipeline is [`Fusable`]: a [`filter`](Pipeline::filter), [`map`](Pipeline::map) or
    /// [`filter_map`](Pipeline::filter_map) right after it runs on the decoding threads (see
    /// [`fusion`](crate::fusion)).
    pub fn deserialize<T>(self) -> Pipeline<CsvDecode<T>, Fusable>
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
    /// The plain chain, [`deserialize`](CsvSource::deserialize) then `filter_map(f)`, runs `f`
    /// on the decoding threads too, but the runs take turns at it (so that an `FnMut` sees the
    /// values in order); this `f` is `Fn + Sync` and runs on every decoding thread at once.
    /// Worth it when each record takes real work to turn into what the pipeline wants; `f`
    /// must not block.
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
    pub fn deserialize_filter_map<T, U, F>(self, f: F) -> Pipeline<CsvDecode<U>, Fusable>
    where
        T: DeserializeOwned,
        U: Send + 'static,
        F: Fn(T) -> Option<U> + Send + Sync + 'static,
    {
        Pipeline::fusable(self.plan(move |value: T, _: &Decoder| f(value), |_, _, _, _| {}))
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
        // Not fusable: a fused stage would see each position before it is moved by what came
        // before its run.
        Pipeline::new(self.plan(
            |value: T, decoder: &Decoder| Some(Located::new(value, decoder.last_position())),
            |located, record, line, byte| located.shift_position(record, line, byte),
        ))
    }

    /// The stream of records decoded as `T` and passed through `f` (which sees where each
    /// record is) on the decoding threads; `shift` moves a value's position by what came
    /// before its run, as errors' positions are moved. Nothing starts before the first poll,
    /// so that fused stages can still join `f`.
    fn plan<T, U, F>(self, f: F, shift: chunks::Shift<U>) -> CsvDecode<U>
    where
        T: DeserializeOwned,
        U: Send + 'static,
        F: Fn(T, &Decoder) -> Option<U> + Send + Sync + 'static,
    {
        let decode = if self.options.comment.is_some() {
            Decode::Records(Box::new(move |decoder: &mut Decoder| {
                decoder.next_kept(None, None, &f)
            }))
        } else {
            Decode::Runs(Arc::new(move |run| chunks::decode(run, &f)))
        };
        CsvDecode {
            inner: Planned::new(Plan {
                input: self.input,
                options: self.options,
                decode,
                shift,
            }),
        }
    }
}

/// The runs decoded or queued at once on `threads` workers: one queued for each worker, so
/// that one finishing never waits for the next to be pulled.
fn in_flight(threads: NonZeroUsize) -> NonZeroUsize {
    threads.saturating_mul(NonZeroUsize::MIN.saturating_add(1))
}

/// A decode not started yet: what it reads, and how records become values.
struct Plan<U> {
    input: Input,
    options: Options,
    decode: Decode<U>,
    shift: chunks::Shift<U>,
}

/// The next value a decoder reading record by record keeps, or its error.
type NextRecord<U> = Box<dyn FnMut(&mut Decoder) -> Option<Result<U>> + Send>;

/// How records become values; boxed so that `CsvDecode` names only the type that comes out,
/// not the record type or the functions.
enum Decode<U> {
    // Records parsed one after another on the reading thread (a comment byte is set: a
    // comment line may hold any quote, so runs cannot be cut ahead of the parser).
    Records(NextRecord<U>),
    // Runs of whole records cut ahead of the parser, each decoded whole.
    Runs(Arc<dyn Fn(chunks::Chunk) -> chunks::Parsed<U> + Send + Sync>),
}

impl<U: Send + 'static> Plan<U> {
    /// The plan with `f` run on each value after what it did, on the same threads. On runs
    /// decoded on several threads, the runs take turns at `f`, in input order.
    fn then<V, F>(self, f: F) -> Plan<V>
    where
        V: Send + 'static,
        F: FnMut(U) -> Option<V> + Send + 'static,
    {
        self.with_decode(|decode| match decode {
            Decode::Records(mut next) => {
                let mut f = f;
                Decode::Records(Box::new(move |decoder: &mut Decoder| loop {
                    match next(decoder)? {
                        Ok(value) => {
                            if let Some(kept) = f(value) {
                                return Some(Ok(kept));
                            }
                        }
                        Err(e) => return Some(Err(e)),
                    }
                }))
            }
            Decode::Runs(decode) => {
                let f = Arc::new(InOrder::new(f));
                Decode::Runs(Arc::new(move |run: chunks::Chunk| {
                    let seq = run.seq();
                    f.run_after(seq, || decode(run), |f, parsed| parsed.filter_map(f))
                }))
            }
        })
    }

    /// The plan with `f` run on each value after what it did, on every decoding thread at
    /// once; a panic in `f` is an error in the value's place, as in `par_map`.
    fn then_parallel<V, F>(self, f: F) -> Plan<V>
    where
        V: Send + 'static,
        F: Fn(U) -> V + Send + Sync + 'static,
    {
        let each = as_par_map(f);
        self.with_decode(|decode| match decode {
            Decode::Records(mut next) => Decode::Records(Box::new(move |decoder: &mut Decoder| {
                next(decoder).map(|item| item.and_then(&each))
            })),
            Decode::Runs(decode) => Decode::Runs(Arc::new(move |run| decode(run).and_then(&each))),
        })
    }

    /// The plan with its decoding made over by `make`, reading the same input. Only plans
    /// without positions to move are fused (`deserialize_located` is not), so the new one
    /// moves none.
    fn with_decode<V>(self, make: impl FnOnce(Decode<U>) -> Decode<V>) -> Plan<V> {
        Plan {
            input: self.input,
            options: self.options,
            decode: make(self.decode),
            shift: |_, _, _, _| {},
        }
    }
}

impl<U: Send + 'static> planned::Plan for Plan<U> {
    type Value = U;
    type Running = Running<U>;

    /// The threads that decode at once: the reading thread alone, or the workers.
    fn decoders(&self) -> usize {
        match self.decode {
            Decode::Records(_) => 1,
            Decode::Runs(_) if self.options.threads.get() == 1 => 1,
            Decode::Runs(_) => workers(in_flight(self.options.threads)),
        }
    }

    fn start(self) -> Running<U> {
        let Plan {
            input,
            options,
            decode,
            shift,
        } = self;
        let decode = match decode {
            Decode::Records(mut next) => {
                let records = from_input(input, OPEN, options.batch, move |opened| {
                    let mut decoder = Decoder::new(opened, options);
                    std::iter::from_fn(move || next(&mut decoder))
                });
                return Running::Records(records.into_inner());
            }
            Decode::Runs(decode) => decode,
        };
        // A panic (in a fused closure, or a type's `Deserialize`) loses its run's records: a
        // fatal error, which ends the stream, never one that a policy could skip as a record.
        let decode = move |run: chunks::Chunk| {
            let place = run.place();
            std::panic::catch_unwind(AssertUnwindSafe(|| decode(run))).unwrap_or_else(|panic| {
                let message = format!(
                    "a closure panicked on the run of records from here; none of them is read: {}",
                    panic_message(&*panic)
                );
                chunks::Parsed::failed(Error::internal(OPERATION, message).fatal(), place)
            })
        };
        let chunk = options.chunk.get();
        let runs: DecodedRuns<U> = if options.threads.get() == 1 {
            from_input(input, OPEN, NonZeroUsize::MIN, move |opened| {
                chunks::Splitter::new(opened, options, chunk).map(move |run| run.map(&decode))
            })
            .boxed()
            .into_inner()
        } else {
            let in_flight = in_flight(options.threads);
            from_input(input, OPEN, NonZeroUsize::MIN, move |opened| {
                chunks::Splitter::new(opened, options, chunk)
            })
            .par_map(
                // A run queued for each worker: one finishing never waits for the next to be
                // pulled. The window is no larger, so no more runs are held than run at once.
                Parallelism::new(in_flight).window(in_flight),
                decode,
            )
            .boxed()
            .into_inner()
        };
        Running::Runs(FlattenBatches::new(chunks::Rebase::new(runs, shift)))
    }
}

impl<T: Send + 'static> crate::fusion::private::Sealed for CsvDecode<T> {}

impl<T: Send + 'static> FusedSource for CsvDecode<T> {
    type Value = T;
    type With<U: Send + 'static> = CsvDecode<U>;

    fn then<U, F>(self, f: F) -> CsvDecode<U>
    where
        U: Send + 'static,
        F: FnMut(T) -> Option<U> + Send + 'static,
    {
        CsvDecode {
            inner: self.inner.then(f, Plan::then),
        }
    }

    fn then_parallel<U, F>(self, limit: NonZeroUsize, ordered: bool, f: F) -> CsvDecode<U>
    where
        U: Send + 'static,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        CsvDecode {
            inner: self
                .inner
                .then_parallel(limit, ordered, f, Plan::then_parallel),
        }
    }
}

/// Stream for [`CsvSource::deserialize`] and [`CsvSource::deserialize_filter_map`].
#[must_use = "streams do nothing unless polled"]
pub struct CsvDecode<T: Send + 'static> {
    inner: Planned<Plan<T>>,
}

/// Runs of records, decoded in order (on the workers, or on the reading thread); boxed so that
/// `CsvDecode` names only the type that comes out, not the record type or the function.
type DecodedRuns<T> = futures_util::stream::BoxStream<'static, Result<chunks::Parsed<T>>>;

/// A started decode.
enum Running<T> {
    // Runs cut ahead of the parser.
    Runs(FlattenBatches<chunks::Rebase<DecodedRuns<T>, T>, T>),
    // Records parsed one after another on the reading thread.
    Records(Blocking<T>),
}

impl<T: Send + 'static> std::fmt::Debug for CsvDecode<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvDecode")
            .field("state", &self.inner.state())
            .finish()
    }
}

impl<T: Send + 'static> Stream for CsvDecode<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T: Send + 'static> FusedStream for CsvDecode<T> {
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}

impl<T: Send + 'static> Stream for Running<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        // Both parts are `Unpin`: the adapters are, and so is `Blocking`.
        match &mut *self {
            Running::Runs(stream) => Pin::new(stream).poll_next(cx),
            Running::Records(stream) => Pin::new(stream).poll_next(cx),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Running::Runs(stream) => stream.size_hint(),
            Running::Records(stream) => stream.size_hint(),
        }
    }
}

impl<T: Send + 'static> FusedStream for Running<T> {
    fn is_terminated(&self) -> bool {
        match self {
            Running::Runs(stream) => stream.is_terminated(),
            Running::Records(stream) => stream.is_terminated(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::quotes::{check_quotes, QuoteFault};
    use super::reading::Reading;
    use super::{CsvSource, Decoder, PARSE_BUFFER};
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

    use super::decoder::decode_record;
    use super::reading::HeaderRow;

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
