//! `vortex demo`: one export, eager and streaming, side by side.
//!
//! The job: take orders (`id,customer,email,status,amount,created_at`, a third of them
//! active), keep the active ones, and write `id,email,amount*1.2` as CSV. The orders are
//! generated deterministically from their id, so both sides see the same data without a
//! file to read.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};
use vortex_stream::{Error, Pipeline};

use crate::gen::Order;

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How many orders to export.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// The folder the two CSV files are written to.
    #[arg(long, default_value = "data/demo")]
    out_dir: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long)]
    rows: u64,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Eager,
    Streaming,
}

/// The exported line: `id,email,amount*1.2` with two decimals.
fn export_line(order: &Order, out: &mut impl Write) -> std::io::Result<()> {
    let amount: f64 = order.amount.parse().unwrap_or(0.0);
    writeln!(out, "{},{},{:.2}", order.id, order.email, amount * 1.2)
}

fn is_active(order: &Order) -> bool {
    order.status == "active"
}

/// What a worker measured, printed as one `key=value` line for the parent to read.
#[derive(Debug, Default)]
struct Figures {
    rows: u64,
    peak_rss_kib: u64,
    first_row: Duration,
    total: Duration,
}

pub(crate) fn run(args: &DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let exe = std::env::current_exe().context("locating the vortex executable")?;
    println!(
        "vortex demo: {} orders -> active ones as CSV, eager vs streaming, each in its own process\n",
        args.rows
    );
    let mut results = Vec::new();
    for mode in [Mode::Eager, Mode::Streaming] {
        let name = if mode == Mode::Eager {
            "eager"
        } else {
            "streaming"
        };
        let out = args.out_dir.join(format!("orders-{name}.csv"));
        let output = Command::new(&exe)
            .args(["demo-worker", "--mode", name, "--rows"])
            .arg(args.rows.to_string())
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
            eager.peak_rss_kib as f64 / streaming.peak_rss_kib.max(1) as f64
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
    let partial = part_path(&args.out);
    let file = File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    let (rows, first_row) = match args.mode {
        Mode::Eager => eager(args.rows, &mut out, start)?,
        Mode::Streaming => streaming(args.rows, &mut out, start)?,
    };
    out.into_inner()
        .map_err(std::io::IntoInnerError::into_error)?
        .sync_all()?;
    // Only a finished file takes the final name.
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("moving {} into place", args.out.display()))?;
    let total = start.elapsed();
    println!(
        "rows={rows} peak_rss_kib={} first_row_us={} total_us={}",
        peak_rss_kib()?,
        first_row.as_micros(),
        total.as_micros()
    );
    Ok(())
}

fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

/// Collect, then process: every order in a `Vec`, then every line in another.
fn eager(rows: u64, out: &mut impl Write, start: Instant) -> Result<(u64, Duration)> {
    let orders: Vec<Order> = (1..=rows).map(Order::generate).collect();
    let active: Vec<Order> = orders.into_iter().filter(is_active).collect();
    let mut lines = Vec::with_capacity(active.len());
    for order in &active {
        let mut line = Vec::with_capacity(64);
        export_line(order, &mut line)?;
        lines.push(line);
    }
    let mut first_row = None;
    for line in &lines {
        out.write_all(line)?;
        first_row.get_or_insert_with(|| start.elapsed());
    }
    Ok((lines.len() as u64, first_row.unwrap_or_default()))
}

/// Stream, don't store: one order at a time from generator to file.
fn streaming(rows: u64, out: &mut impl Write, start: Instant) -> Result<(u64, Duration)> {
    let mut first_row = None;
    let mut written = 0u64;
    Pipeline::from_iter((1..=rows).map(Order::generate))
        .filter(is_active)
        .run_blocking(|orders| {
            orders.try_for_each(|order| {
                export_line(&order, out).map_err(|e| Error::io("demo: write csv", e))?;
                first_row.get_or_insert_with(|| start.elapsed());
                written += 1;
                Ok::<_, Error>(())
            })
        })?;
    Ok((written, first_row.unwrap_or_default()))
}

/// Peak resident set size of this process as the kernel counts it (`VmHWM`), in KiB.
fn peak_rss_kib() -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM line in /proc/self/status")
}
