//! `vortex convert` and `vortex export`: formats, filters, error policies, and clear errors.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

mod support;

use support::{text, vortex};

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

const ORDERS: &str = "id,email,status,amount\n1,a@x,active,10.5\n2,b@x,shipped,99\n3,c@x,active,700\n4,d@x,active,5\n";

#[test]
fn csv_to_jsonl_with_select_where_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.csv"), ORDERS).unwrap();
    let out = vortex(&[
        "convert",
        &path(dir.path(), "in.csv"),
        &path(dir.path(), "out.jsonl"),
        "--where",
        "status=active",
        "--where",
        "amount>6",
        "--select",
        "email,id",
        "--limit",
        "5",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    assert_eq!(
        got,
        "{\"email\":\"a@x\",\"id\":\"1\"}\n{\"email\":\"c@x\",\"id\":\"3\"}\n"
    );
    assert!(
        text(&out.stderr)
            .contains("vortex convert: 4 records in: 2 written, 2 filtered out, 0 rejected"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_csv_column_that_select_or_where_misnames_is_an_error_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = path(dir.path(), "in.csv");
    std::fs::write(&input, ORDERS).unwrap();
    // The flags, and the option and name the error must give.
    let cases: [(&[&str], &str); 4] = [
        (&["--select", "id,emial"], "--select names \"emial\""),
        (&["--where", "stat=active"], "--where names \"stat\""),
        (
            &[
                "--where",
                "amount>6",
                "--where",
                "amuont<100",
                "--on-error",
                "skip",
            ],
            "--where names \"amuont\"",
        ),
        (
            &["--select", "id", "--where", "Status~act"],
            "--where names \"Status\"",
        ),
    ];
    for (flags, names) in cases {
        for out_name in ["out.csv", "out.jsonl"] {
            let output = path(dir.path(), out_name);
            std::fs::write(&output, "an earlier output\n").unwrap();
            let mut args = vec!["convert", input.as_str(), output.as_str()];
            args.extend_from_slice(flags);
            let out = vortex(&args);
            let stderr = text(&out.stderr);
            assert!(!out.status.success(), "{flags:?} to {out_name}: {stderr}");
            assert!(
                stderr.contains(names)
                    && stderr
                        .contains("which is not a column of the input (id, email, status, amount)")
                    && stderr.contains("record 0"),
                "{flags:?} to {out_name}: {stderr}"
            );
            assert_eq!(
                std::fs::read_to_string(&output).unwrap(),
                "an earlier output\n",
                "{flags:?}: the output was replaced"
            );
        }
    }
}

#[test]
fn a_field_no_json_record_has_is_said_and_one_some_records_have_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let input = path(dir.path(), "in.jsonl");
    std::fs::write(
        &input,
        "{\"id\":1,\"tag\":\"x\"}\n{\"id\":2}\n{\"id\":3,\"tag\":null}\n",
    )
    .unwrap();
    let output = path(dir.path(), "out.jsonl");
    let out = vortex(&[
        "convert", &input, &output, "--select", "id,tga", "--where", "id!=2",
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: --select names \"tga\", which no record had"),
        "{stderr}"
    );
    assert!(!stderr.contains("\"id\", which"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "{\"id\":1}\n{\"id\":3}\n"
    );
    // A field in some records only is data: no warning.
    let out = vortex(&["convert", &input, &output, "--select", "id,tag"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    // A ragged CSV read with --flexible: its rows need not have every column, so a name is
    // checked against all of them, at the end.
    let csv = path(dir.path(), "ragged.csv");
    std::fs::write(&csv, "a,b\n1\n2,3\n").unwrap();
    let out = vortex(&["convert", &csv, &output, "--flexible", "--where", "c=1"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: --where names \"c\", which no record had"),
        "{stderr}"
    );
    let out = vortex(&["convert", &csv, &output, "--flexible", "--select", "b"]);
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn stdin_to_stdout_with_a_regex_and_gzip_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vortex"))
        .args([
            "convert",
            "-",
            "-",
            "--from",
            "csv",
            "--to",
            "csv",
            "--where",
            "email~^[bc]@",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), ORDERS.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "id,email,status,amount\n2,b@x,shipped,99\n3,c@x,active,700\n"
    );

    std::fs::write(dir.path().join("in.csv"), ORDERS).unwrap();
    let out = vortex(&[
        "convert",
        &path(dir.path(), "in.csv"),
        &path(dir.path(), "out.csv.gz"),
    ]);
    assert!(out.status.success());
    let bytes = std::fs::read(dir.path().join("out.csv.gz")).unwrap();
    assert!(bytes.starts_with(&[0x1f, 0x8b]));
}

#[test]
fn malformed_input_under_each_error_policy() {
    let dir = tempfile::tempdir().unwrap();
    let input = path(dir.path(), "bad.jsonl");
    std::fs::write(&input, "{\"a\":1}\n{\"a\":\n{\"a\":3}\nnot json\n").unwrap();

    let out = vortex(&["convert", &input, &path(dir.path(), "fail.csv")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("jsonl source: decode:") && stderr.contains("line 2"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("fail.csv").exists(),
        "a failed run leaves no output file"
    );

    let out = vortex(&[
        "convert",
        &input,
        &path(dir.path(), "skip.csv"),
        "--on-error",
        "skip",
    ]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("skip.csv")).unwrap(),
        "a\n1\n3\n"
    );
    assert!(
        text(&out.stderr)
            .contains("4 records in: 2 written, 0 filtered out, 2 rejected (decode: 2)"),
        "{}",
        text(&out.stderr)
    );

    let dead = path(dir.path(), "dead.jsonl");
    let out = vortex(&[
        "convert",
        &input,
        &path(dir.path(), "dl.csv"),
        "--on-error",
        &format!("dead-letter={dead}"),
    ]);
    assert!(out.status.success());
    let letters = std::fs::read_to_string(&dead).unwrap();
    assert_eq!(letters.lines().count(), 2);
    assert!(
        letters.contains("\"line\":4") && letters.contains("\"raw\":\"not json\""),
        "{letters}"
    );

    let out = vortex(&[
        "convert",
        &input,
        &path(dir.path(), "budget.csv"),
        "--on-error",
        "skip",
        "--max-errors",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("error budget exceeded"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_flags_and_missing_files_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = vortex(&["convert", "/no/such/file.csv", &path(dir.path(), "o.csv")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("/no/such/file.csv") && stderr.contains("No such file"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("vortex:")).count(),
        1,
        "{stderr}"
    );

    let out = vortex(&["convert", "in.xyz", "out.csv"]);
    assert!(
        text(&out.stderr).contains("cannot tell the format of in.xyz: use --from"),
        "{}",
        text(&out.stderr)
    );
    let out = vortex(&["convert", "a.csv", "b.csv", "--where", "amount<lots"]);
    assert!(text(&out.stderr).contains("is not a number"));
    let out = vortex(&["convert", "a.csv", "b.csv", "--on-error", "ignore"]);
    assert!(text(&out.stderr).contains("expected fail, skip or dead-letter=PATH"));
    assert!(!text(&out.stderr).contains("panicked"));
}

#[test]
fn export_streams_a_query_as_csv_or_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", path(dir.path(), "t.db"));
    // The demo builds a small SQLite database of orders to export from.
    let out = vortex(&[
        "demo",
        "--rows",
        "300",
        "--out-dir",
        &path(dir.path(), "demo"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let demo_db = format!(
        "sqlite://{}",
        path(&dir.path().join("demo"), "orders-300.db")
    );

    let out = vortex(&[
        "export",
        "--db",
        &demo_db,
        "--query",
        "SELECT id, status FROM orders WHERE id <= ?1 ORDER BY id",
        "--param",
        "3",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "id,status\n1,shipped\n2,cancelled\n3,active\n"
    );

    let out = vortex(&[
        "export",
        "--db",
        &demo_db,
        "--query",
        "SELECT id FROM orders WHERE id = 1",
        "--format",
        "jsonl",
    ]);
    assert_eq!(text(&out.stdout), "{\"id\":1}\n");

    let out = vortex(&["export", "--db", &db, "--query", "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("vortex: sqlite: open: sqlite://"),
        "{}",
        text(&out.stderr)
    );

    let out = vortex(&[
        "export",
        "--db",
        "postgres://app:hunter2@127.0.0.1:1/x",
        "--query",
        "SELECT 1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("postgres://app:***@127.0.0.1:1/x") && !stderr.contains("hunter2"),
        "{stderr}"
    );

    let out = vortex(&["export", "--db", "oracle://x", "--query", "SELECT 1"]);
    assert!(
        text(&out.stderr).contains("unknown database URL"),
        "{}",
        text(&out.stderr)
    );
}

/// `vortex export` on the servers, when `./scripts/test` has started them (skipped with a
/// notice otherwise, a failure under `CI=true`).
#[test]
fn export_reads_postgresql_and_mariadb() {
    for (variable, create, query) in [
        (
            "VORTEX_PG_URL",
            "CREATE TABLE IF NOT EXISTS vortex_cli_export (id BIGINT, name TEXT, amount NUMERIC(6,2)); \
             DELETE FROM vortex_cli_export; INSERT INTO vortex_cli_export VALUES (1, 'a,b', 1.50), (2, NULL, 2)",
            "SELECT id, name, amount FROM vortex_cli_export WHERE id >= $1 ORDER BY id",
        ),
        (
            "VORTEX_MYSQL_URL",
            "CREATE TABLE IF NOT EXISTS vortex_cli_export (id BIGINT, name TEXT, amount DECIMAL(6,2)); \
             DELETE FROM vortex_cli_export; INSERT INTO vortex_cli_export VALUES (1, 'a,b', 1.50), (2, NULL, 2)",
            "SELECT id, name, amount FROM vortex_cli_export WHERE id >= ? ORDER BY id",
        ),
    ] {
        let what = if variable.contains("PG") { "PostgreSQL" } else { "MariaDB" };
        let Some(url) = support::server(variable, what) else {
            continue;
        };
        // Set up through the library's own statement runner, as a user of the CLI would not.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let db = vortex_stream::db::Database::open(&url).unwrap();
        runtime.block_on(db.execute(create, vec![])).unwrap();
        let out = vortex(&["export", "--db", &url, "--query", query, "--param", "1"]);
        assert!(out.status.success(), "{variable}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            "id,name,amount\n1,\"a,b\",1.50\n2,,2.00\n",
            "{variable}"
        );
        runtime
            .block_on(db.execute("DROP TABLE vortex_cli_export", vec![]))
            .unwrap();
    }
}

/// A server that accepts the connection and never answers: `export` fails with a timeout
/// naming it, instead of hanging.
#[test]
fn export_gives_up_on_a_database_that_never_answers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold every connection, saying nothing.
    let held = std::thread::spawn(move || {
        let mut sockets = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::time::Instant::now() < until {
            if let Ok((socket, _)) = listener.accept() {
                sockets.push(socket);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    let started = std::time::Instant::now();
    let url = format!("postgres://app@127.0.0.1:{port}/x?connect_timeout=1");
    let out = vortex(&["export", "--db", &url, "--query", "SELECT 1"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not answer within 1s"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    drop(held);
}

#[test]
fn stats_and_logs_say_what_each_stage_did() {
    let dir = tempfile::tempdir().unwrap();
    let input = path(dir.path(), "in.csv");
    std::fs::write(&input, format!("{ORDERS}5,e@x,active\n")).unwrap();

    let out = vortex(&[
        "convert",
        &input,
        &path(dir.path(), "out.jsonl"),
        "--where",
        "status=active",
        "--on-error",
        "skip",
        "--stats",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let row = |name: &str| {
        stderr
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in:\n{stderr}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // Five records read, one of them too short: an error out of the reader; three kept.
    assert_eq!(row("read+decode")[1..3], ["5", "1"], "{stderr}");
    assert_eq!(row("check+filter")[1..3], ["3", "0"], "{stderr}");
    assert!(stderr.contains("(consumer)"), "{stderr}");

    // -vv: the skipped record, as an event with its position.
    let out = vortex(&[
        "convert",
        &input,
        &path(dir.path(), "out2.jsonl"),
        "--on-error",
        "skip",
        "-vv",
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let skipped = stderr
        .lines()
        .find(|l| l.contains("record skipped"))
        .unwrap_or_else(|| panic!("no skipped record in:\n{stderr}"));
    assert!(
        skipped.contains("DEBUG") && skipped.contains("line 6"),
        "{skipped}"
    );

    // --log-format json: one object a line.
    let out = vortex(&[
        "convert",
        &input,
        &path(dir.path(), "out3.jsonl"),
        "--on-error",
        "skip",
        "-vv",
        "--log-format",
        "json",
    ]);
    let stderr = text(&out.stderr);
    let event = stderr
        .lines()
        .find(|l| l.contains("record skipped"))
        .unwrap_or_else(|| panic!("no skipped record in:\n{stderr}"));
    let event: serde_json::Value = serde_json::from_str(event).unwrap();
    assert_eq!(event["level"], "DEBUG", "{event}");
    assert_eq!(event["message"], "record skipped", "{event}");

    // Without -v, nothing of it.
    let out = vortex(&[
        "convert",
        &input,
        &path(dir.path(), "out4.jsonl"),
        "--on-error",
        "skip",
    ]);
    assert!(!text(&out.stderr).contains("record skipped"));
}
