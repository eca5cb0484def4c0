//! Snapshot expiry: snapshots older than a cutoff leave the table metadata, and the files only
//! they reached (manifest lists, manifests, data files replaced by later commits) are deleted
//! once the new metadata is published.
//!
//! Never expired: the newest `keep_at_least` snapshots of main; every snapshot a branch or tag
//! points to; and the chain from the current snapshot back to the newest one carrying healthlake's
//! committed-offset map (and any carrying a replay record), so ingest still finds what it
//! committed (`offsets.rs` walks that ancestry) after other engines committed on top.
//!
//! Published with the same compare-and-swap as overwrites: a table that moved meanwhile is
//! re-planned on its new version. Files are deleted only after the swap, and only those no
//! retained snapshot reads.

use std::collections::{BTreeSet, HashSet};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use iceberg::MetadataLocation;
use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use serde::Serialize;

use backon::Retryable;

use crate::commit::{Attempt, OFFSETS_PROPERTY};
use crate::orphans::{FileStatus, Missing, reachable_files};
use crate::replay::REPLAY_PROPERTY;
use crate::retry::commit_backoff;
use crate::tables::TableKind;
use crate::{LakeError, Lakehouse};

/// Which snapshots may go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpiryPolicy {
    /// Snapshots committed before this may be expired.
    pub older_than: DateTime<Utc>,
    /// The newest snapshots of main kept whatever their age (Iceberg's
    /// `history.expire.min-snapshots-to-keep`).
    pub keep_at_least: usize,
}

impl ExpiryPolicy {
    /// The table's own policy: `history.expire.max-snapshot-age-ms` (Iceberg's default, 5 days,
    /// when not declared) and `history.expire.min-snapshots-to-keep` (10 when not declared).
    pub fn of_table(table: &Table, now: DateTime<Utc>) -> Self {
        let property = |key: &str| table.metadata().properties().get(key).and_then(|v| v.parse::<i64>().ok());
        let max_age_ms = property("history.expire.max-snapshot-age-ms").unwrap_or(5 * 86_400_000);
        let keep_at_least = property("history.expire.min-snapshots-to-keep").unwrap_or(10).max(1) as usize;
        Self { older_than: now - chrono::Duration::milliseconds(max_age_ms), keep_at_least }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryReport {
    pub table: String,
    pub snapshots_before: usize,
    pub snapshots_expired: Vec<i64>,
    /// Manifest lists, manifests and data files only the expired snapshots reached: deleted, or
    /// on a dry run, counted.
    pub files_deleted: usize,
    pub dry_run: bool,
}

impl Lakehouse {
    /// Expires the snapshots of `kind` the policy allows (see the module's rules).
    pub async fn expire_snapshots(
        &self,
        kind: TableKind,
        policy: ExpiryPolicy,
        dry_run: bool,
    ) -> Result<ExpiryReport, LakeError> {
        let table_name = self.table_name(kind).to_string();
        let pointer = self.pointer().ok_or_else(|| {
            LakeError::Config(format!("expiring {table_name} needs the sql or glue catalog (a compare-and-swap)"))
        })?;
        let attempt = || async {
            let Some(base) = self.existing_table(kind).await? else {
                return Ok(ExpiryReport { table: table_name.clone(), dry_run, ..Default::default() });
            };
            let metadata = base.metadata();
            let expired = expirable(metadata, policy);
            let mut report = ExpiryReport {
                table: table_name.clone(),
                snapshots_before: metadata.snapshots().len(),
                snapshots_expired: expired.iter().copied().collect(),
                dry_run,
                ..Default::default()
            };
            if expired.is_empty() {
                return Ok(report);
            }
            let base_location = base
                .metadata_location()
                .ok_or_else(|| LakeError::Config(format!("{table_name} has no metadata location")))?
                .to_string();
            let ids: Vec<i64> = expired.iter().copied().collect();
            let next =
                metadata.clone().into_builder(Some(base_location.clone())).remove_snapshots(&ids).build()?.metadata;
            if dry_run {
                report.files_deleted = files_only_in(&base, metadata, &next).await?.len();
                return Ok(report);
            }
            // Published first, while the read is fresh (appends land every few seconds); what to
            // delete is worked out from the two versions once this one has won.
            let next_location =
                MetadataLocation::from_str(&base_location)?.with_next_version().with_new_metadata(&next);
            next.write_to(base.file_io(), &next_location).await?;
            if !pointer.swap(base.identifier(), &base_location, &next_location.to_string()).await? {
                return Err(Attempt::Conflict);
            }
            let deletable = files_only_in(&base, metadata, &next).await?;
            for path in &deletable {
                base.file_io().delete(path).await?;
            }
            report.files_deleted = deletable.len();
            Ok(report)
        };
        let expired = attempt
            .retry(commit_backoff(EXPIRY_ATTEMPTS))
            .when(|e| matches!(e, Attempt::Conflict))
            .notify(|_, wait| {
                tracing::debug!(table = %table_name, retry_in_ms = wait.as_millis() as u64, "expiry lost its race, retrying")
            })
            .await;
        match expired {
            Ok(report) => Ok(report),
            Err(Attempt::Conflict) => Err(LakeError::CommitConflict { table: table_name, attempts: EXPIRY_ATTEMPTS }),
            Err(Attempt::Failed(e)) => Err(e),
        }
    }
}

/// Expiry publishes between the writers' commits; with many of them it may lose a few races.
const EXPIRY_ATTEMPTS: u32 = 10;

/// The snapshots the policy lets go.
fn expirable(metadata: &TableMetadata, policy: ExpiryPolicy) -> BTreeSet<i64> {
    let mut kept: HashSet<i64> = referenced_by_refs(metadata);
    // Main's ancestry, newest first.
    let mut ancestry = Vec::new();
    let mut next = metadata.current_snapshot_id();
    while let Some(id) = next {
        let Some(snapshot) = metadata.snapshot_by_id(id) else { break };
        ancestry.push(snapshot.clone());
        next = snapshot.parent_snapshot_id();
    }
    kept.extend(ancestry.iter().take(policy.keep_at_least).map(|s| s.snapshot_id()));
    // Through the newest carrier of the offset map, every snapshot stays: ingest walks there.
    // (The aggregate tables carry no map: nothing to keep for it there.)
    if let Some(carrier) =
        ancestry.iter().position(|s| s.summary().additional_properties.contains_key(OFFSETS_PROPERTY))
    {
        kept.extend(ancestry[..=carrier].iter().map(|s| s.snapshot_id()));
    }
    for snapshot in metadata.snapshots() {
        if snapshot.summary().additional_properties.contains_key(REPLAY_PROPERTY) {
            kept.insert(snapshot.snapshot_id());
        }
    }
    let cutoff = policy.older_than.timestamp_millis();
    metadata
        .snapshots()
        .filter(|s| s.timestamp_ms() < cutoff && !kept.contains(&s.snapshot_id()))
        .map(|s| s.snapshot_id())
        .collect()
}

/// Snapshot ids branches and tags point to. The crate keeps `refs` private; the metadata's own
/// JSON has them.
fn referenced_by_refs(metadata: &TableMetadata) -> HashSet<i64> {
    let json = serde_json::to_value(metadata).unwrap_or_default();
    json["refs"]
        .as_object()
        .map(|refs| refs.values().filter_map(|r| r["snapshot-id"].as_i64()).collect())
        .unwrap_or_default()
}

/// Files the snapshots of `before` read that none of `after` reads.
async fn files_only_in(
    table: &Table,
    before: &TableMetadata,
    after: &TableMetadata,
) -> Result<BTreeSet<String>, LakeError> {
    let file_io = table.file_io();
    let was = reachable_files(file_io, &[before], FileStatus::Live, Missing::Fail).await?;
    // A retained snapshot reads its live entries only; a file its manifests list as deleted was
    // read by an older snapshot, and if that one is expired no reader is left.
    let stays = reachable_files(file_io, &[after], FileStatus::Live, Missing::Fail).await?;
    Ok(was.into_iter().filter(|path| !stays.contains(path)).collect())
}
