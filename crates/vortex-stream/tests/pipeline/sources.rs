//! Constructors: generators, channels, blocking iterators and readers.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::StreamExt as _;
use vortex_stream::{Error, ErrorKind, Pipeline, Position, DEFAULT_READ_CHUNK};

use crate::support::nz;

#[tokio::test]
async fn generate_runs_only_as_far_as_the_consumer_pulls() {
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = produced.clone();
    let first = Pipeline::generate(|mut y| async move {
        for n in 0.. {
            counter.fetch_add(1, Ordering::SeqCst);
            y.emit(n).await;
        }
        Ok(())
    })
    .take(3)
    .collect::<Vec<u64>>()
    .await
    .unwrap();
    assert_eq!(first, [0, 1, 2]);
    assert_eq!(produced.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn generate_yields_errors_and_its_returned_error_last() {
    let items = Pipeline::generate(|mut y| async move {
        y.emit(1).await;
        y.emit_err(Error::new(ErrorKind::Decode, "gen")).await;
        tokio::task::yield_now().await;
        y.emit(2).await;
        Err(Error::new(ErrorKind::Io, "gen").with_message("connection lost"))
    })
    .into_inner()
    .collect::<Vec<_>>()
    .await;
    assert_eq!(items.len(), 4);
    assert_eq!(*items[0].as_ref().unwrap(), 1);
    assert_eq!(items[1].as_ref().unwrap_err().kind(), ErrorKind::Decode);
    assert_eq!(*items[2].as_ref().unwrap(), 2);
    assert_eq!(
        items[3].as_ref().unwrap_err().to_string(),
        "gen: connection lost"
    );
}

#[tokio::test]
async fn a_channel_holds_back_a_fast_producer() {
    let (tx, pipeline) = Pipeline::channel(nz(2));
    for n in 0..2 {
        tx.try_send(Ok(n)).unwrap();
    }
    assert!(
        tx.try_send(Ok(2)).is_err(),
        "a full channel must refuse more"
    );
    drop(tx);
    assert_eq!(pipeline.collect::<Vec<_>>().await.unwrap(), [0, 1]);
}

#[tokio::test]
async fn a_blocking_iterator_keeps_order_across_batches() {
    let items = (0..10_000u32).map(Ok);
    let out = Pipeline::from_blocking_iter(items, nz(64))
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(out, (0..10_000).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_panicking_blocking_iterator_becomes_an_internal_error() {
    let items = (0..10u32).map(|n| {
        assert!(n < 5, "row {n} is cursed");
        Ok(n)
    });
    let out = Pipeline::from_blocking_iter(items, nz(2))
        .into_inner()
        .collect::<Vec<_>>()
        .await;
    let values: Vec<_> = out
        .iter()
        .filter_map(|i| i.as_ref().ok())
        .copied()
        .collect();
    assert_eq!(values, [0, 1, 2, 3]);
    let err = out.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("row 5 is cursed"), "{err}");
}

#[test]
fn a_blocking_source_outside_a_runtime_is_an_error_not_a_panic() {
    let items = futures_executor::block_on(
        Pipeline::from_blocking_iter((0..3u8).map(Ok), nz(1))
            .into_inner()
            .collect::<Vec<_>>(),
    );
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].as_ref().unwrap_err().kind(), ErrorKind::Internal);
}

#[tokio::test]
async fn from_read_streams_chunks_of_the_size_asked() {
    let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let chunks = Pipeline::from_read(std::io::Cursor::new(data.clone()), nz(4096))
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert!(chunks.iter().all(|c| c.len() <= 4096));
    assert_eq!(chunks.concat(), data);
}

/// A reader that fails after handing out `ok` bytes.
struct FailingReader {
    ok: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.ok == 0 {
            return Err(std::io::Error::other("device unplugged"));
        }
        let n = buf.len().min(self.ok);
        buf[..n].fill(b'x');
        self.ok -= n;
        Ok(n)
    }
}

#[tokio::test]
async fn a_read_error_names_the_byte_offset() {
    let items = Pipeline::from_read(FailingReader { ok: 10_000 }, DEFAULT_READ_CHUNK)
        .into_inner()
        .collect::<Vec<_>>()
        .await;
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(err.position().and_then(Position::byte), Some(10_000));
    assert_eq!(err.to_string(), "read: byte 10000: device unplugged");
}

#[tokio::test]
async fn from_async_read_streams_any_async_reader() {
    let (mut writer, reader) = tokio::io::duplex(64);
    let write = async move {
        use tokio::io::AsyncWriteExt as _;
        for _ in 0..100 {
            writer.write_all(&[1u8; 100]).await.unwrap();
        }
    };
    let read = Pipeline::from_async_read(reader, nz(1000)).fold(0, |n, c| n + c.len());
    let ((), total) = tokio::join!(write, read);
    assert_eq!(total.unwrap(), 10_000);
}

#[tokio::test]
async fn unfold_steps_through_state() {
    let out = Pipeline::unfold(
        1u32,
        |n| async move { (n <= 4).then(|| (Ok(n * n), n + 1)) },
    )
    .collect::<Vec<_>>()
    .await
    .unwrap();
    assert_eq!(out, [1, 4, 9, 16]);
}

/// A generator that ends with an error in the same poll as it hands over an item: both come,
/// the item first.
#[tokio::test]
async fn generate_keeps_an_error_returned_with_an_item() {
    let items: Vec<_> = futures_util::StreamExt::collect(Pipeline::generate(|mut y| async move {
        // Polled once: the item is handed over, and the generator does not wait for it.
        let _ = futures_util::FutureExt::now_or_never(y.emit(1));
        Err(vortex_stream::Error::new(ErrorKind::User, "generator").with_message("broken"))
    }))
    .await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(*items[0].as_ref().unwrap(), 1);
    assert_eq!(items[1].as_ref().unwrap_err().message(), "broken");
}

/// A yielder moved into a task of its own still hands its items over, each as it comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_with_the_yielder_in_another_task() {
    let items = Pipeline::generate(|mut y| async move {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move {
            for i in 0..100 {
                y.emit(i).await;
            }
        });
        while let Some(done) = tasks.join_next().await {
            done.map_err(|e| vortex_stream::Error::internal("generator", e.to_string()))?;
        }
        Ok(())
    })
    .collect::<Vec<_>>();
    let items = tokio::time::timeout(std::time::Duration::from_secs(10), items)
        .await
        .expect("the generator hung")
        .unwrap();
    assert_eq!(items, (0..100).collect::<Vec<_>>());
}
