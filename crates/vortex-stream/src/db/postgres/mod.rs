//! PostgreSQL through tokio-postgres: a query reads from a portal in growing batches inside a
//! read-only transaction, so the server computes rows only as the pipeline pulls them; a load
//! streams each batch through `COPY FROM STDIN`, or sends it as multi-row `INSERT`s
//! (`load`); values cross in PostgreSQL's binary format (`codec`).

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures_core::stream::BoxStream;
use futures_util::StreamExt;
use tokio::task::JoinSet;
use tokio_postgres::types::ToSql;
use tokio_postgres::{CancelToken, Client, NoTls};

use super::{db_error, fetch_sizes, CopyFormat, Query, Row, Value, FIRST_FETCH};
use crate::sources::FlattenBatches;
use crate::{Error, Pipeline, Position, Result};

mod codec;
mod load;

use codec::PgValue;
pub(super) use load::load;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The fetches from a portal double up to this many rows (8 + 16 + … + 1024: 2040 rows in
/// all); then the rest of the portal streams. Fetching in batches lets a consumer that stops
/// early cost the server nothing more, but each fetch is a round trip during which either the
/// server or the pipeline waits (measured: 16,384-row fetches to the end made a 1M-row export
/// 1.75x the driver's own streaming query).
const STREAM_AFTER: usize = 1024;

/// The error for a failure reported by tokio-postgres: its message carries the server's own
/// message, detail and hint (tokio-postgres's display says only "db error").
fn pg_error(operation: &'static str, name: &Arc<str>, e: tokio_postgres::Error) -> Error {
    let message = match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} ({})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                let _ = write!(text, "; {detail}");
            }
            if let Some(hint) = db.hint() {
                let _ = write!(text, "; hint: {hint}");
            }
            text
        }
        None => match e.source() {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    };
    db_error(operation, name, e).with_message(message)
}

/// A connection, and the task driving it: dropping the set aborts the task and closes the
/// socket.
async fn connect(url: &str, name: &Arc<str>) -> Result<(Client, JoinSet<()>)> {
    let timeout = url
        .parse::<tokio_postgres::Config>()
        .ok()
        .and_then(|config| config.get_connect_timeout().copied())
        .unwrap_or(super::CONNECT_TIMEOUT);
    let connecting = tokio_postgres::connect(url, NoTls);
    let (client, connection) = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| super::connect_timed_out("postgres: connect", name, timeout))?
        .map_err(|e| pg_error("postgres: connect", name, e))?;
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let _ = connection.await;
    });
    Ok((client, tasks))
}

/// Asks the server to cancel the running statement if dropped while armed: a pipeline dropped
/// in the middle of a fetch (a long sort, a slow scan) stops the work on the server at once
/// instead of when the server next writes to the closed socket.
struct CancelOnDrop {
    token: CancelToken,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let token = self.token.clone();
            // Detached on purpose: the request must outlive the dropped pipeline, and it is
            // one short connection that ends by itself.
            drop(runtime.spawn(async move {
                let _ = token.cancel_query(NoTls).await;
            }));
        }
    }
}

/// Rows cross from the query to the pipeline a batch at a time (each fetch, or whatever the
/// socket has ready while streaming, up to this many): one hand-off per row cost more than
/// decoding it.
const READY_CHUNK: usize = 256;

pub(super) fn query(url: String, query: Query) -> Pipeline<BoxStream<'static, Result<Row>>> {
    let span = tracing::debug_span!("vortex.query", db = %query.name);
    let batches = Pipeline::generate(move |mut y| {
        tracing::Instrument::instrument(
            async move {
                let name = Arc::clone(&query.name);
                let (mut client, _connection) = connect(&url, &name).await?;
                let mut cancel = CancelOnDrop {
                    token: client.cancel_token(),
                    armed: false,
                };
                let name = &name;
                let failed = |operation: &'static str| move |e| pg_error(operation, name, e);
                if let Some(timeout) = query.statement_timeout {
                    let ms = timeout.as_millis().max(1);
                    client
                        .batch_execute(&format!("SET statement_timeout = {ms}"))
                        .await
                        .map_err(failed("postgres: statement timeout"))?;
                }
                let tx = client
                    .build_transaction()
                    .read_only(true)
                    .start()
                    .await
                    .map_err(failed("postgres: begin"))?;
                let statement = tx
                    .prepare(&query.sql)
                    .await
                    .map_err(failed("postgres: prepare"))?;
                let columns: Arc<[String]> = statement
                    .columns()
                    .iter()
                    .map(|c| c.name().to_owned())
                    .collect();
                let params: Vec<&(dyn ToSql + Sync)> = query
                    .params
                    .iter()
                    .map(|p| p as &(dyn ToSql + Sync))
                    .collect();
                cancel.armed = true;
                let portal = tx
                    .bind(&statement, &params)
                    .await
                    .map_err(failed("postgres: query"))?;
                let mut sizes = fetch_sizes(usize::MAX);
                let mut size = sizes.next().unwrap_or(FIRST_FETCH);
                let mut index = 0u64;
                let fetch_error = |index: u64| {
                    move |e| {
                        failed("postgres: fetch")(e)
                            .or_position(|| Position::new().with_record(index))
                    }
                };
                loop {
                    if size > STREAM_AFTER {
                        // A consumer this far in reads the whole result, most likely: the rest of the
                        // portal streams, so the server produces rows while the pipeline processes
                        // them. The driver reads the socket only as rows are taken, and TCP holds the
                        // server back.
                        let rows = tx
                            .query_portal_raw(&portal, 0)
                            .await
                            .map_err(failed("postgres: fetch"))?;
                        let mut chunks = pin!(rows.ready_chunks(READY_CHUNK));
                        while let Some(chunk) = chunks.next().await {
                            let mut batch = Vec::with_capacity(chunk.len());
                            let mut failure = None;
                            for row in chunk {
                                match row {
                                    Ok(row) => {
                                        batch.push(convert(&row, &columns, index, &query.name));
                                        index += 1;
                                    }
                                    Err(e) => {
                                        failure = Some(fetch_error(index)(e));
                                        break;
                                    }
                                }
                            }
                            query
                                .fetched
                                .fetch_add(batch.len() as u64, Ordering::Relaxed);
                            y.emit(batch).await;
                            if let Some(err) = failure {
                                return Err(err);
                            }
                        }
                        break;
                    }
                    let rows = tx
                        .query_portal(&portal, i32::try_from(size).unwrap_or(i32::MAX))
                        .await
                        .map_err(fetch_error(index))?;
                    let fetched = rows.len();
                    query.fetched.fetch_add(fetched as u64, Ordering::Relaxed);
                    cancel.armed = false;
                    let batch = rows
                        .iter()
                        .map(|row| {
                            let item = convert(row, &columns, index, &query.name);
                            index += 1;
                            item
                        })
                        .collect();
                    y.emit(batch).await;
                    if fetched < size {
                        break;
                    }
                    size = sizes.next().unwrap_or(size);
                    cancel.armed = true;
                }
                cancel.armed = false;
                tracing::debug!(rows = index, "query ended");
                Ok(())
            },
            span,
        )
    });
    Pipeline::new(FlattenBatches::new(batches.into_inner())).boxed()
}

/// The bytes of `COPY (sql) TO STDOUT`, as the server sends them (a `CopyData` message, a
/// row, at a time); the read-only work stops on the server when the pipeline is dropped.
pub(super) fn copy_out(
    url: String,
    sql: String,
    format: CopyFormat,
    name: Arc<str>,
) -> Pipeline<BoxStream<'static, Result<Bytes>>> {
    Pipeline::generate(move |mut y| async move {
        let (client, _connection) = connect(&url, &name).await?;
        let mut cancel = CancelOnDrop {
            token: client.cancel_token(),
            armed: true,
        };
        let options = match format {
            CopyFormat::Csv { header: true } => "FORMAT csv, HEADER true",
            CopyFormat::Csv { header: false } => "FORMAT csv",
            CopyFormat::Text => "FORMAT text",
            CopyFormat::Binary => "FORMAT binary",
        };
        let statement = format!("COPY ({sql}) TO STDOUT WITH ({options})");
        let stream = client
            .copy_out(statement.as_str())
            .await
            .map_err(|e| pg_error("postgres: copy out", &name, e))?;
        let mut stream = pin!(stream);
        let mut offset = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                pg_error("postgres: copy out", &name, e).or_position(|| {
                    Position::new()
                        .with_source(Arc::clone(&name))
                        .with_byte(offset)
                })
            })?;
            offset += chunk.len() as u64;
            y.emit(chunk).await;
        }
        cancel.armed = false;
        Ok(())
    })
    .boxed()
}

fn convert(
    row: &tokio_postgres::Row,
    columns: &Arc<[String]>,
    index: u64,
    name: &Arc<str>,
) -> Result<Row> {
    let mut values = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        match row.try_get::<_, PgValue>(i) {
            Ok(PgValue(value)) => values.push(value),
            Err(e) => {
                let detail = e
                    .source()
                    .map_or_else(|| e.to_string(), ToString::to_string);
                return Err(
                    super::column_error("postgres: read", name, index, column, detail)
                        .with_source(e),
                );
            }
        }
    }
    Ok(Row::new(Arc::clone(columns), values, index))
}

pub(super) async fn execute(
    url: &str,
    sql: &str,
    params: &[Value],
    name: &Arc<str>,
) -> Result<u64> {
    let (client, _connection) = connect(url, name).await?;
    run(&client, sql, params, name).await
}

/// Runs a statement on `client`: several at once if there are no parameters.
async fn run(client: &Client, sql: &str, params: &[Value], name: &Arc<str>) -> Result<u64> {
    if params.is_empty() && sql.trim_end().trim_end_matches(';').contains(';') {
        client
            .batch_execute(sql)
            .await
            .map_err(|e| pg_error("postgres: execute", name, e))?;
        return Ok(0);
    }
    let params: Vec<&(dyn ToSql + Sync)> =
        params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    client
        .execute(sql, &params)
        .await
        .map_err(|e| pg_error("postgres: execute", name, e))
}

/// A transaction's connection: `BEGIN` sent, statements run on it one at a time. Dropped
/// without a commit, the connection closes and the server rolls the transaction back.
pub(super) struct Tx {
    client: Client,
    _connection: JoinSet<()>,
    name: Arc<str>,
}

impl Tx {
    pub(super) async fn begin(url: &str, name: Arc<str>) -> Result<Tx> {
        let (client, connection) = connect(url, &name).await?;
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| pg_error("postgres: begin", &name, e))?;
        Ok(Tx {
            client,
            _connection: connection,
            name,
        })
    }

    pub(super) async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        run(&self.client, sql, params, &self.name).await
    }

    /// The first `limit` rows of `sql`; the rest are not read.
    pub(super) async fn fetch(
        &self,
        sql: &str,
        params: &[Value],
        limit: usize,
    ) -> Result<Vec<Row>> {
        let name = &self.name;
        let statement = self
            .client
            .prepare(sql)
            .await
            .map_err(|e| pg_error("postgres: prepare", name, e))?;
        let columns: Arc<[String]> = statement
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        let params = params.iter().map(|p| p as &(dyn ToSql + Sync));
        let rows = self
            .client
            .query_raw(&statement, params)
            .await
            .map_err(|e| pg_error("postgres: query", name, e))?;
        let mut rows = pin!(rows.take(limit));
        let mut out = Vec::new();
        while let Some(row) = rows.next().await {
            let index = out.len() as u64;
            let row = row.map_err(|e| {
                pg_error("postgres: fetch", name, e)
                    .or_position(|| Position::new().with_record(index))
            })?;
            out.push(convert(&row, &columns, index, name)?);
        }
        Ok(out)
    }

    /// `COMMIT` or `ROLLBACK`.
    pub(super) async fn end(self, statement: &'static str) -> Result<()> {
        self.client
            .batch_execute(statement)
            .await
            .map_err(|e| pg_error("postgres: commit", &self.name, e))
    }
}
