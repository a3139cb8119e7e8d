//! Skipping a record too long to parse: where it ends, found without holding it.
//!
//! A record over the cap cannot be handed to the parser (it would hold it whole), and ending
//! the source there would lose every record after it. So its bytes are run through
//! [`RecordEnd`], which follows the quoting exactly as the parser does and stops where the
//! parser would have ended the record; reading goes on from there with a new parser (or, for
//! runs, a new run). Byte by byte: this only ever runs over records already known to be bad.

/// Follows a record's bytes to its end, as the parser reads them.
#[derive(Clone, Copy, Debug)]
pub(super) struct RecordEnd {
    delimiter: u8,
    quote: u8,
    comment: Option<u8>,
    state: State,
    // Line feeds passed so far, for positions after the record.
    lines: u64,
    // Bytes followed so far.
    fed: u64,
    // Where the record's first byte is: bytes and line feeds before it.
    start: (u64, u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    // Before the record's first byte: blank lines (and the rest of a CRLF) are not part of it.
    Before,
    FieldStart,
    Unquoted,
    Quoted,
    // Inside a quoted field, just after a quote: a second quote continues the field.
    QuotedAfterQuote,
    // A comment line: it ends at its line feed, quotes or not.
    Comment,
}

impl RecordEnd {
    pub(super) fn new(delimiter: u8, quote: u8, comment: Option<u8>) -> Self {
        RecordEnd {
            delimiter,
            quote,
            comment,
            state: State::Before,
            lines: 0,
            fed: 0,
            start: (0, 0),
        }
    }

    /// The bytes and line feeds before the record's first byte (blank lines, the rest of a
    /// CRLF), once it has been seen.
    pub(super) fn start(&self) -> (u64, u64) {
        self.start
    }

    /// Line feeds passed so far (the one that ends the record, if it is one, is not passed).
    pub(super) fn lines(&self) -> u64 {
        self.lines
    }

    /// Follows `bytes`, the record's next ones; returns how many of them belong to it if it
    /// ends in them (up to its line end, whose bytes are left to be read as a blank line: the
    /// next record, whatever its first bytes, is read as it would be after any record), or
    /// `None` if it goes on past them.
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        let fed = self.fed;
        self.fed += bytes.len() as u64;
        for (i, &b) in bytes.iter().enumerate() {
            let line_end = b == b'\n' || b == b'\r';
            if self.state == State::Before && !line_end {
                self.start = (fed + i as u64, self.lines);
            }
            self.state = match self.state {
                State::Before if line_end => State::Before,
                State::Before if Some(b) == self.comment => State::Comment,
                State::Comment if b == b'\n' => return Some(i),
                State::Comment => State::Comment,
                State::Quoted if b == self.quote => State::QuotedAfterQuote,
                State::Quoted => State::Quoted,
                State::QuotedAfterQuote if b == self.quote => State::Quoted,
                // A quote closed the field: this byte is read outside quotes.
                State::Before | State::FieldStart | State::Unquoted | State::QuotedAfterQuote => {
                    if line_end {
                        return Some(i);
                    }
                    if b == self.delimiter {
                        State::FieldStart
                    } else if b == self.quote
                        && matches!(self.state, State::Before | State::FieldStart)
                    {
                        // A quote opens a quoted field only at the start of a field.
                        State::Quoted
                    } else {
                        State::Unquoted
                    }
                }
            };
            if b == b'\n' {
                self.lines += 1;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::RecordEnd;

    fn end(text: &str) -> Option<(usize, u64)> {
        let mut scan = RecordEnd::new(b',', b'"', Some(b'#'));
        scan.feed(text.as_bytes()).map(|n| (n, scan.lines()))
    }

    #[test]
    fn it_says_where_the_record_starts_past_blank_lines() {
        let mut scan = RecordEnd::new(b',', b'"', None);
        assert_eq!(scan.feed(b"\n\r\n"), None);
        assert_eq!(scan.feed(b"\nab\n"), Some(3));
        assert_eq!(scan.start(), (4, 3));
    }

    #[test]
    fn a_record_ends_at_its_first_line_end_byte_outside_quotes() {
        assert_eq!(end("a,b\nc"), Some((3, 0)));
        assert_eq!(end("a,b\r\nc"), Some((3, 0)));
        assert_eq!(
            end("\n\r\na,b\nc"),
            Some((6, 2)),
            "blank lines before it are passed"
        );
        assert_eq!(
            end("\"x\ny\",z\nnext"),
            Some((7, 1)),
            "a quoted line end is data"
        );
        assert_eq!(end("\"say \"\"hi\"\"\n\",1\n"), Some((15, 1)));
        assert_eq!(
            end("a\"b\nc"),
            Some((3, 0)),
            "a quote inside a field is data"
        );
        assert_eq!(end("\"a\"b\nc"), Some((4, 0)), "a closed quote, then data");
        assert_eq!(end("# a \"comment\nx"), Some((12, 0)));
        assert_eq!(end("\"open to the end"), None);
        assert_eq!(end("no end"), None);
    }

    #[test]
    fn it_finds_the_same_end_fed_in_pieces() {
        let text = b"\r\n\"a,\"\"\nb\"\"\",c,\"d\"\r\nrest\n";
        let whole = RecordEnd::new(b',', b'"', None).feed(text);
        for step in 1..text.len() {
            let mut scan = RecordEnd::new(b',', b'"', None);
            let mut found = None;
            for (k, piece) in text.chunks(step).enumerate() {
                if let Some(n) = scan.feed(piece) {
                    found = Some(k * step + n);
                    break;
                }
            }
            assert_eq!(found, whole, "step {step}");
        }
    }
}
