//! Snapshot expiry keeps what readers and ingest need: the newest snapshots, the chain to the
//! offset map (so a redelivery is still refused), every file a retained snapshot reads; and
//! deletes what only expired snapshots reached.

mod common;

use chrono::{Duration, Utc};
use common::{append_batch, daily_row, glue_settings, sql_settings};
use healthlake_lake::{CatalogSettings, ExpiryPolicy, LakeError, Lakehouse, OFFSETS_PROPERTY, TableKind};

#[tokio::test]
async fn sql_catalog_expiry_keeps_what_readers_and_ingest_need() {
    let dir = tempfile::tempdir().unwrap();
    expiry_keeps_what_readers_and_ingest_need(&sql_settings(dir.path())).await;
}

#[tokio::test]
async fn glue_catalog_expiry_keeps_what_readers_and_ingest_need() {
    let emulator = healthlake_testkit::AwsEmulator::start();
    expiry_keeps_what_readers_and_ingest_need(&glue_settings(&emulator)).await;
}

async fn expiry_keeps_what_readers_and_ingest_need(settings: &CatalogSettings) {
    let lake = Lakehouse::open(settings).await.unwrap();
    for batch in 0..6 {
        append_batch(&lake, batch).await.unwrap();
    }
    let before = lake.table(TableKind::Raw).await.unwrap();
    assert_eq!(before.metadata().snapshots().len(), 6);
    let manifest_lists: Vec<String> = before.metadata().snapshots().map(|s| s.manifest_list().to_string()).collect();

    // Nothing is old enough yet.
    let young = ExpiryPolicy { older_than: Utc::now() - Duration::days(30), keep_at_least: 1 };
    assert!(lake.expire_snapshots(TableKind::Raw, young, false).await.unwrap().snapshots_expired.is_empty());

    let policy = ExpiryPolicy { older_than: Utc::now() + Duration::minutes(1), keep_at_least: 2 };
    let dry = lake.expire_snapshots(TableKind::Raw, policy, true).await.unwrap();
    assert_eq!(dry.snapshots_expired.len(), 4, "{dry:?}");
    assert_eq!(lake.table(TableKind::Raw).await.unwrap().metadata().snapshots().len(), 6, "a dry run expired");

    let report = lake.expire_snapshots(TableKind::Raw, policy, false).await.unwrap();
    assert_eq!(report.snapshots_expired, dry.snapshots_expired);
    // Appends keep every data file and manifest live: only the expired manifest lists go.
    assert_eq!(report.files_deleted, 4, "{report:?}");
    let after = lake.table(TableKind::Raw).await.unwrap();
    assert_eq!(after.metadata().snapshots().len(), 2);
    for (i, list) in manifest_lists.iter().enumerate() {
        let expired = report.snapshots_expired.contains(&before.metadata().snapshots().nth(i).unwrap().snapshot_id());
        assert_eq!(after.file_io().exists(list).await.unwrap(), !expired, "{list}");
    }
    // Every retained snapshot still reads whole.
    for snapshot in after.metadata().snapshots() {
        let scan = after.scan().snapshot_id(snapshot.snapshot_id()).build().unwrap();
        let batches: Vec<arrow_array::RecordBatch> =
            futures::TryStreamExt::try_collect(scan.to_arrow().await.unwrap()).await.unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert!(rows == 50 || rows == 60, "snapshot {} reads {rows} rows", snapshot.snapshot_id());
    }
    assert_eq!(lake.row_count(TableKind::Raw).await.unwrap(), 60);
    let current = after.metadata().current_snapshot().unwrap();
    assert!(current.summary().additional_properties.contains_key(OFFSETS_PROPERTY));
    // A redelivery of an old batch is still refused: the offsets survived expiry.
    let err = append_batch(&lake, 3).await.unwrap_err();
    assert!(matches!(err, LakeError::ConcurrentWriter { committed: 59, .. }), "{err}");
    assert_eq!(lake.row_count(TableKind::Raw).await.unwrap(), 60);
    // And orphan removal, reading the old metadata files whose manifest lists are gone, finds
    // nothing to remove but the redelivery's unreferenced files.
    let orphans =
        lake.remove_orphan_files(TableKind::Raw, &settings.s3, Utc::now() + Duration::minutes(1), true).await.unwrap();
    assert!(!orphans.orphans.is_empty(), "{orphans:?}");
    assert!(orphans.orphans.iter().all(|path| path.contains("/batch-3-")), "{orphans:?}");
}

const DAILY: TableKind = TableKind::Aggregate(healthlake_core::WindowKind::Daily);

/// A daily row of user `u{n}` for day `1 + n` of November whose statistics all equal `count`.
fn agg(n: u32, count: i64) -> healthlake_core::record::AggregateRow {
    let day = chrono::NaiveDate::from_ymd_opt(2025, 11, 1 + n).unwrap().and_hms_opt(12, 0, 0).unwrap().and_utc();
    daily_row(&format!("u{n}"), day, count)
}

async fn live_data_files(lake: &Lakehouse) -> Vec<String> {
    let table = lake.table(DAILY).await.unwrap();
    let scan = table.scan().build().unwrap();
    let tasks: Vec<_> = futures::TryStreamExt::try_collect(scan.plan_files().await.unwrap()).await.unwrap();
    tasks.iter().map(|t| t.data_file_path.clone()).collect()
}

#[tokio::test]
async fn sql_catalog_expiry_deletes_the_files_upserts_replaced() {
    let dir = tempfile::tempdir().unwrap();
    expiry_deletes_the_files_upserts_replaced(&sql_settings(dir.path())).await;
}

#[tokio::test]
async fn glue_catalog_expiry_deletes_the_files_upserts_replaced() {
    let emulator = healthlake_testkit::AwsEmulator::start();
    expiry_deletes_the_files_upserts_replaced(&glue_settings(&emulator)).await;
}

async fn expiry_deletes_the_files_upserts_replaced(settings: &CatalogSettings) {
    let lake = Lakehouse::open(settings).await.unwrap();
    let mut replaced = Vec::new();
    for count in 1..=3 {
        let rows: Vec<_> = (0..10).map(|n| agg(n, count)).collect();
        lake.upsert_aggregates(healthlake_core::WindowKind::Daily, &rows).await.unwrap();
        if count < 3 {
            replaced.extend(live_data_files(&lake).await);
        }
    }
    let current_files = live_data_files(&lake).await;
    let table = lake.table(DAILY).await.unwrap();
    assert_eq!(table.metadata().snapshots().len(), 3);
    for path in &replaced {
        assert!(table.file_io().exists(path).await.unwrap());
    }

    let policy = ExpiryPolicy { older_than: Utc::now() + Duration::minutes(1), keep_at_least: 1 };
    let report = lake.expire_snapshots(DAILY, policy, false).await.unwrap();
    assert_eq!(report.snapshots_expired.len(), 2, "{report:?}");
    let table = lake.table(DAILY).await.unwrap();
    for path in &replaced {
        assert!(!table.file_io().exists(path).await.unwrap(), "{path}: replaced, no retained snapshot reads it");
    }
    for path in &current_files {
        assert!(table.file_io().exists(path).await.unwrap(), "{path}: the current snapshot reads it");
    }
    // The current rows, all of the last upsert.
    let batches: Vec<arrow_array::RecordBatch> =
        futures::TryStreamExt::try_collect(table.scan().select(["count"]).build().unwrap().to_arrow().await.unwrap())
            .await
            .unwrap();
    let counts: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(b.column(0)).values().to_vec()
        })
        .collect();
    assert_eq!(counts, vec![3; 10]);
}
