//! The cost of the pipeline abstraction: a five-stage pipeline over 10 million integers
//! against the hand-written loop doing the same work, side by side in one run.
//!
//! Run with `cargo bench -p vortex-stream --bench pipeline`; the ratio of the two medians is
//! recorded in BENCHMARKS.md.

// A benchmark that cannot start its runtime has nothing to measure: panicking says so.
#![allow(clippy::panic)]

use std::hint::black_box;

use divan::Bencher;
use vortex_stream::{Error, Pipeline};

const ITEMS: u64 = 10_000_000;

fn main() {
    divan::main();
}

/// The loop a careful engineer would write by hand.
#[divan::bench(sample_count = 10)]
fn hand_loop(bencher: Bencher<'_, '_>) {
    bencher.bench(|| {
        let mut seen = 0u64;
        let mut sum = 0u64;
        for n in 0..black_box(ITEMS) {
            let n = n.wrapping_mul(3);
            if n % 2 != 0 {
                continue;
            }
            let Some(n) = n.checked_add(1) else {
                return Err(Error::from_user("try_map", "overflow"));
            };
            seen += 1;
            sum = sum.wrapping_add(n ^ 0x55);
        }
        Ok(black_box((seen, sum)))
    });
}

/// The same work as `map`, `filter`, `try_map`, `inspect` and `map` stages, then a fold.
#[divan::bench(sample_count = 10)]
fn pipeline_5_stages(bencher: Bencher<'_, '_>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"));
    bencher.bench(|| {
        let mut seen = 0u64;
        let sum = runtime.block_on(
            Pipeline::from_iter(0..black_box(ITEMS))
                .map(|n| n.wrapping_mul(3))
                .filter(|n| n % 2 == 0)
                .try_map(|n| n.checked_add(1).ok_or("overflow"))
                .inspect(|_| seen += 1)
                .map(|n| n ^ 0x55)
                .fold(0u64, u64::wrapping_add),
        );
        sum.map(|sum| black_box((seen, sum)))
    });
}
