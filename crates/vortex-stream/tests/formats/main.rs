//! File formats end to end: sources and sinks for lines, CSV and JSON Lines, compression,
//! atomic outputs, dead letters, and every kind of bad input named in the design.

// Test helpers outside `#[test]` functions may fail loudly: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod broken;
mod compression;
mod csv;
mod dead_letter;
#[cfg(feature = "http")]
mod http;
mod jsonl;
mod lines;
mod sinks;
mod support;
mod threads;
#[cfg(feature = "xlsx")]
mod xlsx;
