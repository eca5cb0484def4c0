//! Copy-on-write upsert cost on the embedded catalog (local files): a daily aggregate table of
//! 60 days × 4 data types × 500 users (120,000 rows in 240 partitions), then the upserts finalize
//! and backfill make: one day re-emitted (2,000 rows, 4 partitions rewritten), and a 30-day
//! backfill (60,000 rows, 120 partitions). Prints wall-clock figures; not a timed test.
//!
//! `cargo bench -p healthlake-lake --bench upsert`

use std::time::Instant;

use chrono::{NaiveDate, Utc};
use healthlake_core::record::AggregateRow;
use healthlake_core::{AggregateStats, Window, WindowKind};
use healthlake_lake::{CatalogBackend, CatalogSettings, Lakehouse, S3Settings, TableKind, TableNames};

const TYPES: [&str; 4] = ["heartRate", "steps", "bloodPressureSystolic", "bodyMass"];
const USERS: usize = 500;

fn rows(days: std::ops::Range<u32>, version: i64) -> Vec<AggregateRow> {
    let first = NaiveDate::from_ymd_opt(2025, 9, 1).unwrap();
    let mut out = vec![];
    for d in days {
        let start = (first + chrono::Days::new(d as u64)).and_hms_opt(12, 0, 0).unwrap().and_utc();
        for t in TYPES {
            for u in 0..USERS {
                let v = (u as f64) + version as f64;
                out.push(AggregateRow {
                    user_id: format!("user-{u:04}"),
                    data_type: t.into(),
                    window: Window::containing(WindowKind::Daily, start),
                    stats: AggregateStats {
                        min: v,
                        max: v + 10.0,
                        avg: v + 5.0,
                        sum: v * 20.0,
                        count: 20 + version,
                        stddev: 2.5,
                        first: v,
                        last: v + 1.0,
                        record_count: 20 + version,
                        daily_avg_of_avg: v + 5.0,
                    },
                    updated_at: Utc::now(),
                });
            }
        }
    }
    out
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let settings = CatalogSettings {
        catalog_name: "bench".into(),
        backend: CatalogBackend::Sql { uri: format!("sqlite://{}/catalog.db", dir.path().display()) },
        warehouse: format!("file://{}/warehouse", dir.path().display()),
        database: "bench".into(),
        tables: TableNames::default(),
        s3: S3Settings::default(),
    };
    let lake = Lakehouse::open(&settings).await.unwrap();
    let started = Instant::now();
    let report = lake.upsert_aggregates(WindowKind::Daily, &rows(0..60, 0)).await.unwrap();
    println!(
        "initial load: {} rows into {} files in {:.2} s",
        report.rows_upserted,
        report.files_added,
        started.elapsed().as_secs_f64()
    );
    for (label, days) in [("re-emit one day", 30..31), ("backfill 30 days", 10..40)] {
        let mut times = vec![];
        for version in 1..=5 {
            let batch = rows(days.clone(), version);
            let started = Instant::now();
            let report = lake.upsert_aggregates(WindowKind::Daily, &batch).await.unwrap();
            times.push(started.elapsed().as_secs_f64());
            assert_eq!(report.rows_replaced, batch.len() as u64);
        }
        times.sort_by(f64::total_cmp);
        let n = rows(days.clone(), 0).len();
        println!(
            "{label}: {n} rows, {} partitions rewritten: median {:.3} s ({:.0} rows/s), runs {:?}",
            days.len() * TYPES.len(),
            times[2],
            n as f64 / times[2],
            times.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>()
        );
    }
    assert_eq!(lake.row_count(TableKind::Aggregate(WindowKind::Daily)).await.unwrap(), 120_000);
}
