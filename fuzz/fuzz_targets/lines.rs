#![no_main]

use libfuzzer_sys::fuzz_target;
use vortex_stream::io::{Compression, Input};
use vortex_stream::sources::LinesSource;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let lossy = data.first().is_some_and(|b| b & 1 == 1);
    let input = Input::bytes(data.to_vec()).compression(Compression::None);
    let n = common::drain(LinesSource::new(input).max_line_len(64).lossy(lossy).lines());
    // Never more items than lines.
    assert!(n <= data.iter().filter(|b| **b == b'\n').count() + 1);
});
