#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use vortex_stream::io::{Compression, Input};
use vortex_stream::sources::JsonlSource;

#[path = "common.rs"]
mod common;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Log {
    level: String,
    latency_ms: u64,
}

fuzz_target!(|data: &[u8]| {
    let source = || {
        JsonlSource::new(Input::bytes(data.to_vec()).compression(Compression::None)).max_line_len(256)
    };
    common::drain(source().values());
    common::drain(source().deserialize::<Log>());
});
