//! Bad SQL, type mismatches and `NULL`s, the same checks on every server.

use serde::Deserialize;
use vortex_stream::db::Database;
use vortex_stream::{ErrorKind, Position};

/// An order as the server tests read it.
#[derive(Debug, Deserialize, PartialEq)]
pub(crate) struct Order {
    pub(crate) id: i64,
    pub(crate) email: String,
    pub(crate) amount: f64,
    pub(crate) created: String,
}

/// On `table` (orders 1 to 5 with `id, email, amount, created`): bad SQL is refused in the
/// server's words (`syntax`), a text column read into a number names the column and the row,
/// and so does a `NULL` read into a field that is not an `Option`.
pub(crate) async fn mistakes_name_the_column_and_row(db: &Database, table: &str, syntax: &str) {
    let err = db.query("SELEC 1", vec![]).count().await.unwrap_err();
    assert!(err.to_string().contains(syntax), "{err}");

    let sql = format!("SELECT id, email, email AS amount, created FROM {table} ORDER BY id");
    let err = db.query_as::<Order>(sql, vec![]).count().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(err.position().and_then(Position::record), Some(0));
    assert!(err.to_string().contains("column `amount`"), "{err}");

    db.execute(
        format!("UPDATE {table} SET created = NULL WHERE id = 3"),
        vec![],
    )
    .await
    .unwrap();
    let sql = format!("SELECT id, email, amount, created FROM {table} ORDER BY id");
    let items: Vec<_> =
        futures_util::StreamExt::collect(db.query_as::<Order>(sql, vec![]).into_inner()).await;
    let err = items[2].as_ref().unwrap_err();
    assert!(
        err.to_string()
            .contains("column `created`: invalid type: Option value"),
        "{err}"
    );
    assert_eq!(err.position().and_then(Position::record), Some(2));
}
