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
