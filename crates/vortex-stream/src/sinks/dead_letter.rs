use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, BytesMut};
use futures_sink::Sink;
use pin_project_lite::pin_project;
use serde::Serialize;
use tokio::io::AsyncWrite;
use tokio_util::codec::{Encoder, FramedWrite};

use crate::{Error, Result};

pin_project! {
    /// A dead-letter destination for [`ErrorPolicy::dead_letter`](crate::ErrorPolicy::dead_letter):
    /// each error becomes one JSON line with its kind, operation, position, message (with its
    /// causes) and the raw text of the bad record, where the source kept it: as `raw` when it
    /// is UTF-8, else as `raw_hex`, its bytes in hex, so that no byte is lost to a replacement
    /// character. A source of text keeps a record's first 4 KiB; when that is not all of it,
    /// `raw_len` gives the record's whole length in bytes.
    ///
    /// ```json
    /// {"kind":"decode","operation":"csv source: decode","source":"orders.csv","record":17,"line":19,"byte":902,"error":"...","raw":"17,bob,oops"}
    /// ```
    ///
    /// Unlike a file [`Output`](crate::io::Output), a dead-letter file is written in place and
    /// flushed when the pipeline ends, so the bad records of a run that fails are kept.
    /// Memory: a write buffer of about 8 KiB.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::io::Input;
    /// use vortex_stream::sinks::DeadLetters;
    /// use vortex_stream::sources::CsvSource;
    /// use vortex_stream::ErrorPolicy;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("bad.jsonl");
    /// let policy = ErrorPolicy::dead_letter(DeadLetters::create(&path).await?);
    /// let ids = CsvSource::new(Input::bytes("id\n1\nx\n3\n"))
    ///     .deserialize::<(u32,)>()
    ///     .on_error(policy.clone())
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(ids, [(1,), (3,)]);
    /// let dead = std::fs::read_to_string(&path).unwrap();
    /// assert!(dead.contains(r#""record":1,"line":3"#));
    /// assert!(dead.contains(r#""raw":"x""#));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "sinks do nothing unless polled"]
    #[derive(Debug)]
    pub struct DeadLetters<W> {
        #[pin]
        inner: FramedWrite<W, DeadLetterCodec>,
    }
}

impl DeadLetters<tokio::fs::File> {
    /// Creates (or truncates) the file at `path`.
    ///
    /// # Errors
    ///
    /// When the file cannot be created.
    pub async fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = tokio::fs::File::create(path).await.map_err(|e| {
            Error::io("dead-letter sink: create", e)
                .with_position(crate::Position::new().with_source(path.display().to_string()))
        })?;
        Ok(DeadLetters::new(file))
    }
}

impl<W: AsyncWrite> DeadLetters<W> {
    /// Writes dead letters to any async writer.
    pub fn new(writer: W) -> Self {
        DeadLetters {
            inner: FramedWrite::new(writer, DeadLetterCodec),
        }
    }

    /// Consumes the sink, returning the writer.
    pub fn into_inner(self) -> W {
        self.inner.into_inner()
    }
}

impl<W: AsyncWrite> Sink<Error> for DeadLetters<W> {
    type Error = std::io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Error) -> std::io::Result<()> {
        self.project().inner.start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_close(cx)
    }
}

/// Encodes an [`Error`] as one JSON line, for [`DeadLetters`] or any `FramedWrite`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeadLetterCodec;

#[derive(Serialize)]
struct Letter<'a> {
    kind: &'static str,
    operation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    byte: Option<u64>,
    error: String,
    // The bad record's raw text when it is UTF-8...
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    // ...and its bytes in hex when not, rather than replacement characters in their place.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_hex: Option<String>,
    // The record's whole length when the raw text is only its first bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_len: Option<u64>,
}

impl Encoder<Error> for DeadLetterCodec {
    type Error = std::io::Error;

    fn encode(&mut self, err: Error, dst: &mut BytesMut) -> std::io::Result<()> {
        let mut text = err.to_string();
        let mut cause = std::error::Error::source(&err);
        // The chain tells each message once (see `Error`'s `source`).
        while let Some(next) = cause {
            text.push_str(": ");
            text.push_str(&next.to_string());
            cause = next.source();
        }
        let position = err.position();
        let letter = Letter {
            kind: err.kind().as_str(),
            operation: err.operation(),
            source: position.and_then(|p| p.source()),
            record: position.and_then(|p| p.record()),
            line: position.and_then(|p| p.line()),
            byte: position.and_then(|p| p.byte()),
            error: text,
            raw: err.raw().and_then(|raw| std::str::from_utf8(raw).ok()),
            raw_hex: err
                .raw()
                .filter(|raw| std::str::from_utf8(raw).is_err())
                .map(|raw| raw.iter().map(|b| format!("{b:02x}")).collect()),
            raw_len: err.raw_len(),
        };
        let mut out = dst.writer();
        serde_json::to_writer(&mut out, &letter)?;
        out.into_inner().put_u8(b'\n');
        Ok(())
    }
}
