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
    batch_error, db_error, fetch_sizes, insert_sql, upstream_failed, IntoValues, Loaded, Query,
    Row, Table, Value, MAX_FETCH,
};
use crate::sinks::feed;
use crate::sources::Held;
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

/// The rows of `query`, stepped on a thread of their own once one of `gate`'s permits is free
/// (see [`Database::max_open_queries`](super::Database::max_open_queries)); the permit goes
/// back when the stream ends or is dropped.
pub(super) fn query(
    path: PathBuf,
    query: Query,
    gate: Arc<tokio::sync::Semaphore>,
    wait: Duration,
) -> Pipeline<BoxStream<'static, Result<Row>>> {
    let name = Arc::clone(&query.name);
    let permit = async move {
        match tokio::time::timeout(wait, gate.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Error::new(ErrorKind::Capacity, "sqlite: query")
                .with_position(Position::new().with_source(name))
                .with_message(format!(
                    "every query thread this database allows is taken (max_open_queries) \
                     and none came free within {:?}",
                    wait
                ))
                .fatal()),
        }
    };
    let mut work = Some((path, query));
    let rows = futures_util::stream::once(permit).flat_map(move |permit| {
        match (permit, work.take()) {
            (Ok(permit), Some((path, query))) => Held::new(move |tx| {
                run_query(&path, &query, &tx);
                // Given back as the thread ends, not before.
                drop(permit);
            })
            .left_stream(),
            (Err(err), _) => futures_util::stream::iter(Some(Err(err))).right_stream(),
            (Ok(_), None) => futures_util::stream::iter(None).right_stream(),
        }
    });
    Pipeline::new(rows).boxed()
}

/// Steps the statement, sending rows in batches sized by `fetch_sizes`; stops when the
/// consumer is gone (a send fails), which drops the statement and the connection.
///
/// The first four batches are stepped only once the channel has room for them, that is once
/// the batch before was taken, so that a consumer that stops early costs at most the batch it
/// stopped in and the next.
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
    // On tokio's blocking pool: waiting here for room in the channel blocks no task.
    let runtime = tokio::runtime::Handle::current();
    let mut index = 0u64;
    for (n, size) in fetch_sizes(MAX_FETCH).enumerate() {
        // The first four batches wait for room before they are stepped, so that a consumer
        // that stops early costs few rows; after them the thread steps a batch while the one
        // before waits in the channel (measured 13% faster on a 1M-row export than waiting).
        let slot = if n < 4 {
            let Ok(slot) = runtime.block_on(tx.reserve()) else {
                // The consumer is gone.
                return;
            };
            Some(slot)
        } else {
            None
        };
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
        if !batch.is_empty() {
            match slot {
                Some(slot) => slot.send(batch),
                None if tx.blocking_send(batch).is_err() => return,
                None => {}
            }
        }
        if done {
            return;
        }
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

/// Values cross to the pool one table batch (one transaction) at a time, each written by a
/// job of its own: between batches the connection waits without a thread.
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
    let table = table.clone();
    let batch = table.batch.get();
    let rows = stream.map(|item| item.map(IntoValues::into_values));
    let open = move || {
        let conn = open(&path, true, &name)?;
        let sql = insert_sql(&table, |i| format!("?{i}"), "excluded");
        Ok(Loader {
            conn,
            name,
            sql,
            table,
            loaded: Loaded::default(),
            open_transaction: false,
        })
    };
    let (outcome, written) = feed(rows, batch, open, None).await;
    match (outcome, written) {
        // What committed stays; the error says how much that was.
        (Err(err), Ok(loaded)) => Err(upstream_failed(err, loaded)),
        (_, written) => written,
    }
}

/// A load's connection and what it committed so far, moved to a pool thread for each batch.
struct Loader {
    conn: Connection,
    name: Arc<str>,
    sql: String,
    table: Table,
    loaded: Loaded,
    open_transaction: bool,
}

impl Loader {
    fn run(&self, statement: &str) -> rusqlite::Result<()> {
        self.conn.execute_batch(statement)
    }
}

impl crate::sinks::BatchWrite<Vec<Value>> for Loader {
    type Done = Loaded;

    fn write(&mut self, values: &mut std::vec::IntoIter<Vec<Value>>) -> Result<()> {
        let rows: Vec<Vec<Value>> = values.collect();
        let name = &self.name;
        let first = self.loaded.rows;
        let fail = |this: &Self, err: Error, bad: Option<u64>| {
            // Rolls back the batch, or (all or nothing) the load.
            let _ = this.run("ROLLBACK");
            let loaded = this.loaded;
            batch_error(
                err,
                loaded.batches,
                first,
                bad,
                this.table.committed(loaded),
            )
        };
        if !self.open_transaction {
            self.run("BEGIN")
                .map_err(|e| fail(self, db_error("sqlite: load", name, e), None))?;
            self.open_transaction = true;
        }
        let inserted = (|| {
            let mut statement = self
                .conn
                .prepare_cached(&self.sql)
                .map_err(|e| (db_error("sqlite: load", name, e), None))?;
            for (i, row) in rows.iter().enumerate() {
                let params: Vec<SqlValue> = row.iter().map(to_sql).collect();
                if let Err(e) = statement.execute(rusqlite::params_from_iter(params)) {
                    return Err((db_error("sqlite: insert", name, e), Some(first + i as u64)));
                }
            }
            Ok(())
        })();
        if let Err((err, bad)) = inserted {
            return Err(fail(self, err, bad));
        }
        if !self.table.all_or_nothing {
            self.run("COMMIT")
                .map_err(|e| fail(self, db_error("sqlite: commit", name, e), None))?;
            self.open_transaction = false;
        }
        self.loaded.rows += rows.len() as u64;
        self.loaded.batches += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        // Rows are committed a batch at a time: nothing to hand on before that.
        Ok(())
    }

    fn commit(self) -> Result<Loaded> {
        if self.open_transaction {
            self.run("COMMIT").map_err(|e| {
                batch_error(
                    db_error("sqlite: commit", &self.name, e),
                    self.loaded.batches,
                    self.loaded.rows,
                    None,
                    Loaded::default(),
                )
            })?;
        }
        Ok(self.loaded)
    }

    fn abandon(self) -> Result<Loaded> {
        // The pipeline stopped before its end: the rows not yet in a batch were not written,
        // and an open all-or-nothing transaction is rolled back as the connection closes.
        Ok(self.table.committed(self.loaded))
    }
}
