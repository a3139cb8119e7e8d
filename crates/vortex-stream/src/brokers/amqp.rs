//! RabbitMQ (AMQP 0.9.1): a queue consumer as a source, with manual acknowledgement after
//! commit and a prefetch window, and publishing with publisher confirms as a sink.
//!
//! ```no_run
//! # #![allow(dead_code)]
//! use vortex_stream::brokers::amqp::{AmqpSink, AmqpSource};
//!
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct Order { id: u64, amount: f64 }
//!
//! # async fn run() -> vortex_stream::Result<()> {
//! let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
//! let report = AmqpSource::new(url, "orders")
//!     .json::<Order>()
//!     .await?
//!     .filter(|order| order.amount > 0.0)
//!     // each value is acknowledged once the broker confirmed its copy on `orders.valid`
//!     .publish(AmqpSink::new(url, "", "orders.valid"))
//!     .await?;
//! println!("{} acknowledged", report.acked);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use lapin::acker::Acker;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use super::{BrokerSink, Received};
use crate::ack::{AckLedger, AckReport, Verdict};
use crate::core::Size;
use crate::error::{BoxError, Error, ErrorKind, Position};
use crate::AckPipeline;

/// The prefetch window a source asks for unless [`AmqpSource::prefetch`] sets another.
pub const DEFAULT_PREFETCH: u16 = 1024;

/// The header naming the error of a dead letter.
pub const ERROR_HEADER: &str = "x-vortex-error";

/// The header naming the position (queue and delivery) of a dead letter's message.
pub const POSITION_HEADER: &str = "x-vortex-position";

fn connection_properties() -> ConnectionProperties {
    ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current())
}

/// A RabbitMQ queue consumer as the source of an [`AckPipeline`], with manual
/// acknowledgement after commit.
///
/// The source opens its own connection and channel, asks for a prefetch window (the most
/// unacknowledged messages the broker sends it, so the most the pipeline holds) and consumes
/// the queue. Each value's key is the message's `message_id` property, where the publisher
/// set one; an error's position names the queue and the delivery tag. When the pipeline is
/// dropped and every share is decided, the channel is closed, and the broker requeues at once
/// every message it had sent and not been told about.
#[derive(Debug, Clone)]
pub struct AmqpSource {
    url: String,
    queue: String,
    prefetch: u16,
    max_deliver: Option<u64>,
    idle: Option<Duration>,
}

impl AmqpSource {
    /// A source consuming `queue` on the broker at `url` (`amqp://user:pass@host:port/vhost`).
    pub fn new(url: impl Into<String>, queue: impl Into<String>) -> Self {
        AmqpSource {
            url: url.into(),
            queue: queue.into(),
            prefetch: DEFAULT_PREFETCH,
            max_deliver: None,
            idle: None,
        }
    }

    /// Sets the prefetch window (1024 by default): unacknowledged messages the broker sends
    /// ahead, at most 65,535 (AMQP's limit).
    ///
    /// # Panics
    ///
    /// If `prefetch` is zero or above 65,535.
    #[must_use]
    pub fn prefetch(mut self, prefetch: impl Size) -> Self {
        let prefetch = prefetch.non_zero("prefetch").get();
        self.prefetch = u16::try_from(prefetch).unwrap_or_else(|_| {
            #[allow(
                clippy::panic,
                reason = "a size out of range is refused where it is given"
            )]
            {
                panic!("prefetch: AMQP allows at most 65535 messages ahead, not {prefetch}")
            }
        });
        self
    }

    /// The `max`th delivery of a message is its last attempt (for
    /// [`ErrorPolicy::redeliver`](crate::ErrorPolicy::redeliver)), and a message delivered
    /// more often becomes a [`Capacity`](ErrorKind::Capacity) error item. Deliveries are
    /// counted by the broker on quorum queues (`x-delivery-count`); a classic queue only
    /// tells whether a message was delivered before, so there a redelivered message is on
    /// its last attempt.
    #[must_use]
    pub fn max_deliver(mut self, max: u64) -> Self {
        self.max_deliver = Some(max);
        self
    }

    /// Ends the stream once no message has arrived for `idle` (a backlog drained). Without it
    /// the stream has no end: a consumer the broker ends (its queue deleted, its channel
    /// closed) is a fatal error, never the end of the stream.
    #[must_use]
    pub fn stop_when_idle(mut self, idle: Duration) -> Self {
        self.idle = Some(idle);
        self
    }

    /// The messages' payloads as they are.
    ///
    /// # Errors
    ///
    /// A fatal [`Io`](ErrorKind::Io) error when the broker cannot be reached or the queue
    /// cannot be consumed.
    pub async fn bytes(self) -> crate::Result<AckPipeline<Bytes>> {
        self.open(Ok).await
    }

    /// The messages' payloads decoded as JSON; a payload that does not decode becomes a
    /// [`Decode`](ErrorKind::Decode) error item carrying its message's acknowledgement.
    ///
    /// # Errors
    ///
    /// As [`bytes`](AmqpSource::bytes).
    pub async fn json<T>(self) -> crate::Result<AckPipeline<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.open(super::json).await
    }

    async fn open<T, F>(self, decode: F) -> crate::Result<AckPipeline<T>>
    where
        F: FnMut(Bytes) -> Result<T, BoxError> + Send + 'static,
        T: Send + 'static,
    {
        let name: Arc<str> = Arc::from(format!("amqp {}", self.queue));
        let fail = |e: lapin::Error| {
            Error::from_boxed(ErrorKind::Io, "amqp source: open", e.into())
                .with_position(Position::new().with_source(Arc::clone(&name)))
                .fatal()
        };
        let connection = Connection::connect(&self.url, connection_properties())
            .await
            .map_err(fail)?;
        let channel = connection.create_channel().await.map_err(fail)?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(fail)?;
        let consumer = channel
            .basic_consume(
                &self.queue,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(fail)?;

        let ledger = AckLedger::new();
        let (verdicts, settling) = mpsc::unbounded_channel::<Event>();
        // Detached on purpose, yet owned by the data: it holds the connection, so that the
        // last verdicts reach the broker after the pipeline is gone, and ends (closing it) once
        // every share is decided and the source is dropped. The channel holds at most one
        // verdict per message in the prefetch window.
        drop(tokio::runtime::Handle::current().spawn(settle(
            settling,
            connection,
            channel,
            ledger.clone(),
        )));
        let state = Reading {
            consumer,
            ended: false,
            verdicts,
            ledger: ledger.clone(),
            name,
            max_deliver: self.max_deliver,
            idle: self.idle,
        };
        let messages = futures_util::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        Ok(super::decoded(
            messages,
            ledger,
            "amqp source: decode",
            decode,
        ))
    }
}

struct Reading {
    consumer: Consumer,
    // The broker ended the consumer (said once, as an error).
    ended: bool,
    verdicts: mpsc::UnboundedSender<Event>,
    ledger: AckLedger,
    name: Arc<str>,
    max_deliver: Option<u64>,
    idle: Option<Duration>,
}

impl Reading {
    async fn next(&mut self) -> Option<crate::Result<Received>> {
        if self.ended {
            return None;
        }
        let next = self.consumer.next();
        let delivery = match self.idle {
            Some(idle) => tokio::time::timeout(idle, next).await.ok()?,
            None => next.await,
        };
        let Some(delivery) = delivery else {
            // A queue's consumer has no end of its own: it ends when the broker cancels it
            // (the queue deleted, the channel closed). Never a drained backlog, so an error,
            // not the end of the stream.
            self.ended = true;
            return Some(Err(Error::new(ErrorKind::Io, "amqp source: read")
                .with_message(
                    "the broker ended the consumer (the queue deleted, or the channel closed)",
                )
                .with_position(Position::new().with_source(Arc::clone(&self.name)))
                .fatal()));
        };
        let mut delivery = match delivery {
            Ok(delivery) => delivery,
            Err(e) => {
                return Some(Err(Error::from_boxed(
                    ErrorKind::Io,
                    "amqp source: read",
                    e.into(),
                )
                .with_position(Position::new().with_source(Arc::clone(&self.name)))
                .fatal()))
            }
        };
        let verdicts = self.verdicts.clone();
        let acker = delivery.acker.clone();
        let tag = delivery.delivery_tag;
        // Sent before the value leaves, so it reaches the settler before the value's verdict.
        let _ = self.verdicts.send(Event::Opened(tag));
        let payload = Bytes::from(std::mem::take(&mut delivery.data));
        let ack = self
            .ledger
            .open_with(Some(payload.clone()), move |verdict| {
                let _ = verdicts.send(Event::Settled(tag, acker, verdict));
            });
        let position = Position::new()
            .with_source(Arc::clone(&self.name))
            .with_record(delivery.delivery_tag);
        let key = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| Arc::from(id.as_str()));
        let delivered = delivery_count(&delivery.properties).map(|earlier| earlier + 1);
        let ack = super::attempt(
            ack,
            delivered,
            delivery.redelivered,
            self.max_deliver,
            "amqp source: redeliver",
            &position,
            &payload,
        );
        Some(ack.map(|ack| Received {
            payload,
            ack,
            key,
            position,
        }))
    }
}

/// The number of earlier deliveries of a message, where the queue counts them (quorum
/// queues' `x-delivery-count` header).
fn delivery_count(properties: &BasicProperties) -> Option<u64> {
    let headers = properties.headers().as_ref()?;
    let value = headers.inner().get("x-delivery-count")?;
    let count = match value {
        AMQPValue::ShortShortInt(n) => i64::from(*n),
        AMQPValue::ShortShortUInt(n) => i64::from(*n),
        AMQPValue::ShortInt(n) => i64::from(*n),
        AMQPValue::ShortUInt(n) => i64::from(*n),
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        AMQPValue::LongLongInt(n) => *n,
        _ => return None,
    };
    u64::try_from(count).ok()
}

/// What the settler hears of a delivery: that it was received, then its verdict.
enum Event {
    Opened(u64),
    Settled(u64, Acker, Verdict),
}

/// Sends the verdicts to the broker, and records them; closes the connection at the end.
///
/// Written by hand, as no crate does it: acknowledgements are coalesced. Delivery tags rise on
/// a channel, and one `basic.ack` with `multiple` acknowledges every tag up to its own, so
/// each burst of verdicts sends one for the longest run of acknowledged deliveries from the
/// oldest still open (a million single acks cost the broker and the loop 60% more time,
/// measured). Negative acknowledgements and rejections go one by one, at once.
async fn settle(
    mut events: mpsc::UnboundedReceiver<Event>,
    connection: Connection,
    channel: Channel,
    ledger: AckLedger,
) {
    const BURST: usize = 1024;
    let mut burst = Vec::with_capacity(BURST);
    // Deliveries received and not yet settled with the broker, oldest first; those decided
    // as acknowledged wait here, with their acker, until every older one is settled.
    let mut open: BTreeMap<u64, Option<Acker>> = BTreeMap::new();
    while events.recv_many(&mut burst, BURST).await > 0 {
        for event in burst.drain(..) {
            match event {
                Event::Opened(tag) => {
                    open.insert(tag, None);
                }
                Event::Settled(tag, acker, Verdict::Ack) => {
                    open.insert(tag, Some(acker));
                }
                Event::Settled(tag, acker, verdict) => {
                    open.remove(&tag);
                    let sent = match verdict {
                        // AMQP 0.9.1 has no delayed requeue: the message is requeued at once.
                        Verdict::Nak(_) => {
                            acker
                                .nack(BasicNackOptions {
                                    requeue: true,
                                    ..BasicNackOptions::default()
                                })
                                .await
                        }
                        _ => acker.reject(BasicRejectOptions { requeue: false }).await,
                    };
                    ledger.settled(verdict, sent.is_ok());
                }
            }
        }
        // The run of acknowledged deliveries from the oldest open one.
        let mut run = 0;
        let mut last = None;
        for acker in open.values() {
            match acker {
                Some(acker) => {
                    run += 1;
                    last = Some(acker);
                }
                None => break,
            }
        }
        if let Some(last) = last {
            let sent = last.ack(BasicAckOptions { multiple: true }).await.is_ok();
            for _ in 0..run {
                open.pop_first();
                ledger.settled(Verdict::Ack, sent);
            }
        }
    }
    // Whatever the broker sent and nobody took is requeued when the channel closes.
    let _ = channel.close(200, "done").await;
    let _ = connection.close(200, "done").await;
}

/// Where an [`AckPipeline`] publishes to with [`AckPipeline::publish`]: a RabbitMQ exchange
/// and routing key, with publisher confirms; each value's messages are acknowledged once the
/// broker confirmed its copy. Messages are persistent (delivery mode 2) and carry the value's
/// key as their `message_id` (RabbitMQ does not de-duplicate on it: a consumer can).
#[derive(Debug, Clone)]
pub struct AmqpSink {
    url: String,
    exchange: String,
    routing_key: String,
    window: NonZeroUsize,
}

impl AmqpSink {
    /// A sink publishing to `exchange` (`""` is the default exchange, which routes to the
    /// queue named by the routing key) with `routing_key`.
    pub fn new(
        url: impl Into<String>,
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
    ) -> Self {
        AmqpSink {
            url: url.into(),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            window: NonZeroUsize::new(256).unwrap_or(NonZeroUsize::MIN),
        }
    }

    /// Sets how many publishes may await their confirmation at once (256 by default).
    #[must_use]
    pub fn window(mut self, window: impl Size) -> Self {
        let window = window.non_zero("window");
        self.window = window;
        self
    }
}

async fn confirming_channel(
    url: &str,
    operation: &'static str,
) -> crate::Result<(Connection, Channel)> {
    let fail = |e: lapin::Error| Error::from_boxed(ErrorKind::Io, operation, e.into()).fatal();
    let connection = Connection::connect(url, connection_properties())
        .await
        .map_err(fail)?;
    let channel = connection.create_channel().await.map_err(fail)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(fail)?;
    Ok((connection, channel))
}

/// Publishes one message as `mandatory` (so that one no queue takes comes back), and returns
/// the future of its confirmation.
async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: BasicProperties,
) -> lapin::Result<lapin::publisher_confirm::PublisherConfirm> {
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    channel
        .basic_publish(exchange, routing_key, options, payload, properties)
        .await
}

fn confirmed(confirmation: lapin::Result<Confirmation>) -> Result<(), BoxError> {
    match confirmation? {
        // Published as mandatory: a message no queue took comes back with its confirm.
        Confirmation::Ack(Some(returned)) => Err(format!(
            "no queue took the message (routing key {:?}): {}",
            returned.delivery.routing_key.as_str(),
            returned.reply_text.as_str()
        )
        .into()),
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Nack(_) => Err("the broker refused the message (nack)".into()),
        Confirmation::NotRequested => Err("the channel does not confirm publishes".into()),
    }
}

impl BrokerSink for AmqpSink {
    async fn publish_all<T>(self, pipeline: AckPipeline<T>) -> crate::Result<AckReport>
    where
        T: Serialize + Send + 'static,
    {
        const OPERATION: &str = "amqp sink: publish";
        let (connection, channel) = confirming_channel(&self.url, OPERATION).await?;
        let (exchange, routing_key) = (self.exchange, self.routing_key);
        let report = super::publish_confirmed(pipeline, self.window, OPERATION, |payload, key| {
            let mut properties = BasicProperties::default().with_delivery_mode(2);
            if let Some(key) = &key {
                properties = properties.with_message_id(ShortString::from(key.to_string()));
            }
            let (channel, exchange, routing_key) =
                (channel.clone(), exchange.clone(), routing_key.clone());
            async move {
                let confirm = publish(&channel, &exchange, &routing_key, &payload, properties);
                let confirm = confirm.await?;
                Ok(async move { confirmed(confirm.await) })
            }
        })
        .await;
        let _ = channel.close(200, "done").await;
        let _ = connection.close(200, "done").await;
        report
    }
}

/// A dead-letter sink for [`ErrorPolicy::dead_letter`](crate::ErrorPolicy::dead_letter) that
/// publishes each error to `exchange` with `routing_key`: the record's raw bytes as the
/// payload, the error in the `x-vortex-error` header and its position in
/// `x-vortex-position`. Each publish is confirmed by the broker before the next is sent, so
/// the error policy acknowledges the original message only once its dead letter is stored.
pub fn dead_letters(
    url: impl Into<String>,
    exchange: impl Into<String>,
    routing_key: impl Into<String>,
) -> impl futures_sink::Sink<Error, Error = BoxError> + Send + 'static {
    let target = (url.into(), exchange.into(), routing_key.into());
    futures_util::sink::unfold(
        (target, None::<(Connection, Channel)>),
        |((url, exchange, routing_key), open), err: Error| async move {
            let (connection, channel) = match open {
                Some(open) => open,
                None => confirming_channel(&url, "amqp dead letters").await?,
            };
            let mut headers = FieldTable::default();
            headers.insert(
                ShortString::from(ERROR_HEADER),
                AMQPValue::LongString(LongString::from(format!("{err:#}"))),
            );
            if let Some(position) = err.position() {
                headers.insert(
                    ShortString::from(POSITION_HEADER),
                    AMQPValue::LongString(LongString::from(position.to_string())),
                );
            }
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(headers);
            let payload = err.raw().unwrap_or_default();
            let confirm = publish(&channel, &exchange, &routing_key, payload, properties).await?;
            confirmed(confirm.await)?;
            Ok::<_, BoxError>(((url, exchange, routing_key), Some((connection, channel))))
        },
    )
}
