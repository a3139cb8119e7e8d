//! `vortex convert`: one file format to another, with a selection, filters, a limit and an
//! error policy, streamed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};
use futures_core::stream::BoxStream;
use regex::Regex;
use serde_json::{Map, Value as Json};
use vortex_stream::io::Input;
use vortex_stream::sinks::{CsvRecords, DeadLetters, JsonlSink, LinesSink};
use vortex_stream::sources::{CsvSource, JsonlSource, LinesSource};
use vortex_stream::{ErrorPolicy, Pipeline};

#[derive(Debug, Args)]
pub(crate) struct ConvertArgs {
    /// The input file, or `-` for stdin (then `--from` is needed).
    input: PathBuf,
    /// The output file, or `-` for stdout (then `--to` is needed).
    output: PathBuf,
    /// The input format, when the extension does not say.
    #[arg(long, value_enum)]
    from: Option<Format>,
    /// The output format, when the extension does not say.
    #[arg(long, value_enum)]
    to: Option<Format>,
    /// Keep only these fields, in this order (comma-separated).
    #[arg(long, value_delimiter = ',')]
    select: Vec<String>,
    /// Keep records matching `field=value`, `field!=value`, `field<n`, `field>n` or
    /// `field~regex` (repeat: all must match).
    #[arg(long = "where")]
    filters: Vec<String>,
    /// Stop after this many records out.
    #[arg(long)]
    limit: Option<u64>,
    /// What to do with a bad record: fail, skip, or dead-letter=PATH (JSON Lines).
    #[arg(long, default_value = "fail")]
    on_error: String,
    /// Fail once more than this many records were bad (with skip or dead-letter).
    #[arg(long)]
    max_errors: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Csv,
    Jsonl,
    Lines,
}

/// A record of any format: named fields with JSON values (text for CSV and lines).
type Record = Map<String, Json>;

/// The format an extension names, looking past `.gz` and `.zst`.
fn format_of(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_str()?;
    let name = name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".zst"))
        .unwrap_or(name);
    match name.rsplit_once('.')?.1 {
        "csv" | "tsv" => Some(Format::Csv),
        "jsonl" | "ndjson" => Some(Format::Jsonl),
        "txt" | "log" => Some(Format::Lines),
        _ => None,
    }
}

fn resolve(path: &Path, told: Option<Format>, flag: &str) -> Result<Format> {
    if let Some(format) = told {
        return Ok(format);
    }
    format_of(path).with_context(|| {
        format!(
            "cannot tell the format of {}: use {flag} csv|jsonl|lines",
            path.display()
        )
    })
}

/// One `--where` predicate.
enum Filter {
    Eq(String, String),
    Ne(String, String),
    Lt(String, f64),
    Gt(String, f64),
    Matches(String, Regex),
}

impl Filter {
    fn parse(text: &str) -> Result<Filter> {
        if let Some((field, value)) = text.split_once("!=") {
            return Ok(Filter::Ne(field.to_owned(), value.to_owned()));
        }
        if let Some((field, pattern)) = text.split_once('~') {
            let regex =
                Regex::new(pattern).with_context(|| format!("bad regex in --where {text:?}"))?;
            return Ok(Filter::Matches(field.to_owned(), regex));
        }
        for (op, make) in [
            ('<', Filter::Lt as fn(String, f64) -> Filter),
            ('>', Filter::Gt),
        ] {
            if let Some((field, number)) = text.split_once(op) {
                let number: f64 = number
                    .trim()
                    .parse()
                    .with_context(|| format!("--where {text:?}: {number:?} is not a number"))?;
                return Ok(make(field.to_owned(), number));
            }
        }
        if let Some((field, value)) = text.split_once('=') {
            return Ok(Filter::Eq(field.to_owned(), value.to_owned()));
        }
        bail!(
            "--where {text:?}: expected field=value, field!=value, field<n, field>n or field~regex"
        )
    }

    fn keeps(&self, record: &Record) -> bool {
        let text = |field: &str| record.get(field).map(json_text);
        let number = |field: &str| text(field).and_then(|t| t.trim().parse::<f64>().ok());
        match self {
            Filter::Eq(f, v) => text(f).as_deref() == Some(v.as_str()),
            Filter::Ne(f, v) => text(f).as_deref() != Some(v.as_str()),
            Filter::Lt(f, n) => number(f).is_some_and(|x| x < *n),
            Filter::Gt(f, n) => number(f).is_some_and(|x| x > *n),
            Filter::Matches(f, re) => text(f).is_some_and(|t| re.is_match(&t)),
        }
    }
}

/// A JSON value as the text a CSV field holds.
fn json_text(value: &Json) -> String {
    match value {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn input_of(path: &Path) -> Input {
    if path.as_os_str() == "-" {
        Input::stdin()
    } else {
        Input::path(path)
    }
}

fn records(
    path: &Path,
    format: Format,
) -> Pipeline<BoxStream<'static, vortex_stream::Result<Record>>> {
    match format {
        Format::Csv => {
            let mut names: Option<Arc<[String]>> = None;
            CsvSource::new(input_of(path))
                .headers(vortex_stream::sources::Headers::None)
                .flexible(true)
                .records()
                .filter_map(move |record| {
                    let Some(names) = names.as_ref() else {
                        names = Some(record.iter().map(str::to_owned).collect());
                        return None;
                    };
                    Some(
                        names
                            .iter()
                            .zip(record.iter())
                            .map(|(n, v)| (n.clone(), Json::String(v.to_owned())))
                            .collect::<Record>(),
                    )
                })
                .boxed()
        }
        Format::Jsonl => JsonlSource::new(input_of(path))
            .deserialize::<Record>()
            .boxed(),
        Format::Lines => LinesSource::new(input_of(path))
            .lines()
            .map(|line| Record::from_iter([("line".to_owned(), Json::String(line))]))
            .boxed(),
    }
}

pub(crate) fn run(args: &ConvertArgs) -> Result<()> {
    let start = Instant::now();
    let from = resolve(&args.input, args.from, "--from")?;
    let to = resolve(&args.output, args.to, "--to")?;
    let filters: Vec<Filter> = args
        .filters
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<Result<_>>()?;
    let runtime = crate::runtime()?;
    let output = crate::output_of(&args.output);
    let bar = crate::progress::rows("vortex convert");
    let (policy, outcome) = runtime.block_on(async {
        let mut policy = match args.on_error.as_str() {
            "fail" => ErrorPolicy::fail_fast(),
            "skip" => ErrorPolicy::skip(),
            other => match other.strip_prefix("dead-letter=") {
                Some(path) => ErrorPolicy::dead_letter(DeadLetters::create(path).await?),
                None => bail!("--on-error {other:?}: expected fail, skip or dead-letter=PATH"),
            },
        };
        if let Some(max) = args.max_errors {
            policy = policy.max_errors(max);
        }
        let select = args.select.clone();
        let counter = bar.clone();
        let kept = records(&args.input, from)
            .inspect(move |_| counter.inc(1))
            .on_error(policy.clone())
            .filter(move |record| filters.iter().all(|f| f.keeps(record)))
            .map(move |record| {
                if select.is_empty() {
                    record
                } else {
                    select
                        .iter()
                        .map(|f| (f.clone(), record.get(f).cloned().unwrap_or(Json::Null)))
                        .collect()
                }
            })
            .take(args.limit.unwrap_or(u64::MAX));
        let written = match to {
            Format::Jsonl => kept.write(JsonlSink, output).await,
            Format::Lines => {
                kept.map(|record| {
                    record
                        .values()
                        .map(json_text)
                        .collect::<Vec<_>>()
                        .join("\t")
                })
                .write(LinesSink, output)
                .await
            }
            Format::Csv => crate::rows::with_header_by(
                kept,
                |record: &Record| record.keys().cloned().collect(),
                |record: &Record| record.values().map(json_text).collect(),
            )
            .write(CsvRecords::new(), output)
            .await
            .map(|mut w| {
                w.rows = w.rows.saturating_sub(1);
                w
            }),
        };
        Ok((policy, written))
    })?;
    bar.finish_and_clear();
    let report = policy.report();
    let summary = format!(
        "vortex convert: {} rows in, {} out, {} errors{} in {:.2} s",
        report.items_in(),
        outcome.as_ref().map_or(0, |w| w.rows),
        report.errors_total(),
        if report.errors_total() > 0 {
            format!(
                " ({})",
                report
                    .errors_by_kind()
                    .map(|(k, n)| format!("{k}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        },
        start.elapsed().as_secs_f64()
    );
    eprintln!("{summary}");
    outcome.map(|_| ()).map_err(Into::into)
}
