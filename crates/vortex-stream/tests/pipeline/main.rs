//! Integration tests of the pipeline, its operators, terminals, sources and policies.
//!
//! One test binary with a module per area keeps link time low on small machines.

// Test helpers outside `#[test]` functions may fail loudly: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auto_traits;
mod blocking;
mod cancel;
mod early_stop;
mod laziness;
mod logs;
mod operators;
mod parallel;
mod policy;
mod props;
mod sources;
mod support;
mod terminals;
