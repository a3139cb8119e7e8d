//! SQLite through rusqlite: each query steps its statement on a blocking thread and hands rows
//! over in growing batches, which measured far faster than an async wrapper.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_core::stream::BoxStream;
use futures_core::Stream;
use futures_util::StreamExt;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::mpsc;

use super::{
    batch_error, db_error, insert_sql, upstream_failed, IntoValues, Loaded, Query, Row, Table,
    Value, FIRST_FETCH, MAX_FETCH,
};
use crate::sinks::{feed, Msg};
use crate::sources::Blocking;
use crate::{Error, ErrorKind, Pipeline, Position, Result};

fn open(path: &PathBuf, write: bool, name: &Arc<str>) -> Result<Connection> {
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| db_error("sqlite: open", name, e))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| db_error("sqlite: open", name, e))?;
    if !write {
        // A query's connection keeps a small page cache (SQLite's default is 2 MB a
        // connection): a scan reads each page once, and many queries at once (a service's
        // exports) would each hold the default.
        conn.pragma_update(None, "cache_size", -512)
            .map_err(|e| db_error("sqlite: open", name, e))?;
    }
    Ok(conn)
}

fn to_sql(value: &Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Int(i) => SqlValue::Integer(*i),
        Value::Float(f) => SqlValue::Real(*f),
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Bytes(b) => SqlValue::Blob(b.clone()),
    }
}

fn from_sql(value: ValueRef<'_>) -> std::result::Result<Value, std::str::Utf8Error> {
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::Text(std::str::from_utf8(t)?.to_owned()),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    })
}

pub(super) fn query(path: PathBuf, query: Query) -> Pipeline<BoxStream<'static, Result<Row>>> {
    Pipeline::new(Blocking::from_producer(move |tx| {
        run_query(&path, &query, &tx)
    }))
    .boxed()
}

/// Steps the statement, sending rows in batches that double from `FIRST_FETCH`; stops when
/// the consumer is gone (a send fails), which drops the statement and the connection.
fn run_query(path: &PathBuf, query: &Query, tx: &mpsc::Sender<Vec<Result<Row>>>) {
    let fail = |err: Error| {
        let _ = tx.blocking_send(vec![Err(err)]);
    };
    let name = &query.name;
    let conn = match open(path, false, name) {
        Ok(conn) => conn,
        Err(err) => return fail(err),
    };
    let mut statement = match conn.prepare(&query.sql) {
        Ok(statement) => statement,
        Err(e) => return fail(db_error("sqlite: prepare", name, e)),
    };
    let columns: Arc<[String]> = statement
        .column_names()
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    let params: Vec<SqlValue> = query.params.iter().map(to_sql).collect();
    let mut rows = match statement.query(rusqlite::params_from_iter(params)) {
        Ok(rows) => rows,
        Err(e) => return fail(db_error("sqlite: query", name, e)),
    };
    let mut size = FIRST_FETCH;
    let mut index = 0u64;
    loop {
        let mut batch = Vec::with_capacity(size);
        let mut done = false;
        while batch.len() < size {
            match rows.next() {
                Ok(Some(row)) => {
                    let mut values = Vec::with_capacity(columns.len());
                    let mut bad = None;
                    for i in 0..columns.len() {
                        match row
                            .get_ref(i)
                            .map_err(|e| e.to_string())
                            .and_then(|v| from_sql(v).map_err(|e| e.to_string()))
                        {
                            Ok(value) => values.push(value),
                            Err(message) => {
                                bad = Some(
                                    Error::new(ErrorKind::Decode, "sqlite: read")
                                        .with_position(
                                            Position::new()
                                                .with_source(Arc::clone(name))
                                                .with_record(index),
                                        )
                                        .with_message(format!(
                                            "column `{}`: {message}",
                                            columns[i]
                                        )),
                                );
                                break;
                            }
                        }
                    }
                    query.fetched.fetch_add(1, Ordering::Relaxed);
                    batch.push(match bad {
                        Some(err) => Err(err),
                        None => Ok(Row::new(Arc::clone(&columns), values, index)),
                    });
                    index += 1;
                }
                Ok(None) => {
                    done = true;
                    break;
                }
                Err(e) => {
                    batch.push(Err(db_error("sqlite: read", name, e).with_position(
                        Position::new()
                            .with_source(Arc::clone(name))
                            .with_record(index),
                    )));
                    done = true;
                    break;
                }
            }
        }
        if (!batch.is_empty() && tx.blocking_send(batch).is_err()) || done {
            return;
        }
        size = (size * 2).min(MAX_FETCH);
    }
}

pub(super) async fn execute(
    path: PathBuf,
    sql: String,
    params: Vec<Value>,
    name: Arc<str>,
) -> Result<u64> {
    let run = move || {
        let conn = open(&path, true, &name)?;
        let params: Vec<SqlValue> = params.iter().map(to_sql).collect();
        if params.is_empty() {
            // Several statements at once are fine without parameters.
            conn.execute_batch(&sql)
                .map_err(|e| db_error("sqlite: execute", &name, e))?;
            return Ok(conn.changes());
        }
        conn.execute(&sql, rusqlite::params_from_iter(params))
            .map(|n| n as u64)
            .map_err(|e| db_error("sqlite: execute", &name, e))
    };
    match tokio::task::spawn_blocking(run).await {
        Ok(result) => result,
        Err(e) => Err(Error::internal("sqlite: execute", e.to_string())),
    }
}

/// Values cross to the writing thread one table batch (one transaction) at a time.
pub(super) async fn load<S, T>(
    path: PathBuf,
    name: Arc<str>,
    stream: S,
    table: &Table,
) -> Result<Loaded>
where
    S: Stream<Item = Result<T>> + Send,
    T: IntoValues + Send + 'static,
{
    let writer_table = table.clone();
    let rows = stream.map(|item| item.map(IntoValues::into_values));
    let (outcome, written) = feed(rows, table.batch.get(), move |rx| {
        write_batches(&path, &name, &writer_table, rx)
    })
    .await;
    match (outcome, written) {
        // What committed stays; the error says how much that was.
        (Err(err), Ok(loaded)) => Err(upstream_failed(err, loaded)),
        (_, written) => written,
    }
}

fn write_batches(
    path: &PathBuf,
    name: &Arc<str>,
    table: &Table,
    mut rx: mpsc::Receiver<Msg<Vec<Value>>>,
) -> Result<Loaded> {
    let conn = open(path, true, name)?;
    let sql = insert_sql(table, |i| format!("?{i}"), "excluded");
    let mut loaded = Loaded::default();
    let committed = |loaded: Loaded| table.committed(loaded);
    let run = |statement: &str| conn.execute_batch(statement);
    let mut open_transaction = false;
    while let Some(msg) = rx.blocking_recv() {
        let rows = match msg {
            Msg::Batch(rows) => rows,
            // Rows are committed a batch at a time: nothing to hand on before that.
            Msg::Flush => continue,
            Msg::Commit => {
                if open_transaction {
                    run("COMMIT").map_err(|e| {
                        batch_error(
                            db_error("sqlite: commit", name, e),
                            loaded.batches,
                            loaded.rows,
                            None,
                            Loaded::default(),
                        )
                    })?;
                }
                return Ok(loaded);
            }
        };
        let first = loaded.rows;
        let fail = |err: Error, bad: Option<u64>| {
            // Rolls back the batch, or (all or nothing) the load.
            let _ = run("ROLLBACK");
            batch_error(err, loaded.batches, first, bad, committed(loaded))
        };
        if !open_transaction {
            run("BEGIN").map_err(|e| fail(db_error("sqlite: load", name, e), None))?;
            open_transaction = true;
        }
        let mut statement = conn
            .prepare_cached(&sql)
            .map_err(|e| fail(db_error("sqlite: load", name, e), None))?;
        for (i, row) in rows.iter().enumerate() {
            let params: Vec<SqlValue> = row.iter().map(to_sql).collect();
            if let Err(e) = statement.execute(rusqlite::params_from_iter(params)) {
                drop(statement);
                return Err(fail(
                    db_error("sqlite: insert", name, e),
                    Some(first + i as u64),
                ));
            }
        }
        drop(statement);
        if !table.all_or_nothing {
            run("COMMIT").map_err(|e| fail(db_error("sqlite: commit", name, e), None))?;
            open_transaction = false;
        }
        loaded.rows += rows.len() as u64;
        loaded.batches += 1;
    }
    // The pipeline stopped before its end: the rows not yet in a batch were not written, and
    // an open all-or-nothing transaction is rolled back as the connection closes.
    Ok(committed(loaded))
}
