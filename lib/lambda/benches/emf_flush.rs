//! What EMF costs an invocation: recording a realistic ingest invocation's metrics (the 70 series
//! a 1,000-record batch over 4 data types and 8 error types sets) and flushing them as EMF
//! documents, timed over many invocations. Prints microseconds per invocation and bytes written.
//!
//!     cargo bench -p healthlake-lambda --bench emf_flush

use std::io::Write;
use std::time::Instant;

use healthlake_lambda::EmfMetrics;

const DATA_TYPES: [&str; 4] = ["heartRate", "steps", "bloodPressureSystolic", "bloodPressureDiastolic"];
const ERROR_TYPES: [&str; 8] = [
    "missing_field",
    "negative_value",
    "out_of_range",
    "invalid_timestamp",
    "end_before_start",
    "future_timestamp",
    "unknown_schema",
    "late_record",
];

/// Counts bytes and throws them away (stdout in Lambda is a pipe to the log agent).
struct CountingSink(usize);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn record_invocation(i: u64) {
    metrics::counter!("ingest_records").increment(1000);
    metrics::counter!("ingest_raw_rows").increment(4400);
    metrics::counter!("ingest_error_rows").increment(120);
    for data_type in DATA_TYPES {
        metrics::counter!("valid_records", "data_type" => data_type).increment(1100 + i % 7);
        metrics::histogram!("processing_latency", "data_type" => data_type).record(850.0);
        for error_type in ERROR_TYPES {
            metrics::counter!("invalid_records", "data_type" => data_type, "error_type" => error_type).increment(3);
        }
    }
    for error_type in ERROR_TYPES {
        metrics::counter!("validation_errors_total", "error_type" => error_type).increment(12);
    }
    for operation in ["decode_validate", "merge_partials", "write_files"] {
        metrics::histogram!("transformation_duration", "operation" => operation).record(120.0);
    }
    for table in ["health_data_raw", "health_data_errors"] {
        metrics::counter!("iceberg_writes_total", "table_name" => table).increment(1);
        metrics::counter!("iceberg_files_written", "table_name" => table).increment(40);
        metrics::counter!("iceberg_bytes_written", "table_name" => table).increment(400_000);
        metrics::histogram!("iceberg_write_duration", "table_name" => table).record(90.0);
        metrics::histogram!("iceberg_commit_duration", "table_name" => table).record(140.0);
    }
    for operation in ["BatchGetItem", "TransactWriteItems", "UpdateItem", "Query"] {
        metrics::counter!("dynamodb_requests", "operation" => operation).increment(25);
    }
    metrics::histogram!("event_time_lag_seconds").record(3.5);
    metrics::histogram!("record_timestamp_lag_seconds").record(1.2);
}

fn main() {
    let emf = EmfMetrics::install("healthlake", "healthlake-ingest").expect("recorder");
    let invocations = 2_000u64;
    let mut sink = CountingSink(0);
    // Warm up: registration of every series happens on first use, once per container.
    record_invocation(0);
    emf.flush_to("warm-up", &mut sink);
    sink.0 = 0;
    let (mut recording, mut flushing) = (0f64, 0f64);
    for i in 0..invocations {
        let started = Instant::now();
        record_invocation(i);
        let recorded = Instant::now();
        emf.flush_to(&format!("request-{i}"), &mut sink);
        recording += (recorded - started).as_secs_f64();
        flushing += recorded.elapsed().as_secs_f64();
    }
    let per = |seconds: f64| seconds / invocations as f64 * 1e6;
    println!(
        "EMF per ingest invocation ({invocations} invocations, 70 series): recording {:.1} µs, flush {:.1} µs, \
         {} bytes of EMF",
        per(recording),
        per(flushing),
        sink.0 / invocations as usize
    );
}
