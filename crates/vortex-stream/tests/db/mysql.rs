//! MariaDB (or MySQL), on the real server named by `VORTEX_MYSQL_URL`.

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::errors::Order;
use crate::unique;
use vortex_stream::db::{Database, Table, Value};
use vortex_stream::{params, ErrorKind, Pipeline};

/// The server's URL; `None` (with a notice) when unset outside CI, a failure under `CI=true`.
fn server() -> Option<String> {
    crate::server("VORTEX_MYSQL_URL", "MariaDB")
}

struct Orders {
    db: Database,
    table: String,
}

impl Orders {
    /// A table of `n` orders, loaded through the sink.
    async fn create(url: &str, n: i64) -> Orders {
        let db = Database::open(url).unwrap();
        let table = unique("vortex_orders");
        db.execute(
            format!(
                "CREATE TABLE {table} (id BIGINT PRIMARY KEY, email VARCHAR(100) NOT NULL, status VARCHAR(20), amount DECIMAL(10,2), created DATE, seen TIMESTAMP NULL, raw VARBINARY(8))"
            ),
            vec![],
        )
        .await
        .unwrap();
        let rows = (1..=n).map(|g| {
            params![
                g,
                format!("u{g}@example.com"),
                if g % 3 == 0 { "active" } else { "shipped" },
                format!("{}.{:02}", g / 4, g % 4 * 25),
                format!("2026-01-{:02}", g % 28 + 1),
                "2026-03-04 05:06:07",
                vec![0u8, 0xff]
            ]
        });
        let loaded = Pipeline::from_iter(rows)
            .load(
                &db,
                Table::new(
                    &table,
                    ["id", "email", "status", "amount", "created", "seen", "raw"],
                )
                .batch(NonZeroUsize::new(10_000).unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(loaded.rows, n as u64);
        Orders { db, table }
    }

    async fn drop_table(self) {
        self.db
            .execute(format!("DROP TABLE {}", self.table), vec![])
            .await
            .unwrap();
    }
}

/// How many statements carrying `tag` in their text the server is running.
async fn running(admin: &Database, tag: &str) -> Value {
    crate::scalar(
        admin,
        "SELECT count(*) FROM information_schema.processlist WHERE info LIKE ? AND id <> CONNECTION_ID()",
        params![format!("%{tag}%")],
    )
    .await
}

#[tokio::test]
async fn rows_stream_typed_and_take_reads_ten() {
    let Some(url) = server() else { return };
    let orders = Orders::create(&url, 100_000).await;
    let sql = format!(
        "SELECT id, email, amount, created FROM {} WHERE status = ? ORDER BY id",
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
    assert_eq!(orders.db.rows_fetched(), 10, "take(10) reads ten rows");
    let all = orders
        .db
        .query(format!("SELECT * FROM {}", orders.table), vec![])
        .count()
        .await
        .unwrap();
    assert_eq!(all, 100_000);
    let row = orders
        .db
        .query(
            format!(
                "SELECT amount, seen, raw, id * 2 AS twice, CAST(7 AS UNSIGNED) AS u FROM {} WHERE id = 7",
                orders.table
            ),
            vec![],
        )
        .first()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.values(),
        [
            Value::from("1.75"),
            Value::from("2026-03-04T05:06:07Z"),
            Value::Bytes(vec![0, 0xff]),
            Value::Int(14),
            Value::Int(7),
        ]
    );
    orders.drop_table().await;
}

#[tokio::test]
async fn dropping_the_stream_ends_the_query_on_the_server() {
    let Some(url) = server() else { return };
    let db = Database::open(&url).unwrap();
    let admin = Database::open(&url).unwrap();

    // A statement still computing its first row.
    let tag = unique("vortex_drop");
    let mut rows = Box::pin(db.query(
        format!("SELECT /* {tag} */ BENCHMARK(5000000000, MD5('x'))"),
        vec![],
    ));
    let pending = tokio::time::timeout(
        Duration::from_millis(500),
        futures_util::StreamExt::next(&mut rows),
    )
    .await;
    assert!(pending.is_err(), "the statement should still be running");
    assert_eq!(running(&admin, &tag).await, Value::Int(1));
    drop(rows);
    let left = crate::settled(|| running(&admin, &tag)).await;
    assert_eq!(left, Value::Int(0), "still running");

    // A long result read in part.
    let tag = unique("vortex_take");
    let sql = format!("SELECT /* {tag} */ a.seq FROM seq_1_to_1000000 a, seq_1_to_100 b");
    let taken = db.query(sql, vec![]).take(100).count().await.unwrap();
    assert_eq!(taken, 100);
    let left = crate::settled(|| running(&admin, &tag)).await;
    assert_eq!(left, Value::Int(0), "still running");
}

#[tokio::test]
async fn a_killed_connection_is_an_error_not_a_clean_end() {
    let Some(url) = server() else { return };
    let db = Database::open(&url).unwrap();
    let admin = Database::open(&url).unwrap();
    let tag = unique("vortex_kill");
    let mut rows = Box::pin(
        db.query(
            format!("SELECT /* {tag} */ a.seq FROM seq_1_to_1000000 a, seq_1_to_10 b"),
            vec![],
        )
        .into_inner(),
    );
    for _ in 0..100 {
        futures_util::StreamExt::next(&mut rows)
            .await
            .unwrap()
            .unwrap();
    }
    let id = admin
        .query(
            "SELECT id FROM information_schema.processlist WHERE info LIKE ? AND id <> CONNECTION_ID()",
            params![format!("%{tag}%")],
        )
        .first()
        .await
        .unwrap()
        .expect("the query's connection");
    admin
        .execute(
            format!("KILL CONNECTION {}", id.values()[0].to_text()),
            vec![],
        )
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
    let Some(url) = server() else { return };
    let db = Database::open("mysql://app:hunter2@127.0.0.1:1/test").unwrap();
    let err = db.query("SELECT 1", vec![]).count().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    let text = err.to_string();
    assert!(text.contains("mysql://app:***@127.0.0.1:1/test"), "{text}");
    assert!(text.contains("refused"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");

    let host = url.split('@').nth(1).unwrap_or("127.0.0.1:3306/test");
    let db = Database::open(&format!("mariadb://no_such_user:pw@{host}")).unwrap();
    let err = db.execute("SELECT 1", vec![]).await.unwrap_err();
    assert!(err.to_string().contains("no_such_user"), "{err}");
    assert!(!err.to_string().contains(":pw@"), "{err}");
}

#[tokio::test]
async fn bad_sql_type_mismatches_and_nulls_are_clear_errors() {
    let Some(url) = server() else { return };
    let orders = Orders::create(&url, 5).await;
    crate::errors::mistakes_name_the_column_and_row(&orders.db, &orders.table, "SQL syntax").await;
    orders.drop_table().await;
}

#[tokio::test]
async fn parameters_are_bound_never_interpolated() {
    let Some(url) = server() else { return };
    let orders = Orders::create(&url, 3).await;
    let evil = "x' OR '1'='1";
    let n = orders
        .db
        .query(
            format!("SELECT id FROM {} WHERE status = ?", orders.table),
            params![evil],
        )
        .count()
        .await
        .unwrap();
    assert_eq!(n, 0);
    let table = Table::new(&orders.table, ["id", "email"]);
    Pipeline::from_iter([params![10, "'); DROP TABLE x; --"]])
        .load(&orders.db, table)
        .await
        .unwrap();
    let row = orders
        .db
        .query(
            format!("SELECT email FROM {} WHERE id = 10", orders.table),
            vec![],
        )
        .first()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.values()[0], Value::from("'); DROP TABLE x; --"));
    orders.drop_table().await;
}

#[tokio::test]
async fn inserts_load_in_batches_and_a_bad_row_rolls_its_batch_back() {
    let Some(url) = server() else { return };
    let orders = Orders::create(&url, 0).await;
    let table = Table::new(&orders.table, ["id", "email", "status", "amount"]);
    let amount = |_| vec![Value::from("1.50")];
    crate::load::a_bad_row_rolls_its_batch_back(&orders.db, &table, amount, "cannot be null").await;
    crate::load::an_upsert_updates_what_landed(&orders.db, &table, 1).await;
    orders.drop_table().await;
}

#[tokio::test]
async fn keyset_pages_cover_the_scan_and_resume() {
    let Some(url) = server() else { return };
    let orders = Orders::create(&url, 2500).await;
    crate::keyset::pages_cover_the_scan_and_resume(&orders.db, &orders.table, 2500, "?").await;
    orders.drop_table().await;
}

#[tokio::test]
async fn all_or_nothing_loads_commit_everything_or_nothing() {
    let Some(url) = server() else { return };
    let orders = Orders::create(&url, 0).await;
    let table = Table::new(&orders.table, ["id", "email", "status", "amount"]);
    let amount = |_| vec![Value::from("1.50")];
    crate::load::all_or_nothing_commits_everything_or_nothing(&orders.db, &table, amount).await;
    orders.drop_table().await;
}

#[tokio::test]
async fn a_statement_timeout_ends_a_long_query_with_an_error() {
    let Some(url) = server() else { return };
    let db = vortex_stream::db::Database::open(&url)
        .unwrap()
        .statement_timeout(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = db
        .query("SELECT SLEEP(5)", vec![])
        .drain()
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), vortex_stream::ErrorKind::Database);
    assert!(err.to_string().contains("max_statement_time"), "{err}");
    let rows = db.query("SELECT 1", vec![]).count().await.unwrap();
    assert_eq!(rows, 1);
}
