//! `healthlake maintain`: table maintenance. Today: removing orphan files (what lost commit
//! races and crashed writers leave); compaction, manifest rewrite and snapshot expiry are to come.

use anyhow::{Result, bail};
use chrono::{Duration, Utc};
use clap::{Args, ValueEnum};
use healthlake_core::WindowKind;
use healthlake_lake::TableKind;
use healthlake_pipeline::app::App;

#[derive(Args)]
pub(crate) struct MaintainArgs {
    /// The table (all five when not given).
    #[arg(long, value_enum)]
    table: Option<TableArg>,
    /// Remove files under the table's location that no metadata file references.
    #[arg(long)]
    orphans: bool,
    /// Only files last modified this many days ago or earlier are orphans (at least 1: a writer
    /// may be about to commit a newer file).
    #[arg(long, default_value_t = 3.0)]
    grace_days: f64,
    /// List what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the reports as JSON, one per line.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum TableArg {
    Raw,
    Errors,
    Daily,
    Weekly,
    Monthly,
}

impl From<TableArg> for TableKind {
    fn from(table: TableArg) -> Self {
        match table {
            TableArg::Raw => TableKind::Raw,
            TableArg::Errors => TableKind::Errors,
            TableArg::Daily => TableKind::Aggregate(WindowKind::Daily),
            TableArg::Weekly => TableKind::Aggregate(WindowKind::Weekly),
            TableArg::Monthly => TableKind::Aggregate(WindowKind::Monthly),
        }
    }
}

pub(crate) async fn run(app: &App, args: MaintainArgs) -> Result<()> {
    if !args.orphans {
        bail!("say what to do: --orphans (compaction, manifest rewrite and expiry are not built yet)");
    }
    // NaN is refused too.
    if args.grace_days.is_nan() || args.grace_days < 1.0 {
        bail!("--grace-days {} is below 1: a writer's files could be taken before its commit lands", args.grace_days);
    }
    let cutoff = Utc::now() - Duration::milliseconds((args.grace_days * 86_400_000.0) as i64);
    let tables: Vec<TableKind> = match args.table {
        Some(table) => vec![table.into()],
        None => TableKind::ALL.to_vec(),
    };
    for kind in tables {
        let report = app.lake.remove_orphan_files(kind, &app.settings.catalog.s3, cutoff, args.dry_run).await?;
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
            continue;
        }
        let verb = if report.dry_run { "would remove (dry run)" } else { "removed" };
        println!(
            "{}: {} files listed, {} referenced, {verb} {} orphans, {} unreferenced but newer than {}",
            report.table,
            report.files_listed,
            report.files_referenced,
            report.orphans.len(),
            report.too_recent,
            cutoff.to_rfc3339()
        );
        for path in &report.orphans {
            println!("  {path}");
        }
    }
    Ok(())
}
