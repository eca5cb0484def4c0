//! Orphan removal removes exactly what no metadata references and the grace period allows:
//! the files of a writer that never committed (a lost race, a crash) and strays under the
//! table's location; never a file a snapshot references, never a file newer than the cutoff.

use std::collections::{BTreeMap, BTreeSet};

mod common;

use chrono::{Duration, Utc};
use common::{glue_settings, raw_row, sql_settings};
use healthlake_core::RawRecord;
use healthlake_lake::{CatalogSettings, DataFileSink, Lakehouse, TableKind, rows};

async fn written(lake: &Lakehouse, name: &str, offsets: std::ops::Range<i64>) -> Vec<iceberg::spec::DataFile> {
    let table = lake.table(TableKind::Raw).await.unwrap();
    let mut sink = DataFileSink::new(&table, name).unwrap();
    let rows_: Vec<RawRecord> = offsets.map(|o| raw_row(0, o)).collect();
    sink.write(&rows::raw_batch(sink.arrow_schema(), &rows_).unwrap()).await.unwrap();
    sink.close().await.unwrap()
}

#[tokio::test]
async fn sql_catalog_orphans_are_exactly_the_unreferenced_old_files() {
    let dir = tempfile::tempdir().unwrap();
    only_unreferenced_old_files_are_removed(&sql_settings(dir.path())).await;
}

#[tokio::test]
async fn glue_catalog_orphans_are_exactly_the_unreferenced_old_files() {
    let emulator = healthlake_testkit::AwsEmulator::start();
    only_unreferenced_old_files_are_removed(&glue_settings(&emulator)).await;
}

async fn only_unreferenced_old_files_are_removed(settings: &CatalogSettings) {
    let lake = Lakehouse::open(settings).await.unwrap();
    for batch in 0..3i64 {
        let offsets = batch * 10..batch * 10 + 10;
        let consumed = BTreeMap::from([("t-0".to_string(), (offsets.start, offsets.end - 1))]);
        let files = written(&lake, &format!("batch-{batch}"), offsets).await;
        lake.append(TableKind::Raw, files, &consumed).await.unwrap();
    }
    // A writer that lost its race (or crashed) after writing its files, and a stray object.
    let mut planted: BTreeSet<String> =
        written(&lake, "lost-race", 30..40).await.iter().map(|f| f.file_path().to_string()).collect();
    let table = lake.table(TableKind::Raw).await.unwrap();
    let stray = format!("{}/metadata/stray-{}.json", table.metadata().location().trim_end_matches('/'), uuid());
    table.file_io().new_output(&stray).unwrap().write("{}".into()).await.unwrap();
    planted.insert(stray);
    let normalized = |p: &str| p.strip_prefix("file://").unwrap_or(p).to_string();
    let planted: BTreeSet<String> = planted.iter().map(|p| normalized(p)).collect();

    // Within the grace period nothing is an orphan yet.
    let recent = lake.remove_orphan_files(TableKind::Raw, &settings.s3, Utc::now() - Duration::hours(1), false).await;
    let recent = recent.unwrap();
    assert!(recent.orphans.is_empty(), "{:?}", recent.orphans);
    assert_eq!(recent.too_recent, planted.len());

    // A cutoff after the files were written: a dry run names exactly the planted ones.
    let cutoff = Utc::now() + Duration::minutes(1);
    let dry = lake.remove_orphan_files(TableKind::Raw, &settings.s3, cutoff, true).await.unwrap();
    let named: BTreeSet<String> = dry.orphans.iter().map(|p| normalized(p)).collect();
    assert_eq!(named, planted, "{dry:?}");
    assert_eq!(dry.files_listed, dry.files_referenced + planted.len(), "{dry:?}");
    for path in &dry.orphans {
        assert!(table.file_io().exists(path).await.unwrap(), "a dry run deleted {path}");
    }

    let removed = lake.remove_orphan_files(TableKind::Raw, &settings.s3, cutoff, false).await.unwrap();
    assert_eq!(removed.orphans.len(), planted.len());
    for path in &removed.orphans {
        assert!(!table.file_io().exists(path).await.unwrap(), "{path} still there");
    }
    let again = lake.remove_orphan_files(TableKind::Raw, &settings.s3, cutoff, true).await.unwrap();
    assert!(again.orphans.is_empty(), "{again:?}");
    // Every committed row still reads, and time travel to each snapshot still plans.
    assert_eq!(lake.row_count(TableKind::Raw).await.unwrap(), 30);
    let scanned: usize = lake.scan(TableKind::Raw, &["sample_id"]).await.unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(scanned, 30);
    let table = lake.table(TableKind::Raw).await.unwrap();
    for snapshot in table.metadata().snapshots() {
        let scan = table.scan().snapshot_id(snapshot.snapshot_id()).build().unwrap();
        let batches: Vec<_> = futures::TryStreamExt::try_collect(scan.to_arrow().await.unwrap()).await.unwrap();
        assert!(batches.iter().map(|b: &arrow_array::RecordBatch| b.num_rows()).sum::<usize>() > 0);
    }
}

fn uuid() -> String {
    format!("{:x}", Utc::now().timestamp_nanos_opt().unwrap())
}
