//! File formats end to end: sources and sinks for lines, CSV and JSON Lines, compression,
//! atomic outputs, dead letters, and every kind of bad input named in the design.

// Test helpers outside `#[test]` functions may fail loudly: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// Closures that keep state (a count of the values seen, and of those kept) after a decoding
/// source, so that values a fused closure saw out of order or twice would show in what comes
/// out. Written once for both kinds of pipeline, whose `map`s are different methods.
macro_rules! counting_chain {
    ($pipeline:expr, $record:ty) => {{
        let (mut seen, mut kept) = (0u64, 0u64);
        $pipeline
            .map(move |record: $record| {
                seen += 1;
                (seen, record)
            })
            .filter(|(n, record)| n % 3 != 1 || format!("{record:?}").len() % 2 == 0)
            .filter_map(move |(n, record)| {
                kept += 1;
                (kept % 5 != 0).then(|| format!("{n}/{kept}: {record:?}"))
            })
    }};
}

mod broken;
mod compression;
mod csv;
mod dead_letter;
#[cfg(feature = "http")]
mod http;
mod jsonl;
mod lines;
mod sinks;
mod support;
mod threads;
#[cfg(feature = "xlsx")]
mod xlsx;
