//! NATS JetStream: a durable pull consumer as a source, and publishing as a sink, each with
//! acknowledgement after commit.
//!
//! ```no_run
//! # #![allow(dead_code)]
//! use std::time::Duration;
//! use vortex_stream::brokers::nats::JetStreamSource;
//!
//! #[derive(serde::Deserialize)]
//! struct Order { id: u64, amount: f64 }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = async_nats::connect("127.0.0.1:4222").await?;
//! let report = JetStreamSource::new(client, "ORDERS", "loader")
//!     .json::<Order>()
//!     .await?
//!     .filter(|order| order.amount > 0.0)
//!     .commit_batches(500, Duration::from_millis(100), |orders| {
//!         // One transaction for the batch: the messages are acknowledged once it committed.
//!         let ids: Vec<u64> = orders.iter().map(|order| order.id).collect();
//!         async move { write_in_one_transaction(ids).await }
//!     })
//!     .await?;
//! println!("{} acknowledged, {} handed back", report.acked, report.nacked);
//! # Ok(())
//! # }
//! # async fn write_in_one_transaction(_: Vec<u64>) -> std::io::Result<()> { Ok(()) }
//! ```

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State as ConnectionState;
use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::message::{Acker, PublishMessage};
use async_nats::jetstream::{self, AckKind, Context};
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{BrokerSink, Received};
use crate::ack::{AckLedger, AckReport, Verdict};
use crate::core::Size;
use crate::error::{BoxError, Error, ErrorKind, Position};
use crate::AckPipeline;

/// The window of unacknowledged messages a source holds unless [`JetStreamSource::window`]
/// sets another.
pub const DEFAULT_WINDOW: usize = 1024;

/// How long the server waits for a verdict before it delivers a message again, for a consumer
/// the source creates, unless [`JetStreamSource::ack_wait`] sets another.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// The header naming the error of a dead letter.
pub const ERROR_HEADER: &str = "Vortex-Error";

/// The header naming the position (stream and sequence) of a dead letter's message.
pub const POSITION_HEADER: &str = "Vortex-Position";

/// A JetStream durable pull consumer as the source of an [`AckPipeline`], with explicit
/// acknowledgement after commit.
///
/// The consumer is created if it does not exist (durable, explicit acks, its
/// `max_ack_pending` set to the window); an existing consumer is used as it is configured.
/// At most the window of messages is unacknowledged at once, so memory stays flat whatever
/// the backlog. The client reconnects by itself when the server restarts (a test kills it
/// mid-run for six seconds, longer than its idle stop): verdicts lost with the connection make their messages come
/// again after the ack wait, and nothing is lost. Each value's key and error position name the stream and sequence
/// (`ORDERS:42`).
#[derive(Debug, Clone)]
pub struct JetStreamSource {
    client: Client,
    stream: String,
    consumer: String,
    window: NonZeroUsize,
    ack_wait: Duration,
    max_deliver: Option<u64>,
    idle: Option<Duration>,
}

impl JetStreamSource {
    /// A source reading `stream` through the durable consumer `consumer`.
    pub fn new(client: Client, stream: impl Into<String>, consumer: impl Into<String>) -> Self {
        JetStreamSource {
            client,
            stream: stream.into(),
            consumer: consumer.into(),
            window: NonZeroUsize::new(DEFAULT_WINDOW).unwrap_or(NonZeroUsize::MIN),
            ack_wait: DEFAULT_ACK_WAIT,
            max_deliver: None,
            idle: None,
        }
    }

    /// Sets the window of unacknowledged messages (1024 by default): the most the pipeline
    /// holds, and the `max_ack_pending` of a consumer the source creates.
    #[must_use]
    pub fn window(mut self, window: impl Size) -> Self {
        let window = window.non_zero("window");
        self.window = window;
        self
    }

    /// Sets the ack wait of a consumer the source creates (30 s by default).
    #[must_use]
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// A message delivered more than `max` times becomes an error item (kind
    /// [`Capacity`](ErrorKind::Capacity), its raw bytes attached) instead of a value, for the
    /// error policy to dead-letter: a poison message stops being retried for ever.
    #[must_use]
    pub fn max_deliver(mut self, max: u64) -> Self {
        self.max_deliver = Some(max);
        self
    }

    /// Ends the stream once no message has arrived for `idle` (a backlog drained), instead of
    /// waiting for more for ever. Only time connected to the server counts: while the client
    /// has lost the server, the source waits for it to reconnect, so an outage never ends the
    /// stream as if the backlog were drained. Nor does a deleted consumer (an error), and
    /// while the server still counts messages pending for the consumer the stream goes on.
    #[must_use]
    pub fn stop_when_idle(mut self, idle: Duration) -> Self {
        self.idle = Some(idle);
        self
    }

    /// The messages' payloads as they are.
    ///
    /// # Errors
    ///
    /// A fatal [`Io`](ErrorKind::Io) error when the stream or consumer cannot be found or
    /// made.
    pub async fn bytes(self) -> crate::Result<AckPipeline<Bytes>> {
        self.open(Ok).await
    }

    /// The messages' payloads decoded as JSON; a payload that does not decode becomes a
    /// [`Decode`](ErrorKind::Decode) error item carrying its message's acknowledgement (and
    /// its first bytes, for a dead-letter sink).
    ///
    /// # Errors
    ///
    /// As [`bytes`](JetStreamSource::bytes).
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
        let fail = |e: BoxError| Error::from_boxed(ErrorKind::Io, "nats source: open", e).fatal();
        let js = jetstream::new(self.client.clone());
        let stream = js
            .get_stream(&self.stream)
            .await
            .map_err(|e| fail(e.into()))?;
        let window = self.window.get();
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                &self.consumer,
                pull::Config {
                    durable_name: Some(self.consumer.clone()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    max_ack_pending: i64::try_from(window).unwrap_or(i64::MAX),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| fail(e.into()))?;

        let ledger = AckLedger::new();
        let (verdicts, settling) = mpsc::unbounded_channel();
        // Detached on purpose, yet owned by the data: it ends by itself once every share of
        // every message is decided and the source is gone, which dropping the pipeline does.
        // The channel holds at most one verdict per message in the window.
        drop(tokio::runtime::Handle::current().spawn(settle(
            settling,
            self.client.clone(),
            ledger.clone(),
        )));
        let name: Arc<str> = Arc::from(format!("nats {}/{}", self.stream, self.consumer));
        let state = Reading {
            client: self.client.clone(),
            disconnected: false,
            ended: false,
            consumer,
            batch: None,
            quiet_since: None,
            window,
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
            "nats source: decode",
            decode,
        ))
    }
}

struct Reading {
    client: Client,
    // Whether the client was found disconnected at the last look (warned once per outage).
    disconnected: bool,
    // A fatal error was yielded: nothing comes after it.
    ended: bool,
    consumer: PullConsumer,
    // The pull request being read; taken out only when dropped.
    batch: Option<pull::Batch>,
    // Since when no message has arrived while there was room for one.
    quiet_since: Option<Instant>,
    window: usize,
    verdicts: mpsc::UnboundedSender<(Acker, Verdict)>,
    ledger: AckLedger,
    name: Arc<str>,
    max_deliver: Option<u64>,
    idle: Option<Duration>,
}

/// How long one pull request waits on the server for messages; a request outstanding when
/// the pipeline is dropped may still be served until then.
const PULL_EXPIRES: Duration = Duration::from_secs(2);

/// How often a source whose client lost its server looks whether it has reconnected.
const RECONNECT_POLL: Duration = Duration::from_millis(50);

impl Reading {
    /// A fatal read error: the stream ends after it.
    fn failed(&mut self, cause: BoxError) -> Error {
        self.ended = true;
        tracing::warn!(source = %self.name, error = %cause, "reading from JetStream failed");
        Error::from_boxed(ErrorKind::Io, "nats source: read", cause)
            .with_position(Position::new().with_source(Arc::clone(&self.name)))
            .fatal()
    }

    /// The next message as its payload and share, `None` at the end.
    ///
    /// Written by hand on explicit pull requests, each for the room left in the window (the
    /// messages received and not yet settled), rather than on the client's own pull stream:
    /// that one asks ahead of what it is given and, at the edge of `max_ack_pending`, was
    /// seen to wait for its request to expire before going on.
    async fn next(&mut self) -> Option<crate::Result<Received>> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(batch) = self.batch.as_mut() {
                match batch.next().await {
                    Some(Ok(message)) => {
                        self.quiet_since = None;
                        return Some(self.received(message));
                    }
                    Some(Err(e)) => return Some(Err(self.failed(e))),
                    None => self.batch = None,
                }
                continue;
            }
            let open = usize::try_from(self.ledger.report().open).unwrap_or(usize::MAX);
            if open >= self.window {
                // The window is full: wait for verdicts, which is no idleness.
                self.quiet_since = None;
                let below = u64::try_from(self.window).unwrap_or(u64::MAX);
                self.ledger.wait_open_below(below, PULL_EXPIRES).await;
                continue;
            }
            if self.client.connection_state() != ConnectionState::Connected {
                // An outage is no idleness: the backlog may still be on the server, and the
                // client reconnects by itself. Pull nothing until it has, and count the quiet
                // time anew from then, so that a drained-backlog stop never hides an outage.
                self.quiet_since = None;
                if !self.disconnected {
                    tracing::warn!(source = %self.name, "the JetStream server is unreachable; waiting for the client to reconnect");
                    self.disconnected = true;
                }
                tokio::time::sleep(RECONNECT_POLL).await;
                continue;
            }
            self.disconnected = false;
            let now = Instant::now();
            let quiet = *self.quiet_since.get_or_insert(now);
            let mut expires = PULL_EXPIRES;
            if let Some(idle) = self.idle {
                let left = idle.saturating_sub(now - quiet);
                if left.is_zero() {
                    // Quiet for long enough; the end only once the server confirms that
                    // nothing waits for this consumer. A deleted consumer, or messages still
                    // pending that did not come, is no drained backlog.
                    match self.consumer.get_info().await {
                        Ok(info) if info.num_pending == 0 => return None,
                        Ok(info) => {
                            tracing::debug!(source = %self.name, pending = info.num_pending, "quiet, but messages are still pending");
                            self.quiet_since = None;
                            continue;
                        }
                        Err(e) => return Some(Err(self.failed(e.into()))),
                    }
                }
                expires = expires.min(left.max(Duration::from_millis(10)));
            }
            let batch = self
                .consumer
                .batch()
                .max_messages(self.window - open)
                .expires(expires)
                .messages()
                .await;
            match batch {
                Ok(batch) => self.batch = Some(batch),
                Err(e) => return Some(Err(self.failed(e.into()))),
            }
        }
    }

    fn received(&mut self, message: jetstream::Message) -> crate::Result<Received> {
        let (stream, sequence, delivered) = match message.info() {
            Ok(info) => (info.stream.to_owned(), info.stream_sequence, info.delivered),
            Err(e) => return Err(self.failed(e)),
        };
        let (message, acker) = message.split();
        let verdicts = self.verdicts.clone();
        let ack = self
            .ledger
            .open_with(Some(message.payload.clone()), move |verdict| {
                let _ = verdicts.send((acker, verdict));
            });
        let key: Arc<str> = Arc::from(format!("{stream}:{sequence}"));
        let position = Position::new()
            .with_source(Arc::clone(&self.name))
            .with_record(sequence);
        let ack = super::attempt(
            ack,
            u64::try_from(delivered).ok(),
            delivered > 1,
            self.max_deliver,
            "nats source: redeliver",
            &position,
            &message.payload,
        )?;
        Ok(Received {
            payload: message.payload,
            ack,
            key: Some(key),
            position,
        })
    }
}

impl Drop for Reading {
    /// Hands back at once the messages of the pull request in progress that the pipeline
    /// never took (those in the client's buffer and those still on their way), so that they
    /// are not held until the ack wait passes: a task reads the request out, until the server
    /// ends it (within [`PULL_EXPIRES`]), and negatively acknowledges each message.
    fn drop(&mut self) {
        let Some(mut batch) = self.batch.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (verdicts, ledger) = (self.verdicts.clone(), self.ledger.clone());
        // Detached on purpose: it must outlive the pipeline, and it ends by itself when the
        // request does, within PULL_EXPIRES (bounded again here should the server not say).
        drop(runtime.spawn(async move {
            let deadline = Instant::now() + PULL_EXPIRES + Duration::from_secs(1);
            while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, batch.next()).await
            {
                let (_, acker) = message.split();
                let verdicts = verdicts.clone();
                ledger
                    .open(move |verdict| {
                        let _ = verdicts.send((acker, verdict));
                    })
                    .fail(None);
            }
        }));
    }
}

/// Sends the verdicts to the server, a burst at a time, and records them once flushed.
async fn settle(
    mut verdicts: mpsc::UnboundedReceiver<(Acker, Verdict)>,
    client: Client,
    ledger: AckLedger,
) {
    const BURST: usize = 1024;
    let mut burst = Vec::with_capacity(BURST);
    let mut sent = Vec::with_capacity(BURST);
    while verdicts.recv_many(&mut burst, BURST).await > 0 {
        for (acker, verdict) in burst.drain(..) {
            let kind = match verdict {
                Verdict::Ack => AckKind::Ack,
                Verdict::Nak(delay) => AckKind::Nak(delay),
                Verdict::Term => AckKind::Term,
            };
            sent.push((verdict, acker.ack_with(kind).await.is_ok()));
        }
        let flushed = client.flush().await.is_ok();
        for (verdict, ok) in sent.drain(..) {
            ledger.settled(verdict, ok && flushed);
        }
    }
}

/// Where an [`AckPipeline`] publishes to with [`AckPipeline::publish`]: a JetStream subject,
/// each publish acknowledged by the server before the values' messages are.
#[derive(Debug, Clone)]
pub struct JetStreamSink {
    context: Context,
    subject: String,
    window: NonZeroUsize,
}

impl JetStreamSink {
    /// A sink publishing to `subject`, which a stream must capture.
    pub fn new(client: Client, subject: impl Into<String>) -> Self {
        JetStreamSink {
            context: jetstream::new(client),
            subject: subject.into(),
            window: NonZeroUsize::new(256).unwrap_or(NonZeroUsize::MIN),
        }
    }

    /// Sets how many publishes may await their acknowledgement at once (256 by default).
    #[must_use]
    pub fn window(mut self, window: impl Size) -> Self {
        let window = window.non_zero("window");
        self.window = window;
        self
    }
}

impl BrokerSink for JetStreamSink {
    /// Publishes each value as JSON to the sink's subject, its key as the `Nats-Msg-Id`
    /// header, and commits its share once the server has acknowledged the publish.
    async fn publish_all<T>(self, pipeline: AckPipeline<T>) -> crate::Result<AckReport>
    where
        T: Serialize + Send + 'static,
    {
        let JetStreamSink {
            context,
            subject,
            window,
        } = self;
        super::publish_confirmed(
            pipeline,
            window,
            "nats sink: publish",
            move |payload, key| {
                let mut message = PublishMessage::build().payload(Bytes::from(payload));
                if let Some(key) = &key {
                    message = message.message_id(key);
                }
                let (context, subject) = (context.clone(), subject.clone());
                async move {
                    let confirm = context.send_publish(subject, message).await?;
                    Ok(async move { confirm.await.map(drop).map_err(BoxError::from) })
                }
            },
        )
        .await
    }
}

/// A dead-letter sink for [`ErrorPolicy::dead_letter`](crate::ErrorPolicy::dead_letter) that
/// publishes each error to a JetStream `subject`: the record's raw bytes as the payload, the
/// error in the `Vortex-Error` header and its position in `Vortex-Position`. Each publish is
/// acknowledged by the server before the next is sent, so the error policy acknowledges the
/// original message only once its dead letter is stored.
pub fn dead_letters(
    client: Client,
    subject: impl Into<String>,
) -> impl futures_sink::Sink<Error, Error = BoxError> + Send + 'static {
    let context = jetstream::new(client);
    let subject: String = subject.into();
    futures_util::sink::unfold(
        (context, subject),
        |(context, subject), err: Error| async move {
            let mut headers = HeaderMap::new();
            headers.insert(ERROR_HEADER, one_line(&format!("{err:#}")).as_str());
            if let Some(position) = err.position() {
                headers.insert(POSITION_HEADER, one_line(&position.to_string()).as_str());
                if let (Some(source), Some(record)) = (position.source(), position.record()) {
                    // One dead letter per message and error, even when sent twice.
                    headers.insert(
                        "Nats-Msg-Id",
                        one_line(&format!("{source}:{record}:{}", err.operation())).as_str(),
                    );
                }
            }
            let payload = Bytes::copy_from_slice(err.raw().unwrap_or_default());
            context
                .publish_with_headers(subject.clone(), headers, payload)
                .await?
                .await?;
            Ok::<_, BoxError>((context, subject))
        },
    )
}

/// A header value: one line, whatever the error's text held.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}
