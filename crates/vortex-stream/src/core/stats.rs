//! Per-stage statistics: which stage of a pipeline the time goes to.

use core::fmt;
use core::time::Duration;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// What one observation point has seen: the items past it, and the time on either side.
#[derive(Debug, Default)]
pub(crate) struct Point {
    pub(crate) items: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// From the moment the point was asked for an item until it had one (or the end): the
    /// time the pipeline waited on everything upstream of the point.
    pub(crate) pulling_ns: AtomicU64,
    /// From the moment the point handed an item on until it was asked for the next: the time
    /// spent downstream of the point.
    pub(crate) holding_ns: AtomicU64,
}

impl Point {
    pub(crate) fn add(counter: &AtomicU64, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        counter.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Statistics of a pipeline's stages, gathered by the observation points that
/// [`Pipeline::observe`](crate::Pipeline::observe) puts between them: for each stage, the
/// items out of it, the error items among them, the time the pipeline waited on the stage
/// itself (*busy*), on the stages before it (*upstream*), and on those after it
/// (*downstream*). The stage with the most busy time is the bottleneck.
///
/// A handle is cheap to clone; every clone sees the same figures, also while the pipeline
/// runs. Each point costs two clock readings an item (some 50 ns): observe stages, not every
/// operator.
///
/// Busy time is wall time the pipeline's task spent waiting for the stage, net of its
/// upstream. A stage that works on other threads (a parallel stage, a source's decoding
/// threads, a sink's writer) is busy for as long as the pipeline waited for its results; work
/// it did ahead, while the pipeline was busy elsewhere, is not counted.
///
/// # Examples
///
/// ```
/// use vortex_stream::{Pipeline, Stats};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// let stats = Stats::new();
/// let kept = Pipeline::from_iter(0..1000u64)
///     .observe(&stats, "read")
///     .filter(|n| n % 10 == 0)
///     .map(|n| n * 2)
///     .observe(&stats, "transform")
///     .count()
///     .await?;
/// assert_eq!(kept, 100);
/// let stages = stats.stages();
/// assert_eq!((stages[0].name.as_str(), stages[0].items), ("read", 1000));
/// assert_eq!((stages[1].name.as_str(), stages[1].items), ("transform", 100));
/// println!("{stats}"); // a table, one line a stage, the consumer last
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Stats {
    points: Arc<Mutex<Vec<Named>>>,
}

/// A point and the name of the stages before it.
type Named = (String, Arc<Point>);

/// One stage's figures, from [`Stats::stages`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StageStats {
    /// The name given to [`observe`](crate::Pipeline::observe) after the stage.
    pub name: String,
    /// Items (values and errors) out of the stage.
    pub items: u64,
    /// Error items among them (including those from upstream, passed on).
    pub errors: u64,
    /// Time the pipeline waited on this stage itself.
    pub busy: Duration,
    /// Time the stage waited on the stages before it.
    pub upstream: Duration,
    /// Time the stages after it (and the consumer) took between its items.
    pub downstream: Duration,
}

impl Stats {
    /// An empty set of statistics, for the points of one pipeline.
    #[must_use]
    pub fn new() -> Self {
        Stats::default()
    }

    /// A new observation point, last in order.
    pub(crate) fn point(&self, name: String) -> Arc<Point> {
        let point = Arc::new(Point::default());
        self.points
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name, Arc::clone(&point)));
        point
    }

    /// Each stage's figures, in the order of the points (the order they were put in the
    /// pipeline, source first).
    #[must_use]
    pub fn stages(&self) -> Vec<StageStats> {
        let points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        let read = |counter: &AtomicU64| Duration::from_nanos(counter.load(Ordering::Relaxed));
        let mut before = Duration::ZERO;
        points
            .iter()
            .map(|(name, point)| {
                let pulling = read(&point.pulling_ns);
                let stage = StageStats {
                    name: name.clone(),
                    items: point.items.load(Ordering::Relaxed),
                    errors: point.errors.load(Ordering::Relaxed),
                    busy: pulling.saturating_sub(before),
                    upstream: before,
                    downstream: read(&point.holding_ns),
                };
                before = pulling;
                stage
            })
            .collect()
    }
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.stages()).finish()
    }
}

/// A table: one line a stage, and a last line for what consumed the last stage's items (a
/// sink, a terminal), whose busy time is the last stage's downstream time.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stages = self.stages();
        let total = stages.last().map_or(Duration::ZERO, |last| {
            last.upstream + last.busy + last.downstream
        });
        let share = |d: Duration| {
            if total.is_zero() {
                0.0
            } else {
                100.0 * d.as_secs_f64() / total.as_secs_f64()
            }
        };
        writeln!(
            f,
            "{:<16} {:>12} {:>10} {:>10} {:>6} {:>10} {:>10}",
            "stage", "items out", "errors", "busy", "busy%", "upstream", "downstream"
        )?;
        for stage in &stages {
            writeln!(
                f,
                "{:<16} {:>12} {:>10} {:>9.3}s {:>5.1}% {:>9.3}s {:>9.3}s",
                stage.name,
                stage.items,
                stage.errors,
                stage.busy.as_secs_f64(),
                share(stage.busy),
                stage.upstream.as_secs_f64(),
                stage.downstream.as_secs_f64()
            )?;
        }
        if let Some(last) = stages.last() {
            write!(
                f,
                "{:<16} {:>12} {:>10} {:>9.3}s {:>5.1}% {:>9.3}s {:>10}",
                "(consumer)",
                "",
                "",
                last.downstream.as_secs_f64(),
                share(last.downstream),
                (last.upstream + last.busy).as_secs_f64(),
                ""
            )?;
        }
        Ok(())
    }
}
