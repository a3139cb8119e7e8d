//! Bounded memory, measured: the peak of live heap bytes while a million items flow through
//! a five-stage pipeline, counted by a global allocator.
//!
//! This file is its own test binary with one test, so no other test allocates meanwhile.

use std::num::NonZeroUsize;

use peak_alloc::PeakAlloc;
use vortex_stream::{ErrorPolicy, Pipeline};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

const ITEMS: u64 = 1_000_000;
const MIB: usize = 1024 * 1024;

/// Runs `f` and returns its result with the peak heap it added above what was live before.
fn peak_heap<R>(f: impl FnOnce() -> R) -> (R, usize) {
    HEAP.reset_peak_usage();
    let before = HEAP.current_usage();
    let result = f();
    (result, HEAP.peak_usage().saturating_sub(before))
}

#[test]
fn a_million_items_through_five_stages_stay_under_one_mib_of_heap() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let chunk = NonZeroUsize::new(256).unwrap();

    let (sum, streaming_peak) = peak_heap(|| {
        runtime.block_on(
            Pipeline::from_iter(0..ITEMS)
                .map(|n| n.to_string())
                .try_map(|s| s.parse::<u64>())
                .on_error(ErrorPolicy::skip())
                .filter(|n| n % 3 == 0)
                .chunk(chunk)
                .map(|batch| batch.iter().sum::<u64>())
                .fold(0u64, |acc, n| acc + n),
        )
    });
    let want: u64 = (0..ITEMS).filter(|n| n % 3 == 0).sum();
    assert_eq!(sum.unwrap(), want);
    assert!(
        streaming_peak < MIB,
        "streaming peak heap was {streaming_peak} bytes, over 1 MiB"
    );

    // The same work collected first: the measurement sees what streaming avoids.
    let (eager_sum, eager_peak) = peak_heap(|| {
        let strings: Vec<String> = (0..ITEMS).map(|n| n.to_string()).collect();
        let numbers: Vec<u64> = strings.iter().filter_map(|s| s.parse().ok()).collect();
        numbers.into_iter().filter(|n| n % 3 == 0).sum::<u64>()
    });
    assert_eq!(eager_sum, want);
    assert!(
        eager_peak > 16 * MIB,
        "the eager peak ({eager_peak} bytes) should dwarf the streaming one"
    );
    println!("peak heap: streaming {streaming_peak} bytes, eager {eager_peak} bytes");
}
