//! The decoder: byte records read into a reused buffer, checked (field counts, quotes, NULs,
//! lengths) and decoded, with every error positioned; plain lines split without the parser.

use super::capped::{is_too_long, Capped};
use super::quotes::{check_quotes, read_sound, QuoteFault};
use super::reading::{rearm, HeaderRow, Held, Plain, Reading};
use super::{fields, skip};
use super::{Headers, Options, BOM, OPERATION};
use crate::io::lines::RAW_PREFIX;
use crate::io::OpenedInput;
use crate::{Error, ErrorKind, Position, Result};
use csv::ByteRecord;
use csv::StringRecord;
use serde::de::DeserializeOwned;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// A line of a decoder that splits lines itself: where its record starts, its text (without
/// the line end) and where the next begins.
pub(super) struct PlainLine {
    pub(super) at: RecordAt,
    pub(super) text: std::ops::Range<usize>,
    pub(super) end: usize,
    // The record holds a quote character: it is parsed, not split (see `plain_line`).
    pub(super) quoted: bool,
    // Its quoting is known to be sound: the quick reader read it (see `read_sound`), so the
    // quote check would find nothing.
    pub(super) sound: bool,
}

/// Where a record starts.
#[derive(Clone, Copy, Debug)]
pub(super) struct RecordAt {
    pub(super) record: u64,
    pub(super) line: u64,
    pub(super) byte: u64,
}

impl RecordAt {
    /// Record `record`, starting where `parser` has got to.
    pub(super) fn parsed(record: u64, parser: &csv::Reader<Capped>) -> Self {
        let position = parser.position();
        RecordAt {
            record,
            line: position.line(),
            byte: position.byte(),
        }
    }
}

/// Reads byte records into a reused buffer, turning parser errors into positioned errors.
pub(super) struct Decoder {
    pub(super) reading: Reading,
    pub(super) record: ByteRecord,
    // Stands in for `record` while its bytes are decoded as text (see `decode_record`).
    pub(super) spare: Option<ByteRecord>,
    // Where each field of the line being decoded in place ends (see `next_plain_as`).
    pub(super) ends: Vec<usize>,
    // The parser of the quoted records among plain lines, made at the first (see
    // `parse_quoted`).
    pub(super) quoted: Option<Box<Quoted>>,
    // Where a quoted field holding doubled quotes is unquoted (see `read_sound`).
    pub(super) unquoted: Vec<u8>,
    pub(super) headers: Option<HeaderRow>,
    pub(super) options: Options,
    pub(super) source: Arc<str>,
    pub(super) index: u64,
    pub(super) done: bool,
    // The field count every record must have, checked here rather than by the parser (a run
    // parsed on its own does not start with the record that sets it, nor does a parser started
    // after a record too long to parse).
    pub(super) expected: Option<usize>,
    // The field count of the first row, for a parser started after a record too long to parse.
    pub(super) first_len: Option<usize>,
    // Where the parser started in the input (it starts again after a record too long to
    // parse): its positions count from there.
    pub(super) base_line: u64,
    pub(super) base_byte: u64,
    // Where the record last read starts.
    pub(super) last: RecordAt,
    // Whether the input may hold a quote or a NUL at all: when it is known not to, the checks
    // of each record's bytes are skipped.
    pub(super) quotes: bool,
    pub(super) nuls: bool,
}

impl Drop for Decoder {
    fn drop(&mut self) {
        if let Some(quoted) = self.quoted.take() {
            quoted.spare();
        }
    }
}

impl Decoder {
    /// The run of plain lines this decoder split, once it is done with it (`None` for input
    /// it read through the parser).
    pub(super) fn take_held(&mut self) -> Option<Vec<u8>> {
        match &mut self.reading {
            Reading::Split { held, .. } => held.take(),
            Reading::Parsed(_) => None,
        }
    }

    /// Another handle on the run of plain lines this decoder splits, to check as UTF-8 as a
    /// whole and hand back as text (see [`Held`]); `None` for input read through the parser.
    pub(super) fn shared_held(&self) -> Option<Arc<Vec<u8>>> {
        match &self.reading {
            Reading::Split { held, .. } => Some(held.shared()),
            Reading::Parsed(_) => None,
        }
    }

    pub(super) fn new(opened: OpenedInput, options: Options) -> Self {
        let reading = Reading::parsed(Some(opened.reader), Vec::new(), &options);
        Decoder::with(reading, opened.name, options)
    }

    /// A decoder of input held whole in memory: its bytes are checked in place, not copied.
    ///
    /// The input is searched once for quotes and NULs, so that records are not searched one by
    /// one when there are none. When it holds no carriage return, NUL or comment anywhere, no
    /// header row or byte-order mark at the start, needs no trimming and is no longer than a
    /// record may be, it is split into records here, one per line, at the delimiter, instead
    /// of by the parser, which would read the same records; a record holding a quote
    /// character (a quoted field, perhaps over several lines) is read on its own, so that one
    /// `"Smith, Jr."` does not send the whole input to the parser: by a quick reader when its
    /// quoting is sound (RFC 4180: see `quotes::read_sound`), else by the parser's own state
    /// machine (`csv_core`), whose reading (and errors) the quick one matches.
    pub(super) fn in_memory(bytes: Vec<u8>, name: Arc<str>, options: Options) -> Self {
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
        // A quote that is also a delimiter or a line end would make records no line split
        // could find.
        let odd_quote =
            matches!(options.quote, b'\n' | b'\r') || options.quote == options.delimiter;
        let plain = !(nuls
            || quotes && odd_quote
            || options.trim
            || options.comment.is_some()
            || options.headers != Headers::None
            || bytes.starts_with(BOM)
            || matches!(options.delimiter, b'\n' | b'\r')
            || bytes.len() > options.max_record_len
            || crs);
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

    pub(super) fn with(reading: Reading, source: Arc<str>, options: Options) -> Self {
        Decoder {
            reading,
            record: ByteRecord::new(),
            spare: None,
            ends: Vec::new(),
            quoted: None,
            unquoted: Vec::new(),
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
    ///
    /// `whole` is the text of the run of plain lines this decoder splits, if it is known to be
    /// valid UTF-8 as a whole (see [`Held`]): its lines are then not checked one by one.
    pub(super) fn next_as<T: DeserializeOwned>(
        &mut self,
        headers: Option<&HeaderRow>,
        whole: Option<&str>,
    ) -> Option<Result<T>> {
        // A decoder splitting lines itself reads no header row of its own.
        if matches!(self.reading, Reading::Split { .. }) && !self.done {
            return self.next_plain_as(headers, whole);
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
    pub(super) fn next_kept<T, U>(
        &mut self,
        headers: Option<&HeaderRow>,
        whole: Option<&str>,
        f: &impl Fn(T, &Decoder) -> Option<U>,
    ) -> Option<Result<U>>
    where
        T: DeserializeOwned,
    {
        loop {
            match self.next_as::<T>(headers, whole)? {
                Ok(record) => match f(record, self) {
                    Some(kept) => return Some(Ok(kept)),
                    None => continue,
                },
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// The decode error for a record serde could not decode.
    pub(super) fn deserialize_error(&self, at: RecordAt, e: csv::Error) -> Error {
        let message = match e.kind() {
            csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
            other => format!("{other:?}"),
        };
        self.error(at, &self.record, message).with_source(e)
    }

    pub(super) fn position(&self, at: RecordAt) -> Position {
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
    pub(super) fn content_at(&self, at: RecordAt) -> RecordAt {
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
    pub(super) fn last_position(&self) -> Position {
        self.position(self.last)
    }

    /// The position of the record at `at`, as csv records carry one.
    pub(super) fn csv_position(&self, at: RecordAt) -> csv::Position {
        let at = self.content_at(at);
        let mut position = csv::Position::new();
        position
            .set_record(at.record)
            .set_line(at.line + self.base_line)
            .set_byte(at.byte + self.base_byte);
        position
    }

    /// Line feeds read so far (with those of the records skipped as too long).
    pub(super) fn lines_read(&self) -> u64 {
        self.base_line + self.at().line.saturating_sub(1)
    }

    /// A decode error for the record at `at`, carrying its raw text (or, if that is gone,
    /// its fields joined).
    pub(super) fn error(&self, at: RecordAt, fields: &ByteRecord, message: String) -> Error {
        // The record only: up to the end of its last line, as far as it was read.
        let start = self.content_at(at).byte;
        let raw = self.reading.bytes(start, self.at().byte).map(|raw| {
            let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
            raw.strip_suffix(b"\r").unwrap_or(raw)
        });
        let error = Error::new(ErrorKind::Decode, OPERATION)
            .with_position(self.position(at))
            .with_message(message);
        match raw {
            Some(raw) if !raw.is_empty() => error.with_raw_prefix(raw, RAW_PREFIX),
            _ => {
                let mut text = Vec::new();
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        text.push(self.options.delimiter);
                    }
                    text.extend_from_slice(field);
                }
                error.with_raw_prefix(&text, RAW_PREFIX)
            }
        }
    }

    /// The checks the parser does not make, on the raw bytes of the record just read.
    pub(super) fn check_raw(&self, at: RecordAt, end: u64) -> Option<Error> {
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
    pub(super) fn next_raw(&mut self) -> Option<(Result<()>, RecordAt)> {
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
    pub(super) fn read_past(&mut self, at: RecordAt) -> Error {
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
    pub(super) fn skip_too_long(&mut self, at: RecordAt) -> Option<Error> {
        let placeholder = Reading::Split {
            held: Held::new(Vec::new()),
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
    pub(super) fn check(&mut self, at: RecordAt, end: u64) -> Result<()> {
        self.check_with(at, end, true)
    }

    /// [`check`](Decoder::check) of a line split without the parser: it holds no quote (the
    /// split found none) and no NUL (the input has none), so its bytes are not searched again.
    fn check_plain(&mut self, at: RecordAt, end: u64) -> Result<()> {
        self.check_with(at, end, false)
    }

    fn check_with(&mut self, at: RecordAt, end: u64, raw: bool) -> Result<()> {
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
        } else if !raw {
            Ok(())
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
    pub(super) fn content_len(&self, at: RecordAt, end: u64) -> u64 {
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
    pub(super) fn next_plain(&mut self) -> Option<(Result<()>, RecordAt)> {
        let line = self.plain_line()?;
        if line.quoted {
            // Read into `record` already.
            return Some((self.check_quoted(line.at, line.end, line.sound), line.at));
        }
        let Reading::Split { held, .. } = &self.reading else {
            return None;
        };
        self.record.clear();
        push_fields(
            &mut self.record,
            &held.as_bytes()[line.text.clone()],
            self.options.delimiter,
        );
        Some((self.check_plain(line.at, line.end as u64), line.at))
    }

    /// The next line of a decoder that splits lines itself, `None` at the end: the parser would
    /// skip the empty lines, and end the record at the line end (or at the end of the input).
    pub(super) fn plain_line(&mut self) -> Option<PlainLine> {
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
        let quote = self.options.quote;
        let first = if self.quotes {
            memchr::memchr2(b'\n', quote, text)
        } else {
            memchr::memchr(b'\n', text)
        };
        let mut sound = false;
        let (text, end, quoted) = match first {
            Some(len) if text[len] == b'\n' => {
                line += 1;
                (start..start + len, start + len + 1, false)
            }
            Some(_) => {
                // A quote before the line's end: the record (a quoted field may hold line
                // ends) is read into `record`, and its end found, by the quick reader if its
                // quoting is sound (this input holds no carriage return), else by the parser.
                let (delimiter, quote) = (self.options.delimiter, quote);
                let rest = &held[start..];
                let read = read_sound(rest, delimiter, quote, &mut self.record, &mut self.unquoted);
                sound = read.is_some();
                let taken = match read {
                    Some(taken) => taken,
                    None => {
                        let options = &self.options;
                        let quoted = self.quoted.get_or_insert_with(|| Quoted::new(options));
                        quoted.read(rest, &mut self.record)
                    }
                };
                let end = start + taken;
                let raw = &held[start..end];
                line += memchr::memchr_iter(b'\n', raw).count() as u64;
                let text_end = if raw.ends_with(b"\n") { end - 1 } else { end };
                (start..text_end, end, true)
            }
            None => (start..held.len(), held.len(), false),
        };
        *next = Plain { byte: end, line };
        Some(PlainLine {
            at,
            text,
            end,
            quoted,
            sound,
        })
    }

    /// [`check`](Decoder::check) of a record holding a quote, read already: its raw bytes are
    /// checked again only if the quick reader did not find its quoting sound (the input has no
    /// NUL for the other check to find).
    fn check_quoted(&mut self, at: RecordAt, end: usize, sound: bool) -> Result<()> {
        self.check_with(at, end as u64, !sound)
    }

    /// [`next_as`](Decoder::next_as) for a decoder that splits lines itself: the line's fields
    /// are decoded where they lie (see [`fields`]), or, if that fails, read into a record and
    /// decoded as any other, so that the error is the same.
    pub(super) fn next_plain_as<T: DeserializeOwned>(
        &mut self,
        headers: Option<&HeaderRow>,
        whole: Option<&str>,
    ) -> Option<Result<T>> {
        let PlainLine {
            at,
            text,
            end,
            quoted,
            sound,
        } = self.plain_line()?;
        self.last = at;
        if quoted {
            // Read into `record` already, and checked here; a plain line is checked below.
            if let Err(err) = self.check_quoted(at, end, sound) {
                return Some(Err(err));
            }
        }
        let Reading::Split { held, .. } = &self.reading else {
            return None;
        };
        let delimiter = self.options.delimiter;
        // The fields to decode where they lie: the line's, split here, or the record's as the
        // parser unquoted them; one call decodes either. Headers that are not text leave the
        // fields to be read as bytes, by csv, as does text that is not UTF-8.
        let mut in_place = None;
        if let Some(headers) = HeaderRow::names(headers) {
            if quoted {
                if let Ok(fields) = simdutf8::basic::from_utf8(self.record.as_slice()) {
                    self.ends.clear();
                    let ends = (0..self.record.len()).filter_map(|i| self.record.range(i));
                    self.ends.extend(ends.map(|field| field.end));
                    in_place = Some(fields::LineFields::unquoted(fields, &self.ends, headers));
                }
            } else if let Some(line) = held.text_in(whole, text.clone()) {
                self.ends.clear();
                split_fields(line.as_bytes(), delimiter, |end| self.ends.push(end));
                // The checks `check` makes (a plain line has no quote or NUL for `check_raw`
                // to find): any failure is reported by it, below.
                let fits = self.expected.is_none_or(|e| e == self.ends.len())
                    && (end as u64).saturating_sub(at.byte) <= self.options.max_record_len as u64;
                if fits {
                    in_place = Some(fields::LineFields::new(line, &self.ends, headers));
                }
            }
        }
        if let Some(mut fields) = in_place {
            if let Ok(value) = T::deserialize(&mut fields) {
                if !quoted {
                    self.index += 1;
                }
                return Some(Ok(value));
            }
        }
        // Read as a record, through csv, so that the error is csv's.
        if !quoted {
            self.record.clear();
            push_fields(&mut self.record, &held.as_bytes()[text], delimiter);
            if let Err(err) = self.check_plain(at, end as u64) {
                return Some(Err(err));
            }
        }
        Some(
            decode_record(&mut self.record, &mut self.spare, headers)
                .map_err(|e| self.deserialize_error(at, e)),
        )
    }

    /// Where the next record starts.
    pub(super) fn at(&self) -> RecordAt {
        match &self.reading {
            Reading::Split { next, .. } => RecordAt {
                record: self.index,
                line: next.line,
                byte: next.byte as u64,
            },
            Reading::Parsed(parser) => RecordAt::parsed(self.index, parser),
        }
    }

    pub(super) fn too_long(&self, at: RecordAt, len: u64) -> Error {
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

    pub(super) fn parse_error(&self, e: csv::Error, at: RecordAt) -> Error {
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
pub(super) fn decode_record<T: DeserializeOwned>(
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
pub(super) fn push_fields(record: &mut ByteRecord, line: &[u8], delimiter: u8) {
    let mut start = 0;
    split_fields(line, delimiter, |end| {
        record.push_field(&line[start..end]);
        start = end + 1;
    });
}

/// Calls `each` with where each field of `line`, split at every `delimiter`, ends.
#[inline]
pub(super) fn split_fields(line: &[u8], delimiter: u8, mut each: impl FnMut(usize)) {
    pub(super) const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
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

/// The parser's own state machine, for one quoted record at a time among plain lines whose
/// quoting is not sound (see `quotes::read_sound`), with the buffers it fills (reused, as
/// long as the longest quoted record).
pub(super) struct Quoted {
    core: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    delimiter: u8,
    quote: u8,
}

thread_local! {
    /// The parser of the last decoder dropped on this thread, for the next one: building a
    /// parser compiles its state machine (about 17 µs, measured: 2% of a run of 10M records
    /// with a quoted one every few dozen, where each run of records made its own). Not a
    /// copy of one built once: csv-core's `Reader::clone` copies only part of the machine.
    static SPARE: std::cell::RefCell<Option<Box<Quoted>>> = const { std::cell::RefCell::new(None) };
}

/// The most buffer a spare parser keeps: one grown by a long quoted record is dropped.
const SPARE_BUFFER: usize = 64 * 1024;

impl Quoted {
    fn new(options: &Options) -> Box<Self> {
        let (delimiter, quote) = (options.delimiter, options.quote);
        let spare = SPARE.try_with(std::cell::RefCell::take).ok().flatten();
        if let Some(mut quoted) = spare {
            if (quoted.delimiter, quoted.quote) == (delimiter, quote) {
                quoted.prime();
                return quoted;
            }
        }
        let mut quoted = Box::new(Quoted {
            core: csv_core::ReaderBuilder::new()
                .delimiter(delimiter)
                .quote(quote)
                .build(),
            out: Vec::new(),
            ends: Vec::new(),
            delimiter,
            quote,
        });
        quoted.prime();
        quoted
    }

    /// Keeps the parser for the next decoder on this thread, unless a long record grew it.
    fn spare(self: Box<Self>) {
        if self.out.capacity() <= SPARE_BUFFER && self.ends.capacity() <= SPARE_BUFFER {
            // During the thread's own teardown there is nothing to keep it for.
            let _ = SPARE.try_with(|spare| spare.replace(Some(self)));
        }
    }

    /// Readies the parser for a record that is not the start of the input: it drops a
    /// byte-order mark only there, so it is handed a line end first (which it passes over).
    fn prime(&mut self) {
        self.core.reset();
        let _ = self.core.read_record(b"\n", &mut [], &mut []);
    }

    /// Reads the record at the start of `rest` into `record`; returns the bytes it took, its
    /// line feed included (all of `rest` if the end of the input ends it). After a record
    /// ended by its line feed, the parser is where it was before it; after one ended by the
    /// end of the input, it is readied again.
    // Off the path of plain lines: kept out of line, so that it does not weigh on theirs.
    #[cold]
    #[inline(never)]
    fn read(&mut self, rest: &[u8], record: &mut ByteRecord) -> usize {
        use csv_core::ReadRecordResult;
        record.clear();
        if self.out.is_empty() {
            self.out.resize(4096, 0);
            self.ends.resize(64, 0);
        }
        let (mut taken, mut written, mut fields) = (0, 0, 0);
        loop {
            let (result, read, out, ends) = self.core.read_record(
                &rest[taken..],
                &mut self.out[written..],
                &mut self.ends[fields..],
            );
            taken += read;
            written += out;
            fields += ends;
            match result {
                ReadRecordResult::InputEmpty if taken < rest.len() => {}
                // At the end of the input without a line end: the end ends the record.
                ReadRecordResult::InputEmpty => {
                    // The end of the input writes no byte, only the last field's end.
                    let (_, _, _, ends) = self.core.read_record(
                        &[],
                        &mut self.out[written..],
                        &mut self.ends[fields..],
                    );
                    fields += ends;
                    self.prime();
                    break;
                }
                ReadRecordResult::Record | ReadRecordResult::End => break,
                ReadRecordResult::OutputFull => self.out.resize(self.out.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
            }
        }
        let mut start = 0;
        for &end in &self.ends[..fields] {
            record.push_field(&self.out[start..end]);
            start = end;
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use csv::ByteRecord;
    use proptest::prelude::*;

    use super::super::quotes::{check_quotes, read_sound};
    use super::super::CsvSource;
    use super::Quoted;
    use crate::io::Input;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The quick reader of a record holding quotes reads what the parser reads, and takes
        /// as many bytes; it reads every record whose quoting is sound, and no other.
        #[test]
        fn a_sound_record_is_read_as_the_parser_reads_it(
            text in proptest::collection::vec(
                prop_oneof![
                    Just(&b"\""[..]), Just(&b","[..]), Just(&b"\n"[..]), Just(&b"a"[..]),
                    Just(&b"\xc3\xa9"[..]), Just(&b"\"\""[..]), Just(&b"12"[..]),
                ],
                0..24,
            ),
        ) {
            let rest: Vec<u8> = text.concat();
            // A record starts where no line end is (the decoder passes blank lines over).
            prop_assume!(rest.first().is_some_and(|&b| b != b'\n'));
            let options = CsvSource::new(Input::bytes("")).options;
            let mut parsed = ByteRecord::new();
            let taken = Quoted::new(&options).read(&rest, &mut parsed);
            let (mut quick, mut unquoted) = (ByteRecord::new(), Vec::new());
            let read = read_sound(&rest, b',', b'"', &mut quick, &mut unquoted);
            let sound = check_quotes(&rest[..taken], b',', b'"').is_none();
            if let Some(read) = read {
                prop_assert_eq!(read, taken);
                prop_assert_eq!(&quick, &parsed);
            }
            prop_assert_eq!(read.is_some(), sound, "{:?}", String::from_utf8_lossy(&rest));
        }
    }
}
