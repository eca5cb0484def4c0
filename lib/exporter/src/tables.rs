//! Each table's health from its snapshot summaries, and the errors table's last hour.

use std::collections::BTreeMap;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use chrono::{DateTime, Duration, Utc};
use futures::TryStreamExt;
use healthlake_lake::{Lakehouse, TableKind};
use iceberg::expr::Reference;
use iceberg::spec::Datum;

use crate::Gauge;

/// Per table: the current snapshot's age, its totals (records, data files, delete files), the
/// data files added by snapshots of the last hour and the average data file size.
pub(crate) async fn read(lake: &Lakehouse, now: DateTime<Utc>) -> Result<Vec<Gauge>, String> {
    let mut gauges = Vec::new();
    for kind in TableKind::ALL {
        let name = lake.table_name(kind).to_string();
        // Never created here: the exporter may run with read-only permissions, before ingest's
        // first commit created the tables.
        let Some(table) = lake.existing_table(kind).await.map_err(|e| format!("loading {name}: {e}"))? else {
            continue;
        };
        let metadata = table.metadata();
        let gauge = |metric, value| Gauge::new(metric, value).label("table_name", name.clone());
        let Some(current) = metadata.current_snapshot() else {
            // No snapshot yet: nothing written; no age to report.
            for metric in ["iceberg_table_records", "iceberg_table_data_files", "iceberg_table_delete_files"] {
                gauges.push(gauge(metric, 0.0));
            }
            gauges.push(gauge("iceberg_files_written_last_hour", 0.0));
            continue;
        };
        let summary = &current.summary().additional_properties;
        let total = |key: &str| summary.get(key).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let age = (now.timestamp_millis() - current.timestamp_ms()) as f64 / 1e3;
        gauges.push(gauge("iceberg_snapshot_age_seconds", age.max(0.0)));
        gauges.push(gauge("iceberg_table_records", total("total-records")));
        let files = total("total-data-files");
        gauges.push(gauge("iceberg_table_data_files", files));
        gauges.push(gauge("iceberg_table_delete_files", total("total-delete-files")));
        if files > 0.0 {
            gauges.push(gauge("iceberg_average_file_size_bytes", total("total-files-size") / files));
        }
        let hour_ago = (now - Duration::hours(1)).timestamp_millis();
        let written: f64 = metadata
            .snapshots()
            .filter(|s| s.timestamp_ms() >= hour_ago)
            .filter_map(|s| s.summary().additional_properties.get("added-data-files"))
            .filter_map(|v| v.parse::<f64>().ok())
            .sum();
        gauges.push(gauge("iceberg_files_written_last_hour", written));
    }
    Ok(gauges)
}

/// `error_rows_last_hour{error_type}`: rows of the errors table whose `error_timestamp` is within
/// the last hour (the filter prunes the days(error_timestamp) partitions to today and yesterday).
pub(crate) async fn error_rows_last_hour(lake: &Lakehouse, now: DateTime<Utc>) -> Result<Vec<Gauge>, String> {
    let name = lake.table_name(TableKind::Errors);
    let Some(table) = lake.existing_table(TableKind::Errors).await.map_err(|e| format!("loading {name}: {e}"))? else {
        return Ok(Vec::new());
    };
    let since = (now - Duration::hours(1)).timestamp_micros();
    let filter = Reference::new("error_timestamp").greater_than_or_equal_to(Datum::timestamp_micros(since));
    let batches: Vec<_> = Lakehouse::scan_table(&table, &["error_type", "error_timestamp"], Some(filter))
        .await
        .map_err(|e| format!("scanning {name}: {e}"))?
        .try_collect()
        .await
        .map_err(|e| format!("scanning {name}: {e}"))?;
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    for batch in &batches {
        let types = batch.column(0).as_string::<i32>();
        let times = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            if times.is_valid(i) && times.value(i) >= since && types.is_valid(i) {
                *by_type.entry(types.value(i).to_string()).or_default() += 1;
            }
        }
    }
    Ok(by_type
        .into_iter()
        .map(|(error_type, n)| Gauge::new("error_rows_last_hour", n as f64).label("error_type", error_type))
        .collect())
}
