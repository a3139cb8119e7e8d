use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncRead;

use super::Compression;
use crate::{Error, ErrorKind, Position, Result};

/// Read buffer size: large enough that a read is rarely a system call per record.
const BUFFER: usize = 64 * 1024;

/// Where a source reads from: a file, stdin, any reader (sync or async) or bytes in memory.
///
/// The input is opened on the blocking pool when the pipeline is first polled, so
/// building a pipeline does no I/O, and an input that cannot be opened (missing, a folder,
/// unreadable) is the pipeline's first (and last) item: an [`Io`](crate::ErrorKind::Io) error
/// naming it. That error, and any failure to read the input later (including a truncated or
/// corrupted compressed stream), is [`fatal`](crate::Error::fatal): no error policy skips it.
/// A UTF-8 byte-order mark at the start is dropped by the text sources.
///
/// Its name (the path, `stdin`, or one given with [`name`](Input::name)) is the `source` of
/// every error position. Compression is detected unless set with
/// [`compression`](Input::compression).
///
/// # Examples
///
/// ```
/// use vortex_stream::io::{Compression, Input};
///
/// let a = Input::path("orders.csv.gz"); // gzip, from the extension
/// let b = Input::bytes("id\n1\n").name("inline");
/// let c = Input::stdin().compression(Compression::Zstd);
/// assert_eq!(b.source_name(), "inline");
/// # let _ = (a, c);
/// ```
pub struct Input {
    kind: InputKind,
    name: Arc<str>,
    compression: Compression,
    limit: Option<u64>,
}

enum InputKind {
    Path(PathBuf),
    #[cfg(feature = "http")]
    Url(String),
    Stdin,
    Reader(Box<dyn Read + Send>),
    AsyncReader(Box<dyn AsyncRead + Send + Unpin>),
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Input")
            .field("name", &self.name)
            .field("compression", &self.compression)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Input {
    fn new(kind: InputKind, name: impl Into<Arc<str>>) -> Self {
        Input {
            kind,
            name: name.into(),
            compression: Compression::Auto,
            limit: None,
        }
    }

    /// A file, opened when the pipeline starts.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let name = path.display().to_string();
        Input::new(InputKind::Path(path), name)
    }

    /// The body of a `GET` of `url`, streamed as it arrives (never downloaded whole first),
    /// through reqwest. A status other than 2xx is an [`Http`](crate::ErrorKind::Http) error
    /// naming the URL; so is a connection that breaks in the middle of the body. Needs the
    /// `http` feature and a tokio runtime.
    ///
    /// ```no_run
    /// use vortex_stream::io::Input;
    /// use vortex_stream::sources::JsonlSource;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let events = JsonlSource::new(Input::url("http://127.0.0.1:9000/events.jsonl.gz")).values();
    /// println!("{} events", events.count().await?);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "http")]
    pub fn url(url: impl Into<String>) -> Self {
        let url = url.into();
        let name = crate::redact::redact(&url);
        let path = url.split(['?', '#']).next().unwrap_or(&url).to_owned();
        let mut input = Input::new(InputKind::Url(url), name);
        if let Some(compression) = Compression::from_extension(std::path::Path::new(&path)) {
            input.compression = compression;
        }
        input
    }

    /// The process's standard input.
    pub fn stdin() -> Self {
        Input::new(InputKind::Stdin, "stdin")
    }

    /// Any sync reader; it is read on tokio's blocking pool.
    pub fn reader(reader: impl Read + Send + 'static) -> Self {
        Input::new(InputKind::Reader(Box::new(reader)), "reader")
    }

    /// Any async reader: a socket, an HTTP body, an upload. It is bridged onto the source's
    /// jobs on the blocking pool, so the pipeline must run inside a tokio runtime, and a job
    /// waiting for a slow peer's bytes holds its thread while it waits: bound how long a peer
    /// may take (a service's upload timeout and minimum rate) where peers are not trusted.
    pub fn async_reader(reader: impl AsyncRead + Send + Unpin + 'static) -> Self {
        Input::new(InputKind::AsyncReader(Box::new(reader)), "async reader")
    }

    /// Bytes in memory.
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        Input::new(
            InputKind::Reader(Box::new(std::io::Cursor::new(bytes.into()))),
            "bytes",
        )
    }

    /// Names the input in error positions (a URL without credentials, an upload's name).
    #[must_use]
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the compression instead of detecting it.
    #[must_use]
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Reads at most `bytes` bytes of the input, counted after decompression: past them, the
    /// source fails with a fatal [`Capacity`](crate::ErrorKind::Capacity) error. A guard
    /// against an upload that is small on the wire and huge once inflated (a gzip bomb).
    ///
    /// ```
    /// use vortex_stream::io::Input;
    /// use vortex_stream::sources::LinesSource;
    /// use vortex_stream::ErrorKind;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let err = LinesSource::new(Input::bytes("one\ntwo\nthree\n").limit(8))
    ///     .lines()
    ///     .count()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Capacity);
    /// assert!(err.is_fatal());
    /// # }
    /// ```
    #[must_use]
    pub fn limit(mut self, bytes: u64) -> Self {
        self.limit = Some(bytes);
        self
    }

    /// The name errors give for this input.
    #[must_use]
    pub fn source_name(&self) -> &str {
        &self.name
    }

    /// Opens the input and its decompressor; blocking, so it runs on the source's thread.
    pub(crate) fn open(self, operation: &'static str) -> Result<OpenedInput> {
        let name = self.name;
        let failed = |e: std::io::Error| {
            Error::io(operation, e)
                .with_position(Position::new().with_source(Arc::clone(&name)))
                .fatal()
        };
        let mut compression = self.compression;
        let reader: Box<dyn BufRead + Send> = match self.kind {
            InputKind::Path(path) => {
                if compression == Compression::Auto {
                    compression = Compression::from_extension(&path).unwrap_or(Compression::Auto);
                }
                let file = File::open(&path).map_err(failed)?;
                // Opening a directory succeeds on some systems, and reading it then fails with
                // a less helpful message: say what it is before anything is read.
                if file.metadata().map_err(failed)?.is_dir() {
                    return Err(failed(std::io::Error::new(
                        std::io::ErrorKind::IsADirectory,
                        "is a directory, not a file",
                    )));
                }
                Box::new(BufReader::with_capacity(BUFFER, file))
            }
            InputKind::Stdin => Box::new(BufReader::with_capacity(BUFFER, std::io::stdin())),
            #[cfg(feature = "http")]
            InputKind::Url(url) => {
                Box::new(BufReader::with_capacity(BUFFER, http_body(&url, &name)?))
            }
            InputKind::Reader(reader) => Box::new(BufReader::with_capacity(BUFFER, reader)),
            InputKind::AsyncReader(reader) => {
                let Ok(_) = tokio::runtime::Handle::try_current() else {
                    return Err(Error::new(ErrorKind::Internal, operation)
                        .with_position(Position::new().with_source(name))
                        .with_message(
                            "an async reader needs the pipeline to run inside a tokio runtime",
                        )
                        .fatal());
                };
                Box::new(BufReader::with_capacity(
                    BUFFER,
                    tokio_util::io::SyncIoBridge::new(reader),
                ))
            }
        };
        let mut reader = reader;
        if compression == Compression::Auto {
            compression = Compression::from_magic(reader.fill_buf().map_err(failed)?);
        }
        let mut reader = compression.decoder(reader).map_err(failed)?;
        if let Some(limit) = self.limit {
            reader = Box::new(Limited {
                inner: reader,
                left: limit,
                limit,
            });
        }
        Ok(OpenedInput { reader, name })
    }
}

/// Fails the read that would go past `limit` bytes.
struct Limited {
    inner: Box<dyn BufRead + Send>,
    left: u64,
    limit: u64,
}

impl Limited {
    fn over(&self) -> std::io::Error {
        std::io::Error::other(crate::error::OverLimit(self.limit))
    }
}

impl Read for Limited {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| self.over())?;
        Ok(n)
    }
}

impl BufRead for Limited {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        let over = self.over();
        let left = self.left;
        let available = self.inner.fill_buf()?;
        if available.len() as u64 > left {
            return Err(over);
        }
        Ok(available)
    }

    fn consume(&mut self, amount: usize) {
        self.left = self.left.saturating_sub(amount as u64);
        self.inner.consume(amount);
    }
}

/// An opened, decompressing input.
pub(crate) struct OpenedInput {
    pub(crate) reader: Box<dyn BufRead + Send>,
    pub(crate) name: Arc<str>,
}

/// The body of a `GET`, as a sync reader for the source's blocking thread.
#[cfg(feature = "http")]
fn http_body(url: &str, name: &Arc<str>) -> Result<Box<dyn std::io::Read + Send>> {
    use futures_util::TryStreamExt;

    let failed = |e: reqwest::Error| {
        Error::from_boxed(ErrorKind::Http, "http source", e.into())
            .with_position(Position::new().with_source(Arc::clone(name)))
            .fatal()
    };
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        Error::internal(
            "http source",
            "an HTTP input needs the pipeline to run inside a tokio runtime",
        )
        .fatal()
    })?;
    // On the source's blocking thread: waiting here blocks no task.
    let response = runtime.block_on(reqwest::get(url)).map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(Error::new(ErrorKind::Http, "http source")
            .with_position(Position::new().with_source(Arc::clone(name)))
            .with_message(format!("the server answered {status}"))
            .fatal());
    }
    let body = response.bytes_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(body);
    Ok(Box::new(tokio_util::io::SyncIoBridge::new_with_handle(
        reader, runtime,
    )))
}
