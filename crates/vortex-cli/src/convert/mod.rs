//! `vortex convert`: one file format to another (or a message broker at either end), with a
//! selection, filters, a limit and an error policy, streamed.
//!
//! Every record read ends in exactly one of three ways, and the summary line counts each:
//! written, filtered out by `--where`, or rejected (with its position, under the error
//! policy). Values keep their exact text from input to output.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};
use futures_core::stream::BoxStream;
use serde_json::value::RawValue;
use vortex_stream::io::{Input, Output, Written};
use vortex_stream::sinks::{CsvRecords, DeadLetters, JsonlSink, LinesSink};
use vortex_stream::sources::{CsvSource, Headers, JsonlSource, LinesSource};
use vortex_stream::{Error, ErrorKind, ErrorPolicy, Located, Pipeline, Position};

mod broker;
mod filter;

pub(crate) use broker::{message_id, publish_to, row, Endpoint};

use crate::record::{csv_line, Field, Record};
pub(crate) use filter::Filter;

#[derive(Debug, Args)]
pub(crate) struct ConvertArgs {
    /// The input file, `-` for stdin (then `--from` is needed), or a broker:
    /// `nats://HOST:PORT/STREAM/CONSUMER`, `amqp://USER:PASS@HOST:PORT/VHOST?queue=NAME`.
    input: PathBuf,
    /// The output file, `-` for stdout (then `--to` is needed), a directory of part files
    /// (for a broker input), or a broker: `nats://HOST:PORT/SUBJECT`,
    /// `amqp://USER:PASS@HOST:PORT/VHOST?routing_key=KEY[&exchange=NAME]`.
    output: PathBuf,
    /// The input format, when the extension does not say.
    #[arg(long, value_enum)]
    from: Option<Format>,
    /// The output format, when the extension does not say.
    #[arg(long, value_enum)]
    to: Option<Format>,
    /// Keep only these fields, in this order (comma-separated); each must be a column of a CSV
    /// input.
    #[arg(long, value_delimiter = ',')]
    select: Vec<String>,
    /// Keep records matching `field=value`, `field!=value`, `field<n`, `field>n` or
    /// `field~regex` (repeat: all must match); the field must be a column of a CSV input.
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
    /// Accept CSV rows with more or fewer fields than the header: missing fields are left
    /// out, extra ones kept under the names `_4`, `_5`, ... (their column numbers).
    #[arg(long)]
    flexible: bool,
    /// Print, when done, each stage's items and the time the run waited on it (reading and
    /// decoding, checks and filters, writing): which stage is the bottleneck.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    broker: broker::BrokerArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    Csv,
    Jsonl,
    Lines,
}

/// A record and where it is in the input.
type Item = Located<Record>;

/// The format an extension names, looking past `.gz` and `.zst`.
pub(crate) fn format_of(path: &Path) -> Option<Format> {
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

fn input_of(path: &Path) -> Input {
    if path.as_os_str() == "-" {
        Input::stdin()
    } else {
        Input::path(path)
    }
}

/// Where a piece of a file starts, so that positions count from the start of the whole file:
/// the records, lines and bytes before the piece, and (for CSV) the header row's names when
/// the piece does not start with the header row.
#[derive(Clone, Debug, Default)]
pub(crate) struct Offset {
    pub(crate) records: u64,
    pub(crate) lines: u64,
    pub(crate) bytes: u64,
    pub(crate) header: Option<Arc<[Arc<str>]>>,
}

impl Offset {
    /// `position` moved from the piece's start to the file's.
    fn shift(&self, position: &Position) -> Position {
        let mut moved = position.clone();
        if let Some(record) = position.record() {
            moved = moved.with_record(record + self.records);
        }
        if let Some(line) = position.line() {
            moved = moved.with_line(line + self.lines);
        }
        if let Some(byte) = position.byte() {
            moved = moved.with_byte(byte + self.bytes);
        }
        moved
    }
}

/// The records of the input, each with its position.
fn records(
    path: &Path,
    format: Format,
    flexible: bool,
    offset: &Offset,
) -> Pipeline<BoxStream<'static, vortex_stream::Result<Item>>> {
    records_of(input_of(path), format, flexible, offset)
}

/// The records of `input`, a whole file or the piece of one that `offset` places.
pub(crate) fn records_of(
    input: Input,
    format: Format,
    flexible: bool,
    offset: &Offset,
) -> Pipeline<BoxStream<'static, vortex_stream::Result<Item>>> {
    let source: Arc<str> = Arc::from(input.source_name());
    let items = match format {
        Format::Csv => {
            let mut header = offset.header.clone();
            let header_row = header.is_none();
            let rows = CsvSource::new(input)
                .headers(Headers::None)
                .flexible(true)
                .records();
            let items = futures_util::StreamExt::filter_map(rows, move |row| {
                let item = csv_row(&mut header, header_row, &source, flexible, row);
                std::future::ready(item)
            });
            Pipeline::from_stream(items).boxed()
        }
        Format::Jsonl => JsonlSource::new(input)
            .deserialize_located::<Box<RawValue>>()
            .try_map(|line| {
                let position = line.position().clone();
                let raw = line.into_value();
                match Record::from_json(raw) {
                    Ok(record) => Ok(Located::new(record, position)),
                    Err(message) => Err(Error::new(ErrorKind::Decode, "jsonl source: decode")
                        .with_position(position)
                        .with_message(message)),
                }
            })
            .boxed(),
        Format::Lines => LinesSource::new(input)
            .lines()
            .enumerate()
            .map(move |(i, line)| {
                let position = Position::new()
                    .with_source(Arc::clone(&source))
                    .with_record(i)
                    .with_line(i + 1);
                let field = (Arc::from("line"), Field::Text(line));
                Located::new(Record::Fields(vec![field]), position)
            })
            .boxed(),
    };
    if offset.records == 0 && offset.lines == 0 && offset.bytes == 0 {
        return items;
    }
    let offset = offset.clone();
    let shifted = futures_util::StreamExt::map(items, move |item| match item {
        Ok(item) => {
            let position = offset.shift(item.position());
            Ok(Located::new(item.into_value(), position))
        }
        Err(err) => match err.position().map(|p| offset.shift(p)) {
            Some(position) => Err(err.with_position(position)),
            None => Err(err),
        },
    });
    Pipeline::from_stream(shifted).boxed()
}

/// One CSV row as a record, named by the header row (the first row, which `header` keeps,
/// when `header_row` says the input starts with it).
///
/// The rows are read without a header row, so that the header row is at hand: records count
/// from 0 after it, as the source counts them when it reads the header row itself.
fn csv_row(
    header: &mut Option<Arc<[Arc<str>]>>,
    header_row: bool,
    source: &Arc<str>,
    flexible: bool,
    row: vortex_stream::Result<csv::StringRecord>,
) -> Option<vortex_stream::Result<Item>> {
    let row = match row {
        Ok(row) => row,
        // Without the header row the fields have no names, and the next row would be taken
        // for it: the input cannot be converted.
        Err(err) if header.is_none() => return Some(Err(err.fatal())),
        Err(err) if !header_row => return Some(Err(err)),
        Err(err) => {
            // The source counted the header row as record 0.
            let shifted = err.position().and_then(|pos| {
                let record = pos.record()?.checked_sub(1)?;
                Some(pos.clone().with_record(record))
            });
            return Some(Err(match shifted {
                Some(position) => err.with_position(position),
                None => err,
            }));
        }
    };
    let Some(names) = header.as_ref() else {
        *header = Some(header_names(&row));
        return None;
    };
    let at = row.position();
    let position = Position::new()
        .with_source(Arc::clone(source))
        .with_record(at.map_or(0, |p| p.record().saturating_sub(u64::from(header_row))))
        .with_line(at.map_or(0, csv::Position::line))
        .with_byte(at.map_or(0, csv::Position::byte));
    if row.len() != names.len() && !flexible {
        return Some(Err(Error::new(ErrorKind::Decode, "csv source: decode")
            .with_position(position)
            .with_message(format!(
                "record has {} fields, expected {} (--flexible keeps ragged rows)",
                row.len(),
                names.len()
            ))
            .with_raw(csv_line(&row))));
    }
    let fields = row
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let name = names
                .get(i)
                .map_or_else(|| Arc::from(format!("_{}", i + 1)), Arc::clone);
            (name, Field::Text(value.to_owned()))
        })
        .collect();
    Some(Ok(Located::new(Record::Fields(fields), position)))
}

/// The header row's names; a name given twice is given a suffix (`id`, `id_2`), so that no
/// column is lost, and the renaming is said on stderr.
pub(crate) fn header_names(row: &csv::StringRecord) -> Arc<[Arc<str>]> {
    let mut names: Vec<Arc<str>> = Vec::with_capacity(row.len());
    for (i, name) in row.iter().enumerate() {
        let mut unique = name.to_owned();
        let mut n = 2;
        while names.iter().any(|seen| **seen == *unique) {
            unique = format!("{name}_{n}");
            n += 1;
        }
        if unique != name {
            eprintln!(
                "vortex convert: the header names {name:?} more than once: column {} is read as {unique:?}",
                i + 1
            );
        }
        names.push(Arc::from(unique));
    }
    names.into()
}

/// What every record must be for the output: the checks that reject a record, with its
/// position, rather than write it wrong.
struct Shape {
    to: Format,
    select: Vec<Arc<str>>,
    filters: bool,
    // The CSV output's columns: `--select`, or the first record's fields.
    columns: Arc<OnceLock<Vec<Arc<str>>>>,
    // The fields `--select` and `--where` name, and whether a record had each.
    named: Arc<NamedFields>,
    // Every record has the same fields (see `Steps::fixed_fields`).
    fixed_fields: bool,
}

/// A field that `--select` or `--where` names: the option, the name, and whether any record
/// had it so far.
#[derive(Debug)]
pub(crate) struct Named {
    pub(crate) option: &'static str,
    pub(crate) name: Arc<str>,
    seen: AtomicBool,
}

/// The fields `--select` and `--where` name, each once, and whether any record had each: a
/// misspelt name must not quietly leave a column empty or filter out every record.
#[derive(Debug, Default)]
pub(crate) struct NamedFields {
    fields: Vec<Named>,
    // A record (not an error) was looked at.
    any_record: AtomicBool,
}

impl NamedFields {
    pub(crate) fn new(select: &[Arc<str>], filters: &[Filter]) -> Self {
        let mut fields: Vec<Named> = Vec::new();
        let wanted = select
            .iter()
            .map(|name| ("--select", Arc::clone(name)))
            .chain(filters.iter().map(|f| ("--where", Arc::from(f.field()))));
        for (option, name) in wanted {
            if !fields.iter().any(|field| field.name == name) {
                fields.push(Named {
                    option,
                    name,
                    seen: AtomicBool::new(false),
                });
            }
        }
        NamedFields {
            fields,
            any_record: AtomicBool::new(false),
        }
    }

    /// The first named field that `columns` (a header known before any record) lacks.
    pub(crate) fn missing_from(&self, columns: &[Arc<str>]) -> Option<&Named> {
        self.fields
            .iter()
            .find(|field| !columns.contains(&field.name))
    }

    /// Notes which named fields `item` has. When every record has the same fields (a CSV
    /// input's header: `fixed_fields`), a field the first record lacks is in none: a misspelt
    /// name, an error before anything is written. Otherwise a field missing from some records
    /// is data (see [`never_seen`](NamedFields::never_seen)).
    fn look(&self, item: &Item, fixed_fields: bool) -> vortex_stream::Result<()> {
        if self.fields.is_empty() {
            return Ok(());
        }
        let first = !self.any_record.swap(true, Ordering::Relaxed);
        for field in &self.fields {
            if field.seen.load(Ordering::Relaxed) {
                continue;
            }
            if item.value().get(&field.name).is_some() {
                field.seen.store(true, Ordering::Relaxed);
            } else if first && fixed_fields {
                let columns = match item.value() {
                    Record::Fields(fields) => fields
                        .iter()
                        .map(|(name, _)| name.as_ref())
                        .collect::<Vec<_>>()
                        .join(", "),
                    Record::Other(_) => String::new(),
                };
                return Err(Error::new(ErrorKind::Validation, "convert: check")
                    .with_position(item.position().clone())
                    .with_message(format!(
                        "{} names {:?}, which is not a column of the input ({columns})",
                        field.option, field.name
                    ))
                    .fatal());
            }
        }
        Ok(())
    }

    /// The named fields that no record had, though records were read: in an input whose
    /// records differ in their fields (JSON Lines), a misspelt `--select` or `--where` name
    /// is only known at the end. Said on stderr rather than failed, since a field that is
    /// optional may be in none of a file's records.
    pub(crate) fn never_seen(&self) -> Vec<&Named> {
        if !self.any_record.load(Ordering::Relaxed) {
            return Vec::new();
        }
        self.fields
            .iter()
            .filter(|field| !field.seen.load(Ordering::Relaxed))
            .collect()
    }
}

impl Shape {
    fn check(&self, item: Item) -> vortex_stream::Result<Item> {
        self.named.look(&item, self.fixed_fields)?;
        let fields = match item.value() {
            Record::Fields(fields) => fields,
            other => {
                let needs = if self.to == Format::Csv {
                    Some("a CSV row needs named fields")
                } else if !self.select.is_empty() || self.filters {
                    Some("--select and --where need named fields")
                } else {
                    None
                };
                return match needs {
                    Some(needs) => Err(rejected(
                        &item,
                        format!("the value is {}, not an object: {needs}", other.kind()),
                    )),
                    None => Ok(item),
                };
            }
        };
        if self.to == Format::Lines {
            return self.fits_a_line(item);
        }
        if self.to != Format::Csv || !self.select.is_empty() {
            return Ok(item);
        }
        let columns = self
            .columns
            .get_or_init(|| fields.iter().map(|(name, _)| Arc::clone(name)).collect());
        let same = fields.len() == columns.len()
            && fields
                .iter()
                .zip(columns)
                .all(|((name, _), column)| name == column);
        if !same {
            if let Some((name, _)) = fields.iter().find(|(name, _)| !columns.contains(name)) {
                let message = format!(
                    "field {name:?} is not a column of the output ({}: the first record's fields); --select names the columns to write",
                    columns.join(", ")
                );
                return Err(rejected(&item, message));
            }
        }
        Ok(item)
    }
}

impl Shape {
    /// A record as one line of text, its fields (those selected) joined by tabs: a line end in
    /// a field, or a tab where there are several, would make other lines or fields of it when
    /// read back, so the record is rejected instead.
    fn fits_a_line(&self, item: Item) -> vortex_stream::Result<Item> {
        let Record::Fields(fields) = item.value() else {
            // JSON text holds no raw line end.
            return Ok(item);
        };
        let written: Vec<&Field> = fields
            .iter()
            .filter(|(name, _)| self.select.is_empty() || self.select.contains(name))
            .map(|(_, value)| value)
            .collect();
        for value in &written {
            let text = value.text();
            if text.contains(['\n', '\r']) {
                return Err(rejected(
                    &item,
                    "a field holds a line end, which a line cannot".to_owned(),
                ));
            }
            if written.len() > 1 && text.contains('\t') {
                return Err(rejected(
                    &item,
                    "a field holds a tab, which separates the fields of a line".to_owned(),
                ));
            }
        }
        Ok(item)
    }
}

/// The error policy `--on-error` and `--max-errors` ask for.
async fn policy(args: &ConvertArgs) -> Result<ErrorPolicy> {
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
    Ok(policy)
}

/// A record rejected by a check, at its position, with its text for a dead-letter file.
fn rejected(item: &Item, message: String) -> Error {
    Error::new(ErrorKind::Validation, "convert: check")
        .with_position(item.position().clone())
        .with_message(message)
        .with_raw(item.value().to_json())
}

/// Keeps the `select`ed fields, in that order; a missing one is left out.
fn project(record: Record, select: &[Arc<str>]) -> Record {
    match record {
        Record::Fields(mut fields) if !select.is_empty() => {
            let picked = select
                .iter()
                .filter_map(|name| {
                    let i = fields.iter().position(|(key, _)| key == name)?;
                    Some(fields.swap_remove(i))
                })
                .collect();
            Record::Fields(picked)
        }
        other => other,
    }
}

/// What a conversion does between reading records and writing them: the checks for the
/// output, `--where`, `--select` and `--limit`. `vortex convert` and the job workers share it.
pub(crate) struct Steps {
    pub(crate) to: Format,
    pub(crate) select: Vec<Arc<str>>,
    pub(crate) filters: Vec<Filter>,
    pub(crate) limit: u64,
    /// Where to gather per-stage statistics (`--stats`), if anywhere.
    pub(crate) stats: Option<vortex_stream::Stats>,
    /// Every record has the same fields, named by a header: a CSV input read without
    /// `--flexible`, or a query's rows.
    pub(crate) fixed_fields: bool,
}

/// Records filtered out and written by [`convert_records`] (those read and rejected are in the
/// error policy's report).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) filtered: AtomicU64,
    pub(crate) written: AtomicU64,
    // The fields `--select` and `--where` name (set once the steps are known).
    named: OnceLock<Arc<NamedFields>>,
}

impl Tally {
    /// The named fields that no record had (see [`NamedFields::never_seen`]).
    pub(crate) fn never_seen(&self) -> Vec<&Named> {
        self.named
            .get()
            .map(|named| named.never_seen())
            .unwrap_or_default()
    }
}

/// Runs `records` through `steps`, under `policy`, into `output` in the format `steps.to`.
pub(crate) async fn convert_records(
    records: Pipeline<BoxStream<'static, vortex_stream::Result<Item>>>,
    steps: Steps,
    policy: &ErrorPolicy,
    output: Output,
    tally: &Arc<Tally>,
) -> vortex_stream::Result<Written> {
    let to = steps.to;
    let (kept, columns) = transformed(records, steps, policy, tally);
    write_records(kept, to, columns, output).await
}

/// The columns of a CSV output: `--select`, or else the first record's fields.
pub(crate) type Columns = Arc<OnceLock<Vec<Arc<str>>>>;

/// `records` through `steps` (checks, `--where`, `--select`, `--limit`) under `policy`, and
/// the columns a CSV output of them has.
pub(crate) fn transformed(
    records: Pipeline<BoxStream<'static, vortex_stream::Result<Item>>>,
    steps: Steps,
    policy: &ErrorPolicy,
    tally: &Arc<Tally>,
) -> (
    Pipeline<BoxStream<'static, vortex_stream::Result<Record>>>,
    Columns,
) {
    let Steps {
        to,
        select,
        filters,
        limit,
        stats,
        fixed_fields,
    } = steps;
    let columns = Arc::new(OnceLock::new());
    if !select.is_empty() {
        let _ = columns.set(select.clone());
    }
    let named = Arc::new(NamedFields::new(&select, &filters));
    let _ = tally.named.set(Arc::clone(&named));
    let shape = Shape {
        to,
        select: select.clone(),
        filters: !filters.is_empty(),
        columns: Arc::clone(&columns),
        named,
        fixed_fields,
    };
    let dropped = Arc::clone(tally);
    let out = Arc::clone(tally);
    let kept = records
        .try_map(move |item| {
            let item = shape.check(item)?;
            // A record `--where` cannot judge is rejected, under the policy, not dropped.
            let keep = filter::keeps_all(&filters, item.value())
                .map_err(|message| rejected(&item, message))?;
            Ok::<_, Error>((item, keep))
        })
        .on_error(policy.clone())
        .filter(move |(_, keep)| {
            if !keep {
                dropped.filtered.fetch_add(1, Ordering::Relaxed);
            }
            *keep
        })
        .map(move |(item, _)| project(item.into_value(), &select))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .inspect(move |_| {
            out.written.fetch_add(1, Ordering::Relaxed);
        })
        .boxed();
    let kept = match &stats {
        Some(stats) => kept.observe(stats, "check+filter").boxed(),
        None => kept,
    };
    (kept, columns)
}

/// Writes records as `to` (a CSV output's header from `columns`).
pub(crate) async fn write_records(
    kept: Pipeline<BoxStream<'static, vortex_stream::Result<Record>>>,
    to: Format,
    columns: Columns,
    output: Output,
) -> vortex_stream::Result<Written> {
    match to {
        Format::Jsonl => kept.write(JsonlSink, output).await,
        Format::Lines => {
            kept.map(|record| match record {
                Record::Fields(fields) => fields
                    .iter()
                    .map(|(_, value)| value.text())
                    .collect::<Vec<_>>()
                    .join("\t"),
                Record::Other(raw) => raw.get().to_owned(),
            })
            .write(LinesSink, output)
            .await
        }
        Format::Csv => {
            let names = Arc::clone(&columns);
            crate::rows::with_header_by(
                kept,
                move |_: &Record| {
                    names
                        .get()
                        .map_or_else(Vec::new, |c| c.iter().map(ToString::to_string).collect())
                },
                move |record: &Record| {
                    columns.get().map_or_else(Vec::new, |c| {
                        c.iter()
                            .map(|name| {
                                record
                                    .get(name)
                                    .map(|f| f.text().into_owned())
                                    .unwrap_or_default()
                            })
                            .collect()
                    })
                },
            )
            .write(CsvRecords::new(), output)
            .await
        }
    }
}

pub(crate) fn run(args: &ConvertArgs) -> Result<()> {
    let endpoint = |path: &Path| path.to_str().map_or(Ok(None), broker::Endpoint::parse);
    let (from, to) = (endpoint(&args.input)?, endpoint(&args.output)?);
    if from.is_some() || to.is_some() {
        return broker::run(args, from.as_ref(), to.as_ref());
    }
    let start = Instant::now();
    let from = resolve(&args.input, args.from, "--from")?;
    let to = resolve(&args.output, args.to, "--to")?;
    let filters: Vec<Filter> = args
        .filters
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<Result<_>>()?;
    let dead_letters = args.on_error.strip_prefix("dead-letter=").map(Path::new);
    let mut outputs = vec![("output", args.output.as_path())];
    outputs.extend(dead_letters.map(|path| ("dead-letter file", path)));
    crate::paths::check_outputs(&args.input, &outputs)?;
    let runtime = crate::runtime()?;
    let output = crate::output_of(&args.output);
    let bar = crate::progress::rows("vortex convert");
    let tally = Arc::new(Tally::default());
    let stats = args.stats.then(vortex_stream::Stats::new);
    let run = runtime.block_on(crate::until_stopped(async {
        let policy = policy(args).await?;
        let counter = bar.clone();
        let steps = Steps {
            to,
            select: args.select.iter().map(|s| Arc::from(s.as_str())).collect(),
            filters,
            limit: args.limit.unwrap_or(u64::MAX),
            stats: stats.clone(),
            fixed_fields: from == Format::Csv && !args.flexible,
        };
        let records = records(&args.input, from, args.flexible, &Offset::default())
            .inspect(move |_| counter.inc(1))
            .boxed();
        let records = match &stats {
            Some(stats) => records.observe(stats, "read+decode").boxed(),
            None => records,
        };
        let written = convert_records(records, steps, &policy, output, &tally).await;
        Ok((policy, written))
    }));
    crate::shut_down(runtime);
    let (policy, outcome) = run?;
    bar.finish_and_clear();
    let report = policy.report();
    let rejected = report.errors_total();
    let summary = format!(
        "vortex convert: {} records in: {} written, {} filtered out, {} rejected{} in {:.2} s",
        report.items_in(),
        tally.written.load(Ordering::Relaxed),
        tally.filtered.load(Ordering::Relaxed),
        rejected,
        if rejected > 0 {
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
    // A run that failed says why; what it did not read proves nothing.
    let unseen = if outcome.is_ok() {
        tally.never_seen()
    } else {
        Vec::new()
    };
    for field in unseen {
        eprintln!(
            "vortex convert: warning: {} names {:?}, which no record had",
            field.option, field.name
        );
    }
    if let Some(stats) = stats {
        eprintln!("{stats}");
    }
    outcome.map(|_| ()).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use proptest::prelude::*;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ConvertArgs,
    }

    fn convert(args: &[&str]) {
        let cli =
            Cli::try_parse_from(std::iter::once("convert").chain(args.iter().copied())).unwrap();
        run(&cli.args).unwrap();
    }

    fn field() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => Just("a"),
            2 => Just("17"),
            2 => Just(","),
            2 => Just("\""),
            1 => Just("\n"),
            1 => Just("\r\n"),
            1 => Just(" "),
            1 => Just("é"),
            1 => Just("-0.10"),
            1 => Just("null"),
        ];
        prop::collection::vec(piece, 0..5).prop_map(|pieces| pieces.concat())
    }

    fn table() -> impl Strategy<Value = (Vec<String>, Vec<Vec<String>>)> {
        (1usize..5).prop_flat_map(|width| {
            let names = prop::collection::hash_set("[a-z][a-z0-9_]{0,5}", width)
                .prop_map(|names| names.into_iter().collect::<Vec<_>>());
            let rows = prop::collection::vec(prop::collection::vec(field(), width), 1..12);
            (names, rows)
        })
    }

    fn quoting() -> impl Strategy<Value = csv::QuoteStyle> {
        prop_oneof![
            Just(csv::QuoteStyle::Necessary),
            Just(csv::QuoteStyle::Always),
            Just(csv::QuoteStyle::NonNumeric),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Records written as CSV (any quoting), converted to JSON Lines, their keys put in a
        /// random order, and converted back to CSV come back exactly.
        #[test]
        fn csv_to_jsonl_to_csv_changes_nothing(
            (names, rows) in table(),
            quote in quoting(),
            order in any::<prop::sample::Index>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = |name: &str| dir.path().join(name).display().to_string();
            let mut writer = csv::WriterBuilder::new().quote_style(quote).from_path(path("in.csv")).unwrap();
            writer.write_record(&names).unwrap();
            for row in &rows {
                writer.write_record(row).unwrap();
            }
            writer.flush().unwrap();
            drop(writer);

            convert(&[&path("in.csv"), &path("mid.jsonl")]);
            let mid = std::fs::read_to_string(path("mid.jsonl")).unwrap();
            let objects: Vec<serde_json::Map<String, serde_json::Value>> =
                mid.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
            prop_assert_eq!(objects.len(), rows.len());
            for (object, row) in objects.iter().zip(&rows) {
                for (name, value) in names.iter().zip(row) {
                    prop_assert_eq!(object.get(name).and_then(|v| v.as_str()), Some(value.as_str()));
                }
            }

            // The same objects, keys in another order on every line.
            let mut shuffled = String::new();
            for (i, object) in objects.iter().enumerate() {
                let mut keys: Vec<&String> = object.keys().collect();
                let turn = (order.index(keys.len()) + i) % keys.len();
                keys.rotate_left(turn);
                let fields: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{}:{}", serde_json::to_string(k).unwrap(), object[k.as_str()]))
                    .collect();
                shuffled.push_str(&format!("{{{}}}\n", fields.join(",")));
            }
            std::fs::write(path("shuffled.jsonl"), shuffled).unwrap();
            let select = names.join(",");
            convert(&[&path("shuffled.jsonl"), &path("out.csv"), "--select", &select]);
            let mut reader = csv::ReaderBuilder::new().from_path(path("out.csv")).unwrap();
            prop_assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), names.iter().map(String::as_str).collect::<Vec<_>>());
            let back: Vec<Vec<String>> = reader
                .records()
                .map(|r| r.unwrap().iter().map(str::to_owned).collect())
                .collect();
            prop_assert_eq!(back, rows);
        }
    }
}
