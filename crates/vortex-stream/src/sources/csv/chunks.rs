//! Parallel CSV parsing: the input is cut into runs of whole records on the reading thread,
//! and each run is parsed and decoded on a worker, in order.
//!
//! Cutting is exact, not a guess: [`Splitter`] follows the parser's quoting rules (a quote
//! opens a quoted field only at the start of a field; inside one, a doubled quote is a quote
//! and any other quote closes it), so it never cuts inside a quoted field, whatever the data.
//! It only needs to look at the quote characters (found with `memchr`) and at the last line
//! end of each unquoted stretch, so it runs at memory speed while the workers parse.
//!
//! Positions: a worker numbers records, lines and bytes from the start of its run, and
//! [`Rebase`] adds what came before, in order, to the errors it passes on.

use core::pin::Pin;
use core::task::{ready, Context, Poll};
use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use core::marker::PhantomData;
use csv::ByteRecord;

use futures_core::Stream;
use pin_project_lite::pin_project;
use serde::de::DeserializeOwned;

use super::skip::RecordEnd;
use super::{Decoder, Headers, Options, BOM, OPERATION, PARSE_BUFFER};
use crate::io::OpenedInput;
use crate::{Error, ErrorKind, Position, Result};

/// Bytes read from the input at a time.
const READ: usize = 64 * 1024;

/// What every run of one input shares: the options, the header row and the field count.
#[derive(Debug)]
struct Shared {
    source: Arc<str>,
    options: Options,
    headers: Option<super::reading::HeaderRow>,
    // The field count every record must have (not checked when flexible).
    expected: Option<usize>,
    most_records: AtomicUsize,
    // Run buffers handed back by the workers, for the next runs (see `Spare`).
    spare: Spare,
}

/// The buffers of decoded runs, handed back from the workers to the reading thread: filled,
/// decoded and filled again, so that a run's buffer is not allocated on the reading thread
/// and freed on a worker each time (measured on W1 at 10M rows: that churn kept about 3 MiB
/// more memory resident). At most `most` are kept, and none grown past twice a run.
#[derive(Debug)]
struct Spare {
    free: std::sync::Mutex<Vec<Vec<u8>>>,
    most: usize,
    largest: usize,
}

impl Spare {
    fn take(&self) -> Option<Vec<u8>> {
        self.free.lock().ok()?.pop()
    }

    /// Takes `bytes` back, at their length: they are written over before they are read (see
    /// [`Filled`]), so that they need not be zeroed again.
    fn give(&self, bytes: Vec<u8>) {
        if bytes.capacity() > self.largest {
            return;
        }
        if let Ok(mut free) = self.free.lock() {
            if free.len() < self.most {
                free.push(bytes);
            }
        }
    }
}

/// The bytes read and not cut into runs yet: the first `len` of `bytes`, which is all that is
/// ever read. The vector keeps the longest length it had, so that what it held before (or what
/// a run's buffer handed back held) is written over by the next read instead of zeroed first:
/// reading into a vector needs its bytes initialized, and zeroing 64 KiB before every read
/// took 3.8% of W1's instructions. Written by hand because `Read::read_buf`, which reads into
/// bytes not initialized, is not stable.
struct Filled {
    bytes: Vec<u8>,
    len: usize,
}

impl std::ops::Deref for Filled {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Filled {
    /// Nothing filled yet; whatever `bytes` holds is written over.
    fn new(bytes: Vec<u8>) -> Self {
        Filled { bytes, len: 0 }
    }

    /// The `n` bytes after those filled, to read into.
    fn unfilled(&mut self, n: usize) -> &mut [u8] {
        let end = self.len + n;
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        &mut self.bytes[self.len..end]
    }

    /// Counts `n` more bytes filled (as a read into [`unfilled`](Filled::unfilled) said).
    fn advance(&mut self, n: usize) {
        self.len = (self.len + n).min(self.bytes.len());
    }

    /// Drops the first `n` bytes filled.
    fn drain_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.bytes.copy_within(n..self.len, 0);
        self.len -= n;
    }

    /// The first `end` bytes filled, as a vector of their own; the rest are moved to the start
    /// of `spare`, which holds them from now on.
    fn split_front(&mut self, end: usize, mut spare: Vec<u8>) -> Vec<u8> {
        let end = end.min(self.len);
        let rest = self.len - end;
        if spare.len() < rest {
            spare.resize(rest, 0);
        }
        spare[..rest].copy_from_slice(&self.bytes[end..self.len]);
        let mut run = std::mem::replace(&mut self.bytes, spare);
        run.truncate(end);
        self.len = rest;
        run
    }
}

/// A run of whole records, to be parsed on a worker.
#[derive(Debug)]
pub(super) struct Chunk {
    bytes: Vec<u8>,
    shared: Arc<Shared>,
    // The offset of `bytes[0]` in the input.
    byte: u64,
    // A record too long to parse, read past and not held.
    too_long: Option<TooLong>,
    // The run's place among the input's runs, from 0: fused stages take runs in this order.
    seq: u64,
}

impl Chunk {
    /// The run's place among the input's runs, from 0.
    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    /// The input's name and the offset of the run's first byte in it.
    pub(super) fn place(&self) -> (Arc<str>, u64) {
        (Arc::clone(&self.shared.source), self.byte)
    }
}

/// A record read past as too long: the line feeds in it, and the bytes and line feeds before
/// its first byte (blank lines, the rest of a CRLF).
#[derive(Clone, Copy, Debug)]
struct TooLong {
    lines: u64,
    start: (u64, u64),
}

/// The records of one run, decoded; positions in errors count from the start of the run.
#[derive(Debug)]
pub(super) struct Parsed<T> {
    items: Vec<Result<T>>,
    records: u64,
    lines: u64,
    byte: u64,
}

impl<T> Parsed<T> {
    /// The run with `f` run on each value in order, in its place; errors stay where they are.
    pub(super) fn and_then<U>(self, f: impl Fn(T) -> Result<U>) -> Parsed<U> {
        self.with_items(|items| items.map(|item| item.and_then(&f)).collect())
    }

    /// A run that failed as a whole with `error`, placed at the run's first record (its
    /// records are not read); `run` is what [`Chunk::place`] gave.
    pub(super) fn failed(error: Error, (source, byte): (Arc<str>, u64)) -> Self {
        let at = Position::new()
            .with_source(source)
            .with_record(0)
            .with_line(1)
            .with_byte(0);
        Parsed {
            items: vec![Err(error.with_position(at))],
            records: 0,
            lines: 0,
            byte,
        }
    }

    /// The run with `f` run on each value in order, keeping those it returns; errors stay
    /// where they are.
    pub(super) fn filter_map<U>(self, mut f: impl FnMut(T) -> Option<U>) -> Parsed<U> {
        self.with_items(|items| {
            items
                .filter_map(|item| match item {
                    Ok(value) => f(value).map(Ok),
                    Err(e) => Some(Err(e)),
                })
                .collect()
        })
    }

    /// The run with its items made into others by `f`; its counts stay.
    fn with_items<U>(
        self,
        f: impl FnOnce(std::vec::IntoIter<Result<T>>) -> Vec<Result<U>>,
    ) -> Parsed<U> {
        Parsed {
            items: f(self.items.into_iter()),
            records: self.records,
            lines: self.lines,
            byte: self.byte,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quoting {
    // Outside a quoted field.
    Out,
    In,
    // Inside one, just after a quote: a second quote continues the field, anything else ends it.
    InAfterQuote,
}

/// Cuts the input into runs of whole records of about `target` bytes, on the reading thread.
pub(super) struct Splitter {
    reader: Box<dyn BufRead + Send>,
    source: Arc<str>,
    options: Options,
    target: usize,
    // The input from `start` on; `buf[0]` is always the start of a record.
    buf: Filled,
    start: u64,
    scanned: usize,
    quoting: Quoting,
    // The end of the last whole record in `buf` (0: none yet).
    boundary: usize,
    // A record end whose next bytes were not read yet (they must not be a byte-order mark).
    candidate: Option<usize>,
    // Set once the header row (or, without one, the first record's field count) is known.
    shared: Option<Arc<Shared>>,
    // A record too long to parse being read past, and where it started.
    skipping: Option<(RecordEnd, u64)>,
    failed: Option<Error>,
    eof: bool,
    done: bool,
    // Runs cut so far.
    runs: u64,
}

impl Splitter {
    pub(super) fn new(opened: OpenedInput, options: Options, target: usize) -> Self {
        Splitter {
            reader: opened.reader,
            source: opened.name,
            options,
            target: target.max(1),
            buf: Filled::new(Vec::with_capacity(target + READ)),
            start: 0,
            scanned: 0,
            quoting: Quoting::Out,
            boundary: 0,
            candidate: None,
            shared: None,
            skipping: None,
            failed: None,
            eof: false,
            done: false,
            runs: 0,
        }
    }

    /// Reads once more; `false` at the end of the input or on an error (kept for later).
    fn fill(&mut self) -> bool {
        let len = self.buf.len();
        let read = loop {
            match self.reader.read(self.buf.unfilled(READ)) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        match read {
            Ok(n) => {
                self.buf.advance(n);
                if n == 0 {
                    self.eof = true;
                }
                n > 0
            }
            Err(e) => {
                let position = Position::new()
                    .with_source(Arc::clone(&self.source))
                    .with_byte(self.start + len as u64);
                self.failed = Some(
                    Error::io("csv source: read", e)
                        .with_position(position)
                        .fatal(),
                );
                false
            }
        }
    }

    /// Follows the quoting through the bytes read since the last scan, noting the last record
    /// end outside quotes.
    fn scan(&mut self) {
        let quote = self.options.quote;
        let delimiter = self.options.delimiter;
        let end = self.buf.len();
        if let Some(next) = self.candidate {
            if let Some(bytes) = self.buf.get(next..next + BOM.len()) {
                if bytes != BOM {
                    self.boundary = self.boundary.max(next);
                }
                self.candidate = None;
            }
        }
        let mut pos = self.scanned;
        while pos < end {
            match self.quoting {
                Quoting::Out => {
                    let Some(q) = memchr::memchr(quote, &self.buf[pos..end]).map(|i| pos + i)
                    else {
                        self.note_boundary(pos, end);
                        break;
                    };
                    self.note_boundary(pos, q);
                    // The parser skips a byte-order mark at the start of the input.
                    let after_bom = self.start == 0 && q == BOM.len() && self.buf.starts_with(BOM);
                    let field_start = q == 0
                        || after_bom
                        || matches!(self.buf[q - 1], b'\n' | b'\r')
                        || self.buf[q - 1] == delimiter;
                    if field_start {
                        self.quoting = Quoting::In;
                    }
                    pos = q + 1;
                }
                Quoting::In => match memchr::memchr(quote, &self.buf[pos..end]) {
                    Some(i) => {
                        self.quoting = Quoting::InAfterQuote;
                        pos += i + 1;
                    }
                    None => break,
                },
                Quoting::InAfterQuote => {
                    if self.buf[pos] == quote {
                        self.quoting = Quoting::In;
                        pos += 1;
                    } else {
                        // The quoted field ended; this byte is read outside quotes.
                        self.quoting = Quoting::Out;
                    }
                }
            }
        }
        self.scanned = end;
    }

    /// Notes the last record end in `buf[from..to]`, read outside quotes.
    ///
    /// A record ends after the first byte of its line end: the parser takes the rest of a CRLF
    /// and any blank lines as the start of the next record, and counts its position from there.
    /// Cutting at the same place keeps every position as one parser reading it all has it.
    fn note_boundary(&mut self, from: usize, to: usize) {
        let Some(i) = memchr::memrchr2(b'\n', b'\r', &self.buf[from..to]) else {
            return;
        };
        // Line-end bytes just before a line end are outside quotes too: a quoted field cannot
        // end in one.
        let mut first = from + i;
        while first > 0 && matches!(self.buf[first - 1], b'\n' | b'\r') {
            first -= 1;
        }
        // Only line ends since the start of the run: no record ended in `buf` yet.
        if first == 0 {
            return;
        }
        // The parser drops a byte-order mark at the start of its input: a run may not start
        // with one (nor where the next bytes are not read yet), or a record beginning with those
        // bytes would lose them.
        let next = first + 1;
        match self.buf.get(next..next + BOM.len()) {
            Some(bytes) if bytes != BOM => self.boundary = next,
            Some(_) => {}
            // Looked at again once they are read.
            None => self.candidate = Some(next),
        }
    }

    /// Cuts the first `end` bytes off as a run; `None` if the header row is not whole yet.
    fn cut(&mut self, end: usize) -> Option<Chunk> {
        let shared = match &self.shared {
            Some(shared) => Arc::clone(shared),
            None => self.first_record(end)?,
        };
        let spare = shared
            .spare
            .take()
            .unwrap_or_else(|| Vec::with_capacity(self.target + READ));
        let bytes = self.buf.split_front(end, spare);
        let byte = self.start;
        self.start += end as u64;
        self.scanned -= end;
        self.boundary = self.boundary.saturating_sub(end);
        self.candidate = self.candidate.and_then(|c| c.checked_sub(end));
        Some(Chunk {
            bytes,
            shared,
            byte,
            too_long: None,
            seq: 0,
        })
    }

    /// Where the record after the last whole one starts, past blank lines (which count
    /// towards no record's length); `None` if nothing but blank lines follows it yet.
    fn content_start(&self) -> Option<usize> {
        let open = self.buf.get(self.boundary..)?;
        let blank = open.iter().position(|&b| b != b'\n' && b != b'\r')?;
        Some(self.boundary + blank)
    }

    /// Reads past the record being skipped (it starts `buf`) to its end or the input's, and
    /// then returns it as a run that is only its error; `None` while not skipping.
    fn skip(&mut self) -> Option<Chunk> {
        loop {
            let (end, _) = self.skipping.as_mut()?;
            let found = end.feed(&self.buf);
            let n = found.unwrap_or(self.buf.len());
            self.buf.drain_front(n);
            self.start += n as u64;
            self.scanned = 0;
            if found.is_none() && self.failed.is_none() && !self.eof && self.fill() {
                continue;
            }
            let (end, byte) = self.skipping.take()?;
            let (before, lines_before) = end.start();
            // The next record starts `buf`: follow its quoting from scratch.
            self.quoting = Quoting::Out;
            self.boundary = 0;
            self.candidate = None;
            self.scan();
            return Some(Chunk {
                bytes: Vec::new(),
                shared: Arc::clone(self.shared.as_ref()?),
                byte,
                too_long: Some(TooLong {
                    lines: end.lines(),
                    start: (before, lines_before),
                }),
                seq: 0,
            });
        }
    }

    /// Reads the header row (or, without one, the first record's field count) from
    /// `buf[..end]`. `None` if there is no whole record there yet and more input may come.
    fn first_record(&mut self, end: usize) -> Option<Arc<Shared>> {
        let options = self.options;
        let mut reader = super::reading::reader_builder(&options)
            .has_headers(false)
            .flexible(true)
            .from_reader(&self.buf[..end]);
        let mut record = ByteRecord::new();
        let found = matches!(reader.read_byte_record(&mut record), Ok(true));
        if !found && !self.eof {
            return None;
        }
        let shared = Arc::new(Shared {
            source: Arc::clone(&self.source),
            options,
            expected: (!options.flexible && found).then_some(record.len()),
            headers: (options.headers == Headers::Use)
                .then(|| super::reading::HeaderRow::new(record)),
            most_records: AtomicUsize::new(0),
            spare: Spare {
                free: std::sync::Mutex::new(Vec::new()),
                // The runs in flight (twice the workers) and the two being cut and read.
                most: options.threads.get() * 2 + 2,
                largest: 2 * (self.target + READ),
            },
        });
        self.shared = Some(Arc::clone(&shared));
        Some(shared)
    }

    /// The error for a first record (the header row, or the one that sets the field count)
    /// with no end in sight: longer than the cap allows. Nothing after it can be read, so it is
    /// fatal.
    fn too_long(&self) -> Error {
        Error::new(ErrorKind::Decode, OPERATION)
            .with_position(
                Position::new()
                    .with_source(Arc::clone(&self.source))
                    .with_record(0)
                    .with_line(1)
                    .with_byte(self.start),
            )
            .with_message(format!(
                "record is longer than the limit of {} bytes",
                self.options.max_record_len
            ))
            .fatal()
    }
}

impl Iterator for Splitter {
    type Item = Result<Chunk>;

    fn next(&mut self) -> Option<Result<Chunk>> {
        let mut next = self.next_run();
        if let Some(Ok(chunk)) = &mut next {
            chunk.seq = self.runs;
            self.runs += 1;
        }
        next
    }
}

impl Splitter {
    /// The next run, numbered 0 (`next` numbers it).
    fn next_run(&mut self) -> Option<Result<Chunk>> {
        // A record longer than the cap, with the parser's slack, is read past (see `skip`).
        let cap = self
            .options
            .max_record_len
            .saturating_add(PARSE_BUFFER)
            .saturating_add(1);
        loop {
            if self.done {
                return None;
            }
            if let Some(chunk) = self.skip() {
                return Some(Ok(chunk));
            }
            if self.boundary > 0 && self.buf.len() >= self.target {
                if let Some(chunk) = self.cut(self.boundary) {
                    return Some(Ok(chunk));
                }
            }
            match self.content_start() {
                Some(content) if self.buf.len() - content > cap => {
                    // The whole records before it go out first.
                    if self.boundary > 0 {
                        if let Some(chunk) = self.cut(self.boundary) {
                            return Some(Ok(chunk));
                        }
                    }
                    if self.shared.is_none() {
                        // The header row (or first record) itself: nothing can be read.
                        self.done = true;
                        return Some(Err(self.too_long()));
                    }
                    let config = (self.options.delimiter, self.options.quote);
                    let end = RecordEnd::new(config.0, config.1, self.options.comment);
                    self.skipping = Some((end, self.start));
                    continue;
                }
                // A long run of blank lines, and nothing else: a run of its own, so that the
                // buffer does not grow with it.
                None if self.boundary == 0
                    && self.buf.len() >= self.target.max(2)
                    && self.shared.is_some() =>
                {
                    // The last line end stays: the next run must not start with what may be
                    // a byte-order mark (the parser would drop it), and a line end is not one.
                    let end = self.buf.len() - 1;
                    if let Some(chunk) = self.cut(end) {
                        return Some(Ok(chunk));
                    }
                }
                _ => {}
            }
            if self.failed.is_none() && !self.eof && self.fill() {
                self.scan();
                continue;
            }
            // A read error: the whole records read before it go out first, then the error.
            if let Some(err) = self.failed.take() {
                self.eof = true;
                if self.boundary > 0 {
                    let end = self.boundary;
                    self.failed = Some(err);
                    if let Some(chunk) = self.cut(end) {
                        return Some(Ok(chunk));
                    }
                    continue;
                }
                self.done = true;
                return Some(Err(err));
            }
            // The end of the input: the rest is the last run.
            self.done = true;
            let end = self.buf.len();
            return self
                .cut(end)
                .filter(|chunk| !chunk.bytes.is_empty())
                .map(Ok);
        }
    }
}

/// Moves a value's position, if it has one, by the records, lines and bytes before its run.
pub(super) type Shift<T> = fn(&mut T, u64, u64, u64);

/// Parses and decodes one run on a worker, passing each record through `f`.
pub(super) fn decode<T, U>(chunk: Chunk, f: &impl Fn(T, &Decoder) -> Option<U>) -> Parsed<U>
where
    T: DeserializeOwned,
{
    let Chunk {
        bytes,
        shared,
        byte,
        too_long,
        seq: _,
    } = chunk;
    if let Some(TooLong { lines, start }) = too_long {
        // Positions count from the run's start, as in any run.
        let err = Error::new(ErrorKind::Decode, OPERATION)
            .with_position(
                Position::new()
                    .with_source(Arc::clone(&shared.source))
                    .with_record(0)
                    .with_line(1 + start.1)
                    .with_byte(start.0),
            )
            .with_message(format!(
                "record is longer than the limit of {} bytes",
                shared.options.max_record_len
            ));
        return Parsed {
            items: vec![Err(err)],
            records: 1,
            lines,
            byte,
        };
    }
    let mut options = shared.options;
    // The first run starts the input, header row and all, and is read as the whole input
    // would be; the others hold records only.
    if byte > 0 {
        options.headers = Headers::None;
    }
    options.flexible = true;
    // Sized by the largest run so far, so the list is not grown record by record, but never
    // beyond what this run could hold (a record takes two bytes at least, but for the last).
    let most = shared.most_records.load(Ordering::Relaxed);
    let mut items = Vec::with_capacity(most.min(bytes.len() / 2 + 1));
    let mut decoder = Decoder::in_memory(bytes, Arc::clone(&shared.source), options);
    decoder.expected = shared.expected;
    // A run of plain lines is checked as UTF-8 once, as a whole (see `Held`).
    let held = decoder.shared_held();
    let whole = held
        .as_deref()
        .and_then(|bytes| simdutf8::basic::from_utf8(bytes).ok());
    while let Some(item) = decoder.next_kept(shared.headers.as_ref(), whole, f) {
        items.push(item);
    }
    // The decoder's handle is then the only one, and gives the bytes back.
    drop(held);
    if let Some(bytes) = decoder.take_held() {
        shared.spare.give(bytes);
    }
    shared
        .most_records
        .fetch_max(items.len(), Ordering::Relaxed);
    Parsed {
        items,
        records: decoder.index,
        lines: decoder.lines_read(),
        byte,
    }
}

pin_project! {
    /// Turns decoded runs into batches whose errors count their positions from the start of
    /// the input, in order; [`FlattenBatches`](crate::sources::FlattenBatches) yields them.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub(super) struct Rebase<S, T> {
        #[pin]
        stream: S,
        records: u64,
        lines: u64,
        shift: Shift<T>,
        _items: PhantomData<fn() -> T>,
    }
}

impl<S, T> Rebase<S, T> {
    pub(super) fn new(stream: S, shift: Shift<T>) -> Self {
        Rebase {
            stream,
            records: 0,
            lines: 0,
            shift,
            _items: PhantomData,
        }
    }
}

impl<S, T> Stream for Rebase<S, T>
where
    S: Stream<Item = Result<Parsed<T>>>,
{
    type Item = Result<Vec<Result<T>>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let Some(parsed) = ready!(this.stream.poll_next(cx)) else {
            return Poll::Ready(None);
        };
        let Parsed {
            mut items,
            records,
            lines,
            byte,
        } = match parsed {
            Ok(parsed) => parsed,
            Err(err) => return Poll::Ready(Some(Err(err))),
        };
        for item in &mut items {
            match item {
                Err(err) => err.shift_position(*this.records, *this.lines, byte),
                Ok(value) => (this.shift)(value, *this.records, *this.lines, byte),
            }
        }
        *this.records += records;
        *this.lines += lines;
        Poll::Ready(Some(Ok(items)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::{Filled, Spare};

    #[test]
    fn only_the_bytes_filled_are_ever_seen() {
        // A buffer handed back holding an old run: none of it shows.
        let mut buf = Filled::new(b"old run, old bytes".to_vec());
        assert!(buf.is_empty());
        buf.unfilled(4).copy_from_slice(b"a,b\n");
        buf.advance(4);
        assert_eq!(&*buf, b"a,b\n");
        // A read that fills less than it was offered counts only what it filled.
        buf.unfilled(8)[..3].copy_from_slice(b"c,d");
        buf.advance(3);
        assert_eq!(&*buf, b"a,b\nc,d");
        // A reader claiming more than it was offered is held to the buffer.
        let mut short = Filled::new(Vec::new());
        short.unfilled(2).copy_from_slice(b"xy");
        short.advance(5);
        assert_eq!(&*short, b"xy");

        // Cut: the run is exactly its bytes; the rest starts the spare, over its old bytes.
        let run = buf.split_front(4, b"stale stale stale".to_vec());
        assert_eq!(run, b"a,b\n");
        assert_eq!(&*buf, b"c,d");
        buf.drain_front(2);
        assert_eq!(&*buf, b"d");
        // Cut past the bytes filled: the whole of them, nothing more.
        let run = buf.split_front(10, Vec::new());
        assert_eq!(run, b"d");
        assert!(buf.is_empty());
    }

    #[test]
    fn spare_buffers_are_bounded_in_count_and_size() {
        let spare = Spare {
            free: std::sync::Mutex::new(Vec::new()),
            most: 2,
            largest: 1024,
        };
        for _ in 0..5 {
            spare.give(Vec::with_capacity(512));
        }
        // A buffer grown past the largest is dropped, not kept.
        spare.give(Vec::with_capacity(4096));
        let kept: Vec<Vec<u8>> = std::iter::from_fn(|| spare.take()).collect();
        assert_eq!(kept.len(), 2);
        assert!(kept.iter().all(|b| b.is_empty() && b.capacity() <= 1024));
    }
}
