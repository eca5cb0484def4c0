//! `healthlake maintain`: table maintenance, the maintain function's use case run by hand on one
//! table or all five: compaction, manifest rewrite, snapshot expiry (with old metadata files)
//! and orphan removal, each table in that order.

use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use healthlake_pipeline::app::App;
use healthlake_pipeline::backfill::Progress;
use healthlake_pipeline::maintain::{MaintainRequest, MaintainedTable, MaintenanceOperation};

#[derive(Args)]
pub(crate) struct MaintainArgs {
    /// The table (all five when not given).
    #[arg(long, value_parser = parse_table)]
    table: Option<MaintainedTable>,
    /// Rewrite each partition's small files (below 3/4 of `write.target-file-size-bytes`) as
    /// target-size files sorted by the table's natural order.
    #[arg(long)]
    compact: bool,
    /// Merge the small manifests of the current snapshot.
    #[arg(long)]
    rewrite_manifests: bool,
    /// Expire snapshots older than the table's `history.expire.max-snapshot-age-ms`, keeping its
    /// `history.expire.min-snapshots-to-keep`; delete the files only they reached and the
    /// metadata files older than the metadata log.
    #[arg(long)]
    expire: bool,
    /// Remove files under the table's location that no metadata file references.
    #[arg(long)]
    orphans: bool,
    /// Compact only partitions of the last this many days.
    #[arg(long)]
    recent_days: Option<u32>,
    /// Compact a partition only when it has at least this many small files (default 5).
    #[arg(long)]
    min_input_files: Option<usize>,
    /// Compaction's output file size instead of the table's `write.target-file-size-bytes`.
    #[arg(long)]
    target_file_size: Option<u64>,
    /// Expire snapshots older than this many hours instead of the table's property.
    #[arg(long)]
    max_snapshot_age_hours: Option<f64>,
    /// Keep at least this many snapshots instead of the table's property.
    #[arg(long)]
    keep_snapshots: Option<usize>,
    /// Only files last modified this many days ago or earlier are orphans (at least 1: a writer
    /// may be about to commit a newer file).
    #[arg(long, default_value_t = 3.0)]
    grace_days: f64,
    /// Report what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the reports as JSON, one line per table.
    #[arg(long)]
    json: bool,
}

fn parse_table(name: &str) -> Result<MaintainedTable, String> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| format!("{name} is not a table: raw, errors, daily, weekly or monthly"))
}

pub(crate) async fn run(app: &App, args: MaintainArgs) -> Result<()> {
    let operations: Vec<MaintenanceOperation> = [
        (args.compact, MaintenanceOperation::Compact),
        (args.rewrite_manifests, MaintenanceOperation::RewriteManifests),
        (args.expire, MaintenanceOperation::Expire),
        (args.orphans, MaintenanceOperation::Orphans),
    ]
    .into_iter()
    .filter_map(|(asked, operation)| asked.then_some(operation))
    .collect();
    if operations.is_empty() {
        bail!("say what to do: --compact, --rewrite-manifests, --expire and/or --orphans");
    }
    let tables = match args.table {
        Some(table) => vec![table],
        None => MaintainedTable::ALL.to_vec(),
    };
    let progress: Progress = if args.json { Arc::new(|_: &str| {}) } else { Arc::new(|line: &str| println!("{line}")) };
    for table in tables {
        let request = MaintainRequest {
            table,
            operations: operations.clone(),
            recent_days: args.recent_days,
            grace_days: args.grace_days,
            min_input_files: args.min_input_files,
            target_file_size_bytes: args.target_file_size,
            max_snapshot_age_hours: args.max_snapshot_age_hours,
            min_snapshots_to_keep: args.keep_snapshots,
            dry_run: args.dry_run,
        };
        let report = app.maintain.handle(&request, None, progress.clone()).await?;
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else if let Some(orphans) = &report.orphans {
            for path in &orphans.orphans {
                println!("  orphan{}: {path}", if report.dry_run { " (dry run, kept)" } else { "" });
            }
        }
    }
    Ok(())
}
