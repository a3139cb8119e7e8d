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
