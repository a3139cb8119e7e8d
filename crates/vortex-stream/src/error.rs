//! The one error type of vortex: [`Error`], its [`ErrorKind`] and the [`Position`] of the
//! record it concerns.
//!
//! Errors travel inside the stream as `Err` items, so every stage can see them, count them,
//! route them to a dead-letter sink or stop on them. An error records where it arose (the
//! *operation*, such as `"csv source: decode"` or `"try_map"`), the record position when known,
//! and its cause, which [`std::error::Error::source`] returns unchanged. Later stages never
//! overwrite the operation: a decode error is still a decode error after ten maps.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::ack::Ack;

/// A `Result` whose error defaults to vortex's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed error from user code or a third-party library: the cause of an [`Error`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong, in broad classes that decide how an error is handled.
///
/// Bugs ([`Internal`](ErrorKind::Internal)) are kept apart from bad data
/// ([`Decode`](ErrorKind::Decode), [`Validation`](ErrorKind::Validation)), failing
/// dependencies ([`Io`](ErrorKind::Io), [`Database`](ErrorKind::Database),
/// [`Http`](ErrorKind::Http)) and control flow ([`Cancelled`](ErrorKind::Cancelled),
/// [`Timeout`](ErrorKind::Timeout)).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// Reading or writing failed at the operating-system level.
    Io,
    /// Input bytes could not be decoded into a record (bad CSV, JSON, UTF-8, an over-long line).
    Decode,
    /// A decoded record broke a rule the pipeline checks.
    Validation,
    /// A stage reached the bound it was given (a full `distinct` set, an error budget).
    Capacity,
    /// The pipeline was cancelled through its token.
    Cancelled,
    /// A deadline or timeout passed.
    Timeout,
    /// A circuit breaker is open and failed the call fast.
    CircuitOpen,
    /// A database driver reported an error.
    Database,
    /// An HTTP request or response failed.
    Http,
    /// User code (a closure given to a stage) returned an error.
    User,
    /// A bug: a broken invariant or a panic inside a stage.
    Internal,
}

impl ErrorKind {
    /// A short lowercase name for the kind, as used in reports and metrics.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Io => "io",
            ErrorKind::Decode => "decode",
            ErrorKind::Validation => "validation",
            ErrorKind::Capacity => "capacity",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Timeout => "timeout",
            ErrorKind::CircuitOpen => "circuit open",
            ErrorKind::Database => "database",
            ErrorKind::Http => "http",
            ErrorKind::User => "user",
            ErrorKind::Internal => "internal",
        }
    }

    /// The message shown when an error carries none of its own.
    const fn default_message(self) -> &'static str {
        match self {
            ErrorKind::Io => "i/o error",
            ErrorKind::Decode => "could not decode record",
            ErrorKind::Validation => "record failed validation",
            ErrorKind::Capacity => "capacity exceeded",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Timeout => "timed out",
            ErrorKind::CircuitOpen => "circuit breaker is open",
            ErrorKind::Database => "database error",
            ErrorKind::Http => "http error",
            ErrorKind::User => "stage failed",
            ErrorKind::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the input a record came from: the source's name, the record index, the line and
/// the byte offset, each where known.
///
/// Record indexes count from 0; lines count from 1, as editors show them; byte offsets count
/// from 0 at the start of the (decompressed) input.
///
/// ```
/// use vortex_stream::Position;
///
/// let pos = Position::new().with_source("orders.csv").with_record(17).with_line(18).with_byte(902);
/// assert_eq!(pos.to_string(), "orders.csv: record 17 (line 18, byte 902)");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Position {
    source: Option<Arc<str>>,
    record: Option<u64>,
    line: Option<u64>,
    byte: Option<u64>,
}

impl Position {
    /// An empty position; fill it with the `with_*` methods.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the source name (a path, a URL without credentials, or a name the caller gave).
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Arc<str>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Sets the record index, counted from 0.
    #[must_use]
    pub fn with_record(mut self, record: u64) -> Self {
        self.record = Some(record);
        self
    }

    /// Sets the line number, counted from 1.
    #[must_use]
    pub fn with_line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }

    /// Sets the byte offset, counted from 0.
    #[must_use]
    pub fn with_byte(mut self, byte: u64) -> Self {
        self.byte = Some(byte);
        self
    }

    /// This position moved by `record`, `line` and `byte` (wrapping), those that are set.
    #[cfg(feature = "csv")]
    pub(crate) fn shifted(&self, record: u64, line: u64, byte: u64) -> Position {
        Position {
            source: self.source.clone(),
            record: self.record.map(|r| r.wrapping_add(record)),
            line: self.line.map(|l| l.wrapping_add(line)),
            byte: self.byte.map(|b| b.wrapping_add(byte)),
        }
    }

    /// The source name, if known.
    #[must_use]
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The record index (from 0), if known.
    #[must_use]
    pub fn record(&self) -> Option<u64> {
        self.record
    }

    /// The line number (from 1), if known.
    #[must_use]
    pub fn line(&self) -> Option<u64> {
        self.line
    }

    /// The byte offset (from 0), if known.
    #[must_use]
    pub fn byte(&self) -> Option<u64> {
        self.byte
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote = false;
        if let Some(source) = &self.source {
            f.write_str(source)?;
            wrote = true;
        }
        if let Some(record) = self.record {
            if wrote {
                f.write_str(": ")?;
            }
            write!(f, "record {record}")?;
            wrote = true;
        }
        let detail = match (self.line, self.byte) {
            (Some(line), Some(byte)) => Some(format!("line {line}, byte {byte}")),
            (Some(line), None) => Some(format!("line {line}")),
            (None, Some(byte)) => Some(format!("byte {byte}")),
            (None, None) => None,
        };
        if let Some(detail) = detail {
            match (wrote, self.record.is_some()) {
                (true, true) => write!(f, " ({detail})")?,
                (true, false) => write!(f, ": {detail}")?,
                (false, _) => f.write_str(&detail)?,
            }
        }
        Ok(())
    }
}

/// The error of every vortex stage: a [`kind`](Error::kind), the operation where it arose, the
/// record [`position`](Error::position) where known, and the cause as
/// [`source`](std::error::Error::source).
///
/// The error is one pointer wide, so `Result<T>` items stay small in the stream, and cheap to
/// clone: clones share the cause.
///
/// ```
/// use std::error::Error as _;
/// use vortex_stream::{Error, ErrorKind, Position};
///
/// let cause = "abc".parse::<u32>().unwrap_err();
/// let err = Error::new(ErrorKind::Decode, "csv source: decode")
///     .with_position(Position::new().with_source("orders.csv").with_record(17).with_line(18))
///     .with_source(cause);
/// assert_eq!(err.kind(), ErrorKind::Decode);
/// assert_eq!(err.to_string(), "csv source: decode: orders.csv: record 17 (line 18): could not decode record");
/// assert!(err.source().is_some());
/// ```
#[derive(Clone)]
pub struct Error(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    kind: ErrorKind,
    operation: Cow<'static, str>,
    position: Option<Position>,
    message: Option<Cow<'static, str>>,
    // Shared, so that an error can be cloned (a `tee` hands one to every consumer).
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
    raw: Option<Box<[u8]>>,
    // The whole record's length when `raw` holds only its first bytes.
    raw_len: Option<u64>,
    fatal: bool,
    // The message retells the cause in other words (a parser's message without its own
    // position): the chain leaves the cause out, as when the message is its very text.
    retold: bool,
    // The acknowledgement share of the broker messages the failed record came from, decided
    // by whoever handles the error (a policy, or the terminal that returns it).
    ack: Option<Ack>,
}

impl Error {
    /// A new error of `kind` that arose in `operation` (a stage or source name such as
    /// `"try_map"` or `"csv source: decode"`).
    #[must_use]
    pub fn new(kind: ErrorKind, operation: impl Into<Cow<'static, str>>) -> Self {
        Error(Box::new(Inner {
            kind,
            operation: operation.into(),
            position: None,
            message: None,
            source: None,
            raw: None,
            raw_len: None,
            fatal: false,
            retold: false,
            ack: None,
        }))
    }

    /// Marks the error as fatal: it concerns the input (or the stage) as a whole, not one
    /// record, so no [`ErrorPolicy`](crate::ErrorPolicy) skips or dead-letters it and the
    /// stream ends with it.
    ///
    /// Sources mark every failure to open or read their input this way (a missing file, a
    /// directory, a read error, a truncated or corrupted compressed stream): `skip` is for bad
    /// records, never a way to hide a broken input.
    ///
    /// ```
    /// use vortex_stream::{Error, ErrorKind, ErrorPolicy, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let broken = Error::new(ErrorKind::Io, "my source").with_message("disk gone").fatal();
    /// let policy = ErrorPolicy::skip();
    /// let seen = Pipeline::from_results([Ok(1), Err(broken), Ok(2)])
    ///     .on_error(policy.clone())
    ///     .collect::<Vec<_>>()
    ///     .await;
    /// assert_eq!(seen.unwrap_err().message(), "disk gone");
    /// assert_eq!(policy.report().skipped(), 0);
    /// # }
    /// ```
    #[must_use]
    pub fn fatal(mut self) -> Self {
        self.0.fatal = true;
        self
    }

    /// Whether the error is [`fatal`](Error::fatal): no policy skips it.
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        self.0.fatal
    }

    /// Sets the position of the record the error concerns.
    #[must_use]
    pub fn with_position(mut self, position: Position) -> Self {
        self.0.position = Some(position);
        self
    }

    /// Sets a human-readable message (lowercase, no trailing period) shown after the position.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.0.message = Some(message.into());
        self
    }

    /// Sets the underlying cause, returned by [`source`](std::error::Error::source).
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.0.source = Some(Arc::from(source.into()));
        self
    }

    /// Sets the cause, which the message already tells in other words: the cause stays
    /// available ([`cause`](Error::cause)) but the chain (`source()`) skips it, so that
    /// printing the chain does not tell it twice.
    #[cfg(feature = "jsonl")]
    pub(crate) fn with_retold_source(mut self, source: impl Into<BoxError>) -> Self {
        self.0.retold = true;
        self.with_source(source)
    }

    /// Moves the position by what came before the part of the input it was counted in: adds
    /// `record`, `line` and `byte` (wrapping) to those that are set.
    #[cfg(feature = "csv")]
    pub(crate) fn shift_position(&mut self, record: u64, line: u64, byte: u64) {
        if let Some(pos) = self.0.position.as_mut() {
            *pos = pos.shifted(record, line, byte);
        }
    }

    /// Attaches the raw bytes of the bad record (or a prefix of them), for a dead-letter sink.
    #[must_use]
    pub fn with_raw(mut self, raw: impl Into<Box<[u8]>>) -> Self {
        self.0.raw = Some(raw.into());
        self
    }

    /// Attaches the first `limit` bytes of the bad record `raw` and, when that cuts it, its
    /// whole length, so that a dead letter says its raw text is not all of the record.
    #[must_use]
    pub(crate) fn with_raw_prefix(mut self, raw: &[u8], limit: usize) -> Self {
        if raw.len() > limit {
            self.0.raw_len = Some(raw.len() as u64);
        }
        self.with_raw(&raw[..raw.len().min(limit)])
    }

    /// The whole length of the bad record when [`raw`](Error::raw) holds only its first
    /// bytes; `None` when it holds all of them (or none).
    #[must_use]
    pub fn raw_len(&self) -> Option<u64> {
        self.0.raw_len
    }

    /// Attaches the acknowledgement share of the broker messages the failed record came
    /// from, for the error policy (or the terminal that returns the error) to decide.
    #[must_use]
    pub fn with_ack(mut self, ack: Ack) -> Self {
        self.0.ack = Some(ack);
        self
    }

    /// The acknowledgement share attached with [`with_ack`](Error::with_ack), if any.
    #[must_use]
    pub fn ack(&self) -> Option<&Ack> {
        self.0.ack.as_ref()
    }

    /// Takes the acknowledgement share attached with [`with_ack`](Error::with_ack), leaving
    /// none ([`Ack::none`] if there was none).
    pub fn take_ack(&mut self) -> Ack {
        self.0.ack.take().unwrap_or_default()
    }

    /// The raw bytes of the bad record, where the source kept them (decode errors do, up to
    /// a few KiB).
    #[must_use]
    pub fn raw(&self) -> Option<&[u8]> {
        self.0.raw.as_deref()
    }

    /// Wraps an error returned by user code in stage `operation`.
    ///
    /// If `cause` already is a vortex [`Error`] it is returned unchanged, so the operation and
    /// position recorded where it first arose are never overwritten. Any other cause becomes a
    /// [`User`](ErrorKind::User) error with `cause` as its source, and its message as this
    /// error's message.
    #[must_use]
    pub fn from_user(operation: impl Into<Cow<'static, str>>, cause: impl Into<BoxError>) -> Self {
        Self::from_boxed(ErrorKind::User, operation, cause.into())
    }

    /// Like [`from_user`](Error::from_user), with the kind given for a foreign cause.
    #[must_use]
    pub fn from_boxed(
        kind: ErrorKind,
        operation: impl Into<Cow<'static, str>>,
        cause: BoxError,
    ) -> Self {
        match cause.downcast::<Error>() {
            Ok(err) => *err,
            Err(cause) => {
                let message = cause.to_string();
                let mut err = Error::new(kind, operation).with_source(cause);
                if !message.is_empty() {
                    err = err.with_message(message);
                }
                err
            }
        }
    }

    /// An [`Internal`](ErrorKind::Internal) error: a bug, such as a panic inside a stage.
    #[must_use]
    pub fn internal(
        operation: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Error::new(ErrorKind::Internal, operation).with_message(message)
    }

    /// An [`Io`](ErrorKind::Io) error in `operation` caused by `cause`.
    #[must_use]
    pub fn io(operation: impl Into<Cow<'static, str>>, cause: std::io::Error) -> Self {
        let message = cause.to_string();
        // An input read past its limit is a bound reached, not a failing device.
        let kind = if cause.get_ref().is_some_and(|inner| inner.is::<OverLimit>()) {
            ErrorKind::Capacity
        } else {
            ErrorKind::Io
        };
        Error::new(kind, operation)
            .with_message(message)
            .with_source(cause)
    }

    /// The kind of error.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The operation (stage or source) where the error arose.
    #[must_use]
    pub fn operation(&self) -> &str {
        &self.0.operation
    }

    /// The position of the record concerned, where known.
    #[must_use]
    pub fn position(&self) -> Option<&Position> {
        self.0.position.as_ref()
    }

    /// The message shown after the position: the one given, or the kind's default.
    #[must_use]
    pub fn message(&self) -> &str {
        self.0
            .message
            .as_deref()
            .unwrap_or(self.0.kind.default_message())
    }

    /// Sets the position only if the error has none yet; a position recorded where the error
    /// arose is kept.
    #[must_use]
    pub fn or_position(mut self, position: impl FnOnce() -> Position) -> Self {
        if self.0.position.is_none() {
            self.0.position = Some(position());
        }
        self
    }

    /// The cause, shared with every clone of this error.
    #[must_use]
    pub fn cause(&self) -> Option<Arc<dyn StdError + Send + Sync + 'static>> {
        self.0.source.clone()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("operation", &self.0.operation)
            .field("position", &self.0.position)
            .field("message", &self.0.message)
            .field("source", &self.0.source)
            .field(
                "raw",
                &self.0.raw.as_ref().map(|raw| String::from_utf8_lossy(raw)),
            )
            .finish()
    }
}

/// The operation, the position and the message. Where the message is a cause's own text (as
/// [`Error::io`] and [`Error::from_user`] take it), [`source`](StdError::source) goes on from
/// that cause's own source, so a chain printed link by link (`anyhow`'s `{:#}`, a log) shows
/// each message once; [`Error::cause`] still gives the cause itself, to downcast.
///
/// ```
/// use std::error::Error as _;
/// use vortex_stream::{Error, Position};
///
/// let cause = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
/// let err = Error::io("lines source: open", cause)
///     .with_position(Position::new().with_source("orders.csv"));
/// assert_eq!(err.to_string(), "lines source: open: orders.csv: no such file");
/// assert!(err.source().is_none(), "the cause's text is shown: not again");
/// assert!(err.cause().unwrap().downcast_ref::<std::io::Error>().is_some());
/// ```
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.operation)?;
        if let Some(position) = &self.0.position {
            let shown = position.to_string();
            if !shown.is_empty() {
                write!(f, ": {shown}")?;
            }
        }
        write!(f, ": {}", self.message())
    }
}

impl StdError for Error {
    /// The cause, unless this error's message already is the cause's text: then the cause's
    /// own source, so that no message is told twice down the chain.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        let cause = self.0.source.as_deref()?;
        let told = self.0.message.as_deref().is_some_and(|message| {
            // Only the cause's text itself: a message of its own that merely contains it
            // (`"column id: " + cause`) still leaves the cause to the chain.
            *message == *cause.to_string()
        });
        if told || self.0.retold {
            cause.source()
        } else {
            Some(cause as &(dyn StdError + 'static))
        }
    }
}

impl From<std::io::Error> for Error {
    /// An I/O error from an unnamed operation; prefer [`Error::io`] to name it.
    fn from(cause: std::io::Error) -> Self {
        Error::io("io", cause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_one_pointer_wide() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
        assert_eq!(
            std::mem::size_of::<Result<u64>>(),
            2 * std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn user_error_keeps_an_inner_vortex_error() {
        let inner = Error::new(ErrorKind::Decode, "csv source: decode")
            .with_position(Position::new().with_record(3));
        let wrapped = Error::from_user("try_map", inner);
        assert_eq!(wrapped.kind(), ErrorKind::Decode);
        assert_eq!(wrapped.operation(), "csv source: decode");
        assert_eq!(wrapped.position().and_then(Position::record), Some(3));
    }

    #[test]
    fn user_error_wraps_a_foreign_cause() {
        let cause = "x".parse::<i32>().unwrap_err();
        let err = Error::from_user("try_map", cause);
        assert_eq!(err.kind(), ErrorKind::User);
        assert_eq!(err.to_string(), "try_map: invalid digit found in string");
        // Told in the message: the chain does not tell it again, `cause` keeps it.
        assert!(err.source().is_none());
        assert!(err.cause().is_some());
        let wrapped = Error::new(ErrorKind::User, "stage")
            .with_message("the batch failed")
            .with_source(err.clone());
        let mut chain = vec![wrapped.to_string()];
        let mut next = wrapped.source();
        while let Some(cause) = next {
            chain.push(cause.to_string());
            next = cause.source();
        }
        assert_eq!(
            chain,
            [
                "stage: the batch failed",
                "try_map: invalid digit found in string"
            ]
        );
    }

    #[test]
    fn or_position_keeps_the_first_position() {
        let err = Error::new(ErrorKind::Validation, "validate")
            .with_position(Position::new().with_record(1))
            .or_position(|| Position::new().with_record(9));
        assert_eq!(err.position().and_then(Position::record), Some(1));
        let err = Error::new(ErrorKind::Validation, "validate")
            .or_position(|| Position::new().with_record(9));
        assert_eq!(err.position().and_then(Position::record), Some(9));
    }

    #[test]
    fn position_display_covers_partial_positions() {
        assert_eq!(Position::new().to_string(), "");
        assert_eq!(Position::new().with_line(4).to_string(), "line 4");
        assert_eq!(
            Position::new()
                .with_source("a.jsonl")
                .with_byte(10)
                .to_string(),
            "a.jsonl: byte 10"
        );
        assert_eq!(Position::new().with_record(2).to_string(), "record 2");
        let err = Error::new(ErrorKind::Timeout, "deadline").with_position(Position::new());
        assert_eq!(err.to_string(), "deadline: timed out");
    }
}

/// The marker inside the I/O error of an input read past its
/// [`limit`](crate::io::Input::limit), which makes it a [`Capacity`](ErrorKind::Capacity) error.
#[derive(Debug)]
pub(crate) struct OverLimit(pub(crate) u64);

impl fmt::Display for OverLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the input is over its limit of {} bytes", self.0)
    }
}

impl std::error::Error for OverLimit {}

/// The text of a panic payload, when it has one.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
