//! How a decoder reads its input: csv's parser over a length-capped reader, or the input
//! held whole and split into plain lines; the header row.

use csv::{ByteRecord, StringRecord};
use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::capped::{limit_after, Capped};
use super::{Headers, Options, PARSE_BUFFER};

/// A header row, and its text when it is valid UTF-8.
#[derive(Clone, Debug)]
pub(super) struct HeaderRow {
    pub(super) bytes: ByteRecord,
    pub(super) text: Option<StringRecord>,
}

impl HeaderRow {
    pub(super) fn new(bytes: ByteRecord) -> Self {
        let text = StringRecord::from_byte_record(bytes.clone()).ok();
        HeaderRow { bytes, text }
    }

    /// The headers to decode text records with: `Some(None)` without any, `None` if they are
    /// not text (and the records must be decoded as bytes).
    pub(super) fn as_text(headers: Option<&HeaderRow>) -> Option<Option<&StringRecord>> {
        match headers {
            None => Some(None),
            Some(row) => row.text.as_ref().map(Some),
        }
    }
}

/// Where a decoder splitting lines itself has got to.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plain {
    pub(super) byte: usize,
    pub(super) line: u64,
}

/// Lets the parser's next record be read up to the cap of `max` bytes (plus its read-ahead).
pub(super) fn rearm(parser: &csv::Reader<Capped>, max: usize) {
    let limit = limit_after(parser.position().byte(), max);
    parser.get_ref().limit.store(limit, Ordering::Relaxed);
}

/// How a decoder reads its input.
// One per decoder, never moved in a loop: boxing the parser would only add a pointer chase
// per record.
#[allow(clippy::large_enum_variant)]
pub(super) enum Reading {
    /// csv's parser reads it.
    Parsed(csv::Reader<Capped>),
    /// The input, held whole, holds nothing but plain lines and is split into records here
    /// (see [`Decoder::in_memory`]), from `next` on. No parser is built: building one costs
    /// as much as splitting a few hundred lines.
    Split { held: Held, next: Plain },
}

/// Input split into lines by a decoder, as bytes: each line's text is checked as UTF-8 when
/// it is decoded, by `simdutf8` (written by hand in SIMD, where `std` checks a byte at a time
/// once it meets a non-ASCII character: on names with accents, checking each line so measured
/// 6% faster on W1 at 10M rows than checking the whole run with `std` up front).
pub(super) struct Held(Vec<u8>);

impl Held {
    pub(super) fn new(bytes: Vec<u8>) -> Self {
        Held(bytes)
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, leaving none.
    pub(super) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }

    /// The text at `range`, if it is valid UTF-8.
    pub(super) fn text(&self, range: std::ops::Range<usize>) -> Option<&str> {
        simdutf8::basic::from_utf8(self.0.get(range)?).ok()
    }
}

impl Reading {
    /// csv's parser, over `inner` (or, without one, over `held`, the input held whole).
    pub(super) fn parsed(
        inner: Option<Box<dyn BufRead + Send>>,
        held: Vec<u8>,
        options: &Options,
    ) -> Self {
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
    pub(super) fn over(capped: Capped, options: &Options, headers: bool, flexible: bool) -> Self {
        let parser = reader_builder(options)
            .flexible(flexible)
            .has_headers(headers)
            .buffer_capacity(PARSE_BUFFER)
            .from_reader(capped);
        Reading::Parsed(parser)
    }

    /// The input's bytes from `start` to `end`, if still held.
    pub(super) fn bytes(&self, start: u64, end: u64) -> Option<&[u8]> {
        match self {
            Reading::Parsed(parser) => parser.get_ref().span(start, end),
            Reading::Split { held, .. } => held
                .as_bytes()
                .get(usize::try_from(start).ok()?..usize::try_from(end).ok()?),
        }
    }
}

/// A CSV reader builder with the options that shape parsing.
pub(super) fn reader_builder(options: &Options) -> csv::ReaderBuilder {
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
