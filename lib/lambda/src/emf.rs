//! Metrics of a Lambda invocation as CloudWatch Embedded Metric Format on stdout.
//!
//! Nothing scrapes a Lambda process, so the `metrics` facade records into
//! metrics_cloudwatch_embedded's collector and each invocation ends with one flush: one JSON
//! document per label set, which CloudWatch Logs turns into metrics of the namespace
//! `HEALTHLAKE_METRICS_NAMESPACE` with the function's name as a dimension. Labels are dimensions,
//! so every label the pipeline sets is bounded (`data_type` through `core::metric_data_type`).

use std::io::Write;

use metrics_cloudwatch_embedded::{Builder, Collector};

/// The recorder of one function process, flushed after every invocation.
pub struct EmfMetrics {
    collector: &'static Collector,
}

impl EmfMetrics {
    /// Installs the collector as the process's metrics recorder (once per process).
    pub fn install(namespace: &str, function_name: &str) -> Result<Self, String> {
        let collector = Builder::new()
            .cloudwatch_namespace(namespace.to_string())
            .with_dimension("function", function_name.to_string())
            .init()
            .map_err(|e| format!("installing the EMF metrics recorder: {e}"))?;
        Ok(Self { collector })
    }

    /// Writes what the invocation recorded, with its request id as a property (searchable in
    /// Logs Insights, not a dimension). Failing to write a metric never fails the invocation.
    pub fn flush(&self, request_id: &str) {
        let stdout = std::io::stdout();
        self.flush_to(request_id, &mut stdout.lock());
    }

    /// As [`EmfMetrics::flush`], to any writer (the benchmark's).
    pub fn flush_to(&self, request_id: &str, out: &mut impl Write) {
        self.collector.set_property("requestId", request_id.to_string());
        if let Err(e) = self.collector.flush(&mut *out).and_then(|()| out.flush()) {
            eprintln!("could not write the invocation's metrics: {e}");
        }
    }
}
