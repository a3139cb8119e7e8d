//! NATS JetStream, on the real server: acknowledgement after commit, redelivery, dead letters,
//! de-duplicated publishing and dropped pipelines.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::Client;
use futures_util::StreamExt;
use vortex_stream::brokers::nats::{self as vnats, JetStreamSink, JetStreamSource};
use vortex_stream::ErrorPolicy;

use super::{rest_and_errors, server, unique};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Order {
    id: u64,
    note: String,
}

/// A fresh stream capturing its own subject, removed on drop.
struct Fixture {
    client: Client,
    js: jetstream::Context,
    stream: String,
    subject: String,
}

impl Fixture {
    async fn new(prefix: &str) -> Option<Fixture> {
        let url = server("VORTEX_NATS_URL", "NATS JetStream")?;
        let client = async_nats::connect(url).await.expect("connect to NATS");
        let js = jetstream::new(client.clone());
        let stream = unique(prefix).to_uppercase();
        let subject = format!("{}.in", stream.to_lowercase());
        js.create_stream(stream::Config {
            name: stream.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .expect("create the stream");
        Some(Fixture {
            client,
            js,
            stream,
            subject,
        })
    }

    async fn publish(&self, payloads: impl IntoIterator<Item = Vec<u8>>) {
        for payload in payloads {
            self.js
                .publish(self.subject.clone(), payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }

    async fn orders(&self, n: u64) {
        self.publish((1..=n).map(|id| {
            serde_json::to_vec(&Order {
                id,
                note: format!("order \"{id}\", with a comma"),
            })
            .unwrap()
        }))
        .await;
    }

    async fn consumer(&self, name: &str) -> async_nats::jetstream::consumer::Info {
        self.js
            .get_stream(&self.stream)
            .await
            .unwrap()
            .consumer_info(name)
            .await
            .unwrap()
    }

    fn source(&self, consumer: &str) -> JetStreamSource {
        JetStreamSource::new(self.client.clone(), self.stream.clone(), consumer)
            .stop_when_idle(Duration::from_millis(700))
            .window(NonZeroUsize::new(64).unwrap())
    }

    async fn remove(self) {
        self.js.delete_stream(&self.stream).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_acknowledged_before_its_commit_and_a_failed_commit_is_redelivered() {
    let Some(fx) = Fixture::new("ackafter").await else {
        return;
    };
    fx.orders(200).await;

    // First run: the first commit fails. Nothing is acknowledged; the run ends with the error.
    let err = fx
        .source("loader")
        .json::<Order>()
        .await
        .unwrap()
        .nak_delay(Duration::ZERO)
        .commit_batches(
            NonZeroUsize::new(25).unwrap(),
            Duration::from_millis(50),
            |_| async { Err::<(), _>("the database is down") },
        )
        .await
        .unwrap_err();
    assert_eq!(err.message(), "the database is down");
    let info = fx.consumer("loader").await;
    assert_eq!(
        info.ack_floor.stream_sequence, 0,
        "acknowledged before any commit"
    );

    // Second run: every message arrives (the failed batch again), each commit is checked
    // against the server's ack floor before it returns.
    let table = Arc::new(Mutex::new(BTreeSet::new()));
    let (stored, js, stream) = (Arc::clone(&table), fx.js.clone(), fx.stream.clone());
    let report = fx
        .source("loader")
        .json::<Order>()
        .await
        .unwrap()
        .commit_batches(
            NonZeroUsize::new(25).unwrap(),
            Duration::from_millis(50),
            move |batch| {
                let (stored, js, stream) = (Arc::clone(&stored), js.clone(), stream.clone());
                async move {
                    let first = batch.iter().map(|o| o.id).min().unwrap();
                    let info = js
                        .get_stream(&stream)
                        .await?
                        .consumer_info("loader")
                        .await?;
                    assert!(
                        info.ack_floor.stream_sequence < first,
                        "message {first} acknowledged before its batch committed"
                    );
                    stored.lock().unwrap().extend(batch);
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                }
            },
        )
        .await
        .unwrap();
    let table = table.lock().unwrap().clone();
    assert_eq!(table.len(), 200);
    assert_eq!(
        table.iter().map(|o| o.id).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<_>>()
    );
    assert_eq!((report.acked, report.undecided, report.open), (200, 0, 0));
    let info = fx.consumer("loader").await;
    assert_eq!(info.ack_floor.stream_sequence, 200);
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0));
    assert!(info.num_redelivered > 0 || info.delivered.stream_sequence >= 200);
    fx.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_keep_acknowledgement_on_the_real_server() {
    let Some(fx) = Fixture::new("operators").await else {
        return;
    };
    fx.orders(300).await;
    let committed = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&committed);
    let report = fx
        .source("ops")
        .json::<Order>()
        .await
        .unwrap()
        .filter(|o| o.id % 10 != 0)
        .flat_map(|o| vec![o.id; (o.id % 3) as usize])
        .par_map_unordered(NonZeroUsize::new(2).unwrap(), |id| id * 2)
        .chunk(NonZeroUsize::new(16).unwrap())
        .commit_each(move |batch| {
            kept.lock().unwrap().extend(batch);
            async { Ok::<_, std::io::Error>(()) }
        })
        .await
        .unwrap();
    let mut committed = committed.lock().unwrap().clone();
    committed.sort_unstable();
    let mut expected: Vec<u64> = (1..=300u64)
        .filter(|id| id % 10 != 0)
        .flat_map(|id| vec![id * 2; (id % 3) as usize])
        .collect();
    expected.sort_unstable();
    assert_eq!(committed, expected);
    assert_eq!(
        (report.received, report.acked, report.undecided),
        (300, 300, 0)
    );
    let info = fx.consumer("ops").await;
    assert_eq!(
        (info.ack_floor.stream_sequence, info.num_ack_pending),
        (300, 0)
    );
    fx.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_dead_lettered_after_max_deliver_and_bad_json_is_terminated() {
    let Some(fx) = Fixture::new("poison").await else {
        return;
    };
    let dead_subject = format!("{}.dead", fx.stream.to_lowercase());
    let dead_stream = format!("{}_DEAD", fx.stream);
    fx.js
        .create_stream(stream::Config {
            name: dead_stream.clone(),
            subjects: vec![dead_subject.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    fx.orders(3).await; // sequences 1-3, id 2 is the poison the sink refuses
    fx.publish([b"{not json".to_vec()]).await; // sequence 4

    // The sink refuses order 2 each time: it is handed back twice, then dead-lettered on its
    // third and last delivery; the bad JSON likewise. Order 3, behind it, is not held up.
    let policy =
        ErrorPolicy::dead_letter(vnats::dead_letters(fx.client.clone(), dead_subject.clone()))
            .redeliver(Duration::ZERO);
    let stored = Arc::new(Mutex::new(BTreeSet::new()));
    let kept = Arc::clone(&stored);
    let report = fx
        .source("poison")
        .max_deliver(3)
        .json::<Order>()
        .await
        .unwrap()
        .try_map(|order| {
            if order.id == 2 {
                Err("constraint violated")
            } else {
                Ok(order)
            }
        })
        .on_error(policy.clone())
        .commit_each(move |order| {
            kept.lock().unwrap().insert(order.id);
            async { Ok::<_, std::io::Error>(()) }
        })
        .await
        .unwrap();
    assert_eq!(*stored.lock().unwrap(), BTreeSet::from([1, 3]));
    let policy = policy.report();
    assert_eq!(
        policy.redelivered(),
        4,
        "two bad messages, two redeliveries each"
    );
    assert_eq!(policy.dead_lettered(), 2, "the bad JSON and the poison");
    assert_eq!((report.acked, report.nacked, report.undecided), (4, 4, 0));

    let dead = fx.js.get_stream(&dead_stream).await.unwrap();
    let first = dead.get_raw_message(1).await.unwrap();
    let second = dead.get_raw_message(2).await.unwrap();
    // The stage's dead letter carries the whole message, the decode error's its bytes.
    let payloads: Vec<String> = [&first, &second]
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert!(
        payloads.iter().any(|p| p.contains("\"id\":2")),
        "{payloads:?}"
    );
    assert!(payloads.iter().any(|p| p == "{not json"), "{payloads:?}");
    let headers: Vec<String> = [&first, &second]
        .iter()
        .map(|m| {
            m.headers
                .get(vnats::ERROR_HEADER)
                .unwrap()
                .as_str()
                .to_owned()
        })
        .collect();
    assert!(
        headers.iter().any(|h| h.contains("nats source: decode")),
        "{headers:?}"
    );
    assert!(
        headers.iter().any(|h| h.contains("constraint violated")),
        "{headers:?}"
    );
    let positions: Vec<String> = [&first, &second]
        .iter()
        .map(|m| {
            m.headers
                .get(vnats::POSITION_HEADER)
                .unwrap()
                .as_str()
                .to_owned()
        })
        .collect();
    // The decode error names the source and sequence, the stage's error the message's key.
    assert!(
        positions.iter().any(|p| p.ends_with("/poison: record 4")),
        "{positions:?}"
    );
    assert!(
        positions.iter().any(|p| *p == format!("{}:2", fx.stream)),
        "{positions:?}"
    );
    let info = fx.consumer("poison").await;
    assert_eq!(
        (
            info.ack_floor.stream_sequence,
            info.num_ack_pending,
            info.num_pending
        ),
        (4, 0, 0)
    );
    fx.js.delete_stream(&dead_stream).await.unwrap();
    fx.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republished_values_are_stored_once() {
    let Some(fx) = Fixture::new("dedup").await else {
        return;
    };
    let out = Fixture::new("dedupout").await.unwrap();
    fx.orders(120).await;
    // Two consumers read the same messages, as a crashed worker's redeliveries would. The
    // source's window is far smaller than the sink's: the source waits for confirmations
    // the sink must take while waiting for the next value.
    for consumer in ["first", "second"] {
        let run = fx
            .source(consumer)
            .window(NonZeroUsize::new(4).unwrap())
            .json::<Order>()
            .await
            .unwrap()
            .map(|o| Order {
                note: o.note.to_uppercase(),
                ..o
            })
            .publish(JetStreamSink::new(fx.client.clone(), out.subject.clone()));
        let report = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("the publishing run stalled")
            .unwrap();
        assert_eq!((report.acked, report.undecided), (120, 0));
    }
    let mut info = out.js.get_stream(&out.stream).await.unwrap();
    assert_eq!(
        info.info().await.unwrap().state.messages,
        120,
        "published twice, stored once"
    );
    let first = info.get_raw_message(1).await.unwrap();
    let order: Order = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!(order.note, "ORDER \"1\", WITH A COMMA");
    out.remove().await;
    fx.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_pipeline_hands_its_messages_back_at_once() {
    let Some(fx) = Fixture::new("dropped").await else {
        return;
    };
    fx.orders(100).await;
    let pipeline = fx.source("dropper").json::<Order>().await.unwrap();
    let ledger = pipeline.ledgers()[0].clone();
    let mut items = pipeline.into_pipeline();
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(items.next().await.unwrap().unwrap());
    }
    drop(items);
    drop(held);
    assert!(ledger.wait_settled(Duration::from_secs(5)).await);
    let report = ledger.report();
    assert_eq!(report.acked, 0);
    assert!(
        report.undecided >= 10 && report.nacked == report.received,
        "{report:?}"
    );
    // Nothing was acknowledged; the server keeps negatively acknowledged messages pending
    // until they are delivered again, which the next run does at once, not after the 30 s ack
    // wait.
    let info = fx.consumer("dropper").await;
    assert_eq!(info.ack_floor.stream_sequence, 0, "{info:?}");
    // And a new run reads everything, at once.
    let started = std::time::Instant::now();
    let report = fx
        .source("dropper")
        .json::<Order>()
        .await
        .unwrap()
        .commit_each(|_| async { Ok::<_, std::io::Error>(()) })
        .await
        .unwrap();
    assert_eq!(report.acked, 100);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    fx.remove().await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_loads_into_postgres_and_is_acknowledged_after_each_commit() {
    use vortex_stream::db::{Database, Table, Value};

    let Some(fx) = Fixture::new("pgload").await else {
        return;
    };
    let Some(url) = server("VORTEX_PG_URL", "PostgreSQL") else {
        return;
    };
    let db = Database::open(&url).unwrap();
    let name = unique("broker_orders");
    let count = |db: &Database| {
        let sql = format!("SELECT count(*), coalesce(sum(id), 0)::bigint FROM {name}");
        let db = db.clone();
        async move {
            let row = db.query(sql, vec![]).first().await.unwrap().unwrap();
            (row.values()[0].clone(), row.values()[1].clone())
        }
    };
    db.execute(
        format!("CREATE TABLE {name} (id BIGINT PRIMARY KEY, note TEXT NOT NULL, CONSTRAINT small CHECK (id <= 250))"),
        vec![],
    )
    .await
    .unwrap();
    fx.orders(300).await;
    let table = Table::new(&name, ["id", "note"])
        .upsert(["id"])
        .batch(NonZeroUsize::new(50).unwrap());
    let row = |o: Order| {
        vec![
            Value::Int(i64::try_from(o.id).unwrap()),
            Value::Text(o.note),
        ]
    };

    // The table refuses ids past 250: the batch holding them is rolled back and its
    // messages are not acknowledged; every batch committed before it is.
    let err = fx
        .source("loader")
        .json::<Order>()
        .await
        .unwrap()
        .nak_delay(Duration::ZERO)
        .map(row)
        .load(&db, table.clone(), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("small"), "{err:#}");
    let info = fx.consumer("loader").await;
    let floor = info.ack_floor.stream_sequence;
    assert!(
        floor <= 250,
        "acknowledged past what the table holds: {floor}"
    );
    let (rows, _) = count(&db).await;
    assert_eq!(
        rows,
        Value::Int(i64::try_from(floor).unwrap()),
        "rows in the table and messages acknowledged differ"
    );

    // The constraint lifted, the next run loads the rest: the redelivered messages, once.
    db.execute(format!("ALTER TABLE {name} DROP CONSTRAINT small"), vec![])
        .await
        .unwrap();
    let report = fx
        .source("loader")
        .json::<Order>()
        .await
        .unwrap()
        .map(row)
        .load(&db, table, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(report.acked, 300 - floor);
    assert_eq!(
        count(&db).await,
        (Value::Int(300), Value::Int(300 * 301 / 2))
    );
    let info = fx.consumer("loader").await;
    assert_eq!(
        (info.ack_floor.stream_sequence, info.num_ack_pending),
        (300, 0)
    );
    db.execute(format!("DROP TABLE {name}"), vec![])
        .await
        .unwrap();
    fx.remove().await;
}

/// A nats-server of the test's own, on a free port with its own store, killed on drop.
struct OwnServer {
    child: std::process::Child,
    port: u16,
    store: tempfile::TempDir,
}

impl OwnServer {
    fn start(port: u16, store: tempfile::TempDir) -> OwnServer {
        let child = std::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server is installed");
        OwnServer { child, port, store }
    }

    async fn wait_up(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server did not start on port {}", self.port);
    }

    /// Kills it (SIGKILL) and starts it again on the same port and store.
    async fn restart(mut self, down_for: Duration) -> OwnServer {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        tokio::time::sleep(down_for).await;
        let port = self.port;
        let store = std::mem::replace(&mut self.store, tempfile::tempdir().unwrap());
        let again = OwnServer::start(port, store);
        again.wait_up().await;
        again
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restarted_mid_run_loses_nothing() {
    // A server of its own, so that killing it disturbs no other test; it needs the same
    // nats-server the suite runs on.
    if server("VORTEX_NATS_URL", "NATS JetStream").is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let own = OwnServer::start(port, tempfile::tempdir().unwrap());
    own.wait_up().await;
    let client = async_nats::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: "RESTART".into(),
        subjects: vec!["restart.in".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap();
    let n = 3000u64;
    for id in 1..=n {
        let order = Order {
            id,
            note: format!("order {id}"),
        };
        js.publish("restart.in", serde_json::to_vec(&order).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    let stored = Arc::new(Mutex::new(BTreeSet::new()));
    let kept = Arc::clone(&stored);
    let run = JetStreamSource::new(client.clone(), "RESTART", "loader")
        .window(NonZeroUsize::new(100).unwrap())
        .ack_wait(Duration::from_secs(2))
        .stop_when_idle(Duration::from_secs(5))
        .json::<Order>()
        .await
        .unwrap()
        .commit_batches(
            NonZeroUsize::new(50).unwrap(),
            Duration::from_millis(50),
            move |batch| {
                kept.lock().unwrap().extend(batch.iter().map(|o| o.id));
                async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Ok::<_, std::io::Error>(())
                }
            },
        );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(run);
    // Mid-run, the server is killed and comes back six seconds later, longer than the idle
    // stop: the outage must not pass for a drained backlog. The client reconnects and the
    // pulls go on; acknowledgements lost with the connection come back as redeliveries after
    // the ack wait.
    while stored.lock().unwrap().len() < 500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let own = own.restart(Duration::from_secs(6)).await;
    let report = tokio::time::timeout(Duration::from_secs(90), tasks.join_next())
        .await
        .expect("the run did not end after the restart")
        .unwrap()
        .unwrap()
        .expect("the run rides out the restart");
    let stored = stored.lock().unwrap().clone();
    assert_eq!(stored.len() as u64, n, "messages lost across the restart");
    assert!(report.acked >= n - 100, "{report:?}");
    // Every message is acknowledged in the end (those whose acks the restart lost came again).
    let mut info = js
        .get_stream("RESTART")
        .await
        .unwrap()
        .consumer_info("loader")
        .await
        .unwrap();
    for _ in 0..50 {
        if info.num_ack_pending == 0 && info.num_pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        info = js
            .get_stream("RESTART")
            .await
            .unwrap()
            .consumer_info("loader")
            .await
            .unwrap();
    }
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0), "{info:?}");
    drop(own);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_deleted_mid_run_is_an_error_not_an_end() {
    let Some(fx) = Fixture::new("nats_deleted").await else {
        return;
    };
    fx.orders(300).await;
    let mut items = fx
        .source("deleted")
        .window(NonZeroUsize::new(20).unwrap())
        .stop_when_idle(Duration::from_secs(2))
        .json::<Order>()
        .await
        .unwrap()
        .into_pipeline();
    for _ in 0..10 {
        items.next().await.unwrap().unwrap();
    }
    fx.js
        .get_stream(&fx.stream)
        .await
        .unwrap()
        .delete_consumer("deleted")
        .await
        .unwrap();
    // What was delivered before the delete may still come; then the source must say its
    // consumer is gone, rather than end as if the stream had been drained.
    let (rest, errors) = rest_and_errors(items, Duration::from_secs(20)).await;
    assert!(!errors.is_empty(), "{rest} items and no error");
    assert_eq!(
        errors[0].kind(),
        vortex_stream::ErrorKind::Io,
        "{}",
        errors[0]
    );
    fx.remove().await;
}
