//! The service's counters, served at `/metrics` in Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) requests: AtomicU64,
    pub(crate) active_exports: AtomicU64,
    pub(crate) rows: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) duration_micros: AtomicU64,
    pub(crate) finished: AtomicU64,
    pub(crate) imported_rows: AtomicU64,
    pub(crate) rejected_rows: AtomicU64,
    pub(crate) failed_imports: AtomicU64,
}

impl Metrics {
    pub(crate) fn render(&self) -> String {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "vortex_requests_total",
            "counter",
            "HTTP requests received.",
            get(&self.requests).to_string(),
        );
        metric(
            "vortex_active_exports",
            "gauge",
            "Exports streaming now.",
            get(&self.active_exports).to_string(),
        );
        metric(
            "vortex_rows_streamed_total",
            "counter",
            "Rows sent in exports.",
            get(&self.rows).to_string(),
        );
        metric(
            "vortex_bytes_streamed_total",
            "counter",
            "Bytes sent in exports.",
            get(&self.bytes).to_string(),
        );
        metric(
            "vortex_exports_refused_total",
            "counter",
            "Exports refused (bad request, auth, busy).",
            get(&self.refused).to_string(),
        );
        metric(
            "vortex_exports_failed_total",
            "counter",
            "Exports aborted by an error.",
            get(&self.failed).to_string(),
        );
        metric(
            "vortex_exports_cancelled_total",
            "counter",
            "Exports whose client went away.",
            get(&self.cancelled).to_string(),
        );
        // Seconds with microsecond precision: far below 2^52 microseconds.
        #[allow(clippy::cast_precision_loss)]
        let seconds = get(&self.duration_micros) as f64 / 1e6;
        metric(
            "vortex_export_duration_seconds_sum",
            "counter",
            "Time spent streaming finished exports.",
            format!("{seconds:.6}"),
        );
        metric(
            "vortex_export_duration_seconds_count",
            "counter",
            "Finished exports.",
            get(&self.finished).to_string(),
        );
        metric(
            "vortex_import_rows_accepted_total",
            "counter",
            "Rows of imports that passed their checks.",
            get(&self.imported_rows).to_string(),
        );
        metric(
            "vortex_import_rows_rejected_total",
            "counter",
            "Rows of imports rejected by their checks.",
            get(&self.rejected_rows).to_string(),
        );
        metric(
            "vortex_imports_failed_total",
            "counter",
            "Imports that committed nothing.",
            get(&self.failed_imports).to_string(),
        );
        out
    }
}
