//! Prometheus text exposition of one scrape's readings, through metrics-exporter-prometheus's
//! recorder used locally (a fresh one per scrape: a partition or table that went away is not
//! reported with its last value).

use metrics_exporter_prometheus::PrometheusBuilder;

/// One reading: a gauge value with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Gauge {
    pub fn new(name: &'static str, value: f64) -> Self {
        Self { name, labels: Vec::new(), value }
    }

    pub fn label(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.labels.push((name, value.into()));
        self
    }
}

/// The text of `gauges`, plus the running `exporter_source_errors_total{source}` counters.
pub fn render(gauges: &[Gauge], source_errors: &[(&str, u64)]) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        for gauge in gauges {
            let labels: Vec<metrics::Label> =
                gauge.labels.iter().map(|(k, v)| metrics::Label::new(*k, v.clone())).collect();
            metrics::gauge!(gauge.name, labels).set(gauge.value);
        }
        for (source, errors) in source_errors {
            metrics::counter!("exporter_source_errors_total", "source" => source.to_string()).absolute(*errors);
        }
    });
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_and_counters_render_as_prometheus_text() {
        let text = render(
            &[
                Gauge::new("kafka_consumer_lag", 42.0).label("partition", "3"),
                Gauge::new("open_windows", 7.0).label("window_type", "daily"),
            ],
            &[("kafka", 2)],
        );
        assert!(text.contains("kafka_consumer_lag{partition=\"3\"} 42"), "{text}");
        assert!(text.contains("open_windows{window_type=\"daily\"} 7"), "{text}");
        assert!(text.contains("exporter_source_errors_total{source=\"kafka\"} 2"), "{text}");
    }
}
