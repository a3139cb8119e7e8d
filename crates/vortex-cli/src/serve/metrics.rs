//! The service's metrics, served at `/metrics` in the `OpenMetrics` text format (which
//! Prometheus reads) through `prometheus-client`: counters, a gauge of running exports, and per
//! export a row counter and a histogram of durations.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The label of the per-export metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ExportLabels {
    pub(crate) export: String,
}

/// A histogram of export durations: 5 ms to about 45 minutes, doubling.
fn durations() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 20))
}

#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) requests: Counter,
    pub(crate) active_exports: Gauge,
    pub(crate) rows: Counter,
    pub(crate) bytes: Counter,
    pub(crate) refused: Counter,
    pub(crate) failed: Counter,
    pub(crate) cancelled: Counter,
    pub(crate) imported_rows: Counter,
    pub(crate) rejected_rows: Counter,
    pub(crate) failed_imports: Counter,
    /// Rows sent, by export, counted as each export ends.
    pub(crate) export_rows: Family<ExportLabels, Counter>,
    /// How long finished exports took, by export.
    pub(crate) export_seconds: Family<ExportLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Metrics {
            registry: Registry::default(),
            requests: Counter::default(),
            active_exports: Gauge::default(),
            rows: Counter::default(),
            bytes: Counter::default(),
            refused: Counter::default(),
            failed: Counter::default(),
            cancelled: Counter::default(),
            imported_rows: Counter::default(),
            rejected_rows: Counter::default(),
            failed_imports: Counter::default(),
            export_rows: Family::default(),
            export_seconds: Family::new_with_constructor(durations),
        };
        metrics.registered()
    }
}

impl Metrics {
    /// The metrics, registered under their names (a counter's name gets `_total`).
    fn registered(mut self) -> Self {
        let registry = &mut self.registry;
        registry.register(
            "vortex_requests",
            "HTTP requests received",
            self.requests.clone(),
        );
        registry.register(
            "vortex_active_exports",
            "Exports streaming now",
            self.active_exports.clone(),
        );
        registry.register(
            "vortex_rows_streamed",
            "Rows sent in exports",
            self.rows.clone(),
        );
        registry.register(
            "vortex_bytes_streamed",
            "Bytes sent in exports",
            self.bytes.clone(),
        );
        registry.register(
            "vortex_exports_refused",
            "Requests refused (bad request, auth, busy, limits)",
            self.refused.clone(),
        );
        registry.register(
            "vortex_exports_failed",
            "Exports aborted by an error",
            self.failed.clone(),
        );
        registry.register(
            "vortex_exports_cancelled",
            "Exports whose client went away or was cut",
            self.cancelled.clone(),
        );
        registry.register(
            "vortex_import_rows_accepted",
            "Rows of imports that passed their checks",
            self.imported_rows.clone(),
        );
        registry.register(
            "vortex_import_rows_rejected",
            "Rows of imports rejected by their checks",
            self.rejected_rows.clone(),
        );
        registry.register(
            "vortex_imports_failed",
            "Imports that committed nothing",
            self.failed_imports.clone(),
        );
        registry.register(
            "vortex_export_rows",
            "Rows sent, by export (counted as each export ends)",
            self.export_rows.clone(),
        );
        registry.register(
            "vortex_export_duration_seconds",
            "Time finished exports took, by export",
            self.export_seconds.clone(),
        );
        self
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_counters_a_gauge_and_per_export_histograms() {
        let metrics = Metrics::default();
        metrics.requests.inc_by(3);
        metrics.active_exports.inc();
        let orders = ExportLabels {
            export: "orders".to_owned(),
        };
        metrics.export_rows.get_or_create(&orders).inc_by(42);
        metrics.export_seconds.get_or_create(&orders).observe(0.02);
        let page = metrics.render();
        assert!(page.contains("\nvortex_requests_total 3\n"), "{page}");
        assert!(page.contains("\nvortex_active_exports 1\n"), "{page}");
        assert!(
            page.contains("vortex_export_rows_total{export=\"orders\"} 42"),
            "{page}"
        );
        assert!(
            page.contains("vortex_export_duration_seconds_count{export=\"orders\"} 1"),
            "{page}"
        );
        assert!(
            page.contains("vortex_export_duration_seconds_bucket{le=\"0.04\",export=\"orders\"} 1")
                || page.contains(
                    "vortex_export_duration_seconds_bucket{export=\"orders\",le=\"0.04\"} 1"
                ),
            "{page}"
        );
        assert!(page.ends_with("# EOF\n"), "{page}");
    }
}
