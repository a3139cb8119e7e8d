//! `par_map` across grains of work, against the sequential pipeline and rayon's `par_iter`,
//! side by side: at each grain the cases run in turn, round after round, so that every case
//! sees the same machine, and each ratio is taken within its round.
//!
//! ```text
//! cargo run --release -p vortex-stream --example par_grain [ROUNDS]
//! ```
//!
//! Prints, per grain (measured: the one-core loop's time per value), the median time of each
//! case and the median and spread of its speed-up over the one-core loop (a plain iterator).

// An example that cannot start its runtime has nothing to show: panicking says so.
#![allow(clippy::panic, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use vortex_stream::Pipeline;

/// `rounds` multiply-adds; never inlined, so that every case runs the same machine code.
#[inline(never)]
fn grain(seed: u64, rounds: u32) -> u64 {
    let mut x = seed;
    for _ in 0..rounds {
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005)).wrapping_add(1);
    }
    x
}

/// A case's name and its run.
type Case<'a> = (&'static str, Box<dyn Fn() -> u64 + 'a>);

fn time(f: impl FnOnce() -> u64) -> Duration {
    let started = Instant::now();
    black_box(f());
    started.elapsed()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(7, |n| n.parse().expect("ROUNDS: a number"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let two = NonZeroUsize::new(2).expect("2");
    // Rounds of work per value, then values for about 200 ms of sequential work in all.
    let mut per_round = {
        let n = 2_000_000u64;
        time(|| (0..n).map(|v| grain(v, 100)).fold(0, u64::wrapping_add)).as_secs_f64()
            / (n as f64 * 100.0)
    };
    per_round = per_round.max(1e-10);
    println!("| grain (measured per value) | one-core loop | sequential pipeline | par_map(2) | par_map_unordered(2) | rayon par_iter |");
    println!("|---|---|---|---|---|---|");
    for micros in [0.2, 1.0, 5.0, 50.0] {
        let work = ((micros * 1e-6 / per_round) as u32).max(1);
        let values = (0.2 / (micros * 1e-6)) as u64;
        let cases: [Case<'_>; 5] = [
            (
                "loop",
                Box::new(|| {
                    (0..values)
                        .map(|v| grain(v, work))
                        .fold(0, u64::wrapping_add)
                }),
            ),
            (
                "sequential",
                Box::new(|| {
                    runtime
                        .block_on(
                            Pipeline::from_iter(0..values)
                                .map(move |v| grain(v, work))
                                .fold(0u64, u64::wrapping_add),
                        )
                        .expect("sequential")
                }),
            ),
            (
                "par_map",
                Box::new(|| {
                    runtime
                        .block_on(
                            Pipeline::from_iter(0..values)
                                .par_map(two, move |v| grain(v, work))
                                .fold(0u64, u64::wrapping_add),
                        )
                        .expect("par_map")
                }),
            ),
            (
                "par_map_unordered",
                Box::new(|| {
                    runtime
                        .block_on(
                            Pipeline::from_iter(0..values)
                                .par_map_unordered(two, move |v| grain(v, work))
                                .fold(0u64, u64::wrapping_add),
                        )
                        .expect("par_map_unordered")
                }),
            ),
            (
                "rayon",
                Box::new(|| {
                    (0..values)
                        .into_par_iter()
                        .map(|v| grain(v, work))
                        .reduce(|| 0, u64::wrapping_add)
                }),
            ),
        ];
        // Every case computes the same thing.
        let expected = cases[0].1();
        for (name, case) in &cases[1..] {
            assert_eq!(case(), expected, "{name} computed something else");
        }
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
        for round in 0..rounds {
            // Each round in the other order: no case always runs first.
            let mut order: Vec<usize> = (0..cases.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                times[i].push(time(&cases[i].1).as_secs_f64());
            }
        }
        // Ratios against the one-core loop.
        let sequential = &times[0];
        let measured = median(sequential.clone()) / values as f64 * 1e6;
        let mut row = format!(
            "| {micros} µs ({measured:.2} µs) | {:.1} ms |",
            median(sequential.clone()) * 1e3
        );
        for case in &times[1..] {
            let ratios: Vec<f64> = sequential.iter().zip(case).map(|(s, c)| s / c).collect();
            let (lo, hi) = ratios
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
            row.push_str(&format!(
                " {:.1} ms, **{:.2}x** ({lo:.2}-{hi:.2}) |",
                median(case.clone()) * 1e3,
                median(ratios)
            ));
        }
        println!("{row}");
    }
}
