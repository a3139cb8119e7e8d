use std::num::NonZeroUsize;

use serde::Deserialize;
use vortex_stream::db::{Database, Table, Value};
use vortex_stream::{params, ErrorKind, Pipeline, Position};

/// A fresh database with `n` orders.
async fn orders(n: i64) -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&format!("sqlite://{}", dir.path().join("t.db").display())).unwrap();
    db.execute(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL, status TEXT, amount REAL)",
        vec![],
    )
    .await
    .unwrap();
    let loaded = Pipeline::from_iter(1..=n)
        .map(|id| {
            let status = if id % 3 == 0 { "active" } else { "shipped" };
            params![id, format!("u{id}@example.com"), status, id as f64 / 4.0]
        })
        .load(
            &db,
            Table::new("orders", ["id", "email", "status", "amount"])
                .batch(NonZeroUsize::new(10_000).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(loaded.rows, n as u64);
    (dir, db)
}

#[derive(Debug, Deserialize, PartialEq)]
struct Order {
    id: i64,
    email: String,
    amount: f64,
}

#[tokio::test]
async fn rows_stream_and_take_reads_only_a_few() {
    let (_dir, db) = orders(100_000).await;
    let first = db
        .query_as::<Order>(
            "SELECT id, email, amount FROM orders WHERE status = ?1 ORDER BY id",
            params!["active"],
        )
        .take(10)
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(first.len(), 10);
    assert_eq!(
        first[0],
        Order {
            id: 3,
            email: "u3@example.com".into(),
            amount: 0.75
        }
    );
    let fetched = db.rows_fetched();
    // Two batches taken (8 + 8), and the next (16) at most, stepped while they were.
    assert!(fetched <= 32, "take(10) fetched {fetched} rows of 33,333");
    let all = db
        .query("SELECT id FROM orders", vec![])
        .count()
        .await
        .unwrap();
    assert_eq!(all, 100_000);
}

#[tokio::test]
async fn parameters_are_bound_never_interpolated() {
    let (_dir, db) = orders(10).await;
    let evil = "active' OR '1'='1";
    let n = db
        .query("SELECT id FROM orders WHERE status = ?1", params![evil])
        .count()
        .await
        .unwrap();
    assert_eq!(n, 0);
    db.execute(
        "INSERT INTO orders (id, email, status) VALUES (?1, ?2, ?3)",
        params![99, "x'); DROP TABLE orders; --", evil],
    )
    .await
    .unwrap();
    let back = db
        .query("SELECT email, status FROM orders WHERE id = 99", vec![])
        .first()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        back.values(),
        [Value::from("x'); DROP TABLE orders; --"), Value::from(evil)]
    );
}

#[tokio::test]
async fn a_type_mismatch_or_null_names_the_column_and_row() {
    let (_dir, db) = orders(5).await;
    db.execute("UPDATE orders SET amount = 'lots' WHERE id = 4", vec![])
        .await
        .unwrap();
    let items = db
        .query_as::<Order>("SELECT id, email, amount FROM orders ORDER BY id", vec![])
        .into_inner();
    let items: Vec<_> = futures_util::StreamExt::collect(items).await;
    let err = items[3].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(err.position().and_then(Position::record), Some(3));
    assert!(err.to_string().contains("column `amount`"), "{err}");
    assert!(items[4].is_ok(), "the next row still decodes");

    db.execute("UPDATE orders SET amount = NULL WHERE id = 2", vec![])
        .await
        .unwrap();
    let err = db
        .query_as::<Order>("SELECT id, email, amount FROM orders WHERE id = 2", vec![])
        .collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("column `amount`: invalid type: Option value"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_sql_and_missing_files_are_clear_errors() {
    let (_dir, db) = orders(1).await;
    let err = db
        .query("SELEC nonsense", vec![])
        .count()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    assert!(
        err.to_string().starts_with("sqlite: prepare: sqlite://"),
        "{err}"
    );
    assert!(err.to_string().contains("syntax error"), "{err}");

    let missing = Database::open("sqlite:///no/such/dir/x.db").unwrap();
    let err = missing.query("SELECT 1", vec![]).count().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    assert!(err.to_string().contains("/no/such/dir/x.db"), "{err}");
    assert!(Database::open("oracle://x").is_err());
}

#[tokio::test]
async fn a_failed_batch_rolls_back_and_reports_what_landed() {
    let (_dir, db) = orders(0).await;
    // Row 2,503 repeats an id: its batch (2,000 to 2,999) must not land.
    let rows = (0..4000i64).map(|i| {
        let id = if i == 2503 { 7 } else { i };
        params![id, format!("u{i}@x"), "new", 1.0]
    });
    let err = Pipeline::from_iter(rows)
        .load(
            &db,
            Table::new("orders", ["id", "email", "status", "amount"]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    assert_eq!(err.position().and_then(Position::record), Some(2503));
    let text = err.to_string();
    assert!(
        text.contains("batch 2 (rows from 2000) failed at row 2503"),
        "{text}"
    );
    assert!(
        text.contains("2000 rows in 2 earlier batches were committed"),
        "{text}"
    );
    assert!(text.contains("UNIQUE constraint failed"), "{text}");
    let landed = db
        .query("SELECT count(*) FROM orders", vec![])
        .first()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(landed.values(), [Value::Int(2000)]);
}

#[tokio::test]
async fn an_upsert_updates_existing_rows() {
    let (_dir, db) = orders(10).await;
    let loaded = Pipeline::from_iter([
        params![5, "new@x", "active", 9.0],
        params![11, "n11@x", "active", 1.0],
    ])
    .load(
        &db,
        Table::new("orders", ["id", "email", "status", "amount"]).upsert(["id"]),
    )
    .await
    .unwrap();
    assert_eq!(loaded.rows, 2);
    let row = db
        .query("SELECT email FROM orders WHERE id = 5", vec![])
        .first()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.values(), [Value::from("new@x")]);
    let n = db
        .query("SELECT id FROM orders", vec![])
        .count()
        .await
        .unwrap();
    assert_eq!(n, 11);
}

#[tokio::test]
async fn an_error_upstream_keeps_committed_batches_and_says_so() {
    let (_dir, db) = orders(0).await;
    let rows = (0..2500i64).map(|i| {
        if i == 1700 {
            Err(vortex_stream::Error::new(ErrorKind::Decode, "csv source").with_message("bad row"))
        } else {
            Ok(params![i, "e", "s", 0.0])
        }
    });
    let err = Pipeline::from_results(rows)
        .load(
            &db,
            Table::new("orders", ["id", "email", "status", "amount"]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.to_string()
            .contains("after 1000 rows in 1 batches were committed"),
        "{err}"
    );
    let landed = db
        .query("SELECT count(*) FROM orders", vec![])
        .first()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(landed.values(), [Value::Int(1000)]);
}

#[tokio::test]
async fn keyset_pages_cover_the_scan_and_resume() {
    let (_dir, db) = orders(2500).await;
    crate::keyset::pages_cover_the_scan_and_resume(&db, "orders", 2500, "?1").await;
}

#[tokio::test]
async fn copy_out_is_postgres_only() {
    let (_dir, db) = orders(1).await;
    let err = db
        .copy_out("SELECT 1", vortex_stream::db::CopyFormat::Text)
        .count()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    assert!(err.to_string().contains("PostgreSQL"), "{err}");
}

#[tokio::test]
async fn all_or_nothing_loads_commit_everything_or_nothing() {
    let (_dir, db) = orders(0).await;
    let table = Table::new("orders", ["id", "email", "status", "amount"]);
    crate::load::all_or_nothing_commits_everything_or_nothing(&db, &table, |_| {
        vec![Value::Float(1.5)]
    })
    .await;
}

#[tokio::test]
async fn rows_write_as_csv_with_their_column_names_first() {
    let (dir, db) = orders(3).await;
    let path = dir.path().join("out.csv");
    let written = db
        .query(
            "SELECT id, amount, email, NULL AS note, -id * 1.5 AS neg FROM orders ORDER BY id",
            vec![],
        )
        .write(
            vortex_stream::sinks::CsvRecords::new(),
            vortex_stream::io::Output::path(&path),
        )
        .await
        .unwrap();
    assert_eq!(written.rows, 3);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "id,amount,email,note,neg\n1,0.25,u1@example.com,,-1.5\n2,0.5,u2@example.com,,-3\n3,0.75,u3@example.com,,-4.5\n"
    );
    let empty = db
        .query("SELECT id FROM orders WHERE id > 99", vec![])
        .write(
            vortex_stream::sinks::CsvRecords::new().headers(false),
            vortex_stream::io::Output::path(&path),
        )
        .await
        .unwrap();
    assert_eq!(empty.rows, 0);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
}

/// Each open SQLite query holds a blocking thread: past the handle's bound, a query waits for
/// another to end, and fails clearly if none does in time, rather than taking the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_queries_past_the_bound_wait_for_one_to_end_or_fail_clearly() {
    use futures_util::StreamExt as _;
    let (_dir, db) = orders(5_000).await;
    let wait = std::time::Duration::from_millis(300);
    let db = db.max_open_queries(2, wait);
    let open = || {
        let db = db.clone();
        async move {
            let mut rows = db.query("SELECT id FROM orders ORDER BY id", vec![]);
            assert!(rows.next().await.unwrap().is_ok());
            rows
        }
    };
    let first = open().await;
    let second = open().await;

    let started = std::time::Instant::now();
    let items: Vec<_> =
        futures_util::StreamExt::collect(db.query("SELECT id FROM orders", vec![])).await;
    assert!(started.elapsed() >= wait, "failed before its wait");
    assert_eq!(items.len(), 1, "one error, then the end");
    let err = items[0].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Capacity);
    assert!(err.is_fatal());
    assert!(err.to_string().contains("max_open_queries"), "{err}");

    // A query that comes while both are taken runs as soon as one ends.
    let waiting = db.query("SELECT id FROM orders", vec![]).count();
    let end_one = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(first);
    };
    let (counted, ()) = tokio::join!(waiting, end_one);
    assert_eq!(counted.unwrap(), 5_000);
    // The rest read on from where they were.
    let rest = second.count().await.unwrap();
    assert_eq!(rest, 4_999);
}
