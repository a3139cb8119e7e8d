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
async fn blocking_inside_a_runtime_is_refused() {
    let err = Pipeline::from_iter(0..3).into_blocking_iter().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    let err = Pipeline::from_iter(0..3)
        .run_blocking(|p| p.count())
        .unwrap_err();
    assert!(err.to_string().contains("inside an async runtime"), "{err}");
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
