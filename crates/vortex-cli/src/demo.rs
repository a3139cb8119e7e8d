//! `vortex demo`: the main job, eager and streaming, side by side.
//!
//! On first run it builds a deterministic SQLite database of orders (`id, customer, email,
//! status, amount, created_at`, a third active) in the data folder; later runs reuse it. Then
//! the same export runs twice, each in its own process so that each one's peak memory is its
//! own: the active orders, as `id,email,amount*1.2`, to a CSV file. Eager collects every row
//! first; streaming is a vortex pipeline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use vortex_stream::io::Output;
use vortex_stream::sinks::CsvSink;
use vortex_stream::Pipeline;

use crate::workloads::{peak_rss_kib, Exported};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How many orders the database holds.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// The folder for the database and the two CSV files.
    #[arg(long, default_value = "data/demo")]
    out_dir: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long)]
    db: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Eager,
    Streaming,
}

/// The query both sides run.
const QUERY: &str = "SELECT id, email, status, amount FROM orders ORDER BY id";

/// An order as the export reads it.
#[derive(Debug, Deserialize)]
struct Row {
    id: i64,
    email: String,
    status: String,
    amount: f64,
}

fn is_active(row: &Row) -> bool {
    row.status == "active"
}

fn export(row: Row) -> Exported {
    Exported::new(row.id, row.email, row.amount)
}

/// What a worker measured, printed as one `key=value` line for the parent to read.
#[derive(Debug, Default)]
struct Figures {
    rows: u64,
    peak_rss_kib: u64,
    first_row: Duration,
    total: Duration,
}

use crate::runtime;

/// Builds the demo database once (later runs reuse it).
pub(crate) fn ensure_database(path: &Path, rows: u64) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    eprintln!(
        "vortex demo: generating {rows} orders into {} (once)",
        path.display()
    );
    crate::runtime()?.block_on(crate::gen::orders_database(path, rows, false))?;
    Ok(())
}

pub(crate) fn run(args: &DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let db = args.out_dir.join(format!("orders-{}.db", args.rows));
    ensure_database(&db, args.rows)?;
    let exe = std::env::current_exe().context("locating the vortex executable")?;
    println!(
        "vortex demo: {} orders in SQLite ({}) -> the active ones as CSV,\neager (collect, then process) vs streaming, each in its own process\n",
        args.rows,
        db.display()
    );
    let mut results = Vec::new();
    for mode in [Mode::Eager, Mode::Streaming] {
        let name = if mode == Mode::Eager {
            "eager"
        } else {
            "streaming"
        };
        let out = args.out_dir.join(format!("active-{name}.csv"));
        let output = Command::new(&exe)
            .args(["demo-worker", "--mode", name, "--db"])
            .arg(&db)
            .arg("--out")
            .arg(&out)
            .output()
            .with_context(|| format!("running the {name} worker"))?;
        if !output.status.success() {
            bail!(
                "the {name} worker failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let figures = parse_figures(&String::from_utf8_lossy(&output.stdout))
            .with_context(|| format!("reading the {name} worker's figures"))?;
        results.push((name, out, figures));
    }
    println!(
        "{:<10} {:>10} {:>14} {:>16} {:>12}",
        "mode", "rows", "peak memory", "first row after", "total time"
    );
    for (name, _, f) in &results {
        println!(
            "{:<10} {:>10} {:>10.1} MiB {:>13.1} ms {:>9.0} ms",
            name,
            f.rows,
            kib_to_mib(f.peak_rss_kib),
            f.first_row.as_secs_f64() * 1000.0,
            f.total.as_secs_f64() * 1000.0
        );
    }
    if let [(_, eager_out, eager), (_, stream_out, streaming)] = &results[..] {
        let same = std::fs::read(eager_out)? == std::fs::read(stream_out)?;
        println!(
            "\nBoth wrote {} rows; outputs identical: {}. Streaming used {:.0}x less memory.",
            streaming.rows,
            if same { "yes" } else { "NO" },
            kib_to_mib(eager.peak_rss_kib) / kib_to_mib(streaming.peak_rss_kib.max(1))
        );
        println!(
            "Files: {} and {}",
            eager_out.display(),
            stream_out.display()
        );
        if !same || eager.rows != streaming.rows {
            bail!("the eager and streaming outputs differ");
        }
    }
    Ok(())
}

// KiB counts of a process's memory are far below 2^52.
#[allow(clippy::cast_precision_loss)]
fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn parse_figures(text: &str) -> Result<Figures> {
    let mut figures = Figures::default();
    for pair in text.split_whitespace() {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let value: u64 = value
            .parse()
            .with_context(|| format!("bad figure {pair:?}"))?;
        match key {
            "rows" => figures.rows = value,
            "peak_rss_kib" => figures.peak_rss_kib = value,
            "first_row_us" => figures.first_row = Duration::from_micros(value),
            "total_us" => figures.total = Duration::from_micros(value),
            _ => {}
        }
    }
    Ok(figures)
}

pub(crate) fn worker(args: &WorkerArgs) -> Result<()> {
    let start = Instant::now();
    let db = vortex_stream::db::Database::open(&crate::gen::sqlite_url(&args.db))?;
    let output = Output::path(&args.out);
    let first_row = std::sync::Arc::new(std::sync::OnceLock::new());
    let seen = std::sync::Arc::clone(&first_row);
    let rows = runtime()?.block_on(async {
        match args.mode {
            Mode::Eager => {
                // Collect, then process: every row in memory before the first is written.
                let all: Vec<Row> = db.query_as::<Row>(QUERY, vec![]).collect().await?;
                let exported: Vec<Exported> =
                    all.into_iter().filter(is_active).map(export).collect();
                let _ = seen.set(start.elapsed());
                Pipeline::from_iter(exported)
                    .write(CsvSink::new(), output)
                    .await
            }
            Mode::Streaming => {
                db.query_as::<Row>(QUERY, vec![])
                    .filter(is_active)
                    .map(export)
                    .inspect(move |_| {
                        let _ = seen.set(start.elapsed());
                    })
                    .write(CsvSink::new(), output)
                    .await
            }
        }
    })?;
    let total = start.elapsed();
    println!(
        "rows={} peak_rss_kib={} first_row_us={} total_us={}",
        rows.rows,
        peak_rss_kib()?,
        first_row.get().copied().unwrap_or_default().as_micros(),
        total.as_micros()
    );
    Ok(())
}
