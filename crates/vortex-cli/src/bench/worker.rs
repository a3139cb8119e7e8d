//! One side of one case of `vortex bench`, run in a process of its own (`vortex bench-worker`,
//! hidden, like `demo-worker`) so that its peak memory is its own: the eager way (collect,
//! then process) or the streaming way (a vortex pipeline). The workloads are described in
//! `workloads.rs`; the hand-written baselines the benchmark scripts also run live in the
//! workspace's benchmark crate, outside the shipped binary.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use vortex_stream::io::{Input, Output};
use vortex_stream::sinks::CsvSink;
use vortex_stream::sources::{CsvSource, JsonlSource};

use crate::workloads::{
    add_error, export, first_row, report, started, Exported, Level, Log, Order,
};

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// The case to run.
    #[arg(value_enum)]
    case: Case,
    /// The input file.
    #[arg(long)]
    input: PathBuf,
    /// The output file (W1).
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Case {
    W1Stream,
    W1Eager,
    W2Stream,
    W3Stream,
    W3Eager,
    DbTakeStream,
    DbTakeEager,
    XlsxStream,
    XlsxEager,
}

pub(crate) fn run(args: &WorkerArgs) -> Result<()> {
    started();
    let summary = match args.case {
        Case::W1Eager => w1_eager(args)?,
        Case::W3Eager => w3_eager(args)?,
        Case::DbTakeStream => db_take(args, false)?,
        Case::DbTakeEager => db_take(args, true)?,
        Case::XlsxStream => xlsx(args, false)?,
        Case::XlsxEager => xlsx(args, true)?,
        Case::W1Stream => w1_stream(args)?,
        Case::W2Stream => w2_stream(args, None)?,
        Case::W3Stream => w2_stream(args, Some(100))?,
    };
    report(&summary)
}

/// W1 the eager way: every order in a `Vec`, then the active ones, then the file.
fn w1_eager(args: &WorkerArgs) -> Result<String> {
    let out = output(args)?;
    let orders: Vec<Order> = csv::Reader::from_path(&args.input)?
        .deserialize()
        .collect::<Result<_, _>>()?;
    let exported: Vec<Exported> = orders
        .into_iter()
        .filter(Order::is_active)
        .map(export)
        .collect();
    let mut writer = csv::Writer::from_path(out)?;
    first_row();
    for row in &exported {
        writer.serialize(row)?;
    }
    writer.flush()?;
    Ok(format!("rows={}", exported.len()))
}

/// W3 the eager way: every log line decoded into a `Vec`, then the first 100 errors.
fn w3_eager(args: &WorkerArgs) -> Result<String> {
    let text = std::fs::read(&args.input)?;
    let logs: Vec<Log> = text
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(serde_json::from_slice)
        .collect::<Result<_, _>>()?;
    let errors: Vec<&Log> = logs
        .iter()
        .filter(|l| l.level == Level::Error)
        .take(100)
        .collect();
    let latency: u64 = errors.iter().map(|l| l.latency_ms).sum();
    Ok(format!("errors={} latency_ms={latency}", errors.len()))
}

/// A database order, as the database cases read it.
#[derive(Debug, Deserialize)]
struct DbOrder {
    id: i64,
    email: String,
    status: String,
    amount: f64,
}

const DB_QUERY: &str = "SELECT id, email, status, amount FROM orders ORDER BY id";

/// The first 10 active orders: streaming reads only what it needs, eager reads everything.
fn db_take(args: &WorkerArgs, eager: bool) -> Result<String> {
    let db = vortex_stream::db::Database::open(&format!("sqlite://{}", args.input.display()))?;
    let rows = db.query_as::<DbOrder>(DB_QUERY, vec![]);
    let first: Vec<DbOrder> = runtime()?.block_on(async {
        if eager {
            let all: Vec<DbOrder> = rows.collect().await?;
            Ok::<_, vortex_stream::Error>(
                all.into_iter()
                    .filter(|o| o.status == "active")
                    .take(10)
                    .collect(),
            )
        } else {
            rows.filter(|o| o.status == "active")
                .take(10)
                .collect()
                .await
        }
    })?;
    first_row();
    let ids: i64 = first.iter().map(|o| o.id).sum();
    let amount: f64 = first.iter().map(|o| o.amount).sum();
    let emails: usize = first.iter().map(|o| o.email.len()).sum();
    Ok(format!(
        "rows={} rows_read={} ids={ids} amount={amount:.2} email_bytes={emails}",
        first.len(),
        db.rows_fetched()
    ))
}

/// Every order from the database to an Excel file.
fn xlsx(args: &WorkerArgs, eager: bool) -> Result<String> {
    use vortex_stream::sinks::XlsxSink;
    let out = output(args)?;
    let db = vortex_stream::db::Database::open(&format!("sqlite://{}", args.input.display()))?;
    let rows = db.query("SELECT * FROM orders ORDER BY id", vec![]);
    let written = runtime()?.block_on(async {
        if eager {
            // What a program that collects first does: every row in memory, then the
            // library's standard in-memory workbook (the Go library's eager case does the
            // same with its own standard workbook).
            let all: Vec<vortex_stream::db::Row> = rows.collect().await?;
            first_row();
            eager_workbook(&all, out)?;
            Ok(vortex_stream::io::Written {
                rows: all.len() as u64,
                bytes: std::fs::metadata(out).map_or(0, |m| m.len()),
            })
        } else {
            rows.inspect(|_| first_row())
                .write(XlsxSink::new(), Output::path(out))
                .await
        }
    })?;
    Ok(format!("rows={}", written.rows))
}

/// `rows` into a standard (in-memory) workbook, a sheet per 1,048,575 rows under a header.
fn eager_workbook(
    rows: &[vortex_stream::db::Row],
    out: &std::path::Path,
) -> vortex_stream::Result<()> {
    use vortex_stream::db::Value;
    let failed = |e: rust_xlsxwriter::XlsxError| {
        vortex_stream::Error::new(vortex_stream::ErrorKind::Io, "xlsx eager")
            .with_message(e.to_string())
    };
    let mut workbook = rust_xlsxwriter::Workbook::new();
    for chunk in rows.chunks(1_048_575) {
        let sheet = workbook.add_worksheet();
        if let Some(first) = chunk.first() {
            for (col, name) in (0u16..).zip(first.columns()) {
                sheet.write_string(0, col, name).map_err(failed)?;
            }
        }
        for (row, index) in chunk.iter().zip(1u32..) {
            for (col, value) in (0u16..).zip(row.values()) {
                #[allow(clippy::cast_precision_loss)]
                let written = match value {
                    Value::Null => continue,
                    Value::Bool(b) => sheet.write_boolean(index, col, *b),
                    Value::Int(i) => sheet.write_number(index, col, *i as f64),
                    Value::Float(f) => sheet.write_number(index, col, *f),
                    Value::Text(s) => sheet.write_string(index, col, s),
                    Value::Bytes(b) => sheet.write_string(index, col, String::from_utf8_lossy(b)),
                };
                written.map_err(failed)?;
            }
        }
    }
    workbook.save(out).map_err(failed)
}

use crate::runtime;

fn output(args: &WorkerArgs) -> Result<&PathBuf> {
    args.output.as_ref().context("W1 needs --output")
}

fn w1_stream(args: &WorkerArgs) -> Result<String> {
    let out = output(args)?;
    let written = runtime()?.block_on(
        CsvSource::new(Input::path(&args.input))
            // Kept and turned into output rows on the decoding threads.
            .deserialize_filter_map(|order: Order| order.is_active().then(|| export(order)))
            .inspect(|_| first_row())
            .write(CsvSink::new(), Output::path(out)),
    )?;
    Ok(format!("rows={}", written.rows))
}

fn w2_stream(args: &WorkerArgs, stop_after: Option<u64>) -> Result<String> {
    let errors = JsonlSource::new(Input::path(&args.input))
        // Kept on the decoding threads: the other 99% never reach the pipeline.
        .deserialize_filter_map(|log: Log| (log.level == Level::Error).then_some(log));
    let (count, latency) = runtime()?.block_on(async {
        match stop_after {
            Some(n) => {
                errors
                    .take(usize::try_from(n).unwrap_or(usize::MAX))
                    .fold((0u64, 0u64), add_error)
                    .await
            }
            None => errors.fold((0u64, 0u64), add_error).await,
        }
    })?;
    Ok(format!("errors={count} latency_ms={latency}"))
}
