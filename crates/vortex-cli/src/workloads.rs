//! The rows the benchmark workloads read and write, and how a case reports itself: shared by
//! `vortex bench` (its worker processes) and the workspace's benchmark crate (whose hand-written
//! loops must do the same work and write the same bytes), which includes this file.
//!
//! - W1: orders CSV → `status == "active"` → `id,email,amount*1.2` (2 decimals) → CSV file.
//! - W2: JSON Lines logs → count the error lines and sum their latency (full scan).
//! - W3: the same, stopping after the first 100 errors.

use std::time::Instant;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

/// An order as W1 reads it: only the columns it needs (serde skips the others).
#[derive(Debug, Deserialize)]
pub(crate) struct Order {
    pub(crate) id: u64,
    pub(crate) email: String,
    pub(crate) status: Status,
    pub(crate) amount: f64,
}

impl Order {
    /// Whether W1 keeps the order.
    pub(crate) fn is_active(&self) -> bool {
        self.status == Status::Active
    }
}

/// An order's status, a closed set read as an enum (as a Rust program models one): no string
/// is allocated for it on each row. A status the generator does not write reads as `Other`,
/// so no row fails on it. Every W1 case, the hand loops included, reads the same type.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Active,
    Shipped,
    Cancelled,
    #[serde(other)]
    Other,
}

/// The row W1 writes for an order.
pub(crate) fn export(order: Order) -> Exported {
    Exported::new(
        i64::try_from(order.id).unwrap_or(i64::MAX),
        order.email,
        order.amount,
    )
}

/// A log line as W2 and W3 read it.
#[derive(Debug, Deserialize)]
pub(crate) struct Log {
    pub(crate) level: Level,
    pub(crate) latency_ms: u64,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

// By value, as `fold` hands each log over.
#[allow(clippy::needless_pass_by_value)]
pub(crate) fn add_error((count, latency): (u64, u64), log: Log) -> (u64, u64) {
    (count + 1, latency + log.latency_ms)
}

/// An exported order: `id,email,amount*1.2`, the amount with two decimals. The output of the
/// demo and of benchmark W1.
#[derive(Debug, Serialize)]
pub(crate) struct Exported {
    id: i64,
    email: String,
    amount: Money,
}

impl Exported {
    pub(crate) fn new(id: i64, email: String, amount: f64) -> Exported {
        Exported {
            id,
            email,
            amount: Money(amount * 1.2),
        }
    }
}

/// An amount written with two decimals.
#[derive(Debug)]
pub(crate) struct Money(pub(crate) f64);

impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use std::io::Write as _;
        // Formatted on the stack, not into a new `String` per row; an amount too long for the
        // buffer (past 10^60) is formatted the allocating way.
        if let Some(cents) = whole_cents(self.0) {
            let mut units = itoa::Buffer::new();
            let units = units.format(cents / 100).as_bytes();
            let mut buf = [0u8; 24];
            buf[..units.len()].copy_from_slice(units);
            let fraction = u8::try_from(cents % 100).unwrap_or(0);
            buf[units.len()..units.len() + 3].copy_from_slice(&[
                b'.',
                b'0' + fraction / 10,
                b'0' + fraction % 10,
            ]);
            if let Ok(text) = std::str::from_utf8(&buf[..units.len() + 3]) {
                return serializer.serialize_str(text);
            }
        }
        let mut buf = [0u8; 64];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        if write!(cursor, "{:.2}", self.0).is_ok() {
            let len = usize::try_from(cursor.position()).unwrap_or(0);
            if let Ok(text) = std::str::from_utf8(&buf[..len]) {
                return serializer.serialize_str(text);
            }
        }
        serializer.collect_str(&format_args!("{:.2}", self.0))
    }
}

/// `amount` in whole cents, rounded as `{:.2}` rounds it, when integer arithmetic gets that
/// right: a positive amount below 10^9, not within a thousandth of a cent of a tie. `{:.2}`
/// rounds the exact value of the float; `amount * 100.0` is off it by at most half a unit in
/// its last place, under 2^-16 below 10^11, so away from a tie both round to the same cent.
/// The integer way is about four times faster than the exact decimal expansion.
pub(crate) fn whole_cents(amount: f64) -> Option<u64> {
    if !(0.0..1e9).contains(&amount) || amount.is_sign_negative() {
        return None;
    }
    let scaled = amount * 100.0;
    // In range: below 10^11, and not negative, so truncating is rounding down.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let down = scaled as u64;
    #[allow(clippy::cast_precision_loss)]
    let fraction = scaled - down as f64;
    if (fraction - 0.5).abs() < 1e-3 {
        return None;
    }
    Some(if fraction > 0.5 { down + 1 } else { down })
}

/// When the case started, and when its first row reached the output.
static FIRST: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
static FIRST_ROW: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();

/// Marks the first row reaching the output (once).
pub(crate) fn first_row() {
    if FIRST_ROW.get().is_some() {
        return;
    }
    if let Some(start) = FIRST.get() {
        let _ = FIRST_ROW.set(start.elapsed());
    }
}

/// Prints a case's figures on one line, as the benchmark runners read them: `summary`, then
/// the seconds since [`started`], the peak RSS and when the first row was out.
pub(crate) fn report(summary: &str) -> Result<()> {
    let start = *FIRST.get_or_init(Instant::now);
    let first = FIRST_ROW.get().map_or(0, |d| d.as_micros());
    println!(
        "{summary} seconds={:.3} peak_rss_kib={} first_row_us={first}",
        start.elapsed().as_secs_f64(),
        peak_rss_kib()?
    );
    Ok(())
}

/// Marks the start of the case.
pub(crate) fn started() {
    FIRST.get_or_init(Instant::now);
}

/// Peak resident set size of this process as the kernel counts it (`VmHWM`), in KiB.
pub(crate) fn peak_rss_kib() -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM line in /proc/self/status")
}
