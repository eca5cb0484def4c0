//! Rows to Arrow record batches, column by column in the table's own (id-bearing) Arrow schema.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, MapArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, SchemaRef};
use chrono::{DateTime, NaiveDate, Utc};
use healthlake_core::{AggregateRow, ErrorRecord, RawRecord, WindowKind};

use crate::LakeError;

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");

fn days(d: NaiveDate) -> i32 {
    (d - EPOCH).num_days() as i32
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn doubles(values: impl Iterator<Item = f64>) -> ArrayRef {
    let mut b = Float64Builder::new();
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

fn longs(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    let mut b = Int64Builder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn ints(values: impl Iterator<Item = Option<i32>>) -> ArrayRef {
    let mut b = Int32Builder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn dates(values: impl Iterator<Item = NaiveDate>) -> ArrayRef {
    let mut b = Date32Builder::new();
    for v in values {
        b.append_value(days(v));
    }
    Arc::new(b.finish())
}

fn bools(values: impl Iterator<Item = bool>) -> ArrayRef {
    let mut b = BooleanBuilder::new();
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

fn timestamps(field: &Field, values: impl Iterator<Item = DateTime<Utc>>) -> ArrayRef {
    let array = TimestampMicrosecondArray::from_iter_values(values.map(|t| t.timestamp_micros()));
    match field.data_type() {
        DataType::Timestamp(_, Some(tz)) => Arc::new(array.with_timezone(tz.clone())),
        _ => Arc::new(array),
    }
}

fn unknown(name: &str) -> LakeError {
    LakeError::Schema(format!("table column `{name}` has no source in healthlake rows"))
}

/// Builds `metadata: map<string, string>` with the entry/key/value fields the schema names.
fn string_map<'a>(
    field: &Field,
    values: impl Iterator<Item = Option<&'a std::collections::BTreeMap<String, String>>>,
) -> Result<ArrayRef, LakeError> {
    let DataType::Map(entries, sorted) = field.data_type() else {
        return Err(LakeError::Schema(format!("`{}` is not a map", field.name())));
    };
    let DataType::Struct(entry_fields) = entries.data_type() else {
        return Err(LakeError::Schema("map entries are not a struct".into()));
    };
    let (mut keys, mut vals, mut offsets, mut validity) = (vec![], vec![], vec![0i32], vec![]);
    for v in values {
        if let Some(map) = v {
            for (k, val) in map {
                keys.push(k.as_str());
                vals.push(val.as_str());
            }
        }
        validity.push(v.is_some());
        offsets.push(keys.len() as i32);
    }
    let entries_array = StructArray::try_new(
        entry_fields.clone(),
        vec![Arc::new(StringArray::from(keys)) as ArrayRef, Arc::new(StringArray::from(vals)) as ArrayRef],
        None,
    )?;
    let map = MapArray::try_new(
        entries.clone(),
        OffsetBuffer::new(offsets.into()),
        entries_array,
        Some(validity.into()),
        *sorted,
    )?;
    Ok(Arc::new(map))
}

pub fn raw_batch(schema: &SchemaRef, rows: &[RawRecord]) -> Result<RecordBatch, LakeError> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let r = rows.iter();
        let column = match field.name().as_str() {
            "device_id" => strings(r.map(|x| Some(x.device_id.as_str()))),
            "user_id" => strings(r.map(|x| Some(x.user_id.as_str()))),
            "sample_id" => strings(r.map(|x| Some(x.sample_id.as_str()))),
            "data_type" => strings(r.map(|x| Some(x.data_type.as_str()))),
            "value" => doubles(r.map(|x| x.value)),
            "unit" => strings(r.map(|x| Some(x.unit.as_str()))),
            "start_date" => timestamps(field, r.map(|x| x.start_date)),
            "end_date" => timestamps(field, r.map(|x| x.end_date)),
            "created_at" => timestamps(field, r.map(|x| x.created_at)),
            "payload_timestamp" => timestamps(field, r.map(|x| x.payload_timestamp)),
            "processing_time" => timestamps(field, r.map(|x| x.processing_time)),
            "source_bundle" => strings(r.map(|x| x.source_bundle.as_deref())),
            "metadata" => string_map(field, r.map(|x| x.metadata.as_ref()))?,
            "is_synced" => bools(r.map(|x| x.is_synced)),
            "app_version" => strings(r.map(|x| Some(x.app_version.as_str()))),
            "ingestion_date" => dates(r.map(|x| x.ingestion_date)),
            "kafka_topic" => strings(r.map(|x| Some(x.kafka.topic.as_str()))),
            "kafka_partition" => ints(r.map(|x| Some(x.kafka.partition))),
            "kafka_offset" => longs(r.map(|x| Some(x.kafka.offset))),
            other => return Err(unknown(other)),
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

pub fn error_batch(schema: &SchemaRef, rows: &[ErrorRecord]) -> Result<RecordBatch, LakeError> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let r = rows.iter();
        let column = match field.name().as_str() {
            "raw_payload" => strings(r.map(|x| Some(x.raw_payload.as_str()))),
            "error_type" => strings(r.map(|x| Some(x.error_type.as_str()))),
            "error_message" => strings(r.map(|x| Some(x.error_message.as_str()))),
            "error_timestamp" => timestamps(field, r.map(|x| x.error_timestamp)),
            "user_id" => strings(r.map(|x| x.user_id.as_deref())),
            "data_type" => strings(r.map(|x| x.data_type.as_deref())),
            "sample_id" => strings(r.map(|x| x.sample_id.as_deref())),
            "processing_time" => timestamps(field, r.map(|x| x.processing_time)),
            "kafka_offset" => longs(r.map(|x| Some(x.kafka.offset))),
            "kafka_partition" => ints(r.map(|x| Some(x.kafka.partition))),
            "kafka_topic" => strings(r.map(|x| Some(x.kafka.topic.as_str()))),
            "error_date" => dates(r.map(|x| x.error_date())),
            other => return Err(unknown(other)),
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

pub fn aggregate_batch(schema: &SchemaRef, kind: WindowKind, rows: &[AggregateRow]) -> Result<RecordBatch, LakeError> {
    if let Some(bad) = rows.iter().find(|r| r.window.kind != kind) {
        return Err(LakeError::Schema(format!("{} row in the {kind} table", bad.window.kind)));
    }
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let r = rows.iter();
        let column = match field.name().as_str() {
            "user_id" => strings(r.map(|x| Some(x.user_id.as_str()))),
            "data_type" => strings(r.map(|x| Some(x.data_type.as_str()))),
            "aggregation_date" => dates(r.map(|x| x.window.start_date)),
            "year" => ints(r.map(|x| {
                Some(match kind {
                    WindowKind::Weekly => x.window.iso_year_week().0,
                    _ => x.window.year_month().0,
                })
            })),
            "week_of_year" => ints(r.map(|x| Some(x.window.iso_year_week().1 as i32))),
            "month" => ints(r.map(|x| Some(x.window.year_month().1 as i32))),
            "week_start_date" | "month_start_date" => dates(r.map(|x| x.window.start_date)),
            "week_end_date" | "month_end_date" => dates(r.map(|x| x.window.last_date())),
            "window_start" => timestamps(field, r.map(|x| x.window.start())),
            "window_end" => timestamps(field, r.map(|x| x.window.end())),
            "min_value" => doubles(r.map(|x| x.stats.min)),
            "max_value" => doubles(r.map(|x| x.stats.max)),
            "avg_value" => doubles(r.map(|x| x.stats.avg)),
            "sum_value" => doubles(r.map(|x| x.stats.sum)),
            "count" => longs(r.map(|x| Some(x.stats.count))),
            "stddev_value" => doubles(r.map(|x| x.stats.stddev)),
            "first_value" => doubles(r.map(|x| x.stats.first)),
            "last_value" => doubles(r.map(|x| x.stats.last)),
            "daily_avg_of_avg" => doubles(r.map(|x| x.stats.daily_avg_of_avg)),
            "record_count" => longs(r.map(|x| Some(x.stats.record_count))),
            "updated_at" => timestamps(field, r.map(|x| x.updated_at)),
            other => return Err(unknown(other)),
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
