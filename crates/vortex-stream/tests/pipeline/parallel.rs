//! Parallel stages: order, bounded windows, panics, and dropping mid-flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use vortex_stream::parallel::Parallelism;
use vortex_stream::{ErrorKind, Pipeline};

use crate::support::{
    assert_in_order_but_a_panic_at, nz, outcome, shown, source, spin, Dropped, Pulls,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn par_map_keeps_order_and_passes_errors_in_place() {
    let input: Vec<_> = (0..200)
        .map(|i| if i % 17 == 0 { Err(3) } else { Ok(i) })
        .collect();
    let got = source(&input)
        .par_map(nz(4), |n| {
            std::thread::sleep(Duration::from_micros(u64::try_from(n % 7).unwrap() * 100));
            n * 2
        })
        .into_inner()
        .collect::<Vec<_>>()
        .await;
    let got: Vec<_> = got
        .into_iter()
        .map(|i| i.map_err(|e| e.to_string()))
        .collect();
    let want: Vec<_> = input
        .iter()
        .map(|i| i.map(|n| n * 2).map_err(shown))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn par_then_keeps_order_with_calls_overlapping() {
    let started = tokio::time::Instant::now();
    let got = Pipeline::from_iter(0..20u64)
        .par_then(nz(10), |n| async move {
            tokio::time::sleep(Duration::from_millis(50 - n)).await;
            Ok::<_, std::io::Error>(n)
        })
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    // Sequentially this is about 20 × 40 ms; ten at a time, a fraction of it.
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unordered_stages_yield_the_fast_ones_first() {
    let got = Pipeline::from_iter([100u64, 1, 2])
        .par_then_unordered(nz(3), |ms| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, std::io::Error>(ms)
        })
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(got, [1, 2, 100]);
}

#[tokio::test]
async fn a_slow_head_stops_pulling_at_the_window_par_then() {
    let pulls = Pulls::default();
    let window = 8;
    let pipeline = pulls.endless().take(1000).par_then(
        Parallelism::new(nz(4)).window(nz(window)),
        |n| async move {
            let ms = if n == 0 { 500 } else { 0 };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, std::io::Error>(n)
        },
    );
    let mut pipeline = Box::pin(pipeline);
    let first = pipeline.next().await.unwrap().unwrap();
    assert_eq!(first, 0);
    let pulled = pulls.get();
    assert!(
        pulled <= window,
        "pulled {pulled} values while the head was slow; window {window}"
    );
    assert_eq!(pipeline.count().await, 999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_head_stops_pulling_at_the_window_par_map() {
    let pulls = Pulls::default();
    let window = Parallelism::new(nz(2)).window(nz(4));
    let mut pipeline = Box::pin(pulls.endless().take(200).par_map(window, |n| {
        if n == 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
        n
    }));
    assert_eq!(pipeline.next().await.unwrap().unwrap(), 0);
    assert!(pulls.get() <= 4, "pulled {} values", pulls.get());
    assert_eq!(pipeline.count().await, 199);

    // Left unset, the window grows once values are seen to be cheap, up to 1,024 values and
    // no more, however long the head takes.
    let pulls = Pulls::default();
    let mut pipeline = Box::pin(pulls.endless().take(20_000).par_map(nz(2), |n| {
        if n == 5_000 {
            std::thread::sleep(Duration::from_millis(300));
        }
        n
    }));
    let mut seen = 0;
    while seen < 5_000 {
        pipeline.next().await.unwrap().unwrap();
        seen += 1;
    }
    // The head (value 5,000) is slow: the stage pulls up to its window and waits.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let ahead = pulls.get() - 5_000;
    assert!(ahead <= 1_024, "pulled {ahead} values past the slow head");
    assert!(ahead > 4, "the window did not grow: {ahead}");
    assert_eq!(pipeline.next().await.unwrap().unwrap(), 5_000);
    assert_eq!(pipeline.count().await, 14_999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_head_leaves_at_once() {
    // 300 ms a value, a window of 8: the first value is done at 300 ms and must leave then,
    // not once the queue behind it runs low (it used to at 900-1,200 ms).
    let window = Parallelism::new(nz(4)).window(nz(8));
    let started = std::time::Instant::now();
    let mut pipeline = Box::pin(Pipeline::from_iter(0..8u64).par_map(window, |n| {
        std::thread::sleep(Duration::from_millis(300));
        n
    }));
    assert_eq!(pipeline.next().await.unwrap().unwrap(), 0);
    let first = started.elapsed();
    assert!(
        first < Duration::from_millis(550),
        "the first value left after {first:?}"
    );
    assert_eq!(pipeline.count().await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_becomes_an_internal_error_in_place() {
    let got = outcome(futures_util::stream::iter(
        Pipeline::from_iter(0..6)
            .par_map(nz(3), |n| {
                assert!(n != 3, "three is right out");
                n
            })
            .into_inner()
            .collect::<Vec<_>>()
            .await,
    ));
    assert_eq!(got.len(), 6);
    assert_eq!(got[2], Ok(2));
    assert_eq!(
        got[3],
        Err("par_map: the closure panicked: three is right out".into())
    );
    assert_eq!(got[4], Ok(4));

    let got = Pipeline::from_iter(0..4)
        .par_then(nz(2), |n| async move {
            assert!(n != 1, "async boom");
            Ok::<_, std::io::Error>(n)
        })
        .into_inner()
        .collect::<Vec<_>>()
        .await;
    let err = got[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("async boom"));
    assert_eq!(*got[3].as_ref().unwrap(), 3);
}

#[tokio::test]
async fn dropping_ten_thousand_par_then_pipelines_mid_flight_drops_every_call() {
    let live = Arc::new(AtomicUsize::new(0));
    for _ in 0..10_000 {
        let live = live.clone();
        let mut pipeline = Box::pin(Pipeline::from_iter(0..100u32).par_then(nz(8), move |n| {
            let live = live.clone();
            live.fetch_add(1, Ordering::SeqCst);
            let guard = Decrement(live);
            async move {
                let _held = guard;
                if n > 0 {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Ok::<_, std::io::Error>(n)
            }
        }));
        assert_eq!(pipeline.next().await.unwrap().unwrap(), 0);
        drop(pipeline);
    }
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "every call in flight must be dropped"
    );
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_par_map_pipelines_stops_new_work_and_leaves_no_task() {
    let started = Arc::new(AtomicUsize::new(0));
    let source = Dropped::default();
    for _ in 0..1000 {
        let started = started.clone();
        let window = Parallelism::new(nz(2)).window(nz(4));
        let mut pipeline = Box::pin(source.endless().par_map(window, move |n| {
            started.fetch_add(1, Ordering::SeqCst);
            n
        }));
        pipeline.next().await.unwrap().unwrap();
        drop(pipeline);
    }
    assert!(source.is_set());
    // Each pipeline started at most its window of calls.
    assert!(started.load(Ordering::SeqCst) <= 1000 * 4);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
        > 0
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        0
    );
}

struct Decrement(Arc<AtomicUsize>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn partition_by_keeps_each_keys_order_and_runs_keys_in_parallel() {
    // Lanes are chosen by a hash seeded at random: with 16 keys over 4 lanes, the chance
    // that every key shares one lane (and nothing could run side by side) is 4^-15. (With
    // four keys it was 1 in 64, and the test failed that often.)
    const KEYS: u32 = 16;
    let events: Vec<(u32, u32)> = (0..5)
        .flat_map(|seq| (0..KEYS).map(move |key| (key, seq)))
        .collect();
    let started = tokio::time::Instant::now();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let out = Pipeline::from_iter(events)
        .partition_by(
            nz(4),
            |(key, _)| *key,
            move |event: (u32, u32)| {
                let (running, peak) = (r.clone(), p.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    // Later events of a key are quicker: a race would reorder them.
                    tokio::time::sleep(Duration::from_millis(u64::from(50 - event.1 * 10))).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(event)
                }
            },
        )
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(out.len(), 5 * KEYS as usize);
    for key in 0..KEYS {
        let seqs: Vec<u32> = out
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4], "key {key} out of order");
    }
    assert!(
        peak.load(Ordering::SeqCst) <= 4,
        "one call per lane at most"
    );
    // Keys ran side by side (lanes by hash: these keys do not all share one), which a
    // count of calls at once shows whatever the machine's speed.
    assert!(
        peak.load(Ordering::SeqCst) >= 2,
        "keys ran one at a time in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn partition_by_bounds_what_a_stuck_lane_holds() {
    let pulls = Pulls::default();
    let mut pipeline = Box::pin(pulls.endless().take(1000).partition_by(
        Parallelism::new(nz(2)).window(nz(6)),
        |_| 0u8, // one key: one lane, strictly one after another
        |n| async move {
            if n == 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Ok::<_, std::io::Error>(n)
        },
    ));
    assert_eq!(pipeline.next().await.unwrap().unwrap(), 0);
    assert!(
        pulls.get() <= 7,
        "pulled {} values behind a stuck call",
        pulls.get()
    );
}

#[tokio::test]
async fn tee_gives_every_item_to_every_consumer_errors_included() {
    let mut outs = source(&[Ok(1), Err(7), Ok(2), Ok(3)]).tee(nz(3), nz(2));
    let c = outs.pop().unwrap().into_inner();
    let b = outs.pop().unwrap().into_inner();
    let a = outs.pop().unwrap().into_inner();
    let (a, b, c) = tokio::join!(
        a.collect::<Vec<_>>(),
        b.collect::<Vec<_>>(),
        c.collect::<Vec<_>>()
    );
    for got in [a, b, c] {
        let got: Vec<_> = got
            .into_iter()
            .map(|i| i.map_err(|e| e.to_string()))
            .collect();
        assert_eq!(got, [Ok(1), Err(shown(7)), Ok(2), Ok(3)]);
    }
}

#[tokio::test]
async fn tee_lets_the_fastest_run_only_a_buffer_ahead_of_the_slowest() {
    let pulls = Pulls::default();
    let mut outs = pulls.endless().tee(nz(2), nz(4));
    let mut slow = Box::pin(outs.pop().unwrap());
    let mut fast = Box::pin(outs.pop().unwrap());
    for want in 0..4 {
        assert_eq!(fast.next().await.unwrap().unwrap(), want);
    }
    let stalled = tokio::time::timeout(Duration::from_millis(50), fast.next()).await;
    assert!(
        stalled.is_err(),
        "the fast consumer must wait for the slow one"
    );
    assert_eq!(pulls.get(), 4);
    assert_eq!(slow.next().await.unwrap().unwrap(), 0);
    assert_eq!(
        fast.next().await.unwrap().unwrap(),
        4,
        "one taken by the slow one frees one place"
    );
    // A consumer that goes away no longer holds the others back.
    drop(slow);
    for want in 5..50 {
        assert_eq!(fast.next().await.unwrap().unwrap(), want);
    }
}

#[tokio::test]
async fn tee_drops_the_upstream_with_its_last_consumer() {
    let source = Dropped::default();
    let outs = source.endless().tee(nz(2), nz(8));
    let mut outs: Vec<_> = outs.into_iter().map(Box::pin).collect();
    outs[0].next().await.unwrap().unwrap();
    outs.pop();
    assert!(!source.is_set());
    outs.pop();
    assert!(source.is_set());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_par_map_drops_the_queued_values_and_the_results_still_running() {
    let alive = Arc::new(AtomicUsize::new(0));
    let tokens = {
        let alive = alive.clone();
        futures_util::stream::iter(0..).map(move |_| {
            alive.fetch_add(1, Ordering::SeqCst);
            Ok::<_, vortex_stream::Error>(Decrement(alive.clone()))
        })
    };
    let mut pipeline = Box::pin(Pipeline::from_stream(tokens).par_map(nz(2), |token| {
        std::thread::sleep(Duration::from_millis(20));
        token
    }));
    drop(pipeline.next().await.unwrap().unwrap());
    // The window is full: values waiting in the queue, two running.
    assert!(alive.load(Ordering::SeqCst) >= 3);
    drop(pipeline);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while alive.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        alive.load(Ordering::SeqCst),
        0,
        "a value outlived the stage"
    );
}

#[tokio::test]
async fn par_map_ends_when_its_source_ends_after_a_wait() {
    assert_eq!(
        Pipeline::from_iter(Vec::<u32>::new())
            .par_map(nz(2), |n| n)
            .count()
            .await
            .unwrap(),
        0
    );
    // A source that has nothing at first, then ends: the stage must see the end it pulled.
    let mut first = true;
    let ends_later = futures_util::stream::poll_fn(move |cx| {
        if std::mem::take(&mut first) {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(None::<vortex_stream::Result<u32>>)
        }
    });
    let counted = tokio::time::timeout(
        Duration::from_secs(5),
        Pipeline::from_stream(ends_later)
            .par_map(nz(2), |n| n)
            .count(),
    )
    .await;
    assert_eq!(
        counted.ok().map(Result::unwrap),
        Some(0),
        "the stage never ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheap_values_in_batches_keep_their_order_and_their_panics_in_place() {
    // Values of well under a microsecond go in batches, some run by the stage's own task:
    // the order, every value and a panic's place must not change for it.
    let n = 200_000u64;
    let out = Pipeline::from_iter(0..n)
        .par_map(nz(2), |v| v.wrapping_mul(3))
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(out, (0..n).map(|v| v.wrapping_mul(3)).collect::<Vec<_>>());

    let mut unordered = Pipeline::from_iter(0..n)
        .par_map_unordered(nz(2), |v| v + 1)
        .collect::<Vec<_>>()
        .await
        .unwrap();
    unordered.sort_unstable();
    assert_eq!(unordered, (1..=n).collect::<Vec<_>>());

    let items: Vec<_> =
        futures_util::StreamExt::collect(Pipeline::from_iter(0..n).par_map(nz(2), |v| {
            assert!(v != 150_000, "boom");
            v
        }))
        .await;
    assert_eq!(items.len(), n as usize);
    assert_in_order_but_a_panic_at(&items, 150_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_of_uneven_cost_keep_their_order_and_panics_and_the_stage_ends() {
    // Costs on both sides of the point where values are handed over one by one, not in
    // batches (a few microseconds), and now and then a slow one: every value arrives, in
    // order (or all of them, unordered), a panic in its place, and the stage never waits for
    // a value already handed over (it would hang, caught by the timeout).
    let cost = |v: u64| match v.wrapping_mul(2_654_435_761) % 100 {
        0 => 2_000,
        1..=30 => 0,
        31..=60 => 1,
        61..=80 => 3,
        _ => 30,
    };
    let n = 6_000u64;
    let ordered = tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::StreamExt::collect::<Vec<_>>(Pipeline::from_iter(0..n).par_map(
            nz(2),
            move |v| {
                spin(Duration::from_micros(cost(v)));
                assert!(v != 4_321, "boom");
                v
            },
        )),
    )
    .await
    .expect("the ordered stage hung");
    assert_eq!(ordered.len(), n as usize);
    assert_in_order_but_a_panic_at(&ordered, 4_321);

    let mut unordered = tokio::time::timeout(
        Duration::from_secs(60),
        Pipeline::from_iter(0..n)
            .par_map_unordered(nz(2), move |v| {
                spin(Duration::from_micros(cost(v)));
                v
            })
            .collect::<Vec<_>>(),
    )
    .await
    .expect("the unordered stage hung")
    .unwrap();
    unordered.sort_unstable();
    assert_eq!(unordered, (0..n).collect::<Vec<_>>());
}
