use core::fmt;
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::future::Future;
use std::io::Read;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_core::{FusedStream, Stream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Error, Result};

type Batch<T> = Vec<Result<T>>;
type Producer<T> = Box<dyn FnOnce(mpsc::Sender<Batch<T>>) + Send>;

/// Batches in the channel between the blocking thread and the stream.
const CHANNEL_BATCHES: usize = 2;

/// Stream for the [`from_blocking_iter`](crate::Pipeline::from_blocking_iter) and
/// [`from_read`](crate::Pipeline::from_read) constructors: a sync iterator run on tokio's
/// blocking pool, its items handed over in batches.
///
/// At most four batches exist at once: one being filled on the blocking thread, two in the
/// channel and one being yielded. Dropping the stream closes the channel; the blocking thread
/// stops (and drops the iterator) as soon as its current `next` call returns.
#[must_use = "streams do nothing unless polled"]
pub struct Blocking<T> {
    // The work to start on the blocking pool at the first poll, inside the runtime.
    producer: Option<Producer<T>>,
    rx: Option<mpsc::Receiver<Batch<T>>>,
    batch: std::vec::IntoIter<Result<T>>,
    task: Option<JoinHandle<()>>,
    // Batches that may wait in the channel.
    capacity: usize,
    // Raised when the stream is dropped, for an input read on the blocking thread to stop at
    // its next read, even in the middle of an item (see `from_input`).
    stop: Option<Arc<AtomicBool>>,
}

impl<T> Drop for Blocking<T> {
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

impl<T> fmt::Debug for Blocking<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocking")
            .field("started", &self.producer.is_none())
            .field("buffered", &self.batch.len())
            .finish()
    }
}

impl<T: Send + 'static> Blocking<T> {
    pub(crate) fn new<I>(iter: I, batch: NonZeroUsize) -> Self
    where
        I: IntoIterator<Item = Result<T>>,
        I::IntoIter: Send + 'static,
    {
        let mut iter = iter.into_iter();
        let batch = batch.get();
        let producer: Producer<T> = Box::new(move |tx| loop {
            // A batch goes as soon as it holds an error: the consumer may stop there, and the
            // iterator may take long to yield the next item (skipping the rest of an endless
            // line, say), which must not hold the error back.
            let mut items: Batch<T> = Vec::new();
            let mut last = false;
            while items.len() < batch {
                let Some(item) = iter.next() else {
                    last = true;
                    break;
                };
                let failed = item.is_err();
                items.push(item);
                if failed {
                    break;
                }
            }
            if items.is_empty() || tx.blocking_send(items).is_err() || last {
                // Ended, or the consumer is gone: stop and drop the iterator.
                return;
            }
        });
        Blocking {
            producer: Some(producer),
            rx: None,
            batch: Vec::new().into_iter(),
            task: None,
            capacity: CHANNEL_BATCHES,
            stop: None,
        }
    }
}

impl<T: Send + 'static> Blocking<T> {
    /// A source whose blocking thread runs `producer`, which sends batches until it is done or
    /// a send fails (the stream was dropped). One batch waits in the channel at most, so the
    /// producer reads ahead of the consumer by two batches at most: the one waiting and the one
    /// it is filling.
    #[cfg(feature = "sqlite")]
    pub(crate) fn from_producer(
        producer: impl FnOnce(mpsc::Sender<Vec<Result<T>>>) + Send + 'static,
    ) -> Self {
        Blocking {
            producer: Some(Box::new(producer)),
            rx: None,
            batch: Vec::new().into_iter(),
            task: None,
            capacity: 1,
            stop: None,
        }
    }
}

impl<T> Unpin for Blocking<T> {}

impl<T: Send + 'static> Stream for Blocking<T> {
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
            let (tx, rx) = mpsc::channel(this.capacity);
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
                // The source ended early: what it did not read must not pass for the end.
                Err(err) if err.is_panic() => Some(Err(Error::internal(
                    "blocking source",
                    format!(
                        "the iterator panicked: {}",
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

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.batch.len(), None)
    }
}

impl<T: Send + 'static> FusedStream for Blocking<T> {
    fn is_terminated(&self) -> bool {
        self.producer.is_none() && self.rx.is_none() && self.task.is_none() && self.batch.len() == 0
    }
}

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

/// A format source: opens `input` on the blocking thread, then decodes it with the iterator
/// `decode` builds from it. An input that cannot be opened is the only item.
pub(crate) fn from_input<T, I, F>(
    input: crate::io::Input,
    operation: &'static str,
    batch: NonZeroUsize,
    decode: F,
) -> crate::Pipeline<Blocking<T>>
where
    T: Send + 'static,
    I: Iterator<Item = Result<T>> + Send + 'static,
    F: FnOnce(crate::io::OpenedInput) -> I + Send + 'static,
{
    let mut decode = Some(decode);
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let items = std::iter::once_with(move || input.open(operation)).flat_map(
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
    source.stop = Some(stop);
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
    operation: &'static str,
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
    let raw = from_input(input, operation, NonZeroUsize::MIN, read).par_map(threads, decode);
    crate::Pipeline::new(super::FlattenBatches::new(raw.into_inner()))
}
