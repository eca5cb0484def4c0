//! The exporter on the embedded stores: read-only before anything was written (no table created,
//! Kafka reported down without failing the rest), then figures equal to the stores' after a run.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Duration, Utc};
use healthlake_core::WindowKind;
use healthlake_core::generate::{self, GeneratorConfig, WRITER_SCHEMAS};
use healthlake_exporter::Exporter;
use healthlake_lake::{Lakehouse, TableKind};
use healthlake_pipeline::app::{App, open_store};
use healthlake_pipeline::config::Settings;
use healthlake_pipeline::demo::{assign_offsets, deliveries};
use healthlake_pipeline::system_clock;

/// `name{labels}` → value, from Prometheus text.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn reports_the_stores_without_writing_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(&schemas).unwrap();
    for (id, text) in WRITER_SCHEMAS {
        std::fs::write(schemas.join(format!("{id}.avsc")), text).unwrap();
    }
    let mut env = healthlake_testkit::embedded_env(dir.path(), &[]);
    env.insert("SCHEMA_REGISTRY_URL".into(), format!("file://{}", schemas.display()));
    let settings = Settings::from_map(&env).unwrap();
    let lake = Arc::new(Lakehouse::open(&settings.catalog).await.unwrap());
    let store = open_store(&settings.state).await.unwrap();
    let exporter = Exporter::new(settings.clone(), lake.clone(), store, None, std::time::Duration::ZERO);

    let before = samples(&exporter.read(Utc::now()).await);
    assert_eq!(before["exporter_source_up{source=\"kafka\"}"], 0.0, "no brokers configured");
    for source in ["lake", "state", "errors"] {
        assert_eq!(before[&format!("exporter_source_up{{source=\"{source}\"}}")], 1.0, "{source}");
    }
    assert_eq!(before["exporter_source_errors_total{source=\"kafka\"}"], 1.0);
    assert!(!before.keys().any(|k| k.starts_with("iceberg_")), "no table yet: {before:?}");
    for kind in TableKind::ALL {
        assert!(lake.existing_table(kind).await.unwrap().is_none(), "the exporter created {kind:?}");
    }

    // A run: 600 generated records in batches of 100, then every window kind finalized.
    let app = App::open(settings, system_clock()).await.unwrap();
    let config = GeneratorConfig {
        records: 600,
        users: 8,
        partitions: 3,
        start: Utc::now() - Duration::days(20),
        span: Duration::days(12),
        ..GeneratorConfig::default()
    };
    let produced = assign_offsets(&config.topic, generate::generate(&config));
    for (_, event) in deliveries(&produced, 100, 0, 0) {
        app.ingest.handle(&event).await.unwrap();
    }
    for kind in WindowKind::ALL {
        app.finalize.handle(kind).await.unwrap();
    }

    let after = samples(&exporter.read(Utc::now()).await);
    for kind in TableKind::ALL {
        let name = app.lake.table_name(kind);
        let series = format!("iceberg_table_records{{table_name=\"{name}\"}}");
        if app.lake.existing_table(kind).await.unwrap().is_none() {
            // No window of the kind closed yet, so finalize never created its table.
            assert!(!after.contains_key(&series), "{name} does not exist");
            continue;
        }
        assert_eq!(
            after[&format!("iceberg_table_records{{table_name=\"{name}\"}}")],
            app.lake.row_count(kind).await.unwrap() as f64,
            "{name}"
        );
        assert!(after[&format!("iceberg_snapshot_age_seconds{{table_name=\"{name}\"}}")] < 600.0, "{name}");
    }
    let errors: f64 = after.iter().filter(|(k, _)| k.starts_with("error_rows_last_hour{")).map(|(_, v)| v).sum();
    assert_eq!(errors, app.lake.row_count(TableKind::Errors).await.unwrap() as f64, "every error row is new");
    for kind in WindowKind::ALL {
        let open = app.store.open_keys(kind, chrono::DateTime::<Utc>::MAX_UTC).await.unwrap().len();
        assert_eq!(after[&format!("open_windows{{window_type=\"{kind}\"}}")], open as f64, "{kind}");
        let marker = app.store.close_marker(kind).await.unwrap().unwrap();
        assert_eq!(
            after[&format!("window_closed_through_timestamp_seconds{{window_type=\"{kind}\"}}")],
            marker.timestamp_millis() as f64 / 1e3
        );
    }
}
