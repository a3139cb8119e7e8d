//! Message brokers as sources and sinks with acknowledgement after commit, on the real NATS
//! JetStream and RabbitMQ servers named by `VORTEX_NATS_URL` and `VORTEX_AMQP_URL` (skipped with a notice when unset, and a
//! failure under `CI=true`); and the acknowledgement rules themselves, through every
//! operator, under random failures.

// Test helpers outside `#[test]` functions may fail loudly: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "nats")]
mod nats;
mod operators;

use std::sync::atomic::{AtomicU32, Ordering};

/// A server's URL from `variable`; `None` (with a notice) when unset outside CI, a failure
/// under `CI=true`.
#[cfg_attr(not(any(feature = "nats", feature = "amqp")), allow(dead_code))]
fn server(variable: &str, what: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{variable} is not set: under CI the {what} tests must run")
        }
        _ => {
            eprintln!("skipped: {variable} is not set (run ./scripts/test to start {what})");
            None
        }
    }
}

/// A name no other test run uses.
#[cfg_attr(not(any(feature = "nats", feature = "amqp")), allow(dead_code))]
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// What a source yields once its broker lost its queue or consumer mid-run: the items up to
/// its end (within `within`), and the errors among them.
#[cfg_attr(not(any(feature = "nats", feature = "amqp")), allow(dead_code))]
async fn rest_and_errors<T>(
    items: impl futures_util::Stream<Item = vortex_stream::Result<T>>,
    within: std::time::Duration,
) -> (usize, Vec<vortex_stream::Error>) {
    let rest = tokio::time::timeout(within, futures_util::StreamExt::collect::<Vec<_>>(items))
        .await
        .expect("the source ends after its queue or consumer is gone");
    let count = rest.len();
    (count, rest.into_iter().filter_map(Result::err).collect())
}
