//! `vortex bench`: the benchmark suite, eager against streaming, each case its own process.
//!
//! 1. CSV orders → active → `id,email,amount*1.2` → CSV: peak memory, time to first row.
//! 2. Database orders → active → `take(10)`: rows read from the database, peak memory.
//! 3. JSON Lines logs → the first 100 errors (and, streaming only, the full scan).
//! 4. Database orders → Excel: time and peak memory.

pub(crate) mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Rows in each data set.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Runs of each case; the table shows medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// 100,000 rows, one run, and a check that streaming peaks below eager in every case.
    #[arg(long)]
    quick: bool,
    /// Where the generated data goes (kept for later runs).
    #[arg(long, default_value = "data/bench")]
    data_dir: PathBuf,
    /// Also sample the memory of cases 1 and 4 over time and draw it to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Only these cases (numbers, comma-separated: `--cases 1,3` for the scaling rows);
    /// all by default.
    #[arg(long, value_delimiter = ',')]
    cases: Vec<u8>,
}

/// The medians of a case's runs.
#[derive(Debug, Default, Clone)]
struct Figures {
    seconds: f64,
    peak_mib: f64,
    first_row_ms: f64,
    rows_read: Option<u64>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn run_case(exe: &Path, case: &str, input: &Path, output: &Path, runs: usize) -> Result<Figures> {
    let mut seen: Vec<HashMap<String, f64>> = Vec::new();
    for _ in 0..runs {
        let out = Command::new(exe)
            .args(["bench-worker", case, "--input"])
            .arg(input)
            .arg("--output")
            .arg(output)
            .output()
            .with_context(|| format!("running {case}"))?;
        if !out.status.success() {
            bail!(
                "{case} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        seen.push(
            text.split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                .collect(),
        );
    }
    let values = |key: &str| {
        seen.iter()
            .filter_map(|m| m.get(key).copied())
            .collect::<Vec<_>>()
    };
    let rows_read = values("rows_read");
    Ok(Figures {
        seconds: median(values("seconds")),
        peak_mib: median(values("peak_rss_kib")) / 1024.0,
        first_row_ms: median(values("first_row_us")) / 1000.0,
        // Row counts are far below 2^52.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        rows_read: (!rows_read.is_empty()).then(|| median(rows_read) as u64),
    })
}

fn generate(exe: &Path, kind: &str, format: &str, rows: u64, out: &Path) -> Result<()> {
    if out.exists() {
        return Ok(());
    }
    let status = Command::new(exe)
        .args([
            "gen",
            kind,
            "--rows",
            &rows.to_string(),
            "--format",
            format,
            "--out",
        ])
        .arg(out)
        .status()
        .with_context(|| format!("generating {}", out.display()))?;
    if !status.success() {
        bail!("generating {} failed", out.display());
    }
    Ok(())
}

pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    let (rows, runs) = if args.quick {
        (100_000, 1)
    } else {
        (args.rows, args.runs.max(1))
    };
    let exe = std::env::current_exe().context("locating the vortex executable")?;
    let dir = &args.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let csv = dir.join(format!("orders-{rows}.csv"));
    let logs = dir.join(format!("logs-{rows}.jsonl"));
    let db = dir.join(format!("orders-{rows}.db"));
    generate(&exe, "orders", "csv", rows, &csv)?;
    generate(&exe, "logs", "jsonl", rows, &logs)?;
    crate::demo::ensure_database(&db, rows)?;
    let scratch = dir.join("bench-out");

    println!("vortex bench: {rows} rows, median of {runs} run(s), each case its own process\n");
    println!("| case | eager | streaming | published (Go, 1M rows) |");
    println!("|---|---|---|---|");
    let cases: [(&str, &str, &str, &Path, &str, &str); 4] = [
        (
            "1. CSV → filter → CSV",
            "w1-eager",
            "w1-stream",
            &csv,
            "csv",
            "287 MB vs 3 MB",
        ),
        (
            "2. DB → filter → take(10)",
            "db-take-eager",
            "db-take-stream",
            &db,
            "csv",
            "247 MB vs ~397 KB, 10 rows read",
        ),
        (
            "3. JSONL → first 100 errors",
            "w3-eager",
            "w3-stream",
            &logs,
            "csv",
            "194 MB / 909 ms vs 1 MB / 24 ms",
        ),
        (
            "4. DB → Excel",
            "xlsx-eager",
            "xlsx-stream",
            &db,
            "xlsx",
            "440 MB / 12.6 s vs 77 MB / 3.7 s",
        ),
    ];
    let chosen = |n: u8| args.cases.is_empty() || args.cases.contains(&n);
    let mut failures = Vec::new();
    for ((title, eager_case, stream_case, input, ext, published), n) in cases.into_iter().zip(1..) {
        if !chosen(n) {
            continue;
        }
        let output = scratch.with_extension(ext);
        let eager = run_case(&exe, eager_case, input, &output, runs)?;
        let stream = run_case(&exe, stream_case, input, &output, runs)?;
        let show = |f: &Figures| {
            let mut text = format!(
                "{:.1} MiB, {:.3} s, first row {:.1} ms",
                f.peak_mib, f.seconds, f.first_row_ms
            );
            if let Some(read) = f.rows_read {
                text.push_str(&format!(", {read} rows read"));
            }
            text
        };
        println!(
            "| {title} | {} | {} | {published} |",
            show(&eager),
            show(&stream)
        );
        if stream.peak_mib >= eager.peak_mib {
            failures.push(format!(
                "{title}: streaming peaked at {:.1} MiB, eager at {:.1} MiB",
                stream.peak_mib, eager.peak_mib
            ));
        }
    }
    if chosen(3) {
        let full = run_case(&exe, "w2-stream", &logs, &scratch, runs)?;
        println!(
            "| 3b. JSONL full scan, every error | | {:.1} MiB, {:.3} s | |",
            full.peak_mib, full.seconds
        );
    }
    if let Some(plot) = &args.plot {
        let mut series = Vec::new();
        for (label, case, input, ext) in [
            ("1. CSV, eager", "w1-eager", &csv, "csv"),
            ("1. CSV, streaming", "w1-stream", &csv, "csv"),
            ("4. DB → Excel, eager", "xlsx-eager", &db, "xlsx"),
            ("4. DB → Excel, streaming", "xlsx-stream", &db, "xlsx"),
        ] {
            series.push((
                label,
                sample_rss(&exe, case, input, &scratch.with_extension(ext))?,
            ));
        }
        std::fs::write(plot, svg(&series, rows))
            .with_context(|| format!("writing {}", plot.display()))?;
        println!("\nmemory over time: {}", plot.display());
    }
    let _ = std::fs::remove_file(scratch.with_extension("csv"));
    let _ = std::fs::remove_file(scratch.with_extension("xlsx"));
    if !failures.is_empty() {
        bail!(
            "streaming did not stay below eager: {}",
            failures.join("; ")
        );
    }
    Ok(())
}

/// Runs a case and samples its resident memory every 10 ms: (seconds, MiB) points.
fn sample_rss(exe: &Path, case: &str, input: &Path, output: &Path) -> Result<Vec<(f64, f64)>> {
    let mut child = Command::new(exe)
        .args(["bench-worker", case, "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("running {case}"))?;
    let status_file = format!("/proc/{}/status", child.id());
    let start = std::time::Instant::now();
    let mut points = Vec::new();
    while child.try_wait()?.is_none() {
        let rss_kib = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            });
        if let Some(kib) = rss_kib {
            points.push((start.elapsed().as_secs_f64(), kib / 1024.0));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(points)
}

/// Memory over time as an SVG line chart.
fn svg(series: &[(&str, Vec<(f64, f64)>)], rows: u64) -> String {
    let (width, height, left, bottom) = (860.0, 420.0, 70.0, 50.0);
    let max_t = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(t, _)| *t))
        .fold(0.1_f64, f64::max);
    let max_m = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, m)| *m))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let x = |t: f64| left + t / max_t * (width - left - 20.0);
    let y = |m: f64| height - bottom - m / max_m * (height - bottom - 40.0);
    let colours = ["#c0392b", "#27ae60", "#e67e22", "#2980b9"];
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"22\" font-size=\"15\">Resident memory over time, {rows} rows: eager climbs, streaming stays flat</text>\n"
    );
    for i in 0..=4 {
        let m = max_m * f64::from(i) / 4.0;
        out.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y0:.1}\" y2=\"{y0:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{m:.0} MiB</text>\n",
            width - 20.0,
            left - 6.0,
            y(m) + 4.0,
            y0 = y(m)
        ));
    }
    out.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">seconds (0 to {max_t:.1})</text>\n",
        (left + width) / 2.0,
        height - 15.0
    ));
    for (i, (label, points)) in series.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(t, m)| format!("{:.1},{:.1}", x(*t), y(*m)))
            .collect();
        out.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n",
            path.join(" ")
        ));
        let peak = points.iter().map(|(_, m)| *m).fold(0.0, f64::max);
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{label}: peak {peak:.1} MiB</text>\n",
            width - 290.0,
            60.0 + 16.0 * i as f64
        ));
    }
    out.push_str("</svg>\n");
    out
}
