//! Every metric healthlake emits, with the spec's names, in one place. Emitted per batch, not
//! per record; labels are bounded (data types, error types, window kinds, table names).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use healthlake_core::labels::metric_data_type;
use healthlake_core::{ErrorType, WindowKind};

pub const VALID_RECORDS: &str = "valid_records";
pub const INVALID_RECORDS: &str = "invalid_records";
pub const VALIDATION_ERRORS_TOTAL: &str = "validation_errors_total";
pub const DESERIALIZATION_ERRORS: &str = "deserialization_errors";
pub const PROCESSING_LATENCY: &str = "processing_latency";
pub const WINDOWS_PROCESSED: &str = "windows_processed";
pub const RECORDS_AGGREGATED: &str = "records_aggregated";
pub const WINDOW_LATENCY_MS: &str = "window_latency_ms";
pub const LATE_RECORDS: &str = "late_records";
pub const ICEBERG_WRITES_TOTAL: &str = "iceberg_writes_total";
pub const ICEBERG_COMMIT_DURATION: &str = "iceberg_commit_duration";
pub const ICEBERG_FILES_WRITTEN: &str = "iceberg_files_written";
pub const ICEBERG_BYTES_WRITTEN: &str = "iceberg_bytes_written";
pub const ICEBERG_COMMIT_FAILURES: &str = "iceberg_commit_failures";
pub const ICEBERG_COMMIT_CONFLICTS_RETRIED: &str = "iceberg_commit_conflicts_retried";
pub const ICEBERG_WRITE_DURATION: &str = "iceberg_write_duration";
pub const TRANSFORMATION_DURATION: &str = "transformation_duration";
pub const AGGREGATION_ERRORS: &str = "aggregation_errors";
/// Unlabelled per-batch totals, so an alarm needs no metric math over label values.
pub const INGEST_RECORDS: &str = "ingest_records";
pub const INGEST_RAW_ROWS: &str = "ingest_raw_rows";
pub const INGEST_ERROR_ROWS: &str = "ingest_error_rows";
/// Now − the newest valid event time of the batch (how far behind the devices the data is).
pub const EVENT_TIME_LAG_SECONDS: &str = "event_time_lag_seconds";
/// Now − the newest Kafka record timestamp of the batch (replaces kafka_to_flink_latency).
pub const RECORD_TIMESTAMP_LAG_SECONDS: &str = "record_timestamp_lag_seconds";
/// Now − a window kind's watermark, at each finalize run.
pub const FINALIZE_LAG_SECONDS: &str = "finalize_lag_seconds";
/// Maintenance (the maintain function): data files compacted, snapshots expired, orphan files
/// removed, and runs cut short by their deadline (the next run continues).
pub const ICEBERG_FILES_COMPACTED: &str = "iceberg_files_compacted";
pub const ICEBERG_SNAPSHOTS_EXPIRED: &str = "iceberg_snapshots_expired";
pub const ICEBERG_ORPHAN_FILES_REMOVED: &str = "iceberg_orphan_files_removed";
pub const MAINTENANCE_INCOMPLETE: &str = "maintenance_incomplete";

pub(crate) fn record_validation(valid_by_type: &BTreeMap<String, u64>, errors: &BTreeMap<(String, ErrorType), u64>) {
    // Device-chosen data types are bounded before they become labels (CloudWatch dimensions).
    let mut valid: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (data_type, n) in valid_by_type {
        *valid.entry(metric_data_type(data_type)).or_default() += n;
    }
    for (data_type, n) in valid {
        metrics::counter!(VALID_RECORDS, "data_type" => data_type).increment(n);
    }
    let mut bounded: BTreeMap<(&'static str, ErrorType), u64> = BTreeMap::new();
    for ((data_type, error_type), n) in errors {
        *bounded.entry((metric_data_type(data_type), *error_type)).or_default() += n;
    }
    for ((data_type, error_type), n) in &bounded {
        match error_type {
            ErrorType::Deserialization | ErrorType::UnknownSchema | ErrorType::IncompatibleSchema => {
                metrics::counter!(DESERIALIZATION_ERRORS).increment(*n)
            }
            ErrorType::LateRecord => {}
            _ => {
                metrics::counter!(INVALID_RECORDS, "data_type" => *data_type, "error_type" => error_type.as_str())
                    .increment(*n);
                metrics::counter!(VALIDATION_ERRORS_TOTAL, "error_type" => error_type.as_str()).increment(*n);
            }
        }
    }
}

pub(crate) fn record_late(kind: WindowKind, n: u64) {
    metrics::counter!(LATE_RECORDS, "window_type" => kind.as_str()).increment(n);
}

pub(crate) fn record_aggregation_errors(kind: WindowKind, n: u64) {
    metrics::counter!(AGGREGATION_ERRORS, "window_type" => kind.as_str(), "error_type" => "non_finite").increment(n);
}

/// How long a stage of ingest took: `decode_validate`, `partials` (pre-combining the batch's
/// window partials) or `merge_partials`; file writes are `iceberg_write_duration`.
pub(crate) fn record_stage(operation: &'static str, started: Instant) {
    metrics::histogram!(TRANSFORMATION_DURATION, "operation" => operation).record(millis_since(started));
}

pub(crate) fn record_file_write(table: &str, started: Instant) {
    metrics::histogram!(ICEBERG_WRITE_DURATION, "table_name" => table.to_string()).record(millis_since(started));
}

/// What one ingest invocation did, and how far behind the devices and the broker it is.
pub(crate) fn record_batch(
    report: &crate::ingest::IngestReport,
    valid_by_type: &BTreeMap<String, u64>,
    newest_event: Option<DateTime<Utc>>,
    newest_record: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    started: Instant,
) {
    metrics::counter!(INGEST_RECORDS).increment(report.records as u64);
    metrics::counter!(INGEST_RAW_ROWS).increment(report.raw_rows_written);
    metrics::counter!(INGEST_ERROR_ROWS).increment(report.error_rows_written);
    let lag = |t: DateTime<Utc>| (now - t).num_milliseconds() as f64 / 1e3;
    // Lags are recorded as one-value histograms, not gauges: a gauge keeps its last value, and
    // the EMF flush of every later invocation would report it again as if measured then.
    if let Some(t) = newest_event {
        metrics::histogram!(EVENT_TIME_LAG_SECONDS).record(lag(t));
    }
    if let Some(t) = newest_record {
        metrics::histogram!(RECORD_TIMESTAMP_LAG_SECONDS).record(lag(t));
    }
    let millis = millis_since(started);
    let valid_types: BTreeSet<&'static str> = valid_by_type.keys().map(|t| metric_data_type(t)).collect();
    for data_type in valid_types {
        metrics::histogram!(PROCESSING_LATENCY, "data_type" => data_type).record(millis);
    }
}

pub(crate) fn record_finalize_lag(kind: WindowKind, watermark: DateTime<Utc>, now: DateTime<Utc>) {
    metrics::histogram!(FINALIZE_LAG_SECONDS, "window_type" => kind.as_str())
        .record((now - watermark).num_milliseconds() as f64 / 1e3);
}

fn millis_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}

/// What one maintenance run did to `table` (nothing is counted on a dry run).
pub(crate) fn record_maintenance(table: &str, report: &crate::maintain::MaintainReport) {
    if report.dry_run {
        return;
    }
    let label = || ("table_name", table.to_string());
    if let Some(c) = &report.compaction {
        metrics::counter!(ICEBERG_FILES_COMPACTED, &[label()]).increment(c.files_rewritten as u64);
        if c.conflicts_retried > 0 {
            metrics::counter!(ICEBERG_COMMIT_CONFLICTS_RETRIED, &[label()]).increment(c.conflicts_retried.into());
        }
    }
    if let Some(e) = &report.expiry {
        metrics::counter!(ICEBERG_SNAPSHOTS_EXPIRED, &[label()]).increment(e.snapshots_expired.len() as u64);
    }
    if let Some(o) = &report.orphans {
        metrics::counter!(ICEBERG_ORPHAN_FILES_REMOVED, &[label()]).increment(o.orphans.len() as u64);
    }
    metrics::counter!(MAINTENANCE_INCOMPLETE, &[label()]).increment(u64::from(!report.complete));
}

pub(crate) fn record_commit(table: &str, files: usize, bytes: u64, conflicts_retried: u32, millis: f64) {
    if conflicts_retried > 0 {
        metrics::counter!(ICEBERG_COMMIT_CONFLICTS_RETRIED, "table_name" => table.to_string())
            .increment(u64::from(conflicts_retried));
    }
    metrics::counter!(ICEBERG_WRITES_TOTAL, "table_name" => table.to_string()).increment(1);
    metrics::counter!(ICEBERG_FILES_WRITTEN, "table_name" => table.to_string()).increment(files as u64);
    metrics::counter!(ICEBERG_BYTES_WRITTEN, "table_name" => table.to_string()).increment(bytes);
    metrics::histogram!(ICEBERG_COMMIT_DURATION, "table_name" => table.to_string()).record(millis);
}

pub(crate) fn record_commit_failure(table: &str, error_type: &'static str) {
    metrics::counter!(ICEBERG_COMMIT_FAILURES, "table_name" => table.to_string(), "error_type" => error_type)
        .increment(1);
}

pub const SCHEMA_EVOLUTION_EVENTS: &str = "schema_evolution_events";

pub(crate) fn schema_seen(schema_id: u32) {
    metrics::counter!(SCHEMA_EVOLUTION_EVENTS, "schema_version" => schema_id.to_string()).increment(1);
}

/// Registers at zero the counters that move only when something goes wrong (commit failures,
/// conflicts, late or refused samples), for every label value known up front. A long-running
/// process (`healthlake local`) then serves them from its first scrape: `increase()` sees the
/// first failure, and an alert rule never names a series that is not there yet. (EMF omits
/// counters that did not move, so the Lambda functions print nothing more for it.)
pub fn register_failure_counters(tables: &healthlake_lake::TableNames) {
    for table in [&tables.raw, &tables.errors, &tables.daily, &tables.weekly, &tables.monthly] {
        for error_type in ["retryable", "permanent"] {
            metrics::counter!(ICEBERG_COMMIT_FAILURES, "table_name" => table.clone(), "error_type" => error_type)
                .increment(0);
        }
        metrics::counter!(ICEBERG_COMMIT_CONFLICTS_RETRIED, "table_name" => table.clone()).increment(0);
    }
    for kind in WindowKind::ALL {
        metrics::counter!(LATE_RECORDS, "window_type" => kind.as_str()).increment(0);
        metrics::counter!(AGGREGATION_ERRORS, "window_type" => kind.as_str(), "error_type" => "non_finite")
            .increment(0);
    }
    metrics::counter!(DESERIALIZATION_ERRORS).increment(0);
    metrics::counter!("dynamodb_conflicts_retried").increment(0);
}
