//! An export's response body: the bytes the pipeline writes, as they are written.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;
use tokio::io::DuplexStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::io::ReaderStream;
use vortex_stream::io::Written;

use super::Shared;

/// What an export's log line says of it.
pub(crate) struct ExportLog {
    pub(crate) request: u64,
    pub(crate) export: String,
    pub(crate) format: &'static str,
    pub(crate) rows: Arc<std::sync::atomic::AtomicU64>,
}

impl ExportLog {
    /// Logs how the export ended: `ok`, `failed` (with its cause) or `cancelled` (the client
    /// went away, or was cut).
    fn ended(
        &self,
        outcome: &str,
        bytes: u64,
        started: Instant,
        cause: Option<&vortex_stream::Error>,
    ) {
        let rows = self.rows.load(Ordering::Relaxed);
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (request, export, format) = (self.request, self.export.as_str(), self.format);
        match cause {
            Some(cause) => tracing::error!(
                request, export, format, rows, bytes, duration_ms, outcome, cause = %cause,
                "export failed midway"
            ),
            None => tracing::info!(
                request,
                export,
                format,
                rows,
                bytes,
                duration_ms,
                outcome,
                "export ended"
            ),
        }
    }
}

pub(crate) type WriteFuture = Pin<Box<dyn Future<Output = vortex_stream::Result<Written>> + Send>>;

/// Drives the export's pipeline and yields what it writes. Dropping the body (the client went
/// away) drops the pipeline, which closes the query. If the pipeline fails, the body ends with
/// an error, so the response is cut off instead of ending as if complete: the chunked
/// encoding's final empty chunk is only sent after the last row.
pub(crate) struct ExportBody {
    write: Option<WriteFuture>,
    reader: ReaderStream<DuplexStream>,
    failure: Option<vortex_stream::Error>,
    shared: Arc<Shared>,
    started: Instant,
    finished: bool,
    // What the log line of the export says: its request, name and rows.
    log: ExportLog,
    bytes: u64,
    // The export's permit and the request's admission, given back when the body goes.
    _permit: (OwnedSemaphorePermit, super::admission::Admitted),
}

impl ExportBody {
    pub(crate) fn new(
        write: WriteFuture,
        reader: DuplexStream,
        shared: Arc<Shared>,
        permit: (OwnedSemaphorePermit, super::admission::Admitted),
        log: ExportLog,
    ) -> Self {
        shared.metrics.active_exports.inc();
        ExportBody {
            write: Some(write),
            reader: ReaderStream::with_capacity(reader, 64 * 1024),
            failure: None,
            shared,
            started: Instant::now(),
            finished: false,
            log,
            bytes: 0,
            _permit: permit,
        }
    }
}

impl Stream for ExportBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(write) = this.write.as_mut() {
            if let Poll::Ready(outcome) = write.as_mut().poll(cx) {
                this.write = None;
                if let Err(err) = outcome {
                    this.failure = Some(err);
                }
            }
        }
        match Pin::new(&mut this.reader).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.bytes += bytes.len() as u64;
                this.shared.metrics.bytes.inc_by(bytes.len() as u64);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            // The writer closed its end: done, unless the pipeline has not reported yet.
            Poll::Ready(None) if this.write.is_some() => Poll::Pending,
            Poll::Ready(None) => {
                if this.finished {
                    return Poll::Ready(None);
                }
                this.finished = true;
                let metrics = &this.shared.metrics;
                match this.failure.take() {
                    Some(err) => {
                        metrics.failed.inc();
                        // The client sees a cut-off body; the operator needs the cause.
                        this.log
                            .ended("failed", this.bytes, this.started, Some(&err));
                        Poll::Ready(Some(Err(std::io::Error::other(err))))
                    }
                    None => {
                        let labels = super::metrics::ExportLabels {
                            export: this.log.export.clone(),
                        };
                        metrics
                            .export_seconds
                            .get_or_create(&labels)
                            .observe(this.started.elapsed().as_secs_f64());
                        this.log.ended("ok", this.bytes, this.started, None);
                        Poll::Ready(None)
                    }
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ExportBody {
    fn drop(&mut self) {
        let metrics = &self.shared.metrics;
        // Counted once, as the export ends: a shared counter touched for every row would be
        // contended by every running export of the same name.
        let labels = super::metrics::ExportLabels {
            export: self.log.export.clone(),
        };
        metrics
            .export_rows
            .get_or_create(&labels)
            .inc_by(self.log.rows.load(Ordering::Relaxed));
        metrics.active_exports.dec();
        if !self.finished {
            metrics.cancelled.inc();
            self.log.ended("cancelled", self.bytes, self.started, None);
        }
    }
}
