//! Many writers appending to one table at once, through the SQL catalog (which compares and swaps
//! the metadata location) and through Glue + S3 on the AWS emulator (Glue's VersionId check):
//! every row lands exactly once, and the newest snapshot's offset map holds every writer's
//! partition, however the commits interleaved.

use std::collections::BTreeMap;
use std::sync::Arc;

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use chrono::{DateTime, Utc};
use common::{glue_settings, sql_settings};
use healthlake_core::{KafkaCoordinates, RawRecord};
use healthlake_lake::{
    CatalogSettings, DataFileSink, LakeError, Lakehouse, OffsetRange, TableKind, commit_on_base, committed_offsets,
    coordinates_present, replay_snapshot, rows,
};
use healthlake_testkit::AwsEmulator;
use iceberg::transaction::{ApplyTransactionAction, Transaction};

fn row(partition: i32, offset: i64) -> RawRecord {
    let ts: DateTime<Utc> = "2025-11-17T10:00:00Z".parse().unwrap();
    RawRecord {
        device_id: "d".into(),
        user_id: format!("u{partition}"),
        sample_id: format!("s-{partition}-{offset}"),
        data_type: if offset % 2 == 0 { "heartRate".into() } else { "steps".into() },
        value: offset as f64,
        unit: "count".into(),
        start_date: ts + chrono::Duration::hours(offset % 48),
        end_date: ts + chrono::Duration::hours(offset % 48),
        created_at: ts,
        payload_timestamp: ts,
        processing_time: ts,
        source_bundle: None,
        metadata: (offset % 3 == 0).then(|| BTreeMap::from([("k".to_string(), "v".to_string())])),
        is_synced: true,
        app_version: "1".into(),
        ingestion_date: (ts + chrono::Duration::hours(offset % 48)).date_naive(),
        kafka: KafkaCoordinates { topic: "t".into(), partition, offset },
    }
}

async fn append_batch(lake: &Lakehouse, partition: i32, first: i64, last: i64) -> Result<u32, LakeError> {
    let table = lake.table(TableKind::Raw).await?;
    let rows_: Vec<RawRecord> = (first..=last).map(|o| row(partition, o)).collect();
    let mut sink = DataFileSink::new(&table, &format!("test-{partition}-{first}-{last}"))?;
    sink.write(&rows::raw_batch(sink.arrow_schema(), &rows_)?).await?;
    let files = sink.close().await?;
    let consumed = BTreeMap::from([(format!("t-{partition}"), (first, last))]);
    Ok(lake.append(TableKind::Raw, files, &consumed).await?.conflicts_retried)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql_catalog_eight_concurrent_appenders_land_every_row_once_with_a_complete_offset_map() {
    let dir = tempfile::tempdir().unwrap();
    eight_concurrent_appenders(&sql_settings(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn glue_catalog_eight_concurrent_appenders_land_every_row_once_with_a_complete_offset_map() {
    let emulator = AwsEmulator::start();
    eight_concurrent_appenders(&glue_settings(&emulator)).await;
}

/// The conflict Glue commits meet: a transaction built on a table version another writer has
/// since replaced is refused as a commit conflict (which `append` retries after re-reading),
/// not applied on top of the newer version.
#[tokio::test]
async fn glue_catalog_refuses_a_commit_built_on_a_replaced_version() {
    let emulator = AwsEmulator::start();
    let lake = Lakehouse::open(&glue_settings(&emulator)).await.unwrap();
    let stale = lake.table(TableKind::Raw).await.unwrap();
    append_batch(&lake, 0, 0, 9).await.unwrap();

    let mut sink = DataFileSink::new(&stale, "stale-writer").unwrap();
    let rows_: Vec<RawRecord> = (10..20).map(|o| row(1, o)).collect();
    sink.write(&rows::raw_batch(sink.arrow_schema(), &rows_).unwrap()).await.unwrap();
    let files = sink.close().await.unwrap();
    let tx = Transaction::new(&stale);
    let tx = tx.fast_append().add_data_files(files).apply(tx).unwrap();
    let err = commit_on_base(lake.catalog(), &stale, tx).await.unwrap_err();
    assert_eq!(err.kind(), iceberg::ErrorKind::CatalogCommitConflicts, "{err}");
    assert!(!err.retryable(), "append retries after re-reading, not the crate with a stale summary");
    assert_eq!(lake.table(TableKind::Raw).await.unwrap().metadata().snapshots().count(), 1);
    assert_eq!(lake.committed_offsets(TableKind::Raw).await.unwrap(), BTreeMap::from([("t-0".to_string(), 9)]));
}

async fn eight_concurrent_appenders(settings: &CatalogSettings) {
    let lake = Arc::new(Lakehouse::open(settings).await.unwrap());
    lake.table(TableKind::Raw).await.unwrap();
    let mut tasks = Vec::new();
    for partition in 0..8 {
        let lake = lake.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for batch in 0..3i64 {
                conflicts += append_batch(&lake, partition, batch * 25, batch * 25 + 24).await.unwrap();
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    println!("commit conflicts retried: {conflicts}");

    let offsets = lake.committed_offsets(TableKind::Raw).await.unwrap();
    let expected: BTreeMap<String, i64> = (0..8).map(|p| (format!("t-{p}"), 74)).collect();
    assert_eq!(offsets, expected);
    let mut seen = std::collections::BTreeSet::new();
    let mut n = 0;
    for b in lake.scan(TableKind::Raw, &["kafka_partition", "kafka_offset"]).await.unwrap() {
        for i in 0..b.num_rows() {
            n += 1;
            seen.insert((
                b.column(0).as_primitive::<Int32Type>().value(i),
                b.column(1).as_primitive::<Int64Type>().value(i),
            ));
        }
    }
    assert_eq!(n, 8 * 75);
    assert_eq!(seen.len(), 8 * 75);
    assert_eq!(lake.row_count(TableKind::Raw).await.unwrap(), 600);

    // A writer replaying a committed range is refused instead of duplicating rows.
    let err = append_batch(&lake, 3, 50, 74).await.unwrap_err();
    assert!(matches!(err, LakeError::ConcurrentWriter { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql_catalog_a_replayed_append_keeps_the_offset_map_and_is_found_by_its_mark() {
    let dir = tempfile::tempdir().unwrap();
    replayed_append(&sql_settings(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn glue_catalog_a_replayed_append_keeps_the_offset_map_and_is_found_by_its_mark() {
    let emulator = AwsEmulator::start();
    replayed_append(&glue_settings(&emulator)).await;
}

/// Offsets 10..=19 of partition 0 were skipped by the stream and are appended by a replay while
/// another partition's writer commits: the map stays where the stream left it, the replay's
/// snapshot is found by its mark, and the rows are visible by their lineage after it, not before.
async fn replayed_append(settings: &CatalogSettings) {
    let lake = Lakehouse::open(settings).await.unwrap();
    append_batch(&lake, 0, 0, 9).await.unwrap();
    append_batch(&lake, 0, 20, 29).await.unwrap();
    let table = lake.table(TableKind::Raw).await.unwrap();
    let skipped: Vec<RawRecord> = (10..=19).map(|o| row(0, o)).collect();
    let mut sink = DataFileSink::new(&table, "replay-test").unwrap();
    sink.write(&rows::raw_batch(sink.arrow_schema(), &skipped).unwrap()).await.unwrap();
    let files = sink.close().await.unwrap();
    let (replayed, other) =
        tokio::join!(lake.append_replayed(TableKind::Raw, files, "t-0:10-19"), append_batch(&lake, 1, 0, 9));
    assert_eq!(replayed.unwrap().expect("committed").records, 10);
    other.unwrap();
    let again = lake.append_replayed(TableKind::Raw, vec![], "t-0:10-19").await.unwrap();
    assert_eq!(again, None, "a table holding the batch's snapshot is not appended to again");

    let table = lake.table(TableKind::Raw).await.unwrap();
    let map = committed_offsets(&table).unwrap();
    assert_eq!(map, BTreeMap::from([("t-0".to_string(), 29), ("t-1".to_string(), 9)]));
    let own = replay_snapshot(&table, "t-0:10-19").expect("found by its mark");
    assert!(replay_snapshot(&table, "t-0:30-39").is_none());
    let range = |first, last| [OffsetRange { topic: "t".into(), partition: 0, first, last }];
    assert_eq!(coordinates_present(&table, &range(10, 19), None).await.unwrap().len(), 10);
    let parent = own.parent_snapshot_id().expect("appended after the stream's batches");
    assert!(coordinates_present(&table, &range(10, 19), Some(parent)).await.unwrap().is_empty());
    let all = coordinates_present(&table, &range(0, 29), None).await.unwrap();
    assert_eq!(all.iter().map(|c| c.offset).collect::<Vec<_>>(), (0..=29).collect::<Vec<_>>());
}
