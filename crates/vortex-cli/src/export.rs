//! `vortex export`: a query's rows to a file or stdout, streamed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use serde_json::value::RawValue;
use vortex_stream::ack::{Ack, AckLedger, Acked};
use vortex_stream::{AckPipeline, BoxError};

use crate::convert::{message_id, publish_to, Endpoint};
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
    /// The output file (`.gz` or `.zst` compresses), `-` for stdout, or a broker (each row a
    /// JSON message): `nats://HOST:PORT/SUBJECT`,
    /// `amqp://USER:PASS@HOST:PORT/VHOST?routing_key=KEY[&exchange=NAME]`.
    #[arg(long, default_value = "-")]
    out: PathBuf,
    /// Print, when done, the time the run waited on the query and on writing: which one is
    /// the bottleneck.
    #[arg(long)]
    stats: bool,
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
    if let Some(endpoint) = args.out.to_str().map_or(Ok(None), Endpoint::parse)? {
        return to_broker(args, &db, &endpoint, start);
    }
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
    let stats = args.stats.then(vortex_stream::Stats::new);
    let written = runtime.block_on(crate::until_stopped(async {
        let rows = db
            .query(args.query.as_str(), params)
            .inspect(move |_| counter.inc(1))
            .boxed();
        let rows = match &stats {
            Some(stats) => rows.observe(stats, "query").boxed(),
            None => rows,
        };
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
    if let Some(stats) = stats {
        eprintln!("{stats}");
    }
    Ok(())
}

/// Publishes each row as a JSON object, confirmed by the broker, its message id the row's
/// number and a hash of its content.
fn to_broker(args: &ExportArgs, db: &Database, endpoint: &Endpoint, start: Instant) -> Result<()> {
    let params: Vec<Value> = args
        .params
        .iter()
        .map(|p| Value::from(p.as_str()))
        .collect();
    let source = db.name().to_owned();
    let runtime = crate::runtime()?;
    let rows_out = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&rows_out);
    let report = runtime.block_on(crate::until_stopped(async {
        let rows = db.query(args.query.as_str(), params).enumerate().try_map(
            move |(n, row)| -> Result<Acked<Box<RawValue>>, BoxError> {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let json = serde_json::to_string(&row)?;
                let key = message_id(&format_args!("{source}: row {n}"), json.as_bytes());
                Ok(Acked::new(
                    RawValue::from_string(json)?,
                    Ack::none(),
                    Some(key),
                ))
            },
        );
        let values = AckPipeline::from_stream(rows, AckLedger::new());
        publish_to(values, endpoint).await
    }));
    crate::shut_down(runtime);
    report?;
    eprintln!(
        "vortex export: {} rows published to {}, each confirmed, in {:.2} s",
        rows_out.load(std::sync::atomic::Ordering::Relaxed),
        endpoint.name(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
