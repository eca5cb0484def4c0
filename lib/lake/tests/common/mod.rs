//! Catalog settings and rows the integration tests share.

use chrono::{DateTime, Duration, Utc};
use healthlake_core::record::AggregateRow;
use healthlake_core::{AggregateStats, KafkaCoordinates, RawRecord, Window, WindowKind};
use healthlake_lake::{CatalogBackend, CatalogSettings, S3Settings, TableNames};
use healthlake_testkit::AwsEmulator;

/// The embedded catalog in `dir`.
pub(crate) fn sql_settings(dir: &std::path::Path) -> CatalogSettings {
    CatalogSettings {
        catalog_name: "health_catalog".into(),
        backend: CatalogBackend::Sql { uri: format!("sqlite://{}/catalog.db", dir.display()) },
        warehouse: format!("file://{}/warehouse", dir.display()),
        database: "health_db".into(),
        tables: TableNames::default(),
        s3: S3Settings::default(),
    }
}

/// Glue + S3 on a fresh emulator, with the bucket and database created as the deployment does.
#[allow(dead_code)] // not every test binary uses every helper
pub(crate) fn glue_settings(emulator: &AwsEmulator) -> CatalogSettings {
    let warehouse = "s3://healthlake-lake/warehouse";
    emulator.create_resources(&[("ICEBERG_WAREHOUSE", warehouse), ("ICEBERG_DATABASE", "health_db")]);
    CatalogSettings {
        catalog_name: "health_catalog".into(),
        backend: CatalogBackend::Glue { endpoint: Some(emulator.url.clone()), catalog_id: None },
        warehouse: warehouse.into(),
        database: "health_db".into(),
        tables: TableNames::default(),
        s3: S3Settings {
            endpoint: Some(emulator.url.clone()),
            credentials: Some(("testing".into(), "testing".into())),
            path_style_access: true,
            region: "us-east-1".into(),
        },
    }
}

/// A raw row of Kafka partition `partition` at `offset`: user `u{partition}`, a heart rate equal to
/// the offset, its start spread over three days (so batches touch several day partitions).
#[allow(dead_code)] // not every test binary uses every helper
pub(crate) fn raw_row(partition: i32, offset: i64) -> RawRecord {
    let ts: DateTime<Utc> = "2025-11-17T10:00:00Z".parse().unwrap();
    RawRecord {
        device_id: "d".into(),
        user_id: format!("u{partition}"),
        sample_id: format!("s-{partition}-{offset}"),
        data_type: "heartRate".into(),
        value: offset as f64,
        unit: "count/min".into(),
        start_date: ts + Duration::hours(offset % 72),
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

/// A daily heart-rate row of `user` for the day of `day` whose statistics all equal `count`, so a
/// value tells which write it is.
#[allow(dead_code)]
pub(crate) fn daily_row(user: &str, day: DateTime<Utc>, count: i64) -> AggregateRow {
    let v = count as f64;
    AggregateRow {
        user_id: user.into(),
        data_type: "heartRate".into(),
        window: Window::containing(WindowKind::Daily, day),
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
        updated_at: day,
    }
}
