//! `healthlake maintain`: table maintenance. Today: snapshot expiry (each table's own
//! `history.expire.*` policy) and orphan file removal (what lost commit races and crashed writers
//! leave); compaction and manifest rewrite are to come.

use anyhow::{Result, bail};
use chrono::{Duration, Utc};
use clap::{Args, ValueEnum};
use healthlake_core::WindowKind;
use healthlake_lake::{ExpiryPolicy, TableKind};
use healthlake_pipeline::app::App;

#[derive(Args)]
pub(crate) struct MaintainArgs {
    /// The table (all five when not given).
    #[arg(long, value_enum)]
    table: Option<TableArg>,
    /// Expire snapshots older than the table's `history.expire.max-snapshot-age-ms`, keeping its
    /// `history.expire.min-snapshots-to-keep`, and delete the files only they reached.
    #[arg(long)]
    expire: bool,
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
    if !args.orphans && !args.expire {
        bail!("say what to do: --expire and/or --orphans (compaction and manifest rewrite are not built yet)");
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
        // Expiry first: the files it frees are deleted by it, not left for orphan removal.
        if args.expire {
            expire(app, kind, &args).await?;
        }
        if !args.orphans {
            continue;
        }
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

async fn expire(app: &App, kind: TableKind, args: &MaintainArgs) -> Result<()> {
    let Some(table) = app.lake.existing_table(kind).await? else { return Ok(()) };
    let policy = ExpiryPolicy::of_table(&table, Utc::now());
    let report = app.lake.expire_snapshots(kind, policy, args.dry_run).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let verb = if report.dry_run { "would expire (dry run)" } else { "expired" };
        println!(
            "{}: {} snapshots, {verb} {} older than {} (keeping at least {}), {} files only they reached {}",
            report.table,
            report.snapshots_before,
            report.snapshots_expired.len(),
            policy.older_than.to_rfc3339(),
            policy.keep_at_least,
            report.files_deleted,
            if report.dry_run { "would be deleted" } else { "deleted" }
        );
    }
    Ok(())
}
