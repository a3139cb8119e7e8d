//! `vortex serve`: named exports over HTTP, streamed from the first row, and named imports,
//! streamed into a table, that no request can blow up: memory stays flat whatever the size of
//! the export or upload or the number running, and a client that goes away stops the work.

mod admission;
mod body;
mod config;
mod import;
mod listen;
mod metrics;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Args;
use tokio::sync::Semaphore;
use vortex_stream::db::Database;
use vortex_stream::io::{Compression, Output};
use vortex_stream::sinks::{CsvRecords, JsonlSink, XlsxSink};

use self::body::ExportBody;
use self::config::Config;
use self::metrics::Metrics;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The database (`sqlite://path`, `postgres://…`); by default the demo's SQLite database,
    /// built on first use.
    #[arg(long)]
    db: Option<String>,
    /// The exports and imports (TOML); by default an `orders` export of the demo database, by
    /// `status`, and an `orders` import.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to listen; loopback by default.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// After ctrl-c or SIGTERM, how long running exports may go on before they are cut.
    #[arg(long, default_value = "10s", value_parser = parse_seconds)]
    grace: Duration,
    /// Connections open at once with the full header timeout; as many again get a second to
    /// send their request, and past that a new connection is closed at once.
    #[arg(long, default_value_t = 1024, value_parser = parse_count)]
    max_connections: usize,
    /// Time a client has to send a request's head (also the longest an idle keep-alive
    /// connection stays open).
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    header_timeout: Duration,
    /// Time a client may take no bytes of a response before it is cut (and the export's
    /// permit and query freed).
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    write_timeout: Duration,
    /// Time an upload may send nothing before it is cut (408, nothing committed).
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    upload_timeout: Duration,
    /// Exports and imports running at once, in all: past it a request is refused (503) at
    /// once. The blocking pool is sized so that all of them at once never take it.
    #[arg(long, default_value_t = 256, value_parser = parse_count)]
    max_running: usize,
    /// Exports and imports one client address may run at once (429 past it).
    #[arg(long, default_value_t = 8, value_parser = parse_count)]
    max_per_client: usize,
    /// The slowest an upload may arrive, in bytes a second on average, judged once the upload
    /// timeout has passed: slower is cut (408), so that a client sending a byte a second
    /// cannot hold an import's permit.
    #[arg(long, default_value_t = 1024)]
    min_upload_rate: u64,
    /// Collect each export's rows before writing any (the way that gets pods killed), to
    /// measure against.
    #[arg(long, hide = true)]
    eager: bool,
}

/// A count of at least one.
fn parse_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?}: give a whole number of at least 1")),
    }
}

/// A timeout: more than nothing.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    parse_seconds(text).and_then(|d| {
        (!d.is_zero())
            .then_some(d)
            .ok_or_else(|| format!("{text:?}: give more than 0 seconds"))
    })
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds = text
        .trim_end_matches('s')
        .parse::<f64>()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    // NaN, negatives and the huge would panic in `Duration`, or never end.
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{text:?}: give 0 to 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

struct Shared {
    db: Database,
    exports: HashMap<String, (config::Export, Arc<Semaphore>)>,
    imports: HashMap<String, (config::Import, Arc<Semaphore>)>,
    /// From `VORTEX_SERVE_TOKEN`; never logged.
    token: Option<String>,
    /// With `VORTEX_SERVE_METRICS_TOKEN` set, `/metrics` needs it as a bearer token.
    metrics_token: Option<String>,
    /// Exports collect their rows first (benchmarks only).
    eager: bool,
    /// How slow an upload may be.
    uploads: import::UploadLimits,
    /// How many exports and imports may run, in all and for one client.
    admission: admission::Admission,
    /// The number the next request gets in the log.
    next_request: std::sync::atomic::AtomicU64,
    metrics: Metrics,
}

/// The name of the runtime's worker threads: the accept loop, every request's async work.
const WORKER: &str = "vortex-serve";
/// The name of its blocking threads: what exports and imports decode, encode and step.
const BULK: &str = "vortex-bulk";

/// The nice value of the blocking threads: the kernel gives the workers (nice 0) about nine
/// times their share of the cores when both want them, so the accept loop and `/healthz` are
/// answered at once however many exports run, and the exports still take every idle cycle.
const BULK_NICE: i32 = 10;

/// Run as each runtime thread starts: lowers a blocking thread's priority (Linux applies
/// `setpriority` to the one thread named). A failure leaves the thread as it was.
fn lower_bulk_priority() {
    if std::thread::current().name() == Some(BULK) {
        let thread = rustix::thread::gettid();
        if let Err(err) = rustix::process::setpriority_process(Some(thread), BULK_NICE) {
            tracing::debug!(%err, "could not lower a blocking thread's priority");
        }
    }
}

pub(crate) fn run(args: &ServeArgs) -> Result<()> {
    // Sources and sinks hold a blocking thread only while a batch is worked on, except a
    // SQLite query (a thread while it is open) and an import's upload (a thread while its job
    // waits for the client's bytes, bounded by the upload limits): room for one of those per
    // running request, the batch jobs of as many again, and some to spare, so no request
    // waits for a thread.
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let spawned = std::sync::atomic::AtomicUsize::new(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(workers)
        .max_blocking_threads(args.max_running.saturating_mul(2).saturating_add(64))
        // The runtime names its threads as it spawns them, its workers first, as it is built.
        .thread_name_fn(move || {
            if spawned.fetch_add(1, Ordering::Relaxed) < workers {
                WORKER.to_owned()
            } else {
                BULK.to_owned()
            }
        })
        .on_thread_start(lower_bulk_priority)
        .build()
        .context("starting the runtime")?;
    // The configuration first: a mistake in it is said before the demo database is built.
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::builtin(),
    };
    let db = match &args.db {
        Some(url) => Database::open(url)?,
        None => {
            let path = PathBuf::from("data/demo/orders-1000000.db");
            std::fs::create_dir_all("data/demo").context("creating data/demo")?;
            crate::demo::ensure_database(&path, 1_000_000)?;
            Database::open(&format!("sqlite://{}", path.display()))?
        }
    }
    // Every running export may have its SQLite query open (the pool has room for them all).
    .max_open_queries(args.max_running, vortex_stream::db::DEFAULT_OPEN_QUERY_WAIT);
    let exports = limited(config.exports, |e| (e.name.clone(), e.max_concurrent));
    let imports = limited(config.imports, |i| (i.name.clone(), i.max_concurrent));
    let shared = Arc::new(Shared {
        db,
        exports,
        imports,
        token: std::env::var("VORTEX_SERVE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        metrics_token: std::env::var("VORTEX_SERVE_METRICS_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        metrics: Metrics::default(),
        eager: args.eager,
        admission: admission::Admission::new(args.max_running, args.max_per_client),
        next_request: std::sync::atomic::AtomicU64::new(1),
        uploads: import::UploadLimits {
            stall: args.upload_timeout,
            min_rate: args.min_upload_rate,
        },
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_page))
        .route("/exports/{file}", get(export))
        .route("/imports/{name}", post(import::import))
        .with_state(Arc::clone(&shared));
    runtime.block_on(async {
        let listener =
            listen::bind(args.addr).with_context(|| format!("listening on {}", args.addr))?;
        let addr = listener.local_addr()?;
        println!(
            "vortex serve: listening on http://{addr} ({} exports, {} imports)",
            shared.exports.len(),
            shared.imports.len()
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let limits = listen::Limits {
            max_connections: args.max_connections,
            header_timeout: args.header_timeout,
            write_timeout: args.write_timeout,
        };
        let server = listen::serve(listener, app, limits, stop_rx, args.grace);
        let signal = async {
            shutdown_signal().await;
            tracing::info!(grace = ?args.grace, "stopping: running exports may finish");
            let _ = stop_tx.send(true);
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = server => {}
            () = signal => {}
        }
        Ok::<_, anyhow::Error>(())
    })?;
    // Dropping the runtime aborts whatever still runs.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// The extension an export is served with, for the log.
fn extension_name(format: Served) -> &'static str {
    match format {
        Served::Csv => "csv",
        Served::Jsonl => "jsonl",
        Served::Xlsx => "xlsx",
    }
}

/// Whether an `Accept-Encoding` value accepts gzip: listed as `gzip` (or `x-gzip`, or `*`)
/// with a quality above zero (`gzip;q=0` refuses it).
fn accepts_gzip(value: &str) -> bool {
    let quality = |coding: &str| -> Option<f32> {
        value.split(',').find_map(|entry| {
            let mut parts = entry.split(';');
            let name = parts.next()?.trim();
            if !name.eq_ignore_ascii_case(coding) {
                return None;
            }
            let q = parts
                .filter_map(|p| {
                    let p = p.trim();
                    p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="))
                })
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            Some(q)
        })
    };
    match quality("gzip").or_else(|| quality("x-gzip")) {
        Some(q) => q > 0.0,
        None => quality("*").is_some_and(|q| q > 0.0),
    }
}

/// Named items, each with a semaphore of its own concurrency limit: the requests of one
/// export or import running at once.
fn limited<T>(
    items: Vec<T>,
    name_and_limit: impl Fn(&T) -> (String, usize),
) -> HashMap<String, (T, Arc<Semaphore>)> {
    items
        .into_iter()
        .map(|item| {
            let (name, limit) = name_and_limit(&item);
            (name, (item, Arc::new(Semaphore::new(limit))))
        })
        .collect()
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn metrics_page(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !bearer_matches(shared.metrics_token.as_deref(), &headers) {
        let status = StatusCode::UNAUTHORIZED;
        return refuse(&shared, status, "a valid bearer token is required", None);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

/// A JSON error answer.
fn refuse(shared: &Shared, status: StatusCode, error: &str, param: Option<&str>) -> Response {
    shared.metrics.refused.inc();
    tracing::info!(status = status.as_u16(), error, "request refused");
    let body = match param {
        Some(param) => serde_json::json!({ "error": error, "param": param }),
        None => serde_json::json!({ "error": error }),
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    bearer_matches(shared.token.as_deref(), headers)
}

/// Whether the request carries `token` as a bearer token (any request does, without a token).
/// The scheme is case-insensitive (RFC 9110).
fn bearer_matches(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, given)| given.trim());
    // Compared in full whatever the input, so the time taken does not tell how much matched.
    given.is_some_and(|given| {
        given.len() == token.len()
            && given
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

/// The formats an export is served in.
#[derive(Clone, Copy, Debug)]
enum Served {
    Csv,
    Jsonl,
    Xlsx,
}

async fn export(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    axum::Extension(admission::ClientAddr(client)): axum::Extension<admission::ClientAddr>,
    headers: HeaderMap,
) -> Response {
    shared.metrics.requests.inc();
    if !authorized(&shared, &headers) {
        return refuse(
            &shared,
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required",
            None,
        );
    }
    let Some((name, extension)) = file.rsplit_once('.') else {
        return refuse(
            &shared,
            StatusCode::NOT_FOUND,
            "no such export: name it as NAME.csv or NAME.jsonl",
            None,
        );
    };
    let Some((export, permits)) = shared.exports.get(name) else {
        return refuse(
            &shared,
            StatusCode::NOT_FOUND,
            &format!("no such export: {name}"),
            None,
        );
    };
    let (content_type, format) = match extension {
        "csv" => ("text/csv; charset=utf-8", Served::Csv),
        "jsonl" => ("application/x-ndjson", Served::Jsonl),
        "xlsx" => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Served::Xlsx,
        ),
        _ => {
            let message = format!("{name} is served as .csv, .jsonl or .xlsx");
            return refuse(&shared, StatusCode::NOT_FOUND, &message, None);
        }
    };
    let values = match export.bind(&params) {
        Ok(values) => values,
        Err(bad) => {
            let message = format!("parameter {}: {}", bad.param, bad.problem);
            return refuse(&shared, StatusCode::BAD_REQUEST, &message, Some(&bad.param));
        }
    };
    let admitted = match shared.admission.admit(client) {
        Ok(admitted) => admitted,
        Err((status, message)) => return refuse(&shared, status, &message, None),
    };
    let Ok(permit) = Arc::clone(permits).try_acquire_owned() else {
        return refuse(
            &shared,
            StatusCode::TOO_MANY_REQUESTS,
            &format!("{name}: too many exports running"),
            None,
        );
    };
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);

    let (writer, reader) = tokio::io::duplex(64 * 1024);
    let output = Output::async_writer(writer)
        .name(format!("response to {file}"))
        .compression(if gzip {
            Compression::Gzip
        } else {
            Compression::None
        });
    let counter = Arc::clone(&shared);
    let exported = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let log = body::ExportLog {
        request: shared.next_request.fetch_add(1, Ordering::Relaxed),
        export: name.to_owned(),
        format: extension_name(format),
        rows: Arc::clone(&exported),
    };
    let db = match export.statement_timeout {
        Some(seconds) => shared
            .db
            .clone()
            .statement_timeout(Duration::from_secs_f64(seconds)),
        None => shared.db.clone(),
    };
    let mut rows = db.query(export.query.as_str(), values);
    if shared.eager {
        rows = match rows.collect::<Vec<_>>().await {
            Ok(all) => vortex_stream::Pipeline::from_iter(all).boxed(),
            Err(err) => {
                let status = StatusCode::INTERNAL_SERVER_ERROR;
                return refuse(&shared, status, &err.to_string(), None);
            }
        };
    }
    let rows = rows.inspect(move |_| {
        counter.metrics.rows.inc();
        exported.fetch_add(1, Ordering::Relaxed);
    });
    let write: body::WriteFuture = match format {
        Served::Csv => Box::pin(rows.write(CsvRecords::new(), output)),
        Served::Jsonl => Box::pin(rows.write(JsonlSink, output)),
        Served::Xlsx => Box::pin(rows.write(XlsxSink::new(), output)),
    };
    let body = ExportBody::new(write, reader, Arc::clone(&shared), (permit, admitted), log);
    let mut response = axum::body::Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(disposition) =
        HeaderValue::from_str(&format!("attachment; filename=\"{name}.{extension}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::http::{header, HeaderMap, HeaderValue};

    #[test]
    fn gzip_is_accepted_only_with_a_quality_above_zero() {
        for (value, gzip) in [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("GZIP", true),
            ("gzip;q=0", false),
            ("gzip; q=0.0, identity", false),
            ("identity", false),
            ("*", true),
            ("*;q=0", false),
            ("gzip;q=0, *", false),
            ("br, x-gzip", true),
        ] {
            assert_eq!(super::accepts_gzip(value), gzip, "{value}");
        }
    }

    #[test]
    fn grace_periods_must_be_sane_numbers() {
        assert!(super::parse_seconds("10s").is_ok());
        assert!(super::parse_seconds("0.5").is_ok());
        for bad in ["-1", "nan", "inf", "1e30", "x"] {
            assert!(super::parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            headers
        };
        assert!(super::bearer_matches(Some("t0k"), &with("Bearer t0k")));
        assert!(super::bearer_matches(Some("t0k"), &with("bearer t0k")));
        assert!(super::bearer_matches(Some("t0k"), &with("BEARER  t0k")));
        assert!(!super::bearer_matches(Some("t0k"), &with("Basic t0k")));
        assert!(!super::bearer_matches(Some("t0k"), &with("Bearer t0x")));
        assert!(!super::bearer_matches(Some("t0k"), &HeaderMap::new()));
        assert!(super::bearer_matches(None, &HeaderMap::new()));
    }
}
