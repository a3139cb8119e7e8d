#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use vortex_stream::io::{Compression, Input};
use vortex_stream::sources::CsvSource;

#[path = "common.rs"]
mod common;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Order {
    id: u32,
    status: String,
    amount: Option<f64>,
}

fuzz_target!(|data: &[u8]| {
    let flags = data.first().copied().unwrap_or(0);
    let source = || {
        CsvSource::new(Input::bytes(data.to_vec()).compression(Compression::None))
            .flexible(flags & 1 == 1)
            .strict_quotes(flags & 2 == 0)
            .trim(flags & 4 == 4)
            .max_record_len(256)
    };
    common::drain(source().records());
    common::drain(source().deserialize::<Order>());
});
