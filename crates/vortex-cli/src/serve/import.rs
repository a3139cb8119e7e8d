//! `POST /imports/{name}`: a CSV or JSON Lines body (plain, or a part of a multipart form)
//! streamed into a table in batches, each row checked against the import's columns, answered
//! with a JSON report.
//!
//! The body is never held whole: it is read as the load takes rows, and a body over the
//! import's size limit is refused with 413 (at once when its `Content-Length` says so, or when
//! the limit is crossed). Every import runs in one transaction ([`Table::all_or_nothing`]):
//! the table gets the rows the policy accepts, or nothing when the body breaks off, is too
//! large, or the database refuses a row.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{future, stream, StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use tokio_util::io::StreamReader;
use vortex_stream::db::{Table, Value};
use vortex_stream::io::Input;
use vortex_stream::sources::{CsvSource, Headers, LinesSource};
use vortex_stream::{Error, ErrorKind, Pipeline};

use crate::record::Record;

use super::config::{Import, OnBadRow};
use super::{authorized, refuse, Shared};

/// How slow an upload may be: it is cut once nothing arrived for `stall`, or once, from then
/// on (after `stall` has passed), it averages under `min_rate` bytes a second.
#[derive(Clone, Copy, Debug)]
pub(super) struct UploadLimits {
    pub(super) stall: std::time::Duration,
    pub(super) min_rate: u64,
}

/// The body's chunks as they arrive, cut with a `TimedOut` error (`slow` set) when the upload
/// is slower than `limits` allow.
fn paced(
    body: Body,
    limits: UploadLimits,
    slow: Arc<AtomicBool>,
) -> impl futures_core::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    let started = tokio::time::Instant::now();
    let chunks = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .boxed();
    stream::unfold((chunks, 0u64, false), move |(mut chunks, seen, done)| {
        let slow = Arc::clone(&slow);
        async move {
            if done {
                return None;
            }
            let cut = |why: String| {
                slow.store(true, Ordering::Relaxed);
                Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why))
            };
            let item = match tokio::time::timeout(limits.stall, chunks.next()).await {
                Err(_) => cut(format!("the upload sent nothing for {:?}", limits.stall)),
                Ok(None) => return None,
                Ok(Some(item)) => item,
            };
            let seen = seen + item.as_ref().map_or(0, |chunk| chunk.len() as u64);
            let elapsed = started.elapsed();
            let item = match item {
                Ok(_)
                    if elapsed > limits.stall
                        && (seen as f64) < limits.min_rate as f64 * elapsed.as_secs_f64() =>
                {
                    cut(format!(
                        "the upload arrives at {:.0} bytes a second, under the {} allowed",
                        seen as f64 / elapsed.as_secs_f64(),
                        limits.min_rate
                    ))
                }
                other => other,
            };
            let done = item.is_err();
            Some((item, (chunks, seen, done)))
        }
    })
}

/// The answer to an import.
#[derive(Debug, Default, Serialize)]
struct Report {
    import: String,
    /// Whether the accepted rows are in the table.
    committed: bool,
    rows_accepted: u64,
    rows_rejected: u64,
    /// The first rejected rows (up to the import's `report_limit`), with their line numbers.
    rejected: Vec<Rejected>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Rejected {
    line: Option<u64>,
    reason: String,
}

/// One record of the body: its line, and its values or why it was rejected.
type Parsed = (Option<u64>, Result<Vec<Value>, String>);

#[derive(Clone, Copy)]
enum BodyFormat {
    Csv,
    Jsonl,
}

pub(super) async fn import(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    axum::Extension(super::admission::ClientAddr(client)): axum::Extension<
        super::admission::ClientAddr,
    >,
    headers: HeaderMap,
    body: Body,
) -> Response {
    shared.metrics.requests.inc();
    if !authorized(&shared, &headers) {
        let status = StatusCode::UNAUTHORIZED;
        return refuse(&shared, status, "a valid bearer token is required", None);
    }
    let Some((import, permits)) = shared.imports.get(&name) else {
        let message = format!("no such import: {name}");
        return refuse(&shared, StatusCode::NOT_FOUND, &message, None);
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let essence = content_type.split(';').next().map_or("", str::trim);
    let plain = body_format(essence);
    if plain.is_none() && essence != "multipart/form-data" {
        let status = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        let message = "send text/csv (with a header row), application/x-ndjson, or either as a part of multipart/form-data";
        return refuse(&shared, status, message, None);
    }
    let limit = import.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        let message = format!("the body is over this import's limit of {limit} bytes");
        return refuse(&shared, StatusCode::PAYLOAD_TOO_LARGE, &message, None);
    }
    let _admitted = match shared.admission.admit(client) {
        Ok(admitted) => admitted,
        Err((status, message)) => return refuse(&shared, status, &message, None),
    };
    let Ok(_permit) = Arc::clone(permits).try_acquire_owned() else {
        let message = format!("{name}: too many imports running");
        return refuse(&shared, StatusCode::TOO_MANY_REQUESTS, &message, None);
    };

    // The body as it arrives, cut off with an error past the limit: every byte counts, those
    // of the form's other parts too.
    let too_large = Arc::new(AtomicBool::new(false));
    let too_slow = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&too_large);
    let mut seen = 0u64;
    let received = paced(body, shared.uploads, Arc::clone(&too_slow))
        .map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len() as u64;
            if seen > limit {
                flag.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other(format!(
                    "the body is over this import's limit of {limit} bytes"
                )));
            }
            Ok(chunk)
        })
        .boxed();
    // The upload: the body, or its first CSV or JSON Lines part.
    let (format, upload) = match plain {
        Some(format) => (format, received),
        None => match first_part(received, &content_type).await {
            Ok(part) => part,
            Err(message) if too_large.load(Ordering::Relaxed) => {
                return refuse(&shared, StatusCode::PAYLOAD_TOO_LARGE, &message, None)
            }
            Err(message) if too_slow.load(Ordering::Relaxed) => {
                return refuse(&shared, StatusCode::REQUEST_TIMEOUT, &message, None)
            }
            Err(message) => return refuse(&shared, StatusCode::BAD_REQUEST, &message, None),
        },
    };
    // The limit holds for what the upload inflates to as well (gzip and zstd bodies are
    // decompressed by the source): a small body must not become gigabytes of rows.
    let input = Input::async_reader(StreamReader::new(upload))
        .name(format!("POST /imports/{name}"))
        .limit(limit);
    let records = match format {
        BodyFormat::Csv => csv_rows(input, import),
        BodyFormat::Jsonl => jsonl_rows(input, import),
    };

    let report = Arc::new(Mutex::new(Report {
        import: name.clone(),
        ..Report::default()
    }));
    let rejecting = Arc::new(AtomicBool::new(false));
    let rows = tally(records, import, &report, &rejecting);
    // Under `on_error = "reject"`, a rejected row makes the load fail at the end of the body,
    // which rolls back every batch.
    let verdict = {
        let rejecting = Arc::clone(&rejecting);
        stream::once(future::lazy(move |_| {
            rejecting.load(Ordering::Relaxed).then(|| {
                Err(Error::new(ErrorKind::Validation, "import")
                    .with_message("rows were rejected, so nothing was committed"))
            })
        }))
        .filter_map(future::ready)
    };
    let table = Table::new(&import.table, import.columns.iter().map(|c| c.name.clone()))
        .batch(import.batch)
        .all_or_nothing();
    let loaded = Pipeline::from_stream(rows.chain(verdict))
        .load(&shared.db, table)
        .await;

    let mut report = std::mem::take(&mut *report.lock().unwrap_or_else(|e| e.into_inner()));
    shared.metrics.imported_rows.inc_by(report.rows_accepted);
    shared.metrics.rejected_rows.inc_by(report.rows_rejected);
    let status = match loaded {
        Ok(_) => {
            report.committed = true;
            StatusCode::OK
        }
        Err(err) => {
            shared.metrics.failed_imports.inc();
            // A database's errors name the row and what it refused, never the server.
            report.error = Some(if err.kind() == ErrorKind::Database {
                err.message().to_owned()
            } else {
                err.to_string()
            });
            if too_slow.load(Ordering::Relaxed) {
                StatusCode::REQUEST_TIMEOUT
            } else if too_large.load(Ordering::Relaxed) || err.kind() == ErrorKind::Capacity {
                StatusCode::PAYLOAD_TOO_LARGE
            } else if rejecting.load(Ordering::Relaxed)
                || matches!(
                    err.kind(),
                    ErrorKind::Database | ErrorKind::Validation | ErrorKind::Decode
                )
            {
                StatusCode::UNPROCESSABLE_ENTITY
            } else if err.kind() == ErrorKind::Io {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    };
    tracing::info!(
        request = shared.next_request.fetch_add(1, Ordering::Relaxed),
        import = name,
        status = status.as_u16(),
        rows_accepted = report.rows_accepted,
        rows_rejected = report.rows_rejected,
        committed = report.committed,
        error = report.error.as_deref(),
        "import ended"
    );
    let body = serde_json::to_string(&report).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

type Upload = futures_core::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>;

fn body_format(essence: &str) -> Option<BodyFormat> {
    match essence {
        "text/csv" => Some(BodyFormat::Csv),
        "application/x-ndjson" | "application/jsonl" | "application/json-lines" => {
            Some(BodyFormat::Jsonl)
        }
        _ => None,
    }
}

/// The first part of a `multipart/form-data` body that is CSV or JSON Lines, by its content
/// type or its file name, streamed as it arrives.
async fn first_part(body: Upload, content_type: &str) -> Result<(BodyFormat, Upload), String> {
    let boundary = multer::parse_boundary(content_type).map_err(|e| e.to_string())?;
    let mut form = multer::Multipart::new(body, boundary);
    while let Some(part) = form.next_field().await.map_err(|e| e.to_string())? {
        let by_type = part
            .content_type()
            .and_then(|m| body_format(m.essence_str()));
        let by_name = part.file_name().and_then(|name| {
            let name = name.to_ascii_lowercase();
            if name.ends_with(".csv") {
                Some(BodyFormat::Csv)
            } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
                Some(BodyFormat::Jsonl)
            } else {
                None
            }
        });
        if let Some(format) = by_type.or(by_name) {
            return Ok((format, part.map_err(std::io::Error::other).boxed()));
        }
    }
    Err("the form has no CSV or JSON Lines part (a text/csv or application/x-ndjson part, or a .csv or .jsonl file)".to_owned())
}

/// Counts accepted and rejected rows into `report`, keeps the first rejections, and passes on
/// the accepted rows' values (none once rejecting under `on_error = "reject"`). Errors that
/// are not about one row (the body broke off or is too large) pass on and end the load.
fn tally(
    records: impl futures_core::Stream<Item = vortex_stream::Result<Parsed>> + Send + 'static,
    import: &Import,
    report: &Arc<Mutex<Report>>,
    rejecting: &Arc<AtomicBool>,
) -> impl futures_core::Stream<Item = vortex_stream::Result<Vec<Value>>> + Send + 'static {
    let report = Arc::clone(report);
    let rejecting = Arc::clone(rejecting);
    let limit = import.report_limit;
    let policy = import.on_error;
    records.filter_map(move |item| {
        let mut report = report.lock().unwrap_or_else(|e| e.into_inner());
        let passed = match item {
            Ok((_, Ok(values))) => {
                report.rows_accepted += 1;
                (!rejecting.load(Ordering::Relaxed)).then_some(Ok(values))
            }
            Ok((line, Err(reason))) => {
                report.rows_rejected += 1;
                if report.rejected.len() < limit {
                    report.rejected.push(Rejected { line, reason });
                }
                if policy == OnBadRow::Reject {
                    rejecting.store(true, Ordering::Relaxed);
                }
                None
            }
            Err(err) => Some(Err(err)),
        };
        future::ready(passed)
    })
}

/// A malformed record is the row's problem, named with its line; anything else ends the
/// import.
fn bad_record(err: Error) -> vortex_stream::Result<Option<Parsed>> {
    if err.kind() == ErrorKind::Decode {
        let line = err.position().and_then(vortex_stream::Position::line);
        Ok(Some((line, Err(err.message().to_string()))))
    } else {
        Err(err)
    }
}

/// Refuses a header row (or JSON keys) naming a field the import has no column for, or one
/// field twice: its values would be dropped without a word.
fn check_names<'a>(
    import: &Import,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        if !import.columns.iter().any(|c| c.name == name) {
            let columns: Vec<&str> = import.columns.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "unexpected field `{name}`: this import's columns are {}",
                columns.join(", ")
            ));
        }
        if seen.contains(&name) {
            return Err(format!("the field `{name}` is given twice"));
        }
        seen.push(name);
    }
    Ok(())
}

/// CSV with a header row: fields matched to the import's columns by name. A header naming a
/// field that is no column ends the import (nothing is committed); a row with more or fewer
/// fields than the header is a rejected row.
fn csv_rows(
    input: Input,
    import: &Import,
) -> futures_core::stream::BoxStream<'static, vortex_stream::Result<Parsed>> {
    let import = import.clone();
    let mut header: Option<Vec<String>> = None;
    CsvSource::new(input)
        .headers(Headers::None)
        .flexible(true)
        .records()
        .into_inner()
        .map(move |item| {
            let record = match item {
                Ok(record) => record,
                // A header row that cannot be read names no field: the upload is refused.
                Err(err) if header.is_none() => return Err(err.fatal()),
                Err(err) => return bad_record(err),
            };
            let Some(names) = &header else {
                if let Err(message) = check_names(&import, record.iter()) {
                    return Err(Error::new(ErrorKind::Validation, "import: header row")
                        .with_message(message)
                        .fatal());
                }
                header = Some(record.iter().map(str::to_owned).collect());
                return Ok(None);
            };
            let line = record.position().map(csv::Position::line);
            if record.len() != names.len() {
                let reason = format!(
                    "the row has {} fields, the header {}",
                    record.len(),
                    names.len()
                );
                return Ok(Some((line, Err(reason))));
            }
            let values = import.row(|column| {
                names
                    .iter()
                    .position(|name| name == column)
                    .and_then(|i| record.get(i))
                    .map(str::to_owned)
            });
            Ok(Some((line, values)))
        })
        .try_filter_map(|parsed| future::ready(Ok(parsed)))
        .boxed()
}

/// JSON Lines of objects: keys matched to the import's columns; empty lines skipped. Values
/// keep their exact text (a number is never rounded on its way to the column); a key that is
/// no column rejects its row.
fn jsonl_rows(
    input: Input,
    import: &Import,
) -> futures_core::stream::BoxStream<'static, vortex_stream::Result<Parsed>> {
    let import = import.clone();
    let mut line = 0u64;
    LinesSource::new(input)
        .lines()
        .into_inner()
        .map(move |item| {
            line += 1;
            let text = match item {
                Ok(text) => text,
                Err(err) => return bad_record(err),
            };
            if text.trim().is_empty() {
                return Ok(None);
            }
            let record = serde_json::from_str(&text)
                .map_err(|e| e.to_string())
                .and_then(Record::from_json);
            let fields = match record {
                Ok(Record::Fields(fields)) => fields,
                Ok(other) => {
                    let reason = format!("not a JSON object: the line holds {}", other.kind());
                    return Ok(Some((Some(line), Err(reason))));
                }
                Err(e) => return Ok(Some((Some(line), Err(format!("not a JSON object: {e}"))))),
            };
            if let Err(reason) = check_names(&import, fields.iter().map(|(name, _)| &**name)) {
                return Ok(Some((Some(line), Err(reason))));
            }
            let values = import.row(|column| {
                fields
                    .iter()
                    .find(|(name, _)| &**name == column)
                    .map(|(_, value)| value.text().into_owned())
            });
            Ok(Some((Some(line), values)))
        })
        .try_filter_map(|parsed| future::ready(Ok(parsed)))
        .boxed()
}
