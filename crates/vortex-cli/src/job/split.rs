//! Cutting a job into work items: keyset ranges of a table, byte ranges of one large file cut
//! at record boundaries, or one file per item.

use std::fs::File;
use std::io::{BufReader, Read as _, Seek as _, SeekFrom};
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use vortex_stream::db::{Database, Keyset, Value};

use super::spec::{FileStamp, JobSpec, Piece, Source, WorkItem};
use crate::convert::{Format, NamedFields};

/// The job's work items, in the order of its input.
pub(crate) async fn split(spec: &JobSpec, job: &str) -> Result<Vec<WorkItem>> {
    let pieces = match spec.source()? {
        Source::Table {
            db,
            query,
            key,
            rows_per_item,
        } => {
            let database = Database::open(&db)?;
            let rows = NonZeroUsize::try_from(rows_per_item).unwrap_or(NonZeroUsize::MAX);
            let scan = Keyset::new(query, Vec::new(), key);
            let mut cuts: Vec<Value> = database.cuts(scan.clone(), rows).collect().await?;
            // The last cut may be the last row: then the range after it is left out.
            if let Some(last) = cuts.last() {
                let after = scan.after(last.clone()).page_size(NonZeroUsize::MIN);
                if database.scan(after).take(1).count().await? == 0 {
                    cuts.pop();
                }
            }
            let mut bounds: Vec<Option<serde_json::Value>> = vec![None];
            for cut in &cuts {
                bounds.push(Some(key_json(cut)?));
            }
            bounds.push(None);
            bounds
                .windows(2)
                .map(|pair| Piece::Keys {
                    after: pair[0].clone(),
                    until: pair[1].clone(),
                })
                .collect()
        }
        Source::File {
            path,
            format,
            bytes_per_item,
        } => {
            let target = bytes_per_item.get();
            let flexible = spec.source.flexible;
            let named = named_fields(spec)?;
            let work = move || -> Result<Vec<Piece>> {
                if format == Format::Csv && !flexible && !is_compressed(&path) {
                    check_header(&path, &named)?;
                }
                if is_compressed(&path) {
                    // A compressed file cannot be entered in the middle: one item.
                    return Ok(vec![Piece::File { path }]);
                }
                match format {
                    Format::Csv => csv_ranges(&path, target),
                    Format::Jsonl => line_ranges(&path, target, true),
                    Format::Lines => line_ranges(&path, target, false),
                }
            };
            tokio::task::spawn_blocking(work)
                .await
                .context("splitting the file")??
        }
        Source::Files { paths, .. } => paths.into_iter().map(|path| Piece::File { path }).collect(),
    };
    Ok(pieces
        .into_iter()
        .zip(0..)
        .map(|(piece, n)| WorkItem {
            job: job.to_owned(),
            n,
            piece,
        })
        .collect())
}

/// The fields the job's `select` and `where` name.
fn named_fields(spec: &JobSpec) -> Result<NamedFields> {
    let select: Vec<Arc<str>> = spec
        .transform
        .select
        .iter()
        .map(|name| Arc::from(name.as_str()))
        .collect();
    Ok(NamedFields::new(&select, &spec.filters()?))
}

/// A name that is not a column of the CSV file's header would fail every item on the
/// workers (see `convert`'s check): it fails the submission instead, before any item exists.
fn check_header(path: &std::path::PathBuf, named: &NamedFields) -> Result<()> {
    let header = super::item::csv_header(path)?;
    if let Some(field) = named.missing_from(&header) {
        let columns: Vec<&str> = header.iter().map(AsRef::as_ref).collect();
        bail!(
            "the job's {} names {:?}, which is not a column of {} ({})",
            field.option.trim_start_matches("--"),
            field.name,
            path.display(),
            columns.join(", ")
        );
    }
    Ok(())
}

/// A key as JSON, for a work item; only integers and text can cut ranges.
fn key_json(value: &Value) -> Result<serde_json::Value> {
    match value {
        Value::Int(i) => Ok(serde_json::Value::from(*i)),
        Value::Text(s) => Ok(serde_json::Value::from(s.as_str())),
        other => bail!("a keyset key must be an integer or text, not {other:?}"),
    }
}

/// A key of a work item as a database value.
pub(crate) fn key_value(json: &serde_json::Value) -> Result<Value> {
    match json {
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .context("a keyset key must be an integer or text"),
        serde_json::Value::String(s) => Ok(Value::Text(s.clone())),
        other => bail!("a keyset key must be an integer or text, not {other}"),
    }
}

fn is_compressed(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("gz") || ext.eq_ignore_ascii_case("zst"))
}

/// The byte-order mark a CSV parser drops at the start of its input: a piece may not start
/// with these bytes, or a record that starts with them would lose them.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A CSV file cut into ranges of about `target` bytes, each ending at a record boundary.
///
/// The boundaries come from the `csv` parser itself, the one that reads the pieces: a quoted
/// field with line ends inside is never cut, and the records and lines before each piece are
/// counted exactly, so that positions in a piece count from the start of the file. It reads
/// the file once, with one record in memory.
fn csv_ranges(path: &Path, target: u64) -> Result<Vec<Piece>> {
    let open = || File::open(path).with_context(|| format!("opening {}", path.display()));
    let stamp = FileStamp::of(path)?;
    let len = stamp.len;
    let mut peek = open()?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 20, open()?));
    let mut record = csv::ByteRecord::new();
    let mut pieces = Vec::new();
    let (mut start, mut records_before, mut lines_before) = (0u64, 0u64, 0u64);
    let mut records = 0u64;
    let mut header = true;
    loop {
        let at = reader.position().clone();
        if records > records_before && at.byte() - start >= target && at.byte() < len {
            let mut head = [0u8; 3];
            peek.seek(SeekFrom::Start(at.byte()))?;
            let n = peek.read(&mut head)?;
            if !BOM.starts_with(&head[..n]) || n == 0 {
                pieces.push(Piece::Bytes {
                    path: path.to_owned(),
                    start,
                    end: at.byte(),
                    records: records_before,
                    lines: lines_before,
                    stamp,
                });
                (start, records_before, lines_before) = (at.byte(), records, at.line() - 1);
            }
        }
        let more = reader
            .read_byte_record(&mut record)
            .with_context(|| format!("reading {} to cut it into pieces", path.display()))?;
        if !more {
            break;
        }
        if header {
            header = false;
        } else {
            records += 1;
        }
    }
    pieces.push(Piece::Bytes {
        path: path.to_owned(),
        start,
        end: len,
        records: records_before,
        lines: lines_before,
        stamp,
    });
    Ok(pieces)
}

/// A JSON Lines (or plain lines) file cut into ranges of about `target` bytes, each ending
/// after a line end. Records are counted as the sources count them: every line, or (JSON
/// Lines, `skip_blank`) every line that is not blank.
fn line_ranges(path: &Path, target: u64, skip_blank: bool) -> Result<Vec<Piece>> {
    let stamp = FileStamp::of(path)?;
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pieces = Vec::new();
    let (mut start, mut records_before, mut lines_before) = (0u64, 0u64, 0u64);
    let (mut records, mut lines, mut offset) = (0u64, 0u64, 0u64);
    // Whether the line being read holds anything but white space.
    let mut content = false;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let block = &buf[..n];
        let mut from = 0;
        for end in memchr::memchr_iter(b'\n', block) {
            content = content || block[from..end].iter().any(|b| !b.is_ascii_whitespace());
            lines += 1;
            if content || !skip_blank {
                records += 1;
            }
            content = false;
            from = end + 1;
            let next = offset + from as u64;
            if next - start >= target {
                pieces.push(Piece::Bytes {
                    path: path.to_owned(),
                    start,
                    end: next,
                    records: records_before,
                    lines: lines_before,
                    stamp,
                });
                (start, records_before, lines_before) = (next, records, lines);
            }
        }
        content = content || block[from..].iter().any(|b| !b.is_ascii_whitespace());
        offset += n as u64;
    }
    if start < offset || pieces.is_empty() {
        pieces.push(Piece::Bytes {
            path: path.to_owned(),
            start,
            end: offset,
            records: records_before,
            lines: lines_before,
            stamp,
        });
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(pieces: &[Piece]) -> Vec<(u64, u64, u64, u64)> {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Bytes {
                    start,
                    end,
                    records,
                    lines,
                    ..
                } => (*start, *end, *records, *lines),
                other => panic!("not a byte range: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn csv_cuts_fall_between_records_never_inside_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, "id,note\n1,\"a\nb\"\n2,x\r\n3,\"\"\"\"\n").unwrap();
        let pieces = csv_ranges(&path, 1).unwrap();
        // Cut after the header's record is whole, and after each record.
        assert_eq!(
            ranges(&pieces),
            [(0, 16, 0, 0), (16, 20, 1, 3), (20, 28, 2, 3)]
        );
    }

    /// Each record of `bytes` with the line it starts on, as the parser reads them.
    fn parsed(bytes: &[u8]) -> Vec<(Vec<Vec<u8>>, u64)> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes);
        let mut out = Vec::new();
        let mut record = csv::ByteRecord::new();
        while reader.read_byte_record(&mut record).unwrap() {
            let line = record.position().unwrap().line();
            out.push((record.iter().map(<[u8]>::to_vec).collect(), line));
        }
        out
    }

    fn field() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            4 => Just("a"),
            2 => Just(","),
            2 => Just("\""),
            1 => Just("\n"),
            1 => Just("\r\n"),
            1 => Just("\u{feff}"),
            1 => Just("é"),
        ];
        prop::collection::vec(piece, 0..4).prop_map(|pieces| pieces.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..Default::default() })]

        /// Whatever the fields and the piece size, the pieces hold every record once, in
        /// order, and place each on the line the whole file has it on.
        #[test]
        fn csv_pieces_hold_every_record_once_in_place(
            rows in proptest::collection::vec(proptest::collection::vec(field(), 1..4), 1..30),
            crlf in proptest::bool::ANY,
            target in 1u64..120,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("in.csv");
            let mut writer = csv::WriterBuilder::new()
                .flexible(true)
                .terminator(if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') })
                .from_path(&path)
                .unwrap();
            writer.write_record(["h1", "h2"]).unwrap();
            for row in &rows {
                writer.write_record(row).unwrap();
            }
            drop(writer);
            let bytes = std::fs::read(&path).unwrap();
            let whole = parsed(&bytes);
            let pieces = csv_ranges(&path, target).unwrap();
            let mut joined = Vec::new();
            let mut next = 0;
            for (i, piece) in ranges(&pieces).into_iter().enumerate() {
                let (start, end, records, lines) = piece;
                proptest::prop_assert_eq!(start, next);
                next = end;
                let mut found = parsed(&bytes[start as usize..end as usize]);
                if i == 0 {
                    // The header row.
                    joined.push(found.remove(0));
                }
                proptest::prop_assert_eq!(records as usize, joined.len() - 1);
                joined.extend(found.into_iter().map(|(fields, line)| (fields, line + lines)));
            }
            proptest::prop_assert_eq!(next, bytes.len() as u64);
            proptest::prop_assert_eq!(joined, whole);
        }
    }

    #[test]
    fn line_cuts_count_blank_lines_as_the_sources_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, "{\"a\":1}\n\n{\"a\":2}\n{\"a\":3}").unwrap();
        let jsonl = line_ranges(&path, 8, true).unwrap();
        assert_eq!(
            ranges(&jsonl),
            [(0, 8, 0, 0), (8, 17, 1, 1), (17, 24, 2, 3)]
        );
        let lines = line_ranges(&path, 8, false).unwrap();
        assert_eq!(
            ranges(&lines),
            [(0, 8, 0, 0), (8, 17, 1, 1), (17, 24, 3, 3)]
        );
    }
}
