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

/// Most shapes serde asks a deserializer for, so that lines decoded in place are compared with
/// serde_json's own decoding of them.
#[derive(Debug, Deserialize, PartialEq)]
struct Typed {
    #[serde(default)]
    a: Option<i32>,
    #[serde(default)]
    b: Vec<f32>,
    #[serde(default)]
    c: Option<Level>,
    #[serde(default)]
    d: std::collections::BTreeMap<String, (u8, bool)>,
    #[serde(default)]
    e: Option<char>,
    #[serde(default)]
    f: Option<f64>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Level {
    Info,
    Error,
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
    let expected = per_line(data, |line| serde_json::from_slice(line).ok());
    assert_eq!(got, expected);
    // The same, decoded as a typed struct (bit for bit: -0.0 is not 0.0).
    let got: Vec<Option<String>> = common::collect(source().deserialize::<Typed>())
        .into_iter()
        .map(|typed| typed.ok().map(|typed| format!("{typed:?}")))
        .collect();
    let expected = per_line(data, |line| {
        serde_json::from_slice::<Typed>(line).ok().map(|typed| format!("{typed:?}"))
    });
    assert_eq!(got, expected);
});

/// What `decode` makes of each line serde_json would be given on its own: blank lines skipped,
/// lines past the cap failed.
fn per_line<T>(data: &[u8], decode: impl Fn(&[u8]) -> Option<T>) -> Vec<Option<T>> {
    data.split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > 256 {
                return Some(None);
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            Some(decode(line))
        })
        .collect()
}
