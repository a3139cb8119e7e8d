//! Transactions on each database, and SQLite's read-modify-write over a streaming query.

use std::time::Duration;

use futures_util::TryStreamExt as _;
use vortex_stream::db::{Database, Value};
use vortex_stream::{params, ErrorKind, Pipeline};

/// A database and a table name for the tests below: a fresh SQLite file, or a unique table
/// on a server. `lock` is what a server's read for update needs (`FOR UPDATE`); SQLite's
/// transactions take the write lock at `BEGIN`.
struct Bank {
    db: Database,
    table: String,
    lock: &'static str,
    _dir: Option<tempfile::TempDir>,
}

impl Bank {
    async fn new(
        db: Database,
        table: String,
        lock: &'static str,
        dir: Option<tempfile::TempDir>,
    ) -> Bank {
        db.execute(
            format!("CREATE TABLE {table} (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)"),
            vec![],
        )
        .await
        .unwrap();
        db.execute(format!("INSERT INTO {table} VALUES (1, 0), (2, 0)"), vec![])
            .await
            .unwrap();
        Bank {
            db,
            table,
            lock,
            _dir: dir,
        }
    }

    async fn balance(&self, id: i64) -> i64 {
        match crate::scalar(
            &self.db,
            format!("SELECT balance FROM {} WHERE id = {id}", self.table),
            vec![],
        )
        .await
        {
            Value::Int(n) => n,
            other => panic!("balance is {other:?}"),
        }
    }

    /// Reads a balance in a transaction and writes it back plus `amount`.
    async fn deposit(&self, id: i64, amount: i64) {
        let (table, lock) = (&self.table, self.lock);
        let mut tx = self.db.begin().await.unwrap();
        let row = tx
            .fetch_optional(
                &format!("SELECT balance FROM {table} WHERE id = {id}{lock}"),
                vec![],
            )
            .await
            .unwrap()
            .expect("the account");
        let Value::Int(balance) = row.values()[0] else {
            panic!("{row:?}")
        };
        // Another transaction's read now would see the old balance: without the lock it
        // would write a lost update.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let changed = tx
            .execute(
                &format!(
                    "UPDATE {table} SET balance = {} WHERE id = {id}",
                    balance + amount
                ),
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(changed, 1);
        tx.commit().await.unwrap();
    }

    /// What every database must do.
    async fn check(&self) {
        let table = &self.table;
        // Committed: both writes, at once; before the commit, another connection sees neither.
        let mut tx = self.db.begin().await.unwrap();
        tx.execute(
            &format!("UPDATE {table} SET balance = balance + 5 WHERE id = 1"),
            vec![],
        )
        .await
        .unwrap();
        tx.execute(
            &format!("UPDATE {table} SET balance = balance - 5 WHERE id = 2"),
            vec![],
        )
        .await
        .unwrap();
        let inside = tx
            .fetch_all(
                &format!("SELECT id, balance FROM {table} ORDER BY id"),
                vec![],
            )
            .await
            .unwrap();
        let inside: Vec<_> = inside.iter().map(|row| row.values().to_vec()).collect();
        assert_eq!(
            inside,
            [params![1, 5], params![2, -5]],
            "a transaction sees its own writes"
        );
        assert_eq!((self.balance(1).await, self.balance(2).await), (0, 0));
        tx.commit().await.unwrap();
        assert_eq!((self.balance(1).await, self.balance(2).await), (5, -5));

        // Dropped, or rolled back: nothing lasts.
        let mut tx = self.db.begin().await.unwrap();
        tx.execute(
            &format!("UPDATE {table} SET balance = 1000 WHERE id = 1"),
            vec![],
        )
        .await
        .unwrap();
        drop(tx);
        let mut tx = self.db.begin().await.unwrap();
        tx.execute(
            &format!("UPDATE {table} SET balance = 2000 WHERE id = 2"),
            vec![],
        )
        .await
        .unwrap();
        tx.rollback().await.unwrap();
        // The dropped transaction's rollback may still be on its way on a server: a new
        // transaction waits for its lock, then reads the old balance.
        let mut tx = self.db.begin().await.unwrap();
        let row = tx
            .fetch_optional(
                &format!("SELECT balance FROM {table} WHERE id = 1{}", self.lock),
                vec![],
            )
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(row.unwrap().values(), [Value::Int(5)]);
        assert_eq!(self.balance(2).await, -5);

        // A failing statement is an error naming the database; the transaction can still
        // be rolled back.
        let mut tx = self.db.begin().await.unwrap();
        let err = tx
            .execute("UPDATE no_such_table SET x = 1", vec![])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Database);
        tx.rollback().await.unwrap();

        // Read-modify-write from 4 tasks at once, 5 times each: no update lost.
        let before = self.balance(1).await;
        let tasks = (0..4).map(|_| async {
            for _ in 0..5 {
                self.deposit(1, 1).await;
            }
        });
        futures_util::future::join_all(tasks).await;
        assert_eq!(self.balance(1).await, before + 20);
    }
}

#[cfg(feature = "sqlite")]
async fn sqlite() -> Bank {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&format!(
        "sqlite://{}",
        dir.path().join("bank.db").display()
    ))
    .unwrap();
    Bank::new(db, "accounts".into(), "", Some(dir)).await
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_transactions_commit_roll_back_and_lose_no_update() {
    sqlite().await.check().await;
}

/// The checks on the server `variable` names (skipped with a notice outside CI when unset),
/// on a table of their own, dropped after.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn check_on_server(variable: &str, what: &str) {
    let Some(url) = crate::server(variable, what) else {
        return;
    };
    let db = Database::open(&url).unwrap();
    let bank = Bank::new(db, crate::unique("vortex_bank"), " FOR UPDATE", None).await;
    bank.check().await;
    let drop_table = format!("DROP TABLE {}", bank.table);
    bank.db.execute(drop_table, vec![]).await.unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_transactions_commit_roll_back_and_lose_no_update() {
    check_on_server("VORTEX_PG_URL", "PostgreSQL").await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_transactions_commit_roll_back_and_lose_no_update() {
    check_on_server("VORTEX_MYSQL_URL", "MariaDB").await;
}

/// Each row of a streaming query updated as it comes, on a fresh SQLite file: in WAL mode (the
/// default) the writes commit while the query reads; in SQLite's old journal mode the first
/// write waits for the reader, which waits for the write, until the busy timeout ends it.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_updates_the_rows_of_a_query_as_they_come() {
    async fn run(wal: bool) -> (tempfile::TempDir, Database, vortex_stream::Result<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("rmw.db").display());
        let db = Database::open(&url).unwrap().sqlite_wal(wal);
        db.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, seen INTEGER)",
            vec![],
        )
        .await
        .unwrap();
        Pipeline::from_iter(0..2_000i64)
            .map(|id| params![id, 0])
            .load(&db, vortex_stream::db::Table::new("items", ["id", "seen"]))
            .await
            .unwrap();
        let writer = db.clone();
        let updated = db
            .query("SELECT id FROM items ORDER BY id", vec![])
            .then(move |row| {
                let writer = writer.clone();
                async move {
                    writer
                        .execute(
                            "UPDATE items SET seen = 1 WHERE id = ?1",
                            row.values().to_vec(),
                        )
                        .await
                }
            })
            .try_fold(0u64, |n, changed| async move { Ok(n + changed?) })
            .await;
        (dir, db, updated)
    }

    let (_dir, db, updated) = run(true).await;
    assert_eq!(updated.unwrap(), 2_000);
    let seen = crate::scalar(&db, "SELECT sum(seen) FROM items", vec![]).await;
    assert_eq!(seen, Value::Int(2_000));
    let mode = crate::scalar(&db, "PRAGMA journal_mode", vec![]).await;
    assert_eq!(mode, Value::Text("wal".into()));

    let (_dir, db, updated) = run(false).await;
    let err = updated.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    assert!(err.to_string().contains("locked"), "{err}");
    let mode = crate::scalar(&db, "PRAGMA journal_mode", vec![]).await;
    assert_eq!(mode, Value::Text("delete".into()));
}
