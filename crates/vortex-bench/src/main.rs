//! The cases the benchmark scripts (`scripts/bench-formats`, `scripts/bench-db`) run besides
//! `vortex bench-worker`, each in a process of its own so that its peak memory is its own: the
//! hand-written single-threaded loops over the same parsers and drivers that vortex must keep
//! up with, and the database pipelines the scripts compare with them. Kept out of the shipped
//! `vortex` binary, with the direct driver dependencies they need.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Parser, ValueEnum};
use vortex_stream::io::{Input, Output};
use vortex_stream::sources::CsvSource;

// The rows the workloads read and write, shared with `vortex bench` so that both sides do the
// same work and write the same bytes.
#[allow(dead_code, reason = "shared with `vortex bench`, which uses the rest")]
#[path = "../../vortex-cli/src/workloads.rs"]
mod workloads;

use workloads::{add_error, export, report, started, Level, Log, Order};

/// Records are allocated on a decoding thread and freed on another: the same allocator as the
/// `vortex` binary, so that both sides of a comparison pay the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs one benchmark case in this process and prints its figures on one line.
#[derive(Debug, Parser)]
#[command(name = "vortex-bench")]
struct CaseArgs {
    /// The case to run.
    #[arg(value_enum)]
    case: Case,
    /// The input file (or database URL).
    #[arg(long)]
    input: PathBuf,
    /// The output file (or database URL).
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Case {
    W1Hand,
    W1Natural,
    W1Tuned,
    W4Hand,
    W4Par,
    W4Tuned,
    W2Hand,
    W2Natural,
    W3Hand,
    DbExportStream,
    DbExportHand,
    DbExportCopy,
    DbExportEager,
    DbLoad,
    DbLoadInserts,
}

fn main() -> Result<()> {
    let args = CaseArgs::parse();
    started();
    let summary = match args.case {
        Case::W1Hand => w1_hand(&args)?,
        Case::W1Natural => w1_natural(&args)?,
        Case::W1Tuned => w1_tuned(&args)?,
        Case::W4Hand => w4_hand(&args)?,
        Case::W4Par => w4_par(&args)?,
        Case::W4Tuned => w4_tuned(&args)?,
        Case::W2Hand => w2_hand(&args, None)?,
        Case::W2Natural => w2_natural(&args)?,
        Case::W3Hand => w2_hand(&args, Some(100))?,
        Case::DbExportStream => db_export_stream(&args)?,
        Case::DbExportHand => db_export_hand(&args)?,
        Case::DbExportCopy => db_export_copy(&args)?,
        Case::DbExportEager => db_export_eager(&args)?,
        Case::DbLoad => db_load(&args, vortex_stream::db::LoadMethod::Fastest)?,
        Case::DbLoadInserts => db_load(&args, vortex_stream::db::LoadMethod::Inserts)?,
    };
    report(&summary)
}

/// The runtime a case runs its pipelines on: one thread, with time and I/O.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

fn output(args: &CaseArgs) -> Result<&PathBuf> {
    args.output.as_ref().context("this case needs --output")
}

/// W1 as a user writes it from the README: decode, filter, map, write, each an operator of
/// its own (`vortex bench-worker w1-stream` is the tuned way, `deserialize_filter_map`).
fn w1_natural(args: &CaseArgs) -> Result<String> {
    let out = output(args)?;
    let written = runtime()?.block_on(
        CsvSource::new(Input::path(&args.input))
            .deserialize::<Order>()
            .filter(Order::is_active)
            .map(export)
            .write(vortex_stream::sinks::CsvSink::new(), Output::path(out)),
    )?;
    Ok(format!("rows={}", written.rows))
}

/// W1 the tuned way (`deserialize_filter_map`), as `vortex bench-worker w1-stream` runs it,
/// built into this binary too, so that the natural chain is compared with it in one binary
/// (two binaries inline the same library code differently, by a few percent).
fn w1_tuned(args: &CaseArgs) -> Result<String> {
    let out = output(args)?;
    let written = runtime()?.block_on(
        CsvSource::new(Input::path(&args.input))
            .deserialize_filter_map(|order: Order| order.is_active().then(|| export(order)))
            .write(vortex_stream::sinks::CsvSink::new(), Output::path(out)),
    )?;
    Ok(format!("rows={}", written.rows))
}

fn w1_hand(args: &CaseArgs) -> Result<String> {
    hand_loop(args, export)
}

/// The one-core loop a careful engineer writes: each active order's `row` to the output.
fn hand_loop<R: serde::Serialize>(args: &CaseArgs, row: fn(Order) -> R) -> Result<String> {
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
        if order.is_active() {
            writer.serialize(row(order))?;
            rows += 1;
        }
    }
    writer.flush()?;
    Ok(format!("rows={rows}"))
}

/// W4's row: W1's, and a digest of the email.
#[derive(Debug, serde::Serialize)]
struct Digested {
    id: u64,
    email: String,
    amount: workloads::Money,
    digest: String,
}

/// W4's work per kept order, about 2 µs of CPU on this machine: FNV-1a of the email, 200
/// rounds of splitmix64, the hex digest as a fourth column.
fn digested(order: Order) -> Digested {
    let mut hash = order.email.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    for _ in 0..200 {
        hash = hash.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = hash;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        hash = z ^ (z >> 31);
    }
    Digested {
        id: order.id,
        email: order.email,
        amount: workloads::Money(order.amount * 1.2),
        digest: format!("{hash:016x}"),
    }
}

/// W4 on one core: W1's hand loop doing the digest too.
fn w4_hand(args: &CaseArgs) -> Result<String> {
    hand_loop(args, digested)
}

/// W4 as a user writes it: W1's natural chain with the digest in `par_map(2, ..)`, order
/// kept.
fn w4_par(args: &CaseArgs) -> Result<String> {
    let out = output(args)?;
    let written = runtime()?.block_on(
        CsvSource::new(Input::path(&args.input))
            .deserialize::<Order>()
            .filter(Order::is_active)
            .par_map(2, digested)
            .write(vortex_stream::sinks::CsvSink::new(), Output::path(out)),
    )?;
    Ok(format!("rows={}", written.rows))
}

/// W4 with the filter in `deserialize_filter_map` (an `Fn + Sync` closure, run on every
/// decoding thread at once) instead of a `filter` after `deserialize`, which takes its turn in
/// input order, as any `FnMut` stage does.
fn w4_tuned(args: &CaseArgs) -> Result<String> {
    let out = output(args)?;
    let written = runtime()?.block_on(
        CsvSource::new(Input::path(&args.input))
            .deserialize_filter_map(|order: Order| order.is_active().then_some(order))
            .par_map(2, digested)
            .write(vortex_stream::sinks::CsvSink::new(), Output::path(out)),
    )?;
    Ok(format!("rows={}", written.rows))
}

/// W2 as a user writes it from the README: `deserialize`, `filter`, `fold` (`vortex
/// bench-worker w2-stream` is the tuned way, `deserialize_filter_map`).
fn w2_natural(args: &CaseArgs) -> Result<String> {
    let (count, latency) = runtime()?.block_on(
        vortex_stream::sources::JsonlSource::new(Input::path(&args.input))
            .deserialize::<Log>()
            .filter(|log| log.level == Level::Error)
            .fold((0u64, 0u64), add_error),
    )?;
    Ok(format!("errors={count} latency_ms={latency}"))
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
