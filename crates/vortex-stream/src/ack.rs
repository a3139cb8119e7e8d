//! Acknowledgement after commit: the handles that travel beside values read from a message
//! broker, so that a message is acknowledged only once everything derived from it has been
//! committed downstream.
//!
//! A broker source makes one *delivery* per message it receives and hands the value on with
//! an [`Ack`] holding one *share* of it. Every operator of an
//! [`AckPipeline`](crate::AckPipeline) keeps the shares beside the values: a value mapped
//! keeps its share; a value a filter drops decides its share at once; one value made into
//! many splits its share among them; values gathered into a batch merge theirs; an error item
//! carries the share of the message it came from ([`Error::with_ack`](crate::Error::with_ack)). A sink
//! decides the shares of what it wrote once its commit point has passed: a transaction
//! committed, a file renamed into place, a broker's publish acknowledgement received.
//!
//! ```text
//!  broker ──message 7──▶ source ──(value, Ack{7})──▶ map ──▶ flat_map ──┬─(a, Ack{7}½)─┐
//!    ▲                                                                  └─(b, Ack{7}½)─┤
//!    │                                                   chunk: (batch [a, b, …], Ack{7, 8, …})
//!    │                                                                                 ▼
//!    └──── ack 7 ◀── settler ◀── every share of 7 decided ◀── commit ◀── sink (COMMIT)
//! ```
//!
//! When the last share of a delivery is decided, the delivery is settled with the broker:
//!
//! | the shares were                               | the message is                       |
//! |-----------------------------------------------|--------------------------------------|
//! | all committed (or dropped by a filter)        | acknowledged                         |
//! | any rejected by the error policy (`skip`)     | terminated: never delivered again    |
//! | any failed (a failed commit, a failed stage)  | negatively acknowledged: redelivered |
//! | any dropped without a decision                | negatively acknowledged, and counted |
//!
//! A share dropped without a decision is never taken for a success: it is counted as
//! [`undecided`](AckReport::undecided) in the [`AckReport`] and its message is redelivered.
//! That is what happens to the values in flight when a pipeline is dropped or stops on an
//! error.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::error::{Error, ErrorKind, Result};

/// How long a terminal waits, after its last commit, for the verdicts to reach the broker.
pub const SETTLE_WAIT: Duration = Duration::from_secs(30);

/// The delay before a message whose commit failed is delivered again, unless
/// [`AckPipeline::nak_delay`](crate::AckPipeline::nak_delay) sets another.
pub const DEFAULT_NAK_DELAY: Duration = Duration::from_secs(1);

/// The longest a failed message is held back before it is delivered again.
pub const MAX_NAK_DELAY: Duration = Duration::from_secs(300);

/// `delay` doubled for each delivery before the `delivered`th, up to [`MAX_NAK_DELAY`].
fn backoff(delay: Duration, delivered: u64) -> Duration {
    let doublings = u32::try_from(delivered.saturating_sub(1).min(20)).unwrap_or(20);
    delay
        .saturating_mul(1 << doublings)
        .min(MAX_NAK_DELAY.max(delay))
}

/// How a message is settled with its broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Everything derived from it was committed (or filtered out): acknowledge it.
    Ack,
    /// It must be delivered again, after the delay if one is given.
    Nak(Option<Duration>),
    /// It is bad for good: the broker must not deliver it again.
    Term,
}

// The decisions of shares, ordered so that the strongest wins.
const COMMITTED: u8 = 0;
const REJECTED: u8 = 1;
const FAILED: u8 = 2;

/// The shared record of one source's deliveries: how many are still open, and how the
/// settled ones were settled.
///
/// Cheap to clone; clones share the counts.
#[derive(Clone, Default)]
pub struct AckLedger(Arc<Ledger>);

#[derive(Default)]
struct Ledger {
    received: AtomicU64,
    open: AtomicU64,
    acked: AtomicU64,
    nacked: AtomicU64,
    terminated: AtomicU64,
    undecided: AtomicU64,
    lost: AtomicU64,
    redelivered: AtomicU64,
    idle: Notify,
    changed: Notify,
}

impl AckLedger {
    /// A new, empty ledger.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a delivery for a message just received: its one share goes with its value, and
    /// `settle` is called once, with the verdict, when every share derived from it is decided.
    ///
    /// The broker source calls [`settled`](AckLedger::settled) once the verdict has reached
    /// the broker.
    pub fn open(&self, settle: impl FnOnce(Verdict) + Send + 'static) -> Ack {
        self.open_with(None, settle)
    }

    /// Like [`open`](AckLedger::open), keeping the message's payload (shared, not copied)
    /// until it is settled, so that a dead letter of any of its values carries it.
    pub fn open_with(
        &self,
        payload: Option<Bytes>,
        settle: impl FnOnce(Verdict) + Send + 'static,
    ) -> Ack {
        self.0.received.fetch_add(1, Ordering::Relaxed);
        self.0.open.fetch_add(1, Ordering::AcqRel);
        let delivery = Arc::new(Delivery {
            shares: AtomicUsize::new(1),
            worst: AtomicU8::new(COMMITTED),
            delay: Mutex::new(None),
            settle: Mutex::new(Some(Box::new(settle))),
            payload,
        });
        Ack {
            parts: vec![delivery],
            ledger: Some(self.clone()),
            last_attempt: false,
            delivered: 1,
        }
    }

    /// Records that a message just received had been delivered before.
    pub fn redelivery(&self) {
        self.0.redelivered.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that a verdict reached the broker (`sent`) or could not be sent (the
    /// connection was gone: the broker redelivers the message after its ack wait).
    pub fn settled(&self, verdict: Verdict, sent: bool) {
        let counter = match (sent, verdict) {
            (false, _) => &self.0.lost,
            (true, Verdict::Ack) => &self.0.acked,
            (true, Verdict::Nak(_)) => &self.0.nacked,
            (true, Verdict::Term) => &self.0.terminated,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
        self.0.changed.notify_waiters();
    }

    /// Waits until fewer than `n` deliveries are open, or until `limit` has passed; returns
    /// whether they are.
    pub async fn wait_open_below(&self, n: u64, limit: Duration) -> bool {
        let wait = async {
            loop {
                let changed = self.0.changed.notified();
                if self.0.open.load(Ordering::Acquire) < n {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// Waits until every delivery opened so far has been settled with the broker, or until
    /// `limit` has passed; returns whether all were.
    pub async fn wait_settled(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.0.idle.notified();
                if self.0.open.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// The counts so far.
    #[must_use]
    pub fn report(&self) -> AckReport {
        let l = &self.0;
        AckReport {
            received: l.received.load(Ordering::Relaxed),
            open: l.open.load(Ordering::Relaxed),
            acked: l.acked.load(Ordering::Relaxed),
            nacked: l.nacked.load(Ordering::Relaxed),
            terminated: l.terminated.load(Ordering::Relaxed),
            undecided: l.undecided.load(Ordering::Relaxed),
            lost: l.lost.load(Ordering::Relaxed),
            redelivered: l.redelivered.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for AckLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.report().fmt(f)
    }
}

/// What a broker source's deliveries came to, from [`AckLedger::report`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AckReport {
    /// Messages received.
    pub received: u64,
    /// Messages received and not yet settled with the broker.
    pub open: u64,
    /// Messages acknowledged.
    pub acked: u64,
    /// Messages negatively acknowledged (to be redelivered).
    pub nacked: u64,
    /// Messages terminated (never to be redelivered).
    pub terminated: u64,
    /// Shares dropped without a decision (each made its message redelivered).
    pub undecided: u64,
    /// Verdicts that could not be sent (the broker redelivers those messages after its ack
    /// wait).
    pub lost: u64,
    /// Messages received that had been delivered before (to this pipeline or another).
    pub redelivered: u64,
}

/// What a broker source does with a message's verdict.
type Settle = Box<dyn FnOnce(Verdict) + Send>;

struct Delivery {
    shares: AtomicUsize,
    worst: AtomicU8,
    delay: Mutex<Option<Duration>>,
    settle: Mutex<Option<Settle>>,
    payload: Option<Bytes>,
}

impl Delivery {
    fn decide(&self, decision: u8, delay: Option<Duration>) {
        self.worst.fetch_max(decision, Ordering::AcqRel);
        if let Some(delay) = delay {
            let mut longest = self.delay.lock().unwrap_or_else(PoisonError::into_inner);
            *longest = Some(longest.map_or(delay, |d| d.max(delay)));
        }
        if self.shares.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let verdict = match self.worst.load(Ordering::Acquire) {
            COMMITTED => Verdict::Ack,
            REJECTED => Verdict::Term,
            _ => Verdict::Nak(*self.delay.lock().unwrap_or_else(PoisonError::into_inner)),
        };
        let settle = self
            .settle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(settle) = settle {
            settle(verdict);
        }
    }
}

/// A share of the acknowledgement of one or more broker messages, travelling beside a value
/// derived from them.
///
/// It must be decided exactly once: [`commit`](Ack::commit) once the value is committed (or
/// deliberately dropped), [`reject`](Ack::reject) when the error policy gives the value up,
/// [`fail`](Ack::fail) when it must be delivered again. Cloning makes one more share of the
/// same messages, to be decided on its own. A share dropped undecided counts as failed, and
/// is counted in the [`AckReport`].
///
/// An `Ack` of no message ([`Ack::none`]) decides nothing: values that came from no broker
/// carry it.
#[must_use = "an acknowledgement dropped without a decision makes its messages redelivered"]
pub struct Ack {
    parts: Vec<Arc<Delivery>>,
    ledger: Option<AckLedger>,
    last_attempt: bool,
    // How many times its messages were delivered (the most of them), for the backoff.
    delivered: u64,
}

impl Ack {
    /// A share of no message: deciding it does nothing.
    pub fn none() -> Self {
        Ack {
            parts: Vec::new(),
            ledger: None,
            last_attempt: false,
            delivered: 1,
        }
    }

    /// The ledger of the source the messages came from.
    #[must_use]
    pub fn ledger(&self) -> Option<&AckLedger> {
        self.ledger.as_ref()
    }

    /// The number of messages this share belongs to.
    #[must_use]
    pub fn messages(&self) -> usize {
        self.parts.len()
    }

    /// Splits this share into `n` shares of the same messages (none when `n` is 0: the share
    /// is then committed, as nothing derived from it remains to commit).
    pub fn split(self, n: usize) -> Vec<Ack> {
        if n == 0 {
            self.commit();
            return Vec::new();
        }
        let mut out = Vec::with_capacity(n);
        for _ in 1..n {
            out.push(self.clone());
        }
        out.push(self);
        out
    }

    /// The payload of its message, where this is a share of one message whose source kept
    /// it ([`AckLedger::open_with`]).
    #[must_use]
    pub fn payload(&self) -> Option<&Bytes> {
        match self.parts.as_slice() {
            [delivery] => delivery.payload.as_ref(),
            _ => None,
        }
    }

    /// Marks whether this is the last delivery the broker source allows its message (see
    /// [`ErrorPolicy::redeliver`](crate::ErrorPolicy::redeliver)).
    pub fn last_attempt(mut self, last: bool) -> Self {
        self.last_attempt = last;
        self
    }

    /// Records how many times its message has been delivered, counting this delivery (the
    /// broker source sets it): the delay of [`fail`](Ack::fail) doubles with each earlier one.
    pub fn delivered(mut self, times: u64) -> Self {
        self.delivered = times.max(1);
        self
    }

    /// Whether any of its messages is on the last delivery its source allows.
    #[must_use]
    pub fn is_last_attempt(&self) -> bool {
        self.last_attempt
    }

    /// Merges another share into this one: deciding the result decides both.
    pub fn merge(&mut self, mut other: Ack) {
        self.last_attempt |= other.last_attempt;
        self.delivered = self.delivered.max(other.delivered);
        if self.ledger.is_none() {
            self.ledger = other.ledger.take();
        }
        self.parts.append(&mut other.parts);
    }

    /// The value derived from the messages is committed (or was deliberately dropped).
    pub fn commit(mut self) {
        self.decide(COMMITTED, None);
    }

    /// The error policy gave the value up (skipped it): its messages are terminated unless
    /// another share of them fails.
    pub fn reject(mut self) {
        self.decide(REJECTED, None);
    }

    /// The value could not be committed: its messages are delivered again, after `delay` if
    /// one is given, doubled for each earlier delivery (a backoff), up to [`MAX_NAK_DELAY`].
    pub fn fail(mut self, delay: Option<Duration>) {
        let delay = delay.map(|delay| backoff(delay, self.delivered));
        self.decide(FAILED, delay);
    }

    fn decide(&mut self, decision: u8, delay: Option<Duration>) {
        for delivery in self.parts.drain(..) {
            delivery.decide(decision, delay);
        }
    }
}

impl Clone for Ack {
    /// One more share of the same messages.
    fn clone(&self) -> Self {
        for delivery in &self.parts {
            delivery.shares.fetch_add(1, Ordering::AcqRel);
        }
        Ack {
            parts: self.parts.clone(),
            ledger: self.ledger.clone(),
            last_attempt: self.last_attempt,
            delivered: self.delivered,
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if self.parts.is_empty() {
            return;
        }
        if let Some(ledger) = &self.ledger {
            ledger.0.undecided.fetch_add(1, Ordering::Relaxed);
        }
        self.decide(FAILED, None);
    }
}

impl Default for Ack {
    fn default() -> Self {
        Ack::none()
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ack")
            .field("messages", &self.parts.len())
            .finish()
    }
}

/// A value with the acknowledgement share of the messages it came from: the item of an
/// [`AckPipeline`](crate::AckPipeline).
#[derive(Debug)]
pub struct Acked<T> {
    /// The value.
    pub value: T,
    /// Its share of its messages' acknowledgement.
    pub ack: Ack,
    /// A key naming the message (and the part of it) the value came from, stable across
    /// redeliveries, such as `ORDERS:42`: a broker sink publishes it as the message id, so a
    /// value published twice after a crash is stored once.
    pub key: Option<Arc<str>>,
}

impl<T> Acked<T> {
    /// A value with its share and key.
    pub fn new(value: T, ack: Ack, key: Option<Arc<str>>) -> Self {
        Acked { value, ack, key }
    }

    /// The value and share of no message.
    pub fn unacked(value: T) -> Self {
        Acked {
            value,
            ack: Ack::none(),
            key: None,
        }
    }

    /// Maps the value, keeping its share and key.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Acked<U> {
        Acked {
            value: f(self.value),
            ack: self.ack,
            key: self.key,
        }
    }
}

impl<T: Clone> Clone for Acked<T> {
    /// A clone of the value with one more share of its messages.
    fn clone(&self) -> Self {
        Acked {
            value: self.value.clone(),
            ack: self.ack.clone(),
            key: self.key.clone(),
        }
    }
}

/// Ends a terminal's run: fails the share of the error it stops on, waits until the verdicts
/// have reached the broker, and reports.
pub(crate) async fn finish(outcome: Result<()>, ledgers: &[AckLedger]) -> Result<AckReport> {
    let outcome = outcome.map_err(|mut err| {
        err.take_ack().fail(None);
        err
    });
    let mut all_settled = true;
    for ledger in ledgers {
        all_settled &= ledger.wait_settled(SETTLE_WAIT).await;
    }
    outcome?;
    if !all_settled {
        let open = sum(ledgers).open;
        return Err(
            Error::new(ErrorKind::Timeout, "acknowledge").with_message(format!(
                "{open} message(s) not settled with the broker within {}s of the last commit",
                SETTLE_WAIT.as_secs()
            )),
        );
    }
    Ok(sum(ledgers))
}

pub(crate) fn sum(ledgers: &[AckLedger]) -> AckReport {
    let mut total = AckReport::default();
    for ledger in ledgers {
        let r = ledger.report();
        total.received += r.received;
        total.open += r.open;
        total.acked += r.acked;
        total.nacked += r.nacked;
        total.terminated += r.terminated;
        total.undecided += r.undecided;
        total.lost += r.lost;
        total.redelivered += r.redelivered;
    }
    total
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn tracked(ledger: &AckLedger) -> (Ack, Arc<Mutex<Vec<Verdict>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = Arc::clone(&seen);
        let ledger2 = ledger.clone();
        let ack = ledger.open(move |v| {
            out.lock().unwrap().push(v);
            ledger2.settled(v, true);
        });
        (ack, seen)
    }

    #[test]
    fn a_message_is_settled_once_when_its_last_share_is_decided() {
        let ledger = AckLedger::new();
        let (ack, seen) = tracked(&ledger);
        let mut parts = ack.split(3);
        parts.pop().unwrap().commit();
        parts.pop().unwrap().commit();
        assert!(seen.lock().unwrap().is_empty());
        parts.pop().unwrap().commit();
        assert_eq!(*seen.lock().unwrap(), [Verdict::Ack]);
        assert_eq!(ledger.report().acked, 1);
        assert_eq!(ledger.report().open, 0);
    }

    #[test]
    fn the_strongest_decision_wins() {
        let ledger = AckLedger::new();
        let (ack, seen) = tracked(&ledger);
        let mut parts = ack.split(3);
        parts.pop().unwrap().fail(Some(Duration::from_secs(2)));
        parts.pop().unwrap().reject();
        parts.pop().unwrap().commit();
        assert_eq!(
            *seen.lock().unwrap(),
            [Verdict::Nak(Some(Duration::from_secs(2)))]
        );

        let (ack, seen) = tracked(&ledger);
        let mut parts = ack.split(2);
        parts.pop().unwrap().reject();
        parts.pop().unwrap().commit();
        assert_eq!(*seen.lock().unwrap(), [Verdict::Term]);
    }

    #[test]
    fn a_share_dropped_undecided_is_counted_and_redelivers() {
        let ledger = AckLedger::new();
        let (ack, seen) = tracked(&ledger);
        let copy = ack.clone();
        ack.commit();
        drop(copy);
        assert_eq!(*seen.lock().unwrap(), [Verdict::Nak(None)]);
        let report = ledger.report();
        assert_eq!((report.undecided, report.nacked, report.acked), (1, 1, 0));
    }

    #[test]
    fn merged_shares_decide_every_message() {
        let ledger = AckLedger::new();
        let (a, seen_a) = tracked(&ledger);
        let (b, seen_b) = tracked(&ledger);
        let mut batch = Ack::none();
        batch.merge(a);
        batch.merge(b);
        assert_eq!(batch.messages(), 2);
        batch.commit();
        assert_eq!(*seen_a.lock().unwrap(), [Verdict::Ack]);
        assert_eq!(*seen_b.lock().unwrap(), [Verdict::Ack]);
        assert_eq!(ledger.report().undecided, 0);
    }

    #[test]
    fn a_failed_message_waits_longer_each_time_it_comes_back() {
        let ledger = AckLedger::new();
        let second = Duration::from_secs(1);
        for (delivered, waits) in [(1, 1), (2, 2), (4, 8), (30, 300)] {
            let (ack, seen) = tracked(&ledger);
            ack.delivered(delivered).fail(Some(second));
            let expected = Verdict::Nak(Some(Duration::from_secs(waits)));
            assert_eq!(
                *seen.lock().unwrap(),
                [expected],
                "delivered {delivered} times"
            );
        }
        let (ack, seen) = tracked(&ledger);
        ack.delivered(3).fail(None);
        assert_eq!(*seen.lock().unwrap(), [Verdict::Nak(None)]);
    }

    #[test]
    fn splitting_into_nothing_commits() {
        let ledger = AckLedger::new();
        let (ack, seen) = tracked(&ledger);
        assert!(ack.split(0).is_empty());
        assert_eq!(*seen.lock().unwrap(), [Verdict::Ack]);
    }
}
