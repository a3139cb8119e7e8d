#![no_main]

use std::num::NonZeroUsize;

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use vortex_stream::io::{Compression, Input};
use vortex_stream::sources::CsvSource;

#[path = "common.rs"]
mod common;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Order {
    id: u32,
    status: String,
    amount: Option<f64>,
}

/// Fields, or an error's position and message: what must not depend on how the input is cut.
type Outcome = Vec<Result<Vec<String>, String>>;

fn outcome<I>(items: I) -> Outcome
where
    I: IntoIterator<Item = vortex_stream::Result<Vec<String>>>,
{
    items
        .into_iter()
        .map(|item| {
            item.map_err(|e| {
                let pos = e.position().cloned().unwrap_or_default();
                format!("{:?} {:?} {:?} {:?} {}", e.kind(), pos.record(), pos.line(), pos.byte(), e.message())
            })
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let flags = data.first().copied().unwrap_or(0);
    let options = |source: CsvSource| {
        source
            .flexible(flags & 1 == 1)
            .strict_quotes(flags & 2 == 0)
            .trim(flags & 4 == 4)
            .max_record_len(256)
    };
    let source = || options(CsvSource::new(Input::bytes(data.to_vec()).compression(Compression::None)));
    // The input a few bytes at a time, cut into runs of `chunk` bytes decoded on two threads.
    let in_runs = |chunk: NonZeroUsize| {
        let trickle = common::Trickle { bytes: data.to_vec(), at: 0, step: 1 + usize::from(flags >> 5) };
        options(CsvSource::new(Input::reader(trickle).compression(Compression::None)))
            .chunk_size(chunk)
            .decode_threads(NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN))
    };
    common::drain(source().records());
    common::drain(source().deserialize::<Order>());
    // Parsed in runs of a few bytes on several threads, the records and errors are the ones
    // a single parser reading the whole input gives. (Invalid UTF-8 is reported differently
    // by the two ways, so only valid text is compared.)
    // The input arrives a few bytes at a time, so that it is cut into many runs, plain lines
    // among them (split without the parser).
    if std::str::from_utf8(data).is_ok() {
        let chunk = NonZeroUsize::new(1 + usize::from(flags >> 3)).unwrap_or(NonZeroUsize::MIN);
        let whole = common::collect(source().records());
        let whole = outcome(whole.into_iter().map(|r| r.map(|rec| rec.iter().map(str::to_owned).collect())));
        let runs = common::collect(in_runs(chunk).deserialize::<Vec<String>>());
        assert_eq!(outcome(runs), whole, "runs of {chunk} bytes");
    }
    // Typed records (plain lines decoded where they lie, a struct named by the headers read
    // as a sequence) are the ones the parser reading record by record gives (as it does with a
    // comment byte set that the input never holds). The input arrives a few bytes at a time,
    // so that it is cut into runs after the header row, not decoded whole with it.
    if !data.contains(&b'#') {
        let typed = |source: CsvSource| {
            let items = common::collect(source.deserialize::<Order>());
            outcome(items.into_iter().map(|r| r.map(|order| vec![format!("{order:?}")])))
        };
        let runs = typed(in_runs(NonZeroUsize::new(7).unwrap_or(NonZeroUsize::MIN)));
        assert_eq!(runs, typed(source().comment(Some(b'#'))), "typed records");
    }
});
