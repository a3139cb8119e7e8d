//! `vortex job` and `vortex worker` on the real NATS JetStream server (`VORTEX_NATS_URL`) and
//! PostgreSQL (`VORTEX_PG_URL`): a job shared by several workers writes exactly what one
//! process writes, a worker killed mid-item loses nothing, a failing item is retried then
//! recorded as failed, and a table loaded by items twice holds each row once.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{orders_csv, text, vortex};

/// A queue no other run uses, deleted when dropped.
struct TestQueue {
    url: String,
    name: String,
}

impl TestQueue {
    fn new(prefix: &str) -> Option<TestQueue> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let url = support::server("VORTEX_NATS_URL", "NATS JetStream")?;
        let name = format!(
            "t{prefix}{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        Some(TestQueue { url, name })
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        all.extend(["--nats", self.url.as_str(), "--queue", self.name.as_str()]);
        all
    }

    fn submit(&self, job: &Path, ack_wait: &str) -> String {
        let job = job.to_str().unwrap();
        let out = vortex(&self.args(&["job", "submit", job, "--ack-wait", ack_wait]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    }

    fn worker(&self, name: &str, log: &Path) -> Child {
        Command::new(env!("CARGO_BIN_EXE_vortex"))
            .args(self.args(&["worker", "--exit-when-idle", "--idle", "1", "--name", name]))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    }

    fn status(&self, id: &str) -> serde_json::Value {
        let out = vortex(&self.args(&["job", "status", id, "--json"]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn wait(&self, id: &str) -> std::process::Output {
        vortex(&self.args(&["job", "wait", id, "--timeout", "60"]))
    }

    /// Waits for the job, which must end with every item done.
    fn wait_done(&self, id: &str) {
        let out = self.wait(id);
        let said = text(&out.stdout) + &text(&out.stderr);
        assert!(out.status.success(), "{said}");
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Its own thread and runtime: a test's panic must not stop the clean-up.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let client = async_nats::connect(url.as_str()).await.unwrap();
                let js = async_nats::jetstream::new(client);
                let _ = js
                    .delete_stream(format!("VORTEX_{}", name.to_uppercase()))
                    .await;
                let _ = js.delete_stream(format!("KV_vortex_{name}")).await;
            });
        })
        .join();
    }
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_owned()
}

/// The files of a folder and their bytes, sorted by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    all.sort();
    all
}

fn run_locally(job: &Path) {
    let out = vortex(&["job", "run", job.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_name_the_csv_header_lacks_fails_the_job_before_any_item_runs() {
    let dir = tempfile::tempdir().unwrap();
    orders_csv(&dir.path().join("orders.csv"), 100);
    for (transform, says) in [
        (
            "select = [\"id\", \"custmer\"]",
            "the job's select names \"custmer\"",
        ),
        (
            "where = [\"Status=active\"]",
            "the job's where names \"Status\"",
        ),
    ] {
        let job = write(
            &dir.path().join("job.toml"),
            &format!(
                "[source]\nfile = \"orders.csv\"\n\n[transform]\n{transform}\n\n[sink]\ndir = \"out\"\n"
            ),
        );
        let out = vortex(&["job", "run", job.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains(says)
                && stderr.contains("which is not a column of")
                && stderr.contains("(id, customer, status, amount)"),
            "{stderr}"
        );
        assert!(files(&dir.path().join("out")).is_empty(), "an item ran");
    }
}

#[test]
fn a_csv_job_shared_by_two_workers_writes_what_one_process_writes() {
    let Some(queue) = TestQueue::new("csv") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    orders_csv(&dir.path().join("orders.csv"), 30_000);
    let job = |out: &str| {
        format!(
            "[source]\nfile = \"orders.csv\"\nbytes_per_item = 50000\n\n\
             [transform]\nwhere = [\"status=active\"]\nselect = [\"id\", \"customer\", \"amount\"]\n\n\
             [sink]\ndir = \"{out}\"\n"
        )
    };
    let local = write(&dir.path().join("local.toml"), &job("local"));
    let shared = write(&dir.path().join("shared.toml"), &job("shared"));
    run_locally(&local);

    let id = queue.submit(&shared, "5");
    let mut workers: Vec<Child> = ["w1", "w2"]
        .iter()
        .map(|name| queue.worker(name, &dir.path().join(format!("{name}.log"))))
        .collect();
    queue.wait_done(&id);
    for worker in &mut workers {
        assert!(worker.wait().unwrap().success());
    }

    let (local, shared) = (
        files(&dir.path().join("local")),
        files(&dir.path().join("shared")),
    );
    assert!(
        local.len() > 10,
        "the file was cut into {} items",
        local.len() - 1
    );
    assert_eq!(
        local.iter().map(|f| &f.0).collect::<Vec<_>>(),
        shared.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(
        local == shared,
        "the parts differ from the single-process run"
    );

    // The parts, in the manifest's order, are the whole file converted in one piece.
    let whole = dir.path().join("whole.csv");
    let input = dir.path().join("orders.csv");
    let out = vortex(&[
        "convert",
        input.to_str().unwrap(),
        whole.to_str().unwrap(),
        "--where",
        "status=active",
        "--select",
        "id,customer,amount",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("shared/manifest.json")).unwrap())
            .unwrap();
    let mut joined = Vec::new();
    for part in manifest["parts"].as_array().unwrap() {
        let bytes = std::fs::read(
            dir.path()
                .join("shared")
                .join(part["file"].as_str().unwrap()),
        )
        .unwrap();
        let body = bytes.splitn(2, |b| *b == b'\n').nth(1).unwrap_or_default();
        joined.extend_from_slice(body);
    }
    let whole = std::fs::read(&whole).unwrap();
    let body = whole.splitn(2, |b| *b == b'\n').nth(1).unwrap();
    assert!(
        joined == body,
        "the parts joined are not the whole conversion"
    );
    assert_eq!(manifest["records"], 10_000);

    let status = queue.status(&id);
    assert_eq!(status["done"], status["items"]);
    assert_eq!(status["records"]["read"], 30_000);
    assert_eq!(status["records"]["written"], 10_000);
    assert_eq!(status["records"]["filtered"], 20_000);
    assert_eq!(status["records"]["rejected"], 0);
}

#[test]
fn a_bad_record_fails_its_item_after_its_retries_and_wait_says_where() {
    let Some(queue) = TestQueue::new("bad") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    for n in 0..3 {
        orders_csv(&dir.path().join(format!("in/{n}.csv")), 100);
    }
    // Line 42 of the second file is one field short.
    let bad = dir.path().join("in/1.csv");
    let mut lines: Vec<String> = std::fs::read_to_string(&bad)
        .unwrap()
        .split('\n')
        .map(str::to_owned)
        .collect();
    lines[41] = "9999,short".to_owned();
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let job = write(
        &dir.path().join("job.toml"),
        "[source]\nfiles = [\"in/*.csv\"]\n\n[sink]\ndir = \"out\"\nformat = \"jsonl\"\n\n\
         [retry]\nmax_attempts = 2\nbackoff_seconds = 0.2\n",
    );
    let id = queue.submit(&job, "5");
    let mut worker = queue.worker("w1", &dir.path().join("w1.log"));
    let out = queue.wait(&id);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(said.contains("1 items failed"), "{said}");
    assert!(
        said.contains("in/1.csv") && said.contains("line 42"),
        "{said}"
    );
    assert!(worker.wait().unwrap().success());

    let status = queue.status(&id);
    assert_eq!(
        (status["done"].as_u64(), status["failed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(status["errors"][0]["attempt"], 2);
    assert_eq!(status["errors"][0]["item"], 1);
    // The failed item left no part behind, not even a half-written one.
    let names: Vec<String> = files(&dir.path().join("out"))
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(names, ["part-000000.jsonl", "part-000002.jsonl"]);
}

/// A PostgreSQL client on its own thread's runtime.
struct Pg {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Pg {
    fn connect(url: &str) -> Pg {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            drop(tokio::runtime::Handle::current().spawn(connection));
            client
        });
        Pg { runtime, client }
    }

    fn run(&self, sql: &str) {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .unwrap();
    }

    fn one(&self, sql: &str) -> i64 {
        self.runtime
            .block_on(self.client.query_one(sql, &[]))
            .unwrap()
            .get(0)
    }
}

#[test]
fn a_worker_killed_mid_item_loses_nothing_and_a_table_load_twice_holds_each_row_once() {
    let Some(queue) = TestQueue::new("pg") else {
        return;
    };
    let Some(pg_url) = support::server("VORTEX_PG_URL", "PostgreSQL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let table = format!("job_src_{}", queue.name);
    let target = format!("job_dst_{}", queue.name);
    let pg = Pg::connect(&pg_url);
    pg.run(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, customer text, amount numeric(12,2));
         INSERT INTO {table} SELECT g, 'customer ' || g || CASE WHEN g % 17 = 0 THEN ', \"quoted\"' ELSE '' END, g * 1.25 FROM generate_series(1, 20000) g;
         CREATE TABLE {target} (id bigint PRIMARY KEY, customer text, amount numeric(12,2));"
    ));
    let job = |sink: &str| {
        format!(
            "[source]\ndb = \"{pg_url}\"\ntable = \"{table}\"\nkey = \"id\"\nrows_per_item = 2500\n\n\
             [transform]\nselect = [\"id\", \"customer\", \"amount\"]\n\n{sink}"
        )
    };
    let local = write(
        &dir.path().join("local.toml"),
        &job("[sink]\ndir = \"local\"\n"),
    );
    let parts = write(
        &dir.path().join("parts.toml"),
        &job("[sink]\ndir = \"parts\"\n"),
    );
    let load = write(
        &dir.path().join("load.toml"),
        &job(&format!(
            "[sink]\ndb = \"{pg_url}\"\ntable = \"{target}\"\nkey = [\"id\"]\n"
        )),
    );
    run_locally(&local);

    // The source is locked: the first worker's first item hangs in its query until it is
    // killed, so that item must be delivered again, to the second worker.
    let id = queue.submit(&parts, "2");
    let lock = Pg::connect(&pg_url);
    lock.run(&format!(
        "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;"
    ));
    let mut first = queue.worker("first", &dir.path().join("first.log"));
    let started = Instant::now();
    loop {
        let status = queue.status(&id);
        if status["running"] == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no item started: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    lock.run("COMMIT;");
    let mut second = queue.worker("second", &dir.path().join("second.log"));
    queue.wait_done(&id);
    assert!(second.wait().unwrap().success());
    let status = queue.status(&id);
    assert!(status["redeliveries"].as_u64().unwrap() >= 1, "{status}");
    assert!(
        files(&dir.path().join("local")) == files(&dir.path().join("parts")),
        "the parts differ from the single-process run"
    );
    assert_eq!(status["records"]["written"], 20_000);

    // Loaded into a table by items, twice: each row once, as in the source.
    for _ in 0..2 {
        let id = queue.submit(&load, "5");
        let mut worker = queue.worker("loader", &dir.path().join("loader.log"));
        queue.wait_done(&id);
        assert!(worker.wait().unwrap().success());
    }
    assert_eq!(pg.one(&format!("SELECT count(*) FROM {target}")), 20_000);
    let differ = pg.one(&format!(
        "SELECT count(*) FROM {table} s FULL JOIN {target} t USING (id)
         WHERE s.customer IS DISTINCT FROM t.customer OR s.amount IS DISTINCT FROM t.amount"
    ));
    assert_eq!(differ, 0);
    pg.run(&format!("DROP TABLE {table}; DROP TABLE {target};"));
}

#[test]
fn a_file_changed_after_submission_fails_its_items_and_a_file_matched_twice_is_read_once() {
    let Some(queue) = TestQueue::new("chg") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    orders_csv(&dir.path().join("orders.csv"), 2_000);
    let job = write(
        &dir.path().join("job.toml"),
        "[source]\nfile = \"orders.csv\"\nbytes_per_item = 20000\n\n[sink]\ndir = \"out\"\n\n\
         [retry]\nmax_attempts = 1\n",
    );
    let id = queue.submit(&job, "5");
    // Rows added at the front: every byte range now falls elsewhere.
    let text = std::fs::read_to_string(dir.path().join("orders.csv")).unwrap();
    let (header, rest) = text.split_once('\n').unwrap();
    std::fs::write(
        dir.path().join("orders.csv"),
        format!("{header}\n0,new,active,1.00\n{rest}"),
    )
    .unwrap();
    let mut worker = queue.worker("w1", &dir.path().join("w1.log"));
    let out = queue.wait(&id);
    let said = text_of(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("changed since the job was cut"), "{said}");
    assert!(worker.wait().unwrap().success());
    assert!(
        files(&dir.path().join("out")).is_empty(),
        "a part was written"
    );

    // Two patterns matching one file make one item, not two.
    std::fs::create_dir(dir.path().join("in")).unwrap();
    orders_csv(&dir.path().join("in/a.csv"), 10);
    let job = write(
        &dir.path().join("twice.toml"),
        "[source]\nfiles = [\"in/*.csv\", \"in/a.csv\"]\n\n[sink]\ndir = \"twice\"\n",
    );
    let id = queue.submit(&job, "5");
    assert_eq!(queue.status(&id)["items"], 1);
    let mut worker = queue.worker("w2", &dir.path().join("w2.log"));
    queue.wait_done(&id);
    assert!(worker.wait().unwrap().success());
}

fn text_of(out: &std::process::Output) -> String {
    text(&out.stdout) + &text(&out.stderr)
}

#[test]
fn records_a_job_skips_are_kept_with_their_positions_beside_the_parts() {
    let dir = tempfile::tempdir().unwrap();
    orders_csv(&dir.path().join("orders.csv"), 3_000);
    // Line 2,002 is one field short: in the second or a later item, not the first.
    let path = dir.path().join("orders.csv");
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .split('\n')
        .map(str::to_owned)
        .collect();
    lines[2_001] = "9999,short".to_owned();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let job = write(
        &dir.path().join("job.toml"),
        "[source]\nfile = \"orders.csv\"\nbytes_per_item = 20000\n\n\
         [transform]\non_error = \"skip\"\n\n[sink]\ndir = \"out\"\n",
    );
    run_locally(&job);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/manifest.json")).unwrap())
            .unwrap();
    let parts = manifest["parts"].as_array().unwrap();
    let with: Vec<&serde_json::Value> = parts.iter().filter(|p| p["rejected"] == 1).collect();
    assert_eq!(with.len(), 1, "{manifest}");
    assert_eq!(
        parts
            .iter()
            .map(|p| p["records"].as_u64().unwrap())
            .sum::<u64>()
            + 1,
        3_000
    );
    let rejects = dir
        .path()
        .join("out")
        .join(with[0]["rejects"].as_str().unwrap());
    let rejected = std::fs::read_to_string(rejects).unwrap();
    assert_eq!(rejected.lines().count(), 1);
    assert!(rejected.contains("\"line\":2002"), "{rejected}");
    assert!(rejected.contains("9999,short"), "{rejected}");
    // No other rejects file, and no temporary one left.
    let names: Vec<String> = files(&dir.path().join("out"))
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.contains("rejected")).count(),
        1,
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
}
