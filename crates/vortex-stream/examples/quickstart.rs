//! The README's example, kept compiling and running: `cargo run -p vortex-stream --example quickstart`.

// An example may panic on what cannot happen, to stay short.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::num::NonZeroUsize;

use futures_util::StreamExt as _;
use vortex_stream::{ErrorPolicy, Pipeline};

struct Order {
    id: u64,
    status: String,
}

fn parse_order(line: &str) -> Result<Order, String> {
    let (id, status) = line.split_once(',').ok_or("expected id,status")?;
    let id = id.parse().map_err(|e| format!("bad id {id:?}: {e}"))?;
    Ok(Order {
        id,
        status: status.to_owned(),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> vortex_stream::Result<()> {
    let lines = (0..10_000).map(|i| match i % 1000 {
        999 => "oops".to_owned(),
        _ => format!("{i},{}", if i % 3 == 0 { "active" } else { "shipped" }),
    });
    // A bounded channel: when the writer falls behind, the pipeline waits for it.
    let (sink, batches) = futures_channel::mpsc::channel::<Vec<Order>>(4);

    let policy = ErrorPolicy::skip().max_errors(100); // tolerate up to 100 bad rows
    let pipeline = Pipeline::from_iter(lines) // any Iterator, Stream, Read or AsyncRead
        .try_map(|line| parse_order(&line)) // a failure becomes an error item...
        .on_error(policy.clone()) // ...that the policy counts and drops
        .filter(|order| order.status == "active")
        .chunk(NonZeroUsize::new(500).unwrap()) // bounded batches for bulk writes
        .into_sink(sink); // any futures::Sink, with backpressure
    let writer = batches.for_each(|batch| async move {
        println!("writing {} orders from id {}", batch.len(), batch[0].id); // a bulk insert
    });
    let (written, ()) = tokio::join!(pipeline, writer);
    println!("{} batches, {}", written?, policy.report()); // items in/out, errors by kind
    Ok(())
}
