//! Driving a pipeline from sync code.

use vortex_stream::{ErrorKind, Pipeline};

use crate::support::nz;

#[test]
fn a_blocking_iterator_yields_every_item() {
    let items: Vec<_> = Pipeline::from_iter(1..=3)
        .chunk(nz(2))
        .into_blocking_iter()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(items, [vec![1, 2], vec![3]]);
}

#[test]
fn run_blocking_drives_timers_and_blocking_sources() {
    let n = Pipeline::from_blocking_iter((0..1000u32).map(Ok), nz(100))
        .chunk_timeout(nz(7), std::time::Duration::from_millis(5))
        .flatten()
        .run_blocking(|p| p.count())
        .unwrap();
    assert_eq!(n, 1000);
}

#[tokio::test]
async fn blocking_on_a_current_thread_runtime_is_refused() {
    let err = Pipeline::from_iter(0..3).into_blocking_iter().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    let err = Pipeline::from_iter(0..3)
        .run_blocking(|p| p.count())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("inside a current-thread async runtime"),
        "{err}"
    );
}

/// On a multi-thread runtime, sync driving works on a `spawn_blocking` thread (where blocking
/// is what the thread is for) and on a worker (through `block_in_place`), and the runtime's
/// other tasks go on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_on_a_multi_thread_runtime_works_on_any_of_its_threads() {
    let (ticks_tx, mut ticks) = tokio::sync::mpsc::channel::<()>(64);
    let mut ticker = tokio::task::JoinSet::new();
    ticker.spawn(async move {
        while ticks_tx.send(()).await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    });
    let slow = || {
        Pipeline::from_iter(0..20u64).then(|n| async move {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            n
        })
    };
    let on_blocking_thread = tokio::task::spawn_blocking(move || {
        let sum = slow().run_blocking(|p| p.fold(0, |a, b| a + b)).unwrap();
        let items: Vec<u64> = slow()
            .into_blocking_iter()
            .unwrap()
            .map(Result::unwrap)
            .collect();
        (sum, items.len())
    })
    .await
    .unwrap();
    assert_eq!(on_blocking_thread, (190, 20));

    let on_worker = slow().run_blocking(|p| p.count()).unwrap();
    assert_eq!(on_worker, 20);
    let mut iter = slow().into_blocking_iter().unwrap();
    assert_eq!(iter.next().unwrap().unwrap(), 0);
    drop(iter);

    // The ticker, a task of the outer runtime, ran while the calls blocked.
    let mut ticked = 0;
    while ticks.try_recv().is_ok() {
        ticked += 1;
    }
    assert!(ticked > 10, "the outer runtime stalled: {ticked} ticks");
    ticker.abort_all();
}

/// Stages with a timer, polled outside a tokio runtime, end with a fatal error item, as the
/// blocking sources do, instead of panicking.
#[test]
fn timer_stages_outside_a_runtime_fail_with_an_error() {
    let soon = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let deadline = futures_executor::block_on(Pipeline::from_iter(0..3).deadline(soon).drain());
    let err = deadline.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.is_fatal());
    assert!(err.to_string().contains("outside a tokio runtime"), "{err}");
    let chunks = futures_executor::block_on(
        Pipeline::from_iter(0..3)
            .chunk_timeout(nz(2), std::time::Duration::from_secs(1))
            .drain(),
    );
    let err = chunks.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("outside a tokio runtime"), "{err}");
}
