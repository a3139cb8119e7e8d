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
pub(super) fn check_quotes(raw: &[u8], delimiter: u8, quote: u8) -> Option<QuoteFault> {
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
