//! The line reader the text sources share: bounded line length, positions, CRLF.

use std::io::BufRead;
use std::sync::Arc;

use crate::{Error, ErrorKind, Position};

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// The longest raw text an error carries for the dead-letter sink.
pub(crate) const RAW_PREFIX: usize = 4096;

/// Where the line just read starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LineAt {
    /// Line number, from 1.
    pub(crate) line: u64,
    /// Byte offset of the line's first byte, from 0.
    pub(crate) byte: u64,
}

/// Reads lines of at most `max_len` bytes (without the line ending) into a reused buffer.
///
/// A longer line is reported as a [`Decode`](ErrorKind::Decode) error as soon as it is known
/// to be too long (not at its end, which may never come: `/dev/zero` has none), without ever
/// holding more than `max_len` and two bytes of it; the next read skips the rest of it, so
/// reading goes on with the next line.
pub(crate) struct LineReader {
    reader: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    max_len: usize,
    source: Arc<str>,
    operation: &'static str,
    line: u64,
    byte: u64,
    failed: bool,
    // A line found too long before its end was reported: its rest is skipped before the next.
    skipping: bool,
    // Whether the start of the input was looked at for a byte-order mark.
    started: bool,
}

impl LineReader {
    pub(crate) fn new(
        reader: Box<dyn BufRead + Send>,
        max_len: usize,
        source: Arc<str>,
        operation: &'static str,
    ) -> Self {
        LineReader {
            reader,
            buf: Vec::new(),
            max_len,
            source,
            operation,
            line: 0,
            byte: 0,
            failed: false,
            skipping: false,
            started: false,
        }
    }

    /// The source's name.
    #[cfg(feature = "jsonl")]
    pub(crate) fn source(&self) -> Arc<str> {
        Arc::clone(&self.source)
    }

    /// The position of a line, for errors.
    pub(crate) fn position(&self, at: LineAt, record: Option<u64>) -> Position {
        let pos = Position::new()
            .with_source(Arc::clone(&self.source))
            .with_line(at.line)
            .with_byte(at.byte);
        match record {
            Some(record) => pos.with_record(record),
            None => pos,
        }
    }

    /// The next line without its ending, or `None` at the end of the input. After an I/O
    /// error, it returns `None`.
    pub(crate) fn next_line(&mut self) -> Option<Result<(LineAt, &[u8]), Error>> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let read = self.append_line(&mut buf);
        self.buf = buf;
        Some(read?.map(|at| (at, &self.buf[..])))
    }

    /// Drops a UTF-8 byte-order mark at the start of the input: it marks the encoding and is
    /// no part of the first line. (Byte offsets still count it.)
    fn start(&mut self) -> Result<(), Error> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        let available = loop {
            match self.reader.fill_buf() {
                Ok(available) => break available,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_failed(e)),
            }
        };
        if available.starts_with(BOM) {
            self.reader.consume(BOM.len());
            self.byte += BOM.len() as u64;
        }
        Ok(())
    }

    /// The error for a failed read, where the next line starts (or, within a line, where the
    /// read stopped); nothing is read after it.
    fn read_failed(&mut self, e: std::io::Error) -> Error {
        self.failed = true;
        let at = LineAt {
            line: self.line + 1,
            byte: self.byte,
        };
        Error::io(self.operation, e)
            .with_position(self.position(at, None))
            .fatal()
    }

    /// Appends the whole lines already read ahead (at most `most` of them) to `out` in one
    /// copy, and calls `each` with each line's place in `out` (without its ending), its
    /// position and its text; returns how many. It stops before a line that is not wholly read
    /// ahead, or is over the limit: [`append_line`](LineReader::append_line) reads those.
    ///
    /// Finding each line's end with one search over the buffer, and copying the lines at
    /// once, costs a fraction of reading them one by one, and this runs over every byte of the
    /// input on the one thread that reads it. On an I/O error it returns the error, having
    /// appended nothing, and reads nothing after it.
    #[cfg(feature = "jsonl")]
    pub(crate) fn append_buffered(
        &mut self,
        out: &mut Vec<u8>,
        most: usize,
        mut each: impl FnMut(std::ops::Range<usize>, LineAt, &[u8]),
    ) -> Result<usize, Error> {
        if self.failed || most == 0 || self.skipping {
            return Ok(0);
        }
        self.start()?;
        let available = loop {
            match self.reader.fill_buf() {
                Ok(available) => break available,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_failed(e)),
            }
        };
        let base = out.len();
        let (mut taken, mut count) = (0, 0);
        for end in memchr::memchr_iter(b'\n', available) {
            let mut line = &available[taken..end];
            // A CRLF ending: the CR belongs to the ending (as in `append_line`).
            if let Some(text) = line.strip_suffix(b"\r") {
                line = text;
            }
            if count == most || line.len() > self.max_len {
                break;
            }
            let at = LineAt {
                line: self.line + 1,
                byte: self.byte,
            };
            each(base + taken..base + taken + line.len(), at, line);
            self.line += 1;
            self.byte += (end + 1 - taken) as u64;
            taken = end + 1;
            count += 1;
        }
        out.extend_from_slice(&available[..taken]);
        self.reader.consume(taken);
        Ok(count)
    }

    /// Skips the rest of a line reported too long: `false` if the input ended in it.
    fn skip_rest(&mut self) -> Result<bool, Error> {
        loop {
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_failed(e)),
            };
            if available.is_empty() {
                self.skipping = false;
                self.line += 1;
                return Ok(false);
            }
            if let Some(i) = memchr::memchr(b'\n', available) {
                self.reader.consume(i + 1);
                self.byte += (i + 1) as u64;
                self.skipping = false;
                self.line += 1;
                return Ok(true);
            }
            let n = available.len();
            self.reader.consume(n);
            self.byte += n as u64;
        }
    }

    /// Appends the next line, without its ending, to `out`, or returns `None` at the end of
    /// the input; on an error (a line over the limit, or an I/O error, after which it returns
    /// `None`) `out` is left as it was.
    pub(crate) fn append_line(&mut self, out: &mut Vec<u8>) -> Option<Result<LineAt, Error>> {
        if self.failed {
            return None;
        }
        if let Err(e) = self.start() {
            return Some(Err(e));
        }
        if self.skipping {
            match self.skip_rest() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
        let base = out.len();
        let at = LineAt {
            line: self.line + 1,
            byte: self.byte,
        };
        let mut seen = 0usize;
        let mut ended = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    out.truncate(base);
                    return Some(Err(self.read_failed(e)));
                }
            };
            if available.is_empty() {
                break;
            }
            let (take, consume) = match memchr::memchr(b'\n', available) {
                Some(i) => {
                    ended = true;
                    (i, i + 1)
                }
                None => (available.len(), available.len()),
            };
            // One byte past the limit may be the CR of a CRLF ending; two are too many.
            let room = self
                .max_len
                .saturating_add(2)
                .saturating_sub(out.len() - base);
            out.extend_from_slice(&available[..take.min(room)]);
            seen += take;
            self.reader.consume(consume);
            self.byte += consume as u64;
            if ended {
                break;
            }
            if seen > self.max_len.saturating_add(1) {
                // Too long, and no end in sight: say so now, and skip the rest next time.
                self.skipping = true;
                let message = format!("line is longer than the limit of {} bytes", self.max_len);
                return Some(Err(self.too_long(out, base, at, message)));
            }
        }
        if !ended && seen == 0 {
            return None;
        }
        self.line += 1;
        // A CRLF ending: the CR belongs to the ending, not the line (and a line with nothing in
        // it has no CR of its own: the byte before it in `out` belongs to another line).
        let mut len = seen;
        if seen > 0 && out.len() - base == seen && out.last() == Some(&b'\r') {
            out.pop();
            len -= 1;
        }
        if len > self.max_len {
            let message = format!(
                "line is {len} bytes long, over the limit of {} bytes",
                self.max_len
            );
            return Some(Err(self.too_long(out, base, at, message)));
        }
        Some(Ok(at))
    }

    /// The error for the line at `at`, too long, whose first bytes are `out[base..]` (taken
    /// back out of `out`, but for a prefix kept as its raw text).
    fn too_long(&self, out: &mut Vec<u8>, base: usize, at: LineAt, message: String) -> Error {
        let error = Error::new(ErrorKind::Decode, self.operation)
            .with_position(self.position(at, None))
            .with_message(message)
            .with_raw_prefix(&out[base..], RAW_PREFIX);
        out.truncate(base);
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &'static [u8], max_len: usize) -> Vec<Result<(u64, u64, String), String>> {
        read_all_from(Box::new(input), max_len)
    }

    fn read_all_from(
        input: Box<dyn BufRead + Send>,
        max_len: usize,
    ) -> Vec<Result<(u64, u64, String), String>> {
        let mut reader = LineReader::new(input, max_len, Arc::from("t"), "test");
        let mut out = Vec::new();
        while let Some(item) = reader.next_line() {
            out.push(
                item.map(|(at, line)| {
                    (at.line, at.byte, String::from_utf8_lossy(line).into_owned())
                })
                .map_err(|e| e.to_string()),
            );
        }
        out
    }

    #[test]
    fn lines_with_lf_crlf_and_no_final_newline() {
        let out = read_all(b"a\r\nbb\n\nccc", 10);
        assert_eq!(
            out,
            [
                Ok((1, 0, "a".into())),
                Ok((2, 3, "bb".into())),
                Ok((3, 6, String::new())),
                Ok((4, 7, "ccc".into())),
            ]
        );
        assert!(read_all(b"", 10).is_empty());
        assert_eq!(read_all(b"x\n", 10), [Ok((1, 0, "x".into()))]);
    }

    #[test]
    fn a_long_line_is_an_error_and_reading_goes_on() {
        let out = read_all(b"ok\n0123456789ABC\nnext\n", 10);
        assert_eq!(out[0], Ok((1, 0, "ok".into())));
        assert_eq!(
            out[1],
            Err(
                "test: t: line 2, byte 3: line is 13 bytes long, over the limit of 10 bytes".into()
            )
        );
        assert_eq!(out[2], Ok((3, 17, "next".into())));
        // Exactly at the limit is fine, CR or not.
        assert_eq!(
            read_all(b"0123456789\r\n", 10),
            [Ok((1, 0, "0123456789".into()))]
        );
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_dropped_and_counted() {
        assert_eq!(
            read_all(b"\xef\xbb\xbfa\n\xef\xbb\xbfb\n", 10),
            [Ok((1, 3, "a".into())), Ok((2, 5, "\u{feff}b".into())),],
            "only at the start of the input"
        );
    }

    #[test]
    fn an_endless_line_fails_once_over_the_limit() {
        let endless = std::io::BufReader::with_capacity(64, std::io::repeat(b'0'));
        let mut reader = LineReader::new(Box::new(endless), 1000, Arc::from("zero"), "test");
        let err = match reader.next_line() {
            Some(Err(err)) => err,
            other => panic!("expected an error, got {:?}", other.map(|r| r.is_ok())),
        };
        assert_eq!(
            err.to_string(),
            "test: zero: line 1, byte 0: line is longer than the limit of 1000 bytes"
        );
        assert!(err.raw().is_some_and(|raw| raw.len() <= 1002));
    }

    #[test]
    fn a_line_found_too_long_before_its_end_is_skipped_to_its_end() {
        let text = b"ok\n0123456789ABCDEFGHIJ\r\nnext\r\n".to_vec();
        let input = std::io::BufReader::with_capacity(4, std::io::Cursor::new(text));
        let out = read_all_from(Box::new(input), 10);
        assert_eq!(
            out,
            [
                Ok((1, 0, "ok".into())),
                Err("test: t: line 2, byte 3: line is longer than the limit of 10 bytes".into()),
                Ok((3, 25, "next".into())),
            ]
        );
        // The same long line at the very end of the input: nothing more comes.
        let input = std::io::BufReader::with_capacity(
            4,
            std::io::Cursor::new(b"a\n0123456789ABC".to_vec()),
        );
        let mut reader = LineReader::new(Box::new(input), 10, Arc::from("t"), "test");
        assert!(matches!(reader.next_line(), Some(Ok(_))));
        assert!(matches!(reader.next_line(), Some(Err(_))));
        assert!(reader.next_line().is_none());
    }

    /// Reading the lines read ahead all at once, then the rest one at a time, gives the
    /// lines, positions and errors that reading one at a time gives, wherever the reads end.
    #[cfg(feature = "jsonl")]
    mod buffered {
        use proptest::prelude::*;

        use super::*;

        fn text() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                6 => Just(&b"ab"[..]),
                3 => Just(&b"\n"[..]),
                1 => Just(&b"\r\n"[..]),
                1 => Just(&b"\r"[..]),
                1 => Just(&b"\r\r\n"[..]),
                1 => Just(&b"0123456789"[..]),
            ];
            prop::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat())
        }

        type Line = Result<(u64, u64, Vec<u8>), String>;

        fn one_by_one(text: &[u8], max_len: usize, capacity: usize) -> Vec<Line> {
            let input =
                std::io::BufReader::with_capacity(capacity, std::io::Cursor::new(text.to_vec()));
            let mut reader = LineReader::new(Box::new(input), max_len, Arc::from("t"), "test");
            let mut out = Vec::new();
            while let Some(item) = reader.next_line() {
                out.push(
                    item.map(|(at, line)| (at.line, at.byte, line.to_vec()))
                        .map_err(|e| e.to_string()),
                );
            }
            out
        }

        fn buffered(text: &[u8], max_len: usize, capacity: usize, most: usize) -> Vec<Line> {
            let input =
                std::io::BufReader::with_capacity(capacity, std::io::Cursor::new(text.to_vec()));
            let mut reader = LineReader::new(Box::new(input), max_len, Arc::from("t"), "test");
            let (mut bytes, mut places, mut out) = (Vec::new(), Vec::new(), Vec::new());
            loop {
                let n = reader
                    .append_buffered(&mut bytes, most, |range, at, line| {
                        places.push((range, at, line.to_vec()));
                    })
                    .unwrap();
                for (range, at, line) in places.drain(..) {
                    assert_eq!(&bytes[range], &line[..], "the line is where `each` says");
                    out.push(Ok((at.line, at.byte, line)));
                }
                if n > 0 {
                    continue;
                }
                let start = bytes.len();
                match reader.append_line(&mut bytes) {
                    None => return out,
                    Some(Ok(at)) => out.push(Ok((at.line, at.byte, bytes[start..].to_vec()))),
                    Some(Err(e)) => out.push(Err(e.to_string())),
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn buffered_lines_read_as_lines_one_by_one(
                text in text(),
                max_len in 1usize..14,
                capacity in 1usize..24,
                most in 1usize..5,
            ) {
                prop_assert_eq!(
                    buffered(&text, max_len, capacity, most),
                    one_by_one(&text, max_len, capacity)
                );
            }
        }
    }
}
