use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::compression::FinishWrite;
use super::Compression;
use crate::{Error, Position, Result};

/// Write buffer size.
const BUFFER: usize = 64 * 1024;

/// Where a sink writes to: a file, stdout, or any writer (sync or async).
///
/// A regular file is written to a temporary file in the same folder, which is renamed over
/// the final path only once everything was written and synced (on Linux its pages start
/// going to disk every few MiB as it is written, so that the sync has little left to wait
/// for): a failed or cancelled pipeline leaves no half-written file under the final name, and
/// an existing file is only replaced by a complete one, with its permission bits. A symbolic link to a file stays a link: the file
/// it points to is replaced that way. Anything else that is not a regular file (a device such
/// as `/dev/null` or `/dev/stdout`, a FIFO, a socket, a link to nothing) is opened and written
/// as it is, since renaming over it would replace it; a folder is an error. Compression comes
/// from the extension (`.gz`, `.zst`) unless set with [`compression`](Output::compression).
///
/// # Examples
///
/// ```
/// use vortex_stream::io::{Compression, Output};
///
/// let a = Output::path("active.csv.gz"); // gzip, from the extension
/// let b = Output::stdout().compression(Compression::Gzip);
/// # let _ = (a, b);
/// ```
pub struct Output {
    kind: OutputKind,
    name: Arc<str>,
    compression: Compression,
}

enum OutputKind {
    Path(PathBuf),
    Stdout,
    Writer(Box<dyn Write + Send>),
    AsyncWriter(Box<dyn AsyncWrite + Send + Unpin>),
    /// An async writer's bytes, written out by the sink's task (see [`Spool`]).
    Spool(Spool),
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("name", &self.name)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

impl Output {
    fn new(kind: OutputKind, name: impl Into<Arc<str>>) -> Self {
        Output {
            kind,
            name: name.into(),
            compression: Compression::Auto,
        }
    }

    /// A file, replaced atomically once the pipeline succeeds.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let name = path.display().to_string();
        Output::new(OutputKind::Path(path), name)
    }

    /// The process's standard output.
    pub fn stdout() -> Self {
        Output::new(OutputKind::Stdout, "stdout")
    }

    /// Any sync writer; it is written on tokio's blocking pool.
    pub fn writer(writer: impl Write + Send + 'static) -> Self {
        Output::new(OutputKind::Writer(Box::new(writer)), "writer")
    }

    /// Any async writer (a socket, an HTTP body). Values are encoded on tokio's blocking pool
    /// into a bounded buffer, which the pipeline's own task writes out to `writer`: a slow
    /// reader at the other end holds no thread, only the pipeline (and at most
    /// 256 KiB and one value of encoded bytes).
    pub fn async_writer(writer: impl AsyncWrite + Send + Unpin + 'static) -> Self {
        Output::new(OutputKind::AsyncWriter(Box::new(writer)), "async writer")
    }

    /// Names the output in errors.
    #[must_use]
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// The name errors and logs give for this output.
    pub(crate) fn display_name(&self) -> &str {
        &self.name
    }

    /// Sets the compression instead of taking it from the extension.
    #[must_use]
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// For an async writer: the spool its bytes are encoded into from now on, and what writes
    /// them out to it.
    pub(crate) fn spool(&mut self) -> Option<Drain> {
        if !matches!(self.kind, OutputKind::AsyncWriter(_)) {
            return None;
        }
        let spool = Spool::default();
        let OutputKind::AsyncWriter(writer) =
            std::mem::replace(&mut self.kind, OutputKind::Spool(spool.clone()))
        else {
            return None;
        };
        Some(Drain {
            spool,
            writer,
            name: Arc::clone(&self.name),
        })
    }

    /// Opens the output (a temporary file for a path); blocking.
    pub(crate) fn open(self, operation: &'static str) -> Result<OpenedOutput> {
        let name = self.name;
        let failed = |e: std::io::Error| {
            Error::io(operation, e).with_position(Position::new().with_source(Arc::clone(&name)))
        };
        let mut compression = self.compression;
        let mut pending = None;
        let bytes = Arc::new(AtomicU64::new(0));
        let raw: Box<dyn Write + Send> = match self.kind {
            OutputKind::Path(path) => {
                if compression == Compression::Auto {
                    compression = Compression::from_extension(&path).unwrap_or(Compression::None);
                }
                let (file, temp) = open_path(&path).map_err(failed)?;
                if let Some((temp, target)) = temp {
                    let sync = file.try_clone().map_err(failed)?;
                    pending = Some(PendingFile {
                        temp,
                        target,
                        file: sync,
                        committed: false,
                    });
                }
                if pending.is_some() {
                    Box::new(WriteBehind::new(file))
                } else {
                    Box::new(file)
                }
            }
            OutputKind::Stdout => Box::new(std::io::stdout()),
            OutputKind::Writer(writer) => writer,
            OutputKind::AsyncWriter(writer) => {
                // Written on this thread, blocking it while the reader is slow: only when the
                // output is opened outside a sink, which spools instead.
                let Ok(_) = tokio::runtime::Handle::try_current() else {
                    return Err(Error::internal(
                        operation,
                        "an async writer needs the pipeline to run inside a tokio runtime",
                    ));
                };
                Box::new(tokio_util::io::SyncIoBridge::new(writer))
            }
            OutputKind::Spool(spool) => Box::new(spool),
        };
        if compression == Compression::Auto {
            compression = Compression::None;
        }
        let counted = Counting {
            inner: raw,
            bytes: Arc::clone(&bytes),
        };
        let compressed = compression
            .encoder(Box::new(BufWriter::with_capacity(BUFFER, counted)))
            .map_err(failed)?;
        Ok(OpenedOutput {
            writer: SinkWriter {
                inner: BufWriter::with_capacity(BUFFER, compressed),
            },
            commit: Commit {
                bytes,
                pending,
                name,
                operation,
            },
        })
    }
}

/// Bytes encoded for an async writer on a sink's blocking job, waiting for the sink's task to
/// write them out ([`Drain`]): the job stops taking values once it holds [`SPOOL`] bytes.
#[derive(Clone, Default)]
pub(crate) struct Spool(Arc<Mutex<Vec<u8>>>);

/// The bytes a spool holds before its job stops for them to be written out.
const SPOOL: usize = 256 * 1024;

impl Spool {
    fn bytes(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A panic while appending leaves whole bytes: the buffer is still good.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the spool holds enough to be written out before more is encoded.
    pub(crate) fn is_full(&self) -> bool {
        self.bytes().len() >= SPOOL
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes a [`Spool`] out to its async writer, on the sink's task.
pub(crate) struct Drain {
    spool: Spool,
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    name: Arc<str>,
}

impl Drain {
    /// The spool this drains.
    pub(crate) fn spool(&self) -> Spool {
        self.spool.clone()
    }

    /// Writes out what the spool holds, then flushes the writer if `flush`.
    pub(crate) async fn write_out(&mut self, flush: bool) -> Result<()> {
        let bytes = std::mem::take(&mut *self.spool.bytes());
        let written = async {
            self.writer.write_all(&bytes).await?;
            if flush {
                self.writer.flush().await?;
            }
            Ok(())
        };
        let result: std::io::Result<()> = written.await;
        result.map_err(|e| {
            Error::io("sink: write", e)
                .with_position(Position::new().with_source(Arc::clone(&self.name)))
        })?;
        // The buffer is kept for the next job, emptied.
        let mut spooled = self.spool.bytes();
        if spooled.is_empty() {
            *spooled = bytes;
            spooled.clear();
        }
        Ok(())
    }

    /// Writes out the rest, flushes and shuts the writer down: the reader sees the end.
    pub(crate) async fn finish(mut self) -> Result<()> {
        self.write_out(true).await?;
        self.writer.shutdown().await.map_err(|e| {
            Error::io("sink: write", e)
                .with_position(Position::new().with_source(Arc::clone(&self.name)))
        })
    }
}

/// A file being written under a temporary name.
struct PendingFile {
    temp: PathBuf,
    target: PathBuf,
    file: File,
    committed: bool,
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            // Not finished: the partial file goes; the target was never touched.
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Opens `path` for writing: a regular file (or none yet) through a temporary file beside it,
/// returned with the path to rename it to; anything else directly (see [`Output`]).
fn open_path(path: &Path) -> std::io::Result<(File, Option<(PathBuf, PathBuf)>)> {
    let linked = std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink());
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory, not a file",
        )),
        Ok(meta) if meta.is_file() => {
            // Through a link, the file it points to is replaced; the link stays.
            let target = if linked {
                std::fs::canonicalize(path)?
            } else {
                path.to_owned()
            };
            let (file, temp) = create_temp(&target)?;
            file.set_permissions(meta.permissions())?;
            Ok((file, Some((temp, target))))
        }
        // A device, a FIFO, a socket: renaming over it would replace it with a file.
        Ok(_) => Ok((OpenOptions::new().write(true).open(path)?, None)),
        // A link to nothing: written through, creating what it points to.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && linked => Ok((
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?,
            None,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (file, temp) = create_temp(path)?;
            Ok((file, Some((temp, path.to_owned()))))
        }
        Err(e) => Err(e),
    }
}

/// Creates `.<name>.<pid>-<n>.tmp` beside `path`.
fn create_temp(path: &Path) -> std::io::Result<(File, PathBuf)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file")
        })?
        .to_string_lossy();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => return Ok((file, temp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

/// Bytes written to a file between two starts of its write-back.
const WRITE_BEHIND: u64 = 8 * 1024 * 1024;

/// A file output that asks the kernel to start writing its pages to disk every
/// [`WRITE_BEHIND`] bytes, without waiting for it, so that the sync before the rename (which
/// waits for all of them) has only the last few to wait for. Left to the kernel, nothing of a
/// few hundred MiB is written before that sync: measured on 3.3M rows (270 MB) of CSV, the
/// sync alone took 112 ms after the last row, both cores idle.
///
/// On Linux, `posix_fadvise(DONTNEED)` starts that write-back: it writes the dirty pages of
/// the range without waiting, then drops those already clean. `sync_file_range` would do the
/// first half only, but rustix, which this crate reaches the system through without unsafe
/// code, does not wrap it. Elsewhere the file is written as it is.
struct WriteBehind {
    file: File,
    written: u64,
    // Where the range not yet handed to write-back starts.
    behind: u64,
}

impl WriteBehind {
    fn new(file: File) -> Self {
        WriteBehind {
            file,
            written: 0,
            behind: 0,
        }
    }
}

impl Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.behind >= WRITE_BEHIND {
            #[cfg(target_os = "linux")]
            {
                let len = core::num::NonZeroU64::new(self.written - self.behind);
                // Advice only: the sync before the rename writes whatever this did not.
                let _ =
                    rustix::fs::fadvise(&self.file, self.behind, len, rustix::fs::Advice::DontNeed);
            }
            self.behind = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Counts the bytes that reach the destination.
struct Counting {
    inner: Box<dyn Write + Send>,
    bytes: Arc<AtomicU64>,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// An opened output: the writer a format writes to, and what commits it.
pub(crate) struct OpenedOutput {
    pub(crate) writer: SinkWriter,
    pub(crate) commit: Commit,
}

/// The buffered, compressing writer of an output, handed to a [`Format`](crate::sinks::Format)
/// and given back by it when done.
pub struct SinkWriter {
    inner: BufWriter<Box<dyn FinishWrite>>,
}

impl fmt::Debug for SinkWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkWriter").finish_non_exhaustive()
    }
}

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Commits an output once its writer is done. Dropped instead, a file output removes its
/// temporary file.
pub(crate) struct Commit {
    bytes: Arc<AtomicU64>,
    pending: Option<PendingFile>,
    name: Arc<str>,
    operation: &'static str,
}

impl Commit {
    /// The error for a failed write to this output.
    pub(crate) fn write_error(&self, e: std::io::Error) -> Error {
        Error::io(self.operation, e)
            .with_position(Position::new().with_source(Arc::clone(&self.name)))
    }

    /// Flushes, finishes compression, syncs and renames a file into place; returns the bytes
    /// written to the destination.
    pub(crate) fn finish(mut self, writer: SinkWriter) -> Result<u64> {
        let compressed = writer
            .inner
            .into_inner()
            .map_err(|e| self.write_error(e.into_error()))?;
        compressed.finish().map_err(|e| self.write_error(e))?;
        if let Some(mut pending) = self.pending.take() {
            // On failure, dropping `pending` removes the temporary file.
            pending.file.sync_all().map_err(|e| self.write_error(e))?;
            std::fs::rename(&pending.temp, &pending.target).map_err(|e| self.write_error(e))?;
            pending.committed = true;
        }
        Ok(self.bytes.load(Ordering::Relaxed))
    }
}

/// What a sink wrote: the records, and the bytes that reached the destination (after
/// compression).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Records written.
    pub rows: u64,
    /// Bytes written to the destination.
    pub bytes: u64,
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rows, {} bytes", self.rows, self.bytes)
    }
}
