//! Loads JSON orders from a broker into a PostgreSQL table, acknowledging each message after
//! the transaction holding its row committed: with vortex, or with a loop written by hand on
//! the same drivers (the baseline of `scripts/bench-brokers`).
//!
//! ```text
//! broker_load vortex|hand nats://HOST:PORT/STREAM/CONSUMER  POSTGRES_URL TABLE
//! broker_load vortex|hand 'amqp://USER:PASS@HOST:PORT/VHOST?queue=NAME' POSTGRES_URL TABLE
//! broker_load setup-nats HOST:PORT STREAM SUBJECT
//! broker_load setup-amqp AMQP_URL QUEUE
//! ```
//!
//! Both read until the broker has been idle for two seconds, upsert batches of 1,000 rows
//! on the table's `id` in one transaction each, and print the rows loaded on stdout.

// A benchmark driver fails loudly on what it cannot do.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::num::NonZeroUsize;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::Deserialize;
use vortex_stream::brokers::amqp::AmqpSource;
use vortex_stream::brokers::nats::JetStreamSource;
use vortex_stream::db::{Database, Table, Value};
use vortex_stream::AckPipeline;

const BATCH: usize = 1000;
const IDLE: Duration = Duration::from_secs(2);

/// An order as `vortex gen orders --format jsonl` writes it.
#[derive(Deserialize)]
struct Order {
    id: i64,
    customer: String,
    email: String,
    status: String,
    amount: String,
    created_at: String,
}

impl Order {
    fn row(self) -> Vec<Value> {
        vec![
            Value::Int(self.id),
            Value::Text(self.customer),
            Value::Text(self.email),
            Value::Text(self.status),
            Value::Text(self.amount),
            Value::Text(self.created_at),
        ]
    }
}

const COLUMNS: [&str; 6] = ["id", "customer", "email", "status", "amount", "created_at"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [mode, server, stream, subject] if mode == "setup-nats" => {
            return setup_nats(server, stream, subject);
        }
        [mode, url, queue] if mode == "setup-amqp" => return setup_amqp(url, queue),
        _ => {}
    }
    let [mode, broker, pg, table] = args.as_slice() else {
        panic!("usage: broker_load vortex|hand BROKER_URL POSTGRES_URL TABLE");
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(async {
        match mode.as_str() {
            "vortex" => with_vortex(broker, pg, table).await,
            "hand" => by_hand(broker, pg, table).await,
            other => panic!("mode {other:?}: vortex or hand"),
        }
    });
    println!("{rows}");
}

/// The broker URL's parts: NATS server, stream and consumer, or the AMQP URL and queue.
enum Broker {
    Nats(String, String, String),
    Amqp(String, String),
}

fn broker(url: &str) -> Broker {
    if let Some(rest) = url.strip_prefix("nats://") {
        let parts: Vec<&str> = rest.split('/').collect();
        let [server, stream, consumer] = parts.as_slice() else {
            panic!("nats://HOST:PORT/STREAM/CONSUMER");
        };
        return Broker::Nats((*server).into(), (*stream).into(), (*consumer).into());
    }
    let (base, queue) = url.split_once("?queue=").expect("amqp://…?queue=NAME");
    Broker::Amqp(base.into(), queue.into())
}

async fn with_vortex(url: &str, pg: &str, table: &str) -> u64 {
    let db = Database::open(pg).unwrap();
    let orders: AckPipeline<Order> = match broker(url) {
        Broker::Nats(server, stream, consumer) => {
            let client = async_nats::connect(server).await.unwrap();
            JetStreamSource::new(client, stream, consumer)
                .window(NonZeroUsize::new(4 * BATCH).unwrap())
                .stop_when_idle(IDLE)
                .json()
                .await
                .unwrap()
        }
        Broker::Amqp(base, queue) => AmqpSource::new(base, queue)
            .prefetch(4 * BATCH)
            .stop_when_idle(IDLE)
            .json()
            .await
            .unwrap(),
    };
    let target = Table::new(table, COLUMNS)
        .upsert(["id"])
        .batch(NonZeroUsize::new(BATCH).unwrap());
    let report = orders
        .map(Order::row)
        .load(&db, target, Duration::from_millis(100))
        .await
        .unwrap();
    report.acked
}

/// The same job written by hand: pull a batch, upsert it in one transaction, ack each message.
async fn by_hand(url: &str, pg: &str, table: &str) -> u64 {
    let (mut client, connection) = tokio_postgres::connect(pg, tokio_postgres::NoTls)
        .await
        .unwrap();
    let mut background = tokio::task::JoinSet::new();
    background.spawn(connection);
    let upsert = format!(
        "INSERT INTO {table} (id, customer, email, status, amount, created_at) \
         SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) \
         ON CONFLICT (id) DO UPDATE SET customer = EXCLUDED.customer, email = EXCLUDED.email, \
         status = EXCLUDED.status, amount = EXCLUDED.amount, created_at = EXCLUDED.created_at"
    );
    let mut loaded = 0u64;
    match broker(url) {
        Broker::Nats(server, stream, consumer) => {
            use async_nats::jetstream::consumer::{pull, AckPolicy};
            let js = async_nats::jetstream::new(async_nats::connect(server).await.unwrap());
            let consumer = js
                .get_stream(stream)
                .await
                .unwrap()
                .get_or_create_consumer(
                    &consumer,
                    pull::Config {
                        durable_name: Some(consumer.clone()),
                        ack_policy: AckPolicy::Explicit,
                        max_ack_pending: 4 * BATCH as i64,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            loop {
                let mut batch = consumer
                    .batch()
                    .max_messages(BATCH)
                    .expires(IDLE)
                    .messages()
                    .await
                    .unwrap();
                let mut messages = Vec::with_capacity(BATCH);
                while let Some(message) = batch.next().await {
                    messages.push(message.unwrap());
                }
                if messages.is_empty() {
                    break;
                }
                let orders: Vec<Order> = messages
                    .iter()
                    .map(|m| serde_json::from_slice(&m.payload).unwrap())
                    .collect();
                write(&mut client, &upsert, &orders).await;
                for message in &messages {
                    message.ack().await.unwrap();
                }
                loaded += messages.len() as u64;
            }
        }
        Broker::Amqp(base, queue) => {
            use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
            let connection = lapin::Connection::connect(
                &base,
                lapin::ConnectionProperties::default()
                    .with_executor(tokio_executor_trait::Tokio::current())
                    .with_reactor(tokio_reactor_trait::Tokio::current()),
            )
            .await
            .unwrap();
            let channel = connection.create_channel().await.unwrap();
            channel
                .basic_qos(4 * BATCH as u16, BasicQosOptions::default())
                .await
                .unwrap();
            let mut consumer = channel
                .basic_consume(
                    &queue,
                    "",
                    BasicConsumeOptions::default(),
                    Default::default(),
                )
                .await
                .unwrap();
            loop {
                let mut deliveries = Vec::with_capacity(BATCH);
                let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
                while deliveries.len() < BATCH {
                    let wait = if deliveries.is_empty() {
                        IDLE
                    } else {
                        deadline.saturating_duration_since(tokio::time::Instant::now())
                    };
                    match tokio::time::timeout(wait, consumer.next()).await {
                        Ok(Some(delivery)) => deliveries.push(delivery.unwrap()),
                        _ => break,
                    }
                }
                if deliveries.is_empty() {
                    break;
                }
                let orders: Vec<Order> = deliveries
                    .iter()
                    .map(|d| serde_json::from_slice(&d.data).unwrap())
                    .collect();
                write(&mut client, &upsert, &orders).await;
                // One ack for the whole batch, as a hand-written loop would.
                let last = deliveries.last().unwrap();
                last.acker
                    .ack(BasicAckOptions { multiple: true })
                    .await
                    .unwrap();
                loaded += deliveries.len() as u64;
            }
        }
    }
    loaded
}

async fn write(client: &mut tokio_postgres::Client, upsert: &str, orders: &[Order]) {
    let ids: Vec<i64> = orders.iter().map(|o| o.id).collect();
    let text = |f: fn(&Order) -> &str| orders.iter().map(f).collect::<Vec<&str>>();
    let customers = text(|o| &o.customer);
    let emails = text(|o| &o.email);
    let statuses = text(|o| &o.status);
    let amounts = text(|o| &o.amount);
    let created = text(|o| &o.created_at);
    let transaction = client.transaction().await.unwrap();
    transaction
        .execute(
            upsert,
            &[&ids, &customers, &emails, &statuses, &amounts, &created],
        )
        .await
        .unwrap();
    transaction.commit().await.unwrap();
}

/// Makes the stream the benchmark publishes into (file storage), anew.
fn setup_nats(server: &str, stream: &str, subject: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(server).await.unwrap());
        let _ = js.delete_stream(stream).await;
        js.create_stream(async_nats::jetstream::stream::Config {
            name: stream.to_owned(),
            subjects: vec![subject.to_owned()],
            ..Default::default()
        })
        .await
        .unwrap();
    });
}

/// Makes the queue the benchmark publishes into, anew and empty.
fn setup_amqp(url: &str, queue: &str) {
    use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let connection = lapin::Connection::connect(
            url,
            lapin::ConnectionProperties::default()
                .with_executor(tokio_executor_trait::Tokio::current())
                .with_reactor(tokio_reactor_trait::Tokio::current()),
        )
        .await
        .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let _ = channel
            .queue_delete(queue, QueueDeleteOptions::default())
            .await;
        channel
            .queue_declare(
                queue,
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                Default::default(),
            )
            .await
            .unwrap();
    });
}
