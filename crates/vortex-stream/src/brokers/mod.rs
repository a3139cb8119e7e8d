//! Message brokers as sources and sinks, with acknowledgement after commit.
//!
//! A broker source yields an [`AckPipeline`]: each value carries its
//! share of its message's acknowledgement ([`crate::ack`]), and the message is acknowledged
//! only once everything derived from it has been committed by the sink. In flight is bounded
//! by the source's window of unacknowledged messages, so memory stays flat whatever the
//! backlog.
//!
//! - `nats`: NATS JetStream durable pull consumers and publishers (feature `nats`).
//! - `amqp`: RabbitMQ queue consumers and publishers with confirms (feature `amqp`).

#[cfg(feature = "amqp")]
pub mod amqp;
#[cfg(feature = "nats")]
pub mod nats;

use std::future::{poll_fn, Future};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::task::Poll;

use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;

use bytes::Bytes;

use crate::ack::{Ack, AckLedger, AckReport, Acked};
use crate::error::{BoxError, Error, ErrorKind, Position};
use crate::AckPipeline;

/// A broker that [`AckPipeline::publish`] publishes to, confirming each message before the
/// shares of its value are committed.
pub trait BrokerSink {
    /// Publishes every value of `pipeline` and commits each share once the broker confirmed
    /// its value; see [`AckPipeline::publish`].
    fn publish_all<T>(
        self,
        pipeline: AckPipeline<T>,
    ) -> impl Future<Output = crate::Result<AckReport>> + Send
    where
        T: serde::Serialize + Send + 'static;
}

impl<T: serde::Serialize + Send + 'static> AckPipeline<T> {
    /// Publishes each value as JSON to a broker ([`JetStreamSink`](nats::JetStreamSink),
    /// [`AmqpSink`](amqp::AmqpSink)), and commits its share once the broker has confirmed
    /// it (the commit point). A value's key (the message it came from, such as `ORDERS:42`)
    /// goes with it as its message id: JetStream stores a value published again after a crash
    /// once, within its stream's duplicate window.
    ///
    /// A failed publish fails the values' shares (their messages are delivered again after the
    /// [`nak_delay`](AckPipeline::nak_delay)) and ends the run with the error; so does an
    /// error item. Confirmations are taken as they arrive, whether or not upstream has a value
    /// ready.
    ///
    /// Memory: the sink's window of publishes awaiting confirmation.
    ///
    /// # Errors
    ///
    /// The first error item or failed publish, as [`AckPipeline::commit_each`].
    pub async fn publish(self, sink: impl BrokerSink) -> crate::Result<AckReport> {
        sink.publish_all(self).await
    }
}

/// The most raw bytes an error keeps of its message (the whole message, up to this).
pub(crate) const RAW_LIMIT: usize = 1 << 20;

/// The bytes of a message an error keeps: all of it, up to [`RAW_LIMIT`].
pub(crate) fn raw(payload: &[u8]) -> &[u8] {
    &payload[..payload.len().min(RAW_LIMIT)]
}

/// A message as a broker source receives it: its payload, its share, its key and position.
pub(crate) struct Received {
    pub(crate) payload: Bytes,
    pub(crate) ack: Ack,
    pub(crate) key: Option<Arc<str>>,
    pub(crate) position: Position,
}

/// The pipeline of a broker source: each message `next` receives, decoded with `decode`; a
/// payload that does not decode is a `Decode` error item of `operation` with the message's
/// share and bytes.
pub(crate) fn decoded<St, T, F>(
    messages: St,
    ledger: AckLedger,
    operation: &'static str,
    mut decode: F,
) -> AckPipeline<T>
where
    St: futures_core::Stream<Item = crate::Result<Received>> + Send + 'static,
    F: FnMut(Bytes) -> Result<T, BoxError> + Send + 'static,
    T: Send + 'static,
{
    let values = messages.map(move |item| {
        let Received {
            payload,
            ack,
            key,
            position,
        } = item?;
        match decode(payload.clone()) {
            Ok(value) => Ok(Acked::new(value, ack, key)),
            Err(cause) => Err(Error::from_boxed(ErrorKind::Decode, operation, cause)
                .with_position(position)
                .with_raw(raw(&payload))
                .with_ack(ack)),
        }
    });
    AckPipeline::from_stream(values, ledger)
}

/// Checks a message's delivery count (where the broker tells it; otherwise whether it was
/// delivered before) against `max_deliver`: past it, the message is a `Capacity` error of
/// `operation` carrying its share and bytes; on its last allowed delivery, the share is marked
/// so ([`Ack::last_attempt`]).
pub(crate) fn attempt(
    ack: Ack,
    delivered: Option<u64>,
    redelivered: bool,
    max_deliver: Option<u64>,
    operation: &'static str,
    position: &Position,
    payload: &[u8],
) -> crate::Result<Ack> {
    let ack = match delivered {
        Some(delivered) => ack.delivered(delivered),
        None if redelivered => ack.delivered(2),
        None => ack,
    };
    if delivered.map_or(redelivered, |delivered| delivered > 1) {
        if let Some(ledger) = ack.ledger() {
            ledger.redelivery();
        }
    }
    let Some(max) = max_deliver else {
        return Ok(ack);
    };
    match delivered {
        Some(delivered) if delivered > max => Err(Error::new(ErrorKind::Capacity, operation)
            .with_message(format!(
                "delivered {delivered} times, more than max_deliver ({max})"
            ))
            .with_position(position.clone())
            .with_raw(raw(payload))
            .with_ack(ack)),
        Some(delivered) => Ok(ack.last_attempt(delivered >= max)),
        None => Ok(ack.last_attempt(redelivered || max <= 1)),
    }
}

/// Decodes a payload as JSON.
// Decoders take the payload by value, so that `bytes` hands it on without a copy.
#[allow(clippy::needless_pass_by_value)]
pub(crate) fn json<T: serde::de::DeserializeOwned>(payload: Bytes) -> Result<T, BoxError> {
    serde_json::from_slice(&payload).map_err(BoxError::from)
}

/// What the publishing loop does next.
enum Step<T, D> {
    Item(Option<crate::Result<Acked<T>>>),
    Confirmed(D),
    End,
}

/// Publishes each value of `pipeline` as JSON with `send`, which returns once the message is
/// handed to the broker with the future of its confirmation, and commits the value's share
/// once the broker has confirmed it (a broker sink's commit point). At most `window`
/// confirmations are awaited at once; they are taken as they come, whether or not upstream
/// has a value ready (waiting for the next value first would hold the shares whose release
/// lets the source read it).
///
/// A failed publish fails the shares of its value (the messages are delivered again after
/// the pipeline's nak delay) and ends the run with the error; so does an error item.
pub(crate) async fn publish_confirmed<T, F, Fut, C>(
    pipeline: AckPipeline<T>,
    window: NonZeroUsize,
    operation: &'static str,
    mut send: F,
) -> crate::Result<AckReport>
where
    T: serde::Serialize + Send + 'static,
    F: FnMut(Vec<u8>, Option<Arc<str>>) -> Fut,
    Fut: Future<Output = Result<C, BoxError>>,
    C: Future<Output = Result<(), BoxError>>,
{
    let ledgers = pipeline.ledgers().to_vec();
    let nak_delay = pipeline.delay();
    let mut items = pipeline.into_pipeline();
    let mut in_flight = FuturesOrdered::new();
    let failed = |cause: BoxError, key: Option<Arc<str>>| {
        let position = key.map_or_else(Position::new, |key| Position::new().with_source(key));
        Error::from_boxed(ErrorKind::Io, operation, cause).with_position(position)
    };
    let outcome = async {
        let mut upstream_done = false;
        loop {
            let step = poll_fn(|cx| {
                if let Poll::Ready(Some(done)) = in_flight.poll_next_unpin(cx) {
                    return Poll::Ready(Step::Confirmed(done));
                }
                if upstream_done {
                    return if in_flight.is_empty() {
                        Poll::Ready(Step::End)
                    } else {
                        Poll::Pending
                    };
                }
                if in_flight.len() < window.get() {
                    if let Poll::Ready(item) = items.poll_next_unpin(cx) {
                        return Poll::Ready(Step::Item(item));
                    }
                }
                Poll::Pending
            })
            .await;
            match step {
                Step::End => return Ok(()),
                Step::Item(None) => upstream_done = true,
                Step::Item(Some(item)) => {
                    let Acked { value, ack, key } = item?;
                    let payload = match serde_json::to_vec(&value) {
                        Ok(payload) => payload,
                        Err(e) => {
                            ack.fail(Some(nak_delay));
                            return Err(failed(e.into(), key));
                        }
                    };
                    match send(payload, key.clone()).await {
                        Ok(confirm) => {
                            in_flight.push_back(async move { (confirm.await, ack, key) });
                        }
                        Err(e) => {
                            ack.fail(Some(nak_delay));
                            return Err(failed(e, key));
                        }
                    }
                }
                Step::Confirmed((result, ack, key)) => match result {
                    Ok(()) => ack.commit(),
                    Err(e) => {
                        ack.fail(Some(nak_delay));
                        return Err(failed(e, key));
                    }
                },
            }
        }
    }
    .await;
    drop(items);
    drop(in_flight);
    crate::ack::finish(outcome, &ledgers).await
}
