//! `vortex export`: a query's rows to a file or stdout, streamed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, ValueEnum};
use vortex_stream::db::{Database, Value};
use vortex_stream::sinks::{CsvRecords, JsonlSink, XlsxSink};

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The database: `sqlite://path`, `postgres://user:password@host/db` or
    /// `mysql://user:password@host/db`.
    #[arg(long)]
    db: String,
    /// The query; parameters are ?1, ?2 (SQLite), $1, $2 (PostgreSQL) or ? (MariaDB, MySQL).
    #[arg(long)]
    query: String,
    /// A parameter value, bound in order (repeat for each).
    #[arg(long = "param")]
    params: Vec<String>,
    /// The output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    format: ExportFormat,
    /// The output file (`.gz` or `.zst` compresses), or `-` for stdout.
    #[arg(long, default_value = "-")]
    out: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    Csv,
    Jsonl,
    Xlsx,
}

pub(crate) fn run(args: &ExportArgs) -> Result<()> {
    let start = Instant::now();
    let db = Database::open(&args.db)?;
    let params: Vec<Value> = args
        .params
        .iter()
        .map(|p| Value::from(p.as_str()))
        .collect();
    crate::paths::check_outputs(std::path::Path::new("-"), &[("output", args.out.as_path())])?;
    let output = crate::output_of(&args.out);
    let runtime = crate::runtime()?;
    let bar = crate::progress::rows("vortex export");
    let counter = bar.clone();
    let written = runtime.block_on(crate::until_stopped(async {
        let rows = db
            .query(args.query.as_str(), params)
            .inspect(move |_| counter.inc(1))
            .boxed();
        Ok(match args.format {
            ExportFormat::Jsonl => rows.write(JsonlSink, output).await,
            ExportFormat::Xlsx => rows.write(XlsxSink::new(), output).await,
            ExportFormat::Csv => rows.write(CsvRecords::new(), output).await,
        }?)
    }));
    crate::shut_down(runtime);
    let written = written?;
    bar.finish_and_clear();
    eprintln!(
        "vortex export: {} rows, {} bytes in {:.2} s",
        written.rows,
        written.bytes,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
