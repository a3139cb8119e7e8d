//! Databases as sources and sinks, on SQLite (bundled) and on the real PostgreSQL
//! and MariaDB servers named by `VORTEX_PG_URL` and `VORTEX_MYSQL_URL` (skipped with a notice
//! when unset, and a failure under `CI=true`).

// Test helpers outside `#[test]` functions may fail loudly: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(any(feature = "postgres", feature = "mysql"))]
mod errors;
mod keyset;
mod load;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod transaction;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use vortex_stream::db::{Database, Value};

/// A server's URL from `variable`; `None` (with a notice) when unset outside CI, a failure
/// under `CI=true`.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn server(variable: &str, what: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{variable} is not set: under CI the {what} tests must run")
        }
        _ => {
            eprintln!("skipped: {variable} is not set (run ./scripts/test to start {what})");
            None
        }
    }
}

/// A name no other test run uses.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// The first value of the first row of `sql`.
async fn scalar(db: &Database, sql: impl Into<String>, params: Vec<Value>) -> Value {
    db.query(sql, params)
        .first()
        .await
        .unwrap()
        .expect("a row")
        .values()[0]
        .clone()
}

/// What `probe` says once it says zero, or after 3 seconds: for work that must stop soon.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn settled<F, Fut>(probe: F) -> Value
where
    F: Fn() -> Fut,
    Fut: Future<Output = Value>,
{
    let deadline = Instant::now() + Duration::from_secs(3);
    while probe().await != Value::Int(0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    probe().await
}
