//! The length-capped reader under the parser: a record longer than the cap is an error, not
//! an allocation, and the bytes of the current record are kept for checks and raw text.

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{BOM, PARSE_BUFFER};

pub(super) fn limit_after(byte: u64, max_record_len: usize) -> u64 {
    byte.saturating_add(max_record_len as u64)
        .saturating_add(PARSE_BUFFER as u64)
        .saturating_add(1)
}

/// Blank lines before a record, forgotten: where the record was counted from, where it
/// really starts, and the line feeds between.
#[derive(Clone, Copy, Debug)]
pub(super) struct Blank {
    pub(super) start: u64,
    pub(super) content: u64,
    pub(super) lines: u64,
}

/// Whether a parser error is `Capped` saying a record is over the cap.
pub(super) fn is_too_long(e: &csv::Error) -> bool {
    matches!(e.kind(), csv::ErrorKind::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<TooLong>()))
}

/// The marker inside the I/O error `Capped` returns.
#[derive(Debug)]
pub(super) struct TooLong;

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("record longer than the limit")
    }
}

impl std::error::Error for TooLong {}

/// Hands the parser at most `limit` bytes in all (past it, a record is too long), and keeps a
/// copy of what it handed over since the current record began, for checks and raw text.
/// Without `inner`, the input is `tail`, held whole from the start, and nothing is copied.
pub(super) struct Capped {
    pub(super) inner: Option<Box<dyn BufRead + Send>>,
    // Bytes read from `inner` past a skipped record, handed over before any more are read.
    pub(super) pending: Vec<u8>,
    pub(super) delivered: u64,
    pub(super) limit: Arc<AtomicU64>,
    // How far past a record's first byte the parser may read (the cap and its read-ahead).
    pub(super) budget: u64,
    // The blank lines last passed over (and forgotten) before a record.
    pub(super) blank: Option<Blank>,
    pub(super) tail: Vec<u8>,
    // The offset of `tail[0]` in the input.
    pub(super) tail_start: u64,
}

impl Capped {
    /// The bytes from `start` to `end`, if still held.
    pub(super) fn span(&self, start: u64, end: u64) -> Option<&[u8]> {
        let from = usize::try_from(start.checked_sub(self.tail_start)?).ok()?;
        let to = usize::try_from(end.checked_sub(self.tail_start)?).ok()?;
        self.tail.get(from..to)
    }

    /// Whether the record being read has only had blank lines so far: if so, the limit moves
    /// past them (they are not part of any record) and they are forgotten.
    #[cold]
    #[inline(never)]
    pub(super) fn past_blank_lines(&mut self) -> bool {
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
    pub(super) fn read_pending(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        self.tail.extend_from_slice(&buf[..n]);
        n
    }

    /// Forgets the bytes before `start`, once enough have piled up to make it worth a move.
    pub(super) fn forget_before(&mut self, start: u64) {
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
