//! Operators and terminals that are satisfied early stop pulling from upstream at once.

use crate::support::{nz, Dropped, Pulls};

#[tokio::test]
async fn take_pulls_exactly_n_values() {
    let pulls = Pulls::default();
    let out = pulls.endless().take(3).collect::<Vec<_>>().await.unwrap();
    assert_eq!(out, [0, 1, 2]);
    assert_eq!(pulls.get(), 3);
}

#[tokio::test]
async fn take_after_filter_and_map_pulls_only_what_it_needs() {
    let pulls = Pulls::default();
    let out = pulls
        .endless()
        .filter(|n| n % 10 == 0)
        .map(|n| n * 2)
        .take(10)
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(out.len(), 10);
    assert_eq!(pulls.get(), 91);
}

#[tokio::test]
async fn take_drops_its_source_once_satisfied() {
    let dropped = Dropped::default();
    let mut take = std::pin::pin!(dropped.endless().take(2));
    use futures_util::StreamExt as _;
    take.next().await;
    assert!(!dropped.is_set());
    take.next().await;
    assert!(
        dropped.is_set(),
        "the source must be released as soon as take is done"
    );
}

#[tokio::test]
async fn first_pulls_one_value() {
    let pulls = Pulls::default();
    assert_eq!(pulls.endless().first().await.unwrap(), Some(0));
    assert_eq!(pulls.get(), 1);
}

#[tokio::test]
async fn any_and_contains_stop_at_the_first_match() {
    let pulls = Pulls::default();
    assert!(pulls.endless().any(|n| *n == 4).await.unwrap());
    assert_eq!(pulls.get(), 5);
    let pulls = Pulls::default();
    assert!(pulls.endless().contains(&9).await.unwrap());
    assert_eq!(pulls.get(), 10);
}

#[tokio::test]
async fn all_stops_at_the_first_failure() {
    let pulls = Pulls::default();
    assert!(!pulls.endless().all(|n| *n < 7).await.unwrap());
    assert_eq!(pulls.get(), 8);
}

#[tokio::test]
async fn take_while_and_scan_stop_pulling_when_done() {
    let pulls = Pulls::default();
    let n = pulls
        .endless()
        .take_while(|n| *n < 5)
        .count()
        .await
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(pulls.get(), 6);
    let pulls = Pulls::default();
    let n = pulls
        .endless()
        .scan((), |(), n| (n < 3).then_some(n))
        .count()
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(pulls.get(), 4);
}

#[tokio::test]
async fn chunk_pulls_no_further_than_the_chunk_taken() {
    let pulls = Pulls::default();
    let first = pulls.endless().chunk(nz(4)).first().await.unwrap();
    assert_eq!(first, Some(vec![0, 1, 2, 3]));
    assert_eq!(pulls.get(), 4);
}
