//! `vortex serve`: named exports over HTTP, streamed from the first row, and named imports,
//! streamed into a table, that no request can blow up: memory stays flat whatever the size of
//! the export or upload or the number running, and a client that goes away stops the work.

mod body;
mod config;
mod import;
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
    /// Collect each export's rows before writing any (the way that gets pods killed), to
    /// measure against.
    #[arg(long, hide = true)]
    eager: bool,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim_end_matches('s')
        .parse::<f64>()
        .map(Duration::from_secs_f64)
        .map_err(|_| format!("{text:?} is not a number of seconds"))
}

struct Shared {
    db: Database,
    exports: HashMap<String, (config::Export, Arc<Semaphore>)>,
    imports: HashMap<String, (config::Import, Arc<Semaphore>)>,
    /// From `VORTEX_SERVE_TOKEN`; never logged.
    token: Option<String>,
    /// Exports collect their rows first (benchmarks only).
    eager: bool,
    metrics: Metrics,
}

pub(crate) fn run(args: &ServeArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let db = match &args.db {
        Some(url) => Database::open(url)?,
        None => {
            let path = PathBuf::from("data/demo/orders-1000000.db");
            std::fs::create_dir_all("data/demo").context("creating data/demo")?;
            crate::demo::ensure_database(&path, 1_000_000)?;
            Database::open(&format!("sqlite://{}", path.display()))?
        }
    };
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::builtin(),
    };
    let exports = limited(config.exports, |e| (e.name.clone(), e.max_concurrent));
    let imports = limited(config.imports, |i| (i.name.clone(), i.max_concurrent));
    let shared = Arc::new(Shared {
        db,
        exports,
        imports,
        token: std::env::var("VORTEX_SERVE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        metrics: Metrics::default(),
        eager: args.eager,
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_page))
        .route("/exports/{file}", get(export))
        .route("/imports/{name}", post(import::import))
        .with_state(Arc::clone(&shared));
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("listening on {}", args.addr))?;
        let addr = listener.local_addr()?;
        println!(
            "vortex serve: listening on http://{addr} ({} exports, {} imports)",
            shared.exports.len(),
            shared.imports.len()
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = axum::serve(listener, app).with_graceful_shutdown({
            let mut stop = stop_rx.clone();
            async move {
                let _ = stop.changed().await;
            }
        });
        let shutdown = async {
            shutdown_signal().await;
            eprintln!("vortex serve: stopping; running exports have {:?}", args.grace);
            let _ = stop_tx.send(true);
            tokio::time::sleep(args.grace).await;
        };
        tokio::select! {
            served = server => served.context("serving")?,
            () = shutdown => eprintln!("vortex serve: grace period over, cutting the exports still running"),
        }
        Ok::<_, anyhow::Error>(())
    })?;
    // Dropping the runtime aborts whatever still runs.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
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

async fn metrics_page(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
}

/// A JSON error answer.
fn refuse(shared: &Shared, status: StatusCode, error: &str, param: Option<&str>) -> Response {
    shared.metrics.refused.fetch_add(1, Ordering::Relaxed);
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
    let Some(token) = &shared.token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
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
    headers: HeaderMap,
) -> Response {
    shared.metrics.requests.fetch_add(1, Ordering::Relaxed);
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
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));

    let (writer, reader) = tokio::io::duplex(64 * 1024);
    let output = Output::async_writer(writer)
        .name(format!("response to {file}"))
        .compression(if gzip {
            Compression::Gzip
        } else {
            Compression::None
        });
    let counter = Arc::clone(&shared);
    let mut rows = shared.db.query(export.query.as_str(), values);
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
        counter.metrics.rows.fetch_add(1, Ordering::Relaxed);
    });
    let write: body::WriteFuture = match format {
        Served::Csv => Box::pin(rows.write(CsvRecords::new(), output)),
        Served::Jsonl => Box::pin(rows.write(JsonlSink, output)),
        Served::Xlsx => Box::pin(rows.write(XlsxSink::new(), output)),
    };
    let body = ExportBody::new(write, reader, Arc::clone(&shared), permit);
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
