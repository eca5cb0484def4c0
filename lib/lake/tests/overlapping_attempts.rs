//! Two invocations of the same batch at once (the event source mapping can overlap them during a
//! rebalance): both write their Parquet files before either commits, each stamping its own
//! processing time. The loser's files must not replace the winner's committed ones, through the
//! SQL catalog on local files and through Glue + S3 on the AWS emulator.

use std::collections::BTreeMap;

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use chrono::{DateTime, Duration, Utc};
use common::{glue_settings, sql_settings};
use healthlake_core::{KafkaCoordinates, RawRecord};
use healthlake_lake::{CatalogSettings, DataFileSink, LakeError, Lakehouse, TableKind, rows};
use healthlake_testkit::AwsEmulator;
use iceberg::spec::DataFile;
use iceberg::table::Table;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Offsets 0..40 of partition t-0, over two days and two data types (four table partitions).
fn records(processing_time: DateTime<Utc>) -> Vec<RawRecord> {
    let day: DateTime<Utc> = "2025-11-17T10:00:00Z".parse().unwrap();
    (0..40)
        .map(|offset| {
            let start = day + Duration::days(offset % 2);
            RawRecord {
                device_id: "d".into(),
                user_id: format!("u{}", offset % 5),
                sample_id: format!("s-{offset}"),
                data_type: if offset % 4 < 2 { "heartRate".into() } else { "steps".into() },
                value: offset as f64,
                unit: "count".into(),
                start_date: start,
                end_date: start,
                created_at: day,
                payload_timestamp: day,
                processing_time,
                source_bundle: None,
                metadata: None,
                is_synced: true,
                app_version: "1".into(),
                ingestion_date: start.date_naive(),
                kafka: KafkaCoordinates { topic: "t".into(), partition: 0, offset },
            }
        })
        .collect()
}

/// One attempt's data files, named from the batch's coordinates as ingest names them.
async fn write_attempt(table: &Table, processing_time: DateTime<Utc>) -> Vec<DataFile> {
    let mut sink = DataFileSink::new(table, "raw-t-0-0").unwrap();
    sink.write(&rows::raw_batch(sink.arrow_schema(), &records(processing_time)).unwrap()).await.unwrap();
    sink.close().await.unwrap()
}

/// Each committed file as stored: its size and row count match its manifest entry, and its rows
/// carry the committing attempt's processing time.
async fn assert_intact(lake: &Lakehouse, committed: &[DataFile], processing_time: DateTime<Utc>) {
    let table = lake.table(TableKind::Raw).await.unwrap();
    let mut rows_read = 0;
    for file in committed {
        let input = table.file_io().new_input(file.file_path()).unwrap();
        let bytes = input.read().await.unwrap();
        assert_eq!(bytes.len() as u64, file.file_size_in_bytes(), "{}: size in the manifest", file.file_path());
        let mut rows_in_file = 0;
        for batch in ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap() {
            let batch = batch.unwrap();
            rows_in_file += batch.num_rows() as u64;
            let stamps = batch.column_by_name("processing_time").unwrap().as_primitive::<TimestampMicrosecondType>();
            assert!(
                stamps.iter().all(|t| t == Some(processing_time.timestamp_micros())),
                "{}: rows of another attempt",
                file.file_path()
            );
        }
        assert_eq!(rows_in_file, file.record_count(), "{}: record count in the manifest", file.file_path());
        rows_read += rows_in_file;
    }
    assert_eq!(rows_read, 40);
    assert_eq!(lake.row_count(TableKind::Raw).await.unwrap(), 40);
    let scanned: usize = lake.scan(TableKind::Raw, &["kafka_offset"]).await.unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(scanned, 40, "the table reads back whole");
}

async fn overlapping_attempts_leave_the_committed_files_intact(settings: &CatalogSettings) {
    let lake = Lakehouse::open(settings).await.unwrap();
    let table = lake.table(TableKind::Raw).await.unwrap();
    let consumed = BTreeMap::from([("t-0".to_string(), (0, 39))]);
    let (first_time, second_time) = (Utc::now(), Utc::now() + Duration::seconds(1));

    let first = write_attempt(&table, first_time).await;
    let second = write_attempt(&table, second_time).await;
    let mut paths: Vec<&str> = first.iter().chain(&second).map(DataFile::file_path).collect();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), first.len() + second.len(), "every attempt writes files of its own");

    lake.append(TableKind::Raw, first.clone(), &consumed).await.unwrap();
    let err = lake.append(TableKind::Raw, second, &consumed).await.unwrap_err();
    assert!(matches!(err, LakeError::ConcurrentWriter { .. }), "{err}");
    assert_intact(&lake, &first, first_time).await;
}

#[tokio::test]
async fn sql_catalog_overlapping_attempts_of_a_batch_leave_the_committed_files_intact() {
    let dir = tempfile::tempdir().unwrap();
    overlapping_attempts_leave_the_committed_files_intact(&sql_settings(dir.path())).await;
}

#[tokio::test]
async fn glue_catalog_overlapping_attempts_of_a_batch_leave_the_committed_files_intact() {
    let emulator = AwsEmulator::start();
    overlapping_attempts_leave_the_committed_files_intact(&glue_settings(&emulator)).await;
}

/// Whatever names a writer picks, S3 never replaces an object a manifest may reference: the
/// table's FileIO creates objects with `If-None-Match: *`.
#[tokio::test]
async fn glue_catalog_storage_refuses_to_overwrite_an_object() {
    let emulator = AwsEmulator::start();
    let lake = Lakehouse::open(&glue_settings(&emulator)).await.unwrap();
    let table = lake.table(TableKind::Raw).await.unwrap();
    let path = format!("{}/data/probe.parquet", table.metadata().location());
    let io = table.file_io();
    io.new_output(&path).unwrap().write("first".into()).await.unwrap();
    let err = io.new_output(&path).unwrap().write("second".into()).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let mut writer = io.new_output(&path).unwrap().writer().await.unwrap();
    writer.write("third".into()).await.unwrap();
    assert!(writer.close().await.is_err(), "a streamed write is conditional too");
    assert_eq!(&io.new_input(&path).unwrap().read().await.unwrap()[..], b"first");
}
