//! `healthlake local` (the event source mapping and the finalize schedule, against a real broker)
//! and `healthlake produce` (realistic payloads to a topic).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use healthlake_core::generate::{self, Expectation};
use healthlake_kafka::produce::{self, Delivered};
use healthlake_kafka::settings::env as kafka_env;
use healthlake_kafka::{
    FailureDestination, FunctionInvoker, InProcessInvoker, InvokeApiInvoker, Runner, RunnerSettings,
};
use healthlake_pipeline::app::App;
use healthlake_pipeline::config::Settings;
use healthlake_pipeline::system_clock;

use crate::demo::DataArgs;

#[derive(Args)]
pub(crate) struct LocalArgs {
    /// BatchSize (HEALTHLAKE_BATCH_SIZE): records per invocation at most, 1..=10000.
    #[arg(long)]
    batch_size: Option<usize>,
    /// MaximumBatchingWindowInSeconds (HEALTHLAKE_MAXIMUM_BATCHING_WINDOW_SECONDS).
    #[arg(long)]
    batching_window: Option<f64>,
    /// TRIM_HORIZON or LATEST, for a group without committed offsets (HEALTHLAKE_STARTING_POSITION).
    #[arg(long)]
    starting_position: Option<String>,
    /// MaximumRetryAttempts: -1 retries forever (HEALTHLAKE_MAXIMUM_RETRY_ATTEMPTS).
    #[arg(long, allow_hyphen_values = true)]
    maximum_retry_attempts: Option<i64>,
    /// On-failure destination, file:// or s3:// prefix (HEALTHLAKE_ON_FAILURE_DESTINATION).
    #[arg(long)]
    on_failure: Option<String>,
    /// Seconds between finalize rounds, 0 for none (HEALTHLAKE_FINALIZE_EVERY_SECONDS).
    #[arg(long)]
    finalize_every: Option<f64>,
    /// Invocations in flight at once, one per partition at most (HEALTHLAKE_MAX_CONCURRENCY;
    /// default: one per partition).
    #[arg(long)]
    max_concurrency: Option<usize>,
    /// Stop after this many seconds without a record (after a last finalize round).
    #[arg(long)]
    exit_when_idle: Option<f64>,
    /// Invoke the functions through this Invoke API endpoint (`cargo lambda watch`, e.g.
    /// http://127.0.0.1:9000) instead of in this process.
    #[arg(long)]
    invoke_url: Option<String>,
    #[arg(long, default_value = "healthlake-ingest")]
    ingest_function: String,
    #[arg(long, default_value = "healthlake-finalize")]
    finalize_function: String,
    /// Write the run's report (records, rows, seconds) as JSON to this file.
    #[arg(long)]
    report_out: Option<PathBuf>,
}

/// The environment with the command line's values put under their variables, so a bad value is
/// reported by the variable it stands for.
fn runner_settings(args: &LocalArgs) -> Result<RunnerSettings> {
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    let mut set = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            vars.insert(name.to_string(), value);
        }
    };
    set(kafka_env::BATCH_SIZE, args.batch_size.map(|v| v.to_string()));
    set(kafka_env::MAXIMUM_BATCHING_WINDOW, args.batching_window.map(|v| v.to_string()));
    set(kafka_env::STARTING_POSITION, args.starting_position.clone());
    set(kafka_env::MAXIMUM_RETRY_ATTEMPTS, args.maximum_retry_attempts.map(|v| v.to_string()));
    set(kafka_env::ON_FAILURE_DESTINATION, args.on_failure.clone());
    set(kafka_env::FINALIZE_EVERY, args.finalize_every.map(|v| v.to_string()));
    set(kafka_env::MAX_CONCURRENCY, args.max_concurrency.map(|v| v.to_string()));
    let mut settings = RunnerSettings::from_map(&vars).context("configuration")?;
    settings.exit_when_idle = args.exit_when_idle.map(std::time::Duration::from_secs_f64);
    Ok(settings)
}

pub(crate) async fn local(settings: Settings, args: LocalArgs) -> Result<()> {
    let runner_settings = runner_settings(&args)?;
    if settings.metrics_enabled {
        // A long-running process: metrics are scraped from /metrics on 127.0.0.1.
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], settings.prometheus_port));
        // Histograms with buckets (not summaries), so that Prometheus can aggregate them and
        // dashboards take quantiles over any range: milliseconds by default, seconds for lags.
        use metrics_exporter_prometheus::Matcher;
        const MILLIS: [f64; 14] = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1e3, 2.5e3, 5e3, 1e4, 3e4, 6e4];
        const SECONDS: [f64; 12] =
            [1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0, 86400.0, 604800.0];
        const RECORDS: [f64; 8] = [1.0, 10.0, 100.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0];
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(address)
            .set_buckets(&MILLIS)?
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)?
            .set_buckets_for_metric(Matcher::Full("event_source_batch_records".into()), &RECORDS)?
            .install()
            .with_context(|| format!("serving metrics on {address} (PROMETHEUS_PORT)"))?;
        healthlake_pipeline::metrics::register_failure_counters(&settings.catalog.tables);
        eprintln!("metrics: http://{address}/metrics");
    }
    let app = Arc::new(App::open(settings.clone(), system_clock()).await?);
    let destination = match &runner_settings.on_failure_destination {
        Some(prefix) => {
            Some(FailureDestination::new(prefix, healthlake_lake::file_io_for(prefix, &settings.catalog.s3)?))
        }
        None => None,
    };
    let invoker: Arc<dyn FunctionInvoker> = match &args.invoke_url {
        Some(url) => Arc::new(InvokeApiInvoker::new(url, &args.ingest_function, &args.finalize_function)),
        None => Arc::new(InProcessInvoker::new(app.clone())),
    };
    eprintln!(
        "consuming {} on {} as group {} ({:?}; BatchSize {}, window {:?}), invoking {}",
        runner_settings.kafka.topic,
        runner_settings.kafka.brokers,
        runner_settings.kafka.group_id,
        runner_settings.starting_position,
        runner_settings.limits.batch_size,
        runner_settings.limits.batching_window,
        args.invoke_url.as_deref().unwrap_or("the handlers in this process")
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        // Ctrl-C or SIGTERM: finish and commit the batch in flight, then stop.
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = stop_tx.send(true);
    });
    let runner = Runner::new(runner_settings, invoker, destination, &args.ingest_function);
    let report = runner.run(stop_rx).await?;
    let rows = report.raw_rows_written + report.error_rows_written;
    println!(
        "{} batches, {} records → {} raw rows + {} error rows ({} skipped as already committed), {} failed invocations, \
         {} batches to the on-failure destination, {} finalize rounds, in {:.1} s: {:.0} records/s, {:.0} rows/s",
        report.batches,
        report.records,
        report.raw_rows_written,
        report.error_rows_written,
        report.rows_skipped_as_committed,
        report.invocations_failed,
        report.batches_sent_to_destination,
        report.finalize_rounds,
        report.seconds,
        report.records as f64 / report.seconds.max(1e-9),
        rows as f64 / report.seconds.max(1e-9),
    );
    if let Some(path) = &args.report_out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct ProduceArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Records per second at most (default: as fast as the broker takes them).
    #[arg(long)]
    rate: Option<f64>,
    /// Create the topic (with --partitions) when it does not exist.
    #[arg(long)]
    create_topic: bool,
    /// Write what must land (each record's partition, offset and samples) to this JSON file, for
    /// independent checks of the tables.
    #[arg(long)]
    expect_out: Option<PathBuf>,
}

pub(crate) async fn produce(mut settings: Settings, args: ProduceArgs) -> Result<()> {
    healthlake_pipeline::schema_source::resolve_secret(&mut settings.schema_registry).await?;
    let kafka = healthlake_kafka::KafkaSettings::from_map(&std::env::vars().collect()).context("configuration")?;
    if args.create_topic && produce::ensure_topic(&kafka, args.data.partitions).await? {
        eprintln!("created topic {} with {} partitions", kafka.topic, args.data.partitions);
    }
    let ids = produce::register_writer_schemas(&settings.schema_registry, &kafka.topic).await?;
    let config = args.data.generator(&kafka.topic);
    let mut records = generate::generate(&config);
    for record in &mut records {
        produce::reframe(&mut record.value, &ids);
    }
    let started = std::time::Instant::now();
    let delivered = produce::produce(&kafka, &records, args.rate, &|n| eprintln!("produced {n} records")).await?;
    let seconds = started.elapsed().as_secs_f64();
    let samples: usize = records.iter().map(|r| r.expectation.samples()).sum();
    let mut per_partition: BTreeMap<i32, usize> = BTreeMap::new();
    for d in &delivered {
        *per_partition.entry(d.partition).or_default() += 1;
    }
    println!(
        "produced {} records ({samples} samples) to {} in {seconds:.1} s ({:.0} records/s); per partition {per_partition:?}",
        records.len(),
        kafka.topic,
        records.len() as f64 / seconds.max(1e-9)
    );
    if let Some(path) = &args.expect_out {
        std::fs::write(path, serde_json::to_string(&expectation(&kafka.topic, &records, &delivered))?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Per record: where it landed and what must come of it; per valid sample: what to aggregate.
fn expectation(topic: &str, records: &[generate::ProducedRecord], delivered: &[Delivered]) -> serde_json::Value {
    let mut rows = Vec::with_capacity(records.len());
    let mut samples = Vec::new();
    for (record, at) in records.iter().zip(delivered) {
        match &record.expectation {
            Expectation::Undecodable => rows.push(serde_json::json!([at.partition, at.offset, 0, 0, true])),
            Expectation::Decoded { valid, invalid } => {
                rows.push(serde_json::json!([at.partition, at.offset, valid.len(), invalid, false]));
                for s in valid {
                    samples.push(serde_json::json!([s.user_id, s.data_type, s.start.timestamp_millis(), s.value]));
                }
            }
        }
    }
    serde_json::json!({
        "topic": topic,
        "records": rows,
        "record_columns": ["partition", "offset", "valid_samples", "invalid_samples", "undecodable"],
        "samples": samples,
        "sample_columns": ["user_id", "data_type", "start_ms", "value"],
    })
}
