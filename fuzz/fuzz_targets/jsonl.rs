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
    // In batches of a few lines, read a few bytes at a time (buffers reused, each batch
    // checked as UTF-8 once), every line decodes as serde_json decodes it on its own.
    let flags = data.first().copied().unwrap_or(0);
    let trickle = common::Trickle { bytes: data.to_vec(), at: 0, step: 1 + usize::from(flags & 7) };
    let batch = std::num::NonZeroUsize::new(1 + usize::from(flags >> 5)).unwrap_or(std::num::NonZeroUsize::MIN);
    let got: Vec<Option<serde_json::Value>> = common::collect(
        JsonlSource::new(Input::reader(trickle).compression(Compression::None))
            .max_line_len(256)
            .batch(batch)
            .values(),
    )
    .into_iter()
    .map(Result::ok)
    .collect();
    let expected: Vec<Option<serde_json::Value>> = data
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > 256 {
                return Some(None);
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            Some(serde_json::from_slice(line).ok())
        })
        .collect();
    assert_eq!(got, expected);
});
