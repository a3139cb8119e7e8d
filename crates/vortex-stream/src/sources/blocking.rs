use core::fmt;
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::collections::VecDeque;
use std::future::Future;
use std::io::Read;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_core::{FusedStream, Stream};
#[cfg(feature = "sqlite")]
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::core::{Carried, Size};
use crate::error::panic_message;
use crate::Pipeline;
use crate::{Error, Result};

type Batch<T> = Vec<Result<T>>;
type Items<T> = Box<dyn Iterator<Item = Result<T>> + Send>;
/// What a job hands back: the iterator (none once it ended), and the batch it filled.
type Filled<T> = (Option<Items<T>>, Batch<T>);

/// Batches filled ahead of the consumer, besides the one being yielded and the one being
/// filled.
const READ_AHEAD: usize = 2;

/// Stream for the [`from_blocking_iter`](crate::Pipeline::from_blocking_iter) and
/// [`from_read`](crate::Pipeline::from_read) constructors and the format sources: a sync
/// iterator run on tokio's blocking pool a batch at a time.
///
/// Each batch is one job on the pool: the iterator moves to a pool thread, fills a batch
/// there and comes back with it. So a pipeline holds a blocking thread only while its
/// iterator is working, never while it waits for its consumer: a thousand pipelines whose
/// consumers are slow (a service's exports to slow clients) hold no thread, and the pool's
/// threads stay free for other work. (A thread for the whole life of the pipeline, as a
/// channel fed from one long blocking task would need, made 512 idle pipelines exhaust tokio's
/// default pool: the next pipeline, and every `tokio::fs` call of the process, hung.) The cost
/// is one hand-over to the pool per batch, measured lost in the noise for batches of 1024.
///
/// At most four batches exist at once: one being filled, two waiting and one being yielded.
/// Dropping the stream stops the iterator as soon as its current `next` call returns; it is
/// dropped on the pool.
#[must_use = "streams do nothing unless polled"]
pub struct Blocking<T> {
    // The iterator, while no job holds it; `None` once it ended.
    items: Option<Items<T>>,
    job: Option<JoinHandle<Filled<T>>>,
    ready: VecDeque<Batch<T>>,
    batch: std::vec::IntoIter<Result<T>>,
    size: usize,
    // Raised when the stream is dropped: the job filling a batch stops at its next item, and
    // an input read on the pool stops at its next read, even in the middle of an item (see
    // `from_input`).
    stop: Arc<AtomicBool>,
    // The source's span and subscriber, for its jobs (none for a plain iterator).
    carried: Carried,
}

impl<T> Drop for Blocking<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl<T> fmt::Debug for Blocking<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocking")
            .field("working", &self.job.is_some())
            .field("ready", &self.ready.len())
            .field("buffered", &self.batch.len())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Blocking<T> {
    pub(crate) fn new<I>(iter: I, batch: NonZeroUsize) -> Self
    where
        I: IntoIterator<Item = Result<T>>,
        I::IntoIter: Send + 'static,
    {
        Blocking {
            items: Some(Box::new(iter.into_iter())),
            job: None,
            ready: VecDeque::with_capacity(READ_AHEAD),
            batch: Vec::new().into_iter(),
            size: batch.get(),
            stop: Arc::new(AtomicBool::new(false)),
            carried: Carried::none(),
        }
    }

    /// Starts filling the next batch on the pool, unless a job runs, the iterator ended or
    /// enough batches wait.
    fn start(&mut self) -> Result<()> {
        if self.job.is_some() || self.ready.len() >= READ_AHEAD {
            return Ok(());
        }
        let Some(mut items) = self.items.take() else {
            return Ok(());
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(Error::internal(
                "blocking source",
                "polled outside a tokio runtime; drive the pipeline with tokio or run_blocking",
            )
            .fatal());
        };
        let size = self.size;
        let stop = Arc::clone(&self.stop);
        let carried = self.carried.clone();
        self.job = Some(runtime.spawn_blocking(move || {
            carried.run(|| {
                // A batch goes as soon as it holds an error: the consumer may stop there, and the
                // iterator may take long to yield the next item (skipping the rest of an endless
                // line, say), which must not hold the error back.
                let mut batch: Batch<T> = Vec::new();
                while batch.len() < size {
                    if stop.load(Ordering::Relaxed) {
                        // Dropped: nobody takes the batch.
                        return (None, batch);
                    }
                    let Some(item) = items.next() else {
                        tracing::debug!("read to the end");
                        return (None, batch);
                    };
                    let failed = item.is_err();
                    batch.push(item);
                    if failed {
                        break;
                    }
                }
                (Some(items), batch)
            })
        }));
        Ok(())
    }

    /// Takes the finished job's batch, if it finished.
    fn poll_job(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(job) = self.job.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let joined = match Pin::new(job).poll(cx) {
            Poll::Ready(joined) => joined,
            Poll::Pending => return Poll::Pending,
        };
        self.job = None;
        match joined {
            Ok((items, batch)) => {
                self.items = items;
                if !batch.is_empty() {
                    self.ready.push_back(batch);
                }
                Poll::Ready(Ok(()))
            }
            // The source ended early: what it did not read must not pass for the end.
            Err(err) if err.is_panic() => Poll::Ready(Err(Error::internal(
                "blocking source",
                format!(
                    "the iterator panicked: {}",
                    panic_message(&*err.into_panic())
                ),
            )
            .fatal())),
            Err(err) => Poll::Ready(Err(
                Error::internal("blocking source", err.to_string()).fatal()
            )),
        }
    }
}

impl<T> Unpin for Blocking<T> {}

impl<T: Send + 'static> Stream for Blocking<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(item) = this.batch.next() {
            return Poll::Ready(Some(item));
        }
        // Between batches (not at every item, which would spend tokio's budget of polls): take
        // a finished job's batch and start the next one, so the pool fills a batch while this
        // one is consumed.
        loop {
            if let Err(err) = this.start() {
                return Poll::Ready(Some(Err(err)));
            }
            let finished = this.poll_job(cx);
            if let Poll::Ready(Err(err)) = finished {
                this.items = None;
                return Poll::Ready(Some(Err(err)));
            }
            if let Some(batch) = this.ready.pop_front() {
                this.batch = batch.into_iter();
                if let Err(err) = this.start() {
                    return Poll::Ready(Some(Err(err)));
                }
                if let Some(item) = this.batch.next() {
                    return Poll::Ready(Some(item));
                }
                continue;
            }
            match finished {
                // A batch came, or a job is to start: go round.
                Poll::Ready(_) if this.items.is_some() || this.job.is_some() => continue,
                Poll::Ready(_) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let ready: usize = self.ready.iter().map(Vec::len).sum();
        (self.batch.len() + ready, None)
    }
}

impl<T: Send + 'static> FusedStream for Blocking<T> {
    fn is_terminated(&self) -> bool {
        self.items.is_none() && self.job.is_none() && self.ready.is_empty() && self.batch.len() == 0
    }
}

#[cfg(feature = "sqlite")]
type Producer<T> = Box<dyn FnOnce(mpsc::Sender<Batch<T>>) + Send>;

#[cfg(feature = "sqlite")]
/// A source whose producer holds a blocking thread from its first poll until it ends or the
/// stream is dropped, sending batches into a channel (one may wait): for a producer whose
/// state cannot move between threads between batches (a SQLite statement borrows its
/// connection). Its users bound how many run at once.
#[must_use = "streams do nothing unless polled"]
pub(crate) struct Held<T> {
    producer: Option<Producer<T>>,
    rx: Option<mpsc::Receiver<Batch<T>>>,
    batch: std::vec::IntoIter<Result<T>>,
    task: Option<JoinHandle<()>>,
}

#[cfg(feature = "sqlite")]
impl<T: Send + 'static> Held<T> {
    /// A source whose blocking thread runs `producer`, which sends batches until it is done or
    /// a send fails (the stream was dropped). One batch waits in the channel at most, so the
    /// producer reads ahead of the consumer by two batches at most: the one waiting and the one
    /// it is filling.
    pub(crate) fn new(producer: impl FnOnce(mpsc::Sender<Batch<T>>) + Send + 'static) -> Self {
        Held {
            producer: Some(Box::new(producer)),
            rx: None,
            batch: Vec::new().into_iter(),
            task: None,
        }
    }
}

#[cfg(feature = "sqlite")]
impl<T> Unpin for Held<T> {}

#[cfg(feature = "sqlite")]
impl<T: Send + 'static> Stream for Held<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(producer) = this.producer.take() {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return Poll::Ready(Some(Err(Error::internal(
                    "blocking source",
                    "polled outside a tokio runtime; drive the pipeline with tokio or run_blocking",
                )
                .fatal())));
            };
            let (tx, rx) = mpsc::channel(1);
            this.task = Some(runtime.spawn_blocking(move || producer(tx)));
            this.rx = Some(rx);
        }
        loop {
            if let Some(item) = this.batch.next() {
                return Poll::Ready(Some(item));
            }
            if let Some(rx) = this.rx.as_mut() {
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(batch)) => {
                        this.batch = batch.into_iter();
                        continue;
                    }
                    Poll::Ready(None) => this.rx = None,
                    Poll::Pending => return Poll::Pending,
                }
            }
            // The channel closed: the producer ended, normally or by a panic.
            let Some(task) = this.task.as_mut() else {
                return Poll::Ready(None);
            };
            let joined = match Pin::new(task).poll(cx) {
                Poll::Ready(joined) => joined,
                Poll::Pending => return Poll::Pending,
            };
            this.task = None;
            return Poll::Ready(match joined {
                Ok(()) => None,
                Err(err) if err.is_panic() => Some(Err(Error::internal(
                    "blocking source",
                    format!(
                        "the producer panicked: {}",
                        panic_message(&*err.into_panic())
                    ),
                )
                .fatal())),
                Err(err) => Some(Err(
                    Error::internal("blocking source", err.to_string()).fatal()
                )),
            });
        }
    }
}

/// A sync iterator over chunks of at most `chunk` bytes of `reader`, for [`Blocking`].
pub(crate) fn read_chunks<R: Read>(
    mut reader: R,
    chunk: NonZeroUsize,
    operation: &'static str,
) -> impl Iterator<Item = Result<Bytes>> {
    let mut offset = 0u64;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let mut buf = BytesMut::zeroed(chunk.get());
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => {
                    buf.truncate(n);
                    offset += n as u64;
                    return Some(Ok(buf.freeze()));
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => {
                    failed = true;
                    return Some(Err(Error::io(operation, err)
                        .with_position(crate::Position::new().with_byte(offset))
                        .fatal()));
                }
            }
        }
    })
}

/// The batch size of the format sources: records handed from the decoding thread at once.
pub(crate) const DEFAULT_BATCH: NonZeroUsize = match NonZeroUsize::new(1024) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// A format source: opens `input` on the blocking pool, then decodes it with the iterator
/// `decode` builds from it. An input that cannot be opened is the only item, a fatal error of
/// the operation `open` (`"csv source: open"`), not of the decoding.
pub(crate) fn from_input<T, I, F>(
    input: crate::io::Input,
    open: &'static str,
    batch: NonZeroUsize,
    decode: F,
) -> crate::Pipeline<Blocking<T>>
where
    T: Send + 'static,
    I: Iterator<Item = Result<T>> + Send + 'static,
    F: FnOnce(crate::io::OpenedInput) -> I + Send + 'static,
{
    let span = tracing::debug_span!(
        "vortex.source",
        operation = open,
        input = input.source_name()
    );
    let mut decode = Some(decode);
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let items = std::iter::once_with(move || input.open(open)).flat_map(
        move |opened| -> Box<dyn Iterator<Item = Result<T>> + Send> {
            match (opened, decode.take()) {
                (Ok(mut opened), Some(decode)) => {
                    opened.reader = Box::new(Stoppable {
                        inner: opened.reader,
                        stop: Arc::clone(&stopped),
                    });
                    Box::new(decode(opened))
                }
                (Err(err), _) => Box::new(std::iter::once(Err(err))),
                (Ok(_), None) => Box::new(std::iter::empty()),
            }
        },
    );
    let mut source = Blocking::new(items, batch);
    source.stop = stop;
    source.carried = Carried::here(span);
    crate::Pipeline::new(source)
}

/// An input that fails its next read once its pipeline is dropped: a decoder in the middle of
/// a long read (past the rest of an endless line, say) stops there, and its thread with it.
struct Stoppable {
    inner: Box<dyn std::io::BufRead + Send>,
    stop: Arc<AtomicBool>,
}

impl Stoppable {
    fn check(&self) -> std::io::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("the pipeline was dropped"));
        }
        Ok(())
    }
}

impl Read for Stoppable {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.check()?;
        self.inner.read(buf)
    }
}

impl std::io::BufRead for Stoppable {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.check()?;
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
    }
}

#[cfg(any(feature = "csv", feature = "jsonl"))]
/// The default number of decoding threads of a format source: the machine's cores, at most 4.
pub(crate) fn default_decode_threads() -> NonZeroUsize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    NonZeroUsize::new(cores.clamp(1, 4)).unwrap_or(NonZeroUsize::MIN)
}

#[cfg(feature = "jsonl")]
/// The stream of a format source that reads raw batches on one thread and decodes them on
/// `threads` others, in order.
pub(crate) type ParallelDecode<R, T, D> =
    super::FlattenBatches<crate::parallel::ParMap<Blocking<R>, D, R, Vec<Result<T>>>, T>;

#[cfg(feature = "jsonl")]
/// A format source decoding in parallel: `read` turns the opened input into raw batches on
/// the reading thread; `decode` turns each batch into items on rayon's pool, `threads`
/// batches at once, in order.
pub(crate) fn from_input_parallel<R, T, I, F, D>(
    input: crate::io::Input,
    open: &'static str,
    threads: NonZeroUsize,
    read: F,
    decode: D,
) -> crate::Pipeline<ParallelDecode<R, T, D>>
where
    R: Send + 'static,
    T: Send + 'static,
    I: Iterator<Item = Result<R>> + Send + 'static,
    F: FnOnce(crate::io::OpenedInput) -> I + Send + 'static,
    D: Fn(R) -> Vec<Result<T>> + Send + Sync + 'static,
{
    let raw = from_input(input, open, NonZeroUsize::MIN, read).par_map(threads, decode);
    crate::Pipeline::new(super::FlattenBatches::new(raw.into_inner()))
}

impl<T: Send + 'static> Pipeline<Blocking<T>> {
    /// A pipeline over a sync, possibly blocking iterator of `Result<T>` items (a file reader,
    /// a database cursor), run on tokio's blocking pool so it never stalls the runtime.
    ///
    /// Items are handed over in batches of up to `batch`, so the cost of crossing threads is
    /// paid once a batch; a slow iterator's items wait until their batch fills or the iterator
    /// ends, so choose a batch of 1 for an interactive source.
    ///
    /// Memory: at most four batches (one filling, two waiting, one being yielded). Each batch
    /// is filled by a job of its own on the pool, to which the iterator moves and from which
    /// it comes back: the pipeline holds a blocking thread only while the iterator works,
    /// never while its consumer is slow, so many waiting pipelines do not take the pool.
    /// Dropping the pipeline stops the iterator as soon as its current `next` call returns, and
    /// drops it on the pool. A panic in the iterator becomes a final
    /// [`Internal`](crate::ErrorKind::Internal) error item. The pipeline must be polled inside
    /// a tokio runtime; elsewhere it yields an `Internal` error.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::Pipeline;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let batch = 256;
    /// let rows = (0..1000u32).map(Ok);
    /// assert_eq!(Pipeline::from_blocking_iter(rows, batch).count().await?, 1000);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_blocking_iter<I>(iter: I, batch: impl Size) -> Self
    where
        I: IntoIterator<Item = Result<T>>,
        I::IntoIter: Send + 'static,
    {
        let batch = batch.non_zero("from_blocking_iter");
        Pipeline::new(Blocking::new(iter, batch))
    }
}
