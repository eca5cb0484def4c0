//! Copy-on-write upserts of aggregate rows, through the SQL catalog and through Glue + S3 on the
//! AWS emulator: an upsert replaces exactly the rows of its keys and keeps the rest, the
//! previous snapshot still shows the old values, concurrent upserts never leave a key twice, and
//! pyiceberg reads the result the same way.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int64Type};
use chrono::{DateTime, NaiveDate, Utc};
use common::{glue_settings, sql_settings};
use healthlake_core::record::AggregateRow;
use healthlake_core::{AggregateStats, Window, WindowKind};
use healthlake_lake::{CatalogBackend, CatalogSettings, Lakehouse, TableKind};
use healthlake_testkit::{AwsEmulator, python, repo_root};

const DAILY: TableKind = TableKind::Aggregate(WindowKind::Daily);

fn day(n: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2025, 11, n).unwrap().and_hms_opt(12, 0, 0).unwrap().and_utc()
}

/// A daily row whose statistics all derive from `count`, so a value tells which write it is.
fn agg(user: &str, d: u32, count: i64) -> AggregateRow {
    let v = count as f64;
    AggregateRow {
        user_id: user.into(),
        data_type: "heartRate".into(),
        window: Window::containing(WindowKind::Daily, day(d)),
        stats: AggregateStats {
            min: v,
            max: v,
            avg: v,
            sum: v,
            count,
            stddev: 0.0,
            first: v,
            last: v,
            record_count: count,
            daily_avg_of_avg: v,
        },
        updated_at: day(28),
    }
}

/// `user|heartRate|date` → count, and how many rows there were.
async fn counts(lake: &Lakehouse, snapshot: Option<i64>) -> (BTreeMap<String, i64>, usize) {
    let table = lake.table(DAILY).await.unwrap();
    let mut scan = table.scan().select(["user_id", "data_type", "aggregation_date", "count"]);
    if let Some(id) = snapshot {
        scan = scan.snapshot_id(id);
    }
    let batches: Vec<_> =
        futures::TryStreamExt::try_collect(scan.build().unwrap().to_arrow().await.unwrap()).await.unwrap();
    let mut map = BTreeMap::new();
    let mut n = 0;
    for b in batches {
        for i in 0..b.num_rows() {
            n += 1;
            let date = b.column(2).as_primitive::<Date32Type>().value_as_date(i).unwrap();
            let key = format!(
                "{}|{}|{date}",
                b.column(0).as_string::<i32>().value(i),
                b.column(1).as_string::<i32>().value(i)
            );
            map.insert(key, b.column(3).as_primitive::<Int64Type>().value(i));
        }
    }
    (map, n)
}

fn key(user: &str, d: u32) -> String {
    format!("{user}|heartRate|{}", day(d).date_naive())
}

async fn upsert_replaces_only_its_keys(settings: &CatalogSettings) {
    let lake = Lakehouse::open(settings).await.unwrap();
    let first: Vec<AggregateRow> = (0..5).flat_map(|u| (1..=4).map(move |d| agg(&format!("u{u}"), d, 1))).collect();
    let report = lake.upsert_aggregates(WindowKind::Daily, &first).await.unwrap();
    assert_eq!((report.rows_replaced, report.rows_kept, report.files_removed, report.files_added), (0, 0, 0, 4));

    let second = [agg("u0", 1, 100), agg("u1", 2, 200), agg("u9", 1, 300)];
    let report = lake.upsert_aggregates(WindowKind::Daily, &second).await.unwrap();
    // Days 1 and 2 are rewritten: their 10 rows, 2 of them replaced, plus one new key.
    assert_eq!((report.rows_replaced, report.rows_kept, report.files_removed, report.files_added), (2, 8, 2, 2));

    let (now, rows) = counts(&lake, None).await;
    assert_eq!(rows, 21, "every key once");
    assert_eq!(now.len(), 21);
    assert_eq!(now[&key("u0", 1)], 100);
    assert_eq!(now[&key("u1", 2)], 200);
    assert_eq!(now[&key("u9", 1)], 300);
    assert_eq!(now.values().filter(|&&c| c == 1).count(), 18, "untouched rows keep their values");

    let table = lake.table(DAILY).await.unwrap();
    let snapshot = table.metadata().current_snapshot().unwrap();
    let summary = &snapshot.summary().additional_properties;
    assert_eq!(snapshot.summary().operation, iceberg::spec::Operation::Overwrite);
    assert_eq!(summary["added-records"], "11");
    assert_eq!(summary["deleted-records"], "10");
    assert_eq!(summary["added-data-files"], "2");
    assert_eq!(summary["deleted-data-files"], "2");
    assert_eq!(summary["total-records"], "21");
    assert_eq!(summary["total-data-files"], "4");

    let previous = snapshot.parent_snapshot_id().unwrap();
    let (before, rows) = counts(&lake, Some(previous)).await;
    assert_eq!(rows, 20);
    assert_eq!(before[&key("u0", 1)], 1, "time travel shows the old value");

    pyiceberg_agrees(
        settings,
        &lake,
        serde_json::json!({
            "current": now,
            "previous": before,
            "summary": {"operation": "overwrite", "added-records": "11", "deleted-records": "10", "total-records": "21"},
        }),
    )
    .await;

    // The same upsert again (a retried finalize) changes no row.
    lake.upsert_aggregates(WindowKind::Daily, &second).await.unwrap();
    assert_eq!(counts(&lake, None).await, (now.clone(), 21));
}

/// Runs tests/check_upsert.py (pyiceberg) on the daily table with `expect`.
async fn pyiceberg_agrees(settings: &CatalogSettings, lake: &Lakehouse, mut expect: serde_json::Value) {
    let catalog = match &settings.backend {
        CatalogBackend::Sql { uri } => serde_json::json!({
            "name": settings.catalog_name, "type": "sql",
            "uri": uri.replacen("sqlite://", "sqlite:///", 1),
            "warehouse": settings.warehouse,
        }),
        CatalogBackend::Glue { endpoint, .. } => serde_json::json!({
            "name": settings.catalog_name, "type": "glue",
            "glue.endpoint": endpoint, "glue.region": "us-east-1",
            "glue.access-key-id": "testing", "glue.secret-access-key": "testing",
            "s3.endpoint": settings.s3.endpoint, "s3.region": "us-east-1",
            "s3.access-key-id": "testing", "s3.secret-access-key": "testing",
        }),
        CatalogBackend::Rest { .. } => unreachable!("no REST catalog in these tests"),
    };
    expect["catalog"] = catalog;
    expect["table"] = format!("{}.{}", settings.database, lake.table_name(DAILY)).into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("expect.json");
    std::fs::write(&path, expect.to_string()).unwrap();
    let out = std::process::Command::new(python())
        .arg(repo_root().join("tests/check_upsert.py"))
        .arg(&path)
        .output()
        .expect("running tests/check_upsert.py");
    println!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pyiceberg disagrees");
}

async fn concurrent_upserts_leave_every_key_once(settings: &CatalogSettings, writers: usize) {
    let lake = Arc::new(Lakehouse::open(settings).await.unwrap());
    lake.upsert_aggregates(WindowKind::Daily, &[agg("shared", 1, 1)]).await.unwrap();
    let mut tasks = vec![];
    for w in 0..writers {
        let lake = lake.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for round in 0..3u32 {
                // Each writer's own keys, and one key every writer upserts, all in day 1 or 2.
                let rows = [
                    agg(&format!("w{w}"), 1 + round % 2, (w * 10) as i64 + round as i64),
                    agg("shared", 1, 1000 + w as i64),
                ];
                conflicts += lake.upsert_aggregates(WindowKind::Daily, &rows).await.unwrap().conflicts_retried;
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    println!("overwrite conflicts retried: {conflicts}");
    let (now, rows) = counts(&lake, None).await;
    assert_eq!(rows, now.len(), "no primary key twice");
    assert_eq!(rows, 1 + 2 * writers, "shared + each writer's keys on day 1 and day 2");
    for w in 0..writers {
        // Rounds 0 and 2 wrote day 1; the last one wins.
        assert_eq!(now[&key(&format!("w{w}"), 1)], (w * 10 + 2) as i64);
        assert_eq!(now[&key(&format!("w{w}"), 2)], (w * 10 + 1) as i64);
    }
    assert!((1000..1000 + writers as i64).contains(&now[&key("shared", 1)]));
    assert_eq!(lake.row_count(DAILY).await.unwrap(), rows as u64, "total-records agrees with the scan");
}

#[tokio::test]
async fn sql_catalog_upsert_replaces_exactly_the_rows_of_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    upsert_replaces_only_its_keys(&sql_settings(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql_catalog_concurrent_upserts_leave_every_key_once() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_upserts_leave_every_key_once(&sql_settings(dir.path()), 6).await;
}

#[tokio::test]
async fn glue_catalog_upsert_replaces_exactly_the_rows_of_its_keys() {
    let emulator = AwsEmulator::start();
    upsert_replaces_only_its_keys(&glue_settings(&emulator)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn glue_catalog_concurrent_upserts_leave_every_key_once() {
    let emulator = AwsEmulator::start();
    concurrent_upserts_leave_every_key_once(&glue_settings(&emulator), 4).await;
}
