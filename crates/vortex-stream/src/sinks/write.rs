//! The sink side of a file pipeline: values cross to a blocking thread in batches and are
//! written there.

use std::pin::pin;

use futures_core::Stream;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{Format, FormatWriter};
use crate::io::Output;
use crate::io::Written;
use crate::{Error, ErrorKind, Result};

/// Values handed to the writing thread at once.
const BATCH: usize = 1024;

enum Msg<T> {
    Batch(Vec<T>),
    /// Every value was sent: finish and commit the output.
    Commit,
}

/// Drives `stream` into `format` on `output`; see [`Pipeline::write`](crate::Pipeline::write).
pub(crate) async fn write<S, T, F>(stream: S, format: F, output: Output) -> Result<Written>
where
    S: Stream<Item = Result<T>>,
    T: Send + 'static,
    F: Format<T>,
{
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| Error::internal("sink", "a file sink must run inside a tokio runtime"))?;
    let (tx, rx) = mpsc::channel::<Msg<T>>(2);
    let writer = runtime.spawn_blocking(move || write_blocking(rx, format, output));
    let mut stream = pin!(stream);
    let mut batch = Vec::with_capacity(BATCH);
    let outcome: Result<()> = async {
        while let Some(item) = stream.next().await {
            batch.push(item?);
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if tx.send(Msg::Batch(full)).await.is_err() {
                    // The writer stopped on an error of its own, reported below.
                    return Ok(());
                }
            }
        }
        if !batch.is_empty()
            && tx
                .send(Msg::Batch(std::mem::take(&mut batch)))
                .await
                .is_err()
        {
            return Ok(());
        }
        let _ = tx.send(Msg::Commit).await;
        Ok(())
    }
    .await;
    // Without a commit, the writer discards the output (a temporary file is removed).
    drop(tx);
    let written = writer.await;
    outcome?;
    match written {
        Ok(written) => written,
        Err(e) => Err(Error::internal(
            "sink",
            format!("the writing thread failed: {e}"),
        )),
    }
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
            Msg::Commit => {
                let bytes = commit.finish(writer.finish()?)?;
                return Ok(Written { rows, bytes });
            }
        }
    }
    Err(Error::new(ErrorKind::Cancelled, "sink")
        .with_message("the pipeline stopped before its end; the output was discarded"))
}
