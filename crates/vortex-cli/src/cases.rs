//! The benchmark cases, each run as its own process by the benchmark scripts so that its peak
//! memory is its own: the vortex pipeline, and the hand-written single-threaded loop over the
//! same parser crates that it must keep up with.
//!
//! - W1: orders CSV → `status == "active"` → `id,email,amount*1.2` (2 decimals) → CSV file.
//! - W2: JSON Lines logs → count the error lines and sum their latency (full scan).
//! - W3: the same, stopping after the first 100 errors.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use vortex_stream::io::{Input, Output};
use vortex_stream::sinks::CsvSink;
use vortex_stream::sources::{CsvSource, JsonlSource};

use crate::gen::Exported;

#[derive(Debug, Args)]
pub(crate) struct CaseArgs {
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
    W1Hand,
    W1Eager,
    W3Eager,
    DbTakeStream,
    DbTakeEager,
    XlsxStream,
    XlsxEager,
    DbExportStream,
    DbExportHand,
    DbExportCopy,
    DbExportEager,
    DbLoad,
    DbLoadInserts,
    W2Stream,
    W2Hand,
    W3Stream,
    W3Hand,
}

/// An order as W1 reads it: only the columns it needs (serde skips the others).
#[derive(Debug, Deserialize)]
struct Order {
    id: u64,
    email: String,
    status: String,
    amount: f64,
}

fn export(order: Order) -> Exported {
    Exported::new(
        i64::try_from(order.id).unwrap_or(i64::MAX),
        order.email,
        order.amount,
    )
}

/// A log line as W2 and W3 read it.
#[derive(Debug, Deserialize)]
struct Log {
    level: Level,
    latency_ms: u64,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

pub(crate) fn run(args: &CaseArgs) -> Result<()> {
    let start = Instant::now();
    FIRST.get_or_init(|| start);
    let summary = match args.case {
        Case::W1Eager => w1_eager(args)?,
        Case::W3Eager => w3_eager(args)?,
        Case::DbTakeStream => db_take(args, false)?,
        Case::DbTakeEager => db_take(args, true)?,
        Case::XlsxStream => xlsx(args, false)?,
        Case::XlsxEager => xlsx(args, true)?,
        Case::DbExportStream => db_export_stream(args)?,
        Case::DbExportHand => db_export_hand(args)?,
        Case::DbExportCopy => db_export_copy(args)?,
        Case::DbExportEager => db_export_eager(args)?,
        Case::DbLoad => db_load(args, vortex_stream::db::LoadMethod::Fastest)?,
        Case::DbLoadInserts => db_load(args, vortex_stream::db::LoadMethod::Inserts)?,
        Case::W1Stream => w1_stream(args)?,
        Case::W1Hand => w1_hand(args)?,
        Case::W2Stream => w2_stream(args, None)?,
        Case::W2Hand => w2_hand(args, None)?,
        Case::W3Stream => w2_stream(args, Some(100))?,
        Case::W3Hand => w2_hand(args, Some(100))?,
    };
    let first = FIRST_ROW.get().map_or(0, |d| d.as_micros());
    println!(
        "{summary} seconds={:.3} peak_rss_kib={} first_row_us={first}",
        start.elapsed().as_secs_f64(),
        crate::demo::peak_rss_kib()?
    );
    Ok(())
}

/// When the case started, and when its first row reached the output.
static FIRST: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
static FIRST_ROW: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();

fn first_row() {
    if FIRST_ROW.get().is_some() {
        return;
    }
    if let Some(start) = FIRST.get() {
        let _ = FIRST_ROW.set(start.elapsed());
    }
}

/// W1 the eager way: every order in a `Vec`, then the active ones, then the file.
fn w1_eager(args: &CaseArgs) -> Result<String> {
    let out = output(args)?;
    let orders: Vec<Order> = csv::Reader::from_path(&args.input)?
        .deserialize()
        .collect::<Result<_, _>>()?;
    let exported: Vec<Exported> = orders
        .into_iter()
        .filter(|o| o.status == "active")
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
fn w3_eager(args: &CaseArgs) -> Result<String> {
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
fn db_take(args: &CaseArgs, eager: bool) -> Result<String> {
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
fn xlsx(args: &CaseArgs, eager: bool) -> Result<String> {
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
    use vortex_stream::sinks::XlsxRow as _;
    let failed = |e: rust_xlsxwriter::XlsxError| {
        vortex_stream::Error::new(vortex_stream::ErrorKind::Io, "xlsx eager")
            .with_message(e.to_string())
    };
    let mut workbook = rust_xlsxwriter::Workbook::new();
    for chunk in rows.chunks(1_048_575) {
        let sheet = workbook.add_worksheet();
        if let Some(header) = chunk.first().and_then(vortex_stream::db::Row::header) {
            header.write_cells(sheet, 0).map_err(failed)?;
        }
        for (row, index) in chunk.iter().zip(1u32..) {
            row.write_cells(sheet, index).map_err(failed)?;
        }
    }
    workbook.save(out).map_err(failed)
}

use crate::runtime;

fn output(args: &CaseArgs) -> Result<&PathBuf> {
    args.output.as_ref().context("W1 needs --output")
}

fn w1_stream(args: &CaseArgs) -> Result<String> {
    let out = output(args)?;
    let written = runtime()?.block_on(
        CsvSource::new(Input::path(&args.input))
            // Kept and turned into output rows on the decoding threads.
            .deserialize_filter_map(|order: Order| {
                (order.status == "active").then(|| export(order))
            })
            .inspect(|_| first_row())
            .write(CsvSink::new(), Output::path(out)),
    )?;
    Ok(format!("rows={}", written.rows))
}

fn w1_hand(args: &CaseArgs) -> Result<String> {
    let out = output(args)?;
    let mut reader = csv::ReaderBuilder::new()
        .buffer_capacity(64 * 1024)
        .from_path(&args.input)?;
    let headers = reader.byte_headers()?.clone();
    let mut writer = csv::WriterBuilder::new()
        .buffer_capacity(64 * 1024)
        .from_writer(BufWriter::with_capacity(64 * 1024, File::create(out)?));
    let mut record = csv::ByteRecord::new();
    let mut rows = 0u64;
    while reader.read_byte_record(&mut record)? {
        let order: Order = record.deserialize(Some(&headers))?;
        if order.status == "active" {
            writer.serialize(export(order))?;
            rows += 1;
        }
    }
    writer.flush()?;
    Ok(format!("rows={rows}"))
}

fn w2_stream(args: &CaseArgs, stop_after: Option<u64>) -> Result<String> {
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

// By value, as `fold` hands each log over.
#[allow(clippy::needless_pass_by_value)]
fn add_error((count, latency): (u64, u64), log: Log) -> (u64, u64) {
    (count + 1, latency + log.latency_ms)
}

fn w2_hand(args: &CaseArgs, stop_after: Option<u64>) -> Result<String> {
    let mut reader = BufReader::with_capacity(64 * 1024, File::open(&args.input)?);
    let mut line = Vec::new();
    let (mut count, mut latency) = (0u64, 0u64);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let log: Log = serde_json::from_slice(&line)?;
        if log.level == Level::Error {
            count += 1;
            latency += log.latency_ms;
            if stop_after == Some(count) {
                break;
            }
        }
    }
    Ok(format!("errors={count} latency_ms={latency}"))
}

/// The database URL of a case: `--input` as given, or a SQLite file path.
fn db_url(input: &std::path::Path) -> String {
    let text = input.display().to_string();
    if text.contains("://") {
        text
    } else {
        format!("sqlite://{text}")
    }
}

const EXPORT_QUERY: &str = "SELECT id, customer, email, status, amount, created_at FROM orders";

/// A whole table to CSV through a vortex pipeline.
fn db_export_stream(args: &CaseArgs) -> Result<String> {
    let out = output(args)?;
    let db = vortex_stream::db::Database::open(&db_url(&args.input))?;
    let written = runtime()?.block_on(
        db.query(EXPORT_QUERY, vec![])
            .write(vortex_stream::sinks::CsvRecords::new(), Output::path(out)),
    )?;
    Ok(format!("rows={}", written.rows))
}

/// The eager way: every row collected into a `Vec` first, then written.
fn db_export_eager(args: &CaseArgs) -> Result<String> {
    let out = output(args)?;
    let db = vortex_stream::db::Database::open(&db_url(&args.input))?;
    let written = runtime()?.block_on(async {
        let all: Vec<vortex_stream::db::Row> = db.query(EXPORT_QUERY, vec![]).collect().await?;
        vortex_stream::Pipeline::from_iter(all)
            .write(vortex_stream::sinks::CsvRecords::new(), Output::path(out))
            .await
    })?;
    Ok(format!("rows={}", written.rows))
}

/// A whole table to CSV by PostgreSQL's own `COPY … TO STDOUT`, written as it arrives.
fn db_export_copy(args: &CaseArgs) -> Result<String> {
    let out = output(args)?;
    let db = vortex_stream::db::Database::open(&db_url(&args.input))?;
    let written = runtime()?.block_on(
        db.copy_out(
            EXPORT_QUERY,
            vortex_stream::db::CopyFormat::Csv { header: true },
        )
        .write(vortex_stream::sinks::BytesSink, Output::path(out)),
    )?;
    Ok(format!("bytes={}", written.bytes))
}

/// The same with the driver directly: one thread, a loop, the csv crate.
fn db_export_hand(args: &CaseArgs) -> Result<String> {
    let out = output(args)?;
    let url = db_url(&args.input);
    let mut writer =
        csv::Writer::from_writer(BufWriter::with_capacity(64 * 1024, File::create(out)?));
    writer.write_record(["id", "customer", "email", "status", "amount", "created_at"])?;
    let mut rows = 0u64;
    if let Some(path) = url.strip_prefix("sqlite://") {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let mut statement = conn.prepare(EXPORT_QUERY)?;
        let mut result = statement.query([])?;
        while let Some(row) = result.next()? {
            let id: i64 = row.get(0)?;
            let amount: f64 = row.get(4)?;
            writer.write_record([
                id.to_string(),
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                amount.to_string(),
                row.get::<_, String>(5)?,
            ])?;
            rows += 1;
        }
    } else if url.starts_with("mysql://") {
        use mysql_async::prelude::Queryable as _;
        rows = runtime()?.block_on(async {
            let mut conn = mysql_async::Conn::from_url(&url).await?;
            let mut result = conn.exec_iter(EXPORT_QUERY, ()).await?;
            let mut rows = 0u64;
            while let Some(row) = result.next().await? {
                let (id, customer, email, status, amount, created_at): (
                    i64,
                    String,
                    String,
                    String,
                    f64,
                    String,
                ) = mysql_async::from_row(row);
                writer.write_record([
                    id.to_string(),
                    customer,
                    email,
                    status,
                    amount.to_string(),
                    created_at,
                ])?;
                rows += 1;
            }
            drop(result);
            conn.disconnect().await?;
            Ok::<_, anyhow::Error>(rows)
        })?;
    } else {
        use futures_util::StreamExt as _;
        rows = runtime()?.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            let mut tasks = tokio::task::JoinSet::new();
            tasks.spawn(async move {
                let _ = connection.await;
            });
            let stream = client
                .query_raw(EXPORT_QUERY, std::iter::empty::<i32>())
                .await?;
            let mut stream = std::pin::pin!(stream);
            let mut rows = 0u64;
            while let Some(row) = stream.next().await {
                let row = row?;
                let id: i64 = row.get(0);
                let amount: f64 = row.get(4);
                writer.write_record([
                    id.to_string(),
                    row.get::<_, String>(1),
                    row.get::<_, String>(2),
                    row.get::<_, String>(3),
                    amount.to_string(),
                    row.get::<_, String>(5),
                ])?;
                rows += 1;
            }
            Ok::<_, anyhow::Error>(rows)
        })?;
    }
    writer.flush()?;
    Ok(format!("rows={rows}"))
}

/// Orders from a CSV file into the `orders` table of `--output` (a database URL), which must
/// exist; it is emptied first.
fn db_load(args: &CaseArgs, method: vortex_stream::db::LoadMethod) -> Result<String> {
    use vortex_stream::db::{Table, Value};
    let url = db_url(output(args)?);
    let db = vortex_stream::db::Database::open(&url)?;
    let loaded = runtime()?.block_on(async {
        db.execute("DELETE FROM orders", vec![]).await?;
        CsvSource::new(Input::path(&args.input))
            .records()
            .map(|r| {
                let id: i64 = r[0].parse().unwrap_or(0);
                let amount: f64 = r[4].parse().unwrap_or(0.0);
                vec![
                    Value::Int(id),
                    Value::from(&r[1]),
                    Value::from(&r[2]),
                    Value::from(&r[3]),
                    Value::Float(amount),
                    Value::from(&r[5]),
                ]
            })
            .load(
                &db,
                Table::new(
                    "orders",
                    ["id", "customer", "email", "status", "amount", "created_at"],
                )
                .batch(std::num::NonZeroUsize::new(10_000).unwrap_or(std::num::NonZeroUsize::MIN))
                .method(method),
            )
            .await
    })?;
    Ok(format!("rows={} batches={}", loaded.rows, loaded.batches))
}
