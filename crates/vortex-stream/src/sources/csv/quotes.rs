//! The RFC 4180 quote check of a record's raw bytes.

/// What a quote check found wrong in a record's raw bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum QuoteFault {
    /// A quoted field runs to the end of the input.
    Unterminated,
    /// A quote character inside a field that did not start with one.
    InUnquoted { field: usize },
}

/// Checks the quoting of one record's raw bytes, as RFC 4180 has it: a field is quoted only
/// if it starts with the quote, and a quote inside it is doubled.
///
/// A record whose quoting is sound is told so by [`sound`], which looks at its quotes only;
/// any other is walked byte by byte, which says what is wrong and where.
pub(super) fn check_quotes(raw: &[u8], delimiter: u8, quote: u8) -> Option<QuoteFault> {
    if sound(raw, delimiter, quote) {
        return None;
    }
    walk(raw, delimiter, quote)
}

/// Whether every quote in `raw` opens a field, is doubled inside one, or closes one right
/// before a delimiter, a line end or the end: exactly when [`walk`] finds nothing wrong.
///
/// Jumps from quote to quote with `memchr` instead of stepping through every byte (the walk
/// took about 20 instructions a byte, 5% of a CSV export's where one record in twenty holds
/// a quoted name). Written by hand: csv's parser unquotes what it is given, but never says
/// whether the quoting was sound.
fn sound(raw: &[u8], delimiter: u8, quote: u8) -> bool {
    // A quote that is also a delimiter or a line end: only the walk knows which it is where.
    if quote == delimiter || matches!(quote, b'\n' | b'\r') {
        return false;
    }
    // Where the search for the next quote starts; what lies before it is sound, and it is
    // outside quotes.
    let mut from = 0;
    while let Some(found) = memchr::memchr(quote, &raw[from..]) {
        let open = from + found;
        // A quote opens a field only where a field starts.
        let starts =
            open == 0 || matches!(raw[open - 1], b'\n' | b'\r') || raw[open - 1] == delimiter;
        if !starts {
            return false;
        }
        // Open to the end: not sound.
        let Some(close) = closing_quote(raw, open, quote, |_| {}) else {
            return false;
        };
        // A closing quote is followed by a delimiter, a line end, or nothing.
        match raw.get(close + 1) {
            None => return true,
            Some(&b) if b == delimiter || matches!(b, b'\n' | b'\r') => from = close + 2,
            Some(_) => return false,
        }
    }
    true
}

/// Reads the record at the start of `rest` into `record`, as csv's parser would, if its
/// quoting is sound ([`sound`]); returns the bytes it took, its line feed included (all of
/// `rest` if the end of the input ends it). `None`, with `record` in no particular state, for
/// a record that is not sound, which is left to the parser.
///
/// For input that holds no carriage return (a run of plain lines, see `Decoder::in_memory`):
/// the parser ends a record at one, this does not look for it. `unquoted` is where a field
/// holding doubled quotes is unquoted.
///
/// Jumps from quote to quote and from field to field with `memchr`, where the parser's state
/// machine takes every byte on its own (about 1,600 instructions a record of 90 bytes, 4% of
/// a CSV export's where one record in twenty holds a quoted name). Written by hand because
/// csv offers no faster way to parse one record whose quoting is known to be simple.
pub(super) fn read_sound(
    rest: &[u8],
    delimiter: u8,
    quote: u8,
    record: &mut csv::ByteRecord,
    unquoted: &mut Vec<u8>,
) -> Option<usize> {
    if quote == delimiter || matches!(quote, b'\n' | b'\r') {
        return None;
    }
    record.clear();
    // Where the next field starts.
    let mut pos = 0;
    loop {
        if rest.get(pos) == Some(&quote) {
            // A quoted field: up to the quote that is not doubled, each doubled one unquoted
            // (the text up to and with the first of the two kept, the second dropped).
            unquoted.clear();
            let mut from = pos + 1;
            let close = closing_quote(rest, pos, quote, |first| {
                unquoted.extend_from_slice(&rest[from..=first]);
                from = first + 2;
            })?;
            if unquoted.is_empty() {
                record.push_field(&rest[pos + 1..close]);
            } else {
                unquoted.extend_from_slice(&rest[from..close]);
                record.push_field(unquoted);
            }
            pos = close + 1;
            match rest.get(pos) {
                None => return Some(pos),
                Some(b'\n') => return Some(pos + 1),
                Some(&b) if b == delimiter => pos += 1,
                Some(_) => return None,
            }
        } else {
            // An unquoted field: up to the next delimiter or line end, with no quote on the way.
            let field = &rest[pos..];
            let Some(stop) = memchr::memchr3(delimiter, b'\n', quote, field) else {
                record.push_field(field);
                return Some(rest.len());
            };
            let at = pos + stop;
            match rest[at] {
                b if b == quote => return None,
                b'\n' => {
                    record.push_field(&rest[pos..at]);
                    return Some(at + 1);
                }
                _ => {
                    record.push_field(&rest[pos..at]);
                    pos = at + 1;
                }
            }
        }
    }
}

/// Where the quoted field opened by the quote at `open` closes: the first quote after it that
/// is not doubled. `doubled` is called with where each doubled quote's first half is, in
/// order. `None` if the field is open to the end of `raw`.
fn closing_quote(
    raw: &[u8],
    open: usize,
    quote: u8,
    mut doubled: impl FnMut(usize),
) -> Option<usize> {
    let mut inside = open + 1;
    loop {
        let at = inside + memchr::memchr(quote, &raw[inside..])?;
        if raw.get(at + 1) != Some(&quote) {
            return Some(at);
        }
        doubled(at);
        inside = at + 2;
    }
}

/// [`check_quotes`] one byte at a time.
fn walk(raw: &[u8], delimiter: u8, quote: u8) -> Option<QuoteFault> {
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
    use super::{check_quotes, sound, walk};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The jump from quote to quote says "sound" exactly where the walk finds nothing.
        #[test]
        fn the_quick_check_agrees_with_the_walk(
            raw in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b','), Just(b'\n'), Just(b'\r'), Just(b'a'), Just(b';')],
                0..40,
            ),
            delimiter in prop_oneof![Just(b','), Just(b';'), Just(b'"')],
            quote in prop_oneof![Just(b'"'), Just(b'\''), Just(b'\n')],
        ) {
            let walked = walk(&raw, delimiter, quote);
            // A quote that is also a delimiter or a line end is left to the walk.
            let plain = quote != delimiter && !matches!(quote, b'\n' | b'\r');
            prop_assert_eq!(sound(&raw, delimiter, quote), plain && walked.is_none());
            prop_assert_eq!(check_quotes(&raw, delimiter, quote), walked);
        }
    }
}
