//! Dropping a pipeline stops it; a token or a deadline ends it with one error item.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vortex_stream::{ErrorKind, Pipeline};

use crate::support::{nz, Dropped};

#[tokio::test]
async fn dropping_a_pipeline_drops_its_source_and_stages() {
    let source = Dropped::default();
    let stage = Dropped::default();
    let guard = stage.guard();
    let mut pipeline = Box::pin(
        source
            .endless()
            .map(move |n| {
                let _held = &guard;
                n
            })
            .chunk(nz(10))
            .flatten(),
    );
    assert_eq!(pipeline.next().await.unwrap().unwrap(), 0);
    assert!(!source.is_set() && !stage.is_set());
    drop(pipeline);
    assert!(source.is_set());
    assert!(stage.is_set());
}

#[tokio::test]
async fn dropping_mid_await_cancels_the_pending_future() {
    let in_flight = Dropped::default();
    let in_flight2 = in_flight.clone();
    let mut pipeline = Box::pin(Pipeline::from_iter(0..).then(move |n| {
        let guard = in_flight2.guard();
        async move {
            let _held = guard;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            n
        }
    }));
    let polled = tokio::time::timeout(Duration::from_millis(20), pipeline.next()).await;
    assert!(polled.is_err(), "the stage should still be waiting");
    assert!(!in_flight.is_set());
    drop(pipeline);
    assert!(
        in_flight.is_set(),
        "the pending future must be dropped with the pipeline"
    );
}

#[tokio::test]
async fn a_cancelled_token_ends_the_stream_with_one_error_while_a_stage_awaits() {
    let token = CancellationToken::new();
    let source = Dropped::default();
    let pipeline = source
        .endless()
        .then(|n| async move {
            if n == 3 {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            n
        })
        .cancel_on(token.clone());
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        token.cancel();
    };
    let started = std::time::Instant::now();
    let (items, ()) = tokio::join!(pipeline.into_inner().collect::<Vec<_>>(), cancel);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(items.len(), 4);
    assert_eq!(
        items[..3]
            .iter()
            .map(|i| *i.as_ref().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(items[3].as_ref().unwrap_err().kind(), ErrorKind::Cancelled);
    assert!(source.is_set(), "cancelling must drop the source");
}

#[tokio::test]
async fn a_token_cancelled_before_the_start_yields_nothing_else() {
    let token = CancellationToken::new();
    token.cancel();
    let pulls = crate::support::Pulls::default();
    let items = pulls
        .endless()
        .cancel_on(token)
        .into_inner()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].as_ref().unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(pulls.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_ends_a_stalled_pipeline_with_a_timeout() {
    let source = Dropped::default();
    let started = Instant::now();
    let items = source
        .endless()
        .then(|n| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            n
        })
        .deadline(started + Duration::from_millis(3500))
        .into_inner()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(started.elapsed(), Duration::from_millis(3500));
    assert_eq!(items.len(), 4);
    assert_eq!(items[3].as_ref().unwrap_err().kind(), ErrorKind::Timeout);
    assert!(source.is_set());
}

#[tokio::test]
async fn ten_thousand_dropped_pipelines_leave_no_task_or_source_behind() {
    const PIPELINES: usize = 10_000;
    let released = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Handle::current();
    for _ in 0..PIPELINES {
        let on_drop = Counted(released.clone());
        let source = (0..).map(move |n: u64| {
            let _held = &on_drop;
            Ok(n)
        });
        let mut pipeline = Box::pin(
            Pipeline::from_blocking_iter(source, nz(8))
                .then(|n| async move { n })
                .cancel_on(CancellationToken::new()),
        );
        pipeline.next().await.unwrap().unwrap();
        drop(pipeline);
    }
    // Each blocking producer sees the closed channel, stops and drops its iterator.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while released.load(Ordering::SeqCst) < PIPELINES && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(released.load(Ordering::SeqCst), PIPELINES);
    assert_eq!(runtime.metrics().num_alive_tasks(), 0);
}

struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
