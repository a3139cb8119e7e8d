//! Blocking threads: a pipeline holds one of tokio's blocking pool only while its source or
//! sink is working, never while it waits for its consumer or its upstream. Many waiting
//! pipelines so leave the pool to the rest of the process.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use vortex_stream::io::{Input, Output};
use vortex_stream::sinks::LinesSink;
use vortex_stream::sources::CsvSource;
use vortex_stream::Pipeline;

fn nz(n: usize) -> std::num::NonZeroUsize {
    std::num::NonZeroUsize::new(n).unwrap()
}

/// A pool of 4 blocking threads, far fewer than the pipelines the test keeps waiting.
const POOL: usize = 4;
/// Pipelines of each kind kept waiting: four times the pool.
const WAITING: usize = 4 * POOL;
const ROWS: usize = 20_000;
/// What a check that must not wait on the pool may take, at most.
const PROMPT: Duration = Duration::from_secs(10);

#[test]
fn waiting_pipelines_hold_no_blocking_thread() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(POOL)
        .enable_all()
        .build()
        .unwrap();
    // Bounded as a whole: with a pipeline holding a thread while it waits, the pool runs out
    // while the pipelines are being set up, and the test would wait for ever.
    let outcome = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), waiting_pipelines()).await
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    outcome.expect("the pipelines waited on the blocking pool");
}

async fn waiting_pipelines() {
    {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("orders.csv");
        let mut text = String::from("id,note\n");
        for i in 0..ROWS {
            text.push_str(&format!("{i},\"note, {i}\"\n"));
        }
        std::fs::write(&csv, &text).unwrap();

        // Sources whose consumer stopped pulling: endless iterators and CSV files, each read
        // once and then left alone.
        let mut sources = Vec::new();
        for _ in 0..WAITING {
            let mut endless = Pipeline::from_blocking_iter((0u64..).map(Ok), nz(64));
            assert_eq!(endless.next().await.unwrap().unwrap(), 0);
            sources.push(endless.boxed());
            let mut records = CsvSource::new(Input::path(&csv)).records();
            assert_eq!(&records.next().await.unwrap().unwrap()[0], "0");
            sources.push(records.map(|_| 0u64).boxed());
        }
        // Sinks whose upstream has nothing more yet: a file, one line written.
        let mut senders = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..WAITING {
            let (tx, lines) = Pipeline::channel(nz(4));
            tx.send(Ok(format!("line {i}"))).await.unwrap();
            let path = dir.path().join(format!("{i}.txt"));
            tasks.spawn(async move { (i, true, lines.write(LinesSink, Output::path(path)).await) });
            senders.push(tx);
        }
        // Sinks whose reader does not read: async writers with a small buffer.
        let mut readers = Vec::new();
        for i in 0..WAITING {
            let (writer, reader) = tokio::io::duplex(1024);
            let lines = Pipeline::from_iter(0..ROWS).map(|i| format!("row {i}"));
            let output = Output::async_writer(writer);
            tasks.spawn(async move { (i, false, lines.write(LinesSink, output).await) });
            readers.push(reader);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;

        // The pool is free: unrelated blocking work, and a new source, run at once.
        let read = tokio::time::timeout(PROMPT, tokio::fs::read(&csv))
            .await
            .expect("tokio::fs waited: the blocking pool is taken");
        assert_eq!(read.unwrap().len(), text.len());
        let count =
            tokio::time::timeout(PROMPT, CsvSource::new(Input::path(&csv)).records().count())
                .await
                .expect("a new CSV source waited: the blocking pool is taken");
        assert_eq!(count.unwrap(), ROWS as u64);

        // Every waiting pipeline still goes on from where it was.
        for mut source in sources {
            assert!(source.next().await.unwrap().is_ok());
        }
        drop(senders);
        let mut reads = tokio::task::JoinSet::new();
        for (i, mut reader) in readers.into_iter().enumerate() {
            reads.spawn(async move {
                let mut out = String::new();
                reader.read_to_string(&mut out).await.unwrap();
                (i, out)
            });
        }
        let mut outs = vec![String::new(); WAITING];
        while let Some(read) = reads.join_next().await {
            let (i, out) = read.unwrap();
            outs[i] = out;
        }
        let mut ended = 0;
        while let Some(done) = tasks.join_next().await {
            let (i, file, written) = done.unwrap();
            let written = written.unwrap();
            if file {
                assert_eq!(written.rows, 1);
                let path = dir.path().join(format!("{i}.txt"));
                assert_eq!(
                    std::fs::read_to_string(path).unwrap(),
                    format!("line {i}\n")
                );
            } else {
                let out = &outs[i];
                assert_eq!(written.rows, ROWS as u64);
                assert_eq!(written.bytes, out.len() as u64);
                assert_eq!(out.lines().count(), ROWS);
                assert_eq!(
                    out.lines().last(),
                    Some(format!("row {}", ROWS - 1).as_str())
                );
            }
            ended += 1;
        }
        assert_eq!(ended, 2 * WAITING);
    }
}
