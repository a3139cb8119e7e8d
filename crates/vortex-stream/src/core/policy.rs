//! Error policies: what a pipeline does with an `Err` item, and the run report they keep.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_sink::Sink;
use futures_util::SinkExt;

use crate::error::{BoxError, Error, ErrorKind};

/// A dead-letter destination after type erasure: any [`Sink`] of [`Error`]s.
pub(crate) type DeadLetterSink = Pin<Box<dyn Sink<Error, Error = BoxError> + Send>>;

/// What a pipeline does with error items, set with [`Pipeline::on_error`](crate::Pipeline::on_error).
///
/// - [`fail_fast`](ErrorPolicy::fail_fast) (the behaviour of a pipeline without a policy):
///   the first error is passed on and the stream ends there.
/// - [`skip`](ErrorPolicy::skip): errors are dropped and counted.
/// - [`dead_letter`](ErrorPolicy::dead_letter): each error, with its position and cause, is
///   sent to a sink of the caller's choice, and the stream goes on.
///
/// `skip` and `dead_letter` take an error budget: [`max_errors`](ErrorPolicy::max_errors) and
/// [`max_error_rate`](ErrorPolicy::max_error_rate). Once it is spent the stream yields one
/// [`Capacity`](ErrorKind::Capacity) error, whose source is the error that spent it, and ends.
///
/// A policy is cheap to clone; clones share one [`Report`] (and one dead-letter sink), so the
/// report of a policy used by several stages sums them all.
///
/// # Examples
///
/// ```
/// use vortex_stream::{ErrorKind, ErrorPolicy, Pipeline};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// let policy = ErrorPolicy::skip().max_errors(10);
/// let total: i64 = Pipeline::from_iter(["1", "2", "x", "4"])
///     .try_map(|s| s.parse::<i64>())
///     .on_error(policy.clone())
///     .fold(0, |sum, n| sum + n)
///     .await?;
/// assert_eq!(total, 7);
/// let report = policy.report();
/// assert_eq!(report.items_in(), 4);
/// assert_eq!(report.items_out(), 3);
/// assert_eq!(report.skipped(), 1);
/// assert_eq!(report.errors(ErrorKind::User), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ErrorPolicy {
    pub(crate) mode: Mode,
    pub(crate) budget: Budget,
    pub(crate) redeliver: Option<Duration>,
    pub(crate) stats: Arc<Stats>,
}

#[derive(Clone)]
pub(crate) enum Mode {
    FailFast,
    Skip,
    DeadLetter(Arc<Mutex<DeadLetterSink>>),
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Budget {
    pub(crate) max_errors: Option<u64>,
    pub(crate) max_rate: Option<(f64, u64)>,
}

impl Budget {
    /// Whether `failed` errors among `seen` items spend the budget; `at_end` checks the rate
    /// whatever the number of items.
    pub(crate) fn exceeded(&self, failed: u64, seen: u64, at_end: bool) -> Option<String> {
        if let Some(max) = self.max_errors {
            if failed > max {
                return Some(format!(
                    "error budget exceeded: {failed} errors, at most {max} allowed"
                ));
            }
        }
        if let Some((rate, min_items)) = self.max_rate {
            // Precision loss only matters past 2^52 items, far beyond any rate decision.
            #[allow(clippy::cast_precision_loss)]
            let actual = failed as f64 / seen.max(1) as f64;
            if (at_end || seen >= min_items) && seen > 0 && actual > rate {
                return Some(format!(
                    "error budget exceeded: {failed} of {seen} items failed ({:.2}%), at most {:.2}% allowed",
                    actual * 100.0,
                    rate * 100.0
                ));
            }
        }
        None
    }
}

impl ErrorPolicy {
    fn with_mode(mode: Mode) -> Self {
        ErrorPolicy {
            mode,
            budget: Budget::default(),
            redeliver: None,
            stats: Arc::new(Stats::default()),
        }
    }

    /// Pass the first error on and end the stream.
    #[must_use]
    pub fn fail_fast() -> Self {
        Self::with_mode(Mode::FailFast)
    }

    /// Drop error items and count them in the [`Report`].
    #[must_use]
    pub fn skip() -> Self {
        Self::with_mode(Mode::Skip)
    }

    /// Send each error item to `sink` and go on; the sink is flushed when the stream ends.
    ///
    /// Each [`Error`] carries its kind, operation, position and cause, so the sink can record
    /// exactly which record failed and why. If the sink itself fails, that failure is yielded
    /// as an [`Io`](ErrorKind::Io) error and the stream ends.
    ///
    /// An error of a record read from a message broker carries its messages' acknowledgement
    /// ([`Error::take_ack`]): the stage flushes the sink after sending it and acknowledges the
    /// messages once the flush succeeded, so a dead letter is never acknowledged before it is
    /// stored.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::{Error, ErrorPolicy, Pipeline};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let (tx, mut rx) = futures_channel::mpsc::channel::<Error>(16);
    /// let good = Pipeline::from_iter(["1", "x", "3"])
    ///     .try_map(|s| s.parse::<u32>())
    ///     .on_error(ErrorPolicy::dead_letter(tx))
    ///     .collect::<Vec<_>>()
    ///     .await?;
    /// assert_eq!(good, [1, 3]);
    /// let dead = rx.try_recv().unwrap();
    /// assert_eq!(dead.operation(), "try_map");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn dead_letter<Si>(sink: Si) -> Self
    where
        Si: Sink<Error> + Send + 'static,
        Si::Error: Into<BoxError>,
    {
        let sink: DeadLetterSink = Box::pin(sink.sink_map_err(Into::into));
        Self::with_mode(Mode::DeadLetter(Arc::new(Mutex::new(sink))))
    }

    /// Fail once more than `max` errors have been seen.
    #[must_use]
    pub fn max_errors(mut self, max: u64) -> Self {
        self.budget.max_errors = Some(max);
        self
    }

    /// Fail once more than `rate` (a fraction: 0.01 is 1%) of the items have failed.
    ///
    /// The rate is checked from the `min_items`-th item on, so that one early error does not
    /// count as 100%, and always at the end of the stream.
    ///
    /// # Panics
    ///
    /// If `rate` is not a fraction from 0 to 1 (a NaN or a negative rate would make every
    /// check pass or fail whatever the stream holds).
    #[must_use]
    pub fn max_error_rate(mut self, rate: f64, min_items: u64) -> Self {
        assert!(
            (0.0..=1.0).contains(&rate),
            "max_error_rate: the rate is a fraction from 0 to 1, not {rate}"
        );
        self.budget.max_rate = Some((rate, min_items));
        self
    }

    /// Errors of records read from a message broker are first handed back to the broker to
    /// be delivered again after `delay` (a transient failure gets another chance), and the
    /// stream goes on; only on the last delivery the source allows (its `max_deliver`) does
    /// the policy's mode decide (dead-letter, skip or fail). Errors of other records are
    /// unaffected. Each redelivery is counted in [`Report::redelivered`] and as an error.
    #[must_use]
    pub fn redeliver(mut self, delay: Duration) -> Self {
        self.redeliver = Some(delay);
        self
    }

    /// A snapshot of the counts kept so far by every stage using this policy.
    #[must_use]
    pub fn report(&self) -> Report {
        self.stats.snapshot()
    }
}

impl fmt::Debug for ErrorPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::FailFast => "fail_fast",
            Mode::Skip => "skip",
            Mode::DeadLetter(_) => "dead_letter",
        };
        f.debug_struct("ErrorPolicy")
            .field("mode", &mode)
            .field("budget", &self.budget)
            .field("report", &self.report())
            .finish()
    }
}

/// The live counters behind a [`Report`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    items_in: AtomicU64,
    items_out: AtomicU64,
    skipped: AtomicU64,
    dead_lettered: AtomicU64,
    redelivered: AtomicU64,
    errors: Mutex<BTreeMap<ErrorKind, u64>>,
}

impl Stats {
    pub(crate) fn item_in(&self) -> u64 {
        self.items_in.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn item_out(&self) {
        self.items_out.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn redelivered(&self) {
        self.redelivered.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an error and returns the number of errors counted so far, of every kind.
    pub(crate) fn error(&self, kind: ErrorKind) -> u64 {
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        *errors.entry(kind).or_insert(0) += 1;
        errors.values().sum()
    }

    pub(crate) fn items_seen(&self) -> u64 {
        self.items_in.load(Ordering::Relaxed)
    }

    pub(crate) fn errors_total(&self) -> u64 {
        let errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        errors.values().sum()
    }

    fn snapshot(&self) -> Report {
        Report {
            items_in: self.items_in.load(Ordering::Relaxed),
            items_out: self.items_out.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            redelivered: self.redelivered.load(Ordering::Relaxed),
            errors: self
                .errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// What a run did: items in and out of the policy's stages, errors by kind, and how many
/// errors were skipped or dead-lettered. Taken with [`ErrorPolicy::report`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    items_in: u64,
    items_out: u64,
    skipped: u64,
    dead_lettered: u64,
    redelivered: u64,
    errors: BTreeMap<ErrorKind, u64>,
}

impl Report {
    /// Items (values and errors) that reached the policy's stages.
    #[must_use]
    pub fn items_in(&self) -> u64 {
        self.items_in
    }

    /// Values the policy's stages passed on.
    #[must_use]
    pub fn items_out(&self) -> u64 {
        self.items_out
    }

    /// Errors dropped by a [`skip`](ErrorPolicy::skip) policy.
    #[must_use]
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Errors whose broker messages were handed back to be delivered again (see
    /// [`ErrorPolicy::redeliver`]).
    #[must_use]
    pub fn redelivered(&self) -> u64 {
        self.redelivered
    }

    /// Errors sent to a dead-letter sink.
    #[must_use]
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered
    }

    /// Errors of `kind` seen.
    #[must_use]
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors.get(&kind).copied().unwrap_or(0)
    }

    /// Errors of every kind seen.
    #[must_use]
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Error counts by kind, in kind order; kinds never seen are absent.
    pub fn errors_by_kind(&self) -> impl Iterator<Item = (ErrorKind, u64)> + '_ {
        self.errors.iter().map(|(kind, n)| (*kind, *n))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in, {} out, {} errors",
            self.items_in,
            self.items_out,
            self.errors_total()
        )?;
        if !self.errors.is_empty() {
            f.write_str(" (")?;
            for (i, (kind, n)) in self.errors.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{kind}: {n}")?;
            }
            f.write_str(")")?;
        }
        write!(
            f,
            ", {} skipped, {} dead-lettered",
            self.skipped, self.dead_lettered
        )?;
        if self.redelivered > 0 {
            write!(f, ", {} redelivered", self.redelivered)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_budget_allows_exactly_max() {
        let budget = Budget {
            max_errors: Some(2),
            max_rate: None,
        };
        assert!(budget.exceeded(2, 10, false).is_none());
        assert!(budget.exceeded(3, 10, false).is_some());
    }

    #[test]
    fn rate_budget_waits_for_min_items_then_checks_at_end() {
        let budget = Budget {
            max_errors: None,
            max_rate: Some((0.1, 100)),
        };
        assert!(budget.exceeded(1, 1, false).is_none());
        assert!(budget.exceeded(1, 1, true).is_some());
        assert!(budget.exceeded(10, 100, false).is_none());
        assert!(budget.exceeded(11, 100, false).is_some());
    }

    #[test]
    fn report_display_lists_kinds() {
        let stats = Stats::default();
        stats.item_in();
        stats.item_in();
        stats.item_out();
        stats.error(ErrorKind::Decode);
        stats.skipped();
        assert_eq!(
            stats.snapshot().to_string(),
            "2 in, 1 out, 1 errors (decode: 1), 1 skipped, 0 dead-lettered"
        );
    }
}
