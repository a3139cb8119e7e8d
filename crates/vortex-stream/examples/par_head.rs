//! How long an ordered `par_map` holds a finished value back: for every value, the time from
//! the moment it could leave (its work is done, and every value before it has left) to the
//! moment the pipeline yields it.
//!
//! ```text
//! cargo run --release -p vortex-stream --example par_head [RUNS]
//! ```
//!
//! Each value's closure returns, with the value, the instant its work ended; the consumer
//! takes the instant each value arrives. A value can leave at the later of its own end and the
//! arrival of the value before it; what it waits past that is the stage's doing. Prints, per
//! case, the median, 99th percentile and largest wait over every value of `RUNS` runs, and how
//! many values waited more than 1 ms.

// An example that cannot start its runtime has nothing to show: panicking says so.
#![allow(clippy::panic, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use vortex_stream::parallel::Parallelism;
use vortex_stream::Pipeline;

/// Spins for `busy`, or sleeps for it (waiting, as on I/O, leaves the cores free).
fn work(busy: Duration, sleeps: bool) {
    if sleeps {
        std::thread::sleep(busy);
        return;
    }
    let until = Instant::now() + busy;
    while Instant::now() < until {
        black_box(0);
    }
}

/// A case: its name, its parallelism, the time each value takes, and whether it spins for
/// that time or sleeps.
struct Case {
    name: &'static str,
    parallelism: Parallelism,
    cost: fn(u64) -> Duration,
    sleeps: bool,
    values: u64,
}

/// Every value's wait (see the module docs), in microseconds.
async fn waits(case: &Case) -> Vec<f64> {
    let (cost, sleeps) = (case.cost, case.sleeps);
    let mut pipeline = Box::pin(Pipeline::from_iter(0..case.values).par_map(
        case.parallelism,
        move |n| {
            work(cost(n), sleeps);
            (n, Instant::now())
        },
    ));
    let mut waits = Vec::new();
    let mut last_arrival: Option<Instant> = None;
    let mut expected = 0;
    while let Some(item) = pipeline.next().await {
        let arrived = Instant::now();
        let (n, ended) = item.expect("no value fails");
        assert_eq!(n, expected, "values leave in order");
        expected += 1;
        let could_leave = last_arrival.map_or(ended, |last| last.max(ended));
        waits.push(arrived.saturating_duration_since(could_leave).as_secs_f64() * 1e6);
        last_arrival = Some(arrived);
    }
    waits
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at]
}

/// A cost from 0.2 to 2 ms, scattered by the value's number.
fn scattered_ms(n: u64) -> Duration {
    Duration::from_micros(200 + (n.wrapping_mul(2_654_435_761) % 1_800))
}

/// A cost from 1 to 20 µs, scattered by the value's number.
fn scattered_us(n: u64) -> Duration {
    Duration::from_nanos(1_000 + (n.wrapping_mul(2_654_435_761) % 19_000))
}

/// The first value of every 64 takes 5 ms, the others 10 µs: values of uneven cost, batched
/// together.
fn slow_heads(n: u64) -> Duration {
    if n.is_multiple_of(64) {
        Duration::from_millis(5)
    } else {
        Duration::from_micros(10)
    }
}

/// Every 4,096th value takes 5 ms, the others nothing to speak of: a slow value after a long
/// run of cheap ones, which the stage hands over in batches.
fn rare_slow(n: u64) -> Duration {
    if n % 4_096 == 4_095 {
        Duration::from_millis(5)
    } else {
        Duration::ZERO
    }
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map_or(3, |n| n.parse().expect("RUNS: a number"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let nz = |n: usize| NonZeroUsize::new(n).expect("not zero");
    let cases = [
        Case {
            name: "limit 4, window 8, 300 ms a value, sleeping",
            parallelism: Parallelism::new(nz(4)).window(nz(8)),
            cost: |_| Duration::from_millis(300),
            sleeps: true,
            values: 8,
        },
        Case {
            name: "limit 2, 0.2-2 ms a value, sleeping",
            parallelism: Parallelism::new(nz(2)),
            cost: scattered_ms,
            sleeps: true,
            values: 2_000,
        },
        Case {
            name: "limit 2, 0.2-2 ms a value",
            parallelism: Parallelism::new(nz(2)),
            cost: scattered_ms,
            sleeps: false,
            values: 2_000,
        },
        Case {
            name: "limit 2, 1-20 µs a value (batched)",
            parallelism: Parallelism::new(nz(2)),
            cost: scattered_us,
            sleeps: false,
            values: 100_000,
        },
        Case {
            name: "limit 2, a 5 ms value before 63 of 10 µs",
            parallelism: Parallelism::new(nz(2)),
            cost: slow_heads,
            sleeps: false,
            values: 6_400,
        },
        Case {
            name: "limit 2, a 5 ms value after 4,095 of none",
            parallelism: Parallelism::new(nz(2)),
            cost: rare_slow,
            sleeps: false,
            values: 40_960,
        },
    ];
    println!("| case | values | median wait | 99th percentile | largest | over 1 ms |");
    println!("|---|---|---|---|---|---|");
    for case in &cases {
        let mut all = Vec::new();
        for _ in 0..runs {
            all.extend(runtime.block_on(waits(case)));
        }
        all.sort_by(f64::total_cmp);
        println!(
            "| {} | {} × {runs} | {:.1} µs | {:.1} µs | {:.1} µs | {} |",
            case.name,
            case.values,
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            all[all.len() - 1],
            all.iter().filter(|&&wait| wait > 1_000.0).count(),
        );
    }
}
