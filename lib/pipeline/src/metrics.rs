//! Every metric healthlake emits, with the spec's names, in one place. Emitted per batch, not
//! per record; labels are bounded (data types, error types, window kinds, table names).

use std::collections::BTreeMap;

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

pub(crate) fn record_validation(valid_by_type: &BTreeMap<String, u64>, errors: &BTreeMap<(String, ErrorType), u64>) {
    for (data_type, n) in valid_by_type {
        metrics::counter!(VALID_RECORDS, "data_type" => data_type.clone()).increment(*n);
    }
    for ((data_type, error_type), n) in errors {
        match error_type {
            ErrorType::Deserialization | ErrorType::UnknownSchema | ErrorType::IncompatibleSchema => {
                metrics::counter!(DESERIALIZATION_ERRORS).increment(*n)
            }
            ErrorType::LateRecord => {}
            _ => {
                metrics::counter!(INVALID_RECORDS, "data_type" => data_type.clone(), "error_type" => error_type.as_str())
                    .increment(*n);
                metrics::counter!(VALIDATION_ERRORS_TOTAL, "error_type" => error_type.as_str()).increment(*n);
            }
        }
    }
}

pub(crate) fn record_late(kind: WindowKind, n: u64) {
    metrics::counter!(LATE_RECORDS, "window_type" => kind.as_str()).increment(n);
}

pub(crate) fn record_commit(table: &str, files: usize, bytes: u64, millis: f64) {
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
