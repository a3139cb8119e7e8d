//! The sink side of a file pipeline: values cross to a blocking thread in batches and are
//! written there.

use std::pin::pin;

use futures_core::Stream;
use tokio::sync::mpsc;

use super::{Format, FormatWriter};
use crate::io::Output;
use crate::io::Written;
use crate::{Error, ErrorKind, Result};

/// Values handed to the writing thread at once. Measured on database exports: 256-value
/// batches took 8% longer than 1024-value ones, and 16 service exports at once peaked at 43
/// MiB instead of 55 MiB.
const BATCH: usize = 1024;

/// A message to a writing thread.
pub(crate) enum Msg<T> {
    Batch(Vec<T>),
    /// Upstream has no value ready: what was written so far should leave now (the first rows
    /// of a slow query reach the client at once, not when a batch or a buffer fills).
    Flush,
    /// Every value was sent: finish and commit.
    Commit,
}

/// What the stream had for `feed`.
enum Next<T> {
    Item(Option<T>),
    /// Nothing ready, and values have waited long enough: hand them over.
    Idle,
}

/// How long values may wait for more before they are handed over (and flushed) while
/// upstream has nothing ready: a fast source fills whole batches long before, a slow one
/// (rows a query finds one by one) sees its rows leave a row apart, not a batch or a buffer
/// apart. Checked when upstream is found not ready, with no timer: a value waits at most this
/// long or until the next one comes, whichever is later.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// Feeds `stream` to `writer`, run on tokio's blocking pool, in batches of `batch` values, and
/// sends [`Msg::Commit`] after the last one. An error item stops the feeding without a commit,
/// so the writer can discard or keep what it wrote as its output requires. Returns how the
/// feeding ended and what the writer returned; at most two batches wait in the channel.
pub(crate) async fn feed<S, T, R, W>(stream: S, batch: usize, writer: W) -> (Result<()>, Result<R>)
where
    S: Stream<Item = Result<T>>,
    T: Send + 'static,
    R: Send + 'static,
    W: FnOnce(mpsc::Receiver<Msg<T>>) -> Result<R> + Send + 'static,
{
    let runtime = match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime,
        Err(_) => {
            let err = || Error::internal("sink", "a sink must run inside a tokio runtime");
            return (Err(err()), Err(err()));
        }
    };
    let (tx, rx) = mpsc::channel::<Msg<T>>(2);
    let writer = runtime.spawn_blocking(move || writer(rx));
    let mut stream = pin!(stream);
    let mut pending = Vec::with_capacity(batch.min(BATCH));
    let outcome: Result<()> = async {
        // When the oldest value waiting was pushed.
        let mut since: Option<std::time::Instant> = None;
        loop {
            // Ready values are batched; when upstream has none ready and the values waiting
            // have waited a while, they are handed over (and flushed).
            let next = std::future::poll_fn(|cx| match stream.as_mut().poll_next(cx) {
                std::task::Poll::Ready(item) => std::task::Poll::Ready(Next::Item(item)),
                std::task::Poll::Pending
                    if since.is_some_and(|since| since.elapsed() >= LINGER) =>
                {
                    std::task::Poll::Ready(Next::Idle)
                }
                std::task::Poll::Pending => std::task::Poll::Pending,
            })
            .await;
            let item = match next {
                Next::Item(Some(item)) => item,
                Next::Item(None) => break,
                Next::Idle => {
                    since = None;
                    let waiting =
                        std::mem::replace(&mut pending, Vec::with_capacity(batch.min(BATCH)));
                    if tx.send(Msg::Batch(waiting)).await.is_err()
                        || tx.send(Msg::Flush).await.is_err()
                    {
                        return Ok(());
                    }
                    continue;
                }
            };
            if pending.is_empty() {
                since = Some(std::time::Instant::now());
            }
            pending.push(item?);
            if pending.len() >= batch {
                since = None;
                let full = std::mem::replace(&mut pending, Vec::with_capacity(batch.min(BATCH)));
                if tx.send(Msg::Batch(full)).await.is_err() {
                    // The writer stopped on an error of its own, returned below.
                    return Ok(());
                }
            }
        }
        if !pending.is_empty()
            && tx
                .send(Msg::Batch(std::mem::take(&mut pending)))
                .await
                .is_err()
        {
            return Ok(());
        }
        let _ = tx.send(Msg::Commit).await;
        Ok(())
    }
    .await;
    drop(tx);
    let written = match writer.await {
        Ok(written) => written,
        Err(e) => Err(Error::internal(
            "sink",
            format!("the writing thread failed: {e}"),
        )),
    };
    (outcome, written)
}

/// Drives `stream` into `format` on `output`; see [`Pipeline::write`](crate::Pipeline::write).
pub(crate) async fn write<S, T, F>(stream: S, format: F, output: Output) -> Result<Written>
where
    S: Stream<Item = Result<T>>,
    T: Send + 'static,
    F: Format<T>,
{
    // Without a commit, the writer discards the output (a temporary file is removed).
    let (outcome, written) =
        feed(stream, BATCH, move |rx| write_blocking(rx, format, output)).await;
    outcome?;
    written
}

fn write_blocking<T, F: Format<T>>(
    mut rx: mpsc::Receiver<Msg<T>>,
    format: F,
    output: Output,
) -> Result<Written> {
    let opened = output.open("sink: open")?;
    let commit = opened.commit;
    let mut writer = format.writer(opened.writer)?;
    let mut rows = 0u64;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Batch(values) => {
                for value in values {
                    writer.write(value)?;
                    rows += 1;
                }
            }
            Msg::Flush => writer.flush()?,
            Msg::Commit => {
                let bytes = commit.finish(writer.finish()?)?;
                return Ok(Written { rows, bytes });
            }
        }
    }
    Err(Error::new(ErrorKind::Cancelled, "sink")
        .with_message("the pipeline stopped before its end; the output was discarded"))
}
