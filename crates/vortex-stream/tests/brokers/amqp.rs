//! RabbitMQ, on the real server: acknowledgement after commit, requeueing, dead letters after
//! the last delivery of a quorum queue, publisher confirms and dropped pipelines.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use vortex_stream::brokers::amqp::{self as vamqp, AmqpSink, AmqpSource};
use vortex_stream::ErrorPolicy;

use super::{rest_and_errors, server, unique};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Order {
    id: u64,
    note: String,
}

/// A connection and channel of the test's own, and the queues it declared.
struct Fixture {
    url: String,
    _connection: Connection,
    channel: Channel,
    queues: Vec<String>,
}

impl Fixture {
    async fn new() -> Option<Fixture> {
        let url = server("VORTEX_AMQP_URL", "RabbitMQ")?;
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio::current());
        let connection = Connection::connect(&url, properties)
            .await
            .expect("connect to RabbitMQ");
        let channel = connection.create_channel().await.unwrap();
        Some(Fixture {
            url,
            _connection: connection,
            channel,
            queues: Vec::new(),
        })
    }

    /// Declares a fresh queue; a quorum queue counts deliveries.
    async fn queue(&mut self, prefix: &str, quorum: bool) -> String {
        let name = unique(prefix);
        let mut arguments = FieldTable::default();
        if quorum {
            arguments.insert(
                ShortString::from("x-queue-type"),
                AMQPValue::LongString(LongString::from("quorum")),
            );
        }
        self.channel
            .queue_declare(
                &name,
                QueueDeclareOptions {
                    durable: quorum,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await
            .unwrap();
        self.queues.push(name.clone());
        name
    }

    async fn publish(&self, queue: &str, payloads: impl IntoIterator<Item = Vec<u8>>) {
        let channel = &self.channel;
        for payload in payloads {
            channel
                .basic_publish(
                    "",
                    queue,
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default(),
                )
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }

    async fn orders(&self, queue: &str, n: u64) {
        self.publish(
            queue,
            (1..=n).map(|id| {
                serde_json::to_vec(&Order {
                    id,
                    note: format!("order \"{id}\", with a comma"),
                })
                .unwrap()
            }),
        )
        .await;
    }

    /// Messages ready in `queue` (not counting those delivered and not yet acknowledged).
    async fn ready(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    /// Waits (up to 5 s) until `queue` holds `n` ready messages; returns the last count.
    async fn wait_ready(&self, queue: &str, n: u32) -> u32 {
        let mut ready = self.ready(queue).await;
        for _ in 0..50 {
            if ready == n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            ready = self.ready(queue).await;
        }
        ready
    }

    fn source(&self, queue: &str) -> AmqpSource {
        AmqpSource::new(self.url.clone(), queue)
            .stop_when_idle(Duration::from_millis(700))
            .prefetch(64)
    }

    async fn remove(self) {
        for queue in &self.queues {
            self.channel
                .queue_delete(queue, QueueDeleteOptions::default())
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_requeues_and_the_next_run_loads_exactly() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let queue = fx.queue("amqp_ackafter", false).await;
    fx.orders(&queue, 200).await;

    let err = fx
        .source(&queue)
        .json::<Order>()
        .await
        .unwrap()
        .commit_batches(
            NonZeroUsize::new(25).unwrap(),
            Duration::from_millis(50),
            |_| async { Err::<(), _>("the database is down") },
        )
        .await
        .unwrap_err();
    assert_eq!(err.message(), "the database is down");
    // Nothing was acknowledged: every message is back in the queue, at once.
    assert_eq!(fx.wait_ready(&queue, 200).await, 200);

    let table = Arc::new(Mutex::new(BTreeSet::new()));
    let stored = Arc::clone(&table);
    let report = fx
        .source(&queue)
        .json::<Order>()
        .await
        .unwrap()
        .commit_batches(
            NonZeroUsize::new(25).unwrap(),
            Duration::from_millis(50),
            move |batch| {
                stored.lock().unwrap().extend(batch);
                async { Ok::<_, std::io::Error>(()) }
            },
        )
        .await
        .unwrap();
    let ids: Vec<u64> = table.lock().unwrap().iter().map(|o| o.id).collect();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>());
    assert_eq!((report.acked, report.undecided, report.open), (200, 0, 0));
    assert_eq!(fx.wait_ready(&queue, 0).await, 0);
    fx.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_keep_acknowledgement_on_rabbitmq() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let queue = fx.queue("amqp_operators", false).await;
    fx.orders(&queue, 300).await;
    let committed = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&committed);
    let report = fx
        .source(&queue)
        .json::<Order>()
        .await
        .unwrap()
        .filter(|o| o.id % 10 != 0)
        .flat_map(|o| vec![o.id; (o.id % 3) as usize])
        .par_map_unordered(NonZeroUsize::new(2).unwrap(), |id| id * 2)
        .chunk_timeout(NonZeroUsize::new(16).unwrap(), Duration::from_millis(50))
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
    assert_eq!(fx.wait_ready(&queue, 0).await, 0);
    fx.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_on_a_quorum_queue_is_dead_lettered_on_its_last_delivery() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let queue = fx.queue("amqp_poison", true).await;
    let dead = fx.queue("amqp_dead", false).await;
    fx.orders(&queue, 3).await;
    fx.publish(&queue, [b"{not json".to_vec()]).await;

    let policy = ErrorPolicy::dead_letter(vamqp::dead_letters(fx.url.clone(), "", dead.clone()))
        .redeliver(Duration::ZERO);
    let stored = Arc::new(Mutex::new(BTreeSet::new()));
    let kept = Arc::clone(&stored);
    let report = fx
        .source(&queue)
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
    assert_eq!(policy.dead_lettered(), 2);
    assert_eq!((report.acked, report.nacked, report.undecided), (4, 4, 0));
    assert_eq!(fx.wait_ready(&queue, 0).await, 0);

    // The dead letters, with their errors.
    let mut letters = AmqpSource::new(fx.url.clone(), dead.clone())
        .stop_when_idle(Duration::from_millis(500))
        .bytes()
        .await
        .unwrap()
        .into_pipeline();
    let mut payloads = Vec::new();
    while let Some(letter) = letters.next().await {
        let letter = letter.unwrap();
        payloads.push(String::from_utf8(letter.value.to_vec()).unwrap());
        letter.ack.commit();
    }
    payloads.sort();
    assert_eq!(payloads.len(), 2, "{payloads:?}");
    assert_eq!(payloads[1], "{not json");
    assert!(payloads[0].contains("\"id\":2"), "{payloads:?}");
    fx.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_values_are_confirmed_before_their_messages_are_acknowledged() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let input = fx.queue("amqp_in", false).await;
    let output = fx.queue("amqp_out", false).await;
    fx.orders(&input, 150).await;
    let run = fx
        .source(&input)
        .prefetch(4)
        .json::<Order>()
        .await
        .unwrap()
        .map(|o| Order {
            note: o.note.to_uppercase(),
            ..o
        })
        .publish(AmqpSink::new(fx.url.clone(), "", output.clone()));
    let report = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the publishing run stalled")
        .unwrap();
    assert_eq!((report.acked, report.undecided), (150, 0));
    assert_eq!(fx.wait_ready(&output, 150).await, 150);
    assert_eq!(fx.wait_ready(&input, 0).await, 0);
    fx.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_pipeline_requeues_its_messages_at_once() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let queue = fx.queue("amqp_dropped", false).await;
    fx.orders(&queue, 100).await;
    let pipeline = fx.source(&queue).json::<Order>().await.unwrap();
    let ledger = pipeline.ledgers()[0].clone();
    let mut items = pipeline.into_pipeline();
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(items.next().await.unwrap().unwrap());
    }
    drop(items);
    drop(held);
    assert!(ledger.wait_settled(Duration::from_secs(5)).await);
    assert_eq!(ledger.report().acked, 0);
    // Those held were nacked, those prefetched and never taken requeued with the channel:
    // all 100 are ready again, well before any timeout.
    assert_eq!(fx.wait_ready(&queue, 100).await, 100);
    fx.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_no_queue_takes_is_an_error_not_a_silent_loss() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let input = fx.queue("amqp_unroutable", false).await;
    fx.orders(&input, 3).await;
    let err = fx
        .source(&input)
        .json::<Order>()
        .await
        .unwrap()
        .publish(AmqpSink::new(fx.url.clone(), "", unique("no_such_queue")))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no queue took the message"),
        "{err:#}"
    );
    // Nothing was acknowledged: the three messages are back.
    assert_eq!(fx.wait_ready(&input, 3).await, 3);
    fx.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_deleted_mid_run_is_an_error_not_an_end() {
    let Some(mut fx) = Fixture::new().await else {
        return;
    };
    let queue = fx.queue("amqp_deleted", false).await;
    fx.orders(&queue, 200).await;
    let mut items = fx
        .source(&queue)
        .json::<Order>()
        .await
        .unwrap()
        .into_pipeline();
    for _ in 0..10 {
        items.next().await.unwrap().unwrap();
    }
    fx.channel
        .queue_delete(&queue, QueueDeleteOptions::default())
        .await
        .unwrap();
    fx.queues.clear();
    // What was delivered before the delete may still come; then the source must say that
    // its consumer was ended, rather than end as if the queue had been drained.
    let (rest, errors) = rest_and_errors(items, Duration::from_secs(10)).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind(), vortex_stream::ErrorKind::Io);
    assert!(
        errors[0].to_string().contains("ended the consumer"),
        "{}",
        errors[0]
    );
    assert!(rest < 200, "{rest} items");
    fx.remove().await;
}
