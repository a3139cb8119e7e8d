//! Running one work item: its piece of the input, through the job's transform, committed to
//! the job's sink (a part file renamed into place, or one transaction of a table).

use std::io::{Seek as _, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use futures_core::stream::BoxStream;
use serde::{Deserialize, Serialize};
use vortex_stream::db::{Database, Keyset, LoadMethod, Table, Value};
use vortex_stream::io::{Compression, Input, Output};
use vortex_stream::sinks::DeadLetters;
use vortex_stream::{ErrorPolicy, Located, Pipeline, Position};

use super::spec::{FileStamp, JobSpec, OnError, Piece, Sink, Source, WorkItem};
use super::split::key_value;
use crate::convert::{
    format_of, header_names, records_of, row, transformed, write_records, Format, Offset, Steps,
    Tally,
};
use crate::record::{Field, Record};

/// What an item did with its records: each one read was written, filtered out or rejected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ItemStats {
    pub(crate) read: u64,
    pub(crate) written: u64,
    pub(crate) filtered: u64,
    pub(crate) rejected: u64,
}

impl ItemStats {
    pub(crate) fn add(&mut self, other: &ItemStats) {
        self.read += other.read;
        self.written += other.written;
        self.filtered += other.filtered;
        self.rejected += other.rejected;
    }
}

/// The part file of item `n`.
pub(crate) fn part_name(n: u64, format: Format) -> String {
    let ext = if format == Format::Jsonl {
        "jsonl"
    } else {
        "csv"
    };
    format!("part-{n:06}.{ext}")
}

/// Runs one item to its commit: its part file is in place, or its rows are committed. Run
/// again, it writes the same part (or the same rows, replacing their keys): a redelivered
/// item changes nothing.
pub(crate) async fn run_item(spec: &JobSpec, item: &WorkItem) -> Result<ItemStats> {
    let source = spec.source()?;
    let (records, fixed_fields) = records(&source, spec.source.flexible, &item.piece)?;
    let sink = spec.sink()?;
    // Skipped records of a part-file job go to the item's rejects file, each with its
    // position: written under a temporary name, put in place with the part.
    let rejects = match (&sink, spec.transform.on_error) {
        (Sink::Dir { dir, .. }, OnError::Skip) => Some(Rejects::new(dir, item.n)),
        _ => None,
    };
    let policy = match (&rejects, spec.transform.on_error) {
        (_, OnError::Fail) => ErrorPolicy::fail_fast(),
        (Some(rejects), OnError::Skip) => {
            ErrorPolicy::dead_letter(DeadLetters::create(&rejects.temporary).await?)
        }
        (None, OnError::Skip) => ErrorPolicy::skip(),
    };
    let policy = match spec.transform.max_errors {
        Some(max) => policy.max_errors(max),
        None => policy,
    };
    let outcome = run_through(spec, item, sink, (records, fixed_fields), &policy).await;
    let report = policy.report();
    // The policy holds the rejects file open: it is closed before it is moved.
    drop(policy);
    if let Some(rejects) = rejects {
        rejects.settle(outcome.is_ok(), report.errors_total() > 0)?;
    }
    let tally = outcome?;
    for field in tally.never_seen() {
        tracing::warn!(
            item = item.n,
            "the job's {} names {:?}, which no record of this item had",
            field.option,
            field.name
        );
    }
    Ok(ItemStats {
        read: report.items_in(),
        written: tally.written.load(Ordering::Relaxed),
        filtered: tally.filtered.load(Ordering::Relaxed),
        rejected: report.errors_total(),
    })
}

/// The rejects file of item `n` (`rejected-NNNNNN.jsonl`) and where it is written first.
struct Rejects {
    temporary: PathBuf,
    path: PathBuf,
}

impl Rejects {
    fn new(dir: &std::path::Path, n: u64) -> Self {
        let name = rejects_name(n);
        Rejects {
            temporary: dir.join(format!(".{name}.{}.tmp", std::process::id())),
            path: dir.join(name),
        }
    }

    /// After an item committed: puts the file in place if it holds rejects, or else removes
    /// it and any left by an earlier attempt. After a failure only the temporary file goes: a
    /// rejects file in place belongs to an attempt that committed.
    fn settle(self, committed: bool, rejected: bool) -> Result<()> {
        if committed && rejected {
            return std::fs::rename(&self.temporary, &self.path)
                .with_context(|| format!("writing {}", self.path.display()));
        }
        let stale = if committed { Some(&self.path) } else { None };
        for path in std::iter::once(&self.temporary).chain(stale) {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", path.display()));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The rejects file of item `n`.
pub(crate) fn rejects_name(n: u64) -> String {
    format!("rejected-{n:06}.jsonl")
}

/// Runs an item's records through the job's transform into its sink; the counts of what was
/// filtered out and written.
async fn run_through(
    spec: &JobSpec,
    item: &WorkItem,
    sink: Sink,
    (records, fixed_fields): (Records, bool),
    policy: &ErrorPolicy,
) -> Result<Arc<Tally>> {
    let steps = Steps {
        to: match &sink {
            Sink::Dir { format, .. } => *format,
            Sink::Table { .. } => Format::Jsonl,
        },
        select: spec
            .transform
            .select
            .iter()
            .map(|s| Arc::from(s.as_str()))
            .collect(),
        filters: spec.filters()?,
        limit: u64::MAX,
        stats: None,
        fixed_fields,
    };
    let tally = Arc::new(Tally::default());
    let to = steps.to;
    let (kept, columns) = transformed(records, steps, policy, &tally);
    match sink {
        Sink::Dir { dir, format } => {
            let output = Output::path(dir.join(part_name(item.n, format)));
            write_records(kept, to, columns, output).await?;
        }
        Sink::Table { db, table, key } => {
            let database = Database::open(&db)?;
            let names = spec.transform.select.clone();
            let target = Table::new(table.as_str(), names.clone())
                .method(LoadMethod::Inserts)
                .upsert(key)
                .all_or_nothing();
            kept.map(move |record| row(&record, &names))
                .load(&database, target)
                .await?;
        }
    }
    Ok(tally)
}

/// Rows per keyset page of a table item: a page is held while the next is fetched.
const PAGE: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(2000) {
    Some(n) => n,
    None => std::num::NonZeroUsize::MIN,
};

type Records = Pipeline<BoxStream<'static, vortex_stream::Result<Located<Record>>>>;

/// The records of an item's piece of the input, positioned from the start of the input, and
/// whether they all have the same fields (see `Steps::fixed_fields`).
fn records(source: &Source, flexible: bool, piece: &Piece) -> Result<(Records, bool)> {
    match (source, piece) {
        (Source::Table { db, query, key, .. }, Piece::Keys { after, until }) => {
            let database = Database::open(db)?;
            let mut keyset = Keyset::new(query.as_str(), Vec::new(), key.as_str()).page_size(PAGE);
            if let Some(after) = after {
                keyset = keyset.after(key_value(after)?);
            }
            if let Some(until) = until {
                keyset = keyset.until(key_value(until)?);
            }
            let name: Arc<str> = Arc::from(database.name());
            let mut columns = Columns::default();
            let records = database
                .scan(keyset)
                .try_map(move |row| {
                    let position = Position::new()
                        .with_source(Arc::clone(&name))
                        .with_record(row.index());
                    let record = row_record(row, &mut columns)?;
                    Ok::<_, vortex_stream::BoxError>(Located::new(record, position))
                })
                .boxed();
            Ok((records, true))
        }
        (
            Source::File { format, .. },
            Piece::Bytes {
                path,
                start,
                end,
                records,
                lines,
                stamp,
            },
        ) => {
            if FileStamp::of(path)? != *stamp {
                anyhow::bail!(
                    "{} changed since the job was cut into items: its byte ranges no longer fall between records (submit the job again)",
                    path.display()
                );
            }
            let header = if *start > 0 && *format == Format::Csv {
                Some(csv_header(path)?)
            } else {
                None
            };
            let mut file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            file.seek(SeekFrom::Start(*start))?;
            let piece = std::io::Read::take(file, end - start);
            let input = Input::reader(piece)
                .name(path.display().to_string())
                .compression(Compression::None);
            let offset = Offset {
                records: *records,
                lines: *lines,
                bytes: *start,
                header,
            };
            let fixed = *format == Format::Csv && !flexible;
            Ok((records_of(input, *format, flexible, &offset), fixed))
        }
        (source, Piece::File { path }) => {
            let told = match source {
                Source::File { format, .. } => Some(*format),
                Source::Files { format, .. } => *format,
                Source::Table { .. } => None,
            };
            let format = told
                .or_else(|| format_of(path))
                .with_context(|| format!("cannot tell the format of {}", path.display()))?;
            let fixed = format == Format::Csv && !flexible;
            Ok((
                records_of(Input::path(path), format, flexible, &Offset::default()),
                fixed,
            ))
        }
        (_, piece) => anyhow::bail!(
            "the work item ({}) is not a piece of this job's source",
            piece.describe()
        ),
    }
}

/// The header row's names of a CSV file, for a piece that does not start with it.
pub(crate) fn csv_header(path: &PathBuf) -> Result<Arc<[Arc<str>]>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut record = csv::StringRecord::new();
    reader
        .read_record(&mut record)
        .with_context(|| format!("reading the header row of {}", path.display()))?;
    Ok(header_names(&record))
}

/// The column names of the rows read so far, shared by their records.
#[derive(Default)]
struct Columns(Vec<Arc<str>>);

/// A database row as a record: text stays text, other values are their JSON.
fn row_record(
    row: vortex_stream::db::Row,
    columns: &mut Columns,
) -> Result<Record, vortex_stream::BoxError> {
    let same = columns.0.len() == row.columns().len()
        && columns.0.iter().zip(row.columns()).all(|(a, b)| **a == **b);
    if !same {
        columns.0 = row
            .columns()
            .iter()
            .map(|c| Arc::from(c.as_str()))
            .collect();
    }
    let fields = columns
        .0
        .iter()
        .zip(row.into_values())
        .map(|(name, value)| {
            let field = match value {
                Value::Text(text) => Field::Text(text),
                other => Field::Json(serde_json::value::to_raw_value(&other)?),
            };
            Ok((Arc::clone(name), field))
        })
        .collect::<Result<Vec<_>, vortex_stream::BoxError>>()?;
    Ok(Record::Fields(fields))
}
