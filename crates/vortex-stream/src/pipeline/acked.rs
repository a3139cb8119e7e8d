//! [`AckPipeline`]: a pipeline whose values carry the acknowledgement of the broker messages
//! they came from, and whose every operator keeps it (see [`crate::ack`]).

use core::future::Future;
use core::time::Duration;
use std::sync::{Arc, Mutex, PoisonError};

use futures_core::stream::BoxStream;
use futures_core::Stream;
use futures_util::StreamExt;

use super::Pipeline;
use crate::ack::{Ack, AckLedger, AckReport, Acked, DEFAULT_NAK_DELAY};
use crate::core::Size;
use crate::error::{BoxError, Error, Position};
use crate::parallel::Parallelism;
use crate::{ErrorPolicy, Result};

/// A pipeline of values read from a message broker, each carrying its share of its messages'
/// acknowledgement ([`Acked`]), so that a message is acknowledged only once everything
/// derived from it has been committed.
///
/// Its operators are those of [`Pipeline`] that keep the guarantee: a value [`map`]ped keeps
/// its share, one a [`filter`] drops is decided at once (its message is acknowledged when
/// nothing else derived from it is pending), one made into many by [`flat_map`] shares among
/// them, values [`chunk`]ed merge theirs, [`par_map_unordered`] and [`partition_by`] carry
/// them through any reordering, and [`tee`] gives each consumer a share of its own. An error
/// item carries the share of the message it came from: [`on_error`] rejects it when the
/// policy skips the record (the message is terminated), commits it once the dead-letter sink
/// has taken it, and a terminal that stops on an error fails it (the message is redelivered).
///
/// A terminal ([`commit_each`], [`commit_batches`], or a broker sink) decides the shares once
/// its commit point has passed, then waits until every verdict has reached the broker. To
/// leave the guarantee deliberately, [`into_pipeline`] yields the [`Acked`] items themselves.
///
/// [`map`]: AckPipeline::map
/// [`filter`]: AckPipeline::filter
/// [`flat_map`]: AckPipeline::flat_map
/// [`chunk`]: AckPipeline::chunk
/// [`par_map_unordered`]: AckPipeline::par_map_unordered
/// [`partition_by`]: AckPipeline::partition_by
/// [`tee`]: AckPipeline::tee
/// [`on_error`]: AckPipeline::on_error
/// [`commit_each`]: AckPipeline::commit_each
/// [`commit_batches`]: AckPipeline::commit_batches
/// [`into_pipeline`]: AckPipeline::into_pipeline
///
/// # Examples
///
/// Any stream of [`Acked`] values is one; here the "broker" is a ledger and a list:
///
/// ```
/// use std::time::Duration;
/// use vortex_stream::ack::{AckLedger, Acked};
/// use vortex_stream::AckPipeline;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// let ledger = AckLedger::new();
/// let messages: Vec<_> = (1..=5u32)
///     .map(|n| {
///         let settled = ledger.clone();
///         Ok(Acked::new(n, ledger.open(move |verdict| settled.settled(verdict, true)), None))
///     })
///     .collect();
/// let report = AckPipeline::from_stream(futures_util::stream::iter(messages), ledger)
///     .filter(|n| n % 2 == 1)
///     .flat_map(|n| vec![n; n as usize])
///     .commit_batches(4, Duration::from_millis(10), |batch| {
///         // Write `batch` and commit it: the messages are acknowledged once this returns Ok.
///         assert!(batch.len() <= 4);
///         async { Ok::<_, std::io::Error>(()) }
///     })
///     .await?;
/// assert_eq!((report.received, report.acked, report.undecided), (5, 5, 0));
/// # Ok(())
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct AckPipeline<T> {
    inner: Pipeline<BoxStream<'static, Result<Acked<T>>>>,
    ledgers: Vec<AckLedger>,
    nak_delay: Duration,
}

impl<T> core::fmt::Debug for AckPipeline<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AckPipeline")
            .field("ledgers", &self.ledgers)
            .finish_non_exhaustive()
    }
}

/// The position an error of a value with `key` is reported at.
fn position_of(key: Option<&Arc<str>>) -> Position {
    key.map_or_else(Position::new, |key| {
        Position::new().with_source(Arc::clone(key))
    })
}

/// A user error for a value, carrying the value's share.
fn user_error(operation: &'static str, cause: impl Into<BoxError>, item: Acked<()>) -> Error {
    let Acked { ack, key, .. } = item;
    Error::from_user(operation, cause)
        .or_position(|| position_of(key.as_ref()))
        .with_ack(ack)
}

impl<T: Send + 'static> AckPipeline<T> {
    /// A pipeline of the [`Acked`] items of `stream`, whose deliveries `ledger` records.
    pub fn from_stream<S>(stream: S, ledger: AckLedger) -> Self
    where
        S: Stream<Item = Result<Acked<T>>> + Send + 'static,
    {
        AckPipeline {
            inner: Pipeline::from_stream(stream).boxed(),
            ledgers: vec![ledger],
            nak_delay: DEFAULT_NAK_DELAY,
        }
    }

    fn with<U, S>(self, inner: Pipeline<S>) -> AckPipeline<U>
    where
        S: Stream<Item = Result<Acked<U>>> + Send + 'static,
    {
        AckPipeline {
            inner: inner.boxed(),
            ledgers: self.ledgers,
            nak_delay: self.nak_delay,
        }
    }

    fn parts(self) -> (Pipeline<BoxStream<'static, Result<Acked<T>>>>, Self) {
        let AckPipeline {
            inner,
            ledgers,
            nak_delay,
        } = self;
        let empty = AckPipeline {
            inner: Pipeline::from_stream(futures_util::stream::empty()).boxed(),
            ledgers,
            nak_delay,
        };
        (inner, empty)
    }

    /// What the sources' deliveries have come to so far, summed.
    #[must_use]
    pub fn report(&self) -> AckReport {
        crate::ack::sum(&self.ledgers)
    }

    /// The ledgers of the sources, to read their reports while the pipeline runs.
    #[must_use]
    pub fn ledgers(&self) -> &[AckLedger] {
        &self.ledgers
    }

    /// Sets how long the broker waits before delivering again a message whose commit failed
    /// (one second by default), doubled for each earlier delivery of the message, up to
    /// [`MAX_NAK_DELAY`](crate::ack::MAX_NAK_DELAY).
    pub fn nak_delay(mut self, delay: Duration) -> Self {
        self.nak_delay = delay;
        self
    }

    /// The delay set with [`nak_delay`](AckPipeline::nak_delay).
    #[cfg_attr(not(any(feature = "nats", feature = "amqp")), allow(dead_code))]
    pub(crate) fn delay(&self) -> Duration {
        self.nak_delay
    }

    /// Maps each value, keeping its share.
    pub fn map<U, F>(self, mut f: F) -> AckPipeline<U>
    where
        F: FnMut(T) -> U + Send + 'static,
        U: Send + 'static,
    {
        let (inner, me) = self.parts();
        me.with(inner.map(move |item: Acked<T>| item.map(&mut f)))
    }

    /// Maps each value with a fallible `f`; an `Err` becomes an error item carrying the
    /// value's share, for [`on_error`](AckPipeline::on_error) or the terminal to decide.
    pub fn try_map<U, E, F>(self, mut f: F) -> AckPipeline<U>
    where
        F: FnMut(T) -> Result<U, E> + Send + 'static,
        E: Into<BoxError>,
        U: Send + 'static,
    {
        let (inner, me) = self.parts();
        me.with(inner.try_map(move |item: Acked<T>| {
            let Acked { value, ack, key } = item;
            match f(value) {
                Ok(value) => Ok(Acked { value, ack, key }),
                Err(cause) => Err(user_error("try_map", cause, Acked::new((), ack, key))),
            }
        }))
    }

    /// Keeps the values `predicate` accepts; a value it drops is done with (its share is
    /// committed), so a message all of whose values are filtered out is acknowledged.
    pub fn filter<F>(self, mut predicate: F) -> Self
    where
        F: FnMut(&T) -> bool + Send + 'static,
    {
        let (inner, me) = self.parts();
        me.with(inner.filter_map(move |item: Acked<T>| {
            if predicate(&item.value) {
                Some(item)
            } else {
                item.ack.commit();
                None
            }
        }))
    }

    /// Maps and filters in one step; a value `f` maps to `None` is done with, as in
    /// [`filter`](AckPipeline::filter).
    pub fn filter_map<U, F>(self, mut f: F) -> AckPipeline<U>
    where
        F: FnMut(T) -> Option<U> + Send + 'static,
        U: Send + 'static,
    {
        let (inner, me) = self.parts();
        me.with(inner.filter_map(move |item: Acked<T>| {
            let Acked { value, ack, key } = item;
            match f(value) {
                Some(value) => Some(Acked { value, ack, key }),
                None => {
                    ack.commit();
                    None
                }
            }
        }))
    }

    /// Makes each value into any number of values, which share its acknowledgement: its
    /// messages are acknowledged once all of them are committed (at once if there are none).
    /// Each gets the key of the value with its index appended (`ORDERS:42.0`, `ORDERS:42.1`).
    ///
    /// Memory: the iterator `f` returns, pulled lazily.
    pub fn flat_map<U, I, F>(self, mut f: F) -> AckPipeline<U>
    where
        F: FnMut(T) -> I + Send + 'static,
        I: IntoIterator<Item = U>,
        I::IntoIter: Send + 'static,
        U: Send + 'static,
    {
        let (inner, me) = self.parts();
        me.with(inner.flat_map(move |item: Acked<T>| {
            let Acked { value, ack, key } = item;
            Shares {
                values: f(value).into_iter(),
                ack: Some(ack),
                key,
                index: 0,
            }
        }))
    }

    /// Calls `f` on each value as it passes.
    pub fn inspect<F>(self, mut f: F) -> Self
    where
        F: FnMut(&T) + Send + 'static,
    {
        let (inner, me) = self.parts();
        me.with(inner.inspect(move |item: &Acked<T>| f(&item.value)))
    }

    /// Gathers values into batches of up to `size`, whose shares merge: deciding a batch
    /// decides every message in it.
    ///
    /// Memory: one batch.
    pub fn chunk(self, size: impl Size) -> AckPipeline<Vec<T>> {
        let size = size.non_zero("chunk");
        let (inner, me) = self.parts();
        me.with(inner.chunk(size).map(merge))
    }

    /// Like [`chunk`](AckPipeline::chunk), also ending a batch once its first value is
    /// `max_wait` old, so that a slow trickle of messages is committed (and acknowledged)
    /// without waiting for a full batch.
    pub fn chunk_timeout(self, size: impl Size, max_wait: Duration) -> AckPipeline<Vec<T>> {
        let size = size.non_zero("chunk_timeout");
        let (inner, me) = self.parts();
        me.with(inner.chunk_timeout(size, max_wait).map(merge))
    }

    /// Runs `f` on up to `parallelism` values at once on the blocking pool, in input order;
    /// each result keeps its value's share. See [`Pipeline::par_map`].
    pub fn par_map<U, F>(self, parallelism: impl Into<Parallelism>, f: F) -> AckPipeline<U>
    where
        F: Fn(T) -> U + Send + Sync + 'static,
        U: Send + 'static,
    {
        let (inner, me) = self.parts();
        me.with(inner.par_map(parallelism, move |item: Acked<T>| item.map(&f)))
    }

    /// Like [`par_map`](AckPipeline::par_map), yielding each result as soon as it is ready:
    /// shares travel with their values whatever the order.
    pub fn par_map_unordered<U, F>(
        self,
        parallelism: impl Into<Parallelism>,
        f: F,
    ) -> AckPipeline<U>
    where
        F: Fn(T) -> U + Send + Sync + 'static,
        U: Send + 'static,
    {
        let (inner, me) = self.parts();
        me.with(inner.par_map_unordered(parallelism, move |item: Acked<T>| item.map(&f)))
    }

    /// Runs the fallible async `f` for up to `parallelism` values at once, in input order; an
    /// `Err` becomes an error item carrying the value's share. See [`Pipeline::par_then`].
    pub fn par_then<U, E, F, Fut>(
        self,
        parallelism: impl Into<Parallelism>,
        mut f: F,
    ) -> AckPipeline<U>
    where
        F: FnMut(T) -> Fut + Send + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
        U: Send + 'static,
    {
        let (inner, me) = self.parts();
        me.with(inner.par_then(parallelism, move |item: Acked<T>| {
            let Acked { value, ack, key } = item;
            let call = f(value);
            async move {
                match call.await {
                    Ok(value) => Ok::<_, Error>(Acked { value, ack, key }),
                    Err(cause) => Err(user_error("par_then", cause, Acked::new((), ack, key))),
                }
            }
        }))
    }

    /// Runs the fallible async `f` for up to `parallelism` keys at once, in order within a
    /// key (see [`Pipeline::partition_by`]); shares travel with their values.
    pub fn partition_by<K, U, E, KF, F, Fut>(
        self,
        parallelism: impl Into<Parallelism>,
        mut key: KF,
        mut f: F,
    ) -> AckPipeline<U>
    where
        KF: FnMut(&T) -> K + Send + 'static,
        K: std::hash::Hash,
        F: FnMut(T) -> Fut + Send + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
        U: Send + 'static,
    {
        let (inner, me) = self.parts();
        me.with(inner.partition_by(
            parallelism,
            move |item: &Acked<T>| key(&item.value),
            move |item: Acked<T>| {
                let Acked { value, ack, key } = item;
                let call = f(value);
                async move {
                    match call.await {
                        Ok(value) => Ok::<_, Error>(Acked { value, ack, key }),
                        Err(cause) => {
                            Err(user_error("partition_by", cause, Acked::new((), ack, key)))
                        }
                    }
                }
            },
        ))
    }

    /// Hands error items to `policy`: a record it skips has its messages terminated, one it
    /// dead-letters is committed once the dead-letter sink has taken it, and under
    /// `fail_fast` (or once its budget is spent) the error goes on to the terminal, which
    /// fails its share. See [`Pipeline::on_error`].
    pub fn on_error(self, policy: ErrorPolicy) -> Self {
        let (inner, me) = self.parts();
        me.with(inner.on_error(policy))
    }

    /// Splits the pipeline into `consumers` pipelines that each see every item (see
    /// [`Pipeline::tee`]); each gets a share of every value's messages, so a message is
    /// acknowledged only once every consumer has committed what it derived from it.
    ///
    /// Memory: up to `buffer` items between the fastest and the slowest consumer.
    pub fn tee(self, consumers: impl Size, buffer: impl Size) -> Vec<AckPipeline<T>>
    where
        T: Clone + Sync,
    {
        let consumers = consumers.non_zero("tee");
        let buffer = buffer.non_zero("tee");
        let n = consumers.get();
        let (inner, me) = self.parts();
        // Each item is split into one share per consumer before the tee, and each consumer
        // takes its own; what the tee buffers and drops holds no share.
        let split = Pipeline::from_stream(StreamExt::map(inner, move |item| {
            Ok::<_, Error>(Teed::new(item, n))
        }));
        split
            .tee(consumers, buffer)
            .into_iter()
            .enumerate()
            .map(|(index, consumer)| AckPipeline {
                inner: Pipeline::from_stream(StreamExt::map(consumer, move |teed| {
                    teed.and_then(|teed: Teed<T>| teed.take(index))
                }))
                .boxed(),
                ledgers: me.ledgers.clone(),
                nak_delay: me.nak_delay,
            })
            .collect()
    }

    /// The [`Acked`] items themselves, to drive by hand: every share must then be decided by
    /// the caller.
    pub fn into_pipeline(self) -> Pipeline<BoxStream<'static, Result<Acked<T>>>> {
        self.inner
    }

    /// Commits each value with the async `commit` (a write that is durable once it returns
    /// `Ok`), then decides its share. A failed commit fails the share (its messages are
    /// delivered again after the [`nak_delay`](AckPipeline::nak_delay)) and ends the run
    /// with the error; so does an error item. Waits, at the end, until every verdict has
    /// reached the broker.
    ///
    /// # Errors
    ///
    /// The first error item or failed commit; a [`Timeout`](crate::ErrorKind::Timeout) error when
    /// the verdicts have not all reached the broker within [`SETTLE_WAIT`](crate::ack::SETTLE_WAIT).
    pub async fn commit_each<E, F, Fut>(self, mut commit: F) -> Result<AckReport>
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<BoxError>,
    {
        let nak_delay = self.nak_delay;
        let ledgers = self.ledgers.clone();
        let mut items = self.inner;
        let outcome = async {
            while let Some(item) = items.next().await {
                let Acked { value, ack, key } = item?;
                if let Err(cause) = commit(value).await {
                    ack.fail(Some(nak_delay));
                    return Err(
                        Error::from_user("commit", cause).or_position(|| position_of(key.as_ref()))
                    );
                }
                ack.commit();
            }
            Ok(())
        }
        .await;
        drop(items);
        crate::ack::finish(outcome, &ledgers).await
    }

    /// Commits values in batches of up to `size` (or what arrived within `max_wait` of a
    /// batch's first value) with the async `commit` (a transaction, a file renamed into
    /// place), then decides the batch's shares, as [`commit_each`](AckPipeline::commit_each)
    /// does for one value.
    ///
    /// Memory: one batch being gathered and one being committed.
    ///
    /// # Errors
    ///
    /// As [`commit_each`](AckPipeline::commit_each).
    pub async fn commit_batches<E, F, Fut>(
        self,
        size: impl Size,
        max_wait: Duration,
        commit: F,
    ) -> Result<AckReport>
    where
        F: FnMut(Vec<T>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<BoxError>,
    {
        self.chunk_timeout(size, max_wait).commit_each(commit).await
    }
}

/// A batch of values, their shares merged.
fn merge<T>(batch: Vec<Acked<T>>) -> Acked<Vec<T>> {
    let mut ack = Ack::none();
    let mut values = Vec::with_capacity(batch.len());
    for item in batch {
        ack.merge(item.ack);
        values.push(item.value);
    }
    Acked::new(values, ack, None)
}

/// The values one value was made into, each with a share of its messages; the value's own
/// share is committed when the values run out (and fails if they are dropped before).
struct Shares<I> {
    values: I,
    ack: Option<Ack>,
    key: Option<Arc<str>>,
    index: u64,
}

impl<I: Iterator> Iterator for Shares<I> {
    type Item = Acked<I::Item>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.values.next() {
            Some(value) => {
                let ack = self.ack.as_ref().map_or_else(Ack::none, Ack::clone);
                let key = self
                    .key
                    .as_ref()
                    .map(|key| Arc::from(format!("{key}.{}", self.index)));
                self.index += 1;
                Some(Acked::new(value, ack, key))
            }
            None => {
                if let Some(ack) = self.ack.take() {
                    ack.commit();
                }
                None
            }
        }
    }
}

/// An item on its way through a tee, with one share for each consumer.
#[derive(Clone)]
struct Teed<T> {
    item: core::result::Result<(T, Option<Arc<str>>), Error>,
    shares: Arc<Mutex<Vec<Option<Ack>>>>,
}

impl<T> Teed<T> {
    fn new(item: Result<Acked<T>>, consumers: usize) -> Self {
        let (item, ack) = match item {
            Ok(Acked { value, ack, key }) => (Ok((value, key)), ack),
            Err(mut err) => {
                let ack = err.take_ack();
                (Err(err), ack)
            }
        };
        let shares = ack.split(consumers).into_iter().map(Some).collect();
        Teed {
            item,
            shares: Arc::new(Mutex::new(shares)),
        }
    }

    fn take(self, index: usize) -> Result<Acked<T>> {
        let ack = self
            .shares
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(index)
            .and_then(Option::take)
            .unwrap_or_default();
        match self.item {
            Ok((value, key)) => Ok(Acked::new(value, ack, key)),
            Err(err) => Err(err.with_ack(ack)),
        }
    }
}
