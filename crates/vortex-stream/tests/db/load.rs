//! Loading into a table, the same checks on every server.

use std::num::NonZeroUsize;

use vortex_stream::db::{Database, Table, Value};
use vortex_stream::{ErrorKind, Pipeline, Position};

/// Loads 3500 rows into `table` (whose columns start `id, email, status`) in 1000-row batches;
/// row 2345 has a `NULL` email, which the table refuses. `rest` gives the values of the
/// columns after those three. Checks that two batches landed and the third was rolled back,
/// with an error naming it, the row, and `refusal` (the server's words).
pub(crate) async fn a_bad_row_rolls_its_batch_back(
    db: &Database,
    table: &Table,
    rest: impl Fn(i64) -> Vec<Value> + Send + Sync,
    refusal: &str,
) {
    let table = table.clone().batch(NonZeroUsize::new(1000).unwrap());
    let rows = (0..3500i64).map(|i| {
        let email = if i == 2345 {
            Value::Null
        } else {
            Value::from(format!("u{i}\t\"x\"\\@y'"))
        };
        let mut row = vec![Value::Int(i), email, Value::from("new")];
        row.extend(rest(i));
        row
    });
    let err = Pipeline::from_iter(rows)
        .load(db, table.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    let text = err.to_string();
    assert!(
        text.contains("batch 2 (rows from 2000) failed at row 2345"),
        "{text}"
    );
    assert!(
        text.contains("2000 rows in 2 earlier batches were committed"),
        "{text}"
    );
    assert!(text.contains(refusal), "{text}");
    assert_eq!(err.position().and_then(Position::record), Some(2345));
    let sql = format!("SELECT count(*), max(email) FROM {}", table.name());
    let row = db.query(sql, vec![]).first().await.unwrap().unwrap();
    assert_eq!(row.values()[0], Value::Int(2000));
    assert_eq!(
        row.values()[1],
        Value::from("u999\t\"x\"\\@y'"),
        "escapes survive the round trip"
    );
}

/// Upserts rows 1990..2010 over what [`a_bad_row_rolls_its_batch_back`] landed, with status
/// `upd` and `NULL` in the columns after the first three; all 20 end up updated or inserted.
pub(crate) async fn an_upsert_updates_what_landed(db: &Database, table: &Table, rest: usize) {
    let rows = (1990..2010i64).map(|i| {
        let mut row = vec![Value::Int(i), Value::from("re@x"), Value::from("upd")];
        row.extend(std::iter::repeat_n(Value::Null, rest));
        row
    });
    let loaded = Pipeline::from_iter(rows)
        .load(db, table.clone().upsert(["id"]))
        .await
        .unwrap();
    assert_eq!(loaded.rows, 20);
    let sql = format!("SELECT count(*) FROM {} WHERE status = 'upd'", table.name());
    let row = db.query(sql, vec![]).first().await.unwrap().unwrap();
    assert_eq!(row.values()[0], Value::Int(20));
}

/// With [`Table::all_or_nothing`], the same bad row leaves the table as it was; an error item
/// upstream too; a clean load commits every batch at its end.
pub(crate) async fn all_or_nothing_commits_everything_or_nothing(
    db: &Database,
    table: &Table,
    rest: impl Fn(i64) -> Vec<Value> + Send + Sync,
) {
    let table = table
        .clone()
        .batch(NonZeroUsize::new(1000).unwrap())
        .all_or_nothing();
    let row = |i: i64, email: Value| {
        let mut row = vec![Value::Int(i), email, Value::from("new")];
        row.extend(rest(i));
        row
    };
    let count = || crate::scalar(db, format!("SELECT count(*) FROM {}", table.name()), vec![]);
    let rows = (0..3500i64).map(|i| {
        let email = if i == 2345 {
            Value::Null
        } else {
            Value::from("a@b")
        };
        row(i, email)
    });
    let err = Pipeline::from_iter(rows)
        .load(db, table.clone())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("failed at row 2345"), "{text}");
    assert!(
        text.contains("0 rows in 0 earlier batches were committed"),
        "{text}"
    );
    assert_eq!(count().await, Value::Int(0), "nothing may land");

    let items = (0..2500i64).map(|i| {
        if i == 1500 {
            Err(vortex_stream::Error::new(ErrorKind::User, "upstream"))
        } else {
            Ok(row(i, Value::from("a@b")))
        }
    });
    let err = Pipeline::from_results(items)
        .load(db, table.clone())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("after 0 rows in 0 batches"),
        "{err}"
    );
    assert_eq!(count().await, Value::Int(0), "nothing may land");

    let loaded = Pipeline::from_iter((0..2500i64).map(|i| row(i, Value::from("a@b"))))
        .load(db, table.clone())
        .await
        .unwrap();
    assert_eq!((loaded.rows, loaded.batches), (2500, 3));
    assert_eq!(count().await, Value::Int(2500));
}
