//! `vortex convert` with a broker at one end, on the real NATS JetStream and RabbitMQ servers
//! (`VORTEX_NATS_URL`, `VORTEX_AMQP_URL`): files into a broker and a broker into part files,
//! acknowledged after each part is in place, and a worker killed mid-run.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};

mod support;

use support::{orders_csv, text, vortex};

/// A name no other run uses.
fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Every record of the part files in `dir`, by id; duplicates counted.
fn parts(dir: &Path) -> (BTreeMap<u64, String>, usize, usize) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let (mut records, mut lines) = (BTreeMap::new(), 0);
    for name in &names {
        assert!(
            name.extension().is_some_and(|e| e == "jsonl"),
            "a part not renamed into place: {}",
            name.display()
        );
        for line in std::fs::read_to_string(name).unwrap().lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let id: u64 = value["id"].as_str().unwrap().parse().unwrap();
            if let Some(earlier) = records.insert(id, line.to_owned()) {
                assert_eq!(earlier, line, "record {id} written twice, differently");
            }
            lines += 1;
        }
    }
    (records, lines, names.len())
}

struct Nats {
    url: String,
    js: jetstream::Context,
    stream: String,
    subject: String,
}

impl Nats {
    async fn new(prefix: &str) -> Option<Nats> {
        let url = support::server("VORTEX_NATS_URL", "NATS JetStream")?;
        let client = async_nats::connect(url.as_str()).await.unwrap();
        let js = jetstream::new(client);
        let stream = unique(prefix).to_uppercase();
        let subject = format!("{}.in", stream.to_lowercase());
        js.create_stream(stream::Config {
            name: stream.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
        let url = url.trim_end_matches('/').to_owned();
        Some(Nats {
            url,
            js,
            stream,
            subject,
        })
    }

    async fn messages(&self) -> u64 {
        self.js
            .get_stream(&self.stream)
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap()
            .state
            .messages
    }

    async fn consumer(&self, name: &str) -> jetstream::consumer::Info {
        self.js
            .get_stream(&self.stream)
            .await
            .unwrap()
            .consumer_info(name)
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_file_goes_through_jetstream_into_part_files_exactly() {
    let Some(nats) = Nats::new("cli_parts").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    orders_csv(&input, 1000);
    let publish_to = format!("{}/{}", nats.url, nats.subject);

    // Twice: the second run's messages carry the same ids and are stored once.
    for _ in 0..2 {
        let out = vortex(&["convert", input.to_str().unwrap(), &publish_to]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("1000 written"),
            "{}",
            text(&out.stderr)
        );
    }
    assert_eq!(nats.messages().await, 1000);

    let parts_dir = dir.path().join("parts");
    let read_from = format!("{}/{}/reader", nats.url, nats.stream);
    let out = vortex(&[
        "convert",
        &read_from,
        parts_dir.to_str().unwrap(),
        "--idle",
        "1",
        "--part-records",
        "300",
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("1000 written in 4 part files"), "{stderr}");
    assert!(stderr.contains("1000 acknowledged"), "{stderr}");
    let (records, lines, files) = parts(&parts_dir);
    assert_eq!((records.len(), lines, files), (1000, 1000, 4));

    // The part files hold exactly what a plain conversion of the file writes.
    let plain = dir.path().join("plain.jsonl");
    let out = vortex(&["convert", input.to_str().unwrap(), plain.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected: Vec<String> = std::fs::read_to_string(&plain)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(records.into_values().collect::<Vec<_>>(), expected);
    let info = nats.consumer("reader").await;
    assert_eq!(
        (
            info.ack_floor.stream_sequence,
            info.num_ack_pending,
            info.num_pending
        ),
        (1000, 0, 0)
    );
    nats.js.delete_stream(&nats.stream).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_nothing_and_the_next_one_gets_its_messages_again() {
    let Some(nats) = Nats::new("cli_kill").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    let n = 60_000;
    orders_csv(&input, n);
    let out = vortex(&[
        "convert",
        input.to_str().unwrap(),
        &format!("{}/{}", nats.url, nats.subject),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let parts_dir = dir.path().join("parts");
    let read_from = format!("{}/{}/workers", nats.url, nats.stream);
    let worker = |idle: &str| {
        Command::new(env!("CARGO_BIN_EXE_vortex"))
            .args(["convert", &read_from, parts_dir.to_str().unwrap()])
            .args([
                "--idle",
                idle,
                "--part-records",
                "2000",
                "--window",
                "4000",
                "--ack-wait",
                "2",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The first worker is killed once it has committed a few parts, in the middle of others.
    let mut first = worker("30");
    let started = Instant::now();
    loop {
        let done = std::fs::read_dir(&parts_dir).map_or(0, |d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "jsonl")
            })
            .count()
        });
        if done >= 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first worker wrote nothing"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first worker ended early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    // Its half-written part, if any, is a temporary file, never a part.
    for entry in std::fs::read_dir(&parts_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "tmp") {
            std::fs::remove_file(path).unwrap();
        }
    }

    // The second worker gets everything the first did not acknowledge, after the ack wait.
    let second = worker("4").wait_with_output().unwrap();
    let stderr = text(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    eprintln!("second worker: {stderr}");
    let again: u64 = stderr
        .split("acknowledged, ")
        .nth(1)
        .and_then(|rest| rest.split(" handed back, ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the summary reports the redeliveries");
    assert!(
        again > 0,
        "the killed worker's messages were not delivered again: {stderr}"
    );

    // Exactly the input: every id once (a record in two parts is the same record, as an
    // upsert would keep it), and the same text as a plain conversion.
    let (records, lines, _) = parts(&parts_dir);
    assert_eq!(records.len() as u64, n, "records lost");
    assert!(lines as u64 >= n);
    let plain = dir.path().join("plain.jsonl");
    let out = vortex(&["convert", input.to_str().unwrap(), plain.to_str().unwrap()]);
    assert!(out.status.success());
    let expected: Vec<String> = std::fs::read_to_string(&plain)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        records.into_values().eq(expected),
        "the records differ from the input"
    );
    eprintln!("{} records in {lines} lines, {again} redelivered", n);
    let info = nats.consumer("workers").await;
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0));
    nats.js.delete_stream(&nats.stream).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_to_part_files_and_bad_urls_are_refused_clearly() {
    let Some(url) = support::server("VORTEX_AMQP_URL", "RabbitMQ") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    orders_csv(&input, 500);
    let queue = unique("cli_queue");
    // Declared by a publish through the default exchange? No: declared here, by a consumer
    // of the library, so that the messages have somewhere to go.
    let connection = lapin::Connection::connect(
        &url,
        lapin::ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio::current()),
    )
    .await
    .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_declare(
            &queue,
            lapin::options::QueueDeclareOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let base = url.split('?').next().unwrap();
    let out = vortex(&[
        "convert",
        input.to_str().unwrap(),
        &format!("{base}?routing_key={queue}"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let parts_dir = dir.path().join("parts");
    let out = vortex(&[
        "convert",
        &format!("{base}?queue={queue}"),
        parts_dir.to_str().unwrap(),
        "--idle",
        "1",
        "--part-records",
        "200",
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("guest:guest"),
        "credentials in the summary: {stderr}"
    );
    let (records, lines, files) = parts(&parts_dir);
    assert_eq!((records.len(), lines, files), (500, 500, 3));
    channel
        .queue_delete(&queue, lapin::options::QueueDeleteOptions::default())
        .await
        .unwrap();

    let out = vortex(&[
        "convert",
        &format!("{base}?queue={queue}"),
        input.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is a file"),
        "{}",
        text(&out.stderr)
    );
    let out = vortex(&[
        "convert",
        "nats://127.0.0.1:4222/ONLY_STREAM",
        parts_dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("STREAM/CONSUMER"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_to_jetstream_is_stored_once_and_a_changed_row_again() {
    let Some(nats) = Nats::new("cli_export").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("shop.db");
    let out = vortex(&[
        "gen",
        "orders",
        "--rows",
        "500",
        "--format",
        "sqlite",
        "--out",
        db_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let db = format!("sqlite://{}", db_path.display());
    let to = format!("{}/{}", nats.url, nats.subject);
    let export = || {
        vortex(&[
            "export",
            "--db",
            &db,
            "--query",
            "SELECT * FROM orders ORDER BY id",
            "--out",
            &to,
        ])
    };
    for _ in 0..2 {
        let out = export();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("500 rows published"),
            "{}",
            text(&out.stderr)
        );
    }
    assert_eq!(
        nats.messages().await,
        500,
        "the same rows published twice are stored once"
    );
    // A row that changed is a new message, not a duplicate to drop.
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    conn.execute("UPDATE orders SET status = 'refunded' WHERE id = 7", [])
        .unwrap();
    drop(conn);
    let out = export();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(nats.messages().await, 501);
    nats.js.delete_stream(&nats.stream).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_loads_into_a_postgres_table_acknowledged_after_each_commit() {
    let Some(nats) = Nats::new("cli_table").await else {
        return;
    };
    let Some(pg) = support::server("VORTEX_PG_URL", "PostgreSQL") else {
        return;
    };
    let (client, connection) = tokio_postgres::connect(&pg, tokio_postgres::NoTls)
        .await
        .unwrap();
    let mut background = tokio::task::JoinSet::new();
    background.spawn(connection);
    let table = unique("cli_orders");
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, customer TEXT NOT NULL, amount NUMERIC(12,2))"
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    orders_csv(&input, 1000);
    let out = vortex(&[
        "convert",
        input.to_str().unwrap(),
        &format!("{}/{}", nats.url, nats.subject),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Read twice through two consumers: the upsert on the key keeps one row per id.
    let into = format!("{pg}?table={table}&key=id");
    for consumer in ["first", "second"] {
        let from = format!("{}/{}/{consumer}", nats.url, nats.stream);
        let out = vortex(&[
            "convert",
            &from,
            &into,
            "--select",
            "id,customer,amount",
            "--idle",
            "1",
            "--part-records",
            "300",
        ]);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("1000 acknowledged"), "{stderr}");
    }
    let row = client
        .query_one(
            &format!("SELECT count(*), sum(id)::bigint, sum(amount)::text FROM {table}"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1000);
    assert_eq!(row.get::<_, i64>(1), 1000 * 1001 / 2);
    let expected: f64 = (1..=1000u64)
        .map(|id| (id * 3) as f64 + (id % 100) as f64 / 100.0)
        .sum();
    let total: f64 = row.get::<_, String>(2).parse().unwrap();
    assert!((total - expected).abs() < 0.001, "{total} != {expected}");
    let quoted: String = client
        .query_one(&format!("SELECT customer FROM {table} WHERE id = 7"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(quoted, "the \"big\" one");
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
    nats.js.delete_stream(&nats.stream).await.unwrap();
}
