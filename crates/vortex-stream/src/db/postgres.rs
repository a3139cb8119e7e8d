//! PostgreSQL through tokio-postgres: a query reads from a portal in growing batches inside a
//! read-only transaction, so the server computes rows only as the pipeline pulls them; a load
//! streams each batch through `COPY FROM STDIN`, or sends it as multi-row `INSERT`s.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_core::stream::BoxStream;
use futures_core::Stream;
use futures_util::{SinkExt, StreamExt};
use tokio::task::JoinSet;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::{CancelToken, Client, NoTls};

use super::{
    db_error, fetch_sizes, load_in_batches, upsert_clause, BatchTarget, CopyFormat, IntoValues,
    LoadMethod, Loaded, OnCommit, Query, Row, Table, Value, FIRST_FETCH,
};
use crate::sources::FlattenBatches;
use crate::{Error, ErrorKind, Pipeline, Position, Result};

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
    let batches = Pipeline::generate(move |mut y| async move {
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
            move |e| failed("postgres: fetch")(e).or_position(|| Position::new().with_record(index))
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
        Ok(())
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
                return Err(Error::new(ErrorKind::Decode, "postgres: read")
                    .with_position(
                        Position::new()
                            .with_source(Arc::clone(name))
                            .with_record(index),
                    )
                    .with_message(format!("column `{column}`: {detail}"))
                    .with_source(e));
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

pub(super) async fn load<S, T>(
    url: &str,
    name: &Arc<str>,
    batches: S,
    table: &Table,
    on_commit: OnCommit<'_>,
) -> Result<Loaded>
where
    S: Stream<Item = Result<Vec<T>>> + Send,
    T: IntoValues + Send + 'static,
{
    // A dropped load closes the connection, which rolls back what was not committed.
    let (client, _connection) = connect(url, name).await?;
    let inserts = match table.method {
        LoadMethod::Inserts => Some(
            Inserts::new(&client, table)
                .await
                .map_err(|e| pg_error("postgres: load", name, e))?,
        ),
        _ => None,
    };
    let mut target = PgTarget {
        client: &client,
        inserts,
        table,
        name,
    };
    load_in_batches(batches, table, &mut target, on_commit).await
}

/// Batches go through `COPY`, or multi-row `INSERT`s with [`LoadMethod::Inserts`].
struct PgTarget<'a> {
    client: &'a Client,
    inserts: Option<Inserts>,
    table: &'a Table,
    name: &'a Arc<str>,
}

impl BatchTarget for PgTarget<'_> {
    async fn run(&mut self, statement: &'static str) -> Result<()> {
        self.client
            .batch_execute(statement)
            .await
            .map_err(|e| pg_error("postgres: transaction", self.name, e))
    }

    async fn write(
        &mut self,
        rows: &[Vec<Value>],
    ) -> std::result::Result<(), (Option<u64>, Error)> {
        match &mut self.inserts {
            Some(inserts) => insert_batch(self.client, inserts, self.table, rows, self.name).await,
            None => copy_batch(self.client, self.table, rows, self.name).await,
        }
    }

    async fn locate(&mut self, rows: &[Vec<Value>]) -> Option<(u64, Error)> {
        // `COPY` names the line it failed on; a multi-row statement does not say.
        let inserts = self.inserts.as_mut()?;
        first_bad_row(self.client, inserts, self.table, rows, self.name).await
    }
}

/// One batch, in the transaction the caller opened: `COPY` straight into the table, or into a
/// temporary table and then `INSERT … ON CONFLICT` for an upsert. On failure, the offset in
/// the batch of the row the server blamed, if it did.
async fn copy_batch(
    client: &Client,
    table: &Table,
    rows: &[Vec<Value>],
    name: &Arc<str>,
) -> std::result::Result<(), (Option<u64>, Error)> {
    let fail = |operation: &'static str| {
        move |e: tokio_postgres::Error| {
            let offset = copy_line(&e).and_then(|line| line.checked_sub(1));
            (offset, pg_error(operation, name, e))
        }
    };
    let columns = table.quoted_columns();
    let target = Table::quote(&table.name);
    let into = if table.conflict.is_some() {
        client.batch_execute(&format!(
            "CREATE TEMP TABLE vortex_load ON COMMIT DROP AS SELECT {columns} FROM {target} WITH NO DATA"
        ))
        .await
        .map_err(fail("postgres: load"))?;
        "vortex_load".to_owned()
    } else {
        target.clone()
    };
    let sink = client
        .copy_in::<_, Bytes>(&format!("COPY {into} ({columns}) FROM STDIN"))
        .await
        .map_err(fail("postgres: copy"))?;
    let mut sink = pin!(sink);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    for row in rows {
        encode_row(row, &mut buf);
        if buf.len() >= 64 * 1024 {
            sink.send(buf.split().freeze())
                .await
                .map_err(fail("postgres: copy"))?;
        }
    }
    if !buf.is_empty() {
        sink.send(buf.freeze())
            .await
            .map_err(fail("postgres: copy"))?;
    }
    sink.as_mut()
        .finish()
        .await
        .map_err(fail("postgres: copy"))?;
    if let Some(keys) = &table.conflict {
        let sql = format!(
            "INSERT INTO {target} ({columns}) SELECT {columns} FROM vortex_load{}",
            upsert_clause(table, keys, "EXCLUDED")
        );
        client
            .batch_execute(&format!("{sql}; DROP TABLE vortex_load"))
            .await
            .map_err(fail("postgres: upsert"))?;
    }
    Ok(())
}

/// Whether a parameter of this type is sent as it is (see `ToSql for Value`); a value for a
/// column of any other type (numeric, date, uuid, json, …) is sent as text, and the statement
/// casts it.
fn sent_directly(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::BOOL
            | Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::FLOAT4
            | Type::FLOAT8
            | Type::BYTEA
            | Type::TEXT
            | Type::VARCHAR
            | Type::BPCHAR
            | Type::NAME
    )
}

/// Multi-row `INSERT` statements for one table, prepared once per row count.
struct Inserts {
    /// Per column, the cast its placeholder takes (empty when sent directly).
    casts: Vec<String>,
    statements: std::collections::HashMap<usize, tokio_postgres::Statement>,
}

impl Inserts {
    /// Learns the columns' types from a one-row statement.
    async fn new(
        client: &Client,
        table: &Table,
    ) -> std::result::Result<Inserts, tokio_postgres::Error> {
        let one = insert_statement(table, &vec![String::new(); table.columns.len()], 1);
        let statement = client.prepare(&one).await?;
        let casts = statement
            .params()
            .iter()
            .map(|ty| {
                if sent_directly(ty) {
                    String::new()
                } else {
                    format!(
                        "::text::{}.{}",
                        Table::quote(ty.schema()),
                        Table::quote(ty.name())
                    )
                }
            })
            .collect();
        Ok(Inserts {
            casts,
            statements: std::collections::HashMap::new(),
        })
    }

    async fn statement(
        &mut self,
        client: &Client,
        table: &Table,
        rows: usize,
    ) -> std::result::Result<tokio_postgres::Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(&rows) {
            return Ok(statement.clone());
        }
        let statement = client
            .prepare(&insert_statement(table, &self.casts, rows))
            .await?;
        self.statements.insert(rows, statement.clone());
        Ok(statement)
    }
}

/// `INSERT INTO table (columns) VALUES ($1, $2), ($3, $4) …` for `rows` rows, each
/// placeholder with its column's cast, and the upsert clause when the table has keys.
fn insert_statement(table: &Table, casts: &[String], rows: usize) -> String {
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        Table::quote(&table.name),
        table.quoted_columns()
    );
    let mut n = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for (column, cast) in casts.iter().enumerate() {
            n += 1;
            let sep = if column == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}${n}{cast}");
        }
        sql.push(')');
    }
    if let Some(keys) = &table.conflict {
        sql.push_str(&upsert_clause(table, keys, "EXCLUDED"));
    }
    sql
}

/// One batch as multi-row `INSERT`s, in the transaction the caller opened.
async fn insert_batch(
    client: &Client,
    inserts: &mut Inserts,
    table: &Table,
    rows: &[Vec<Value>],
    name: &Arc<str>,
) -> std::result::Result<(), (Option<u64>, Error)> {
    let per_statement = (usize::from(u16::MAX) / table.columns.len().max(1)).clamp(1, 1000);
    for chunk in rows.chunks(per_statement) {
        let result = async {
            let statement = inserts.statement(client, table, chunk.len()).await?;
            let params: Vec<&(dyn ToSql + Sync)> = chunk
                .iter()
                .flatten()
                .map(|v| v as &(dyn ToSql + Sync))
                .collect();
            client.execute(&statement, &params).await
        }
        .await;
        if let Err(e) = result {
            return Err((None, pg_error("postgres: insert", name, e)));
        }
    }
    Ok(())
}

/// Replays a failed batch a row at a time in a transaction that is rolled back, to find the
/// first bad row and the server's words about it.
async fn first_bad_row(
    client: &Client,
    inserts: &mut Inserts,
    table: &Table,
    rows: &[Vec<Value>],
    name: &Arc<str>,
) -> Option<(u64, Error)> {
    let statement = inserts.statement(client, table, 1).await.ok()?;
    client.batch_execute("BEGIN").await.ok()?;
    let mut found = None;
    for (offset, row) in rows.iter().enumerate() {
        let params: Vec<&(dyn ToSql + Sync)> =
            row.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        if let Err(e) = client.execute(&statement, &params).await {
            found = Some((offset as u64, pg_error("postgres: insert", name, e)));
            break;
        }
    }
    client.batch_execute("ROLLBACK").await.ok()?;
    found
}

/// The line number in the `CONTEXT` of a `COPY` error ("COPY orders, line 42, column id").
fn copy_line(e: &tokio_postgres::Error) -> Option<u64> {
    let context = e.as_db_error()?.where_()?;
    let rest = context.split("line ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// One row in `COPY` text format: tab-separated, `\N` for `NULL`, backslash escapes.
fn encode_row(row: &[Value], out: &mut BytesMut) {
    for (i, value) in row.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\t");
        }
        match value {
            Value::Null => out.extend_from_slice(b"\\N"),
            Value::Bytes(bytes) => {
                out.extend_from_slice(b"\\\\x");
                for b in bytes {
                    let _ = write!(Hex(out), "{b:02x}");
                }
            }
            other => {
                for byte in other.to_text().bytes() {
                    match byte {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        b => out.extend_from_slice(&[b]),
                    }
                }
            }
        }
    }
    out.extend_from_slice(b"\n");
}

struct Hex<'a>(&'a mut BytesMut);

impl std::fmt::Write for Hex<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Any column value, read into a [`Value`].
struct PgValue(Value);

impl<'a> FromSql<'a> for PgValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        let text = |raw: &[u8]| -> std::result::Result<Value, BoxError> {
            Ok(Value::Text(std::str::from_utf8(raw)?.to_owned()))
        };
        let value = match *ty {
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::OID => Value::Int(u32::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => Value::Float(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Float(f64::from_sql(ty, raw)?),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON | Type::XML => text(raw)?,
            Type::JSONB => text(raw.get(1..).unwrap_or_default())?,
            Type::BYTEA => Value::Bytes(raw.to_vec()),
            Type::NUMERIC => Value::Text(numeric_text(raw)?),
            Type::UUID => Value::Text(uuid_text(raw)?),
            Type::DATE => Value::Text(date_text(i32::from_sql(&Type::INT4, raw)?)),
            Type::TIMESTAMP => Value::Text(timestamp_text(i64::from_sql(&Type::INT8, raw)?, "")),
            Type::TIMESTAMPTZ => Value::Text(timestamp_text(i64::from_sql(&Type::INT8, raw)?, "Z")),
            _ => {
                return Err(format!(
                    "columns of type {ty} cannot be read yet; cast it in the query (for example `::text`)"
                )
                .into())
            }
        };
        Ok(PgValue(value))
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, BoxError> {
        Ok(PgValue(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// NUMERIC's binary form (base-10000 digits) as decimal text.
fn numeric_text(raw: &[u8]) -> std::result::Result<String, BoxError> {
    let word = |i: usize| -> std::result::Result<i16, BoxError> {
        let bytes = raw.get(i..i + 2).ok_or("numeric value too short")?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    };
    let ndigits = usize::try_from(word(0)?).map_err(|_| "bad numeric")?;
    let weight = i32::from(word(2)?);
    let sign = word(4)? as u16;
    let dscale = usize::try_from(word(6)?).map_err(|_| "bad numeric")?;
    match sign {
        0xC000 => return Ok("NaN".to_owned()),
        0xD000 => return Ok("Infinity".to_owned()),
        0xF000 => return Ok("-Infinity".to_owned()),
        _ => {}
    }
    let digits: Vec<i16> = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<std::result::Result<_, _>>()?;
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    // Integer part: groups with weight >= 0.
    if weight < 0 {
        out.push('0');
    } else {
        for w in 0..=weight {
            let d = usize::try_from(w)
                .ok()
                .and_then(|i| digits.get(i))
                .copied()
                .unwrap_or(0);
            if w == 0 {
                let _ = write!(out, "{d}");
            } else {
                let _ = write!(out, "{d:04}");
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut fraction = String::new();
        let mut w = weight + 1;
        while fraction.len() < dscale {
            let d = if w < 0 {
                0
            } else {
                usize::try_from(w)
                    .ok()
                    .and_then(|i| digits.get(i))
                    .copied()
                    .unwrap_or(0)
            };
            let _ = write!(fraction, "{d:04}");
            w += 1;
        }
        fraction.truncate(dscale);
        out.push_str(&fraction);
    }
    Ok(out)
}

fn uuid_text(raw: &[u8]) -> std::result::Result<String, BoxError> {
    if raw.len() != 16 {
        return Err("a uuid has 16 bytes".into());
    }
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// Days since 2000-01-01 as `YYYY-MM-DD` (the civil-from-days algorithm of H. Hinnant);
/// PostgreSQL's `infinity` and `-infinity` (the largest and smallest values) as those words,
/// never as a date far in the future or the past.
fn date_text(days: i32) -> String {
    match days {
        i32::MAX => return "infinity".to_owned(),
        i32::MIN => return "-infinity".to_owned(),
        _ => {}
    }
    let (y, m, d) = civil(i64::from(days) + 10_957);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Microseconds since 2000-01-01 00:00 as `YYYY-MM-DDTHH:MM:SS[.ffffff]` and `suffix`;
/// `infinity` and `-infinity` as those words.
fn timestamp_text(micros: i64, suffix: &str) -> String {
    match micros {
        i64::MAX => return "infinity".to_owned(),
        i64::MIN => return "-infinity".to_owned(),
        _ => {}
    }
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (y, m, d) = civil(days + 10_957);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if fraction > 0 {
        let _ = write!(out, ".{fraction:06}");
    }
    out.push_str(suffix);
    out
}

/// Year, month, day of a count of days since 1970-01-01.
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        let mismatch = || -> BoxError {
            format!("a {} cannot be sent as {ty}; cast the parameter in the query (for example `$1::text::{ty}`)", self.kind_name()).into()
        };
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Bool(b), &Type::BOOL) => b.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            // Precision loss is the caller's choice when a float column takes an integer.
            #[allow(clippy::cast_precision_loss)]
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Float(f), &Type::FLOAT8) => f.to_sql(ty, out),
            #[allow(clippy::cast_possible_truncation)]
            (Value::Float(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Value::Bytes(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
            (
                value,
                &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME | &Type::UNKNOWN,
            ) => value.to_text().as_ref().to_sql(ty, out),
            (Value::Text(s), &Type::INT2 | &Type::INT4 | &Type::INT8) => {
                Value::Int(s.trim().parse().map_err(|_| mismatch())?).to_sql(ty, out)
            }
            (Value::Text(s), &Type::FLOAT4 | &Type::FLOAT8) => {
                Value::Float(s.trim().parse().map_err(|_| mismatch())?).to_sql(ty, out)
            }
            _ => Err(mismatch()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl Value {
    fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "byte string",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps_format_as_iso() {
        assert_eq!(date_text(0), "2000-01-01");
        assert_eq!(date_text(9_824), "2026-11-24");
        assert_eq!(date_text(-1), "1999-12-31");
        assert_eq!(
            timestamp_text(86_400_000_000 + 3_723_000_001, "Z"),
            "2000-01-02T01:02:03.000001Z"
        );
        assert_eq!(date_text(i32::MAX), "infinity");
        assert_eq!(date_text(i32::MIN), "-infinity");
        assert_eq!(timestamp_text(i64::MAX, "Z"), "infinity");
        assert_eq!(timestamp_text(i64::MIN, ""), "-infinity");
        assert_ne!(date_text(i32::MAX - 1), "infinity");
    }

    #[test]
    fn numeric_binary_decodes_to_text() {
        // 12345.678: ndigits 3, weight 1, positive, dscale 3, digits [1, 2345, 6780]
        let raw: Vec<u8> = [3i16, 1, 0, 3, 1, 2345, 6780]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(numeric_text(&raw).unwrap(), "12345.678");
        // -0.05: ndigits 1, weight -1, negative, dscale 2, digits [500]
        let raw: Vec<u8> = [1i16, -1, 0x4000u16 as i16, 2, 500]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(numeric_text(&raw).unwrap(), "-0.05");
    }

    #[test]
    fn copy_text_escapes() {
        let mut out = BytesMut::new();
        encode_row(
            &[
                Value::from("a\tb\\c\nd"),
                Value::Null,
                Value::Int(3),
                Value::Bytes(vec![1, 255]),
            ],
            &mut out,
        );
        assert_eq!(&out[..], b"a\\tb\\\\c\\nd\t\\N\t3\t\\\\x01ff\n");
    }
}
