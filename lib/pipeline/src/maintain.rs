//! The maintain use case: table maintenance on one table, as the `maintain` function's schedules
//! and `healthlake maintain` ask for it. The operations run in a fixed order, each the lake's own
//! (lib/lake): compaction first (its replaced files are then only in older snapshots), manifest
//! rewrite (over the compacted files), snapshot expiry with the old metadata files (deleting what
//! only the expired snapshots reached), orphan removal last (what lost races and crashes left).
//!
//! Tables created by an older version first get the properties declared since (never changing a
//! value already set), so every table follows the same maintenance policy.
//!
//! Bounded: with a deadline (a Lambda's remaining time less a margin), compaction stops taking
//! partitions and no later operation starts once it has passed; the report says `complete:
//! false`, and the next run continues, since every operation plans on the table as it is.

use std::sync::Arc;
use std::time::Instant;

use chrono::Duration;
use healthlake_core::WindowKind;
use healthlake_lake::{
    CompactionOptions, CompactionReport, ExpiryPolicy, ExpiryReport, LakeError, Lakehouse, ManifestRewriteReport,
    MetadataFilesReport, OrphanReport, S3Settings, TableKind,
};
use serde::{Deserialize, Serialize};

use crate::Clock;
use crate::backfill::Progress;

/// The table to maintain, as requests name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MaintainedTable {
    Raw,
    Errors,
    Daily,
    Weekly,
    Monthly,
}

impl MaintainedTable {
    pub const ALL: [MaintainedTable; 5] = [Self::Raw, Self::Errors, Self::Daily, Self::Weekly, Self::Monthly];
}

impl From<MaintainedTable> for TableKind {
    fn from(table: MaintainedTable) -> Self {
        match table {
            MaintainedTable::Raw => TableKind::Raw,
            MaintainedTable::Errors => TableKind::Errors,
            MaintainedTable::Daily => TableKind::Aggregate(WindowKind::Daily),
            MaintainedTable::Weekly => TableKind::Aggregate(WindowKind::Weekly),
            MaintainedTable::Monthly => TableKind::Aggregate(WindowKind::Monthly),
        }
    }
}

/// One maintenance operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceOperation {
    Compact,
    RewriteManifests,
    Expire,
    Orphans,
}

/// The smallest orphan grace period: a writer's files must never be taken before its commit.
pub const MIN_GRACE_DAYS: f64 = 1.0;

/// What to do, as the `maintain` function's input and `healthlake maintain` build it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaintainRequest {
    pub table: MaintainedTable,
    /// Run in the order compact, rewrite_manifests, expire, orphans whatever order is given.
    pub operations: Vec<MaintenanceOperation>,
    /// Compact only partitions whose period started within this many days.
    #[serde(default)]
    pub recent_days: Option<u32>,
    /// Orphans must be older than this (at least 1).
    #[serde(default = "default_grace_days")]
    pub grace_days: f64,
    /// Compaction's minimum number of small files in a partition (5 when not given).
    #[serde(default)]
    pub min_input_files: Option<usize>,
    /// Compaction's output file size; the table's `write.target-file-size-bytes` when not given.
    #[serde(default)]
    pub target_file_size_bytes: Option<u64>,
    /// Expire snapshots older than this many hours instead of the table's
    /// `history.expire.max-snapshot-age-ms`.
    #[serde(default)]
    pub max_snapshot_age_hours: Option<f64>,
    /// Keep at least this many snapshots instead of the table's
    /// `history.expire.min-snapshots-to-keep`.
    #[serde(default)]
    pub min_snapshots_to_keep: Option<usize>,
    #[serde(default)]
    pub dry_run: bool,
}

fn default_grace_days() -> f64 {
    3.0
}

impl MaintainRequest {
    pub fn validate(&self) -> Result<(), MaintainError> {
        let invalid = |why: String| Err(MaintainError::InvalidRequest(why));
        if self.operations.is_empty() {
            return invalid("no operation: name compact, rewrite_manifests, expire and/or orphans".into());
        }
        // NaN is refused too.
        if self.grace_days.is_nan() || self.grace_days < MIN_GRACE_DAYS {
            return invalid(format!(
                "grace_days {} is below {MIN_GRACE_DAYS}: a writer's files could be taken before its commit lands",
                self.grace_days
            ));
        }
        if let Some(hours) = self.max_snapshot_age_hours
            && (hours.is_nan() || hours < 0.0)
        {
            return invalid(format!("max_snapshot_age_hours {hours} is not a duration"));
        }
        if self.min_snapshots_to_keep == Some(0) {
            return invalid("min_snapshots_to_keep 0 would expire the current snapshot".into());
        }
        if self.target_file_size_bytes == Some(0) {
            return invalid("target_file_size_bytes 0 is not a size".into());
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MaintainError {
    #[error("invalid maintenance request: {0}")]
    InvalidRequest(String),
    #[error("iceberg: {0}")]
    Lake(#[from] LakeError),
}

impl MaintainError {
    pub fn is_retryable(&self) -> bool {
        match self {
            MaintainError::InvalidRequest(_) => false,
            MaintainError::Lake(e) => e.is_retryable(),
        }
    }
}

/// What a run did, per operation (absent: not asked for, or not reached before the deadline).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintainReport {
    pub table: String,
    /// Properties healthlake declares that the table (created by an older version) lacked, set
    /// before anything else so that the operations follow them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties_declared: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compaction: Option<CompactionReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifests: Option<ManifestRewriteReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<ExpiryReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_files: Option<MetadataFilesReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orphans: Option<OrphanReport>,
    /// False when the deadline cut the run short: the next run continues.
    pub complete: bool,
    pub dry_run: bool,
}

pub struct Maintainer {
    lake: Arc<Lakehouse>,
    s3: S3Settings,
    clock: Clock,
}

impl Maintainer {
    pub fn new(lake: Arc<Lakehouse>, s3: S3Settings, clock: Clock) -> Self {
        Self { lake, s3, clock }
    }

    #[tracing::instrument(skip_all, fields(table = ?request.table))]
    pub async fn handle(
        &self,
        request: &MaintainRequest,
        deadline: Option<Instant>,
        progress: Progress,
    ) -> Result<MaintainReport, MaintainError> {
        request.validate()?;
        let kind = TableKind::from(request.table);
        let mut report = MaintainReport {
            table: self.lake.table_name(kind).to_string(),
            complete: true,
            dry_run: request.dry_run,
            ..Default::default()
        };
        if !request.dry_run {
            report.properties_declared = self.lake.declare_missing_properties(kind).await?;
            if !report.properties_declared.is_empty() {
                progress(&format!("{}: declared {}", report.table, report.properties_declared.join(", ")));
            }
        }
        let mut operations = request.operations.clone();
        operations.sort();
        operations.dedup();
        for operation in operations {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                progress(&format!("{}: deadline reached before {operation:?}; the next run continues", report.table));
                report.complete = false;
                break;
            }
            match operation {
                MaintenanceOperation::Compact => {
                    let compaction = self.compact(kind, request, deadline).await?;
                    report.complete &= compaction.complete;
                    progress(&describe_compaction(&compaction));
                    report.compaction = Some(compaction);
                }
                MaintenanceOperation::RewriteManifests => {
                    let manifests = self.lake.rewrite_manifests(kind, request.dry_run).await?;
                    progress(&format!(
                        "{}: manifests {} -> {} ({} merged, {} entries)",
                        manifests.table,
                        manifests.manifests_before,
                        manifests.manifests_after,
                        manifests.manifests_replaced,
                        manifests.entries
                    ));
                    report.manifests = Some(manifests);
                }
                MaintenanceOperation::Expire => {
                    let Some(expiry) = self.expire(kind, request).await? else { continue };
                    progress(&format!(
                        "{}: {} snapshots, {} expired, {} files only they reached deleted",
                        expiry.table,
                        expiry.snapshots_before,
                        expiry.snapshots_expired.len(),
                        expiry.files_deleted
                    ));
                    report.expiry = Some(expiry);
                    let metadata = self.lake.delete_old_metadata(kind, &self.s3, request.dry_run).await?;
                    progress(&format!(
                        "{}: {} metadata files retained, {} older ones deleted",
                        metadata.table,
                        metadata.retained,
                        metadata.deleted.len()
                    ));
                    report.metadata_files = Some(metadata);
                }
                MaintenanceOperation::Orphans => {
                    let cutoff = (self.clock)() - Duration::milliseconds((request.grace_days * 86_400_000.0) as i64);
                    let orphans = self.lake.remove_orphan_files(kind, &self.s3, cutoff, request.dry_run).await?;
                    progress(&format!(
                        "{}: {} files listed, {} referenced, {} orphans older than {} removed, {} newer left",
                        orphans.table,
                        orphans.files_listed,
                        orphans.files_referenced,
                        orphans.orphans.len(),
                        cutoff.to_rfc3339(),
                        orphans.too_recent
                    ));
                    report.orphans = Some(orphans);
                }
            }
        }
        crate::metrics::record_maintenance(&report.table, &report);
        Ok(report)
    }

    async fn compact(
        &self,
        kind: TableKind,
        request: &MaintainRequest,
        deadline: Option<Instant>,
    ) -> Result<CompactionReport, MaintainError> {
        let defaults = CompactionOptions::default();
        let since = request.recent_days.map(|days| ((self.clock)() - Duration::days(days.into())).date_naive());
        let options = CompactionOptions {
            target_file_size: request.target_file_size_bytes,
            min_input_files: request.min_input_files.unwrap_or(defaults.min_input_files),
            since,
            deadline,
            dry_run: request.dry_run,
            ..defaults
        };
        Ok(self.lake.compact(kind, &options).await?)
    }

    /// Expiry by the table's own policy, with the request's overrides. `None`: no such table yet.
    async fn expire(&self, kind: TableKind, request: &MaintainRequest) -> Result<Option<ExpiryReport>, MaintainError> {
        let Some(table) = self.lake.existing_table(kind).await? else { return Ok(None) };
        let now = (self.clock)();
        let mut policy = ExpiryPolicy::of_table(&table, now);
        if let Some(hours) = request.max_snapshot_age_hours {
            policy.older_than = now - Duration::milliseconds((hours * 3_600_000.0) as i64);
        }
        if let Some(keep) = request.min_snapshots_to_keep {
            policy.keep_at_least = keep;
        }
        Ok(Some(self.lake.expire_snapshots(kind, policy, request.dry_run).await?))
    }
}

fn describe_compaction(c: &CompactionReport) -> String {
    format!(
        "{}: {} data files -> {}; {} of {} partitions due compacted, {} files ({} bytes) rewritten as {} ({} bytes), \
         target {} bytes{}",
        c.table,
        c.files_before,
        c.files_after,
        c.partitions_compacted,
        c.partitions_due,
        c.files_rewritten,
        c.bytes_rewritten,
        c.files_written,
        c.bytes_written,
        c.target_file_size,
        if c.complete { "" } else { "; stopped by the budget, the next run continues" }
    )
}

/// When the time left runs out: the deadline less a margin for the group in flight and the
/// commit (a Lambda is stopped at its deadline whatever it is doing).
pub fn deadline_with_margin(remaining: std::time::Duration, margin: std::time::Duration) -> Instant {
    Instant::now() + remaining.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> Result<MaintainRequest, String> {
        let request: MaintainRequest = serde_json::from_str(json).map_err(|e| e.to_string())?;
        request.validate().map_err(|e| e.to_string())?;
        Ok(request)
    }

    #[test]
    fn schedule_inputs_parse_and_bad_ones_are_refused_with_the_reason() {
        let hourly = request(r#"{"table":"raw","operations":["compact"],"recent_days":2}"#).unwrap();
        assert_eq!((hourly.table, hourly.recent_days, hourly.grace_days), (MaintainedTable::Raw, Some(2), 3.0));
        let daily =
            request(r#"{"table":"weekly","operations":["orphans","expire","rewrite_manifests","compact"]}"#).unwrap();
        assert_eq!(daily.operations.len(), 4);
        assert!(request(r#"{"table":"hourly","operations":["compact"]}"#).is_err());
        assert!(request(r#"{"table":"raw","operations":["vacuum"]}"#).is_err());
        assert!(request(r#"{"table":"raw","operations":["compact"],"dryrun":true}"#).is_err());
        assert!(request(r#"{"table":"raw","operations":[]}"#).unwrap_err().contains("no operation"));
        let grace = request(r#"{"table":"raw","operations":["orphans"],"grace_days":0.5}"#).unwrap_err();
        assert!(grace.contains("grace_days 0.5"), "{grace}");
        assert!(request(r#"{"table":"raw","operations":["expire"],"min_snapshots_to_keep":0}"#).is_err());
    }
}
