//! Other engines commit to raw and errors too (Athena OPTIMIZE, a Glue optimizer, a GDPR delete):
//! their snapshots carry no offset map, and the map healthlake committed must still be found
//! in the ancestry, so a redelivered batch is skipped instead of appended twice.

use std::collections::BTreeMap;

mod common;

use chrono::{DateTime, Utc};
use common::{glue_settings, sql_settings};
use healthlake_core::{KafkaCoordinates, RawRecord};
use healthlake_lake::{CatalogSettings, DataFileSink, LakeError, Lakehouse, OFFSETS_PROPERTY, TableKind, rows};
use iceberg::transaction::{ApplyTransactionAction, Transaction};

fn row(partition: i32, offset: i64) -> RawRecord {
    let ts: DateTime<Utc> = "2025-11-17T10:00:00Z".parse().unwrap();
    RawRecord {
        device_id: "d".into(),
        user_id: "u1".into(),
        sample_id: format!("s-{offset}"),
        data_type: "heartRate".into(),
        value: offset as f64,
        unit: "count/min".into(),
        start_date: ts,
        end_date: ts,
        created_at: ts,
        payload_timestamp: ts,
        processing_time: ts,
        source_bundle: None,
        metadata: None,
        is_synced: true,
        app_version: "1".into(),
        ingestion_date: ts.date_naive(),
        kafka: KafkaCoordinates { topic: "t".into(), partition, offset },
    }
}

async fn data_files(
    lake: &Lakehouse,
    name: &str,
    partition: i32,
    offsets: std::ops::RangeInclusive<i64>,
) -> Vec<iceberg::spec::DataFile> {
    let table = lake.table(TableKind::Raw).await.unwrap();
    let mut sink = DataFileSink::new(&table, name).unwrap();
    let rows_: Vec<RawRecord> = offsets.map(|o| row(partition, o)).collect();
    sink.write(&rows::raw_batch(sink.arrow_schema(), &rows_).unwrap()).await.unwrap();
    sink.close().await.unwrap()
}

/// A commit by another engine: a plain append whose summary has none of healthlake's keys.
async fn foreign_append(lake: &Lakehouse, name: &str, offset: i64) {
    let files = data_files(lake, name, 7, offset..=offset).await;
    let table = lake.table(TableKind::Raw).await.unwrap();
    let tx = Transaction::new(&table);
    let tx = tx.fast_append().add_data_files(files).apply(tx).unwrap();
    tx.commit(lake.catalog()).await.unwrap();
}

#[tokio::test]
async fn sql_catalog_offsets_committed_below_foreign_snapshots_still_fence_a_redelivery() {
    let dir = tempfile::tempdir().unwrap();
    offsets_below_foreign_snapshots_fence_a_redelivery(&sql_settings(dir.path())).await;
}

#[tokio::test]
async fn glue_catalog_offsets_committed_below_foreign_snapshots_still_fence_a_redelivery() {
    let emulator = healthlake_testkit::AwsEmulator::start();
    offsets_below_foreign_snapshots_fence_a_redelivery(&glue_settings(&emulator)).await;
}

async fn offsets_below_foreign_snapshots_fence_a_redelivery(settings: &CatalogSettings) {
    let lake = Lakehouse::open(settings).await.unwrap();
    let consumed = BTreeMap::from([("t-0".to_string(), (0, 9))]);
    lake.append(TableKind::Raw, data_files(&lake, "first", 0, 0..=9).await, &consumed).await.unwrap();
    foreign_append(&lake, "foreign-1", 1000).await;
    foreign_append(&lake, "foreign-2", 1001).await;

    let table = lake.table(TableKind::Raw).await.unwrap();
    let newest = table.metadata().current_snapshot().unwrap();
    assert!(!newest.summary().additional_properties.contains_key(OFFSETS_PROPERTY), "the newest is foreign");
    assert_eq!(lake.committed_offsets(TableKind::Raw).await.unwrap(), BTreeMap::from([("t-0".to_string(), 9)]));

    // The same batch again is refused, not appended a second time.
    let err = lake.append(TableKind::Raw, data_files(&lake, "again", 0, 0..=9).await, &consumed).await.unwrap_err();
    assert!(matches!(err, LakeError::ConcurrentWriter { committed: 9, .. }), "{err}");
    assert_eq!(lake.row_count(TableKind::Raw).await.unwrap(), 12);

    // The next batch merges into the map found below and carries it forward in its own snapshot.
    let next = BTreeMap::from([("t-1".to_string(), (0, 4))]);
    lake.append(TableKind::Raw, data_files(&lake, "next", 1, 0..=4).await, &next).await.unwrap();
    let table = lake.table(TableKind::Raw).await.unwrap();
    let summary = &table.metadata().current_snapshot().unwrap().summary().additional_properties;
    let map: BTreeMap<String, i64> = serde_json::from_str(&summary[OFFSETS_PROPERTY]).unwrap();
    assert_eq!(map, BTreeMap::from([("t-0".to_string(), 9), ("t-1".to_string(), 4)]));
}
