//! How a decoder reads its input: csv's parser over a length-capped reader, or the input
//! held whole and split into plain lines; the header row.

use csv::{ByteRecord, StringRecord};
use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::capped::{limit_after, Capped};
use super::fields::{FieldOrder, Names};
use super::{Headers, Options, PARSE_BUFFER};

/// A header row, and its text when it is valid UTF-8.
#[derive(Clone, Debug)]
pub(super) struct HeaderRow {
    pub(super) bytes: ByteRecord,
    pub(super) text: Option<StringRecord>,
    order: FieldOrder,
}

impl HeaderRow {
    pub(super) fn new(bytes: ByteRecord) -> Self {
        let text = StringRecord::from_byte_record(bytes.clone()).ok();
        HeaderRow {
            bytes,
            text,
            order: FieldOrder::default(),
        }
    }

    /// The headers to decode text records with, and what is known of the struct read with
    /// them (see [`FieldOrder`]): `Some(None)` without any, `None` if they are not text (and
    /// the records must be decoded as bytes).
    pub(super) fn names(headers: Option<&HeaderRow>) -> Option<Option<Names<'_>>> {
        match headers {
            None => Some(None),
            Some(row) => row.text.as_ref().map(|names| {
                Some(Names {
                    names,
                    order: &row.order,
                })
            }),
        }
    }

    /// [`names`](HeaderRow::names), the names alone, for csv's decoder.
    pub(super) fn as_text(headers: Option<&HeaderRow>) -> Option<Option<&StringRecord>> {
        Self::names(headers).map(|names| names.map(|n| n.names))
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
    /// (see [`Decoder::in_memory`](super::decoder::Decoder::in_memory)), from `next` on. No
    /// parser is built: building one costs as much as splitting a few hundred lines.
    Split { held: Held, next: Plain },
}

/// Input split into lines by a decoder, as bytes, shared with whoever decodes it: a run is
/// checked as UTF-8 once, as a whole, by the code that drives the decoder (see
/// [`Held::shared`]), which then hands each call the run's text, borrowed from its own
/// handle on the same bytes. Safe code cannot keep a `&str` of the bytes inside the decoder
/// that owns them; sharing them is what lets the check be made once, not line by line.
///
/// The checks are `simdutf8`'s (written by hand in SIMD, where `std` checks a byte at a time
/// once it meets a non-ASCII character: on names with accents, checking each line with it
/// measured 6% faster on W1 at 10M rows than checking the whole run with `std`; checking
/// the whole run with it takes 40% less time again than checking each line). A run that is
/// not valid UTF-8 as a whole has its lines checked one by one ([`Held::text`]), so that
/// its valid lines are still read as text.
pub(super) struct Held(Arc<Vec<u8>>);

impl Held {
    pub(super) fn new(bytes: Vec<u8>) -> Self {
        Held(Arc::new(bytes))
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Another handle on the bytes, to check them as a whole and borrow them as text while
    /// the decoder reads them (see [`Held::text_in`]).
    pub(super) fn shared(&self) -> Arc<Vec<u8>> {
        Arc::clone(&self.0)
    }

    /// The bytes, leaving none; `None` while another handle on them is kept.
    pub(super) fn take(&mut self) -> Option<Vec<u8>> {
        Arc::try_unwrap(std::mem::take(&mut self.0)).ok()
    }

    /// The text at `range`, if it is valid UTF-8.
    pub(super) fn text(&self, range: std::ops::Range<usize>) -> Option<&str> {
        simdutf8::basic::from_utf8(self.0.get(range)?).ok()
    }

    /// The text at `range`, taken from `whole` when that is the text of these very bytes
    /// (checked as UTF-8 once), or else checked on its own.
    pub(super) fn text_in<'a>(
        &'a self,
        whole: Option<&'a str>,
        range: std::ops::Range<usize>,
    ) -> Option<&'a str> {
        match whole {
            // The same bytes, not merely equal ones: a pointer and a length compared.
            Some(whole) if std::ptr::eq(whole.as_bytes(), self.as_bytes()) => whole.get(range),
            _ => self.text(range),
        }
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

#[cfg(test)]
mod tests {
    use super::Held;

    #[test]
    fn a_run_checked_whole_hands_out_its_own_lines_as_text() {
        let held = Held::new("1,Zoë\n2,Núñez\n".as_bytes().to_vec());
        let shared = held.shared();
        let whole = simdutf8::basic::from_utf8(&shared).ok();
        assert!(whole.is_some());
        assert_eq!(held.text_in(whole, 0..6), Some("1,Zoë"));
        assert_eq!(held.text_in(whole, 7..16), Some("2,Núñez"));
        // Inside a character: no text, as checking the bytes on their own would say.
        assert_eq!(held.text_in(whole, 0..5), None);
        assert_eq!(held.text(0..5), None);
        // Held elsewhere, the bytes cannot be taken back; once not, they can.
        let mut held = held;
        assert_eq!(held.take(), None);
        drop(shared);
        let mut held = Held::new(b"a,b\n".to_vec());
        assert_eq!(held.take(), Some(b"a,b\n".to_vec()));
    }

    #[test]
    fn text_of_other_bytes_is_never_taken_for_a_runs_own() {
        let held = Held::new(b"1,abc\n".to_vec());
        // Equal in length, not the same bytes: each line is checked on its own instead.
        let other = String::from("9,xyz\n");
        assert_eq!(held.text_in(Some(&other), 0..5), Some("1,abc"));
        // A run not valid as a whole: its valid lines are still text, its invalid ones not.
        let held = Held::new(b"1,ok\n2,\xff\n".to_vec());
        let shared = held.shared();
        assert!(simdutf8::basic::from_utf8(&shared).is_err());
        assert_eq!(held.text_in(None, 0..4), Some("1,ok"));
        assert_eq!(held.text_in(None, 5..8), None);
    }
}
