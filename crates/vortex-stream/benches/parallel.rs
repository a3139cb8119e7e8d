//! Parallel stages against the sequential pipeline, side by side in one run:
//!
//! - `par_map` with about 50 µs of CPU work per value, on 2 cores;
//! - `par_then` with 64 calls in flight against a 10 ms latency, against one at a time;
//! - ordered against unordered, when every value takes the same time.
//!
//! Run with `cargo bench -p vortex-stream --bench parallel`; ratios in BENCHMARKS.md.

// A benchmark that cannot start its runtime has nothing to measure: panicking says so.
#![allow(clippy::panic)]

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::Duration;

use divan::Bencher;
use vortex_stream::Pipeline;

fn main() {
    divan::main();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
}

/// Twice the cores: the stage runs a job per core (no more than the pool has threads) and
/// keeps a window of twice the limit, so values are queued for each worker when it finishes
/// one.
fn four() -> NonZeroUsize {
    NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN)
}

/// About 50 µs of arithmetic on this machine.
fn work(seed: u64) -> u64 {
    let mut x = seed;
    for _ in 0..ROUNDS {
        // black_box keeps the compiler from shortening the chain.
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005)).wrapping_add(1);
    }
    x
}

const ROUNDS: u32 = 40_000;

const CPU_ITEMS: u64 = 2_000;

#[divan::bench(sample_count = 5)]
fn cpu_sequential(bencher: Bencher<'_, '_>) {
    let rt = runtime();
    bencher.bench(|| {
        rt.block_on(
            Pipeline::from_iter(0..CPU_ITEMS)
                .map(work)
                .fold(0u64, u64::wrapping_add),
        )
    });
}

#[divan::bench(sample_count = 5)]
fn cpu_par_map_ordered(bencher: Bencher<'_, '_>) {
    let rt = runtime();
    bencher.bench(|| {
        rt.block_on(
            Pipeline::from_iter(0..CPU_ITEMS)
                .par_map(four(), work)
                .fold(0u64, u64::wrapping_add),
        )
    });
}

#[divan::bench(sample_count = 5)]
fn cpu_par_map_unordered(bencher: Bencher<'_, '_>) {
    let rt = runtime();
    bencher.bench(|| {
        rt.block_on(
            Pipeline::from_iter(0..CPU_ITEMS)
                .par_map_unordered(four(), work)
                .fold(0u64, u64::wrapping_add),
        )
    });
}

/// A call to a service answering in 10 ms.
async fn call(n: u64) -> Result<u64, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(black_box(n))
}

const CALLS: u64 = 640;

#[divan::bench(sample_count = 3)]
fn io_sequential(bencher: Bencher<'_, '_>) {
    let rt = runtime();
    bencher.bench(|| rt.block_on(Pipeline::from_iter(0..CALLS / 16).try_then(call).count()));
}

#[divan::bench(sample_count = 3)]
fn io_par_then_64(bencher: Bencher<'_, '_>) {
    let rt = runtime();
    let limit = NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN);
    bencher.bench(|| rt.block_on(Pipeline::from_iter(0..CALLS).par_then(limit, call).count()));
}

#[divan::bench]
fn work_once() -> u64 {
    work(black_box(7))
}

/// The machine's ceiling for comparison: rayon's own parallel iterator over the same work.
#[divan::bench(sample_count = 5)]
fn cpu_rayon_par_iter() -> u64 {
    use rayon::prelude::*;
    (0..CPU_ITEMS)
        .into_par_iter()
        .map(work)
        .reduce(|| 0, u64::wrapping_add)
}

/// Fine grain: `par_map(2)` against the sequential pipeline and rayon's `par_iter` at 0.2, 1,
/// 5 and 50 µs of CPU per value (rounds of [`grain`]), about 100 ms of work in all.
const GRAINS: [u32; 4] = [160, 800, 4_000, 40_000];

/// `rounds` multiply-adds, about 1.25 ns each here.
fn grain(seed: u64, rounds: u32) -> u64 {
    let mut x = seed;
    for _ in 0..rounds {
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005)).wrapping_add(1);
    }
    x
}

/// Values at `rounds` a value that make about 100 ms of work.
fn values(rounds: u32) -> u64 {
    80_000_000 / u64::from(rounds)
}

fn two() -> NonZeroUsize {
    NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN)
}

#[divan::bench(args = GRAINS, sample_count = 5)]
fn grain_sequential(bencher: Bencher<'_, '_>, rounds: u32) {
    let rt = runtime();
    bencher.bench(|| {
        rt.block_on(
            Pipeline::from_iter(0..values(rounds))
                .map(move |v| grain(v, rounds))
                .fold(0u64, u64::wrapping_add),
        )
    });
}

#[divan::bench(args = GRAINS, sample_count = 5)]
fn grain_par_map_2(bencher: Bencher<'_, '_>, rounds: u32) {
    let rt = runtime();
    bencher.bench(|| {
        rt.block_on(
            Pipeline::from_iter(0..values(rounds))
                .par_map(two(), move |v| grain(v, rounds))
                .fold(0u64, u64::wrapping_add),
        )
    });
}

#[divan::bench(args = GRAINS, sample_count = 5)]
fn grain_par_map_unordered_2(bencher: Bencher<'_, '_>, rounds: u32) {
    let rt = runtime();
    bencher.bench(|| {
        rt.block_on(
            Pipeline::from_iter(0..values(rounds))
                .par_map_unordered(two(), move |v| grain(v, rounds))
                .fold(0u64, u64::wrapping_add),
        )
    });
}

#[divan::bench(args = GRAINS, sample_count = 5)]
fn grain_rayon_par_iter(rounds: u32) -> u64 {
    use rayon::prelude::*;
    (0..values(rounds))
        .into_par_iter()
        .map(|v| grain(v, rounds))
        .reduce(|| 0, u64::wrapping_add)
}
