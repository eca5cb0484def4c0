//! Catalog settings and rows the integration tests share.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use healthlake_core::record::AggregateRow;
use healthlake_core::{AggregateStats, KafkaCoordinates, RawRecord, Window, WindowKind};
use healthlake_lake::{
    CatalogBackend, CatalogSettings, DataFileSink, LakeError, Lakehouse, S3Settings, TableKind, TableNames, rows,
};
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

/// Appends batch `batch` of Kafka partition 0 to raw, as ingest commits it: ten rows at offsets
/// `10 * batch ..` (spread over the hours from Nov 17 10:00, so over several day partitions),
/// with the offsets in the snapshot summary.
#[allow(dead_code)]
pub(crate) async fn append_batch(lake: &Lakehouse, batch: i64) -> Result<(), LakeError> {
    let offsets = batch * 10..batch * 10 + 10;
    let table = lake.table(TableKind::Raw).await?;
    let mut sink = DataFileSink::new(&table, &format!("batch-{batch}-{}", Utc::now().timestamp_nanos_opt().unwrap()))?;
    let rows_: Vec<RawRecord> = offsets.clone().map(|o| raw_row(0, o)).collect();
    sink.write(&rows::raw_batch(sink.arrow_schema(), &rows_)?).await?;
    let files = sink.close().await?;
    let consumed = BTreeMap::from([("t-0".to_string(), (offsets.start, offsets.end - 1))]);
    lake.append(TableKind::Raw, files, &consumed).await.map(|_| ())
}
