//! Loads into PostgreSQL: each batch streamed through `COPY FROM STDIN` (binary), or sent as
//! multi-row `INSERT`s; a failed batch rolled back and its first bad row found.

use std::fmt::Write as _;
use std::pin::pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::SinkExt;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

use super::{connect, pg_error};
use crate::db::{
    load_in_batches, upsert_clause, BatchTarget, IntoValues, LoadMethod, Loaded, OnCommit, Table,
    Value,
};
use crate::{Error, Result};
pub(in crate::db) async fn load<S, T>(
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
pub(super) struct PgTarget<'a> {
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
pub(super) async fn copy_batch(
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
pub(super) fn sent_directly(ty: &Type) -> bool {
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
pub(super) struct Inserts {
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
pub(super) fn insert_statement(table: &Table, casts: &[String], rows: usize) -> String {
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
pub(super) async fn insert_batch(
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
pub(super) async fn first_bad_row(
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
pub(super) fn copy_line(e: &tokio_postgres::Error) -> Option<u64> {
    let context = e.as_db_error()?.where_()?;
    let rest = context.split("line ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// One row in `COPY` text format: tab-separated, `\N` for `NULL`, backslash escapes.
pub(super) fn encode_row(row: &[Value], out: &mut BytesMut) {
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

pub(super) struct Hex<'a>(&'a mut BytesMut);

impl std::fmt::Write for Hex<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}
