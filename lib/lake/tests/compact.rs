//! Compaction and manifest rewrite keep every row and every snapshot readable: after compaction
//! the rows (all columns) are identical, each compacted partition holds ⌈bytes/target⌉ files or
//! fewer, time travel to every snapshot reads what it read before, the offsets still refuse a
//! redelivery; expiry afterwards deletes the replaced files and keeps every referenced one; a
//! manifest rewrite merges the appends' manifests without changing a row.

use std::collections::HashMap;

mod common;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use chrono::{Duration, Utc};
use common::{append_batch, glue_settings, sql_settings};
use futures::TryStreamExt;
use healthlake_lake::{
    CatalogSettings, CompactionOptions, ExpiryPolicy, LakeError, Lakehouse, MAINTENANCE_PROPERTY, OFFSETS_PROPERTY,
    TableKind,
};
use iceberg::table::Table;

/// Every row of the snapshot (the current one when `None`), every column, in `sample_id` order.
async fn all_rows(table: &Table, snapshot: Option<i64>, order_by: &str) -> RecordBatch {
    let mut scan = table.scan();
    if let Some(id) = snapshot {
        scan = scan.snapshot_id(id);
    }
    let batches: Vec<RecordBatch> = scan.build().unwrap().to_arrow().await.unwrap().try_collect().await.unwrap();
    let schema = batches[0].schema();
    let all = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
    let keys: Vec<String> =
        all.column_by_name(order_by).unwrap().as_string::<i32>().iter().map(|v| v.unwrap().to_string()).collect();
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    order.sort_by(|a, b| keys[*a as usize].cmp(&keys[*b as usize]));
    arrow_select::take::take_record_batch(&all, &arrow_array::UInt32Array::from(order)).unwrap()
}

/// Live data files per partition directory: (files, bytes).
async fn files_per_partition(table: &Table) -> HashMap<String, (usize, u64)> {
    let tasks: Vec<_> = table.scan().build().unwrap().plan_files().await.unwrap().try_collect().await.unwrap();
    let mut per = HashMap::new();
    for task in tasks {
        let dir = task.data_file_path.rsplit_once('/').unwrap().0.to_string();
        let entry = per.entry(dir).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += task.file_size_in_bytes;
    }
    per
}

#[tokio::test]
async fn sql_catalog_compaction_keeps_rows_snapshots_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    compaction_keeps_rows_snapshots_and_offsets(&sql_settings(dir.path())).await;
}

#[tokio::test]
async fn glue_catalog_compaction_keeps_rows_snapshots_and_offsets() {
    let emulator = healthlake_testkit::AwsEmulator::start();
    compaction_keeps_rows_snapshots_and_offsets(&glue_settings(&emulator)).await;
}

async fn compaction_keeps_rows_snapshots_and_offsets(settings: &CatalogSettings) {
    let lake = Lakehouse::open(settings).await.unwrap();
    for batch in 0..8 {
        append_batch(&lake, batch).await.unwrap();
    }
    let before = lake.table(TableKind::Raw).await.unwrap();
    let rows_before = all_rows(&before, None, "sample_id").await;
    let per_partition_before = files_per_partition(&before).await;
    // Ten rows a batch, an hour apart from Nov 17 10:00 on: four day partitions of 2 to 4 files.
    assert_eq!(per_partition_before.len(), 4, "{per_partition_before:?}");
    let files_before: usize = per_partition_before.values().map(|(files, _)| files).sum();
    assert_eq!(files_before, 12, "{per_partition_before:?}");
    // A target that asks for two files in the largest partition: every file is small.
    let largest = per_partition_before.values().map(|(_, bytes)| *bytes).max().unwrap();
    let target = largest / 2 + 1;
    let options = CompactionOptions { target_file_size: Some(target), min_input_files: 2, ..Default::default() };

    let dry = lake.compact(TableKind::Raw, &CompactionOptions { dry_run: true, ..options.clone() }).await.unwrap();
    assert_eq!((dry.partitions_due, dry.files_rewritten, dry.snapshots.len()), (4, 12, 0), "{dry:?}");
    assert_eq!(lake.table(TableKind::Raw).await.unwrap().metadata().snapshots().len(), 8, "a dry run committed");

    let report = lake.compact(TableKind::Raw, &options).await.unwrap();
    assert!(report.complete, "{report:?}");
    assert_eq!((report.partitions_compacted, report.files_rewritten), (4, 12), "{report:?}");
    assert_eq!(report.files_after, report.files_written, "{report:?}");
    assert_eq!(report.files_written, dry.files_written, "the dry run said what would be written");
    let after = lake.table(TableKind::Raw).await.unwrap();
    let snapshot = after.metadata().current_snapshot().unwrap();
    assert_eq!(snapshot.summary().operation, iceberg::spec::Operation::Replace);
    let summary = &snapshot.summary().additional_properties;
    assert_eq!(summary.get(MAINTENANCE_PROPERTY).map(String::as_str), Some("compact"));
    assert!(summary.contains_key(OFFSETS_PROPERTY), "the offsets are carried forward: {summary:?}");
    assert_eq!(summary.get("total-records").map(String::as_str), Some("80"), "{summary:?}");

    // The same rows, every column.
    assert_eq!(all_rows(&after, None, "sample_id").await, rows_before);
    // ⌈bytes/target⌉ files or fewer per compacted partition.
    let per_partition_after = files_per_partition(&after).await;
    for (dir, (files, _)) in &per_partition_after {
        let (_, bytes) = per_partition_before[dir];
        assert!(*files as u64 <= bytes.div_ceil(target), "{dir}: {files} files for {bytes} bytes, target {target}");
    }
    // Time travel: every earlier snapshot reads what it read before.
    for s in before.metadata().snapshots() {
        let n = all_rows(&after, Some(s.snapshot_id()), "sample_id").await.num_rows();
        assert_eq!(n as i64, s.summary().additional_properties["total-records"].parse::<i64>().unwrap());
    }
    // Nothing is left to compact.
    let again = lake.compact(TableKind::Raw, &options).await.unwrap();
    assert_eq!((again.partitions_due, again.snapshots.len()), (0, 0), "{again:?}");
    // A redelivery of every batch is refused: nothing is written twice.
    for batch in 0..8 {
        let err = append_batch(&lake, batch).await.unwrap_err();
        assert!(matches!(err, LakeError::ConcurrentWriter { .. }), "{err}");
    }
    // Manifest rewrite: the eight appends' manifests and the compaction's become fewer.
    let manifests = lake.rewrite_manifests(TableKind::Raw, false).await.unwrap();
    assert!(manifests.manifests_after < manifests.manifests_before, "{manifests:?}");
    let rewritten = lake.table(TableKind::Raw).await.unwrap();
    assert_eq!(all_rows(&rewritten, None, "sample_id").await, rows_before);
    let summary = &rewritten.metadata().current_snapshot().unwrap().summary().additional_properties;
    assert!(summary.contains_key(OFFSETS_PROPERTY) && summary["total-records"] == "80", "{summary:?}");

    // Expiry then deletes the replaced small files; every file a retained snapshot reads exists.
    let policy = ExpiryPolicy { older_than: Utc::now() + Duration::minutes(1), keep_at_least: 1 };
    let expired = lake.expire_snapshots(TableKind::Raw, policy, false).await.unwrap();
    assert!(expired.files_deleted >= 12, "{expired:?}");
    let last = lake.table(TableKind::Raw).await.unwrap();
    for (dir, (files, _)) in files_per_partition(&last).await {
        assert_eq!(files, per_partition_after[&dir].0, "{dir}");
    }
    assert_eq!(all_rows(&last, None, "sample_id").await, rows_before);
    let err = append_batch(&lake, 7).await.unwrap_err();
    assert!(matches!(err, LakeError::ConcurrentWriter { .. }), "after expiry too: {err}");
}

#[tokio::test]
async fn sql_catalog_compaction_of_recent_partitions_only() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lakehouse::open(&sql_settings(dir.path())).await.unwrap();
    for batch in 0..8 {
        append_batch(&lake, batch).await.unwrap();
    }
    let table = lake.table(TableKind::Raw).await.unwrap();
    let before = all_rows(&table, None, "sample_id").await;
    let per_before = files_per_partition(&table).await;
    // Nov 19 and 20 are recent; Nov 17 and 18 are left as they are.
    let since = chrono::NaiveDate::from_ymd_opt(2025, 11, 19);
    let options = CompactionOptions { min_input_files: 2, since, ..Default::default() };
    let report = lake.compact(TableKind::Raw, &options).await.unwrap();
    assert_eq!(report.partitions_compacted, 2, "{report:?}");
    let after = lake.table(TableKind::Raw).await.unwrap();
    assert_eq!(all_rows(&after, None, "sample_id").await, before);
    for (dir, (files, _)) in files_per_partition(&after).await {
        let recent = dir.contains("2025-11-19") || dir.contains("2025-11-20");
        let expected = if recent { 1 } else { per_before[&dir].0 };
        assert_eq!(files, expected, "{dir}");
    }
}
