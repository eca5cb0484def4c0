//! Another engine commits to the raw table between two deliveries of the same batch (here a delete
//! with pyiceberg, as a GDPR erasure would be): its snapshot carries no offset map, and the
//! redelivery must still find the map healthlake committed below it and add nothing, nor bring
//! the deleted rows back.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use chrono::{DateTime, Duration, Utc};
use healthlake_core::generate::WRITER_SCHEMAS;
use healthlake_lake::{OFFSETS_PROPERTY, TableKind};
use healthlake_pipeline::Clock;
use healthlake_pipeline::app::App;
use healthlake_pipeline::config::Settings;
use healthlake_pipeline::events::{EventRecord, build_event};
use healthlake_testkit::{python, repo_root};

async fn app(dir: &std::path::Path) -> App {
    let schemas = dir.join("schemas");
    std::fs::create_dir_all(&schemas).unwrap();
    for (id, text) in WRITER_SCHEMAS {
        std::fs::write(schemas.join(format!("{id}.avsc")), text).unwrap();
    }
    let registry = format!("file://{}", schemas.display());
    let env = healthlake_testkit::embedded_env(dir, &[("SCHEMA_REGISTRY_URL", &registry)]);
    let now: DateTime<Utc> = "2025-12-01T00:00:00Z".parse().unwrap();
    let clock: Clock = Arc::new(move || now);
    App::open(Settings::from_map(&env).unwrap(), clock).await.unwrap()
}

fn payload(id: &str, user: &str, data_type: &str, start: DateTime<Utc>) -> Vec<u8> {
    serde_json::json!({
        "payloadId": id, "deviceId": "d1", "userId": user, "timestamp": start.to_rfc3339(), "appVersion": "1",
        "samples": [{"id": id, "type": data_type, "value": 60.0, "unit": "count",
            "startDate": start.to_rfc3339(), "endDate": (start + Duration::seconds(60)).to_rfc3339(),
            "createdAt": start.to_rfc3339()}]
    })
    .to_string()
    .into_bytes()
}

/// (data type, offset) of every raw row, asserting none appears twice.
async fn raw_rows(app: &App) -> BTreeSet<(String, i64)> {
    let mut seen = BTreeSet::new();
    for b in app.lake.scan(TableKind::Raw, &["data_type", "kafka_offset"]).await.unwrap() {
        for i in 0..b.num_rows() {
            let row =
                (b.column(0).as_string::<i32>().value(i).to_string(), b.column(1).as_primitive::<Int64Type>().value(i));
            assert!(seen.insert(row.clone()), "{row:?} written twice");
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_after_a_pyiceberg_delete_adds_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    let start: DateTime<Utc> = "2025-10-06T10:00:00Z".parse().unwrap();
    let payloads: Vec<Vec<u8>> = (0..12)
        .map(|i| {
            let data_type = if i % 2 == 0 { "heartRate" } else { "steps" };
            payload(&format!("s{i}"), &format!("u{}", i % 3), data_type, start + Duration::minutes(i))
        })
        .collect();
    let ts = Utc::now();
    let records: Vec<EventRecord<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, v)| EventRecord { topic: "t", partition: 0, offset: i as i64, timestamp: ts, key: None, value: v })
        .collect();
    let event = build_event(&records);
    assert_eq!(app.ingest.handle(&event).await.unwrap().raw_rows_written, 12);

    // Another engine deletes the steps rows. (A whole partition: pyiceberg rewriting part of a
    // file of a days() partition spec needs pyiceberg-core, which the test venv does not have.)
    let settings = &app.settings.catalog;
    let out = std::process::Command::new(python())
        .arg(repo_root().join("tests/foreign_delete.py"))
        .arg(&settings.catalog_name)
        .arg(dir.path().join("catalog.db"))
        .arg(&settings.warehouse)
        .arg(format!("{}.{}", settings.database, app.lake.table_name(TableKind::Raw)))
        .args(["data_type", "steps"])
        .output()
        .expect("running tests/foreign_delete.py");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(said.split_whitespace().nth(1), Some("6"), "pyiceberg deleted the 6 steps rows: {said}");
    let table = app.lake.table(TableKind::Raw).await.unwrap();
    let newest = table.metadata().current_snapshot().unwrap();
    assert!(
        !newest.summary().additional_properties.contains_key(OFFSETS_PROPERTY),
        "the newest snapshot is pyiceberg's"
    );

    let again = app.ingest.handle(&event).await.unwrap();
    assert_eq!((again.raw_rows_written, again.raw_rows_skipped), (0, 12), "{again:?}");
    let rows = raw_rows(&app).await;
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|(data_type, _)| data_type == "heartRate"), "the deleted rows stay deleted");
}
