//! `vortex gen`: deterministic test data, the same on every run and machine.
//!
//! Orders (`id,customer,email,status,amount,created_at`, a third active) and logs
//! (`ts,level,service,msg,latency_ms,user_id`, about 1% errors), each row computed from its
//! index alone, so any row can be regenerated and two runs give identical files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use vortex_stream::db::{Database, Table, Value};
use vortex_stream::io::{Output, Written};
use vortex_stream::sinks::{CsvSink, JsonlSink};
use vortex_stream::Pipeline;

#[derive(Debug, Args)]
pub(crate) struct GenArgs {
    /// What to generate.
    #[arg(value_enum)]
    kind: Kind,
    /// How many rows.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// The file format (gzip or zstd follow the output's extension; sqlite: orders only).
    #[arg(long, value_enum)]
    format: Format,
    /// The file to write (replaced atomically once complete).
    #[arg(long)]
    out: PathBuf,
    /// Orders whose customers are all `customer-N`: no field needs quoting. By default about
    /// 5% of the customers' names hold a comma, a double quote or a line break (so CSV quotes
    /// them), and many have accents, as real names do.
    #[arg(long)]
    plain: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    Orders,
    Logs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Csv,
    Jsonl,
    /// A SQLite database with an `orders` table (orders only).
    Sqlite,
}

/// `SplitMix64`: a well-mixed value from an index, with no state to carry.
pub(crate) fn mix(index: u64) -> u64 {
    let mut z = index.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const STATUSES: [&str; 3] = ["active", "shipped", "cancelled"];

/// One order.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Order {
    pub(crate) id: u64,
    pub(crate) customer: String,
    pub(crate) email: String,
    pub(crate) status: &'static str,
    /// Two decimals, as text: `123.45`.
    pub(crate) amount: String,
    pub(crate) created_at: String,
}

const FIRST_NAMES: [&str; 16] = [
    "Ana", "José", "Zoë", "Mark", "Søren", "Łukasz", "Chloé", "Omar", "Mei", "Jürgen", "Priya",
    "Tom", "Inès", "Kwame", "Ole", "Sara",
];
const LAST_NAMES: [&str; 16] = [
    "Smith", "Müller", "Núñez", "O'Brien", "García", "Nakamura", "Dubois", "Kowalski", "Andersen",
    "Okafor", "Rossi", "Patel", "Lefèvre", "Novák", "Björk", "Jones",
];

/// A customer's name, the same for every order of the customer: about 3% `Last, First` (a
/// comma), 1.5% with a nickname in double quotes, 0.5% over two lines, the rest `First Last`;
/// about two thirds of the names have accents.
fn customer_name(customer: u64) -> String {
    let z = mix(customer ^ 0x00C0_FFEE);
    let pick =
        |names: &[&'static str; 16], bits: u64| names[usize::try_from(bits % 16).unwrap_or(0)];
    let (first, last) = (pick(&FIRST_NAMES, z), pick(&LAST_NAMES, z >> 4));
    match (z >> 8) % 1000 {
        0..=29 => format!("{last}, {first}"),
        30..=44 => format!("{first} \"{}\" {last}", pick(&FIRST_NAMES, z >> 20)),
        45..=49 => format!("{first} {last}\nc/o {}", pick(&LAST_NAMES, z >> 24)),
        _ => format!("{first} {last}"),
    }
}

impl Order {
    /// The order with this id (from 1); `plain`: its customer is named `customer-N`.
    pub(crate) fn generate(id: u64, plain: bool) -> Order {
        let z = mix(id);
        let customer = z % 50_000;
        let day = (z >> 20) % 365;
        let cents = (z >> 40) % 100_000;
        Order {
            id,
            customer: if plain {
                format!("customer-{customer}")
            } else {
                customer_name(customer)
            },
            email: format!("customer-{customer}@example.com"),
            status: STATUSES[usize::try_from(id % 3).unwrap_or(0)],
            amount: format!("{}.{:02}", cents / 100, cents % 100),
            created_at: format!(
                "2026-{:02}-{:02}T{:02}:{:02}:00Z",
                day / 31 % 12 + 1,
                day % 28 + 1,
                (z >> 8) % 24,
                (z >> 16) % 60
            ),
        }
    }
}

const SERVICES: [&str; 8] = [
    "api", "auth", "billing", "search", "cart", "email", "media", "reports",
];

/// One log line.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Log {
    pub(crate) ts: String,
    pub(crate) level: &'static str,
    pub(crate) service: &'static str,
    pub(crate) msg: &'static str,
    pub(crate) latency_ms: u64,
    pub(crate) user_id: u64,
}

impl Log {
    /// The log line at this index (from 0): about 1% errors, 4% warnings.
    pub(crate) fn generate(index: u64) -> Log {
        let z = mix(index);
        let (level, msg) = match z % 100 {
            0 => ("error", "upstream request failed: connection reset by peer"),
            1..=4 => ("warn", "slow response from dependency"),
            _ => ("info", "request handled"),
        };
        let second = index / 10;
        Log {
            ts: format!(
                "2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                second / 86_400 % 28 + 1,
                second / 3600 % 24,
                second / 60 % 60,
                second % 60,
                (index % 10) * 100
            ),
            level,
            service: SERVICES[usize::try_from((z >> 8) % 8).unwrap_or(0)],
            msg,
            latency_ms: (z >> 16) % 2000,
            user_id: (z >> 32) % 100_000,
        }
    }
}

pub(crate) fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// A SQLite database of `rows` orders at `path` (replaced once complete): generated orders
/// loaded in batches into a temporary file renamed into place.
pub(crate) async fn orders_database(path: &Path, rows: u64, plain: bool) -> Result<Written> {
    let partial = path.with_extension("db.part");
    let _ = std::fs::remove_file(&partial);
    // A fresh file built in bulk, without a journal: no WAL for it.
    let db = Database::open(&sqlite_url(&partial))?.sqlite_wal(false);
    let loaded = async {
        db.execute(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
             CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, email TEXT NOT NULL,
                                  status TEXT NOT NULL, amount REAL NOT NULL, created_at TEXT NOT NULL);",
            vec![],
        )
        .await?;
        let table = Table::new("orders", ["id", "customer", "email", "status", "amount", "created_at"])
            .batch(std::num::NonZeroUsize::new(50_000).unwrap_or(std::num::NonZeroUsize::MIN));
        Pipeline::from_iter((1..=rows).map(|id| Order::generate(id, plain)))
            .map(|o| {
                let amount: f64 = o.amount.parse().unwrap_or(0.0);
                let id = i64::try_from(o.id).unwrap_or(i64::MAX);
                vec![
                    Value::Int(id),
                    Value::Text(o.customer),
                    Value::Text(o.email),
                    Value::from(o.status),
                    Value::Float(amount),
                    Value::Text(o.created_at),
                ]
            })
            .load(&db, table)
            .await
    }
    .await?;
    std::fs::rename(&partial, path)
        .with_context(|| format!("moving {} into place", path.display()))?;
    Ok(Written {
        rows: loaded.rows,
        bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
    })
}

pub(crate) fn run(args: &GenArgs) -> Result<()> {
    let output = Output::path(&args.out);
    let runtime = crate::runtime()?;
    let (rows, plain) = (args.rows, args.plain);
    let written: Result<Written> = runtime.block_on(async {
        Ok(match (args.kind, args.format) {
            (Kind::Orders, Format::Csv) => {
                Pipeline::from_iter((1..=rows).map(|id| Order::generate(id, plain)))
                    .write(CsvSink::new(), output)
                    .await?
            }
            (Kind::Orders, Format::Jsonl) => {
                Pipeline::from_iter((1..=rows).map(|id| Order::generate(id, plain)))
                    .write(JsonlSink, output)
                    .await?
            }
            (Kind::Orders, Format::Sqlite) => orders_database(&args.out, rows, plain).await?,
            (Kind::Logs, Format::Csv) => {
                Pipeline::from_iter((0..rows).map(Log::generate))
                    .write(CsvSink::new(), output)
                    .await?
            }
            (Kind::Logs, Format::Jsonl) => {
                Pipeline::from_iter((0..rows).map(Log::generate))
                    .write(JsonlSink, output)
                    .await?
            }
            (Kind::Logs, Format::Sqlite) => {
                bail!("--format sqlite holds orders only: write logs as csv or jsonl")
            }
        })
    });
    let written = written.with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("vortex gen: {} to {}", written, args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::mix;
    use crate::workloads::{whole_cents, Money};

    /// Whole cents format every amount as `{:.2}` does: random amounts of every size, amounts
    /// on and next to ties (x.xx5), and the edges.
    #[test]
    fn whole_cents_round_as_the_exact_formatting_does() {
        let mut amounts = vec![
            0.0,
            -0.0,
            0.005,
            0.015,
            0.125,
            1e9,
            999_999_999.995,
            f64::NAN,
        ];
        for i in 0..200_000u64 {
            let z = mix(i);
            let cents = (z % 100_000_000) as f64;
            let tie = (cents + 0.5) / 100.0;
            amounts.extend([
                tie,
                f64::from_bits(tie.to_bits() + 1),
                f64::from_bits(tie.to_bits() - 1),
                cents / 100.0 * 1.2,
                f64::from_bits(z >> 2),
                (z % 1_000_000_000_000) as f64 / 1000.0,
            ]);
        }
        let mut fast = 0;
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        for &amount in &amounts {
            if whole_cents(amount).is_some() {
                fast += 1;
            }
            writer.serialize([Money(amount)]).unwrap();
        }
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        for (line, amount) in text.lines().zip(&amounts) {
            assert_eq!(line, format!("{amount:.2}"), "{amount:e}");
        }
        assert_eq!(text.lines().count(), amounts.len());
        // Most amounts take the integer way.
        assert!(fast > 500_000, "{fast}");
    }
}
