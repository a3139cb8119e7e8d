//! Keyset pagination: a long scan read as pages of `WHERE key > last ORDER BY key LIMIT n`,
//! each page with the token that resumes the scan after it.

use std::num::NonZeroUsize;
use std::sync::Arc;

use futures_core::stream::BoxStream;

use super::{Backend, Database, Row, Value};
use crate::core::Size;
use crate::{Error, ErrorKind, Pipeline, Position, Result};

/// A scan of a query's rows in pages ordered by a unique key: see [`Database::pages`].
///
/// Each page is its own short query (`WHERE key > $last ORDER BY key LIMIT n` around the
/// given query), so a scan holds no transaction or cursor open between pages, sees rows
/// committed meanwhile past its position, and can resume from a saved token after a crash or
/// a restart.
///
/// The key must be a column of the query's result, unique and never `NULL`: rows that share
/// a key across a page boundary would be skipped, and a `NULL` key is an error.
#[derive(Clone, Debug)]
pub struct Keyset {
    sql: String,
    params: Vec<Value>,
    key: String,
    page: NonZeroUsize,
    after: Option<Value>,
    until: Option<Value>,
}

impl Keyset {
    /// Pages of the rows of `sql` (with `params` bound), ordered by the column `key`; 1000
    /// rows a page.
    pub fn new(sql: impl Into<String>, params: Vec<Value>, key: impl Into<String>) -> Self {
        let sql: String = sql.into();
        Keyset {
            sql: sql.trim().trim_end_matches(';').to_owned(),
            params,
            key: key.into(),
            page: NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN),
            after: None,
            until: None,
        }
    }

    /// Rows per page.
    #[must_use]
    pub fn page_size(mut self, rows: impl Size) -> Self {
        let rows = rows.non_zero("page_size");
        self.page = rows;
        self
    }

    /// Starts after the row whose key is `token`: the [`Page::resume`] of the last page
    /// processed.
    #[must_use]
    pub fn after(mut self, token: Value) -> Self {
        self.after = Some(token);
        self
    }

    /// Ends the scan with the row whose key is `token` (or the last key below it): with
    /// [`after`](Keyset::after), one range of keys `(after, until]` of a scan cut into pieces
    /// by [`Database::cuts`].
    #[must_use]
    pub fn until(mut self, token: Value) -> Self {
        self.until = Some(token);
        self
    }
}

/// One page of a [`Keyset`] scan.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// The page's rows, in key order.
    pub rows: Vec<Row>,
    /// The key of the page's last row: [`Keyset::after`] with it resumes the scan after this
    /// page.
    pub resume: Value,
}

impl Database {
    /// The rows of a [`Keyset`] scan, a page at a time; the scan ends after the first page
    /// shorter than the page size.
    ///
    /// Memory: one page of rows (and the rows of the page being fetched).
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::db::{Database, Keyset, Value};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let url = format!("sqlite://{}", dir.path().join("shop.db").display());
    /// let db = Database::open(&url)?;
    /// db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT)", vec![]).await?;
    /// db.execute(
    ///     "INSERT INTO orders WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 25) SELECT v, 'new' FROM n",
    ///     vec![],
    /// )
    /// .await?;
    /// let scan = Keyset::new("SELECT id, status FROM orders", vec![], "id")
    ///     .page_size(10);
    /// let pages = db.pages(scan.clone()).collect::<Vec<_>>().await?;
    /// assert_eq!(pages.iter().map(|p| p.rows.len()).collect::<Vec<_>>(), [10, 10, 5]);
    /// assert_eq!(pages[0].resume, Value::Int(10));
    ///
    /// // Resume after the first page, as after a restart.
    /// let rest = db.pages(scan.after(Value::Int(10))).collect::<Vec<_>>().await?;
    /// assert_eq!(rest.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn pages(&self, keyset: Keyset) -> Pipeline<BoxStream<'static, Result<Page>>> {
        let db = self.clone();
        Pipeline::generate(move |mut y| async move {
            let mut after = keyset.after.clone();
            let mut seen = 0u64;
            loop {
                let (sql, params) = db.page_query(&keyset, after.as_ref());
                let mut rows: Vec<Row> = db.query(sql, params).collect().await?;
                let full = rows.len() == keyset.page.get();
                for row in &mut rows {
                    row.set_index(seen);
                    seen += 1;
                }
                let Some(last) = rows.last() else { break };
                let resume = match last.get(&keyset.key) {
                    Some(Value::Null) => Err("is NULL: keyset keys must be unique and never NULL"),
                    None => Err("is not a column of the query's result"),
                    Some(key) => Ok(key.clone()),
                }
                .map_err(|problem| {
                    Error::new(ErrorKind::Database, "database: pages")
                        .with_position(
                            Position::new()
                                .with_source(Arc::from(db.name()))
                                .with_record(last.index()),
                        )
                        .with_message(format!("the key `{}` {problem}", keyset.key))
                })?;
                after = Some(resume.clone());
                y.emit(Page { rows, resume }).await;
                if !full {
                    break;
                }
            }
            Ok(())
        })
        .boxed()
    }

    /// The rows of a [`Keyset`] scan, one at a time: [`pages`](Database::pages), flattened.
    pub fn scan(&self, keyset: Keyset) -> Pipeline<BoxStream<'static, Result<Row>>> {
        self.pages(keyset).flat_map(|page| page.rows).boxed()
    }

    /// The keys that cut a [`Keyset`] scan into ranges of `rows` rows: the key of every
    /// `rows`-th row, in order. The ranges `(previous cut, cut]`, and after the last cut the
    /// rest, read with [`Keyset::after`] and [`Keyset::until`], hold every row of the scan
    /// once: pieces of one scan that separate processes (or machines) can read.
    ///
    /// Reads only the key column, one short query per range (`ORDER BY key LIMIT 1 OFFSET
    /// rows - 1`, an index range scan where the key is indexed). Memory: one key.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::db::{Database, Keyset, Value};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let url = format!("sqlite://{}", dir.path().join("shop.db").display());
    /// let db = Database::open(&url)?;
    /// db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)", vec![]).await?;
    /// db.execute(
    ///     "INSERT INTO orders WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 25) SELECT v FROM n",
    ///     vec![],
    /// )
    /// .await?;
    /// let scan = Keyset::new("SELECT id FROM orders", vec![], "id");
    /// let cuts = db.cuts(scan.clone(), 10).collect::<Vec<_>>().await?;
    /// assert_eq!(cuts, [Value::Int(10), Value::Int(20)]);
    ///
    /// // The second of three pieces: keys 11 to 20.
    /// let piece = scan.after(Value::Int(10)).until(Value::Int(20));
    /// assert_eq!(db.scan(piece).count().await?, 10);
    /// # Ok(())
    /// # }
    /// ```
    pub fn cuts(
        &self,
        keyset: Keyset,
        rows: impl Size,
    ) -> Pipeline<BoxStream<'static, Result<Value>>> {
        let rows = rows.non_zero("cuts");
        let db = self.clone();
        Pipeline::generate(move |mut y| async move {
            let mut after = keyset.after.clone();
            loop {
                let (sql, params) = db.range_query(
                    &keyset,
                    after.as_ref(),
                    true,
                    &format!("LIMIT 1 OFFSET {}", rows.get() - 1),
                );
                let found: Vec<Row> = db.query(sql, params).collect().await?;
                let Some(key) = found
                    .into_iter()
                    .next()
                    .and_then(|row| row.into_values().pop())
                else {
                    break;
                };
                if key == Value::Null {
                    return Err(
                        Error::new(ErrorKind::Database, "database: cuts").with_message(format!(
                            "the key `{}` is NULL: keyset keys must be unique and never NULL",
                            keyset.key
                        )),
                    );
                }
                after = Some(key.clone());
                y.emit(key).await;
            }
            Ok(())
        })
        .boxed()
    }

    /// One page's query and parameters, in the database's dialect.
    fn page_query(&self, keyset: &Keyset, after: Option<&Value>) -> (String, Vec<Value>) {
        self.range_query(keyset, after, false, &format!("LIMIT {}", keyset.page))
    }

    /// The rows of the scan after `after` (up to its end, if it has one), ordered by the key,
    /// limited by `limit`; only the key column when `key_only`.
    fn range_query(
        &self,
        keyset: &Keyset,
        after: Option<&Value>,
        key_only: bool,
        limit: &str,
    ) -> (String, Vec<Value>) {
        let mut params = keyset.params.clone();
        let (key, placeholder): (String, fn(usize) -> String) = match &self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(_) => (super::Table::quote(&keyset.key), |n| format!("?{n}")),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => (super::Table::quote(&keyset.key), |n| format!("${n}")),
            #[cfg(feature = "mysql")]
            Backend::Mysql(_) => (format!("`{}`", keyset.key.replace('`', "``")), |_| {
                "?".to_owned()
            }),
        };
        let mut filters = Vec::new();
        for (bound, op) in [(after, ">"), (keyset.until.as_ref(), "<=")] {
            if let Some(value) = bound {
                params.push(value.clone());
                filters.push(format!("{key} {op} {}", placeholder(params.len())));
            }
        }
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filters.join(" AND "))
        };
        let columns = if key_only { key.as_str() } else { "*" };
        let sql = format!(
            "SELECT {columns} FROM ({}) AS vortex_keyset{filter} ORDER BY {key} {limit}",
            keyset.sql
        );
        (sql, params)
    }
}
