//! PostgreSQL, on the real server named by `VORTEX_PG_URL`.

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::errors::Order;
use crate::unique;
use vortex_stream::db::{CopyFormat, Database, LoadMethod, Table, Value};
use vortex_stream::io::Output;
use vortex_stream::sinks::BytesSink;
use vortex_stream::{params, ErrorKind};

/// The server's URL; `None` (with a notice) when unset outside CI, a failure under `CI=true`.
fn server() -> Option<String> {
    crate::server("VORTEX_PG_URL", "PostgreSQL")
}

/// A URL with `application_name` set, to find the query's backend in `pg_stat_activity`.
fn tagged(url: &str, app: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={app}")
}

/// How many statements of the connections named `app` the server is running.
async fn active(admin: &Database, app: &str) -> Value {
    crate::scalar(
        admin,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'",
        params![app],
    )
    .await
}

/// The same, once it reaches zero or after 3 seconds.
async fn settled(admin: &Database, app: &str) -> Value {
    crate::settled(|| active(admin, app)).await
}

struct Orders {
    db: Database,
    table: String,
}

impl Orders {
    async fn create(url: &str, n: i64) -> Orders {
        let db = Database::open(url).unwrap();
        let table = unique("vortex_orders");
        db.execute(
            format!(
                "CREATE TABLE {table} (id BIGINT PRIMARY KEY, email TEXT NOT NULL, status TEXT, amount NUMERIC(10,2), created DATE, meta JSONB)"
            ),
            vec![],
        )
        .await
        .unwrap();
        if n > 0 {
            db.execute(
                format!(
                    "INSERT INTO {table} SELECT g, 'u' || g || '@example.com', CASE WHEN g % 3 = 0 THEN 'active' ELSE 'shipped' END, g / 4.0, DATE '2026-01-01' + (g % 300)::int, jsonb_build_object('n', g) FROM generate_series(1, $1::bigint) g"
                ),
                params![n],
            )
            .await
            .unwrap();
        }
        Orders { db, table }
    }

    async fn drop_table(self) {
        self.db
            .execute(format!("DROP TABLE {}", self.table), vec![])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn rows_stream_typed_and_take_reads_about_ten() {
    let Some(url) = server() else { return };
    let orders = Orders::create(&url, 200_000).await;
    let sql = format!(
        "SELECT id, email, amount, created FROM {} WHERE status = $1 ORDER BY id",
        orders.table
    );
    let first = orders
        .db
        .query_as::<Order>(sql.as_str(), params!["active"])
        .take(10)
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(
        first[0],
        Order {
            id: 3,
            email: "u3@example.com".into(),
            amount: 0.75,
            created: "2026-01-04".into()
        }
    );
    assert_eq!(first.len(), 10);
    let fetched = orders.db.rows_fetched();
    // Two batches of 8, each fetched when asked for.
    assert_eq!(fetched, 16, "take(10) fetched {fetched} rows");
    let all = orders
        .db
        .query(format!("SELECT * FROM {}", orders.table), vec![])
        .count()
        .await
        .unwrap();
    assert_eq!(all, 200_000);
    let row = orders
        .db
        .query(
            format!("SELECT meta, amount FROM {} WHERE id = 7", orders.table),
            vec![],
        )
        .first()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.values(),
        [Value::from("{\"n\": 7}"), Value::from("1.75")]
    );
    orders.drop_table().await;
}

#[tokio::test]
async fn dropping_the_stream_ends_the_query_on_the_server() {
    let Some(url) = server() else { return };
    let app = unique("vortex_drop");
    let db = Database::open(&tagged(&url, &app)).unwrap();
    let admin = Database::open(&url).unwrap();
    // A sort of millions of rows: the first fetch keeps the server busy for a while.
    let mut rows = Box::pin(db.query(
        "SELECT g FROM generate_series(1, 20000000) g ORDER BY md5(g::text)",
        vec![],
    ));
    let pending = tokio::time::timeout(
        Duration::from_millis(700),
        futures_util::StreamExt::next(&mut rows),
    )
    .await;
    assert!(pending.is_err(), "the sort should still be running");
    assert_eq!(
        active(&admin, &app).await,
        Value::Int(1),
        "the query runs on the server"
    );
    drop(rows);
    assert_eq!(
        settled(&admin, &app).await,
        Value::Int(0),
        "no query may be left running"
    );

    // Past the batched fetches the rest streams; a consumer that stops there stops it too.
    let taken = db
        .query(
            "SELECT g, md5(g::text) FROM generate_series(1, 50000000) g",
            vec![],
        )
        .take(100_000)
        .count()
        .await
        .unwrap();
    assert_eq!(taken, 100_000);
    assert!(db.rows_fetched() < 1_000_000, "{}", db.rows_fetched());
    assert_eq!(
        settled(&admin, &app).await,
        Value::Int(0),
        "the stream must not go on"
    );
}

#[tokio::test]
async fn a_killed_connection_is_an_error_not_a_clean_end() {
    let Some(url) = server() else { return };
    let app = unique("vortex_kill");
    let db = Database::open(&tagged(&url, &app)).unwrap();
    let admin = Database::open(&url).unwrap();
    let mut rows = Box::pin(
        db.query("SELECT g FROM generate_series(1, 10000000) g", vec![])
            .into_inner(),
    );
    for _ in 0..100 {
        futures_util::StreamExt::next(&mut rows)
            .await
            .unwrap()
            .unwrap();
    }
    admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            params![app],
        )
        .drain()
        .await
        .unwrap();
    let rest: Vec<_> = futures_util::StreamExt::collect(rows).await;
    let last = rest.last().expect("an error item after the kill");
    let err = last.as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    assert!(rest.len() < 10_000_000);
}

#[tokio::test]
async fn unreachable_servers_and_bad_credentials_name_the_url_without_the_password() {
    if server().is_none() {
        return;
    }
    let db = Database::open("postgres://app:hunter2@127.0.0.1:1/test").unwrap();
    let err = db.query("SELECT 1", vec![]).count().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    let text = err.to_string();
    assert!(
        text.contains("postgres://app:***@127.0.0.1:1/test"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");

    let url = std::env::var("VORTEX_PG_URL").unwrap();
    let host = url.split('@').nth(1).unwrap_or("127.0.0.1:5432/test");
    let db = Database::open(&format!("postgres://no_such_role:pw@{host}")).unwrap();
    let err = db.execute("SELECT 1", vec![]).await.unwrap_err();
    assert!(err.to_string().contains("no_such_role"), "{err}");
    assert!(!err.to_string().contains(":pw@"), "{err}");
}

#[tokio::test]
async fn bad_sql_type_mismatches_and_nulls_are_clear_errors() {
    let Some(url) = server() else { return };
    let orders = Orders::create(&url, 5).await;
    crate::errors::mistakes_name_the_column_and_row(&orders.db, &orders.table, "syntax error")
        .await;
    orders.drop_table().await;
}

#[tokio::test]
async fn parameters_are_bound_never_interpolated() {
    let Some(url) = server() else { return };
    let orders = Orders::create(&url, 3).await;
    let evil = "x'; DROP TABLE pg_class; --";
    let n = orders
        .db
        .query(
            format!("SELECT id FROM {} WHERE status = $1", orders.table),
            params![evil],
        )
        .count()
        .await
        .unwrap();
    assert_eq!(n, 0);
    orders.drop_table().await;
}

#[tokio::test]
async fn copy_loads_in_batches_and_a_bad_row_rolls_its_batch_back() {
    let Some(url) = server() else { return };
    let orders = Orders::create(&url, 0).await;
    let table = Table::new(&orders.table, ["id", "email", "status", "amount"]);
    let amount = |_| vec![Value::from("1.50")];
    crate::load::a_bad_row_rolls_its_batch_back(&orders.db, &table, amount, "null value").await;
    crate::load::an_upsert_updates_what_landed(&orders.db, &table, 1).await;
    orders.drop_table().await;
}

#[tokio::test]
async fn keyset_pages_cover_the_scan_and_resume() {
    let Some(url) = server() else { return };
    let orders = Orders::create(&url, 2500).await;
    crate::keyset::pages_cover_the_scan_and_resume(&orders.db, &orders.table, 2500, "$1").await;
    orders.drop_table().await;
}

#[tokio::test]
async fn copy_out_streams_the_servers_csv_and_stops_when_dropped() {
    let Some(url) = server() else { return };
    let orders = Orders::create(&url, 1000).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.csv");
    let sql = format!(
        "SELECT id, email, amount FROM {} WHERE id <= 3 ORDER BY id",
        orders.table
    );
    let written = orders
        .db
        .copy_out(sql, CopyFormat::Csv { header: true })
        .write(BytesSink, Output::path(&path))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        "id,email,amount\n1,u1@example.com,0.25\n2,u2@example.com,0.50\n3,u3@example.com,0.75\n"
    );
    assert_eq!(written.bytes, text.len() as u64);

    let err = orders
        .db
        .copy_out("SELECT nope FROM nowhere", CopyFormat::Text)
        .count()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
    orders.drop_table().await;

    // A long COPY read in part: nothing is left running once the pipeline is gone.
    let app = unique("vortex_copy");
    let db = Database::open(&tagged(&url, &app)).unwrap();
    let chunks = db
        .copy_out(
            "SELECT g, md5(g::text) FROM generate_series(1, 50000000) g",
            CopyFormat::Csv { header: false },
        )
        .take(1000)
        .count()
        .await
        .unwrap();
    assert_eq!(chunks, 1000);
    let admin = Database::open(&url).unwrap();
    assert_eq!(
        settled(&admin, &app).await,
        Value::Int(0),
        "the COPY must not go on"
    );
}

#[tokio::test]
async fn inserts_load_in_batches_cast_by_column_and_find_the_bad_row() {
    let Some(url) = server() else { return };
    let orders = Orders::create(&url, 0).await;
    let table = Table::new(
        &orders.table,
        ["id", "email", "status", "amount", "created", "meta"],
    )
    .method(LoadMethod::Inserts);
    // Numeric, date and JSON columns take text, cast by the statement.
    let rest = |i| {
        vec![
            Value::from("1.50"),
            Value::from("2026-11-29"),
            Value::from(format!("{{\"n\": {i}}}")),
        ]
    };
    crate::load::a_bad_row_rolls_its_batch_back(&orders.db, &table, rest, "null value").await;
    let sql = format!(
        "SELECT sum(amount)::text, max(created)::text, max((meta->>'n')::int) FROM {}",
        orders.table
    );
    let row = orders.db.query(sql, vec![]).first().await.unwrap().unwrap();
    assert_eq!(
        row.values(),
        [
            Value::from("3000.00"),
            Value::from("2026-11-29"),
            Value::Int(1999)
        ]
    );
    crate::load::an_upsert_updates_what_landed(&orders.db, &table, 3).await;
    orders.drop_table().await;
}

#[tokio::test]
async fn all_or_nothing_loads_commit_everything_or_nothing() {
    let Some(url) = server() else { return };
    for method in [LoadMethod::Fastest, LoadMethod::Inserts] {
        let orders = Orders::create(&url, 0).await;
        let table = Table::new(&orders.table, ["id", "email", "status", "amount"]).method(method);
        let amount = |_| vec![Value::from("1.50")];
        crate::load::all_or_nothing_commits_everything_or_nothing(&orders.db, &table, amount).await;
        // Upserts over it, all or nothing too (the staging table is made and dropped per batch).
        let small = table
            .clone()
            .batch(NonZeroUsize::new(7).unwrap())
            .all_or_nothing();
        crate::load::an_upsert_updates_what_landed(&orders.db, &small, 1).await;
        orders.drop_table().await;
    }
}

#[tokio::test]
async fn a_statement_timeout_ends_a_long_query_with_an_error() {
    let Some(url) = server() else { return };
    let db = Database::open(&url)
        .unwrap()
        .statement_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = db
        .query("SELECT pg_sleep(5)", vec![])
        .drain()
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::Database);
    assert!(err.is_fatal());
    assert!(err.to_string().contains("statement timeout"), "{err}");
    // A quick query is not touched.
    let rows = db.query("SELECT 1", vec![]).count().await.unwrap();
    assert_eq!(rows, 1);
}

/// `infinity` dates and timestamps come out as the words PostgreSQL uses, never as invented
/// dates, and the days around them as dates.
#[tokio::test]
async fn infinite_dates_and_timestamps_say_so() {
    let Some(url) = server() else { return };
    let db = Database::open(&url).unwrap();
    let row = db
        .query(
            "SELECT 'infinity'::date, '-infinity'::date, 'infinity'::timestamp, \
             '-infinity'::timestamptz, '2026-11-30'::date, '2026-11-30 12:00:00+00'::timestamptz",
            vec![],
        )
        .first()
        .await
        .unwrap()
        .unwrap();
    let expected = [
        "infinity",
        "-infinity",
        "infinity",
        "-infinity",
        "2026-11-30",
        "2026-11-30T12:00:00Z",
    ];
    let expected: Vec<Value> = expected.into_iter().map(Value::from).collect();
    assert_eq!(row.values(), expected.as_slice());
}
