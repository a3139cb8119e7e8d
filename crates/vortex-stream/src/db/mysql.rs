//! MariaDB and MySQL through `mysql_async`: a query reads its result set from the socket as the
//! pipeline pulls rows, so TCP backpressure holds the server back; a load sends multi-row
//! `INSERT` statements with bound parameters, one transaction per batch.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_core::stream::BoxStream;
use futures_core::Stream;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::{Protocol, Queryable};
use mysql_async::{Column, Conn, Opts, OptsBuilder, Params, QueryResult};

use super::{
    column_error, db_error, load_in_batches, BatchTarget, IntoValues, Loaded, OnCommit, Query, Row,
    Table, Value,
};
use crate::{Error, Pipeline, Result};

/// The most parameters one statement may bind (the protocol counts them in 16 bits).
const MAX_PARAMS: usize = u16::MAX as usize;
/// Rows one `INSERT` statement carries at most: larger statements measured no faster.
const MAX_ROWS_PER_STATEMENT: usize = 2000;
/// Bytes of values one `INSERT` statement carries at most, well under the server's default
/// `max_allowed_packet` (16 MiB on MariaDB, 64 MiB on MySQL 8).
const MAX_STATEMENT_BYTES: usize = 4 << 20;
/// The binary character set: a string column with it holds bytes, not text.
const BINARY_CHARSET: u16 = 63;

/// The error for a failure reported by `mysql_async`, with the server's message and codes.
fn my_error(operation: &'static str, name: &Arc<str>, e: mysql_async::Error) -> Error {
    let message = match &e {
        mysql_async::Error::Server(server) => format!(
            "{} (error {}, SQLSTATE {})",
            server.message, server.code, server.state
        ),
        // A URL error may quote the URL; the name already says which, without the password.
        mysql_async::Error::Url(_) => "invalid or incomplete connection URL".to_owned(),
        // The driver's own wrappers repeat themselves ("Input/output error: Input/output
        // error: …"): the innermost cause says what happened.
        other => {
            let mut cause: &dyn std::error::Error = other;
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            cause.to_string()
        }
    };
    db_error(operation, name, e).with_message(message)
}

/// The connection options: the URL's, with the session clock on UTC so that `TIMESTAMP`
/// columns read as UTC (written with a `Z`) whatever the server's zone.
pub(super) fn options(url: &str, name: &Arc<str>) -> Result<Opts> {
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_owned(),
    };
    let opts = Opts::from_url(&url).map_err(|e| my_error("mysql: open", name, e.into()))?;
    Ok(OptsBuilder::from_opts(opts)
        .setup(vec!["SET time_zone = '+00:00'"])
        .into())
}

async fn connect(opts: &Opts, name: &Arc<str>) -> Result<Conn> {
    let timeout = super::CONNECT_TIMEOUT;
    tokio::time::timeout(timeout, Conn::new(opts.clone()))
        .await
        .map_err(|_| super::connect_timed_out("mysql: connect", name, timeout))?
        .map_err(|e| my_error("mysql: connect", name, e))
}

/// Kills the connection's running statement from a second connection if dropped while armed:
/// a pipeline dropped in the middle of a result stops the work on the server at once (left
/// alone, the driver would read the rest of the result before closing).
struct KillOnDrop {
    opts: Opts,
    id: u32,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let opts = self.opts.clone();
            let id = self.id;
            // Detached on purpose: the request must outlive the dropped pipeline, and it is
            // one short connection that ends by itself.
            drop(runtime.spawn(async move {
                if let Ok(mut conn) = Conn::new(opts).await {
                    let _ = conn.query_drop(format!("KILL CONNECTION {id}")).await;
                    let _ = conn.disconnect().await;
                }
            }));
        }
    }
}

fn to_my(value: &Value) -> mysql_async::Value {
    match value {
        Value::Null => mysql_async::Value::NULL,
        Value::Bool(b) => mysql_async::Value::Int(i64::from(*b)),
        Value::Int(i) => mysql_async::Value::Int(*i),
        Value::Float(f) => mysql_async::Value::Double(*f),
        Value::Text(s) => mysql_async::Value::Bytes(s.as_bytes().to_vec()),
        Value::Bytes(b) => mysql_async::Value::Bytes(b.clone()),
    }
}

fn params(values: &[Value]) -> Params {
    if values.is_empty() {
        Params::Empty
    } else {
        Params::Positional(values.iter().map(to_my).collect())
    }
}

/// How a column's values read: the protocol's value alone does not say whether bytes are text
/// or whether a date-time is a `DATE`, a `DATETIME` or a `TIMESTAMP`. (Numbers arrive as
/// numbers whatever the kind.)
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Binary,
    Date,
    DateTime,
    Timestamp,
}

fn kind(column: &Column) -> Kind {
    match column.column_type() {
        ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => Kind::Date,
        ColumnType::MYSQL_TYPE_DATETIME | ColumnType::MYSQL_TYPE_DATETIME2 => Kind::DateTime,
        ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2 => Kind::Timestamp,
        ColumnType::MYSQL_TYPE_BIT | ColumnType::MYSQL_TYPE_GEOMETRY => Kind::Binary,
        ColumnType::MYSQL_TYPE_STRING
        | ColumnType::MYSQL_TYPE_VAR_STRING
        | ColumnType::MYSQL_TYPE_VARCHAR
        | ColumnType::MYSQL_TYPE_BLOB
        | ColumnType::MYSQL_TYPE_TINY_BLOB
        | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
        | ColumnType::MYSQL_TYPE_LONG_BLOB
            if column.character_set() == BINARY_CHARSET
                && column.flags().contains(ColumnFlags::BINARY_FLAG) =>
        {
            Kind::Binary
        }
        _ => Kind::Text,
    }
}

/// One value, read into a [`Value`]: text as text (checked UTF-8), dates in ISO form (a
/// `TIMESTAMP`, read on the UTC session clock, ends in `Z`), unsigned integers beyond `i64`
/// as text, decimals as their exact text.
fn from_my(value: mysql_async::Value, kind: Kind) -> std::result::Result<Value, String> {
    use mysql_async::Value as My;
    Ok(match value {
        My::NULL => Value::Null,
        My::Int(i) => Value::Int(i),
        My::UInt(u) => i64::try_from(u).map_or_else(|_| Value::Text(u.to_string()), Value::Int),
        My::Float(f) => Value::Float(f.into()),
        My::Double(f) => Value::Float(f),
        My::Bytes(bytes) => match kind {
            Kind::Binary => Value::Bytes(bytes),
            _ => Value::Text(String::from_utf8(bytes).map_err(|e| e.utf8_error().to_string())?),
        },
        My::Date(y, m, d, h, mi, s, us) => {
            let date = format!("{y:04}-{m:02}-{d:02}");
            match kind {
                Kind::Date => Value::Text(date),
                _ => {
                    let mut text = format!("{date}T{h:02}:{mi:02}:{s:02}");
                    if us > 0 {
                        text.push_str(&format!(".{us:06}"));
                    }
                    if matches!(kind, Kind::Timestamp) {
                        text.push('Z');
                    }
                    Value::Text(text)
                }
            }
        }
        My::Time(negative, days, h, m, s, us) => {
            let hours = u64::from(days) * 24 + u64::from(h);
            let sign = if negative { "-" } else { "" };
            let mut text = format!("{sign}{hours:02}:{m:02}:{s:02}");
            if us > 0 {
                text.push_str(&format!(".{us:06}"));
            }
            Value::Text(text)
        }
    })
}

pub(super) fn query(opts: Opts, query: Query) -> Pipeline<BoxStream<'static, Result<Row>>> {
    let span = tracing::debug_span!("vortex.query", db = %query.name);
    Pipeline::generate(move |mut y| {
        tracing::Instrument::instrument(
            async move {
                let name = &query.name;
                let mut conn = connect(&opts, name).await?;
                if let Some(timeout) = query.statement_timeout {
                    // MariaDB's variable (seconds), else MySQL's (milliseconds, SELECTs only).
                    let seconds = timeout.as_secs_f64().max(0.001);
                    let millis = timeout.as_millis().max(1);
                    if conn
                        .query_drop(format!("SET SESSION max_statement_time = {seconds}"))
                        .await
                        .is_err()
                    {
                        conn.query_drop(format!("SET SESSION max_execution_time = {millis}"))
                            .await
                            .map_err(|e| my_error("mysql: statement timeout", name, e))?;
                    }
                }
                let mut kill = KillOnDrop {
                    opts: opts.clone(),
                    id: conn.id(),
                    armed: true,
                };
                let mut result = conn
                    .exec_iter(query.sql.as_str(), params(&query.params))
                    .await
                    .map_err(|e| my_error("mysql: query", name, e))?;
                let (columns, kinds) = described(&result);
                let mut index = 0u64;
                loop {
                    let Some(row) = next_row(&mut result, name, index).await? else {
                        break;
                    };
                    query.fetched.fetch_add(1, Ordering::Relaxed);
                    let item = convert(row, &columns, &kinds, index, name);
                    index += 1;
                    y.emit_item(item).await;
                }
                kill.armed = false;
                drop(result);
                let _ = conn.disconnect().await;
                tracing::debug!(rows = index, "query ended");
                Ok(())
            },
            span,
        )
    })
    .boxed()
}

/// The names and kinds of a result's columns.
fn described<P: Protocol>(result: &QueryResult<'_, '_, P>) -> (Arc<[String]>, Vec<Kind>) {
    let columns = result.columns_ref();
    (
        columns.iter().map(|c| c.name_str().into()).collect(),
        columns.iter().map(kind).collect(),
    )
}

/// The next row of `result`, record `index`; a failure names it.
async fn next_row<P: Protocol>(
    result: &mut QueryResult<'_, '_, P>,
    name: &Arc<str>,
    index: u64,
) -> Result<Option<mysql_async::Row>> {
    result.next().await.map_err(|e| {
        my_error("mysql: fetch", name, e).or_position(|| super::record_at(name, index))
    })
}

fn convert(
    row: mysql_async::Row,
    columns: &Arc<[String]>,
    kinds: &[Kind],
    index: u64,
    name: &Arc<str>,
) -> Result<Row> {
    let mut values = Vec::with_capacity(columns.len());
    for ((value, kind), column) in row.unwrap().into_iter().zip(kinds).zip(columns.iter()) {
        match from_my(value, *kind) {
            Ok(value) => values.push(value),
            Err(detail) => return Err(column_error("mysql: read", name, index, column, detail)),
        }
    }
    Ok(Row::new(Arc::clone(columns), values, index))
}

pub(super) async fn execute(
    opts: &Opts,
    sql: &str,
    values: &[Value],
    name: &Arc<str>,
) -> Result<u64> {
    let mut conn = connect(opts, name).await?;
    let changed = run(&mut conn, sql, values, name).await?;
    let _ = conn.disconnect().await;
    Ok(changed)
}

/// Runs a statement on `conn`; returns the rows it changed.
async fn run(conn: &mut Conn, sql: &str, values: &[Value], name: &Arc<str>) -> Result<u64> {
    let fail = |e| my_error("mysql: execute", name, e);
    if values.is_empty() {
        // The text protocol: several statements at once, and statements that cannot be
        // prepared.
        conn.query_drop(sql).await.map_err(fail)?;
    } else {
        conn.exec_drop(sql, params(values)).await.map_err(fail)?;
    }
    Ok(conn.affected_rows())
}

/// A transaction's connection: `START TRANSACTION` sent, statements run on it one at a time.
/// Dropped without a commit, the connection closes and the server rolls the transaction back.
pub(super) struct Tx {
    conn: Conn,
    name: Arc<str>,
}

impl Tx {
    pub(super) async fn begin(opts: &Opts, name: Arc<str>) -> Result<Tx> {
        let mut conn = connect(opts, &name).await?;
        conn.query_drop("START TRANSACTION")
            .await
            .map_err(|e| my_error("mysql: begin", &name, e))?;
        Ok(Tx { conn, name })
    }

    pub(super) async fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64> {
        run(&mut self.conn, sql, values, &self.name).await
    }

    /// The first `limit` rows of `sql`; the driver reads and drops the rest of the result.
    pub(super) async fn fetch(
        &mut self,
        sql: &str,
        values: &[Value],
        limit: usize,
    ) -> Result<Vec<Row>> {
        let name = &self.name;
        let mut result = self
            .conn
            .exec_iter(sql, params(values))
            .await
            .map_err(|e| my_error("mysql: query", name, e))?;
        let (columns, kinds) = described(&result);
        let mut out = Vec::new();
        while out.len() < limit {
            let index = out.len() as u64;
            let Some(row) = next_row(&mut result, name, index).await? else {
                break;
            };
            out.push(convert(row, &columns, &kinds, index, name)?);
        }
        result
            .drop_result()
            .await
            .map_err(|e| my_error("mysql: fetch", name, e))?;
        Ok(out)
    }

    /// `COMMIT` or `ROLLBACK`, then the connection closes.
    pub(super) async fn end(mut self, statement: &'static str) -> Result<()> {
        self.conn
            .query_drop(statement)
            .await
            .map_err(|e| my_error("mysql: commit", &self.name, e))?;
        let _ = self.conn.disconnect().await;
        Ok(())
    }
}

/// A quoted identifier.
fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The `INSERT` of `rows` rows into `table`, with an upsert clause when the table has
/// conflict keys (MariaDB and MySQL detect the conflict on any unique key; the keys are the
/// columns left as they were).
fn insert_sql(table: &Table, rows: usize) -> String {
    let columns: Vec<String> = table.columns.iter().map(|c| quote(c)).collect();
    let one = format!("({})", vec!["?"; columns.len()].join(", "));
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES {}",
        quote(&table.name),
        columns.join(", "),
        vec![one.as_str(); rows].join(", ")
    );
    if let Some(keys) = &table.conflict {
        let updates: Vec<String> = table
            .columns
            .iter()
            .filter(|c| !keys.contains(c))
            .map(|c| format!("{0} = VALUES({0})", quote(c)))
            .collect();
        if updates.is_empty() {
            sql = sql.replacen("INSERT", "INSERT IGNORE", 1);
        } else {
            sql.push_str(" ON DUPLICATE KEY UPDATE ");
            sql.push_str(&updates.join(", "));
        }
    }
    sql
}

pub(super) async fn load<S, T>(
    opts: &Opts,
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
    let conn = connect(opts, name).await?;
    let mut target = MyTarget { conn, table, name };
    let loaded = load_in_batches(batches, table, &mut target, on_commit).await;
    let _ = target.conn.disconnect().await;
    loaded
}

/// Batches go as multi-row `INSERT`s.
struct MyTarget<'a> {
    conn: Conn,
    table: &'a Table,
    name: &'a Arc<str>,
}

impl BatchTarget for MyTarget<'_> {
    async fn run(&mut self, statement: &'static str) -> Result<()> {
        self.conn
            .query_drop(statement)
            .await
            .map_err(|e| my_error("mysql: transaction", self.name, e))
    }

    async fn write(
        &mut self,
        rows: &[Vec<Value>],
    ) -> std::result::Result<(), (Option<u64>, Error)> {
        insert_batch(&mut self.conn, self.table, rows, self.name)
            .await
            .map_err(|err| (None, err))
    }

    async fn locate(&mut self, rows: &[Vec<Value>]) -> Option<(u64, Error)> {
        first_bad_row(&mut self.conn, self.table, rows, self.name).await
    }
}

/// The rows of a batch, cut into statements no larger than the protocol and the server allow.
fn statements(rows: &[Vec<Value>], columns: usize) -> Vec<std::ops::Range<usize>> {
    let per_statement = (MAX_PARAMS / columns.max(1)).clamp(1, MAX_ROWS_PER_STATEMENT);
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, row) in rows.iter().enumerate() {
        let size: usize = row.iter().map(value_size).sum();
        if i > start && (i - start == per_statement || bytes + size > MAX_STATEMENT_BYTES) {
            ranges.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < rows.len() {
        ranges.push(start..rows.len());
    }
    ranges
}

fn value_size(value: &Value) -> usize {
    match value {
        Value::Text(s) => s.len() + 4,
        Value::Bytes(b) => b.len() + 4,
        _ => 9,
    }
}

/// One batch of multi-row `INSERT`s, in the transaction the caller opened.
async fn insert_batch(
    conn: &mut Conn,
    table: &Table,
    rows: &[Vec<Value>],
    name: &Arc<str>,
) -> Result<()> {
    for range in statements(rows, table.columns.len()) {
        let sql = insert_sql(table, range.len());
        let values: Vec<mysql_async::Value> = rows[range].iter().flatten().map(to_my).collect();
        conn.exec_drop(sql, Params::Positional(values))
            .await
            .map_err(|e| my_error("mysql: insert", name, e))?;
    }
    Ok(())
}

/// Replays a failed batch a row at a time in a transaction that is rolled back, to find the
/// first bad row (a multi-row statement's error does not say which row it was).
async fn first_bad_row(
    conn: &mut Conn,
    table: &Table,
    rows: &[Vec<Value>],
    name: &Arc<str>,
) -> Option<(u64, Error)> {
    conn.query_drop("START TRANSACTION").await.ok()?;
    let sql = insert_sql(table, 1);
    let mut found = None;
    for (offset, row) in rows.iter().enumerate() {
        if let Err(e) = conn.exec_drop(sql.as_str(), params(row)).await {
            found = Some((offset as u64, my_error("mysql: insert", name, e)));
            break;
        }
    }
    conn.query_drop("ROLLBACK").await.ok()?;
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_respect_the_parameter_and_size_limits() {
        let rows = vec![vec![Value::Int(1); 100]; 1500];
        let ranges = statements(&rows, 100);
        assert_eq!(
            ranges.len(),
            3,
            "655 rows of 100 parameters fit a statement"
        );
        assert_eq!(ranges[0], 0..655);
        assert_eq!(ranges.last().map(|r| r.end), Some(1500));

        let big = vec![vec![Value::Text("x".repeat(1 << 20))]; 10];
        let ranges = statements(&big, 1);
        assert!(ranges.iter().all(|r| r.len() <= 4), "{ranges:?}");
        assert_eq!(ranges.iter().map(ExactSizeIterator::len).sum::<usize>(), 10);
    }

    #[test]
    fn inserts_quote_identifiers_and_upsert() {
        let table = Table::new("my`t", ["id", "name"]).upsert(["id"]);
        assert_eq!(
            insert_sql(&table, 2),
            "INSERT INTO `my``t` (`id`, `name`) VALUES (?, ?), (?, ?) ON DUPLICATE KEY UPDATE `name` = VALUES(`name`)"
        );
    }

    #[test]
    fn dates_times_and_big_unsigned_read_as_text() {
        use mysql_async::Value as My;
        assert_eq!(
            from_my(My::Date(2026, 11, 29, 0, 0, 0, 0), Kind::Date),
            Ok(Value::from("2026-11-29"))
        );
        assert_eq!(
            from_my(My::Date(2026, 1, 2, 3, 4, 5, 6), Kind::Timestamp),
            Ok(Value::from("2026-01-02T03:04:05.000006Z"))
        );
        assert_eq!(
            from_my(My::Time(true, 1, 2, 3, 4, 0), Kind::Text),
            Ok(Value::from("-26:03:04"))
        );
        assert_eq!(
            from_my(My::UInt(u64::MAX), Kind::Text),
            Ok(Value::from("18446744073709551615"))
        );
        assert!(from_my(My::Bytes(vec![0xff]), Kind::Text).is_err());
        assert_eq!(
            from_my(My::Bytes(vec![0xff]), Kind::Binary),
            Ok(Value::Bytes(vec![0xff]))
        );
    }
}
