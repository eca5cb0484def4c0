//! Maintenance beside running writers: compaction, manifest rewrite, snapshot expiry and orphan
//! removal loop while 4 appenders write to raw and an upserter (the finalizer's commit) rewrites
//! the daily table. Every appended row lands once, every
//! aggregate key is there once with its last value, no scan fails, and the offsets still refuse
//! a redelivery.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use chrono::{Duration, Utc};
use common::{daily_row, glue_settings, raw_row, sql_settings};
use healthlake_core::{RawRecord, WindowKind};
use healthlake_lake::{
    CatalogSettings, CompactionOptions, DataFileSink, ExpiryPolicy, LakeError, Lakehouse, TableKind, rows,
};

const DAILY: TableKind = TableKind::Aggregate(WindowKind::Daily);

async fn append_batch(lake: &Lakehouse, partition: i32, first: i64) -> Result<(), LakeError> {
    let table = lake.table(TableKind::Raw).await?;
    let rows_: Vec<RawRecord> = (first..first + 5).map(|o| raw_row(partition, o)).collect();
    let mut sink =
        DataFileSink::new(&table, &format!("p{partition}-{first}-{}", Utc::now().timestamp_nanos_opt().unwrap()))?;
    sink.write(&rows::raw_batch(sink.arrow_schema(), &rows_)?).await?;
    let files = sink.close().await?;
    let consumed = BTreeMap::from([(format!("t-{partition}"), (first, first + 4))]);
    lake.append(TableKind::Raw, files, &consumed).await.map(|_| ())
}

fn agg(user: u32, count: i64) -> healthlake_core::record::AggregateRow {
    daily_row(&format!("u{user}"), "2025-11-17T12:00:00Z".parse().unwrap(), count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql_catalog_maintenance_beside_appenders_and_an_upserter() {
    let dir = tempfile::tempdir().unwrap();
    maintenance_beside_writers(sql_settings(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn glue_catalog_maintenance_beside_appenders_and_an_upserter() {
    let emulator = healthlake_testkit::AwsEmulator::start();
    maintenance_beside_writers(glue_settings(&emulator)).await;
}

async fn maintenance_beside_writers(settings: CatalogSettings) {
    let lake = Arc::new(Lakehouse::open(&settings).await.unwrap());
    lake.table(TableKind::Raw).await.unwrap();
    lake.table(DAILY).await.unwrap();
    let batches = 12i64;
    let writing = Arc::new(AtomicBool::new(true));

    let mut writers = Vec::new();
    for partition in 0..4 {
        let lake = lake.clone();
        writers.push(tokio::spawn(async move {
            for b in 0..batches {
                append_batch(&lake, partition, b * 5).await.unwrap();
            }
        }));
    }
    let upserter = {
        let lake = lake.clone();
        tokio::spawn(async move {
            for count in 1..=8 {
                let rows: Vec<_> = (0..6).map(|u| agg(u, count)).collect();
                lake.upsert_aggregates(WindowKind::Daily, &rows).await.unwrap();
            }
        })
    };
    let maintainer = {
        let (lake, writing, s3) = (lake.clone(), writing.clone(), settings.s3.clone());
        tokio::spawn(async move {
            let (mut expired, mut compacted, mut rounds) = (0, 0, 0);
            let compaction = CompactionOptions { min_input_files: 2, ..Default::default() };
            while writing.load(Ordering::Relaxed) {
                // Everything old enough, keeping only the newest two: as aggressive as it gets.
                let policy = ExpiryPolicy { older_than: Utc::now(), keep_at_least: 2 };
                for kind in [TableKind::Raw, DAILY] {
                    compacted += lake.compact(kind, &compaction).await.unwrap().files_rewritten;
                    lake.rewrite_manifests(kind, false).await.unwrap();
                    expired += lake.expire_snapshots(kind, policy, false).await.unwrap().snapshots_expired.len();
                    // Files written in the last hour are never orphans: the writers' are safe.
                    lake.remove_orphan_files(kind, &s3, Utc::now() - Duration::hours(1), false).await.unwrap();
                    // Readers meanwhile: every scan plans and reads.
                    lake.scan(kind, &["user_id"]).await.unwrap();
                }
                rounds += 1;
            }
            (expired, compacted, rounds)
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    upserter.await.unwrap();
    writing.store(false, Ordering::Relaxed);
    let (expired, compacted, rounds) = maintainer.await.unwrap();
    println!(
        "maintenance rounds beside the writers: {rounds}, snapshots expired: {expired}, files compacted: {compacted}"
    );
    assert!(rounds > 0 && expired > 0, "maintenance ran and expired something ({rounds} rounds, {expired})");
    assert!(compacted > 0, "compaction rewrote files beside the writers");

    // Every appended row once.
    let batches_read = lake.scan(TableKind::Raw, &["sample_id"]).await.unwrap();
    let mut ids: Vec<String> = batches_read
        .iter()
        .flat_map(|b| b.column(0).as_string::<i32>().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>())
        .collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!((before, ids.len()), (4 * 12 * 5, 4 * 12 * 5));
    // Every aggregate key once, with the last upsert's value.
    let counts: Vec<i64> = lake
        .scan(DAILY, &["count"])
        .await
        .unwrap()
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    assert_eq!(counts, vec![8; 6]);
    // The offsets survived: a redelivery is refused.
    let err = append_batch(&lake, 2, 0).await.unwrap_err();
    assert!(matches!(err, LakeError::ConcurrentWriter { .. }), "{err}");
}
