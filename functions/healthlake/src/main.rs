//! `healthlake`: run the pipeline on the embedded default, with no server at all.
//!
//! - `healthlake demo` generates realistic batches and runs ingest and finalize on them;
//! - `healthlake invoke ingest --event FILE_OR_DIR` runs the ingest handler on Kafka events (the
//!   JSON `cargo lambda invoke --data-file` takes);
//! - `healthlake invoke finalize --kind daily|weekly|monthly` closes due windows;
//! - `healthlake backfill --from T --to T [--dry-run]` recomputes aggregates from the raw table;
//! - `healthlake replay FILE [--dry-run]` applies a batch stored by the on-failure destination;
//! - `healthlake local` consumes a topic as the Lambda event source mapping would and invokes
//!   ingest (in process, or over `cargo lambda watch`), plus the finalize schedule;
//! - `healthlake produce` writes realistic payloads to a topic.
//!
//! They read the same environment as the Lambda functions.

mod demo;
mod exporter;
mod kafka;
mod maintain;
mod replay;
mod summary;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use aws_lambda_events::event::kafka::KafkaEvent;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use healthlake_core::WindowKind;
use healthlake_pipeline::app::App;
use healthlake_pipeline::backfill::{BackfillRequest, Progress};
use healthlake_pipeline::config::{LogFormat, Settings};
use healthlake_pipeline::system_clock;

#[derive(Parser)]
#[command(name = "healthlake", version, about = "Health data from Kafka into Apache Iceberg tables")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate realistic data and run the whole pipeline on it, embedded.
    Demo(demo::DemoArgs),
    /// Run a handler on given input.
    Invoke {
        #[command(subcommand)]
        handler: Invoke,
        /// Write the metrics of this run (Prometheus text format) to this file at the end.
        #[arg(long, global = true)]
        metrics_out: Option<PathBuf>,
    },
    /// Write generated Kafka events (as the event source mapping sends them) to JSON files, and
    /// the writer schemas they reference, for `invoke ingest` or `cargo lambda invoke`.
    Events(demo::EventsArgs),
    /// Recompute the aggregates of every window touching a time range from health_data_raw and
    /// upsert those that differ (the backfill function's logic).
    Backfill(BackfillArgs),
    /// Apply a batch the on-failure destination stored (a file, or a directory of them in name
    /// order) exactly once, whatever the stream did since; names the closed windows to backfill.
    Replay(replay::ReplayArgs),
    /// Consume the topic as the Lambda event source mapping does (consumer group, batches,
    /// commits after success, retries, on-failure destination) and invoke ingest; run the
    /// finalize schedule alongside.
    Local(kafka::LocalArgs),
    /// Produce realistic payloads (Confluent wire format, keyed by userId) to the topic.
    Produce(kafka::ProduceArgs),
    /// Table maintenance: `--expire` expires snapshots by each table's history.expire.*
    /// properties; `--orphans` removes files no metadata references (older than `--grace-days`,
    /// 3 by default); `--dry-run` reports without changing anything.
    Maintain(maintain::MaintainArgs),
    /// Serve pipeline health read from the stores (Kafka lag, snapshots, windows, error rows)
    /// as Prometheus metrics on HEALTHLAKE_EXPORTER_PORT (9250).
    Exporter,
    /// Print rows per table, errors by type and a few aggregate rows.
    Summary {
        /// Aggregate rows to show per window kind.
        #[arg(long, default_value_t = 3)]
        rows: usize,
    },
}

#[derive(Subcommand)]
enum Invoke {
    /// Apply Kafka event(s): a JSON file, or a directory of them applied in name order.
    Ingest {
        #[arg(long)]
        event: PathBuf,
    },
    /// Close the windows of one kind that are due.
    Finalize {
        #[arg(long)]
        kind: WindowKind,
    },
}

#[derive(clap::Args)]
struct BackfillArgs {
    /// Start of the event-time range (RFC 3339, or a date for its midnight UTC).
    #[arg(long, value_parser = parse_time)]
    from: DateTime<Utc>,
    /// End of the range, exclusive.
    #[arg(long, value_parser = parse_time)]
    to: DateTime<Utc>,
    /// Window kinds (all when not given).
    #[arg(long = "kind", value_delimiter = ',')]
    kinds: Vec<WindowKind>,
    #[arg(long = "data-type", value_delimiter = ',')]
    data_types: Vec<String>,
    #[arg(long = "user-id", value_delimiter = ',')]
    user_ids: Vec<String>,
    /// Fold in samples that arrived after their window closed (late_record errors).
    #[arg(long)]
    include_late: bool,
    /// Report what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Rewrite every recomputed window, changed or not.
    #[arg(long)]
    force: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| format!("{text:?} is neither RFC 3339 nor YYYY-MM-DD"))
}

async fn backfill(app: &App, args: BackfillArgs) -> Result<()> {
    let request = BackfillRequest {
        from: args.from,
        to: args.to,
        window_kinds: args.kinds,
        data_types: args.data_types,
        user_ids: args.user_ids,
        include_late: args.include_late,
        dry_run: args.dry_run,
        force: args.force,
    };
    let progress: Progress = std::sync::Arc::new(|line: &str| eprintln!("backfill: {line}"));
    let report = app.backfill.handle(&request, progress).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (kind, k) in &report.kinds {
            println!(
                "{kind}: {} windows recomputed, {} changed, {} still open, {} rows {}",
                k.windows_recomputed,
                k.windows_changed,
                k.windows_skipped_open,
                k.rows_upserted,
                if report.dry_run { "(dry run: nothing written)" } else { "written" }
            );
            for example in &k.examples {
                println!("  e.g. {example}");
            }
        }
    }
    Ok(())
}

fn init_tracing(settings: &Settings, quiet: bool) {
    let level = match settings.log_level.as_str() {
        "WARNING" => "warn".to_string(),
        other => other.to_ascii_lowercase(),
    };
    let filter = if quiet { "warn".to_string() } else { level };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

pub(crate) fn event_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("no *.json events in {}", path.display());
        }
        Ok(files)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let settings = Settings::from_env().context("configuration")?;
    match cli.command {
        Command::Demo(args) => {
            init_tracing(&settings, true);
            demo::run(settings, args).await
        }
        Command::Events(args) => demo::write_events(&settings, args),
        Command::Invoke { handler, metrics_out } => {
            init_tracing(&settings, false);
            let metrics = match &metrics_out {
                Some(_) => Some(metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?),
                None => None,
            };
            let app = App::open(settings, system_clock()).await?;
            let result = invoke(&app, handler).await;
            if let (Some(path), Some(handle)) = (metrics_out, metrics) {
                std::fs::write(&path, handle.render()).with_context(|| format!("writing {}", path.display()))?;
            }
            result
        }
        Command::Backfill(args) => {
            init_tracing(&settings, true);
            let app = App::open(settings, system_clock()).await?;
            backfill(&app, args).await
        }
        Command::Replay(args) => {
            init_tracing(&settings, true);
            let app = App::open(settings, system_clock()).await?;
            replay::run(&app, args).await
        }
        Command::Local(args) => {
            init_tracing(&settings, false);
            kafka::local(settings, args).await
        }
        Command::Produce(args) => {
            init_tracing(&settings, true);
            kafka::produce(settings, args).await
        }
        Command::Maintain(args) => {
            init_tracing(&settings, true);
            let app = App::open(settings, system_clock()).await?;
            maintain::run(&app, args).await
        }
        Command::Exporter => {
            init_tracing(&settings, false);
            exporter::run(settings).await
        }
        Command::Summary { rows } => {
            init_tracing(&settings, true);
            let app = App::open(settings, system_clock()).await?;
            summary::print(&app, rows).await
        }
    }
}

async fn invoke(app: &App, handler: Invoke) -> Result<()> {
    match handler {
        Invoke::Ingest { event } => {
            for file in event_files(&event)? {
                let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
                let event: KafkaEvent =
                    serde_json::from_str(&text).with_context(|| format!("{} is not a Kafka event", file.display()))?;
                let report =
                    app.ingest.handle(&event).await.with_context(|| format!("ingesting {}", file.display()))?;
                println!(
                    "{}: {} records → {} raw rows, {} error rows ({} already committed, skipped)",
                    file.display(),
                    report.records,
                    report.raw_rows_written,
                    report.error_rows_written,
                    report.raw_rows_skipped + report.error_rows_skipped
                );
            }
            Ok(())
        }
        Invoke::Finalize { kind } => {
            let report = app.finalize.handle(kind).await?;
            println!(
                "{kind}: watermark {}, closed through {}, {} windows emitted ({} updated by late data), {} closed",
                report.watermark.map(|w| w.to_rfc3339()).unwrap_or_else(|| "none yet".into()),
                report.closed_through.map(|w| w.to_rfc3339()).unwrap_or_else(|| "-".into()),
                report.windows_emitted,
                report.windows_updated,
                report.windows_closed
            );
            Ok(())
        }
    }
}
