//! `healthlake demo`: generated data through ingest and finalize on the embedded default.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::Duration;
use clap::Args;
use healthlake_core::WindowKind;
use healthlake_core::generate::{self, GeneratorConfig, WRITER_SCHEMAS};
use healthlake_lake::CatalogBackend;
use healthlake_pipeline::app::App;
use healthlake_pipeline::config::{SchemaRegistrySettings, Settings, StateStoreSettings};
use healthlake_pipeline::demo::{Delivery, assign_offsets, deliveries};
use healthlake_pipeline::system_clock;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Folder for the demo's catalog, warehouse and state (emptied first).
    #[arg(long, default_value = ".healthlake/demo")]
    dir: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Write what the generator says must land (row counts, offsets per partition) to this JSON
    /// file, for independent checks of the tables.
    #[arg(long)]
    expect_out: Option<PathBuf>,
}

pub(crate) async fn run(mut settings: Settings, args: DemoArgs) -> Result<()> {
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir).with_context(|| format!("emptying {}", args.dir.display()))?;
    }
    let dir = std::fs::canonicalize({
        std::fs::create_dir_all(&args.dir)?;
        &args.dir
    })?;
    let schemas = write_writer_schemas(&dir)?;
    settings.schema_registry = SchemaRegistrySettings::Directory(schemas);
    settings.catalog.backend = CatalogBackend::Sql { uri: format!("sqlite://{}", dir.join("catalog.db").display()) };
    settings.catalog.warehouse = format!("file://{}", dir.join("warehouse").display());
    settings.state = StateStoreSettings::Sqlite { dir: dir.join("state") };

    let config = args.data.generator(&settings.kafka_topic);
    let start = config.start;
    println!(
        "Generating {} records for {} users over {} partitions ({} .. {})",
        args.data.records,
        args.data.users,
        args.data.partitions,
        start.date_naive(),
        (start + config.span).date_naive()
    );
    let produced = assign_offsets(&config.topic, generate::generate(&config));
    let samples: usize = produced.iter().map(|(_, r)| r.expectation.samples()).sum();
    if let Some(path) = &args.expect_out {
        let (mut raw, mut errors) = (0usize, 0usize);
        let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
        for (coords, record) in &produced {
            match &record.expectation {
                generate::Expectation::Undecodable => errors += 1,
                generate::Expectation::Decoded { valid, invalid } => {
                    raw += valid.len();
                    errors += invalid;
                }
            }
            *offsets.entry(coords.partition).or_default() += 1;
        }
        let expected = serde_json::json!({
            "raw_rows": raw,
            "error_rows": errors,
            "records_per_partition": offsets,
            "catalog_name": settings.catalog.catalog_name,
            "catalog_db": dir.join("catalog.db"),
            "warehouse": settings.catalog.warehouse,
            "database": settings.catalog.database,
        });
        std::fs::write(path, serde_json::to_string_pretty(&expected)?)?;
    }
    let plan = deliveries(&produced, args.data.batch_size, 3, 4);
    // The demo is one short process: metrics go to an in-process Prometheus recorder and are
    // written out at the end instead of served.
    let metrics = if settings.metrics_enabled {
        Some(metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?)
    } else {
        None
    };
    let app = App::open(settings, system_clock()).await?;

    let bar = ProgressBar::new(plan.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} batches {msg}")?.progress_chars("=> "),
    );
    let started = Instant::now();
    let mut by_delivery: BTreeMap<&str, (usize, u64, u64)> = BTreeMap::new();
    for (i, (delivery, event)) in plan.iter().enumerate() {
        let report = app.ingest.handle(event).await.context("ingest")?;
        let label = match delivery {
            Delivery::First => "first delivery",
            Delivery::Duplicate => "duplicate delivery",
            Delivery::Regrouped => "regrouped redelivery",
        };
        let entry = by_delivery.entry(label).or_default();
        entry.0 += 1;
        entry.1 += report.raw_rows_written + report.error_rows_written;
        entry.2 += report.raw_rows_skipped + report.error_rows_skipped;
        if i % 10 == 9 {
            for kind in WindowKind::ALL {
                app.finalize.handle(kind).await.context("finalize")?;
            }
        }
        bar.set_message(format!("{} raw rows", report.raw_rows_written));
        bar.inc(1);
    }
    let mut emitted = BTreeMap::new();
    for kind in WindowKind::ALL {
        let report = app.finalize.handle(kind).await.context("finalize")?;
        emitted.insert(kind, report.watermark);
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    println!(
        "Applied {} deliveries ({} samples in {} records) in {:.1}s",
        plan.len(),
        samples,
        produced.len(),
        elapsed.as_secs_f64()
    );
    for (label, (n, written, skipped)) in &by_delivery {
        println!(
            "  {label:<22} {n:>4} batches, {written:>7} rows written, {skipped:>7} rows skipped as already committed"
        );
    }
    if let Some(Some(wm)) = emitted.get(&WindowKind::Daily) {
        println!("Watermark: {wm}");
    }
    crate::summary::print(&app, 3).await?;
    if let Some(handle) = metrics {
        let path = dir.join("metrics.prom");
        std::fs::write(&path, handle.render())?;
        println!("\nMetrics (Prometheus text format): {}", path.display());
    }
    println!(
        "\nTables: catalog {:?} (pyiceberg SqlCatalog name {:?}), warehouse {}",
        app.settings.catalog.backend, app.settings.catalog.catalog_name, app.settings.catalog.warehouse
    );
    Ok(())
}

/// What to generate, shared by `demo` and `events`.
#[derive(Args)]
pub(crate) struct DataArgs {
    #[arg(long, default_value_t = 60)]
    users: usize,
    /// Kafka records (payloads) to generate; each holds 1-8 samples.
    #[arg(long, default_value_t = 6_000)]
    records: usize,
    #[arg(long, default_value_t = 6)]
    pub(crate) partitions: i32,
    /// Records per delivered batch (the event source mapping's BatchSize).
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Days of event time the data spans, ending a week ago.
    #[arg(long, default_value_t = 75)]
    days: i64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

impl DataArgs {
    pub(crate) fn generator(&self, topic: &str) -> GeneratorConfig {
        GeneratorConfig {
            seed: self.seed,
            topic: topic.to_string(),
            partitions: self.partitions,
            users: self.users,
            records: self.records,
            start: chrono::Utc::now() - Duration::days(self.days + 7),
            span: Duration::days(self.days),
            ..GeneratorConfig::default()
        }
    }
}

/// Writes the generator's writer schemas as `<dir>/schemas/<id>.avsc`, a file schema source.
fn write_writer_schemas(dir: &std::path::Path) -> Result<PathBuf> {
    let schemas = dir.join("schemas");
    std::fs::create_dir_all(&schemas)?;
    for (id, text) in WRITER_SCHEMAS {
        std::fs::write(schemas.join(format!("{id}.avsc")), text)?;
    }
    Ok(std::fs::canonicalize(schemas)?)
}

#[derive(Args)]
pub(crate) struct EventsArgs {
    /// Folder for `NNNNN.json` events and `schemas/<id>.avsc`.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

pub(crate) fn write_events(settings: &Settings, args: EventsArgs) -> Result<()> {
    let schemas = write_writer_schemas(&args.out)?;
    let config = args.data.generator(&settings.kafka_topic);
    let produced = assign_offsets(&config.topic, generate::generate(&config));
    let plan = deliveries(&produced, args.data.batch_size, 0, 0);
    for (i, (_, event)) in plan.iter().enumerate() {
        std::fs::write(args.out.join(format!("{i:05}.json")), serde_json::to_string_pretty(event)?)?;
    }
    println!(
        "wrote {} events ({} records) to {}; set SCHEMA_REGISTRY_URL=file://{}",
        plan.len(),
        produced.len(),
        args.out.display(),
        schemas.display()
    );
    Ok(())
}
