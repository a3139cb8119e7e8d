//! `vortex gen`: deterministic data, and clear errors.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn vortex() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vortex"))
}

fn gen(args: &[&str], out: &std::path::Path) -> std::process::Output {
    vortex()
        .arg("gen")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn generated_data_is_deterministic_and_shaped_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    assert!(gen(&["orders", "--rows", "3000", "--format", "csv"], &a)
        .status
        .success());
    assert!(gen(&["orders", "--rows", "3000", "--format", "csv"], &b)
        .status
        .success());
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(text, std::fs::read_to_string(&b).unwrap());
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("id,customer,email,status,amount,created_at")
    );
    let records = |text: &str| -> Vec<csv::StringRecord> {
        csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(Result::unwrap)
            .collect()
    };
    let rows = records(&text);
    assert_eq!(rows.len(), 3000);
    assert_eq!(rows.iter().filter(|r| &r[3] == "active").count(), 1000);
    // Realistic customers: about 5% need quoting (a comma, a quote, a line break), many
    // have accents; every row still has its six fields.
    let needs_quotes = |name: &str| name.contains([',', '"', '\n']);
    let quoted = rows.iter().filter(|r| needs_quotes(&r[1])).count();
    assert!((90..=210).contains(&quoted), "{quoted} of 3000 quoted");
    assert!(
        rows.iter().any(|r| r[1].contains('\n')),
        "no name over two lines"
    );
    assert!(
        rows.iter().any(|r| r[1].contains('"')),
        "no name with quotes"
    );
    assert!(rows.iter().filter(|r| !r[1].is_ascii()).count() > 1000);
    assert!(rows.iter().all(|r| r.len() == 6));
    // --plain: the same orders, no field to quote.
    let plain = dir.path().join("plain.csv");
    assert!(gen(
        &["orders", "--rows", "3000", "--format", "csv", "--plain"],
        &plain
    )
    .status
    .success());
    let plain = std::fs::read_to_string(&plain).unwrap();
    assert!(!plain.contains('"') && plain.lines().count() == 3001);
    let plain_rows = records(&plain);
    assert!(plain_rows
        .iter()
        .zip(&rows)
        .all(|(p, r)| p[0] == r[0] && (2..6).all(|i| p[i] == r[i])));

    let logs = dir.path().join("logs.jsonl.gz");
    assert!(
        gen(&["logs", "--rows", "20000", "--format", "jsonl"], &logs)
            .status
            .success()
    );
    let bytes = std::fs::read(&logs).unwrap();
    assert!(
        bytes.starts_with(&[0x1f, 0x8b]),
        "the .gz extension compresses"
    );
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
        .unwrap();
    let errors = text
        .lines()
        .filter(|l| l.contains("\"level\":\"error\""))
        .count();
    assert!(
        (150..250).contains(&errors),
        "about 1% errors, got {errors}"
    );
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    for field in ["ts", "level", "service", "msg", "latency_ms", "user_id"] {
        assert!(first.get(field).is_some(), "missing {field}");
    }
}

#[test]
fn bad_arguments_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = gen(&["orders", "--format", "parquet"], &dir.path().join("x"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'parquet'"));
    let out = gen(
        &["orders", "--rows", "5", "--format", "csv"],
        std::path::Path::new("/no/such/dir/x.csv"),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("vortex: writing /no/such/dir/x.csv: "),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn orders_go_into_a_sqlite_database_the_same_as_into_csv() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orders.db");
    let out = gen(&["orders", "--rows", "999", "--format", "sqlite"], &db);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = dir.path().join("orders.csv");
    assert!(gen(&["orders", "--rows", "999", "--format", "csv"], &csv)
        .status
        .success());
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (rows, active): (i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(status = 'active') FROM orders",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, active), (999, 333));
    let (id, email, created): (i64, String, String) = conn
        .query_row(
            "SELECT id, email, created_at FROM orders WHERE id = 7",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let row = csv::Reader::from_reader(text.as_bytes())
        .records()
        .nth(6)
        .unwrap()
        .unwrap();
    assert_eq!(&row[0], id.to_string());
    assert!(row[2] == *email && row[5] == *created, "{row:?}");

    let out = gen(&["logs", "--rows", "5", "--format", "sqlite"], &db);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("orders only"));
}
