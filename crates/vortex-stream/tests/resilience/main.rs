//! Resilience with real parts: a fault-injecting HTTP server on 127.0.0.1 called through
//! reqwest, and the breaker's state machine on tokio's paused clock.

// Test helpers outside `#[test]` functions may fail loudly: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod breaker;
mod http;
mod server;
