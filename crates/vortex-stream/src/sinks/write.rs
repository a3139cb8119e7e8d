//! The sink side of a pipeline: values cross to tokio's blocking pool in batches, each
//! written there by a job of its own.

use std::pin::pin;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_core::Stream;

use super::{Format, FormatWriter};
use crate::io::{Commit, Drain, Output, Spool, Written};
use crate::{Error, ErrorKind, Result};

/// Values handed to the writer at once. Measured on database exports: 256-value batches
/// took 8% longer than 1024-value ones, and 16 service exports at once peaked at 43 MiB
/// instead of 55 MiB.
const BATCH: usize = 1024;

/// A writer run on tokio's blocking pool one batch at a time by [`feed`]: each batch is a job
/// that moves the writer to a pool thread and back, so a sink holds a thread only while it
/// writes, never while it waits for upstream (a slow query) or downstream (a slow client of
/// an async writer, see [`Spool`](crate::io::Spool)).
pub(crate) trait BatchWrite<T>: Send + 'static {
    /// What a commit returns.
    type Done: Send + 'static;

    /// Writes `values`, all of them, or stops early when the output wants what it holds
    /// written out first ([`Drain::wants_out`](crate::io::Drain)); the rest come again.
    fn write(&mut self, values: &mut std::vec::IntoIter<T>) -> Result<()>;

    /// Hands what was written so far on to the output (upstream has nothing ready).
    fn flush(&mut self) -> Result<()>;

    /// Every value was written: finish and commit.
    fn commit(self) -> Result<Self::Done>;

    /// The pipeline failed before its end: discard or keep what was written, as the output
    /// requires, and say so.
    fn abandon(self) -> Result<Self::Done>;
}

/// A job's outcome: the writer (unless opening it failed), the batches it left for after a
/// drain, whether a flush is still owed, and how the writing went.
type Step<T, W> = (Option<W>, Vec<Vec<T>>, bool, Result<()>);

/// Full batches that may wait while a job writes: the next job takes them all at once, so a
/// writer slower than its upstream is handed several batches a job. (Every job costs two
/// thread wake-ups, which one 1024-value batch a job made 16-19% of a CSV export.)
const QUEUED: usize = 2;

/// A job's result as its handle gives it.
type Joined<R> = std::result::Result<Result<R>, tokio::task::JoinError>;

/// How long values may wait for more before they are handed over (and flushed) while
/// upstream has nothing ready: a fast source fills whole batches long before, a slow one
/// (rows a query finds one by one) sees each row leave within this of being found, not a
/// batch or a buffer later.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// What `feed` waited for.
enum Next<T, W> {
    Item(Option<Result<T>>),
    Job(Joined<Step<T, W>>),
    /// Nothing ready upstream, and values have waited long enough: hand them over, flushed.
    Idle,
}

/// The writer's side of [`feed`]: the writer between jobs, the running job, and the async
/// writer its output drains to.
struct Hand<T, W: Send + 'static, O> {
    runtime: tokio::runtime::Handle,
    open: Option<O>,
    writer: Option<W>,
    job: Option<tokio::task::JoinHandle<Result<Step<T, W>>>>,
    drain: Option<Drain>,
    failed: Option<Error>,
}

impl<T, W, O> Hand<T, W, O>
where
    T: Send + 'static,
    W: BatchWrite<T>,
    O: FnOnce() -> Result<W> + Send + 'static,
{
    /// Runs `job` on the pool with the writer, opening it first if no job did yet.
    fn run<R: Send + 'static>(
        &mut self,
        job: impl FnOnce(W) -> R + Send + 'static,
    ) -> tokio::task::JoinHandle<Result<R>> {
        let writer = self.writer.take();
        let open = self.open.take();
        // The writer's work belongs to the sink's span, and goes to the caller's subscriber.
        let carried = crate::core::Carried::here(tracing::Span::current());
        self.runtime.spawn_blocking(move || {
            carried.run(|| {
                let writer = match (writer, open) {
                    (Some(writer), _) => writer,
                    (None, Some(open)) => open()?,
                    (None, None) => return Err(writer_lost()),
                };
                Ok(job(writer))
            })
        })
    }

    /// Starts writing `batches` (then flushing, if `flush`).
    fn start(&mut self, batches: Vec<Vec<T>>, flush: bool) {
        self.job = Some(self.run(move |mut writer: W| {
            let mut batches = batches.into_iter();
            let mut result = Ok(());
            let mut rest = Vec::new();
            while let Some(batch) = batches.next() {
                let mut values = batch.into_iter();
                result = writer.write(&mut values);
                if result.is_err() {
                    break;
                }
                if values.len() > 0 {
                    // The output wants draining first: the rest come again after it.
                    rest.push(values.collect());
                    rest.extend(batches);
                    break;
                }
            }
            if result.is_ok() && flush && rest.is_empty() {
                result = writer.flush();
            }
            (Some(writer), rest, flush, result)
        }));
    }

    /// Takes a job's outcome: the writer back, its output written out to the async writer,
    /// and any values it left started again. False once the writer failed.
    async fn finished(&mut self, step: Joined<Step<T, W>>) -> bool {
        let (writer, rest, flush, result) = match flatten(step) {
            Ok(step) => step,
            // Opening the writer failed, or the job panicked.
            Err(err) => (None, Vec::new(), false, Err(err)),
        };
        self.writer = writer;
        let result = match (result, self.drain.as_mut()) {
            (Ok(()), Some(drain)) => drain.write_out(flush && rest.is_empty()).await,
            (result, _) => result,
        };
        if let Err(err) = result {
            self.failed = Some(err);
            return false;
        }
        if !rest.is_empty() {
            self.start(rest, flush);
        }
        true
    }

    /// The writer failed: its error, once the writer is dropped on the pool (which removes a
    /// temporary file, or rolls back a transaction) and that is done, so that nothing it
    /// leaves outlives the error.
    async fn discard(&mut self) -> Error {
        let failed = self.failed.take().unwrap_or_else(writer_lost);
        if let Some(writer) = self.writer.take() {
            // A panic while dropping it is no more news than the error already in hand.
            let _ = self.runtime.spawn_blocking(move || drop(writer)).await;
        }
        failed
    }

    /// Waits for the running job, and any it starts for values it left. False once the
    /// writer failed.
    async fn settle(&mut self) -> bool {
        while let Some(job) = self.job.take() {
            if !self.finished(job.await).await {
                return false;
            }
        }
        self.failed.is_none()
    }
}

/// The error of a writing job that panicked or was cancelled.
fn joined(join: &tokio::task::JoinError) -> Error {
    Error::internal("sink", format!("the writing job failed: {join}"))
}

impl<T, W: Send + 'static, O> Drop for Hand<T, W, O> {
    fn drop(&mut self) {
        // A writer dropped mid-way (the pipeline was dropped) may remove a file or roll back
        // a transaction: blocking work, done on the pool.
        if let Some(writer) = self.writer.take() {
            self.runtime.spawn_blocking(move || drop(writer));
        }
    }
}

/// Feeds `stream` to the writer `open` makes, in batches of `batch` values, each written by a
/// job on tokio's blocking pool while the next batch is gathered; commits after the last one.
/// An error item stops the feeding, and the writer is abandoned instead. Returns how the
/// feeding ended and what the writer returned. With a `drain`, what each job wrote for an
/// async writer is written out to it here, between jobs.
///
/// Memory: at most five batches (two being written, two waiting, one being gathered), and
/// what one job wrote for an async writer (a spool's bound and one value).
pub(crate) async fn feed<S, T, W, O>(
    stream: S,
    batch: usize,
    open: O,
    drain: Option<Drain>,
) -> (Result<()>, Result<W::Done>)
where
    S: Stream<Item = Result<T>>,
    T: Send + 'static,
    W: BatchWrite<T>,
    O: FnOnce() -> Result<W> + Send + 'static,
{
    let runtime = match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime,
        Err(_) => {
            let err = || Error::internal("sink", "a sink must run inside a tokio runtime");
            return (Err(err()), Err(err()));
        }
    };
    let mut hand = Hand {
        runtime,
        open: Some(open),
        writer: None,
        job: None,
        drain,
        failed: None,
    };
    // The output is opened at once, while the first values come: an output that cannot be
    // opened fails the pipeline before it reads on, and a file being written shows as its
    // temporary file from the start.
    hand.job = Some(hand.run(|writer| (Some(writer), Vec::new(), false, Ok(()))));
    let mut stream = pin!(stream);
    let mut pending: Vec<T> = Vec::with_capacity(batch.min(BATCH));
    let mut queue: Vec<Vec<T>> = Vec::with_capacity(QUEUED);
    // Armed while values wait and upstream has none ready: when they go without more.
    let mut linger: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let outcome: Result<()> = loop {
        if pending.len() >= batch && queue.len() < QUEUED {
            linger = None;
            let full = std::mem::replace(&mut pending, Vec::with_capacity(batch.min(BATCH)));
            queue.push(full);
        }
        if hand.job.is_none() && !queue.is_empty() {
            hand.start(std::mem::take(&mut queue), false);
        }
        // The batch being gathered is full and so is the queue: only the job can go on.
        let full = pending.len() >= batch;
        let next = std::future::poll_fn(|cx| {
            if !full {
                if let Poll::Ready(item) = stream.as_mut().poll_next(cx) {
                    return Poll::Ready(Next::Item(item));
                }
            }
            // Upstream has nothing ready, or everything is full: now the job.
            if let Some(job) = hand.job.as_mut() {
                let step = std::task::ready!(Pin::new(job).poll(cx));
                hand.job = None;
                return Poll::Ready(Next::Job(step));
            }
            match linger.as_mut() {
                Some(timer) => timer.as_mut().poll(cx).map(|()| Next::Idle),
                None => Poll::Pending,
            }
        })
        .await;
        match next {
            Next::Item(Some(Ok(value))) => {
                if pending.is_empty() {
                    linger = Some(Box::pin(tokio::time::sleep(LINGER)));
                }
                pending.push(value);
            }
            Next::Item(Some(Err(err))) => break Err(err),
            Next::Item(None) => break Ok(()),
            Next::Job(step) => {
                if !hand.finished(step).await {
                    break Ok(());
                }
            }
            Next::Idle => {
                // No job runs, so nothing is queued: what waits goes, and is flushed.
                linger = None;
                let waiting = std::mem::replace(&mut pending, Vec::with_capacity(batch.min(BATCH)));
                hand.start(vec![waiting], true);
            }
        }
    };
    if !hand.settle().await {
        let failed = hand.discard().await;
        return (outcome, Err(failed));
    }
    if let Err(err) = outcome {
        // The full batches handed over before the error are written (a table keeps them,
        // each its own transaction); the one being gathered is not.
        if !queue.is_empty() {
            hand.start(queue, false);
            if !hand.settle().await {
                let failed = hand.discard().await;
                return (Err(err), Err(failed));
            }
        }
        let abandoned = hand.run(BatchWrite::abandon).await;
        return (Err(err), flatten(abandoned).and_then(|done| done));
    }
    if !pending.is_empty() {
        queue.push(pending);
    }
    if !queue.is_empty() {
        hand.start(queue, false);
        if !hand.settle().await {
            let failed = hand.discard().await;
            return (Ok(()), Err(failed));
        }
    }
    let committed = flatten(hand.run(BatchWrite::commit).await).and_then(|done| done);
    let finished = match (committed, hand.drain.take()) {
        (Ok(done), Some(drain)) => drain.finish().await.map(|()| done),
        (committed, _) => committed,
    };
    (Ok(()), finished)
}

/// The error of a writer that went missing: a bug, never expected.
fn writer_lost() -> Error {
    Error::internal("sink", "the writer was lost")
}

/// A job's result with its join error as one.
fn flatten<R>(result: Joined<R>) -> Result<R> {
    result.unwrap_or_else(|join| Err(joined(&join)))
}

/// Drives `stream` into `format` on `output`; see [`Pipeline::write`](crate::Pipeline::write).
pub(crate) async fn write<S, T, F>(stream: S, format: F, output: Output) -> Result<Written>
where
    S: Stream<Item = Result<T>>,
    T: Send + 'static,
    F: Format<T>,
{
    let span = tracing::debug_span!("vortex.write", output = output.display_name());
    tracing::Instrument::instrument(write_in_span(stream, format, output), span).await
}

async fn write_in_span<S, T, F>(stream: S, format: F, mut output: Output) -> Result<Written>
where
    S: Stream<Item = Result<T>>,
    T: Send + 'static,
    F: Format<T>,
{
    let drain = output.spool();
    let spool = drain.as_ref().map(Drain::spool);
    let open = move || {
        let opened = output.open("sink: open")?;
        Ok(Formatted {
            writer: format.writer(opened.writer)?,
            commit: opened.commit,
            rows: 0,
            spool,
        })
    };
    // Abandoned, the writer discards the output (a temporary file is removed).
    let (outcome, written) = feed(stream, BATCH, open, drain).await;
    outcome?;
    let written = written?;
    tracing::debug!(rows = written.rows, bytes = written.bytes, "written");
    Ok(written)
}

/// A format's writer on an output, as a [`BatchWrite`].
struct Formatted<W> {
    writer: W,
    commit: Commit,
    rows: u64,
    // Where an async writer's bytes wait: a job stops when it holds enough.
    spool: Option<Spool>,
}

impl<T, W> BatchWrite<T> for Formatted<W>
where
    T: Send + 'static,
    W: FormatWriter<T> + Send + 'static,
{
    type Done = Written;

    fn write(&mut self, values: &mut std::vec::IntoIter<T>) -> Result<()> {
        for value in values.by_ref() {
            self.writer.write(value)?;
            self.rows += 1;
            if self.spool.as_ref().is_some_and(Spool::is_full) {
                break;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.writer.flush()
    }

    fn commit(self) -> Result<Written> {
        let bytes = self.commit.finish(self.writer.finish()?)?;
        Ok(Written {
            rows: self.rows,
            bytes,
        })
    }

    fn abandon(self) -> Result<Written> {
        Err(Error::new(ErrorKind::Cancelled, "sink")
            .with_message("the pipeline stopped before its end; the output was discarded"))
    }
}

/// The file sink.
impl<S, Kind, T> crate::Pipeline<S, Kind>
where
    S: Stream<Item = Result<T>>,
{
    /// Writes every value to `output` in `format` (CSV, JSON Lines, lines, ...), and returns
    /// the rows and bytes written.
    ///
    /// The values cross in batches of 1024 to tokio's blocking pool, where a job encodes,
    /// compresses and writes them (every batch waiting, when the writer is the slower side)
    /// while the next batch is gathered: a file pipeline uses a second core and never blocks
    /// the runtime on disk, and holds no thread while it waits for values (or, with an
    /// [async writer](Output::async_writer), for its reader). A file output is written under
    /// a temporary name and renamed into place only once it is complete: if the pipeline
    /// yields an error, or this future is dropped, the temporary file is removed and an
    /// existing file at the path is left as it was. Memory: at most five batches of values
    /// (two being written, two waiting, one being gathered), and the output's buffers.
    ///
    /// # Errors
    ///
    /// The first error item (after which the output is discarded), or the first error
    /// writing the output.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future discards the output.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::io::{Input, Output};
    /// use vortex_stream::sinks::CsvRecords;
    /// use vortex_stream::sources::CsvSource;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let out = dir.path().join("active.csv.gz");
    /// let written = CsvSource::new(Input::bytes("id,status\n1,active\n2,done\n3,active\n"))
    ///     .records()
    ///     .filter(|r| &r[1] == "active")
    ///     .write(CsvRecords::new(), Output::path(&out)) // gzip, from the extension
    ///     .await?;
    /// assert_eq!(written.rows, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn write<F>(self, format: F, output: Output) -> impl Future<Output = Result<Written>>
    where
        F: Format<T>,
        T: Send + 'static,
    {
        write(self.into_inner(), format, output)
    }
}
