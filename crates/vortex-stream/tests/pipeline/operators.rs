//! Each operator: its normal behaviour and how it passes error items through.

use std::time::Duration;

use vortex_stream::{Error, ErrorKind, Pipeline, Position};

use crate::support::{nz, outcome, shown, source, spin};

#[test]
fn map_transforms_values_and_passes_errors() {
    let out = outcome(source(&[Ok(1), Err(7), Ok(3)]).map(|n| n * 2));
    assert_eq!(out, [Ok(2), Err(shown(7)), Ok(6)]);
}

#[test]
fn try_map_turns_a_failure_into_an_item_and_goes_on() {
    let out = outcome(source(&[Ok(1), Ok(0), Err(2), Ok(4)]).try_map(|n| {
        if n == 0 {
            Err("zero")
        } else {
            Ok(100 / n)
        }
    }));
    assert_eq!(
        out,
        [Ok(100), Err("try_map: zero".into()), Err(shown(2)), Ok(25)]
    );
}

#[test]
fn try_map_keeps_a_vortex_error_from_the_closure() {
    let out = outcome(source(&[Ok(1)]).try_map(|_| {
        Err::<i32, _>(
            Error::new(ErrorKind::Validation, "amount check")
                .with_position(Position::new().with_record(41)),
        )
    }));
    assert_eq!(
        out,
        [Err(
            "amount check: record 41: record failed validation".into()
        )]
    );
}

#[test]
fn an_error_keeps_its_operation_through_later_stages() {
    let err = futures_executor::block_on(
        source(&[Ok(1), Err(3)])
            .map(|n| n + 1)
            .try_map(Ok::<_, Error>)
            .filter(|_| true)
            .then(|n| async move { n })
            .validate(|_| Ok::<_, Error>(()))
            .drain(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(err.operation(), "test source");
}

#[tokio::test(start_paused = true)]
async fn then_and_try_then_await_each_value_in_order() {
    let items = source(&[Ok(3), Err(1), Ok(1)])
        .then(|n| async move {
            tokio::time::sleep(Duration::from_millis(u64::try_from(n).unwrap())).await;
            n * 10
        })
        .into_inner();
    // The timers need the runtime: collect on it rather than on a blocking executor.
    let out = outcome(futures_util::stream::iter(
        futures_util::StreamExt::collect::<Vec<_>>(items).await,
    ));
    assert_eq!(out, [Ok(30), Err(shown(1)), Ok(10)]);
    let out = outcome(
        source(&[Ok(2), Ok(-1)])
            .try_then(|n| async move { u8::try_from(n).map_err(|_| "negative") }),
    );
    assert_eq!(out, [Ok(2u8), Err("try_then: negative".into())]);
}

#[test]
fn filter_try_filter_and_filter_map() {
    let out = outcome(source(&[Ok(1), Ok(2), Err(0), Ok(4)]).filter(|n| n % 2 == 0));
    assert_eq!(out, [Ok(2), Err(shown(0)), Ok(4)]);
    let out = outcome(source(&[Ok(1), Ok(-2), Ok(4)]).try_filter(|n| {
        if *n < 0 {
            Err("negative")
        } else {
            Ok(*n > 1)
        }
    }));
    assert_eq!(out, [Err("try_filter: negative".into()), Ok(4)]);
    let out = outcome(source(&[Ok(1), Ok(2), Err(9)]).filter_map(|n| (n > 1).then_some(n * 3)));
    assert_eq!(out, [Ok(6), Err(shown(9))]);
}

#[test]
fn flat_map_and_flatten() {
    let out = outcome(source(&[Ok(2), Err(1), Ok(0), Ok(1)]).flat_map(|n| 0..n));
    assert_eq!(out, [Ok(0), Ok(1), Err(shown(1)), Ok(0)]);
    let out = outcome(source(&[Ok(1), Ok(2), Ok(3)]).chunk(nz(2)).flatten());
    assert_eq!(out, [Ok(1), Ok(2), Ok(3)]);
}

#[test]
fn take_and_skip_count_values_not_errors() {
    let out = outcome(source(&[Err(1), Ok(1), Err(2), Ok(2), Ok(3)]).take(2));
    assert_eq!(out, [Err(shown(1)), Ok(1), Err(shown(2)), Ok(2)]);
    let out = outcome(source(&[Ok(1), Err(1), Ok(2), Ok(3)]).skip(2));
    assert_eq!(out, [Err(shown(1)), Ok(3)]);
    assert!(outcome(source(&[Ok(1)]).take(0)).is_empty());
}

#[test]
fn take_while_and_skip_while() {
    let out = outcome(source(&[Ok(1), Err(5), Ok(2), Ok(9), Ok(1)]).take_while(|n| *n < 5));
    assert_eq!(out, [Ok(1), Err(shown(5)), Ok(2)]);
    let out = outcome(source(&[Ok(1), Err(5), Ok(9), Ok(1)]).skip_while(|n| *n < 5));
    assert_eq!(out, [Err(shown(5)), Ok(9), Ok(1)]);
}

#[test]
fn chunk_yields_full_chunks_then_the_rest() {
    let out = outcome(source(&[Ok(1), Ok(2), Err(3), Ok(4), Ok(5)]).chunk(nz(2)));
    assert_eq!(out, [Ok(vec![1, 2]), Err(shown(3)), Ok(vec![4, 5])]);
    let out = outcome(source(&[Ok(1), Ok(2), Ok(3)]).chunk(nz(2)));
    assert_eq!(out, [Ok(vec![1, 2]), Ok(vec![3])]);
    assert!(outcome(source(&[]).chunk(nz(2))).is_empty());
}

#[tokio::test(start_paused = true)]
async fn chunk_timeout_flushes_a_partial_chunk_when_time_is_up() {
    let (tx, pipeline) = Pipeline::channel(nz(4));
    let mut chunks = std::pin::pin!(pipeline.chunk_timeout(nz(3), Duration::from_secs(1)));
    use futures_util::StreamExt as _;
    tx.send(Ok(1)).await.unwrap();
    tx.send(Ok(2)).await.unwrap();
    // Two values and no third: the chunk leaves once the second has passed.
    let started = tokio::time::Instant::now();
    let first = chunks.next().await.unwrap().unwrap();
    assert_eq!(first, [1, 2]);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    // A full chunk leaves at once.
    for n in 3..=5 {
        tx.send(Ok(n)).await.unwrap();
    }
    let second = chunks.next().await.unwrap().unwrap();
    assert_eq!(second, [3, 4, 5]);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    drop(tx);
    assert!(chunks.next().await.is_none());
}

#[test]
fn window_slides_one_value_at_a_time() {
    let out = outcome(source(&[Ok(1), Ok(2), Err(0), Ok(3), Ok(4)]).window(nz(3)));
    assert_eq!(out, [Err(shown(0)), Ok(vec![1, 2, 3]), Ok(vec![2, 3, 4])]);
    assert!(outcome(source(&[Ok(1)]).window(nz(2))).is_empty());
}

#[test]
fn scan_threads_state_and_can_end_early() {
    let out = outcome(
        source(&[Ok(1), Err(0), Ok(2), Ok(3), Ok(4)]).scan(0, |sum, n| {
            *sum += n;
            (*sum < 6).then_some(*sum)
        }),
    );
    assert_eq!(out, [Ok(1), Err(shown(0)), Ok(3)]);
}

#[test]
fn inspect_sees_values_only() {
    let mut seen = Vec::new();
    let out = outcome(source(&[Ok(1), Err(2), Ok(3)]).inspect(|n| seen.push(*n)));
    assert_eq!(out.len(), 3);
    assert_eq!(seen, [1, 3]);
}

#[test]
fn enumerate_counts_values() {
    let out = outcome(source(&[Ok(7), Err(1), Ok(8)]).enumerate());
    assert_eq!(out, [Ok((0, 7)), Err(shown(1)), Ok((1, 8))]);
}

#[test]
fn chain_zip_and_merge() {
    let out = outcome(source(&[Ok(1), Err(1)]).chain(source(&[Ok(2)])));
    assert_eq!(out, [Ok(1), Err(shown(1)), Ok(2)]);
    let out =
        outcome(source(&[Ok(1), Err(1), Ok(2), Ok(3)]).zip(source(&[Ok(10), Err(2), Ok(20)])));
    assert_eq!(
        out,
        [Ok((1, 10)), Err(shown(1)), Err(shown(2)), Ok((2, 20))]
    );
    let out = outcome(source(&[Ok(1), Ok(3), Ok(5)]).merge(source(&[Ok(2), Err(4)])));
    assert_eq!(out, [Ok(1), Ok(2), Ok(3), Err(shown(4)), Ok(5)]);
    let out = outcome(Pipeline::merge_all([
        source(&[Ok(1), Ok(4)]),
        source(&[]),
        source(&[Ok(2), Ok(5), Ok(6)]),
    ]));
    assert_eq!(out, [Ok(1), Ok(2), Ok(4), Ok(5), Ok(6)]);
}

#[tokio::test]
async fn merge_does_not_wait_for_a_slow_input() {
    let (_slow_tx, slow) = Pipeline::channel(nz(1));
    let fast = Pipeline::from_iter([1, 2, 3]);
    let mut merged = std::pin::pin!(slow.merge(fast));
    use futures_util::StreamExt as _;
    for want in 1..=3 {
        assert_eq!(merged.next().await.unwrap().unwrap(), want);
    }
}

#[test]
fn dedup_drops_consecutive_duplicates() {
    let out = outcome(source(&[Ok(1), Ok(1), Err(0), Ok(1), Ok(2), Ok(1)]).dedup());
    assert_eq!(out, [Ok(1), Err(shown(0)), Ok(2), Ok(1)]);
}

#[test]
fn group_by_key_groups_runs_and_splits_long_ones() {
    let out = outcome(
        source(&[Ok(1), Ok(3), Err(0), Ok(2), Ok(5), Ok(7), Ok(9)]).group_by_key(nz(2), |n| n % 2),
    );
    assert_eq!(
        out,
        [
            Err(shown(0)),
            Ok((1, vec![1, 3])),
            Ok((0, vec![2])),
            Ok((1, vec![5, 7])),
            Ok((1, vec![9])),
        ]
    );
}

#[test]
fn distinct_is_exact_and_errors_past_its_capacity() {
    let out = outcome(source(&[Ok(1), Ok(2), Ok(1), Err(0), Ok(2)]).distinct(nz(10)));
    assert_eq!(out, [Ok(1), Ok(2), Err(shown(0))]);
    let out = outcome(source(&[Ok(1), Ok(2), Ok(3), Ok(1), Ok(4)]).distinct(nz(2)));
    assert_eq!(out.len(), 4);
    assert_eq!(out[..2], [Ok(1), Ok(2)]);
    let full = out[2].clone().unwrap_err();
    assert!(
        full.starts_with("distinct: record 2: 2 distinct keys"),
        "{full}"
    );
    assert!(out[3]
        .clone()
        .unwrap_err()
        .starts_with("distinct: record 4:"));
    let out = outcome(source(&[Ok(10), Ok(21), Ok(30)]).distinct_by(nz(5), |n| n % 10));
    assert_eq!(out, [Ok(10), Ok(21)]);
}

#[test]
fn validate_positions_invalid_items() {
    let out = outcome(source(&[Ok(1), Err(4), Ok(-1), Ok(2)]).validate(|n| {
        if *n >= 0 {
            Ok(())
        } else {
            Err(format!("{n} is negative"))
        }
    }));
    assert_eq!(
        out,
        [
            Ok(1),
            Err(shown(4)),
            Err("validate: record 2: -1 is negative".into()),
            Ok(2)
        ]
    );
    let err =
        futures_executor::block_on(source(&[Ok(-1)]).validate(|_| Err("no")).drain()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.position().and_then(Position::record), Some(0));
    // The closure's error is the cause; its text is the message, told once.
    assert!(err.cause().is_some());
    assert_eq!(err.to_string(), "validate: record 0: no");
    assert!(std::error::Error::source(&err).is_none());
}

#[test]
fn validate_or_else_hands_invalid_items_to_the_callback() {
    let mut rejected = Vec::new();
    let out = outcome(source(&[Ok(1), Ok(-1), Err(3), Ok(-2)]).validate_or_else(
        |n| if *n >= 0 { Ok(()) } else { Err("negative") },
        |n, err| rejected.push((n, err.position().and_then(Position::record))),
    ));
    assert_eq!(out, [Ok(1), Err(shown(3))]);
    assert_eq!(rejected, [(-1, Some(1)), (-2, Some(3))]);
}

#[test]
fn boxed_pipelines_merge_across_types() {
    let a = source(&[Ok(1)]).map(|n| n + 1).boxed();
    let b = source(&[Ok(5)]).filter(|_| true).boxed();
    let out = outcome(Pipeline::merge_all([a, b]));
    assert_eq!(out, [Ok(2), Ok(5)]);
}

#[tokio::test]
async fn batch_map_hands_over_owned_batches_and_keeps_order() {
    let mut sizes = Vec::new();
    let out = source(&[Ok(1), Ok(2), Err(9), Ok(3), Ok(4), Ok(5)])
        .inspect(|_| {})
        .batch_map(nz(2), |batch: Vec<i32>| {
            sizes.push(batch.len());
            async move {
                if batch.contains(&5) {
                    Err("five is out")
                } else {
                    Ok(batch.into_iter().map(|n| n * 10).collect::<Vec<_>>())
                }
            }
        })
        .into_inner();
    let out: Vec<_> = futures_util::StreamExt::collect(out).await;
    let out: Vec<_> = out
        .into_iter()
        .map(|i| i.map_err(|e| e.to_string()))
        .collect();
    assert_eq!(
        out,
        [
            Ok(10),
            Ok(20),
            Err(shown(9)),
            Ok(30),
            Ok(40),
            Err("try_then: five is out".into())
        ]
    );
    assert_eq!(sizes, [2, 2, 1]);
}

/// A zero period is no limit; a period too long for the clock lets the burst through and then
/// waits, without a panic or a spinning core.
#[tokio::test(start_paused = true)]
async fn throttle_with_a_zero_or_endless_period() {
    use futures_util::StreamExt as _;
    let one = 1usize;
    let started = tokio::time::Instant::now();
    let all = Pipeline::from_iter(0..1000)
        .throttle(one, Duration::ZERO, one)
        .count();
    let counted = tokio::time::timeout(Duration::from_secs(1), all).await;
    assert_eq!(counted.expect("a zero period held values").unwrap(), 1000);
    assert!(started.elapsed() < Duration::from_millis(1));

    let two = 2usize;
    let mut endless = Box::pin(Pipeline::from_iter(0..10).throttle(one, Duration::MAX, two));
    assert_eq!(endless.next().await.unwrap().unwrap(), 0);
    assert_eq!(endless.next().await.unwrap().unwrap(), 1);
    let third = tokio::time::timeout(Duration::from_secs(3600), endless.next()).await;
    assert!(third.is_err(), "a third value came within an hour");
}

#[tokio::test]
async fn reverse_yields_last_first_with_errors_in_their_places() {
    let out = outcome(source(&[Ok(1), Err(2), Ok(3)]).reverse());
    assert_eq!(out, [Ok(3), Err(shown(2)), Ok(1)]);
    let none: Vec<i32> = Pipeline::from_iter(Vec::<i32>::new())
        .reverse()
        .collect()
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn sizes_take_literals_and_lengths_and_refuse_zero_naming_the_method() {
    let rows = vec![1, 2, 3, 4, 5];
    let batches = outcome(Pipeline::from_iter(rows.clone()).chunk(rows.len() - 3));
    assert_eq!(batches.len(), 3);
    let first = outcome(Pipeline::from_iter(rows.clone()).take(rows.len() - 1));
    assert_eq!(first, [Ok(1), Ok(2), Ok(3), Ok(4)]);

    let refused = |what: &str, build: Box<dyn FnOnce() + std::panic::UnwindSafe>| {
        let message = std::panic::catch_unwind(build).expect_err(what);
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            message,
            format!("{what}: the size must be at least 1, not 0")
        );
    };
    let empty = || Pipeline::from_iter(Vec::<u8>::new());
    refused("chunk", Box::new(move || drop(empty().chunk(0))));
    refused("tee", Box::new(move || drop(empty().tee(2, 0))));
    refused("tee", Box::new(move || drop(empty().tee(0, 8))));
    refused("window", Box::new(move || drop(empty().window(0))));
    refused("distinct", Box::new(move || drop(empty().distinct(0))));
    refused(
        "throttle",
        Box::new(move || drop(empty().throttle(0, Duration::from_secs(1), 1))),
    );
    refused(
        "Parallelism::new",
        Box::new(move || drop(empty().par_map(0, |n| n))),
    );
    refused(
        "channel",
        Box::new(|| drop(Pipeline::<vortex_stream::sources::Receiver<u8>>::channel(0))),
    );
}

#[tokio::test]
async fn observe_finds_the_stage_the_time_goes_to() {
    let stats = vortex_stream::Stats::new();
    let slow = Duration::from_micros(300);
    let consumer = Duration::from_micros(100);
    let done = source(&[Ok(1), Err(2), Ok(3), Ok(4)])
        .chain(Pipeline::from_iter(5..=200))
        .observe(&stats, "read")
        .map(|n| n + 1)
        .observe(&stats, "cheap")
        .inspect(move |_| spin(slow))
        .observe(&stats, "slow")
        .on_error(vortex_stream::ErrorPolicy::skip())
        .for_each(|_| spin(consumer))
        .await;
    assert!(done.is_ok());
    let stages = stats.stages();
    let names: Vec<_> = stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["read", "cheap", "slow"]);
    assert!(
        stages.iter().all(|s| (s.items, s.errors) == (200, 1)),
        "{stages:?}"
    );
    let (cheap, slow_stage) = (&stages[1], &stages[2]);
    // 199 values spun for 300 µs each in the slow stage.
    assert!(slow_stage.busy >= slow * 199, "{stats}");
    assert!(slow_stage.busy > cheap.busy * 10, "{stats}");
    assert!(slow_stage.upstream < slow_stage.busy, "{stats}");
    // The consumer's time is downstream of every point.
    assert!(slow_stage.downstream >= consumer * 199, "{stats}");
    assert!(
        stages[0].downstream >= slow * 199 + consumer * 199,
        "{stats}"
    );
    let table = stats.to_string();
    assert!(
        table.lines().count() == 5 && table.contains("(consumer)"),
        "{table}"
    );
}
