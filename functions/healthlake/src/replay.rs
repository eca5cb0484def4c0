//! `healthlake replay`: batches of the on-failure destination applied exactly once.

use std::path::PathBuf;

use anyhow::{Context, Result};
use healthlake_pipeline::app::App;
use healthlake_pipeline::replay::{ReplayReport, StoredBatch};

#[derive(clap::Args)]
pub(crate) struct ReplayArgs {
    /// A document of the on-failure destination (or a bare Kafka event), or a directory of them.
    file: PathBuf,
    /// Report what would be written; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the reports as JSON, one per line.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(app: &App, args: ReplayArgs) -> Result<()> {
    for file in crate::event_files(&args.file)? {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let stored = StoredBatch::parse(&text).with_context(|| format!("{} is not a stored batch", file.display()))?;
        let report = app
            .replay
            .handle(&stored.event, args.dry_run)
            .await
            .with_context(|| format!("replaying {}", file.display()))?;
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print(&file, stored.failure.as_deref(), &report);
        }
    }
    Ok(())
}

fn print(file: &std::path::Path, failure: Option<&str>, r: &ReplayReport) {
    let verb = if r.dry_run { "would write (dry run)" } else { "wrote" };
    println!("{} [{}]", file.display(), r.batch_id);
    if let Some(failure) = failure {
        println!("  failed with: {failure}");
    }
    println!(
        "  {} records: {} already applied by the stream, {} replayed ({} samples aggregated)",
        r.records, r.records_already_applied, r.records_replayed, r.samples_aggregated
    );
    let by_type: Vec<String> = r.errors_by_type.iter().map(|(t, n)| format!("{t}: {n}")).collect();
    println!("  {verb} {} raw rows, {} error rows ({})", r.raw_rows, r.error_rows, by_type.join(", "));
    if !r.tables_already_replayed.is_empty() {
        println!("  already replayed into: {}", r.tables_already_replayed.join(", "));
    }
    if let Some(hint) = &r.backfill {
        println!("  samples met closed windows ({}); fold them in with:", hint.windows.join(", "));
        println!("    {}", hint.command);
    }
}
