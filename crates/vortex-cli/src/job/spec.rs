//! The job file: what a bulk job reads, does to each record and writes, in the terms that
//! `vortex convert` and `vortex export` use, and the work items it is cut into.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::convert::{format_of, Filter, Format};

/// A job file, as written (TOML) and as stored with the job (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobSpec {
    pub(crate) source: SourceSpec,
    #[serde(default)]
    pub(crate) transform: TransformSpec,
    pub(crate) sink: SinkSpec,
    #[serde(default)]
    pub(crate) retry: RetrySpec,
}

/// `[source]`: a table or query (with its keyset column), one large file, or many files.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceSpec {
    /// A database URL: `sqlite://…`, `postgres://…`, `mysql://…`.
    pub(crate) db: Option<String>,
    /// A table of `db`, read whole (`SELECT *`).
    pub(crate) table: Option<String>,
    /// A query of `db`, instead of a table.
    pub(crate) query: Option<String>,
    /// The keyset column: unique, never NULL, an integer or text.
    pub(crate) key: Option<String>,
    /// Rows per work item (a table or query).
    pub(crate) rows_per_item: Option<NonZeroU64>,
    /// One large file, cut into byte ranges at record boundaries.
    pub(crate) file: Option<PathBuf>,
    /// Bytes per work item (one large file).
    pub(crate) bytes_per_item: Option<NonZeroU64>,
    /// Files or glob patterns (`logs/*.jsonl`): one work item per file.
    pub(crate) files: Option<Vec<String>>,
    /// The files' format, when their extension does not say: csv, jsonl, lines.
    pub(crate) format: Option<Format>,
    /// CSV rows may have more or fewer fields than the header (as `convert --flexible`).
    #[serde(default)]
    pub(crate) flexible: bool,
}

/// `[transform]`: as `convert`'s `--select`, `--where` and `--on-error`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransformSpec {
    #[serde(default)]
    pub(crate) select: Vec<String>,
    #[serde(default, rename = "where")]
    pub(crate) filters: Vec<String>,
    /// `fail` (the default: a bad record fails its item) or `skip` (it is counted as rejected).
    #[serde(default)]
    pub(crate) on_error: OnError,
    /// With `skip`: an item with more bad records than this fails.
    pub(crate) max_errors: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnError {
    #[default]
    Fail,
    Skip,
}

/// `[sink]`: a folder of part files (one per item) or a database table.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SinkSpec {
    /// A folder: each item's records go to `part-NNNNNN.EXT`, renamed into place when
    /// complete, and `manifest.json` lists the parts in order once the job is done.
    pub(crate) dir: Option<PathBuf>,
    /// The part files' format: csv (the default) or jsonl.
    pub(crate) format: Option<Format>,
    /// A database URL, to load a table.
    pub(crate) db: Option<String>,
    /// The table to load (its columns are `[transform] select`).
    pub(crate) table: Option<String>,
    /// The table's unique key: an item loaded again replaces its own rows.
    #[serde(default)]
    pub(crate) key: Vec<String>,
}

/// `[retry]`: how often an item is tried before it is recorded as failed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RetrySpec {
    /// Deliveries of an item, the first one included (a worker killed mid-item counts).
    pub(crate) max_attempts: NonZeroU64,
    /// The wait before the second attempt, doubled for each one after, up to 5 minutes.
    pub(crate) backoff_seconds: f64,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            max_attempts: NonZeroU64::new(5).unwrap_or(NonZeroU64::MIN),
            backoff_seconds: 1.0,
        }
    }
}

/// What a job reads, checked.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    Table {
        db: String,
        query: String,
        key: String,
        rows_per_item: NonZeroU64,
    },
    File {
        path: PathBuf,
        format: Format,
        bytes_per_item: NonZeroU64,
    },
    Files {
        paths: Vec<PathBuf>,
        format: Option<Format>,
    },
}

/// Where a job writes, checked.
#[derive(Clone, Debug)]
pub(crate) enum Sink {
    Dir {
        dir: PathBuf,
        format: Format,
    },
    Table {
        db: String,
        table: String,
        key: Vec<String>,
    },
}

const DEFAULT_ROWS: u64 = 100_000;
const DEFAULT_BYTES: u64 = 64 * 1024 * 1024;

impl JobSpec {
    /// Reads and checks a job file; relative paths in it are taken from the file's folder.
    pub(crate) fn load(path: &Path) -> Result<JobSpec> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut spec: JobSpec =
            toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        let base = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_owned());
        spec.resolve_paths(&base);
        spec.source()?;
        spec.sink()?;
        spec.filters()?;
        if !(spec.retry.backoff_seconds.is_finite() && spec.retry.backoff_seconds >= 0.0) {
            bail!("[retry] backoff_seconds must be a number of seconds, 0 or more");
        }
        Ok(spec)
    }

    /// Paths made absolute, so that workers started elsewhere find the same files (they
    /// must see them at the same paths: a shared folder).
    fn resolve_paths(&mut self, base: &Path) {
        let absolute = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        if let Some(file) = &self.source.file {
            self.source.file = Some(absolute(file));
        }
        if let Some(files) = &mut self.source.files {
            for pattern in files.iter_mut() {
                *pattern = absolute(Path::new(pattern.as_str())).display().to_string();
            }
        }
        if let Some(dir) = &self.sink.dir {
            self.sink.dir = Some(absolute(dir));
        }
        for url in [&mut self.source.db, &mut self.sink.db]
            .into_iter()
            .flatten()
        {
            if let Some(rest) = url.strip_prefix("sqlite://") {
                if !rest.is_empty() && !rest.starts_with(':') {
                    *url = format!("sqlite://{}", absolute(Path::new(rest)).display());
                }
            }
        }
    }

    pub(crate) fn source(&self) -> Result<Source> {
        let s = &self.source;
        let given = [s.db.is_some(), s.file.is_some(), s.files.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            bail!("[source] needs exactly one of db (with table or query, and key), file, files");
        }
        if let Some(db) = &s.db {
            let query = match (&s.table, &s.query) {
                (Some(table), None) => format!("SELECT * FROM {}", quote(db, table)),
                (None, Some(query)) => query.clone(),
                _ => bail!("[source] db needs one of table or query"),
            };
            let key = s
                .key
                .clone()
                .context("[source] db needs key: a unique, never NULL column to cut ranges of")?;
            return Ok(Source::Table {
                db: db.clone(),
                query,
                key,
                rows_per_item: s
                    .rows_per_item
                    .unwrap_or(NonZeroU64::new(DEFAULT_ROWS).unwrap_or(NonZeroU64::MIN)),
            });
        }
        if let Some(path) = &s.file {
            let format = match s.format.or_else(|| format_of(path)) {
                Some(format) => format,
                None => bail!(
                    "cannot tell the format of {}: set [source] format = \"csv\", \"jsonl\" or \"lines\"",
                    path.display()
                ),
            };
            return Ok(Source::File {
                path: path.clone(),
                format,
                bytes_per_item: s
                    .bytes_per_item
                    .unwrap_or(NonZeroU64::new(DEFAULT_BYTES).unwrap_or(NonZeroU64::MIN)),
            });
        }
        let patterns = s.files.clone().unwrap_or_default();
        let mut paths = Vec::new();
        // A file two patterns match is one item: read twice, its records would be written twice.
        let mut seen = std::collections::HashSet::new();
        for pattern in &patterns {
            let matched = glob::glob(pattern)
                .with_context(|| format!("[source] files: bad pattern {pattern:?}"))?;
            let mut any = false;
            for path in matched {
                let path = path.with_context(|| format!("[source] files: {pattern}"))?;
                if path.is_file() {
                    any = true;
                    if seen.insert(path.clone()) {
                        paths.push(path);
                    }
                }
            }
            if !any {
                bail!("[source] files: {pattern:?} matches no file");
            }
        }
        for path in &paths {
            if s.format.is_none() && format_of(path).is_none() {
                bail!(
                    "cannot tell the format of {}: set [source] format",
                    path.display()
                );
            }
        }
        Ok(Source::Files {
            paths,
            format: s.format,
        })
    }

    pub(crate) fn sink(&self) -> Result<Sink> {
        let s = &self.sink;
        match (&s.dir, &s.db) {
            (Some(dir), None) => {
                let format = s.format.unwrap_or(Format::Csv);
                if format == Format::Lines {
                    bail!("[sink] format: csv or jsonl");
                }
                Ok(Sink::Dir {
                    dir: dir.clone(),
                    format,
                })
            }
            (None, Some(db)) => {
                let table = s.table.clone().context("[sink] db needs table")?;
                if s.key.is_empty() {
                    bail!("[sink] a table needs key, its unique columns: an item loaded again then replaces its rows instead of adding them twice");
                }
                if self.transform.select.is_empty() {
                    bail!("[sink] a table needs [transform] select, naming its columns in order");
                }
                Ok(Sink::Table {
                    db: db.clone(),
                    table,
                    key: s.key.clone(),
                })
            }
            _ => bail!("[sink] needs one of dir (part files) or db with table"),
        }
    }

    pub(crate) fn filters(&self) -> Result<Vec<Filter>> {
        self.transform
            .filters
            .iter()
            .map(|f| Filter::parse(f))
            .collect()
    }
}

/// A table name quoted for the database `url` names (a dotted name is a schema and a table).
fn quote(url: &str, table: &str) -> String {
    let mysql = url.starts_with("mysql://");
    table
        .split('.')
        .map(|part| {
            if mysql {
                format!("`{}`", part.replace('`', "``"))
            } else {
                format!("\"{}\"", part.replace('"', "\"\""))
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// One work item: a piece of the job's input, numbered from 0 in the input's order (its part
/// file is `part-NNNNNN`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct WorkItem {
    pub(crate) job: String,
    pub(crate) n: u64,
    pub(crate) piece: Piece,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Piece {
    /// The rows whose keys are in `(after, until]` (unbounded where `None`).
    Keys {
        after: Option<serde_json::Value>,
        until: Option<serde_json::Value>,
    },
    /// The bytes `start..end` of a file, whole records; `records` and `lines` came before
    /// `start` (for positions counted from the file's start). `stamp` is the file as it was
    /// cut: a file changed since would be cut elsewhere, and its item is refused.
    Bytes {
        path: PathBuf,
        start: u64,
        end: u64,
        records: u64,
        lines: u64,
        stamp: FileStamp,
    },
    /// A whole file.
    File { path: PathBuf },
}

impl Piece {
    /// What the piece is, for messages.
    pub(crate) fn describe(&self) -> String {
        let show =
            |v: &Option<serde_json::Value>| v.as_ref().map_or("…".to_owned(), ToString::to_string);
        match self {
            Piece::Keys { after, until } => format!("keys ({}, {}]", show(after), show(until)),
            Piece::Bytes {
                path, start, end, ..
            } => format!("{} bytes {start}..{end}", path.display()),
            Piece::File { path } => path.display().to_string(),
        }
    }
}

/// A file's length and modification time, to tell that it has not changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileStamp {
    pub(crate) len: u64,
    pub(crate) modified_ns: u64,
}

impl FileStamp {
    pub(crate) fn of(path: &Path) -> Result<FileStamp> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Ok(FileStamp {
            len: meta.len(),
            modified_ns,
        })
    }
}
